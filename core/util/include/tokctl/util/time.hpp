#pragma once
// Clock injection, time and duration parsing, and human-readable rendering.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include <tokctl/util/error.hpp>

namespace tokctl {

/// Seconds since the Unix epoch.
using UnixTime = std::int64_t;

/// The times tokctl can show and compare: RFC 3339 years 0001..9999.
inline constexpr UnixTime k_min_time = -62135596800;  ///< 0001-01-01T00:00:00Z
inline constexpr UnixTime k_max_time = 253402300799;  ///< 9999-12-31T23:59:59Z

/// A JSON NumericDate (seconds, possibly fractional) as whole seconds, or nullopt when it is not
/// finite or outside [k_min_time, k_max_time] (exp: 1e300 is "out of range", never year -19798).
std::optional<UnixTime> time_from_seconds(double seconds);

/// Source of "now". Commands get one from --now; tests use FixedClock and never sleep.
class Clock {
 public:
  virtual ~Clock() = default;
  virtual UnixTime now() const = 0;
};

class SystemClock final : public Clock {
 public:
  UnixTime now() const override;
};

class FixedClock final : public Clock {
 public:
  explicit FixedClock(UnixTime t) : m_now(t) {}
  UnixTime now() const override { return m_now; }
  void set(UnixTime t) { m_now = t; }

 private:
  UnixTime m_now;
};

/// Parses "30s", "15m", "24h", "30d", "1h30m", "90" (seconds). Fails with ErrorCode::usage.
Result<std::int64_t> parse_duration(std::string_view text);

/// Parses an absolute or relative time: RFC 3339 ("2026-11-22T10:00:00Z", offsets allowed),
/// Unix seconds ("1700000000"), or "+DUR"/"-DUR" relative to `now`. Fails with ErrorCode::usage.
Result<UnixTime> parse_time(std::string_view text, UnixTime now);

/// "2026-11-22T10:00:00Z".
std::string format_rfc3339(UnixTime t);

/// Compact duration: "3m12s", "14m", "2h5m", "3d4h", "0s".
std::string format_duration(std::int64_t seconds);

/// "in 14m" / "3h ago" / "now", relative to `now`.
std::string format_relative(UnixTime t, UnixTime now);

}  // namespace tokctl
