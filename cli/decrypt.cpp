// tokctl decrypt: a compact JWE with a key file, the passphrase (PBES2) or the keystore key of its kid.

#include <algorithm>
#include <cstdint>
#include <iostream>
#include <unistd.h>
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
#include <tokctl/util/utf8.hpp>

#include "commands.hpp"
#include "common.hpp"
#include "keyargs.hpp"
#include "render.hpp"

namespace tokctl::cli {
namespace {

using nlohmann::json;

struct DecryptCli {
  std::string token;  // the token, "-" or empty (stdin)
  std::string key;
};

const char* const k_no_key_hint =
    "pass --key FILE, --passphrase-file FILE (PBES2 tokens), or keep the key in the keystore "
    "(tokctl keys add --alg ECDH-ES+A256KW)";

// Text, not binary: valid UTF-8 without NUL.
bool valid_utf8_text(std::string_view s) { return s.find('\0') == std::string_view::npos && valid_utf8(s); }

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
    auto ks = existing_keystore("no decryption key given", k_no_key_hint);
    if (!ks) return report(ks.error());
    auto keys = ks->decryption_candidates(h->kid, h->alg, *pass);
    if (!keys) {
      if (keys.error().code == ErrorCode::usage) replace_hint(keys.error(), k_no_key_hint);
      return report(keys.error());
    }
    candidates = std::move(*keys);
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

void register_decrypt(CLI::App& app) {
  auto d = std::make_shared<DecryptCli>();
  auto* dec = app.add_subcommand(
      "decrypt",
      "Decrypt a compact JWE; prints the plaintext bytes exactly (no newline added; -o json: header + plaintext)");
  dash_positional(dec, file_value(dec->add_option("token", d->token, "The token, or - for stdin (default: stdin)")));
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
