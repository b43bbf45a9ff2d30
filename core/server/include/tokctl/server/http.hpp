#pragma once
// The HTTP exchange the token service sees: a parsed request and the response to send. No Boost
// here: the transport (http_server.cpp) is the only code that includes Beast, so handlers and
// their tests compile without it.

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace tokctl::server {

struct HttpRequest {
  std::string method;  ///< "GET", "POST", ... as sent
  std::string target;  ///< path and query, as sent
  /// Header fields in arrival order, names lower-cased. A repeated field appears repeatedly.
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  bool tls = false;
  /// The verified client certificate (mTLS): subject DN (RFC 2253) and subjectAltNames
  /// ("DNS:x", "URI:x", "email:x", "IP:x"). Empty without one.
  std::string client_cert_subject;
  std::vector<std::string> client_cert_sans;
  /// Its RFC 8705 §3.1 thumbprint: base64url of the SHA-256 of its DER. Empty without one.
  std::string client_cert_x5t;

  /// The first value of a header (name lower-case), or nullptr.
  const std::string* header(std::string_view name) const;
  /// A list-valued header (Accept, If-None-Match) whole: its field lines joined by ", ", as RFC
  /// 9110 §5.3 reads them; nullopt when absent.
  std::optional<std::string> header_list(std::string_view name) const;
  /// How many times a header occurs.
  std::size_t header_count(std::string_view name) const;
  /// The path without the query.
  std::string_view path() const;
};

struct HttpResponse {
  int status = 200;
  std::vector<std::pair<std::string, std::string>> headers;  ///< besides Date/Server/Content-Length
  std::string body;
  /// For the access log only (never sent): the authenticated client, if any.
  std::string client_id;
  /// For the metrics only (never sent): a 503 because the token store failed (not one because
  /// too many authentications were queued, or the key set is missing).
  bool store_failure = false;

  HttpResponse& set(std::string name, std::string value);
};

/// Sends the answer to a request: called exactly once, from any thread.
using Respond = std::function<void(HttpResponse)>;

/// The status line's reason phrase ("OK", "Bad Request", ...).
const char* reason_phrase(int status);

/// Whether `method` is one of HTTP's methods (RFC 9110 §9, and PATCH): the server answers others
/// with 501 and logs them as "(other)", since a method is whatever the client sent, up to the
/// header limit (a token, for one).
bool known_method(std::string_view method);

}  // namespace tokctl::server
