// Must not compile: jose is below keys.
#include <tokctl/keys/keystore.hpp>
