#pragma once
// The file keystore: keys with a lifecycle (next -> active -> retired -> pruned), atomic writes,
// one lock for every writer, and private keys optionally encrypted at rest with a passphrase.
//
//   DIR/keystore.json     manifest (format, keys[{kid, alg, use, state, created, activated,
//                         retired, published, encrypted, thumbprint, jwk (public part)}],
//                         pruned[{kid, file, sha256}] (files a prune still has to delete))
//                         pairwise_secret{file, created, sha256} (once ppid.secret exists)
//   DIR/keys/<kid>.jwk    private JWK, 0600   (or <kid>.jwe: PBES2-HS512+A256KW with a passphrase)
//   DIR/ppid.secret       pairwise-subject secret, 32 random bytes, 0600 (made at first need)
//   DIR/.lock             flock held by every writer
//
// The keystore never deletes what it does not know. A missing or unreadable manifest is an error,
// never "an empty keystore" (only a directory with neither keystore.json nor key files is new, and
// only writers that create it initialise it). Writers delete only their own temp files
// (<name>.tmp.<pid>.<random> of a dead process) and the files of keys they prune; files under keys/
// that the manifest does not name are kept and reported (check(), unknown_files()).
//
// Crash safety: a key file is written (temp + fsync + rename) before the manifest names it, and
// deleted only after the manifest stops naming it (listed under "pruned" with its SHA-256 until
// it is gone), so a crash leaves at worst an unknown key file, never a manifest entry without its
// key. Readers take no lock: the manifest is replaced by rename.
//
// Files are trusted like ssh trusts them: the directory, keys/, the manifest and key files must be
// regular files/directories owned by the caller or root and not open to others; FIFOs, devices and
// directories in place of a file are refused without blocking.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
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
  std::optional<UnixTime> published;  ///< first time `keys jwks` output it (publish_recorded())
  bool encrypted = false;   ///< stored as keys/<kid>.jwe
  std::string thumbprint;   ///< RFC 7638, SHA-256
  std::string public_jwk;   ///< compact public JWK JSON (empty for oct keys)

  /// File name under keys/: "<kid>.jwk" or "<kid>.jwe".
  std::string file_name() const;
};

/// A key file a prune has dropped from the manifest but not deleted yet (crash in between). The
/// next writer deletes it if its content still hashes to `sha256`, and forgets the record either way.
struct PendingDeletion {
  std::string kid;
  std::string file;    ///< name under keys/: "<kid>.jwk" or "<kid>.jwe"
  std::string sha256;  ///< base64url SHA-256 of the file content when it was pruned
};

/// The manifest's record of the pairwise-subject secret (DIR/ppid.secret): once it exists, a
/// missing or different file is damage, never a reason to make a new secret.
struct SecretRecord {
  UnixTime created = 0;
  std::string sha256;  ///< base64url SHA-256 of the secret (it reveals nothing of 32 random bytes)
};

struct Manifest {
  int format = 1;
  std::vector<KeyEntry> keys;
  std::vector<PendingDeletion> pruned;
  std::optional<SecretRecord> pairwise_secret;

  const KeyEntry* find(std::string_view kid) const;
  /// The active key of `alg`, if any.
  const KeyEntry* active(std::string_view alg) const;
};

/// Passphrase for keys at rest (empty optional: none given).
using Passphrase = std::optional<std::string>;

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

/// Default --min-next-age: a next key signs only after it has been published this long. It must be
/// at least the max-age for which verifiers cache the published JWKS (serve it with
/// Cache-Control: max-age=3600 or less).
inline constexpr std::int64_t k_default_min_next_age = 3600;

enum class Force { no, yes };

struct RotateOptions {
  std::string alg;  ///< empty: every alg that has next or active keys
  /// yes: rotate even when the next key is missing (a brand-new key is activated) or too young.
  Force force = Force::no;
  /// A next key is activated only this long after it was first published (`published`; for a
  /// keystore never published with `keys jwks`: after its creation).
  std::int64_t min_next_age = k_default_min_next_age;
  /// Rotate an alg only when its active key was activated at least this long ago (cron: two runs
  /// in one interval rotate once; the second finds the fresh key under the lock and skips).
  std::optional<std::int64_t> if_older_than;
};

struct RotateResult {
  std::string alg;
  std::string activated;  ///< kid that became active (empty when skipped)
  std::string retired;    ///< kid that was retired (empty if there was no active key)
  std::string added;      ///< the fresh next key
  std::string skipped;    ///< non-empty: why this alg was left alone (--if-older-than)
};

struct CheckReport {
  std::vector<Error> problems;             ///< each says what is wrong (message) and how to fix it (hint, remedy)
  std::vector<std::string> notes;          ///< harmless findings (temp files of an interrupted write)
  std::vector<std::string> unknown_files;  ///< files under keys/ the manifest does not name ("keys/x.jwk")
  bool ok() const { return problems.empty(); }
};

enum class Overwrite { no, yes };

/// Whether Keystore::pairwise_secret may create the secret when the keystore has none yet.
enum class CreateSecret { no, yes };

/// Writes an output file (keys generate --out, keys jwks --out) atomically with `mode`. With
/// Overwrite::no an existing `path` is never replaced: ErrorCode::usage with a --force hint (the
/// final step is link(2), so a file created meanwhile is not replaced either). I/O errors:
/// ErrorCode::keystore.
Result<void> write_output_file(const std::string& path, std::string_view data, unsigned mode, Overwrite overwrite);

class Keystore {
 public:
  /// Opens DIR. `create`: make DIR (0700) and keys/ when missing and, when DIR holds neither
  /// keystore.json nor key files, an empty manifest (writers that add keys); else a missing
  /// keystore is ErrorCode::keystore with a hint. A DIR that is not a directory, a DIR or keys/
  /// writable by group or others, or owned by another user (not root, not the caller) is refused
  /// (ErrorCode::keystore), like ssh refuses loose permissions.
  static Result<Keystore> open(const std::string& dir, const Clock& clock, bool create);

  const std::string& dir() const { return m_dir; }

  /// The current manifest. ErrorCode::keystore with a recovery hint when keystore.json is missing
  /// (saying how many key files are there), a dangling or looping symlink, not a regular file,
  /// unreadable, owned by another user, writable by others, or malformed (wrong JSON types too).
  Result<Manifest> manifest() const;

  /// Files under keys/ that the manifest does not name (not temp files, not pending deletions),
  /// as "keys/<name>", sorted. Empty when the manifest cannot be read.
  std::vector<std::string> unknown_files() const;

  /// The private key of an entry. Encrypted keys need the passphrase (ErrorCode::keystore with a
  /// hint when missing or wrong). Key files readable by group/others are refused. The file must
  /// hold a private key, match the manifest's thumbprint and public key, and fit the entry's alg
  /// (else ErrorCode::keystore: the keystore is damaged); `check` full also runs OpenSSL's key
  /// checks (keys check).
  Result<jose::Jwk> load(const KeyEntry& entry, const Passphrase& passphrase,
                         jose::KeyCheck check = jose::KeyCheck::trusted) const;

  /// An entry's public key as the manifest lists it, checked: no private member, its RFC 7638
  /// thumbprint is the entry's, and it fits the entry's alg (else ErrorCode::keystore naming the kid,
  /// with a hint). An oct key has no public part: ErrorCode::usage.
  Result<jose::Jwk> public_key(const KeyEntry& entry) const;

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

  /// The key a JWE is encrypted to: `kid` (an encryption key that is not retired), else the one
  /// active encryption key (of `alg` when given). Public keys come from the manifest; an oct key
  /// is loaded (its secret is the key). Refusals (a signing key, several active algs, none):
  /// ErrorCode::usage; an unknown or retired kid: ErrorCode::keystore.
  Result<jose::Jwk> encryption_recipient(const std::string& kid, const std::string& alg,
                                         const Passphrase& passphrase) const;

  /// The private keys that may decrypt a JWE with header `kid` and `alg`: the kid's encryption
  /// key, or without a kid every encryption key of that alg. None fitting: ErrorCode::usage.
  Result<std::vector<jose::Jwk>> decryption_candidates(const std::string& kid, const std::string& alg,
                                                       const Passphrase& passphrase) const;

  /// The pairwise-subject secret (DIR/ppid.secret: 32 random bytes, 0600) that pairwise subjects
  /// are derived from. Created once, at first need (CreateSecret::yes; under the lock, the file
  /// written before the manifest records its creation time and SHA-256); nullopt when it does not
  /// exist and `create` is no. Once recorded, a missing, short, replaced or odd (directory, FIFO,
  /// open to others) file is ErrorCode::keystore with a recovery hint, never a reason to make a new
  /// one (that would change every pairwise subject). A file an older tokctl made without recording
  /// it is used as it is, and recorded when `create` is yes.
  Result<std::optional<std::string>> pairwise_secret(CreateSecret create) const;

  // ---- writers: each takes the lock, re-reads the manifest, writes atomically ----
  // A keystore.json that is a symbolic link is never written (ErrorCode::keystore with a hint):
  // the rename would replace the link and leave its target stale.

  Result<KeyEntry> add(const AddOptions& options, const Passphrase& passphrase);
  Result<KeyEntry> import(jose::Jwk key, const ImportOptions& options, const Passphrase& passphrase);
  /// Per alg (all algs with keys when `options.alg` is empty): next -> active, active -> retired,
  /// and a fresh next added. Refused before any change (ErrorCode::keystore, the message says from
  /// when it is safe) when an alg has no next key, or its next key was published less than
  /// `min_next_age` ago (or never, in a keystore published with `keys jwks`), unless Force::yes.
  Result<std::vector<RotateResult>> rotate(const RotateOptions& options, const Passphrase& passphrase);
  /// Records `published` = now for the listed kids that lack it (what `keys jwks` just output).
  /// Takes the lock only when something is to be recorded.
  Result<void> record_published(const std::vector<std::string>& kids);
  Result<KeyEntry> retire(const std::string& kid);
  /// Removes retired keys retired longer ago than max_lifetime + grace; never next or active keys.
  /// The manifest drops them first (recording each file and its SHA-256 under "pruned"), then
  /// their files are deleted.
  Result<std::vector<KeyEntry>> prune(std::int64_t max_lifetime, std::int64_t grace);

  /// Manifest <-> files (unknown files under keys/ are problems), owners and permissions, exactly
  /// one active key per alg in use; each manifest public key against its thumbprint, alg and key
  /// file; key files holding private keys; the pairwise-subject secret; a symlinked manifest.
  CheckReport check(const Passphrase& passphrase) const;

 private:
  Keystore(std::string dir, const Clock& clock) : m_dir(std::move(dir)), m_clock(&clock) {}
  std::string m_dir;
  const Clock* m_clock;
};

/// True for a kid that is safe as a file name: [A-Za-z0-9._-], 1..128 chars, not starting with '.'.
bool valid_kid(std::string_view kid);

}  // namespace tokctl::keys
