// tokctl exchange: RFC 8693 token exchange against the local keystore, store and policy rules.

#include <iostream>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <tokctl/tokens/service.hpp>

#include "commands.hpp"
#include "common.hpp"
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
};

// "access_token" or the full URN -> the URN; anything else is passed on (the service refuses it).
std::string token_type_urn(const std::string& value) {
  for (const char* urn : {tokens::k_urn_access_token, tokens::k_urn_refresh_token, tokens::k_urn_id_token,
                          tokens::k_urn_jwt}) {
    std::string u = urn;
    if (value == u || value == u.substr(u.rfind(':') + 1)) return u;
  }
  return value;
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
                "tokctl exchange --subject-token \"$TOKEN\" --mode embed --audience api-b | tokctl decode -"});
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
             "Tokens issued without --client-id (client_id \"tokctl\") are exchanged the same way.\n");
  on_run(ex, [o] { return run_exchange(*o); });
}

}  // namespace tokctl::cli
