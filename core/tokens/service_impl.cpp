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

Result<std::shared_ptr<const keys::KeyRing>> TokenService::Impl::ring() const { return keys->current(); }

Result<std::string> TokenService::Impl::sign(const keys::KeyRing& ring, const json& claims, const char* typ) {
  if (!ring.signer) return std::unexpected(ring.signer.error());
  json header{{"kid", ring.signer->key().kid()}, {"typ", typ}};
  return jose::sign_compact(header, claims.dump(), *ring.signer);
}

Result<jose::VerifyReport> TokenService::Impl::verify_jwt(std::string_view jwt) const {
  auto r = ring();
  if (!r) return std::unexpected(r.error());
  if (!(*r)->verifier) return std::unexpected((*r)->verifier.error());
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

Result<std::string> load_ppid_secret(const std::string& keystore_dir, bool create) {
  // One random secret per keystore, created once; a concurrent creator's file wins (link is atomic).
  const std::string path = keystore_dir + "/ppid.secret";
  if (!create && ::access(path.c_str(), F_OK) != 0 && errno == ENOENT) return std::string();
  auto existing = read_input(path);
  if (!existing && create) {
    std::string secret(32, '\0');
    if (RAND_bytes(reinterpret_cast<unsigned char*>(secret.data()), 32) != 1) {
      return fail(ErrorCode::keystore, "cannot create '" + path + "': no randomness");
    }
    std::string tmp = path + ".new." + std::to_string(::getpid());
    if (auto w = write_file_atomic(tmp, secret, 0600); !w) return std::unexpected(w.error());
    if (::link(tmp.c_str(), path.c_str()) != 0 && errno != EEXIST) {
      std::string msg = "cannot create '" + path + "': " + std::strerror(errno);
      ::unlink(tmp.c_str());
      return fail(ErrorCode::keystore, msg);
    }
    ::unlink(tmp.c_str());
    existing = read_input(path);
  }
  if (!existing) return fail(ErrorCode::keystore, existing.error().message, existing.error().hint);
  return std::move(*existing);
}

Result<std::string> TokenService::Impl::ppid(const std::string& sector, const std::string& sub) const {
  if (ppid_secret.empty()) return fail(ErrorCode::keystore, "internal: no pairwise-subject secret was loaded");
  // sub = base64url(HMAC-SHA256(secret, sector || 0x00 || sub)): the NUL keeps (a, bc) apart from (ab, c).
  std::string msg = sector + std::string(1, '\0') + sub;
  return b64url_encode(jose::hmac_sha256(ppid_secret, msg));
}

Result<std::vector<std::string>> TokenService::Impl::known_ppids(const std::string& sub) const {
  std::vector<std::string> out;
  // No secret: no pairwise subject was ever issued from this keystore.
  if (ppid_secret.empty()) return out;
  for (const auto& [id, client] : policy.clients) {
    if (client.sector.empty()) continue;
    auto pp = ppid(client.sector, sub);
    if (!pp) return std::unexpected(pp.error());
    if (std::find(out.begin(), out.end(), *pp) == out.end()) out.push_back(std::move(*pp));
  }
  return out;
}

}  // namespace tokctl::tokens
