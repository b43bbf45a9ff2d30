#pragma once
// Error model shared by every core module: fallible calls return Result<T>.

#include <expected>
#include <string>

namespace tokctl {

/// Error groups; each maps 1:1 to a documented exit code (see exit_code()).
enum class ErrorCode {
  invalid_token = 1,  ///< signature, expiry, claims, revoked
  usage = 2,          ///< bad flags or flag combinations
  malformed = 3,      ///< malformed token, JSON, YAML or key
  keystore = 4,       ///< keystore or store failure
  network = 5,        ///< network/TLS/HTTP failure
  remote_oauth = 6,   ///< remote OAuth error response
};

/// A typed sub-code where callers branch on the kind of failure (never on the message text).
enum class ErrorDetail {
  none,
  keystore_missing,  ///< no keystore at all at that path (nothing to load, nothing lost)
  http_4xx,          ///< a server answered a document request with a 4xx status (not there)
  signing_keys,      ///< the token service has no usable key ring or signing key (not a store failure)
  wrong_passphrase,  ///< a key file sealed at rest did not decrypt with the passphrase given
};

/// An OAuth error code (RFC 6749 §5.2, RFC 7009, RFC 8693 §2.2.2) carried by a refusal of the
/// token service; the HTTP server and the CLI render it, nobody parses it out of a message.
enum class OAuthCode {
  none,
  invalid_request,
  invalid_client,
  invalid_grant,
  unauthorized_client,
  unsupported_grant_type,
  invalid_scope,
  invalid_target,
  access_denied,
  server_error,
  temporarily_unavailable,
  invalid_dpop_proof,  ///< RFC 9449 §5 (token endpoint) and §7.1 (resource)
};

/// The wire name, e.g. "invalid_scope" ("" for none).
const char* to_string(OAuthCode code);

/// A remedy that a front end spells in its own terms (the CLI as a `tokctl ...` command line, the
/// server not at all). Core messages and hints are plain words that name no CLI flag or command.
enum class Remedy {
  none,
  add_signing_key,     ///< add an active signing key for the alg in `subject` ("" = the default)
  add_encryption_key,  ///< add a key-agreement (JWE) key, alg in `subject` ("" = the default)
  generate_key,        ///< generate a fresh key for the alg in `subject`
  rotate_key,          ///< rotate the keys of the alg in `subject`
  publish_jwks,        ///< publish the JWKS now, rotate later (alg in `subject`)
  import_key_file,     ///< import the key file in `subject` into the keystore
  check_config,        ///< check the policy file in `subject`
  allow_weak_keys,     ///< a weak key: verification can be forced while debugging
  pass_passphrase,     ///< the private keys are encrypted: supply the passphrase
  check_clock,         ///< the verification time looks wrong (a given time, or the clock)
  force_rotate,        ///< a rotation was refused as unsafe: wait, or force it in an emergency
  force_overwrite,     ///< a file exists: forcing replaces it
  name_alg,            ///< a key pins no alg: name one (an example in `subject`)
};

struct Error {
  ErrorCode code = ErrorCode::malformed;
  std::string message;  ///< for an OAuth refusal: the error_description (no code prefix)
  std::string hint;
  ErrorDetail detail = ErrorDetail::none;
  OAuthCode oauth = OAuthCode::none;  ///< set on refusals OAuth defines
  /// The request parameter the error is about, in neutral snake_case ("alg", "ttl",
  /// "min_next_age"): the CLI names it as its flag, the server as its form field.
  std::string param = {};
  Remedy remedy = Remedy::none;
  std::string subject = {};  ///< what the remedy applies to (an alg, a path)
};

template <class T>
using Result = std::expected<T, Error>;

/// Builds an unexpected Error, for `return fail(...)` in functions returning Result<T>.
std::unexpected<Error> fail(ErrorCode code, std::string message, std::string hint = {});

/// An error about one request parameter (see Error::param).
std::unexpected<Error> fail_param(ErrorCode code, std::string param, std::string message, std::string hint = {});

/// An error with a remedy the front end spells (see Remedy); `hint` says the same in plain words.
std::unexpected<Error> fail_remedy(ErrorCode code, std::string message, std::string hint, Remedy remedy,
                                   std::string subject = {});

/// An OAuth refusal: ErrorCode::invalid_token (exit 1) carrying `code`; `description` is the message.
std::unexpected<Error> oauth_fail(OAuthCode code, std::string description);

/// The process exit code for an error group.
constexpr int exit_code(ErrorCode code) { return static_cast<int>(code); }

/// Stable lower-case name of the group ("invalid_token", "malformed", ...).
const char* to_string(ErrorCode code);

}  // namespace tokctl
