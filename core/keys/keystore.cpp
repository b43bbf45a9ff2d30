#include <tokctl/keys/keystore.hpp>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <dirent.h>
#include <map>
#include <set>
#include <sys/stat.h>
#include <unistd.h>

#include <nlohmann/json.hpp>
#include <openssl/crypto.h>

#include <tokctl/jose/algorithm.hpp>
#include <tokctl/jose/json.hpp>
#include <tokctl/jose/jwe.hpp>
#include <tokctl/jose/keygen.hpp>
#include <tokctl/util/io.hpp>
#include <tokctl/util/lock.hpp>

namespace tokctl::keys {
namespace {

using nlohmann::json;

constexpr const char* k_manifest = "keystore.json";
constexpr int k_format = 1;

std::string errno_text() { return std::strerror(errno); }

bool is_jws_alg(std::string_view alg) { return jose::alg_from_string(alg).has_value(); }
bool is_jwe_alg(std::string_view alg) {
  auto a = jose::key_mgmt_from_string(alg);
  return a && *a != jose::KeyMgmtAlg::PBES2_HS256_A128KW && *a != jose::KeyMgmtAlg::PBES2_HS512_A256KW;
}

Result<void> check_mode(const std::string& path, mode_t forbidden, const char* what, const char* fix) {
  struct stat st{};
  if (::stat(path.c_str(), &st) != 0) {
    return fail(ErrorCode::keystore, std::string("cannot stat ") + what + " '" + path + "': " + errno_text());
  }
  if ((st.st_mode & forbidden) != 0) {
    char mode[8];
    std::snprintf(mode, sizeof mode, "%03o", static_cast<unsigned>(st.st_mode & 0777));
    return fail(ErrorCode::keystore,
                std::string(what) + " '" + path + "' has mode " + mode + ", too open",
                std::string(fix) + " '" + path + "'");
  }
  return {};
}

Result<void> ensure_dir(const std::string& path) {
  if (::mkdir(path.c_str(), 0700) != 0 && errno != EEXIST) {
    return fail(ErrorCode::keystore, "cannot create '" + path + "': " + errno_text());
  }
  return {};
}

json entry_to_json(const KeyEntry& e) {
  json j{{"kid", e.kid},
         {"alg", e.alg},
         {"use", e.use},
         {"state", to_string(e.state)},
         {"created", format_rfc3339(e.created)},
         {"activated", e.activated ? json(format_rfc3339(*e.activated)) : json()},
         {"retired", e.retired ? json(format_rfc3339(*e.retired)) : json()},
         {"encrypted", e.encrypted},
         {"thumbprint", e.thumbprint}};
  if (!e.public_jwk.empty()) j["jwk"] = json::parse(e.public_jwk);
  return j;
}

Result<UnixTime> time_member(const json& j, const char* name) {
  auto it = j.find(name);
  if (it == j.end() || !it->is_string()) {
    return fail(ErrorCode::keystore, std::string("manifest entry lacks \"") + name + "\"");
  }
  auto t = parse_time(it->get<std::string>(), 0);
  if (!t) return fail(ErrorCode::keystore, std::string("manifest entry has a bad \"") + name + "\"");
  return *t;
}

Result<KeyEntry> entry_from_json(const json& j) {
  if (!j.is_object()) return fail(ErrorCode::keystore, "manifest key entry is not an object");
  KeyEntry e;
  try {
    e.kid = j.at("kid").get<std::string>();
    e.alg = j.at("alg").get<std::string>();
    e.use = j.at("use").get<std::string>();
    auto st = key_state_from_string(j.at("state").get<std::string>());
    if (!st) return fail(ErrorCode::keystore, "manifest entry '" + e.kid + "' has an unknown state");
    e.state = *st;
    e.encrypted = j.value("encrypted", false);
    e.thumbprint = j.value("thumbprint", std::string());
    if (auto jwk = j.find("jwk"); jwk != j.end() && jwk->is_object()) e.public_jwk = jwk->dump();
  } catch (const json::exception& ex) {
    return fail(ErrorCode::keystore, std::string("manifest key entry is malformed: ") + ex.what());
  }
  if (!valid_kid(e.kid)) return fail(ErrorCode::keystore, "manifest has an unsafe kid '" + e.kid + "'");
  auto created = time_member(j, "created");
  if (!created) return std::unexpected(created.error());
  e.created = *created;
  for (auto [name, field] : {std::pair{"activated", &e.activated}, {"retired", &e.retired}}) {
    if (j.contains(name) && !j[name].is_null()) {
      auto t = time_member(j, name);
      if (!t) return std::unexpected(t.error());
      *field = *t;
    }
  }
  return e;
}

std::string manifest_text(const Manifest& m) {
  json keys = json::array();
  for (const auto& e : m.keys) keys.push_back(entry_to_json(e));
  return json{{"format", m.format}, {"keys", keys}}.dump(2) + "\n";
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

std::string resolve_keystore_dir(const std::string& flag) {
  if (!flag.empty()) return flag;
  if (const char* env = std::getenv("TOKCTL_KEYSTORE"); env && *env) return env;
  if (const char* xdg = std::getenv("XDG_DATA_HOME"); xdg && *xdg) return std::string(xdg) + "/tokctl";
  const char* home = std::getenv("HOME");
  return std::string(home && *home ? home : ".") + "/.local/share/tokctl";
}

// ---- Keystore ----------------------------------------------------------------------------------

Result<Keystore> Keystore::open(const std::string& dir, const Clock& clock, bool create) {
  struct stat st{};
  if (::stat(dir.c_str(), &st) != 0) {
    if (!create) {
      return fail(ErrorCode::keystore, "no keystore at '" + dir + "'",
                  "create one with: tokctl keys add --alg ES256 --keystore '" + dir + "'");
    }
    // Parents too (like mkdir -p), each 0700 when created here.
    std::string path;
    for (std::size_t pos = 0; pos != std::string::npos;) {
      pos = dir.find('/', pos + 1);
      path = dir.substr(0, pos);
      if (!path.empty() && ::stat(path.c_str(), &st) != 0) {
        if (auto r = ensure_dir(path); !r) return std::unexpected(r.error());
      }
    }
  }
  if (auto r = check_mode(dir, 022, "keystore directory", "chmod 700"); !r) return std::unexpected(r.error());
  std::string keys_dir = dir + "/keys";
  if (create) {
    if (auto r = ensure_dir(keys_dir); !r) return std::unexpected(r.error());
  }
  if (::stat(keys_dir.c_str(), &st) == 0) {
    if (auto r = check_mode(keys_dir, 077, "keys directory", "chmod 700"); !r) return std::unexpected(r.error());
  }
  return Keystore(dir, clock);
}

Result<Manifest> Keystore::manifest() const {
  std::string path = m_dir + "/" + k_manifest;
  if (::access(path.c_str(), F_OK) != 0) return Manifest{};
  auto text = read_input(path);
  if (!text) return fail(ErrorCode::keystore, text.error().message);
  auto j = jose::parse_json_object(*text, "keystore manifest", jose::JsonLimits{k_max_input_bytes, 64});
  if (!j) {
    return fail(ErrorCode::keystore, "'" + path + "': " + j.error().message,
                "restore it from a backup; 'tokctl keys check' lists the key files");
  }
  Manifest m;
  m.format = j->value("format", 0);
  if (m.format != k_format) {
    return fail(ErrorCode::keystore, "'" + path + "' has format " + std::to_string(m.format) +
                                         ", this tokctl reads format " + std::to_string(k_format));
  }
  if (!j->contains("keys") || !(*j)["keys"].is_array()) {
    return fail(ErrorCode::keystore, "'" + path + "' has no \"keys\" array");
  }
  std::set<std::string> seen;
  for (const auto& kj : (*j)["keys"]) {
    auto e = entry_from_json(kj);
    if (!e) {
      e.error().message = "'" + path + "': " + e.error().message;
      return std::unexpected(e.error());
    }
    if (!seen.insert(e->kid).second) return fail(ErrorCode::keystore, "'" + path + "' lists kid '" + e->kid + "' twice");
    m.keys.push_back(std::move(*e));
  }
  return m;
}

Result<jose::Jwk> Keystore::load(const KeyEntry& entry, const Passphrase& passphrase) const {
  std::string path = m_dir + "/keys/" + entry.file_name();
  if (auto r = check_mode(path, 077, "key file", "chmod 600"); !r) return std::unexpected(r.error());
  auto text = read_input(path);
  if (!text) return fail(ErrorCode::keystore, "key '" + entry.kid + "': " + text.error().message);
  std::string jwk_text;
  if (entry.encrypted) {
    if (!passphrase) {
      return fail(ErrorCode::keystore, "key '" + entry.kid + "' is encrypted at rest",
                  "pass --passphrase-file FILE or set TOKCTL_PASSPHRASE");
    }
    auto pw = jose::Jwk::from_secret(*passphrase);
    if (!pw) return fail(ErrorCode::keystore, "the passphrase is empty");
    auto dec = jose::decrypt_compact(trim(*text), *pw);
    if (!dec) {
      return fail(ErrorCode::keystore, "cannot decrypt key '" + entry.kid + "': " + dec.error().message,
                  "wrong passphrase?");
    }
    jwk_text = std::move(dec->plaintext);
  } else {
    jwk_text = std::move(*text);
  }
  auto j = jose::parse_json_object(jwk_text, "key file");
  OPENSSL_cleanse(jwk_text.data(), jwk_text.size());
  if (!j) return fail(ErrorCode::keystore, "key '" + entry.kid + "': " + j.error().message);
  auto key = jose::Jwk::from_json(*j);
  if (!key) return fail(ErrorCode::keystore, "key '" + entry.kid + "': " + key.error().message);
  auto tp = key->thumbprint();
  if (!entry.thumbprint.empty() && (!tp || *tp != entry.thumbprint)) {
    return fail(ErrorCode::keystore, "key file of '" + entry.kid + "' does not match its manifest thumbprint",
                "the file was replaced or corrupted; run tokctl keys check");
  }
  key->set_kid(entry.kid);
  key->set_alg(entry.alg);
  key->set_use(entry.use);
  return key;
}

Result<jose::JwkSet> Keystore::jwks(std::string_view use) const {
  auto m = manifest();
  if (!m) return std::unexpected(m.error());
  jose::JwkSet set;
  for (const auto& e : m->keys) {
    if (e.public_jwk.empty() || (!use.empty() && e.use != use)) continue;
    auto k = jose::Jwk::from_json(json::parse(e.public_jwk));
    if (!k) return fail(ErrorCode::keystore, "manifest public key of '" + e.kid + "': " + k.error().message);
    k->set_kid(e.kid);
    k->set_alg(e.alg);
    k->set_use(e.use);
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
    auto k = jose::Jwk::from_json(json::parse(e.public_jwk));
    if (!k) return fail(ErrorCode::keystore, "manifest public key of '" + e.kid + "': " + k.error().message);
    k->set_kid(e.kid);
    k->set_alg(e.alg);
    set.keys.push_back(std::move(*k));
  }
  if (set.keys.empty()) {
    return fail(ErrorCode::keystore, "the keystore at '" + m_dir + "' has no signing keys",
                "add one: tokctl keys add --alg ES256");
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
                  "sign with the active key (omit --kid)");
    }
    if (chosen->state == KeyState::next) {
      return fail(ErrorCode::keystore, "key '" + kid + "' is next: published, but it signs only once rotated in",
                  "tokctl keys rotate --alg " + chosen->alg + ", or sign with the active key (omit --kid)");
    }
  } else {
    std::vector<const KeyEntry*> active;
    for (const auto& e : m->keys)
      if (e.use == "sig" && e.state == KeyState::active && (alg.empty() || e.alg == alg)) active.push_back(&e);
    if (active.empty()) {
      return fail(ErrorCode::keystore,
                  "no active signing key" + (alg.empty() ? std::string() : " for " + alg) + " in '" + m_dir + "'",
                  "add one: tokctl keys add --alg " + (alg.empty() ? std::string("ES256") : alg) + " --state active");
    }
    if (active.size() > 1) {
      std::string algs;
      for (auto* e : active) algs += (algs.empty() ? "" : ", ") + e->alg;
      return fail(ErrorCode::usage, "several algs have an active key (" + algs + ")", "pick one with --alg");
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
    return fail(ErrorCode::keystore,
                kid.empty() ? "the keystore has no encryption keys" : "no encryption key '" + kid + "' in the keystore",
                "pass --key FILE, or add one: tokctl keys add --alg ECDH-ES+A256KW");
  }
  return set;
}

// ---- writers ------------------------------------------------------------------------------------

namespace {

struct Txn {
  FileLock lock;
  Manifest manifest;
};

// Removes files under keys/ that the manifest does not name (leftovers of a crash) and temp files.
void sweep_orphans(const std::string& dir, const Manifest& m) {
  std::set<std::string> named;
  for (const auto& e : m.keys) named.insert(e.file_name());
  std::string keys_dir = dir + "/keys";
  DIR* d = ::opendir(keys_dir.c_str());
  if (!d) return;
  while (dirent* ent = ::readdir(d)) {
    std::string name = ent->d_name;
    if (name == "." || name == "..") continue;
    if (!named.count(name)) ::unlink((keys_dir + "/" + name).c_str());
  }
  ::closedir(d);
  // Temp manifests from an interrupted write.
  DIR* top = ::opendir(dir.c_str());
  if (!top) return;
  std::string prefix = std::string(k_manifest) + ".tmp.";
  while (dirent* ent = ::readdir(top)) {
    std::string name = ent->d_name;
    if (name.rfind(prefix, 0) == 0) ::unlink((dir + "/" + name).c_str());
  }
  ::closedir(top);
}

}  // namespace

static Result<Txn> begin(const Keystore& ks) {
  auto lock = FileLock::acquire(ks.dir() + "/.lock");
  if (!lock) return std::unexpected(lock.error());
  auto m = ks.manifest();
  if (!m) return std::unexpected(m.error());
  sweep_orphans(ks.dir(), *m);
  return Txn{std::move(*lock), std::move(*m)};
}

static Result<void> commit(const Keystore& ks, const Manifest& m) {
  fault_point("before_manifest_write");
  auto r = write_file_atomic(ks.dir() + "/" + k_manifest, manifest_text(m), 0600);
  if (r) fault_point("after_manifest_write");
  return r;
}

static Result<KeyEntry> store_key(const Keystore& ks, const Manifest& m, jose::Jwk key, const std::string& kid_wanted,
                                  const std::string& alg, KeyState state, UnixTime now, const Passphrase& passphrase) {
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
  auto text = key_file_text(key, passphrase);
  if (!text) return std::unexpected(text.error());
  auto w = write_file_atomic(ks.dir() + "/keys/" + e.file_name(), *text, 0600);
  OPENSSL_cleanse(text->data(), text->size());
  if (!w) return std::unexpected(w.error());
  fault_point("after_key_write");
  return e;
}

// Keys of `alg` already stored encrypted need a passphrase for any new key of that alg, so the
// keystore never mixes protected and unprotected keys of one alg by accident.
// and a new key is sealed with the passphrase that opens the existing ones (a typo would otherwise
// lock the new key away).
static Result<void> passphrase_consistent(const Keystore& ks, const Manifest& m, const std::string& alg,
                                          const Passphrase& passphrase) {
  for (const auto& e : m.keys) {
    if (e.alg != alg || !e.encrypted) continue;
    if (!passphrase) {
      return fail(ErrorCode::keystore, "keys of " + alg + " are encrypted at rest; a new one would not be",
                  "pass --passphrase-file FILE or set TOKCTL_PASSPHRASE");
    }
    if (auto k = ks.load(e, passphrase); !k) {
      return fail(ErrorCode::keystore, "the passphrase does not open the existing " + alg + " key '" + e.kid + "'",
                  "use the keystore's passphrase");
    }
    return {};
  }
  return {};
}

static Result<std::string> checked_alg(const std::string& alg) {
  if (is_jws_alg(alg) || is_jwe_alg(alg)) return alg;
  return fail(ErrorCode::usage, "unknown or unsupported key alg '" + alg + "'",
              "JWS: " + jose::supported_alg_names() + "; JWE: RSA-OAEP, RSA-OAEP-256, ECDH-ES, ECDH-ES+A128KW, "
              "ECDH-ES+A256KW, A128KW, A256KW, dir");
}

Result<KeyEntry> Keystore::add(const AddOptions& o, const Passphrase& passphrase) {
  auto alg = checked_alg(o.alg);
  if (!alg) return std::unexpected(alg.error());
  if (o.state == KeyState::retired) return fail(ErrorCode::usage, "a new key is next or active, not retired");
  auto key = jose::generate_key(jose::KeyGenOptions{o.alg, o.bits, o.crv});
  if (!key) return std::unexpected(key.error());
  auto txn = begin(*this);
  if (!txn) return std::unexpected(txn.error());
  if (auto p = passphrase_consistent(*this, txn->manifest, o.alg, passphrase); !p) return std::unexpected(p.error());
  UnixTime now = m_clock->now();
  const KeyEntry* current = txn->manifest.active(o.alg);
  KeyState state = o.state.value_or(current ? KeyState::next : KeyState::active);
  if (state == KeyState::active && current) {
    return fail(ErrorCode::keystore, o.alg + " already has an active key ('" + current->kid + "')",
                "add the new key as next, publish the JWKS, then: tokctl keys rotate --alg " + o.alg);
  }
  auto e = store_key(*this, txn->manifest, std::move(*key), o.kid, o.alg, state, now, passphrase);
  if (!e) return e;
  Manifest m = txn->manifest;
  if (state == KeyState::active) {
    for (auto& k : m.keys) {
      if (k.alg == o.alg && k.state == KeyState::active) {
        k.state = KeyState::retired;
        k.retired = now;
      }
    }
  }
  m.keys.push_back(*e);
  if (auto c = commit(*this, m); !c) return std::unexpected(c.error());
  return e;
}

Result<KeyEntry> Keystore::import(jose::Jwk key, const ImportOptions& o, const Passphrase& passphrase) {
  std::string alg_name = o.alg.empty() ? key.alg() : o.alg;
  if (alg_name.empty()) {
    return fail(ErrorCode::usage, "the key has no \"alg\"", "say which algorithm it is for with --alg");
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
  }
  if (o.state == KeyState::retired) return fail(ErrorCode::usage, "an imported key is next or active, not retired");
  auto txn = begin(*this);
  if (!txn) return std::unexpected(txn.error());
  if (auto p = passphrase_consistent(*this, txn->manifest, alg_name, passphrase); !p) return std::unexpected(p.error());
  UnixTime now = m_clock->now();
  const KeyEntry* current = txn->manifest.active(alg_name);
  KeyState state = o.state.value_or(current ? KeyState::next : KeyState::active);
  if (state == KeyState::active && current) {
    return fail(ErrorCode::keystore, alg_name + " already has an active key ('" + current->kid + "')",
                "import the key as next, publish the JWKS, then: tokctl keys rotate --alg " + alg_name);
  }
  auto e = store_key(*this, txn->manifest, std::move(key), o.kid, alg_name, state, now, passphrase);
  if (!e) return e;
  Manifest m = txn->manifest;
  if (state == KeyState::active) {
    for (auto& k : m.keys) {
      if (k.alg == alg_name && k.state == KeyState::active) {
        k.state = KeyState::retired;
        k.retired = now;
      }
    }
  }
  m.keys.push_back(*e);
  if (auto c = commit(*this, m); !c) return std::unexpected(c.error());
  return e;
}

Result<std::vector<RotateResult>> Keystore::rotate(const std::string& alg, bool force, const Passphrase& passphrase) {
  auto txn = begin(*this);
  if (!txn) return std::unexpected(txn.error());
  Manifest m = txn->manifest;
  std::vector<std::string> algs;
  for (const auto& e : m.keys) {
    if ((alg.empty() || e.alg == alg) && e.state != KeyState::retired &&
        std::find(algs.begin(), algs.end(), e.alg) == algs.end()) {
      algs.push_back(e.alg);
    }
  }
  if (algs.empty()) {
    if (alg.empty()) return fail(ErrorCode::keystore, "the keystore has no keys to rotate", "add one: tokctl keys add --alg ES256");
    if (!force) {
      return fail(ErrorCode::keystore, "no " + alg + " key to rotate", "add one: tokctl keys add --alg " + alg);
    }
    algs.push_back(alg);
  }
  UnixTime now = m_clock->now();
  // Refuse before changing anything if any alg lacks a published next key.
  for (const auto& a : algs) {
    bool has_next = std::any_of(m.keys.begin(), m.keys.end(),
                                [&](const KeyEntry& e) { return e.alg == a && e.state == KeyState::next; });
    if (!has_next && !force) {
      return fail(ErrorCode::keystore, "no next key for " + a + ": rotating now would sign with a key verifiers have never seen",
                  "add one and publish the JWKS first: tokctl keys add --alg " + a +
                      " && tokctl keys jwks --out jwks.json (or --force to rotate anyway)");
    }
    if (auto p = passphrase_consistent(*this, m, a, passphrase); !p) return std::unexpected(p.error());
  }
  std::vector<RotateResult> results;
  std::vector<KeyEntry> added;
  for (const auto& a : algs) {
    RotateResult r;
    r.alg = a;
    // Generate the replacement "next" with the parameters of the key it follows.
    jose::KeyGenOptions gen{a, std::nullopt, std::nullopt};
    for (const auto& e : m.keys) {
      if (e.alg == a && !e.public_jwk.empty() && e.state != KeyState::retired) {
        auto pk = jose::Jwk::from_json(json::parse(e.public_jwk));
        if (pk && pk->kty() == jose::KeyType::rsa) gen.bits = pk->bits();
        if (pk && (pk->kty() == jose::KeyType::okp || (pk->kty() == jose::KeyType::ec && !is_jws_alg(a)))) gen.crv = pk->crv();
      }
    }
    KeyEntry* next = nullptr;
    for (auto& e : m.keys)
      if (e.alg == a && e.state == KeyState::next && (!next || e.created < next->created)) next = &e;
    if (!next) {  // --force: a brand-new key goes straight to active
      auto fresh = jose::generate_key(gen);
      if (!fresh) return std::unexpected(fresh.error());
      auto e = store_key(*this, m, std::move(*fresh), "", a, KeyState::next, now, passphrase);
      if (!e) return std::unexpected(e.error());
      m.keys.push_back(*e);
      next = &m.keys.back();
    }
    for (auto& e : m.keys) {
      if (e.alg == a && e.state == KeyState::active) {
        e.state = KeyState::retired;
        e.retired = now;
        r.retired = e.kid;
      }
    }
    // `next` may dangle after push_back above only if it pointed elsewhere; re-find it by kid.
    std::string next_kid = next->kid;
    for (auto& e : m.keys) {
      if (e.kid == next_kid) {
        e.state = KeyState::active;
        e.activated = now;
      }
    }
    r.activated = next_kid;
    auto fresh = jose::generate_key(gen);
    if (!fresh) return std::unexpected(fresh.error());
    auto e = store_key(*this, m, std::move(*fresh), "", a, KeyState::next, now, passphrase);
    if (!e) return std::unexpected(e.error());
    m.keys.push_back(*e);
    r.added = e->kid;
    results.push_back(r);
  }
  if (auto c = commit(*this, m); !c) return std::unexpected(c.error());
  return results;
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

Result<std::vector<KeyEntry>> Keystore::prune(std::int64_t max_lifetime, std::int64_t grace) {
  auto txn = begin(*this);
  if (!txn) return std::unexpected(txn.error());
  UnixTime now = m_clock->now();
  Manifest m;
  m.format = txn->manifest.format;
  std::vector<KeyEntry> removed;
  for (const auto& e : txn->manifest.keys) {
    bool expired = e.state == KeyState::retired && e.retired && *e.retired + max_lifetime + grace <= now;
    (expired ? removed : m.keys).push_back(e);
  }
  if (removed.empty()) return removed;
  // Manifest first, files after: a crash in between leaves orphans, never a dangling entry.
  if (auto c = commit(*this, m); !c) return std::unexpected(c.error());
  for (const auto& e : removed) ::unlink((m_dir + "/keys/" + e.file_name()).c_str());
  return removed;
}

CheckReport Keystore::check(const Passphrase& passphrase) const {
  CheckReport r;
  auto dir_mode = check_mode(m_dir, 022, "keystore directory", "chmod 700");
  if (!dir_mode) r.problems.push_back(dir_mode.error().message + "; fix: " + dir_mode.error().hint);
  auto m = manifest();
  if (!m) {
    r.problems.push_back(m.error().message + (m.error().hint.empty() ? "" : "; fix: " + m.error().hint));
    return r;
  }
  std::set<std::string> named;
  std::map<std::string, int> active_per_alg;
  std::set<std::string> algs;
  for (const auto& e : m->keys) {
    named.insert(e.file_name());
    algs.insert(e.alg);
    if (e.state == KeyState::active) ++active_per_alg[e.alg];
    std::string path = m_dir + "/keys/" + e.file_name();
    if (::access(path.c_str(), F_OK) != 0) {
      r.problems.push_back("key '" + e.kid + "' is in the manifest but " + path +
                           " is missing; fix: restore the file from a backup, or retire and prune the key");
      continue;
    }
    if (auto mode = check_mode(path, 077, "key file", "chmod 600"); !mode) {
      r.problems.push_back(mode.error().message + "; fix: " + mode.error().hint);
      continue;
    }
    if (e.encrypted && !passphrase) {
      r.notes.push_back("key '" + e.kid + "' is encrypted at rest; pass the passphrase to check its contents");
      continue;
    }
    if (auto k = load(e, passphrase); !k) {
      r.problems.push_back(k.error().message + (k.error().hint.empty() ? "" : "; fix: " + k.error().hint));
    }
  }
  for (const auto& a : algs) {
    int n = active_per_alg[a];
    if (n == 0 && std::any_of(m->keys.begin(), m->keys.end(),
                              [&](const KeyEntry& e) { return e.alg == a && e.state != KeyState::retired; })) {
      r.problems.push_back("no active key for " + a + "; fix: tokctl keys rotate --alg " + a);
    } else if (n > 1) {
      r.problems.push_back(std::to_string(n) + " active keys for " + a + "; fix: tokctl keys retire KID for all but one");
    }
  }
  std::string keys_dir = m_dir + "/keys";
  if (DIR* d = ::opendir(keys_dir.c_str())) {
    while (dirent* ent = ::readdir(d)) {
      std::string name = ent->d_name;
      if (name == "." || name == ".." || named.count(name)) continue;
      r.notes.push_back("keys/" + name + " is not in the manifest (left by an interrupted write; the next "
                        "keystore write removes it)");
    }
    ::closedir(d);
  }
  return r;
}

}  // namespace tokctl::keys
