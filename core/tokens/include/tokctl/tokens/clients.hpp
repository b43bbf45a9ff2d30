#pragma once
// The client model of the token service: secret hashing and checking, grant types, and adding a
// client to a policy file (`tokctl clients add`). Clients themselves are ClientPolicy entries of
// the policy (tokctl/tokens/policy.hpp).

#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <tokctl/tokens/policy.hpp>
#include <tokctl/util/error.hpp>

namespace tokctl::tokens {

inline constexpr const char* k_grant_client_credentials = "client_credentials";
inline constexpr const char* k_grant_refresh_token = "refresh_token";
inline constexpr const char* k_grant_token_exchange = "urn:ietf:params:oauth:grant-type:token-exchange";
inline constexpr const char* k_grant_jwt_bearer = "urn:ietf:params:oauth:grant-type:jwt-bearer";

/// The grant type URN for a policy/CLI name: the URN itself, or the short names token_exchange /
/// token-exchange and jwt_bearer / jwt-bearer. Empty for an unknown name.
std::string grant_type(std::string_view name);

/// PBKDF2-HMAC-SHA256 iterations for human-chosen secrets (OWASP 2023 recommendation).
inline constexpr int k_pbkdf2_iterations = 600000;
/// The fewest iterations a policy may carry (below this a hash is refused as too weak).
inline constexpr int k_pbkdf2_min_iterations = 1000;
/// The most a hash may ask for: every failed authentication pays the policy's largest count, so a
/// count in the billions (minutes of CPU per attempt) would let anyone stall the server.
inline constexpr int k_pbkdf2_max_iterations = 10'000'000;

/// A new client secret: 32 random bytes, base64url (43 characters).
std::string generate_client_secret();
/// "sha256:<64 hex>": for generated secrets, whose entropy makes a slow hash pointless.
std::string hash_generated_secret(std::string_view secret);
/// "pbkdf2-sha256:<iterations>:<salt>:<hash>" with a random 16-byte salt: for secrets people
/// choose. Fails (ErrorCode::usage) below k_pbkdf2_min_iterations.
Result<std::string> hash_human_secret(std::string_view secret, int iterations = k_pbkdf2_iterations);
/// True when `stored` is a well-formed hash in one of the two formats (see ClientPolicy).
bool valid_secret_hash(std::string_view stored);
/// True when `secret` matches `stored`; the comparison is constant-time, and a malformed hash
/// matches nothing.
bool secret_matches(std::string_view stored, std::string_view secret);

/// client_secret_basic / client_secret_post: the client when it exists, has a secret and `secret`
/// matches it. Every failure is the same OAuthCode::invalid_client refusal ("client
/// authentication failed") at the same cost (see SecretAuthenticator), so neither the answer nor
/// its timing tells which clients exist.
Result<const ClientPolicy*> authenticate_client(const Policy& policy, std::string_view client_id,
                                                std::string_view secret);

/// client_secret_basic / client_secret_post for a server, over one policy (which must outlive it).
///
/// The cost model: a generated secret (32 random bytes, "sha256:" hash) is checked with one
/// SHA-256; a human-chosen one ("pbkdf2-sha256:") with its PBKDF2. Every *failed* authentication
/// costs the same, whether the client exists, has a secret, has a generated or a human secret: one
/// SHA-256 plus PBKDF2-HMAC-SHA256 with the largest iteration count of the policy (a known
/// client's own PBKDF2 is topped up to it; the others run it against a dummy record). So when the
/// policy holds a PBKDF2 hash, authenticate() may take that long (slow() is true): a server runs
/// it off its I/O threads. authenticate_fast() never runs a KDF: it decides the successes it can
/// (a matching generated secret; a human secret verified before, from a cache of HMAC-SHA256 digests
/// of (hash, secret) under a random per-process key, compared in constant time, one entry per
/// client, never persisted) and leaves everything else to authenticate().
class SecretAuthenticator {
 public:
  explicit SecretAuthenticator(const Policy& policy);

  /// The client when `secret` is proven right without a KDF; nullopt otherwise (not a refusal:
  /// call authenticate()).
  std::optional<const ClientPolicy*> authenticate_fast(std::string_view client_id, std::string_view secret) const;
  /// As authenticate_client(), at the cost described above; a PBKDF2 success is cached.
  Result<const ClientPolicy*> authenticate(std::string_view client_id, std::string_view secret) const;
  /// Whether authenticate() may run a KDF (the policy holds at least one PBKDF2 hash).
  bool slow() const { return m_max_iterations > 0; }
  /// The PBKDF2 iterations every failure pays (0 when the policy has no PBKDF2 hash).
  int failure_iterations() const { return m_max_iterations; }

 private:
  std::string cache_digest(const ClientPolicy& client, std::string_view secret) const;

  const Policy& m_policy;
  int m_max_iterations = 0;
  std::string m_cache_key;
  mutable std::mutex m_cache_mutex;
  mutable std::map<std::string, std::string, std::less<>> m_verified;  ///< client id -> cache_digest
};

/// tls_client_auth (RFC 8705 §2.1.2): the client when it has a tls_client_auth setting that the
/// verified client certificate matches: the subject DN (RFC 4514 string, compared exactly) or one
/// configured subjectAltName among `sans` ("DNS:x", "URI:x", "email:x", "IP:x"). Every failure is
/// the same invalid_client refusal.
Result<const ClientPolicy*> authenticate_tls_client(const Policy& policy, std::string_view client_id,
                                                    std::string_view cert_subject,
                                                    const std::vector<std::string>& cert_sans);

/// OAuthCode::unauthorized_client unless `client` may use `grant` (a URN or short name).
Result<void> check_grant(const ClientPolicy& client, std::string_view grant);

/// What `tokctl clients add` writes.
struct NewClient {
  std::string id;
  /// Empty: the default (client_credentials, refresh_token); {"none"}: no grant (`grants: []`).
  std::vector<std::string> grants;
  std::vector<std::string> scopes;
  std::vector<std::string> audiences;
  std::string format;
  std::string sector;
  bool certificate_bound = false;      ///< tls_client_certificate_bound_access_tokens (RFC 8705)
  bool dpop_bound = false;             ///< dpop_bound_access_tokens (RFC 9449)
  std::string secret;                  ///< empty: a generated one; else a human secret (PBKDF2)
  int iterations = k_pbkdf2_iterations;
};

struct AddedClient {
  std::string id;
  std::string secret;  ///< the only copy of the secret in clear: print it once
  bool generated = false;
};

/// Adds a client to the policy file at `path` (created when missing): its entry is inserted under
/// `clients:` as one line, the rest of the file (comments included) is kept byte for byte, and
/// the result is validated as a whole before it atomically replaces the file (a lock serialises
/// concurrent adds). Refusals: the client exists, a name, grant or scope the policy refuses
/// (ErrorCode::usage, with every problem); the file is unreadable or malformed (its own code).
Result<AddedClient> add_client(const std::string& path, const NewClient& client);

}  // namespace tokctl::tokens
