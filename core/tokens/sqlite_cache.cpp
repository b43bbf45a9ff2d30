#include "sqlite_cache.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <thread>

#include <openssl/rand.h>

namespace tokctl::tokens::sqlite {
namespace {

constexpr std::size_t k_counter_bytes = 128;  // two counters, a cache line each
constexpr int k_lock_attempts = 5000;          // x 1 ms: how long a writer waits for a repairer

std::int64_t steady_seconds() {
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// flock(fd, op) without blocking, retried for up to k_lock_attempts ms: a process that holds the
// lock for good must not hang us. Empty when locked, else why not.
std::string flock_bounded(int fd, int op) {
  for (int attempt = 0; ::flock(fd, op | LOCK_NB) != 0; ++attempt) {
    if (errno != EWOULDBLOCK && errno != EINTR) return std::string("locking: ") + std::strerror(errno);
    if (attempt >= k_lock_attempts) return "locked by another process for 5 s";
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return {};
}

std::unexpected<Error> counter_fail(const std::string& path, const std::string& what) {
  return tokctl::fail(ErrorCode::keystore, "token store change counter " + path + ": " + what,
                      "it must be a regular file next to the store, writable by whoever runs tokctl");
}

// Opens PATH (creating it 0600), never following a symlink nor blocking on a FIFO; only a
// regular file owned by this user or root, that nobody else may write, is accepted: whoever can
// write it can make cached rows outlive a revocation.
Result<int> open_counter_file(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK, 0600);
  if (fd < 0) return counter_fail(path, std::strerror(errno));
  struct stat st {};
  std::string why;
  if (::fstat(fd, &st) != 0) why = std::strerror(errno);
  else if (!S_ISREG(st.st_mode)) why = "not a regular file";
  else if (st.st_uid != ::geteuid() && st.st_uid != 0) why = "owned by neither you nor root";  // as keystore.json
  else if ((st.st_mode & 022) != 0) why = "writable by group or others";
  if (!why.empty()) {
    ::close(fd);
    return counter_fail(path, why);
  }
  return fd;
}

// Network file systems emulate flock (NFS: with per-process POSIX locks, which a process's own
// threads do not exclude each other with): the repair's proof would not hold there.
bool local_locks(int fd) {
  struct statfs fs {};
  if (::fstatfs(fd, &fs) != 0) return false;
  switch (static_cast<unsigned long>(fs.f_type)) {
    case 0x6969UL:      // NFS
    case 0x517BUL:      // SMB
    case 0xFF534D42UL:  // CIFS
    case 0xFE534D42UL:  // SMB2
    case 0x65735546UL:  // FUSE
      return false;
    default:
      return true;
  }
}

}  // namespace

Result<std::unique_ptr<ChangeCounter>> ChangeCounter::open(const std::string& db_path) {
  std::unique_ptr<ChangeCounter> c(new ChangeCounter());
  if (db_path == ":memory:") {
    c->m_private = std::make_unique<std::uint64_t[]>(k_counter_bytes / sizeof(std::uint64_t));
    c->m_words = c->m_private.get();
    return c;
  }
  const std::string path = counter_path(db_path);
  auto fd = open_counter_file(path);
  if (!fd) return std::unexpected(fd.error());
  c->m_fd = *fd;
  auto repair_fd = open_counter_file(path);
  if (!repair_fd) return std::unexpected(repair_fd.error());
  c->m_repair_fd = *repair_fd;
  if (auto init = initialize(c->m_repair_fd, path); !init) return std::unexpected(init.error());
  void* p = ::mmap(nullptr, k_counter_bytes, PROT_READ | PROT_WRITE, MAP_SHARED, c->m_fd, 0);
  if (p == MAP_FAILED) return counter_fail(path, std::string("mapping: ") + std::strerror(errno));
  c->m_words = static_cast<std::uint64_t*>(p);
  c->m_mapped = k_counter_bytes;
  c->m_cacheable = local_locks(c->m_fd);
  c->m_nonce = c->nonce().load(std::memory_order_acquire);
  return c;
}

Result<void> ChangeCounter::initialize(int fd, const std::string& path) {
  struct stat st {};
  if (::fstat(fd, &st) != 0) return counter_fail(path, std::strerror(errno));
  if (static_cast<std::size_t>(st.st_size) >= k_counter_bytes) {
    std::uint64_t n = 0;
    if (::pread(fd, &n, sizeof n, 8) == static_cast<ssize_t>(sizeof n) && n != 0) return {};  // in use already
  }
  // New (or from a build without a nonce): set up under the exclusive lock, so that two first
  // openers agree on one nonce. A short file that is not empty was truncated: refused, since its
  // counters would run again through values that cached rows carry.
  if (auto why = flock_bounded(fd, LOCK_EX); !why.empty()) return counter_fail(path, "setting it up: " + why);
  auto unlock = [fd](Result<void> r) {
    ::flock(fd, LOCK_UN);
    return r;
  };
  if (::fstat(fd, &st) != 0) return unlock(counter_fail(path, std::strerror(errno)));
  if (st.st_size != 0 && static_cast<std::size_t>(st.st_size) < k_counter_bytes)
    return unlock(counter_fail(path, "truncated (" + std::to_string(st.st_size) + " bytes)"));
  if (st.st_size == 0 && ::ftruncate(fd, k_counter_bytes) != 0)
    return unlock(counter_fail(path, std::string("extending: ") + std::strerror(errno)));
  std::uint64_t n = 0;
  if (::pread(fd, &n, sizeof n, 8) != static_cast<ssize_t>(sizeof n))
    return unlock(counter_fail(path, std::string("reading: ") + std::strerror(errno)));
  while (n == 0) {
    if (RAND_bytes(reinterpret_cast<unsigned char*>(&n), sizeof n) != 1)
      return unlock(counter_fail(path, "no random bytes for its nonce"));
  }
  if (::pwrite(fd, &n, sizeof n, 8) != static_cast<ssize_t>(sizeof n))
    return unlock(counter_fail(path, std::string("writing: ") + std::strerror(errno)));
  return unlock({});
}

std::string ChangeCounter::counter_path(const std::string& db_path) { return db_path + "-rev"; }

ChangeCounter::~ChangeCounter() {
  if (m_mapped) ::munmap(m_words, m_mapped);
  if (m_fd >= 0) ::close(m_fd);
  if (m_repair_fd >= 0) ::close(m_repair_fd);
}

Result<ChangeCounter::WriteScope> ChangeCounter::begin_write() {
  // Bounded: a process holding the exclusive lock for good (only a repair or a first set-up takes
  // it, briefly) must not hang every writer.
  if (m_fd >= 0) {
    if (auto why = flock_bounded(m_fd, LOCK_SH); !why.empty())
      return tokctl::fail(ErrorCode::keystore, "token store change counter: " + why);
  }
  m_writing.fetch_add(1, std::memory_order_seq_cst);
  begun().fetch_add(1, std::memory_order_seq_cst);
  return WriteScope(this);
}

ChangeCounter::WriteScope::~WriteScope() {
  if (m_counter) m_counter->end_write();
}

void ChangeCounter::end_write() {
  done().fetch_add(1, std::memory_order_seq_cst);
  if (m_fd >= 0) ::flock(m_fd, LOCK_UN);
  m_writing.fetch_sub(1, std::memory_order_seq_cst);
}

std::optional<std::uint64_t> ChangeCounter::stable() {
  if (!m_cacheable || m_rewound.load(std::memory_order_relaxed)) return std::nullopt;
  const std::uint64_t b = begun().load(std::memory_order_acquire);
  // Truncated and set up again, or copied back from a backup, the counter would reach values that
  // cached rows carry a second time: this process caches nothing more (it reads the database).
  if (nonce().load(std::memory_order_acquire) != m_nonce) {
    m_rewound.store(true, std::memory_order_relaxed);
    return std::nullopt;
  }
  std::uint64_t high = m_high.load(std::memory_order_relaxed);
  if (b < high) {
    m_rewound.store(true, std::memory_order_relaxed);
    return std::nullopt;
  }
  while (b > high && !m_high.compare_exchange_weak(high, b, std::memory_order_relaxed)) {
  }
  if (done().load(std::memory_order_acquire) == b) return b;
  repair();
  return std::nullopt;
}

void ChangeCounter::repair() {
  if (m_repair_fd < 0) return;  // in memory: a writer always ends (no process to die)
  const std::int64_t now = steady_seconds();
  std::int64_t last = m_last_repair.load(std::memory_order_relaxed);
  if (now - last < 1 || !m_last_repair.compare_exchange_strong(last, now, std::memory_order_relaxed)) return;
  // One repair at a time in this process: two threads' flocks on one open file description do
  // not exclude each other, and one's unlock would drop the other's lock.
  std::unique_lock only(m_repair_mu, std::try_to_lock);
  if (!only.owns_lock()) return;
  // Every writer between its increments holds the shared lock: getting the exclusive one means
  // none is, so a gap between the counters can only be a dead writer's. This process's own writer
  // is counted apart (belt and braces: its lock is on another open file description).
  if (m_writing.load(std::memory_order_seq_cst) != 0) return;
  if (::flock(m_repair_fd, LOCK_EX | LOCK_NB) != 0) return;
  if (m_writing.load(std::memory_order_seq_cst) == 0)
    done().store(begun().load(std::memory_order_seq_cst), std::memory_order_seq_cst);
  ::flock(m_repair_fd, LOCK_UN);
}

RecordCache::RecordCache(std::size_t capacity) : m_per_shard(std::max<std::size_t>(1, capacity / k_shards)) {}

std::optional<TokenRecord> RecordCache::get(std::string_view key, std::uint64_t tag) {
  Shard& s = shard_of(key);
  std::shared_ptr<const TokenRecord> row;
  {
    std::lock_guard lock(s.mu);
    auto it = s.rows.find(key);
    if (it != s.rows.end()) {
      if (it->second.tag == tag) {
        row = it->second.row;
      } else {
        s.rows.erase(it);
      }
    }
    ++(row ? s.hits : s.misses);
  }
  if (!row) return std::nullopt;
  return *row;  // copied outside the lock
}

void RecordCache::put(std::string_view key, const TokenRecord& row, std::uint64_t tag) {
  auto copy = std::make_shared<const TokenRecord>(row);
  Shard& s = shard_of(key);
  std::lock_guard lock(s.mu);
  auto it = s.rows.find(key);
  if (it != s.rows.end()) {
    it->second = Entry{std::move(copy), tag};
    return;
  }
  if (s.rows.size() >= m_per_shard) s.rows.erase(s.rows.begin());  // full: drop one, any one
  s.rows.emplace(std::string(key), Entry{std::move(copy), tag});
}

RecordCache::Stats RecordCache::stats() const {
  Stats out;
  for (Shard& s : m_shards) {
    std::lock_guard lock(s.mu);
    out.hits += s.hits;
    out.misses += s.misses;
  }
  return out;
}

}  // namespace tokctl::tokens::sqlite
