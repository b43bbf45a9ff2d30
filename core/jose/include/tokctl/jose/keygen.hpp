#pragma once
// Key generation for every supported JWS algorithm.

#include <optional>
#include <string>
#include <string_view>

#include <tokctl/jose/jwk.hpp>

namespace tokctl::jose {

struct KeyGenOptions {
  std::string alg;  ///< JWS alg ("ES256", "EdDSA", "HS256"...) or JWE alg ("RSA-OAEP-256", "ECDH-ES", "A256KW", "dir")
  std::optional<int> bits;         ///< RSA modulus bits (default 2048; >= 2048) or oct bits
  std::optional<std::string> crv;  ///< EdDSA: Ed25519 (default) or Ed448; ES*: must match alg;
                                   ///< ECDH-ES*: P-256 (default), P-384, P-521, X25519, X448
};

/// A new private key with `alg` and `use` ("sig" or "enc") set (kid left empty). Fails with ErrorCode::usage on an unknown
/// alg, bits below the minimum for the alg, or a curve that does not fit the alg.
Result<Jwk> generate_key(const KeyGenOptions& options);

}  // namespace tokctl::jose
