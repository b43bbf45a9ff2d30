#pragma once
// Remote mode's OAuth client: discovery (RFC 8414, then OpenID Connect Discovery), client
// authentication (RFC 6749 §2.3.1, RFC 7523, RFC 8705), the token endpoint (RFC 6749, RFC 7523,
// RFC 8693), introspection (RFC 7662, RFC 9701), revocation (RFC 7009) and JWKS with its cache.

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include <tokctl/jose/algorithm.hpp>
#include <tokctl/jose/jwk.hpp>
#include <tokctl/remote/http.hpp>
#include <tokctl/util/error.hpp>
#include <tokctl/util/time.hpp>

namespace tokctl::remote {

/// What remote mode needs of a server's metadata; empty strings are endpoints it does not name.
struct ServerEndpoints {
  std::string issuer;
  std::string token_endpoint;
  std::string introspection_endpoint;
  std::string revocation_endpoint;
  std::string jwks_uri;
  std::string metadata_url;  ///< where discovery found them ("" when none ran)
};

/// The metadata URLs tried for `issuer`, in order: RFC 8414 §3.1 (the well-known segment
/// inserted before the issuer's path), then OpenID Connect Discovery (appended to it).
std::vector<std::string> well_known_urls(std::string_view issuer);

/// The endpoints in a metadata document fetched from `url` for `issuer` (the checks of discover()).
Result<ServerEndpoints> parse_metadata(std::string_view body, const std::string& issuer, const std::string& url);

/// Discovers the endpoints of `issuer` (cached like any document). The metadata must be a JSON
/// object whose "issuer" is `issuer` (RFC 8414 §3.3; a trailing slash aside) and whose endpoints
/// are http(s) URLs. A 404 at the first URL tries the next; no metadata at all is ErrorCode::network.
Result<ServerEndpoints> discover(HttpClient& http, const DocumentCache& cache, const std::string& issuer,
                                 UnixTime now, FetchMode mode);

enum class AuthMethod { none, client_secret_basic, client_secret_post, private_key_jwt, tls_client_auth };
/// The RFC 8414 names; ErrorCode::usage for others.
Result<AuthMethod> auth_method_from_string(std::string_view name);
const char* to_string(AuthMethod method);

struct ClientAuth {
  AuthMethod method = AuthMethod::none;
  std::string client_id;
  std::string secret;                ///< client_secret_basic / client_secret_post
  std::optional<jose::Jwk> key;      ///< private_key_jwt: the signing key
  std::optional<jose::Alg> key_alg;  ///< its JWS alg
};

/// An introspection answer.
struct Introspection {
  long status = 200;
  std::string content_type;  ///< media type of the body
  std::string body;          ///< JSON (RFC 7662) or a JWT (RFC 9701, phantom); "" for 204
  nlohmann::json json;       ///< the parsed body when it was JSON
};

/// The client of one server. Holds the transport by reference (one connection pool per process).
class OAuthClient {
 public:
  OAuthClient(HttpClient& http, ServerEndpoints endpoints, ClientAuth auth, const Clock& clock);

  /// POSTs a grant to the token endpoint (never retried, but for a DPoP nonce). A 2xx answer must
  /// be a JSON object with a string access_token; an RFC 6749 error object is
  /// ErrorCode::remote_oauth ("error: description", Error::oauth set when the code is a known
  /// one); anything else ErrorCode::network. With use_dpop, each request carries a fresh DPoP proof
  /// (RFC 9449 §4), and a `use_dpop_nonce` refusal with a DPoP-Nonce header is answered once with a
  /// proof carrying that nonce (§8).
  Result<nlohmann::json> token(Fields params);

  /// RFC 9449: token requests prove possession of `key` (a private key; `alg` asymmetric), so the
  /// access tokens are bound to it.
  void use_dpop(jose::Jwk key, jose::Alg alg);

  /// RFC 7662 with `accept` as the Accept header ("application/json",
  /// "application/token-introspection+jwt", "application/jwt").
  Result<Introspection> introspect(std::string_view token, std::string_view hint, std::string_view accept);

  /// RFC 7009: 200 is success (also for tokens the server does not know).
  Result<void> revoke(std::string_view token, std::string_view hint);

  const ServerEndpoints& endpoints() const { return m_endpoints; }

 private:
  Result<HttpResponse> post(const std::string& endpoint, std::string_view what, Fields params, bool idempotent,
                            std::string_view accept, Fields headers = {});
  HttpClient& m_http;
  ServerEndpoints m_endpoints;
  ClientAuth m_auth;
  const Clock& m_clock;
  std::optional<jose::Jwk> m_dpop_key;
  jose::Alg m_dpop_alg = jose::Alg::ES256;
};

/// The RFC 6749 §5.2 error of a non-2xx answer as an Error: ErrorCode::remote_oauth when the body
/// is an error object, else ErrorCode::network naming the status. `what` names the endpoint.
Error error_from_response(const HttpResponse& response, std::string_view what);

/// A JSON object body (2xx), strictly parsed; else ErrorCode::network saying what came back.
Result<nlohmann::json> json_body(const HttpResponse& response, std::string_view what);

/// A JWKS URL's keys through the cache. An unknown kid refetches once (FetchMode::refresh), at
/// most once per `min_refetch_interval` seconds per URL (recorded in the cache entry).
class RemoteJwks {
 public:
  RemoteJwks(HttpClient& http, const DocumentCache& cache, std::string url, const Clock& clock, bool offline);

  /// The current keys (cached, or fetched).
  Result<jose::JwkSet> keys();
  /// After an unknown kid: refetched keys when allowed now, nullopt when rate-limited or offline
  /// (the reason in `why_not`).
  Result<std::optional<jose::JwkSet>> refetch(std::string& why_not);
  static constexpr std::int64_t min_refetch_interval = 30;

 private:
  Result<jose::JwkSet> parse(const CachedDocument& doc);
  HttpClient& m_http;
  const DocumentCache& m_cache;
  std::string m_url;
  const Clock& m_clock;
  bool m_offline;
  bool m_refetched = false;  ///< once per process whatever the interval
};

}  // namespace tokctl::remote
