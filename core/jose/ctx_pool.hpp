#pragma once
// Private to core/jose: a small lock-free pool of reusable OpenSSL context bundles.
//
// Signer and SignatureVerifier are const and shared between threads; an OpenSSL context is not.
// Each call takes a bundle from the pool (or builds one), uses it alone, and gives it back. With one
// thread this is one atomic exchange per call and the contexts are reused forever; with N threads
// up to k_slots bundles are kept, and a burst beyond that builds and frees extra ones.

#include <array>
#include <atomic>
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
    for (auto& s : m_slots) {
      if (s.load(std::memory_order_relaxed) == nullptr) continue;
      if (T* p = s.exchange(nullptr, std::memory_order_acquire)) return std::unique_ptr<T>(p);
    }
    return nullptr;
  }

  /// Returns a bundle for reuse; freed when every slot is taken.
  void give(std::unique_ptr<T> bundle) {
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
  static constexpr std::size_t k_slots = 8;
  std::array<std::atomic<T*>, k_slots> m_slots{};
};

}  // namespace tokctl::jose::detail
