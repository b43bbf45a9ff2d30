#pragma once
// JSON Web Keys (RFC 7517/7518/8037): parsing, PEM import/export, RFC 7638 thumbprints.
// A Jwk is an immutable handle: copies share the parsed OpenSSL key, so one parsed key serves any
// number of threads and tokens.

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include <tokctl/util/error.hpp>

typedef struct evp_pkey_st EVP_PKEY;

namespace tokctl::jose {

enum class KeyType { rsa, ec, okp, oct };

/// "RSA", "EC", "OKP", "oct".
const char* to_string(KeyType kty);

/// Which members a serialization includes.
enum class KeyPart { public_only, with_private };

/// Minimum accepted RSA modulus size, for signing and verifying.
inline constexpr int k_min_rsa_bits = 2048;

/// How much a parsed key is checked beyond its encoding.
enum class KeyCheck {
  full,     ///< keys from outside: EC public check, and the pairwise check of private parts
  trusted,  ///< the keystore's own files (integrity-checked against its manifest): encoding only
};

class Jwk {
 public:
  /// Parses a JWK object. Fails (ErrorCode::malformed) on unknown kty/crv, missing or badly encoded
  /// members, points not on the curve, inconsistent private parts. (Small RSA keys parse; they are
  /// refused when used, by check_key.)
  static Result<Jwk> from_json(const nlohmann::json& jwk, KeyCheck check = KeyCheck::full);

  /// Parses one PEM block: PKCS#1, SEC1, PKCS#8 (unencrypted), SPKI, or an X.509 certificate
  /// (public key). Fails with ErrorCode::malformed.
  static Result<Jwk> from_pem(std::string_view pem);

  /// Parses DER (PKCS#1/SEC1/PKCS#8/SPKI/X.509). Fails with ErrorCode::malformed.
  static Result<Jwk> from_der(std::string_view der);

  /// An oct key holding `secret` bytes. Fails (ErrorCode::malformed) when empty.
  static Result<Jwk> from_secret(std::string secret);

  /// Takes ownership of an OpenSSL key (RSA, EC P-256/384/521, Ed25519/Ed448, X25519/X448).
  static Result<Jwk> from_pkey(EVP_PKEY* pkey_owned);

  KeyType kty() const;
  /// "P-256", "P-384", "P-521", "Ed25519", "Ed448", "X25519", "X448"; empty for RSA and oct.
  const std::string& crv() const;
  bool has_private() const;
  /// Modulus bits (RSA), field bits (EC/OKP), secret bits (oct).
  int bits() const;

  const std::string& kid() const { return m_kid; }
  const std::string& alg() const { return m_alg; }
  const std::string& use() const { return m_use; }
  /// "key_ops" members (empty when absent).
  const std::vector<std::string>& key_ops() const { return m_key_ops; }
  void set_key_ops(std::vector<std::string> ops) { m_key_ops = std::move(ops); }
  void set_kid(std::string kid) { m_kid = std::move(kid); }
  void set_alg(std::string alg) { m_alg = std::move(alg); }
  void set_use(std::string use) { m_use = std::move(use); }

  /// The OpenSSL key (nullptr for oct). Owned by this Jwk and shared by its copies.
  EVP_PKEY* pkey() const;
  /// The secret bytes of an oct key (empty otherwise).
  const std::string& secret() const;

  /// This key without its private parts (kid/alg/use kept). An oct key has no public form:
  /// fails with ErrorCode::usage.
  Result<Jwk> to_public() const;

  /// JWK JSON with kty, key members, and kid/alg/use when set. with_private on a public key is
  /// the same as public_only.
  nlohmann::json to_json(KeyPart part = KeyPart::public_only) const;

  /// PEM: PKCS#8 for private keys, SPKI for public ones. oct keys fail with ErrorCode::usage.
  Result<std::string> to_pem(KeyPart part) const;

  /// RFC 7638 thumbprint, base64url, with hash "sha256" (default), "sha384", "sha512" or "sha1".
  /// Fails with ErrorCode::usage on an unknown hash.
  Result<std::string> thumbprint(std::string_view hash = "sha256") const;

  /// Short description for messages: "RSA 2048-bit private key", "EC P-256 public key".
  std::string describe() const;

  struct Data;
  /// Internal: wraps already-validated key data (core/jose only; Data is private to it).
  static Jwk from_data(std::shared_ptr<const Data> data);
  /// Internal: the parsed key data (core/jose only).
  const Data& data() const { return *m_data; }

 private:
  std::shared_ptr<const Data> m_data;
  std::string m_kid;
  std::string m_alg;
  std::string m_use;
  std::vector<std::string> m_key_ops;
};

/// A set of keys, e.g. a JWKS document or several PEM blocks.
/// A JWKS member skipped because its kty/crv is not supported (RFC 7517 §5): kept so that
/// messages can say "kid 'x' is an EC secp256k1 key, which is not supported" instead of "not found".
struct SkippedKey {
  std::string kid;
  std::string type;  ///< "EC secp256k1", "kty 'foo'"
};

struct JwkSet {
  JwkSet() = default;
  JwkSet(std::vector<Jwk> set_keys) : keys(std::move(set_keys)) {}  // NOLINT: implicit on purpose

  std::vector<Jwk> keys;
  std::vector<SkippedKey> skipped;

  /// Kids of all keys, comma separated, for messages ("k1, k3").
  std::string kid_list() const;
  /// Key types with their kids for hints: "EC P-256 (k1), RSA 2048-bit (k2)".
  std::string type_list() const;
  nlohmann::json to_json(KeyPart part = KeyPart::public_only) const;
};

/// Parses `{"keys":[...]}`. Keys that fail to parse are errors (ErrorCode::malformed) naming the
/// index, unless they have an unsupported kty/crv, which are skipped (RFC 7517 §5).
Result<JwkSet> parse_jwks(const nlohmann::json& jwks);

/// The one JWS alg a key implies by itself: EC P-256/384/521 -> ES256/384/512, Ed25519/Ed448 ->
/// EdDSA; the key's own "alg" when it pins one. nullopt for RSA and oct without "alg" (several
/// algorithms fit: the caller must ask for --alg).
std::optional<std::string> implied_jws_alg(const Jwk& key);

/// Sniffs the content, never the file name: a JWK object, a JWKS, one or more PEM blocks (keys or
/// certificates), or DER. Fails with ErrorCode::malformed saying what was seen.
Result<JwkSet> parse_key_material(std::string_view content);

/// parse_key_material that requires exactly one key.
Result<Jwk> parse_single_key(std::string_view content);

/// True when `secret` looks like public-key material (PEM, JWK with kty RSA/EC/OKP, DER SPKI):
/// used to refuse it as an HMAC secret (algorithm confusion).
bool looks_like_asymmetric_key(std::string_view secret);

/// The RFC 8705 §3.1 x5t#S256 of an X.509 certificate, PEM (the first CERTIFICATE block) or DER
/// (exactly one certificate): base64url of the SHA-256 of its DER. ErrorCode::malformed otherwise.
Result<std::string> certificate_thumbprint(std::string_view pem_or_der);

}  // namespace tokctl::jose
