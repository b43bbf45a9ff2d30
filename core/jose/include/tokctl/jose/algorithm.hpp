#pragma once
// JWS algorithms (RFC 7518 §3, RFC 8037): names, key compatibility, and the sign/verify primitives.

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <tokctl/jose/jwk.hpp>
#include <tokctl/util/error.hpp>

namespace tokctl::jose {

enum class Alg {
  HS256, HS384, HS512,
  RS256, RS384, RS512,
  PS256, PS384, PS512,
  ES256, ES384, ES512,
  EdDSA,
};

inline constexpr Alg k_all_algs[] = {Alg::HS256, Alg::HS384, Alg::HS512, Alg::RS256, Alg::RS384,
                                     Alg::RS512, Alg::PS256, Alg::PS384, Alg::PS512, Alg::ES256,
                                     Alg::ES384, Alg::ES512, Alg::EdDSA};

/// The JOSE name, e.g. "ES256".
const char* to_string(Alg alg);

/// Parses an exact JOSE alg name; "none" and unknown names give nullopt.
std::optional<Alg> alg_from_string(std::string_view name);

/// Comma-separated list of all supported names, for messages and help.
std::string supported_alg_names();

/// True for HS256/384/512.
bool is_symmetric(Alg alg);

/// The key type an alg needs.
KeyType key_type_for(Alg alg);

enum class KeyRole { sign, verify };

/// `allow_weak` (verify --insecure only, never a default): RSA keys of 1024+ bits and HMAC secrets
/// shorter than the hash output may verify. Signing always enforces.
enum class KeyStrength { enforce, allow_weak };

/// True when `key` is below the strength floor for `alg` (RSA < 2048 bits, HMAC secret shorter
/// than the hash output).
bool is_weak_key(Alg alg, const Jwk& key);

/// Checks that `key` may be used with `alg` for `role`: matching kty and curve, RSA >= 2048 bits,
/// HMAC secret at least as long as the hash output (RFC 7518 §3.2), "use" sig and "key_ops"
/// allowing the operation when present, private part present for signing, and the key's own `alg`
/// (when set) equal to `alg`. Fails with ErrorCode::invalid_token for
/// verify and ErrorCode::usage for sign, with a hint such as "the token is ES256 but the key is RSA".
Result<void> check_key(Alg alg, const Jwk& key, KeyRole role, KeyStrength strength = KeyStrength::enforce);

/// Computes a JWS signature (ES*: raw r||s of exact length). The key must pass check_key(sign).
Result<std::string> sign(Alg alg, const Jwk& key, std::string_view signing_input);

/// Signs with one (alg, key) pair, reusing OpenSSL contexts across calls (batch issuing).
/// Immutable and thread-safe: sign() may run on many threads at once (each call borrows its own
/// context from a pool shared by copies). Digests are fetched once per process.
class Signer {
 public:
  /// Fails as check_key(sign) does.
  static Result<Signer> create(Alg alg, const Jwk& key);

  /// The JWS signature of `signing_input` (ES*: raw r||s of exact length).
  Result<std::string> sign(std::string_view signing_input) const;

  Alg alg() const { return m_alg; }
  const Jwk& key() const { return m_key; }

  struct Cache;
  struct Pool;

 private:
  Signer(Alg alg, Jwk key);
  Alg m_alg;
  Jwk m_key;
  std::shared_ptr<Pool> m_pool;  // never null; shared by copies
};

/// Verifies signatures for one (alg, key) pair, reusing OpenSSL contexts across calls.
/// Immutable and thread-safe like Signer.
class SignatureVerifier {
 public:
  /// Fails as check_key(verify, strength) does.
  static Result<SignatureVerifier> create(Alg alg, const Jwk& key, KeyStrength strength = KeyStrength::enforce);

  /// True when `signature` is valid for `signing_input`. ES* signatures must be raw r||s of exact
  /// length with 0 < r, s < n; DER is rejected. HMAC tags are compared in constant time.
  bool verify(std::string_view signing_input, std::string_view signature) const;

  Alg alg() const { return m_alg; }
  const Jwk& key() const { return m_key; }

  struct Cache;
  struct Pool;

 private:
  SignatureVerifier(Alg alg, Jwk key);
  Alg m_alg;
  Jwk m_key;
  std::shared_ptr<Pool> m_pool;  // never null; shared by copies
};

}  // namespace tokctl::jose
