#include <tokctl/util/time.hpp>

#include <cmath>

#include <chrono>
#include <charconv>
#include <cstdio>
#include <limits>

namespace tokctl {
namespace {

// Decimal digits only: from_chars alone would also take a leading '-' ("-1" hours, "-5" seconds).
bool parse_digits(std::string_view s, std::int64_t& out) {
  if (s.empty() || s[0] < '0' || s[0] > '9') return false;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  return ec == std::errc() && p == s.data() + s.size();
}

// Days since 1970-01-01 for a proleptic Gregorian date (Howard Hinnant's algorithm).
std::int64_t days_from_civil(std::int64_t y, unsigned m, unsigned d) {
  y -= m <= 2;
  const std::int64_t era = (y >= 0 ? y : y - 399) / 400;
  const auto yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<std::int64_t>(doe) - 719468;
}

Result<UnixTime> parse_rfc3339(std::string_view s) {
  auto bad = [&] {
    return fail(ErrorCode::usage, "invalid time '" + std::string(s) + "'",
                "use RFC 3339 (2026-11-22T10:00:00Z), Unix seconds, or +DUR/-DUR such as +15m");
  };
  // YYYY-MM-DD[Tt ]HH:MM:SS[.frac](Z|±HH:MM), or a bare date YYYY-MM-DD (midnight UTC).
  if (s.size() < 10 || s[4] != '-' || s[7] != '-') return bad();
  std::int64_t y, mo, d, h = 0, mi = 0, sec = 0;
  if (!parse_digits(s.substr(0, 4), y) || !parse_digits(s.substr(5, 2), mo) ||
      !parse_digits(s.substr(8, 2), d))
    return bad();
  std::size_t pos = 10;
  std::int64_t offset = 0;
  if (s.size() > 10) {
    if ((s[10] != 'T' && s[10] != 't' && s[10] != ' ') || s.size() < 19 || s[13] != ':' || s[16] != ':')
      return bad();
    if (!parse_digits(s.substr(11, 2), h) || !parse_digits(s.substr(14, 2), mi) ||
        !parse_digits(s.substr(17, 2), sec))
      return bad();
    pos = 19;
    if (pos < s.size() && s[pos] == '.') {
      ++pos;
      std::size_t start = pos;
      while (pos < s.size() && s[pos] >= '0' && s[pos] <= '9') ++pos;
      if (pos == start) return bad();
    }
    if (pos >= s.size()) return bad();
    if (s[pos] == 'Z' || s[pos] == 'z') {
      ++pos;
    } else if (s[pos] == '+' || s[pos] == '-') {
      std::int64_t oh, om;
      if (s.size() != pos + 6 || s[pos + 3] != ':' || !parse_digits(s.substr(pos + 1, 2), oh) ||
          !parse_digits(s.substr(pos + 4, 2), om) || oh > 23 || om > 59)
        return bad();
      offset = (oh * 3600 + om * 60) * (s[pos] == '+' ? 1 : -1);
      pos += 6;
    } else {
      return bad();
    }
  }
  if (pos != s.size()) return bad();
  if (mo < 1 || mo > 12 || d < 1 || h > 23 || mi > 59 || sec > 60) return bad();
  static constexpr int k_days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  const bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
  if (d > k_days[mo - 1] + (mo == 2 && leap ? 1 : 0)) return bad();  // no 2026-02-30
  return days_from_civil(y, static_cast<unsigned>(mo), static_cast<unsigned>(d)) * 86400 + h * 3600 +
         mi * 60 + sec - offset;
}

}  // namespace

UnixTime SystemClock::now() const {
  using namespace std::chrono;
  return duration_cast<seconds>(system_clock::now().time_since_epoch()).count();
}

Result<std::int64_t> parse_duration(std::string_view text) {
  auto bad = [&] {
    return fail(ErrorCode::usage, "invalid duration '" + std::string(text) + "'",
                "use a number with a unit: 30s, 15m, 24h, 30d, or combined like 1h30m");
  };
  if (text.empty()) return bad();
  // Keep every total far from overflow: a duration over ~73 billion years is not a duration.
  constexpr std::int64_t k_max = std::numeric_limits<std::int64_t>::max() / 4;
  std::int64_t plain;
  if (parse_digits(text, plain)) {
    if (plain > k_max) return bad();
    return plain;
  }
  std::int64_t total = 0;
  std::size_t i = 0;
  while (i < text.size()) {
    std::size_t start = i;
    while (i < text.size() && text[i] >= '0' && text[i] <= '9') ++i;
    std::int64_t n;
    if (i == start || i >= text.size() || !parse_digits(text.substr(start, i - start), n)) return bad();
    std::int64_t unit;
    switch (text[i]) {
      case 's': unit = 1; break;
      case 'm': unit = 60; break;
      case 'h': unit = 3600; break;
      case 'd': unit = 86400; break;
      case 'w': unit = 7 * 86400; break;
      default: return bad();
    }
    ++i;
    if (n > k_max / unit || total > k_max - n * unit) return bad();
    total += n * unit;
  }
  return total;
}

Result<UnixTime> parse_time(std::string_view text, UnixTime now) {
  if (text.empty()) return fail(ErrorCode::usage, "empty time value");
  if (text == "now") return now;
  if (text[0] == '+' || text[0] == '-') {
    auto d = parse_duration(text.substr(1));
    if (!d) {
      return fail(ErrorCode::usage, "invalid relative time '" + std::string(text) + "'",
                  "use +DUR or -DUR, e.g. +15m, -1h, +30d");
    }
    constexpr std::int64_t k_limit = std::numeric_limits<std::int64_t>::max() / 4;
    if (*d > k_limit || now > k_limit || now < -k_limit) {
      return fail(ErrorCode::usage, "relative time '" + std::string(text) + "' is out of range");
    }
    const UnixTime t = text[0] == '+' ? now + *d : now - *d;
    if (t < k_min_time || t > k_max_time) {
      return fail(ErrorCode::usage, "relative time '" + std::string(text) + "' is out of range");
    }
    return t;
  }
  std::int64_t secs;
  if (parse_digits(text, secs)) {
    // Callers add durations to times: keep them within the years 0001..9999.
    if (secs > k_max_time) return fail(ErrorCode::usage, "time '" + std::string(text) + "' is out of range");
    return secs;
  }
  return parse_rfc3339(text);
}

std::optional<UnixTime> time_from_seconds(double seconds) {
  if (!std::isfinite(seconds)) return std::nullopt;
  double whole = std::floor(seconds);
  if (whole < static_cast<double>(k_min_time) || whole > static_cast<double>(k_max_time)) return std::nullopt;
  return static_cast<UnixTime>(whole);
}

std::string format_rfc3339(UnixTime t) {
  if (t < k_min_time || t > k_max_time) return "(out of range: " + std::to_string(t) + ")";
  using namespace std::chrono;
  sys_seconds tp{seconds{t}};
  auto dp = floor<days>(tp);
  year_month_day ymd{dp};
  hh_mm_ss hms{tp - dp};
  char buf[40];
  std::snprintf(buf, sizeof buf, "%04d-%02u-%02uT%02d:%02d:%02dZ", static_cast<int>(ymd.year()),
                static_cast<unsigned>(ymd.month()), static_cast<unsigned>(ymd.day()),
                static_cast<int>(hms.hours().count()), static_cast<int>(hms.minutes().count()),
                static_cast<int>(hms.seconds().count()));
  return buf;
}

namespace {

// The magnitude of a duration, unsigned so that INT64_MIN and any time difference fit.
std::string format_magnitude(std::uint64_t seconds) {
  if (seconds == 0) return "0s";
  struct Unit { std::uint64_t size; char name; };
  static constexpr Unit units[] = {{86400, 'd'}, {3600, 'h'}, {60, 'm'}, {1, 's'}};
  std::string out;
  int shown = 0;
  for (const auto& u : units) {
    if (seconds >= u.size) {
      out += std::to_string(seconds / u.size) + u.name;
      seconds %= u.size;
      // Two most significant units are enough to read ("3d4h", "3m12s").
      if (++shown == 2) break;
    } else if (shown > 0) {
      break;
    }
  }
  return out;
}

}  // namespace

std::string format_duration(std::int64_t seconds) {
  const auto magnitude = static_cast<std::uint64_t>(seconds);
  return format_magnitude(seconds < 0 ? 0 - magnitude : magnitude);
}

std::string format_relative(UnixTime t, UnixTime now) {
  if (t == now) return "now";
  // The difference in unsigned arithmetic: exact for any two int64 values, never an overflow.
  const auto ut = static_cast<std::uint64_t>(t);
  const auto unow = static_cast<std::uint64_t>(now);
  if (t > now) return "in " + format_magnitude(ut - unow);
  return format_magnitude(unow - ut) + " ago";
}

}  // namespace tokctl
