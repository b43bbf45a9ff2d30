#pragma once
// A raw HTTP/1.1 client over loopback for the serve tests: requests go out byte for byte as the
// test wrote them (no library to fix up a malformed or hostile request), and responses are
// parsed just enough to check status, header fields and body.

#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

namespace tokctl::test {

struct RawResponse {
  int status = 0;
  std::map<std::string, std::string> headers;  ///< lower-case names; a repeated field: the last
  std::string body;
  bool closed = false;  ///< the connection ended (EOF, reset or timeout) before a whole header
};

/// A socket connected to 127.0.0.1:port with a receive timeout, or -1 (no Catch assertion, so
/// worker threads may use it).
int try_connect(std::uint16_t port, int timeout_s = 5);
/// try_connect that throws std::runtime_error when the connection fails.
int connect_to(std::uint16_t port, int timeout_s = 5);
/// A TCP socket bound to a free 127.0.0.1 port, listening (connections complete, nothing is
/// ever answered) or not (every connect is refused); its port in `port`. Throws
/// std::runtime_error when the socket cannot be made.
int bound_loopback_socket(bool listening, std::uint16_t& port);
/// Sends all of `data`; stops quietly when the server closes first (its answer says why).
void send_all(int fd, const std::string& data);
/// One response from `fd`, reading the body its Content-Length announces (none for a HEAD
/// request); bytes after it stay in `pending` for the next response on the connection.
RawResponse read_response(int fd, std::string& pending, bool head = false);
/// `request` on a fresh connection, and the response to it.
RawResponse exchange(std::uint16_t port, const std::string& request);
/// True when the server closed the connection (EOF or reset) within the receive timeout.
bool closed_by_server(int fd);

}  // namespace tokctl::test
