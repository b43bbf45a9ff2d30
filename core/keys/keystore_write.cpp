// Keystore writers: each takes the lock, re-reads the manifest, writes key files before the
// manifest names them and deletes them only after it stops naming them. Nothing here deletes a
// file the manifest does not know, except tokctl's own temp files of dead processes.

#include <tokctl/keys/keystore.hpp>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <optional>
#include <set>
#include <sys/stat.h>
#include <unistd.h>
#include <vector>

#include <nlohmann/json.hpp>
#include <openssl/crypto.h>
#include <openssl/rand.h>

#include <tokctl/jose/algorithm.hpp>
#include <tokctl/jose/jwe.hpp>
#include <tokctl/jose/keygen.hpp>
#include <tokctl/util/io.hpp>
#include <tokctl/util/lock.hpp>

#include "keystore_files.hpp"

namespace tokctl::keys {
namespace {

using nlohmann::json;
using namespace detail;

bool is_jws_alg(std::string_view alg) { return jose::alg_from_string(alg).has_value(); }
bool is_jwe_alg(std::string_view alg) {
  auto a = jose::key_mgmt_from_string(alg);
  return a && *a != jose::KeyMgmtAlg::PBES2_HS256_A128KW && *a != jose::KeyMgmtAlg::PBES2_HS512_A256KW;
}

// A private key as stored: JWK JSON, or a PBES2-HS512+A256KW JWE of it when a passphrase is given.
Result<std::string> key_file_text(const jose::Jwk& key, const Passphrase& passphrase) {
  std::string jwk = key.to_json(jose::KeyPart::with_private).dump(2) + "\n";
  if (!passphrase) return jwk;
  auto pw = jose::Jwk::from_secret(*passphrase);
  if (!pw) return fail(ErrorCode::usage, "the passphrase is empty");
  jose::EncryptOptions o;
  o.alg = jose::KeyMgmtAlg::PBES2_HS512_A256KW;
  o.enc = jose::ContentEnc::A256GCM;
  o.cty = "jwk+json";
  o.kid = key.kid();
  auto jwe = jose::encrypt_compact(jwk, *pw, o);
  OPENSSL_cleanse(jwk.data(), jwk.size());
  if (!jwe) return std::unexpected(jwe.error());
  return *jwe + "\n";
}

struct Txn {
  FileLock lock;
  Manifest manifest;
};

// Deletes the files an interrupted prune left behind, each only if its content still hashes as
// recorded (a manifest restored from a backup cannot delete a newer key that reuses the name),
// then forgets the records.
void finish_pending_deletions(const std::string& dir, Manifest& m) {
  for (const auto& p : m.pruned) {
    bool named = std::any_of(m.keys.begin(), m.keys.end(), [&](const KeyEntry& e) { return e.file_name() == p.file; });
    if (named) continue;
    std::string path = dir + "/keys/" + p.file;
    auto text = read_keystore_file(path, k_key_rule);
    if (!text) continue;
    bool same = sha256_b64url(*text) == p.sha256;
    OPENSSL_cleanse(text->data(), text->size());
    if (same) ::unlink(path.c_str());
  }
  m.pruned.clear();
}

Result<Txn> begin(const Keystore& ks) {
  auto lock = FileLock::acquire(ks.dir() + "/.lock");
  if (!lock) return std::unexpected(lock.error());
  auto m = ks.manifest();
  if (!m) return std::unexpected(m.error());  // a dangling link or a loop says so here
  if (auto link = refuse_symlinked_manifest(ks.dir()); !link) return std::unexpected(link.error());
  remove_stale_temp_files(ks.dir());
  finish_pending_deletions(ks.dir(), *m);
  return Txn{std::move(*lock), std::move(*m)};
}

Result<void> commit(const Keystore& ks, const Manifest& m) {
  // Again under the lock: a link made since begin() is not replaced either.
  if (auto link = refuse_symlinked_manifest(ks.dir()); !link) return std::unexpected(link.error());
  fault_point("before_manifest_write");
  auto r = write_file_atomic(ks.dir() + "/" + k_manifest, manifest_text(m), 0600);
  if (r) fault_point("after_manifest_write");
  return r;
}

// A new key's file name may already be taken by a file the manifest does not name (a crash
// leftover, or a key an older manifest lost). It is replaced only when it holds this very key (a
// lost key being imported back); anything else is kept and the write refused. True when the file
// is there already (holding this key): it is then no new file of this command, and a failed
// command must leave it where it was.
Result<bool> check_file_free(const Keystore& ks, const KeyEntry& e, const Passphrase& passphrase) {
  std::string path = ks.dir() + "/keys/" + e.file_name();
  struct stat st{};
  if (::lstat(path.c_str(), &st) != 0) {
    const int err = errno;
    if (err == ENOENT) return false;
    return fail(ErrorCode::keystore, "cannot stat '" + path + "': " + std::strerror(err),
                "the keystore's owner must be able to reach keys/ (chmod 700)");
  }
  if (S_ISREG(st.st_mode) && ks.load(e, passphrase)) return true;
  return fail(ErrorCode::keystore, "'" + path + "' already exists and is not in the manifest; not replacing it",
              "see tokctl keys check; import that file (tokctl keys import '" + path + "') or move it away first");
}

// The key files one manifest write brings: deleted again, under the same lock, when that write does
// not happen (a refused step, a full disk, EFBIG), so a failed command leaves no orphan file for
// keys check to report. Only files this command created count: a file that was there before (an
// orphaned key imported back in place) is never deleted. A file the manifest on disk names is kept
// whatever went wrong (a commit can fail after its rename), and so is every file when the manifest
// cannot be read back. Declare it after the transaction, so that it runs while the lock is held; a
// crash still leaves the file, which the keystore tolerates (see KEYSTORE in the man page).
class NewKeyFiles {
 public:
  explicit NewKeyFiles(const Keystore& ks) : m_ks(ks) {}
  NewKeyFiles(const NewKeyFiles&) = delete;
  NewKeyFiles& operator=(const NewKeyFiles&) = delete;
  ~NewKeyFiles() {
    if (m_committed || m_files.empty()) return;
    auto on_disk = m_ks.manifest();
    if (!on_disk) return;
    for (const auto& [kid, file] : m_files)
      if (!on_disk->find(kid)) ::unlink((m_ks.dir() + "/keys/" + file).c_str());
  }
  void add(const KeyEntry& e) { m_files.emplace_back(e.kid, e.file_name()); }
  void committed() { m_committed = true; }

 private:
  const Keystore& m_ks;
  std::vector<std::pair<std::string, std::string>> m_files;  // kid, file name under keys/
  bool m_committed = false;
};

// Writes `key`'s file; a file it creates is recorded in `written`.
Result<KeyEntry> store_key(const Keystore& ks, const Manifest& m, jose::Jwk key, const std::string& kid_wanted,
                           const std::string& alg, KeyState state, UnixTime now, const Passphrase& passphrase,
                           NewKeyFiles& written) {
  auto tp = key.thumbprint();
  if (!tp) return std::unexpected(tp.error());
  std::string kid = kid_wanted.empty() ? (key.kid().empty() ? *tp : key.kid()) : kid_wanted;
  if (!valid_kid(kid)) {
    return fail(ErrorCode::usage, "kid '" + kid + "' cannot be stored",
                "a keystore kid is 1-128 characters of A-Z a-z 0-9 . _ - and does not start with '.'");
  }
  if (m.find(kid)) return fail(ErrorCode::keystore, "the keystore already has a key '" + kid + "'");
  for (const auto& e : m.keys) {
    if (e.thumbprint == *tp) {
      return fail(ErrorCode::keystore, "this key is already in the keystore as '" + e.kid + "'");
    }
  }
  key.set_kid(kid);
  key.set_alg(alg);
  key.set_use(is_jws_alg(alg) ? "sig" : "enc");
  KeyEntry e;
  e.kid = kid;
  e.alg = alg;
  e.use = key.use();
  e.state = state;
  e.created = now;
  if (state == KeyState::active) e.activated = now;
  e.encrypted = passphrase.has_value();
  e.thumbprint = *tp;
  if (key.kty() != jose::KeyType::oct) {
    auto pub = key.to_public();
    if (!pub) return std::unexpected(pub.error());
    e.public_jwk = pub->to_json(jose::KeyPart::public_only).dump();
  }
  auto there = check_file_free(ks, e, passphrase);
  if (!there) return std::unexpected(there.error());
  auto text = key_file_text(key, passphrase);
  if (!text) return std::unexpected(text.error());
  // Recorded before the write: a write that fails after its rename still leaves a new file.
  if (!*there) written.add(e);
  auto w = write_file_atomic(ks.dir() + "/keys/" + e.file_name(), *text, 0600);
  OPENSSL_cleanse(text->data(), text->size());
  if (!w) return std::unexpected(w.error());
  fault_point("after_key_write");
  return e;
}

// Keys of `alg` already stored encrypted need a passphrase for any new key of that alg, so the
// keystore never mixes protected and unprotected keys of one alg by accident, and a new key is
// sealed with the passphrase that opens the existing ones (a typo would otherwise lock it away).
Result<void> passphrase_consistent(const Keystore& ks, const Manifest& m, const std::string& alg,
                                   const Passphrase& passphrase) {
  // A key whose file cannot be read for another reason (missing, damaged: keys check names it)
  // says nothing about the passphrase; the next one is tried, keys in use first.
  std::vector<const KeyEntry*> sealed;
  for (const auto& e : m.keys)
    if (e.alg == alg && e.encrypted) sealed.push_back(&e);
  std::stable_partition(sealed.begin(), sealed.end(), [](const KeyEntry* e) { return e->state != KeyState::retired; });
  std::optional<Error> unreadable;
  for (const KeyEntry* e : sealed) {
    if (!passphrase) {
      return fail_remedy(ErrorCode::keystore, "keys of " + alg + " are encrypted at rest; a new one would not be",
                         "supply the keystore's passphrase", Remedy::pass_passphrase);
    }
    auto k = ks.load(*e, passphrase);
    if (k) return {};
    if (k.error().detail == ErrorDetail::wrong_passphrase) {
      return fail(ErrorCode::keystore, "the passphrase does not open the existing " + alg + " key '" + e->kid + "'",
                  "use the keystore's passphrase");
    }
    if (!unreadable) unreadable = k.error();
  }
  // None could be read: whether the passphrase is the keystore's cannot be known, and a key sealed
  // with a mistyped one would be lost; the first file's own problem is the reason.
  if (unreadable) {
    unreadable->message = "cannot check the passphrase against the existing " + alg + " keys: " + unreadable->message;
    return std::unexpected(std::move(*unreadable));
  }
  return {};
}

Result<std::string> checked_alg(const std::string& alg) {
  if (is_jws_alg(alg) || is_jwe_alg(alg)) return alg;
  return fail(ErrorCode::usage, "unknown or unsupported key alg '" + alg + "'",
              "JWS: " + jose::supported_alg_names() + "; JWE: RSA-OAEP, RSA-OAEP-256, ECDH-ES, ECDH-ES+A128KW, "
              "ECDH-ES+A256KW, A128KW, A256KW, dir");
}


// add and import: store `key` as next (or active when the alg has none) and name it in the manifest.
Result<KeyEntry> add_key(const Keystore& ks, const Clock& clock, jose::Jwk key, const std::string& kid,
                         const std::string& alg, std::optional<KeyState> wanted, const Passphrase& passphrase) {
  auto txn = begin(ks);
  if (!txn) return std::unexpected(txn.error());
  if (auto p = passphrase_consistent(ks, txn->manifest, alg, passphrase); !p) return std::unexpected(p.error());
  UnixTime now = clock.now();
  const KeyEntry* current = txn->manifest.active(alg);
  KeyState state = wanted.value_or(current ? KeyState::next : KeyState::active);
  if (state == KeyState::active && current) {
    return fail_remedy(ErrorCode::keystore, alg + " already has an active key ('" + current->kid + "')",
                "add the new key as next, publish the JWKS, then rotate", Remedy::rotate_key, alg);
  }
  NewKeyFiles written(ks);
  auto e = store_key(ks, txn->manifest, std::move(key), kid, alg, state, now, passphrase, written);
  if (!e) return e;
  Manifest m = txn->manifest;
  m.keys.push_back(*e);
  if (auto c = commit(ks, m); !c) return std::unexpected(c.error());
  written.committed();
  return e;
}

// The oldest next key of `alg`.
KeyEntry* next_key(Manifest& m, const std::string& alg) {
  KeyEntry* next = nullptr;
  for (auto& e : m.keys)
    if (e.alg == alg && e.state == KeyState::next && (!next || e.created < next->created)) next = &e;
  return next;
}

// Refuses to activate a next key verifiers may not have seen yet.
Result<void> next_key_ready(const Manifest& m, const KeyEntry& next, const RotateOptions& o, UnixTime now) {
  bool published_any = std::any_of(m.keys.begin(), m.keys.end(), [](const KeyEntry& e) { return e.published; });
  std::string dur = format_duration(o.min_next_age);
  if (!next.published && published_any) {
    return fail_remedy(ErrorCode::keystore,
                       "the next " + next.alg + " key '" + next.kid + "' has never been in a published JWKS (this "
                       "keystore has published one before): verifiers cannot know it",
                       "publish the JWKS now; rotating is safe " + dur + " (the minimum next-key age) after that",
                       Remedy::publish_jwks, next.alg);
  }
  UnixTime since = next.published.value_or(next.created);
  if (now >= since + o.min_next_age) return {};
  std::string safe = format_rfc3339(since + o.min_next_age);
  auto e = fail_param(ErrorCode::keystore, "min_next_age",
                    "the next " + next.alg + " key '" + next.kid + "' was " +
                        (next.published ? "first published" : "created (never in a published JWKS)") + " at " +
                        format_rfc3339(since) + ", less than the minimum next-key age " + dur +
                        " ago: verifiers may still cache a JWKS without it; rotating is safe from " + safe,
                    "rotate at or after " + safe + "; lower the minimum next-key age only if your JWKS caches "
                    "expire sooner");
  e.error().remedy = Remedy::force_rotate;
  return e;
}

}  // namespace

namespace detail {

Result<void> initialise_if_empty(const std::string& dir) {
  std::string path = dir + "/" + k_manifest;
  struct stat st{};
  // keys/ that cannot be listed is not "no key files": the manifest read that follows says why.
  auto is_new = [&] {
    if (::lstat(path.c_str(), &st) == 0 || errno != ENOENT) return false;
    auto files = key_files(dir);
    return files && files->empty();
  };
  if (!is_new()) return {};
  auto lock = FileLock::acquire(dir + "/.lock");
  if (!lock) return std::unexpected(lock.error());
  if (!is_new()) return {};
  return write_file_atomic(path, manifest_text(Manifest{}), 0600);
}

}  // namespace detail

Result<KeyEntry> Keystore::add(const AddOptions& o, const Passphrase& passphrase) {
  auto alg = checked_alg(o.alg);
  if (!alg) return std::unexpected(alg.error());
  if (o.state == KeyState::retired) return fail(ErrorCode::usage, "a new key is next or active, not retired");
  auto key = jose::generate_key(jose::KeyGenOptions{o.alg, o.bits, o.crv});
  if (!key) return std::unexpected(key.error());
  return add_key(*this, *m_clock, std::move(*key), o.kid, o.alg, o.state, passphrase);
}

Result<KeyEntry> Keystore::import(jose::Jwk key, const ImportOptions& o, const Passphrase& passphrase) {
  // An EC or Ed key can serve one signature alg only (as in sign and verify); RSA, oct and X25519
  // keys serve several, so those need --alg or an "alg" member.
  std::string alg_name = !o.alg.empty() ? o.alg : jose::implied_jws_alg(key).value_or("");
  if (alg_name.empty()) {
    return fail_param(ErrorCode::usage, "alg", "the " + key.describe() + " has no \"alg\" and its type allows several",
                "name the algorithm it is for");
  }
  auto alg = checked_alg(alg_name);
  if (!alg) return std::unexpected(alg.error());
  if (!key.has_private()) {
    return fail(ErrorCode::usage, "the keystore holds private keys; this is a " + key.describe());
  }
  if (auto jws = jose::alg_from_string(alg_name)) {
    key.set_alg("");
    key.set_use("");
    key.set_key_ops({});
    if (auto c = jose::check_key(*jws, key, jose::KeyRole::sign); !c) return std::unexpected(c.error());
  } else if (auto jwe = jose::key_mgmt_from_string(alg_name)) {
    // The same type, curve and size rules as keys add: a key that does not fit its alg would be
    // refused by every later load, and stop JWKS publication and rotation for the whole keystore.
    if (auto c = detail::check_new_encryption_key(*jwe, key); !c) return std::unexpected(c.error());
  }
  if (o.state == KeyState::retired) return fail(ErrorCode::usage, "an imported key is next or active, not retired");
  return add_key(*this, *m_clock, std::move(key), o.kid, alg_name, o.state, passphrase);
}

Result<std::vector<RotateResult>> Keystore::rotate(const RotateOptions& o, const Passphrase& passphrase) {
  if (o.min_next_age < 0 || (o.if_older_than && *o.if_older_than < 0)) {
    return fail(ErrorCode::usage, "the minimum next-key age and the rotation age are durations >= 0");
  }
  auto txn = begin(*this);
  if (!txn) return std::unexpected(txn.error());
  NewKeyFiles written(*this);
  Manifest m = txn->manifest;
  const bool force = o.force == Force::yes;
  std::vector<std::string> algs;
  for (const auto& e : m.keys) {
    if ((o.alg.empty() || e.alg == o.alg) && e.state != KeyState::retired &&
        std::find(algs.begin(), algs.end(), e.alg) == algs.end()) {
      algs.push_back(e.alg);
    }
  }
  if (algs.empty()) {
    if (o.alg.empty()) {
      return fail_remedy(ErrorCode::keystore, "the keystore has no keys to rotate", "add one", Remedy::add_signing_key);
    }
    // An alg that does not exist is a usage error, not a missing key one could add.
    if (auto known = checked_alg(o.alg); !known) return std::unexpected(known.error());
    // Even forced: a rotation replaces the keys of an algorithm in use; it never brings in a new
    // one (a mistyped --alg in an emergency would leave two signing algorithms, and nothing
    // would sign without naming one).
    return fail_remedy(ErrorCode::keystore,
                       "no " + o.alg + " key to rotate" +
                           (force ? " (a forced rotation replaces the keys of an algorithm in use; it never adds one)" : ""),
                       "add one", Remedy::add_signing_key, o.alg);
  }
  UnixTime now = m_clock->now();
  // Decide per alg before changing anything: skipped (--if-older-than), refused, or rotated.
  std::vector<RotateResult> results(algs.size());
  bool any = false;
  for (std::size_t i = 0; i < algs.size(); ++i) {
    const auto& a = algs[i];
    results[i].alg = a;
    const KeyEntry* active = m.active(a);
    if (o.if_older_than && active) {
      UnixTime since = active->activated.value_or(active->created);
      if (now - since < *o.if_older_than) {
        results[i].skipped = "active key '" + active->kid + "' was activated at " + format_rfc3339(since) +
                             ", less than " + format_duration(*o.if_older_than) + " ago; next rotation due at " +
                             format_rfc3339(since + *o.if_older_than);
        continue;
      }
    }
    const KeyEntry* next = next_key(m, a);
    if (!next && !force) {
      return fail_remedy(ErrorCode::keystore,
                         "no next key for " + a + ": rotating now would sign with a key verifiers have never seen",
                         "add one and publish the JWKS first, then rotate after the minimum next-key age (or force "
                         "the rotation)",
                         Remedy::add_signing_key, a);
    }
    if (next && !force) {
      if (auto ready = next_key_ready(m, *next, o, now); !ready) return std::unexpected(ready.error());
    }
    if (auto p = passphrase_consistent(*this, m, a, passphrase); !p) return std::unexpected(p.error());
    // The key about to sign must load: activating a missing, corrupt or swapped key file would
    // retire the working key and leave nothing to sign with (an outage a later rotation cannot undo).
    if (next) {
      if (auto k = load(*next, passphrase); !k) {
        return fail(ErrorCode::keystore,
                    "the next " + a + " key '" + next->kid + "' cannot be activated: " + k.error().message,
                    "nothing was changed; restore its key file (run tokctl keys check), or retire it (tokctl keys "
                    "retire " + next->kid + ") and add a new next key");
      }
    }
    any = true;
  }
  if (!any) return results;
  for (auto& r : results) {
    if (!r.skipped.empty()) continue;
    const std::string& a = r.alg;
    // Generate the replacement "next" with the parameters of the key it follows.
    jose::KeyGenOptions gen{a, std::nullopt, std::nullopt};
    const KeyEntry* model = nullptr;  // the newest key of this alg still in use
    for (const auto& e : m.keys)
      if (e.alg == a && e.state != KeyState::retired) model = &e;
    if (model && !model->public_jwk.empty()) {
      auto pk = jose::Jwk::from_json(json::parse(model->public_jwk));
      if (pk && pk->kty() == jose::KeyType::rsa) gen.bits = pk->bits();
      if (pk && (pk->kty() == jose::KeyType::okp || (pk->kty() == jose::KeyType::ec && !is_jws_alg(a)))) gen.crv = pk->crv();
    } else if (model) {
      // A secret has no public JWK to read its size from: the key file says it. A rotation never
      // shortens a secret (a 1024-bit HS256 secret used to be followed by a 256-bit one).
      auto secret = load(*model, passphrase);
      if (!secret) return std::unexpected(secret.error());
      gen.bits = secret->bits();
    }
    std::string next_kid;
    if (KeyEntry* next = next_key(m, a)) {
      next_kid = next->kid;
    } else {  // --force: a brand-new key goes straight to active
      auto fresh = jose::generate_key(gen);
      if (!fresh) return std::unexpected(fresh.error());
      auto e = store_key(*this, m, std::move(*fresh), "", a, KeyState::next, now, passphrase, written);
      if (!e) return std::unexpected(e.error());
      m.keys.push_back(*e);
      next_kid = e->kid;
    }
    for (auto& e : m.keys) {
      if (e.alg == a && e.state == KeyState::active) {
        e.state = KeyState::retired;
        e.retired = now;
        r.retired = e.kid;
      }
      if (e.kid == next_kid) {
        e.state = KeyState::active;
        e.activated = now;
      }
    }
    r.activated = next_kid;
    auto fresh = jose::generate_key(gen);
    if (!fresh) return std::unexpected(fresh.error());
    auto e = store_key(*this, m, std::move(*fresh), "", a, KeyState::next, now, passphrase, written);
    if (!e) return std::unexpected(e.error());
    m.keys.push_back(*e);
    r.added = e->kid;
  }
  if (auto c = commit(*this, m); !c) return std::unexpected(c.error());
  written.committed();
  return results;
}

Result<void> Keystore::record_published(const std::vector<std::string>& kids) {
  auto needs = [&](const Manifest& m) {
    return std::any_of(m.keys.begin(), m.keys.end(), [&](const KeyEntry& e) {
      return !e.published && std::find(kids.begin(), kids.end(), e.kid) != kids.end();
    });
  };
  auto current = manifest();
  if (!current) return std::unexpected(current.error());
  if (!needs(*current)) return {};
  auto txn = begin(*this);
  if (!txn) return std::unexpected(txn.error());
  Manifest m = txn->manifest;
  UnixTime now = m_clock->now();
  for (auto& e : m.keys)
    if (!e.published && std::find(kids.begin(), kids.end(), e.kid) != kids.end()) e.published = now;
  return commit(*this, m);
}

Result<KeyEntry> Keystore::retire(const std::string& kid) {
  auto txn = begin(*this);
  if (!txn) return std::unexpected(txn.error());
  Manifest m = txn->manifest;
  KeyEntry* e = nullptr;
  for (auto& k : m.keys)
    if (k.kid == kid) e = &k;
  if (!e) return fail(ErrorCode::keystore, "no key '" + kid + "' in the keystore", "see: tokctl keys list");
  if (e->state == KeyState::retired) return *e;  // idempotent
  e->state = KeyState::retired;
  e->retired = m_clock->now();
  KeyEntry out = *e;
  if (auto c = commit(*this, m); !c) return std::unexpected(c.error());
  return out;
}

Result<std::optional<std::string>> Keystore::pairwise_secret(CreateSecret create) const {
  auto m = manifest();
  if (!m) return std::unexpected(m.error());
  auto have = read_pairwise_secret(m_dir, m->pairwise_secret);
  if (!have || m->pairwise_secret || create == CreateSecret::no) return have;
  // First need: make the secret (or take the one an older tokctl made) and record it, under the
  // lock. The file comes first: a crash before the manifest names it leaves a file the next call
  // records, never a record without its file.
  if (*have) OPENSSL_cleanse((*have)->data(), (*have)->size());
  auto txn = begin(*this);
  if (!txn) return std::unexpected(txn.error());
  Manifest next = txn->manifest;
  auto now_have = read_pairwise_secret(m_dir, next.pairwise_secret);
  if (!now_have || next.pairwise_secret) return now_have;  // recorded meanwhile (or damaged)
  std::string secret;
  if (*now_have) {
    secret = std::move(**now_have);
  } else {
    secret.assign(k_pairwise_secret_bytes, '\0');
    if (RAND_bytes(reinterpret_cast<unsigned char*>(secret.data()), static_cast<int>(secret.size())) != 1) {
      return fail(ErrorCode::keystore, "cannot create the pairwise-subject secret: no randomness");
    }
    // Linked into place: a file that appeared meanwhile (an older tokctl) is never replaced.
    const std::string path = m_dir + "/" + k_pairwise_secret_file;
    if (auto w = write_output_file(path, secret, 0600, Overwrite::no); !w) {
      OPENSSL_cleanse(secret.data(), secret.size());
      if (w.error().remedy != Remedy::force_overwrite) return std::unexpected(w.error());
      auto theirs = read_pairwise_secret(m_dir, std::nullopt);
      if (!theirs) return std::unexpected(theirs.error());
      if (!*theirs) return fail(ErrorCode::keystore, "'" + path + "' appeared and vanished while it was created");
      secret = std::move(**theirs);
    }
  }
  next.pairwise_secret = SecretRecord{m_clock->now(), sha256_b64url(secret)};
  if (auto c = commit(*this, next); !c) {
    OPENSSL_cleanse(secret.data(), secret.size());
    return std::unexpected(c.error());
  }
  return std::optional<std::string>(std::move(secret));
}

Result<std::vector<KeyEntry>> Keystore::prune(std::int64_t max_lifetime, std::int64_t grace) {
  auto txn = begin(*this);
  if (!txn) return std::unexpected(txn.error());
  UnixTime now = m_clock->now();
  Manifest m;
  m.format = txn->manifest.format;
  m.pairwise_secret = txn->manifest.pairwise_secret;
  std::vector<KeyEntry> removed;
  for (const auto& e : txn->manifest.keys) {
    bool expired = e.state == KeyState::retired && e.retired && *e.retired + max_lifetime + grace <= now;
    (expired ? removed : m.keys).push_back(e);
  }
  if (removed.empty()) return removed;
  // Manifest first (naming each file to delete and its hash), files after: a crash in between
  // leaves files the next writer recognises and deletes, never a dangling entry. A file that cannot
  // be read now is not recorded, so never deleted.
  for (const auto& e : removed) {
    auto text = read_keystore_file(m_dir + "/keys/" + e.file_name(), k_key_rule);
    if (!text) continue;
    m.pruned.push_back(PendingDeletion{e.kid, e.file_name(), sha256_b64url(*text)});
    OPENSSL_cleanse(text->data(), text->size());
  }
  if (auto c = commit(*this, m); !c) return std::unexpected(c.error());
  for (const auto& p : m.pruned) ::unlink((m_dir + "/keys/" + p.file).c_str());
  if (!m.pruned.empty()) {
    // Forget the records; if this write fails the prune still happened, and the next writer
    // drops the records (their files are gone).
    m.pruned.clear();
    (void)commit(*this, m);
  }
  return removed;
}

}  // namespace tokctl::keys
