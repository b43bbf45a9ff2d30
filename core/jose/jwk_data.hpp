#pragma once
// Private to core/jose: what a parsed Jwk holds.

#include <optional>
#include <string>

#include <nlohmann/json_fwd.hpp>

#include <tokctl/jose/jwk.hpp>
#include "ossl.hpp"

namespace tokctl::jose {

struct Jwk::Data {
  KeyType kty = KeyType::oct;
  std::string crv;  // JOSE curve name
  int bits = 0;
  bool has_private = false;
  ossl::EvpPkeyPtr pkey{nullptr, &EVP_PKEY_free};
  std::string secret;     // oct
  std::string ec_order;   // EC: group order, big-endian, field-size bytes (for r/s range checks)
  std::size_t ec_size = 0;  // EC: field size in bytes (r and s are each this long in JWS)
};

namespace detail {
/// parse_jwk for a JWKS member: nullopt for a kty/crv this implementation does not support.
Result<std::optional<Jwk>> parse_jwk_or_skip(const nlohmann::json& j);
}  // namespace detail

}  // namespace tokctl::jose
