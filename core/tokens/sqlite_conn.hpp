#pragma once
// Private to core/tokens: one SQLite connection of the token store with its lazily prepared
// statements, and the helpers every use of it needs (binding, errors, BUSY backoff, migrations).

#include <array>
#include <cstdint>
#include <chrono>
#include <memory>
#include <string>
#include <string_view>

#include <sqlite3.h>

#include <tokctl/util/error.hpp>

#include "sqlite_sql.hpp"

namespace tokctl::tokens::sqlite {

using sqlite_sql::Stmt;

using SqlitePtr = std::unique_ptr<sqlite3, decltype(&sqlite3_close_v2)>;
struct StmtFree {
  void operator()(sqlite3_stmt* s) const { sqlite3_finalize(s); }
};
using SqliteStmtPtr = std::unique_ptr<sqlite3_stmt, StmtFree>;

inline constexpr int k_busy_timeout_ms = 10'000;
inline constexpr int k_max_attempts = 8;  // BUSY retries on top of busy_timeout, < 0.5 s of backoff in all

inline bool is_busy(int rc) { return (rc & 0xff) == SQLITE_BUSY || (rc & 0xff) == SQLITE_LOCKED; }

/// Whether an operation that failed with BUSY on `attempt` (started at `started`) is tried again:
/// fewer than k_max_attempts, and all of them within one busy_timeout. A BUSY that comes after
/// busy_timeout's full wait (another process holds the lock) is not waited out again and again:
/// 8 x 10 s kept a server's requests hanging 80 s before their 503.
inline bool retry_busy(int attempt, std::chrono::steady_clock::time_point started) {
  return attempt < k_max_attempts &&
         std::chrono::steady_clock::now() - started < std::chrono::milliseconds(k_busy_timeout_ms);
}

/// Sleeps with exponential backoff and jitter (1 ms .. 512 ms), so that writers that collided do
/// not collide again in lock-step.
void backoff(int attempt);

/// ErrorCode::keystore: "token store PATH: OP: WHAT: sqlite message".
std::unexpected<Error> sqlite_fail(sqlite3* db, const std::string& path, std::string_view op, std::string_view what);

enum class Role { writer, reader };

/// One connection. Not thread-safe: the store hands each to one thread at a time.
class Conn {
 public:
  /// Opens `path` (must exist, schema migrated by the writer's open) with busy_timeout, hardening
  /// and pragmas; a reader is query_only.
  static Result<std::unique_ptr<Conn>> open(const std::string& path, Role role);

  sqlite3* db() const { return m_db.get(); }
  const std::string& path() const { return m_path; }
  /// The statement, prepared on first use; null when preparing failed (then fail() says why).
  sqlite3_stmt* stmt(Stmt id);
  /// Steps a statement that returns no row we need (also fine if it does); records BUSY.
  Result<void> step_done(Stmt id, const char* op, const char* what);
  /// An error for the last failed call on this connection, recording its result code.
  std::unexpected<Error> fail(std::string_view op, std::string_view what);

  int last_rc = SQLITE_OK;  ///< result code of the last failure (BUSY decides retries)

 private:
  Conn(std::string path, SqlitePtr db) : m_path(std::move(path)), m_db(std::move(db)) {}
  std::string m_path;
  SqlitePtr m_db;
  std::array<SqliteStmtPtr, static_cast<std::size_t>(Stmt::count_)> m_stmts{};
};

/// Resets and unbinds a statement when the scope ends, whatever path leaves it: a statement left
/// mid-step would keep a read transaction open (and block WAL checkpoints).
class StmtUse {
 public:
  explicit StmtUse(sqlite3_stmt* s) : m_s(s) {}
  ~StmtUse() {
    if (!m_s) return;
    sqlite3_reset(m_s);
    sqlite3_clear_bindings(m_s);
  }
  StmtUse(const StmtUse&) = delete;
  StmtUse& operator=(const StmtUse&) = delete;
  sqlite3_stmt* get() const { return m_s; }

 private:
  sqlite3_stmt* m_s;
};

// SQLITE_STATIC: every bound value outlives the step that reads it. Not named bind(): with
// <functional> in scope, ADL on std::string would pick std::bind and silently bind nothing.
inline int bind_arg(sqlite3_stmt* s, int i, std::string_view v) {
  return sqlite3_bind_text64(s, i, v.data() ? v.data() : "", v.size(), SQLITE_STATIC, SQLITE_UTF8);
}
inline int bind_arg(sqlite3_stmt* s, int i, std::int64_t v) { return sqlite3_bind_int64(s, i, v); }
inline int bind_arg(sqlite3_stmt* s, int i, bool v) { return sqlite3_bind_int(s, i, v ? 1 : 0); }
inline int bind_null_if_empty(sqlite3_stmt* s, int i, std::string_view v) {
  return v.empty() ? sqlite3_bind_null(s, i) : bind_arg(s, i, v);
}
std::string column_text(sqlite3_stmt* s, int i);
/// Binds a store key (token_hash: 64 hex digits) as its 32-byte BLOB; anything else binds NULL,
/// which no row has and no insert accepts.
int bind_key(sqlite3_stmt* s, int i, std::string_view hex);
/// A BLOB column back as lower-case hex.
std::string column_key(sqlite3_stmt* s, int i);

/// Creates the database file (mode 0600) when missing, opens the writer connection, switches the
/// file to WAL (not for ":memory:") and migrates the schema.
Result<std::unique_ptr<Conn>> open_writer(const std::string& path);

}  // namespace tokctl::tokens::sqlite
