#pragma once
// Encoding and JWS helpers for tests, written independently of tokctl's own code so that tests
// never trust what they check: base64url, HMAC-SHA256, hand-made HS256 tokens with verbatim JSON.

#include <string>
#include <string_view>

namespace tokctl::test {

/// 39 bytes: long enough for HS256.
inline constexpr std::string_view k_test_secret = "0123456789abcdef0123456789abcdef-secret";

/// Unpadded base64url.
std::string b64url(std::string_view bytes);
/// Decodes base64url; throws std::runtime_error on a character outside the alphabet.
std::string b64url_decode(std::string_view text);
/// Padded standard base64 (x5c).
std::string b64_std(std::string_view bytes);
/// HMAC-SHA256 of `data` with `key`; throws std::runtime_error on failure.
std::string hmac_sha256(std::string_view key, std::string_view data);
/// A compact JWS from already-encoded header and payload segments, HS256-signed with `secret`.
std::string hs256_segments(const std::string& header_seg, const std::string& payload_seg, std::string_view secret);
/// A compact JWS of raw header and payload JSON texts (kept verbatim: duplicates survive).
std::string hs256_token(std::string_view header, std::string_view payload, std::string_view secret = k_test_secret);

/// The "kid" of a compact JWS's protected header ("" when there is none or the header is not JSON).
std::string header_kid(std::string_view jws);

}  // namespace tokctl::test
