// JSON Web Keys: parsing, PEM/DER import and export, key material sniffing, RFC 7638 thumbprints
// and key generation (tokctl/jose/jwk.hpp, tokctl/jose/keygen.hpp).

#include <tokctl/jose/jwk.hpp>

#include <tokctl/jose/algorithm.hpp>
#include <tokctl/jose/jws.hpp>
#include <tokctl/jose/keygen.hpp>
#include <tokctl/util/base64.hpp>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <string>
#include <string_view>

#include "support/keys.hpp"

using nlohmann::json;
using tokctl::ErrorCode;
using tokctl::jose::Jwk;
using tokctl::jose::KeyPart;
using tokctl::jose::KeyType;
using tokctl::test::test_key;
using tokctl::test::test_key_json;
using tokctl::test::test_key_pem;
using tokctl::test::test_key_public_pem;
namespace jose = tokctl::jose;

namespace {

// Further encodings of the fixed test keys, made with the openssl CLI from test_key_pem():
//   openssl rsa -in rsa2048.pem -traditional                  (PKCS#1 private)
//   openssl rsa -in rsa2048.pem -RSAPublicKey_out             (PKCS#1 public)
//   openssl ec -in p256.pem / p384.pem                        (SEC1)
//   openssl req -x509 -new -key p256.pem|rsa2048.pem -subj /CN=tokctl-test -days 36500
//   openssl pkey|x509|rsa ... -outform DER | base64 -w0       (the DER forms)
constexpr std::string_view k_rsa2048_pkcs1 = R"(-----BEGIN RSA PRIVATE KEY-----
MIIEogIBAAKCAQEAjk/OkSl+rYxVpqMeddct0JBL5MXc84yyYUtL7T3V9sBhXpNT
T4r53mV/dk3ocvFSxhmldmJQ5viWXNaiFFLtc4PC/54JZYKPs+0EBHpifmoGdsiQ
aY06DQx3pW4bTi5iXseRbtSxAqCgbF6ORrc7gj+8BEXHTWuz9wzAr2oRxYQiP9Nd
vTnnoLo+oEMVQZ16rOTbNhmR0XgjARW4qjUJgEUtGn3w6VGdMJM/OCxGQNyk8crk
lZYuWgquzDTONk89d8A+DhAV5+qUPYfLEExHg7aDlCAEPmyIezqofZX5Ex03CM1w
2Ofnrx1OnhKN9wWEOp9ukHerJpc6JjRAE6vPvQIDAQABAoIBABosOUxfOkoGtjXo
aBC6G1XxQ9P2Q9WS+beFFpiyN6ii5wVyyO6nG584QYHrgCWrllKSouir2j8wVs8K
NlLQkZUeFX3Xfdjqcy1fGM8OBxFCxJ+R8WVIMPX3ZgXJw0HUrAjMYUXl3gwiqH5l
wXrl9g7VU+nhP29QsI9uC/323v/ZMBEBSLUXW9e8ocbmwy/1E4vseeRcCtgp1UGf
Tev/09eV3flgcRuGpa4aeA6Do+5fAnpCAEwCrv3y+1FJNE23DFr6r2yirkndP0Bt
bsp3KqDAMQY5Wl4/J3qfi5MV2lzbCYy29OrxOd6c1cy3C1daZSksa0vKPyxwN2xB
iyC2yM0CgYEAwQXP4atOwnBUd7PAKZ19tlXHHC5+bKIW+GKxEWkHQUfRAbeU7zWQ
8v+penw3ukruw5Yyzre1wtJGPWzpBCNBflS2pZEas+G5WZ24PE5Prxz8p6KeXauJ
zQEd2Fh5WBfVD702BIVUhTeK5ACW+tOKqTdjzrLRaC6vh9P05chj5YcCgYEAvL5e
8rotOQvFQlBukjUZeCd0R6rE+5f9ts+oLvf+JS1aCHEyD3Hfb77Ezu31pEeYsRiN
TiFFI0gBwXX4AhWzf5ZuU37N25ZwlYPdwyL3n4+NXfvywoMi1su22/DVEDgadWtl
xd/cF25nGa5Ox4cvD92gatOHJX6efKOTBz33MZsCgYAcdn7xCBHVGjtaa2cqu86N
1JhHz5NU8ZHxjpwNtS8csTpgxnFv1LZLHuge57JQBjyvGrbjRLPIxrkU1bqGoaxG
tLc6Mut9Gwv56wf/3IxjhiK7lX9E0MbBNCjyfhlmpB0G9R/CCucrvcT9WhjpY8hO
q5xMHpJCip/Xp6m1OJeCgQKBgDTnn7Gl4fs1g2tdJEEzRRpa5MsZ4PEs318Ywem4
dbJyDeSD5iZSIvEtpfji1pHfx7sMSL93r+t9yZAywvvCnXfL8MzSpF1Cw/gE6GpE
KOi+0j9f2eIP4/oVTAJGdVKAh1oWaoaWgxjGR3v5Ufe3usdVtht7g0xNO5twNkw3
YEy1AoGANdMxXlx0EXwP31hwRYRtNPsNbyRUo3zHWWBMKfKTHUXw91L8hhgqtV68
ho+RThV1zWuGO/fz3g6O8w5h9Jt7bXmmblCVzBrAVIBDFVH4yuClshCuuTKcIatA
4pyHpXvsW0xCq+7cDegldWjjW50IgpGfXp0bFzna9C2GcvoUnoI=
-----END RSA PRIVATE KEY-----
)";

constexpr std::string_view k_rsa2048_pkcs1_public = R"(-----BEGIN RSA PUBLIC KEY-----
MIIBCgKCAQEAjk/OkSl+rYxVpqMeddct0JBL5MXc84yyYUtL7T3V9sBhXpNTT4r5
3mV/dk3ocvFSxhmldmJQ5viWXNaiFFLtc4PC/54JZYKPs+0EBHpifmoGdsiQaY06
DQx3pW4bTi5iXseRbtSxAqCgbF6ORrc7gj+8BEXHTWuz9wzAr2oRxYQiP9NdvTnn
oLo+oEMVQZ16rOTbNhmR0XgjARW4qjUJgEUtGn3w6VGdMJM/OCxGQNyk8crklZYu
WgquzDTONk89d8A+DhAV5+qUPYfLEExHg7aDlCAEPmyIezqofZX5Ex03CM1w2Ofn
rx1OnhKN9wWEOp9ukHerJpc6JjRAE6vPvQIDAQAB
-----END RSA PUBLIC KEY-----
)";

constexpr std::string_view k_p256_sec1 = R"(-----BEGIN EC PRIVATE KEY-----
MHcCAQEEICPFdtqhfArz1aekOVGnFGcjCmBtzhUpu3ywCo2uLzBhoAoGCCqGSM49
AwEHoUQDQgAEyXhRd90TPnyi3+onRZMhL0zfvPVGMi03dLvDbjA14YGQW4ZmiF0K
ZpgQFjkf6l1bmsvtsmqaaFrM0GUFCsfyEA==
-----END EC PRIVATE KEY-----
)";

constexpr std::string_view k_p384_sec1 = R"(-----BEGIN EC PRIVATE KEY-----
MIGkAgEBBDBAhOhiyVxwSdn9KHDofdrEernDvMoPyve5gi72UBzty+Ke9kDGf0KY
Z/WBMnwoQ56gBwYFK4EEACKhZANiAAQFMPSEYZTfn822NCL/CPqFVYUIIo7VV0Pb
cIf7/Cj2kBxfxohiS/7ltiuOH8X68BTiCDW8Ivk1DRi4yRTP1tgfCRBblY7E0nwD
vM/oAJBF1XnJWsPrhbEGwXgVdEsS5uI=
-----END EC PRIVATE KEY-----
)";

// Self-signed, valid 2026-11-22 to 2126-10-29, for the "p256" key.
constexpr std::string_view k_p256_cert = R"(-----BEGIN CERTIFICATE-----
MIIBgjCCASmgAwIBAgIUS0WBW+PdT6PxbfVKABB8OUFjmoEwCgYIKoZIzj0EAwIw
FjEUMBIGA1UEAwwLdG9rY3RsLXRlc3QwIBcNMjYxMTIyMDM1NzI4WhgPMjEyNjEw
MjkwMzU3MjhaMBYxFDASBgNVBAMMC3Rva2N0bC10ZXN0MFkwEwYHKoZIzj0CAQYI
KoZIzj0DAQcDQgAEyXhRd90TPnyi3+onRZMhL0zfvPVGMi03dLvDbjA14YGQW4Zm
iF0KZpgQFjkf6l1bmsvtsmqaaFrM0GUFCsfyEKNTMFEwHQYDVR0OBBYEFNj+APYG
RG5zkpYPNMDRkeCLwHzMMB8GA1UdIwQYMBaAFNj+APYGRG5zkpYPNMDRkeCLwHzM
MA8GA1UdEwEB/wQFMAMBAf8wCgYIKoZIzj0EAwIDRwAwRAIgYXBPEq/jgGhWIP+g
r2N0yNzrjmQN+mnGLeHelDA83V0CIEYU7cqdW/qVPPnNvY+V2PpYy1krKsg6I/yB
MlCpcQMf
-----END CERTIFICATE-----
)";

// Self-signed, for the "rsa2048" key.
constexpr std::string_view k_rsa2048_cert = R"(-----BEGIN CERTIFICATE-----
MIIDFzCCAf+gAwIBAgIUM4sjoqTjoR9GoYIlpIVzfM4YcJUwDQYJKoZIhvcNAQEL
BQAwGjEYMBYGA1UEAwwPdG9rY3RsLXRlc3QtcnNhMCAXDTI2MTEyMjAzNTcyOFoY
DzIxMjYxMDI5MDM1NzI4WjAaMRgwFgYDVQQDDA90b2tjdGwtdGVzdC1yc2EwggEi
MA0GCSqGSIb3DQEBAQUAA4IBDwAwggEKAoIBAQCOT86RKX6tjFWmox511y3QkEvk
xdzzjLJhS0vtPdX2wGFek1NPivneZX92Tehy8VLGGaV2YlDm+JZc1qIUUu1zg8L/
ngllgo+z7QQEemJ+agZ2yJBpjToNDHelbhtOLmJex5Fu1LECoKBsXo5GtzuCP7wE
RcdNa7P3DMCvahHFhCI/0129Oeeguj6gQxVBnXqs5Ns2GZHReCMBFbiqNQmARS0a
ffDpUZ0wkz84LEZA3KTxyuSVli5aCq7MNM42Tz13wD4OEBXn6pQ9h8sQTEeDtoOU
IAQ+bIh7Oqh9lfkTHTcIzXDY5+evHU6eEo33BYQ6n26Qd6smlzomNEATq8+9AgMB
AAGjUzBRMB0GA1UdDgQWBBST3rixHrpztzDEq/C9Am2zVPdoNzAfBgNVHSMEGDAW
gBST3rixHrpztzDEq/C9Am2zVPdoNzAPBgNVHRMBAf8EBTADAQH/MA0GCSqGSIb3
DQEBCwUAA4IBAQAQXSAMz74Ur85ntNv3ksBBjXlNBruK5pHoX1/k1TzHE+BFYGxj
QDN0OaMr2oKVrSswZ6Tdm9941E06KgWqrXIMgbKI1C0aNlRGpnoWfhVM7YefTL0A
bJL81NnTuOeLCHEPp90TkB23z1SWCTYMsQ/xaleGi1QlhpZVdg6BfzCuTL1o2NyR
o164npmKPkYl1sPpTAPQMGfvDTAtSwulhxeh8/wIbYqyZn8ePOntRvxZDDBYFUqq
QBW4qI9/zepm7pmGVP1ALXahT0hfoQqXteCmJd7ZUHG8x6NRghR279kZ9VBLhoYT
M/xiVHQXo7Ya5fDAW/rhBknfCWkWPc2kLGDw
-----END CERTIFICATE-----
)";

// A secp256k1 public key (a curve JOSE ES* does not use).
constexpr std::string_view k_secp256k1_spki = R"(-----BEGIN PUBLIC KEY-----
MFYwEAYHKoZIzj0CAQYFK4EEAAoDQgAERLuurQnRqxNBmnLJsNtJQrTTaV+9HfP8
qTCQ4XzPdSSaKv/IjrRYs0pR6tAjMKvNKnqWuDfGvmK4LskHqjvayA==
-----END PUBLIC KEY-----
)";

// DER, as standard base64.
constexpr std::string_view k_ed25519_pkcs8_der_b64 =
    "MC4CAQAwBQYDK2VwBCIEIO1Mk8nfV+aDXlvOvHgXK5n47sfrbLkQqpHXk3oZ/X4L";
constexpr std::string_view k_p256_spki_der_b64 =
    "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEyXhRd90TPnyi3+onRZMhL0zfvPVGMi03dLvDbjA14YGQW4ZmiF0KZpgQFjkf6l1bmsvtsmqaaFrM0GUFCsfyEA==";
constexpr std::string_view k_p256_cert_der_b64 =
    "MIIBgjCCASmgAwIBAgIUS0WBW+PdT6PxbfVKABB8OUFjmoEwCgYIKoZIzj0EAwIwFjEUMBIGA1UEAwwLdG9rY3RsLXRlc3Qw"
    "IBcNMjYxMTIyMDM1NzI4WhgPMjEyNjEwMjkwMzU3MjhaMBYxFDASBgNVBAMMC3Rva2N0bC10ZXN0MFkwEwYHKoZIzj0CAQYI"
    "KoZIzj0DAQcDQgAEyXhRd90TPnyi3+onRZMhL0zfvPVGMi03dLvDbjA14YGQW4ZmiF0KZpgQFjkf6l1bmsvtsmqaaFrM0GUF"
    "CsfyEKNTMFEwHQYDVR0OBBYEFNj+APYGRG5zkpYPNMDRkeCLwHzMMB8GA1UdIwQYMBaAFNj+APYGRG5zkpYPNMDRkeCLwHzM"
    "MA8GA1UdEwEB/wQFMAMBAf8wCgYIKoZIzj0EAwIDRwAwRAIgYXBPEq/jgGhWIP+gr2N0yNzrjmQN+mnGLeHelDA83V0CIEYU"
    "7cqdW/qVPPnNvY+V2PpYy1krKsg6I/yBMlCpcQMf";

// RFC 7638 thumbprints of the test keys, computed independently (Python hashlib over the
// canonical JSON of the required members).
struct Thumb {
  const char* key;
  const char* hash;
  const char* value;
};
constexpr Thumb k_thumbprints[] = {
    {"rsa2048", "sha256", "-ekfEVZJu1dBxfFvmVocwnaLm0iVoW625P9tfuVqX2c"},
    {"rsa2048", "sha512", "m7YSfADaLqwiSXsTrwGn-HQ3DVCc3_S6vNZjazYoDCkokVjxcOGuPm9FQYj966MEIrx4ndFXxqM6djxEWEv3Aw"},
    {"p256", "sha256", "0dxmUl4L2RuOAV6M9hZ9WR6sfAN9kyX_YgwOw9hAb6s"},
    {"p256", "sha384", "9kZrmIRaw6_6ta07PcH27xa7IMKqNdFcbEBZqNoEt9EWVwXEuRa-C1TqwYRut3_i"},
    {"p256", "sha512", "pB8MWjy6irDJ27kqNPkPwhIFT1a5VAnCaqAVunfRTcdx0f36v7YJPPlQ7dWnHLqgSBt_XzxAppxe6dOfb8cdXA"},
    {"p256", "sha1", "Cc2ANmBVSPx8u_A5CzukS2jhxPY"},
    {"p384", "sha256", "aCjzt-3OtD8u9Lq2ZWUHksn6aKxQL4xtzSHOFaoXCR8"},
    {"p521", "sha256", "SOPeQ4gtgho6AiTBn6d0boePYoMPF9fgN1DILOhQSNg"},
    {"ed25519", "sha256", "T9cybTXrgyPoA3CvpLXOJp8doBrSsZwzWnqlv4viNgQ"},
    {"ed25519", "sha1", "dvGwAURgzER6T_IO7wS_Rt3-zHM"},
    {"ed448", "sha256", "YBZIJCwt6EHDoVOr9bsH08ehKUnpTYgW90ccjnqFtjk"},
    {"x25519", "sha256", "5apKRMrQcHmKsGsc9WABIqISDHWSUQWHx2nIaBbh-h4"},
    {"hs256", "sha256", "wRFWCNUgfAemXHYCHQQAPnOFQquKnSMziD0Dh4XnYek"},
    {"hs384", "sha384", "oG7lpS0XnYZY3CqzXqXP8RdC_NKnDusgtI9SuKOvyFL8KMz74pQ4O-PCZFrqrIKb"},
    {"hs512", "sha256", "JbfD7GFpRp2Ze8zwmLjHnWywIGUOTQzoiIAkM3p03wU"},
};

json key_json(std::string_view name) { return json::parse(test_key_json(name)); }

json public_json(std::string_view name) {
  json j = key_json(name);
  for (const char* m : {"d", "p", "q", "dp", "dq", "qi"}) j.erase(m);
  return j;
}

std::string thumb(const Jwk& k, std::string_view hash = "sha256") {
  auto t = k.thumbprint(hash);
  REQUIRE(t.has_value());
  return *t;
}

Jwk parse_ok(const json& j) {
  auto k = Jwk::from_json(j);
  INFO(j.dump() << (k ? "" : " -> " + k.error().message));
  REQUIRE(k.has_value());
  return *k;
}

tokctl::Error parse_err(const json& j) {
  auto k = Jwk::from_json(j);
  INFO(j.dump());
  REQUIRE_FALSE(k.has_value());
  CHECK(k.error().code == ErrorCode::malformed);
  return k.error();
}

Jwk pem_ok(std::string_view pem) {
  auto k = Jwk::from_pem(pem);
  INFO((k ? "" : k.error().message));
  REQUIRE(k.has_value());
  return *k;
}

std::string der(std::string_view b64) {
  auto d = tokctl::b64_decode(b64);
  REQUIRE(d.has_value());
  return *d;
}

// The DER inside a one-block PEM.
std::string pem_der(std::string_view pem) {
  std::string body;
  std::size_t pos = pem.find('\n') + 1;
  while (pos < pem.size()) {
    std::size_t eol = pem.find('\n', pos);
    std::string_view line = pem.substr(pos, eol - pos);
    if (line.starts_with("-----END")) break;
    body += line;
    pos = eol + 1;
  }
  return der(body);
}

// Replaces member `m` (base64url) with the same bytes and the lowest bit of byte `i` flipped.
void flip(json& j, const char* m, std::size_t i = 0) {
  auto bytes = tokctl::b64url_decode(j[m].get<std::string>());
  REQUIRE(bytes.has_value());
  (*bytes)[i] = static_cast<char>((*bytes)[i] ^ 1);
  j[m] = tokctl::b64url_encode(*bytes);
}

void resize_member(json& j, const char* m, int delta) {
  auto bytes = tokctl::b64url_decode(j[m].get<std::string>());
  REQUIRE(bytes.has_value());
  if (delta > 0) bytes->insert(0, static_cast<std::size_t>(delta), '\0');
  else bytes->erase(0, static_cast<std::size_t>(-delta));
  j[m] = tokctl::b64url_encode(*bytes);
}

}  // namespace

// ---- from_json ---------------------------------------------------------------------------------

TEST_CASE("from_json parses every supported private key type", "[jwk]") {
  struct Expect {
    const char* name;
    KeyType kty;
    const char* crv;
    int bits;  // 0: not checked
  };
  const Expect cases[] = {
      {"rsa2048", KeyType::rsa, "", 2048},   {"rsa1024", KeyType::rsa, "", 1024},
      {"p256", KeyType::ec, "P-256", 256},   {"p384", KeyType::ec, "P-384", 384},
      {"p521", KeyType::ec, "P-521", 521},   {"ed25519", KeyType::okp, "Ed25519", 0},
      {"ed448", KeyType::okp, "Ed448", 0},   {"x25519", KeyType::okp, "X25519", 0},
      {"hs256", KeyType::oct, "", 256},      {"hs384", KeyType::oct, "", 384},
      {"hs512", KeyType::oct, "", 512},
  };
  for (const auto& c : cases) {
    INFO(c.name);
    Jwk k = parse_ok(key_json(c.name));
    CHECK(k.kty() == c.kty);
    CHECK(k.crv() == c.crv);
    CHECK(k.has_private());
    if (c.bits != 0) CHECK(k.bits() == c.bits);
    CHECK(k.kid().empty());
    CHECK(k.alg().empty());
    if (c.kty == KeyType::oct) {
      CHECK(k.pkey() == nullptr);
      CHECK(k.secret().size() == static_cast<std::size_t>(c.bits / 8));
    } else {
      CHECK(k.pkey() != nullptr);
      CHECK(k.secret().empty());
    }
  }
}

TEST_CASE("from_json parses every supported public key type", "[jwk]") {
  for (const char* name : {"rsa2048", "p256", "p384", "p521", "ed25519", "ed448", "x25519"}) {
    INFO(name);
    Jwk pub = parse_ok(public_json(name));
    CHECK_FALSE(pub.has_private());
    CHECK(pub.kty() == test_key(name).kty());
    CHECK(pub.crv() == test_key(name).crv());
    CHECK(thumb(pub) == thumb(test_key(name)));
  }
}

TEST_CASE("to_json with_private reproduces the original JWK", "[jwk]") {
  for (auto name : tokctl::test::test_key_names()) {
    INFO(name);
    CHECK(test_key(name).to_json(KeyPart::with_private) == key_json(name));
  }
}

TEST_CASE("to_json public_only has no private members and round-trips", "[jwk]") {
  for (auto name : tokctl::test::test_key_names()) {
    const Jwk& k = test_key(name);
    if (k.kty() == KeyType::oct) continue;
    INFO(name);
    json pub = k.to_json(KeyPart::public_only);
    for (const char* m : {"d", "p", "q", "dp", "dq", "qi", "k"}) CHECK_FALSE(pub.contains(m));
    CHECK(pub == public_json(name));
    Jwk again = parse_ok(pub);
    CHECK_FALSE(again.has_private());
    CHECK(again.to_json() == pub);
  }
}

TEST_CASE("to_json of an oct key always carries k", "[jwk]") {
  json j = test_key("hs256").to_json(KeyPart::public_only);
  CHECK(j["kty"] == "oct");
  CHECK(j["k"] == key_json("hs256")["k"]);
}

TEST_CASE("to_json with_private on a public key is the public JWK", "[jwk]") {
  Jwk pub = parse_ok(public_json("p256"));
  CHECK(pub.to_json(KeyPart::with_private) == public_json("p256"));
}

TEST_CASE("EC coordinates are padded to the field size in to_json", "[jwk]") {
  for (const char* name : {"p256", "p384", "p521"}) {
    json j = test_key(name).to_json(KeyPart::with_private);
    const std::size_t size = test_key(name).bits() == 521 ? 66 : test_key(name).bits() / 8;
    INFO(name);
    for (const char* m : {"x", "y", "d"}) CHECK(tokctl::b64url_decode(j[m].get<std::string>())->size() == size);
  }
}

TEST_CASE("from_json keeps kid, alg, use and key_ops and to_json writes them back", "[jwk]") {
  json j = public_json("p256");
  j["kid"] = "k1";
  j["alg"] = "ES256";
  j["use"] = "sig";
  j["key_ops"] = {"verify"};
  Jwk k = parse_ok(j);
  CHECK(k.kid() == "k1");
  CHECK(k.alg() == "ES256");
  CHECK(k.use() == "sig");
  CHECK(k.key_ops() == std::vector<std::string>{"verify"});
  CHECK(k.to_json() == j);
}

TEST_CASE("from_json ignores unknown members", "[jwk]") {
  json j = public_json("ed25519");
  j["x5t"] = "whatever";
  j["ext"] = true;
  CHECK(parse_ok(j).crv() == "Ed25519");
}

TEST_CASE("from_json rejects an unsupported kty or crv with a hint", "[jwk]") {
  auto e = parse_err(json{{"kty", "foo"}});
  CHECK_THAT(e.message, Catch::Contains("unsupported JWK") && Catch::Contains("foo"));
  CHECK_THAT(e.hint, Catch::Contains("P-256"));
  json ec = public_json("p256");
  ec["crv"] = "P-192";
  CHECK_THAT(parse_err(ec).message, Catch::Contains("P-192"));
  json okp = public_json("ed25519");
  okp["crv"] = "Ed1000";
  CHECK_THAT(parse_err(okp).message, Catch::Contains("Ed1000"));
  json missing_crv = public_json("p256");
  missing_crv.erase("crv");
  parse_err(missing_crv);
}

TEST_CASE("from_json rejects a missing or non-string kty and non-objects", "[jwk]") {
  parse_err(json::object());
  parse_err(json{{"kty", 1}});
  parse_err(json::array());
  parse_err(json("RSA"));
}

TEST_CASE("from_json rejects missing, empty, non-string or badly encoded members", "[jwk]") {
  json no_n = public_json("rsa2048");
  no_n.erase("n");
  CHECK_THAT(parse_err(no_n).message, Catch::Contains("\"n\""));

  json num = public_json("rsa2048");
  num["e"] = 65537;
  CHECK_THAT(parse_err(num).message, Catch::Contains("must be a string"));

  json padded = public_json("p256");
  padded["x"] = padded["x"].get<std::string>() + "=";
  CHECK_THAT(parse_err(padded).message, Catch::Contains("\"x\""));

  json std_alphabet = public_json("ed25519");
  std_alphabet["x"] = "1cMMhpqifQAlHBVmh9L6tN8HjknCxzB79/1eakfrr+g";
  parse_err(std_alphabet);

  parse_err(json{{"kty", "oct"}, {"k", ""}});
  parse_err(json{{"kty", "oct"}});
  json no_y = public_json("p256");
  no_y.erase("y");
  parse_err(no_y);
  json no_x = public_json("ed25519");
  no_x.erase("x");
  parse_err(no_x);
}

TEST_CASE("from_json rejects non-string kid, alg, use and bad key_ops", "[jwk]") {
  for (const char* m : {"kid", "alg", "use"}) {
    json j = public_json("p256");
    j[m] = 5;
    INFO(m);
    parse_err(j);
  }
  json ops = public_json("p256");
  ops["key_ops"] = "verify";
  parse_err(ops);
  ops["key_ops"] = {1};
  parse_err(ops);
}

TEST_CASE("from_json rejects an EC point that is not on the curve", "[jwk]") {
  for (const char* name : {"p256", "p384", "p521"}) {
    INFO(name);
    json j = public_json(name);
    flip(j, "y", j["crv"] == "P-521" ? 65 : 31);
    parse_err(j);
    json priv = key_json(name);
    flip(priv, "y", 20);
    parse_err(priv);
  }
}

TEST_CASE("from_json rejects an EC private key d that does not match x and y", "[jwk]") {
  json j = key_json("p256");
  j["d"] = key_json("p256b")["d"];
  parse_err(j);
}

TEST_CASE("from_json rejects EC coordinates of the wrong length", "[jwk]") {
  for (const char* name : {"p256", "p384", "p521"}) {
    for (const char* m : {"x", "y", "d"}) {
      for (int delta : {-1, +1}) {
        INFO(name << " " << m << " " << delta);
        json j = key_json(name);
        resize_member(j, m, delta);
        auto e = parse_err(j);
        if (delta > 0 || std::string(m) != "d") CHECK_THAT(e.message, Catch::Contains("exactly"));
      }
    }
  }
}

TEST_CASE("from_json rejects an OKP x that does not match d", "[jwk]") {
  for (const char* name : {"ed25519", "ed448", "x25519"}) {
    INFO(name);
    json j = key_json(name);
    flip(j, "x", 3);
    CHECK_THAT(parse_err(j).message, Catch::Contains("does not match"));
  }
}

TEST_CASE("from_json rejects OKP keys of the wrong length", "[jwk]") {
  for (const char* m : {"x", "d"}) {
    json j = key_json("ed25519");
    resize_member(j, m, +1);
    INFO(m);
    CHECK_THAT(parse_err(j).message, Catch::Contains("wrong key length"));
  }
  json ed448_as_25519 = public_json("ed448");
  ed448_as_25519["crv"] = "Ed25519";
  parse_err(ed448_as_25519);
}

TEST_CASE("from_json rejects an RSA key with only some CRT members or with oth", "[jwk]") {
  json partial = key_json("rsa2048");
  partial.erase("dq");
  CHECK_THAT(parse_err(partial).message, Catch::Contains("some but not all"));
  json oth = key_json("rsa2048");
  oth["oth"] = json::array();
  CHECK_THAT(parse_err(oth).message, Catch::Contains("oth"));
}

TEST_CASE("from_json accepts an RSA private key without CRT members", "[jwk]") {
  json j = key_json("rsa2048");
  for (const char* m : {"p", "q", "dp", "dq", "qi"}) j.erase(m);
  Jwk k = parse_ok(j);
  CHECK(k.has_private());
  auto sig = jose::sign(jose::Alg::RS256, k, "input");
  REQUIRE(sig.has_value());
  auto v = jose::SignatureVerifier::create(jose::Alg::RS256, test_key("rsa2048"));
  REQUIRE(v.has_value());
  CHECK(v->verify("input", *sig));
}

TEST_CASE("from_json rejects an RSA key with an even modulus or exponent 1", "[jwk]") {
  json even = public_json("rsa2048");
  flip(even, "n", 255);
  parse_err(even);
  json e1 = public_json("rsa2048");
  e1["e"] = "AQ";
  parse_err(e1);
}

TEST_CASE("from_secret makes an oct key and rejects an empty secret", "[jwk]") {
  auto k = Jwk::from_secret(std::string(40, 'x'));
  REQUIRE(k.has_value());
  CHECK(k->kty() == KeyType::oct);
  CHECK(k->bits() == 320);
  CHECK(k->secret() == std::string(40, 'x'));
  auto empty = Jwk::from_secret("");
  REQUIRE_FALSE(empty.has_value());
  CHECK(empty.error().code == ErrorCode::malformed);
}

TEST_CASE("copies of a Jwk share the parsed key", "[jwk]") {
  const Jwk& k = test_key("p256");
  Jwk copy = k;
  CHECK(copy.pkey() == k.pkey());
  copy.set_kid("changed");
  CHECK(k.kid().empty());
}

TEST_CASE("describe names the type, size and private part", "[jwk]") {
  CHECK(test_key("rsa2048").describe() == "RSA 2048-bit private key");
  CHECK(parse_ok(public_json("p256")).describe() == "EC P-256 public key");
  CHECK(test_key("ed25519").describe() == "OKP Ed25519 private key");
  CHECK(test_key("hs256").describe() == "oct 256-bit secret");
}

TEST_CASE("to_string names each key type", "[jwk]") {
  CHECK(std::string(jose::to_string(KeyType::rsa)) == "RSA");
  CHECK(std::string(jose::to_string(KeyType::ec)) == "EC");
  CHECK(std::string(jose::to_string(KeyType::okp)) == "OKP");
  CHECK(std::string(jose::to_string(KeyType::oct)) == "oct");
}

// ---- to_public ---------------------------------------------------------------------------------

TEST_CASE("to_public drops the private part and keeps the metadata", "[jwk]") {
  Jwk k = test_key("p384");
  k.set_kid("k9");
  k.set_alg("ES384");
  auto pub = k.to_public();
  REQUIRE(pub.has_value());
  CHECK_FALSE(pub->has_private());
  CHECK(pub->kid() == "k9");
  CHECK(pub->alg() == "ES384");
  CHECK_FALSE(pub->to_json(KeyPart::with_private).contains("d"));
  CHECK(thumb(*pub) == thumb(k));
}

TEST_CASE("to_public of an oct key is a usage error", "[jwk]") {
  auto pub = test_key("hs256").to_public();
  REQUIRE_FALSE(pub.has_value());
  CHECK(pub.error().code == ErrorCode::usage);
}

// ---- PEM and DER -------------------------------------------------------------------------------

TEST_CASE("from_pem imports PKCS#8 private keys of every type", "[jwk][pem]") {
  for (const char* name : {"rsa2048", "p256", "p384", "p521", "ed25519", "ed448", "x25519"}) {
    INFO(name);
    Jwk k = pem_ok(test_key_pem(name));
    CHECK(k.has_private());
    CHECK(k.to_json(KeyPart::with_private) == key_json(name));
  }
}

TEST_CASE("from_pem imports SPKI public keys of every type", "[jwk][pem]") {
  for (const char* name : {"rsa2048", "p256", "p384", "p521", "ed25519", "ed448", "x25519"}) {
    INFO(name);
    Jwk k = pem_ok(test_key_public_pem(name));
    CHECK_FALSE(k.has_private());
    CHECK(k.to_json() == public_json(name));
  }
}

TEST_CASE("from_pem imports PKCS#1 RSA private and public keys", "[jwk][pem]") {
  Jwk priv = pem_ok(k_rsa2048_pkcs1);
  CHECK(priv.has_private());
  CHECK(priv.to_json(KeyPart::with_private) == key_json("rsa2048"));
  Jwk pub = pem_ok(k_rsa2048_pkcs1_public);
  CHECK_FALSE(pub.has_private());
  CHECK(pub.to_json() == public_json("rsa2048"));
}

TEST_CASE("from_pem imports SEC1 EC private keys", "[jwk][pem]") {
  Jwk p256 = pem_ok(k_p256_sec1);
  CHECK(p256.has_private());
  CHECK(p256.to_json(KeyPart::with_private) == key_json("p256"));
  Jwk p384 = pem_ok(k_p384_sec1);
  CHECK(p384.to_json(KeyPart::with_private) == key_json("p384"));
}

TEST_CASE("from_pem imports the public key of an X.509 certificate", "[jwk][pem]") {
  Jwk ec = pem_ok(k_p256_cert);
  CHECK_FALSE(ec.has_private());
  CHECK(ec.to_json() == public_json("p256"));
  Jwk rsa = pem_ok(k_rsa2048_cert);
  CHECK_FALSE(rsa.has_private());
  CHECK(rsa.bits() == 2048);
  CHECK(rsa.to_json() == public_json("rsa2048"));
}

TEST_CASE("from_pem refuses an encrypted private key with a hint", "[jwk][pem]") {
  auto k = Jwk::from_pem("-----BEGIN ENCRYPTED PRIVATE KEY-----\nMIIBvTBXBgkqhkiG9w0BBQ0wSjAp\n"
                         "-----END ENCRYPTED PRIVATE KEY-----\n");
  REQUIRE_FALSE(k.has_value());
  CHECK(k.error().code == ErrorCode::malformed);
  CHECK_THAT(k.error().message, Catch::Contains("encrypted"));
  CHECK_THAT(k.error().hint, Catch::Contains("openssl pkey"));
}

TEST_CASE("from_pem rejects garbage, truncated blocks and unsupported curves", "[jwk][pem]") {
  for (std::string_view pem :
       {std::string_view("-----BEGIN PUBLIC KEY-----\nnot base64!\n-----END PUBLIC KEY-----\n"),
        std::string_view("hello"), test_key_public_pem("p256").substr(0, 60), k_secp256k1_spki}) {
    INFO(pem);
    auto k = Jwk::from_pem(pem);
    REQUIRE_FALSE(k.has_value());
    CHECK(k.error().code == ErrorCode::malformed);
  }
  auto k1 = Jwk::from_pem(k_secp256k1_spki);
  REQUIRE_FALSE(k1);
  CHECK_THAT(k1.error().message, Catch::Contains("secp256k1"));
}

TEST_CASE("from_der imports PKCS#8, SPKI, PKCS#1 and certificates", "[jwk][der]") {
  auto ed = Jwk::from_der(der(k_ed25519_pkcs8_der_b64));
  REQUIRE(ed.has_value());
  CHECK(ed->to_json(KeyPart::with_private) == key_json("ed25519"));
  auto spki = Jwk::from_der(der(k_p256_spki_der_b64));
  REQUIRE(spki.has_value());
  CHECK(spki->to_json() == public_json("p256"));
  auto cert = Jwk::from_der(der(k_p256_cert_der_b64));
  REQUIRE(cert.has_value());
  CHECK(cert->to_json() == public_json("p256"));
  auto pkcs1 = Jwk::from_der(pem_der(k_rsa2048_pkcs1));
  REQUIRE(pkcs1.has_value());
  CHECK(pkcs1->to_json(KeyPart::with_private) == key_json("rsa2048"));
  auto sec1 = Jwk::from_der(pem_der(k_p256_sec1));
  REQUIRE(sec1.has_value());
  CHECK(sec1->to_json(KeyPart::with_private) == key_json("p256"));
  auto garbage = Jwk::from_der(std::string("\x30\x03\x02\x01\x00", 5));
  REQUIRE_FALSE(garbage.has_value());
  CHECK(garbage.error().code == ErrorCode::malformed);
}

TEST_CASE("to_pem writes PKCS#8 and SPKI that from_pem reads back", "[jwk][pem]") {
  for (const char* name : {"rsa2048", "p256", "p384", "p521", "ed25519", "ed448"}) {
    INFO(name);
    const Jwk& k = test_key(name);
    auto priv = k.to_pem(KeyPart::with_private);
    REQUIRE(priv.has_value());
    CHECK_THAT(*priv, Catch::StartsWith("-----BEGIN PRIVATE KEY-----"));
    CHECK(pem_ok(*priv).to_json(KeyPart::with_private) == key_json(name));
    auto pub = k.to_pem(KeyPart::public_only);
    REQUIRE(pub.has_value());
    CHECK(*pub == test_key_public_pem(name));
    Jwk back = pem_ok(*pub);
    CHECK_FALSE(back.has_private());
    CHECK(back.to_json() == public_json(name));
  }
}

TEST_CASE("to_pem of a public key is SPKI even when the private part is asked for", "[jwk][pem]") {
  auto pem = parse_ok(public_json("ed25519")).to_pem(KeyPart::with_private);
  REQUIRE(pem.has_value());
  CHECK(*pem == test_key_public_pem("ed25519"));
}

TEST_CASE("to_pem of an oct key is a usage error", "[jwk][pem]") {
  auto pem = test_key("hs256").to_pem(KeyPart::with_private);
  REQUIRE_FALSE(pem.has_value());
  CHECK(pem.error().code == ErrorCode::usage);
}

// ---- JWKS and sniffing -------------------------------------------------------------------------

TEST_CASE("parse_jwks reads every key with its kid", "[jwk][jwks]") {
  json a = public_json("p256"), b = public_json("rsa2048"), c = key_json("hs256");
  a["kid"] = "k1";
  b["kid"] = "k2";
  auto set = jose::parse_jwks(json{{"keys", {a, b, c}}});
  REQUIRE(set.has_value());
  REQUIRE(set->keys.size() == 3);
  CHECK(set->keys[0].kid() == "k1");
  CHECK(set->keys[1].kty() == KeyType::rsa);
  CHECK(set->kid_list() == "k1, k2, (no kid)");
}

TEST_CASE("parse_jwks skips keys of unsupported kty or crv", "[jwk][jwks]") {
  json p = public_json("p256");
  p["kid"] = "ok";
  json unknown_ec = public_json("p256");
  unknown_ec["crv"] = "P-192";
  auto set = jose::parse_jwks(json{{"keys", {{{"kty", "PQC"}, {"kid", "new"}}, p, unknown_ec}}});
  REQUIRE(set.has_value());
  REQUIRE(set->keys.size() == 1);
  CHECK(set->keys[0].kid() == "ok");
}

TEST_CASE("parse_jwks fails on a broken key of a supported type, naming its index", "[jwk][jwks]") {
  json bad = public_json("p256");
  flip(bad, "y", 31);
  auto set = jose::parse_jwks(json{{"keys", {public_json("ed25519"), bad}}});
  REQUIRE_FALSE(set.has_value());
  CHECK(set.error().code == ErrorCode::malformed);
  CHECK_THAT(set.error().message, Catch::Contains("#1"));
}

TEST_CASE("parse_jwks requires an object with a keys array", "[jwk][jwks]") {
  for (const json& j : {json::array(), json::object(), json{{"keys", "x"}}, json{{"keys", json::object()}}}) {
    INFO(j.dump());
    auto set = jose::parse_jwks(j);
    REQUIRE_FALSE(set.has_value());
    CHECK(set.error().code == ErrorCode::malformed);
  }
  auto empty = jose::parse_jwks(json{{"keys", json::array()}});
  REQUIRE(empty.has_value());
  CHECK(empty->keys.empty());
}

TEST_CASE("JwkSet to_json writes public keys", "[jwk][jwks]") {
  jose::JwkSet set{{test_key("p256"), test_key("ed25519")}};
  json j = set.to_json();
  REQUIRE(j["keys"].size() == 2);
  CHECK(j["keys"][0] == public_json("p256"));
  CHECK_FALSE(j["keys"][1].contains("d"));
  CHECK(set.to_json(KeyPart::with_private)["keys"][1] == key_json("ed25519"));
}

TEST_CASE("parse_key_material sniffs a JWK object", "[jwk][sniff]") {
  auto set = jose::parse_key_material("\n  " + std::string(test_key_json("ed448")) + "\n");
  REQUIRE(set.has_value());
  REQUIRE(set->keys.size() == 1);
  CHECK(set->keys[0].crv() == "Ed448");
}

TEST_CASE("parse_key_material sniffs a JWKS", "[jwk][sniff]") {
  json jwks{{"keys", {public_json("p256"), public_json("p384")}}};
  auto set = jose::parse_key_material(jwks.dump(2));
  REQUIRE(set.has_value());
  REQUIRE(set->keys.size() == 2);
  CHECK(set->keys[1].crv() == "P-384");
}

TEST_CASE("parse_key_material sniffs one PEM block", "[jwk][sniff]") {
  auto set = jose::parse_key_material(test_key_pem("rsa2048"));
  REQUIRE(set.has_value());
  REQUIRE(set->keys.size() == 1);
  CHECK(set->keys[0].has_private());
}

TEST_CASE("parse_key_material reads several PEM blocks in order", "[jwk][sniff]") {
  std::string bundle = "keys for the gateway\n" + std::string(test_key_public_pem("p256")) +
                       std::string(k_rsa2048_cert) + "\n" + std::string(test_key_pem("ed25519")) +
                       std::string(k_rsa2048_pkcs1_public);
  auto set = jose::parse_key_material(bundle);
  REQUIRE(set.has_value());
  REQUIRE(set->keys.size() == 4);
  CHECK(set->keys[0].crv() == "P-256");
  CHECK(set->keys[1].kty() == KeyType::rsa);
  CHECK_FALSE(set->keys[1].has_private());
  CHECK(set->keys[2].crv() == "Ed25519");
  CHECK(set->keys[2].has_private());
  CHECK(set->keys[3].kty() == KeyType::rsa);
}

TEST_CASE("parse_key_material sniffs DER", "[jwk][sniff]") {
  auto set = jose::parse_key_material(der(k_p256_spki_der_b64));
  REQUIRE(set.has_value());
  REQUIRE(set->keys.size() == 1);
  CHECK(set->keys[0].to_json() == public_json("p256"));
  auto pkcs1 = jose::parse_key_material(pem_der(k_rsa2048_pkcs1));
  REQUIRE(pkcs1.has_value());
  CHECK(pkcs1->keys[0].to_json(KeyPart::with_private) == key_json("rsa2048"));
}

// Regression (was a core bug): from_der is documented to read PKCS#1, and reads the private RSAPrivateKey DER, but
// not the public RSAPublicKey DER (`openssl rsa -RSAPublicKey_out -outform DER`): the OpenSSL
// decoder, given no key type, takes SEQUENCE{INTEGER n, INTEGER e} for DH parameters and the call
// fails with "unsupported key type 'DH'". The PEM form ("RSA PUBLIC KEY") works because its label
// names the type.
TEST_CASE("from_der and parse_key_material read a PKCS#1 RSA public key", "[jwk][der]") {
  auto direct = Jwk::from_der(pem_der(k_rsa2048_pkcs1_public));
  INFO((direct ? "" : direct.error().message));
  REQUIRE(direct.has_value());
  CHECK(direct->to_json() == public_json("rsa2048"));
  auto sniffed = jose::parse_key_material(pem_der(k_rsa2048_pkcs1_public));
  REQUIRE(sniffed.has_value());
  CHECK(sniffed->keys[0].to_json() == public_json("rsa2048"));
}

TEST_CASE("parse_key_material rejects empty input, plain text and broken PEM", "[jwk][sniff]") {
  for (std::string_view text : {std::string_view(""), std::string_view(" \n\t"),
                                std::string_view("correct horse battery staple"),
                                std::string_view("-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYI\n")}) {
    INFO("'" << text << "'");
    auto set = jose::parse_key_material(text);
    REQUIRE_FALSE(set.has_value());
    CHECK(set.error().code == ErrorCode::malformed);
  }
  auto plain = jose::parse_key_material("correct horse battery staple");
  REQUIRE_FALSE(plain);
  CHECK_THAT(plain.error().message, Catch::Contains("not a JWK, JWKS, PEM or DER"));
  CHECK_THAT(plain.error().hint, Catch::Contains("secret file"));
  auto no_end = jose::parse_key_material("-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYI\n");
  REQUIRE_FALSE(no_end);
  CHECK_THAT(no_end.error().message, Catch::Contains("-----END PUBLIC KEY-----"));
}

TEST_CASE("parse_key_material applies strict JSON to JWKs", "[jwk][sniff]") {
  std::string dup = R"({"kty":"oct","k":"AAAA","k":"BBBB"})";
  auto set = jose::parse_key_material(dup);
  REQUIRE_FALSE(set.has_value());
  CHECK_THAT(set.error().message, Catch::Contains("duplicate"));
  auto not_object = jose::parse_key_material("{\"kty\":");
  REQUIRE_FALSE(not_object.has_value());
}

TEST_CASE("parse_single_key wants exactly one key", "[jwk][sniff]") {
  auto one = jose::parse_single_key(test_key_public_pem("p521"));
  REQUIRE(one.has_value());
  CHECK(one->crv() == "P-521");
  auto two = jose::parse_single_key(std::string(test_key_public_pem("p256")) +
                                    std::string(test_key_public_pem("p384")));
  REQUIRE_FALSE(two.has_value());
  CHECK(two.error().code == ErrorCode::usage);
  CHECK_THAT(two.error().message, Catch::Contains("found 2"));
  auto none = jose::parse_single_key(R"({"keys":[]})");
  REQUIRE_FALSE(none.has_value());
}

TEST_CASE("looks_like_asymmetric_key spots public-key material", "[jwk][sniff]") {
  using jose::looks_like_asymmetric_key;
  CHECK(looks_like_asymmetric_key(test_key_public_pem("rsa2048")));
  CHECK(looks_like_asymmetric_key(test_key_pem("p256")));
  CHECK(looks_like_asymmetric_key(k_p256_cert));
  CHECK(looks_like_asymmetric_key("\n" + public_json("rsa2048").dump() + "\n"));
  CHECK(looks_like_asymmetric_key(public_json("p256").dump()));
  CHECK(looks_like_asymmetric_key(public_json("ed25519").dump()));
  CHECK(looks_like_asymmetric_key(json{{"keys", json::array()}}.dump()));
  CHECK(looks_like_asymmetric_key(der(k_p256_spki_der_b64)));
  CHECK(looks_like_asymmetric_key(der(k_p256_cert_der_b64)));
}

TEST_CASE("looks_like_asymmetric_key lets ordinary secrets through", "[jwk][sniff]") {
  using jose::looks_like_asymmetric_key;
  CHECK_FALSE(looks_like_asymmetric_key(test_key("hs256").secret()));
  CHECK_FALSE(looks_like_asymmetric_key("my-very-long-shared-secret-value-0123456789abcdef"));
  CHECK_FALSE(looks_like_asymmetric_key(key_json("hs256").dump()));
  CHECK_FALSE(looks_like_asymmetric_key("{not json at all, just a brace-y secret}"));
  CHECK_FALSE(looks_like_asymmetric_key(std::string(64, '\x30')));
  CHECK_FALSE(looks_like_asymmetric_key(""));
}

// ---- thumbprints -------------------------------------------------------------------------------

TEST_CASE("thumbprint matches independently computed RFC 7638 values for every kty", "[jwk][thumbprint]") {
  for (const auto& t : k_thumbprints) {
    INFO(t.key << " " << t.hash);
    CHECK(thumb(test_key(t.key), t.hash) == t.value);
  }
}

TEST_CASE("thumbprint defaults to sha256 and has the digest's length", "[jwk][thumbprint]") {
  const Jwk& k = test_key("p256");
  auto def = k.thumbprint();
  REQUIRE(def.has_value());
  CHECK(*def == thumb(k, "sha256"));
  CHECK(def->size() == 43);
  CHECK(thumb(k, "sha384").size() == 64);
  CHECK(thumb(k, "sha512").size() == 86);
  CHECK(thumb(k, "sha1").size() == 27);
}

TEST_CASE("thumbprint ignores private parts and metadata", "[jwk][thumbprint]") {
  for (const char* name : {"rsa2048", "p521", "ed448"}) {
    INFO(name);
    json pub = public_json(name);
    pub["kid"] = "some-kid";
    pub["alg"] = "whatever";
    pub["use"] = "sig";
    CHECK(thumb(parse_ok(pub)) == thumb(test_key(name)));
  }
}

TEST_CASE("thumbprint of different keys differs", "[jwk][thumbprint]") {
  CHECK(thumb(test_key("p256")) != thumb(test_key("p256b")));
  CHECK(thumb(test_key("rsa2048")) != thumb(test_key("rsa2048b")));
}

TEST_CASE("thumbprint rejects an unknown hash with ErrorCode::usage", "[jwk][thumbprint]") {
  for (const char* hash : {"md5", "SHA256", "sha-256", ""}) {
    INFO(hash);
    auto t = test_key("p256").thumbprint(hash);
    REQUIRE_FALSE(t.has_value());
    CHECK(t.error().code == ErrorCode::usage);
  }
}

// ---- generate_key ------------------------------------------------------------------------------

namespace {

Jwk generated(jose::KeyGenOptions o) {
  auto k = jose::generate_key(o);
  INFO(o.alg << (k ? "" : " -> " + k.error().message));
  REQUIRE(k.has_value());
  CHECK(k->alg() == o.alg);
  CHECK(k->kid().empty());
  CHECK(k->has_private());
  return *k;
}

void generate_refused(jose::KeyGenOptions o) {
  auto k = jose::generate_key(o);
  INFO(o.alg << " bits " << o.bits.value_or(-1) << " crv " << o.crv.value_or("-"));
  REQUIRE_FALSE(k.has_value());
  CHECK(k.error().code == ErrorCode::usage);
}

// A generated key signs, and its public half verifies.
void check_usable(const Jwk& k, jose::Alg alg) {
  auto jws = jose::sign_compact(json::object(), "payload", alg, k);
  REQUIRE(jws.has_value());
  auto parsed = jose::parse_compact(*jws);
  REQUIRE(parsed.has_value());
  auto verify_key = k.kty() == KeyType::oct ? k : *k.to_public();
  auto v = jose::SignatureVerifier::create(alg, verify_key);
  REQUIRE(v.has_value());
  CHECK(v->verify(parsed->signing_input(), parsed->signature));
}

}  // namespace

TEST_CASE("generate_key makes HMAC secrets as long as the hash by default", "[jwk][keygen]") {
  const std::pair<const char*, int> cases[] = {{"HS256", 256}, {"HS384", 384}, {"HS512", 512}};
  for (auto [alg, bits] : cases) {
    Jwk k = generated({alg, {}, {}});
    CHECK(k.kty() == KeyType::oct);
    CHECK(k.bits() == bits);
    check_usable(k, *jose::alg_from_string(alg));
  }
  CHECK(generated({"HS256", 512, {}}).bits() == 512);
  CHECK(generated({"HS256", {}, {}}).secret() != generated({"HS256", {}, {}}).secret());
}

TEST_CASE("generate_key refuses HMAC secrets shorter than the hash or not whole bytes", "[jwk][keygen]") {
  generate_refused({"HS256", 128, {}});
  generate_refused({"HS256", 255, {}});
  generate_refused({"HS256", 260, {}});
  generate_refused({"HS384", 256, {}});
  generate_refused({"HS512", 384, {}});
  generate_refused({"HS256", {}, "P-256"});
}

TEST_CASE("generate_key makes EC keys on the curve of the alg", "[jwk][keygen]") {
  const std::tuple<const char*, const char*, int> cases[] = {
      {"ES256", "P-256", 256}, {"ES384", "P-384", 384}, {"ES512", "P-521", 521}};
  for (auto [alg, crv, bits] : cases) {
    Jwk k = generated({alg, {}, {}});
    CHECK(k.kty() == KeyType::ec);
    CHECK(k.crv() == crv);
    CHECK(k.bits() == bits);
    check_usable(k, *jose::alg_from_string(alg));
  }
  CHECK(generated({"ES384", {}, "P-384"}).crv() == "P-384");
}

TEST_CASE("generate_key refuses a curve or bits that do not fit an EC alg", "[jwk][keygen]") {
  generate_refused({"ES256", {}, "P-384"});
  generate_refused({"ES512", {}, "P-512"});
  generate_refused({"ES256", 256, {}});
}

TEST_CASE("generate_key makes Ed25519 by default and Ed448 on request", "[jwk][keygen]") {
  Jwk ed25519 = generated({"EdDSA", {}, {}});
  CHECK(ed25519.kty() == KeyType::okp);
  CHECK(ed25519.crv() == "Ed25519");
  check_usable(ed25519, jose::Alg::EdDSA);
  Jwk ed448 = generated({"EdDSA", {}, "Ed448"});
  CHECK(ed448.crv() == "Ed448");
  check_usable(ed448, jose::Alg::EdDSA);
  generate_refused({"EdDSA", {}, "X25519"});
  generate_refused({"EdDSA", {}, "P-256"});
  generate_refused({"EdDSA", 256, {}});
}

TEST_CASE("generate_key makes 2048-bit RSA keys by default", "[jwk][keygen]") {
  // Two RSA generations only: they are the slow part of this suite.
  Jwk rs = generated({"RS256", {}, {}});
  CHECK(rs.kty() == KeyType::rsa);
  CHECK(rs.bits() == 2048);
  check_usable(rs, jose::Alg::RS256);
  Jwk ps = generated({"PS512", {}, {}});
  CHECK(ps.bits() == 2048);
  check_usable(ps, jose::Alg::PS512);
}

TEST_CASE("generate_key refuses RSA keys under 2048 bits and a curve for RSA", "[jwk][keygen]") {
  for (const char* alg : {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512"}) {
    generate_refused({alg, 1024, {}});
    generate_refused({alg, 2047, {}});
  }
  generate_refused({"RS256", {}, "P-256"});
  generate_refused({"RS256", 32768, {}});
}

TEST_CASE("generate_key refuses unknown algs and none", "[jwk][keygen]") {
  for (const char* alg : {"none", "", "HS1", "es256", "RSA1_5", "ES256K"}) {
    INFO(alg);
    auto k = jose::generate_key({alg, {}, {}});
    REQUIRE_FALSE(k.has_value());
    CHECK(k.error().code == ErrorCode::usage);
    CHECK_THAT(k.error().hint, Catch::Contains("ES256"));
  }
}

TEST_CASE("KeyCheck::trusted skips the pairwise check that KeyCheck::full makes", "[jwk]") {
  // A private part that is not the public part's: only the full check (keys from outside, keys
  // check) refuses it; the keystore's own thumbprint-checked files load without the cost.
  auto a = tokctl::jose::Jwk::from_json(json::parse(tokctl::test::test_key_json("p256")));
  REQUIRE(a);
  tokctl::jose::KeyGenOptions es256;
  es256.alg = "ES256";
  auto b = tokctl::jose::generate_key(es256);
  REQUIRE(b);
  json mixed = a->to_json(tokctl::jose::KeyPart::with_private);
  mixed["d"] = b->to_json(tokctl::jose::KeyPart::with_private)["d"];
  auto full = tokctl::jose::Jwk::from_json(mixed);
  REQUIRE_FALSE(full);
  CHECK(full.error().message.find("do not match") != std::string::npos);
  CHECK(tokctl::jose::Jwk::from_json(mixed, tokctl::jose::KeyCheck::trusted));
  // Off the curve is refused either way (OpenSSL's import checks the point).
  json off = a->to_json();
  std::string x = *tokctl::b64url_decode(off["x"].get<std::string>());
  x[31] = static_cast<char>(x[31] ^ 1);
  off["x"] = tokctl::b64url_encode(x);
  CHECK_FALSE(tokctl::jose::Jwk::from_json(off, tokctl::jose::KeyCheck::trusted));
}
