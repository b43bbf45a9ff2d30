// tokctl config check: validate the policy file, reporting every problem with file:line:column.

#include <iostream>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <tokctl/tokens/policy.hpp>

#include <unistd.h>

#include "commands.hpp"
#include "common.hpp"
#include "render.hpp"

namespace tokctl::cli {
namespace {

int run_config_check(const std::string& file) {
  // Checking only validates: here (and only here) a ./tokctl.yaml is a fine default to look at.
  std::string path = file.empty() ? config_choice().path : file;
  if (path.empty() && ::access("tokctl.yaml", F_OK) == 0) path = "tokctl.yaml";
  if (path.empty()) {
    return report(Error{ErrorCode::usage, "no policy file to check",
                        "pass a FILE or --config FILE, set TOKCTL_CONFIG, or create ./tokctl.yaml "
                        "(see examples/tokctl.yaml)"});
  }
  auto c = tokens::check_policy(path);
  if (json_output()) {
    print_json({{"file", path}, {"ok", c.problems.empty()}, {"problems", c.problems}});
  } else if (c.problems.empty()) {
    if (!globals().quiet) {
      const auto& p = c.policy;
      std::cout << path << ": ok (issuer " << p.issuer << ", " << p.scopes.size() << " scope rule(s), "
                << p.clients.size() << " client(s), " << p.exchange.size() << " exchange rule(s))\n";
    }
  } else {
    for (const auto& p : c.problems) std::cerr << p << '\n';
  }
  if (c.problems.empty()) return 0;
  std::cerr << "tokctl: error: " << path << " has " << c.problems.size() << " problem(s)\n";
  return exit_code(ErrorCode::malformed);
}

}  // namespace

void register_config(CLI::App& app) {
  auto* config = app.add_subcommand("config", "Work with the policy file (tokctl.yaml)");
  config->require_subcommand(1);
  examples(config, {"tokctl config check --config tokctl.yaml"});
  auto file = std::make_shared<std::string>();
  auto* check = config->add_subcommand("check", "Validate the policy file; every problem with file:line:column");
  file_value(check->add_option("file", *file, "Policy file (default: --config, $TOKCTL_CONFIG, ./tokctl.yaml)"));
  examples(check, {"tokctl config check tokctl.yaml", "tokctl --config examples/tokctl.yaml config check -o json"});
  on_run(check, [file] { return run_config_check(*file); });
}

}  // namespace tokctl::cli
