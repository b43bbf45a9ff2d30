#include <tokctl/jose/digest.hpp>

#include <stdexcept>

#include <openssl/core_names.h>
#include <openssl/rand.h>

#include "ossl.hpp"

namespace tokctl::jose {

std::string digest(Digest d, std::string_view data) {
  const char* name = d == Digest::sha256 ? "SHA256" : d == Digest::sha384 ? "SHA384" : "SHA512";
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  const EVP_MD* alg = ossl::fetched_md(name);
  if (!alg || EVP_Digest(data.data(), data.size(), md, &len, alg, nullptr) != 1) {
    throw std::runtime_error(std::string(name) + " failed: " + ossl::drain_errors());
  }
  return std::string(reinterpret_cast<const char*>(md), len);
}

std::string hmac_sha256(std::string_view key, std::string_view data) {
  auto ctx = ossl::make(EVP_MAC_CTX_new(ossl::fetched_hmac()));
  OSSL_PARAM params[] = {
      OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, const_cast<char*>("SHA256"), 0),
      OSSL_PARAM_construct_end()};
  unsigned char out[EVP_MAX_MD_SIZE];
  std::size_t len = 0;
  if (!ctx ||
      EVP_MAC_init(ctx.get(), reinterpret_cast<const unsigned char*>(key.data()), key.size(), params) != 1 ||
      EVP_MAC_update(ctx.get(), reinterpret_cast<const unsigned char*>(data.data()), data.size()) != 1 ||
      EVP_MAC_final(ctx.get(), out, &len, sizeof out) != 1) {
    throw std::runtime_error("HMAC-SHA256 failed: " + ossl::drain_errors());
  }
  return std::string(reinterpret_cast<const char*>(out), len);
}

std::string random_bytes(std::size_t n) {
  std::string out(n, '\0');
  if (n && RAND_bytes(reinterpret_cast<unsigned char*>(out.data()), static_cast<int>(n)) != 1) {
    throw std::runtime_error("RAND_bytes failed");
  }
  return out;
}

}  // namespace tokctl::jose
