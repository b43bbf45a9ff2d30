// tokctl keys add|list|rotate|retire|prune|jwks|show|export|import|check: the file keystore.

#include <algorithm>
#include <iostream>
#include <optional>
#include <vector>

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
              {"retired", t(e.retired)},              {"published", t(e.published)},
              {"thumbprint", e.thumbprint},           {"encrypted", e.encrypted}};
}

// After a write: files under keys/ the manifest does not name are kept, and said so.
void note_unknown_files(const keys::Keystore& ks) {
  if (globals().quiet) return;
  auto unknown = ks.unknown_files();
  if (unknown.empty()) return;
  std::cerr << style(Stream::err, "33", "warning: ") << ks.dir() << " holds " << unknown.size()
            << " file(s) the manifest does not name (" << unknown.front() << (unknown.size() > 1 ? ", ..." : "")
            << "); they were kept. Run: tokctl keys check\n";
}

// When the current state began: created (next), activated (active), retired (retired).
UnixTime state_since(const keys::KeyEntry& e) {
  if (e.state == keys::KeyState::active && e.activated) return *e.activated;
  if (e.state == keys::KeyState::retired && e.retired) return *e.retired;
  return e.created;
}

std::string pad(std::string s, std::size_t n) {
  if (s.size() < n) s.append(n - s.size(), ' ');
  return s;
}

int print_entry_result(const keys::Keystore& ks, const keys::KeyEntry& e, const char* verb) {
  note_unknown_files(ks);
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
  return print_entry_result(*ks, *e, "added");
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
  if (globals().quiet) {  // kids only, one a line, for scripts
    for (const auto& e : m->keys) std::cout << e.kid << '\n';
    return 0;
  }
  if (m->keys.empty()) {
    std::cerr << "the keystore at " << ks->dir() << " has no keys\n";
    return 0;
  }
  // 100 columns with a 43-character thumbprint kid and the longest alg (ECDH-ES+A256KW): the time
  // the current state began, not all three times (those are in keys show and -o json).
  std::size_t w = 3, aw = 3;
  for (const auto& e : m->keys) {
    w = std::max(w, e.kid.size());
    aw = std::max(aw, e.alg.size());
  }
  std::cout << style(Stream::out, "1",
                     pad("KID", w) + "  " + pad("ALG", aw) + "  " + pad("STATE", 7) + "  " + pad("SINCE", 20) + "  ENC")
            << '\n';
  for (const auto& e : m->keys) {
    const char* color = e.state == keys::KeyState::active ? "32" : e.state == keys::KeyState::next ? "36" : "2";
    std::cout << pad(e.kid, w) << "  " << pad(e.alg, aw) << "  "
              << style(Stream::out, color, pad(keys::to_string(e.state), 7)) << "  "
              << pad(format_rfc3339(state_since(e)), 20) << "  " << (e.encrypted ? "yes" : "no") << '\n';
  }
  return 0;
}

struct RotateCli {
  std::string alg;
  bool force = false;
  std::string min_next_age = "1h";
  std::string if_older_than;
};

int run_rotate(const RotateCli& o) {
  keys::RotateOptions ro;
  ro.alg = o.alg;
  ro.force = o.force ? keys::Force::yes : keys::Force::no;
  auto min_age = parse_duration(o.min_next_age);
  if (!min_age) return report(min_age.error());
  ro.min_next_age = *min_age;
  if (!o.if_older_than.empty()) {
    auto older = parse_duration(o.if_older_than);
    if (!older) return report(older.error());
    ro.if_older_than = *older;
  }
  auto pass = passphrase();
  if (!pass) return report(pass.error());
  auto ks = open_keystore(false);
  if (!ks) return report(ks.error());
  auto r = ks->rotate(ro, *pass);
  if (!r) return report(r.error());
  bool rotated = std::any_of(r->begin(), r->end(), [](const keys::RotateResult& x) { return x.skipped.empty(); });
  if (rotated) note_unknown_files(*ks);
  if (json_output()) {
    json arr = json::array(), skipped = json::array();
    for (const auto& x : *r) {
      if (!x.skipped.empty()) {
        skipped.push_back({{"alg", x.alg}, {"reason", x.skipped}});
        continue;
      }
      arr.push_back({{"alg", x.alg}, {"activated", x.activated},
                     {"retired", x.retired.empty() ? json() : json(x.retired)}, {"next", x.added}});
    }
    print_json(json{{"rotated", arr}, {"skipped", skipped}});
  } else if (!globals().quiet) {
    for (const auto& x : *r) {
      if (!x.skipped.empty()) {
        std::cout << x.alg << ": not rotated: " << x.skipped << '\n';
        continue;
      }
      std::cout << x.alg << ": active " << x.activated;
      if (!x.retired.empty()) std::cout << ", retired " << x.retired;
      std::cout << ", next " << x.added << '\n';
    }
    if (rotated) {
      std::cerr << "publish the JWKS now so verifiers see the new next key (tokctl keys jwks --out FILE --force)\n";
    }
  }
  return 0;
}

int run_retire(const std::string& kid) {
  auto ks = open_keystore(false);
  if (!ks) return report(ks.error());
  auto e = ks->retire(kid);
  if (!e) return report(e.error());
  return print_entry_result(*ks, *e, "retired");
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
  note_unknown_files(*ks);
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

struct JwksCli {
  std::string out;
  bool force = false;
};

int run_jwks(const JwksCli& o) {
  auto ks = open_keystore(false);
  if (!ks) return report(ks.error());
  auto set = ks->jwks();
  if (!set) return report(set.error());
  bool to_file = !o.out.empty() && o.out != "-";
  if (to_file && set->keys.empty()) {
    return report(Error{ErrorCode::keystore,
                        "the keystore at " + ks->dir() + " has no public keys: not publishing an empty JWKS to '" +
                            o.out + "' (verifiers would reject every token)",
                        "add a key first: tokctl keys add --alg ES256 (HMAC secrets are never published)"});
  }
  std::string text = set->to_json(jose::KeyPart::public_only).dump(2) + "\n";
  if (!to_file) {
    std::cout << text;
    // Only a JWKS that reached its reader counts as published (keys rotate relies on it).
    if (auto written = flush_stdout(); !written) return report(written.error());
  } else {
    // A JWKS is public: readable by all (0644), still written atomically.
    auto w = keys::write_output_file(o.out, text, 0644, o.force ? keys::Overwrite::yes : keys::Overwrite::no);
    if (!w) return report(w.error());
    if (!globals().quiet) std::cerr << "wrote " << set->keys.size() << " public key(s) to " << o.out << '\n';
  }
  // What was output counts as published: keys rotate waits --min-next-age from this moment.
  std::vector<std::string> kids;
  for (const auto& k : set->keys) kids.push_back(k.kid());
  if (auto rec = ks->record_published(kids); !rec) {
    std::cerr << style(Stream::err, "33", "warning: ") << "could not record the publication time in the manifest ("
              << rec.error().message << "); keys rotate will not count this publication\n";
  }
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
  if (!e->public_jwk.empty()) {
    // Checked (thumbprint, alg, no private member) and re-serialised with public members only:
    // whatever keystore.json holds, show never prints a private member.
    auto pub = ks->public_key(*e);
    if (!pub) return report(pub.error());
    j["jwk"] = pub->to_json(jose::KeyPart::public_only);
  }
  if (json_output()) {
    print_json(j);
    return 0;
  }
  for (const auto& [k, v] : j.items()) {
    if (k == "jwk") continue;
    // Times not reached yet print as "-", never as JSON null.
    std::cout << pad(k, 11) << (v.is_null() ? std::string("-") : v.is_string() ? v.get<std::string>() : v.dump())
              << '\n';
  }
  if (j.contains("jwk")) std::cout << "public JWK\n" << j["jwk"].dump(2) << '\n';
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
    key = ks->public_key(*e);
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
  auto raw = read_arg(o.file, false);
  if (!raw) return report(raw.error());
  // A key file encrypted at rest (keys/<kid>.jwe, keys generate with a passphrase) is opened first.
  auto data = unlock_key_material(std::move(*raw), o.file == "-" ? "the key" : "'" + o.file + "'");
  if (!data) return report(data.error());
  auto key = jose::parse_single_key(*data);
  if (!key) return report(key.error());
  auto pass = passphrase();
  if (!pass) return report(pass.error());
  auto ks = open_keystore(true);
  if (!ks) return report(ks.error());
  auto e = ks->import(std::move(*key), keys::ImportOptions{o.kid, o.alg, state_arg(o.state)}, *pass);
  if (!e) return report(e.error());
  return print_entry_result(*ks, *e, "imported");
}

int run_check() {
  auto pass = passphrase();
  if (!pass) return report(pass.error());
  auto ks = open_keystore(false);
  if (!ks) return report(ks.error());
  auto r = ks->check(*pass);
  std::vector<std::string> problems;
  for (const auto& p : r.problems) {
    auto fix = hint_text(p.hint, p.remedy, p.subject);
    problems.push_back(p.message + (fix.empty() ? "" : "; fix: " + fix));
  }
  if (json_output()) {
    print_json(json{{"ok", r.ok()},
                    {"keystore", ks->dir()},
                    {"problems", problems},
                    {"notes", r.notes},
                    {"unknown_files", r.unknown_files}});
  } else {
    for (const auto& n : r.notes) std::cerr << style(Stream::err, "2", "note: ") << n << '\n';
    for (const auto& p : problems) std::cerr << style(Stream::err, "31", "problem: ") << p << '\n';
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
  choice_value(add->add_option("--alg", a->alg, "JWS alg (ES256, RS256, EdDSA, HS256, ...) or JWE alg (RSA-OAEP-256, ECDH-ES+A256KW, A256KW, dir, ...)")
                   ->required(),
               key_alg_names(), ChoiceCheck::suggest);
  add->add_option("--kid", a->kid, "Key id (default: the RFC 7638 thumbprint)");
  add->add_option("--state", a->state, "next or active")->check(CLI::IsMember({"next", "active"}));
  add->add_option("--bits", a->bits, "RSA modulus bits (default 2048) or secret bits");
  choice_value(add->add_option("--crv", a->crv, "Curve: Ed25519/Ed448 for EdDSA; P-256/P-384/P-521/X25519/X448 for ECDH-ES"),
               curve_names(), ChoiceCheck::suggest);
  examples(add, {"tokctl keys add --alg ES256", "tokctl keys add --alg RS256 --bits 3072 --state active",
                 "tokctl keys add --alg ECDH-ES+A256KW --crv X25519",
                 "TOKCTL_PASSPHRASE=... tokctl keys add --alg EdDSA   # encrypted at rest"});
  on_run(add, [a] { return run_add(*a); });

  auto* list = keys->add_subcommand("list", "List the keystore's keys and their lifecycle (-q: kids only)");
  examples(list, {"tokctl keys list", "tokctl keys list -q",
                  "tokctl keys list -o json | jq '.keys[] | select(.state==\"active\")'"});
  on_run(list, [] { return run_list(); });

  auto rot = std::make_shared<RotateCli>();
  auto* rotate = keys->add_subcommand("rotate", "next -> active, active -> retired, and a fresh next key");
  choice_value(rotate->add_option("--alg", rot->alg, "Rotate only this alg (default: every alg in the keystore)"),
               key_alg_names(), ChoiceCheck::suggest);
  rotate->add_option("--min-next-age", rot->min_next_age,
                     "Activate a next key only this long after it was first published (keys jwks); at least the "
                     "JWKS cache max-age")
      ->capture_default_str();
  rotate->add_option("--if-older-than", rot->if_older_than,
                     "Rotate only when the active key is at least DUR old (cron: concurrent runs rotate once)");
  rotate->add_flag("--force", rot->force,
                   "Rotate even without a next key or before --min-next-age (verifiers may reject tokens)");
  examples(rotate, {"tokctl keys rotate --alg ES256", "tokctl keys rotate --if-older-than 7d -q",
                    "tokctl keys rotate && tokctl keys jwks --out /srv/www/jwks.json --force"});
  on_run(rotate, [rot] { return run_rotate(*rot); });

  auto rkid = std::make_shared<std::string>();
  auto* retire = keys->add_subcommand("retire", "Retire a key: it stays in the JWKS and verifies, but never signs");
  dash_positional(retire, retire->add_option("kid", *rkid, "Key id"), true);
  examples(retire, {"tokctl keys retire 3mJ2...Xk"});
  on_run(retire, [rkid] { return run_retire(*rkid); });

  // Default grace = verify's default leeway: a token is still accepted 60s past its exp.
  auto grace = std::make_shared<std::string>("60s");
  auto* prune = keys->add_subcommand("prune", "Delete retired keys no token can still need (max lifetime + grace)");
  prune->add_option("--grace", *grace, "Extra time to keep retired keys (covers verify's clock leeway)")
      ->capture_default_str();
  examples(prune, {"tokctl keys prune", "tokctl keys prune --grace 1h --config tokctl.yaml"});
  on_run(prune, [grace] { return run_prune(*grace); });

  auto jw = std::make_shared<JwksCli>();
  auto* jwks = keys->add_subcommand("jwks", "Public JWKS of next, active and retired keys (records when each was published)");
  file_value(jwks->add_option("--out", jw->out,
                              "Write to FILE atomically (mode 0644) instead of stdout; never an empty set"));
  jwks->add_flag("--force", jw->force, "Replace an existing --out file");
  examples(jwks, {"tokctl keys jwks", "tokctl keys jwks --out /srv/www/.well-known/jwks.json --force"});
  on_run(jwks, [jw] { return run_jwks(*jw); });

  auto skid = std::make_shared<std::string>();
  auto* show = keys->add_subcommand("show", "Show one key's metadata and public JWK");
  dash_positional(show, show->add_option("kid", *skid, "Key id"), true);
  examples(show, {"tokctl keys show KID", "tokctl keys show KID -o json"});
  on_run(show, [skid] { return run_show(*skid); });

  auto x = std::make_shared<ExportCli>();
  auto* exp = keys->add_subcommand("export", "Export a key (private unless --public)");
  dash_positional(exp, exp->add_option("kid", x->kid, "Key id"), true);
  exp->add_flag("--public", x->public_only, "Only the public key");
  exp->add_option("--format", x->format, "jwk or pem")->check(CLI::IsMember({"jwk", "pem"}))->capture_default_str();
  examples(exp, {"tokctl keys export KID --public --format pem > signer.pub.pem", "tokctl keys export KID > backup.jwk"});
  on_run(exp, [x] { return run_export(*x); });

  auto i = std::make_shared<ImportCli>();
  auto* imp = keys->add_subcommand("import", "Import a private key (JWK or PEM) into the keystore");
  file_value(imp->add_option("file", i->file, "Key file, or - for stdin"));
  imp->add_option("--kid", i->kid, "Key id (default: the key's kid, else its thumbprint)");
  choice_value(imp->add_option("--alg", i->alg, "Algorithm (default: the key's alg; EC and Ed keys imply theirs, RSA/oct/X25519 need it)"), key_alg_names(),
               ChoiceCheck::suggest);
  imp->add_option("--state", i->state, "next or active")->check(CLI::IsMember({"next", "active"}));
  examples(imp, {"tokctl keys import signer.pem --alg RS256 --state next", "tokctl keys import ec.pem   # ES256/384/512 by curve",
                 "tokctl keys import ~/.local/share/tokctl/keys/KID.jwk   # a key file keys check reports"});
  on_run(imp, [i] { return run_import(*i); });

  auto* check = keys->add_subcommand(
      "check", "Check manifest against files (unknown key files too), owners, permissions, one active key per alg");
  examples(check, {"tokctl keys check", "tokctl keys check -o json"});
  on_run(check, [] { return run_check(); });
}

}  // namespace tokctl::cli
