#pragma once
// Strict JSON for JOSE headers, claims and keys.

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
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

/// True when `text` is meant as a JSON object: its first byte after whitespace (and a byte-order
/// mark) is '{'. A JWS payload like that must parse strictly as a claims set; anything else is an
/// opaque byte payload.
bool meant_as_json_object(std::string_view text);

// ---- checked access to untrusted JSON (never throws) ----------------------------------------------
// nlohmann's value()/get<>() throw type_error on a wrong type; on a token or file that is a crash.

/// Member `name` of `obj` when `obj` is an object and the member is a string; nullptr otherwise
/// (absent, wrong type, or `obj` not an object).
const std::string* string_member(const nlohmann::json& obj, std::string_view name);

/// `string_member` or `fallback`.
std::string string_or(const nlohmann::json& obj, std::string_view name, std::string_view fallback = {});

/// Member `name` as an integer when it is a JSON number with an integral value that fits in
/// int64 (1e300, 1.5, NaN-like and non-numbers give nullopt).
std::optional<std::int64_t> integer_member(const nlohmann::json& obj, std::string_view name);

/// Member `name` as a string when present: nullopt when absent, ErrorCode::malformed
/// ("<what>: \"<name>\" must be a string, not <type>") when present with another type.
Result<std::optional<std::string>> checked_string(const nlohmann::json& obj, std::string_view name,
                                                  std::string_view what);

/// JSON type name for messages ("string", "number", "array", ...).
std::string json_type_name(const nlohmann::json& value);

}  // namespace tokctl::jose
