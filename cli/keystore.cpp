// tokctl keys add|list|rotate|retire|prune|jwks|show|export|import|check: the file keystore.

#include <iostream>
#include <optional>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <tokctl/keys/keystore.hpp>
#include <tokctl/tokens/policy.hpp>
#include <tokctl/util/io.hpp>

#include "commands.hpp"
#include "common.hpp"
#include "render.hpp"

namespace tokctl::cli {
namespace {

using nlohmann::json;

std::optional<keys::KeyState> state_arg(const std::string& s) {
  if (s.empty()) return std::nullopt;
  return keys::key_state_from_string(s);
}

json entry_json(const keys::KeyEntry& e) {
  auto t = [](const std::optional<UnixTime>& v) { return v ? json(format_rfc3339(*v)) : json(); };
  return json{{"kid", e.kid},         {"alg", e.alg},
              {"use", e.use},         {"state", keys::to_string(e.state)},
              {"created", format_rfc3339(e.created)}, {"activated", t(e.activated)},
              {"retired", t(e.retired)},              {"thumbprint", e.thumbprint},
              {"encrypted", e.encrypted}};
}

std::string pad(std::string s, std::size_t n) {
  if (s.size() < n) s.append(n - s.size(), ' ');
  return s;
}

int print_entry_result(const keys::KeyEntry& e, const char* verb) {
  if (json_output()) {
    print_json(entry_json(e));
  } else {
    std::cout << e.kid << '\n';
    if (!globals().quiet) {
      std::cerr << verb << " " << e.alg << " key " << e.kid << " (" << keys::to_string(e.state)
                << (e.encrypted ? ", encrypted at rest" : "") << ")\n";
    }
  }
  return 0;
}

struct AddCli {
  std::string alg, kid, state, crv;
  std::optional<int> bits;
};

int run_add(const AddCli& o) {
  auto state = state_arg(o.state);
  auto pass = passphrase();
  if (!pass) return report(pass.error());
  auto ks = open_keystore(true);
  if (!ks) return report(ks.error());
  std::optional<std::string> crv;
  if (!o.crv.empty()) crv = o.crv;
  auto e = ks->add(keys::AddOptions{o.alg, o.kid, state, o.bits, crv}, *pass);
  if (!e) return report(e.error());
  return print_entry_result(*e, "added");
}

int run_list() {
  auto ks = open_keystore(false);
  if (!ks) return report(ks.error());
  auto m = ks->manifest();
  if (!m) return report(m.error());
  if (json_output()) {
    json arr = json::array();
    for (const auto& e : m->keys) arr.push_back(entry_json(e));
    print_json(json{{"keystore", ks->dir()}, {"keys", arr}});
    return 0;
  }
  if (m->keys.empty()) {
    std::cerr << "the keystore at " << ks->dir() << " has no keys\n";
    return 0;
  }
  std::size_t w = 4;
  for (const auto& e : m->keys) w = std::max(w, e.kid.size());
  auto t = [](const std::optional<UnixTime>& v) { return v ? format_rfc3339(*v) : std::string("-"); };
  std::cout << style(Stream::out, "1", pad("KID", w) + "  " + pad("ALG", 14) + "  " + pad("STATE", 8) + "  " +
                                           pad("CREATED", 20) + "  " + pad("ACTIVATED", 20) + "  " +
                                           pad("RETIRED", 20) + "  ENC  THUMBPRINT")
            << '\n';
  for (const auto& e : m->keys) {
    const char* color = e.state == keys::KeyState::active ? "32" : e.state == keys::KeyState::next ? "36" : "2";
    std::cout << pad(e.kid, w) << "  " << pad(e.alg, 14) << "  "
              << style(Stream::out, color, pad(keys::to_string(e.state), 8)) << "  "
              << pad(format_rfc3339(e.created), 20) << "  " << pad(t(e.activated), 20) << "  "
              << pad(t(e.retired), 20) << "  " << (e.encrypted ? "yes" : "no ") << "  " << e.thumbprint << '\n';
  }
  return 0;
}

int run_rotate(const std::string& alg, bool force) {
  auto pass = passphrase();
  if (!pass) return report(pass.error());
  auto ks = open_keystore(false);
  if (!ks) return report(ks.error());
  auto r = ks->rotate(alg, force, *pass);
  if (!r) return report(r.error());
  if (json_output()) {
    json arr = json::array();
    for (const auto& x : *r)
      arr.push_back({{"alg", x.alg}, {"activated", x.activated},
                     {"retired", x.retired.empty() ? json() : json(x.retired)}, {"next", x.added}});
    print_json(json{{"rotated", arr}});
  } else if (!globals().quiet) {
    for (const auto& x : *r) {
      std::cout << x.alg << ": active " << x.activated;
      if (!x.retired.empty()) std::cout << ", retired " << x.retired;
      std::cout << ", next " << x.added << '\n';
    }
    std::cerr << "publish the JWKS now so verifiers see the new next key (tokctl keys jwks --out FILE)\n";
  }
  return 0;
}

int run_retire(const std::string& kid) {
  auto ks = open_keystore(false);
  if (!ks) return report(ks.error());
  auto e = ks->retire(kid);
  if (!e) return report(e.error());
  return print_entry_result(*e, "retired");
}

int run_prune(const std::string& grace_text) {
  auto grace = parse_duration(grace_text);
  if (!grace) return report(grace.error());
  auto p = cli::policy();
  if (!p) return report(p.error());
  const tokens::Policy* policy = *p;
  auto ks = open_keystore(false);
  if (!ks) return report(ks.error());
  auto removed = ks->prune(policy->max_lifetime, *grace);
  if (!removed) return report(removed.error());
  if (json_output()) {
    json arr = json::array();
    for (const auto& e : *removed) arr.push_back(e.kid);
    print_json(json{{"pruned", arr}, {"max_lifetime", policy->max_lifetime}, {"grace", *grace}});
  } else {
    for (const auto& e : *removed) std::cout << e.kid << '\n';
    if (!globals().quiet) {
      std::cerr << "pruned " << removed->size() << " key(s) retired more than "
                << format_duration(policy->max_lifetime + *grace) << " ago (max token lifetime "
                << format_duration(policy->max_lifetime) << " + grace " << format_duration(*grace) << ")\n";
    }
  }
  return 0;
}

int run_jwks(const std::string& out) {
  auto ks = open_keystore(false);
  if (!ks) return report(ks.error());
  auto set = ks->jwks();
  if (!set) return report(set.error());
  std::string text = set->to_json(jose::KeyPart::public_only).dump(2) + "\n";
  if (out.empty() || out == "-") {
    std::cout << text;
    return 0;
  }
  // A JWKS is public: readable by all (0644), still written atomically.
  if (auto w = write_file_atomic(out, text, 0644); !w) return report(w.error());
  if (!globals().quiet) std::cerr << "wrote " << set->keys.size() << " public key(s) to " << out << '\n';
  return 0;
}

Result<keys::KeyEntry> find_entry(const keys::Keystore& ks, const std::string& kid) {
  auto m = ks.manifest();
  if (!m) return std::unexpected(m.error());
  const auto* e = m->find(kid);
  if (!e) return fail(ErrorCode::keystore, "no key '" + kid + "' in the keystore", "see: tokctl keys list");
  return *e;
}

int run_show(const std::string& kid) {
  auto ks = open_keystore(false);
  if (!ks) return report(ks.error());
  auto e = find_entry(*ks, kid);
  if (!e) return report(e.error());
  json j = entry_json(*e);
  if (!e->public_jwk.empty()) j["jwk"] = json::parse(e->public_jwk);
  if (json_output()) {
    print_json(j);
    return 0;
  }
  for (const auto& [k, v] : j.items()) {
    if (k == "jwk") continue;
    std::cout << pad(k, 11) << (v.is_string() ? v.get<std::string>() : v.dump()) << '\n';
  }
  if (!e->public_jwk.empty()) std::cout << "public JWK\n" << j["jwk"].dump(2) << '\n';
  return 0;
}

struct ExportCli {
  std::string kid;
  bool public_only = false;
  std::string format = "jwk";
};

int run_export(const ExportCli& o) {
  auto ks = open_keystore(false);
  if (!ks) return report(ks.error());
  auto e = find_entry(*ks, o.kid);
  if (!e) return report(e.error());
  Result<jose::Jwk> key = fail(ErrorCode::keystore, "unreachable");
  if (o.public_only && !e->public_jwk.empty()) {
    key = jose::Jwk::from_json(json::parse(e->public_jwk));
    if (key) {
      key->set_kid(e->kid);
      key->set_alg(e->alg);
      key->set_use(e->use);
    }
  } else {
    if (o.public_only) return report(Error{ErrorCode::usage, "an HMAC/AES secret has no public part", {}});
    auto pass = passphrase();
    if (!pass) return report(pass.error());
    key = ks->load(*e, *pass);
  }
  if (!key) return report(key.error());
  auto part = o.public_only ? jose::KeyPart::public_only : jose::KeyPart::with_private;
  if (o.format == "pem") {
    auto pem = key->to_pem(part);
    if (!pem) return report(pem.error());
    std::cout << *pem;
  } else {
    std::cout << key->to_json(part).dump(2) << '\n';
  }
  return 0;
}

struct ImportCli {
  std::string file = "-";
  std::string kid, state, alg;
};

int run_import(const ImportCli& o) {
  auto data = read_arg(o.file, false);
  if (!data) return report(data.error());
  auto key = jose::parse_single_key(*data);
  if (!key) return report(key.error());
  auto pass = passphrase();
  if (!pass) return report(pass.error());
  auto ks = open_keystore(true);
  if (!ks) return report(ks.error());
  auto e = ks->import(std::move(*key), keys::ImportOptions{o.kid, o.alg, state_arg(o.state)}, *pass);
  if (!e) return report(e.error());
  return print_entry_result(*e, "imported");
}

int run_check() {
  auto pass = passphrase();
  if (!pass) return report(pass.error());
  auto ks = open_keystore(false);
  if (!ks) return report(ks.error());
  auto r = ks->check(*pass);
  if (json_output()) {
    print_json(json{{"ok", r.ok()}, {"keystore", ks->dir()}, {"problems", r.problems}, {"notes", r.notes}});
  } else {
    for (const auto& n : r.notes) std::cerr << style(Stream::err, "2", "note: ") << n << '\n';
    for (const auto& p : r.problems) std::cerr << style(Stream::err, "31", "problem: ") << p << '\n';
    if (r.ok() && !globals().quiet) std::cout << "keystore " << ks->dir() << " is consistent\n";
  }
  if (!r.ok()) {
    std::cerr << "tokctl: error: the keystore at " << ks->dir() << " has " << r.problems.size() << " problem(s)\n";
    return exit_code(ErrorCode::keystore);
  }
  return 0;
}

}  // namespace

void register_keystore_commands(CLI::App* keys) {
  auto a = std::make_shared<AddCli>();
  auto* add = keys->add_subcommand("add", "Add a new key to the keystore (state next, or active if the alg has none)");
  add->add_option("--alg", a->alg, "JWS alg (ES256, RS256, EdDSA, HS256, ...) or JWE alg (RSA-OAEP-256, ECDH-ES+A256KW, A256KW, dir, ...)")
      ->required();
  add->add_option("--kid", a->kid, "Key id (default: the RFC 7638 thumbprint)");
  add->add_option("--state", a->state, "next or active")->check(CLI::IsMember({"next", "active"}));
  add->add_option("--bits", a->bits, "RSA modulus bits (default 2048) or secret bits");
  add->add_option("--crv", a->crv, "Curve: Ed25519/Ed448 for EdDSA; P-256/P-384/P-521/X25519/X448 for ECDH-ES");
  examples(add, {"tokctl keys add --alg ES256", "tokctl keys add --alg RS256 --bits 3072 --state active",
                 "tokctl keys add --alg ECDH-ES+A256KW --crv X25519",
                 "TOKCTL_PASSPHRASE=... tokctl keys add --alg EdDSA   # encrypted at rest"});
  on_run(add, [a] { return run_add(*a); });

  auto* list = keys->add_subcommand("list", "List the keystore's keys and their lifecycle");
  examples(list, {"tokctl keys list", "tokctl keys list -o json | jq '.keys[] | select(.state==\"active\")'"});
  on_run(list, [] { return run_list(); });

  auto rot = std::make_shared<std::pair<std::string, bool>>();
  auto* rotate = keys->add_subcommand("rotate", "next -> active, active -> retired, and a fresh next key");
  rotate->add_option("--alg", rot->first, "Rotate only this alg (default: every alg in the keystore)");
  rotate->add_flag("--force", rot->second, "Rotate even without a published next key (verifiers may reject tokens)");
  examples(rotate, {"tokctl keys rotate --alg ES256", "tokctl keys rotate && tokctl keys jwks --out /srv/www/jwks.json"});
  on_run(rotate, [rot] { return run_rotate(rot->first, rot->second); });

  auto rkid = std::make_shared<std::string>();
  auto* retire = keys->add_subcommand("retire", "Retire a key: it stays in the JWKS and verifies, but never signs");
  retire->add_option("kid", *rkid, "Key id")->required();
  examples(retire, {"tokctl keys retire 3mJ2...Xk"});
  on_run(retire, [rkid] { return run_retire(*rkid); });

  // Default grace = verify's default leeway: a token is still accepted 60s past its exp.
  auto grace = std::make_shared<std::string>("60s");
  auto* prune = keys->add_subcommand("prune", "Delete retired keys no token can still need (max lifetime + grace)");
  prune->add_option("--grace", *grace, "Extra time to keep retired keys (covers verify's clock leeway)")
      ->capture_default_str();
  examples(prune, {"tokctl keys prune", "tokctl keys prune --grace 1h --config tokctl.yaml"});
  on_run(prune, [grace] { return run_prune(*grace); });

  auto out = std::make_shared<std::string>();
  auto* jwks = keys->add_subcommand("jwks", "Public JWKS of next, active and retired keys");
  jwks->add_option("--out", *out, "Write to FILE atomically (mode 0644) instead of stdout");
  examples(jwks, {"tokctl keys jwks", "tokctl keys jwks --out /srv/www/.well-known/jwks.json"});
  on_run(jwks, [out] { return run_jwks(*out); });

  auto skid = std::make_shared<std::string>();
  auto* show = keys->add_subcommand("show", "Show one key's metadata and public JWK");
  show->add_option("kid", *skid, "Key id")->required();
  examples(show, {"tokctl keys show KID", "tokctl keys show KID -o json"});
  on_run(show, [skid] { return run_show(*skid); });

  auto x = std::make_shared<ExportCli>();
  auto* exp = keys->add_subcommand("export", "Export a key (private unless --public)");
  exp->add_option("kid", x->kid, "Key id")->required();
  exp->add_flag("--public", x->public_only, "Only the public key");
  exp->add_option("--format", x->format, "jwk or pem")->check(CLI::IsMember({"jwk", "pem"}))->capture_default_str();
  examples(exp, {"tokctl keys export KID --public --format pem > signer.pub.pem", "tokctl keys export KID > backup.jwk"});
  on_run(exp, [x] { return run_export(*x); });

  auto i = std::make_shared<ImportCli>();
  auto* imp = keys->add_subcommand("import", "Import a private key (JWK or PEM) into the keystore");
  imp->add_option("file", i->file, "Key file, or - for stdin");
  imp->add_option("--kid", i->kid, "Key id (default: the key's kid, else its thumbprint)");
  imp->add_option("--alg", i->alg, "Algorithm (required when the key has no alg)");
  imp->add_option("--state", i->state, "next or active")->check(CLI::IsMember({"next", "active"}));
  examples(imp, {"tokctl keys import signer.pem --alg RS256 --state next", "tokctl keys import key.jwk"});
  on_run(imp, [i] { return run_import(*i); });

  auto* check = keys->add_subcommand("check", "Check manifest against files, permissions, one active key per alg");
  examples(check, {"tokctl keys check", "tokctl keys check -o json"});
  on_run(check, [] { return run_check(); });
}

}  // namespace tokctl::cli
