#include "render.hpp"

#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <unistd.h>

#include <nlohmann/json.hpp>

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

void print_json(const nlohmann::json& j) {
  std::cout << j.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) << '\n';
}

void print_json_line(const nlohmann::json& j) {
  std::cout << j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) << '\n';
}

}  // namespace tokctl::cli
