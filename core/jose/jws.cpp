#include <tokctl/jose/jws.hpp>

#include <algorithm>

#include <tokctl/util/base64.hpp>

namespace tokctl::jose {
namespace {

// The last header this thread parsed: its segment, the limits it was parsed under, and what it
// gave. Only successful parses are kept, so a hit gives exactly what parsing would have. The
// document is what parse_compact_into's `header` points to until the next parse on this thread.
struct HeaderCache {
  std::string b64;
  JsonLimits limits;
  nlohmann::json header;
  std::string alg;
  std::string kid;
  bool set = false;  // b64 and limits name `header`: the next token may reuse it

  bool holds(std::string_view segment, const JsonLimits& l) const {
    return set && segment == b64 && l.max_bytes == limits.max_bytes && l.max_depth == limits.max_depth;
  }
};

HeaderCache& header_cache() {
  thread_local HeaderCache cache;
  return cache;
}

// A batch's headers are small. A larger one is not kept for matching (no copy of its segment), and
// its document only until the next parse on the thread.
constexpr std::size_t k_max_cached_header = 4096;

}  // namespace

std::size_t compact_segments(std::string_view token) {
  std::size_t segments = 1;
  for (auto at = token.find('.'); at != std::string_view::npos; at = token.find('.', at + 1)) ++segments;
  return segments;
}

Result<void> parse_compact_into(std::string_view token, const ParseLimits& limits, CompactParts& out) {
  if (token.size() > limits.max_token_bytes) {
    return fail(ErrorCode::malformed,
                "token is " + std::to_string(token.size()) + " bytes, over the " +
                    std::to_string(limits.max_token_bytes) + "-byte limit");
  }
  if (token.empty()) return fail(ErrorCode::malformed, "the token is empty");
  const std::size_t dots = compact_segments(token) - 1;
  if (dots == 4) {
    return fail(ErrorCode::malformed, "this is a JWE (5 segments), not a JWS",
                "decrypt it first (tokctl decrypt), or pass a decryption key to verify");
  }
  if (dots != 2) {
    return fail(ErrorCode::malformed,
                "a compact JWS has 3 dot-separated segments, this has " + std::to_string(dots + 1),
                dots == 0 ? "is this an opaque token? only JWTs can be decoded locally" : "");
  }
  const auto d1 = token.find('.');
  const auto d2 = token.find('.', d1 + 1);
  out.header_b64 = token.substr(0, d1);
  out.payload_b64 = token.substr(d1 + 1, d2 - d1 - 1);
  out.signature_b64 = token.substr(d2 + 1);
  auto fail_in = [](const char* part, Error e) {
    e.message = std::string(part) + ": " + e.message;
    return std::unexpected(std::move(e));
  };
  if (out.header_b64.empty()) return fail(ErrorCode::malformed, "header segment is empty");
  // A batch of tokens from one signer repeats one header: its strict parse is kept per thread
  // and reused while the next token's header segment is the same text under the same limits.
  HeaderCache& cache = header_cache();
  const bool cached = cache.holds(out.header_b64, limits.json);
  std::string header_json;
  if (!cached) {
    auto header = b64url_decode(out.header_b64);
    if (!header) return fail_in("header", header.error());
    header_json = std::move(*header);
  }
  if (auto ok = b64url_decode_into(out.payload_b64, out.payload); !ok) return fail_in("payload", ok.error());
  if (auto ok = b64url_decode_into(out.signature_b64, out.signature); !ok) return fail_in("signature", ok.error());
  if (!cached) {
    auto hj = parse_json_object(header_json, "header", limits.json);
    if (!hj) return std::unexpected(hj.error());
    auto alg = hj->find("alg");
    if (alg == hj->end() || !alg->is_string()) {
      return fail(ErrorCode::malformed, "header has no \"alg\" string");
    }
    auto kid = hj->find("kid");
    if (kid != hj->end() && !kid->is_string()) return fail(ErrorCode::malformed, "header \"kid\" must be a string");
    cache.alg = alg->get_ref<const std::string&>();
    cache.kid = kid != hj->end() ? kid->get_ref<const std::string&>() : std::string();
    cache.header = std::move(*hj);
    cache.limits = limits.json;
    cache.set = out.header_b64.size() <= k_max_cached_header;
    if (cache.set) cache.b64.assign(out.header_b64);
    else std::string().swap(cache.b64);
  }
  out.header = &cache.header;
  out.alg = cache.alg;
  out.kid = cache.kid;
  return {};
}

Result<CompactJws> parse_compact(std::string_view token, const ParseLimits& limits) {
  CompactParts parts;
  if (auto ok = parse_compact_into(token, limits, parts); !ok) return std::unexpected(ok.error());
  CompactJws jws;
  jws.header_b64 = parts.header_b64;
  jws.payload_b64 = parts.payload_b64;
  jws.signature_b64 = parts.signature_b64;
  jws.header = *parts.header;
  jws.payload = std::move(parts.payload);
  jws.signature = std::move(parts.signature);
  jws.alg = parts.alg;
  jws.kid = parts.kid;
  return jws;
}

Result<void> check_crit(const nlohmann::json& header) {
  auto it = header.find("crit");
  if (it == header.end()) return {};
  if (!it->is_array() || it->empty()) {
    return fail(ErrorCode::invalid_token, "header \"crit\" must be a non-empty array of names");
  }
  static constexpr std::string_view registered[] = {"alg", "jku", "jwk", "kid", "x5u", "x5c", "x5t",
                                                     "x5t#S256", "typ", "cty", "crit", "enc", "zip"};
  for (const auto& name : *it) {
    if (!name.is_string()) return fail(ErrorCode::invalid_token, "header \"crit\" entries must be strings");
    const auto& n = name.get_ref<const std::string&>();
    if (std::find(std::begin(registered), std::end(registered), n) != std::end(registered)) {
      return fail(ErrorCode::invalid_token, "header \"crit\" lists registered parameter \"" + n + "\"");
    }
    if (!header.contains(n)) {
      return fail(ErrorCode::invalid_token, "header \"crit\" lists \"" + n + "\" but the header lacks it");
    }
    // No extension is understood in compact verification (b64=false needs a detached payload).
    return fail(ErrorCode::invalid_token, "header \"crit\" requires unsupported extension \"" + n + "\"",
                "tokctl rejects tokens whose critical extensions it does not implement (RFC 7515 §4.1.11)");
  }
  return {};
}

Result<std::string> sign_compact(nlohmann::json header, std::string_view payload, Alg alg,
                                 const Jwk& key) {
  header["alg"] = to_string(alg);
  std::string input = b64url_encode(header.dump()) + "." + b64url_encode(payload);
  auto sig = sign(alg, key, input);
  if (!sig) return std::unexpected(sig.error());
  input += ".";
  input += b64url_encode(*sig);
  return input;
}

Result<std::string> sign_compact(const nlohmann::json& header, std::string_view payload, const Signer& signer) {
  if (header.contains("alg")) {
    nlohmann::json without = header;
    without.erase("alg");
    return sign_compact(without, payload, signer);
  }
  std::string input;
  const std::string h = header.dump();
  const std::string alg_prefix = std::string("{\"alg\":\"") + to_string(signer.alg()) + "\"";
  // {"alg":..., <the rest of header>} without re-building the JSON object.
  std::string full = h == "{}" ? alg_prefix + "}" : alg_prefix + "," + h.substr(1);
  input.reserve(full.size() * 4 / 3 + payload.size() * 4 / 3 + 100);
  input = b64url_encode(full);
  input += '.';
  input += b64url_encode(payload);
  auto sig = signer.sign(input);
  if (!sig) return std::unexpected(sig.error());
  input += '.';
  input += b64url_encode(*sig);
  return input;
}

Result<std::string> sign_compact_raw(std::string_view header_json, std::string_view payload, Alg alg,
                                     const Jwk& key) {
  auto header = parse_json_object(header_json, "header");
  if (!header) return std::unexpected(header.error());
  if (header->value("alg", std::string()) != to_string(alg)) {
    return fail(ErrorCode::usage, std::string("header \"alg\" must be ") + to_string(alg));
  }
  std::string input = b64url_encode(header_json) + "." + b64url_encode(payload);
  auto sig = sign(alg, key, input);
  if (!sig) return std::unexpected(sig.error());
  input += ".";
  input += b64url_encode(*sig);
  return input;
}

}  // namespace tokctl::jose
