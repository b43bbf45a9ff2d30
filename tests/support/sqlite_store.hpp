#pragma once
// Opening the SQLite token store directly (its private header), for the store's own tests.

#include <catch2/catch.hpp>

#include <memory>
#include <string>

#include "tokens/sqlite_store.hpp"

namespace tokctl::test {

inline std::unique_ptr<tokens::SqliteTokenStore> open_sqlite(const std::string& path) {
  auto s = tokens::SqliteTokenStore::open(path);
  if (!s) FAIL("SqliteTokenStore::open " << path << ": " << s.error().message);
  return std::move(*s);
}

}  // namespace tokctl::test
