#pragma once
// OAuth request parsing: application/x-www-form-urlencoded bodies and HTTP Basic client
// credentials, strictly (RFC 6749 §2.3.1, §3.1, appendix B).

#include <initializer_list>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <tokctl/util/error.hpp>

namespace tokctl::server {

/// %XX escapes and '+' as a space; nullopt for a malformed escape.
std::optional<std::string> form_decode(std::string_view text);
/// %XX escapes only ('+' stays '+': URI components, nginx's escaped PEM); nullopt for a malformed one.
std::optional<std::string> percent_decode(std::string_view text);

/// The parameters of a form body, each with its values in order (one, unless repeatable).
struct FormParams {
  std::map<std::string, std::vector<std::string>, std::less<>> values;

  /// The (first) value, or nullptr.
  const std::string* get(std::string_view name) const;
  /// The value, or "".
  std::string value(std::string_view name) const;
  /// Every value (empty when absent).
  std::vector<std::string> all(std::string_view name) const;
  bool has(std::string_view name) const { return values.find(name) != values.end(); }
  void erase(std::string_view name);
};

/// name=value pairs separated by '&'. A parameter sent without a value counts as omitted (RFC
/// 6749 §3.1). Refusals are OAuthCode::invalid_request: a malformed escape, an empty name, or a
/// parameter sent twice ("MUST NOT be included more than once"), except those named in
/// `repeatable` (RFC 8693 audience and resource).
Result<FormParams> parse_form(std::string_view body, std::initializer_list<std::string_view> repeatable = {});

/// The client_id and secret of an "Authorization: Basic ..." value, each form-decoded after the
/// base64 (RFC 6749 §2.3.1). nullopt when the value is another scheme; invalid_request when it is
/// a malformed Basic value.
Result<std::optional<std::pair<std::string, std::string>>> parse_basic_auth(std::string_view header);

/// An access token as an Authorization value carries it.
struct PresentedToken {
  bool dpop = false;       ///< the DPoP scheme (RFC 9449 §7.1), else Bearer (RFC 6750 §2.1)
  std::string_view token;  ///< a view into the header value
};

/// The token of an "Authorization: Bearer <token>" or "Authorization: DPoP <token>" value (the
/// scheme in any case, one or more spaces, a b64token / token68: ALPHA / DIGIT / "-._~+/" then any
/// '='). invalid_request naming what is wrong otherwise (another scheme, no token, a character
/// outside b64token); the message never echoes the value.
Result<PresentedToken> parse_token_authorization(std::string_view header);

}  // namespace tokctl::server
