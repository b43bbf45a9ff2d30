// tokctl revoke: a token, its grant, or every token of a client or subject (RFC 7009).

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

struct RevokeCli {
  std::string token;
  bool grant = false;
  std::string client_id;
  std::string sub;
  bool all = false;
};

int run_revoke(const RevokeCli& o) {
  if (!o.client_id.empty() || !o.sub.empty()) {
    if (!o.all) return report(Error{ErrorCode::usage, "--client-id/--sub revoke everything: add --all to confirm", {}});
    if (!o.token.empty()) return report(Error{ErrorCode::usage, "give a token, or --client-id/--sub with --all", {}});
  } else if (o.all) {
    return report(Error{ErrorCode::usage, "--all needs --client-id C or --sub S", {}});
  }
  auto svc = open_service();
  if (!svc) return report(svc.error());
  Result<int> n = 0;
  if (!o.client_id.empty()) {
    n = (*svc)->revoke_client(o.client_id);
  } else if (!o.sub.empty()) {
    n = (*svc)->revoke_subject(o.sub);
  } else {
    auto token = read_token(o.token);
    if (!token) return report(token.error());
    n = (*svc)->revoke(*token, o.grant);
  }
  if (!n) return report(n.error());
  if (json_output()) print_json({{"revoked", *n}});
  else if (!globals().quiet) std::cerr << "revoked " << *n << " token(s)\n";
  return 0;
}

}  // namespace

void register_revoke(CLI::App& app) {
  auto r = std::make_shared<RevokeCli>();
  auto* rev = app.add_subcommand("revoke", "Revoke a token, its grant, or all tokens of a client or subject (RFC 7009)");
  dash_positional(rev, file_value(rev->add_option("token", r->token, "The token, or - for stdin")));
  rev->add_flag("--grant", r->grant, "Revoke every token of the token's grant");
  rev->add_option("--client-id", r->client_id, "With --all: every token of this client");
  rev->add_option("--sub", r->sub, "With --all: every token of this subject");
  rev->add_flag("--all", r->all, "Confirm revoking everything of --client-id/--sub");
  examples(rev, {"tokctl revoke \"$TOKEN\"", "tokctl revoke \"$REFRESH\" --grant", "tokctl revoke --client-id web --all"});
  on_run(rev, [r] { return run_revoke(*r); });
}

}  // namespace tokctl::cli
