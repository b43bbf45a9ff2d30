// tokctl introspect: RFC 7662 introspection of a local token, or its phantom JWT.

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

int run_introspect(const std::string& token_arg, bool as_jwt) {
  auto token = read_token(token_arg);
  if (!token) return report(token.error());
  auto svc = open_service();
  if (!svc) return report(svc.error());
  if (as_jwt) {
    auto jwt = (*svc)->phantom_jwt(*token);
    if (!jwt) return report(jwt.error());
    std::cout << *jwt << '\n';
    return 0;
  }
  auto r = (*svc)->introspect(*token);
  if (!r) return report(r.error());
  print_json(*r);
  return r->value("active", false) ? 0 : 1;
}

}  // namespace

void register_introspect(CLI::App& app) {
  auto it = std::make_shared<std::pair<std::string, bool>>();
  auto* intro = app.add_subcommand("introspect", "RFC 7662 introspection of a local token; --jwt for its phantom JWT");
  dash_positional(intro, file_value(intro->add_option("token", it->first, "The token, or - for stdin (default)")));
  intro->add_flag("--jwt", it->second,
                  "Print the phantom JWT of an active access token (signed by the keystore; revoked with its source)");
  examples(intro, {"tokctl introspect \"$OPAQUE\"", "tokctl introspect \"$OPAQUE\" --jwt | tokctl verify -"});
  on_run(intro, [it] { return run_introspect(it->first, it->second); });
}

}  // namespace tokctl::cli
