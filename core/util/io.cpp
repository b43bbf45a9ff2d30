#include <tokctl/util/io.hpp>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fcntl.h>
#include <random>
#include <sys/stat.h>
#include <unistd.h>

namespace tokctl {
namespace {

std::string errno_text() { return std::strerror(errno); }

Result<std::string> read_fd(int fd, std::string_view name, std::size_t max_bytes) {
  std::string out;
  char buf[65536];
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      return fail(ErrorCode::usage, "reading " + std::string(name) + ": " + errno_text());
    }
    if (n == 0) break;
    if (out.size() + static_cast<std::size_t>(n) > max_bytes) {
      return fail(ErrorCode::malformed,
                  std::string(name) + " is larger than the " + std::to_string(max_bytes) + "-byte limit");
    }
    out.append(buf, static_cast<std::size_t>(n));
  }
  return out;
}

constexpr std::size_t k_line_buffer = 65536;

}  // namespace

Result<void> check_stdin() {
  struct stat st{};
  if (::fstat(STDIN_FILENO, &st) != 0) {
    return fail(ErrorCode::usage, "standard input cannot be read: " + errno_text(),
                "redirect a file or a pipe into tokctl");
  }
  if (S_ISDIR(st.st_mode)) {
    return fail(ErrorCode::usage, "standard input is a directory, not a file or a pipe",
                "redirect a file (< FILE) or a pipe into tokctl");
  }
  return {};
}

LineReader::LineReader(int fd, std::string name, std::size_t max_line)
    : m_fd(fd), m_name(std::move(name)), m_max_line(max_line), m_buf(new char[k_line_buffer]) {}

Result<LineReader::Read> LineReader::next(std::string& line) {
  line.clear();
  m_length = 0;
  bool started = false;  // a byte (or the newline) of this line was seen
  bool kept = true;      // the line is still within max_line (+1 for a '\r' that goes)
  char last = 0;
  for (;;) {
    if (m_pos == m_end) {
      if (m_eof) {
        if (!started) return Read::end;
        break;  // a last line without a newline
      }
      ssize_t n = ::read(m_fd, m_buf.get(), k_line_buffer);
      if (n < 0) {
        if (errno == EINTR) continue;
        m_eof = true;
        return fail(ErrorCode::usage, "reading " + m_name + ": " + errno_text());
      }
      if (n == 0) m_eof = true;
      m_pos = 0;
      m_end = static_cast<std::size_t>(n);
      continue;
    }
    started = true;
    const char* from = m_buf.get() + m_pos;
    const auto* nl = static_cast<const char*>(std::memchr(from, '\n', m_end - m_pos));
    const std::size_t take = nl ? static_cast<std::size_t>(nl - from) : m_end - m_pos;
    m_length += take;
    if (take) last = from[take - 1];
    if (kept && m_length <= m_max_line + 1) {
      line.append(from, take);
    } else if (kept) {
      kept = false;
      line.clear();
    }
    m_pos += take + (nl ? 1 : 0);
    if (nl) break;
  }
  if (last == '\r' && m_length > 0) {
    --m_length;
    if (kept) line.pop_back();
  }
  if (!kept || m_length > m_max_line) {
    line.clear();
    return Read::too_long;
  }
  return Read::line;
}

namespace {

Result<std::string> read_stdin(std::size_t max_bytes) {
  if (auto ok = check_stdin(); !ok) return std::unexpected(ok.error());
  return read_fd(STDIN_FILENO, "standard input", max_bytes);
}

}  // namespace

Result<std::string> read_input(std::string_view path, std::size_t max_bytes) {
  if (path == "-") return read_stdin(max_bytes);
  std::string p(path);
  // O_NONBLOCK: opening a FIFO without a writer must not hang; non-regular files are refused below.
  int fd = ::open(p.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
  if (fd < 0) {
    return fail(ErrorCode::usage, "cannot open '" + p + "': " + errno_text());
  }
  struct stat st{};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    std::string kind = S_ISDIR(st.st_mode) ? "a directory" : S_ISFIFO(st.st_mode) ? "a FIFO" :
                       S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode) ? "a device" :
                       S_ISSOCK(st.st_mode) ? "a socket" : "not a regular file";
    ::close(fd);
    return fail(ErrorCode::usage, "'" + p + "' is " + kind + ", not a regular file",
                "give a file, or - to read standard input");
  }
  auto r = read_fd(fd, "'" + p + "'", max_bytes);
  ::close(fd);
  return r;
}

Result<void> make_directories(const std::string& path, unsigned mode) {
  struct stat st{};
  for (std::size_t pos = 0; pos != std::string::npos;) {
    pos = path.find('/', pos + 1);
    const std::string part = path.substr(0, pos);
    if (part.empty() || ::stat(part.c_str(), &st) == 0) {
      if (!part.empty() && !S_ISDIR(st.st_mode)) {
        return fail(ErrorCode::keystore, "cannot create '" + path + "': '" + part + "' is not a directory");
      }
      continue;
    }
    if (::mkdir(part.c_str(), static_cast<mode_t>(mode)) != 0 && errno != EEXIST) {
      return fail(ErrorCode::keystore, "cannot create '" + part + "': " + std::strerror(errno));
    }
  }
  return {};
}

Result<void> write_file_atomic(const std::string& path, std::string_view data, unsigned mode) {
  auto slash = path.find_last_of('/');
  std::string dir = slash == std::string::npos ? "." : (slash == 0 ? "/" : path.substr(0, slash));
  std::random_device rd;
  std::string tmp = path + ".tmp." + std::to_string(::getpid()) + "." + std::to_string(rd());
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
  // Messages name the file being written, not its temporary name (which never outlives the call).
  if (fd < 0) return fail(ErrorCode::keystore, "cannot create '" + path + "': " + errno_text());
  auto cleanup = [&](std::string what) {
    std::string msg = "cannot write '" + path + "' (" + what + "): " + errno_text();
    ::close(fd);
    ::unlink(tmp.c_str());
    return fail(ErrorCode::keystore, msg);
  };
  // The umask may have narrowed the mode; make it exact.
  if (::fchmod(fd, mode) != 0) return cleanup("chmod");
  std::size_t off = 0;
  while (off < data.size()) {
    ssize_t n = ::write(fd, data.data() + off, data.size() - off);
    if (n < 0) {
      if (errno == EINTR) continue;
      return cleanup("write");
    }
    off += static_cast<std::size_t>(n);
  }
  if (::fsync(fd) != 0) return cleanup("fsync");
  if (::close(fd) != 0) {
    ::unlink(tmp.c_str());
    return fail(ErrorCode::keystore, "cannot write '" + path + "' (close): " + errno_text());
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    std::string msg = "rename to '" + path + "': " + errno_text();
    ::unlink(tmp.c_str());
    return fail(ErrorCode::keystore, msg);
  }
  int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    ::fsync(dfd);
    ::close(dfd);
  }
  return {};
}

std::string_view trim(std::string_view text) {
  constexpr std::string_view ws = " \t\r\n\f\v";
  auto b = text.find_first_not_of(ws);
  if (b == std::string_view::npos) return {};
  auto e = text.find_last_not_of(ws);
  return text.substr(b, e - b + 1);
}

}  // namespace tokctl
