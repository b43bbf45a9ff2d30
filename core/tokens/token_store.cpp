#include <tokctl/tokens/token_store.hpp>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <exception>

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
    return fail(ErrorCode::usage, "token store '" + url.substr(0, url.find("://")) + "://...': this tokctl has no PostgreSQL store",
                "set the policy's store to sqlite:PATH");
  return fail(ErrorCode::usage, "unknown token store URL '" + url + "'",
              "use sqlite:PATH or postgresql://USER@HOST/DB");
}

void TokenStore::put_async(std::optional<GrantRecord> grant, std::vector<TokenRecord> tokens,
                           std::function<void(Result<void>)> done) {
  done(put(grant, tokens));
}

void TokenStore::put_async(std::optional<GrantRecord> grant, std::function<std::vector<TokenRecord>()> make_rows,
                           std::function<void(Result<void>)> done) {
  std::vector<TokenRecord> rows;
  try {
    rows = make_rows();
  } catch (const std::exception& e) {
    return done(fail(ErrorCode::keystore, std::string("storing tokens: making their rows: ") + e.what()));
  }
  put_async(std::move(grant), std::move(rows), std::move(done));
}

std::string token_hash(std::string_view token) {
  std::string key(6, '\0');
  if (token.size() >= 8) {
    if (auto order = b64url_decode(token.substr(token.size() - 8)); order && order->size() == 6) key = *order;
  }
  key += jose::sha256(token).substr(0, 26);
  return hex_encode(key);
}

std::string legacy_token_hash(std::string_view token) { return hex_encode(jose::sha256(token)); }

Result<std::optional<TokenRecord>> find_token(TokenStore& store, std::string_view token) {
  auto found = store.find(token_hash(token));
  if (!found || *found || !store.may_hold_legacy_keys()) return found;
  return store.find(legacy_token_hash(token));
}

std::string opaque_token_value(std::string_view random, UnixTime iat, std::uint16_t tick) {
  const auto t = static_cast<std::uint32_t>(std::clamp<UnixTime>(iat, 0, 0xffffffff));
  const char order[6] = {static_cast<char>(t >> 24), static_cast<char>(t >> 16), static_cast<char>(t >> 8),
                         static_cast<char>(t),       static_cast<char>(tick >> 8), static_cast<char>(tick)};
  return b64url_encode(random.substr(0, 26)) + b64url_encode(std::string_view(order, 6));
}

std::string opaque_token_value(std::string_view random, UnixTime iat) {
  return opaque_token_value(random, iat, subsecond_tick());
}

std::uint16_t subsecond_tick() {
  const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(
                      std::chrono::system_clock::now().time_since_epoch()).count() % 1'000'000'000;
  return static_cast<std::uint16_t>((static_cast<std::uint64_t>(ns < 0 ? ns + 1'000'000'000 : ns) << 16) / 1'000'000'000);
}

}  // namespace tokctl::tokens
