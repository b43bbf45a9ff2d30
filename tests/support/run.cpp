#include "support/run.hpp"

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <stdexcept>

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

extern char** environ;

#ifndef TOKCTL_FAULTY_BINARY
#error "TOKCTL_FAULTY_BINARY must be defined (tests/CMakeLists.txt: the test-only tokctl-faulty target)"
#endif
#ifndef TOKCTL_BINARY
#error "TOKCTL_BINARY must be defined (tests/CMakeLists.txt sets it to the tokctl target file)"
#endif

namespace tokctl::test {
namespace {

[[noreturn]] void fail_errno(const std::string& what) {
  throw std::runtime_error(what + ": " + std::strerror(errno));
}

struct Pipe {
  int fd[2] = {-1, -1};
  Pipe() {
    if (::pipe2(fd, O_CLOEXEC) != 0) fail_errno("pipe2");
  }
  ~Pipe() {
    close_read();
    close_write();
  }
  Pipe(const Pipe&) = delete;
  Pipe& operator=(const Pipe&) = delete;
  void close_read() {
    if (fd[0] >= 0) ::close(fd[0]);
    fd[0] = -1;
  }
  void close_write() {
    if (fd[1] >= 0) ::close(fd[1]);
    fd[1] = -1;
  }
};

struct FileActions {
  posix_spawn_file_actions_t fa;
  FileActions() { posix_spawn_file_actions_init(&fa); }
  ~FileActions() { posix_spawn_file_actions_destroy(&fa); }
  FileActions(const FileActions&) = delete;
  FileActions& operator=(const FileActions&) = delete;
};

// The child's environment: ours, with `env` overriding or adding.
std::vector<std::string> merged_env(const EnvVars& env) {
  std::map<std::string, std::string> vars;
  for (char** e = environ; e && *e; ++e) {
    std::string_view kv(*e);
    auto eq = kv.find('=');
    if (eq == std::string_view::npos) continue;
    vars[std::string(kv.substr(0, eq))] = std::string(kv.substr(eq + 1));
  }
  for (const auto& [k, v] : env) vars[k] = v;
  std::vector<std::string> out;
  out.reserve(vars.size());
  for (const auto& [k, v] : vars) out.push_back(k + "=" + v);
  return out;
}

std::vector<char*> c_strings(std::vector<std::string>& v) {
  std::vector<char*> out;
  out.reserve(v.size() + 1);
  for (auto& s : v) out.push_back(s.data());
  out.push_back(nullptr);
  return out;
}

// Runs `argv_in` with stdin from `stdin_fd` when it is open (the caller keeps and closes it), else
// from a pipe fed with `stdin_data`.
RunResult spawn_and_collect(const std::vector<std::string>& argv_in, std::string_view stdin_data, int stdin_fd,
                            const EnvVars& env) {
  if (argv_in.empty()) throw std::invalid_argument("run_program: empty argv");
  std::vector<std::string> argv_store = argv_in;
  std::vector<std::string> env_store = merged_env(env);
  auto argv = c_strings(argv_store);
  auto envp = c_strings(env_store);

  Pipe in, out, err;
  FileActions fa;
  posix_spawn_file_actions_adddup2(&fa.fa, stdin_fd >= 0 ? stdin_fd : in.fd[0], STDIN_FILENO);
  posix_spawn_file_actions_adddup2(&fa.fa, out.fd[1], STDOUT_FILENO);
  posix_spawn_file_actions_adddup2(&fa.fa, err.fd[1], STDERR_FILENO);

  pid_t pid = -1;
  int rc = ::posix_spawnp(&pid, argv[0], &fa.fa, nullptr, argv.data(), envp.data());
  if (rc != 0) {
    errno = rc;
    fail_errno("posix_spawnp " + argv_in[0]);
  }
  in.close_read();
  out.close_write();
  err.close_write();

  // A child that exits without reading stdin must not kill us with SIGPIPE.
  struct sigaction ignore {}, old {};
  ignore.sa_handler = SIG_IGN;
  ::sigaction(SIGPIPE, &ignore, &old);

  if (stdin_data.empty() || stdin_fd >= 0) in.close_write();
  else ::fcntl(in.fd[1], F_SETFL, ::fcntl(in.fd[1], F_GETFL) | O_NONBLOCK);

  RunResult result;
  std::size_t written = 0;
  char buf[65536];
  while (out.fd[0] >= 0 || err.fd[0] >= 0 || in.fd[1] >= 0) {
    pollfd fds[3];
    int n = 0;
    int i_out = -1, i_err = -1, i_in = -1;
    if (out.fd[0] >= 0) { fds[n] = {out.fd[0], POLLIN, 0}; i_out = n++; }
    if (err.fd[0] >= 0) { fds[n] = {err.fd[0], POLLIN, 0}; i_err = n++; }
    if (in.fd[1] >= 0) { fds[n] = {in.fd[1], POLLOUT, 0}; i_in = n++; }
    if (::poll(fds, static_cast<nfds_t>(n), -1) < 0) {
      if (errno == EINTR) continue;
      fail_errno("poll");
    }
    auto drain = [&](int idx, Pipe& p, std::string& sink) {
      if (idx < 0 || fds[idx].revents == 0) return;
      ssize_t got = ::read(p.fd[0], buf, sizeof buf);
      if (got > 0) sink.append(buf, static_cast<std::size_t>(got));
      else if (got == 0 || (errno != EINTR && errno != EAGAIN)) p.close_read();
    };
    drain(i_out, out, result.out);
    drain(i_err, err, result.err);
    if (i_in >= 0 && fds[i_in].revents != 0) {
      if (fds[i_in].revents & (POLLERR | POLLHUP)) {
        in.close_write();  // the child closed its stdin
      } else {
        ssize_t put = ::write(in.fd[1], stdin_data.data() + written, stdin_data.size() - written);
        if (put > 0) written += static_cast<std::size_t>(put);
        else if (put < 0 && errno != EINTR && errno != EAGAIN) in.close_write();
        if (written == stdin_data.size()) in.close_write();
      }
    }
  }
  ::sigaction(SIGPIPE, &old, nullptr);

  int status = 0;
  while (::waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) fail_errno("waitpid");
  }
  if (WIFEXITED(status)) result.code = WEXITSTATUS(status);
  else if (WIFSIGNALED(status)) result.code = 128 + WTERMSIG(status);
  return result;
}

}  // namespace

RunResult run_program(const std::vector<std::string>& argv, std::string_view stdin_data, const EnvVars& env) {
  return spawn_and_collect(argv, stdin_data, -1, env);
}

RunResult run_program_with_stdin_path(const std::vector<std::string>& argv, const std::string& stdin_path,
                                      const EnvVars& env) {
  const int fd = ::open(stdin_path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY);
  if (fd < 0) fail_errno("open " + stdin_path);
  struct Closer {
    int fd;
    ~Closer() { ::close(fd); }
  } closer{fd};
  return spawn_and_collect(argv, {}, fd, env);
}

namespace {

// `stdin_path` non-empty: stdin opened from it (run_program_with_stdin_path), else `stdin_data`.
// `wrapper`: a command line that runs the binary (e.g. /usr/bin/time and its flags).
RunResult run_tokctl(const char* binary, const std::vector<std::string>& args, std::string_view stdin_data,
                     const EnvVars& env, const std::string& stdin_path = {},
                     const std::vector<std::string>& wrapper = {}) {
  std::vector<std::string> argv = wrapper;
  argv.reserve(wrapper.size() + args.size() + 1);
  argv.emplace_back(binary);
  argv.insert(argv.end(), args.begin(), args.end());
  // Isolated from the developer's or CI machine's own tokctl setup: no default keystore, policy or
  // passphrase leaks in (tokctl treats an empty variable as unset), and the default keystore is
  // under /dev/null, where nothing can ever be created, even as root. Tests override as needed.
  EnvVars full_env{{"NO_COLOR", "1"},
                   {"TOKCTL_KEYSTORE", ""},
                   {"TOKCTL_CONFIG", ""},
                   {"TOKCTL_PASSPHRASE", ""},
                   {"TOKCTL_SERVER", ""},
                   {"TOKCTL_PROFILE", ""},
                   {"TOKCTL_CLIENT_ID", ""},
                   {"TOKCTL_CLIENT_SECRET", ""},
                   {"TOKCTL_CLIENT_SECRET_FILE", ""},
                   {"XDG_DATA_HOME", "/dev/null/tokctl-tests-xdg"},
                   {"XDG_CACHE_HOME", "/dev/null/tokctl-tests-xdg-cache"}};
  full_env.insert(full_env.end(), env.begin(), env.end());
  if (!stdin_path.empty()) return run_program_with_stdin_path(argv, stdin_path, full_env);
  return run_program(argv, stdin_data, full_env);
}

}  // namespace

const char* tokctl_binary() {
  // $TOKCTL_TEST_BINARY overrides the build's own binary: the ThreadSanitizer suite (scripts/tsan)
  // builds only the core and runs the CLI of the normal build.
  const char* override_bin = std::getenv("TOKCTL_TEST_BINARY");
  return override_bin && *override_bin ? override_bin : TOKCTL_BINARY;
}

RunResult run(const std::vector<std::string>& args, std::string_view stdin_data, const EnvVars& env) {
  return run_tokctl(tokctl_binary(), args, stdin_data, env);
}

RunResult run_with_stdin_path(const std::vector<std::string>& args, const std::string& stdin_path,
                              const EnvVars& env) {
  return run_tokctl(tokctl_binary(), args, {}, env, stdin_path);
}

RunResult run_with_peak_rss(const std::vector<std::string>& args, std::string_view stdin_data, const EnvVars& env) {
  constexpr const char* k_time = "/usr/bin/time";
  if (::access(k_time, X_OK) != 0) throw std::runtime_error(std::string(k_time) + " (GNU time) is not installed");
  TempDir dir;
  const std::string report = dir.file("rss");
  // The program's own memory, not AddressSanitizer's: in the sanitizer build its quarantine keeps
  // freed blocks mapped (up to 256 MiB), which would count as the program's peak.
  EnvVars full_env = env;
  const char* asan = std::getenv("ASAN_OPTIONS");
  full_env.emplace_back("ASAN_OPTIONS", std::string(asan ? asan : "") + (asan && *asan ? ":" : "") +
                                            "quarantine_size_mb=0:thread_local_quarantine_size_kb=0");
  RunResult r = run_tokctl(tokctl_binary(), args, stdin_data, full_env, {}, {k_time, "-f", "%M", "-o", report});
  // After a non-zero exit GNU time writes "Command exited with non-zero status N" first: the
  // figure is the last line.
  std::istringstream text(read_file(report));
  std::string line, last;
  while (std::getline(text, line))
    if (!line.empty()) last = line;
  try {
    r.max_rss_kib = std::stol(last);
  } catch (const std::exception&) {
    throw std::runtime_error(std::string(k_time) + " wrote no peak RSS: '" + last + "'");
  }
  return r;
}

RunResult run_faulty(const std::vector<std::string>& args, std::string_view stdin_data, const EnvVars& env) {
  return run_tokctl(TOKCTL_FAULTY_BINARY, args, stdin_data, env);
}

TempDir::TempDir() {
  const char* base = std::getenv("TMPDIR");
  std::string tmpl = std::string(base && *base ? base : "/tmp") + "/tokctl-test-XXXXXX";
  if (!::mkdtemp(tmpl.data())) fail_errno("mkdtemp " + tmpl);
  m_path = tmpl;
}

TempDir::~TempDir() {
  std::error_code ec;
  std::filesystem::remove_all(m_path, ec);
}

std::string TempDir::file(std::string_view name) const { return m_path + "/" + std::string(name); }

void write_file(const std::string& path, std::string_view data) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  if (!f) throw std::runtime_error("cannot write " + path);
  f.write(data.data(), static_cast<std::streamsize>(data.size()));
  if (!f) throw std::runtime_error("cannot write " + path);
}

std::string read_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw std::runtime_error("cannot read " + path);
  std::ostringstream s;
  s << f.rdbuf();
  return s.str();
}

ServeProcess::ServeProcess(const std::vector<std::string>& args, long nofile) {
  int o[2], e[2];
  if (::pipe(o) != 0) throw std::runtime_error("pipe failed");
  if (::pipe(e) != 0) throw std::runtime_error("pipe failed");
  // Everything the child needs is made before fork: it only calls async-signal-safe functions.
  std::string bin = tokctl_binary();
  std::vector<std::string> copy = args;
  std::vector<char*> argv;
  argv.push_back(bin.data());
  for (auto& a : copy) argv.push_back(a.data());
  argv.push_back(nullptr);
  m_pid = ::fork();
  if (m_pid < 0) throw std::runtime_error("fork failed");
  if (m_pid == 0) {
    ::dup2(o[1], 1);
    ::dup2(e[1], 2);
    for (int fd = 3; fd < 4096; ++fd) ::close(fd);
    if (nofile > 0) {
      rlimit l{static_cast<rlim_t>(nofile), static_cast<rlim_t>(nofile)};
      ::setrlimit(RLIMIT_NOFILE, &l);
    }
    ::execv(bin.c_str(), argv.data());
    ::_exit(127);
  }
  ::close(o[1]);
  ::close(e[1]);
  m_out = o[0];
  m_err = e[0];
}

ServeProcess::~ServeProcess() {
  if (m_pid > 0) {
    ::kill(m_pid, SIGKILL);
    ::waitpid(m_pid, nullptr, 0);
  }
  ::close(m_out);
  ::close(m_err);
}

std::string ServeProcess::first_line() const {
  std::string line;
  char c;
  while (::read(m_out, &c, 1) == 1 && c != '\n') line.push_back(c);
  return line;
}

std::pair<int, std::string> ServeProcess::terminate() {
  ::kill(m_pid, SIGTERM);
  std::string text;
  char buf[4096];
  ssize_t n;
  while ((n = ::read(m_err, buf, sizeof buf)) > 0) text.append(buf, static_cast<std::size_t>(n));
  int status = 0;
  ::waitpid(m_pid, &status, 0);
  m_pid = -1;
  return {WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status), text};
}

double ServeProcess::cpu_seconds() const {
  std::ifstream f("/proc/" + std::to_string(m_pid) + "/stat");
  std::string text((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  std::istringstream rest(text.substr(text.rfind(')') + 2));
  std::string field;
  unsigned long long utime = 0, stime = 0;
  for (int i = 3; i <= 15 && rest >> field; ++i) {
    if (i == 14) utime = std::stoull(field);
    if (i == 15) stime = std::stoull(field);
  }
  return static_cast<double>(utime + stime) / static_cast<double>(::sysconf(_SC_CLK_TCK));
}

bool asan_build() {
#if defined(__SANITIZE_ADDRESS__)
  return true;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
  return true;
#else
  return false;
#endif
#else
  return false;
#endif
}

long rss_bound_factor() { return asan_build() ? 2 : 1; }

}  // namespace tokctl::test
