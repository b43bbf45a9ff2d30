// CLI tests: run the real tokctl binary and check its stdout, stderr and exit code (issue 2,
// points 5-7). Times are pinned with --now and keys are generated once per run, so nothing depends
// on the wall clock except the tests of relative --now values, which allow a wide margin.

#include <catch2/catch.hpp>

#include <algorithm>
#include <ctime>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <sys/stat.h>
#include <unistd.h>
#include <vector>

#include <nlohmann/json.hpp>
#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>

#include "support/jws_helpers.hpp"
#include "support/run.hpp"

namespace {

using nlohmann::json;
using tokctl::test::read_file;
using tokctl::test::run;
using tokctl::test::run_program;
using tokctl::test::rss_bound_factor;
using tokctl::test::run_with_peak_rss;
using tokctl::test::run_with_stdin_path;
using tokctl::test::RunResult;
using tokctl::test::TempDir;
using tokctl::test::write_file;
using Catch::Matchers::Contains;
using Catch::Matchers::StartsWith;

// 2026-01-01T00:00:00Z, the fixed "now" of most tests.
constexpr const char* k_now = "2026-01-01T00:00:00Z";
constexpr long long k_now_unix = 1767225600;
// Five minutes and one hour later.
constexpr const char* k_now_5m = "2026-01-01T00:05:00Z";
constexpr const char* k_now_1h = "2026-01-01T01:00:00Z";

// 39 bytes: long enough for HS256.
constexpr std::string_view k_secret = tokctl::test::k_test_secret;

// ---------------------------------------------------------------------------------------------
// Small encoding and crypto helpers (tests/support/jws_helpers), written so the tests do not trust
// tokctl's own code.

using tokctl::test::b64_std;
using tokctl::test::b64url;
using tokctl::test::b64url_decode;
using tokctl::test::hmac_sha256;
using tokctl::test::hs256_segments;

std::string hs256_token(std::string_view header, std::string_view payload, std::string_view secret = k_secret) {
  return tokctl::test::hs256_token(header, payload, secret);
}

// RS256 over `header.payload` with a PEM private key file, bypassing tokctl's key-size policy.
std::string rs256_token_with_pem(const std::string& pem_path, std::string_view header, std::string_view payload) {
  std::unique_ptr<BIO, decltype(&BIO_free)> bio(BIO_new_file(pem_path.c_str(), "r"), &BIO_free);
  if (!bio) throw std::runtime_error("cannot open " + pem_path);
  std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)> pkey(
      PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr), &EVP_PKEY_free);
  if (!pkey) throw std::runtime_error("cannot read private key " + pem_path);
  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(), &EVP_MD_CTX_free);
  std::string input = b64url(header) + "." + b64url(payload);
  if (EVP_DigestSignInit(ctx.get(), nullptr, EVP_sha256(), nullptr, pkey.get()) != 1) {
    throw std::runtime_error("EVP_DigestSignInit failed");
  }
  std::size_t len = 0;
  const auto* in = reinterpret_cast<const unsigned char*>(input.data());
  if (EVP_DigestSign(ctx.get(), nullptr, &len, in, input.size()) != 1) throw std::runtime_error("sign size");
  std::string sig(len, '\0');
  if (EVP_DigestSign(ctx.get(), reinterpret_cast<unsigned char*>(sig.data()), &len, in, input.size()) != 1) {
    throw std::runtime_error("EVP_DigestSign failed");
  }
  sig.resize(len);
  return input + "." + b64url(sig);
}

// The JWS raw r||s signature re-encoded as an ASN.1 DER ECDSA-Sig-Value.
std::string raw_ecdsa_to_der(const std::string& raw) {
  const std::size_t half = raw.size() / 2;
  const auto* p = reinterpret_cast<const unsigned char*>(raw.data());
  BIGNUM* r = BN_bin2bn(p, static_cast<int>(half), nullptr);
  BIGNUM* s = BN_bin2bn(p + half, static_cast<int>(half), nullptr);
  ECDSA_SIG* sig = ECDSA_SIG_new();
  if (!r || !s || !sig || ECDSA_SIG_set0(sig, r, s) != 1) throw std::runtime_error("ECDSA_SIG_set0 failed");
  unsigned char* der = nullptr;
  int len = i2d_ECDSA_SIG(sig, &der);
  ECDSA_SIG_free(sig);
  if (len <= 0) throw std::runtime_error("i2d_ECDSA_SIG failed");
  std::string out(reinterpret_cast<char*>(der), static_cast<std::size_t>(len));
  OPENSSL_free(der);
  return out;
}

std::string hex_to_bytes(std::string_view hex) {
  std::string out;
  for (std::size_t i = 0; i + 1 < hex.size(); i += 2) {
    out += static_cast<char>(std::stoi(std::string(hex.substr(i, 2)), nullptr, 16));
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Text helpers.

std::string chomp(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r' || s.back() == ' ')) s.pop_back();
  return s;
}

std::vector<std::string> split(std::string_view s, char sep) {
  std::vector<std::string> out;
  std::size_t start = 0;
  for (;;) {
    auto pos = s.find(sep, start);
    out.emplace_back(s.substr(start, pos == std::string_view::npos ? std::string_view::npos : pos - start));
    if (pos == std::string_view::npos) break;
    start = pos + 1;
  }
  return out;
}

std::vector<std::string> lines(std::string_view s) {
  auto out = split(s, '\n');
  if (!out.empty() && out.back().empty()) out.pop_back();
  return out;
}

std::string first_line(std::string_view s) { return std::string(s.substr(0, s.find('\n'))); }

json parse_json(const std::string& text) {
  INFO("JSON text: " << text);
  auto j = json::parse(text, nullptr, false);
  REQUIRE_FALSE(j.is_discarded());
  return j;
}

// Runs tokctl and requires exit 0, returning stdout without the trailing newline.
std::string ok(const std::vector<std::string>& args, std::string_view stdin_data = {}) {
  RunResult r = run(args, stdin_data);
  if (r.code != 0) {
    std::string cmd = "tokctl";
    for (const auto& a : args) cmd += " " + a;
    throw std::runtime_error(cmd + " exited " + std::to_string(r.code) + ": " + r.err);
  }
  return chomp(r.out);
}

// Error codes of a `-o json` verify failure, in order.
std::vector<std::string> error_codes(const json& j) {
  std::vector<std::string> codes;
  for (const auto& e : j.at("errors")) codes.push_back(e.at("code").get<std::string>());
  return codes;
}

bool has_code(const std::vector<std::string>& codes, const std::string& code) {
  return std::find(codes.begin(), codes.end(), code) != codes.end();
}

std::string describe(const RunResult& r) {
  return "exit " + std::to_string(r.code) + "\n--- stdout ---\n" + r.out + "--- stderr ---\n" + r.err;
}

// ---------------------------------------------------------------------------------------------
// Keys shared by the whole run (RSA generation is the slow part).

struct Fixture {
  TempDir dir;
  std::string es256;          // ES256 private JWK (alg pinned)
  std::string es256_pub;      // its public JWK
  std::string es256_pub_pem;  // its public key as SPKI PEM (no alg)
  std::string es256_kid;
  std::string attacker;       // another ES256 private JWK
  std::string attacker_pem;   // the attacker key as PEM (for x5c)
  std::string attacker_pub;   // its public JWK
  std::string rsa;            // RS256 private JWK (alg pinned)
  std::string rsa_pem;        // the same key, private PEM
  std::string rsa_pub_pem;    // the same key, public SPKI PEM
  std::string rsa_pub_jwk_noalg;  // the same key, public JWK without "alg"
  std::string rsa1024_pem;    // a 1024-bit RSA private key (openssl genpkey)
  std::string rsa1024_pub_pem;
  std::string secret;         // k_secret, in a file
  std::string hs256;          // HS256 JWK

  Fixture() {
    es256 = dir.file("es256.jwk");
    ok({"keys", "generate", "--alg", "ES256", "--out", es256});
    es256_kid = json::parse(read_file(es256)).at("kid").get<std::string>();
    es256_pub = dir.file("es256.pub.jwk");
    write_file(es256_pub, ok({"keys", "convert", es256, "--public", "--to", "jwk"}));
    es256_pub_pem = dir.file("es256.pub.pem");
    write_file(es256_pub_pem, ok({"keys", "convert", es256, "--public", "--to", "pem"}) + "\n");

    attacker = dir.file("attacker.jwk");
    ok({"keys", "generate", "--alg", "ES256", "--out", attacker});
    attacker_pem = dir.file("attacker.pem");
    write_file(attacker_pem, ok({"keys", "convert", attacker, "--to", "pem"}) + "\n");
    attacker_pub = dir.file("attacker.pub.jwk");
    write_file(attacker_pub, ok({"keys", "convert", attacker, "--public", "--to", "jwk"}));

    rsa = dir.file("rsa.jwk");
    ok({"keys", "generate", "--alg", "RS256", "--out", rsa});
    rsa_pem = dir.file("rsa.pem");
    write_file(rsa_pem, ok({"keys", "convert", rsa, "--to", "pem"}) + "\n");
    rsa_pub_pem = dir.file("rsa.pub.pem");
    write_file(rsa_pub_pem, ok({"keys", "convert", rsa, "--public", "--to", "pem"}) + "\n");
    auto pub = json::parse(ok({"keys", "convert", rsa_pub_pem, "--to", "jwk"}));
    pub.erase("alg");
    rsa_pub_jwk_noalg = dir.file("rsa.pub.noalg.jwk");
    write_file(rsa_pub_jwk_noalg, pub.dump());

    rsa1024_pem = dir.file("rsa1024.pem");
    auto gen = run_program({"openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:1024",
                            "-out", rsa1024_pem});
    if (gen.code != 0) throw std::runtime_error("openssl genpkey failed: " + gen.err);
    rsa1024_pub_pem = dir.file("rsa1024.pub.pem");
    auto pubout = run_program({"openssl", "pkey", "-in", rsa1024_pem, "-pubout", "-out", rsa1024_pub_pem});
    if (pubout.code != 0) throw std::runtime_error("openssl pkey -pubout failed: " + pubout.err);

    secret = dir.file("secret.txt");
    write_file(secret, k_secret);
    ::chmod(secret.c_str(), 0600);  // a secret readable by others gets a warning on stderr
    hs256 = dir.file("hs256.jwk");
    ok({"keys", "generate", "--alg", "HS256", "--out", hs256});
  }
};

const Fixture& fx() {
  static Fixture f;
  return f;
}

// An ES256 JWT for sub `sub`, iss https://issuer.test, aud api, signed at k_now and expiring `exp`
// (15 minutes later by default).
std::string es256_jwt(const std::vector<std::string>& extra = {}, const std::string& sub = "alice",
                      const std::string& exp = "+15m") {
  std::vector<std::string> args = {"--now", k_now, "sign", "--key", fx().es256, "--iss", "https://issuer.test",
                                   "--sub", sub, "--aud", "api", "--exp", exp};
  args.insert(args.end(), extra.begin(), extra.end());
  return ok(args);
}

}  // namespace

// =============================================================================================
// Round trips

TEST_CASE("keys generate, sign and verify round-trip for every algorithm family", "[cli]") {
  const std::string which =
      GENERATE(as<std::string>{}, "ES256", "ES384", "ES512", "RS256", "PS256", "Ed25519", "Ed448", "HS256");
  std::vector<std::string> gen = {"keys", "generate"};
  std::string alg = which;
  if (which == "Ed25519" || which == "Ed448") {
    alg = "EdDSA";
    gen.insert(gen.end(), {"--alg", "EdDSA", "--crv", which});
  } else {
    gen.insert(gen.end(), {"--alg", which});
  }
  INFO("key: " << which);
  TempDir dir;
  const std::string key = dir.file("key.jwk");
  gen.insert(gen.end(), {"--out", key});
  RunResult g = run(gen);
  INFO(describe(g));
  REQUIRE(g.code == 0);

  struct stat st {};
  REQUIRE(::stat(key.c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0600);

  const json jwk = parse_json(read_file(key));
  CHECK(jwk.at("alg") == alg);
  if (which == "Ed25519" || which == "Ed448") CHECK(jwk.at("crv") == which);
  const std::string kid = jwk.at("kid").get<std::string>();
  CHECK(kid == ok({"keys", "thumbprint", key}));

  const std::string token = ok({"--now", k_now, "sign", "--key", key, "--iss", "https://issuer.test", "--sub",
                                "alice", "--aud", "api", "--exp", "+15m"});
  REQUIRE(split(token, '.').size() == 3);
  const json header = parse_json(b64url_decode(split(token, '.')[0]));
  CHECK(header.at("alg") == alg);
  CHECK(header.at("kid") == kid);

  // Text: a one-line summary, then the claims.
  RunResult v = run({"verify", token, "--key", key, "--now", k_now_5m, "--iss", "https://issuer.test", "--aud", "api"});
  INFO(describe(v));
  REQUIRE(v.code == 0);
  CHECK(v.err.empty());
  CHECK(first_line(v.out) == "✓ valid " + alg + " token, kid '" + kid + "', sub 'alice', expires in 10m");
  const json claims = parse_json(v.out.substr(v.out.find('\n') + 1));
  CHECK(claims.at("sub") == "alice");
  CHECK(claims.at("iss") == "https://issuer.test");
  CHECK(claims.at("aud") == "api");
  CHECK(claims.at("iat") == k_now_unix);
  CHECK(claims.at("exp") == k_now_unix + 900);

  // JSON.
  RunResult vj = run({"-o", "json", "verify", token, "--key", key, "--now", k_now_5m});
  INFO(describe(vj));
  REQUIRE(vj.code == 0);
  const json j = parse_json(vj.out);
  CHECK(j.at("valid") == true);
  CHECK(j.at("header").at("alg") == alg);
  CHECK(j.at("payload").at("sub") == "alice");
  CHECK(j.at("kid") == kid);

  // Asymmetric tokens also verify with the public half alone, as JWK and as PEM (with --alg).
  if (which != "HS256") {
    const std::string pub = dir.file("key.pub.jwk");
    write_file(pub, ok({"keys", "convert", key, "--public", "--to", "jwk"}));
    CHECK(run({"verify", token, "--key", pub, "--now", k_now_5m}).code == 0);
    const std::string pub_pem = dir.file("key.pub.pem");
    write_file(pub_pem, ok({"keys", "convert", key, "--public", "--to", "pem"}) + "\n");
    RunResult vp = run({"verify", token, "--key", pub_pem, "--alg", alg, "--now", k_now_5m});
    INFO(describe(vp));
    CHECK(vp.code == 0);
  }
}

TEST_CASE("keys generate prints the key on stdout without --out and honours --kid", "[cli]") {
  RunResult r = run({"keys", "generate", "--alg", "ES256", "--kid", "signer-1"});
  INFO(describe(r));
  REQUIRE(r.code == 0);
  const json k = parse_json(r.out);
  CHECK(k.at("kid") == "signer-1");
  CHECK(k.at("kty") == "EC");
  CHECK(k.contains("d"));
}

// =============================================================================================
// Global flags, --now, stdin

TEST_CASE("global flags work before and after the subcommand", "[cli]") {
  const std::string token = es256_jwt();
  RunResult before = run({"-o", "json", "--now", k_now_5m, "verify", token, "--key", fx().es256});
  RunResult after = run({"verify", token, "--key", fx().es256, "-o", "json", "--now", k_now_5m});
  INFO(describe(before) << "\n" << describe(after));
  REQUIRE(before.code == 0);
  REQUIRE(after.code == 0);
  CHECK(before.out == after.out);
  CHECK(parse_json(after.out).at("valid") == true);

  // -q and --no-color on either side.
  RunResult q1 = run({"-q", "--no-color", "verify", token, "--key", fx().es256, "--now", k_now_5m});
  RunResult q2 = run({"verify", token, "--key", fx().es256, "--now", k_now_5m, "--no-color", "-q"});
  CHECK(q1.code == 0);
  CHECK(q2.code == 0);
  CHECK(q1.out.empty());
  CHECK(q2.out.empty());

  // The same flags fail the same way on either side.
  RunResult bad1 = run({"-o", "json", "verify", token, "--key", fx().es256, "--now", k_now_1h});
  RunResult bad2 = run({"verify", token, "--key", fx().es256, "--now", k_now_1h, "-o", "json"});
  CHECK(bad1.code == 1);
  CHECK(bad1.out == bad2.out);
  CHECK(parse_json(bad2.out).at("valid") == false);
}

TEST_CASE("the global --now flag accepts RFC 3339, Unix seconds and +DUR/-DUR", "[cli]") {
  auto payload_of = [](const std::string& token) {
    return parse_json(b64url_decode(split(token, '.')[1]));
  };
  SECTION("RFC 3339 and Unix seconds pin iat and exp") {
    for (const char* now : {"2026-01-01T00:00:00Z", "1767225600"}) {
      INFO("--now " << now);
      const json p = payload_of(ok({"sign", "--key", fx().es256, "--exp", "+15m", "--now", now}));
      CHECK(p.at("iat") == k_now_unix);
      CHECK(p.at("exp") == k_now_unix + 900);
    }
  }
  SECTION("relative values are relative to the real clock") {
    const long long real = static_cast<long long>(std::time(nullptr));
    const json plus = payload_of(ok({"--now", "+1h", "sign", "--key", fx().es256}));
    const json minus = payload_of(ok({"sign", "--key", fx().es256, "--now", "-1h"}));
    CHECK(plus.at("iat").get<long long>() >= real + 3600 - 60);
    CHECK(plus.at("iat").get<long long>() <= real + 3600 + 60);
    CHECK(minus.at("iat").get<long long>() >= real - 3600 - 60);
    CHECK(minus.at("iat").get<long long>() <= real - 3600 + 60);
  }
  SECTION("a token signed at a fixed time is expired at a later --now") {
    const std::string token = es256_jwt();
    RunResult r = run({"verify", token, "--key", fx().es256, "--now", k_now_1h});
    INFO(describe(r));
    CHECK(r.code == 1);
    CHECK(r.out.empty());
    CHECK_THAT(r.err, Contains("expired"));
    CHECK_THAT(r.err, Contains("ago"));
    CHECK_THAT(r.err, Contains("45m"));
    // Unix seconds for the same instant.
    RunResult u = run({"verify", token, "--key", fx().es256, "--now", "1767229200"});
    CHECK(u.code == 1);
    CHECK(u.err == r.err);
  }
  SECTION("relative --now on sign and verify") {
    // exp 45 minutes before the real now: expired now, valid 50 minutes ago.
    const std::string token = ok({"sign", "--key", fx().es256, "--now", "-1h", "--exp", "+15m"});
    RunResult now = run({"verify", token, "--key", fx().es256});
    CHECK(now.code == 1);
    CHECK_THAT(now.err, Contains("expired"));
    RunResult earlier = run({"verify", token, "--key", fx().es256, "--now", "-50m"});
    INFO(describe(earlier));
    CHECK(earlier.code == 0);
  }
  SECTION("a bad --now is a usage error") {
    RunResult r = run({"verify", es256_jwt(), "--key", fx().es256, "--now", "yesterday"});
    CHECK(r.code == 2);
    CHECK_THAT(r.err, StartsWith("tokctl: error:"));
  }
}

TEST_CASE("a dash reads tokens, payloads and keys from stdin", "[cli]") {
  const std::string token = es256_jwt();
  SECTION("verify -") {
    RunResult r = run({"verify", "-", "--key", fx().es256, "--now", k_now_5m}, token + "\n");
    INFO(describe(r));
    CHECK(r.code == 0);
    CHECK_THAT(r.out, StartsWith("✓ valid ES256 token"));
  }
  SECTION("verify with the token omitted reads stdin too") {
    CHECK(run({"verify", "--key", fx().es256, "--now", k_now_5m}, token + "\n").code == 0);
  }
  SECTION("decode -") {
    RunResult r = run({"decode", "-", "--now", k_now_5m}, token + "\n");
    CHECK(r.code == 0);
    CHECK_THAT(r.out, Contains("alice"));
  }
  SECTION("sign - merges claim flags over a JSON payload from stdin") {
    const std::string t = ok({"--now", k_now, "sign", "-", "--key", fx().es256, "--exp", "+1h"},
                             R"({"sub":"carol","roles":["admin"]})");
    const json p = parse_json(b64url_decode(split(t, '.')[1]));
    CHECK(p.at("sub") == "carol");
    CHECK(p.at("roles") == json::array({"admin"}));
    CHECK(p.at("exp") == k_now_unix + 3600);
    CHECK(run({"verify", t, "--key", fx().es256, "--now", k_now}).code == 0);
  }
  SECTION("sign - signs raw bytes verbatim without claim flags") {
    const std::string t = ok({"sign", "-", "--key", fx().es256}, "hello, bytes\n");
    CHECK(b64url_decode(split(t, '.')[1]) == "hello, bytes\n");
  }
  SECTION("--key -") {
    RunResult r = run({"verify", token, "--key", "-", "--now", k_now_5m}, read_file(fx().es256_pub));
    INFO(describe(r));
    CHECK(r.code == 0);
  }
  SECTION("keys thumbprint - and keys convert -") {
    CHECK(ok({"keys", "thumbprint", "-"}, read_file(fx().es256)) == fx().es256_kid);
    const std::string pem = ok({"keys", "convert", "-", "--to", "pem", "--public"}, read_file(fx().es256));
    CHECK_THAT(pem, StartsWith("-----BEGIN PUBLIC KEY-----"));
  }
}

// =============================================================================================
// decode

TEST_CASE("decode shows header, claims and relative times and says nothing was verified", "[cli]") {
  const std::string token = es256_jwt();
  RunResult r = run({"decode", token, "--now", "2026-01-01T00:01:00Z"});
  INFO(describe(r));
  REQUIRE(r.code == 0);
  CHECK_THAT(r.out, Contains("NOT VERIFIED"));
  CHECK_THAT(r.out, Contains("\"sub\": \"alice\""));
  CHECK_THAT(r.out, Contains("2026-01-01T00:15:00Z"));
  CHECK_THAT(r.out, Contains("expires in 14m"));

  RunResult later = run({"decode", token, "--now", "2026-01-01T03:15:00Z"});
  REQUIRE(later.code == 0);
  CHECK_THAT(later.out, Contains("expired 3h ago"));
  CHECK_THAT(later.out, Contains("NOT VERIFIED"));
}

TEST_CASE("decode warns about missing exp, long lifetimes, symmetric algs and sensitive claims", "[cli]") {
  SECTION("no exp") {
    RunResult r = run({"decode", ok({"sign", "--key", fx().es256, "--sub", "x"}), "--now", k_now});
    CHECK(r.code == 0);
    CHECK_THAT(r.out, Contains("no exp"));
  }
  SECTION("lifetime over 24h") {
    RunResult r = run({"decode", es256_jwt({}, "alice", "+48h"), "--now", k_now});
    CHECK(r.code == 0);
    CHECK_THAT(r.out, Contains("over 24h"));
  }
  SECTION("symmetric alg") {
    const std::string t = ok({"--now", k_now, "sign", "--key", fx().hs256, "--exp", "+15m"});
    RunResult r = run({"decode", t, "--now", k_now});
    CHECK(r.code == 0);
    CHECK_THAT(r.out, Contains("symmetric"));
  }
  SECTION("email claim") {
    RunResult r = run({"decode", es256_jwt({"--claim", "email=alice@example.com"}), "--now", k_now});
    CHECK(r.code == 0);
    CHECK_THAT(r.out, Contains("email"));
    CHECK_THAT(r.out, Contains("personal"));
  }
  SECTION("alg none") {
    const std::string t = b64url(R"({"alg":"none"})") + "." + b64url(R"({"sub":"x"})") + ".";
    RunResult r = run({"decode", t, "--now", k_now});
    INFO(describe(r));
    CHECK(r.code == 0);
    CHECK_THAT(r.out, Contains("none"));
    CHECK_THAT(r.out, Contains("NOT VERIFIED"));
  }
  SECTION("a short-lived, asymmetric token without personal data has no warnings") {
    RunResult r = run({"-o", "json", "decode", es256_jwt(), "--now", k_now});
    CHECK(r.code == 0);
    CHECK(parse_json(r.out).at("warnings").empty());
  }
}

TEST_CASE("decode -o json has header, payload, signature and warnings", "[cli]") {
  const std::string token = ok({"--now", k_now, "sign", "--key", fx().hs256, "--sub", "bob"});
  RunResult r = run({"decode", token, "-o", "json", "--now", k_now});
  INFO(describe(r));
  REQUIRE(r.code == 0);
  const json j = parse_json(r.out);
  REQUIRE(j.is_object());
  CHECK(j.at("header").at("alg") == "HS256");
  CHECK(j.at("payload").at("sub") == "bob");
  CHECK(j.at("signature") == split(token, '.')[2]);
  REQUIRE(j.at("warnings").is_array());
  std::string all;
  for (const auto& w : j.at("warnings")) all += w.get<std::string>() + "\n";
  CHECK_THAT(all, Contains("no exp"));
  CHECK_THAT(all, Contains("symmetric"));
}

TEST_CASE("decode of garbage exits 3 with an error on stderr", "[cli]") {
  for (const char* garbage : {"garbage", "a.b", "not.a.token!", "...."}) {
    INFO("token: " << garbage);
    RunResult r = run({"decode", garbage});
    CHECK(r.code == 3);
    CHECK(r.out.empty());
    CHECK_THAT(r.err, StartsWith("tokctl: error:"));
  }
}

// =============================================================================================
// verify failures

TEST_CASE("verify lists every failed check on stderr and prints no claims", "[cli]") {
  const std::string token = es256_jwt();
  RunResult r = run({"verify", token, "--key", fx().es256, "--now", k_now_1h, "--iss", "https://other.test",
                     "--aud", "web"});
  INFO(describe(r));
  CHECK(r.code == 1);
  CHECK(r.out.empty());  // claims are never printed as if valid
  CHECK_THAT(r.err, StartsWith("tokctl: error:"));
  CHECK_THAT(r.err, Contains("3 problems"));
  CHECK_THAT(r.err, Contains("expired 45m ago (exp 2026-01-01T00:15:00Z, leeway 1m)"));
  CHECK_THAT(r.err, Contains("iss_mismatch"));
  CHECK_THAT(r.err, Contains("https://other.test"));
  CHECK_THAT(r.err, Contains("aud_mismatch"));
  CHECK_THAT(r.err, Contains("'web'"));
  CHECK_THAT(r.err, !Contains("alice"));
}

TEST_CASE("verify -o json reports valid false and every error with code and message", "[cli]") {
  const std::string token = es256_jwt();
  RunResult r = run({"-o", "json", "verify", token, "--key", fx().es256, "--now", k_now_1h, "--iss",
                     "https://other.test", "--aud", "web"});
  INFO(describe(r));
  CHECK(r.code == 1);
  const json j = parse_json(r.out);
  CHECK(j.at("valid") == false);
  CHECK_FALSE(j.contains("payload"));
  CHECK_FALSE(j.contains("header"));
  const auto codes = error_codes(j);
  CHECK(codes.size() == 3);
  CHECK(has_code(codes, "expired"));
  CHECK(has_code(codes, "iss_mismatch"));
  CHECK(has_code(codes, "aud_mismatch"));
  for (const auto& e : j.at("errors")) {
    CHECK(e.at("message").is_string());
    CHECK_FALSE(e.at("message").get<std::string>().empty());
  }
}

TEST_CASE("verify leeway, sub, typ, required claims and max age each fail with their own code", "[cli]") {
  const std::string token = es256_jwt();
  SECTION("leeway covers a just-expired token") {
    CHECK(run({"verify", token, "--key", fx().es256, "--now", "2026-01-01T00:15:30Z"}).code == 0);
    CHECK(run({"verify", token, "--key", fx().es256, "--now", "2026-01-01T00:15:30Z", "--leeway", "0s"}).code ==
          1);
  }
  SECTION("all four at once") {
    RunResult r = run({"-o", "json", "verify", token, "--key", fx().es256, "--now", "2026-01-01T00:10:00Z",
                       "--sub", "bob", "--typ", "at+jwt", "--require", "jti", "--max-age", "5m"});
    INFO(describe(r));
    CHECK(r.code == 1);
    const auto codes = error_codes(parse_json(r.out));
    CHECK(has_code(codes, "sub_mismatch"));
    CHECK(has_code(codes, "typ_mismatch"));
    CHECK(has_code(codes, "missing_claim"));
    CHECK(has_code(codes, "too_old"));
  }
  SECTION("not yet valid") {
    const std::string t = es256_jwt({"--nbf", "+10m"});
    RunResult r = run({"-o", "json", "verify", t, "--key", fx().es256, "--now", k_now_5m});
    CHECK(r.code == 1);
    CHECK(has_code(error_codes(parse_json(r.out)), "not_yet_valid"));
  }
}

TEST_CASE("verify names the missing kid and the kids the JWKS has", "[cli]") {
  TempDir dir;
  std::vector<std::string> pubs;
  for (const char* kid : {"k1", "k2", "k3"}) {
    const std::string priv = dir.file(std::string(kid) + ".jwk");
    ok({"keys", "generate", "--alg", "ES256", "--kid", kid, "--out", priv});
    pubs.push_back(ok({"keys", "convert", priv, "--public", "--to", "jwk"}));
  }
  const std::string jwks = dir.file("jwks.json");
  write_file(jwks, "{\"keys\":[" + pubs[0] + "," + pubs[2] + "]}");

  const std::string t1 = ok({"--now", k_now, "sign", "--key", dir.file("k1.jwk"), "--sub", "a", "--exp", "+15m"});
  const std::string t2 = ok({"--now", k_now, "sign", "--key", dir.file("k2.jwk"), "--sub", "a", "--exp", "+15m"});

  RunResult good = run({"verify", t1, "--jwks", jwks, "--now", k_now_5m});
  INFO(describe(good));
  CHECK(good.code == 0);
  CHECK_THAT(good.out, Contains("kid 'k1'"));

  RunResult bad = run({"verify", t2, "--jwks", jwks, "--now", k_now_5m});
  INFO(describe(bad));
  CHECK(bad.code == 1);
  CHECK(bad.out.empty());
  CHECK_THAT(bad.err, Contains("kid 'k2' not in JWKS (have: k1, k3)"));

  RunResult bj = run({"verify", t2, "--jwks", jwks, "--now", k_now_5m, "-o", "json"});
  CHECK(bj.code == 1);
  const json j = parse_json(bj.out);
  REQUIRE(j.at("errors").size() == 1);
  CHECK(j.at("errors")[0].at("code") == "kid_not_found");
  CHECK(j.at("errors")[0].at("message") == "kid 'k2' not in JWKS (have: k1, k3)");
}

TEST_CASE("verify with the wrong key fails with bad_signature", "[cli]") {
  const std::string token = es256_jwt();
  for (const std::string& key : {fx().attacker_pub, fx().attacker}) {
    RunResult r = run({"-o", "json", "verify", token, "--key", key, "--now", k_now_5m});
    INFO(describe(r));
    CHECK(r.code == 1);
    CHECK(error_codes(parse_json(r.out)) == std::vector<std::string>{"bad_signature"});
  }
  RunResult text = run({"verify", token, "--key", fx().attacker_pub, "--now", k_now_5m});
  CHECK(text.code == 1);
  CHECK(text.out.empty());
  CHECK_THAT(text.err, Contains("bad_signature"));
}

TEST_CASE("verify of an ES256 token with an RSA key hints at the alg/key mismatch", "[cli]") {
  const std::string token = es256_jwt();
  SECTION("RSA JWK that pins RS256") {
    RunResult r = run({"verify", token, "--key", fx().rsa, "--now", k_now_5m});
    INFO(describe(r));
    CHECK(r.code == 1);
    CHECK(r.out.empty());
    CHECK_THAT(r.err, Contains("hint: the token is ES256 but the key is RSA"));
  }
  SECTION("RSA PEM with --alg RS256") {
    RunResult r = run({"verify", token, "--key", fx().rsa_pub_pem, "--alg", "RS256", "--now", k_now_5m});
    INFO(describe(r));
    CHECK(r.code == 1);
    CHECK_THAT(r.err, Contains("hint: the token is ES256 but the key is RSA"));
  }
  SECTION("RSA PEM with --alg ES256") {
    RunResult r = run({"verify", token, "--key", fx().rsa_pub_pem, "--alg", "ES256", "--now", k_now_5m});
    INFO(describe(r));
    CHECK(r.code == 1);
    CHECK_THAT(r.err, Contains("the token is ES256 but the key is RSA"));
  }
}

TEST_CASE("verify with an RSA PEM key and no --alg is a usage error; EC PEM keys imply theirs", "[cli]") {
  auto signed_rs = run({"sign", "--key", fx().rsa, "--sub", "alice", "--now", k_now});
  REQUIRE(signed_rs.code == 0);
  const std::string rs_token = signed_rs.out.substr(0, signed_rs.out.find('\n'));
  RunResult r = run({"verify", rs_token, "--key", fx().rsa_pub_pem, "--now", k_now_5m});
  INFO(describe(r));
  CHECK(r.code == 2);
  CHECK(r.out.empty());
  CHECK_THAT(r.err, StartsWith("tokctl: error:"));
  CHECK_THAT(r.err, Contains("--alg: an algorithm is required"));  // the CLI names the core's parameter
  // The same key with --alg verifies.
  CHECK(run({"verify", rs_token, "--key", fx().rsa_pub_pem, "--alg", "RS256", "--now", k_now_5m}).code == 0);
  // A P-256 PEM key has exactly one alg: ES256 is implied, and only ES256.
  const std::string token = es256_jwt();
  CHECK(run({"verify", token, "--key", fx().es256_pub_pem, "--now", k_now_5m}).code == 0);
  CHECK(run({"verify", token, "--key", fx().es256_pub_pem, "--alg", "ES256", "--now", k_now_5m}).code == 0);
}

// =============================================================================================
// Exit codes

TEST_CASE("usage errors exit 2 with tokctl: error: on stderr", "[cli]") {
  const std::string token = es256_jwt();
  std::vector<std::vector<std::string>> cases = {
      {"verify", token, "--key", fx().es256, "--bogus-flag"},
      {"--bogus-flag", "decode", token},
      {"keys", "generate"},                                             // missing required --alg
      {"verify", token, "--key", fx().es256, "--secret-file", fx().secret},  // mutually exclusive
      {"verify", token, "--jwks", fx().es256, "--key", fx().es256},
      {"verify", token},                                                // no key at all
      {"sign", "--sub", "x"},                                           // no key at all
      {"-o", "yaml", "decode", token},
      {"nosuchcommand"},
      {"verify", token, "--key", fx().es256, "--alg", "none"},
      {"verify", token, "--key", fx().es256, "--alg", "XX999"},
  };
  for (const auto& args : cases) {
    std::string cmd;
    for (const auto& a : args) cmd += " " + a;
    INFO("tokctl" << cmd);
    RunResult r = run(args);
    INFO(describe(r));
    CHECK(r.code == 2);
    CHECK(r.out.empty());
    CHECK_THAT(r.err, StartsWith("tokctl: error:"));
  }
}

TEST_CASE("malformed tokens exit 3 for decode and verify", "[cli]") {
  const std::string header = R"({"alg":"HS256","typ":"JWT"})";
  const std::string claims = R"({"sub":"a","exp":1767226500})";
  const std::string good = hs256_token(header, claims);
  REQUIRE(run({"verify", good, "--secret-file", fx().secret, "--alg", "HS256", "--now", k_now}).code == 0);

  struct Case {
    std::string name;
    std::string token;
    bool decode_too;
  };
  std::string payload_plus = b64url(claims);
  payload_plus[5] = '+';
  // Same bytes, but an unused low bit of the last character set: not the canonical encoding.
  std::string noncanonical = b64url(claims);
  REQUIRE(noncanonical.size() % 4 == 2);  // the last character carries 4 unused bits
  const std::string alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  noncanonical.back() = alphabet[alphabet.find(noncanonical.back()) | 1];
  REQUIRE(b64url_decode(noncanonical) == claims);
  REQUIRE(noncanonical != b64url(claims));
  std::string big = R"({"sub":"a","exp":1767226500,"pad":")" + std::string(70 * 1024, 'x') + "\"}";
  std::vector<Case> cases = {
      {"padding in the header", hs256_segments(b64url(header) + "=", b64url(claims), k_secret), true},
      {"'+' in the payload", hs256_segments(b64url(header), payload_plus, k_secret), true},
      {"non-canonical trailing bits", hs256_segments(b64url(header), noncanonical, k_secret), true},
      {"non-JSON header", hs256_token("not json", claims), true},
      {"duplicate header names", hs256_token(R"({"alg":"HS256","alg":"HS256"})", claims), true},
      {"duplicate claim names", hs256_token(header, R"({"sub":"a","sub":"b","exp":1767226500})"), true},
      {"token over 64 KiB", hs256_token(header, big), true},
      {"exp as a string", hs256_token(header, R"({"sub":"a","exp":"1767226500"})"), false},
      {"nbf as a string", hs256_token(header, R"({"sub":"a","exp":1767226500,"nbf":"0"})"), false},
      {"two segments", b64url(header) + "." + b64url(claims), true},
  };
  for (const auto& c : cases) {
    INFO(c.name << " (" << c.token.size() << " bytes)");
    RunResult v = run({"verify", "-", "--secret-file", fx().secret, "--alg", "HS256", "--now", k_now}, c.token);
    INFO(describe(v));
    CHECK(v.code == 3);
    CHECK(v.out.empty());
    CHECK_THAT(v.err, StartsWith("tokctl: error:"));
    RunResult vj = run({"-o", "json", "verify", "-", "--secret-file", fx().secret, "--alg", "HS256", "--now", k_now},
                       c.token);
    CHECK(vj.code == 3);
    CHECK(parse_json(vj.out).at("valid") == false);
    if (c.decode_too) {
      RunResult d = run({"decode", "-", "--now", k_now}, c.token);
      INFO(describe(d));
      CHECK(d.code == 3);
      CHECK_THAT(d.err, StartsWith("tokctl: error:"));
    }
  }
}

// =============================================================================================
// Security (issue 2, point 7), through the CLI

TEST_CASE("an alg none token never verifies", "[cli][security]") {
  const std::string payload = R"({"sub":"admin","exp":1767226500})";
  for (const char* alg : {"none", "None", "NONE"}) {
    const std::string token = b64url(std::string(R"({"alg":")") + alg + R"(","typ":"JWT"})") + "." +
                              b64url(payload) + ".";
    INFO("alg " << alg);
    const std::vector<std::vector<std::string>> keys = {
        {"--key", fx().es256}, {"--secret-file", fx().secret, "--alg", "HS256"}, {"--key", fx().hs256}};
    for (const auto& key : keys) {
      std::vector<std::string> args = {"-o", "json", "verify", token, "--now", k_now};
      args.insert(args.end(), key.begin(), key.end());
      RunResult r = run(args);
      INFO(describe(r));
      CHECK(r.code == 1);
      const json j = parse_json(r.out);
      CHECK(j.at("valid") == false);
      if (std::string(alg) == "none") CHECK(has_code(error_codes(j), "alg_none"));
    }
  }
}

TEST_CASE("an HS256 token signed with the RSA public key's PEM bytes is rejected", "[cli][security]") {
  const std::string pem_bytes = read_file(fx().rsa_pub_pem);
  const std::string header = R"({"alg":"HS256","typ":"JWT"})";
  const std::string payload = R"({"sub":"admin","exp":1767226500})";
  // With and without the trailing newline an attacker might have hashed.
  const bool with_newline = GENERATE(true, false);
  const std::string secret = with_newline ? pem_bytes : chomp(pem_bytes);
  INFO("HMAC secret: the PEM " << (with_newline ? "with" : "without") << " its trailing newline");
  {
    const std::string token = hs256_token(header, payload, secret);
    SECTION("--key rsa.pub.pem --alg RS256") {
      RunResult r = run({"verify", token, "--key", fx().rsa_pub_pem, "--alg", "RS256", "--now", k_now});
      INFO(describe(r));
      CHECK(r.code == 1);
      CHECK(r.out.empty());
    }
    SECTION("--key rsa.pub.pem --alg HS256") {
      RunResult r = run({"verify", token, "--key", fx().rsa_pub_pem, "--alg", "HS256", "--now", k_now});
      INFO(describe(r));
      CHECK(r.code == 1);
      CHECK(r.out.empty());
      CHECK_THAT(r.err, Contains("the token is HS256 but the key is RSA"));
    }
    SECTION("RSA JWK without alg, --alg HS256") {
      RunResult r = run({"verify", token, "--key", fx().rsa_pub_jwk_noalg, "--alg", "HS256", "--now", k_now});
      INFO(describe(r));
      CHECK(r.code == 1);
      CHECK(r.out.empty());
    }
    SECTION("RSA JWK pinned to RS256") {
      RunResult r = run({"verify", token, "--key", fx().rsa, "--now", k_now});
      INFO(describe(r));
      CHECK(r.code == 1);
    }
    SECTION("--secret-file rsa.pub.pem is refused") {
      RunResult r = run({"verify", token, "--secret-file", fx().rsa_pub_pem, "--alg", "HS256", "--now", k_now});
      INFO(describe(r));
      CHECK(r.code != 0);
      CHECK(r.out.empty());
      CHECK_THAT(r.err, Contains("public-key material"));
    }
    SECTION("--secret-env holding the PEM is refused") {
      RunResult r = run({"verify", token, "--secret-env", "TOKCTL_TEST_SECRET", "--alg", "HS256", "--now", k_now}, {},
                        {{"TOKCTL_TEST_SECRET", secret}});
      INFO(describe(r));
      CHECK(r.code != 0);
      CHECK(r.out.empty());
      CHECK_THAT(r.err, Contains("public-key material"));
    }
    SECTION("sign --secret-file rsa.pub.pem is refused") {
      RunResult r = run({"sign", "--secret-file", fx().rsa_pub_pem, "--alg", "HS256", "--sub", "admin"});
      INFO(describe(r));
      CHECK(r.code != 0);
      CHECK(r.out.empty());
      CHECK_THAT(r.err, Contains("public-key material"));
    }
  }
}

TEST_CASE("jwk, jku, x5u and x5c header parameters never choose the key", "[cli][security]") {
  const json attacker_pub = parse_json(read_file(fx().attacker_pub));
  std::vector<std::pair<std::string, std::vector<std::string>>> cases = {
      {"jwk", {"--header", "jwk=" + attacker_pub.dump()}},
      {"jku", {"--header", "jku=https://attacker.test/jwks.json"}},
      {"x5u", {"--header", "x5u=https://attacker.test/cert.pem"}},
  };
  // x5c: a self-signed certificate for the attacker's key.
  TempDir dir;
  const std::string der = dir.file("attacker.der");
  RunResult cert = run_program({"openssl", "req", "-x509", "-new", "-key", fx().attacker_pem, "-subj",
                                "/CN=attacker", "-days", "2", "-outform", "DER", "-out", der});
  INFO(describe(cert));
  REQUIRE(cert.code == 0);
  cases.push_back({"x5c", {"--header", "x5c=[\"" + b64_std(read_file(der)) + "\"]"}});

  for (const auto& [name, flags] : cases) {
    INFO("header " << name);
    // The attacker even claims the real key's kid.
    std::vector<std::string> args = {"--now", k_now, "sign", "--key", fx().attacker, "--kid", fx().es256_kid,
                                     "--sub", "admin", "--exp", "+15m"};
    args.insert(args.end(), flags.begin(), flags.end());
    RunResult s = run(args);
    INFO(describe(s));
    REQUIRE(s.code == 0);
    const std::string token = chomp(s.out);
    CHECK(parse_json(b64url_decode(split(token, '.')[0])).contains(name));

    for (const std::string& key : {fx().es256, fx().es256_pub}) {
      RunResult r = run({"-o", "json", "verify", token, "--key", key, "--now", k_now_5m});
      INFO(describe(r));
      CHECK(r.code == 1);
      CHECK(has_code(error_codes(parse_json(r.out)), "bad_signature"));
    }
  }
}

TEST_CASE("an unknown crit header parameter is rejected", "[cli][security]") {
  const std::string payload = R"({"sub":"a","exp":1767226500})";
  const std::string token = hs256_token(R"({"alg":"HS256","crit":["x-unknown"],"x-unknown":true})", payload);
  RunResult r = run({"-o", "json", "verify", token, "--secret-file", fx().secret, "--alg", "HS256", "--now", k_now});
  INFO(describe(r));
  CHECK(r.code == 1);
  CHECK(has_code(error_codes(parse_json(r.out)), "crit_unsupported"));
  // Control: the same token without crit verifies.
  const std::string plain = hs256_token(R"({"alg":"HS256","x-unknown":true})", payload);
  CHECK(run({"verify", plain, "--secret-file", fx().secret, "--alg", "HS256", "--now", k_now}).code == 0);
  // And sign refuses to make one.
  RunResult s = run({"sign", "--key", fx().es256, "--header", "crit=[\"x-unknown\"]", "--header", "x-unknown=true"});
  CHECK(s.code == 2);
}

TEST_CASE("RSA keys under 2048 bits are refused for signing and verifying", "[cli][security]") {
  RunResult s = run({"sign", "--key", fx().rsa1024_pem, "--alg", "RS256", "--sub", "x"});
  INFO(describe(s));
  CHECK(s.code != 0);
  CHECK(s.out.empty());
  CHECK_THAT(s.err, StartsWith("tokctl: error:"));
  CHECK_THAT(s.err, Contains("1024"));
  CHECK_THAT(s.err, Contains("2048"));

  const std::string token = rs256_token_with_pem(fx().rsa1024_pem, R"({"alg":"RS256","typ":"JWT"})",
                                                 R"({"sub":"x","exp":1767226500})");
  RunResult v = run({"verify", token, "--key", fx().rsa1024_pub_pem, "--alg", "RS256", "--now", k_now});
  INFO(describe(v));
  CHECK(v.code == 1);
  CHECK(v.out.empty());
  CHECK_THAT(v.err, StartsWith("tokctl: error:"));
  // Control: the same construction with a 2048-bit key verifies.
  const std::string ok_token = rs256_token_with_pem(fx().rsa_pem, R"({"alg":"RS256","typ":"JWT"})",
                                                    R"({"sub":"x","exp":1767226500})");
  CHECK(run({"verify", ok_token, "--key", fx().rsa_pub_pem, "--alg", "RS256", "--now", k_now}).code == 0);
}

// Regression (was a CLI bug): verify with a 1024-bit RSA key is refused, but stderr only says "key_mismatch: no key
// can verify a RS256 token" (hint: "generate a new key"); the issue wants every failed check listed
// with its reason, here that the key is 1024 bits and at least 2048 are required.
TEST_CASE("verify with an RSA key under 2048 bits says why the key is refused", "[cli][security]") {
  const std::string token = rs256_token_with_pem(fx().rsa1024_pem, R"({"alg":"RS256","typ":"JWT"})",
                                                 R"({"sub":"x","exp":1767226500})");
  RunResult v = run({"verify", token, "--key", fx().rsa1024_pub_pem, "--alg", "RS256", "--now", k_now});
  INFO(describe(v));
  CHECK(v.code == 1);
  CHECK_THAT(v.err, Contains("1024"));
  CHECK_THAT(v.err, Contains("2048"));
}

TEST_CASE("HMAC secrets shorter than the hash output are refused for signing", "[cli][security]") {
  TempDir dir;
  const std::string short_secret = dir.file("short.txt");
  write_file(short_secret, std::string(31, 'k'));
  RunResult r = run({"sign", "--secret-file", short_secret, "--alg", "HS256", "--sub", "x"});
  INFO(describe(r));
  CHECK(r.code != 0);
  CHECK(r.out.empty());
  CHECK_THAT(r.err, Contains("32"));

  RunResult env = run({"sign", "--secret-env", "TOKCTL_SHORT", "--alg", "HS256", "--sub", "x"}, {},
                      {{"TOKCTL_SHORT", "tooshort"}});
  CHECK(env.code != 0);
  CHECK(env.out.empty());

  // 32 bytes is enough for HS256 but not for HS384.
  write_file(short_secret, std::string(32, 'k'));
  CHECK(run({"sign", "--secret-file", short_secret, "--alg", "HS256", "--sub", "x"}).code == 0);
  CHECK(run({"sign", "--secret-file", short_secret, "--alg", "HS384", "--sub", "x"}).code != 0);
}

TEST_CASE("ECDSA signatures in DER form or with r, s out of range are rejected", "[cli][security]") {
  const std::string token = es256_jwt();
  REQUIRE(run({"verify", token, "--key", fx().es256, "--now", k_now_5m}).code == 0);
  const auto parts = split(token, '.');
  const std::string raw = b64url_decode(parts[2]);
  REQUIRE(raw.size() == 64);
  const std::string input = parts[0] + "." + parts[1] + ".";

  const std::string n = hex_to_bytes("FFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551");
  std::vector<std::pair<std::string, std::string>> cases = {
      {"DER", b64url(raw_ecdsa_to_der(raw))},
      {"r = s = 0 (CVE-2022-21449)", b64url(std::string(64, '\0'))},
      {"r = s = n", b64url(n + n)},
      {"s = n", b64url(raw.substr(0, 32) + n)},
      {"truncated", b64url(raw.substr(0, 63))},
  };
  for (const auto& [name, sig] : cases) {
    INFO(name);
    RunResult r = run({"-o", "json", "verify", input + sig, "--key", fx().es256, "--now", k_now_5m});
    INFO(describe(r));
    CHECK(r.code == 1);
    CHECK(parse_json(r.out).at("valid") == false);
  }
}

// =============================================================================================
// verify --batch

TEST_CASE("verify --batch writes one JSON line per token, in order", "[cli][batch]") {
  const std::string v1 = es256_jwt({}, "u1");
  const std::string v2 = es256_jwt({}, "u2");
  const std::string v3 = es256_jwt({}, "u3");
  const std::string expired = ok({"--now", "2025-12-31T00:00:00Z", "sign", "--key", fx().es256, "--sub", "old",
                                  "--exp", "+15m"});
  const std::string input = v1 + "\n" + v2 + "\n" + expired + "\n" + "garbage\n" + v3 + "\n";

  RunResult r = run({"verify", "--batch", "--key", fx().es256, "--now", k_now_5m, "--threads", "1"}, input);
  INFO(describe(r));
  CHECK(r.code == 1);
  const auto out = lines(r.out);
  REQUIRE(out.size() == 5);
  const bool valid[] = {true, true, false, false, true};
  const std::vector<std::string> subs = {"u1", "u2", "old", "", "u3"};
  for (std::size_t i = 0; i < 5; ++i) {
    INFO("line " << i + 1 << ": " << out[i]);
    const json j = parse_json(out[i]);
    CHECK(j.at("line") == i + 1);
    CHECK(j.at("valid") == valid[i]);
    CHECK(j.at("errors").is_array());
    CHECK(j.at("errors").empty() == valid[i]);
    if (!subs[i].empty()) CHECK(j.at("sub") == subs[i]);
    if (valid[i]) CHECK(j.at("kid") == fx().es256_kid);
  }
  CHECK(parse_json(out[2]).at("errors")[0].at("code") == "expired");
  CHECK(parse_json(out[3]).at("errors")[0].at("code") == "malformed");

  SECTION("lines as pasted (a scheme, blanks) are normalised like a token argument") {
    const std::string pasted = "Bearer " + v1 + "\n  " + v2 + " \t\nAuthorization: Bearer " + v3 + "\n \t \n" +
                               "bearer " + v1.substr(0, 40) + " " + v1.substr(40) + "\n";
    RunResult p = run({"verify", "--batch", "--key", fx().es256, "--now", k_now_5m, "--threads", "1"}, pasted);
    INFO(describe(p));
    CHECK(p.code == 0);
    const auto got = lines(p.out);
    REQUIRE(got.size() == 4);  // the blank-only line is skipped, its number kept
    const std::vector<std::string> want = {"u1", "u2", "u3", "u1"};
    const std::size_t numbers[] = {1, 2, 3, 5};
    for (std::size_t i = 0; i < 4; ++i) {
      const json j = parse_json(got[i]);
      CHECK(j.at("valid") == true);
      CHECK(j.at("sub") == want[i]);
      CHECK(j.at("line") == numbers[i]);
    }
  }
  SECTION("--threads 1 and --threads 2 give identical output") {
    RunResult r2 = run({"verify", "--batch", "--key", fx().es256, "--now", k_now_5m, "--threads", "2"}, input);
    CHECK(r2.code == 1);
    CHECK(r2.out == r.out);
    // Enough lines for the work to be split across threads.
    std::string many;
    for (int i = 0; i < 40; ++i) many += input;
    RunResult m1 = run({"verify", "--batch", "--key", fx().es256, "--now", k_now_5m, "--threads", "1"}, many);
    RunResult m2 = run({"verify", "--batch", "--key", fx().es256, "--now", k_now_5m, "--threads", "2"}, many);
    CHECK(m1.code == 1);
    CHECK(m2.code == 1);
    CHECK(lines(m1.out).size() == 200);
    CHECK(m1.out == m2.out);
    CHECK(parse_json(lines(m2.out).back()).at("line") == 200);
  }
  SECTION("several chunks: the pipelined threads keep order, numbering and blank lines") {
    // verify --batch reads 16384 lines a chunk; with threads, chunk k+1 is read and chunk k-1
    // written while chunk k is verified. Blank lines sit on both sides of a chunk edge.
    const std::string h1 = ok({"--now", k_now, "sign", "--key", fx().hs256, "--sub", "h1", "--exp", "+15m"});
    const std::string h2 = ok({"--now", k_now, "sign", "--key", fx().hs256, "--sub", "h2", "--exp", "+1m"});
    std::string big;
    const std::size_t total = 2 * 16384 + 777;
    std::size_t blanks = 0;
    for (std::size_t i = 1; i <= total; ++i) {
      if (i == 16384 || i == 16385 || i == 2 * 16384) {
        big += "\n";
        ++blanks;
      } else {
        big += (i % 1000 == 0 ? h2 : h1) + "\n";  // h2 is expired at k_now_5m
      }
    }
    RunResult b1 = run({"verify", "--batch", "--key", fx().hs256, "--now", k_now_5m, "--threads", "1"}, big);
    RunResult b2 = run({"verify", "--batch", "--key", fx().hs256, "--now", k_now_5m, "--threads", "2"}, big);
    RunResult b3 = run({"verify", "--batch", "--key", fx().hs256, "--now", k_now_5m, "--threads", "3"}, big);
    CHECK(b1.code == 1);
    CHECK(b2.code == 1);
    CHECK(b3.code == 1);
    const auto out1 = lines(b1.out);
    REQUIRE(out1.size() == total - blanks);
    CHECK(b2.out == b1.out);
    CHECK(b3.out == b1.out);
    CHECK(parse_json(out1.back()).at("line") == total);
    CHECK(parse_json(out1[16382]).at("line") == 16383);  // the last line before the blank ones
    CHECK(parse_json(out1[16383]).at("line") == 16386);
    CHECK(parse_json(out1[999]).at("valid") == false);   // line 1000: h2, expired
    CHECK(parse_json(out1[1000]).at("valid") == true);
  }
  SECTION("all valid exits 0") {
    RunResult all = run({"verify", "--batch", "--key", fx().es256, "--now", k_now_5m},
                        v1 + "\n" + v2 + "\n" + v3 + "\n");
    INFO(describe(all));
    CHECK(all.code == 0);
    CHECK(lines(all.out).size() == 3);
  }
}

// The batch line is written without building a JSON object; it must be byte for byte what
// nlohmann prints for the same report, whatever the sub holds.
TEST_CASE("verify --batch lines are exactly the JSON of the report, whatever sub holds", "[cli][batch]") {
  const std::vector<std::string> base = {"--now", k_now, "sign", "--key", fx().es256, "--iss", "https://issuer.test",
                                         "--aud", "api", "--exp", "+15m"};
  struct Case {
    std::vector<std::string> flags;
    json sub;
  };
  const std::vector<Case> cases = {
      {{"--sub", "plain"}, "plain"},
      {{"--sub", "quote \" and back\\slash /"}, "quote \" and back\\slash /"},
      {{"--sub", "ctl \x01\x1f\t\n\r\b\f end"}, "ctl \x01\x1f\t\n\r\b\f end"},
      {{"--sub", "del \x7f"}, "del \x7f"},
      {{"--sub", "unicode \xc3\xa9 \xe2\x98\x83 \xf0\x9d\x84\x9e \xe2\x80\xa8"},
       "unicode \xc3\xa9 \xe2\x98\x83 \xf0\x9d\x84\x9e \xe2\x80\xa8"},
      {{"--claim", "sub=42"}, 42},
      {{"--claim", R"(sub={"a":[1,"x"]})"}, json{{"a", json::array({1, "x"})}}},
      {{}, nullptr},
  };
  std::string input;
  for (const auto& c : cases) {
    std::vector<std::string> args = base;
    args.insert(args.end(), c.flags.begin(), c.flags.end());
    input += ok(args) + "\n";
  }
  input += "not.a.token\n";
  RunResult r = run({"verify", "--batch", "--key", fx().es256, "--now", k_now_5m, "--threads", "1"}, input);
  INFO(describe(r));
  CHECK(r.code == 1);
  const auto out = lines(r.out);
  REQUIRE(out.size() == cases.size() + 1);
  for (std::size_t i = 0; i < cases.size(); ++i) {
    CAPTURE(i);
    json expected{{"errors", json::array()}, {"kid", fx().es256_kid}, {"line", i + 1}, {"sub", cases[i].sub},
                  {"valid", true}};
    CHECK(out[i] == expected.dump());
  }
  const json bad = parse_json(out.back());
  CHECK(out.back() == bad.dump());
  CHECK(bad.at("valid") == false);
  CHECK(bad.at("kid").is_null());
  CHECK(bad.at("sub").is_null());
  CHECK(bad.at("line") == cases.size() + 1);
}

// =============================================================================================
// Standard input that is no input: a directory, a read error. Never an empty success.

// Reads of /proc/self/mem at offset 0 fail with EIO; the harness opens it in this (live) process.
constexpr const char* k_eio_path = "/proc/self/mem";
bool eio_path_available() { return ::access(k_eio_path, R_OK) == 0; }

// A directory as standard input is refused before anything is read, and a read error (EIO) is
// reported: exit 2 and nothing on standard output, never exit 0 with empty input.
static void check_bad_stdin(const std::vector<std::string>& args, const std::string& dir) {
  RunResult r = run_with_stdin_path(args, dir);
  INFO(describe(r));
  CHECK(r.code == 2);
  CHECK(r.out.empty());
  CHECK_THAT(r.err, StartsWith("tokctl: error: standard input is a directory"));
  if (eio_path_available()) {
    RunResult e = run_with_stdin_path(args, k_eio_path);
    INFO(describe(e));
    CHECK(e.code == 2);
    CHECK(e.out.empty());
    CHECK_THAT(e.err, StartsWith("tokctl: error: reading standard input: "));
  }
}

TEST_CASE("verify --batch refuses a directory as stdin and reports a read error, never exit 0", "[cli][batch][stdin]") {
  TempDir dir;
  for (const char* threads : {"1", "2"}) {
    INFO("--threads " << threads);
    check_bad_stdin({"verify", "--batch", "--key", fx().es256, "--now", k_now_5m, "--threads", threads}, dir.path());
  }
}

TEST_CASE("decode - and verify - refuse a directory as stdin and report a read error", "[cli][stdin]") {
  TempDir dir;
  const std::vector<std::vector<std::string>> commands = {{"decode", "-"}, {"decode"},
                                                          {"verify", "-", "--key", fx().es256, "--now", k_now_5m}};
  for (const auto& args : commands) {
    INFO(args[0] << " " << (args.size() > 1 ? args[1] : ""));
    check_bad_stdin(args, dir.path());
  }
}

TEST_CASE("verify --batch reports a line over the token limit on its line, without holding it in memory",
          "[cli][batch][stdin]") {
  const std::string v1 = es256_jwt({}, "u1");
  const std::string v2 = es256_jwt({}, "u2");
  const std::string v3 = es256_jwt({}, "u3");
  constexpr std::size_t k_limit = 256 * 1024;  // the largest token tokctl parses (a JWE)
  constexpr std::size_t k_huge = 200u << 20;   // 200 MiB without a newline, then one
  constexpr long k_max_rss_kib = 64 * 1024;
  std::string input = v1 + "\n";
  input.append(k_huge, 'a');
  input += "\n" + v2 + "\r\n" + std::string(k_limit, 'b') + "\n" + std::string(k_limit + 1, 'c') + "\n\n" + v3;
  for (const char* threads : {"1", "2"}) {
    INFO("--threads " << threads);
    RunResult r = run_with_peak_rss({"verify", "--batch", "--key", fx().es256, "--now", k_now_5m, "--threads", threads},
                                    input);
    INFO("exit " << r.code << ", stderr: " << r.err << ", peak RSS " << r.max_rss_kib << " KiB");
    CHECK(r.code == 1);
    CHECK(r.err.empty());
    CHECK(r.max_rss_kib < k_max_rss_kib * rss_bound_factor());
    const auto out = lines(r.out);
    REQUIRE(out.size() == 6);
    const std::size_t line_no[] = {1, 2, 3, 4, 5, 7};
    const bool valid[] = {true, false, true, false, false, true};
    for (std::size_t i = 0; i < 6; ++i) {
      INFO("output " << i << ": " << out[i].substr(0, 200));
      const json j = parse_json(out[i]);
      CHECK(j.at("line") == line_no[i]);
      CHECK(j.at("valid") == valid[i]);
      if (!valid[i]) CHECK(j.at("errors")[0].at("code") == "malformed");
    }
    // The skipped line says its size; a line at the limit is read and refused by the JWS parser.
    CHECK(parse_json(out[1]).at("errors")[0].at("message") ==
          "token is " + std::to_string(k_huge) + " bytes, over the " + std::to_string(k_limit) + "-byte limit");
    CHECK_THAT(parse_json(out[3]).at("errors")[0].at("message").get<std::string>(),
               Contains(std::to_string(k_limit) + " bytes, over the 65536-byte limit"));
    CHECK(parse_json(out[4]).at("errors")[0].at("message") ==
          "token is " + std::to_string(k_limit + 1) + " bytes, over the " + std::to_string(k_limit) + "-byte limit");
  }
}

TEST_CASE("verify --batch memory stays bounded with many long lines", "[cli][batch][stdin]") {
  // 1600 lines of 128 KiB (200 MiB): each is read, but a chunk holds at most 8 MiB of lines.
  const std::string v = es256_jwt({}, "u");
  const std::string long_line(128 * 1024, 'x');
  std::string input;
  input.reserve(1600 * (long_line.size() + 1) + v.size() + 1);
  for (int i = 0; i < 1600; ++i) input += long_line + "\n";
  input += v + "\n";
  for (const char* threads : {"1", "2"}) {
    INFO("--threads " << threads);
    RunResult r = run_with_peak_rss({"verify", "--batch", "--key", fx().es256, "--now", k_now_5m, "--threads", threads},
                                    input);
    INFO("exit " << r.code << ", stderr: " << r.err << ", peak RSS " << r.max_rss_kib << " KiB");
    CHECK(r.code == 1);
    CHECK(r.max_rss_kib < 64 * 1024 * rss_bound_factor());
    const auto out = lines(r.out);
    REQUIRE(out.size() == 1601);
    CHECK(parse_json(out[1599]).at("line") == 1600);
    CHECK(parse_json(out[1600]).at("valid") == true);
  }
}

// =============================================================================================
// keys convert / thumbprint

TEST_CASE("keys convert jwk to pem and back preserves the key", "[cli][keys]") {
  TempDir dir;
  for (const std::string& key : {fx().es256, fx().rsa, fx().attacker}) {
    INFO("key " << key);
    const std::string pem = dir.file("k.pem");
    write_file(pem, ok({"keys", "convert", key, "--to", "pem"}) + "\n");
    CHECK_THAT(read_file(pem), StartsWith("-----BEGIN"));
    const json back = parse_json(ok({"keys", "convert", pem, "--to", "jwk"}));
    CHECK(back.contains("d"));
    const json orig = parse_json(read_file(key));
    CHECK(back.at("d") == orig.at("d"));
    CHECK(ok({"keys", "thumbprint", pem}) == ok({"keys", "thumbprint", key}));
    // Default direction: PEM in, JWK out; JWK in, PEM out.
    CHECK_THAT(ok({"keys", "convert", pem}), StartsWith("{"));
    CHECK_THAT(ok({"keys", "convert", key}), StartsWith("-----BEGIN"));
  }
  // Ed25519 and Ed448 too.
  for (const char* crv : {"Ed25519", "Ed448"}) {
    INFO(crv);
    const std::string jwk = dir.file(std::string(crv) + ".jwk");
    ok({"keys", "generate", "--alg", "EdDSA", "--crv", crv, "--out", jwk});
    const std::string pem = dir.file(std::string(crv) + ".pem");
    write_file(pem, ok({"keys", "convert", jwk, "--to", "pem"}) + "\n");
    CHECK(ok({"keys", "thumbprint", pem}) == ok({"keys", "thumbprint", jwk}));
  }
}

TEST_CASE("keys convert --public strips the private parts", "[cli][keys]") {
  const json ec = parse_json(ok({"keys", "convert", fx().es256, "--public", "--to", "jwk"}));
  CHECK(ec.at("kty") == "EC");
  CHECK_FALSE(ec.contains("d"));
  CHECK(ec.contains("x"));
  const json rsa = parse_json(ok({"keys", "convert", fx().rsa, "--public", "--to", "jwk"}));
  for (const char* member : {"d", "p", "q", "dp", "dq", "qi"}) CHECK_FALSE(rsa.contains(member));
  CHECK(rsa.contains("n"));
  CHECK(ok({"keys", "thumbprint", fx().es256_pub}) == ok({"keys", "thumbprint", fx().es256}));
  const std::string pem = ok({"keys", "convert", fx().rsa, "--public", "--to", "pem"});
  CHECK_THAT(pem, StartsWith("-----BEGIN PUBLIC KEY-----"));
  CHECK_THAT(pem, !Contains("PRIVATE"));
}

TEST_CASE("keys thumbprint supports several hashes and matches RFC 7638 section 3.1", "[cli][keys]") {
  const std::string rfc = std::string(TOKCTL_VECTORS_DIR) + "/rfc-examples/latchset-jose/rfc7638_3.1.jwk";
  CHECK(ok({"keys", "thumbprint", rfc}) == "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs");
  CHECK(ok({"keys", "thumbprint", rfc, "--hash", "sha256"}) == "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs");

  const std::string s1 = ok({"keys", "thumbprint", fx().es256, "--hash", "sha1"});
  const std::string s256 = ok({"keys", "thumbprint", fx().es256});
  const std::string s384 = ok({"keys", "thumbprint", fx().es256, "--hash", "sha384"});
  const std::string s512 = ok({"keys", "thumbprint", fx().es256, "--hash", "sha512"});
  CHECK(s1.size() == 27);
  CHECK(s256.size() == 43);
  CHECK(s384.size() == 64);
  CHECK(s512.size() == 86);
  CHECK(s1 != s384);
  CHECK(s256 != s384);
  CHECK(s256.substr(0, 27) != s1);
  CHECK(run({"keys", "thumbprint", fx().es256, "--hash", "md5"}).code == 2);

  RunResult j = run({"-o", "json", "keys", "thumbprint", rfc});
  CHECK(j.code == 0);
  CHECK(parse_json(j.out).at("thumbprint") == "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs");
}

// =============================================================================================
// Help, version, completion

TEST_CASE("tokctl --version prints the version", "[cli][help]") {
  RunResult r = run({"--version"});
  CHECK(r.code == 0);
  CHECK_THAT(r.out, StartsWith("tokctl "));
  CHECK(chomp(r.out).size() > std::string("tokctl ").size());
}

TEST_CASE("every subcommand's --help has examples", "[cli][help]") {
  // Every command path the CLI defines (tokctl __spec), so a new command cannot ship without them.
  RunResult spec = run({"__spec"});
  REQUIRE(spec.code == 0);
  auto tree = nlohmann::json::parse(spec.out);
  std::size_t checked = 0;
  for (const auto& cmd : tree) {
    std::string path = cmd["path"].get<std::string>();
    if (path.empty() || path == "__spec") continue;
    std::vector<std::string> args;
    for (std::size_t pos = 0; pos <= path.size();) {
      auto sp = path.find(' ', pos);
      args.push_back(path.substr(pos, sp == std::string::npos ? std::string::npos : sp - pos));
      if (sp == std::string::npos) break;
      pos = sp + 1;
    }
    args.push_back("--help");
    RunResult r = run(args);
    INFO("tokctl " << path << " --help");
    CHECK(r.code == 0);
    CHECK_THAT(r.out, Contains("Examples:"));
    CHECK_THAT(r.out, Contains("tokctl " + args.front()));
    ++checked;
  }
  CHECK(checked >= 25);
  RunResult root = run({"--help"});
  CHECK_THAT(root.out, Contains("Examples:"));
}

TEST_CASE("tokctl help verify shows verify's help with examples", "[cli][help]") {
  RunResult r = run({"help", "verify"});
  INFO(describe(r));
  CHECK(r.code == 0);
  CHECK_THAT(r.out, Contains("--jwks"));
  CHECK_THAT(r.out, Contains("Examples:"));
  RunResult g = run({"help", "keys", "generate"});
  CHECK(g.code == 0);
  CHECK_THAT(g.out, Contains("--crv"));
  RunResult bad = run({"help", "nosuch"});
  CHECK(bad.code == 2);
  CHECK_THAT(bad.err, StartsWith("tokctl: error:"));
}

// Regression (was a CLI bug): `tokctl help` prints the help of the `help` subcommand itself (CLI11's App::help()
// delegates to the parsed subcommand), not the top-level help listing the commands.
TEST_CASE("tokctl help lists every command", "[cli][help]") {
  RunResult r = run({"help"});
  INFO(describe(r));
  CHECK(r.code == 0);
  for (const char* c : {"decode", "sign", "verify", "keys", "completion"}) CHECK_THAT(r.out, Contains(c));
  CHECK_THAT(r.out, Contains("Exit codes"));
  RunResult h = run({"--help"});
  CHECK(h.code == 0);
  CHECK(h.out == r.out);
}

// Regression (was a CLI bug): `tokctl keys --help` has no "Examples:" section (the issue asks for examples in every
// subcommand's help; `keys` is a subcommand with its own help page).
TEST_CASE("tokctl keys --help has examples", "[cli][help]") {
  RunResult r = run({"keys", "--help"});
  CHECK(r.code == 0);
  CHECK_THAT(r.out, Contains("Examples:"));
}

TEST_CASE("tokctl completion prints scripts for bash, zsh and fish", "[cli][help]") {
  for (const char* shell : {"bash", "zsh", "fish"}) {
    INFO(shell);
    RunResult r = run({"completion", shell});
    CHECK(r.code == 0);
    CHECK_FALSE(r.out.empty());
    CHECK_THAT(r.out, Contains("verify"));
  }
}
