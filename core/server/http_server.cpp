// The transport of `tokctl serve`: Boost.Beast HTTP/1.1 over Asio. The only file that includes
// Boost (compile cost stays here). One strand per connection; handlers run on the pool threads.
//
// Connection life: wait for the first byte (idle timeout) -> read the header (read timeout,
// header limit) -> answer "100 Continue" if asked -> read the body (same deadline, body limit) ->
// handler -> write -> again if keep-alive. Parse errors answer 400/413/431 and close; a timeout
// closes without an answer (slow-header clients get nothing to wait for).

#include <tokctl/server/http_server.hpp>

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
#include <boost/asio/strand.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

namespace tokctl::server {

namespace beast = boost::beast;
namespace http = beast::http;
namespace net = boost::asio;
using tcp = net::ip::tcp;

namespace {

using Clock = std::chrono::steady_clock;

std::string lower(std::string_view s) {
  std::string out(s);
  for (auto& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

}  // namespace

class Session;

struct HttpServer::Impl {
  ServerOptions options;
  Handler handler;
  AccessLog log;
  std::atomic<std::size_t> connections{0};
  std::atomic<bool> stopping{false};
  std::mutex sessions_mutex;
  std::unordered_map<const Session*, std::weak_ptr<Session>> sessions;
  // Declared after what sessions touch in their destructors: destroying the io_context destroys
  // the handlers still queued, and with them the last sessions.
  net::io_context ioc;
  tcp::acceptor acceptor{ioc};
  std::vector<std::thread> threads;

  explicit Impl(int hint) : ioc(hint) {}
  void accept();
};

class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(tcp::socket socket, HttpServer::Impl& server)
      : m_stream(std::move(socket)), m_idle(m_stream.get_executor()), m_server(server) {
    ++m_server.connections;
  }
  ~Session() {
    {
      std::lock_guard lock(m_server.sessions_mutex);
      m_server.sessions.erase(this);
    }
    --m_server.connections;
  }

  void start() {
    {
      std::lock_guard lock(m_server.sessions_mutex);
      m_server.sessions.emplace(this, weak_from_this());
    }
    net::dispatch(m_stream.get_executor(), [self = shared_from_this()] { self->wait_for_request(); });
  }

  // From HttpServer::stop(), on any thread: an idle connection closes now, a busy one after its
  // response.
  void stop() {
    net::post(m_stream.get_executor(), [self = shared_from_this()] {
      if (self->m_waiting_idle) self->close();
    });
  }

 private:
  // Between requests: wait for a byte with the idle timeout (bytes already buffered are a
  // pipelined request: read it at once).
  void wait_for_request() {
    if (m_server.stopping) return close();
    if (m_buffer.size() > 0) return read_header();
    m_waiting_idle = true;
    m_idle.expires_after(m_server.options.idle_timeout);
    m_idle.async_wait([self = shared_from_this()](beast::error_code ec) {
      if (!ec && self->m_waiting_idle) self->close();  // idle too long
    });
    m_stream.socket().async_wait(tcp::socket::wait_read, [self = shared_from_this()](beast::error_code ec) {
      self->m_waiting_idle = false;
      self->m_idle.cancel();
      if (ec || self->m_server.stopping) return self->close();
      self->read_header();
    });
  }

  void read_header() {
    m_started = Clock::now();
    m_parser.emplace();
    m_parser->header_limit(static_cast<std::uint32_t>(m_server.options.header_limit));
    m_parser->body_limit(m_server.options.body_limit);
    m_stream.expires_after(m_server.options.read_timeout);
    http::async_read_header(m_stream, m_buffer, *m_parser,
                            [self = shared_from_this()](beast::error_code ec, std::size_t) {
                              if (ec) return self->on_read_error(ec);
                              self->after_header();
                            });
  }

  void after_header() {
    const auto& req = m_parser->get();
    if (beast::iequals(req[http::field::expect], "100-continue") && !m_parser->is_done()) {
      auto cont = std::make_shared<http::response<http::empty_body>>(http::status::continue_, req.version());
      http::async_write(m_stream, *cont, [self = shared_from_this(), cont](beast::error_code ec, std::size_t) {
        if (ec) return self->close();
        self->read_body();
      });
      return;
    }
    read_body();
  }

  void read_body() {
    http::async_read(m_stream, m_buffer, *m_parser, [self = shared_from_this()](beast::error_code ec, std::size_t) {
      if (ec) return self->on_read_error(ec);
      self->m_stream.expires_never();
      self->handle();
    });
  }

  void on_read_error(beast::error_code ec) {
    if (ec == http::error::end_of_stream || ec == beast::error::timeout || ec == net::error::operation_aborted ||
        ec == net::error::connection_reset || ec == net::error::eof) {
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
    HttpResponse res;
    try {
      res = m_server.handler(in);
    } catch (const std::exception&) {
      res = HttpResponse{};
      res.status = 500;
      res.set("Content-Type", "application/json");
      res.body = R"({"error":"server_error","error_description":"internal error"})";
    }
    const bool keep_alive = req.keep_alive() && !m_server.stopping;
    write(std::move(res), keep_alive, in.method == "HEAD", in.method, in.target);
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
    m_stream.expires_after(m_server.options.read_timeout);
    http::async_write(m_stream, *out, [self = shared_from_this(), out, keep_alive](beast::error_code ec, std::size_t) {
      self->m_stream.expires_never();
      if (ec || !keep_alive) return self->close();
      self->wait_for_request();
    });
  }

  void close() {
    m_waiting_idle = false;
    m_idle.cancel();
    beast::error_code ignored;
    m_stream.socket().shutdown(tcp::socket::shutdown_send, ignored);
    m_stream.socket().close(ignored);
  }

  beast::tcp_stream m_stream;
  net::steady_timer m_idle;
  beast::flat_buffer m_buffer;
  std::optional<http::request_parser<http::string_body>> m_parser;
  HttpServer::Impl& m_server;
  Clock::time_point m_started;
  bool m_waiting_idle = false;
};

void HttpServer::Impl::accept() {
  acceptor.async_accept(net::make_strand(ioc), [this](beast::error_code ec, tcp::socket socket) {
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
      std::make_shared<Session>(std::move(socket), *this)->start();
    }
    accept();
  });
}

HttpServer::HttpServer(std::unique_ptr<Impl> impl) : m_impl(std::move(impl)) {}

HttpServer::~HttpServer() { stop(std::chrono::milliseconds(0)); }

Result<std::unique_ptr<HttpServer>> HttpServer::start(const ServerOptions& options, Handler handler, AccessLog log) {
  int threads = options.threads > 0 ? options.threads : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  auto impl = std::make_unique<Impl>(threads);
  impl->options = options;
  impl->handler = std::move(handler);
  impl->log = std::move(log);
  beast::error_code ec;
  auto address = net::ip::make_address(options.host, ec);
  if (ec) return fail_param(ErrorCode::usage, "listen", "'" + options.host + "' is not an IP address");
  tcp::endpoint endpoint(address, options.port);
  auto& acc = impl->acceptor;
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
  for (int i = 0; i < threads; ++i) {
    impl->threads.emplace_back([io = &impl->ioc] { io->run(); });
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
  net::post(im.ioc, [&im] {
    beast::error_code ignored;
    im.acceptor.close(ignored);
  });
  std::vector<std::shared_ptr<Session>> live;
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
  im.ioc.stop();
  for (auto& t : im.threads) t.join();
  im.threads.clear();
}

}  // namespace tokctl::server
