#pragma once
// --key / --jwks / --secret-file / --secret-env, shared by sign and verify; key files and the
// keystore for encrypt and decrypt.

#include <string>

#include <string_view>

#include <tokctl/jose/jwt.hpp>
#include <tokctl/keys/keystore.hpp>

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

/// True for the PBES2 (passphrase) JWE algs.
bool is_pbes2(std::string_view alg);

/// The keystore, when there is one; a missing keystore means "no key was given" (usage, with
/// `no_key_message` and `hint`).
Result<keys::Keystore> existing_keystore(const std::string& no_key_message, const std::string& hint);

/// Loads a key file (JWK, JWKS, PEM, DER, sniffed); one encrypted at rest needs the passphrase.
Result<jose::JwkSet> load_key_file(const std::string& path);

}  // namespace tokctl::cli
