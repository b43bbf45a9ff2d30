// Strict JSON for headers, claims and keys: tokctl/jose/json.hpp.

#include <tokctl/jose/json.hpp>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <string>

using tokctl::ErrorCode;
using tokctl::jose::JsonLimits;
using tokctl::jose::parse_json_object;
using tokctl::jose::parse_json_strict;

namespace {

std::string nested_arrays(int depth) { return std::string(depth, '[') + std::string(depth, ']'); }

std::string nested_objects(int depth) {
  std::string s;
  for (int i = 0; i < depth; ++i) s += "{\"a\":";
  s += "1";
  s += std::string(depth, '}');
  return s;
}

void require_malformed(std::string_view text, std::string_view expect_in_message = {},
                       const JsonLimits& limits = {}) {
  auto r = parse_json_strict(text, "claims", limits);
  INFO("input: " << text.substr(0, 200));
  REQUIRE_FALSE(r.has_value());
  CHECK(r.error().code == ErrorCode::malformed);
  CHECK_THAT(r.error().message, Catch::StartsWith("claims"));
  if (!expect_in_message.empty()) CHECK_THAT(r.error().message, Catch::Contains(std::string(expect_in_message)));
}

nlohmann::json parsed(std::string_view text, const JsonLimits& limits = {}) {
  auto r = parse_json_strict(text, "claims", limits);
  INFO("input: " << text.substr(0, 200) << (r ? "" : " -> " + r.error().message));
  REQUIRE(r.has_value());
  return *r;
}

}  // namespace

TEST_CASE("parse_json_strict parses ordinary JSON", "[json]") {
  auto j = parsed(R"({"sub":"alice","n":1.5,"ok":true,"x":null,"a":[1,"two",{}],"u":"\u00e9"})");
  CHECK(j["sub"] == "alice");
  CHECK(j["n"] == 1.5);
  CHECK(j["a"].size() == 3);
  CHECK(j["u"] == "\xc3\xa9");
  CHECK(parsed("  {\"a\":1}\n").is_object());  // surrounding whitespace is allowed (RFC 8259)
  CHECK(parsed("[]").is_array());
  CHECK(parsed("42") == 42);
}

TEST_CASE("parse_json_strict builds the same document as nlohmann's own parser", "[json]") {
  // The strict parser builds its document from SAX events; any slip in placing a value (array
  // element, member, top level) or in a number's type shows up as a difference here.
  const char* docs[] = {
      R"({"sub":"alice","n":1.5,"ok":true,"no":false,"x":null,"a":[1,"two",{},[],[[]]],"u":"\u00e9"})",
      R"([{"a":{"b":{"c":[1,{"d":[null,true,{"e":"f"}]}]}}},-0,0.0,1e3,-12,18446744073709551615])",
      R"({"big":9223372036854775807,"neg":-9223372036854775808,"f":2.5e-3,"s":"a\"b\\c\n\u0000"})",
      R"({"aud":["x","y"],"nested":{"aud":"z","empty":{}},"arr":[[1,2],[3,[4,[5]]]],"last":{}})",
      R"("just a string")", "17", "true", "null", "[]", "{}", R"([{}, {"a": []}, 3])",
  };
  for (const char* text : docs) {
    INFO(text);
    auto strict = parse_json_strict(text, "doc");
    REQUIRE(strict.has_value());
    const auto reference = nlohmann::json::parse(text);
    CHECK(*strict == reference);
    CHECK(strict->dump() == reference.dump());  // same value types too (1 vs 1.0, signed vs unsigned)
  }
}

TEST_CASE("parse_json_strict rejects duplicate member names", "[json]") {
  require_malformed(R"({"a":1,"a":2})", "duplicate member name \"a\"");
  require_malformed(R"({"a":1,"b":2,"a":1})", "duplicate");
}

TEST_CASE("parse_json_strict rejects duplicate member names in nested objects", "[json]") {
  require_malformed(R"({"x":{"a":1,"a":2}})", "duplicate");
  require_malformed(R"({"x":[{"y":{"b":1,"b":1}}]})", "duplicate");
  require_malformed(R"([{"a":1,"a":2}])", "duplicate");
}

TEST_CASE("parse_json_strict rejects duplicates written with different escapes", "[json]") {
  require_malformed(R"({"a":1,"\u0061":2})", "duplicate");
}

TEST_CASE("parse_json_strict allows the same name in sibling and nested objects", "[json]") {
  CHECK(parsed(R"({"x":{"a":1},"y":{"a":1},"a":{"a":{"a":1}}})").is_object());
  CHECK(parsed(R"([{"a":1},{"a":2}])").is_array());
  // After a nested object closes, the outer object's names are still tracked.
  require_malformed(R"({"a":{"b":1},"b":2,"a":3})", "duplicate member name \"a\"");
}

TEST_CASE("parse_json_strict accepts nesting of exactly 64 levels", "[json]") {
  CHECK(parsed(nested_arrays(64)).is_array());
  CHECK(parsed(nested_objects(64)).is_object());
}

TEST_CASE("parse_json_strict rejects nesting deeper than 64 levels", "[json]") {
  require_malformed(nested_arrays(65), "deeper than 64");
  require_malformed(nested_objects(65), "deeper than 64");
  require_malformed(nested_arrays(10000), "deeper");
}

TEST_CASE("parse_json_strict applies a custom depth limit", "[json]") {
  JsonLimits limits;
  limits.max_depth = 2;
  CHECK(parsed(R"({"a":[1]})", limits).is_object());
  require_malformed(R"({"a":[[1]]})", "deeper than 2", limits);
}

TEST_CASE("parse_json_strict rejects input over max_bytes", "[json]") {
  JsonLimits limits;
  limits.max_bytes = 10;
  CHECK(parsed("[1,2,3,45]", limits).size() == 4);   // exactly 10 bytes
  require_malformed("[1,2,3,456]", "over the 10-byte limit", limits);
}

TEST_CASE("parse_json_strict has a 64 KiB default size limit", "[json]") {
  const std::string fits = "\"" + std::string(64 * 1024 - 2, 'x') + "\"";
  CHECK(parsed(fits).is_string());
  const std::string over = "\"" + std::string(64 * 1024 - 1, 'x') + "\"";
  require_malformed(over, "limit");
}

TEST_CASE("parse_json_strict rejects trailing data", "[json]") {
  require_malformed(R"({"a":1} x)");
  require_malformed(R"({"a":1}{})");
  require_malformed(R"({"a":1},)");
  require_malformed("1 2");
}

TEST_CASE("parse_json_strict rejects invalid UTF-8", "[json]") {
  require_malformed("\"\xff\"");
  require_malformed("\"\xc0\xaf\"");          // overlong '/'
  require_malformed("\"\xed\xa0\x80\"");      // encoded surrogate
  require_malformed("\"\xe2\x82\"");          // truncated sequence
  require_malformed("{\"\x80\":1}");          // bad byte in a member name
}

TEST_CASE("parse_json_strict rejects unpaired surrogate escapes", "[json]") {
  require_malformed(R"("\ud800")");
  require_malformed(R"("\udc00x")");
}

TEST_CASE("parse_json_strict rejects non-JSON syntax", "[json]") {
  require_malformed("");
  require_malformed("{'a':1}");
  require_malformed(R"({"a":1,})");
  require_malformed(R"({"a":1 /* comment */})");
  require_malformed(R"({"a":NaN})");
  require_malformed(R"({a:1})");
  require_malformed("\"tab\tinside\"");  // raw control character in a string
}

TEST_CASE("parse_json_strict error messages name the input", "[json]") {
  auto r = parse_json_strict("{", "header");
  REQUIRE_FALSE(r);
  CHECK_THAT(r.error().message, Catch::StartsWith("header is not valid JSON"));
  auto dup = parse_json_strict(R"({"a":1,"a":1})", "header");
  REQUIRE_FALSE(dup);
  CHECK_THAT(dup.error().message, Catch::StartsWith("header is not acceptable JSON"));
}

TEST_CASE("parse_json_object accepts objects only", "[json]") {
  auto ok = parse_json_object(R"({"a":1})", "claims");
  REQUIRE(ok.has_value());
  CHECK(ok->is_object());
  REQUIRE(parse_json_object("{}", "claims").has_value());
  for (const char* text : {"[]", R"([{"a":1}])", "\"s\"", "1", "null", "true"}) {
    INFO(text);
    auto r = parse_json_object(text, "claims");
    REQUIRE_FALSE(r.has_value());
    CHECK(r.error().code == ErrorCode::malformed);
    CHECK_THAT(r.error().message, Catch::Contains("must be a JSON object"));
  }
}

TEST_CASE("parse_json_object keeps the strict checks", "[json]") {
  auto r = parse_json_object(R"({"a":1,"a":1})", "claims");
  REQUIRE_FALSE(r);
  CHECK_THAT(r.error().message, Catch::Contains("duplicate"));
}
