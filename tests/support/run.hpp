#pragma once
// Runs the real tokctl binary (or any program) for the CLI tests and captures what it did:
// exit code, stdout and stderr. Also a TempDir RAII helper and whole-file read/write helpers.

#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace tokctl::test {

/// What a child process did. `code` is the exit status, or 128 + signal number when it was killed
/// by a signal (like a shell's $?).
struct RunResult {
  int code = -1;
  std::string out;
  std::string err;
  long max_rss_kib = 0;  ///< the child's peak resident set size in KiB (run_with_peak_rss() only)
};

/// Extra environment for the child, on top of (and overriding) this process's environment.
using EnvVars = std::vector<std::pair<std::string, std::string>>;

/// Runs `argv[0]` (looked up in PATH when it has no '/') with `argv`, feeds `stdin_data` on its
/// stdin and closes it, and reads stdout and stderr concurrently until the child exits.
/// Throws std::runtime_error when the process cannot be started.
RunResult run_program(const std::vector<std::string>& argv, std::string_view stdin_data = {},
                      const EnvVars& env = {});

/// Like run_program(), with the child's stdin opened from `stdin_path` instead of a pipe: this
/// process opens it O_RDONLY (a file, a directory, or /proc/self/mem, whose reads at offset 0 fail
/// with EIO) and the child gets it as fd 0. Throws std::runtime_error when it cannot be opened.
RunResult run_program_with_stdin_path(const std::vector<std::string>& argv, const std::string& stdin_path,
                                      const EnvVars& env = {});

/// The tokctl binary under test: $TOKCTL_TEST_BINARY when set, else the build's (TOKCTL_BINARY).
const char* tokctl_binary();

/// Runs the tokctl binary under test (TOKCTL_BINARY) with `args`. NO_COLOR is set so the output
/// never carries ANSI escapes.
RunResult run(const std::vector<std::string>& args, std::string_view stdin_data = {},
              const EnvVars& env = {});

/// Like run(), with stdin opened from `stdin_path` (see run_program_with_stdin_path()).
RunResult run_with_stdin_path(const std::vector<std::string>& args, const std::string& stdin_path,
                              const EnvVars& env = {});

/// Whether this build runs under AddressSanitizer (the tests and the tokctl they run).
bool asan_build();

/// What a peak-RSS bound is multiplied by in this build: 2 under AddressSanitizer, whose shadow
/// memory, redzones and allocator caches come on top of the program's own (verify --batch over
/// 1600 lines of 128 KiB, 2 threads: 29 MiB peak in the normal build, 63-65 MiB under ASan even
/// without its quarantine), else 1.
long rss_bound_factor();

/// Like run(), under GNU time (/usr/bin/time -f %M), which sets max_rss_kib to tokctl's own peak RSS.
/// (wait4's ru_maxrss cannot tell it: a posix_spawn child shares this process's memory until it
/// execs, and Linux carries that high-water mark into the child's ru_maxrss.) Throws
/// std::runtime_error when /usr/bin/time is missing or says nothing.
RunResult run_with_peak_rss(const std::vector<std::string>& args, std::string_view stdin_data = {},
                            const EnvVars& env = {});

/// Like run(), with the test-only build `tokctl-faulty` (TOKCTL_FAULTY_BINARY): the same CLI with
/// the armed crash hook, which SIGKILLs itself at the keystore write point named by $TOKCTL_FAULT.
RunResult run_faulty(const std::vector<std::string>& args, std::string_view stdin_data = {},
                     const EnvVars& env = {});

/// A fresh directory under $TMPDIR (or /tmp), removed with its contents on destruction.
class TempDir {
public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  /// The directory itself.
  const std::string& path() const { return m_path; }
  /// `path() + "/" + name`.
  std::string file(std::string_view name) const;

private:
  std::string m_path;
};

/// A long-running tokctl (`serve`) in the background, its stdout and stderr on pipes; SIGKILLed
/// and reaped on destruction. `nofile` > 0 sets RLIMIT_NOFILE (soft and hard), as `ulimit -n`.
/// Throws std::runtime_error when it cannot be started.
class ServeProcess {
public:
  explicit ServeProcess(const std::vector<std::string>& args, long nofile = 0);
  ~ServeProcess();
  ServeProcess(const ServeProcess&) = delete;
  ServeProcess& operator=(const ServeProcess&) = delete;

  /// The next line of its standard output (the ready line), without the newline.
  std::string first_line() const;
  /// SIGTERM, then the exit status (128 + signal when killed) and all it wrote to stderr.
  std::pair<int, std::string> terminate();
  /// CPU time it used so far (user + system, from /proc/PID/stat), in seconds.
  double cpu_seconds() const;

  int pid() const { return m_pid; }

private:
  int m_pid = -1;
  int m_out = -1;
  int m_err = -1;
};

/// Writes `data` to `path` (created or truncated). Throws std::runtime_error on failure.
void write_file(const std::string& path, std::string_view data);

/// The whole file. Throws std::runtime_error when it cannot be read.
std::string read_file(const std::string& path);

}  // namespace tokctl::test
