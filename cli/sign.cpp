// tokctl sign: a compact JWS of any payload, or of a JWT claims set built from flags.

#include <iostream>
#include <optional>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>
#include <openssl/rand.h>

#include <tokctl/jose/json.hpp>
#include <tokctl/jose/jws.hpp>
#include <tokctl/tokens/policy.hpp>
#include <tokctl/util/time.hpp>
#include <tokctl/util/base64.hpp>

#include "commands.hpp"
#include "common.hpp"
#include "keyargs.hpp"
#include "render.hpp"

namespace tokctl::cli {
namespace {

struct SignOptions {
  std::string payload;  // empty: claims from flags only
  KeyArgs keys;
  std::string alg;
  std::string kid;
  std::string typ;
  std::vector<std::string> headers;
  std::string iss, sub, exp, nbf, iat, jti;
  std::vector<std::string> aud;
  std::vector<std::string> claims;
  bool claims_flags = false;
};

Result<std::pair<std::string, nlohmann::json>> name_value(const std::string& arg, const char* flag) {
  auto eq = arg.find('=');
  if (eq == std::string::npos || eq == 0) {
    return fail(ErrorCode::usage, std::string(flag) + " expects NAME=VALUE, got '" + arg + "'");
  }
  std::string name = arg.substr(0, eq);
  auto value = claim_value(std::string(flag) + " " + name, arg.substr(eq + 1));
  if (!value) return std::unexpected(value.error());
  return std::make_pair(std::move(name), std::move(*value));
}

Result<jose::Alg> choose_alg(const SignOptions& o, const jose::Jwk& key) {
  std::string name = o.alg.empty() ? key.alg() : o.alg;
  if (name.empty()) {
    // Unambiguous for EC and EdDSA keys; RSA and HMAC have several algs, so ask.
    if (auto implied = jose::implied_jws_alg(key)) {
      name = *implied;
    } else {
      return fail(ErrorCode::usage, "--alg is required: the " + key.describe() + " does not pin an algorithm",
                  key.kty() == jose::KeyType::rsa ? "e.g. --alg RS256 or --alg PS256" : "e.g. --alg HS256");
    }
  }
  auto alg = jose::alg_from_string(name);
  if (!alg) {
    if (name == "none") {
      return fail(ErrorCode::usage, "alg \"none\" is not supported: tokctl only makes signed tokens");
    }
    return fail(ErrorCode::usage, "unknown alg '" + name + "'", "supported: " + jose::supported_alg_names());
  }
  return *alg;
}

Result<nlohmann::json> build_claims(const SignOptions& o, const std::string& payload_text, UnixTime now) {
  nlohmann::json claims = nlohmann::json::object();
  if (!o.payload.empty()) {
    auto j = jose::parse_json_object(payload_text, "payload");
    if (!j) {
      j.error().hint = "claim flags are merged into a JSON object payload; drop them to sign raw bytes";
      return j;
    }
    claims = std::move(*j);
  }
  auto time_claim = [&](const char* name, const std::string& v) -> Result<void> {
    if (v.empty()) return {};
    if (v == "none") {
      claims.erase(name);
      return {};
    }
    auto t = parse_time(v, now);
    if (!t) {
      t.error().message = std::string("--") + name + ": " + t.error().message;
      return std::unexpected(t.error());
    }
    claims[name] = *t;
    return {};
  };
  if (!o.iss.empty()) claims["iss"] = o.iss;
  if (!o.sub.empty()) claims["sub"] = o.sub;
  if (o.aud.size() == 1) claims["aud"] = o.aud.front();
  if (o.aud.size() > 1) claims["aud"] = o.aud;
  if (!claims.contains("iat") && o.iat.empty()) claims["iat"] = now;
  for (auto [name, value] : {std::pair{"iat", &o.iat}, {"nbf", &o.nbf}, {"exp", &o.exp}}) {
    if (auto r = time_claim(name, *value); !r) return std::unexpected(r.error());
  }
  if (o.jti == "auto") {
    unsigned char buf[16];
    if (RAND_bytes(buf, sizeof buf) != 1) return fail(ErrorCode::usage, "random generation failed");
    claims["jti"] = b64url_encode(std::string_view(reinterpret_cast<char*>(buf), sizeof buf));
  } else if (!o.jti.empty()) {
    claims["jti"] = o.jti;
  }
  // A registered claim has its own flag; given both ways, one would silently win.
  const std::pair<const char*, bool> flagged[] = {
      {"iss", !o.iss.empty()}, {"sub", !o.sub.empty()}, {"aud", !o.aud.empty()}, {"iat", !o.iat.empty()},
      {"nbf", !o.nbf.empty()}, {"exp", !o.exp.empty()}, {"jti", !o.jti.empty()}};
  for (const auto& c : o.claims) {
    auto nv = name_value(c, "--claim");
    if (!nv) return std::unexpected(nv.error());
    for (const auto& [name, given] : flagged) {
      if (given && nv->first == name) {
        return fail(ErrorCode::usage, "--claim " + nv->first + "=... and --" + nv->first + " both set claim \"" +
                                          nv->first + "\"", "give one of them");
      }
    }
    claims[nv->first] = nv->second;
  }
  return claims;
}

// A token whose iat, nbf or exp is not a NumericDate is one every verifier (tokctl verify: exit 3,
// bad_claim_type) rejects. Signed anyway, since minting such tokens is how a service's rejection of
// them is tested, but never silently: the warning says so.
void warn_time_claims(const nlohmann::json& claims) {
  for (const char* name : {"iat", "nbf", "exp"}) {
    auto it = claims.find(name);
    if (it == claims.end()) continue;
    std::string why;
    if (!it->is_number()) why = "is not a number (NumericDate) but " + std::string(it->type_name());
    else if (!time_from_seconds(it->get<double>())) why = "is out of range (" + it->dump() + ")";
    if (why.empty()) continue;
    std::cerr << style(Stream::err, "33", "tokctl: warning: ") << "claim \"" << name << "\" " << why
              << ": verify rejects this token as malformed\n";
  }
}

// keys prune deletes a retired key once every token the token service issued with it has expired,
// which tokens.max_lifetime bounds. A token signed here with the keystore's key may live longer,
// or never expire: say so, since verifiers will reject it once its key is pruned.
void warn_outlives_key(const std::string& payload, UnixTime now) {
  auto p = policy();
  if (!p) return;  // the policy is not this command's business; its own commands report it
  auto claims = nlohmann::json::parse(payload, nullptr, false);
  if (!claims.is_object()) return;
  const auto exp = jose::integer_member(claims, "exp");
  const std::int64_t max = (*p)->max_lifetime;
  std::string why;
  if (!claims.contains("exp")) why = "has no exp";
  else if (exp && *exp - now > max) why = "is valid for " + format_duration(*exp - now);
  if (why.empty()) return;
  std::cerr << style(Stream::err, "33", "tokctl: warning: ") << "this token " << why
            << ", beyond tokens.max_lifetime (" << format_duration(max)
            << "): keys prune may delete its key while it is still meant to be valid\n";
}

int run_sign(const SignOptions& o) {
  jose::JwkSet keys;
  bool from_keystore = !has_key(o.keys);
  if (from_keystore) {
    // No key flags: the keystore's active key (--alg picks among algs, --kid a specific key).
    auto ks = open_keystore(false);
    if (!ks) {
      if (ks.error().detail == ErrorDetail::keystore_missing) {
        // Nothing to sign/verify with at all: a usage error, like a missing --key.
        ks.error().code = ErrorCode::usage;
        ks.error().message = "no key given (and " + ks.error().message + ")";
        replace_hint(ks.error(), "pass --key FILE (JWK or PEM), --secret-file FILE or --secret-env NAME, or create a "
                                 "keystore: tokctl keys add --alg ES256");
      }
      return report(ks.error());
    }
    auto pass = passphrase();
    if (!pass) return report(pass.error());
    auto k = ks->signing_key(o.alg, o.kid, *pass);
    if (!k) return report(k.error());
    keys.keys.push_back(std::move(*k));
  } else {
    jose::KeySource source;
    auto loaded = load_keys(o.keys, source);
    if (!loaded) {
      if (loaded.error().code == ErrorCode::invalid_token) loaded.error().code = ErrorCode::usage;
      return report(loaded.error());
    }
    keys = std::move(*loaded);
  }
  const jose::Jwk& key = keys.keys.front();
  auto alg = choose_alg(o, key);
  if (!alg) return report(alg.error());

  std::string payload_text;
  if (!o.payload.empty()) {
    auto p = read_arg(o.payload, false);
    if (!p) return report(p.error());
    payload_text = std::move(*p);
  }
  const bool build = o.claims_flags || o.payload.empty();
  std::string payload = payload_text;
  if (build) {
    auto claims = build_claims(o, payload_text, (*clock())->now());
    if (!claims) return report(claims.error());
    if (!globals().quiet) warn_time_claims(*claims);
    payload = claims->dump();
  } else if (!globals().quiet && jose::meant_as_json_object(payload_text)) {
    // A JSON object payload is a claims set to every verifier; one that is not a valid claims set
    // (duplicate members, bad UTF-8, too deep) makes a token verify refuses as malformed.
    if (auto j = jose::parse_json_object(payload_text, "payload"); j) {
      warn_time_claims(*j);
    } else {
      std::cerr << style(Stream::err, "33", "tokctl: warning: ")
                << "the payload starts as a JSON object, which verifiers read as a claims set, and it is not a "
                   "valid one (" << j.error().message << "): verify rejects this token as malformed\n";
    }
  }

  nlohmann::json header = nlohmann::json::object();
  if (!o.typ.empty()) header["typ"] = o.typ;
  else if (build) header["typ"] = "JWT";
  std::string kid = o.kid.empty() || from_keystore ? key.kid() : o.kid;
  if (!kid.empty()) header["kid"] = kid;
  for (const auto& h : o.headers) {
    auto nv = name_value(h, "--header");
    if (!nv) return report(nv.error());
    if (nv->first == "alg") {
      return report(Error{ErrorCode::usage, "--header cannot set alg", "use --alg"});
    }
    if (nv->first == "crit") {
      return report(Error{ErrorCode::usage, "--header cannot set crit: tokctl implements no critical extension", {}});
    }
    // RFC 7515 §4.1.4, §4.1.9-4.1.10: a token no verifier (tokctl's included) would accept is no use.
    if ((nv->first == "kid" || nv->first == "typ" || nv->first == "cty") && !nv->second.is_string()) {
      return report(Error{ErrorCode::usage, "--header " + nv->first + " must be a string",
                          "quote it as JSON text: --header '" + nv->first + "=\"...\"'"});
    }
    header[nv->first] = nv->second;
  }
  auto token = jose::sign_compact(std::move(header), payload, *alg, key);
  if (!token) return report(token.error());
  if (from_keystore && !globals().quiet) warn_outlives_key(payload, (*clock())->now());
  if (json_output()) print_json(nlohmann::json{{"token", *token}});  // -o json: one JSON document
  else std::cout << *token << '\n';
  return 0;
}

}  // namespace

void register_sign(CLI::App& app) {
  auto o = std::make_shared<SignOptions>();
  auto* sub = app.add_subcommand("sign", "Sign a payload or a JWT claims set built from flags (compact JWS)");
  file_value(sub->add_option("payload", o->payload, "Payload file, or - for stdin; omitted: claims from flags only"));
  add_key_options(sub, o->keys, false);
  choice_value(sub->add_option("--alg", o->alg, "Algorithm (default: the key's alg; EC/Ed keys imply theirs)"),
               jws_alg_names(), ChoiceCheck::suggest);
  sub->add_option("--kid", o->kid, "kid header (default: the key's kid); with the keystore, the key to use");
  sub->add_option("--typ", o->typ, "typ header (default JWT when claims are built)");
  sub->add_option("--header", o->headers, "Extra header NAME=VALUE (VALUE parsed as JSON if valid)");
  std::vector<CLI::Option*> claim_opts = {
      sub->add_option("--iss", o->iss, "Issuer claim"),
      sub->add_option("--sub", o->sub, "Subject claim"),
      sub->add_option("--aud", o->aud, "Audience claim (repeat for several)"),
      sub->add_option("--exp", o->exp, "Expiry: +DUR (e.g. +15m) or TIME"),
      sub->add_option("--nbf", o->nbf, "Not-before: +DUR/-DUR or TIME"),
      sub->add_option("--iat", o->iat, "Issued-at: TIME (default now), or 'none' to omit"),
      sub->add_option("--jti", o->jti, "Token id, or 'auto' for a random one"),
      sub->add_option("--claim", o->claims, "Claim NAME=VALUE (VALUE parsed as JSON if valid; repeatable)"),
  };
  examples(sub, {"tokctl sign --sub alice --exp +15m   # the keystore's active key",
                 "tokctl sign --key es256.jwk --iss https://issuer.test --sub alice --aud api --exp +15m",
                 "tokctl sign --key rsa.pem --alg PS256 --sub bob --claim 'roles=[\"admin\"]' --jti auto",
                 "echo '{\"sub\":\"carol\"}' | tokctl sign - --key ed.jwk --exp +1h",
                 "tokctl sign payload.bin --key hs.jwk --typ application/octet-stream   # any bytes",
                 "tokctl sign --secret-env JWT_SECRET --alg HS256 --sub ci --exp +5m"});
  on_run(sub, [o, claim_opts] {
    for (auto* c : claim_opts) o->claims_flags = o->claims_flags || c->count() > 0;
    return run_sign(*o);
  });
}

}  // namespace tokctl::cli
