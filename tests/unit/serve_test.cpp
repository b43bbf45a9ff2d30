// tokctl serve (issue 9), first part: the form and Basic parsing, the OAuth endpoints called
// directly, the Beast transport over real loopback sockets (keep-alive, limits, timeouts, HEAD,
// graceful stop), and `tokctl serve --dev` as a process (ready line, a token, SIGTERM).

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <map>
#include <mutex>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <catch2/catch.hpp>
#include <sqlite3.h>
#include <nlohmann/json.hpp>

#include <tokctl/keys/keystore.hpp>
#include <tokctl/server/form.hpp>
#include <tokctl/server/http_server.hpp>
#include <tokctl/server/oauth.hpp>
#include <tokctl/tokens/clients.hpp>
#include <tokctl/util/base64.hpp>
#include <tokctl/util/io.hpp>

#include <tokctl/jose/jws.hpp>

#include "support/cli_helpers.hpp"
#include "support/keys.hpp"
#include "support/raw_http.hpp"
#include "support/run.hpp"
#include "support/service_fixture.hpp"

using nlohmann::json;
using namespace tokctl;
using namespace tokctl::server;
using Catch::Matchers::Contains;
using namespace tokctl::test;  // the raw HTTP client (support/raw_http.hpp), ServeProcess
using tokctl::test::TempDir;
using tokctl::test::write_file;

namespace {

constexpr UnixTime k_now = 1767225600;  // 2026-01-01T00:00:00Z

// Two clients with generated secrets; "post" may only authenticate with client_secret_post.
struct Fixture {
  TempDir dir;
  FixedClock clock{k_now};
  std::string api_secret = tokens::generate_client_secret();
  std::string post_secret = tokens::generate_client_secret();
  std::string gw_secret = tokens::generate_client_secret();
  std::string bearer_secret = tokens::generate_client_secret();
  std::unique_ptr<tokens::TokenService> service;
  std::unique_ptr<OAuthEndpoints> endpoints;

  Fixture() {
    // One client line: its secret's hash, then the rest of its settings.
    auto client = [](const std::string& id, const std::string& secret, const std::string& rest) {
      return "  " + id + ": {secret_hash: \"" + tokens::hash_generated_secret(secret) + "\", " + rest + "}\n";
    };
    const std::string bound = ", tls_client_certificate_bound_access_tokens: true";
    write_file(dir.file("tokctl.yaml"), "issuer: https://issuer.test\n"
                                        "scopes:\n  - name: read\n  - name: write\n"
                                        "tokens:\n  access: {format: opaque, ttl: 10m}\n"
                                        "clients:\n" +
                                        client("api", api_secret, "scopes: [read, write], audiences: [api-a]") +
                                        client("post", post_secret, "token_endpoint_auth_method: client_secret_post, scopes: [read]") +
                                        client("gw", gw_secret, "grants: [token_exchange]") +
                                        client("bearer", bearer_secret, "grants: [jwt_bearer], scopes: [read]") +
                                        // RFC 8705 bound twins of api, gw and bearer (same secrets).
                                        client("api-bound", api_secret, "scopes: [read], audiences: [api-a]" + bound) +
                                        client("gw-bound", gw_secret, "grants: [token_exchange]" + bound) +
                                        client("bearer-bound", bearer_secret, "grants: [jwt_bearer], scopes: [read]" + bound) +
                                        "  signer: {token_endpoint_auth_method: private_key_jwt, scopes: [read], jwks: {keys: [" +
                                        tokctl::test::test_key("p256").to_json(jose::KeyPart::public_only).dump() +
                                        "]}}\n"
                                        "exchange:\n  - from: api-a\n    to: [api-b]\n    scopes: [read]\n"
                                        "    modes: [delegate]\n"
                                        "assertion_issuers:\n  - issuer: https://idp.test\n    jwks: {keys: [" +
                                        tokctl::test::test_key("p256b").to_json(jose::KeyPart::public_only).dump() +
                                        "]}\n");
    service = tokctl::test::open_service(dir.file("tokctl.yaml"), dir.file("ks"), clock);
    endpoints = std::make_unique<OAuthEndpoints>(*service, clock);
  }

  std::string basic(const std::string& id, const std::string& secret) const {
    return "Basic " + b64_encode(id + ":" + secret);
  }

  HttpResponse post(const std::string& path, const std::string& body, std::vector<std::pair<std::string, std::string>> headers = {}) const {
    HttpRequest r;
    r.method = "POST";
    r.target = path;
    r.body = body;
    r.headers.emplace_back("content-type", "application/x-www-form-urlencoded");
    for (auto& h : headers) r.headers.push_back(std::move(h));
    return endpoints->handle(r);
  }

  HttpResponse get(const std::string& path, std::vector<std::pair<std::string, std::string>> headers = {}) const {
    HttpRequest r;
    r.method = "GET";
    r.target = path;
    r.headers = std::move(headers);
    return endpoints->handle(r);
  }

  std::string token(const std::string& scope = "read") const {
    auto r = post("/oauth/token", "grant_type=client_credentials&scope=" + scope, {{"authorization", basic("api", api_secret)}});
    REQUIRE(r.status == 200);
    return json::parse(r.body).at("access_token").get<std::string>();
  }
};

std::string header_of(const HttpResponse& r, const std::string& name) {
  for (const auto& [k, v] : r.headers)
    if (k == name) return v;
  return {};
}

json body_of(const HttpResponse& r) { return json::parse(r.body); }

// RFC 7523 assertions for the Fixture's token endpoint: fresh jti each, claims overridable.
struct AssertionMaker {
  std::string iss;
  std::string sub;
  int n = 0;
  std::string operator()(const json& overrides, const jose::Signer& with) {
    json c{{"iss", iss}, {"sub", sub}, {"aud", "https://issuer.test/oauth/token"},
           {"exp", k_now + 300}, {"iat", k_now}, {"jti", "j" + std::to_string(++n)}};
    if (overrides.is_object()) c.update(overrides);
    auto jwt = jose::sign_compact(json{{"typ", "JWT"}}, c.dump(), with);
    REQUIRE(jwt);
    return *jwt;
  }
};

// ---- a raw HTTP/1.1 client over loopback --------------------------------------------------------

// Sends "GET PATH" on a kept-alive connection and returns the answer's body.
std::string get_body(int fd, std::string& pending, const std::string& path) {
  send_all(fd, "GET " + path + " HTTP/1.1\r\nHost: t\r\n\r\n");
  return read_response(fd, pending).body;
}

std::string http_post(const std::string& path, const std::string& body, const std::string& extra = "") {
  return "POST " + path + " HTTP/1.1\r\nHost: t\r\nContent-Type: application/x-www-form-urlencoded\r\n" + extra +
         "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
}

}  // namespace

// ---- parsing -----------------------------------------------------------------------------------

TEST_CASE("form bodies: escapes, '+', empty values omitted, repeats and bad escapes refused", "[serve][form]") {
  auto f = parse_form("grant_type=client_credentials&scope=read+write&x=%41%2b&empty=&&resource=");
  REQUIRE(f);
  CHECK(f->value("grant_type") == "client_credentials");
  CHECK(f->value("scope") == "read write");
  CHECK(f->value("x") == "A+");
  CHECK_FALSE(f->has("empty"));  // RFC 6749 §3.1: sent without a value = omitted
  CHECK_FALSE(f->has("resource"));
  CHECK(f->get("nothing") == nullptr);
  // RFC 8693: audience and resource may repeat where the caller allows it; nothing else may.
  auto multi = parse_form("audience=a&audience=b&resource=r&audience=", {"audience", "resource"});
  REQUIRE(multi);
  CHECK(multi->all("audience") == std::vector<std::string>{"a", "b"});
  CHECK(multi->all("resource") == std::vector<std::string>{"r"});
  CHECK_FALSE(parse_form("scope=a&scope=b", {"audience"}));
  for (const char* bad : {"a=1&a=2", "a=&a=1", "a=%4", "a=%zz", "=x", "a=%"}) {
    CAPTURE(bad);
    auto r = parse_form(bad);
    REQUIRE_FALSE(r);
    CHECK(r.error().oauth == OAuthCode::invalid_request);
  }
  CHECK(parse_form("a=1&a=2").error().message.find("more than once") != std::string::npos);
  CHECK(parse_form("")->values.empty());
}

TEST_CASE("Basic credentials are form-decoded after base64 (RFC 6749 §2.3.1)", "[serve][form]") {
  auto c = parse_basic_auth("Basic " + b64_encode("my%3Aclient:p%40ss+word"));
  REQUIRE(c);
  REQUIRE(*c);
  CHECK((*c)->first == "my:client");
  CHECK((*c)->second == "p@ss word");
  CHECK(parse_basic_auth("bAsIc " + b64_encode("a:b")).value().has_value());
  CHECK_FALSE(parse_basic_auth("Bearer abc").value().has_value());  // another scheme: not client auth
  for (const std::string& bad : std::vector<std::string>{"Basic !!!", "Basic " + b64_encode("nocolon"), "Basic " + b64_encode(":secret"),
                          "Basic " + b64_encode("a%zz:b")}) {
    CAPTURE(bad);
    auto r = parse_basic_auth(bad);
    REQUIRE_FALSE(r);
    CHECK(r.error().oauth == OAuthCode::invalid_client);
  }
}

TEST_CASE("malformed Basic credentials are 401 invalid_client with a challenge, like a wrong secret",
          "[serve][oauth]") {
  Fixture fx;
  for (const std::string& bad : std::vector<std::string>{"Basic !!!!", "Basic " + b64_encode("nocolon"),
                                                         "Basic " + b64_encode("a%zz:b"), "Basic " + b64_encode("a:\xff")}) {
    CAPTURE(bad);
    for (const char* path : {"/oauth/token", "/oauth/introspect", "/oauth/revoke"}) {
      CAPTURE(path);
      auto r = fx.post(path, "grant_type=client_credentials&token=x", {{"authorization", bad}});
      CHECK(r.status == 401);
      CHECK(body_of(r).at("error") == "invalid_client");
      CHECK_THAT(header_of(r, "WWW-Authenticate"), Contains("Basic realm="));
    }
  }
}

// ---- endpoints ---------------------------------------------------------------------------------

TEST_CASE("token endpoint: client_credentials with Basic or post auth, no-store headers", "[serve][oauth]") {
  Fixture fx;
  auto r = fx.post("/oauth/token", "grant_type=client_credentials&scope=read", {{"authorization", fx.basic("api", fx.api_secret)}});
  REQUIRE(r.status == 200);
  CHECK(header_of(r, "Content-Type") == "application/json;charset=UTF-8");
  CHECK(header_of(r, "Cache-Control") == "no-store");
  CHECK(header_of(r, "Pragma") == "no-cache");
  CHECK(r.client_id == "api");
  auto body = body_of(r);
  CHECK(body.at("token_type") == "Bearer");
  CHECK(body.at("expires_in") == 600);
  CHECK(body.at("scope") == "read");
  CHECK_FALSE(body.contains("refresh_token"));  // RFC 6749 §4.4.3
  auto info = fx.service->introspect(body.at("access_token").get<std::string>());
  REQUIRE(info);
  CHECK(info->at("active") == true);
  CHECK(info->at("client_id") == "api");
  CHECK(info->at("sub") == "api");

  auto post = fx.post("/oauth/token", "grant_type=client_credentials&client_id=post&client_secret=" + fx.post_secret);
  CHECK(post.status == 200);
  // "post" is registered for client_secret_post: Basic is refused.
  auto wrong_method = fx.post("/oauth/token", "grant_type=client_credentials", {{"authorization", fx.basic("post", fx.post_secret)}});
  CHECK(wrong_method.status == 401);
}

TEST_CASE("a store failure answers 503 temporarily_unavailable and leaves no half-issued grant", "[serve][oauth]") {
  Fixture fx;
  fx.token();  // the store exists, with one grant
  const std::string db = fx.dir.file("ks") + "/tokens.db";
  auto sql = [&](const char* statement) {
    sqlite3* raw = nullptr;
    REQUIRE(sqlite3_open(db.c_str(), &raw) == SQLITE_OK);
    sqlite3_busy_timeout(raw, 5000);
    std::int64_t value = -1;
    auto cb = [](void* out, int, char** cols, char**) {
      *static_cast<std::int64_t*>(out) = cols[0] ? std::stoll(cols[0]) : -1;
      return 0;
    };
    const int rc = sqlite3_exec(raw, statement, cb, &value, nullptr);
    INFO(statement << ": " << sqlite3_errmsg(raw));
    sqlite3_close(raw);
    REQUIRE(rc == SQLITE_OK);
    return value;
  };
  const auto grants = sql("SELECT count(*) FROM grants");
  const auto tokens = sql("SELECT count(*) FROM tokens");
  // The grant row goes in first, then the token row fails: the whole issuance must roll back.
  sql("CREATE TRIGGER fail_tokens BEFORE INSERT ON tokens BEGIN SELECT RAISE(ABORT, 'injected failure'); END");
  auto r = fx.post("/oauth/token", "grant_type=client_credentials&scope=read", {{"authorization", fx.basic("api", fx.api_secret)}});
  CHECK(r.status == 503);
  CHECK(body_of(r).at("error") == "temporarily_unavailable");
  CHECK(header_of(r, "Cache-Control") == "no-store");
  CHECK(r.body.find("injected") == std::string::npos);  // no store internals on the wire
  CHECK(r.store_failure);  // counted in tokctl_store_errors_total
  CHECK(sql("SELECT count(*) FROM grants") == grants);
  CHECK(sql("SELECT count(*) FROM tokens") == tokens);
  sql("DROP TRIGGER fail_tokens");
  CHECK(fx.post("/oauth/token", "grant_type=client_credentials&scope=read", {{"authorization", fx.basic("api", fx.api_secret)}})
            .status == 200);
  CHECK(sql("SELECT count(*) FROM grants") == grants + 1);
}

TEST_CASE("token endpoint refusals are RFC 6749 §5.2 JSON with the right status", "[serve][oauth]") {
  Fixture fx;
  const std::string auth = fx.basic("api", fx.api_secret);
  struct Case {
    std::string body;
    std::vector<std::pair<std::string, std::string>> headers;
    int status;
    std::string error;
  };
  const std::vector<Case> cases = {
      {"grant_type=client_credentials", {}, 401, "invalid_client"},  // no client auth at all
      {"grant_type=client_credentials", {{"authorization", fx.basic("api", "wrong")}}, 401, "invalid_client"},
      {"grant_type=client_credentials", {{"authorization", fx.basic("nobody", "x")}}, 401, "invalid_client"},
      {"grant_type=client_credentials&client_id=api&client_secret=" + fx.api_secret, {{"authorization", auth}}, 400,
       "invalid_request"},  // two methods
      {"scope=read", {{"authorization", auth}}, 400, "invalid_request"},  // no grant_type
      {"grant_type=client_credentials&grant_type=client_credentials", {{"authorization", auth}}, 400, "invalid_request"},
      {"grant_type=password&username=a&password=b", {{"authorization", auth}}, 400, "unsupported_grant_type"},
      {"grant_type=token_exchange", {{"authorization", auth}}, 400, "unsupported_grant_type"},  // short names are tokctl's
      {"grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer", {{"authorization", auth}}, 400, "unauthorized_client"},
      {"grant_type=client_credentials&scope=admin", {{"authorization", auth}}, 400, "invalid_scope"},
      {"grant_type=refresh_token", {{"authorization", auth}}, 400, "invalid_request"},
      {"grant_type=refresh_token&refresh_token=nope", {{"authorization", auth}}, 400, "invalid_grant"},
      {"grant_type=client_credentials&x=%zz", {{"authorization", auth}}, 400, "invalid_request"},
      {"grant_type=client_credentials&scope=read&scope=write", {{"authorization", auth}}, 400, "invalid_request"},
      {"grant_type=urn:ietf:params:oauth:grant-type:token-exchange", {{"authorization", auth}}, 400, "unauthorized_client"},
  };
  for (const auto& c : cases) {
    CAPTURE(c.body);
    auto r = fx.post("/oauth/token", c.body, c.headers);
    CHECK(r.status == c.status);
    CHECK(header_of(r, "Cache-Control") == "no-store");
    auto b = body_of(r);
    CHECK(b.at("error") == c.error);
    CHECK(b.at("error_description").is_string());
    CHECK(r.body.find(fx.api_secret) == std::string::npos);
    // Every 401 has the Basic challenge (RFC 9110 §15.5.2), whether Authorization was sent or not.
    CHECK((header_of(r, "WWW-Authenticate") == "Basic realm=\"https://issuer.test\"") == (c.status == 401));
  }
  // A JSON body is not a form.
  HttpRequest j;
  j.method = "POST";
  j.target = "/oauth/token";
  j.headers = {{"content-type", "application/json"}, {"authorization", auth}};
  j.body = R"({"grant_type":"client_credentials"})";
  auto r = fx.endpoints->handle(j);
  CHECK(r.status == 400);
  CHECK(body_of(r).at("error") == "invalid_request");
}

TEST_CASE("refresh_token grant at the token endpoint rotates, and a reuse is invalid_grant", "[serve][oauth]") {
  Fixture fx;
  tokens::IssueRequest ir;
  ir.client_id = "api";
  ir.sub = "alice";
  ir.scope = "read";
  ir.with_refresh = true;
  auto first = fx.service->issue(ir);
  REQUIRE(first);
  REQUIRE(first->refresh);
  const std::string rt = first->refresh->token;
  const std::string auth = fx.basic("api", fx.api_secret);
  auto r = fx.post("/oauth/token", "grant_type=refresh_token&refresh_token=" + rt, {{"authorization", auth}});
  REQUIRE(r.status == 200);
  CHECK(body_of(r).at("access_token").is_string());
  // Another client cannot redeem it.
  auto other = fx.post("/oauth/token", "grant_type=refresh_token&client_id=post&client_secret=" + fx.post_secret +
                                           "&refresh_token=" + rt);
  CHECK(other.status == 400);
  CHECK(body_of(other).at("error") == "invalid_grant");
}

TEST_CASE("private_key_jwt: a signed assertion authenticates once; wrong audience, key, expiry refused",
          "[serve][oauth]") {
  Fixture fx;
  auto signer = jose::Signer::create(jose::Alg::ES256, tokctl::test::test_key("p256"));
  REQUIRE(signer);
  AssertionMaker assertion{"signer", "signer"};
  const std::string type = "client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer";
  auto request = [&](const std::string& jwt, const std::string& extra = "") {
    return fx.post("/oauth/token", "grant_type=client_credentials&scope=read&" + type + "&client_assertion=" + jwt + extra);
  };
  const std::string good = assertion({}, *signer);
  auto ok = request(good);
  INFO(ok.body);
  REQUIRE(ok.status == 200);
  CHECK(ok.client_id == "signer");
  CHECK(request(good).status == 401);  // the same jti again: a replay
  CHECK(request(assertion({{"aud", "https://issuer.test"}}, *signer)).status == 200);  // the issuer as aud
  CHECK(request(assertion({}, *signer), "&client_id=signer").status == 200);
  auto other_key = jose::Signer::create(jose::Alg::ES256, tokctl::test::test_key("p256b"));
  REQUIRE(other_key);
  for (const auto& bad : std::vector<std::string>{
           assertion({{"aud", "https://elsewhere.test/token"}}, *signer),
           assertion({{"exp", k_now + 3600}}, *signer),  // valid far too long
           assertion({{"exp", k_now - 3600}}, *signer),  // expired
           assertion({{"sub", "someone"}}, *signer),
           assertion({{"iss", "api"}, {"sub", "api"}}, *signer),  // a client without keys
           assertion({}, *other_key),
           assertion({{"jti", nullptr}}, *signer),
           "not-a-jwt"}) {
    CAPTURE(bad);
    auto r = request(bad);
    CHECK(r.status == 401);
    CHECK(body_of(r).at("error") == "invalid_client");
  }
  CHECK(request(assertion({}, *signer), "&client_id=api").status == 401);
  // Two methods at once, or a wrong assertion type, are invalid_request.
  CHECK(fx.post("/oauth/token", "grant_type=client_credentials&" + type + "&client_assertion=" + assertion({}, *signer),
                {{"authorization", fx.basic("api", fx.api_secret)}}).status == 400);
  CHECK(fx.post("/oauth/token", "grant_type=client_credentials&client_assertion_type=x&client_assertion=" +
                                    assertion({}, *signer)).status == 400);
  CHECK(body_of(fx.get("/.well-known/oauth-authorization-server"))
            .at("token_endpoint_auth_methods_supported")
            .back() == "private_key_jwt");
}

TEST_CASE("jwt-bearer grant: an assertion of a trusted issuer, once, for a client allowed the grant",
          "[serve][oauth]") {
  Fixture fx;
  auto idp = jose::Signer::create(jose::Alg::ES256, tokctl::test::test_key("p256b"));
  auto stranger = jose::Signer::create(jose::Alg::ES256, tokctl::test::test_key("p256"));
  REQUIRE(idp);
  REQUIRE(stranger);
  AssertionMaker assertion{"https://idp.test", "alice"};
  const std::string auth = fx.basic("bearer", fx.bearer_secret);
  const std::string grant = "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer&scope=read&assertion=";
  const std::string good = assertion({}, *idp);
  auto r = fx.post("/oauth/token", grant + good, {{"authorization", auth}});
  INFO(r.body);
  REQUIRE(r.status == 200);
  auto info = fx.service->introspect(body_of(r).at("access_token").get<std::string>());
  REQUIRE(info);
  CHECK(info->at("sub") == "alice");
  CHECK(info->at("client_id") == "bearer");
  CHECK(body_of(fx.post("/oauth/token", grant + good, {{"authorization", auth}})).at("error") == "invalid_grant");  // replay
  for (const auto& bad : std::vector<std::string>{
           assertion({{"iss", "https://other-idp.test"}}, *idp),
           assertion({}, *stranger),
           assertion({{"aud", "https://elsewhere.test"}}, *idp),
           assertion({{"exp", k_now + 7200}}, *idp),
           assertion({{"exp", k_now - 7200}}, *idp),
           assertion({{"sub", nullptr}}, *idp),
           "x.y.z"}) {
    CAPTURE(bad);
    auto refused = fx.post("/oauth/token", grant + bad, {{"authorization", auth}});
    CHECK(refused.status == 400);
    CHECK(body_of(refused).at("error") == "invalid_grant");
  }
  auto missing = fx.post("/oauth/token", "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer",
                         {{"authorization", auth}});
  CHECK(body_of(missing).at("error") == "invalid_request");
  // api may not use the grant.
  auto api = fx.post("/oauth/token", grant + assertion({}, *idp), {{"authorization", fx.basic("api", fx.api_secret)}});
  CHECK(body_of(api).at("error") == "unauthorized_client");
  CHECK(body_of(fx.get("/.well-known/oauth-authorization-server")).at("grant_types_supported").back() ==
        "urn:ietf:params:oauth:grant-type:jwt-bearer");
}

// Regression (review): without assertion_issuers the metadata leaves jwt-bearer out, but the token
// endpoint answered it invalid_grant (assertion not trusted) instead of unsupported_grant_type.
TEST_CASE("jwt-bearer is unsupported_grant_type where the policy trusts no assertion issuer", "[serve][oauth]") {
  TempDir dir;
  FixedClock clock{k_now};
  const std::string secret = tokens::generate_client_secret();
  write_file(dir.file("tokctl.yaml"), "issuer: https://issuer.test\nscopes:\n  - name: read\nclients:\n"
                                      "  bearer: {secret_hash: \"" + tokens::hash_generated_secret(secret) +
                                      "\", grants: [jwt_bearer], scopes: [read]}\n");
  auto service = tokctl::test::open_service(dir.file("tokctl.yaml"), dir.file("ks"), clock);
  OAuthEndpoints endpoints(*service, clock);
  HttpRequest meta;
  meta.method = "GET";
  meta.target = "/.well-known/oauth-authorization-server";
  auto m = json::parse(endpoints.handle(meta).body);
  for (const auto& g : m.at("grant_types_supported")) CHECK(g != "urn:ietf:params:oauth:grant-type:jwt-bearer");
  HttpRequest r;
  r.method = "POST";
  r.target = "/oauth/token";
  r.headers = {{"content-type", "application/x-www-form-urlencoded"},
               {"authorization", "Basic " + b64_encode("bearer:" + secret)}};
  for (const std::string assertion : {"garbage", "a.b.c", ""}) {
    INFO(assertion);
    r.body = "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer&assertion=" + assertion;
    auto a = endpoints.handle(r);
    CHECK(a.status == 400);
    CHECK(body_of(a).at("error") == "unsupported_grant_type");
  }
}

// Regression (review): a request that came before the endpoints existed got a bare 503 without a
// body; every error is RFC 6749 JSON with no-store.
TEST_CASE("the answer before the service is ready is a 503 temporarily_unavailable JSON error", "[serve][oauth]") {
  auto r = not_ready_response();
  CHECK(r.status == 503);
  CHECK(header_of(r, "Retry-After") == "1");
  CHECK(header_of(r, "Cache-Control") == "no-store");
  CHECK_THAT(header_of(r, "Content-Type"), Contains("application/json"));
  CHECK(body_of(r).at("error") == "temporarily_unavailable");
}

TEST_CASE("assertion_issuers in the policy: a list of issuers with public keys, checked", "[serve][policy]") {
  TempDir dir;
  const std::string pub = tokctl::test::test_key("p256").to_json(jose::KeyPart::public_only).dump();
  const std::string priv = tokctl::test::test_key("p256").to_json(jose::KeyPart::with_private).dump();
  struct Bad {
    std::string yaml;
    std::string problem;
  };
  for (const auto& b : std::vector<Bad>{
           {"assertion_issuers: {issuer: x}", "must be a list"},
           {"assertion_issuers:\n  - issuer: https://a\n", "needs 'jwks'"},
           {"assertion_issuers:\n  - jwks: {keys: [" + pub + "]}\n", "needs 'issuer'"},
           {"assertion_issuers:\n  - {issuer: https://a, jwks: {keys: [" + priv + "]}}\n", "private or secret key"},
           {"assertion_issuers:\n  - {issuer: https://a, jwks: missing.jwks}\n", "missing.jwks"},
           {"assertion_issuers:\n  - {issuer: https://a, jwks: {keys: [" + pub + "]}}\n  - {issuer: https://a, jwks: {keys: [" +
                pub + "]}}\n",
            "listed twice"},
           {"assertion_issuers:\n  - {issuer: https://a, jwks: {keys: [" + pub + "]}, extra: 1}\n", "extra"},
       }) {
    CAPTURE(b.yaml);
    write_file(dir.file("p.yaml"), b.yaml);
    auto c = tokens::check_policy(dir.file("p.yaml"));
    std::string all;
    for (const auto& p : c.problems) all += p + "\n";
    CHECK_THAT(all, Contains(b.problem));
  }
  write_file(dir.file("ok.yaml"), "assertion_issuers:\n  - {issuer: https://a, jwks: {keys: [" + pub + "]}}\n");
  auto ok = tokens::check_policy(dir.file("ok.yaml"));
  CHECK(ok.problems.empty());
  REQUIRE(ok.policy.assertion_issuers.size() == 1);
  CHECK(ok.policy.assertion_issuers[0].issuer == "https://a");
}

TEST_CASE("token exchange at the token endpoint: RFC 8693 parameters, repeatable audience", "[serve][oauth]") {
  Fixture fx;
  const std::string subject = fx.token("read write");
  const std::string gw = fx.basic("gw", fx.gw_secret);
  const std::string base = "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Atoken-exchange&subject_token=" +
                           subject + "&subject_token_type=urn%3Aietf%3Aparams%3Aoauth%3Atoken-type%3Aaccess_token";
  auto r = fx.post("/oauth/token", base + "&audience=api-b&audience=api-b&scope=read", {{"authorization", gw}});
  INFO(r.body);
  REQUIRE(r.status == 200);
  CHECK(header_of(r, "Cache-Control") == "no-store");
  auto body = body_of(r);
  CHECK(body.at("issued_token_type").get<std::string>().rfind("urn:ietf:params:oauth:token-type:", 0) == 0);
  CHECK(body.at("scope") == "read");
  auto info = fx.service->introspect(body.at("access_token").get<std::string>());
  REQUIRE(info);
  CHECK(info->at("active") == true);
  CHECK(info->at("aud") == "api-b");
  struct Bad {
    std::string body;
    std::string error;
  };
  for (const auto& b : std::vector<Bad>{
           {base + "&audience=api-z", "invalid_target"},
           {base + "&audience=api-b&scope=write", "invalid_scope"},
           {"grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Atoken-exchange&subject_token=" + subject,
            "invalid_request"},  // no subject_token_type
           {base + "&audience=api-b&actor_token=" + subject, "invalid_request"},  // no actor_token_type
           {base + "&audience=api-b&scope=read&scope=read", "invalid_request"},  // scope is not repeatable
           {"grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Atoken-exchange&subject_token=nope"
            "&subject_token_type=urn%3Aietf%3Aparams%3Aoauth%3Atoken-type%3Aaccess_token&audience=api-b",
            "invalid_grant"},
       }) {
    CAPTURE(b.body);
    auto bad = fx.post("/oauth/token", b.body, {{"authorization", gw}});
    CHECK(bad.status == 400);
    CHECK(body_of(bad).at("error") == b.error);
  }
}

TEST_CASE("introspection: JSON, phantom JWT or 204, client auth required", "[serve][oauth]") {
  Fixture fx;
  const std::string auth = fx.basic("api", fx.api_secret);
  const std::string token = fx.token();
  auto r = fx.post("/oauth/introspect", "token=" + token, {{"authorization", auth}});
  REQUIRE(r.status == 200);
  CHECK(body_of(r).at("active") == true);
  CHECK(body_of(r).at("scope") == "read");
  auto unknown = fx.post("/oauth/introspect", "token=nope", {{"authorization", auth}});
  CHECK(unknown.status == 200);
  CHECK(body_of(unknown) == json{{"active", false}});
  CHECK(fx.post("/oauth/introspect", "token=" + token).status == 401);
  CHECK(fx.post("/oauth/introspect", "", {{"authorization", auth}}).status == 400);

  auto phantom = fx.post("/oauth/introspect", "token=" + token, {{"authorization", auth}, {"accept", "application/jwt"}});
  REQUIRE(phantom.status == 200);
  CHECK(header_of(phantom, "Content-Type") == "application/jwt");
  CHECK(header_of(phantom, "Cache-Control") == "max-age=300");  // 10 min left, capped at 5 min
  CHECK(std::count(phantom.body.begin(), phantom.body.end(), '.') == 2);
  auto none = fx.post("/oauth/introspect", "token=nope", {{"authorization", auth}, {"accept", "application/jwt"}});
  CHECK(none.status == 204);
  CHECK(none.body.empty());
  // RFC 9701: the same answer, signed by the issuer for the caller, verifiable with the JWKS.
  auto rfc9701 = fx.post("/oauth/introspect", "token=" + token,
                         {{"authorization", auth}, {"accept", "application/token-introspection+jwt"}});
  REQUIRE(rfc9701.status == 200);
  CHECK(header_of(rfc9701, "Content-Type") == "application/token-introspection+jwt");
  write_file(fx.dir.file("jwks.json"), fx.get("/oauth/jwks").body);
  auto v = tokctl::test::run({"-o", "json", "verify", rfc9701.body, "--jwks", fx.dir.file("jwks.json"), "--aud", "api",
                              "--iss", "https://issuer.test", "--now", "2026-01-01T00:00:00Z"});
  REQUIRE(v.code == 0);
  auto doc = json::parse(v.out);
  CHECK(doc.at("header").at("typ") == "token-introspection+jwt");
  CHECK(doc.at("payload").at("token_introspection").at("active") == true);
  CHECK(doc.at("payload").at("token_introspection").at("scope") == "read");
  CHECK(doc.at("payload").at("iat") == k_now);
  // Regression (review): only the first Accept field line was read. RFC 9110 §5.3: several lines
  // of a list header are one list, so the second line's media type counts as if it were joined.
  for (const char* type : {"application/token-introspection+jwt", "application/jwt"}) {
    INFO(type);
    auto split = fx.post("/oauth/introspect", "token=" + token,
                         {{"authorization", auth}, {"accept", "text/html"}, {"accept", type}});
    REQUIRE(split.status == 200);
    CHECK(header_of(split, "Content-Type") == type);
  }
}

TEST_CASE("percent_decode keeps '+' (escaped PEM), form_decode makes it a space", "[serve][form]") {
  CHECK(percent_decode("a+b%2Bc%0A").value() == "a+b+c\n");
  CHECK(form_decode("a+b%2Bc").value() == "a b+c");
  for (const char* bad : {"%", "%4", "%zz", "a%g0"}) {
    INFO(bad);
    CHECK_FALSE(percent_decode(bad));
  }
}

TEST_CASE("Bearer and DPoP credentials: RFC 6750 b64token, any scheme case, clear refusals", "[serve][form]") {
  CHECK(parse_token_authorization("Bearer abc.DEF-_~+/==").value().token == "abc.DEF-_~+/==");
  CHECK_FALSE(parse_token_authorization("Bearer abc").value().dpop);
  CHECK(parse_token_authorization("bEaReR    tok  ").value().token == "tok");
  CHECK(parse_token_authorization("DPoP tok").value().dpop);
  CHECK(parse_token_authorization("dpop  tok ").value().token == "tok");
  for (const char* bad : {"Bearer", "Bearer ", "Bearer    ", "Bearer =abc", "Bearer a=b", "Bearer a b", "Bearer a\"b",
                          "Bearer a,b", "Bearer tok\x01", "Bearer t\xc3\xa9", "DPoP", "DPoP ", "DPoP a b", "DPoPtok"}) {
    auto r = parse_token_authorization(bad);
    INFO(bad);
    REQUIRE_FALSE(r);
    CHECK(r.error().oauth == OAuthCode::invalid_request);
  }
  auto basic = parse_token_authorization("Basic " + b64_encode("id:secret"));
  REQUIRE_FALSE(basic);
  CHECK(basic.error().message == "Authorization uses the Basic scheme, not Bearer or DPoP");
  auto bare = parse_token_authorization("eyJhbGciOiJFUzI1NiJ9.e30.sig");
  REQUIRE_FALSE(bare);
  CHECK(bare.error().message == "Authorization is not a Bearer or DPoP token");  // never echoes the value
}

TEST_CASE("GET /phantom: the gateway authenticates, the bearer token becomes its phantom JWT", "[serve][oauth]") {
  Fixture fx;
  const std::string token = fx.token();
  const std::string gateway = fx.basic("gw", fx.gw_secret);
  auto phantom = [&](std::vector<std::pair<std::string, std::string>> headers, const std::string& target = "/phantom") {
    return fx.get(target, std::move(headers));
  };

  SECTION("an active token: 200, its JWT in Authorization, cacheable for its life at most") {
    auto r = phantom({{"proxy-authorization", gateway}, {"authorization", "Bearer " + token}});
    REQUIRE(r.status == 200);
    CHECK(r.client_id == "gw");
    CHECK(r.body.empty());
    CHECK(header_of(r, "Cache-Control") == "max-age=300");  // 10 min left, capped at 5 min
    CHECK(header_of(r, "Vary") == "Authorization");
    const std::string bearer = header_of(r, "Authorization");
    REQUIRE(bearer.starts_with("Bearer "));
    write_file(fx.dir.file("jwks.json"), fx.get("/oauth/jwks").body);
    auto v = tokctl::test::run({"-o", "json", "verify", bearer.substr(7), "--jwks", fx.dir.file("jwks.json"), "--iss",
                                "https://issuer.test", "--now", "2026-01-01T00:00:00Z"});
    REQUIRE(v.code == 0);
    auto doc = json::parse(v.out);
    CHECK(doc.at("header").at("typ") == "at+jwt");
    CHECK(doc.at("payload").at("client_id") == "api");
    CHECK(doc.at("payload").at("scope") == "read");
    CHECK(doc.at("payload").at("exp") == k_now + 600);
    // HEAD: the same answer without a body (the transport drops it).
    HttpRequest head;
    head.method = "HEAD";
    head.target = "/phantom";
    head.headers = {{"proxy-authorization", gateway}, {"authorization", "Bearer " + token}};
    auto h = fx.endpoints->handle(head);
    CHECK(h.status == 200);
    CHECK(header_of(h, "Authorization").starts_with("Bearer ey"));
  }
  SECTION("the end user's token refused: 401 with a Bearer challenge, never 400 (nginx passes only 401/403)") {
    auto none = phantom({{"proxy-authorization", gateway}});
    CHECK(none.status == 401);
    CHECK(header_of(none, "WWW-Authenticate") == "Bearer realm=\"https://issuer.test\"");  // RFC 6750 §3.1: no code
    CHECK_FALSE(body_of(none).contains("error"));  // nor in the body
    CHECK(header_of(none, "Cache-Control") == "no-store");
    auto unknown = phantom({{"proxy-authorization", gateway}, {"authorization", "Bearer not-a-token"}});
    CHECK(unknown.status == 401);
    CHECK(header_of(unknown, "WWW-Authenticate") ==
          "Bearer realm=\"https://issuer.test\", error=\"invalid_token\", error_description=\"the token is not active\"");
    CHECK(body_of(unknown).at("error") == "invalid_token");
    CHECK(header_of(unknown, "Authorization").empty());
    auto basic = phantom({{"proxy-authorization", gateway}, {"authorization", fx.basic("api", fx.api_secret)}});
    CHECK(basic.status == 401);
    CHECK(body_of(basic).at("error") == "invalid_request");
    CHECK_THAT(header_of(basic, "WWW-Authenticate"), Contains("error=\"invalid_request\""));
    auto two = phantom({{"proxy-authorization", gateway}, {"authorization", "Bearer " + token}, {"authorization", "Bearer x"}});
    CHECK(two.status == 401);
    CHECK(body_of(two).at("error_description") == "more than one Authorization header");
    // Revoked: refused at once.
    REQUIRE(fx.service->revoke(token, false));
    auto revoked = phantom({{"proxy-authorization", gateway}, {"authorization", "Bearer " + token}});
    CHECK(revoked.status == 401);
    CHECK(body_of(revoked).at("error") == "invalid_token");
  }
  SECTION("an expired token is not active") {
    fx.clock.set(k_now + 601);
    auto r = phantom({{"proxy-authorization", gateway}, {"authorization", "Bearer " + token}});
    CHECK(r.status == 401);
    CHECK(body_of(r).at("error") == "invalid_token");
  }
  SECTION("the gateway must authenticate, with Proxy-Authorization: 407 and a Proxy-Authenticate challenge") {
    for (const auto& headers : std::vector<std::vector<std::pair<std::string, std::string>>>{
             {{"authorization", "Bearer " + token}},
             {{"proxy-authorization", fx.basic("gw", "wrong")}, {"authorization", "Bearer " + token}},
             {{"proxy-authorization", "Basic !!!"}, {"authorization", "Bearer " + token}},
             {{"proxy-authorization", fx.basic("nobody", fx.gw_secret)}, {"authorization", "Bearer " + token}}}) {
      auto r = phantom(headers);
      CHECK(r.status == 407);
      CHECK(header_of(r, "Proxy-Authenticate") == "Basic realm=\"https://issuer.test\"");
      CHECK(body_of(r).at("error") == "invalid_client");
      CHECK(header_of(r, "Authorization").empty());
    }
    // The end user's Basic credentials in Authorization do not authenticate the gateway.
    auto user_basic = phantom({{"authorization", gateway}});
    CHECK(user_basic.status == 407);
    // A client registered for client_secret_post cannot use Proxy-Authorization's Basic.
    auto post_only = phantom({{"proxy-authorization", fx.basic("post", fx.post_secret)}, {"authorization", "Bearer " + token}});
    CHECK(post_only.status == 407);
    auto twice = phantom({{"proxy-authorization", gateway}, {"proxy-authorization", gateway}, {"authorization", "Bearer " + token}});
    CHECK(twice.status == 400);
  }
  SECTION("nothing but client_id in the query: no secret or token in a URL") {
    for (const char* q : {"?client_secret=x", "?client_id=gw&client_secret=x", "?access_token=x", "?client_assertion=x",
                          "?client_id=gw&client_id=gw", "?a=%zz", "?client_secret=", "?access_token", "?foo",
                          "?client_id=gw&foo", "?%zz", "?SECRETNAME=a&SECRETNAME=b", "?SECRETNAME=%C3%28"}) {
      INFO(q);
      auto r = phantom({{"proxy-authorization", gateway}, {"authorization", "Bearer " + token}}, std::string("/phantom") + q);
      CHECK(r.status == 400);
      CHECK(body_of(r).at("error") == "invalid_request");
      CHECK_THAT(r.body, !Contains("SECRETNAME"));  // a name is never echoed: it may be a token
    }
    auto named = phantom({{"proxy-authorization", gateway}, {"authorization", "Bearer " + token}}, "/phantom?client_id=gw");
    CHECK(named.status == 200);
    auto other = phantom({{"proxy-authorization", gateway}, {"authorization", "Bearer " + token}}, "/phantom?client_id=api");
    CHECK(other.status == 400);  // client_id differs from the authenticated client
  }
  SECTION("no usable signing key: 503 naming the keys, not the store, and no store error counted") {
    {
      auto ks = keys::Keystore::open(fx.dir.file("ks"), fx.clock, false);
      REQUIRE(ks);
      keys::AddOptions add;
      add.alg = "HS256";
      add.state = keys::KeyState::active;  // a second active alg: which one signs is ambiguous
      REQUIRE(ks->add(add, std::nullopt));
    }
    HttpResponse r;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    do {  // the key ring is re-read within its 1 s check interval
      r = phantom({{"proxy-authorization", gateway}, {"authorization", "Bearer " + token}});
      if (r.status == 200) std::this_thread::sleep_for(std::chrono::milliseconds(50));
    } while (r.status == 200 && std::chrono::steady_clock::now() < deadline);
    CHECK(r.status == 503);
    CHECK(body_of(r).at("error") == "temporarily_unavailable");
    CHECK(body_of(r).at("error_description") == "no signing key is usable; retry later");
    CHECK_FALSE(r.store_failure);
    auto introspected = fx.post("/oauth/introspect", "token=" + token,
                                {{"authorization", fx.basic("api", fx.api_secret)}, {"accept", "application/jwt"}});
    CHECK(introspected.status == 503);
    CHECK_FALSE(introspected.store_failure);
    // JSON introspection needs no signature: still answered.
    CHECK(fx.post("/oauth/introspect", "token=" + token, {{"authorization", fx.basic("api", fx.api_secret)}}).status == 200);
  }
  SECTION("other methods: 405 with Allow; OPTIONS 204") {
    auto post = fx.post("/phantom", "", {{"proxy-authorization", gateway}, {"authorization", "Bearer " + token}});
    CHECK(post.status == 405);
    CHECK(header_of(post, "Allow") == "GET, HEAD, OPTIONS");
    HttpRequest options;
    options.method = "OPTIONS";
    options.target = "/phantom";
    CHECK(fx.endpoints->handle(options).status == 204);
  }
}

TEST_CASE("RFC 8705 bound clients: every grant binds to the request's certificate; a template cannot", "[serve][oauth]") {
  Fixture fx;
  const std::string x5t = "bm90LWEtcmVhbC10aHVtYnByaW50LWJ1dC0zMi1ieXRlcw";
  auto post_with_cert = [&](const std::string& body, const std::string& id, const std::string& secret,
                            const std::string& cert) {
    HttpRequest r;
    r.method = "POST";
    r.target = "/oauth/token";
    r.body = body;
    r.headers = {{"content-type", "application/x-www-form-urlencoded"}, {"authorization", fx.basic(id, secret)}};
    r.client_cert_x5t = cert;
    return fx.endpoints->handle(r);
  };
  auto cnf_of = [&](const HttpResponse& r) {
    INFO(r.body);
    REQUIRE(r.status == 200);
    auto info = fx.service->introspect(body_of(r).at("access_token").get<std::string>());
    REQUIRE(info);
    REQUIRE(info->at("active") == true);
    return info->contains("cnf") ? info->at("cnf") : json();
  };
  const json bound{{"x5t#S256", x5t}};
  // client_credentials
  CHECK(cnf_of(post_with_cert("grant_type=client_credentials&scope=read", "api-bound", fx.api_secret, x5t)) == bound);
  CHECK(cnf_of(post_with_cert("grant_type=client_credentials&scope=read", "api", fx.api_secret, x5t)).is_null());
  auto none = post_with_cert("grant_type=client_credentials&scope=read", "api-bound", fx.api_secret, "");
  CHECK(none.status == 400);
  CHECK(body_of(none).at("error") == "invalid_request");
  // token exchange: the requester's certificate, never the subject token's binding
  const std::string subject = body_of(post_with_cert("grant_type=client_credentials&scope=read", "api-bound",
                                                     fx.api_secret, "c3ViamVjdA")).at("access_token");
  const std::string exchange = "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Atoken-exchange&subject_token=" +
                               subject + "&subject_token_type=urn%3Aietf%3Aparams%3Aoauth%3Atoken-type%3Aaccess_token";
  auto exchanged = post_with_cert(exchange + "&audience=api-b", "gw-bound", fx.gw_secret, x5t);
  CHECK(cnf_of(exchanged) == bound);
  CHECK(cnf_of(post_with_cert(exchange + "&audience=api-b", "gw", fx.gw_secret, x5t)).is_null());
  // jwt-bearer
  auto idp = jose::Signer::create(jose::Alg::ES256, tokctl::test::test_key("p256b"));
  REQUIRE(idp);
  AssertionMaker assertion{"https://idp.test", "alice"};
  const std::string grant = "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer&scope=read&assertion=";
  CHECK(cnf_of(post_with_cert(grant + assertion({}, *idp), "bearer-bound", fx.bearer_secret, x5t)) == bound);
}

TEST_CASE("revocation: 200 always, only the client's own tokens change", "[serve][oauth]") {
  Fixture fx;
  const std::string token = fx.token();
  // Another client: 200, and the token stays active (no oracle, no cross-client revocation).
  auto other = fx.post("/oauth/revoke", "token=" + token + "&client_id=post&client_secret=" + fx.post_secret);
  CHECK(other.status == 200);
  CHECK(other.body.empty());
  CHECK(fx.service->introspect(token)->at("active") == true);
  auto own = fx.post("/oauth/revoke", "token=" + token + "&token_type_hint=access_token",
                     {{"authorization", fx.basic("api", fx.api_secret)}});
  CHECK(own.status == 200);
  CHECK(fx.service->introspect(token)->at("active") == false);
  CHECK(fx.post("/oauth/revoke", "token=unknown", {{"authorization", fx.basic("api", fx.api_secret)}}).status == 200);
  CHECK(fx.post("/oauth/revoke", "token=" + token).status == 401);
}

TEST_CASE("JWKS with ETag, metadata, health, 404 and 405 as JSON", "[serve][oauth]") {
  Fixture fx;
  auto j = fx.get("/oauth/jwks");
  REQUIRE(j.status == 200);
  CHECK(header_of(j, "Content-Type") == "application/jwk-set+json");
  CHECK(header_of(j, "Cache-Control") == "max-age=300");
  CHECK(body_of(j).at("keys").size() == 1);
  const std::string etag = header_of(j, "ETag");
  CHECK(etag.size() > 2);
  auto again = fx.get("/oauth/jwks", {{"if-none-match", etag}});
  CHECK(again.status == 304);
  CHECK(again.body.empty());
  // If-None-Match is a list too: the matching tag on a second field line counts.
  CHECK(fx.get("/oauth/jwks", {{"if-none-match", "\"other\""}, {"if-none-match", etag}}).status == 304);
  CHECK(fx.get("/oauth/jwks", {{"if-none-match", "\"other\""}, {"if-none-match", "\"else\""}}).status == 200);

  for (const char* path : {"/.well-known/oauth-authorization-server", "/.well-known/openid-configuration"}) {
    auto m = fx.get(path);
    REQUIRE(m.status == 200);
    auto doc = body_of(m);
    CHECK(doc.at("issuer") == "https://issuer.test");
    CHECK(doc.at("token_endpoint") == "https://issuer.test/oauth/token");
    CHECK(doc.at("jwks_uri") == "https://issuer.test/oauth/jwks");
    CHECK(doc.at("grant_types_supported") == json{"client_credentials", "refresh_token",
                                                  "urn:ietf:params:oauth:grant-type:token-exchange",
                                                  "urn:ietf:params:oauth:grant-type:jwt-bearer"});
  }
  CHECK(fx.get("/healthz").status == 200);
  auto missing = fx.get("/nope");
  CHECK(missing.status == 404);
  CHECK(body_of(missing).at("error") == "not_found");
  CHECK(header_of(missing, "Cache-Control") == "no-store");
  auto method = fx.get("/oauth/token");
  CHECK(method.status == 405);
  CHECK(header_of(method, "Allow") == "POST, OPTIONS");
  CHECK(header_of(method, "Cache-Control") == "no-store");
  CHECK(fx.post("/oauth/jwks", "").status == 405);
}

TEST_CASE("metrics: requests by endpoint and status, a latency histogram, tokens by format", "[serve][oauth]") {
  Fixture fx;
  fx.token();
  fx.token();
  fx.endpoints->observe("/oauth/token", 200, 800);
  fx.endpoints->observe("/oauth/token", 200, 30000);
  fx.endpoints->observe("/oauth/token", 401, 50);
  fx.endpoints->observe("/eyJsecret.looking.path", 404, 10);
  fx.endpoints->observe("/healthz", 503, 10, true);
  fx.endpoints->observe("/oauth/introspect", 503, 10);  // a 503 that is not the store's (authentications queued)
  auto m = fx.get("/metrics");
  REQUIRE(m.status == 200);
  CHECK(header_of(m, "Content-Type") == "text/plain; version=0.0.4; charset=utf-8");
  CHECK_THAT(m.body, Contains("tokctl_http_requests_total{endpoint=\"/oauth/token\",status=\"200\"} 2\n"));
  CHECK_THAT(m.body, Contains("tokctl_http_requests_total{endpoint=\"/oauth/token\",status=\"401\"} 1\n"));
  CHECK_THAT(m.body, Contains("tokctl_http_requests_total{endpoint=\"other\",status=\"404\"} 1\n"));
  CHECK_THAT(m.body, Contains("tokctl_http_requests_total{endpoint=\"/oauth/introspect\",status=\"503\"} 1\n"));
  CHECK(m.body.find("eyJ") == std::string::npos);  // paths are never labels
  CHECK_THAT(m.body, Contains("tokctl_http_request_duration_seconds_bucket{endpoint=\"/oauth/token\",le=\"0.001\"} 2\n"));
  CHECK_THAT(m.body, Contains("tokctl_http_request_duration_seconds_bucket{endpoint=\"/oauth/token\",le=\"0.025\"} 2\n"));
  CHECK_THAT(m.body, Contains("tokctl_http_request_duration_seconds_bucket{endpoint=\"/oauth/token\",le=\"+Inf\"} 3\n"));
  CHECK_THAT(m.body, Contains("tokctl_http_request_duration_seconds_count{endpoint=\"/oauth/token\"} 3\n"));
  CHECK_THAT(m.body, Contains("tokctl_tokens_issued_total{format=\"opaque\"} 2\n"));
  CHECK_THAT(m.body, Contains("tokctl_tokens_issued_total{format=\"jwt\"} 0\n"));
  CHECK_THAT(m.body, Contains("tokctl_store_errors_total 1\n"));
}

// ---- the transport -----------------------------------------------------------------------------

TEST_CASE("HTTP server: keep-alive, HEAD, Connection: close, limits and timeouts", "[serve][http]") {
  std::atomic<int> handled{0};
  ServerOptions o;
  o.port = 0;
  o.threads = 2;
  o.read_timeout = std::chrono::milliseconds(300);
  o.idle_timeout = std::chrono::milliseconds(600);
  o.body_limit = 1024;
  o.header_limit = 1024;
  std::vector<AccessRecord> log;
  std::mutex log_mutex;
  auto srv = HttpServer::start(
      o,
      [&](const HttpRequest& r) {
        ++handled;
        HttpResponse res;
        res.set("Content-Type", "text/plain");
        res.body = r.method + " " + std::string(r.path()) + " " + std::to_string(r.body.size());
        res.client_id = "c1";
        return res;
      },
      [&](const AccessRecord& a) {
        std::lock_guard lock(log_mutex);
        log.push_back(a);
      });
  REQUIRE(srv);
  const auto port = (*srv)->port();
  CHECK(port != 0);

  SECTION("two requests on one connection, then Connection: close") {
    int fd = connect_to(port);
    std::string pending;
    send_all(fd, "GET /a?secret=x HTTP/1.1\r\nHost: t\r\n\r\n");
    auto a = read_response(fd, pending);
    CHECK(a.status == 200);
    CHECK(a.body == "GET /a 0");
    CHECK(a.headers["server"] == "tokctl");
    send_all(fd, http_post("/b", "x=1", "Connection: close\r\n"));
    auto b = read_response(fd, pending);
    CHECK(b.status == 200);
    CHECK(b.body == "POST /b 3");
    CHECK(closed_by_server(fd));
    ::close(fd);
    std::lock_guard lock(log_mutex);
    REQUIRE(log.size() == 2);
    CHECK(log[0].path == "/a");  // never the query
    CHECK(log[0].client_id == "c1");
  }
  SECTION("an absolute-form target is served as its path (RFC 9112 §3.2.2)") {
    int fd = connect_to(port);
    std::string pending;
    const std::pair<const char*, const char*> cases[] = {{"http://t/a?q=1", "GET /a 0"},
                                                         {"HTTPS://issuer.test:8443/oauth/token", "GET /oauth/token 0"},
                                                         {"http://t", "GET / 0"},
                                                         {"http://t?x", "GET / 0"},
                                                         {"/plain", "GET /plain 0"}};
    for (const auto& [target, want] : cases) {
      INFO(target);
      send_all(fd, std::string("GET ") + target + " HTTP/1.1\r\nHost: t\r\n\r\n");
      auto a = read_response(fd, pending);
      CHECK(a.status == 200);
      CHECK(a.body == want);
    }
    ::close(fd);
    std::lock_guard lock(log_mutex);
    REQUIRE(log.size() == 5);
    CHECK(log[0].path == "/a");  // the log never holds the query or the authority
    CHECK(log[1].path == "/oauth/token");
  }
  SECTION("pipelined requests are answered in order") {
    int fd = connect_to(port);
    std::string pending;
    send_all(fd, "GET /1 HTTP/1.1\r\nHost: t\r\n\r\nGET /2 HTTP/1.1\r\nHost: t\r\n\r\n");
    CHECK(read_response(fd, pending).body == "GET /1 0");
    CHECK(read_response(fd, pending).body == "GET /2 0");
    ::close(fd);
  }
  SECTION("HEAD: the length of the body, and no body") {
    int fd = connect_to(port);
    std::string pending;
    send_all(fd, "HEAD /h HTTP/1.1\r\nHost: t\r\n\r\n");
    auto h = read_response(fd, pending, true);
    CHECK(h.status == 200);
    CHECK(h.headers["content-length"] == "9");  // "HEAD /h 0"
    send_all(fd, "GET /x HTTP/1.1\r\nHost: t\r\n\r\n");  // nothing was left in between
    CHECK(read_response(fd, pending).body == "GET /x 0");
    ::close(fd);
  }
  SECTION("oversized header: 431; oversized body: 413; garbage: 400; each closes") {
    for (auto [request, status] : std::vector<std::pair<std::string, int>>{
             {"GET / HTTP/1.1\r\nHost: t\r\nX-Big: " + std::string(2000, 'a') + "\r\n\r\n", 431},
             {http_post("/p", std::string(2000, 'a')), 413},
             {"NOT HTTP AT ALL\r\n\r\n", 400},
             {"POST /p HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nabcde", 400}}) {
      CAPTURE(status);
      int fd = connect_to(port);
      std::string pending;
      send_all(fd, request);
      auto r = read_response(fd, pending);
      CHECK(r.status == status);
      CHECK(json::parse(r.body).at("error") == "invalid_request");
      CHECK(closed_by_server(fd));
      ::close(fd);
    }
    CHECK(handled == 0);
  }
  SECTION("a slow header is cut at the read timeout; an idle connection at the idle timeout") {
    int slow = connect_to(port);
    send_all(slow, "GET / HTTP/1.1\r\nHo");
    auto t0 = std::chrono::steady_clock::now();
    CHECK(closed_by_server(slow));
    CHECK(std::chrono::steady_clock::now() - t0 < std::chrono::seconds(3));
    ::close(slow);
    int idle = connect_to(port);
    CHECK(closed_by_server(idle));
    ::close(idle);
    CHECK(handled == 0);
  }
  SECTION("Expect: 100-continue gets its interim answer") {
    int fd = connect_to(port);
    std::string pending;
    send_all(fd, "POST /c HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\n");
    auto cont = read_response(fd, pending);
    CHECK(cont.status == 100);
    send_all(fd, "abc");
    CHECK(read_response(fd, pending).body == "POST /c 3");
    ::close(fd);
  }
  (*srv)->stop();
}

TEST_CASE("HTTP server: stop finishes the request in flight and closes idle connections", "[serve][http]") {
  std::atomic<bool> entered{false};
  ServerOptions o;
  o.port = 0;
  o.threads = 2;
  auto srv = HttpServer::start(o, [&](const HttpRequest&) {
    entered = true;
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    HttpResponse r;
    r.body = "done";
    return r;
  });
  REQUIRE(srv);
  int idle = connect_to((*srv)->port());
  int busy = connect_to((*srv)->port());
  send_all(busy, "GET / HTTP/1.1\r\nHost: t\r\n\r\n");
  while (!entered) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  std::thread stopper([&] { (*srv)->stop(std::chrono::seconds(5)); });
  std::string pending;
  auto r = read_response(busy, pending);
  CHECK(r.status == 200);
  CHECK(r.body == "done");
  CHECK(r.headers["connection"] == "close");
  CHECK(closed_by_server(idle));
  stopper.join();
  CHECK((*srv)->connections() == 0);
  ::close(idle);
  ::close(busy);
  // New connections are refused once stopped.
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons((*srv)->port());
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  CHECK(::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0);
  ::close(fd);
}

TEST_CASE("HTTP server: blocking requests wait together on their pool while the I/O thread serves others",
          "[serve][http]") {
  // One I/O thread. Three /slow requests (blocking) each wait until all three have arrived and a
  // /fast request was answered: only possible if they run on the blocking pool, side by side, and
  // the I/O thread is free meanwhile. Inline, the first would hold the only thread and time out.
  std::mutex mu;
  std::condition_variable cv;
  int arrived = 0;
  bool fast_done = false;
  ServerOptions o;
  o.port = 0;
  o.threads = 1;
  o.blocking_threads = 4;
  auto handler = [&](const HttpRequest& req) {
    HttpResponse r;
    if (req.path() == "/slow") {
      std::unique_lock lock(mu);
      ++arrived;
      cv.notify_all();
      const bool together = cv.wait_for(lock, std::chrono::seconds(3), [&] { return arrived >= 3 && fast_done; });
      r.body = together ? "together" : "alone";
    } else {
      std::lock_guard lock(mu);
      fast_done = arrived >= 3;  // answered while the three wait
      cv.notify_all();
      r.body = "fast";
    }
    return r;
  };
  auto srv = HttpServer::start(o, handler, {}, [](const HttpRequest& req) { return req.path() == "/slow"; });
  REQUIRE(srv);
  int slow[3];
  for (int& fd : slow) {
    fd = connect_to((*srv)->port());
    send_all(fd, "GET /slow HTTP/1.1\r\nHost: t\r\n\r\n");
  }
  {
    std::unique_lock lock(mu);
    REQUIRE(cv.wait_for(lock, std::chrono::seconds(3), [&] { return arrived >= 3; }));
  }
  int fast = connect_to((*srv)->port());
  std::string pending;
  send_all(fast, "GET /fast HTTP/1.1\r\nHost: t\r\n\r\n");
  CHECK(read_response(fast, pending).body == "fast");
  for (int fd : slow) {
    std::string p;
    auto r = read_response(fd, p);
    CHECK(r.status == 200);
    CHECK(r.body == "together");
    // The connection is back on its I/O thread, kept alive: the next request is served.
    CHECK(get_body(fd, p, "/fast") == "fast");
    ::close(fd);
  }
  ::close(fast);
  (*srv)->stop();
  CHECK((*srv)->connections() == 0);
}

TEST_CASE("HTTP server: an async handler answers later, from another thread, once", "[serve][http]") {
  // One I/O thread. /later keeps its Respond and returns; a helper thread answers it (twice: the
  // second is ignored) only after /now, on another connection, was served by the same thread.
  std::mutex mu;
  std::condition_variable cv;
  std::optional<Respond> pending;
  ServerOptions o;
  o.port = 0;
  o.threads = 1;
  auto handler = [&](const HttpRequest& req, Respond respond) {
    if (req.path() == "/later") {
      std::lock_guard lock(mu);
      pending = std::move(respond);
      cv.notify_all();
      return;
    }
    respond(HttpResponse{200, {}, "now", {}});
  };
  auto srv = HttpServer::start_async(o, handler);
  REQUIRE(srv);
  int later = connect_to((*srv)->port());
  send_all(later, "GET /later HTTP/1.1\r\nHost: t\r\n\r\n");
  {
    std::unique_lock lock(mu);
    REQUIRE(cv.wait_for(lock, std::chrono::seconds(3), [&] { return pending.has_value(); }));
  }
  int now = connect_to((*srv)->port());
  std::string p_now, p_later;
  send_all(now, "GET /now HTTP/1.1\r\nHost: t\r\n\r\n");
  CHECK(read_response(now, p_now).body == "now");
  std::thread answer([&] {
    (*pending)(HttpResponse{200, {}, "first", {}});
    (*pending)(HttpResponse{500, {}, "second", {}});
  });
  answer.join();
  auto r = read_response(later, p_later);
  CHECK(r.status == 200);
  CHECK(r.body == "first");
  // Kept alive: the next request on that connection is served normally.
  CHECK(get_body(later, p_later, "/now") == "now");
  ::close(later);
  ::close(now);
  pending.reset();
  (*srv)->stop();
}

TEST_CASE("OAuthEndpoints::writes: revocation, refresh and exchange wait for the store; client_credentials does not",
          "[serve][oauth]") {
  auto req = [](const std::string& method, const std::string& path, const std::string& body) {
    HttpRequest r;
    r.method = method;
    r.target = path;
    r.body = body;
    return r;
  };
  CHECK(OAuthEndpoints::writes(req("POST", "/oauth/revoke", "token=x")));
  CHECK(OAuthEndpoints::writes(req("POST", "/oauth/token", "grant_type=refresh_token&refresh_token=x")));
  CHECK(OAuthEndpoints::writes(req("POST", "/oauth/token", "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Atoken-exchange")));
  CHECK_FALSE(OAuthEndpoints::writes(req("POST", "/oauth/token", "grant_type=client_credentials&scope=read")));
  CHECK_FALSE(OAuthEndpoints::writes(
      req("POST", "/oauth/token", "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer&assertion=x")));
  CHECK_FALSE(OAuthEndpoints::writes(req("POST", "/oauth/token", "grant_type=%zz")));  // refused at once
  CHECK_FALSE(OAuthEndpoints::writes(req("POST", "/oauth/introspect", "token=x")));
  CHECK_FALSE(OAuthEndpoints::writes(req("GET", "/oauth/token", "")));
}

TEST_CASE("HTTP server: past the grace period, queued blocking requests never start", "[serve][http]") {
  // One blocking thread, three blocking requests: the first runs (slowly), two wait in the
  // pool's queue. A stop with a short grace lets the first finish and drops the other two
  // without running them (a write whose answer can no longer be sent must not happen), and
  // destroys them while the server's state still exists (ASan sees the order).
  std::atomic<int> started{0};
  ServerOptions o;
  o.port = 0;
  o.threads = 1;
  o.blocking_threads = 1;
  auto handler = [&](const HttpRequest&) {
    ++started;
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    return HttpResponse{200, {}, "slow", {}};
  };
  auto srv = HttpServer::start(o, handler, {}, [](const HttpRequest&) { return true; });
  REQUIRE(srv);
  int fds[3];
  for (int& fd : fds) {
    fd = connect_to((*srv)->port());
    send_all(fd, "GET / HTTP/1.1\r\nHost: t\r\n\r\n");
  }
  for (int i = 0; i < 200 && started.load() == 0; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  REQUIRE(started.load() == 1);
  std::this_thread::sleep_for(std::chrono::milliseconds(50));  // the other two reach the queue
  (*srv)->stop(std::chrono::milliseconds(20));
  CHECK(started.load() == 1);
  std::this_thread::sleep_for(std::chrono::milliseconds(400));
  CHECK(started.load() == 1);
  for (int fd : fds) ::close(fd);
  srv->reset();
}

TEST_CASE("HTTP server: a port in use and a bad address are clear errors", "[serve][http]") {
  ServerOptions o;
  o.port = 0;
  auto first = HttpServer::start(o, [](const HttpRequest&) { return HttpResponse{}; });
  REQUIRE(first);
  o.port = (*first)->port();
  auto second = HttpServer::start(o, [](const HttpRequest&) { return HttpResponse{}; });
  REQUIRE_FALSE(second);
  CHECK(second.error().code == ErrorCode::network);
  CHECK_THAT(second.error().message, Contains(std::to_string(o.port)));
  o.host = "not-an-ip";
  auto bad = HttpServer::start(o, [](const HttpRequest&) { return HttpResponse{}; });
  REQUIRE_FALSE(bad);
  CHECK(bad.error().code == ErrorCode::usage);
}

// ---- tokctl serve as a process (tokctl::test::ServeProcess) -------------------------------------

TEST_CASE("tokctl serve --dev: ready line, a real token, clean SIGTERM, no secret in the log", "[serve][cli]") {
  ServeProcess p({"serve", "--dev", "--listen", "127.0.0.1:0", "--threads", "2"});
  auto ready = json::parse(p.first_line());
  const std::string listen = ready.at("listen");
  REQUIRE(listen.rfind("127.0.0.1:", 0) == 0);
  const auto port = static_cast<std::uint16_t>(std::stoi(listen.substr(10)));
  CHECK(ready.at("issuer") == "http://" + listen);
  CHECK(ready.at("token_endpoint") == "http://" + listen + "/oauth/token");
  CHECK(ready.at("client_id") == "dev");
  const std::string secret = ready.at("client_secret");

  int fd = connect_to(port);
  std::string pending;
  send_all(fd, http_post("/oauth/token", "grant_type=client_credentials&scope=read",
                         "Authorization: Basic " + b64_encode("dev:" + secret) + "\r\n"));
  auto r = read_response(fd, pending);
  REQUIRE(r.status == 200);
  const std::string token = json::parse(r.body).at("access_token");
  // The token verifies against the server's JWKS.
  send_all(fd, "GET /oauth/jwks HTTP/1.1\r\nHost: t\r\n\r\n");
  auto jwks = read_response(fd, pending);
  REQUIRE(jwks.status == 200);
  TempDir dir;
  write_file(dir.file("jwks.json"), jwks.body);
  auto v = tokctl::test::run({"verify", token, "--jwks", dir.file("jwks.json"), "--iss", "http://" + listen});
  CHECK(v.code == 0);
  ::close(fd);

  auto [code, log] = p.terminate();
  CHECK(code == 0);
  CHECK_THAT(log, Contains("\"path\":\"/oauth/token\""));
  CHECK_THAT(log, Contains("\"client_id\":\"dev\""));
  CHECK(log.find(secret) == std::string::npos);
  CHECK(log.find(token) == std::string::npos);
  CHECK(log.find(token.substr(token.rfind('.') + 1)) == std::string::npos);
  CHECK(log.find("Basic") == std::string::npos);
  // Every line is one JSON object; a request line has exactly the documented fields.
  std::istringstream lines(log);
  int requests = 0;
  for (std::string line; std::getline(lines, line);) {
    INFO(line);
    auto j = json::parse(line);  // throws (fails the test) on anything that is not JSON
    REQUIRE(j.is_object());
    if (!j.contains("method")) continue;  // a notice
    ++requests;
    CHECK(j.at("time").is_string());
    CHECK(j.at("latency_us").is_number_integer());
    CHECK(j.at("status").is_number_integer());
    CHECK(j.at("path").is_string());
    CHECK(j.size() == (j.contains("client_id") ? 6u : 5u));
    if (j.at("path") == "/oauth/token") {
      CHECK(j.at("method") == "POST");
      CHECK(j.at("status") == 200);
      CHECK(j.at("client_id") == "dev");
    }
  }
  CHECK(requests == 2);
}

TEST_CASE("tokctl serve refuses a bad --listen and a port in use with exit codes 2 and 5", "[serve][cli]") {
  CHECK(tokctl::test::run({"serve", "--dev", "--listen", "nonsense"}).code == 2);
  CHECK(tokctl::test::run({"serve", "--dev", "--listen", "127.0.0.1:99999"}).code == 2);
  ServerOptions o;
  o.port = 0;
  auto taken = HttpServer::start(o, [](const HttpRequest&) { return HttpResponse{}; });
  REQUIRE(taken);
  auto r = tokctl::test::run({"serve", "--dev", "--listen", "127.0.0.1:" + std::to_string((*taken)->port())});
  CHECK(r.code == 5);
  CHECK_THAT(r.err, Contains("--listen"));
}

TEST_CASE("tokctl serve picks up keys rotate on its keystore without a restart", "[serve][cli]") {
  TempDir dir;
  const std::string ks = dir.file("ks");
  const std::string secret = tokens::generate_client_secret();
  write_file(dir.file("p.yaml"), "issuer: https://rotate.test\nscopes:\n  - name: read\ntokens:\n  access: {format: jwt}\n"
                                 "clients:\n  api: {secret_hash: \"" + tokens::hash_generated_secret(secret) + "\"}\n");
  REQUIRE(tokctl::test::run({"--keystore", ks, "keys", "add", "--alg", "ES256", "-q"}).code == 0);
  ServeProcess p({"--config", dir.file("p.yaml"), "--keystore", ks, "serve", "--listen", "127.0.0.1:0"});
  auto ready = json::parse(p.first_line());
  CHECK(ready.at("issuer") == "https://rotate.test");
  CHECK_FALSE(ready.contains("client_secret"));  // only --dev has a generated one
  const std::string listen = ready.at("listen");
  const auto port = static_cast<std::uint16_t>(std::stoi(listen.substr(listen.rfind(':') + 1)));
  auto kid_of_new_token = [&] {
    int fd = connect_to(port);
    std::string pending;
    send_all(fd, http_post("/oauth/token", "grant_type=client_credentials",
                           "Authorization: Basic " + b64_encode("api:" + secret) + "\r\n"));
    auto r = read_response(fd, pending);
    ::close(fd);
    REQUIRE(r.status == 200);
    const std::string token = json::parse(r.body).at("access_token");
    return json::parse(b64url_decode(token.substr(0, token.find('.'))).value()).at("kid").get<std::string>();
  };
  // The JWKS and its ETag (kept per key ring by each I/O thread): asked on fresh connections, so
  // both threads answer.
  auto jwks = [&](const std::string& if_none_match = "") {
    return tokctl::test::exchange(port, "GET /oauth/jwks HTTP/1.1\r\nHost: t\r\n" +
                              (if_none_match.empty() ? "" : "If-None-Match: " + if_none_match + "\r\n") + "\r\n");
  };
  const std::string before = kid_of_new_token();
  const auto jwks_before = jwks();
  REQUIRE(jwks_before.status == 200);
  const std::string etag_before = jwks_before.headers.at("etag");
  for (int i = 0; i < 4; ++i) CHECK(jwks(etag_before).status == 304);
  REQUIRE(tokctl::test::run({"--keystore", ks, "keys", "add", "--alg", "ES256", "-q"}).code == 0);
  auto rotated = tokctl::test::run({"-o", "json", "--keystore", ks, "keys", "rotate", "--alg", "ES256", "--force"});
  REQUIRE(rotated.code == 0);
  std::string after = before;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (after == before && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    after = kid_of_new_token();
  }
  CHECK(after != before);
  CHECK_THAT(rotated.out, Contains(after));
  // A new key set, a new ETag, on every connection (thread): the old one no longer matches.
  for (int i = 0; i < 4; ++i) {
    const auto now = jwks(etag_before);
    REQUIRE(now.status == 200);
    CHECK(now.headers.at("etag") != etag_before);
    CHECK_THAT(now.body, Contains(after));
    CHECK(jwks(now.headers.at("etag")).status == 304);
  }
  auto [code, log] = p.terminate();
  CHECK(code == 0);
}

TEST_CASE("tokctl revoke next to tokctl serve ends the token at the server's next introspection", "[serve][cli]") {
  // The server caches lookups; a revocation by another process must still be seen at once.
  TempDir dir;
  const std::string ks = dir.file("ks");
  const std::string secret = tokens::generate_client_secret();
  write_file(dir.file("p.yaml"), "issuer: https://cache.test\nscopes:\n  - name: read\ntokens:\n  access: {format: opaque}\n"
                                 "clients:\n  api: {secret_hash: \"" + tokens::hash_generated_secret(secret) + "\"}\n");
  REQUIRE(tokctl::test::run({"--keystore", ks, "keys", "add", "--alg", "ES256", "-q"}).code == 0);
  ServeProcess p({"--config", dir.file("p.yaml"), "--keystore", ks, "serve", "--listen", "127.0.0.1:0"});
  const std::string listen = json::parse(p.first_line()).at("listen");
  const auto port = static_cast<std::uint16_t>(std::stoi(listen.substr(listen.rfind(':') + 1)));
  const std::string auth = "Authorization: Basic " + b64_encode("api:" + secret) + "\r\n";
  int fd = connect_to(port);
  std::string pending;
  send_all(fd, http_post("/oauth/token", "grant_type=client_credentials&scope=read", auth));
  auto issued = read_response(fd, pending);
  REQUIRE(issued.status == 200);
  const std::string token = json::parse(issued.body).at("access_token");
  auto active = [&] {
    send_all(fd, http_post("/oauth/introspect", "token=" + token, auth));
    auto r = read_response(fd, pending);
    REQUIRE(r.status == 200);
    return json::parse(r.body).at("active").get<bool>();
  };
  CHECK(active());
  CHECK(active());  // now served from the cache
  auto revoked = tokctl::test::run({"--config", dir.file("p.yaml"), "--keystore", ks, "revoke", token});
  CHECK(revoked.code == 0);
  CHECK_FALSE(active());
  ::close(fd);
  auto [code, log] = p.terminate();
  CHECK(code == 0);
}

TEST_CASE("SIGKILL under load loses no token a client received", "[serve][cli]") {
  TempDir dir;
  const std::string ks = dir.file("ks");
  const std::string secret = tokens::generate_client_secret();
  write_file(dir.file("p.yaml"), "issuer: https://kill.test\nscopes:\n  - name: read\ntokens:\n  access: {format: opaque}\n"
                                 "clients:\n  api: {secret_hash: \"" + tokens::hash_generated_secret(secret) + "\"}\n");
  REQUIRE(tokctl::test::run({"--keystore", ks, "keys", "add", "--alg", "ES256", "-q"}).code == 0);
  const std::vector<std::string> args = {"--config", dir.file("p.yaml"), "--keystore", ks, "serve", "--listen", "127.0.0.1:0"};
  auto port_of = [](ServeProcess& p) {
    const std::string listen = json::parse(p.first_line()).at("listen");
    return static_cast<std::uint16_t>(std::stoi(listen.substr(listen.rfind(':') + 1)));
  };
  const std::string request = http_post("/oauth/token", "grant_type=client_credentials&scope=read",
                                        "Authorization: Basic " + b64_encode("api:" + secret) + "\r\n");
  std::vector<std::string> received;  // every token a client got a 200 for
  {
    ServeProcess p(args);
    const auto port = port_of(p);
    // Two keep-alive clients issue as fast as they can; the server is killed under them.
    std::vector<std::vector<std::string>> got(2);
    std::atomic<bool> go{true};
    std::vector<std::thread> clients;
    for (std::size_t c = 0; c < got.size(); ++c) {
      clients.emplace_back([&, c] {
        int fd = try_connect(port);
        if (fd < 0) return;
        std::string pending;
        try {  // nothing may escape a worker thread
          while (go) {
            send_all(fd, request);
            auto r = read_response(fd, pending);
            if (r.closed || r.status != 200) break;
            got[c].push_back(json::parse(r.body).at("access_token").get<std::string>());
          }
        } catch (const std::exception&) {
          // a response cut by the kill: not acknowledged
        }
        ::close(fd);
      });
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(400));
    ::kill(p.pid(), SIGKILL);
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    go = false;
    for (auto& t : clients) t.join();
    for (auto& g : got) received.insert(received.end(), g.begin(), g.end());
  }
  REQUIRE(received.size() > 20);  // it was under load when it died
  // Restarted on the same store: every token received is active.
  tokctl::SystemClock clock;
  auto svc = tokctl::test::open_service(dir.file("p.yaml"), ks, clock);
  std::size_t inactive = 0;
  for (const auto& t : received) {
    auto info = svc->introspect(t);
    if (!info || info->at("active") != true) ++inactive;
  }
  CHECK(inactive == 0);
}

// ---- TLS and mTLS ------------------------------------------------------------------------------

namespace {

// A throwaway CA, a server certificate for 127.0.0.1 and a client certificate, made by openssl.
struct Pki {
  TempDir dir;
  std::string file(const std::string& name) const { return dir.file(name); }

  void openssl(const std::vector<std::string>& args) const {
    std::vector<std::string> argv = {"openssl"};
    argv.insert(argv.end(), args.begin(), args.end());
    auto r = tokctl::test::run_program(argv);
    INFO(r.err);
    REQUIRE(r.code == 0);
  }

  void issue(const std::string& name, const std::string& subject, const std::string& ext) const {
    openssl({"req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", file(name + ".key"),
             "-subj", subject, "-out", file(name + ".csr")});
    write_file(file(name + ".ext"), ext);
    openssl({"x509", "-req", "-in", file(name + ".csr"), "-CA", file("ca.pem"), "-CAkey", file("ca.key"),
             "-CAcreateserial", "-days", "2", "-extfile", file(name + ".ext"), "-out", file(name + ".pem")});
  }

  Pki() {
    openssl({"req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", file("ca.key"),
             "-subj", "/CN=tokctl test CA", "-days", "2", "-out", file("ca.pem")});
    issue("server", "/CN=127.0.0.1", "subjectAltName=IP:127.0.0.1\n");
    issue("client", "/CN=billing/O=Example", "subjectAltName=DNS:billing.example.test,URI:spiffe://example/billing\n");
  }
};

tokctl::test::RunResult curl(const std::vector<std::string>& args) {
  std::vector<std::string> argv = {"curl", "-sS", "--max-time", "10"};
  argv.insert(argv.end(), args.begin(), args.end());
  return tokctl::test::run_program(argv);
}

}  // namespace

TEST_CASE("HTTP server over TLS 1.2+, with verified client certificates (mTLS)", "[serve][http][tls]") {
  Pki pki;
  ServerOptions o;
  o.port = 0;
  o.threads = 2;
  o.tls_cert = pki.file("server.pem");
  o.tls_key = pki.file("server.key");
  o.client_ca = pki.file("ca.pem");
  auto srv = HttpServer::start(o, [](const HttpRequest& r) {
    HttpResponse res;
    res.body = json{{"tls", r.tls}, {"subject", r.client_cert_subject}, {"sans", r.client_cert_sans}}.dump();
    return res;
  });
  REQUIRE(srv);
  const std::string url = "https://127.0.0.1:" + std::to_string((*srv)->port()) + "/x";

  auto anonymous = curl({"--cacert", pki.file("ca.pem"), url});
  INFO(anonymous.err);
  REQUIRE(anonymous.code == 0);
  auto a = json::parse(anonymous.out);
  CHECK(a.at("tls") == true);
  CHECK(a.at("subject") == "");  // requested, not required: other client auth still works

  auto mutual = curl({"--cacert", pki.file("ca.pem"), "--cert", pki.file("client.pem"), "--key", pki.file("client.key"), url});
  INFO(mutual.err);
  REQUIRE(mutual.code == 0);
  auto m = json::parse(mutual.out);
  CHECK(m.at("subject") == "O=Example,CN=billing");
  CHECK(m.at("sans") == json{"DNS:billing.example.test", "URI:spiffe://example/billing"});

  // A certificate from another CA fails the handshake; so do TLS 1.1 and plain HTTP.
  Pki other;
  CHECK(curl({"--cacert", pki.file("ca.pem"), "--cert", other.file("client.pem"), "--key", other.file("client.key"), url})
            .code != 0);
  CHECK(curl({"--cacert", pki.file("ca.pem"), "--tlsv1.1", "--tls-max", "1.1", url}).code != 0);
  CHECK(curl({"http://127.0.0.1:" + std::to_string((*srv)->port()) + "/x"}).code != 0);
  // The server still serves after all that.
  CHECK(curl({"--cacert", pki.file("ca.pem"), url}).code == 0);
}

TEST_CASE("tls_client_auth: tokctl serve with mTLS issues to the client its certificate names", "[serve][cli][tls]") {
  Pki pki;
  TempDir dir;
  const std::string ks = dir.file("ks");
  const std::string bound_secret = tokens::generate_client_secret();
  write_file(dir.file("p.yaml"), "issuer: https://mtls.test\nscopes:\n  - name: read\n"
                                 "clients:\n"
                                 "  billing: {tls_client_auth: {subject_dn: \"O=Example,CN=billing\"}, scopes: [read],"
                                 " tls_client_certificate_bound_access_tokens: true}\n"
                                 "  bound: {secret_hash: \"" + tokens::hash_generated_secret(bound_secret) + "\", scopes: [read],"
                                 " format: opaque, tls_client_certificate_bound_access_tokens: true}\n"
                                 "  spiffe: {tls_client_auth: {san_uri: [\"spiffe://example/billing\"]}}\n"
                                 "  other: {tls_client_auth: {san_dns: [other.example.test]}}\n");
  REQUIRE(tokctl::test::run({"--keystore", ks, "keys", "add", "--alg", "ES256", "-q"}).code == 0);
  ServeProcess p({"--config", dir.file("p.yaml"), "--keystore", ks, "serve", "--listen", "127.0.0.1:0", "--tls-cert",
                  pki.file("server.pem"), "--tls-key", pki.file("server.key"), "--client-ca", pki.file("ca.pem")});
  auto ready = json::parse(p.first_line());
  const std::string base = "https://" + ready.at("listen").get<std::string>();
  const std::vector<std::string> cert = {"--cacert", pki.file("ca.pem"), "--cert", pki.file("client.pem"), "--key",
                                         pki.file("client.key")};
  auto token_for = [&](const std::string& client, bool with_cert) {
    std::vector<std::string> args = with_cert ? cert : std::vector<std::string>{"--cacert", pki.file("ca.pem")};
    args.insert(args.end(), {"-d", "grant_type=client_credentials", "-d", "client_id=" + client, base + "/oauth/token"});
    auto r = curl(args);
    INFO(r.err);
    REQUIRE(r.code == 0);
    return json::parse(r.out);
  };
  auto ok = token_for("billing", true);
  CHECK(ok.contains("access_token"));
  CHECK(token_for("spiffe", true).contains("access_token"));  // by URI SAN
  CHECK(token_for("other", true).at("error") == "invalid_client");  // the certificate is not theirs
  CHECK(token_for("billing", false).at("error") == "invalid_client");  // no certificate
  auto meta = curl({"--cacert", pki.file("ca.pem"), base + "/.well-known/oauth-authorization-server"});
  CHECK(json::parse(meta.out).at("token_endpoint_auth_methods_supported").back() == "tls_client_auth");
  CHECK(json::parse(meta.out).at("tls_client_certificate_bound_access_tokens") == true);

  // RFC 8705 §3: certificate-bound access tokens. The thumbprint, by openssl: base64url of the
  // SHA-256 of the certificate's DER.
  pki.openssl({"x509", "-in", pki.file("client.pem"), "-outform", "DER", "-out", pki.file("client.der")});
  auto dgst = tokctl::test::run_program({"openssl", "dgst", "-sha256", "-binary", pki.file("client.der")});
  REQUIRE(dgst.code == 0);
  REQUIRE(dgst.out.size() == 32);
  const std::string x5t = b64url_encode(dgst.out);
  auto claims_of = [](const std::string& jwt) {
    const auto a = jwt.find('.'), b = jwt.find('.', a + 1);
    return json::parse(*b64url_decode(jwt.substr(a + 1, b - a - 1)));
  };
  CHECK(claims_of(ok.at("access_token")).at("cnf") == json{{"x5t#S256", x5t}});  // billing is bound
  CHECK_FALSE(claims_of(token_for("spiffe", true).at("access_token")).contains("cnf"));  // spiffe is not
  // A bound client authenticating with a secret over mTLS: an opaque token, cnf in introspection.
  auto with_secret = [&](std::vector<std::string> args) {
    args.insert(args.end(), {"-u", "bound:" + bound_secret, base + "/oauth/token"});
    auto r = curl(args);
    REQUIRE(r.code == 0);
    return json::parse(r.out);
  };
  std::vector<std::string> cc = cert;
  cc.insert(cc.end(), {"-d", "grant_type=client_credentials"});
  auto opaque = with_secret(cc);
  REQUIRE(opaque.contains("access_token"));
  auto introspect = [&](const std::string& token) {
    std::vector<std::string> args = cert;
    args.insert(args.end(), {"-u", "bound:" + bound_secret, "-d", "token=" + token, base + "/oauth/introspect"});
    return json::parse(curl(args).out);
  };
  CHECK(introspect(opaque.at("access_token")).at("cnf") == json{{"x5t#S256", x5t}});
  // Without a certificate it gets no token at all (never an unbound one).
  auto refused = with_secret({"--cacert", pki.file("ca.pem"), "-d", "grant_type=client_credentials"});
  CHECK(refused.at("error") == "invalid_request");
  CHECK_THAT(refused.at("error_description").get<std::string>(), Contains("RFC 8705"));
  // A refresh: the new access token is bound to the certificate presented now.
  auto minted = tokctl::test::run({"--config", dir.file("p.yaml"), "--keystore", ks, "-o", "json", "issue",
                                   "--client-id", "bound", "--sub", "alice", "--scope", "read", "--with-refresh"});
  REQUIRE(minted.code == 0);
  std::vector<std::string> rt = cert;
  rt.insert(rt.end(), {"-d", "grant_type=refresh_token", "-d",
                       "refresh_token=" + json::parse(minted.out).at("refresh_token").get<std::string>()});
  auto refreshed = with_secret(rt);
  REQUIRE(refreshed.contains("access_token"));
  CHECK(introspect(refreshed.at("access_token")).at("cnf") == json{{"x5t#S256", x5t}});
  CHECK_FALSE(introspect(json::parse(minted.out).at("access_token")).contains("cnf"));  // the CLI's is not bound
  // GET /phantom: a gateway authenticated by its certificate, named in the query (for an unbound
  // token: spiffe's).
  const std::string unbound = token_for("spiffe", true).at("access_token");
  auto phantom = [&](const std::string& query, bool with_cert) {
    std::vector<std::string> args = with_cert ? cert : std::vector<std::string>{"--cacert", pki.file("ca.pem")};
    args.insert(args.end(), {"-s", "-o", "/dev/null", "-D", "-", "-H", "Authorization: Bearer " + unbound,
                             base + "/phantom" + query});
    auto r = curl(args);
    INFO(r.err);
    REQUIRE(r.code == 0);
    return r.out;
  };
  const std::string granted = phantom("?client_id=billing", true);
  CHECK_THAT(granted, Contains("HTTP/1.1 200 OK\r\n"));
  CHECK_THAT(granted, Contains("Authorization: Bearer ey"));
  CHECK_THAT(phantom("?client_id=other", true), Contains("HTTP/1.1 407 "));  // not the certificate's client
  CHECK_THAT(phantom("?client_id=billing", false), Contains("HTTP/1.1 407 "));  // no certificate
  CHECK_THAT(phantom("", true), Contains("HTTP/1.1 407 "));  // no client named
  auto [code, log] = p.terminate();
  CHECK(code == 0);
}

TEST_CASE("GET /phantom exchanges a certificate-bound token only with its certificate (Client-Cert)",
          "[serve][oauth][tls]") {
  Pki pki;
  Fixture fx;
  pki.openssl({"x509", "-in", pki.file("client.pem"), "-outform", "DER", "-out", pki.file("client.der")});
  auto dgst = tokctl::test::run_program({"openssl", "dgst", "-sha256", "-binary", pki.file("client.der")});
  REQUIRE(dgst.code == 0);
  const std::string x5t = b64url_encode(dgst.out);
  HttpRequest issue;
  issue.method = "POST";
  issue.target = "/oauth/token";
  issue.body = "grant_type=client_credentials&scope=read";
  issue.headers = {{"content-type", "application/x-www-form-urlencoded"}, {"authorization", fx.basic("api-bound", fx.api_secret)}};
  issue.client_cert_x5t = x5t;
  auto issued = fx.endpoints->handle(issue);
  REQUIRE(issued.status == 200);
  const std::string token = body_of(issued).at("access_token");
  auto phantom = [&](std::vector<std::pair<std::string, std::string>> extra) {
    std::vector<std::pair<std::string, std::string>> h = {{"proxy-authorization", fx.basic("gw", fx.gw_secret)},
                                                           {"authorization", "Bearer " + token}};
    h.insert(h.end(), extra.begin(), extra.end());
    return fx.get("/phantom", h);
  };
  const std::string der = tokctl::test::read_file(pki.file("client.der"));
  const std::string pem = tokctl::test::read_file(pki.file("client.pem"));
  std::string escaped;  // as nginx's $ssl_client_escaped_cert
  for (unsigned char c : pem) {
    if (std::isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~') {
      escaped.push_back(static_cast<char>(c));
    } else {
      char buf[4];
      std::snprintf(buf, sizeof buf, "%%%02X", c);
      escaped += buf;
    }
  }
  for (const std::string& cert : {":" + b64_encode(der) + ":", escaped}) {
    auto ok = phantom({{"client-cert", cert}});
    INFO(ok.body);
    REQUIRE(ok.status == 200);
    const std::string jwt = header_of(ok, "Authorization").substr(7);
    const auto a = jwt.find('.'), b = jwt.find('.', a + 1);
    CHECK(json::parse(*b64url_decode(jwt.substr(a + 1, b - a - 1))).at("cnf") == json{{"x5t#S256", x5t}});
    CHECK(header_of(ok, "Cache-Control") == "no-store");  // a cache keyed on the token would skip the check
  }
  std::string chain = escaped;  // a second certificate, or anything, after the first: refused
  for (unsigned char c : tokctl::test::read_file(pki.file("server.pem"))) {
    char buf[4];
    std::snprintf(buf, sizeof buf, "%%%02X", c);
    chain += buf;
  }
  CHECK(phantom({{"client-cert", chain}}).status == 401);
  CHECK(phantom({{"client-cert", escaped + "garbage"}}).status == 401);
  auto without = phantom({});
  CHECK(without.status == 401);
  CHECK_THAT(body_of(without).at("error_description").get<std::string>(), Contains("sent none"));
  auto other = phantom({{"client-cert", ":" + b64_encode(tokctl::test::read_file(pki.file("ca.pem"))) + ":"}});
  CHECK(other.status == 401);  // not DER
  pki.openssl({"x509", "-in", pki.file("server.pem"), "-outform", "DER", "-out", pki.file("server.der")});
  auto wrong = phantom({{"client-cert", ":" + b64_encode(tokctl::test::read_file(pki.file("server.der"))) + ":"}});
  CHECK(wrong.status == 401);
  CHECK_THAT(body_of(wrong).at("error_description").get<std::string>(), Contains("another"));
  auto two = phantom({{"client-cert", ":" + b64_encode(der) + ":"}, {"client-cert", ":" + b64_encode(der) + ":"}});
  CHECK(two.status == 401);
  for (const char* junk : {"", ":", "::", ":!!:", "%zz", "-----BEGIN CERTIFICATE-----", "%2D%2D%2D"}) {
    INFO(junk);
    CHECK(phantom({{"client-cert", junk}}).status == 401);
  }
  // An unbound token needs no certificate.
  auto plain = fx.get("/phantom", {{"proxy-authorization", fx.basic("gw", fx.gw_secret)}, {"authorization", "Bearer " + fx.token()}});
  CHECK(plain.status == 200);
}

TEST_CASE("verify --cnf-cert checks an RFC 8705 binding and says whose certificate it is", "[serve][cli][tls]") {
  Pki pki;
  TempDir dir;
  const std::string ks = dir.file("ks");
  REQUIRE(tokctl::test::run({"--keystore", ks, "keys", "add", "--alg", "ES256", "-q"}).code == 0);
  pki.openssl({"x509", "-in", pki.file("client.pem"), "-outform", "DER", "-out", pki.file("client.der")});
  auto dgst = tokctl::test::run_program({"openssl", "dgst", "-sha256", "-binary", pki.file("client.der")});
  REQUIRE(dgst.code == 0);
  const std::string x5t = b64url_encode(dgst.out);
  auto sign = [&](const std::string& cnf) { return tokctl::test::sign_with_cnf(ks, cnf); };
  const std::string bound = sign(json{{"x5t#S256", x5t}}.dump());
  auto verify = [&](const std::string& token, const std::string& cert) {
    return tokctl::test::run({"--keystore", ks, "-o", "json", "verify", token, "--cnf-cert", cert});
  };
  CHECK(verify(bound, pki.file("client.pem")).code == 0);
  CHECK(verify(bound, pki.file("client.der")).code == 0);  // DER as well
  auto other = verify(bound, pki.file("server.pem"));
  CHECK(other.code == 1);
  auto doc = json::parse(other.out);
  CHECK(doc.at("errors").at(0).at("code") == "cnf_mismatch");
  CHECK_THAT(doc.at("errors").at(0).at("message").get<std::string>(), Contains(x5t));
  auto unbound = verify(sign(""), pki.file("client.pem"));
  CHECK(unbound.code == 1);
  CHECK_THAT(unbound.out, Contains("not bound to a certificate"));
  CHECK(verify(sign(R"({"jkt":"x"})"), pki.file("client.pem")).code == 1);  // another kind of binding
  auto not_cert = verify(bound, pki.file("client.key"));
  CHECK(not_cert.code == 3);
  CHECK_THAT(not_cert.err, Contains("--cnf-cert"));
  CHECK(verify(bound, dir.file("missing.pem")).code != 0);
  // Not a regular file: refused by name, nothing read.
  std::filesystem::create_directory(dir.file("a-dir"));
  REQUIRE(::mkfifo(dir.file("a-fifo").c_str(), 0600) == 0);
  for (const std::string& odd : {dir.file("a-dir"), dir.file("a-fifo"), std::string("/dev/zero")}) {
    INFO(odd);
    auto r = verify(bound, odd);
    CHECK(r.code == 2);
    CHECK_THAT(r.err, Contains("--cnf-cert") && Contains("not a regular file"));
  }
  write_file(dir.file("empty.pem"), "");
  CHECK(verify(bound, dir.file("empty.pem")).code == 3);
  // Without --cnf-cert the binding is not checked (a resource server's TLS layer does that).
  CHECK(tokctl::test::run({"--keystore", ks, "verify", bound, "-q"}).code == 0);
}

TEST_CASE("TLS set-up errors are usage errors naming the file", "[serve][http][tls]") {
  Pki pki;
  ServerOptions o;
  o.port = 0;
  auto handler = [](const HttpRequest&) { return HttpResponse{}; };
  o.tls_cert = pki.file("server.pem");
  auto only_cert = HttpServer::start(o, handler);
  REQUIRE_FALSE(only_cert);
  CHECK(only_cert.error().code == ErrorCode::usage);
  o.tls_key = pki.file("client.key");  // not the certificate's key
  auto mismatch = HttpServer::start(o, handler);
  REQUIRE_FALSE(mismatch);
  CHECK_THAT(mismatch.error().message, Contains("client.key"));
  CHECK_THAT(mismatch.error().message, Contains("mismatch"));
  o.tls_key = pki.file("missing.key");
  auto missing = HttpServer::start(o, handler);
  REQUIRE_FALSE(missing);
  CHECK_THAT(missing.error().message, Contains("missing.key"));
  ServerOptions plain;
  plain.port = 0;
  plain.client_ca = pki.file("ca.pem");
  CHECK_FALSE(HttpServer::start(plain, handler));
  // A directory, a FIFO (which would block a reader) or an oversized file, for each of the three.
  REQUIRE(::mkdir(pki.file("dir").c_str(), 0700) == 0);
  REQUIRE(::mkfifo(pki.file("fifo").c_str(), 0600) == 0);
  write_file(pki.file("big.pem"), std::string(2 * 1024 * 1024, 'A'));
  for (const char* bad : {"dir", "fifo", "big.pem"}) {
    for (int which = 0; which < 3; ++which) {
      CAPTURE(bad, which);
      ServerOptions t;
      t.port = 0;
      t.tls_cert = which == 0 ? pki.file(bad) : pki.file("server.pem");
      t.tls_key = which == 1 ? pki.file(bad) : pki.file("server.key");
      t.client_ca = which == 2 ? pki.file(bad) : pki.file("ca.pem");
      auto r = HttpServer::start(t, handler);
      REQUIRE_FALSE(r);
      CHECK(r.error().code == ErrorCode::usage);
      CHECK_THAT(r.error().message, Contains(pki.file(bad)));
    }
  }
  // An empty file, or text that is not PEM, is said to be that (not OpenSSL's "null parameter").
  write_file(pki.file("empty.pem"), "");
  write_file(pki.file("text.pem"), "hello\n");
  for (const char* bad : {"empty.pem", "text.pem"}) {
    for (int which = 0; which < 3; ++which) {
      CAPTURE(bad, which);
      ServerOptions t;
      t.port = 0;
      t.tls_cert = which == 0 ? pki.file(bad) : pki.file("server.pem");
      t.tls_key = which == 1 ? pki.file(bad) : pki.file("server.key");
      t.client_ca = which == 2 ? pki.file(bad) : pki.file("ca.pem");
      auto r = HttpServer::start(t, handler);
      REQUIRE_FALSE(r);
      CHECK(r.error().code == ErrorCode::usage);
      CHECK_THAT(r.error().message, Contains(std::string(bad) == "empty.pem" ? "the file is empty" : "it is not PEM"));
    }
  }
}

TEST_CASE("HTTP server: connections beyond the cap are closed at once, the others served", "[serve][http]") {
  ServerOptions o;
  o.port = 0;
  o.threads = 1;
  o.max_connections = 2;
  auto srv = HttpServer::start(o, [](const HttpRequest&) { return HttpResponse{200, {}, "ok", {}}; });
  REQUIRE(srv);
  int a = connect_to((*srv)->port());
  int b = connect_to((*srv)->port());
  // Both are registered once the server has accepted them.
  for (int i = 0; i < 200 && (*srv)->connections() < 2; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  REQUIRE((*srv)->connections() == 2);
  int c = connect_to((*srv)->port());  // the kernel accepts it; the server closes it unanswered
  CHECK(closed_by_server(c));
  std::string pending;
  send_all(a, "GET / HTTP/1.1\r\nHost: t\r\n\r\n");
  CHECK(read_response(a, pending).body == "ok");
  ::close(a);
  ::close(b);
  ::close(c);
  for (int i = 0; i < 200 && (*srv)->connections() > 0; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  int d = connect_to((*srv)->port());  // room again
  std::string pending_d;
  send_all(d, "GET / HTTP/1.1\r\nHost: t\r\n\r\n");
  CHECK(read_response(d, pending_d).body == "ok");
  ::close(d);
}
