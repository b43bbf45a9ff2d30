#include <tokctl/jose/keygen.hpp>

#include <openssl/rand.h>
#include <openssl/rsa.h>

#include <tokctl/jose/algorithm.hpp>
#include <tokctl/jose/ossl.hpp>

namespace tokctl::jose {

Result<Jwk> generate_key(const KeyGenOptions& o) {
  auto alg = alg_from_string(o.alg);
  if (!alg) {
    return fail(ErrorCode::usage, "unknown or unsupported alg '" + o.alg + "'",
                "supported: " + supported_alg_names());
  }
  EVP_PKEY* pkey = nullptr;
  const std::string name = to_string(*alg);
  switch (key_type_for(*alg)) {
    case KeyType::oct: {
      int hash_bits = name == "HS256" ? 256 : name == "HS384" ? 384 : 512;
      int bits = o.bits.value_or(hash_bits);
      if (bits < hash_bits || bits % 8 != 0) {
        return fail(ErrorCode::usage, name + " secrets must be a multiple of 8 bits and at least " +
                                          std::to_string(hash_bits) + " bits");
      }
      if (o.crv) return fail(ErrorCode::usage, "--crv does not apply to " + name);
      std::string secret(static_cast<std::size_t>(bits / 8), '\0');
      if (RAND_bytes(reinterpret_cast<unsigned char*>(secret.data()), static_cast<int>(secret.size())) != 1) {
        return ossl::fail_ossl(ErrorCode::usage, "random generation failed");
      }
      auto k = Jwk::from_secret(std::move(secret));
      if (k) k->set_alg(name);
      return k;
    }
    case KeyType::rsa: {
      int bits = o.bits.value_or(2048);
      if (bits < k_min_rsa_bits || bits > 16384) {
        return fail(ErrorCode::usage, "RSA keys must be 2048 to 16384 bits, not " + std::to_string(bits));
      }
      if (o.crv) return fail(ErrorCode::usage, "--crv does not apply to " + name);
      auto ctx = ossl::make(EVP_PKEY_CTX_new_from_name(nullptr, "RSA", nullptr));
      if (!ctx || EVP_PKEY_keygen_init(ctx.get()) != 1 ||
          EVP_PKEY_CTX_set_rsa_keygen_bits(ctx.get(), bits) != 1 ||
          EVP_PKEY_generate(ctx.get(), &pkey) != 1) {
        return ossl::fail_ossl(ErrorCode::usage, "RSA key generation failed");
      }
      break;
    }
    case KeyType::ec: {
      const char* curve = name == "ES256" ? "P-256" : name == "ES384" ? "P-384" : "P-521";
      if (o.crv && *o.crv != curve) {
        return fail(ErrorCode::usage, name + " uses curve " + curve + ", not " + *o.crv);
      }
      if (o.bits) return fail(ErrorCode::usage, "--bits does not apply to " + name);
      pkey = EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", curve);
      if (!pkey) return ossl::fail_ossl(ErrorCode::usage, "EC key generation failed");
      break;
    }
    case KeyType::okp: {
      std::string crv = o.crv.value_or("Ed25519");
      if (crv != "Ed25519" && crv != "Ed448") {
        return fail(ErrorCode::usage, "EdDSA uses Ed25519 or Ed448, not " + crv);
      }
      if (o.bits) return fail(ErrorCode::usage, "--bits does not apply to EdDSA");
      pkey = EVP_PKEY_Q_keygen(nullptr, nullptr, crv == "Ed25519" ? "ED25519" : "ED448");
      if (!pkey) return ossl::fail_ossl(ErrorCode::usage, crv + " key generation failed");
      break;
    }
  }
  auto k = Jwk::from_pkey(pkey);
  if (k) k->set_alg(name);
  return k;
}

}  // namespace tokctl::jose
