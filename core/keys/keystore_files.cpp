#include "keystore_files.hpp"

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <dirent.h>
#include <expected>
#include <fcntl.h>
#include <random>
#include <set>
#include <sys/stat.h>
#include <unistd.h>

#include <nlohmann/json.hpp>
#include <openssl/crypto.h>

#include <tokctl/jose/algorithm.hpp>
#include <tokctl/jose/digest.hpp>
#include <tokctl/jose/json.hpp>
#include <tokctl/jose/jwe.hpp>
#include <tokctl/util/base64.hpp>
#include <tokctl/util/io.hpp>
#include <tokctl/util/time.hpp>

namespace tokctl::keys::detail {
namespace {

using nlohmann::json;

std::string errno_text() { return std::strerror(errno); }

const char* file_type_name(mode_t mode) {
  if (S_ISDIR(mode)) return "a directory";
  if (S_ISFIFO(mode)) return "a FIFO";
  if (S_ISCHR(mode)) return "a character device";
  if (S_ISBLK(mode)) return "a block device";
  if (S_ISSOCK(mode)) return "a socket";
  if (S_ISLNK(mode)) return "a symbolic link";
  return "not a regular file";
}

// ssh's rule: a file that decides which keys are trusted belongs to the caller or to root.
Result<void> check_owner(const std::string& path, const struct stat& st, const FileRule& rule) {
  uid_t me = ::geteuid();
  if (st.st_uid == 0 || st.st_uid == me) return {};
  return fail(ErrorCode::keystore,
              std::string(rule.what) + " '" + path + "' is owned by uid " + std::to_string(st.st_uid) +
                  ", neither you (uid " + std::to_string(me) + ") nor root",
              "another user could have replaced the keys; check the content, then take it over: chown " +
                  std::to_string(me) + " '" + path + "'");
}

Result<void> check_mode_bits(const std::string& path, const struct stat& st, const FileRule& rule) {
  if ((st.st_mode & rule.forbidden) == 0) return {};
  char mode[8];
  std::snprintf(mode, sizeof mode, "%03o", static_cast<unsigned>(st.st_mode & 0777));
  return fail(ErrorCode::keystore, std::string(rule.what) + " '" + path + "' has mode " + mode + ", too open",
              std::string(rule.fix) + " '" + path + "'");
}

bool all_digits(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

const char* k_restore_hint = "restore keystore.json from a backup (no key file was touched); 'tokctl keys check' lists the key files";

Result<std::optional<std::string>> string_field(const json& j, const char* name, const std::string& where) {
  auto it = j.find(name);
  if (it == j.end() || it->is_null()) return std::nullopt;
  if (!it->is_string()) {
    return fail(ErrorCode::keystore, where + ": \"" + name + "\" must be a string, not " + jose::json_type_name(*it),
                k_restore_hint);
  }
  return it->get<std::string>();
}

Result<std::string> required_string(const json& j, const char* name, const std::string& where) {
  auto s = string_field(j, name, where);
  if (!s) return std::unexpected(s.error());
  if (!*s) return fail(ErrorCode::keystore, where + " lacks \"" + name + "\"", k_restore_hint);
  return std::move(**s);
}

Result<std::optional<UnixTime>> time_field(const json& j, const char* name, const std::string& where) {
  auto s = string_field(j, name, where);
  if (!s) return std::unexpected(s.error());
  if (!*s) return std::nullopt;
  auto t = parse_time(**s, 0);
  if (!t) return fail(ErrorCode::keystore, where + " has a bad \"" + name + "\" time", k_restore_hint);
  return std::optional<UnixTime>(*t);
}

// Private members of every key type (RFC 7518 §6.2.2, §6.3.2, §6.4.1; RFC 8037 §2).
constexpr const char* k_private_members[] = {"d", "p", "q", "dp", "dq", "qi", "oth", "k"};

enum class AlgKind { unknown, signature, encryption };

AlgKind alg_kind(std::string_view alg) {
  if (jose::alg_from_string(alg)) return AlgKind::signature;
  auto a = jose::key_mgmt_from_string(alg);
  if (a && *a != jose::KeyMgmtAlg::PBES2_HS256_A128KW && *a != jose::KeyMgmtAlg::PBES2_HS512_A256KW) {
    return AlgKind::encryption;
  }
  return AlgKind::unknown;
}

bool alg_is_symmetric(std::string_view alg) {
  if (auto a = jose::alg_from_string(alg)) return jose::is_symmetric(*a);
  auto k = jose::key_mgmt_from_string(alg);
  return k && (*k == jose::KeyMgmtAlg::A128KW || *k == jose::KeyMgmtAlg::A256KW || *k == jose::KeyMgmtAlg::dir);
}

Result<KeyEntry> entry_from_json(const json& j, const std::string& where) {
  if (!j.is_object()) return fail(ErrorCode::keystore, where + " is not an object", k_restore_hint);
  KeyEntry e;
  for (auto [name, field] : {std::pair{"kid", &e.kid}, {"alg", &e.alg}, {"use", &e.use}}) {
    auto v = required_string(j, name, where);
    if (!v) return std::unexpected(v.error());
    *field = std::move(*v);
  }
  std::string at = where + " ('" + e.kid + "')";
  if (!valid_kid(e.kid)) return fail(ErrorCode::keystore, where + " has an unsafe kid '" + e.kid + "'", k_restore_hint);
  if (e.use != "sig" && e.use != "enc") return fail(ErrorCode::keystore, at + " has use '" + e.use + "'", k_restore_hint);
  // The use follows from the alg (a keystore stores a key for one alg): a signature alg with use
  // "enc", or the reverse, is damage, and so is an alg tokctl never stores ("none", PBES2-*).
  const auto kind = alg_kind(e.alg);
  if (kind == AlgKind::unknown) {
    return fail(ErrorCode::keystore,
                at + " has alg '" + e.alg + "', which no keystore key can have",
                "set the entry's \"alg\" back to the algorithm the key was added for (tokctl keys list shows the "
                "others), or restore keystore.json from a backup");
  }
  const char* wanted_use = kind == AlgKind::encryption ? "enc" : "sig";
  if (e.use != wanted_use) {
    return fail(ErrorCode::keystore,
                at + " has use '" + e.use + "', but " + e.alg + " is " +
                    (kind == AlgKind::encryption ? "an encryption (JWE)" : "a signature (JWS)") + " alg",
                std::string("set the entry's \"use\" back to \"") + wanted_use +
                    "\", or restore keystore.json from a backup");
  }
  auto state = required_string(j, "state", at);
  if (!state) return std::unexpected(state.error());
  auto st = key_state_from_string(*state);
  if (!st) return fail(ErrorCode::keystore, at + " has an unknown state '" + *state + "'", k_restore_hint);
  e.state = *st;
  auto created = time_field(j, "created", at);
  if (!created) return std::unexpected(created.error());
  if (!*created) return fail(ErrorCode::keystore, at + " lacks \"created\"", k_restore_hint);
  e.created = **created;
  for (auto [name, field] : {std::pair{"activated", &e.activated}, {"retired", &e.retired}, {"published", &e.published}}) {
    auto t = time_field(j, name, at);
    if (!t) return std::unexpected(t.error());
    *field = *t;
  }
  if (auto it = j.find("encrypted"); it != j.end() && !it->is_null()) {
    if (!it->is_boolean()) {
      return fail(ErrorCode::keystore, at + ": \"encrypted\" must be true or false, not " + jose::json_type_name(*it),
                  k_restore_hint);
    }
    e.encrypted = it->get<bool>();
  }
  auto tp = required_string(j, "thumbprint", at);
  if (!tp) return std::unexpected(tp.error());
  if (tp->empty()) return fail(ErrorCode::keystore, at + " has an empty \"thumbprint\"", k_restore_hint);
  e.thumbprint = std::move(*tp);
  if (auto it = j.find("jwk"); it != j.end() && !it->is_null()) {
    if (!it->is_object()) {
      return fail(ErrorCode::keystore, at + ": \"jwk\" must be an object, not " + jose::json_type_name(*it), k_restore_hint);
    }
    // The manifest is not secret (it may be readable by others): a private member in its public
    // key is damage, and nothing that prints the manifest may ever see it.
    for (const char* member : k_private_members) {
      if (it->contains(member)) {
        return fail(ErrorCode::keystore,
                    at + ": the public \"jwk\" holds the private member \"" + member +
                        "\"; keystore.json must hold public keys only",
                    "restore keystore.json from a backup, or delete the private members (d, p, q, dp, dq, qi, oth, "
                    "k) from that entry's \"jwk\" and run tokctl keys check; anyone who could read keystore.json "
                    "may have had the private key: rotate it");
      }
    }
    e.public_jwk = it->dump();
  }
  // Public keys are listed for asymmetric algs only (HMAC and AES secrets have no public part).
  if (alg_is_symmetric(e.alg) != e.public_jwk.empty()) {
    return fail(ErrorCode::keystore,
                at + (e.public_jwk.empty() ? " has no public \"jwk\", but " + e.alg + " keys are asymmetric"
                                           : " has a \"jwk\", but " + e.alg + " keys are secrets with no public part"),
                k_restore_hint);
  }
  return e;
}

json entry_to_json(const KeyEntry& e) {
  auto t = [](const std::optional<UnixTime>& v) { return v ? json(format_rfc3339(*v)) : json(); };
  json j{{"kid", e.kid},
         {"alg", e.alg},
         {"use", e.use},
         {"state", to_string(e.state)},
         {"created", format_rfc3339(e.created)},
         {"activated", t(e.activated)},
         {"retired", t(e.retired)},
         {"published", t(e.published)},
         {"encrypted", e.encrypted},
         {"thumbprint", e.thumbprint}};
  if (!e.public_jwk.empty()) j["jwk"] = json::parse(e.public_jwk);
  return j;
}

Result<PendingDeletion> pending_from_json(const json& j, const std::string& where) {
  if (!j.is_object()) return fail(ErrorCode::keystore, where + " is not an object", k_restore_hint);
  PendingDeletion p;
  for (auto [name, field] : {std::pair{"kid", &p.kid}, {"file", &p.file}, {"sha256", &p.sha256}}) {
    auto v = required_string(j, name, where);
    if (!v) return std::unexpected(v.error());
    *field = std::move(*v);
  }
  if (!valid_kid(p.kid) || (p.file != p.kid + ".jwk" && p.file != p.kid + ".jwe")) {
    return fail(ErrorCode::keystore, where + " names an unsafe file '" + p.file + "'", k_restore_hint);
  }
  return p;
}

}  // namespace

Result<std::string> read_keystore_file(const std::string& path, const FileRule& rule) {
  int fd = ::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
  if (fd < 0) {
    int err = errno;
    struct stat lst{};
    if (err == ENOENT && ::lstat(path.c_str(), &lst) == 0 && S_ISLNK(lst.st_mode)) {
      return fail(ErrorCode::keystore, std::string(rule.what) + " '" + path + "' is a symbolic link to a missing file",
                  "point the link at the real file, or restore the file from a backup");
    }
    if (err == ELOOP) {
      return fail(ErrorCode::keystore, std::string(rule.what) + " '" + path + "' is a symbolic link loop",
                  "replace the link with the real file, or restore it from a backup");
    }
    return fail(ErrorCode::keystore, "cannot open " + std::string(rule.what) + " '" + path + "': " + std::strerror(err),
                err == EACCES ? "run as the keystore's owner" : "restore the file from a backup");
  }
  struct stat st{};
  Result<std::string> out = std::string();
  if (::fstat(fd, &st) != 0) {
    out = fail(ErrorCode::keystore, "cannot stat " + std::string(rule.what) + " '" + path + "': " + errno_text());
  } else if (!S_ISREG(st.st_mode)) {
    out = fail(ErrorCode::keystore,
               std::string(rule.what) + " '" + path + "' is " + file_type_name(st.st_mode) + ", not a regular file",
               "replace it with the real file (restore it from a backup)");
  } else if (auto o = check_owner(path, st, rule); !o) {
    out = std::unexpected(o.error());
  } else if (auto m = check_mode_bits(path, st, rule); !m) {
    out = std::unexpected(m.error());
  } else {
    char buf[16384];
    for (;;) {
      ssize_t n = ::read(fd, buf, sizeof buf);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) {
        out = fail(ErrorCode::keystore, "cannot read " + std::string(rule.what) + " '" + path + "': " + errno_text());
        break;
      }
      if (n == 0) break;
      if (out->size() + static_cast<std::size_t>(n) > k_max_input_bytes) {
        out = fail(ErrorCode::keystore, std::string(rule.what) + " '" + path + "' is larger than 1 MiB");
        break;
      }
      out->append(buf, static_cast<std::size_t>(n));
    }
    ::memset(buf, 0, sizeof buf);
  }
  ::close(fd);
  return out;
}

Result<void> check_directory(const std::string& path, const FileRule& rule) {
  struct stat st{};
  if (::stat(path.c_str(), &st) != 0) {
    return fail(ErrorCode::keystore, "cannot stat " + std::string(rule.what) + " '" + path + "': " + errno_text());
  }
  if (!S_ISDIR(st.st_mode)) {
    return fail(ErrorCode::keystore, std::string(rule.what) + " '" + path + "' is not a directory",
                "a keystore is a directory, not a file in it");
  }
  if (auto o = check_owner(path, st, rule); !o) return o;
  return check_mode_bits(path, st, rule);
}

namespace {

// The names in `dir`, sorted; errno (ENOENT: no such directory) when it cannot be opened.
std::expected<std::vector<std::string>, int> read_dir(const std::string& dir) {
  std::vector<std::string> out;
  DIR* d = ::opendir(dir.c_str());
  if (!d) return std::unexpected(errno);
  errno = 0;
  while (dirent* ent = ::readdir(d)) {
    std::string name = ent->d_name;
    if (name != "." && name != "..") out.push_back(std::move(name));
  }
  const int err = errno;
  ::closedir(d);
  if (err != 0) return std::unexpected(err);
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace

std::vector<std::string> list_dir(const std::string& dir) { return read_dir(dir).value_or(std::vector<std::string>{}); }

Result<std::vector<std::string>> key_files(const std::string& dir) {
  const std::string keys_dir = dir + "/keys";
  auto names = read_dir(keys_dir);
  if (!names) {
    if (names.error() == ENOENT) return std::vector<std::string>{};
    return fail(ErrorCode::keystore, "cannot list '" + keys_dir + "': " + std::strerror(names.error()),
                "the key files' directory must be readable by the keystore's owner (chmod 700 '" + keys_dir + "')");
  }
  std::vector<std::string> out;
  for (auto& name : *names)
    if (!is_temp_name(name, nullptr)) out.push_back(std::move(name));
  return out;
}

bool is_temp_name(std::string_view name, pid_t* pid) {
  auto pos = name.rfind(".tmp.");
  if (pos == std::string_view::npos) return false;
  std::string_view base = name.substr(0, pos);
  std::string_view rest = name.substr(pos + 5);
  auto dot = rest.find('.');
  if (dot == std::string_view::npos || !all_digits(rest.substr(0, dot)) || !all_digits(rest.substr(dot + 1))) {
    return false;
  }
  std::string_view pid_text = rest.substr(0, dot);
  if (pid_text.size() > 9) return false;
  bool ours = base == k_manifest || base == k_pairwise_secret_file;
  if (!ours && base.size() > 4 && (base.ends_with(".jwk") || base.ends_with(".jwe"))) {
    ours = valid_kid(base.substr(0, base.size() - 4));
  }
  if (!ours) return false;
  if (pid) *pid = static_cast<pid_t>(std::stol(std::string(pid_text)));
  return true;
}

void remove_stale_temp_files(const std::string& dir) {
  for (const std::string& sub : {dir, dir + "/keys"}) {
    for (const auto& name : list_dir(sub)) {
      pid_t pid = 0;
      if (!is_temp_name(name, &pid)) continue;
      if (pid > 0 && (::kill(pid, 0) == 0 || errno == EPERM)) continue;  // its writer may still run
      std::string path = sub + "/" + name;
      struct stat st{};
      if (::lstat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode)) ::unlink(path.c_str());
    }
  }
}

Result<std::optional<std::string>> read_pairwise_secret(const std::string& dir,
                                                        const std::optional<SecretRecord>& record) {
  const std::string path = dir + "/" + k_pairwise_secret_file;
  const std::string since = record ? " (created " + format_rfc3339(record->created) + ")" : std::string();
  const std::string start_over =
      "; only if it is lost for good, start over with new pairwise subjects (every pairwise sub changes, and "
      "revoking by subject no longer reaches older tokens): ";
  const std::string forget = "delete \"pairwise_secret\" from keystore.json";
  struct stat st{};
  if (::lstat(path.c_str(), &st) != 0 && errno == ENOENT) {
    if (!record) return std::optional<std::string>();
    return fail(ErrorCode::keystore,
                "pairwise-subject secret '" + path + "' is missing, but keystore.json records it" + since +
                    ": a new secret would change every pairwise subject, so none is made",
                "restore ppid.secret from a backup of the keystore (keystore.json holds its SHA-256; tokctl keys "
                "check compares it)" + start_over + forget);
  }
  auto text = read_keystore_file(path, k_secret_rule);
  if (!text) return std::unexpected(text.error());
  std::string problem;
  if (text->size() != k_pairwise_secret_bytes) {
    problem = "is " + std::to_string(text->size()) + " bytes long, not " + std::to_string(k_pairwise_secret_bytes) +
              " (truncated, or not made by tokctl)";
  } else if (record && sha256_b64url(*text) != record->sha256) {
    problem = "is not the secret keystore.json records" + since + " (replaced or corrupted)";
  }
  if (!problem.empty()) {
    OPENSSL_cleanse(text->data(), text->size());
    return fail(ErrorCode::keystore, "pairwise-subject secret '" + path + "' " + problem,
                "restore ppid.secret from a backup of the keystore" + start_over + "move the file away" +
                    (record ? " and " + forget : std::string()));
  }
  return std::optional<std::string>(std::move(*text));
}

Result<void> refuse_symlinked_manifest(const std::string& dir) {
  const std::string path = dir + "/" + k_manifest;
  struct stat st{};
  if (::lstat(path.c_str(), &st) != 0 || !S_ISLNK(st.st_mode)) return {};
  std::string target(4096, '\0');
  ssize_t n = ::readlink(path.c_str(), target.data(), target.size());
  target.resize(n > 0 ? static_cast<std::size_t>(n) : 0);
  return fail(ErrorCode::keystore,
              "keystore manifest '" + path + "' is a symbolic link" + (target.empty() ? "" : " (to '" + target + "')") +
                  ": not writing, since replacing the manifest would replace the link and leave its target stale",
              "replace the link with a copy of the file it points to (cp \"$(readlink -f '" + path + "')\" '" + path +
                  ".copy' && mv '" + path + ".copy' '" + path + "'), then repeat the command");
}

std::string sha256_b64url(std::string_view data) { return b64url_encode(jose::sha256(data)); }

std::string manifest_text(const Manifest& m) {
  json keys = json::array();
  for (const auto& e : m.keys) keys.push_back(entry_to_json(e));
  json doc{{"format", m.format}, {"keys", keys}};
  if (m.pairwise_secret) {
    doc["pairwise_secret"] = {{"file", k_pairwise_secret_file},
                              {"created", format_rfc3339(m.pairwise_secret->created)},
                              {"sha256", m.pairwise_secret->sha256}};
  }
  if (!m.pruned.empty()) {
    json pruned = json::array();
    for (const auto& p : m.pruned) pruned.push_back({{"kid", p.kid}, {"file", p.file}, {"sha256", p.sha256}});
    doc["pruned"] = pruned;
  }
  return doc.dump(2) + "\n";
}

Result<Manifest> parse_manifest(std::string_view text, const std::string& path) {
  auto j = jose::parse_json_object(text, "keystore manifest", jose::JsonLimits{k_max_input_bytes, 64});
  if (!j) return fail(ErrorCode::keystore, "'" + path + "': " + j.error().message, k_restore_hint);
  Manifest m;
  auto fmt = j->find("format");
  auto format = jose::integer_member(*j, "format");
  if (fmt == j->end() || !format) {
    return fail(ErrorCode::keystore,
                "'" + path + "' has " +
                    (fmt == j->end() ? std::string("no \"format\"")
                                     : "a \"format\" that is not an integer (" + jose::json_type_name(*fmt) + ")"),
                k_restore_hint);
  }
  if (*format != k_format) {
    return fail(ErrorCode::keystore, "'" + path + "' has format " + std::to_string(*format) +
                                         ", this tokctl reads format " + std::to_string(k_format),
                "use the tokctl that wrote it, or restore keystore.json from a backup");
  }
  m.format = k_format;
  auto keys = j->find("keys");
  if (keys == j->end() || !keys->is_array()) {
    return fail(ErrorCode::keystore, "'" + path + "' has no \"keys\" array", k_restore_hint);
  }
  std::set<std::string> seen;
  std::size_t index = 0;
  for (const auto& kj : *keys) {
    auto e = entry_from_json(kj, "'" + path + "': key entry " + std::to_string(index++));
    if (!e) return std::unexpected(e.error());
    if (!seen.insert(e->kid).second) {
      return fail(ErrorCode::keystore, "'" + path + "' lists kid '" + e->kid + "' twice", k_restore_hint);
    }
    // One key is stored once (add and import refuse a second copy under another kid).
    for (const auto& other : m.keys) {
      if (other.thumbprint == e->thumbprint) {
        return fail(ErrorCode::keystore,
                    "'" + path + "': keys '" + other.kid + "' and '" + e->kid + "' have the same thumbprint",
                    k_restore_hint);
      }
    }
    m.keys.push_back(std::move(*e));
  }
  if (auto ps = j->find("pairwise_secret"); ps != j->end() && !ps->is_null()) {
    const std::string where = "'" + path + "': \"pairwise_secret\"";
    if (!ps->is_object()) {
      return fail(ErrorCode::keystore, where + " must be an object, not " + jose::json_type_name(*ps), k_restore_hint);
    }
    auto file = required_string(*ps, "file", where);
    if (!file) return std::unexpected(file.error());
    if (*file != k_pairwise_secret_file) {
      return fail(ErrorCode::keystore, where + " names the file '" + *file + "', not " + k_pairwise_secret_file,
                  k_restore_hint);
    }
    auto created = time_field(*ps, "created", where);
    if (!created) return std::unexpected(created.error());
    if (!*created) return fail(ErrorCode::keystore, where + " lacks \"created\"", k_restore_hint);
    auto sha = required_string(*ps, "sha256", where);
    if (!sha) return std::unexpected(sha.error());
    if (sha->size() != 43) return fail(ErrorCode::keystore, where + " has a malformed \"sha256\"", k_restore_hint);
    m.pairwise_secret = SecretRecord{**created, std::move(*sha)};
  }
  if (auto pr = j->find("pruned"); pr != j->end() && !pr->is_null()) {
    if (!pr->is_array()) {
      return fail(ErrorCode::keystore, "'" + path + "': \"pruned\" must be an array, not " + jose::json_type_name(*pr),
                  k_restore_hint);
    }
    index = 0;
    for (const auto& pj : *pr) {
      auto p = pending_from_json(pj, "'" + path + "': pruned entry " + std::to_string(index++));
      if (!p) return std::unexpected(p.error());
      m.pruned.push_back(std::move(*p));
    }
  }
  return m;
}

}  // namespace tokctl::keys::detail

namespace tokctl::keys {

Result<void> write_output_file(const std::string& path, std::string_view data, unsigned mode, Overwrite overwrite) {
  if (overwrite == Overwrite::yes) {
    // Replacing means renaming a new file over the name: right for a file (or a link to one), never
    // for a device, FIFO or socket, which would stop being one (--out /dev/null --force as root
    // would replace the system's /dev/null), nor for a directory.
    struct stat st{};
    if (::lstat(path.c_str(), &st) == 0 && !S_ISREG(st.st_mode) && !S_ISLNK(st.st_mode)) {
      return fail(ErrorCode::usage,
                  "'" + path + "' is " + (S_ISDIR(st.st_mode) ? "a directory" : "not a regular file (a device, FIFO or socket)") +
                      "; only a file is ever replaced",
                  "name a file, or write to standard output");
    }
    return write_file_atomic(path, data, mode);
  }
  auto exists = [&] {
    return fail_remedy(ErrorCode::usage, "'" + path + "' already exists; not replacing it",
                       "choose another file, or replace it", Remedy::force_overwrite);
  };
  struct stat st{};
  if (::lstat(path.c_str(), &st) == 0) return exists();
  // Written completely under a temp name, then linked into place: link(2) never replaces a file.
  std::random_device rd;
  std::string tmp = path + ".tmp." + std::to_string(::getpid()) + "." + std::to_string(rd());
  if (auto w = write_file_atomic(tmp, data, mode); !w) {
    // Named as the file asked for: its temporary name means nothing to the user.
    for (auto p = w.error().message.find(tmp); p != std::string::npos; p = w.error().message.find(tmp)) {
      w.error().message.replace(p, tmp.size(), path);
    }
    return w;
  }
  int rc = ::link(tmp.c_str(), path.c_str());
  int err = errno;
  if (rc != 0 && (err == EPERM || err == ENOTSUP || err == EXDEV)) {
    // No hard links on this file system: rename after a fresh check (a narrow race remains).
    if (::lstat(path.c_str(), &st) == 0) {
      ::unlink(tmp.c_str());
      return exists();
    }
    rc = ::rename(tmp.c_str(), path.c_str());
    err = errno;
  }
  ::unlink(tmp.c_str());
  if (rc != 0) {
    if (err == EEXIST) return exists();
    return fail(ErrorCode::keystore, "cannot create '" + path + "': " + std::strerror(err));
  }
  return {};
}

}  // namespace tokctl::keys
