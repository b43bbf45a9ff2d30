// The token store (tokctl/tokens/token_store.hpp, issue 4 point 2): SQLite round trips, grant,
// client and subject revocation, the JWT deny-list, pruning, schema versions, file mode, WAL, and
// four processes writing one database at once. Every store lives in its own TempDir; the raw
// sqlite3 API is used only to look behind the interface (row counts, pragmas).

#include <tokctl/tokens/token_store.hpp>
#include <tokctl/util/base64.hpp>

#include <catch2/catch.hpp>
#include <sqlite3.h>

#include <chrono>
#include <cstdio>
#include <ctime>
#include <initializer_list>
#include <memory>
#include <sstream>
#include <cstring>
#include <thread>
#include <string>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <vector>

#include "support/run.hpp"
#include "support/sqlite_store.hpp"
#include "tokens/sqlite_sql.hpp"
#include "tokens/sqlite_store.hpp"

using tokctl::ErrorCode;
using tokctl::UnixTime;
using tokctl::test::read_file;
using tokctl::test::TempDir;
using tokctl::tokens::GrantRecord;
using tokctl::tokens::open_token_store;
using tokctl::tokens::find_token;
using tokctl::tokens::legacy_token_hash;
using tokctl::tokens::opaque_token_value;
using tokctl::tokens::subsecond_tick;
using tokctl::tokens::token_hash;
using tokctl::tokens::TokenRecord;
using tokctl::tokens::TokenStore;
using Catch::Matchers::Contains;

namespace {

// 2026-01-01T00:00:00Z.
constexpr UnixTime k_t0 = 1767225600;
// 2: grants.expires, 3: grants.jwts, 4: tokens.consumed, 5: no jti index, 6: BLOB keys, WITHOUT ROWID
constexpr int k_schema_version = 8;

std::unique_ptr<TokenStore> open_store(const std::string& path) {
  auto s = open_token_store("sqlite:" + path);
  if (!s) FAIL("open_token_store: " << s.error().message);
  return std::move(*s);
}

GrantRecord make_grant(const std::string& id, const std::string& client = "cli-a", const std::string& sub = "alice") {
  return {.id = id, .client_id = client, .sub = sub, .scope = "read write", .started = k_t0, .revoked = false};
}

TokenRecord make_token(const std::string& name, const std::string& grant_id = "", const std::string& client = "cli-a",
                       const std::string& sub = "alice", UnixTime exp = k_t0 + 3600) {
  TokenRecord t;
  t.hash = token_hash(name);
  t.kind = "access";
  t.format = "opaque";
  t.grant_id = grant_id;
  t.client_id = client;
  t.sub = sub;
  t.scope = "read write";
  t.aud = R"(["api-a"])";
  t.iss = "https://issuer.example";
  t.jti = "jti-" + name;
  t.iat = k_t0;
  t.nbf = k_t0;
  t.exp = exp;
  t.claims = R"({"sub":"alice","scope":"read write"})";
  t.data = "";
  return t;
}

bool revoked(TokenStore& store, const std::string& name) {
  auto t = store.find(token_hash(name));
  REQUIRE(t);
  REQUIRE(t->has_value());
  return (*t)->revoked;
}

// Raw read-only look behind the interface.
class RawDb {
 public:
  explicit RawDb(const std::string& path) {
    if (sqlite3_open_v2(path.c_str(), &m_db, SQLITE_OPEN_READWRITE, nullptr) != SQLITE_OK)
      FAIL("sqlite3_open_v2 " << path << ": " << sqlite3_errmsg(m_db));
    sqlite3_busy_timeout(m_db, 10'000);
    // Schema 8's triggers call it before a row changes; tokctl registers it, an older tokctl does
    // not (and so cannot change rows). These tests change rows behind the store on purpose.
    sqlite3_create_function_v2(
        m_db, "tokctl_counted_write", 0, SQLITE_UTF8 | SQLITE_INNOCUOUS, nullptr,
        [](sqlite3_context* c, int, sqlite3_value**) { sqlite3_result_null(c); }, nullptr, nullptr, nullptr);
  }
  ~RawDb() { sqlite3_close_v2(m_db); }
  RawDb(const RawDb&) = delete;
  RawDb& operator=(const RawDb&) = delete;

  std::string text(const std::string& sql) {
    sqlite3_stmt* s = nullptr;
    REQUIRE(sqlite3_prepare_v2(m_db, sql.c_str(), -1, &s, nullptr) == SQLITE_OK);
    std::string out;
    if (sqlite3_step(s) == SQLITE_ROW && sqlite3_column_text(s, 0))
      out = reinterpret_cast<const char*>(sqlite3_column_text(s, 0));
    sqlite3_finalize(s);
    return out;
  }
  std::int64_t number(const std::string& sql) { return std::stoll(text(sql)); }
  /// EXPLAIN QUERY PLAN's details, one per line.
  std::string plan(const std::string& sql) {
    sqlite3_stmt* s = nullptr;
    REQUIRE(sqlite3_prepare_v2(m_db, ("EXPLAIN QUERY PLAN " + sql).c_str(), -1, &s, nullptr) == SQLITE_OK);
    std::string out;
    while (sqlite3_step(s) == SQLITE_ROW) out += std::string(reinterpret_cast<const char*>(sqlite3_column_text(s, 3))) + "\n";
    sqlite3_finalize(s);
    return out;
  }
  void exec(const std::string& sql) {
    INFO(sql);
    REQUIRE(sqlite3_exec(m_db, sql.c_str(), nullptr, nullptr, nullptr) == SQLITE_OK);
  }

 private:
  sqlite3* m_db = nullptr;
};

}  // namespace

TEST_CASE("token_hash: the order its last 8 characters encode, then SHA-256; legacy_token_hash: SHA-256", "[store]") {
  CHECK(legacy_token_hash("") == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  CHECK(legacy_token_hash("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  // Too short, or not base64url at the end: a zero prefix.
  CHECK(token_hash("") == "000000000000e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495");
  CHECK(token_hash("abc") == "000000000000ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410");
  CHECK(token_hash("x.y.z!!!!!!!!").substr(0, 12) == "000000000000");
  // "AQIDBAUG" is base64url of 01 02 03 04 05 06.
  const std::string t = "prefix-AQIDBAUG";
  CHECK(token_hash(t) == "010203040506" + legacy_token_hash(t).substr(0, 52));
}

TEST_CASE("opaque_token_value: 43 characters, 208 random bits, then the issue time and tick; keys sort by them",
          "[store]") {
  std::string random(26, '\0');
  for (std::size_t i = 0; i < random.size(); ++i) random[i] = static_cast<char>(0x11 * (i + 1));
  const std::string v = opaque_token_value(random, 0x6a0b0c0d, 0x0e0f);
  CHECK(v.size() == 43);
  CHECK(v.find_first_not_of("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_") == std::string::npos);
  CHECK(v.substr(0, 35) == tokctl::b64url_encode(random));
  CHECK(*tokctl::b64url_decode(v.substr(35)) == std::string("\x6a\x0b\x0c\x0d\x0e\x0f", 6));
  CHECK(token_hash(v).substr(0, 12) == "6a0b0c0d0e0f");
  // Different random bytes, different tokens and keys; a later second, or a later tick within one
  // second, sorts after, whatever the hash.
  std::string other = random;
  other[0] = 'x';
  CHECK(opaque_token_value(other, 0x6a0b0c0d, 0x0e0f) != v);
  CHECK(token_hash(opaque_token_value(other, 0x6a0b0c0d, 0x0e0f)).substr(12) != token_hash(v).substr(12));
  for (int i = 0; i < 50; ++i) {
    std::string r1(26, static_cast<char>(i * 5)), r2(26, static_cast<char>(255 - i));
    CHECK(token_hash(opaque_token_value(r1, k_t0 + i, 0xffff)) < token_hash(opaque_token_value(r2, k_t0 + i + 1, 0)));
    const auto tick = static_cast<std::uint16_t>(i * 1000);
    CHECK(token_hash(opaque_token_value(r1, k_t0, tick)) < token_hash(opaque_token_value(r2, k_t0, tick + 1)));
  }
  // The two-argument form takes the clock's tick.
  const std::uint16_t before = subsecond_tick();
  const std::string now_value = opaque_token_value(random, k_t0);
  const auto tail = tokctl::b64url_decode(now_value.substr(35));
  REQUIRE(tail);
  const auto tick = static_cast<std::uint16_t>((static_cast<unsigned char>((*tail)[4]) << 8) | static_cast<unsigned char>((*tail)[5]));
  const std::uint16_t after = subsecond_tick();
  CHECK((before <= after ? before <= tick && tick <= after : tick >= before || tick <= after));  // (a second may turn)
  // Times outside 32 bits are clamped, never wrapped.
  CHECK(token_hash(opaque_token_value(random, -5, 0)).substr(0, 8) == "00000000");
  CHECK(token_hash(opaque_token_value(random, UnixTime{1} << 40, 0)).substr(0, 8) == "ffffffff");
}

TEST_CASE("open_token_store refuses unknown and not yet built URLs", "[store]") {
  auto pg = open_token_store("postgresql://u:hunter2@db/tokens");
  REQUIRE_FALSE(pg);
  CHECK(pg.error().code == ErrorCode::usage);
  CHECK_THAT(pg.error().message, Contains("no PostgreSQL store"));
  CHECK(pg.error().param.empty());  // a policy setting, not a flag: never shown as "--store:"
  CHECK_THAT(pg.error().message, !Contains("hunter2"));  // the URL's password is never echoed
  auto bare = open_token_store("/tmp/tokens.db");
  REQUIRE_FALSE(bare);
  CHECK(bare.error().code == ErrorCode::usage);
  auto empty = open_token_store("sqlite:");
  REQUIRE_FALSE(empty);
  CHECK(empty.error().code == ErrorCode::usage);
}

TEST_CASE("open_token_store reports a missing directory and a file that is not a database", "[store]") {
  TempDir dir;
  auto missing = open_token_store("sqlite:" + dir.file("no/such/dir/tokens.db"));
  REQUIRE_FALSE(missing);
  CHECK(missing.error().code == ErrorCode::keystore);
  CHECK_THAT(missing.error().message, Contains("no/such/dir/tokens.db"));

  tokctl::test::write_file(dir.file("junk.db"), std::string(4096, 'x'));
  auto junk = open_token_store("sqlite:" + dir.file("junk.db"));
  REQUIRE_FALSE(junk);
  CHECK(junk.error().code == ErrorCode::keystore);
  CHECK_THAT(junk.error().message, Contains("not a database"));
}

TEST_CASE("a stored token and grant come back with every field", "[store]") {
  TempDir dir;
  auto store = open_store(dir.file("tokens.db"));
  GrantRecord g{.id = "g-1", .client_id = "cli-a", .sub = "alice", .scope = "read video_stream_4k",
                .started = k_t0 - 10, .revoked = false};
  TokenRecord t;
  t.hash = token_hash("tok-1");
  t.kind = "split";
  t.format = "jwt";
  t.grant_id = "g-1";
  t.client_id = "cli-a";
  t.sub = "alice";
  t.scope = "read video_stream_4k";
  t.aud = R"(["api-a","api-b"])";
  t.iss = "https://issuer.example";
  t.jti = "jti-1";
  t.iat = k_t0;
  t.nbf = k_t0 + 5;
  t.exp = k_t0 + 900;
  t.claims = R"({"name":"Ålice \"q\"","n":1})";
  t.data = std::string("eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9\0tail", 46);  // embedded NUL survives
  t.revoked = false;
  TokenRecord loose = make_token("tok-2");  // no grant
  loose.revoked = true;
  const std::vector<TokenRecord> tokens{t, loose};
  REQUIRE(store->put(g, tokens));

  auto found = store->find(t.hash);
  REQUIRE(found);
  REQUIRE(found->has_value());
  const TokenRecord& f = **found;
  CHECK(f.hash == t.hash);
  CHECK(f.kind == t.kind);
  CHECK(f.format == t.format);
  CHECK(f.grant_id == t.grant_id);
  CHECK(f.client_id == t.client_id);
  CHECK(f.sub == t.sub);
  CHECK(f.scope == t.scope);
  CHECK(f.aud == t.aud);
  CHECK(f.iss == t.iss);
  CHECK(f.jti == t.jti);
  CHECK(f.iat == t.iat);
  CHECK(f.nbf == t.nbf);
  CHECK(f.exp == t.exp);
  CHECK(f.claims == t.claims);
  CHECK(f.data == t.data);
  CHECK(f.revoked == false);

  auto l = store->find(loose.hash);
  REQUIRE(l);
  REQUIRE(l->has_value());
  CHECK((*l)->grant_id.empty());
  CHECK((*l)->revoked);

  auto fg = store->grant("g-1");
  REQUIRE(fg);
  REQUIRE(fg->has_value());
  CHECK((*fg)->id == g.id);
  CHECK((*fg)->client_id == g.client_id);
  CHECK((*fg)->sub == g.sub);
  CHECK((*fg)->scope == g.scope);
  CHECK((*fg)->started == g.started);
  CHECK((*fg)->revoked == false);

  // Survives closing and reopening.
  store.reset();
  auto again = open_store(dir.file("tokens.db"));
  auto f2 = again->find(t.hash);
  REQUIRE(f2);
  REQUIRE(f2->has_value());
  CHECK((*f2)->data == t.data);
}

TEST_CASE("find and grant give nullopt for unknown keys", "[store]") {
  TempDir dir;
  auto store = open_store(dir.file("tokens.db"));
  auto t = store->find(token_hash("never issued"));
  REQUIRE(t);
  CHECK_FALSE(t->has_value());
  auto g = store->grant("no-such-grant");
  REQUIRE(g);
  CHECK_FALSE(g->has_value());
}

TEST_CASE("put is all or nothing", "[store]") {
  TempDir dir;
  auto store = open_store(dir.file("tokens.db"));
  REQUIRE(store->put(std::nullopt, std::vector{make_token("dup")}));
  // The second token repeats a hash: the grant and the first token must not stay behind.
  auto r = store->put(make_grant("g-x"), std::vector{make_token("fresh", "g-x"), make_token("dup", "g-x")});
  REQUIRE_FALSE(r);
  CHECK(r.error().code == ErrorCode::keystore);
  CHECK_THAT(r.error().message, Contains("put") && Contains("UNIQUE"));
  CHECK_FALSE(store->find(token_hash("fresh"))->has_value());
  CHECK_FALSE(store->grant("g-x")->has_value());

  // A token naming a grant that was never stored is refused (foreign key).
  auto orphan = store->put(std::nullopt, std::vector{make_token("orphan", "g-missing")});
  REQUIRE_FALSE(orphan);
  CHECK_THAT(orphan.error().message, Contains("FOREIGN KEY"));
}

TEST_CASE("re-storing a grant adds tokens to it and never un-revokes it", "[store]") {
  TempDir dir;
  auto store = open_store(dir.file("tokens.db"));
  REQUIRE(store->put(make_grant("g-1"), std::vector{make_token("a", "g-1")}));
  REQUIRE(store->revoke_grant("g-1") == 1);
  REQUIRE(store->put(make_grant("g-1"), std::vector{make_token("b", "g-1")}));
  CHECK((*store->grant("g-1"))->revoked);
  CHECK(revoked(*store, "b"));
  // Adding to an existing grant without re-sending it (refresh flow).
  REQUIRE(store->put(std::nullopt, std::vector{make_token("c", "g-1")}));
  CHECK(revoked(*store, "c"));
}

TEST_CASE("revoking a grant revokes every token in it, and only those", "[store]") {
  TempDir dir;
  auto store = open_store(dir.file("tokens.db"));
  REQUIRE(store->put(make_grant("g-1"), std::vector{make_token("a1", "g-1"), make_token("a2", "g-1")}));
  REQUIRE(store->put(make_grant("g-2"), std::vector{make_token("b1", "g-2")}));

  auto n = store->revoke_grant("g-1");
  REQUIRE(n);
  CHECK(*n == 2);
  CHECK(revoked(*store, "a1"));
  CHECK(revoked(*store, "a2"));
  CHECK_FALSE(revoked(*store, "b1"));
  CHECK((*store->grant("g-1"))->revoked);
  CHECK_FALSE((*store->grant("g-2"))->revoked);
}

TEST_CASE("find folds the grant's revocation into the token", "[store]") {
  TempDir dir;
  const std::string path = dir.file("tokens.db");
  auto store = open_store(path);
  REQUIRE(store->put(make_grant("g-1"), std::vector{make_token("a1", "g-1")}));
  {
    RawDb raw(path);  // grant revoked, token row untouched
    raw.exec("UPDATE grants SET revoked = 1 WHERE id = 'g-1'");
    CHECK(raw.number("SELECT revoked FROM tokens") == 0);
  }
  CHECK(revoked(*store, "a1"));
}

TEST_CASE("revoking a client or a subject revokes all their tokens and grants", "[store]") {
  TempDir dir;
  auto store = open_store(dir.file("tokens.db"));
  REQUIRE(store->put(make_grant("g-a", "cli-a", "alice"),
                     std::vector{make_token("a-alice", "g-a", "cli-a", "alice")}));
  REQUIRE(store->put(make_grant("g-b", "cli-b", "alice"),
                     std::vector{make_token("b-alice", "g-b", "cli-b", "alice")}));
  REQUIRE(store->put(make_grant("g-c", "cli-b", "bob"), std::vector{make_token("b-bob", "g-c", "cli-b", "bob")}));
  REQUIRE(store->put(std::nullopt, std::vector{make_token("loose-a", "", "cli-a", "carol")}));

  auto c = store->revoke_client("cli-a");
  REQUIRE(c);
  CHECK(*c == 2);
  CHECK(revoked(*store, "a-alice"));
  CHECK(revoked(*store, "loose-a"));
  CHECK_FALSE(revoked(*store, "b-alice"));
  CHECK((*store->grant("g-a"))->revoked);
  CHECK_FALSE((*store->grant("g-b"))->revoked);

  auto s = store->revoke_subject("alice");
  REQUIRE(s);
  CHECK(*s == 1);  // a-alice was already revoked
  CHECK(revoked(*store, "b-alice"));
  CHECK_FALSE(revoked(*store, "b-bob"));
  CHECK((*store->grant("g-b"))->revoked);
  CHECK_FALSE((*store->grant("g-c"))->revoked);
}

// Issue 7 point 12: JWTs have no rows, so grants count them; a revocation reports every active
// token it revoked, and reaching a grant through a row's (pairwise) sub revokes the whole grant.
TEST_CASE("revocations count the JWTs of the grants they revoke", "[store]") {
  TempDir dir;
  auto store = open_store(dir.file("tokens.db"));
  GrantRecord g1 = make_grant("g-1", "cli-a", "alice");
  g1.jwts = 3;
  REQUIRE(store->put(g1, std::vector{make_token("r1", "g-1")}));
  g1.jwts = 2;  // the grant continued: two more JWTs
  REQUIRE(store->put(g1, std::vector<TokenRecord>{}));
  CHECK((*store->grant("g-1"))->jwts == 5);
  GrantRecord g2 = make_grant("g-2", "cli-b", "alice");
  g2.jwts = 1;
  REQUIRE(store->put(g2, std::vector{make_token("pairwise-row", "g-2", "cli-b", "ppid-of-alice")}));
  GrantRecord g3 = make_grant("g-3", "cli-a", "bob");
  g3.jwts = 4;
  REQUIRE(store->put(g3, std::vector<TokenRecord>{}));

  auto g = store->revoke_grant("g-1");
  REQUIRE(g);
  CHECK(*g == 6);  // five JWTs and one row
  CHECK(store->revoke_grant("g-1") == 0);

  // The pairwise sub (a row's sub) reaches its grant: the grant's JWT and the row are counted.
  auto p = store->revoke_subject("ppid-of-alice");
  REQUIRE(p);
  CHECK(*p == 2);
  CHECK((*store->grant("g-2"))->revoked);
  CHECK(store->revoke_subject("alice") == 0);

  auto c = store->revoke_client("cli-a");
  REQUIRE(c);
  CHECK(*c == 4);  // bob's grant; g-1 was already revoked
}

// A store at an older schema version: grant g-old holding `token`, written by this build, taken
// back to schema 5 (hex TEXT keys, a rowid table: the keys stay what token_hash made, or become
// the legacy SHA-256 with `legacy_key`), then to `version` by the `downgrade` statements.
namespace {
void make_old_store(const std::string& path, const TokenRecord& token, std::initializer_list<const char*> downgrade,
                    int version, const std::string& legacy_key = {}) {
  {
    auto store = open_store(path);
    REQUIRE(store->put(make_grant("g-old"), std::vector{token}));
  }
  RawDb raw(path);
  for (const char* t : {"tokens_update_counted", "tokens_delete_counted", "grants_update_counted", "grants_delete_counted"})
    raw.exec(std::string("DROP TRIGGER ") + t);  // schema 8's
  raw.exec(
      "CREATE TABLE tokens_v5 (hash TEXT PRIMARY KEY NOT NULL, kind TEXT NOT NULL, format TEXT NOT NULL, "
      "grant_id TEXT REFERENCES grants(id), client_id TEXT NOT NULL, sub TEXT NOT NULL, scope TEXT NOT NULL, "
      "aud TEXT NOT NULL, iss TEXT NOT NULL, jti TEXT NOT NULL, iat INTEGER NOT NULL, nbf INTEGER NOT NULL, "
      "exp INTEGER NOT NULL, claims TEXT NOT NULL, data TEXT NOT NULL, revoked INTEGER NOT NULL DEFAULT 0, "
      "consumed INTEGER NOT NULL DEFAULT 0)");
  raw.exec("INSERT INTO tokens_v5 SELECT " + (legacy_key.empty() ? std::string("lower(hex(key))") : "'" + legacy_key + "'") +
           ", kind, format, grant_id, client_id, sub, scope, aud, iss, jti, iat, nbf, exp, claims, data, revoked, "
           "consumed FROM tokens");
  raw.exec("DROP TABLE tokens");
  raw.exec("ALTER TABLE tokens_v5 RENAME TO tokens");
  for (const char* index : {"grant_id", "client_id", "sub", "exp"})
    raw.exec(std::string("CREATE INDEX tokens_") + index + " ON tokens(" + index + ")");
  raw.exec("DROP INDEX grants_expires");
  raw.exec("DROP TABLE legacy_keys");
  for (const char* sql : downgrade) raw.exec(sql);
  raw.exec("PRAGMA user_version = " + std::to_string(version));
}
}  // namespace

TEST_CASE("a version 5 store is migrated: hex keys become BLOBs, legacy keys are still found", "[store]") {
  TempDir dir;
  const std::string path = dir.file("tokens.db");
  // A token issued by schema 5 builds: keyed by the plain SHA-256 of its text.
  const std::string old_token = "tok_" + std::string(43, 'Q');
  TokenRecord old = make_token("unused", "g-old");
  old.claims = R"({"old":true})";
  make_old_store(path, old, {}, 5, legacy_token_hash(old_token));
  {
    RawDb raw(path);
    CHECK(raw.number("SELECT count(*) FROM tokens WHERE typeof(hash) = 'text'") == 1);
  }
  auto store = open_store(path);
  RawDb raw(path);
  CHECK(raw.number("PRAGMA user_version") == k_schema_version);
  CHECK(raw.number("SELECT count(*) FROM tokens WHERE typeof(key) = 'blob' AND length(key) = 32") == 1);
  CHECK(raw.number("SELECT count(*) FROM sqlite_master WHERE name = 'tokens' AND sql LIKE '%key%BLOB PRIMARY KEY%'") == 1);
  CHECK(raw.number("SELECT count(*) FROM sqlite_master WHERE name = 'tokens_v6'") == 0);
  CHECK(raw.number("SELECT count(*) FROM sqlite_master WHERE type = 'index' AND name = 'grants_expires'") == 1);
  CHECK(raw.number("SELECT count(*) FROM sqlite_master WHERE type = 'index' AND tbl_name = 'tokens' AND sql IS NOT NULL") ==
        4);
  // Not under its new key (it was never issued with one), found under the legacy one.
  CHECK_FALSE(store->find(token_hash(old_token))->has_value());
  auto found = find_token(*store, old_token);
  REQUIRE(found);
  REQUIRE(found->has_value());
  CHECK((*found)->claims == R"({"old":true})");
  CHECK((*found)->hash == legacy_token_hash(old_token));
  CHECK(store->revoke_token((*found)->hash) == 1);
  CHECK((*find_token(*store, old_token))->revoked);
  // A new token next to it is found under its own key; an unknown one under neither.
  TokenRecord fresh = make_token("unused-2", "g-old");
  const std::string new_token = "tok_" + opaque_token_value(std::string(26, 'r'), k_t0);
  fresh.hash = token_hash(new_token);
  REQUIRE(store->put(make_grant("g-old"), std::vector{fresh}));
  auto f = find_token(*store, new_token);
  REQUIRE(f);
  REQUIRE(f->has_value());
  CHECK((*f)->hash == token_hash(new_token));
  CHECK_FALSE(find_token(*store, "tok_" + opaque_token_value(std::string(26, 's'), k_t0))->has_value());
}

TEST_CASE("legacy keys are looked up only while a migrated store may hold them", "[store]") {
  TempDir dir;
  const std::string old_token = "tok_" + std::string(43, 'L');
  SECTION("a new store never tries the legacy key") {
    const std::string path = dir.file("new.db");
    auto store = open_store(path);
    CHECK_FALSE(store->may_hold_legacy_keys());
    // A row under a legacy key (which no build of this schema writes) is not found by find_token:
    // a miss costs one lookup.
    TokenRecord planted = make_token("unused", "g");
    planted.hash = legacy_token_hash(old_token);
    REQUIRE(store->put(make_grant("g"), std::vector{planted}));
    CHECK(store->find(legacy_token_hash(old_token))->has_value());
    CHECK_FALSE(find_token(*store, old_token)->has_value());
  }
  SECTION("a migrated store tries it until prune has removed the last legacy row") {
    const std::string path = dir.file("old.db");
    TokenRecord old = make_token("unused", "g-old", "cli-a", "alice", k_t0 + 3600);
    make_old_store(path, old, {}, 5, legacy_token_hash(old_token));
    auto store = open_store(path);
    CHECK(store->may_hold_legacy_keys());
    {
      RawDb raw(path);
      CHECK(raw.number("SELECT until FROM legacy_keys") == k_t0 + 3600);
    }
    CHECK(find_token(*store, old_token)->has_value());
    REQUIRE(store->prune(k_t0 + 3600));  // not yet past its exp: kept, and still looked up
    CHECK(store->may_hold_legacy_keys());
    CHECK(find_token(*store, old_token)->has_value());
    REQUIRE(store->prune(k_t0 + 3601));
    CHECK_FALSE(store->may_hold_legacy_keys());
    CHECK_FALSE(store->find(legacy_token_hash(old_token))->has_value());  // the row went with it
    auto reopened = open_store(path);
    CHECK_FALSE(reopened->may_hold_legacy_keys());
  }
  SECTION("a legacy row that never expires keeps the lookup for ever") {
    const std::string path = dir.file("forever.db");
    TokenRecord old = make_token("unused", "g-old", "cli-a", "alice", 0);
    make_old_store(path, old, {}, 5, legacy_token_hash(old_token));
    auto store = open_store(path);
    REQUIRE(store->prune(k_t0 + UnixTime{100} * 365 * 86400));
    CHECK(store->may_hold_legacy_keys());
    CHECK(find_token(*store, old_token)->has_value());
  }
}

TEST_CASE("a version 5 store with a key that is not hex fails to migrate and keeps its rows", "[store]") {
  TempDir dir;
  const std::string path = dir.file("tokens.db");
  make_old_store(path, make_token("old", "g-old"), {}, 5, "not-a-hex-key");
  auto s = open_token_store("sqlite:" + path);
  REQUIRE_FALSE(s);
  CHECK(s.error().code == tokctl::ErrorCode::keystore);
  CHECK_THAT(s.error().message, Contains("version 6"));
  RawDb raw(path);
  CHECK(raw.number("PRAGMA user_version") == 5);
  CHECK(raw.number("SELECT count(*) FROM tokens WHERE hash = 'not-a-hex-key'") == 1);
}

TEST_CASE("a version 2 store is migrated: grants keep their rows and count no JWTs", "[store]") {
  TempDir dir;
  const std::string path = dir.file("tokens.db");
  make_old_store(path, make_token("old", "g-old"),
                 {"ALTER TABLE tokens DROP COLUMN consumed", "ALTER TABLE grants DROP COLUMN jwts"}, 2);
  auto store = open_store(path);
  CHECK((*store->grant("g-old"))->jwts == 0);
  CHECK(store->revoke_grant("g-old") == 1);
  RawDb raw(path);
  CHECK(raw.number("PRAGMA user_version") == k_schema_version);
}

TEST_CASE("a version 4 store is migrated: the unused jti index is dropped, rows stay", "[store]") {
  TempDir dir;
  const std::string path = dir.file("tokens.db");
  make_old_store(path, make_token("old", "g-old"), {"CREATE INDEX tokens_jti ON tokens(jti)"}, 4);
  auto store = open_store(path);
  auto found = store->find(make_token("old", "g-old").hash);
  REQUIRE(found);
  CHECK(found->has_value());
  RawDb raw(path);
  CHECK(raw.number("PRAGMA user_version") == k_schema_version);
  CHECK(raw.number("SELECT count(*) FROM sqlite_master WHERE name = 'tokens_jti'") == 0);
  CHECK(raw.number("SELECT count(*) FROM sqlite_master WHERE type = 'index' AND name = 'tokens_grant_id'") == 1);
}

TEST_CASE("a version 3 store is migrated: its refresh tokens are unconsumed and redeemable", "[store]") {
  TempDir dir;
  const std::string path = dir.file("tokens.db");
  TokenRecord refresh = make_token("r-old", "g-old");
  refresh.kind = "refresh";
  make_old_store(path, refresh, {"ALTER TABLE tokens DROP COLUMN consumed"}, 3);
  auto store = open_store(path);
  auto found = store->find(refresh.hash);
  REQUIRE(found);
  REQUIRE(found->has_value());
  CHECK_FALSE((*found)->consumed);
  CHECK(store->redeem(refresh.hash, make_grant("g-old"), std::vector{make_token("next", "g-old")}) ==
        tokctl::tokens::Redeemed::ok);
  RawDb raw(path);
  CHECK(raw.number("PRAGMA user_version") == k_schema_version);
}

TEST_CASE("redeem consumes a refresh token once; a second redemption revokes the grant", "[store]") {
  using tokctl::tokens::Redeemed;
  TempDir dir;
  auto store = open_store(dir.file("tokens.db"));
  TokenRecord refresh = make_token("r1", "g-1");
  refresh.kind = "refresh";
  REQUIRE(store->put(make_grant("g-1"), std::vector{refresh, make_token("a1", "g-1")}));
  REQUIRE(store->put(make_grant("g-2"), std::vector{make_token("other", "g-2")}));

  CHECK(store->redeem(refresh.hash, make_grant("g-1"), std::vector{make_token("a2", "g-1")}) == Redeemed::ok);
  auto used = store->find(refresh.hash);
  REQUIRE(used);
  CHECK((*used)->consumed);
  CHECK((*used)->revoked);
  CHECK_FALSE(revoked(*store, "a2"));  // stored in the same transaction
  CHECK_FALSE(revoked(*store, "a1"));

  // Reuse: nothing stored, the whole grant revoked, another grant untouched.
  CHECK(store->redeem(refresh.hash, make_grant("g-1"), std::vector{make_token("a3", "g-1")}) == Redeemed::reused);
  auto a3 = store->find(token_hash("a3"));
  REQUIRE(a3);
  CHECK_FALSE(a3->has_value());
  CHECK(revoked(*store, "a1"));
  CHECK(revoked(*store, "a2"));
  CHECK((*store->grant("g-1"))->revoked);
  CHECK_FALSE(revoked(*store, "other"));

  // Unknown, and revoked without being used: inactive, nothing changes.
  CHECK(store->redeem(token_hash("nope"), make_grant("g-2"), std::vector{make_token("x", "g-2")}) ==
        Redeemed::inactive);
  TokenRecord r2 = make_token("r2", "g-2");
  r2.kind = "refresh";
  REQUIRE(store->put(std::nullopt, std::vector{r2}));
  REQUIRE(store->revoke_token(r2.hash) == 1);
  CHECK(store->redeem(r2.hash, make_grant("g-2"), std::vector{make_token("y", "g-2")}) == Redeemed::inactive);
  CHECK_FALSE(revoked(*store, "other"));
  CHECK_FALSE((*store->find(token_hash("y"))).has_value());
}

TEST_CASE("revocation is idempotent and unknown ids are not an error", "[store]") {
  TempDir dir;
  auto store = open_store(dir.file("tokens.db"));
  REQUIRE(store->put(make_grant("g-1"), std::vector{make_token("a", "g-1"), make_token("b", "g-1")}));

  CHECK(store->revoke_token(token_hash("a")) == 1);
  CHECK(store->revoke_token(token_hash("a")) == 0);
  CHECK(store->revoke_grant("g-1") == 1);  // only b changed
  CHECK(store->revoke_grant("g-1") == 0);
  CHECK(store->revoke_client("cli-a") == 0);
  CHECK(store->revoke_subject("alice") == 0);
  CHECK(revoked(*store, "a"));
  CHECK(revoked(*store, "b"));

  CHECK(store->revoke_token(token_hash("unknown")) == 0);
  CHECK(store->revoke_grant("unknown") == 0);
  CHECK(store->revoke_client("unknown") == 0);
  CHECK(store->revoke_subject("unknown") == 0);
}

TEST_CASE("a denied jti stays denied until pruned after its exp", "[store]") {
  TempDir dir;
  auto store = open_store(dir.file("tokens.db"));
  CHECK(store->is_denied("jti-1") == false);
  CHECK(store->deny_jti("jti-1", k_t0 + 100, {}) == true);  // newly revoked
  CHECK(store->is_denied("jti-1") == true);
  CHECK(store->is_denied("jti-2") == false);
  CHECK(store->deny_jti("jti-1", k_t0 + 50, {}) == false);  // idempotent, never shortens, not counted
  CHECK(store->prune(k_t0 + 60) == 0);
  CHECK(store->is_denied("jti-1") == true);
  CHECK(store->prune(k_t0 + 100) == 0);  // exp == now: kept
  CHECK(store->prune(k_t0 + 101) == 1);
  CHECK(store->is_denied("jti-1") == false);

  REQUIRE(store->deny_jti("forever", 0, {}));  // a JWT without exp
  CHECK(store->prune(k_t0 + 10 * 365 * 86400) == 0);
  CHECK(store->is_denied("forever") == true);
}

// Issue 11: pruning follows the expiry indexes and lookups the keys; no statement reads a whole
// table. Every statement of the store is checked, so a new one that scans fails here.
TEST_CASE("no store statement scans a table: prune by expiry index, lookups by key", "[store]") {
  namespace sql = tokctl::tokens::sqlite_sql;
  TempDir dir;
  const std::string path = dir.file("tokens.db");
  open_store(path);
  RawDb raw(path);
  for (std::size_t i = 0; i < std::size(sql::k_statements); ++i) {
    std::string stmt = sql::k_statements[i];
    if (!stmt.starts_with("SELECT") && !stmt.starts_with("UPDATE") && !stmt.starts_with("DELETE")) continue;
    CAPTURE(stmt);
    const std::string plan = raw.plan(stmt);
    CAPTURE(plan);
    std::istringstream lines(plan);
    for (std::string line; std::getline(lines, line);) {
      // A constant row (SELECT 1) or a subquery's own rows are not a table.
      if (!line.starts_with("SCAN ") || line.starts_with("SCAN CONSTANT ROW") || line.starts_with("SCAN (subquery"))
        continue;
      FAIL_CHECK("a full scan: " << line);
    }
  }
  CHECK_THAT(raw.plan(sql::k_statements[static_cast<int>(sql::Stmt::prune_grants)]), Contains("grants_expires"));
  CHECK_THAT(raw.plan(sql::k_statements[static_cast<int>(sql::Stmt::prune_tokens)]), Contains("tokens_exp"));
  CHECK_THAT(raw.plan(sql::k_statements[static_cast<int>(sql::Stmt::find_token)]), Contains("sqlite_autoindex_tokens"));
}

TEST_CASE("prune deletes tokens expired before now, and grants left empty", "[store]") {
  TempDir dir;
  auto store = open_store(dir.file("tokens.db"));
  const UnixTime now = k_t0 + 1000;
  REQUIRE(store->put(make_grant("g-old"), std::vector{make_token("old1", "g-old", "c", "s", now - 1),
                                                      make_token("old2", "g-old", "c", "s", now - 500)}));
  REQUIRE(store->put(make_grant("g-mixed"), std::vector{make_token("m-old", "g-mixed", "c", "s", now - 1),
                                                        make_token("m-edge", "g-mixed", "c", "s", now)}));
  REQUIRE(store->put(std::nullopt, std::vector{make_token("never", "", "c", "s", 0)}));
  REQUIRE(store->deny_jti("j-old", now - 1, {}));

  auto n = store->prune(now);
  REQUIRE(n);
  CHECK(*n == 5);  // old1, old2, m-old, j-old, g-old
  CHECK_FALSE(store->find(token_hash("old1"))->has_value());
  CHECK_FALSE(store->find(token_hash("m-old"))->has_value());
  CHECK(store->find(token_hash("m-edge"))->has_value());  // exp == now is kept
  CHECK(store->find(token_hash("never"))->has_value());   // exp 0: no expiry
  CHECK_FALSE(store->grant("g-old")->has_value());
  CHECK(store->grant("g-mixed")->has_value());
  CHECK(store->prune(now) == 0);
  CHECK(store->prune(now + 1) == 2);  // m-edge, then g-mixed
}

TEST_CASE("schema: a fresh store has the current version, reopens, and a newer one is refused", "[store]") {
  TempDir dir;
  const std::string path = dir.file("tokens.db");
  { auto store = open_store(path); }
  {
    RawDb raw(path);
    CHECK(raw.number("PRAGMA user_version") == k_schema_version);
    CHECK(raw.number("SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND name IN "
                     "('grants', 'tokens', 'denylist')") == 3);
    CHECK(raw.number("SELECT count(*) FROM sqlite_schema WHERE type = 'index' AND sql IS NOT NULL") >= 5);
  }
  {
    auto store = open_store(path);  // reopening an up-to-date store changes nothing
    REQUIRE(store->put(std::nullopt, std::vector{make_token("t")}));
  }
  {
    RawDb raw(path);
    CHECK(raw.number("PRAGMA user_version") == k_schema_version);
    raw.exec("PRAGMA user_version = 99");
  }
  auto newer = open_token_store("sqlite:" + path);
  REQUIRE_FALSE(newer);
  CHECK(newer.error().code == ErrorCode::keystore);
  CHECK_THAT(newer.error().message, Contains("schema version 99") && Contains("newer"));
}

TEST_CASE("the store file is created with mode 0600 and in WAL mode", "[store]") {
  TempDir dir;
  const std::string path = dir.file("tokens.db");
  const mode_t old = ::umask(022);
  auto store = open_store(path);
  ::umask(old);
  REQUIRE(store->put(std::nullopt, std::vector{make_token("t")}));
  for (const std::string& f : {path, path + "-wal", path + "-shm", path + "-rev"}) {
    struct stat st{};
    REQUIRE(::stat(f.c_str(), &st) == 0);
    INFO(f);
    CHECK((st.st_mode & 0777) == 0600);
  }
  RawDb raw(path);
  CHECK(raw.text("PRAGMA journal_mode") == "wal");
}

namespace {

// Forks `children` processes that wait on a pipe, then all run `work(i)` at once. A child never
// returns into Catch: it _exits with 0, or writes its error to DIR/child-i.err and _exits 1.
// Returns the error texts (empty when every child succeeded).
template <class F>
std::vector<std::string> run_children(const TempDir& dir, int children, F work) {
  int gate[2];
  REQUIRE(::pipe(gate) == 0);
  std::vector<pid_t> pids;
  for (int i = 0; i < children; ++i) {
    pid_t pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
      ::close(gate[1]);
      char c;
      while (::read(gate[0], &c, 1) > 0) {
      }
      std::string err;
      try {
        err = work(i);
      } catch (const std::exception& e) {
        err = std::string("exception: ") + e.what();
      }
      if (!err.empty()) {
        if (FILE* f = std::fopen(dir.file("child-" + std::to_string(i) + ".err").c_str(), "w")) {
          std::fputs(err.c_str(), f);
          std::fclose(f);
        }
      }
      ::_exit(err.empty() ? 0 : 1);
    }
    pids.push_back(pid);
  }
  ::close(gate[0]);
  ::close(gate[1]);  // EOF: everyone starts together
  std::vector<std::string> errors;
  for (std::size_t i = 0; i < pids.size(); ++i) {
    int status = 0;
    REQUIRE(::waitpid(pids[i], &status, 0) == pids[i]);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
      std::string why = "child " + std::to_string(i) + " status " + std::to_string(status);
      try {
        why += ": " + read_file(dir.file("child-" + std::to_string(i) + ".err"));
      } catch (const std::exception&) {
      }
      errors.push_back(why);
    }
  }
  return errors;
}

// One child's share: its own connection, one put() per token (every fifth with a new grant).
std::string write_tokens(const std::string& path, int child, int count) {
  auto store = open_token_store("sqlite:" + path);
  if (!store) return "open: " + store.error().message;
  for (int k = 0; k < count; ++k) {
    const std::string name = "c" + std::to_string(child) + "-" + std::to_string(k);
    std::optional<GrantRecord> grant;
    std::string gid;
    if (k % 5 == 0) {
      gid = "g-" + name;
      grant = make_grant(gid);
    }
    const TokenRecord t = make_token(name, gid);
    if (auto r = (*store)->put(grant, std::span(&t, 1)); !r) return "put " + name + ": " + r.error().message;
  }
  return {};
}

}  // namespace

TEST_CASE("four processes writing one store at once lose no row and never see 'database is locked'", "[store]") {
  TempDir dir;
  const std::string path = dir.file("tokens.db");
  { auto created = open_store(path); }  // no connection may cross fork()
  constexpr int k_children = 4;
  constexpr int k_each = 500;
  const auto errors = run_children(dir, k_children, [&](int i) { return write_tokens(path, i, k_each); });
  for (const auto& e : errors) UNSCOPED_INFO(e);
  CHECK(errors.empty());

  RawDb raw(path);
  CHECK(raw.number("SELECT count(*) FROM tokens") == k_children * k_each);
  CHECK(raw.number("SELECT count(*) FROM grants") == k_children * k_each / 5);
  auto store = open_store(path);
  for (int i = 0; i < k_children; ++i)
    for (int k = 0; k < k_each; k += 97) {
      INFO("c" << i << "-" << k);
      CHECK(store->find(token_hash("c" + std::to_string(i) + "-" + std::to_string(k)))->has_value());
    }
}

TEST_CASE("four processes creating the same new store at once agree on its schema", "[store]") {
  TempDir dir;
  const std::string path = dir.file("tokens.db");
  const auto errors = run_children(dir, 4, [&](int i) { return write_tokens(path, i, 50); });
  for (const auto& e : errors) UNSCOPED_INFO(e);
  CHECK(errors.empty());
  RawDb raw(path);
  CHECK(raw.number("PRAGMA user_version") == k_schema_version);
  CHECK(raw.number("SELECT count(*) FROM tokens") == 200);
}

namespace {

double cpu_seconds() {
  timespec ts{};
  ::clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) / 1e9;
}

}  // namespace

TEST_CASE("one put of 100,000 tokens (rate printed, not asserted)", "[store][perf]") {
  TempDir dir;
  auto store = open_store(dir.file("tokens.db"));
  constexpr int k_n = 100'000;
  std::vector<TokenRecord> tokens;
  tokens.reserve(k_n);
  for (int i = 0; i < k_n; ++i) {
    TokenRecord t = make_token("bulk-" + std::to_string(i), "g-bulk");
    t.claims = R"({"iss":"https://issuer.example","sub":"alice","aud":["api-a"],"client_id":"cli-a",)"
               R"("scope":"read write","iat":1767225600,"exp":1767229200})";
    tokens.push_back(std::move(t));
  }
  const auto start = std::chrono::steady_clock::now();
  const double cpu_start = cpu_seconds();
  REQUIRE(store->put(make_grant("g-bulk"), tokens));
  const double cpu = cpu_seconds() - cpu_start;
  const std::chrono::duration<double> took = std::chrono::steady_clock::now() - start;
  std::printf("token store: one put() of %d tokens: %.3f s wall = %.0f tokens/s (%.3f s CPU = %.0f tokens/s)\n",
              k_n, took.count(), k_n / took.count(), cpu, k_n / cpu);
  CHECK(store->find(tokens.back().hash)->has_value());
}

// ---- the lookup cache and its change counter (sqlite_cache.hpp) ------------------------------

namespace {

using tokctl::tokens::SqliteTokenStore;

using tokctl::test::open_sqlite;

std::uint64_t hits(const SqliteTokenStore& s) { return s.cache_stats().hits; }

// Looks `name` up twice on `reader`: returns whether it was revoked, and CHECKs the second lookup
// came from the cache (the first may have, too).
bool revoked_twice(SqliteTokenStore& reader, const std::string& name) {
  const bool first = revoked(reader, name);
  const auto before = hits(reader);
  const bool second = revoked(reader, name);
  CHECK(hits(reader) == before + 1);
  CHECK(first == second);
  return second;
}

// The counters in PATH-rev: [0] begun, [1] done (the file's words 0 and 8).
std::pair<std::uint64_t, std::uint64_t> counters(const std::string& path) {
  const std::string bytes = read_file(path + "-rev");
  REQUIRE(bytes.size() >= 72);
  std::uint64_t b = 0, d = 0;
  std::memcpy(&b, bytes.data(), 8);
  std::memcpy(&d, bytes.data() + 64, 8);
  return {b, d};
}

}  // namespace

TEST_CASE("a cached lookup is dropped as soon as another store on the file changes rows", "[store][cache]") {
  TempDir dir;
  const std::string path = dir.file("tokens.db");
  // Two stores on one file: each has its own connections, cache and mapping of the counter, as
  // two processes would (`tokctl serve` and a `tokctl revoke` next to it).
  auto writer = open_sqlite(path);
  auto reader = open_sqlite(path);
  const UnixTime soon = k_t0 + 10;
  REQUIRE(writer->put(make_grant("g1"), std::vector{make_token("t1", "g1"), make_token("t2", "g1")}));
  REQUIRE(writer->put(make_grant("g2", "cli-b", "bob"), std::vector{make_token("t3", "g2", "cli-b", "bob")}));
  REQUIRE(writer->put(std::nullopt, std::vector{make_token("t4", "", "cli-c", "carol"), make_token("t5", "", "cli-d", "dave"),
                                                make_token("t6", "", "cli-e", "erin", soon)}));
  REQUIRE(writer->put(make_grant("g7"), std::vector{make_token("t7", "g7"), make_token("r7", "g7")}));
  for (const char* t : {"t1", "t2", "t3", "t4", "t5", "t6", "t7"}) {
    INFO(t);
    CHECK_FALSE(revoked_twice(*reader, t));
  }
  const auto cached = hits(*reader);

  SECTION("adding rows keeps the cache") {
    const auto before = counters(path);
    REQUIRE(writer->put(make_grant("g9"), std::vector{make_token("t9", "g9")}));
    writer->put_async(std::nullopt, std::vector{make_token("t10")}, [](tokctl::Result<void> r) { REQUIRE(r); });
    REQUIRE(writer->put(std::nullopt, std::vector{make_token("t11")}));  // after the async one (one writer, FIFO)
    CHECK(counters(path) == before);
    CHECK_FALSE(revoked(*reader, "t1"));
    CHECK(hits(*reader) == cached + 1);
  }
  SECTION("revoke_token") {
    REQUIRE(writer->revoke_token(token_hash("t4")) == 1);
    CHECK(revoked_twice(*reader, "t4"));
    CHECK_FALSE(revoked(*reader, "t5"));
  }
  SECTION("revoke_grant") {
    REQUIRE(writer->revoke_grant("g1") == 2);
    CHECK(revoked_twice(*reader, "t1"));
    CHECK(revoked_twice(*reader, "t2"));
    CHECK_FALSE(revoked(*reader, "t3"));
  }
  SECTION("revoke_client") {
    REQUIRE(writer->revoke_client("cli-b") == 1);
    CHECK(revoked_twice(*reader, "t3"));
  }
  SECTION("revoke_subject") {
    REQUIRE(writer->revoke_subject("dave") == 1);
    CHECK(revoked_twice(*reader, "t5"));
  }
  SECTION("a grant stored again as revoked") {
    GrantRecord g = make_grant("g2", "cli-b", "bob");
    g.revoked = true;
    REQUIRE(writer->put(g, std::vector{make_token("t8", "g2", "cli-b", "bob")}));
    CHECK(revoked_twice(*reader, "t3"));
  }
  SECTION("a refresh token redeemed twice revokes its grant") {
    REQUIRE(writer->redeem(token_hash("r7"), make_grant("g7"), std::vector{make_token("r7b", "g7")}) ==
            tokctl::tokens::Redeemed::ok);
    CHECK(revoked_twice(*reader, "r7"));  // consumed
    CHECK_FALSE(revoked(*reader, "t7"));
    REQUIRE(writer->redeem(token_hash("r7"), make_grant("g7"), {}) == tokctl::tokens::Redeemed::reused);
    CHECK(revoked_twice(*reader, "t7"));
    CHECK(revoked_twice(*reader, "r7b"));
  }
  SECTION("prune") {
    REQUIRE(writer->prune(soon + 1) == 1);
    auto gone = reader->find(token_hash("t6"));
    REQUIRE(gone);
    CHECK_FALSE(gone->has_value());
  }
  SECTION("a jti denied") {
    const auto before = counters(path);
    REQUIRE(writer->deny_jti("some-jti", k_t0 + 60, ""));
    CHECK(counters(path).first == before.first + 1);
  }
  const auto [begun, done] = counters(path);
  CHECK(begun == done);  // every write ended
}

TEST_CASE("a lookup that finds nothing is not cached: a token stored after it is found", "[store][cache]") {
  TempDir dir;
  const std::string path = dir.file("tokens.db");
  auto writer = open_sqlite(path);
  auto reader = open_sqlite(path);
  for (int i = 0; i < 2; ++i) {
    auto none = reader->find(token_hash("later"));
    REQUIRE(none);
    CHECK_FALSE(none->has_value());
  }
  REQUIRE(writer->put(std::nullopt, std::vector{make_token("later")}));
  CHECK_FALSE(revoked(*reader, "later"));
}

TEST_CASE("a revocation by another process is seen at once by a store that cached the token", "[store][cache]") {
  TempDir dir;
  const std::string path = dir.file("tokens.db");
  { auto created = open_store(path); }  // no connection may cross fork()
  const auto put = run_children(dir, 1, [&](int) -> std::string {
    auto s = open_token_store("sqlite:" + path);
    if (!s) return s.error().message;
    auto r = (*s)->put(make_grant("g"), std::vector{make_token("a", "g"), make_token("b", "g")});
    return r ? "" : r.error().message;
  });
  REQUIRE(put.empty());
  auto reader = open_sqlite(path);
  CHECK_FALSE(revoked_twice(*reader, "a"));
  const auto errors = run_children(dir, 1, [&](int) -> std::string {
    auto s = open_token_store("sqlite:" + path);
    if (!s) return s.error().message;
    auto n = (*s)->revoke_grant("g");
    if (!n) return n.error().message;
    return *n == 2 ? "" : "revoked " + std::to_string(*n);
  });
  for (const auto& e : errors) UNSCOPED_INFO(e);
  REQUIRE(errors.empty());
  CHECK(revoked_twice(*reader, "a"));
  CHECK(revoked_twice(*reader, "b"));
}

TEST_CASE("a writer that dies between its two increments stops caching until the counters are repaired",
          "[store][cache]") {
  TempDir dir;
  const std::string path = dir.file("tokens.db");
  auto reader = open_sqlite(path);
  REQUIRE(reader->put(std::nullopt, std::vector{make_token("t")}));
  CHECK_FALSE(revoked_twice(*reader, "t"));

  // A writer between its increments: `begun` moved, `done` not, and it holds the shared lock.
  int fd = ::open((path + "-rev").c_str(), O_RDWR | O_CLOEXEC);
  REQUIRE(fd >= 0);
  REQUIRE(::flock(fd, LOCK_SH) == 0);
  auto [b, d] = counters(path);
  REQUIRE(b == d);
  ++b;
  REQUIRE(::pwrite(fd, &b, 8, 0) == 8);
  // ... and revokes behind SQLite's back (a crashed writer's commit is just as invisible).
  {
    RawDb raw(path);
    raw.exec("UPDATE tokens SET revoked = 1");
  }
  const auto before = hits(*reader);
  CHECK(revoked(*reader, "t"));  // read from the database, not the stale cached row
  CHECK(revoked(*reader, "t"));
  CHECK(hits(*reader) == before);  // nothing cached while a write may be under way
  CHECK(counters(path).second == d);  // the live lock blocks the repair

  // The writer dies: its lock goes with it. The next repair (at most one a second) closes the gap.
  ::close(fd);
  std::this_thread::sleep_for(std::chrono::milliseconds(1100));
  CHECK(revoked(*reader, "t"));
  CHECK(counters(path) == std::pair{b, b});
  CHECK(revoked_twice(*reader, "t"));  // caching again
}

TEST_CASE("the change counter file must be a regular file of its own", "[store][cache]") {
  TempDir dir;
  const std::string path = dir.file("tokens.db");
  SECTION("a directory") { REQUIRE(::mkdir((path + "-rev").c_str(), 0700) == 0); }
  SECTION("a FIFO") { REQUIRE(::mkfifo((path + "-rev").c_str(), 0600) == 0); }
  SECTION("a symlink") {
    REQUIRE(::symlink(dir.file("elsewhere").c_str(), (path + "-rev").c_str()) == 0);
  }
  auto s = open_token_store("sqlite:" + path);
  REQUIRE_FALSE(s);
  CHECK(s.error().code == ErrorCode::keystore);
  CHECK_THAT(s.error().message, Contains("change counter") && Contains(path + "-rev"));
}

TEST_CASE("an in-memory store caches lookups and drops them on revocation", "[store][cache]") {
  auto s = open_sqlite(":memory:");
  REQUIRE(s->put(make_grant("g"), std::vector{make_token("m", "g")}));
  CHECK_FALSE(revoked_twice(*s, "m"));
  REQUIRE(s->revoke_grant("g") == 1);
  CHECK(revoked_twice(*s, "m"));
}

TEST_CASE("a store whose file or change counter is deleted or replaced while open refuses to go on", "[store][cache]") {
  TempDir dir;
  const std::string path = dir.file("tokens.db");
  auto store = open_sqlite(path);
  REQUIRE(store->put(std::nullopt, std::vector{make_token("before")}));
  CHECK_FALSE(revoked_twice(*store, "before"));
  std::string gone;
  SECTION("the database deleted") { gone = path; }
  SECTION("the change counter deleted") { gone = path + "-rev"; }
  SECTION("the database replaced by a restored copy") {
    gone = path;
    REQUIRE(std::system(("cp '" + path + "' '" + path + ".copy'").c_str()) == 0);
  }
  REQUIRE(::unlink(gone.c_str()) == 0);
  if (::access((path + ".copy").c_str(), F_OK) == 0) REQUIRE(::rename((path + ".copy").c_str(), path.c_str()) == 0);
  // Writes are refused at once: acknowledged, they would be lost with the unlinked file.
  auto put = store->put(std::nullopt, std::vector{make_token("after")});
  REQUIRE_FALSE(put);
  CHECK(put.error().code == ErrorCode::keystore);
  CHECK_THAT(put.error().message, Contains("deleted, replaced or truncated"));
  CHECK_FALSE(store->revoke_token(token_hash("before")));
  // Reads, cached ones too, within the recheck interval.
  std::this_thread::sleep_for(SqliteTokenStore::k_recheck + std::chrono::milliseconds(20));
  auto found = store->find(token_hash("before"));
  REQUIRE_FALSE(found);
  CHECK(found.error().code == ErrorCode::keystore);
}

TEST_CASE("a backup moved over an open store: the refusal says how to restart without the old file's journal",
          "[store]") {
  TempDir dir;
  const std::string path = dir.file("tokens.db");
  auto store = open_sqlite(path);
  REQUIRE(store->put(make_grant("g"), std::vector{make_token("in-backup", "g")}));
  // A consistent copy (SQLite's online backup), then rows the copy does not have, in the WAL only.
  {
    sqlite3* src = nullptr;
    sqlite3* dst = nullptr;
    REQUIRE(sqlite3_open_v2(path.c_str(), &src, SQLITE_OPEN_READONLY, nullptr) == SQLITE_OK);
    REQUIRE(sqlite3_open((path + ".backup").c_str(), &dst) == SQLITE_OK);
    sqlite3_backup* b = sqlite3_backup_init(dst, "main", src, "main");
    REQUIRE(b);
    CHECK(sqlite3_backup_step(b, -1) == SQLITE_DONE);
    CHECK(sqlite3_backup_finish(b) == SQLITE_OK);
    sqlite3_close(dst);
    sqlite3_close(src);
  }
  for (int i = 0; i < 20; ++i)
    REQUIRE(store->put(std::nullopt, std::vector{make_token("after-" + std::to_string(i))}));
  REQUIRE(store->write_stats().wal_frames > 0);
  REQUIRE(::access((path + "-wal").c_str(), F_OK) == 0);
  REQUIRE(::rename((path + ".backup").c_str(), path.c_str()) == 0);
  // The next write sees the swap: refused, with the way out. The journal stays: another process
  // may still use it, which this one cannot tell.
  auto refused = store->put(std::nullopt, std::vector{make_token("refused")});
  REQUIRE_FALSE(refused);
  CHECK_THAT(refused.error().hint, Contains("stop every process") && Contains(path + "-wal") && Contains(path + "-shm") &&
                                       Contains(".restore"));
  store.reset();
  // Closing a moved database leaves its journal at the path (SQLite), which is why the hint says
  // to delete it: done, as the hint says, the restored file opens whole.
  CHECK(::access((path + "-wal").c_str(), F_OK) == 0);
  REQUIRE(::unlink((path + "-wal").c_str()) == 0);
  ::unlink((path + "-shm").c_str());
  // Opened again (the restart the error asks for): the backup, whole and unchanged.
  auto restored = open_sqlite(path);
  auto has = [&](const std::string& name) {
    auto t = restored->find(token_hash(name));
    REQUIRE(t);
    return t->has_value();
  };
  CHECK(has("in-backup"));
  CHECK_FALSE(has("after-0"));
  CHECK_FALSE(has("refused"));
  restored.reset();
  sqlite3* db = nullptr;
  REQUIRE(sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr) == SQLITE_OK);
  sqlite3_stmt* st = nullptr;
  REQUIRE(sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &st, nullptr) == SQLITE_OK);
  REQUIRE(sqlite3_step(st) == SQLITE_ROW);
  CHECK(std::string(reinterpret_cast<const char*>(sqlite3_column_text(st, 0))) == "ok");
  sqlite3_finalize(st);
  sqlite3_close(db);
}

TEST_CASE("a tokctl older than the change counter, still running, can add rows but not change them", "[store][cache]") {
  TempDir dir;
  const std::string path = dir.file("tokens.db");
  auto store = open_sqlite(path);
  REQUIRE(store->put(make_grant("g"), std::vector{make_token("t", "g")}));
  // A connection without tokctl_counted_write, as an older build's is.
  sqlite3* old = nullptr;
  REQUIRE(sqlite3_open_v2(path.c_str(), &old, SQLITE_OPEN_READWRITE, nullptr) == SQLITE_OK);
  sqlite3_busy_timeout(old, 10'000);
  char* err = nullptr;
  for (const char* sql : {"UPDATE tokens SET revoked = 1", "DELETE FROM tokens", "UPDATE grants SET revoked = 1",
                          "DELETE FROM grants"}) {
    INFO(sql);
    CHECK(sqlite3_exec(old, sql, nullptr, nullptr, &err) != SQLITE_OK);
    CHECK_THAT(std::string(err ? err : ""), Contains("tokctl_counted_write"));
    sqlite3_free(err);
    err = nullptr;
  }
  CHECK(sqlite3_exec(old, "INSERT INTO denylist (jti, exp) VALUES ('j', 0)", nullptr, nullptr, nullptr) == SQLITE_OK);
  sqlite3_close_v2(old);
  CHECK_FALSE(revoked(*store, "t"));
  REQUIRE(store->revoke_grant("g") == 1);  // this build changes rows as before
  CHECK(revoked(*store, "t"));
}

TEST_CASE("every name of a store meets at one change counter; a hard-linked store is refused", "[store][cache]") {
  TempDir dir;
  const std::string real = dir.file("real.db"), link = dir.file("link.db");
  { auto created = open_sqlite(real); }
  REQUIRE(::symlink(real.c_str(), link.c_str()) == 0);
  auto via_link = open_sqlite(link);
  auto via_real = open_sqlite(real);
  CHECK(::access((link + "-rev").c_str(), F_OK) != 0);  // the counter sits beside the real file
  REQUIRE(via_real->put(make_grant("g"), std::vector{make_token("t", "g")}));
  CHECK_FALSE(revoked_twice(*via_link, "t"));
  REQUIRE(via_real->revoke_grant("g") == 1);
  CHECK(revoked_twice(*via_link, "t"));  // served from the cache, it would still be active

  REQUIRE(::link(real.c_str(), dir.file("hard.db").c_str()) == 0);
  auto hard = open_token_store("sqlite:" + dir.file("hard.db"));
  REQUIRE_FALSE(hard);
  CHECK(hard.error().code == ErrorCode::keystore);
  CHECK_THAT(hard.error().message, Contains("hard links"));
}

TEST_CASE("a change counter file another user owns or others may write is refused", "[store][cache]") {
  TempDir dir;
  const std::string path = dir.file("tokens.db");
  { auto created = open_sqlite(path); }
  REQUIRE(::chmod((path + "-rev").c_str(), 0666) == 0);
  auto s = open_token_store("sqlite:" + path);
  REQUIRE_FALSE(s);
  CHECK_THAT(s.error().message, Contains("writable by group or others"));
}

TEST_CASE("a change counter that goes back (restored from a backup, truncated and set up again) ends caching",
          "[store][cache]") {
  TempDir dir;
  const std::string path = dir.file("tokens.db");
  auto writer = open_sqlite(path);
  auto reader = open_sqlite(path);
  REQUIRE(writer->put(std::nullopt, std::vector{make_token("u"), make_token("v")}));
  CHECK_FALSE(revoked_twice(*reader, "u"));  // u cached under the counter as it is now
  const std::string backup = read_file(path + "-rev");
  REQUIRE(writer->revoke_token(token_hash("u")) == 1);
  CHECK_FALSE(revoked(*reader, "v"));  // the reader has seen the counter move on

  SECTION("an older copy written back over it") {
    int fd = ::open((path + "-rev").c_str(), O_WRONLY | O_CLOEXEC);
    REQUIRE(fd >= 0);
    REQUIRE(::pwrite(fd, backup.data(), backup.size(), 0) == static_cast<ssize_t>(backup.size()));
    ::close(fd);
  }
  SECTION("truncated, then set up again by the next process to open the store") {
    REQUIRE(::truncate((path + "-rev").c_str(), 0) == 0);
    auto another = open_sqlite(path);  // a fresh counter file: zeros and a new nonce
    CHECK(counters(path) == std::pair<std::uint64_t, std::uint64_t>{0, 0});
  }
  // u's row cached under the old value must not come back: the reader reads the database now.
  const auto before = hits(*reader);
  CHECK(revoked(*reader, "u"));
  CHECK(revoked(*reader, "u"));
  CHECK(hits(*reader) == before);
}

TEST_CASE("a truncated change counter file is refused by a new opener", "[store][cache]") {
  TempDir dir;
  const std::string path = dir.file("tokens.db");
  { auto created = open_sqlite(path); }
  REQUIRE(::truncate((path + "-rev").c_str(), 10) == 0);
  auto s = open_token_store("sqlite:" + path);
  REQUIRE_FALSE(s);
  CHECK(s.error().code == ErrorCode::keystore);
  CHECK_THAT(s.error().message, Contains("truncated (10 bytes)"));
}
