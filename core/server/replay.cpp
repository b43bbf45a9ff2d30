#include <tokctl/server/replay.hpp>

#include <cstring>

#include <openssl/crypto.h>

#include <tokctl/jose/digest.hpp>
#include <tokctl/util/base64.hpp>

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

namespace {

constexpr UnixTime k_nonce_window = 60;
constexpr std::size_t k_nonce_mac_bytes = 16;

std::string window_bytes(UnixTime window) {
  std::string w(8, '\0');
  for (int i = 7; i >= 0; --i, window >>= 8) w[static_cast<std::size_t>(i)] = static_cast<char>(window & 0xff);
  return w;
}

}  // namespace

DpopNonces::DpopNonces() : m_key(jose::random_bytes(32)) {}

std::string DpopNonces::current(UnixTime now) const {
  const std::string w = window_bytes(now / k_nonce_window);
  return b64url_encode(w + jose::hmac_sha256(m_key, w).substr(0, k_nonce_mac_bytes));
}

bool DpopNonces::valid(std::string_view nonce, UnixTime now) const {
  auto raw = b64url_decode(nonce);
  if (!raw || raw->size() != 8 + k_nonce_mac_bytes) return false;
  const std::string w = raw->substr(0, 8);
  if (w != window_bytes(now / k_nonce_window) && w != window_bytes(now / k_nonce_window - 1)) return false;
  const std::string mac = jose::hmac_sha256(m_key, w).substr(0, k_nonce_mac_bytes);
  return CRYPTO_memcmp(mac.data(), raw->data() + 8, k_nonce_mac_bytes) == 0;
}

}  // namespace tokctl::server
