// tokctl exchange: RFC 8693 token exchange against the local keystore, store and policy rules.

#include <iostream>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <tokctl/tokens/service.hpp>

#include "commands.hpp"
#include "common.hpp"
#include "remote.hpp"
#include "render.hpp"

namespace tokctl::cli {
namespace {

struct ExchangeCli {
  TokenExchangeArgs ex;
  std::string mode = "delegate";
  RemoteArgs remote;
};

// exchange --server: RFC 8693 §2.1 at the server's token endpoint, every parameter passed on.
int run_remote_exchange(const ExchangeCli& o, ExchangeTokens tokens) {
  if (auto r = refuse_local_options({{"--mode", o.mode != "delegate"}}); !r) return report(r.error());
  auto remote = open_remote(o.remote, {Endpoint::token}, true);
  if (!remote) return report(remote.error());
  auto resp = (*remote)->client->token(token_exchange_params(o.ex, std::move(tokens)));
  if (!resp) return report(resp.error());
  return print_token_response(*resp, false);
}

int run_exchange(const ExchangeCli& o) {
  auto tokens = read_exchange_tokens(o.ex);
  if (!tokens) return report(tokens.error());
  if (remote_requested(o.remote, true)) return run_remote_exchange(o, std::move(*tokens));
  if (auto r = refuse_remote_only({{"--dpop-key", !o.remote.dpop_key.empty()}}); !r) return report(r.error());
  tokens::ExchangeRequest req;
  req.subject_token = std::move(tokens->subject);
  req.subject_token_type = token_type_urn(o.ex.subject_token_type);
  if (tokens->actor) {
    req.actor_token = std::move(*tokens->actor);
    if (!o.ex.actor_token_type.empty()) req.actor_token_type = token_type_urn(o.ex.actor_token_type);
  }
  req.audience = o.ex.audience;
  req.resource = o.ex.resource;
  req.scope = o.ex.scope;
  req.requested_token_type = token_type_urn(o.ex.requested_token_type);
  req.mode = o.mode;

  auto svc = open_service();
  if (!svc) return report(svc.error());
  auto r = (*svc)->exchange(req);
  if (!r) return report(r.error());
  if (json_output()) print_json(r->to_json());
  else std::cout << r->access.token << '\n';
  return 0;
}

}  // namespace

void register_exchange(CLI::App& app) {
  auto o = std::make_shared<ExchangeCli>();
  auto* ex = app.add_subcommand(
      "exchange", "RFC 8693 token exchange under the policy's exchange rules: delegate (act), impersonate, embed");
  add_token_exchange_options(ex, o->ex);
  ex->get_option("--subject-token")->required();
  ex->add_option("--audience", o->ex.audience, "Target audience (repeatable; default: the rule's first target)");
  ex->add_option("--resource", o->ex.resource, "Target resource URI, treated as an audience (repeatable)");
  ex->add_option("--scope", o->ex.scope,
                 "Space-separated scopes, within the subject token's and the rule's (default: all of those)");
  ex->add_option("--mode", o->mode,
                 "delegate: add an act claim (nested for chains); impersonate: no act; embed: carry the subject "
                 "token in the subject_token claim")
      ->check(CLI::IsMember({"delegate", "impersonate", "embed"}))
      ->capture_default_str();
  examples(ex, {"tokctl exchange --subject-token \"$TOKEN\" --audience api-b",
                "tokctl exchange --subject-token \"$TOKEN\" --actor-token \"$SERVICE_TOKEN\" --audience api-b --scope read",
                "tokctl exchange --subject-token - --mode impersonate --resource https://api-b.test/ -o json < token.txt",
                "tokctl exchange --subject-token \"$TOKEN\" --mode embed --audience api-b | tokctl decode -",
                "tokctl exchange --server https://as.example --client-id gw --subject-token \"$TOKEN\" --audience api-b"});
  add_remote_options(ex, o->remote, RemoteOptions::client);
  add_dpop_option(ex, o->remote);
  ex->footer(ex->get_footer() +
             "\nRefusals exit 1 with an RFC 8693/6749 code (-o json also prints {\"error\", \"error_description\"}):\n"
             "  invalid_grant    the subject or actor token is unknown, expired, revoked, not signed by this\n"
             "                   keystore (forged, unknown crit, alg not allowed), has no subject, or its\n"
             "                   grant was revoked\n"
             "  invalid_target   no exchange rule for the subject's audience, or a target it does not allow\n"
             "  invalid_scope    a scope beyond the subject token's, the rule's, or what its client may request\n"
             "  invalid_request  a mode the rule does not allow, delegation without an actor, a refresh token\n"
             "                   as subject or actor, or an unsupported token type\n"
             "  invalid_client   the subject token's client is no longer in the policy\n"
             "Tokens issued without --client-id (client_id \"tokctl\") are exchanged the same way.\n"
             "With a server, its refusals exit 6 (an OAuth error response) and --mode is the server's choice.\n");
  on_run(ex, [o] { return run_exchange(*o); });
}

}  // namespace tokctl::cli
