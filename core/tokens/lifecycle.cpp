// Introspection (RFC 7662), phantom JWTs, revocation (RFC 7009) and the Split Token pattern.

#include <tokctl/tokens/service.hpp>

#include <algorithm>

#include <openssl/evp.h>

#include <tokctl/util/base64.hpp>

#include "service_impl.hpp"

namespace tokctl::tokens {
namespace {

using nlohmann::json;

bool looks_like_jwt(std::string_view t) { return std::count(t.begin(), t.end(), '.') == 2; }

std::string sha256_b64(std::string_view data) {
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(data.data(), data.size(), out, &len, EVP_sha256(), nullptr);
  return b64_encode(std::string_view(reinterpret_cast<char*>(out), len));
}

}  // namespace

// The stored record of an opaque, wrapped, refresh or split token, when active.
static Result<std::optional<TokenRecord>> active_record(TokenService::Impl& im, std::string_view token) {
  auto rec = im.store->find(token_hash(token));
  if (!rec) return std::unexpected(rec.error());
  if (!*rec) return std::optional<TokenRecord>();
  const TokenRecord& r = **rec;
  if (r.revoked || (r.exp != 0 && r.exp <= im.now())) return std::optional<TokenRecord>();
  return rec;
}

// Scopes still alive for a grant that began at `started`, and those whose TTL has passed.
static std::pair<std::vector<std::string>, std::vector<std::string>> live_scopes(const Policy& p, const std::string& scope,
                                                                                 UnixTime started, UnixTime now) {
  std::vector<std::string> alive, expired;
  for (const auto& s : split_scopes(scope)) {
    const ScopeRule* rule = p.scope_rule(s);
    (rule && rule->ttl && now - started > *rule->ttl ? expired : alive).push_back(s);
  }
  return {alive, expired};
}

// Introspection data for a token, or nullopt when inactive. For a JWT, the verified claims.
static Result<std::optional<json>> token_data(TokenService::Impl& im, std::string_view token) {
  const UnixTime now = im.now();
  auto rec = active_record(im, token);
  if (!rec) return std::unexpected(rec.error());
  json claims;
  std::string token_type = "Bearer";
  if (*rec) {
    const TokenRecord& r = **rec;
    if (r.kind == "split") return std::optional<json>();  // a client part is not a bearer token here
    claims = json::parse(r.claims.empty() ? "{}" : r.claims, nullptr, false);
    if (!claims.is_object()) claims = json::object();
    if (r.kind == "refresh") token_type = "refresh_token";
  } else if (looks_like_jwt(token)) {
    auto report = im.verify_jwt(token);
    if (!report) return std::unexpected(report.error());
    if (!report->valid) return std::optional<json>();
    claims = report->payload;
    // A wrapped token's data lives in the store; unknown there means it is not ours (or revoked).
    if (!claims.contains("sub") && !claims.contains("client_id")) return std::optional<json>();
    auto revoked = im.jwt_revoked(claims);
    if (!revoked) return std::unexpected(revoked.error());
    if (*revoked) return std::optional<json>();
  } else {
    return std::optional<json>();
  }
  // Scope TTLs count from the grant's start.
  std::string sid = claims.value("sid", std::string());
  UnixTime started = claims.value("iat", now);
  if (!sid.empty()) {
    auto g = im.store->grant(sid);
    if (!g) return std::unexpected(g.error());
    if (*g) {
      if ((*g)->revoked) return std::optional<json>();
      started = (*g)->started;
    }
  }
  json out{{"active", true}, {"token_type", token_type}};
  for (const char* k : {"scope", "client_id", "sub", "aud", "iss", "exp", "iat", "nbf", "jti"}) {
    if (claims.contains(k)) out[k] = claims[k];
  }
  if (claims.contains("scope") && claims["scope"].is_string()) {
    auto [alive, expired] = live_scopes(im.policy, claims["scope"].get<std::string>(), started, now);
    out["scope"] = join_scopes(alive);
    if (!expired.empty()) out["expired_scope"] = join_scopes(expired);
  }
  // Other claims (policy claims, act, ...) travel too, for phantom JWTs.
  for (const auto& [k, v] : claims.items())
    if (!out.contains(k) && k != "sid") out[k] = v;
  return std::optional<json>(out);
}

Result<json> TokenService::introspect(std::string_view token) {
  auto d = token_data(*m_impl, token);
  if (!d) return std::unexpected(d.error());
  if (!*d) return json{{"active", false}};
  json out = std::move(**d);
  // RFC 7662 members only; the rest stays for the phantom JWT.
  json r = json::object();
  for (const char* k : {"active", "scope", "expired_scope", "client_id", "sub", "aud", "iss", "exp", "iat", "nbf",
                        "jti", "token_type"}) {
    if (out.contains(k)) r[k] = out[k];
  }
  return r;
}

Result<std::string> TokenService::phantom_jwt(std::string_view token) {
  auto d = token_data(*m_impl, token);
  if (!d) return std::unexpected(d.error());
  if (!*d) return fail(ErrorCode::invalid_token, "the token is not active (unknown, expired or revoked)");
  json claims = std::move(**d);
  claims.erase("active");
  claims.erase("token_type");
  claims.erase("expired_scope");
  if (claims.contains("scope") && claims["scope"].is_string() && claims["scope"].get<std::string>().empty()) {
    claims.erase("scope");
  }
  return m_impl->sign(claims, "at+jwt");
}

Result<int> TokenService::revoke(std::string_view token, bool whole_grant) {
  Impl& im = *m_impl;
  auto rec = im.store->find(token_hash(token));
  if (!rec) return std::unexpected(rec.error());
  if (*rec) {
    // A JWE carries a JWT inside: deny its jti too, so verify (after decrypting) refuses it.
    if ((*rec)->format == "jwe" && !(*rec)->jti.empty()) {
      if (auto d = im.store->deny_jti((*rec)->jti, (*rec)->exp); !d) return std::unexpected(d.error());
    }
    if (whole_grant && !(*rec)->grant_id.empty()) return im.store->revoke_grant((*rec)->grant_id);
    return im.store->revoke_token((*rec)->hash);
  }
  if (!looks_like_jwt(token)) return 0;  // unknown: not an error (RFC 7009 §2.2)
  // A JWT: only ours (signature verifies against the keystore) goes on the deny-list.
  auto report = im.verify_jwt(token);
  if (!report) return std::unexpected(report.error());
  if (!report->signature_verified || !report->payload.is_object()) return 0;
  const json& c = report->payload;
  int changed = 0;
  if (auto jti = c.find("jti"); jti != c.end() && jti->is_string()) {
    UnixTime exp = c.contains("exp") && c["exp"].is_number() ? c["exp"].get<UnixTime>() : 0;
    if (auto d = im.store->deny_jti(jti->get<std::string>(), exp); !d) return std::unexpected(d.error());
    changed = 1;
  }
  if (whole_grant) {
    if (auto sid = c.find("sid"); sid != c.end() && sid->is_string()) {
      auto n = im.store->revoke_grant(sid->get<std::string>());
      if (!n) return std::unexpected(n.error());
      changed += *n;
    }
  }
  return changed;
}

Result<int> TokenService::revoke_client(std::string_view client_id) { return m_impl->store->revoke_client(client_id); }
Result<int> TokenService::revoke_subject(std::string_view sub) { return m_impl->store->revoke_subject(sub); }

Result<SplitResult> TokenService::split(std::string_view jwt, bool store) {
  Impl& im = *m_impl;
  auto report = im.verify_jwt(jwt);
  if (!report) return std::unexpected(report.error());
  if (!report->valid) {
    std::string why = report->problems.empty() ? "invalid" : report->problems.front().code + ": " + report->problems.front().message;
    return fail(ErrorCode::invalid_token, "only a valid JWT from this keystore can be split (" + why + ")");
  }
  auto last = jwt.rfind('.');
  SplitResult r;
  r.client_token = std::string(jwt.substr(last + 1));
  r.gateway_token = std::string(jwt.substr(0, last));
  r.gateway_key = sha256_b64(r.client_token);
  if (!store) return r;
  const json& c = report->payload;
  TokenRecord rec;
  rec.hash = token_hash(r.client_token);
  rec.kind = "split";
  rec.format = "jwt";
  rec.jti = c.value("jti", std::string());
  rec.sub = c.contains("sub") && c["sub"].is_string() ? c["sub"].get<std::string>() : "";
  rec.client_id = c.value("client_id", std::string());
  rec.exp = c.contains("exp") && c["exp"].is_number() ? c["exp"].get<UnixTime>() : 0;
  rec.iat = im.now();
  rec.data = r.gateway_token;
  rec.claims = c.dump();
  if (auto s = im.store->put(std::nullopt, std::span<const TokenRecord>(&rec, 1)); !s) return std::unexpected(s.error());
  return r;
}

Result<std::string> TokenService::join(std::string_view client_token) {
  Impl& im = *m_impl;
  auto rec = active_record(im, client_token);
  if (!rec) return std::unexpected(rec.error());
  if (!*rec || (*rec)->kind != "split") {
    return fail(ErrorCode::invalid_token, "unknown, expired or revoked client token");
  }
  std::string jwt = (*rec)->data + "." + std::string(client_token);
  // The JWT itself may have been revoked (jti deny-list / grant) after it was split.
  json claims = json::parse((*rec)->claims, nullptr, false);
  if (claims.is_object()) {
    auto revoked = im.jwt_revoked(claims);
    if (!revoked) return std::unexpected(revoked.error());
    if (*revoked) return fail(ErrorCode::invalid_token, "the token was revoked");
  }
  return jwt;
}

}  // namespace tokctl::tokens
