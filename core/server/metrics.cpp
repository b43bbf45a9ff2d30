#include <tokctl/server/metrics.hpp>

#include <cstdio>

namespace tokctl::server {

namespace {

constexpr std::array<std::string_view, 5> k_formats = {"jwt", "opaque", "wrapped", "jwe", "other"};

void add(std::string& out, const char* text) { out += text; }

std::string number(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", v);
  return buf;
}

}  // namespace

std::size_t Metrics::endpoint_index(std::string_view path) {
  if (path.starts_with("/.well-known/")) return 4;
  for (std::size_t i = 0; i + 1 < k_endpoints.size(); ++i)
    if (path == k_endpoints[i]) return i;
  return k_endpoints.size() - 1;
}

std::size_t Metrics::status_index(int status) {
  for (std::size_t i = 0; i < k_statuses.size(); ++i)
    if (k_statuses[i] == status) return i;
  return k_statuses.size() - 1;  // 0: any other
}

void Metrics::request(std::string_view path, int status, std::int64_t latency_us) {
  const std::size_t e = endpoint_index(path);
  m_requests[e][status_index(status)].fetch_add(1, std::memory_order_relaxed);
  const double seconds = static_cast<double>(latency_us) / 1e6;
  std::size_t b = 0;
  while (b < k_buckets.size() && seconds > k_buckets[b]) ++b;
  m_latency[e][b].fetch_add(1, std::memory_order_relaxed);
  m_latency_sum_us[e].fetch_add(static_cast<std::uint64_t>(latency_us < 0 ? 0 : latency_us), std::memory_order_relaxed);
}

void Metrics::issued(std::string_view format) {
  std::size_t i = 0;
  while (i + 1 < k_formats.size() && k_formats[i] != format) ++i;
  m_issued[i].fetch_add(1, std::memory_order_relaxed);
}

void Metrics::store_error() { m_store_errors.fetch_add(1, std::memory_order_relaxed); }

std::string Metrics::render() const {
  std::string out;
  out.reserve(8192);
  add(out, "# HELP tokctl_http_requests_total HTTP requests by endpoint and status.\n"
           "# TYPE tokctl_http_requests_total counter\n");
  for (std::size_t e = 0; e < k_endpoints.size(); ++e) {
    for (std::size_t s = 0; s < k_statuses.size(); ++s) {
      const auto n = m_requests[e][s].load(std::memory_order_relaxed);
      if (n == 0) continue;
      out += "tokctl_http_requests_total{endpoint=\"" + std::string(k_endpoints[e]) + "\",status=\"" +
             (k_statuses[s] == 0 ? std::string("other") : std::to_string(k_statuses[s])) + "\"} " +
             std::to_string(n) + "\n";
    }
  }
  add(out, "# HELP tokctl_http_request_duration_seconds Time from the first byte of a request to its response.\n"
           "# TYPE tokctl_http_request_duration_seconds histogram\n");
  for (std::size_t e = 0; e < k_endpoints.size(); ++e) {
    std::uint64_t cumulative = 0;
    const std::string label = "endpoint=\"" + std::string(k_endpoints[e]) + "\"";
    for (std::size_t b = 0; b <= k_buckets.size(); ++b) {
      cumulative += m_latency[e][b].load(std::memory_order_relaxed);
      const std::string le = b < k_buckets.size() ? number(k_buckets[b]) : "+Inf";
      out += "tokctl_http_request_duration_seconds_bucket{" + label + ",le=\"" + le + "\"} " +
             std::to_string(cumulative) + "\n";
    }
    out += "tokctl_http_request_duration_seconds_sum{" + label + "} " +
           number(static_cast<double>(m_latency_sum_us[e].load(std::memory_order_relaxed)) / 1e6) + "\n";
    out += "tokctl_http_request_duration_seconds_count{" + label + "} " + std::to_string(cumulative) + "\n";
  }
  add(out, "# HELP tokctl_tokens_issued_total Tokens issued at the token endpoint, by format.\n"
           "# TYPE tokctl_tokens_issued_total counter\n");
  for (std::size_t i = 0; i < k_formats.size(); ++i) {
    out += "tokctl_tokens_issued_total{format=\"" + std::string(k_formats[i]) + "\"} " +
           std::to_string(m_issued[i].load(std::memory_order_relaxed)) + "\n";
  }
  add(out, "# HELP tokctl_store_errors_total Requests answered 503 because the token store failed.\n"
           "# TYPE tokctl_store_errors_total counter\n");
  out += "tokctl_store_errors_total " + std::to_string(m_store_errors.load(std::memory_order_relaxed)) + "\n";
  return out;
}

}  // namespace tokctl::server
