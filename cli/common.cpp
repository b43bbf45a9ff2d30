#include "common.hpp"

#include <algorithm>
#include <cstdlib>
#include <iostream>
#include <optional>

#include <CLI/CLI.hpp>

#include <tokctl/jose/jwe.hpp>
#include <tokctl/keys/keystore.hpp>
#include <tokctl/tokens/policy.hpp>
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

Result<std::optional<std::string>> passphrase() {
  static std::optional<Result<std::optional<std::string>>> cached;
  if (cached) return *cached;
  const auto& file = globals().passphrase_file;
  if (!file.empty()) {
    auto data = read_input(file);
    if (!data) {
      cached = std::unexpected(data.error());
    } else {
      std::string p = std::move(*data);
      if (!p.empty() && p.back() == '\n') p.pop_back();
      if (!p.empty() && p.back() == '\r') p.pop_back();
      if (p.empty()) cached = fail(ErrorCode::usage, "the passphrase file '" + file + "' is empty");
      else cached = std::optional<std::string>(std::move(p));
    }
  } else if (const char* env = std::getenv("TOKCTL_PASSPHRASE"); env && *env) {
    cached = std::optional<std::string>(env);
  } else {
    cached = std::optional<std::string>();
  }
  return *cached;
}

std::string keystore_dir() { return keys::resolve_keystore_dir(globals().keystore); }

Result<const tokens::Policy*> policy() {
  static std::optional<Result<tokens::Policy>> cached;
  if (!cached) cached = tokens::load_policy(tokens::resolve_config_path(globals().config));
  if (!*cached) return std::unexpected(cached->error());
  return &**cached;
}

Result<std::unique_ptr<tokens::TokenService>> open_service() {
  auto p = policy();
  if (!p) return std::unexpected(p.error());
  auto ks = open_keystore(false);
  if (!ks) return std::unexpected(ks.error());
  auto pass = passphrase();
  if (!pass) return std::unexpected(pass.error());
  auto clk = clock();
  if (!clk) return std::unexpected(clk.error());
  return tokens::TokenService::open(**p, std::move(*ks), **clk, *pass);
}

Result<keys::Keystore> open_keystore(bool create) {
  auto clk = clock();
  if (!clk) return std::unexpected(clk.error());
  std::string dir = keystore_dir();
  const char* env = std::getenv("TOKCTL_KEYSTORE");
  if (globals().keystore.empty() && !(env && *env)) {
    // The policy may name the keystore when neither the flag nor the environment does.
    auto p = policy();
    if (!p) return std::unexpected(p.error());
    if (!(*p)->keystore.empty()) dir = (*p)->keystore;
  }
  return keys::Keystore::open(dir, **clk, create);
}

Result<std::string> unlock_key_material(std::string content, const std::string& name) {
  std::string_view text = trim(content);
  if (std::count(text.begin(), text.end(), '.') != 4 || text.find('{') != std::string_view::npos) return content;
  auto pass = passphrase();
  if (!pass) return std::unexpected(pass.error());
  if (!*pass) {
    return fail(ErrorCode::keystore, name + " is encrypted with a passphrase",
                "pass --passphrase-file FILE or set TOKCTL_PASSPHRASE");
  }
  auto pw = jose::Jwk::from_secret(**pass);
  if (!pw) return std::unexpected(pw.error());
  auto dec = jose::decrypt_compact(text, *pw);
  if (!dec) {
    return fail(ErrorCode::keystore, "cannot decrypt " + name + ": " + dec.error().message, "wrong passphrase?");
  }
  return std::move(dec->plaintext);
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
