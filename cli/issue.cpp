// tokctl issue: tokens per the policy, one or --count N; --refresh-token redeems a refresh token.

#include <algorithm>
#include <condition_variable>
#include <iostream>
#include <memory>
#include <mutex>
#include <optional>
#include <vector>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <tokctl/jose/json.hpp>
#include <tokctl/tokens/service.hpp>
#include <tokctl/util/io.hpp>

#include <unistd.h>

#include "commands.hpp"
#include "common.hpp"
#include "remote.hpp"
#include "render.hpp"

namespace tokctl::cli {
namespace {

using nlohmann::json;

struct IssueCli {
  std::string type = "access";
  std::string format;
  std::string client_id;
  std::string sub;
  std::vector<std::string> aud;
  std::string scope;
  std::string ttl;
  std::vector<std::string> claims;
  std::string claims_file;
  bool with_refresh = false;
  bool with_id_token = false;
  bool header = false;
  int count = 1;
  std::string refresh_token;
  std::string grant;                  ///< remote: client_credentials (default), jwt-bearer, token-exchange
  std::vector<std::string> resource;  ///< remote: RFC 8707 resource indicators
  std::string assertion_iss;          ///< remote jwt-bearer: the assertion's iss
  TokenExchangeArgs exchange;         ///< remote token-exchange: the tokens and types (aud, resource, scope above)
  RemoteArgs remote;
};

constexpr const char* k_urn_jwt_bearer = "urn:ietf:params:oauth:grant-type:jwt-bearer";
constexpr const char* k_urn_token_exchange = "urn:ietf:params:oauth:grant-type:token-exchange";

// The first RFC 8693 flag given (defaults aside), or nullptr: they belong to --grant token-exchange.
const char* exchange_flag_given(const TokenExchangeArgs& x) {
  if (!x.subject_token.empty()) return "--subject-token";
  if (x.subject_token_type != "access_token") return "--subject-token-type";
  if (!x.actor_token.empty()) return "--actor-token";
  if (!x.actor_token_type.empty()) return "--actor-token-type";
  if (x.requested_token_type != "access_token") return "--requested-token-type";
  return nullptr;
}

// issue --server: a grant at the server's token endpoint (RFC 6749 §4.4 client_credentials, §6
// refresh_token, RFC 7523 jwt-bearer with an assertion signed by the keystore, RFC 8693 token
// exchange with the request `exchange --server` sends).
int run_remote_issue(const IssueCli& o) {
  if (auto r = refuse_local_options({{"--type", o.type != "access"}, {"--format", !o.format.empty()},
                                     {"--ttl", !o.ttl.empty()}, {"--claim", !o.claims.empty()},
                                     {"--claims", !o.claims_file.empty()}, {"--with-refresh", o.with_refresh},
                                     {"--with-id-token", o.with_id_token}, {"--count", o.count != 1}});
      !r) {
    return report(r.error());
  }
  std::string grant = !o.refresh_token.empty() ? "refresh_token" : o.grant.empty() ? "client_credentials" : o.grant;
  if (grant == k_urn_jwt_bearer) grant = "jwt-bearer";
  if (grant == k_urn_token_exchange) grant = "token-exchange";
  if (grant != "client_credentials" && grant != "jwt-bearer" && grant != "token-exchange" && grant != "refresh_token") {
    return report(Error{ErrorCode::usage,
                        "--grant must be client_credentials, jwt-bearer or token-exchange (refresh: --refresh-token)",
                        {}});
  }
  if (grant == "client_credentials" && !o.sub.empty()) {
    return report(Error{ErrorCode::usage, "client_credentials has no subject: --sub needs --grant jwt-bearer", {}});
  }
  std::optional<ExchangeTokens> exchange_tokens;
  if (grant == "token-exchange") {
    if (o.exchange.subject_token.empty()) {
      return report(Error{ErrorCode::usage, "--grant token-exchange needs --subject-token", {}});
    }
    if (!o.sub.empty()) {
      return report(Error{ErrorCode::usage, "a token exchange's subject is the --subject-token's: drop --sub", {}});
    }
    auto read = read_exchange_tokens(o.exchange);
    if (!read) return report(read.error());
    exchange_tokens = std::move(*read);
  } else if (const char* flag = exchange_flag_given(o.exchange)) {
    return report(Error{ErrorCode::usage, std::string(flag) + " needs --grant token-exchange", {}});
  }
  auto remote = open_remote(o.remote, {Endpoint::token}, true);
  if (!remote) return report(remote.error());
  remote::Fields params;
  if (exchange_tokens) {
    // --aud, --resource and --scope are the exchange's audience, resource and scope.
    TokenExchangeArgs x = o.exchange;
    x.audience = o.aud;
    x.resource = o.resource;
    x.scope = o.scope;
    auto resp = (*remote)->client->token(token_exchange_params(x, std::move(*exchange_tokens)));
    if (!resp) return report(resp.error());
    return print_token_response(*resp, o.header);
  }
  if (grant == "refresh_token") {
    auto token = read_token(o.refresh_token);
    if (!token) return report(token.error());
    params = {{"grant_type", "refresh_token"}, {"refresh_token", *token}};
  } else if (grant == "jwt-bearer") {
    if (o.sub.empty()) return report(Error{ErrorCode::usage, "--grant jwt-bearer needs --sub (the assertion's subject)", {}});
    std::string iss = o.assertion_iss;
    if (iss.empty()) {
      auto p = policy();
      if (!p) return report(p.error());
      iss = (*p)->issuer;
    }
    const auto& ep = (*remote)->endpoints;
    auto assertion = mint_assertion("", iss, o.sub, ep.issuer.empty() ? ep.token_endpoint : ep.issuer);
    if (!assertion) return report(assertion.error());
    params = {{"grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"}, {"assertion", *assertion}};
  } else {
    params = {{"grant_type", "client_credentials"}};
  }
  if (!o.scope.empty()) params.emplace_back("scope", o.scope);
  for (const auto& a : o.aud) params.emplace_back("audience", a);
  for (const auto& r : o.resource) params.emplace_back("resource", r);
  auto resp = (*remote)->client->token(std::move(params));
  if (!resp) return report(resp.error());
  return print_token_response(*resp, o.header);
}

void progress(int done, int total) {
  if (total < 1000 || !::isatty(STDERR_FILENO) || globals().quiet) return;
  if (done % (total / 100 ? total / 100 : 1) != 0 && done != total) return;
  int width = 30, filled = static_cast<int>(static_cast<long>(done) * width / total);
  std::cerr << "\r[" << std::string(static_cast<std::size_t>(filled), '#')
            << std::string(static_cast<std::size_t>(width - filled), ' ') << "] " << done << "/" << total
            << (done == total ? "\n" : "") << std::flush;
}

void print_issued(const tokens::IssueResponse& r, const IssueCli& o) {
  if (json_output()) {
    if (o.count > 1) print_json_line(r.to_json());
    else print_json(r.to_json());
  } else {
    // Every token goes to stdout, whatever -q says: the access token, then the refresh token, then
    // the ID token, one per line (with --count N, the lines of one issuance follow each other).
    std::cout << (o.header ? "Authorization: Bearer " : "") << r.access.token << '\n';
    if (r.refresh) std::cout << r.refresh->token << '\n';
    if (r.id_token) std::cout << r.id_token->token << '\n';
    if (o.count == 1 && !globals().quiet && !r.expired_scope.empty()) {
      std::cerr << "note: scopes past their TTL were not granted: " << tokens::join_scopes(r.expired_scope) << '\n';
    }
  }
}

// issue --refresh-token: RFC 6749 §6 redemption (rotation and reuse detection in core).
int run_refresh(const IssueCli& o) {
  auto token = read_token(o.refresh_token);
  if (!token) return report(token.error());
  auto svc = open_service();
  if (!svc) return report(svc.error());
  auto r = (*svc)->refresh(tokens::RefreshRequest{*token, o.client_id, o.scope, {}, {}});
  if (!r) return report(r.error());
  print_issued(*r, o);
  return 0;
}

int run_issue(const IssueCli& o) {
  if (remote_requested(o.remote, true)) return run_remote_issue(o);
  const char* exchange_flag = exchange_flag_given(o.exchange);
  if (auto r = refuse_remote_only({{"--grant", !o.grant.empty()}, {"--resource", !o.resource.empty()},
                                   {"--dpop-key", !o.remote.dpop_key.empty()},
                                   {"--assertion-iss", !o.assertion_iss.empty()},
                                   {exchange_flag ? exchange_flag : "", exchange_flag != nullptr}});
      !r) {
    return report(r.error());
  }
  if (!o.refresh_token.empty()) return run_refresh(o);
  tokens::IssueRequest req;
  req.type = o.type;
  req.format = o.format;
  req.client_id = o.client_id;
  req.sub = o.sub;
  req.aud = o.aud;
  req.scope = o.scope;
  req.with_refresh = o.with_refresh;
  req.with_id_token = o.with_id_token;
  if (!o.ttl.empty()) {
    auto d = parse_duration(o.ttl);
    if (!d) return report(d.error());
    req.ttl = *d;
  }
  if (!o.claims_file.empty()) {
    auto text = read_arg(o.claims_file, false);
    if (!text) return report(text.error());
    auto j = jose::parse_json_object(*text, "--claims");
    if (!j) return report(j.error());
    req.claims = std::move(*j);
  }
  for (const auto& c : o.claims) {
    auto eq = c.find('=');
    if (eq == std::string::npos || eq == 0) {
      return report(Error{ErrorCode::usage, "--claim expects NAME=VALUE, got '" + c + "'", {}});
    }
    auto value = claim_value("--claim " + c.substr(0, eq), c.substr(eq + 1));
    if (!value) return report(value.error());
    req.claims[c.substr(0, eq)] = std::move(*value);
  }
  if (o.count < 1) return report(Error{ErrorCode::usage, "--count must be at least 1", {}});
  auto svc = open_service();
  if (!svc) return report(svc.error());
  if (o.count == 1) {
    auto r = (*svc)->issue(req);
    if (!r) return report(r.error());
    print_issued(*r, o);
    return 0;
  }
  // Many tokens: made and stored in chunks of one grant, pipelined: while the store's writer
  // thread commits chunk k (and, for wrapped tokens, builds its rows), this thread signs chunk k+1.
  // A chunk is printed only once committed (no token is handed out that the store does not know).
  // Two chunks are waited for with nothing to overlap: the first (the others continue its grant,
  // which must be in the store) and the last; so both are small: 100 tokens, then the rest of the
  // first 1000, then 2500 at a time, shrinking towards the end (each about half of what is left).
  std::ios::sync_with_stdio(false);
  constexpr int k_first_chunk = 100;
  constexpr int k_ramp = 1000;       // the first chunks end here
  constexpr int k_chunk = 2500;      // a chunk costs a grant look-up and one token made the slow way
  constexpr int k_last_chunk = 100;  // the last chunk holds at most twice this
  auto chunk_size = [&](int made) {
    const int left = o.count - made;
    if (made == 0) return std::min(k_first_chunk, left);
    if (made == k_first_chunk && left >= 2 * (k_ramp - made)) return k_ramp - made;
    return left <= 2 * k_last_chunk ? left : std::min(k_chunk, (left + 1) / 2);
  };
  struct Pending {
    std::mutex m;
    std::condition_variable cv;
    std::optional<Result<std::vector<tokens::IssueResponse>>> result;
  };
  auto submit = [&](int n) {
    auto p = std::make_shared<Pending>();
    (*svc)->issue_many_async(req, n, [p](Result<std::vector<tokens::IssueResponse>> r) {
      std::lock_guard lock(p->m);
      p->result = std::move(r);
      p->cv.notify_all();
    });
    return p;
  };
  auto wait = [](Pending& p) {
    std::unique_lock lock(p.m);
    p.cv.wait(lock, [&] { return p.result.has_value(); });
    return std::move(*p.result);
  };
  int printed = 0;
  auto print_chunk = [&](const std::vector<tokens::IssueResponse>& batch) {
    for (const auto& r : batch) print_issued(r, o);
    printed += static_cast<int>(batch.size());
    progress(printed, o.count);
  };
  std::shared_ptr<Pending> in_flight;
  for (int made = 0; made < o.count;) {
    const int n = chunk_size(made);
    auto next = submit(n);
    made += n;
    if (in_flight) {
      auto previous = wait(*in_flight);
      in_flight.reset();
      if (!previous) {
        (void)wait(*next);  // let the last write finish before the store closes
        return report(previous.error());
      }
      print_chunk(*previous);
    }
    in_flight = next;
    if (req.grant_id.empty()) {
      auto first = wait(*in_flight);
      in_flight.reset();
      if (!first) return report(first.error());
      req.grant_id = first->front().grant_id;  // later chunks continue the same grant
      print_chunk(*first);
    }
  }
  if (in_flight) {
    auto last = wait(*in_flight);
    if (!last) return report(last.error());
    print_chunk(*last);
  }
  std::cout.flush();
  return 0;
}

}  // namespace

void register_issue(CLI::App& app) {
  auto o = std::make_shared<IssueCli>();
  auto* issue = app.add_subcommand("issue", "Issue tokens per the policy: JWT (at+jwt), opaque, wrapped, JWE, refresh, ID");
  issue->add_option("--type", o->type, "access, refresh or id")->check(CLI::IsMember({"access", "refresh", "id"}))
      ->capture_default_str();
  issue->add_option("--format", o->format, "jwt, opaque, wrapped or jwe (default: the client's, else the policy's)")
      ->check(CLI::IsMember({"jwt", "opaque", "wrapped", "jwe"}));
  issue->add_option("--client-id", o->client_id, "Client the token is issued to");
  issue->add_option("--sub", o->sub, "Subject (pairwise per sector when the client has one)");
  issue->add_option("--aud,--audience", o->aud,
                    "Audience (repeatable; default: the client's first). With a server: sent as audience");
  issue->add_option("--scope", o->scope, "Space-separated scopes (prefix scopes allowed)");
  issue->add_option("--ttl", o->ttl, "Lifetime (default: the policy's for the type; at most tokens.max_lifetime)");
  issue->add_option("--claim", o->claims, "Extra claim NAME=VALUE (VALUE parsed as JSON if valid)");
  file_value(issue->add_option("--claims", o->claims_file, "Extra claims from a JSON object file, or - for stdin"));
  issue->add_flag("--with-refresh", o->with_refresh,
                  "Also issue a refresh token in the same grant (printed on the next line of stdout)");
  issue->add_flag("--with-id-token", o->with_id_token,
                  "Also issue an ID token (aud = client_id, at_hash set; printed after the refresh token)");
  issue->add_flag("--header", o->header, "Print 'Authorization: Bearer TOKEN'");
  auto* count = issue->add_option("--count", o->count, "Issue N tokens, one per line (JSON lines with -o json)");
  auto* refresh = file_value(issue->add_option(
      "--refresh-token", o->refresh_token,
      "Redeem this refresh token (or a file, or - for stdin): a new access token in its grant; with "
      "tokens.refresh.rotate also a new refresh token, and reusing the old one revokes the grant"));
  for (const char* name : {"--type", "--format", "--sub", "--aud", "--ttl", "--claim", "--claims", "--with-refresh",
                           "--with-id-token"})
    refresh->excludes(issue->get_option(name));
  refresh->excludes(count);
  auto* grant = choice_value(issue->add_option("--grant", o->grant,
                                 "With a server: client_credentials (default), jwt-bearer (an assertion for --sub "
                                 "signed by the keystore) or token-exchange (RFC 8693: --subject-token, --actor-token, "
                                 "their types, --requested-token-type, --aud, --resource, --scope); also by grant URN"),
               {"client_credentials", "jwt-bearer", "token-exchange", k_urn_jwt_bearer, k_urn_token_exchange},
               ChoiceCheck::strict);
  refresh->excludes(grant);  // --refresh-token is the refresh_token grant
  issue->add_option("--resource", o->resource, "With a server: RFC 8707 resource indicator (repeatable)");
  issue->add_option("--assertion-iss", o->assertion_iss,
                    "With --grant jwt-bearer: the assertion's iss (default: the policy's issuer)");
  add_token_exchange_options(issue, o->exchange, "Token exchange (with a server and --grant token-exchange)");
  o->remote.client_id = &o->client_id;
  add_remote_options(issue, o->remote, RemoteOptions::client);
  add_dpop_option(issue, o->remote);
  examples(issue, {"tokctl issue --client-id web --sub alice --scope 'read write'",
                   "tokctl issue --format opaque --sub ci --scope read --ttl 5m -o json",
                   "tokctl issue --sub alice --with-refresh --with-id-token -o json",
                   "curl -H \"$(tokctl issue --sub alice --header)\" https://api.test/",
                   "tokctl issue --count 10000 --format opaque --sub load > tokens.txt",
                   "tokctl issue --refresh-token \"$REFRESH\" --scope read   # rotates the refresh token",
                   "tokctl issue --server https://as.example --client-id ci --client-secret-file ci.secret --scope read",
                   "tokctl issue --profile staging --grant jwt-bearer --sub alice -o json",
                   "tokctl issue --profile staging --grant token-exchange --subject-token \"$TOKEN\" --aud api-b"});
  on_run(issue, [o] { return run_issue(*o); });
}

}  // namespace tokctl::cli
