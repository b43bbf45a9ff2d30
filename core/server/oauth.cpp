#include <tokctl/server/oauth.hpp>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <condition_variable>
#include <deque>
#include <future>
#include <map>
#include <memory>
#include <optional>
#include <stdexcept>
#include <thread>
#include <variant>
#include <vector>

#include <openssl/crypto.h>

#include <tokctl/jose/algorithm.hpp>
#include <tokctl/jose/digest.hpp>
#include <tokctl/jose/dpop.hpp>
#include <tokctl/jose/jwk.hpp>
#include <tokctl/jose/json.hpp>
#include <tokctl/jose/jws.hpp>
#include <tokctl/server/form.hpp>
#include <tokctl/tokens/clients.hpp>
#include <tokctl/util/base64.hpp>
#include <tokctl/util/io.hpp>
#include <tokctl/util/uri.hpp>
#include <tokctl/util/time.hpp>

namespace tokctl::server {

using nlohmann::json;
using Form = FormParams;

int oauth_status(OAuthCode code) {
  switch (code) {
    case OAuthCode::invalid_client: return 401;
    case OAuthCode::server_error: return 500;
    case OAuthCode::temporarily_unavailable: return 503;
    default: return 400;
  }
}

OAuthCode oauth_code_of(const Error& error) {
  if (error.oauth != OAuthCode::none) return error.oauth;
  switch (error.code) {
    case ErrorCode::usage:
    case ErrorCode::malformed: return OAuthCode::invalid_request;
    case ErrorCode::keystore:
    case ErrorCode::network: return OAuthCode::temporarily_unavailable;
    default: return OAuthCode::server_error;
  }
}

// The threads that run client secret checks with a KDF, off the transport's I/O threads (half the
// cores at most, so that under a flood of wrong secrets the I/O threads still serve healthz, JWKS
// and clients with generated secrets). A bounded queue: past it a request is refused (503) rather
// than queued for ever.
class AuthPool {
 public:
  AuthPool(unsigned threads, std::size_t max_queued) : m_max_queued(max_queued) {
    for (unsigned i = 0; i < threads; ++i) {
      m_threads.emplace_back([this] { run(); });
    }
  }
  ~AuthPool() { stop(); }
  /// Drops the queued tasks and waits for the running ones; later posts are refused. Idempotent.
  void stop() {
    {
      std::lock_guard lock(m_mutex);
      m_stopping = true;
      m_queue.clear();
    }
    m_wake.notify_all();
    std::lock_guard join_lock(m_join_mutex);
    for (auto& t : m_threads) {
      if (t.joinable()) t.join();
    }
  }
  AuthPool(const AuthPool&) = delete;
  AuthPool& operator=(const AuthPool&) = delete;

  /// False when the queue is full (or the pool stops): the task was not taken.
  bool post(std::function<void()> task) {
    {
      std::lock_guard lock(m_mutex);
      if (m_stopping || m_queue.size() >= m_max_queued) return false;
      m_queue.push_back(std::move(task));
    }
    m_wake.notify_one();
    return true;
  }

 private:
  void run() {
    for (;;) {
      std::function<void()> task;
      {
        std::unique_lock lock(m_mutex);
        m_wake.wait(lock, [&] { return m_stopping || !m_queue.empty(); });
        if (m_stopping) return;
        task = std::move(m_queue.front());
        m_queue.pop_front();
      }
      try {
        task();
      } catch (const std::exception&) {
        // The task answers its own request; an exception here (OOM) loses that answer only.
      }
    }
  }

  std::size_t m_max_queued;
  std::mutex m_mutex;
  std::mutex m_join_mutex;  // one joiner at a time
  std::condition_variable m_wake;
  std::deque<std::function<void()>> m_queue;
  bool m_stopping = false;
  std::vector<std::thread> m_threads;
};

namespace {

constexpr const char* k_json = "application/json;charset=UTF-8";

HttpResponse json_response(int status, const std::string& body) {
  HttpResponse r;
  r.status = status;
  r.set("Content-Type", k_json);
  r.body = body;
  return r;
}

// RFC 6749 §5.1/§5.2: token and error responses are never cached.
HttpResponse no_store(HttpResponse r) {
  r.set("Cache-Control", "no-store");
  r.set("Pragma", "no-cache");
  return r;
}

// RFC 6749 §5.2: error_description is %x20-21 / %x23-5B / %x5D-7E. Descriptions echo client
// input (a scope, a grant type): a double quote becomes a single one, a backslash a slash, and
// any other byte outside the set (controls, DEL, non-ASCII) a '?'.
std::string error_description(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (unsigned char c : text) {
    if (c == '"') out.push_back('\'');
    else if (c == '\\') out.push_back('/');
    else if (c < 0x20 || c > 0x7e) out.push_back('?');
    else out.push_back(static_cast<char>(c));
  }
  return out;
}

HttpResponse oauth_error(OAuthCode code, const std::string& description) {
  json body{{"error", to_string(code)}};
  if (!description.empty()) body["error_description"] = error_description(description);
  return no_store(json_response(oauth_status(code), body.dump(-1, ' ', false, json::error_handler_t::replace)));
}

HttpResponse oauth_error(const Error& e) {
  // No usable signing key (a keystore being fixed or rotated): 503, but not a store failure.
  if (e.detail == ErrorDetail::signing_keys && e.oauth == OAuthCode::none) {
    return oauth_error(OAuthCode::temporarily_unavailable, "no signing key is usable; retry later");
  }
  OAuthCode code = oauth_code_of(e);
  // Store and internal failures: the cause goes nowhere near the client.
  if (code == OAuthCode::temporarily_unavailable) {
    HttpResponse r = oauth_error(code, "the token store is unavailable; retry later");
    r.store_failure = true;
    return r;
  }
  if (code == OAuthCode::server_error) return oauth_error(code, "internal error");
  return oauth_error(code, e.message);
}

HttpResponse simple_error(int status, const char* error, const std::string& description) {
  HttpResponse r = json_response(status, json{{"error", error}, {"error_description", description}}.dump());
  r.set("Cache-Control", "no-store");  // like every error answer
  return r;
}

std::string lower(std::string_view s) {  // ASCII only, as HTTP's tokens are (no locale lookup per byte)
  std::string out(s);
  for (auto& c : out)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  return out;
}

// The media type of a Content-Type or Accept member, without parameters, lower-case.
std::string media_type(std::string_view value) {
  auto semi = value.find(';');
  std::string_view t = value.substr(0, semi);
  while (!t.empty() && t.back() == ' ') t.remove_suffix(1);
  while (!t.empty() && t.front() == ' ') t.remove_prefix(1);
  return lower(t);
}

// The members of a comma-separated header list, trimmed, empty ones skipped.
std::vector<std::string_view> list_members(std::string_view value) {
  std::vector<std::string_view> out;
  while (!value.empty()) {
    auto comma = value.find(',');
    const std::string_view m = trim(value.substr(0, comma));
    if (!m.empty()) out.push_back(m);
    if (comma == std::string_view::npos) break;
    value.remove_prefix(comma + 1);
  }
  return out;
}

// The q value of one Accept member (RFC 9110 §12.4.2: 0 to 1, up to three decimals; absent: 1; a
// malformed one: 0, i.e. that member is ignored).
double q_value(std::string_view member) {
  std::size_t semi = member.find(';');
  while (semi != std::string_view::npos) {
    std::string_view param = member.substr(semi + 1);
    std::size_t next = param.find(';');
    const std::string_view p = trim(param.substr(0, next));
    if (p.size() >= 2 && (p[0] == 'q' || p[0] == 'Q') && p[1] == '=') {
      std::string_view v = p.substr(2);
      if (v.empty() || v.size() > 5 || (v[0] != '0' && v[0] != '1')) return 0;
      if (v.size() > 1 && (v[1] != '.' || v.find_first_not_of("0123456789", 2) != std::string_view::npos)) return 0;
      double q = std::strtod(std::string(v).c_str(), nullptr);
      return q > 1 ? 0 : q;
    }
    semi = next == std::string_view::npos ? next : semi + 1 + next;
  }
  return 1;
}

// How much the client accepts `type` (lower-case): the q of the most specific Accept member that
// matches it, or `wildcards` false: only a member naming the type exactly. -1 when no member
// matches (no Accept header at all: every type, q 1, when wildcards count).
double acceptance(const HttpRequest& req, std::string_view type, bool wildcards) {
  const std::optional<std::string> accept = req.header_list("accept");
  if (!accept) return wildcards ? 1 : -1;
  const std::string_view major = type.substr(0, type.find('/'));
  int best_rank = -1;
  double q = -1;
  for (std::string_view m : list_members(*accept)) {
    const std::string range = media_type(m);
    int rank = -1;
    if (range == type) rank = 2;
    else if (wildcards && range.size() == major.size() + 2 && range.starts_with(major) && range.ends_with("/*")) rank = 1;
    else if (wildcards && range == "*/*") rank = 0;
    if (rank > best_rank) {
      best_rank = rank;
      q = q_value(m);
    }
  }
  return q;
}

// RFC 9110 §13.1.2 If-None-Match: "*", or a list of entity tags compared weakly (W/ ignored).
bool none_match(std::string_view header, std::string_view etag) {
  auto opaque = [](std::string_view t) {
    if (t.starts_with("W/")) t.remove_prefix(2);
    return t;
  };
  for (std::string_view m : list_members(header)) {
    if (m == "*" || opaque(m) == opaque(etag)) return true;
  }
  return false;
}

// A POST whose body is a form: the parameters, or the refusal to send.
std::variant<Form, HttpResponse> read_form(const HttpRequest& req,
                                           std::initializer_list<std::string_view> repeatable = {}) {
  const std::string* ct = req.header("content-type");
  if (!ct || media_type(*ct) != "application/x-www-form-urlencoded") {
    return oauth_error(OAuthCode::invalid_request, "the body must be application/x-www-form-urlencoded");
  }
  auto form = parse_form(req.body, repeatable);
  if (!form) return oauth_error(form.error());
  return std::move(*form);
}

// Where client credentials are read from: Authorization (the OAuth endpoints), or
// Proxy-Authorization for GET /phantom, whose Authorization carries the end user's bearer token.
// A refusal is 401 with a WWW-Authenticate challenge, or 407 with a Proxy-Authenticate one
// (always: RFC 9110 §15.5.2, §15.5.8).
struct CredentialHeader {
  std::string_view name;       // lower-case
  const char* display;         // as messages name it
  int status;                  // of a refusal
  const char* challenge;       // the challenge header of a refusal
};
constexpr CredentialHeader k_authorization{"authorization", "Authorization", 401, "WWW-Authenticate"};
constexpr CredentialHeader k_proxy_authorization{"proxy-authorization", "Proxy-Authorization", 407, "Proxy-Authenticate"};

// What the request authenticates with: a client already proven (assertion, certificate), a
// refusal, or an id and secret still to check (method set).
struct ClientAuth {
  const tokens::ClientPolicy* client = nullptr;
  std::optional<HttpResponse> refusal;
  std::string id, secret, method;
  const CredentialHeader* from = &k_authorization;
};

HttpResponse client_refusal(const std::string& why, const std::string& realm,
                            const CredentialHeader& from = k_authorization) {
  HttpResponse r = oauth_error(OAuthCode::invalid_client, why);
  r.status = from.status;
  // Every 401 and 407 carries its challenge (RFC 9110 §15.5.2, §15.5.8), not only those whose
  // request sent Authorization (all RFC 6749 §5.2 requires): a client that sent its secret in the
  // form, or nothing, still learns how to authenticate.
  r.set(from.challenge, "Basic realm=\"" + realm + "\"");
  return r;
}

// client_secret_basic, client_secret_post (RFC 6749 §2.3.1), private_key_jwt or
// tls_client_auth: exactly one of them. A failure is the one invalid_client answer, with a Basic
// challenge. A secret is not checked here (see authenticated()).
ClientAuth read_credentials(const OAuthEndpoints& endpoints, const tokens::Policy& policy, const HttpRequest& req,
                            Form& form, const std::string& realm, const CredentialHeader& from) {
  ClientAuth out;
  out.from = &from;
  if (req.header_count(from.name) > 1) {
    out.refusal = oauth_error(OAuthCode::invalid_request, std::string("more than one ") + from.display + " header");
    return out;
  }
  const std::string* authorization = req.header(from.name);
  std::optional<std::pair<std::string, std::string>> basic;
  if (authorization) {
    auto b = parse_basic_auth(*authorization);
    if (!b) {
      out.refusal = client_refusal(b.error().message, realm, from);
      return out;
    }
    basic = std::move(*b);
  }
  const bool post = form.has("client_secret");
  const bool assertion = form.has("client_assertion") || form.has("client_assertion_type");
  if ((basic ? 1 : 0) + (post ? 1 : 0) + (assertion ? 1 : 0) > 1) {
    out.refusal = oauth_error(OAuthCode::invalid_request, "more than one client authentication method");
    return out;
  }
  std::string id, secret, method;
  if (basic) {
    id = basic->first;
    secret = basic->second;
    method = "client_secret_basic";
    if (const std::string* cid = form.get("client_id"); cid && *cid != id) {
      out.refusal = oauth_error(OAuthCode::invalid_request, "client_id differs from the authenticated client");
      return out;
    }
  } else if (post) {
    id = form.value("client_id");
    secret = form.value("client_secret");
    method = "client_secret_post";
  }
  form.erase("client_secret");
  auto fail_auth = [&](const std::string& why) {
    out.refusal = client_refusal(why, realm, from);
    return out;
  };
  // RFC 7523 private_key_jwt: a JWT signed with one of the client's keys.
  if (assertion) {
    if (form.value("client_assertion_type") != "urn:ietf:params:oauth:client-assertion-type:jwt-bearer") {
      out.refusal = oauth_error(OAuthCode::invalid_request, "client_assertion_type must be "
                                                            "urn:ietf:params:oauth:client-assertion-type:jwt-bearer");
      return out;
    }
    auto c = endpoints.authenticate_assertion(form.value("client_assertion"));
    if (!c) return fail_auth(c.error().message);
    if (const std::string* cid = form.get("client_id"); cid && *cid != (*c)->id) {
      return fail_auth("client_id differs from the assertion's issuer");
    }
    out.client = *c;
    form.erase("client_assertion");
    return out;
  }
  // RFC 8705 tls_client_auth: client_id in the body, the verified certificate as the credential.
  if (method.empty() && form.has("client_id") && (!req.client_cert_subject.empty() || !req.client_cert_sans.empty())) {
    auto c = tokens::authenticate_tls_client(policy, form.value("client_id"), req.client_cert_subject, req.client_cert_sans);
    if (!c) return fail_auth(c.error().message);
    out.client = *c;
    return out;
  }
  if (method.empty()) return fail_auth("client authentication is required");
  out.id = std::move(id);
  out.secret = std::move(secret);
  out.method = std::move(method);
  return out;
}

// The RFC 8705 x5t#S256 thumbprint of the certificate in a Client-Cert header set by the gateway:
// RFC 9440's byte sequence (":<base64 DER>:"), or nginx's $ssl_client_escaped_cert (the PEM,
// percent-encoded). nullopt when it is neither.
std::optional<std::string> client_cert_thumbprint(std::string_view value) {
  value = trim(value);
  std::string cert;
  if (value.size() > 2 && value.front() == ':' && value.back() == ':') {
    auto der = b64_decode(value.substr(1, value.size() - 2));
    if (!der) return std::nullopt;
    cert = std::move(*der);
  } else {
    auto decoded = percent_decode(value);  // '+' is base64 here, never a space
    if (!decoded) return std::nullopt;
    cert = std::move(*decoded);
    // Exactly one PEM certificate, nothing before or after it.
    constexpr std::string_view k_begin = "-----BEGIN CERTIFICATE-----", k_end = "-----END CERTIFICATE-----";
    const std::string_view pem = trim(cert);
    if (!pem.starts_with(k_begin) || !pem.ends_with(k_end) || pem.find(k_begin, 1) != std::string_view::npos ||
        pem.find(k_end) != pem.size() - k_end.size()) {
      return std::nullopt;
    }
  }
  auto x5t = jose::certificate_thumbprint(cert);
  if (!x5t) return std::nullopt;
  return std::move(*x5t);
}

// A token that is not active (unknown, expired, revoked), as against a failure to find out.
bool inactive(const Error& e) { return e.code == ErrorCode::invalid_token && e.oauth == OAuthCode::none; }

bool is_active(const json& info) {
  auto a = info.find("active");
  return a != info.end() && a->is_boolean() && a->get<bool>();
}

std::string etag_of(const std::string& body) {
  return "\"" + b64url_encode(jose::sha256(body)).substr(0, 22) + "\"";
}

}  // namespace

HttpResponse not_ready_response() {
  HttpResponse r = oauth_error(OAuthCode::temporarily_unavailable, "the service is starting; retry in a second");
  r.set("Retry-After", "1");
  return r;
}

OAuthEndpoints::OAuthEndpoints(const tokens::TokenService& service, const Clock& clock, EndpointOptions options)
    : m_service(service), m_clock(clock), m_options(std::move(options)), m_secrets(service.policy()) {
  const tokens::Policy& p = service.policy();
  std::string base = m_options.base_url.empty() ? p.issuer : m_options.base_url;
  while (!base.empty() && base.back() == '/') base.pop_back();
  m_options.base_url = base;
  json auth_methods = {"client_secret_basic", "client_secret_post"};
  // The JWS algorithms private_key_jwt assertions may use: what the clients' keys pin or imply.
  std::vector<std::string> assertion_algs;
  for (const auto& [id, c] : p.clients) {
    if (!c.jwks || (!c.auth_method.empty() && c.auth_method != "private_key_jwt")) continue;
    jose::VerifyOptions vo;
    vo.claims.iss = id;
    vo.claims.sub = id;
    vo.claims.required = {"exp", "jti"};
    auto v = jose::TokenVerifier::create(*c.jwks, jose::KeySource::set, vo, m_clock);
    if (!v) throw std::invalid_argument("client '" + id + "': its jwks cannot verify assertions: " + v.error().message);
    m_assertion_verifiers.emplace(id, std::move(*v));
    for (const auto& k : c.jwks->keys) {
      if (auto alg = jose::implied_jws_alg(k); alg && jose::alg_from_string(*alg) &&
                                              std::find(assertion_algs.begin(), assertion_algs.end(), *alg) == assertion_algs.end()) {
        assertion_algs.push_back(*alg);
      }
    }
  }
  if (!m_assertion_verifiers.empty()) auth_methods.push_back("private_key_jwt");
  for (const auto& a : p.assertion_issuers) {
    jose::VerifyOptions vo;
    vo.claims.iss = a.issuer;
    vo.claims.required = {"sub", "exp", "jti"};
    auto v = jose::TokenVerifier::create(a.jwks, jose::KeySource::set, vo, m_clock);
    if (!v) {
      throw std::invalid_argument("assertion issuer '" + a.issuer + "': its jwks cannot verify assertions: " +
                                  v.error().message);
    }
    m_grant_verifiers.emplace(a.issuer, std::move(*v));
  }
  json grants = {tokens::k_grant_client_credentials, tokens::k_grant_refresh_token, tokens::k_grant_token_exchange};
  if (!m_grant_verifiers.empty()) grants.push_back(tokens::k_grant_jwt_bearer);
  if (m_options.tls_client_auth) auth_methods.push_back("tls_client_auth");
  json scopes = json::array();
  for (const auto& s : p.scopes)
    if (!s.name.empty()) scopes.push_back(s.name);
  // RFC 9701 responses are signed by the active key (as it is now: a rotation to another alg
  // shows here after a restart).
  json introspection_algs = json::array();
  if (auto ring = m_service.keys().current(); ring && (*ring)->signer) {
    introspection_algs.push_back(jose::to_string((*ring)->signer->alg()));
  }
  m_metadata = json{
      {"issuer", p.issuer},
      {"token_endpoint", base + "/oauth/token"},
      {"introspection_endpoint", base + "/oauth/introspect"},
      {"revocation_endpoint", base + "/oauth/revoke"},
      {"jwks_uri", base + "/oauth/jwks"},
      {"grant_types_supported", grants},
      {"introspection_signing_alg_values_supported", introspection_algs},
      {"response_types_supported", json::array()},
      {"token_endpoint_auth_methods_supported", auth_methods},
      {"introspection_endpoint_auth_methods_supported", auth_methods},
      {"revocation_endpoint_auth_methods_supported", auth_methods},
      {"scopes_supported", scopes},
  };
  // RFC 8414 §2: required with private_key_jwt among an endpoint's auth methods.
  if (!m_assertion_verifiers.empty()) {
    for (const char* name : {"token_endpoint_auth_signing_alg_values_supported",
                             "introspection_endpoint_auth_signing_alg_values_supported",
                             "revocation_endpoint_auth_signing_alg_values_supported"}) {
      m_metadata[name] = assertion_algs;
    }
  }
  // RFC 8705 §3.3: with mTLS, clients registered for it get certificate-bound access tokens.
  if (m_options.tls_client_auth) m_metadata["tls_client_certificate_bound_access_tokens"] = true;
  // RFC 9449 §5.1: the algorithms a DPoP proof may use (the asymmetric ones).
  json dpop_algs = json::array();
  for (jose::Alg a : jose::k_all_algs)
    if (!jose::is_symmetric(a)) dpop_algs.push_back(jose::to_string(a));
  for (const auto& a : dpop_algs) m_dpop_algs += (m_dpop_algs.empty() ? "" : " ") + a.get<std::string>();
  m_metadata["dpop_signing_alg_values_supported"] = std::move(dpop_algs);
  m_token_endpoint = m_metadata.at("token_endpoint").get<std::string>();
  m_metadata_text = m_metadata.dump();
  if (m_secrets.slow()) {
    const unsigned threads = std::max(1u, std::thread::hardware_concurrency() / 2);
    m_auth_pool = std::make_unique<AuthPool>(threads, 16 * threads);
  }
}

OAuthEndpoints::~OAuthEndpoints() = default;

void OAuthEndpoints::stop_authentication() const {
  if (m_auth_pool) m_auth_pool->stop();
}

bool OAuthEndpoints::writes(const HttpRequest& req) {
  const std::string_view path = req.path();
  if (req.method != "POST") return false;
  if (path == "/oauth/revoke") return true;
  if (path != "/oauth/token") return false;
  // A malformed body is refused at once, wherever it runs.
  auto form = parse_form(req.body, {"audience", "resource"});
  const std::string* grant = form ? form->get("grant_type") : nullptr;
  return grant && *grant != tokens::k_grant_client_credentials && *grant != tokens::k_grant_jwt_bearer;
}

HttpResponse OAuthEndpoints::handle(const HttpRequest& req) const {
  auto answer = std::make_shared<std::promise<HttpResponse>>();
  auto future = answer->get_future();
  handle_async(req, [answer](HttpResponse r) { answer->set_value(std::move(r)); });
  return future.get();
}

void OAuthEndpoints::handle_async(const HttpRequest& req, Respond respond) const {
  if (req.method == "POST") {
    const std::string_view path = req.path();
    if (path == "/oauth/token") return token(req, std::move(respond));
    if (path == "/oauth/introspect") return token_request(req, std::move(respond), &OAuthEndpoints::introspect);
    if (path == "/oauth/revoke") return token_request(req, std::move(respond), &OAuthEndpoints::revoke);
  } else if ((req.method == "GET" || req.method == "HEAD") && req.path() == "/phantom") {
    return phantom_request(req, std::move(respond));
  }
  respond(answer(req));
}

void OAuthEndpoints::authenticated(const HttpRequest& req, Form form, Respond respond, Authenticated next,
                                   bool proxy) const {
  const tokens::Policy& policy = m_service.policy();
  ClientAuth auth =
      read_credentials(*this, policy, req, form, policy.issuer, proxy ? k_proxy_authorization : k_authorization);
  if (auth.refusal) return respond(std::move(*auth.refusal));
  if (auth.client) return next(req, form, *auth.client, std::move(respond));
  // A secret: its check decides, then the method the client is registered for (a client
  // registered for one method may not use the other).
  auto decided = [this](const HttpRequest& rq, Form& fm, const ClientAuth& ca, const Result<const tokens::ClientPolicy*>& c,
                        Respond out, const Authenticated& then) {
    const std::string& realm = m_service.policy().issuer;
    if (!c) return out(client_refusal(c.error().message, realm, *ca.from));
    const std::string& registered = (*c)->auth_method;
    if (!registered.empty() && registered != ca.method) {
      return out(client_refusal("client authentication failed", realm, *ca.from));
    }
    then(rq, fm, **c, std::move(out));
  };
  if (auto fast = m_secrets.authenticate_fast(auth.id, auth.secret)) {
    return decided(req, form, auth, *fast, std::move(respond), next);
  }
  if (!m_auth_pool) return decided(req, form, auth, m_secrets.authenticate(auth.id, auth.secret), std::move(respond), next);
  // A KDF decides: on the authentication threads, with copies (the request is gone once this
  // returns). Every failure costs the same there (tokens::SecretAuthenticator).
  auto request = std::make_shared<HttpRequest>(req);
  auto state = std::make_shared<std::pair<Form, ClientAuth>>(std::move(form), std::move(auth));
  auto answer = std::make_shared<Respond>(respond);
  const bool queued = m_auth_pool->post([this, request, state, answer, next = std::move(next), decided] {
    auto& st = *state;
    decided(*request, st.first, st.second, m_secrets.authenticate(st.second.id, st.second.secret), std::move(*answer), next);
  });
  if (!queued) {
    HttpResponse busy = oauth_error(OAuthCode::temporarily_unavailable, "too many client authentications in progress; retry later");
    busy.set("Retry-After", "1");
    respond(std::move(busy));
  }
}

void OAuthEndpoints::token_request(const HttpRequest& req, Respond respond, TokenHandler handler) const {
  auto read = read_form(req);
  if (auto* refusal = std::get_if<HttpResponse>(&read)) return respond(std::move(*refusal));
  authenticated(req, std::move(std::get<Form>(read)), std::move(respond),
                [this, handler](const HttpRequest& rq, Form& fm, const tokens::ClientPolicy& client, Respond out) {
                  const std::string* token = fm.get("token");
                  HttpResponse r = token ? (this->*handler)(rq, client, *token)
                                         : oauth_error(OAuthCode::invalid_request, "token is missing");
                  r.client_id = client.id;
                  out(std::move(r));
                });
}

HttpResponse OAuthEndpoints::answer(const HttpRequest& req) const {
  const std::string_view path = req.path();
  struct Route {
    std::string_view path;
    const char* method;  // the one method (GET routes also answer HEAD)
    HttpResponse (OAuthEndpoints::*post)(const HttpRequest&) const;
  };
  static constexpr std::string_view k_meta1 = "/.well-known/oauth-authorization-server";
  static constexpr std::string_view k_meta2 = "/.well-known/openid-configuration";
  const bool get = req.method == "GET" || req.method == "HEAD";
  auto only = [&](const char* allow) {
    HttpResponse r;
    if (req.method == "OPTIONS") {
      r.status = 204;
    } else {
      r = simple_error(405, "method_not_allowed", "use " + std::string(allow));
    }
    r.set("Allow", allow);
    return r;
  };
  if (path == "/oauth/token") return only("POST, OPTIONS");  // a POST went to token()
  if (path == "/oauth/introspect") return only("POST, OPTIONS");  // a POST went to token_request()
  if (path == "/oauth/revoke") return only("POST, OPTIONS");
  if (path == "/phantom") return only("GET, HEAD, OPTIONS");  // a GET went to phantom_request()
  if (path == "/oauth/jwks") return get ? jwks(req) : only("GET, HEAD, OPTIONS");
  if (path == k_meta1 || path == k_meta2) {
    if (!get) return only("GET, HEAD, OPTIONS");
    HttpResponse r = json_response(200, m_metadata_text);
    r.set("Cache-Control", "max-age=" + std::to_string(m_options.jwks_max_age));
    return r;
  }
  if (path == "/healthz") return get ? health() : only("GET, HEAD, OPTIONS");
  if (path == "/metrics") {
    if (!get) return only("GET, HEAD, OPTIONS");
    HttpResponse r;
    r.set("Content-Type", "text/plain; version=0.0.4; charset=utf-8");
    r.set("Cache-Control", "no-store");
    r.body = m_metrics.render();
    return r;
  }
  return simple_error(404, "not_found", "no such endpoint");
}

void OAuthEndpoints::token(const HttpRequest& req, Respond respond) const {
  // RFC 8693 §2.1 and RFC 8707: audience and resource may be repeated.
  auto read = read_form(req, {"audience", "resource"});
  if (auto* refusal = std::get_if<HttpResponse>(&read)) return respond(std::move(*refusal));
  authenticated(req, std::move(std::get<Form>(read)), std::move(respond),
                [this](const HttpRequest& rq, Form& fm, const tokens::ClientPolicy& client, Respond out) {
                  auto jkt = dpop_binding(rq, client);
                  // RFC 9449 §8: the nonce to use next, on refusals and answers alike.
                  if (m_options.dpop_nonce && rq.header("dpop")) {
                    out = [out = std::move(out), nonce = m_dpop_nonces.current(m_clock.now())](HttpResponse r) {
                      r.set("DPoP-Nonce", nonce);
                      out(std::move(r));
                    };
                  }
                  if (!jkt) {
                    jkt.error().client_id = client.id;
                    return out(std::move(jkt.error()));
                  }
                  grant(fm, client, rq.client_cert_x5t, *jkt, std::move(out));
                });
}

std::expected<std::string, HttpResponse> OAuthEndpoints::dpop_binding(const HttpRequest& req,
                                                                       const tokens::ClientPolicy& client) const {
  auto refuse = [](OAuthCode code, const std::string& why) { return std::unexpected(oauth_error(code, why)); };
  const std::size_t proofs = req.header_count("dpop");
  if (proofs == 0) {
    if (!client.dpop_bound) return std::string();
    return refuse(OAuthCode::invalid_dpop_proof,
                  "client '" + client.id + "' gets DPoP-bound access tokens (RFC 9449): send a DPoP proof");
  }
  if (proofs > 1) return refuse(OAuthCode::invalid_dpop_proof, "more than one DPoP header");
  jose::DpopCheck check;
  check.htm = req.method;
  check.htu = m_token_endpoint;
  check.now = m_clock.now();
  auto proof = jose::check_dpop_proof(*req.header("dpop"), check);
  if (!proof) return std::unexpected(oauth_error(proof.error()));
  // §8: checked before the jti is remembered, so that the retry may reuse the key.
  if (m_options.dpop_nonce && !m_dpop_nonces.valid(proof->nonce, check.now)) {
    // RFC 9449 §8's own error code (OAuthCode lists RFC 6749's and those tokctl fails with).
    json body{{"error", "use_dpop_nonce"},
              {"error_description", proof->nonce.empty() ? "the DPoP proof needs this server's nonce (DPoP-Nonce)"
                                                         : "the DPoP proof's nonce is not (or no longer) valid"}};
    return std::unexpected(no_store(json_response(400, body.dump())));
  }
  switch (m_dpop_replay.remember(client.id, proof->jkt + "\n" + proof->jti, proof->iat + check.max_age, check.now)) {
    case ReplayCache::Seen::first: return std::move(proof->jkt);
    case ReplayCache::Seen::again: return refuse(OAuthCode::invalid_dpop_proof, "DPoP proof: its jti was used before");
    case ReplayCache::Seen::full: break;
  }
  return refuse(OAuthCode::temporarily_unavailable, "too many recent DPoP proofs (of this client); retry later");
}

void OAuthEndpoints::grant(Form& form, const tokens::ClientPolicy& client, const std::string& cert_x5t,
                           const std::string& dpop_jkt, Respond respond) const {
  const std::string* grant_param = form.get("grant_type");
  if (!grant_param) return respond(oauth_error(OAuthCode::invalid_request, "grant_type is missing"));
  const std::string grant = *grant_param;
  // Only the URNs and RFC 6749 names go over the wire (not tokctl's short names).
  const std::string urn = tokens::grant_type(grant);
  if (urn != grant) {
    return respond(oauth_error(OAuthCode::unsupported_grant_type, "grant type '" + grant + "' is not supported"));
  }
  // jwt-bearer is offered (and named in the metadata) only when the policy trusts an assertion
  // issuer; without one no assertion could ever pass, and the grant is not supported here.
  if (grant == tokens::k_grant_jwt_bearer && m_grant_verifiers.empty()) {
    return respond(oauth_error(OAuthCode::unsupported_grant_type,
                               "grant type '" + grant + "' is not supported: the policy trusts no assertion issuer"));
  }
  if (auto g = tokens::check_grant(client, grant); !g) {
    HttpResponse r = oauth_error(g.error());
    r.client_id = client.id;
    return respond(std::move(r));
  }
  // RFC 8707 §2: each resource an absolute URI without a fragment, for every grant.
  for (const auto& r : form.all("resource")) {
    if (!is_absolute_uri(r)) {
      HttpResponse bad = oauth_error(OAuthCode::invalid_target, "resource '" + r + "' is not an absolute URI without a fragment");
      bad.client_id = client.id;
      return respond(std::move(bad));
    }
  }
  // RFC 8705 §3: a client registered for certificate-bound access tokens gets them only over
  // mutual TLS; the binding is to the certificate of this request.
  const std::string bound = client.certificate_bound ? cert_x5t : std::string();
  if (client.certificate_bound && cert_x5t.empty()) {
    HttpResponse r = oauth_error(OAuthCode::invalid_request,
                                 "client '" + client.id + "' gets certificate-bound access tokens (RFC 8705): "
                                 "connect with its TLS client certificate");
    r.client_id = client.id;
    return respond(std::move(r));
  }
  Result<tokens::IssueResponse> issued = std::unexpected(Error{});
  auto param = [&](const char* name) { return form.value(name); };
  // client_credentials and jwt-bearer: the answer is sent once the store has the tokens, from
  // whichever thread commits them; this thread goes on.
  auto issue_async = [&](const tokens::IssueRequest& r) {
    m_service.issue_async(r, [this, respond, id = client.id](Result<tokens::IssueResponse> done) {
      respond(issued_response(done, id));
    });
  };
  if (grant == tokens::k_grant_client_credentials) {
    tokens::IssueRequest r;
    r.client_id = client.id;
    r.sub = client.id;
    r.scope = param("scope");
    r.aud = form.all("resource");
    if (r.aud.empty()) r.aud = form.all("audience");
    r.cnf_x5t = bound;
    r.cnf_jkt = dpop_jkt;
    return issue_async(r);
  } else if (grant == tokens::k_grant_refresh_token) {
    tokens::RefreshRequest r;
    r.refresh_token = param("refresh_token");
    if (r.refresh_token.empty()) return respond(oauth_error(OAuthCode::invalid_request, "refresh_token is missing"));
    r.client_id = client.id;
    r.scope = param("scope");
    r.cnf_x5t = bound;
    r.cnf_jkt = dpop_jkt;
    issued = m_service.refresh(r);
  } else if (grant == tokens::k_grant_jwt_bearer) {
    // RFC 7523 §2.1: an assertion by a trusted issuer about a subject, for this client.
    if (param("assertion").empty()) return respond(oauth_error(OAuthCode::invalid_request, "assertion is missing"));
    auto claims = verified_assertion(m_grant_verifiers, param("assertion"), "assertion", OAuthCode::invalid_grant, 3600);
    const std::string* subject = claims ? jose::string_member(*claims, "sub") : nullptr;
    if (!claims) {
      issued = std::unexpected(claims.error());
    } else if (!subject || subject->empty()) {
      issued = oauth_fail(OAuthCode::invalid_grant, "assertion names no subject (sub)");
    } else {
      tokens::IssueRequest r;
      r.client_id = client.id;
      r.sub = *subject;
      r.scope = param("scope");
      r.aud = form.all("resource");
      if (r.aud.empty()) r.aud = form.all("audience");
      r.cnf_x5t = bound;
      r.cnf_jkt = dpop_jkt;
      return issue_async(r);
    }
  } else if (grant == tokens::k_grant_token_exchange) {
    // RFC 8693 under the policy's exchange rules, as `tokctl exchange` (delegation by default).
    tokens::ExchangeRequest r;
    r.subject_token = param("subject_token");
    if (r.subject_token.empty()) return respond(oauth_error(OAuthCode::invalid_request, "subject_token is missing"));
    r.subject_token_type = param("subject_token_type");
    if (r.subject_token_type.empty()) {
      return respond(oauth_error(OAuthCode::invalid_request, "subject_token_type is missing"));
    }
    r.actor_token = param("actor_token");
    r.actor_token_type = param("actor_token_type");
    if (!r.actor_token.empty() && r.actor_token_type.empty()) {
      return respond(oauth_error(OAuthCode::invalid_request, "actor_token_type is missing"));
    }
    if (r.actor_token.empty() && !r.actor_token_type.empty()) {
      return respond(oauth_error(OAuthCode::invalid_request, "actor_token_type without actor_token"));
    }
    if (r.actor_token_type.empty()) r.actor_token_type = tokens::k_urn_access_token;
    r.audience = form.all("audience");
    r.resource = form.all("resource");
    r.scope = param("scope");
    r.requested_token_type = param("requested_token_type");
    r.client_id = client.id;  // the new token is the requesting client's (RFC 9068 §2.2, RFC 8693 §4.1)
    r.cnf_x5t = bound;
    r.cnf_jkt = dpop_jkt;
    issued = m_service.exchange(r);
  } else {
    issued = oauth_fail(OAuthCode::unsupported_grant_type, "grant type '" + grant + "' is not served yet");
  }
  respond(issued_response(issued, client.id));
}

HttpResponse OAuthEndpoints::issued_response(const Result<tokens::IssueResponse>& issued,
                                             const std::string& client_id) const {
  if (issued) {
    m_metrics.issued(issued->access.format);
    if (issued->refresh) m_metrics.issued(issued->refresh->format);
    if (issued->id_token) m_metrics.issued(issued->id_token->format);
  }
  HttpResponse r = issued ? no_store(json_response(200, issued->to_json().dump())) : oauth_error(issued.error());
  r.client_id = client_id;
  return r;
}

HttpResponse OAuthEndpoints::introspect(const HttpRequest& req, const tokens::ClientPolicy& caller,
                                        const std::string& token) const {
  // Content negotiation with q-values (RFC 9110 §12.4.2; q=0: not acceptable). The JWT forms are
  // given only to a client that names them; JSON is the default and the fallback.
  const double q_rfc9701 = acceptance(req, "application/token-introspection+jwt", false);
  const double q_phantom = acceptance(req, "application/jwt", false);
  const double q_json = acceptance(req, "application/json", true);
  const bool rfc9701 = q_rfc9701 > 0 && q_rfc9701 >= q_phantom && q_rfc9701 >= q_json;
  const bool phantom = !rfc9701 && q_phantom > 0 && q_phantom >= q_json;
  if (phantom) {
    // The phantom contract: the JWT for an active token, nothing (204) for any other.
    auto jwt = phantom_jwt(token);
    if (!jwt) {
      if (inactive(jwt.error())) return HttpResponse{204, {{"Cache-Control", "no-store"}}, {}, {}};
      return oauth_error(jwt.error());
    }
    HttpResponse r;
    r.status = 200;
    r.set("Content-Type", "application/jwt");
    r.set("Cache-Control", "max-age=" + std::to_string(jwt->max_age));
    r.body = std::move(jwt->jwt);
    return r;
  }
  if (!rfc9701) {
    auto answer = m_service.introspect_json(token);
    if (!answer) return oauth_error(answer.error());
    HttpResponse r = json_response(200, std::move(*answer));
    r.set("Cache-Control", "no-store");
    return r;
  }
  // RFC 9701: the answer signed by the issuer, for the caller.
  auto info = m_service.introspect(token);
  if (!info) return oauth_error(info.error());
  json claims{{"iss", m_service.policy().issuer}, {"aud", caller.id}, {"iat", m_clock.now()}, {"token_introspection", *info}};
  auto jwt = m_service.sign_jwt(claims, "token-introspection+jwt");
  if (!jwt) return oauth_error(jwt.error());
  HttpResponse r;
  r.status = 200;
  r.set("Content-Type", "application/token-introspection+jwt");
  r.set("Cache-Control", "no-store");
  r.body = std::move(*jwt);
  return r;
}

Result<OAuthEndpoints::Phantom> OAuthEndpoints::phantom_jwt(const std::string& token) const {
  tokens::TokenService::PhantomFacts facts;
  auto jwt = m_service.phantom_jwt(token, &facts);  // not active (or not an access token): invalid_token
  if (!jwt) return std::unexpected(jwt.error());
  // Cacheable for the JWT's remaining life, at most the configured cap.
  const std::int64_t left = std::clamp<std::int64_t>(facts.exp - m_clock.now(), 0, m_options.phantom_max_age);
  return Phantom{std::move(*jwt), left, std::move(facts.cnf_x5t), std::move(facts.cnf_jkt)};
}

void OAuthEndpoints::phantom_request(const HttpRequest& req, Respond respond) const {
  // The query may name the gateway (client_id, for tls_client_auth) and nothing else: a secret
  // or a token in a URL ends up in logs (RFC 6750 §2.3, RFC 6749 §2.3.1).
  const std::string_view target = req.target;
  const auto q = target.find('?');
  const std::string_view raw = q == std::string_view::npos ? std::string_view() : target.substr(q + 1);
  // Every name first, with a value or not, and no refusal echoes one: it may be a token pasted
  // into the URL.
  for (std::string_view rest = raw; !rest.empty();) {
    const auto amp = rest.find('&');
    const std::string_view part = rest.substr(0, amp);
    rest = amp == std::string_view::npos ? std::string_view() : rest.substr(amp + 1);
    if (part.empty()) continue;
    const auto name = form_decode(part.substr(0, part.find('=')));
    if (!name || *name != "client_id") {
      return respond(oauth_error(OAuthCode::invalid_request, "only client_id may be sent in the /phantom query"));
    }
  }
  auto query = parse_form(raw);
  if (!query) return respond(oauth_error(OAuthCode::invalid_request, "client_id in the /phantom query is malformed or repeated"));
  authenticated(
      req, std::move(*query), std::move(respond),
      [this](const HttpRequest& rq, Form&, const tokens::ClientPolicy& gateway, Respond out) {
        HttpResponse r = phantom(rq);
        r.client_id = gateway.id;
        out(std::move(r));
      },
      /*proxy=*/true);
}

HttpResponse OAuthEndpoints::phantom(const HttpRequest& req) const {
  const std::string& realm = m_service.policy().issuer;
  // RFC 6750 §3: a Bearer challenge; no error code when no token was sent (§3.1). invalid_request
  // is 401 here too, not §3.1's 400: nginx auth_request passes 401 and 403 on to the client and
  // turns any other status into its own 500.
  // `error` null: no token was sent, and the body names no error code either. A token sent with
  // the DPoP scheme is answered with a DPoP challenge naming the proof algorithms (RFC 9449 §7.1).
  bool dpop_scheme = false;
  auto refuse = [&](const char* error, const std::string& why) {
    const std::string description = error_description(why);
    json body{{"error_description", description}};
    if (error) body["error"] = error;
    HttpResponse r = json_response(401, body.dump());
    std::string challenge = (dpop_scheme ? "DPoP algs=\"" + m_dpop_algs + "\", " : std::string("Bearer ")) + "realm=\"" + realm + "\"";
    if (error) challenge += ", error=\"" + std::string(error) + "\", error_description=\"" + description + "\"";
    r.set("WWW-Authenticate", std::move(challenge));
    r.set("Cache-Control", "no-store");
    return r;
  };
  const std::size_t sent = req.header_count("authorization");
  if (sent == 0) return refuse(nullptr, "no bearer token: send Authorization: Bearer <token>");
  if (sent > 1) return refuse("invalid_request", "more than one Authorization header");
  auto credential = parse_token_authorization(*req.header("authorization"));
  if (!credential) return refuse("invalid_request", credential.error().message);
  dpop_scheme = credential->dpop;
  const std::string_view token = credential->token;
  auto jwt = phantom_jwt(std::string(token));
  if (!jwt) return inactive(jwt.error()) ? refuse("invalid_token", "the token is not active") : oauth_error(jwt.error());
  if (!jwt->cnf_x5t.empty()) {
    // RFC 8705 §3: a certificate-bound token is only good with its certificate, which the API
    // behind the gateway never sees: the gateway passes it on (Client-Cert), tokctl checks it.
    const std::size_t certs = req.header_count("client-cert");
    const auto presented = certs == 1 ? client_cert_thumbprint(*req.header("client-cert")) : std::nullopt;
    if (!presented) {
      return refuse("invalid_token", certs == 0 ? "the token is bound to a TLS client certificate (RFC 8705) and the "
                                                  "gateway sent none (Client-Cert)"
                                                : "the gateway's Client-Cert header is not one certificate");
    }
    if (presented->size() != jwt->cnf_x5t.size() ||
        CRYPTO_memcmp(presented->data(), jwt->cnf_x5t.data(), presented->size()) != 0) {
      return refuse("invalid_token", "the token is bound to another TLS client certificate (RFC 8705)");
    }
  }
  if (!jwt->cnf_jkt.empty() || dpop_scheme) {
    // RFC 9449 §7: a DPoP-bound token comes with the DPoP scheme and a proof of its key, made for
    // the API's request: the gateway passes the request's method and URL on (it authenticated
    // above, so they are its word, not the client's).
    if (!dpop_scheme) {
      dpop_scheme = true;  // the challenge says which scheme to use instead (RFC 9449 §7.1, §7.2)
      return refuse("invalid_token", "the token is bound to a DPoP key (RFC 9449): send it with Authorization: DPoP "
                                     "and a DPoP proof, not as a bearer token");
    }
    if (jwt->cnf_jkt.empty()) return refuse("invalid_token", "the token is not DPoP-bound: send it as a Bearer token");
    const std::size_t proofs = req.header_count("dpop");
    if (proofs != 1) {
      return refuse("invalid_dpop_proof", proofs == 0 ? "no DPoP proof (DPoP header)" : "more than one DPoP header");
    }
    const std::string* method = req.header("x-original-method");
    const std::string* url = req.header("x-original-url");
    if (!method || !url || req.header_count("x-original-method") != 1 || req.header_count("x-original-url") != 1) {
      // The gateway's configuration, not the token, is at fault: 500 (nginx answers 500 too).
      return oauth_error(OAuthCode::server_error, "the gateway did not say which request the DPoP proof is for "
                                                  "(one X-Original-Method and one X-Original-URL header)");
    }
    jose::DpopCheck check;
    check.htm = *method;
    check.htu = *url;
    check.now = m_clock.now();
    check.access_token = token;
    auto proof = jose::check_dpop_proof(*req.header("dpop"), check);
    if (!proof) return refuse("invalid_dpop_proof", proof.error().message);
    if (proof->jkt != jwt->cnf_jkt) {
      return refuse("invalid_dpop_proof", "DPoP proof: signed by another key than the one the token is bound to");
    }
    // The share of the replay cache is the bound key's: every user behind one gateway comes
    // through it, and one of them sending proofs in a loop must not use up the others' room.
    switch (m_dpop_replay.remember("jkt:" + proof->jkt, proof->jkt + "\n" + proof->jti, proof->iat + check.max_age,
                                   check.now)) {
      case ReplayCache::Seen::first: break;
      case ReplayCache::Seen::again: return refuse("invalid_dpop_proof", "DPoP proof: its jti was used before");
      case ReplayCache::Seen::full:
        return oauth_error(OAuthCode::temporarily_unavailable, "too many recent DPoP proofs (of this key); retry later");
    }
  }
  HttpResponse r;
  r.status = 200;
  r.set("Authorization", "Bearer " + jwt->jwt);
  if (!jwt->cnf_x5t.empty() || !jwt->cnf_jkt.empty()) {
    // Each request must show the certificate, or a fresh proof, again: an answer cached by the
    // token alone would let the token through without it.
    r.set("Cache-Control", "no-store");
    return r;
  }
  // A cache in the gateway (nginx proxy_cache) keys the answer on the bearer token.
  r.set("Cache-Control", "max-age=" + std::to_string(jwt->max_age));
  r.set("Vary", "Authorization");
  return r;
}

HttpResponse OAuthEndpoints::revoke(const HttpRequest&, const tokens::ClientPolicy& caller,
                                    const std::string& token) const {
  // token_type_hint is a hint (RFC 7009 §2.1): the store knows what the token is. Only the
  // client's own tokens are revoked; for others (and unknown ones) the answer is the same 200,
  // so the endpoint tells nobody which tokens exist.
  auto info = m_service.introspect(token);
  if (!info) return oauth_error(info.error());
  if (is_active(*info)) {
    const std::string* owner = jose::string_member(*info, "client_id");
    if (owner && *owner == caller.id) {
      const std::string* type = jose::string_member(*info, "token_type");
      const bool refresh = type && *type == "refresh_token";
      if (auto r = m_service.revoke(token, refresh); !r) return oauth_error(r.error());
    }
  }
  HttpResponse r;
  r.status = 200;
  r.set("Cache-Control", "no-store");
  return r;
}

HttpResponse OAuthEndpoints::jwks(const HttpRequest& req) const {
  auto ring = m_service.keys().current();
  if (!ring || !(*ring)->jwks) return oauth_error(OAuthCode::temporarily_unavailable, "no key set is available");
  const std::string& body = *(*ring)->jwks;
  // The ETag of the ring's JWKS, hashed once per ring and I/O thread. A weak reference: an old
  // ring (private keys included) is not kept alive for it, and its control block, which the
  // reference keeps, cannot come back as another ring's.
  thread_local std::weak_ptr<const keys::KeyRing> tagged;
  thread_local std::string tag;
  if (tagged.lock() != *ring) {
    tag = etag_of(body);
    tagged = *ring;
  }
  const std::string& etag = tag;
  HttpResponse r;
  r.set("Cache-Control", "max-age=" + std::to_string(m_options.jwks_max_age));
  r.set("ETag", etag);
  if (const auto inm = req.header_list("if-none-match"); inm && none_match(*inm, etag)) {
    r.status = 304;
    return r;
  }
  r.status = 200;
  r.set("Content-Type", "application/jwk-set+json");
  r.body = body;
  return r;
}

Result<const tokens::ClientPolicy*> OAuthEndpoints::authenticate_assertion(std::string_view assertion) const {
  auto claims = verified_assertion(m_assertion_verifiers, assertion, "client_assertion", OAuthCode::invalid_client, 600);
  if (!claims) return std::unexpected(claims.error());
  return m_service.policy().client(*jose::string_member(*claims, "iss"));
}

Result<json> OAuthEndpoints::verified_assertion(const Verifiers& verifiers, std::string_view assertion,
                                                const std::string& what, OAuthCode code,
                                                std::int64_t max_ahead) const {
  auto refused = [&](const std::string& why) { return oauth_fail(code, why); };
  if (assertion.empty()) return refused(what + " is missing");
  // The issuer names the client, and so the keys; the signature then proves it.
  auto jws = jose::parse_compact(assertion);
  if (!jws) return refused(what + " is not a JWT: " + jws.error().message);
  auto claims = jose::parse_json_strict(jws->payload, what + " claims", jose::JsonLimits{});
  const std::string* iss = claims && claims->is_object() ? jose::string_member(*claims, "iss") : nullptr;
  if (!iss) return refused(what + " has no issuer");
  auto v = verifiers.find(*iss);
  if (v == verifiers.end()) {
    return refused(code == OAuthCode::invalid_client ? "client authentication failed" : what + ": issuer not trusted");
  }
  const jose::VerifyReport report = v->second.verify(assertion);
  if (!report.valid) {
    return refused(what + ": " + (report.problems.empty() ? std::string("invalid") : report.problems.front().message));
  }
  const json& c = report.payload;
  const std::string& token_endpoint = m_token_endpoint;
  const std::string& issuer = m_service.policy().issuer;
  bool aud_ok = false;
  if (auto a = c.find("aud"); a != c.end()) {
    auto one = [&](const json& x) { return x.is_string() && (x == token_endpoint || x == issuer); };
    aud_ok = a->is_array() ? std::any_of(a->begin(), a->end(), one) : one(*a);
  }
  if (!aud_ok) return refused(what + " audience must be the token endpoint or the issuer");
  // RFC 7519 §2 NumericDate: seconds, fractions allowed (the verifier checked expiry already).
  std::optional<UnixTime> exp;
  if (auto e = c.find("exp"); e != c.end() && e->is_number()) {
    const double seconds = e->get<double>();
    if (std::isfinite(seconds) && std::abs(seconds) < 1e15) exp = static_cast<UnixTime>(std::ceil(seconds));
  }
  const UnixTime now = m_clock.now();
  if (!exp) return refused(c.contains("exp") ? what + " exp is not a NumericDate (a number of seconds)" : what + " has no exp");
  if (*exp > now + max_ahead) {
    return refused(what + " expires more than " + std::to_string(max_ahead / 60) + " minutes ahead");
  }
  const std::string* jti = jose::string_member(c, "jti");
  if (!jti || jti->empty()) return refused(what + " has no jti");
  {
    // Remembered a minute past its exp (the verifier's leeway).
    switch (m_replay.remember(*iss, what + "\n" + *iss + "\n" + *jti, *exp + 60, now)) {
      case ReplayCache::Seen::first: break;
      case ReplayCache::Seen::again: return refused(what + " was used before");
      case ReplayCache::Seen::full:
        return oauth_fail(OAuthCode::temporarily_unavailable, "too many recent " + what + "s (of this issuer); retry later");
    }
  }
  return report.payload;
}

void OAuthEndpoints::observe(std::string_view path, int status, std::int64_t latency_us, bool store_failure) const {
  m_metrics.request(path, status, latency_us);
  if (store_failure) m_metrics.store_error();
}

HttpResponse OAuthEndpoints::health() const {
  // A lookup that finds nothing: the store answered.
  auto probe = m_service.introspect("healthz-probe");
  HttpResponse r = probe ? json_response(200, R"({"status":"ok"})")
                         : json_response(503, R"({"status":"unavailable","reason":"token store"})");
  r.store_failure = !probe;
  r.set("Cache-Control", "no-store");
  return r;
}

}  // namespace tokctl::server
