// Fuzz target: duration and time parsing and rendering (tokctl/util/time.hpp). UBSan reports any
// signed overflow in the arithmetic (huge values, "+DUR" near the ends of the range).

#include <cstddef>
#include <cstdint>
#include <string_view>

#include <tokctl/util/time.hpp>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  constexpr tokctl::UnixTime k_now = 1'700'000'000;
  if (auto d = tokctl::parse_duration(text)) {
    (void)tokctl::format_duration(*d);
    (void)tokctl::format_relative(k_now + (*d % 1'000'000'000'000), k_now);
  }
  for (tokctl::UnixTime now : {k_now, tokctl::UnixTime{0}, tokctl::UnixTime{-1}}) {
    if (auto t = tokctl::parse_time(text, now)) {
      (void)tokctl::format_rfc3339(*t);
      (void)tokctl::format_relative(*t, now);
    }
  }
  return 0;
}
