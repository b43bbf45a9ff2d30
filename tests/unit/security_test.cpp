// Attacks on JWS verification, one test each: every one must be refused with a clear reason.

#include <catch2/catch.hpp>

#include <openssl/core_names.h>
#include <openssl/evp.h>

#include <nlohmann/json.hpp>

#include <tokctl/jose/jwt.hpp>
#include <tokctl/jose/keygen.hpp>
#include <tokctl/util/base64.hpp>

#include "jose/ossl.hpp"  // white-box: OpenSSL handles private to core/jose

using namespace tokctl;
using namespace tokctl::jose;
using nlohmann::json;

namespace {

constexpr UnixTime k_now = 1800000000;

const Jwk& key(const std::string& alg) {
  static std::map<std::string, Jwk> cache;
  auto it = cache.find(alg);
  if (it == cache.end()) {
    auto k = generate_key(KeyGenOptions{alg, std::nullopt, std::nullopt});
    REQUIRE(k);
    k->set_kid("kid-" + alg);
    it = cache.emplace(alg, *k).first;
  }
  return it->second;
}

Jwk public_of(const Jwk& k) {
  auto p = k.to_public();
  REQUIRE(p);
  return *p;
}

std::string claims() { return json{{"sub", "alice"}, {"iat", k_now}, {"exp", k_now + 600}}.dump(); }

VerifyReport verify_with(const Jwk& k, std::string_view token, std::vector<Alg> algs = {}) {
  static FixedClock clock(k_now);
  VerifyOptions o;
  o.allowed_algs = std::move(algs);
  auto v = TokenVerifier::create(JwkSet{{k}}, KeySource::single, o, clock);
  REQUIRE(v);
  return v->verify(token);
}

bool has_problem(const VerifyReport& r, const std::string& code) {
  for (const auto& p : r.problems)
    if (tokctl::jose::to_string(p.code) == code) return true;
  return false;
}

std::string codes(const VerifyReport& r) {
  std::string s;
  for (const auto& p : r.problems) s += std::string(tokctl::jose::to_string(p.code)) + ": " + p.message + " | ";
  return s;
}

std::string segment(const json& j) { return b64url_encode(j.dump()); }

// Re-signs header.payload (as given) with HMAC-SHA256 over `secret` using the library, as an attacker would.
std::string hs256_forge(const std::string& header_json, const std::string& payload, const std::string& secret) {
  auto k = Jwk::from_secret(secret);
  REQUIRE(k);
  std::string input = b64url_encode(header_json) + "." + b64url_encode(payload);
  // The attacker's own HMAC: sign() refuses nothing about the secret's content.
  auto sig = sign(Alg::HS256, *k, input);
  REQUIRE(sig);
  return input + "." + b64url_encode(*sig);
}

std::string replace_signature(const std::string& token, const std::string& sig) {
  return token.substr(0, token.rfind('.') + 1) + b64url_encode(sig);
}

}  // namespace

TEST_CASE("alg none never verifies, whatever the spelling or signature", "[security][attack]") {
  const Jwk& k = key("HS256");
  for (std::string alg : {"none", "None", "NONE", "nOnE"}) {
    for (std::string sig : {"", "AAAA"}) {
      std::string token = segment({{"alg", alg}, {"typ", "JWT"}}) + "." + b64url_encode(claims()) + "." + sig;
      auto r = verify_with(k, token, {Alg::HS256});
      INFO(alg << " sig='" << sig << "' " << codes(r));
      CHECK_FALSE(r.valid);
      CHECK(has_problem(r, "alg_none"));
    }
  }
  CHECK_FALSE(alg_from_string("none").has_value());
}

TEST_CASE("an HS256 token made with the RSA public key as HMAC secret is rejected", "[security][attack]") {
  const Jwk& rsa = key("RS256");
  Jwk pub = public_of(rsa);
  pub.set_alg("");  // a PEM: nothing pinned
  auto pem = pub.to_pem(KeyPart::public_only);
  REQUIRE(pem);
  std::string forged = hs256_forge(R"({"alg":"HS256","typ":"JWT"})", claims(), *pem);

  SECTION("verifier allows only RS256") {
    auto r = verify_with(pub, forged, {Alg::RS256});
    INFO(codes(r));
    CHECK_FALSE(r.valid);
    CHECK(has_problem(r, "alg_not_allowed"));
  }
  SECTION("even a misconfigured allow-list with HS256 cannot use an RSA key as a secret") {
    auto r = verify_with(pub, forged, {Alg::RS256, Alg::HS256});
    INFO(codes(r));
    CHECK_FALSE(r.valid);
    CHECK(has_problem(r, "key_mismatch"));
    bool hinted = false;
    for (const auto& p : r.problems) hinted = hinted || p.hint.find("but the key is RSA") != std::string::npos;
    CHECK(hinted);
  }
  SECTION("the PEM bytes and the public JWK are recognised as public-key material") {
    CHECK(looks_like_asymmetric_key(*pem));
    CHECK(looks_like_asymmetric_key(pub.to_json().dump()));
    CHECK_FALSE(looks_like_asymmetric_key("a-perfectly-ordinary-hmac-secret-of-32+bytes"));
  }
}

TEST_CASE("an HS256 token made with the EC public key as HMAC secret is rejected", "[security][attack]") {
  Jwk pub = public_of(key("ES256"));
  std::string forged = hs256_forge(R"({"alg":"HS256"})", claims(), pub.to_json().dump());
  auto r = verify_with(pub, forged);  // pinned to ES256 by the JWK's alg
  INFO(codes(r));
  CHECK_FALSE(r.valid);
  CHECK(has_problem(r, "alg_not_allowed"));
}

TEST_CASE("embedded jwk, jku, x5u and x5c headers never choose the key", "[security][attack]") {
  const Jwk& real = key("ES256");
  auto attacker = generate_key(KeyGenOptions{"ES256", std::nullopt, std::nullopt});
  REQUIRE(attacker);
  json header{{"alg", "ES256"},
              {"kid", real.kid()},
              {"jwk", public_of(*attacker).to_json()},
              {"jku", "https://attacker.test/jwks.json"},
              {"x5u", "https://attacker.test/cert.pem"},
              {"x5c", json::array({"MIIB"})}};
  auto token = sign_compact(header, claims(), Alg::ES256, *attacker);
  REQUIRE(token);
  auto r = verify_with(public_of(real), *token);
  INFO(codes(r));
  CHECK_FALSE(r.valid);
  CHECK(has_problem(r, "bad_signature"));
  // The same header signed by the real key verifies: the embedded keys are simply ignored.
  auto genuine = sign_compact(header, claims(), Alg::ES256, real);
  REQUIRE(genuine);
  CHECK(verify_with(public_of(real), *genuine).valid);
}

TEST_CASE("unknown or malformed crit parameters are rejected", "[security][attack]") {
  const Jwk& k = key("HS256");
  struct Case { json header; const char* why; };
  std::vector<Case> cases = {
      {{{"crit", {"exp2"}}, {"exp2", 1}}, "unknown extension"},
      {{{"crit", json::array()}}, "empty crit"},
      {{{"crit", {"alg"}}}, "registered name in crit"},
      {{{"crit", {"missing"}}}, "crit names an absent parameter"},
      {{{"crit", "exp2"}, {"exp2", 1}}, "crit not an array"},
      {{{"crit", {"b64"}}, {"b64", false}}, "b64=false needs a detached payload"},
  };
  for (auto& c : cases) {
    auto token = sign_compact(c.header, claims(), Alg::HS256, k);
    REQUIRE(token);
    auto r = verify_with(k, *token);
    INFO(c.why << ": " << codes(r));
    CHECK_FALSE(r.valid);
    CHECK(has_problem(r, "crit_unsupported"));
  }
}

TEST_CASE("ECDSA signatures with r or s equal to 0 or at least n are rejected (CVE-2022-21449)", "[security][attack]") {
  struct Curve { const char* alg; std::size_t size; const char* order_hex; };
  const Curve curves[] = {
      {"ES256", 32, "ffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551"},
      {"ES384", 48, "ffffffffffffffffffffffffffffffffffffffffffffffffc7634d81f4372ddf581a0db248b0a77aecec196accc52973"},
      {"ES512", 66, "01fffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffa51868783bf2f966b7fcc0148f709a5d03bb5c9b8899c47aebb6fb71e91386409"},
  };
  for (const auto& c : curves) {
    const Jwk& k = key(c.alg);
    auto token = sign_compact(json{{"typ", "JWT"}}, claims(), *alg_from_string(c.alg), k);
    REQUIRE(token);
    REQUIRE(verify_with(public_of(k), *token).valid);
    auto raw = b64url_decode(token->substr(token->rfind('.') + 1));
    REQUIRE(raw);
    REQUIRE(raw->size() == 2 * c.size);
    std::string r = raw->substr(0, c.size), s = raw->substr(c.size);
    std::string zero(c.size, '\0'), ones(c.size, '\xff');
    auto order = hex_decode(c.order_hex);
    REQUIRE(order);
    REQUIRE(order->size() == c.size);
    struct Bad { std::string sig; const char* why; };
    std::vector<Bad> bad = {{zero + zero, "r = s = 0 (psychic signature)"},
                            {zero + s, "r = 0"},
                            {r + zero, "s = 0"},
                            {*order + s, "r = n"},
                            {r + *order, "s = n"},
                            {ones + s, "r > n"},
                            {r + ones, "s > n"}};
    for (const auto& b : bad) {
      auto rep = verify_with(public_of(k), replace_signature(*token, b.sig));
      INFO(c.alg << ": " << b.why << ": " << codes(rep));
      CHECK_FALSE(rep.valid);
      CHECK(has_problem(rep, "bad_signature"));
    }
  }
}

TEST_CASE("DER-encoded ECDSA signatures are rejected in a JWS", "[security][attack]") {
  const Jwk& k = key("ES256");
  auto token = sign_compact(json::object(), claims(), Alg::ES256, k);
  REQUIRE(token);
  auto raw = b64url_decode(token->substr(token->rfind('.') + 1));
  REQUIRE(raw);
  auto sig = ossl::make(ECDSA_SIG_new());
  auto* r = BN_bin2bn(reinterpret_cast<const unsigned char*>(raw->data()), 32, nullptr);
  auto* s = BN_bin2bn(reinterpret_cast<const unsigned char*>(raw->data()) + 32, 32, nullptr);
  REQUIRE(ECDSA_SIG_set0(sig.get(), r, s) == 1);
  unsigned char* der = nullptr;
  int len = i2d_ECDSA_SIG(sig.get(), &der);
  REQUIRE(len > 0);
  std::string der_sig(reinterpret_cast<char*>(der), static_cast<std::size_t>(len));
  OPENSSL_free(der);
  auto rep = verify_with(public_of(k), replace_signature(*token, der_sig));
  INFO(codes(rep));
  CHECK_FALSE(rep.valid);
  REQUIRE(has_problem(rep, "bad_signature"));
  bool explained = false;
  for (const auto& p : rep.problems) explained = explained || p.hint.find("DER") != std::string::npos;
  CHECK(explained);
}

TEST_CASE("RSA keys under 2048 bits are refused for signing and for verifying", "[security][weak-key]") {
  EVP_PKEY* small = EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", static_cast<size_t>(1024));
  REQUIRE(small);
  auto k = Jwk::from_pkey(small);
  REQUIRE(k);
  CHECK(k->bits() == 1024);
  auto signed_ = sign(Alg::RS256, *k, "payload");
  REQUIRE_FALSE(signed_);
  CHECK(signed_.error().code == ErrorCode::usage);
  CHECK(signed_.error().message.find("2048") != std::string::npos);
  auto v = SignatureVerifier::create(Alg::RS256, *public_of(*k).to_public());
  REQUIRE_FALSE(v);
  CHECK(v.error().code == ErrorCode::invalid_token);
  // And through the token verifier: a (validly) signed token with a small key never verifies.
  std::string input = b64url_encode(R"({"alg":"RS256"})") + "." + b64url_encode(claims());
  auto mdctx = ossl::make(EVP_MD_CTX_new());
  REQUIRE(EVP_DigestSignInit(mdctx.get(), nullptr, EVP_sha256(), nullptr, k->pkey()) == 1);
  unsigned char buf[512];
  size_t len = sizeof buf;
  REQUIRE(EVP_DigestSign(mdctx.get(), buf, &len, reinterpret_cast<const unsigned char*>(input.data()), input.size()) == 1);
  std::string token = input + "." + b64url_encode(std::string_view(reinterpret_cast<char*>(buf), len));
  auto rep = verify_with(public_of(*k), token, {Alg::RS256});
  INFO(codes(rep));
  CHECK_FALSE(rep.valid);
}

TEST_CASE("HMAC keys shorter than the hash output are refused", "[security][weak-key]") {
  struct C { Alg alg; std::size_t min; };
  for (auto [alg, min] : {C{Alg::HS256, 32}, C{Alg::HS384, 48}, C{Alg::HS512, 64}}) {
    auto short_key = Jwk::from_secret(std::string(min - 1, 'k'));
    auto ok_key = Jwk::from_secret(std::string(min, 'k'));
    REQUIRE(short_key);
    REQUIRE(ok_key);
    INFO(to_string(alg));
    auto s = sign(alg, *short_key, "x");
    REQUIRE_FALSE(s);
    CHECK(s.error().message.find(std::to_string(min) + " bytes") != std::string::npos);
    CHECK(sign(alg, *ok_key, "x"));
    CHECK_FALSE(SignatureVerifier::create(alg, *short_key));
  }
  CHECK_FALSE(generate_key(KeyGenOptions{"HS256", 128, std::nullopt}));
}

TEST_CASE("HMAC tags are compared exactly: truncated, extended and one-bit-off tags fail", "[security][hmac]") {
  const Jwk& k = key("HS256");
  auto v = SignatureVerifier::create(Alg::HS256, k);
  REQUIRE(v);
  auto tag = sign(Alg::HS256, k, "input");
  REQUIRE(tag);
  CHECK(v->verify("input", *tag));
  std::string flipped = *tag;
  flipped.back() ^= 1;
  CHECK_FALSE(v->verify("input", flipped));
  CHECK_FALSE(v->verify("input", tag->substr(0, 16)));
  CHECK_FALSE(v->verify("input", *tag + "x"));
  CHECK_FALSE(v->verify("input", ""));
  CHECK(v->verify("input", *tag));  // the reused MAC context still works after failures
}

TEST_CASE("malformed tokens are clear errors with exit code 3", "[security][malformed]") {
  const Jwk& k = key("HS256");
  auto good = sign_compact(json::object(), claims(), Alg::HS256, k);
  REQUIRE(good);
  auto dot1 = good->find('.');
  std::string payload_sig = good->substr(dot1);
  struct C { std::string token; const char* expect; };
  std::vector<C> cases = {
      {std::string(70 * 1024, 'a'), "over the"},
      {"eyJhbGciOiJIUzI1NiJ9=" + payload_sig, "padding"},
      {"eyJhbGciOiJIUzI1NiJ9+" + payload_sig, "illegal character"},
      {b64url_encode("not json") + payload_sig, "not valid JSON"},
      {b64url_encode(R"({"alg":"HS256","alg":"none"})") + payload_sig, "duplicate member name \"alg\""},
      {b64url_encode("[1]") + payload_sig, "must be a JSON object"},
      {b64url_encode(R"({"typ":"JWT"})") + payload_sig, "no \"alg\""},
      {"a.b", "3 dot-separated segments"},
      {"a.b.c.d.e", "JWE"},
  };
  for (const auto& c : cases) {
    auto r = verify_with(k, c.token);
    INFO(c.expect << " :: " << codes(r));
    CHECK_FALSE(r.valid);
    CHECK(r.exit_code() == 3);
    REQUIRE_FALSE(r.problems.empty());
    CHECK(r.problems.front().message.find(c.expect) != std::string::npos);
  }
}

TEST_CASE("duplicate claim names and non-numeric time claims are malformed, not merely invalid", "[security][malformed]") {
  const Jwk& k = key("HS256");
  auto dup = sign_compact(json::object(), R"({"sub":"alice","sub":"admin"})", Alg::HS256, k);
  REQUIRE(dup);
  auto r = verify_with(k, *dup);
  CHECK_FALSE(r.valid);
  CHECK(r.exit_code() == 3);
  for (const char* claim : {"exp", "nbf", "iat"}) {
    json c{{"sub", "alice"}, {claim, "1800000600"}};
    auto t = sign_compact(json::object(), c.dump(), Alg::HS256, k);
    REQUIRE(t);
    auto rep = verify_with(k, *t);
    INFO(claim << ": " << codes(rep));
    CHECK_FALSE(rep.valid);
    CHECK(has_problem(rep, "bad_claim_type"));
    CHECK(rep.exit_code() == 3);
  }
}

TEST_CASE("a token may not pick an algorithm other than the one its key is pinned to", "[security][attack]") {
  // Key pinned to PS256; a valid RS256 signature by the same RSA key is still refused.
  Jwk pinned = key("RS256");
  auto token = sign_compact(json::object(), claims(), Alg::RS256, pinned);
  REQUIRE(token);
  Jwk pub = public_of(pinned);
  pub.set_alg("PS256");
  auto r = verify_with(pub, *token);
  INFO(codes(r));
  CHECK_FALSE(r.valid);
  CHECK(has_problem(r, "alg_not_allowed"));
}

TEST_CASE("keys marked for encryption are not used to verify signatures", "[security][attack]") {
  const Jwk& k = key("ES256");
  auto token = sign_compact(json::object(), claims(), Alg::ES256, k);
  REQUIRE(token);
  Jwk enc = public_of(k);
  enc.set_use("enc");
  CHECK_FALSE(verify_with(enc, *token).valid);
  Jwk ops = public_of(k);
  ops.set_key_ops({"encrypt"});
  CHECK_FALSE(verify_with(ops, *token).valid);
  ops.set_key_ops({"verify"});
  CHECK(verify_with(ops, *token).valid);
}
