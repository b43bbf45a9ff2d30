// JWE building blocks (RFC 7518 §4, §5): every one is an OpenSSL EVP call sequence.
#include <tokctl/jose/jwe.hpp>

#include <array>
#include <cstdint>
#include <memory>
#include <optional>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/kdf.h>
#include <openssl/rsa.h>

#include "ossl.hpp"

namespace tokctl::jose::jwe_crypto {
namespace {

using EvpKdfPtr = std::unique_ptr<EVP_KDF, decltype(&EVP_KDF_free)>;
using EvpKdfCtxPtr = std::unique_ptr<EVP_KDF_CTX, decltype(&EVP_KDF_CTX_free)>;

const unsigned char* u8(std::string_view s) {
  return reinterpret_cast<const unsigned char*>(s.data());
}
unsigned char* u8(std::string& s) { return reinterpret_cast<unsigned char*>(s.data()); }
int len_int(std::string_view s) { return static_cast<int>(s.size()); }

const EVP_CIPHER* wrap_cipher(std::size_t kek_bytes) {
  switch (kek_bytes) {
    case 16: return EVP_aes_128_wrap();
    case 24: return EVP_aes_192_wrap();
    case 32: return EVP_aes_256_wrap();
    default: return nullptr;
  }
}

Result<std::string> key_wrap_op(std::string_view kek, std::string_view in, bool wrap) {
  const EVP_CIPHER* cipher = wrap_cipher(kek.size());
  if (!cipher) {
    return fail(ErrorCode::usage, "AES key wrap needs a 16, 24 or 32-byte key, not " +
                                      std::to_string(kek.size()) + " bytes");
  }
  const std::size_t min_in = wrap ? 16 : 24;
  if (in.size() < min_in || in.size() % 8 != 0) {
    return fail(wrap ? ErrorCode::usage : ErrorCode::invalid_token,
                std::string(wrap ? "the key to wrap" : "the wrapped key") + " is " +
                    std::to_string(in.size()) + " bytes; AES key wrap needs a multiple of 8, at least " +
                    std::to_string(min_in));
  }
  auto ctx = ossl::make(EVP_CIPHER_CTX_new());
  if (!ctx) return ossl::fail_ossl(ErrorCode::usage, "cannot allocate a cipher context");
  EVP_CIPHER_CTX_set_flags(ctx.get(), EVP_CIPHER_CTX_FLAG_WRAP_ALLOW);
  std::string out(in.size() + 8, '\0');
  int n1 = 0, n2 = 0;
  if (EVP_CipherInit_ex(ctx.get(), cipher, nullptr, u8(kek), nullptr, wrap ? 1 : 0) != 1 ||
      EVP_CipherUpdate(ctx.get(), u8(out), &n1, u8(in), len_int(in)) != 1 ||
      EVP_CipherFinal_ex(ctx.get(), u8(out) + n1, &n2) != 1 || n1 <= 0) {
    OPENSSL_cleanse(out.data(), out.size());
    if (!wrap) {
      ossl::clear_errors();
      return fail(ErrorCode::invalid_token,
                  "AES key unwrap failed: integrity check mismatch (wrong key or modified encrypted key)");
    }
    return ossl::fail_ossl(ErrorCode::usage, "AES key wrap failed");
  }
  out.resize(static_cast<std::size_t>(n1 + n2));
  return out;
}

const EVP_CIPHER* gcm_cipher(std::size_t key_bytes) {
  switch (key_bytes) {
    case 16: return EVP_aes_128_gcm();
    case 32: return EVP_aes_256_gcm();
    default: return nullptr;
  }
}

constexpr std::size_t k_gcm_iv = 12;
constexpr std::size_t k_gcm_tag = 16;

Result<void> gcm_check_sizes(std::string_view key, std::string_view iv, ErrorCode code) {
  if (!gcm_cipher(key.size())) {
    return fail(ErrorCode::usage, "AES-GCM needs a 16 or 32-byte key, not " + std::to_string(key.size()) + " bytes");
  }
  if (iv.size() != k_gcm_iv) {
    return fail(code, "AES-GCM initialization vector is " + std::to_string(iv.size()) +
                          " bytes; JWE requires exactly 12");
  }
  return {};
}

struct CbcHmacParams {
  const EVP_CIPHER* cipher;
  const char* digest;
  std::size_t half;  // MAC key length = enc key length = tag length
};

std::optional<CbcHmacParams> cbc_hmac_params(std::size_t key_bytes) {
  if (key_bytes == 32) return CbcHmacParams{EVP_aes_128_cbc(), "SHA256", 16};
  if (key_bytes == 64) return CbcHmacParams{EVP_aes_256_cbc(), "SHA512", 32};
  return std::nullopt;
}

constexpr std::size_t k_cbc_iv = 16;

/// The full HMAC over AAD || IV || C || AL (RFC 7518 §5.2.2.1 step 4); the caller truncates.
Result<std::string> cbc_hmac_mac(const CbcHmacParams& p, std::string_view mac_key, std::string_view aad,
                                 std::string_view iv, std::string_view ciphertext) {
  const std::uint64_t aad_bits = static_cast<std::uint64_t>(aad.size()) * 8;
  std::array<unsigned char, 8> al{};
  for (int i = 0; i < 8; ++i) al[static_cast<std::size_t>(i)] = static_cast<unsigned char>(aad_bits >> (56 - 8 * i));
  ossl::EvpMacPtr mac{EVP_MAC_fetch(nullptr, "HMAC", nullptr), &EVP_MAC_free};
  if (!mac) return ossl::fail_ossl(ErrorCode::usage, "HMAC is not available");
  auto ctx = ossl::make(EVP_MAC_CTX_new(mac.get()));
  OSSL_PARAM params[] = {
      OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, const_cast<char*>(p.digest), 0),
      OSSL_PARAM_construct_end()};
  std::string out(EVP_MAX_MD_SIZE, '\0');
  std::size_t out_len = 0;
  if (!ctx || EVP_MAC_init(ctx.get(), u8(mac_key), mac_key.size(), params) != 1 ||
      EVP_MAC_update(ctx.get(), u8(aad), aad.size()) != 1 ||
      EVP_MAC_update(ctx.get(), u8(iv), iv.size()) != 1 ||
      EVP_MAC_update(ctx.get(), u8(ciphertext), ciphertext.size()) != 1 ||
      EVP_MAC_update(ctx.get(), al.data(), al.size()) != 1 ||
      EVP_MAC_final(ctx.get(), u8(out), &out_len, out.size()) != 1) {
    return ossl::fail_ossl(ErrorCode::usage, "HMAC computation failed");
  }
  out.resize(out_len);
  return out;
}

Result<std::string> aes_cbc(const EVP_CIPHER* cipher, std::string_view key, std::string_view iv,
                            std::string_view in, bool encrypt) {
  auto ctx = ossl::make(EVP_CIPHER_CTX_new());
  std::string out(in.size() + 16, '\0');
  int n1 = 0, n2 = 0;
  if (!ctx || EVP_CipherInit_ex(ctx.get(), cipher, nullptr, u8(key), u8(iv), encrypt ? 1 : 0) != 1 ||
      EVP_CipherUpdate(ctx.get(), u8(out), &n1, u8(in), len_int(in)) != 1 ||
      EVP_CipherFinal_ex(ctx.get(), u8(out) + n1, &n2) != 1) {
    OPENSSL_cleanse(out.data(), out.size());
    if (!encrypt) {
      ossl::clear_errors();
      return fail(ErrorCode::invalid_token, "AES-CBC decryption failed (bad padding)");
    }
    return ossl::fail_ossl(ErrorCode::usage, "AES-CBC encryption failed");
  }
  out.resize(static_cast<std::size_t>(n1 + n2));
  return out;
}

void put_be32(std::string& out, std::uint32_t v) {
  for (int shift = 24; shift >= 0; shift -= 8) out.push_back(static_cast<char>((v >> shift) & 0xff));
}

void put_len_prefixed(std::string& out, std::string_view data) {
  put_be32(out, static_cast<std::uint32_t>(data.size()));
  out.append(data);
}

bool is_all_zero(std::string_view s) {
  unsigned char acc = 0;
  for (char c : s) acc = static_cast<unsigned char>(acc | static_cast<unsigned char>(c));
  return acc == 0;
}

}  // namespace

Result<std::string> aes_key_wrap(std::string_view kek, std::string_view key) {
  return key_wrap_op(kek, key, true);
}

Result<std::string> aes_key_unwrap(std::string_view kek, std::string_view wrapped) {
  return key_wrap_op(kek, wrapped, false);
}

Result<AeadOutput> aes_gcm_encrypt(std::string_view key, std::string_view iv, std::string_view aad,
                                   std::string_view plaintext) {
  if (auto r = gcm_check_sizes(key, iv, ErrorCode::usage); !r) return std::unexpected(r.error());
  auto ctx = ossl::make(EVP_CIPHER_CTX_new());
  AeadOutput out;
  out.ciphertext.assign(plaintext.size() + 16, '\0');
  out.tag.assign(k_gcm_tag, '\0');
  int n = 0, n2 = 0, aad_len = 0;
  if (!ctx || EVP_EncryptInit_ex(ctx.get(), gcm_cipher(key.size()), nullptr, nullptr, nullptr) != 1 ||
      EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_SET_IVLEN, static_cast<int>(iv.size()), nullptr) != 1 ||
      EVP_EncryptInit_ex(ctx.get(), nullptr, nullptr, u8(key), u8(iv)) != 1 ||
      (!aad.empty() && EVP_EncryptUpdate(ctx.get(), nullptr, &aad_len, u8(aad), len_int(aad)) != 1) ||
      EVP_EncryptUpdate(ctx.get(), u8(out.ciphertext), &n, u8(plaintext), len_int(plaintext)) != 1 ||
      EVP_EncryptFinal_ex(ctx.get(), u8(out.ciphertext) + n, &n2) != 1 ||
      EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_GET_TAG, static_cast<int>(k_gcm_tag), out.tag.data()) != 1) {
    return ossl::fail_ossl(ErrorCode::usage, "AES-GCM encryption failed");
  }
  out.ciphertext.resize(static_cast<std::size_t>(n + n2));
  return out;
}

Result<std::string> aes_gcm_decrypt(std::string_view key, std::string_view iv, std::string_view aad,
                                    std::string_view ciphertext, std::string_view tag) {
  if (auto r = gcm_check_sizes(key, iv, ErrorCode::invalid_token); !r) return std::unexpected(r.error());
  if (tag.size() != k_gcm_tag) {
    return fail(ErrorCode::invalid_token, "authentication tag is " + std::to_string(tag.size()) +
                                              " bytes; AES-GCM in JWE requires exactly 16");
  }
  auto ctx = ossl::make(EVP_CIPHER_CTX_new());
  std::string out(ciphertext.size() + 16, '\0');
  std::string tag_copy(tag);  // EVP_CTRL_GCM_SET_TAG takes a non-const pointer
  int n = 0, n2 = 0, aad_len = 0;
  if (!ctx || EVP_DecryptInit_ex(ctx.get(), gcm_cipher(key.size()), nullptr, nullptr, nullptr) != 1 ||
      EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_SET_IVLEN, static_cast<int>(iv.size()), nullptr) != 1 ||
      EVP_DecryptInit_ex(ctx.get(), nullptr, nullptr, u8(key), u8(iv)) != 1 ||
      (!aad.empty() && EVP_DecryptUpdate(ctx.get(), nullptr, &aad_len, u8(aad), len_int(aad)) != 1) ||
      EVP_DecryptUpdate(ctx.get(), u8(out), &n, u8(ciphertext), len_int(ciphertext)) != 1 ||
      EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_SET_TAG, static_cast<int>(k_gcm_tag), tag_copy.data()) != 1) {
    return ossl::fail_ossl(ErrorCode::invalid_token, "AES-GCM decryption failed");
  }
  if (EVP_DecryptFinal_ex(ctx.get(), u8(out) + n, &n2) != 1) {
    OPENSSL_cleanse(out.data(), out.size());
    ossl::clear_errors();
    return fail(ErrorCode::invalid_token,
                "authentication tag mismatch: wrong key, or the header, iv, ciphertext or tag was modified");
  }
  out.resize(static_cast<std::size_t>(n + n2));
  return out;
}

Result<AeadOutput> aes_cbc_hmac_encrypt(std::string_view key, std::string_view iv, std::string_view aad,
                                        std::string_view plaintext) {
  auto p = cbc_hmac_params(key.size());
  if (!p) {
    return fail(ErrorCode::usage, "AES_CBC_HMAC_SHA2 needs a 32 or 64-byte key, not " +
                                      std::to_string(key.size()) + " bytes");
  }
  if (iv.size() != k_cbc_iv) {
    return fail(ErrorCode::usage, "AES-CBC initialization vector must be 16 bytes, not " + std::to_string(iv.size()));
  }
  const std::string_view mac_key = key.substr(0, p->half);
  const std::string_view enc_key = key.substr(p->half);
  auto ct = aes_cbc(p->cipher, enc_key, iv, plaintext, true);
  if (!ct) return std::unexpected(ct.error());
  auto mac = cbc_hmac_mac(*p, mac_key, aad, iv, *ct);
  if (!mac) return std::unexpected(mac.error());
  mac->resize(p->half);
  return AeadOutput{std::move(*ct), std::move(*mac)};
}

Result<std::string> aes_cbc_hmac_decrypt(std::string_view key, std::string_view iv, std::string_view aad,
                                         std::string_view ciphertext, std::string_view tag) {
  auto p = cbc_hmac_params(key.size());
  if (!p) {
    return fail(ErrorCode::usage, "AES_CBC_HMAC_SHA2 needs a 32 or 64-byte key, not " +
                                      std::to_string(key.size()) + " bytes");
  }
  if (iv.size() != k_cbc_iv) {
    return fail(ErrorCode::invalid_token, "AES-CBC initialization vector is " + std::to_string(iv.size()) +
                                              " bytes; JWE requires exactly 16");
  }
  if (tag.size() != p->half) {
    return fail(ErrorCode::invalid_token, "authentication tag is " + std::to_string(tag.size()) +
                                              " bytes; expected exactly " + std::to_string(p->half));
  }
  auto mac = cbc_hmac_mac(*p, key.substr(0, p->half), aad, iv, ciphertext);
  if (!mac) return std::unexpected(mac.error());
  if (CRYPTO_memcmp(mac->data(), tag.data(), p->half) != 0) {
    return fail(ErrorCode::invalid_token,
                "authentication tag mismatch: wrong key, or the header, iv, ciphertext or tag was modified");
  }
  return aes_cbc(p->cipher, key.substr(p->half), iv, ciphertext, false);
}

Result<std::string> concat_kdf(std::string_view shared_secret, std::string_view alg_id,
                               std::string_view apu, std::string_view apv, std::size_t key_bytes) {
  if (key_bytes == 0 || key_bytes > 64) {
    return fail(ErrorCode::usage, "Concat KDF output must be 1 to 64 bytes");
  }
  std::string info;
  put_len_prefixed(info, alg_id);
  put_len_prefixed(info, apu);
  put_len_prefixed(info, apv);
  put_be32(info, static_cast<std::uint32_t>(key_bytes * 8));
  EvpKdfPtr kdf{EVP_KDF_fetch(nullptr, "SSKDF", nullptr), &EVP_KDF_free};
  if (!kdf) return ossl::fail_ossl(ErrorCode::usage, "the SSKDF (Concat KDF) is not available");
  EvpKdfCtxPtr ctx{EVP_KDF_CTX_new(kdf.get()), &EVP_KDF_CTX_free};
  OSSL_PARAM params[] = {
      OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, const_cast<char*>("SHA256"), 0),
      OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, const_cast<char*>(shared_secret.data()),
                                        shared_secret.size()),
      OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, info.data(), info.size()),
      OSSL_PARAM_construct_end()};
  std::string out(key_bytes, '\0');
  if (!ctx || EVP_KDF_derive(ctx.get(), u8(out), out.size(), params) != 1) {
    return ossl::fail_ossl(ErrorCode::usage, "Concat KDF failed");
  }
  return out;
}

Result<std::string> ecdh_derive(const Jwk& priv, const Jwk& peer) {
  if (priv.kty() != KeyType::ec && priv.kty() != KeyType::okp) {
    return fail(ErrorCode::usage, "ECDH needs an EC or OKP (X25519/X448) key, not " + priv.describe());
  }
  if (priv.kty() == KeyType::okp && priv.crv() != "X25519" && priv.crv() != "X448") {
    return fail(ErrorCode::usage, "ECDH needs X25519 or X448, not " + priv.crv());
  }
  if (!priv.has_private()) return fail(ErrorCode::usage, "ECDH needs the private key");
  if (peer.kty() != priv.kty() || peer.crv() != priv.crv()) {
    return fail(ErrorCode::invalid_token, "the peer public key is " + peer.describe() +
                                              ", but ECDH with this key needs " + std::string(to_string(priv.kty())) +
                                              " " + priv.crv());
  }
  auto ctx = ossl::make(EVP_PKEY_CTX_new_from_pkey(nullptr, priv.pkey(), nullptr));
  if (!ctx || EVP_PKEY_derive_init(ctx.get()) != 1) {
    return ossl::fail_ossl(ErrorCode::usage, "cannot initialize key agreement");
  }
  if (priv.kty() == KeyType::ec) {
    // Invalid-curve defence: the peer point must be a valid point on the curve (the JWK parser
    // checks this too; this is the last line before the scalar multiplication).
    auto check = ossl::make(EVP_PKEY_CTX_new_from_pkey(nullptr, peer.pkey(), nullptr));
    if (!check || EVP_PKEY_public_check(check.get()) != 1) {
      return ossl::fail_ossl(ErrorCode::invalid_token,
                             "the peer public key is not a valid point on " + priv.crv());
    }
  }
  if (EVP_PKEY_derive_set_peer_ex(ctx.get(), peer.pkey(), 1) != 1) {
    return ossl::fail_ossl(ErrorCode::invalid_token, "the peer public key was refused for " + priv.crv());
  }
  std::size_t len = 0;
  if (EVP_PKEY_derive(ctx.get(), nullptr, &len) != 1) {
    return ossl::fail_ossl(ErrorCode::invalid_token, "key agreement failed");
  }
  std::string z(len, '\0');
  if (EVP_PKEY_derive(ctx.get(), u8(z), &len) != 1) {
    OPENSSL_cleanse(z.data(), z.size());
    return ossl::fail_ossl(ErrorCode::invalid_token,
                           "key agreement failed (low-order or invalid peer public key)");
  }
  z.resize(len);
  // X25519/X448 with a low-order peer give zero (RFC 7748 §6.1 check). For EC the secret is the
  // x-coordinate, which may legitimately be zero.
  if (priv.kty() == KeyType::okp && is_all_zero(z)) {
    OPENSSL_cleanse(z.data(), z.size());
    return fail(ErrorCode::invalid_token,
                "key agreement produced an all-zero shared secret (low-order peer public key)");
  }
  return z;
}

Result<std::string> pbkdf2_hmac(std::string_view digest, std::string_view password, std::string_view salt,
                                int iterations, std::size_t key_bytes) {
  if (iterations < 1) return fail(ErrorCode::usage, "PBKDF2 needs at least one iteration");
  ossl::EvpMdPtr md{EVP_MD_fetch(nullptr, std::string(digest).c_str(), nullptr), &EVP_MD_free};
  if (!md) return ossl::fail_ossl(ErrorCode::usage, "unknown digest '" + std::string(digest) + "'");
  std::string out(key_bytes, '\0');
  if (PKCS5_PBKDF2_HMAC(password.data(), len_int(password), u8(salt), len_int(salt), iterations, md.get(),
                        static_cast<int>(key_bytes), u8(out)) != 1) {
    return ossl::fail_ossl(ErrorCode::usage, "PBKDF2 failed");
  }
  return out;
}

Result<std::string> pbes2_derive_kek(KeyMgmtAlg alg, std::string_view password, std::string_view p2s,
                                     int p2c) {
  const char* digest = nullptr;
  std::size_t kek_bytes = 0;
  if (alg == KeyMgmtAlg::PBES2_HS256_A128KW) {
    digest = "SHA256";
    kek_bytes = 16;
  } else if (alg == KeyMgmtAlg::PBES2_HS512_A256KW) {
    digest = "SHA512";
    kek_bytes = 32;
  } else {
    return fail(ErrorCode::usage, std::string(to_string(alg)) + " is not a PBES2 algorithm");
  }
  std::string salt = to_string(alg);
  salt.push_back('\0');
  salt.append(p2s);
  return pbkdf2_hmac(digest, password, salt, p2c, kek_bytes);
}

namespace {

Result<ossl::EvpPkeyCtxPtr> oaep_ctx(const Jwk& key, OaepHash hash, bool encrypt) {
  if (key.kty() != KeyType::rsa) {
    return fail(encrypt ? ErrorCode::usage : ErrorCode::invalid_token,
                "RSA-OAEP needs an RSA key, not " + key.describe());
  }
  if (key.bits() < k_min_rsa_bits) {
    return fail(encrypt ? ErrorCode::usage : ErrorCode::invalid_token,
                "RSA keys must be at least " + std::to_string(k_min_rsa_bits) + " bits; this one has " +
                    std::to_string(key.bits()));
  }
  if (!encrypt && !key.has_private()) {
    return fail(ErrorCode::usage, "RSA-OAEP decryption needs the private key", "pass the private JWK or PEM");
  }
  auto ctx = ossl::make(EVP_PKEY_CTX_new_from_pkey(nullptr, key.pkey(), nullptr));
  const EVP_MD* md = hash == OaepHash::sha1 ? EVP_sha1() : EVP_sha256();
  if (!ctx || (encrypt ? EVP_PKEY_encrypt_init(ctx.get()) : EVP_PKEY_decrypt_init(ctx.get())) != 1 ||
      EVP_PKEY_CTX_set_rsa_padding(ctx.get(), RSA_PKCS1_OAEP_PADDING) != 1 ||
      EVP_PKEY_CTX_set_rsa_oaep_md(ctx.get(), md) != 1 || EVP_PKEY_CTX_set_rsa_mgf1_md(ctx.get(), md) != 1) {
    return ossl::fail_ossl(encrypt ? ErrorCode::usage : ErrorCode::invalid_token,
                           "cannot set up RSA-OAEP");
  }
  return ctx;
}

}  // namespace

Result<std::string> rsa_oaep_encrypt(const Jwk& key, OaepHash hash, std::string_view plaintext) {
  auto ctx = oaep_ctx(key, hash, true);
  if (!ctx) return std::unexpected(ctx.error());
  std::size_t len = 0;
  if (EVP_PKEY_encrypt(ctx->get(), nullptr, &len, u8(plaintext), plaintext.size()) != 1) {
    return ossl::fail_ossl(ErrorCode::usage, "RSA-OAEP encryption failed");
  }
  std::string out(len, '\0');
  if (EVP_PKEY_encrypt(ctx->get(), u8(out), &len, u8(plaintext), plaintext.size()) != 1) {
    return ossl::fail_ossl(ErrorCode::usage, "RSA-OAEP encryption failed");
  }
  out.resize(len);
  return out;
}

Result<std::string> rsa_oaep_decrypt(const Jwk& key, OaepHash hash, std::string_view ciphertext) {
  auto ctx = oaep_ctx(key, hash, false);
  if (!ctx) return std::unexpected(ctx.error());
  std::size_t len = 0;
  if (EVP_PKEY_decrypt(ctx->get(), nullptr, &len, u8(ciphertext), ciphertext.size()) != 1) {
    ossl::clear_errors();
    return fail(ErrorCode::invalid_token, "RSA-OAEP decryption failed");
  }
  std::string out(len, '\0');
  if (EVP_PKEY_decrypt(ctx->get(), u8(out), &len, u8(ciphertext), ciphertext.size()) != 1) {
    OPENSSL_cleanse(out.data(), out.size());
    ossl::clear_errors();
    return fail(ErrorCode::invalid_token, "RSA-OAEP decryption failed (wrong key or modified encrypted key)");
  }
  out.resize(len);
  return out;
}

}  // namespace tokctl::jose::jwe_crypto
