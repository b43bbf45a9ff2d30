#include "render.hpp"

#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include <tokctl/util/utf8.hpp>

#include "common.hpp"

namespace tokctl::cli {

bool color(Stream s) {
  if (globals().no_color) return false;
  const char* nc = std::getenv("NO_COLOR");
  if (nc && *nc) return false;
  return ::isatty(s == Stream::out ? STDOUT_FILENO : STDERR_FILENO) == 1;
}

std::string style(Stream s, const char* code, const std::string& text) {
  if (!color(s)) return text;
  return std::string("\033[") + code + "m" + text + "\033[0m";
}

std::size_t utf8_sequence(std::string_view text, std::size_t i, unsigned& cp) { return tokctl::utf8_sequence(text, i, cp); }

std::string terminal_safe(std::string_view text, Newlines newlines) {
  const bool keep = newlines == Newlines::keep;
  std::string out;
  out.reserve(text.size());
  auto hex = [&](unsigned v, const char* prefix, int width) {
    char buf[16];
    std::snprintf(buf, sizeof buf, "%s%0*x", prefix, width, v);
    out += buf;
  };
  const auto* p = reinterpret_cast<const unsigned char*>(text.data());
  const std::size_t n = text.size();
  for (std::size_t i = 0; i < n;) {
    unsigned char c = p[i];
    if (c < 0x80) {
      if ((c < 0x20 && !(keep && (c == '\n' || c == '\t'))) || c == 0x7f) hex(c, "\\x", 2);
      else out.push_back(static_cast<char>(c));
      ++i;
      continue;
    }
    unsigned cp = 0;
    const std::size_t len = tokctl::utf8_sequence(text, i, cp);
    if (len == 0) {
      hex(c, "\\x", 2);
      ++i;
      continue;
    }
    bool dangerous = (cp >= 0x80 && cp <= 0x9F) ||                      // C1 controls (CSI = U+009B)
                     (cp >= 0x202A && cp <= 0x202E) || (cp >= 0x2066 && cp <= 0x2069) ||  // bidi
                     cp == 0x200E || cp == 0x200F || cp == 0x061C;          // direction marks
    if (dangerous) hex(cp, "\\u", 4);
    else out.append(text.substr(i, len));
    i += len;
  }
  return out;
}

std::string json_for_terminal(const nlohmann::json& j, int indent) {
  return terminal_safe(j.dump(indent, ' ', false, nlohmann::json::error_handler_t::replace), Newlines::keep);
}

void print_json(const nlohmann::json& j) {
  std::cout << j.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) << '\n';
}

void print_json_line(const nlohmann::json& j) {
  std::cout << j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) << '\n';
}

}  // namespace tokctl::cli
