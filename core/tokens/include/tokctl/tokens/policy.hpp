#pragma once
// The policy file (tokctl.yaml): issuer, token formats and lifetimes, scopes, claims, subjects,
// clients and exchange rules. Schema in DESIGN.md; unknown keys are errors with file:line:column.

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include <tokctl/jose/jwk.hpp>
#include <tokctl/util/error.hpp>

namespace tokctl::tokens {

struct TokenKindPolicy {
  std::string format;     ///< access: jwt | opaque | wrapped | jwe; refresh: opaque; id: jwt
  std::int64_t ttl = 0;   ///< seconds
  bool rotate = false;    ///< refresh: a used refresh token is replaced (reuse revokes the grant)
};

struct ScopeRule {
  std::string name;                 ///< exact scope, or empty for a prefix rule
  std::string prefix;               ///< any scope starting with this (e.g. "video_stream_")
  std::optional<std::int64_t> ttl;  ///< dropped from tokens issued more than ttl after the grant began
  nlohmann::json claims = nlohmann::json::object();  ///< added when the scope is granted

  /// True when `scope` is covered by this rule.
  bool matches(std::string_view scope) const;
};

/// RFC 8705 §2.1.2: the certificate a tls_client_auth client presents must match one of these.
struct TlsClientAuth {
  std::string subject_dn;              ///< RFC 4514 string, e.g. "CN=svc,O=Example"
  std::vector<std::string> san_dns, san_uri, san_email, san_ip;
  bool empty() const {
    return subject_dn.empty() && san_dns.empty() && san_uri.empty() && san_email.empty() && san_ip.empty();
  }
};

/// A client of the token service (tokctl/tokens/clients.hpp authenticates them).
struct ClientPolicy {
  std::string id;
  /// "sha256:<64 hex>" for a generated secret (high entropy: one hash suffices), or
  /// "pbkdf2-sha256:<iterations>:<salt b64url>:<hash b64url>" for a human-chosen one.
  std::string secret_hash;
  /// RFC 7591 token_endpoint_auth_method: client_secret_basic, client_secret_post,
  /// private_key_jwt, tls_client_auth or none. Empty: implied by what is configured.
  std::string auth_method;
  /// Grant types the client may use at the token endpoint (client_credentials, refresh_token and
  /// the token-exchange and jwt-bearer URNs). Absent: client_credentials and refresh_token; an
  /// empty list: none (a gateway or API that only introspects).
  std::optional<std::vector<std::string>> grants;
  std::vector<std::string> scopes;     ///< allowed scopes (exact names or prefix rules' prefixes)
  std::vector<std::string> audiences;  ///< allowed audiences; the first is the default
  std::string format;                  ///< overrides tokens.access.format
  std::string sector;                  ///< pairwise subject (PPID) sector identifier
  std::optional<jose::JwkSet> jwks;    ///< public keys for private_key_jwt (inline or a file)
  TlsClientAuth tls;                   ///< for tls_client_auth
  /// RFC 8705 §3.4 tls_client_certificate_bound_access_tokens: its access tokens from the token
  /// endpoint are bound to the TLS client certificate it connects with (cnf.x5t#S256), and it
  /// must connect with one.
  bool certificate_bound = false;
  /// RFC 9449 §5.2 dpop_bound_access_tokens: its token requests must carry a DPoP proof (every
  /// client's access tokens are bound to the proof's key when one comes, cnf.jkt).
  bool dpop_bound = false;
};

struct ExchangeRule {
  std::string from;                 ///< subject token audience
  std::vector<std::string> to;      ///< allowed target audiences
  std::vector<std::string> scopes;  ///< at most these (and a subset of the subject token's)
  std::vector<std::string> modes;   ///< delegate | impersonate | embed
};

/// An issuer whose JWT assertions the jwt-bearer grant accepts (RFC 7523 §2.1, §3).
struct AssertionIssuer {
  std::string issuer;  ///< the assertion's iss
  jose::JwkSet jwks;   ///< its public keys
};

/// A server of remote mode (`profiles:` in the policy), what `--profile NAME` selects. The client
/// secret never sits in the file itself: a file holding it, or an environment variable naming it.
/// File paths are resolved against the policy file's directory.
struct RemoteProfile {
  std::string name;
  std::string server;  ///< the issuer URL, for discovery
  std::string client_id;
  std::string client_secret_file;
  std::string client_secret_env;
  std::string auth_method;  ///< an RFC 8414 name; "" = chosen from what is given
  std::string client_key;   ///< private_key_jwt signing key file ("" = the keystore's active key)
  std::string cert;         ///< client certificate (tls_client_auth, mTLS)
  std::string key;          ///< its private key
  std::string cacert;       ///< CA bundle for the server's certificate
  std::string token_endpoint, introspection_endpoint, revocation_endpoint, jwks_uri;
};

struct Policy {
  std::string issuer = "https://tokctl.local";
  std::string keystore;  ///< empty: not set (absolute, or relative to the policy file)
  std::string store;     ///< empty: sqlite:<keystore>/tokens.db
  TokenKindPolicy access{"jwt", 15 * 60, false};
  TokenKindPolicy refresh{"opaque", 30 * 86400, true};
  TokenKindPolicy id{"jwt", 15 * 60, false};
  std::string opaque_prefix;
  std::string signing_alg;  ///< tokens.signing_alg: whose active key signs ("": the one active signing key)
  std::string jwe_recipient;              ///< public key file that format jwe encrypts to
  std::int64_t max_lifetime = 24 * 3600;  ///< the longest any token lives; keys prune uses it
  std::vector<std::string> wrapper_claims;  ///< non-sensitive claims copied into wrapped tokens
  std::vector<ScopeRule> scopes;
  nlohmann::json claims = nlohmann::json::object();  ///< added to every access token (templates)
  std::string subjects_file;
  std::map<std::string, nlohmann::json> subjects;  ///< sub -> attributes
  std::map<std::string, ClientPolicy> clients;
  std::vector<ExchangeRule> exchange;
  std::vector<AssertionIssuer> assertion_issuers;
  std::map<std::string, RemoteProfile> profiles;
  std::string source;  ///< the file it came from (empty: built-in defaults)

  /// The scope rule covering `scope`, or nullptr: of several, the most specific (a name rule, else
  /// the longest prefix). With no scopes configured every scope is unknown.
  const ScopeRule* scope_rule(std::string_view scope) const;
  /// Whether a list of allowed scopes (a client's, an exchange rule's) names `scope`: by its name,
  /// or by the prefix of any prefix rule covering it ("video_" allows "video_hd"). An empty list
  /// names nothing; callers decide what no list means.
  bool scope_listed(const std::vector<std::string>& allowed, std::string_view scope) const;
  const ClientPolicy* client(std::string_view id) const;
};

/// Every problem in a policy file, each "file:line:column: message".
struct PolicyCheck {
  Policy policy;
  std::vector<std::string> problems;
};

/// Reads and validates `path` ("" gives the defaults), collecting every problem.
PolicyCheck check_policy(const std::string& path);

/// check_policy that fails (ErrorCode::malformed, all problems in the message) unless clean.
Result<Policy> load_policy(const std::string& path);

}  // namespace tokctl::tokens
