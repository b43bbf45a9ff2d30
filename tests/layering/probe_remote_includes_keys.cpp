// remote/ sits on jose and util only (DESIGN.md): the keystore is not visible to it.
#include <tokctl/keys/keystore.hpp>
