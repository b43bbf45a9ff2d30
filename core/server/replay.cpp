#include <tokctl/server/replay.hpp>

#include <cstring>
#include <string>

#include <tokctl/jose/digest.hpp>

namespace tokctl::server {

ReplayCache::Seen ReplayCache::remember(std::string_view key, UnixTime until, UnixTime now) {
  const std::string h = jose::sha256(key);
  Digest d;
  std::memcpy(&d.first, h.data(), 8);
  std::memcpy(&d.second, h.data() + 8, 8);
  std::lock_guard lock(m_mutex);
  while (!m_expiry.empty() && m_expiry.top().first < now) {
    m_live.erase(m_expiry.top().second);
    m_expiry.pop();
  }
  if (m_live.contains(d)) return Seen::again;
  if (m_live.size() >= m_capacity) return Seen::full;
  m_live.insert(d);
  m_expiry.emplace(until, d);
  return Seen::first;
}

std::size_t ReplayCache::size() const {
  std::lock_guard lock(m_mutex);
  return m_live.size();
}

}  // namespace tokctl::server
