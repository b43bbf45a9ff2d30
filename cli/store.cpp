// tokctl store prune: delete expired rows from the token store.

#include <iostream>
#include <memory>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <tokctl/tokens/service.hpp>

#include "commands.hpp"
#include "common.hpp"
#include "render.hpp"

namespace tokctl::cli {
namespace {

using nlohmann::json;

int run_store_prune() {
  auto svc = open_service();
  if (!svc) return report(svc.error());
  auto n = (*svc)->prune_store();
  if (!n) return report(n.error());
  if (json_output()) print_json({{"deleted", *n}});
  else if (!globals().quiet) std::cerr << "deleted " << *n << " expired row(s)\n";
  return 0;
}

}  // namespace

void register_store(CLI::App& app) {
  auto* store = app.add_subcommand("store", "Maintain the token store");
  store->require_subcommand(1);
  examples(store, {"tokctl store prune"});
  auto* prune = store->add_subcommand("prune", "Delete expired tokens, deny-list entries and empty grants");
  examples(prune, {"tokctl store prune", "tokctl store prune -o json"});
  on_run(prune, [] { return run_store_prune(); });
}

}  // namespace tokctl::cli
