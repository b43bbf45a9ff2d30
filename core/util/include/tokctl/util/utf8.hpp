#pragma once
// UTF-8 (RFC 3629) for text that becomes a JSON string (claims, headers, policy values) or is shown
// on a terminal.

#include <cstddef>
#include <string_view>

namespace tokctl {

/// The length (2 to 4) of the well-formed multi-byte sequence at text[i], with its code point in
/// `cp`; 0 when there is none there (an ASCII byte, a stray continuation byte, an overlong form, a
/// surrogate, a code point above U+10FFFF or a truncated sequence).
std::size_t utf8_sequence(std::string_view text, std::size_t i, unsigned& cp);

/// The offset of the first byte that is not part of well-formed UTF-8, or text.size() if none.
std::size_t utf8_error_offset(std::string_view text);

/// True when `text` is well-formed UTF-8.
inline bool valid_utf8(std::string_view text) { return utf8_error_offset(text) == text.size(); }

}  // namespace tokctl
