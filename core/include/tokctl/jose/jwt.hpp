#pragma once
// JWT verification (RFC 7519, RFC 8725 BCP, RFC 9068): key selection, signature, claims.
// An invalid token is a result listing every failed check, not an error.

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include <tokctl/jose/algorithm.hpp>
#include <tokctl/jose/jws.hpp>
#include <tokctl/util/time.hpp>

namespace tokctl::jose {

/// Where verification keys come from.
enum class KeySource {
  single,  ///< one key (--key/--secret-*): used whatever the token's kid says
  set,     ///< a JWKS: the token's kid selects the key
};

struct ClaimRules {
  std::optional<std::string> iss;
  std::optional<std::string> aud;  ///< must appear in the token's aud (string or array)
  std::optional<std::string> sub;
  std::optional<std::string> typ;  ///< header typ, compared case-insensitively, "application/" optional
  std::vector<std::string> required;
  std::int64_t leeway = 60;
  std::optional<std::int64_t> max_age;  ///< seconds since iat
};

struct VerifyOptions {
  std::vector<Alg> allowed_algs;  ///< from --alg; empty = what the keys pin or imply (EC/Ed curves)
  KeyStrength key_strength = KeyStrength::enforce;  ///< allow_weak only for verify --insecure
  ClaimRules claims;
  ParseLimits limits;
};

/// One failed check. `code` is stable for scripts: malformed, alg_none, alg_not_allowed,
/// alg_unsupported, crit_unsupported, key_mismatch, kid_not_found, key_unsupported, no_key,
/// bad_signature, expired,
/// not_yet_valid, iat_in_future, too_old, iss_mismatch, aud_mismatch, sub_mismatch, typ_mismatch,
/// missing_claim, bad_claim_type.
struct Problem {
  std::string code;
  std::string message;
  std::string hint;
  bool malformed = false;  ///< the input is malformed (exit 3) rather than merely invalid (exit 1)
};

struct VerifyReport {
  bool valid = false;
  bool parsed = false;         ///< header and payload decoded (they may still be invalid)
  /// The one "is this token ours" verdict: true only when alg policy, crit and key selection passed
  /// and the signature verified with a trusted key. Claims may still be invalid (expired, aud...).
  /// Every caller that acts on a token (revoke, split, exchange, introspect) decides on this field,
  /// never on problem codes.
  bool signature_verified = false;
  nlohmann::json header;       ///< only meaningful when parsed
  nlohmann::json payload;      ///< claims object, or null if the payload is not JSON
  /// A JWS whose payload is not a claims set (e.g. `tokctl sign payload.bin`): the raw payload bytes.
  /// Such a JWS is valid when its signature verifies and no claim rule was asked for.
  std::optional<std::string> payload_bytes;
  std::string kid;             ///< kid of the key that verified (or was tried)
  bool weak_key = false;       ///< verified with a key below the strength floor (allow_weak only)
  std::vector<Problem> problems;

  /// 0 valid, 3 if any problem is malformed input, else 1.
  int exit_code() const;
};

/// The keys and rules for verifying many tokens. Build once; for threads, copy one per thread
/// (copies share parsed keys and reuse their own OpenSSL contexts).
class TokenVerifier {
 public:
  /// Fails with ErrorCode::usage when a key pins no alg and `options.allowed_algs` is empty
  /// ("--alg is required"), or when --alg conflicts with every key's own alg.
  static Result<TokenVerifier> create(JwkSet keys, KeySource source, VerifyOptions options,
                                      const Clock& clock);

  /// Verifies one compact JWS/JWT: structure, alg policy, crit, key selection, signature, then
  /// every claim rule; all failures are collected.
  VerifyReport verify(std::string_view token);

  TokenVerifier(const TokenVerifier&);
  TokenVerifier& operator=(const TokenVerifier&);
  TokenVerifier(TokenVerifier&&) noexcept;
  TokenVerifier& operator=(TokenVerifier&&) noexcept;
  ~TokenVerifier();

 private:
  struct Impl;
  explicit TokenVerifier(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> m_impl;
};

/// Checks the registered claims of an already signature-verified payload against `rules`,
/// appending problems. Time claims that are not numbers are malformed problems.
void check_claims(const nlohmann::json& header, const nlohmann::json& payload,
                  const ClaimRules& rules, UnixTime now, std::vector<Problem>& problems);

/// Warnings for `decode`: alg none, no exp, lifetime over 24h, symmetric alg, sensitive-looking
/// claims (email, phone, address, ...), embedded key headers (jwk/jku/x5u/x5c) that are ignored.
std::vector<std::string> decode_warnings(const nlohmann::json& header,
                                         const nlohmann::json& payload, UnixTime now);

}  // namespace tokctl::jose
