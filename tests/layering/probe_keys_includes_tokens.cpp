// Must not compile: keys is below tokens.
#include <tokctl/tokens/service.hpp>
