// The file keystore core (tokctl/keys/keystore.hpp, issue 3 points 1, 2, 3, 6): lifecycle
// (next -> active -> retired -> pruned), files and permissions, JWKS publication, signing and
// verification key selection, keys encrypted at rest, and the consistency check.
// A FixedClock pins time; every keystore lives in its own TempDir.

#include <tokctl/keys/keystore.hpp>

#include <tokctl/jose/jwk.hpp>
#include <tokctl/util/base64.hpp>
#include <tokctl/util/time.hpp>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstdio>
#include <dirent.h>
#include <set>
#include <string>
#include <string_view>
#include <sys/stat.h>
#include <unistd.h>
#include <vector>

#include "support/cli_helpers.hpp"
#include "support/keys.hpp"
#include "support/run.hpp"

using nlohmann::json;
using tokctl::ErrorCode;
using tokctl::FixedClock;
using tokctl::UnixTime;
using tokctl::jose::Jwk;
using tokctl::jose::KeyPart;
using tokctl::jose::KeyType;
using tokctl::keys::AddOptions;
using tokctl::keys::ImportOptions;
using tokctl::keys::KeyEntry;
using tokctl::keys::KeyState;
using tokctl::keys::Keystore;
using tokctl::keys::Manifest;
using tokctl::keys::Passphrase;
using tokctl::test::file_mode;
using tokctl::test::files_in;
using tokctl::test::read_file;
using tokctl::test::TempDir;
using tokctl::test::test_key;
using tokctl::test::write_file;
using Catch::Matchers::Contains;

namespace {

// 2026-01-01T00:00:00Z.
constexpr UnixTime k_t0 = 1767225600;
constexpr std::int64_t k_hour = 3600;
constexpr std::int64_t k_day = 24 * k_hour;

const Passphrase k_no_pass = std::nullopt;

// Private members of every key type (RFC 7518 §6.2.2, §6.3.2, §6.4.1; RFC 8037 §2).
const std::vector<std::string> k_private_members = {"d", "p", "q", "dp", "dq", "qi", "oth", "k"};

bool exists(const std::string& path) { return ::access(path.c_str(), F_OK) == 0; }

// A keystore at <tmp>/ks (created by open, so its mode is tokctl's choice) with a settable clock.
struct Fixture {
  TempDir tmp;
  FixedClock clock{k_t0};
  std::string dir = tmp.file("ks");

  Keystore open() {
    auto ks = Keystore::open(dir, clock, true);
    REQUIRE(ks);
    return std::move(*ks);
  }
  std::string key_path(const KeyEntry& e) const { return dir + "/keys/" + e.file_name(); }
  json manifest_json() const { return json::parse(read_file(dir + "/keystore.json")); }
};

KeyEntry add(Keystore& ks, const std::string& alg, std::optional<KeyState> state = std::nullopt,
             const std::string& kid = "", const Passphrase& pass = std::nullopt) {
  AddOptions o;
  o.alg = alg;
  o.kid = kid;
  o.state = state;
  auto e = ks.add(o, pass);
  if (!e) FAIL("add " << alg << " failed: " << e.error().message);
  return *e;
}

KeyEntry import_test_key(Keystore& ks, std::string_view name, const std::string& alg,
                         std::optional<KeyState> state = std::nullopt, const Passphrase& pass = std::nullopt) {
  auto e = ks.import(test_key(name), ImportOptions{"", alg, state}, pass);
  if (!e) FAIL("import " << name << " failed: " << e.error().message);
  return *e;
}

Manifest manifest(const Keystore& ks) {
  auto m = ks.manifest();
  REQUIRE(m);
  return *m;
}

KeyState state_of(const Keystore& ks, const std::string& kid) {
  auto m = manifest(ks);
  const auto* e = m.find(kid);
  REQUIRE(e != nullptr);
  return e->state;
}

bool any_contains(const std::vector<std::string>& lines, std::string_view needle) {
  return std::any_of(lines.begin(), lines.end(),
                     [&](const std::string& l) { return l.find(needle) != std::string::npos; });
}

std::string join(const std::vector<std::string>& lines) {
  std::string out;
  for (const auto& l : lines) out += l + "\n";
  return out;
}

}  // namespace

// ---- add -----------------------------------------------------------------------------------------

TEST_CASE("add makes the first key of an alg active and later ones next", "[keystore]") {
  Fixture f;
  auto ks = f.open();
  auto a = add(ks, "ES256");
  CHECK(a.state == KeyState::active);
  CHECK(a.activated == k_t0);
  CHECK(a.use == "sig");
  auto b = add(ks, "ES256");
  CHECK(b.state == KeyState::next);
  CHECK_FALSE(b.activated);
  // Another alg has no active key yet: active again.
  auto r = import_test_key(ks, "rsa2048", "RS256");
  CHECK(r.state == KeyState::active);
  CHECK(state_of(ks, a.kid) == KeyState::active);
}

TEST_CASE("add with state active is refused while the alg has an active key", "[keystore]") {
  // Activating an unpublished key would bypass rotate's safety (verifiers have never seen it).
  Fixture f;
  auto ks = f.open();
  auto a = add(ks, "ES256");
  AddOptions o;
  o.alg = "ES256";
  o.state = KeyState::active;
  auto b = ks.add(o, std::nullopt);
  REQUIRE_FALSE(b);
  CHECK(b.error().code == tokctl::ErrorCode::keystore);
  CHECK_THAT(b.error().hint, Catch::Contains("keys rotate"));
  auto m = manifest(ks);
  CHECK(m.keys.size() == 1);
  CHECK(m.active("ES256")->kid == a.kid);
}

TEST_CASE("add names a key by its RFC 7638 thumbprint unless a kid is given", "[keystore]") {
  Fixture f;
  auto ks = f.open();
  auto a = add(ks, "ES256");
  auto key = ks.load(a, k_no_pass);
  REQUIRE(key);
  auto tp = key->thumbprint();
  REQUIRE(tp);
  CHECK(a.kid == *tp);
  CHECK(a.thumbprint == *tp);
  auto b = add(ks, "ES256", std::nullopt, "signer-2026.01_b");
  CHECK(b.kid == "signer-2026.01_b");
  CHECK(exists(f.dir + "/keys/signer-2026.01_b.jwk"));
}

TEST_CASE("add refuses kids that are not safe file names", "[keystore]") {
  Fixture f;
  auto ks = f.open();
  for (std::string kid : {std::string(".hidden"), std::string("../escape"), std::string("a/b"),
                          std::string("with space"), std::string("semi;colon"), std::string(129, 'k'),
                          std::string("nul\0byte", 8), std::string("ünïcode")}) {
    INFO("kid: " << kid);
    AddOptions o;
    o.alg = "ES256";
    o.kid = kid;
    auto r = ks.add(o, k_no_pass);
    CHECK_FALSE(r);
    CHECK(tokctl::keys::valid_kid(kid) == false);
  }
  CHECK(manifest(ks).keys.empty());
  CHECK(files_in(f.dir + "/keys").empty());
  CHECK_FALSE(exists(f.dir + "/escape.jwk"));
  CHECK(tokctl::keys::valid_kid(std::string(128, 'k')));
  CHECK(tokctl::keys::valid_kid("A-z_0.9"));
}

TEST_CASE("add refuses a kid that is already in the keystore", "[keystore]") {
  Fixture f;
  auto ks = f.open();
  auto a = add(ks, "ES256", std::nullopt, "k1");
  AddOptions o;
  o.alg = "ES384";
  o.kid = "k1";
  auto r = ks.add(o, k_no_pass);
  REQUIRE_FALSE(r);
  CHECK(r.error().code == ErrorCode::keystore);
  CHECK_THAT(r.error().message, Contains("k1"));
  auto m = manifest(ks);
  REQUIRE(m.keys.size() == 1);
  CHECK(m.keys[0].alg == "ES256");
  // The original key file is untouched.
  auto key = ks.load(a, k_no_pass);
  REQUIRE(key);
  CHECK(*key->thumbprint() == a.thumbprint);
}

TEST_CASE("import refuses a key that is already in the keystore under another kid", "[keystore]") {
  Fixture f;
  auto ks = f.open();
  auto a = import_test_key(ks, "p256", "ES256");
  auto r = ks.import(test_key("p256"), ImportOptions{"other-name", "ES256", std::nullopt}, k_no_pass);
  REQUIRE_FALSE(r);
  CHECK(r.error().code == ErrorCode::keystore);
  CHECK_THAT(r.error().message, Contains(a.kid));
  CHECK(manifest(ks).keys.size() == 1);
  CHECK_FALSE(exists(f.dir + "/keys/other-name.jwk"));
}

TEST_CASE("import refuses a key whose own kid is not a safe file name", "[keystore]") {
  Fixture f;
  auto ks = f.open();
  Jwk key = test_key("p256");
  key.set_kid("../../outside");
  auto r = ks.import(key, ImportOptions{"", "ES256", std::nullopt}, k_no_pass);
  REQUIRE_FALSE(r);
  CHECK(manifest(ks).keys.empty());
  CHECK(files_in(f.dir + "/keys").empty());
  CHECK_FALSE(exists(f.tmp.file("outside.jwk")));
  // Its own safe kid is kept; an explicit kid wins.
  key.set_kid("from-the-jwk");
  auto ok = ks.import(key, ImportOptions{"", "ES256", std::nullopt}, k_no_pass);
  REQUIRE(ok);
  CHECK(ok->kid == "from-the-jwk");
}

TEST_CASE("import refuses public keys and keys unfit for the alg", "[keystore]") {
  Fixture f;
  auto ks = f.open();
  auto pub = test_key("p256").to_public();
  REQUIRE(pub);
  CHECK_FALSE(ks.import(*pub, ImportOptions{"", "ES256", std::nullopt}, k_no_pass));
  CHECK_FALSE(ks.import(test_key("p256"), ImportOptions{"", "", std::nullopt}, k_no_pass));  // no alg
  CHECK_FALSE(ks.import(test_key("p384"), ImportOptions{"", "ES256", std::nullopt}, k_no_pass));
  CHECK_FALSE(ks.import(test_key("rsa1024"), ImportOptions{"", "RS256", std::nullopt}, k_no_pass));
  CHECK_FALSE(ks.import(test_key("p256"), ImportOptions{"", "ES256", KeyState::retired}, k_no_pass));
  CHECK(manifest(ks).keys.empty());
  CHECK(files_in(f.dir + "/keys").empty());
}

TEST_CASE("the keystore directory is created 0700 and key files 0600", "[keystore]") {
  Fixture f;
  auto ks = f.open();
  CHECK(file_mode(f.dir) == 0700);
  CHECK(file_mode(f.dir + "/keys") == 0700);
  auto a = add(ks, "ES256");
  auto h = import_test_key(ks, "hs256", "HS256");
  CHECK(file_mode(f.key_path(a)) == 0600);
  CHECK(file_mode(f.key_path(h)) == 0600);
  CHECK(f.key_path(a) == f.dir + "/keys/" + a.kid + ".jwk");
  CHECK((file_mode(f.dir + "/keystore.json") & 077) == 0);
}

TEST_CASE("open creates missing parent directories 0700", "[keystore]") {
  TempDir tmp;
  FixedClock clock(k_t0);
  std::string dir = tmp.file("a/b/ks");
  auto ks = Keystore::open(dir, clock, true);
  REQUIRE(ks);
  CHECK(file_mode(tmp.file("a")) == 0700);
  CHECK(file_mode(dir) == 0700);
}

TEST_CASE("open without create refuses a missing keystore with a hint", "[keystore]") {
  TempDir tmp;
  FixedClock clock(k_t0);
  auto ks = Keystore::open(tmp.file("nope"), clock, false);
  REQUIRE_FALSE(ks);
  CHECK(ks.error().code == ErrorCode::keystore);
  CHECK_FALSE(ks.error().hint.empty());
  CHECK_FALSE(exists(tmp.file("nope")));
}

TEST_CASE("the manifest records kid, alg, use, state, times, thumbprint and the public key only",
          "[keystore]") {
  Fixture f;
  auto ks = f.open();
  auto a = add(ks, "ES256");
  f.clock.set(k_t0 + 90);
  auto b = add(ks, "ES256");
  auto h = import_test_key(ks, "hs256", "HS256");
  auto j = f.manifest_json();
  CHECK(j.at("format") == 1);
  REQUIRE(j.at("keys").size() == 3);
  const auto& ja = j["keys"][0];
  CHECK(ja.at("kid") == a.kid);
  CHECK(ja.at("alg") == "ES256");
  CHECK(ja.at("use") == "sig");
  CHECK(ja.at("state") == "active");
  CHECK(ja.at("created") == "2026-01-01T00:00:00Z");
  CHECK(ja.at("activated") == "2026-01-01T00:00:00Z");
  CHECK(ja.at("retired").is_null());
  CHECK(ja.at("thumbprint") == a.thumbprint);
  CHECK(ja.at("encrypted") == false);
  const auto& jb = j["keys"][1];
  CHECK(jb.at("state") == "next");
  CHECK(jb.at("created") == "2026-01-01T00:01:30Z");
  CHECK(jb.at("activated").is_null());
  // No private member anywhere in the manifest, and no secret for the HMAC key.
  for (const auto& k : j["keys"]) {
    if (!k.contains("jwk")) continue;
    for (const auto& member : k_private_members) CHECK_FALSE(k["jwk"].contains(member));
  }
  CHECK_FALSE(j["keys"][2].contains("jwk"));
  std::string text = read_file(f.dir + "/keystore.json");
  CHECK(text.find(tokctl::b64url_encode(test_key("hs256").secret())) == std::string::npos);
  CHECK(h.encrypted == false);
}

// ---- rotate --------------------------------------------------------------------------------------

TEST_CASE("rotate activates next, retires active and adds a fresh next", "[keystore]") {
  Fixture f;
  auto ks = f.open();
  auto a = add(ks, "ES256");
  auto b = add(ks, "ES256");
  f.clock.set(k_t0 + k_hour);
  auto r = ks.rotate("ES256", false, k_no_pass);
  REQUIRE(r);
  REQUIRE(r->size() == 1);
  CHECK((*r)[0].alg == "ES256");
  CHECK((*r)[0].retired == a.kid);
  CHECK((*r)[0].activated == b.kid);
  std::string c = (*r)[0].added;
  CHECK_FALSE(c.empty());
  CHECK(c != a.kid);
  CHECK(c != b.kid);
  auto m = manifest(ks);
  REQUIRE(m.keys.size() == 3);
  CHECK(m.find(a.kid)->state == KeyState::retired);
  CHECK(m.find(a.kid)->retired == k_t0 + k_hour);
  CHECK(m.find(b.kid)->state == KeyState::active);
  CHECK(m.find(b.kid)->activated == k_t0 + k_hour);
  CHECK(m.find(c)->state == KeyState::next);
  CHECK(m.find(c)->created == k_t0 + k_hour);
  CHECK(exists(f.dir + "/keys/" + c + ".jwk"));
  CHECK(file_mode(f.dir + "/keys/" + c + ".jwk") == 0600);
  // The following rotation is safe again.
  f.clock.set(k_t0 + 2 * k_hour);
  auto r2 = ks.rotate("ES256", false, k_no_pass);
  REQUIRE(r2);
  CHECK((*r2)[0].activated == c);
  CHECK((*r2)[0].retired == b.kid);
}

TEST_CASE("rotate refuses without a next key and changes nothing", "[keystore]") {
  Fixture f;
  auto ks = f.open();
  auto a = add(ks, "ES256");
  std::string before = read_file(f.dir + "/keystore.json");
  auto r = ks.rotate("ES256", false, k_no_pass);
  REQUIRE_FALSE(r);
  CHECK(r.error().code == ErrorCode::keystore);
  CHECK_THAT(r.error().message, Contains("ES256"));
  CHECK_FALSE(r.error().hint.empty());
  CHECK_THAT(r.error().hint, Contains("keys add"));
  CHECK_THAT(r.error().hint, Contains("publish"));
  CHECK(read_file(f.dir + "/keystore.json") == before);
  CHECK(files_in(f.dir + "/keys") == std::set<std::string>{a.kid + ".jwk"});
  // Every alg is rotated when none is named: refused as well.
  auto all = ks.rotate("", false, k_no_pass);
  REQUIRE_FALSE(all);
  CHECK(all.error().code == ErrorCode::keystore);
}

TEST_CASE("rotate --force without a next key activates a brand-new key", "[keystore]") {
  Fixture f;
  auto ks = f.open();
  auto a = add(ks, "ES256");
  f.clock.set(k_t0 + 10);
  auto r = ks.rotate("ES256", true, k_no_pass);
  REQUIRE(r);
  REQUIRE(r->size() == 1);
  CHECK((*r)[0].retired == a.kid);
  auto m = manifest(ks);
  CHECK(m.find(a.kid)->state == KeyState::retired);
  REQUIRE(m.active("ES256") != nullptr);
  CHECK(m.active("ES256")->kid == (*r)[0].activated);
  CHECK(m.find((*r)[0].added)->state == KeyState::next);
  CHECK(ks.check(k_no_pass).ok());
}

TEST_CASE("rotate with no alg rotates every alg that has keys", "[keystore]") {
  Fixture f;
  auto ks = f.open();
  auto e1 = add(ks, "ES256");
  auto e2 = add(ks, "ES256");
  auto d1 = add(ks, "EdDSA");
  auto d2 = add(ks, "EdDSA");
  auto r = ks.rotate("", false, k_no_pass);
  REQUIRE(r);
  CHECK(r->size() == 2);
  auto m = manifest(ks);
  CHECK(m.active("ES256")->kid == e2.kid);
  CHECK(m.active("EdDSA")->kid == d2.kid);
  CHECK(m.find(e1.kid)->state == KeyState::retired);
  CHECK(m.find(d1.kid)->state == KeyState::retired);
}

TEST_CASE("rotate keeps the key parameters of the alg (RSA size, EdDSA curve)", "[keystore]") {
  Fixture f;
  auto ks = f.open();
  AddOptions o;
  o.alg = "EdDSA";
  o.crv = "Ed448";
  REQUIRE(ks.add(o, k_no_pass));
  REQUIRE(ks.add(o, k_no_pass));
  auto r = ks.rotate("EdDSA", false, k_no_pass);
  REQUIRE(r);
  auto m = manifest(ks);
  auto key = ks.load(*m.find((*r)[0].added), k_no_pass);
  REQUIRE(key);
  CHECK(key->crv() == "Ed448");
}

// ---- retire --------------------------------------------------------------------------------------

TEST_CASE("retire is idempotent and keeps the first retirement time", "[keystore]") {
  Fixture f;
  auto ks = f.open();
  auto a = add(ks, "ES256");
  auto b = add(ks, "ES256");
  f.clock.set(k_t0 + 100);
  auto r1 = ks.retire(b.kid);
  REQUIRE(r1);
  CHECK(r1->state == KeyState::retired);
  CHECK(r1->retired == k_t0 + 100);
  f.clock.set(k_t0 + 5000);
  auto r2 = ks.retire(b.kid);
  REQUIRE(r2);
  CHECK(r2->state == KeyState::retired);
  CHECK(r2->retired == k_t0 + 100);
  CHECK(manifest(ks).find(b.kid)->retired == k_t0 + 100);
  CHECK(state_of(ks, a.kid) == KeyState::active);
}

TEST_CASE("retire of an unknown kid is a keystore error", "[keystore]") {
  Fixture f;
  auto ks = f.open();
  add(ks, "ES256");
  auto r = ks.retire("no-such-kid");
  REQUIRE_FALSE(r);
  CHECK(r.error().code == ErrorCode::keystore);
}

// ---- prune ---------------------------------------------------------------------------------------

TEST_CASE("prune removes retired keys exactly when max lifetime plus grace has passed", "[keystore]") {
  Fixture f;
  auto ks = f.open();
  auto a = add(ks, "ES256");
  auto b = add(ks, "ES256");
  f.clock.set(k_t0 + 1000);
  REQUIRE(ks.rotate("ES256", false, k_no_pass));  // a retired at t0+1000
  const std::int64_t max_lifetime = k_day, grace = 600;
  const UnixTime boundary = k_t0 + 1000 + max_lifetime + grace;

  f.clock.set(boundary - 1);
  auto early = ks.prune(max_lifetime, grace);
  REQUIRE(early);
  CHECK(early->empty());
  CHECK(manifest(ks).find(a.kid) != nullptr);
  CHECK(exists(f.key_path(a)));

  f.clock.set(boundary);
  auto due = ks.prune(max_lifetime, grace);
  REQUIRE(due);
  REQUIRE(due->size() == 1);
  CHECK((*due)[0].kid == a.kid);
  CHECK(manifest(ks).find(a.kid) == nullptr);
  CHECK_FALSE(exists(f.key_path(a)));
  CHECK(state_of(ks, b.kid) == KeyState::active);
  CHECK(ks.check(k_no_pass).ok());
}

TEST_CASE("prune never removes next or active keys however old", "[keystore]") {
  Fixture f;
  auto ks = f.open();
  auto a = add(ks, "ES256");
  auto b = add(ks, "ES256");
  auto c = import_test_key(ks, "hs256", "HS256");
  f.clock.set(k_t0 + 3650 * k_day);
  auto r = ks.prune(0, 0);
  REQUIRE(r);
  CHECK(r->empty());
  auto m = manifest(ks);
  CHECK(m.keys.size() == 3);
  for (const auto& e : {a, b, c}) CHECK(exists(f.key_path(e)));
}

TEST_CASE("prune keeps retired keys of other ages", "[keystore]") {
  Fixture f;
  auto ks = f.open();
  auto a = add(ks, "ES256");
  auto b = add(ks, "ES256");
  REQUIRE(ks.rotate("ES256", false, k_no_pass));  // a retired at t0
  f.clock.set(k_t0 + 10 * k_hour);
  REQUIRE(ks.rotate("ES256", false, k_no_pass));  // b retired at t0+10h
  f.clock.set(k_t0 + k_day + 1);
  auto r = ks.prune(k_day, 0);
  REQUIRE(r);
  REQUIRE(r->size() == 1);
  CHECK((*r)[0].kid == a.kid);
  CHECK(state_of(ks, b.kid) == KeyState::retired);
  CHECK(exists(f.key_path(b)));
}

// ---- jwks ----------------------------------------------------------------------------------------

TEST_CASE("jwks publishes next, active and retired public keys and never a private member", "[keystore]") {
  Fixture f;
  auto ks = f.open();
  auto e1 = add(ks, "ES256");
  auto e2 = add(ks, "ES256");
  REQUIRE(ks.rotate("ES256", false, k_no_pass));  // e1 retired, e2 active, fresh next
  auto rsa = import_test_key(ks, "rsa2048", "RS256");
  auto ed = import_test_key(ks, "ed25519", "EdDSA");
  auto hs = import_test_key(ks, "hs256", "HS256");
  auto enc = import_test_key(ks, "x25519", "ECDH-ES+A256KW");
  auto m = manifest(ks);

  auto set = ks.jwks();
  REQUIRE(set);
  std::set<std::string> kids;
  for (const auto& k : set->keys) {
    INFO("kid " << k.kid());
    kids.insert(k.kid());
    CHECK_FALSE(k.has_private());
    CHECK(k.kty() != KeyType::oct);
    const auto* e = m.find(k.kid());
    REQUIRE(e != nullptr);
    CHECK(k.alg() == e->alg);
    CHECK(k.use() == e->use);
    // Even a serialization that asks for private parts has none to give.
    for (auto part : {KeyPart::public_only, KeyPart::with_private}) {
      json j = k.to_json(part);
      for (const auto& member : k_private_members) CHECK_FALSE(j.contains(member));
    }
  }
  json whole = set->to_json(KeyPart::with_private);
  for (const auto& k : whole.at("keys"))
    for (const auto& member : k_private_members) CHECK_FALSE(k.contains(member));
  // Everything asymmetric is published, whatever its state; the HMAC secret never is.
  std::set<std::string> want;
  for (const auto& e : m.keys)
    if (e.alg != "HS256") want.insert(e.kid);
  CHECK(kids == want);
  CHECK(kids.count(e1.kid) == 1);
  CHECK(kids.count(rsa.kid) == 1);
  CHECK(kids.count(ed.kid) == 1);
  CHECK(kids.count(enc.kid) == 1);
  CHECK(kids.count(hs.kid) == 0);
  CHECK(set->keys.size() == m.keys.size() - 1);

  auto sig_only = ks.jwks("sig");
  REQUIRE(sig_only);
  for (const auto& k : sig_only->keys) CHECK(k.use() == "sig");
  CHECK(sig_only->keys.size() == set->keys.size() - 1);
}

TEST_CASE("jwks of an encrypted keystore needs no passphrase and leaks nothing", "[keystore]") {
  Fixture f;
  auto ks = f.open();
  Passphrase pass = std::string("correct horse battery staple");
  add(ks, "ES256", std::nullopt, "", pass);
  import_test_key(ks, "hs384", "HS384", std::nullopt, pass);
  auto set = ks.jwks();
  REQUIRE(set);
  REQUIRE(set->keys.size() == 1);
  CHECK_FALSE(set->keys[0].has_private());
  json j = set->to_json(KeyPart::with_private);
  for (const auto& member : k_private_members) CHECK_FALSE(j["keys"][0].contains(member));
}

// ---- verification and signing keys ------------------------------------------------------------

TEST_CASE("verification_keys pins each key's alg from the manifest", "[keystore]") {
  Fixture f;
  auto ks = f.open();
  auto e1 = add(ks, "ES256");
  auto e2 = add(ks, "ES256");
  REQUIRE(ks.rotate("ES256", false, k_no_pass));
  import_test_key(ks, "rsa2048", "PS384");
  import_test_key(ks, "hs512", "HS512");
  import_test_key(ks, "x25519", "ECDH-ES");
  auto m = manifest(ks);
  auto set = ks.verification_keys(k_no_pass);
  REQUIRE(set);
  std::set<std::string> kids;
  for (const auto& k : set->keys) {
    INFO("kid " << k.kid());
    const auto* e = m.find(k.kid());
    REQUIRE(e != nullptr);
    CHECK_FALSE(k.alg().empty());
    CHECK(k.alg() == e->alg);
    CHECK(e->use == "sig");
    if (k.kty() != KeyType::oct) CHECK_FALSE(k.has_private());
    kids.insert(k.kid());
  }
  // next, active and retired sig keys (4 ES256 + RSA + HMAC); no encryption key.
  CHECK(kids.size() == 5);
  CHECK(kids.count(e1.kid) == 1);
  CHECK(kids.count(e2.kid) == 1);
}

TEST_CASE("verification_keys of an empty keystore is a keystore error with a hint", "[keystore]") {
  Fixture f;
  auto ks = f.open();
  auto set = ks.verification_keys(k_no_pass);
  REQUIRE_FALSE(set);
  CHECK(set.error().code == ErrorCode::keystore);
  CHECK_FALSE(set.error().hint.empty());
}

TEST_CASE("signing_key picks the active key", "[keystore]") {
  Fixture f;
  auto ks = f.open();
  auto a = add(ks, "ES256");
  add(ks, "ES256");  // next: not picked
  auto k = ks.signing_key("", "", k_no_pass);
  REQUIRE(k);
  CHECK(k->kid() == a.kid);
  CHECK(k->alg() == "ES256");
  CHECK(k->has_private());
  auto k2 = ks.signing_key("ES256", "", k_no_pass);
  REQUIRE(k2);
  CHECK(k2->kid() == a.kid);
  auto by_kid = ks.signing_key("", a.kid, k_no_pass);
  REQUIRE(by_kid);
  CHECK(by_kid->kid() == a.kid);
}

TEST_CASE("signing_key fails when no key is active", "[keystore]") {
  Fixture f;
  auto ks = f.open();
  auto none = ks.signing_key("", "", k_no_pass);
  REQUIRE_FALSE(none);
  CHECK(none.error().code == ErrorCode::keystore);
  CHECK_FALSE(none.error().hint.empty());
  add(ks, "ES256");
  auto other = ks.signing_key("RS256", "", k_no_pass);
  REQUIRE_FALSE(other);
  CHECK(other.error().code == ErrorCode::keystore);
  CHECK_THAT(other.error().message, Contains("RS256"));
}

TEST_CASE("signing_key asks for an alg when several algs have an active key", "[keystore]") {
  Fixture f;
  auto ks = f.open();
  auto es = add(ks, "ES256");
  auto rs = import_test_key(ks, "rsa2048", "RS256");
  auto k = ks.signing_key("", "", k_no_pass);
  REQUIRE_FALSE(k);
  CHECK_THAT(k.error().message, Contains("ES256"));
  CHECK_THAT(k.error().message, Contains("RS256"));
  CHECK_THAT(k.error().hint, Contains("--alg"));
  auto r = ks.signing_key("RS256", "", k_no_pass);
  REQUIRE(r);
  CHECK(r->kid() == rs.kid);
  (void)es;
}

TEST_CASE("signing_key refuses a retired or unknown kid", "[keystore]") {
  Fixture f;
  auto ks = f.open();
  auto a = add(ks, "ES256");
  add(ks, "ES256");
  REQUIRE(ks.rotate("ES256", false, k_no_pass));
  auto retired = ks.signing_key("", a.kid, k_no_pass);
  REQUIRE_FALSE(retired);
  CHECK(retired.error().code == ErrorCode::keystore);
  CHECK_THAT(retired.error().message, Contains("retired"));
  auto unknown = ks.signing_key("", "nope", k_no_pass);
  REQUIRE_FALSE(unknown);
  CHECK(unknown.error().code == ErrorCode::keystore);
}

// ---- keys encrypted at rest ------------------------------------------------------------------------

TEST_CASE("a passphrase stores the key as a PBES2-HS512+A256KW compact JWE", "[keystore]") {
  Fixture f;
  auto ks = f.open();
  Passphrase pass = std::string("correct horse battery staple");
  auto a = add(ks, "ES256", std::nullopt, "", pass);
  CHECK(a.encrypted);
  CHECK(a.file_name() == a.kid + ".jwe");
  CHECK(files_in(f.dir + "/keys") == std::set<std::string>{a.kid + ".jwe"});
  CHECK(file_mode(f.dir + "/keys/" + a.kid + ".jwe") == 0600);
  std::string text = read_file(f.dir + "/keys/" + a.kid + ".jwe");
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.pop_back();
  CHECK(std::count(text.begin(), text.end(), '.') == 4);
  auto header = tokctl::b64url_decode(text.substr(0, text.find('.')));
  REQUIRE(header);
  json h = json::parse(*header);
  CHECK(h.at("alg") == "PBES2-HS512+A256KW");
  CHECK(h.contains("enc"));
  CHECK(h.contains("p2s"));
  CHECK(h.at("p2c").get<long long>() >= 1000);
  // No plaintext key material in the file.
  CHECK(text.find("\"d\"") == std::string::npos);
  CHECK(text.find("\"kty\"") == std::string::npos);
  CHECK(manifest(ks).find(a.kid)->encrypted);
  CHECK(f.manifest_json()["keys"][0].at("encrypted") == true);
  // With the passphrase the key loads and matches its thumbprint.
  auto key = ks.load(a, pass);
  REQUIRE(key);
  CHECK(key->has_private());
  CHECK(*key->thumbprint() == a.thumbprint);
}

TEST_CASE("an encrypted key does not load without its passphrase", "[keystore]") {
  Fixture f;
  auto ks = f.open();
  Passphrase pass = std::string("correct horse battery staple");
  auto a = add(ks, "ES256", std::nullopt, "", pass);
  auto none = ks.load(a, k_no_pass);
  REQUIRE_FALSE(none);
  CHECK(none.error().code == ErrorCode::keystore);
  CHECK_THAT(none.error().hint, Contains("passphrase"));
  auto wrong = ks.load(a, std::string("Correct horse battery staple"));
  REQUIRE_FALSE(wrong);
  CHECK(wrong.error().code == ErrorCode::keystore);
  auto sign_none = ks.signing_key("ES256", "", k_no_pass);
  REQUIRE_FALSE(sign_none);
  CHECK(sign_none.error().code == ErrorCode::keystore);
  auto sign_ok = ks.signing_key("ES256", "", pass);
  REQUIRE(sign_ok);
  CHECK(sign_ok->kid() == a.kid);
}

TEST_CASE("import with a passphrase stores the key encrypted", "[keystore]") {
  Fixture f;
  auto ks = f.open();
  Passphrase pass = std::string("s3cret passphrase");
  auto e = import_test_key(ks, "hs256", "HS256", std::nullopt, pass);
  CHECK(e.encrypted);
  CHECK(exists(f.dir + "/keys/" + e.kid + ".jwe"));
  CHECK_FALSE(exists(f.dir + "/keys/" + e.kid + ".jwk"));
  auto k = ks.load(e, pass);
  REQUIRE(k);
  CHECK(k->secret() == test_key("hs256").secret());
  // verification_keys needs the passphrase for HMAC secrets, and skips them without it.
  add(ks, "ES256");
  auto without = ks.verification_keys(k_no_pass);
  REQUIRE(without);
  CHECK(without->keys.size() == 1);
  auto with = ks.verification_keys(pass);
  REQUIRE(with);
  CHECK(with->keys.size() == 2);
}

TEST_CASE("an unencrypted key cannot join an alg whose keys are encrypted", "[keystore]") {
  Fixture f;
  auto ks = f.open();
  Passphrase pass = std::string("correct horse battery staple");
  add(ks, "ES256", std::nullopt, "", pass);
  AddOptions o;
  o.alg = "ES256";
  auto r = ks.add(o, k_no_pass);
  REQUIRE_FALSE(r);
  CHECK(r.error().code == ErrorCode::keystore);
  CHECK_THAT(r.error().hint, Contains("passphrase"));
  auto imp = ks.import(test_key("p256"), ImportOptions{"", "ES256", std::nullopt}, k_no_pass);
  REQUIRE_FALSE(imp);
  CHECK(imp.error().code == ErrorCode::keystore);
  CHECK(manifest(ks).keys.size() == 1);
  // Another alg is free to be unencrypted.
  CHECK(add(ks, "ES384").encrypted == false);
}

TEST_CASE("rotate of encrypted keys needs the passphrase and keeps the new keys encrypted", "[keystore]") {
  Fixture f;
  auto ks = f.open();
  Passphrase pass = std::string("correct horse battery staple");
  add(ks, "ES256", std::nullopt, "", pass);
  add(ks, "ES256", std::nullopt, "", pass);
  auto without = ks.rotate("ES256", false, k_no_pass);
  REQUIRE_FALSE(without);
  CHECK(without.error().code == ErrorCode::keystore);
  auto r = ks.rotate("ES256", false, pass);
  REQUIRE(r);
  auto m = manifest(ks);
  const auto* fresh = m.find((*r)[0].added);
  REQUIRE(fresh != nullptr);
  CHECK(fresh->encrypted);
  CHECK(exists(f.dir + "/keys/" + fresh->kid + ".jwe"));
  CHECK(ks.check(pass).ok());
}

// Regression (was a bug): a wrong passphrase is only checked for presence (passphrase_consistent), never against the
// keys already stored: rotate and add then write new keys encrypted under the wrong passphrase, so
// the keystore holds keys of one alg under two passphrases and, after the rotation, the active key no
// longer opens with the right one (check reports "cannot decrypt").
TEST_CASE("rotate and add refuse a passphrase that does not open the alg's encrypted keys",
          "[keystore]") {
  Fixture f;
  auto ks = f.open();
  Passphrase right = std::string("correct horse battery staple");
  Passphrase wrong = std::string("incorrect horse battery staple");
  add(ks, "ES256", std::nullopt, "", right);
  add(ks, "ES256", std::nullopt, "", right);
  std::string before = read_file(f.dir + "/keystore.json");
  auto r = ks.rotate("ES256", false, wrong);
  CHECK_FALSE(r);
  if (!r) CHECK(r.error().code == ErrorCode::keystore);
  AddOptions o;
  o.alg = "ES256";
  auto a = ks.add(o, wrong);
  CHECK_FALSE(a);
  if (!a) CHECK(a.error().code == ErrorCode::keystore);
  CHECK(read_file(f.dir + "/keystore.json") == before);
  CHECK(ks.check(right).ok());
  CHECK(ks.signing_key("ES256", "", right));
}

// ---- check -----------------------------------------------------------------------------------------

TEST_CASE("check accepts a fresh keystore", "[keystore]") {
  Fixture f;
  auto ks = f.open();
  add(ks, "ES256");
  add(ks, "ES256");
  import_test_key(ks, "hs256", "HS256");
  auto r = ks.check(k_no_pass);
  INFO(join(r.problems));
  CHECK(r.ok());
  CHECK(r.problems.empty());
  CHECK(r.notes.empty());
}

TEST_CASE("check reports a key file that is missing", "[keystore]") {
  Fixture f;
  auto ks = f.open();
  add(ks, "ES256");
  auto b = add(ks, "ES256");
  REQUIRE(::unlink(f.key_path(b).c_str()) == 0);
  auto r = ks.check(k_no_pass);
  CHECK_FALSE(r.ok());
  CHECK(any_contains(r.problems, b.kid));
  CHECK(any_contains(r.problems, "missing"));
}

TEST_CASE("check reports a key file readable by others", "[keystore]") {
  Fixture f;
  auto ks = f.open();
  auto a = add(ks, "ES256");
  REQUIRE(::chmod(f.key_path(a).c_str(), 0644) == 0);
  auto r = ks.check(k_no_pass);
  CHECK_FALSE(r.ok());
  CHECK(any_contains(r.problems, "chmod 600"));
  CHECK(any_contains(r.problems, a.kid));
}

TEST_CASE("check reports two active keys of one alg", "[keystore]") {
  Fixture f;
  auto ks = f.open();
  add(ks, "ES256");
  add(ks, "ES256");
  json j = f.manifest_json();
  for (auto& k : j["keys"]) {
    k["state"] = "active";
    k["activated"] = "2026-01-01T00:00:00Z";
  }
  write_file(f.dir + "/keystore.json", j.dump(2));
  auto r = ks.check(k_no_pass);
  CHECK_FALSE(r.ok());
  CHECK(any_contains(r.problems, "ES256"));
  CHECK(any_contains(r.problems, "2 active"));
}

TEST_CASE("check reports an alg with keys but no active one", "[keystore]") {
  Fixture f;
  auto ks = f.open();
  add(ks, "ES256");
  add(ks, "ES256");
  json j = f.manifest_json();
  j["keys"][0]["state"] = "next";
  write_file(f.dir + "/keystore.json", j.dump(2));
  auto r = ks.check(k_no_pass);
  CHECK_FALSE(r.ok());
  CHECK(any_contains(r.problems, "no active key for ES256"));
}

TEST_CASE("check reports a corrupted manifest", "[keystore]") {
  Fixture f;
  auto ks = f.open();
  add(ks, "ES256");
  std::string text = read_file(f.dir + "/keystore.json");
  SECTION("truncated") { write_file(f.dir + "/keystore.json", text.substr(0, text.size() / 2)); }
  SECTION("not JSON") { write_file(f.dir + "/keystore.json", "\x01\x02garbage"); }
  SECTION("unknown state") {
    json j = json::parse(text);
    j["keys"][0]["state"] = "zombie";
    write_file(f.dir + "/keystore.json", j.dump());
  }
  SECTION("unsafe kid") {
    json j = json::parse(text);
    j["keys"][0]["kid"] = "../../etc/passwd";
    write_file(f.dir + "/keystore.json", j.dump());
  }
  SECTION("wrong format") {
    json j = json::parse(text);
    j["format"] = 99;
    write_file(f.dir + "/keystore.json", j.dump());
  }
  auto r = ks.check(k_no_pass);
  CHECK_FALSE(r.ok());
  CHECK_FALSE(r.problems.empty());
  auto m = ks.manifest();
  REQUIRE_FALSE(m);
  CHECK(m.error().code == ErrorCode::keystore);
}

TEST_CASE("check reports a key file replaced by another key", "[keystore]") {
  Fixture f;
  auto ks = f.open();
  auto a = add(ks, "ES256");
  write_file(f.key_path(a), std::string(tokctl::test::test_key_json("p256")));
  REQUIRE(::chmod(f.key_path(a).c_str(), 0600) == 0);
  auto r = ks.check(k_no_pass);
  CHECK_FALSE(r.ok());
  CHECK(any_contains(r.problems, a.kid));
  CHECK_FALSE(ks.load(a, k_no_pass));
}

TEST_CASE("check notes an orphaned key file without calling it a problem", "[keystore]") {
  Fixture f;
  auto ks = f.open();
  add(ks, "ES256");
  write_file(f.dir + "/keys/orphan.jwk", std::string(tokctl::test::test_key_json("p256")));
  REQUIRE(::chmod((f.dir + "/keys/orphan.jwk").c_str(), 0600) == 0);
  auto r = ks.check(k_no_pass);
  INFO(join(r.problems));
  CHECK(r.ok());
  CHECK(any_contains(r.notes, "orphan.jwk"));
  // The next write sweeps it away.
  add(ks, "ES256");
  CHECK_FALSE(exists(f.dir + "/keys/orphan.jwk"));
  auto after = ks.check(k_no_pass);
  CHECK(after.ok());
  CHECK(after.notes.empty());
}

TEST_CASE("check notes encrypted keys it cannot read without the passphrase", "[keystore]") {
  Fixture f;
  auto ks = f.open();
  Passphrase pass = std::string("pw-pw-pw-pw");
  add(ks, "ES256", std::nullopt, "", pass);
  auto r = ks.check(k_no_pass);
  CHECK(r.ok());
  CHECK(any_contains(r.notes, "encrypted"));
  auto with = ks.check(pass);
  CHECK(with.ok());
  auto wrong = ks.check(std::string("nope-nope"));
  CHECK_FALSE(wrong.ok());
}

// ---- permissions ------------------------------------------------------------------------------------

TEST_CASE("open refuses a keystore directory writable by group or others", "[keystore]") {
  Fixture f;
  {
    auto ks = f.open();
    add(ks, "ES256");
  }
  for (unsigned mode : {0777u, 0770u, 0702u}) {
    INFO("mode " << std::oct << mode);
    REQUIRE(::chmod(f.dir.c_str(), mode) == 0);
    for (bool create : {false, true}) {
      auto ks = Keystore::open(f.dir, f.clock, create);
      REQUIRE_FALSE(ks);
      CHECK(ks.error().code == ErrorCode::keystore);
      CHECK_THAT(ks.error().hint, Contains("chmod 700"));
    }
  }
  REQUIRE(::chmod(f.dir.c_str(), 0700) == 0);
  CHECK(Keystore::open(f.dir, f.clock, false));
}

TEST_CASE("open refuses a keys directory open to group or others", "[keystore]") {
  Fixture f;
  {
    auto ks = f.open();
    add(ks, "ES256");
  }
  REQUIRE(::chmod((f.dir + "/keys").c_str(), 0750) == 0);
  auto ks = Keystore::open(f.dir, f.clock, false);
  REQUIRE_FALSE(ks);
  CHECK(ks.error().code == ErrorCode::keystore);
}

TEST_CASE("load refuses a key file readable by group or others", "[keystore]") {
  Fixture f;
  auto ks = f.open();
  auto a = add(ks, "ES256");
  for (unsigned mode : {0644u, 0640u, 0604u, 0660u}) {
    INFO("mode " << std::oct << mode);
    REQUIRE(::chmod(f.key_path(a).c_str(), mode) == 0);
    auto k = ks.load(a, k_no_pass);
    REQUIRE_FALSE(k);
    CHECK(k.error().code == ErrorCode::keystore);
    CHECK_THAT(k.error().hint, Contains("chmod 600"));
    CHECK_FALSE(ks.signing_key("ES256", "", k_no_pass));
  }
  REQUIRE(::chmod(f.key_path(a).c_str(), 0600) == 0);
  CHECK(ks.load(a, k_no_pass));
}
