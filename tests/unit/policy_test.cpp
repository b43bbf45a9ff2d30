// The policy file (issue 4 point 1, DESIGN.md "Policy file"): check_policy reads every setting,
// reports every problem at once with file:line:column (unknown keys at each level, bad formats and
// durations, scope rules with both name and prefix, client scopes not under scopes, bad exchange
// modes, reserved claims), gives the built-in defaults without a file, and resolves relative paths
// against the policy file's directory. `tokctl config check` exits 3 listing them all.

#include <tokctl/tokens/policy.hpp>

#include <catch2/catch.hpp>

#include <algorithm>
#include <chrono>
#include <regex>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include <sys/stat.h>
#include <unistd.h>

#include "support/keys.hpp"
#include "support/run.hpp"

using nlohmann::json;
using tokctl::test::TempDir;
using tokctl::test::write_file;
using namespace tokctl::tokens;
using Catch::Matchers::Contains;

namespace {

// The problem that mentions `needle`, or "" (and a failed check) when none does.
std::string problem_with(const PolicyCheck& c, const std::string& needle) {
  for (const auto& p : c.problems)
    if (p.find(needle) != std::string::npos) return p;
  std::string all;
  for (const auto& p : c.problems) all += "\n  " + p;
  FAIL_CHECK("no problem mentions '" << needle << "'; problems:" << all);
  return {};
}

// "FILE:LINE:COL: ..." with the expected line (and column when given).
void check_position(const std::string& problem, const std::string& file, int line, int column = 0) {
  INFO(problem);
  std::string prefix = file + ":" + std::to_string(line) + ":";
  CHECK(problem.rfind(prefix, 0) == 0);
  if (column > 0) CHECK(problem.rfind(prefix + std::to_string(column) + ": ", 0) == 0);
}

// A public JWK that tokens.jwe_recipient may name.
std::string recipient_jwk() {
  auto pub = tokctl::test::test_key("p256").to_public();
  REQUIRE(pub);
  return pub->to_json().dump();
}

PolicyCheck check_text(const TempDir& dir, const std::string& yaml, const std::string& name = "tokctl.yaml") {
  write_file(dir.file(name), yaml);
  return check_policy(dir.file(name));
}

}  // namespace

TEST_CASE("check_policy without a file gives the built-in defaults", "[policy]") {
  auto c = check_policy("");
  CHECK(c.problems.empty());
  const Policy& p = c.policy;
  CHECK(p.source.empty());
  CHECK(p.issuer == "https://tokctl.local");
  CHECK(p.access.format == "jwt");
  CHECK(p.access.ttl == 15 * 60);
  CHECK(p.refresh.format == "opaque");
  CHECK(p.refresh.ttl == 30 * 86400);
  CHECK(p.id.format == "jwt");
  CHECK(p.max_lifetime == 24 * 3600);
  CHECK(p.scopes.empty());
  CHECK(p.clients.empty());
  CHECK(p.exchange.empty());
  CHECK(p.keystore.empty());
  CHECK(p.store.empty());
  CHECK(p.scope_rule("read") == nullptr);

  auto l = load_policy("");
  REQUIRE(l);
  CHECK(l->issuer == "https://tokctl.local");
}

TEST_CASE("check_policy reads every setting of the schema", "[policy]") {
  TempDir dir;
  write_file(dir.file("subjects.yaml"), "alice: {email: alice@example.test, level: 3}\n");
  write_file(dir.file("recipient.pub.jwk"), recipient_jwk());
  auto c = check_text(dir, R"(issuer: https://tokens.example.test
keystore: ./keys
store: sqlite:./data/tokens.db
tokens:
  access: {format: wrapped, ttl: 5m}
  refresh: {ttl: 7d, rotate: false}
  id: {ttl: 2m}
  opaque_prefix: tok_
  signing_alg: EdDSA
  jwe_recipient: ./recipient.pub.jwk
  max_lifetime: 12h
  wrapper_claims: [tenant, region]
scopes:
  - name: read
  - name: write
    claims: {can_write: true, level: 2}
  - prefix: video_stream_
    ttl: 10m
claims:
  tenant: acme
  email: "{{subject.email}}"
  who: "{{sub}}@{{client_id}}"
  quoted: "true"
  number: 42
subjects: ./subjects.yaml
clients:
  web:
    secret_hash: "sha256:7fccb1e7c6b606c58525851cc1bfe1bdeed2251a07fefc0e269e1382d3c97406"
    scopes: [read, write, video_stream_]
    audiences: [api-a, api-b]
    format: opaque
    sector: web.example
  partner: {scopes: [read], sector: partner.example}
exchange:
  - from: api-a
    to: [api-b, api-c]
    scopes: [read]
    modes: [delegate, embed, impersonate]
  - from: api-b
    to: [api-c]
)");
  INFO(c.problems.size());
  for (const auto& p : c.problems) INFO(p);
  REQUIRE(c.problems.empty());
  const Policy& p = c.policy;
  CHECK(p.issuer == "https://tokens.example.test");
  CHECK(p.access.format == "wrapped");
  CHECK(p.access.ttl == 300);
  CHECK(p.refresh.ttl == 7 * 86400);
  CHECK(p.refresh.rotate == false);
  CHECK(p.id.ttl == 120);
  CHECK(p.opaque_prefix == "tok_");
  CHECK(p.signing_alg == "EdDSA");
  CHECK(p.max_lifetime == 12 * 3600);
  CHECK(p.wrapper_claims == std::vector<std::string>{"tenant", "region"});
  REQUIRE(p.scopes.size() == 3);
  CHECK(p.scopes[0].name == "read");
  CHECK(!p.scopes[0].ttl);
  CHECK(p.scopes[1].claims == json{{"can_write", true}, {"level", 2}});
  CHECK(p.scopes[2].prefix == "video_stream_");
  CHECK(p.scopes[2].ttl == 600);
  CHECK(p.scope_rule("video_stream_hd") == &p.scopes[2]);
  CHECK(p.scope_rule("video_stream_") == nullptr);
  CHECK(p.scope_rule("video") == nullptr);
  CHECK(p.scope_rule("write") == &p.scopes[1]);
  CHECK(p.claims["tenant"] == "acme");
  CHECK(p.claims["email"] == "{{subject.email}}");
  CHECK(p.claims["quoted"] == "true");  // quoted YAML stays a string
  CHECK(p.claims["number"] == 42);
  CHECK(p.subjects.at("alice")["email"] == "alice@example.test");
  CHECK(p.subjects.at("alice")["level"] == 3);
  REQUIRE(p.client("web"));
  const ClientPolicy& web = *p.client("web");
  CHECK(web.id == "web");
  CHECK(web.scopes == std::vector<std::string>{"read", "write", "video_stream_"});
  CHECK(web.audiences == std::vector<std::string>{"api-a", "api-b"});
  CHECK(web.format == "opaque");
  CHECK(web.sector == "web.example");
  CHECK(web.secret_hash.rfind("sha256:", 0) == 0);
  CHECK(p.client("partner")->sector == "partner.example");
  CHECK(p.client("nobody") == nullptr);
  REQUIRE(p.exchange.size() == 2);
  CHECK(p.exchange[0].from == "api-a");
  CHECK(p.exchange[0].to == std::vector<std::string>{"api-b", "api-c"});
  CHECK(p.exchange[0].scopes == std::vector<std::string>{"read"});
  CHECK(p.exchange[0].modes.size() == 3);
  CHECK(p.exchange[1].modes == std::vector<std::string>{"delegate"});  // the default mode
  CHECK(p.source == dir.file("tokctl.yaml"));
}

TEST_CASE("relative paths in the policy resolve against the policy file's directory", "[policy]") {
  TempDir dir;
  write_file(dir.file("people.yaml"), "bob: {email: bob@example.test}\n");
  REQUIRE(::mkdir(dir.file("keys").c_str(), 0700) == 0);
  write_file(dir.file("keys/recipient.pub.jwk"), recipient_jwk());
  auto c = check_text(dir, R"(keystore: ./ks
store: sqlite:db/tokens.db
tokens:
  jwe_recipient: keys/recipient.pub.jwk
subjects: people.yaml
)");
  REQUIRE(c.problems.empty());
  const std::string d = dir.path();
  auto resolved = [&](const std::string& got, const std::string& rel) {
    INFO(got);
    // ./x and x both name DIR/x.
    CHECK((got == d + "/" + rel || got == d + "/./" + rel));
  };
  resolved(c.policy.keystore, "ks");
  REQUIRE(c.policy.store.rfind("sqlite:", 0) == 0);
  resolved(c.policy.store.substr(7), "db/tokens.db");
  resolved(c.policy.jwe_recipient, "keys/recipient.pub.jwk");
  resolved(c.policy.subjects_file, "people.yaml");
  CHECK(c.policy.subjects.count("bob") == 1);

  SECTION("absolute paths and URLs are kept") {
    auto a = check_text(dir, "keystore: /srv/ks\nstore: postgresql://db.example/tokens\n", "abs.yaml");
    REQUIRE(a.problems.empty());
    CHECK(a.policy.keystore == "/srv/ks");
    CHECK(a.policy.store == "postgresql://db.example/tokens");
  }
  SECTION("the subjects file is read relative to the policy, not the current directory") {
    auto m = check_text(dir, "subjects: missing.yaml\n", "m.yaml");
    auto p = problem_with(m, "missing.yaml");
    check_position(p, dir.file("m.yaml"), 1, 11);
  }
}

TEST_CASE("unknown keys are errors at every level, with file:line:column", "[policy]") {
  TempDir dir;
  const std::string f = dir.file("tokctl.yaml");
  auto c = check_text(dir, R"(issuer: https://x
colour: blue
tokens:
  access: {format: jwt, lifetime: 15m}
  refresh: {ttl: 30d, rotate: true, reuse: deny}
  id: {ttl: 15m, format: jwt, aud: x}
  prefix: tok_
scopes:
  - name: read
    description: can read
clients:
  web:
    scopes: [read]
    redirect_uri: https://web.test/cb
exchange:
  - from: api-a
    to: [api-b]
    via: gateway
)");
  CHECK(c.problems.size() >= 7);
  check_position(problem_with(c, "'colour'"), f, 2, 1);
  check_position(problem_with(c, "'lifetime'"), f, 4, 25);
  check_position(problem_with(c, "'reuse'"), f, 5, 37);
  check_position(problem_with(c, "'aud'"), f, 6, 31);
  check_position(problem_with(c, "'prefix'"), f, 7, 3);
  check_position(problem_with(c, "'description'"), f, 10, 5);
  check_position(problem_with(c, "'redirect_uri'"), f, 14, 5);
  check_position(problem_with(c, "'via'"), f, 18, 5);
  // Each names what is allowed there.
  CHECK_THAT(problem_with(c, "'colour'"), Contains("issuer"));
  CHECK_THAT(problem_with(c, "'redirect_uri'"), Contains("sector"));
}

TEST_CASE("bad formats, durations and values are reported with their positions", "[policy]") {
  TempDir dir;
  const std::string f = dir.file("tokctl.yaml");
  auto c = check_text(dir, R"(store: mysql://db/tokens
tokens:
  access: {format: paseto, ttl: 15q}
  refresh: {format: jwt, ttl: 0s, rotate: maybe}
  id: {ttl: soon}
  max_lifetime: -1h
  opaque_prefix: "has space"
scopes:
  - prefix: video_
    ttl: forever
clients:
  web:
    format: xml
    secret_hash: md5:abc
    scopes: read
)");
  // Separately, so the positions above stay put.
  for (const char* alg : {"none", "ES257", "A128KW"}) {
    INFO(alg);
    auto a = check_text(dir, std::string("tokens:\n  signing_alg: ") + alg + "\n");
    check_position(problem_with(a, "tokens.signing_alg '" + std::string(alg) + "'"), f, 2, 16);
  }
  for (const char* value : {"[ES256]", "{alg: ES256}", "\"\"", "~"}) {
    INFO(value);
    auto a = check_text(dir, std::string("tokens:\n  signing_alg: ") + value + "\n");
    REQUIRE_FALSE(a.problems.empty());
    CHECK(a.policy.signing_alg.empty());
  }
  check_position(problem_with(c, "mysql://"), f, 1, 8);
  check_position(problem_with(c, "'paseto'"), f, 3, 20);
  check_position(problem_with(c, "'15q'"), f, 3, 33);
  check_position(problem_with(c, "tokens.refresh.format"), f, 4, 21);
  check_position(problem_with(c, "'0s'"), f, 4, 31);
  check_position(problem_with(c, "rotate"), f, 4, 43);
  check_position(problem_with(c, "'soon'"), f, 5, 13);
  check_position(problem_with(c, "'-1h'"), f, 6, 17);
  check_position(problem_with(c, "opaque_prefix"), f, 7, 18);
  check_position(problem_with(c, "'forever'"), f, 10, 10);
  check_position(problem_with(c, "'xml'"), f, 13, 13);
  check_position(problem_with(c, "secret_hash"), f, 14, 18);
  check_position(problem_with(c, "scopes must be a list"), f, 15, 13);
  CHECK(c.problems.size() >= 13);
}

TEST_CASE("scope rules need exactly one of name or prefix; client scopes must be under scopes", "[policy]") {
  TempDir dir;
  const std::string f = dir.file("tokctl.yaml");
  auto c = check_text(dir, R"(scopes:
  - name: read
  - name: both
    prefix: both_
  - ttl: 5m
  - prefix: video_stream_
clients:
  web:
    scopes: [read, admin, video_stream_]
  partner:
    scopes: [video_]
)");
  auto both = problem_with(c, "exactly one of name or prefix");
  check_position(both, f, 3, 5);
  auto count = std::count_if(c.problems.begin(), c.problems.end(), [](const std::string& p) {
    return p.find("exactly one of name or prefix") != std::string::npos;
  });
  CHECK(count == 2);  // "both" and the rule with neither (line 5)
  auto admin = problem_with(c, "'admin'");
  check_position(admin, f, 9);
  CHECK_THAT(admin, Contains("web"));
  auto video = problem_with(c, "'video_'");
  check_position(video, f, 11);
  CHECK_THAT(video, Contains("partner"));
  // read and video_stream_ are fine.
  CHECK(std::none_of(c.problems.begin(), c.problems.end(),
                     [](const std::string& p) { return p.find("'read'") != std::string::npos ||
                                                       p.find("'video_stream_'") != std::string::npos; }));
}

TEST_CASE("exchange rules: bad modes and missing from/to are reported", "[policy]") {
  TempDir dir;
  const std::string f = dir.file("tokctl.yaml");
  auto c = check_text(dir, R"(exchange:
  - from: api-a
    to: [api-b]
    modes: [delegate, steal]
  - to: [api-c]
  - from: api-c
  - from: api-d
    to: api-e
)");
  check_position(problem_with(c, "'steal'"), f, 4, 12);
  check_position(problem_with(c, "needs 'from'"), f, 5, 5);
  check_position(problem_with(c, "needs 'to'"), f, 6, 5);
  check_position(problem_with(c, "exchange to must be a list"), f, 8, 9);
  auto bad_root = check_text(dir, "exchange: {from: a}\n", "x.yaml");
  check_position(problem_with(bad_root, "exchange must be a list"), dir.file("x.yaml"), 1, 11);
}

TEST_CASE("claims the issuer sets cannot be configured", "[policy]") {
  TempDir dir;
  const std::string f = dir.file("tokctl.yaml");
  auto c = check_text(dir, R"(claims:
  tenant: acme
  sub: admin
  exp: 99999999999
  iss: https://evil.test
  aud: everyone
  scope: admin
  client_id: other
  jti: fixed
  iat: 0
  nbf: 0
  cnf: {x5t#S256: spoofed}
)");
  int line = 3;
  for (const char* name : {"'sub'", "'exp'", "'iss'", "'aud'", "'scope'", "'client_id'", "'jti'", "'iat'", "'nbf'", "'cnf'"}) {
    check_position(problem_with(c, std::string("claim ") + name), f, line++, 3);
  }
  CHECK(std::none_of(c.problems.begin(), c.problems.end(),
                     [](const std::string& p) { return p.find("tenant") != std::string::npos; }));
}

// Regression (was a bug): the service reserves `sid` (the grant id: JWT revocation by grant relies on it), but the
// policy's reserved-claim list lacks it, so `claims: {sid: x}` passes config check and overwrites
// the grant id of every JWT (revoke --grant / --client-id --all then miss those JWTs).
TEST_CASE("the grant id claim sid cannot be configured", "[policy]") {
  TempDir dir;
  auto c = check_text(dir, "claims:\n  sid: fixed\n");
  check_position(problem_with(c, "'sid'"), dir.file("tokctl.yaml"), 2, 3);
}

// Regression (was a bug): scope `claims` are not checked for reserved names, and the service copies them over the
// registered claims: `scopes: [{name: read, claims: {sub: root, exp: 99999999999, iss: ...}}]` is
// accepted by config check and yields tokens with sub "root", an exp beyond max_lifetime and a
// foreign iss whenever `read` is granted.
TEST_CASE("scope claims cannot set claims the issuer sets", "[policy]") {
  TempDir dir;
  const std::string f = dir.file("tokctl.yaml");
  auto c = check_text(dir, R"(scopes:
  - name: read
    claims:
      sub: root
      exp: 99999999999
      iss: https://evil.test
)");
  check_position(problem_with(c, "'sub'"), f, 4);
  check_position(problem_with(c, "'exp'"), f, 5);
  check_position(problem_with(c, "'iss'"), f, 6);
}

TEST_CASE("YAML syntax errors, unreadable files and wrong shapes are problems, not crashes", "[policy]") {
  TempDir dir;
  auto syntax = check_text(dir, "issuer: [unclosed\nscopes: x\n", "syntax.yaml");
  REQUIRE(syntax.problems.size() == 1);
  CHECK(syntax.problems[0].rfind(dir.file("syntax.yaml") + ":", 0) == 0);
  CHECK(std::regex_search(syntax.problems[0], std::regex(R"(^[^:]+:\d+:\d+: )")));

  auto missing = check_policy(dir.file("nope.yaml"));
  REQUIRE(missing.problems.size() == 1);
  CHECK_THAT(missing.problems[0], Contains("nope.yaml"));

  auto list = check_text(dir, "- a\n- b\n", "list.yaml");
  REQUIRE(!list.problems.empty());
  check_position(list.problems[0], dir.file("list.yaml"), 1, 1);

  auto shapes = check_text(dir, "scopes: {read: 1}\nclients: [web]\nexchange: [{from: a, to: b}]\nissuer: {a: b}\n",
                           "shapes.yaml");
  check_position(problem_with(shapes, "scopes must be a list"), dir.file("shapes.yaml"), 1, 9);
  check_position(problem_with(shapes, "clients must be a mapping"), dir.file("shapes.yaml"), 2, 10);
  check_position(problem_with(shapes, "exchange to must be a list"), dir.file("shapes.yaml"), 3, 26);
  check_position(problem_with(shapes, "issuer must be a string"), dir.file("shapes.yaml"), 4, 9);

  // An empty policy file is a mistake, not a request for the defaults (see "an empty policy file").
  auto empty = check_text(dir, "", "empty.yaml");
  REQUIRE(empty.problems.size() == 1);
  CHECK_THAT(empty.problems[0], Contains("the policy file is empty"));

  auto l = load_policy(dir.file("shapes.yaml"));
  REQUIRE(!l);
  CHECK(l.error().code == tokctl::ErrorCode::malformed);
  CHECK_THAT(l.error().message, Contains("scopes must be a list"));
  CHECK_THAT(l.error().message, Contains("clients must be a mapping"));
}

// Regression (was a bug): `claims:` given as a list is reported ("claims must be a mapping") but the reserved-claim
// loop then iterates the sequence as a map, yaml-cpp throws, and the catch-all records
// "FILE:0:0: invalid node; this may result from using a map iterator as a sequence iterator" (a
// bogus position) and stops: every later section (subjects, clients, exchange) goes unchecked.
TEST_CASE("claims given as a list is one problem and checking goes on", "[policy]") {
  TempDir dir;
  auto c = check_text(dir, "claims: [a]\nclients: [web]\n");
  const std::string f = dir.file("tokctl.yaml");
  check_position(problem_with(c, "claims must be a mapping"), f, 1, 9);
  check_position(problem_with(c, "clients must be a mapping"), f, 2, 10);
  for (const auto& p : c.problems) {
    INFO(p);
    CHECK(p.find(":0:0:") == std::string::npos);
  }
  CHECK(c.problems.size() == 2);
}

// Regression (was a bug): the "client scopes must be under scopes" cross-check only runs when at least one scope rule
// was read, so a policy without (valid) scope rules accepts `clients: {web: {scopes: [admin]}}`
// although issue then refuses every scope ("the policy defines no scopes").
TEST_CASE("client scopes are checked even when the policy has no scope rules", "[policy]") {
  TempDir dir;
  auto c = check_text(dir, "clients:\n  web: {scopes: [admin]}\n");
  check_position(problem_with(c, "'admin'"), dir.file("tokctl.yaml"), 2);
}

TEST_CASE("tokctl config check lists every problem and exits 3", "[policy][cli]") {
  TempDir dir;
  const std::string f = dir.file("bad.yaml");
  write_file(f, R"(issuer: https://x
bogus: 1
tokens:
  access: {format: paseto, ttl: 15q}
scopes:
  - name: read
    prefix: r_
  - name: write
clients:
  web: {scopes: [admin]}
exchange:
  - from: a
    to: [b]
    modes: [steal]
)");
  auto r = tokctl::test::run({"config", "check", f});
  INFO("exit " << r.code << "\nstdout:\n" << r.out << "\nstderr:\n" << r.err);
  CHECK(r.code == 3);
  for (const char* where : {":2:1: ", ":4:20: ", ":4:33: ", ":6:5: ", ":10:", ":14:12: "}) {
    CHECK_THAT(r.err, Contains(f + where));
  }
  CHECK_THAT(r.err, Contains("problem"));

  auto j = tokctl::test::run({"-o", "json", "config", "check", f});
  CHECK(j.code == 3);
  auto report = json::parse(j.out);
  CHECK(report["ok"] == false);
  CHECK(report["file"] == f);
  CHECK(report["problems"].size() >= 6);
  for (const auto& p : report["problems"]) {
    INFO(p.dump());
    CHECK(std::regex_search(p.get<std::string>(), std::regex(R"(^[^:]+:\d+:\d+: )")));
  }

  SECTION("the file may come from --config or TOKCTL_CONFIG") {
    auto viaflag = tokctl::test::run({"--config", f, "config", "check"});
    CHECK(viaflag.code == 3);
    auto viaenv = tokctl::test::run({"config", "check"}, {}, {{"TOKCTL_CONFIG", f}});
    CHECK(viaenv.code == 3);
    write_file(dir.file("good.yaml"), "issuer: https://ok.test\n");
    auto good = tokctl::test::run({"config", "check"}, {}, {{"TOKCTL_CONFIG", dir.file("good.yaml")}});
    CHECK(good.code == 0);
  }
  SECTION("a command that needs the policy refuses a broken one") {
    auto issue = tokctl::test::run({"--config", f, "--keystore", dir.file("ks"), "issue", "--sub", "x"});
    CHECK(issue.code == 3);
    CHECK_THAT(issue.err, Contains("bogus"));
  }
}

// ---- issue 7 point 13: config check catches what later fails --------------------------------------

TEST_CASE("config check: a missing, unreadable or non-key jwe_recipient is a problem at its line", "[policy]") {
  TempDir dir;
  const std::string f = dir.file("tokctl.yaml");
  auto missing = check_text(dir, "tokens:\n  jwe_recipient: ./nope.jwk\n");
  check_position(problem_with(missing, "nope.jwk"), f, 2, 18);
  REQUIRE(::mkdir(dir.file("adir").c_str(), 0700) == 0);
  auto directory = check_text(dir, "tokens:\n  jwe_recipient: ./adir\n");
  check_position(problem_with(directory, "directory"), f, 2, 18);
  write_file(dir.file("junk.jwk"), "not a key");
  auto junk = check_text(dir, "tokens:\n  jwe_recipient: junk.jwk\n");
  check_position(problem_with(junk, "not a key"), f, 2, 18);
  write_file(dir.file("secret.jwk"), tokctl::test::test_key_json("hs256"));
  auto oct = check_text(dir, "tokens:\n  jwe_recipient: secret.jwk\n");
  check_position(problem_with(oct, "public key"), f, 2, 18);
  write_file(dir.file("ok.jwk"), recipient_jwk());
  CHECK(check_text(dir, "tokens:\n  jwe_recipient: ok.jwk\n").problems.empty());
}

TEST_CASE("config check: duplicate scope names and prefixes", "[policy]") {
  TempDir dir;
  auto c = check_text(dir, "scopes:\n  - read\n  - name: write\n  - name: read\n  - prefix: v_\n  - prefix: v_\n");
  const std::string f = dir.file("tokctl.yaml");
  check_position(problem_with(c, "duplicate scope 'read'"), f, 4, 5);
  CHECK_THAT(problem_with(c, "duplicate scope 'read'"), Contains(":2:5"));  // where the first one is
  check_position(problem_with(c, "duplicate scope prefix 'v_'"), f, 6, 5);
  CHECK(c.problems.size() == 2);
}

// Regression (review): the first matching rule applied, so a broad prefix listed first hid a narrower
// prefix's and a name rule's claims and TTL, and a client listing the narrower prefix was refused.
TEST_CASE("of several matching scope rules the most specific applies, and any matching prefix allows", "[policy]") {
  TempDir dir;
  auto c = check_text(dir, "scopes:\n  - prefix: video_\n  - prefix: video_stream_\n    claims: {stream: true}\n"
                           "  - name: video_admin\n    claims: {role: admin}\n"
                           "clients:\n  web: {scopes: [video_stream_, video_admin]}\n  all: {scopes: [video_]}\n");
  CHECK(c.problems.empty());
  const Policy& p = c.policy;
  const ScopeRule* stream = p.scope_rule("video_stream_1");
  REQUIRE(stream != nullptr);
  CHECK(stream->prefix == "video_stream_");
  const ScopeRule* admin = p.scope_rule("video_admin");
  REQUIRE(admin != nullptr);
  CHECK(admin->name == "video_admin");
  const ScopeRule* other = p.scope_rule("video_hd");
  REQUIRE(other != nullptr);
  CHECK(other->prefix == "video_");
  const auto& web = p.clients.at("web").scopes;
  CHECK(p.scope_listed(web, "video_stream_1"));
  CHECK(p.scope_listed(web, "video_admin"));
  CHECK_FALSE(p.scope_listed(web, "video_hd"));
  const auto& all = p.clients.at("all").scopes;
  for (const char* s : {"video_stream_1", "video_admin", "video_hd"}) CHECK(p.scope_listed(all, s));
}

// Regression (review): a client id given twice made the cross-check read the first entry's missing
// scopes: a yaml-cpp "invalid node" problem at 0:0 replaced the real one, and later checks were lost.
TEST_CASE("config check: a client given twice is checked where its entry in effect is", "[policy]") {
  TempDir dir;
  auto c = check_text(dir, "scopes: [read]\nclients:\n  a: {}\n  a: {scopes: [write]}\n");
  const std::string f = dir.file("tokctl.yaml");
  check_position(problem_with(c, "client 'a' allows scope 'write', which is not under scopes"), f, 4, 15);
  CHECK_THAT(problem_with(c, "duplicate key 'a'"), Contains(":4:3"));
  for (const auto& problem : c.problems) CHECK_THAT(problem, !Contains("invalid node"));
}

// Regression (review): an unknown template variable (a typo, or "{{ sub }}") rendered as nothing in
// every token without a word.
TEST_CASE("config check: claim templates name only sub, client_id, scope and subject.ATTR", "[policy]") {
  TempDir dir;
  auto c = check_text(dir, "claims:\n  tpl: \"{{nosuch}}-{{sub}}\"\n  spaced: \"{{ sub }}\"\n"
                           "  nested: {list: [\"{{subject.email}}\", \"{{subject.}}\"]}\n"
                           "  fine: \"{{client_id}}/{{scope}}/{{sub}}\"\n");
  const std::string f = dir.file("tokctl.yaml");
  check_position(problem_with(c, "unknown template variable '{{nosuch}}'"), f, 2, 8);
  check_position(problem_with(c, "unknown template variable '{{ sub }}'"), f, 3, 11);
  CHECK_THAT(problem_with(c, "unknown template variable '{{subject.}}'"), Contains(":4:"));
  CHECK(c.problems.size() == 3);
}

TEST_CASE("config check: empty audiences lists and empty audiences", "[policy]") {
  TempDir dir;
  auto c = check_text(dir, "clients:\n  web: {audiences: []}\n  app: {audiences: [api, \"\"]}\n");
  const std::string f = dir.file("tokctl.yaml");
  check_position(problem_with(c, "client 'web'.audiences is empty"), f, 2, 20);
  check_position(problem_with(c, "client 'app'.audiences has an empty audience"), f, 3, 20);
}

TEST_CASE("config check: sectors must be non-empty strings", "[policy]") {
  TempDir dir;
  const std::string f = dir.file("tokctl.yaml");
  auto c = check_text(dir, "clients:\n  a: {sector: 42}\n  b: {sector: [x]}\n  c: {sector: true}\n  d: {sector: \"\"}\n"
                           "  e: {sector: ~}\n  ok: {sector: web.example}\n  quoted: {sector: \"42\"}\n");
  check_position(problem_with(c, "client 'a'.sector must be a string, not number"), f, 2, 15);
  check_position(problem_with(c, "client 'b'.sector must be a string"), f, 3, 15);
  check_position(problem_with(c, "client 'c'.sector must be a string, not boolean"), f, 4, 15);
  check_position(problem_with(c, "client 'd'.sector cannot be empty"), f, 5, 15);
  check_position(problem_with(c, "client 'e'.sector must be a string"), f, 6, 15);
  CHECK(c.problems.size() == 5);
  CHECK(c.policy.clients.at("ok").sector == "web.example");
  CHECK(c.policy.clients.at("quoted").sector == "42");
}

TEST_CASE("config check: keystore, store and subjects are non-empty strings, never silently the default",
          "[policy]") {
  TempDir dir;
  const std::string f = dir.file("tokctl.yaml");
  // keystore: "" used to be read as no keystore at all: the default one was used (and created).
  auto c = check_text(dir, "keystore: \"\"\nstore: 5\nsubjects: true\n");
  check_position(problem_with(c, "keystore cannot be empty"), f, 1, 11);
  check_position(problem_with(c, "store must be a string, not number"), f, 2, 8);
  check_position(problem_with(c, "subjects must be a string, not boolean"), f, 3, 11);
  CHECK(c.problems.size() == 3);
}

TEST_CASE("config check: scope names, string lists and opaque_prefix are text, never numbers or booleans",
          "[policy]") {
  TempDir dir;
  const std::string f = dir.file("tokctl.yaml");
  auto c = check_text(dir, "scopes:\n  - 5\n  - name: true\n  - \"7\"\ntokens:\n  opaque_prefix: 5\n"
                           "  wrapper_claims: [true]\nclients:\n  a: {audiences: [5], scopes: [\"7\"]}\n");
  check_position(problem_with(c, "a scope name must be a string, not number '5'"), f, 2, 5);
  check_position(problem_with(c, "scope name must be a string, not boolean 'true'"), f, 3, 11);
  check_position(problem_with(c, "tokens.opaque_prefix must be a string, not number '5'"), f, 6, 18);
  check_position(problem_with(c, "tokens.wrapper_claims entry must be a string, not boolean"), f, 7, 20);
  check_position(problem_with(c, "client 'a'.audiences entry must be a string, not number '5'"), f, 9, 19);
  CHECK(c.problems.size() == 6);  // and "a scope has exactly one of name or prefix" for the boolean name
}

TEST_CASE("config check: the issuer must be an http(s) URL", "[policy]") {
  TempDir dir;
  const std::string f = dir.file("tokctl.yaml");
  for (const char* bad : {"tokens.example.test", "ftp://x.test", "https://", "https://x.test/?a=b", "https://x.test/#f",
                          "\"https://x y.test\"", "urn:example:issuer"}) {
    INFO(bad);
    auto c = check_text(dir, std::string("issuer: ") + bad + "\n");
    check_position(problem_with(c, "issuer must be an https:// URL"), f, 1, 9);
  }
  for (const char* good : {"https://tokens.example.test", "https://x.test/tenant/1", "http://localhost:8080"}) {
    INFO(good);
    CHECK(check_text(dir, std::string("issuer: ") + good + "\n").problems.empty());
  }
}

TEST_CASE("config check: exchange rules must name audiences a token can have", "[policy]") {
  TempDir dir;
  const std::string f = dir.file("tokctl.yaml");
  auto c = check_text(dir, R"(issuer: https://tokens.example.test
clients:
  web: {audiences: [api-a]}
exchange:
  - from: api-a
    to: [api-b]
  - from: api-b
    to: [api-c]
  - from: api-typo
    to: [api-b]
  - from: https://tokens.example.test
    to: [api-b]
  - from: api-a
    to: []
)");
  check_position(problem_with(c, "exchange rule from 'api-typo'"), f, 9, 11);
  check_position(problem_with(c, "has no target audience"), f, 14, 9);
  CHECK(c.problems.size() == 2);
  // Without client audiences any audience can be issued (issue --aud): nothing to check against.
  CHECK(check_text(dir, "exchange:\n  - from: anything\n    to: [b]\n", "open.yaml").problems.empty());
}

TEST_CASE("policy and subjects paths that are directories or FIFOs are problems, without blocking", "[policy]") {
  TempDir dir;
  REQUIRE(::mkdir(dir.file("d").c_str(), 0700) == 0);
  REQUIRE(::mkfifo(dir.file("fifo").c_str(), 0600) == 0);
  for (const char* name : {"d", "fifo"}) {
    INFO(name);
    auto c = check_policy(dir.file(name));
    REQUIRE(c.problems.size() == 1);
    CHECK_THAT(c.problems[0], Contains(dir.file(name)));
    CHECK_THAT(c.problems[0], Contains("not a regular file"));
    auto s = check_text(dir, std::string("subjects: ") + name + "\n");
    check_position(problem_with(s, "cannot read subjects file"), dir.file("tokctl.yaml"), 1, 11);
    CHECK_THAT(problem_with(s, "cannot read subjects file"), Contains("not a regular file"));
    auto j = check_text(dir, std::string("tokens:\n  jwe_recipient: ") + name + "\n");
    check_position(problem_with(j, "not a regular file"), dir.file("tokctl.yaml"), 2, 18);
  }
  // The CLI: a policy that is a directory fails every command with exit 3, and config check too.
  auto issue = tokctl::test::run({"--config", dir.file("d"), "--keystore", dir.file("ks"), "issue", "--sub", "x"});
  CHECK(issue.code == 3);
  CHECK_THAT(issue.err, Contains("not a regular file"));
  auto check = tokctl::test::run({"config", "check", dir.file("fifo")});
  CHECK(check.code == 3);
  CHECK_THAT(check.err, Contains("not a regular file"));
}

TEST_CASE("subject attributes that are not mappings are problems", "[policy]") {
  TempDir dir;
  write_file(dir.file("subjects.yaml"), "alice: [a, b]\nbob: {email: bob@example.test}\ncarol:\n");
  auto c = check_text(dir, "subjects: subjects.yaml\n");
  check_position(problem_with(c, "subject 'alice'"), dir.file("subjects.yaml"), 1, 8);
  CHECK(c.problems.size() == 1);
}

TEST_CASE("config check exits 3 on each issue 7 item in the CLI as well", "[policy][cli]") {
  TempDir dir;
  const std::string f = dir.file("tokctl.yaml");
  write_file(f, "issuer: not-a-url\nscopes: [read, read]\nclients:\n  web: {audiences: [], sector: 1}\n"
                "tokens:\n  jwe_recipient: missing.jwk\n");
  auto r = tokctl::test::run({"-o", "json", "config", "check", f});
  INFO("exit " << r.code << "\nstdout:\n" << r.out << "\nstderr:\n" << r.err);
  CHECK(r.code == 3);
  auto j = json::parse(r.out);
  CHECK(j["problems"].size() == 5);
}

TEST_CASE("profiles: remote servers with their client, secrets only by reference", "[policy][remote]") {
  TempDir dir;
  auto c = check_text(dir, R"(profiles:
  staging:
    server: https://as.staging.test
    client_id: ci
    client_secret_file: secrets/ci.secret
    auth_method: client_secret_post
    cacert: ca.pem
  mtls:
    server: https://as.test
    client_id: gw
    cert: gw.pem
    key: gw.key
  bare:
    token_endpoint: https://as.test/token
    client_secret_env: GW_SECRET
)");
  REQUIRE(c.problems.empty());
  REQUIRE(c.policy.profiles.size() == 3);
  const auto& s = c.policy.profiles.at("staging");
  CHECK(s.server == "https://as.staging.test");
  CHECK(s.client_id == "ci");
  CHECK(s.auth_method == "client_secret_post");
  CHECK(s.client_secret_file.rfind(dir.path(), 0) == 0);  // relative to the policy file
  CHECK(s.client_secret_file.ends_with("secrets/ci.secret"));
  CHECK(s.cacert.ends_with("/ca.pem"));
  CHECK(c.policy.profiles.at("mtls").key.ends_with("/gw.key"));
  CHECK(c.policy.profiles.at("bare").client_secret_env == "GW_SECRET");

  SECTION("a secret in the file itself is refused with its position") {
    auto bad = check_text(dir, "profiles:\n  p:\n    server: https://as.test\n    client_secret: hunter2\n", "s.yaml");
    auto p = problem_with(bad, "does not belong in the policy file");
    check_position(p, dir.file("s.yaml"), 4, 20);
    CHECK(p.find("hunter2") == std::string::npos);
  }
  SECTION("unknown keys, unknown methods, half a certificate and no server are problems") {
    auto bad = check_text(dir, R"(profiles:
  a: {server: https://as.test, colour: red}
  b: {server: https://as.test, auth_method: magic}
  c: {server: https://as.test, cert: c.pem}
  d: {client_id: x}
  e: [1, 2]
)", "b.yaml");
    problem_with(bad, "colour");
    problem_with(bad, "auth_method 'magic'");
    problem_with(bad, "cert and key go together");
    problem_with(bad, "profile 'd' needs 'server'");
    CHECK(bad.problems.size() >= 5);
    auto notmap = check_text(dir, "profiles: [a]\n", "n.yaml");
    problem_with(notmap, "profiles must be a mapping");
  }
}

// ---- hostile and malformed YAML: aliases, budgets, encodings, empty files, duplicate keys ----------

namespace {

// Every problem is one line of printable text.
void check_one_line(const PolicyCheck& c) {
  for (const auto& p : c.problems) {
    INFO(p);
    CHECK(std::none_of(p.begin(), p.end(), [](char ch) { return static_cast<unsigned char>(ch) < 0x20 || ch == 0x7f; }));
  }
}

// `levels` anchors, each a list of nine aliases of the one before: 9^levels values once expanded,
// a few hundred bytes written. Indented by `indent` under the key that holds it.
std::string alias_bomb(int levels, const std::string& indent) {
  std::string y = indent + "l0: &l0 [x, x, x, x, x, x, x, x, x]\n";
  for (int i = 1; i <= levels; ++i) {
    const std::string prev = "*l" + std::to_string(i - 1);
    y += indent + "l" + std::to_string(i) + ": &l" + std::to_string(i) + " [";
    for (int k = 0; k < 9; ++k) y += (k ? ", " : "") + prev;
    y += "]\n";
  }
  return y;
}

}  // namespace

// Regression (was a crash): an alias inside its own anchor made to_json recurse until the stack ran out (SIGSEGV).
TEST_CASE("an alias that refers to its own anchor is a problem, not a crash", "[policy][yaml]") {
  TempDir dir;
  const std::string f = dir.file("tokctl.yaml");
  SECTION("in claims") {
    auto c = check_text(dir, "issuer: https://x.test\nclaims: &a\n  x: *a\n");
    check_position(problem_with(c, "refers to a mapping or list that contains it"), f, 3, 3);
    CHECK(c.problems.size() == 1);
  }
  SECTION("through a list") {
    auto c = check_text(dir, "issuer: https://x.test\nclaims:\n  a: &s [1, [*s]]\n");
    check_position(problem_with(c, "refers to a mapping or list that contains it"), f, 3);
  }
  SECTION("in a scope's claims") {
    auto c = check_text(dir, "issuer: https://x.test\nscopes:\n  - name: read\n    claims: &c {x: [*c]}\n");
    check_position(problem_with(c, "refers to a mapping or list that contains it"), f, 4);
  }
  SECTION("in the subjects file") {
    write_file(dir.file("subjects.yaml"), "bob: {email: b@x.test}\nalice: &a {x: *a}\n");
    auto c = check_text(dir, "issuer: https://x.test\nsubjects: subjects.yaml\n");
    check_position(problem_with(c, "refers to a mapping or list that contains it"), dir.file("subjects.yaml"), 2, 12);
  }
  SECTION("in a client's inline jwks") {
    auto c = check_text(dir, "issuer: https://x.test\nclients:\n  web:\n    jwks: &j {keys: [*j]}\n");
    check_position(problem_with(c, "refers to a mapping or list that contains it"), f, 4);
  }
  SECTION("the root itself") {
    auto c = check_text(dir, "&r\nissuer: https://x.test\nclaims: *r\n");
    check_position(problem_with(c, "refers to a mapping or list that contains it"), f, 3, 1);
  }
}

// Regression (was unbounded): anchors of lists of aliases ("billion laughs") expanded by to_json
// took gigabytes; seven levels in a subjects file took 458 MB and 7 s and passed.
TEST_CASE("an alias bomb is refused quickly", "[policy][yaml]") {
  TempDir dir;
  const auto start = std::chrono::steady_clock::now();
  SECTION("under claims") {
    auto c = check_text(dir, "issuer: https://x.test\nclaims:\n" + alias_bomb(8, "  "));
    CHECK_THAT(problem_with(c, "aliases must not multiply the content"), Contains(dir.file("tokctl.yaml") + ":"));
    CHECK(c.problems.size() == 1);
  }
  SECTION("in the subjects file") {
    write_file(dir.file("subjects.yaml"), "alice:\n" + alias_bomb(7, "  "));
    auto c = check_text(dir, "issuer: https://x.test\nsubjects: subjects.yaml\n");
    CHECK_THAT(problem_with(c, "aliases must not multiply the content"), Contains(dir.file("subjects.yaml") + ":"));
    CHECK(c.policy.subjects.empty());
  }
  SECTION("of long text repeated") {
    std::string y = "issuer: https://x.test\nclaims:\n  s: &s \"" + std::string(4000, 'x') + "\"\n  t: [";
    for (int i = 0; i < 400; ++i) y += "*s, ";
    y += "*s]\n";
    auto c = check_text(dir, y);
    CHECK_THAT(problem_with(c, "bytes of text"), Contains(dir.file("tokctl.yaml") + ":"));
  }
  SECTION("aliases within the budget are fine") {
    auto c = check_text(dir, "issuer: https://x.test\nclaims:\n" + alias_bomb(3, "  "));
    CHECK(c.problems.empty());
    CHECK(c.policy.claims["l3"].size() == 9);
    CHECK(c.policy.claims["l3"][0][0][0][0] == "x");
  }
  CHECK(std::chrono::steady_clock::now() - start < std::chrono::seconds(10));
}

// Regression (was exit 70): non-UTF-8 text passed config check, then the JSON dump of the claims threw.
TEST_CASE("text that is not UTF-8 is a problem at its position", "[policy][yaml]") {
  TempDir dir;
  const std::string f = dir.file("tokctl.yaml");
  for (const char* bad : {"x\xff", "\xc0\xaf", "\xed\xa0\x80", "\xf4\x90\x80\x80", "ab\xe2\x82"}) {
    INFO(bad);
    auto value = check_text(dir, std::string("issuer: https://x.test\nclaims: {a: \"") + bad + "\"}\n");
    check_position(problem_with(value, "not UTF-8"), f, 2, 13);
    auto key = check_text(dir, std::string("issuer: https://x.test\nclaims:\n  \"k") + bad + "\": 1\n");
    check_position(problem_with(key, "not UTF-8"), f, 3, 3);
    check_one_line(key);
    write_file(dir.file("subjects.yaml"), std::string("alice: {email: ") + bad + "}\n");
    auto subj = check_text(dir, "issuer: https://x.test\nsubjects: subjects.yaml\n");
    check_position(problem_with(subj, "not UTF-8"), dir.file("subjects.yaml"), 1, 16);
  }
  auto c = check_text(dir, "issuer: https://x.test\nclaims: {name: \"Zo\xc3\xab \xf0\x9f\x98\x80\", \"\xc3\xa9t\xc3\xa9\": \"\\u00e9\"}\n");
  CHECK(c.problems.empty());
  CHECK(c.policy.claims["name"] == "Zo\xc3\xab \xf0\x9f\x98\x80");
  CHECK(c.policy.claims["\xc3\xa9t\xc3\xa9"] == "\xc3\xa9");
}

// Regression (was the built-in defaults): an empty policy file passed as https://tokctl.local.
TEST_CASE("an empty policy file is a problem; no file at all gives the defaults", "[policy][yaml]") {
  TempDir dir;
  for (const char* text : {"", "\n\n", "# just a comment\n", "~\n", "null\n", "---\n", "--- # nothing\n...\n"}) {
    INFO("'" << text << "'");
    auto c = check_text(dir, text);
    REQUIRE(c.problems.size() == 1);
    CHECK(c.problems[0] == dir.file("tokctl.yaml") +
                               ": the policy file is empty (no settings, only comments or null); give at least issuer: https://...");
    CHECK_FALSE(load_policy(dir.file("tokctl.yaml")));
  }
  CHECK(check_policy("").problems.empty());
  // An empty subjects file is a file with no subjects yet.
  write_file(dir.file("subjects.yaml"), "# none yet\n");
  CHECK(check_text(dir, "issuer: https://x.test\nsubjects: subjects.yaml\n").problems.empty());
}

// Regression (was the first value): yaml-cpp keeps both entries of a repeated key and lookups find the first.
TEST_CASE("a duplicate key is a problem naming the key and both lines", "[policy][yaml]") {
  TempDir dir;
  const std::string f = dir.file("tokctl.yaml");
  auto top = check_text(dir, "issuer: https://x.test\nscopes: [read]\nissuer: https://y.test\n");
  auto p = problem_with(top, "duplicate key 'issuer'");
  check_position(p, f, 3, 1);
  CHECK_THAT(p, Contains("first at line 1"));
  CHECK(top.problems.size() == 1);

  auto nested = check_text(dir, "issuer: https://x.test\nclaims:\n  tenant: a\n  \"tenant\": b\n"
                                "clients:\n  web: {format: jwt, format: opaque}\n");
  check_position(problem_with(nested, "duplicate key 'tenant'"), f, 4, 3);
  check_position(problem_with(nested, "duplicate key 'format'"), f, 6, 22);

  write_file(dir.file("subjects.yaml"), "alice: {level: 1}\nbob: {}\nalice: {level: 2}\n");
  auto subj = check_text(dir, "issuer: https://x.test\nsubjects: subjects.yaml\n");
  check_position(problem_with(subj, "duplicate key 'alice'"), dir.file("subjects.yaml"), 3, 1);

  // Through an alias one mapping is walked twice; its problem is reported once.
  auto twice = check_text(dir, "issuer: https://x.test\nclaims:\n  a: &m {k: 1, k: 2}\n  b: *m\n");
  CHECK(twice.problems.size() == 1);
}

TEST_CASE("YAML that yaml-cpp reads badly gets one clear line with its position", "[policy][yaml]") {
  TempDir dir;
  const std::string f = dir.file("tokctl.yaml");
  SECTION("a mapping or list as a key (was \"bad conversion\")") {
    auto c = check_text(dir, "issuer: https://x.test\nclaims:\n  ? [a, b]\n  : c\n");
    check_position(problem_with(c, "a key must be a string, not a list"), f, 3, 5);
    auto m = check_text(dir, "issuer: https://x.test\nsubjects: x.yaml\n? {a: 1}\n: 2\n");
    check_position(problem_with(m, "a key must be a string, not a mapping"), f, 3, 3);
  }
  SECTION("nesting past the limit (was \"bad file\" past yaml-cpp's own limit)") {
    auto c = check_text(dir, "issuer: https://x.test\nclaims: {a: " + std::string(70, '[') + std::string(70, ']') + "}\n");
    check_position(problem_with(c, "nest deeper than 64 levels"), f, 2);
    auto deep = check_text(dir, "issuer: https://x.test\nclaims: {a: " + std::string(1200, '[') + std::string(1200, ']') + "}\n");
    check_position(problem_with(deep, "nest too deeply (the limit is 64 levels)"), f, 2);
    CHECK(deep.problems.size() == 1);
    auto fine = check_text(dir, "issuer: https://x.test\nclaims: {a: " + std::string(60, '[') + std::string(60, ']') + "}\n");
    CHECK(fine.problems.empty());
  }
  SECTION("a NUL byte (was \"unknown escape character\" and the byte itself)") {
    for (std::string text : {std::string("issuer: https://x.test\nclaims: {a: \"x\\") + '\0' + "b\"}\n",
                             std::string("issuer: https://x.test\nclaims: {a: \"x") + '\0' + "b\"}\n",
                             std::string("issuer: https://x.test\n") + '\0' + "\n"}) {
      auto c = check_text(dir, text);
      REQUIRE(c.problems.size() == 1);
      CHECK_THAT(c.problems[0], Contains("a NUL byte"));
      check_position(c.problems[0], f, 2);
      check_one_line(c);
    }
    // "\0" written as an escape is a NUL character in a string, which JSON can carry.
    auto escaped = check_text(dir, "issuer: https://x.test\nclaims: {a: \"x\\0b\"}\n");
    CHECK(escaped.problems.empty());
  }
  SECTION("an unknown escape shows its byte") {
    auto c = check_text(dir, "issuer: https://x.test\nclaims: {a: \"x\\\x01\"}\n");
    REQUIRE(c.problems.size() == 1);
    CHECK_THAT(c.problems[0], Contains("\\x01"));
    check_one_line(c);
  }
  SECTION("a second document would be ignored") {
    auto c = check_text(dir, "issuer: https://x.test\n---\nissuer: https://y.test\n");
    check_position(problem_with(c, "a second YAML document"), f, 3);
    auto after_end = check_text(dir, "issuer: https://x.test\n...\n[a]\n");
    check_position(problem_with(after_end, "a second YAML document"), f, 3);
    // Empty documents after the first do not count: a trailing separator is harmless.
    CHECK(check_text(dir, "issuer: https://x.test\n---\n---\n").problems.empty());
  }
  SECTION("fuzz_policy, fuzz/regressions/fuzz_policy/utf16-loadall-loop: an answer, not an endless loop") {
    // 12 bytes with a NUL among the first four, which yaml-cpp reads as UTF-16/32: YAML::LoadAll
    // never returned on it (its parser reported document after document without reading on).
    const std::string text("\x00\x2c\x68\x6f\x04\x53\x62\x00\x3b\x00\x00\xf6", 12);
    auto c = check_text(dir, text);
    CHECK_FALSE(c.problems.empty());
  }
  SECTION("UTF-16 policies still read") {
    // "issuer: https://u16.test\n" in UTF-16LE with a BOM.
    std::string text = "\xff\xfe";
    for (char ch : std::string("issuer: https://u16.test\n")) text += std::string(1, ch) + '\0';
    auto c = check_text(dir, text);
    CHECK(c.problems.empty());
    CHECK(c.policy.issuer == "https://u16.test");
  }
}

TEST_CASE("config check and issue exit 3 on hostile YAML, quickly and in little memory", "[policy][cli]") {
  TempDir dir;
  const std::string ks = dir.file("ks");
  struct Case {
    const char* name;
    std::string policy;
    std::string subjects;
    const char* message;
  };
  const std::vector<Case> cases = {
      {"self.yaml", "issuer: https://x.test\nclaims: &a\n  x: *a\n", "", ":3:3: an alias"},
      {"selfsub.yaml", "issuer: https://x.test\nsubjects: selfsub-subjects.yaml\n", "alice: &a {x: *a}\n", ":1:12: an alias"},
      {"bomb.yaml", "issuer: https://x.test\nclaims:\n" + alias_bomb(8, "  "), "", "aliases must not multiply"},
      {"bombsub.yaml", "issuer: https://x.test\nsubjects: bombsub-subjects.yaml\n", "alice:\n" + alias_bomb(7, "  "),
       "aliases must not multiply"},
      {"u8.yaml", "issuer: https://x.test\nclaims: {a: \"x\xff\"}\n", "", ":2:13: text that is not UTF-8"},
      {"empty.yaml", "# nothing\n", "", "the policy file is empty"},
      {"dup.yaml", "issuer: https://x.test\nissuer: https://y.test\n", "", ":2:1: duplicate key 'issuer'"},
  };
  for (const auto& k : cases) {
    INFO(k.name);
    const std::string f = dir.file(k.name);
    write_file(f, k.policy);
    if (!k.subjects.empty()) {
      write_file(dir.file(std::string(k.name).replace(std::string(k.name).find(".yaml"), 5, "-subjects.yaml")), k.subjects);
    }
    auto check = tokctl::test::run({"config", "check", f});
    INFO("exit " << check.code << "\nstderr:\n" << check.err);
    CHECK(check.code == 3);
    CHECK_THAT(check.err, Contains(k.message));
    CHECK(check.max_rss_kib < 100 * 1024 * tokctl::test::rss_bound_factor());
    auto issue = tokctl::test::run({"--config", f, "--keystore", ks, "issue", "--sub", "alice", "--format", "opaque"});
    INFO("issue exit " << issue.code << "\nstderr:\n" << issue.err);
    CHECK(issue.code == 3);
    CHECK_THAT(issue.err, Contains(k.message));
    CHECK(issue.max_rss_kib < 100 * 1024 * tokctl::test::rss_bound_factor());
  }
}
