#include <tokctl/jose/json.hpp>

#include <cmath>
#include <limits>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace tokctl::jose {
namespace {

struct StrictViolation {
  std::string message;
};

}  // namespace

Result<nlohmann::json> parse_json_strict(std::string_view text, std::string_view what,
                                         const JsonLimits& limits) {
  if (text.size() > limits.max_bytes) {
    return fail(ErrorCode::malformed, std::string(what) + " is " + std::to_string(text.size()) +
                                          " bytes, over the " + std::to_string(limits.max_bytes) +
                                          "-byte limit");
  }
  // Member names seen so far, one set per open object.
  std::vector<std::set<std::string>> open_objects;
  auto callback = [&](int depth, nlohmann::json::parse_event_t event, nlohmann::json& parsed) {
    using E = nlohmann::json::parse_event_t;
    switch (event) {
      case E::object_start:
      case E::array_start:
        if (depth >= limits.max_depth) {
          throw StrictViolation{"nesting deeper than " + std::to_string(limits.max_depth) + " levels"};
        }
        if (event == E::object_start) open_objects.emplace_back();
        break;
      case E::object_end:
        if (!open_objects.empty()) open_objects.pop_back();
        break;
      case E::key:
        if (!open_objects.empty() && !open_objects.back().insert(parsed.get<std::string>()).second) {
          throw StrictViolation{"duplicate member name \"" + parsed.get<std::string>() + "\""};
        }
        break;
      default:
        break;
    }
    return true;
  };
  // nlohmann skips a UTF-8 byte-order mark and may stop at a NUL: neither is RFC 8259 JSON.
  if (text.starts_with("\xEF\xBB\xBF")) {
    return fail(ErrorCode::malformed, std::string(what) + " is not acceptable JSON: it starts with a byte-order mark");
  }
  if (text.find('\0') != std::string_view::npos) {
    return fail(ErrorCode::malformed, std::string(what) + " is not acceptable JSON: it contains a NUL byte");
  }
  try {
    return nlohmann::json::parse(text.begin(), text.end(), callback, /*allow_exceptions=*/true,
                                 /*ignore_comments=*/false);
  } catch (const StrictViolation& v) {
    return fail(ErrorCode::malformed, std::string(what) + " is not acceptable JSON: " + v.message);
  } catch (const nlohmann::json::exception& e) {
    std::string msg = e.what();
    // "[json.exception.parse_error.101] parse error at line 1, column 2: ..." -> keep the useful tail.
    if (auto p = msg.find("] "); p != std::string::npos) msg = msg.substr(p + 2);
    // Never echo the input: "...; last read: '<bytes>'" would print a private key's "d" from a
    // truncated key file, or a secret.
    if (auto p = msg.find("; last read:"); p != std::string::npos) msg.erase(p);
    return fail(ErrorCode::malformed, std::string(what) + " is not valid JSON: " + msg);
  }
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
