#pragma once
// File and stdin input, and atomic file output.

#include <cstddef>
#include <string>
#include <string_view>

#include <tokctl/util/error.hpp>

namespace tokctl {

/// Default ceiling for anything read from a file or stdin (keys, tokens, payloads).
inline constexpr std::size_t k_max_input_bytes = 1 << 20;

/// Reads a whole file, or stdin when `path` is "-". Fails (ErrorCode::malformed) when larger than
/// `max_bytes`, or (ErrorCode::usage) when the file cannot be opened or is not a regular file
/// (a directory, FIFO, device or socket is refused without blocking).
Result<std::string> read_input(std::string_view path, std::size_t max_bytes = k_max_input_bytes);

/// Writes `data` to `path` atomically: temp file in the same directory (created with `mode`),
/// write, fsync, rename, fsync of the directory. Fails with ErrorCode::keystore on I/O errors.
Result<void> write_file_atomic(const std::string& path, std::string_view data, unsigned mode = 0600);

/// Creates `path` and any missing parents (like mkdir -p), each with `mode` when created here.
/// Fails with ErrorCode::keystore when one cannot be created or a component is not a directory.
Result<void> make_directories(const std::string& path, unsigned mode = 0700);

/// Removes leading and trailing ASCII whitespace (tokens and secrets read from files end in '\n').
std::string_view trim(std::string_view text);

}  // namespace tokctl
