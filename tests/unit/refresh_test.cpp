// Refresh-token redemption (TokenService::refresh): rotation, reuse detection that revokes the
// grant, scope narrowing, scope TTLs counted from the grant start, client binding, expiry,
// no-rotate policies, and two services racing to redeem one token (exactly one wins).

#include <tokctl/tokens/service.hpp>

#include <catch2/catch.hpp>

#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include <tokctl/util/base64.hpp>

#include "support/run.hpp"
#include "support/service_fixture.hpp"

using nlohmann::json;
using tokctl::FixedClock;
using tokctl::UnixTime;
using tokctl::test::TempDir;
using tokctl::test::write_file;
using namespace tokctl::tokens;

namespace {

constexpr UnixTime k_t0 = 1767225600;  // 2026-01-01T00:00:00Z

std::string policy_text(bool rotate) {
  return std::string(R"(issuer: https://tokens.example.test
tokens:
  access: {format: jwt, ttl: 15m}
  refresh: {ttl: 1d, rotate: )") +
         (rotate ? "true" : "false") + R"(}
scopes:
  - name: read
  - name: write
  - prefix: video_
    ttl: 10m
clients:
  svc: {scopes: [read, write, video_], audiences: [api-a]}
  other: {scopes: [read], audiences: [api-a]}
  web: {scopes: [read], audiences: [api-a], sector: web.example}
)";
}

struct Fixture {
  TempDir dir;
  FixedClock clock{k_t0};
  std::unique_ptr<TokenService> svc;

  explicit Fixture(bool rotate = true) {
    write_file(dir.file("tokctl.yaml"), policy_text(rotate));
    svc = open();
  }
  std::unique_ptr<TokenService> open() {
    return tokctl::test::open_service(dir.file("tokctl.yaml"), dir.file("ks"), clock);
  }

  IssueResponse issue(const std::string& client, const std::string& sub, const std::string& scope) {
    IssueRequest r;
    r.client_id = client;
    r.sub = sub;
    r.scope = scope;
    r.with_refresh = true;
    auto res = svc->issue(r);
    if (!res) FAIL("issue: " << res.error().message);
    REQUIRE(res->refresh);
    return std::move(*res);
  }

  bool active(const std::string& token) {
    auto j = svc->introspect(token);
    REQUIRE(j);
    return (*j)["active"] == true;
  }
};

json payload(const std::string& jwt) {
  auto first = jwt.find('.');
  auto second = jwt.find('.', first + 1);
  auto bytes = tokctl::b64url_decode(jwt.substr(first + 1, second - first - 1));
  REQUIRE(bytes);
  return json::parse(*bytes);
}

std::string error_code(const tokctl::Result<IssueResponse>& r) {
  REQUIRE_FALSE(r);
  return std::string(tokctl::to_string(r.error().oauth));
}

}  // namespace

TEST_CASE("refresh with rotation: a new access and refresh token in the same grant, the old one consumed",
          "[tokens][refresh]") {
  Fixture f;
  auto first = f.issue("svc", "alice", "read write");
  f.clock.set(k_t0 + 60);
  auto r = f.svc->refresh(RefreshRequest{first.refresh->token, "svc", "", {}, {}});
  REQUIRE(r);
  REQUIRE(r->refresh);
  CHECK(r->refresh->token != first.refresh->token);
  CHECK(r->grant_id == first.grant_id);
  json claims = payload(r->access.token);
  CHECK(claims["sid"] == first.grant_id);
  CHECK(claims["sub"] == "alice");
  CHECK(claims["scope"] == "read write");
  CHECK(claims["iat"] == k_t0 + 60);
  CHECK(f.active(r->access.token));
  CHECK(f.active(r->refresh->token));
  CHECK_FALSE(f.active(first.refresh->token));  // consumed
  CHECK(f.active(first.access.token));          // the earlier access token lives on
  // The new refresh token is redeemable in turn.
  auto again = f.svc->refresh(RefreshRequest{r->refresh->token, "", "", {}, {}});
  REQUIRE(again);
  CHECK(again->grant_id == first.grant_id);
}

TEST_CASE("presenting a consumed refresh token revokes the whole grant (reuse detection)", "[tokens][refresh]") {
  Fixture f;
  auto first = f.issue("svc", "alice", "read");
  auto r = f.svc->refresh(RefreshRequest{first.refresh->token, "svc", "", {}, {}});
  REQUIRE(r);
  auto reused = f.svc->refresh(RefreshRequest{first.refresh->token, "svc", "", {}, {}});
  CHECK(error_code(reused) == "invalid_grant");
  CHECK_THAT(reused.error().message, Catch::Matchers::Contains("reuse"));
  // Everything of the grant is dead: the legitimate holder's new tokens too, and the first access JWT.
  CHECK_FALSE(f.active(r->access.token));
  CHECK_FALSE(f.active(r->refresh->token));
  CHECK_FALSE(f.active(first.access.token));
  CHECK(error_code(f.svc->refresh(RefreshRequest{r->refresh->token, "svc", "", {}, {}})) == "invalid_grant");
  // Another grant of the same client and subject is untouched.
  auto other = f.issue("svc", "alice", "read");
  CHECK(f.svc->refresh(RefreshRequest{other.refresh->token, "svc", "", {}, {}}));
}

TEST_CASE("refresh scope may only narrow, and scope TTLs count from the grant start", "[tokens][refresh]") {
  Fixture f;
  auto first = f.issue("svc", "alice", "read write video_hd");
  auto narrow = f.svc->refresh(RefreshRequest{first.refresh->token, "svc", "read", {}, {}});
  REQUIRE(narrow);
  CHECK(payload(narrow->access.token)["scope"] == "read");
  // Narrowed once, the grant still allows its original scopes on the next redemption.
  auto wide_again = f.svc->refresh(RefreshRequest{narrow->refresh->token, "svc", "read write", {}, {}});
  REQUIRE(wide_again);
  CHECK(payload(wide_again->access.token)["scope"] == "read write");
  CHECK(error_code(f.svc->refresh(RefreshRequest{wide_again->refresh->token, "svc", "read admin", {}, {}})) ==
        "invalid_scope");
  // A refused redemption consumed nothing: the token still works.
  f.clock.set(k_t0 + 11 * 60);  // video_ has a 10m TTL from the grant start
  auto late = f.svc->refresh(RefreshRequest{wide_again->refresh->token, "svc", "", {}, {}});
  REQUIRE(late);
  CHECK(payload(late->access.token)["scope"] == "read write");
  CHECK(late->expired_scope == std::vector<std::string>{"video_hd"});
}

TEST_CASE("refresh refuses another client's, unknown, revoked and expired refresh tokens", "[tokens][refresh]") {
  Fixture f;
  auto first = f.issue("svc", "alice", "read");
  CHECK(error_code(f.svc->refresh(RefreshRequest{first.refresh->token, "other", "", {}, {}})) == "invalid_grant");
  CHECK(error_code(f.svc->refresh(RefreshRequest{"not-a-refresh-token", "", "", {}, {}})) == "invalid_grant");
  // An access token is not a refresh token.
  IssueRequest opaque;
  opaque.client_id = "svc";
  opaque.sub = "alice";
  opaque.format = "opaque";
  auto o = f.svc->issue(opaque);
  REQUIRE(o);
  CHECK(error_code(f.svc->refresh(RefreshRequest{o->access.token, "", "", {}, {}})) == "invalid_grant");
  // The wrong client's attempt consumed nothing.
  REQUIRE(f.svc->refresh(RefreshRequest{first.refresh->token, "svc", "", {}, {}}));

  auto revoked = f.issue("svc", "bob", "read");
  REQUIRE(f.svc->revoke(revoked.refresh->token, false));
  CHECK(error_code(f.svc->refresh(RefreshRequest{revoked.refresh->token, "svc", "", {}, {}})) == "invalid_grant");
  // Revoked is not reuse: the grant's access token is untouched.
  CHECK(f.active(revoked.access.token));

  auto expiring = f.issue("svc", "carol", "read");
  f.clock.set(k_t0 + 86400 + 1);
  CHECK(error_code(f.svc->refresh(RefreshRequest{expiring.refresh->token, "svc", "", {}, {}})) == "invalid_grant");
}

TEST_CASE("refresh keeps pairwise subjects pairwise", "[tokens][refresh]") {
  Fixture f;
  auto first = f.issue("web", "alice", "read");
  auto r = f.svc->refresh(RefreshRequest{first.refresh->token, "web", "", {}, {}});
  REQUIRE(r);
  CHECK(payload(r->access.token)["sub"] == payload(first.access.token)["sub"]);
  CHECK(payload(r->access.token)["sub"] != "alice");
}

TEST_CASE("without rotation a refresh token is redeemed many times and stays active", "[tokens][refresh]") {
  Fixture f(false);
  auto first = f.issue("svc", "alice", "read");
  for (int i = 0; i < 3; ++i) {
    auto r = f.svc->refresh(RefreshRequest{first.refresh->token, "svc", "", {}, {}});
    REQUIRE(r);
    CHECK_FALSE(r->refresh);
    CHECK(f.active(r->access.token));
  }
  CHECK(f.active(first.refresh->token));
}

TEST_CASE("two services racing to redeem one refresh token: exactly one wins", "[tokens][refresh]") {
  Fixture f;
  auto first = f.issue("svc", "alice", "read");
  auto second_service = f.open();  // its own connection to the same store, as another process would
  tokctl::Result<IssueResponse> a = std::unexpected(tokctl::Error{}), b = std::unexpected(tokctl::Error{});
  std::thread ta([&] { a = f.svc->refresh(RefreshRequest{first.refresh->token, "svc", "", {}, {}}); });
  std::thread tb([&] { b = second_service->refresh(RefreshRequest{first.refresh->token, "svc", "", {}, {}}); });
  ta.join();
  tb.join();
  CHECK((a.has_value() ? 1 : 0) + (b.has_value() ? 1 : 0) == 1);
  const auto& lost = a ? b : a;
  REQUIRE_FALSE(lost);
  CHECK(std::string(tokctl::to_string(lost.error().oauth)) == "invalid_grant");
  // The loser presented a consumed token: reuse, so the grant is revoked, the winner's tokens too.
  const auto& won = a ? a : b;
  REQUIRE(won);
  CHECK_FALSE(f.active(won->access.token));
}
