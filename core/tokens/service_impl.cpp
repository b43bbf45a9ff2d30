// The token service's shared helpers (TokenService::Impl): signing with the key ring, keystore verification
// (the one "is this JWT ours" verdict), JWT revocation look-ups and pairwise subjects.

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <unistd.h>

#include <openssl/rand.h>

#include <tokctl/jose/digest.hpp>
#include <tokctl/jose/json.hpp>
#include <tokctl/jose/jws.hpp>
#include <tokctl/util/base64.hpp>
#include <tokctl/util/io.hpp>

#include "service_impl.hpp"

namespace tokctl::tokens {

using nlohmann::json;

// ---- Impl helpers -------------------------------------------------------------------------------

namespace {

// A key ring or signing key failure, told apart from a store failure (the server's 503 says which,
// and only the store's count as store errors); its exit code stays what it was.
std::unexpected<Error> keys_unavailable(Error e) {
  e.detail = ErrorDetail::signing_keys;
  return std::unexpected(std::move(e));
}

}  // namespace

Result<std::shared_ptr<const keys::KeyRing>> TokenService::Impl::ring() const {
  auto r = keys->current();
  if (!r) return keys_unavailable(std::move(r.error()));
  return r;
}

Result<const jose::Signer*> TokenService::Impl::signer(const keys::KeyRing& ring) {
  if (!ring.signer) return keys_unavailable(ring.signer.error());
  return &*ring.signer;
}

Result<std::string> TokenService::Impl::sign(const keys::KeyRing& ring, const json& claims, const char* typ) {
  auto s = signer(ring);
  if (!s) return std::unexpected(s.error());
  json header{{"kid", (*s)->key().kid()}, {"typ", typ}};
  return jose::sign_compact(header, claims.dump(), **s);
}

Result<jose::VerifyReport> TokenService::Impl::verify_jwt(std::string_view jwt) const {
  auto r = ring();
  if (!r) return std::unexpected(r.error());
  if (!(*r)->verifier) return keys_unavailable((*r)->verifier.error());
  return (*r)->verifier->verify(jwt);
}

Result<std::optional<json>> TokenService::Impl::our_jwt_claims(std::string_view jwt, jose::VerifyReport* out) const {
  auto report = verify_jwt(jwt);
  if (!report) return std::unexpected(report.error());
  std::optional<json> claims;
  // The typed verdict, never problem codes: alg policy, crit, key selection and signature passed.
  if (report->signature_verified && report->payload.is_object()) claims = report->payload;
  if (out) *out = std::move(*report);
  return claims;
}

Result<JwtStatus> TokenService::Impl::jwt_status(const json& claims) const {
  const std::string* jti = jose::string_member(claims, "jti");
  const std::string* sid = jose::string_member(claims, "sid");
  if (!jti && !sid) return JwtStatus{};
  return store->jwt_status(jti ? *jti : std::string(), sid ? *sid : std::string());
}

Result<bool> TokenService::Impl::jwt_revoked(const json& claims) const {
  auto st = jwt_status(claims);
  if (!st) return std::unexpected(st.error());
  return st->denied || st->grant_revoked;
}

Result<const std::string*> TokenService::Impl::pairwise_secret(keys::CreateSecret create) const {
  std::lock_guard lock(ppid_mu);
  // Set once and never changed after: the pointer stays good, and no token copies the secret.
  if (ppid_secret) return &*ppid_secret;
  // Created once under the keystore lock and recorded in keystore.json; once recorded, a missing
  // or damaged file is ErrorCode::keystore, never a new secret.
  auto s = keys->keystore().pairwise_secret(create);
  if (!s) return std::unexpected(s.error());
  if (!*s) return nullptr;
  ppid_secret = std::move(*s);
  return &*ppid_secret;
}

Result<std::string> TokenService::Impl::ppid(const std::string& sector, const std::string& sub) const {
  auto secret = pairwise_secret(keys::CreateSecret::yes);
  if (!secret) return std::unexpected(secret.error());
  if (*secret == nullptr) return fail(ErrorCode::keystore, "internal: no pairwise-subject secret was made");
  // sub = base64url(HMAC-SHA256(secret, sector || 0x00 || sub)): the NUL keeps (a, bc) apart from (ab, c).
  std::string msg = sector + std::string(1, '\0') + sub;
  return b64url_encode(jose::hmac_sha256(**secret, msg));
}

Result<std::vector<std::string>> TokenService::Impl::known_ppids(const std::string& sub) const {
  std::vector<std::string> out;
  if (std::none_of(policy.clients.begin(), policy.clients.end(), [](const auto& c) { return !c.second.sector.empty(); })) {
    return out;
  }
  // No secret (and none recorded): no pairwise subject was ever issued from this keystore.
  auto secret = pairwise_secret(keys::CreateSecret::no);
  if (!secret) return std::unexpected(secret.error());
  if (*secret == nullptr) return out;
  for (const auto& [id, client] : policy.clients) {
    if (client.sector.empty()) continue;
    auto pp = ppid(client.sector, sub);
    if (!pp) return std::unexpected(pp.error());
    if (std::find(out.begin(), out.end(), *pp) == out.end()) out.push_back(std::move(*pp));
  }
  return out;
}

}  // namespace tokctl::tokens
