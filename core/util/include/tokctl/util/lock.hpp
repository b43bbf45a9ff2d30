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

/// Crash hook at a named point of a keystore write. The library does not define it: the shipped
/// binary links the inert definition (tokctl_fault_none), the test-only binary `tokctl-faulty`
/// links one that SIGKILLs itself when $TOKCTL_FAULT equals `point`. No build option can put the
/// armed hook into the installed binary or leave it out of the test run.
void fault_point(const char* point);

}  // namespace tokctl
