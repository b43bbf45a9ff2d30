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
  /// RFC 8705 §3.1: the token must be bound (cnf.x5t#S256) to the certificate of this thumbprint.
  std::optional<std::string> cnf_x5t;
  /// RFC 9449 §6.1: the token must be bound (cnf.jkt) to the key of this RFC 7638 thumbprint.
  std::optional<std::string> cnf_jkt;
};

struct VerifyOptions {
  std::vector<Alg> allowed_algs;  ///< from --alg; empty = what the keys pin or imply (EC/Ed curves)
  KeyStrength key_strength = KeyStrength::enforce;  ///< allow_weak only for verify --insecure
  ClaimRules claims;
  ParseLimits limits;
};

/// What a failed check found. The names (to_string) are stable for scripts (`-o json`).
enum class ProblemCode {
  malformed,         ///< not a parseable JWS/JWT, or a claim of the wrong JSON type
  not_a_jwt,         ///< the payload is not a claims set, but claim rules were asked for
  alg_none,          ///< alg "none"
  alg_unsupported,   ///< an alg tokctl does not implement
  alg_not_allowed,   ///< an alg the keys or --alg do not allow
  crit_unsupported,  ///< a "crit" header parameter tokctl does not understand
  key_mismatch,      ///< no candidate key fits the alg (type, size, use, key_ops)
  kid_not_found,     ///< the kid is not in the key set
  key_unsupported,   ///< the kid names a key of an unsupported type
  bad_signature,     ///< the signature does not verify
  expired,
  not_yet_valid,
  iat_in_future,
  too_old,           ///< older than --max-age
  iss_mismatch,
  aud_mismatch,
  sub_mismatch,
  typ_mismatch,
  missing_claim,
  bad_claim_type,    ///< a registered claim of the wrong type (also malformed)
  revoked,           ///< on the jti deny-list, or its grant was revoked (verify against a store)
  store_error,       ///< the revocation check could not be made
  decrypt_failed,    ///< a nested JWT's JWE layer did not decrypt
  cnf_mismatch,      ///< not bound to the certificate (RFC 8705 cnf.x5t#S256) or DPoP key (RFC 9449 cnf.jkt) given
};

/// The stable name, e.g. "kid_not_found".
const char* to_string(ProblemCode code);

/// One failed check.
struct Problem {
  ProblemCode code = ProblemCode::malformed;
  std::string message;
  std::string hint;
  bool malformed = false;  ///< the input is malformed (exit 3) rather than merely invalid (exit 1)
  Remedy remedy = Remedy::none;  ///< a remedy the front end spells (see Error::remedy)
  std::string subject = {};      ///< what the remedy applies to (see Error::subject)
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

  /// The error group of an invalid token: malformed if any problem is malformed input; keystore if
  /// all are store_error (no verdict, exit 4); else invalid_token. Meaningless when valid.
  ErrorCode error_code() const;
  /// 0 when valid, else tokctl::exit_code(error_code()): the one mapping from groups to codes.
  int exit_code() const;
};

/// What a VerifyReport keeps of the token.
enum class ReportDetail {
  full,     ///< header and claims documents, for display
  verdict,  ///< no header document; claims, problems, kid and the verdict as with full
};

/// The keys and rules for verifying many tokens. Build once; immutable, so one instance serves any
/// number of threads (each verification borrows pooled OpenSSL contexts).
class TokenVerifier {
 public:
  /// Fails with ErrorCode::usage when a key pins no alg and `options.allowed_algs` is empty
  /// (an algorithm is required, Error::param "alg"), or when the requested algorithm conflicts
  /// with every key's own alg.
  static Result<TokenVerifier> create(JwkSet keys, KeySource source, VerifyOptions options,
                                      const Clock& clock);

  /// Verifies one compact JWS/JWT: structure, alg policy, crit, key selection, signature, then
  /// every claim rule; all failures are collected. ReportDetail::verdict leaves `header` null (the
  /// checks still read it): a batch that prints verdicts copies no header document per token.
  VerifyReport verify(std::string_view token, ReportDetail detail = ReportDetail::full) const;

  TokenVerifier(const TokenVerifier&);
  TokenVerifier& operator=(const TokenVerifier&);
  TokenVerifier(TokenVerifier&&) noexcept;
  TokenVerifier& operator=(TokenVerifier&&) noexcept;
  ~TokenVerifier();

 private:
  struct Impl;
  explicit TokenVerifier(std::shared_ptr<const Impl> impl);
  std::shared_ptr<const Impl> m_impl;  // immutable; copies share it
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
