// Must not compile: the OpenSSL handle aliases are private to core/jose.
#include <tokctl/jose/ossl.hpp>
