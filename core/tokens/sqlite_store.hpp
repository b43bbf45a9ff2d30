#pragma once
// SqliteTokenStore: the embedded TokenStore (one SQLite file, WAL). Private to core/tokens;
// everything else reaches it through open_token_store("sqlite:PATH").
//
// Concurrency, within a process: reads run on a pool of read-only connections, one per thread at
// a time, in parallel with each other and with the writer (WAL). Writes go through one writer
// connection with group commit: a caller queues its write and waits; the first caller to find no
// write in progress becomes the leader, takes every queued write, runs them in one BEGIN IMMEDIATE
// transaction (each inside its own savepoint, so one failing write rolls back alone), commits, and
// wakes the callers. A caller is answered only after the transaction holding its write committed,
// so an acknowledged write survives the process being killed. No lock is held while SQLite waits
// (busy_timeout) or while the leader backs off and retries after SQLITE_BUSY: the queue's mutex is
// held only to enqueue and dequeue. put_async queues a write with a completion instead of a
// waiting caller: a writer thread (started on first use) leads whenever such writes are queued
// and no caller leads, and runs the completions after the commit, outside the lock. A put_async
// may hand over a row maker instead of rows: the leader runs it before its transaction begins, so
// a batch issuer's thread only signs while the writer thread builds and writes the rows.
//
// Across processes: several processes may use the same file; BEGIN IMMEDIATE takes the write lock
// up front, busy_timeout waits for it, and a bounded retry with backoff covers the SQLITE_BUSY
// cases the busy handler does not (WAL recovery, lock upgrades).
//
// WAL checkpoints (file stores) run on a thread of their own, with a connection of their own: the
// writer's commit hook asks for one each k_checkpoint_frames new WAL frames. SQLite's default ran
// them inside the COMMIT that crossed its threshold, so that group's callers also waited for the
// pages to be copied back and two fdatasync(2) (measured: opaque issuance 11.6-13.1k req/s with
// checkpoints in the commit, 15.2-15.7k without any). A checkpoint that runs while the writer
// goes on cannot always let the WAL start over (that needs every frame copied back when the next
// write begins): a WAL that reaches k_wal_cap frames is checkpointed by the commit itself, as
// SQLite's default does, so the WAL stays bounded under any load.
//
// Token lookups are cached (sqlite_cache.hpp): a row found is kept, tagged with the store's change
// counter, and served until a write that may change existing rows begins, in any process. Writes
// that only add rows leave the counter alone, so issuing tokens does not empty the cache.

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <tokctl/tokens/token_store.hpp>

#include "sqlite_cache.hpp"

struct sqlite3;

namespace tokctl::tokens {

namespace sqlite {
class Conn;
}

class SqliteTokenStore final : public TokenStore {
 public:
  /// Opens (creating it with mode 0600 when absent) the store at `path`, switches it to WAL and
  /// brings its schema up to date. ":memory:" gives a private in-memory store (no WAL; reads
  /// then go through the writer). Fails with ErrorCode::keystore (cannot open, not a database,
  /// schema newer than this build).
  static Result<std::unique_ptr<SqliteTokenStore>> open(const std::string& path);
  ~SqliteTokenStore() override;

  Result<void> put(const std::optional<GrantRecord>& grant, std::span<const TokenRecord> tokens) override;
  void put_async(std::optional<GrantRecord> grant, std::vector<TokenRecord> tokens,
                 std::function<void(Result<void>)> done) override;
  /// `make_rows` runs on the leader's thread (the writer thread, unless a caller of a synchronous
  /// write leads), outside the queue's lock and before BEGIN IMMEDIATE.
  void put_async(std::optional<GrantRecord> grant, std::function<std::vector<TokenRecord>()> make_rows,
                 std::function<void(Result<void>)> done) override;
  Result<std::optional<TokenRecord>> find(std::string_view hash) override;
  Result<std::optional<GrantRecord>> grant(std::string_view id) override;
  Result<int> revoke_token(std::string_view hash) override;
  Result<int> revoke_grant(std::string_view grant_id) override;
  Result<int> revoke_client(std::string_view client_id) override;
  Result<int> revoke_subject(std::string_view sub) override;
  Result<bool> deny_jti(std::string_view jti, UnixTime exp, std::string_view grant_id) override;
  Result<bool> is_denied(std::string_view jti) override;
  Result<JwtStatus> jwt_status(std::string_view jti, std::string_view grant_id) override;
  Result<std::int64_t> prune(UnixTime now) override;
  Result<Redeemed> redeem(std::string_view hash, const GrantRecord& grant, std::span<const TokenRecord> tokens) override;
  bool may_hold_legacy_keys() const override;

  /// How many transactions the writer committed, and how many writes they held (group commit
  /// puts several writes in one transaction). For tests and benchmarks.
  struct WriteStats {
    std::uint64_t transactions = 0;
    std::uint64_t writes = 0;
    std::uint64_t checkpoints = 0;         ///< run by the checkpoint thread
    std::uint64_t commit_checkpoints = 0;  ///< run by a commit that found k_wal_cap frames in the WAL
    std::uint64_t checkpoint_failures = 0;
    int wal_frames = 0;                    ///< frames in the WAL after the last commit
    /// Groups run again with a savepoint per write because one of their writes failed on its own.
    std::uint64_t guarded_reruns = 0;
  };
  WriteStats write_stats() const;
  /// New WAL frames (pages) between two checkpoints, SQLite's default; and the WAL size at which a
  /// commit checkpoints itself (k_wal_cap frames of 4 KiB: 16 MiB).
  static constexpr int k_checkpoint_frames = 1000;
  static constexpr int k_wal_cap = 4000;
  /// How long a read may go on after the store's file was deleted or replaced (writes stop at once).
  static constexpr std::chrono::steady_clock::duration k_recheck = std::chrono::milliseconds(100);
  /// Lookups answered from the cache, and those that were not. For tests and benchmarks.
  sqlite::RecordCache::Stats cache_stats() const { return m_cache.stats(); }

  /// A queued write: `run` executes it on the writer connection inside the leader's transaction.
  struct Job {
    std::function<Result<void>(sqlite::Conn&)> run;
    const char* op = "";
    /// May change rows that exist (anything but adding rows): the group holding it bumps the
    /// change counter, which invalidates every process's cached lookups.
    bool changes_rows = true;
    bool done = false;
    bool failed = false;  ///< its own statements failed: rolled back to its savepoint
    Error error;
    /// Its caller's wake-up (with m_queue_mu): its write is done, or it is the next leader. One
    /// per caller, so a commit wakes exactly its callers and the next leader, not every waiter.
    std::condition_variable wake;
    /// Set for put_async: nobody waits; the leader calls it after the commit and frees the job.
    std::function<void(Result<void>)> on_done;
    /// Set for put_async with a row maker: the leader runs it once, before the transaction
    /// begins and with no lock held; `run` then stores what it made (or reports its failure).
    std::function<void()> prepare;
  };

 private:
  SqliteTokenStore(std::string path, std::unique_ptr<sqlite::Conn> writer,
                   std::unique_ptr<sqlite::ChangeCounter> changes);

  /// Queues `job` and returns when it is done (committed, or failed).
  void submit(Job& job);
  /// The leader's turn (m_leader_active set, `lock` held on entry and on return): lets the group
  /// grow under load, runs it, wakes its callers and the next leader, runs its completions.
  /// `self`: the leading caller's own job, or nullptr for the writer thread.
  void lead(std::unique_lock<std::mutex>& lock, Job* self);
  /// Queues a put_async job for the writer thread (started at the first one).
  void enqueue(std::unique_ptr<Job> job);
  /// Wakes whoever leads next: the front job's caller, or the writer thread for a put_async.
  void wake_next_leader();
  /// The writer thread: leads while put_async writes wait and no caller leads.
  void writer_loop();
  /// Fails when m_path no longer names the file this store opened (deleted, or replaced by a
  /// restore): writes would go to a file nobody will ever open again, and reads would miss every
  /// revocation made in the new one. Costs one stat(2): run per write group and per uncached read.
  Result<void> check_same_file() const;
  /// check_same_file() at most once per k_recheck for reads (a stat per request would cost more
  /// than a cached lookup); after a failed check, every call checks again.
  Result<void> check_same_file_soon();
  /// SQLite's WAL hook on the writer connection: runs in every COMMIT (on the leader), `frames` being
  /// the WAL's size. Asks the checkpoint thread for a checkpoint, or checkpoints at k_wal_cap.
  static int on_wal_commit(void* self, sqlite3* db, const char* name, int frames);
  /// The checkpoint thread (started by the first request): PASSIVE checkpoints on m_ckpt_conn.
  void checkpointer_loop();
  /// Sets m_legacy_keys from the legacy_keys table, read on `c`.
  Result<void> refresh_legacy_keys(sqlite::Conn& c);
  /// The leader's part: runs `batch` in one transaction (retrying it whole after SQLITE_BUSY).
  void run_group(const std::vector<Job*>& batch);
  /// Runs `body(conn)` on a pooled reader (":memory:": as a write job).
  template <class T, class F>
  Result<T> read(const char* op, F&& body);
  /// Runs `body(conn)` as one write through group commit.
  template <class T, class F>
  Result<T> write(const char* op, F&& body, bool changes_rows = true);

  std::string m_path;
  bool m_in_memory = false;
  /// Rows with a schema-5 key may exist (legacy_keys has a row). Read at open and after each
  /// prune; only ever goes from true to false (another process's prune leaves it true: harmless).
  std::atomic<bool> m_legacy_keys{true};
  std::unique_ptr<sqlite::Conn> m_writer;  // used by the current leader only
  std::unique_ptr<sqlite::ChangeCounter> m_changes;
  struct FileId {
    std::uint64_t dev = 0, ino = 0;
    bool operator==(const FileId&) const = default;
  };
  template <class Stat>
  static FileId file_id(const Stat& st) {
    return {static_cast<std::uint64_t>(st.st_dev), static_cast<std::uint64_t>(st.st_ino)};
  }
  FileId m_file, m_counter_file;  // what was opened (zero: in memory)
  std::string m_counter_path;     // beside the database's real path
  std::atomic<std::int64_t> m_checked_at{0};  // steady_clock ticks of the last check_same_file_soon
  std::atomic<bool> m_file_ok{false};
  sqlite::RecordCache m_cache;

  std::mutex m_readers_mu;  // guards m_readers only (never held during a query)
  std::vector<std::unique_ptr<sqlite::Conn>> m_readers;

  mutable std::mutex m_queue_mu;  // guards the queue, the leader flag, the jobs' flags and the stats
  std::vector<Job*> m_queue;
  bool m_leader_active = false;
  std::size_t m_last_group = 0;  // writes in the last transaction
  std::condition_variable m_writer_cv;  // wakes (and, gathering, paces) the writer thread
  bool m_closing = false;               // the destructor waits for the writer thread to drain
  std::thread m_writer_thread;          // started by the first put_async
  WriteStats m_stats;

  // Checkpoints. m_ckpt_next and m_ckpt_last are the leader's (the hook runs in its COMMIT).
  int m_ckpt_next = k_checkpoint_frames;  // WAL size at which the next checkpoint is asked for
  int m_ckpt_last = 0;                    // WAL size at the last commit (smaller now: it started over)
  mutable std::mutex m_ckpt_mu;           // guards the flags and the checkpoint counts
  std::condition_variable m_ckpt_cv;
  bool m_ckpt_wanted = false;
  bool m_ckpt_closing = false;
  WriteStats m_ckpt_stats;  // only its checkpoint fields and wal_frames
  std::unique_ptr<sqlite::Conn> m_ckpt_conn;  // the checkpoint thread's; closed before the writer
  std::thread m_ckpt_thread;
};

}  // namespace tokctl::tokens
