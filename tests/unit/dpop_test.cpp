// DPoP (RFC 9449): every check of a proof, the htu comparison, the replay cache, and the token
// service binding access tokens to the proof's key (token endpoint, introspection, /phantom).

#include <sys/stat.h>

#include <filesystem>
#include <string>
#include <vector>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <tokctl/jose/dpop.hpp>
#include <tokctl/jose/jwk.hpp>
#include <tokctl/jose/jws.hpp>
#include <tokctl/server/oauth.hpp>
#include <tokctl/server/replay.hpp>
#include <tokctl/tokens/clients.hpp>
#include <tokctl/util/base64.hpp>
#include <tokctl/util/io.hpp>
#include <tokctl/util/uri.hpp>

#include "support/cli_helpers.hpp"
#include "support/keys.hpp"
#include "support/run.hpp"
#include "support/service_fixture.hpp"

using nlohmann::json;
using namespace tokctl;
using tokctl::test::TempDir;
using tokctl::test::test_key;
using tokctl::test::write_file;

namespace {

constexpr UnixTime k_now = 1767225600;  // 2026-01-01T00:00:00Z
constexpr const char* k_endpoint = "https://issuer.test/oauth/token";
constexpr const char* k_api = "https://api.test/orders/7";  // a request to an API behind /phantom

std::string proof(const jose::Jwk& key, jose::Alg alg, jose::DpopClaims c = {}) {
  if (c.htu.empty()) c.htu = k_endpoint;
  if (c.iat == 0) c.iat = k_now;
  auto p = jose::make_dpop_proof(key, alg, c);
  REQUIRE(p);
  return *p;
}

// A proof with this header and these claims, signed by `key` as given (for the malformed cases).
std::string raw_proof(const json& header, const json& claims, const jose::Jwk& key, jose::Alg alg) {
  auto p = jose::sign_compact(header, claims.dump(), alg, key);
  REQUIRE(p);
  return *p;
}

// Proof claims with one member set (the rest as `proof` fills them in).
jose::DpopClaims with(std::string jose::DpopClaims::*member, std::string value) {
  jose::DpopClaims c;
  c.*member = std::move(value);
  return c;
}
jose::DpopClaims issued_at(UnixTime iat) {
  jose::DpopClaims c;
  c.iat = iat;
  return c;
}

jose::DpopCheck at_token_endpoint() {
  jose::DpopCheck c;
  c.htm = "POST";
  c.htu = k_endpoint;
  c.now = k_now;
  return c;
}

std::string refusal(std::string_view p, const jose::DpopCheck& c = at_token_endpoint()) {
  auto r = jose::check_dpop_proof(p, c);
  REQUIRE_FALSE(r);
  CHECK(r.error().oauth == OAuthCode::invalid_dpop_proof);
  CHECK(r.error().code == ErrorCode::invalid_token);
  return r.error().message;
}

json public_jwk(const jose::Jwk& key) {
  json j = key.to_json(jose::KeyPart::public_only);
  j.erase("key_ops");
  return j;
}

}  // namespace

TEST_CASE("DPoP proofs: ES256, ES384, RS256, PS256 and EdDSA proofs pass, giving the key's thumbprint", "[dpop]") {
  struct Case {
    const char* key;
    jose::Alg alg;
  };
  for (auto [name, alg] : {Case{"p256", jose::Alg::ES256}, Case{"p384", jose::Alg::ES384},
                           Case{"rsa2048", jose::Alg::RS256}, Case{"rsa2048", jose::Alg::PS256},
                           Case{"ed25519", jose::Alg::EdDSA}}) {
    INFO(name);
    const jose::Jwk& key = test_key(name);
    auto ok = jose::check_dpop_proof(proof(key, alg, with(&jose::DpopClaims::jti, "one")), at_token_endpoint());
    REQUIRE(ok);
    CHECK(ok->jkt == *key.thumbprint());
    CHECK(ok->jti == "one");
    CHECK(ok->iat == k_now);
    CHECK(ok->alg == alg);
  }
}

TEST_CASE("DPoP proofs: each RFC 9449 §4.3 check refuses, saying which", "[dpop]") {
  const jose::Jwk& key = test_key("p256");
  const json good_header{{"typ", "dpop+jwt"}, {"jwk", public_jwk(key)}};
  const json good_claims{{"jti", "j1"}, {"htm", "POST"}, {"htu", k_endpoint}, {"iat", k_now}};
  auto with_header = [&](const json& patch) {
    json h = good_header;
    h.merge_patch(patch);
    return raw_proof(h, good_claims, key, jose::Alg::ES256);
  };
  auto with_claims = [&](const json& patch) {
    json c = good_claims;
    c.merge_patch(patch);
    return raw_proof(good_header, c, key, jose::Alg::ES256);
  };
  REQUIRE(jose::check_dpop_proof(raw_proof(good_header, good_claims, key, jose::Alg::ES256), at_token_endpoint()));

  // not a JWS, or too big
  CHECK_THAT(refusal(""), Catch::Contains("empty"));
  CHECK_THAT(refusal("a.b"), Catch::Contains("DPoP proof"));
  CHECK_THAT(refusal(std::string(9000, 'a')), Catch::Contains("longer than 8192 bytes"));
  // typ
  CHECK_THAT(refusal(with_header({{"typ", "JWT"}})), Catch::Contains("typ must be"));
  CHECK_THAT(refusal(with_header({{"typ", nullptr}})), Catch::Contains("typ must be"));
  // alg: none and symmetric ones never
  const std::string b = raw_proof(good_header, good_claims, key, jose::Alg::ES256);
  const std::string none_header = b64url_encode(R"({"typ":"dpop+jwt","alg":"none","jwk":)" + public_jwk(key).dump() + "}");
  CHECK_THAT(refusal(none_header + "." + b.substr(b.find('.') + 1, b.rfind('.') - b.find('.')) ),
             Catch::Contains("alg 'none' is not accepted"));
  auto hs = jose::Jwk::from_secret(std::string(32, 'k'));
  REQUIRE(hs);
  CHECK_THAT(refusal(raw_proof(good_header, good_claims, *hs, jose::Alg::HS256)), Catch::Contains("symmetric"));
  // crit it does not understand
  CHECK_THAT(refusal(with_header({{"crit", {"exp"}}, {"exp", 1}})), Catch::Contains("crit"));
  // jwk: missing, not an object, private, secret, weak, another curve, another key
  CHECK_THAT(refusal(with_header({{"jwk", nullptr}})), Catch::Contains("jwk (the public key) is missing"));
  CHECK_THAT(refusal(with_header({{"jwk", "x"}})), Catch::Contains("jwk (the public key) is missing"));
  CHECK_THAT(refusal(with_header({{"jwk", key.to_json(jose::KeyPart::with_private)}})),
             Catch::Contains("private or secret key material (\"d\")"));
  CHECK_THAT(refusal(with_header({{"jwk", {{"kty", "oct"}, {"k", "c2VjcmV0"}}}})), Catch::Contains("(\"k\")"));
  // (tokctl will not sign with a 1024-bit key; the key is refused before the signature is read)
  const json weak_header{{"typ", "dpop+jwt"}, {"alg", "RS256"}, {"jwk", public_jwk(test_key("rsa1024"))}};
  CHECK_THAT(refusal(b64url_encode(weak_header.dump()) + "." + b64url_encode(good_claims.dump()) + "." +
                     b64url_encode(std::string(128, 's'))),
             Catch::Contains("2048"));
  const json other_curve{{"typ", "dpop+jwt"}, {"alg", "ES256"}, {"jwk", public_jwk(test_key("p384"))}};
  CHECK_THAT(refusal(b64url_encode(other_curve.dump()) + "." + b64url_encode(good_claims.dump()) + "." +
                     b64url_encode(std::string(64, 's'))),
             Catch::Contains("P-384"));
  CHECK_THAT(refusal(with_header({{"jwk", public_jwk(test_key("p256b"))}})),
             Catch::Contains("signature does not verify"));
  // what one verification may cost: an RSA exponent over 32 bits, a modulus over 4096 bits
  json big_e = public_jwk(test_key("rsa2048"));
  big_e["e"] = b64url_encode(std::string(375, '\xff'));
  const json big_e_header{{"typ", "dpop+jwt"}, {"alg", "RS256"}, {"jwk", big_e}};
  CHECK_THAT(refusal(b64url_encode(big_e_header.dump()) + "." + b64url_encode(good_claims.dump()) + "." +
                     b64url_encode(std::string(256, 's'))),
             Catch::Contains("exponent is longer than 32 bits"));
  const json big_n_header{{"typ", "dpop+jwt"},
                          {"alg", "RS256"},
                          {"jwk", {{"kty", "RSA"}, {"e", "AQAB"}, {"n", b64url_encode(std::string(1024, '\xff'))}}}};
  CHECK_THAT(refusal(b64url_encode(big_n_header.dump()) + "." + b64url_encode(good_claims.dump()) + "." +
                     b64url_encode(std::string(1024, 's'))),
             Catch::Contains("more than 4096 bits"));
  // claims
  CHECK_THAT(refusal(with_claims({{"jti", nullptr}})), Catch::Contains("jti is missing"));
  CHECK_THAT(refusal(with_claims({{"jti", 7}})), Catch::Contains("jti is missing"));
  CHECK_THAT(refusal(with_claims({{"jti", std::string(257, 'j')}})), Catch::Contains("jti is longer"));
  CHECK_THAT(refusal(with_claims({{"htm", nullptr}})), Catch::Contains("htm is missing"));
  CHECK_THAT(refusal(with_claims({{"htm", "GET"}})), Catch::Contains("htm is GET, the request is POST"));
  CHECK_THAT(refusal(with_claims({{"htm", "post"}})), Catch::Contains("htm is post"));
  CHECK_THAT(refusal(with_claims({{"htu", nullptr}})), Catch::Contains("htu is missing"));
  CHECK_THAT(refusal(with_claims({{"htu", "https://other.test/oauth/token"}})),
             Catch::Contains("htu https://other.test/oauth/token is not this endpoint's URI"));
  CHECK_THAT(refusal(with_claims({{"htu", "https://issuer.test/oauth/introspect"}})), Catch::Contains("htu"));
  CHECK_THAT(refusal(with_claims({{"htu", "http://issuer.test/oauth/token"}})), Catch::Contains("htu"));
  CHECK_THAT(refusal(with_claims({{"htu", "urn:x:y"}})), Catch::Contains("not an http(s) URI"));
  CHECK_THAT(refusal(with_claims({{"iat", nullptr}})), Catch::Contains("iat (a NumericDate) is missing"));
  CHECK_THAT(refusal(with_claims({{"iat", "1767225600"}})), Catch::Contains("iat (a NumericDate) is missing"));
  CHECK_THAT(refusal(with_claims({{"iat", 1e300}})), Catch::Contains("out of range"));
  CHECK_THAT(refusal(with_claims({{"iat", k_now - 61}})), Catch::Contains("issued 61 s ago"));
  CHECK_THAT(refusal(with_claims({{"iat", k_now + 6}})), Catch::Contains("in the future"));
  CHECK(jose::check_dpop_proof(with_claims({{"iat", k_now - 60}}), at_token_endpoint()));
  CHECK(jose::check_dpop_proof(with_claims({{"iat", k_now + 5}}), at_token_endpoint()));
  CHECK(jose::check_dpop_proof(with_claims({{"iat", k_now + 0.5}}), at_token_endpoint()));
  // a signature from another key, or over other bytes
  std::string tampered = b;
  tampered[tampered.size() - 5] = tampered[tampered.size() - 5] == 'A' ? 'B' : 'A';
  CHECK_THAT(refusal(tampered), Catch::Contains("DPoP proof"));
  // strict JSON: a duplicate claim
  const std::string dup = b64url_encode(R"({"jti":"a","jti":"b","htm":"POST","htu":"https://issuer.test/oauth/token","iat":1767225600})");
  auto dup_proof = jose::sign_compact(good_header, b64url_decode(dup).value(), jose::Alg::ES256, key);
  REQUIRE(dup_proof);
  CHECK_THAT(refusal(*dup_proof), Catch::Contains("DPoP proof"));
}

TEST_CASE("DPoP proofs at a resource: ath must be the access token's hash", "[dpop]") {
  const jose::Jwk& key = test_key("p256");
  jose::DpopCheck c = at_token_endpoint();
  c.htm = "GET";
  c.htu = "https://api.test/orders?page=2";
  c.access_token = "the-access-token";
  jose::DpopClaims claims;
  claims.htm = "GET";
  claims.htu = "https://api.test/orders";
  claims.iat = k_now;
  claims.access_token = "the-access-token";
  CHECK(jose::check_dpop_proof(proof(key, jose::Alg::ES256, claims), c));
  claims.access_token = "another-token";
  CHECK_THAT(refusal(proof(key, jose::Alg::ES256, claims), c), Catch::Contains("ath is not the hash"));
  claims.access_token.clear();
  CHECK_THAT(refusal(proof(key, jose::Alg::ES256, claims), c), Catch::Contains("ath (the access token's hash) is missing"));
  // Making a proof: never with a public key or a symmetric alg.
  CHECK_FALSE(jose::make_dpop_proof(*jose::Jwk::from_json(public_jwk(key)), jose::Alg::ES256, claims));
  CHECK_FALSE(jose::make_dpop_proof(test_key("hs256"), jose::Alg::HS256, claims));
}

TEST_CASE("normalized_http_uri: scheme and host case, default ports, query and fragment", "[dpop][uri]") {
  CHECK(normalized_http_uri("HTTPS://Issuer.Test:443/oauth/token?x=1#f") == "https://issuer.test/oauth/token");
  CHECK(normalized_http_uri("http://issuer.test:80") == "http://issuer.test/");
  CHECK(normalized_http_uri("http://issuer.test:0080/a") == "http://issuer.test/a");
  CHECK(normalized_http_uri("http://127.0.0.1:8080/oauth/token") == "http://127.0.0.1:8080/oauth/token");
  CHECK(normalized_http_uri("https://[::1]:8443/t") == "https://[::1]:8443/t");
  CHECK(normalized_http_uri("https://[::1]/t") == "https://[::1]/t");
  CHECK(normalized_http_uri("https://issuer.test:/t") == "https://issuer.test/t");
  CHECK(normalized_http_uri("https://issuer.test/OAuth/Token") == "https://issuer.test/OAuth/Token");  // paths as written
  CHECK_FALSE(normalized_http_uri("ftp://issuer.test/t"));
  CHECK_FALSE(normalized_http_uri("https:///t"));
  CHECK_FALSE(normalized_http_uri("https://user@issuer.test/t"));
  CHECK_FALSE(normalized_http_uri("https://issuer.test:x/t"));
  CHECK_FALSE(normalized_http_uri("https://issuer.test/a b"));
  CHECK_FALSE(normalized_http_uri("issuer.test/t"));
  // a second port, or a colon in a host that is no IPv6 literal
  CHECK_FALSE(normalized_http_uri("http://127.0.0.1:18555:80/oauth/token"));
  CHECK_FALSE(normalized_http_uri("http://127.0.0.1:18555:/oauth/token"));
  CHECK_FALSE(normalized_http_uri("http://[::1/t"));
  CHECK_FALSE(normalized_http_uri("http://a]b/t"));
  // percent escapes: unreserved ones decoded, the others upper-cased, broken ones refused
  CHECK(normalized_http_uri("https://issuer.test/oauth/%74oken") == "https://issuer.test/oauth/token");
  CHECK(normalized_http_uri("https://issuer.test/caf%c3%a9") == "https://issuer.test/caf%C3%A9");
  CHECK(normalized_http_uri("https://issuer.test/a%2fb") == "https://issuer.test/a%2Fb");
  CHECK_FALSE(normalized_http_uri("https://issuer.test/a%2"));
  CHECK_FALSE(normalized_http_uri("https://issuer.test/a%zz"));
  CHECK(normalized_http_uri("https://issuer.test/a?%zz") == "https://issuer.test/a");  // the query is not compared
}

TEST_CASE("ReplayCache: a value once, until its time; bounded in all and per owner", "[dpop][replay]") {
  using Seen = server::ReplayCache::Seen;
  server::ReplayCache cache(3, 2);
  CHECK(cache.remember("o1", "a", 100, 50) == Seen::first);
  CHECK(cache.remember("o1", "a", 100, 60) == Seen::again);
  CHECK(cache.remember("o2", "a", 500, 100) == Seen::again);  // still live at its last second, for anyone
  CHECK(cache.remember("o1", "b", 200, 100) == Seen::first);
  CHECK(cache.remember("o1", "c", 300, 100) == Seen::full);   // o1 holds its share (2)
  CHECK(cache.remember("o2", "c", 300, 100) == Seen::first);  // others still have room
  CHECK(cache.size() == 3);
  CHECK(cache.remember("o3", "d", 300, 100) == Seen::full);  // the whole cache is full
  CHECK(cache.remember("o1", "a", 300, 101) == Seen::first);  // "a" expired: room again, and "a" is new
  CHECK(cache.size() == 3);
  CHECK(cache.remember("o3", "b", 300, 250) == Seen::first);  // only "b" had gone; "a" (300) and "c" (300) stay
  CHECK(cache.remember("o3", "c", 300, 250) == Seen::again);
  CHECK(cache.remember("o1", "x", 1000, 301) == Seen::first);
  CHECK(cache.size() == 1);
  CHECK(cache.remember("o1", "y", 1000, 301) == Seen::first);  // o1's count went down with its expiries
}

namespace {

// A token service with clients that get JWT or opaque access tokens, one that must use DPoP.
struct DpopFixture {
  TempDir dir;
  FixedClock clock{k_now};
  std::string secret = tokens::generate_client_secret();
  std::unique_ptr<tokens::TokenService> service;
  std::unique_ptr<server::OAuthEndpoints> endpoints;

  explicit DpopFixture(server::EndpointOptions options = {}) {
    const std::string hash = tokens::hash_generated_secret(secret);
    write_file(dir.file("tokctl.yaml"),
               "issuer: https://issuer.test\n"
               "scopes:\n  - name: read\n"
               "tokens:\n  access: {format: opaque, ttl: 10m}\n  refresh: {ttl: 1h}\n"
               "clients:\n"
               "  app: {secret_hash: \"" + hash + "\", scopes: [read], audiences: [api-a],\n"
               "        grants: [client_credentials, refresh_token, token_exchange]}\n"
               "  jwt: {secret_hash: \"" + hash + "\", scopes: [read], format: jwt}\n"
               "  must: {secret_hash: \"" + hash + "\", scopes: [read], dpop_bound_access_tokens: true}\n"
               "  gw: {secret_hash: \"" + hash + "\", scopes: [read], grants: [client_credentials]}\n"
               "exchange:\n  - from: api-a\n    to: [api-b]\n    scopes: [read]\n    modes: [delegate]\n");
    service = tokctl::test::open_service(dir.file("tokctl.yaml"), dir.file("ks"), clock);
    endpoints = std::make_unique<server::OAuthEndpoints>(*service, clock, options);
  }

  server::HttpResponse token(const std::string& client, const std::string& body,
                             const std::vector<std::string>& proofs = {}) const {
    server::HttpRequest r;
    r.method = "POST";
    r.target = "/oauth/token";
    r.body = body;
    r.headers = {{"content-type", "application/x-www-form-urlencoded"},
                 {"authorization", "Basic " + b64_encode(client + ":" + secret)}};
    for (const auto& p : proofs) r.headers.emplace_back("dpop", p);
    return endpoints->handle(r);
  }
};

json body_of(const server::HttpResponse& r) { return json::parse(r.body); }

}  // namespace

TEST_CASE("serve: a DPoP proof at the token endpoint binds the access token to its key", "[dpop][serve]") {
  DpopFixture fx;
  const jose::Jwk& key = test_key("p256");
  const std::string jkt = *key.thumbprint();
  const std::string cc = "grant_type=client_credentials&scope=read";

  // opaque: token_type DPoP; introspection says DPoP and cnf.jkt
  auto r = fx.token("app", cc, {proof(key, jose::Alg::ES256)});
  INFO(r.body);
  REQUIRE(r.status == 200);
  CHECK(body_of(r).at("token_type") == "DPoP");
  auto info = fx.service->introspect(body_of(r).at("access_token").get<std::string>());
  REQUIRE(info);
  CHECK(info->at("active") == true);
  CHECK(info->at("token_type") == "DPoP");
  CHECK(info->at("cnf") == json{{"jkt", jkt}});

  // JWT: the claim is in the token
  auto j = fx.token("jwt", cc, {proof(key, jose::Alg::ES256)});
  REQUIRE(j.status == 200);
  CHECK(body_of(j).at("token_type") == "DPoP");
  auto jws = jose::parse_compact(body_of(j).at("access_token").get<std::string>());
  REQUIRE(jws);
  CHECK(json::parse(jws->payload).at("cnf") == json{{"jkt", jkt}});

  // without a proof: Bearer, no cnf
  auto plain = fx.token("app", cc);
  REQUIRE(plain.status == 200);
  CHECK(body_of(plain).at("token_type") == "Bearer");
  auto plain_info = fx.service->introspect(body_of(plain).at("access_token").get<std::string>());
  CHECK(plain_info->at("token_type") == "Bearer");
  CHECK_FALSE(plain_info->contains("cnf"));

  // the metadata names the proof algorithms: the asymmetric ones only
  const json& algs = fx.endpoints->metadata().at("dpop_signing_alg_values_supported");
  CHECK(algs == json{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"});
}

TEST_CASE("serve: DPoP refusals are 400 invalid_dpop_proof and issue nothing", "[dpop][serve]") {
  DpopFixture fx;
  const jose::Jwk& key = test_key("p256");
  const std::string cc = "grant_type=client_credentials&scope=read";
  auto refused = [&](const server::HttpResponse& r, const std::string& why) {
    INFO(r.body);
    CHECK(r.status == 400);
    CHECK(body_of(r).at("error") == "invalid_dpop_proof");
    CHECK_THAT(body_of(r).at("error_description").get<std::string>(), Catch::Contains(why));
    CHECK_FALSE(body_of(r).contains("access_token"));
  };
  // replayed (same key and jti), even by another client
  const std::string once = proof(key, jose::Alg::ES256, with(&jose::DpopClaims::jti, "same"));
  REQUIRE(fx.token("app", cc, {once}).status == 200);
  refused(fx.token("app", cc, {once}), "jti was used before");
  refused(fx.token("jwt", cc, {once}), "jti was used before");
  // the same jti from another key is another proof
  CHECK(fx.token("app", cc, {proof(test_key("p256b"), jose::Alg::ES256, with(&jose::DpopClaims::jti, "same"))}).status == 200);
  // two proofs
  refused(fx.token("app", cc, {proof(key, jose::Alg::ES256), proof(key, jose::Alg::ES256)}), "more than one DPoP header");
  // for another server, another method, too old
  refused(fx.token("app", cc, {proof(key, jose::Alg::ES256, with(&jose::DpopClaims::htu, "https://elsewhere.test/oauth/token"))}), "htu");
  refused(fx.token("app", cc, {proof(key, jose::Alg::ES256, with(&jose::DpopClaims::htm, "GET"))}), "htm is GET");
  refused(fx.token("app", cc, {proof(key, jose::Alg::ES256, issued_at(k_now - 3600))}), "issued 3600 s ago");
  refused(fx.token("app", cc, {"not-a-jwt"}), "DPoP proof");
  // a client registered for DPoP must send one, for every grant
  refused(fx.token("must", cc), "gets DPoP-bound access tokens");
  auto must = fx.token("must", cc, {proof(key, jose::Alg::ES256)});
  REQUIRE(must.status == 200);
  CHECK(body_of(must).at("token_type") == "DPoP");
  // a wrong client secret is invalid_client first: the proof is not looked at (nor remembered)
  server::HttpRequest bad;
  bad.method = "POST";
  bad.target = "/oauth/token";
  bad.body = cc;
  const std::string kept = proof(key, jose::Alg::ES256, with(&jose::DpopClaims::jti, "kept"));
  bad.headers = {{"content-type", "application/x-www-form-urlencoded"},
                 {"authorization", "Basic " + b64_encode("app:wrong")},
                 {"dpop", kept}};
  CHECK(fx.endpoints->handle(bad).status == 401);
  CHECK(fx.token("app", cc, {kept}).status == 200);
}

TEST_CASE("serve: refresh and token exchange bind to the DPoP key of their own request", "[dpop][serve]") {
  DpopFixture fx;
  const jose::Jwk& first = test_key("p256");
  const jose::Jwk& second = test_key("ed25519");
  auto issued = fx.service->issue([] {
    tokens::IssueRequest r;
    r.client_id = "app";
    r.sub = "alice";
    r.scope = "read";
    r.with_refresh = true;
    r.cnf_jkt = "ignored-for-refresh-tokens";
    return r;
  }());
  REQUIRE(issued);
  REQUIRE(issued->refresh);
  // The refresh token itself is never bound (RFC 9449 §5: a confidential client's refresh tokens).
  CHECK_FALSE(fx.service->introspect(issued->refresh->token)->contains("cnf"));
  auto refreshed = fx.token("app", "grant_type=refresh_token&refresh_token=" + issued->refresh->token,
                            {proof(second, jose::Alg::EdDSA)});
  INFO(refreshed.body);
  REQUIRE(refreshed.status == 200);
  CHECK(body_of(refreshed).at("token_type") == "DPoP");
  auto info = fx.service->introspect(body_of(refreshed).at("access_token").get<std::string>());
  CHECK(info->at("cnf") == json{{"jkt", *second.thumbprint()}});

  // exchange: the requester's key, never the subject token's binding
  auto subject = fx.token("app", "grant_type=client_credentials&scope=read", {proof(first, jose::Alg::ES256)});
  REQUIRE(subject.status == 200);
  const std::string exchange =
      "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Atoken-exchange&subject_token=" +
      body_of(subject).at("access_token").get<std::string>() +
      "&subject_token_type=urn%3Aietf%3Aparams%3Aoauth%3Atoken-type%3Aaccess_token&audience=api-b";
  auto unbound = fx.token("app", exchange);
  INFO(unbound.body);
  REQUIRE(unbound.status == 200);
  CHECK(body_of(unbound).at("token_type") == "Bearer");
  CHECK_FALSE(fx.service->introspect(body_of(unbound).at("access_token").get<std::string>())->contains("cnf"));
  auto bound = fx.token("app", exchange, {proof(second, jose::Alg::EdDSA)});
  INFO(bound.body);
  REQUIRE(bound.status == 200);
  CHECK(body_of(bound).at("token_type") == "DPoP");
  CHECK(fx.service->introspect(body_of(bound).at("access_token").get<std::string>())->at("cnf") ==
        json{{"jkt", *second.thumbprint()}});
}

TEST_CASE("serve: /phantom takes a DPoP-bound token only with the DPoP scheme and a proof for the API request",
          "[dpop][serve]") {
  DpopFixture fx;
  const jose::Jwk& key = test_key("p256");
  auto r = fx.token("app", "grant_type=client_credentials&scope=read", {proof(key, jose::Alg::ES256)});
  REQUIRE(r.status == 200);
  const std::string token = body_of(r).at("access_token").get<std::string>();
  const std::string api = k_api;
  // What the gateway sends: the client's headers, the API request's method and URL, its own credentials.
  auto phantom = [&](const std::string& authorization, const std::vector<std::string>& proofs,
                     std::vector<std::pair<std::string, std::string>> request = {{"x-original-method", "GET"},
                                                                                 {"x-original-url", std::string(k_api) + "?q=1"}}) {
    server::HttpRequest p;
    p.method = "GET";
    p.target = "/phantom";
    p.headers = {{"authorization", authorization}, {"proxy-authorization", "Basic " + b64_encode("gw:" + fx.secret)}};
    for (const auto& x : proofs) p.headers.emplace_back("dpop", x);
    for (auto& h : request) p.headers.push_back(std::move(h));
    return fx.endpoints->handle(p);
  };
  auto api_proof = [&](const jose::Jwk& k, jose::Alg alg, const std::string& jti, const std::string& for_token) {
    jose::DpopClaims c;
    c.htm = "GET";
    c.htu = api;
    c.iat = k_now;
    c.jti = jti;
    c.access_token = for_token;
    return proof(k, alg, c);
  };
  auto refused = [&](const server::HttpResponse& a, const std::string& error, const std::string& why) {
    INFO(a.body);
    CHECK(a.status == 401);
    CHECK(body_of(a).at("error") == error);
    CHECK_THAT(body_of(a).at("error_description").get<std::string>(), Catch::Contains(why));
    std::string challenge;
    for (const auto& [k, v] : a.headers)
      if (k == "WWW-Authenticate") challenge = v;
    return challenge;
  };

  // the right proof: 200, the phantom JWT carries cnf.jkt, and nobody may cache the answer
  auto ok = phantom("DPoP " + token, {api_proof(key, jose::Alg::ES256, "p1", token)});
  INFO(ok.body);
  REQUIRE(ok.status == 200);
  std::string authorization, cache;
  for (const auto& [k, v] : ok.headers) {
    if (k == "Authorization") authorization = v;
    if (k == "Cache-Control") cache = v;
  }
  CHECK(cache == "no-store");
  REQUIRE(authorization.rfind("Bearer ", 0) == 0);
  auto jws = jose::parse_compact(authorization.substr(7));
  REQUIRE(jws);
  CHECK(json::parse(jws->payload).at("cnf") == json{{"jkt", *key.thumbprint()}});

  // as a bearer token: never, and the challenge names the DPoP scheme (RFC 9449 §7.1)
  CHECK_THAT(refused(phantom("Bearer " + token, {api_proof(key, jose::Alg::ES256, "p2", token)}), "invalid_token",
                     "send it with Authorization: DPoP"),
             Catch::StartsWith("DPoP algs=\"") && Catch::Contains("error=\"invalid_token\""));
  // the same proof again
  const std::string challenge = refused(phantom("DPoP " + token, {api_proof(key, jose::Alg::ES256, "p1", token)}),
                                        "invalid_dpop_proof", "jti was used before");
  CHECK_THAT(challenge, Catch::StartsWith("DPoP algs=\"RS256 RS384 RS512 PS256 PS384 PS512 ES256 ES384 ES512 EdDSA\", realm="));
  CHECK_THAT(challenge, Catch::Contains("error=\"invalid_dpop_proof\""));
  // another key, a proof for another token, for the token endpoint, none, two
  refused(phantom("DPoP " + token, {api_proof(test_key("p256b"), jose::Alg::ES256, "p3", token)}), "invalid_dpop_proof",
          "another key than the one the token is bound to");
  refused(phantom("DPoP " + token, {api_proof(key, jose::Alg::ES256, "p4", "another-token")}), "invalid_dpop_proof",
          "ath is not the hash");
  refused(phantom("DPoP " + token, {proof(key, jose::Alg::ES256)}), "invalid_dpop_proof", "htm is POST");
  refused(phantom("DPoP " + token, {}), "invalid_dpop_proof", "no DPoP proof");
  refused(phantom("DPoP " + token, {api_proof(key, jose::Alg::ES256, "p5", token), api_proof(key, jose::Alg::ES256, "p6", token)}),
          "invalid_dpop_proof", "more than one DPoP header");
  // the gateway must say which request the proof is for, once: else its configuration is wrong (500)
  for (const auto& gateway_says :
       {std::vector<std::pair<std::string, std::string>>{{"x-original-method", "GET"}},
        std::vector<std::pair<std::string, std::string>>{{"x-original-url", api}},
        std::vector<std::pair<std::string, std::string>>{
            {"x-original-method", "GET"}, {"x-original-url", api}, {"x-original-url", "https://evil.test/"}}}) {
    auto a = phantom("DPoP " + token, {api_proof(key, jose::Alg::ES256, "p7", token)}, gateway_says);
    INFO(a.body);
    CHECK(a.status == 500);
    CHECK(body_of(a).at("error") == "server_error");
    CHECK_THAT(body_of(a).at("error_description").get<std::string>(), Catch::Contains("X-Original-URL"));
  }
  refused(phantom("DPoP " + token, {api_proof(key, jose::Alg::ES256, "p9", token)},
                  {{"x-original-method", "POST"}, {"x-original-url", api}}),
          "invalid_dpop_proof", "htm is GET, the request is POST");
  refused(phantom("DPoP " + token, {api_proof(key, jose::Alg::ES256, "p10", token)},
                  {{"x-original-method", "GET"}, {"x-original-url", "https://api.test/orders/8"}}),
          "invalid_dpop_proof", "htu");
  // an unbound token with the DPoP scheme
  auto plain = fx.token("app", "grant_type=client_credentials&scope=read");
  const std::string bearer = body_of(plain).at("access_token").get<std::string>();
  refused(phantom("DPoP " + bearer, {api_proof(key, jose::Alg::ES256, "p11", bearer)}), "invalid_token", "not DPoP-bound");
  // and as a bearer token it gets its phantom JWT, cacheable
  auto cached = phantom("Bearer " + bearer, {});
  CHECK(cached.status == 200);
  // the proof's checks all passed and a wrong gateway secret is still 407 before any of them
  server::HttpRequest p;
  p.method = "GET";
  p.target = "/phantom";
  p.headers = {{"authorization", "DPoP " + token},
               {"proxy-authorization", "Basic " + b64_encode("gw:wrong")},
               {"dpop", api_proof(key, jose::Alg::ES256, "p12", token)},
               {"x-original-method", "GET"},
               {"x-original-url", api}};
  CHECK(fx.endpoints->handle(p).status == 407);
  p.headers[1].second = "Basic " + b64_encode("gw:" + fx.secret);
  CHECK(fx.endpoints->handle(p).status == 200);
}

TEST_CASE("policy: dpop_bound_access_tokens must be a boolean", "[dpop][policy]") {
  TempDir dir;
  write_file(dir.file("p.yaml"), "issuer: https://issuer.test\nclients:\n  a: {dpop_bound_access_tokens: maybe}\n");
  auto p = tokens::load_policy(dir.file("p.yaml"));
  REQUIRE_FALSE(p);
  CHECK_THAT(p.error().message, Catch::Contains("dpop_bound_access_tokens"));
}

TEST_CASE("verify --cnf-key checks an RFC 9449 binding (cnf.jkt) against a public or private key", "[dpop][cli]") {
  TempDir dir;
  const std::string ks = dir.file("ks");
  REQUIRE(tokctl::test::run({"--keystore", ks, "keys", "add", "--alg", "ES256", "-q"}).code == 0);
  const std::string jkt = *test_key("p256").thumbprint();
  auto sign = [&](const std::string& cnf) { return tokctl::test::sign_with_cnf(ks, cnf); };
  write_file(dir.file("public.pem"), std::string(tokctl::test::test_key_public_pem("p256")));
  write_file(dir.file("private.jwk"), std::string(tokctl::test::test_key_json("p256")));
  write_file(dir.file("other.pem"), std::string(tokctl::test::test_key_public_pem("p256b")));
  write_file(dir.file("secret.jwk"), std::string(tokctl::test::test_key_json("hs256")));
  ::chmod(dir.file("private.jwk").c_str(), 0600);
  ::chmod(dir.file("secret.jwk").c_str(), 0600);
  const std::string bound = sign(json{{"jkt", jkt}}.dump());
  auto verify = [&](const std::string& token, const std::string& key) {
    return tokctl::test::run({"--keystore", ks, "-o", "json", "verify", token, "--cnf-key", key});
  };
  CHECK(verify(bound, dir.file("public.pem")).code == 0);
  CHECK(verify(bound, dir.file("private.jwk")).code == 0);
  auto other = verify(bound, dir.file("other.pem"));
  CHECK(other.code == 1);
  auto doc = json::parse(other.out);
  CHECK(doc.at("errors").at(0).at("code") == "cnf_mismatch");
  CHECK_THAT(doc.at("errors").at(0).at("message").get<std::string>(), Catch::Contains(jkt));
  auto unbound = verify(sign(""), dir.file("public.pem"));
  CHECK(unbound.code == 1);
  CHECK_THAT(unbound.out, Catch::Contains("not bound to a DPoP key"));
  CHECK(verify(sign(R"({"x5t#S256":"x"})"), dir.file("public.pem")).code == 1);  // another kind of binding
  // A cnf of the wrong type is named as such, not as "no binding".
  for (const std::string& cnf : {std::string(R"("a string")"), std::string(R"({"jkt":5})"), std::string(R"({"jkt":["x"]})")}) {
    INFO(cnf);
    auto typed = verify(sign(cnf), dir.file("public.pem"));
    CHECK(typed.code != 0);
    auto d = json::parse(typed.out);
    CHECK(d.at("errors").at(0).at("code") == "bad_claim_type");
    CHECK_THAT(d.at("errors").at(0).at("message").get<std::string>(), Catch::Contains("cnf"));
  }
  auto secret = verify(bound, dir.file("secret.jwk"));
  CHECK(secret.code == 2);
  CHECK_THAT(secret.err, Catch::Contains("--cnf-key"));
  CHECK(verify(bound, dir.file("missing.pem")).code != 0);
  std::filesystem::create_directory(dir.file("a-dir"));
  REQUIRE(::mkfifo(dir.file("a-fifo").c_str(), 0600) == 0);
  for (const std::string& odd : {dir.file("a-dir"), dir.file("a-fifo"), std::string("/dev/zero")}) {
    INFO(odd);
    auto r = verify(bound, odd);
    CHECK(r.code == 2);
    CHECK_THAT(r.err, Catch::Contains("--cnf-key") && Catch::Contains("not a regular file"));
  }
  write_file(dir.file("empty"), "");
  write_file(dir.file("big"), std::string(2 * 1024 * 1024, 'A'));
  write_file(dir.file("two.jwks"), json{{"keys", {public_jwk(test_key("p256")), public_jwk(test_key("p256b"))}}}.dump());
  for (const char* bad : {"empty", "big", "two.jwks"}) {
    INFO(bad);
    auto r = verify(bound, dir.file(bad));
    CHECK((r.code == 2 || r.code == 3));
    CHECK_THAT(r.err, Catch::Contains("--cnf-key"));
  }
  // Without --cnf-key the binding is not checked (the resource server checks the proof).
  CHECK(tokctl::test::run({"--keystore", ks, "verify", bound, "-q"}).code == 0);
}

TEST_CASE("DpopNonces: good in their minute and the next, only from the process that made them", "[dpop][replay]") {
  server::DpopNonces nonces;
  const std::string n = nonces.current(k_now);
  CHECK(n == nonces.current(k_now + 59 - k_now % 60));  // one per minute
  CHECK(nonces.valid(n, k_now));
  CHECK(nonces.valid(n, k_now + 60));
  CHECK_FALSE(nonces.valid(n, k_now + 120));
  CHECK_FALSE(nonces.valid(n, k_now - 60));  // not from the future either
  CHECK_FALSE(server::DpopNonces().valid(n, k_now));
  std::string tampered = n;
  tampered.back() = tampered.back() == 'A' ? 'B' : 'A';
  CHECK_FALSE(nonces.valid(tampered, k_now));
  for (const char* bad : {"", "x", "not base64url!", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}) CHECK_FALSE(nonces.valid(bad, k_now));
}

TEST_CASE("serve --dpop-nonce: proofs must carry the server's nonce (RFC 9449 §8)", "[dpop][serve]") {
  server::EndpointOptions options;
  options.dpop_nonce = true;
  DpopFixture fx(options);
  const jose::Jwk& key = test_key("p256");
  const std::string cc = "grant_type=client_credentials&scope=read";
  auto nonce_of = [](const server::HttpResponse& r) {
    for (const auto& [k, v] : r.headers)
      if (k == "DPoP-Nonce") return v;
    return std::string();
  };
  auto with_nonce = [&](const std::string& nonce, UnixTime iat = k_now) {
    jose::DpopClaims c;
    c.iat = iat;
    c.nonce = nonce;
    return proof(key, jose::Alg::ES256, c);
  };
  // no nonce: 400 use_dpop_nonce, with the nonce to use, and no token
  auto first = fx.token("app", cc, {proof(key, jose::Alg::ES256)});
  INFO(first.body);
  CHECK(first.status == 400);
  CHECK(body_of(first).at("error") == "use_dpop_nonce");
  CHECK_FALSE(body_of(first).contains("access_token"));
  const std::string nonce = nonce_of(first);
  REQUIRE_FALSE(nonce.empty());
  // with it: the token, and the nonce again
  auto second = fx.token("app", cc, {with_nonce(nonce)});
  INFO(second.body);
  REQUIRE(second.status == 200);
  CHECK(body_of(second).at("token_type") == "DPoP");
  CHECK(nonce_of(second) == nonce);
  // a nonce of another process, or made up, or not a string
  CHECK(body_of(fx.token("app", cc, {with_nonce(server::DpopNonces().current(k_now))})).at("error") == "use_dpop_nonce");
  CHECK(body_of(fx.token("app", cc, {with_nonce("made-up")})).at("error") == "use_dpop_nonce");
  json header{{"typ", "dpop+jwt"}, {"jwk", public_jwk(key)}};
  json claims{{"jti", "n1"}, {"htm", "POST"}, {"htu", k_endpoint}, {"iat", k_now}, {"nonce", 7}};
  auto typed = fx.token("app", cc, {raw_proof(header, claims, key, jose::Alg::ES256)});
  CHECK(body_of(typed).at("error") == "invalid_dpop_proof");
  // two minutes on, the nonce is stale: a new one comes with the refusal
  fx.clock.set(k_now + 120);
  auto stale = fx.token("app", cc, {with_nonce(nonce, k_now + 120)});
  CHECK(body_of(stale).at("error") == "use_dpop_nonce");
  CHECK(nonce_of(stale) != nonce);
  CHECK(fx.token("app", cc, {with_nonce(nonce_of(stale), k_now + 120)}).status == 200);
  // without DPoP nothing changes: a Bearer token, no nonce
  auto plain = fx.token("app", cc);
  CHECK(plain.status == 200);
  CHECK(nonce_of(plain).empty());
}
