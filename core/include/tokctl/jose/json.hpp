#pragma once
// Strict JSON for JOSE headers, claims and keys.

#include <cstddef>
#include <string_view>

#include <nlohmann/json_fwd.hpp>

#include <tokctl/util/error.hpp>

namespace tokctl::jose {

struct JsonLimits {
  std::size_t max_bytes = 64 * 1024;
  int max_depth = 64;
};

/// Parses RFC 8259 JSON strictly: duplicate member names, nesting deeper than max_depth, input over
/// max_bytes, invalid UTF-8 and trailing data all fail with ErrorCode::malformed. `what` names the
/// input in messages ("header", "claims").
Result<nlohmann::json> parse_json_strict(std::string_view text, std::string_view what,
                                         const JsonLimits& limits = {});

/// Parses and additionally requires a JSON object.
Result<nlohmann::json> parse_json_object(std::string_view text, std::string_view what,
                                         const JsonLimits& limits = {});

}  // namespace tokctl::jose
