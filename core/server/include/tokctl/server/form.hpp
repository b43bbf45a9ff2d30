#pragma once
// OAuth request parsing: application/x-www-form-urlencoded bodies and HTTP Basic client
// credentials, strictly (RFC 6749 §2.3.1, §3.1, appendix B).

#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include <tokctl/util/error.hpp>

namespace tokctl::server {

/// %XX escapes and '+' as a space; nullopt for a malformed escape.
std::optional<std::string> form_decode(std::string_view text);

/// name=value pairs separated by '&'. A parameter sent without a value counts as omitted (RFC
/// 6749 §3.1). Refusals are OAuthCode::invalid_request: a malformed escape, an empty name, or a
/// parameter sent twice ("MUST NOT be included more than once").
Result<std::map<std::string, std::string>> parse_form(std::string_view body);

/// The client_id and secret of an "Authorization: Basic ..." value, each form-decoded after the
/// base64 (RFC 6749 §2.3.1). nullopt when the value is another scheme; invalid_request when it is
/// a malformed Basic value.
Result<std::optional<std::pair<std::string, std::string>>> parse_basic_auth(std::string_view header);

}  // namespace tokctl::server
