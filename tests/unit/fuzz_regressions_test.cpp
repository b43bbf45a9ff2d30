// Regressions found by the fuzz targets (fuzz/, scripts/fuzz). Each case names the target and the
// committed crashing input under fuzz/regressions/<target>/, and checks the behaviour at the root
// cause (so it fails on the unfixed code even without sanitizers).

#include <tokctl/util/time.hpp>

#include <catch2/catch.hpp>

#include <cstdint>
#include <limits>
#include <string>

using tokctl::format_duration;
using tokctl::format_relative;
using tokctl::k_max_time;
using tokctl::parse_duration;
using tokctl::parse_time;
using tokctl::UnixTime;

namespace {

constexpr std::int64_t k_int64_min = std::numeric_limits<std::int64_t>::min();
constexpr std::int64_t k_int64_max = std::numeric_limits<std::int64_t>::max();
constexpr UnixTime k_now = 1'700'000'000;

}  // namespace

// fuzz_time, fuzz/regressions/fuzz_time/int64-min-duration ("-9223372036854775808"): parse_duration
// took it as a plain number of seconds (from_chars accepts '-'), and format_duration negated it.
TEST_CASE("fuzz_time: a duration is digits and units, never negative or near overflow", "[time][fuzz]") {
  for (const char* text : {"-9223372036854775808", "-5", "-0", "9223372036854775807",
                           "2305843009213693952"}) {
    INFO(text);
    CHECK_FALSE(parse_duration(text).has_value());
  }
  CHECK(parse_duration("2305843009213693951").value() == 2305843009213693951);  // INT64_MAX / 4
}

TEST_CASE("fuzz_time: format_duration and format_relative are exact at the ends of int64", "[time][fuzz]") {
  // 2^63 s = 106751991167300 d 15 h 30 m 8 s.
  CHECK(format_duration(k_int64_min) == "106751991167300d15h");
  CHECK(format_duration(k_int64_max) == "106751991167300d15h");
  CHECK(format_duration(-90) == "1m30s");
  CHECK(format_relative(k_int64_max, -1) == "in 106751991167300d15h");
  CHECK(format_relative(k_int64_min, 1) == "106751991167300d15h ago");
  CHECK(format_relative(k_now - 90, k_now) == "1m30s ago");
}

TEST_CASE("fuzz_time: RFC 3339 fields are digits only", "[time][fuzz]") {
  for (const char* text : {"2026-11-22T-1:00:00Z", "2026-11-22T10:-1:00Z", "2026-11-22T10:00:-1Z",
                           "-026-11-22T10:00:00Z", "2026-11-22T10:00:00+-1:00"}) {
    INFO(text);
    CHECK_FALSE(parse_time(text, k_now).has_value());
  }
}

TEST_CASE("fuzz_time: absolute and relative times stay within the years 0001..9999", "[time][fuzz]") {
  CHECK(parse_time("253402300799", k_now).value() == k_max_time);
  for (const char* text : {"253402300800", "9223372036854775807", "+2305843009213693951"}) {
    INFO(text);
    CHECK_FALSE(parse_time(text, k_now).has_value());
  }
  CHECK_FALSE(parse_time("+1s", k_max_time).has_value());
}
