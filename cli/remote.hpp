#pragma once
// Remote mode's command-line side: --server/--profile and the client and transport options shared by
// issue, introspect, revoke, exchange (and a subset for verify), resolved against the environment
// ($TOKCTL_SERVER, $TOKCTL_CLIENT_ID, $TOKCTL_CLIENT_SECRET[_FILE], $TOKCTL_PROFILE) and the
// policy's profiles, into a transport, the server's endpoints and an OAuth client.

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include <tokctl/jose/jwt.hpp>
#include <tokctl/remote/oauth.hpp>

namespace CLI {
class App;
}

namespace tokctl::cli {

struct RemoteArgs {
  std::string server;
  std::string profile;
  std::string* client_id = nullptr;  ///< the command's own --client-id (else own_client_id)
  std::string own_client_id;
  std::string client_secret;         ///< --client-secret (warned about: visible in ps)
  std::string client_secret_file;
  std::string auth_method;
  std::string client_key;  ///< private_key_jwt key file
  std::string dpop_key;    ///< RFC 9449 proof key file (token requests: issue, exchange)
  std::string cert, key;   ///< client certificate (tls_client_auth, mTLS)
  std::string cacert;
  bool insecure = false;
  std::string timeout = "30s";
  int retries = 2;
  bool offline = false;
  std::string token_endpoint, introspection_endpoint, revocation_endpoint, jwks_uri;
};

/// Which options a command takes.
enum class RemoteOptions {
  client,  ///< everything: server, client authentication, transport, endpoints (issue, introspect, ...)
  jwks,    ///< --server/--profile, --jwks-url, --cacert, --insecure-tls, --timeout, --offline (verify)
};

/// Adds the options; `client_id` is the command's --client-id (added here when null).
void add_remote_options(CLI::App* cmd, RemoteArgs& args, RemoteOptions which);

/// Adds --dpop-key (commands that send token requests).
void add_dpop_option(CLI::App* cmd, RemoteArgs& args);

/// Whether the command runs against a server: a server, profile or endpoint option, or (when
/// `environment`) $TOKCTL_SERVER / $TOKCTL_PROFILE.
bool remote_requested(const RemoteArgs& args, bool environment);

enum class Endpoint { token, introspection, revocation, jwks };

/// A resolved remote session: one transport (connections reused), the cache, the endpoints and,
/// with client authentication, the OAuth client.
struct Remote {
  remote::HttpClient http;
  remote::DocumentCache cache;
  remote::ServerEndpoints endpoints;
  std::unique_ptr<remote::OAuthClient> client;
  std::string client_id;
};

/// Resolves the options into a session that can reach every endpoint in `needs` (discovering what
/// the options do not name); `client_auth` also resolves the client's credentials.
Result<std::unique_ptr<Remote>> open_remote(const RemoteArgs& args, std::initializer_list<Endpoint> needs,
                                            bool client_auth);

/// A server's JWKS through the cache, for verifying its tokens (verify --server/--profile/--jwks-url,
/// introspect --jwt), and the one refetch an unknown kid allows, rebuilding the verifier on the
/// new keys.
struct RemoteKeys {
  std::unique_ptr<Remote> session;  ///< owned here when the keys are the command's only remote use
  std::optional<remote::RemoteJwks> jwks;
  std::function<Result<jose::TokenVerifier>(jose::JwkSet)> rebuild;

  /// After a kid_not_found: a verifier on refetched keys, or nullopt (the reason in `why_not`).
  Result<std::optional<jose::TokenVerifier>> refetch(std::string& why_not);
};

/// Whether the report's problems include an unknown kid (the cue for RemoteKeys::refetch).
bool kid_not_found(const jose::VerifyReport& report);

/// An RFC 7523 JWT bearer assertion signed with the keystore's active signing key (or `key_file`):
/// iss, sub, aud, iat, exp (5 minutes), jti.
Result<std::string> mint_assertion(const std::string& key_file, const std::string& iss, const std::string& sub,
                                   const std::string& aud);

/// RFC 8693 §2.1 token exchange: what `exchange` takes, and `issue --server --grant token-exchange`.
struct TokenExchangeArgs {
  std::string subject_token;  ///< the token, a file holding it, or - for stdin
  std::string subject_token_type = "access_token";
  std::string actor_token;
  std::string actor_token_type;  ///< empty: access_token when there is an actor token
  std::string requested_token_type = "access_token";
  std::vector<std::string> audience;
  std::vector<std::string> resource;
  std::string scope;
};

/// Adds --subject-token, --subject-token-type, --actor-token, --actor-token-type and
/// --requested-token-type to `cmd`, in `group` (CLI11's default group when empty).
void add_token_exchange_options(CLI::App* cmd, TokenExchangeArgs& args, const std::string& group = {});

/// The subject and actor tokens, read (files, stdin) and normalised.
struct ExchangeTokens {
  std::string subject;
  std::optional<std::string> actor;
};
/// Reads the tokens; a usage error for both from stdin, an actor type without an actor token, or
/// an empty token.
Result<ExchangeTokens> read_exchange_tokens(const TokenExchangeArgs& args);

/// The token endpoint parameters of RFC 8693 §2.1: grant_type, subject_token(_type), the actor
/// token and its type (access_token unless given), each audience and resource (repeated), scope,
/// requested_token_type; token types as URNs.
remote::Fields token_exchange_params(const TokenExchangeArgs& args, ExchangeTokens tokens);

/// Prints a token endpoint response: with -o json the whole object; else the access token (as an
/// Authorization header with `header`), then the refresh and ID tokens, one per line.
int print_token_response(const nlohmann::json& response, bool header);

/// Remote-only options given without a server: a usage error naming the first one set.
Result<void> refuse_remote_only(std::initializer_list<std::pair<const char*, bool>> given);

/// Local-only options given in remote mode: a usage error naming the first one set.
Result<void> refuse_local_options(std::initializer_list<std::pair<const char*, bool>> given);

}  // namespace tokctl::cli
