// Discovery, client authentication, the token/introspection/revocation endpoints, remote JWKS.

#include <tokctl/remote/oauth.hpp>

#include <algorithm>

#include <tokctl/jose/digest.hpp>
#include <tokctl/jose/dpop.hpp>
#include <tokctl/jose/json.hpp>
#include <tokctl/jose/jws.hpp>
#include <tokctl/util/base64.hpp>
#include <tokctl/util/io.hpp>

namespace tokctl::remote {
namespace {

using nlohmann::json;

std::string without_trailing_slash(std::string_view s) {
  while (s.size() > 1 && s.back() == '/') s.remove_suffix(1);
  return std::string(s);
}

// Position of the path in an absolute URL (after scheme://authority), or npos.
std::size_t path_start(std::string_view url) {
  auto scheme = url.find("://");
  if (scheme == std::string_view::npos) return std::string_view::npos;
  return url.find_first_of("/?#", scheme + 3);
}

std::string random_id() { return b64url_encode(jose::random_bytes(18)); }

// A server's documents are parsed strictly, up to the transport's own size limit.
const jose::JsonLimits k_document_limits{std::size_t{1} << 20, 64};

OAuthCode oauth_code(std::string_view name) {
  for (OAuthCode c : {OAuthCode::invalid_request, OAuthCode::invalid_client, OAuthCode::invalid_grant,
                      OAuthCode::unauthorized_client, OAuthCode::unsupported_grant_type, OAuthCode::invalid_scope,
                      OAuthCode::invalid_target, OAuthCode::access_denied, OAuthCode::server_error,
                      OAuthCode::temporarily_unavailable}) {
    if (name == to_string(c)) return c;
  }
  return OAuthCode::none;
}

// Printable, bounded text from a server for a message (never raw control characters).
std::string printable(std::string_view s, std::size_t max = 300) {
  std::string out;
  for (char c : s.substr(0, max)) out += (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) ? '?' : c;
  if (s.size() > max) out += "...";
  return out;
}

}  // namespace

std::vector<std::string> well_known_urls(std::string_view issuer) {
  std::string iss = without_trailing_slash(issuer);
  std::vector<std::string> out;
  auto p = path_start(iss);
  std::string origin = p == std::string::npos ? iss : iss.substr(0, p);
  std::string path = p == std::string::npos ? "" : iss.substr(p);
  if (path == "/") path.clear();
  out.push_back(origin + "/.well-known/oauth-authorization-server" + path);
  out.push_back(iss + "/.well-known/openid-configuration");
  return out;
}

Result<ServerEndpoints> parse_metadata(std::string_view body, const std::string& issuer, const std::string& url) {
  auto meta = jose::parse_json_object(body, "metadata at " + redact_url(url), k_document_limits);
  if (!meta) {
    return fail(ErrorCode::network, "the server metadata at " + redact_url(url) +
                                        " is not a JSON object: " + meta.error().message);
  }
  ServerEndpoints ep;
  ep.metadata_url = url;
  const std::string* iss = jose::string_member(*meta, "issuer");
  if (!iss || without_trailing_slash(*iss) != without_trailing_slash(issuer)) {
    return fail(ErrorCode::network,
                "the metadata at " + redact_url(url) + " names issuer '" + (iss ? printable(*iss) : std::string("(none)")) +
                    "', not '" + redact_url(issuer) + "' (RFC 8414 §3.3: they must be identical)",
                "give the server's issuer identifier exactly as it publishes it");
  }
  ep.issuer = *iss;
  for (auto [name, field] : {std::pair{"token_endpoint", &ep.token_endpoint},
                             std::pair{"introspection_endpoint", &ep.introspection_endpoint},
                             std::pair{"revocation_endpoint", &ep.revocation_endpoint},
                             std::pair{"jwks_uri", &ep.jwks_uri}}) {
    auto it = meta->find(name);
    if (it == meta->end()) continue;
    if (!it->is_string() || !is_http_url(it->get_ref<const std::string&>())) {
      return fail(ErrorCode::network, "the metadata at " + redact_url(url) + " has a " + name +
                                          " that is not an http(s) URL");
    }
    // An https issuer keeps secrets, tokens and keys on https: a plain-http endpoint in its
    // metadata would hand them to anyone on the path.
    if (is_https_url(issuer) && !is_https_url(it->get_ref<const std::string&>())) {
      return fail(ErrorCode::network, "the metadata at " + redact_url(url) + " names a plain http " + name +
                                          " for an https issuer");
    }
    if (has_userinfo(it->get_ref<const std::string&>())) {
      return fail(ErrorCode::network, "the metadata at " + redact_url(url) + " has a " + name + " with credentials in it");
    }
    *field = it->get<std::string>();
  }
  return ep;
}

Result<ServerEndpoints> discover(HttpClient& http, const DocumentCache& cache, const std::string& issuer,
                                 UnixTime now, FetchMode mode) {
  if (!is_http_url(issuer)) {
    return fail(ErrorCode::usage, "server '" + redact_url(issuer) + "' is not an http:// or https:// URL");
  }
  std::optional<Error> first_error;
  for (const std::string& url : well_known_urls(issuer)) {
    auto doc = fetch_document(http, cache, url, now, mode);
    if (!doc) {
      if (!first_error) first_error = doc.error();
      // Only a missing document (HTTP 4xx) moves on to the next place; a dead server does not.
      if (doc.error().detail != ErrorDetail::http_4xx && mode != FetchMode::offline) {
        return std::unexpected(doc.error());
      }
      continue;
    }
    return parse_metadata(doc->body, issuer, url);
  }
  Error e = first_error.value_or(Error{ErrorCode::network, "no metadata", {}});
  e.code = ErrorCode::network;
  e.message = "no server metadata for '" + redact_url(issuer) + "' (tried RFC 8414 and OpenID Connect discovery): " + e.message;
  e.hint = "name the endpoints directly when the server publishes no metadata";
  return std::unexpected(e);
}

Result<AuthMethod> auth_method_from_string(std::string_view name) {
  for (AuthMethod m : {AuthMethod::none, AuthMethod::client_secret_basic, AuthMethod::client_secret_post,
                       AuthMethod::private_key_jwt, AuthMethod::tls_client_auth}) {
    if (name == to_string(m)) return m;
  }
  return fail(ErrorCode::usage, "unknown client authentication method '" + std::string(name) + "'",
              "one of none, client_secret_basic, client_secret_post, private_key_jwt, tls_client_auth");
}

const char* to_string(AuthMethod method) {
  switch (method) {
    case AuthMethod::none: return "none";
    case AuthMethod::client_secret_basic: return "client_secret_basic";
    case AuthMethod::client_secret_post: return "client_secret_post";
    case AuthMethod::private_key_jwt: return "private_key_jwt";
    case AuthMethod::tls_client_auth: return "tls_client_auth";
  }
  return "none";
}

Error error_from_response(const HttpResponse& r, std::string_view what) {
  const std::string where = std::string(what) + " (" + redact_url(r.url) + ")";
  if (auto j = jose::parse_json_object(r.body, "error response", k_document_limits); j) {
    if (const std::string* code = jose::string_member(*j, "error")) {
      // A known code travels in Error::oauth and the message is the description alone (the front
      // end prints "code: description"); an unknown code stays in the message.
      Error e{ErrorCode::remote_oauth, {}, {}};
      e.oauth = oauth_code(*code);
      const std::string* d = jose::string_member(*j, "error_description");
      std::string description = d && !d->empty() ? printable(*d) : std::string("(no error_description)");
      e.message = e.oauth != OAuthCode::none ? description : printable(*code, 80) + ": " + description;
      e.hint = "the " + std::string(what) + " refused the request (HTTP " + std::to_string(r.status) + ")";
      return e;
    }
  }
  std::string type = r.media_type();
  return Error{ErrorCode::network,
               where + " answered HTTP " + std::to_string(r.status) + " (" + (type.empty() ? "no content type" : type) +
                   ", " + std::to_string(r.body.size()) + " bytes), not an OAuth error response",
               {}};
}

Result<json> json_body(const HttpResponse& r, std::string_view what) {
  auto j = jose::parse_json_object(r.body, what, k_document_limits);
  if (!j) {
    return fail(ErrorCode::network, "the " + std::string(what) + " (" + redact_url(r.url) +
                                        ") answered HTTP " + std::to_string(r.status) +
                                        " with a body that is not a JSON object: " + j.error().message);
  }
  return j;
}

OAuthClient::OAuthClient(HttpClient& http, ServerEndpoints endpoints, ClientAuth auth, const Clock& clock)
    : m_http(http), m_endpoints(std::move(endpoints)), m_auth(std::move(auth)), m_clock(clock) {}

Result<HttpResponse> OAuthClient::post(const std::string& endpoint, std::string_view what, Fields params,
                                       bool idempotent, std::string_view accept, Fields headers) {
  if (endpoint.empty()) {
    return fail(ErrorCode::usage, "the server names no " + std::string(what), "name the endpoint directly");
  }
  HttpRequest req;
  req.method = "POST";
  req.url = endpoint;
  // A client assertion is single-use (RFC 7523 §3: jti): a repeated request would be refused as a
  // replay, so requests that carry one are sent once.
  req.idempotent = idempotent && m_auth.method != AuthMethod::private_key_jwt;
  req.headers.emplace_back("Content-Type", "application/x-www-form-urlencoded");
  req.headers.emplace_back("Accept", std::string(accept));
  for (auto& h : headers) req.headers.push_back(std::move(h));
  switch (m_auth.method) {
    case AuthMethod::client_secret_basic:
      req.headers.emplace_back("Authorization", basic_authorization(m_auth.client_id, m_auth.secret));
      break;
    case AuthMethod::client_secret_post:
      params.emplace_back("client_id", m_auth.client_id);
      params.emplace_back("client_secret", m_auth.secret);
      break;
    case AuthMethod::private_key_jwt: {
      if (!m_auth.key || !m_auth.key_alg) return fail(ErrorCode::usage, "private_key_jwt needs a signing key");
      const UnixTime now = m_clock.now();
      // RFC 7523 §3: iss = sub = client_id; aud identifies the server (its issuer identifier, the
      // token endpoint when none is known); a fresh jti and a short life.
      json claims = {{"iss", m_auth.client_id},
                     {"sub", m_auth.client_id},
                     {"aud", !m_endpoints.issuer.empty()           ? m_endpoints.issuer
                             : !m_endpoints.token_endpoint.empty() ? m_endpoints.token_endpoint
                                                                   : endpoint},
                     {"jti", random_id()},
                     {"iat", now},
                     {"exp", now + 60}};
      json header = {{"alg", jose::to_string(*m_auth.key_alg)}, {"typ", "JWT"}};
      if (!m_auth.key->kid().empty()) header["kid"] = m_auth.key->kid();
      auto jwt = jose::sign_compact(header, claims.dump(), *m_auth.key_alg, *m_auth.key);
      if (!jwt) return std::unexpected(jwt.error());
      params.emplace_back("client_id", m_auth.client_id);
      params.emplace_back("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer");
      params.emplace_back("client_assertion", *jwt);
      break;
    }
    case AuthMethod::tls_client_auth:
    case AuthMethod::none:
      if (!m_auth.client_id.empty()) params.emplace_back("client_id", m_auth.client_id);
      break;
  }
  req.body = form_body(params);
  return m_http.send(req);
}

void OAuthClient::use_dpop(jose::Jwk key, jose::Alg alg) {
  m_dpop_key = std::move(key);
  m_dpop_alg = alg;
}

Result<json> OAuthClient::token(Fields params) {
  // RFC 9449 §4.2: a proof for this request (a fresh jti each), with the server's nonce once it
  // asked for one (§8).
  auto proof = [&](const std::string& nonce) -> Result<Fields> {
    if (!m_dpop_key) return Fields{};
    jose::DpopClaims c;
    c.htm = "POST";
    c.htu = m_endpoints.token_endpoint;
    c.iat = m_clock.now();
    c.nonce = nonce;
    auto p = jose::make_dpop_proof(*m_dpop_key, m_dpop_alg, c);
    if (!p) return std::unexpected(p.error());
    return Fields{{"DPoP", std::move(*p)}};
  };
  auto headers = proof("");
  if (!headers) return std::unexpected(headers.error());
  const bool dpop = m_dpop_key.has_value();
  auto r = post(m_endpoints.token_endpoint, "token endpoint", dpop ? params : std::move(params), false,
                "application/json", std::move(*headers));
  if (!r) return std::unexpected(r.error());
  if (dpop && (r->status == 400 || r->status == 401) && !r->header("dpop-nonce").empty()) {
    auto refusal = json::parse(r->body, nullptr, false);
    if (const std::string* code = refusal.is_object() ? jose::string_member(refusal, "error") : nullptr;
        code && *code == "use_dpop_nonce") {
      headers = proof(r->header("dpop-nonce"));
      if (!headers) return std::unexpected(headers.error());
      r = post(m_endpoints.token_endpoint, "token endpoint", std::move(params), false, "application/json",
               std::move(*headers));
      if (!r) return std::unexpected(r.error());
    }
  }
  if (r->status < 200 || r->status >= 300) return std::unexpected(error_from_response(*r, "token endpoint"));
  auto j = json_body(*r, "token endpoint");
  if (!j) return j;
  const std::string* at = jose::string_member(*j, "access_token");
  if (!at || at->empty()) {
    return fail(ErrorCode::network, "the token endpoint (" + redact_url(r->url) +
                                        ") answered without a string access_token");
  }
  // RFC 6749 §5.1 and Appendix A: token_type is required, and a token is printable ASCII (VSCHAR).
  // A token is printed one per line and goes into an Authorization header: one with a control
  // character (a terminal escape, a newline) is no token, and never reaches the terminal.
  auto vschar = [](const std::string& s) {
    return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= 0x20 && c <= 0x7e; });
  };
  for (const char* member : {"access_token", "refresh_token", "id_token", "token_type"}) {
    auto it = j->find(member);
    if (it == j->end()) {
      if (std::string_view(member) != "token_type") continue;
      return fail(ErrorCode::network, "the token endpoint (" + redact_url(r->url) + ") answered without token_type");
    }
    if (!it->is_string() || !vschar(it->get_ref<const std::string&>()) ||
        (std::string_view(member) == "token_type" && it->get_ref<const std::string&>().find(' ') != std::string::npos)) {
      return fail(ErrorCode::network, "the token endpoint (" + redact_url(r->url) + ") answered a " + member +
                                          " that is not a string of printable ASCII characters (RFC 6749 Appendix A)");
    }
  }
  return j;
}

Result<Introspection> OAuthClient::introspect(std::string_view token, std::string_view hint, std::string_view accept) {
  Fields params{{"token", std::string(token)}};
  if (!hint.empty()) params.emplace_back("token_type_hint", std::string(hint));
  auto r = post(m_endpoints.introspection_endpoint, "introspection endpoint", std::move(params), true, accept);
  if (!r) return std::unexpected(r.error());
  Introspection out;
  out.status = r->status;
  out.content_type = r->media_type();
  const bool want_json = accept == "application/json";
  if (r->status == 204 && !want_json) return out;  // the phantom contract: inactive
  if (r->status < 200 || r->status >= 300) return std::unexpected(error_from_response(*r, "introspection endpoint"));
  const bool is_json = out.content_type == "application/json" || out.content_type.ends_with("+json") ||
                       (want_json && out.content_type.empty());
  if (want_json && !is_json) {
    // A login page or a proxy's answer is not "inactive": the server did not answer at all.
    return fail(ErrorCode::network, "the introspection endpoint (" + redact_url(r->url) + ") answered HTTP " +
                                        std::to_string(r->status) + " with " +
                                        (out.content_type.empty() ? std::string("no content type") : out.content_type) +
                                        ", not an RFC 7662 JSON object");
  }
  if (!want_json && !is_json) {
    // The JWT forms: a JWT of the media type asked for. A login page, a proxy's text or an empty
    // 200 is no answer (the phantom contract says inactive with 204), never a token to hand on.
    const std::string_view body = trim(r->body);
    const bool jws_text = jose::compact_segments(body) == 3 &&
                          body.find_first_not_of("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.") ==
                              std::string_view::npos;
    if (out.content_type != accept || !jws_text) {
      return fail(ErrorCode::network,
                  "the introspection endpoint (" + redact_url(r->url) + ") answered HTTP " + std::to_string(r->status) +
                      " with " + (out.content_type.empty() ? std::string("no content type") : out.content_type) +
                      (body.empty() ? ", and no body" : jws_text ? "" : ", and a body that is not a JWT") +
                      ", not the " + std::string(accept) + " asked for");
    }
  }
  if (is_json) {
    auto j = json_body(*r, "introspection endpoint");
    if (!j) return std::unexpected(j.error());
    auto active = j->find("active");
    if (active == j->end() || !active->is_boolean()) {
      return fail(ErrorCode::network, "the introspection endpoint (" + redact_url(r->url) +
                                          ") answered without a boolean \"active\" (RFC 7662 §2.2)");
    }
    out.json = std::move(*j);
  }
  out.body = std::move(r->body);
  return out;
}

Result<void> OAuthClient::revoke(std::string_view token, std::string_view hint) {
  Fields params{{"token", std::string(token)}};
  if (!hint.empty()) params.emplace_back("token_type_hint", std::string(hint));
  auto r = post(m_endpoints.revocation_endpoint, "revocation endpoint", std::move(params), true, "application/json");
  if (!r) return std::unexpected(r.error());
  if (r->status != 200) return std::unexpected(error_from_response(*r, "revocation endpoint"));
  return {};
}

RemoteJwks::RemoteJwks(HttpClient& http, const DocumentCache& cache, std::string url, const Clock& clock,
                       bool offline)
    : m_http(http), m_cache(cache), m_url(std::move(url)), m_clock(clock), m_offline(offline) {}

Result<jose::JwkSet> RemoteJwks::parse(const CachedDocument& doc) {
  auto j = jose::parse_json_object(doc.body, "JWKS", k_document_limits);
  if (!j) return fail(ErrorCode::network, "the JWKS at " + redact_url(m_url) + " is not a JSON object: " + j.error().message);
  auto set = jose::parse_jwks(*j);
  if (!set) {
    return fail(ErrorCode::network, "the JWKS at " + redact_url(m_url) + " is not a key set: " + set.error().message);
  }
  // A published document holds public keys only. A secret (an oct key) in it is known to everyone
  // who fetched it, so a token it verifies proves nothing: such a key is never trusted (it is
  // listed as skipped, so a token naming its kid says why). Private members of an asymmetric key
  // are dropped: verifying needs the public part alone.
  std::vector<jose::Jwk> trusted;
  for (auto& k : set->keys) {
    if (k.kty() == jose::KeyType::oct) {
      set->skipped.push_back({k.kid(), "oct (a secret published for anyone to read, never trusted)"});
      continue;
    }
    auto pub = k.to_public();
    if (!pub) return fail(ErrorCode::network, "the JWKS at " + redact_url(m_url) + ": " + pub.error().message);
    trusted.push_back(std::move(*pub));
  }
  set->keys = std::move(trusted);
  return set;
}

Result<jose::JwkSet> RemoteJwks::keys() {
  auto doc = fetch_document(m_http, m_cache, m_url, m_clock.now(), m_offline ? FetchMode::offline : FetchMode::normal,
                            "application/jwk-set+json, application/json");
  if (!doc) return std::unexpected(doc.error());
  return parse(*doc);
}

Result<std::optional<jose::JwkSet>> RemoteJwks::refetch(std::string& why_not) {
  if (m_offline) {
    why_not = "offline: the cached JWKS was not refetched";
    return std::nullopt;
  }
  if (m_refetched) {
    why_not = "the JWKS was already refetched once";
    return std::nullopt;
  }
  const UnixTime now = m_clock.now();
  if (auto cached = m_cache.load(m_url); cached && cached->refetched_at != 0 &&
                                          now - cached->refetched_at < min_refetch_interval &&
                                          now >= cached->refetched_at) {
    why_not = "the JWKS was refetched " + std::to_string(now - cached->refetched_at) +
              "s ago (at most once per " + std::to_string(min_refetch_interval) + "s)";
    return std::nullopt;
  }
  m_refetched = true;
  auto doc = fetch_document(m_http, m_cache, m_url, now, FetchMode::refresh,
                            "application/jwk-set+json, application/json");
  if (!doc) return std::unexpected(doc.error());
  // A no-store JWKS keeps no refetched_at: its limit is then the once per process.
  auto set = parse(*doc);
  if (!set) return std::unexpected(set.error());
  return std::optional<jose::JwkSet>(std::move(*set));
}

}  // namespace tokctl::remote
