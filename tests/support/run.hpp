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
};

/// Extra environment for the child, on top of (and overriding) this process's environment.
using EnvVars = std::vector<std::pair<std::string, std::string>>;

/// Runs `argv[0]` (looked up in PATH when it has no '/') with `argv`, feeds `stdin_data` on its
/// stdin and closes it, and reads stdout and stderr concurrently until the child exits.
/// Throws std::runtime_error when the process cannot be started.
RunResult run_program(const std::vector<std::string>& argv, std::string_view stdin_data = {},
                      const EnvVars& env = {});

/// Runs the tokctl binary under test (TOKCTL_BINARY) with `args`. NO_COLOR is set so the output
/// never carries ANSI escapes.
RunResult run(const std::vector<std::string>& args, std::string_view stdin_data = {},
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

/// Writes `data` to `path` (created or truncated). Throws std::runtime_error on failure.
void write_file(const std::string& path, std::string_view data);

/// The whole file. Throws std::runtime_error when it cannot be read.
std::string read_file(const std::string& path);

}  // namespace tokctl::test
