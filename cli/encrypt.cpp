// tokctl encrypt / decrypt: compact JWE (RFC 7516) to a key file, a keystore key or a passphrase.

#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <iostream>
#include <optional>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>
#include <openssl/crypto.h>

#include <tokctl/jose/json.hpp>
#include <tokctl/jose/jwe.hpp>
#include <tokctl/keys/keystore.hpp>
#include <tokctl/tokens/policy.hpp>
#include <tokctl/util/base64.hpp>
#include <tokctl/util/io.hpp>

#include "commands.hpp"
#include "common.hpp"
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

struct DecryptCli {
  std::string token;  // the token, "-" or empty (stdin)
  std::string key;
};

const char* const k_no_key_hint =
    "pass --key FILE, --passphrase-file FILE (PBES2 tokens), or keep the key in the keystore "
    "(tokctl keys add --alg ECDH-ES+A256KW)";

bool is_pbes2(std::string_view alg) { return alg.rfind("PBES2-", 0) == 0; }

// The keystore, when there is one; a missing keystore means "no key was given" (usage).
Result<keys::Keystore> existing_keystore(const std::string& no_key_message, const char* hint) {
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

// ---- encrypt ------------------------------------------------------------------------------------

Result<jose::Jwk> keystore_entry_key(const keys::Keystore& ks, const keys::KeyEntry& e,
                                     const keys::Passphrase& pass) {
  if (e.public_jwk.empty()) return ks.load(e, pass);  // oct: the secret itself
  auto set = ks.jwks("enc");
  if (!set) return std::unexpected(set.error());
  for (auto& k : set->keys)
    if (k.kid() == e.kid) return k;
  return fail(ErrorCode::keystore, "the manifest has no public key for '" + e.kid + "'",
              "run tokctl keys check");
}

// The recipient key from the keystore: `kid`, or the active encryption key (of `alg` when given).
Result<jose::Jwk> keystore_recipient(const std::string& kid, const std::string& alg,
                                     const keys::Passphrase& pass) {
  auto ks = existing_keystore("no recipient key given",
                              "pass --key FILE (the recipient's public JWK or PEM), --kid KID (a keystore key), or "
                              "--alg PBES2-HS512+A256KW with --passphrase-file FILE");
  if (!ks) return std::unexpected(ks.error());
  auto m = ks->manifest();
  if (!m) return std::unexpected(m.error());
  if (!kid.empty()) {
    const keys::KeyEntry* e = m->find(kid);
    if (!e) return fail(ErrorCode::keystore, "no key '" + kid + "' in the keystore", "see: tokctl keys list");
    if (e->use != "enc") {
      return fail(ErrorCode::usage, "key '" + kid + "' is a signing key (" + e->alg + "), not an encryption key",
                  "add one: tokctl keys add --alg ECDH-ES+A256KW");
    }
    if (e->state == keys::KeyState::retired) {
      return fail(ErrorCode::keystore, "key '" + kid + "' is retired: it still decrypts but no longer receives",
                  "encrypt to the active key (omit --kid)");
    }
    return keystore_entry_key(*ks, *e, pass);
  }
  std::vector<const keys::KeyEntry*> active;
  for (const auto& e : m->keys)
    if (e.use == "enc" && e.state == keys::KeyState::active && (alg.empty() || e.alg == alg)) active.push_back(&e);
  if (active.empty()) {
    return fail(ErrorCode::usage,
                "no recipient key given, and the keystore has no active encryption key" +
                    (alg.empty() ? std::string() : " for " + alg),
                "pass --key FILE or --kid KID, or add one: tokctl keys add --alg " +
                    (alg.empty() ? std::string("ECDH-ES+A256KW") : alg) + " --state active");
  }
  if (active.size() > 1) {
    std::string algs;
    for (auto* e : active) algs += (algs.empty() ? "" : ", ") + e->alg;
    return fail(ErrorCode::usage, "several algs have an active encryption key (" + algs + ")",
                "pick one with --alg or --kid");
  }
  return keystore_entry_key(*ks, *active.front(), pass);
}

Result<jose::KeyMgmtAlg> choose_alg(const EncryptCli& o, const jose::Jwk& key) {
  std::string name = o.alg;
  if (name.empty() && !key.alg().empty()) {
    name = key.alg();
    // RFC 7520 §5.6: a dir key may name its enc instead.
    if (jose::content_enc_from_string(name)) name = "dir";
    if (!jose::key_mgmt_from_string(name)) {
      return fail(ErrorCode::usage, "the " + key.describe() + " is for " + key.alg() + ", not a JWE algorithm",
                  "use an encryption key (tokctl keys generate --alg ECDH-ES+A256KW), or pass --alg");
    }
  }
  if (name.empty()) {
    switch (key.kty()) {
      case jose::KeyType::rsa: name = "RSA-OAEP-256"; break;
      case jose::KeyType::ec: name = "ECDH-ES+A256KW"; break;
      case jose::KeyType::okp:
        if (key.crv() != "X25519" && key.crv() != "X448") {
          return fail(ErrorCode::usage, "the " + key.describe() + " is a signing key and cannot receive JWE",
                      "use an X25519/X448 or EC key: tokctl keys generate --alg ECDH-ES+A256KW --crv X25519");
        }
        name = "ECDH-ES+A256KW";
        break;
      case jose::KeyType::oct:
        if (key.secret().size() == 16) name = "A128KW";
        else if (key.secret().size() == 32) name = "A256KW";
        else {
          return fail(ErrorCode::usage,
                      "--alg is required: a " + std::to_string(key.secret().size()) + "-byte secret is no AES key-wrap key",
                      "A128KW takes 16 bytes, A256KW 32; --alg dir takes the enc key itself (16, 32 or 64 bytes)");
        }
        break;
    }
  }
  auto alg = jose::key_mgmt_from_string(name);
  if (!alg) {
    if (name == "RSA1_5") {
      return fail(ErrorCode::usage, "JWE alg RSA1_5 is not supported: it is open to padding-oracle attacks",
                  "use RSA-OAEP-256");
    }
    return fail(ErrorCode::usage, "unknown JWE alg '" + name + "'", "supported: " + jose::supported_key_mgmt_names());
  }
  return *alg;
}

Result<jose::ContentEnc> choose_enc(const EncryptCli& o, jose::KeyMgmtAlg alg, const jose::Jwk& key) {
  std::string name = o.enc;
  if (name.empty() && alg == jose::KeyMgmtAlg::dir) {
    // The key is the content key: its size (or an enc-named alg) decides.
    if (jose::content_enc_from_string(key.alg())) name = key.alg();
    else if (key.kty() == jose::KeyType::oct && key.secret().size() == 16) name = "A128GCM";
    else if (key.kty() == jose::KeyType::oct && key.secret().size() == 64) name = "A256CBC-HS512";
  }
  if (name.empty()) name = "A256GCM";
  auto enc = jose::content_enc_from_string(name);
  if (!enc) {
    return fail(ErrorCode::usage, "unknown JWE enc '" + name + "'", "supported: " + jose::supported_content_enc_names());
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
    auto k = keystore_recipient(o.kid, o.alg, *pass);
    if (!k) return report(k.error());
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

// ---- decrypt ------------------------------------------------------------------------------------

bool valid_utf8_text(std::string_view s) {
  std::size_t i = 0;
  while (i < s.size()) {
    auto c = static_cast<unsigned char>(s[i]);
    if (c == 0) return false;  // NUL: treat as binary
    std::size_t n;
    std::uint32_t cp;
    if (c < 0x80) { ++i; continue; }
    if ((c & 0xE0) == 0xC0) { n = 1; cp = c & 0x1F; }
    else if ((c & 0xF0) == 0xE0) { n = 2; cp = c & 0x0F; }
    else if ((c & 0xF8) == 0xF0) { n = 3; cp = c & 0x07; }
    else return false;
    if (i + n >= s.size()) return false;
    for (std::size_t k = 1; k <= n; ++k) {
      auto cc = static_cast<unsigned char>(s[i + k]);
      if ((cc & 0xC0) != 0x80) return false;
      cp = cp << 6 | (cc & 0x3F);
    }
    if ((n == 1 && cp < 0x80) || (n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) || cp > 0x10FFFF ||
        (cp >= 0xD800 && cp <= 0xDFFF)) {
      return false;
    }
    i += n + 1;
  }
  return true;
}

struct TokenHeader {
  json header;
  std::string alg;
  std::string kid;
};

// The protected header, read before choosing a key. Structure errors are ErrorCode::malformed.
Result<TokenHeader> read_header(const std::string& token) {
  auto dots = std::count(token.begin(), token.end(), '.');
  if (dots != 4) {
    return fail(ErrorCode::malformed,
                "not a compact JWE: expected 5 dot-separated parts, got " + std::to_string(dots + 1),
                dots == 2   ? "this looks like a JWS: use tokctl verify or tokctl decode"
                : ::access(token.c_str(), F_OK) == 0 ? "the argument is the token itself; for a file use: tokctl decrypt - < " + token
                                     : std::string());
  }
  auto raw = b64url_decode(std::string_view(token).substr(0, token.find('.')));
  if (!raw) return fail(ErrorCode::malformed, "JWE protected header: " + raw.error().message);
  auto header = jose::parse_json_object(*raw, "JWE protected header");
  if (!header) return std::unexpected(header.error());
  TokenHeader h;
  h.header = std::move(*header);
  if (auto it = h.header.find("alg"); it != h.header.end() && it->is_string()) h.alg = it->get<std::string>();
  if (auto it = h.header.find("kid"); it != h.header.end() && it->is_string()) h.kid = it->get<std::string>();
  return h;
}

// Candidate private keys from the keystore: the header's kid, else every encryption key of the
// token's alg. A keystore that does not exist or has no fitting key is "no key" (usage).
Result<std::vector<jose::Jwk>> keystore_candidates(const TokenHeader& h, const keys::Passphrase& pass) {
  auto ks = existing_keystore("no decryption key given", k_no_key_hint);
  if (!ks) return std::unexpected(ks.error());
  auto m = ks->manifest();
  if (!m) return std::unexpected(m.error());
  std::vector<jose::Jwk> keys;
  if (!h.kid.empty()) {
    const keys::KeyEntry* e = m->find(h.kid);
    if (!e || e->use != "enc") {
      return fail(ErrorCode::usage, "no encryption key '" + h.kid + "' (the token's kid) in the keystore at '" +
                                        ks->dir() + "'",
                  "pass --key FILE with the recipient's private key");
    }
    auto set = ks->decryption_keys(h.kid, pass);
    if (!set) return std::unexpected(set.error());
    return std::move(set->keys);
  }
  for (const auto& e : m->keys) {
    if (e.use != "enc" || e.alg != h.alg) continue;
    auto k = ks->load(e, pass);
    if (!k) return std::unexpected(k.error());
    keys.push_back(std::move(*k));
  }
  if (keys.empty()) {
    return fail(ErrorCode::usage, "the token has no kid and the keystore has no " + h.alg + " key", k_no_key_hint);
  }
  return keys;
}

int print_plaintext(const jose::DecryptedJwe& d) {
  if (json_output()) {
    const bool text = valid_utf8_text(d.plaintext);
    print_json({{"header", d.header},
                {"plaintext", text ? d.plaintext : b64url_encode(d.plaintext)},
                {"encoding", text ? "utf8" : "base64url"}});
  } else {
    std::cout.write(d.plaintext.data(), static_cast<std::streamsize>(d.plaintext.size()));
    std::cout.flush();
  }
  return 0;
}

int run_decrypt(const DecryptCli& o) {
  if (o.key == "-" && (o.token.empty() || o.token == "-")) {
    return report(Error{ErrorCode::usage, "the key and the token cannot both come from stdin",
                        "pass the token as an argument"});
  }
  auto token = read_token(o.token);
  if (!token) return report(token.error());
  auto h = read_header(*token);
  if (!h) return report(h.error());
  // Refused or unknown alg/enc and zip: the core's verdict (exit 1), before any key is looked up.
  if (h->header.contains("zip") || !jose::key_mgmt_from_string(h->alg) ||
      !h->header.contains("enc") || !h->header["enc"].is_string() ||
      !jose::content_enc_from_string(h->header["enc"].get<std::string>())) {
    auto probe = jose::Jwk::from_secret(std::string(32, '\0'));
    if (!probe) return report(probe.error());
    auto r = jose::decrypt_compact(*token, *probe);
    if (!r) return report(r.error());
  }
  auto pass = passphrase();
  if (!pass) return report(pass.error());

  std::vector<jose::Jwk> candidates;
  std::string from;
  if (!o.key.empty()) {
    auto set = load_key_file(o.key);
    if (!set) return report(set.error());
    // One key is always tried (a kid mismatch is reported if it fails); a set is filtered by kid.
    for (auto& k : set->keys)
      if (set->keys.size() == 1 || h->kid.empty() || k.kid().empty() || k.kid() == h->kid) {
        candidates.push_back(std::move(k));
      }
    if (candidates.empty()) {
      return report(Error{ErrorCode::usage, "'" + o.key + "' has no key with the token's kid '" + h->kid + "'",
                          "keys there: " + set->kid_list()});
    }
    from = "'" + o.key + "'";
  } else if (is_pbes2(h->alg)) {
    if (!*pass) {
      return report(Error{ErrorCode::usage, "the token is encrypted with a passphrase (" + h->alg + ")",
                          "pass --passphrase-file FILE or set TOKCTL_PASSPHRASE"});
    }
    auto k = jose::Jwk::from_secret(**pass);
    if (!k) return report(k.error());
    candidates.push_back(std::move(*k));
    from = "the passphrase";
  } else {
    auto ks = keystore_candidates(*h, *pass);
    if (!ks) return report(ks.error());
    candidates = std::move(*ks);
    from = "the keystore";
  }

  std::optional<Error> last;
  for (const auto& key : candidates) {
    auto d = jose::decrypt_compact(*token, key);
    if (d) return print_plaintext(*d);
    last = d.error();
    // Structure and refusals do not depend on the key: no point trying the others.
    if (last->code != ErrorCode::invalid_token) break;
  }
  if (candidates.size() == 1 && last->code == ErrorCode::invalid_token && !h->kid.empty() &&
      !candidates.front().kid().empty() && candidates.front().kid() != h->kid) {
    last->hint = "the token is for kid '" + h->kid + "', the key is '" + candidates.front().kid() + "'";
  }
  if (candidates.size() > 1 && last->code == ErrorCode::invalid_token) {
    last->message = "none of the " + std::to_string(candidates.size()) + " keys in " + from +
                    " decrypts the token; last reason: " + last->message;
  }
  return report(*last);
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

  auto d = std::make_shared<DecryptCli>();
  auto* dec = app.add_subcommand(
      "decrypt",
      "Decrypt a compact JWE; prints the plaintext bytes exactly (no newline added; -o json: header + plaintext)");
  file_value(dec->add_option("token", d->token, "The token, or - for stdin (default: stdin)"));
  file_value(dec->add_option("--key", d->key,
                             "Private key file (JWK, JWKS or PEM; sniffed). Default: the passphrase for PBES2 tokens, "
                             "else the keystore key named by the token's kid"));
  examples(dec, {"tokctl decrypt - --key recipient.jwk < secret.jwe > secret.txt",
                 "tokctl decrypt \"$TOKEN\"                      # key from the keystore (token's kid)",
                 "tokctl decrypt - --passphrase-file pw.txt < notes.jwe",
                 "tokctl decrypt \"$NESTED\" --key enc.jwk | tokctl verify - --key es256.pub.jwk",
                 "tokctl -o json decrypt \"$TOKEN\" --key a256kw.jwk   # binary plaintext comes base64url-encoded"});
  dec->footer(
      "\nKey lookup: --key FILE; else, for PBES2 tokens, the passphrase (--passphrase-file or TOKCTL_PASSPHRASE);\n"
      "else the keystore key named by the token's kid (keys encrypted at rest need the passphrase too).\n"
      "Exit codes: 1 wrong key, tampered token, refused alg (RSA1_5), zip, or p2c above 1,000,000; 2 no key;\n"
      "3 malformed token; 4 keystore problem.\n" + dec->get_footer());
  on_run(dec, [d] { return run_decrypt(*d); });
}

}  // namespace tokctl::cli
