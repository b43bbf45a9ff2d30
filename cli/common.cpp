#include "common.hpp"

#include <iostream>
#include <optional>

#include <CLI/CLI.hpp>

#include <tokctl/util/io.hpp>

#include "render.hpp"

namespace tokctl::cli {
namespace {

std::vector<std::pair<CLI::App*, std::function<int()>>>& actions() {
  static std::vector<std::pair<CLI::App*, std::function<int()>>> a;
  return a;
}

}  // namespace

GlobalOptions& globals() {
  static GlobalOptions g;
  return g;
}

bool json_output() { return globals().output == "json"; }

Result<const Clock*> clock() {
  static SystemClock system;
  static std::optional<FixedClock> fixed;
  static std::optional<Error> error;
  static bool done = false;
  if (!done) {
    done = true;
    if (!globals().now.empty()) {
      auto t = parse_time(globals().now, system.now());
      if (t) fixed.emplace(*t);
      else error = t.error();
    }
  }
  if (error) return std::unexpected(*error);
  if (fixed) return &*fixed;
  return &system;
}

void on_run(CLI::App* sub, std::function<int()> action) { actions().emplace_back(sub, std::move(action)); }

std::function<int()> selected_action(CLI::App&) {
  // The deepest parsed subcommand wins (keys generate over keys).
  std::function<int()> chosen;
  for (auto& [sub, action] : actions()) {
    if (sub->parsed()) chosen = action;
  }
  return chosen;
}

int report(const Error& error) {
  std::cerr << style(Stream::err, "31", "tokctl: error: ") << error.message << '\n';
  if (!error.hint.empty()) std::cerr << style(Stream::err, "33", "hint: ") << error.hint << '\n';
  return exit_code(error.code);
}

Result<std::string> read_arg(const std::string& value, bool trim_ws) {
  auto data = read_input(value.empty() ? "-" : value);
  if (!data) return data;
  if (trim_ws) return std::string(trim(*data));
  return data;
}

Result<std::string> read_token(const std::string& value) {
  if (value.empty() || value == "-") return read_arg("-", true);
  return std::string(trim(value));
}

void examples(CLI::App* sub, const std::vector<std::string>& lines) {
  std::string text = "\nExamples:\n";
  for (const auto& l : lines) text += "  " + l + "\n";
  sub->footer(text);
}

}  // namespace tokctl::cli
