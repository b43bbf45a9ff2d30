// The client model: reading `clients:` entries, secret hashes (SHA-256 for generated secrets,
// PBKDF2-HMAC-SHA256 for human ones) checked in constant time, grant types, and adding a client to
// a policy file without touching the rest of it.

#include <tokctl/tokens/clients.hpp>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <sstream>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include <tokctl/jose/algorithm.hpp>
#include <tokctl/jose/digest.hpp>
#include <tokctl/jose/jwk.hpp>
#include <tokctl/jose/json.hpp>
#include <tokctl/util/base64.hpp>
#include <tokctl/util/io.hpp>
#include <tokctl/util/lock.hpp>
#include <tokctl/util/utf8.hpp>

#include "policy_reader.hpp"

namespace tokctl::tokens {
namespace {

constexpr const char* k_auth_methods[] = {"client_secret_basic", "client_secret_post", "private_key_jwt",
                                          "tls_client_auth", "none"};

std::string pbkdf2(std::string_view secret, std::string_view salt, int iterations) {
  unsigned char out[32];
  if (PKCS5_PBKDF2_HMAC(secret.data(), static_cast<int>(secret.size()),
                        reinterpret_cast<const unsigned char*>(salt.data()), static_cast<int>(salt.size()),
                        iterations, EVP_sha256(), sizeof out, out) != 1) {
    throw std::runtime_error("PBKDF2 failed");
  }
  return std::string(reinterpret_cast<const char*>(out), sizeof out);
}

bool equal_ct(std::string_view a, std::string_view b) {
  return a.size() == b.size() && CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

struct Pbkdf2Hash {
  int iterations = 0;
  std::string salt, hash;
};

// "pbkdf2-sha256:<iterations>:<salt b64url>:<hash b64url>" (32-byte hash).
std::optional<Pbkdf2Hash> parse_pbkdf2(std::string_view stored) {
  constexpr std::string_view prefix = "pbkdf2-sha256:";
  if (!stored.starts_with(prefix)) return std::nullopt;
  std::string_view rest = stored.substr(prefix.size());
  auto c1 = rest.find(':');
  auto c2 = c1 == std::string_view::npos ? c1 : rest.find(':', c1 + 1);
  if (c2 == std::string_view::npos) return std::nullopt;
  std::string_view iter = rest.substr(0, c1);
  if (iter.empty() || iter.size() > 9 || iter.find_first_not_of("0123456789") != std::string_view::npos) return std::nullopt;
  Pbkdf2Hash h;
  h.iterations = std::stoi(std::string(iter));
  auto salt = b64url_decode(rest.substr(c1 + 1, c2 - c1 - 1));
  auto hash = b64url_decode(rest.substr(c2 + 1));
  if (!salt || !hash || salt->size() < 8 || hash->size() != 32 || h.iterations < k_pbkdf2_min_iterations ||
      h.iterations > k_pbkdf2_max_iterations) {
    return std::nullopt;
  }
  h.salt = std::move(*salt);
  h.hash = std::move(*hash);
  return h;
}

std::optional<std::string> parse_sha256(std::string_view stored) {
  constexpr std::string_view prefix = "sha256:";
  if (!stored.starts_with(prefix) || stored.size() != prefix.size() + 64) return std::nullopt;
  auto raw = hex_decode(stored.substr(prefix.size()));
  if (!raw) return std::nullopt;
  return std::move(*raw);
}

}  // namespace

std::string grant_type(std::string_view name) {
  if (name == k_grant_client_credentials || name == k_grant_refresh_token) return std::string(name);
  if (name == k_grant_token_exchange || name == "token_exchange" || name == "token-exchange") return k_grant_token_exchange;
  if (name == k_grant_jwt_bearer || name == "jwt_bearer" || name == "jwt-bearer") return k_grant_jwt_bearer;
  return {};
}

std::string generate_client_secret() { return b64url_encode(jose::random_bytes(32)); }

std::string hash_generated_secret(std::string_view secret) { return "sha256:" + hex_encode(jose::sha256(secret)); }

Result<std::string> hash_human_secret(std::string_view secret, int iterations) {
  if (iterations < k_pbkdf2_min_iterations || iterations > k_pbkdf2_max_iterations) {
    return fail(ErrorCode::usage, "PBKDF2 iterations must be " + std::to_string(k_pbkdf2_min_iterations) + " to " +
                                      std::to_string(k_pbkdf2_max_iterations) + ", not " + std::to_string(iterations));
  }
  if (secret.empty()) return fail(ErrorCode::usage, "the client secret is empty");
  std::string salt = jose::random_bytes(16);
  return "pbkdf2-sha256:" + std::to_string(iterations) + ":" + b64url_encode(salt) + ":" +
         b64url_encode(pbkdf2(secret, salt, iterations));
}

bool valid_secret_hash(std::string_view stored) { return parse_sha256(stored) || parse_pbkdf2(stored); }

bool secret_matches(std::string_view stored, std::string_view secret) {
  if (auto h = parse_sha256(stored)) return equal_ct(jose::sha256(secret), *h);
  if (auto p = parse_pbkdf2(stored)) return equal_ct(pbkdf2(secret, p->salt, p->iterations), p->hash);
  return false;
}

namespace {

// The largest PBKDF2 iteration count among the policy's client secrets (0: none).
int max_pbkdf2_iterations(const Policy& policy) {
  int most = 0;
  for (const auto& [id, c] : policy.clients)
    if (auto p = parse_pbkdf2(c.secret_hash)) most = std::max(most, p->iterations);
  return most;
}

// The whole check: every failure costs one SHA-256 plus `pad_to` PBKDF2 iterations.
// `verified_kdf` is set when a PBKDF2 hash matched (the caller may cache it).
const ClientPolicy* check_secret(const Policy& policy, std::string_view client_id, std::string_view secret,
                                 int pad_to, bool& verified_kdf) {
  static const std::string k_dummy_sha256 = jose::sha256("tokctl: no such client");
  static const std::string k_dummy_salt = "tokctl-no-client";
  verified_kdf = false;
  const ClientPolicy* c = policy.client(client_id);
  int spent = 0;
  bool ok = false;
  if (c && !c->secret_hash.empty()) {
    if (auto h = parse_sha256(c->secret_hash)) {
      ok = equal_ct(jose::sha256(secret), *h);
    } else if (auto p = parse_pbkdf2(c->secret_hash)) {
      ok = equal_ct(pbkdf2(secret, p->salt, p->iterations), p->hash);
      spent = p->iterations;
      verified_kdf = ok;
    }
  } else {
    // Unknown, or no secret: the SHA-256 a generated secret costs, then the padding below.
    (void)equal_ct(jose::sha256(secret), k_dummy_sha256);
  }
  if (ok) return c;
  if (pad_to > spent) (void)pbkdf2(secret, k_dummy_salt, pad_to - spent);
  return nullptr;
}

Result<const ClientPolicy*> refused_client() {
  return oauth_fail(OAuthCode::invalid_client, "client authentication failed");
}

}  // namespace

Result<const ClientPolicy*> authenticate_client(const Policy& policy, std::string_view client_id,
                                                std::string_view secret) {
  bool kdf = false;
  const ClientPolicy* c = check_secret(policy, client_id, secret, max_pbkdf2_iterations(policy), kdf);
  if (!c) return refused_client();
  return c;
}

SecretAuthenticator::SecretAuthenticator(const Policy& policy)
    : m_policy(policy), m_max_iterations(max_pbkdf2_iterations(policy)), m_cache_key(jose::random_bytes(32)) {}

std::string SecretAuthenticator::cache_digest(const ClientPolicy& client, std::string_view secret) const {
  std::string data = client.secret_hash;
  data.push_back('\0');
  data.append(secret);
  return jose::hmac_sha256(m_cache_key, data);
}

std::optional<const ClientPolicy*> SecretAuthenticator::authenticate_fast(std::string_view client_id,
                                                                          std::string_view secret) const {
  const ClientPolicy* c = m_policy.client(client_id);
  if (!c || c->secret_hash.empty()) return std::nullopt;
  if (auto h = parse_sha256(c->secret_hash)) {
    if (equal_ct(jose::sha256(secret), *h)) return c;
    return std::nullopt;
  }
  const std::string digest = cache_digest(*c, secret);
  std::lock_guard lock(m_cache_mutex);
  auto it = m_verified.find(client_id);
  if (it != m_verified.end() && equal_ct(it->second, digest)) return c;
  return std::nullopt;
}

Result<const ClientPolicy*> SecretAuthenticator::authenticate(std::string_view client_id, std::string_view secret) const {
  bool kdf = false;
  const ClientPolicy* c = check_secret(m_policy, client_id, secret, m_max_iterations, kdf);
  if (!c) return refused_client();
  if (kdf) {
    std::string digest = cache_digest(*c, secret);
    std::lock_guard lock(m_cache_mutex);
    m_verified[c->id] = std::move(digest);
  }
  return c;
}

Result<const ClientPolicy*> authenticate_tls_client(const Policy& policy, std::string_view client_id,
                                                    std::string_view cert_subject,
                                                    const std::vector<std::string>& cert_sans) {
  const ClientPolicy* c = policy.client(client_id);
  auto refused = [] { return oauth_fail(OAuthCode::invalid_client, "client authentication failed"); };
  if (!c || c->tls.empty() || (!c->auth_method.empty() && c->auth_method != "tls_client_auth")) return refused();
  if (cert_subject.empty() && cert_sans.empty()) return refused();
  const TlsClientAuth& t = c->tls;
  if (!t.subject_dn.empty() && t.subject_dn == cert_subject) return c;
  auto has = [&](const char* prefix, const std::vector<std::string>& wanted) {
    for (const auto& w : wanted)
      if (std::find(cert_sans.begin(), cert_sans.end(), prefix + w) != cert_sans.end()) return true;
    return false;
  };
  if (has("DNS:", t.san_dns) || has("URI:", t.san_uri) || has("email:", t.san_email) || has("IP:", t.san_ip)) return c;
  return refused();
}

Result<void> check_grant(const ClientPolicy& client, std::string_view grant) {
  const std::string urn = grant_type(grant);
  if (urn.empty()) return oauth_fail(OAuthCode::unsupported_grant_type, "grant type '" + std::string(grant) + "' is not supported");
  const std::vector<std::string> defaults = {k_grant_client_credentials, k_grant_refresh_token};
  const auto& allowed = client.grants ? *client.grants : defaults;
  if (std::find(allowed.begin(), allowed.end(), urn) == allowed.end()) {
    return oauth_fail(OAuthCode::unauthorized_client, "client '" + client.id + "' may not use the " + urn + " grant");
  }
  return {};
}

// ---- reading clients: from the policy ------------------------------------------------------------

namespace detail {

std::optional<jose::JwkSet> read_public_jwks(Reader& r, const YAML::Node& x, const std::string& what,
                                             const std::string& policy_path) {
  // A JWKS inline, or the path of a JWKS file (relative to the policy file).
  Result<nlohmann::json> doc = fail(ErrorCode::malformed, "");
  std::string source = what;
  if (x.IsMap()) {
    doc = r.to_json(x);
  } else if (auto file = r.text(x, what)) {
    std::string resolved = relative_to(policy_path, *file);
    source += " '" + resolved + "'";
    auto text = read_input(resolved);
    doc = text ? jose::parse_json_object(*text, "the JWKS") : std::unexpected(text.error());
  }
  if (!doc && !doc.error().message.empty()) r.problem(x, source + ": " + doc.error().message);
  if (!doc) return std::nullopt;
  auto set = jose::parse_jwks(*doc);
  if (!set) {
    r.problem(x, source + ": " + set.error().message);
  } else if (set->keys.empty()) {
    r.problem(x, source + " has no usable key");
  } else if (std::any_of(set->keys.begin(), set->keys.end(), [](const jose::Jwk& k) { return k.has_private(); })) {
    r.problem(x, source + " holds a private or secret key: give the public keys only");
  } else {
    // Assertions are verified with the algorithm each key pins or implies (an EC or Ed key's one
    // alg): a key that pins none (RSA without "alg") could never verify one, so it is refused
    // here rather than left out of the verifier without a word.
    bool usable = true;
    for (std::size_t i = 0; i < set->keys.size(); ++i) {
      const jose::Jwk& k = set->keys[i];
      const std::string name = "key " + std::to_string(i) + (k.kid().empty() ? std::string() : " (kid '" + k.kid() + "')");
      if (!k.alg().empty()) {
        if (!jose::alg_from_string(k.alg())) {
          r.problem(x, source + ": " + name + " has alg '" + k.alg() + "', not a JWS signature algorithm (" +
                           jose::supported_alg_names() + ")");
          usable = false;
        }
      } else if (!jose::implied_jws_alg(k)) {
        r.problem(x, source + ": " + name + ", the " + k.describe() +
                         ", pins no algorithm: add \"alg\" to it (e.g. \"RS256\" or \"PS256\" for RSA); an "
                         "algorithm is required when the key does not imply one");
        usable = false;
      }
    }
    if (usable) return std::move(*set);
  }
  return std::nullopt;
}

void read_client(Reader& r, const std::string& id, const YAML::Node& n, const std::string& policy_path,
                 ClientPolicy& c) {
  c.id = id;
  const std::string what = "client '" + c.id + "'";
  if (!r.mapping(n, what, {"secret_hash", "token_endpoint_auth_method", "grants", "scopes", "audiences", "format",
                           "sector", "jwks", "tls_client_auth", "tls_client_certificate_bound_access_tokens",
                           "dpop_bound_access_tokens"})) {
    return;
  }
  if (auto x = n["secret_hash"]) {
    c.secret_hash = r.string(x, what + ".secret_hash").value_or("");
    if (!c.secret_hash.empty() && !valid_secret_hash(c.secret_hash)) {
      r.problem(x, what + ".secret_hash must be sha256:<64 hex digits> or pbkdf2-sha256:<iterations " +
                       std::to_string(k_pbkdf2_min_iterations) + " to " + std::to_string(k_pbkdf2_max_iterations) +
                       ">:<salt>:<hash> (tokctl clients add writes one)");
    }
  }
  if (auto x = n["grants"]) {
    auto& grants = c.grants.emplace();  // given, even empty: exactly these
    for (const auto& g : r.strings(x, what + ".grants")) {
      std::string urn = grant_type(g);
      if (urn.empty()) {
        r.problem(x, what + ".grants: '" + g + "' is not one of client_credentials, refresh_token, token_exchange, jwt_bearer");
      } else if (std::find(grants.begin(), grants.end(), urn) == grants.end()) {
        grants.push_back(urn);
      }
    }
  }
  if (auto x = n["scopes"]) c.scopes = r.strings(x, what + ".scopes");
  if (auto x = n["audiences"]) {
    c.audiences = r.strings(x, what + ".audiences");
    if (x.IsSequence() && x.size() == 0) {
      r.problem(x, what + ".audiences is empty: leave it out (tokens get the issuer as aud) or list them");
    }
    for (const auto& a : c.audiences)
      if (a.empty()) r.problem(x, what + ".audiences has an empty audience");
  }
  if (auto x = n["format"]) {
    c.format = r.string(x, what + ".format").value_or("");
    if (!c.format.empty() && !one_of(c.format, {"jwt", "opaque", "wrapped", "jwe"})) {
      r.problem(x, what + ".format '" + c.format + "' is not one of jwt, opaque, wrapped, jwe");
    }
  }
  if (auto x = n["sector"]) c.sector = r.text(x, what + ".sector").value_or("");
  if (auto x = n["tls_client_certificate_bound_access_tokens"]) {
    c.certificate_bound = r.boolean(x, what + ".tls_client_certificate_bound_access_tokens").value_or(false);
  }
  if (auto x = n["dpop_bound_access_tokens"]) {
    c.dpop_bound = r.boolean(x, what + ".dpop_bound_access_tokens").value_or(false);
  }
  if (auto x = n["jwks"]) c.jwks = read_public_jwks(r, x, what + ".jwks", policy_path);
  if (auto x = n["tls_client_auth"]) {
    const std::string tw = what + ".tls_client_auth";
    if (r.mapping(x, tw, {"subject_dn", "san_dns", "san_uri", "san_email", "san_ip"})) {
      if (auto s = x["subject_dn"]) c.tls.subject_dn = r.text(s, tw + ".subject_dn").value_or("");
      if (auto s = x["san_dns"]) c.tls.san_dns = r.strings(s, tw + ".san_dns");
      if (auto s = x["san_uri"]) c.tls.san_uri = r.strings(s, tw + ".san_uri");
      if (auto s = x["san_email"]) c.tls.san_email = r.strings(s, tw + ".san_email");
      if (auto s = x["san_ip"]) c.tls.san_ip = r.strings(s, tw + ".san_ip");
      if (c.tls.empty()) r.problem(x, tw + " names no subject_dn or SAN to match");
    }
  }
  if (auto x = n["token_endpoint_auth_method"]) {
    c.auth_method = r.string(x, what + ".token_endpoint_auth_method").value_or("");
    const std::string& m = c.auth_method;
    if (std::none_of(std::begin(k_auth_methods), std::end(k_auth_methods), [&](const char* a) { return m == a; })) {
      r.problem(x, what + ".token_endpoint_auth_method '" + m +
                       "' is not one of client_secret_basic, client_secret_post, private_key_jwt, tls_client_auth, none");
    } else if (m.starts_with("client_secret_") && c.secret_hash.empty()) {
      r.problem(x, what + " uses " + m + " but has no secret_hash");
    } else if (m == "private_key_jwt" && !c.jwks) {
      r.problem(x, what + " uses private_key_jwt but has no jwks");
    } else if (m == "tls_client_auth" && c.tls.empty()) {
      r.problem(x, what + " uses tls_client_auth but has no tls_client_auth subject or SAN");
    } else if (m == "none" && !c.secret_hash.empty()) {
      r.problem(x, what + " uses none but has a secret_hash");
    }
  }
}

}  // namespace detail

// ---- adding a client to a policy file ------------------------------------------------------------

namespace {

std::string flow_entry(const std::string& id, const NewClient& c, const std::string& secret_hash) {
  YAML::Emitter key;
  key << id;
  YAML::Emitter e;
  e << YAML::Flow << YAML::BeginMap << YAML::Key << "secret_hash" << YAML::Value << YAML::DoubleQuoted << secret_hash;
  auto list = [&](const char* name, const std::vector<std::string>& v) {
    if (v.empty()) return;
    e << YAML::Key << name << YAML::Value << YAML::Flow << YAML::BeginSeq;
    for (const auto& s : v) e << YAML::DoubleQuoted << s;  // "7" stays text when read back
    e << YAML::EndSeq;
  };
  if (c.grants.size() == 1 && c.grants.front() == "none") {
    e << YAML::Key << "grants" << YAML::Value << YAML::Flow << YAML::BeginSeq << YAML::EndSeq;  // no grant at all
  } else {
    list("grants", c.grants);
  }
  list("scopes", c.scopes);
  list("audiences", c.audiences);
  if (!c.format.empty()) e << YAML::Key << "format" << YAML::Value << c.format;
  if (!c.sector.empty()) e << YAML::Key << "sector" << YAML::Value << YAML::DoubleQuoted << c.sector;
  if (c.certificate_bound) e << YAML::Key << "tls_client_certificate_bound_access_tokens" << YAML::Value << true;
  if (c.dpop_bound) e << YAML::Key << "dpop_bound_access_tokens" << YAML::Value << true;
  e << YAML::EndMap;
  return std::string(key.c_str()) + ": " + e.c_str();
}

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string l; std::getline(in, l);) lines.push_back(l);
  return lines;
}

// `text` with `entry` added under the top-level clients: mapping (created at the end if absent).
Result<std::string> insert_client(const std::string& path, const std::string& text, const std::string& id,
                                  const std::string& entry) {
  YAML::Node root;
  try {
    root = YAML::Load(text);
  } catch (const YAML::Exception& e) {
    return fail(ErrorCode::malformed, path + ":" + std::to_string(e.mark.line + 1) + ": " + e.msg);
  }
  std::string out = text;
  if (!out.empty() && out.back() != '\n') out += '\n';
  if (!root.IsNull() && !root.IsMap()) return fail(ErrorCode::malformed, path + ": the policy must be a mapping");
  if (root.IsNull() || !root["clients"]) return out + "clients:\n  " + entry + "\n";
  for (const auto& kv : root) {
    if (kv.first.Scalar() != "clients") continue;
    const YAML::Node& v = kv.second;
    const int key_line = kv.first.Mark().line;
    std::string indent = "  ";
    if (v.IsMap() && v[id]) return fail(ErrorCode::usage, "client '" + id + "' already exists in " + path);
    if (v.IsMap() && v.size() > 0) {
      const YAML::Mark first = v.begin()->first.Mark();
      if (first.line == key_line) {
        return fail(ErrorCode::usage, path + ": clients is written inline ({...}); write it as a block mapping to add clients");
      }
      indent = std::string(static_cast<std::size_t>(first.column), ' ');
    } else if (!v.IsNull()) {
      return fail(ErrorCode::usage, path + ":" + std::to_string(key_line + 1) +
                                        ": clients is not a block mapping; write it as one to add clients");
    }
    auto lines = lines_of(out);
    if (key_line < 0 || static_cast<std::size_t>(key_line) >= lines.size()) {
      return fail(ErrorCode::malformed, path + ": cannot locate clients:");
    }
    // An empty `clients:` with trailing text on its line (e.g. "clients: ~") becomes a mapping.
    std::string& head = lines[static_cast<std::size_t>(key_line)];
    if (v.IsNull()) head = head.substr(0, head.find(':') + 1);
    lines.insert(lines.begin() + key_line + 1, indent + entry);
    std::string joined;
    for (const auto& l : lines) joined += l + "\n";
    return joined;
  }
  return fail(ErrorCode::malformed, path + ": cannot locate clients:");
}

// The file a policy path names. A symlinked policy (say a managed /etc/tokctl.yaml) is updated
// where it lives, under that directory's lock: a rename over the link would leave the real file,
// the one a server reads, without the new client, and writers through the link and through the
// real path would not exclude each other.
Result<std::string> policy_target(const std::string& path) {
  struct stat st{};
  if (::lstat(path.c_str(), &st) != 0 || !S_ISLNK(st.st_mode)) return path;
  char* real = ::realpath(path.c_str(), nullptr);
  if (!real) {
    return fail(ErrorCode::usage, "cannot follow the symbolic link '" + path + "': " + std::strerror(errno),
                "point it at an existing policy file, or name the file itself");
  }
  std::string target(real);
  std::free(real);
  return target;
}

}  // namespace

Result<AddedClient> add_client(const std::string& given_path, const NewClient& nc) {
  auto target = policy_target(given_path);
  if (!target) return std::unexpected(target.error());
  const std::string& path = *target;
  if (nc.id.empty()) return fail(ErrorCode::usage, "the client id is empty");
  // An id is matched byte for byte against what a client sends and written as a YAML key: spaces and
  // controls of any kind (Unicode's too: no-break and zero-width spaces, line separators, C1
  // controls, bidi overrides, a BOM) would make ids that look alike and are not, or that a terminal
  // shows as something else.
  if (nc.id.size() > 255) {
    return fail(ErrorCode::usage, "the client id is " + std::to_string(nc.id.size()) + " bytes; at most 255");
  }
  for (std::size_t i = 0; i < nc.id.size();) {
    const auto ch = static_cast<unsigned char>(nc.id[i]);
    unsigned cp = ch;
    std::size_t n = ch < 0x80 ? 1 : utf8_sequence(nc.id, i, cp);
    if (n == 0) return fail(ErrorCode::usage, "the client id is not UTF-8 text");
    const bool space_or_control = cp < 0x21 || (cp >= 0x7f && cp <= 0xa0) || cp == 0x1680 ||
                                  (cp >= 0x2000 && cp <= 0x200f) || (cp >= 0x2028 && cp <= 0x202f) ||
                                  (cp >= 0x205f && cp <= 0x206f) || cp == 0x3000 || cp == 0xfeff;
    if (space_or_control) return fail(ErrorCode::usage, "the client id may not contain spaces or control characters");
    i += n;
  }
  NewClient c = nc;
  const bool no_grants = std::find(c.grants.begin(), c.grants.end(), "none") != c.grants.end();
  if (no_grants && std::any_of(c.grants.begin(), c.grants.end(), [](const std::string& g) { return g != "none"; })) {
    return fail(ErrorCode::usage, "grant 'none' cannot be combined with other grants");
  }
  if (no_grants) c.grants = {"none"};
  for (auto& g : c.grants) {
    if (no_grants) break;
    std::string urn = grant_type(g);
    if (urn.empty()) {
      return fail(ErrorCode::usage, "unknown grant '" + g + "'", "use client_credentials, refresh_token, token_exchange or jwt_bearer");
    }
    g = urn;
  }
  // A grant named twice (or by its short name and its URN) is written once.
  for (auto it = c.grants.begin(); it != c.grants.end();) {
    it = std::find(c.grants.begin(), it, *it) != it ? c.grants.erase(it) : std::next(it);
  }
  AddedClient added{c.id, c.secret, c.secret.empty()};
  std::string hash;
  if (added.generated) {
    added.secret = generate_client_secret();
    hash = hash_generated_secret(added.secret);
  } else {
    auto h = hash_human_secret(c.secret, c.iterations);
    if (!h) return std::unexpected(h.error());
    hash = std::move(*h);
  }

  // One writer at a time; readers see the old or the new file (rename).
  auto slash = path.find_last_of('/');
  const std::string dir = slash == std::string::npos ? "." : path.substr(0, slash);
  const std::string base = slash == std::string::npos ? path : path.substr(slash + 1);
  auto lock = FileLock::acquire(dir + "/." + base + ".lock");
  if (!lock) return std::unexpected(lock.error());

  std::string text;
  unsigned mode = 0600;
  struct stat st{};
  if (::stat(path.c_str(), &st) == 0) {
    auto existing = read_input(path);
    if (!existing) return std::unexpected(existing.error());
    text = std::move(*existing);
    mode = st.st_mode & 0777;
  } else if (errno != ENOENT) {
    return fail(ErrorCode::usage, "cannot read '" + path + "': " + std::strerror(errno));
  }
  auto updated = insert_client(path, text, c.id, flow_entry(c.id, c, hash));
  if (!updated) return std::unexpected(updated.error());

  // The whole new policy must be valid (and hold the client) before it replaces the old one.
  const std::string probe = dir + "/." + base + ".new." + std::to_string(::getpid());
  if (auto w = write_file_atomic(probe, *updated, 0600); !w) return std::unexpected(w.error());
  PolicyCheck check = check_policy(probe);
  ::unlink(probe.c_str());
  if (!check.problems.empty() || !check.policy.client(c.id)) {
    std::string all;
    for (auto p : check.problems) {
      if (p.starts_with(probe)) p = path + p.substr(probe.size());
      all += (all.empty() ? "" : "\n") + p;
    }
    return fail(ErrorCode::usage, "the policy would not be valid with client '" + c.id + "'" +
                                      (all.empty() ? "" : ":\n" + all),
                "nothing was written; fix the client's settings (or the policy) and run again");
  }
  if (auto w = write_file_atomic(path, *updated, mode); !w) return std::unexpected(w.error());
  return added;
}

}  // namespace tokctl::tokens
