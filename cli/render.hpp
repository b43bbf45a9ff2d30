#pragma once
// Terminal and JSON rendering shared by all commands.

#include <string>

#include <nlohmann/json_fwd.hpp>

namespace tokctl::cli {

enum class Stream { out, err };

/// True when colour is wanted on that stream (a TTY, NO_COLOR unset, no --no-color).
bool color(Stream s);

/// Wraps text in an ANSI style when colour is on for the stream: "1" bold, "31" red, "32" green,
/// "33" yellow, "2" dim.
std::string style(Stream s, const char* code, const std::string& text);

/// Pretty JSON (2-space indent) followed by a newline, on stdout.
void print_json(const nlohmann::json& j);

/// Compact JSON on one line, on stdout.
void print_json_line(const nlohmann::json& j);

}  // namespace tokctl::cli
