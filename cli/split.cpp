// tokctl split: the Split Token pattern (client part, gateway part stored by hash), and --join.

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

struct SplitCli {
  std::string token;
  std::string join;
  bool no_store = false;
};

int run_split(const SplitCli& o) {
  auto svc = open_service();
  if (!svc) return report(svc.error());
  if (!o.join.empty()) {
    auto part = read_token(o.join);
    if (!part) return report(part.error());
    auto jwt = (*svc)->join(*part);
    if (!jwt) return report(jwt.error());
    if (json_output()) print_json({{"token", *jwt}});  // -o json: one JSON document, as elsewhere
    else std::cout << *jwt << '\n';
    return 0;
  }
  auto token = read_token(o.token);
  if (!token) return report(token.error());
  auto r = (*svc)->split(*token, !o.no_store);
  if (!r) return report(r.error());
  if (o.no_store) {
    print_json({{"client_token", r->client_token}, {"gateway_key", r->gateway_key}, {"gateway_token", r->gateway_token}});
  } else if (json_output()) {
    print_json({{"client_token", r->client_token}, {"gateway_key", r->gateway_key}});
  } else {
    std::cout << r->client_token << '\n';
  }
  return 0;
}

}  // namespace

void register_split(CLI::App& app) {
  auto s = std::make_shared<SplitCli>();
  auto* split = app.add_subcommand("split", "Split Token pattern: client part = signature, gateway part stored by hash");
  dash_positional(split, file_value(split->add_option("token", s->token, "The JWT, or - for stdin")));
  split->add_option("--join", s->join, "Client part to join back into the full JWT");
  split->add_flag("--no-store", s->no_store, "Print client_token, gateway_key and gateway_token for an external gateway");
  examples(split, {"tokctl split \"$JWT\"", "tokctl split --join \"$CLIENT_PART\"", "tokctl split \"$JWT\" --no-store"});
  on_run(split, [s] { return run_split(*s); });
}

}  // namespace tokctl::cli
