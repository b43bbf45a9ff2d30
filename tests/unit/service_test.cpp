// TokenService through the core API (issue 4 points 3-5): issue_many and grants, claim templates
// (static, {{sub}}, {{client_id}}, {{scope}}, {{subject.*}}, scope claims), PPID stability,
// scope TTLs counted from the grant start (continuing a grant with grant_id), and the OAuth error
// codes of refusals. A TempDir keystore with one ES256 key and a FixedClock; nothing sleeps.

#include <tokctl/tokens/service.hpp>

#include <catch2/catch.hpp>

#include <algorithm>
#include <cstdio>
#include <future>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <sqlite3.h>

#include <tokctl/keys/key_ring.hpp>
#include <tokctl/keys/keystore.hpp>
#include <tokctl/tokens/policy.hpp>
#include <tokctl/tokens/token_store.hpp>
#include <tokctl/util/base64.hpp>

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

constexpr UnixTime k_t0 = 1767225600;  // 2026-01-01T00:00:00Z

constexpr const char* k_policy = R"(issuer: https://tokens.example.test
tokens:
  access: {format: jwt, ttl: 15m}
  opaque_prefix: tok_
scopes:
  - name: read
  - name: write
    claims: {can_write: true, perms: [w1, w2]}
  - prefix: video_stream_
    ttl: 10m
claims:
  tenant: acme
  email: "{{subject.email}}"
  groups: "{{subject.groups}}"
  who: "{{sub}}@{{client_id}}"
  granted: "scopes={{scope}}"
  profile: {name: "{{subject.name}}", static: 1}
subjects: ./subjects.yaml
clients:
  svc: {scopes: [read, write, video_stream_], audiences: [api-a]}
  web: {scopes: [read], audiences: [api-a], sector: web.example}
  web2: {scopes: [read], audiences: [api-a], sector: web.example}
  partner: {scopes: [read], audiences: [api-a], sector: partner.example}
)";

struct Fixture {
  TempDir dir;
  FixedClock clock{k_t0};
  std::unique_ptr<TokenService> svc;

  Fixture() { svc = open_at(dir.file("ks")); }

  std::unique_ptr<TokenService> open_at(const std::string& ks_dir) {
    write_file(dir.file("tokctl.yaml"), k_policy);
    write_file(dir.file("subjects.yaml"), "alice: {email: alice@example.test, groups: [eng, ops], name: Alice}\n");
    return tokctl::test::open_service(dir.file("tokctl.yaml"), ks_dir, clock);
  }

  IssueResponse issue(IssueRequest req) {
    auto r = svc->issue(req);
    if (!r) FAIL("issue: " << r.error().message);
    return std::move(*r);
  }
};

json payload(const std::string& jwt) {
  auto first = jwt.find('.');
  auto second = jwt.find('.', first + 1);
  auto bytes = tokctl::b64url_decode(jwt.substr(first + 1, second - first - 1));
  REQUIRE(bytes);
  return json::parse(*bytes);
}

IssueRequest request(const std::string& client, const std::string& sub, const std::string& scope,
                     const std::string& format = "") {
  IssueRequest r;
  r.client_id = client;
  r.sub = sub;
  r.scope = scope;
  r.format = format;
  return r;
}

}  // namespace

TEST_CASE("TokenService renders static, template and subject claims into access tokens", "[tokens]") {
  Fixture f;
  auto r = f.issue(request("svc", "alice", "read write"));
  auto c = payload(r.access.token);
  CHECK(c["tenant"] == "acme");
  CHECK(c["email"] == "alice@example.test");
  CHECK(c["groups"] == json::array({"eng", "ops"}));  // one {{subject.x}}: the attribute's type
  CHECK(c["who"] == "alice@svc");
  CHECK(c["granted"] == "scopes=read write");
  CHECK(c["profile"] == json{{"name", "Alice"}, {"static", 1}});
  CHECK(c["can_write"] == true);  // scope claims, only with the scope
  CHECK(c["perms"] == json::array({"w1", "w2"}));
  CHECK(c["iss"] == "https://tokens.example.test");
  CHECK(c["scope"] == "read write");
  CHECK(c["client_id"] == "svc");
  CHECK(c["aud"] == "api-a");
  CHECK(c["iat"] == k_t0);
  CHECK(c["exp"] == k_t0 + 900);

  SECTION("a subject without attributes gets no subject claims; no write, no scope claims") {
    auto b = payload(f.issue(request("svc", "bob", "read")).access.token);
    CHECK(!b.contains("email"));
    CHECK(!b.contains("groups"));
    CHECK(!b.contains("can_write"));
    CHECK(b["who"] == "bob@svc");
    CHECK(b["profile"]["static"] == 1);
  }
  SECTION("extra claims are added, reserved ones refused") {
    IssueRequest req = request("svc", "alice", "read");
    req.claims = json{{"order", 7}};
    CHECK(payload(f.issue(req).access.token)["order"] == 7);
    for (const char* name : {"sub", "iss", "exp", "jti", "scope", "client_id", "sid", "cnf"}) {
      INFO(name);
      req.claims = json{{name, "x"}};
      auto bad = f.svc->issue(req);
      REQUIRE(!bad);
      CHECK(bad.error().code == ErrorCode::usage);
    }
  }
}

TEST_CASE("TokenService::issue_many issues distinct tokens stored in one go", "[tokens]") {
  Fixture f;
  auto many = f.svc->issue_many(request("svc", "alice", "read", "opaque"), 20);
  REQUIRE(many);
  REQUIRE(many->size() == 20);
  std::set<std::string> tokens, jtis;
  for (const auto& r : *many) {
    CHECK(r.access.token.rfind("tok_", 0) == 0);
    tokens.insert(r.access.token);
    jtis.insert(r.access.jti);
    CHECK(!r.grant_id.empty());
  }
  CHECK(tokens.size() == 20);
  CHECK(jtis.size() == 20);
  for (const auto& r : *many) {
    auto j = f.svc->introspect(r.access.token);
    REQUIRE(j);
    CHECK((*j)["active"] == true);
  }
  CHECK(!f.svc->issue_many(request("svc", "alice", "read"), 0));
  auto bad = f.svc->issue_many(request("svc", "alice", "nope"), 5);
  REQUIRE(!bad);
  CHECK(std::string(tokctl::to_string(bad.error().oauth)) == "invalid_scope");
}

// Grant ids start with the grant's start time (8 hex digits) and the clock's tick within its second
// (4 hex digits), so that the store inserts them in order, then carry 72 random bits: distinct
// within a second, ordered across seconds.
TEST_CASE("grant ids are time-ordered and random within a second", "[tokens]") {
  Fixture f;
  std::vector<std::string> ids;
  for (int i = 0; i < 3; ++i) {
    f.clock.set(k_t0 + i * 1000);
    for (int j = 0; j < 2; ++j) {
      auto r = f.svc->issue(request("svc", "alice", "read", "opaque"));
      REQUIRE(r);
      ids.push_back(r->grant_id);
    }
  }
  std::set<std::string> distinct(ids.begin(), ids.end());
  CHECK(distinct.size() == ids.size());
  CHECK(std::is_sorted(ids.begin(), ids.end(), [](const std::string& a, const std::string& b) {
    return a.substr(0, 8) < b.substr(0, 8);
  }));
  char hex[9];
  std::snprintf(hex, sizeof hex, "%08llx", static_cast<unsigned long long>(k_t0));
  CHECK(ids.front().substr(0, 8) == hex);
  for (const auto& id : ids) {
    CHECK(id.size() == 24);
    CHECK(id.find_first_not_of("0123456789abcdef") >= 12);
  }
  // Within one second: in the order made (unless the clock's second turned in between).
  f.clock.set(k_t0 + 5000);
  for (int attempt = 0; attempt < 3; ++attempt) {
    const std::uint16_t t0 = subsecond_tick();
    auto a = f.svc->issue(request("svc", "alice", "read", "opaque"));
    auto b = f.svc->issue(request("svc", "alice", "read", "opaque"));
    REQUIRE(a);
    REQUIRE(b);
    if (subsecond_tick() < t0) continue;  // the second turned: try again
    // An issue takes longer than a tick (1/65536 s): it commits to the store.
    CHECK(a->grant_id.substr(0, 12) < b->grant_id.substr(0, 12));
    CHECK(token_hash(a->access.token).substr(0, 12) < token_hash(b->access.token).substr(0, 12));
    break;
  }
  CHECK(ids[2].substr(0, 8) > ids[1].substr(0, 8));
}

// Tokens issued together by one call form one grant (one delegation): revoking the grant of any
// of them revokes the batch, while revoking one token alone leaves the others active.
TEST_CASE("TokenService::issue_many puts the batch in one grant", "[tokens]") {
  Fixture f;
  auto many = f.svc->issue_many(request("svc", "alice", "read", "opaque"), 5);
  REQUIRE(many);
  std::set<std::string> grants;
  for (const auto& r : *many) grants.insert(r.grant_id);
  CHECK(grants.size() == 1);
  auto one = f.svc->revoke((*many)[0].access.token, false);
  REQUIRE(one);
  CHECK(*one == 1);
  auto other = f.svc->introspect((*many)[1].access.token);
  REQUIRE(other);
  CHECK((*other)["active"] == true);
  auto all = f.svc->revoke((*many)[1].access.token, true);
  REQUIRE(all);
  CHECK(*all == 4);
  auto last = f.svc->introspect((*many)[4].access.token);
  REQUIRE(last);
  CHECK((*last)["active"] == false);
}

TEST_CASE("TokenService PPID: stable per sector across opens, different across sectors", "[tokens]") {
  Fixture f;
  auto sub = [&](TokenService& s, const char* client, const char* who) {
    auto r = s.issue(request(client, who, "read"));
    REQUIRE(r);
    return payload(r->access.token)["sub"].get<std::string>();
  };
  std::string a = sub(*f.svc, "web", "alice");
  CHECK(a == sub(*f.svc, "web", "alice"));
  CHECK(a == sub(*f.svc, "web2", "alice"));
  CHECK(a != sub(*f.svc, "partner", "alice"));
  CHECK(a != sub(*f.svc, "web", "bob"));
  CHECK(sub(*f.svc, "svc", "alice") == "alice");
  auto decoded = tokctl::b64url_decode(a);
  REQUIRE(decoded);
  CHECK(decoded->size() == 32);  // HMAC-SHA256

  // A second service on the same keystore agrees (the secret is per keystore, persisted).
  auto again = f.open_at(f.dir.file("ks"));
  CHECK(sub(*again, "web", "alice") == a);
  // Another keystore: another secret, another PPID.
  auto other = f.open_at(f.dir.file("ks2"));
  CHECK(sub(*other, "web", "alice") != a);

  // Templates see the pairwise sub, never the real one.
  auto c = payload(f.issue(request("web", "alice", "read")).access.token);
  CHECK(c["who"] == a + "@web");
  CHECK(c["email"] == "alice@example.test");
}

TEST_CASE("TokenService::introspect_json: the answer introspect gives, kept only while it holds", "[tokens]") {
  Fixture f;
  auto fresh_json = [&](const std::string& token) {
    auto j = f.svc->introspect(token);
    REQUIRE(j);
    return j->dump();
  };
  auto served = [&](const std::string& token) {
    auto a = f.svc->introspect_json(token);
    REQUIRE(a);
    return *a;
  };
  const auto hd = f.issue(request("svc", "alice", "read video_stream_hd", "opaque")).access.token;
  const auto plain = f.issue(request("svc", "alice", "read", "opaque")).access.token;
  const auto jwt = f.issue(request("svc", "alice", "read")).access.token;
  for (const auto& t : {hd, plain, jwt, std::string("tok_unknown")}) {
    CHECK(served(t) == fresh_json(t));
    CHECK(served(t) == fresh_json(t));  // the second answer may come from the cache: the same
  }
  CHECK(json::parse(served(hd))["scope"] == "read video_stream_hd");

  SECTION("a scope's TTL ends: the kept answer is not served past it") {
    f.clock.set(k_t0 + 10 * 60);  // the last second video_stream_ is alive
    CHECK(json::parse(served(hd))["scope"] == "read video_stream_hd");
    f.clock.set(k_t0 + 10 * 60 + 1);
    const auto late = json::parse(served(hd));
    CHECK(late["scope"] == "read");
    CHECK(late["expired_scope"] == "video_stream_hd");
    CHECK(served(hd) == fresh_json(hd));
  }
  SECTION("revoked: inactive at once") {
    REQUIRE(f.svc->revoke(plain, false));
    CHECK(served(plain) == R"({"active":false})");
    CHECK(json::parse(served(hd))["active"] == true);
    REQUIRE(f.svc->revoke(hd, true));  // the grant
    CHECK(served(hd) == R"({"active":false})");
  }
  SECTION("expired: inactive at its exp") {
    f.clock.set(k_t0 + 15 * 60 - 1);
    CHECK(json::parse(served(plain))["active"] == true);
    f.clock.set(k_t0 + 15 * 60);
    CHECK(served(plain) == R"({"active":false})");
  }
}

TEST_CASE("TokenService scope TTL counts from the grant start when a grant is continued", "[tokens]") {
  Fixture f;
  auto first = f.issue(request("svc", "alice", "read video_stream_hd", "opaque"));
  CHECK(first.access.scope == "read video_stream_hd");
  CHECK(first.expired_scope.empty());

  f.clock.set(k_t0 + 5 * 60);
  IssueRequest cont = request("svc", "alice", "read video_stream_hd", "opaque");
  cont.grant_id = first.grant_id;
  auto within = f.issue(cont);
  CHECK(within.access.scope == "read video_stream_hd");
  CHECK(within.grant_id == first.grant_id);

  f.clock.set(k_t0 + 11 * 60);
  auto late = f.issue(cont);
  CHECK(late.access.scope == "read");
  CHECK(late.expired_scope == std::vector<std::string>{"video_stream_hd"});
  CHECK(late.to_json()["scope"] == "read");
  auto j = f.svc->introspect(late.access.token);
  REQUIRE(j);
  CHECK((*j)["scope"] == "read");

  // A new grant at t0+11m starts the clock again.
  auto fresh = f.issue(request("svc", "alice", "read video_stream_hd", "opaque"));
  CHECK(fresh.access.scope == "read video_stream_hd");

  // The first token, introspected now, lists the scope as expired.
  auto old = f.svc->introspect(first.access.token);
  REQUIRE(old);
  CHECK((*old)["scope"] == "read");
  CHECK((*old)["expired_scope"] == "video_stream_hd");

  // A revoked grant cannot be continued.
  REQUIRE(f.svc->revoke(first.access.token, true));
  auto refused = f.svc->issue(cont);
  REQUIRE(!refused);
  CHECK(std::string(tokctl::to_string(refused.error().oauth)) == "invalid_grant");
}

TEST_CASE("TokenService refusals carry OAuth error codes", "[tokens]") {
  Fixture f;
  auto code = [&](IssueRequest r) {
    auto res = f.svc->issue(r);
    REQUIRE(!res);
    CHECK(res.error().code == ErrorCode::invalid_token);
    return std::string(tokctl::to_string(res.error().oauth));
  };
  CHECK(code(request("svc", "alice", "delete")) == "invalid_scope");
  CHECK(code(request("web", "alice", "write")) == "invalid_scope");
  CHECK(code(request("nobody", "alice", "read")) == "invalid_client");
  IssueRequest aud = request("svc", "alice", "read");
  aud.aud = {"api-z"};
  CHECK(code(aud) == "invalid_target");

  // The code travels typed, beside the description; the message does not repeat it.
  auto unknown = f.svc->issue(request("svc", "alice", "nosuch"));
  REQUIRE_FALSE(unknown);
  CHECK(unknown.error().code == ErrorCode::invalid_token);
  CHECK(unknown.error().oauth == tokctl::OAuthCode::invalid_scope);
  CHECK(unknown.error().message == "unknown scope 'nosuch'");
}

TEST_CASE("split_scopes and join_scopes keep order and drop duplicates", "[tokens]") {
  CHECK(split_scopes("read  write read video") == std::vector<std::string>{"read", "write", "video"});
  CHECK(split_scopes("").empty());
  CHECK(join_scopes({"a", "b"}) == "a b");
  CHECK(join_scopes({}).empty());
  // 16,000 distinct scopes (a 64 KiB form) and each twice: every first one, in order (the
  // dedup is a hash set now; pairwise it took 0.4 s of an I/O thread, see the closing note).
  std::string many;
  std::vector<std::string> expect;
  for (int i = 0; i < 16000; ++i) expect.push_back("s" + std::to_string(i));
  for (int round = 0; round < 2; ++round)
    for (const auto& e : expect) many += e + " ";
  CHECK(split_scopes(many) == expect);
}

// ---- issue 7: trust, type confusion, phantom JWTs, ID tokens, --ttl, revocation counts ------------

namespace {

// What a forged token must not change: the real token's jti is not denied, its grant not revoked.
void require_untouched(Fixture& f, const std::string& real_jwt, const std::string& refresh) {
  auto denied = f.svc->jwt_revoked(payload(real_jwt));
  REQUIRE(denied);
  CHECK(!*denied);
  auto a = f.svc->introspect(real_jwt);
  REQUIRE(a);
  CHECK((*a)["active"] == true);
  auto r = f.svc->introspect(refresh);
  REQUIRE(r);
  CHECK((*r)["active"] == true);
}

}  // namespace

// Issue 7 point 2: revoke, split, introspect (and phantom JWTs) act only on a JWT whose signature
// verified with a keystore key (VerifyReport::signature_verified). Each forgery carries the claims
// of a real token (same jti and sid), so acting on it would revoke the real one.
TEST_CASE("forged JWTs with a real token's claims change nothing and are never active", "[tokens][attack]") {
  Fixture f;
  IssueRequest req = request("svc", "alice", "read");
  req.with_refresh = true;
  auto real = f.issue(req);
  REQUIRE(real.refresh);
  const json claims = payload(real.access.token);
  for (const auto& [name, forged] : tokctl::test::forged_tokens(f.dir.file("ks"), f.clock, claims)) {
    INFO(name);
    SECTION("revoke: " + name) {
      for (bool grant : {false, true}) {
        auto n = f.svc->revoke(forged, grant);
        REQUIRE(n);
        CHECK(*n == 0);
      }
      require_untouched(f, real.access.token, real.refresh->token);
    }
    SECTION("split: " + name) {
      auto s = f.svc->split(forged, true);
      REQUIRE(!s);
      CHECK(s.error().code == ErrorCode::invalid_token);
      CHECK(!f.svc->join(forged.substr(forged.rfind('.') + 1)));
      require_untouched(f, real.access.token, real.refresh->token);
    }
    SECTION("introspect and phantom JWT: " + name) {
      auto j = f.svc->introspect(forged);
      REQUIRE(j);
      CHECK(*j == json{{"active", false}});
      auto ph = f.svc->phantom_jwt(forged);
      REQUIRE(!ph);
      CHECK(ph.error().code == ErrorCode::invalid_token);
    }
  }
  // The control: the real token, revoked, is denied (so the checks above can fail).
  auto n = f.svc->revoke(real.access.token, true);
  REQUIRE(n);
  CHECK(*n == 2);  // the grant's tokens: the JWT and its refresh token
  auto denied = f.svc->jwt_revoked(claims);
  REQUIRE(denied);
  CHECK(*denied);
}

// Issue 7 point 3: JWTs signed by the keystore (e.g. with `tokctl sign`) whose registered claims
// have the wrong JSON type. No call may throw; wrong-typed claims are ignored, never trusted.
TEST_CASE("keystore-signed JWTs with wrong-typed claims never throw in revoke, split, introspect",
          "[tokens][attack]") {
  Fixture f;
  const json base{{"iss", "https://tokens.example.test"}, {"sub", "alice"}, {"client_id", "svc"},
                  {"aud", "api-a"}, {"scope", "read"}, {"iat", k_t0}, {"exp", k_t0 + 600},
                  {"jti", "jti-base"}, {"sid", "no-such-grant"}};
  const std::vector<json> bad_values = {42, json::array({1, 2}), json{{"a", 1}}, nullptr, 1e300, -1.5, "text", true};
  for (const char* name : {"jti", "sid", "client_id", "sub", "exp", "iat", "scope", "aud", "act"}) {
    for (const json& v : bad_values) {
      json c = base;
      c[name] = v;
      INFO(name << " = " << v.dump());
      std::string t = tokctl::test::sign_with_keystore(f.dir.file("ks"), f.clock, c);
      CHECK_NOTHROW(f.svc->introspect(t));
      CHECK_NOTHROW(f.svc->phantom_jwt(t));
      CHECK_NOTHROW(f.svc->split(t, true));
      CHECK_NOTHROW(f.svc->revoke(t, false));
      CHECK_NOTHROW(f.svc->revoke(t, true));
      auto j = f.svc->introspect(t);
      REQUIRE(j);
      if ((*j)["active"] == true && j->contains(name)) {
        // A claim that stayed in the response has its RFC 7662 type.
        const json& got = (*j)[name];
        if (std::string(name) == "exp" || std::string(name) == "iat") CHECK(got.is_number_integer());
        else if (std::string(name) == "aud") CHECK((got.is_string() || got.is_array()));
        else CHECK(got.is_string());
      }
    }
  }
  // A numeric jti is not denied as a string: revoking changes nothing (and says so).
  json c = base;
  c["jti"] = 42;
  auto n = f.svc->revoke(tokctl::test::sign_with_keystore(f.dir.file("ks"), f.clock, c), false);
  REQUIRE(n);
  CHECK(*n == 0);
}

// Issue 7 point 5.
TEST_CASE("phantom JWTs: only for access tokens, never longer than the source or max_lifetime",
          "[tokens][phantom]") {
  Fixture f;
  IssueRequest req = request("svc", "alice", "read", "opaque");
  req.with_refresh = true;
  req.with_id_token = true;
  auto r = f.issue(req);
  REQUIRE(r.refresh);
  REQUIRE(r.id_token);

  SECTION("refresh and ID tokens get none") {
    for (const std::string& t : {r.refresh->token, r.id_token->token}) {
      auto ph = f.svc->phantom_jwt(t);
      REQUIRE(!ph);
      CHECK(ph.error().code == ErrorCode::invalid_token);
    }
    // A refresh token is still active for introspection.
    auto j = f.svc->introspect(r.refresh->token);
    REQUIRE(j);
    CHECK((*j)["active"] == true);
    // An ID token is not: an RFC 7662 caller would take "active" (Bearer) for an access token.
    auto id = f.svc->introspect(r.id_token->token);
    REQUIRE(id);
    CHECK(*id == json{{"active", false}});
  }
  SECTION("an access token's phantom ends with its source") {
    f.clock.set(k_t0 + 10 * 60);
    auto ph = f.svc->phantom_jwt(r.access.token);
    REQUIRE(ph);
    auto c = payload(*ph);
    CHECK(c["exp"] == k_t0 + 15 * 60);
    CHECK(c["iat"] == k_t0 + 10 * 60);
    CHECK(c["sid"] == r.grant_id);
    CHECK(c["jti"] == r.access.jti);
    // Expired source: no phantom.
    f.clock.set(k_t0 + 15 * 60);
    CHECK(!f.svc->phantom_jwt(r.access.token));
  }
  SECTION("a source living longer than max_lifetime gives a phantom of max_lifetime") {
    const json claims{{"iss", "https://tokens.example.test"}, {"sub", "alice"}, {"client_id", "svc"},
                      {"aud", "api-a"}, {"iat", k_t0}, {"exp", k_t0 + 400 * 86400}, {"jti", "long-lived"}};
    auto ph = f.svc->phantom_jwt(tokctl::test::sign_with_keystore(f.dir.file("ks"), f.clock, claims));
    REQUIRE(ph);
    CHECK(payload(*ph)["exp"] == k_t0 + f.svc->policy().max_lifetime);
  }
  SECTION("an ID token is not an access token (typ JWT), even with access-like claims") {
    const json claims{{"iss", "https://tokens.example.test"}, {"sub", "alice"}, {"client_id", "svc"},
                      {"aud", "svc"}, {"iat", k_t0}, {"exp", k_t0 + 600}, {"jti", "id-like"}};
    auto id = tokctl::test::sign_with_keystore(f.dir.file("ks"), f.clock, claims, json{{"typ", "JWT"}});
    CHECK(!f.svc->phantom_jwt(id));
    auto j = f.svc->introspect(id);
    REQUIRE(j);
    CHECK(*j == json{{"active", false}});
  }
}

TEST_CASE("revoking the source of a phantom JWT revokes the phantom", "[tokens][phantom]") {
  Fixture f;
  auto phantom_revoked = [&](const std::string& ph) {
    auto d = f.svc->jwt_revoked(payload(ph));
    REQUIRE(d);
    return *d;
  };
  for (const char* format : {"opaque", "wrapped", "jwt"}) {
    INFO(format);
    IssueRequest req = request("svc", "alice", "read", format);
    req.with_refresh = true;
    auto r = f.issue(req);
    auto ph = f.svc->phantom_jwt(r.access.token);
    REQUIRE(ph);
    REQUIRE(!phantom_revoked(*ph));
    SECTION(std::string("the token itself: ") + format) {
      REQUIRE(f.svc->revoke(r.access.token, false));
      CHECK(phantom_revoked(*ph));
    }
    SECTION(std::string("its grant, through the refresh token: ") + format) {
      REQUIRE(f.svc->revoke(r.refresh->token, true));
      CHECK(phantom_revoked(*ph));
    }
    SECTION(std::string("every token of the subject: ") + format) {
      REQUIRE(f.svc->revoke_subject("alice"));
      CHECK(phantom_revoked(*ph));
    }
  }
}

// Issue 7 point 11.
TEST_CASE("ID tokens carry aud = client_id; --ttl above max_lifetime is refused", "[tokens]") {
  Fixture f;
  IssueRequest req = request("svc", "alice", "read");
  req.with_id_token = true;
  auto r = f.issue(req);
  REQUIRE(r.id_token);
  CHECK(payload(r.id_token->token)["aud"] == "svc");

  IssueRequest no_client = request("", "alice", "");
  no_client.with_id_token = true;
  auto n = f.issue(no_client);
  REQUIRE(n.id_token);
  CHECK(payload(n.id_token->token)["aud"] == payload(n.access.token)["client_id"]);
  CHECK(payload(n.id_token->token)["aud"] == "tokctl");

  IssueRequest id = request("svc", "alice", "read");
  id.type = "id";
  auto idt = payload(f.issue(id).access.token);
  CHECK(idt["aud"] == "svc");

  IssueRequest too_long = request("svc", "alice", "read");
  too_long.ttl = f.svc->policy().max_lifetime + 1;
  auto bad = f.svc->issue(too_long);
  REQUIRE(!bad);
  CHECK(bad.error().code == ErrorCode::usage);
  CHECK(bad.error().message.find("max_lifetime") != std::string::npos);
  too_long.ttl = f.svc->policy().max_lifetime;
  CHECK(f.svc->issue(too_long));
}

// Issue 7 point 12.
TEST_CASE("revoke_subject counts every token it revoked, pairwise subjects and JWTs included", "[tokens]") {
  Fixture f;
  IssueRequest with_refresh = request("svc", "alice", "read");
  with_refresh.with_refresh = true;
  f.issue(with_refresh);                          // JWT + refresh row
  f.issue(request("svc", "alice", "read", "opaque"));  // a row
  auto web = f.issue(request("web", "alice", "read"));        // a JWT with a pairwise sub
  auto web_opaque = f.issue(request("web", "alice", "read", "opaque"));
  auto partner = f.issue(request("partner", "alice", "read"));  // another sector
  auto bob = f.issue(request("svc", "bob", "read"));
  auto many = f.svc->issue_many(request("web", "alice", "read"), 3);  // three pairwise JWTs
  REQUIRE(many);

  auto n = f.svc->revoke_subject("alice");
  REQUIRE(n);
  CHECK(*n == 2 + 1 + 1 + 1 + 1 + 3);
  for (const std::string& t : {web.access.token, web_opaque.access.token, partner.access.token}) {
    auto j = f.svc->introspect(t);
    REQUIRE(j);
    CHECK((*j)["active"] == false);
  }
  auto b = f.svc->introspect(bob.access.token);
  REQUIRE(b);
  CHECK((*b)["active"] == true);
  // Again: nothing left to revoke.
  auto again = f.svc->revoke_subject("alice");
  REQUIRE(again);
  CHECK(*again == 0);
}

TEST_CASE("revoke_client and revoke --grant count JWTs too", "[tokens]") {
  Fixture f;
  f.issue(request("svc", "alice", "read"));
  f.issue(request("svc", "bob", "read", "opaque"));
  IssueRequest both = request("svc", "carol", "read");
  both.with_refresh = true;
  both.with_id_token = true;
  auto r = f.issue(both);  // JWT + refresh row + ID token
  auto g = f.svc->revoke(r.refresh->token, true);
  REQUIRE(g);
  CHECK(*g == 3);
  auto c = f.svc->revoke_client("svc");
  REQUIRE(c);
  CHECK(*c == 2);
  // Tokens issued without a client carry client_id "tokctl": revoke_client("tokctl") reaches them.
  f.issue(request("", "dave", ""));
  auto t = f.svc->revoke_client("tokctl");
  REQUIRE(t);
  CHECK(*t == 1);
}

TEST_CASE("a JWT revoked on its own is not counted again by its grant, nor twice", "[tokens]") {
  Fixture f;
  IssueRequest both = request("svc", "erin", "read");
  both.with_refresh = true;
  auto r = f.issue(both);  // a JWT (counted on the grant) + a refresh row
  auto first = f.svc->revoke(r.access.token, false);
  REQUIRE(first);
  CHECK(*first == 1);
  auto again = f.svc->revoke(r.access.token, false);  // denied already: nothing changes
  REQUIRE(again);
  CHECK(*again == 0);
  auto grant = f.svc->revoke(r.refresh->token, true);  // the refresh row only; the JWT was revoked
  REQUIRE(grant);
  CHECK(*grant == 1);
  // The JWT of a grant revoked before: already invalid, so revoking it counts nothing.
  auto s = f.issue(both);
  auto g2 = f.svc->revoke(s.refresh->token, true);
  REQUIRE(g2);
  CHECK(*g2 == 2);
  auto late = f.svc->revoke(s.access.token, false);
  REQUIRE(late);
  CHECK(*late == 0);
  // A JWT and then its grant through the JWT itself (--grant): the JWT once, then the rest.
  auto u = f.issue(both);
  auto whole = f.svc->revoke(u.access.token, true);
  REQUIRE(whole);
  CHECK(*whole == 2);
  auto v = f.issue(both);
  REQUIRE(f.svc->revoke(v.access.token, false));
  auto rest = f.svc->revoke(v.access.token, true);
  REQUIRE(rest);
  CHECK(*rest == 1);  // the refresh row; the JWT was counted by the first revoke
}

namespace {

// issue_many_async's answer, waited for.
tokctl::Result<std::vector<IssueResponse>> issue_many_waited(const TokenService& svc, const IssueRequest& req, int n) {
  std::promise<tokctl::Result<std::vector<IssueResponse>>> answer;
  svc.issue_many_async(req, n, [&answer](tokctl::Result<std::vector<IssueResponse>> r) { answer.set_value(std::move(r)); });
  return answer.get_future().get();
}

// One value of an SQL query on the store file (behind the service's back).
std::string store_query(const std::string& db_path, const std::string& sql) {
  sqlite3* db = nullptr;
  REQUIRE(sqlite3_open_v2(db_path.c_str(), &db, SQLITE_OPEN_READWRITE, nullptr) == SQLITE_OK);
  sqlite3_busy_timeout(db, 10'000);
  std::string out;
  sqlite3_stmt* s = nullptr;
  const int rc = sqlite3_prepare_v2(db, sql.c_str(), -1, &s, nullptr);
  if (rc == SQLITE_OK && sqlite3_step(s) == SQLITE_ROW && sqlite3_column_text(s, 0))
    out = reinterpret_cast<const char*>(sqlite3_column_text(s, 0));
  sqlite3_finalize(s);
  sqlite3_close_v2(db);
  REQUIRE(rc == SQLITE_OK);
  return out;
}

// Makes every later insert into the tokens table fail once it holds `rows` rows (a disk that fills up).
void fail_inserts_after(const std::string& db_path, int rows) {
  store_query(db_path, "CREATE TRIGGER fault_after BEFORE INSERT ON tokens WHEN (SELECT count(*) FROM tokens) >= " +
                           std::to_string(rows) + " BEGIN SELECT RAISE(ABORT, 'injected fault: disk full'); END");
}

}  // namespace

// The batch fast path changes only the jti bytes (and the base64url characters that encode them)
// of the first token's claims and signed payload, and the store's writer thread makes the rows of
// wrapped tokens: every token must still be signed, distinct, and stored under its own key with
// the batch's claims and its own jti, in the order of the answer.
TEST_CASE("issue_many_async: every token of a batch is the first one's with its own jti, stored under its own key",
          "[tokens][issue]") {
  for (const std::string format : {"wrapped", "opaque", "jwt"}) {
    // The issuer's length moves the jti (claims and wrapper sort it after iss) across the three
    // base64url alignments; in a wrapper it then ends in the payload's last, short group or not.
    for (const std::string issuer : {"https://a.test", "https://ab.test", "https://abc.test"}) {
      INFO(format << " tokens from " << issuer);
      TempDir dir;
      FixedClock clock(k_t0);
      write_file(dir.file("p.yaml"), "issuer: " + issuer + "\ntokens:\n  opaque_prefix: tok_\nscopes:\n  - name: read\n");
      auto svc = tokctl::test::open_service(dir.file("p.yaml"), dir.file("ks"), clock);
      constexpr int k_n = 300;  // several refills of the opaque tokens' entropy (a leading '-' redraws)
      auto many = issue_many_waited(*svc, request("", "alice", "read", format), k_n);
      REQUIRE(many);
      REQUIRE(many->size() == std::size_t{k_n});
      auto ring = svc->keys().current();
      REQUIRE(ring);
      REQUIRE((*ring)->verifier);
      auto store = open_token_store("sqlite:" + dir.file("ks") + "/tokens.db");
      REQUIRE(store);
      std::set<std::string> tokens, jtis;
      json first_claims, first_body;
      for (std::size_t i = 0; i < many->size(); ++i) {
        const IssueResponse& r = (*many)[i];
        INFO("token " << i);
        tokens.insert(r.access.token);
        jtis.insert(r.access.jti);
        CHECK(r.access.jti.size() == 22);
        CHECK(r.access.format == format);
        CHECK(r.grant_id == many->front().grant_id);
        CHECK(r.access.token.front() != '-');
        json claims;
        if (format != "opaque") {
          CHECK((*ring)->verifier->verify(r.access.token).signature_verified);
          json body = payload(r.access.token);
          CHECK(body["jti"] == r.access.jti);
          body.erase("jti");
          if (i == 0) first_body = body;
          CHECK(body == first_body);
          if (format == "jwt") claims = payload(r.access.token);
        } else {
          CHECK(r.access.token.rfind("tok_", 0) == 0);
          CHECK(r.access.token.size() == 4 + 43);
        }
        if (format != "jwt") {
          auto row = find_token(**store, r.access.token);
          REQUIRE(row);
          REQUIRE(*row);
          CHECK((*row)->jti == r.access.jti);
          CHECK((*row)->grant_id == r.grant_id);
          CHECK((*row)->format == format);
          CHECK((*row)->sub == "alice");
          CHECK((*row)->iss == issuer);
          claims = json::parse((*row)->claims);
        }
        CHECK(claims["jti"] == r.access.jti);
        claims.erase("jti");
        if (i == 0) first_claims = claims;
        CHECK(claims == first_claims);
      }
      CHECK(tokens.size() == std::size_t{k_n});
      CHECK(jtis.size() == std::size_t{k_n});
      CHECK(first_claims["iss"] == issuer);
      CHECK(first_claims["sub"] == "alice");
      CHECK(first_claims["scope"] == "read");
      CHECK(store_query(dir.file("ks") + "/tokens.db", "SELECT count(*) FROM tokens") ==
            (format == "jwt" ? "0" : std::to_string(k_n)));
      if (format != "opaque") {
        auto info = svc->introspect(many->back().access.token);
        REQUIRE(info);
        CHECK((*info)["active"] == true);
      }
    }
  }
}

TEST_CASE("issue_many_async hands out no token of a batch whose write failed", "[tokens][issue]") {
  Fixture f;
  const std::string db = f.dir.file("ks") + "/tokens.db";
  for (const std::string format : {"wrapped", "opaque"}) {
    INFO(format);
    auto before = issue_many_waited(*f.svc, request("svc", "alice", "read", format), 10);
    REQUIRE(before);
    const std::string rows = store_query(db, "SELECT count(*) FROM tokens");
    fail_inserts_after(db, std::stoi(rows) + 5);  // the next batch fails on its 6th row
    auto failed = issue_many_waited(*f.svc, request("svc", "alice", "read", format), 50);
    REQUIRE_FALSE(failed);
    CHECK(failed.error().message.find("injected fault") != std::string::npos);
    CHECK(store_query(db, "SELECT count(*) FROM tokens") == rows);  // none of its rows stayed
    store_query(db, "DROP TRIGGER fault_after");
    auto after = issue_many_waited(*f.svc, request("svc", "alice", "read", format), 50);
    REQUIRE(after);
    CHECK(store_query(db, "SELECT count(*) FROM tokens") == std::to_string(std::stoi(rows) + 50));
  }
}

// The CLI pipeline: a chunk is printed only after the store committed it. With a write failing
// mid-way, what was printed is in the store, and the command fails.
TEST_CASE("issue --count prints only committed tokens, in full when every write succeeds", "[tokens][issue]") {
  TempDir dir;
  const std::string ks = dir.file("ks"), policy = dir.file("p.yaml"), db = ks + "/tokens.db";
  write_file(policy, "issuer: https://cli.test\nscopes:\n  - name: read\n");
  REQUIRE(tokctl::test::run({"keys", "add", "--alg", "ES256", "--keystore", ks}).code == 0);
  auto issue = [&](const std::string& format, int n) {
    return tokctl::test::run({"--keystore", ks, "--config", policy, "issue", "--format", format, "--count",
                              std::to_string(n), "--sub", "bench", "--scope", "read"});
  };
  auto lines = [](const std::string& out) {
    std::vector<std::string> v;
    std::size_t pos = 0;
    for (std::size_t nl; (nl = out.find('\n', pos)) != std::string::npos; pos = nl + 1) v.push_back(out.substr(pos, nl - pos));
    CHECK(pos == out.size());  // every line ends with a newline
    return v;
  };
  for (const std::string format : {"wrapped", "opaque"}) {
    INFO(format);
    auto ok = issue(format, 1234);
    REQUIRE(ok.code == 0);
    CHECK(ok.err.empty());
    const auto printed = lines(ok.out);
    CHECK(printed.size() == 1234u);
    CHECK(std::set<std::string>(printed.begin(), printed.end()).size() == 1234u);
    auto store = open_token_store("sqlite:" + db);
    REQUIRE(store);
    std::size_t found = 0;
    for (const auto& t : printed) {
      auto row = find_token(**store, t);
      if (row && *row && (*row)->format == format) ++found;
    }
    CHECK(found == 1234u);
    store->reset();

    const std::string rows = store_query(db, "SELECT count(*) FROM tokens");
    fail_inserts_after(db, std::stoi(rows) + 150);  // the first chunk commits, a later one fails
    auto broken = issue(format, 1000);
    CHECK(broken.code != 0);
    CHECK(broken.err.find("injected fault") != std::string::npos);
    const auto partial = lines(broken.out);
    CHECK(!partial.empty());
    CHECK(partial.size() < 1000u);
    auto again = open_token_store("sqlite:" + db);
    REQUIRE(again);
    for (const auto& t : partial) {
      auto row = find_token(**again, t);
      REQUIRE(row);
      CHECK(row->has_value());  // printed, so committed
    }
    again->reset();
    store_query(db, "DROP TRIGGER fault_after");
  }
}

TEST_CASE("tokens.signing_alg picks the signing key when several algs have an active one", "[tokens][keys]") {
  TempDir dir;
  FixedClock clock{k_t0};
  {
    auto ks = tokctl::keys::Keystore::open(dir.file("ks"), clock, true);
    REQUIRE(ks);
    for (const char* alg : {"ES256", "EdDSA"}) {
      tokctl::keys::AddOptions add;
      add.alg = alg;
      add.state = tokctl::keys::KeyState::active;
      REQUIRE(ks->add(add, std::nullopt));
    }
  }
  auto header_alg = [](const std::string& jwt) {
    auto h = tokctl::b64url_decode(jwt.substr(0, jwt.find('.')));
    REQUIRE(h);
    return json::parse(*h).at("alg").get<std::string>();
  };
  auto open_with = [&](const std::string& tokens_section) {
    write_file(dir.file("tokctl.yaml"), "issuer: https://tokens.example.test\n" + tokens_section +
                                            "scopes:\n  - name: read\nclients:\n  svc: {scopes: [read]}\n");
    return tokctl::test::open_service(dir.file("tokctl.yaml"), dir.file("ks"), clock);
  };
  SECTION("none named: a keystore error that says which algs and where to choose") {
    auto svc = open_with("");
    auto r = svc->issue(request("svc", "alice", "read"));
    REQUIRE_FALSE(r);
    CHECK(r.error().code == ErrorCode::keystore);
    CHECK_THAT(r.error().message, Catch::Matchers::Contains("ES256") && Catch::Matchers::Contains("EdDSA"));
    CHECK_THAT(r.error().hint, Catch::Matchers::Contains("signing_alg"));
    CHECK(r.error().param.empty());  // not a request parameter: a flag the command does not have
  }
  for (const char* alg : {"ES256", "EdDSA"}) {
    SECTION(std::string("tokens.signing_alg: ") + alg) {
      auto svc = open_with(std::string("tokens: {signing_alg: ") + alg + "}\n");
      auto r = svc->issue(request("svc", "alice", "read"));
      REQUIRE(r);
      CHECK(header_alg(r->access.token) == alg);
    }
  }
  SECTION("an alg without an active key says so") {
    auto svc = open_with("tokens: {signing_alg: RS256}\n");
    auto r = svc->issue(request("svc", "alice", "read"));
    REQUIRE_FALSE(r);
    CHECK(r.error().code == ErrorCode::keystore);
    CHECK_THAT(r.error().message, Catch::Matchers::Contains("RS256"));
  }
}
