#pragma once
// URI checks shared by the token service and the HTTP endpoints.

#include <string_view>

namespace tokctl {

/// RFC 8707 §2's resource indicator: an absolute URI (RFC 3986 §4.3: a scheme, then a non-empty
/// rest) with no fragment, no whitespace and no control characters.
bool is_absolute_uri(std::string_view uri);

}  // namespace tokctl
