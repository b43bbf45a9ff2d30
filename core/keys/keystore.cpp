#include <tokctl/keys/keystore.hpp>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <map>
#include <optional>
#include <set>
#include <sys/stat.h>
#include <unistd.h>

#include <nlohmann/json.hpp>
#include <openssl/crypto.h>

#include <tokctl/jose/algorithm.hpp>
#include <tokctl/jose/json.hpp>
#include <tokctl/jose/jwe.hpp>
#include <tokctl/util/io.hpp>
#include <tokctl/util/lock.hpp>

#include "keystore_files.hpp"

namespace tokctl::keys {
namespace {

using nlohmann::json;
using namespace detail;

std::string errno_text() { return std::strerror(errno); }

Result<void> ensure_dir(const std::string& path) {
  if (::mkdir(path.c_str(), 0700) != 0 && errno != EEXIST) {
    return fail(ErrorCode::keystore, "cannot create '" + path + "': " + errno_text());
  }
  return {};
}

Error problem(std::string message, std::string fix, Remedy remedy = Remedy::none, std::string subject = {}) {
  Error e{ErrorCode::keystore, std::move(message), std::move(fix)};
  e.remedy = remedy;
  e.subject = std::move(subject);
  return e;
}

// Readers that compare the manifest with keys/ hold the writers' lock while they do, or a write in
// progress (key file written, manifest not yet) would look like an unknown file. A keystore no
// writer ever touched has no .lock, and a reader does not create one.
std::optional<FileLock> lock_if_present(const std::string& dir) {
  std::string path = dir + "/.lock";
  struct stat st{};
  if (::lstat(path.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) return std::nullopt;
  auto lock = FileLock::acquire(path);
  if (!lock) return std::nullopt;
  return std::optional<FileLock>(std::move(*lock));
}

const char* k_manifest_edited_hint =
    "keystore.json was edited or damaged: restore it from a backup (or set the entry back to what the key file "
    "holds), then run tokctl keys check";

// The key type and size a JWE key-management alg needs (kty and curve; AES key wrap: the size).
Result<void> check_encryption_key(jose::KeyMgmtAlg alg, const jose::Jwk& key) {
  using jose::KeyMgmtAlg;
  using jose::KeyType;
  bool ok = false;
  switch (alg) {
    case KeyMgmtAlg::RSA_OAEP:
    case KeyMgmtAlg::RSA_OAEP_256: ok = key.kty() == KeyType::rsa; break;
    case KeyMgmtAlg::ECDH_ES:
    case KeyMgmtAlg::ECDH_ES_A128KW:
    case KeyMgmtAlg::ECDH_ES_A256KW:
      ok = key.kty() == KeyType::ec || (key.kty() == KeyType::okp && (key.crv() == "X25519" || key.crv() == "X448"));
      break;
    case KeyMgmtAlg::A128KW: ok = key.kty() == KeyType::oct && key.secret().size() == 16; break;
    case KeyMgmtAlg::A256KW: ok = key.kty() == KeyType::oct && key.secret().size() == 32; break;
    case KeyMgmtAlg::dir: ok = key.kty() == KeyType::oct; break;
    default: break;
  }
  if (ok) return {};
  return fail(ErrorCode::keystore, std::string(jose::to_string(alg)) + " cannot be used with " + key.describe());
}

// Whether `key` (from the key file, or the manifest's public part) can be the key of `entry`:
// its type, curve and size fit the entry's alg, and a key that pins an alg pins the same one.
}  // namespace

namespace detail {

Result<void> check_new_encryption_key(jose::KeyMgmtAlg alg, const jose::Jwk& key) {
  using jose::KeyMgmtAlg;
  using jose::KeyType;
  if (auto fits = check_encryption_key(alg, key); !fits) return fail(ErrorCode::usage, fits.error().message);
  const std::string name = jose::to_string(alg);
  if (key.kty() == KeyType::rsa && (key.bits() < jose::k_min_rsa_bits || key.bits() > 16384)) {
    return fail(ErrorCode::usage, name + " keys must be RSA keys of 2048 to 16384 bits, not " + std::to_string(key.bits()));
  }
  if (key.kty() == KeyType::ec && key.crv() != "P-256" && key.crv() != "P-384" && key.crv() != "P-521") {
    return fail(ErrorCode::usage, name + " keys use P-256, P-384, P-521, X25519 or X448, not " + key.crv());
  }
  if (alg == KeyMgmtAlg::dir) {
    const std::size_t n = key.secret().size();
    if (n != 16 && n != 32 && n != 64) {
      return fail(ErrorCode::usage, "a dir key is the content key itself: 16 bytes (A128GCM), 32 (A256GCM, "
                                    "A128CBC-HS256) or 64 (A256CBC-HS512), not " + std::to_string(n));
    }
  }
  return {};
}

}  // namespace detail

namespace {

Result<void> check_fits_entry(const KeyEntry& entry, const jose::Jwk& key, const char* source) {
  auto refuse = [&](const std::string& why) {
    return fail(ErrorCode::keystore,
                "key '" + entry.kid + "': the " + source + " does not fit the manifest's alg " + entry.alg + " (" +
                    why + ")",
                k_manifest_edited_hint);
  };
  if (!key.alg().empty() && key.alg() != entry.alg) {
    return refuse(std::string("the ") + source + " is for " + key.alg());
  }
  if (auto jws = jose::alg_from_string(entry.alg)) {
    jose::Jwk bare = key;
    bare.set_alg("");
    bare.set_use("");
    bare.set_key_ops({});
    if (auto c = jose::check_key(*jws, bare, jose::KeyRole::verify); !c) return refuse(c.error().message);
    return {};
  }
  auto jwe = jose::key_mgmt_from_string(entry.alg);
  if (!jwe) return refuse("no key has that alg");
  if (auto c = check_encryption_key(*jwe, key); !c) return refuse(c.error().message);
  return {};
}

}  // namespace

const char* to_string(KeyState state) {
  switch (state) {
    case KeyState::next: return "next";
    case KeyState::active: return "active";
    case KeyState::retired: return "retired";
  }
  return "?";
}

std::optional<KeyState> key_state_from_string(std::string_view name) {
  if (name == "next") return KeyState::next;
  if (name == "active") return KeyState::active;
  if (name == "retired") return KeyState::retired;
  return std::nullopt;
}

std::string KeyEntry::file_name() const { return kid + (encrypted ? ".jwe" : ".jwk"); }

const KeyEntry* Manifest::find(std::string_view kid) const {
  for (const auto& e : keys)
    if (e.kid == kid) return &e;
  return nullptr;
}

const KeyEntry* Manifest::active(std::string_view alg) const {
  for (const auto& e : keys)
    if (e.alg == alg && e.state == KeyState::active) return &e;
  return nullptr;
}

bool valid_kid(std::string_view kid) {
  if (kid.empty() || kid.size() > 128 || kid.front() == '.') return false;
  return std::all_of(kid.begin(), kid.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '_' || c == '.';
  });
}

// ---- Keystore ----------------------------------------------------------------------------------

Result<Keystore> Keystore::open(const std::string& dir, const Clock& clock, bool create) {
  struct stat st{};
  if (::stat(dir.c_str(), &st) != 0) {
    if (!create) {
      auto e = fail_remedy(ErrorCode::keystore, "no keystore at '" + dir + "'", "create it by adding a key",
                           Remedy::add_signing_key);
      e.error().detail = ErrorDetail::keystore_missing;
      return e;
    }
    // Parents too (like mkdir -p), each 0700 when created here.
    if (auto r = make_directories(dir, 0700); !r) return std::unexpected(r.error());
  }
  if (auto r = check_directory(dir, k_dir_rule); !r) return std::unexpected(r.error());
  std::string keys_dir = dir + "/keys";
  if (create) {
    if (auto r = ensure_dir(keys_dir); !r) return std::unexpected(r.error());
  }
  if (::lstat(keys_dir.c_str(), &st) == 0) {
    if (auto r = check_directory(keys_dir, k_keys_dir_rule); !r) return std::unexpected(r.error());
  }
  if (create) {
    if (auto r = initialise_if_empty(dir); !r) return std::unexpected(r.error());
  }
  return Keystore(dir, clock);
}

Result<Manifest> Keystore::manifest() const {
  std::string path = m_dir + "/" + k_manifest;
  struct stat st{};
  if (::lstat(path.c_str(), &st) != 0) {
    if (errno != ENOENT) return fail(ErrorCode::keystore, "cannot stat '" + path + "': " + errno_text());
    auto listed = key_files(m_dir);
    if (!listed) return std::unexpected(listed.error());  // unlisted files are never taken for none
    const auto& files = *listed;
    if (files.empty()) {
      auto e = fail_remedy(ErrorCode::keystore, "no keystore at '" + m_dir + "': the directory has no keystore.json",
                           "create it by adding a key", Remedy::add_signing_key);
      e.error().detail = ErrorDetail::keystore_missing;
      return e;
    }
    std::string names;
    for (std::size_t i = 0; i < files.size() && i < 5; ++i) names += (i ? ", " : "") + files[i];
    if (files.size() > 5) names += ", ...";
    return fail_remedy(ErrorCode::keystore,
                "'" + path + "' is missing but keys/ holds " + std::to_string(files.size()) +
                    " file(s) (" + names + "): not treating the keystore as empty",
                "restore keystore.json from a backup (no key file was touched); or rebuild it from the key "
                "files: mv '" + m_dir + "/keys' '" + m_dir + "/keys.recovered', then import each file from there",
                Remedy::import_key_file, m_dir + "/keys.recovered/FILE");
  }
  auto text = read_keystore_file(path, k_manifest_rule);
  if (!text) return std::unexpected(text.error());
  return parse_manifest(*text, path);
}

std::vector<std::string> Keystore::unknown_files() const {
  std::vector<std::string> out;
  auto lock = lock_if_present(m_dir);
  auto m = manifest();
  if (!m) return out;
  std::set<std::string> known;
  for (const auto& e : m->keys) known.insert(e.file_name());
  for (const auto& p : m->pruned) known.insert(p.file);
  for (const auto& name : key_files(m_dir).value_or(std::vector<std::string>{}))
    if (!known.count(name)) out.push_back("keys/" + name);
  return out;
}

Result<jose::Jwk> Keystore::load(const KeyEntry& entry, const Passphrase& passphrase, jose::KeyCheck check) const {
  std::string path = m_dir + "/keys/" + entry.file_name();
  auto text = read_keystore_file(path, k_key_rule);
  if (!text) return std::unexpected(text.error());
  std::string jwk_text;
  if (entry.encrypted) {
    if (!passphrase) {
      OPENSSL_cleanse(text->data(), text->size());
      return fail_remedy(ErrorCode::keystore, "key '" + entry.kid + "' is encrypted at rest", "supply the passphrase",
                         Remedy::pass_passphrase);
    }
    auto pw = jose::Jwk::from_secret(*passphrase);
    if (!pw) return fail(ErrorCode::keystore, "the passphrase is empty");
    auto dec = jose::decrypt_compact(trim(*text), *pw);
    if (!dec) {
      auto e = fail(ErrorCode::keystore, "cannot decrypt key '" + entry.kid + "': " + dec.error().message,
                    "wrong passphrase?");
      // A well-formed file that does not decrypt: a wrong passphrase (or a tampered file, which
      // looks the same); a file too damaged to parse as a JWE is not called a wrong passphrase.
      if (dec.error().code == ErrorCode::invalid_token) e.error().detail = ErrorDetail::wrong_passphrase;
      return e;
    }
    jwk_text = std::move(dec->plaintext);
  } else {
    jwk_text = std::move(*text);
  }
  auto j = jose::parse_json_object(jwk_text, "key file");
  OPENSSL_cleanse(jwk_text.data(), jwk_text.size());
  if (!j) return fail(ErrorCode::keystore, "key file of '" + entry.kid + "' (" + path + ") is not valid JSON",
                      "restore it from a backup; run tokctl keys check");
  // Trusted only when the manifest can vouch for the file (its thumbprint is compared below).
  auto key = jose::Jwk::from_json(*j, entry.thumbprint.empty() ? jose::KeyCheck::full : check);
  if (!key) return fail(ErrorCode::keystore, "key '" + entry.kid + "': " + key.error().message);
  if (key->kty() != jose::KeyType::oct && !key->has_private()) {
    return fail(ErrorCode::keystore,
                "key file of '" + entry.kid + "' (" + path + ") holds only the public part of the key (" +
                    key->describe() + "); the keystore keeps private keys",
                "restore the file from a backup; if the private key is lost, retire the key (tokens it signed "
                "still verify) and add or rotate in a new one");
  }
  auto tp = key->thumbprint();
  if (!entry.thumbprint.empty() && (!tp || *tp != entry.thumbprint)) {
    return fail(ErrorCode::keystore, "key file of '" + entry.kid + "' does not match its manifest thumbprint",
                "the file was replaced or corrupted; run tokctl keys check");
  }
  // What the manifest publishes for this kid must be this key's public part: public_key() holds
  // it to the manifest's thumbprint, which the key file matched above.
  if (!entry.public_jwk.empty()) {
    if (auto pub = public_key(entry); !pub) return std::unexpected(pub.error());
  }
  if (auto fits = check_fits_entry(entry, *key, "key file"); !fits) return std::unexpected(fits.error());
  key->set_kid(entry.kid);
  key->set_alg(entry.alg);
  key->set_use(entry.use);
  return key;
}

Result<jose::Jwk> Keystore::public_key(const KeyEntry& e) const {
  if (e.public_jwk.empty()) {
    return fail(ErrorCode::usage, "key '" + e.kid + "' is a " + e.alg + " secret: it has no public part");
  }
  auto j = json::parse(e.public_jwk, nullptr, false);
  if (j.is_discarded() || !j.is_object()) {
    return fail(ErrorCode::keystore, "manifest public key of '" + e.kid + "' is not a JSON object", k_manifest_edited_hint);
  }
  auto k = jose::Jwk::from_json(j, jose::KeyCheck::trusted);
  if (!k) {
    return fail(ErrorCode::keystore, "manifest public key of '" + e.kid + "': " + k.error().message,
                k_manifest_edited_hint);
  }
  if (k->kty() == jose::KeyType::oct || k->has_private()) {
    return fail(ErrorCode::keystore, "manifest public key of '" + e.kid + "' holds private key material",
                k_manifest_edited_hint);
  }
  auto tp = k->thumbprint();
  if (!tp || *tp != e.thumbprint) {
    return fail(ErrorCode::keystore,
                "key '" + e.kid + "': the manifest's public \"jwk\" has thumbprint " + tp.value_or("?") +
                    ", not the key's thumbprint " + e.thumbprint + " (another key's public part?)",
                k_manifest_edited_hint);
  }
  if (auto fits = check_fits_entry(e, *k, "manifest's public \"jwk\""); !fits) return std::unexpected(fits.error());
  k->set_kid(e.kid);
  k->set_alg(e.alg);
  k->set_use(e.use);
  return k;
}

Result<jose::JwkSet> Keystore::jwks(std::string_view use) const {
  auto m = manifest();
  if (!m) return std::unexpected(m.error());
  jose::JwkSet set;
  for (const auto& e : m->keys) {
    if (e.public_jwk.empty() || (!use.empty() && e.use != use)) continue;
    auto k = public_key(e);
    if (!k) return std::unexpected(k.error());
    set.keys.push_back(std::move(*k));
  }
  return set;
}

Result<jose::JwkSet> Keystore::verification_keys(const Passphrase& passphrase) const {
  auto m = manifest();
  if (!m) return std::unexpected(m.error());
  jose::JwkSet set;
  for (const auto& e : m->keys) {
    if (e.use != "sig") continue;
    if (e.public_jwk.empty()) {
      // An HMAC secret: load it, but let a missing passphrase only skip it (other keys may fit).
      auto k = load(e, passphrase);
      if (!k) {
        if (e.encrypted && !passphrase) continue;
        return std::unexpected(k.error());
      }
      set.keys.push_back(std::move(*k));
      continue;
    }
    auto k = public_key(e);
    if (!k) return std::unexpected(k.error());
    k->set_use("");
    set.keys.push_back(std::move(*k));
  }
  if (set.keys.empty()) {
    return fail_remedy(ErrorCode::keystore, "the keystore at '" + m_dir + "' has no signing keys", "add one",
                       Remedy::add_signing_key);
  }
  return set;
}

Result<jose::Jwk> Keystore::signing_key(const std::string& alg, const std::string& kid,
                                        const Passphrase& passphrase) const {
  auto m = manifest();
  if (!m) return std::unexpected(m.error());
  const KeyEntry* chosen = nullptr;
  if (!kid.empty()) {
    chosen = m->find(kid);
    if (!chosen) return fail(ErrorCode::keystore, "no key '" + kid + "' in the keystore", "see: tokctl keys list");
    if (chosen->use != "sig") return fail(ErrorCode::keystore, "key '" + kid + "' is an encryption key");
    if (chosen->state == KeyState::retired) {
      return fail(ErrorCode::keystore, "key '" + kid + "' is retired: it verifies but no longer signs",
                  "sign with the active key (name no kid)");
    }
    if (chosen->state == KeyState::next) {
      return fail_remedy(ErrorCode::keystore, "key '" + kid + "' is next: published, but it signs only once rotated in",
                         "rotate it in, or sign with the active key (name no kid)", Remedy::rotate_key, chosen->alg);
    }
  } else {
    std::vector<const KeyEntry*> active;
    for (const auto& e : m->keys)
      if (e.use == "sig" && e.state == KeyState::active && (alg.empty() || e.alg == alg)) active.push_back(&e);
    if (active.empty()) {
      return fail_remedy(ErrorCode::keystore,
                         "no active signing key" + (alg.empty() ? std::string() : " for " + alg) + " in '" + m_dir + "'",
                         "add one", Remedy::add_signing_key, alg);
    }
    if (active.size() > 1 && std::all_of(active.begin(), active.end(),
                                         [&](const KeyEntry* e) { return e->alg == active.front()->alg; })) {
      // One alg, several active keys: the manifest breaks its own rule (keys check says so).
      std::string kids;
      for (auto* e : active) kids += (kids.empty() ? "'" : ", '") + e->kid + "'";
      return fail(ErrorCode::keystore,
                  "the keystore has " + std::to_string(active.size()) + " active " + active.front()->alg + " keys (" +
                      kids + "): which one signs is not defined",
                  "retire all but one (tokctl keys retire KID); run tokctl keys check");
    }
    if (active.size() > 1) {
      std::string algs;
      for (auto* e : active) algs += (algs.empty() ? "" : ", ") + e->alg;
      return fail_param(ErrorCode::usage, "alg", "several algs have an active key (" + algs + ")",
                        "name the algorithm to sign with");
    }
    chosen = active.front();
  }
  return load(*chosen, passphrase);
}

Result<jose::JwkSet> Keystore::decryption_keys(const std::string& kid, const Passphrase& passphrase) const {
  auto m = manifest();
  if (!m) return std::unexpected(m.error());
  jose::JwkSet set;
  for (const auto& e : m->keys) {
    if (e.use != "enc" || (!kid.empty() && e.kid != kid)) continue;
    auto k = load(e, passphrase);
    if (!k) return std::unexpected(k.error());
    set.keys.push_back(std::move(*k));
  }
  if (set.keys.empty()) {
    return fail_remedy(ErrorCode::keystore,
                       kid.empty() ? "the keystore has no encryption keys" : "no encryption key '" + kid + "' in the keystore",
                       "name a key file, or add an encryption key to the keystore", Remedy::add_encryption_key);
  }
  return set;
}

Result<jose::Jwk> Keystore::encryption_recipient(const std::string& kid, const std::string& alg,
                                                const Passphrase& passphrase) const {
  auto m = manifest();
  if (!m) return std::unexpected(m.error());
  // The public key of an entry (an oct key: the secret itself).
  auto entry_key = [&](const KeyEntry& e) -> Result<jose::Jwk> {
    if (e.public_jwk.empty()) return load(e, passphrase);
    auto set = jwks("enc");
    if (!set) return std::unexpected(set.error());
    for (auto& k : set->keys)
      if (k.kid() == e.kid) return k;
    return fail(ErrorCode::keystore, "the manifest has no public key for '" + e.kid + "'", "run tokctl keys check");
  };
  if (!kid.empty()) {
    const KeyEntry* e = m->find(kid);
    if (!e) return fail(ErrorCode::keystore, "no key '" + kid + "' in the keystore", "see: tokctl keys list");
    if (e->use != "enc") {
      return fail_remedy(ErrorCode::usage, "key '" + kid + "' is a signing key (" + e->alg + "), not an encryption key",
                         "add an encryption key", Remedy::add_encryption_key);
    }
    if (e->state == KeyState::retired) {
      return fail(ErrorCode::keystore, "key '" + kid + "' is retired: it still decrypts but no longer receives",
                  "encrypt to the active key");
    }
    return entry_key(*e);
  }
  std::vector<const KeyEntry*> active;
  for (const auto& e : m->keys)
    if (e.use == "enc" && e.state == KeyState::active && (alg.empty() || e.alg == alg)) active.push_back(&e);
  if (active.empty()) {
    return fail_remedy(ErrorCode::usage,
                "no recipient key given, and the keystore has no active encryption key" +
                    (alg.empty() ? std::string() : " for " + alg),
                "name a key file or kid, or add an active encryption key", Remedy::add_encryption_key, alg);
  }
  if (active.size() > 1) {
    std::string algs;
    for (auto* e : active) algs += (algs.empty() ? "" : ", ") + e->alg;
    return fail(ErrorCode::usage, "several algs have an active encryption key (" + algs + ")",
                "pick one by alg or kid");
  }
  return entry_key(*active.front());
}

Result<std::vector<jose::Jwk>> Keystore::decryption_candidates(const std::string& kid, const std::string& alg,
                                                               const Passphrase& passphrase) const {
  auto m = manifest();
  if (!m) return std::unexpected(m.error());
  if (!kid.empty()) {
    const KeyEntry* e = m->find(kid);
    if (!e || e->use != "enc") {
      return fail(ErrorCode::usage, "no encryption key '" + kid + "' (the token's kid) in the keystore at '" + m_dir + "'",
                  "decrypt with the recipient's private key file");
    }
    auto set = decryption_keys(kid, passphrase);
    if (!set) return std::unexpected(set.error());
    return std::move(set->keys);
  }
  std::vector<jose::Jwk> out;
  for (const auto& e : m->keys) {
    if (e.use != "enc" || e.alg != alg) continue;
    auto k = load(e, passphrase);
    if (!k) return std::unexpected(k.error());
    out.push_back(std::move(*k));
  }
  if (out.empty()) {
    return fail_remedy(ErrorCode::usage, "the token has no kid and the keystore has no " + alg + " key",
                       "decrypt with a key file, or keep the key in the keystore", Remedy::add_encryption_key, alg);
  }
  return out;
}

CheckReport Keystore::check(const Passphrase& passphrase) const {
  CheckReport r;
  auto lock = lock_if_present(m_dir);
  if (auto d = check_directory(m_dir, k_dir_rule); !d) r.problems.push_back(d.error());
  std::string keys_dir = m_dir + "/keys";
  struct stat st{};
  if (::lstat(keys_dir.c_str(), &st) == 0) {
    if (auto d = check_directory(keys_dir, k_keys_dir_rule); !d) r.problems.push_back(d.error());
  }
  for (const std::string& sub : {m_dir, keys_dir}) {
    for (const auto& name : list_dir(sub)) {
      if (is_temp_name(name, nullptr)) {
        r.notes.push_back((sub == m_dir ? "" : "keys/") + name +
                          " is a temp file of an interrupted write; the next keystore write removes it");
      }
    }
  }
  auto m = manifest();
  if (!m) {
    r.problems.push_back(m.error());
    if (auto files = key_files(m_dir)) {
      for (const auto& name : *files) r.unknown_files.push_back("keys/" + name);
    } else if (files.error().message != m.error().message) {
      r.problems.push_back(files.error());
    }
    return r;
  }
  std::set<std::string> named;
  std::map<std::string, int> active_per_alg;
  std::set<std::string> algs;
  if (auto link = refuse_symlinked_manifest(m_dir); !link) r.problems.push_back(link.error());
  if (auto secret = read_pairwise_secret(m_dir, m->pairwise_secret); !secret) {
    r.problems.push_back(secret.error());
  } else if (*secret) {
    OPENSSL_cleanse((*secret)->data(), (*secret)->size());
    if (!m->pairwise_secret) {
      r.notes.push_back(std::string(k_pairwise_secret_file) +
                        " (the pairwise-subject secret) is not recorded in keystore.json yet; the next token "
                        "issued with a pairwise subject records it");
    }
  }
  for (const auto& e : m->keys) {
    named.insert(e.file_name());
    algs.insert(e.alg);
    if (e.state == KeyState::active) ++active_per_alg[e.alg];
    // The published part first: it is checked even when the key file cannot be read.
    std::string public_problem;
    if (!e.public_jwk.empty()) {
      if (auto pub = public_key(e); !pub) {
        public_problem = pub.error().message;
        r.problems.push_back(pub.error());
      }
    }
    std::string path = keys_dir + "/" + e.file_name();
    if (::lstat(path.c_str(), &st) != 0) {
      if (const int err = errno; err != ENOENT) {
        r.problems.push_back(problem("cannot stat " + path + " (key '" + e.kid + "'): " + std::strerror(err),
                                     "the keystore's owner must be able to reach keys/ (chmod 700)"));
      } else {
        r.problems.push_back(problem("key '" + e.kid + "' is in the manifest but " + path + " is missing",
                                     "restore the file from a backup, or retire and prune the key"));
      }
      continue;
    }
    if (e.encrypted && !passphrase) {
      // Still check what can be checked without the passphrase: file type, owner, mode.
      if (auto f = read_keystore_file(path, k_key_rule); !f) {
        r.problems.push_back(f.error());
      } else {
        OPENSSL_cleanse(f->data(), f->size());
        r.notes.push_back("key '" + e.kid + "' is encrypted at rest; pass the passphrase to check its contents");
      }
      continue;
    }
    if (auto k = load(e, passphrase, jose::KeyCheck::full); !k && k.error().message != public_problem) {
      r.problems.push_back(k.error());
    }
  }
  for (const auto& a : algs) {
    int n = active_per_alg[a];
    if (n == 0 && std::any_of(m->keys.begin(), m->keys.end(),
                              [&](const KeyEntry& e) { return e.alg == a && e.state != KeyState::retired; })) {
      r.problems.push_back(problem("no active key for " + a, "rotate one in", Remedy::rotate_key, a));
    } else if (n > 1) {
      r.problems.push_back(problem(std::to_string(n) + " active keys for " + a, "retire all but one"));
    }
  }
  std::map<std::string, const PendingDeletion*> pending;
  for (const auto& p : m->pruned) pending[p.file] = &p;
  auto files = key_files(m_dir);
  if (!files) r.problems.push_back(files.error());
  for (const auto& name : files.value_or(std::vector<std::string>{})) {
    if (named.count(name)) continue;
    std::string path = keys_dir + "/" + name;
    if (auto it = pending.find(name); it != pending.end()) {
      auto f = read_keystore_file(path, k_key_rule);
      bool same = f && sha256_b64url(*f) == it->second->sha256;
      if (f) OPENSSL_cleanse(f->data(), f->size());
      if (same) {
        r.notes.push_back("keys/" + name + " belongs to pruned key '" + it->second->kid +
                          "' (interrupted prune); the next keystore write deletes it");
        continue;
      }
    }
    r.unknown_files.push_back("keys/" + name);
    if (::lstat(path.c_str(), &st) == 0 && !S_ISREG(st.st_mode)) {
      r.problems.push_back(problem("keys/" + name + " is not a regular file and not in the manifest",
                                   "move it out of '" + keys_dir + "'"));
      continue;
    }
    r.problems.push_back(problem("keys/" + name + " is not in the manifest (left by an interrupted write, or the "
                                 "manifest was restored from an older backup); tokctl keeps it",
                                 "to keep the key, import it (as next, then retire it if it was retired); if you are "
                                 "sure it is not needed, move it out of keys/",
                                 Remedy::import_key_file, path));
  }
  return r;
}

}  // namespace tokctl::keys
