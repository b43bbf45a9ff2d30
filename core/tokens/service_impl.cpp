// The token service's shared helpers (TokenService::Impl): the signer, keystore verification
// (the one "is this JWT ours" verdict), JWT revocation look-ups and pairwise subjects.

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include <tokctl/jose/jws.hpp>
#include <tokctl/util/base64.hpp>
#include <tokctl/util/io.hpp>

#include "service_impl.hpp"

namespace tokctl::tokens {

using nlohmann::json;

// ---- Impl helpers -------------------------------------------------------------------------------

Result<void> TokenService::Impl::load_signer() {
  if (signer) return {};
  auto k = keystore.signing_key("", "", passphrase);
  if (!k) return std::unexpected(k.error());
  auto alg = jose::alg_from_string(k->alg());
  if (!alg) return fail(ErrorCode::keystore, "the active key's alg '" + k->alg() + "' cannot sign");
  signer = std::move(*k);
  signer_alg = *alg;
  return {};
}

Result<std::string> TokenService::Impl::sign(const json& claims, const char* typ) {
  if (auto r = load_signer(); !r) return std::unexpected(r.error());
  if (!signer_ctx) {
    auto sc = jose::Signer::create(*signer_alg, *signer);
    if (!sc) return std::unexpected(sc.error());
    signer_ctx.emplace(std::move(*sc));
  }
  json header{{"kid", signer->kid()}, {"typ", typ}};
  return jose::sign_compact(header, claims.dump(), *signer_ctx);
}

Result<jose::VerifyReport> TokenService::Impl::verify_jwt(std::string_view jwt) {
  if (!verifier) {
    auto keys = keystore.verification_keys(passphrase);
    if (!keys) return std::unexpected(keys.error());
    auto v = jose::TokenVerifier::create(std::move(*keys), jose::KeySource::set, jose::VerifyOptions{}, *clock);
    if (!v) return std::unexpected(v.error());
    verifier.emplace(std::move(*v));
  }
  return verifier->verify(jwt);
}

Result<std::optional<json>> TokenService::Impl::our_jwt_claims(std::string_view jwt, jose::VerifyReport* out) {
  auto report = verify_jwt(jwt);
  if (!report) return std::unexpected(report.error());
  std::optional<json> claims;
  // The typed verdict, never problem codes: alg policy, crit, key selection and signature passed.
  if (report->signature_verified && report->payload.is_object()) claims = report->payload;
  if (out) *out = std::move(*report);
  return claims;
}

Result<bool> TokenService::Impl::jwt_revoked(const json& claims) {
  if (auto jti = claims.find("jti"); jti != claims.end() && jti->is_string()) {
    auto d = store->is_denied(jti->get<std::string>());
    if (!d) return std::unexpected(d.error());
    if (*d) return true;
  }
  if (auto sid = claims.find("sid"); sid != claims.end() && sid->is_string()) {
    auto g = store->grant(sid->get<std::string>());
    if (!g) return std::unexpected(g.error());
    if (*g && (*g)->revoked) return true;
  }
  return false;
}

Result<std::string> TokenService::Impl::ppid(const std::string& sector, const std::string& sub) {
  if (ppid_secret.empty()) {
    // One random secret per keystore, created once; a concurrent creator's file wins (link is atomic).
    std::string path = keystore.dir() + "/ppid.secret";
    auto existing = read_input(path);
    if (!existing) {
      std::string secret(32, '\0');
      RAND_bytes(reinterpret_cast<unsigned char*>(secret.data()), 32);
      std::string tmp = path + ".new." + std::to_string(::getpid());
      if (auto w = write_file_atomic(tmp, secret, 0600); !w) return std::unexpected(w.error());
      if (::link(tmp.c_str(), path.c_str()) != 0 && errno != EEXIST) {
        std::string msg = "cannot create '" + path + "': " + std::strerror(errno);
        ::unlink(tmp.c_str());
        return fail(ErrorCode::keystore, msg);
      }
      ::unlink(tmp.c_str());
      existing = read_input(path);
      if (!existing) return fail(ErrorCode::keystore, existing.error().message);
    }
    ppid_secret = std::move(*existing);
  }
  // sub = base64url(HMAC-SHA256(secret, sector || 0x00 || sub)): the NUL keeps (a, bc) apart from (ab, c).
  std::string msg = sector + std::string(1, '\0') + sub;
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (!HMAC(EVP_sha256(), ppid_secret.data(), static_cast<int>(ppid_secret.size()),
            reinterpret_cast<const unsigned char*>(msg.data()), msg.size(), mac, &len)) {
    return fail(ErrorCode::keystore, "PPID HMAC failed");
  }
  return b64url_encode(std::string_view(reinterpret_cast<char*>(mac), len));
}

Result<std::vector<std::string>> TokenService::Impl::known_ppids(const std::string& sub) {
  std::vector<std::string> out;
  if (ppid_secret.empty()) {
    // No secret yet: no pairwise subject was ever issued from this keystore (do not create one).
    const std::string path = keystore.dir() + "/ppid.secret";
    if (::access(path.c_str(), F_OK) != 0 && errno == ENOENT) return out;
  }
  for (const auto& [id, client] : policy.clients) {
    if (client.sector.empty()) continue;
    auto pp = ppid(client.sector, sub);
    if (!pp) return std::unexpected(pp.error());
    if (std::find(out.begin(), out.end(), *pp) == out.end()) out.push_back(std::move(*pp));
  }
  return out;
}

}  // namespace tokctl::tokens
