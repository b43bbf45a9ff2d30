#include <tokctl/server/form.hpp>

#include <algorithm>
#include <cctype>

#include <tokctl/util/base64.hpp>
#include <tokctl/util/utf8.hpp>

namespace tokctl::server {

namespace {

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

bool iequals_prefix(std::string_view text, std::string_view prefix) {
  if (text.size() < prefix.size()) return false;
  for (std::size_t i = 0; i < prefix.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(text[i])) != std::tolower(static_cast<unsigned char>(prefix[i]))) {
      return false;
    }
  }
  return true;
}

std::optional<std::string> decode_escapes(std::string_view text, bool plus_is_space) {
  std::string out;
  out.reserve(text.size());
  for (std::size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (c == '+' && plus_is_space) {
      out.push_back(' ');
    } else if (c == '%') {
      if (i + 2 >= text.size()) return std::nullopt;
      int hi = hex_value(text[i + 1]);
      int lo = hex_value(text[i + 2]);
      if (hi < 0 || lo < 0) return std::nullopt;
      out.push_back(static_cast<char>(hi * 16 + lo));
      i += 2;
    } else {
      out.push_back(c);
    }
  }
  return out;
}

}  // namespace

std::optional<std::string> form_decode(std::string_view text) { return decode_escapes(text, true); }

std::optional<std::string> percent_decode(std::string_view text) { return decode_escapes(text, false); }

const std::string* FormParams::get(std::string_view name) const {
  auto it = values.find(name);
  return it == values.end() || it->second.empty() ? nullptr : &it->second.front();
}

std::string FormParams::value(std::string_view name) const {
  const std::string* v = get(name);
  return v ? *v : std::string();
}

std::vector<std::string> FormParams::all(std::string_view name) const {
  auto it = values.find(name);
  return it == values.end() ? std::vector<std::string>() : it->second;
}

void FormParams::erase(std::string_view name) {
  if (auto it = values.find(name); it != values.end()) values.erase(it);
}

Result<FormParams> parse_form(std::string_view body, std::initializer_list<std::string_view> repeatable) {
  FormParams form;
  auto& out = form.values;
  std::size_t pos = 0;
  while (pos <= body.size()) {
    std::size_t amp = body.find('&', pos);
    std::string_view pair = body.substr(pos, amp == std::string_view::npos ? std::string_view::npos : amp - pos);
    pos = amp == std::string_view::npos ? body.size() + 1 : amp + 1;
    if (pair.empty()) continue;
    std::size_t eq = pair.find('=');
    auto name = form_decode(pair.substr(0, eq));
    auto value = form_decode(eq == std::string_view::npos ? std::string_view() : pair.substr(eq + 1));
    if (!name || !value) return oauth_fail(OAuthCode::invalid_request, "malformed form encoding");
    if (name->empty()) return oauth_fail(OAuthCode::invalid_request, "a form parameter has no name");
    // Every OAuth parameter is text (RFC 6749 Appendix A: ASCII; URIs and names UTF-8). Bytes that
    // are not UTF-8 would reach a JSON document (a token's aud, a log line) and fail there.
    if (!valid_utf8(*name)) return oauth_fail(OAuthCode::invalid_request, "a form parameter name is not UTF-8 text");
    if (!valid_utf8(*value)) {
      return oauth_fail(OAuthCode::invalid_request, "parameter '" + *name + "' is not UTF-8 text");
    }
    const bool may_repeat = std::find(repeatable.begin(), repeatable.end(), *name) != repeatable.end();
    auto [it, fresh] = out.try_emplace(std::move(*name));
    if (!fresh && !may_repeat) {
      return oauth_fail(OAuthCode::invalid_request, "parameter '" + it->first + "' is included more than once");
    }
    // An empty value is remembered (a repeat is still an error), then dropped.
    it->second.push_back(std::move(*value));
  }
  for (auto it = out.begin(); it != out.end();) {
    std::erase(it->second, std::string());
    it = it->second.empty() ? out.erase(it) : std::next(it);
  }
  return form;
}

Result<std::optional<std::pair<std::string, std::string>>> parse_basic_auth(std::string_view header) {
  if (!iequals_prefix(header, "basic ")) return std::optional<std::pair<std::string, std::string>>();
  std::string_view b64 = header.substr(6);
  while (!b64.empty() && b64.front() == ' ') b64.remove_prefix(1);
  auto raw = b64_decode(b64);
  // The client tried to authenticate and failed: invalid_client (RFC 6749 §5.2), answered 401
  // with a Basic challenge like a wrong secret.
  auto malformed = [] { return oauth_fail(OAuthCode::invalid_client, "malformed Basic credentials"); };
  if (!raw) return malformed();
  auto colon = raw->find(':');
  if (colon == std::string::npos) return malformed();
  auto id = form_decode(std::string_view(*raw).substr(0, colon));
  auto secret = form_decode(std::string_view(*raw).substr(colon + 1));
  if (!id || !secret || id->empty() || !valid_utf8(*id) || !valid_utf8(*secret)) return malformed();
  return std::optional(std::pair(std::move(*id), std::move(*secret)));
}

Result<PresentedToken> parse_token_authorization(std::string_view header) {
  PresentedToken out;
  std::size_t skip = 0;
  if (iequals_prefix(header, "bearer ")) {
    skip = 7;
  } else if (iequals_prefix(header, "dpop ")) {
    out.dpop = true;
    skip = 5;
  } else {
    const auto space = header.find(' ');
    return oauth_fail(OAuthCode::invalid_request,
                      space == std::string_view::npos || space == 0 || space > 20
                          ? std::string("Authorization is not a Bearer or DPoP token")
                          : "Authorization uses the " + std::string(header.substr(0, space)) +
                                " scheme, not Bearer or DPoP");
  }
  const char* scheme = out.dpop ? "DPoP" : "Bearer";
  std::string_view token = header.substr(skip);
  while (!token.empty() && token.front() == ' ') token.remove_prefix(1);
  while (!token.empty() && (token.back() == ' ' || token.back() == '\t')) token.remove_suffix(1);
  if (token.empty()) return oauth_fail(OAuthCode::invalid_request, "Authorization: " + std::string(scheme) + " has no token");
  // RFC 6750's b64token and RFC 9110's token68 (RFC 9449 §7.1) are the same characters.
  std::size_t i = 0;
  auto b64token = [](unsigned char c) {
    return std::isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~' || c == '+' || c == '/';
  };
  while (i < token.size() && b64token(static_cast<unsigned char>(token[i]))) ++i;
  if (i == 0) return oauth_fail(OAuthCode::invalid_request, "the access token does not start with a b64token character");
  while (i < token.size() && token[i] == '=') ++i;
  if (i != token.size()) {
    return oauth_fail(OAuthCode::invalid_request,
                      "the access token has a character outside RFC 6750's b64token at offset " + std::to_string(i));
  }
  out.token = token;
  return out;
}

}  // namespace tokctl::server
