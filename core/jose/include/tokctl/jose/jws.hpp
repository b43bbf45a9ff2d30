#pragma once
// JWS compact serialization (RFC 7515): parsing with limits, signing, verification.

#include <cstddef>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include <tokctl/jose/algorithm.hpp>
#include <tokctl/jose/json.hpp>

namespace tokctl::jose {

/// Default ceiling for a compact token's length.
inline constexpr std::size_t k_max_token_bytes = 64 * 1024;

struct ParseLimits {
  std::size_t max_token_bytes = k_max_token_bytes;
  JsonLimits json{};
};

/// A parsed, *unverified* compact JWS.
struct CompactJws {
  std::string header_b64;
  std::string payload_b64;
  std::string signature_b64;
  nlohmann::json header;   ///< strict-parsed protected header (an object)
  std::string payload;     ///< decoded payload bytes
  std::string signature;   ///< decoded signature bytes
  std::string alg;         ///< header "alg" as written (may be "none" or unknown)
  std::string kid;         ///< header "kid" or empty

  /// "header.payload", the JWS signing input.
  std::string signing_input() const { return header_b64 + "." + payload_b64; }
};

/// How many dot-separated segments `token` has (3 for a compact JWS, 5 for a compact JWE). Uses
/// memchr, not a byte loop: batch paths call it for every token.
std::size_t compact_segments(std::string_view token);

/// Splits and decodes a compact JWS: exactly three segments, strict base64url, strict JSON object
/// header with a string "alg", size limits. Fails with ErrorCode::malformed saying which part.
/// A five-segment input fails with a hint that it is a JWE.
Result<CompactJws> parse_compact(std::string_view token, const ParseLimits& limits = {});

/// parse_compact without copies, for paths that check many tokens (verify --batch): the segments
/// are views into the token, and `header`, `alg` and `kid` point into a document this thread keeps
/// until its next parse_compact or parse_compact_into call. `payload` and `signature` are decoded
/// into the struct's own strings, which keep their capacity from one call to the next. The same
/// checks and messages as parse_compact; on failure the fields are unspecified.
struct CompactParts {
  std::string_view header_b64;
  std::string_view payload_b64;
  std::string_view signature_b64;
  const nlohmann::json* header = nullptr;  ///< strict-parsed protected header (an object)
  std::string_view alg;                    ///< header "alg" as written
  std::string_view kid;                    ///< header "kid" or empty
  std::string payload;                     ///< decoded payload bytes
  std::string signature;                   ///< decoded signature bytes
};
Result<void> parse_compact_into(std::string_view token, const ParseLimits& limits, CompactParts& out);

/// Header parameters this implementation understands in "crit" (none at present besides b64=false
/// for detached payloads, which compact verification refuses).
/// Checks the "crit" header: must be a non-empty array of strings naming header parameters that
/// are present, not registered names, and understood. Fails with ErrorCode::invalid_token.
Result<void> check_crit(const nlohmann::json& header);

/// Signs `payload` (raw bytes) with `header` (alg is set from `alg`, overriding any value).
/// Fails as check_key(sign) does.
Result<std::string> sign_compact(nlohmann::json header, std::string_view payload, Alg alg,
                                 const Jwk& key);

/// sign_compact with a reusable Signer (batch issuing: no per-token context set-up).
Result<std::string> sign_compact(const nlohmann::json& header, std::string_view payload, const Signer& signer);

/// Signs with the header bytes exactly as given (reproducing published vectors byte for byte).
/// The header must be a JSON object whose "alg" equals `alg`; fails with ErrorCode::usage if not.
Result<std::string> sign_compact_raw(std::string_view header_json, std::string_view payload, Alg alg,
                                     const Jwk& key);

}  // namespace tokctl::jose
