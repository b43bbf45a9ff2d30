// tokctl encrypt: compact JWE (RFC 7516) to a key file, a keystore key or a passphrase.

#include <algorithm>
#include <cstdint>
#include <iostream>
#include <memory>
#include <optional>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>
#include <openssl/crypto.h>

#include <tokctl/jose/json.hpp>
#include <tokctl/jose/jwe.hpp>
#include <tokctl/keys/keystore.hpp>
#include <tokctl/util/base64.hpp>
#include <tokctl/util/io.hpp>

#include "commands.hpp"
#include "common.hpp"
#include "keyargs.hpp"
#include "render.hpp"

namespace tokctl::cli {
namespace {

using nlohmann::json;

struct EncryptCli {
  std::string payload;  // file, "-" or empty (stdin)
  std::string key;
  std::string kid;
  std::string alg;
  std::string enc;
  std::string cty;
  std::optional<int> p2c;
};

const char* const k_recipient_hint =
    "pass --key FILE (the recipient's public JWK or PEM), --kid KID (a keystore key), or "
    "--alg PBES2-HS512+A256KW with --passphrase-file FILE";

Result<jose::KeyMgmtAlg> choose_alg(const EncryptCli& o, const jose::Jwk& key) {
  if (o.alg.empty()) {
    return jose::default_key_management(key);
  }
  auto alg = jose::key_mgmt_from_string(o.alg);
  if (!alg) {
    if (o.alg == "RSA1_5") {
      return fail(ErrorCode::usage, "JWE alg RSA1_5 is not supported: it is open to padding-oracle attacks",
                  "use RSA-OAEP-256");
    }
    return fail(ErrorCode::usage, "unknown JWE alg '" + o.alg + "'", "supported: " + jose::supported_key_mgmt_names());
  }
  return *alg;
}

Result<jose::ContentEnc> choose_enc(const EncryptCli& o, jose::KeyMgmtAlg alg, const jose::Jwk& key) {
  if (o.enc.empty()) return jose::default_content_enc(alg, key);
  auto enc = jose::content_enc_from_string(o.enc);
  if (!enc) {
    return fail(ErrorCode::usage, "unknown JWE enc '" + o.enc + "'", "supported: " + jose::supported_content_enc_names());
  }
  return *enc;
}

int run_encrypt(const EncryptCli& o) {
  if (o.key == "-" && (o.payload.empty() || o.payload == "-")) {
    return report(Error{ErrorCode::usage, "the key and the payload cannot both come from stdin",
                        "pass the payload as a file"});
  }
  auto pass = passphrase();
  if (!pass) return report(pass.error());
  const bool pbes2 = is_pbes2(o.alg);

  std::optional<jose::Jwk> key;
  if (!o.key.empty()) {
    auto set = load_key_file(o.key);
    if (!set) return report(set.error());
    if (set->keys.size() != 1) {
      return report(Error{ErrorCode::usage,
                          "'" + o.key + "' holds " + std::to_string(set->keys.size()) + " keys; encrypt needs one",
                          "extract the recipient's key, or keep it in the keystore and use --kid"});
    }
    key = set->keys.front();
  } else if (!o.kid.empty() || !pbes2) {
    auto ks = existing_keystore("no recipient key given", k_recipient_hint);
    if (!ks) return report(ks.error());
    auto k = ks->encryption_recipient(o.kid, o.alg, *pass);
    if (!k) {
      if (k.error().code == ErrorCode::usage && o.kid.empty()) replace_hint(k.error(), k_recipient_hint);
      return report(k.error());
    }
    key = std::move(*k);
  } else {
    if (!*pass) {
      return report(Error{ErrorCode::usage, o.alg + " encrypts with a passphrase, and none was given",
                          "pass --passphrase-file FILE or set TOKCTL_PASSPHRASE"});
    }
    auto k = jose::Jwk::from_secret(**pass);
    if (!k) return report(k.error());
    key = std::move(*k);
  }

  auto alg = choose_alg(o, *key);
  if (!alg) return report(alg.error());
  auto enc = choose_enc(o, *alg, *key);
  if (!enc) return report(enc.error());

  auto payload = read_arg(o.payload, false);
  if (!payload) return report(payload.error());
  std::string plaintext = std::move(*payload);
  const bool nested = o.cty == "JWT" || o.cty == "jwt";
  if (nested) {
    // A token, typically piped from `tokctl sign` with its trailing newline.
    plaintext = std::string(trim(plaintext));
    auto dots = std::count(plaintext.begin(), plaintext.end(), '.');
    if (dots != 2 && dots != 4) {
      return report(Error{ErrorCode::malformed, "--cty JWT expects a compact JWS or JWE as the payload",
                          "e.g. tokctl sign --key k.jwk --sub alice | tokctl encrypt --cty JWT --key rcpt.jwk"});
    }
  }

  jose::EncryptOptions eo;
  eo.alg = *alg;
  eo.enc = *enc;
  eo.cty = o.cty;
  eo.kid = key->kid();  // none for a passphrase
  eo.p2c = o.p2c;
  if (o.p2c && !is_pbes2(jose::to_string(*alg))) {
    return report(Error{ErrorCode::usage, "--p2c only applies to the PBES2 algorithms", {}});
  }
  auto token = jose::encrypt_compact(plaintext, *key, eo);
  if (!plaintext.empty()) OPENSSL_cleanse(plaintext.data(), plaintext.size());
  if (!token) return report(token.error());
  if (json_output()) {
    json j{{"token", *token}, {"alg", jose::to_string(*alg)}, {"enc", jose::to_string(*enc)}};
    if (!eo.kid.empty()) j["kid"] = eo.kid;
    if (!eo.cty.empty()) j["cty"] = eo.cty;
    print_json(j);
  } else {
    std::cout << *token << '\n';
  }
  return 0;
}

}  // namespace

void register_encrypt(CLI::App& app) {
  auto e = std::make_shared<EncryptCli>();
  auto* enc = app.add_subcommand("encrypt", "Encrypt a payload to a recipient key or a passphrase (compact JWE)");
  file_value(enc->add_option("payload", e->payload, "Payload file, or - for stdin (default: stdin)"));
  auto* key = file_value(
      enc->add_option("--key", e->key, "Recipient key file (JWK or PEM, sniffed; the public key is enough)"));
  auto* kid = enc->add_option("--kid", e->kid, "Encrypt to this keystore key (its public key; no passphrase needed)");
  key->excludes(kid);
  choice_value(enc->add_option("--alg", e->alg,
                               "Key management: RSA-OAEP, RSA-OAEP-256, ECDH-ES[+A128KW|+A256KW], A128KW, A256KW, "
                               "dir, PBES2-HS256+A128KW, PBES2-HS512+A256KW (default: the key's alg, else by key type)"),
               jwe_alg_names(), ChoiceCheck::suggest);
  choice_value(enc->add_option("--enc", e->enc, "Content encryption: A128GCM, A256GCM (default), A128CBC-HS256, A256CBC-HS512"),
               jwe_enc_names(), ChoiceCheck::suggest);
  enc->add_option("--cty", e->cty, "cty header; JWT for a nested JWT (the payload is then a token)");
  enc->add_option("--p2c", e->p2c, "PBES2 iteration count (default 600000 for HS256, 210000 for HS512)")
      ->check(CLI::Range(jose::k_pbes2_min_p2c, 1000000));
  examples(enc, {"tokctl encrypt secret.txt --key recipient.pub.jwk > secret.jwe",
                 "echo hello | tokctl encrypt --key rsa.pub.pem --alg RSA-OAEP --enc A128CBC-HS256",
                 "tokctl sign --key es256.jwk --sub alice --exp +5m | tokctl encrypt --cty JWT --kid enc-1",
                 "tokctl encrypt notes.md --passphrase-file pw.txt --alg PBES2-HS512+A256KW",
                 "tokctl -o json encrypt data.bin --key a256kw.jwk"});
  on_run(enc, [e] { return run_encrypt(*e); });
}

}  // namespace tokctl::cli
