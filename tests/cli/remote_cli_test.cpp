// Remote mode from the command line (issue 10) against an in-process loopback server that records
// what arrives: client authentication on the wire (Basic per RFC 6749 §2.3.1, client_secret_post,
// private_key_jwt per RFC 7523), server selection (flags, environment, profiles), discovery cached
// across runs, and the exit codes of refusals and failures (6 for an OAuth error, 5 for the rest,
// 2 for usage). Secrets never appear in the output.

#include <map>
#include <sys/stat.h>
#include <mutex>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <tokctl/jose/jwt.hpp>
#include <tokctl/remote/http.hpp>
#include <tokctl/server/form.hpp>
#include <tokctl/server/http_server.hpp>
#include <tokctl/util/base64.hpp>

#include "support/cli_helpers.hpp"
#include "support/keys.hpp"
#include "support/run.hpp"

using namespace tokctl;
using namespace tokctl::test;
using nlohmann::json;

namespace {

constexpr const char* k_secret = "s3cr3t:with space&amp";

// An authorization server with scripted token answers; it records every request.
struct FakeAs {
  std::mutex mu;
  std::vector<server::HttpRequest> seen;
  std::map<std::string, int> hits;
  std::function<server::HttpResponse(const server::HttpRequest&)> token = [](const server::HttpRequest&) {
    server::HttpResponse r;
    r.set("Content-Type", "application/json");
    r.body = R"({"access_token":"AT-1","token_type":"Bearer","expires_in":60,"refresh_token":"RT-1"})";
    return r;
  };
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
                      {"revocation_endpoint", issuer() + "/revoke"}}
                     .dump();
        return r;
      }
      if (path == "/token") return token(req);
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
