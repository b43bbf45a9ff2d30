// CLI failure paths found by the hostile-input audit of 2026-12-02: values that are not UTF-8
// (refused where they are read, exit 2, instead of an internal error when a JSON document is
// written), a token store that cannot answer a revocation check (exit 4, not "invalid"), and
// splitting the same JWT twice (the same parts, not a storage error).

#include <catch2/catch.hpp>

#include <filesystem>
#include <string>
#include <vector>

#include <sys/stat.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include <tokctl/jose/jwk.hpp>
#include <tokctl/jose/jws.hpp>
#include <tokctl/util/base64.hpp>

#include "support/cli_helpers.hpp"
#include "support/run.hpp"

namespace {

using nlohmann::json;
using tokctl::test::describe;
using tokctl::test::RunResult;
using tokctl::test::TempDir;
using tokctl::test::trimmed;
using tokctl::test::write_file;
using Catch::Matchers::Contains;

constexpr const char* k_now = "2026-01-01T00:00:00Z";
const std::string k_not_utf8 = "x\xff";         // a lone 0xFF byte
const std::string k_surrogate = "a\xed\xa0\x80";  // U+D800 in UTF-8 form: a surrogate, not a character

constexpr const char* k_policy = R"(issuer: https://tokens.example.test
tokens:
  access: {format: jwt, ttl: 15m}
scopes:
  - name: read
clients:
  svc: {scopes: [read], audiences: [api-a]}
)";

// A keystore with one active ES256 key and a policy beside it; runs tokctl on them at k_now.
struct Env {
  TempDir dir;
  std::string ks = dir.file("ks");
  std::string policy = dir.file("tokctl.yaml");
  Env() {
    write_file(policy, k_policy);
    auto add = (*this)({"keys", "add", "--alg", "ES256"});
    INFO(describe(add));
    REQUIRE(add.code == 0);
  }
  RunResult at(const std::string& now, std::vector<std::string> args) const {
    std::vector<std::string> argv = {"--keystore", ks, "--config", policy, "--now", now};
    argv.insert(argv.end(), args.begin(), args.end());
    return tokctl::test::run(argv);
  }
  RunResult operator()(std::vector<std::string> args) const { return at(k_now, std::move(args)); }
  std::string ok(std::vector<std::string> args) const {
    auto r = (*this)(std::move(args));
    INFO(describe(r));
    REQUIRE(r.code == 0);
    return trimmed(r.out);
  }
};

void require_utf8_refusal(const RunResult& r, const std::string& option) {
  INFO(describe(r));
  CHECK(r.code == 2);
  CHECK(r.out.empty());
  CHECK_THAT(r.err, Contains(option + ": value is not valid UTF-8"));
  CHECK_THAT(r.err, !Contains("internal error"));
}

}  // namespace

TEST_CASE("values that are not UTF-8 are refused with exit 2, naming the option", "[cli][failure]") {
  Env env;
  const std::string key = env.dir.file("hs.jwk");
  env.ok({"keys", "generate", "--alg", "HS256", "--out", key});
  for (const std::string& bad : {k_not_utf8, k_surrogate}) {
    require_utf8_refusal(env({"sign", "--key", key, "--iss", bad}), "--iss");
    require_utf8_refusal(env({"sign", "--key", key, "--sub", bad}), "--sub");
    require_utf8_refusal(env({"sign", "--key", key, "--claim", "k=" + bad}), "--claim");
    require_utf8_refusal(env({"issue", "--client-id", "svc", "--sub", bad, "--scope", "read"}), "--sub");
    require_utf8_refusal(env({"issue", "--client-id", "svc", "--sub", "alice", "--aud", bad}), "--aud");
    require_utf8_refusal(env({"keys", "generate", "--alg", "ES256", "--kid", bad}), "--kid");
  }
  // Nothing was written by the refused commands: the keystore still has its one key.
  auto list = env({"-o", "json", "keys", "list"});
  INFO(describe(list));
  REQUIRE(list.code == 0);
  CHECK(json::parse(list.out).at("keys").size() == 1);
  // Valid UTF-8 beyond ASCII is text like any other.
  auto jwt = env({"sign", "--key", key, "--iss", "https://issuer.test", "--sub", "Zoë 🙂"});
  INFO(describe(jwt));
  CHECK(jwt.code == 0);
}

TEST_CASE("file names are bytes: a path that is not UTF-8 is still a path", "[cli][failure]") {
  Env env;
  const std::string key = env.dir.file("key" + k_not_utf8 + ".jwk");
  env.ok({"keys", "generate", "--alg", "HS256", "--out", key});
  auto jwt = env({"sign", "--key", key, "--sub", "alice"});
  INFO(describe(jwt));
  CHECK(jwt.code == 0);
}

namespace {

// `verify -o json` when the store cannot answer: exit 4, invalid, and store_error its one problem.
void check_store_error(const RunResult& v) {
  INFO(describe(v));
  CHECK(v.code == 4);
  auto report = json::parse(v.out);
  CHECK(report["valid"] == false);
  REQUIRE(report["errors"].size() == 1);
  CHECK(report["errors"][0]["code"] == "store_error");
}

}  // namespace

TEST_CASE("verify exits 4 when the store cannot answer, and 1 when the token is invalid anyway", "[cli][failure]") {
  Env env;
  const std::string fresh = env.ok({"sign", "--sub", "x", "--exp", "+1h"});
  const std::string expired = env.ok({"sign", "--sub", "x", "--exp", "+1m"});
  {
    auto v = env({"verify", fresh});
    INFO(describe(v));
    REQUIRE(v.code == 0);  // a working store: valid
  }
  write_file(env.ks + "/tokens.db", "hello, this is not a database\n");
  check_store_error(env({"-o", "json", "verify", fresh}));
  // Expired is a verdict of its own: the store outage does not hide it.
  auto late = env.at("2026-01-01T00:30:00Z", {"-o", "json", "verify", expired});
  INFO(describe(late));
  CHECK(late.code == 1);
}

TEST_CASE("verify never calls a revoked token valid because its store has gone or dangles", "[cli][failure]") {
  Env env;
  const std::string jwt = env.ok({"issue", "--client-id", "svc", "--sub", "alice", "--scope", "read"});
  REQUIRE(env({"revoke", jwt}).code == 0);
  {
    auto v = env({"verify", jwt});
    INFO(describe(v));
    REQUIRE(v.code == 1);  // revoked
  }
  const std::string db = env.ks + "/tokens.db";
  SECTION("moved away: its change counter says it was there") {
    REQUIRE(std::rename(db.c_str(), (db + ".moved").c_str()) == 0);
  }
  SECTION("a symlink to nowhere") {
    REQUIRE(std::rename(db.c_str(), (db + ".moved").c_str()) == 0);
    REQUIRE(::symlink((env.dir.file("nowhere") + "/x").c_str(), db.c_str()) == 0);
  }
  SECTION("emptied (a failed copy or restore)") {
    REQUIRE(std::rename(db.c_str(), (db + ".moved").c_str()) == 0);
    write_file(db, "");
  }
  check_store_error(env({"-o", "json", "verify", jwt}));
  auto text = env({"verify", jwt});  // on a terminal, too, the headline gives no verdict
  CHECK(text.code == 4);
  CHECK_THAT(text.err, Contains("no verdict") && !Contains("token is invalid"));
  // No other command puts a new empty store in its place, which would make the JWT valid again.
  for (std::vector<std::string> cmd : {std::vector<std::string>{"introspect", jwt}, {"store", "prune"},
                                       {"issue", "--client-id", "svc", "--sub", "bob", "--scope", "read"}}) {
    auto r = env(cmd);
    INFO(describe(r));
    CHECK(r.code == 4);
    CHECK_THAT(r.err, Contains("shows revocations were made in it"));
  }
  check_store_error(env({"-o", "json", "verify", jwt}));
}

TEST_CASE("verify with a policy that does not load is exit 3, like every command", "[cli][failure]") {
  Env env;
  const std::string jwt = env.ok({"sign", "--sub", "x", "--exp", "+1h"});
  write_file(env.policy, "issuer: https://issuer.test\nstore: 5\n");
  auto v = env({"verify", jwt});
  INFO(describe(v));
  CHECK(v.code == 3);
  CHECK_THAT(v.err, Contains("store must be a string") && !Contains("no verdict"));
}

TEST_CASE("verify --batch takes its tokens on stdin only: a token argument is a usage error", "[cli][failure]") {
  Env env;
  const std::string expired = env.ok({"sign", "--sub", "x", "--exp", "+1m"});
  auto v = env.at("2026-01-01T00:30:00Z", {"verify", "--batch", expired});
  INFO(describe(v));
  CHECK(v.code == 2);
  CHECK_THAT(v.err, Contains("stdin"));
}

TEST_CASE("a key pinning alg none or an unknown alg is the key's fault, not an --alg nobody gave", "[cli][failure]") {
  Env env;
  const std::string key = env.dir.file("es.jwk"), pub = env.dir.file("es.pub.jwk");
  env.ok({"keys", "generate", "--alg", "ES256", "--out", key});
  write_file(pub, env.ok({"keys", "convert", key, "--public", "--to", "jwk"}));
  const std::string jwt = env.ok({"sign", "--key", key, "--sub", "alice"});
  for (const char* alg : {"none", "FOO"}) {
    CAPTURE(alg);
    json k = json::parse(tokctl::test::read_file(pub));
    k["alg"] = alg;
    const std::string bad = env.dir.file(std::string("bad-") + alg + ".jwk");
    write_file(bad, k.dump());
    auto v = env({"verify", jwt, "--key", bad});
    INFO(describe(v));
    CHECK(v.code == 3);
    CHECK_THAT(v.err, Contains(std::string("pins alg '") + alg + "'"));
    CHECK_THAT(v.err, !Contains("--alg"));
    // In a JWKS next to a good key of another kid: the key the token's kid selects is at fault.
    const std::string other = env.dir.file(std::string("other-") + alg + ".jwk");
    env.ok({"keys", "generate", "--alg", "ES256", "--out", other});
    json set{{"keys", json::array({k, json::parse(env.ok({"keys", "convert", other, "--public", "--to", "jwk"}))})}};
    const std::string jwks = env.dir.file(std::string("set-") + alg + ".json");
    write_file(jwks, set.dump());
    auto in_set = env({"verify", jwt, "--jwks", jwks});
    INFO(describe(in_set));
    CHECK(in_set.code == 3);
    CHECK_THAT(in_set.err, Contains(std::string("pins alg '") + alg + "'") && !Contains("does not pin"));
  }
}

TEST_CASE("a typ header that is not a string: verify says malformed, decode shows it, sign refuses to make it",
          "[cli][failure]") {
  Env env;
  const std::string key = env.dir.file("hs.jwk");
  env.ok({"keys", "generate", "--alg", "HS256", "--out", key});
  auto made = env({"sign", "--key", key, "--sub", "alice", "--header", "typ=[\"at+jwt\"]"});
  CHECK(made.code == 2);
  CHECK_THAT(made.err, Contains("must be a string"));
  auto jwk = tokctl::jose::Jwk::from_json(json::parse(tokctl::test::read_file(key)));
  REQUIRE(jwk);
  auto jwt = tokctl::jose::sign_compact(json{{"alg", "HS256"}, {"typ", json::array({"at+jwt"})}}, R"({"sub":"alice"})",
                                        tokctl::jose::Alg::HS256, *jwk);
  REQUIRE(jwt);
  for (bool with_typ : {false, true}) {
    std::vector<std::string> args = {"verify", *jwt, "--key", key};
    if (with_typ) args.insert(args.end(), {"--typ", "at+jwt"});
    auto v = env(args);
    INFO(describe(v));
    CHECK(v.code == 3);
    CHECK_THAT(v.err + v.out, Contains("\"typ\" must be a string"));
  }
  auto d = env({"decode", *jwt});  // decode verifies nothing: it shows the token, and warns
  INFO(describe(d));
  CHECK(d.code == 0);
  CHECK_THAT(d.out, Contains("\"typ\" is not a string"));
}

TEST_CASE("splitting the same JWT twice gives the same parts", "[cli][failure]") {
  Env env;
  const std::string jwt = env.ok({"issue", "--client-id", "svc", "--sub", "alice", "--scope", "read"});
  const std::string first = env.ok({"split", jwt});
  const std::string second = env.ok({"split", jwt});
  CHECK(second == first);
  CHECK(env.ok({"split", "--join", first}) == jwt);
  // Once the client part is revoked, splitting again says so instead of handing it out again.
  env.ok({"revoke", first});
  auto again = env({"split", jwt});
  INFO(describe(again));
  CHECK(again.code == 1);
  CHECK_THAT(again.err, Contains("revoked"));
  CHECK_THAT(again.err, !Contains("UNIQUE"));
}

TEST_CASE("a key file that cannot be read is named with its option; a missing token file is not parsed as a token",
          "[cli][failure]") {
  Env e;
  const std::string token = e.ok({"sign", "--sub", "alice", "--exp", "+15m"});
  const std::string missing = e.dir.file("nope.jwk");
  for (const std::string flag : {"--key", "--jwks", "--secret-file"}) {
    INFO(flag);
    auto r = tokctl::test::run({"verify", token, flag, missing, "--now", k_now});
    INFO(describe(r));
    CHECK(r.code == 2);
    CHECK_THAT(r.err, Contains("error: " + flag + ": cannot open '" + missing + "'"));
  }
  auto d = e({"verify", token, "--decrypt-key", missing});
  INFO(describe(d));
  CHECK(d.code == 2);
  CHECK_THAT(d.err, Contains("--decrypt-key: cannot open '" + missing + "'"));

  // A token argument that can only be a file name, and names no file: the file is what is wrong.
  for (const std::string& arg : std::vector<std::string>{e.dir.file("token.txt"), "./token.txt", "token.jwt"}) {
    for (const char* cmd : {"decode", "verify"}) {
      INFO(cmd << " " << arg);
      auto r = e({cmd, arg});
      INFO(describe(r));
      CHECK(r.code == 2);
      CHECK_THAT(r.err, Contains("cannot open '" + arg + "'"));
      CHECK_THAT(r.err, Contains("read as a file name, not as a token"));
      CHECK_THAT(r.err, !Contains("segment"));
    }
  }
  // Once the file exists it is read; a real token is still taken as itself.
  write_file(e.dir.file("token.txt"), token + "\n");
  CHECK(e({"verify", e.dir.file("token.txt")}).code == 0);
  CHECK(e({"verify", token}).code == 0);
  // An opaque token with a '/' in it (another server's) is still a token, not a file.
  auto opaque = e({"decode", "abc/def+ghi"});
  CHECK_THAT(opaque.err, !Contains("file name"));
}

// ---- the failure-path probe of 2026-12-02 (evening) --------------------------------------------

namespace {

// Runs `script` with bash; $TOKCTL is the binary under test, $KS the keystore, $CONFIG the policy.
RunResult bash_in(const Env& e, const std::string& script) {
  tokctl::test::EnvVars env = {{"TOKCTL", tokctl::test::tokctl_binary()}, {"KS", e.ks},           {"CONFIG", e.policy},
                               {"NO_COLOR", "1"},         {"TOKCTL_KEYSTORE", ""}, {"TOKCTL_CONFIG", ""},
                               {"TOKCTL_PASSPHRASE", ""}};
  return tokctl::test::run_program({"bash", "-c", script}, {}, env);
}

// The bit length of the secret in a keystore key file.
std::size_t secret_bits(const std::string& file) {
  auto k = json::parse(tokctl::test::read_file(file)).at("k").get<std::string>();
  auto raw = tokctl::b64url_decode(k);
  REQUIRE(raw);
  return raw->size() * 8;
}

}  // namespace

TEST_CASE("output that cannot be written is exit 4, and a JWKS that never left is not published", "[cli][failure]") {
  Env e;
  // A private key printed into a full disk is lost: that is no success.
  auto gen = bash_in(e, R"("$TOKCTL" keys generate --alg ES256 > /dev/full)");
  INFO(describe(gen));
  CHECK(gen.code == 4);
  CHECK_THAT(gen.err, Contains("cannot write to standard output"));
  auto issue = bash_in(e, R"("$TOKCTL" --keystore "$KS" --config "$CONFIG" issue --sub alice > /dev/full)");
  INFO(describe(issue));
  CHECK(issue.code == 4);
  // A verdict (exit 1: invalid, and why) that never reached its reader is no verdict either.
  const std::string tok = e.ok({"sign", "--sub", "alice", "--aud", "api", "--exp", "+1h"});
  const std::string verify = R"("$TOKCTL" --keystore "$KS" -o json verify --aud other )";
  CHECK(bash_in(e, verify + tok + " > /dev/null").code == 1);
  auto lost = bash_in(e, verify + tok + " > /dev/full");
  INFO(describe(lost));
  CHECK(lost.code == 4);
  CHECK_THAT(lost.err, Contains("cannot write to standard output"));
  const std::string batch = "printf '%s\\ngarbage\\n' " + tok + R"( | "$TOKCTL" --keystore "$KS" verify --batch)";
  CHECK(bash_in(e, batch + " > /dev/null").code == 1);
  auto lost_batch = bash_in(e, batch + " > /dev/full");
  INFO(describe(lost_batch));
  CHECK(lost_batch.code == 4);
  // keys jwks: a rotation waits for the next key's publication; a JWKS nobody received is none.
  CHECK(e({"keys", "add", "--alg", "ES256"}).code == 0);
  auto jwks = bash_in(e, R"("$TOKCTL" --keystore "$KS" keys jwks > /dev/full)");
  INFO(describe(jwks));
  CHECK(jwks.code == 4);
  auto listed = json::parse(e.ok({"-o", "json", "keys", "list"}));
  for (const auto& k : listed.at("keys")) CHECK(k.at("published").is_null());
  // Written for real, it counts.
  CHECK(bash_in(e, R"("$TOKCTL" --keystore "$KS" keys jwks > /dev/null)").code == 0);
  listed = json::parse(e.ok({"-o", "json", "keys", "list"}));
  for (const auto& k : listed.at("keys")) CHECK(k.at("published").is_string());
}

TEST_CASE("an HMAC secret too large to read back is refused before it is written", "[cli][failure]") {
  Env e;
  const std::string token = e.ok({"sign", "--sub", "a", "--aud", "api", "--exp", "+1h"});
  for (std::vector<std::string> cmd : {std::vector<std::string>{"keys", "add", "--alg", "HS256", "--bits", "8000000"},
                                       {"keys", "generate", "--alg", "HS256", "--bits", "8000000", "--out", e.dir.file("big.jwk")},
                                       {"keys", "add", "--alg", "HS512", "--bits", "8200"}}) {
    auto r = e(cmd);
    INFO(describe(r));
    CHECK(r.code == 2);
    CHECK_THAT(r.err, Contains("to 8192 bits"));
  }
  CHECK_FALSE(std::filesystem::exists(e.dir.file("big.jwk")));
  // The keystore still verifies its tokens, and the largest allowed secret works end to end.
  CHECK(e({"verify", token, "--aud", "api"}).code == 0);
  CHECK(e({"keys", "generate", "--alg", "HS256", "--bits", "8192", "--out", e.dir.file("max.jwk")}).code == 0);
  CHECK(secret_bits(e.dir.file("max.jwk")) == 8192);
  const std::string hs = e.ok({"sign", "--key", e.dir.file("max.jwk"), "--sub", "a"});
  CHECK(e({"verify", hs, "--key", e.dir.file("max.jwk")}).code == 0);
}

TEST_CASE("keys rotate gives an HMAC secret the size of the one it follows", "[cli][failure]") {
  Env e;
  CHECK(e({"keys", "add", "--alg", "HS256", "--bits", "1024"}).code == 0);
  CHECK(e({"keys", "rotate", "--force"}).code == 0);
  std::size_t files = 0;
  for (const auto& entry : std::filesystem::directory_iterator(e.ks + "/keys")) {
    const std::string f = entry.path().string();
    auto text = tokctl::test::read_file(f);
    if (json::parse(text).value("kty", "") != "oct") continue;
    INFO(f);
    CHECK(secret_bits(f) == 1024);  // was 256 for the keys rotate made
    ++files;
  }
  CHECK(files >= 2);  // the original and at least one made by the rotation
}

TEST_CASE("clients add through a symlinked policy updates the file it points to", "[cli][failure]") {
  Env e;
  const std::string real = e.dir.file("real.yaml"), link = e.dir.file("link.yaml");
  write_file(real, "issuer: https://i.test\nclients:\n  a: {}\n");
  REQUIRE(::symlink(real.c_str(), link.c_str()) == 0);
  auto r = tokctl::test::run({"--config", link, "clients", "add", "b", "-q"});
  INFO(describe(r));
  REQUIRE(r.code == 0);
  struct stat st{};
  REQUIRE(::lstat(link.c_str(), &st) == 0);
  CHECK(S_ISLNK(st.st_mode));  // still the link
  CHECK_THAT(tokctl::test::read_file(real), Contains("b:"));
  CHECK(tokctl::test::run({"config", "check", real}).code == 0);
  // A dangling link is refused; nothing is created in its place.
  const std::string dangling = e.dir.file("dangling.yaml");
  REQUIRE(::symlink(e.dir.file("missing.yaml").c_str(), dangling.c_str()) == 0);
  auto d = tokctl::test::run({"--config", dangling, "clients", "add", "c", "-q"});
  INFO(describe(d));
  CHECK(d.code != 0);
  CHECK_FALSE(std::filesystem::exists(e.dir.file("missing.yaml")));
}

TEST_CASE("config check reports a store without a path and a jwe format without a recipient", "[cli][failure]") {
  Env e;
  write_file(e.dir.file("a.yaml"), "issuer: https://i.test\nstore: \"sqlite:\"\n");
  write_file(e.dir.file("c.yaml"), "issuer: https://i.test\ntokens: {access: {format: jwe}}\n");
  for (const char* f : {"a.yaml", "c.yaml"}) {
    auto r = tokctl::test::run({"config", "check", e.dir.file(f)});
    INFO(describe(r));
    CHECK(r.code == 3);
  }
  auto a = tokctl::test::run({"config", "check", e.dir.file("a.yaml")});
  CHECK_THAT(a.err + a.out, Contains("names no file"));
  auto c = tokctl::test::run({"config", "check", e.dir.file("c.yaml")});
  CHECK_THAT(c.err + c.out, Contains("jwe_recipient"));
  // A store this build lacks is a policy setting, never shown as a "--store" flag.
  write_file(e.dir.file("b.yaml"), "issuer: https://i.test\nstore: \"postgresql://u:pw@h/db\"\n");
  auto b = tokctl::test::run({"--keystore", e.ks, "--config", e.dir.file("b.yaml"), "--now", k_now, "issue", "--sub", "x"});
  INFO(describe(b));
  CHECK(b.code == 2);
  CHECK_THAT(b.err, !Contains("--store"));
  CHECK_THAT(b.err, !Contains("pw@"));
  CHECK_THAT(b.err, Contains("no PostgreSQL store"));
}

TEST_CASE("a token past 9999-12-31 is never issued", "[cli][failure]") {
  Env e;
  const std::string p = e.dir.file("long.yaml");
  write_file(p, "issuer: https://i.test\ntokens: {max_lifetime: 2000000000d, access: {ttl: 2000000000d}}\n");
  auto r = tokctl::test::run({"--keystore", e.ks, "--config", p, "--now", k_now, "issue", "--sub", "a"});
  INFO(describe(r));
  CHECK(r.code == 2);
  CHECK_THAT(r.err, Contains("ends after 9999-12-31T23:59:59Z"));
  CHECK(trimmed(r.out).empty());
  // The last second that fits is fine, and tokctl verifies what it issued.
  auto edge = tokctl::test::run({"--keystore", e.ks, "--config", p, "--now", "9999-12-31T23:44:59Z", "issue", "--sub", "a", "--ttl", "15m"});
  INFO(describe(edge));
  REQUIRE(edge.code == 0);
  auto v = tokctl::test::run({"--keystore", e.ks, "--config", p, "--now", "9999-12-31T23:50:00Z", "verify", trimmed(edge.out)});
  INFO(describe(v));
  CHECK(v.code == 0);
  auto late = tokctl::test::run({"--keystore", e.ks, "--config", p, "--now", "9999-12-31T23:59:00Z", "issue", "--sub", "a", "--ttl", "15m"});
  CHECK(late.code == 2);
  CHECK_THAT(r.err + late.err, !Contains("--ttl:"));  // the lifetime came from the policy, or fits no flag
}

TEST_CASE("sign with the keystore's key warns about a token that may outlive its key", "[cli][failure]") {
  Env e;  // the policy's tokens.max_lifetime is the default, 24h
  auto long_lived = e({"sign", "--sub", "a", "--exp", "+365d"});
  INFO(describe(long_lived));
  CHECK(long_lived.code == 0);
  CHECK_THAT(long_lived.err, Contains("beyond tokens.max_lifetime (1d)"));
  auto forever = e({"sign", "--sub", "a"});
  CHECK_THAT(forever.err, Contains("has no exp"));
  auto fine = e({"sign", "--sub", "a", "--exp", "+1h"});
  CHECK(fine.code == 0);
  CHECK(fine.err.empty());
  CHECK(e({"-q", "sign", "--sub", "a", "--exp", "+365d"}).err.empty());
  // A key of one's own is not the keystore's business.
  CHECK(e({"keys", "generate", "--alg", "ES256", "--out", e.dir.file("own.jwk")}).code == 0);
  CHECK(e({"sign", "--key", e.dir.file("own.jwk"), "--sub", "a", "--exp", "+365d"}).err.empty());
}

TEST_CASE("split --join -o json, clients --help and the {{client_id}} template", "[cli][failure]") {
  Env e;
  const std::string jwt = e.ok({"issue", "--sub", "alice"});
  const std::string part = e.ok({"split", jwt});
  auto joined = json::parse(e.ok({"-o", "json", "split", "--join", part}));
  CHECK(joined.at("token") == jwt);
  CHECK(e.ok({"split", "--join", part}) == jwt);
  // clients --help shows its own examples, not the root's.
  auto help = tokctl::test::run({"clients", "--help"});
  CHECK_THAT(help.out, Contains("clients add billing"));
  CHECK_THAT(help.out, !Contains("keys generate"));
  // {{client_id}} is the token's client_id, also when no --client-id was given.
  const std::string p = e.dir.file("tpl.yaml");
  write_file(p, "issuer: https://i.test\nclaims:\n  who: \"{{sub}}@{{client_id}}\"\n");
  auto t = tokctl::test::run({"--keystore", e.ks, "--config", p, "--now", k_now, "-o", "json", "issue", "--sub", "alice"});
  INFO(describe(t));
  REQUIRE(t.code == 0);
  const std::string at = json::parse(t.out).at("access_token");
  auto d = json::parse(e.ok({"-o", "json", "decode", at}));
  CHECK(d.at("payload").at("who") == "alice@" + d.at("payload").at("client_id").get<std::string>());
  CHECK(d.at("payload").at("who") != "alice@");
}

TEST_CASE("keys add and rotate that fail to write the manifest leave no key file behind", "[cli][failure]") {
  Env e;  // one ES256 key: its manifest is over 1 KiB once a second key joins it
  CHECK(e({"keys", "add", "--alg", "ES256"}).code == 0);
  auto count_files = [&] {
    std::size_t n = 0;
    for ([[maybe_unused]] const auto& f : std::filesystem::directory_iterator(e.ks + "/keys")) ++n;
    return n;
  };
  const std::size_t before = count_files();
  const std::string manifest = tokctl::test::read_file(e.ks + "/keystore.json");
  // A key file (~300 bytes) fits under `ulimit -f 1` (1 KiB); the manifest does not (EFBIG).
  for (const char* cmd : {"keys add --alg ES256", "keys rotate --force", "keys add --alg HS256"}) {
    INFO(cmd);
    auto r = bash_in(e, std::string("ulimit -f 1; \"$TOKCTL\" --keystore \"$KS\" ") + cmd);
    INFO(describe(r));
    CHECK(r.code == 4);
    CHECK_THAT(r.err, Contains("File too large"));
    CHECK(count_files() == before);
    CHECK(tokctl::test::read_file(e.ks + "/keystore.json") == manifest);
  }
  auto check = e({"keys", "check"});
  INFO(describe(check));
  CHECK(check.code == 0);
}

// Regression (review): `keys check` says to recover an orphaned key file by importing it in place;
// when that import then failed to write the manifest, its cleanup deleted the file as one of its own
// new files, and the only copy of the private key was gone.
TEST_CASE("a keys import of an orphaned key file in place that fails keeps the file", "[cli][failure]") {
  Env e;
  const std::string gen = e.dir.file("orphan.jwk");
  CHECK(e({"keys", "generate", "--alg", "ES256", "--out", gen}).code == 0);
  const std::string kid = e.ok({"keys", "thumbprint", gen});
  const std::string orphan = e.ks + "/keys/" + kid + ".jwk";
  std::filesystem::copy_file(gen, orphan);
  REQUIRE(::chmod(orphan.c_str(), 0600) == 0);
  const std::string key = tokctl::test::read_file(orphan);
  auto check = e({"keys", "check"});
  CHECK(check.code != 0);
  CHECK_THAT(check.out + check.err, Contains(kid));
  // The manifest (over 1 KiB with two keys) cannot be written under `ulimit -f 1`: EFBIG.
  auto failed = bash_in(e, "ulimit -f 1; \"$TOKCTL\" --keystore \"$KS\" keys import '" + orphan + "'");
  INFO(describe(failed));
  CHECK(failed.code == 4);
  CHECK_THAT(failed.err, Contains("File too large"));
  REQUIRE(std::filesystem::exists(orphan));
  CHECK(tokctl::test::read_file(orphan) == key);
  // Imported for real, it is the keystore's key and the keystore is whole.
  CHECK(e({"keys", "import", orphan}).code == 0);
  CHECK(e({"keys", "check"}).code == 0);
  CHECK_THAT(e.ok({"keys", "list", "-q"}), Contains(kid));
}

// Regression (review): a keys/ that could not be listed counted as empty, so with keystore.json lost
// a writer took the directory for a new keystore and wrote an empty manifest over the key files.
// Root reads any directory: as root the commands run as nobody (setpriv) on a keystore chowned to it.
TEST_CASE("a keys directory that cannot be listed is an error, never an empty keystore", "[cli][failure]") {
  Env e;
  CHECK(e({"keys", "add", "--alg", "ES384"}).code == 0);
  const std::string setup = R"SH(
set -e
if [ "$(id -u)" = 0 ]; then
  command -v setpriv >/dev/null || { echo SKIP; exit 0; }
  chmod 755 "$(dirname "$KS")"; chown -R 65534:65534 "$KS"
  as="setpriv --reuid=65534 --regid=65534 --clear-groups"
  $as test -x "$TOKCTL" || { echo SKIP; exit 0; }
else
  as=
fi
rm "$KS/keystore.json"; chmod 300 "$KS/keys"
set +e
$as "$TOKCTL" --keystore "$KS" keys list; echo "list=$?"
$as "$TOKCTL" --keystore "$KS" keys add --alg ES256; echo "add=$?"
$as "$TOKCTL" --keystore "$KS" keys check; echo "check=$?"
test -e "$KS/keystore.json" && echo "manifest written"
chmod 700 "$KS/keys"; ls "$KS/keys" | wc -l
)SH";
  auto r = bash_in(e, setup);
  INFO(describe(r));
  if (trimmed(r.out) == "SKIP") {
    WARN("skipped: the test binary is not reachable by user nobody");
    return;
  }
  CHECK_THAT(r.out, Contains("list=4"));
  CHECK_THAT(r.out, Contains("add=4"));
  CHECK_THAT(r.out, Contains("check=4"));
  CHECK_THAT(r.out, !Contains("manifest written"));
  CHECK_THAT(r.err, Contains("cannot list"));
  CHECK_THAT(r.err, Contains("Permission denied"));
  CHECK_THAT(r.err, !Contains("no keystore at"));
  CHECK(trimmed(r.out).ends_with("\n2"));  // both key files are still there, and no new one
}

// Regression (review): an empty value counted as the option left out, so a script's unset variable
// turned a check off: `verify --key "$K"` verified against the keystore instead, `--aud "$AUD"`
// checked no audience (exit 0, valid), `--now ''` used the real clock.
TEST_CASE("an option given an empty value is a usage error, never the option left out", "[cli][failure]") {
  Env e;
  const std::string tok = e.ok({"sign", "--sub", "mallory", "--aud", "api", "--exp", "+1h"});
  REQUIRE(e({"verify", tok}).code == 0);  // the keystore's own token: valid when nothing is pinned
  const std::vector<std::vector<std::string>> cmds = {
      {"verify", tok, "--key", ""},        {"verify", tok, "--jwks", ""},      {"verify", tok, "--secret-env", ""},
      {"verify", tok, "--secret-file", ""}, {"verify", tok, "--aud", ""},       {"verify", tok, "--iss", ""},
      {"verify", tok, "--sub", ""},        {"verify", tok, "--typ", ""},       {"verify", tok, "--max-age", ""},
      {"verify", tok, "--cnf-key", ""},    {"verify", tok, "--cnf-cert", ""},  {"verify", tok, "--decrypt-key", ""},
      {"sign", "--sub", "a", "--key", ""}, {"--now", "", "verify", tok},
      {"--keystore", "", "verify", tok},   {"--config", "", "issue", "--sub", "a"}};
  for (const auto& cmd : cmds) {
    std::string line;
    for (const auto& a : cmd) line += (a.empty() ? std::string("''") : a.substr(0, 24)) + " ";
    INFO(line);
    auto r = tokctl::test::run(cmd);
    INFO(describe(r));
    CHECK(r.code == 2);
    CHECK(r.out.empty());
    CHECK_THAT(r.err, Contains("the value is empty"));
  }
}

// Regression (review): a fractional exp (a valid NumericDate, RFC 7519 §2, which verify accepts)
// was dropped as wrong-typed, so introspection left exp out and phantom JWTs and split gateway parts
// lived for tokens.max_lifetime instead of ending with their source.
TEST_CASE("a fractional exp ends introspection, phantom and split with the token, never later", "[cli][failure]") {
  Env e;
  // k_now + 10 min, and half a second.
  const std::string tok = e.ok({"sign", "--sub", "eve", "--iss", "https://tokens.example.test", "--typ", "at+jwt",
                                "--claim", "client_id=\"svc\"", "--claim", "jti=\"frac\"", "--claim",
                                "exp=1767226200.5"});
  auto in = json::parse(e.ok({"-o", "json", "introspect", tok}));
  CHECK(in.at("active") == true);
  CHECK(in.at("exp") == 1767226200);
  auto ph = json::parse(e.ok({"-o", "json", "introspect", tok, "--jwt"}));
  auto decoded = json::parse(e.ok({"-o", "json", "decode", ph.at("token").get<std::string>()}));
  CHECK(decoded.at("payload").at("exp") == 1767226200);
  const std::string client = e.ok({"split", tok});
  CHECK(e.at("2026-01-01T00:09:00Z", {"split", "--join", client}).code == 0);
  auto late = e.at("2026-01-01T00:11:00Z", {"split", "--join", client});
  INFO(describe(late));
  CHECK(late.code == 1);
  CHECK(late.out.empty());
}

// Regression (review): commands that need only the store (store prune, revoke --all) created
// tokens.db in any directory given as --keystore, a mistyped path included.
TEST_CASE("store commands refuse a directory that holds no keystore and write nothing there", "[cli][failure]") {
  Env e;
  const std::string empty = e.dir.file("not-a-keystore");
  REQUIRE(::mkdir(empty.c_str(), 0700) == 0);
  for (const std::vector<std::string>& cmd : {std::vector<std::string>{"store", "prune"},
                                              {"revoke", "--sub", "x", "--all"},
                                              {"revoke", "--client-id", "svc", "--all"}}) {
    std::vector<std::string> argv = {"--keystore", empty, "--config", e.policy};
    argv.insert(argv.end(), cmd.begin(), cmd.end());
    auto r = tokctl::test::run(argv);
    INFO(describe(r));
    CHECK(r.code == 4);
    CHECK_THAT(r.err, Contains("no keystore at"));
  }
  CHECK(std::filesystem::is_empty(empty));
  CHECK(e({"store", "prune"}).code == 0);  // the real keystore's store still works
}

TEST_CASE("sign and introspect --jwt print one JSON document with -o json", "[cli][failure]") {
  Env e;
  auto s = json::parse(e.ok({"-o", "json", "sign", "--sub", "a", "--exp", "+1h"}));
  REQUIRE(s.at("token").is_string());
  CHECK(e({"verify", s.at("token").get<std::string>()}).code == 0);
  const std::string p = e.dir.file("opaque.yaml");
  write_file(p, "issuer: https://i.test\ntokens: {access: {format: opaque}}\n");
  auto opaque = tokctl::test::run({"--keystore", e.ks, "--config", p, "--now", k_now, "issue", "--sub", "a"});
  INFO(describe(opaque));
  REQUIRE(opaque.code == 0);
  auto phantom = tokctl::test::run(
      {"--keystore", e.ks, "--config", p, "--now", k_now, "-o", "json", "introspect", trimmed(opaque.out), "--jwt"});
  INFO(describe(phantom));
  REQUIRE(phantom.code == 0);
  auto doc = json::parse(phantom.out);
  CHECK(doc.at("active") == true);
  CHECK(e({"verify", doc.at("token").get<std::string>()}).code == 0);
}

TEST_CASE("sign warns about a token verify rejects as malformed, and lets no --claim override a claim flag",
          "[cli][failure]") {
  Env e;
  const std::string payload = e.dir.file("claims.json");
  for (const std::vector<std::string>& cmd :
       {std::vector<std::string>{"sign", "--claim", "exp=\"soon\""},
        {"sign", "--sub", "a", "--claim", "iat=[1]"},
        {"sign", "--claim", "nbf=1e300"},
        {"sign", payload},
        {"sign", payload, "--sub", "a"}}) {
    write_file(payload, R"({"sub":"a","exp":"tomorrow"})");
    auto r = e(cmd);
    INFO(describe(r));
    CHECK(r.code == 0);  // minted on purpose: how a service's rejection of such tokens is tested
    CHECK_THAT(r.err, Contains("warning") && Contains("verify rejects this token as malformed"));
    CHECK_THAT(r.err, Contains("is not a number (NumericDate)") || Contains("is out of range"));
    // ... and verify does reject it, as the warning says.
    CHECK(e({"verify", trimmed(r.out)}).code == 3);
    // -q: the token only.
    auto quiet = e([&] { auto q = cmd; q.insert(q.begin(), "-q"); return q; }());
    CHECK(quiet.code == 0);
    CHECK(quiet.err.empty());
  }
  // Good time claims, and a payload that is not a JSON object (bytes): no warning.
  auto fine = e({"sign", "--claim", "exp=4102444800", "--sub", "a"});
  CHECK(fine.code == 0);
  CHECK(fine.err.find("malformed") == std::string::npos);
  write_file(payload, "exp: soon");
  auto bytes = e({"sign", payload});
  CHECK(bytes.code == 0);
  CHECK(bytes.err.find("malformed") == std::string::npos);
  // A payload that starts as a JSON object but is no valid claims set (a duplicate member) is
  // read as one by verifiers all the same: warned about, and verify does reject it.
  write_file(payload, R"({"a":1,"a":2})");
  auto dup = e({"sign", payload, "--typ", "application/octet-stream"});
  INFO(describe(dup));
  CHECK(dup.code == 0);
  CHECK_THAT(dup.err, Contains("warning") && Contains("verify rejects this token as malformed"));
  CHECK_THAT(dup.err, Contains("duplicate"));
  CHECK(e({"verify", trimmed(dup.out)}).code == 3);
  // --sub and --claim sub=... would silently disagree: refused.
  auto both = e({"sign", "--sub", "x", "--claim", "sub=1"});
  INFO(describe(both));
  CHECK(both.code == 2);
  CHECK_THAT(both.err, Contains("--claim sub") && Contains("--sub"));
  CHECK(e({"sign", "--claim", "sub=x", "--exp", "+1h", "--claim", "exp=9999999999"}).code == 2);
}

TEST_CASE("the no-keystore hint names the keystore the policy chose", "[cli][failure]") {
  TempDir dir;
  const std::string p = dir.file("tokctl.yaml");
  write_file(p, "issuer: https://x.test\nkeystore: ./ks\n");
  auto r = tokctl::test::run({"--config", p, "issue", "--sub", "alice"},
                             {}, {{"XDG_DATA_HOME", dir.file("xdg")}});
  INFO(describe(r));
  CHECK(r.code == 4);
  CHECK_THAT(r.err, Contains("--keystore '" + dir.file("./ks") + "'"));  // as the policy names it, relative to the policy
  CHECK_THAT(r.err, !Contains(dir.file("xdg")));
}
