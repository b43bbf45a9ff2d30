// CLI regression tests for the outside review (issue 7): one test per defect class that failed on
// paths nobody listed. Crash freedom (3), no secrets on a crash or in messages (4), explicit trust
// roots (6), terminal-safe output (8), token input forms (9), implied algs (10), JWKS messages (14),
// determinism (16), strict JSON and ranges (17), weak keys with --insecure (18). The keystore,
// token-service and completion points have their own files.

#include <catch2/catch.hpp>

#include <string>
#include <sys/stat.h>
#include <unistd.h>
#include <vector>

#include <nlohmann/json.hpp>

#include "support/cli_helpers.hpp"
#include "support/jws_helpers.hpp"
#include "support/run.hpp"

namespace {

using nlohmann::json;
using tokctl::test::b64url;
using tokctl::test::describe;
using tokctl::test::hs256_segments;
using tokctl::test::hs256_token;
using tokctl::test::k_test_secret;
using tokctl::test::read_file;
using tokctl::test::run;
using tokctl::test::run_program;
using tokctl::test::RunResult;
using tokctl::test::TempDir;
using tokctl::test::write_file;
using Catch::Matchers::Contains;

constexpr const char* k_now = "2026-01-01T00:00:00Z";
// exp = k_now + 15m
constexpr const char* k_claims = R"({"sub":"alice","iss":"https://issuer.test","exp":1767226500})";
constexpr const char* k_hs_header = R"({"alg":"HS256","typ":"JWT"})";

// A fresh directory with an HS256 secret file (mode 0600) and an ES256 key pair made by tokctl.
struct Fixture {
  TempDir tmp;
  std::string secret = tmp.file("secret.txt");
  std::string es_key = tmp.file("es.jwk");
  std::string es_pub = tmp.file("es.pub.jwk");

  Fixture() {
    write_file(secret, std::string(k_test_secret));
    ::chmod(secret.c_str(), 0600);
    auto g = run({"keys", "generate", "--alg", "ES256", "--kid", "es-1", "--out", es_key});
    INFO(describe(g));
    REQUIRE(g.code == 0);
    auto p = run({"keys", "convert", es_key, "--public"});
    INFO(describe(p));
    REQUIRE(p.code == 0);
    write_file(es_pub, p.out);
  }

  RunResult verify_hs(const std::string& token, std::vector<std::string> more = {}) const {
    std::vector<std::string> a = {"--now", k_now, "verify", token, "--secret-file", secret, "--alg", "HS256"};
    a.insert(a.end(), more.begin(), more.end());
    return run(a);
  }
};

bool no_escape_bytes(const std::string& s) {
  for (unsigned char c : s)
    if (c == 0x1b || c == 0x9b || c == 0x07) return false;
  return true;
}

// Runs `script` with bash; TOKCTL is the binary under test.
RunResult bash(const std::string& script, const tokctl::test::EnvVars& env = {}) {
  tokctl::test::EnvVars e = {{"TOKCTL", tokctl::test::tokctl_binary()}, {"NO_COLOR", "1"}, {"TOKCTL_KEYSTORE", ""},
                             {"TOKCTL_CONFIG", ""},     {"TOKCTL_PASSPHRASE", ""},
                             {"XDG_DATA_HOME", "/dev/null/tokctl-tests-xdg"}};
  e.insert(e.end(), env.begin(), env.end());
  return run_program({"bash", "-c", script}, {}, e);
}

}  // namespace

// ---- 2: one typed "signature verified" verdict ----------------------------------------------------

TEST_CASE("verify -o json never reports valid for a token whose crit is unknown, even with a good signature",
          "[review][verdict]") {
  Fixture f;
  auto t = hs256_token(R"({"alg":"HS256","crit":["x-unknown"],"x-unknown":1})", k_claims);
  auto r = f.verify_hs(t, {"-o", "json"});
  INFO(describe(r));
  CHECK(r.code == 1);
  CHECK_THAT(r.out, Contains("crit_unsupported"));
}

// ---- 3: no crash on any input -----------------------------------------------------------------------

TEST_CASE("a 60,000-deep --claim value is refused, not a stack overflow", "[review][crash]") {
  Fixture f;
  for (std::size_t depth : {60000u, 20000u}) {
    std::string deep(depth, '[');
    deep += std::string(depth, ']');
    for (const char* flag : {"--claim", "--header"}) {
      auto r = run({"--now", k_now, "sign", "--secret-file", f.secret, "--alg", "HS256", flag, "x=" + deep});
      INFO(flag << " depth " << depth << ": " << r.err.substr(0, 400));
      CHECK(r.code == 3);
      CHECK_THAT(r.err, Contains(depth == 20000 ? "deeper than 64" : "byte limit"));
    }
  }
}

TEST_CASE("wrong JSON types in headers and claims never crash decode or verify", "[review][crash]") {
  Fixture f;
  const std::vector<std::pair<std::string, std::string>> cases = {
      {R"({"alg":7})", k_claims},
      {R"({"alg":"HS256","kid":{"a":1}})", k_claims},
      {R"({"alg":"HS256","typ":["JWT"]})", k_claims},
      {R"({"alg":"HS256","cty":12})", k_claims},
      {k_hs_header, R"({"sub":["a"],"iss":1,"aud":{"x":1},"exp":"soon","jti":5,"sid":[],"client_id":null})"},
      {k_hs_header, R"({"sub":"a","exp":1e300,"iat":-1e300,"nbf":1.5})"},
      {k_hs_header, R"([1,2,3])"},
      {k_hs_header, R"("just a string")"},
  };
  for (const auto& [h, p] : cases) {
    INFO(h << " . " << p);
    auto t = hs256_token(h, p);
    for (const auto& args : std::vector<std::vector<std::string>>{
             {"--now", k_now, "decode", t},
             {"--now", k_now, "-o", "json", "decode", t},
             {"--now", k_now, "verify", t, "--secret-file", f.secret, "--alg", "HS256", "--iss", "x", "--aud", "y",
              "--sub", "z", "--typ", "at+jwt", "--require", "jti", "--max-age", "1h"},
             {"--now", k_now, "-o", "json", "verify", t, "--secret-file", f.secret, "--alg", "HS256"}}) {
      auto r = run(args);
      INFO(describe(r));
      CHECK(r.code >= 0);
      CHECK(r.code <= 3);
      CHECK_THAT(r.err, !Contains("internal error"));
    }
  }
}

TEST_CASE("a secret file that is JSON with a non-string kty is refused cleanly", "[review][crash]") {
  Fixture f;
  write_file(f.secret, R"({"kty":7,"k":"abc"})");
  auto r = f.verify_hs(hs256_token(k_hs_header, k_claims));
  INFO(describe(r));
  CHECK((r.code == 2 || r.code == 3));
  CHECK_THAT(r.err, Contains("JSON"));
}

TEST_CASE("FIFOs, directories and devices given as input files are refused without blocking", "[review][crash]") {
  Fixture f;
  std::string fifo = f.tmp.file("fifo");
  REQUIRE(::mkfifo(fifo.c_str(), 0600) == 0);
  std::string dir = f.tmp.file("adir");
  REQUIRE(::mkdir(dir.c_str(), 0700) == 0);
  auto t = hs256_token(k_hs_header, k_claims);
  for (const std::string& bad : {fifo, dir, std::string("/dev/zero")}) {
    for (const auto& args : std::vector<std::vector<std::string>>{
             {"verify", t, "--key", bad},
             {"verify", t, "--secret-file", bad, "--alg", "HS256"},
             {"verify", t, "--jwks", bad},
             {"--passphrase-file", bad, "keys", "generate", "--alg", "ES256"},
             {"--config", bad, "config", "check"},
             {"sign", bad, "--secret-file", f.secret, "--alg", "HS256"},
             {"verify", t, "--key", f.es_pub, "--decrypt-key", bad}}) {
      std::vector<std::string> a = {"timeout", "20", TOKCTL_BINARY, "--now", k_now};
      a.insert(a.end(), args.begin(), args.end());
      auto r = run_program(a, {}, {{"TOKCTL_CONFIG", ""}, {"XDG_DATA_HOME", "/dev/null/x"}});
      INFO(bad << ": " << describe(r));
      CHECK(r.code != 124);  // timeout(1): it blocked
      CHECK((r.code == 2 || r.code == 3));
    }
  }
}

TEST_CASE("a full file-size limit is a clean keystore error (exit 4), not SIGXFSZ", "[review][crash]") {
  TempDir tmp;
  auto r = bash("ulimit -f 1; exec \"$TOKCTL\" keys generate --alg RS256 --bits 4096 --out '" + tmp.file("big.jwk") +
                "'");
  INFO(describe(r));
  CHECK(r.code == 4);
  CHECK_THAT(r.err, Contains("tokctl: error"));
}

// ---- 4: no secret on a crash or in a message ---------------------------------------------------------

TEST_CASE("tokctl runs with core dumps disabled before it reads any key", "[review][secrets]") {
  // A tokctl waiting on stdin: its limits must already say no core files.
  auto r = bash(R"(
    sleep 10 2>/dev/null | "$TOKCTL" decode - >/dev/null 2>&1 &
    pid=$!
    for i in $(seq 200); do
      if grep -q '^Max core file size *0 *0' /proc/$pid/limits 2>/dev/null; then echo CORE_OFF; break; fi
      sleep 0.05
    done
    kill $pid 2>/dev/null; wait $pid 2>/dev/null; exit 0)");
  INFO(describe(r));
  CHECK_THAT(r.out, Contains("CORE_OFF"));
}

TEST_CASE("a truncated private key file never echoes its content in the error", "[review][secrets]") {
  Fixture f;
  std::string full = read_file(f.es_key);
  auto d_pos = full.find("\"d\"");
  REQUIRE(d_pos != std::string::npos);
  auto d_val_start = full.find('"', d_pos + 4) + 1;
  std::string d_prefix = full.substr(d_val_start, 12);
  std::string cut = f.tmp.file("cut.jwk");
  write_file(cut, full.substr(0, d_val_start + 20));  // ends inside "d"
  ::chmod(cut.c_str(), 0600);
  for (const auto& args : std::vector<std::vector<std::string>>{
           {"sign", "--key", cut, "--sub", "x"},
           {"keys", "convert", cut},
           {"keys", "thumbprint", cut},
           {"verify", hs256_token(k_hs_header, k_claims), "--key", cut}}) {
    auto r = run(args);
    INFO(describe(r));
    CHECK(r.code == 3);
    CHECK_THAT(r.err, !Contains(d_prefix));
    CHECK_THAT(r.err, !Contains("last read"));
  }
}

// ---- 6: trust roots are explicit ------------------------------------------------------------------

TEST_CASE("a tokctl.yaml in the working directory never chooses the keystore; -v says what is used",
          "[review][trust]") {
  TempDir tmp;
  // An attacker-planted policy naming an attacker keystore.
  auto evil = tmp.file("evil-ks");
  REQUIRE(run({"--keystore", evil, "keys", "add", "--alg", "ES256", "--state", "active"}).code == 0);
  write_file(tmp.file("tokctl.yaml"), "keystore: " + evil + "\n");
  auto token = run({"--keystore", evil, "sign", "--sub", "mallory", "--exp", "+1h"});
  REQUIRE(token.code == 0);
  std::string t = token.out.substr(0, token.out.find('\n'));
  std::string mine = tmp.file("my-ks");
  REQUIRE(run({"--keystore", mine, "keys", "add", "--alg", "ES256", "--state", "active"}).code == 0);

  // Run from that directory with the real keystore in $TOKCTL_KEYSTORE... and with none at all.
  auto in_dir = bash("cd '" + tmp.path() + "' && \"$TOKCTL\" -v verify '" + t + "'", {{"TOKCTL_KEYSTORE", mine}});
  INFO(describe(in_dir));
  CHECK(in_dir.code == 1);
  CHECK_THAT(in_dir.err, Contains("using keystore '" + mine + "' ($TOKCTL_KEYSTORE)"));
  auto none = bash("cd '" + tmp.path() + "' && \"$TOKCTL\" -v verify '" + t + "'");
  INFO(describe(none));
  CHECK(none.code != 0);
  CHECK_THAT(none.err, Contains("./tokctl.yaml is not read implicitly"));
  CHECK_THAT(none.err, Contains("using policy (none) (built-in defaults)"));
  // Explicitly chosen, it is used, and -v -o json says so in JSON on stderr.
  auto explicit_cfg = bash("cd '" + tmp.path() + "' && \"$TOKCTL\" -v -o json --config tokctl.yaml verify '" + t + "'");
  INFO(describe(explicit_cfg));
  CHECK(explicit_cfg.code == 0);
  CHECK_THAT(explicit_cfg.err, Contains(R"("from":"--config")"));
  CHECK_THAT(explicit_cfg.err, Contains(R"("using":"keystore")"));
}

TEST_CASE("secret files readable by others get a warning", "[review][trust]") {
  Fixture f;
  auto t = hs256_token(k_hs_header, k_claims);
  auto quiet = f.verify_hs(t);
  CHECK(quiet.code == 0);
  CHECK_THAT(quiet.err, !Contains("warning"));
  ::chmod(f.secret.c_str(), 0644);
  auto loud = f.verify_hs(t);
  INFO(describe(loud));
  CHECK(loud.code == 0);
  CHECK_THAT(loud.err, Contains("secret file '" + f.secret + "' is readable by everyone"));
  ::chmod(f.es_key.c_str(), 0640);
  auto key = run({"--now", k_now, "sign", "--key", f.es_key, "--sub", "a"});
  CHECK(key.code == 0);
  CHECK_THAT(key.err, Contains("private key file"));
  auto pub = run({"--now", k_now, "verify", key.out.substr(0, key.out.find('\n')), "--key", f.es_pub});
  CHECK(pub.code == 0);
  CHECK_THAT(pub.err, !Contains("warning"));  // public keys are meant to be read
  std::string pw = f.tmp.file("pw");
  write_file(pw, "a passphrase\n");
  ::chmod(pw.c_str(), 0644);
  auto gen = run({"--passphrase-file", pw, "keys", "generate", "--alg", "ES256"});
  CHECK_THAT(gen.err, Contains("passphrase file"));
}

// ---- 8: terminal output escapes control characters ----------------------------------------------

TEST_CASE("claims with ANSI sequences cannot paint a fake verdict on the terminal", "[review][terminal]") {
  Fixture f;
  const std::string fake = "\x1b[2K\r\x1b[32m\xe2\x9c\x93 valid\x1b[0m\n\xc2\x9b" "31m\xe2\x80\xae";
  json claims = json::parse(k_claims);
  claims["iss"] = fake;
  claims["sub"] = fake;
  json header = {{"alg", "HS256"}, {"kid", fake}};
  auto t = hs256_token(header.dump(), claims.dump());
  for (const auto& args : std::vector<std::vector<std::string>>{
           {"--now", k_now, "decode", t},
           {"--now", k_now, "verify", t, "--secret-file", f.secret, "--alg", "HS256"},
           {"--now", k_now, "verify", t, "--secret-file", f.secret, "--alg", "HS256", "--iss", "good"},
           {"--now", k_now, "verify", t, "--jwks", f.es_pub}}) {
    auto r = run(args);
    INFO(describe(r));
    CHECK(no_escape_bytes(r.out));
    CHECK(no_escape_bytes(r.err));
    CHECK_THAT(r.out + r.err, !Contains("\xe2\x80\xae"));
    CHECK_THAT(r.out + r.err, Contains("\\x1b") || Contains("\\u001b"));
  }
}

// ---- 9: token input forms ------------------------------------------------------------------------

TEST_CASE("tokens are accepted with a Bearer/DPoP prefix, wrapped across lines, or from a file", "[review][input]") {
  Fixture f;
  auto t = hs256_token(k_hs_header, k_claims);
  std::string wrapped;
  for (std::size_t i = 0; i < t.size(); i += 40) wrapped += t.substr(i, 40) + "\n";
  std::string file = f.tmp.file("token.txt");
  write_file(file, "Bearer " + wrapped);
  for (const auto& form : std::vector<std::string>{"Bearer " + t, "bearer  " + t, "DPoP " + t,
                                                   "Authorization: Bearer " + t, "  " + t + "\n\n", wrapped, file}) {
    auto r = f.verify_hs(form);
    INFO(form << "\n" << describe(r));
    CHECK(r.code == 0);
    auto d = run({"--now", k_now, "decode", form});
    CHECK(d.code == 0);
  }
  auto piped = run({"--now", k_now, "verify", "-", "--secret-file", f.secret, "--alg", "HS256"}, "Bearer " + wrapped);
  INFO(describe(piped));
  CHECK(piped.code == 0);
}

TEST_CASE("verify checks a JWS over arbitrary bytes and reports the payload as bytes", "[review][input]") {
  Fixture f;
  std::string payload = f.tmp.file("payload.bin");
  write_file(payload, std::string("\x00\x01\x02 binary \xff", 12));
  auto s = run({"sign", payload, "--key", f.es_key});
  INFO(describe(s));
  REQUIRE(s.code == 0);
  std::string jws = s.out.substr(0, s.out.find('\n'));
  auto v = run({"-o", "json", "verify", jws, "--key", f.es_pub});
  INFO(describe(v));
  CHECK(v.code == 0);
  auto j = json::parse(v.out);
  CHECK(j.at("valid") == true);
  CHECK(j.at("payload_bytes") == 12);
  CHECK(j.at("payload_b64") == b64url(std::string("\x00\x01\x02 binary \xff", 12)));
  auto text = run({"verify", jws, "--key", f.es_pub});
  CHECK(text.code == 0);
  CHECK_THAT(text.out, Contains("12 bytes"));
  // Claim rules cannot hold for bytes: not valid, with the reason.
  auto rules = run({"verify", jws, "--key", f.es_pub, "--iss", "x"});
  CHECK(rules.code == 1);
  CHECK_THAT(rules.err, Contains("not_a_jwt"));
  // A tampered byte payload fails.
  std::string bad = jws;
  bad[bad.find('.') + 2] = bad[bad.find('.') + 2] == 'A' ? 'B' : 'A';
  CHECK(run({"verify", bad, "--key", f.es_pub}).code != 0);
}

// ---- 10: implied algs and public conversion --------------------------------------------------------

TEST_CASE("keys convert --public keeps JWK as JWK with its alg, and EC/Ed keys imply their alg in verify",
          "[review][keys]") {
  TempDir tmp;
  for (const char* alg : {"ES256", "ES384", "ES512", "EdDSA"}) {
    INFO(alg);
    std::string key = tmp.file(std::string(alg) + ".jwk");
    REQUIRE(run({"keys", "generate", "--alg", alg, "--out", key}).code == 0);
    auto pub = run({"keys", "convert", key, "--public"});
    REQUIRE(pub.code == 0);
    auto j = json::parse(pub.out);
    CHECK(j.at("alg") == alg);
    CHECK_FALSE(j.contains("d"));
    // The same key as PEM (no alg member): the curve implies the alg.
    auto pem = run({"keys", "convert", key, "--public", "--to", "pem"});
    REQUIRE(pem.code == 0);
    std::string pem_file = tmp.file(std::string(alg) + ".pub.pem");
    write_file(pem_file, pem.out);
    auto t = run({"sign", "--key", key, "--sub", "a"});
    REQUIRE(t.code == 0);
    auto v = run({"verify", t.out.substr(0, t.out.find('\n')), "--key", pem_file});
    INFO(describe(v));
    CHECK(v.code == 0);
  }
  // --decrypt-key: an EC or X25519 private key as PEM (no alg, no use) decrypts a nested JWT whose
  // header says ECDH-ES; the signature is then checked with a PEM public key (implied EdDSA).
  for (const char* crv : {"P-256", "X25519"}) {
    INFO(crv);
    std::string rcpt = tmp.file(std::string("rcpt-") + crv + ".jwk");
    REQUIRE(run({"keys", "generate", "--alg", "ECDH-ES", "--crv", crv, "--out", rcpt}).code == 0);
    auto rcpt_pem = run({"keys", "convert", rcpt, "--to", "pem"});
    REQUIRE(rcpt_pem.code == 0);
    std::string rcpt_pem_file = tmp.file(std::string("rcpt-") + crv + ".pem");
    write_file(rcpt_pem_file, rcpt_pem.out);
    ::chmod(rcpt_pem_file.c_str(), 0600);
    auto t = run({"sign", "--key", tmp.file("EdDSA.jwk"), "--sub", "nested"});
    REQUIRE(t.code == 0);
    auto jwe = run({"encrypt", "--key", rcpt, "--cty", "JWT"}, t.out);
    INFO(describe(jwe));
    REQUIRE(jwe.code == 0);
    auto v = run({"-o", "json", "verify", jwe.out.substr(0, jwe.out.find('\n')), "--key", tmp.file("EdDSA.pub.pem"),
                  "--decrypt-key", rcpt_pem_file});
    INFO(describe(v));
    CHECK(v.code == 0);
    CHECK_THAT(v.out, Contains("nested"));
  }
}

// ---- 14: JWKS messages say what is true -------------------------------------------------------------

TEST_CASE("JWKS errors name unsupported key types, missing algs and the types in the set", "[review][jwks]") {
  Fixture f;
  auto pub = json::parse(read_file(f.es_pub));
  json unsupported = {{"kty", "EC"}, {"crv", "secp256k1"}, {"kid", "k1"}, {"x", "AA"}, {"y", "AA"}};
  json set = {{"keys", json::array({pub, unsupported})}};
  std::string jwks = f.tmp.file("jwks.json");
  write_file(jwks, set.dump());
  auto t = run({"sign", "--key", f.es_key, "--kid", "k1", "--sub", "a"});
  REQUIRE(t.code == 0);
  auto r = run({"verify", t.out.substr(0, t.out.find('\n')), "--jwks", jwks});
  INFO(describe(r));
  CHECK(r.code == 1);
  CHECK_THAT(r.err, Contains("key_unsupported"));
  CHECK_THAT(r.err, Contains("EC secp256k1"));
  CHECK_THAT(r.err, !Contains("not in JWKS"));

  auto other = run({"sign", "--key", f.es_key, "--kid", "nope", "--sub", "a"});
  auto missing = run({"verify", other.out.substr(0, other.out.find('\n')), "--jwks", jwks});
  INFO(describe(missing));
  CHECK_THAT(missing.err, Contains("kid_not_found"));
  CHECK_THAT(missing.err, Contains("EC P-256 (kid 'es-1')"));

  // An RSA member without alg: the same clear --alg hint as --key.
  std::string rsa = f.tmp.file("rsa.jwk");
  REQUIRE(run({"keys", "generate", "--alg", "RS256", "--kid", "r1", "--out", rsa}).code == 0);
  auto rsa_pub = json::parse(run({"keys", "convert", rsa, "--public"}).out);
  rsa_pub.erase("alg");
  write_file(jwks, json{{"keys", json::array({pub, rsa_pub})}}.dump());
  auto rt = run({"sign", "--key", rsa, "--sub", "a"});
  auto unpinned = run({"verify", rt.out.substr(0, rt.out.find('\n')), "--jwks", jwks});
  INFO(describe(unpinned));
  CHECK(unpinned.code == 1);
  CHECK_THAT(unpinned.err, Contains("does not pin an algorithm"));
  CHECK_THAT(unpinned.err, Contains("--alg RS256"));
  auto with_alg = run({"verify", rt.out.substr(0, rt.out.find('\n')), "--jwks", jwks, "--alg", "RS256"});
  CHECK(with_alg.code == 0);
}

// ---- 16: determinism stated truthfully ---------------------------------------------------------------

TEST_CASE("with --now and fixed keys HS, RS and EdDSA tokens are byte-identical run to run; ES and PS differ",
          "[review][determinism]") {
  TempDir tmp;
  for (const char* alg : {"HS256", "RS256", "EdDSA", "ES256", "PS256"}) {
    INFO(alg);
    std::string key = tmp.file(std::string(alg) + ".jwk");
    REQUIRE(run({"keys", "generate", "--alg", alg, "--out", key}).code == 0);
    std::vector<std::string> a = {"--now", k_now, "sign", "--key", key, "--sub", "ci", "--exp", "+5m", "--aud", "api"};
    auto one = run(a);
    auto two = run(a);
    REQUIRE(one.code == 0);
    REQUIRE(two.code == 0);
    std::string alg_s = alg;
    bool deterministic = alg_s == "HS256" || alg_s == "RS256" || alg_s == "EdDSA";
    if (deterministic) {
      CHECK(one.out == two.out);
    } else {
      CHECK(one.out != two.out);  // randomised signatures (OpenSSL 3.0)...
      CHECK(one.out.substr(0, one.out.rfind('.')) == two.out.substr(0, two.out.rfind('.')));  // ...same claims
    }
  }
}

// ---- 17: strict JSON, ranges, signs ------------------------------------------------------------------

TEST_CASE("NUL bytes and a BOM in a JSON segment are malformed", "[review][strict]") {
  Fixture f;
  const std::string bom = "\xef\xbb\xbf";
  for (const auto& t : {hs256_token(bom + k_hs_header, k_claims), hs256_token(k_hs_header, bom + k_claims),
                        hs256_token(k_hs_header, std::string(k_claims) + std::string(1, '\0')),
                        hs256_token(R"({"alg":"HS256","x":"a)" + std::string(1, '\0') + R"("})", k_claims)}) {
    auto r = f.verify_hs(t);
    INFO(describe(r));
    CHECK(r.code == 3);
    auto d = run({"decode", t});
    CHECK(d.code == 3);
  }
}

TEST_CASE("a JWK with duplicate members is malformed everywhere, also as a --secret-file", "[review][strict]") {
  Fixture f;
  std::string dup = f.tmp.file("dup.jwk");
  write_file(dup, R"({"kty":"oct","k":"c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlY3JldA","k":"AAAA"})");
  ::chmod(dup.c_str(), 0600);
  auto t = hs256_token(k_hs_header, k_claims);
  auto as_secret = run({"--now", k_now, "verify", t, "--secret-file", dup, "--alg", "HS256"});
  INFO(describe(as_secret));
  CHECK(as_secret.code == 3);
  CHECK_THAT(as_secret.err, Contains("duplicate"));
  auto as_key = run({"--now", k_now, "verify", t, "--key", dup, "--alg", "HS256"});
  CHECK(as_key.code == 3);
}

TEST_CASE("negative durations are refused and out-of-range times are reported as such", "[review][strict]") {
  Fixture f;
  auto t = hs256_token(k_hs_header, k_claims);
  for (const char* bad : {"-5m", "-1", "5m-"}) {
    auto r = f.verify_hs(t, {"--leeway", bad});
    INFO(describe(r));
    CHECK(r.code == 2);
  }
  auto huge = hs256_token(k_hs_header, R"({"sub":"a","exp":1e300})");
  auto v = f.verify_hs(huge);
  INFO(describe(v));
  CHECK(v.code == 3);
  CHECK_THAT(v.err, Contains("out of range"));
  auto d = run({"--now", k_now, "decode", huge});
  INFO(describe(d));
  CHECK_THAT(d.out, Contains("out of range"));
  CHECK_THAT(d.out, !Contains("-19798"));
}

// ---- 18: weak keys only with --insecure ---------------------------------------------------------------

TEST_CASE("verify --insecure checks RSA-1024 and short-HMAC tokens, with a loud verdict", "[review][insecure]") {
  TempDir tmp;
  std::string pem = tmp.file("rsa1024.pem");
  auto gen = run_program({"openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:1024", "-out", pem});
  REQUIRE(gen.code == 0);
  std::string header_seg = b64url(R"({"alg":"RS256"})");
  std::string payload_seg = b64url(k_claims);
  std::string input_file = tmp.file("input");
  write_file(input_file, header_seg + "." + payload_seg);
  auto sig = run_program({"openssl", "dgst", "-sha256", "-sign", pem, input_file});
  REQUIRE(sig.code == 0);
  std::string token = header_seg + "." + payload_seg + "." + b64url(sig.out);

  auto strict = run({"--now", k_now, "verify", token, "--key", pem, "--alg", "RS256"});
  INFO(describe(strict));
  CHECK(strict.code == 1);
  auto insecure = run({"--now", k_now, "verify", token, "--key", pem, "--alg", "RS256", "--insecure"});
  INFO(describe(insecure));
  CHECK(insecure.code == 0);
  CHECK_THAT(insecure.out, Contains("valid (INSECURE key)"));
  CHECK_THAT(insecure.err, Contains("warning"));
  auto j = run({"--now", k_now, "-o", "json", "verify", token, "--key", pem, "--alg", "RS256", "--insecure"});
  CHECK(json::parse(j.out).at("insecure_key") == true);
  // A wrong signature stays wrong under --insecure.
  std::string tampered = hs256_segments(header_seg, payload_seg, "x");
  CHECK(run({"--now", k_now, "verify", tampered, "--key", pem, "--alg", "RS256", "--insecure"}).code == 1);

  std::string short_secret = tmp.file("short");
  write_file(short_secret, "tiny");
  ::chmod(short_secret.c_str(), 0600);
  auto ht = hs256_token(k_hs_header, k_claims, "tiny");
  CHECK(run({"--now", k_now, "verify", ht, "--secret-file", short_secret, "--alg", "HS256"}).code == 1);
  auto hi = run({"--now", k_now, "verify", ht, "--secret-file", short_secret, "--alg", "HS256", "--insecure"});
  INFO(describe(hi));
  CHECK(hi.code == 0);
  CHECK_THAT(hi.out, Contains("INSECURE"));
}

// ---- exit code 70 is documented -----------------------------------------------------------------------

TEST_CASE("the root help documents exit code 70 for internal errors", "[review][crash]") {
  auto r = run({"--help"});
  CHECK(r.code == 0);
  CHECK_THAT(r.out, Contains("70 internal error"));
}
