// tokctl_bench_serve_floor — the fastest answers an Asio server gives on this machine: the floors
// under `tokctl serve`'s flows (bench/serve.sh --floor, issue 9 point 7).
//
//   tokctl_bench_serve_floor MODE BODY_FILE THREADS
//
// Answers every request with 200 and BODY_FILE's bytes (application/json), HTTP/1.1 keep-alive, on
// 127.0.0.1 at a free port, printed as one line ("127.0.0.1:PORT") once listening; runs until
// killed. MODE:
//   beast      Boost.Beast as tokctl serve uses it: a request parser and a string-body response
//              serialized by http::async_write, per request.
//   raw        Asio alone: reads up to the blank line and Content-Length bytes after it (what wrk
//              sends; no other parsing at all) and writes one preformatted answer. No server built
//              on Asio can do less per request and still answer.
//   raw-es256  raw plus one ES256 signature per request over a fixed 200-byte input (OpenSSL,
//              one parsed key and one context per thread, as tokctl's signer): the floor under
//              client_credentials with a JWT access token.
// Built the way tokctl serve is (one io_context per thread with concurrency hint 1, the acceptor
// dealing connections round robin, TCP_NODELAY), minus everything a token service adds: no router,
// no client authentication, no access log, no timeouts, no metrics, no store. What tokctl serve
// answers per second cannot exceed what this answers with the same wrk on the same cores.
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>

#include <openssl/ec.h>
#include <openssl/evp.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <iostream>
#include <iterator>
#include <memory>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace net = boost::asio;
namespace http = boost::beast::http;
using tcp = net::ip::tcp;

namespace {

enum class Mode { beast, raw, raw_es256 };

// One ES256 key and signing context per thread (EVP_PKEY_CTX reuse is not thread-safe).
class Signer {
 public:
  Signer() {
    EVP_PKEY_CTX* kctx = EVP_PKEY_CTX_new_from_name(nullptr, "EC", nullptr);
    if (!kctx || EVP_PKEY_keygen_init(kctx) <= 0 || EVP_PKEY_CTX_set_group_name(kctx, "P-256") <= 0 ||
        EVP_PKEY_keygen(kctx, &m_key) <= 0)
      std::abort();
    EVP_PKEY_CTX_free(kctx);
    m_md = EVP_MD_CTX_new();
  }
  ~Signer() {
    EVP_MD_CTX_free(m_md);
    EVP_PKEY_free(m_key);
  }
  std::size_t sign(std::string_view input) {
    unsigned char sig[80];
    std::size_t len = sizeof sig;
    if (EVP_DigestSignInit_ex(m_md, nullptr, "SHA256", nullptr, nullptr, m_key, nullptr) <= 0 ||
        EVP_DigestSign(m_md, sig, &len, reinterpret_cast<const unsigned char*>(input.data()), input.size()) <= 0)
      std::abort();
    return len;
  }

 private:
  EVP_PKEY* m_key = nullptr;
  EVP_MD_CTX* m_md = nullptr;
};

Signer& thread_signer() {
  thread_local Signer s;
  return s;
}

class BeastConnection : public std::enable_shared_from_this<BeastConnection> {
 public:
  BeastConnection(tcp::socket socket, const std::string& body) : m_socket(std::move(socket)), m_body(body) {}

  void read() {
    m_request = {};
    http::async_read(m_socket, m_buffer, m_request, [self = shared_from_this()](boost::system::error_code ec, std::size_t) {
      if (!ec) self->answer();
    });
  }

 private:
  void answer() {
    m_response = {http::status::ok, m_request.version()};
    m_response.set(http::field::server, "floor");
    m_response.set(http::field::content_type, "application/json");
    m_response.keep_alive(m_request.keep_alive());
    m_response.body() = m_body;
    m_response.prepare_payload();
    http::async_write(m_socket, m_response, [self = shared_from_this()](boost::system::error_code ec, std::size_t) {
      if (!ec && self->m_response.keep_alive()) self->read();
    });
  }

  tcp::socket m_socket;
  const std::string& m_body;
  boost::beast::flat_buffer m_buffer;
  http::request<http::string_body> m_request;
  http::response<http::string_body> m_response;
};

class RawConnection : public std::enable_shared_from_this<RawConnection> {
 public:
  RawConnection(tcp::socket socket, const std::string& answer, bool sign)
      : m_socket(std::move(socket)), m_answer(answer), m_sign(sign) {}

  void read() {
    m_socket.async_read_some(net::buffer(m_in + m_have, sizeof m_in - m_have),
                             [self = shared_from_this()](boost::system::error_code ec, std::size_t n) {
                               if (ec) return;
                               self->m_have += n;
                               self->consume();
                             });
  }

 private:
  // Answers the first whole request in m_in (headers, then Content-Length bytes), or reads on.
  void consume() {
    const std::string_view in(m_in, m_have);
    const std::size_t end = in.find("\r\n\r\n");
    if (end == std::string_view::npos) {
      if (m_have == sizeof m_in) return;  // a header over 8 KiB: not wrk's; drop the connection
      return read();
    }
    std::size_t length = 0;
    if (const std::size_t at = in.substr(0, end).find("Content-Length: "); at != std::string_view::npos)
      length = std::strtoul(m_in + at + 16, nullptr, 10);
    const std::size_t total = end + 4 + length;
    if (total > sizeof m_in) return;
    if (m_have < total) return read();
    if (m_sign) thread_signer().sign(std::string_view(m_in, std::min<std::size_t>(m_have, 200)));
    std::memmove(m_in, m_in + total, m_have - total);
    m_have -= total;
    net::async_write(m_socket, net::buffer(m_answer), [self = shared_from_this()](boost::system::error_code ec, std::size_t) {
      if (!ec) self->consume();
    });
  }

  tcp::socket m_socket;
  const std::string& m_answer;
  const bool m_sign;
  char m_in[8192];
  std::size_t m_have = 0;
};

}  // namespace

int main(int argc, char** argv) {
  if (argc != 4) {
    std::cerr << "usage: tokctl_bench_serve_floor beast|raw|raw-es256 BODY_FILE THREADS\n";
    return 2;
  }
  const std::string_view mode_name = argv[1];
  Mode mode;
  if (mode_name == "beast") {
    mode = Mode::beast;
  } else if (mode_name == "raw") {
    mode = Mode::raw;
  } else if (mode_name == "raw-es256") {
    mode = Mode::raw_es256;
  } else {
    std::cerr << "tokctl_bench_serve_floor: MODE is beast, raw or raw-es256\n";
    return 2;
  }
  std::ifstream in(argv[2], std::ios::binary);
  if (!in) {
    std::cerr << "tokctl_bench_serve_floor: cannot read " << argv[2] << "\n";
    return 1;
  }
  const std::string body{std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
  const std::string answer = "HTTP/1.1 200 OK\r\nServer: floor\r\nContent-Type: application/json\r\nContent-Length: " +
                             std::to_string(body.size()) + "\r\n\r\n" + body;
  const int threads = std::max(1, std::atoi(argv[3]));

  std::vector<std::unique_ptr<net::io_context>> contexts;
  std::vector<net::executor_work_guard<net::io_context::executor_type>> guards;
  for (int i = 0; i < threads; ++i) {
    contexts.push_back(std::make_unique<net::io_context>(1));
    guards.push_back(net::make_work_guard(*contexts.back()));
  }
  tcp::acceptor acceptor(*contexts.front(), {net::ip::make_address("127.0.0.1"), 0});
  std::size_t next = 0;
  std::function<void()> accept = [&] {
    net::io_context& home = *contexts[next];
    next = (next + 1) % contexts.size();
    acceptor.async_accept(home, [&](boost::system::error_code ec, tcp::socket socket) {
      if (!ec) {
        socket.set_option(tcp::no_delay(true));
        if (mode == Mode::beast) {
          std::make_shared<BeastConnection>(std::move(socket), body)->read();
        } else {
          std::make_shared<RawConnection>(std::move(socket), answer, mode == Mode::raw_es256)->read();
        }
      }
      accept();
    });
  };
  accept();
  std::cout << "127.0.0.1:" << acceptor.local_endpoint().port() << std::endl;
  std::vector<std::thread> pool;
  for (int i = 1; i < threads; ++i) pool.emplace_back([&, i] { contexts[static_cast<std::size_t>(i)]->run(); });
  contexts.front()->run();
  for (auto& t : pool) t.join();
}
