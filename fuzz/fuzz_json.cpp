// Fuzz target: strict JSON (tokctl/jose/json.hpp). Any input must give a value or an Error, never a
// crash; accepted documents must respect the limits and survive a dump/re-parse round trip.

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include <nlohmann/json.hpp>

#include <tokctl/jose/json.hpp>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  const tokctl::jose::JsonLimits limits{.max_bytes = 64 * 1024, .max_depth = 16};
  auto parsed = tokctl::jose::parse_json_strict(text, "fuzz", limits);
  if (parsed) {
    // What strict parsing accepted is valid JSON: its canonical dump parses back to the same value.
    const std::string dumped = parsed->dump();
    auto again = tokctl::jose::parse_json_strict(dumped, "fuzz", {.max_bytes = 1 << 20, .max_depth = 16});
    if (!again || *again != *parsed) std::abort();
  }
  (void)tokctl::jose::parse_json_object(text, "fuzz", limits);
  return 0;
}
