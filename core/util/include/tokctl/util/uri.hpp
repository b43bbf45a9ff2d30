#pragma once
// URI checks shared by the token service and the HTTP endpoints.

#include <optional>
#include <string>
#include <string_view>

namespace tokctl {

/// RFC 8707 §2's resource indicator: an absolute URI (RFC 3986 §4.3: a scheme, then a non-empty
/// rest) with no fragment, no whitespace and no control characters.
bool is_absolute_uri(std::string_view uri);

/// An http(s) URI for comparison (RFC 3986 §6.2.2-6.2.3, as RFC 9449 §4.3 compares `htu`): query
/// and fragment dropped, scheme and host lower-cased, the scheme's default port and leading zeros
/// of a port removed, an empty path made "/", percent escapes of unreserved characters decoded
/// and the others upper-cased. Dot segments are not removed ("/a/./b" differs from "/a/b").
/// nullopt for anything else: another scheme, no host, userinfo, a non-numeric port, a colon in a
/// host that is not an IPv6 literal, a bad percent escape, whitespace or controls.
std::optional<std::string> normalized_http_uri(std::string_view uri);

}  // namespace tokctl
