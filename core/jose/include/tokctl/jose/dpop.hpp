#pragma once
// DPoP proofs (RFC 9449): checking one as an authorization or resource server, and making one as
// a client.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include <tokctl/jose/algorithm.hpp>
#include <tokctl/util/error.hpp>
#include <tokctl/util/time.hpp>

namespace tokctl::jose {

/// The most bytes a proof may have (it travels in one header field).
inline constexpr std::size_t k_max_dpop_proof_bytes = 8 * 1024;

/// What the request carrying a proof must look like (RFC 9449 §4.3).
struct DpopCheck {
  std::string_view htm;  ///< the request's method
  std::string_view htu;  ///< the request's target URI; query and fragment are ignored
  UnixTime now = 0;
  std::int64_t max_age = 60;  ///< iat at most this many seconds in the past
  std::int64_t max_skew = 5;  ///< and at most this many in the future (the client's clock)
  /// At a resource: the access token presented with the proof (its hash must be the proof's
  /// `ath`, §4.3 check 12). Empty at the token endpoint, where `ath` is not looked at.
  std::string_view access_token;
};

/// A proof that passed every check.
struct DpopProof {
  std::string jkt;  ///< RFC 7638 SHA-256 thumbprint of the proof's key: the cnf.jkt binding (§6.1)
  std::string jti;
  UnixTime iat = 0;
  Alg alg = Alg::ES256;
  std::string nonce;  ///< its `nonce` claim (a string), empty without one: the server checks it (§8)
};

/// Checks a proof (§4.3, in that order: the cheap checks before the signature): a compact JWS of
/// at most k_max_dpop_proof_bytes with strict JSON; typ "dpop+jwt"; an asymmetric alg tokctl
/// supports (never none or HS*); understood "crit"; a public `jwk` header (no private members)
/// strong enough for the alg (RSA of 2048-4096 bits with an exponent of at most 32 bits, matching
/// curve) that verifies the signature; a
/// string jti, htm equal to the method, htu equal to the URI (normalized_http_uri on both), a
/// numeric iat within [now - max_age, now + max_skew]; with an access token, ath the base64url
/// SHA-256 of it. Remembering the jti (replays) is the caller's job. Fails with
/// ErrorCode::invalid_token and OAuthCode::invalid_dpop_proof, the message saying which check.
Result<DpopProof> check_dpop_proof(std::string_view proof, const DpopCheck& check);

/// What a client puts in a proof.
struct DpopClaims {
  std::string htm = "POST";
  std::string htu;
  UnixTime iat = 0;
  std::string jti;           ///< empty: 16 random bytes, base64url
  std::string access_token;  ///< non-empty: adds ath (a request to a resource)
  std::string nonce;         ///< non-empty: the server's DPoP-Nonce
};

/// Makes a proof signed by `key` (which must pass check_key(sign) for `alg`, an asymmetric alg):
/// header typ dpop+jwt and the key's public JWK. Fails with ErrorCode::usage.
Result<std::string> make_dpop_proof(const Jwk& key, Alg alg, const DpopClaims& claims);

}  // namespace tokctl::jose
