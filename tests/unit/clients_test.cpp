// The client model (issue 8 point 7): secret hashes (SHA-256 for generated secrets, PBKDF2 for
// human ones) checked in constant time, client authentication that does not reveal which clients
// exist, grant types, the client settings of the policy (grants, jwks, tls_client_auth, auth
// method), and `clients add` writing a client into a policy file without disturbing the rest.

#include <tokctl/tokens/clients.hpp>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <sys/stat.h>

#include <string>
#include <thread>
#include <vector>

#include "support/keys.hpp"
#include "support/run.hpp"

using nlohmann::json;
using tokctl::ErrorCode;
using tokctl::OAuthCode;
using namespace tokctl::tokens;
using tokctl::test::read_file;
using tokctl::test::run;
using tokctl::test::TempDir;
using tokctl::test::write_file;
using Catch::Matchers::Contains;

namespace {

constexpr const char* k_policy = R"(# The team's policy: comments and layout must survive clients add.
issuer: https://tokens.example.test   # where tokens come from
scopes:
  - name: read
  - name: write
clients:
    # billing runs nightly
    billing: {scopes: [read]}
exchange: []
)";

PolicyCheck check_text(TempDir& dir, const std::string& text) {
  write_file(dir.file("p.yaml"), text);
  return check_policy(dir.file("p.yaml"));
}

std::string problems_of(const PolicyCheck& c) {
  std::string all;
  for (const auto& p : c.problems) all += p + "\n";
  return all;
}

}  // namespace

TEST_CASE("client secrets: SHA-256 for generated ones, PBKDF2 for chosen ones, nothing else matches",
          "[clients]") {
  const std::string secret = generate_client_secret();
  CHECK(secret.size() == 43);
  CHECK(generate_client_secret() != secret);
  const std::string h = hash_generated_secret(secret);
  CHECK(h.rfind("sha256:", 0) == 0);
  CHECK(h.size() == 7 + 64);
  CHECK(valid_secret_hash(h));
  CHECK(secret_matches(h, secret));
  CHECK_FALSE(secret_matches(h, secret + "x"));
  CHECK_FALSE(secret_matches(h, ""));

  auto p = hash_human_secret("correct horse battery staple", 1000);
  REQUIRE(p);
  CHECK(p->rfind("pbkdf2-sha256:1000:", 0) == 0);
  CHECK(valid_secret_hash(*p));
  CHECK(secret_matches(*p, "correct horse battery staple"));
  CHECK_FALSE(secret_matches(*p, "correct horse battery stapler"));
  auto again = hash_human_secret("correct horse battery staple", 1000);
  REQUIRE(again);
  CHECK(*again != *p);  // a fresh salt each time

  CHECK_FALSE(hash_human_secret("x", 999));
  CHECK(hash_human_secret("x", 999).error().code == ErrorCode::usage);
  // Regression (review): no upper bound; a billion iterations ran for minutes before a refusal.
  auto huge = hash_human_secret("x", 1'000'000'000);
  REQUIRE_FALSE(huge);
  CHECK(huge.error().code == ErrorCode::usage);
  CHECK_THAT(huge.error().message, Catch::Contains("10000000"));
  CHECK_FALSE(hash_human_secret("", 1000));

  // Malformed hashes are invalid and match nothing, not even what they were made from.
  const std::string salt = p->substr(p->find(':', 19) + 1);
  for (const std::string& bad : {std::string("md5:abc"), "sha256:" + std::string(63, 'a'),
                                "sha256:" + std::string(64, 'g'), std::string("pbkdf2-sha256:999:") + salt,
                                std::string("pbkdf2-sha256:10000001:") + salt,
                                std::string("pbkdf2-sha256:x:") + salt, std::string("pbkdf2-sha256:1000:AAAA:") +
                                    std::string(43, 'A'), std::string("pbkdf2-sha256:1000"), std::string()}) {
    CAPTURE(bad);
    CHECK_FALSE(valid_secret_hash(bad));
    CHECK_FALSE(secret_matches(bad, ""));
  }
}

TEST_CASE("client authentication gives one answer for unknown clients, missing and wrong secrets",
          "[clients]") {
  Policy policy;
  ClientPolicy a;
  a.id = "a";
  const std::string secret = generate_client_secret();
  a.secret_hash = hash_generated_secret(secret);
  policy.clients["a"] = a;
  ClientPolicy open;
  open.id = "open";  // no secret: cannot authenticate with one
  policy.clients["open"] = open;

  auto ok = authenticate_client(policy, "a", secret);
  REQUIRE(ok);
  CHECK((*ok)->id == "a");
  for (auto [id, s] : {std::pair<std::string, std::string>{"a", "wrong"}, {"a", ""}, {"nobody", secret},
                       {"open", ""}, {"open", "anything"}}) {
    CAPTURE(id, s);
    auto r = authenticate_client(policy, id, s);
    REQUIRE_FALSE(r);
    CHECK(r.error().code == ErrorCode::invalid_token);
    CHECK(r.error().oauth == OAuthCode::invalid_client);
    CHECK(r.error().message == "client authentication failed");
  }
}

TEST_CASE("grant types: client_credentials and refresh_token by default, others when listed", "[clients]") {
  CHECK(grant_type("token-exchange") == k_grant_token_exchange);
  CHECK(grant_type("jwt_bearer") == k_grant_jwt_bearer);
  CHECK(grant_type(k_grant_jwt_bearer) == k_grant_jwt_bearer);
  CHECK(grant_type("password").empty());

  ClientPolicy c;
  c.id = "c";
  CHECK(check_grant(c, "client_credentials"));
  CHECK(check_grant(c, "refresh_token"));
  auto refused = check_grant(c, k_grant_token_exchange);
  REQUIRE_FALSE(refused);
  CHECK(refused.error().oauth == OAuthCode::unauthorized_client);
  auto unknown = check_grant(c, "password");
  REQUIRE_FALSE(unknown);
  CHECK(unknown.error().oauth == OAuthCode::unsupported_grant_type);
  c.grants = std::vector<std::string>{k_grant_token_exchange};
  CHECK(check_grant(c, "token_exchange"));
  CHECK_FALSE(check_grant(c, "client_credentials"));
  c.grants = std::vector<std::string>{};  // `grants: []`: none at all, not the defaults
  for (const char* g : {"client_credentials", "refresh_token", "token_exchange", "jwt_bearer"}) {
    auto r = check_grant(c, g);
    REQUIRE_FALSE(r);
    CHECK(r.error().oauth == OAuthCode::unauthorized_client);
  }
}

TEST_CASE("the policy reads grants, jwks, tls_client_auth and the auth method of clients", "[clients][policy]") {
  TempDir dir;
  json pub = tokctl::test::test_key("p256").to_json(tokctl::jose::KeyPart::public_only);
  pub["kid"] = "c1";
  write_file(dir.file("client.jwks"), json{{"keys", json::array({pub})}}.dump());
  auto c = check_text(dir, std::string(R"(issuer: https://tokens.example.test
clients:
  svc:
    grants: [client_credentials, token-exchange, urn:ietf:params:oauth:grant-type:jwt-bearer]
    jwks: client.jwks
    token_endpoint_auth_method: private_key_jwt
  inline:
    jwks: {keys: [)") + pub.dump() + R"(]}
  mtls:
    tls_client_auth: {subject_dn: "CN=svc,O=Example", san_dns: [svc.example]}
    token_endpoint_auth_method: tls_client_auth
  gateway: {grants: []}
)");
  INFO(problems_of(c));
  REQUIRE(c.problems.empty());
  // An empty list is kept as given (no grants); an absent one means the defaults.
  CHECK(c.policy.client("gateway")->grants == std::vector<std::string>{});
  CHECK_FALSE(c.policy.client("inline")->grants.has_value());
  const ClientPolicy& svc = *c.policy.client("svc");
  CHECK(svc.grants == std::vector<std::string>{k_grant_client_credentials, k_grant_token_exchange, k_grant_jwt_bearer});
  REQUIRE(svc.jwks);
  REQUIRE(svc.jwks->keys.size() == 1);
  CHECK(svc.jwks->keys[0].kid() == "c1");
  CHECK(svc.auth_method == "private_key_jwt");
  REQUIRE(c.policy.client("inline")->jwks);
  const ClientPolicy& mtls = *c.policy.client("mtls");
  CHECK(mtls.tls.subject_dn == "CN=svc,O=Example");
  CHECK(mtls.tls.san_dns == std::vector<std::string>{"svc.example"});

  json priv = tokctl::test::test_key("p256").to_json(tokctl::jose::KeyPart::with_private);
  struct Bad {
    std::string yaml;
    std::string problem;
  };
  const Bad bad[] = {
      {"  x: {grants: [password]}", "'password' is not one of"},
      {"  x: {jwks: {keys: [" + priv.dump() + "]}}", "private or secret key"},
      {"  x: {jwks: missing.jwks}", "missing.jwks"},
      {"  x: {jwks: {keys: []}}", "no usable key"},
      {"  x: {tls_client_auth: {}}", "names no subject_dn or SAN"},
      {"  x: {tls_client_auth: {cn: x}}", "unknown key 'cn'"},
      {"  x: {tls_client_certificate_bound_access_tokens: [yes]}", "must be true or false"},
      {"  x: {tls_client_certificate_bound_access_tokens: {a: 1}}", "must be true or false"},
      {"  x: {tls_client_certificate_bound_access_tokens: maybe}", "must be true or false"},
      {"  x: {token_endpoint_auth_method: client_secret_basic}", "has no secret_hash"},
      {"  x: {token_endpoint_auth_method: private_key_jwt}", "has no jwks"},
      {"  x: {token_endpoint_auth_method: tls_client_auth}", "no tls_client_auth subject or SAN"},
      {"  x: {token_endpoint_auth_method: magic}", "is not one of client_secret_basic"},
      {"  x: {secret_hash: \"pbkdf2-sha256:10:AAAAAAAAAAA:" + std::string(43, 'A') + "\"}", "secret_hash must be"},
      {"  x: {secret_hash: \"sha256:" + std::string(64, 'a') + "\", token_endpoint_auth_method: none}", "uses none"},
  };
  for (const auto& b : bad) {
    CAPTURE(b.yaml);
    auto r = check_text(dir, "clients:\n" + b.yaml + "\n");
    CHECK_THAT(problems_of(r), Contains(b.problem));
  }
}

TEST_CASE("clients add inserts one line, keeps the rest of the file, and the secret authenticates",
          "[clients]") {
  TempDir dir;
  const std::string path = dir.file("tokctl.yaml");
  write_file(path, k_policy);
  NewClient nc;
  nc.id = "web";
  nc.scopes = {"read", "write"};
  nc.grants = {"client_credentials", "token_exchange", "client_credentials"};  // a repeat is written once
  nc.audiences = {"api-a"};
  auto added = add_client(path, nc);
  REQUIRE(added);
  CHECK(added->generated);
  const std::string text = read_file(path);
  // Every original line is still there, in order, and exactly one line was added.
  std::vector<std::string> before, after;
  {
    std::string s = k_policy;
    for (std::size_t p = 0, n; (n = s.find('\n', p)) != std::string::npos; p = n + 1) before.push_back(s.substr(p, n - p));
    for (std::size_t p = 0, n; (n = text.find('\n', p)) != std::string::npos; p = n + 1) after.push_back(text.substr(p, n - p));
  }
  REQUIRE(after.size() == before.size() + 1);
  std::size_t extra = 0;
  for (std::size_t i = 0, j = 0; i < after.size(); ++i) {
    if (j < before.size() && after[i] == before[j]) ++j;
    else ++extra;
  }
  CHECK(extra == 1);
  CHECK_THAT(text, Contains("    web: {secret_hash: \"sha256:"));  // the block's own indentation
  CHECK_THAT(text, !Contains(added->secret));                       // only the hash is written

  auto policy = load_policy(path);
  REQUIRE(policy);
  const ClientPolicy* web = policy->client("web");
  REQUIRE(web);
  CHECK(web->scopes == std::vector<std::string>{"read", "write"});
  CHECK(web->grants == std::vector<std::string>{k_grant_client_credentials, k_grant_token_exchange});
  CHECK(web->audiences == std::vector<std::string>{"api-a"});
  CHECK(authenticate_client(*policy, "web", added->secret));
  CHECK_FALSE(authenticate_client(*policy, "web", added->secret + "x"));
  CHECK(policy->client("billing"));

  SECTION("audiences and scopes that YAML would read as numbers or booleans stay text") {
    NewClient odd;
    odd.id = "odd";
    odd.audiences = {"5", "true", "null"};
    REQUIRE(add_client(path, odd));
    auto reloaded = load_policy(path);
    REQUIRE(reloaded);
    CHECK(reloaded->client("odd")->audiences == std::vector<std::string>{"5", "true", "null"});
  }
  SECTION("grant none writes grants: [] (no grant), alone only") {
    NewClient gw;
    gw.id = "gateway";
    gw.grants = {"none", "none"};
    REQUIRE(add_client(path, gw));
    CHECK_THAT(read_file(path), Contains("gateway: {secret_hash: \"sha256:"));
    CHECK_THAT(read_file(path), Contains(", grants: []}"));
    auto reloaded = load_policy(path);
    REQUIRE(reloaded);
    CHECK(reloaded->client("gateway")->grants == std::vector<std::string>{});
    CHECK_FALSE(check_grant(*reloaded->client("gateway"), "client_credentials"));
    const std::string kept = read_file(path);
    NewClient mixed;
    mixed.id = "mixed";
    mixed.grants = {"none", "client_credentials"};
    auto m = add_client(path, mixed);
    REQUIRE_FALSE(m);
    CHECK(m.error().code == ErrorCode::usage);
    CHECK(read_file(path) == kept);
  }
  SECTION("ids with Unicode spaces or controls, or over 255 bytes, are refused (review regression)") {
    const std::string kept = read_file(path);
    for (const std::string& id : {std::string("a\xc2\x85" "b"), std::string("a\xc2\xa0" "b"), std::string("a\xe2\x80\xa8" "b"),
                                  std::string("\xef\xbb\xbf" "bom"), std::string("a\xe2\x80\xae" "b"),
                                  std::string("a\xe2\x80\x8b" "b"), std::string(256, 'a'), std::string("a b")}) {
      CAPTURE(id);
      NewClient odd;
      odd.id = id;
      auto r = add_client(path, odd);
      REQUIRE_FALSE(r);
      CHECK(r.error().code == ErrorCode::usage);
    }
    CHECK(read_file(path) == kept);
    NewClient accented;
    accented.id = "caf\xc3\xa9-" + std::string(240, 'x');  // 246 bytes, letters only
    CHECK(add_client(path, accented));
  }
  SECTION("refusals write nothing") {
    const std::string kept = read_file(path);
    NewClient dup;
    dup.id = "web";
    auto d = add_client(path, dup);
    REQUIRE_FALSE(d);
    CHECK(d.error().code == ErrorCode::usage);
    CHECK_THAT(d.error().message, Contains("already exists"));
    NewClient bad_scope;
    bad_scope.id = "other";
    bad_scope.scopes = {"delete"};
    auto s = add_client(path, bad_scope);
    REQUIRE_FALSE(s);
    CHECK(s.error().code == ErrorCode::usage);
    CHECK_THAT(s.error().message, Contains("delete"));
    CHECK_THAT(s.error().message, Contains(path));  // problems name the real file
    NewClient bad_grant;
    bad_grant.id = "other";
    bad_grant.grants = {"password"};
    CHECK_FALSE(add_client(path, bad_grant));
    NewClient spaced;
    spaced.id = "two words";
    CHECK_FALSE(add_client(path, spaced));
    CHECK(read_file(path) == kept);
  }
  SECTION("a chosen secret is stored as PBKDF2 and never printed back") {
    NewClient human;
    human.id = "legacy";
    human.secret = "a passphrase someone chose";
    human.iterations = 1000;
    auto h = add_client(path, human);
    REQUIRE(h);
    CHECK_FALSE(h->generated);
    auto p2 = load_policy(path);
    REQUIRE(p2);
    CHECK(p2->client("legacy")->secret_hash.rfind("pbkdf2-sha256:1000:", 0) == 0);
    CHECK(authenticate_client(*p2, "legacy", "a passphrase someone chose"));
  }
  SECTION("concurrent adds both land") {
    std::vector<std::thread> threads;
    std::vector<int> ok(4, 0);  // not vector<bool>: its bits share words between threads
    for (int i = 0; i < 4; ++i) {
      threads.emplace_back([&, i] {
        NewClient c;
        c.id = "c" + std::to_string(i);
        ok[static_cast<std::size_t>(i)] = add_client(path, c) ? 1 : 0;
      });
    }
    for (auto& t : threads) t.join();
    auto p3 = load_policy(path);
    REQUIRE(p3);
    for (int i = 0; i < 4; ++i) {
      CHECK(ok[static_cast<std::size_t>(i)] == 1);
      CHECK(p3->client("c" + std::to_string(i)));
    }
  }
}

TEST_CASE("clients add creates a missing policy, fills an empty clients:, refuses inline ones", "[clients]") {
  TempDir dir;
  NewClient nc;
  nc.id = "first";
  const std::string fresh = dir.file("new.yaml");
  REQUIRE(add_client(fresh, nc));
  CHECK(load_policy(fresh));
  CHECK(load_policy(fresh)->client("first"));

  const std::string empty = dir.file("empty.yaml");
  write_file(empty, "issuer: https://x.example\nclients:\nscopes: [{name: read}]\n");
  REQUIRE(add_client(empty, nc));
  CHECK(load_policy(empty)->client("first"));

  const std::string flow = dir.file("flow.yaml");
  write_file(flow, "clients: {a: {}}\n");
  auto r = add_client(flow, nc);
  REQUIRE_FALSE(r);
  CHECK(r.error().code == ErrorCode::usage);
  CHECK(read_file(flow) == "clients: {a: {}}\n");

  const std::string broken = dir.file("broken.yaml");
  write_file(broken, "clients: [unclosed\n");
  CHECK_FALSE(add_client(broken, nc));
  CHECK(read_file(broken) == "clients: [unclosed\n");
}

TEST_CASE("tokctl clients add prints a generated secret once and needs a policy file", "[clients][cli]") {
  TempDir dir;
  const std::string path = dir.file("tokctl.yaml");
  write_file(path, k_policy);
  auto r = run({"--config", path, "clients", "add", "web", "--scope", "read"});
  INFO(r.err);
  REQUIRE(r.code == 0);
  const std::string secret = r.out.substr(0, r.out.find('\n'));
  CHECK(secret.size() == 43);
  CHECK_THAT(r.err, Contains("shown this once"));
  auto policy = load_policy(path);
  REQUIRE(policy);
  CHECK(authenticate_client(*policy, "web", secret));

  auto j = run({"--config", path, "-o", "json", "clients", "add", "api"});
  REQUIRE(j.code == 0);
  auto doc = json::parse(j.out);
  CHECK(doc["client_id"] == "api");
  CHECK(doc["policy"] == path);
  CHECK(authenticate_client(*load_policy(path), "api", doc["client_secret"].get<std::string>()));

  auto human = run({"--config", path, "clients", "add", "legacy", "--secret-file", "-", "--iterations", "1000"},
                   "chosen by a person\n");
  REQUIRE(human.code == 0);
  CHECK(human.out.empty());
  CHECK(authenticate_client(*load_policy(path), "legacy", "chosen by a person"));

  // RFC 8705 / RFC 9449 bindings, read back from the file as the policy loader sees them
  auto bound = run({"--config", path, "clients", "add", "bound", "--dpop-bound", "--certificate-bound"});
  INFO(bound.err);
  REQUIRE(bound.code == 0);
  auto with_bound = load_policy(path);
  REQUIRE(with_bound);
  REQUIRE(with_bound->client("bound"));
  CHECK(with_bound->client("bound")->dpop_bound);
  CHECK(with_bound->client("bound")->certificate_bound);
  CHECK_FALSE(with_bound->client("web")->dpop_bound);
  CHECK_FALSE(with_bound->client("web")->certificate_bound);

  auto dup = run({"--config", path, "clients", "add", "web"});
  CHECK(dup.code == 2);
  CHECK_THAT(dup.err, Contains("already exists"));
  auto none = run({"clients", "add", "web"}, "", {{"TOKCTL_CONFIG", ""}});
  CHECK(none.code == 2);
  CHECK_THAT(none.err, Contains("--config"));
  auto empty_secret = run({"--config", path, "clients", "add", "x", "--secret-file", "-"}, "\n");
  CHECK(empty_secret.code == 2);
}

TEST_CASE("clients add and a client's jwks refuse directories, FIFOs and oversized files, without blocking",
          "[clients][cli]") {
  TempDir dir;
  const std::string path = dir.file("tokctl.yaml");
  write_file(path, k_policy);
  REQUIRE(::mkdir(dir.file("d").c_str(), 0700) == 0);
  REQUIRE(::mkfifo(dir.file("fifo").c_str(), 0600) == 0);
  write_file(dir.file("big"), std::string(2 * 1024 * 1024, 'x'));  // over the 1 MiB input limit
  for (const char* name : {"d", "fifo", "big"}) {
    INFO(name);
    // --secret-file: a usage error that names the file; the policy keeps its bytes and gains no client.
    auto r = run({"--config", path, "clients", "add", "x", "--secret-file", dir.file(name)});
    CHECK(r.code != 0);
    CHECK(r.code != 70);  // a refusal, not a crash
    CHECK_THAT(r.err, Contains(dir.file(name)));
    CHECK(read_file(path) == k_policy);
    // jwks: the client's key set file is a policy problem at its line.
    auto c = check_text(dir, std::string("clients:\n  x: {jwks: ") + name + "}\n");
    CHECK_THAT(problems_of(c), Contains(name));
    CHECK_FALSE(c.problems.empty());
  }
  // The policy itself oversized (or a directory) during clients add: refused, nothing written.
  const std::string huge = "# " + std::string(2 * 1024 * 1024, 'p') + "\nclients: {}\n";
  write_file(path, huge);
  auto r = run({"--config", path, "clients", "add", "x"});
  CHECK(r.code != 0);
  CHECK(read_file(path) == huge);
  auto d = run({"--config", dir.file("d"), "clients", "add", "x"});
  CHECK(d.code != 0);
  CHECK_THAT(d.err, Contains(dir.file("d")));
}
