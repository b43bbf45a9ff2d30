// Must not compile: util is the bottom layer.
#include <tokctl/jose/jwk.hpp>
