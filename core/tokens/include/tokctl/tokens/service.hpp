#pragma once
// The token service: issue, introspect, revoke, split and exchange tokens, on the keystore (signing
// keys), the token store and the policy. The CLI calls it directly; `tokctl serve` puts HTTP on it.

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include <tokctl/keys/key_ring.hpp>
#include <tokctl/keys/keystore.hpp>
#include <tokctl/tokens/policy.hpp>
#include <tokctl/tokens/token_store.hpp>
#include <tokctl/util/time.hpp>

namespace tokctl::tokens {

/// RFC 8693 token type URNs.
inline constexpr const char* k_urn_access_token = "urn:ietf:params:oauth:token-type:access_token";
inline constexpr const char* k_urn_refresh_token = "urn:ietf:params:oauth:token-type:refresh_token";
inline constexpr const char* k_urn_id_token = "urn:ietf:params:oauth:token-type:id_token";
inline constexpr const char* k_urn_jwt = "urn:ietf:params:oauth:token-type:jwt";

struct IssueRequest {
  std::string type = "access";           ///< access | refresh | id
  std::string format;                    ///< jwt | opaque | wrapped | jwe; empty: client's, else policy's
  std::string client_id;
  std::string sub;
  std::vector<std::string> aud;          ///< empty: the client's first audience, if any
  std::string scope;                     ///< space-separated
  std::optional<std::int64_t> ttl;       ///< empty: the policy's ttl for the type
  nlohmann::json claims = nlohmann::json::object();  ///< extra claims (--claim/--claims)
  bool with_refresh = false;
  bool with_id_token = false;
  std::string grant_id;                  ///< continue this grant (refresh); empty: a new grant
  /// RFC 8705 §3: an access token bound to the client certificate with this x5t#S256 thumbprint
  /// (claim cnf); empty: not bound.
  std::string cnf_x5t;
  /// RFC 9449 §6.1: an access token bound to the DPoP key with this JWK SHA-256 thumbprint (claim
  /// cnf.jkt; the token type is then DPoP); empty: not bound.
  std::string cnf_jkt;
};

struct IssuedToken {
  std::string token;
  std::string kind;    ///< access | refresh | id
  std::string format;  ///< jwt | opaque | wrapped | jwe
  std::int64_t expires_in = 0;
  std::string scope;   ///< scopes actually granted (after TTL filtering)
  std::string jti;
  bool dpop = false;   ///< bound to a DPoP key (RFC 9449 §5: token_type DPoP)
};

struct IssueResponse {
  IssuedToken access;  ///< the requested token (kind may be refresh or id for --type)
  std::optional<IssuedToken> refresh;
  std::optional<IssuedToken> id_token;
  std::vector<std::string> expired_scope;  ///< requested scopes dropped because their TTL passed
  std::string grant_id;

  /// RFC 6749 §5.1 token response (+ issued_token_type, RFC 8693).
  nlohmann::json to_json() const;
};

struct ExchangeRequest {
  std::string subject_token;
  std::string subject_token_type = k_urn_access_token;
  std::string actor_token;
  std::string actor_token_type = k_urn_access_token;
  std::vector<std::string> audience;
  std::vector<std::string> resource;
  std::string scope;
  std::string requested_token_type = k_urn_access_token;
  std::string mode = "delegate";  ///< delegate | impersonate | embed
  /// The authenticated client asking for the exchange (the token endpoint). The new token is its
  /// token: client_id (RFC 9068 §2.2), stored, introspected and revocable as its; without an actor
  /// token it is also the acting party, act.sub (RFC 8693 §4.1). Empty (`tokctl exchange` on the
  /// keystore, where no client asks): the subject token's client, as before.
  std::string client_id;
  std::string cnf_x5t;  ///< RFC 8705 §3: bind the new token to this certificate (see IssueRequest)
  std::string cnf_jkt;  ///< RFC 9449 §6.1: bind the new token to this DPoP key (see IssueRequest)
};

/// RFC 6749 §6: a new access token from a refresh token.
struct RefreshRequest {
  std::string refresh_token;
  std::string client_id;  ///< the client redeeming it; empty: the token's own client (CLI)
  std::string scope;      ///< empty: the grant's scopes; otherwise a subset of them
  std::string cnf_x5t;    ///< RFC 8705 §3: bind the new access token to this certificate
  std::string cnf_jkt;    ///< RFC 9449 §6.1: bind the new access token to this DPoP key
};

struct SplitResult {
  std::string client_token;   ///< the JWT's signature segment
  std::string gateway_key;    ///< base64(SHA-256(client_token))
  std::string gateway_token;  ///< header.payload
};

/// Every method is const and safe to call from many threads at once: the policy is an immutable
/// snapshot, keys come from a KeyProvider (a new key ring as soon as keystore.json changes: a
/// rotation is picked up within its check interval, without a restart), and the store synchronises
/// itself.
/// Background pruning so far (TokenService::prune_every).
struct PruneStatus {
  std::uint64_t runs = 0;
  std::int64_t deleted = 0;           ///< rows deleted by all runs
  std::optional<Error> last_error;    ///< of the last run, if it failed
};

class TokenService {
 public:
  /// Opens the store (policy.store, else sqlite:<keystore>/tokens.db) and, when a client has a
  /// sector, the keystore's pairwise-subject secret (created if missing). Fails with
  /// ErrorCode::keystore (store/keystore) or ErrorCode::malformed (a bad jwe_recipient key).
  static Result<std::unique_ptr<TokenService>> open(std::shared_ptr<const Policy> policy,
                                                    std::shared_ptr<const keys::KeyProvider> keys,
                                                    const Clock& clock);
  /// open() with a KeyProvider over `keystore` checking it every keys::k_default_check_interval.
  static Result<std::unique_ptr<TokenService>> open(Policy policy, keys::Keystore keystore,
                                                    const Clock& clock, keys::Passphrase passphrase);

  /// Issues one token (plus refresh/id tokens when asked). A refusal that OAuth defines
  /// (invalid_scope, invalid_client, invalid_target, ...) is ErrorCode::invalid_token with
  /// Error::oauth set and the error_description as the message.
  Result<IssueResponse> issue(const IssueRequest& request) const;
  /// issue() without waiting for the store: everything up to the write (checks, signing) runs
  /// on the calling thread, then `done` gets the answer once the store committed the tokens
  /// (TokenStore::put_async), possibly on another thread. `done` must not throw.
  void issue_async(const IssueRequest& request, std::function<void(Result<IssueResponse>)> done) const;

  /// `count` tokens for one request: issued together, they form one grant (one delegation), and
  /// are stored in one transaction.
  Result<std::vector<IssueResponse>> issue_many(const IssueRequest& request, int count) const;
  /// issue_many() without waiting for the store, as issue_async(): the tokens are made on the
  /// calling thread, and `done` gets them once committed, so the caller can make the next batch
  /// while this one is written. A request continuing a grant (grant_id) needs it committed first.
  void issue_many_async(const IssueRequest& request, int count,
                        std::function<void(Result<std::vector<IssueResponse>>)> done) const;

  /// Redeems a refresh token: a new access token in its grant, the grant's scope TTLs applying.
  /// With tokens.refresh.rotate the refresh token is consumed and a new one issued in the same
  /// transaction; presenting a consumed one again revokes the whole grant (reuse detection, RFC
  /// 9700 §4.14). Refusals: invalid_grant (unknown, expired, revoked, reused, another client's),
  /// invalid_scope (a scope beyond the grant's).
  Result<IssueResponse> refresh(const RefreshRequest& request) const;

  /// RFC 7662 response for an opaque, wrapped, refresh or locally issued JWT: {"active":false}
  /// for unknown, expired or revoked tokens.
  Result<nlohmann::json> introspect(std::string_view token) const;
  /// introspect() as the JSON text a server sends (invalid UTF-8 replaced). A stored token's answer
  /// is kept and sent again while its row is unchanged, until its exp or a scope's TTL ends; the
  /// row itself is looked up every time, so a revocation shows at once.
  Result<std::string> introspect_json(std::string_view token) const;

  /// What a phantom JWT's caller needs besides the JWT (one store lookup answers all).
  struct PhantomFacts {
    UnixTime exp = 0;     ///< the JWT's exp
    std::string cnf_x5t;  ///< the source token's RFC 8705 binding (cnf.x5t#S256), if any
    std::string cnf_jkt;  ///< its RFC 9449 binding (cnf.jkt), if any
  };
  /// The phantom JWT of an active token: signed by the keystore, carrying the token's data.
  /// Fails (ErrorCode::invalid_token) for an inactive token.
  Result<std::string> phantom_jwt(std::string_view token, PhantomFacts* facts = nullptr) const;

  /// `claims` signed with the active key (header kid and `typ`): the server's signed responses
  /// (RFC 9701 introspection). Fails with ErrorCode::keystore when there is no active key.
  Result<std::string> sign_jwt(const nlohmann::json& claims, const char* typ) const;

  /// RFC 7009: unknown tokens are not an error. Returns how many tokens changed.
  Result<int> revoke(std::string_view token, bool whole_grant) const;
  Result<int> revoke_client(std::string_view client_id) const;
  Result<int> revoke_subject(std::string_view sub) const;

  /// True when a JWT with these (verified) claims was revoked: its jti is on the deny-list or its
  /// grant (sid) was revoked. verify consults it when checking against the local keystore.
  Result<bool> jwt_revoked(const nlohmann::json& claims) const;

  /// Verification against keystore and store: a report whose signature verified gets a `revoked`
  /// problem when its jti is on the deny-list or its grant was revoked, and a `store_error`
  /// problem (never "valid") when the store cannot be read. Other reports are left as they are.
  void apply_revocation(jose::VerifyReport& report) const;

  /// Split Token pattern: store the gateway part keyed by SHA-256 of the client part (unless
  /// `store` is false) and return the parts. The JWT must verify against the keystore.
  Result<SplitResult> split(std::string_view jwt, bool store) const;
  /// The full JWT for a client part, or ErrorCode::invalid_token when unknown, expired or revoked.
  Result<std::string> join(std::string_view client_token) const;

  /// RFC 8693 token exchange under the policy's exchange rules.
  Result<IssueResponse> exchange(const ExchangeRequest& request) const;

  /// Deletes expired rows from the store.
  Result<std::int64_t> prune_store() const;

  /// Prunes the store every `interval` on a background thread (`tokctl serve`), besides explicit
  /// `store prune` runs; zero stops it. The thread stops when the service is destroyed.
  void prune_every(std::chrono::milliseconds interval);
  /// What background pruning did so far.
  PruneStatus prune_status() const;

  const Policy& policy() const;
  const keys::KeyProvider& keys() const;
  TokenService(const TokenService&) = delete;
  TokenService& operator=(const TokenService&) = delete;
  ~TokenService();

  struct Impl;

 private:
  explicit TokenService(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> m_impl;
};

/// Space-separated scopes, in order, without duplicates; and back.
std::vector<std::string> split_scopes(std::string_view scope);
std::string join_scopes(const std::vector<std::string>& scopes);

}  // namespace tokctl::tokens
