// Durations, absolute/relative times and their rendering: tokctl/util/time.hpp.

#include <tokctl/util/time.hpp>

#include <catch2/catch.hpp>

#include <string>

using tokctl::ErrorCode;
using tokctl::FixedClock;
using tokctl::format_duration;
using tokctl::format_relative;
using tokctl::format_rfc3339;
using tokctl::parse_duration;
using tokctl::parse_time;
using tokctl::UnixTime;

namespace {

constexpr UnixTime k_now = 1'700'000'000;             // 2023-11-14T22:13:20Z
constexpr UnixTime k_2026_11_22_10 = 1'795'341'600;   // 2026-11-22T10:00:00Z (python calendar.timegm)

std::int64_t duration(std::string_view text) {
  auto r = parse_duration(text);
  INFO(text);
  REQUIRE(r.has_value());
  return *r;
}

UnixTime time_of(std::string_view text, UnixTime now = k_now) {
  auto r = parse_time(text, now);
  INFO(text << (r ? "" : " -> " + r.error().message));
  REQUIRE(r.has_value());
  return *r;
}

}  // namespace

TEST_CASE("parse_duration reads each unit", "[time]") {
  CHECK(duration("30s") == 30);
  CHECK(duration("15m") == 15 * 60);
  CHECK(duration("24h") == 24 * 3600);
  CHECK(duration("30d") == 30 * 86400);
}

TEST_CASE("parse_duration adds combined units", "[time]") {
  CHECK(duration("1h30m") == 5400);
  CHECK(duration("1d2h3m4s") == 86400 + 7200 + 180 + 4);
  CHECK(duration("0s") == 0);
}

TEST_CASE("parse_duration reads a plain number as seconds", "[time]") {
  CHECK(duration("90") == 90);
  CHECK(duration("0") == 0);
  CHECK(duration("1700000000") == 1'700'000'000);
}

TEST_CASE("parse_duration rejects malformed durations with ErrorCode::usage", "[time]") {
  for (const char* text : {"", "s", "m5", "10x", "1.5h", "-5m", "+5m", "1h30", " 5m", "5m ", "5 m",
                           "5M", "1h 30m", "99999999999999999999", "abc"}) {
    INFO("'" << text << "'");
    auto r = parse_duration(text);
    REQUIRE_FALSE(r.has_value());
    CHECK(r.error().code == ErrorCode::usage);
    CHECK_THAT(r.error().message, Catch::Contains("invalid duration"));
    CHECK_FALSE(r.error().hint.empty());
  }
}

TEST_CASE("parse_duration rejects a single unit that would overflow", "[time]") {
  auto r = parse_duration("9223372036854775807d");
  REQUIRE_FALSE(r.has_value());
  CHECK(r.error().code == ErrorCode::usage);
}

// Regression (was a core bug): parse_duration checks each component against overflow but not the running total, so
// three components of INT64_MAX/2 seconds overflow (signed overflow, UB) instead of failing.
TEST_CASE("parse_duration rejects a sum of components that would overflow", "[time]") {
  auto r = parse_duration("4611686018427387903s4611686018427387903s4611686018427387903s");
  INFO((r ? "returned " + std::to_string(*r) : r.error().message));
  REQUIRE_FALSE(r.has_value());
  CHECK(r.error().code == ErrorCode::usage);
}

// Regression (was a core bug): parse_time adds a relative duration to `now` without an overflow check, so
// "+9223372036854775807" (a valid duration) wraps to a time in the distant past (signed overflow,
// UB) instead of failing with ErrorCode::usage.
TEST_CASE("parse_time rejects relative times that overflow", "[time]") {
  for (const char* text : {"+9223372036854775807", "-9223372036854775807"}) {
    INFO(text);
    auto r = parse_time(text, k_now);
    if (r) UNSCOPED_INFO("returned " << *r);
    CHECK_FALSE(r.has_value());
  }
}

TEST_CASE("parse_time reads RFC 3339 in UTC", "[time]") {
  CHECK(time_of("1970-01-01T00:00:00Z") == 0);
  CHECK(time_of("2026-11-22T10:00:00Z") == k_2026_11_22_10);
  CHECK(time_of("2023-11-14T22:13:20Z") == k_now);
  CHECK(time_of("2000-02-29T00:00:00Z") == 951'782'400);
}

TEST_CASE("parse_time accepts lower-case t and z and a space separator", "[time]") {
  CHECK(time_of("2026-11-22t10:00:00z") == k_2026_11_22_10);
  CHECK(time_of("2026-11-22 10:00:00Z") == k_2026_11_22_10);
}

TEST_CASE("parse_time applies numeric UTC offsets", "[time]") {
  CHECK(time_of("2026-11-22T12:00:00+02:00") == k_2026_11_22_10);
  CHECK(time_of("2026-11-22T04:30:00-05:30") == k_2026_11_22_10);
  CHECK(time_of("2026-11-22T10:00:00+00:00") == k_2026_11_22_10);
  CHECK(time_of("2026-11-22T10:00:00-00:00") == k_2026_11_22_10);
  // Crossing midnight backwards.
  CHECK(time_of("2026-11-23T01:00:00+15:00") == k_2026_11_22_10);
}

TEST_CASE("parse_time truncates fractional seconds", "[time]") {
  CHECK(time_of("2026-11-22T10:00:00.0Z") == k_2026_11_22_10);
  CHECK(time_of("2026-11-22T10:00:00.999999Z") == k_2026_11_22_10);
  CHECK(time_of("2026-11-22T12:00:00.5+02:00") == k_2026_11_22_10);
}

TEST_CASE("parse_time reads a bare date as midnight UTC", "[time]") {
  CHECK(time_of("2026-11-22") == k_2026_11_22_10 - 10 * 3600);
  CHECK(time_of("1970-01-01") == 0);
}

TEST_CASE("parse_time reads Unix seconds", "[time]") {
  CHECK(time_of("1700000000") == 1'700'000'000);
  CHECK(time_of("0") == 0);
}

TEST_CASE("parse_time reads +DUR and -DUR relative to the given now", "[time]") {
  CHECK(time_of("+15m", k_now) == k_now + 900);
  CHECK(time_of("-1h", k_now) == k_now - 3600);
  CHECK(time_of("+1h30m", k_now) == k_now + 5400);
  CHECK(time_of("+0s", k_now) == k_now);
  CHECK(time_of("-90", k_now) == k_now - 90);
  CHECK(time_of("+30d", 0) == 30 * 86400);
  CHECK(time_of("now", 12345) == 12345);
}

TEST_CASE("parse_time rejects garbage with ErrorCode::usage", "[time]") {
  for (const char* text :
       {"", "tomorrow", "+", "-", "+abc", "+-5m", "2026-13-01", "2026-00-10", "2026-11-32",
        "2026-11-22T24:00:00Z", "2026-11-22T10:60:00Z", "2026-11-22T10:00:61Z",
        "2026-11-22T10:00:00", "2026-11-22T10:00Z", "2026-11-22T10:00:00+0200",
        "2026-11-22T10:00:00+02", "2026-11-22T10:00:00+24:00", "2026-11-22T10:00:00.Z",
        "2026-11-22T10:00:00ZZ", "2026-11-22T10:00:00Z ", " 2026-11-22", "2026/11/22",
        "26-11-22", "2026-1-22", "2026-11-22X10:00:00Z", "1700000000.5", "12abc"}) {
    INFO("'" << text << "'");
    auto r = parse_time(text, k_now);
    REQUIRE_FALSE(r.has_value());
    CHECK(r.error().code == ErrorCode::usage);
  }
}

// Regression (was a core bug): parse_rfc3339 only checks 1 <= day <= 31, so impossible dates are silently normalised
// (2026-02-30 becomes 2026-03-02) instead of being rejected as RFC 3339 §5.7 requires.
TEST_CASE("parse_time rejects days that do not exist in the month", "[time]") {
  for (const char* text : {"2026-02-30", "2026-02-29T00:00:00Z", "2026-04-31T10:00:00Z", "1900-02-29"}) {
    INFO(text);
    auto r = parse_time(text, k_now);
    if (r) UNSCOPED_INFO("accepted as " << format_rfc3339(*r));
    CHECK_FALSE(r.has_value());
  }
}

TEST_CASE("parse_time accepts 29 February in leap years", "[time]") {
  CHECK(time_of("2024-02-29") == time_of("2024-03-01") - 86400);
  CHECK(time_of("2000-02-29") == 951'782'400);
}

TEST_CASE("format_rfc3339 renders UTC with a Z suffix", "[time]") {
  CHECK(format_rfc3339(0) == "1970-01-01T00:00:00Z");
  CHECK(format_rfc3339(k_now) == "2023-11-14T22:13:20Z");
  CHECK(format_rfc3339(k_2026_11_22_10) == "2026-11-22T10:00:00Z");
  CHECK(format_rfc3339(951'782'400) == "2000-02-29T00:00:00Z");
  CHECK(format_rfc3339(-1) == "1969-12-31T23:59:59Z");
  CHECK(format_rfc3339(4'102'444'799) == "2099-12-31T23:59:59Z");
}

TEST_CASE("format_rfc3339 and parse_time round-trip", "[time]") {
  for (UnixTime t : {UnixTime{0}, UnixTime{1}, k_now, k_2026_11_22_10, UnixTime{951'782'399},
                     UnixTime{4'102'444'799}, UnixTime{-86401}}) {
    INFO(t);
    CHECK(time_of(format_rfc3339(t)) == t);
  }
}

TEST_CASE("format_duration shows the two most significant units", "[time]") {
  CHECK(format_duration(0) == "0s");
  CHECK(format_duration(1) == "1s");
  CHECK(format_duration(59) == "59s");
  CHECK(format_duration(60) == "1m");
  CHECK(format_duration(192) == "3m12s");
  CHECK(format_duration(14 * 60) == "14m");
  CHECK(format_duration(2 * 3600 + 5 * 60) == "2h5m");
  CHECK(format_duration(3 * 86400 + 4 * 3600) == "3d4h");
  CHECK(format_duration(3 * 86400 + 4 * 3600 + 5 * 60 + 6) == "3d4h");
  CHECK(format_duration(3600 + 59) == "1h");     // a zero middle unit ends the rendering
  CHECK(format_duration(86400 + 5) == "1d");
  CHECK(format_duration(400 * 86400) == "400d");
}

TEST_CASE("format_duration ignores the sign", "[time]") {
  CHECK(format_duration(-192) == "3m12s");
}

TEST_CASE("format_duration and parse_duration agree", "[time]") {
  for (std::int64_t s : {0, 1, 59, 60, 192, 840, 7500, 86400, 3 * 86400 + 4 * 3600}) {
    INFO(s);
    CHECK(duration(format_duration(s)) == s);
  }
}

TEST_CASE("format_relative says in, ago or now", "[time]") {
  CHECK(format_relative(k_now + 14 * 60, k_now) == "in 14m");
  CHECK(format_relative(k_now - 3 * 3600, k_now) == "3h ago");
  CHECK(format_relative(k_now, k_now) == "now");
  CHECK(format_relative(k_now + 1, k_now) == "in 1s");
  CHECK(format_relative(k_now - 192, k_now) == "3m12s ago");
}

TEST_CASE("FixedClock returns the set time and never moves by itself", "[time]") {
  FixedClock clock(k_now);
  const tokctl::Clock& c = clock;
  CHECK(c.now() == k_now);
  CHECK(c.now() == k_now);
  clock.set(42);
  CHECK(c.now() == 42);
}

TEST_CASE("SystemClock is after 2023", "[time]") {
  tokctl::SystemClock clock;
  CHECK(clock.now() > k_now);
}
