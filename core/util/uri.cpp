#include <tokctl/util/uri.hpp>

#include <algorithm>
#include <cctype>

#include <tokctl/util/base64.hpp>

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

namespace tokctl {

std::optional<std::string> normalized_http_uri(std::string_view uri) {
  // Query and fragment go first: whatever they hold is not compared.
  uri = uri.substr(0, std::min(uri.find('?'), uri.find('#')));
  const auto sep = uri.find("://");
  if (sep == std::string_view::npos) return std::nullopt;
  std::string scheme(uri.substr(0, sep));
  for (auto& c : scheme) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (scheme != "http" && scheme != "https") return std::nullopt;
  std::string_view rest = uri.substr(sep + 3);
  const auto slash = rest.find('/');
  std::string_view authority = rest.substr(0, slash);
  std::string_view path = slash == std::string_view::npos ? std::string_view("/") : rest.substr(slash);
  if (authority.empty() || authority.find('@') != std::string_view::npos) return std::nullopt;
  for (char c : uri)
    if (static_cast<unsigned char>(c) <= 0x20 || c == 0x7f) return std::nullopt;
  std::string host(authority);
  std::string port;
  // The port follows the last colon, unless that colon is inside an IPv6 literal ("[::1]").
  if (auto colon = host.rfind(':'); colon != std::string::npos && host.find(']', colon) == std::string::npos) {
    port = host.substr(colon + 1);
    host.erase(colon);
    if (!std::all_of(port.begin(), port.end(), [](unsigned char c) { return std::isdigit(c); })) return std::nullopt;
    port.erase(0, std::min(port.find_first_not_of('0'), port.size()));
    if (port.empty() && colon + 1 < authority.size()) port = "0";
  }
  if (host.empty()) return std::nullopt;
  // A colon left in the host is a second port ("h:1:80"), unless the host is an IPv6 literal.
  if (host.front() == '[' ? host.back() != ']' : host.find_first_of(":[]") != std::string::npos) return std::nullopt;
  for (auto& c : host) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if ((scheme == "http" && port == "80") || (scheme == "https" && port == "443")) port.clear();
  // Percent escapes (§6.2.2.1-2): an unreserved character is decoded, any other escape is
  // upper-cased; a '%' without two hex digits makes the URI invalid.
  std::string p;
  p.reserve(path.size());
  auto hex = [](char c) { return std::isxdigit(static_cast<unsigned char>(c)) != 0; };
  for (std::size_t i = 0; i < path.size(); ++i) {
    if (path[i] != '%') {
      p.push_back(path[i]);
      continue;
    }
    if (i + 2 >= path.size() || !hex(path[i + 1]) || !hex(path[i + 2])) return std::nullopt;
    const auto c = static_cast<unsigned char>(hex_decode(path.substr(i + 1, 2))->front());
    if (std::isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~') {
      p.push_back(static_cast<char>(c));
    } else {
      p.push_back('%');
      p.push_back(static_cast<char>(std::toupper(static_cast<unsigned char>(path[i + 1]))));
      p.push_back(static_cast<char>(std::toupper(static_cast<unsigned char>(path[i + 2]))));
    }
    i += 2;
  }
  return scheme + "://" + host + (port.empty() ? "" : ":" + port) + p;
}

}  // namespace tokctl
