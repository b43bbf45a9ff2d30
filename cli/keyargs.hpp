#pragma once
// --key / --jwks / --secret-file / --secret-env, shared by sign and verify.

#include <string>

#include <tokctl/jose/jwt.hpp>

namespace CLI {
class App;
}

namespace tokctl::cli {

struct KeyArgs {
  std::string key;
  std::string jwks;
  std::string secret_file;
  std::string secret_env;
};

/// Adds the key options (mutually exclusive); --jwks only when `with_jwks`.
void add_key_options(CLI::App* sub, KeyArgs& args, bool with_jwks);

/// True when any key option was given.
bool has_key(const KeyArgs& args);

/// Loads what the options name. A secret that is really public-key material (PEM, a non-oct JWK)
/// is refused: using it as an HMAC secret is the algorithm-confusion attack.
Result<jose::JwkSet> load_keys(const KeyArgs& args, jose::KeySource& source);

}  // namespace tokctl::cli
