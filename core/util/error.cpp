#include <tokctl/util/error.hpp>

namespace tokctl {

std::unexpected<Error> fail(ErrorCode code, std::string message, std::string hint) {
  return std::unexpected(Error{code, std::move(message), std::move(hint)});
}

std::unexpected<Error> fail_param(ErrorCode code, std::string param, std::string message, std::string hint) {
  Error e{code, std::move(message), std::move(hint)};
  e.param = std::move(param);
  return std::unexpected(std::move(e));
}

std::unexpected<Error> fail_remedy(ErrorCode code, std::string message, std::string hint, Remedy remedy,
                                   std::string subject) {
  Error e{code, std::move(message), std::move(hint)};
  e.remedy = remedy;
  e.subject = std::move(subject);
  return std::unexpected(std::move(e));
}

std::unexpected<Error> oauth_fail(OAuthCode code, std::string description) {
  return std::unexpected(Error{ErrorCode::invalid_token, std::move(description), {}, ErrorDetail::none, code});
}

const char* to_string(OAuthCode code) {
  switch (code) {
    case OAuthCode::none: return "";
    case OAuthCode::invalid_request: return "invalid_request";
    case OAuthCode::invalid_client: return "invalid_client";
    case OAuthCode::invalid_grant: return "invalid_grant";
    case OAuthCode::unauthorized_client: return "unauthorized_client";
    case OAuthCode::unsupported_grant_type: return "unsupported_grant_type";
    case OAuthCode::invalid_scope: return "invalid_scope";
    case OAuthCode::invalid_target: return "invalid_target";
    case OAuthCode::access_denied: return "access_denied";
    case OAuthCode::server_error: return "server_error";
    case OAuthCode::temporarily_unavailable: return "temporarily_unavailable";
    case OAuthCode::invalid_dpop_proof: return "invalid_dpop_proof";
  }
  return "";
}

const char* to_string(ErrorCode code) {
  switch (code) {
    case ErrorCode::invalid_token: return "invalid_token";
    case ErrorCode::usage: return "usage";
    case ErrorCode::malformed: return "malformed";
    case ErrorCode::keystore: return "keystore";
    case ErrorCode::network: return "network";
    case ErrorCode::remote_oauth: return "remote_oauth";
  }
  return "unknown";
}

}  // namespace tokctl
