#include <tokctl/tokens/token_store.hpp>

#include <stdexcept>

#include <openssl/evp.h>

#include <tokctl/jose/ossl.hpp>
#include <tokctl/util/base64.hpp>

#include "sqlite_store.hpp"

namespace tokctl::tokens {

Result<std::unique_ptr<TokenStore>> open_token_store(const std::string& url) {
  constexpr std::string_view k_sqlite = "sqlite:";
  if (url.starts_with(k_sqlite)) {
    auto store = SqliteTokenStore::open(url.substr(k_sqlite.size()));
    if (!store) return std::unexpected(store.error());
    return std::unique_ptr<TokenStore>(std::move(*store));
  }
  if (url.starts_with("postgresql://") || url.starts_with("postgres://"))
    return fail(ErrorCode::usage, "PostgreSQL store not built yet", "use --store sqlite:PATH for now");
  return fail(ErrorCode::usage, "unknown token store URL '" + url + "'",
              "use sqlite:PATH or postgresql://USER@HOST/DB");
}

std::string token_hash(std::string_view token) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  // Only fails when OpenSSL cannot allocate or has no SHA-256 provider: nothing a caller can
  // handle, and an empty or wrong hash would silently mismatch every stored token.
  static EVP_MD* sha256 = EVP_MD_fetch(nullptr, "SHA256", nullptr);  // fetched once, not per token
  if (EVP_Digest(token.data(), token.size(), md, &len, sha256, nullptr) != 1 || len != 32)
    throw std::runtime_error("SHA-256 failed: " + ossl::drain_errors());
  return hex_encode(std::string_view(reinterpret_cast<const char*>(md), len));
}

}  // namespace tokctl::tokens
