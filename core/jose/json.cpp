#include <tokctl/jose/json.hpp>

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
  try {
    return nlohmann::json::parse(text.begin(), text.end(), callback, /*allow_exceptions=*/true,
                                 /*ignore_comments=*/false);
  } catch (const StrictViolation& v) {
    return fail(ErrorCode::malformed, std::string(what) + " is not acceptable JSON: " + v.message);
  } catch (const nlohmann::json::exception& e) {
    std::string msg = e.what();
    // "[json.exception.parse_error.101] parse error at line 1, column 2: ..." -> keep the useful tail.
    if (auto p = msg.find("] "); p != std::string::npos) msg = msg.substr(p + 2);
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

}  // namespace tokctl::jose
