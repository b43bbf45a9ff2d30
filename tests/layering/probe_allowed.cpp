// Allowed: a module includes the modules below it.
#include <tokctl/jose/jwk.hpp>
#include <tokctl/keys/keystore.hpp>
#include <tokctl/tokens/service.hpp>
#include <tokctl/util/error.hpp>
