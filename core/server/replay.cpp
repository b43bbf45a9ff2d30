#include <tokctl/server/replay.hpp>

#include <cstring>

#include <tokctl/jose/digest.hpp>

namespace tokctl::server {

ReplayCache::Seen ReplayCache::remember(std::string_view owner, std::string_view key, UnixTime until, UnixTime now) {
  const std::string h = jose::sha256(key);
  Digest d;
  std::memcpy(&d.first, h.data(), 8);
  std::memcpy(&d.second, h.data() + 8, 8);
  std::lock_guard lock(m_mutex);
  while (!m_expiry.empty() && m_expiry.top().until < now) {
    const Entry& old = m_expiry.top();
    m_live.erase(old.digest);
    if (auto it = m_owned.find(old.owner); it != m_owned.end() && --it->second == 0) m_owned.erase(it);
    m_expiry.pop();
  }
  if (m_live.contains(d)) return Seen::again;
  auto owned = m_owned.find(owner);
  const std::size_t mine = owned == m_owned.end() ? 0 : owned->second;
  if (m_live.size() >= m_capacity || mine >= m_per_owner) return Seen::full;
  m_live.insert(d);
  if (owned == m_owned.end()) owned = m_owned.emplace(std::string(owner), 0).first;
  ++owned->second;
  m_expiry.push(Entry{until, d, std::string(owner)});
  return Seen::first;
}

std::size_t ReplayCache::size() const {
  std::lock_guard lock(m_mutex);
  return m_live.size();
}

}  // namespace tokctl::server
