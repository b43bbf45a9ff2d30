#pragma once
// An asynchronous HTTP/1.1 server (Boost.Beast + Asio behind a pimpl): keep-alive, N threads,
// bounded headers and bodies, read and idle timeouts, a connection cap, graceful stop. Handlers
// are plain functions of HttpRequest; they run on the server's threads, concurrently.

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include <tokctl/server/http.hpp>
#include <tokctl/util/error.hpp>

namespace tokctl::server {

struct ServerOptions {
  std::string host = "127.0.0.1";
  std::uint16_t port = 8080;  ///< 0: any free port (see HttpServer::port())
  int threads = 0;            ///< 0: the number of cores
  /// Threads for requests that may block (see Blocking): as many such requests as this wait at
  /// once, so a store's group commit can take that many writes into one transaction.
  int blocking_threads = 32;
  std::size_t header_limit = 8 * 1024;
  std::size_t body_limit = 64 * 1024;
  std::chrono::milliseconds read_timeout{10'000};   ///< a request must arrive whole within this
  std::chrono::milliseconds idle_timeout{60'000};   ///< a keep-alive connection may idle this long
  /// Beyond this, new connections are closed at once. Lowered at start to what the open-files
  /// limit leaves (see effective_max_connections; HttpServer::max_connections() says the result).
  std::size_t max_connections = 4096;
  /// TLS (1.2 and 1.3): a PEM certificate chain and its private key; both or neither.
  std::string tls_cert;
  std::string tls_key;
  /// mTLS: PEM CA bundle; client certificates are requested and, when sent, must verify.
  std::string client_ca;
  /// Operational notices (the acceptor pausing when the process is out of file descriptors, and
  /// resuming): one line of text each, from a server thread. Never a request's content.
  std::function<void(const std::string&)> notice;
};

/// `configured`, or less when RLIMIT_NOFILE is lower: the soft limit minus the descriptors kept
/// for the rest of the process (64, or a quarter of a smaller limit). At least 1.
std::size_t effective_max_connections(std::size_t configured);

/// One line per request for the access log: never a token, a secret or an Authorization header.
struct AccessRecord {
  std::string method;
  std::string path;  ///< without the query
  int status = 0;
  std::int64_t latency_us = 0;
  std::string client_id;
  bool store_failure = false;  ///< a 503 because the token store failed (HttpResponse::store_failure)
};

using Handler = std::function<HttpResponse(const HttpRequest&)>;
/// A handler that answers through `respond` (exactly once, from any thread), possibly after it
/// returned: a request can wait for something (a store commit) without holding its thread.
using AsyncHandler = std::function<void(const HttpRequest&, Respond respond)>;
using AccessLog = std::function<void(const AccessRecord&)>;
/// Says which requests may block their thread on something that batches across callers (a
/// write waiting for the store's group commit). Those run on a pool of blocking threads and the
/// I/O threads go on serving; the others (reads, signing) run on the I/O thread, with no hand-off.
using Blocking = std::function<bool(const HttpRequest&)>;

class HttpServer {
 public:
  /// Binds and listens (port 0: a free port), then serves on `options.threads` threads. Fails
  /// with ErrorCode::usage for a bad address and ErrorCode::network when the port cannot be bound.
  static Result<std::unique_ptr<HttpServer>> start(const ServerOptions& options, Handler handler,
                                                   AccessLog log = {}, Blocking blocking = {});
  /// start() with a handler that answers through a callback.
  static Result<std::unique_ptr<HttpServer>> start_async(const ServerOptions& options, AsyncHandler handler,
                                                         AccessLog log = {}, Blocking blocking = {});
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  std::uint16_t port() const;
  std::string host() const;
  /// Connections open now (for tests and metrics).
  std::size_t connections() const;
  /// The connection cap in force: ServerOptions::max_connections, lowered to what the open-files
  /// limit allows.
  std::size_t max_connections() const;

  /// Stops accepting, lets requests in flight finish (closing idle keep-alive connections), and
  /// returns when every thread has finished or `grace` has passed (then the rest is cut).
  void stop(std::chrono::milliseconds grace = std::chrono::milliseconds(5000));

  struct Impl;

 private:
  explicit HttpServer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> m_impl;
};

}  // namespace tokctl::server
