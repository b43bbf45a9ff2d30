#include <tokctl/tokens/token_store.hpp>



#include <tokctl/jose/digest.hpp>
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
    return fail_param(ErrorCode::usage, "store", "PostgreSQL store not built yet", "use a SQLite store (sqlite:PATH) for now");
  return fail(ErrorCode::usage, "unknown token store URL '" + url + "'",
              "use sqlite:PATH or postgresql://USER@HOST/DB");
}

void TokenStore::put_async(std::optional<GrantRecord> grant, std::vector<TokenRecord> tokens,
                           std::function<void(Result<void>)> done) {
  done(put(grant, tokens));
}

std::string token_hash(std::string_view token) {
  return hex_encode(jose::sha256(token));
}

}  // namespace tokctl::tokens
