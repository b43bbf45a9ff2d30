#include <tokctl/tokens/service.hpp>

#include <algorithm>
#include <unordered_set>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <fcntl.h>
#include <unistd.h>

#include <openssl/rand.h>

#include <tokctl/jose/digest.hpp>
#include <tokctl/jose/json.hpp>
#include <tokctl/jose/jwe.hpp>
#include <tokctl/jose/jws.hpp>
#include <tokctl/util/base64.hpp>
#include <tokctl/util/io.hpp>

#include "service_impl.hpp"

namespace tokctl::tokens {
namespace {

using nlohmann::json;

// The registered and RFC 9068 claims the issuer sets itself; extra claims may not override them.
// cnf (RFC 7800, RFC 8705 §3.1) is a binding only the issuer makes: never configured or given.
constexpr const char* k_reserved_claims[] = {"iss", "sub", "aud", "exp", "iat", "nbf", "jti", "client_id",
                                             "scope", "sid", "cnf"};

bool reserved(const std::string& name) {
  return std::any_of(std::begin(k_reserved_claims), std::end(k_reserved_claims),
                     [&](const char* r) { return name == r; });
}

std::string half_hash(std::string_view token, jose::Alg alg) {
  // OIDC Core §3.1.3.6: the left half of the hash the JWS alg uses (EdDSA: SHA-512).
  const std::string name = jose::to_string(alg);
  const jose::Digest d = name.ends_with("384")                          ? jose::Digest::sha384
                         : (name.ends_with("512") || name == "EdDSA") ? jose::Digest::sha512
                                                                        : jose::Digest::sha256;
  const std::string h = jose::digest(d, token);
  return b64url_encode(std::string_view(h).substr(0, h.size() / 2));
}

// A grant id: the grant's start (seconds, 8 hex digits: sortable until 2106), where the clock was
// within that second (subsecond_tick, 4 hex digits), and 72 random bits. Ids in time order make the
// store's inserts land at the end of its grant indexes instead of on a random page each (at 10^6
// grants, the difference between a cached page and a disk read; within one second, between one
// page written per group commit and one per grant). The start it shows is no secret: the grant's
// first token carries it as iat.
std::string new_grant_id(UnixTime started) {
  static constexpr char k_hex[] = "0123456789abcdef";
  const auto t = static_cast<std::uint32_t>(std::clamp<UnixTime>(started, 0, 0xffffffff));
  const std::uint16_t tick = subsecond_tick();
  std::string id(12, '0');
  for (int i = 0; i < 8; ++i) id[static_cast<std::size_t>(i)] = k_hex[(t >> (28 - 4 * i)) & 0xf];
  for (int i = 0; i < 4; ++i) id[static_cast<std::size_t>(8 + i)] = k_hex[(tick >> (12 - 4 * i)) & 0xf];
  return id + random_token(9);
}

json aud_json(const std::vector<std::string>& aud) {
  if (aud.empty()) return nullptr;
  if (aud.size() == 1) return aud.front();
  return aud;
}

}  // namespace

std::string bearer_token_text(std::string token) {
  while (!token.empty() && token.front() == '-') token = random_token((token.size() * 3) / 4);
  return token;
}

std::string random_token(std::size_t bytes) { return b64url_encode(jose::random_bytes(bytes)); }

std::vector<std::string> split_scopes(std::string_view scope) {
  std::vector<std::string> out;
  // Duplicates are dropped through a hash set: a 64 KiB request of 16,000 distinct scopes used to
  // cost 0.4 s of an I/O thread in pairwise comparisons.
  std::unordered_set<std::string_view> seen;
  std::size_t pos = 0;
  while (pos < scope.size()) {
    auto sp = scope.find(' ', pos);
    std::string_view s = scope.substr(pos, sp == std::string_view::npos ? std::string_view::npos : sp - pos);
    if (!s.empty() && seen.insert(s).second) out.emplace_back(s);
    if (sp == std::string_view::npos) break;
    pos = sp + 1;
  }
  return out;
}

std::string join_scopes(const std::vector<std::string>& scopes) {
  std::string s;
  for (const auto& x : scopes) s += (s.empty() ? "" : " ") + x;
  return s;
}

json IssueResponse::to_json() const {
  json j{{"access_token", access.token},
         {"token_type", access.kind != "access" ? "N_A" : access.dpop ? "DPoP" : "Bearer"},
         {"expires_in", access.expires_in},
         {"issued_token_type", access.kind == "refresh" ? k_urn_refresh_token
                               : access.kind == "id"    ? k_urn_id_token
                               : access.format == "jwt" ? k_urn_jwt
                                                        : k_urn_access_token}};
  if (!access.scope.empty()) j["scope"] = access.scope;
  if (refresh) j["refresh_token"] = refresh->token;
  if (id_token) j["id_token"] = id_token->token;
  if (!expired_scope.empty()) j["expired_scope"] = join_scopes(expired_scope);
  return j;
}

// ---- TokenService -------------------------------------------------------------------------------

TokenService::TokenService(std::unique_ptr<Impl> impl) : m_impl(std::move(impl)) {}
TokenService::~TokenService() = default;
const Policy& TokenService::policy() const { return m_impl->policy; }
const keys::KeyProvider& TokenService::keys() const { return *m_impl->keys; }

Result<std::unique_ptr<TokenService>> TokenService::open(Policy policy, keys::Keystore keystore, const Clock& clock,
                                                         keys::Passphrase passphrase) {
  auto provider = std::make_shared<const keys::KeyProvider>(std::move(keystore), std::move(passphrase), clock,
                                                            keys::k_default_check_interval, policy.signing_alg);
  return open(std::make_shared<const Policy>(std::move(policy)), std::move(provider), clock);
}

Result<std::unique_ptr<TokenService>> TokenService::open(std::shared_ptr<const Policy> policy,
                                                         std::shared_ptr<const keys::KeyProvider> keys,
                                                         const Clock& clock) {
  const std::string& dir = keys->keystore().dir();
  if (policy->store.empty()) {
    // The default store lives in the keystore: a directory that holds no keystore (a mistyped
    // path) gets no tokens.db either. A keystore whose manifest is damaged still has its store
    // (revocation must work while the keys are being repaired): only "no keystore" refuses.
    if (auto m = keys->keystore().manifest(); !m && m.error().detail == ErrorDetail::keystore_missing) {
      return std::unexpected(m.error());
    }
  }
  std::string url = policy->store.empty() ? "sqlite:" + dir + "/tokens.db" : policy->store;
  auto store = open_token_store(url);
  if (!store) return std::unexpected(store.error());
  auto impl = std::make_unique<Impl>(std::move(policy), std::move(keys), clock);
  impl->store = std::move(*store);
  if (!impl->policy.jwe_recipient.empty()) {
    auto text = read_input(impl->policy.jwe_recipient);  // refuses directories, FIFOs, devices
    if (!text) {
      text.error().message = "tokens.jwe_recipient: " + text.error().message;
      return std::unexpected(text.error());
    }
    auto k = jose::parse_single_key(*text);
    if (!k) {
      k.error().message = "tokens.jwe_recipient '" + impl->policy.jwe_recipient + "': " + k.error().message;
      return std::unexpected(k.error());
    }
    impl->jwe_recipient = std::move(*k);
  }
  return std::unique_ptr<TokenService>(new TokenService(std::move(impl)));
}

namespace {

// A token that would expire after 9999-12-31T23:59:59Z is one tokctl's own verify refuses (exp out
// of range): refused before it is issued, never handed out with exit 0.
Result<void> expiry_in_range(UnixTime now, std::int64_t ttl) {
  if (ttl <= k_max_time - now) return {};
  return fail(ErrorCode::usage,
              "a lifetime of " + format_duration(ttl) + " from " + format_rfc3339(now) +
                  " ends after 9999-12-31T23:59:59Z, the last time a token can carry",
              "ask for a shorter lifetime, or lower the policy's ttl and tokens.max_lifetime");
}

struct Prepared {
  std::shared_ptr<const keys::KeyRing> ring;  // one key ring for every token of a batch
  std::vector<GrantRecord> grants;
  std::vector<TokenRecord> records;
  json last_claims;        // claims of the last token issued (the batch fast path clones them)
  std::int64_t jwts = 0;   // JWTs issued (no rows): counted on the grant for revocation counts
};

}  // namespace

// The batch's key ring: the provider's current one, pinned for the rest of the batch.
static Result<const keys::KeyRing*> batch_ring(const TokenService::Impl& im, Prepared& batch) {
  if (!batch.ring) {
    auto r = im.ring();
    if (!r) return std::unexpected(r.error());
    batch.ring = std::move(*r);
  }
  return batch.ring.get();
}

// Issues into `out`, collecting store rows into `batch` (stored by the caller in one put()).
static Result<IssueResponse> issue_one(const TokenService::Impl& im, const IssueRequest& req, Prepared& batch,
                                       const GrantRecord* shared_grant, const IssueOverrides& ov = {}) {
  const Policy& p = im.policy;
  const UnixTime now = im.now();
  const ClientPolicy* client = nullptr;
  if (!req.client_id.empty()) {
    client = p.client(req.client_id);
    if (!client && !p.clients.empty()) return oauth_fail(OAuthCode::invalid_client, "unknown client '" + req.client_id + "'");
  }
  if (req.type != "access" && req.type != "refresh" && req.type != "id") {
    return fail_param(ErrorCode::usage, "type", "the token type must be access, refresh or id, not '" + req.type + "'");
  }
  // Grant: a new one, the batch's shared one, or the one named (refresh).
  GrantRecord grant;
  bool new_grant = true;
  if (shared_grant) {
    grant = *shared_grant;
    new_grant = false;
  } else if (!req.grant_id.empty()) {
    auto g = im.store->grant(req.grant_id);
    if (!g) return std::unexpected(g.error());
    if (!*g || (*g)->revoked) return oauth_fail(OAuthCode::invalid_grant, "the grant is unknown or revoked");
    grant = **g;
    grant.jwts = 0;  // put() adds this batch's JWTs to the stored count
    new_grant = false;
  } else {
    grant.id = new_grant_id(now);
    grant.client_id = req.client_id;
    grant.sub = req.sub;
    grant.started = now;
  }
  // Scopes: known (exact or prefix), allowed for the client, alive (scope TTL since the grant began).
  std::vector<std::string> granted, expired;
  for (const auto& s : split_scopes(req.scope)) {
    const ScopeRule* rule = p.scope_rule(s);
    if (!rule && !p.scopes.empty()) return oauth_fail(OAuthCode::invalid_scope, "unknown scope '" + s + "'");
    if (!rule && p.scopes.empty() && !p.source.empty()) return oauth_fail(OAuthCode::invalid_scope, "unknown scope '" + s + "' (the policy defines no scopes)");
    if (client && !client->scopes.empty() && !p.scope_listed(client->scopes, s)) {
      return oauth_fail(OAuthCode::invalid_scope, "client '" + client->id + "' may not request scope '" + s + "'");
    }
    if (rule && rule->ttl && now - grant.started > *rule->ttl) {
      expired.push_back(s);
      continue;
    }
    granted.push_back(s);
  }
  if (new_grant) grant.scope = join_scopes(granted);
  // RFC 9068 requires client_id: tokens minted from the command line without one name "tokctl".
  const std::string client_id = req.client_id.empty() ? std::string(k_cli_client_id) : req.client_id;
  // Audience.
  std::vector<std::string> aud = req.aud;
  if (req.type == "id") {
    // OIDC Core §2: an ID token's aud contains the client_id of the relying party (first); other
    // audiences given with --aud follow it.
    aud = {client_id};
    for (const auto& a : req.aud)
      if (std::find(aud.begin(), aud.end(), a) == aud.end()) aud.push_back(a);
  }
  if (aud.empty() && client && !client->audiences.empty()) aud.push_back(client->audiences.front());
  // RFC 9068 access tokens always have an audience: without one, the issuer itself.
  if (aud.empty() && req.type == "access") aud.push_back(p.issuer);
  if (client && !client->audiences.empty() && !ov.audience_authorized && req.type != "id") {
    for (const auto& a : aud) {
      if (std::find(client->audiences.begin(), client->audiences.end(), a) == client->audiences.end()) {
        return oauth_fail(OAuthCode::invalid_target, "client '" + client->id + "' may not get tokens for audience '" + a + "'");
      }
    }
  }
  // Subject: pairwise (PPID) for clients with a sector.
  if (req.sub.empty() && req.type != "refresh") return fail_param(ErrorCode::usage, "sub", "a subject is required");
  std::string sub = req.sub;
  if (client && !client->sector.empty() && !sub.empty() && !ov.keep_sub) {
    auto pp = im.ppid(client->sector, req.sub);
    if (!pp) return std::unexpected(pp.error());
    sub = *pp;
  }
  const TokenKindPolicy& kind = req.type == "refresh" ? p.refresh : req.type == "id" ? p.id : p.access;
  // Access and ID tokens never outlive tokens.max_lifetime (keys prune relies on it): an explicit
  // longer --ttl is refused, never silently shortened.
  if (req.ttl && req.type != "refresh" && *req.ttl > p.max_lifetime) {
    return fail_param(ErrorCode::usage, "ttl",
                "the requested lifetime " + format_duration(*req.ttl) + " is longer than tokens.max_lifetime (" +
                    format_duration(p.max_lifetime) + ")",
                "ask for at most " + format_duration(p.max_lifetime) +
                    ", or raise tokens.max_lifetime in the policy (keys prune relies on it)");
  }
  std::int64_t ttl = req.ttl.value_or(kind.ttl);
  if (req.type != "refresh") ttl = std::min(ttl, p.max_lifetime);
  if (ttl <= 0) return fail_param(ErrorCode::usage, "ttl", "the lifetime must be positive");
  if (auto fits = expiry_in_range(now, ttl); !fits) return std::unexpected(fits.error());
  std::string format = req.type == "refresh" ? "opaque" : req.type == "id" ? "jwt"
                       : !req.format.empty() ? req.format : (client && !client->format.empty()) ? client->format
                                                                                                : p.access.format;
  if (format != "jwt" && format != "opaque" && format != "wrapped" && format != "jwe") {
    return fail_param(ErrorCode::usage, "format", "the token format must be jwt, opaque, wrapped or jwe, not '" + format + "'");
  }
  const std::string scope = join_scopes(granted);
  // The claims set: registered + RFC 9068, policy claims (templates), scope claims, extra claims.
  json subject = p.subjects.count(req.sub) ? p.subjects.at(req.sub) : json::object();
  json claims = json::object();
  claims["iss"] = p.issuer;
  if (!sub.empty()) claims["sub"] = sub;
  if (!aud.empty()) claims["aud"] = aud_json(aud);
  claims["iat"] = now;
  claims["exp"] = now + ttl;
  claims["jti"] = random_token(16);
  claims["client_id"] = client_id;
  if (!scope.empty()) claims["scope"] = scope;
  claims["sid"] = grant.id;
  if (req.type == "access") {
    // Templates see the token's sub (pairwise when the client has a sector: never the real one).
    json rendered = render_claims(p.claims, sub, client_id, scope, subject);
    for (const auto& [k, v] : rendered.items())
      if (!reserved(k)) claims[k] = v;
    for (const auto& s : granted) {
      if (const ScopeRule* rule = p.scope_rule(s))
        for (const auto& [k, v] : rule->claims.items())
          if (!reserved(k)) claims[k] = v;
    }
  }
  for (const auto& [k, v] : req.claims.items()) {
    if (reserved(k)) return fail(ErrorCode::usage, "claim '" + k + "' is set by the issuer; it cannot be given");
    claims[k] = v;
  }
  // RFC 8705 §3.1: the binding. Nothing else sets cnf (it is reserved above).
  // RFC 9449 §6.1: likewise a DPoP key's thumbprint. Both when both were shown.
  if (req.type == "access") {
    if (!req.cnf_x5t.empty()) claims["cnf"]["x5t#S256"] = req.cnf_x5t;
    if (!req.cnf_jkt.empty()) claims["cnf"]["jkt"] = req.cnf_jkt;
  }

  IssueResponse resp;
  resp.grant_id = grant.id;
  resp.expired_scope = expired;
  IssuedToken& t = resp.access;
  t.kind = req.type;
  t.format = format;
  t.expires_in = ttl;
  t.scope = scope;
  t.jti = claims["jti"].get<std::string>();
  t.dpop = req.type == "access" && !req.cnf_jkt.empty();

  TokenRecord rec;
  rec.kind = req.type;
  rec.format = format;
  rec.grant_id = grant.id;
  rec.client_id = req.client_id;
  rec.sub = sub;
  rec.scope = scope;
  rec.aud = json(aud).dump();
  rec.iss = p.issuer;
  rec.jti = t.jti;
  rec.iat = now;
  rec.exp = now + ttl;
  rec.claims = claims.dump();
  batch.last_claims = claims;
  bool stored = true;

  if (req.type == "refresh" || format == "opaque") {
    std::string value;
    do {
      value = opaque_token_value(jose::random_bytes(26), now);
    } while (value.front() == '-');
    t.token = (req.type == "refresh" ? std::string() : p.opaque_prefix) + value;
  } else if (format == "wrapped") {
    // Only iss, exp, iat, jti (+ configured non-sensitive claims); the rest via introspection.
    json wrapper{{"iss", p.issuer}, {"exp", now + ttl}, {"iat", now}, {"jti", t.jti}};
    for (const auto& name : p.wrapper_claims)
      if (claims.contains(name) && !reserved(name)) wrapper[name] = claims[name];
    auto ring = batch_ring(im, batch);
    if (!ring) return std::unexpected(ring.error());
    auto w = TokenService::Impl::sign(**ring, wrapper, "JWT");
    if (!w) return std::unexpected(w.error());
    t.token = std::move(*w);
  } else {
    auto ring = batch_ring(im, batch);
    if (!ring) return std::unexpected(ring.error());
    auto jwt = TokenService::Impl::sign(**ring, claims, req.type == "id" ? "JWT" : "at+jwt");
    if (!jwt) return std::unexpected(jwt.error());
    t.token = std::move(*jwt);
    // A JWT is self-contained: revocation is the jti deny-list and the grant (sid). A JWE is
    // opaque to us (only the recipient decrypts it), so it is stored by hash like opaque tokens.
    stored = format == "jwe";
    if (format == "jwe") {
      if (!im.jwe_recipient) {
        return fail(ErrorCode::usage, "format jwe needs tokens.jwe_recipient in the policy",
                    "point it at the recipient's public key file");
      }
      jose::EncryptOptions eo;
      auto alg = jose::default_key_management(*im.jwe_recipient);
      if (!alg) return std::unexpected(alg.error());
      eo.alg = *alg;
      eo.enc = jose::default_content_enc(eo.alg, *im.jwe_recipient);
      eo.cty = "JWT";
      eo.kid = im.jwe_recipient->kid();
      auto jwe = jose::encrypt_compact(t.token, *im.jwe_recipient, eo);
      if (!jwe) return std::unexpected(jwe.error());
      t.token = std::move(*jwe);
    }
  }
  if (stored) {
    rec.hash = token_hash(t.token);
    batch.records.push_back(rec);
  } else {
    ++batch.jwts;
  }
  // Every issuance re-stores its grant (an upsert): a continued grant's expiry moves forward.
  if (!shared_grant) batch.grants.push_back(grant);

  if (req.with_refresh && req.type == "access") {
    IssueRequest rr;
    rr.type = "refresh";
    rr.client_id = req.client_id;
    rr.sub = req.sub;
    rr.scope = scope;
    GrantRecord g = grant;
    auto r = issue_one(im, rr, batch, &g);
    if (!r) return std::unexpected(r.error());
    resp.refresh = r->access;
  }
  if (req.with_id_token && req.type == "access") {
    auto ring = batch_ring(im, batch);
    if (!ring) return std::unexpected(ring.error());
    auto signer = TokenService::Impl::signer(**ring);
    if (!signer) return std::unexpected(signer.error());
    // OIDC Core §2: aud is the client_id ("tokctl" when none was given, as in the access token).
    const std::int64_t id_ttl = std::min(p.id.ttl, p.max_lifetime);
    if (auto fits = expiry_in_range(now, id_ttl); !fits) return std::unexpected(fits.error());
    json id{{"iss", p.issuer}, {"sub", sub}, {"aud", client_id},
            {"iat", now}, {"exp", now + id_ttl}, {"auth_time", grant.started}, {"sid", grant.id},
            {"at_hash", half_hash(t.token, (*signer)->alg())}};
    auto tok = TokenService::Impl::sign(**ring, id, "JWT");
    if (!tok) return std::unexpected(tok.error());
    ++batch.jwts;
    IssuedToken it;
    it.token = std::move(*tok);
    it.kind = "id";
    it.format = "jwt";
    it.expires_in = id_ttl;
    resp.id_token = std::move(it);
  }
  return resp;
}

// When the last token of a response expires.
static UnixTime latest_exp(const IssueResponse& r, UnixTime now) {
  std::int64_t ttl = r.access.expires_in;
  if (r.refresh) ttl = std::max(ttl, r.refresh->expires_in);
  if (r.id_token) ttl = std::max(ttl, r.id_token->expires_in);
  return now + ttl;
}

Result<PreparedIssue> prepare_issue(const TokenService::Impl& im, const IssueRequest& request,
                                    const IssueOverrides& overrides) {
  Prepared batch;
  auto r = issue_one(im, request, batch, nullptr, overrides);
  if (!r) return std::unexpected(r.error());
  PreparedIssue out{std::move(*r), std::nullopt, std::move(batch.records)};
  if (!batch.grants.empty()) {
    out.grant = batch.grants.front();
    out.grant->expires = std::max(out.grant->expires, latest_exp(out.response, im.now()));
    out.grant->jwts = batch.jwts;
  }
  return out;
}

Result<IssueResponse> issue_with(const TokenService::Impl& im, const IssueRequest& request, const IssueOverrides& overrides) {
  auto p = prepare_issue(im, request, overrides);
  if (!p) return std::unexpected(p.error());
  if (auto s = im.store->put(p->grant, p->records); !s) return std::unexpected(s.error());
  return std::move(p->response);
}

Result<IssueResponse> TokenService::issue(const IssueRequest& request) const { return issue_with(*m_impl, request, {}); }

void TokenService::issue_async(const IssueRequest& request, std::function<void(Result<IssueResponse>)> done) const {
  auto p = prepare_issue(*m_impl, request, {});
  if (!p) return done(std::unexpected(p.error()));
  // The answer waits for the commit; std::function needs a copyable capture, hence the pointer.
  auto response = std::make_shared<IssueResponse>(std::move(p->response));
  m_impl->store->put_async(std::move(p->grant), std::move(p->records),
                           [response, done = std::move(done)](Result<void> stored) {
                             if (!stored) return done(std::unexpected(stored.error()));
                             done(std::move(*response));
                           });
}

namespace {

// The rows of a fast-path batch (all its tokens but the first): one record with each token's jti,
// claims and key filled in. Made on the store's writer thread for signed tokens.
struct RowPlan {
  TokenRecord proto;        // every field but hash, jti and claims
  std::string claims;       // the batch's claims, as stored; some jti at jti_pos
  std::size_t jti_pos = 0;  // where the 22 characters of the jti value start in `claims`
};

// issue_many up to the store write: the tokens, their grant and their rows (or the plan to make them).
struct PreparedMany {
  std::vector<IssueResponse> responses;
  GrantRecord grant;
  std::vector<TokenRecord> records;  // rows made while issuing: the first token's, or every token's
  std::optional<RowPlan> plan;       // fast path: the rows of responses[1..] are still to make
  bool signed_rows = false;          // the planned rows are of signed tokens (wrapped)
};

// Appends the planned rows of `responses[1..]` to `rows`.
void make_planned_rows(const RowPlan& plan, const std::vector<IssueResponse>& responses, std::vector<TokenRecord>& rows) {
  rows.reserve(rows.size() + responses.size());
  for (std::size_t i = 1; i < responses.size(); ++i) {
    const IssuedToken& t = responses[i].access;
    TokenRecord& rec = rows.emplace_back(plan.proto);
    rec.hash = token_hash(t.token);
    rec.jti = t.jti;
    rec.claims = plan.claims;
    rec.claims.replace(plan.jti_pos, t.jti.size(), t.jti);
  }
}

// The bytes of `payload` that a change of [pos, pos + n) touches in its base64url encoding: whole
// 3-byte groups (the last one may be the payload's short tail, encoded unpadded as in the whole).
struct B64Window {
  std::size_t begin = 0, end = 0;  // in the payload
  std::size_t chars_at() const { return begin / 3 * 4; }  // where its characters start in the encoding
};
B64Window b64_window(std::size_t payload_size, std::size_t pos, std::size_t n) {
  return {pos / 3 * 3, std::min(payload_size, (pos + n + 2) / 3 * 3)};
}

}  // namespace

static Result<PreparedMany> prepare_many(const TokenService::Impl& im, const IssueRequest& request, int count) {
  if (count < 1) return fail_param(ErrorCode::usage, "count", "the token count must be at least 1");
  std::vector<IssueResponse> out;
  out.reserve(static_cast<std::size_t>(count));
  Prepared batch;
  // Tokens issued together by one command form one grant (one delegation).
  auto first = issue_one(im, request, batch, nullptr);
  if (!first) return std::unexpected(first.error());
  GrantRecord grant = batch.grants.front();
  out.push_back(std::move(*first));
  const IssueResponse proto = out.front();  // a copy: `out` grows below

  // Fast path for the bulk formats: every token of the batch has the same claims but its jti, so
  // the claims (and a wrapped token's signed wrapper) are serialised and base64url-encoded once,
  // and per token only the jti bytes and the few base64url characters that encode them change;
  // the signing context is reused; jtis come from one RAND_bytes call per chunk. The stored rows
  // of opaque tokens are made here; those of wrapped tokens by the store's writer thread (the
  // signature dominates this thread, the rows would slow it). Anything unexpected in the first
  // token's shape takes the per-token path.
  constexpr std::size_t k_jti_chars = 22;  // base64url of 16 random bytes
  const std::string& fmt = proto.access.format;
  const bool plain = !request.with_refresh && !request.with_id_token && request.type == "access";
  const std::string needle = "\"jti\":\"" + proto.access.jti + "\"";
  // Where the jti value sits in a serialised object `s` (exactly once), else npos.
  auto jti_in = [&](const std::string& s) {
    const auto at = s.find(needle);
    if (at == std::string::npos || s.find(needle, at + 1) != std::string::npos) return std::string::npos;
    return at + 7;
  };
  std::string claims;
  std::size_t jti_pos = std::string::npos;
  bool fast = plain && (fmt == "jwt" || fmt == "opaque" || fmt == "wrapped") &&
              proto.access.jti.size() == k_jti_chars && (fmt == "jwt" || !batch.records.empty());
  if (fast) {
    claims = batch.last_claims.dump();
    jti_pos = jti_in(claims);
    fast = jti_pos != std::string::npos;
  }
  // Signed formats: the payload as the first token signed it, and its signing input.
  std::string payload;
  std::size_t payload_jti = std::string::npos;
  std::string signing_input;  // "header.payload" of the first token
  std::size_t payload_at = 0;  // where the payload's characters start in a token
  if (fast && fmt != "opaque") {
    const std::string& tok = proto.access.token;
    const std::size_t dot1 = tok.find('.');
    const std::size_t dot2 = dot1 == std::string::npos ? dot1 : tok.find('.', dot1 + 1);
    if (dot2 == std::string::npos) {
      fast = false;
    } else if (fmt == "jwt") {
      payload = claims;
    } else if (auto decoded = b64url_decode(std::string_view(tok).substr(dot1 + 1, dot2 - dot1 - 1))) {
      payload = std::move(*decoded);
    } else {
      fast = false;
    }
    if (fast) {
      payload_jti = jti_in(payload);
      payload_at = dot1 + 1;
      signing_input = tok.substr(0, dot1 + 1) + b64url_encode(payload);
      // The fast path makes exactly what the first token is: same header, same payload encoding.
      fast = payload_jti != std::string::npos && signing_input.size() == dot2 &&
             tok.compare(0, dot2, signing_input) == 0;
    }
  }
  if (!fast) {
    for (int i = 1; i < count; ++i) {
      auto r = issue_one(im, request, batch, &grant);
      if (!r) return std::unexpected(r.error());
      out.push_back(std::move(*r));
    }
    grant.expires = std::max(grant.expires, latest_exp(proto, im.now()));
    grant.jwts = batch.jwts;
    return PreparedMany{std::move(out), std::move(grant), std::move(batch.records), std::nullopt, false};
  }

  std::optional<RowPlan> plan;
  if (fmt != "jwt") {
    plan.emplace();
    plan->proto = batch.records.back();
    plan->proto.hash.clear();
    plan->proto.jti.clear();
    plan->proto.claims.clear();
    plan->claims = claims;
    plan->jti_pos = jti_pos;
  }
  // Every token is the first one's response with its own token and jti.
  IssueResponse blank = proto;
  blank.access.token.clear();
  blank.access.jti.clear();

  const std::size_t raw_per_token = 16 + (fmt == "opaque" ? 26 : 0);
  std::string entropy;
  std::size_t used = 0;
  auto next_raw = [&](std::size_t n) {
    if (used + n > entropy.size()) {
      // Enough for the rest of the batch (a redrawn opaque value, 1 in 64, takes a refill).
      const std::size_t want = std::min<std::size_t>(static_cast<std::size_t>(count) * raw_per_token + 64, 1 << 18);
      entropy.assign(std::max(want, n), '\0');
      if (RAND_bytes(reinterpret_cast<unsigned char*>(entropy.data()), static_cast<int>(entropy.size())) != 1) {
        throw std::runtime_error("RAND_bytes failed");
      }
      used = 0;
    }
    std::string_view v(entropy.data() + used, n);
    used += n;
    return v;
  };
  const UnixTime iat = batch.records.empty() ? 0 : batch.records.back().iat;
  if (fmt == "opaque") {
    for (int i = 1; i < count; ++i) {
      IssueResponse& r = out.emplace_back(blank);
      r.access.jti = b64url_encode(next_raw(16));
      std::string value = opaque_token_value(next_raw(26), iat);
      while (value.front() == '-') value = opaque_token_value(next_raw(26), iat);
      r.access.token.reserve(im.policy.opaque_prefix.size() + value.size());
      r.access.token = im.policy.opaque_prefix;
      r.access.token += value;
    }
  } else {
    const jose::Signer& signer = *batch.ring->signer;
    const B64Window w = b64_window(payload.size(), payload_jti, k_jti_chars);
    const std::size_t w_at = payload_at + w.chars_at();
    std::string window = payload.substr(w.begin, w.end - w.begin);
    const std::size_t jti_in_window = payload_jti - w.begin;
    for (int i = 1; i < count; ++i) {
      IssueResponse& r = out.emplace_back(blank);
      r.access.jti = b64url_encode(next_raw(16));
      window.replace(jti_in_window, k_jti_chars, r.access.jti);
      const std::string chars = b64url_encode(window);
      std::string& token = r.access.token;
      token.reserve(proto.access.token.size());  // signatures of one key have one length (ES*: raw r||s)
      token = signing_input;
      token.replace(w_at, chars.size(), chars);
      auto sig = signer.sign(token);
      if (!sig) return std::unexpected(sig.error());
      token += '.';
      token += b64url_encode(*sig);
      if (fmt == "jwt") ++batch.jwts;
    }
  }
  grant.expires = std::max(grant.expires, latest_exp(proto, im.now()));
  grant.jwts = batch.jwts;
  PreparedMany p{std::move(out), std::move(grant), std::move(batch.records), std::move(plan), fmt == "wrapped"};
  if (p.plan && !p.signed_rows) {
    make_planned_rows(*p.plan, p.responses, p.records);
    p.plan.reset();
  }
  return p;
}

Result<std::vector<IssueResponse>> TokenService::issue_many(const IssueRequest& request, int count) const {
  auto p = prepare_many(*m_impl, request, count);
  if (!p) return std::unexpected(p.error());
  if (p->plan) make_planned_rows(*p->plan, p->responses, p->records);
  if (auto s = m_impl->store->put(p->grant, p->records); !s) return std::unexpected(s.error());
  return std::move(p->responses);
}

void TokenService::issue_many_async(const IssueRequest& request, int count,
                                    std::function<void(Result<std::vector<IssueResponse>>)> done) const {
  auto p = prepare_many(*m_impl, request, count);
  if (!p) return done(std::unexpected(p.error()));
  auto responses = std::make_shared<std::vector<IssueResponse>>(std::move(p->responses));
  auto stored = [responses, done = std::move(done)](Result<void> committed) {
    if (!committed) return done(std::unexpected(committed.error()));
    done(std::move(*responses));
  };
  if (!p->plan) return m_impl->store->put_async(std::move(p->grant), std::move(p->records), std::move(stored));
  // The writer thread makes the rows: it reads the responses before the commit; `done` gets them
  // after it. Nothing else touches them in between.
  auto make_rows = [responses, plan = std::make_shared<const RowPlan>(std::move(*p->plan)),
                    first = std::make_shared<std::vector<TokenRecord>>(std::move(p->records))] {
    std::vector<TokenRecord> rows = std::move(*first);
    make_planned_rows(*plan, *responses, rows);
    return rows;
  };
  m_impl->store->put_async(std::move(p->grant), std::function<std::vector<TokenRecord>()>(std::move(make_rows)),
                           std::move(stored));
}

Result<bool> TokenService::jwt_revoked(const nlohmann::json& claims) const { return m_impl->jwt_revoked(claims); }

void TokenService::apply_revocation(jose::VerifyReport& r) const {
  if (!r.payload.is_object() || !r.signature_verified) return;
  auto revoked = m_impl->jwt_revoked(r.payload);
  if (!revoked) {
    r.problems.push_back(jose::Problem{jose::ProblemCode::store_error, revoked.error().message, {}, false});
    r.valid = false;
  } else if (*revoked) {
    r.problems.push_back(
        jose::Problem{jose::ProblemCode::revoked, "the token was revoked (jti deny-list or its grant)", {}, false});
    r.valid = false;
  }
}

Result<std::int64_t> TokenService::prune_store() const { return m_impl->store->prune(m_impl->now()); }

void TokenService::prune_every(std::chrono::milliseconds interval) {
  Impl& im = *m_impl;
  if (im.pruner.joinable()) {
    im.pruner.request_stop();
    im.pruner.join();
  }
  if (interval.count() <= 0) return;
  im.pruner = std::jthread([&im, interval](std::stop_token stop) {
    std::unique_lock lock(im.prune_mu);
    // Sleeps until the interval passes or a stop is requested (the destructor's jthread).
    for (;;) {
      im.prune_cv.wait_for(lock, stop, interval, [] { return false; });
      if (stop.stop_requested()) return;
      lock.unlock();
      auto n = im.store->prune(im.now());
      lock.lock();
      ++im.prune_status.runs;
      if (n) {
        im.prune_status.deleted += *n;
        im.prune_status.last_error.reset();
      } else {
        im.prune_status.last_error = n.error();
      }
    }
  });
}

PruneStatus TokenService::prune_status() const {
  std::lock_guard lock(m_impl->prune_mu);
  return m_impl->prune_status;
}

}  // namespace tokctl::tokens
