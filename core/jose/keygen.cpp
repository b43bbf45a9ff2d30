#include <tokctl/jose/keygen.hpp>

#include <openssl/rand.h>
#include <openssl/rsa.h>

#include <tokctl/jose/algorithm.hpp>
#include <tokctl/jose/jwe.hpp>
#include "ossl.hpp"

namespace tokctl::jose {

namespace {

Result<Jwk> random_secret(std::size_t bytes, const std::string& alg, const char* use) {
  std::string secret(bytes, '\0');
  if (RAND_bytes(reinterpret_cast<unsigned char*>(secret.data()), static_cast<int>(secret.size())) != 1) {
    return ossl::fail_ossl(ErrorCode::usage, "random generation failed");
  }
  auto k = Jwk::from_secret(std::move(secret));
  if (k) {
    k->set_alg(alg);
    k->set_use(use);
  }
  return k;
}

Result<Jwk> with_alg(EVP_PKEY* pkey, const std::string& alg, const char* use) {
  auto k = Jwk::from_pkey(pkey);
  if (k) {
    k->set_alg(alg);
    k->set_use(use);
  }
  return k;
}

constexpr int k_max_hmac_bits = 8192;

Result<EVP_PKEY*> rsa_keygen(int bits) {
  if (bits < k_min_rsa_bits || bits > 16384) {
    return fail(ErrorCode::usage, "RSA keys must be 2048 to 16384 bits, not " + std::to_string(bits));
  }
  EVP_PKEY* pkey = nullptr;
  auto ctx = ossl::make(EVP_PKEY_CTX_new_from_name(nullptr, "RSA", nullptr));
  if (!ctx || EVP_PKEY_keygen_init(ctx.get()) != 1 || EVP_PKEY_CTX_set_rsa_keygen_bits(ctx.get(), bits) != 1 ||
      EVP_PKEY_generate(ctx.get(), &pkey) != 1) {
    return ossl::fail_ossl(ErrorCode::usage, "RSA key generation failed");
  }
  return pkey;
}

// Keys for JWE key management (RFC 7518 §4).
Result<Jwk> generate_jwe_key(const KeyGenOptions& o, KeyMgmtAlg alg) {
  const std::string name = to_string(alg);
  switch (alg) {
    case KeyMgmtAlg::RSA_OAEP:
    case KeyMgmtAlg::RSA_OAEP_256: {
      if (o.crv) return fail_param(ErrorCode::usage, "crv", "a curve does not apply to " + name);
      auto pkey = rsa_keygen(o.bits.value_or(2048));
      if (!pkey) return std::unexpected(pkey.error());
      return with_alg(*pkey, name, "enc");
    }
    case KeyMgmtAlg::ECDH_ES:
    case KeyMgmtAlg::ECDH_ES_A128KW:
    case KeyMgmtAlg::ECDH_ES_A256KW: {
      if (o.bits) return fail_param(ErrorCode::usage, "bits", "a key size in bits does not apply to " + name, "name a curve instead");
      std::string crv = o.crv.value_or("P-256");
      EVP_PKEY* pkey = nullptr;
      if (crv == "P-256" || crv == "P-384" || crv == "P-521") {
        pkey = EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", crv.c_str());
      } else if (crv == "X25519" || crv == "X448") {
        pkey = EVP_PKEY_Q_keygen(nullptr, nullptr, crv.c_str());
      } else {
        return fail(ErrorCode::usage, name + " keys use P-256, P-384, P-521, X25519 or X448, not " + crv);
      }
      if (!pkey) return ossl::fail_ossl(ErrorCode::usage, crv + " key generation failed");
      return with_alg(pkey, name, "enc");
    }
    case KeyMgmtAlg::A128KW:
    case KeyMgmtAlg::A256KW: {
      int need = alg == KeyMgmtAlg::A128KW ? 128 : 256;
      if (o.crv || (o.bits && *o.bits != need)) {
        return fail(ErrorCode::usage, name + " keys are exactly " + std::to_string(need) + " bits");
      }
      return random_secret(static_cast<std::size_t>(need / 8), name, "enc");
    }
    case KeyMgmtAlg::dir: {
      int bits = o.bits.value_or(256);
      if (o.crv || (bits != 128 && bits != 256 && bits != 512)) {
        return fail(ErrorCode::usage, "dir keys are 128 (A128GCM), 256 (A256GCM, A128CBC-HS256) or 512 "
                                      "(A256CBC-HS512) bits");
      }
      return random_secret(static_cast<std::size_t>(bits / 8), name, "enc");
    }
    case KeyMgmtAlg::PBES2_HS256_A128KW:
    case KeyMgmtAlg::PBES2_HS512_A256KW:
      break;
  }
  return fail_remedy(ErrorCode::usage, name + " derives its key from a passphrase; there is no key to generate",
                     "encrypt and decrypt with the passphrase", Remedy::pass_passphrase);
}

}  // namespace

Result<Jwk> generate_key(const KeyGenOptions& o) {
  auto alg = alg_from_string(o.alg);
  if (!alg) {
    if (auto jwe = key_mgmt_from_string(o.alg)) return generate_jwe_key(o, *jwe);
    return fail(ErrorCode::usage, "unknown or unsupported alg '" + o.alg + "'",
                "supported: " + supported_alg_names() + ", and for JWE " + supported_key_mgmt_names());
  }
  EVP_PKEY* pkey = nullptr;
  const std::string name = to_string(*alg);
  switch (key_type_for(*alg)) {
    case KeyType::oct: {
      int hash_bits = name == "HS256" ? 256 : name == "HS384" ? 384 : 512;
      int bits = o.bits.value_or(hash_bits);
      // HMAC hashes a secret longer than the hash's block (512 or 1024 bits) down first: a larger
      // one adds no strength, and one of megabytes made every keystore read fail (a key file is
      // read up to 1 MiB).
      if (bits < hash_bits || bits > k_max_hmac_bits || bits % 8 != 0) {
        return fail(ErrorCode::usage, name + " secrets must be a multiple of 8 bits from " + std::to_string(hash_bits) +
                                          " to " + std::to_string(k_max_hmac_bits) + " bits, not " +
                                          std::to_string(bits));
      }
      if (o.crv) return fail_param(ErrorCode::usage, "crv", "a curve does not apply to " + name);
      return random_secret(static_cast<std::size_t>(bits / 8), name, "sig");
    }
    case KeyType::rsa: {
      if (o.crv) return fail_param(ErrorCode::usage, "crv", "a curve does not apply to " + name);
      auto rsa = rsa_keygen(o.bits.value_or(2048));
      if (!rsa) return std::unexpected(rsa.error());
      pkey = *rsa;
      break;
    }
    case KeyType::ec: {
      const char* curve = name == "ES256" ? "P-256" : name == "ES384" ? "P-384" : "P-521";
      if (o.crv && *o.crv != curve) {
        return fail(ErrorCode::usage, name + " uses curve " + curve + ", not " + *o.crv);
      }
      if (o.bits) return fail_param(ErrorCode::usage, "bits", "a key size in bits does not apply to " + name);
      pkey = EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", curve);
      if (!pkey) return ossl::fail_ossl(ErrorCode::usage, "EC key generation failed");
      break;
    }
    case KeyType::okp: {
      std::string crv = o.crv.value_or("Ed25519");
      if (crv != "Ed25519" && crv != "Ed448") {
        return fail(ErrorCode::usage, "EdDSA uses Ed25519 or Ed448, not " + crv);
      }
      if (o.bits) return fail_param(ErrorCode::usage, "bits", "a key size in bits does not apply to EdDSA");
      pkey = EVP_PKEY_Q_keygen(nullptr, nullptr, crv == "Ed25519" ? "ED25519" : "ED448");
      if (!pkey) return ossl::fail_ossl(ErrorCode::usage, crv + " key generation failed");
      break;
    }
  }
  return with_alg(pkey, name, "sig");
}

}  // namespace tokctl::jose
