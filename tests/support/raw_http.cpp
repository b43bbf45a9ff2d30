#include "support/raw_http.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <stdexcept>

namespace tokctl::test {

int try_connect(std::uint16_t port, int timeout_s) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return -1;
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  timeval tv{timeout_s, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

int bound_loopback_socket(bool listening, std::uint16_t& port) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) throw std::runtime_error("socket() failed");
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || (listening && ::listen(fd, 16) != 0) ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
    ::close(fd);
    throw std::runtime_error("cannot bind a loopback socket");
  }
  port = ntohs(a.sin_port);
  return fd;
}

int connect_to(std::uint16_t port, int timeout_s) {
  int fd = try_connect(port, timeout_s);
  if (fd < 0) throw std::runtime_error("cannot connect to 127.0.0.1:" + std::to_string(port));
  return fd;
}

void send_all(int fd, const std::string& data) {
  std::size_t sent = 0;
  while (sent < data.size()) {
    ssize_t n = ::send(fd, data.data() + sent, data.size() - sent, MSG_NOSIGNAL);
    if (n <= 0) return;
    sent += static_cast<std::size_t>(n);
  }
}

RawResponse read_response(int fd, std::string& pending, bool head) {
  RawResponse r;
  auto fill = [&] {
    char buf[4096];
    ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n <= 0) return false;
    pending.append(buf, static_cast<std::size_t>(n));
    return true;
  };
  std::size_t end;
  while ((end = pending.find("\r\n\r\n")) == std::string::npos) {
    if (!fill()) {
      r.closed = true;
      return r;
    }
  }
  const std::string head_text = pending.substr(0, end);
  pending.erase(0, end + 4);
  if (head_text.size() < 12) {
    r.closed = true;
    return r;
  }
  r.status = std::stoi(head_text.substr(9, 3));
  std::size_t pos = head_text.find("\r\n");
  while (pos != std::string::npos) {
    std::size_t next = head_text.find("\r\n", pos + 2);
    std::string line = head_text.substr(pos + 2, next == std::string::npos ? std::string::npos : next - pos - 2);
    auto colon = line.find(':');
    std::string name = line.substr(0, colon);
    for (auto& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    std::string value = colon == std::string::npos ? "" : line.substr(colon + 1);
    while (!value.empty() && value.front() == ' ') value.erase(0, 1);
    r.headers[name] = value;
    pos = next;
  }
  std::size_t length = !head && r.headers.count("content-length") ? std::stoul(r.headers["content-length"]) : 0;
  while (pending.size() < length)
    if (!fill()) break;
  r.body = pending.substr(0, length);
  pending.erase(0, std::min(length, pending.size()));
  return r;
}

RawResponse exchange(std::uint16_t port, const std::string& request) {
  int fd = connect_to(port);
  std::string pending;
  send_all(fd, request);
  auto r = read_response(fd, pending);
  ::close(fd);
  return r;
}

bool closed_by_server(int fd) {
  char c;
  const ssize_t n = ::recv(fd, &c, 1, 0);
  return n == 0 || (n < 0 && errno == ECONNRESET);
}

}  // namespace tokctl::test
