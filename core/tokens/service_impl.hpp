#pragma once
// Private to core/tokens: the token service's state and shared helpers.

#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include <tokctl/jose/algorithm.hpp>
#include <tokctl/jose/jwt.hpp>
#include <tokctl/tokens/service.hpp>

namespace tokctl::tokens {

/// The client_id claim of tokens issued without a client (RFC 9068 requires one); such tokens
/// are stored with an empty client_id.
inline constexpr const char* k_cli_client_id = "tokctl";

struct TokenService::Impl {
  Policy policy;
  keys::Keystore keystore;
  const Clock* clock;
  keys::Passphrase passphrase;
  std::unique_ptr<TokenStore> store;
  std::optional<jose::Jwk> signer;            // the keystore's active signing key, loaded once
  std::optional<jose::Alg> signer_alg;
  std::optional<jose::Signer> signer_ctx;     // reused OpenSSL contexts for batch issuing
  std::optional<jose::TokenVerifier> verifier;  // keystore verification keys, built once
  std::optional<jose::Jwk> jwe_recipient;
  std::string ppid_secret;                    // per-keystore secret (keystore/ppid.secret)

  Impl(Policy p, keys::Keystore ks, const Clock& c, keys::Passphrase pw)
      : policy(std::move(p)), keystore(std::move(ks)), clock(&c), passphrase(std::move(pw)) {}

  UnixTime now() const { return clock->now(); }
  Result<void> load_signer();
  /// Signs a claims set with the active key (kid header set).
  Result<std::string> sign(const nlohmann::json& claims, const char* typ);
  /// Verifies a JWT against the keystore (signature, exp/nbf with the default leeway).
  Result<jose::VerifyReport> verify_jwt(std::string_view jwt);
  /// The claims of a JWT this keystore signed (VerifyReport::signature_verified), whatever its
  /// claims say; nullopt for anything else (forged, unknown crit, alg not allowed, malformed...).
  /// The one place that decides "is this JWT ours" before revoke, split, exchange or introspect act.
  Result<std::optional<nlohmann::json>> our_jwt_claims(std::string_view jwt, jose::VerifyReport* report = nullptr);
  /// True when the JWT (by jti and sid) has been revoked.
  Result<bool> jwt_revoked(const nlohmann::json& claims);
  Result<std::string> ppid(const std::string& sector, const std::string& sub);
  /// The pairwise subjects `sub` has (or had) under the policy's sectors; none when no PPID was ever
  /// issued (the per-keystore secret does not exist, and is not created here).
  Result<std::vector<std::string>> known_ppids(const std::string& sub);
};

/// An active token: what introspection reports and a phantom JWT carries.
struct ActiveToken {
  nlohmann::json claims;    ///< every claim, wrong-typed registered claims dropped; sid = the grant
  std::string kind;         ///< access | refresh | id
  bool stored = false;      ///< found in the store by hash (opaque, wrapped, refresh, JWE)
  UnixTime exp = 0;         ///< 0: none
  std::vector<std::string> expired_scope;
};

/// The token when it is active here (stored and active, or a JWT of this keystore that verifies,
/// is not revoked and has not expired), else nullopt.
Result<std::optional<ActiveToken>> active_token(TokenService::Impl& im, std::string_view token);

/// Issuing knobs only the service itself uses (token exchange); not part of the public IssueRequest.
struct IssueOverrides {
  bool keep_sub = false;             ///< request.sub is already the token's subject (no PPID mapping)
  bool audience_authorized = false;  ///< audiences were authorised by an exchange rule, not the client's list
};

/// TokenService::issue with overrides: issues one token and stores it (and a new grant).
Result<IssueResponse> issue_with(TokenService::Impl& im, const IssueRequest& request, const IssueOverrides& overrides);

/// An issuance signed and ready, not stored yet: the caller stores `grant` and `records` (in one
/// transaction, e.g. together with consuming a refresh token).
struct PreparedIssue {
  IssueResponse response;
  std::optional<GrantRecord> grant;
  std::vector<TokenRecord> records;
};
Result<PreparedIssue> prepare_issue(TokenService::Impl& im, const IssueRequest& request,
                                    const IssueOverrides& overrides);

/// An ErrorCode::invalid_token error whose message starts with the OAuth error code.
std::unexpected<Error> oauth_fail(const std::string& code, const std::string& description);

/// Random bytes, base64url-encoded.
std::string random_token(std::size_t bytes);


}  // namespace tokctl::tokens
