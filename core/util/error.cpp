#include <tokctl/util/error.hpp>

namespace tokctl {

std::unexpected<Error> fail(ErrorCode code, std::string message, std::string hint) {
  return std::unexpected(Error{code, std::move(message), std::move(hint)});
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
