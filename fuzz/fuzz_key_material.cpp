// Fuzz target: key import sniffing (tokctl/jose/jwk.hpp): parse_key_material over arbitrary bytes
// (JWK, JWKS, PEM blocks, DER), the direct PEM/DER importers, and the asymmetric-key detector used
// to refuse public keys as HMAC secrets.

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include <nlohmann/json.hpp>

#include <tokctl/jose/jwk.hpp>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace tokctl::jose;
  const std::string_view content(reinterpret_cast<const char*>(data), size);
  // parse_key_material already runs the PEM block importer and the DER importer (both with and
  // without a key type); parse_single_key and a direct from_der would only repeat them. Every
  // OpenSSL decoder context costs milliseconds, so repeating them would cut the execs per second
  // several-fold for no new code reached.
  if (auto set = parse_key_material(content)) {
    for (const Jwk& key : set->keys) {
      (void)key.describe();
      (void)key.thumbprint();
      (void)key.to_json(KeyPart::with_private);
      (void)key.to_pem(KeyPart::public_only);
    }
  } else if (content.find("-----BEGIN ") != std::string_view::npos) {
    (void)Jwk::from_pem(content);  // the whole text as one block, markers and all
  }
  (void)looks_like_asymmetric_key(content);
  return 0;
}
