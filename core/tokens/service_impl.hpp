#pragma once
// Private to core/tokens: the token service's state and shared helpers.

#include <array>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <thread>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include <nlohmann/json.hpp>

#include <tokctl/jose/algorithm.hpp>
#include <tokctl/jose/jwt.hpp>
#include <tokctl/keys/key_ring.hpp>
#include <tokctl/tokens/service.hpp>
#include <tokctl/util/time.hpp>

namespace tokctl::tokens {

/// The client_id claim of tokens issued without a client (RFC 9068 requires one); such tokens
/// are stored with an empty client_id.
inline constexpr const char* k_cli_client_id = "tokctl";

/// Introspection answers (RFC 7662 JSON text) of stored tokens, by store key. An answer is a function
/// of its row's kind, claims and grant, of the policy and of the time: one is served only for the
/// same row and until its `fresh_until`. Whether the token is still active (not revoked, not
/// expired) is the store's lookup, made before every use.
class AnswerCache {
 public:
  std::optional<std::string> get(const TokenRecord& row, UnixTime now) const;
  void put(const TokenRecord& row, UnixTime fresh_until, std::string answer) const;

 private:
  struct Entry {
    std::string kind, claims, grant_id;
    UnixTime grant_started = 0;
    UnixTime fresh_until = 0;  // the last second the answer holds
    std::string answer;
  };
  struct Shard {
    std::mutex mu;
    std::unordered_map<std::string, Entry> rows;
  };
  static constexpr std::size_t k_shards = 16;
  static constexpr std::size_t k_rows_per_shard = 1024;  // a full shard starts over
  Shard& shard(const std::string& key) const;
  mutable std::array<Shard, k_shards> m_shards;
};

/// The service's state: immutable after open() (the key ring is swapped by the provider, the
/// store synchronises itself), so every method is safe to call from many threads at once.
struct TokenService::Impl {
  std::shared_ptr<const Policy> policy_ptr;
  const Policy& policy;
  std::shared_ptr<const keys::KeyProvider> keys;
  const Clock* clock;
  std::unique_ptr<TokenStore> store;
  std::optional<jose::Jwk> jwe_recipient;
  // The per-keystore pairwise-subject secret (keystore/ppid.secret), read at first use only (a
  // command that derives no pairwise subject never touches the file); set once found.
  mutable std::mutex ppid_mu;
  mutable std::optional<std::string> ppid_secret;  // guarded by ppid_mu

  AnswerCache answers;  // introspect_json()

  // Background pruning (prune_every): the thread, its wake-up, and what it did. Declared last so
  // the thread stops before the store it uses is destroyed.
  mutable std::mutex prune_mu;
  std::condition_variable_any prune_cv;
  PruneStatus prune_status;  // guarded by prune_mu
  std::jthread pruner;

  Impl(std::shared_ptr<const Policy> p, std::shared_ptr<const keys::KeyProvider> k, const Clock& c)
      : policy_ptr(std::move(p)), policy(*policy_ptr), keys(std::move(k)), clock(&c) {}

  UnixTime now() const { return clock->now(); }
  /// The current key ring (reloaded when keystore.json changed).
  Result<std::shared_ptr<const keys::KeyRing>> ring() const;
  /// Signs a claims set with the ring's active key (kid header set).
  static Result<std::string> sign(const keys::KeyRing& ring, const nlohmann::json& claims, const char* typ);
  /// The ring's signer; its failure tagged ErrorDetail::signing_keys (not a store failure).
  static Result<const jose::Signer*> signer(const keys::KeyRing& ring);
  /// Verifies a JWT against the keystore (signature, exp/nbf with the default leeway).
  Result<jose::VerifyReport> verify_jwt(std::string_view jwt) const;
  /// The claims of a JWT this keystore signed (VerifyReport::signature_verified), whatever its
  /// claims say; nullopt for anything else (forged, unknown crit, alg not allowed, malformed...).
  /// The one place that decides "is this JWT ours" before revoke, split, exchange or introspect act.
  Result<std::optional<nlohmann::json>> our_jwt_claims(std::string_view jwt, jose::VerifyReport* report = nullptr) const;
  /// What the store knows of a JWT's jti and sid (grant), in one query.
  Result<JwtStatus> jwt_status(const nlohmann::json& claims) const;
  /// True when the JWT (by jti and sid) has been revoked.
  Result<bool> jwt_revoked(const nlohmann::json& claims) const;
  /// The keystore's pairwise-subject secret (keys::Keystore::pairwise_secret), cached once found;
  /// nullptr when none exists and `create` is no.
  Result<const std::string*> pairwise_secret(keys::CreateSecret create) const;
  /// The pairwise subject of `sub` for `sector` (the secret is created at the first one).
  Result<std::string> ppid(const std::string& sector, const std::string& sub) const;
  /// The pairwise subjects `sub` has (or had) under the policy's sectors; none when no PPID was ever
  /// issued (the per-keystore secret does not exist).
  Result<std::vector<std::string>> known_ppids(const std::string& sub) const;
};

/// An active token: what introspection reports and a phantom JWT carries.
struct ActiveToken {
  nlohmann::json claims;    ///< every claim, wrong-typed registered claims dropped; sid = the grant
  std::string kind;         ///< access | refresh | id
  bool stored = false;      ///< found in the store by hash (opaque, wrapped, refresh, JWE)
  UnixTime exp = 0;         ///< 0: none
  std::vector<std::string> expired_scope;
  /// The last second at which all of this holds (then it expires, or a scope's TTL ends).
  UnixTime fresh_until = k_max_time;
};

/// The token when it is active here (stored and active, or a JWT of this keystore that verifies,
/// is not revoked and has not expired), else nullopt.
Result<std::optional<ActiveToken>> active_token(const TokenService::Impl& im, std::string_view token);
/// The same, given the token's row when it is stored and active (active_record()).
Result<std::optional<ActiveToken>> active_token(const TokenService::Impl& im, std::string_view token,
                                                const std::optional<TokenRecord>& row);

/// Issuing knobs only the service itself uses (token exchange); not part of the public IssueRequest.
struct IssueOverrides {
  bool keep_sub = false;             ///< request.sub is already the token's subject (no PPID mapping)
  bool audience_authorized = false;  ///< audiences were authorised by an exchange rule, not the client's list
};

/// TokenService::issue with overrides: issues one token and stores it (and a new grant).
Result<IssueResponse> issue_with(const TokenService::Impl& im, const IssueRequest& request, const IssueOverrides& overrides);

/// An issuance signed and ready, not stored yet: the caller stores `grant` and `records` (in one
/// transaction, e.g. together with consuming a refresh token).
struct PreparedIssue {
  IssueResponse response;
  std::optional<GrantRecord> grant;
  std::vector<TokenRecord> records;
};
Result<PreparedIssue> prepare_issue(const TokenService::Impl& im, const IssueRequest& request,
                                    const IssueOverrides& overrides);


/// The policy's claim templates rendered for one token: strings with {{sub}}, {{client_id}},
/// {{scope}} and {{subject.attr}} filled in; a string that is exactly one {{subject.attr}} keeps the
/// attribute's JSON type (and drops the claim when the subject has none).
nlohmann::json render_claims(const nlohmann::json& tpl, const std::string& sub, const std::string& client_id,
                             const std::string& scope, const nlohmann::json& subject);

/// Random bytes, base64url-encoded.
std::string random_token(std::size_t bytes);
/// `token` (from random_token), drawn again while it starts with '-': a token is pasted on command
/// lines, where a leading dash reads as an option (costs 0.02 bits of 256).
std::string bearer_token_text(std::string token);


}  // namespace tokctl::tokens
