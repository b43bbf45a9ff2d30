// The transport of `tokctl serve`: Boost.Beast HTTP/1.1 over Asio. The only file that includes
// Boost (compile cost stays here). One io_context per thread: the acceptor deals connections
// round-robin, and a connection lives on its thread for good, so no strand, no shared scheduler
// lock and no cross-thread wake-up stands between a request and its handler.
//
// Connection life: wait for the first byte (idle timeout) -> read the header (read timeout,
// header limit) -> answer "100 Continue" if asked -> read the body (same deadline, body limit) ->
// handler -> write -> again if keep-alive. Parse errors answer 400/413/431 and close; a timeout
// closes without an answer (slow-header clients get nothing to wait for).

// Boost 1.74's asio::ssl still calls OpenSSL's RSA and DH functions, deprecated in 3.0: this file
// alone compiles with them visible (tokctl code here uses none of them).
#undef OPENSSL_NO_DEPRECATED
#undef OPENSSL_API_COMPAT
#define OPENSSL_API_COMPAT 10101

#include <tokctl/server/http_server.hpp>
#include <tokctl/util/io.hpp>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <mutex>
#include <optional>
#include <thread>
#include <unordered_map>
#include <vector>

#include <boost/asio/dispatch.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <arpa/inet.h>

namespace tokctl::server {

namespace beast = boost::beast;
namespace http = beast::http;
namespace net = boost::asio;
namespace ssl = net::ssl;
using tcp = net::ip::tcp;

namespace {

using Clock = std::chrono::steady_clock;

std::string lower(std::string_view s) {
  std::string out(s);
  for (auto& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

}  // namespace

class SessionBase {
 public:
  virtual ~SessionBase() = default;
  virtual void stop() = 0;
};

struct HttpServer::Impl {
  ServerOptions options;
  AsyncHandler handler;
  AccessLog log;
  Blocking blocking;
  std::optional<net::thread_pool> pool;  // set with `blocking`: where blocking requests run
  std::optional<ssl::context> tls;  // set: every connection is TLS
  std::atomic<std::size_t> connections{0};
  std::atomic<bool> stopping{false};
  std::mutex sessions_mutex;
  std::unordered_map<const SessionBase*, std::weak_ptr<SessionBase>> sessions;
  // Declared after what sessions touch in their destructors: destroying an io_context destroys
  // the handlers still queued, and with them the last sessions.
  std::vector<std::unique_ptr<net::io_context>> contexts;  // one per thread; [0] also accepts
  std::vector<net::executor_work_guard<net::io_context::executor_type>> guards;
  std::optional<tcp::acceptor> acceptor;
  std::size_t next_context = 0;  // the acceptor's thread only
  std::vector<std::thread> threads;

  explicit Impl(int n) {
    for (int i = 0; i < n; ++i) {
      contexts.push_back(std::make_unique<net::io_context>(1));
      guards.push_back(net::make_work_guard(*contexts.back()));
    }
    acceptor.emplace(*contexts.front());
  }
  ~Impl() {
    // First the pool: its queued jobs hold sessions, whose destructors use the members below and
    // close their sockets through the contexts (a stopped pool destroys its queue only when the
    // pool itself is destroyed).
    pool.reset();
    acceptor.reset();
    guards.clear();
    contexts.clear();  // in order, before the sessions' server is gone
  }
  void accept();
};

namespace {

// The verified client certificate of a TLS connection: subject (RFC 2253) and subjectAltNames.
void read_client_certificate(SSL* ssl, std::string& subject, std::vector<std::string>& sans) {
  X509* cert = SSL_get0_peer_certificate(ssl);
  if (!cert || SSL_get_verify_result(ssl) != X509_V_OK) return;
  if (BIO* bio = BIO_new(BIO_s_mem())) {
    if (X509_NAME_print_ex(bio, X509_get_subject_name(cert), 0, XN_FLAG_RFC2253) >= 0) {
      char* data = nullptr;
      long n = BIO_get_mem_data(bio, &data);
      if (n > 0) subject.assign(data, static_cast<std::size_t>(n));
    }
    BIO_free(bio);
  }
  auto* names = static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(cert, NID_subject_alt_name, nullptr, nullptr));
  if (!names) return;
  for (int i = 0; i < sk_GENERAL_NAME_num(names); ++i) {
    const GENERAL_NAME* n = sk_GENERAL_NAME_value(names, i);
    auto text = [](const ASN1_STRING* s) {
      return std::string(reinterpret_cast<const char*>(ASN1_STRING_get0_data(s)), static_cast<std::size_t>(ASN1_STRING_length(s)));
    };
    if (n->type == GEN_DNS) sans.push_back("DNS:" + text(n->d.dNSName));
    else if (n->type == GEN_URI) sans.push_back("URI:" + text(n->d.uniformResourceIdentifier));
    else if (n->type == GEN_EMAIL) sans.push_back("email:" + text(n->d.rfc822Name));
    else if (n->type == GEN_IPADD && (n->d.iPAddress->length == 4 || n->d.iPAddress->length == 16)) {
      char buf[64] = {};
      const int family = n->d.iPAddress->length == 4 ? AF_INET : AF_INET6;
      if (inet_ntop(family, n->d.iPAddress->data, buf, sizeof buf)) sans.push_back(std::string("IP:") + buf);
    }
  }
  GENERAL_NAMES_free(names);
}

}  // namespace

// One connection. Stream is beast::tcp_stream, or ssl_stream over it for TLS.
template <class Stream>
class Session : public SessionBase, public std::enable_shared_from_this<Session<Stream>> {
  static constexpr bool k_tls = !std::is_same_v<Stream, beast::tcp_stream>;

 public:
  template <class... Args>
  Session(HttpServer::Impl& server, tcp::socket socket, Args&... tls_context)
      : m_stream(std::move(socket), tls_context...), m_server(server) {
    ++m_server.connections;
  }
  ~Session() override {
    {
      std::lock_guard lock(m_server.sessions_mutex);
      m_server.sessions.erase(this);
    }
    --m_server.connections;
  }

  void start() {
    {
      std::lock_guard lock(m_server.sessions_mutex);
      m_server.sessions.emplace(this, std::weak_ptr<SessionBase>(this->shared_from_this()));
    }
    net::dispatch(m_stream.get_executor(), [self = this->shared_from_this()] {
      if constexpr (k_tls) {
        self->handshake();
      } else {
        self->wait_for_request();
      }
    });
  }

  // From HttpServer::stop(), on any thread: an idle connection closes now, a busy one after its
  // response.
  void stop() override {
    net::post(m_stream.get_executor(), [self = this->shared_from_this()] {
      if (self->m_waiting_idle) self->close();
    });
  }

 private:
  tcp::socket& socket() { return beast::get_lowest_layer(m_stream).socket(); }
  beast::tcp_stream& lowest() { return beast::get_lowest_layer(m_stream); }

  void handshake() {
    if constexpr (k_tls) {
      m_started = Clock::now();
      lowest().expires_after(m_server.options.read_timeout);
      m_stream.async_handshake(ssl::stream_base::server, [self = this->shared_from_this()](beast::error_code ec) {
        if (ec) return self->close();  // no TLS, a bad certificate, too slow
        self->lowest().expires_never();
        read_client_certificate(self->m_stream.native_handle(), self->m_cert_subject, self->m_cert_sans);
        self->wait_for_request();
      });
    }
  }

  // Between requests: wait for the first bytes of the next one under the idle timeout (bytes
  // already buffered are a pipelined request: read it at once). Reading through the stream, not
  // waiting on the socket, also sees what the TLS layer took in with the handshake.
  void wait_for_request() {
    if (m_server.stopping) return close();
    if (m_buffer.size() > 0) return read_header();
    m_waiting_idle = true;
    lowest().expires_after(m_server.options.idle_timeout);
    m_stream.async_read_some(m_buffer.prepare(4096), [self = this->shared_from_this()](beast::error_code ec, std::size_t n) {
      self->m_waiting_idle = false;
      if (ec || self->m_server.stopping) return self->close();  // gone, idle too long, or stopping
      self->m_buffer.commit(n);
      self->read_header();
    });
  }

  void read_header() {
    m_started = Clock::now();
    m_parser.emplace();
    m_parser->header_limit(static_cast<std::uint32_t>(m_server.options.header_limit));
    m_parser->body_limit(m_server.options.body_limit);
    lowest().expires_after(m_server.options.read_timeout);
    http::async_read_header(m_stream, m_buffer, *m_parser,
                            [self = this->shared_from_this()](beast::error_code ec, std::size_t) {
                              if (ec) return self->on_read_error(ec);
                              self->after_header();
                            });
  }

  void after_header() {
    const auto& req = m_parser->get();
    if (beast::iequals(req[http::field::expect], "100-continue") && !m_parser->is_done()) {
      auto cont = std::make_shared<http::response<http::empty_body>>(http::status::continue_, req.version());
      http::async_write(m_stream, *cont, [self = this->shared_from_this(), cont](beast::error_code ec, std::size_t) {
        if (ec) return self->close();
        self->read_body();
      });
      return;
    }
    read_body();
  }

  void read_body() {
    http::async_read(m_stream, m_buffer, *m_parser, [self = this->shared_from_this()](beast::error_code ec, std::size_t) {
      if (ec) return self->on_read_error(ec);
      self->lowest().expires_never();
      self->handle();
    });
  }

  void on_read_error(beast::error_code ec) {
    if (ec == http::error::end_of_stream || ec == beast::error::timeout || ec == net::error::operation_aborted ||
        ec == net::error::connection_reset || ec == net::error::eof || ec == ssl::error::stream_truncated) {
      return close();
    }
    int status = 400;
    std::string message = "malformed HTTP request";
    if (ec == http::error::header_limit) {
      status = 431;
      message = "request header larger than " + std::to_string(m_server.options.header_limit) + " bytes";
    } else if (ec == http::error::body_limit) {
      status = 413;
      message = "request body larger than " + std::to_string(m_server.options.body_limit) + " bytes";
    } else if (ec.category() != beast::error_code(http::error::end_of_stream).category()) {
      return close();  // a transport or TLS failure: nobody to answer
    }
    HttpResponse res;
    res.status = status;
    res.set("Content-Type", "application/json");
    res.set("Cache-Control", "no-store");
    res.body = R"({"error":"invalid_request","error_description":")" + message + "\"}";
    std::string method = m_parser ? std::string(m_parser->get().method_string()) : "";
    std::string target = m_parser ? std::string(m_parser->get().target()) : "";
    write(std::move(res), false, false, method, target);
  }

  void handle() {
    auto& req = m_parser->get();
    HttpRequest in;
    in.method = std::string(req.method_string());
    in.target = std::string(req.target());
    in.headers.reserve(16);
    for (const auto& f : req) in.headers.emplace_back(lower(f.name_string()), std::string(f.value()));
    in.body = std::move(req.body());
    in.tls = k_tls;
    in.client_cert_subject = m_cert_subject;
    in.client_cert_sans = m_cert_sans;
    const bool keep_alive = req.keep_alive();
    if (m_server.pool && m_server.blocking(in)) {
      // Runs on the blocking pool. Nothing else touches the session meanwhile: no read is
      // pending and its timer is off.
      net::post(*m_server.pool, [self = this->shared_from_this(), in = std::move(in), keep_alive]() {
        self->run_handler(in, keep_alive);
      });
      return;
    }
    run_handler(in, keep_alive);
  }

  // The answer may come from any thread, now or later: it is written on this connection's
  // thread (at once when that is the caller's), once; a second answer is ignored.
  void run_handler(const HttpRequest& in, bool keep_alive) {
    auto answered = std::make_shared<std::atomic<bool>>(false);
    Respond respond = [self = this->shared_from_this(), answered, keep_alive, method = in.method,
                       target = in.target](HttpResponse res) {
      if (answered->exchange(true)) return;
      auto ex = self->m_stream.get_executor();
      net::dispatch(ex, [self, keep_alive, method, target, res = std::move(res)]() mutable {
        self->write(std::move(res), keep_alive && !self->m_server.stopping, method == "HEAD", method, target);
      });
    };
    try {
      m_server.handler(in, respond);
    } catch (const std::exception&) {
      HttpResponse res;
      res.status = 500;
      res.set("Content-Type", "application/json");
      res.body = R"({"error":"server_error","error_description":"internal error"})";
      respond(std::move(res));
    }
  }

  void write(HttpResponse res, bool keep_alive, bool head, const std::string& method, const std::string& target) {
    auto out = std::make_shared<http::response<http::string_body>>();
    out->version(11);
    out->result(static_cast<unsigned>(res.status));
    out->set(http::field::server, "tokctl");
    for (auto& [k, v] : res.headers) out->insert(k, v);
    // A HEAD response: the header says how long the body would be, and no body follows.
    const std::size_t length = res.body.size();
    if (!head) out->body() = std::move(res.body);
    const bool has_body = res.status >= 200 && res.status != 204 && res.status != 304;
    if (has_body) out->content_length(length);
    out->keep_alive(keep_alive);
    if (m_server.log) {
      AccessRecord r;
      r.method = method;
      r.path = target.substr(0, target.find('?'));
      r.status = res.status;
      r.latency_us = std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - m_started).count();
      r.client_id = std::move(res.client_id);
      m_server.log(r);
    }
    lowest().expires_after(m_server.options.read_timeout);
    http::async_write(m_stream, *out, [self = this->shared_from_this(), out, keep_alive](beast::error_code ec, std::size_t) {
      self->lowest().expires_never();
      if (ec || !keep_alive) return self->close();
      self->wait_for_request();
    });
  }

  void close() {
    m_waiting_idle = false;
    beast::error_code ignored;
    socket().shutdown(tcp::socket::shutdown_send, ignored);
    socket().close(ignored);
  }

  Stream m_stream;
  beast::flat_buffer m_buffer;
  std::optional<http::request_parser<http::string_body>> m_parser;
  HttpServer::Impl& m_server;
  Clock::time_point m_started;
  bool m_waiting_idle = false;
  std::string m_cert_subject;
  std::vector<std::string> m_cert_sans;
};

void HttpServer::Impl::accept() {
  net::io_context& home = *contexts[next_context];
  next_context = (next_context + 1) % contexts.size();
  acceptor->async_accept(home, [this](beast::error_code ec, tcp::socket socket) {
    if (ec) {
      if (ec == net::error::operation_aborted || stopping) return;
      // EMFILE and friends: keep accepting (the next attempt may succeed once a connection ends).
      return accept();
    }
    if (stopping) return;
    if (connections.load() >= options.max_connections) {
      beast::error_code ignored;
      socket.close(ignored);
    } else {
      beast::error_code ignored;
      socket.set_option(tcp::no_delay(true), ignored);
      if (tls) {
        std::make_shared<Session<beast::ssl_stream<beast::tcp_stream>>>(*this, std::move(socket), *tls)->start();
      } else {
        std::make_shared<Session<beast::tcp_stream>>(*this, std::move(socket))->start();
      }
    }
    accept();
  });
}

namespace {

// TLS 1.2 and 1.3 only; with a client CA, client certificates are requested and, when sent,
// verified (a connection without one may still authenticate otherwise).
Result<ssl::context> tls_context(const ServerOptions& o) {
  ssl::context ctx(ssl::context::tls_server);
  beast::error_code ec;
  ctx.set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 | ssl::context::no_sslv3 |
                      ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1 | ssl::context::single_dh_use,
                  ec);
  SSL_CTX_set_min_proto_version(ctx.native_handle(), TLS1_2_VERSION);
  // The files go through read_input (regular files only, bounded: a directory or a FIFO is an
  // error, never a blocked start-up), then to OpenSSL from memory.
  auto use = [&](const char* param, const std::string& what, const std::string& path, auto&& apply) -> Result<void> {
    auto pem = read_input(path);
    if (!pem) return fail_param(ErrorCode::usage, param, "cannot use " + what + ": " + pem.error().message);
    apply(net::buffer(*pem));
    OPENSSL_cleanse(pem->data(), pem->size());
    if (ec) return fail_param(ErrorCode::usage, param, "cannot use " + what + " '" + path + "': " + ec.message());
    return {};
  };
  if (auto r = use("tls_cert", "the TLS certificate chain", o.tls_cert,
                   [&](net::const_buffer b) { ctx.use_certificate_chain(b, ec); });
      !r) {
    return std::unexpected(r.error());
  }
  if (auto r = use("tls_key", "the TLS private key", o.tls_key,
                   [&](net::const_buffer b) { ctx.use_private_key(b, ssl::context::pem, ec); });
      !r) {
    return std::unexpected(r.error());
  }
  if (SSL_CTX_check_private_key(ctx.native_handle()) != 1) {
    return fail_param(ErrorCode::usage, "tls_key", "the TLS private key does not match the certificate");
  }
  if (!o.client_ca.empty()) {
    if (auto r = use("client_ca", "the client CA bundle", o.client_ca,
                     [&](net::const_buffer b) { ctx.add_certificate_authority(b, ec); });
        !r) {
      return std::unexpected(r.error());
    }
    ctx.set_verify_mode(ssl::verify_peer, ec);
  }
  return ctx;
}

}  // namespace

HttpServer::HttpServer(std::unique_ptr<Impl> impl) : m_impl(std::move(impl)) {}

HttpServer::~HttpServer() { stop(std::chrono::milliseconds(0)); }

Result<std::unique_ptr<HttpServer>> HttpServer::start(const ServerOptions& options, Handler handler, AccessLog log,
                                                      Blocking blocking) {
  return start_async(options, [h = std::move(handler)](const HttpRequest& req, Respond respond) { respond(h(req)); },
                     std::move(log), std::move(blocking));
}

Result<std::unique_ptr<HttpServer>> HttpServer::start_async(const ServerOptions& options, AsyncHandler handler,
                                                            AccessLog log, Blocking blocking) {
  int threads = options.threads > 0 ? options.threads : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  auto impl = std::make_unique<Impl>(threads);
  impl->options = options;
  if (!options.tls_cert.empty() || !options.tls_key.empty()) {
    if (options.tls_cert.empty() || options.tls_key.empty()) {
      return fail_param(ErrorCode::usage, "tls_cert", "TLS needs both a certificate chain and its private key");
    }
    auto ctx = tls_context(options);
    if (!ctx) return std::unexpected(ctx.error());
    impl->tls.emplace(std::move(*ctx));
  } else if (!options.client_ca.empty()) {
    return fail_param(ErrorCode::usage, "client_ca", "client certificates need TLS (a certificate and key)");
  }
  impl->handler = std::move(handler);
  impl->log = std::move(log);
  if (blocking && options.blocking_threads > 0) {
    impl->blocking = std::move(blocking);
    impl->pool.emplace(static_cast<std::size_t>(options.blocking_threads));
  }
  beast::error_code ec;
  auto address = net::ip::make_address(options.host, ec);
  if (ec) return fail_param(ErrorCode::usage, "listen", "'" + options.host + "' is not an IP address");
  tcp::endpoint endpoint(address, options.port);
  auto& acc = *impl->acceptor;
  acc.open(endpoint.protocol(), ec);
  if (!ec) acc.set_option(net::socket_base::reuse_address(true), ec);
  if (!ec) acc.bind(endpoint, ec);
  if (!ec) acc.listen(net::socket_base::max_listen_connections, ec);
  if (ec) {
    return fail_param(ErrorCode::network, "listen",
                      "cannot listen on " + options.host + ":" + std::to_string(options.port) + ": " + ec.message());
  }
  impl->options.port = acc.local_endpoint().port();
  impl->accept();
  for (auto& io : impl->contexts) {
    impl->threads.emplace_back([io = io.get()] { io->run(); });
  }
  return std::unique_ptr<HttpServer>(new HttpServer(std::move(impl)));
}

std::uint16_t HttpServer::port() const { return m_impl->options.port; }
std::string HttpServer::host() const { return m_impl->options.host; }
std::size_t HttpServer::connections() const { return m_impl->connections.load(); }

void HttpServer::stop(std::chrono::milliseconds grace) {
  Impl& im = *m_impl;
  if (im.threads.empty()) return;
  im.stopping = true;
  net::post(*im.contexts.front(), [&im] {
    beast::error_code ignored;
    im.acceptor->close(ignored);
  });
  std::vector<std::shared_ptr<SessionBase>> live;
  {
    std::lock_guard lock(im.sessions_mutex);
    for (auto& [p, weak] : im.sessions)
      if (auto s = weak.lock()) live.push_back(std::move(s));
  }
  for (auto& s : live) s->stop();
  live.clear();
  // Requests in flight finish; then every thread runs out of work and returns.
  auto deadline = Clock::now() + grace;
  while (im.connections.load() > 0 && Clock::now() < deadline) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  // Past the grace period: blocking requests still queued never start (a write whose answer
  // could not be sent any more, such as a refresh rotation, must not happen); those running
  // finish. Then the I/O threads stop, and the pool is destroyed with what it still queues.
  if (im.pool) im.pool->stop();
  im.guards.clear();
  for (auto& io : im.contexts) io->stop();
  for (auto& t : im.threads) t.join();
  im.threads.clear();
  im.pool.reset();
}

}  // namespace tokctl::server
