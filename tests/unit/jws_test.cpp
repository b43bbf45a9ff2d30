// JWS compact serialization: signing, parsing with limits, crit, and signature verification for
// every algorithm (tokctl/jose/jws.hpp, tokctl/jose/algorithm.hpp).

#include <tokctl/jose/jws.hpp>

#include <tokctl/jose/algorithm.hpp>
#include <tokctl/util/base64.hpp>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>
#include <openssl/bn.h>
#include <openssl/ecdsa.h>
#include <openssl/evp.h>

#include <string>
#include <string_view>
#include <tuple>
#include <vector>

#include "support/keys.hpp"

using nlohmann::json;
using tokctl::b64url_decode;
using tokctl::b64url_encode;
using tokctl::ErrorCode;
using tokctl::jose::Alg;
using tokctl::jose::CompactJws;
using tokctl::jose::Jwk;
using tokctl::jose::SignatureVerifier;
using tokctl::test::test_key;
namespace jose = tokctl::jose;

namespace {

struct AlgCase {
  Alg alg;
  const char* key;
  std::size_t sig_bytes;
};

// One key per algorithm; EdDSA twice (both curves).
const AlgCase k_alg_cases[] = {
    {Alg::HS256, "hs256", 32},   {Alg::HS384, "hs384", 48},   {Alg::HS512, "hs512", 64},
    {Alg::RS256, "rsa2048", 256}, {Alg::RS384, "rsa2048", 256}, {Alg::RS512, "rsa2048", 256},
    {Alg::PS256, "rsa2048", 256}, {Alg::PS384, "rsa2048", 256}, {Alg::PS512, "rsa2048", 256},
    {Alg::ES256, "p256", 64},    {Alg::ES384, "p384", 96},    {Alg::ES512, "p521", 132},
    {Alg::EdDSA, "ed25519", 64}, {Alg::EdDSA, "ed448", 114},
};

// The key that verifies: the public half, or the secret itself.
Jwk verify_key(const char* name) {
  const Jwk& k = test_key(name);
  if (k.kty() == jose::KeyType::oct) return k;
  auto pub = k.to_public();
  REQUIRE(pub.has_value());
  return *pub;
}

std::string signed_token(const json& header, std::string_view payload, Alg alg, const char* key) {
  auto t = jose::sign_compact(header, payload, alg, test_key(key));
  INFO(jose::to_string(alg) << " with " << key << (t ? "" : " -> " + t.error().message));
  REQUIRE(t.has_value());
  return *t;
}

CompactJws parsed(std::string_view token, const jose::ParseLimits& limits = {}) {
  auto p = jose::parse_compact(token, limits);
  INFO(token.substr(0, 120) << (p ? "" : " -> " + p.error().message));
  REQUIRE(p.has_value());
  return *p;
}

tokctl::Error parse_error(std::string_view token, const jose::ParseLimits& limits = {}) {
  auto p = jose::parse_compact(token, limits);
  INFO(token.substr(0, 120));
  REQUIRE_FALSE(p.has_value());
  CHECK(p.error().code == ErrorCode::malformed);
  return p.error();
}

std::string seg(std::string_view json_text) { return b64url_encode(json_text); }

bool verifies(Alg alg, const Jwk& key, std::string_view token) {
  auto p = jose::parse_compact(token);
  if (!p) return false;
  auto v = SignatureVerifier::create(alg, key);
  REQUIRE(v.has_value());
  return v->verify(p->signing_input(), p->signature);
}

std::string flip_bit(std::string s, std::size_t byte, int bit = 0) {
  s[byte] = static_cast<char>(s[byte] ^ (1 << bit));
  return s;
}

}  // namespace

// ---- sign and verify ---------------------------------------------------------------------------

TEST_CASE("sign_compact output parses and verifies for every algorithm", "[jws]") {
  for (const auto& c : k_alg_cases) {
    INFO(jose::to_string(c.alg) << " with " << c.key);
    const std::string payload = R"({"sub":"alice","n":1})";
    const std::string token = signed_token(json{{"typ", "JWT"}, {"kid", "k1"}}, payload, c.alg, c.key);
    CompactJws jws = parsed(token);
    CHECK(jws.alg == jose::to_string(c.alg));
    CHECK(jws.kid == "k1");
    CHECK(jws.header["typ"] == "JWT");
    CHECK(jws.payload == payload);
    CHECK(jws.signature.size() == c.sig_bytes);
    CHECK(jws.signing_input() + "." + jws.signature_b64 == token);

    auto v = SignatureVerifier::create(c.alg, verify_key(c.key));
    REQUIRE(v.has_value());
    CHECK(v->alg() == c.alg);
    CHECK(v->verify(jws.signing_input(), jws.signature));
  }
}

TEST_CASE("a flipped bit in the signature fails verification for every algorithm", "[jws]") {
  for (const auto& c : k_alg_cases) {
    INFO(jose::to_string(c.alg) << " with " << c.key);
    CompactJws jws = parsed(signed_token(json::object(), "hello", c.alg, c.key));
    auto v = SignatureVerifier::create(c.alg, verify_key(c.key));
    REQUIRE(v.has_value());
    CHECK_FALSE(v->verify(jws.signing_input(), flip_bit(jws.signature, 0)));
    CHECK_FALSE(v->verify(jws.signing_input(), flip_bit(jws.signature, jws.signature.size() - 1, 7)));
    CHECK_FALSE(v->verify(jws.signing_input(), flip_bit(jws.signature, jws.signature.size() / 2, 3)));
    // The untouched signature still verifies after failures (contexts are reused).
    CHECK(v->verify(jws.signing_input(), jws.signature));
  }
}

TEST_CASE("a flipped bit in the signing input fails verification for every algorithm", "[jws]") {
  for (const auto& c : k_alg_cases) {
    INFO(jose::to_string(c.alg) << " with " << c.key);
    CompactJws jws = parsed(signed_token(json::object(), "hello", c.alg, c.key));
    auto v = SignatureVerifier::create(c.alg, verify_key(c.key));
    REQUIRE(v.has_value());
    const std::string input = jws.signing_input();
    CHECK_FALSE(v->verify(flip_bit(input, input.size() - 1), jws.signature));
    CHECK_FALSE(v->verify(flip_bit(input, 0), jws.signature));
    CHECK_FALSE(v->verify(input + "x", jws.signature));
  }
}

TEST_CASE("a truncated or extended signature fails verification", "[jws]") {
  for (const auto& c : k_alg_cases) {
    INFO(jose::to_string(c.alg) << " with " << c.key);
    CompactJws jws = parsed(signed_token(json::object(), "hello", c.alg, c.key));
    auto v = SignatureVerifier::create(c.alg, verify_key(c.key));
    REQUIRE(v.has_value());
    CHECK_FALSE(v->verify(jws.signing_input(), jws.signature.substr(0, jws.signature.size() - 1)));
    CHECK_FALSE(v->verify(jws.signing_input(), jws.signature + '\0'));
    CHECK_FALSE(v->verify(jws.signing_input(), ""));
  }
}

TEST_CASE("a signature from a different key of the same type fails", "[jws]") {
  const std::string es = signed_token(json::object(), "x", Alg::ES256, "p256b");
  CHECK_FALSE(verifies(Alg::ES256, verify_key("p256"), es));
  CHECK(verifies(Alg::ES256, verify_key("p256b"), es));
  const std::string rs = signed_token(json::object(), "x", Alg::RS256, "rsa2048b");
  CHECK_FALSE(verifies(Alg::RS256, verify_key("rsa2048"), rs));
}

TEST_CASE("RS and PS signatures do not verify as each other", "[jws]") {
  const std::string rs = signed_token(json::object(), "x", Alg::RS256, "rsa2048");
  const std::string ps = signed_token(json::object(), "x", Alg::PS256, "rsa2048");
  auto rs_jws = parsed(rs), ps_jws = parsed(ps);
  auto as_ps = SignatureVerifier::create(Alg::PS256, verify_key("rsa2048"));
  auto as_rs = SignatureVerifier::create(Alg::RS256, verify_key("rsa2048"));
  REQUIRE(as_ps.has_value());
  REQUIRE(as_rs.has_value());
  CHECK_FALSE(as_ps->verify(rs_jws.signing_input(), rs_jws.signature));
  CHECK_FALSE(as_rs->verify(ps_jws.signing_input(), ps_jws.signature));
  auto as_rs512 = SignatureVerifier::create(Alg::RS512, verify_key("rsa2048"));
  REQUIRE(as_rs512.has_value());
  CHECK_FALSE(as_rs512->verify(rs_jws.signing_input(), rs_jws.signature));
}

TEST_CASE("HMAC and EdDSA signatures are deterministic, PS and ES are randomised", "[jws]") {
  auto twice = [](Alg alg, const char* key) {
    return std::pair{signed_token(json::object(), "same", alg, key),
                     signed_token(json::object(), "same", alg, key)};
  };
  auto [h1, h2] = twice(Alg::HS256, "hs256");
  CHECK(h1 == h2);
  auto [e1, e2] = twice(Alg::EdDSA, "ed25519");
  CHECK(e1 == e2);
  auto [r1, r2] = twice(Alg::RS256, "rsa2048");
  CHECK(r1 == r2);
  auto [p1, p2] = twice(Alg::PS256, "rsa2048");
  CHECK(p1 != p2);
  auto [s1, s2] = twice(Alg::ES256, "p256");
  CHECK(s1 != s2);
  CHECK(verifies(Alg::PS256, verify_key("rsa2048"), p2));
  CHECK(verifies(Alg::ES256, verify_key("p256"), s2));
}

TEST_CASE("a SignatureVerifier verifies many inputs in a row", "[jws]") {
  for (const auto& c : k_alg_cases) {
    INFO(jose::to_string(c.alg) << " with " << c.key);
    auto v = SignatureVerifier::create(c.alg, verify_key(c.key));
    REQUIRE(v.has_value());
    for (int i = 0; i < 3; ++i) {
      CompactJws jws = parsed(signed_token(json::object(), "msg " + std::to_string(i), c.alg, c.key));
      CHECK(v->verify(jws.signing_input(), jws.signature));
      CHECK_FALSE(v->verify(jws.signing_input() + "!", jws.signature));
    }
  }
}

TEST_CASE("SignatureVerifier copies and moves verify independently", "[jws]") {
  for (const auto& c : {k_alg_cases[0], k_alg_cases[9], k_alg_cases[12], k_alg_cases[3]}) {
    INFO(jose::to_string(c.alg));
    CompactJws jws = parsed(signed_token(json::object(), "payload", c.alg, c.key));
    auto v = SignatureVerifier::create(c.alg, verify_key(c.key));
    REQUIRE(v.has_value());
    CHECK(v->verify(jws.signing_input(), jws.signature));  // builds its cache
    SignatureVerifier copy = *v;
    CHECK(copy.verify(jws.signing_input(), jws.signature));
    CHECK_FALSE(v->verify("other", jws.signature));
    CHECK(copy.verify(jws.signing_input(), jws.signature));
    CHECK(v->verify(jws.signing_input(), jws.signature));
    SignatureVerifier assigned = *SignatureVerifier::create(Alg::HS512, test_key("hs512"));
    assigned = copy;
    CHECK(assigned.alg() == c.alg);
    CHECK(assigned.verify(jws.signing_input(), jws.signature));
    SignatureVerifier moved = std::move(*v);
    CHECK(moved.verify(jws.signing_input(), jws.signature));
  }
}

TEST_CASE("a private key verifies its own signatures", "[jws]") {
  const std::string t = signed_token(json::object(), "x", Alg::ES384, "p384");
  CHECK(verifies(Alg::ES384, test_key("p384"), t));
}

TEST_CASE("sign_compact sets alg from its argument over any header value", "[jws]") {
  CompactJws jws = parsed(signed_token(json{{"alg", "none"}}, "x", Alg::HS256, "hs256"));
  CHECK(jws.alg == "HS256");
  CHECK(jws.header.size() == 1);
}

TEST_CASE("sign_compact signs arbitrary payload bytes", "[jws]") {
  const std::string binary("\x00\xff\x01not json\n", 12);
  CompactJws jws = parsed(signed_token(json::object(), binary, Alg::EdDSA, "ed25519"));
  CHECK(jws.payload == binary);
  CompactJws empty = parsed(signed_token(json::object(), "", Alg::HS256, "hs256"));
  CHECK(empty.payload.empty());
  CHECK(empty.payload_b64.empty());
}

TEST_CASE("sign_compact refuses keys that cannot sign with the alg", "[jws]") {
  auto public_only = jose::sign_compact(json::object(), "x", Alg::ES256, verify_key("p256"));
  REQUIRE_FALSE(public_only.has_value());
  CHECK(public_only.error().code == ErrorCode::usage);
  CHECK_THAT(public_only.error().message, Catch::Contains("private key"));

  auto wrong_curve = jose::sign_compact(json::object(), "x", Alg::ES256, test_key("p384"));
  REQUIRE_FALSE(wrong_curve.has_value());
  CHECK(wrong_curve.error().code == ErrorCode::usage);

  auto wrong_type = jose::sign_compact(json::object(), "x", Alg::ES256, test_key("rsa2048"));
  REQUIRE_FALSE(wrong_type.has_value());
  CHECK_THAT(wrong_type.error().hint, Catch::Contains("ES256") && Catch::Contains("RSA"));

  auto short_secret = jose::sign_compact(json::object(), "x", Alg::HS384, test_key("hs256"));
  REQUIRE_FALSE(short_secret.has_value());
  CHECK(short_secret.error().code == ErrorCode::usage);

  auto x25519 = jose::sign_compact(json::object(), "x", Alg::EdDSA, test_key("x25519"));
  REQUIRE_FALSE(x25519.has_value());
  CHECK(x25519.error().code == ErrorCode::usage);

  Jwk pinned = test_key("p256");
  pinned.set_alg("ES384");
  auto mismatch = jose::sign_compact(json::object(), "x", Alg::ES256, pinned);
  REQUIRE_FALSE(mismatch.has_value());
  CHECK_THAT(mismatch.error().message, Catch::Contains("pinned to ES384"));
}

TEST_CASE("SignatureVerifier::create refuses keys of the wrong type with invalid_token", "[jws]") {
  auto v = SignatureVerifier::create(Alg::ES256, verify_key("ed25519"));
  REQUIRE_FALSE(v.has_value());
  CHECK(v.error().code == ErrorCode::invalid_token);
  CHECK_THAT(v.error().hint, Catch::Contains("the token is ES256"));
}

// ---- sign_compact_raw --------------------------------------------------------------------------

TEST_CASE("sign_compact_raw keeps the header bytes exactly", "[jws]") {
  const std::string header = "{\"typ\":\"JWT\",\r\n \"alg\":\"HS256\"}";
  auto token = jose::sign_compact_raw(header, "payload", Alg::HS256, test_key("hs256"));
  REQUIRE(token.has_value());
  CompactJws jws = parsed(*token);
  CHECK(jws.header_b64 == b64url_encode(header));
  CHECK(*b64url_decode(jws.header_b64) == header);
  CHECK(jws.header["typ"] == "JWT");
  CHECK(verifies(Alg::HS256, test_key("hs256"), *token));
}

TEST_CASE("sign_compact_raw and sign_compact agree on a canonical header", "[jws]") {
  json header{{"alg", "EdDSA"}, {"kid", "x"}};
  auto raw = jose::sign_compact_raw(header.dump(), "p", Alg::EdDSA, test_key("ed25519"));
  REQUIRE(raw.has_value());
  CHECK(*raw == signed_token(header, "p", Alg::EdDSA, "ed25519"));
}

TEST_CASE("sign_compact_raw requires a JSON object header whose alg matches", "[jws]") {
  auto wrong = jose::sign_compact_raw(R"({"alg":"HS384"})", "p", Alg::HS256, test_key("hs256"));
  REQUIRE_FALSE(wrong.has_value());
  CHECK(wrong.error().code == ErrorCode::usage);
  auto missing = jose::sign_compact_raw(R"({"typ":"JWT"})", "p", Alg::HS256, test_key("hs256"));
  REQUIRE_FALSE(missing.has_value());
  CHECK(missing.error().code == ErrorCode::usage);
  auto not_json = jose::sign_compact_raw("{alg:HS256}", "p", Alg::HS256, test_key("hs256"));
  REQUIRE_FALSE(not_json.has_value());
  CHECK(not_json.error().code == ErrorCode::malformed);
  auto dup = jose::sign_compact_raw(R"({"alg":"HS256","alg":"HS256"})", "p", Alg::HS256, test_key("hs256"));
  REQUIRE_FALSE(dup.has_value());
}

// ---- parse_compact -----------------------------------------------------------------------------

TEST_CASE("parse_compact splits and decodes the three segments", "[jws]") {
  const std::string token = seg(R"({"alg":"ES256","kid":"k7"})") + "." + seg("hi") + "." + b64url_encode("sig");
  CompactJws jws = parsed(token);
  CHECK(jws.header_b64 == seg(R"({"alg":"ES256","kid":"k7"})"));
  CHECK(jws.payload_b64 == seg("hi"));
  CHECK(jws.signature_b64 == b64url_encode("sig"));
  CHECK(jws.alg == "ES256");
  CHECK(jws.kid == "k7");
  CHECK(jws.payload == "hi");
  CHECK(jws.signature == "sig");
}

TEST_CASE("parse_compact reuses a repeated header's parse only for the same text and limits", "[jws]") {
  // Batch paths parse one header many times; the last accepted parse is reused per thread. Any
  // difference in the header text or the limits must parse again, and errors elsewhere in the
  // token must still be found.
  const std::string h1 = seg(R"({"alg":"ES256","kid":"k1","x":{"y":[1]}})");
  const std::string h2 = seg(R"({"alg":"HS256","kid":"k2"})");
  const std::string sig = b64url_encode("sig");
  for (int round = 0; round < 2; ++round) {
    CompactJws a = parsed(h1 + "." + seg("one") + "." + sig);
    CHECK(a.alg == "ES256");
    CHECK(a.kid == "k1");
    CHECK(a.header.at("x").at("y")[0] == 1);
    CHECK(a.payload == "one");
    CompactJws again = parsed(h1 + "." + seg("two") + "." + sig);
    CHECK(again.header == a.header);
    CHECK(again.kid == "k1");
    CHECK(again.payload == "two");
    CompactJws b = parsed(h2 + "." + seg("three") + "." + sig);
    CHECK(b.alg == "HS256");
    CHECK(b.kid == "k2");
    CHECK_FALSE(b.header.contains("x"));
  }
  parsed(h1 + "." + seg("one") + "." + sig);  // h1 is the last accepted header now
  // The same header under limits it breaks: parsed again, and refused.
  jose::ParseLimits shallow;
  shallow.json.max_depth = 2;
  auto deep = jose::parse_compact(h1 + "." + seg("one") + "." + sig, shallow);
  REQUIRE_FALSE(deep);
  CHECK_THAT(deep.error().message, Catch::Contains("nesting deeper than 2"));
  jose::ParseLimits tiny;
  tiny.json.max_bytes = 10;
  CHECK_FALSE(jose::parse_compact(h1 + "." + seg("one") + "." + sig, tiny));
  // A known header does not excuse a broken payload or signature.
  parsed(h1 + "." + seg("one") + "." + sig);
  CHECK_THAT(parse_error(h1 + ".!!." + sig).message, Catch::StartsWith("payload"));
  CHECK_THAT(parse_error(h1 + "." + seg("one") + ".!!").message, Catch::StartsWith("signature"));
  // A header one character away is a different header.
  const std::string h1_dup = seg(R"({"alg":"ES256","kid":"k1","kid":"k1"})");
  CHECK_THAT(parse_error(h1_dup + "." + seg("one") + "." + sig).message, Catch::Contains("duplicate"));
}

TEST_CASE("parse_compact accepts alg none, unknown algs and empty payload or signature", "[jws]") {
  CHECK(parsed(seg(R"({"alg":"none"})") + "." + seg("{}") + ".").alg == "none");
  CHECK(parsed(seg(R"({"alg":"XS999"})") + ".." + b64url_encode("s")).alg == "XS999");
  CHECK(parsed(seg(R"({"alg":"HS256"})") + "..").kid.empty());
}

TEST_CASE("parse_compact rejects the wrong number of segments", "[jws]") {
  const std::string h = seg(R"({"alg":"HS256"})");
  auto one = parse_error("opaque-token-value");
  CHECK_THAT(one.message, Catch::Contains("this has 1"));
  CHECK_THAT(one.hint, Catch::Contains("opaque"));
  CHECK_THAT(parse_error(h + "." + seg("{}")).message, Catch::Contains("3 dot-separated segments, this has 2"));
  CHECK_THAT(parse_error(h + "." + seg("{}") + ".c.d").message, Catch::Contains("this has 4"));
  CHECK_THAT(parse_error(h + ".a.b.c.d.e").message, Catch::Contains("this has 6"));
}

TEST_CASE("parse_compact says a five-segment token is a JWE", "[jws]") {
  auto e = parse_error(seg(R"({"alg":"RSA-OAEP","enc":"A256GCM"})") + ".a.b.c.d");
  CHECK_THAT(e.message, Catch::Contains("JWE"));
  CHECK_THAT(e.hint, Catch::Contains("decrypt"));
}

TEST_CASE("parse_compact rejects an empty token or header segment", "[jws]") {
  CHECK_THAT(parse_error("").message, Catch::Contains("empty"));
  CHECK_THAT(parse_error("." + seg("{}") + ".c2ln").message, Catch::Contains("header segment is empty"));
  parse_error("..");
}

TEST_CASE("parse_compact rejects a header without a string alg", "[jws]") {
  CHECK_THAT(parse_error(seg(R"({"typ":"JWT"})") + ".e30.").message, Catch::Contains("\"alg\""));
  CHECK_THAT(parse_error(seg(R"({"alg":256})") + ".e30.").message, Catch::Contains("\"alg\""));
  parse_error(seg(R"({"alg":null})") + ".e30.");
  parse_error(seg(R"({"alg":["HS256"]})") + ".e30.");
}

TEST_CASE("parse_compact rejects a non-string kid", "[jws]") {
  for (const char* header : {R"({"alg":"HS256","kid":1})", R"({"alg":"HS256","kid":null})",
                             R"({"alg":"HS256","kid":["a"]})"}) {
    INFO(header);
    CHECK_THAT(parse_error(seg(header) + ".e30.").message, Catch::Contains("\"kid\" must be a string"));
  }
}

TEST_CASE("parse_compact rejects headers that are not strict JSON objects", "[jws]") {
  for (const char* header : {R"(["alg","HS256"])", R"("HS256")", R"({"alg":"HS256",})",
                             R"({"alg":"HS256","alg":"none"})", "{\"alg\":\"HS256\"} x", ""}) {
    INFO(header);
    auto e = parse_error(seg(header) + ".e30.c2ln");
    CHECK_THAT(e.message, Catch::Contains("header"));
  }
}

TEST_CASE("parse_compact names the segment with bad base64url", "[jws]") {
  const std::string h = seg(R"({"alg":"HS256"})");
  CHECK_THAT(parse_error(h + "=.e30.c2ln").message, Catch::StartsWith("header:"));
  CHECK_THAT(parse_error(h + ".e30=.c2ln").message, Catch::StartsWith("payload:"));
  CHECK_THAT(parse_error(h + ".e30.c2ln+").message, Catch::StartsWith("signature:"));
  CHECK_THAT(parse_error(h + ".e30.c2l/").message, Catch::StartsWith("signature:"));
  CHECK_THAT(parse_error(h + ".e30.QR").message, Catch::Contains("non-canonical"));
  CHECK_THAT(parse_error(h + " .e30.c2ln").message, Catch::StartsWith("header:"));
}

TEST_CASE("parse_compact enforces the token size limit", "[jws]") {
  const std::string token = seg(R"({"alg":"HS256"})") + "." + seg(std::string(200, 'x')) + ".c2ln";
  jose::ParseLimits limits;
  limits.max_token_bytes = token.size();
  CHECK(parsed(token, limits).payload.size() == 200);
  limits.max_token_bytes = token.size() - 1;
  CHECK_THAT(parse_error(token, limits).message, Catch::Contains("over the"));
}

TEST_CASE("parse_compact has a 64 KiB default size limit", "[jws]") {
  CHECK(jose::k_max_token_bytes == 64 * 1024);
  const std::string h = seg(R"({"alg":"HS256"})") + ".";
  const std::string fits = h + std::string(64 * 1024 - h.size() - 1, 'A') + ".";
  CHECK(fits.size() == 64 * 1024);
  CHECK(parsed(fits).alg == "HS256");
  CHECK_THAT(parse_error(fits + "A").message, Catch::Contains("65537 bytes"));
}

TEST_CASE("parse_compact applies the JSON limits to the header", "[jws]") {
  jose::ParseLimits limits;
  limits.json.max_depth = 2;
  const std::string deep = seg(R"({"alg":"HS256","x":[[1]]})") + ".e30.";
  parse_error(deep, limits);
  CHECK(parsed(deep).alg == "HS256");
}

// ---- check_crit --------------------------------------------------------------------------------

TEST_CASE("check_crit accepts a header without crit", "[jws][crit]") {
  CHECK(jose::check_crit(json{{"alg", "HS256"}}).has_value());
}

TEST_CASE("check_crit rejects a crit that is not a non-empty array of strings", "[jws][crit]") {
  for (const json& crit : {json("exp"), json::array(), json{1}, json::object(), json(nullptr)}) {
    INFO(crit.dump());
    auto r = jose::check_crit(json{{"alg", "HS256"}, {"crit", crit}});
    REQUIRE_FALSE(r.has_value());
    CHECK(r.error().code == ErrorCode::invalid_token);
  }
}

TEST_CASE("check_crit rejects registered header names", "[jws][crit]") {
  for (const char* name : {"alg", "kid", "typ", "jwk", "x5c", "crit"}) {
    INFO(name);
    auto r = jose::check_crit(json{{"alg", "HS256"}, {"kid", "k"}, {"typ", "JWT"}, {"crit", {name}}});
    REQUIRE_FALSE(r.has_value());
    CHECK_THAT(r.error().message, Catch::Contains("registered"));
  }
}

TEST_CASE("check_crit rejects names missing from the header", "[jws][crit]") {
  auto r = jose::check_crit(json{{"alg", "HS256"}, {"crit", {"exp"}}});
  REQUIRE_FALSE(r.has_value());
  CHECK(r.error().code == ErrorCode::invalid_token);
  CHECK_THAT(r.error().message, Catch::Contains("lacks"));
}

TEST_CASE("check_crit rejects extensions it does not implement", "[jws][crit]") {
  auto r = jose::check_crit(json{{"alg", "HS256"}, {"exp", 1}, {"crit", {"exp"}}});
  REQUIRE_FALSE(r.has_value());
  CHECK(r.error().code == ErrorCode::invalid_token);
  CHECK_THAT(r.error().message, Catch::Contains("unsupported extension \"exp\""));
  CHECK_THAT(r.error().hint, Catch::Contains("RFC 7515"));
  auto b64 = jose::check_crit(json{{"alg", "HS256"}, {"b64", false}, {"crit", {"b64"}}});
  REQUIRE_FALSE(b64.has_value());
}

// ---- algorithm names ---------------------------------------------------------------------------

TEST_CASE("alg names round-trip and none is not an alg", "[jws][alg]") {
  for (Alg a : jose::k_all_algs) {
    INFO(jose::to_string(a));
    CHECK(jose::alg_from_string(jose::to_string(a)) == a);
  }
  CHECK_FALSE(jose::alg_from_string("none").has_value());
  CHECK_FALSE(jose::alg_from_string("hs256").has_value());
  CHECK_FALSE(jose::alg_from_string("").has_value());
  CHECK_FALSE(jose::alg_from_string("HS256 ").has_value());
  CHECK(jose::supported_alg_names() ==
        "HS256, HS384, HS512, RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384, ES512, EdDSA");
}

TEST_CASE("is_symmetric and key_type_for classify algs", "[jws][alg]") {
  CHECK(jose::is_symmetric(Alg::HS384));
  CHECK_FALSE(jose::is_symmetric(Alg::RS256));
  CHECK(jose::key_type_for(Alg::HS512) == jose::KeyType::oct);
  CHECK(jose::key_type_for(Alg::PS256) == jose::KeyType::rsa);
  CHECK(jose::key_type_for(Alg::ES512) == jose::KeyType::ec);
  CHECK(jose::key_type_for(Alg::EdDSA) == jose::KeyType::okp);
}

TEST_CASE("check_key honours use and key_ops", "[jws][alg]") {
  Jwk enc = test_key("p256");
  enc.set_use("enc");
  CHECK_FALSE(jose::check_key(Alg::ES256, enc, jose::KeyRole::sign).has_value());
  Jwk verify_only = test_key("p256");
  verify_only.set_key_ops({"verify"});
  CHECK(jose::check_key(Alg::ES256, verify_only, jose::KeyRole::verify).has_value());
  auto sign = jose::check_key(Alg::ES256, verify_only, jose::KeyRole::sign);
  REQUIRE_FALSE(sign.has_value());
  CHECK(sign.error().code == ErrorCode::usage);
  Jwk sig = test_key("p256");
  sig.set_use("sig");
  sig.set_alg("ES256");
  CHECK(jose::check_key(Alg::ES256, sig, jose::KeyRole::sign).has_value());
}

TEST_CASE("ES256/384/512 signatures are exact r||s, also when r or s is shorter than the curve",
          "[jws][alg]") {
  // The signer reads OpenSSL's DER signature in place: each one is checked against OpenSSL's own
  // verifier, fed DER built by OpenSSL from the raw halves (independent of tokctl's encoder).
  // About 1 in 128 signatures has an r or s with a leading zero byte, which DER drops.
  int short_halves = 0;
  for (auto [alg, key, n] : {std::tuple{Alg::ES256, "p256", 32}, {Alg::ES384, "p384", 48}, {Alg::ES512, "p521", 66}}) {
    INFO(jose::to_string(alg));
    auto signer = jose::Signer::create(alg, test_key(key));
    REQUIRE(signer);
    EVP_PKEY* pub = test_key(key).pkey();
    const EVP_MD* md = alg == Alg::ES256 ? EVP_sha256() : alg == Alg::ES384 ? EVP_sha384() : EVP_sha512();
    for (int i = 0; i < 600; ++i) {
      const std::string input = "input " + std::to_string(i);
      auto sig = signer->sign(input);
      REQUIRE(sig);
      REQUIRE(sig->size() == static_cast<std::size_t>(2 * n));
      const auto* raw = reinterpret_cast<const unsigned char*>(sig->data());
      if (raw[0] == 0 || raw[n] == 0) ++short_halves;
      ECDSA_SIG* es = ECDSA_SIG_new();
      REQUIRE(ECDSA_SIG_set0(es, BN_bin2bn(raw, n, nullptr), BN_bin2bn(raw + n, n, nullptr)) == 1);
      unsigned char* der = nullptr;
      const int der_len = i2d_ECDSA_SIG(es, &der);
      ECDSA_SIG_free(es);
      REQUIRE(der_len > 0);
      EVP_MD_CTX* ctx = EVP_MD_CTX_new();
      const bool ok = EVP_DigestVerifyInit(ctx, nullptr, md, nullptr, pub) == 1 &&
                      EVP_DigestVerify(ctx, der, static_cast<std::size_t>(der_len),
                                       reinterpret_cast<const unsigned char*>(input.data()), input.size()) == 1;
      EVP_MD_CTX_free(ctx);
      OPENSSL_free(der);
      if (!ok) FAIL("signature " << i << " does not verify");
    }
  }
  // 3600 halves: about 14 expected; none would mean the short case was never exercised.
  CHECK(short_halves > 0);
}

TEST_CASE("parse_compact_into gives parse_compact's result without copies, in buffers it reuses", "[jws][batch]") {
  const std::string h1 = seg(R"({"alg":"ES256","kid":"a-kid-that-is-longer-than-sixteen-bytes"})");
  const std::string h2 = seg(R"({"alg":"HS256"})");
  const std::string big = seg(R"({"alg":"HS256","pad":")" + std::string(5000, 'p') + R"("})");
  const std::string sig = b64url_encode(std::string(64, 's'));
  const std::vector<std::string> tokens = {
      h1 + "." + seg(std::string(300, 'x')) + "." + sig,
      h1 + "." + seg("short") + "." + sig,
      h2 + "." + seg("{}") + "." + b64url_encode("t"),
      big + "." + seg("after a large header") + "." + sig,
      h1 + "." + seg("one") + "." + sig,
  };
  jose::CompactParts parts;
  for (int round = 0; round < 2; ++round) {
    for (const auto& t : tokens) {
      INFO(t.substr(0, 60));
      REQUIRE(jose::parse_compact_into(t, {}, parts));
      const CompactJws jws = parsed(t);  // replaces the thread's header document: compare after
      REQUIRE(jose::parse_compact_into(t, {}, parts));
      CHECK(parts.header_b64 == jws.header_b64);
      CHECK(parts.payload_b64 == jws.payload_b64);
      CHECK(parts.signature_b64 == jws.signature_b64);
      // Views into the token itself, not copies.
      CHECK(parts.payload_b64.data() == t.data() + jws.header_b64.size() + 1);
      REQUIRE(parts.header != nullptr);
      CHECK(*parts.header == jws.header);
      CHECK(parts.alg == jws.alg);
      CHECK(parts.kid == jws.kid);
      CHECK(parts.payload == jws.payload);
      CHECK(parts.signature == jws.signature);
    }
  }
  // The decoded buffers keep their capacity: a shorter token needs no new allocation.
  REQUIRE(jose::parse_compact_into(tokens[0], {}, parts));
  const char* payload_buffer = parts.payload.data();
  REQUIRE(jose::parse_compact_into(tokens[1], {}, parts));
  CHECK(parts.payload.data() == payload_buffer);
  CHECK(parts.payload == "short");
  // Errors are parse_compact's, whatever was parsed before.
  for (const std::string& bad : {h1 + ".!!." + sig, h1 + "." + seg("x") + ".!!", std::string("a.b"), std::string(),
                                seg(R"({"alg":1})") + ".." + sig, seg(R"({"alg":"HS256","kid":2})") + ".."}) {
    INFO(bad);
    auto into = jose::parse_compact_into(bad, {}, parts);
    REQUIRE_FALSE(into);
    CHECK(into.error().message == parse_error(bad).message);
  }
}
