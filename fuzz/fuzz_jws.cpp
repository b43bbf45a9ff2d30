// Fuzz target: compact JWS parsing and JWT verification (tokctl/jose/jws.hpp, jwt.hpp) with a
// fixed key set of every key type (RSA, EC P-521, HMAC, Ed25519; fixed_keys.hpp), so the RFC 7520
// seed tokens verify and mutations reach claim checking.

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <optional>
#include <string_view>

#include <nlohmann/json.hpp>

#include <tokctl/jose/jws.hpp>
#include <tokctl/jose/jwt.hpp>

#include "fixed_keys.hpp"

namespace {

using namespace tokctl::jose;

constexpr tokctl::UnixTime k_now = 1'700'000'000;

TokenVerifier make_verifier(KeySource source, ClaimRules rules) {
  JwkSet keys;
  for (std::string_view text : tokctl::fuzz::k_sig_keys) {
    auto key = Jwk::from_json(nlohmann::json::parse(text));
    if (!key) std::abort();
    keys.keys.push_back(*key);
    if (source == KeySource::single) break;
  }
  VerifyOptions options;
  options.allowed_algs.assign(std::begin(k_all_algs), std::end(k_all_algs));
  options.claims = std::move(rules);
  static const tokctl::FixedClock clock(k_now);
  auto verifier = TokenVerifier::create(std::move(keys), source, std::move(options), clock);
  if (!verifier) std::abort();
  return std::move(*verifier);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static TokenVerifier by_kid = make_verifier(KeySource::set, {});
  static TokenVerifier strict = make_verifier(
      KeySource::single,
      ClaimRules{.iss = "https://issuer.example", .aud = "api", .sub = "alice", .typ = "at+jwt",
                 .required = {"jti", "scope"}, .leeway = 30, .max_age = 3600});

  const std::string_view token(reinterpret_cast<const char*>(data), size);
  if (auto jws = parse_compact(token)) {
    (void)jws->signing_input();
    (void)check_crit(jws->header);
    const nlohmann::json payload =
        nlohmann::json::accept(jws->payload) ? nlohmann::json::parse(jws->payload) : nlohmann::json();
    (void)decode_warnings(jws->header, payload, k_now);
  }
  for (TokenVerifier* verifier : {&by_kid, &strict}) {
    const VerifyReport report = verifier->verify(token);
    // The typed verdict: a valid token always has a verified signature and no problems.
    if (report.valid && (!report.signature_verified || !report.problems.empty())) std::abort();
    (void)report.exit_code();
    if (report.parsed && report.payload.is_object()) {
      std::vector<Problem> problems;
      check_claims(report.header, report.payload, ClaimRules{.aud = "api", .required = {"exp"}}, k_now,
                   problems);
    }
  }
  return 0;
}
