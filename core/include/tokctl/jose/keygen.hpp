#pragma once
// Key generation for every supported JWS algorithm.

#include <optional>
#include <string>
#include <string_view>

#include <tokctl/jose/jwk.hpp>

namespace tokctl::jose {

struct KeyGenOptions {
  std::string alg;                 ///< JWS alg the key is for ("ES256", "RS256", "EdDSA", "HS256"...)
  std::optional<int> bits;         ///< RSA modulus bits (default 2048; >= 2048) or oct bits
  std::optional<std::string> crv;  ///< EdDSA: Ed25519 (default) or Ed448; EC: must match alg
};

/// A new private key with `alg` set (kid left empty). Fails with ErrorCode::usage on an unknown
/// alg, bits below the minimum for the alg, or a curve that does not fit the alg.
Result<Jwk> generate_key(const KeyGenOptions& options);

}  // namespace tokctl::jose
