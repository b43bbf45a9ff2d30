#pragma once
// File and stdin input, and atomic file output.

#include <cstddef>
#include <memory>
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

/// Whether standard input can be read as input: fails (ErrorCode::usage) when it is a directory
/// (`tokctl ... < dir`: read(2) would fail with EISDIR) or closed. A FIFO, terminal, socket or file
/// is fine. read_input("-") and the line readers of the batch commands check this first.
Result<void> check_stdin();

/// Reads lines from a file descriptor (not owned), keeping at most `max_line` bytes of a line: a
/// longer line is read past, not buffered, so input without newlines cannot grow memory.
class LineReader {
 public:
  enum class Read {
    line,      ///< a line, in the caller's string, without its "\n" or "\r\n"
    too_long,  ///< a line longer than max_line: skipped (the string is left empty); length() has its size
    end,       ///< end of input
  };

  /// `name` names the input in errors ("standard input").
  LineReader(int fd, std::string name, std::size_t max_line);

  /// The next line into `line`. A last line without a newline counts. Fails (ErrorCode::usage,
  /// "reading <name>: <strerror>") on a read error; the reader is then at its end.
  Result<Read> next(std::string& line);
  /// Bytes in the line last read (without the line ending), the skipped ones included.
  std::size_t length() const { return m_length; }

 private:
  int m_fd;
  std::string m_name;
  std::size_t m_max_line;
  std::unique_ptr<char[]> m_buf;
  std::size_t m_pos = 0;
  std::size_t m_end = 0;
  bool m_eof = false;
  std::size_t m_length = 0;
};

/// Writes `data` to `path` atomically: temp file in the same directory (created with `mode`),
/// write, fsync, rename, fsync of the directory. Fails with ErrorCode::keystore on I/O errors.
Result<void> write_file_atomic(const std::string& path, std::string_view data, unsigned mode = 0600);

/// Creates `path` and any missing parents (like mkdir -p), each with `mode` when created here.
/// Fails with ErrorCode::keystore when one cannot be created or a component is not a directory.
Result<void> make_directories(const std::string& path, unsigned mode = 0700);

/// Removes leading and trailing ASCII whitespace (tokens and secrets read from files end in '\n').
std::string_view trim(std::string_view text);

}  // namespace tokctl
