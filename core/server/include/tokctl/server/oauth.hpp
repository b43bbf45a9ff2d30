#pragma once
// The OAuth endpoints of `tokctl serve` over one TokenService: a function from HttpRequest to
// HttpResponse, with no transport in it (tests call it directly, the HttpServer over sockets).
//
//   POST /oauth/token        client_credentials, refresh_token (RFC 6749 §4.4, §6)
//   POST /oauth/introspect   RFC 7662 JSON; Accept: application/jwt gives the phantom JWT
//   POST /oauth/revoke       RFC 7009
//   GET  /phantom            for nginx auth_request: the bearer token in Authorization becomes
//                            its phantom JWT (in the response's Authorization header); the
//                            gateway authenticates with Proxy-Authorization or its certificate
//   GET  /oauth/jwks         the published keys (Cache-Control, ETag)
//   GET  /.well-known/oauth-authorization-server, /.well-known/openid-configuration (RFC 8414)
//   GET  /healthz            200 when the store answers, else 503
//   GET  /metrics            Prometheus text format (see metrics.hpp)

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include <nlohmann/json.hpp>

#include <tokctl/server/form.hpp>
#include <tokctl/server/http.hpp>
#include <tokctl/server/metrics.hpp>
#include <tokctl/server/replay.hpp>
#include <tokctl/jose/jwt.hpp>
#include <tokctl/tokens/clients.hpp>
#include <tokctl/tokens/service.hpp>
#include <tokctl/util/time.hpp>

namespace tokctl::server {

struct EndpointOptions {
  /// Where the endpoints are published (metadata URLs): the policy issuer when empty.
  std::string base_url;
  std::int64_t jwks_max_age = 300;     ///< Cache-Control max-age of /oauth/jwks
  std::int64_t phantom_max_age = 300;  ///< the most a phantom JWT response may be cached
  bool tls_client_auth = false;        ///< client certificates are verified (mTLS): RFC 8705 offered
  /// RFC 9449 §8: DPoP proofs at the token endpoint must carry a nonce this server handed out
  /// (DPoP-Nonce header; use_dpop_nonce until they do).
  bool dpop_nonce = false;
};

class AuthPool;

/// The answer to a request that arrives before the endpoints exist (the listener is bound before
/// the service opens): 503 temporarily_unavailable as RFC 6749 JSON, no-store, Retry-After: 1.
HttpResponse not_ready_response();

class OAuthEndpoints {
 public:
  /// Every client jwks and assertion issuer key set must give a verifier (the policy loader
  /// refuses a key that pins no algorithm): one that does not is a programming error
  /// (std::invalid_argument naming the client), never a client left out without a word.
  OAuthEndpoints(const tokens::TokenService& service, const Clock& clock, EndpointOptions options = {});
  /// Client authentications still queued are dropped (their requests get no answer); the one
  /// running finishes. Destroy the endpoints once the transport stopped handing them requests.
  ~OAuthEndpoints();
  OAuthEndpoints(const OAuthEndpoints&) = delete;
  OAuthEndpoints& operator=(const OAuthEndpoints&) = delete;
  /// Stops the authentication threads: queued checks are dropped, running ones finish (their
  /// requests may still reach the service). Call it once the transport stopped, before the
  /// service goes. Idempotent; the destructor does it too.
  void stop_authentication() const;

  /// Never throws for bad input: every refusal is an HTTP answer (RFC 6749 §5.2 JSON for OAuth
  /// errors, {"error": ...} JSON for 404/405).
  /// Waits for the answer of handle_async.
  HttpResponse handle(const HttpRequest& request) const;
  /// The answer goes to `respond`, exactly once: at once for most requests; for
  /// client_credentials and jwt-bearer issuance once the store committed the tokens, from the
  /// store's writer thread (the calling thread never waits for the store). A client secret that
  /// only a KDF can check (a human-chosen secret not verified before, and every failed secret
  /// when the policy holds PBKDF2 hashes: see tokens::SecretAuthenticator) is checked on the
  /// endpoints' own authentication threads, and the request goes on from there: the calling (I/O)
  /// thread never runs a KDF. When too many such checks wait, the answer is 503
  /// temporarily_unavailable with Retry-After.
  void handle_async(const HttpRequest& request, Respond respond) const;

  /// Whether handling the request waits on a store write (revocation; refresh and token
  /// exchange): the transport's Blocking predicate, so that such requests wait, and commit,
  /// together on its blocking pool. client_credentials and jwt-bearer never wait (issue_async).
  static bool writes(const HttpRequest& request);

  /// The RFC 8414 authorization server metadata.
  const nlohmann::json& metadata() const { return m_metadata; }

  /// Counts one answered request (from the transport's access log), and a store failure when the
  /// answer was a 503 because the token store failed.
  void observe(std::string_view path, int status, std::int64_t latency_us, bool store_failure = false) const;
  const Metrics& metrics() const { return m_metrics; }

 private:
  // Runs `next` with the authenticated client (at once, or on an authentication thread after a
  // KDF), or answers the refusal.
  using Authenticated = std::function<void(const HttpRequest&, FormParams&, const tokens::ClientPolicy&, Respond)>;
  // `proxy`: the credentials are in Proxy-Authorization (GET /phantom), a refusal is 407.
  void authenticated(const HttpRequest& request, FormParams form, Respond respond, Authenticated next,
                     bool proxy = false) const;
  // introspect and revoke: the form, the client, its `token` parameter.
  using TokenHandler = HttpResponse (OAuthEndpoints::*)(const HttpRequest&, const tokens::ClientPolicy&,
                                                        const std::string&) const;
  void token_request(const HttpRequest& request, Respond respond, TokenHandler handler) const;

  HttpResponse answer(const HttpRequest& request) const;  // every request but an OAuth POST
  void token(const HttpRequest& request, Respond respond) const;
  // `cert_x5t`: the thumbprint of the TLS client certificate, if any (RFC 8705 bound tokens);
  // `dpop_jkt`: the thumbprint of the request's DPoP proof key, if any (RFC 9449 bound tokens).
  void grant(FormParams& form, const tokens::ClientPolicy& client, const std::string& cert_x5t,
             const std::string& dpop_jkt, Respond respond) const;
  // RFC 9449 §4.3, §5, §8: the key thumbprint of the request's DPoP proof, checked (with the
  // server's nonce when EndpointOptions::dpop_nonce) and not seen before; empty without a proof
  // (refused when the client must send one). A refusal is the answer to send.
  std::expected<std::string, HttpResponse> dpop_binding(const HttpRequest& request,
                                                        const tokens::ClientPolicy& client) const;
  HttpResponse issued_response(const Result<tokens::IssueResponse>& issued, const std::string& client_id) const;
  HttpResponse introspect(const HttpRequest& request, const tokens::ClientPolicy& client, const std::string& token) const;
  HttpResponse revoke(const HttpRequest& request, const tokens::ClientPolicy& client, const std::string& token) const;
  // GET /phantom: the gateway authenticated, the end user's bearer token exchanged for its JWT.
  void phantom_request(const HttpRequest& request, Respond respond) const;
  HttpResponse phantom(const HttpRequest& request) const;
  // The phantom JWT of an active token, how long it may be cached, and the source token's RFC
  // 8705 binding; invalid_token when the token is not active (any more).
  struct Phantom {
    std::string jwt;
    std::int64_t max_age = 0;
    std::string cnf_x5t;
    std::string cnf_jkt;
  };
  Result<Phantom> phantom_jwt(const std::string& token) const;
  HttpResponse jwks(const HttpRequest& request) const;
  HttpResponse health() const;

  const tokens::TokenService& m_service;
  const Clock& m_clock;
  EndpointOptions m_options;
  nlohmann::json m_metadata;
  std::string m_token_endpoint;  ///< as published (the htu of DPoP proofs, the aud of assertions)
  std::string m_dpop_algs;       ///< the DPoP proof algorithms, space-separated (challenges)
  std::string m_metadata_text;
  mutable Metrics m_metrics;
  using Verifiers = std::map<std::string, jose::TokenVerifier, std::less<>>;
  /// private_key_jwt: a verifier per client with a jwks (iss and sub pinned to the client id).
  Verifiers m_assertion_verifiers;
  /// jwt-bearer grant: a verifier per trusted assertion issuer (policy assertion_issuers).
  Verifiers m_grant_verifiers;
  /// Assertion jti values seen, until their exp (RFC 7523 §3 replay protection, this process).
  mutable ReplayCache m_replay{k_replay_capacity, k_replay_per_client};
  /// DPoP proof jti values seen (with their key), while the proof's iat is acceptable (RFC 9449 §11.1).
  mutable ReplayCache m_dpop_replay{k_replay_capacity, k_replay_per_client};
  static constexpr std::size_t k_replay_capacity = std::size_t{1} << 20;
  static constexpr std::size_t k_replay_per_client = std::size_t{1} << 17;
  /// The nonces DPoP proofs must carry (with EndpointOptions::dpop_nonce).
  DpopNonces m_dpop_nonces;
  /// client_secret_basic/post, with its cost model and cache of verified human secrets.
  tokens::SecretAuthenticator m_secrets;
  /// Threads for the secret checks that run a KDF (only when the policy has PBKDF2 hashes).
  /// Last: destroyed (joined) first, while everything its tasks use is still there.
  std::unique_ptr<AuthPool> m_auth_pool;

 public:
  /// private_key_jwt (RFC 7523 §2.2): the client whose key signed `assertion` (iss = sub = its
  /// id; aud the token endpoint or the issuer; exp at most 10 minutes ahead; jti not seen before).
  /// Every failure is invalid_client.
  Result<const tokens::ClientPolicy*> authenticate_assertion(std::string_view assertion) const;

 private:
  // A JWT assertion from one of `verifiers` (by its iss): signature, claims, aud (the token
  // endpoint or the issuer), exp at most `max_ahead` seconds ahead, a jti not seen before.
  // Refusals carry `code`; `what` names the parameter.
  Result<nlohmann::json> verified_assertion(const Verifiers& verifiers, std::string_view assertion,
                                            const std::string& what, OAuthCode code, std::int64_t max_ahead) const;
};

/// The HTTP status of an OAuth refusal: 401 invalid_client, 500 server_error, 503
/// temporarily_unavailable, 400 for the others (RFC 6749 §5.2).
int oauth_status(OAuthCode code);

/// The OAuth refusal an Error stands for: its own code, or by group (usage and malformed input:
/// invalid_request; keystore and store failures: temporarily_unavailable; else server_error).
OAuthCode oauth_code_of(const Error& error);

}  // namespace tokctl::server
