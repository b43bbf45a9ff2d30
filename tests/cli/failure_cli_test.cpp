// CLI failure paths found by the hostile-input audit of 2026-12-02: values that are not UTF-8
// (refused where they are read, exit 2, instead of an internal error when a JSON document is
// written), a token store that cannot answer a revocation check (exit 4, not "invalid"), and
// splitting the same JWT twice (the same parts, not a storage error).

#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

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
  auto v = env({"-o", "json", "verify", fresh});
  INFO(describe(v));
  CHECK(v.code == 4);
  auto report = json::parse(v.out);
  CHECK(report["valid"] == false);
  REQUIRE(report["errors"].size() == 1);
  CHECK(report["errors"][0]["code"] == "store_error");
  // Expired is a verdict of its own: the store outage does not hide it.
  auto late = env.at("2026-01-01T00:30:00Z", {"-o", "json", "verify", expired});
  INFO(describe(late));
  CHECK(late.code == 1);
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
