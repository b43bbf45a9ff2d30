// CLI tests for `tokctl encrypt` and `tokctl decrypt` (issue 3, point 5): round trips for every
// alg/enc pair with keys from `tokctl keys generate`, the keystore flow, and the exit codes and
// messages of every refusal. Runs the real binary.

#include <catch2/catch.hpp>

#include <chrono>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include <tokctl/util/base64.hpp>

#include "support/run.hpp"

namespace {

using nlohmann::json;
using tokctl::test::EnvVars;
using tokctl::test::read_file;
using tokctl::test::run;
using tokctl::test::RunResult;
using tokctl::test::TempDir;
using tokctl::test::write_file;
using Catch::Matchers::Contains;

const std::vector<std::string> k_encs = {"A128GCM", "A256GCM", "A128CBC-HS256", "A256CBC-HS512"};

// Bytes that are not text: NUL, 0xff, a multi-byte UTF-8 character, a trailing newline.
const std::string k_plain = std::string("secret \xe2\x9c\x93 ") + std::string("\0\xff\x01", 3) + " end\n";

// No keystore, passphrase or policy leaks in from the environment of the test run.
EnvVars clean_env(const TempDir& dir) {
  return {{"TOKCTL_KEYSTORE", dir.file("no-keystore")},
          {"XDG_DATA_HOME", dir.file("no-xdg")},
          {"TOKCTL_PASSPHRASE", ""},
          {"TOKCTL_CONFIG", ""}};
}

std::string describe(const RunResult& r) {
  return "exit " + std::to_string(r.code) + "\nstdout: " + r.out + "\nstderr: " + r.err;
}

// `tokctl keys generate ARGS --out FILE`, and the public JWK beside it (FILE.pub) for
// asymmetric keys; returns the private key file.
std::string generate(const TempDir& dir, const std::string& name, const std::vector<std::string>& args) {
  std::string file = dir.file(name + ".jwk");
  std::vector<std::string> argv = {"keys", "generate"};
  argv.insert(argv.end(), args.begin(), args.end());
  argv.insert(argv.end(), {"--out", file});
  auto r = run(argv, {}, clean_env(dir));
  INFO(describe(r));
  REQUIRE(r.code == 0);
  return file;
}

std::string public_of(const TempDir& dir, const std::string& key_file) {
  auto r = run({"keys", "convert", key_file, "--to", "jwk", "--public"}, {}, clean_env(dir));
  INFO(describe(r));
  REQUIRE(r.code == 0);
  std::string pub = key_file + ".pub";
  write_file(pub, r.out);
  return pub;
}

json protected_header(const std::string& token) {
  auto raw = tokctl::b64url_decode(token.substr(0, token.find('.')));
  REQUIRE(raw);
  return json::parse(*raw);
}

std::string trimmed(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r')) s.pop_back();
  return s;
}

// A compact JWE with `header` and syntactically valid filler for the other parts.
std::string forged(const json& header, bool with_encrypted_key = true) {
  return tokctl::b64url_encode(header.dump()) + "." +
         (with_encrypted_key ? tokctl::b64url_encode(std::string(24, 'k')) : std::string()) + "." +
         tokctl::b64url_encode(std::string(12, 'i')) + "." + tokctl::b64url_encode("ciphertext") + "." +
         tokctl::b64url_encode(std::string(16, 't'));
}

int dir_bits(const std::string& enc) {
  if (enc == "A128GCM") return 128;
  if (enc == "A256CBC-HS512") return 512;
  return 256;
}

}  // namespace

TEST_CASE("encrypt then decrypt round-trips every alg and enc with generated keys", "[jwe][cli]") {
  TempDir dir;
  auto env = clean_env(dir);
  write_file(dir.file("plain.bin"), k_plain);
  write_file(dir.file("pw"), "correct horse battery staple\n");

  struct Case {
    std::string alg;
    std::vector<std::string> gen;  // keys generate args; empty: passphrase (PBES2)
  };
  const std::vector<Case> cases = {
      {"RSA-OAEP", {"--alg", "RSA-OAEP"}},
      {"RSA-OAEP-256", {"--alg", "RSA-OAEP-256"}},
      {"ECDH-ES", {"--alg", "ECDH-ES", "--crv", "P-256"}},
      {"ECDH-ES+A128KW", {"--alg", "ECDH-ES+A128KW", "--crv", "P-384"}},
      {"ECDH-ES+A256KW", {"--alg", "ECDH-ES+A256KW", "--crv", "X25519"}},
      {"A128KW", {"--alg", "A128KW"}},
      {"A256KW", {"--alg", "A256KW"}},
      {"dir", {"--alg", "dir"}},
      {"PBES2-HS256+A128KW", {}},
      {"PBES2-HS512+A256KW", {}},
  };
  int checked = 0;
  for (const auto& c : cases) {
    std::map<int, std::pair<std::string, std::string>> keys;  // dir: one key per size
    for (const auto& enc : k_encs) {
      INFO(c.alg << " " << enc);
      std::vector<std::string> enc_args = {"encrypt", dir.file("plain.bin"), "--alg", c.alg, "--enc", enc};
      std::vector<std::string> dec_args = {"decrypt", "-"};
      if (c.gen.empty()) {
        enc_args.insert(enc_args.begin(), {"--passphrase-file", dir.file("pw")});
        enc_args.insert(enc_args.end(), {"--p2c", "1000"});
        dec_args.insert(dec_args.begin(), {"--passphrase-file", dir.file("pw")});
      } else {
        int slot = c.alg == "dir" ? dir_bits(enc) : 0;
        if (!keys.count(slot)) {
          auto gen = c.gen;
          if (c.alg == "dir") gen.insert(gen.end(), {"--bits", std::to_string(slot)});
          auto priv = generate(dir, c.alg + "-" + std::to_string(slot), gen);
          bool oct = c.alg.find("KW") != std::string::npos && c.alg.rfind("ECDH", 0) != 0;
          keys[slot] = {priv, oct || c.alg == "dir" ? priv : public_of(dir, priv)};
        }
        enc_args.insert(enc_args.end(), {"--key", keys[slot].second});
        dec_args.insert(dec_args.end(), {"--key", keys[slot].first});
      }
      auto e = run(enc_args, {}, env);
      INFO(describe(e));
      REQUIRE(e.code == 0);
      std::string token = trimmed(e.out);
      auto header = protected_header(token);
      CHECK(header["alg"] == c.alg);
      CHECK(header["enc"] == enc);
      CHECK_FALSE(header.contains("zip"));
      auto d = run(dec_args, token, env);
      INFO(describe(d));
      REQUIRE(d.code == 0);
      CHECK(d.out == k_plain);  // byte-exact: no newline added
      ++checked;
    }
  }
  CHECK(checked == 40);
}

TEST_CASE("encrypt defaults the alg from the key type and sets the key's kid", "[jwe][cli]") {
  TempDir dir;
  auto env = clean_env(dir);
  auto kw128 = generate(dir, "kw128", {"--alg", "A128KW", "--kid", "wrap-1"});
  auto ec = generate(dir, "ec", {"--alg", "ECDH-ES", "--crv", "P-256"});
  // Keys without an "alg": PEM, and a bare oct JWK of 32 bytes.
  auto rsa_pem = run({"keys", "generate", "--alg", "RSA-OAEP", "--format", "pem"}, {}, env);
  REQUIRE(rsa_pem.code == 0);
  write_file(dir.file("rsa.pem"), rsa_pem.out);
  auto ec_pem = run({"keys", "convert", ec, "--to", "pem", "--public"}, {}, env);
  REQUIRE(ec_pem.code == 0);
  write_file(dir.file("ec.pub.pem"), ec_pem.out);
  write_file(dir.file("oct32.jwk"), json{{"kty", "oct"}, {"k", tokctl::b64url_encode(std::string(32, 'x'))}}.dump());

  auto alg_of = [&](const std::string& key) {
    auto r = run({"encrypt", "--key", key}, "payload", env);
    INFO(describe(r));
    REQUIRE(r.code == 0);
    return protected_header(trimmed(r.out));
  };
  auto h = alg_of(kw128);
  CHECK(h["alg"] == "A128KW");
  CHECK(h["enc"] == "A256GCM");
  CHECK(h["kid"] == "wrap-1");
  CHECK(alg_of(ec)["alg"] == "ECDH-ES");  // the key's own alg
  CHECK(alg_of(dir.file("rsa.pem"))["alg"] == "RSA-OAEP-256");
  CHECK(alg_of(dir.file("ec.pub.pem"))["alg"] == "ECDH-ES+A256KW");
  CHECK(alg_of(dir.file("oct32.jwk"))["alg"] == "A256KW");

  // dir: the enc follows the key size.
  auto dir512 = generate(dir, "dir512", {"--alg", "dir", "--bits", "512"});
  CHECK(alg_of(dir512)["enc"] == "A256CBC-HS512");

  SECTION("a signing key is refused with a hint") {
    auto ed = generate(dir, "ed", {"--alg", "EdDSA"});
    auto r = run({"encrypt", "--key", ed}, "payload", env);
    CHECK(r.code == 2);
    CHECK_THAT(r.err, Contains("EdDSA") && Contains("not a JWE algorithm"));
  }
  SECTION("RSA1_5 is refused when encrypting too") {
    auto r = run({"encrypt", "--key", dir.file("rsa.pem"), "--alg", "RSA1_5"}, "payload", env);
    CHECK(r.code == 2);
    CHECK_THAT(r.err, Contains("RSA1_5"));
  }
}

TEST_CASE("decrypt -o json shows the header and the plaintext as utf8 or base64url", "[jwe][cli]") {
  TempDir dir;
  auto env = clean_env(dir);
  auto key = generate(dir, "k", {"--alg", "A256KW"});
  auto text = run({"encrypt", "--key", key, "--cty", "text/plain"}, "h\xc3\xa9llo", env);
  REQUIRE(text.code == 0);
  auto r = run({"-o", "json", "decrypt", trimmed(text.out), "--key", key}, {}, env);
  INFO(describe(r));
  REQUIRE(r.code == 0);
  auto j = json::parse(r.out);
  CHECK(j["encoding"] == "utf8");
  CHECK(j["plaintext"] == "h\xc3\xa9llo");
  CHECK(j["header"]["alg"] == "A256KW");
  CHECK(j["header"]["cty"] == "text/plain");

  auto bin = run({"encrypt", "--key", key}, k_plain, env);
  REQUIRE(bin.code == 0);
  r = run({"-o", "json", "decrypt", trimmed(bin.out), "--key", key}, {}, env);
  REQUIRE(r.code == 0);
  j = json::parse(r.out);
  CHECK(j["encoding"] == "base64url");
  CHECK(j["plaintext"] == tokctl::b64url_encode(k_plain));

  auto e = run({"-o", "json", "encrypt", "--key", key}, "x", env);
  REQUIRE(e.code == 0);
  auto ej = json::parse(e.out);
  CHECK(ej["alg"] == "A256KW");
  CHECK(ej["enc"] == "A256GCM");
  CHECK(std::string(ej["token"]).size() > 20);
}

TEST_CASE("a nested JWT from sign | encrypt --cty JWT decrypts to a JWS that verifies", "[jwe][cli]") {
  TempDir dir;
  auto env = clean_env(dir);
  auto sig = generate(dir, "sig", {"--alg", "ES256"});
  auto rcpt = generate(dir, "rcpt", {"--alg", "RSA-OAEP-256"});
  auto jws = run({"--now", "2026-01-01T00:00:00Z", "sign", "--key", sig, "--sub", "alice", "--exp", "+10m"}, {}, env);
  REQUIRE(jws.code == 0);
  // The signed token arrives with sign's trailing newline: encrypt takes the token, not the newline.
  auto jwe = run({"encrypt", "--cty", "JWT", "--key", public_of(dir, rcpt)}, jws.out, env);
  INFO(describe(jwe));
  REQUIRE(jwe.code == 0);
  CHECK(protected_header(trimmed(jwe.out))["cty"] == "JWT");
  auto inner = run({"decrypt", trimmed(jwe.out), "--key", rcpt}, {}, env);
  REQUIRE(inner.code == 0);
  CHECK(inner.out == trimmed(jws.out));
  auto v = run({"--now", "2026-01-01T00:01:00Z", "verify", "-", "--key", sig}, inner.out, env);
  INFO(describe(v));
  CHECK(v.code == 0);

  auto bad = run({"encrypt", "--cty", "JWT", "--key", rcpt}, "not a token", env);
  CHECK(bad.code == 3);
  CHECK_THAT(bad.err, Contains("--cty JWT"));
}

TEST_CASE("keystore flow: keys add, encrypt --kid, decrypt finds the key by the token's kid", "[jwe][cli]") {
  TempDir dir;
  auto env = clean_env(dir);
  const std::string ks = dir.file("ks");
  auto add = run({"--keystore", ks, "-q", "keys", "add", "--alg", "ECDH-ES+A256KW"}, {}, env);
  INFO(describe(add));
  REQUIRE(add.code == 0);
  const std::string kid = trimmed(add.out);
  REQUIRE_FALSE(kid.empty());

  auto e = run({"--keystore", ks, "encrypt", "--kid", kid}, k_plain, env);
  INFO(describe(e));
  REQUIRE(e.code == 0);
  auto header = protected_header(trimmed(e.out));
  CHECK(header["kid"] == kid);
  CHECK(header["alg"] == "ECDH-ES+A256KW");

  auto d = run({"--keystore", ks, "decrypt", trimmed(e.out)}, {}, env);
  INFO(describe(d));
  REQUIRE(d.code == 0);
  CHECK(d.out == k_plain);

  SECTION("without --kid the active encryption key is used") {
    auto e2 = run({"--keystore", ks, "encrypt"}, "hi", env);
    REQUIRE(e2.code == 0);
    CHECK(protected_header(trimmed(e2.out))["kid"] == kid);
  }
  SECTION("a kid the keystore does not have is a missing key (exit 2)") {
    auto other = generate(dir, "other", {"--alg", "ECDH-ES+A256KW", "--kid", "elsewhere"});
    auto t = run({"encrypt", "--key", other}, "hi", env);
    REQUIRE(t.code == 0);
    auto r = run({"--keystore", ks, "decrypt", trimmed(t.out)}, {}, env);
    CHECK(r.code == 2);
    CHECK_THAT(r.err, Contains("elsewhere") && Contains("hint:"));
  }
  SECTION("an unknown --kid is a keystore error (exit 4)") {
    auto r = run({"--keystore", ks, "encrypt", "--kid", "nope"}, "hi", env);
    CHECK(r.code == 4);
    CHECK_THAT(r.err, Contains("nope"));
  }
}

TEST_CASE("keystore keys encrypted at rest need the passphrase to decrypt, not to encrypt", "[jwe][cli]") {
  TempDir dir;
  auto env = clean_env(dir);
  const std::string ks = dir.file("ks");
  write_file(dir.file("pw"), "at-rest passphrase\n");
  auto add = run({"--keystore", ks, "--passphrase-file", dir.file("pw"), "-q", "keys", "add", "--alg", "RSA-OAEP-256"},
                 {}, env);
  INFO(describe(add));
  REQUIRE(add.code == 0);
  const std::string kid = trimmed(add.out);

  auto e = run({"--keystore", ks, "encrypt", "--kid", kid}, "at rest", env);
  INFO(describe(e));
  REQUIRE(e.code == 0);
  auto no_pw = run({"--keystore", ks, "decrypt", trimmed(e.out)}, {}, env);
  CHECK(no_pw.code == 4);
  CHECK_THAT(no_pw.err, Contains("encrypted at rest") && Contains("hint:"));
  auto ok = run({"--keystore", ks, "--passphrase-file", dir.file("pw"), "decrypt", trimmed(e.out)}, {}, env);
  INFO(describe(ok));
  CHECK(ok.code == 0);
  CHECK(ok.out == "at rest");
}

TEST_CASE("decrypt exit codes: wrong key, tampering and refusals are 1, malformed 3, no key 2", "[jwe][cli]") {
  TempDir dir;
  auto env = clean_env(dir);
  auto key = generate(dir, "k", {"--alg", "ECDH-ES+A128KW", "--crv", "P-256"});
  auto other = generate(dir, "other", {"--alg", "ECDH-ES+A128KW", "--crv", "P-256"});
  auto e = run({"encrypt", "--key", key, "--enc", "A128CBC-HS256"}, "payload", env);
  REQUIRE(e.code == 0);
  const std::string token = trimmed(e.out);

  SECTION("wrong key") {
    auto r = run({"decrypt", token, "--key", other}, {}, env);
    CHECK(r.code == 1);
    CHECK(r.out.empty());
    CHECK_THAT(r.err, Contains("tokctl: error:"));
  }
  SECTION("tampered ciphertext") {
    auto parts = token;
    auto p3 = parts.rfind('.');
    auto p2 = parts.rfind('.', p3 - 1);
    std::size_t i = p2 + 1 + (p3 - p2 - 1) / 2;
    parts[i] = parts[i] == 'A' ? 'B' : 'A';
    auto r = run({"decrypt", parts, "--key", key}, {}, env);
    CHECK(r.code == 1);
    CHECK(r.out.empty());
  }
  SECTION("truncated tag") {
    auto dot = token.rfind('.');
    auto tag = tokctl::b64url_decode(token.substr(dot + 1));
    REQUIRE(tag);
    REQUIRE(tag->size() == 16);
    auto truncated = token.substr(0, dot + 1) + tokctl::b64url_encode(tag->substr(0, 12));
    auto r = run({"decrypt", truncated, "--key", key}, {}, env);
    CHECK(r.code == 1);
    CHECK_THAT(r.err, Contains("tag"));
  }
  SECTION("malformed") {
    CHECK(run({"decrypt", "abc.def", "--key", key}, {}, env).code == 3);
    CHECK(run({"decrypt", "!!!.a.b.c.d", "--key", key}, {}, env).code == 3);
    auto jws = run({"decrypt", "eyJhbGciOiJIUzI1NiJ9.e30.c2ln", "--key", key}, {}, env);
    CHECK(jws.code == 3);
    CHECK_THAT(jws.err, Contains("JWS"));
  }
  SECTION("RSA1_5 is refused with a clear message") {
    auto rsa = generate(dir, "rsa", {"--alg", "RSA-OAEP"});
    auto r = run({"decrypt", forged({{"alg", "RSA1_5"}, {"enc", "A128GCM"}}), "--key", rsa}, {}, env);
    CHECK(r.code == 1);
    CHECK_THAT(r.err, Contains("RSA1_5") && Contains("refused"));
    // Refused before any key is looked up: no key at all still says why.
    auto nokey = run({"decrypt", forged({{"alg", "RSA1_5"}, {"enc", "A128GCM"}})}, {}, env);
    CHECK(nokey.code == 1);
    CHECK_THAT(nokey.err, Contains("RSA1_5"));
  }
  SECTION("zip is refused") {
    auto r = run({"decrypt", forged({{"alg", "A128KW"}, {"enc", "A128GCM"}, {"zip", "DEF"}}), "--key", key}, {}, env);
    CHECK(r.code == 1);
    CHECK_THAT(r.err, Contains("zip"));
  }
  SECTION("a PBES2 p2c above the ceiling is refused before any work") {
    json h = {{"alg", "PBES2-HS512+A256KW"},
              {"enc", "A256GCM"},
              {"p2s", tokctl::b64url_encode(std::string(16, 's'))},
              {"p2c", 2000000000}};
    write_file(dir.file("pw"), "pw");
    auto start = std::chrono::steady_clock::now();
    auto r = run({"--passphrase-file", dir.file("pw"), "decrypt", forged(h)}, {}, env);
    auto took = std::chrono::steady_clock::now() - start;
    CHECK(r.code == 1);
    CHECK_THAT(r.err, Contains("p2c") && Contains("ceiling"));
    CHECK(took < std::chrono::seconds(2));
  }
  SECTION("no key at all is a usage error with a hint") {
    auto r = run({"decrypt", token}, {}, env);
    CHECK(r.code == 2);
    CHECK_THAT(r.err, Contains("no decryption key") && Contains("hint:") && Contains("--key"));
  }
  SECTION("a PBES2 token without a passphrase is a usage error with a hint") {
    write_file(dir.file("pw"), "pw");
    auto p = run({"--passphrase-file", dir.file("pw"), "encrypt", "--alg", "PBES2-HS256+A128KW", "--p2c", "1000"},
                 "x", env);
    REQUIRE(p.code == 0);
    auto r = run({"decrypt", trimmed(p.out)}, {}, env);
    CHECK(r.code == 2);
    CHECK_THAT(r.err, Contains("passphrase") && Contains("hint:"));
    auto wrong = run({"decrypt", trimmed(p.out)}, {}, {{"TOKCTL_PASSPHRASE", "not it"}, {"TOKCTL_KEYSTORE", dir.file("x")}});
    CHECK(wrong.code == 1);
  }
  SECTION("a public key cannot decrypt") {
    auto r = run({"decrypt", token, "--key", public_of(dir, key)}, {}, env);
    CHECK(r.code == 2);
    CHECK_THAT(r.err, Contains("private"));
  }
  SECTION("encrypt with no recipient is a usage error with a hint") {
    auto r = run({"encrypt"}, "x", env);
    CHECK(r.code == 2);
    CHECK_THAT(r.err, Contains("no recipient key") && Contains("hint:"));
    auto pb = run({"encrypt", "--alg", "PBES2-HS256+A128KW"}, "x", env);
    CHECK(pb.code == 2);
    CHECK_THAT(pb.err, Contains("passphrase"));
  }
  SECTION("key and payload cannot both be stdin") {
    CHECK(run({"encrypt", "--key", "-"}, "x", env).code == 2);
    CHECK(run({"decrypt", "--key", "-"}, "x", env).code == 2);
  }
}

TEST_CASE("encrypt and decrypt help show examples", "[jwe][cli]") {
  for (const char* cmd : {"encrypt", "decrypt"}) {
    auto r = run({cmd, "--help"});
    INFO(cmd);
    CHECK(r.code == 0);
    CHECK_THAT(r.out, Contains("Examples:") && Contains(std::string("tokctl ") + cmd));
  }
}
