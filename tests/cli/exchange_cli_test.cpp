// CLI tests of `tokctl exchange` (issue 4 point 7): text and -o json output, each mode, refusals
// with their OAuth codes on stderr (and the RFC 6749 error object on stdout with -o json), exit
// codes, stdin, and the help's examples. The real binary on a TempDir keystore (`keys add`), a
// policy written here, subject tokens from `tokctl issue`; every time pinned with --now.

#include <catch2/catch.hpp>

#include <algorithm>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include <tokctl/util/base64.hpp>

#include "support/cli_helpers.hpp"
#include "support/run.hpp"

namespace {

using nlohmann::json;
using tokctl::test::describe;
using tokctl::test::RunResult;
using tokctl::test::TempDir;
using tokctl::test::trimmed;
using tokctl::test::write_file;
using Catch::Matchers::Contains;
using Catch::Matchers::StartsWith;

constexpr const char* k_t0 = "2026-01-01T00:00:00Z";
constexpr const char* k_t0_20m = "2026-01-01T00:20:00Z";

constexpr const char* k_policy = R"(issuer: https://tokens.example.test
tokens:
  access: {format: jwt, ttl: 15m}
scopes:
  - name: read
  - name: write
  - name: admin
clients:
  web: {scopes: [read, write, admin], audiences: [api-a]}
  svc-a: {scopes: [read], audiences: [api-a]}
  vault: {scopes: [read, write], audiences: [api-a], format: opaque}
exchange:
  - from: api-a
    to: [api-b, https://api-c.test/]
    scopes: [read, write]
    modes: [delegate, embed]
  - from: api-b
    to: [api-c]
    modes: [delegate, impersonate]
)";

json payload_of(const std::string& jwt) {
  auto first = jwt.find('.');
  auto second = jwt.find('.', first + 1);
  REQUIRE(second != std::string::npos);
  auto bytes = tokctl::b64url_decode(jwt.substr(first + 1, second - first - 1));
  REQUIRE(bytes);
  return json::parse(*bytes);
}

struct Env {
  TempDir dir;

  Env() {
    write_file(dir.file("tokctl.yaml"), k_policy);
    RunResult r = run({"keys", "add", "--alg", "ES256"});
    INFO(describe(r));
    REQUIRE(r.code == 0);
  }

  RunResult run(std::vector<std::string> args, std::string_view in = {}, const char* now = k_t0) {
    std::vector<std::string> a{"--keystore", dir.file("ks"), "--config", dir.file("tokctl.yaml"), "--now", now};
    a.insert(a.end(), args.begin(), args.end());
    return tokctl::test::run(a, in);
  }

  std::string issue(const std::string& client, const std::string& sub, const std::string& scope) {
    RunResult r = run({"issue", "--client-id", client, "--sub", sub, "--scope", scope});
    INFO(describe(r));
    REQUIRE(r.code == 0);
    return trimmed(r.out);
  }

  std::string exchange_ok(std::vector<std::string> args, std::string_view in = {}) {
    args.insert(args.begin(), "exchange");
    RunResult r = run(args, in);
    INFO(describe(r));
    REQUIRE(r.code == 0);
    REQUIRE(r.err.empty());
    return trimmed(r.out);
  }
};

}  // namespace

TEST_CASE("exchange prints the new token alone, which verifies against the keystore", "[exchange][cli]") {
  Env e;
  std::string subject = e.issue("web", "alice", "read write admin");
  std::string t = e.exchange_ok({"--subject-token", subject, "--audience", "api-b"});
  CHECK(t.find('\n') == std::string::npos);
  json c = payload_of(t);
  CHECK(c["sub"] == "alice");
  CHECK(c["client_id"] == "web");
  CHECK(c["aud"] == "api-b");
  CHECK(c["scope"] == "read write");
  CHECK(c["act"] == json{{"sub", "web"}});
  RunResult v = e.run({"verify", t});
  INFO(describe(v));
  CHECK(v.code == 0);
}

TEST_CASE("exchange -o json prints the RFC 8693 token response", "[exchange][cli]") {
  Env e;
  std::string subject = e.issue("web", "alice", "read write");
  RunResult r = e.run({"-o", "json", "exchange", "--subject-token", subject, "--audience", "api-b", "--scope", "read"});
  INFO(describe(r));
  REQUIRE(r.code == 0);
  json j = json::parse(r.out);
  CHECK(j["issued_token_type"] == "urn:ietf:params:oauth:token-type:jwt");
  CHECK(j["token_type"] == "Bearer");
  CHECK(j["expires_in"] == 900);
  CHECK(j["scope"] == "read");
  REQUIRE(j["access_token"].is_string());
  CHECK(payload_of(j["access_token"].get<std::string>())["scope"] == "read");
}

TEST_CASE("exchange modes: a delegation chain nests act, impersonate drops it, embed carries the token", "[exchange][cli]") {
  Env e;
  std::string user = e.issue("web", "alice", "read write");
  std::string actor = e.issue("svc-a", "service-a", "read");
  std::string hop1 = e.exchange_ok({"--subject-token", user, "--actor-token", actor, "--audience", "api-b"});
  CHECK(payload_of(hop1)["act"] == json{{"sub", "service-a"}});

  std::string hop2 = e.exchange_ok({"--subject-token", hop1, "--audience", "api-c", "--mode", "delegate"});
  CHECK(payload_of(hop2)["act"] == json{{"sub", "web"}, {"act", {{"sub", "service-a"}}}});

  std::string imp = e.exchange_ok({"--subject-token", hop1, "--audience", "api-c", "--mode", "impersonate"});
  CHECK_FALSE(payload_of(imp).contains("act"));
  CHECK(payload_of(imp)["sub"] == "alice");

  std::string emb = e.exchange_ok({"--subject-token", user, "--resource", "https://api-c.test/", "--mode", "embed"});
  json c = payload_of(emb);
  CHECK_FALSE(c.contains("act"));
  CHECK(c["aud"] == "https://api-c.test/");
  REQUIRE(c["subject_token"] == user);
  RunResult v = e.run({"verify", c["subject_token"].get<std::string>()});
  INFO(describe(v));
  CHECK(v.code == 0);
}

TEST_CASE("exchange reads the subject token from stdin and accepts opaque tokens", "[exchange][cli]") {
  Env e;
  std::string opaque = e.issue("vault", "carol", "read write");
  REQUIRE(std::count(opaque.begin(), opaque.end(), '.') == 0);
  std::string t = e.exchange_ok({"--subject-token", "-", "--audience", "api-b", "--requested-token-type",
                                 "urn:ietf:params:oauth:token-type:access_token"},
                                opaque + "\n");
  CHECK(payload_of(t)["sub"] == "carol");
  CHECK(payload_of(t)["client_id"] == "vault");
}

TEST_CASE("exchange refusals exit 1 with the OAuth error code", "[exchange][cli][refusal]") {
  Env e;
  std::string subject = e.issue("web", "alice", "read admin");
  struct Case {
    std::vector<std::string> args;
    std::string code;
  };
  std::vector<Case> cases = {
      {{"--subject-token", subject, "--audience", "api-z"}, "invalid_target"},
      {{"--subject-token", subject, "--resource", "https://evil.test/"}, "invalid_target"},
      {{"--subject-token", subject, "--audience", "api-b", "--scope", "admin"}, "invalid_scope"},
      {{"--subject-token", subject, "--audience", "api-b", "--scope", "write"}, "invalid_scope"},
      {{"--subject-token", subject, "--audience", "api-b", "--mode", "impersonate"}, "invalid_request"},
      {{"--subject-token", subject, "--requested-token-type", "refresh_token"}, "invalid_request"},
      {{"--subject-token", "garbage"}, "invalid_grant"},
      {{"--subject-token", subject, "--actor-token", "garbage"}, "invalid_grant"},
  };
  for (const auto& c : cases) {
    std::vector<std::string> args{"exchange"};
    args.insert(args.end(), c.args.begin(), c.args.end());
    RunResult text = e.run(args);
    INFO(describe(text));
    CHECK(text.code == 1);
    CHECK(text.out.empty());
    CHECK_THAT(text.err, StartsWith("tokctl: error: " + c.code + ": "));

    args.insert(args.begin(), {"-o", "json"});
    RunResult js = e.run(args);
    INFO(describe(js));
    CHECK(js.code == 1);
    json j = json::parse(js.out);
    CHECK(j["error"] == c.code);
    CHECK(j["error_description"].is_string());
    CHECK_FALSE(j["error_description"].get<std::string>().empty());
    CHECK(j.size() == 2);
  }
}

TEST_CASE("exchange refuses expired and revoked subject tokens with invalid_grant", "[exchange][cli][refusal]") {
  Env e;
  std::string subject = e.issue("web", "alice", "read");
  RunResult late = e.run({"exchange", "--subject-token", subject}, {}, k_t0_20m);
  INFO(describe(late));
  CHECK(late.code == 1);
  CHECK_THAT(late.err, Contains("invalid_grant"));

  std::string exchanged = e.exchange_ok({"--subject-token", subject});
  RunResult rv = e.run({"revoke", subject, "--grant"});
  INFO(describe(rv));
  REQUIRE(rv.code == 0);
  RunResult r = e.run({"exchange", "--subject-token", subject});
  INFO(describe(r));
  CHECK(r.code == 1);
  CHECK_THAT(r.err, Contains("invalid_grant"));
  // The exchanged token shared the subject's grant: revoking the grant revoked it too.
  RunResult again = e.run({"exchange", "--subject-token", exchanged, "--audience", "api-c"});
  CHECK(again.code == 1);
  CHECK_THAT(again.err, Contains("invalid_grant"));
}

TEST_CASE("exchange usage errors exit 2", "[exchange][cli]") {
  Env e;
  CHECK(e.run({"exchange"}).code == 2);
  CHECK(e.run({"exchange", "--subject-token", "x", "--mode", "borrow"}).code == 2);
  CHECK(e.run({"exchange", "--subject-token", "-", "--actor-token", "-"}).code == 2);
  CHECK(e.run({"exchange", "--subject-token", "x", "--actor-token-type", "jwt"}).code == 2);
}

TEST_CASE("exchange --help shows examples and the refusal codes", "[exchange][cli]") {
  RunResult r = tokctl::test::run({"exchange", "--help"});
  INFO(describe(r));
  CHECK(r.code == 0);
  CHECK_THAT(r.out, Contains("Examples:"));
  CHECK_THAT(r.out, Contains("tokctl exchange --subject-token"));
  CHECK_THAT(r.out, Contains("--actor-token"));
  CHECK_THAT(r.out, Contains("invalid_target"));
  CHECK_THAT(r.out, Contains("invalid_scope"));
  CHECK_THAT(r.out, Contains("invalid_grant"));
}

// ---- issue 7 ------------------------------------------------------------------------------------

// Point 12: `issue` without --client-id makes tokens with client_id "tokctl" that belong to no
// client; exchange takes them the same way.
TEST_CASE("exchange accepts a token issued without --client-id", "[exchange][cli]") {
  Env e;
  RunResult issued = e.run({"issue", "--sub", "alice", "--aud", "api-a"});
  INFO(describe(issued));
  REQUIRE(issued.code == 0);
  std::string t = e.exchange_ok({"--subject-token", trimmed(issued.out), "--audience", "api-b"});
  json c = payload_of(t);
  CHECK(c["client_id"] == "tokctl");
  CHECK(c["sub"] == "alice");
  CHECK(c["act"] == json{{"sub", "tokctl"}});
  CHECK(e.run({"verify", t}).code == 0);
}

TEST_CASE("help exchange lists every refusal code", "[exchange][cli]") {
  for (const std::vector<std::string>& args : {std::vector<std::string>{"help", "exchange"}, {"exchange", "--help"}}) {
    RunResult r = tokctl::test::run(args);
    INFO(describe(r));
    CHECK(r.code == 0);
    for (const char* code : {"invalid_grant", "invalid_target", "invalid_scope", "invalid_request", "invalid_client"}) {
      CHECK_THAT(r.out, Contains(code));
    }
  }
}

// Points 2 and 3: a forged subject token is invalid_grant; keystore-signed subject tokens with
// wrong-typed claims never crash exchange (exit 0, 1 or 3).
TEST_CASE("exchange refuses forged subject tokens and survives wrong-typed claims", "[exchange][cli][attack]") {
  Env e;
  std::string real = e.issue("web", "alice", "read");
  std::string other = e.issue("web", "mallory", "read");
  std::string forged = real.substr(0, real.rfind('.')) + other.substr(other.rfind('.'));
  RunResult r = e.run({"-o", "json", "exchange", "--subject-token", forged, "--audience", "api-b"});
  INFO(describe(r));
  CHECK(r.code == 1);
  CHECK(json::parse(r.out)["error"] == "invalid_grant");

  const std::vector<std::string> base = {"iss=https://tokens.example.test", "sub=alice", "client_id=web", "aud=api-a",
                                         "scope=read", "jti=base-jti", "exp=1767226200"};
  for (const char* name : {"jti", "sid", "client_id", "sub", "exp", "scope", "aud", "act"}) {
    for (const char* value : {"42", "[1,2]", "{\"a\":1}", "null", "1e300"}) {
      std::vector<std::string> sign = {"sign", "--typ", "at+jwt"};
      for (const auto& c : base) {
        if (c.rfind(std::string(name) + "=", 0) == 0) continue;
        sign.push_back("--claim");
        sign.push_back(c);
      }
      sign.push_back("--claim");
      sign.push_back(std::string(name) + "=" + value);
      RunResult s = e.run(sign);
      REQUIRE(s.code == 0);
      for (const char* mode : {"delegate", "impersonate"}) {
        RunResult x = e.run({"exchange", "--subject-token", trimmed(s.out), "--audience", "api-b", "--mode", mode});
        INFO(name << "=" << value << " " << mode << "\n" << describe(x));
        CHECK((x.code == 0 || x.code == 1 || x.code == 3));
      }
    }
  }
}
