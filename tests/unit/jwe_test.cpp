// JWE (core/jose/jwe.*): round trips for every alg x enc pair, and one test per defence.
#include <catch2/catch.hpp>

#include <chrono>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include <tokctl/jose/jwe.hpp>
#include <tokctl/jose/jwk.hpp>
#include <tokctl/jose/jws.hpp>
#include <tokctl/jose/keygen.hpp>
#include <tokctl/util/base64.hpp>

#include "support/keys.hpp"
#include "support/vectors.hpp"

namespace {

using nlohmann::json;
using tokctl::ErrorCode;
namespace jose = tokctl::jose;
namespace jc = tokctl::jose::jwe_crypto;
using jose::ContentEnc;
using jose::KeyMgmtAlg;

const std::string k_plaintext = "You can trust us to stick with you through thick and thin\xe2\x80\x93to the bitter end.";

jose::Jwk unpinned(jose::Jwk k) {
  k.set_alg("");
  k.set_use("");  // generate_key marks keys for their use; these serve every JWE alg
  return k;
}

/// One RSA key per process (generation is the slow part).
const jose::Jwk& rsa_key() {
  static const jose::Jwk key = unpinned(*jose::generate_key({.alg = "RS256", .bits = 2048, .crv = {}}));
  return key;
}

jose::Jwk generated(const char* type, const char* curve = nullptr) {
  EVP_PKEY* p = curve ? EVP_PKEY_Q_keygen(nullptr, nullptr, type, curve) : EVP_PKEY_Q_keygen(nullptr, nullptr, type);
  REQUIRE(p != nullptr);
  auto k = jose::Jwk::from_pkey(p);
  REQUIRE(k);
  return *k;
}

jose::Jwk secret(std::size_t bytes) {
  std::string s(bytes, '\0');
  REQUIRE(RAND_bytes(reinterpret_cast<unsigned char*>(s.data()), static_cast<int>(bytes)) == 1);
  return *jose::Jwk::from_secret(std::move(s));
}

std::size_t kw_key_bytes(KeyMgmtAlg alg) { return alg == KeyMgmtAlg::A128KW ? 16 : 32; }

jose::EncryptOptions opts(KeyMgmtAlg alg, ContentEnc enc) {
  jose::EncryptOptions o;
  o.alg = alg;
  o.enc = enc;
  o.p2c = 1000;  // keep PBES2 round trips fast; the default is exercised separately
  return o;
}

std::vector<std::string> split(const std::string& token) {
  std::vector<std::string> parts;
  std::size_t start = 0;
  for (;;) {
    auto dot = token.find('.', start);
    parts.push_back(token.substr(start, dot == std::string::npos ? std::string::npos : dot - start));
    if (dot == std::string::npos) break;
    start = dot + 1;
  }
  return parts;
}

std::string join(const std::vector<std::string>& parts) {
  std::string out;
  for (std::size_t i = 0; i < parts.size(); ++i) out += (i ? "." : "") + parts[i];
  return out;
}

/// The token with segment `index` decoded, changed by `edit`, and re-encoded.
template <class F>
std::string edit_segment(const std::string& token, std::size_t index, F edit) {
  auto parts = split(token);
  std::string bytes = *tokctl::b64url_decode(parts.at(index));
  edit(bytes);
  parts.at(index) = tokctl::b64url_encode(bytes);
  return join(parts);
}

template <class F>
std::string edit_header(const std::string& token, F edit) {
  return edit_segment(token, 0, [&](std::string& bytes) {
    json h = json::parse(bytes);
    edit(h);
    bytes = h.dump();
  });
}

void require_failure(const tokctl::Result<jose::DecryptedJwe>& r, ErrorCode code, const std::string& needle) {
  REQUIRE_FALSE(r.has_value());
  INFO("message: " << r.error().message << " | hint: " << r.error().hint);
  CHECK(r.error().code == code);
  CHECK_THAT(r.error().message + " " + r.error().hint, Catch::Contains(needle, Catch::CaseSensitive::No));
}

std::string encrypt_ok(std::string_view pt, const jose::Jwk& key, const jose::EncryptOptions& o) {
  auto t = jose::encrypt_compact(pt, key, o);
  INFO((t ? std::string() : t.error().message));
  REQUIRE(t);
  return *t;
}

}  // namespace

TEST_CASE("JWE alg and enc names round trip; refused names are unknown", "[jwe]") {
  for (auto alg : jose::k_all_key_mgmt_algs) CHECK(jose::key_mgmt_from_string(jose::to_string(alg)) == alg);
  for (auto enc : jose::k_all_content_encs) CHECK(jose::content_enc_from_string(jose::to_string(enc)) == enc);
  for (const char* refused : {"RSA1_5", "A128GCMKW", "A192KW", "ECDH-ES+A192KW", "none", "rsa-oaep"})
    CHECK_FALSE(jose::key_mgmt_from_string(refused));
  for (const char* refused : {"A192GCM", "A192CBC-HS384", "a128gcm"}) CHECK_FALSE(jose::content_enc_from_string(refused));
}

TEST_CASE("every alg x enc pair round trips", "[jwe]") {
  for (auto enc : jose::k_all_content_encs) {
    for (auto alg : jose::k_all_key_mgmt_algs) {
      std::vector<std::pair<std::string, jose::Jwk>> keys;
      switch (alg) {
        case KeyMgmtAlg::RSA_OAEP:
        case KeyMgmtAlg::RSA_OAEP_256: keys.emplace_back("RSA 2048", rsa_key()); break;
        case KeyMgmtAlg::ECDH_ES:
        case KeyMgmtAlg::ECDH_ES_A128KW:
        case KeyMgmtAlg::ECDH_ES_A256KW:
          keys.emplace_back("P-256", generated("EC", "P-256"));
          keys.emplace_back("P-384", generated("EC", "P-384"));
          keys.emplace_back("P-521", generated("EC", "P-521"));
          keys.emplace_back("X25519", generated("X25519"));
          keys.emplace_back("X448", generated("X448"));
          break;
        case KeyMgmtAlg::A128KW:
        case KeyMgmtAlg::A256KW: keys.emplace_back("oct", secret(kw_key_bytes(alg))); break;
        case KeyMgmtAlg::dir: keys.emplace_back("oct", secret(jose::cek_bytes(enc))); break;
        case KeyMgmtAlg::PBES2_HS256_A128KW:
        case KeyMgmtAlg::PBES2_HS512_A256KW:
          keys.emplace_back("password", *jose::Jwk::from_secret("correct horse battery staple"));
          break;
      }
      for (const auto& [what, key] : keys) {
        DYNAMIC_SECTION(jose::to_string(alg) << " + " << jose::to_string(enc) << " with " << what) {
          auto o = opts(alg, enc);
          o.kid = "k1";
          const std::string token = encrypt_ok(k_plaintext, key, o);
          CHECK(split(token).size() == 5);
          // Encrypt with the public key where there is one; decrypt with the private key.
          if (key.kty() != jose::KeyType::oct) {
            auto pub = key.to_public();
            REQUIRE(pub);
            const std::string token2 = encrypt_ok(k_plaintext, *pub, o);
            auto back2 = jose::decrypt_compact(token2, key);
            REQUIRE(back2);
            CHECK(back2->plaintext == k_plaintext);
          }
          auto back = jose::decrypt_compact(token, key);
          INFO((back ? std::string() : back.error().message));
          REQUIRE(back);
          CHECK(back->plaintext == k_plaintext);
          CHECK(back->header.at("alg") == jose::to_string(alg));
          CHECK(back->header.at("enc") == jose::to_string(enc));
          CHECK(back->header.at("kid") == "k1");
          // Empty plaintext works too.
          auto empty = jose::decrypt_compact(encrypt_ok("", key, o), key);
          REQUIRE(empty);
          CHECK(empty->plaintext.empty());
        }
      }
    }
  }
}

TEST_CASE("PBES2 uses a default p2c within the limits", "[jwe]") {
  auto pw = *jose::Jwk::from_secret("passphrase");
  jose::EncryptOptions o;
  o.alg = KeyMgmtAlg::PBES2_HS512_A256KW;
  o.enc = ContentEnc::A256GCM;
  const std::string token = encrypt_ok("key material", pw, o);
  auto back = jose::decrypt_compact(token, pw);
  REQUIRE(back);
  CHECK(back->header.at("p2c") == jose::default_p2c(o.alg));
  CHECK(jose::default_p2c(o.alg) >= 100000);
  CHECK(jose::default_p2c(KeyMgmtAlg::PBES2_HS256_A128KW) <= jose::JweLimits{}.max_p2c);
  CHECK(tokctl::b64url_decode(back->header.at("p2s").get<std::string>())->size() == 16);
}

TEST_CASE("ECDH-ES refuses an epk point that is not on the curve (invalid-curve attack)", "[jwe][attack]") {
  const auto key = generated("EC", "P-256");
  for (auto alg : {KeyMgmtAlg::ECDH_ES, KeyMgmtAlg::ECDH_ES_A128KW}) {
    const std::string token = encrypt_ok(k_plaintext, key, opts(alg, ContentEnc::A128GCM));
    // Move the point off P-256: keep x, change y.
    const std::string bad = edit_header(token, [](json& h) {
      std::string y = *tokctl::b64url_decode(h["epk"]["y"].get<std::string>());
      y.back() = static_cast<char>(y.back() ^ 1);
      h["epk"]["y"] = tokctl::b64url_encode(y);
    });
    require_failure(jose::decrypt_compact(bad, key), ErrorCode::invalid_token, "not on P-256");
    require_failure(jose::decrypt_compact(bad, key), ErrorCode::invalid_token, "ephemeral public key");
    // A small-order-style point (0, 0) and the classic invalid-curve point with a tiny y.
    const std::string zero = edit_header(token, [](json& h) {
      h["epk"]["x"] = tokctl::b64url_encode(std::string(32, '\0'));
      h["epk"]["y"] = tokctl::b64url_encode(std::string(32, '\0'));
    });
    require_failure(jose::decrypt_compact(zero, key), ErrorCode::invalid_token, "epk");
  }
}

TEST_CASE("ECDH-ES refuses an epk on another curve or of another type", "[jwe][attack]") {
  const auto key = generated("EC", "P-256");
  const std::string token = encrypt_ok(k_plaintext, key, opts(KeyMgmtAlg::ECDH_ES, ContentEnc::A128GCM));
  const auto other = generated("EC", "P-384");
  const std::string p384 = edit_header(token, [&](json& h) { h["epk"] = other.to_json(jose::KeyPart::public_only); });
  require_failure(jose::decrypt_compact(p384, key), ErrorCode::invalid_token, "P-384");
  const auto x = generated("X25519");
  const std::string okp = edit_header(token, [&](json& h) { h["epk"] = x.to_json(jose::KeyPart::public_only); });
  require_failure(jose::decrypt_compact(okp, key), ErrorCode::invalid_token, "X25519");
  // An epk carrying a private part is not an ephemeral *public* key.
  const auto eph = generated("EC", "P-256");
  const std::string priv = edit_header(token, [&](json& h) { h["epk"] = eph.to_json(jose::KeyPart::with_private); });
  require_failure(jose::decrypt_compact(priv, key), ErrorCode::invalid_token, "must be a public key");
  const std::string missing = edit_header(token, [&](json& h) { h.erase("epk"); });
  require_failure(jose::decrypt_compact(missing, key), ErrorCode::malformed, "epk");
}

TEST_CASE("X25519 ECDH refuses an all-zero shared secret (low-order epk)", "[jwe][attack]") {
  const auto key = generated("X25519");
  const std::string token = encrypt_ok(k_plaintext, key, opts(KeyMgmtAlg::ECDH_ES, ContentEnc::A128GCM));
  // u = 0 and u = 1 are low-order points: X25519 with them gives 0.
  for (char u : {'\0', '\1'}) {
    std::string x(32, '\0');
    x[0] = u;
    const std::string bad = edit_header(token, [&](json& h) { h["epk"]["x"] = tokctl::b64url_encode(x); });
    require_failure(jose::decrypt_compact(bad, key), ErrorCode::invalid_token, "key agreement");
  }
}

TEST_CASE("PBES2 p2c above the ceiling is refused before any PBKDF2 work", "[jwe][attack]") {
  auto pw = *jose::Jwk::from_secret("passphrase");
  const std::string token = encrypt_ok(k_plaintext, pw, opts(KeyMgmtAlg::PBES2_HS256_A128KW, ContentEnc::A128GCM));
  const std::string huge = edit_header(token, [](json& h) { h["p2c"] = 2000000000; });
  const auto start = std::chrono::steady_clock::now();
  auto r = jose::decrypt_compact(huge, pw);
  const auto elapsed = std::chrono::steady_clock::now() - start;
  require_failure(r, ErrorCode::invalid_token, "above the ceiling of 1000000");
  // 2e9 PBKDF2-HMAC-SHA256 iterations take minutes; the refusal takes microseconds.
  CHECK(elapsed < std::chrono::milliseconds(200));
  // Just above the default ceiling, and a lower custom ceiling.
  require_failure(jose::decrypt_compact(edit_header(token, [](json& h) { h["p2c"] = 1000001; }), pw),
                  ErrorCode::invalid_token, "ceiling");
  jose::JweLimits strict;
  strict.max_p2c = 500000;
  require_failure(jose::decrypt_compact(edit_header(token, [](json& h) { h["p2c"] = 600000; }), pw, strict),
                  ErrorCode::invalid_token, "ceiling of 500000");
  // Absurd encodings of p2c.
  require_failure(jose::decrypt_compact(edit_header(token, [](json& h) { h["p2c"] = 18446744073709551615ull; }), pw),
                  ErrorCode::invalid_token, "ceiling");
  require_failure(jose::decrypt_compact(edit_header(token, [](json& h) { h["p2c"] = 1e12; }), pw),
                  ErrorCode::malformed, "integer");
  require_failure(jose::decrypt_compact(edit_header(token, [](json& h) { h["p2c"] = "1000"; }), pw),
                  ErrorCode::malformed, "integer");
}

TEST_CASE("PBES2 p2c below 1000 and short salts are refused", "[jwe][attack]") {
  auto pw = *jose::Jwk::from_secret("passphrase");
  const std::string token = encrypt_ok(k_plaintext, pw, opts(KeyMgmtAlg::PBES2_HS256_A128KW, ContentEnc::A128GCM));
  require_failure(jose::decrypt_compact(edit_header(token, [](json& h) { h["p2c"] = 999; }), pw),
                  ErrorCode::invalid_token, "below the minimum of 1000");
  require_failure(jose::decrypt_compact(edit_header(token, [](json& h) { h["p2c"] = -5; }), pw),
                  ErrorCode::invalid_token, "minimum");
  require_failure(jose::decrypt_compact(edit_header(token, [](json& h) { h.erase("p2c"); }), pw),
                  ErrorCode::malformed, "p2c");
  require_failure(jose::decrypt_compact(edit_header(token, [](json& h) { h["p2s"] = "AAAA"; }), pw),
                  ErrorCode::invalid_token, "at least 8");
  // No salt at all is a malformed header, like no p2c (it used to read as a 0-byte salt).
  require_failure(jose::decrypt_compact(edit_header(token, [](json& h) { h.erase("p2s"); }), pw),
                  ErrorCode::malformed, "has no \"p2s\"");
  // Encrypting refuses the same range.
  for (int bad : {999, 1000001}) {
    auto o = opts(KeyMgmtAlg::PBES2_HS256_A128KW, ContentEnc::A128GCM);
    o.p2c = bad;
    auto t = jose::encrypt_compact("x", pw, o);
    REQUIRE_FALSE(t);
    CHECK(t.error().code == ErrorCode::usage);
  }
}

TEST_CASE("truncated, extended and modified tags fail with exact-length checks", "[jwe][attack]") {
  for (auto enc : jose::k_all_content_encs) {
    DYNAMIC_SECTION(jose::to_string(enc)) {
      const auto key = secret(16);
      const std::string token = encrypt_ok(k_plaintext, key, opts(KeyMgmtAlg::A128KW, enc));
      const std::size_t tag_len = enc == ContentEnc::A256CBC_HS512 ? 32 : 16;
      require_failure(jose::decrypt_compact(edit_segment(token, 4, [](std::string& t) { t.pop_back(); }), key),
                      ErrorCode::invalid_token, "requires exactly " + std::to_string(tag_len));
      require_failure(jose::decrypt_compact(edit_segment(token, 4, [](std::string& t) { t.resize(8); }), key),
                      ErrorCode::invalid_token, "authentication tag is 8 bytes");
      require_failure(jose::decrypt_compact(edit_segment(token, 4, [](std::string& t) { t.push_back('\0'); }), key),
                      ErrorCode::invalid_token, "requires exactly");
      require_failure(jose::decrypt_compact(edit_segment(token, 4, [](std::string& t) { t.clear(); }), key),
                      ErrorCode::invalid_token, "authentication tag is 0 bytes");
      require_failure(jose::decrypt_compact(edit_segment(token, 4, [](std::string& t) { t[0] ^= 1; }), key),
                      ErrorCode::invalid_token, "tag mismatch");
      require_failure(jose::decrypt_compact(edit_segment(token, 4, [](std::string& t) { t.back() ^= 0x80; }), key),
                      ErrorCode::invalid_token, "tag mismatch");
    }
  }
}

TEST_CASE("the primitives require exact tag lengths", "[jwe][attack]") {
  const std::string key32(32, 'k'), key16(16, 'k'), iv16(16, 'i'), iv12(12, 'i');
  auto cbc = jc::aes_cbc_hmac_encrypt(key32, iv16, "aad", "plaintext");
  REQUIRE(cbc);
  CHECK(jc::aes_cbc_hmac_decrypt(key32, iv16, "aad", cbc->ciphertext, cbc->tag) == "plaintext");
  for (std::size_t len : {std::size_t{0}, std::size_t{1}, std::size_t{15}, std::size_t{17}, std::size_t{32}}) {
    std::string tag = cbc->tag;
    tag.resize(len, '\0');
    auto r = jc::aes_cbc_hmac_decrypt(key32, iv16, "aad", cbc->ciphertext, tag);
    REQUIRE_FALSE(r);
    CHECK(r.error().code == ErrorCode::invalid_token);
  }
  auto gcm = jc::aes_gcm_encrypt(key16, iv12, "aad", "plaintext");
  REQUIRE(gcm);
  CHECK(jc::aes_gcm_decrypt(key16, iv12, "aad", gcm->ciphertext, gcm->tag) == "plaintext");
  for (std::size_t len : {std::size_t{0}, std::size_t{4}, std::size_t{12}, std::size_t{15}, std::size_t{17}}) {
    std::string tag = gcm->tag;
    tag.resize(len, '\0');
    auto r = jc::aes_gcm_decrypt(key16, iv12, "aad", gcm->ciphertext, tag);
    REQUIRE_FALSE(r);
    CHECK(r.error().code == ErrorCode::invalid_token);
  }
}

TEST_CASE("wrong keys fail with a clear reason", "[jwe]") {
  SECTION("A128KW") {
    const std::string token = encrypt_ok(k_plaintext, secret(16), opts(KeyMgmtAlg::A128KW, ContentEnc::A128GCM));
    require_failure(jose::decrypt_compact(token, secret(16)), ErrorCode::invalid_token, "unwrap failed");
  }
  SECTION("dir") {
    const std::string token = encrypt_ok(k_plaintext, secret(32), opts(KeyMgmtAlg::dir, ContentEnc::A128CBC_HS256));
    require_failure(jose::decrypt_compact(token, secret(32)), ErrorCode::invalid_token, "tag mismatch");
  }
  SECTION("RSA-OAEP-256 (no padding oracle: same failure as a bad tag)") {
    const std::string token = encrypt_ok(k_plaintext, rsa_key(), opts(KeyMgmtAlg::RSA_OAEP_256, ContentEnc::A256GCM));
    require_failure(jose::decrypt_compact(token, unpinned(tokctl::test::test_key("rsa2048"))), ErrorCode::invalid_token,
                    "wrong key");
  }
  SECTION("ECDH-ES+A256KW") {
    const std::string token =
        encrypt_ok(k_plaintext, generated("EC", "P-256"), opts(KeyMgmtAlg::ECDH_ES_A256KW, ContentEnc::A256GCM));
    require_failure(jose::decrypt_compact(token, generated("EC", "P-256")), ErrorCode::invalid_token, "wrong key");
  }
  SECTION("PBES2 with the wrong password") {
    const std::string token = encrypt_ok(k_plaintext, *jose::Jwk::from_secret("right"),
                                         opts(KeyMgmtAlg::PBES2_HS512_A256KW, ContentEnc::A256CBC_HS512));
    require_failure(jose::decrypt_compact(token, *jose::Jwk::from_secret("wrong")), ErrorCode::invalid_token,
                    "wrong key");
  }
  SECTION("a key of the wrong type") {
    const std::string token = encrypt_ok(k_plaintext, secret(16), opts(KeyMgmtAlg::A128KW, ContentEnc::A128GCM));
    require_failure(jose::decrypt_compact(token, rsa_key()), ErrorCode::invalid_token, "needs a symmetric (oct) key");
  }
  SECTION("a public key cannot decrypt") {
    const std::string token = encrypt_ok(k_plaintext, rsa_key(), opts(KeyMgmtAlg::RSA_OAEP, ContentEnc::A128GCM));
    require_failure(jose::decrypt_compact(token, *rsa_key().to_public()), ErrorCode::usage, "private key");
  }
  SECTION("a key pinned to another alg") {
    auto key = secret(32);
    const std::string token = encrypt_ok(k_plaintext, key, opts(KeyMgmtAlg::A256KW, ContentEnc::A128GCM));
    key.set_alg("A256GCMKW");
    require_failure(jose::decrypt_compact(token, key), ErrorCode::invalid_token, "key is for A256GCMKW");
    key.set_alg("A256KW");
    CHECK(jose::decrypt_compact(token, key));
    key.set_use("sig");
    require_failure(jose::decrypt_compact(token, key), ErrorCode::invalid_token, "\"use\":\"sig\"");
  }
}

TEST_CASE("tampered ciphertext, header (AAD), iv and encrypted key fail", "[jwe][attack]") {
  for (auto enc : jose::k_all_content_encs) {
    DYNAMIC_SECTION(jose::to_string(enc)) {
      const auto key = secret(32);
      const std::string token = encrypt_ok(k_plaintext, key, opts(KeyMgmtAlg::A256KW, enc));
      REQUIRE(jose::decrypt_compact(token, key));
      require_failure(jose::decrypt_compact(edit_segment(token, 3, [](std::string& c) { c[0] ^= 1; }), key),
                      ErrorCode::invalid_token, "tag mismatch");
      require_failure(jose::decrypt_compact(edit_segment(token, 3, [](std::string& c) { c.pop_back(); }), key),
                      ErrorCode::invalid_token, "tag mismatch");
      require_failure(jose::decrypt_compact(edit_segment(token, 2, [](std::string& iv) { iv[0] ^= 1; }), key),
                      ErrorCode::invalid_token, "tag mismatch");
      require_failure(jose::decrypt_compact(edit_segment(token, 2, [](std::string& iv) { iv.pop_back(); }), key),
                      ErrorCode::invalid_token, "initialization vector is");
      require_failure(jose::decrypt_compact(edit_header(token, [](json& h) { h["kid"] = "mallory"; }), key),
                      ErrorCode::invalid_token, "tag mismatch");
      require_failure(jose::decrypt_compact(edit_segment(token, 1, [](std::string& k) { k[3] ^= 1; }), key),
                      ErrorCode::invalid_token, "unwrap failed");
      // Same header JSON, different base64url (the AAD is the encoded header as sent).
      auto parts = split(token);
      parts[0] = tokctl::b64url_encode(*tokctl::b64url_decode(parts[0]) + " ");
      require_failure(jose::decrypt_compact(join(parts), key), ErrorCode::invalid_token, "tag mismatch");
    }
  }
}

TEST_CASE("RSA1_5 is refused with a clear error (RFC 7516 A.2)", "[jwe][attack]") {
  const auto dir = tokctl::test::vectors_dir() / "rfc-examples" / "hotplace";
  auto key = jose::parse_single_key(tokctl::test::read_text(dir / "rfc7516_A2.jwk"));
  REQUIRE(key);
  const std::string token = tokctl::test::trim(tokctl::test::read_text(dir / "rfc7516_A2.jws"));
  require_failure(jose::decrypt_compact(token, *key), ErrorCode::invalid_token, "RSA1_5 is refused");
  require_failure(jose::decrypt_compact(token, *key), ErrorCode::invalid_token, "Bleichenbacher");
}

TEST_CASE("zip (compressed plaintext) is refused both ways", "[jwe][attack]") {
  const auto key = secret(16);
  const std::string token = encrypt_ok(k_plaintext, key, opts(KeyMgmtAlg::A128KW, ContentEnc::A128GCM));
  require_failure(jose::decrypt_compact(edit_header(token, [](json& h) { h["zip"] = "DEF"; }), key),
                  ErrorCode::invalid_token, "zip");
  auto o = opts(KeyMgmtAlg::A128KW, ContentEnc::A128GCM);
  o.extra_header = {{"zip", "DEF"}};
  auto t = jose::encrypt_compact(k_plaintext, key, o);
  REQUIRE_FALSE(t);
  CHECK(t.error().code == ErrorCode::usage);
  CHECK_THAT(t.error().message + t.error().hint, Catch::Contains("zip"));
}

TEST_CASE("unsupported alg and enc names are refused", "[jwe]") {
  const auto key = secret(16);
  const std::string token = encrypt_ok(k_plaintext, key, opts(KeyMgmtAlg::A128KW, ContentEnc::A128GCM));
  require_failure(jose::decrypt_compact(edit_header(token, [](json& h) { h["alg"] = "A128GCMKW"; }), key),
                  ErrorCode::invalid_token, "unsupported JWE alg 'A128GCMKW'");
  require_failure(jose::decrypt_compact(edit_header(token, [](json& h) { h["enc"] = "A192GCM"; }), key),
                  ErrorCode::invalid_token, "unsupported JWE enc 'A192GCM'");
  require_failure(jose::decrypt_compact(edit_header(token, [](json& h) { h.erase("enc"); }), key),
                  ErrorCode::malformed, "\"enc\"");
  require_failure(jose::decrypt_compact(edit_header(token, [](json& h) { h["alg"] = 1; }), key),
                  ErrorCode::malformed, "\"alg\"");
}

TEST_CASE("nested JWT: cty JWT passes through and the inner JWS verifies", "[jwe]") {
  const auto& hs = tokctl::test::test_key("hs256");
  auto jws = jose::sign_compact({{"typ", "JWT"}}, R"({"sub":"alice"})", jose::Alg::HS256, hs);
  REQUIRE(jws);
  const auto key = generated("X25519");
  auto o = opts(KeyMgmtAlg::ECDH_ES_A128KW, ContentEnc::A128CBC_HS256);
  o.cty = "JWT";
  const std::string token = encrypt_ok(*jws, key, o);
  auto back = jose::decrypt_compact(token, key);
  REQUIRE(back);
  CHECK(back->header.at("cty") == "JWT");
  CHECK(back->plaintext == *jws);
  auto inner = jose::parse_compact(back->plaintext);
  REQUIRE(inner);
  auto verifier = jose::SignatureVerifier::create(jose::Alg::HS256, hs);
  REQUIRE(verifier);
  CHECK(verifier->verify(inner->signing_input(), inner->signature));
}

TEST_CASE("dir needs a key of exactly the enc key length", "[jwe]") {
  for (auto enc : jose::k_all_content_encs) {
    const std::size_t need = jose::cek_bytes(enc);
    for (std::size_t len : {need - 1, need + 1, need / 2, need * 2}) {
      auto t = jose::encrypt_compact("x", secret(len), opts(KeyMgmtAlg::dir, enc));
      REQUIRE_FALSE(t);
      CHECK(t.error().code == ErrorCode::usage);
      CHECK_THAT(t.error().message, Catch::Contains("exactly " + std::to_string(need) + " bytes"));
    }
    const auto key = secret(need);
    const std::string token = encrypt_ok("x", key, opts(KeyMgmtAlg::dir, enc));
    require_failure(jose::decrypt_compact(token, secret(need + 8)), ErrorCode::invalid_token,
                    "exactly " + std::to_string(need) + " bytes");
    // dir and ECDH-ES carry no encrypted key.
    require_failure(jose::decrypt_compact(edit_segment(token, 1, [](std::string& k) { k = "xxxxxxxxxxxxxxxx"; }), key),
                    ErrorCode::invalid_token, "empty encrypted key");
  }
  // A*KW keys are checked the same way.
  auto t = jose::encrypt_compact("x", secret(32), opts(KeyMgmtAlg::A128KW, ContentEnc::A128GCM));
  REQUIRE_FALSE(t);
  CHECK(t.error().code == ErrorCode::usage);
}

TEST_CASE("an unknown crit extension is refused", "[jwe][attack]") {
  // Built by hand: encrypt_compact itself refuses to emit crit.
  const std::string cek(16, 'c'), iv(12, 'i');
  const json header = {{"alg", "dir"}, {"enc", "A128GCM"}, {"crit", {"exp-ext"}}, {"exp-ext", true}};
  const std::string h64 = tokctl::b64url_encode(header.dump());
  auto sealed = jc::aes_gcm_encrypt(cek, iv, h64, "secret");
  REQUIRE(sealed);
  const std::string token = h64 + ".." + tokctl::b64url_encode(iv) + "." + tokctl::b64url_encode(sealed->ciphertext) +
                            "." + tokctl::b64url_encode(sealed->tag);
  auto key = *jose::Jwk::from_secret(cek);
  require_failure(jose::decrypt_compact(token, key), ErrorCode::invalid_token, "crit");
  // Without crit the same construction decrypts (so crit is what was refused).
  const json plain = {{"alg", "dir"}, {"enc", "A128GCM"}};
  const std::string p64 = tokctl::b64url_encode(plain.dump());
  auto sealed2 = jc::aes_gcm_encrypt(cek, iv, p64, "secret");
  const std::string ok = p64 + ".." + tokctl::b64url_encode(iv) + "." + tokctl::b64url_encode(sealed2->ciphertext) +
                         "." + tokctl::b64url_encode(sealed2->tag);
  auto back = jose::decrypt_compact(ok, key);
  REQUIRE(back);
  CHECK(back->plaintext == "secret");
  auto o = opts(KeyMgmtAlg::dir, ContentEnc::A128GCM);
  o.extra_header = {{"crit", {"exp-ext"}}, {"exp-ext", true}};
  CHECK_FALSE(jose::encrypt_compact("x", key, o));
}

TEST_CASE("malformed compact JWEs fail as malformed", "[jwe]") {
  const auto key = secret(16);
  const std::string token = encrypt_ok(k_plaintext, key, opts(KeyMgmtAlg::A128KW, ContentEnc::A128GCM));
  auto parts = split(token);
  require_failure(jose::decrypt_compact(parts[0] + "." + parts[1] + "." + parts[2] + "." + parts[3], key),
                  ErrorCode::malformed, "5 dot-separated segments");
  require_failure(jose::decrypt_compact(token + ".", key), ErrorCode::malformed, "segments");
  require_failure(jose::decrypt_compact("a.b.c", key), ErrorCode::malformed, "JWS");
  require_failure(jose::decrypt_compact("{\"protected\":\"x\"}", key), ErrorCode::malformed, "JSON serialization");
  require_failure(jose::decrypt_compact("!!." + parts[1] + "." + parts[2] + "." + parts[3] + "." + parts[4], key),
                  ErrorCode::malformed, "protected header");
  require_failure(jose::decrypt_compact(parts[0] + "." + parts[1] + ".a=." + parts[3] + "." + parts[4], key),
                  ErrorCode::malformed, "initialization vector");
  require_failure(jose::decrypt_compact(tokctl::b64url_encode("[1]") + "." + parts[1] + "." + parts[2] + "." +
                                            parts[3] + "." + parts[4],
                                        key),
                  ErrorCode::malformed, "object");
  require_failure(jose::decrypt_compact(edit_segment(token, 0, [](std::string& h) { h.insert(1, "\"alg\":\"x\","); }), key),
                  ErrorCode::malformed, "duplicate");
  jose::JweLimits small;
  small.max_token_bytes = 100;
  require_failure(jose::decrypt_compact(token, key, small), ErrorCode::malformed, "100-byte limit");
}

TEST_CASE("encrypt refuses keys that do not fit the alg", "[jwe]") {
  struct Case {
    KeyMgmtAlg alg;
    jose::Jwk key;
    const char* needle;
  };
  const Case cases[] = {
      {KeyMgmtAlg::RSA_OAEP, secret(16), "needs an RSA key"},
      {KeyMgmtAlg::ECDH_ES, rsa_key(), "needs an EC"},
      {KeyMgmtAlg::ECDH_ES, unpinned(tokctl::test::test_key("ed25519")), "needs an EC"},
      {KeyMgmtAlg::A128KW, generated("EC", "P-256"), "symmetric"},
      {KeyMgmtAlg::A256KW, secret(16), "exactly 32 bytes"},
  };
  for (const auto& c : cases) {
    auto t = jose::encrypt_compact("x", c.key, opts(c.alg, ContentEnc::A128GCM));
    REQUIRE_FALSE(t);
    CHECK(t.error().code == ErrorCode::usage);
    CHECK_THAT(t.error().message, Catch::Contains(c.needle));
  }
  auto o = opts(KeyMgmtAlg::A128KW, ContentEnc::A128GCM);
  o.extra_header = {{"alg", "none"}};
  CHECK_FALSE(jose::encrypt_compact("x", secret(16), o));
  o.extra_header = json::array();
  CHECK_FALSE(jose::encrypt_compact("x", secret(16), o));
}
