#include <tokctl/keys/key_ring.hpp>

#include <sys/stat.h>

#include <nlohmann/json.hpp>

namespace tokctl::keys {
namespace {

std::int64_t steady_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

Result<jose::Signer> load_signer(const Keystore& ks, const Passphrase& passphrase, const std::string& alg) {
  auto key = ks.signing_key(alg, "", passphrase);
  if (!key) {
    Error e = key.error();
    // Several algs with an active key and none named: a token service signs with one, which only
    // the policy can say (the request has no alg to name).
    if (alg.empty() && e.param == "alg") {
      return fail(ErrorCode::keystore, e.message + ": the token service does not know which one signs",
                  "name it in the policy: tokens: {signing_alg: ALG}");
    }
    return std::unexpected(std::move(e));
  }
  auto key_alg = jose::alg_from_string(key->alg());
  if (!key_alg) return fail(ErrorCode::keystore, "the active key's alg '" + key->alg() + "' cannot sign");
  return jose::Signer::create(*key_alg, *key);
}

Result<jose::TokenVerifier> load_verifier(const Keystore& ks, const Passphrase& passphrase, const Clock& clock) {
  auto keys = ks.verification_keys(passphrase);
  if (!keys) return std::unexpected(keys.error());
  return jose::TokenVerifier::create(std::move(*keys), jose::KeySource::set, jose::VerifyOptions{}, clock);
}

}  // namespace

FileStamp stamp_of(const std::string& path) {
  struct stat st{};
  if (::stat(path.c_str(), &st) != 0) return {};
  FileStamp s;
  s.exists = true;
  s.dev = static_cast<std::uint64_t>(st.st_dev);
  s.ino = static_cast<std::uint64_t>(st.st_ino);
  s.size = static_cast<std::int64_t>(st.st_size);
  s.mtime_ns = static_cast<std::int64_t>(st.st_mtim.tv_sec) * 1'000'000'000 + st.st_mtim.tv_nsec;
  s.ctime_ns = static_cast<std::int64_t>(st.st_ctim.tv_sec) * 1'000'000'000 + st.st_ctim.tv_nsec;
  return s;
}

Result<std::shared_ptr<const KeyRing>> KeyRing::load(const Keystore& ks, const Passphrase& passphrase,
                                                     const Clock& clock, std::uint64_t generation,
                                                     const std::string& signing_alg) {
  if (auto m = ks.manifest(); !m) return std::unexpected(m.error());
  auto ring = std::make_shared<KeyRing>();
  ring->generation = generation;
  ring->signer = load_signer(ks, passphrase, signing_alg);
  ring->verifier = load_verifier(ks, passphrase, clock);
  if (auto set = ks.jwks(); set) {
    ring->jwks = set->to_json(jose::KeyPart::public_only).dump();
  } else {
    ring->jwks = std::unexpected(set.error());
  }
  return std::shared_ptr<const KeyRing>(std::move(ring));
}

KeyProvider::KeyProvider(Keystore keystore, Passphrase passphrase, const Clock& clock,
                         std::chrono::milliseconds check_interval, std::string signing_alg)
    : m_keystore(std::move(keystore)),
      m_passphrase(std::move(passphrase)),
      m_clock(&clock),
      m_interval(check_interval),
      m_signing_alg(std::move(signing_alg)) {}

std::shared_ptr<const KeyRing> KeyProvider::load_ring() const {
  std::lock_guard lock(m_ring_mu);
  return m_ring;
}

void KeyProvider::store_ring(std::shared_ptr<const KeyRing> ring) const {
  std::lock_guard lock(m_ring_mu);
  m_ring.swap(ring);  // the old ring is released outside the lock
}

bool KeyProvider::reload(bool force_check) const {
  std::unique_lock lock(m_reload, std::defer_lock);
  if (load_ring() && !force_check) {
    // Someone else is reloading: keep using the current ring rather than wait.
    if (!lock.try_lock()) return false;
  } else {
    lock.lock();
  }
  const std::string manifest = m_keystore.dir() + "/keystore.json";
  FileStamp before = stamp_of(manifest);
  auto have = load_ring();
  if (have && before == m_stamp) return false;
  // The ring is read from several files; when the manifest is replaced while it is read, read
  // again so that a ring never mixes two manifests.
  for (int attempt = 0; attempt < 5; ++attempt) {
    auto ring = KeyRing::load(m_keystore, m_passphrase, *m_clock, have ? have->generation + 1 : 1, m_signing_alg);
    FileStamp after = stamp_of(manifest);
    if (!ring) {
      m_error = ring.error();
      m_stamp = after;  // retried when the manifest changes again
      return false;
    }
    if (after != before && attempt + 1 < 5) {
      before = after;
      continue;
    }
    m_error.reset();
    m_stamp = after;
    store_ring(std::move(*ring));
    return true;
  }
  return false;
}

Result<std::shared_ptr<const KeyRing>> KeyProvider::current() const {
  const std::int64_t now = steady_ns();
  const std::int64_t interval_ns = std::chrono::duration_cast<std::chrono::nanoseconds>(m_interval).count();
  auto ring = load_ring();
  if (!ring) {
    reload(false);
    m_next_check.store(now + interval_ns, std::memory_order_relaxed);
    ring = load_ring();
  } else if (std::int64_t due = m_next_check.load(std::memory_order_relaxed); now >= due) {
    // One thread per interval does the stat(); the others go on with the ring they have.
    if (m_next_check.compare_exchange_strong(due, now + interval_ns, std::memory_order_relaxed)) {
      reload(false);
      ring = load_ring();
    }
  }
  if (!ring) {
    std::lock_guard lock(m_reload);
    if (m_error) return std::unexpected(*m_error);
    return fail(ErrorCode::keystore, "the keystore could not be loaded");
  }
  return ring;
}

bool KeyProvider::refresh() const { return reload(true); }

std::optional<Error> KeyProvider::last_error() const {
  std::lock_guard lock(m_reload);
  return m_error;
}

}  // namespace tokctl::keys
