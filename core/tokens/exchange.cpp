// RFC 8693 token exchange under the policy's exchange rules.
//
// The subject token (and the actor token, if any) must be active here: a JWT that verifies against
// the keystore and is not revoked (jti deny-list, grant), or an opaque/wrapped token active in the
// store. The rule is chosen by the subject token's audience (`from`); it bounds the target
// audiences (`to`), the scopes and the modes. The new token is an at+jwt for the same subject and
// client, in the subject token's grant (revoking that grant revokes the exchanged tokens too), and
// never outlives the subject token.
//
// Refusals (ErrorCode::invalid_token with Error::oauth):
//   invalid_request  unsupported subject/actor/requested token type, a token type that does not fit
//                    the token (an access token presented as id_token, an ID token as access_token),
//                    unknown mode, a mode the rule does not allow, delegation without any actor identity
//   invalid_grant    subject or actor token unknown, expired, revoked or not verifying
//                    (VerifyReport::signature_verified), without a subject, or its grant revoked
//   invalid_target   no rule for the subject's audience, a target audience the rule does not allow,
//                    or a resource that is not an absolute URI without a fragment (RFC 8707 §2)
//   invalid_scope    a requested scope outside the subject token's scopes or the rule's scopes, or
//                    one its client may not request
//   invalid_client   the subject token's client is no longer in the policy
// A subject token issued without a client (client_id "tokctl") is exchanged without one too.
//
// The new token belongs to the requesting client (ExchangeRequest::client_id) when there is one
// (the token endpoint: RFC 9068 §2.2 client_id, RFC 8693 §4.1 act); `tokctl exchange` on the
// keystore has none, and the subject token's client stands in for it. Without an explicit scope,
// the requesting client gets the scopes it may request among those the exchange allows.
//
// Modes: delegate adds `act` {"sub": actor} (the actor token's sub, else its client_id; without an
// actor token the requesting client, else the subject token's client_id), nesting the previous actor chain as act.act (the
// actor token's own `act`, else the subject token's); impersonate adds no `act`; embed carries the
// subject token, as presented, in the `subject_token` claim.

#include <tokctl/tokens/service.hpp>

#include <algorithm>

#include <tokctl/jose/jws.hpp>
#include <tokctl/util/uri.hpp>

#include "service_impl.hpp"

namespace tokctl::tokens {
namespace {

using nlohmann::json;

constexpr const char* k_embed_claim = "subject_token";

bool looks_like_jwt(std::string_view t) { return jose::compact_segments(t) == 3; }

std::vector<std::string> string_list(const json& v) {
  std::vector<std::string> out;
  if (v.is_string()) out.push_back(v.get<std::string>());
  else if (v.is_array())
    for (const auto& x : v)
      if (x.is_string()) out.push_back(x.get<std::string>());
  return out;
}

std::string str(const json& o, const char* name) {
  auto it = o.find(name);
  return it != o.end() && it->is_string() ? it->get<std::string>() : std::string();
}

bool contains(const std::vector<std::string>& v, const std::string& x) {
  return std::find(v.begin(), v.end(), x) != v.end();
}

bool known_input_type(const std::string& urn) {
  return urn == k_urn_access_token || urn == k_urn_jwt || urn == k_urn_id_token || urn == k_urn_refresh_token;
}

// Why a rule does not fit the request; `stage` orders failures (the furthest one is reported).
struct RuleMiss {
  int stage = -1;
  OAuthCode code = OAuthCode::none;
  std::string description;
};

}  // namespace

// The token when it is active here, else nullopt; `type` is its token type URN as presented.
// Active means what introspection says (for a JWT: signature_verified with a keystore key, claims
// valid, not revoked, not expired); claims of the wrong type were dropped there.
// A token type that does not fit the token is invalid_request (RFC 8693 §2.1: the type "indicates
// the type of the security token"): an ID token is no access token, and the reverse.
static Result<std::optional<ActiveToken>> presented(const TokenService::Impl& im, std::string_view token,
                                                    const std::string& type, const char* what) {
  if (token.empty()) return std::optional<ActiveToken>();
  auto t = active_token(im, token);
  if (!t) return t;
  if (*t && type == k_urn_jwt && !(*t)->stored && !looks_like_jwt(token)) return std::optional<ActiveToken>();
  if (*t && type == k_urn_id_token && (*t)->kind != "id") {
    return oauth_fail(OAuthCode::invalid_request, std::string(what) + "_token_type is id_token, but the " + what +
                                                      " token is an access token");
  }
  if (*t && type == k_urn_access_token && (*t)->kind == "id") {
    return oauth_fail(OAuthCode::invalid_request, std::string(what) + "_token_type is access_token, but the " + what +
                                                      " token is not one (a JWT without typ at+jwt: an ID token or "
                                                      "another JWT)");
  }
  return t;
}

Result<IssueResponse> TokenService::exchange(const ExchangeRequest& request) const {
  const Impl& im = *m_impl;
  const Policy& p = im.policy;

  // The request itself.
  if (request.subject_token.empty()) return oauth_fail(OAuthCode::invalid_request, "subject_token is required");
  if (!known_input_type(request.subject_token_type)) {
    return oauth_fail(OAuthCode::invalid_request, "unsupported subject_token_type '" + request.subject_token_type + "'");
  }
  if (request.subject_token_type == k_urn_refresh_token) {
    return oauth_fail(OAuthCode::invalid_request, "refresh tokens cannot be exchanged; use the refresh token grant");
  }
  if (!request.actor_token.empty() &&
      (!known_input_type(request.actor_token_type) || request.actor_token_type == k_urn_refresh_token)) {
    return oauth_fail(OAuthCode::invalid_request, "unsupported actor_token_type '" + request.actor_token_type + "'");
  }
  const std::string& rtt = request.requested_token_type;
  if (!rtt.empty() && rtt != k_urn_access_token && rtt != k_urn_jwt) {
    return oauth_fail(OAuthCode::invalid_request, "requested_token_type '" + rtt +
                                             "' is not supported (only access_token and jwt: a JWT access token)");
  }
  for (const auto& r : request.resource) {
    if (!is_absolute_uri(r)) {
      return oauth_fail(OAuthCode::invalid_target, "resource '" + r + "' is not an absolute URI without a fragment (RFC 8707)");
    }
  }
  const ClientPolicy* requester = nullptr;
  if (!request.client_id.empty()) {
    requester = p.client(request.client_id);
    if (!requester) return oauth_fail(OAuthCode::invalid_client, "unknown client '" + request.client_id + "'");
  }
  const std::string mode = request.mode.empty() ? "delegate" : request.mode;
  if (mode != "delegate" && mode != "impersonate" && mode != "embed") {
    return oauth_fail(OAuthCode::invalid_request, "mode must be delegate, impersonate or embed, not '" + mode + "'");
  }

  // The subject (and actor) tokens must be active here.
  auto subject = presented(im, request.subject_token, request.subject_token_type, "subject");
  if (!subject) return std::unexpected(subject.error());
  if (!*subject) return oauth_fail(OAuthCode::invalid_grant, "the subject token is not active (unknown, expired or revoked)");
  const ActiveToken& subj = **subject;
  if (subj.kind == "refresh") {
    return oauth_fail(OAuthCode::invalid_request, "the subject token is a refresh token; refresh tokens cannot be exchanged");
  }
  std::optional<ActiveToken> actor;
  if (!request.actor_token.empty()) {
    auto a = presented(im, request.actor_token, request.actor_token_type, "actor");
    if (!a) return std::unexpected(a.error());
    if (!*a) return oauth_fail(OAuthCode::invalid_grant, "the actor token is not active (unknown, expired or revoked)");
    if ((*a)->kind == "refresh") {
      return oauth_fail(OAuthCode::invalid_request, "the actor token is a refresh token");
    }
    actor = std::move(**a);
  }

  // The rule: `from` is one of the subject token's audiences; the first rule allowing the whole
  // request wins, else the refusal of the rule that got furthest.
  const std::vector<std::string> subject_aud = string_list(subj.claims.contains("aud") ? subj.claims["aud"] : json());
  const std::vector<std::string> subject_scopes = split_scopes(str(subj.claims, "scope"));
  std::vector<std::string> targets;
  for (const auto& list : {request.audience, request.resource})
    for (const auto& t : list)
      if (!t.empty() && !contains(targets, t)) targets.push_back(t);
  std::optional<std::vector<std::string>> requested_scopes;
  if (!split_scopes(request.scope).empty()) requested_scopes = split_scopes(request.scope);

  const ExchangeRule* chosen = nullptr;
  std::vector<std::string> chosen_targets, chosen_scopes;
  RuleMiss miss;
  for (const auto& rule : p.exchange) {
    if (!contains(subject_aud, rule.from)) continue;
    // Targets: all in `to`; none asked means the rule's first target.
    std::vector<std::string> to = targets;
    if (to.empty() && !rule.to.empty()) to.push_back(rule.to.front());
    auto bad_target = std::find_if(to.begin(), to.end(), [&](const std::string& t) { return !contains(rule.to, t); });
    if (to.empty() || bad_target != to.end()) {
      if (miss.stage < 0) {
        miss = {0, OAuthCode::invalid_target, to.empty() ? "the exchange rule for audience '" + rule.from + "' allows no target"
                                                : "audience '" + *bad_target + "' is not an allowed target for tokens of audience '" +
                                                      rule.from + "'"};
      }
      continue;
    }
    // Scopes: within the subject token's and the rule's (exact names, or a prefix rule's prefix).
    auto rule_allows = [&](const std::string& s) { return rule.scopes.empty() || p.scope_listed(rule.scopes, s); };
    std::vector<std::string> scopes;
    std::string scope_problem;
    if (requested_scopes) {
      for (const auto& s : *requested_scopes) {
        if (!contains(subject_scopes, s)) {
          scope_problem = "scope '" + s + "' is not granted by the subject token";
          break;
        }
        if (!rule_allows(s)) {
          scope_problem = "scope '" + s + "' may not be exchanged from audience '" + rule.from + "'";
          break;
        }
        scopes.push_back(s);
      }
    } else {
      // What the rule allows of the subject's scopes, and the requesting client may request.
      auto client_allows = [&](const std::string& s) {
        return !requester || requester->scopes.empty() || p.scope_listed(requester->scopes, s);
      };
      for (const auto& s : subject_scopes)
        if (rule_allows(s) && client_allows(s)) scopes.push_back(s);
    }
    if (!scope_problem.empty()) {
      if (miss.stage < 1) miss = {1, OAuthCode::invalid_scope, scope_problem};
      continue;
    }
    // Mode (a rule without modes allows delegation only, as the policy loader defaults).
    bool mode_ok = rule.modes.empty() ? mode == "delegate" : contains(rule.modes, mode);
    if (!mode_ok) {
      if (miss.stage < 2) {
        miss = {2, OAuthCode::invalid_request, "mode '" + mode + "' is not allowed for tokens of audience '" + rule.from + "'"};
      }
      continue;
    }
    chosen = &rule;
    chosen_targets = std::move(to);
    chosen_scopes = std::move(scopes);
    break;
  }
  if (!chosen) {
    if (miss.stage >= 0) return oauth_fail(miss.code, miss.description);
    std::string auds;
    for (const auto& a : subject_aud) auds += (auds.empty() ? "'" : ", '") + a + "'";
    return oauth_fail(OAuthCode::invalid_target, "no exchange rule for the subject token's audience" +
                                            (auds.empty() ? std::string(" (it has none)") : " (" + auds + ")"));
  }

  // The new token: same subject and client, the rule's audiences and scopes, mode claims.
  IssueRequest issue;
  issue.type = "access";
  issue.format = "jwt";
  // The subject token's client. A token issued without --client-id names "tokctl" but belongs to
  // no client: the new one is issued the same way (no client), so it carries "tokctl" again.
  const std::string subject_client = str(subj.claims, "client_id");
  issue.client_id = requester ? requester->id
                    : subject_client == k_cli_client_id && !p.client(subject_client) ? std::string()
                                                                                     : subject_client;
  issue.sub = str(subj.claims, "sub");
  if (issue.sub.empty()) return oauth_fail(OAuthCode::invalid_grant, "the subject token has no subject");
  issue.aud = chosen_targets;
  issue.scope = join_scopes(chosen_scopes);
  issue.grant_id = str(subj.claims, "sid");
  if (!issue.grant_id.empty()) {
    // A subject token from elsewhere (e.g. a phantom JWT) may name no grant of ours.
    auto g = im.store->grant(issue.grant_id);
    if (!g) return std::unexpected(g.error());
    if (!*g) issue.grant_id.clear();
  }
  std::int64_t ttl = std::min(p.access.ttl, p.max_lifetime);
  if (subj.exp != 0) ttl = std::min(ttl, subj.exp - im.now());
  issue.ttl = ttl;
  if (mode == "delegate") {
    // RFC 8693 §4.1: act names the acting party: the actor token's subject, else the client
    // that asked for this token.
    std::string actor_id = actor ? str(actor->claims, "sub") : requester ? requester->id : subject_client;
    if (actor && actor_id.empty()) actor_id = str(actor->claims, "client_id");
    if (actor_id.empty()) {
      return oauth_fail(OAuthCode::invalid_request, actor ? "the actor token names no subject or client"
                                                 : "delegation needs an actor token (the subject token has no client_id)");
    }
    json act{{"sub", actor_id}};
    const json* previous = nullptr;
    if (actor && actor->claims.contains("act") && actor->claims["act"].is_object()) previous = &actor->claims["act"];
    else if (subj.claims.contains("act") && subj.claims["act"].is_object()) previous = &subj.claims["act"];
    if (previous) act["act"] = *previous;
    issue.claims["act"] = std::move(act);
  } else if (mode == "embed") {
    issue.claims[k_embed_claim] = request.subject_token;
  }
  issue.cnf_x5t = request.cnf_x5t;  // the requester's certificate, never the subject token's cnf
  issue.cnf_jkt = request.cnf_jkt;  // and its DPoP key
  IssueOverrides ov;
  ov.keep_sub = true;             // already pairwise when the client has a sector
  ov.audience_authorized = true;  // the exchange rule, not the client's audiences, decides
  return issue_with(im, issue, ov);
}

}  // namespace tokctl::tokens
