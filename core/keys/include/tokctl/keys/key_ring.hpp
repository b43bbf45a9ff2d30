#pragma once
// Keys for a long-running, multi-threaded process.
//
// A KeyRing is what the token service needs from the keystore, parsed once and immutable: the
// active signing key ready to sign, a verifier over every published key (next, active, retired, plus
// oct secrets), and the public JWKS document serialised once. Any number of threads use one ring.
//
// A KeyProvider hands out the current ring and swaps in a new one when keystore.json changes.
// Keystore writers replace the manifest by rename, so a change shows as a new inode, size, mtime or
// ctime; the provider stat()s the manifest at most once per check interval, and a reload happens
// on one thread while the others keep using the ring they have (never waiting for it). A manifest
// that cannot be read (missing meanwhile, malformed) does not replace a good ring: the provider
// keeps serving the last one and reports the error (last_error()) until the manifest changes again.

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include <tokctl/jose/algorithm.hpp>
#include <tokctl/jose/jwt.hpp>
#include <tokctl/keys/keystore.hpp>
#include <tokctl/util/error.hpp>
#include <tokctl/util/time.hpp>

namespace tokctl::keys {

struct KeyRing {
  /// The signer of the active key of the provider's signing alg (with none named: of the one
  /// active signing key), or why there is none (no active key, several algs with one and none
  /// named, an encrypted key without the passphrase): ErrorCode::keystore with a hint.
  Result<jose::Signer> signer = std::unexpected(Error{});
  /// Every JWS verification key of the keystore (kid-selected), or why it cannot be built.
  Result<jose::TokenVerifier> verifier = std::unexpected(Error{});
  /// {"keys":[...]}: the public keys of next, active and retired asymmetric keys, serialised once.
  Result<std::string> jwks = std::unexpected(Error{});
  /// 1 for the first ring a provider loads, +1 for each reload.
  std::uint64_t generation = 0;

  /// Loads a ring from the keystore as it is now. Fails only when the manifest cannot be read;
  /// a missing signer or verifier is recorded in the ring.
  static Result<std::shared_ptr<const KeyRing>> load(const Keystore& keystore, const Passphrase& passphrase,
                                                     const Clock& clock, std::uint64_t generation,
                                                     const std::string& signing_alg = {});
};

/// How often a provider looks at keystore.json by default.
inline constexpr std::chrono::milliseconds k_default_check_interval{1000};

/// Identity of keystore.json as stat() sees it (a rename-based write changes it).
struct FileStamp {
  bool exists = false;
  std::uint64_t dev = 0, ino = 0;
  std::int64_t size = 0, mtime_ns = 0, ctime_ns = 0;
  bool operator==(const FileStamp&) const = default;
};

class KeyProvider {
 public:
  /// `check_interval`: keystore.json is stat()ed at most this often (zero: on every current()).
  /// `signing_alg`: the alg whose active key signs (the policy's tokens.signing_alg); empty: the
  /// keystore's one active signing key. Nothing is read until the first current().
  KeyProvider(Keystore keystore, Passphrase passphrase, const Clock& clock,
              std::chrono::milliseconds check_interval, std::string signing_alg = {});

  /// The current ring, reloaded first when the check interval has passed and keystore.json
  /// changed. Fails only when no ring was ever loaded and the manifest cannot be read.
  Result<std::shared_ptr<const KeyRing>> current() const;

  /// Checks keystore.json now (ignoring the interval) and reloads when it changed. True when a
  /// new ring was swapped in.
  bool refresh() const;

  /// The error of the last failed load, if the last load failed (a good ring may still be served).
  std::optional<Error> last_error() const;

  const Keystore& keystore() const { return m_keystore; }
  std::chrono::milliseconds check_interval() const { return m_interval; }

  KeyProvider(const KeyProvider&) = delete;
  KeyProvider& operator=(const KeyProvider&) = delete;

 private:
  bool reload(bool force_check) const;
  std::shared_ptr<const KeyRing> load_ring() const;
  void store_ring(std::shared_ptr<const KeyRing> ring) const;

  Keystore m_keystore;
  Passphrase m_passphrase;
  const Clock* m_clock;
  std::chrono::milliseconds m_interval;
  std::string m_signing_alg;
  // The current ring. A mutex held only to copy or swap the pointer (libstdc++ 12's
  // atomic<shared_ptr> hides its lock from ThreadSanitizer); readers never wait for a reload.
  mutable std::mutex m_ring_mu;
  mutable std::shared_ptr<const KeyRing> m_ring;
  mutable std::atomic<std::int64_t> m_next_check{0};  // steady-clock ns
  mutable std::mutex m_reload;                        // one reloader; readers never take it
  mutable FileStamp m_stamp;                          // guarded by m_reload
  mutable std::optional<Error> m_error;               // guarded by m_reload
};

/// stat() of `path` as a FileStamp (exists = false when it cannot be stat()ed).
FileStamp stamp_of(const std::string& path);

}  // namespace tokctl::keys
