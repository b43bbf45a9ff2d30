// Introspection (RFC 7662), phantom JWTs, revocation (RFC 7009) and the Split Token pattern.

#include <tokctl/tokens/service.hpp>

#include <algorithm>
#include <cctype>
#include <cmath>

#include <tokctl/jose/digest.hpp>
#include <tokctl/jose/json.hpp>
#include <tokctl/jose/jws.hpp>
#include <tokctl/util/base64.hpp>
#include <tokctl/util/time.hpp>

#include "service_impl.hpp"

namespace tokctl::tokens {
namespace {

using nlohmann::json;

bool looks_like_jwt(std::string_view t) { return jose::compact_segments(t) == 3; }

std::string sha256_b64(std::string_view data) { return b64_encode(jose::sha256(data)); }

}  // namespace

// The stored record of an opaque, wrapped, refresh or split token, when active.
static Result<std::optional<TokenRecord>> active_record(const TokenService::Impl& im, std::string_view token) {
  auto rec = find_token(*im.store, token);
  if (!rec) return std::unexpected(rec.error());
  if (!*rec) return std::optional<TokenRecord>();
  const TokenRecord& r = **rec;
  if (r.revoked || (r.exp != 0 && r.exp <= im.now())) return std::optional<TokenRecord>();
  return rec;
}

// Scopes still alive for a grant that began at `started`, and those whose TTL has passed; an alive
// scope with a TTL lowers `fresh_until` to the last second it stays alive.
static std::pair<std::vector<std::string>, std::vector<std::string>> live_scopes(const Policy& p, const std::string& scope,
                                                                                 UnixTime started, UnixTime now,
                                                                                 UnixTime& fresh_until) {
  std::vector<std::string> alive, expired;
  for (const auto& s : split_scopes(scope)) {
    const ScopeRule* rule = p.scope_rule(s);
    if (rule && rule->ttl && now - started > *rule->ttl) {
      expired.push_back(s);
      continue;
    }
    if (rule && rule->ttl) fresh_until = std::min(fresh_until, started + *rule->ttl);
    alive.push_back(s);
  }
  return {alive, expired};
}

// "at+jwt" / "application/at+jwt" (RFC 9068), case-insensitively.
static bool access_token_typ(const json& header) {
  std::string typ = jose::string_or(header, "typ");
  std::transform(typ.begin(), typ.end(), typ.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  if (typ.rfind("application/", 0) == 0) typ.erase(0, 12);
  return typ == "at+jwt";
}

// Registered claims keep their RFC 7662 / RFC 7519 types; a wrong-typed one (a numeric jti, an
// array sub, a string exp, ...) is dropped rather than trusted or allowed to crash a caller.
static bool well_typed(const std::string& name, const json& v) {
  if (name == "scope" || name == "client_id" || name == "sub" || name == "iss" || name == "jti" || name == "sid" ||
      name == "username" || name == "token_type") {
    return v.is_string();
  }
  if (name == "exp" || name == "iat" || name == "nbf") return v.is_number_integer() || v.is_number_unsigned();
  if (name == "aud") {
    return v.is_string() ||
           (v.is_array() && std::all_of(v.begin(), v.end(), [](const json& a) { return a.is_string(); }));
  }
  if (name == "act") return v.is_object();
  return true;
}

// RFC 7519 §2: a NumericDate may have a fraction, and verify accepts one. Made whole the safe way
// (exp and iat down, nbf up) so that a token's lifetime is never stretched: a fractional exp that
// was dropped as wrong-typed let phantom, exchanged and split tokens outlive their source.
static void whole_seconds(const std::string& name, json& v) {
  if (!v.is_number_float() || (name != "exp" && name != "iat" && name != "nbf")) return;
  const double d = v.get<double>();
  if (!std::isfinite(d) || d < -static_cast<double>(k_max_time) || d > static_cast<double>(k_max_time)) return;
  v = static_cast<std::int64_t>(name == "nbf" ? std::ceil(d) : std::floor(d));
}

// exp, iat or nbf of `claims` in whole seconds (see whole_seconds); nullopt when absent or not a number.
static std::optional<std::int64_t> numeric_date(const json& claims, const std::string& name) {
  auto it = claims.find(name);
  if (it == claims.end()) return std::nullopt;
  json v = *it;
  whole_seconds(name, v);
  if (!v.is_number_integer()) return std::nullopt;
  return v.get<std::int64_t>();
}

Result<std::optional<ActiveToken>> active_token(const TokenService::Impl& im, std::string_view token) {
  auto rec = active_record(im, token);
  if (!rec) return std::unexpected(rec.error());
  return active_token(im, token, *rec);
}

Result<std::optional<ActiveToken>> active_token(const TokenService::Impl& im, std::string_view token,
                                                const std::optional<TokenRecord>& row) {
  const UnixTime now = im.now();
  json raw;
  ActiveToken out;
  std::string grant_id;
  // When the grant began (scope TTLs count from there), from the same query as the token or JWT.
  std::optional<UnixTime> started;
  if (row) {
    const TokenRecord& r = *row;
    if (r.exp != 0) out.fresh_until = r.exp - 1;
    if (r.kind == "split") return std::optional<ActiveToken>();  // a client part is not a bearer token here
    raw = json::parse(r.claims.empty() ? "{}" : r.claims, nullptr, false);
    if (!raw.is_object()) raw = json::object();
    out.kind = r.kind;
    out.stored = true;
    grant_id = r.grant_id;  // its grant's revocation is folded into r.revoked
    if (!grant_id.empty() && r.grant_started != 0) started = r.grant_started;
  } else if (looks_like_jwt(token)) {
    jose::VerifyReport report;
    auto claims = im.our_jwt_claims(token, &report);
    if (!claims) return std::unexpected(claims.error());
    // Ours (signature verified with a keystore key) and every claim check passed.
    if (!*claims || !report.valid) return std::optional<ActiveToken>();
    raw = std::move(**claims);
    // A wrapped token's data lives in the store; unknown there means it is not ours (or revoked).
    if (!jose::string_member(raw, "sub") && !jose::string_member(raw, "client_id")) {
      return std::optional<ActiveToken>();
    }
    auto st = im.jwt_status(raw);
    if (!st) return std::unexpected(st.error());
    if (st->denied || st->grant_revoked) return std::optional<ActiveToken>();
    if (st->grant_found) {
      grant_id = jose::string_or(raw, "sid");
      started = st->grant_started;
    }
    // Only RFC 9068 access tokens (typ at+jwt) are access tokens; the issuer's other JWTs are ID tokens.
    out.kind = access_token_typ(report.header) ? "access" : "id";
  } else {
    return std::optional<ActiveToken>();
  }
  // Moved, not copied: `raw` is ours and done with after this.
  out.claims = json::object();
  if (raw.is_object()) {
    for (auto& [k, v] : raw.get_ref<json::object_t&>()) {
      whole_seconds(k, v);
      if (well_typed(k, v)) out.claims.get_ref<json::object_t&>().emplace(k, std::move(v));
    }
  }
  // Verification allows clock leeway; an active token has lifetime left.
  if (auto exp = jose::integer_member(out.claims, "exp")) {
    if (*exp <= now) return std::optional<ActiveToken>();
    out.exp = *exp;
    out.fresh_until = std::min(out.fresh_until, *exp - 1);
  }
  if (started) out.claims["sid"] = grant_id;
  else started = jose::integer_member(out.claims, "iat").value_or(now);
  if (const std::string* scope = jose::string_member(out.claims, "scope")) {
    auto [alive, expired] = live_scopes(im.policy, *scope, *started, now, out.fresh_until);
    out.claims["scope"] = join_scopes(alive);
    out.expired_scope = std::move(expired);
  }
  return std::optional<ActiveToken>(std::move(out));
}

// The RFC 7662 answer for `d` (what active_token() found); its claims are moved into it.
static json introspection_answer(std::optional<ActiveToken>& d) {
  if (!d) return json{{"active", false}};
  ActiveToken& t = *d;
  // An ID token is for the client, not a credential for a resource server: "active" would let an
  // RFC 7662 caller take it for an access token (it never gets a phantom JWT either).
  if (t.kind == "id") return json{{"active", false}};
  // RFC 7662 members only (well-typed: a wrong-typed claim is left out). The confirmation of a
  // bound token (RFC 7800) comes too: RFC 8705 §3.2, and RFC 9449 §6.2, where the type is DPoP.
  const auto cnf = t.claims.find("cnf");
  const bool bound = cnf != t.claims.end() && cnf->is_object();
  const bool dpop = bound && jose::string_member(*cnf, "jkt");
  json r{{"active", true}, {"token_type", t.kind == "refresh" ? "refresh_token" : dpop ? "DPoP" : "Bearer"}};
  for (const char* k : {"scope", "client_id", "sub", "aud", "iss", "exp", "iat", "nbf", "jti"}) {
    if (auto it = t.claims.find(k); it != t.claims.end()) r[k] = std::move(*it);
  }
  if (bound) r["cnf"] = std::move(*cnf);
  if (!t.expired_scope.empty()) r["expired_scope"] = join_scopes(t.expired_scope);
  return r;
}

Result<json> TokenService::introspect(std::string_view token) const {
  auto d = active_token(*m_impl, token);
  if (!d) return std::unexpected(d.error());
  return introspection_answer(*d);
}

Result<std::string> TokenService::introspect_json(std::string_view token) const {
  const Impl& im = *m_impl;
  auto row = active_record(im, token);  // every time: a revocation shows at once
  if (!row) return std::unexpected(row.error());
  if (*row) {
    if (auto kept = im.answers.get(**row, im.now())) return std::move(*kept);
  }
  auto d = active_token(im, token, *row);
  if (!d) return std::unexpected(d.error());
  const UnixTime fresh_until = *d ? (*d)->fresh_until : 0;
  std::string answer = introspection_answer(*d).dump(-1, ' ', false, json::error_handler_t::replace);
  // Only a stored token's answer: a JWT's would also need its deny-list entry and grant checked.
  if (*row && *d) im.answers.put(**row, fresh_until, answer);
  return answer;
}

AnswerCache::Shard& AnswerCache::shard(const std::string& key) const {
  // Store keys begin with their issue time: the last byte is the random one.
  const unsigned char last = key.empty() ? 0 : static_cast<unsigned char>(key.back());
  return m_shards[last % k_shards];
}

std::optional<std::string> AnswerCache::get(const TokenRecord& row, UnixTime now) const {
  Shard& s = shard(row.hash);
  std::lock_guard lock(s.mu);
  const auto it = s.rows.find(row.hash);
  if (it == s.rows.end()) return std::nullopt;
  const Entry& e = it->second;
  if (now > e.fresh_until || e.kind != row.kind || e.grant_id != row.grant_id ||
      e.grant_started != row.grant_started || e.claims != row.claims)
    return std::nullopt;
  return e.answer;
}

void AnswerCache::put(const TokenRecord& row, UnixTime fresh_until, std::string answer) const {
  Shard& s = shard(row.hash);
  std::lock_guard lock(s.mu);
  if (s.rows.size() >= k_rows_per_shard && !s.rows.contains(row.hash)) s.rows.clear();
  s.rows.insert_or_assign(row.hash, Entry{row.kind, row.claims, row.grant_id, row.grant_started, fresh_until,
                                          std::move(answer)});
}

Result<std::string> TokenService::sign_jwt(const json& claims, const char* typ) const {
  auto ring = m_impl->ring();
  if (!ring) return std::unexpected(ring.error());
  return Impl::sign(**ring, claims, typ);
}

Result<std::string> TokenService::phantom_jwt(std::string_view token, PhantomFacts* facts) const {
  const Impl& im = *m_impl;
  auto d = active_token(im, token);
  if (!d) return std::unexpected(d.error());
  if (!*d) return fail(ErrorCode::invalid_token, "the token is not active (unknown, expired or revoked)");
  ActiveToken& t = **d;
  // A phantom JWT stands in for an access token at the API: never for a refresh or ID token.
  if (t.kind != "access") {
    return fail(ErrorCode::invalid_token,
                "phantom JWTs are only minted for access tokens, not " +
                    std::string(t.kind == "refresh" ? "refresh tokens"
                                                    : "ID tokens or other JWTs (an access token JWT has typ at+jwt)"));
  }
  json claims = std::move(t.claims);
  if (const std::string* scope = jose::string_member(claims, "scope"); scope && scope->empty()) claims.erase("scope");
  // It lives no longer than its source, nor than tokens.max_lifetime from now.
  const UnixTime now = im.now();
  UnixTime exp = now + im.policy.max_lifetime;
  if (t.exp != 0) exp = std::min(exp, t.exp);
  claims["iat"] = now;
  claims["exp"] = exp;
  if (facts) {
    facts->exp = exp;
    const json* cnf = claims.contains("cnf") ? &claims["cnf"] : nullptr;
    const std::string* x5t = cnf ? jose::string_member(*cnf, "x5t#S256") : nullptr;
    facts->cnf_x5t = x5t ? *x5t : std::string();
    const std::string* jkt = cnf ? jose::string_member(*cnf, "jkt") : nullptr;
    facts->cnf_jkt = jkt ? *jkt : std::string();
  }
  claims.erase("nbf");
  // Revoking the source revokes the phantom: it carries the source's jti (revoke deny-lists it)
  // and grant (sid). Without a jti of its own, it gets a fresh one (so it can be revoked itself).
  if (!jose::string_member(claims, "jti")) claims["jti"] = random_token(16);
  auto ring = im.ring();
  if (!ring) return std::unexpected(ring.error());
  return TokenService::Impl::sign(**ring, claims, "at+jwt");
}

Result<int> TokenService::revoke(std::string_view token, bool whole_grant) const {
  const Impl& im = *m_impl;
  auto rec = find_token(*im.store, token);
  if (!rec) return std::unexpected(rec.error());
  if (*rec) {
    // Deny its jti too: a JWE carries a JWT inside (verify decrypts it), and phantom JWTs of the
    // token carry its jti.
    // The row is what counts (revoke_token/revoke_grant below), so no grant is named here.
    if (!(*rec)->jti.empty()) {
      if (auto d = im.store->deny_jti((*rec)->jti, (*rec)->exp, {}); !d) return std::unexpected(d.error());
    }
    if (whole_grant && !(*rec)->grant_id.empty()) return im.store->revoke_grant((*rec)->grant_id);
    return im.store->revoke_token((*rec)->hash);
  }
  if (!looks_like_jwt(token)) return 0;  // unknown: not an error (RFC 7009 §2.2)
  // A JWT: only ours (signature verified with a keystore key) goes on the deny-list. A forged
  // one, an unknown crit, an alg not allowed or a malformed header change nothing.
  auto claims = im.our_jwt_claims(token);
  if (!claims) return std::unexpected(claims.error());
  if (!*claims) return 0;
  const json& c = **claims;
  int changed = 0;
  const std::string* sid = jose::string_member(c, "sid");
  if (const std::string* jti = jose::string_member(c, "jti")) {
    // Denied until it expires; a token without a usable exp for ever (0). Counted only when it was
    // still valid (not denied before, grant not revoked); it then leaves its grant's JWT count.
    UnixTime exp = jose::integer_member(c, "exp").value_or(0);
    auto d = im.store->deny_jti(*jti, exp, sid ? std::string_view(*sid) : std::string_view());
    if (!d) return std::unexpected(d.error());
    changed = *d ? 1 : 0;
  }
  if (whole_grant && sid) {
    auto n = im.store->revoke_grant(*sid);
    if (!n) return std::unexpected(n.error());
    changed += *n;
  }
  return changed;
}

Result<int> TokenService::revoke_client(std::string_view client_id) const {
  const Impl& im = *m_impl;
  auto n = im.store->revoke_client(client_id);
  if (!n) return n;
  // Tokens issued without --client-id carry client_id "tokctl" but belong to no client (stored "").
  if (client_id == k_cli_client_id && !im.policy.client(client_id)) {
    auto m = im.store->revoke_client("");
    if (!m) return m;
    *n += *m;
  }
  return n;
}

Result<int> TokenService::revoke_subject(std::string_view sub) const {
  const Impl& im = *m_impl;
  auto n = im.store->revoke_subject(sub);
  if (!n) return n;
  // The subject's pairwise subs under every sector of the policy (tokens issued to those clients
  // carry them, and so do grants made by exchanging such a token).
  auto ppids = im.known_ppids(std::string(sub));
  if (!ppids) return std::unexpected(ppids.error());
  for (const auto& pp : *ppids) {
    auto m = im.store->revoke_subject(pp);
    if (!m) return m;
    *n += *m;
  }
  return n;
}

Result<SplitResult> TokenService::split(std::string_view jwt, bool store) const {
  const Impl& im = *m_impl;
  jose::VerifyReport report;
  auto claims = im.our_jwt_claims(jwt, &report);
  if (!claims) return std::unexpected(claims.error());
  if (!*claims || !report.valid) {
    // Decided on the typed verdict above; the first problem only explains it.
    std::string why = report.problems.empty() ? "invalid" : std::string(jose::to_string(report.problems.front().code)) + ": " + report.problems.front().message;
    return fail(ErrorCode::invalid_token, "only a valid JWT from this keystore can be split (" + why + ")");
  }
  auto revoked = im.jwt_revoked(**claims);
  if (!revoked) return std::unexpected(revoked.error());
  if (*revoked) return fail(ErrorCode::invalid_token, "only a valid JWT from this keystore can be split (revoked)");
  auto last = jwt.rfind('.');
  SplitResult r;
  r.client_token = std::string(jwt.substr(last + 1));
  r.gateway_token = std::string(jwt.substr(0, last));
  r.gateway_key = sha256_b64(r.client_token);
  if (!store) return r;
  // Splitting a JWT again gives the same two parts: its client part (the signature) is already
  // stored, so the stored record is the answer (a second insert would collide on the key).
  auto stored_split = [&]() -> Result<bool> {
    auto existing = find_token(*im.store, r.client_token);
    if (!existing) return std::unexpected(existing.error());
    if (!*existing) return false;
    const TokenRecord& e = **existing;
    if (e.kind != "split" || e.data != r.gateway_token) {
      return fail(ErrorCode::invalid_token, "this JWT's signature is already stored as another token; it cannot be split");
    }
    if (e.revoked) return fail(ErrorCode::invalid_token, "this JWT was split before and its client part has been revoked");
    if (e.exp != 0 && e.exp <= im.now()) return fail(ErrorCode::invalid_token, "this JWT was split before and its client part has expired");
    return true;
  };
  if (auto again = stored_split(); !again) return std::unexpected(again.error());
  else if (*again) return r;
  const json& c = **claims;
  TokenRecord rec;
  rec.hash = token_hash(r.client_token);
  rec.kind = "split";
  rec.format = "jwt";
  // Wrong-typed claims are left empty (never trusted, never a crash).
  rec.jti = jose::string_or(c, "jti");
  rec.sub = jose::string_or(c, "sub");
  rec.client_id = jose::string_or(c, "client_id");
  // The gateway part lives as long as the JWT, and never longer than tokens.max_lifetime.
  rec.exp = std::min(numeric_date(c, "exp").value_or(im.now() + im.policy.max_lifetime),
                     im.now() + im.policy.max_lifetime);
  rec.iat = im.now();
  rec.data = r.gateway_token;
  rec.claims = c.dump();
  if (auto s = im.store->put(std::nullopt, std::span<const TokenRecord>(&rec, 1)); !s) {
    // Another process may have split the same JWT between the look-up and this write.
    if (auto again = stored_split(); again && *again) return r;
    return std::unexpected(s.error());
  }
  return r;
}

Result<std::string> TokenService::join(std::string_view client_token) const {
  const Impl& im = *m_impl;
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
