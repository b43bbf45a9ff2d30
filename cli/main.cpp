// tokctl entry point: build the command tree, parse, dispatch, map errors to exit codes.

#include <algorithm>
#include <cctype>
#include <iostream>
#include <optional>
#include <string>
#include <vector>

#include <csignal>
#include <sys/prctl.h>
#include <sys/resource.h>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "commands.hpp"
#include "common.hpp"

#include <tokctl/util/utf8.hpp>

namespace tokctl::cli {

namespace {

// The commands a run may build alone (see leading_command); help, completion and __spec describe
// the whole tree and always get all of it.
struct CommandEntry {
  std::string_view name;
  void (*add)(CLI::App&);
};
constexpr CommandEntry k_commands[] = {
    {"decode", register_decode},     {"sign", register_sign},     {"verify", register_verify},
    {"encrypt", register_encrypt},   {"decrypt", register_decrypt}, {"keys", register_keys},
    {"config", register_config},     {"issue", register_issue},   {"introspect", register_introspect},
    {"revoke", register_revoke},     {"split", register_split},   {"store", register_store},
    {"exchange", register_exchange}, {"clients", register_clients}, {"serve", register_serve},
};

}  // namespace

std::string_view leading_command(int argc, const char* const* argv) {
  static constexpr std::string_view with_value[] = {"-o", "--output", "--now", "--keystore", "--passphrase-file",
                                                    "--config"};
  static constexpr std::string_view flags[] = {"--no-color", "-q", "--quiet", "-v", "--verbose"};
  auto in = [](const auto& set, std::string_view a) { return std::find(std::begin(set), std::end(set), a) != std::end(set); };
  for (int i = 1; i < argc; ++i) {
    const std::string_view a = argv[i];
    if (a.empty() || a == "-" || a == "--") return {};
    if (a[0] != '-') {
      for (const auto& c : k_commands)
        if (c.name == a) return c.name;
      return {};
    }
    if (in(flags, a)) continue;
    if (in(with_value, a)) {
      ++i;
      continue;
    }
    if (auto eq = a.find('='); a.starts_with("--") && eq != std::string_view::npos && in(with_value, a.substr(0, eq))) continue;
    if (a.starts_with("-o") && a.size() > 2 && a[2] != '-') continue;  // -ojson
    return {};  // --help, --version, combined or unknown flags: the whole tree decides
  }
  return {};
}

void build_app(CLI::App& app) { build_app(app, {}); }

namespace {

// Values become claims, headers, kids, client ids and policy entries, all JSON strings, which must
// be UTF-8 (RFC 8259 §8.1): refused here, naming the option, instead of failing deep inside a
// command. File and directory names are the file system's bytes and are left alone.
// An option given an empty value is refused too: each command reads an empty value as the option
// not given, so `verify --key "$UNSET"` would verify against the keystore and `--aud "$UNSET"`
// would check no audience (failing open), and `--now ''` would use the real clock. No option
// means anything by an empty value; a positional argument (a token, a payload) is the command's
// to judge.
Result<void> check_utf8_values(CLI::App& app) {
  for (CLI::App* cmd = &app; cmd;) {
    for (CLI::Option* opt : cmd->get_options()) {
      if (opt->count() == 0) continue;
      if (opt->nonpositional() && opt->get_type_size() != 0) {
        for (const std::string& v : opt->results()) {
          if (v.empty()) {
            return fail(ErrorCode::usage, opt->get_name() + ": the value is empty",
                        "give a value, or leave the option out (an unset shell variable expands to nothing)");
          }
        }
      }
      const ValueKind kind = value_hint(*opt).kind;
      if (kind == ValueKind::file || kind == ValueKind::directory) continue;
      for (const std::string& v : opt->results()) {
        if (const std::size_t at = utf8_error_offset(v); at != v.size()) {
          const std::string name = opt->get_name().empty() ? std::string("a value") : opt->get_name();
          return fail(ErrorCode::usage,
                      name + ": value is not valid UTF-8 text (byte " + std::to_string(at + 1) + ")",
                      "claims, headers and ids are JSON strings, which must be UTF-8");
        }
      }
    }
    auto subs = cmd->get_subcommands();
    cmd = subs.empty() ? nullptr : subs.front();
  }
  return {};
}

}  // namespace

void build_app(CLI::App& app, std::string_view only) {
  app.name("tokctl");
  app.description(
      "tokctl: issue, sign, verify, decode and manage OAuth/JOSE tokens and keys.\n"
      "Exit codes: 0 ok, 1 token invalid, 2 usage, 3 malformed input, 4 keystore/store, 5 network, "
      "6 remote OAuth error, 70 internal error (a bug).");
  app.set_version_flag("--version", std::string("tokctl ") + TOKCTL_VERSION);
  app.require_subcommand(0, 1);
  app.fallthrough();
  // Unrecognised arguments of any command end up here (fallthrough) instead of failing the parse:
  // claim_dash_values() hands values such as "-Xy..." kids to dash positionals and reports the
  // rest as CLI11 would (exit 2).
  app.allow_extras();
  auto& g = globals();
  app.add_option("-o,--output", g.output, "Output format: text or json")
      ->check(CLI::IsMember({"text", "json"}))
      ->capture_default_str();
  app.add_option("--now", g.now,
                 "Pretend the current time is TIME: RFC 3339, Unix seconds, or +DUR/-DUR (e.g. -1h)");
  app.add_flag("--no-color", g.no_color, "Never use colour (also honoured: NO_COLOR)");
  app.add_flag("-q,--quiet", g.quiet, "Print only what scripts need (tokens, errors)");
  dir_value(app.add_option("--keystore", g.keystore,
                           "Keystore directory (default: $TOKCTL_KEYSTORE, else $XDG_DATA_HOME/tokctl)"));
  file_value(app.add_option("--passphrase-file", g.passphrase_file,
                            "Passphrase for keys encrypted at rest and for PBES2 (default: $TOKCTL_PASSPHRASE)"));
  file_value(app.add_option("--config", g.config,
                            "Policy file (default: $TOKCTL_CONFIG; ./tokctl.yaml is never read implicitly)"));
  app.add_flag("-v,--verbose", g.verbose, "Say which policy and keystore this run uses (on stderr)");
  app.footer("\nExamples:\n"
             "  tokctl keys generate --alg ES256 --out key.jwk\n"
             "  tokctl sign --key key.jwk --sub alice --aud api --exp +15m\n"
             "  tokctl verify \"$TOKEN\" --key key.jwk --aud api\n"
             "  tokctl decode \"$TOKEN\"\n"
             "  tokctl help <command>   # every command's help has examples\n");
  for (const auto& c : k_commands)
    if (only.empty() || only == c.name) c.add(app);
  if (!only.empty()) return;
  register_completion(app);

  auto* help = app.add_subcommand("help", "Show help for tokctl or for one command");
  auto topic = std::make_shared<std::vector<std::string>>();
  command_value(help->add_option("command", *topic, "Command path, e.g. 'keys generate'"));
  examples(help, {"tokctl help", "tokctl help verify", "tokctl help keys rotate"});
  on_run(help, [&app, topic] {
    CLI::App* target = &app;
    for (const auto& name : *topic) {
      try {
        target = target->get_subcommand(name);
      } catch (const CLI::OptionNotFound&) {
        std::cerr << "tokctl: error: no command '" << name << "'\n";
        return 2;
      }
    }
    // Usage lines show the full path ("tokctl keys generate"), as --help does.
    std::string prefix = "tokctl";
    for (std::size_t i = 0; i + 1 < topic->size(); ++i) prefix += " " + (*topic)[i];
    if (topic->empty()) {
      // App::help() would describe the parsed subcommand ("help" itself): format the root directly.
      std::cout << app.get_formatter()->make_help(&app, app.get_name(), CLI::AppFormatMode::Normal);
    } else {
      std::cout << target->help(prefix);
    }
    return 0;
  });
}

}  // namespace tokctl::cli

namespace {

// Before any key is read: no core dump can carry a private key or secret (prctl also keeps
// /proc/PID/mem and ptrace-attach from other processes of the same user out), and a full
// RLIMIT_FSIZE makes write() fail with EFBIG (a clean exit 4) instead of killing the process.
void harden_process() {
  ::prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
  struct rlimit no_core{0, 0};
  ::setrlimit(RLIMIT_CORE, &no_core);
  ::signal(SIGXFSZ, SIG_IGN);
}

int run_main(int argc, char** argv) {
  CLI::App app;
  // Only the named command's options are built (a one-shot `verify` need not construct the
  // hundreds of options of the other commands); help, completion and anything unclear build all.
  tokctl::cli::build_app(app, tokctl::cli::leading_command(argc, argv));
  std::vector<std::string> args(argv + 1, argv + argc);
  const auto held = tokctl::cli::hold_dash_values(app, args);
  std::reverse(args.begin(), args.end());  // CLI11 takes a vector last argument first
  try {
    app.parse(args);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::cerr << "tokctl: error: " << e.what() << "\n";
    std::cerr << "hint: run 'tokctl help' or 'tokctl <command> --help'\n";
    return 2;
  }
  if (auto claimed = tokctl::cli::claim_dash_values(app, held); !claimed) return tokctl::cli::report(claimed.error());
  if (auto text = tokctl::cli::check_utf8_values(app); !text) return tokctl::cli::report(text.error());
  auto action = tokctl::cli::selected_action(app);
  if (!action) {
    std::cout << app.help();
    return 0;
  }
  if (auto c = tokctl::cli::clock(); !c) return tokctl::cli::report(c.error());
  const int rc = action();
  if (rc != 0 && rc != 1) return rc;  // an error, reported by the command
  // Every command's output, checked once: a result that never reached standard output is no
  // success, and neither is a verdict (exit 1: the token is invalid, here is why) nobody got.
  if (auto written = tokctl::cli::flush_stdout(); !written) return tokctl::cli::report(written.error());
  return rc;
}

}  // namespace

int main(int argc, char** argv) {
  harden_process();
  // The one place an exception may end up: anything that escapes is a bug, reported as an
  // internal error (exit 70, EX_SOFTWARE) instead of std::terminate and an abort.
  try {
    return run_main(argc, argv);
  } catch (const nlohmann::json::type_error& e) {
    // 316: a string that is not UTF-8 reached a JSON document. Every input that becomes a claim,
    // a header or a policy value is checked where it is read; this catches one that is not (still
    // reported as a bug, but as malformed input rather than a crash of the command's meaning).
    if (e.id == 316) {
      std::cerr << "tokctl: error: a value is not valid UTF-8 text, so it cannot go into a JSON document\n"
                << "hint: this input should have been refused where it was read; please report it (without secrets)\n";
      return tokctl::exit_code(tokctl::ErrorCode::malformed);
    }
    std::cerr << "tokctl: internal error: " << e.what() << "\n";
  } catch (const std::bad_alloc&) {
    std::cerr << "tokctl: internal error: out of memory\n";
  } catch (const std::exception& e) {
    std::cerr << "tokctl: internal error: " << e.what() << "\n";
  } catch (...) {
    std::cerr << "tokctl: internal error: unknown exception\n";
  }
  std::cerr << "hint: this is a bug in tokctl; please report it with the command line (without secrets)\n";
  return tokctl::cli::k_exit_internal;
}
