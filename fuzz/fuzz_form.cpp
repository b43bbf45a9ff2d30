// Fuzz target: the token service's request parsing (tokctl/server/form.hpp): form bodies and
// Basic credentials from the network. Properties: no crash, and a parsed form has no empty names
// or values (empty values count as omitted, RFC 6749 §3.1).

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include <tokctl/server/form.hpp>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  for (bool repeatable : {false, true}) {
    auto form = repeatable ? tokctl::server::parse_form(text, {"audience", "resource"}) : tokctl::server::parse_form(text);
    if (!form) continue;
    for (const auto& [name, values] : form->values) {
      if (name.empty() || values.empty()) std::abort();
      for (const auto& v : values)
        if (v.empty()) std::abort();
      if (values.size() > 1 && name != "audience" && name != "resource") std::abort();
    }
  }
  if (auto basic = tokctl::server::parse_basic_auth(text); basic && *basic && (*basic)->first.empty()) std::abort();
  (void)tokctl::server::form_decode(text);
  return 0;
}
