#pragma once
// SqliteTokenStore: the embedded TokenStore (one SQLite file, WAL). Private to core/tokens;
// everything else reaches it through open_token_store("sqlite:PATH").
//
// Concurrency: several processes may write the same file. Every write is one BEGIN IMMEDIATE
// transaction (the write lock is taken up front, so a transaction never fails half-way with
// SQLITE_BUSY), waits come from busy_timeout, and a bounded retry with backoff covers the
// SQLITE_BUSY cases the busy handler does not (WAL recovery, lock upgrades). One object owns one
// connection and its prepared statements; a mutex serialises calls made on it from several threads.

#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <sqlite3.h>

#include <tokctl/tokens/token_store.hpp>

namespace tokctl::tokens {

using SqlitePtr = std::unique_ptr<sqlite3, decltype(&sqlite3_close_v2)>;
using SqliteStmtPtr = std::unique_ptr<sqlite3_stmt, decltype(&sqlite3_finalize)>;

/// Schema version this build creates and understands (PRAGMA user_version).
inline constexpr int k_sqlite_schema_version = 4;

class SqliteTokenStore final : public TokenStore {
 public:
  /// Opens (creating it with mode 0600 when absent) the store at `path`, switches it to WAL and
  /// brings its schema up to date. ":memory:" gives a private in-memory store (no WAL).
  /// Fails with ErrorCode::keystore (cannot open, not a database, schema newer than this build).
  static Result<std::unique_ptr<SqliteTokenStore>> open(const std::string& path);

  Result<void> put(const std::optional<GrantRecord>& grant, std::span<const TokenRecord> tokens) override;
  Result<std::optional<TokenRecord>> find(std::string_view hash) override;
  Result<std::optional<GrantRecord>> grant(std::string_view id) override;
  Result<int> revoke_token(std::string_view hash) override;
  Result<int> revoke_grant(std::string_view grant_id) override;
  Result<int> revoke_client(std::string_view client_id) override;
  Result<int> revoke_subject(std::string_view sub) override;
  Result<bool> deny_jti(std::string_view jti, UnixTime exp, std::string_view grant_id) override;
  Result<bool> is_denied(std::string_view jti) override;
  Result<std::int64_t> prune(UnixTime now) override;
  Result<Redeemed> redeem(std::string_view hash, const GrantRecord& grant, std::span<const TokenRecord> tokens) override;

 private:
  // Prepared once per connection, reused with reset + clear_bindings.
  enum class Stmt {
    begin_immediate,
    commit,
    rollback,
    insert_grant,
    insert_token,
    find_token,
    find_grant,
    revoke_token,
    revoke_grant_jwts,
    revoke_grant_row,
    revoke_grant_tokens,
    revoke_client_jwts,
    revoke_client_grants,
    revoke_client_tokens,
    revoke_subject_jwts,
    revoke_subject_grants,
    revoke_subject_tokens,
    deny_jti,
    is_denied,
    uncount_jwt,
    grant_revoked,
    consume_token,
    token_consumed,
    prune_tokens,
    prune_denylist,
    prune_grants,
    count_,  // number of statements, not one
  };

  SqliteTokenStore(std::string path, SqlitePtr db);

  template <class F>
  auto write_tx(const char* op, F&& body) -> decltype(body());
  sqlite3_stmt* stmt(Stmt id) const { return m_stmts[static_cast<std::size_t>(id)].get(); }
  Result<void> step_done(Stmt id, const char* op, const char* what);
  Result<int> revoke_pair(const char* op, Stmt jwts, Stmt grants, Stmt tokens, std::string_view key);
  Result<int> revoke_pair_in_tx(const char* op, Stmt jwts, Stmt grants, Stmt tokens, std::string_view key);
  /// Inserts a grant (upsert) and tokens; runs inside a transaction the caller holds.
  Result<void> insert_rows(const std::optional<GrantRecord>& grant, std::span<const TokenRecord> tokens);

  std::string m_path;
  SqlitePtr m_db;
  std::vector<SqliteStmtPtr> m_stmts;  ///< indexed by Stmt
  int m_last_rc = SQLITE_OK;          ///< result of the last failed step (for BUSY retries)
  std::mutex m_mutex;
};

}  // namespace tokctl::tokens
