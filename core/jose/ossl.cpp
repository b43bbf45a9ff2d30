#include "ossl.hpp"

#include <cstring>

#include <openssl/err.h>

namespace tokctl::ossl {

std::string drain_errors() {
  std::string out;
  unsigned long e;
  char buf[256];
  while ((e = ERR_get_error()) != 0) {
    ERR_error_string_n(e, buf, sizeof buf);
    if (!out.empty()) out += "; ";
    out += buf;
  }
  return out;
}

std::unexpected<Error> fail_ossl(ErrorCode code, std::string what) {
  auto queue = drain_errors();
  if (!queue.empty()) what += " (openssl: " + queue + ")";
  return fail(code, std::move(what));
}

void clear_errors() { ERR_clear_error(); }

const EVP_MD* fetched_md(const char* name) {
  static EVP_MD* sha256 = EVP_MD_fetch(nullptr, "SHA256", nullptr);
  static EVP_MD* sha384 = EVP_MD_fetch(nullptr, "SHA384", nullptr);
  static EVP_MD* sha512 = EVP_MD_fetch(nullptr, "SHA512", nullptr);
  if (std::strcmp(name, "SHA256") == 0) return sha256;
  if (std::strcmp(name, "SHA384") == 0) return sha384;
  if (std::strcmp(name, "SHA512") == 0) return sha512;
  return nullptr;
}

EVP_MAC* fetched_hmac() {
  static EVP_MAC* mac = EVP_MAC_fetch(nullptr, "HMAC", nullptr);
  return mac;
}

}  // namespace tokctl::ossl
