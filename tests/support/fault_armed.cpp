// The crash hook of the test-only binary tokctl-faulty: SIGKILL at the point named by $TOKCTL_FAULT
// (see tokctl/util/lock.hpp). Linked into no other executable.

#include <tokctl/util/lock.hpp>

#include <csignal>
#include <cstdlib>
#include <cstring>

namespace tokctl {

void fault_point(const char* point) {
  const char* want = std::getenv("TOKCTL_FAULT");
  if (want && std::strcmp(want, point) == 0) ::raise(SIGKILL);
}

}  // namespace tokctl
