// tokctl introspect: RFC 7662 introspection of a local token, or its phantom JWT; with a server,
// RFC 7662 at its introspection endpoint (RFC 9701 JWT answers verified against its JWKS).

#include <algorithm>
#include <iostream>
#include <functional>
#include <memory>
#include <optional>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <tokctl/jose/json.hpp>
#include <tokctl/jose/jwt.hpp>
#include <tokctl/tokens/service.hpp>
#include <tokctl/util/io.hpp>

#include "commands.hpp"
#include "common.hpp"
#include "remote.hpp"
#include "render.hpp"

namespace tokctl::cli {
namespace {

using nlohmann::json;

struct IntrospectCli {
  std::string token;
  bool jwt = false;
  bool phantom = false;
  bool batch = false;
  std::string hint;
  RemoteArgs remote;
};

// --batch: one token per line on stdin (blank lines skipped), one RFC 7662 JSON line out per token
// with its "line" number. Exit 0 when every token is active, 1 otherwise; an error (a read error
// too) stops the run at its line (the lines before it are printed). A line too long to be a token
// is not read: it is inactive, as any other string that is no token, with a warning on stderr.
int introspect_lines(LineReader& input, const std::function<Result<json>(const std::string&)>& introspect) {
  std::string line;
  std::size_t line_no = 0;
  bool all_active = true;
  for (;;) {
    auto got = input.next(line);
    if (!got) {
      std::cout.flush();
      return report(got.error());
    }
    if (*got == LineReader::Read::end) break;
    ++line_no;
    json out;
    if (*got == LineReader::Read::too_long) {
      std::cerr << style(Stream::err, "33", "tokctl: warning: ") << "line " << line_no << ": "
                << token_line_too_long(input.length()) << ": not introspected, answered inactive\n";
      out = json{{"active", false}};
    } else {
      std::string token = normalize_token(line);
      if (token.empty()) continue;
      auto r = introspect(token);
      if (!r) {
        Error e = r.error();
        e.message = "line " + std::to_string(line_no) + ": " + e.message;
        std::cout.flush();
        return report(e);
      }
      out = std::move(*r);
    }
    out["line"] = line_no;
    print_json_line(out);
    all_active = all_active && out.value("active", false);
  }
  std::cout.flush();
  return all_active ? 0 : 1;
}

int run_local(const IntrospectCli& o) {
  if (auto r = refuse_remote_only({{"--phantom", o.phantom}, {"--token-type-hint", !o.hint.empty()}}); !r) {
    return report(r.error());
  }
  if (o.batch && o.jwt) return report(Error{ErrorCode::usage, "--batch answers RFC 7662 JSON: drop --jwt", {}});
  if (o.batch && !o.token.empty() && o.token != "-") {
    return report(Error{ErrorCode::usage, "--batch reads its tokens from stdin, one per line: drop the token argument",
                        {}});
  }
  std::optional<LineReader> input;
  if (o.batch) {
    auto in = stdin_token_lines();
    if (!in) return report(in.error());
    input.emplace(std::move(*in));
  }
  auto svc = open_service();
  if (!svc) return report(svc.error());
  // One service, store connection and keyring for every line (nothing reopened per token).
  if (o.batch) return introspect_lines(*input, [&](const std::string& t) { return (*svc)->introspect(t); });
  auto token = read_token(o.token);
  if (!token) return report(token.error());
  if (o.jwt) {
    auto jwt = (*svc)->phantom_jwt(*token);
    if (!jwt) return report(jwt.error());
    if (json_output()) print_json(json{{"active", true}, {"token", *jwt}});  // one JSON document
    else std::cout << *jwt << '\n';
    return 0;
  }
  auto r = (*svc)->introspect(*token);
  if (!r) return report(r.error());
  print_json(*r);
  return r->value("active", false) ? 0 : 1;
}

// RFC 9701 §5: the answer is a JWT of typ token-introspection+jwt, from the server (iss), for this
// client (aud), signed by a key of its JWKS; its token_introspection claim is the RFC 7662 object.
Result<json> verified_introspection(Remote& rem, const std::string& jwt) {
  auto clk = clock();
  if (!clk) return std::unexpected(clk.error());
  jose::VerifyOptions vo;
  vo.claims.typ = "token-introspection+jwt";
  vo.claims.iss = rem.endpoints.issuer;  // both known: run_remote refuses --jwt otherwise
  vo.claims.aud = rem.client_id;
  vo.claims.required = {"iat", "token_introspection"};
  RemoteKeys jwks;
  jwks.jwks.emplace(rem.http, rem.cache, rem.endpoints.jwks_uri, **clk, false);
  jwks.rebuild = [&](jose::JwkSet keys) {
    return jose::TokenVerifier::create(std::move(keys), jose::KeySource::set, vo, **clk);
  };
  auto keys = jwks.jwks->keys();
  if (!keys) return std::unexpected(keys.error());
  auto verifier = jwks.rebuild(std::move(*keys));
  if (!verifier) return std::unexpected(verifier.error());
  jose::VerifyReport r = verifier->verify(jwt);
  if (kid_not_found(r)) {
    std::string why_not;
    auto fresh = jwks.refetch(why_not);
    if (!fresh) return std::unexpected(fresh.error());
    if (*fresh) r = (*fresh)->verify(jwt);
  }
  if (!r.valid) {
    std::string why;
    for (const auto& p : r.problems) why += (why.empty() ? "" : "; ") + std::string(jose::to_string(p.code)) + ": " + p.message;
    return fail(ErrorCode::invalid_token, "the introspection response JWT does not verify: " + why,
                "the answer may not come from the server; check --server and the CA bundle");
  }
  const auto& ti = r.payload["token_introspection"];
  if (!ti.is_object() || !ti.contains("active") || !ti["active"].is_boolean()) {
    return fail(ErrorCode::network, "the introspection response JWT has no token_introspection object with a boolean active");
  }
  return ti;
}

int introspect_one(Remote& rem, const IntrospectCli& o, const std::string& token) {
  const char* accept = o.jwt ? "application/token-introspection+jwt" : o.phantom ? "application/jwt" : "application/json";
  auto r = rem.client->introspect(token, o.hint, accept);
  if (!r) return report(r.error());
  if (o.phantom) {
    if (r->status == 204 || r->body.empty()) {
      if (json_output()) print_json(json{{"active", false}});
      else if (!globals().quiet) std::cerr << "inactive (HTTP " << r->status << ")\n";
      return 1;
    }
    if (!r->json.is_null()) {  // a server without the phantom contract answered RFC 7662 JSON
      print_json(r->json);
      return r->json.value("active", false) ? 0 : 1;
    }
    if (json_output()) print_json(json{{"active", true}, {"token", std::string(trim(r->body))}});
    else std::cout << std::string(trim(r->body)) << '\n';
    return 0;
  }
  json answer = r->json;
  if (o.jwt) {
    if (!answer.is_null()) {
      // Asked for a signed answer, got an unsigned one: nothing proves where it came from.
      return report(Error{ErrorCode::network,
                          "the server answered plain JSON, not an RFC 9701 signed JWT (nothing to verify)",
                          "drop --jwt to accept unsigned answers from this server"});
    }
    auto verified = verified_introspection(rem, std::string(trim(r->body)));
    if (!verified) return report(verified.error());
    answer = std::move(*verified);
  }
  print_json(answer);
  return answer.value("active", false) ? 0 : 1;
}

int run_remote(const IntrospectCli& o) {
  if (o.jwt && o.phantom) return report(Error{ErrorCode::usage, "--jwt and --phantom exclude each other", {}});
  std::initializer_list<Endpoint> needs = {Endpoint::introspection};
  std::initializer_list<Endpoint> with_jwks = {Endpoint::introspection, Endpoint::jwks};
  if (o.batch && (o.phantom || o.jwt)) {
    return report(Error{ErrorCode::usage, "--batch answers RFC 7662 JSON: drop --jwt/--phantom", {}});
  }
  // Stdin is checked before the server is asked anything: `--batch < dir` is refused up front.
  std::optional<LineReader> input;
  if (o.batch) {
    auto in = stdin_token_lines();
    if (!in) return report(in.error());
    input.emplace(std::move(*in));
  }
  auto rem = open_remote(o.remote, o.jwt ? with_jwks : needs, true);
  if (!rem) return report(rem.error());
  if (o.jwt && ((*rem)->endpoints.issuer.empty() || (*rem)->client_id.empty())) {
    return report(Error{ErrorCode::usage,
                        "--jwt checks the answer's iss and aud: it needs the server's issuer (--server or a profile) "
                        "and the client id",
                        {}});
  }
  if (!o.batch) {
    auto token = read_token(o.token);
    if (!token) return report(token.error());
    return introspect_one(**rem, o, *token);
  }
  // --batch: one token per line on stdin, one JSON line out per token, over one kept-alive connection.
  return introspect_lines(*input, [&](const std::string& token) -> Result<json> {
    auto r = (*rem)->client->introspect(token, o.hint, "application/json");
    if (!r) return std::unexpected(r.error());
    return std::move(r->json);
  });
}

int run_introspect(const IntrospectCli& o) {
  if (remote_requested(o.remote, true)) return run_remote(o);
  return run_local(o);
}

}  // namespace

void register_introspect(CLI::App& app) {
  auto o = std::make_shared<IntrospectCli>();
  auto* intro = app.add_subcommand(
      "introspect", "RFC 7662 introspection of a local token (--jwt: its phantom JWT), or at a server's endpoint");
  dash_positional(intro, file_value(intro->add_option("token", o->token, "The token, or - for stdin (default)")));
  intro->add_flag("--jwt", o->jwt,
                  "Locally: print the phantom JWT of an active access token. With a server: ask for an RFC 9701 "
                  "signed answer and verify it against the server's JWKS");
  intro->add_flag("--phantom", o->phantom, "With a server: Accept: application/jwt (the phantom token; 204 = inactive)");
  intro->add_flag("--batch", o->batch, "Tokens one per line on stdin, one JSON line each with its line number (with a server: over one connection)");
  choice_value(intro->add_option("--token-type-hint", o->hint, "With a server: access_token or refresh_token"),
               {"access_token", "refresh_token"}, ChoiceCheck::suggest);
  add_remote_options(intro, o->remote, RemoteOptions::client);
  examples(intro, {"tokctl introspect \"$OPAQUE\"", "tokctl introspect \"$OPAQUE\" --jwt | tokctl verify -",
                   "tokctl introspect \"$TOKEN\" --server https://as.example --client-id rs --client-secret-file rs.secret",
                   "tokctl introspect --batch < tokens.txt > answers.jsonl",
                   "tokctl introspect --server https://as.example --batch < tokens.txt > answers.jsonl"});
  on_run(intro, [o] { return run_introspect(*o); });
}

}  // namespace tokctl::cli
