// tokctl keys: generate, convert and thumbprint keys.

#include <iostream>
#include <optional>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>
#include <openssl/crypto.h>

#include <tokctl/jose/jwe.hpp>
#include <tokctl/jose/keygen.hpp>
#include <tokctl/keys/keystore.hpp>
#include <tokctl/util/io.hpp>

#include "commands.hpp"
#include "common.hpp"
#include "render.hpp"

namespace tokctl::cli {
namespace {

struct GenerateOptions {
  std::string alg;
  std::string kid;
  std::optional<int> bits;
  std::optional<std::string> crv;
  std::string format = "jwk";
  std::string out;
  bool force = false;  ///< replace an existing --out file
};

struct ConvertOptions {
  std::string input = "-";
  std::string to;
  bool public_only = false;
};

struct ThumbprintOptions {
  std::string input = "-";
  std::string hash = "sha256";
};

Result<std::string> serialize(const jose::Jwk& key, const std::string& format, jose::KeyPart part) {
  if (format == "pem") return key.to_pem(part);
  return key.to_json(part).dump(2) + "\n";
}

int run_generate(const GenerateOptions& o) {
  auto key = jose::generate_key(jose::KeyGenOptions{o.alg, o.bits, o.crv});
  if (!key) return report(key.error());
  auto tp = key->thumbprint();
  if (!tp) return report(tp.error());
  key->set_kid(o.kid.empty() ? *tp : o.kid);
  if (o.format == "pem" && key->kty() == jose::KeyType::oct) {
    return report(Error{ErrorCode::usage, "HMAC secrets have no PEM form", "use --format jwk"});
  }
  auto text = serialize(*key, o.format, jose::KeyPart::with_private);
  if (!text) return report(text.error());
  auto pass = passphrase();
  if (!pass) return report(pass.error());
  if (*pass) {
    // Encrypted at rest: the key (JWK or PEM text) as a PBES2-HS512+A256KW compact JWE.
    auto pw = jose::Jwk::from_secret(**pass);
    if (!pw) return report(pw.error());
    jose::EncryptOptions eo;
    eo.alg = jose::KeyMgmtAlg::PBES2_HS512_A256KW;
    eo.enc = jose::ContentEnc::A256GCM;
    eo.cty = o.format == "pem" ? "application/pkcs8" : "jwk+json";
    eo.kid = key->kid();
    auto jwe = jose::encrypt_compact(*text, *pw, eo);
    if (!jwe) return report(jwe.error());
    *text = *jwe + "\n";
  }
  if (o.out.empty() || o.out == "-") {
    std::cout << *text;
    return 0;
  }
  // Never replaces an existing file (a key someone still needs) without --force.
  auto w = keys::write_output_file(o.out, *text, 0600, o.force ? keys::Overwrite::yes : keys::Overwrite::no);
  OPENSSL_cleanse(text->data(), text->size());
  if (!w) return report(w.error());
  if (json_output()) {
    print_json({{"kid", key->kid()}, {"alg", key->alg()}, {"file", o.out}, {"format", o.format}});
  } else if (!globals().quiet) {
    std::cerr << "wrote " << key->describe() << " to " << o.out << " (kid " << key->kid() << ", mode 0600)\n";
  }
  if (globals().quiet) std::cout << key->kid() << '\n';
  return 0;
}

// A key file argument (or - for stdin), decrypted when it is protected by a passphrase.
struct KeyArg {
  jose::Jwk key;
  bool was_pem = false;
};

Result<KeyArg> load_key_arg(const std::string& input) {
  auto raw = read_arg(input, false);
  if (!raw) return std::unexpected(raw.error());
  auto data = unlock_key_material(std::move(*raw), input == "-" ? "the key" : "'" + input + "'");
  if (!data) return std::unexpected(data.error());
  auto key = jose::parse_single_key(*data);
  if (!key) return std::unexpected(key.error());
  return KeyArg{std::move(*key), data->find("-----BEGIN") != std::string::npos};
}

int run_convert(const ConvertOptions& o) {
  auto arg = load_key_arg(o.input);
  if (!arg) return report(arg.error());
  auto key = &arg->key;
  std::string to = o.to;
  // Without --to: a private key flips format (the usual conversion), --public keeps the input's
  // format (a public JWK from a JWK, as `keys convert k.jwk --public > k.pub.jwk` expects).
  if (to.empty()) to = (arg->was_pem != o.public_only) ? "jwk" : "pem";
  jose::KeyPart part = o.public_only ? jose::KeyPart::public_only : jose::KeyPart::with_private;
  if (o.public_only && key->kty() == jose::KeyType::oct) {
    return report(Error{ErrorCode::usage, "an HMAC secret has no public part", {}});
  }
  auto text = serialize(*key, to, part);
  if (!text) return report(text.error());
  std::cout << *text;
  return 0;
}

int run_thumbprint(const ThumbprintOptions& o) {
  auto arg = load_key_arg(o.input);
  if (!arg) return report(arg.error());
  auto key = &arg->key;
  auto tp = key->thumbprint(o.hash);
  if (!tp) return report(tp.error());
  if (json_output()) print_json({{"thumbprint", *tp}, {"hash", o.hash}});
  else std::cout << *tp << '\n';
  return 0;
}

}  // namespace

void register_keys(CLI::App& app) {
  auto* keys = app.add_subcommand("keys", "Generate, convert and inspect keys; manage the keystore");
  keys->require_subcommand(1);
  examples(keys, {"tokctl keys generate --alg ES256 --out es256.jwk",
                  "tokctl keys convert es256.jwk --to pem --public",
                  "tokctl keys thumbprint es256.jwk"});

  auto g = std::make_shared<GenerateOptions>();
  auto* gen = keys->add_subcommand("generate", "Generate a private key (JWK with kid = RFC 7638 thumbprint)");
  choice_value(gen->add_option("--alg", g->alg, "Algorithm: HS*, RS*, PS*, ES*, EdDSA, or JWE RSA-OAEP*, ECDH-ES*, A128KW, A256KW, dir")
                   ->required(),
               key_alg_names(), ChoiceCheck::suggest);
  gen->add_option("--kid", g->kid, "Key id (default: the RFC 7638 thumbprint)");
  gen->add_option("--bits", g->bits, "RSA modulus bits (default 2048) or HMAC secret bits");
  choice_value(gen->add_option("--crv", g->crv, "Curve: Ed25519 (default)/Ed448 for EdDSA; P-256/P-384/P-521/X25519/X448 for ECDH-ES"),
               curve_names(), ChoiceCheck::suggest);
  gen->add_option("--format", g->format, "Output format: jwk or pem")
      ->check(CLI::IsMember({"jwk", "pem"}))
      ->capture_default_str();
  file_value(gen->add_option("--out", g->out, "Write to FILE (mode 0600, atomically) instead of stdout"));
  gen->add_flag("--force", g->force, "Replace an existing --out file");
  examples(gen, {"tokctl keys generate --alg ES256 --out es256.jwk",
                 "tokctl keys generate --alg RS256 --bits 3072 --format pem --out rsa.pem",
                 "tokctl keys generate --alg EdDSA --crv Ed448 --kid signer-1",
                 "tokctl keys generate --alg HS256 --out hs.jwk",
                 "tokctl keys generate --alg ECDH-ES+A256KW --crv X25519 --out recipient.jwk",
                 "tokctl keys generate --alg ES256 --passphrase-file pw.txt --out es256.jwe   # encrypted"});
  on_run(gen, [g] { return run_generate(*g); });

  auto c = std::make_shared<ConvertOptions>();
  auto* conv = keys->add_subcommand("convert", "Convert a key between JWK and PEM");
  file_value(conv->add_option("file", c->input, "Key file (JWK or PEM), or - for stdin"));
  conv->add_option("--to", c->to, "Target format: jwk or pem (default: the other one; with --public, the input's own)")
      ->check(CLI::IsMember({"jwk", "pem"}));
  conv->add_flag("--public", c->public_only, "Output only the public key");
  examples(conv, {"tokctl keys convert es256.jwk --to pem --public > es256.pub.pem",
                  "tokctl keys convert rsa.pem --to jwk",
                  "openssl genpkey -algorithm ed25519 | tokctl keys convert - --to jwk"});
  on_run(conv, [c] { return run_convert(*c); });

  auto t = std::make_shared<ThumbprintOptions>();
  auto* thp = keys->add_subcommand("thumbprint", "RFC 7638 JWK thumbprint (base64url)");
  file_value(thp->add_option("file", t->input, "Key file (JWK or PEM), or - for stdin"));
  thp->add_option("--hash", t->hash, "Hash: sha256, sha384, sha512 or sha1")
      ->check(CLI::IsMember({"sha256", "sha384", "sha512", "sha1"}))
      ->capture_default_str();
  examples(thp, {"tokctl keys thumbprint es256.jwk", "tokctl keys thumbprint cert.pem --hash sha1"});
  on_run(thp, [t] { return run_thumbprint(*t); });

  register_keystore_commands(keys);
}

}  // namespace tokctl::cli
