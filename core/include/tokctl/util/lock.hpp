#pragma once
// An exclusive advisory lock on a file (flock), held for the lifetime of the object.

#include <string>

#include <tokctl/util/error.hpp>

namespace tokctl {

class FileLock {
 public:
  /// Opens (creating with mode 0600) and locks `path`, waiting for other holders. Fails with
  /// ErrorCode::keystore when the file cannot be opened or locked.
  static Result<FileLock> acquire(const std::string& path);

  FileLock(FileLock&& other) noexcept;
  FileLock& operator=(FileLock&& other) noexcept;
  FileLock(const FileLock&) = delete;
  FileLock& operator=(const FileLock&) = delete;
  ~FileLock();

 private:
  explicit FileLock(int fd) : m_fd(fd) {}
  int m_fd = -1;
};

/// Test-only crash hook: when built with TOKCTL_FAULT_INJECTION and $TOKCTL_FAULT equals `point`,
/// the process kills itself with SIGKILL right here. Inert otherwise.
void fault_point(const char* point);

}  // namespace tokctl
