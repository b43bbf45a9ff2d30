#pragma once
// Revocation-safe caching of SqliteTokenStore's token lookups. Private to core/tokens.
//
// ChangeCounter: two 64-bit counters, `begun` and `done`, in a small file next to the database
// (PATH-rev, mode 0600), mapped shared by every process that opens the store. A write that can
// change what a lookup returns for a row that already exists (a revocation, a redemption, a
// prune, a grant stored as revoked) increments `begun` before its transaction begins and `done`
// after it ends, committed or not, and holds a shared flock on the file in between. Inserting new
// rows does not count: a lookup that finds nothing is never cached.
//
// RecordCache: rows found by a lookup, each tagged with the counter it was read under. A lookup is
// cached only when `begun == done` before the read (no such write was under way) and `begun` had
// not moved when the read ended; a cached row is returned only while `begun` still equals its tag.
// So a row is never served from the cache once a write that might change it has begun, in this
// process or in another one (`tokctl revoke` while `tokctl serve` runs).
//
// A process that dies between its two increments leaves `begun` ahead of `done`: caching stops
// (every lookup reads the database, which is always right) until a lookup finds the file's
// exclusive flock free, which proves no writer is between its increments, and sets `done` to
// `begun`. That is tried at most once a second.
//
// Schema 8 marks stores whose writers keep this protocol: an older tokctl refuses such a store
// rather than revoke behind a serving process's cache.

#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

#include <tokctl/tokens/token_store.hpp>
#include <tokctl/util/error.hpp>

namespace tokctl::tokens::sqlite {

class ChangeCounter {
 public:
  /// Maps PATH-rev (created 0600 when absent; a symlink, FIFO, directory or device, a file of
  /// another user or one others may write is refused). `db_path` must be the database's real
  /// path (no symlink): SQLite keeps its -wal and -shm beside the file it resolved, and every
  /// process must meet at one counter. ":memory:" gets counters of its own in memory.
  static Result<std::unique_ptr<ChangeCounter>> open(const std::string& db_path);
  static std::string counter_path(const std::string& db_path);
  ~ChangeCounter();
  ChangeCounter(const ChangeCounter&) = delete;
  ChangeCounter& operator=(const ChangeCounter&) = delete;

  /// Held by a writer around a transaction that may change existing rows.
  class WriteScope {
   public:
    explicit WriteScope(ChangeCounter* c) : m_counter(c) {}
    WriteScope(WriteScope&& o) noexcept : m_counter(o.m_counter) { o.m_counter = nullptr; }
    WriteScope& operator=(WriteScope&&) = delete;
    ~WriteScope();

   private:
    ChangeCounter* m_counter;
  };
  /// Takes the shared flock (waiting up to 5 s for a repairing process) and increments `begun`.
  Result<WriteScope> begin_write();

  /// `begun` when no write is between its increments; nullopt otherwise (and then, at most once
  /// a second, tries to repair what a dead writer left), and always on a network file system.
  std::optional<std::uint64_t> stable();
  /// Whether no write has begun since `stable()` returned `tag`.
  bool still(std::uint64_t tag) const { return begun().load(std::memory_order_acquire) == tag; }

 private:
  ChangeCounter() = default;
  std::atomic_ref<std::uint64_t> begun() const { return std::atomic_ref<std::uint64_t>(m_words[0]); }
  std::atomic_ref<std::uint64_t> done() const { return std::atomic_ref<std::uint64_t>(m_words[8]); }
  std::atomic_ref<std::uint64_t> nonce() const { return std::atomic_ref<std::uint64_t>(m_words[1]); }
  /// Sizes a new file and gives it its random nonce (under the exclusive lock); refuses one that
  /// was truncated.
  static Result<void> initialize(int fd, const std::string& path);
  void end_write();
  void repair();

  std::uint64_t* m_words = nullptr;  // [0]: begun, [1]: nonce, [8]: done (its own cache line)
  std::size_t m_mapped = 0;          // bytes mapped; 0 for the in-memory counters
  std::unique_ptr<std::uint64_t[]> m_private;
  int m_fd = -1;         // writers' shared flock
  int m_repair_fd = -1;  // a second open file description: its exclusive flock conflicts with m_fd's
  std::atomic<std::int64_t> m_last_repair{0};  // steady_clock seconds
  std::mutex m_repair_mu;                      // one repair at a time in this process
  std::atomic<int> m_writing{0};               // this process's writes between their increments
  bool m_cacheable = true;                     // false on a network file system: nothing is cached
  std::uint64_t m_nonce = 0;                   // the file's, when opened; 0 in memory
  std::atomic<std::uint64_t> m_high{0};        // the highest `begun` seen
  std::atomic<bool> m_rewound{false};          // the counter went back: caching is off for good
};

class RecordCache {
 public:
  explicit RecordCache(std::size_t capacity);

  /// The row cached for `key` under `tag`; a row cached under another tag is dropped.
  std::optional<TokenRecord> get(std::string_view key, std::uint64_t tag);
  void put(std::string_view key, const TokenRecord& row, std::uint64_t tag);

  struct Stats {
    std::uint64_t hits = 0;
    std::uint64_t misses = 0;
  };
  Stats stats() const;

 private:
  struct Hash {
    using is_transparent = void;
    std::size_t operator()(std::string_view s) const noexcept { return std::hash<std::string_view>{}(s); }
  };
  struct Entry {
    std::shared_ptr<const TokenRecord> row;
    std::uint64_t tag = 0;
  };
  struct Shard {
    std::mutex mu;
    std::unordered_map<std::string, Entry, Hash, std::equal_to<>> rows;
    std::uint64_t hits = 0, misses = 0;  // under mu: no shared counter bounces between threads
  };
  static constexpr std::size_t k_shards = 16;
  Shard& shard_of(std::string_view key) const { return m_shards[Hash{}(key) % k_shards]; }

  mutable std::array<Shard, k_shards> m_shards;
  std::size_t m_per_shard;
};

}  // namespace tokctl::tokens::sqlite
