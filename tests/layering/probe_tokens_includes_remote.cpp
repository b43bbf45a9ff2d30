// tokens/ knows nothing of remote mode: the OAuth client is not visible to it.
#include <tokctl/remote/oauth.hpp>
