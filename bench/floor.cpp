// bench/floor.cpp — the per-token floor of the JSON library tokctl must use (issue 11 point 2).
//
// Usage: tokctl_bench_floor TOKENS_FILE [SECONDS]
//
// For the payloads of the compact JWTs in TOKENS_FILE (one per line), measures in ns per token:
//   lex:    nlohmann::json::sax_parse with a handler that keeps nothing: the library's lexer alone,
//           the least any strict parse with nlohmann can cost (every byte must be lexed to find
//           duplicates, bad numbers and bad UTF-8);
//   strict: tokctl's jose::parse_json_strict (the same lexer, building the claims document with
//           duplicate and depth checks), what `verify --batch` pays today;
//   b64:    tokctl's b64url_decode of the payload segment.
// bench/floor.sh turns these into the best ratio to `openssl speed` any verifier built on
// nlohmann could reach.
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "tokctl/jose/json.hpp"
#include "tokctl/util/base64.hpp"

namespace {

// Accepts every event and keeps nothing.
struct Discard final : nlohmann::json_sax<nlohmann::json> {
  bool null() override { return true; }
  bool boolean(bool) override { return true; }
  bool number_integer(number_integer_t) override { return true; }
  bool number_unsigned(number_unsigned_t) override { return true; }
  bool number_float(number_float_t, const string_t&) override { return true; }
  bool string(string_t&) override { return true; }
  bool binary(binary_t&) override { return true; }
  bool start_object(std::size_t) override { return true; }
  bool key(string_t&) override { return true; }
  bool end_object() override { return true; }
  bool start_array(std::size_t) override { return true; }
  bool end_array() override { return true; }
  bool parse_error(std::size_t, const std::string&, const nlohmann::detail::exception&) override { return false; }
};

// Runs `step(i)` over the inputs, round after round, for about `seconds`; ns per call.
template <class Step>
double ns_per_call(std::size_t n, double seconds, Step step) {
  using clock = std::chrono::steady_clock;
  std::size_t calls = 0;
  const auto start = clock::now();
  const auto until = start + std::chrono::duration<double>(seconds);
  while (clock::now() < until) {
    for (std::size_t i = 0; i < n; ++i) step(i);
    calls += n;
  }
  return std::chrono::duration<double, std::nano>(clock::now() - start).count() / static_cast<double>(calls);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s TOKENS_FILE [SECONDS]\n", argv[0]);
    return 2;
  }
  const double seconds = argc > 2 ? std::atof(argv[2]) : 1.0;
  std::ifstream in(argv[1]);
  std::vector<std::string> segments, payloads;
  for (std::string line; std::getline(in, line) && segments.size() < 1000;) {
    const auto a = line.find('.'), b = line.find('.', a + 1);
    if (a == std::string::npos || b == std::string::npos) continue;
    auto decoded = tokctl::b64url_decode(std::string_view(line).substr(a + 1, b - a - 1));
    if (!decoded) continue;
    segments.push_back(line.substr(a + 1, b - a - 1));
    payloads.push_back(std::move(*decoded));
  }
  if (payloads.empty()) {
    std::fprintf(stderr, "floor: no compact JWT in %s\n", argv[1]);
    return 1;
  }
  const tokctl::jose::JsonLimits limits{};
  std::size_t sink = 0;
  const double lex = ns_per_call(payloads.size(), seconds, [&](std::size_t i) {
    Discard d;
    sink += nlohmann::json::sax_parse(payloads[i].data(), payloads[i].data() + payloads[i].size(), &d);
  });
  const double strict = ns_per_call(payloads.size(), seconds, [&](std::size_t i) {
    sink += tokctl::jose::parse_json_strict(payloads[i], "claims", limits).has_value();
  });
  const double b64 = ns_per_call(segments.size(), seconds, [&](std::size_t i) {
    sink += tokctl::b64url_decode(segments[i])->size();
  });
  std::printf("payload_bytes=%zu lex_ns=%.0f strict_ns=%.0f b64_ns=%.0f sink=%zu\n", payloads.front().size(), lex, strict,
              b64, sink % 10);
  return 0;
}
