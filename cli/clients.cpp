// tokctl clients add: a client for `tokctl serve` written into the policy file, with its secret
// hashed (generated: SHA-256; given with --secret-file: PBKDF2) and shown once.

#include <iostream>
#include <memory>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <tokctl/tokens/clients.hpp>

#include "commands.hpp"
#include "common.hpp"
#include "render.hpp"

namespace tokctl::cli {
namespace {

struct ClientsAddCli {
  tokens::NewClient client;
  std::string secret_file;
};

int run_clients_add(ClientsAddCli o) {
  const ConfigChoice config = config_choice();
  if (config.path.empty()) {
    return report(Error{ErrorCode::usage, "clients add writes the policy file, and none was given",
                        "pass --config FILE (created when missing) or set TOKCTL_CONFIG"});
  }
  if (!o.secret_file.empty()) {
    auto secret = read_arg(o.secret_file, true);
    if (!secret) return report(secret.error());
    if (secret->empty()) return report(Error{ErrorCode::usage, "the secret file is empty", {}});
    o.client.secret = std::move(*secret);
  }
  auto added = tokens::add_client(config.path, o.client);
  if (!added) return report(added.error());
  if (json_output()) {
    nlohmann::json j{{"client_id", added->id}, {"policy", config.path}};
    if (added->generated) j["client_secret"] = added->secret;
    print_json(j);
    return 0;
  }
  if (!globals().quiet) {
    std::cerr << "client '" << terminal_safe(added->id) << "' added to " << terminal_safe(config.path)
              << (added->generated ? "; its secret follows, shown this once (only its hash is kept)" : "") << '\n';
  }
  if (added->generated) std::cout << added->secret << '\n';
  return 0;
}

}  // namespace

void register_clients(CLI::App& app) {
  auto* clients = app.add_subcommand("clients", "Manage the clients of the token service (policy file)");
  clients->require_subcommand(1);
  // Its own examples: a subcommand inherits the root's footer otherwise.
  examples(clients, {"tokctl --config tokctl.yaml clients add billing --grant client_credentials --scope read",
                     "tokctl help clients add"});
  auto o = std::make_shared<ClientsAddCli>();
  auto* add = clients->add_subcommand("add", "Add a client to the policy file; a generated secret is printed once");
  add->add_option("name", o->client.id, "Client id")->required();
  choice_value(add->add_option("--grant", o->client.grants,
                               "Grant it may use: client_credentials, refresh_token, token_exchange, jwt_bearer "
                               "(repeatable; default: client_credentials and refresh_token), or none (a gateway or "
                               "API that only introspects)"),
               {"client_credentials", "refresh_token", "token_exchange", "jwt_bearer", "none"}, ChoiceCheck::suggest);
  add->add_option("--scope", o->client.scopes, "Scope it may request (repeatable)");
  add->add_option("--audience", o->client.audiences, "Audience it may get tokens for; the first is its default (repeatable)");
  choice_value(add->add_option("--format", o->client.format, "Access token format for it: jwt, opaque, wrapped or jwe"),
               {"jwt", "opaque", "wrapped", "jwe"}, ChoiceCheck::strict);
  add->add_option("--sector", o->client.sector, "Pairwise subject sector (its tokens get PPIDs)");
  add->add_flag("--certificate-bound", o->client.certificate_bound,
                "Its access tokens are bound to its TLS client certificate; serve then needs mTLS (RFC 8705)");
  add->add_flag("--dpop-bound", o->client.dpop_bound,
                "Its token requests must carry a DPoP proof; access tokens are bound to the proof's key (RFC 9449)");
  file_value(add->add_option("--secret-file", o->secret_file,
                             "Use this secret (a file, or - for stdin) instead of a generated one; stored as PBKDF2"));
  add->add_option("--iterations", o->client.iterations, "PBKDF2 iterations for a chosen secret (default 600000; 1000 to 10000000)");
  examples(add, {"tokctl --config tokctl.yaml clients add billing --grant client_credentials --scope read",
                 "printf '%s' \"$SECRET\" | tokctl --config tokctl.yaml clients add legacy --secret-file -"});
  on_run(add, [o] { return run_clients_add(*o); });
}

}  // namespace tokctl::cli
