// JWT verification: TokenVerifier (key selection, signature, claims) with an injected clock,
// check_claims boundaries, and decode_warnings (tokctl/jose/jwt.hpp).
//
// Semantics under test (core/jose/jwt.cpp), with L = leeway:
//   exp: expired      when now - L >= exp   (valid up to exp + L - 1)
//   nbf: not yet valid when now + L <  nbf  (valid from nbf - L)
//   iat: in the future when iat >  now + L
//   max_age: too old  when now - iat > max_age + L

#include <tokctl/jose/jwt.hpp>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <optional>
#include <string>
#include <vector>

#include "support/keys.hpp"

using nlohmann::json;
using tokctl::ErrorCode;
using tokctl::FixedClock;
using tokctl::format_rfc3339;
using tokctl::UnixTime;
using tokctl::jose::Alg;
using tokctl::jose::ClaimRules;
using tokctl::jose::Jwk;
using tokctl::jose::JwkSet;
using tokctl::jose::KeySource;
using tokctl::jose::TokenVerifier;
using tokctl::jose::VerifyOptions;
using tokctl::jose::VerifyReport;
using tokctl::test::test_key;
namespace jose = tokctl::jose;

namespace {

constexpr UnixTime k_now = 1'700'000'000;  // 2023-11-14T22:13:20Z

std::string sign(const json& claims, json header = json::object(), Alg alg = Alg::HS256,
                 const Jwk& key = test_key("hs256")) {
  auto t = jose::sign_compact(std::move(header), claims.dump(), alg, key);
  REQUIRE(t.has_value());
  return *t;
}

std::string sign_raw_payload(std::string_view payload, Alg alg = Alg::HS256, const Jwk& key = test_key("hs256")) {
  auto t = jose::sign_compact(json::object(), payload, alg, key);
  REQUIRE(t.has_value());
  return *t;
}

Jwk with(const Jwk& base, std::string kid, std::string alg = {}) {
  Jwk k = base;
  if (!kid.empty()) k.set_kid(std::move(kid));
  if (!alg.empty()) k.set_alg(std::move(alg));
  return k;
}

Jwk public_of(const char* name) {
  auto p = test_key(name).to_public();
  REQUIRE(p.has_value());
  return *p;
}

TokenVerifier make_verifier(const FixedClock& clock, ClaimRules rules = {},
                            std::vector<Alg> algs = {Alg::HS256},
                            JwkSet keys = JwkSet{{test_key("hs256")}},
                            KeySource source = KeySource::single) {
  VerifyOptions options;
  options.allowed_algs = std::move(algs);
  options.claims = std::move(rules);
  auto v = TokenVerifier::create(std::move(keys), source, std::move(options), clock);
  INFO((v ? "" : v.error().message));
  REQUIRE(v.has_value());
  return std::move(*v);
}

std::vector<std::string> codes(const VerifyReport& r) {
  std::vector<std::string> out;
  for (const auto& p : r.problems) out.push_back(jose::to_string(p.code));
  return out;
}

bool has(const VerifyReport& r, std::string_view code) {
  return std::any_of(r.problems.begin(), r.problems.end(), [&](const auto& p) { return jose::to_string(p.code) == code; });
}

const jose::Problem& problem(const VerifyReport& r, std::string_view code) {
  for (const auto& p : r.problems)
    if (jose::to_string(p.code) == code) return p;
  FAIL("no problem with code " << code);
  throw 0;  // unreachable
}

std::string describe(const VerifyReport& r) {
  std::string s;
  for (const auto& p : r.problems) s += std::string(jose::to_string(p.code)) + ": " + p.message + "\n";
  return s;
}

// Verifies `claims` signed with hs256 under `rules` at k_now.
VerifyReport check(const json& claims, ClaimRules rules = {}, json header = json::object()) {
  FixedClock clock(k_now);
  auto v = make_verifier(clock, std::move(rules));
  return v.verify(sign(claims, std::move(header)));
}

ClaimRules leeway(std::int64_t seconds) {
  ClaimRules r;
  r.leeway = seconds;
  return r;
}

#define REQUIRE_VALID(report)              \
  do {                                     \
    const auto& rep_ = (report);           \
    INFO(describe(rep_));                  \
    REQUIRE(rep_.valid);                   \
    CHECK(rep_.problems.empty());          \
    CHECK(rep_.exit_code() == 0);          \
  } while (false)

}  // namespace

// ---- basics ------------------------------------------------------------------------------------

TEST_CASE("a well-formed, correctly signed token is valid", "[jwt]") {
  json claims{{"sub", "alice"}, {"iat", k_now - 10}, {"exp", k_now + 900}};
  auto r = check(claims, {}, json{{"typ", "JWT"}});
  REQUIRE_VALID(r);
  CHECK(r.parsed);
  CHECK(r.header["alg"] == "HS256");
  CHECK(r.header["typ"] == "JWT");
  CHECK(r.payload == claims);
}

TEST_CASE("claims are optional when no rule asks for them", "[jwt]") {
  REQUIRE_VALID(check(json::object()));
  REQUIRE_VALID(check(json{{"aud", 5}, {"iss", 1}}));  // not checked without --aud/--iss
}

TEST_CASE("ClaimRules defaults to a 60 second leeway", "[jwt]") {
  CHECK(ClaimRules{}.leeway == 60);
}

// ---- exp / nbf / iat boundaries ----------------------------------------------------------------

TEST_CASE("exp is honoured up to exp + leeway - 1", "[jwt][time]") {
  REQUIRE_VALID(check(json{{"exp", k_now - 59}}, leeway(60)));
  auto r = check(json{{"exp", k_now - 60}}, leeway(60));
  CHECK(codes(r) == std::vector<std::string>{"expired"});
  CHECK(r.exit_code() == 1);
  CHECK(problem(r, "expired").message ==
        "expired 1m ago (exp " + format_rfc3339(k_now - 60) + ", leeway 1m)");
  CHECK_FALSE(problem(r, "expired").malformed);
}

TEST_CASE("exp with zero leeway expires at exactly exp", "[jwt][time]") {
  REQUIRE_VALID(check(json{{"exp", k_now + 1}}, leeway(0)));
  auto r = check(json{{"exp", k_now}}, leeway(0));
  CHECK(codes(r) == std::vector<std::string>{"expired"});
  CHECK_THAT(problem(r, "expired").message, Catch::Contains("leeway 0s"));
}

TEST_CASE("an expiry far in the past hints at --now", "[jwt][time]") {
  auto recent = check(json{{"exp", k_now - 3 * 3600}});
  CHECK_THAT(problem(recent, "expired").message, Catch::StartsWith("expired 3h ago"));
  CHECK(problem(recent, "expired").hint.empty());
  auto old = check(json{{"exp", k_now - 400 * 86400}});
  CHECK_THAT(problem(old, "expired").hint, Catch::Contains("verification time"));
  CHECK(problem(old, "expired").remedy == tokctl::Remedy::check_clock);  // the CLI: "is --now right?"
}

TEST_CASE("nbf is honoured from nbf - leeway", "[jwt][time]") {
  REQUIRE_VALID(check(json{{"nbf", k_now + 60}}, leeway(60)));
  auto r = check(json{{"nbf", k_now + 61}}, leeway(60));
  CHECK(codes(r) == std::vector<std::string>{"not_yet_valid"});
  CHECK(problem(r, "not_yet_valid").message ==
        "not valid for another 1m1s (nbf " + format_rfc3339(k_now + 61) + ", leeway 1m)");
  REQUIRE_VALID(check(json{{"nbf", k_now}}, leeway(0)));
  CHECK(has(check(json{{"nbf", k_now + 1}}, leeway(0)), "not_yet_valid"));
}

TEST_CASE("iat may be up to leeway seconds in the future", "[jwt][time]") {
  REQUIRE_VALID(check(json{{"iat", k_now + 60}}, leeway(60)));
  auto r = check(json{{"iat", k_now + 61}}, leeway(60));
  CHECK(codes(r) == std::vector<std::string>{"iat_in_future"});
  CHECK_THAT(problem(r, "iat_in_future").hint, Catch::Contains("clock"));
  REQUIRE_VALID(check(json{{"iat", k_now}}, leeway(0)));
  CHECK(has(check(json{{"iat", k_now + 1}}, leeway(0)), "iat_in_future"));
}

TEST_CASE("max_age allows iat up to max_age + leeway ago", "[jwt][time]") {
  ClaimRules rules;
  rules.leeway = 60;
  rules.max_age = 300;
  REQUIRE_VALID(check(json{{"iat", k_now - 360}}, rules));
  auto r = check(json{{"iat", k_now - 361}}, rules);
  CHECK(codes(r) == std::vector<std::string>{"too_old"});
  CHECK_THAT(problem(r, "too_old").message,
             Catch::StartsWith("issued 6m1s ago, over the max age of 5m"));
}

TEST_CASE("max_age requires iat", "[jwt][time]") {
  ClaimRules rules;
  rules.max_age = 300;
  auto r = check(json{{"sub", "x"}}, rules);
  CHECK(codes(r) == std::vector<std::string>{"missing_claim"});
  CHECK_THAT(problem(r, "missing_claim").message, Catch::Contains("iat"));
  // A non-numeric iat is reported once, as a type error, not also as missing.
  auto typed = check(json{{"iat", "yesterday"}}, rules);
  CHECK(codes(typed) == std::vector<std::string>{"bad_claim_type"});
}

TEST_CASE("fractional NumericDates are accepted", "[jwt][time]") {
  REQUIRE_VALID(check(json{{"exp", k_now + 100.5}, {"iat", k_now - 0.25}, {"nbf", k_now - 10.75}}));
}

TEST_CASE("time claims that are not numbers are malformed", "[jwt][time]") {
  for (const char* claim : {"exp", "nbf", "iat"}) {
    for (const json& value : {json("1700000000"), json(true), json::array(), json(nullptr)}) {
      INFO(claim << " = " << value.dump());
      auto r = check(json{{claim, value}});
      CHECK(codes(r) == std::vector<std::string>{"bad_claim_type"});
      CHECK(problem(r, "bad_claim_type").malformed);
      CHECK_THAT(problem(r, "bad_claim_type").message, Catch::Contains(claim));
      CHECK(r.exit_code() == 3);
    }
  }
}

TEST_CASE("time claims out of any sensible range are malformed", "[jwt][time]") {
  auto r = check(json{{"exp", 1e300}});
  CHECK(codes(r) == std::vector<std::string>{"bad_claim_type"});
  CHECK_THAT(problem(r, "bad_claim_type").message, Catch::Contains("out of range"));
}

// ---- iss / sub / aud / typ / required ----------------------------------------------------------

TEST_CASE("iss must equal the expected issuer exactly", "[jwt][claims]") {
  ClaimRules rules;
  rules.iss = "https://issuer.example";
  REQUIRE_VALID(check(json{{"iss", "https://issuer.example"}}, rules));
  auto wrong = check(json{{"iss", "https://issuer.example/"}}, rules);
  CHECK(codes(wrong) == std::vector<std::string>{"iss_mismatch"});
  CHECK(problem(wrong, "iss_mismatch").message ==
        "iss mismatch: token has 'https://issuer.example/', expected 'https://issuer.example'");
  auto missing = check(json::object(), rules);
  CHECK(problem(missing, "iss_mismatch").message == "iss is missing, expected 'https://issuer.example'");
  auto typed = check(json{{"iss", 7}}, rules);
  CHECK(codes(typed) == std::vector<std::string>{"bad_claim_type"});
  CHECK(typed.exit_code() == 3);
  CHECK(has(check(json{{"iss", "HTTPS://ISSUER.EXAMPLE"}}, rules), "iss_mismatch"));
}

TEST_CASE("sub must equal the expected subject", "[jwt][claims]") {
  ClaimRules rules;
  rules.sub = "alice";
  REQUIRE_VALID(check(json{{"sub", "alice"}}, rules));
  CHECK(codes(check(json{{"sub", "bob"}}, rules)) == std::vector<std::string>{"sub_mismatch"});
  CHECK(codes(check(json::object(), rules)) == std::vector<std::string>{"sub_mismatch"});
  CHECK(codes(check(json{{"sub", json::array({"alice"})}}, rules)) == std::vector<std::string>{"bad_claim_type"});
}

TEST_CASE("aud may be a string equal to the expected audience", "[jwt][claims]") {
  ClaimRules rules;
  rules.aud = "api";
  REQUIRE_VALID(check(json{{"aud", "api"}}, rules));
  auto wrong = check(json{{"aud", "web"}}, rules);
  CHECK(codes(wrong) == std::vector<std::string>{"aud_mismatch"});
  CHECK(problem(wrong, "aud_mismatch").message == "aud mismatch: token is for 'web', expected 'api'");
}

TEST_CASE("aud may be an array containing the expected audience", "[jwt][claims]") {
  ClaimRules rules;
  rules.aud = "api";
  REQUIRE_VALID(check(json{{"aud", json::array({"web", "api"})}}, rules));
  auto wrong = check(json{{"aud", json::array({"web", "mobile"})}}, rules);
  CHECK(codes(wrong) == std::vector<std::string>{"aud_mismatch"});
  CHECK(problem(wrong, "aud_mismatch").message ==
        "aud mismatch: token is for 'web', 'mobile', expected 'api'");
  auto empty = check(json{{"aud", json::array()}}, rules);
  CHECK_THAT(problem(empty, "aud_mismatch").message, Catch::Contains("nobody"));
}

TEST_CASE("aud that is missing or of the wrong type fails", "[jwt][claims]") {
  ClaimRules rules;
  rules.aud = "api";
  auto missing = check(json::object(), rules);
  CHECK(codes(missing) == std::vector<std::string>{"aud_mismatch"});
  CHECK(problem(missing, "aud_mismatch").message == "aud is missing, expected 'api'");
  for (const json& aud : {json(1), json{{"api", true}}, json::array({"api", 1})}) {
    INFO(aud.dump());
    auto r = check(json{{"aud", aud}}, rules);
    CHECK(codes(r) == std::vector<std::string>{"bad_claim_type"});
    CHECK(r.exit_code() == 3);
  }
}

TEST_CASE("typ is compared case-insensitively with application/ optional", "[jwt][claims]") {
  struct Case {
    const char* header;
    const char* rule;
  };
  for (auto [header, rule] : {Case{"JWT", "JWT"}, Case{"jwt", "JWT"}, Case{"application/jwt", "JWT"},
                              Case{"JWT", "application/jwt"}, Case{"Application/JWT", "jwt"},
                              Case{"at+jwt", "application/at+JWT"}}) {
    INFO(header << " vs " << rule);
    ClaimRules rules;
    rules.typ = rule;
    REQUIRE_VALID(check(json::object(), rules, json{{"typ", header}}));
  }
}

TEST_CASE("typ that differs or is missing fails", "[jwt][claims]") {
  ClaimRules rules;
  rules.typ = "at+jwt";
  auto wrong = check(json::object(), rules, json{{"typ", "JWT"}});
  CHECK(codes(wrong) == std::vector<std::string>{"typ_mismatch"});
  CHECK(problem(wrong, "typ_mismatch").message == "typ mismatch: token has 'JWT', expected 'at+jwt'");
  CHECK(codes(check(json::object(), rules)) == std::vector<std::string>{"typ_mismatch"});
  // A typ that is not a string is a malformed header (RFC 7515 §4.1.9), with or without --typ.
  CHECK(codes(check(json::object(), rules, json{{"typ", 1}})) == std::vector<std::string>{"malformed", "typ_mismatch"});
  CHECK(codes(check(json::object(), ClaimRules{}, json{{"typ", json::array({"at+jwt"})}})) ==
        std::vector<std::string>{"malformed"});
  // "application/" is only stripped as a prefix.
  CHECK(has(check(json::object(), rules, json{{"typ", "xapplication/at+jwt"}}), "typ_mismatch"));
}

TEST_CASE("required claims must be present, whatever their value", "[jwt][claims]") {
  ClaimRules rules;
  rules.required = {"jti", "scope", "tenant"};
  REQUIRE_VALID(check(json{{"jti", "1"}, {"scope", ""}, {"tenant", nullptr}}, rules));
  auto r = check(json{{"jti", "1"}}, rules);
  CHECK(codes(r) == std::vector<std::string>{"missing_claim", "missing_claim"});
  CHECK(r.problems[0].message == "required claim \"scope\" is missing");
  CHECK(r.problems[1].message == "required claim \"tenant\" is missing");
  CHECK(r.exit_code() == 1);
}

// ---- one report with every problem -------------------------------------------------------------

TEST_CASE("every failed check is collected in one report", "[jwt]") {
  FixedClock clock(k_now);
  ClaimRules rules;
  rules.iss = "good-issuer";
  rules.aud = "api";
  rules.sub = "alice";
  rules.typ = "JWT";
  rules.required = {"jti"};
  rules.max_age = 60;
  auto v = make_verifier(clock, rules);
  auto other_secret = Jwk::from_secret(std::string(32, 'z'));
  REQUIRE(other_secret.has_value());
  const json claims{{"iss", "evil"}, {"aud", "web"}, {"sub", "mallory"}, {"exp", k_now - 3600},
                    {"nbf", k_now + 3600}, {"iat", k_now - 7200}};
  auto r = v.verify(sign(claims, json{{"typ", "at+jwt"}}, Alg::HS256, *other_secret));
  INFO(describe(r));
  CHECK_FALSE(r.valid);
  CHECK(r.parsed);
  CHECK(r.payload == claims);
  for (const char* code : {"bad_signature", "expired", "not_yet_valid", "too_old", "iss_mismatch",
                           "aud_mismatch", "sub_mismatch", "typ_mismatch", "missing_claim"}) {
    INFO(code);
    CHECK(has(r, code));
  }
  CHECK(r.problems.size() == 9);
  CHECK(r.exit_code() == 1);
}

TEST_CASE("exit_code is 3 when any problem is malformed input", "[jwt]") {
  FixedClock clock(k_now);
  auto v = make_verifier(clock);
  auto other_secret = Jwk::from_secret(std::string(32, 'z'));
  REQUIRE(other_secret.has_value());
  auto r = v.verify(sign(json{{"exp", "soon"}}, json::object(), Alg::HS256, *other_secret));
  CHECK(has(r, "bad_signature"));
  CHECK(has(r, "bad_claim_type"));
  CHECK(r.exit_code() == 3);
}

TEST_CASE("a token that does not parse is one malformed problem", "[jwt]") {
  FixedClock clock(k_now);
  auto v = make_verifier(clock);
  for (const char* token : {"", "abc", "a.b", "a.b.c.d.e", "!!.e30.", "e30.e30.e30"}) {
    INFO(token);
    auto r = v.verify(token);
    CHECK_FALSE(r.valid);
    CHECK_FALSE(r.parsed);
    CHECK(codes(r) == std::vector<std::string>{"malformed"});
    CHECK(r.problems[0].malformed);
    CHECK(r.exit_code() == 3);
  }
  CHECK_THAT(v.verify("a.b.c.d.e").problems[0].hint, Catch::Contains("decrypt"));
}

TEST_CASE("a JWS over bytes verifies as a JWS; a payload meant as JSON must be a strict claims set", "[jwt]") {
  FixedClock clock(k_now);
  auto v = make_verifier(clock);
  for (const char* payload : {"not json", "[1,2]", ""}) {
    INFO(payload);
    auto r = v.verify(sign_raw_payload(payload));
    CHECK(r.parsed);
    CHECK(r.payload.is_null());
    REQUIRE(r.payload_bytes);
    CHECK(*r.payload_bytes == payload);
    CHECK(r.signature_verified);
    CHECK(r.valid);
  }
  auto dup = v.verify(sign_raw_payload(R"({"a":1,"a":2})"));
  CHECK(codes(dup) == std::vector<std::string>{"malformed"});
  CHECK(dup.exit_code() == 3);
  auto forged = v.verify(sign_raw_payload("not json", Alg::HS256, *Jwk::from_secret(std::string(32, 'q'))));
  CHECK(has(forged, "bad_signature"));
  CHECK_FALSE(forged.signature_verified);
  CHECK_FALSE(forged.valid);
  // Claim rules cannot hold for bytes.
  ClaimRules rules;
  rules.iss = "https://issuer.test";
  auto strict = make_verifier(clock, rules);
  auto r = strict.verify(sign_raw_payload("bytes"));
  CHECK(has(r, "not_a_jwt"));
  CHECK_FALSE(r.valid);
}

TEST_CASE("an unsupported crit header is reported and the signature is not checked", "[jwt]") {
  auto r = check(json{{"sub", "x"}}, {}, json{{"crit", {"exp"}}, {"exp", 1}});
  CHECK(codes(r) == std::vector<std::string>{"crit_unsupported"});
  CHECK(r.exit_code() == 1);
}

// ---- algorithms and keys -----------------------------------------------------------------------

TEST_CASE("create fails with usage when an RSA or HMAC key pins no alg and none is given", "[jwt][keys]") {
  FixedClock clock(k_now);
  for (const char* name : {"rsa2048", "hs256"}) {
    auto v = TokenVerifier::create(JwkSet{{test_key(name)}}, KeySource::single, VerifyOptions{}, clock);
    REQUIRE_FALSE(v.has_value());
    CHECK(v.error().code == ErrorCode::usage);
    CHECK_THAT(v.error().message, Catch::Contains("an algorithm is required"));
    CHECK(v.error().param == "alg");  // the CLI names its flag, the core never does
    CHECK_FALSE(v.error().hint.empty());
  }
}

TEST_CASE("EC and Ed keys without alg imply theirs: P-256 ES256, P-384 ES384, P-521 ES512, Ed25519 EdDSA",
          "[jwt][keys]") {
  FixedClock clock(k_now);
  const std::pair<const char*, Alg> cases[] = {
      {"p256", Alg::ES256}, {"p384", Alg::ES384}, {"p521", Alg::ES512}, {"ed25519", Alg::EdDSA}, {"ed448", Alg::EdDSA}};
  for (const auto& [name, alg] : cases) {
    INFO(name);
    auto v = TokenVerifier::create(JwkSet{{public_of(name)}}, KeySource::single, VerifyOptions{}, clock);
    REQUIRE(v.has_value());
    REQUIRE_VALID(v->verify(sign(json{{"sub", "a"}}, json::object(), alg, test_key(name))));
  }
  // The implied alg is the only one: a P-256 key never verifies an ES384 header.
  auto v = TokenVerifier::create(JwkSet{{public_of("p256")}}, KeySource::single, VerifyOptions{}, clock);
  REQUIRE(v.has_value());
  CHECK_FALSE(v->verify(sign(json{{"sub", "a"}}, json::object(), Alg::HS256, test_key("hs256"))).valid);
}

TEST_CASE("create accepts a key that pins its alg without --alg", "[jwt][keys]") {
  FixedClock clock(k_now);
  auto v = TokenVerifier::create(JwkSet{{with(public_of("p256"), "", "ES256")}}, KeySource::single,
                                 VerifyOptions{}, clock);
  REQUIRE(v.has_value());
  REQUIRE_VALID(v->verify(sign(json{{"sub", "a"}}, json::object(), Alg::ES256, test_key("p256"))));
}

TEST_CASE("create fails with usage when --alg conflicts with every key's alg", "[jwt][keys]") {
  FixedClock clock(k_now);
  VerifyOptions options;
  options.allowed_algs = {Alg::ES256};
  auto v = TokenVerifier::create(JwkSet{{with(public_of("rsa2048"), "", "RS256")}}, KeySource::single,
                                 options, clock);
  REQUIRE_FALSE(v.has_value());
  CHECK(v.error().code == ErrorCode::usage);
  CHECK_THAT(v.error().message, Catch::Contains("RS256"));
}

TEST_CASE("create fails with usage on an empty key set", "[jwt][keys]") {
  FixedClock clock(k_now);
  VerifyOptions options;
  options.allowed_algs = {Alg::HS256};
  auto v = TokenVerifier::create(JwkSet{}, KeySource::set, options, clock);
  REQUIRE_FALSE(v.has_value());
  CHECK(v.error().code == ErrorCode::usage);
}

TEST_CASE("a token alg outside --alg is not allowed", "[jwt][keys]") {
  FixedClock clock(k_now);
  auto v = make_verifier(clock, {}, {Alg::HS512}, JwkSet{{test_key("hs512")}});
  auto r = v.verify(sign(json::object(), json::object(), Alg::HS256, test_key("hs512")));
  CHECK(codes(r) == std::vector<std::string>{"alg_not_allowed"});
  CHECK(problem(r, "alg_not_allowed").message == "alg HS256 is not allowed (allowed: HS512)");
}

TEST_CASE("a single key verifies whatever kid the token names", "[jwt][keys]") {
  FixedClock clock(k_now);
  auto v = make_verifier(clock, {}, {Alg::EdDSA}, JwkSet{{with(public_of("ed25519"), "k1")}});
  auto r = v.verify(sign(json::object(), json{{"kid", "other"}}, Alg::EdDSA, test_key("ed25519")));
  REQUIRE_VALID(r);
  CHECK(r.kid == "k1");
}

TEST_CASE("a bad signature with a single key names the key and a kid mismatch", "[jwt][keys]") {
  FixedClock clock(k_now);
  auto v = make_verifier(clock, {}, {Alg::ES256}, JwkSet{{with(public_of("p256"), "k1")}});
  auto r = v.verify(sign(json::object(), json{{"kid", "k2"}}, Alg::ES256, test_key("p256b")));
  CHECK(codes(r) == std::vector<std::string>{"bad_signature"});
  CHECK(problem(r, "bad_signature").message == "signature does not verify with the EC P-256 public key (kid 'k1')");
  CHECK(problem(r, "bad_signature").hint == "the token's kid is 'k2' but the key's kid is 'k1'");
  CHECK(r.kid == "k1");
  CHECK(r.exit_code() == 1);
}

TEST_CASE("in a key set the token's kid selects the key", "[jwt][keys]") {
  FixedClock clock(k_now);
  JwkSet set{{with(public_of("p256"), "k1", "ES256"), with(public_of("ed25519"), "k3", "EdDSA")}};
  auto v = make_verifier(clock, {}, {}, set, KeySource::set);

  auto ed = v.verify(sign(json::object(), json{{"kid", "k3"}}, Alg::EdDSA, test_key("ed25519")));
  REQUIRE_VALID(ed);
  CHECK(ed.kid == "k3");

  auto es = v.verify(sign(json::object(), json{{"kid", "k1"}}, Alg::ES256, test_key("p256")));
  REQUIRE_VALID(es);
  CHECK(es.kid == "k1");
}

TEST_CASE("in a key set an unknown kid lists the kids there are", "[jwt][keys]") {
  FixedClock clock(k_now);
  JwkSet set{{with(public_of("p256"), "k1", "ES256"), with(public_of("ed25519"), "k3", "EdDSA")}};
  auto v = make_verifier(clock, {}, {}, set, KeySource::set);
  auto r = v.verify(sign(json::object(), json{{"kid", "k2"}}, Alg::ES256, test_key("p256")));
  CHECK(codes(r) == std::vector<std::string>{"kid_not_found"});
  CHECK(problem(r, "kid_not_found").message == "kid 'k2' not in JWKS (have: k1, k3)");
  CHECK_THAT(problem(r, "kid_not_found").hint, Catch::Contains("refresh"));
  CHECK(r.exit_code() == 1);
}

TEST_CASE("in a key set a token without kid tries every key", "[jwt][keys]") {
  FixedClock clock(k_now);
  JwkSet set{{with(public_of("p256b"), "k1", "ES256"), with(public_of("p256"), "k2", "ES256")}};
  auto v = make_verifier(clock, {}, {}, set, KeySource::set);
  auto r = v.verify(sign(json::object(), json::object(), Alg::ES256, test_key("p256")));
  REQUIRE_VALID(r);
  CHECK(r.kid == "k2");
  auto bad = v.verify(sign(json::object(), json::object(), Alg::ES384, test_key("p384")));
  CHECK(has(bad, "alg_not_allowed"));  // ES384 is pinned by neither key
}

TEST_CASE("in a key set the kid-selected key must verify", "[jwt][keys]") {
  FixedClock clock(k_now);
  JwkSet set{{with(public_of("p256b"), "k1", "ES256"), with(public_of("p256"), "k2", "ES256")}};
  auto v = make_verifier(clock, {}, {}, set, KeySource::set);
  // Signed by k2's key but naming k1: only k1 is tried.
  auto r = v.verify(sign(json::object(), json{{"kid", "k1"}}, Alg::ES256, test_key("p256")));
  CHECK(codes(r) == std::vector<std::string>{"bad_signature"});
  CHECK(r.kid == "k1");
}

TEST_CASE("in a key set a kid whose key pins another alg is not allowed", "[jwt][keys]") {
  FixedClock clock(k_now);
  JwkSet set{{with(public_of("p256"), "k1", "ES256"), with(public_of("ed25519"), "k3", "EdDSA")}};
  auto v = make_verifier(clock, {}, {}, set, KeySource::set);
  auto r = v.verify(sign(json::object(), json{{"kid", "k1"}}, Alg::EdDSA, test_key("ed25519")));
  CHECK(codes(r) == std::vector<std::string>{"alg_not_allowed"});
  CHECK_THAT(problem(r, "alg_not_allowed").message, Catch::Contains("(allowed: ES256)"));
}

// ---- copies and the clock ----------------------------------------------------------------------

TEST_CASE("TokenVerifier copies verify independently", "[jwt]") {
  FixedClock clock(k_now);
  JwkSet set{{with(public_of("p256"), "k1", "ES256"), with(test_key("hs256"), "h", "HS256")}};
  const std::string es = sign(json{{"exp", k_now + 60}}, json{{"kid", "k1"}}, Alg::ES256, test_key("p256"));
  const std::string hs = sign(json{{"exp", k_now + 60}}, json{{"kid", "h"}});
  const std::string bad = sign(json::object(), json{{"kid", "h"}}, Alg::HS256, *Jwk::from_secret(std::string(32, 'z')));

  std::optional<TokenVerifier> original(make_verifier(clock, {}, {}, set, KeySource::set));
  REQUIRE_VALID(original->verify(es));  // builds its cached verifiers
  TokenVerifier copy = *original;
  CHECK_FALSE(original->verify(bad).valid);
  REQUIRE_VALID(copy.verify(hs));
  REQUIRE_VALID(original->verify(hs));
  CHECK_FALSE(copy.verify(bad).valid);
  REQUIRE_VALID(copy.verify(es));

  TokenVerifier assigned = make_verifier(clock);
  assigned = copy;
  original.reset();  // copies do not depend on the original
  REQUIRE_VALID(copy.verify(es));
  REQUIRE_VALID(assigned.verify(hs));
  TokenVerifier moved = std::move(assigned);
  REQUIRE_VALID(moved.verify(es));
}

TEST_CASE("TokenVerifier reads the injected clock on every verify", "[jwt][time]") {
  FixedClock clock(k_now);
  auto v = make_verifier(clock, leeway(0));
  const std::string token = sign(json{{"exp", k_now + 10}});
  REQUIRE_VALID(v.verify(token));
  TokenVerifier copy = v;
  clock.set(k_now + 10);
  CHECK(has(v.verify(token), "expired"));
  CHECK(has(copy.verify(token), "expired"));
  clock.set(k_now + 9);
  REQUIRE_VALID(copy.verify(token));
}

// ---- check_claims ------------------------------------------------------------------------------

TEST_CASE("check_claims appends to the problems it is given", "[jwt][claims]") {
  std::vector<jose::Problem> problems{{jose::ProblemCode::revoked, "kept", "", false}};
  ClaimRules rules;
  rules.leeway = 0;
  jose::check_claims(json::object(), json{{"exp", k_now}}, rules, k_now, problems);
  REQUIRE(problems.size() == 2);
  CHECK(problems[0].code == jose::ProblemCode::revoked);
  CHECK(problems[1].code == jose::ProblemCode::expired);
  std::vector<jose::Problem> none;
  jose::check_claims(json::object(), json{{"exp", k_now + 1}}, rules, k_now, none);
  CHECK(none.empty());
}

// ---- decode_warnings ---------------------------------------------------------------------------

namespace {

bool warns(const std::vector<std::string>& w, const std::string& needle) {
  return std::any_of(w.begin(), w.end(), [&](const std::string& s) { return s.find(needle) != std::string::npos; });
}

}  // namespace

TEST_CASE("decode_warnings is quiet for a short-lived asymmetric token", "[jwt][warnings]") {
  auto w = jose::decode_warnings(json{{"alg", "ES256"}, {"typ", "JWT"}},
                                 json{{"sub", "u1"}, {"iat", k_now}, {"exp", k_now + 900}}, k_now);
  CHECK(w.empty());
}

TEST_CASE("decode_warnings flags alg none, symmetric and unknown algs", "[jwt][warnings]") {
  const json claims{{"exp", k_now + 60}};
  CHECK(warns(jose::decode_warnings(json{{"alg", "none"}}, claims, k_now), "unsigned"));
  CHECK(warns(jose::decode_warnings(json{{"alg", "NoNe"}}, claims, k_now), "\"none\""));
  CHECK(warns(jose::decode_warnings(json{{"alg", "HS256"}}, claims, k_now), "HS256 is symmetric"));
  CHECK(warns(jose::decode_warnings(json{{"alg", "XS1"}}, claims, k_now), "alg \"XS1\" is not a supported"));
}

TEST_CASE("decode_warnings flags embedded key headers and crit", "[jwt][warnings]") {
  const json claims{{"exp", k_now + 60}};
  for (const char* h : {"jwk", "jku", "x5u", "x5c"}) {
    INFO(h);
    auto w = jose::decode_warnings(json{{"alg", "RS256"}, {h, "x"}}, claims, k_now);
    REQUIRE(w.size() == 1);
    CHECK(w[0] == std::string("header carries \"") + h + "\": tokctl never lets the token choose its own key");
  }
  CHECK(warns(jose::decode_warnings(json{{"alg", "RS256"}, {"crit", {"x"}}}, claims, k_now), "crit"));
}

TEST_CASE("decode_warnings flags a missing exp and a lifetime over 24h", "[jwt][warnings]") {
  const json header{{"alg", "ES256"}};
  CHECK(warns(jose::decode_warnings(header, json{{"sub", "x"}}, k_now), "never expires"));
  auto long_lived = jose::decode_warnings(header, json{{"iat", k_now}, {"exp", k_now + 86400 + 3600}}, k_now);
  CHECK(warns(long_lived, "lifetime is 1d1h, over 24h"));
  CHECK(jose::decode_warnings(header, json{{"iat", k_now}, {"exp", k_now + 86400}}, k_now).empty());
  // Without iat the lifetime is counted from now.
  CHECK(warns(jose::decode_warnings(header, json{{"exp", k_now + 2 * 86400}}, k_now), "over 24h"));
  CHECK(jose::decode_warnings(header, json{{"exp", k_now + 86400}}, k_now).empty());
}

TEST_CASE("decode_warnings flags expired tokens and non-numeric time claims", "[jwt][warnings]") {
  const json header{{"alg", "ES256"}};
  auto expired = jose::decode_warnings(header, json{{"iat", k_now - 4 * 3600}, {"exp", k_now - 3 * 3600}}, k_now);
  CHECK(expired == std::vector<std::string>{"expired 3h ago"});
  auto bad = jose::decode_warnings(header, json{{"exp", "tomorrow"}, {"nbf", true}}, k_now);
  CHECK(warns(bad, "claim \"exp\" is not a number"));
  CHECK(warns(bad, "claim \"nbf\" is not a number"));
  CHECK_FALSE(warns(bad, "never expires"));
}

TEST_CASE("decode_warnings flags sensitive-looking claims case-insensitively", "[jwt][warnings]") {
  const json header{{"alg", "ES256"}};
  auto w = jose::decode_warnings(
      header, json{{"exp", k_now + 60}, {"email", "a@b.c"}, {"Phone_Number", "1"}, {"scope", "read"}}, k_now);
  CHECK(w.size() == 2);
  CHECK(warns(w, "claim \"email\" looks like personal or secret data"));
  CHECK(warns(w, "claim \"Phone_Number\""));
}

TEST_CASE("decode_warnings says when the payload is not a claims set", "[jwt][warnings]") {
  auto w = jose::decode_warnings(json{{"alg", "EdDSA"}}, json("text"), k_now);
  CHECK(w == std::vector<std::string>{"the payload is not a JSON object, so this is not a JWT claims set"});
  CHECK(warns(jose::decode_warnings(json{{"alg", "none"}}, json(nullptr), k_now), "not a JSON object"));
}

// ---- ReportDetail::verdict (verify --batch) --------------------------------------------------------

TEST_CASE("a verdict report has every finding of a full one, without the header document", "[jwt][batch]") {
  FixedClock clock(k_now);
  ClaimRules rules;
  rules.aud = "api";
  rules.typ = "at+jwt";
  rules.required = {"jti"};
  auto v = make_verifier(clock, rules);
  const json good = {{"sub", "alice"}, {"aud", "api"}, {"exp", k_now + 60}, {"jti", "j1"}};
  const json at = {{"typ", "at+jwt"}, {"kid", "a-kid-long-enough-to-leave-the-small-string-buffer"}};
  // One signer's tokens, then others: the header kept between tokens never leaks into the next one.
  const std::vector<std::string> tokens = {
      sign(good, at),
      sign(json{{"sub", "bob"}, {"aud", "web"}, {"exp", k_now - 3600}, {"jti", "j2"}}, at),
      sign(good, json{{"typ", "JWT"}}),
      sign(good, json{{"typ", "at+jwt"}, {"crit", {"x"}}, {"x", 1}}),
      sign(good, at).substr(0, 40),
      sign(good, at) + "x",
      // Another token's signature: a bad signature.
      sign(good, at).substr(0, sign(good, at).rfind('.')) + sign(json{{"sub", "x"}}, at).substr(sign(json{{"sub", "x"}}, at).rfind('.')),
      sign_raw_payload("not json"),
      sign(good, at),
  };
  for (const auto& t : tokens) {
    INFO(t);
    const VerifyReport full = v.verify(t);
    const VerifyReport verdict = v.verify(t, jose::ReportDetail::verdict);
    CHECK(verdict.valid == full.valid);
    CHECK(verdict.parsed == full.parsed);
    CHECK(verdict.signature_verified == full.signature_verified);
    CHECK(verdict.kid == full.kid);
    CHECK(verdict.payload == full.payload);
    CHECK(verdict.payload_bytes == full.payload_bytes);
    CHECK(codes(verdict) == codes(full));
    CHECK(describe(verdict) == describe(full));
    CHECK(verdict.header.is_null());
    if (full.parsed) CHECK(full.header.is_object());
  }
  CHECK(v.verify(tokens.front(), jose::ReportDetail::verdict).valid);
  CHECK(has(v.verify(tokens[2], jose::ReportDetail::verdict), "typ_mismatch"));
  CHECK(has(v.verify(tokens[3], jose::ReportDetail::verdict), "crit_unsupported"));
  CHECK(has(v.verify(tokens[6], jose::ReportDetail::verdict), "bad_signature"));
}
