// Fuzz target: JWK and JWKS parsing (tokctl/jose/jwk.hpp) from strict JSON, then everything a
// parsed key offers: JSON/PEM export, thumbprints, the public form, re-import of the export.

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include <nlohmann/json.hpp>

#include <tokctl/jose/json.hpp>
#include <tokctl/jose/jwk.hpp>

namespace {

using namespace tokctl::jose;

void exercise(const Jwk& key) {
  (void)key.kty();
  (void)key.bits();
  (void)key.describe();
  (void)key.thumbprint();
  (void)key.thumbprint("sha512");
  const nlohmann::json pub = key.to_json(KeyPart::public_only);
  const nlohmann::json full = key.to_json(KeyPart::with_private);
  // What we export we must be able to import again, with the same thumbprint.
  auto back = Jwk::from_json(full);
  if (!back) std::abort();
  auto tp = key.thumbprint();
  auto tp_back = back->thumbprint();
  if (!tp || !tp_back || *tp != *tp_back) std::abort();
  if (auto p = key.to_public()) {
    if (p->has_private()) std::abort();
    (void)p->to_json();
  }
  if (auto pem = key.to_pem(KeyPart::with_private)) {
    if (!Jwk::from_pem(*pem)) std::abort();
  }
  (void)pub;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  auto json = parse_json_strict(text, "key");
  if (!json) return 0;
  if (auto key = Jwk::from_json(*json)) exercise(*key);
  if (auto set = parse_jwks(*json)) {
    for (const Jwk& key : set->keys) exercise(key);
    (void)set->kid_list();
    (void)set->to_json(KeyPart::with_private);
  }
  return 0;
}
