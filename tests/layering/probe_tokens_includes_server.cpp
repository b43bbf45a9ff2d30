// Must not compile: tokens is below server (only core/server includes Boost).
#include <tokctl/server/http_server.hpp>
