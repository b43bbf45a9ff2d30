#pragma once
// Private to core/tokens: the YAML walker that collects policy problems with file:line:column,
// shared by the policy loader and the client model.

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <yaml-cpp/yaml.h>

#include <tokctl/tokens/policy.hpp>
#include <tokctl/util/io.hpp>
#include <tokctl/util/time.hpp>

namespace tokctl::tokens::detail {

using nlohmann::json;

/// Mappings and lists nest at most this deep (the strict JSON reader's limit).
inline constexpr int k_max_yaml_depth = 64;
/// Aliases (*name) repeat their anchor's content, so a small file can stand for a huge document
/// ("billion laughs"). The expanded document may hold no more than an alias-free file of the
/// input limit could: each value takes at least two bytes ("[1,1,...]"), each scalar byte one.
inline constexpr std::size_t k_max_yaml_values = k_max_input_bytes / 2;
inline constexpr std::size_t k_max_yaml_scalar_bytes = k_max_input_bytes;

// Collects problems with positions while walking the YAML tree.
class Reader {
 public:
  explicit Reader(std::string file) : m_file(std::move(file)) {}

  std::string where(const YAML::Node& n) const {
    auto m = n.Mark();
    if (m.is_null() || m.line < 0) return m_file;
    return m_file + ":" + std::to_string(m.line + 1) + ":" + std::to_string(m.column + 1);
  }
  void problem(const YAML::Node& n, const std::string& msg) { m_problems.push_back(where(n) + ": " + msg); }
  std::vector<std::string>& problems() { return m_problems; }
  const std::string& file() const { return m_file; }

  /// Walks the whole document once, as the readers below would (aliases expanded), before any of
  /// them runs: a cycle of aliases, nesting deeper than k_max_yaml_depth, an expansion past the
  /// k_max_yaml_values / k_max_yaml_scalar_bytes budget, a mapping or list used as a key and text
  /// that is not UTF-8 are problems that stop the reading (returns false); a duplicate key is a
  /// problem that does not. Every problem has the file:line:column of the offending node.
  bool vet(const YAML::Node& root);

  /// Checks a mapping's keys against `allowed`; unknown keys are problems (with a suggestion).
  bool mapping(const YAML::Node& n, const std::string& what, std::initializer_list<const char*> allowed) {
    if (!n.IsMap()) {
      problem(n, what + " must be a mapping");
      return false;
    }
    for (const auto& kv : n) {
      auto key = kv.first.as<std::string>();
      if (std::none_of(allowed.begin(), allowed.end(), [&](const char* a) { return key == a; })) {
        std::string list;
        for (const char* a : allowed) list += (list.empty() ? "" : ", ") + std::string(a);
        problem(kv.first, "unknown key '" + key + "' in " + what + " (allowed: " + list + ")");
      }
    }
    return true;
  }

  std::optional<std::string> string(const YAML::Node& n, const std::string& what) {
    if (!n.IsScalar()) {
      problem(n, what + " must be a string");
      return std::nullopt;
    }
    return n.as<std::string>();
  }

  /// A string that YAML does not read as a number, boolean or null (quote those: "42"); may be
  /// empty ("" is a string).
  std::optional<std::string> plain_string(const YAML::Node& n, const std::string& what) {
    if (!n.IsScalar()) {
      problem(n, what + " must be a string, not " + (n.IsMap() ? "a mapping" : n.IsSequence() ? "a list" : "null"));
      return std::nullopt;
    }
    const json as = to_json(n);
    if (!as.is_string()) {
      problem(n, what + " must be a string, not " + std::string(as.type_name()) + " '" + n.Scalar() +
                     "' (quote it if you mean the text)");
      return std::nullopt;
    }
    return n.Scalar();
  }

  /// plain_string(), and not empty.
  std::optional<std::string> text(const YAML::Node& n, const std::string& what) {
    auto s = plain_string(n, what);
    if (s && s->empty()) {
      problem(n, what + " cannot be empty");
      return std::nullopt;
    }
    return s;
  }

  std::optional<std::int64_t> duration(const YAML::Node& n, const std::string& what) {
    auto s = string(n, what);
    if (!s) return std::nullopt;
    auto d = parse_duration(*s);
    if (!d || *d <= 0) {
      problem(n, what + ": '" + *s + "' is not a positive duration (30s, 15m, 24h, 30d)");
      return std::nullopt;
    }
    return *d;
  }

  std::optional<bool> boolean(const YAML::Node& n, const std::string& what) {
    try {
      return n.as<bool>();
    } catch (const YAML::Exception&) {
      problem(n, what + " must be true or false");
      return std::nullopt;
    }
  }

  std::vector<std::string> strings(const YAML::Node& n, const std::string& what) {
    std::vector<std::string> out;
    if (!n.IsSequence()) {
      problem(n, what + " must be a list");
      return out;
    }
    for (const auto& item : n)
      if (auto s = plain_string(item, what + " entry")) out.push_back(*s);
    return out;
  }

  /// Any YAML value as JSON (scalars: true/false/null/numbers when they look like it, else strings).
  /// Run vet() on the document first: this recursion trusts it to be acyclic and small (past
  /// k_max_yaml_depth it only records a problem and gives null).
  json to_json(const YAML::Node& n, int depth = 0) {
    switch (n.Type()) {
      case YAML::NodeType::Map: {
        if (depth >= k_max_yaml_depth) return too_deep(n);
        json o = json::object();
        for (const auto& kv : n) o[kv.first.as<std::string>()] = to_json(kv.second, depth + 1);
        return o;
      }
      case YAML::NodeType::Sequence: {
        if (depth >= k_max_yaml_depth) return too_deep(n);
        json a = json::array();
        for (const auto& item : n) a.push_back(to_json(item, depth + 1));
        return a;
      }
      case YAML::NodeType::Scalar: {
        const std::string& s = n.Scalar();
        if (n.Tag() == "!") return s;  // quoted: always a string
        if (s == "true" || s == "false") return s == "true";
        if (s == "null" || s == "~") return nullptr;
        auto num = json::parse(s, nullptr, false);
        if (!num.is_discarded() && num.is_number()) return num;
        return s;
      }
      default:
        return nullptr;
    }
  }

 private:
  json too_deep(const YAML::Node& n) {
    problem(n, "mappings and lists nest deeper than " + std::to_string(k_max_yaml_depth) + " levels");
    return nullptr;
  }

  std::string m_file;
  std::vector<std::string> m_problems;
};

inline std::string relative_to(const std::string& file, const std::string& path) {
  if (path.empty() || path.front() == '/' || path.find("://") != std::string::npos) return path;
  auto slash = file.find_last_of('/');
  if (slash == std::string::npos) return path;
  return file.substr(0, slash + 1) + path;
}

inline bool one_of(const std::string& v, std::initializer_list<const char*> set) {
  return std::any_of(set.begin(), set.end(), [&](const char* s) { return v == s; });
}

/// Reads one entry of `clients:` (id = its key) into `c`; `policy_path` resolves relative files.
/// A JWKS of public keys, inline (a mapping) or a file relative to the policy; problems go to `r`.
std::optional<jose::JwkSet> read_public_jwks(Reader& r, const YAML::Node& n, const std::string& what,
                                             const std::string& policy_path);

void read_client(Reader& r, const std::string& id, const YAML::Node& n, const std::string& policy_path,
                 ClientPolicy& c);

}  // namespace tokctl::tokens::detail
