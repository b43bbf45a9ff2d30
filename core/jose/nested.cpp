// Nested JWTs (RFC 7519 §5.2): the JWS inside a JWE whose cty says JWT.

#include <algorithm>
#include <cctype>

#include <tokctl/jose/json.hpp>
#include <tokctl/jose/jwe.hpp>
#include <tokctl/jose/jws.hpp>
#include <tokctl/util/base64.hpp>
#include <tokctl/util/io.hpp>

namespace tokctl::jose {

Result<std::optional<std::string>> unwrap_nested_jwt(std::string_view token, const JwkSet& keys) {
  if (compact_segments(token) != 5) return std::optional<std::string>();
  if (keys.keys.empty()) return fail(ErrorCode::usage, "the token is a JWE (encrypted) and there is no key to decrypt it");
  // Prefer the key the header names; try the others only when it names none.
  auto header = parse_json_object(b64url_decode(token.substr(0, token.find('.'))).value_or(std::string("{}")),
                                  "JWE header");
  const std::string kid = header ? string_or(*header, "kid") : std::string();
  std::optional<Error> last;
  for (const auto& k : keys.keys) {
    if (!kid.empty() && !k.kid().empty() && k.kid() != kid) continue;
    auto dec = decrypt_compact(token, k);
    if (!dec) {
      last = dec.error();
      continue;
    }
    // cty is untrusted: absent, or a number, is simply "not a JWT".
    const std::string* cty_member = string_member(dec->header, "cty");
    std::string cty = cty_member ? *cty_member : std::string();
    for (auto& c : cty) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (cty != "jwt" && cty != "application/jwt") {
      std::string shown = cty_member ? "'" + *cty_member + "'" : dec->header.contains("cty") ? "not a string" : "missing";
      return fail(ErrorCode::invalid_token, "the JWE does not contain a JWT (cty is " + shown + ")",
                  "use 'tokctl decrypt' for other encrypted content");
    }
    return std::optional<std::string>(std::string(trim(dec->plaintext)));
  }
  if (last) return std::unexpected(*last);
  return fail(ErrorCode::invalid_token, "no decryption key has kid '" + kid + "' (have: " + keys.kid_list() + ")");
}

}  // namespace tokctl::jose
