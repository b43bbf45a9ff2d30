#pragma once
// Remote mode's HTTP transport (libcurl behind a pimpl: no curl header leaks from here) and the
// on-disk HTTP cache for discovery documents and JWKS (Cache-Control and ETag honoured).

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <tokctl/util/error.hpp>
#include <tokctl/util/time.hpp>

namespace tokctl::remote {

struct TransportOptions {
  std::string cacert;  ///< CA bundle (PEM) trusted instead of the system's; empty: the system's
  bool insecure = false;  ///< no certificate or host name check (the CLI warns loudly)
  std::string cert;       ///< client certificate (PEM) for mTLS / tls_client_auth
  std::string key;        ///< its private key (PEM)
  long timeout_ms = 30000;          ///< the whole exchange, per attempt
  long connect_timeout_ms = 10000;  ///< the TCP and TLS handshake, per attempt
  int retries = 2;                  ///< extra attempts of idempotent requests (connection errors, 5xx)
  long backoff_ms = 200;            ///< the first pause between attempts; doubles, at most 5 s
  std::size_t max_response_bytes = std::size_t{1} << 20;  ///< a longer body fails the request
};

using Fields = std::vector<std::pair<std::string, std::string>>;

struct HttpRequest {
  std::string method = "GET";
  std::string url;
  Fields headers;
  std::string body;
  /// Repeating it changes nothing on the server (GET, introspection, revocation): only such
  /// requests are retried. A token request never is.
  bool idempotent = true;
};

struct HttpResponse {
  long status = 0;
  Fields headers;  ///< names in lower case, in arrival order (of the final response)
  std::string body;
  std::string url;  ///< the URL that answered (after redirects of a GET)

  /// The first header named `name` (lower case), or "".
  std::string header(std::string_view name) const;
  /// Every header named `name` (lower case), joined with ", " (a list field sent several times).
  std::string header_list(std::string_view name) const;
  /// The media type without parameters, lower case ("application/json").
  std::string media_type() const;
};

/// One libcurl handle: connections are kept alive and reused across send() calls (a batch of
/// introspections runs over one connection). Not thread-safe; one per thread.
class HttpClient {
 public:
  /// Fails with ErrorCode::usage on unreadable --cacert/--cert/--key files.
  static Result<HttpClient> create(TransportOptions options);

  /// Sends `request`. A transport failure (refused, TLS, timeout, oversized body) is
  /// ErrorCode::network with curl's reason and the URL; any HTTP status is a response. Idempotent
  /// requests are retried with backoff on connection errors and 5xx answers.
  Result<HttpResponse> send(const HttpRequest& request);

  HttpClient(HttpClient&&) noexcept;
  HttpClient& operator=(HttpClient&&) noexcept;
  ~HttpClient();

 private:
  struct Impl;
  explicit HttpClient(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> m;
};

/// application/x-www-form-urlencoded (RFC 6749 Appendix B: space as '+', everything but
/// ALPHA / DIGIT / "-" / "." / "_" / "*" percent-encoded).
std::string form_urlencode(std::string_view text);
std::string form_body(const Fields& fields);

/// The Authorization header value of client_secret_basic: both parts form-urlencoded first
/// (RFC 6749 §2.3.1), then base64.
std::string basic_authorization(std::string_view client_id, std::string_view secret);

/// `url` without its userinfo (user:password@), for messages.
std::string redact_url(std::string_view url);

/// Whether `url` carries userinfo (user:password@ before the host).
bool has_userinfo(std::string_view url);

/// Whether `url` starts with https:// (any case).
bool is_https_url(std::string_view url);

/// Whether `url` is an absolute http:// or https:// URL with a host.
bool is_http_url(std::string_view url);

// ---------------------------------------------------------------------------------------------
// The cache.

struct CacheControl {
  bool no_store = false;
  bool no_cache = false;
  std::optional<std::int64_t> max_age;
};
/// Parses a Cache-Control header value (directives case-insensitive; unknown ones ignored).
CacheControl parse_cache_control(std::string_view value);

/// How long a response without Cache-Control stays fresh.
inline constexpr std::int64_t k_default_freshness = 300;

struct CachedDocument {
  std::string url;
  std::string body;
  std::string etag;
  UnixTime fetched_at = 0;   ///< when it was last fetched or revalidated
  UnixTime expires_at = 0;   ///< fresh until then
  UnixTime refetched_at = 0; ///< the last forced refetch (unknown kid), for its rate limit
  bool from_cache = false;   ///< served without a request
  bool revalidated = false;  ///< a 304 confirmed the cached copy
};

/// One file per URL under `dir`, written atomically (0600). An empty dir caches nothing. A missing,
/// unreadable or corrupt entry is a miss, never an error; so is every entry of a directory that is
/// not the user's own or that others may write (nobody else can plant a JWKS there).
/// `trust` names how the documents were authenticated (the CA bundle): it is part of each entry's
/// name, so a document fetched under one trust anchor is never served under another. A transport
/// that checks no certificate must not use a cache at all (an empty dir).
class DocumentCache {
 public:
  explicit DocumentCache(std::string dir, std::string trust = {}) : m_dir(std::move(dir)), m_trust(std::move(trust)) {}
  std::optional<CachedDocument> load(const std::string& url) const;
  Result<void> store(const CachedDocument& doc) const;
  /// Drops the entry of `url` (a no-store answer replaces what was cached).
  void erase(const std::string& url) const;
  const std::string& dir() const { return m_dir; }

 private:
  std::string path(const std::string& url) const;
  bool usable() const;
  std::string m_dir;
  std::string m_trust;
};

enum class FetchMode {
  normal,   ///< the cached copy while fresh, else a conditional GET
  offline,  ///< the cached copy whatever its age; none is ErrorCode::network
  refresh,  ///< always ask the server (conditional GET when there is a copy)
};

/// GETs `url` through the cache (Accept: `accept`). Not-200 answers are ErrorCode::network.
/// A failure to write the cache is not an error (the document is still returned).
Result<CachedDocument> fetch_document(HttpClient& http, const DocumentCache& cache, const std::string& url,
                                      UnixTime now, FetchMode mode, std::string_view accept = "application/json");

}  // namespace tokctl::remote
