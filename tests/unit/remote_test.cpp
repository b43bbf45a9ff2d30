// Remote mode's core (core/remote): form and Basic encoding, discovery URLs, Cache-Control, the
// document cache, OAuth error mapping, and the transport against a real loopback HTTP server
// (tokctl's own, in process): caching and revalidation, retries of idempotent requests only,
// size limits, refused connections (retried with backoff), timeouts, and the JWKS refetch limit.

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <thread>

#include <unistd.h>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <tokctl/jose/keygen.hpp>
#include <tokctl/remote/http.hpp>
#include <tokctl/remote/oauth.hpp>
#include <tokctl/server/http_server.hpp>
#include <tokctl/util/base64.hpp>

#include "support/raw_http.hpp"

using namespace tokctl;
using namespace tokctl::remote;
namespace fs = std::filesystem;

namespace {

std::string temp_dir(const char* name) {
  auto dir = fs::temp_directory_path() / (std::string("tokctl-remote-") + name + "-" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir.string();
}

// A loopback server whose answers the test scripts per path, counting requests per path.
struct FakeServer {
  using Answer = std::function<server::HttpResponse(const server::HttpRequest&, int hit)>;
  std::mutex mu;
  std::map<std::string, int> hits;
  std::map<std::string, std::vector<std::string>> if_none_match;
  std::map<std::string, Answer> routes;
  std::unique_ptr<server::HttpServer> srv;

  void start() {
    server::ServerOptions o;
    o.port = 0;
    o.threads = 1;
    o.blocking_threads = 4;
    auto s = server::HttpServer::start(
        o,
        [this](const server::HttpRequest& req) {
          std::string path(req.path());
          Answer answer;
          int hit = 0;
          {
            std::lock_guard lock(mu);
            hit = ++hits[path];
            if (const std::string* inm = req.header("if-none-match")) if_none_match[path].push_back(*inm);
            auto it = routes.find(path);
            if (it != routes.end()) answer = it->second;
          }
          if (!answer) {
            server::HttpResponse r;
            r.status = 404;
            return r;
          }
          return answer(req, hit);
        },
        {}, [](const server::HttpRequest& req) { return req.path() == "/slow"; });
    REQUIRE(s);
    srv = std::move(*s);
  }
  ~FakeServer() {
    if (srv) srv->stop(std::chrono::milliseconds(200));
  }
  std::string url(const std::string& path) const { return "http://127.0.0.1:" + std::to_string(srv->port()) + path; }
  int count(const std::string& path) {
    std::lock_guard lock(mu);
    return hits[path];
  }
};

server::HttpResponse json_answer(const nlohmann::json& j, int status = 200) {
  server::HttpResponse r;
  r.status = status;
  r.set("Content-Type", "application/json");
  r.body = j.dump();
  return r;
}

HttpClient client(TransportOptions o = {}) {
  o.backoff_ms = 1;
  auto c = HttpClient::create(o);
  REQUIRE(c);
  return std::move(*c);
}

}  // namespace

TEST_CASE("remote: form encoding and client_secret_basic follow RFC 6749 Appendix B and §2.3.1", "[remote]") {
  CHECK(form_urlencode("a b+c/d:é*~") == "a+b%2Bc%2Fd%3A%C3%A9*%7E");
  CHECK(form_body({{"grant_type", "client_credentials"}, {"scope", "read write"}}) ==
        "grant_type=client_credentials&scope=read+write");
  // The id and secret are form-encoded before base64: a ':' in the id cannot split it.
  CHECK(basic_authorization("a:b", "p w") == "Basic " + b64_encode("a%3Ab:p+w"));
}

TEST_CASE("remote: RFC 8414 inserts the well-known segment before the issuer's path, OIDC appends it", "[remote]") {
  CHECK(well_known_urls("https://as.test") ==
        std::vector<std::string>{"https://as.test/.well-known/oauth-authorization-server",
                                 "https://as.test/.well-known/openid-configuration"});
  CHECK(well_known_urls("https://as.test/tenant/a/") ==
        std::vector<std::string>{"https://as.test/.well-known/oauth-authorization-server/tenant/a",
                                 "https://as.test/tenant/a/.well-known/openid-configuration"});
}

TEST_CASE("remote: Cache-Control directives, URL checks and redaction", "[remote]") {
  auto cc = parse_cache_control("public, Max-Age=\"120\", no-cache");
  CHECK(cc.max_age == 120);
  CHECK(cc.no_cache);
  CHECK_FALSE(cc.no_store);
  CHECK(parse_cache_control("no-store").no_store);
  CHECK_FALSE(parse_cache_control("max-age=-5").max_age);
  CHECK_FALSE(parse_cache_control("max-age=99999999999999999999").max_age);
  CHECK(is_http_url("https://as.test/x"));
  CHECK(is_http_url("HTTP://127.0.0.1:8080"));
  CHECK_FALSE(is_http_url("file:///etc/passwd"));
  CHECK_FALSE(is_http_url("https://"));
  CHECK_FALSE(is_http_url("https:///path"));
  CHECK_FALSE(is_http_url("https://a b"));
  CHECK(redact_url("https://user:pw@as.test/x?q") == "https://as.test/x?q");
  CHECK(redact_url("https://as.test/a@b") == "https://as.test/a@b");
}

TEST_CASE("remote: an OAuth error body is a remote_oauth error; anything else is a network failure", "[remote]") {
  HttpResponse r;
  r.status = 401;
  r.url = "https://as.test/token";
  r.body = R"({"error":"invalid_client","error_description":"bad \u0007secret"})";
  Error e = error_from_response(r, "token endpoint");
  CHECK(e.code == ErrorCode::remote_oauth);
  CHECK(e.oauth == OAuthCode::invalid_client);
  CHECK(e.message == "bad ?secret");  // control characters from a server never reach a terminal
  r.body = R"({"error":"custom_thing"})";
  e = error_from_response(r, "token endpoint");
  CHECK(e.code == ErrorCode::remote_oauth);
  CHECK(e.oauth == OAuthCode::none);
  CHECK(e.message == "custom_thing: (no error_description)");
  r.status = 502;
  r.body = "<html>bad gateway</html>";
  r.headers = {{"content-type", "text/html; charset=utf-8"}};
  e = error_from_response(r, "token endpoint");
  CHECK(e.code == ErrorCode::network);
  CHECK(e.message.find("HTTP 502 (text/html") != std::string::npos);
  r.body = R"({"error": 42})";  // the wrong JSON type is not an OAuth error object
  CHECK(error_from_response(r, "x").code == ErrorCode::network);
}

TEST_CASE("remote: the document cache round-trips and treats damage as a miss", "[remote]") {
  std::string dir = temp_dir("cache");
  DocumentCache cache(dir + "/sub/dir");
  CHECK_FALSE(cache.load("https://as.test/jwks"));
  CachedDocument d;
  d.url = "https://as.test/jwks";
  d.body = R"({"keys":[]})";
  d.etag = "\"v1\"";
  d.fetched_at = 100;
  d.expires_at = 400;
  REQUIRE(cache.store(d));
  auto back = cache.load(d.url);
  REQUIRE(back);
  CHECK(back->body == d.body);
  CHECK(back->etag == d.etag);
  CHECK(back->expires_at == 400);
  CHECK_FALSE(cache.load("https://as.test/other"));
  CHECK((fs::status(dir + "/sub/dir").permissions() & fs::perms::others_all) == fs::perms::none);
  for (const auto& f : fs::directory_iterator(dir + "/sub/dir")) {
    CHECK((fs::status(f).permissions() & (fs::perms::group_all | fs::perms::others_all)) == fs::perms::none);
    std::ofstream(f.path()) << "{not json";
  }
  CHECK_FALSE(cache.load(d.url));
  DocumentCache none("");
  CHECK(none.store(d));
  CHECK_FALSE(none.load(d.url));
  fs::remove_all(dir);
}

TEST_CASE("remote: documents are served from the cache while fresh, then revalidated with their ETag", "[remote][http]") {
  FakeServer fake;
  fake.routes["/doc"] = [](const server::HttpRequest& req, int) {
    if (const std::string* inm = req.header("if-none-match"); inm && *inm == "\"v1\"") {
      server::HttpResponse r;
      r.status = 304;
      r.set("Cache-Control", "max-age=60");
      return r;
    }
    auto r = json_answer({{"v", 1}});
    r.set("Cache-Control", "max-age=60");
    r.set("ETag", "\"v1\"");
    return r;
  };
  fake.routes["/nostore"] = [](const server::HttpRequest&, int) {
    auto r = json_answer({{"v", 2}});
    r.set("Cache-Control", "no-store");
    return r;
  };
  fake.start();
  std::string dir = temp_dir("fetch");
  DocumentCache cache(dir);
  auto http = client();
  auto first = fetch_document(http, cache, fake.url("/doc"), 1000, FetchMode::normal);
  REQUIRE(first);
  CHECK_FALSE(first->from_cache);
  CHECK(first->expires_at == 1060);
  auto second = fetch_document(http, cache, fake.url("/doc"), 1059, FetchMode::normal);
  REQUIRE(second);
  CHECK(second->from_cache);
  CHECK(fake.count("/doc") == 1);
  auto third = fetch_document(http, cache, fake.url("/doc"), 1061, FetchMode::normal);  // stale: revalidate
  REQUIRE(third);
  CHECK(third->revalidated);
  CHECK(third->body == R"({"v":1})");
  CHECK(third->expires_at == 1121);
  CHECK(fake.count("/doc") == 2);
  CHECK(fake.if_none_match["/doc"] == std::vector<std::string>{"\"v1\""});
  auto forced = fetch_document(http, cache, fake.url("/doc"), 1062, FetchMode::refresh);
  REQUIRE(forced);
  CHECK(fake.count("/doc") == 3);
  CHECK(cache.load(fake.url("/doc"))->refetched_at == 1062);
  auto offline = fetch_document(http, cache, fake.url("/doc"), 999999, FetchMode::offline);
  REQUIRE(offline);
  CHECK(offline->from_cache);
  CHECK(fake.count("/doc") == 3);
  // no-store: fetched every time, never written.
  REQUIRE(fetch_document(http, cache, fake.url("/nostore"), 1000, FetchMode::normal));
  REQUIRE(fetch_document(http, cache, fake.url("/nostore"), 1000, FetchMode::normal));
  CHECK(fake.count("/nostore") == 2);
  CHECK_FALSE(cache.load(fake.url("/nostore")));
  auto missing = fetch_document(http, cache, fake.url("/nostore"), 1000, FetchMode::offline);
  REQUIRE_FALSE(missing);
  CHECK(missing.error().code == ErrorCode::network);
  auto absent = fetch_document(http, cache, fake.url("/absent"), 1000, FetchMode::normal);
  REQUIRE_FALSE(absent);
  CHECK(absent.error().detail == ErrorDetail::http_4xx);
  fs::remove_all(dir);
}

TEST_CASE("remote: idempotent requests are retried on 5xx, token requests never", "[remote][http]") {
  FakeServer fake;
  fake.routes["/flaky"] = [](const server::HttpRequest&, int hit) {
    return hit < 3 ? json_answer({{"error", "temporarily_unavailable"}}, 503) : json_answer({{"active", true}});
  };
  fake.routes["/down"] = [](const server::HttpRequest&, int) { return json_answer({{"x", 1}}, 500); };
  fake.start();
  TransportOptions o;
  o.retries = 2;
  auto http = client(o);
  HttpRequest get;
  get.url = fake.url("/flaky");
  auto r = http.send(get);
  REQUIRE(r);
  CHECK(r->status == 200);
  CHECK(fake.count("/flaky") == 3);
  HttpRequest token;
  token.method = "POST";
  token.url = fake.url("/down");
  token.idempotent = false;
  r = http.send(token);
  REQUIRE(r);
  CHECK(r->status == 500);
  CHECK(fake.count("/down") == 1);
  token.idempotent = true;
  r = http.send(token);
  REQUIRE(r);
  CHECK(r->status == 500);
  CHECK(fake.count("/down") == 1 + 3);
}

TEST_CASE("remote: oversized answers, refused connections and timeouts are network errors", "[remote][http]") {
  FakeServer fake;
  fake.routes["/big"] = [](const server::HttpRequest&, int) {
    server::HttpResponse r;
    r.body = std::string(5000, 'x');
    return r;
  };
  fake.routes["/slow"] = [](const server::HttpRequest&, int) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1500));
    return server::HttpResponse{};
  };
  fake.start();
  TransportOptions o;
  o.max_response_bytes = 4096;
  o.retries = 0;
  o.timeout_ms = 300;
  auto http = client(o);
  HttpRequest req;
  req.url = fake.url("/big");
  auto r = http.send(req);
  REQUIRE_FALSE(r);
  CHECK(r.error().code == ErrorCode::network);
  CHECK(r.error().message.find("larger than 4096 bytes") != std::string::npos);
  req.url = fake.url("/slow");
  auto t0 = std::chrono::steady_clock::now();
  r = http.send(req);
  REQUIRE_FALSE(r);
  CHECK(r.error().code == ErrorCode::network);
  CHECK(std::chrono::steady_clock::now() - t0 < std::chrono::milliseconds(1400));
  // A port nobody listens on (bound, never listening).
  std::uint16_t port = 0;
  int fd = tokctl::test::bound_loopback_socket(false, port);
  req.url = "http://127.0.0.1:" + std::to_string(port) + "/";
  r = http.send(req);
  ::close(fd);
  REQUIRE_FALSE(r);
  CHECK(r.error().code == ErrorCode::network);
  req.url = "ftp://127.0.0.1/";
  CHECK(http.send(req).error().code == ErrorCode::usage);
}

TEST_CASE("remote: a refused connection is retried with doubling backoff, then fails naming the attempts",
          "[remote][http]") {
  // A port bound but never listening: every connect is refused at once.
  std::uint16_t port = 0;
  int fd = tokctl::test::bound_loopback_socket(false, port);
  const std::string url = "http://127.0.0.1:" + std::to_string(port) + "/jwks";
  TransportOptions o;
  o.retries = 2;
  o.backoff_ms = 50;
  auto http = HttpClient::create(o);
  REQUIRE(http);
  HttpRequest get;
  get.url = url;
  auto t0 = std::chrono::steady_clock::now();
  auto r = http->send(get);
  auto elapsed = std::chrono::steady_clock::now() - t0;
  REQUIRE_FALSE(r);
  INFO(r.error().message);
  CHECK(r.error().code == ErrorCode::network);
  CHECK(r.error().message.find("GET " + url + ": ") == 0);
  CHECK(r.error().message.find("Couldn't connect to server") != std::string::npos);  // curl's reason
  CHECK(r.error().message.find("(after 3 attempts)") != std::string::npos);
  CHECK(elapsed >= std::chrono::milliseconds(50 + 100));  // the two pauses: 50 ms, then doubled
  CHECK(elapsed < std::chrono::seconds(5));
  // A request that is not idempotent (a token request) is tried once.
  HttpRequest token;
  token.method = "POST";
  token.url = url;
  token.idempotent = false;
  r = http->send(token);
  REQUIRE_FALSE(r);
  CHECK(r.error().code == ErrorCode::network);
  CHECK(r.error().message.find("Couldn't connect to server") != std::string::npos);
  CHECK(r.error().message.find("attempts") == std::string::npos);
  ::close(fd);
}

TEST_CASE("remote: discovery checks the issuer and falls back from RFC 8414 to OpenID Connect", "[remote][http]") {
  FakeServer fake;
  std::string issuer;
  fake.routes["/.well-known/openid-configuration"] = [&issuer](const server::HttpRequest&, int) {
    return json_answer({{"issuer", issuer},
                        {"token_endpoint", issuer + "/token"},
                        {"introspection_endpoint", issuer + "/introspect"},
                        {"jwks_uri", issuer + "/jwks"}});
  };
  fake.start();
  issuer = fake.url("");
  std::string dir = temp_dir("discover");
  DocumentCache cache(dir);
  auto http = client();
  auto ep = discover(http, cache, issuer, 1000, FetchMode::normal);
  REQUIRE(ep);
  CHECK(ep->token_endpoint == issuer + "/token");
  CHECK(ep->revocation_endpoint.empty());
  CHECK(ep->metadata_url == issuer + "/.well-known/openid-configuration");
  CHECK(fake.count("/.well-known/oauth-authorization-server") == 1);
  REQUIRE(discover(http, cache, issuer, 1001, FetchMode::normal));  // both cached: the 404 is not
  CHECK(fake.count("/.well-known/openid-configuration") == 1);
  // A metadata document naming another issuer is refused (RFC 8414 §3.3: mix-up defence).
  {
    std::lock_guard lock(fake.mu);
    fake.routes["/.well-known/oauth-authorization-server/x"] = [&issuer](const server::HttpRequest&, int) {
      return json_answer({{"issuer", issuer}, {"token_endpoint", issuer + "/token"}});
    };
  }
  auto other = discover(http, DocumentCache(""), issuer + "/x", 1000, FetchMode::normal);
  REQUIRE_FALSE(other);
  CHECK(other.error().code == ErrorCode::network);
  CHECK(other.error().message.find("names issuer") != std::string::npos);
  // Nothing at either place: a network error naming both attempts.
  auto none = discover(http, DocumentCache(""), issuer + "/nothing", 1000, FetchMode::normal);
  REQUIRE_FALSE(none);
  CHECK(none.error().message.find("no server metadata") != std::string::npos);
  fs::remove_all(dir);
}

TEST_CASE("remote: an unknown kid refetches the JWKS once, then not again within the interval", "[remote][http]") {
  FakeServer fake;
  std::atomic<int> version{1};
  jose::KeyGenOptions es256;
  es256.alg = "ES256";
  auto k1 = jose::generate_key(es256);
  auto k2 = jose::generate_key(es256);
  REQUIRE(k1);
  REQUIRE(k2);
  k1->set_kid("k1");
  k2->set_kid("k2");
  fake.routes["/jwks"] = [&](const server::HttpRequest&, int) {
    nlohmann::json keys = nlohmann::json::array({k1->to_json()});
    if (version == 2) keys.push_back(k2->to_json());
    auto r = json_answer({{"keys", keys}});
    r.set("Cache-Control", "max-age=600");
    return r;
  };
  fake.start();
  std::string dir = temp_dir("jwks");
  DocumentCache cache(dir);
  auto http = client();
  FixedClock clock(5000);
  {
    RemoteJwks jwks(http, cache, fake.url("/jwks"), clock, false);
    auto keys = jwks.keys();
    REQUIRE(keys);
    CHECK(keys->keys.size() == 1);
    REQUIRE(jwks.keys());  // cached
    CHECK(fake.count("/jwks") == 1);
    version = 2;
    std::string why;
    auto fresh = jwks.refetch(why);
    REQUIRE(fresh);
    REQUIRE(*fresh);
    CHECK((*fresh)->keys.size() == 2);
    CHECK(fake.count("/jwks") == 2);
    fresh = jwks.refetch(why);  // once per process
    REQUIRE(fresh);
    CHECK_FALSE(*fresh);
  }
  {
    clock.set(5010);  // another process 10 s later: the interval holds (recorded in the cache)
    RemoteJwks jwks(http, cache, fake.url("/jwks"), clock, false);
    std::string why;
    auto fresh = jwks.refetch(why);
    REQUIRE(fresh);
    CHECK_FALSE(*fresh);
    CHECK(why.find("10s ago") != std::string::npos);
    CHECK(fake.count("/jwks") == 2);
  }
  {
    clock.set(5000 + RemoteJwks::min_refetch_interval + 1);
    RemoteJwks jwks(http, cache, fake.url("/jwks"), clock, false);
    std::string why;
    auto fresh = jwks.refetch(why);
    REQUIRE(fresh);
    CHECK(*fresh);
    CHECK(fake.count("/jwks") == 3);
  }
  {
    RemoteJwks jwks(http, cache, fake.url("/jwks"), clock, true);  // offline: never
    std::string why;
    auto fresh = jwks.refetch(why);
    REQUIRE(fresh);
    CHECK_FALSE(*fresh);
    CHECK(fake.count("/jwks") == 3);
  }
  fs::remove_all(dir);
}

TEST_CASE("remote: metadata of an https issuer keeps every endpoint on https, without credentials", "[remote]") {
  const std::string url = "https://as.test/.well-known/oauth-authorization-server";
  auto ok = parse_metadata(R"({"issuer":"https://as.test","token_endpoint":"https://as.test/t"})", "https://as.test", url);
  REQUIRE(ok);
  CHECK(ok->token_endpoint == "https://as.test/t");
  auto downgrade = parse_metadata(R"({"issuer":"https://as.test","jwks_uri":"http://as.test/jwks"})", "https://as.test", url);
  REQUIRE_FALSE(downgrade);
  CHECK(downgrade.error().message.find("plain http jwks_uri") != std::string::npos);
  auto creds = parse_metadata(R"({"issuer":"https://as.test","token_endpoint":"https://u:p@as.test/t"})",
                              "https://as.test", url);
  REQUIRE_FALSE(creds);
  CHECK(creds.error().message.find("u:p") == std::string::npos);
  // A loopback test server on plain http may name plain http endpoints.
  CHECK(parse_metadata(R"({"issuer":"http://127.0.0.1:1","token_endpoint":"http://127.0.0.1:1/t"})",
                       "http://127.0.0.1:1", "http://127.0.0.1:1/x"));
  CHECK(has_userinfo("https://u@as.test/"));
  CHECK_FALSE(has_userinfo("https://as.test/a@b"));
  CHECK(is_https_url("HTTPS://as.test"));
  CHECK_FALSE(is_https_url("http://as.test"));
}

TEST_CASE("remote: cache entries are per trust anchor, and a directory others can write is not trusted",
          "[remote]") {
  std::string dir = temp_dir("trust");
  CachedDocument d;
  d.url = "https://as.test/jwks";
  d.body = "{}";
  d.expires_at = 100;
  REQUIRE(DocumentCache(dir, "cacert:a").store(d));
  CHECK(DocumentCache(dir, "cacert:a").load(d.url));
  CHECK_FALSE(DocumentCache(dir, "system").load(d.url));
  fs::permissions(dir, fs::perms::all);  // 0777: anyone could have planted the entry
  CHECK_FALSE(DocumentCache(dir, "cacert:a").load(d.url));
  CHECK_FALSE(DocumentCache(dir, "cacert:a").store(d));
  fs::permissions(dir, fs::perms::owner_all);
  CHECK(DocumentCache(dir, "cacert:a").load(d.url));
  fs::remove_all(dir);
}

TEST_CASE("remote: Age counts against max-age, list fields join, no-store drops the cached copy", "[remote][http]") {
  FakeServer fake;
  std::atomic<bool> store_forbidden{false};
  fake.routes["/aged"] = [](const server::HttpRequest&, int) {
    auto r = json_answer({{"v", 1}});
    r.set("Cache-Control", "max-age=60");
    r.set("Age", "50");
    return r;
  };
  fake.routes["/two-fields"] = [](const server::HttpRequest&, int) {
    auto r = json_answer({{"v", 1}});
    r.headers.emplace_back("Cache-Control", "public");
    r.headers.emplace_back("Cache-Control", "no-store");
    return r;
  };
  fake.routes["/flip"] = [&](const server::HttpRequest&, int) {
    auto r = json_answer({{"v", 1}});
    r.set("Cache-Control", store_forbidden ? "no-store" : "max-age=5");
    return r;
  };
  fake.start();
  std::string dir = temp_dir("age");
  DocumentCache cache(dir);
  auto http = client();
  auto aged = fetch_document(http, cache, fake.url("/aged"), 1000, FetchMode::normal);
  REQUIRE(aged);
  CHECK(aged->expires_at == 1010);
  REQUIRE(fetch_document(http, cache, fake.url("/two-fields"), 1000, FetchMode::normal));
  CHECK_FALSE(cache.load(fake.url("/two-fields")));
  REQUIRE(fetch_document(http, cache, fake.url("/flip"), 1000, FetchMode::normal));
  CHECK(cache.load(fake.url("/flip")));
  store_forbidden = true;
  REQUIRE(fetch_document(http, cache, fake.url("/flip"), 2000, FetchMode::normal));
  CHECK_FALSE(cache.load(fake.url("/flip")));
  CHECK_FALSE(fetch_document(http, cache, fake.url("/flip"), 2001, FetchMode::offline));
  fs::remove_all(dir);
}

TEST_CASE("remote: introspection answers that are not RFC 7662 JSON fail; assertions are never replayed",
          "[remote][http]") {
  FakeServer fake;
  fake.routes["/login"] = [](const server::HttpRequest&, int) {
    server::HttpResponse r;
    r.set("Content-Type", "text/html");
    r.body = "<html>log in</html>";
    return r;
  };
  fake.routes["/no-active"] = [](const server::HttpRequest&, int) { return json_answer({{"sub", "x"}}); };
  fake.routes["/busy"] = [](const server::HttpRequest&, int) { return json_answer({{"x", 1}}, 503); };
  fake.start();
  auto http = client();
  FixedClock clock(1000);
  ServerEndpoints ep;
  ep.introspection_endpoint = fake.url("/login");
  ClientAuth basic;
  basic.method = AuthMethod::client_secret_basic;
  basic.client_id = "rs";
  basic.secret = "s";
  OAuthClient c(http, ep, basic, clock);
  auto r = c.introspect("tok", "", "application/json");
  REQUIRE_FALSE(r);
  CHECK(r.error().code == ErrorCode::network);
  ep.introspection_endpoint = fake.url("/no-active");
  r = OAuthClient(http, ep, basic, clock).introspect("tok", "", "application/json");
  REQUIRE_FALSE(r);
  CHECK(r.error().message.find("boolean \"active\"") != std::string::npos);
  // The JWT forms (phantom, RFC 9701): a login page, a JWT under another media type, text that is
  // not a JWT, an empty 200 are no answer, never a token to pass on.
  const std::string jwt = "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJhIn0.c2ln";
  auto answer = [](std::string type, std::string body) {
    return [type, body](const server::HttpRequest&, int) {
      server::HttpResponse out;
      if (!type.empty()) out.set("Content-Type", type);
      out.body = body;
      return out;
    };
  };
  fake.routes["/text"] = answer("text/plain", jwt);
  fake.routes["/not-jwt"] = answer("application/jwt", "hello world");
  fake.routes["/empty"] = answer("application/jwt", "");
  fake.routes["/phantom"] = answer("application/jwt", jwt + "\n");
  for (const char* path : {"/login", "/text", "/not-jwt", "/empty"}) {
    for (const char* accept : {"application/jwt", "application/token-introspection+jwt"}) {
      CAPTURE(path, accept);
      ep.introspection_endpoint = fake.url(path);
      auto bad = OAuthClient(http, ep, basic, clock).introspect("tok", "", accept);
      REQUIRE_FALSE(bad);
      CHECK(bad.error().code == ErrorCode::network);
      CHECK(bad.error().message.find(std::string("not the ") + accept + " asked for") != std::string::npos);
    }
  }
  ep.introspection_endpoint = fake.url("/phantom");
  auto good = OAuthClient(http, ep, basic, clock).introspect("tok", "", "application/jwt");
  REQUIRE(good);
  CHECK(good->body.find(jwt) == 0);
  // private_key_jwt: the assertion's jti is single-use, so a 503 is not retried with it; the
  // assertion's aud falls back to the endpoint when no issuer or token endpoint is known.
  ep.introspection_endpoint = fake.url("/busy");
  ClientAuth pk;
  pk.method = AuthMethod::private_key_jwt;
  pk.client_id = "rs";
  jose::KeyGenOptions es256;
  es256.alg = "ES256";
  auto key = jose::generate_key(es256);
  REQUIRE(key);
  pk.key = *key;
  pk.key_alg = jose::Alg::ES256;
  r = OAuthClient(http, ep, pk, clock).introspect("tok", "", "application/json");
  REQUIRE_FALSE(r);
  CHECK(fake.count("/busy") == 1);
  ep.introspection_endpoint = fake.url("/flaky-basic");
  {
    std::lock_guard lock(fake.mu);
    fake.routes["/flaky-basic"] = [](const server::HttpRequest&, int hit) {
      return hit == 1 ? json_answer({{"x", 1}}, 503) : json_answer({{"active", false}});
    };
  }
  r = OAuthClient(http, ep, basic, clock).introspect("tok", "", "application/json");
  REQUIRE(r);
  CHECK(fake.count("/flaky-basic") == 2);
}

TEST_CASE("remote: server JSON of the wrong type is refused, not trusted", "[remote]") {
  const std::string url = "https://as.test/.well-known/oauth-authorization-server";
  for (const char* body : {R"({"issuer":"https://as.test","token_endpoint":42})",
                           R"({"issuer":"https://as.test","jwks_uri":["https://as.test/jwks"]})",
                           R"({"issuer":42})", R"(["https://as.test"])", R"({"issuer":"https://as.test","issuer":"x"})"}) {
    INFO(body);
    auto ep = parse_metadata(body, "https://as.test", url);
    REQUIRE_FALSE(ep);
    CHECK(ep.error().code == ErrorCode::network);
  }
  HttpResponse r;
  r.status = 200;
  r.url = "https://as.test/token";
  r.body = std::string(70000, '[');  // deeper than any limit
  CHECK(json_body(r, "token endpoint").error().code == ErrorCode::network);
  r.body = "[1]";
  CHECK_FALSE(json_body(r, "token endpoint"));
}
