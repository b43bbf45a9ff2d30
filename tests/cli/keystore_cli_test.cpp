// CLI tests of the file keystore (issue 3, points 1-3, 6, 7): every `tokctl keys` keystore command
// in text and JSON, exit codes, the key lifecycle story with sign/verify and --now time travel,
// keys at rest encrypted with a passphrase, permissions, two concurrent rotating processes, and
// SIGKILL at each fault point (TOKCTL_FAULT, armed only in the test-only tokctl-faulty) of add, rotate
// and prune.
// Nothing sleeps: every time is pinned with --now.

#include <catch2/catch.hpp>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <map>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include <dirent.h>
#include <fcntl.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include <tokctl/util/base64.hpp>

#include "support/cli_helpers.hpp"
#include "support/keys.hpp"
#include "support/run.hpp"

extern char** environ;

namespace {

using nlohmann::json;
using tokctl::test::describe;
using tokctl::test::EnvVars;
using tokctl::test::file_mode;
using tokctl::test::files_in;
using tokctl::test::read_file;
using tokctl::test::RunResult;
using tokctl::test::TempDir;
using tokctl::test::trimmed;
using tokctl::test::write_file;
using Catch::Matchers::Contains;

constexpr const char* k_t0 = "2026-01-01T00:00:00Z";
constexpr const char* k_t0_1m = "2026-01-01T00:01:00Z";
constexpr const char* k_t0_2m = "2026-01-01T00:02:00Z";
constexpr const char* k_t0_5m = "2026-01-01T00:05:00Z";
constexpr const char* k_t0_10m = "2026-01-01T00:10:00Z";
constexpr const char* k_t0_20m = "2026-01-01T00:20:00Z";
constexpr const char* k_t0_1h = "2026-01-01T01:00:00Z";
constexpr const char* k_t0_2h = "2026-01-01T02:00:00Z";
// Retired at t0+10m, default max lifetime 24h: prunable from 2026-01-02T00:10:00Z on.
constexpr const char* k_t0_25h = "2026-01-02T01:00:00Z";
constexpr int k_killed = 128 + 9;

const std::vector<std::string> k_private_members = {"d", "p", "q", "dp", "dq", "qi", "oth", "k"};

json parse_json(const RunResult& r) {
  INFO(describe(r));
  json j;
  REQUIRE_NOTHROW(j = json::parse(r.out));
  return j;
}

json jose_header(const std::string& compact) {
  auto h = tokctl::b64url_decode(compact.substr(0, compact.find('.')));
  REQUIRE(h);
  return json::parse(*h);
}

// A keystore at <tmp>/ks, driven through the real binary. The environment never leaks a keystore,
// passphrase or policy file of the machine running the tests into the child.
struct Store {
  TempDir tmp;
  std::string dir = tmp.file("ks");
  EnvVars env = {{"TOKCTL_KEYSTORE", ""}, {"TOKCTL_PASSPHRASE", ""}, {"TOKCTL_CONFIG", ""},
                 {"TOKCTL_FAULT", ""},    {"XDG_DATA_HOME", tmp.file("xdg")}};

  RunResult tk(std::vector<std::string> args, const std::string& now = k_t0, const EnvVars& extra = {},
               std::string_view in = {}) const {
    std::vector<std::string> a = {"--keystore", dir, "--now", now};
    a.insert(a.end(), args.begin(), args.end());
    EnvVars e = env;
    e.insert(e.end(), extra.begin(), extra.end());
    return tokctl::test::run(a, in, e);
  }

  // Like tk(), run by the test-only tokctl-faulty, which SIGKILLs itself at fault point `point`.
  RunResult crash(std::vector<std::string> args, const std::string& now, const std::string& point,
                  EnvVars extra = {}) const {
    std::vector<std::string> a = {"--keystore", dir, "--now", now};
    a.insert(a.end(), args.begin(), args.end());
    EnvVars e = env;
    e.insert(e.end(), extra.begin(), extra.end());
    e.emplace_back("TOKCTL_FAULT", point);
    return tokctl::test::run_faulty(a, {}, e);
  }

  // `keys add`, checked; returns the kid.
  std::string add(const std::string& alg, std::vector<std::string> more = {}, const std::string& now = k_t0,
                  const EnvVars& extra = {}) const {
    std::vector<std::string> a = {"-o", "json", "keys", "add", "--alg", alg};
    a.insert(a.end(), more.begin(), more.end());
    auto r = tk(a, now, extra);
    INFO(describe(r));
    REQUIRE(r.code == 0);
    return parse_json(r).at("kid").get<std::string>();
  }

  json list() const {
    auto r = tk({"-o", "json", "keys", "list"});
    INFO(describe(r));
    REQUIRE(r.code == 0);
    return parse_json(r).at("keys");
  }

  json manifest() const { return json::parse(read_file(dir + "/keystore.json")); }

  std::vector<std::string> kids_in_state(const std::string& state, const std::string& alg = "ES256") const {
    std::vector<std::string> out;
    for (const auto& k : list())
      if (k.at("state") == state && k.at("alg") == alg) out.push_back(k.at("kid"));
    return out;
  }

  // Files under keys/ that the manifest names.
  std::set<std::string> named_files() const {
    std::set<std::string> out;
    json m = manifest();
    for (const auto& k : m.at("keys"))
      out.insert(k.at("kid").get<std::string>() + (k.value("encrypted", false) ? ".jwe" : ".jwk"));
    return out;
  }

  // A JWT signed by the keystore's active key (sign without --key), valid for 1h from `now` unless
  // `more` has an --exp.
  std::string sign(const std::string& now = k_t0, std::vector<std::string> more = {},
                   const EnvVars& extra = {}) const {
    std::vector<std::string> a = {"sign", "--sub", "alice"};
    a.insert(a.end(), more.begin(), more.end());
    if (std::find(more.begin(), more.end(), "--exp") == more.end()) a.insert(a.end(), {"--exp", "+1h"});
    auto r = tk(a, now, extra);
    INFO(describe(r));
    REQUIRE(r.code == 0);
    return trimmed(r.out);
  }

  // verify without --key: the keystore looks up the token's kid.
  RunResult verify(const std::string& token, const std::string& now = k_t0_5m, const EnvVars& extra = {}) const {
    return tk({"-o", "json", "verify", token}, now, extra);
  }

  // verify against the published JWKS (`keys jwks`), independent of verify's keystore lookup.
  RunResult verify_jwks(const std::string& token, const std::string& now = k_t0_5m) const {
    auto jw = tk({"keys", "jwks"});
    INFO(describe(jw));
    REQUIRE(jw.code == 0);
    std::string path = tmp.file("published-jwks.json");
    write_file(path, jw.out);
    return tokctl::test::run({"--now", now, "-o", "json", "verify", "--jwks", path, token}, {}, env);
  }
};

void require_ok(const RunResult& r) {
  INFO(describe(r));
  REQUIRE(r.code == 0);
}

void check_no_private_members(const json& jwks) {
  REQUIRE(jwks.contains("keys"));
  for (const auto& k : jwks["keys"]) {
    INFO(k.dump());
    for (const auto& m : k_private_members) CHECK_FALSE(k.contains(m));
    CHECK(k.at("kty") != "oct");
  }
}

}  // namespace

// ---- every command, text and JSON ------------------------------------------------------------

TEST_CASE("keys add prints the kid in text and the entry in JSON", "[keystore][cli]") {
  Store s;
  auto r = s.tk({"keys", "add", "--alg", "ES256"});
  require_ok(r);
  std::string kid = trimmed(r.out);
  CHECK(kid.size() == 43);  // base64url SHA-256 thumbprint
  CHECK_THAT(r.err, Contains("active"));
  CHECK(file_mode(s.dir) == 0700);
  CHECK(file_mode(s.dir + "/keys/" + kid + ".jwk") == 0600);

  auto j = s.tk({"-o", "json", "keys", "add", "--alg", "ES256", "--kid", "second"});
  require_ok(j);
  json e = parse_json(j);
  CHECK(e.at("kid") == "second");
  CHECK(e.at("alg") == "ES256");
  CHECK(e.at("use") == "sig");
  CHECK(e.at("state") == "next");
  CHECK(e.at("created") == k_t0);
  CHECK(e.at("encrypted") == false);
  CHECK(e.at("thumbprint").get<std::string>().size() == 43);

  auto st = s.tk({"-o", "json", "keys", "add", "--alg", "EdDSA", "--state", "next"});
  require_ok(st);
  CHECK(parse_json(st).at("state") == "next");
}

TEST_CASE("keys add refuses bad input with usage or keystore exit codes", "[keystore][cli]") {
  Store s;
  s.add("ES256", {"--kid", "k1"});
  auto bad_alg = s.tk({"keys", "add", "--alg", "ES257"});
  CHECK(bad_alg.code == 2);
  CHECK_THAT(bad_alg.err, Contains("ES257"));
  auto bad_state = s.tk({"keys", "add", "--alg", "ES256", "--state", "retired"});
  CHECK(bad_state.code == 2);
  auto bad_kid = s.tk({"keys", "add", "--alg", "ES256", "--kid", "../../escape"});
  CHECK(bad_kid.code == 2);
  auto dup = s.tk({"keys", "add", "--alg", "ES256", "--kid", "k1"});
  CHECK(dup.code == 4);
  CHECK_THAT(dup.err, Contains("k1"));
  auto missing_alg = s.tk({"keys", "add"});
  CHECK(missing_alg.code == 2);
  CHECK(s.list().size() == 1);
}

TEST_CASE("keys list shows every key in text and JSON", "[keystore][cli]") {
  Store s;
  auto a = s.add("ES256");
  auto b = s.add("ES256");
  auto text = s.tk({"keys", "list"});
  require_ok(text);
  CHECK_THAT(text.out, Contains("KID"));
  CHECK_THAT(text.out, Contains("STATE"));
  CHECK_THAT(text.out, Contains(a));
  CHECK_THAT(text.out, Contains(b));
  CHECK_THAT(text.out, Contains("active"));
  CHECK_THAT(text.out, Contains("next"));
  CHECK(text.out.find('\x1b') == std::string::npos);

  auto j = s.tk({"-o", "json", "keys", "list"});
  require_ok(j);
  json doc = parse_json(j);
  CHECK(doc.at("keystore") == s.dir);
  REQUIRE(doc.at("keys").size() == 2);
  for (const auto& k : doc["keys"]) {
    for (const char* field : {"kid", "alg", "use", "state", "created", "activated", "retired", "thumbprint",
                              "encrypted"})
      CHECK(k.contains(field));
  }
  CHECK(doc["keys"][0].at("kid") == a);
  CHECK(doc["keys"][0].at("state") == "active");
  CHECK(doc["keys"][1].at("state") == "next");
}

TEST_CASE("keys list of a missing keystore is exit 4 with a hint", "[keystore][cli]") {
  Store s;
  auto r = s.tk({"keys", "list"});
  CHECK(r.code == 4);
  CHECK_THAT(r.err, Contains("hint:"));
  CHECK_THAT(r.err, Contains("keys add"));
  CHECK(::access(s.dir.c_str(), F_OK) != 0);  // readers never create it
}

TEST_CASE("keys rotate in text and JSON", "[keystore][cli]") {
  Store s;
  auto a = s.add("ES256");
  auto b = s.add("ES256");
  auto text = s.tk({"keys", "rotate", "--alg", "ES256"}, k_t0_1h);
  require_ok(text);
  CHECK_THAT(text.out, Contains("ES256: active " + b));
  CHECK_THAT(text.out, Contains("retired " + a));
  CHECK_THAT(text.err, Contains("keys jwks"));
  auto c = s.kids_in_state("next");
  REQUIRE(c.size() == 1);
  CHECK_THAT(text.out, Contains("next " + c[0]));

  auto j = s.tk({"-o", "json", "keys", "rotate"}, k_t0_2h);
  require_ok(j);
  json doc = parse_json(j);
  REQUIRE(doc.at("rotated").size() == 1);
  CHECK(doc.at("skipped").empty());
  CHECK(doc["rotated"][0].at("alg") == "ES256");
  CHECK(doc["rotated"][0].at("activated") == c[0]);
  CHECK(doc["rotated"][0].at("retired") == b);
  CHECK(doc["rotated"][0].at("next").is_string());
  CHECK(s.kids_in_state("retired") == std::vector<std::string>{a, b});
}

TEST_CASE("keys rotate without a next key is exit 4 with a hint to add and publish one", "[keystore][cli]") {
  Store s;
  s.add("ES256");
  std::string before = read_file(s.dir + "/keystore.json");
  for (std::vector<std::string> args : {std::vector<std::string>{"keys", "rotate", "--alg", "ES256"},
                                        std::vector<std::string>{"keys", "rotate"},
                                        std::vector<std::string>{"-o", "json", "keys", "rotate"}}) {
    auto r = s.tk(args);
    INFO(describe(r));
    CHECK(r.code == 4);
    CHECK_THAT(r.err, Contains("hint:"));
    CHECK_THAT(r.err, Contains("publish"));
    CHECK_THAT(r.err, Contains("keys add"));
  }
  CHECK(read_file(s.dir + "/keystore.json") == before);
  auto forced = s.tk({"keys", "rotate", "--alg", "ES256", "--force"});
  require_ok(forced);
  CHECK(s.kids_in_state("active").size() == 1);
  CHECK(s.kids_in_state("retired").size() == 1);
  CHECK(s.kids_in_state("next").size() == 1);
}

TEST_CASE("keys retire in text and JSON, idempotent", "[keystore][cli]") {
  Store s;
  s.add("ES256");
  auto b = s.add("ES256");
  auto text = s.tk({"keys", "retire", "--", b}, k_t0_5m);
  require_ok(text);
  CHECK(trimmed(text.out) == b);
  auto j = s.tk({"-o", "json", "keys", "retire", "--", b}, k_t0_10m);
  require_ok(j);
  json e = parse_json(j);
  CHECK(e.at("state") == "retired");
  CHECK(e.at("retired") == k_t0_5m);
  auto unknown = s.tk({"keys", "retire", "nope"});
  CHECK(unknown.code == 4);
  auto missing = s.tk({"keys", "retire"});
  CHECK(missing.code == 2);
}

TEST_CASE("keys prune in text and JSON honours max lifetime and grace", "[keystore][cli]") {
  Store s;
  auto a = s.add("ES256");
  s.add("ES256");
  require_ok(s.tk({"keys", "rotate", "--force"}, k_t0_10m));  // a retired at t0+10m

  // Default max lifetime 24h + default grace 60s (verify's leeway): too early at t0+10m+24h+59s,
  // due at t0+10m+24h+60s.
  auto early = s.tk({"-o", "json", "keys", "prune"}, "2026-01-02T00:10:59Z");
  require_ok(early);
  CHECK(parse_json(early).at("pruned").empty());
  CHECK(parse_json(early).at("max_lifetime") == 24 * 3600);
  CHECK(parse_json(early).at("grace") == 60);
  auto graced = s.tk({"-o", "json", "keys", "prune", "--grace", "1h"}, "2026-01-02T00:11:00Z");
  require_ok(graced);
  CHECK(parse_json(graced).at("pruned").empty());
  CHECK(parse_json(graced).at("grace") == 3600);

  auto due = s.tk({"keys", "prune"}, "2026-01-02T00:11:00Z");
  require_ok(due);
  CHECK(trimmed(due.out) == a);
  CHECK_THAT(due.err, Contains("pruned 1"));
  CHECK(::access((s.dir + "/keys/" + a + ".jwk").c_str(), F_OK) != 0);
  CHECK(s.list().size() == 2);

  auto nothing = s.tk({"-o", "json", "keys", "prune"}, "2030-01-01T00:00:00Z");
  require_ok(nothing);
  CHECK(parse_json(nothing).at("pruned").empty());
  CHECK(s.list().size() == 2);  // next and active are never pruned
  CHECK(s.tk({"keys", "prune", "--grace", "soon"}).code == 2);
}

TEST_CASE("keys prune takes the max lifetime from the policy file", "[keystore][cli]") {
  Store s;
  auto a = s.add("ES256");
  s.add("ES256");
  require_ok(s.tk({"keys", "rotate", "--force"}, k_t0));
  std::string policy = s.tmp.file("tokctl.yaml");
  write_file(policy, "tokens:\n  max_lifetime: 1h\n");
  auto r = s.tk({"--config", policy, "-o", "json", "keys", "prune", "--grace", "0s"}, "2026-01-01T01:00:00Z");
  require_ok(r);
  json doc = parse_json(r);
  CHECK(doc.at("max_lifetime") == 3600);
  CHECK(doc.at("pruned") == json::array({a}));
}

TEST_CASE("keys jwks publishes public keys only, to stdout or --out", "[keystore][cli]") {
  Store s;
  auto a = s.add("ES256");
  auto b = s.add("ES256");
  require_ok(s.tk({"keys", "rotate", "--force"}, k_t0_10m));
  require_ok(s.tk({"keys", "import", "-", "--alg", "RS256"}, k_t0,
                  {}, tokctl::test::test_key_json("rsa2048")));
  require_ok(s.tk({"keys", "import", "-", "--alg", "HS256", "--kid", "hmac"}, k_t0, {},
                  tokctl::test::test_key_json("hs256")));
  require_ok(s.tk({"keys", "add", "--alg", "EdDSA"}));

  for (std::vector<std::string> args : {std::vector<std::string>{"keys", "jwks"},
                                        std::vector<std::string>{"-o", "json", "keys", "jwks"}}) {
    auto r = s.tk(args);
    require_ok(r);
    json doc = parse_json(r);
    check_no_private_members(doc);
    std::set<std::string> kids;
    for (const auto& k : doc["keys"]) kids.insert(k.at("kid"));
    CHECK(kids.size() == 5);  // 3 ES256 (retired, active, next), RS256, EdDSA; never the HMAC secret
    CHECK(kids.count(a) == 1);
    CHECK(kids.count(b) == 1);
    CHECK(kids.count("hmac") == 0);
    for (const auto& k : doc["keys"]) CHECK(k.contains("alg"));
  }

  std::string out = s.tmp.file("public/jwks.json");
  ::mkdir(s.tmp.file("public").c_str(), 0755);
  auto w = s.tk({"keys", "jwks", "--out", out});
  require_ok(w);
  CHECK(w.out.empty());
  std::string text = read_file(out);
  CHECK(text.find("\"d\"") == std::string::npos);
  CHECK(text.find("\"k\"") == std::string::npos);
  CHECK(text.find("\"p\"") == std::string::npos);
  CHECK(text.find("\"qi\"") == std::string::npos);
  check_no_private_members(json::parse(text));
  CHECK(json::parse(text).at("keys").size() == 5);
  CHECK(file_mode(out) == 0644);
  // Publishing again replaces the file only with --force.
  auto again = s.tk({"keys", "jwks", "--out", out});
  CHECK(again.code == 2);
  CHECK_THAT(again.err, Contains("--force"));
  CHECK(read_file(out) == text);
  require_ok(s.tk({"keys", "jwks", "--out", out, "--force"}));
  // A file that cannot be created is named as asked, never by a temporary name.
  for (const char* force : {"--force", ""}) {
    std::vector<std::string> args = {"keys", "jwks", "--out", "/nonexistent-dir/jwks.json"};
    if (*force) args.push_back(force);
    auto bad = s.tk(args);
    INFO(describe(bad));
    CHECK(bad.code == 4);
    CHECK_THAT(bad.err, Contains("cannot create '/nonexistent-dir/jwks.json'"));
    CHECK(bad.err.find(".tmp.") == std::string::npos);
  }
}

TEST_CASE("keys show in text and JSON", "[keystore][cli]") {
  Store s;
  auto a = s.add("ES256");
  auto text = s.tk({"keys", "show", "--", a});
  require_ok(text);
  CHECK_THAT(text.out, Contains(a));
  CHECK_THAT(text.out, Contains("active"));
  CHECK_THAT(text.out, Contains("public JWK"));
  CHECK(text.out.find("\"d\"") == std::string::npos);
  auto j = s.tk({"-o", "json", "keys", "show", "--", a});
  require_ok(j);
  json e = parse_json(j);
  CHECK(e.at("kid") == a);
  CHECK(e.at("state") == "active");
  CHECK(e.at("jwk").at("kty") == "EC");
  for (const auto& m : k_private_members) CHECK_FALSE(e["jwk"].contains(m));
  CHECK(s.tk({"keys", "show", "nope"}).code == 4);
}

TEST_CASE("keys export gives the private or public key as JWK or PEM", "[keystore][cli]") {
  Store s;
  auto a = s.add("ES256");
  auto priv = s.tk({"keys", "export", "--", a});
  require_ok(priv);
  json jp = parse_json(priv);
  CHECK(jp.at("kid") == a);
  CHECK(jp.contains("d"));
  auto pub = s.tk({"keys", "export", "--public", "--", a});
  require_ok(pub);
  json ju = parse_json(pub);
  CHECK(ju.at("kid") == a);
  CHECK_FALSE(ju.contains("d"));
  CHECK(ju.at("x") == jp.at("x"));
  auto pem = s.tk({"keys", "export", "--format", "pem", "--", a});
  require_ok(pem);
  CHECK_THAT(pem.out, Contains("-----BEGIN PRIVATE KEY-----"));
  auto pub_pem = s.tk({"-o", "json", "keys", "export", "--public", "--format", "pem", "--", a});
  require_ok(pub_pem);
  CHECK_THAT(pub_pem.out, Contains("-----BEGIN PUBLIC KEY-----"));
  CHECK(s.tk({"keys", "export", "--format", "der", "--", a}).code == 2);
  CHECK(s.tk({"keys", "export", "nope"}).code == 4);
}

TEST_CASE("keys import takes a JWK or PEM from a file or stdin", "[keystore][cli]") {
  Store s;
  std::string jwk = s.tmp.file("p256.jwk");
  write_file(jwk, tokctl::test::test_key_json("p256"));
  auto r = s.tk({"keys", "import", jwk, "--alg", "ES256"});
  require_ok(r);
  std::string kid = trimmed(r.out);
  CHECK(kid.size() == 43);
  CHECK_THAT(r.err, Contains("active"));

  auto pem = s.tk({"-o", "json", "keys", "import", "-", "--alg", "PS256", "--kid", "rsa-1", "--state", "next"},
                  k_t0, {}, tokctl::test::test_key_pem("rsa2048"));
  require_ok(pem);
  json e = parse_json(pem);
  CHECK(e.at("kid") == "rsa-1");
  CHECK(e.at("alg") == "PS256");
  CHECK(e.at("state") == "next");
  CHECK(file_mode(s.dir + "/keys/rsa-1.jwk") == 0600);

  // Twice the same key, a public key, an RSA key without alg, a too-small RSA key: refused.
  CHECK(s.tk({"keys", "import", jwk, "--alg", "ES256", "--kid", "again"}).code == 4);
  CHECK(s.tk({"keys", "import", "-", "--alg", "ES256"}, k_t0, {}, tokctl::test::test_key_public_pem("p256b"))
            .code == 2);
  auto no_alg = s.tk({"keys", "import", "-"}, k_t0, {}, tokctl::test::test_key_pem("rsa2048b"));
  CHECK(no_alg.code == 2);
  CHECK_THAT(no_alg.err, Contains("--alg"));
  CHECK(s.tk({"keys", "import", "-", "--alg", "RS256"}, k_t0, {}, tokctl::test::test_key_json("rsa1024")).code !=
        0);
  CHECK(s.tk({"keys", "import", "-", "--alg", "ES256"}, k_t0, {}, "not a key").code == 3);
  CHECK(s.list().size() == 2);

  // An EC or Ed key implies its alg, as in sign and verify (PEM carries no alg at all).
  auto ec = s.tk({"-o", "json", "keys", "import", "-", "--kid", "p256b"}, k_t0, {}, tokctl::test::test_key_pem("p256b"));
  require_ok(ec);
  CHECK(parse_json(ec).at("alg") == "ES256");
  CHECK(parse_json(ec).at("state") == "next");  // ES256 already has an active key
  auto ed = s.tk({"-o", "json", "keys", "import", "-"}, k_t0, {}, tokctl::test::test_key_pem("ed25519"));
  require_ok(ed);
  CHECK(parse_json(ed).at("alg") == "EdDSA");
  CHECK(parse_json(ed).at("state") == "active");
}

TEST_CASE("keys check in text and JSON", "[keystore][cli]") {
  Store s;
  auto a = s.add("ES256");
  s.add("ES256");
  auto text = s.tk({"keys", "check"});
  require_ok(text);
  CHECK_THAT(text.out, Contains("consistent"));
  auto j = s.tk({"-o", "json", "keys", "check"});
  require_ok(j);
  json doc = parse_json(j);
  CHECK(doc.at("ok") == true);
  CHECK(doc.at("problems").empty());
  CHECK(doc.at("notes").empty());

  REQUIRE(::unlink((s.dir + "/keys/" + a + ".jwk").c_str()) == 0);
  auto bad = s.tk({"keys", "check"});
  CHECK(bad.code == 4);
  CHECK_THAT(bad.err, Contains("problem:"));
  CHECK_THAT(bad.err, Contains(a));
  CHECK_THAT(bad.err, Contains("missing"));
  auto badj = s.tk({"-o", "json", "keys", "check"});
  CHECK(badj.code == 4);
  json bd = parse_json(badj);
  CHECK(bd.at("ok") == false);
  CHECK(bd.at("problems").size() == 1);
}

TEST_CASE("keys check runs OpenSSL's key checks that everyday loads skip", "[keystore][cli]") {
  // Loads for signing and verifying trust the keystore's files once their thumbprint matches the
  // manifest (KeyCheck::trusted); a private part that does not belong to the public one keeps that
  // thumbprint, so only keys check (KeyCheck::full) can find it.
  Store s;
  auto a = s.add("ES256");
  auto b = s.add("ES256");
  const std::string path_a = s.dir + "/keys/" + a + ".jwk";
  json ka = json::parse(read_file(path_a));
  json kb = json::parse(read_file(s.dir + "/keys/" + b + ".jwk"));
  ka["d"] = kb["d"];
  write_file(path_a, ka.dump());
  REQUIRE(::chmod(path_a.c_str(), 0600) == 0);
  auto check = s.tk({"keys", "check"});
  CHECK(check.code == 4);
  CHECK_THAT(check.err, Contains(a));
  CHECK_THAT(check.err, Contains("do not match"));
}

TEST_CASE("keys check reports two active keys and a corrupted manifest", "[keystore][cli]") {
  Store s;
  s.add("ES256");
  s.add("ES256");
  json m = s.manifest();
  for (auto& k : m["keys"]) k["state"] = "active";
  write_file(s.dir + "/keystore.json", m.dump(2));
  auto two = s.tk({"keys", "check"});
  CHECK(two.code == 4);
  CHECK_THAT(two.err, Contains("2 active keys for ES256"));
  write_file(s.dir + "/keystore.json", "{\"format\": 1, \"keys\": [");
  auto torn = s.tk({"-o", "json", "keys", "check"});
  CHECK(torn.code == 4);
  CHECK(parse_json(torn).at("ok") == false);
  CHECK(s.tk({"keys", "list"}).code == 4);
}

// ---- permissions ---------------------------------------------------------------------------------

TEST_CASE("a keystore directory writable by others is refused with a chmod 700 hint", "[keystore][cli]") {
  Store s;
  auto a = s.add("ES256");
  for (unsigned mode : {0777u, 0770u}) {
    REQUIRE(::chmod(s.dir.c_str(), mode) == 0);
    for (std::vector<std::string> args :
         {std::vector<std::string>{"keys", "list"}, std::vector<std::string>{"keys", "add", "--alg", "ES256"},
          std::vector<std::string>{"keys", "check"}, std::vector<std::string>{"keys", "export", "--", a}}) {
      auto r = s.tk(args);
      INFO(describe(r));
      CHECK(r.code == 4);
      CHECK_THAT(r.err, Contains("chmod 700"));
    }
  }
  REQUIRE(::chmod(s.dir.c_str(), 0700) == 0);
  require_ok(s.tk({"keys", "check"}));
}

// Regression (was a bug): sign and verify replace the keystore's hint ("chmod 700 '<dir>'") with a generic "pass --key
// FILE ..." hint whenever Keystore::open fails (cli/sign.cpp run_sign, cli/verify.cpp), so the user
// is told the wrong fix for a keystore that is simply too open.
TEST_CASE("sign and verify through a keystore writable by others keep the chmod 700 hint",
          "[keystore][cli]") {
  Store s;
  s.add("ES256");
  std::string token = s.sign(k_t0);
  REQUIRE(::chmod(s.dir.c_str(), 0777) == 0);
  for (std::vector<std::string> args :
       {std::vector<std::string>{"sign", "--sub", "x"}, std::vector<std::string>{"verify", token}}) {
    auto r = s.tk(args);
    INFO(describe(r));
    CHECK(r.code == 4);
    CHECK_THAT(r.err, Contains("chmod 700"));
  }
  REQUIRE(::chmod(s.dir.c_str(), 0700) == 0);
}

TEST_CASE("a key file readable by others is refused with a chmod 600 hint", "[keystore][cli]") {
  Store s;
  auto a = s.add("ES256");
  REQUIRE(::chmod((s.dir + "/keys/" + a + ".jwk").c_str(), 0644) == 0);
  for (std::vector<std::string> args : {std::vector<std::string>{"keys", "export", "--", a},
                                        std::vector<std::string>{"keys", "check"},
                                        std::vector<std::string>{"sign", "--sub", "x"}}) {
    auto r = s.tk(args);
    INFO(describe(r));
    CHECK(r.code == 4);
    CHECK_THAT(r.err, Contains("chmod 600"));
  }
  // Public data still flows: the JWKS comes from the manifest.
  require_ok(s.tk({"keys", "jwks"}));
}

// ---- lifecycle -----------------------------------------------------------------------------------

TEST_CASE("lifecycle: rotation keeps old tokens verifiable until prune removes their key",
          "[keystore][cli]") {
  Store s;
  auto a = s.add("ES256");
  CHECK(s.kids_in_state("active") == std::vector<std::string>{a});
  auto b = s.add("ES256");
  CHECK(s.kids_in_state("next") == std::vector<std::string>{b});

  // The active key signs and names itself; the next key does not sign yet.
  std::string old_token = s.sign(k_t0);
  CHECK(jose_header(old_token).at("kid") == a);
  CHECK(jose_header(old_token).at("alg") == "ES256");
  auto v0 = s.verify(old_token, k_t0_5m);
  INFO(describe(v0));
  CHECK(v0.code == 0);
  CHECK(parse_json(v0).at("valid") == true);

  // Not before the next key has been known for --min-next-age (1h by default).
  auto early = s.tk({"keys", "rotate", "--alg", "ES256"}, k_t0_10m);
  CHECK(early.code == 4);
  CHECK_THAT(early.err, Contains(k_t0_1h));
  require_ok(s.tk({"keys", "rotate", "--alg", "ES256"}, k_t0_1h));
  CHECK(s.kids_in_state("active") == std::vector<std::string>{b});
  CHECK(s.kids_in_state("retired") == std::vector<std::string>{a});

  // The old token still verifies with the retired key, through the keystore and the JWKS.
  auto v1 = s.verify(old_token, k_t0_20m);
  INFO(describe(v1));
  CHECK(v1.code == 0);
  CHECK(s.verify_jwks(old_token, k_t0_20m).code == 0);

  // New tokens carry the new kid and verify too.
  std::string new_token = s.sign(k_t0_20m);
  CHECK(jose_header(new_token).at("kid") == b);
  CHECK(s.verify(new_token, k_t0_20m).code == 0);

  // A retired key no longer signs.
  auto retired_sign = s.tk({"sign", "--kid", a, "--sub", "x"}, k_t0_20m);
  CHECK(retired_sign.code == 4);
  CHECK_THAT(retired_sign.err, Contains("retired"));

  // Far in the future the retired key is pruned; back in time, the old token's kid is gone.
  auto p = s.tk({"-o", "json", "keys", "prune"}, "2027-01-01T00:00:00Z");
  require_ok(p);
  CHECK(parse_json(p).at("pruned") == json::array({a}));
  auto v2 = s.verify(old_token, k_t0_20m);
  INFO(describe(v2));
  CHECK(v2.code == 1);
  CHECK_THAT(v2.out + v2.err, Contains("kid_not_found"));
  CHECK(s.verify(new_token, k_t0_20m).code == 0);
  require_ok(s.tk({"keys", "check"}));
}

// Regression (was a bug): prune keeps a retired key only for max_lifetime + grace (grace defaults to 0s), but verify
// accepts tokens up to its leeway (default 60s) past exp. A token signed just before the rotation
// with the maximum lifetime is still valid when its key is pruned, breaking DESIGN.md's "pruned once
// no token it signed can be valid": the default grace should cover the verification leeway (or
// prune should add it).
TEST_CASE("prune keeps a retired key while a token it signed is still accepted within the leeway",
          "[keystore][cli]") {
  Store s;
  s.add("ES256");
  s.add("ES256");
  std::string token = s.sign(k_t0, {"--exp", "+24h"});
  require_ok(s.tk({"keys", "rotate", "--force"}, k_t0));
  const char* just_after_exp = "2026-01-02T00:00:30Z";  // exp + 30s: inside verify's default 60s leeway
  auto before = s.verify(token, just_after_exp);
  INFO(describe(before));
  REQUIRE(before.code == 0);
  require_ok(s.tk({"keys", "prune"}, just_after_exp));
  auto after = s.verify(token, just_after_exp);
  INFO(describe(after));
  CHECK(after.code == 0);
}

TEST_CASE("sign picks among algs with --alg and a specific key with --kid", "[keystore][cli]") {
  Store s;
  auto es = s.add("ES256");
  auto next = s.add("ES256");
  auto ed = s.add("EdDSA");
  auto several = s.tk({"sign", "--sub", "x"});
  CHECK(several.code != 0);
  CHECK_THAT(several.err, Contains("--alg"));
  std::string t_es = s.sign(k_t0, {"--alg", "ES256"});
  CHECK(jose_header(t_es).at("kid") == es);
  std::string t_ed = s.sign(k_t0, {"--alg", "EdDSA"});
  CHECK(jose_header(t_ed).at("kid") == ed);
  CHECK(jose_header(t_ed).at("alg") == "EdDSA");
  CHECK(s.verify(t_es).code == 0);
  CHECK(s.verify(t_ed).code == 0);
  auto unknown = s.tk({"sign", "--kid", "nope", "--sub", "x"});
  CHECK(unknown.code == 4);
  (void)next;
}

TEST_CASE("verify through the keystore pins the stored key's algorithm", "[keystore][cli]") {
  Store s;
  require_ok(s.tk({"keys", "import", "-", "--alg", "PS256", "--kid", "rsa"}, k_t0, {},
                  tokctl::test::test_key_json("rsa2048")));
  std::string token = s.sign(k_t0);
  CHECK(jose_header(token).at("alg") == "PS256");
  CHECK(s.verify(token).code == 0);
  // The same RSA key re-used with RS256 (a different alg than the keystore pins) is refused.
  std::string key = s.tmp.file("rsa.jwk");
  write_file(key, tokctl::test::test_key_json("rsa2048"));
  auto rs = tokctl::test::run({"--now", k_t0, "sign", "--key", key, "--alg", "RS256", "--kid", "rsa", "--sub",
                               "alice", "--exp", "+1h"},
                              {}, s.env);
  require_ok(rs);
  auto v = s.verify(trimmed(rs.out));
  INFO(describe(v));
  CHECK(v.code == 1);
}

TEST_CASE("an HMAC key in the keystore signs and verifies but is never published", "[keystore][cli]") {
  Store s;
  auto hs = s.add("HS256", {"--kid", "hmac-1"});
  std::string token = s.sign(k_t0);
  CHECK(jose_header(token).at("alg") == "HS256");
  CHECK(jose_header(token).at("kid") == hs);
  auto v = s.verify(token);
  INFO(describe(v));
  CHECK(v.code == 0);
  auto jw = s.tk({"keys", "jwks"});
  require_ok(jw);
  CHECK(parse_json(jw).at("keys").empty());
  auto show = s.tk({"-o", "json", "keys", "show", "--", hs});
  require_ok(show);
  CHECK_FALSE(parse_json(show).contains("jwk"));
  CHECK(s.tk({"keys", "export", "--public", "--", hs}).code == 2);
}

TEST_CASE("the keystore comes from TOKCTL_KEYSTORE, else XDG_DATA_HOME/tokctl", "[keystore][cli]") {
  Store s;
  std::string env_dir = s.tmp.file("from-env");
  EnvVars env = s.env;
  env.emplace_back("TOKCTL_KEYSTORE", env_dir);
  require_ok(tokctl::test::run({"--now", k_t0, "keys", "add", "--alg", "ES256"}, {}, env));
  CHECK(::access((env_dir + "/keystore.json").c_str(), F_OK) == 0);
  CHECK(file_mode(env_dir) == 0700);
  require_ok(tokctl::test::run({"--now", k_t0, "keys", "add", "--alg", "ES256"}, {}, s.env));
  CHECK(::access(s.tmp.file("xdg/tokctl/keystore.json").c_str(), F_OK) == 0);
  // --keystore beats the environment.
  auto flag = tokctl::test::run({"-o", "json", "--keystore", s.dir, "keys", "list"}, {}, env);
  CHECK(flag.code == 4);
}

// ---- keys at rest ---------------------------------------------------------------------------------

TEST_CASE("TOKCTL_PASSPHRASE encrypts keys at rest and is needed to use them", "[keystore][cli]") {
  Store s;
  EnvVars pw = {{"TOKCTL_PASSPHRASE", "correct horse battery staple"}};
  auto kid = s.add("ES256", {}, k_t0, pw);
  std::string file = s.dir + "/keys/" + kid + ".jwe";
  CHECK(files_in(s.dir + "/keys") == std::set<std::string>{kid + ".jwe"});
  CHECK(file_mode(file) == 0600);
  std::string jwe = trimmed(read_file(file));
  CHECK(std::count(jwe.begin(), jwe.end(), '.') == 4);
  CHECK(jose_header(jwe).at("alg") == "PBES2-HS512+A256KW");
  CHECK(jwe.find("\"d\"") == std::string::npos);

  auto list = s.tk({"-o", "json", "keys", "list"});
  require_ok(list);
  CHECK(parse_json(list).at("keys")[0].at("encrypted") == true);
  auto list_text = s.tk({"keys", "list"});
  require_ok(list_text);
  CHECK_THAT(list_text.out, Contains("ENC"));
  CHECK_THAT(list_text.out, Contains("yes"));

  auto no_pw = s.tk({"keys", "export", "--", kid});
  CHECK(no_pw.code == 4);
  CHECK_THAT(no_pw.err, Contains("hint:"));
  CHECK_THAT(no_pw.err, Contains("TOKCTL_PASSPHRASE"));
  auto wrong = s.tk({"keys", "export", "--", kid}, k_t0, {{"TOKCTL_PASSPHRASE", "Correct horse battery staple"}});
  CHECK(wrong.code == 4);
  auto ok = s.tk({"keys", "export", "--", kid}, k_t0, pw);
  require_ok(ok);
  CHECK(parse_json(ok).contains("d"));
  // Public data needs no passphrase.
  require_ok(s.tk({"keys", "export", "--public", "--", kid}));
  require_ok(s.tk({"keys", "jwks"}));

  // Adding an unencrypted key to the alg is refused; with the passphrase it is fine.
  auto plain = s.tk({"keys", "add", "--alg", "ES256"});
  CHECK(plain.code == 4);
  CHECK_THAT(plain.err, Contains("encrypted"));
  auto next = s.add("ES256", {}, k_t0, pw);

  // sign needs it too; verify does not (public keys come from the manifest).
  auto sign_no_pw = s.tk({"sign", "--sub", "x"});
  CHECK(sign_no_pw.code == 4);
  CHECK_THAT(sign_no_pw.err, Contains("passphrase"));
  std::string token = s.sign(k_t0, {}, pw);
  CHECK(jose_header(token).at("kid") == kid);
  CHECK(s.verify(token).code == 0);

  // rotate and check with the passphrase.
  auto rot_no_pw = s.tk({"keys", "rotate", "--force"});
  CHECK(rot_no_pw.code == 4);
  CHECK_THAT(rot_no_pw.err, Contains("passphrase"));
  require_ok(s.tk({"keys", "rotate", "--force"}, k_t0_10m, pw));
  require_ok(s.tk({"keys", "check"}, k_t0_10m, pw));
  for (const auto& k : s.list()) CHECK(k.at("encrypted") == true);
  (void)next;
}

TEST_CASE("the --passphrase-file flag encrypts keys at rest for add and import", "[keystore][cli]") {
  Store s;
  std::string pwfile = s.tmp.file("passphrase");
  write_file(pwfile, "from a file\n");
  auto kid = s.add("EdDSA", {}, k_t0);  // unencrypted alg, for contrast
  auto enc = s.tk({"--passphrase-file", pwfile, "-o", "json", "keys", "add", "--alg", "ES384"});
  require_ok(enc);
  std::string ekid = parse_json(enc).at("kid");
  CHECK(parse_json(enc).at("encrypted") == true);
  CHECK(::access((s.dir + "/keys/" + ekid + ".jwe").c_str(), F_OK) == 0);

  auto imp = s.tk({"--passphrase-file", pwfile, "-o", "json", "keys", "import", "-", "--alg", "HS256"}, k_t0,
                  {}, tokctl::test::test_key_json("hs256"));
  require_ok(imp);
  std::string hkid = parse_json(imp).at("kid");
  CHECK(parse_json(imp).at("encrypted") == true);
  std::string hfile = read_file(s.dir + "/keys/" + hkid + ".jwe");
  CHECK(jose_header(trimmed(hfile)).at("alg") == "PBES2-HS512+A256KW");
  CHECK(hfile.find(tokctl::b64url_encode(tokctl::test::test_key("hs256").secret())) == std::string::npos);

  CHECK(s.tk({"keys", "export", "--", ekid}).code == 4);
  auto ok = s.tk({"--passphrase-file", pwfile, "keys", "export", "--", ekid});
  require_ok(ok);
  CHECK(parse_json(ok).contains("d"));
  // The trailing newline of the file is not part of the passphrase: the environment form agrees.
  require_ok(s.tk({"keys", "export", "--", ekid}, k_t0, {{"TOKCTL_PASSPHRASE", "from a file"}}));

  auto text = s.tk({"keys", "list"});
  require_ok(text);
  CHECK_THAT(text.out, Contains("yes"));
  CHECK_THAT(text.out, Contains("no"));

  std::string empty = s.tmp.file("empty");
  write_file(empty, "");
  CHECK(s.tk({"--passphrase-file", empty, "keys", "add", "--alg", "ES512"}).code == 2);
  CHECK(s.tk({"--passphrase-file", s.tmp.file("missing"), "keys", "add", "--alg", "ES512"}).code != 0);
  (void)kid;
}

TEST_CASE("keys generate --out with a passphrase writes a PBES2 JWE file", "[keystore][cli]") {
  Store s;
  std::string out = s.tmp.file("signer.jwe");
  auto r = s.tk({"keys", "generate", "--alg", "ES256", "--out", out}, k_t0,
                {{"TOKCTL_PASSPHRASE", "correct horse battery staple"}});
  require_ok(r);
  std::string text = trimmed(read_file(out));
  CHECK(file_mode(out) == 0600);
  CHECK(std::count(text.begin(), text.end(), '.') == 4);
  CHECK(text.find("\"d\"") == std::string::npos);
  REQUIRE(text.find('.') != std::string::npos);
  CHECK(jose_header(text).at("alg") == "PBES2-HS512+A256KW");
}

// ---- concurrency -----------------------------------------------------------------------------------

namespace {

// Runs `rounds` invocations of tokctl `args` one after another in each of `lanes` lanes, the lanes
// running concurrently. Returns the exit codes per lane; stderr of each lane goes to `log_prefix`N.
std::vector<std::vector<int>> run_lanes(const std::vector<std::vector<std::string>>& lane_args, int rounds,
                                        const std::string& log_prefix) {
  const int lanes = static_cast<int>(lane_args.size());
  std::vector<std::string> env_strings;
  for (char** e = environ; e && *e; ++e) {
    std::string_view kv(*e);
    if (kv.rfind("TOKCTL_", 0) == 0 || kv.rfind("NO_COLOR=", 0) == 0) continue;
    env_strings.emplace_back(kv);
  }
  env_strings.emplace_back("NO_COLOR=1");
  std::vector<char*> envp;
  for (auto& s : env_strings) envp.push_back(s.data());
  envp.push_back(nullptr);
  std::vector<std::vector<std::string>> argv_strings;
  std::vector<std::vector<char*>> argv(lanes);
  for (const auto& args : lane_args) {
    argv_strings.push_back({TOKCTL_BINARY});
    argv_strings.back().insert(argv_strings.back().end(), args.begin(), args.end());
  }
  for (int lane = 0; lane < lanes; ++lane) {
    for (auto& s : argv_strings[lane]) argv[lane].push_back(s.data());
    argv[lane].push_back(nullptr);
  }

  std::vector<std::vector<int>> codes(lanes);
  std::map<pid_t, int> running;
  auto spawn = [&](int lane) {
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
    std::string log = log_prefix + std::to_string(lane);
    posix_spawn_file_actions_addopen(&fa, 2, log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0600);
    pid_t pid = -1;
    int rc = posix_spawn(&pid, TOKCTL_BINARY, &fa, nullptr, argv[lane].data(), envp.data());
    posix_spawn_file_actions_destroy(&fa);
    REQUIRE(rc == 0);
    running[pid] = lane;
  };
  for (int lane = 0; lane < lanes; ++lane) spawn(lane);
  while (!running.empty()) {
    int status = 0;
    pid_t pid = ::waitpid(-1, &status, 0);
    if (pid < 0 && errno == EINTR) continue;
    REQUIRE(pid > 0);
    auto it = running.find(pid);
    if (it == running.end()) continue;
    int lane = it->second;
    running.erase(it);
    codes[lane].push_back(WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status));
    if (static_cast<int>(codes[lane].size()) < rounds) spawn(lane);
  }
  return codes;
}

}  // namespace

TEST_CASE("two processes rotating one keystore 50 times each leave it consistent",
          "[keystore][concurrency]") {
  Store s;
  auto a = s.add("ES256");
  auto b = s.add("ES256");
  std::string token = s.sign(k_t0);
  auto started = std::chrono::steady_clock::now();
  const std::vector<std::string> rotate = {"--keystore", s.dir, "--now",  k_t0_1m, "-q",
                                           "keys",       "rotate", "--alg", "ES256", "--force"};
  auto codes = run_lanes({rotate, rotate}, 50, s.tmp.file("lane"));
  auto seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  WARN("100 concurrent rotations took " << seconds << " s");
  for (int lane = 0; lane < 2; ++lane) {
    INFO("lane " << lane << " stderr:\n" << read_file(s.tmp.file("lane" + std::to_string(lane))));
    REQUIRE(codes[lane].size() == 50);
    CHECK(std::count(codes[lane].begin(), codes[lane].end(), 0) == 50);
  }

  // The manifest is valid JSON the keystore reads, with exactly one active and one next key.
  REQUIRE_NOTHROW(s.manifest());
  json keys = s.list();
  CHECK(keys.size() == 102);
  CHECK(s.kids_in_state("active").size() == 1);
  CHECK(s.kids_in_state("next").size() == 1);
  auto retired = s.kids_in_state("retired");
  CHECK(retired.size() == 100);
  CHECK(std::count(retired.begin(), retired.end(), a) == 1);
  CHECK(std::count(retired.begin(), retired.end(), b) == 1);
  std::set<std::string> unique;
  for (const auto& k : keys) unique.insert(k.at("kid"));
  CHECK(unique.size() == keys.size());

  auto check = s.tk({"-o", "json", "keys", "check"});
  INFO(describe(check));
  CHECK(check.code == 0);
  CHECK(parse_json(check).at("notes").empty());
  // keys/ holds exactly what the manifest names: no orphans, none missing; no temp files around.
  CHECK(files_in(s.dir + "/keys") == s.named_files());
  for (const auto& f : files_in(s.dir)) CHECK((f == "keys" || f == "keystore.json" || f == ".lock"));
  // The token signed before all this still verifies with its (now retired) key.
  CHECK(s.verify(token, k_t0_5m).code == 0);
}

// ---- crash safety ----------------------------------------------------------------------------------

TEST_CASE("SIGKILL at any fault point of add, rotate or prune leaves a working keystore",
          "[keystore][crash]") {
  struct Case {
    const char* op;
    const char* point;
  };
  const Case cases[] = {
      {"add", "after_key_write"},    {"add", "before_manifest_write"},    {"add", "after_manifest_write"},
      {"rotate", "after_key_write"}, {"rotate", "before_manifest_write"}, {"rotate", "after_manifest_write"},
      {"prune", "before_manifest_write"}, {"prune", "after_manifest_write"},
  };
  for (const auto& c : cases) {
    DYNAMIC_SECTION(c.op << " killed at " << c.point) {
      Store s;
      auto a = s.add("ES256");
      s.add("ES256");
      std::vector<std::string> tokens = {s.sign(k_t0)};
      std::string crash_now = k_t0_1m;
      std::vector<std::string> op_args;
      if (std::string(c.op) == "add") {
        op_args = {"keys", "add", "--alg", "ES256"};
      } else if (std::string(c.op) == "rotate") {
        op_args = {"keys", "rotate", "--alg", "ES256", "--force"};
      } else {
        // Something to prune: a retired at t0+10m; the token of the new active key must survive.
        require_ok(s.tk({"keys", "rotate", "--force"}, k_t0_10m));
        tokens = {s.sign(k_t0_10m)};
        op_args = {"keys", "prune"};
        crash_now = k_t0_25h;
      }
      std::string before = read_file(s.dir + "/keystore.json");

      auto crash = s.crash(op_args, crash_now, c.point);
      INFO(describe(crash));
      REQUIRE(crash.code == k_killed);

      // The manifest is the old or the new one, never torn, and the keystore is consistent.
      std::string after = read_file(s.dir + "/keystore.json");
      REQUIRE_NOTHROW(json::parse(after));
      if (std::string(c.point) == "after_manifest_write") CHECK(after != before);
      else CHECK(after == before);
      // A key file written before the manifest named it is a crash leftover: kept, and reported by
      // keys check as a problem (never "consistent") with the way back (keys import).
      const bool leftover = std::string(c.op) != "prune" && std::string(c.point) != "after_manifest_write";
      auto check = s.tk({"-o", "json", "keys", "check"});
      INFO(describe(check));
      CHECK(check.code == (leftover ? 4 : 0));
      CHECK(parse_json(check).at("ok") == !leftover);
      CHECK(parse_json(check).at("unknown_files").size() == (leftover ? 1u : 0u));
      CHECK(s.kids_in_state("active").size() == 1);
      // Every file the manifest names is there.
      auto files = files_in(s.dir + "/keys");
      for (const auto& f : s.named_files()) CHECK(files.count(f) == 1);
      if (std::string(c.op) == "prune" && std::string(c.point) == "after_manifest_write") {
        const json m = s.manifest();  // a named copy: the loop must not outlive a temporary
        for (const auto& k : m.at("keys")) CHECK(k.at("kid") != a);
        CHECK(files.count(a + ".jwk") == 1);  // deleted only after the manifest; killed before
        CHECK_FALSE(parse_json(check).at("notes").empty());  // pending deletion, finished by the next write
      }
      if (leftover) {
        std::string unknown = parse_json(check).at("unknown_files")[0];
        auto text = s.tk({"keys", "check"});
        CHECK(text.code == 4);
        CHECK(text.out.find("consistent") == std::string::npos);
        CHECK_THAT(text.err, Contains(unknown));
        CHECK_THAT(text.err, Contains("keys import"));
        // A write in between keeps it.
        require_ok(s.tk({"keys", "add", "--alg", "ES256", "--kid", "written-after-crash"}, k_t0_1m));
        CHECK(files_in(s.dir + "/keys").count(unknown.substr(5)) == 1);
        // The documented recovery: import the file back.
        auto imp = s.tk({"keys", "import", s.dir + "/" + unknown, "--state", "next"}, k_t0_1m);
        INFO(describe(imp));
        CHECK(imp.code == 0);
        auto fixed = s.tk({"-o", "json", "keys", "check"});
        INFO(describe(fixed));
        CHECK(fixed.code == 0);
      }

      // Tokens signed before the crash still verify, through the keystore and the JWKS.
      for (const auto& t : tokens) {
        auto v = s.verify(t, k_t0_20m);
        INFO(describe(v));
        CHECK(v.code == 0);
        auto vj = s.verify_jwks(t, k_t0_20m);
        INFO(describe(vj));
        CHECK(vj.code == 0);
      }

      // The keystore keeps working: the next write succeeds (and finishes an interrupted prune).
      auto next = s.tk({"keys", "rotate", "--alg", "ES256", "--force"}, k_t0_2m);
      INFO(describe(next));
      CHECK(next.code == 0);
      auto fresh = s.tk({"keys", "add", "--alg", "ES256", "--kid", "after-crash"}, k_t0_2m);
      INFO(describe(fresh));
      CHECK(fresh.code == 0);
      CHECK(files_in(s.dir + "/keys") == s.named_files());
      auto clean = s.tk({"-o", "json", "keys", "check"});
      CHECK(clean.code == 0);
      CHECK(parse_json(clean).at("notes").empty());
      for (const auto& f : files_in(s.dir)) CHECK((f == "keys" || f == "keystore.json" || f == ".lock"));
      std::string token_after = s.sign(k_t0_2m);
      CHECK(s.verify(token_after, k_t0_5m).code == 0);
      for (const auto& t : tokens) CHECK(s.verify(t, k_t0_20m).code == 0);
    }
  }
}

TEST_CASE("the shipped tokctl carries no crash hook: TOKCTL_FAULT changes nothing", "[keystore][crash]") {
  // tokctl-faulty (the same CLI objects) dies at every point; the shipped binary ignores them all.
  for (const char* point : {"after_key_write", "before_manifest_write", "after_manifest_write"}) {
    INFO(point);
    Store s;
    s.add("ES256");
    auto crash = s.crash({"keys", "add", "--alg", "ES256"}, k_t0_1m, point);
    CHECK(crash.code == k_killed);
    auto shipped = s.tk({"keys", "add", "--alg", "ES256"}, k_t0_1m, {{"TOKCTL_FAULT", point}});
    INFO(describe(shipped));
    CHECK(shipped.code == 0);
  }
}

TEST_CASE("SIGKILL during an encrypted add leaves no readable secret behind", "[keystore][crash]") {
  Store s;
  EnvVars pw = {{"TOKCTL_PASSPHRASE", "pw for crash test"}};
  s.add("ES256", {}, k_t0, pw);
  auto crash = s.crash({"keys", "add", "--alg", "ES256"}, k_t0_1m, "after_key_write", pw);
  REQUIRE(crash.code == k_killed);
  for (const auto& f : files_in(s.dir + "/keys")) {
    INFO(f);
    CHECK(f.size() > 4);
    CHECK(f.substr(f.size() - 4) == ".jwe");
    CHECK(file_mode(s.dir + "/keys/" + f) == 0600);
  }
  // The encrypted leftover is reported, and imported back with the passphrase.
  auto check = s.tk({"-o", "json", "keys", "check"}, k_t0_1m, pw);
  CHECK(check.code == 4);
  REQUIRE(parse_json(check).at("unknown_files").size() == 1);
  std::string unknown = parse_json(check).at("unknown_files")[0];
  CHECK(s.tk({"keys", "import", s.dir + "/" + unknown}, k_t0_1m).code == 4);  // needs the passphrase
  require_ok(s.tk({"keys", "import", s.dir + "/" + unknown}, k_t0_1m, pw));
  require_ok(s.tk({"keys", "check"}, k_t0_1m, pw));
}

TEST_CASE("readers see a whole manifest while another process rotates", "[keystore][concurrency]") {
  Store s;
  s.add("ES256");
  s.add("ES256");
  std::string token = s.sign(k_t0);
  auto codes = run_lanes({{"--keystore", s.dir, "--now", k_t0_1m, "-q", "keys", "rotate", "--force"},
                          {"--keystore", s.dir, "--now", k_t0_5m, "-o", "json", "verify", token},
                          {"--keystore", s.dir, "--now", k_t0_1m, "-o", "json", "keys", "check"}},
                         40, s.tmp.file("lane"));
  for (int lane = 0; lane < 3; ++lane) {
    INFO("lane " << lane << " stderr:\n" << read_file(s.tmp.file("lane" + std::to_string(lane))));
    CHECK(std::count(codes[lane].begin(), codes[lane].end(), 0) == 40);
  }
  CHECK(s.kids_in_state("retired").size() == 40);
  CHECK(files_in(s.dir + "/keys") == s.named_files());
}

TEST_CASE("two processes adding keys of one alg at once lose none and make one active",
          "[keystore][concurrency]") {
  Store s;
  const std::vector<std::string> add = {"--keystore", s.dir, "--now", k_t0, "-q", "keys", "add", "--alg", "ES256"};
  auto codes = run_lanes({add, add}, 25, s.tmp.file("lane"));
  for (int lane = 0; lane < 2; ++lane) {
    INFO("lane " << lane << " stderr:\n" << read_file(s.tmp.file("lane" + std::to_string(lane))));
    CHECK(std::count(codes[lane].begin(), codes[lane].end(), 0) == 25);
  }
  CHECK(s.list().size() == 50);
  CHECK(s.kids_in_state("active").size() == 1);
  CHECK(s.kids_in_state("next").size() == 49);
  CHECK(files_in(s.dir + "/keys") == s.named_files());
  require_ok(s.tk({"keys", "check"}));
}

// base64url kids, thumbprints and tokens start with '-' one time in 64; CLI11 alone would read them
// as options ("kid is required").
TEST_CASE("kids and tokens that start with a dash work as arguments", "[keystore][cli]") {
  Store s;
  // show and export (the kid before or after the options) name the key with that very kid.
  auto named = [&](const std::string& kid) {
    CAPTURE(kid);
    for (std::vector<std::string> args : {std::vector<std::string>{"-o", "json", "keys", "show", kid},
                                          std::vector<std::string>{"keys", "export", kid, "--public"},
                                          std::vector<std::string>{"-o", "json", "keys", "export", "--public", kid}}) {
      auto r = s.tk(args);
      require_ok(r);
      CHECK(parse_json(r).at("kid") == kid);
    }
  };
  auto a = s.add("ES256", {"--kid", "-dash-kid-0001"});
  CHECK(a == "-dash-kid-0001");
  named(a);
  auto signed_with = s.tk({"sign", "--sub", "alice", "--kid", a});
  require_ok(signed_with);
  auto revoke = s.tk({"revoke", "-not-a-real-token-0123456789"});
  require_ok(revoke);  // unknown tokens are not an error (RFC 7009)
  CHECK(s.tk({"keys", "show", "--unknown-flag"}).code == 2);  // real typos still fail
  // A kid that starts like a global short option (-o, -v, -q, -h) is still the kid, before or
  // after other options, with or without "--": not --output Q3..., not -v then "-Q3...", not help.
  auto o = s.add("ES256", {"--kid", "-oQ3-dash-kid-02"});
  CHECK(o == "-oQ3-dash-kid-02");
  auto show_o = s.tk({"-o", "json", "keys", "show", "--", o});
  require_ok(show_o);
  CHECK(parse_json(show_o).at("kid") == o);
  // "-Q3-dash-kid-02" also exists: a kid read as -v/-q plus the rest would silently name it.
  auto decoy = s.add("ES256", {"--kid=-Q3-dash-kid-02"});
  CHECK(decoy == "-Q3-dash-kid-02");
  for (std::string prefix : {"-o", "-v", "-q", "-h", "-qv"}) {
    std::string kid = prefix + "Q3-dash-kid-02";
    if (prefix != "-o") REQUIRE(s.add("ES256", {"--kid", kid}) == kid);
    named(kid);
  }
  // Real short clusters still work, and the hint names the whole command.
  auto cluster = s.tk({"-qojson", "keys", "show", a});
  require_ok(cluster);
  CHECK(parse_json(cluster).at("kid") == a);
  auto two = s.tk({"keys", "show", a, "-Q3-dash-kid-02"});
  CHECK(two.code == 2);
  CHECK_THAT(two.err, Contains("tokctl keys show --help"));
  CHECK(s.tk({"keys", "list", "--bogus"}).code == 2);
  CHECK(s.tk({"keys", "list", "stray-argument"}).code == 2);
  CHECK(s.tk({"isue"}).code == 2);
}

// ---- the keystore never deletes what it does not know (issue 7.1) ----------------------------------

namespace {

// Every command that reads the keystore, with a kid for show/export.
std::vector<std::vector<std::string>> read_commands(const std::string& kid, const std::string& token) {
  return {{"keys", "list"},           {"keys", "jwks"},        {"keys", "show", "--", kid},
          {"keys", "check"},          {"keys", "export", "--public", "--", kid},
          {"sign", "--sub", "x"},     {"verify", token},       {"-o", "json", "keys", "list"}};
}

// File name -> content of every file under keys/.
std::map<std::string, std::string> key_file_contents(const Store& s) {
  std::map<std::string, std::string> out;
  for (const auto& f : files_in(s.dir + "/keys")) out[f] = read_file(s.dir + "/keys/" + f);
  return out;
}

}  // namespace

TEST_CASE("a missing or odd keystore.json next to key files is exit 4 with a hint and deletes nothing",
          "[keystore][cli]") {
  Store s;
  auto a = s.add("ES256");
  s.add("ES256");
  std::string token = s.sign(k_t0);
  auto keys_before = key_file_contents(s);
  std::string manifest = s.dir + "/keystore.json";
  REQUIRE(::unlink(manifest.c_str()) == 0);
  std::string what;
  SECTION("missing") { what = "missing"; }
  SECTION("dangling symlink") {
    REQUIRE(::symlink((s.dir + "/old-keystore.json").c_str(), manifest.c_str()) == 0);
    what = "symbolic link";
  }
  SECTION("symlink loop") {
    REQUIRE(::symlink(manifest.c_str(), manifest.c_str()) == 0);
    what = "loop";
  }
  SECTION("directory") {
    REQUIRE(::mkdir(manifest.c_str(), 0700) == 0);
    what = "directory";
  }
  SECTION("FIFO") {
    REQUIRE(::mkfifo(manifest.c_str(), 0600) == 0);
    what = "FIFO";
  }
  auto cmds = read_commands(a, token);
  cmds.push_back({"keys", "add", "--alg", "ES256"});
  cmds.push_back({"keys", "rotate", "--force"});
  cmds.push_back({"keys", "prune"});
  cmds.push_back({"keys", "retire", "--", a});
  for (const auto& args : cmds) {
    auto r = s.tk(args, "2030-01-01T00:00:00Z");
    INFO(describe(r));
    CHECK(r.code == 4);
    CHECK_THAT(r.err, Contains(what));
    CHECK((r.err.find("hint:") != std::string::npos || r.err.find("fix:") != std::string::npos));
    CHECK(r.out.find("consistent") == std::string::npos);
  }
  CHECK(key_file_contents(s) == keys_before);
}

TEST_CASE("a --keystore naming a file or a directory without keystore.json is exit 4 for every read command",
          "[keystore][cli]") {
  Store s;
  auto a = s.add("ES256");
  std::string token = s.sign(k_t0);
  for (const std::string kind : {"file", "empty directory"}) {
    std::string path = s.tmp.file(kind == "file" ? "a-file" : "empty-dir");
    if (kind == "file") write_file(path, "{\"format\": 1, \"keys\": []}\n");
    else REQUIRE(::mkdir(path.c_str(), 0700) == 0);
    for (const auto& args : read_commands(a, token)) {
      std::vector<std::string> full = {"--keystore", path, "--now", k_t0};
      full.insert(full.end(), args.begin(), args.end());
      auto r = tokctl::test::run(full, {}, s.env);
      INFO(kind << ": " << describe(r));
      CHECK(r.code == 4);
      CHECK_THAT(r.err, Contains(kind == "file" ? "not a directory" : "no keystore.json"));
    }
    if (kind != "file") CHECK(files_in(path).empty());  // readers never create anything
  }
}

TEST_CASE("keys jwks --out refuses to publish an empty set", "[keystore][cli]") {
  Store s;
  s.add("HS256");  // a secret: never published
  std::string out = s.tmp.file("jwks.json");
  auto r = s.tk({"keys", "jwks", "--out", out});
  CHECK(r.code == 4);
  CHECK_THAT(r.err, Contains("empty"));
  CHECK(::access(out.c_str(), F_OK) != 0);
  auto forced = s.tk({"keys", "jwks", "--out", out, "--force"});
  CHECK(forced.code == 4);
  CHECK(::access(out.c_str(), F_OK) != 0);
}

TEST_CASE("keys generate --out never replaces an existing file without --force", "[keystore][cli]") {
  Store s;
  std::string out = s.tmp.file("signer.jwk");
  write_file(out, "precious");
  auto r = s.tk({"keys", "generate", "--alg", "ES256", "--out", out});
  CHECK(r.code == 2);
  CHECK_THAT(r.err, Contains("--force"));
  CHECK(read_file(out) == "precious");
  require_ok(s.tk({"keys", "generate", "--alg", "ES256", "--out", out, "--force"}));
  CHECK(json::parse(read_file(out)).contains("d"));
  CHECK(file_mode(out) == 0600);
  std::string fresh = s.tmp.file("fresh.jwk");
  require_ok(s.tk({"keys", "generate", "--alg", "EdDSA", "--out", fresh}));
  CHECK(file_mode(fresh) == 0600);
}

TEST_CASE("a manifest restored from an older backup loses no key file, and keys check says how to recover",
          "[keystore][cli]") {
  Store s;
  s.add("ES256");
  s.add("ES256");
  std::string backup = read_file(s.dir + "/keystore.json");
  require_ok(s.tk({"keys", "rotate", "--force"}, k_t0_10m));
  auto newer = s.add("EdDSA", {}, k_t0_10m);
  auto keys_before = key_file_contents(s);
  write_file(s.dir + "/keystore.json", backup);
  REQUIRE(::chmod((s.dir + "/keystore.json").c_str(), 0600) == 0);
  // Every writer runs; none deletes the keys the old manifest does not know, and they say so.
  auto add = s.tk({"keys", "add", "--alg", "ES384"}, k_t0_20m);
  require_ok(add);
  CHECK_THAT(add.err, Contains("keys check"));
  require_ok(s.tk({"keys", "rotate", "--force", "--alg", "ES256"}, k_t0_20m));
  require_ok(s.tk({"keys", "prune"}, k_t0_20m));
  auto now_files = key_file_contents(s);
  for (const auto& [name, content] : keys_before) {
    INFO(name);
    REQUIRE(now_files.count(name) == 1);
    CHECK(now_files[name] == content);
  }
  auto check = s.tk({"-o", "json", "keys", "check"});
  CHECK(check.code == 4);
  json doc = parse_json(check);
  CHECK(doc.at("ok") == false);
  auto unknown = doc.at("unknown_files").get<std::vector<std::string>>();
  CHECK(unknown.size() == 2);  // the key the rotation added, and the EdDSA key
  CHECK(std::count(unknown.begin(), unknown.end(), "keys/" + newer + ".jwk") == 1);
  // The ES256 key goes back as next; the EdDSA key is its alg's only one, so it is active again.
  for (const auto& f : unknown) {
    std::vector<std::string> args = {"keys", "import", s.dir + "/" + f};
    if (f.find(newer) == std::string::npos) args.insert(args.end(), {"--state", "next"});
    require_ok(s.tk(args));
  }
  auto fixed = s.tk({"keys", "check"});
  INFO(describe(fixed));
  CHECK(fixed.code == 0);
  CHECK_THAT(fixed.out, Contains("consistent"));
}

TEST_CASE("a manifest with wrong JSON types is exit 4, never a crash", "[keystore][cli]") {
  Store s;
  s.add("ES256");
  json good = s.manifest();
  for (const auto& bad : {json{{"format", "1"}, {"keys", good["keys"]}},
                          json{{"format", 1}, {"keys", "none"}},
                          json{{"format", 1}, {"keys", json::array({42})}},
                          json{{"format", 1}, {"keys", json::array({{{"kid", 1}}})}},
                          json{{"format", json::array()}, {"keys", json::array()}}}) {
    INFO(bad.dump());
    write_file(s.dir + "/keystore.json", bad.dump());
    for (std::vector<std::string> args : {std::vector<std::string>{"keys", "list"},
                                          std::vector<std::string>{"keys", "check"},
                                          std::vector<std::string>{"keys", "jwks"}}) {
      auto r = s.tk(args);
      INFO(describe(r));
      CHECK(r.code == 4);
      CHECK(r.err.find("terminate") == std::string::npos);
      CHECK(r.err.find("internal error") == std::string::npos);
    }
  }
}

// ---- owners (issue 7.6) ------------------------------------------------------------------------------

TEST_CASE("a keystore, manifest or key file owned by another user is refused like ssh does", "[keystore][cli]") {
  if (::geteuid() != 0) {
    WARN("skipped: needs root to chown files to another user");
    return;
  }
  Store s;
  auto a = s.add("ES256");
  std::string key = s.dir + "/keys/" + a + ".jwk";
  for (const std::string& path : {s.dir, s.dir + "/keys", s.dir + "/keystore.json", key}) {
    INFO(path);
    REQUIRE(::chown(path.c_str(), 12345, static_cast<gid_t>(-1)) == 0);
    auto r = s.tk(path == key ? std::vector<std::string>{"sign", "--sub", "x"}
                              : std::vector<std::string>{"keys", "list"});
    INFO(describe(r));
    CHECK(r.code == 4);
    CHECK_THAT(r.err, Contains("owned by uid 12345"));
    CHECK_THAT(r.err, Contains("chown"));
    auto check = s.tk({"keys", "check"});
    CHECK(check.code == 4);
    REQUIRE(::chown(path.c_str(), 0, static_cast<gid_t>(-1)) == 0);
    require_ok(s.tk({"keys", "check"}));
  }
}

// ---- rotation cannot cause an outage (issue 7.7) ---------------------------------------------------

TEST_CASE("keys rotate waits --min-next-age after the next key's first publication and says when",
          "[keystore][cli]") {
  Store s;
  s.add("ES256");
  auto b = s.add("ES256");
  std::string pub = s.tmp.file("jwks.json");
  require_ok(s.tk({"keys", "jwks", "--out", pub}, k_t0_2h));
  json listed = s.list();
  CHECK(listed[1].at("published") == k_t0_2h);
  std::string before = read_file(s.dir + "/keystore.json");
  auto early = s.tk({"keys", "rotate"}, "2026-01-01T02:30:00Z");
  INFO(describe(early));
  CHECK(early.code == 4);
  CHECK_THAT(early.err, Contains(b));
  CHECK_THAT(early.err, Contains("2026-01-01T03:00:00Z"));
  CHECK_THAT(early.err, Contains("--force"));
  CHECK(read_file(s.dir + "/keystore.json") == before);
  require_ok(s.tk({"keys", "rotate", "--min-next-age", "30m"}, "2026-01-01T02:30:00Z"));
  // The fresh next key has not been published: refused however late, until keys jwks outputs it.
  auto unpublished = s.tk({"keys", "rotate"}, "2026-01-05T00:00:00Z");
  CHECK(unpublished.code == 4);
  CHECK_THAT(unpublished.err, Contains("never been in a published JWKS"));
  require_ok(s.tk({"keys", "jwks"}, "2026-01-05T00:00:00Z"));
  require_ok(s.tk({"keys", "rotate"}, "2026-01-05T01:00:00Z"));
  CHECK(s.tk({"keys", "rotate", "--min-next-age", "soon"}).code == 2);
}

TEST_CASE("concurrent cron runs of keys rotate --if-older-than rotate once per interval", "[keystore][concurrency]") {
  Store s;
  s.add("ES256");
  s.add("ES256");
  const char* now = "2026-01-03T00:00:00Z";
  const std::vector<std::string> cron = {"--keystore", s.dir, "--now", now, "-q", "keys", "rotate",
                                         "--if-older-than", "1d"};
  auto codes = run_lanes({cron, cron}, 5, s.tmp.file("lane"));
  for (int lane = 0; lane < 2; ++lane) {
    INFO("lane " << lane << " stderr:\n" << read_file(s.tmp.file("lane" + std::to_string(lane))));
    CHECK(std::count(codes[lane].begin(), codes[lane].end(), 0) == 5);
  }
  CHECK(s.kids_in_state("retired").size() == 1);
  CHECK(s.kids_in_state("active").size() == 1);
  CHECK(s.list().size() == 3);
  auto again = s.tk({"keys", "rotate", "--if-older-than", "1d"}, now);
  require_ok(again);
  CHECK_THAT(again.out, Contains("not rotated"));
  CHECK_THAT(again.out, Contains("2026-01-04T00:00:00Z"));
  auto j = s.tk({"-o", "json", "keys", "rotate", "--if-older-than", "1d"}, now);
  require_ok(j);
  CHECK(parse_json(j).at("rotated").empty());
  CHECK(parse_json(j).at("skipped").size() == 1);
}

// ---- output (issue 7.19) -------------------------------------------------------------------------------

TEST_CASE("keys list -q prints kids only, keys show no null, and the table fits 100 columns", "[keystore][cli]") {
  Store s;
  auto a = s.add("ES256");
  auto b = s.add("ECDH-ES+A256KW");  // the longest alg name
  auto c = s.add("ES256");
  auto q = s.tk({"-q", "keys", "list"});
  require_ok(q);
  CHECK(q.out == a + "\n" + b + "\n" + c + "\n");
  auto table = s.tk({"keys", "list"});
  require_ok(table);
  std::size_t start = 0;
  int lines = 0;
  while (start < table.out.size()) {
    auto end = table.out.find('\n', start);
    std::string line = table.out.substr(start, end - start);
    INFO(line);
    CHECK(line.size() <= 100);
    ++lines;
    start = end + 1;
  }
  CHECK(lines == 4);
  auto show = s.tk({"keys", "show", "--", c});
  require_ok(show);
  CHECK(show.out.find("null") == std::string::npos);
  CHECK_THAT(show.out, Contains("activated  -"));
}

// ---- manifest integrity, the pairwise secret, a symlinked manifest (audit A-D) -------------------

namespace {

// The audit's setup: two ES256 keys (the first active, the second next).
struct AuditStore : Store {
  std::string a, b;
  AuditStore() {
    a = add("ES256");
    b = add("ES256");
  }
  std::size_t index_of(const json& m, const std::string& kid) const {
    for (std::size_t i = 0; i < m["keys"].size(); ++i)
      if (m["keys"][i]["kid"] == kid) return i;
    FAIL("no entry " << kid);
    return 0;
  }
  void write_manifest(const json& m) const { write_file(dir + "/keystore.json", m.dump(2)); }
  std::string key_path(const std::string& kid) const { return dir + "/keys/" + kid + ".jwk"; }
};

void check_damage(const RunResult& r, const std::string& needle) {
  INFO(describe(r));
  CHECK(r.code == 4);
  CHECK_THAT(r.err, Contains(needle));
  CHECK_THAT(r.err, Contains("hint:") || Contains("fix:"));
}

}  // namespace

TEST_CASE("keys show, jwks and list never print a private member planted in the manifest's public jwk",
          "[keystore][cli][integrity]") {
  AuditStore s;
  json file = json::parse(read_file(s.key_path(s.a)));
  const std::string d = file.at("d");
  json m = s.manifest();
  m["keys"][s.index_of(m, s.a)]["jwk"]["d"] = d;
  s.write_manifest(m);
  for (const auto& args : std::vector<std::vector<std::string>>{{"keys", "show", "--", s.a},
                                                               {"-o", "json", "keys", "show", "--", s.a},
                                                               {"keys", "show", "--", s.b},
                                                               {"keys", "jwks"},
                                                               {"keys", "list"},
                                                               {"keys", "export", "--public", "--", s.a},
                                                               {"keys", "check"}}) {
    auto r = s.tk(args);
    INFO(describe(r));
    CHECK(r.code == 4);
    CHECK(r.out.find(d) == std::string::npos);
    CHECK(r.err.find(d) == std::string::npos);
    CHECK_THAT(r.err, Contains(s.a));
  }
  check_damage(s.tk({"keys", "show", "--", s.a}), "private member \"d\"");
}

TEST_CASE("keys check names manifest and key-file damage that used to pass, and sign says the keystore is damaged",
          "[keystore][cli][integrity]") {
  AuditStore s;
  json m = s.manifest();
  const auto ia = s.index_of(m, s.a), ib = s.index_of(m, s.b);
  std::string needle = s.a;
  SECTION("another key's public jwk (jwks would publish the wrong key)") {
    m["keys"][ia]["jwk"] = m["keys"][ib]["jwk"];
    s.write_manifest(m);
    check_damage(s.tk({"keys", "jwks"}), s.a);
  }
  SECTION("the private part removed from the key file") {
    json file = json::parse(read_file(s.key_path(s.a)));
    file.erase("d");
    write_file(s.key_path(s.a), file.dump());
    REQUIRE(::chmod(s.key_path(s.a).c_str(), 0600) == 0);
    needle = "public part";
  }
  SECTION("alg RS256 on an EC key") {
    m["keys"][ia]["alg"] = "RS256";
    m["keys"][ib]["alg"] = "RS256";
    s.write_manifest(m);
    needle = "RS256";
  }
  SECTION("alg none") {
    m["keys"][ia]["alg"] = "none";
    s.write_manifest(m);
    needle = "'none'";
  }
  SECTION("a signing key marked use enc") {
    m["keys"][ia]["use"] = "enc";
    s.write_manifest(m);
    needle = "use 'enc'";
  }
  auto check = s.tk({"keys", "check"});
  INFO(describe(check));
  CHECK(check.code == 4);
  CHECK_THAT(check.err, Contains("problem:") || Contains("error:"));
  CHECK_THAT(check.err, Contains(s.a));
  CHECK_THAT(check.err, Contains(needle));
  CHECK(check.out.find("consistent") == std::string::npos);
  check_damage(s.tk({"sign", "--sub", "alice", "--exp", "+1h"}), s.a);
}

TEST_CASE("keys check covers the pairwise-subject secret: recorded but missing, short, open to others, a directory",
          "[keystore][cli][ppid]") {
  AuditStore s;
  const std::string path = s.dir + "/ppid.secret";
  std::string needle;
  SECTION("recorded in the manifest but missing") {
    json m = s.manifest();
    m["pairwise_secret"] = {{"file", "ppid.secret"}, {"created", k_t0}, {"sha256", std::string(43, 'A')}};
    s.write_manifest(m);
    needle = "missing";
  }
  SECTION("2 bytes") {
    write_file(path, "ab");
    REQUIRE(::chmod(path.c_str(), 0600) == 0);
    needle = "2 bytes";
  }
  SECTION("mode 0644") {
    write_file(path, std::string(32, 'q'));
    REQUIRE(::chmod(path.c_str(), 0644) == 0);
    needle = "chmod 600";
  }
  SECTION("a directory") {
    REQUIRE(::mkdir(path.c_str(), 0700) == 0);
    needle = "a directory";
  }
  auto r = s.tk({"keys", "check"});
  INFO(describe(r));
  CHECK(r.code == 4);
  CHECK_THAT(r.err, Contains("ppid.secret"));
  CHECK_THAT(r.err, Contains(needle));
  // Nothing made a new secret in its place.
  if (needle == "missing") CHECK(::access(path.c_str(), F_OK) != 0);
  // Commands that do not use it are not affected.
  require_ok(s.tk({"keys", "list"}));
}

TEST_CASE("a symlinked keystore.json is read, but never replaced by a writer", "[keystore][cli]") {
  AuditStore s;
  const std::string path = s.dir + "/keystore.json";
  const std::string target = s.tmp.file("real.json");
  REQUIRE(::rename(path.c_str(), target.c_str()) == 0);
  REQUIRE(::symlink(target.c_str(), path.c_str()) == 0);
  const std::string before = read_file(target);
  require_ok(s.tk({"keys", "list"}));
  auto add = s.tk({"keys", "add", "--alg", "ES256"});
  check_damage(add, "symbolic link");
  CHECK_THAT(add.err, Contains("readlink"));
  CHECK(s.tk({"keys", "retire", "--", s.b}).code == 4);
  struct stat st{};
  REQUIRE(::lstat(path.c_str(), &st) == 0);
  CHECK(S_ISLNK(st.st_mode));
  CHECK(read_file(target) == before);
  auto check = s.tk({"keys", "check"});
  CHECK(check.code == 4);
  CHECK_THAT(check.err, Contains("symbolic link"));
}
