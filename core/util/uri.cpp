#include <tokctl/util/uri.hpp>

#include <cctype>

namespace tokctl {

bool is_absolute_uri(std::string_view uri) {
  auto colon = uri.find(':');
  if (colon == std::string_view::npos || colon == 0 || colon + 1 == uri.size()) return false;
  if (!std::isalpha(static_cast<unsigned char>(uri[0]))) return false;
  for (char c : uri.substr(0, colon))
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '+' && c != '-' && c != '.') return false;
  for (char c : uri)
    if (static_cast<unsigned char>(c) <= 0x20 || c == 0x7f || c == '#') return false;
  return true;
}

}  // namespace tokctl
