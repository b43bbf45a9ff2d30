// tokctl revoke: a token, its grant, or every token of a client or subject (RFC 7009).

#include <iostream>
#include <memory>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <tokctl/tokens/service.hpp>

#include "commands.hpp"
#include "common.hpp"
#include "remote.hpp"
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
  std::string hint;
  RemoteArgs remote;
};

// revoke --server: RFC 7009 at the server's revocation endpoint (200 also for unknown tokens).
int run_remote_revoke(const RevokeCli& o) {
  if (auto r = refuse_local_options({{"--grant", o.grant}, {"--sub", !o.sub.empty()}, {"--all", o.all}}); !r) {
    return report(r.error());
  }
  auto remote = open_remote(o.remote, {Endpoint::revocation}, true);
  if (!remote) return report(remote.error());
  auto token = read_token(o.token);
  if (!token) return report(token.error());
  if (token->empty()) return report(Error{ErrorCode::usage, "the token is empty", {}});
  if (auto r = (*remote)->client->revoke(*token, o.hint); !r) return report(r.error());
  if (json_output()) print_json({{"revoked", true}});
  else if (!globals().quiet) std::cerr << "revoked (the server answers the same for tokens it does not know)\n";
  return 0;
}

int run_revoke(const RevokeCli& o) {
  if (remote_requested(o.remote, true)) return run_remote_revoke(o);
  if (auto r = refuse_remote_only({{"--token-type-hint", !o.hint.empty()}}); !r) return report(r.error());
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
  rev->add_option("--client-id", r->client_id, "With --all: every token of this client (with a server: the client to authenticate as)");
  rev->add_option("--sub", r->sub, "With --all: every token of this subject");
  rev->add_flag("--all", r->all, "Confirm revoking everything of --client-id/--sub");
  choice_value(rev->add_option("--token-type-hint", r->hint, "With a server: access_token or refresh_token"),
               {"access_token", "refresh_token"}, ChoiceCheck::suggest);
  r->remote.client_id = &r->client_id;
  add_remote_options(rev, r->remote, RemoteOptions::client);
  examples(rev, {"tokctl revoke \"$TOKEN\"", "tokctl revoke \"$REFRESH\" --grant", "tokctl revoke --client-id web --all",
                 "tokctl revoke \"$REFRESH\" --server https://as.example --client-id web --token-type-hint refresh_token"});
  on_run(rev, [r] { return run_revoke(*r); });
}

}  // namespace tokctl::cli
