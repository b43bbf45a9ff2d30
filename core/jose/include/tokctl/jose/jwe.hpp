#pragma once
// JWE compact serialization (RFC 7516) with the RFC 7518 algorithms tokctl supports, and the
// building-block primitives (exposed for the vector tests in tests/unit/jwe_vectors_test.cpp).
//
// Refused by design: RSA1_5 (Bleichenbacher padding oracle), "zip" (compression oracles and
// decompression bombs), A*GCMKW and the 192-bit variants (not in tokctl's algorithm set), JSON
// serialization, and any "crit" extension.

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include <tokctl/jose/json.hpp>
#include <tokctl/jose/jwk.hpp>
#include <tokctl/util/error.hpp>

namespace tokctl::jose {

/// JWE "alg" values (key management).
enum class KeyMgmtAlg {
  RSA_OAEP,
  RSA_OAEP_256,
  ECDH_ES,
  ECDH_ES_A128KW,
  ECDH_ES_A256KW,
  A128KW,
  A256KW,
  dir,
  PBES2_HS256_A128KW,
  PBES2_HS512_A256KW,
};

/// JWE "enc" values (content encryption).
enum class ContentEnc { A128GCM, A256GCM, A128CBC_HS256, A256CBC_HS512 };

inline constexpr KeyMgmtAlg k_all_key_mgmt_algs[] = {
    KeyMgmtAlg::RSA_OAEP,           KeyMgmtAlg::RSA_OAEP_256,      KeyMgmtAlg::ECDH_ES,
    KeyMgmtAlg::ECDH_ES_A128KW,     KeyMgmtAlg::ECDH_ES_A256KW,    KeyMgmtAlg::A128KW,
    KeyMgmtAlg::A256KW,             KeyMgmtAlg::dir,               KeyMgmtAlg::PBES2_HS256_A128KW,
    KeyMgmtAlg::PBES2_HS512_A256KW};
inline constexpr ContentEnc k_all_content_encs[] = {ContentEnc::A128GCM, ContentEnc::A256GCM,
                                                    ContentEnc::A128CBC_HS256,
                                                    ContentEnc::A256CBC_HS512};

/// The JOSE name, e.g. "ECDH-ES+A128KW", "A128CBC-HS256".
const char* to_string(KeyMgmtAlg alg);
const char* to_string(ContentEnc enc);

/// The key management alg for `key` when none is asked for: the key's own "alg" when it names a
/// JWE alg (or a content encryption: then "dir", RFC 7520 §5.6); else RSA: RSA-OAEP-256, EC and
/// X25519/X448: ECDH-ES+A256KW, a 16/32-byte secret: A128KW/A256KW. Fails (ErrorCode::usage) for
/// a signing-only key (its alg is a JWS alg, or Ed25519/Ed448) and secrets of other sizes.
Result<KeyMgmtAlg> default_key_management(const Jwk& key);

/// The content encryption when none is asked for: for "dir", what the key's alg or size implies
/// (16 bytes: A128GCM, 64: A256CBC-HS512); else A256GCM.
ContentEnc default_content_enc(KeyMgmtAlg alg, const Jwk& key);

/// Exact JOSE names; unknown or refused names (RSA1_5, A128GCMKW, A192*) give nullopt.
std::optional<KeyMgmtAlg> key_mgmt_from_string(std::string_view name);
std::optional<ContentEnc> content_enc_from_string(std::string_view name);

/// Comma-separated supported names, for messages and help.
std::string supported_key_mgmt_names();
std::string supported_content_enc_names();

/// CEK length in bytes for `enc` (16, 32, 32, 64).
std::size_t cek_bytes(ContentEnc enc);

/// PBES2 iteration counts: tokctl refuses fewer than k_pbes2_min_p2c (both ways).
inline constexpr int k_pbes2_min_p2c = 1000;
/// Default p2c when EncryptOptions::p2c is unset (OWASP 2023 guidance for PBKDF2-HMAC-SHA256 /
/// -SHA512): 600,000 for PBES2-HS256+A128KW, 210,000 for PBES2-HS512+A256KW.
int default_p2c(KeyMgmtAlg alg);

struct JweLimits {
  std::size_t max_token_bytes = 256 * 1024;
  /// PBES2 "p2c" ceiling, checked before any PBKDF2 work.
  int max_p2c = 1000000;
  JsonLimits json{};
};

struct EncryptOptions {
  KeyMgmtAlg alg = KeyMgmtAlg::RSA_OAEP_256;
  ContentEnc enc = ContentEnc::A256GCM;
  std::string cty;  ///< "JWT" for a nested JWT; empty: omitted
  std::string kid;  ///< empty: omitted
  /// More protected-header members. Must be an object; may not set alg, enc, zip, epk, p2s, p2c,
  /// kid or cty (use the fields above).
  nlohmann::json extra_header = nlohmann::json::object();
  /// PBES2 iteration count; unset: default_p2c(alg). Must be within [1000, 1,000,000].
  std::optional<int> p2c;
};

/// Encrypts `plaintext` to `key`: RSA public/private key for RSA-OAEP*, EC (P-256/384/521) or OKP
/// (X25519/X448) key for ECDH-ES*, oct key of exactly the wrap/enc key size for A*KW and dir, and
/// for PBES2 the oct secret is the password. Fails with ErrorCode::usage on a key that does not
/// fit the alg/enc, a refused option (zip, reserved extra_header members), or a p2c out of range.
Result<std::string> encrypt_compact(std::string_view plaintext, const Jwk& key,
                                    const EncryptOptions& options);

struct DecryptedJwe {
  nlohmann::json header;  ///< the protected header (authenticated)
  std::string plaintext;  ///< for cty "JWT" a nested JWS the caller must verify
};

/// Decrypts a compact JWE. Fails with ErrorCode::malformed for bad structure, base64url or JSON;
/// ErrorCode::invalid_token for a refused/unsupported alg or enc (RSA1_5, zip, crit), a key that
/// does not fit the token, an invalid epk, a p2c outside [1000, limits.max_p2c], wrong lengths
/// (iv, tag, CEK), a wrong key, or any authentication failure; ErrorCode::usage when the key lacks
/// its private part.
Result<DecryptedJwe> decrypt_compact(std::string_view token, const Jwk& key,
                                     const JweLimits& limits = {});

/// The building blocks, each one OpenSSL EVP call sequence. Decryption-side failures are
/// ErrorCode::invalid_token; bad parameter sizes are ErrorCode::usage.
namespace jwe_crypto {

struct AeadOutput {
  std::string ciphertext;
  std::string tag;
};

/// RFC 3394 AES key wrap with a 16, 24 or 32-byte KEK; `key` must be a multiple of 8 bytes and at
/// least 16 bytes.
Result<std::string> aes_key_wrap(std::string_view kek, std::string_view key);
/// RFC 3394 unwrap; fails (invalid_token) when the integrity check fails.
Result<std::string> aes_key_unwrap(std::string_view kek, std::string_view wrapped);

/// AES-GCM with a 16 or 32-byte key, a 12-byte IV and a 16-byte tag (exact sizes required).
Result<AeadOutput> aes_gcm_encrypt(std::string_view key, std::string_view iv, std::string_view aad,
                                   std::string_view plaintext);
Result<std::string> aes_gcm_decrypt(std::string_view key, std::string_view iv, std::string_view aad,
                                    std::string_view ciphertext, std::string_view tag);

/// AES_CBC_HMAC_SHA2 (RFC 7518 §5.2): 32-byte key = A128CBC-HS256, 64-byte key = A256CBC-HS512;
/// 16-byte IV; tag = first half of HMAC(MAC_KEY, AAD || IV || C || AL). Decryption checks the
/// exact tag length, then the tag with CRYPTO_memcmp, before touching the ciphertext.
Result<AeadOutput> aes_cbc_hmac_encrypt(std::string_view key, std::string_view iv,
                                        std::string_view aad, std::string_view plaintext);
Result<std::string> aes_cbc_hmac_decrypt(std::string_view key, std::string_view iv,
                                         std::string_view aad, std::string_view ciphertext,
                                         std::string_view tag);

/// Concat KDF (RFC 7518 §4.6.2, NIST SP 800-56A single-step with SHA-256; OpenSSL "SSKDF"):
/// OtherInfo = len||alg_id, len||apu, len||apv, keydatalen in bits.
Result<std::string> concat_kdf(std::string_view shared_secret, std::string_view alg_id,
                               std::string_view apu, std::string_view apv, std::size_t key_bytes);

/// ECDH / X25519 / X448 shared secret. `priv` must hold a private key; `peer` must be a public key
/// of the same type and curve; EC peers are checked on the curve (EVP_PKEY_public_check), an
/// all-zero X25519/X448 result is refused. Fails with ErrorCode::invalid_token.
Result<std::string> ecdh_derive(const Jwk& priv, const Jwk& peer);

/// PBKDF2-HMAC with `digest` ("SHA256", "SHA512").
Result<std::string> pbkdf2_hmac(std::string_view digest, std::string_view password,
                                std::string_view salt, int iterations, std::size_t key_bytes);

/// The PBES2 key-encryption key: PBKDF2 with salt = UTF8(alg) || 0x00 || p2s.
/// Only for the two PBES2 algs; fails with ErrorCode::usage otherwise.
Result<std::string> pbes2_derive_kek(KeyMgmtAlg alg, std::string_view password, std::string_view p2s,
                                     int p2c);

enum class OaepHash { sha1, sha256 };

/// RSAES-OAEP with MGF1 on the same hash and an empty label.
Result<std::string> rsa_oaep_encrypt(const Jwk& key, OaepHash hash, std::string_view plaintext);
Result<std::string> rsa_oaep_decrypt(const Jwk& key, OaepHash hash, std::string_view ciphertext);

}  // namespace jwe_crypto
/// A nested JWT (RFC 7519 §5.2, a JWE whose cty is JWT): the inner token, decrypted with the key
/// the header's kid names (every key of `keys` when it names none). nullopt when `token` is not a
/// compact JWE (use it as it is). Fails with ErrorCode::invalid_token when no key decrypts it or it
/// does not contain a JWT (cty), ErrorCode::malformed for a broken JWE, ErrorCode::usage when
/// `keys` is empty.
Result<std::optional<std::string>> unwrap_nested_jwt(std::string_view token, const JwkSet& keys);

}  // namespace tokctl::jose
