#pragma once
// Single-use values (a JWT's jti) remembered until they could no longer be accepted anyway: RFC
// 7523 §3 client assertions and RFC 9449 §11.1 DPoP proofs. Bounded twice: past `capacity` live
// entries in all, or `per_owner` of one owner (a client), a new value is refused (the caller
// answers 503) rather than memory growing with the request rate, and one client that sends many
// values fills its own share, not everybody's.

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <queue>
#include <string>
#include <string_view>
#include <unordered_set>
#include <utility>
#include <vector>

#include <tokctl/util/time.hpp>

namespace tokctl::server {

class ReplayCache {
 public:
  ReplayCache(std::size_t capacity, std::size_t per_owner) : m_capacity(capacity), m_per_owner(per_owner) {}

  enum class Seen { first, again, full };

  /// Remembers `key` for `owner` until `until` (inclusive) unless it is remembered already
  /// (again, whoever the owner) or the cache, or the owner's share, is full. Entries past their
  /// time are dropped first, oldest first: O(log n) a call. Keys are kept as 128 bits of their
  /// SHA-256.
  Seen remember(std::string_view owner, std::string_view key, UnixTime until, UnixTime now);

  std::size_t size() const;

 private:
  using Digest = std::pair<std::uint64_t, std::uint64_t>;
  struct DigestHash {
    std::size_t operator()(const Digest& d) const noexcept { return static_cast<std::size_t>(d.first ^ d.second); }
  };
  struct Entry {
    UnixTime until;
    Digest digest;
    std::string owner;
    bool operator>(const Entry& o) const { return until > o.until; }
  };
  std::size_t m_capacity;
  std::size_t m_per_owner;
  mutable std::mutex m_mutex;
  std::unordered_set<Digest, DigestHash> m_live;
  std::map<std::string, std::size_t, std::less<>> m_owned;  // live entries per owner (the clients)
  std::priority_queue<Entry, std::vector<Entry>, std::greater<Entry>> m_expiry;
};

/// RFC 9449 §8 server nonces, without state: the minute they were made in, MACed with a key this
/// process drew at random. A nonce is good in its minute and the next (one to two minutes), and only
/// in the process that made it (another `serve` instance answers use_dpop_nonce with its own).
class DpopNonces {
 public:
  DpopNonces();
  /// The nonce to hand out now (the same for every client within a minute).
  std::string current(UnixTime now) const;
  /// Whether `nonce` was made by this process in this minute or the one before.
  bool valid(std::string_view nonce, UnixTime now) const;

 private:
  std::string m_key;
};

}  // namespace tokctl::server
