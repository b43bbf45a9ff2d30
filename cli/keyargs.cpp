#include "keyargs.hpp"

#include <algorithm>
#include <cstdlib>

#include <CLI/CLI.hpp>
#include <openssl/crypto.h>

#include <nlohmann/json.hpp>

#include <tokctl/jose/json.hpp>
#include <tokctl/util/io.hpp>

#include "common.hpp"

namespace tokctl::cli {
namespace {

Result<jose::Jwk> secret_key(std::string secret, const std::string& from) {
  // A trailing newline from `echo secret > file` is not part of the secret.
  if (!secret.empty() && secret.back() == '\n') secret.pop_back();
  if (!secret.empty() && secret.back() == '\r') secret.pop_back();
  // A JSON document is never a raw secret: a JWK belongs in --key. One that is not even strict JSON
  // (duplicate members, a BOM, NUL) is malformed, so it cannot slip through as HMAC key bytes.
  if (std::string_view t = trim(secret); !t.empty() && t.front() == '{') {
    auto j = jose::parse_json_strict(t, from);
    if (!j && t.find("\"kty\"") != std::string_view::npos) return std::unexpected(j.error());
    if (j && j->is_object()) {
      return fail(ErrorCode::usage, from + " holds a JSON object (a JWK?), not a raw HMAC secret",
                  "pass JWK files with --key");
    }
  }
  if (jose::looks_like_asymmetric_key(secret)) {
    return fail(ErrorCode::invalid_token,
                from + " holds public-key material, refusing to use it as an HMAC secret",
                "HMAC with a public key as the secret is the algorithm-confusion attack; use --key for "
                "RSA/EC/OKP keys");
  }
  auto k = jose::Jwk::from_secret(std::move(secret));
  if (!k) k.error().message = from + ": " + k.error().message;
  return k;
}

}  // namespace

void add_key_options(CLI::App* sub, KeyArgs& args, bool with_jwks) {
  auto* key = file_value(sub->add_option("--key", args.key, "Key file (JWK or PEM, sniffed), or - for stdin"));
  CLI::Option* jwks = nullptr;
  if (with_jwks) jwks = file_value(sub->add_option("--jwks", args.jwks, "JWKS file; the token's kid selects the key"));
  auto* sf = file_value(sub->add_option("--secret-file", args.secret_file, "File holding a raw HMAC secret"));
  auto* se = sub->add_option("--secret-env", args.secret_env, "Environment variable holding a raw HMAC secret");
  key->excludes(sf)->excludes(se);
  sf->excludes(se);
  if (jwks) jwks->excludes(key)->excludes(sf)->excludes(se);
}

bool has_key(const KeyArgs& a) {
  return !a.key.empty() || !a.jwks.empty() || !a.secret_file.empty() || !a.secret_env.empty();
}

// A file that cannot be read is named with the option that gave it (--key: cannot open ...).
static std::unexpected<Error> of_option(Error e, const char* param) {
  if (e.param.empty()) e.param = param;
  return std::unexpected(std::move(e));
}

Result<jose::JwkSet> load_keys(const KeyArgs& a, jose::KeySource& source) {
  source = jose::KeySource::single;
  if (!a.secret_env.empty()) {
    const char* v = std::getenv(a.secret_env.c_str());
    if (!v) {
      return fail(ErrorCode::usage, "environment variable " + a.secret_env + " is not set");
    }
    auto k = secret_key(v, "$" + a.secret_env);
    if (!k) return std::unexpected(k.error());
    return jose::JwkSet{{std::move(*k)}};
  }
  if (!a.secret_file.empty()) {
    warn_if_readable_by_others(a.secret_file, "secret file");
    auto data = read_input(a.secret_file);
    if (!data) return of_option(data.error(), "secret_file");
    auto k = secret_key(std::move(*data), "'" + a.secret_file + "'");
    if (!k) return std::unexpected(k.error());
    return jose::JwkSet{{std::move(*k)}};
  }
  const std::string& path = a.jwks.empty() ? a.key : a.jwks;
  if (path.empty()) {
    return fail(ErrorCode::usage, "no key given",
                "pass one of --key FILE, --jwks FILE, --secret-file FILE or --secret-env NAME");
  }
  auto raw = read_input(path);
  if (!raw) return of_option(raw.error(), a.jwks.empty() ? "key" : "jwks");
  auto data = unlock_key_material(std::move(*raw), "'" + path + "'");
  if (!data) return std::unexpected(data.error());
  auto set = jose::parse_key_material(*data);
  if (!set) {
    set.error().message = "'" + path + "': " + set.error().message;
    return set;
  }
  if (std::any_of(set->keys.begin(), set->keys.end(),
                  [](const jose::Jwk& k) { return k.has_private() || k.kty() == jose::KeyType::oct; })) {
    warn_if_readable_by_others(path, "private key file");
  }
  if (!a.jwks.empty()) {
    source = jose::KeySource::set;
  } else if (set->keys.size() != 1) {
    return fail(ErrorCode::usage, "'" + path + "' holds " + std::to_string(set->keys.size()) + " keys",
                "use --jwks for a key set");
  }
  return set;
}

bool is_pbes2(std::string_view alg) { return alg.rfind("PBES2-", 0) == 0; }

// The keystore, when there is one; a missing keystore means "no key was given" (usage).
Result<keys::Keystore> existing_keystore(const std::string& no_key_message, const std::string& hint) {
  auto ks = open_keystore(false);
  if (!ks && ks.error().detail == ErrorDetail::keystore_missing) {
    return fail(ErrorCode::usage, no_key_message + " (" + ks.error().message + ")", hint);
  }
  return ks;
}

// Loads a key file (JWK, JWKS, PEM, DER, sniffed); one encrypted at rest needs the passphrase.
Result<jose::JwkSet> load_key_file(const std::string& path) {
  auto raw = read_input(path);
  if (!raw) return std::unexpected(raw.error());
  auto data = unlock_key_material(std::move(*raw), "key file '" + path + "'");
  if (!data) return std::unexpected(data.error());
  auto set = jose::parse_key_material(*data);
  OPENSSL_cleanse(data->data(), data->size());
  if (!set) set.error().message = "'" + path + "': " + set.error().message;
  return set;
}

}  // namespace tokctl::cli
