// Token exchange (issue 4 point 7, RFC 8693) through the core API: every mode (act present, nested
// for chains, absent; the embedded token stays verifiable), target/scope/mode rules, refusals with
// their OAuth codes, inactive subject and actor tokens, lifetimes, PPID subjects kept as they are,
// and opaque/wrapped subject tokens. A TempDir keystore with one ES256 key, a FixedClock, and a
// policy file written here.

#include <tokctl/tokens/service.hpp>

#include <catch2/catch.hpp>

#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include <tokctl/jose/jws.hpp>
#include <tokctl/keys/keystore.hpp>
#include <tokctl/tokens/policy.hpp>

#include "support/run.hpp"
#include "support/service_fixture.hpp"

using nlohmann::json;
using tokctl::ErrorCode;
using tokctl::FixedClock;
using tokctl::UnixTime;
using tokctl::test::TempDir;
using tokctl::test::write_file;
using namespace tokctl::tokens;

namespace {

// 2026-01-01T00:00:00Z.
constexpr UnixTime k_t0 = 1767225600;

constexpr const char* k_policy = R"(issuer: https://tokens.example.test
tokens:
  access: {format: jwt, ttl: 15m}
scopes:
  - name: read
  - name: write
  - name: admin
  - prefix: video_stream_
    ttl: 10m
clients:
  web: {scopes: [read, write, admin, video_stream_], audiences: [api-a], sector: web.example}
  svc-a: {scopes: [read], audiences: [api-a]}
  svc-b: {scopes: [read], audiences: [api-b]}
  opaque-web: {scopes: [read, write], audiences: [api-a], format: opaque}
  wrapped-web: {scopes: [read, write], audiences: [api-a], format: wrapped}
  lonely: {scopes: [read], audiences: [api-z]}
exchange:
  - from: api-a
    to: [api-b, https://api-c.test/]
    scopes: [read, write, video_stream_]
    modes: [delegate, embed]
  - from: api-b
    to: [api-c]
    modes: [delegate, impersonate]
)";

struct Fixture {
  TempDir dir;
  FixedClock clock{k_t0};
  std::unique_ptr<TokenService> svc;

  Fixture() {
    write_file(dir.file("tokctl.yaml"), k_policy);
    svc = tokctl::test::open_service(dir.file("tokctl.yaml"), dir.file("ks"), clock);
  }

  std::string issue(const std::string& client, const std::string& sub, const std::string& scope,
                    const std::vector<std::string>& aud = {}) {
    IssueRequest r;
    r.client_id = client;
    r.sub = sub;
    r.scope = scope;
    r.aud = aud;
    auto t = svc->issue(r);
    if (!t) FAIL("issue: " << t.error().message);
    return t->access.token;
  }

  IssueResponse exchange(const ExchangeRequest& r) {
    auto e = svc->exchange(r);
    if (!e) FAIL("exchange: " << e.error().message);
    return *e;
  }

  // The OAuth error code of a refused exchange ("" when it succeeded).
  std::string refusal(const ExchangeRequest& r) {
    auto e = svc->exchange(r);
    if (e) return "";
    INFO(e.error().message);
    CHECK(e.error().code == ErrorCode::invalid_token);
    return std::string(tokctl::to_string(e.error().oauth));
  }

  bool active(const std::string& token) {
    auto i = svc->introspect(token);
    if (!i) FAIL("introspect: " << i.error().message);
    return i->value("active", false);
  }
};

json claims_of(const std::string& jwt) {
  auto p = tokctl::jose::parse_compact(jwt);
  if (!p) FAIL("parse_compact: " << p.error().message);
  return json::parse(p->payload);
}

json header_of(const std::string& jwt) {
  auto p = tokctl::jose::parse_compact(jwt);
  if (!p) FAIL("parse_compact: " << p.error().message);
  return p->header;
}

ExchangeRequest request(const std::string& subject, std::vector<std::string> audience = {}, std::string mode = "delegate") {
  ExchangeRequest r;
  r.subject_token = subject;
  r.audience = std::move(audience);
  r.mode = std::move(mode);
  return r;
}

}  // namespace

TEST_CASE("delegate without an actor token names the subject token's client in act", "[exchange]") {
  Fixture f;
  std::string subject = f.issue("web", "alice", "read write admin");
  json sc = claims_of(subject);
  IssueResponse r = f.exchange(request(subject, {"api-b"}));
  json c = claims_of(r.access.token);
  CHECK(header_of(r.access.token)["typ"] == "at+jwt");
  CHECK(c["act"] == json{{"sub", "web"}});
  // Same subject (already pairwise: not mapped again), same client, new audience.
  CHECK(c["sub"] == sc["sub"]);
  CHECK(c["sub"] != "alice");
  CHECK(c["client_id"] == "web");
  CHECK(c["aud"] == "api-b");
  CHECK(c["iss"] == "https://tokens.example.test");
  // Scopes default to the subject's within the rule (admin is not exchangeable).
  CHECK(c["scope"] == "read write");
  CHECK(r.access.scope == "read write");
  // In the subject token's grant, and never outliving it.
  CHECK(c["sid"] == sc["sid"]);
  CHECK(c["exp"].get<UnixTime>() <= sc["exp"].get<UnixTime>());
  CHECK(c["jti"] != sc["jti"]);
  CHECK(f.active(r.access.token));
}

TEST_CASE("the RFC 8693 response names a JWT bearer token with its lifetime and scope", "[exchange]") {
  Fixture f;
  std::string subject = f.issue("web", "alice", "read");
  json j = f.exchange(request(subject, {"api-b"})).to_json();
  CHECK(j["token_type"] == "Bearer");
  CHECK(j["issued_token_type"] == k_urn_jwt);
  CHECK(j["expires_in"] == 900);
  CHECK(j["scope"] == "read");
  CHECK(j["access_token"].is_string());
  CHECK_FALSE(j.contains("refresh_token"));
}

TEST_CASE("delegate with an actor token names the actor, and chains nest the previous actors", "[exchange]") {
  Fixture f;
  std::string user = f.issue("web", "alice", "read write");
  std::string actor_a = f.issue("svc-a", "service-a", "read");
  ExchangeRequest r1 = request(user, {"api-b"});
  r1.actor_token = actor_a;
  std::string hop1 = f.exchange(r1).access.token;
  CHECK(claims_of(hop1)["act"] == json{{"sub", "service-a"}});

  SECTION("the subject token's act becomes act.act") {
    std::string actor_b = f.issue("svc-b", "service-b", "read");
    ExchangeRequest r2 = request(hop1, {"api-c"});
    r2.actor_token = actor_b;
    json c = claims_of(f.exchange(r2).access.token);
    CHECK(c["act"] == json{{"sub", "service-b"}, {"act", {{"sub", "service-a"}}}});
    CHECK(c["aud"] == "api-c");
    CHECK(c["sub"] == claims_of(user)["sub"]);
  }
  SECTION("an actor token that is itself delegated nests its own act") {
    // service-b's token, obtained by delegation from svc-b's own client.
    std::string b_user = f.issue("svc-b", "service-b", "read", {"api-b"});
    std::string actor_b = f.exchange(request(b_user, {"api-c"})).access.token;
    CHECK(claims_of(actor_b)["act"] == json{{"sub", "svc-b"}});
    ExchangeRequest r2 = request(hop1, {"api-c"});
    r2.actor_token = actor_b;
    json c = claims_of(f.exchange(r2).access.token);
    CHECK(c["act"] == json{{"sub", "service-b"}, {"act", {{"sub", "svc-b"}}}});
  }
}

TEST_CASE("impersonate issues a token without act", "[exchange]") {
  Fixture f;
  std::string user = f.issue("web", "alice", "read write");
  std::string hop1 = f.exchange(request(user, {"api-b"})).access.token;
  REQUIRE(claims_of(hop1).contains("act"));
  json c = claims_of(f.exchange(request(hop1, {"api-c"}, "impersonate")).access.token);
  CHECK_FALSE(c.contains("act"));
  CHECK(c["sub"] == claims_of(user)["sub"]);
  CHECK(c["aud"] == "api-c");
  CHECK(c["scope"] == "read write");
}

TEST_CASE("embed carries the original subject token, which still verifies, and adds no act", "[exchange]") {
  Fixture f;
  std::string user = f.issue("web", "alice", "read");
  std::string t = f.exchange(request(user, {"api-b"}, "embed")).access.token;
  json c = claims_of(t);
  CHECK_FALSE(c.contains("act"));
  REQUIRE(c.contains("subject_token"));
  CHECK(c["subject_token"] == user);
  CHECK(f.active(c["subject_token"].get<std::string>()));
  CHECK(f.active(t));
}

TEST_CASE("resource URIs are target audiences too", "[exchange]") {
  Fixture f;
  std::string user = f.issue("web", "alice", "read");
  ExchangeRequest r = request(user);
  r.resource = {"https://api-c.test/"};
  r.audience = {"api-b"};
  json c = claims_of(f.exchange(r).access.token);
  CHECK(c["aud"] == json::array({"api-b", "https://api-c.test/"}));
  SECTION("without a target the rule's first one is used") {
    CHECK(claims_of(f.exchange(request(user)).access.token)["aud"] == "api-b");
  }
}

TEST_CASE("a target audience outside the rule is invalid_target", "[exchange][refusal]") {
  Fixture f;
  std::string user = f.issue("web", "alice", "read");
  CHECK(f.refusal(request(user, {"api-z"})) == "invalid_target");
  CHECK(f.refusal(request(user, {"api-b", "api-z"})) == "invalid_target");
  ExchangeRequest r = request(user);
  r.resource = {"https://evil.test/"};
  CHECK(f.refusal(r) == "invalid_target");
  SECTION("a subject audience without any rule is invalid_target") {
    std::string other = f.issue("lonely", "bob", "read");
    auto e = f.svc->exchange(request(other, {"api-b"}));
    REQUIRE_FALSE(e);
    CHECK(std::string(tokctl::to_string(e.error().oauth)) == "invalid_target");
    CHECK(e.error().message.find("api-z") != std::string::npos);
  }
}

TEST_CASE("scopes beyond the subject token's or the rule's are invalid_scope", "[exchange][refusal]") {
  Fixture f;
  std::string user = f.issue("web", "alice", "read admin");
  ExchangeRequest r = request(user, {"api-b"});
  r.scope = "write";  // allowed by the rule, not granted to the subject
  CHECK(f.refusal(r) == "invalid_scope");
  r.scope = "admin";  // granted to the subject, not exchangeable
  CHECK(f.refusal(r) == "invalid_scope");
  r.scope = "read delete";
  CHECK(f.refusal(r) == "invalid_scope");
  r.scope = "read";
  CHECK(claims_of(f.exchange(r).access.token)["scope"] == "read");
}

TEST_CASE("prefix scopes pass through rules that list the prefix, and their TTL still counts from the grant", "[exchange]") {
  Fixture f;
  std::string user = f.issue("web", "alice", "read video_stream_42");
  ExchangeRequest r = request(user, {"api-b"});
  CHECK(claims_of(f.exchange(r).access.token)["scope"] == "read video_stream_42");
  f.clock.set(k_t0 + 11 * 60);  // past the prefix scope's 10m TTL, before the token's 15m
  CHECK(claims_of(f.exchange(r).access.token)["scope"] == "read");
  r.scope = "video_stream_42";
  CHECK(f.refusal(r) == "invalid_scope");
}

TEST_CASE("a mode the rule does not allow is invalid_request", "[exchange][refusal]") {
  Fixture f;
  std::string user = f.issue("web", "alice", "read");
  CHECK(f.refusal(request(user, {"api-b"}, "impersonate")) == "invalid_request");
  CHECK(f.refusal(request(user, {"api-b"}, "borrow")) == "invalid_request");
  std::string hop1 = f.exchange(request(user, {"api-b"})).access.token;
  CHECK(f.refusal(request(hop1, {"api-c"}, "embed")) == "invalid_request");
}

TEST_CASE("an inactive, revoked, foreign or garbage subject token is invalid_grant", "[exchange][refusal]") {
  Fixture f;
  std::string user = f.issue("web", "alice", "read");
  CHECK(f.refusal(request("garbage", {"api-b"})) == "invalid_grant");
  CHECK(f.refusal(request("a.b.c", {"api-b"})) == "invalid_grant");
  SECTION("expired") {
    f.clock.set(k_t0 + 16 * 60);
    CHECK(f.refusal(request(user, {"api-b"})) == "invalid_grant");
  }
  SECTION("revoked (jti deny-list)") {
    REQUIRE(f.svc->revoke(user, false).value_or(0) == 1);
    CHECK(f.refusal(request(user, {"api-b"})) == "invalid_grant");
  }
  SECTION("its grant revoked, which also revokes tokens exchanged from it") {
    std::string hop1 = f.exchange(request(user, {"api-b"})).access.token;
    REQUIRE(f.active(hop1));
    REQUIRE(f.svc->revoke(user, true).has_value());
    CHECK(f.refusal(request(user, {"api-b"})) == "invalid_grant");
    CHECK_FALSE(f.active(hop1));
    CHECK(f.refusal(request(hop1, {"api-c"})) == "invalid_grant");
  }
  SECTION("signed by another keystore") {
    Fixture other;
    CHECK(f.refusal(request(other.issue("web", "alice", "read"), {"api-b"})) == "invalid_grant");
  }
  SECTION("an inactive actor token") {
    std::string actor = f.issue("svc-a", "service-a", "read");
    REQUIRE(f.svc->revoke(actor, false).value_or(0) == 1);
    ExchangeRequest r = request(user, {"api-b"});
    r.actor_token = actor;
    CHECK(f.refusal(r) == "invalid_grant");
    r.actor_token = "not-a-token";
    CHECK(f.refusal(r) == "invalid_grant");
  }
}

TEST_CASE("the exchanged token never outlives the subject token", "[exchange]") {
  Fixture f;
  std::string user = f.issue("web", "alice", "read");
  f.clock.set(k_t0 + 10 * 60);
  IssueResponse r = f.exchange(request(user, {"api-b"}));
  CHECK(r.access.expires_in == 5 * 60);
  CHECK(claims_of(r.access.token)["exp"] == claims_of(user)["exp"]);
  CHECK(claims_of(r.access.token)["iat"] == k_t0 + 10 * 60);
}

TEST_CASE("opaque and wrapped subject tokens are exchanged from the store for JWTs", "[exchange]") {
  Fixture f;
  for (const char* client : {"opaque-web", "wrapped-web"}) {
    INFO(client);
    std::string user = f.issue(client, "carol", "read write");
    ExchangeRequest r = request(user, {"api-b"});
    r.scope = "write";
    IssueResponse x = f.exchange(r);
    CHECK(x.access.format == "jwt");
    json c = claims_of(x.access.token);
    CHECK(c["sub"] == "carol");
    CHECK(c["client_id"] == client);
    CHECK(c["scope"] == "write");
    CHECK(c["act"] == json{{"sub", client}});
    REQUIRE(f.svc->revoke(user, false).value_or(0) == 1);
    CHECK(f.refusal(r) == "invalid_grant");
  }
}

TEST_CASE("unsupported token types are invalid_request", "[exchange][refusal]") {
  Fixture f;
  std::string user = f.issue("web", "alice", "read");
  ExchangeRequest r = request(user, {"api-b"});
  r.requested_token_type = k_urn_refresh_token;
  CHECK(f.refusal(r) == "invalid_request");
  r.requested_token_type = "urn:example:saml";
  CHECK(f.refusal(r) == "invalid_request");
  r = request(user, {"api-b"});
  r.subject_token_type = k_urn_refresh_token;
  CHECK(f.refusal(r) == "invalid_request");
  r.subject_token_type = k_urn_jwt;
  r.requested_token_type = k_urn_jwt;
  CHECK(f.refusal(r).empty());
}

TEST_CASE("a refresh token is not a subject token", "[exchange][refusal]") {
  Fixture f;
  IssueRequest ir;
  ir.client_id = "web";
  ir.sub = "alice";
  ir.scope = "read";
  ir.with_refresh = true;
  auto t = f.svc->issue(ir);
  REQUIRE(t);
  REQUIRE(t->refresh);
  CHECK(f.refusal(request(t->refresh->token, {"api-b"})) == "invalid_request");
}

// ---- issue 7 -------------------------------------------------------------------------------------

// Point 2: only a subject or actor token whose signature verified with a keystore key
// (VerifyReport::signature_verified) is exchanged; the forgeries carry a real token's claims.
TEST_CASE("forged subject and actor tokens are invalid_grant, and leave the real token usable",
          "[exchange][refusal][attack]") {
  Fixture f;
  std::string real = f.issue("svc-a", "alice", "read");
  const json claims = claims_of(real);
  for (const auto& [name, forged] : tokctl::test::forged_tokens(f.dir.file("ks"), f.clock, claims)) {
    INFO(name);
    CHECK(f.refusal(request(forged, {"api-b"})) == "invalid_grant");
    ExchangeRequest with_actor = request(real, {"api-b"});
    with_actor.actor_token = forged;
    CHECK(f.refusal(with_actor) == "invalid_grant");
  }
  CHECK(f.active(real));
  auto ok = f.exchange(request(real, {"api-b"}));
  CHECK(claims_of(ok.access.token)["sub"] == "alice");
}

// Point 3: keystore-signed subject tokens with wrong-typed claims are refused or exchanged, never
// a crash; wrong-typed claims are ignored.
TEST_CASE("subject tokens with wrong-typed claims never throw in exchange", "[exchange][attack]") {
  Fixture f;
  const json base{{"iss", "https://tokens.example.test"}, {"sub", "alice"}, {"client_id", "svc-a"},
                  {"aud", "api-a"}, {"scope", "read"}, {"iat", k_t0}, {"exp", k_t0 + 600},
                  {"jti", "jti-base"}, {"sid", "no-such-grant"}};
  for (const char* name : {"jti", "sid", "client_id", "sub", "exp", "scope", "aud", "act"}) {
    for (const json& v : {json(42), json::array({1}), json{{"a", 1}}, json(nullptr), json(1e300)}) {
      json c = base;
      c[name] = v;
      INFO(name << " = " << v.dump());
      std::string t = tokctl::test::sign_with_keystore(f.dir.file("ks"), f.clock, c);
      for (const char* mode : {"delegate", "impersonate", "embed"}) {
        ExchangeRequest as_subject = request(t, {"api-b"}, mode);
        CHECK_NOTHROW(f.svc->exchange(as_subject));
        ExchangeRequest as_actor = request(f.issue("svc-a", "bob", "read"), {"api-b"}, mode);
        as_actor.actor_token = t;
        CHECK_NOTHROW(f.svc->exchange(as_actor));
      }
    }
  }
  json numeric_sub = base;
  numeric_sub["sub"] = 7;
  CHECK(f.refusal(request(tokctl::test::sign_with_keystore(f.dir.file("ks"), f.clock, numeric_sub), {"api-b"})) ==
        "invalid_grant");
}

// Point 12: a token issued without a client (client_id "tokctl") is exchanged the same way.
TEST_CASE("a subject token issued without a client is exchanged without one", "[exchange]") {
  Fixture f;
  IssueRequest r;
  r.sub = "alice";
  r.aud = {"api-a"};
  auto t = f.svc->issue(r);
  REQUIRE(t);
  REQUIRE(claims_of(t->access.token)["client_id"] == "tokctl");
  auto e = f.exchange(request(t->access.token, {"api-b"}));
  auto c = claims_of(e.access.token);
  CHECK(c["client_id"] == "tokctl");
  CHECK(c["sub"] == "alice");
  CHECK(c["aud"] == "api-b");
  CHECK(c["act"] == json{{"sub", "tokctl"}});
  CHECK(e.grant_id == t->grant_id);
}

// Point 5 with exchange: a phantom JWT carries its source's grant, so what is exchanged from it
// joins that grant and dies with it.
TEST_CASE("a token exchanged from a phantom JWT is in the source token's grant", "[exchange][phantom]") {
  Fixture f;
  IssueRequest r;
  r.client_id = "opaque-web";
  r.sub = "alice";
  r.scope = "read";
  auto src = f.svc->issue(r);
  REQUIRE(src);
  auto ph = f.svc->phantom_jwt(src->access.token);
  REQUIRE(ph);
  auto e = f.exchange(request(*ph, {"api-b"}));
  CHECK(e.grant_id == src->grant_id);
  REQUIRE(f.svc->revoke(src->access.token, true));
  CHECK(!f.active(e.access.token));
  CHECK(!f.active(*ph));
}
