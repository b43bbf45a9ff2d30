#include "sqlite_conn.hpp"

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <sys/stat.h>
#include <mutex>
#include <optional>
#include <random>
#include <thread>
#include <unistd.h>

#include <tokctl/tokens/token_store.hpp>
#include <tokctl/util/base64.hpp>

namespace tokctl::tokens::sqlite {
namespace {

using sqlite_sql::k_migrations;
using sqlite_sql::k_sqlite_schema_version;
using sqlite_sql::k_statements;

// Runs a statement outside the prepared set (open-time pragmas, migrations), retrying BUSY.
// `out`, when given, receives the first column of the first row.
Result<void> exec_retry(sqlite3* db, const std::string& path, const char* op, const std::string& sql,
                        std::string* out = nullptr) {
  const auto started = std::chrono::steady_clock::now();
  for (int attempt = 1;; ++attempt) {
    int rc = SQLITE_OK;
    if (out) {
      sqlite3_stmt* raw = nullptr;
      rc = sqlite3_prepare_v2(db, sql.c_str(), -1, &raw, nullptr);
      SqliteStmtPtr s(raw);
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
    if (is_busy(rc) && retry_busy(attempt, started)) {
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
    return tokctl::fail(ErrorCode::keystore,
                        "token store " + path + " has schema version " + std::to_string(v) +
                            ", newer than this tokctl understands (" + std::to_string(k_sqlite_schema_version) + ")",
                        "upgrade tokctl, or use another token store");
  };
  if (*version > k_sqlite_schema_version) return newer(*version);
  if (*version < 0) return tokctl::fail(ErrorCode::keystore, "token store " + path + " has a negative schema version");

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
  return tokctl::fail(ErrorCode::keystore, "creating token store " + path + ": " + std::strerror(errno));
}

}  // namespace

void backoff(int attempt) {
  thread_local std::minstd_rand rng(static_cast<unsigned>(::getpid()) ^
                                    static_cast<unsigned>(std::chrono::steady_clock::now().time_since_epoch().count()));
  const auto cap = std::chrono::microseconds(1000) * (1 << std::min(attempt, 9));  // 1 ms .. 512 ms
  std::uniform_int_distribution<long> dist(cap.count() / 2, cap.count());
  std::this_thread::sleep_for(std::chrono::microseconds(dist(rng)));
}

std::unexpected<Error> sqlite_fail(sqlite3* db, const std::string& path, std::string_view op, std::string_view what) {
  std::string msg = "token store " + path + ": " + std::string(op);
  if (!what.empty()) msg += ": " + std::string(what);
  msg += ": ";
  msg += db ? sqlite3_errmsg(db) : "out of memory";
  return tokctl::fail(ErrorCode::keystore, std::move(msg));
}

namespace {

// 64 hex digits -> the 32 key bytes; nullopt for anything else.
std::optional<std::string> key_bytes(std::string_view hex) {
  if (hex.size() != 64) return std::nullopt;
  auto bytes = hex_decode(hex);
  if (!bytes) return std::nullopt;
  return std::move(*bytes);
}

// tokctl_unhex(TEXT): the schema 6 migration's conversion of the old hex keys (Debian's SQLite
// 3.40 has no unhex()); NULL for anything that is not a 64-digit key, which the NOT NULL key
// column then refuses: the migration fails whole and the old table stays.
void sql_unhex(sqlite3_context* ctx, int, sqlite3_value** argv) {
  const auto* text = reinterpret_cast<const char*>(sqlite3_value_text(argv[0]));
  auto key = text ? key_bytes(std::string_view(text, static_cast<std::size_t>(sqlite3_value_bytes(argv[0]))))
                  : std::nullopt;
  if (!key) return sqlite3_result_null(ctx);
  sqlite3_result_blob(ctx, key->data(), static_cast<int>(key->size()), SQLITE_TRANSIENT);
}

// tokctl_counted_write(): what schema 8's triggers call before a row of tokens or grants changes.
// It does nothing; a tokctl that lacks it (older than the change counter, sqlite_cache.hpp) fails
// such a write with "no such function", instead of revoking behind another process's cache.
void sql_counted_write(sqlite3_context* ctx, int, sqlite3_value**) { sqlite3_result_null(ctx); }

}  // namespace

int bind_key(sqlite3_stmt* s, int i, std::string_view hex) {
  auto key = key_bytes(hex);
  if (!key) return sqlite3_bind_null(s, i);
  return sqlite3_bind_blob(s, i, key->data(), static_cast<int>(key->size()), SQLITE_TRANSIENT);
}

std::string column_key(sqlite3_stmt* s, int i) {
  const auto* p = static_cast<const char*>(sqlite3_column_blob(s, i));
  return hex_encode(std::string_view(p ? p : "", static_cast<std::size_t>(sqlite3_column_bytes(s, i))));
}

std::string column_text(sqlite3_stmt* s, int i) {
  const auto* p = sqlite3_column_text(s, i);
  if (!p) return {};
  return std::string(reinterpret_cast<const char*>(p), static_cast<std::size_t>(sqlite3_column_bytes(s, i)));
}

Result<std::unique_ptr<Conn>> Conn::open(const std::string& path, Role role) {
  // Before SQLite's first use in the process: no allocation statistics. They take one global
  // mutex per sqlite3_malloc, which two server threads reading at once contend on (futex calls
  // on every lookup). If SQLite was already initialised elsewhere, the call fails harmlessly.
  static std::once_flag configured;
  std::call_once(configured, [] { sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0); });
  sqlite3* raw = nullptr;
  // NOMUTEX: a connection is used by one thread at a time (the store's pool and writer ensure it).
  int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX;
  if (role == Role::writer) flags |= SQLITE_OPEN_CREATE;
  int rc = sqlite3_open_v2(path.c_str(), &raw, flags, nullptr);
  SqlitePtr db(raw, &sqlite3_close_v2);
  if (rc != SQLITE_OK) return sqlite_fail(db.get(), path, "opening", "");
  sqlite3_extended_result_codes(db.get(), 1);
  sqlite3_busy_timeout(db.get(), k_busy_timeout_ms);
  // Hardening: the schema cannot call application functions or be corrupted by stray SQL.
  sqlite3_db_config(db.get(), SQLITE_DBCONFIG_TRUSTED_SCHEMA, 0, nullptr);
  sqlite3_db_config(db.get(), SQLITE_DBCONFIG_DEFENSIVE, 1, nullptr);
  // temp_store = MEMORY: the writer's group commit gives each caller a savepoint, and SQLite keeps
  // a savepoint's undo (the statement journal) in a temporary file by default, which wrote every
  // page a caller touched once more (half the bytes an opaque issuance wrote, measured).
  const char* pragmas = role == Role::writer
                            ? "PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON; PRAGMA cache_size = -32768; "
                              "PRAGMA temp_store = MEMORY"
                            : "PRAGMA query_only = ON; PRAGMA cache_size = -8192";
  if (auto r = exec_retry(db.get(), path, "configuring", pragmas); !r) return std::unexpected(r.error());
  return std::unique_ptr<Conn>(new Conn(path, std::move(db)));
}

sqlite3_stmt* Conn::stmt(Stmt id) {
  auto& slot = m_stmts[static_cast<std::size_t>(id)];
  if (!slot) {
    sqlite3_stmt* s = nullptr;
    if (sqlite3_prepare_v3(m_db.get(), k_statements[static_cast<std::size_t>(id)], -1, SQLITE_PREPARE_PERSISTENT, &s,
                           nullptr) != SQLITE_OK) {
      last_rc = sqlite3_errcode(m_db.get());
      return nullptr;
    }
    slot.reset(s);
  }
  return slot.get();
}

Result<void> Conn::step_done(Stmt id, const char* op, const char* what) {
  sqlite3_stmt* s = stmt(id);
  if (!s) return fail(op, "preparing");
  StmtUse use(s);
  int rc = sqlite3_step(s);
  if (rc == SQLITE_DONE || rc == SQLITE_ROW) return {};
  last_rc = rc;
  return fail(op, what);
}

std::unexpected<Error> Conn::fail(std::string_view op, std::string_view what) {
  if (last_rc == SQLITE_OK) last_rc = sqlite3_extended_errcode(m_db.get());
  return sqlite_fail(m_db.get(), m_path, op, what);
}

Result<std::unique_ptr<Conn>> open_writer(const std::string& path) {
  if (path.empty()) {
    return tokctl::fail(ErrorCode::usage, "token store: empty SQLite path", "set the policy's store to sqlite:PATH");
  }
  const bool in_memory = path == ":memory:";
  if (!in_memory) {
    if (auto r = check_store_not_vanished(path); !r) return std::unexpected(r.error());
    if (auto r = create_private_file(path); !r) return std::unexpected(r.error());
  }
  auto conn = Conn::open(path, Role::writer);
  if (!conn) return conn;
  sqlite3* db = (*conn)->db();
  if (!in_memory) {
    std::string mode;
    if (auto r = exec_retry(db, path, "enabling WAL", "PRAGMA journal_mode = WAL", &mode); !r)
      return std::unexpected(r.error());
    if (mode != "wal")
      return tokctl::fail(ErrorCode::keystore, "token store " + path + ": cannot enable WAL (journal_mode is " + mode + ")",
                          "WAL needs a local file system that supports shared memory (not NFS)");
  }
  if (sqlite3_create_function_v2(db, "tokctl_unhex", 1, SQLITE_UTF8 | SQLITE_DETERMINISTIC | SQLITE_DIRECTONLY, nullptr,
                                 sql_unhex, nullptr, nullptr, nullptr) != SQLITE_OK ||
      sqlite3_create_function_v2(db, "tokctl_counted_write", 0, SQLITE_UTF8 | SQLITE_INNOCUOUS, nullptr,
                                 sql_counted_write, nullptr, nullptr, nullptr) != SQLITE_OK)
    return sqlite_fail(db, path, "registering functions", "");
  if (auto r = migrate(db, path); !r) return std::unexpected(r.error());
  return conn;
}

}  // namespace tokctl::tokens::sqlite

namespace tokctl::tokens {

Result<void> check_store_not_vanished(const std::string& path) {
  if (path == ":memory:") return {};
  struct stat st {};
  if (::stat(path.c_str(), &st) == 0 && st.st_size > 0) return {};
  // Missing or empty: fine for a new store, whose counter is absent or still at 0 (a store's first
  // opener creates the file, then the counter, while another may already look).
  const std::string counter = path + "-rev";
  int fd = ::open(counter.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
  if (fd < 0) return {};
  std::uint64_t begun = 0;
  const ssize_t n = ::pread(fd, &begun, sizeof begun, 0);
  ::close(fd);
  if (n != static_cast<ssize_t>(sizeof begun) || begun == 0) return {};
  return tokctl::fail(ErrorCode::keystore,
                      "the token store " + path + " is " + (::stat(path.c_str(), &st) == 0 ? "empty" : "missing") +
                          ", but its change counter " + counter + " shows revocations were made in it",
                      "restore the store from a backup; a new empty store would make revoked tokens valid again "
                      "(to start over on purpose, delete " + counter + " too)");
}

}  // namespace tokctl::tokens
