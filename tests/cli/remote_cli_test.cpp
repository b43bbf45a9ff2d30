// Remote mode from the command line (issue 10) against an in-process loopback server that records
// what arrives: client authentication on the wire (Basic per RFC 6749 §2.3.1, client_secret_post,
// private_key_jwt per RFC 7523), server selection (flags, environment, profiles), discovery cached
// across runs, and the exit codes of refusals and failures (6 for an OAuth error, 5 for the rest,
// 2 for usage). Secrets never appear in the output. The RFC 8693 and RFC 7662/7009 parameters
// on the wire, profile fields, and RFC 9701 signed introspection answers that must not verify.

#include <algorithm>
#include <ctime>
#include <filesystem>
#include <map>
#include <sys/stat.h>
#include <unistd.h>
#include <mutex>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <tokctl/jose/dpop.hpp>
#include <tokctl/jose/jws.hpp>
#include <tokctl/jose/jwt.hpp>
#include <tokctl/remote/http.hpp>
#include <tokctl/server/form.hpp>
#include <tokctl/server/http_server.hpp>
#include <tokctl/util/base64.hpp>

#include "support/cli_helpers.hpp"
#include "support/keys.hpp"
#include "support/raw_http.hpp"
#include "support/run.hpp"

using namespace tokctl;
using namespace tokctl::test;
using nlohmann::json;

namespace {

constexpr const char* k_secret = "s3cr3t:with space&amp";

server::HttpResponse json_response(std::string body) {
  server::HttpResponse r;
  r.set("Content-Type", "application/json");
  r.body = std::move(body);
  return r;
}

// An authorization server with scripted token, introspection and revocation answers and a JWKS;
// it records every request.
struct FakeAs {
  using Handler = std::function<server::HttpResponse(const server::HttpRequest&)>;
  std::mutex mu;
  std::vector<server::HttpRequest> seen;
  std::map<std::string, int> hits;
  Handler token = [](const server::HttpRequest&) {
    return json_response(R"({"access_token":"AT-1","token_type":"Bearer","expires_in":60,"refresh_token":"RT-1"})");
  };
  Handler introspect = [](const server::HttpRequest&) { return json_response(R"({"active":true})"); };
  Handler revoke = [](const server::HttpRequest&) { return server::HttpResponse{}; };
  std::string jwks = R"({"keys":[]})";
  std::unique_ptr<server::HttpServer> srv;

  FakeAs() {
    server::ServerOptions o;
    o.port = 0;
    o.threads = 1;
    auto s = server::HttpServer::start(o, [this](const server::HttpRequest& req) {
      std::string path(req.path());
      {
        std::lock_guard lock(mu);
        seen.push_back(req);
        ++hits[path];
      }
      server::HttpResponse r;
      if (path == "/.well-known/oauth-authorization-server") {
        r.set("Content-Type", "application/json");
        r.set("Cache-Control", "max-age=300");
        r.body = json{{"issuer", issuer()},
                      {"token_endpoint", issuer() + "/token"},
                      {"introspection_endpoint", issuer() + "/introspect"},
                      {"revocation_endpoint", issuer() + "/revoke"},
                      {"jwks_uri", issuer() + "/jwks"}}
                     .dump();
        return r;
      }
      if (path == "/token") return token(req);
      if (path == "/introspect") return introspect(req);
      if (path == "/revoke") return revoke(req);
      if (path == "/jwks") return json_response(jwks);
      r.status = 404;
      return r;
    });
    REQUIRE(s);
    srv = std::move(*s);
  }
  ~FakeAs() { srv->stop(std::chrono::milliseconds(200)); }
  std::string issuer() const { return "http://127.0.0.1:" + std::to_string(srv->port()); }
  server::HttpRequest last(const std::string& path) {
    std::lock_guard lock(mu);
    for (auto it = seen.rbegin(); it != seen.rend(); ++it)
      if (it->path() == path) return *it;
    FAIL("no request to " << path);
    return {};
  }
  int count(const std::string& path) {
    std::lock_guard lock(mu);
    return hits[path];
  }
};

std::map<std::string, std::string> form_of(const server::HttpRequest& req) {
  auto f = server::parse_form(req.body, {});
  REQUIRE(f);
  std::map<std::string, std::string> out;
  for (const auto& [k, v] : f->values) out[k] = v.front();
  return out;
}

using Params = std::vector<std::pair<std::string, std::string>>;

// Every parameter of a form body as sent, repeated ones repeated in their order; sorted by name
// only (stable), so that two lists compare equal exactly when the same values went on the wire.
Params wire_params(const server::HttpRequest& req) {
  Params out;
  std::string_view body = req.body;
  while (!body.empty()) {
    auto amp = body.find('&');
    std::string_view pair = body.substr(0, amp);
    body = amp == std::string_view::npos ? std::string_view() : body.substr(amp + 1);
    auto eq = pair.find('=');
    REQUIRE(eq != std::string_view::npos);
    auto name = server::form_decode(pair.substr(0, eq));
    auto value = server::form_decode(pair.substr(eq + 1));
    REQUIRE(name);
    REQUIRE(value);
    out.emplace_back(*name, *value);
  }
  std::stable_sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  return out;
}

Params sorted(Params p) {
  std::stable_sort(p.begin(), p.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  return p;
}

}  // namespace

TEST_CASE("remote CLI: client_secret_basic and _post on the wire, the secret from a file or the environment",
          "[cli][remote]") {
  FakeAs as;
  TempDir dir;
  write_file(dir.file("secret"), std::string(k_secret) + "\n");
  ::chmod(dir.file("secret").c_str(), 0600);
  EnvVars env{{"XDG_CACHE_HOME", dir.file("cache")}};

  auto r = run({"issue", "--server", as.issuer(), "--client-id", "ci:1", "--client-secret-file", dir.file("secret"),
                "--scope", "read write", "--aud", "api-a", "--resource", "https://api.test/"},
               {}, env);
  INFO(describe(r));
  REQUIRE(r.code == 0);
  CHECK(r.out == "AT-1\nRT-1\n");
  auto req = as.last("/token");
  REQUIRE(req.header("authorization"));
  CHECK(*req.header("authorization") == remote::basic_authorization("ci:1", k_secret));
  auto form = form_of(req);
  CHECK(form["grant_type"] == "client_credentials");
  CHECK(form["scope"] == "read write");
  CHECK(form["audience"] == "api-a");
  CHECK(form["resource"] == "https://api.test/");
  CHECK(form.count("client_secret") == 0);

  // client_secret_post, server and client from the environment.
  env.push_back({"TOKCTL_SERVER", as.issuer()});
  env.push_back({"TOKCTL_CLIENT_ID", "ci"});
  env.push_back({"TOKCTL_CLIENT_SECRET", k_secret});
  r = run({"issue", "--auth-method", "client_secret_post", "-o", "json"}, {}, env);
  INFO(describe(r));
  REQUIRE(r.code == 0);
  CHECK(json::parse(r.out)["refresh_token"] == "RT-1");
  req = as.last("/token");
  CHECK_FALSE(req.header("authorization"));
  form = form_of(req);
  CHECK(form["client_id"] == "ci");
  CHECK(form["client_secret"] == k_secret);
  // Discovery ran once: the second command used the cached metadata.
  CHECK(as.count("/.well-known/oauth-authorization-server") == 1);

  // A secret as a bare flag value works, with a warning that does not repeat it.
  r = run({"issue", "--client-secret", k_secret, "--header"}, {}, env);
  INFO(describe(r));
  REQUIRE(r.code == 0);
  CHECK(r.out == "Authorization: Bearer AT-1\nRT-1\n");
  CHECK(r.err.find("--client-secret puts the secret") != std::string::npos);
  CHECK(r.err.find(k_secret) == std::string::npos);
}

TEST_CASE("remote CLI: private_key_jwt sends an RFC 7523 assertion signed by --client-key", "[cli][remote]") {
  FakeAs as;
  TempDir dir;
  write_file(dir.file("client.jwk"), std::string(test_key_json("p256")));
  ::chmod(dir.file("client.jwk").c_str(), 0600);
  auto r = run({"issue", "--server", as.issuer(), "--client-id", "svc", "--client-key", dir.file("client.jwk"),
                "--now", "2030-01-01T00:00:00Z"},
               {}, {{"XDG_CACHE_HOME", dir.file("cache")}});
  INFO(describe(r));
  REQUIRE(r.code == 0);
  auto form = form_of(as.last("/token"));
  CHECK(form["client_assertion_type"] == "urn:ietf:params:oauth:client-assertion-type:jwt-bearer");
  CHECK(form["client_id"] == "svc");
  auto pub = test_key("p256").to_public();
  REQUIRE(pub);
  FixedClock at(1893456000 + 10);
  jose::VerifyOptions vo;
  vo.claims.iss = "svc";
  vo.claims.sub = "svc";
  vo.claims.aud = as.issuer();
  vo.claims.required = {"jti", "exp", "iat"};
  auto v = jose::TokenVerifier::create(jose::JwkSet({*pub}), jose::KeySource::single, vo, at);
  REQUIRE(v);
  auto report = v->verify(form["client_assertion"]);
  INFO(form["client_assertion"]);
  CHECK(report.valid);
  CHECK(report.payload["exp"].get<long>() - report.payload["iat"].get<long>() == 60);
}

TEST_CASE("remote CLI: --dpop-key sends an RFC 9449 proof for the token endpoint, answering a nonce once",
          "[cli][remote][dpop]") {
  FakeAs as;
  TempDir dir;
  write_file(dir.file("dpop.jwk"), std::string(test_key_json("p256")));
  write_file(dir.file("ed.pem"), std::string(test_key_pem("ed25519")));
  write_file(dir.file("secret.jwk"), std::string(test_key_json("hs256")));
  write_file(dir.file("public.jwk"), test_key("p256").to_json(jose::KeyPart::public_only).dump());
  for (const char* f : {"dpop.jwk", "ed.pem", "secret.jwk", "public.jwk"}) ::chmod(dir.file(f).c_str(), 0600);
  EnvVars env{{"XDG_CACHE_HOME", dir.file("cache")}, {"TOKCTL_CLIENT_SECRET", k_secret}};
  const UnixTime now = 1893456000;  // --now 2030-01-01T00:00:00Z
  int calls = 0;
  as.token = [&](const server::HttpRequest& req) {
    // The first request of each run is asked for a nonce; the retry must carry it.
    const std::string* proof = req.header("dpop");
    if (!proof) return json_response(R"({"access_token":"AT-1","token_type":"Bearer"})");
    if (++calls % 2 == 1) {
      server::HttpResponse r = json_response(R"({"error":"use_dpop_nonce","error_description":"nonce"})");
      r.status = 400;
      r.set("DPoP-Nonce", "n-" + std::to_string(calls));
      return r;
    }
    return json_response(R"({"access_token":"AT-D","token_type":"DPoP","expires_in":60})");
  };
  auto proofs = [&] {
    std::vector<std::string> out;
    std::lock_guard lock(as.mu);
    for (const auto& req : as.seen)
      if (req.path() == "/token" && req.header("dpop")) out.push_back(*req.header("dpop"));
    return out;
  };
  auto r = run({"issue", "--server", as.issuer(), "--client-id", "svc", "--dpop-key", dir.file("dpop.jwk"), "--header",
                "--now", "2030-01-01T00:00:00Z"},
               {}, env);
  INFO(describe(r));
  REQUIRE(r.code == 0);
  CHECK(r.out == "Authorization: DPoP AT-D\n");
  auto sent = proofs();
  REQUIRE(sent.size() == 2);
  jose::DpopCheck check;
  check.htm = "POST";
  const std::string endpoint = as.issuer() + "/token";
  check.htu = endpoint;
  check.now = now;
  auto first = jose::check_dpop_proof(sent[0], check);
  auto second = jose::check_dpop_proof(sent[1], check);
  REQUIRE(first);
  REQUIRE(second);
  CHECK(first->jkt == *test_key("p256").thumbprint());
  CHECK(first->alg == jose::Alg::ES256);
  CHECK(first->jti != second->jti);  // a fresh proof for the retry
  auto nonce_of = [](const std::string& p) {
    auto jws = jose::parse_compact(p);
    REQUIRE(jws);
    return json::parse(jws->payload).value("nonce", "");
  };
  CHECK(nonce_of(sent[0]).empty());
  CHECK(nonce_of(sent[1]) == "n-1");

  // an Ed25519 PEM key proves with EdDSA; exchange --server sends proofs too
  r = run({"exchange", "--server", as.issuer(), "--client-id", "svc", "--dpop-key", dir.file("ed.pem"),
           "--subject-token", "ST", "--now", "2030-01-01T00:00:00Z"},
          {}, env);
  INFO(describe(r));
  REQUIRE(r.code == 0);
  sent = proofs();
  REQUIRE(sent.size() == 4);
  auto ed = jose::check_dpop_proof(sent[3], check);
  REQUIRE(ed);
  CHECK(ed->alg == jose::Alg::EdDSA);

  // keys that cannot prove: a secret, a public key; and no server at all
  for (const char* bad : {"secret.jwk", "public.jwk"}) {
    r = run({"issue", "--server", as.issuer(), "--client-id", "svc", "--dpop-key", dir.file(bad)}, {}, env);
    INFO(describe(r));
    CHECK(r.code == 2);
  }
  r = run({"issue", "--sub", "x", "--dpop-key", dir.file("dpop.jwk")}, {}, {{"TOKCTL_SERVER", ""}});
  CHECK(r.code == 2);
  CHECK_THAT(r.err, Catch::Contains("--dpop-key applies to a server"));
  // files that are no key: refused by name before any request (an unreachable server is not asked)
  std::filesystem::create_directory(dir.file("a-dir"));
  REQUIRE(::mkfifo(dir.file("a-fifo").c_str(), 0600) == 0);
  write_file(dir.file("empty"), "");
  write_file(dir.file("big"), std::string(2 * 1024 * 1024, 'A'));
  for (const std::string& odd : {dir.file("a-dir"), dir.file("a-fifo"), std::string("/dev/zero"), dir.file("empty"),
                                 dir.file("big"), dir.file("missing")}) {
    INFO(odd);
    r = run({"issue", "--server", "http://127.0.0.1:1", "--client-id", "svc", "--dpop-key", odd}, {}, env);
    CHECK((r.code == 2 || r.code == 3));
    CHECK_THAT(r.err, Catch::Contains("--dpop-key"));
    CHECK_THAT(r.err, !Catch::Contains("127.0.0.1:1"));
  }
  CHECK(proofs().size() == 4);
}

TEST_CASE("remote CLI: refusals exit 6, failures 5, and neither repeats the secret", "[cli][remote]") {
  FakeAs as;
  TempDir dir;
  EnvVars env{{"XDG_CACHE_HOME", dir.file("cache")}, {"TOKCTL_CLIENT_SECRET", k_secret}};
  const std::vector<std::string> base{"issue", "--server", as.issuer(), "--client-id", "ci"};
  auto with = [&](std::vector<std::string> extra) {
    auto a = base;
    a.insert(a.end(), extra.begin(), extra.end());
    return a;
  };
  SECTION("an RFC 6749 error object: exit 6 with code and description; -o json prints the object") {
    as.token = [](const server::HttpRequest&) {
      server::HttpResponse r;
      r.status = 401;
      r.set("Content-Type", "application/json");
      r.body = R"({"error":"invalid_client","error_description":"client authentication failed"})";
      return r;
    };
    auto r = run(base, {}, env);
    INFO(describe(r));
    CHECK(r.code == 6);
    CHECK(r.err.find("invalid_client: client authentication failed") != std::string::npos);
    CHECK(r.err.find(k_secret) == std::string::npos);
    r = run(with({"-o", "json"}), {}, env);
    CHECK(r.code == 6);
    CHECK(json::parse(r.out)["error"] == "invalid_client");
  }
  SECTION("a 5xx is not retried on the token endpoint and exits 5") {
    as.token = [](const server::HttpRequest&) {
      server::HttpResponse r;
      r.status = 503;
      r.body = "busy";
      return r;
    };
    auto r = run(base, {}, env);
    INFO(describe(r));
    CHECK(r.code == 5);
    CHECK(r.err.find("HTTP 503") != std::string::npos);
    CHECK(as.count("/token") == 1);
  }
  SECTION("a 200 that is not a token response exits 5") {
    as.token = [](const server::HttpRequest&) {
      server::HttpResponse r;
      r.body = "<html>login</html>";
      return r;
    };
    auto r = run(base, {}, env);
    INFO(describe(r));
    CHECK(r.code == 5);
    as.token = [](const server::HttpRequest&) {
      server::HttpResponse wrong;
      wrong.body = R"({"access_token": 42})";
      return wrong;
    };
    r = run(base, {}, env);
    CHECK(r.code == 5);
    CHECK(r.err.find("without a string access_token") != std::string::npos);
  }
  SECTION("connection refused exits 5 naming the URL") {
    auto r = run({"issue", "--token-endpoint", "http://127.0.0.1:1/token", "--client-id", "ci", "--retries", "0"}, {}, env);
    INFO(describe(r));
    CHECK(r.code == 5);
    CHECK(r.err.find("127.0.0.1:1/token") != std::string::npos);
  }
}

TEST_CASE("remote CLI: server selection and option mistakes are usage errors", "[cli][remote]") {
  TempDir dir;
  write_file(dir.file("p.yaml"), "profiles:\n  staging:\n    server: https://as.invalid\n    client_id: ci\n");
  EnvVars env{{"XDG_CACHE_HOME", dir.file("cache")}};
  auto code = [&](std::vector<std::string> args) {
    auto ran = run(args, {}, env);
    INFO(describe(ran));
    return ran.code;
  };
  CHECK(code({"issue", "--grant", "jwt-bearer", "--sub", "a"}) == 2);           // remote-only, no server
  CHECK(code({"introspect", "x", "--phantom"}) == 2);                           // remote-only
  CHECK(code({"revoke", "x", "--token-type-hint", "access_token"}) == 2);       // remote-only
  CHECK(code({"issue", "--server", "https://as.invalid", "--format", "opaque"}) == 2);  // local-only
  CHECK(code({"revoke", "x", "--server", "https://as.invalid", "--all"}) == 2);
  CHECK(code({"exchange", "--subject-token", "x", "--server", "https://as.invalid", "--mode", "embed"}) == 2);
  CHECK(code({"issue", "--server", "ftp://as.invalid"}) == 2);
  CHECK(code({"issue", "--config", dir.file("p.yaml"), "--profile", "nosuch"}) == 2);
  auto r = run({"issue", "--config", dir.file("p.yaml"), "--profile", "nosuch"}, {}, env);
  CHECK(r.err.find("profiles there: staging") != std::string::npos);
  r = run({"issue", "--token-endpoint", "https://as.invalid/t", "--auth-method", "client_secret_basic",
           "--client-id", "x"},
          {}, env);
  CHECK(r.code == 2);
  CHECK(r.err.find("needs the client secret") != std::string::npos);
  r = run({"verify", "x", "--jwks-url", "https://as.invalid/jwks", "--key", dir.file("p.yaml")}, {}, env);
  CHECK(r.code == 2);
  r = run({"verify", "x", "--jwks-url", "https://as.invalid/jwks", "--offline"}, {}, env);
  CHECK(r.code == 5);
  CHECK(r.err.find("offline") != std::string::npos);
}

TEST_CASE("remote CLI: credentials come from one level; URLs with passwords and unchecked TLS are not cached",
          "[cli][remote]") {
  FakeAs as;
  TempDir dir;
  write_file(dir.file("client.jwk"), std::string(test_key_json("p256")));
  ::chmod(dir.file("client.jwk").c_str(), 0600);
  // A secret in the environment (for $TOKCTL_SERVER) is not used when the flags name a key.
  EnvVars env{{"XDG_CACHE_HOME", dir.file("cache")}, {"TOKCTL_CLIENT_SECRET", k_secret}};
  auto r = run({"issue", "--server", as.issuer(), "--client-id", "svc", "--client-key", dir.file("client.jwk")}, {}, env);
  INFO(describe(r));
  REQUIRE(r.code == 0);
  auto req = as.last("/token");
  CHECK_FALSE(req.header("authorization"));
  CHECK(form_of(req).count("client_assertion") == 1);
  CHECK(req.body.find("s3cr3t") == std::string::npos);
  // user:password@ in a URL is refused before anything is sent.
  const int before = as.count("/.well-known/oauth-authorization-server");
  r = run({"issue", "--server", "http://u:pw-in-url@127.0.0.1:" + std::to_string(as.srv->port()), "--client-id", "x"}, {},
          env);
  CHECK(r.code == 2);
  CHECK(r.err.find("pw-in-url") == std::string::npos);
  CHECK(as.count("/.well-known/oauth-authorization-server") == before);
  // --insecure: nothing fetched without a certificate check is kept for a later, checked run.
  TempDir cache;
  r = run({"issue", "--server", as.issuer(), "--client-id", "ci", "--insecure"}, {},
          {{"XDG_CACHE_HOME", cache.path()}, {"TOKCTL_CLIENT_SECRET", k_secret}});
  INFO(describe(r));
  REQUIRE(r.code == 0);
  CHECK(r.err.find("NOT checked") != std::string::npos);
  CHECK(files_in(cache.path()).empty());
  CHECK(run({"issue", "--server", as.issuer(), "--timeout", "2d"}, {}, env).code == 2);
}

TEST_CASE("remote CLI: secret, key and CA files that are directories, FIFOs, empty, oversized or unset are usage errors",
          "[cli][remote]") {
  TempDir dir;
  REQUIRE(::mkdir(dir.file("adir").c_str(), 0700) == 0);
  REQUIRE(::mkfifo(dir.file("fifo").c_str(), 0600) == 0);
  write_file(dir.file("empty"), "\n");
  write_file(dir.file("huge"), std::string(100 * 1024, 'x'));
  write_file(dir.file("pub.jwk"), test_key("p256").to_public()->to_json().dump());
  for (const char* f : {"empty", "huge", "pub.jwk"}) ::chmod(dir.file(f).c_str(), 0600);
  EnvVars env{{"XDG_CACHE_HOME", dir.file("cache")}};
  // An explicit endpoint: nothing is discovered, the files are read before any request.
  const std::vector<std::string> base{"issue", "--token-endpoint", "http://127.0.0.1:1/token", "--client-id", "ci",
                                      "--retries", "0"};
  auto with = [&](std::vector<std::string> extra) {
    auto a = base;
    a.insert(a.end(), extra.begin(), extra.end());
    return a;
  };
  auto expect_usage = [&](std::vector<std::string> args, const std::string& says, const EnvVars& more = {}) {
    EnvVars e = env;
    e.insert(e.end(), more.begin(), more.end());
    auto r = run(args, {}, e);
    INFO(describe(r));
    CHECK(r.code == 2);
    CHECK(r.err.find(says) != std::string::npos);
  };
  for (const char* f : {"adir", "fifo", "missing"}) {
    expect_usage(with({"--client-secret-file", dir.file(f)}), dir.file(f));
    expect_usage(with({"--cacert", dir.file(f)}), "CA bundle");
    expect_usage(with({"--client-key", dir.file(f)}), dir.file(f));
    expect_usage(with({"--cert", dir.file(f), "--key", dir.file(f)}), "client certificate");
    expect_usage(with({}), dir.file(f), {{"TOKCTL_CLIENT_SECRET_FILE", dir.file(f)}});
  }
  expect_usage(with({"--client-secret-file", dir.file("empty")}), "is empty");
  auto huge = run(with({"--client-secret-file", dir.file("huge")}), {}, env);
  CHECK(huge.code != 0);
  CHECK(huge.code != 5);  // refused before anything is sent
  expect_usage(with({"--client-key", dir.file("pub.jwk")}), "exactly one private key");
  expect_usage(with({"--timeout", "soon"}), "--timeout");
  // A profile naming a variable that is not set.
  write_file(dir.file("p.yaml"), "profiles:\n  p:\n    token_endpoint: http://127.0.0.1:1/token\n"
                                 "    client_id: ci\n    client_secret_env: TOKCTL_TEST_UNSET_SECRET\n");
  expect_usage({"issue", "--config", dir.file("p.yaml"), "--profile", "p"}, "TOKCTL_TEST_UNSET_SECRET");
}

TEST_CASE("remote CLI: introspect --jwt refuses an RFC 9701 answer signed by a stranger, for another client, or "
          "under a kid the server's JWKS does not have",
          "[cli][remote]") {
  FakeAs as;
  TempDir dir;
  write_file(dir.file("secret"), k_secret);
  ::chmod(dir.file("secret").c_str(), 0600);
  jose::Jwk server_key = test_key("p256");
  server_key.set_kid("as-1");
  jose::Jwk stranger = test_key("p256b");
  stranger.set_kid("as-1");  // the server's kid, another key
  auto pub = server_key.to_public();
  REQUIRE(pub);
  as.jwks = json{{"keys", json::array({pub->to_json()})}}.dump();
  // What the next answer is signed with, its kid and aud (read on the server's thread).
  struct Signing {
    const jose::Jwk* key;
    std::string kid, aud;
  } signing{&server_key, "as-1", "rs"};
  auto sign_with = [&](const jose::Jwk& key, std::string kid, std::string aud) {
    std::lock_guard lock(as.mu);
    signing = {&key, std::move(kid), std::move(aud)};
  };
  as.introspect = [&](const server::HttpRequest&) {
    std::lock_guard lock(as.mu);
    json header = {{"typ", "token-introspection+jwt"}, {"kid", signing.kid}};
    json claims = {{"iss", as.issuer()},
                   {"aud", signing.aud},
                   {"iat", static_cast<long>(std::time(nullptr))},
                   {"token_introspection", {{"active", true}, {"sub", "alice"}}}};
    auto jwt = jose::sign_compact(header, claims.dump(), jose::Alg::ES256, *signing.key);
    server::HttpResponse r;
    r.set("Content-Type", "application/token-introspection+jwt");
    r.body = jwt ? *jwt : std::string("signing failed");
    return r;
  };
  EnvVars env{{"XDG_CACHE_HOME", dir.file("cache")}};
  auto introspect_jwt = [&] {
    return run({"introspect", "--server", as.issuer(), "--client-id", "rs", "--client-secret-file", dir.file("secret"),
                "--jwt", "opaque-token"},
               {}, env);
  };
  // The server's own answer verifies: the refusals below are for the reason they name.
  auto r = introspect_jwt();
  INFO(describe(r));
  REQUIRE(r.code == 0);
  CHECK(json::parse(r.out)["sub"] == "alice");
  REQUIRE(as.count("/jwks") == 1);
  auto refused_for = [&](const std::string& reason) {
    auto refused = introspect_jwt();
    INFO(describe(refused));
    CHECK(refused.code == 1);
    CHECK(refused.out.empty());
    CHECK(refused.err.find("the introspection response JWT does not verify") != std::string::npos);
    CHECK(refused.err.find(reason) != std::string::npos);
  };
  SECTION("signed by a stranger's key under the server's kid") {
    sign_with(stranger, "as-1", "rs");
    refused_for("bad_signature");
  }
  SECTION("signed by the server for another client (aud)") {
    sign_with(server_key, "as-1", "another-client");
    refused_for("aud_mismatch");
  }
  SECTION("under an unknown kid: the JWKS is refetched once, then the answer refused") {
    sign_with(server_key, "as-2", "rs");
    refused_for("kid_not_found");
    CHECK(as.count("/jwks") == 2);
  }
}

TEST_CASE("remote CLI: exchange --server and issue --grant token-exchange send every RFC 8693 parameter",
          "[cli][remote]") {
  FakeAs as;
  TempDir dir;
  write_file(dir.file("secret"), k_secret);
  write_file(dir.file("actor.tok"), "actor-token-value\n");
  ::chmod(dir.file("secret").c_str(), 0600);
  EnvVars env{{"XDG_CACHE_HOME", dir.file("cache")}};
  const std::vector<std::string> client{"--server", as.issuer(), "--client-id", "gw", "--client-secret-file",
                                        dir.file("secret")};
  const std::vector<std::string> rfc8693{"--subject-token", "-", "--subject-token-type", "jwt",
                                         "--actor-token", dir.file("actor.tok"), "--actor-token-type", "id_token",
                                         "--resource", "https://a.test/api", "--resource", "https://b.test/",
                                         "--requested-token-type", "urn:ietf:params:oauth:token-type:jwt",
                                         "--scope", "read write"};
  const std::string urn = "urn:ietf:params:oauth:token-type:";
  const Params want = sorted({{"grant_type", "urn:ietf:params:oauth:grant-type:token-exchange"},
                              {"subject_token", "subject-token-value"},
                              {"subject_token_type", urn + "jwt"},
                              {"actor_token", "actor-token-value"},
                              {"actor_token_type", urn + "id_token"},
                              {"audience", "api-b"},
                              {"audience", "api-c"},
                              {"resource", "https://a.test/api"},
                              {"resource", "https://b.test/"},
                              {"scope", "read write"},
                              {"requested_token_type", urn + "jwt"}});
  auto sent = [&](std::vector<std::string> args, std::vector<std::string> audience_flags) {
    args.insert(args.end(), client.begin(), client.end());
    args.insert(args.end(), rfc8693.begin(), rfc8693.end());
    args.insert(args.end(), audience_flags.begin(), audience_flags.end());
    auto r = run(args, "subject-token-value\n", env);
    INFO(describe(r));
    REQUIRE(r.code == 0);
    CHECK(r.out == "AT-1\nRT-1\n");
    auto req = as.last("/token");
    CHECK(req.header("authorization"));  // client_secret_basic: the client is not a form parameter
    return wire_params(req);
  };
  CHECK(sent({"exchange"}, {"--audience", "api-b", "--audience", "api-c"}) == want);
  CHECK(sent({"issue", "--grant", "urn:ietf:params:oauth:grant-type:token-exchange"},
             {"--aud", "api-b", "--audience", "api-c"}) == want);
  CHECK(sent({"issue", "--grant", "token-exchange"}, {"--audience", "api-b", "--aud", "api-c"}) == want);
  CHECK(as.count("/token") == 3);

  // Defaults: an access token exchanged for an access token; an actor token's type is access_token.
  auto r = run({"issue", "--grant", "token-exchange", "--subject-token", "subject-token-value", "--actor-token",
                "actor-token-value", "--server", as.issuer(), "--client-id", "gw", "--client-secret-file",
                dir.file("secret")},
               {}, env);
  INFO(describe(r));
  REQUIRE(r.code == 0);
  CHECK(wire_params(as.last("/token")) ==
        sorted({{"grant_type", "urn:ietf:params:oauth:grant-type:token-exchange"},
                {"subject_token", "subject-token-value"},
                {"subject_token_type", urn + "access_token"},
                {"actor_token", "actor-token-value"},
                {"actor_token_type", urn + "access_token"},
                {"requested_token_type", urn + "access_token"}}));

  // The RFC 8693 flags belong to the token exchange grant; it needs its subject token.
  auto usage = [&](std::vector<std::string> args, const std::string& says) {
    args.insert(args.end(), client.begin(), client.end());
    auto u = run(args, {}, env);
    INFO(describe(u));
    CHECK(u.code == 2);
    CHECK(u.err.find(says) != std::string::npos);
  };
  usage({"issue", "--grant", "token-exchange"}, "needs --subject-token");
  usage({"issue", "--subject-token", "x"}, "--subject-token needs --grant token-exchange");
  usage({"issue", "--grant", "jwt-bearer", "--sub", "a", "--actor-token", "x"}, "--actor-token needs --grant");
  usage({"issue", "--grant", "token-exchange", "--subject-token", "x", "--sub", "alice"}, "drop --sub");
  usage({"issue", "--grant", "token-exchange", "--subject-token", "-", "--actor-token", "-"}, "stdin");
  CHECK(as.count("/token") == 4);
  auto local = run({"issue", "--subject-token", "x"}, {}, env);
  CHECK(local.code == 2);
  CHECK(local.err.find("--subject-token applies to a server") != std::string::npos);
}

TEST_CASE("remote CLI: introspect and revoke send the token and its token_type_hint", "[cli][remote]") {
  FakeAs as;
  TempDir dir;
  EnvVars env{{"XDG_CACHE_HOME", dir.file("cache")}, {"TOKCTL_CLIENT_SECRET", k_secret}};
  const std::vector<std::string> client{"--server", as.issuer(), "--client-id", "rs"};
  auto with = [&](std::vector<std::string> args) {
    args.insert(args.end(), client.begin(), client.end());
    return args;
  };
  auto r = run(with({"introspect", "--token-type-hint", "refresh_token", "tok-1"}), {}, env);
  INFO(describe(r));
  REQUIRE(r.code == 0);
  CHECK(wire_params(as.last("/introspect")) == sorted({{"token", "tok-1"}, {"token_type_hint", "refresh_token"}}));
  r = run(with({"introspect", "--batch", "--token-type-hint", "access_token"}), "tok-2\ntok-3\n", env);
  REQUIRE(r.code == 0);
  CHECK(wire_params(as.last("/introspect")) == sorted({{"token", "tok-3"}, {"token_type_hint", "access_token"}}));
  r = run(with({"introspect", "tok-4"}), {}, env);
  REQUIRE(r.code == 0);
  CHECK(wire_params(as.last("/introspect")) == Params{{"token", "tok-4"}});

  r = run(with({"revoke", "--token-type-hint", "refresh_token", "tok-5"}), {}, env);
  INFO(describe(r));
  REQUIRE(r.code == 0);
  CHECK(wire_params(as.last("/revoke")) == sorted({{"token", "tok-5"}, {"token_type_hint", "refresh_token"}}));
  r = run(with({"revoke", "--token-type-hint", "access_token", "tok-6"}), {}, env);
  REQUIRE(r.code == 0);
  CHECK(wire_params(as.last("/revoke")) == sorted({{"token", "tok-6"}, {"token_type_hint", "access_token"}}));
  r = run(with({"revoke", "tok-7"}), {}, env);
  REQUIRE(r.code == 0);
  CHECK(wire_params(as.last("/revoke")) == Params{{"token", "tok-7"}});
  CHECK(as.count("/introspect") == 4);
  CHECK(as.count("/revoke") == 3);
}

TEST_CASE("remote CLI: a profile's auth_method, client_secret_env, endpoints and client_key are used",
          "[cli][remote]") {
  FakeAs as;
  TempDir dir;
  write_file(dir.file("client.jwk"), std::string(test_key_json("p256")));
  ::chmod(dir.file("client.jwk").c_str(), 0600);
  // No server: nothing can be discovered, so every endpoint comes from the profile.
  write_file(dir.file("p.yaml"), "profiles:\n"
                                 "  poster:\n"
                                 "    token_endpoint: " + as.issuer() + "/token\n"
                                 "    client_id: poster\n"
                                 "    auth_method: client_secret_post\n"
                                 "    client_secret_env: TOKCTL_TEST_POSTER_SECRET\n"
                                 "  keyed:\n"
                                 "    introspection_endpoint: " + as.issuer() + "/introspect\n"
                                 "    revocation_endpoint: " + as.issuer() + "/revoke\n"
                                 "    client_id: keyed\n"
                                 "    client_key: client.jwk\n");  // relative to the policy file
  // $TOKCTL_CLIENT_SECRET is the environment's level: the profile's variable wins over it.
  EnvVars env{{"XDG_CACHE_HOME", dir.file("cache")}, {"TOKCTL_CLIENT_SECRET", "not-the-profile-secret"},
              {"TOKCTL_TEST_POSTER_SECRET", k_secret}};
  auto r = run({"issue", "--config", dir.file("p.yaml"), "--profile", "poster", "--scope", "read"}, {}, env);
  INFO(describe(r));
  REQUIRE(r.code == 0);
  CHECK(r.out == "AT-1\nRT-1\n");
  auto req = as.last("/token");
  CHECK_FALSE(req.header("authorization"));  // client_secret_post, not the default Basic
  CHECK(wire_params(req) == sorted({{"grant_type", "client_credentials"},
                                    {"scope", "read"},
                                    {"client_id", "poster"},
                                    {"client_secret", k_secret}}));
  CHECK(r.err.find(k_secret) == std::string::npos);
  // $TOKCTL_PROFILE selects it too.
  env.push_back({"TOKCTL_PROFILE", "poster"});
  r = run({"issue", "--config", dir.file("p.yaml")}, {}, env);
  REQUIRE(r.code == 0);
  CHECK(form_of(as.last("/token"))["client_secret"] == k_secret);
  env.pop_back();

  // private_key_jwt implied by the profile's client_key, at the profile's introspection and
  // revocation endpoints.
  const std::vector<std::string> keyed{"--config", dir.file("p.yaml"), "--profile", "keyed"};
  for (const char* cmd : {"introspect", "revoke"}) {
    std::vector<std::string> args{cmd, "tok-1"};
    args.insert(args.end(), keyed.begin(), keyed.end());
    r = run(args, {}, env);
    INFO(describe(r));
    REQUIRE(r.code == 0);
    auto form = form_of(as.last(std::string("/") + (cmd == std::string("introspect") ? "introspect" : "revoke")));
    CHECK(form["client_id"] == "keyed");
    CHECK(form["client_assertion_type"] == "urn:ietf:params:oauth:client-assertion-type:jwt-bearer");
    auto pub = test_key("p256").to_public();
    REQUIRE(pub);
    jose::VerifyOptions vo;
    vo.claims.iss = "keyed";
    vo.claims.sub = "keyed";
    vo.claims.required = {"jti", "exp", "aud"};
    SystemClock clk;
    auto v = jose::TokenVerifier::create(jose::JwkSet({*pub}), jose::KeySource::single, vo, clk);
    REQUIRE(v);
    CHECK(v->verify(form["client_assertion"]).valid);
  }
  CHECK(as.count("/.well-known/oauth-authorization-server") == 0);
}

TEST_CASE("remote CLI: -q does not silence the --insecure and --client-secret warnings", "[cli][remote]") {
  FakeAs as;
  TempDir dir;
  EnvVars env{{"XDG_CACHE_HOME", dir.file("cache")}};
  auto r = run({"-q", "issue", "--server", as.issuer(), "--client-id", "ci", "--client-secret", k_secret}, {}, env);
  INFO(describe(r));
  REQUIRE(r.code == 0);
  CHECK(r.out == "AT-1\nRT-1\n");
  CHECK(r.err.find("warning: --client-secret puts the secret") != std::string::npos);
  CHECK(r.err.find(k_secret) == std::string::npos);
  r = run({"--quiet", "issue", "--server", as.issuer(), "--client-id", "ci", "--insecure"}, {},
          {{"XDG_CACHE_HOME", dir.file("cache")}, {"TOKCTL_CLIENT_SECRET", k_secret}});
  INFO(describe(r));
  REQUIRE(r.code == 0);
  CHECK(r.err.find("warning: --insecure: the server's TLS certificate is NOT checked") != std::string::npos);
  r = run({"-q", "introspect", "tok", "--server", as.issuer(), "--client-id", "ci", "--insecure-tls"}, {},
          {{"XDG_CACHE_HOME", dir.file("cache")}, {"TOKCTL_CLIENT_SECRET", k_secret}});
  REQUIRE(r.code == 0);
  CHECK(r.err.find("NOT checked") != std::string::npos);
}

TEST_CASE("remote CLI: introspect --phantom passes on only a JWT; -o json is one document", "[cli][remote]") {
  FakeAs as;
  TempDir dir;
  EnvVars env{{"XDG_CACHE_HOME", dir.file("cache")}, {"TOKCTL_CLIENT_SECRET", k_secret}};
  const std::vector<std::string> phantom{"introspect", "tok", "--phantom", "--server", as.issuer(), "--client-id", "rs"};
  auto with = [&](std::vector<std::string> extra) {
    std::vector<std::string> a = extra;
    a.insert(a.end(), phantom.begin(), phantom.end());
    return a;
  };
  const std::string jwt = "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJhIn0.c2ln";
  std::string type = "application/jwt", body = jwt;
  as.introspect = [&](const server::HttpRequest&) {
    server::HttpResponse r;
    r.set("Content-Type", type);
    r.body = body;
    return r;
  };
  auto r = run(with({}), {}, env);
  INFO(describe(r));
  CHECK(r.code == 0);
  CHECK(trimmed(r.out) == jwt);
  auto j = run(with({"-o", "json"}), {}, env);
  INFO(describe(j));
  CHECK(j.code == 0);
  CHECK(json::parse(j.out) == json{{"active", true}, {"token", jwt}});
  // A login page (or any answer that is not a JWT) is exit 5 and prints nothing.
  for (auto [t, b] : std::vector<std::pair<std::string, std::string>>{
           {"text/html", "<html><body>Please log in</body></html>"}, {"text/plain", "hello"},
           {"application/jwt", "hello"}, {"application/jwt", ""}, {"text/plain", jwt}}) {
    type = t;
    body = b;
    auto bad = run(with({}), {}, env);
    INFO(t << " " << b);
    INFO(describe(bad));
    CHECK(bad.code == 5);
    CHECK(bad.out.empty());
  }
}

TEST_CASE("remote CLI: a malformed URL or an unusable CA bundle is a usage error, not a network one",
          "[cli][remote]") {
  TempDir dir;
  EnvVars env{{"XDG_CACHE_HOME", dir.file("cache")}, {"TOKCTL_CLIENT_SECRET", k_secret}};
  auto r = run({"introspect", "x", "--server", "http://127.0.0.1:99999", "--client-id", "a"}, {}, env);
  INFO(describe(r));
  CHECK(r.code == 2);
  // A listening socket is enough: curl loads the CA bundle for the TLS handshake after connecting.
  std::uint16_t port = 0;
  int fd = bound_loopback_socket(true, port);
  write_file(dir.file("garbage.pem"), "this is not a certificate\n");
  const std::string url = "https://127.0.0.1:" + std::to_string(port);
  auto ca = run({"introspect", "x", "--server", url, "--client-id", "a", "--cacert", dir.file("garbage.pem"),
                 "--timeout", "3s"},
                {}, env);
  ::close(fd);
  INFO(describe(ca));
  CHECK(ca.code == 2);
  CHECK(ca.err.find("PEM") != std::string::npos);
}

// Regressions (review): answers a hostile or broken server may send.
TEST_CASE("remote CLI: token answers with control characters or no token_type exit 5 and print nothing",
          "[cli][remote]") {
  FakeAs as;
  TempDir dir;
  EnvVars env{{"XDG_CACHE_HOME", dir.file("cache")}, {"TOKCTL_CLIENT_SECRET", k_secret}};
  const std::vector<std::string> base{"issue", "--server", as.issuer(), "--client-id", "ci"};
  for (std::string body : {std::string(R"({"access_token":"AT\u001b]0;x\u0007\u001b[2J","token_type":"Bearer"})"),
                           std::string(R"({"access_token":"AT","token_type":"Bearer","refresh_token":"R\n\u001b[31mX"})"),
                           std::string(R"({"access_token":"AT"})"), std::string(R"({"access_token":"AT","token_type":5})"),
                           std::string(R"({"access_token":"AT","token_type":["Bearer"]})"),
                           std::string(R"({"access_token":"AT","token_type":"Bearer","id_token":7})")}) {
    INFO(body);
    as.token = [body](const server::HttpRequest&) { return json_response(body); };
    auto r = run(base, {}, env);
    INFO(describe(r));
    CHECK(r.code == 5);
    CHECK(r.out.empty());
    CHECK(r.err.find('\x1b') == std::string::npos);
  }
  // A type with no Authorization header form is never labelled Bearer; printed alone it is fine.
  as.token = [](const server::HttpRequest&) { return json_response(R"({"access_token":"AT","token_type":"N_A"})"); };
  auto header = run({"issue", "--server", as.issuer(), "--client-id", "ci", "--header"}, {}, env);
  INFO(describe(header));
  CHECK(header.code == 5);
  CHECK(header.out.empty());
  CHECK_THAT(header.err, Catch::Contains("N_A"));
  auto plain = run(base, {}, env);
  CHECK(plain.code == 0);
  CHECK(trimmed(plain.out) == "AT");
}

TEST_CASE("remote CLI: a secret (oct) key in a server's JWKS is never trusted", "[cli][remote]") {
  FakeAs as;
  TempDir dir;
  EnvVars env{{"XDG_CACHE_HOME", dir.file("cache")}};
  const std::string secret(32, 'k');
  write_file(dir.file("hs.bin"), secret);
  // Beside a real key (a set with only the secret has no usable key at all: refused as such).
  as.jwks = json{{"keys", json::array({json{{"kty", "oct"}, {"k", b64url_encode(secret)}, {"kid", "hk"}, {"alg", "HS256"}},
                                       test_key("p256").to_json(jose::KeyPart::public_only)})}}
                .dump();
  auto tok = run({"sign", "--secret-file", dir.file("hs.bin"), "--alg", "HS256", "--kid", "hk", "--iss", as.issuer(),
                  "--sub", "mallory", "--exp", "+10m"});
  REQUIRE(tok.code == 0);
  auto v = run({"verify", trimmed(tok.out), "--server", as.issuer()}, {}, env);
  INFO(describe(v));
  CHECK(v.code == 1);
  CHECK_THAT(v.out + v.err, Catch::Contains("never trusted"));
}

TEST_CASE("remote CLI: a document that is not UTF-8, or a redirect to another scheme, is a network failure (exit 5)",
          "[cli][remote]") {
  FakeAs as;
  TempDir dir;
  EnvVars env{{"XDG_CACHE_HOME", dir.file("cache")}};
  as.jwks = "{\"keys\":[{\"kty\":\"EC\",\"kid\":\"\xe9\"}]}";
  const std::string token = "eyJhbGciOiJFUzI1NiIsImtpZCI6ImEifQ.eyJzdWIiOiJhIn0.c2ln";
  auto v = run({"verify", token, "--server", as.issuer()}, {}, env);
  INFO(describe(v));
  CHECK(v.code == 5);
  CHECK_THAT(v.err, Catch::Contains("not UTF-8"));
  CHECK_THAT(v.err, !Catch::Contains("please report"));
  // A server that redirects the JWKS to file://.
  server::ServerOptions o;
  o.port = 0;
  o.threads = 1;
  auto redirecting = server::HttpServer::start(o, [](const server::HttpRequest&) {
    server::HttpResponse r;
    r.status = 302;
    r.set("Location", "file:///etc/passwd");
    return r;
  });
  REQUIRE(redirecting);
  const std::string url = "http://127.0.0.1:" + std::to_string((*redirecting)->port()) + "/jwks";
  auto red = run({"verify", token, "--jwks-url", url}, {}, env);
  (*redirecting)->stop(std::chrono::milliseconds(200));
  INFO(describe(red));
  CHECK(red.code == 5);
}
