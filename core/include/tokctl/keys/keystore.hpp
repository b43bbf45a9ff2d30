#pragma once
// The file keystore: keys with a lifecycle (next -> active -> retired -> pruned), atomic writes,
// one lock for every writer, and private keys optionally encrypted at rest with a passphrase.
//
//   DIR/keystore.json     manifest (format, keys[{kid, alg, use, state, created, activated,
//                         retired, encrypted, thumbprint, jwk (public part, asymmetric keys)}])
//   DIR/keys/<kid>.jwk    private JWK, 0600   (or <kid>.jwe: PBES2-HS512+A256KW with a passphrase)
//   DIR/.lock             flock held by every writer
//
// Crash safety: a key file is written (temp + fsync + rename) before the manifest names it, and
// deleted only after the manifest stops naming it, so a crash leaves at worst an orphaned file,
// never a manifest entry without its key. Readers take no lock: the manifest is replaced by rename.

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include <tokctl/jose/jwk.hpp>
#include <tokctl/util/error.hpp>
#include <tokctl/util/time.hpp>

namespace tokctl::keys {

enum class KeyState { next, active, retired };

const char* to_string(KeyState state);
std::optional<KeyState> key_state_from_string(std::string_view name);

struct KeyEntry {
  std::string kid;
  std::string alg;   ///< JWS alg (use sig) or JWE key-management alg (use enc)
  std::string use;   ///< "sig" or "enc"
  KeyState state = KeyState::next;
  UnixTime created = 0;
  std::optional<UnixTime> activated;
  std::optional<UnixTime> retired;
  bool encrypted = false;   ///< stored as keys/<kid>.jwe
  std::string thumbprint;   ///< RFC 7638, SHA-256
  std::string public_jwk;   ///< compact public JWK JSON (empty for oct keys)

  /// File name under keys/: "<kid>.jwk" or "<kid>.jwe".
  std::string file_name() const;
};

struct Manifest {
  int format = 1;
  std::vector<KeyEntry> keys;

  const KeyEntry* find(std::string_view kid) const;
  /// The active key of `alg`, if any.
  const KeyEntry* active(std::string_view alg) const;
};

/// Passphrase for keys at rest (empty optional: none given).
using Passphrase = std::optional<std::string>;

/// --keystore, else $TOKCTL_KEYSTORE, else $XDG_DATA_HOME/tokctl, else ~/.local/share/tokctl.
std::string resolve_keystore_dir(const std::string& flag);

struct AddOptions {
  std::string alg;                  ///< JWS alg, or JWE alg (RSA-OAEP*, ECDH-ES*, A128KW, A256KW, dir)
  std::string kid;                  ///< empty: RFC 7638 thumbprint
  std::optional<KeyState> state;   ///< next or active; default next, or active when alg has none
  std::optional<int> bits;
  std::optional<std::string> crv;
};

struct ImportOptions {
  std::string kid;                  ///< empty: the key's kid, else its thumbprint
  std::string alg;                  ///< empty: the key's alg (required if the key has none)
  std::optional<KeyState> state;
};

struct RotateResult {
  std::string alg;
  std::string activated;  ///< kid that became active
  std::string retired;    ///< kid that was retired (empty if there was no active key)
  std::string added;      ///< the fresh next key
};

struct CheckReport {
  std::vector<std::string> problems;  ///< each says what is wrong and how to fix it
  std::vector<std::string> notes;     ///< harmless findings (e.g. crash leftovers)
  bool ok() const { return problems.empty(); }
};

class Keystore {
 public:
  /// Opens DIR. `create`: make DIR (0700) and keys/ when missing (writers); else a missing
  /// keystore is ErrorCode::keystore with a hint. A DIR or keys/ writable by group or others is
  /// refused (ErrorCode::keystore), like ssh refuses loose permissions.
  static Result<Keystore> open(const std::string& dir, const Clock& clock, bool create);

  const std::string& dir() const { return m_dir; }

  /// The current manifest (an empty one when the file does not exist yet).
  Result<Manifest> manifest() const;

  /// The private key of an entry. Encrypted keys need the passphrase (ErrorCode::keystore with a
  /// hint when missing or wrong). Key files readable by group/others are refused.
  Result<jose::Jwk> load(const KeyEntry& entry, const Passphrase& passphrase) const;

  /// Public keys of next, active and retired asymmetric keys (oct secrets are never published).
  Result<jose::JwkSet> jwks(std::string_view use = "") const;

  /// Keys to verify JWS with: public JWKs of sig keys from the manifest (alg pinned), plus the
  /// secrets of oct keys (loaded, so they may need the passphrase).
  Result<jose::JwkSet> verification_keys(const Passphrase& passphrase) const;

  /// The key to sign with: `kid` when given, else the active key of `alg` (or the only active
  /// signing key when `alg` is empty). Fails with ErrorCode::keystore and a hint.
  Result<jose::Jwk> signing_key(const std::string& alg, const std::string& kid, const Passphrase& passphrase) const;

  /// The private key to decrypt a JWE whose header names `kid` (or, without kid, every enc key).
  Result<jose::JwkSet> decryption_keys(const std::string& kid, const Passphrase& passphrase) const;

  // ---- writers: each takes the lock, re-reads the manifest, writes atomically ----

  Result<KeyEntry> add(const AddOptions& options, const Passphrase& passphrase);
  Result<KeyEntry> import(jose::Jwk key, const ImportOptions& options, const Passphrase& passphrase);
  /// Per alg (all algs with keys when `alg` is empty): next -> active, active -> retired, and a
  /// fresh next added. Without a next key: refused (ErrorCode::keystore) unless `force`, which
  /// activates a brand-new key at once.
  Result<std::vector<RotateResult>> rotate(const std::string& alg, bool force, const Passphrase& passphrase);
  Result<KeyEntry> retire(const std::string& kid);
  /// Removes retired keys retired longer ago than max_lifetime + grace; never next or active keys.
  Result<std::vector<KeyEntry>> prune(std::int64_t max_lifetime, std::int64_t grace);

  /// Manifest <-> files, permissions, exactly one active key per alg in use.
  CheckReport check(const Passphrase& passphrase) const;

 private:
  Keystore(std::string dir, const Clock& clock) : m_dir(std::move(dir)), m_clock(&clock) {}
  std::string m_dir;
  const Clock* m_clock;
};

/// True for a kid that is safe as a file name: [A-Za-z0-9._-], 1..128 chars, not starting with '.'.
bool valid_kid(std::string_view kid);

}  // namespace tokctl::keys
