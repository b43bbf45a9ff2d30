// Verification pieces that live in core (issue 8 point 3): unwrapping a nested JWT (RFC 7519 §5.2)
// with a key set, and verification against the keystore and the token store together
// (TokenService::apply_revocation), which `tokctl verify` and `serve` share.

#include <tokctl/jose/jwe.hpp>
#include <tokctl/tokens/service.hpp>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "support/keys.hpp"
#include "support/run.hpp"
#include "support/service_fixture.hpp"

using nlohmann::json;
using tokctl::ErrorCode;
using tokctl::FixedClock;
using tokctl::UnixTime;
namespace jose = tokctl::jose;
using tokctl::test::TempDir;
using tokctl::test::write_file;

namespace {

constexpr UnixTime k_t0 = 1767225600;  // 2026-01-01T00:00:00Z

jose::Jwk with_kid(const char* name, const char* kid) {
  json j = tokctl::test::test_key(name).to_json(jose::KeyPart::with_private);
  j["kid"] = kid;
  auto k = jose::Jwk::from_json(j);
  REQUIRE(k);
  return std::move(*k);
}

std::string encrypt(const std::string& inner, const jose::Jwk& to, const std::string& cty) {
  jose::EncryptOptions eo;
  eo.alg = jose::KeyMgmtAlg::ECDH_ES_A256KW;
  eo.cty = cty;
  eo.kid = to.kid();
  auto t = jose::encrypt_compact(inner, to, eo);
  REQUIRE(t);
  return *t;
}

}  // namespace

TEST_CASE("unwrap_nested_jwt: the inner JWT with the key its kid names, or why not", "[jwe][verify]") {
  const jose::Jwk a = with_kid("p256", "enc-a");
  const jose::Jwk b = with_kid("p256b", "enc-b");
  const std::string inner = "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2ln";
  const jose::JwkSet both({a, b});

  auto plain = jose::unwrap_nested_jwt(inner, both);  // not a JWE: use it as it is
  REQUIRE(plain);
  CHECK_FALSE(plain->has_value());

  auto ok = jose::unwrap_nested_jwt(encrypt(inner + "\n", b, "JWT"), both);
  REQUIRE(ok);
  REQUIRE(ok->has_value());
  CHECK(**ok == inner);

  auto wrong = jose::unwrap_nested_jwt(encrypt(inner, b, "JWT"), jose::JwkSet({a}));
  REQUIRE_FALSE(wrong);
  CHECK(wrong.error().code == ErrorCode::invalid_token);
  CHECK_THAT(wrong.error().message, Catch::Matchers::Contains("enc-b"));

  auto not_jwt = jose::unwrap_nested_jwt(encrypt("hello", a, ""), both);
  REQUIRE_FALSE(not_jwt);
  CHECK(not_jwt.error().code == ErrorCode::invalid_token);
  CHECK_THAT(not_jwt.error().message, Catch::Matchers::Contains("cty is missing"));

  auto no_keys = jose::unwrap_nested_jwt(encrypt(inner, a, "JWT"), jose::JwkSet{});
  REQUIRE_FALSE(no_keys);
  CHECK(no_keys.error().code == ErrorCode::usage);

  auto broken = jose::unwrap_nested_jwt("a.b.c.d.e", both);
  REQUIRE_FALSE(broken);
}

TEST_CASE("apply_revocation marks revoked JWTs of the keystore and leaves forged ones alone", "[tokens][verify]") {
  TempDir dir;
  write_file(dir.file("tokctl.yaml"), "issuer: https://tokens.example.test\ntokens:\n  access: {format: jwt, ttl: 5m}\n");
  FixedClock clock{k_t0};
  auto svc = tokctl::test::open_service(dir.file("tokctl.yaml"), dir.file("ks"), clock);
  tokctl::tokens::IssueRequest req;
  req.sub = "alice";
  auto issued = svc->issue(req);
  REQUIRE(issued);
  const std::string& jwt = issued->access.token;
  auto ring = svc->keys().current();
  REQUIRE(ring);
  REQUIRE((*ring)->verifier);
  const jose::TokenVerifier& verifier = *(*ring)->verifier;

  auto report = verifier.verify(jwt);
  REQUIRE(report.valid);
  svc->apply_revocation(report);
  CHECK(report.valid);  // not revoked: unchanged

  REQUIRE(svc->revoke(jwt, false));
  auto revoked = verifier.verify(jwt);
  svc->apply_revocation(revoked);
  CHECK_FALSE(revoked.valid);
  REQUIRE(revoked.problems.size() == 1);
  CHECK(revoked.problems[0].code == jose::ProblemCode::revoked);

  // A forged token (bad signature) is not looked up: its claims mean nothing.
  std::string forged = jwt.substr(0, jwt.rfind('.') + 1) + "AAAA";
  auto f = verifier.verify(forged);
  const auto before = f.problems.size();
  svc->apply_revocation(f);
  CHECK(f.problems.size() == before);
  for (const auto& p : f.problems) CHECK(p.code != jose::ProblemCode::revoked);
}
