#include <tokctl/jose/json.hpp>

#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace tokctl::jose {
namespace {

// Builds the document from nlohmann's SAX events (the library's streaming parser), checking as it
// goes what RFC 8259 leaves open and JOSE forbids: duplicate member names (RFC 7515 §4, RFC 7519 §4)
// and nesting deeper than the limit. A duplicate is found by the insertion into its own object, so
// no set of names is kept per object, and no std::function callback runs per event: on a batch of
// tokens this halves the parse (issue 11 point 2).
class StrictDomBuilder {
 public:
  using json = nlohmann::json;

  explicit StrictDomBuilder(int max_depth) : m_max_depth(max_depth) { m_stack.reserve(8); }

  bool null() { return place(nullptr); }
  bool boolean(bool v) { return place(v); }
  bool number_integer(json::number_integer_t v) { return place(v); }
  bool number_unsigned(json::number_unsigned_t v) { return place(v); }
  bool number_float(json::number_float_t v, const json::string_t& /*text*/) { return place(v); }
  bool string(json::string_t& v) { return place(std::move(v)); }
  bool binary(json::binary_t& v) { return place(std::move(v)); }

  bool start_object(std::size_t /*elements*/) { return open(json::value_t::object); }
  bool start_array(std::size_t /*elements*/) { return open(json::value_t::array); }
  bool end_object() { return close(); }
  bool end_array() { return close(); }

  bool key(json::string_t& name) {
    auto& members = m_stack.back()->get_ref<json::object_t&>();
    auto [it, inserted] = members.try_emplace(std::move(name));  // leaves `name` alone on a duplicate
    if (!inserted) {
      m_violation = "duplicate member name \"" + name + "\"";
      return false;
    }
    m_member = &it->second;
    return true;
  }

  bool parse_error(std::size_t /*position*/, const std::string& /*last_token*/,
                   const nlohmann::detail::exception& e) {
    m_error = e.what();
    return false;
  }

  json& root() { return m_root; }
  const std::string& violation() const { return m_violation; }
  const std::string& error() const { return m_error; }

 private:
  template <typename V>
  json* put(V&& value) {
    if (m_stack.empty()) {
      m_root = json(std::forward<V>(value));
      return &m_root;
    }
    json* top = m_stack.back();
    if (top->is_array()) {
      auto& items = top->get_ref<json::array_t&>();
      items.emplace_back(std::forward<V>(value));
      return &items.back();
    }
    *m_member = json(std::forward<V>(value));
    return m_member;
  }
  template <typename V>
  bool place(V&& value) {
    put(std::forward<V>(value));
    return true;
  }
  bool open(json::value_t type) {
    if (static_cast<int>(m_stack.size()) >= m_max_depth) {
      m_violation = "nesting deeper than " + std::to_string(m_max_depth) + " levels";
      return false;
    }
    m_stack.push_back(put(type));
    return true;
  }
  bool close() {
    m_stack.pop_back();
    return true;
  }

  json m_root;
  std::vector<json*> m_stack;  // the open objects and arrays, innermost last
  json* m_member = nullptr;    // the value slot of the member whose name was just read
  int m_max_depth;
  std::string m_violation;
  std::string m_error;
};

}  // namespace

Result<nlohmann::json> parse_json_strict(std::string_view text, std::string_view what,
                                         const JsonLimits& limits) {
  if (text.size() > limits.max_bytes) {
    return fail(ErrorCode::malformed, std::string(what) + " is " + std::to_string(text.size()) +
                                          " bytes, over the " + std::to_string(limits.max_bytes) +
                                          "-byte limit");
  }
  // nlohmann skips a UTF-8 byte-order mark and may stop at a NUL: neither is RFC 8259 JSON.
  if (text.starts_with("\xEF\xBB\xBF")) {
    return fail(ErrorCode::malformed, std::string(what) + " is not acceptable JSON: it starts with a byte-order mark");
  }
  if (text.find('\0') != std::string_view::npos) {
    return fail(ErrorCode::malformed, std::string(what) + " is not acceptable JSON: it contains a NUL byte");
  }
  StrictDomBuilder builder(limits.max_depth);
  bool ok = false;
  std::string thrown;
  try {
    ok = nlohmann::json::sax_parse(text.data(), text.data() + text.size(), &builder,
                                   nlohmann::json::input_format_t::json, /*strict=*/true,
                                   /*ignore_comments=*/false);
  } catch (const nlohmann::json::exception& e) {  // not expected: errors go to parse_error()
    ok = false;
    thrown = e.what();
  }
  if (ok) return std::move(builder.root());
  if (!builder.violation().empty()) {
    return fail(ErrorCode::malformed, std::string(what) + " is not acceptable JSON: " + builder.violation());
  }
  std::string msg = !builder.error().empty() ? builder.error() : !thrown.empty() ? thrown : "parse error";
  // "[json.exception.parse_error.101] parse error at line 1, column 2: ..." -> keep the useful tail.
  if (auto p = msg.find("] "); p != std::string::npos) msg = msg.substr(p + 2);
  // Never echo the input: "...; last read: '<bytes>'" would print a private key's "d" from a
  // truncated key file, or a secret.
  if (auto p = msg.find("; last read:"); p != std::string::npos) msg.erase(p);
  return fail(ErrorCode::malformed, std::string(what) + " is not valid JSON: " + msg);
}

Result<nlohmann::json> parse_json_object(std::string_view text, std::string_view what,
                                         const JsonLimits& limits) {
  auto j = parse_json_strict(text, what, limits);
  if (!j) return j;
  if (!j->is_object()) {
    return fail(ErrorCode::malformed, std::string(what) + " must be a JSON object, not " +
                                          std::string(j->type_name()));
  }
  return j;
}

bool meant_as_json_object(std::string_view text) {
  if (text.starts_with("\xEF\xBB\xBF")) text.remove_prefix(3);
  auto first = text.find_first_not_of(" \t\r\n");
  return first != std::string_view::npos && text[first] == '{';
}

const std::string* string_member(const nlohmann::json& obj, std::string_view name) {
  if (!obj.is_object()) return nullptr;
  auto it = obj.find(name);
  if (it == obj.end() || !it->is_string()) return nullptr;
  return it->get_ptr<const std::string*>();
}

std::string string_or(const nlohmann::json& obj, std::string_view name, std::string_view fallback) {
  const std::string* s = string_member(obj, name);
  return s ? *s : std::string(fallback);
}

std::optional<std::int64_t> integer_member(const nlohmann::json& obj, std::string_view name) {
  if (!obj.is_object()) return std::nullopt;
  auto it = obj.find(name);
  if (it == obj.end()) return std::nullopt;
  if (it->is_number_integer()) return it->get<std::int64_t>();
  if (it->is_number_unsigned()) {
    auto u = it->get<std::uint64_t>();
    if (u > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())) return std::nullopt;
    return static_cast<std::int64_t>(u);
  }
  if (it->is_number_float()) {
    double d = it->get<double>();
    // 2^63 is exactly representable; anything at or beyond it does not fit.
    if (!std::isfinite(d) || d != std::floor(d) || d >= 9223372036854775808.0 || d < -9223372036854775808.0) {
      return std::nullopt;
    }
    return static_cast<std::int64_t>(d);
  }
  return std::nullopt;
}

std::string json_type_name(const nlohmann::json& value) { return value.type_name(); }

Result<std::optional<std::string>> checked_string(const nlohmann::json& obj, std::string_view name,
                                                  std::string_view what) {
  if (!obj.is_object()) return std::optional<std::string>();
  auto it = obj.find(name);
  if (it == obj.end()) return std::optional<std::string>();
  if (!it->is_string()) {
    return fail(ErrorCode::malformed, std::string(what) + ": \"" + std::string(name) + "\" must be a string, not " +
                                          json_type_name(*it));
  }
  return std::optional<std::string>(it->get<std::string>());
}

}  // namespace tokctl::jose
