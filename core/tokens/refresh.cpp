// Refresh-token redemption (RFC 6749 §6) with rotation and reuse detection (RFC 9700 §4.14).

#include <tokctl/tokens/service.hpp>

#include <algorithm>
#include <string>
#include <vector>

#include "service_impl.hpp"

namespace tokctl::tokens {

Result<IssueResponse> TokenService::refresh(const RefreshRequest& request) const {
  const Impl& im = *m_impl;
  auto found = find_token(*im.store, request.refresh_token);
  if (!found) return std::unexpected(found.error());
  if (!*found || (*found)->kind != "refresh") return oauth_fail(OAuthCode::invalid_grant, "the refresh token is unknown");
  const std::string hash = (*found)->hash;  // its key: new, or from a schema 5 store
  const TokenRecord& old = **found;
  const std::string owner = old.client_id.empty() ? std::string(k_cli_client_id) : old.client_id;
  // A consumed token presented again: someone holds a copy. redeem() revokes the grant.
  auto reuse = [&]() -> Result<IssueResponse> {
    if (auto r = im.store->redeem(hash, GrantRecord{}, {}); !r) return std::unexpected(r.error());
    return oauth_fail(OAuthCode::invalid_grant, "the refresh token was used before; its whole grant is now revoked "
                                       "(reuse detection)");
  };
  if (old.consumed) return reuse();
  if (old.revoked) return oauth_fail(OAuthCode::invalid_grant, "the refresh token is revoked");
  if (old.exp != 0 && old.exp < im.now()) return oauth_fail(OAuthCode::invalid_grant, "the refresh token has expired");
  if (!request.client_id.empty() && request.client_id != owner) {
    return oauth_fail(OAuthCode::invalid_grant, "the refresh token was issued to another client");
  }
  auto grant = im.store->grant(old.grant_id);
  if (!grant) return std::unexpected(grant.error());
  if (!*grant || (*grant)->revoked) return oauth_fail(OAuthCode::invalid_grant, "the refresh token's grant is revoked");

  // Scope may only narrow: every scope asked for must be one of the grant's.
  const std::vector<std::string> granted = split_scopes((*grant)->scope);
  for (const auto& s : split_scopes(request.scope)) {
    if (std::find(granted.begin(), granted.end(), s) == granted.end()) {
      return oauth_fail(OAuthCode::invalid_scope, "scope '" + s + "' was not granted to this refresh token");
    }
  }
  IssueRequest issue;
  issue.client_id = old.client_id;
  issue.sub = (*grant)->sub;  // the real subject: issuing maps it to the client's pairwise one again
  issue.scope = request.scope.empty() ? (*grant)->scope : request.scope;
  issue.grant_id = old.grant_id;
  issue.with_refresh = im.policy.refresh.rotate;
  issue.cnf_x5t = request.cnf_x5t;  // the certificate of this request, not of the first one
  issue.cnf_jkt = request.cnf_jkt;  // likewise the DPoP key of this request (RFC 9449 §5)
  auto prepared = prepare_issue(im, issue, {});
  if (!prepared) return std::unexpected(prepared.error());
  if (!im.policy.refresh.rotate) {
    // The refresh token stays valid; only the new access token is stored.
    if (auto s = im.store->put(prepared->grant, prepared->records); !s) return std::unexpected(s.error());
    return std::move(prepared->response);
  }
  GrantRecord g = prepared->grant.value_or(**grant);
  auto redeemed = im.store->redeem(hash, g, prepared->records);
  if (!redeemed) return std::unexpected(redeemed.error());
  switch (*redeemed) {
    case Redeemed::ok: return std::move(prepared->response);
    case Redeemed::reused: return reuse();
    case Redeemed::inactive: break;
  }
  return oauth_fail(OAuthCode::invalid_grant, "the refresh token was revoked meanwhile");
}

}  // namespace tokctl::tokens
