// DPoP proofs (RFC 9449 §4).

#include <tokctl/jose/dpop.hpp>

#include <cmath>

#include <tokctl/jose/digest.hpp>
#include <tokctl/jose/json.hpp>
#include <tokctl/jose/jwk.hpp>
#include <tokctl/jose/jws.hpp>
#include <tokctl/util/base64.hpp>
#include <tokctl/util/uri.hpp>

namespace tokctl::jose {
namespace {

using nlohmann::json;

constexpr std::string_view k_typ = "dpop+jwt";
constexpr int k_max_dpop_rsa_bits = 4096;

std::unexpected<Error> refused(std::string why) {
  auto e = fail(ErrorCode::invalid_token, "DPoP proof: " + why);
  e.error().oauth = OAuthCode::invalid_dpop_proof;
  return e;
}

}  // namespace

Result<DpopProof> check_dpop_proof(std::string_view proof, const DpopCheck& check) {
  if (proof.empty()) return refused("empty");
  if (proof.size() > k_max_dpop_proof_bytes) {
    return refused("longer than " + std::to_string(k_max_dpop_proof_bytes) + " bytes");
  }
  ParseLimits limits;
  limits.max_token_bytes = k_max_dpop_proof_bytes;
  auto jws = parse_compact(proof, limits);
  if (!jws) return refused(jws.error().message);
  const json& h = jws->header;
  const std::string* typ = string_member(h, "typ");
  if (!typ || *typ != k_typ) return refused("header typ must be \"dpop+jwt\"");
  const auto alg = alg_from_string(jws->alg);
  if (!alg) return refused("alg '" + jws->alg + "' is not accepted (one of the asymmetric JWS algorithms)");
  if (is_symmetric(*alg)) return refused("alg " + jws->alg + " is symmetric; a proof is signed with a private key");
  if (auto c = check_crit(h); !c) return refused(c.error().message);
  auto jwk_member = h.find("jwk");
  if (jwk_member == h.end() || !jwk_member->is_object()) return refused("header jwk (the public key) is missing");
  // A private key in the header is refused before it is parsed as one (RFC 9449 §4.3 check 7).
  for (const char* m : {"d", "p", "q", "dp", "dq", "qi", "oth", "k"}) {
    if (jwk_member->contains(m)) return refused(std::string("header jwk holds private or secret key material (\"") + m + "\")");
  }
  // Bounds on what one verification may cost: a JWK's RSA exponent is 65537 in practice, and
  // OpenSSL itself would take a 3,000-bit one with a 3,072-bit modulus.
  if (const std::string* e = string_member(*jwk_member, "e"); e && e->size() > 6) {
    return refused("header jwk: the RSA exponent is longer than 32 bits");
  }
  auto key = Jwk::from_json(*jwk_member);
  if (!key) return refused("header jwk: " + key.error().message);
  if (key->kty() == KeyType::rsa && key->bits() > k_max_dpop_rsa_bits) {
    return refused("header jwk: RSA keys of more than " + std::to_string(k_max_dpop_rsa_bits) + " bits are not accepted");
  }
  if (auto ok = check_key(*alg, *key, KeyRole::verify); !ok) return refused(ok.error().message);

  auto claims = parse_json_strict(jws->payload, "DPoP proof claims", JsonLimits{});
  if (!claims) return refused(claims.error().message);
  if (!claims->is_object()) return refused("the claims are not a JSON object");
  const json& c = *claims;
  const std::string* jti = string_member(c, "jti");
  if (!jti || jti->empty()) return refused("jti is missing");
  if (jti->size() > 256) return refused("jti is longer than 256 characters");
  const std::string* htm = string_member(c, "htm");
  if (!htm) return refused("htm is missing");
  if (*htm != check.htm) return refused("htm is " + *htm + ", the request is " + std::string(check.htm));
  const std::string* htu = string_member(c, "htu");
  if (!htu) return refused("htu is missing");
  const auto want = normalized_http_uri(check.htu);
  const auto got = normalized_http_uri(*htu);
  if (!got) return refused("htu is not an http(s) URI");
  if (!want || *got != *want) return refused("htu " + *got + " is not this endpoint's URI, " + want.value_or("?"));
  auto iat_member = c.find("iat");
  if (iat_member == c.end() || !iat_member->is_number()) return refused("iat (a NumericDate) is missing");
  const double iat_seconds = iat_member->get<double>();
  if (!std::isfinite(iat_seconds) || std::abs(iat_seconds) > 1e15) return refused("iat is out of range");
  const auto iat = static_cast<UnixTime>(std::floor(iat_seconds));
  if (iat < check.now - check.max_age) {
    return refused("issued " + std::to_string(check.now - iat) + " s ago; proofs are accepted for " +
                   std::to_string(check.max_age) + " s");
  }
  if (iat > check.now + check.max_skew) {
    return refused("issued " + std::to_string(iat - check.now) + " s in the future (check the clock)");
  }
  std::string nonce;
  if (auto n = c.find("nonce"); n != c.end()) {
    if (!n->is_string() || n->get_ref<const std::string&>().empty()) return refused("nonce is not a non-empty string");
    nonce = n->get<std::string>();
  }
  if (!check.access_token.empty()) {
    const std::string* ath = string_member(c, "ath");
    if (!ath) return refused("ath (the access token's hash) is missing");
    if (*ath != b64url_encode(sha256(check.access_token))) return refused("ath is not the hash of the access token");
  }

  auto verifier = SignatureVerifier::create(*alg, *key);
  if (!verifier) return refused(verifier.error().message);
  if (!verifier->verify(jws->signing_input(), jws->signature)) return refused("the signature does not verify with its jwk");
  auto jkt = key->thumbprint("sha256");
  if (!jkt) return refused(jkt.error().message);
  return DpopProof{std::move(*jkt), *jti, iat, *alg, std::move(nonce)};
}

Result<std::string> make_dpop_proof(const Jwk& key, Alg alg, const DpopClaims& claims) {
  if (is_symmetric(alg)) return fail(ErrorCode::usage, "a DPoP proof needs an asymmetric alg, not " + std::string(to_string(alg)));
  if (!key.has_private()) return fail(ErrorCode::usage, "a DPoP proof is signed with a private key; this one is public");
  json jwk = key.to_json(KeyPart::public_only);
  jwk.erase("key_ops");  // "sign" there would stop the verifier, which checks key_ops for "verify"
  json header{{"typ", k_typ}, {"jwk", std::move(jwk)}};
  json body{{"jti", claims.jti.empty() ? b64url_encode(random_bytes(16)) : claims.jti},
            {"htm", claims.htm},
            {"htu", claims.htu},
            {"iat", claims.iat}};
  if (!claims.access_token.empty()) body["ath"] = b64url_encode(sha256(claims.access_token));
  if (!claims.nonce.empty()) body["nonce"] = claims.nonce;
  return sign_compact(std::move(header), body.dump(), alg, key);
}

}  // namespace tokctl::jose
