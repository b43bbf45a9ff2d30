// The crash hook of the shipped binary: does nothing (see tokctl/util/lock.hpp).

#include <tokctl/util/lock.hpp>

namespace tokctl {

void fault_point(const char* /*point*/) {}

}  // namespace tokctl
