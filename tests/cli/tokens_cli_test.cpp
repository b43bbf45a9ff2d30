// CLI tests of the local token service (issue 4, points 2-6 and 8): `tokctl issue` in every format
// with round trips through `introspect` and `revoke`, the RFC 6749 token response, ID tokens,
// scopes (unknown, prefix, TTL with --now time travel), pairwise subjects, phantom JWTs, grant,
// client and subject revocation, the JWT deny-list in `verify`, split/join, `store prune`,
// `--count`, and four processes issuing into one store at once. Exchange is covered elsewhere.
// Every run pins the time with --now; nothing sleeps.

#include <catch2/catch.hpp>

#include <algorithm>
#include <cerrno>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <nlohmann/json.hpp>
#include <openssl/evp.h>
#include <sqlite3.h>

#include <tokctl/util/base64.hpp>

#include "support/cli_helpers.hpp"
#include "support/run.hpp"

extern char** environ;

namespace {

using nlohmann::json;
using tokctl::test::describe;
using tokctl::test::read_file;
using tokctl::test::RunResult;
using tokctl::test::TempDir;
using tokctl::test::trimmed;
using tokctl::test::write_file;
using Catch::Matchers::Contains;
using Catch::Matchers::StartsWith;

constexpr const char* k_t0 = "2026-01-01T00:00:00Z";  // 1767225600
constexpr long long k_t0_unix = 1767225600;
constexpr const char* k_t0_5m = "2026-01-01T00:05:00Z";
constexpr const char* k_t0_11m = "2026-01-01T00:11:00Z";
constexpr const char* k_far_future = "2030-01-01T00:00:00Z";

constexpr const char* k_policy = R"(issuer: https://tokens.example.test
tokens:
  access: {format: jwt, ttl: 15m}
  refresh: {ttl: 30d}
  id: {ttl: 10m}
  opaque_prefix: tok_
  jwe_recipient: ./recipient.pub.jwk
  wrapper_claims: [tenant]
  max_lifetime: 24h
scopes:
  - name: read
  - name: write
    claims: {can_write: true}
  - prefix: video_stream_
    ttl: 10m
claims:
  tenant: acme
  email: "{{subject.email}}"
  who: "{{sub}}@{{client_id}}"
subjects: ./subjects.yaml
clients:
  svc: {scopes: [read, write, video_stream_], audiences: [api-a, api-b]}
  web: {scopes: [read, video_stream_], audiences: [api-a], sector: web.example}
  web2: {scopes: [read], audiences: [api-a], sector: web.example}
  partner: {scopes: [read], audiences: [api-a], sector: partner.example}
)";

constexpr const char* k_subjects = R"(alice: {email: alice@example.test}
bob: {email: bob@example.test}
)";

json parse_json(const std::string& text) {
  INFO(text);
  json j;
  REQUIRE_NOTHROW(j = json::parse(text));
  return j;
}

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);)
    if (!line.empty()) out.push_back(line);
  return out;
}

// The payload of a compact JWS (no verification).
json jwt_payload(const std::string& jwt) {
  auto first = jwt.find('.');
  auto second = jwt.find('.', first + 1);
  REQUIRE(first != std::string::npos);
  REQUIRE(second != std::string::npos);
  auto bytes = tokctl::b64url_decode(jwt.substr(first + 1, second - first - 1));
  REQUIRE(bytes);
  return parse_json(*bytes);
}

json jwt_header(const std::string& token) {
  auto bytes = tokctl::b64url_decode(token.substr(0, token.find('.')));
  REQUIRE(bytes);
  return parse_json(*bytes);
}

std::string sha256(std::string_view data) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  REQUIRE(EVP_Digest(data.data(), data.size(), md, &len, EVP_sha256(), nullptr) == 1);
  return std::string(reinterpret_cast<char*>(md), len);
}

// A keystore with one active ES256 key, a policy beside it (with its subjects file and JWE
// recipient key) and helpers that run tokctl on them at a fixed time.
struct Env {
  TempDir dir;
  std::string ks = dir.file("ks");
  std::string policy = dir.file("tokctl.yaml");

  Env() {
    write_file(policy, k_policy);
    write_file(dir.file("subjects.yaml"), k_subjects);
    auto add = tokctl::test::run({"--keystore", ks, "--now", k_t0, "keys", "add", "--alg", "ES256"});
    INFO(describe(add));
    REQUIRE(add.code == 0);
    auto gen = tokctl::test::run({"keys", "generate", "--alg", "ECDH-ES+A256KW", "--out", dir.file("recipient.jwk")});
    INFO(describe(gen));
    REQUIRE(gen.code == 0);
    auto pub = tokctl::test::run({"keys", "convert", dir.file("recipient.jwk"), "--to", "jwk", "--public"});
    INFO(describe(pub));
    REQUIRE(pub.code == 0);
    write_file(dir.file("recipient.pub.jwk"), pub.out);
  }

  /// tokctl --keystore KS --config POLICY --now NOW ARGS...
  RunResult at(const std::string& now, std::vector<std::string> args, std::string_view in = {}) const {
    std::vector<std::string> argv = {"--keystore", ks, "--config", policy, "--now", now};
    argv.insert(argv.end(), args.begin(), args.end());
    return tokctl::test::run(argv, in);
  }
  RunResult operator()(std::vector<std::string> args, std::string_view in = {}) const {
    return at(k_t0, std::move(args), in);
  }

  /// Issues one token at `now` and returns it (the command must succeed).
  std::string issue(std::vector<std::string> args, const std::string& now = k_t0) const {
    args.insert(args.begin(), "issue");
    auto r = at(now, args);
    INFO(describe(r));
    REQUIRE(r.code == 0);
    return trimmed(r.out);
  }
  /// `issue ... -o json` parsed.
  json issue_json(std::vector<std::string> args, const std::string& now = k_t0) const {
    args.insert(args.begin(), {"-o", "json", "issue"});
    auto r = at(now, args);
    INFO(describe(r));
    REQUIRE(r.code == 0);
    return parse_json(r.out);
  }
  /// introspect TOKEN at `now`: the JSON and the exit code.
  std::pair<json, int> introspect(const std::string& token, const std::string& now = k_t0) const {
    auto r = at(now, {"introspect", token});
    INFO(describe(r));
    return {parse_json(r.out), r.code};
  }
  void revoke(std::vector<std::string> args) const {
    args.insert(args.begin(), "revoke");
    auto r = (*this)(args);
    INFO(describe(r));
    REQUIRE(r.code == 0);
  }
  /// verify TOKEN against the keystore (-o json): the report and the exit code.
  std::pair<json, int> verify(const std::string& token, std::vector<std::string> extra = {},
                              const std::string& now = k_t0) const {
    std::vector<std::string> args = {"-o", "json", "verify", token};
    args.insert(args.end(), extra.begin(), extra.end());
    auto r = at(now, args);
    INFO(describe(r));
    return {parse_json(r.out), r.code};
  }
};

bool has_error(const json& report, const std::string& code) {
  if (!report.contains("errors")) return false;
  return std::any_of(report["errors"].begin(), report["errors"].end(),
                     [&](const json& e) { return e.value("code", "") == code; });
}

void require_inactive(const Env& env, const std::string& token, const std::string& now = k_t0) {
  auto [j, code] = env.introspect(token, now);
  CHECK(j == json{{"active", false}});
  CHECK(code == 1);
}

// RFC 7662 members every active introspection response carries here.
void require_rfc7662(const json& j, const std::string& client_id, const std::string& sub, const std::string& scope) {
  INFO(j.dump());
  CHECK(j["active"] == true);
  CHECK(j["scope"] == scope);
  CHECK(j["client_id"] == client_id);
  CHECK(j["sub"] == sub);
  CHECK(j["aud"] == "api-a");
  CHECK(j["iss"] == "https://tokens.example.test");
  CHECK(j["iat"] == k_t0_unix);
  CHECK(j["exp"] == k_t0_unix + 15 * 60);
  CHECK(j["jti"].is_string());
  CHECK(!j["jti"].get<std::string>().empty());
  CHECK(j.contains("token_type"));
}

}  // namespace

// ---- examples/tokctl.yaml -----------------------------------------------------------------------

TEST_CASE("config check accepts the commented example policy examples/tokctl.yaml", "[tokens][cli][policy]") {
  const std::string example = std::string(TOKCTL_SOURCE_DIR) + "/examples/tokctl.yaml";
  auto r = tokctl::test::run({"config", "check", example});
  INFO(describe(r));
  CHECK(r.code == 0);
  auto j = tokctl::test::run({"-o", "json", "config", "check", example});
  INFO(describe(j));
  REQUIRE(j.code == 0);
  auto report = parse_json(j.out);
  CHECK(report["ok"] == true);
  CHECK(report["problems"].empty());
}

TEST_CASE("the example policy issues tokens for each of its clients", "[tokens][cli][policy]") {
  TempDir dir;
  for (const char* f : {"tokctl.yaml", "subjects.yaml", "recipient.pub.jwk"}) {
    write_file(dir.file(f), read_file(std::string(TOKCTL_SOURCE_DIR) + "/examples/" + f));
  }
  // The example leaves keystore and store unset, so they follow --keystore (tokens.db inside it).
  auto base = std::vector<std::string>{"--config", dir.file("tokctl.yaml"), "--keystore", dir.file("keystore"),
                                       "--now", k_t0};
  auto run = [&](std::vector<std::string> args) {
    args.insert(args.begin(), base.begin(), base.end());
    return tokctl::test::run(args, {}, {{"TOKCTL_KEYSTORE", ""}});
  };
  auto add = run({"keys", "add", "--alg", "ES256"});
  INFO(describe(add));
  REQUIRE(add.code == 0);

  auto web = run({"-o", "json", "issue", "--client-id", "web", "--sub", "alice", "--scope", "read video_stream_hd"});
  INFO(describe(web));
  REQUIRE(web.code == 0);
  auto wj = parse_json(web.out);
  CHECK(wj["access_token"].get<std::string>().rfind("tok_", 0) == 0);  // client format opaque + prefix
  CHECK(wj["scope"] == "read video_stream_hd");

  auto partner = run({"issue", "--client-id", "partner", "--sub", "alice", "--scope", "read"});
  INFO(describe(partner));
  REQUIRE(partner.code == 0);
  auto claims = jwt_payload(trimmed(partner.out));
  CHECK(claims["tenant"] == "acme");
  CHECK(claims["email"] == "alice@example.test");
  CHECK(claims["groups"] == json::array({"engineering", "on-call"}));
  CHECK(claims["aud"] == "api-b");
  CHECK(claims["sub"] != "alice");  // pairwise
  CHECK(claims["who"] == claims["sub"].get<std::string>() + "@partner");

  auto reporting = run({"issue", "--client-id", "reporting", "--sub", "alice", "--scope", "admin"});
  INFO(describe(reporting));
  REQUIRE(reporting.code == 0);
  CHECK(std::count(reporting.out.begin(), reporting.out.end(), '.') == 4);  // JWE
}

// ---- round trips per format ---------------------------------------------------------------------

TEST_CASE("jwt access token: issue, introspect, revoke, introspect inactive", "[tokens][cli]") {
  Env env;
  std::string jwt = env.issue({"--client-id", "svc", "--sub", "alice", "--scope", "read write"});
  REQUIRE(std::count(jwt.begin(), jwt.end(), '.') == 2);
  auto header = jwt_header(jwt);
  CHECK(header["typ"] == "at+jwt");
  CHECK(header.contains("kid"));
  auto claims = jwt_payload(jwt);
  CHECK(claims["iss"] == "https://tokens.example.test");
  CHECK(claims["sub"] == "alice");
  CHECK(claims["aud"] == "api-a");
  CHECK(claims["client_id"] == "svc");
  CHECK(claims["scope"] == "read write");
  CHECK(claims["exp"] == k_t0_unix + 900);
  CHECK(claims["iat"] == k_t0_unix);
  CHECK(claims["tenant"] == "acme");
  CHECK(claims["email"] == "alice@example.test");
  CHECK(claims["who"] == "alice@svc");
  CHECK(claims["can_write"] == true);  // scope claim of write

  auto [j, code] = env.introspect(jwt);
  CHECK(code == 0);
  require_rfc7662(j, "svc", "alice", "read write");
  CHECK(j["jti"] == claims["jti"]);
  CHECK(j["token_type"] == "Bearer");

  auto [v, vcode] = env.verify(jwt, {"--typ", "at+jwt", "--iss", "https://tokens.example.test", "--aud", "api-a"});
  CHECK(vcode == 0);

  env.revoke({jwt});
  require_inactive(env, jwt);
}

TEST_CASE("opaque access token: prefix, introspect, revoke, introspect inactive", "[tokens][cli]") {
  Env env;
  std::string tok = env.issue({"--format", "opaque", "--client-id", "svc", "--sub", "alice", "--scope", "read"});
  REQUIRE(tok.rfind("tok_", 0) == 0);
  std::string body = tok.substr(4);
  CHECK(body.size() == 43);  // 224 random bits and the issue time, base64url without padding
  CHECK(body.find_first_not_of("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_") == std::string::npos);
  CHECK(tok.find('.') == std::string::npos);

  auto [j, code] = env.introspect(tok);
  CHECK(code == 0);
  require_rfc7662(j, "svc", "alice", "read");

  // Stored by hash, never in clear.
  sqlite3* db = nullptr;
  REQUIRE(sqlite3_open_v2((env.ks + "/tokens.db").c_str(), &db, SQLITE_OPEN_READONLY, nullptr) == SQLITE_OK);
  sqlite3_stmt* st = nullptr;
  // Keyed by the BLOB of the issue time (the token's last 8 characters) and SHA-256 of the token.
  REQUIRE(sqlite3_prepare_v2(db, "SELECT count(*) FROM tokens WHERE key = ?1 AND iat = ?2", -1, &st, nullptr) ==
          SQLITE_OK);
  std::string key = *tokctl::b64url_decode(tok.substr(tok.size() - 8)) + sha256(tok).substr(0, 26);
  const std::string order = key.substr(0, 4);
  const std::int64_t iat = (std::int64_t{static_cast<unsigned char>(order[0])} << 24) |
                           (static_cast<unsigned char>(order[1]) << 16) | (static_cast<unsigned char>(order[2]) << 8) |
                           static_cast<unsigned char>(order[3]);
  sqlite3_bind_blob(st, 1, key.data(), static_cast<int>(key.size()), SQLITE_TRANSIENT);
  sqlite3_bind_int64(st, 2, iat);
  REQUIRE(sqlite3_step(st) == SQLITE_ROW);
  CHECK(sqlite3_column_int(st, 0) == 1);
  sqlite3_finalize(st);
  sqlite3_close(db);
  std::string raw = read_file(env.ks + "/tokens.db");
  CHECK(raw.find(body) == std::string::npos);

  env.revoke({tok});
  require_inactive(env, tok);
}

TEST_CASE("introspect --batch: one JSON line per stdin line, one store for all, exit 1 when any is inactive",
          "[tokens][cli]") {
  Env env;
  std::string a = env.issue({"--format", "opaque", "--client-id", "svc", "--sub", "alice", "--scope", "read"});
  std::string b = env.issue({"--format", "opaque", "--client-id", "svc", "--sub", "bob", "--scope", "read"});
  std::string jwt = env.issue({"--client-id", "svc", "--sub", "carol", "--scope", "read"});
  env.revoke({b});
  // CRLF, blank lines and surrounding spaces are tolerated; garbage is inactive, not an error.
  auto r = env({"introspect", "--batch"}, a + "\r\n\n  " + b + "  \nnot-a-token\n" + jwt + "\n");
  INFO(describe(r));
  CHECK(r.code == 1);
  std::vector<json> lines;
  std::istringstream in(r.out);
  for (std::string line; std::getline(in, line);) lines.push_back(parse_json(line));
  REQUIRE(lines.size() == 4);
  CHECK(lines[0].at("line") == 1);
  CHECK(lines[0].at("active") == true);
  CHECK(lines[0].at("sub") == "alice");
  CHECK(lines[1].at("line") == 3);
  CHECK(lines[1].at("active") == false);
  CHECK(lines[2].at("line") == 4);
  CHECK(lines[2].at("active") == false);
  CHECK(lines[3].at("line") == 5);
  CHECK(lines[3].at("active") == true);
  CHECK(lines[3].at("sub") == "carol");
  // All active: exit 0. Empty input: nothing printed, exit 0.
  auto ok = env({"introspect", "--batch"}, a + "\n" + jwt + "\n");
  CHECK(ok.code == 0);
  CHECK(std::count(ok.out.begin(), ok.out.end(), '\n') == 2);
  auto none = env({"introspect", "--batch"}, "");
  CHECK(none.code == 0);
  CHECK(none.out.empty());
  // Usage errors: a phantom JWT per line, or a token argument as well.
  CHECK(env({"introspect", "--batch", "--jwt"}, a).code == 2);
  auto both = env({"introspect", "--batch", a}, a);
  CHECK(both.code == 2);
  CHECK_THAT(both.err, Contains("stdin"));
}

TEST_CASE("introspect --batch refuses a directory as stdin and reports a read error, never exit 0",
          "[tokens][cli][stdin]") {
  Env env;
  const std::vector<std::string> argv = {"--keystore", env.ks, "--config", env.policy, "--now", k_t0,
                                         "introspect", "--batch"};
  auto dir = tokctl::test::run_with_stdin_path(argv, env.dir.path());
  INFO(describe(dir));
  CHECK(dir.code == 2);
  CHECK(dir.out.empty());
  CHECK_THAT(dir.err, StartsWith("tokctl: error: standard input is a directory"));
  // Reads of /proc/self/mem at offset 0 fail with EIO (the harness opens it in this live process).
  if (::access("/proc/self/mem", R_OK) == 0) {
    auto eio = tokctl::test::run_with_stdin_path(argv, "/proc/self/mem");
    INFO(describe(eio));
    CHECK(eio.code == 2);
    CHECK(eio.out.empty());
    CHECK_THAT(eio.err, StartsWith("tokctl: error: reading standard input: "));
  }
}

TEST_CASE("introspect --batch answers a line over the token limit inactive, without holding it in memory",
          "[tokens][cli][stdin]") {
  Env env;
  std::string a = env.issue({"--format", "opaque", "--client-id", "svc", "--sub", "alice", "--scope", "read"});
  std::string jwt = env.issue({"--client-id", "svc", "--sub", "carol", "--scope", "read"});
  constexpr std::size_t k_huge = 200u << 20;  // 200 MiB without a newline, then one
  std::string input = a + "\n";
  input.append(k_huge, 'a');
  input += "\n" + jwt;
  auto r = tokctl::test::run_with_peak_rss(
      {"--keystore", env.ks, "--config", env.policy, "--now", k_t0, "introspect", "--batch"}, input);
  INFO("exit " << r.code << "\n" << r.out << r.err << "peak RSS " << r.max_rss_kib << " KiB");
  CHECK(r.code == 1);
  CHECK(r.max_rss_kib < 64 * 1024 * tokctl::test::rss_bound_factor());
  std::vector<json> lines;
  std::istringstream in(r.out);
  for (std::string line; std::getline(in, line);) lines.push_back(parse_json(line));
  REQUIRE(lines.size() == 3);
  CHECK(lines[0].at("active") == true);
  CHECK(lines[1] == json{{"active", false}, {"line", 2}});
  CHECK(lines[2].at("line") == 3);
  CHECK(lines[2].at("active") == true);
  CHECK_THAT(r.err, Contains("line 2: token is " + std::to_string(k_huge) + " bytes, over the 262144-byte limit"));
}

TEST_CASE("wrapped token carries only iss/exp/iat/jti and wrapper claims; the rest by introspection",
          "[tokens][cli]") {
  Env env;
  std::string tok = env.issue({"--format", "wrapped", "--client-id", "svc", "--sub", "alice", "--scope", "read"});
  REQUIRE(std::count(tok.begin(), tok.end(), '.') == 2);
  auto claims = jwt_payload(tok);
  std::set<std::string> names;
  for (const auto& [k, v] : claims.items()) names.insert(k);
  CHECK(names == std::set<std::string>{"iss", "exp", "iat", "jti", "tenant"});
  CHECK(claims["tenant"] == "acme");
  CHECK(claims["iss"] == "https://tokens.example.test");

  auto [j, code] = env.introspect(tok);
  CHECK(code == 0);
  require_rfc7662(j, "svc", "alice", "read");
  CHECK(j["jti"] == claims["jti"]);

  env.revoke({tok});
  require_inactive(env, tok);
}

TEST_CASE("jwe access token is a nested JWT that verify decrypts with the recipient key", "[tokens][cli]") {
  Env env;
  std::string tok = env.issue({"--format", "jwe", "--client-id", "svc", "--sub", "alice", "--scope", "read"});
  REQUIRE(std::count(tok.begin(), tok.end(), '.') == 4);
  auto header = jwt_header(tok);
  CHECK(header["cty"] == "JWT");
  CHECK(header.contains("enc"));
  CHECK(tok.find("alice") == std::string::npos);

  auto [v, code] = env.verify(tok, {"--decrypt-key", env.dir.file("recipient.jwk"), "--typ", "at+jwt", "--iss",
                                    "https://tokens.example.test", "--aud", "api-a", "--sub", "alice"});
  INFO(v.dump());
  CHECK(code == 0);
  CHECK(v["valid"] == true);
  CHECK(v["payload"]["scope"] == "read");
  CHECK(v["payload"]["client_id"] == "svc");
  CHECK(v["header"]["typ"] == "at+jwt");
}

// Regression (was a bug): a JWE access token is a locally issued JWT (nested), but introspect answers
// {"active":false} for it (the service only recognises 3-segment JWTs and stores no row for jwe),
// and `revoke JWE` changes nothing ("revoked 0 token(s)"), so the token keeps verifying after it
// was revoked. Issue 4 points 4/5/8: round trip per format, revoke puts a JWT's jti on the deny-list.
TEST_CASE("jwe access token round trip: introspect active, revoke, verify refuses it", "[tokens][cli]") {
  Env env;
  std::string tok = env.issue({"--format", "jwe", "--client-id", "svc", "--sub", "alice", "--scope", "read"});
  auto [j, code] = env.introspect(tok);
  CHECK(code == 0);
  CHECK(j["active"] == true);
  CHECK(j["sub"] == "alice");

  env.revoke({tok});
  require_inactive(env, tok);
  auto [v, vcode] = env.verify(tok, {"--decrypt-key", env.dir.file("recipient.jwk")});
  CHECK(vcode == 1);
  CHECK(has_error(v, "revoked"));
}

TEST_CASE("issue --refresh-token redeems with rotation; reusing the old one revokes the grant", "[tokens][cli]") {
  Env env;
  json first = env.issue_json({"--client-id", "svc", "--sub", "alice", "--scope", "read write", "--with-refresh"});
  std::string refresh = first["refresh_token"];
  // Text mode: the access token, then the new refresh token, each on its own line of stdout.
  auto r = env.at(k_t0_5m, {"issue", "--refresh-token", refresh, "--client-id", "svc", "--scope", "read"});
  INFO(describe(r));
  REQUIRE(r.code == 0);
  auto lines = lines_of(r.out);
  REQUIRE(lines.size() == 2);
  auto [claims, vcode] = env.verify(lines[0], {}, k_t0_5m);
  CHECK(vcode == 0);
  CHECK(claims["payload"]["scope"] == "read");
  CHECK(lines[1] != refresh);
  // The same token from a file, in Bearer form, is the same token: consumed, so this is reuse.
  std::string file = env.dir.file("refresh.txt");
  write_file(file, "Bearer " + refresh + "\n");
  auto reuse = env({"-o", "json", "issue", "--refresh-token", file});
  INFO(describe(reuse));
  CHECK(reuse.code == 1);
  CHECK(parse_json(reuse.out)["error"] == "invalid_grant");
  require_inactive(env, lines[1]);
  CHECK(env.verify(lines[0], {}, k_t0_5m).second == 1);  // the grant is revoked: its JWTs too
  // Flags that describe a new grant do not go with --refresh-token.
  for (const std::vector<std::string>& extra : std::vector<std::vector<std::string>>{
           {"--sub", "x"}, {"--with-refresh"}, {"--count", "2"}, {"--ttl", "5m"}, {"--format", "opaque"}}) {
    std::vector<std::string> args = {"issue", "--refresh-token", lines[1]};
    args.insert(args.end(), extra.begin(), extra.end());
    CHECK(env(args).code == 2);
  }
}

TEST_CASE("refresh token: issued with --with-refresh in the same grant, introspected, revoked", "[tokens][cli]") {
  Env env;
  auto resp = env.issue_json({"--format", "opaque", "--client-id", "svc", "--sub", "alice", "--scope", "read",
                              "--with-refresh"});
  std::string access = resp["access_token"];
  std::string refresh = resp["refresh_token"];
  CHECK(refresh.rfind("tok_", 0) != 0);  // the opaque prefix is for access tokens
  CHECK(refresh != access);

  auto [j, code] = env.introspect(refresh);
  CHECK(code == 0);
  CHECK(j["active"] == true);
  CHECK(j["token_type"] == "refresh_token");
  CHECK(j["client_id"] == "svc");
  CHECK(j["sub"] == "alice");
  CHECK(j["scope"] == "read");
  CHECK(j["exp"] == k_t0_unix + 30 * 86400);

  env.revoke({refresh});
  require_inactive(env, refresh);
  // Only that token: the access token of the grant stays active.
  CHECK(env.introspect(access).second == 0);

  SECTION("--type refresh issues a refresh token on its own") {
    std::string r2 = env.issue({"--type", "refresh", "--client-id", "svc", "--sub", "alice", "--scope", "read"});
    auto [j2, c2] = env.introspect(r2);
    CHECK(c2 == 0);
    CHECK(j2["token_type"] == "refresh_token");
    env.revoke({r2});
    require_inactive(env, r2);
  }
}

// ---- output -------------------------------------------------------------------------------------

TEST_CASE("issue -o json prints the RFC 6749 token response", "[tokens][cli]") {
  Env env;
  auto j = env.issue_json({"--client-id", "svc", "--sub", "alice", "--scope", "read write", "--with-refresh",
                           "--with-id-token"});
  INFO(j.dump());
  CHECK(j["access_token"].is_string());
  CHECK(j["token_type"] == "Bearer");
  CHECK(j["expires_in"] == 900);
  CHECK(j["scope"] == "read write");
  CHECK(j["refresh_token"].is_string());
  CHECK(j["id_token"].is_string());
  CHECK((j["issued_token_type"] == "urn:ietf:params:oauth:token-type:access_token" ||
         j["issued_token_type"] == "urn:ietf:params:oauth:token-type:jwt"));

  auto o = env.issue_json({"--format", "opaque", "--client-id", "svc", "--sub", "alice", "--scope", "read",
                           "--ttl", "5m"});
  CHECK(o["issued_token_type"] == "urn:ietf:params:oauth:token-type:access_token");
  CHECK(o["expires_in"] == 300);
  CHECK(!o.contains("refresh_token"));
  CHECK(!o.contains("id_token"));
}

TEST_CASE("issue --header prints an Authorization header", "[tokens][cli]") {
  Env env;
  auto r = env({"issue", "--client-id", "svc", "--sub", "alice", "--scope", "read", "--header"});
  INFO(describe(r));
  REQUIRE(r.code == 0);
  std::string line = trimmed(r.out);
  REQUIRE(line.rfind("Authorization: Bearer ", 0) == 0);
  std::string token = line.substr(22);
  CHECK(std::count(token.begin(), token.end(), '.') == 2);
  CHECK(env.introspect(token).second == 0);
}

TEST_CASE("issue --with-id-token sets at_hash to the left half of SHA-256 of the access token", "[tokens][cli]") {
  Env env;
  for (const char* format : {"jwt", "opaque"}) {
    INFO(format);
    auto j = env.issue_json({"--format", format, "--client-id", "svc", "--sub", "alice", "--scope", "read",
                             "--with-id-token"});
    std::string access = j["access_token"];
    std::string id = j["id_token"];
    auto claims = jwt_payload(id);
    std::string digest = sha256(access);
    CHECK(claims["at_hash"] == tokctl::b64url_encode(digest.substr(0, 16)));
    CHECK(claims["sub"] == "alice");
    CHECK(claims["iss"] == "https://tokens.example.test");
    CHECK(claims["aud"] == "svc");
    CHECK(claims["exp"] == k_t0_unix + 600);  // tokens.id.ttl
    auto [v, code] = env.verify(id);
    CHECK(code == 0);
  }
}

// ---- scopes -------------------------------------------------------------------------------------

TEST_CASE("unknown or disallowed scopes are refused with invalid_scope", "[tokens][cli]") {
  Env env;
  auto r = env({"issue", "--client-id", "svc", "--sub", "alice", "--scope", "read delete"});
  INFO(describe(r));
  CHECK(r.code == 1);
  CHECK(r.out.empty());
  CHECK_THAT(r.err, Contains("invalid_scope"));

  auto j = env({"-o", "json", "issue", "--client-id", "svc", "--sub", "alice", "--scope", "nope"});
  INFO(describe(j));
  CHECK(j.code == 1);
  CHECK(parse_json(j.out)["error"] == "invalid_scope");

  // Known to the policy, not allowed for the client.
  auto w = env({"issue", "--client-id", "web", "--sub", "alice", "--scope", "write"});
  INFO(describe(w));
  CHECK(w.code == 1);
  CHECK_THAT(w.err, Contains("invalid_scope"));

  // The bare prefix is not a scope of the prefix rule.
  auto p = env({"issue", "--client-id", "svc", "--sub", "alice", "--scope", "video_stream_"});
  INFO(describe(p));
  CHECK(p.code == 1);
  CHECK_THAT(p.err, Contains("invalid_scope"));
}

TEST_CASE("prefix scopes accept any scope starting with the prefix", "[tokens][cli]") {
  Env env;
  std::string jwt = env.issue({"--client-id", "svc", "--sub", "alice", "--scope", "read video_stream_hd video_stream_4k"});
  CHECK(jwt_payload(jwt)["scope"] == "read video_stream_hd video_stream_4k");
  auto [j, code] = env.introspect(jwt);
  CHECK(code == 0);
  CHECK(j["scope"] == "read video_stream_hd video_stream_4k");
}

TEST_CASE("a scope with a TTL expires from introspection ttl after its grant began", "[tokens][cli]") {
  Env env;
  SECTION("opaque token") {
    std::string tok = env.issue({"--format", "opaque", "--client-id", "svc", "--sub", "alice", "--scope",
                                 "read video_stream_hd", "--ttl", "1h"});
    auto [early, c1] = env.introspect(tok, k_t0_5m);
    CHECK(c1 == 0);
    CHECK(early["scope"] == "read video_stream_hd");
    CHECK(!early.contains("expired_scope"));

    auto [late, c2] = env.introspect(tok, k_t0_11m);
    INFO(late.dump());
    CHECK(c2 == 0);
    CHECK(late["active"] == true);
    CHECK(late["scope"] == "read");
    CHECK(late["expired_scope"] == "video_stream_hd");

    // The phantom JWT at t0+11m carries the live scopes only.
    auto ph = env.at(k_t0_11m, {"introspect", tok, "--jwt"});
    INFO(describe(ph));
    REQUIRE(ph.code == 0);
    CHECK(jwt_payload(trimmed(ph.out))["scope"] == "read");
  }
  SECTION("jwt token") {
    std::string jwt = env.issue({"--client-id", "svc", "--sub", "alice", "--scope", "read video_stream_hd", "--ttl", "1h"});
    auto [late, code] = env.introspect(jwt, k_t0_11m);
    INFO(late.dump());
    CHECK(code == 0);
    CHECK(late["scope"] == "read");
    CHECK(late["expired_scope"] == "video_stream_hd");
  }
}

// ---- PPID ---------------------------------------------------------------------------------------

TEST_CASE("pairwise subjects are stable within a sector and differ across sectors", "[tokens][cli]") {
  Env env;
  auto sub_of = [&](const char* client, const char* sub) {
    return jwt_payload(env.issue({"--format", "jwt", "--client-id", client, "--sub", sub, "--scope", "read"}))["sub"]
        .get<std::string>();
  };
  std::string web1 = sub_of("web", "alice");
  std::string web2 = sub_of("web", "alice");
  std::string web_other_client = sub_of("web2", "alice");  // same sector web.example
  std::string partner = sub_of("partner", "alice");
  std::string web_bob = sub_of("web", "bob");
  std::string plain = sub_of("svc", "alice");

  CHECK(web1 == web2);
  CHECK(web1 == web_other_client);
  CHECK(web1 != partner);
  CHECK(web1 != web_bob);
  CHECK(web1 != "alice");
  CHECK(partner != "alice");
  CHECK(plain == "alice");
  CHECK(web1.size() == 43);  // base64url(HMAC-SHA256)
  CHECK(web1.find_first_not_of("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_") == std::string::npos);
  // Stable across later runs too (the per-keystore secret persists).
  CHECK(jwt_payload(env.issue({"--client-id", "web", "--sub", "alice", "--scope", "read"}, k_t0_11m))["sub"] == web1);
}

// ---- phantom JWT --------------------------------------------------------------------------------

TEST_CASE("introspect --jwt gives a phantom JWT that verify accepts against the keystore", "[tokens][cli]") {
  Env env;
  std::string tok = env.issue({"--format", "opaque", "--client-id", "svc", "--sub", "alice", "--scope", "read write"});
  auto ph = env({"introspect", tok, "--jwt"});
  INFO(describe(ph));
  REQUIRE(ph.code == 0);
  std::string phantom = trimmed(ph.out);
  auto v = env({"verify", "-"}, ph.out);
  INFO(describe(v));
  CHECK(v.code == 0);
  auto claims = jwt_payload(phantom);
  CHECK(claims["sub"] == "alice");
  CHECK(claims["client_id"] == "svc");
  CHECK(claims["scope"] == "read write");
  CHECK(claims["tenant"] == "acme");
  CHECK(claims["exp"] == k_t0_unix + 900);
  CHECK(jwt_header(phantom)["typ"] == "at+jwt");

  // The same for a wrapped token; none for a revoked one.
  std::string wrapped = env.issue({"--format", "wrapped", "--client-id", "svc", "--sub", "bob", "--scope", "read"});
  auto pw = env({"introspect", wrapped, "--jwt"});
  INFO(describe(pw));
  REQUIRE(pw.code == 0);
  CHECK(jwt_payload(trimmed(pw.out))["sub"] == "bob");
  CHECK(env({"verify", "-"}, pw.out).code == 0);

  env.revoke({tok});
  auto gone = env({"introspect", tok, "--jwt"});
  CHECK(gone.code == 1);
  CHECK(gone.out.empty());
}

// ---- revocation ---------------------------------------------------------------------------------

TEST_CASE("revoke --grant revokes the access and refresh tokens of the grant", "[tokens][cli]") {
  Env env;
  SECTION("opaque access token") {
    auto j = env.issue_json({"--format", "opaque", "--client-id", "svc", "--sub", "alice", "--scope", "read",
                             "--with-refresh"});
    std::string other = env.issue({"--format", "opaque", "--client-id", "svc", "--sub", "alice", "--scope", "read"});
    env.revoke({j["access_token"], "--grant"});
    require_inactive(env, j["access_token"]);
    require_inactive(env, j["refresh_token"]);
    CHECK(env.introspect(other).second == 0);  // another grant
  }
  SECTION("jwt access token, revoked through its refresh token") {
    auto j = env.issue_json({"--client-id", "svc", "--sub", "alice", "--scope", "read", "--with-refresh"});
    env.revoke({j["refresh_token"], "--grant"});
    require_inactive(env, j["refresh_token"]);
    require_inactive(env, j["access_token"]);
    auto [v, code] = env.verify(j["access_token"]);
    CHECK(code == 1);
    CHECK(has_error(v, "revoked"));
  }
}

TEST_CASE("revoke --client-id C --all and --sub S --all", "[tokens][cli]") {
  Env env;
  auto opaque = [&](const char* client, const char* sub) {
    return env.issue({"--format", "opaque", "--client-id", client, "--sub", sub, "--scope", "read"});
  };
  std::string svc_alice = opaque("svc", "alice");
  std::string svc_bob = opaque("svc", "bob");
  std::string svc_jwt = env.issue({"--client-id", "svc", "--sub", "carol", "--scope", "read"});
  std::string web_alice = opaque("web", "alice");
  std::string web_carol = opaque("web", "carol");

  // --all is required to revoke everything.
  auto no_all = env({"revoke", "--client-id", "svc"});
  CHECK(no_all.code == 2);
  CHECK(env.introspect(svc_alice).second == 0);

  env.revoke({"--client-id", "svc", "--all"});
  require_inactive(env, svc_alice);
  require_inactive(env, svc_bob);
  require_inactive(env, svc_jwt);
  CHECK(env.verify(svc_jwt).second == 1);
  CHECK(env.introspect(web_alice).second == 0);
  CHECK(env.introspect(web_carol).second == 0);

  std::string svc_dave = opaque("svc", "dave");  // issued after: not affected
  CHECK(env.introspect(svc_dave).second == 0);

  env.revoke({"--sub", "carol", "--all"});
  require_inactive(env, web_carol);
  CHECK(env.introspect(web_alice).second == 0);
  CHECK(env.introspect(svc_dave).second == 0);
}

TEST_CASE("revoking is idempotent and unknown tokens are not an error", "[tokens][cli]") {
  Env env;
  std::string tok = env.issue({"--format", "opaque", "--client-id", "svc", "--sub", "alice", "--scope", "read"});
  std::string jwt = env.issue({"--client-id", "svc", "--sub", "alice", "--scope", "read"});
  for (int i = 0; i < 2; ++i) {
    env.revoke({tok});
    env.revoke({jwt});
    env.revoke({tok, "--grant"});
  }
  require_inactive(env, tok);
  require_inactive(env, jwt);
  env.revoke({"tok_unknownunknownunknownunknownunknownunknown"});
  env.revoke({"not-a-token-at-all"});
  // A JWT signed elsewhere: not ours, nothing to deny, still exit 0.
  TempDir other;
  auto add = tokctl::test::run({"--keystore", other.file("ks"), "--now", k_t0, "keys", "add", "--alg", "ES256"});
  REQUIRE(add.code == 0);
  auto foreign = tokctl::test::run({"--keystore", other.file("ks"), "--now", k_t0, "issue", "--sub", "x"});
  INFO(describe(foreign));
  REQUIRE(foreign.code == 0);
  env.revoke({trimmed(foreign.out)});
  auto stdin_revoke = env({"revoke", "-"}, tok + "\n");
  CHECK(stdin_revoke.code == 0);
}

TEST_CASE("a revoked JWT fails verify against the keystore with code revoked", "[tokens][cli]") {
  Env env;
  std::string jwt = env.issue({"--client-id", "svc", "--sub", "alice", "--scope", "read"});
  std::string kept = env.issue({"--client-id", "svc", "--sub", "alice", "--scope", "read"});
  REQUIRE(env.verify(jwt).second == 0);
  env.revoke({jwt});
  auto [v, code] = env.verify(jwt);
  INFO(v.dump());
  CHECK(code == 1);
  CHECK(v["valid"] == false);
  CHECK(has_error(v, "revoked"));
  CHECK(env.verify(kept).second == 0);

  // Text mode names the reason too.
  auto t = env({"verify", jwt});
  CHECK(t.code == 1);
  CHECK_THAT(t.err, Contains("revoked"));

  // --batch consults the deny-list as well.
  auto b = env({"verify", "--batch"}, jwt + "\n" + kept + "\n");
  INFO(describe(b));
  auto rows = lines_of(b.out);
  REQUIRE(rows.size() == 2);
  CHECK(parse_json(rows[0])["valid"] == false);
  CHECK(parse_json(rows[1])["valid"] == true);
}

// Regression (was a bug): `store prune` deletes every grant that has no token rows (prune_grants), including the
// revoked grant of a still-valid JWT access token (JWTs are not stored as rows). A JWT revoked with
// `revoke --client-id C --all` (or `--sub S --all`, or a JWT's `revoke --grant`) is then valid again
// after a prune that runs before the JWT expires. Issue 4 point 5 (revocation) vs point 2 (prune
// deletes *expired* rows).
TEST_CASE("store prune does not resurrect a JWT revoked through its grant", "[tokens][cli]") {
  Env env;
  std::string jwt = env.issue({"--client-id", "svc", "--sub", "alice", "--scope", "read"});
  env.revoke({"--client-id", "svc", "--all"});
  REQUIRE(env.verify(jwt).second == 1);
  auto prune = env({"store", "prune"});  // at t0: nothing has expired
  REQUIRE(prune.code == 0);
  auto [v, code] = env.verify(jwt);
  INFO(v.dump());
  CHECK(code == 1);
  CHECK(has_error(v, "revoked"));
  require_inactive(env, jwt);
}

// ---- split tokens -------------------------------------------------------------------------------

TEST_CASE("split prints the signature segment and --join gives back the JWT", "[tokens][cli]") {
  Env env;
  std::string jwt = env.issue({"--client-id", "svc", "--sub", "alice", "--scope", "read"});
  auto s = env({"split", jwt});
  INFO(describe(s));
  REQUIRE(s.code == 0);
  std::string client = trimmed(s.out);
  CHECK(client == jwt.substr(jwt.rfind('.') + 1));

  auto j = env({"split", "--join", client});
  INFO(describe(j));
  CHECK(j.code == 0);
  CHECK(trimmed(j.out) == jwt);

  auto unknown = env({"split", "--join", "AAAAunknownclientpartAAAA"});
  CHECK(unknown.code == 1);
  CHECK(unknown.out.empty());

  // The gateway part expires with the token.
  auto late = env.at("2026-01-01T00:16:00Z", {"split", "--join", client});
  CHECK(late.code == 1);

  env.revoke({jwt});
  auto after = env({"split", "--join", client});
  INFO(describe(after));
  CHECK(after.code == 1);
  CHECK(after.out.empty());

  // Only JWTs of this keystore can be split.
  auto junk = env({"split", "a.b.c"});
  CHECK(junk.code != 0);
}

TEST_CASE("split --no-store prints client_token, gateway_key and gateway_token", "[tokens][cli]") {
  Env env;
  std::string jwt = env.issue({"--client-id", "svc", "--sub", "alice", "--scope", "read"});
  auto s = env({"split", jwt, "--no-store"});
  INFO(describe(s));
  REQUIRE(s.code == 0);
  auto j = parse_json(s.out);
  std::string client = j["client_token"];
  CHECK(client == jwt.substr(jwt.rfind('.') + 1));
  CHECK(j["gateway_token"] == jwt.substr(0, jwt.rfind('.')));
  CHECK(j["gateway_key"] == tokctl::b64_encode(sha256(client)));
  CHECK(j["gateway_token"].get<std::string>() + "." + client == jwt);
  // Nothing stored: --join does not know it.
  CHECK(env({"split", "--join", client}).code == 1);
}

// ---- store --------------------------------------------------------------------------------------

TEST_CASE("store prune deletes expired rows", "[tokens][cli]") {
  Env env;
  std::vector<std::string> toks;
  for (int i = 0; i < 3; ++i)
    toks.push_back(env.issue({"--format", "opaque", "--client-id", "svc", "--sub", "alice", "--scope", "read"}));
  std::string jwt = env.issue({"--client-id", "svc", "--sub", "alice", "--scope", "read"});
  env.revoke({jwt});  // a deny-list row

  auto none = env({"-o", "json", "store", "prune"});
  INFO(describe(none));
  REQUIRE(none.code == 0);
  for (const auto& t : toks) CHECK(env.introspect(t).second == 0);

  auto r = env.at(k_far_future, {"-o", "json", "store", "prune"});
  INFO(describe(r));
  REQUIRE(r.code == 0);
  CHECK(parse_json(r.out)["deleted"].get<long long>() >= 4);
  // Gone from the store: even back at t0 they are unknown.
  for (const auto& t : toks) require_inactive(env, t);
  sqlite3* db = nullptr;
  REQUIRE(sqlite3_open_v2((env.ks + "/tokens.db").c_str(), &db, SQLITE_OPEN_READONLY, nullptr) == SQLITE_OK);
  sqlite3_stmt* st = nullptr;
  REQUIRE(sqlite3_prepare_v2(db, "SELECT (SELECT count(*) FROM tokens) + (SELECT count(*) FROM denylist)", -1, &st,
                             nullptr) == SQLITE_OK);
  REQUIRE(sqlite3_step(st) == SQLITE_ROW);
  CHECK(sqlite3_column_int(st, 0) == 0);
  sqlite3_finalize(st);
  sqlite3_close(db);
}

// ---- many tokens --------------------------------------------------------------------------------

TEST_CASE("issue --count 50 prints 50 distinct tokens, JSON lines with -o json", "[tokens][cli]") {
  Env env;
  for (const char* format : {"jwt", "opaque", "wrapped"}) {
    INFO(format);
    auto r = env({"issue", "--count", "50", "--format", format, "--client-id", "svc", "--sub", "alice", "--scope", "read"});
    INFO(describe(r));
    REQUIRE(r.code == 0);
    auto lines = lines_of(r.out);
    CHECK(lines.size() == 50);
    CHECK(std::set<std::string>(lines.begin(), lines.end()).size() == 50);
    CHECK(env.introspect(lines.back()).second == 0);
    if (std::string(format) == "opaque") continue;
    // Every JWT and wrapped token of the batch (the first one and the fast path's) verifies, has
    // its own jti, and a wrapped token's row is the one its introspection finds.
    std::set<std::string> jtis;
    for (std::size_t i : {std::size_t{0}, std::size_t{1}, std::size_t{25}, std::size_t{49}}) {
      CAPTURE(i);
      json payload = jwt_payload(lines[i]);
      jtis.insert(payload.at("jti").get<std::string>());
      auto [v, vcode] = env.verify(lines[i], {"--iss", "https://tokens.example.test"});
      CHECK(vcode == 0);
      auto [j, code] = env.introspect(lines[i]);
      CHECK(code == 0);
      CHECK(j.at("jti") == payload.at("jti"));
      CHECK(j.at("sub") == "alice");
      if (std::string(format) == "wrapped") {
        CHECK_FALSE(payload.contains("sub"));  // only iss, exp, iat, jti travel in the wrapper
        CHECK_FALSE(payload.contains("scope"));
      }
    }
    CHECK(jtis.size() == 4);
  }
  auto j = env({"-o", "json", "issue", "--count", "50", "--format", "opaque", "--client-id", "svc", "--sub", "alice",
                "--scope", "read"});
  INFO(describe(j));
  REQUIRE(j.code == 0);
  auto lines = lines_of(j.out);
  REQUIRE(lines.size() == 50);
  std::set<std::string> tokens;
  for (const auto& line : lines) {
    auto o = parse_json(line);
    CHECK(o["token_type"] == "Bearer");
    CHECK(o["scope"] == "read");
    tokens.insert(o["access_token"].get<std::string>());
  }
  CHECK(tokens.size() == 50);
}

// issue --count in chunks (1000, then 2500 at a time), chunk k+1 made while chunk k is stored.
TEST_CASE("issue --count over several chunks: every token printed once, stored, in one grant", "[tokens][cli]") {
  for (const char* format : {"wrapped", "opaque"}) {
    INFO(format);
    Env fresh;
    auto r = fresh({"issue", "--count", "12001", "--format", format, "--client-id", "svc", "--sub", "alice", "--scope",
                    "read"});
    INFO(describe(r));
    REQUIRE(r.code == 0);
    auto lines = lines_of(r.out);
    REQUIRE(lines.size() == 12001);
    CHECK(std::set<std::string>(lines.begin(), lines.end()).size() == 12001);
    for (std::size_t i : {std::size_t{0}, std::size_t{999}, std::size_t{1000}, std::size_t{10999}, std::size_t{11000},
                          std::size_t{12000}}) {
      CAPTURE(i);
      CHECK(fresh.introspect(lines[i]).second == 0);
    }
    sqlite3* db = nullptr;
    REQUIRE(sqlite3_open_v2((fresh.ks + "/tokens.db").c_str(), &db, SQLITE_OPEN_READONLY, nullptr) == SQLITE_OK);
    sqlite3_stmt* st = nullptr;
    REQUIRE(sqlite3_prepare_v2(db, "SELECT count(*), count(DISTINCT grant_id), count(DISTINCT jti) FROM tokens", -1, &st,
                               nullptr) == SQLITE_OK);
    REQUIRE(sqlite3_step(st) == SQLITE_ROW);
    CHECK(sqlite3_column_int(st, 0) == 12001);
    CHECK(sqlite3_column_int(st, 1) == 1);
    CHECK(sqlite3_column_int(st, 2) == 12001);
    sqlite3_finalize(st);
    sqlite3_close(db);
  }
}

// A store write that fails mid-run (the file size limit: EFBIG) stops the run with exit 4; the
// tokens printed are exactly those committed, each active; nothing uncommitted is printed.
TEST_CASE("issue --count stopped by a failing store write prints only committed tokens", "[tokens][cli]") {
  Env env;
  // A 12 MB file limit: the first chunks fit, a later one does not (about 20,000 tokens in).
  auto r = tokctl::test::run_program(
      {"/bin/sh", "-c", "ulimit -f 12000; exec \"$0\" \"$@\"", TOKCTL_BINARY, "--keystore", env.ks, "--config",
       env.policy, "--now", k_t0, "issue", "--count", "30000", "--format", "opaque", "--client-id", "svc", "--sub",
       "alice", "--scope", "read"});
  INFO(describe(r));
  CHECK(r.code == 4);
  CHECK_THAT(r.err, Contains("tokctl: error:"));
  auto lines = lines_of(r.out);
  CHECK(lines.size() < 30000);
  CHECK(lines.size() >= 1000);
  CHECK((lines.size() - 1000) % 2500 == 0);  // whole chunks only
  for (std::size_t i = 0; i < lines.size(); i += 499) {
    CAPTURE(i);
    CHECK(env.introspect(lines[i]).second == 0);
  }
  sqlite3* db = nullptr;
  REQUIRE(sqlite3_open_v2((env.ks + "/tokens.db").c_str(), &db, SQLITE_OPEN_READONLY, nullptr) == SQLITE_OK);
  sqlite3_stmt* st = nullptr;
  REQUIRE(sqlite3_prepare_v2(db, "SELECT count(*) FROM tokens", -1, &st, nullptr) == SQLITE_OK);
  REQUIRE(sqlite3_step(st) == SQLITE_ROW);
  // Committed and not printed would be a token nobody holds; printed and not committed, a lie.
  CHECK(sqlite3_column_int(st, 0) >= static_cast<int>(lines.size()));
  sqlite3_finalize(st);
  sqlite3_close(db);
}

TEST_CASE("four processes issuing 500 opaque tokens each lose no row and never see a locked database",
          "[tokens][cli][concurrency]") {
  Env env;
  constexpr int k_procs = 4;
  constexpr int k_each = 500;
  std::vector<std::vector<std::string>> args(k_procs);
  std::vector<std::vector<char*>> argv(k_procs);
  for (int i = 0; i < k_procs; ++i) {
    args[i] = {TOKCTL_BINARY, "--keystore", env.ks, "--config", env.policy, "--now", k_t0, "issue",
               "--count", std::to_string(k_each), "--format", "opaque", "--client-id", "svc",
               "--sub", "load" + std::to_string(i), "--scope", "read"};
    for (auto& a : args[i]) argv[i].push_back(a.data());
    argv[i].push_back(nullptr);
  }
  std::map<pid_t, int> running;
  for (int i = 0; i < k_procs; ++i) {
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    std::string out = env.dir.file("out" + std::to_string(i));
    std::string err = env.dir.file("err" + std::to_string(i));
    posix_spawn_file_actions_addopen(&fa, 1, out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    posix_spawn_file_actions_addopen(&fa, 2, err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    pid_t pid = -1;
    int rc = posix_spawn(&pid, TOKCTL_BINARY, &fa, nullptr, argv[i].data(), environ);
    posix_spawn_file_actions_destroy(&fa);
    REQUIRE(rc == 0);
    running[pid] = i;
  }
  std::vector<int> codes(k_procs, -1);
  while (!running.empty()) {
    int status = 0;
    pid_t pid = ::waitpid(-1, &status, 0);
    if (pid < 0 && errno == EINTR) continue;
    REQUIRE(pid > 0);
    auto it = running.find(pid);
    if (it == running.end()) continue;
    codes[it->second] = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    running.erase(it);
  }
  std::set<std::string> all;
  std::vector<std::string> sample;
  for (int i = 0; i < k_procs; ++i) {
    std::string err = read_file(env.dir.file("err" + std::to_string(i)));
    INFO("process " << i << " stderr: " << err);
    CHECK(codes[i] == 0);
    CHECK(err.find("database is locked") == std::string::npos);
    CHECK(err.find("busy") == std::string::npos);
    auto lines = lines_of(read_file(env.dir.file("out" + std::to_string(i))));
    CHECK(lines.size() == static_cast<std::size_t>(k_each));
    all.insert(lines.begin(), lines.end());
    if (!lines.empty()) {
      sample.push_back(lines.front());
      sample.push_back(lines.back());
    }
  }
  CHECK(all.size() == static_cast<std::size_t>(k_procs * k_each));

  // Every token has its row (by hash).
  sqlite3* db = nullptr;
  REQUIRE(sqlite3_open_v2((env.ks + "/tokens.db").c_str(), &db, SQLITE_OPEN_READONLY, nullptr) == SQLITE_OK);
  sqlite3_stmt* count = nullptr;
  REQUIRE(sqlite3_prepare_v2(db, "SELECT count(*) FROM tokens WHERE client_id = 'svc' AND kind = 'access'", -1, &count,
                             nullptr) == SQLITE_OK);
  REQUIRE(sqlite3_step(count) == SQLITE_ROW);
  CHECK(sqlite3_column_int(count, 0) == k_procs * k_each);
  sqlite3_finalize(count);
  sqlite3_stmt* find = nullptr;
  REQUIRE(sqlite3_prepare_v2(db, "SELECT count(*) FROM tokens WHERE key = ?1", -1, &find, nullptr) == SQLITE_OK);
  int found = 0;
  for (const auto& t : all) {
    std::string key = *tokctl::b64url_decode(t.substr(t.size() - 8)) + sha256(t).substr(0, 26);
    sqlite3_reset(find);
    sqlite3_bind_blob(find, 1, key.data(), static_cast<int>(key.size()), SQLITE_TRANSIENT);
    REQUIRE(sqlite3_step(find) == SQLITE_ROW);
    found += sqlite3_column_int(find, 0);
  }
  sqlite3_finalize(find);
  sqlite3_close(db);
  CHECK(found == k_procs * k_each);
  for (const auto& t : sample) CHECK(env.introspect(t).second == 0);
}

// ---- issue 7 ------------------------------------------------------------------------------------

namespace {

long long denylist_rows(const Env& env) {
  sqlite3* db = nullptr;
  REQUIRE(sqlite3_open_v2((env.ks + "/tokens.db").c_str(), &db, SQLITE_OPEN_READONLY, nullptr) == SQLITE_OK);
  sqlite3_stmt* st = nullptr;
  REQUIRE(sqlite3_prepare_v2(db, "SELECT (SELECT count(*) FROM denylist) * 1000 + (SELECT count(*) FROM grants WHERE "
                                 "revoked = 1) * 10 + (SELECT count(*) FROM tokens WHERE revoked = 1)",
                             -1, &st, nullptr) == SQLITE_OK);
  REQUIRE(sqlite3_step(st) == SQLITE_ROW);
  long long n = sqlite3_column_int64(st, 0);
  sqlite3_finalize(st);
  sqlite3_close(db);
  return n;
}

// `tokctl sign` with the keystore's active key: a JWT the keystore vouches for, with any claims.
std::string keystore_signed(const Env& env, const std::vector<std::string>& claims, const std::string& typ = "at+jwt") {
  std::vector<std::string> args = {"sign", "--typ", typ};
  for (const auto& c : claims) {
    args.push_back("--claim");
    args.push_back(c);
  }
  auto r = env(args);
  INFO(describe(r));
  REQUIRE(r.code == 0);
  return trimmed(r.out);
}

}  // namespace

// Point 2 through the CLI: a forgery carrying a real token's jti and sid changes nothing in the
// store, and the real token still verifies afterwards.
TEST_CASE("revoke of a forged JWT (bad signature, alg not allowed) leaves the store untouched", "[tokens][cli][attack]") {
  Env env;
  std::string jwt = env.issue({"--client-id", "svc", "--sub", "alice", "--scope", "read"});
  json claims = jwt_payload(jwt);
  const long long before = denylist_rows(env);

  // Valid claims under another token's signature.
  std::string other = env.issue({"--client-id", "svc", "--sub", "mallory", "--scope", "read"});
  std::string bad_sig = jwt.substr(0, jwt.rfind('.')) + other.substr(other.rfind('.'));
  // An alg the keystore key does not allow (HS256), under the keystore key's kid. (An unknown
  // crit with a good signature is covered by service_test: `sign` refuses to make one.)
  auto gen = tokctl::test::run({"keys", "generate", "--alg", "HS256", "--out", env.dir.file("hs.jwk")});
  INFO(describe(gen));
  REQUIRE(gen.code == 0);
  std::vector<std::string> hs_args = {"sign", "--key", env.dir.file("hs.jwk"), "--alg", "HS256", "--kid",
                                      jwt_header(jwt)["kid"].get<std::string>(), "--typ", "at+jwt"};
  for (auto it = claims.begin(); it != claims.end(); ++it) {
    hs_args.push_back("--claim");
    hs_args.push_back(it.key() + "=" + it.value().dump());
  }
  auto hs = env(hs_args);
  INFO(describe(hs));
  REQUIRE(hs.code == 0);
  for (const std::string& forged : {bad_sig, trimmed(hs.out)}) {
    for (const std::vector<std::string>& extra : {std::vector<std::string>{}, std::vector<std::string>{"--grant"}}) {
      std::vector<std::string> args = {"-o", "json", "revoke", forged};
      args.insert(args.end(), extra.begin(), extra.end());
      auto r = env(args);
      INFO(describe(r));
      CHECK(r.code == 0);
      CHECK(parse_json(r.out)["revoked"] == 0);
    }
    CHECK(env({"split", forged}).code == 1);
    CHECK(env({"introspect", forged}).code == 1);
    CHECK(env({"introspect", forged, "--jwt"}).code == 1);
  }
  CHECK(denylist_rows(env) == before);
  CHECK(env.verify(jwt).second == 0);
  CHECK(env.introspect(jwt).second == 0);
}

// Point 3: tokens the keystore signed (tokctl sign) whose claims have the wrong JSON type never
// crash revoke, split or introspect: the exit code is 0, 1 or 3, never a signal or 70.
TEST_CASE("revoke, split and introspect survive keystore-signed JWTs with wrong-typed claims", "[tokens][cli][attack]") {
  Env env;
  const std::vector<std::string> base = {"iss=https://tokens.example.test", "sub=alice", "client_id=svc", "aud=api-a",
                                         "scope=read", "jti=base-jti", "exp=" + std::to_string(k_t0_unix + 600)};
  for (const char* name : {"jti", "sid", "client_id", "sub", "exp", "scope", "aud"}) {
    for (const char* value : {"42", "[1,2]", "{\"a\":1}", "null", "1e300", "true"}) {
      std::vector<std::string> claims;
      for (const auto& c : base)
        if (c.rfind(std::string(name) + "=", 0) != 0) claims.push_back(c);
      claims.push_back(std::string(name) + "=" + value);
      std::string t = keystore_signed(env, claims);
      for (const std::vector<std::string>& cmd :
           {std::vector<std::string>{"revoke", t}, {"revoke", t, "--grant"}, {"split", t}, {"introspect", t},
            {"introspect", t, "--jwt"}}) {
        auto r = env(cmd);
        INFO(name << "=" << value << " " << cmd[0] << "\n" << describe(r));
        CHECK((r.code == 0 || r.code == 1 || r.code == 3));
      }
    }
  }
}

TEST_CASE("issue --claim with deeply nested JSON is refused, not a crash", "[tokens][cli][attack]") {
  Env env;
  std::string deep = std::string(60000, '[') + std::string(60000, ']');
  auto r = env({"issue", "--sub", "alice", "--claim", "x=" + deep});
  INFO(r.code << " " << r.err.substr(0, 300));
  CHECK(r.code == 3);
  CHECK_THAT(r.err, Contains("--claim x"));
  auto nested = env({"issue", "--sub", "alice", "--claim", "y=" + std::string(100, '[') + std::string(100, ']')});
  INFO(describe(nested));
  CHECK(nested.code == 3);
  CHECK_THAT(nested.err, Contains("nesting"));
  // Not JSON at all: the text itself, as before.
  auto text = env.issue({"--sub", "alice", "--claim", "note=[not json"});
  CHECK(jwt_payload(text)["note"] == "[not json");
}

// Point 5 through the CLI.
TEST_CASE("phantom JWTs: refused for refresh and ID tokens, and revoked with their source", "[tokens][cli][phantom]") {
  Env env;
  auto j = env.issue_json({"--format", "opaque", "--client-id", "svc", "--sub", "alice", "--scope", "read",
                           "--with-refresh", "--with-id-token"});
  for (const char* kind : {"refresh_token", "id_token"}) {
    auto r = env({"introspect", j[kind].get<std::string>(), "--jwt"});
    INFO(describe(r));
    CHECK(r.code == 1);
    CHECK(r.out.empty());
    CHECK_THAT(r.err, Contains("only minted for access tokens"));
  }
  auto ph = env.at(k_t0_5m, {"introspect", j["access_token"], "--jwt"});
  INFO(describe(ph));
  REQUIRE(ph.code == 0);
  const std::string phantom = trimmed(ph.out);
  auto c = jwt_payload(phantom);
  CHECK(c["exp"] == k_t0_unix + 15 * 60);  // the source's exp, not 5m + 15m
  CHECK(c["iat"] == k_t0_unix + 5 * 60);
  REQUIRE(env.verify(phantom, {}, k_t0_5m).second == 0);

  SECTION("revoking the source token") {
    env.revoke({j["access_token"]});
    auto [v, code] = env.verify(phantom, {}, k_t0_5m);
    CHECK(code == 1);
    CHECK(has_error(v, "revoked"));
  }
  SECTION("revoking the grant through the refresh token") {
    env.revoke({j["refresh_token"], "--grant"});
    auto [v, code] = env.verify(phantom, {}, k_t0_5m);
    CHECK(code == 1);
    CHECK(has_error(v, "revoked"));
  }
  SECTION("revoking the subject") {
    env.revoke({"--sub", "alice", "--all"});
    CHECK(env.verify(phantom, {}, k_t0_5m).second == 1);
  }
}

// Point 11.
TEST_CASE("refresh and ID tokens go to stdout in every output mode", "[tokens][cli]") {
  Env env;
  const std::vector<std::string> base = {"issue", "--client-id", "svc", "--sub", "alice", "--scope", "read",
                                         "--with-refresh", "--with-id-token"};
  for (const std::vector<std::string>& mode : {std::vector<std::string>{}, {"-q"}, {"--header"}}) {
    std::vector<std::string> args = mode.size() && mode[0] == "-q" ? mode : std::vector<std::string>{};
    args.insert(args.end(), base.begin(), base.end());
    if (mode.size() && mode[0] == "--header") args.push_back("--header");
    auto r = env(args);
    INFO(describe(r));
    REQUIRE(r.code == 0);
    auto lines = lines_of(r.out);
    REQUIRE(lines.size() == 3);
    CHECK(std::count(lines[0].begin(), lines[0].end(), '.') == 2);   // the access JWT
    CHECK(lines[1].find('.') == std::string::npos);                   // the opaque refresh token
    CHECK(jwt_header(lines[2])["typ"] == "JWT");                      // the ID token
    CHECK(jwt_payload(lines[2])["aud"] == "svc");
    CHECK(r.err.find(lines[1]) == std::string::npos);
    CHECK(env.introspect(lines[1]).second == 0);
  }
  auto many = env({"-q", "issue", "--count", "3", "--client-id", "svc", "--sub", "alice", "--scope", "read",
                   "--with-refresh"});
  INFO(describe(many));
  REQUIRE(many.code == 0);
  auto lines = lines_of(many.out);
  REQUIRE(lines.size() == 6);
  for (std::size_t i = 1; i < 6; i += 2) CHECK(env.introspect(lines[i]).first["token_type"] == "refresh_token");
  CHECK(many.err.empty());
  auto json_lines = env({"-o", "json", "issue", "--count", "2", "--client-id", "svc", "--sub", "alice", "--with-refresh"});
  REQUIRE(json_lines.code == 0);
  for (const auto& l : lines_of(json_lines.out)) CHECK(parse_json(l).contains("refresh_token"));
}

TEST_CASE("ID tokens carry aud = client_id, also without --client-id", "[tokens][cli]") {
  Env env;
  auto j = env.issue_json({"--sub", "alice", "--with-id-token"});
  CHECK(jwt_payload(j["id_token"])["aud"] == "tokctl");
  CHECK(jwt_payload(j["access_token"])["client_id"] == "tokctl");
  auto id = env.issue({"--type", "id", "--client-id", "web", "--sub", "alice"});
  CHECK(jwt_payload(id)["aud"] == "web");
}

TEST_CASE("issue --ttl above tokens.max_lifetime is a usage error", "[tokens][cli]") {
  Env env;
  auto r = env({"issue", "--sub", "alice", "--ttl", "48h"});
  INFO(describe(r));
  CHECK(r.code == 2);
  CHECK(r.out.empty());
  CHECK_THAT(r.err, Contains("max_lifetime (1d)"));
  CHECK_THAT(r.err, Contains("error: --ttl: the requested lifetime 2d"));  // the CLI names its flag
  CHECK(env({"issue", "--sub", "alice", "--ttl", "24h"}).code == 0);
  CHECK(env({"issue", "--type", "refresh", "--sub", "alice", "--ttl", "48h"}).code == 0);  // refresh tokens may
}

// Point 12.
TEST_CASE("revoke --sub --all counts every token, pairwise subjects and JWTs included", "[tokens][cli]") {
  Env env;
  env.issue({"--client-id", "svc", "--sub", "alice", "--scope", "read"});                       // JWT
  env.issue({"--format", "opaque", "--client-id", "svc", "--sub", "alice", "--scope", "read"});  // row
  std::string pairwise = env.issue({"--client-id", "web", "--sub", "alice", "--scope", "read"});      // JWT, PPID
  std::string pairwise_opaque =
      env.issue({"--format", "opaque", "--client-id", "partner", "--sub", "alice", "--scope", "read"});  // row, PPID
  std::string bob = env.issue({"--client-id", "svc", "--sub", "bob", "--scope", "read"});
  auto r = env({"-o", "json", "revoke", "--sub", "alice", "--all"});
  INFO(describe(r));
  REQUIRE(r.code == 0);
  CHECK(parse_json(r.out)["revoked"] == 4);
  CHECK(env.verify(pairwise).second == 1);
  require_inactive(env, pairwise_opaque);
  CHECK(env.verify(bob).second == 0);
  auto text = env({"revoke", "--sub", "alice", "--all"});
  CHECK_THAT(text.err, Contains("revoked 0 token(s)"));
  auto c = env({"revoke", "--client-id", "svc", "--all"});
  CHECK_THAT(c.err, Contains("revoked 1 token(s)"));  // bob's JWT
}
