#pragma once
// Private to core/jose: a small lock-free pool of reusable OpenSSL context bundles.
//
// Signer and SignatureVerifier are const and shared between threads; an OpenSSL context is not.
// Each call takes a bundle from the pool (or builds one), uses it alone, and gives it back. Each
// thread first keeps the last bundle it gave back, for the pool it came from (by a pool id that is
// never reused, not by address): a thread that verifies or signs many times with one key takes
// and gives back its own bundle without touching shared memory, so two threads never pass one
// context's memory (or the slots' cache line) back and forth between their cores. Beyond that,
// up to k_slots bundles are shared through the slots (one atomic exchange per call), and a burst
// beyond that builds and frees extra ones.

#include <array>
#include <atomic>
#include <cstdint>
#include <memory>

namespace tokctl::jose::detail {

template <class T>
class ContextPool {
 public:
  ContextPool() = default;
  ContextPool(const ContextPool&) = delete;
  ContextPool& operator=(const ContextPool&) = delete;
  ~ContextPool() {
    for (auto& s : m_slots) delete s.load(std::memory_order_acquire);
  }

  /// A pooled bundle, or null when the pool is empty (the caller builds one).
  std::unique_ptr<T> take() {
    ThreadCached& mine = thread_cached();
    if (mine.bundle && mine.owner == m_id) return std::move(mine.bundle);
    for (auto& s : m_slots) {
      if (s.load(std::memory_order_relaxed) == nullptr) continue;
      if (T* p = s.exchange(nullptr, std::memory_order_acquire)) return std::unique_ptr<T>(p);
    }
    return nullptr;
  }

  /// Returns a bundle for reuse; freed when every slot is taken.
  void give(std::unique_ptr<T> bundle) {
    ThreadCached& mine = thread_cached();
    if (!mine.bundle) {
      mine.owner = m_id;
      mine.bundle = std::move(bundle);
      return;
    }
    for (auto& s : m_slots) {
      T* expected = nullptr;
      if (s.compare_exchange_strong(expected, bundle.get(), std::memory_order_release,
                                    std::memory_order_relaxed)) {
        bundle.release();
        return;
      }
    }
  }

 private:
  // A bundle kept by this thread, and the id of the pool it belongs to. A bundle owns its
  // contexts (and their key references), so it stays valid after its pool is gone; it is freed
  // when the thread ends or keeps another bundle.
  struct ThreadCached {
    std::uint64_t owner = 0;
    std::unique_ptr<T> bundle;
  };
  static ThreadCached& thread_cached() {
    thread_local ThreadCached cached;
    return cached;
  }
  static std::uint64_t next_id() {
    static std::atomic<std::uint64_t> last{0};
    return last.fetch_add(1, std::memory_order_relaxed) + 1;
  }

  static constexpr std::size_t k_slots = 8;
  const std::uint64_t m_id = next_id();
  std::array<std::atomic<T*>, k_slots> m_slots{};
};

}  // namespace tokctl::jose::detail
