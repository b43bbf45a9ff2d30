// Remote mode's options and their resolution: flags, then the selected profile, then the
// environment; discovery fills in the endpoints the options do not name.

#include "remote.hpp"

#include <algorithm>
#include <cstdlib>
#include <iostream>

#include <CLI/CLI.hpp>

#include <tokctl/keys/keystore.hpp>
#include <tokctl/tokens/policy.hpp>
#include <tokctl/jose/digest.hpp>
#include <tokctl/jose/json.hpp>
#include <tokctl/jose/jws.hpp>
#include <tokctl/util/base64.hpp>
#include <tokctl/util/io.hpp>

#include "common.hpp"
#include "keyargs.hpp"
#include "render.hpp"

namespace tokctl::cli {
namespace {

std::string env(const char* name) {
  const char* v = std::getenv(name);
  return v ? std::string(v) : std::string();
}

// $XDG_CACHE_HOME/tokctl/http, else ~/.cache/tokctl/http; "" (no cache) without either.
std::string cache_dir() {
  if (std::string d = env("XDG_CACHE_HOME"); !d.empty()) return d + "/tokctl/http";
  if (std::string h = env("HOME"); !h.empty()) return h + "/.cache/tokctl/http";
  return {};
}

void warn(const std::string& text) {
  std::cerr << style(Stream::err, "33", "tokctl: warning: ") << text << '\n';
}

// A secret read from a file: trailing newline dropped; empty is a usage error.
Result<std::string> secret_from_file(const std::string& path) {
  warn_if_readable_by_others(path, "client secret file");
  auto data = read_input(path, 64 * 1024);
  if (!data) return std::unexpected(data.error());
  std::string s(trim(*data));
  if (s.empty()) return fail(ErrorCode::usage, "the client secret file '" + path + "' is empty");
  return s;
}

const tokens::RemoteProfile* find_profile(const tokens::Policy& p, const std::string& name, Error& error) {
  auto it = p.profiles.find(name);
  if (it != p.profiles.end()) return &it->second;
  std::string have;
  for (const auto& [n, _] : p.profiles) have += (have.empty() ? "" : ", ") + n;
  error = Error{ErrorCode::usage,
                "no profile '" + name + "' in " + (p.source.empty() ? std::string("the policy (none given)") : p.source),
                have.empty() ? "add it under profiles: in the policy file (--config or $TOKCTL_CONFIG)"
                             : "profiles there: " + have};
  return nullptr;
}

// The private_key_jwt signing key: a key file, else the keystore's active signing key.
Result<std::pair<jose::Jwk, jose::Alg>> assertion_key(const std::string& file, const std::string& what) {
  Result<jose::Jwk> key = fail(ErrorCode::usage, "no key");
  if (!file.empty()) {
    warn_if_readable_by_others(file, "private key file");
    auto set = load_key_file(file);
    if (!set) return std::unexpected(set.error());
    if (set->keys.size() != 1 || !set->keys.front().has_private()) {
      return fail(ErrorCode::usage, "--client-key '" + file + "' must hold exactly one private key");
    }
    key = set->keys.front();
  } else {
    auto ks = open_keystore(false);
    if (!ks) {
      Error e = ks.error();
      e.message = what + " needs a signing key (--client-key FILE, or the keystore's): " + e.message;
      return std::unexpected(e);
    }
    auto pass = passphrase();
    if (!pass) return std::unexpected(pass.error());
    key = ks->signing_key("", "", *pass);
  }
  if (!key) return std::unexpected(key.error());
  std::string alg = !key->alg().empty() ? key->alg() : jose::implied_jws_alg(*key).value_or("RS256");
  auto a = jose::alg_from_string(alg);
  if (!a) return fail(ErrorCode::usage, "the client key's alg '" + alg + "' cannot sign a client assertion");
  return std::pair{std::move(*key), *a};
}

// The RFC 9449 proof key: one asymmetric private key in a file; its alg as the key names it or
// implies it (ES256 for P-256, EdDSA for Ed25519, ...; PS256 for RSA, which proves as well as RS256).
Result<std::pair<jose::Jwk, jose::Alg>> dpop_key(const std::string& file) {
  warn_if_readable_by_others(file, "private key file");
  auto set = load_key_file(file);
  if (!set) {
    set.error().param = "dpop_key";
    return std::unexpected(set.error());
  }
  if (set->keys.size() != 1 || !set->keys.front().has_private()) {
    return fail(ErrorCode::usage, "--dpop-key '" + file + "' must hold exactly one private key");
  }
  jose::Jwk key = set->keys.front();
  std::string alg = !key.alg().empty() ? key.alg()
                    : key.kty() == jose::KeyType::rsa ? std::string("PS256")
                                                      : jose::implied_jws_alg(key).value_or("");
  auto a = jose::alg_from_string(alg);
  if (!a || jose::is_symmetric(*a)) {
    return fail(ErrorCode::usage, "--dpop-key '" + file + "' cannot sign a DPoP proof" +
                                      (alg.empty() ? std::string() : " (alg " + alg + ")"),
                "use an EC, Ed25519 or RSA private key");
  }
  if (auto ok = jose::check_key(*a, key, jose::KeyRole::sign); !ok) return std::unexpected(ok.error());
  return std::pair{std::move(key), *a};
}

}  // namespace

void add_dpop_option(CLI::App* cmd, RemoteArgs& a) {
  file_value(cmd->add_option("--dpop-key", a.dpop_key,
                             "With a server: prove possession of this private key (JWK or PEM) with a DPoP proof, "
                             "so the access token is bound to it (RFC 9449)")
                 ->group("Remote server"));
}

void add_remote_options(CLI::App* cmd, RemoteArgs& a, RemoteOptions which) {
  const char* group = "Remote server";
  cmd->add_option("--server", a.server, "The OAuth server's issuer URL (discovery); default: $TOKCTL_SERVER")
      ->group(group);
  cmd->add_option("--profile", a.profile, "A server profile from the policy's profiles: (default: $TOKCTL_PROFILE)")
      ->group(group);
  file_value(cmd->add_option("--cacert", a.cacert, "CA bundle (PEM) for the server's certificate")->group(group));
  cmd->add_option("--timeout", a.timeout, "Per-attempt time limit for a request (e.g. 10s)")
      ->capture_default_str()
      ->group(group);
  if (which == RemoteOptions::jwks) {
    cmd->add_option("--jwks-url", a.jwks_uri, "Verify against the JWKS at this URL (cached; refetched once on an unknown kid)")
        ->group(group);
    cmd->add_flag("--insecure-tls", a.insecure, "Do not check the server's TLS certificate (debugging only)")->group(group);
    cmd->add_flag("--offline", a.offline, "Use the cached JWKS and metadata only, whatever their age")->group(group);
    return;
  }
  cmd->add_flag("--insecure,--insecure-tls", a.insecure,
                "Do not check the server's TLS certificate (debugging only: secrets and tokens can be read on the path)")
      ->group(group);
  if (!a.client_id) {
    a.client_id = &a.own_client_id;
    cmd->add_option("--client-id", a.own_client_id, "Client id to authenticate as (default: $TOKCTL_CLIENT_ID)")
        ->group(group);
  }
  cmd->add_option("--client-secret", a.client_secret,
                  "Client secret (visible to other users in ps: prefer --client-secret-file or $TOKCTL_CLIENT_SECRET)")
      ->group(group);
  file_value(cmd->add_option("--client-secret-file", a.client_secret_file, "File holding the client secret")->group(group));
  choice_value(cmd->add_option("--auth-method", a.auth_method,
                               "Client authentication (default: tls_client_auth with --cert alone, private_key_jwt with "
                               "--client-key, else client_secret_basic with a secret)")
                   ->group(group),
               {"client_secret_basic", "client_secret_post", "private_key_jwt", "tls_client_auth", "none"},
               ChoiceCheck::strict);
  file_value(cmd->add_option("--client-key", a.client_key,
                             "private_key_jwt signing key file (default: the keystore's active signing key)")
                 ->group(group));
  file_value(cmd->add_option("--cert", a.cert, "Client certificate (PEM) for mTLS / tls_client_auth")->group(group));
  file_value(cmd->add_option("--key", a.key, "The client certificate's private key (PEM)")->group(group));
  cmd->add_option("--retries", a.retries, "Extra attempts of idempotent requests on connection errors and 5xx")
      ->capture_default_str()
      ->check(CLI::Range(0, 10))
      ->group(group);
  cmd->add_option("--token-endpoint", a.token_endpoint, "Token endpoint URL (instead of discovery)")->group(group);
  cmd->add_option("--introspection-endpoint", a.introspection_endpoint, "Introspection endpoint URL")->group(group);
  cmd->add_option("--revocation-endpoint", a.revocation_endpoint, "Revocation endpoint URL")->group(group);
  cmd->add_option("--jwks-uri", a.jwks_uri, "JWKS URL (instead of discovery)")->group(group);
}

bool remote_requested(const RemoteArgs& a, bool environment) {
  if (!a.server.empty() || !a.profile.empty() || !a.token_endpoint.empty() || !a.introspection_endpoint.empty() ||
      !a.revocation_endpoint.empty() || !a.jwks_uri.empty()) {
    return true;
  }
  return environment && (!env("TOKCTL_SERVER").empty() || !env("TOKCTL_PROFILE").empty());
}

Result<std::unique_ptr<Remote>> open_remote(const RemoteArgs& a, std::initializer_list<Endpoint> needs,
                                            bool client_auth) {
  // 1. The profile, when one is selected (flag, else $TOKCTL_PROFILE).
  tokens::RemoteProfile prof;
  const std::string profile_name = !a.profile.empty() ? a.profile : env("TOKCTL_PROFILE");
  if (!profile_name.empty()) {
    auto p = policy();
    if (!p) return std::unexpected(p.error());
    Error e;
    const auto* found = find_profile(**p, profile_name, e);
    if (!found) return std::unexpected(e);
    prof = *found;
  }
  auto pick = [](const std::string& flag, const std::string& from_profile, const char* env_name) {
    if (!flag.empty()) return flag;
    if (!from_profile.empty()) return from_profile;
    return env_name ? env(env_name) : std::string();
  };
  const std::string server = pick(a.server, prof.server, "TOKCTL_SERVER");
  const std::string client_id = pick(a.client_id ? *a.client_id : std::string(), prof.client_id, "TOKCTL_CLIENT_ID");
  // The DPoP key before any request: a file that cannot prove is a usage error, not a network one.
  std::optional<std::pair<jose::Jwk, jose::Alg>> proof_key;
  if (!a.dpop_key.empty()) {
    auto k = dpop_key(a.dpop_key);
    if (!k) return std::unexpected(k.error());
    proof_key = std::move(*k);
  }

  // 2. Transport.
  remote::TransportOptions t;
  t.cacert = pick(a.cacert, prof.cacert, nullptr);
  t.cert = pick(a.cert, prof.cert, nullptr);
  t.key = pick(a.key, prof.key, nullptr);
  t.insecure = a.insecure;
  t.retries = a.retries;
  auto timeout = parse_duration(a.timeout);
  if (!timeout || *timeout <= 0 || *timeout > 86400) {
    return fail(ErrorCode::usage, "--timeout '" + a.timeout + "' is not a duration from 1s to 1d, such as 10s");
  }
  t.timeout_ms = *timeout * 1000;
  t.connect_timeout_ms = std::min<long>(t.timeout_ms, 10000);
  // Security warnings are not informational: -q does not silence them.
  if (t.insecure) {
    warn("--insecure: the server's TLS certificate is NOT checked; anyone on the path can read the secrets and "
         "tokens sent");
  }
  if (!t.key.empty()) warn_if_readable_by_others(t.key, "client certificate key");
  // The cache keeps documents per trust anchor (the CA bundle's content), and nothing fetched
  // without a certificate check is kept: a later, checked run must never trust it.
  std::string trust = "system";
  if (!t.cacert.empty()) {
    auto ca = read_input(t.cacert);
    if (!ca) return fail(ErrorCode::usage, "CA bundle '" + t.cacert + "': " + ca.error().message);
    trust = "cacert:" + hex_encode(jose::sha256(*ca));
  }
  remote::DocumentCache cache(t.insecure ? std::string() : cache_dir(), trust);
  auto http = remote::HttpClient::create(std::move(t));
  if (!http) return std::unexpected(http.error());

  auto out = std::make_unique<Remote>(Remote{std::move(*http), std::move(cache), {}, nullptr, client_id});

  // 3. Endpoints: the options, then discovery for what they leave out.
  auto& ep = out->endpoints;
  ep.token_endpoint = pick(a.token_endpoint, prof.token_endpoint, nullptr);
  ep.introspection_endpoint = pick(a.introspection_endpoint, prof.introspection_endpoint, nullptr);
  ep.revocation_endpoint = pick(a.revocation_endpoint, prof.revocation_endpoint, nullptr);
  ep.jwks_uri = pick(a.jwks_uri, prof.jwks_uri, nullptr);
  ep.issuer = server;
  auto field = [&ep](Endpoint e) -> std::string& {
    switch (e) {
      case Endpoint::token: return ep.token_endpoint;
      case Endpoint::introspection: return ep.introspection_endpoint;
      case Endpoint::revocation: return ep.revocation_endpoint;
      case Endpoint::jwks: return ep.jwks_uri;
    }
    return ep.jwks_uri;
  };
  auto name = [](Endpoint e) -> std::string {
    switch (e) {
      case Endpoint::token: return "token endpoint (--token-endpoint)";
      case Endpoint::introspection: return "introspection endpoint (--introspection-endpoint)";
      case Endpoint::revocation: return "revocation endpoint (--revocation-endpoint)";
      case Endpoint::jwks: return "JWKS URL (--jwks-uri)";
    }
    return {};
  };
  // Credentials in a URL would be sent to whoever answers, and written to the cache.
  for (const std::string* u : std::initializer_list<const std::string*>{&server, &ep.token_endpoint, &ep.introspection_endpoint, &ep.revocation_endpoint,
                               &ep.jwks_uri}) {
    if (remote::has_userinfo(*u)) {
      return fail(ErrorCode::usage, "'" + remote::redact_url(*u) + "' carries a user name or password",
                  "drop the user:password@ part; the client authenticates with --client-id and its secret");
    }
  }
  bool missing = false;
  for (Endpoint e : needs) missing = missing || field(e).empty();
  // private_key_jwt names the issuer as the audience: discover it when only endpoints were given.
  if (missing && !server.empty()) {
    auto clk = clock();
    if (!clk) return std::unexpected(clk.error());
    auto found = remote::discover(out->http, out->cache, server, (*clk)->now(),
                                  a.offline ? remote::FetchMode::offline : remote::FetchMode::normal);
    if (!found) return std::unexpected(found.error());
    for (Endpoint e : {Endpoint::token, Endpoint::introspection, Endpoint::revocation, Endpoint::jwks}) {
      std::string& mine = field(e);
      if (mine.empty()) mine = e == Endpoint::token ? found->token_endpoint
                               : e == Endpoint::introspection ? found->introspection_endpoint
                               : e == Endpoint::revocation ? found->revocation_endpoint
                                                           : found->jwks_uri;
    }
    ep.issuer = found->issuer;
    ep.metadata_url = found->metadata_url;
  }
  for (Endpoint e : needs) {
    if (field(e).empty()) {
      return fail(ErrorCode::usage,
                  server.empty() ? "no server: give --server URL, --profile NAME or $TOKCTL_SERVER"
                                 : "the server '" + remote::redact_url(server) + "' publishes no " + name(e),
                  "or name the " + name(e) + " itself");
    }
    if (!remote::is_http_url(field(e))) {
      return fail(ErrorCode::usage, "the " + name(e) + " '" + remote::redact_url(field(e)) + "' is not an http(s) URL");
    }
  }
  if (!client_auth) return out;

  // 4. Client authentication.
  remote::ClientAuth auth;
  auth.client_id = client_id;
  // Credentials come from one level, the highest that names any: the flags, then the profile,
  // then the environment. A secret meant for $TOKCTL_SERVER never goes to a profile's server.
  struct Level {
    std::string value, file, env_name, key_file;
    bool any() const { return !value.empty() || !file.empty() || !env_name.empty() || !key_file.empty(); }
  };
  const Level flags{a.client_secret, a.client_secret_file, {}, a.client_key};
  const Level profile{{}, prof.client_secret_file, prof.client_secret_env, prof.client_key};
  const Level environment{env("TOKCTL_CLIENT_SECRET"), env("TOKCTL_CLIENT_SECRET_FILE"), {}, {}};
  const Level& level = flags.any() ? flags : profile.any() ? profile : environment;
  std::string secret;
  if (!level.value.empty()) {
    if (&level == &flags) {  // printed even with -q, like --insecure's
      warn("--client-secret puts the secret where other users can read it (ps, shell history); use "
           "--client-secret-file or $TOKCTL_CLIENT_SECRET");
    }
    secret = level.value;
  } else if (!level.file.empty()) {
    auto read = secret_from_file(level.file);
    if (!read) return std::unexpected(read.error());
    secret = std::move(*read);
  } else if (!level.env_name.empty()) {
    secret = env(level.env_name.c_str());
    if (secret.empty()) {
      return fail(ErrorCode::usage, "profile '" + prof.name + "' reads the client secret from $" + level.env_name +
                                        ", which is not set");
    }
  }
  const std::string& key_file = level.key_file;
  const std::string method = pick(a.auth_method, prof.auth_method, nullptr);
  if (!method.empty()) {
    auto m = remote::auth_method_from_string(method);
    if (!m) return std::unexpected(m.error());
    auth.method = *m;
  } else if (!secret.empty()) {
    auth.method = remote::AuthMethod::client_secret_basic;
  } else if (!key_file.empty()) {
    auth.method = remote::AuthMethod::private_key_jwt;
  } else if (!pick(a.cert, prof.cert, nullptr).empty()) {
    auth.method = remote::AuthMethod::tls_client_auth;
  }
  using remote::AuthMethod;
  if (auth.method != AuthMethod::none && client_id.empty()) {
    return fail(ErrorCode::usage, std::string(remote::to_string(auth.method)) + " needs a client id",
                "give --client-id, $TOKCTL_CLIENT_ID or a profile's client_id");
  }
  if ((auth.method == AuthMethod::client_secret_basic || auth.method == AuthMethod::client_secret_post) &&
      secret.empty()) {
    return fail(ErrorCode::usage, std::string(remote::to_string(auth.method)) + " needs the client secret",
                "give --client-secret-file FILE or $TOKCTL_CLIENT_SECRET");
  }
  if (auth.method == AuthMethod::tls_client_auth && pick(a.cert, prof.cert, nullptr).empty()) {
    return fail(ErrorCode::usage, "tls_client_auth needs a client certificate", "give --cert FILE --key FILE");
  }
  if (auth.method == AuthMethod::private_key_jwt) {
    auto k = assertion_key(key_file, "private_key_jwt");
    if (!k) return std::unexpected(k.error());
    auth.key = std::move(k->first);
    auth.key_alg = k->second;
  }
  auth.secret = std::move(secret);
  auto clk = clock();
  if (!clk) return std::unexpected(clk.error());
  out->client = std::make_unique<remote::OAuthClient>(out->http, out->endpoints, std::move(auth), **clk);
  if (proof_key) out->client->use_dpop(std::move(proof_key->first), proof_key->second);
  return out;
}

Result<std::string> mint_assertion(const std::string& key_file, const std::string& iss, const std::string& sub,
                                   const std::string& aud) {
  auto k = assertion_key(key_file, "a jwt-bearer assertion");
  if (!k) return std::unexpected(k.error());
  auto clk = clock();
  if (!clk) return std::unexpected(clk.error());
  const UnixTime now = (*clk)->now();
  nlohmann::json claims = {{"iss", iss}, {"sub", sub}, {"aud", aud}, {"iat", now}, {"exp", now + 300},
                           {"jti", b64url_encode(jose::random_bytes(18))}};
  nlohmann::json header = {{"alg", jose::to_string(k->second)}, {"typ", "JWT"}};
  if (!k->first.kid().empty()) header["kid"] = k->first.kid();
  return jose::sign_compact(header, claims.dump(), k->second, k->first);
}

void add_token_exchange_options(CLI::App* cmd, TokenExchangeArgs& a, const std::string& group) {
  std::vector<CLI::Option*> added;
  added.push_back(
      file_value(cmd->add_option("--subject-token", a.subject_token, "The token to exchange, or - for stdin")));
  added.push_back(choice_value(cmd->add_option("--subject-token-type", a.subject_token_type,
                                               "access_token, jwt or id_token (or the full "
                                               "urn:ietf:params:oauth:token-type: URN)")
                                   ->capture_default_str(),
                               token_type_names(), ChoiceCheck::suggest));
  added.push_back(file_value(cmd->add_option("--actor-token", a.actor_token,
                                             "Token of the party acting for the subject (delegate), or - for stdin")));
  added.push_back(choice_value(
      cmd->add_option("--actor-token-type", a.actor_token_type, "Type of the actor token (default: access_token)"),
      token_type_names(), ChoiceCheck::suggest));
  added.push_back(cmd->add_option("--requested-token-type", a.requested_token_type,
                                  "access_token or jwt (both give a JWT access token, typ at+jwt)")
                      ->capture_default_str());
  if (!group.empty())
    for (auto* opt : added) opt->group(group);
}

Result<ExchangeTokens> read_exchange_tokens(const TokenExchangeArgs& a) {
  if (a.subject_token == "-" && a.actor_token == "-") {
    return fail(ErrorCode::usage, "only one of --subject-token and --actor-token can be read from stdin");
  }
  if (!a.actor_token_type.empty() && a.actor_token.empty()) {
    return fail(ErrorCode::usage, "--actor-token-type needs --actor-token");
  }
  ExchangeTokens out;
  auto subject = read_token(a.subject_token);
  if (!subject) return std::unexpected(subject.error());
  if (subject->empty()) return fail(ErrorCode::usage, "the subject token is empty");
  out.subject = std::move(*subject);
  if (!a.actor_token.empty()) {
    auto actor = read_token(a.actor_token);
    if (!actor) return std::unexpected(actor.error());
    if (actor->empty()) return fail(ErrorCode::usage, "the actor token is empty");
    out.actor = std::move(*actor);
  }
  return out;
}

remote::Fields token_exchange_params(const TokenExchangeArgs& a, ExchangeTokens tokens) {
  remote::Fields params{{"grant_type", "urn:ietf:params:oauth:grant-type:token-exchange"},
                        {"subject_token", std::move(tokens.subject)},
                        {"subject_token_type", token_type_urn(a.subject_token_type)}};
  if (tokens.actor) {
    params.emplace_back("actor_token", std::move(*tokens.actor));
    params.emplace_back("actor_token_type",
                        token_type_urn(a.actor_token_type.empty() ? "access_token" : a.actor_token_type));
  }
  for (const auto& aud : a.audience) params.emplace_back("audience", aud);
  for (const auto& r : a.resource) params.emplace_back("resource", r);
  if (!a.scope.empty()) params.emplace_back("scope", a.scope);
  params.emplace_back("requested_token_type", token_type_urn(a.requested_token_type));
  return params;
}

int print_token_response(const nlohmann::json& r, bool header) {
  if (json_output()) {
    print_json(r);
    return 0;
  }
  // RFC 9449 §7.1: a DPoP-bound token goes out with the DPoP scheme (and a proof per request).
  std::string type = jose::string_or(r, "token_type");
  std::transform(type.begin(), type.end(), type.begin(), [](unsigned char c) { return std::tolower(c); });
  if (header && type != "dpop" && type != "bearer") {
    // Another type (N_A for a token that is no access token, RFC 8693 §2.2.1; a MAC token) has
    // no Authorization header that tokctl could write: never labelled Bearer.
    return report(Error{ErrorCode::network,
                        "the server issued a token of type '" + jose::string_or(r, "token_type") +
                            "', which has no Authorization header form (only Bearer and DPoP)",
                        "leave out the header option to print the token alone"});
  }
  std::cout << (header ? (type == "dpop" ? "Authorization: DPoP " : "Authorization: Bearer ") : "")
            << r.at("access_token").get<std::string>() << '\n';
  for (const char* extra : {"refresh_token", "id_token"}) {
    if (const std::string* t = jose::string_member(r, extra)) std::cout << *t << '\n';
  }
  return 0;
}

Result<void> refuse_remote_only(std::initializer_list<std::pair<const char*, bool>> given) {
  for (const auto& [flag, set] : given) {
    if (set) {
      return fail(ErrorCode::usage, std::string(flag) + " applies to a server: add --server URL or --profile NAME");
    }
  }
  return {};
}

Result<void> refuse_local_options(std::initializer_list<std::pair<const char*, bool>> given) {
  for (const auto& [flag, set] : given) {
    if (set) {
      return fail(ErrorCode::usage, std::string(flag) + " applies to the local keystore, not to a server",
                  "drop it, or drop --server/--profile (and unset $TOKCTL_SERVER) to work locally");
    }
  }
  return {};
}

Result<std::optional<jose::TokenVerifier>> RemoteKeys::refetch(std::string& why_not) {
  if (!jwks) return std::nullopt;
  auto keys = jwks->refetch(why_not);
  if (!keys) return std::unexpected(keys.error());
  if (!*keys) return std::nullopt;
  auto v = rebuild(std::move(**keys));
  if (!v) return std::unexpected(v.error());
  return std::optional<jose::TokenVerifier>(std::move(*v));
}

bool kid_not_found(const jose::VerifyReport& report) {
  return std::any_of(report.problems.begin(), report.problems.end(),
                     [](const jose::Problem& p) { return p.code == jose::ProblemCode::kid_not_found; });
}

}  // namespace tokctl::cli
