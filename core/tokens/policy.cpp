#include <tokctl/tokens/policy.hpp>

#include <algorithm>
#include <functional>
#include <map>
#include <set>
#include <sstream>

#include <yaml-cpp/depthguard.h>
#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/yaml.h>

#include <tokctl/jose/algorithm.hpp>
#include <tokctl/jose/jwk.hpp>
#include <tokctl/util/base64.hpp>
#include <tokctl/util/io.hpp>
#include <tokctl/util/time.hpp>
#include <tokctl/util/utf8.hpp>

#include "policy_reader.hpp"

namespace tokctl::tokens {
namespace {

using nlohmann::json;
using detail::Reader;
using detail::one_of;
using detail::relative_to;

// Claims the issuer sets itself (RFC 7519, RFC 9068, and sid = the grant) cannot be configured.
void check_reserved(Reader& r, const YAML::Node& claims, const std::string& what) {
  static const std::set<std::string> reserved = {"iss", "sub", "aud", "exp", "nbf", "iat", "jti",
                                                 "client_id", "scope", "sid", "cnf"};
  for (const auto& kv : claims) {
    const auto name = kv.first.as<std::string>();
    if (reserved.count(name)) {
      r.problem(kv.first, "claim '" + name + "' in " + what + " is set by the issuer and cannot be configured");
    }
  }
}

// The policy's claim templates name only what render_claims() knows: {{sub}}, {{client_id}},
// {{scope}} and {{subject.ATTR}}. Anything else (a typo, "{{ sub }}") would render as nothing in
// every token: a problem here, never a silent empty claim.
void check_templates(Reader& r, const YAML::Node& node, const std::string& what) {
  if (node.IsMap()) {
    for (const auto& kv : node) check_templates(r, kv.second, what);
  } else if (node.IsSequence()) {
    for (const auto& v : node) check_templates(r, v, what);
  } else if (node.IsScalar()) {
    const std::string& text = node.Scalar();
    for (std::size_t open = text.find("{{"); open != std::string::npos; open = text.find("{{", open + 2)) {
      const std::size_t close = text.find("}}", open + 2);
      if (close == std::string::npos) break;
      const std::string name = text.substr(open + 2, close - open - 2);
      const bool known = name == "sub" || name == "client_id" || name == "scope" ||
                         (name.size() > 8 && name.starts_with("subject."));
      if (!known) {
        r.problem(node, what + ": unknown template variable '{{" + name +
                            "}}' (known: {{sub}}, {{client_id}}, {{scope}}, {{subject.ATTR}})");
      }
    }
  }
}

// A yaml-cpp message with control characters and stray bytes shown as \xNN (an unknown escape
// character is quoted raw, even a newline or half of a UTF-8 sequence).
std::string printable(const std::string& msg) {
  std::string out;
  for (std::size_t i = 0; i < msg.size();) {
    const auto c = static_cast<unsigned char>(msg[i]);
    unsigned cp = 0;
    const std::size_t len = c < 0x80 ? 1 : utf8_sequence(msg, i, cp);
    if (len > 1 || (len == 1 && c >= 0x20 && c != 0x7f)) {
      out.append(msg, i, len);
      i += len;
    } else {
      out += "\\x" + hex_encode(std::string_view(msg).substr(i, 1));
      ++i;
    }
  }
  return out;
}

std::string at(const std::string& file, const YAML::Mark& m) {
  if (m.is_null() || m.line < 0) return file;
  return file + ":" + std::to_string(m.line + 1) + ":" + std::to_string(m.column + 1);
}

// yaml-cpp reads UTF-16 and UTF-32 too (a BOM, or NUL bytes among the first four); the NUL check
// below is for UTF-8 text only.
bool utf8_stream(const std::string& text) {
  if (text.starts_with("\xFE\xFF") || text.starts_with("\xFF\xFE")) return false;
  return text.substr(0, 4).find('\0') == std::string::npos;
}

// Where the first content of a YAML document after the first one is (empty documents, such as a
// trailing "---", do not count).
class LaterDocuments : public YAML::EventHandler {
 public:
  std::optional<YAML::Mark> content;

  void OnDocumentStart(const YAML::Mark& /*mark*/) override { ++m_documents; }
  void OnDocumentEnd() override {}
  void OnNull(const YAML::Mark& /*mark*/, YAML::anchor_t /*anchor*/) override {}
  void OnAlias(const YAML::Mark& mark, YAML::anchor_t /*anchor*/) override { seen(mark); }
  void OnScalar(const YAML::Mark& mark, const std::string& /*tag*/, YAML::anchor_t /*anchor*/,
                const std::string& /*value*/) override {
    seen(mark);
  }
  void OnSequenceStart(const YAML::Mark& mark, const std::string& /*tag*/, YAML::anchor_t /*anchor*/,
                       YAML::EmitterStyle::value /*style*/) override {
    seen(mark);
  }
  void OnSequenceEnd() override {}
  void OnMapStart(const YAML::Mark& mark, const std::string& /*tag*/, YAML::anchor_t /*anchor*/,
                  YAML::EmitterStyle::value /*style*/) override {
    seen(mark);
  }
  void OnMapEnd() override {}

 private:
  void seen(const YAML::Mark& mark) {
    if (m_documents > 1 && !content) content = mark;
  }
  int m_documents = 0;
};

// The position of a second YAML document with content, if the text has one. Not YAML::LoadAll:
// it never returns on some inputs that yaml-cpp reads as UTF-16/32 (its parser reports a document
// without consuming input; fuzz_policy found one in 12 bytes). Every document after the first
// starts at a "---" or after a "..." at the start of a line (a leading "---" opens the first), so
// a UTF-8 text without one holds one document and is not parsed twice; and no text holds more
// than one document per 3 bytes: that bounds the loop.
std::optional<YAML::Mark> later_document(const std::string& text) {
  if (utf8_stream(text) && text.find("\n---") == std::string::npos && text.find("\n...") == std::string::npos &&
      !text.starts_with("...")) {
    return std::nullopt;
  }
  std::istringstream in(text);
  YAML::Parser parser(in);
  LaterDocuments later;
  const std::size_t max_documents = text.size() / 3 + 2;
  for (std::size_t i = 0; i < max_documents && !later.content && parser.HandleNextDocument(later); ++i) {
  }
  return later.content;
}

// Parses YAML text read from `file` and vets it (Reader::vet): a syntax error or a document that
// cannot be read safely becomes "file:line:column: message" problems and nullopt; problems that
// do not stop the reading (duplicate keys) are added and the document returned.
std::optional<YAML::Node> parse_yaml(const std::string& file, const std::string& text, std::vector<std::string>& problems) {
  // YAML forbids NUL; yaml-cpp reads one as the end of the input or an "unknown escape character".
  if (auto nul = text.find('\0'); nul != std::string::npos && utf8_stream(text)) {
    const auto line_start = text.rfind('\n', nul) == std::string::npos ? 0 : text.rfind('\n', nul) + 1;
    const auto line = std::count(text.begin(), text.begin() + static_cast<std::ptrdiff_t>(nul), '\n') + 1;
    const auto column = std::count_if(text.begin() + static_cast<std::ptrdiff_t>(line_start),
                                      text.begin() + static_cast<std::ptrdiff_t>(nul),
                                      [](char c) { return (static_cast<unsigned char>(c) & 0xC0) != 0x80; }) + 1;
    problems.push_back(file + ":" + std::to_string(line) + ":" + std::to_string(column) +
                       ": a NUL byte, which YAML text cannot hold");
    return std::nullopt;
  }
  YAML::Node doc;
  std::optional<YAML::Mark> second;
  try {
    doc = YAML::Load(text);
    second = later_document(text);
  } catch (const YAML::DeepRecursion& e) {
    problems.push_back(at(file, e.mark) + ": mappings and lists nest too deeply (the limit is " +
                       std::to_string(detail::k_max_yaml_depth) + " levels)");
    return std::nullopt;
  } catch (const YAML::ParserException& e) {
    problems.push_back(at(file, e.mark) + ": " + printable(e.msg));
    return std::nullopt;
  }
  // A second document (after ---) would be ignored: a pasted file or a stray separator.
  if (second) {
    problems.push_back(at(file, *second) + ": a second YAML document (after ---); the file must hold one");
    return std::nullopt;
  }
  Reader r(file);
  const bool ok = r.vet(doc);
  problems.insert(problems.end(), r.problems().begin(), r.problems().end());
  if (!ok) return std::nullopt;
  return doc;
}

// An issuer is an http(s) URL with a host and no query or fragment (RFC 8414 §2, OIDC Discovery).
bool issuer_url(const std::string& s) {
  std::string_view rest;
  if (s.rfind("https://", 0) == 0) rest = std::string_view(s).substr(8);
  else if (s.rfind("http://", 0) == 0) rest = std::string_view(s).substr(7);
  else return false;
  auto host_end = rest.find_first_of("/:");
  if (host_end == 0 || rest.empty()) return false;
  return std::none_of(s.begin(), s.end(), [](char c) {
    return c == '?' || c == '#' || static_cast<unsigned char>(c) <= 0x20 || c == 0x7f;
  });
}

void read_kind(Reader& r, const YAML::Node& n, const std::string& what, TokenKindPolicy& k,
               std::initializer_list<const char*> formats, bool has_rotate) {
  if (has_rotate ? !r.mapping(n, what, {"format", "ttl", "rotate"}) : !r.mapping(n, what, {"format", "ttl"})) return;
  if (auto f = n["format"]) {
    if (auto s = r.string(f, what + ".format")) {
      if (!one_of(*s, formats)) {
        std::string list;
        for (const char* x : formats) list += (list.empty() ? "" : ", ") + std::string(x);
        r.problem(f, what + ".format '" + *s + "' is not one of " + list);
      } else {
        k.format = *s;
      }
    }
  }
  if (auto t = n["ttl"]) {
    if (auto d = r.duration(t, what + ".ttl")) k.ttl = *d;
  }
  if (auto ro = n["rotate"]) {
    if (auto b = r.boolean(ro, what + ".rotate")) k.rotate = *b;
  }
}

}  // namespace

namespace detail {
namespace {

// Reader::vet's walk: every node as the readers would see it, aliases expanded, within budget.
class Vetter {
 public:
  explicit Vetter(Reader& r) : m_r(r) {}

  // `at` is where a problem with `n` is reported: the key for a mapping's value (an alias node
  // carries its anchor's position, the key says where it is used).
  void walk(const YAML::Node& n, const YAML::Node& at, int depth) {
    if (m_stop) return;
    if (++m_values > k_max_yaml_values) {
      stop(at, "with its aliases (*name) expanded, the document holds more than " + std::to_string(k_max_yaml_values) +
                   " values; aliases must not multiply the content (is this a \"billion laughs\" file?)");
      return;
    }
    switch (n.Type()) {
      case YAML::NodeType::Scalar:
        scalar(n);
        return;
      case YAML::NodeType::Map:
      case YAML::NodeType::Sequence:
        break;
      default:
        return;
    }
    for (const auto& open : m_open) {
      if (open.is(n)) {
        stop(at, "an alias (*name) refers to a mapping or list that contains it, which makes it endless");
        return;
      }
    }
    if (depth >= k_max_yaml_depth) {
      stop(at, "mappings and lists nest deeper than " + std::to_string(k_max_yaml_depth) + " levels");
      return;
    }
    m_open.push_back(n);
    if (n.IsSequence()) {
      for (const auto& item : n) walk(item, item, depth + 1);
    } else {
      std::map<std::string, YAML::Mark> keys;
      for (const auto& kv : n) {
        const YAML::Node& key = kv.first;
        if (key.IsMap() || key.IsSequence()) {
          problem(key, std::string("a key must be a string, not a ") + (key.IsMap() ? "mapping" : "list"), true);
          continue;
        }
        walk(key, key, depth + 1);
        if (m_stop) break;
        const std::string name = key.IsNull() ? "null" : key.Scalar();
        if (valid_utf8(name)) {
          auto [first, fresh] = keys.emplace(name, key.Mark());
          if (!fresh) {
            problem(key, "duplicate key '" + name + "' (first at line " + std::to_string(first->second.line + 1) +
                             "); YAML keeps only one of them", false);
          }
        }
        walk(kv.second, key, depth + 1);
      }
    }
    m_open.pop_back();
  }

  bool fatal() const { return m_fatal; }

 private:
  void scalar(const YAML::Node& n) {
    const std::string& s = n.Scalar();
    m_bytes += s.size();
    if (m_bytes > k_max_yaml_scalar_bytes) {
      stop(n, "with its aliases (*name) expanded, the document holds more than " +
                  std::to_string(k_max_yaml_scalar_bytes) + " bytes of text; aliases must not multiply the content");
      return;
    }
    if (auto bad = utf8_error_offset(s); bad != s.size()) {
      problem(n, "text that is not UTF-8 (byte 0x" + hex_encode(std::string_view(s).substr(bad, 1)) + " at offset " +
                     std::to_string(bad) + " of the string); claims and settings must be UTF-8",
              true);
    }
  }

  // Through aliases one node is walked many times: each problem is reported once.
  void problem(const YAML::Node& at, const std::string& msg, bool fatal) {
    m_fatal = m_fatal || fatal;
    const std::string p = m_r.where(at) + ": " + msg;
    if (!m_seen.insert(p).second) return;
    if (m_seen.size() > k_max_problems) {
      m_r.problems().push_back(m_r.file() + ": more than " + std::to_string(k_max_problems) +
                               " problems; stopped checking");
      m_stop = m_fatal = true;  // the rest is unchecked: it must not be read
      return;
    }
    m_r.problems().push_back(p);
  }

  void stop(const YAML::Node& at, const std::string& msg) {
    problem(at, msg, true);
    m_stop = true;
  }

  static constexpr std::size_t k_max_problems = 100;
  Reader& m_r;
  std::size_t m_values = 0;
  std::size_t m_bytes = 0;
  bool m_fatal = false;
  bool m_stop = false;
  std::vector<YAML::Node> m_open;  // the mappings and lists being walked
  std::set<std::string> m_seen;
};

}  // namespace

bool Reader::vet(const YAML::Node& root) {
  Vetter v(*this);
  v.walk(root, root, 0);
  return !v.fatal();
}

}  // namespace detail

bool ScopeRule::matches(std::string_view scope) const {
  if (!name.empty()) return scope == name;
  return !prefix.empty() && scope.size() > prefix.size() && scope.substr(0, prefix.size()) == prefix;
}

// The most specific rule: a name rule before any prefix rule, a longer prefix before a shorter one
// (video_stream_ before video_), whatever their order in the file. First-match let a broad prefix
// listed first hide a narrower rule's claims and TTL without a word.
const ScopeRule* Policy::scope_rule(std::string_view scope) const {
  const ScopeRule* best = nullptr;
  for (const auto& s : scopes) {
    if (!s.matches(scope)) continue;
    if (!s.name.empty()) return &s;
    if (!best || s.prefix.size() > best->prefix.size()) best = &s;
  }
  return best;
}

// Allowed by name, or by the prefix of any prefix rule the scope matches (a client allowed video_
// may have video_stream_1 too, though video_stream_ is the rule that applies to it).
bool Policy::scope_listed(const std::vector<std::string>& allowed, std::string_view scope) const {
  return std::any_of(allowed.begin(), allowed.end(), [&](const std::string& a) {
    if (a == scope) return true;
    return std::any_of(scopes.begin(), scopes.end(),
                       [&](const ScopeRule& s) { return !s.prefix.empty() && s.prefix == a && s.matches(scope); });
  });
}

const ClientPolicy* Policy::client(std::string_view client_id) const {
  auto it = clients.find(std::string(client_id));
  return it == clients.end() ? nullptr : &it->second;
}

namespace {

// profiles: name -> {server, client_id, client_secret_file | client_secret_env, auth_method, ...}.
void read_profiles(Reader& r, const YAML::Node& node, const std::string& path, Policy& p) {
  if (!node.IsMap()) {
    r.problem(node, "profiles must be a mapping of profile name to server settings");
    return;
  }
  for (const auto& kv : node) {
    RemoteProfile prof;
    prof.name = kv.first.as<std::string>();
    const YAML::Node& n = kv.second;
    if (n.IsMap() && n["client_secret"]) {
      r.problem(n["client_secret"], "profile '" + prof.name +
                                        "': a secret does not belong in the policy file; use client_secret_file "
                                        "or client_secret_env");
      continue;
    }
    if (!r.mapping(n, "profile '" + prof.name + "'",
                   {"server", "client_id", "client_secret_file", "client_secret_env", "auth_method", "client_key",
                    "cert", "key", "cacert", "token_endpoint", "introspection_endpoint", "revocation_endpoint",
                    "jwks_uri"})) {
      continue;
    }
    auto text = [&](const char* name, std::string& out, bool is_path) {
      if (auto x = n[name]) {
        out = r.string(x, std::string("profile ") + name).value_or("");
        if (is_path && !out.empty()) out = relative_to(path, out);
      }
    };
    text("server", prof.server, false);
    text("client_id", prof.client_id, false);
    text("client_secret_file", prof.client_secret_file, true);
    text("client_secret_env", prof.client_secret_env, false);
    text("auth_method", prof.auth_method, false);
    text("client_key", prof.client_key, true);
    text("cert", prof.cert, true);
    text("key", prof.key, true);
    text("cacert", prof.cacert, true);
    text("token_endpoint", prof.token_endpoint, false);
    text("introspection_endpoint", prof.introspection_endpoint, false);
    text("revocation_endpoint", prof.revocation_endpoint, false);
    text("jwks_uri", prof.jwks_uri, false);
    if (!prof.auth_method.empty() &&
        !one_of(prof.auth_method, {"none", "client_secret_basic", "client_secret_post", "private_key_jwt",
                                   "tls_client_auth"})) {
      r.problem(n["auth_method"], "profile '" + prof.name + "': auth_method '" + prof.auth_method +
                                      "' is not one of none, client_secret_basic, client_secret_post, "
                                      "private_key_jwt, tls_client_auth");
    }
    if (prof.server.empty() && prof.token_endpoint.empty() && prof.introspection_endpoint.empty() &&
        prof.revocation_endpoint.empty() && prof.jwks_uri.empty()) {
      r.problem(n, "profile '" + prof.name + "' needs 'server' (or its endpoints)");
    }
    if (!prof.client_secret_file.empty() && !prof.client_secret_env.empty()) {
      r.problem(n, "profile '" + prof.name + "': client_secret_file and client_secret_env exclude each other");
    }
    if (prof.cert.empty() != prof.key.empty()) {
      r.problem(n, "profile '" + prof.name + "': cert and key go together");
    }
    p.profiles[prof.name] = std::move(prof);
  }
}

}  // namespace

PolicyCheck check_policy(const std::string& path) {
  PolicyCheck out;
  Policy& p = out.policy;
  if (path.empty()) return out;
  p.source = path;
  Reader r(path);
  // read_input never blocks and refuses directories, FIFOs and devices.
  auto text = read_input(path);
  if (!text) {
    out.problems.push_back(path + ": cannot read the policy: " + text.error().message);
    return out;
  }
  auto loaded = parse_yaml(path, *text, out.problems);
  if (!loaded) return out;
  YAML::Node root = *loaded;
  // No settings at all is a mistake (a truncated or wrong file), not a request for the defaults:
  // those come from giving no policy file.
  if (!root || root.IsNull()) {
    out.problems.push_back(path + ": the policy file is empty (no settings, only comments or null); "
                                  "give at least issuer: https://...");
    return out;
  }
  try {
    if (!r.mapping(root, "the policy", {"issuer", "keystore", "store", "tokens", "scopes", "claims", "subjects",
                                        "clients", "exchange", "assertion_issuers", "profiles"})) {
      out.problems = r.problems();
      return out;
    }
    if (auto n = root["issuer"]) {
      if (auto s = r.string(n, "issuer")) {
        if (!issuer_url(*s)) {
          r.problem(n, "issuer must be an https:// URL with a host and no query or fragment, not '" + *s + "'");
        } else {
          p.issuer = *s;
        }
      }
    }
    if (auto n = root["keystore"]) {
      if (auto s = r.text(n, "keystore")) p.keystore = relative_to(path, *s);  // "" would mean the default
    }
    if (auto n = root["store"]) {
      if (auto s = r.text(n, "store")) {
        if (*s == "sqlite:") {
          r.problem(n, "store 'sqlite:' names no file: use sqlite:PATH");
        } else if (s->rfind("sqlite:", 0) == 0) {
          p.store = "sqlite:" + relative_to(path, s->substr(7));
        } else if (s->rfind("postgresql://", 0) == 0 || s->rfind("postgres://", 0) == 0) {
          p.store = *s;
        } else {
          r.problem(n, "store must be sqlite:PATH or a postgresql:// URL, not '" + *s + "'");
        }
      }
    }
    if (auto t = root["tokens"]) {
      if (r.mapping(t, "tokens", {"access", "refresh", "id", "opaque_prefix", "signing_alg", "jwe_recipient",
                                  "max_lifetime", "wrapper_claims"})) {
        if (auto n = t["access"]) read_kind(r, n, "tokens.access", p.access, {"jwt", "opaque", "wrapped", "jwe"}, false);
        if (auto n = t["refresh"]) read_kind(r, n, "tokens.refresh", p.refresh, {"opaque"}, true);
        if (auto n = t["id"]) read_kind(r, n, "tokens.id", p.id, {"jwt"}, false);
        if (auto n = t["opaque_prefix"]) {
          if (auto s = r.plain_string(n, "tokens.opaque_prefix")) {
            if (s->size() > 32 || s->find_first_of(" \t\r\n.") != std::string::npos) {
              r.problem(n, "tokens.opaque_prefix must be at most 32 characters, without spaces or dots");
            } else {
              p.opaque_prefix = *s;
            }
          }
        }
        if (auto n = t["signing_alg"]) {
          if (auto s = r.string(n, "tokens.signing_alg")) {
            if (jose::alg_from_string(*s)) {
              p.signing_alg = *s;
            } else {
              r.problem(n, "tokens.signing_alg '" + *s + "' is not a signing algorithm (" + jose::supported_alg_names() + ")");
            }
          }
        }
        if (auto n = t["jwe_recipient"]) {
          if (auto s = r.string(n, "tokens.jwe_recipient")) {
            p.jwe_recipient = relative_to(path, *s);
            // The token service loads it when it opens: a missing or unusable key fails there.
            auto key_text = read_input(p.jwe_recipient);
            if (!key_text) {
              r.problem(n, "tokens.jwe_recipient: " + key_text.error().message);
            } else if (auto k = jose::parse_single_key(*key_text); !k) {
              r.problem(n, "tokens.jwe_recipient '" + p.jwe_recipient + "' is not a key: " + k.error().message);
            } else if (k->kty() == jose::KeyType::oct) {
              r.problem(n, "tokens.jwe_recipient '" + p.jwe_recipient + "' must be a public key (RSA, EC or X25519/X448)");
            }
          }
        }
        if (auto n = t["max_lifetime"]) {
          if (auto d = r.duration(n, "tokens.max_lifetime")) p.max_lifetime = *d;
        }
        if (auto n = t["wrapper_claims"]) p.wrapper_claims = r.strings(n, "tokens.wrapper_claims");
      }
    }
    if (auto s = root["scopes"]) {
      if (!s.IsSequence()) {
        r.problem(s, "scopes must be a list of {name: ...} or {prefix: ...}");
      } else {
        // A second rule for the same name or prefix never applies (the first one wins).
        std::map<std::string, std::string> seen;  // "name:x" / "prefix:x" -> where
        auto duplicate = [&](const YAML::Node& item, const ScopeRule& rule) {
          const std::string key = rule.name.empty() ? "prefix:" + rule.prefix : "name:" + rule.name;
          auto [it, fresh] = seen.emplace(key, r.where(item));
          if (!fresh) {
            r.problem(item, "duplicate scope " + std::string(rule.name.empty() ? "prefix '" + rule.prefix : "'" + rule.name) +
                                "' (first at " + it->second + ")");
          }
          return !fresh;
        };
        for (const auto& item : s) {
          if (item.IsScalar()) {  // shorthand: "- read" is "- name: read"
            ScopeRule rule;
            auto name = r.plain_string(item, "a scope name");
            if (!name) continue;
            rule.name = std::move(*name);
            if (rule.name.empty() || rule.name.find(' ') != std::string::npos) r.problem(item, "a scope name cannot be empty or contain spaces");
            else if (!duplicate(item, rule)) p.scopes.push_back(std::move(rule));
            continue;
          }
          if (!r.mapping(item, "a scope", {"name", "prefix", "ttl", "claims"})) continue;
          ScopeRule rule;
          if (auto n = item["name"]) rule.name = r.plain_string(n, "scope name").value_or("");
          if (auto n = item["prefix"]) rule.prefix = r.plain_string(n, "scope prefix").value_or("");
          if (rule.name.empty() == rule.prefix.empty()) {
            r.problem(item, "a scope has exactly one of name or prefix");
            continue;
          }
          if (rule.name.find(' ') != std::string::npos || rule.prefix.find(' ') != std::string::npos) {
            r.problem(item, "scope names cannot contain spaces");
          }
          if (auto n = item["ttl"]) rule.ttl = r.duration(n, "scope ttl");
          if (auto n = item["claims"]) {
            if (!n.IsMap()) {
              r.problem(n, "scope claims must be a mapping");
            } else {
              check_reserved(r, n, "scope claims");
              rule.claims = r.to_json(n);
            }
          }
          if (!duplicate(item, rule)) p.scopes.push_back(std::move(rule));
        }
      }
    }
    if (auto c = root["claims"]) {
      if (!c.IsMap()) r.problem(c, "claims must be a mapping of claim name to value");
      else p.claims = r.to_json(c);
      if (c.IsMap()) check_reserved(r, c, "claims");
      if (c.IsMap()) check_templates(r, c, "claims");
    }
    if (auto n = root["subjects"]) {
      if (auto s = r.text(n, "subjects")) {
        p.subjects_file = relative_to(path, *s);
        std::optional<YAML::Node> subj;
        if (auto subjects_text = read_input(p.subjects_file); !subjects_text) {
          r.problem(n, "cannot read subjects file '" + p.subjects_file + "': " + subjects_text.error().message);
        } else {
          subj = parse_yaml(p.subjects_file, *subjects_text, out.problems);
        }
        if (subj && *subj && !subj->IsNull()) {
          if (!subj->IsMap()) {
            out.problems.push_back(p.subjects_file + ": the subjects file must map each sub to its attributes");
          } else {
            Reader sr(p.subjects_file);
            for (const auto& kv : *subj) {
              json attrs = sr.to_json(kv.second);
              // Attributes feed {{subject.*}} templates: a mapping, or nothing.
              if (!attrs.is_object() && !attrs.is_null()) {
                sr.problem(kv.second, "the attributes of subject '" + kv.first.as<std::string>() + "' must be a mapping");
                continue;
              }
              p.subjects[kv.first.as<std::string>()] = attrs.is_null() ? json::object() : std::move(attrs);
            }
            out.problems.insert(out.problems.end(), sr.problems().begin(), sr.problems().end());
          }
        }
      }
    }
    if (auto cl = root["clients"]; cl && !cl.IsMap()) r.problem(cl, "clients must be a mapping of client id to settings");
    if (auto cl = root["clients"]; cl && cl.IsMap()) {
      for (const auto& kv : cl) {
        ClientPolicy c;
        detail::read_client(r, kv.first.as<std::string>(), kv.second, path, c);
        p.clients[c.id] = std::move(c);
      }
    }
    if (auto ex = root["exchange"]) {
      if (!ex.IsSequence()) {
        r.problem(ex, "exchange must be a list of rules");
      } else {
        for (const auto& item : ex) {
          if (!r.mapping(item, "an exchange rule", {"from", "to", "scopes", "modes"})) continue;
          ExchangeRule rule;
          if (auto x = item["from"]) rule.from = r.string(x, "exchange from").value_or("");
          else r.problem(item, "an exchange rule needs 'from' (the subject token's audience)");
          if (auto x = item["to"]) rule.to = r.strings(x, "exchange to");
          else r.problem(item, "an exchange rule needs 'to' (allowed target audiences)");
          if (auto x = item["scopes"]) rule.scopes = r.strings(x, "exchange scopes");
          if (auto x = item["modes"]) {
            rule.modes = r.strings(x, "exchange modes");
            for (const auto& m : rule.modes) {
              if (!one_of(m, {"delegate", "impersonate", "embed"})) {
                r.problem(x, "exchange mode '" + m + "' is not one of delegate, impersonate, embed");
              }
            }
          } else {
            rule.modes = {"delegate"};
          }
          p.exchange.push_back(std::move(rule));
        }
      }
    }
    if (auto ai = root["assertion_issuers"]) {
      if (!ai.IsSequence()) {
        r.problem(ai, "assertion_issuers must be a list of {issuer, jwks}");
      } else {
        for (const auto& item : ai) {
          if (!r.mapping(item, "an assertion issuer", {"issuer", "jwks"})) continue;
          AssertionIssuer a;
          if (auto x = item["issuer"]) a.issuer = r.text(x, "assertion issuer").value_or("");
          else r.problem(item, "an assertion issuer needs 'issuer' (the assertions' iss)");
          std::optional<jose::JwkSet> keys;
          if (auto x = item["jwks"]) keys = detail::read_public_jwks(r, x, "assertion issuer '" + a.issuer + "' jwks", path);
          else r.problem(item, "assertion issuer '" + a.issuer + "' needs 'jwks' (its public keys)");
          const bool repeated = std::any_of(p.assertion_issuers.begin(), p.assertion_issuers.end(),
                                            [&](const AssertionIssuer& o) { return o.issuer == a.issuer; });
          if (repeated) r.problem(item, "assertion issuer '" + a.issuer + "' is listed twice");
          if (keys && !a.issuer.empty() && !repeated) {
            a.jwks = std::move(*keys);
            p.assertion_issuers.push_back(std::move(a));
          }
        }
      }
    }
    if (auto pr = root["profiles"]) read_profiles(r, pr, path, p);
    // Cross-checks: clients' scopes must exist as scope rules (exact names or prefixes).
    if (auto cl = root["clients"]; cl && cl.IsMap()) {
      // A client id given twice (reported as a duplicate key) is checked where its last entry,
      // the one in effect, is; an entry that is not a mapping has no scopes to point at.
      std::map<std::string, YAML::Node> entries;
      for (const auto& kv : cl) {
        if (kv.first.IsScalar()) entries[kv.first.Scalar()] = kv.second;
      }
      for (const auto& [id, node] : entries) {
        const auto* c = p.client(id);
        if (!c || !node.IsMap() || !node["scopes"]) continue;
        for (const auto& s : c->scopes) {
          bool known = std::any_of(p.scopes.begin(), p.scopes.end(),
                                   [&](const ScopeRule& rule) { return rule.name == s || rule.prefix == s; });
          if (!known) r.problem(node["scopes"], "client '" + c->id + "' allows scope '" + s + "', which is not under scopes");
        }
      }
    }
    // Exchange rules must name audiences a subject token can carry: a client's, the issuer (the
    // default aud), or a target of some rule (exchanged tokens are exchanged again). Without
    // client audiences any audience is possible, so there is nothing to check against.
    if (auto ex = root["exchange"]; ex && ex.IsSequence()) {
      std::set<std::string> known = {p.issuer};
      bool restricted = !p.clients.empty();
      for (const auto& [id, c] : p.clients) {
        if (c.audiences.empty()) restricted = false;
        known.insert(c.audiences.begin(), c.audiences.end());
      }
      for (const auto& rule : p.exchange) known.insert(rule.to.begin(), rule.to.end());
      std::size_t i = 0;
      for (const auto& item : ex) {
        if (!item.IsMap() || i >= p.exchange.size()) break;
        const ExchangeRule& rule = p.exchange[i++];
        if (auto x = item["to"]; x && x.IsSequence() && rule.to.empty()) {
          r.problem(x, "exchange rule from '" + rule.from + "' has no target audience in 'to'");
        }
        for (const auto& t : rule.to)
          if (t.empty()) r.problem(item["to"], "exchange rule from '" + rule.from + "' has an empty target audience");
        if (restricted && !rule.from.empty() && !known.count(rule.from)) {
          std::string list;
          for (const auto& a : known) list += (list.empty() ? "" : ", ") + a;
          r.problem(item["from"], "exchange rule from '" + rule.from + "': no token can have this audience (known: " +
                                      list + ")");
        }
      }
    }
    // A format that cannot work fails here, in `config check`, not at the first issuance.
    if (p.access.format == "jwe" && p.jwe_recipient.empty()) {
      out.problems.push_back(path + ": tokens.access.format jwe needs tokens.jwe_recipient (the recipient's public key file)");
    }
    if (p.access.ttl > p.max_lifetime) {
      out.problems.push_back(path + ": tokens.access.ttl (" + format_duration(p.access.ttl) +
                             ") is longer than tokens.max_lifetime (" + format_duration(p.max_lifetime) + ")");
    }
    if (p.id.ttl > p.max_lifetime) {
      out.problems.push_back(path + ": tokens.id.ttl (" + format_duration(p.id.ttl) +
                             ") is longer than tokens.max_lifetime (" + format_duration(p.max_lifetime) + ")");
    }
  } catch (const YAML::Exception& e) {
    r.problems().push_back(path + ":" + std::to_string(e.mark.line + 1) + ":" + std::to_string(e.mark.column + 1) +
                           ": " + e.msg);
  }
  out.problems.insert(out.problems.begin(), r.problems().begin(), r.problems().end());
  return out;
}

Result<Policy> load_policy(const std::string& path) {
  auto c = check_policy(path);
  if (c.problems.empty()) return std::move(c.policy);
  std::string msg = "policy '" + path + "' has " + std::to_string(c.problems.size()) + " problem(s):";
  for (const auto& p : c.problems) msg += "\n  " + p;
  return fail_remedy(ErrorCode::malformed, msg, "check the policy file", Remedy::check_config, path);
}

}  // namespace tokctl::tokens
