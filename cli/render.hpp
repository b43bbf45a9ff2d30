#pragma once
// Terminal and JSON rendering shared by all commands.

#include <string>
#include <string_view>

#include <nlohmann/json_fwd.hpp>

namespace tokctl::cli {

enum class Stream { out, err };

/// True when colour is wanted on that stream (a TTY, NO_COLOR unset, no --no-color).
bool color(Stream s);

/// Wraps text in an ANSI style when colour is on for the stream: "1" bold, "31" red, "32" green,
/// "33" yellow, "2" dim.
std::string style(Stream s, const char* code, const std::string& text);

/// Text made safe for a terminal: C0 controls (except none), DEL, C1 controls (U+0080..U+009F),
/// Unicode bidi overrides/isolates and invalid UTF-8 bytes are shown as visible escapes (\x1b,
/// \u202e), so token-derived text (claims, headers, kids) can never move the cursor, recolour the
/// screen or paint a fake verdict. Every text line built from token or file content goes through it.
/// Newlines (and tabs) are escaped too unless `newlines` is keep: a value spliced into a line must
/// not be able to start a new, fake line.
enum class Newlines { escape, keep };

/// The length (2..4) of the strict UTF-8 sequence (no overlongs, no surrogates, <= U+10FFFF)
/// starting at text[i] with a lead byte >= 0x80, its code point in `cp`; 0 when invalid.
std::size_t utf8_sequence(std::string_view text, std::size_t i, unsigned& cp);
std::string terminal_safe(std::string_view text, Newlines newlines = Newlines::escape);

/// JSON for a terminal: pretty-printed (indent 2, or compact with -1) and then terminal_safe().
std::string json_for_terminal(const nlohmann::json& j, int indent = 2);

/// Pretty JSON (2-space indent) followed by a newline, on stdout.
void print_json(const nlohmann::json& j);

/// Compact JSON on one line, on stdout.
void print_json_line(const nlohmann::json& j);

}  // namespace tokctl::cli
