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
  std::string subject_token;
  std::string subject_token_type = "access_token";
  std::string actor_token;
  std::string actor_token_type;
  std::vector<std::string> audience;
  std::vector<std::string> resource;
  std::string scope;
  std::string requested_token_type = "access_token";
  std::string mode = "delegate";
  RemoteArgs remote;
};

// exchange --server: RFC 8693 §2.1 at the server's token endpoint, every parameter passed on.
int run_remote_exchange(const ExchangeCli& o, std::string subject, std::optional<std::string> actor) {
  if (auto r = refuse_local_options({{"--mode", o.mode != "delegate"}}); !r) return report(r.error());
  auto remote = open_remote(o.remote, {Endpoint::token}, true);
  if (!remote) return report(remote.error());
  remote::Fields params{{"grant_type", "urn:ietf:params:oauth:grant-type:token-exchange"},
                        {"subject_token", std::move(subject)},
                        {"subject_token_type", token_type_urn(o.subject_token_type)}};
  if (actor) {
    params.emplace_back("actor_token", std::move(*actor));
    params.emplace_back("actor_token_type", token_type_urn(o.actor_token_type.empty() ? "access_token" : o.actor_token_type));
  }
  for (const auto& a : o.audience) params.emplace_back("audience", a);
  for (const auto& r : o.resource) params.emplace_back("resource", r);
  if (!o.scope.empty()) params.emplace_back("scope", o.scope);
  params.emplace_back("requested_token_type", token_type_urn(o.requested_token_type));
  auto resp = (*remote)->client->token(std::move(params));
  if (!resp) return report(resp.error());
  return print_token_response(*resp, false);
}

int run_exchange(const ExchangeCli& o) {
  if (o.subject_token == "-" && o.actor_token == "-") {
    return report(Error{ErrorCode::usage, "only one of --subject-token and --actor-token can be read from stdin", {}});
  }
  if (!o.actor_token_type.empty() && o.actor_token.empty()) {
    return report(Error{ErrorCode::usage, "--actor-token-type needs --actor-token", {}});
  }
  tokens::ExchangeRequest req;
  auto subject = read_token(o.subject_token);
  if (!subject) return report(subject.error());
  if (subject->empty()) return report(Error{ErrorCode::usage, "the subject token is empty", {}});
  if (remote_requested(o.remote, true)) {
    std::optional<std::string> actor;
    if (!o.actor_token.empty()) {
      auto a = read_token(o.actor_token);
      if (!a) return report(a.error());
      if (a->empty()) return report(Error{ErrorCode::usage, "the actor token is empty", {}});
      actor = std::move(*a);
    }
    return run_remote_exchange(o, std::move(*subject), std::move(actor));
  }
  req.subject_token = std::move(*subject);
  req.subject_token_type = token_type_urn(o.subject_token_type);
  if (!o.actor_token.empty()) {
    auto actor = read_token(o.actor_token);
    if (!actor) return report(actor.error());
    if (actor->empty()) return report(Error{ErrorCode::usage, "the actor token is empty", {}});
    req.actor_token = std::move(*actor);
    if (!o.actor_token_type.empty()) req.actor_token_type = token_type_urn(o.actor_token_type);
  }
  req.audience = o.audience;
  req.resource = o.resource;
  req.scope = o.scope;
  req.requested_token_type = token_type_urn(o.requested_token_type);
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
  file_value(ex->add_option("--subject-token", o->subject_token, "The token to exchange, or - for stdin")->required());
  choice_value(ex->add_option("--subject-token-type", o->subject_token_type,
                              "access_token, jwt or id_token (or the full urn:ietf:params:oauth:token-type: URN)")
                   ->capture_default_str(),
               token_type_names(), ChoiceCheck::suggest);
  file_value(ex->add_option("--actor-token", o->actor_token,
                            "Token of the party acting for the subject (delegate), or - for stdin"));
  choice_value(ex->add_option("--actor-token-type", o->actor_token_type, "Type of the actor token (default: access_token)"),
               token_type_names(), ChoiceCheck::suggest);
  ex->add_option("--audience", o->audience, "Target audience (repeatable; default: the rule's first target)");
  ex->add_option("--resource", o->resource, "Target resource URI, treated as an audience (repeatable)");
  ex->add_option("--scope", o->scope,
                 "Space-separated scopes, within the subject token's and the rule's (default: all of those)");
  ex->add_option("--requested-token-type", o->requested_token_type,
                 "access_token or jwt (both give a JWT access token, typ at+jwt)")
      ->capture_default_str();
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
