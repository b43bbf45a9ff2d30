// tokctl serve's OAuth layer over real loopback HTTP (issue 9, audit findings): the cost of a failed
// client authentication does not tell which clients exist, KDF work stays off the I/O threads and a
// verified human secret is cached; exchanged tokens belong to the client that asked; client key sets
// that cannot verify are refused at start-up; exact metadata; error_description within RFC 6749's
// character set; NumericDate fractions in assertions; token type and RFC 8707 resource checks;
// Accept q-values and If-None-Match lists.

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <tokctl/jose/algorithm.hpp>
#include <tokctl/jose/jws.hpp>
#include <tokctl/server/http_server.hpp>
#include <tokctl/server/oauth.hpp>
#include <tokctl/tokens/clients.hpp>
#include <tokctl/tokens/policy.hpp>
#include <tokctl/util/base64.hpp>

#include "support/keys.hpp"
#include "support/raw_http.hpp"
#include "support/run.hpp"
#include "support/service_fixture.hpp"

using nlohmann::json;
using namespace tokctl;
using namespace tokctl::server;
using Catch::Matchers::Contains;
using namespace tokctl::test;  // the raw HTTP client
using tokctl::test::TempDir;
using tokctl::test::write_file;

namespace {

constexpr UnixTime k_now = 1767225600;  // 2026-01-01T00:00:00Z
using Seconds = std::chrono::duration<double>;

// ---- a raw HTTP/1.1 client over loopback (one connection per request) ---------------------------

std::string url_encode(std::string_view s) {
  static const char* hex = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~') {
      out.push_back(static_cast<char>(c));
    } else {
      out.push_back('%');
      out.push_back(hex[c >> 4]);
      out.push_back(hex[c & 15]);
    }
  }
  return out;
}

// One exchange on a fresh connection (Connection: close); status 0 when the connection failed.
RawResponse http(std::uint16_t port, const std::string& method, const std::string& path,
                 const std::vector<std::pair<std::string, std::string>>& headers = {}, const std::string& body = "") {
  std::string req = method + " " + path + " HTTP/1.1\r\nHost: t\r\nConnection: close\r\n";
  for (const auto& [k, v] : headers) req += k + ": " + v + "\r\n";
  if (method == "POST") {
    req += "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: " + std::to_string(body.size()) + "\r\n";
  }
  req += "\r\n" + body;
  int fd = try_connect(port, 30);
  if (fd < 0) return {};
  send_all(fd, req);
  std::string pending;
  auto r = read_response(fd, pending);
  ::close(fd);
  return r;
}

std::string basic(const std::string& id, const std::string& secret) {
  return "Basic " + b64_encode(url_encode(id) + ":" + url_encode(secret));
}

json payload_of(const std::string& jwt) {
  auto first = jwt.find('.');
  auto second = jwt.find('.', first + 1);
  auto raw = b64url_decode(jwt.substr(first + 1, second - first - 1));
  REQUIRE(raw);
  return json::parse(*raw);
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

// The service, its endpoints and the Beast server on a free loopback port, as `tokctl serve` wires
// them (two I/O threads; the writes predicate sends revocation/refresh/exchange to the pool).
struct Server {
  TempDir dir;
  FixedClock clock{k_now};
  std::string api_secret = tokens::generate_client_secret();
  std::string app_secret = tokens::generate_client_secret();
  std::string human_secret = "correct horse battery staple";
  std::unique_ptr<tokens::TokenService> service;
  std::unique_ptr<OAuthEndpoints> endpoints;
  std::unique_ptr<HttpServer> server;
  std::uint16_t port = 0;

  explicit Server(int human_iterations = 1000) {
    auto human_hash = tokens::hash_human_secret(human_secret, human_iterations);
    REQUIRE(human_hash);
    write_file(dir.file("tokctl.yaml"),
               "issuer: https://issuer.test\n"
               "scopes:\n  - name: read\n  - name: write\n"
               "tokens:\n  access: {format: opaque, ttl: 10m}\n"
               "clients:\n"
               "  api: {secret_hash: \"" + tokens::hash_generated_secret(api_secret) +
                   "\", scopes: [read, write], audiences: [api-a]}\n"
               "  app: {secret_hash: \"" + tokens::hash_generated_secret(app_secret) +
                   "\", grants: [client_credentials, token_exchange], scopes: [read, write]}\n"
               "  human: {secret_hash: \"" + *human_hash + "\", scopes: [read]}\n"
               "  signer: {token_endpoint_auth_method: private_key_jwt, scopes: [read], jwks: {keys: [" +
                   tokctl::test::test_key("p256").to_json(jose::KeyPart::public_only).dump() + "]}}\n"
               "exchange:\n  - from: api-a\n    to: [api-b, \"https://api-b.test/\"]\n    scopes: [read]\n"
               "    modes: [delegate]\n");
    service = tokctl::test::open_service(dir.file("tokctl.yaml"), dir.file("ks"), clock);
    endpoints = std::make_unique<OAuthEndpoints>(*service, clock);
    ServerOptions o;
    o.port = 0;
    o.threads = 2;
    const OAuthEndpoints* e = endpoints.get();
    auto srv = HttpServer::start_async(
        o, [e](const HttpRequest& req, Respond respond) { e->handle_async(req, std::move(respond)); }, {},
        &OAuthEndpoints::writes);
    REQUIRE(srv);
    server = std::move(*srv);
    port = server->port();
  }
  ~Server() {
    server->stop(std::chrono::milliseconds(2000));
    endpoints.reset();
  }

  RawResponse post(const std::string& path, const std::string& body,
                   std::vector<std::pair<std::string, std::string>> headers = {}) const {
    return http(port, "POST", path, headers, body);
  }
  RawResponse get(const std::string& path, std::vector<std::pair<std::string, std::string>> headers = {}) const {
    return http(port, "GET", path, headers);
  }
  std::string token(const std::string& id, const std::string& secret, const std::string& scope = "read") const {
    auto r = post("/oauth/token", "grant_type=client_credentials&scope=" + scope, {{"Authorization", basic(id, secret)}});
    INFO(r.body);
    REQUIRE(r.status == 200);
    return json::parse(r.body).at("access_token").get<std::string>();
  }
  // Seconds one request takes.
  double timed(const std::string& path, const std::string& body,
               std::vector<std::pair<std::string, std::string>> headers, int expect_status) const {
    auto t0 = std::chrono::steady_clock::now();
    auto r = post(path, body, std::move(headers));
    const double s = Seconds(std::chrono::steady_clock::now() - t0).count();
    CHECK(r.status == expect_status);
    return s;
  }
};

const std::string k_exchange = "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Atoken-exchange";
const std::string k_access_type = "urn%3Aietf%3Aparams%3Aoauth%3Atoken-type%3Aaccess_token";

}  // namespace

// ---- 1. client secrets: equal failure cost, no KDF on the I/O threads, a cache ------------------

TEST_CASE("serve: a wrong secret costs the same for an unknown client as for a known PBKDF2 one",
          "[serve][oauth][clientauth]") {
  Server s(600000);  // tokctl clients add --secret-file: the default iterations
  const std::string body = "grant_type=client_credentials&scope=read";
  double known = 1e9, unknown = 1e9, generated = 1e9, nosecret = 1e9;
  for (int i = 0; i < 3; ++i) {
    known = std::min(known, s.timed("/oauth/token", body, {{"Authorization", basic("human", "wrong")}}, 401));
    unknown = std::min(unknown, s.timed("/oauth/token", body, {{"Authorization", basic("nobody-" + std::to_string(i), "wrong")}}, 401));
    generated = std::min(generated, s.timed("/oauth/token", body, {{"Authorization", basic("api", "wrong")}}, 401));
    nosecret = std::min(nosecret, s.timed("/oauth/token", body, {{"Authorization", basic("signer", "wrong")}}, 401));
  }
  INFO("known PBKDF2 client " << known << " s, unknown " << unknown << " s, generated-secret client " << generated
                              << " s, client without secret " << nosecret << " s");
  // Before: the unknown client cost one SHA-256 (~0.001 s) against ~0.3 s.
  CHECK(unknown > 0.5 * known);
  CHECK(generated > 0.5 * known);
  CHECK(nosecret > 0.5 * known);
  CHECK(unknown < 2 * known + 0.5);
  // The right secret still works, for both kinds.
  CHECK(s.post("/oauth/token", body, {{"Authorization", basic("human", s.human_secret)}}).status == 200);
  CHECK(s.post("/oauth/token", body, {{"Authorization", basic("api", s.api_secret)}}).status == 200);
}

TEST_CASE("serve: a flood of wrong secrets does not stall /healthz, /oauth/jwks or generated-secret clients",
          "[serve][oauth][clientauth]") {
  Server s(600000);
  std::atomic<bool> stop{false};
  std::vector<std::thread> flood;
  for (int i = 0; i < 4; ++i) {
    flood.emplace_back([&, i] {
      const std::string path = i % 2 ? "/oauth/introspect" : "/oauth/token";
      const std::string body = i % 2 ? "token=x" : "grant_type=client_credentials";
      while (!stop) s.post(path, body, {{"Authorization", basic(i < 2 ? "human" : "nobody", "wrong")}});
    });
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(300));  // the flood is under way
  std::vector<double> health, jwks, issue;
  for (int i = 0; i < 12; ++i) {
    auto t0 = std::chrono::steady_clock::now();
    CHECK(s.get("/healthz").status == 200);
    auto t1 = std::chrono::steady_clock::now();
    CHECK(s.get("/oauth/jwks").status == 200);
    auto t2 = std::chrono::steady_clock::now();
    s.token("api", s.api_secret);
    auto t3 = std::chrono::steady_clock::now();
    health.push_back(Seconds(t1 - t0).count());
    jwks.push_back(Seconds(t2 - t1).count());
    issue.push_back(Seconds(t3 - t2).count());
  }
  stop = true;
  for (auto& t : flood) t.join();
  INFO("median latency under the flood: healthz " << median(health) << " s, jwks " << median(jwks)
                                                  << " s, client_credentials " << median(issue) << " s");
  // Before: the KDFs ran on the two I/O threads and these waited behind them (0.05-1.9 s).
  CHECK(median(health) < 0.1);
  CHECK(median(jwks) < 0.1);
  CHECK(median(issue) < 0.3);
}

TEST_CASE("serve: a human secret verified once is checked from the cache after, a wrong one never is",
          "[serve][oauth][clientauth]") {
  Server s(600000);
  const std::string body = "grant_type=client_credentials&scope=read";
  const std::vector<std::pair<std::string, std::string>> auth{{"Authorization", basic("human", s.human_secret)}};
  const double first = s.timed("/oauth/token", body, auth, 200);
  std::vector<double> later;
  for (int i = 0; i < 5; ++i) later.push_back(s.timed("/oauth/token", body, auth, 200));
  INFO("first " << first << " s, later median " << median(later) << " s");
  CHECK(median(later) < first / 4);
  // Another secret for the same client is not taken from the cache, and still pays the KDF.
  CHECK(s.timed("/oauth/token", body, {{"Authorization", basic("human", s.human_secret + "x")}}, 401) > first / 2);
  CHECK(s.post("/oauth/introspect", "token=nope", auth).status == 200);
  // client_secret_post too.
  CHECK(s.post("/oauth/token", body + "&client_id=human&client_secret=" + url_encode(s.human_secret)).status == 200);
}

TEST_CASE("SecretAuthenticator: the fast path decides only successes, failures all pay the policy's KDF",
          "[serve][clients]") {
  Server s(1000);
  tokens::SecretAuthenticator a(s.service->policy());
  CHECK(a.slow());
  CHECK(a.failure_iterations() == 1000);
  CHECK(a.authenticate_fast("api", s.api_secret).value_or(nullptr) == s.service->policy().client("api"));
  CHECK_FALSE(a.authenticate_fast("api", "wrong"));
  CHECK_FALSE(a.authenticate_fast("human", s.human_secret));  // not verified yet
  CHECK_FALSE(a.authenticate_fast("nobody", "x"));
  REQUIRE(a.authenticate("human", s.human_secret));
  CHECK(a.authenticate_fast("human", s.human_secret));
  CHECK_FALSE(a.authenticate_fast("human", s.human_secret + "x"));
  auto bad = a.authenticate("nobody", "x");
  REQUIRE_FALSE(bad);
  CHECK(bad.error().oauth == OAuthCode::invalid_client);
  CHECK(bad.error().message == "client authentication failed");
}

// ---- 2. token exchange: the requesting client ---------------------------------------------------

TEST_CASE("serve: an exchanged token belongs to the client that asked: client_id, act, revocation",
          "[serve][oauth][exchange]") {
  Server s;
  const std::string subject = s.token("api", s.api_secret);  // issued to api, aud api-a
  auto r = s.post("/oauth/token", k_exchange + "&subject_token=" + subject + "&subject_token_type=" + k_access_type +
                                      "&audience=api-b",
                  {{"Authorization", basic("app", s.app_secret)}});
  INFO(r.body);
  REQUIRE(r.status == 200);
  const std::string exchanged = json::parse(r.body).at("access_token").get<std::string>();
  const json claims = payload_of(exchanged);
  CHECK(claims.at("client_id") == "app");          // RFC 9068 §2.2 (was "api")
  CHECK(claims.at("act") == json{{"sub", "app"}});  // RFC 8693 §4.1 (was "api")
  CHECK(claims.at("sub") == "api");
  // The subject token's client may not revoke it; the one that asked may.
  CHECK(s.post("/oauth/revoke", "token=" + exchanged, {{"Authorization", basic("api", s.api_secret)}}).status == 200);
  CHECK(s.service->introspect(exchanged)->at("active") == true);
  CHECK(s.post("/oauth/revoke", "token=" + exchanged, {{"Authorization", basic("app", s.app_secret)}}).status == 200);
  CHECK(s.service->introspect(exchanged)->at("active") == false);
}

TEST_CASE("token exchange in core: a requesting client is the token's client and actor; without one, as before",
          "[exchange][serve]") {
  Server s;
  const std::string subject = s.token("api", s.api_secret);
  tokens::ExchangeRequest r;
  r.subject_token = subject;
  r.audience = {"api-b"};
  auto local = s.service->exchange(r);  // tokctl exchange: no requesting client
  REQUIRE(local);
  CHECK(payload_of(local->access.token).at("client_id") == "api");
  CHECK(payload_of(local->access.token).at("act") == json{{"sub", "api"}});
  r.client_id = "app";
  auto asked = s.service->exchange(r);
  REQUIRE(asked);
  CHECK(payload_of(asked->access.token).at("client_id") == "app");
  CHECK(payload_of(asked->access.token).at("act") == json{{"sub", "app"}});
  r.client_id = "nobody";
  auto unknown = s.service->exchange(r);
  REQUIRE_FALSE(unknown);
  CHECK(unknown.error().oauth == OAuthCode::invalid_client);
}

// ---- 3. key sets that cannot verify: refused at start-up, naming the client ---------------------

TEST_CASE("a client or assertion issuer jwks with an RSA key without alg is a policy error naming it",
          "[serve][policy]") {
  TempDir dir;
  json rsa = tokctl::test::test_key("rsa2048").to_json(jose::KeyPart::public_only);
  rsa.erase("alg");
  rsa["kid"] = "r1";
  json rsa_alg = rsa;
  rsa_alg["alg"] = "RS256";
  write_file(dir.file("noalg.jwks"), json{{"keys", json::array({rsa})}}.dump());
  write_file(dir.file("withalg.jwks"), json{{"keys", json::array({rsa_alg})}}.dump());
  write_file(dir.file("client.yaml"), "issuer: https://issuer.test\nscopes:\n  - name: read\nclients:\n"
                                      "  noalg: {jwks: ./noalg.jwks, scopes: [read]}\n"
                                      "  withalg: {jwks: ./withalg.jwks, scopes: [read]}\n");
  write_file(dir.file("issuer.yaml"), "issuer: https://issuer.test\nassertion_issuers:\n"
                                      "  - issuer: idp\n    jwks: ./noalg.jwks\n");
  write_file(dir.file("good.yaml"), "issuer: https://issuer.test\nscopes:\n  - name: read\nclients:\n"
                                    "  withalg: {jwks: ./withalg.jwks, scopes: [read]}\n");
  auto c = tokens::load_policy(dir.file("client.yaml"));
  REQUIRE_FALSE(c);
  CHECK_THAT(c.error().message, Contains("client 'noalg'"));
  CHECK_THAT(c.error().message, Contains("pins no algorithm"));
  CHECK_THAT(c.error().message, Contains("kid 'r1'"));
  auto i = tokens::load_policy(dir.file("issuer.yaml"));
  REQUIRE_FALSE(i);
  CHECK_THAT(i.error().message, Contains("assertion issuer 'idp'"));
  CHECK(tokens::load_policy(dir.file("good.yaml")));

  // tokctl serve does not start (before: it served, without the client). `timeout` bounds a regression.
  auto run = tokctl::test::run_program({"timeout", "20", TOKCTL_BINARY, "--config", dir.file("client.yaml"),
                                        "--keystore", dir.file("ks"), "serve", "--listen", "127.0.0.1:0"});
  CHECK(run.code != 0);
  CHECK(run.code != 124);
  CHECK_THAT(run.err, Contains("client 'noalg'"));
  CHECK(run.out.empty());  // no ready line
}

// ---- 4. metadata ------------------------------------------------------------------------------

TEST_CASE("serve metadata: private_key_jwt with its signing algs, RFC 9701 signing alg", "[serve][oauth]") {
  Server s;
  auto m = s.get("/.well-known/oauth-authorization-server");
  REQUIRE(m.status == 200);
  auto doc = json::parse(m.body);
  CHECK(doc.at("token_endpoint_auth_methods_supported") ==
        json{"client_secret_basic", "client_secret_post", "private_key_jwt"});
  CHECK(doc.at("token_endpoint_auth_signing_alg_values_supported") == json{"ES256"});
  CHECK(doc.at("introspection_endpoint_auth_signing_alg_values_supported") == json{"ES256"});
  CHECK(doc.at("revocation_endpoint_auth_signing_alg_values_supported") == json{"ES256"});
  CHECK(doc.at("introspection_signing_alg_values_supported") == json{"ES256"});  // was []
}

// ---- 5. error_description ----------------------------------------------------------------------

TEST_CASE("serve: error_description stays within RFC 6749 §5.2's characters when it echoes input",
          "[serve][oauth]") {
  Server s;
  auto r = s.post("/oauth/token", "grant_type=client_credentials&scope=read%00%0A%22%5C%C3%A9x",
                  {{"Authorization", basic("api", s.api_secret)}});
  REQUIRE(r.status == 400);
  auto doc = json::parse(r.body);
  CHECK(doc.at("error") == "invalid_scope");
  const std::string d = doc.at("error_description").get<std::string>();
  INFO(d);
  for (unsigned char c : d) {
    CAPTURE(static_cast<int>(c));
    CHECK(((c >= 0x20 && c <= 0x21) || (c >= 0x23 && c <= 0x5b) || (c >= 0x5d && c <= 0x7e)));
  }
  CHECK_THAT(d, Contains("read?"));
}

TEST_CASE("serve: a form parameter that is not UTF-8 is 400 invalid_request, never a 500", "[serve][oauth]") {
  Server s;
  for (std::string body : {"grant_type=client_credentials&audience=%ff",
                           "grant_type=client_credentials&resource=https://a/%ff",
                           "grant_type=client_credentials&audience=%ed%a0%80",
                           "grant_type=client_credentials&%ff=x",
                           "grant_type=client_credentials&scope=read&client_id=api&client_secret=%c3"}) {
    CAPTURE(body);
    auto r = s.post("/oauth/token", body, {{"Authorization", basic("api", s.api_secret)}});
    CHECK(r.status == 400);
    CHECK(json::parse(r.body).at("error") == "invalid_request");
  }
  auto intro = s.post("/oauth/introspect", "token=%ff%fe", {{"Authorization", basic("api", s.api_secret)}});
  CHECK(intro.status == 400);
  // Basic credentials that are not UTF-8 are malformed credentials: a failed authentication.
  auto basic_bad = s.post("/oauth/token", "grant_type=client_credentials",
                          {{"Authorization", "Basic " + tokctl::b64_encode(std::string("api\xff:x"))}});
  CHECK(basic_bad.status == 401);
  CHECK(json::parse(basic_bad.body).at("error") == "invalid_client");
  // The same request with text is still served.
  auto ok = s.post("/oauth/token", "grant_type=client_credentials&audience=api-%C3%A9",
                   {{"Authorization", basic("api", s.api_secret)}});
  CHECK(ok.status != 500);
}

// ---- 6. assertions, token types, resources ------------------------------------------------------

TEST_CASE("serve: a client assertion's exp may carry a fraction (RFC 7519 NumericDate)", "[serve][oauth]") {
  Server s;
  auto signer = jose::Signer::create(jose::Alg::ES256, tokctl::test::test_key("p256"));
  REQUIRE(signer);
  auto make = [&](const json& exp, const std::string& jti) {
    json c{{"iss", "signer"}, {"sub", "signer"}, {"aud", "https://issuer.test/oauth/token"}, {"iat", k_now}, {"jti", jti}};
    if (!exp.is_null()) c["exp"] = exp;
    auto jwt = jose::sign_compact(json{{"typ", "JWT"}}, c.dump(), *signer);
    REQUIRE(jwt);
    return *jwt;
  };
  const std::string type = "client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer";
  auto request = [&](const std::string& jwt) {
    return s.post("/oauth/token", "grant_type=client_credentials&scope=read&" + type + "&client_assertion=" + jwt);
  };
  auto ok = request(make(static_cast<double>(k_now) + 300.5, "f1"));
  INFO(ok.body);
  CHECK(ok.status == 200);
  auto far = request(make(static_cast<double>(k_now) + 3600.5, "f2"));
  CHECK(far.status == 401);
  CHECK_THAT(far.body, Contains("minutes ahead"));
}

TEST_CASE("serve: token exchange refuses a token type that does not fit, and resources that are not URIs",
          "[serve][oauth][exchange]") {
  Server s;
  const std::string subject = s.token("api", s.api_secret);
  const std::vector<std::pair<std::string, std::string>> app{{"Authorization", basic("app", s.app_secret)}};
  auto mismatch = s.post("/oauth/token", k_exchange + "&subject_token=" + subject +
                                             "&subject_token_type=urn%3Aietf%3Aparams%3Aoauth%3Atoken-type%3Aid_token&audience=api-b",
                         app);
  CHECK(mismatch.status == 400);
  CHECK(json::parse(mismatch.body).at("error") == "invalid_request");
  CHECK_THAT(mismatch.body, Contains("id_token"));

  auto not_uri = s.post("/oauth/token", k_exchange + "&subject_token=" + subject + "&subject_token_type=" + k_access_type +
                                            "&resource=api-b",
                        app);
  CHECK(not_uri.status == 400);
  CHECK(json::parse(not_uri.body).at("error") == "invalid_target");
  auto fragment = s.post("/oauth/token", k_exchange + "&subject_token=" + subject + "&subject_token_type=" +
                                             k_access_type + "&resource=https%3A%2F%2Fapi-b.test%2F%23frag",
                         app);
  CHECK(json::parse(fragment.body).at("error") == "invalid_target");
  auto uri = s.post("/oauth/token", k_exchange + "&subject_token=" + subject + "&subject_token_type=" + k_access_type +
                                        "&resource=https%3A%2F%2Fapi-b.test%2F",
                    app);
  INFO(uri.body);
  CHECK(uri.status == 200);
  // client_credentials: the same RFC 8707 rule.
  auto cc = s.post("/oauth/token", "grant_type=client_credentials&resource=api-a", {{"Authorization", basic("api", s.api_secret)}});
  CHECK(cc.status == 400);
  CHECK(json::parse(cc.body).at("error") == "invalid_target");
}

// ---- 7. content negotiation and conditional JWKS ------------------------------------------------

TEST_CASE("serve: introspection honours Accept q-values (q=0 is not acceptable)", "[serve][oauth]") {
  Server s;
  const std::string token = s.token("api", s.api_secret);
  auto introspect = [&](const std::string& accept) {
    return s.post("/oauth/introspect", "token=" + token, {{"Authorization", basic("api", s.api_secret)}, {"Accept", accept}});
  };
  auto type_of = [](const RawResponse& r) { return r.headers.count("content-type") ? r.headers.at("content-type") : ""; };
  CHECK(type_of(introspect("application/jwt")) == "application/jwt");
  CHECK(type_of(introspect("application/jwt;q=0")) == "application/json;charset=UTF-8");  // was the JWT
  CHECK(type_of(introspect("application/jwt; q=0.0, application/json")) == "application/json;charset=UTF-8");
  CHECK(type_of(introspect("application/json, application/jwt;q=0.5")) == "application/json;charset=UTF-8");
  CHECK(type_of(introspect("application/json;q=0.5, application/jwt;q=0.8")) == "application/jwt");
  CHECK(type_of(introspect("application/token-introspection+jwt;q=0, application/jwt")) == "application/jwt");
  CHECK(type_of(introspect("application/jwt;q=0.5, application/token-introspection+jwt")) ==
        "application/token-introspection+jwt");
  CHECK(type_of(introspect("*/*")) == "application/json;charset=UTF-8");
}

TEST_CASE("serve: JWKS If-None-Match compares weakly, takes lists and *", "[serve][oauth]") {
  Server s;
  auto first = s.get("/oauth/jwks");
  REQUIRE(first.status == 200);
  const std::string etag = first.headers.at("etag");
  CHECK(s.get("/oauth/jwks", {{"If-None-Match", etag}}).status == 304);
  CHECK(s.get("/oauth/jwks", {{"If-None-Match", "W/" + etag}}).status == 304);            // was 200
  CHECK(s.get("/oauth/jwks", {{"If-None-Match", "\"other\", " + etag}}).status == 304);    // was 200
  CHECK(s.get("/oauth/jwks", {{"If-None-Match", "*"}}).status == 304);                     // was 200
  CHECK(s.get("/oauth/jwks", {{"If-None-Match", "\"other\""}}).status == 200);
}

TEST_CASE("serve shutdown: stop_authentication drops queued KDF checks and waits for the running ones",
          "[serve][oauth][clientauth]") {
  // tokctl serve destroys the service after this: a check still running past it would go on into a
  // service that is gone.
  Server s(200000);
  HttpRequest req;
  req.method = "POST";
  req.target = "/oauth/token";
  req.headers = {{"content-type", "application/x-www-form-urlencoded"},
                 {"authorization", basic("human", "wrong")}};
  req.body = "grant_type=client_credentials";
  std::atomic<int> answered{0};
  std::atomic<int> unavailable{0};
  constexpr int k_requests = 6;
  for (int i = 0; i < k_requests; ++i) {
    s.endpoints->handle_async(req, [&](HttpResponse r) {
      if (r.status == 503) ++unavailable;
      ++answered;
    });
  }
  s.endpoints->stop_authentication();
  const int at_stop = answered.load();
  // The queued checks were dropped (each PBKDF2 takes ~0.1 s here: six did not all run).
  CHECK(at_stop < k_requests);
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  CHECK(answered.load() == at_stop);  // nothing runs after stop_authentication returned
  // A check that needs the pool is refused from now on (503), at once; a generated secret still works.
  HttpResponse late;
  s.endpoints->handle_async(req, [&](HttpResponse r) { late = std::move(r); });
  CHECK(late.status == 503);
  s.endpoints->stop_authentication();  // idempotent
  CHECK(s.token("api", s.api_secret).size() > 10);
}
