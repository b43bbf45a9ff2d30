#include "sqlite_store.hpp"
#include "sqlite_sql.hpp"

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <fcntl.h>
#include <limits>
#include <optional>
#include <random>
#include <string_view>
#include <thread>
#include <unistd.h>
#include <utility>
#include <vector>

namespace tokctl::tokens {
namespace {

using namespace std::chrono_literals;
using sqlite_sql::k_migrations;
using sqlite_sql::k_statements;

constexpr int k_busy_timeout_ms = 10'000;
constexpr int k_max_attempts = 8;  // BUSY retries on top of busy_timeout, < 0.5 s of backoff in all

bool is_busy(int rc) { return (rc & 0xff) == SQLITE_BUSY || (rc & 0xff) == SQLITE_LOCKED; }

std::unexpected<Error> sqlite_fail(sqlite3* db, const std::string& path, std::string_view op,
                                   std::string_view what) {
  std::string msg = "token store " + path + ": " + std::string(op);
  if (!what.empty()) msg += ": " + std::string(what);
  msg += ": ";
  msg += db ? sqlite3_errmsg(db) : "out of memory";
  return fail(ErrorCode::keystore, std::move(msg));
}

// Exponential backoff with jitter, so writers that collided do not collide again in lock-step.
void backoff(int attempt) {
  thread_local std::minstd_rand rng(static_cast<unsigned>(::getpid()) ^
                                    static_cast<unsigned>(std::chrono::steady_clock::now().time_since_epoch().count()));
  const auto cap = std::chrono::microseconds(1000) * (1 << std::min(attempt, 9));  // 1 ms .. 512 ms
  std::uniform_int_distribution<long> dist(cap.count() / 2, cap.count());
  std::this_thread::sleep_for(std::chrono::microseconds(dist(rng)));
}

// Resets and unbinds a statement when the scope ends, whatever path leaves it: a statement left
// mid-step would keep a read transaction open (and block WAL checkpoints).
class StmtUse {
 public:
  explicit StmtUse(sqlite3_stmt* s) : m_s(s) {}
  ~StmtUse() {
    sqlite3_reset(m_s);
    sqlite3_clear_bindings(m_s);
  }
  StmtUse(const StmtUse&) = delete;
  StmtUse& operator=(const StmtUse&) = delete;
  sqlite3_stmt* get() const { return m_s; }

 private:
  sqlite3_stmt* m_s;
};

// SQLITE_STATIC: every bound value outlives the step that reads it.
int bind(sqlite3_stmt* s, int i, std::string_view v) {
  return sqlite3_bind_text64(s, i, v.data() ? v.data() : "", v.size(), SQLITE_STATIC, SQLITE_UTF8);
}
int bind(sqlite3_stmt* s, int i, std::int64_t v) { return sqlite3_bind_int64(s, i, v); }
int bind(sqlite3_stmt* s, int i, bool v) { return sqlite3_bind_int(s, i, v ? 1 : 0); }
int bind_null_if_empty(sqlite3_stmt* s, int i, std::string_view v) {
  return v.empty() ? sqlite3_bind_null(s, i) : bind(s, i, v);
}

std::string column_text(sqlite3_stmt* s, int i) {
  const auto* p = sqlite3_column_text(s, i);
  if (!p) return {};
  return std::string(reinterpret_cast<const char*>(p), static_cast<std::size_t>(sqlite3_column_bytes(s, i)));
}

// Runs a statement outside the prepared set (open-time pragmas, migrations), retrying BUSY.
// `out`, when given, receives the first column of the first row.
Result<void> exec_retry(sqlite3* db, const std::string& path, const char* op, const std::string& sql,
                        std::string* out = nullptr) {
  for (int attempt = 1;; ++attempt) {
    int rc = SQLITE_OK;
    if (out) {
      sqlite3_stmt* raw = nullptr;
      rc = sqlite3_prepare_v2(db, sql.c_str(), -1, &raw, nullptr);
      SqliteStmtPtr s(raw, &sqlite3_finalize);
      if (rc == SQLITE_OK) {
        rc = sqlite3_step(s.get());
        if (rc == SQLITE_ROW) {
          *out = column_text(s.get(), 0);
          rc = SQLITE_OK;
        } else if (rc == SQLITE_DONE) {
          rc = SQLITE_OK;
        }
      }
      if (rc != SQLITE_OK) rc = sqlite3_errcode(db);  // before finalize, which may change it
    } else {
      rc = sqlite3_exec(db, sql.c_str(), nullptr, nullptr, nullptr);
    }
    if (rc == SQLITE_OK) return {};
    if (is_busy(rc) && attempt < k_max_attempts) {
      backoff(attempt);
      continue;
    }
    return sqlite_fail(db, path, op, sql.size() < 60 ? sql : std::string_view{});
  }
}

Result<int> read_user_version(sqlite3* db, const std::string& path) {
  std::string v;
  if (auto r = exec_retry(db, path, "reading schema version", "PRAGMA user_version", &v); !r)
    return std::unexpected(r.error());
  return std::atoi(v.c_str());
}

Result<void> migrate(sqlite3* db, const std::string& path) {
  auto version = read_user_version(db, path);
  if (!version) return std::unexpected(version.error());
  auto newer = [&](int v) {
    return fail(ErrorCode::keystore,
                "token store " + path + " has schema version " + std::to_string(v) +
                    ", newer than this tokctl understands (" + std::to_string(k_sqlite_schema_version) + ")",
                "upgrade tokctl, or point --store at another database");
  };
  if (*version > k_sqlite_schema_version) return newer(*version);
  if (*version < 0) return fail(ErrorCode::keystore, "token store " + path + " has a negative schema version");

  for (int target = *version + 1; target <= k_sqlite_schema_version; ++target) {
    const std::string op = "migrating schema to version " + std::to_string(target);
    if (auto r = exec_retry(db, path, op.c_str(), "BEGIN IMMEDIATE"); !r) return r;
    // Another process may have migrated while we waited for the write lock.
    auto now = read_user_version(db, path);
    Result<void> step;
    if (!now) {
      step = std::unexpected(now.error());
    } else if (*now > k_sqlite_schema_version) {
      step = newer(*now);
    } else if (*now < target) {
      const std::string sql = std::string(k_migrations[target - 1]) +
                              "\nPRAGMA user_version = " + std::to_string(target) + ";";
      if (sqlite3_exec(db, sql.c_str(), nullptr, nullptr, nullptr) != SQLITE_OK)
        step = sqlite_fail(db, path, op, "");
    }
    if (!step) {
      sqlite3_exec(db, "ROLLBACK", nullptr, nullptr, nullptr);
      return step;
    }
    if (auto r = exec_retry(db, path, op.c_str(), "COMMIT"); !r) {
      sqlite3_exec(db, "ROLLBACK", nullptr, nullptr, nullptr);
      return r;
    }
  }
  return {};
}

// Creates the file with mode 0600 (before SQLite does, with the umask's 0644), so the tokens
// are never readable by others, not even for a moment. SQLite gives the -wal and -shm files the
// database file's permissions.
Result<void> create_private_file(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd >= 0) {
    ::close(fd);
    return {};
  }
  if (errno == EEXIST) return {};
  return fail(ErrorCode::keystore, "creating token store " + path + ": " + std::strerror(errno));
}

}  // namespace

SqliteTokenStore::SqliteTokenStore(std::string path, SqlitePtr db) : m_path(std::move(path)), m_db(std::move(db)) {}

Result<std::unique_ptr<SqliteTokenStore>> SqliteTokenStore::open(const std::string& path) {
  static_assert(std::size(k_statements) == static_cast<std::size_t>(Stmt::count_));
  if (path.empty()) return fail(ErrorCode::usage, "token store: empty SQLite path", "use --store sqlite:PATH");
  const bool in_memory = path == ":memory:";
  if (!in_memory) {
    if (auto r = create_private_file(path); !r) return std::unexpected(r.error());
  }

  sqlite3* raw = nullptr;
  int rc = sqlite3_open_v2(path.c_str(), &raw, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                           nullptr);
  SqlitePtr db(raw, &sqlite3_close_v2);
  if (rc != SQLITE_OK) return sqlite_fail(db.get(), path, "opening", "");
  sqlite3_extended_result_codes(db.get(), 1);
  sqlite3_busy_timeout(db.get(), k_busy_timeout_ms);
  // Hardening: the schema cannot call application functions or be corrupted by stray SQL.
  sqlite3_db_config(db.get(), SQLITE_DBCONFIG_TRUSTED_SCHEMA, 0, nullptr);
  sqlite3_db_config(db.get(), SQLITE_DBCONFIG_DEFENSIVE, 1, nullptr);

  if (!in_memory) {
    std::string mode;
    if (auto r = exec_retry(db.get(), path, "enabling WAL", "PRAGMA journal_mode = WAL", &mode); !r)
      return std::unexpected(r.error());
    if (mode != "wal")
      return fail(ErrorCode::keystore,
                  "token store " + path + ": cannot enable WAL (journal_mode is " + mode + ")",
                  "WAL needs a local file system that supports shared memory (not NFS)");
  }
  if (auto r = exec_retry(db.get(), path, "configuring", "PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON; PRAGMA cache_size = -32768"); !r)
    return std::unexpected(r.error());
  if (auto r = migrate(db.get(), path); !r) return std::unexpected(r.error());

  std::unique_ptr<SqliteTokenStore> store(new SqliteTokenStore(path, std::move(db)));
  store->m_stmts.reserve(std::size(k_statements));
  for (const char* sql : k_statements) {
    sqlite3_stmt* s = nullptr;
    if (sqlite3_prepare_v3(store->m_db.get(), sql, -1, SQLITE_PREPARE_PERSISTENT, &s, nullptr) != SQLITE_OK)
      return sqlite_fail(store->m_db.get(), path, "preparing", sql);
    store->m_stmts.emplace_back(s, &sqlite3_finalize);
  }
  return store;
}

Result<void> SqliteTokenStore::step_done(Stmt id, const char* op, const char* what) {
  StmtUse use(stmt(id));
  int rc = sqlite3_step(use.get());
  if (rc == SQLITE_DONE || rc == SQLITE_ROW) return {};
  m_last_rc = rc;
  return sqlite_fail(m_db.get(), m_path, op, what);
}

// Runs `body` inside BEGIN IMMEDIATE ... COMMIT. The write lock is taken up front, so a
// transaction does not fail half-way for another writer; if SQLITE_BUSY still comes back (after
// busy_timeout, or where SQLite skips the busy handler), the whole transaction is rolled back
// and run again after a backoff, a bounded number of times. `body` must be re-runnable.
template <class F>
auto SqliteTokenStore::write_tx(const char* op, F&& body) -> decltype(body()) {
  for (int attempt = 1;; ++attempt) {
    m_last_rc = SQLITE_OK;
    auto result = [&]() -> decltype(body()) {
      if (auto r = step_done(Stmt::begin_immediate, op, "BEGIN IMMEDIATE"); !r) return std::unexpected(r.error());
      auto r = body();
      if (!r) return r;
      if (auto c = step_done(Stmt::commit, op, "COMMIT"); !c) return std::unexpected(c.error());
      return r;
    }();
    if (result) return result;
    if (!sqlite3_get_autocommit(m_db.get())) {
      StmtUse use(stmt(Stmt::rollback));
      sqlite3_step(use.get());
    }
    if (!is_busy(m_last_rc) || attempt >= k_max_attempts) {
      if (is_busy(m_last_rc))
        result.error().message += " (gave up after " + std::to_string(attempt) + " attempts)";
      return result;
    }
    backoff(attempt);
  }
}

Result<void> SqliteTokenStore::put(const std::optional<GrantRecord>& grant, std::span<const TokenRecord> tokens) {
  std::lock_guard lock(m_mutex);
  return write_tx("put", [&]() -> Result<void> { return insert_rows(grant, tokens); });
}

Result<void> SqliteTokenStore::insert_rows(const std::optional<GrantRecord>& grant,
                                           std::span<const TokenRecord> tokens) {
  // Hashes are random: inserted in hash order, the primary key index grows at its right edge
  // instead of touching a random page per token (a batch of 100,000 goes ~1.5x faster).
  // Sorting on an inline 8-byte prefix keeps the sort in cache (no pointer chasing per compare).
  struct Entry {
    std::uint64_t prefix;
    const TokenRecord* token;
  };
  std::vector<Entry> order;
  order.reserve(tokens.size());
  for (const TokenRecord& t : tokens) {
    std::uint64_t prefix = 0;
    for (std::size_t i = 0; i < 8; ++i)
      prefix = (prefix << 8) | (i < t.hash.size() ? static_cast<unsigned char>(t.hash[i]) : 0u);
    order.push_back({prefix, &t});
  }
  std::sort(order.begin(), order.end(), [](const Entry& a, const Entry& b) {
    return a.prefix != b.prefix ? a.prefix < b.prefix : a.token->hash < b.token->hash;
  });

  if (grant) {
    sqlite3_stmt* s = stmt(Stmt::insert_grant);
    bind(s, 1, grant->id);
    bind(s, 2, grant->client_id);
    bind(s, 3, grant->sub);
    bind(s, 4, grant->scope);
    bind(s, 5, grant->started);
    bind(s, 6, grant->revoked);
    bind(s, 7, grant->expires);
    bind(s, 8, grant->jwts);
    if (auto r = step_done(Stmt::insert_grant, "put", ("storing grant " + grant->id).c_str()); !r) return r;
  }
  sqlite3_stmt* s = stmt(Stmt::insert_token);
  for (const Entry& e : order) {
    const TokenRecord& t = *e.token;
    bind(s, 1, t.hash);
    bind(s, 2, t.kind);
    bind(s, 3, t.format);
    bind_null_if_empty(s, 4, t.grant_id);
    bind(s, 5, t.client_id);
    bind(s, 6, t.sub);
    bind(s, 7, t.scope);
    bind(s, 8, t.aud);
    bind(s, 9, t.iss);
    bind(s, 10, t.jti);
    bind(s, 11, t.iat);
    bind(s, 12, t.nbf);
    bind(s, 13, t.exp);
    bind(s, 14, t.claims);
    bind(s, 15, t.data);
    bind(s, 16, t.revoked);
    StmtUse use(s);
    if (sqlite3_step(s) != SQLITE_DONE) {
      m_last_rc = sqlite3_errcode(m_db.get());
      return sqlite_fail(m_db.get(), m_path, "put", "storing token " + t.hash);
    }
  }
  return {};
}

Result<std::optional<TokenRecord>> SqliteTokenStore::find(std::string_view hash) {
  std::lock_guard lock(m_mutex);
  StmtUse use(stmt(Stmt::find_token));
  sqlite3_stmt* s = use.get();
  bind(s, 1, hash);
  int rc = sqlite3_step(s);
  if (rc == SQLITE_DONE) return std::nullopt;
  if (rc != SQLITE_ROW) return sqlite_fail(m_db.get(), m_path, "find", "looking up token");
  TokenRecord t;
  t.hash = column_text(s, 0);
  t.kind = column_text(s, 1);
  t.format = column_text(s, 2);
  t.grant_id = column_text(s, 3);
  t.client_id = column_text(s, 4);
  t.sub = column_text(s, 5);
  t.scope = column_text(s, 6);
  t.aud = column_text(s, 7);
  t.iss = column_text(s, 8);
  t.jti = column_text(s, 9);
  t.iat = sqlite3_column_int64(s, 10);
  t.nbf = sqlite3_column_int64(s, 11);
  t.exp = sqlite3_column_int64(s, 12);
  t.claims = column_text(s, 13);
  t.data = column_text(s, 14);
  t.revoked = sqlite3_column_int(s, 15) != 0;
  t.consumed = sqlite3_column_int(s, 16) != 0;
  return t;
}

Result<std::optional<GrantRecord>> SqliteTokenStore::grant(std::string_view id) {
  std::lock_guard lock(m_mutex);
  StmtUse use(stmt(Stmt::find_grant));
  sqlite3_stmt* s = use.get();
  bind(s, 1, id);
  int rc = sqlite3_step(s);
  if (rc == SQLITE_DONE) return std::nullopt;
  if (rc != SQLITE_ROW) return sqlite_fail(m_db.get(), m_path, "grant", "looking up grant");
  GrantRecord g;
  g.id = column_text(s, 0);
  g.client_id = column_text(s, 1);
  g.sub = column_text(s, 2);
  g.scope = column_text(s, 3);
  g.started = sqlite3_column_int64(s, 4);
  g.revoked = sqlite3_column_int(s, 5) != 0;
  g.expires = sqlite3_column_int64(s, 6);
  g.jwts = sqlite3_column_int64(s, 7);
  return g;
}

Result<int> SqliteTokenStore::revoke_token(std::string_view hash) {
  std::lock_guard lock(m_mutex);
  return write_tx("revoke token", [&]() -> Result<int> {
    bind(stmt(Stmt::revoke_token), 1, hash);
    if (auto r = step_done(Stmt::revoke_token, "revoke token", ""); !r) return std::unexpected(r.error());
    return sqlite3_changes(m_db.get());
  });
}

// Marks the grants matching `key`, then the tokens matching it; returns the tokens changed.
// Counts the JWTs of the grants about to be revoked, revokes the grants, then their rows (and the
// key's own rows): the count is every token that was active and is now revoked.
Result<int> SqliteTokenStore::revoke_pair(const char* op, Stmt jwts, Stmt grants, Stmt tokens, std::string_view key) {
  std::lock_guard lock(m_mutex);
  return write_tx(op, [&]() { return revoke_pair_in_tx(op, jwts, grants, tokens, key); });
}

Result<int> SqliteTokenStore::revoke_pair_in_tx(const char* op, Stmt jwts, Stmt grants, Stmt tokens,
                                                std::string_view key) {
  std::int64_t counted = 0;
  {
    StmtUse use(stmt(jwts));
    bind(use.get(), 1, key);
    int rc = sqlite3_step(use.get());
    if (rc != SQLITE_ROW) {
      m_last_rc = rc;
      return sqlite_fail(m_db.get(), m_path, op, "counting JWTs");
    }
    counted = sqlite3_column_int64(use.get(), 0);
  }
  bind(stmt(grants), 1, key);
  if (auto r = step_done(grants, op, "revoking grants"); !r) return std::unexpected(r.error());
  bind(stmt(tokens), 1, key);
  if (auto r = step_done(tokens, op, "revoking tokens"); !r) return std::unexpected(r.error());
  counted += sqlite3_changes(m_db.get());
  return static_cast<int>(std::min<std::int64_t>(counted, std::numeric_limits<int>::max()));
}

Result<int> SqliteTokenStore::revoke_grant(std::string_view grant_id) {
  return revoke_pair("revoke grant", Stmt::revoke_grant_jwts, Stmt::revoke_grant_row, Stmt::revoke_grant_tokens,
                     grant_id);
}

Result<int> SqliteTokenStore::revoke_client(std::string_view client_id) {
  return revoke_pair("revoke client", Stmt::revoke_client_jwts, Stmt::revoke_client_grants,
                     Stmt::revoke_client_tokens, client_id);
}

Result<int> SqliteTokenStore::revoke_subject(std::string_view sub) {
  return revoke_pair("revoke subject", Stmt::revoke_subject_jwts, Stmt::revoke_subject_grants,
                     Stmt::revoke_subject_tokens, sub);
}

Result<Redeemed> SqliteTokenStore::redeem(std::string_view hash, const GrantRecord& grant,
                                          std::span<const TokenRecord> tokens) {
  std::lock_guard lock(m_mutex);
  return write_tx("redeem", [&]() -> Result<Redeemed> {
    bind(stmt(Stmt::consume_token), 1, hash);
    if (auto r = step_done(Stmt::consume_token, "redeem", "consuming the refresh token"); !r)
      return std::unexpected(r.error());
    if (sqlite3_changes(m_db.get()) == 1) {
      if (auto r = insert_rows(grant, tokens); !r) return std::unexpected(r.error());
      return Redeemed::ok;
    }
    // Not redeemable: consumed before (reuse: revoke the grant) or unknown / revoked.
    std::optional<std::string> reused_grant;
    {
      StmtUse use(stmt(Stmt::token_consumed));
      bind(use.get(), 1, hash);
      int rc = sqlite3_step(use.get());
      if (rc == SQLITE_ROW && sqlite3_column_int(use.get(), 0) != 0) reused_grant = column_text(use.get(), 1);
      else if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
        m_last_rc = rc;
        return sqlite_fail(m_db.get(), m_path, "redeem", "looking up the refresh token");
      }
    }
    if (!reused_grant) return Redeemed::inactive;
    if (!reused_grant->empty()) {
      auto n = revoke_pair_in_tx("redeem", Stmt::revoke_grant_jwts, Stmt::revoke_grant_row,
                                 Stmt::revoke_grant_tokens, *reused_grant);
      if (!n) return std::unexpected(n.error());
    }
    return Redeemed::reused;
  });
}

Result<bool> SqliteTokenStore::deny_jti(std::string_view jti, UnixTime exp, std::string_view grant_id) {
  std::lock_guard lock(m_mutex);
  // Runs `id` bound to `key`: whether it returned a row, and that row's first column.
  auto lookup = [&](Stmt id, std::string_view key, const char* what) -> Result<std::optional<std::int64_t>> {
    StmtUse use(stmt(id));
    bind(use.get(), 1, key);
    int rc = sqlite3_step(use.get());
    if (rc == SQLITE_ROW) return sqlite3_column_int64(use.get(), 0);
    if (rc == SQLITE_DONE) return std::nullopt;
    m_last_rc = rc;
    return sqlite_fail(m_db.get(), m_path, "deny jti", what);
  };
  return write_tx("deny jti", [&]() -> Result<bool> {
    auto denied = lookup(Stmt::is_denied, jti, "looking up jti");
    if (!denied) return std::unexpected(denied.error());
    bind(stmt(Stmt::deny_jti), 1, jti);
    bind(stmt(Stmt::deny_jti), 2, exp);
    if (auto r = step_done(Stmt::deny_jti, "deny jti", "denying jti"); !r) return std::unexpected(r.error());
    if (denied->has_value()) return false;  // revoked before: nothing changed now
    if (grant_id.empty()) return true;
    auto revoked = lookup(Stmt::grant_revoked, grant_id, "looking up the grant");
    if (!revoked) return std::unexpected(revoked.error());
    if (revoked->value_or(0) != 0) return false;  // its grant was revoked: the JWT was invalid already
    bind(stmt(Stmt::uncount_jwt), 1, grant_id);
    if (auto r = step_done(Stmt::uncount_jwt, "deny jti", "updating the grant"); !r) return std::unexpected(r.error());
    return true;
  });
}

Result<bool> SqliteTokenStore::is_denied(std::string_view jti) {
  std::lock_guard lock(m_mutex);
  StmtUse use(stmt(Stmt::is_denied));
  bind(use.get(), 1, jti);
  int rc = sqlite3_step(use.get());
  if (rc == SQLITE_ROW) return true;
  if (rc == SQLITE_DONE) return false;
  return sqlite_fail(m_db.get(), m_path, "is_denied", "looking up jti");
}

Result<std::int64_t> SqliteTokenStore::prune(UnixTime now) {
  std::lock_guard lock(m_mutex);
  return write_tx("prune", [&]() -> Result<std::int64_t> {
    std::int64_t deleted = 0;
    for (auto [id, what] : {std::pair{Stmt::prune_tokens, "deleting expired tokens"},
                            std::pair{Stmt::prune_denylist, "deleting expired deny-list entries"},
                            std::pair{Stmt::prune_grants, "deleting empty grants"}}) {
      bind(stmt(id), 1, now);
      if (auto r = step_done(id, "prune", what); !r) return std::unexpected(r.error());
      deleted += sqlite3_changes64(m_db.get());
    }
    return deleted;
  });
}

}  // namespace tokctl::tokens
