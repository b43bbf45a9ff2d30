#pragma once
// Base64url (RFC 4648 §5, unpadded, strict) and standard base64 (for x5c and gateway keys).

#include <string>
#include <string_view>

#include <tokctl/util/error.hpp>

namespace tokctl {

/// Unpadded base64url of arbitrary bytes.
std::string b64url_encode(std::string_view bytes);

/// Strict decode: rejects padding, characters outside the url alphabet, a length of 1 mod 4 and
/// non-canonical trailing bits. Fails with ErrorCode::malformed naming the offending position.
Result<std::string> b64url_decode(std::string_view text);
/// b64url_decode into `out`, reusing its capacity (batch paths decode into one buffer per
/// thread). On failure `out` is unspecified.
Result<void> b64url_decode_into(std::string_view text, std::string& out);

/// Padded standard base64.
std::string b64_encode(std::string_view bytes);

/// Strict padded standard base64 decode (whitespace not allowed). Fails with ErrorCode::malformed.
Result<std::string> b64_decode(std::string_view text);

/// Lower-case hex, and its strict inverse (fails with ErrorCode::malformed).
std::string hex_encode(std::string_view bytes);
Result<std::string> hex_decode(std::string_view text);

}  // namespace tokctl
