#include "sqlite_store.hpp"

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <exception>
#include <limits>
#include <optional>
#include <system_error>
#include <string_view>
#include <utility>
#include <vector>

#include <sys/stat.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "sqlite_conn.hpp"

namespace tokctl::tokens {
namespace {

using sqlite::bind_arg;
using sqlite::bind_key;
using sqlite::bind_null_if_empty;
using sqlite::column_key;
using sqlite::column_text;
using sqlite::Conn;
using sqlite::StmtUse;
using sqlite_sql::Stmt;

constexpr std::size_t k_max_group = 512;       // writes per group-commit transaction
constexpr std::size_t k_max_idle_readers = 16;  // reader connections kept open between reads
// Under load, a leader lets the queue grow before it takes it: in slices, for as long as writes
// keep arriving, and no longer than the whole.
constexpr auto k_gather_slice = std::chrono::microseconds(50);
constexpr auto k_gather_time = std::chrono::microseconds(250);
// Token rows kept by the lookup cache: the tokens in use now, not the whole store.
constexpr std::size_t k_cached_rows = 16384;

// Steps `id` (bound by `binder`) expecting at most one row; `row` reads it.
template <class Binder, class Row>
auto query_one(Conn& c, Stmt id, const char* op, const char* what, Binder&& binder, Row&& row)
    -> Result<std::optional<decltype(row(std::declval<sqlite3_stmt*>()))>> {
  using T = decltype(row(std::declval<sqlite3_stmt*>()));
  sqlite3_stmt* s = c.stmt(id);
  if (!s) return c.fail(op, "preparing");
  StmtUse use(s);
  binder(s);
  int rc = sqlite3_step(s);
  if (rc == SQLITE_DONE) return std::optional<T>();
  if (rc != SQLITE_ROW) {
    c.last_rc = rc;
    return c.fail(op, what);
  }
  return std::optional<T>(row(s));
}

TokenRecord read_token(sqlite3_stmt* s) {
  TokenRecord t;
  t.hash = column_key(s, 0);
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
  t.grant_started = sqlite3_column_int64(s, 17);
  return t;
}

GrantRecord read_grant(sqlite3_stmt* s) {
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

// Whether a put may change an existing row: re-storing a grant as revoked revokes it (a put
// otherwise only adds rows, and never changes what a lookup found).
bool stores_revoked(const std::optional<GrantRecord>& grant) { return grant && grant->revoked; }

// Inserts a grant (upsert) and tokens; runs inside the caller's transaction.
Result<void> insert_rows(Conn& c, const std::optional<GrantRecord>& grant, std::span<const TokenRecord> tokens) {
  // Keys of one batch share their issue-time prefix and are random after it: inserted in key
  // order, the table grows at its right edge instead of touching a random page per token.
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
    sqlite3_stmt* s = c.stmt(Stmt::insert_grant);
    if (!s) return c.fail("put", "preparing");
    bind_arg(s, 1, grant->id);
    bind_arg(s, 2, grant->client_id);
    bind_arg(s, 3, grant->sub);
    bind_arg(s, 4, grant->scope);
    bind_arg(s, 5, grant->started);
    bind_arg(s, 6, grant->revoked);
    bind_arg(s, 7, grant->expires);
    bind_arg(s, 8, grant->jwts);
    if (auto r = c.step_done(Stmt::insert_grant, "put", ("storing grant " + grant->id).c_str()); !r) return r;
  }
  sqlite3_stmt* s = c.stmt(Stmt::insert_token);
  if (!s) return c.fail("put", "preparing");
  for (const Entry& e : order) {
    const TokenRecord& t = *e.token;
    bind_key(s, 1, t.hash);
    bind_arg(s, 2, t.kind);
    bind_arg(s, 3, t.format);
    bind_null_if_empty(s, 4, t.grant_id);
    bind_arg(s, 5, t.client_id);
    bind_arg(s, 6, t.sub);
    bind_arg(s, 7, t.scope);
    bind_arg(s, 8, t.aud);
    bind_arg(s, 9, t.iss);
    bind_arg(s, 10, t.jti);
    bind_arg(s, 11, t.iat);
    bind_arg(s, 12, t.nbf);
    bind_arg(s, 13, t.exp);
    bind_arg(s, 14, t.claims);
    bind_arg(s, 15, t.data);
    bind_arg(s, 16, t.revoked);
    StmtUse use(s);
    if (int rc = sqlite3_step(s); rc != SQLITE_DONE) {
      c.last_rc = rc;
      return c.fail("put", "storing token " + t.hash);
    }
  }
  return {};
}

// Counts the JWTs of the grants matching `key` that are about to be revoked, revokes the grants,
// then their rows (and the key's own rows): the count is every token that was active and is now
// revoked. Runs inside the caller's transaction.
Result<int> revoke_pair(Conn& c, const char* op, Stmt jwts, Stmt grants, Stmt tokens, std::string_view key) {
  auto counted = query_one(c, jwts, op, "counting JWTs", [&](sqlite3_stmt* s) { bind_arg(s, 1, key); },
                           [](sqlite3_stmt* s) { return sqlite3_column_int64(s, 0); });
  if (!counted) return std::unexpected(counted.error());
  std::int64_t n = counted->value_or(0);
  for (auto [id, what] : {std::pair{grants, "revoking grants"}, std::pair{tokens, "revoking tokens"}}) {
    sqlite3_stmt* s = c.stmt(id);
    if (!s) return c.fail(op, "preparing");
    bind_arg(s, 1, key);
    if (auto r = c.step_done(id, op, what); !r) return std::unexpected(r.error());
  }
  n += sqlite3_changes(c.db());
  return static_cast<int>(std::min<std::int64_t>(n, std::numeric_limits<int>::max()));
}

}  // namespace

// ---- connections: readers and the group-committing writer ----------------------------------

SqliteTokenStore::SqliteTokenStore(std::string path, std::unique_ptr<Conn> writer,
                                   std::unique_ptr<sqlite::ChangeCounter> changes)
    : m_path(std::move(path)),
      m_in_memory(m_path == ":memory:"),
      m_writer(std::move(writer)),
      m_changes(std::move(changes)),
      m_cache(k_cached_rows) {}

SqliteTokenStore::~SqliteTokenStore() {
  {
    std::lock_guard lock(m_queue_mu);
    m_closing = true;
  }
  m_writer_cv.notify_all();
  if (m_writer_thread.joinable()) m_writer_thread.join();  // after it ran what was queued
  {
    std::lock_guard lock(m_ckpt_mu);
    m_ckpt_closing = true;
  }
  m_ckpt_cv.notify_all();
  if (m_ckpt_thread.joinable()) m_ckpt_thread.join();
  // m_ckpt_conn and the readers close before the writer: the last connection to close
  // checkpoints the whole WAL and removes it.
}

int SqliteTokenStore::on_wal_commit(void* self, sqlite3* db, const char* /*name*/, int frames) {
  auto& s = *static_cast<SqliteTokenStore*>(self);
  if (frames < s.m_ckpt_last) s.m_ckpt_next = k_checkpoint_frames;  // the WAL started over
  s.m_ckpt_last = frames;
  bool ask = false;
  bool done_here = false, failed_here = false;
  if (frames >= k_wal_cap) {
    // Background checkpoints have not let the WAL start over (each ended after the next write
    // began, or a reader holds an old snapshot): this commit checkpoints, as SQLite's default
    // would at every commit past its threshold. BUSY (the thread is checkpointing) is harmless.
    const int rc = sqlite3_wal_checkpoint_v2(db, nullptr, SQLITE_CHECKPOINT_PASSIVE, nullptr, nullptr);
    done_here = rc == SQLITE_OK;
    failed_here = !done_here && (rc & 0xff) != SQLITE_BUSY;
  } else if (frames >= s.m_ckpt_next) {
    s.m_ckpt_next = frames + k_checkpoint_frames;
    ask = true;
  }
  {
    std::lock_guard lock(s.m_ckpt_mu);
    s.m_ckpt_stats.wal_frames = frames;
    s.m_ckpt_stats.commit_checkpoints += done_here ? 1 : 0;
    s.m_ckpt_stats.checkpoint_failures += failed_here ? 1 : 0;
    if (ask && !s.m_ckpt_closing) {
      s.m_ckpt_wanted = true;
      if (!s.m_ckpt_thread.joinable()) {
        try {
          s.m_ckpt_thread = std::thread([&s] { s.checkpointer_loop(); });
        } catch (const std::system_error&) {  // no thread now (nothing may unwind through SQLite):
          s.m_ckpt_wanted = false;             // asked again later; the cap bounds the WAL meanwhile
          ask = false;
          ++s.m_ckpt_stats.checkpoint_failures;
        }
      }
    }
  }
  if (ask) s.m_ckpt_cv.notify_one();
  return SQLITE_OK;  // the commit itself succeeded whatever happened here
}

void SqliteTokenStore::checkpointer_loop() {
  std::unique_lock lock(m_ckpt_mu);
  for (;;) {
    m_ckpt_cv.wait(lock, [&] { return m_ckpt_wanted || m_ckpt_closing; });
    // Closing: a checkpoint asked for is still run (a short-lived writer, such as a CLI command,
    // must not leave every checkpoint to the cap while another process keeps the store open).
    if (!m_ckpt_wanted) return;
    m_ckpt_wanted = false;
    lock.unlock();
    bool ok = false;
    // Only into the file this store opened: a store replaced at its path (a restore) must never
    // get this file's WAL (check_same_file() also takes that WAL off the path).
    const bool same = static_cast<bool>(check_same_file());
    if (!m_ckpt_conn && same) {
      // A connection of its own (the writer's belongs to the leader). A first read opens its WAL;
      // the file is checked again once both are open (they stay bound to what they opened).
      if (auto c = Conn::open(m_path, sqlite::Role::reader);
          c && sqlite3_exec((*c)->db(), "SELECT count(*) FROM sqlite_schema", nullptr, nullptr, nullptr) == SQLITE_OK &&
          check_same_file())
        m_ckpt_conn = std::move(*c);
    }
    // PASSIVE: copies back what no reader still needs, and never waits for a lock.
    if (m_ckpt_conn && same)
      ok = sqlite3_wal_checkpoint_v2(m_ckpt_conn->db(), nullptr, SQLITE_CHECKPOINT_PASSIVE, nullptr, nullptr) ==
           SQLITE_OK;
    lock.lock();
    ++(ok ? m_ckpt_stats.checkpoints : m_ckpt_stats.checkpoint_failures);
  }
}

Result<std::unique_ptr<SqliteTokenStore>> SqliteTokenStore::open(const std::string& path) {
  auto writer = sqlite::open_writer(path);
  if (!writer) return std::unexpected(writer.error());
  // The counter sits beside the file SQLite resolved (its -wal and -shm do): every name of the
  // store must meet at one counter. A hard-linked file has several such places: refused.
  std::string real = path;
  FileId file;
  if (path != ":memory:") {
    char* resolved = ::realpath(path.c_str(), nullptr);
    if (!resolved) return tokctl::fail(ErrorCode::keystore, "token store " + path + ": " + std::strerror(errno));
    real = resolved;
    std::free(resolved);
    struct stat st {};
    if (::stat(real.c_str(), &st) != 0)
      return tokctl::fail(ErrorCode::keystore, "token store " + path + ": " + std::strerror(errno));
    if (st.st_nlink > 1) {
      return tokctl::fail(ErrorCode::keystore,
                          "token store " + path + " has " + std::to_string(st.st_nlink) +
                              " hard links: SQLite keeps its journal by name, so each name would be another store",
                          "keep one name (a symlink is fine)");
    }
    file = file_id(st);
  }
  auto changes = sqlite::ChangeCounter::open(real);
  if (!changes) return std::unexpected(changes.error());
  std::unique_ptr<SqliteTokenStore> store(new SqliteTokenStore(path, std::move(*writer), std::move(*changes)));
  if (path != ":memory:") {
    store->m_file = file;
    store->m_counter_path = sqlite::ChangeCounter::counter_path(real);
    struct stat st {};
    if (::stat(store->m_counter_path.c_str(), &st) != 0)
      return tokctl::fail(ErrorCode::keystore, "token store " + store->m_counter_path + ": " + std::strerror(errno));
    store->m_counter_file = file_id(st);
  }
  if (auto r = store->refresh_legacy_keys(*store->m_writer); !r) return std::unexpected(r.error());
  // Replaces SQLite's automatic checkpoint (see the header).
  if (path != ":memory:") sqlite3_wal_hook(store->m_writer->db(), &SqliteTokenStore::on_wal_commit, store.get());
  return store;
}

Result<void> SqliteTokenStore::check_same_file() const {
  if (m_in_memory) return {};
  auto same = [](const std::string& path, const FileId& id, off_t min_size) {
    struct stat st {};
    return ::stat(path.c_str(), &st) == 0 && file_id(st) == id && st.st_size >= min_size;
  };
  // The counter's size too: truncated under its mapping, touching it would be SIGBUS.
  const bool db_same = same(m_path, m_file, 0);
  if (db_same && same(m_counter_path, m_counter_file, 128)) return {};
  // SQLite leaves a moved or deleted database's -wal and -shm at the path when it closes it, and
  // the next opener applies that journal to whatever file is there now (a restored backup: corrupt).
  // Only the operator can tell which processes still use them, so the hint says what to do.
  return tokctl::fail(ErrorCode::keystore,
                      "token store " + m_path + ": the file or its change counter (" + m_counter_path +
                          ") was deleted, replaced or truncated while in use",
                      db_same ? "nothing was written; restart the process so that it opens the store now at that path"
                              : "nothing was written; stop every process using this store, delete " + m_path +
                                    "-wal and " + m_path +
                                    "-shm (the journal of the file that was replaced, which SQLite would apply to "
                                    "the file now there), then start again. To restore a backup while the store is "
                                    "in use, use sqlite3's .restore instead of replacing the file");
}

Result<void> SqliteTokenStore::check_same_file_soon() {
  if (m_in_memory) return {};
  const std::int64_t now = std::chrono::steady_clock::now().time_since_epoch().count();
  const std::int64_t last = m_checked_at.load(std::memory_order_relaxed);
  if (m_file_ok.load(std::memory_order_relaxed) && now - last < k_recheck.count()) return {};
  auto r = check_same_file();
  m_file_ok.store(r.has_value(), std::memory_order_relaxed);
  m_checked_at.store(now, std::memory_order_relaxed);
  return r;
}

Result<void> SqliteTokenStore::refresh_legacy_keys(Conn& c) {
  auto row = query_one(c, Stmt::legacy_keys, "open", "reading legacy_keys", [](sqlite3_stmt*) {},
                       [](sqlite3_stmt*) { return true; });
  if (!row) return std::unexpected(row.error());
  m_legacy_keys.store(row->has_value(), std::memory_order_relaxed);
  return {};
}

bool SqliteTokenStore::may_hold_legacy_keys() const { return m_legacy_keys.load(std::memory_order_relaxed); }

SqliteTokenStore::WriteStats SqliteTokenStore::write_stats() const {
  WriteStats out;
  {
    std::lock_guard lock(m_queue_mu);
    out = m_stats;
  }
  std::lock_guard lock(m_ckpt_mu);
  out.checkpoints = m_ckpt_stats.checkpoints;
  out.commit_checkpoints = m_ckpt_stats.commit_checkpoints;
  out.checkpoint_failures = m_ckpt_stats.checkpoint_failures;
  out.wal_frames = m_ckpt_stats.wal_frames;
  return out;
}

template <class T, class F>
Result<T> SqliteTokenStore::read(const char* op, F&& body) {
  // One private database: one connection. A read changes nothing: no change-counter bump.
  if (m_in_memory) return write<T>(op, std::forward<F>(body), false);
  std::unique_ptr<Conn> conn;
  {
    std::lock_guard lock(m_readers_mu);
    if (!m_readers.empty()) {
      conn = std::move(m_readers.back());
      m_readers.pop_back();
    }
  }
  if (!conn) {
    auto opened = Conn::open(m_path, sqlite::Role::reader);
    if (!opened) return std::unexpected(opened.error());
    conn = std::move(*opened);
  }
  conn->last_rc = SQLITE_OK;
  const auto started = std::chrono::steady_clock::now();
  auto same = check_same_file_soon();
  Result<T> r = same ? body(*conn) : Result<T>(std::unexpected(same.error()));
  // WAL readers see BUSY only in corner cases (recovery); retry those, holding no lock.
  for (int attempt = 1; !r && sqlite::is_busy(conn->last_rc) && sqlite::retry_busy(attempt, started); ++attempt) {
    sqlite::backoff(attempt);
    conn->last_rc = SQLITE_OK;
    r = body(*conn);
  }
  std::lock_guard lock(m_readers_mu);
  if (m_readers.size() < k_max_idle_readers) m_readers.push_back(std::move(conn));
  return r;
}

template <class T, class F>
Result<T> SqliteTokenStore::write(const char* op, F&& body, bool changes_rows) {
  std::optional<Result<T>> out;
  Job job;
  job.op = op;
  job.changes_rows = changes_rows;
  job.run = [&](Conn& c) -> Result<void> {
    out.emplace(body(c));
    if (!*out) return std::unexpected(out->error());
    return {};
  };
  submit(job);
  if (job.failed || !out) return std::unexpected(job.error);
  return std::move(*out);
}

void SqliteTokenStore::submit(Job& job) {
  std::unique_lock lock(m_queue_mu);
  m_queue.push_back(&job);
  while (!job.done) {
    if (m_leader_active) {
      job.wake.wait(lock);
      continue;
    }
    m_leader_active = true;
    lead(lock, &job);
  }
}

void SqliteTokenStore::wake_next_leader() {
  if (m_queue.empty()) return;
  if (m_queue.front()->on_done) {
    m_writer_cv.notify_one();
  } else {
    m_queue.front()->wake.notify_one();
  }
}

void SqliteTokenStore::writer_loop() {
  std::unique_lock lock(m_queue_mu);
  for (;;) {
    m_writer_cv.wait(lock, [&] { return !m_leader_active && (!m_queue.empty() || m_closing); });
    if (m_queue.empty()) return;  // closing, and nothing is left to run
    m_leader_active = true;
    lead(lock, nullptr);
  }
}

void SqliteTokenStore::enqueue(std::unique_ptr<Job> job) {
  std::lock_guard lock(m_queue_mu);
  if (!m_writer_thread.joinable()) m_writer_thread = std::thread([this] { writer_loop(); });
  m_queue.push_back(job.release());  // owned by the queue, then by the leader that runs it
  if (!m_leader_active) m_writer_cv.notify_one();
}

void SqliteTokenStore::put_async(std::optional<GrantRecord> grant, std::vector<TokenRecord> tokens,
                                 std::function<void(Result<void>)> done) {
  auto job = std::make_unique<Job>();
  job->op = "put";
  job->changes_rows = stores_revoked(grant);
  job->run = [grant = std::move(grant), tokens = std::move(tokens)](Conn& c) { return insert_rows(c, grant, tokens); };
  job->on_done = std::move(done);
  enqueue(std::move(job));
}

void SqliteTokenStore::put_async(std::optional<GrantRecord> grant, std::function<std::vector<TokenRecord>()> make_rows,
                                 std::function<void(Result<void>)> done) {
  // Shared by the job's two steps: `prepare` fills it before the transaction, `run` stores it (again
  // when the group is retried after SQLITE_BUSY: the rows are made once).
  struct Rows {
    std::function<std::vector<TokenRecord>()> make;
    std::vector<TokenRecord> rows;
    std::optional<Error> error;
  };
  auto rows = std::make_shared<Rows>();
  rows->make = std::move(make_rows);
  auto job = std::make_unique<Job>();
  job->op = "put";
  job->changes_rows = stores_revoked(grant);
  job->prepare = [rows] {
    try {
      rows->rows = rows->make();
    } catch (const std::exception& e) {
      rows->error = Error{ErrorCode::keystore, std::string("storing tokens: making their rows: ") + e.what(), {}};
    }
    rows->make = nullptr;  // what it captured (the caller's tokens) is released with the job, not kept twice
  };
  job->run = [grant = std::move(grant), rows](Conn& c) -> Result<void> {
    if (rows->error) return std::unexpected(*rows->error);
    return insert_rows(c, grant, rows->rows);
  };
  job->on_done = std::move(done);
  enqueue(std::move(job));
}

void SqliteTokenStore::lead(std::unique_lock<std::mutex>& lock, Job* self) {
  std::condition_variable& pace = self ? self->wake : m_writer_cv;
  {
    // Under load (the last transaction held several writes), let more writes join while they
    // keep coming: one commit then carries more of them, and a commit (WAL pages written, locks
    // taken) costs as much as many writes. The wait ends as soon as a slice passes with no new
    // arrival (every writer there is has queued), so it never idles the writer for nothing. A
    // lone writer commits at once.
    if (m_last_group > 1) {
      const auto deadline = std::chrono::steady_clock::now() + k_gather_time;
      for (std::size_t seen = 1; m_queue.size() > seen && m_queue.size() < k_max_group &&
                                 std::chrono::steady_clock::now() < deadline;) {
        seen = m_queue.size();
        pace.wait_for(lock, k_gather_slice);  // nobody else wakes a leader: a sleep
      }
    }
  }
  // Lead: take what is queued (the caller's job included, unless more than a group is waiting).
  const auto n = static_cast<std::ptrdiff_t>(std::min(m_queue.size(), k_max_group));
  std::vector<Job*> batch(m_queue.begin(), m_queue.begin() + n);
  m_queue.erase(m_queue.begin(), m_queue.begin() + n);
  lock.unlock();
  for (Job* j : batch) {
    if (!j->prepare) continue;
    j->prepare();  // does not throw (put_async catches what the row maker throws)
    j->prepare = nullptr;
  }
  run_group(batch);
  lock.lock();
  // Notified under the lock: a woken caller cannot return (and destroy its Job) before this
  // loop is past it. put_async jobs are nobody's: completed below, outside the lock.
  std::vector<std::unique_ptr<Job>> completions;
  for (Job* j : batch) {
    if (j->on_done) {
      completions.emplace_back(j);
      continue;
    }
    j->done = true;
    if (j != self) j->wake.notify_one();
  }
  ++m_stats.transactions;
  m_stats.writes += batch.size();
  m_last_group = batch.size();
  m_leader_active = false;
  wake_next_leader();
  if (completions.empty()) return;
  lock.unlock();
  for (auto& j : completions) {
    Result<void> outcome;
    if (j->failed) outcome = std::unexpected(j->error);
    try {
      j->on_done(std::move(outcome));
    } catch (...) {  // a completion must not throw; if one does, the writer still goes on
    }
  }
  completions.clear();
  lock.lock();
}

void SqliteTokenStore::run_group(const std::vector<Job*>& batch) {
  Conn& c = *m_writer;
  const auto started = std::chrono::steady_clock::now();
  auto fail_all = [&](const Error& e) {
    for (Job* j : batch) {
      j->failed = true;
      j->error = e;
    }
  };
  if (auto same = check_same_file(); !same) return fail_all(same.error());
  // Held from before BEGIN to after COMMIT or ROLLBACK, retries included (sqlite_cache.hpp).
  std::optional<sqlite::ChangeCounter::WriteScope> changing;
  if (std::any_of(batch.begin(), batch.end(), [](const Job* j) { return j->changes_rows; })) {
    auto scope = m_changes->begin_write();
    if (!scope) return fail_all(scope.error());
    changing.emplace(std::move(*scope));
  }
  // A write alone needs no savepoint (its failure rolls back the transaction): a big one (prune, a
  // client's revocation) then keeps no statement journal of every page it touches. A group runs
  // first without savepoints too, since a savepoint per write copies every page the write touches
  // into the statement journal (a tenth of the server's CPU on opaque issuance); only when one of
  // its writes fails on its own is the transaction rolled back and the group run again, each write
  // in a savepoint, so that the failing one is undone alone and the others commit.
  const bool alone = batch.size() == 1;
  bool guarded = false;
  for (int attempt = 1;; ++attempt) {
    c.last_rc = SQLITE_OK;
    bool run_guarded = false;
    Result<void> group = [&]() -> Result<void> {
      if (auto r = c.step_done(Stmt::begin_immediate, "write", "BEGIN IMMEDIATE"); !r) return r;
      for (Job* j : batch) {
        j->failed = false;
        if (guarded) {
          if (auto r = c.step_done(Stmt::savepoint, j->op, "SAVEPOINT"); !r) return r;
        }
        if (auto r = j->run(c); !r) {
          if (sqlite::is_busy(c.last_rc)) return r;  // lock trouble: the whole group runs again
          // Its own failure: undo its writes only.
          j->failed = true;
          j->error = r.error();
          if (alone) return c.step_done(Stmt::rollback, j->op, "ROLLBACK");
          if (!guarded) {  // its writes are mixed with the others': all go, and the group runs again
            run_guarded = true;
            return c.step_done(Stmt::rollback, j->op, "ROLLBACK");
          }
          if (auto rb = c.step_done(Stmt::rollback_to, j->op, "ROLLBACK TO"); !rb) return rb;
        }
        if (guarded) {
          if (auto rel = c.step_done(Stmt::release, j->op, "RELEASE"); !rel) return rel;
        }
      }
      return c.step_done(Stmt::commit, "write", "COMMIT");
    }();
    if (group && run_guarded) {
      guarded = true;
      std::lock_guard lock(m_queue_mu);  // not held while a group runs
      ++m_stats.guarded_reruns;
      continue;
    }
    if (group) return;
    if (!sqlite3_get_autocommit(c.db())) {
      if (sqlite3_stmt* s = c.stmt(Stmt::rollback)) {
        StmtUse use(s);
        sqlite3_step(s);
      }
    }
    const bool busy = sqlite::is_busy(c.last_rc);
    if (busy && sqlite::retry_busy(attempt, started)) {
      sqlite::backoff(attempt);
      continue;
    }
    Error e = group.error();
    if (busy) e.message += " (gave up after " + std::to_string(attempt) + " attempts)";
    return fail_all(e);
  }
}

// ---- the TokenStore operations --------------------------------------------------------------

Result<void> SqliteTokenStore::put(const std::optional<GrantRecord>& grant, std::span<const TokenRecord> tokens) {
  return write<void>("put", [&](Conn& c) { return insert_rows(c, grant, tokens); }, stores_revoked(grant));
}

Result<std::optional<TokenRecord>> SqliteTokenStore::find(std::string_view hash) {
  // A store deleted or replaced under this process is refused within k_recheck, cached rows too.
  if (auto same = check_same_file_soon(); !same) return std::unexpected(same.error());
  const std::optional<std::uint64_t> tag = m_changes->stable();
  if (tag) {
    if (auto hit = m_cache.get(hash, *tag)) return std::optional<TokenRecord>(std::move(*hit));
  }
  auto found = read<std::optional<TokenRecord>>("find", [&](Conn& c) {
    return query_one(c, Stmt::find_token, "find", "looking up token", [&](sqlite3_stmt* s) { bind_key(s, 1, hash); },
                     read_token);
  });
  // Kept only if no write that may change rows began during the read (see sqlite_cache.hpp).
  if (tag && found && *found && m_changes->still(*tag)) m_cache.put(hash, **found, *tag);
  return found;
}

Result<std::optional<GrantRecord>> SqliteTokenStore::grant(std::string_view id) {
  return read<std::optional<GrantRecord>>("grant", [&](Conn& c) {
    return query_one(c, Stmt::find_grant, "grant", "looking up grant", [&](sqlite3_stmt* s) { bind_arg(s, 1, id); },
                     read_grant);
  });
}

Result<JwtStatus> SqliteTokenStore::jwt_status(std::string_view jti, std::string_view grant_id) {
  return read<JwtStatus>("jwt status", [&](Conn& c) -> Result<JwtStatus> {
    auto row = query_one(
        c, Stmt::jwt_status, "jwt status", "looking up the JWT",
        [&](sqlite3_stmt* s) {
          bind_arg(s, 1, jti);
          bind_arg(s, 2, grant_id);
        },
        [](sqlite3_stmt* s) {
          JwtStatus st;
          st.denied = sqlite3_column_int(s, 0) != 0;
          st.grant_found = sqlite3_column_int(s, 1) != 0;
          st.grant_revoked = sqlite3_column_int(s, 2) != 0;
          st.grant_started = sqlite3_column_int64(s, 3);
          return st;
        });
    if (!row) return std::unexpected(row.error());
    return row->value_or(JwtStatus{});
  });
}

Result<bool> SqliteTokenStore::is_denied(std::string_view jti) {
  return read<bool>("is_denied", [&](Conn& c) -> Result<bool> {
    auto row = query_one(c, Stmt::is_denied, "is_denied", "looking up jti", [&](sqlite3_stmt* s) { bind_arg(s, 1, jti); },
                         [](sqlite3_stmt*) { return true; });
    if (!row) return std::unexpected(row.error());
    return row->has_value();
  });
}

Result<int> SqliteTokenStore::revoke_token(std::string_view hash) {
  return write<int>("revoke token", [&](Conn& c) -> Result<int> {
    sqlite3_stmt* s = c.stmt(Stmt::revoke_token);
    if (!s) return c.fail("revoke token", "preparing");
    bind_key(s, 1, hash);
    if (auto r = c.step_done(Stmt::revoke_token, "revoke token", ""); !r) return std::unexpected(r.error());
    return sqlite3_changes(c.db());
  });
}

Result<int> SqliteTokenStore::revoke_grant(std::string_view grant_id) {
  return write<int>("revoke grant", [&](Conn& c) {
    return revoke_pair(c, "revoke grant", Stmt::revoke_grant_jwts, Stmt::revoke_grant_row, Stmt::revoke_grant_tokens,
                       grant_id);
  });
}

Result<int> SqliteTokenStore::revoke_client(std::string_view client_id) {
  return write<int>("revoke client", [&](Conn& c) {
    return revoke_pair(c, "revoke client", Stmt::revoke_client_jwts, Stmt::revoke_client_grants,
                       Stmt::revoke_client_tokens, client_id);
  });
}

Result<int> SqliteTokenStore::revoke_subject(std::string_view sub) {
  return write<int>("revoke subject", [&](Conn& c) {
    return revoke_pair(c, "revoke subject", Stmt::revoke_subject_jwts, Stmt::revoke_subject_grants,
                       Stmt::revoke_subject_tokens, sub);
  });
}

Result<Redeemed> SqliteTokenStore::redeem(std::string_view hash, const GrantRecord& grant,
                                          std::span<const TokenRecord> tokens) {
  return write<Redeemed>("redeem", [&](Conn& c) -> Result<Redeemed> {
    sqlite3_stmt* s = c.stmt(Stmt::consume_token);
    if (!s) return c.fail("redeem", "preparing");
    bind_key(s, 1, hash);
    if (auto r = c.step_done(Stmt::consume_token, "redeem", "consuming the refresh token"); !r)
      return std::unexpected(r.error());
    if (sqlite3_changes(c.db()) == 1) {
      if (auto r = insert_rows(c, grant, tokens); !r) return std::unexpected(r.error());
      return Redeemed::ok;
    }
    // Not redeemable: consumed before (reuse: revoke the grant) or unknown / revoked.
    auto consumed = query_one(
        c, Stmt::token_consumed, "redeem", "looking up the refresh token", [&](sqlite3_stmt* st) { bind_key(st, 1, hash); },
        [](sqlite3_stmt* st) { return std::pair{sqlite3_column_int(st, 0) != 0, column_text(st, 1)}; });
    if (!consumed) return std::unexpected(consumed.error());
    if (!*consumed || !(*consumed)->first) return Redeemed::inactive;
    if (const std::string& reused_grant = (*consumed)->second; !reused_grant.empty()) {
      auto n = revoke_pair(c, "redeem", Stmt::revoke_grant_jwts, Stmt::revoke_grant_row, Stmt::revoke_grant_tokens,
                           reused_grant);
      if (!n) return std::unexpected(n.error());
    }
    return Redeemed::reused;
  });
}

Result<bool> SqliteTokenStore::deny_jti(std::string_view jti, UnixTime exp, std::string_view grant_id) {
  return write<bool>("deny jti", [&](Conn& c) -> Result<bool> {
    auto first_column = [](sqlite3_stmt* s) { return sqlite3_column_int64(s, 0); };
    auto denied = query_one(c, Stmt::is_denied, "deny jti", "looking up jti", [&](sqlite3_stmt* s) { bind_arg(s, 1, jti); },
                            first_column);
    if (!denied) return std::unexpected(denied.error());
    sqlite3_stmt* d = c.stmt(Stmt::deny_jti);
    if (!d) return c.fail("deny jti", "preparing");
    bind_arg(d, 1, jti);
    bind_arg(d, 2, exp);
    if (auto r = c.step_done(Stmt::deny_jti, "deny jti", "denying jti"); !r) return std::unexpected(r.error());
    if (denied->has_value()) return false;  // revoked before: nothing changed now
    if (grant_id.empty()) return true;
    auto revoked = query_one(c, Stmt::grant_revoked, "deny jti", "looking up the grant",
                             [&](sqlite3_stmt* s) { bind_arg(s, 1, grant_id); }, first_column);
    if (!revoked) return std::unexpected(revoked.error());
    if (revoked->value_or(0) != 0) return false;  // its grant was revoked: the JWT was invalid already
    sqlite3_stmt* u = c.stmt(Stmt::uncount_jwt);
    if (!u) return c.fail("deny jti", "preparing");
    bind_arg(u, 1, grant_id);
    if (auto r = c.step_done(Stmt::uncount_jwt, "deny jti", "updating the grant"); !r) return std::unexpected(r.error());
    return true;
  });
}

Result<std::int64_t> SqliteTokenStore::prune(UnixTime now) {
  auto pruned = write<std::int64_t>("prune", [&](Conn& c) -> Result<std::int64_t> {
    std::int64_t deleted = 0;
    for (auto [id, what] : {std::pair{Stmt::prune_tokens, "deleting expired tokens"},
                            std::pair{Stmt::prune_denylist, "deleting expired deny-list entries"},
                            std::pair{Stmt::prune_grants, "deleting empty grants"},
                            std::pair{Stmt::prune_legacy_keys, "deleting the legacy key mark"}}) {
      sqlite3_stmt* s = c.stmt(id);
      if (!s) return c.fail("prune", "preparing");
      bind_arg(s, 1, now);
      if (auto r = c.step_done(id, "prune", what); !r) return std::unexpected(r.error());
      if (id != Stmt::prune_legacy_keys) deleted += sqlite3_changes64(c.db());
    }
    return deleted;
  });
  if (!pruned) return pruned;
  // Only once committed: a rolled-back prune must not stop the legacy lookups.
  auto legacy = read<bool>("prune", [&](Conn& c) -> Result<bool> {
    if (auto r = refresh_legacy_keys(c); !r) return std::unexpected(r.error());
    return true;
  });
  if (!legacy) return std::unexpected(legacy.error());
  return pruned;
}

}  // namespace tokctl::tokens
