// Fuzz target: compact JWE parsing and decryption (tokctl/jose/jwe.hpp) with fixed keys for every
// key-management family (RSA-OAEP, ECDH-ES P-384/P-256/X25519, A128KW, dir, PBES2; fixed_keys.hpp),
// so the RFC 7520 / RFC 8037 seed tokens decrypt and mutations reach every decryption path.

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include <tokctl/jose/jwe.hpp>
#include <tokctl/jose/jwk.hpp>

#include "fixed_keys.hpp"

namespace {

using namespace tokctl::jose;

std::vector<Jwk> make_keys() {
  std::vector<Jwk> keys;
  for (std::string_view text : tokctl::fuzz::k_enc_keys) {
    auto key = Jwk::from_json(nlohmann::json::parse(text));
    if (!key) std::abort();
    keys.push_back(*key);
  }
  auto password = Jwk::from_secret(std::string(tokctl::fuzz::k_pbes2_password));
  if (!password) std::abort();
  keys.push_back(*password);
  return keys;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const std::vector<Jwk> keys = make_keys();
  // PBES2 work is bounded by max_p2c, checked before PBKDF2: kept small so the fuzzer stays fast
  // while the RFC 7520 example (p2c 8192) still decrypts.
  const JweLimits limits{.max_token_bytes = 64 * 1024, .max_p2c = 10000, .json = {}};
  const std::string_view token(reinterpret_cast<const char*>(data), size);
  for (const Jwk& key : keys) {
    auto out = decrypt_compact(token, key, limits);
    if (out && !out->header.is_object()) std::abort();
  }
  return 0;
}
