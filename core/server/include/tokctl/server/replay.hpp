#pragma once
// Single-use values (a JWT's jti) remembered until they could no longer be accepted anyway: RFC
// 7523 §3 client assertions and RFC 9449 §11.1 DPoP proofs. Bounded: past `capacity` live entries
// a new value is refused (the caller answers 503) rather than memory growing with the request rate.

#include <cstddef>
#include <cstdint>
#include <mutex>
#include <queue>
#include <string_view>
#include <unordered_set>
#include <utility>
#include <vector>

#include <tokctl/util/time.hpp>

namespace tokctl::server {

class ReplayCache {
 public:
  explicit ReplayCache(std::size_t capacity) : m_capacity(capacity) {}

  enum class Seen { first, again, full };

  /// Remembers `key` until `until` (inclusive) unless it is remembered already (again) or the
  /// cache holds `capacity` live entries (full). Entries past their time are dropped first, oldest
  /// first: O(log n) a call. Keys are kept as 128 bits of their SHA-256.
  Seen remember(std::string_view key, UnixTime until, UnixTime now);

  std::size_t size() const;

 private:
  using Digest = std::pair<std::uint64_t, std::uint64_t>;
  struct DigestHash {
    std::size_t operator()(const Digest& d) const noexcept { return static_cast<std::size_t>(d.first ^ d.second); }
  };
  using Entry = std::pair<UnixTime, Digest>;
  std::size_t m_capacity;
  mutable std::mutex m_mutex;
  std::unordered_set<Digest, DigestHash> m_live;
  std::priority_queue<Entry, std::vector<Entry>, std::greater<Entry>> m_expiry;
};

}  // namespace tokctl::server
