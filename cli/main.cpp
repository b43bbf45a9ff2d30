// tokctl entry point: build the command tree, parse, dispatch, map errors to exit codes.

#include <iostream>

#include <CLI/CLI.hpp>

#include "commands.hpp"
#include "common.hpp"

namespace tokctl::cli {

void build_app(CLI::App& app) {
  app.name("tokctl");
  app.description(
      "tokctl: issue, sign, verify, decode and manage OAuth/JOSE tokens and keys.\n"
      "Exit codes: 0 ok, 1 token invalid, 2 usage, 3 malformed input, 4 keystore/store, 5 network, "
      "6 remote OAuth error.");
  app.set_version_flag("--version", std::string("tokctl ") + TOKCTL_VERSION);
  app.require_subcommand(0, 1);
  app.fallthrough();
  auto& g = globals();
  app.add_option("-o,--output", g.output, "Output format: text or json")
      ->check(CLI::IsMember({"text", "json"}))
      ->capture_default_str();
  app.add_option("--now", g.now,
                 "Pretend the current time is TIME: RFC 3339, Unix seconds, or +DUR/-DUR (e.g. -1h)");
  app.add_flag("--no-color", g.no_color, "Never use colour (also honoured: NO_COLOR)");
  app.add_flag("-q,--quiet", g.quiet, "Print only what scripts need (tokens, errors)");
  app.add_option("--keystore", g.keystore,
                 "Keystore directory (default: $TOKCTL_KEYSTORE, else $XDG_DATA_HOME/tokctl)");
  app.add_option("--passphrase-file", g.passphrase_file,
                 "Passphrase for keys encrypted at rest and for PBES2 (default: $TOKCTL_PASSPHRASE)");
  app.add_option("--config", g.config, "Policy file (default: $TOKCTL_CONFIG, else ./tokctl.yaml if present)");
  app.footer("\nExamples:\n"
             "  tokctl keys generate --alg ES256 --out key.jwk\n"
             "  tokctl sign --key key.jwk --sub alice --aud api --exp +15m\n"
             "  tokctl verify \"$TOKEN\" --key key.jwk --aud api\n"
             "  tokctl decode \"$TOKEN\"\n"
             "  tokctl help <command>   # every command's help has examples\n");
  register_decode(app);
  register_sign(app);
  register_verify(app);
  register_encrypt(app);
  register_keys(app);
  register_config(app);
  register_tokens(app);
  register_exchange(app);
  register_completion(app);

  auto* help = app.add_subcommand("help", "Show help for tokctl or for one command");
  auto topic = std::make_shared<std::vector<std::string>>();
  help->add_option("command", *topic, "Command path, e.g. 'keys generate'");
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

int main(int argc, char** argv) {
  CLI::App app;
  tokctl::cli::build_app(app);
  try {
    app.parse(argc, argv);
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
  auto action = tokctl::cli::selected_action(app);
  if (!action) {
    std::cout << app.help();
    return 0;
  }
  if (auto c = tokctl::cli::clock(); !c) return tokctl::cli::report(c.error());
  return action();
}
