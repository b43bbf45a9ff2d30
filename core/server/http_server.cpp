// The transport of `tokctl serve`: Boost.Beast HTTP/1.1 over Asio. The only file that includes
// Boost (compile cost stays here). One io_context per thread: the acceptor deals connections
// round-robin, and a connection lives on its thread for good, so no strand, no shared scheduler
// lock and no cross-thread wake-up stands between a request and its handler.
//
// Connection life: wait for the first byte (idle timeout) -> read the header (read timeout,
// header limit) -> check it (framing, Host) -> answer "100 Continue" if asked -> read the body
// (same deadline, body limit) -> handler -> write -> again if keep-alive. Parse errors answer
// 400/413/414/431/501 and close; a timeout closes without an answer (slow-header clients get
// nothing to wait for).
//
// Bounds: a connection's read buffer holds at most header limit + k_framing_allowance bytes, and a
// request as a whole (header, body, chunk framing, trailers) may not take more than header limit +
// body limit + k_framing_allowance bytes off the wire. Beast 1.74 keeps a chunked body's whole
// trailer section in the buffer before parsing it (no header_limit there), so the buffer bound is
// what stops an endless trailer. Trailer fields are dropped (RFC 9110 §6.5.1 lets a recipient
// discard them): Beast merges them into the header fields, and a trailer must not pose as a
// header (Authorization, Content-Type, Connection).

// Boost 1.74's asio::ssl still calls OpenSSL's RSA and DH functions, deprecated in 3.0: this file
// alone compiles with them visible (tokctl code here uses none of them).
#undef OPENSSL_NO_DEPRECATED
#undef OPENSSL_API_COMPAT
#define OPENSSL_API_COMPAT 10101

#include <tokctl/server/http_server.hpp>
#include <tokctl/util/base64.hpp>
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
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <arpa/inet.h>
#include <sys/resource.h>

namespace tokctl::server {

namespace beast = boost::beast;
namespace http = beast::http;
namespace net = boost::asio;
namespace ssl = net::ssl;
using tcp = net::ip::tcp;

namespace {

using Clock = std::chrono::steady_clock;

// Chunk-size lines, chunk extensions, the CRLFs around chunks and trailers: what a request may
// carry on top of its header and body limits.
constexpr std::size_t k_framing_allowance = 4096;
// How long the acceptor pauses when the process is out of file descriptors (or the kernel out of
// memory for sockets): a pending connection stays in the backlog, and retrying at once would spin.
constexpr std::chrono::milliseconds k_accept_backoff{100};
// File descriptors kept for everything but client connections (the store and its journal, key
// reloads, the listening socket, Asio's epoll and wake-up fds, stdio): at most this many, and at
// most a quarter of the limit.
constexpr std::size_t k_reserved_fds = 64;
// A refused request's connection is drained this long, or this much, before it closes.
constexpr std::chrono::milliseconds k_linger_time{500};
constexpr std::size_t k_linger_bytes = 1024 * 1024;

std::string lower(std::string_view s) {  // ASCII only, as HTTP's tokens are (no locale lookup per byte)
  std::string out(s);
  for (auto& c : out)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  return out;
}

// The origin-form ("/path?query") of a request target. RFC 9112 §3.2.2: a server must accept the
// absolute-form ("http://host/path?query") too; its scheme and authority are dropped (this server
// has one origin), an empty path is "/". Anything else is kept as it came.
std::string origin_form(std::string_view target) {
  if (target.empty() || target.front() == '/') return std::string(target);  // the usual form: as it is
  const std::string_view head = target.substr(0, 8);
  const std::string scheme = lower(head.substr(0, head.find(':')));
  if ((scheme != "http" && scheme != "https") || target.substr(scheme.size(), 3) != "://") return std::string(target);
  const std::string_view rest = target.substr(scheme.size() + 3);
  const std::size_t path = rest.find_first_of("/?");
  if (path == std::string_view::npos) return "/";
  if (rest[path] == '?') return "/" + std::string(rest.substr(path));
  return std::string(rest.substr(path));
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
  std::optional<net::steady_timer> accept_pause;  // the acceptor's back-off when out of fds
  bool accept_paused = false;                     // the acceptor's thread only: a burst is on
  std::size_t next_context = 0;  // the acceptor's thread only
  std::vector<std::thread> threads;

  explicit Impl(int n) {
    for (int i = 0; i < n; ++i) {
      contexts.push_back(std::make_unique<net::io_context>(1));
      guards.push_back(net::make_work_guard(*contexts.back()));
    }
    acceptor.emplace(*contexts.front());
    accept_pause.emplace(*contexts.front());
  }
  ~Impl() {
    // First the pool: its queued jobs hold sessions, whose destructors use the members below and
    // close their sockets through the contexts (a stopped pool destroys its queue only when the
    // pool itself is destroyed).
    pool.reset();
    accept_pause.reset();
    acceptor.reset();
    guards.clear();
    contexts.clear();  // in order, before the sessions' server is gone
  }
  void accept();
  void notice(const std::string& text) const {
    if (options.notice) options.notice(text);
  }
};

namespace {

// The verified client certificate of a TLS connection: subject (RFC 2253), subjectAltNames and
// the RFC 8705 x5t#S256 thumbprint.
void read_client_certificate(SSL* ssl, std::string& subject, std::vector<std::string>& sans, std::string& x5t) {
  X509* cert = SSL_get0_peer_certificate(ssl);
  if (!cert || SSL_get_verify_result(ssl) != X509_V_OK) return;
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int digest_len = 0;
  if (X509_digest(cert, EVP_sha256(), digest, &digest_len) == 1) {
    x5t = b64url_encode(std::string_view(reinterpret_cast<const char*>(digest), digest_len));
  }
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
      : m_stream(std::move(socket), tls_context...),
        m_buffer(server.options.header_limit + k_framing_allowance),
        m_server(server) {
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
        read_client_certificate(self->m_stream.native_handle(), self->m_cert_subject, self->m_cert_sans,
                                self->m_cert_x5t);
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
    m_request_bytes = 0;
    lowest().expires_after(m_server.options.read_timeout);
    http::async_read_header(m_stream, m_buffer, *m_parser,
                            [self = this->shared_from_this()](beast::error_code ec, std::size_t n) {
                              if (ec) return self->on_read_error(ec);
                              self->m_request_bytes = n;
                              self->after_header();
                            });
  }

  void after_header() {
    const auto& req = m_parser->get();
    m_version = req.version();
    m_keep_alive = req.keep_alive();
    // The header's fields, taken now: Beast adds trailer fields to the same container, each next
    // to a field of its name, where they could pass for header fields.
    m_headers.clear();
    m_headers.reserve(16);
    for (const auto& f : req) m_headers.emplace_back(lower(f.name_string()), std::string(f.value()));
    if (auto refusal = check_header(req)) return refuse(refusal->first, refusal->second);
    if (m_version >= 11 && beast::iequals(req[http::field::expect], "100-continue") && !m_parser->is_done()) {
      auto cont = std::make_shared<http::response<http::empty_body>>(http::status::continue_, 11);
      http::async_write(m_stream, *cont, [self = this->shared_from_this(), cont](beast::error_code ec, std::size_t) {
        if (ec) return self->close();
        self->read_body();
      });
      return;
    }
    read_body();
  }

  // What the parser lets through but this server refuses: the status and why, or nothing.
  std::optional<std::pair<int, std::string>> check_header(const http::request<http::string_body>& req) const {
    // RFC 9112 §6.1/§6.3: a request body is framed by Content-Length or by chunked as the final
    // (here: only) transfer coding. Beast reads a body under any other coding as absent, and what
    // follows as the next request (smuggling): refuse it.
    std::size_t te = 0;
    for (const auto& f : req) {
      if (f.name() != http::field::transfer_encoding) continue;
      ++te;
      const std::string_view coding = tokctl::trim(std::string_view(f.value().data(), f.value().size()));
      if (!beast::iequals(beast::string_view(coding.data(), coding.size()), "chunked")) {
        return std::pair(400, std::string("unsupported Transfer-Encoding (only chunked is accepted)"));
      }
    }
    if (te > 1) return std::pair(400, std::string("repeated Transfer-Encoding"));
    // RFC 9112 §6.1: HTTP/1.0 has no transfer codings; such a message's framing is faulty, and the
    // connection must close after it (a 1.0 proxy in front would have read it differently).
    if (te > 0 && m_version < 11) return std::pair(400, std::string("Transfer-Encoding in an HTTP/1.0 request"));
    // One Content-Length of one value: a repeat, even of the same value, or a list ("29, 29") is
    // refused like any repeated framing header (RFC 9112 §6.3 lets a server reject it; proxies in
    // front may have read it differently).
    std::size_t lengths = 0;
    for (const auto& f : req) {
      if (f.name() != http::field::content_length) continue;
      if (++lengths > 1 || f.value().find(',') != beast::string_view::npos) {
        return std::pair(400, std::string("repeated Content-Length"));
      }
    }
    if (te > 0 && req.count(http::field::content_length) > 0) {
      return std::pair(400, std::string("both Transfer-Encoding and Content-Length"));
    }
    // RFC 9112 §3.2: exactly one Host in HTTP/1.1, at most one before.
    const std::size_t hosts = req.count(http::field::host);
    if (hosts > 1 || (hosts == 0 && m_version >= 11)) {
      return std::pair(400, std::string(hosts > 1 ? "repeated Host header" : "missing Host header"));
    }
    if (req.count(http::field::content_type) > 1) return std::pair(400, std::string("repeated Content-Type header"));
    if (!known_method(req.method_string())) return std::pair(501, std::string("method not implemented"));
    return std::nullopt;
  }

  // The body piece by piece, counting what the request takes off the wire.
  void read_body() {
    if (m_parser->is_done()) {
      lowest().expires_never();
      return handle();
    }
    http::async_read_some(m_stream, m_buffer, *m_parser,
                          [self = this->shared_from_this()](beast::error_code ec, std::size_t n) {
                            if (ec) return self->on_read_error(ec);
                            self->m_request_bytes += n;
                            if (self->m_request_bytes > self->request_limit()) return self->refuse_framing();
                            self->read_body();
                          });
  }

  std::size_t request_limit() const {
    return m_server.options.header_limit + m_server.options.body_limit + k_framing_allowance;
  }

  void refuse_framing() {
    refuse(431, "request header, trailers and chunk framing larger than " +
                    std::to_string(m_server.options.header_limit + k_framing_allowance) + " bytes");
  }

  void on_read_error(beast::error_code ec) {
    if (ec == http::error::end_of_stream || ec == beast::error::timeout || ec == net::error::operation_aborted ||
        ec == net::error::connection_reset || ec == net::error::eof || ec == ssl::error::stream_truncated) {
      return close();
    }
    if (ec == http::error::buffer_overflow) return refuse_framing();  // a trailer or chunk line without end
    int status = 400;
    std::string message = "malformed HTTP request";
    if (ec == http::error::header_limit) {
      // Still in the request line: the target is what is too long (RFC 9110 §15.5.15).
      const bool in_request_line = !m_parser || m_parser->get().target().empty();
      status = in_request_line ? 414 : 431;
      message = in_request_line ? "request line longer than " + std::to_string(m_server.options.header_limit) + " bytes"
                                : "request header larger than " + std::to_string(m_server.options.header_limit) + " bytes";
    } else if (ec == http::error::body_limit) {
      status = 413;
      message = "request body larger than " + std::to_string(m_server.options.body_limit) + " bytes";
    } else if (ec.category() != beast::error_code(http::error::end_of_stream).category()) {
      return close();  // a transport or TLS failure: nobody to answer
    }
    refuse(status, message);
  }

  // An error answer, then close.
  void refuse(int status, const std::string& message) {
    HttpResponse res;
    res.status = status;
    res.set("Content-Type", "application/json");
    res.set("Cache-Control", "no-store");
    res.body = R"({"error":"invalid_request","error_description":")" + message + "\"}";
    std::string method = m_parser ? std::string(m_parser->get().method_string()) : "";
    std::string target = m_parser ? std::string(m_parser->get().target()) : "";
    m_linger = true;
    write(std::move(res), false, false, method, target);
  }

  void handle() {
    auto& req = m_parser->get();
    HttpRequest in;
    in.method = std::string(req.method_string());
    in.target = origin_form(req.target());
    in.headers = std::move(m_headers);  // without trailer fields: dropped
    in.body = std::move(req.body());
    in.tls = k_tls;
    in.client_cert_subject = m_cert_subject;
    in.client_cert_sans = m_cert_sans;
    in.client_cert_x5t = m_cert_x5t;
    const bool keep_alive = m_keep_alive;
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
      res.set("Cache-Control", "no-store");  // as every OAuth error (RFC 6749 §5.1)
      res.set("Pragma", "no-cache");
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
    // An HTTP/1.0 client closes unless told the connection stays open (RFC 9112 §9.3).
    if (keep_alive && m_version == 10) out->set(http::field::connection, "keep-alive");
    if (m_server.log) {
      AccessRecord r;
      r.method = known_method(method) ? method : "(other)";
      r.path = target.substr(0, target.find('?'));
      r.status = res.status;
      r.latency_us = std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - m_started).count();
      r.client_id = std::move(res.client_id);
      r.store_failure = res.store_failure;
      m_server.log(r);
    }
    lowest().expires_after(m_server.options.read_timeout);
    http::async_write(m_stream, *out, [self = this->shared_from_this(), out, keep_alive](beast::error_code ec, std::size_t) {
      self->lowest().expires_never();
      if (ec) return self->close();
      if (!keep_alive) return self->m_linger ? self->linger_close() : self->close();
      self->wait_for_request();
    });
  }

  // After refusing a request whose rest may still be arriving: stop sending, then read and drop
  // what comes for a short while before closing. Closing a socket with unread input sends a
  // reset, which can destroy the answer before the client has read it (RFC 9112 §9.6).
  void linger_close() {
    if constexpr (k_tls) {
      close();
    } else {
      beast::error_code ignored;
      socket().shutdown(tcp::socket::shutdown_send, ignored);
      m_linger_left = k_linger_bytes;
      lowest().expires_after(k_linger_time);
      drain();
    }
  }
  void drain() {
    m_buffer.clear();
    lowest().async_read_some(m_buffer.prepare(4096), [self = this->shared_from_this()](beast::error_code ec, std::size_t n) {
      if (ec || n >= self->m_linger_left) return self->close();
      self->m_linger_left -= n;
      self->drain();
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
  std::size_t m_request_bytes = 0;  // what the request in progress took off the wire so far
  std::vector<std::pair<std::string, std::string>> m_headers;  // its header's fields, as HttpRequest has them
  unsigned m_version = 11;
  bool m_keep_alive = false;
  bool m_linger = false;  // the connection ends with a refusal: drain before closing
  std::size_t m_linger_left = 0;
  bool m_waiting_idle = false;
  std::string m_cert_subject;
  std::vector<std::string> m_cert_sans;
  std::string m_cert_x5t;
};

void HttpServer::Impl::accept() {
  net::io_context& home = *contexts[next_context];
  next_context = (next_context + 1) % contexts.size();
  acceptor->async_accept(home, [this](beast::error_code ec, tcp::socket socket) {
    if (ec) {
      if (ec == net::error::operation_aborted || stopping) return;
      if (ec == net::error::no_descriptors || ec == beast::error_code(ENFILE, beast::system_category()) ||
          ec == net::error::no_buffer_space || ec == net::error::no_memory) {
        // Out of file descriptors (or socket memory): the connection waits in the backlog, and
        // accepting again at once would fail again at once. Pause, then retry; say so once a burst.
        if (!accept_paused) {
          accept_paused = true;
          notice("accept paused: " + ec.message() + " (" + std::to_string(connections.load()) +
                 " connections open); retrying every " + std::to_string(k_accept_backoff.count()) + " ms");
        }
        accept_pause->expires_after(k_accept_backoff);
        accept_pause->async_wait([this](beast::error_code wait_ec) {
          if (!wait_ec && !stopping) accept();
        });
        return;
      }
      return accept();  // a connection that went away before it was accepted, and the like
    }
    if (stopping) return;
    if (accept_paused) {
      accept_paused = false;
      notice("accept resumed (" + std::to_string(connections.load()) + " connections open)");
    }
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
    // OpenSSL's own words for these ("passed a null parameter", "no start line") say little.
    if (pem->find("-----BEGIN ") == std::string::npos) {
      return fail_param(ErrorCode::usage, param,
                        "cannot use " + what + " '" + path + "': " + (pem->empty() ? "the file is empty" : "it is not PEM") +
                            " (no -----BEGIN line)");
    }
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

std::size_t effective_max_connections(std::size_t configured) {
  rlimit limit{};
  if (::getrlimit(RLIMIT_NOFILE, &limit) != 0 || limit.rlim_cur == RLIM_INFINITY) return configured;
  const auto soft = static_cast<std::size_t>(limit.rlim_cur);
  const std::size_t reserve = std::min(k_reserved_fds, soft / 4);
  return std::min(configured, soft > reserve ? soft - reserve : std::size_t{1});
}

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
  impl->options.max_connections = effective_max_connections(options.max_connections);
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
std::size_t HttpServer::max_connections() const { return m_impl->options.max_connections; }

void HttpServer::stop(std::chrono::milliseconds grace) {
  Impl& im = *m_impl;
  if (im.threads.empty()) return;
  im.stopping = true;
  net::post(*im.contexts.front(), [&im] {
    beast::error_code ignored;
    im.acceptor->close(ignored);
    im.accept_pause->cancel();
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
