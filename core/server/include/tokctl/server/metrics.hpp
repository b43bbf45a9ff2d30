#pragma once
// Counters of the token service for GET /metrics (Prometheus text format 0.0.4): requests by
// endpoint and status, a latency histogram per endpoint, tokens issued by format, store errors.
// Lock-free (relaxed atomics): recording costs a few increments on the request path.

#include <array>
#include <atomic>
#include <cstdint>
#include <string>
#include <string_view>

namespace tokctl::server {

class Metrics {
 public:
  /// The endpoints counted apart; any other path is "other".
  static constexpr std::array<std::string_view, 9> k_endpoints = {
      "/oauth/token", "/oauth/introspect", "/oauth/revoke", "/oauth/jwks", "/.well-known",
      "/healthz",     "/metrics",          "/phantom",      "other"};
  static constexpr std::array<int, 14> k_statuses = {200, 204, 304, 400, 401, 404, 405,
                                                     406, 407, 413, 431, 500, 503, 0};  // 0: any other
  static constexpr std::array<double, 11> k_buckets = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005,
                                                       0.01,   0.025,   0.05,   0.1,   0.5};

  void request(std::string_view path, int status, std::int64_t latency_us);
  void issued(std::string_view format);
  void store_error();

  /// The exposition text.
  std::string render() const;

 private:
  static std::size_t endpoint_index(std::string_view path);
  static std::size_t status_index(int status);

  using Counter = std::atomic<std::uint64_t>;
  std::array<std::array<Counter, k_statuses.size()>, k_endpoints.size()> m_requests{};
  std::array<std::array<Counter, k_buckets.size() + 1>, k_endpoints.size()> m_latency{};  // last: +Inf
  std::array<Counter, k_endpoints.size()> m_latency_sum_us{};
  std::array<Counter, 5> m_issued{};  // jwt, opaque, wrapped, jwe, other
  Counter m_store_errors{0};
};

}  // namespace tokctl::server
