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
#include <openssl/evp.h>

#include <algorithm>
#include <cstdio>
#include <dirent.h>
#include <set>
#include <string>
#include <string_view>
#include <chrono>
#include <fcntl.h>
#include <filesystem>
#include <functional>
#include <sys/stat.h>
#include <unistd.h>
#include <vector>

#include "support/cli_helpers.hpp"
#include "support/keys.hpp"
#include "support/run.hpp"

using nlohmann::json;
using tokctl::ErrorCode;
using tokctl::Error;
using tokctl::Remedy;
using tokctl::FixedClock;
using tokctl::Result;
using tokctl::UnixTime;
using tokctl::jose::Jwk;
using tokctl::jose::KeyPart;
using tokctl::jose::KeyType;
using tokctl::keys::AddOptions;
using tokctl::keys::Force;
using tokctl::keys::ImportOptions;
using tokctl::keys::KeyEntry;
using tokctl::keys::KeyState;
using tokctl::keys::Keystore;
using tokctl::keys::Manifest;
using tokctl::keys::Passphrase;
using tokctl::keys::RotateOptions;
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

std::string sha256_b64(std::string_view data) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  REQUIRE(EVP_Digest(data.data(), data.size(), md, &len, EVP_sha256(), nullptr) == 1);
  return tokctl::b64url_encode(std::string_view(reinterpret_cast<const char*>(md), len));
}

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

// Rotation in tests that are not about the publication delay: no minimum next-key age.
RotateOptions rot(const std::string& alg, Force force = Force::no) {
  RotateOptions o;
  o.alg = alg;
  o.force = force;
  o.min_next_age = 0;
  return o;
}

Manifest manifest(const Keystore& ks) {
  auto m = ks.manifest();
  if (!m) FAIL("manifest: " << m.error().message);
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

// Keystore check problems as "message; fix: hint" lines.
std::vector<std::string> lines(const std::vector<Error>& problems) {
  std::vector<std::string> out;
  for (const auto& p : problems) out.push_back(p.message + "; fix: " + p.hint);
  return out;
}

bool any_contains(const std::vector<Error>& problems, std::string_view needle) {
  return any_contains(lines(problems), needle);
}

std::string join(const std::vector<Error>& problems) { return join(lines(problems)); }

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
  CHECK(b.error().remedy == Remedy::rotate_key);
  CHECK(b.error().subject == "ES256");
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
  CHECK_FALSE(ks.import(test_key("rsa2048"), ImportOptions{"", "", std::nullopt}, k_no_pass));  // RSA: no alg implied
  CHECK_FALSE(ks.import(test_key("p384"), ImportOptions{"", "ES256", std::nullopt}, k_no_pass));
  CHECK_FALSE(ks.import(test_key("rsa1024"), ImportOptions{"", "RS256", std::nullopt}, k_no_pass));
  CHECK_FALSE(ks.import(test_key("p256"), ImportOptions{"", "ES256", KeyState::retired}, k_no_pass));
  CHECK(manifest(ks).keys.empty());
  CHECK(files_in(f.dir + "/keys").empty());
}

// Regression (review): a JWE key-management alg took any private key on import (a P-256 key as
// RSA-OAEP, a 1024-bit RSA key, a 5-byte AES key-wrap secret), and the first load of such a key
// then refused it as manifest damage: JWKS publication and rotation stopped for the whole keystore.
TEST_CASE("import holds keys for JWE algs to the type and size keys add makes", "[keystore]") {
  Fixture f;
  auto ks = f.open();
  auto secret = [](std::size_t n) {
    auto k = Jwk::from_secret(std::string(n, 'k'));
    REQUIRE(k);
    return *k;
  };
  struct Refused {
    Jwk key;
    std::string alg;
    std::string why;
  };
  const std::vector<Refused> refused = {
      {test_key("p256"), "RSA-OAEP", "RSA-OAEP cannot be used with"},
      {test_key("rsa1024"), "RSA-OAEP-256", "2048 to 16384 bits, not 1024"},
      {test_key("rsa2048"), "ECDH-ES", "cannot be used with"},
      {test_key("ed25519"), "ECDH-ES+A128KW", "cannot be used with"},
      {secret(5), "A128KW", "cannot be used with"},
      {secret(16), "A256KW", "cannot be used with"},
      {secret(5), "dir", "not 5"},
      {secret(24), "dir", "not 24"},
  };
  for (const auto& r : refused) {
    INFO(r.alg << " " << r.key.describe());
    auto e = ks.import(r.key, ImportOptions{"", r.alg, std::nullopt}, k_no_pass);
    REQUIRE_FALSE(e);
    CHECK(e.error().code == ErrorCode::usage);
    CHECK_THAT(e.error().message, Contains(r.why));
  }
  CHECK(manifest(ks).keys.empty());
  CHECK(files_in(f.dir + "/keys").empty());
  // What keys add would make is taken, and the keystore stays whole: JWKS, check, rotation.
  for (auto [key, alg] : {std::pair<Jwk, std::string>{test_key("rsa2048"), "RSA-OAEP-256"}, {test_key("p384"), "ECDH-ES"},
                          {test_key("x25519"), "ECDH-ES+A256KW"}, {secret(16), "A128KW"}, {secret(32), "A256KW"},
                          {secret(64), "dir"}}) {
    INFO(alg);
    CHECK(ks.import(key, ImportOptions{"", alg, std::nullopt}, k_no_pass));
  }
  CHECK(ks.jwks());
  CHECK(ks.check(k_no_pass).ok());
}

TEST_CASE("import takes the alg an EC or Ed key implies", "[keystore]") {
  Fixture f;
  auto ks = f.open();
  auto ec = ks.import(test_key("p384"), ImportOptions{"", "", std::nullopt}, k_no_pass);
  REQUIRE(ec);
  CHECK(ec->alg == "ES384");
  auto ed = ks.import(test_key("ed25519"), ImportOptions{"", "", std::nullopt}, k_no_pass);
  REQUIRE(ed);
  CHECK(ed->alg == "EdDSA");
  // An explicit alg still wins, and must fit the key.
  CHECK_FALSE(ks.import(test_key("p256"), ImportOptions{"", "ES384", std::nullopt}, k_no_pass));
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
  auto r = ks.rotate(rot("ES256"), k_no_pass);
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
  auto r2 = ks.rotate(rot("ES256"), k_no_pass);
  REQUIRE(r2);
  CHECK((*r2)[0].activated == c);
  CHECK((*r2)[0].retired == b.kid);
}

TEST_CASE("rotate refuses without a next key and changes nothing", "[keystore]") {
  Fixture f;
  auto ks = f.open();
  auto a = add(ks, "ES256");
  std::string before = read_file(f.dir + "/keystore.json");
  auto r = ks.rotate(rot("ES256"), k_no_pass);
  REQUIRE_FALSE(r);
  CHECK(r.error().code == ErrorCode::keystore);
  CHECK_THAT(r.error().message, Contains("ES256"));
  CHECK_FALSE(r.error().hint.empty());
  CHECK(r.error().remedy == Remedy::add_signing_key);
  CHECK_THAT(r.error().hint, Contains("publish"));
  CHECK(read_file(f.dir + "/keystore.json") == before);
  CHECK(files_in(f.dir + "/keys") == std::set<std::string>{a.kid + ".jwk"});
  // Every alg is rotated when none is named: refused as well.
  auto all = ks.rotate(rot(""), k_no_pass);
  REQUIRE_FALSE(all);
  CHECK(all.error().code == ErrorCode::keystore);
}

TEST_CASE("rotate refuses to activate a next key whose file is missing, corrupt or another key's", "[keystore]") {
  Fixture f;
  auto ks = f.open();
  auto a = add(ks, "ES256");
  auto b = add(ks, "ES256");
  auto other = add(ks, "ES384");
  const std::string next_file = f.dir + "/keys/" + b.kid + ".jwk";
  const std::string good = read_file(next_file);
  f.clock.set(k_t0 + k_hour);
  const std::string before = read_file(f.dir + "/keystore.json");
  auto refused = [&](const char* what, Force force) {
    INFO(what);
    const auto files_before = files_in(f.dir + "/keys");
    auto r = ks.rotate(rot("ES256", force), k_no_pass);
    REQUIRE_FALSE(r);
    CHECK(r.error().code == ErrorCode::keystore);
    CHECK_THAT(r.error().message, Contains(b.kid) && Contains("cannot be activated"));
    CHECK_THAT(r.error().hint, Contains("nothing was changed"));
    // Nothing changed: the working key still signs, no key file was left behind.
    CHECK(read_file(f.dir + "/keystore.json") == before);
    CHECK(manifest(ks).active("ES256")->kid == a.kid);
    CHECK(files_in(f.dir + "/keys") == files_before);
  };
  auto put = [&](std::string_view text) {
    write_file(next_file, text);
    REQUIRE(::chmod(next_file.c_str(), 0600) == 0);
  };
  std::filesystem::remove(next_file);
  refused("missing", Force::no);
  put("garbage");
  refused("not JSON", Force::no);
  put(read_file(f.dir + "/keys/" + other.kid + ".jwk"));
  refused("another key's file", Force::no);
  refused("forced: still refused, a forced rotation must not activate a broken key", Force::yes);
  // Restored, the same rotation goes through.
  put(good);
  auto r = ks.rotate(rot("ES256"), k_no_pass);
  REQUIRE(r);
  CHECK((*r)[0].activated == b.kid);
}

TEST_CASE("rotate --force without a next key activates a brand-new key", "[keystore]") {
  Fixture f;
  auto ks = f.open();
  auto a = add(ks, "ES256");
  f.clock.set(k_t0 + 10);
  auto r = ks.rotate(rot("ES256", Force::yes), k_no_pass);
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

TEST_CASE("rotate --force never adds an algorithm the keystore has no key of", "[keystore]") {
  // A mistyped --alg in an emergency used to add a second signing algorithm, after which
  // nothing signed without naming one.
  Fixture f;
  auto ks = f.open();
  auto a = add(ks, "ES256");
  const auto before = read_file(f.dir + "/keystore.json");
  for (auto force : {Force::no, Force::yes}) {
    auto r = ks.rotate(rot("PS256", force), k_no_pass);
    REQUIRE_FALSE(r);
    CHECK(r.error().code == ErrorCode::keystore);
    CHECK_THAT(r.error().message, Contains("no PS256 key to rotate"));
  }
  CHECK(read_file(f.dir + "/keystore.json") == before);
  CHECK(manifest(ks).active("PS256") == nullptr);
  // No such algorithm at all: a usage error, with or without force (no key one could add).
  for (auto force : {Force::no, Force::yes}) {
    auto r = ks.rotate(rot("FOO", force), k_no_pass);
    REQUIRE_FALSE(r);
    CHECK(r.error().code == ErrorCode::usage);
  }
  CHECK(manifest(ks).find(a.kid)->state == KeyState::active);
}

TEST_CASE("rotate with no alg rotates every alg that has keys", "[keystore]") {
  Fixture f;
  auto ks = f.open();
  auto e1 = add(ks, "ES256");
  auto e2 = add(ks, "ES256");
  auto d1 = add(ks, "EdDSA");
  auto d2 = add(ks, "EdDSA");
  auto r = ks.rotate(rot(""), k_no_pass);
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
  auto r = ks.rotate(rot("EdDSA"), k_no_pass);
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
  REQUIRE(ks.rotate(rot("ES256"), k_no_pass));  // a retired at t0+1000
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
  REQUIRE(ks.rotate(rot("ES256"), k_no_pass));  // a retired at t0
  f.clock.set(k_t0 + 10 * k_hour);
  REQUIRE(ks.rotate(rot("ES256"), k_no_pass));  // b retired at t0+10h
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
  REQUIRE(ks.rotate(rot("ES256"), k_no_pass));  // e1 retired, e2 active, fresh next
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
  REQUIRE(ks.rotate(rot("ES256"), k_no_pass));
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
  CHECK(k.error().param == "alg");
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
  REQUIRE(ks.rotate(rot("ES256"), k_no_pass));
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
  auto without = ks.rotate(rot("ES256"), k_no_pass);
  REQUIRE_FALSE(without);
  CHECK(without.error().code == ErrorCode::keystore);
  auto r = ks.rotate(rot("ES256"), pass);
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
  auto r = ks.rotate(rot("ES256"), wrong);
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

// Regression (review): the passphrase was checked against the alg's first encrypted key only, and
// any failure to load it (a missing or damaged file) was reported as a wrong passphrase, which then
// stopped every add and rotate of that alg with the wrong reason.
TEST_CASE("add and rotate check the passphrase against a key that can be read, and name a file's own problem",
          "[keystore]") {
  Fixture f;
  auto ks = f.open();
  Passphrase right = std::string("correct horse battery staple");
  Passphrase wrong = std::string("incorrect horse battery staple");
  KeyEntry first = add(ks, "ES256", std::nullopt, "", right);
  add(ks, "ES256", std::nullopt, "", right);
  REQUIRE(ks.rotate(rot("ES256"), right));  // `first` is retired now
  REQUIRE(state_of(ks, first.kid) == KeyState::retired);
  REQUIRE(::unlink(f.key_path(first).c_str()) == 0);
  // The retired key's file is gone: the keys in use still tell a right passphrase from a wrong one.
  auto bad = ks.rotate(rot("ES256"), wrong);
  REQUIRE_FALSE(bad);
  CHECK_THAT(bad.error().message, Contains("the passphrase does not open"));
  REQUIRE(ks.rotate(rot("ES256"), right));
  // With no readable key of the alg left, the reason is the files' own.
  for (const auto& e : manifest(ks).keys)
    if (e.alg == "ES256" && exists(f.key_path(e))) write_file(f.key_path(e), "not a JWE");
  AddOptions o;
  o.alg = "ES256";
  auto a = ks.add(o, right);
  REQUIRE_FALSE(a);
  CHECK(a.error().code == ErrorCode::keystore);
  CHECK_THAT(a.error().message, Contains("cannot check the passphrase"));
  CHECK_THAT(a.error().message, !Contains("does not open"));
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
  // Nothing signs with such a keystore, named or not: which key would is not defined.
  for (const char* alg : {"", "ES256"}) {
    auto k = ks.signing_key(alg, "", k_no_pass);
    REQUIRE_FALSE(k);
    CHECK(k.error().code == ErrorCode::keystore);
    CHECK_THAT(k.error().message, Contains("2 active ES256 keys"));
    CHECK_THAT(k.error().hint, Contains("retire"));
  }
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

// Regression (issue 7.1): the next writer used to "sweep" every file under keys/ the manifest did
// not name, and check called such a file a harmless note.
TEST_CASE("check reports a key file the manifest does not name as a problem, and writers keep it", "[keystore]") {
  Fixture f;
  auto ks = f.open();
  add(ks, "ES256");
  write_file(f.dir + "/keys/orphan.jwk", std::string(tokctl::test::test_key_json("p256")));
  REQUIRE(::chmod((f.dir + "/keys/orphan.jwk").c_str(), 0600) == 0);
  write_file(f.dir + "/keys/README", "not a key");
  auto r = ks.check(k_no_pass);
  CHECK_FALSE(r.ok());
  CHECK(any_contains(r.problems, "orphan.jwk"));
  CHECK(std::any_of(r.problems.begin(), r.problems.end(), [](const Error& p) {
    return p.remedy == Remedy::import_key_file && p.subject.ends_with("/keys/orphan.jwk");
  }));
  CHECK(r.unknown_files == std::vector<std::string>{"keys/README", "keys/orphan.jwk"});
  CHECK(ks.unknown_files() == r.unknown_files);
  // Writers never delete it.
  add(ks, "ES256");
  REQUIRE(ks.rotate(rot("ES256"), k_no_pass));
  REQUIRE(ks.prune(0, 0));
  CHECK(exists(f.dir + "/keys/orphan.jwk"));
  CHECK(exists(f.dir + "/keys/README"));
  CHECK_FALSE(ks.check(k_no_pass).ok());
  // The documented recovery: import the file back (its own kid and alg), move the rest away.
  auto key = Jwk::from_json(json::parse(read_file(f.dir + "/keys/orphan.jwk")));
  REQUIRE(key);
  REQUIRE(ks.import(*key, ImportOptions{"orphan", "ES256", KeyState::next}, k_no_pass));
  REQUIRE(::unlink((f.dir + "/keys/README").c_str()) == 0);
  auto after = ks.check(k_no_pass);
  INFO(join(after.problems));
  CHECK(after.ok());
  CHECK(after.unknown_files.empty());
}

TEST_CASE("a new key never replaces a file of the same name the manifest does not name", "[keystore]") {
  Fixture f;
  auto ks = f.open();
  add(ks, "ES256");
  std::string path = f.dir + "/keys/taken.jwk";
  std::string precious = std::string(tokctl::test::test_key_json("p256"));
  write_file(path, precious);
  REQUIRE(::chmod(path.c_str(), 0600) == 0);
  AddOptions o;
  o.alg = "ES256";
  o.kid = "taken";
  auto r = ks.add(o, k_no_pass);
  REQUIRE_FALSE(r);
  CHECK(r.error().code == ErrorCode::keystore);
  CHECK_THAT(r.error().message, Contains("not replacing"));
  CHECK(read_file(path) == precious);
  CHECK(manifest(ks).find("taken") == nullptr);
}

TEST_CASE("writers remove only tokctl temp files of processes that no longer run", "[keystore]") {
  Fixture f;
  auto ks = f.open();
  auto a = add(ks, "ES256");
  // pid 999999999 is above any pid_max: that writer is gone. Our own pid is alive.
  std::string dead_key = f.dir + "/keys/" + a.kid + ".jwk.tmp.999999999.42";
  std::string dead_manifest = f.dir + "/keystore.json.tmp.999999999.7";
  std::string live = f.dir + "/keys/x.jwk.tmp." + std::to_string(::getpid()) + ".1";
  std::string lookalike = f.dir + "/keys/backup.jwk.tmp";
  std::string other = f.dir + "/keys/" + a.kid + ".jwk.bak";
  for (const auto& p : {dead_key, dead_manifest, live, lookalike, other}) write_file(p, "x");
  auto before = ks.check(k_no_pass);
  CHECK(any_contains(before.notes, "temp file"));
  CHECK_FALSE(any_contains(before.problems, ".tmp.999999999"));
  CHECK(any_contains(before.problems, "backup.jwk.tmp"));
  add(ks, "ES256");
  CHECK_FALSE(exists(dead_key));
  CHECK_FALSE(exists(dead_manifest));
  CHECK(exists(live));
  CHECK(exists(lookalike));
  CHECK(exists(other));
}

TEST_CASE("a manifest restored from an older backup loses no key files", "[keystore]") {
  Fixture f;
  auto ks = f.open();
  add(ks, "ES256");
  add(ks, "ES256");
  std::string backup = read_file(f.dir + "/keystore.json");
  f.clock.set(k_t0 + k_hour);
  auto r = ks.rotate(rot("ES256"), k_no_pass);
  REQUIRE(r);
  auto later = add(ks, "EdDSA");
  std::set<std::string> files = files_in(f.dir + "/keys");
  REQUIRE(files.size() == 4);
  write_file(f.dir + "/keystore.json", backup);
  // Every kind of write, then prune far in the future.
  add(ks, "ES384");
  REQUIRE(ks.rotate(rot("ES256", Force::yes), k_no_pass));
  f.clock.set(k_t0 + 400 * k_day);
  REQUIRE(ks.prune(k_day, 0));
  auto now_files = files_in(f.dir + "/keys");
  for (const auto& name : files) {
    INFO(name);
    if (name.rfind(r->front().retired, 0) == 0) continue;  // in the backup: pruned as the manifest says
    CHECK(now_files.count(name) == 1);
  }
  CHECK(now_files.count(later.kid + ".jwk") == 1);
  auto check = ks.check(k_no_pass);
  CHECK_FALSE(check.ok());
  CHECK(std::find(check.unknown_files.begin(), check.unknown_files.end(), "keys/" + later.kid + ".jwk") !=
        check.unknown_files.end());
}

TEST_CASE("an interrupted prune is finished by the next writer only for the content it pruned", "[keystore]") {
  Fixture f;
  auto ks = f.open();
  add(ks, "ES256");
  auto b = add(ks, "ES256", KeyState::next);
  std::string path = f.key_path(b);
  // As a prune killed between its manifest write and the unlink leaves it.
  json j = f.manifest_json();
  j["keys"].erase(1);
  SECTION("same content: deleted") {
    j["pruned"] = json::array({{{"kid", b.kid}, {"file", b.kid + ".jwk"},
                                {"sha256", sha256_b64(read_file(path))}}});
    write_file(f.dir + "/keystore.json", j.dump());
    auto c = ks.check(k_no_pass);
    INFO(join(c.problems));
    CHECK(c.ok());
    CHECK(any_contains(c.notes, "pruned"));
    add(ks, "ES384");
    CHECK_FALSE(exists(path));
    CHECK_FALSE(f.manifest_json().contains("pruned"));
  }
  SECTION("other content under that name: kept and reported") {
    j["pruned"] = json::array({{{"kid", b.kid}, {"file", b.kid + ".jwk"}, {"sha256", "not-the-hash"}}});
    write_file(f.dir + "/keystore.json", j.dump());
    CHECK_FALSE(ks.check(k_no_pass).ok());
    add(ks, "ES384");
    CHECK(exists(path));
    CHECK(ks.unknown_files() == std::vector<std::string>{"keys/" + b.kid + ".jwk"});
  }
}

TEST_CASE("prune deletes the files of the keys it drops and leaves no record behind", "[keystore]") {
  Fixture f;
  auto ks = f.open();
  auto a = add(ks, "ES256");
  add(ks, "ES256");
  REQUIRE(ks.rotate(rot("ES256"), k_no_pass));
  f.clock.set(k_t0 + 2 * k_day);
  auto p = ks.prune(k_day, 0);
  REQUIRE(p);
  REQUIRE(p->size() == 1);
  CHECK_FALSE(exists(f.key_path(a)));
  CHECK_FALSE(f.manifest_json().contains("pruned"));
  auto c = ks.check(k_no_pass);
  CHECK(c.ok());
  CHECK(c.notes.empty());
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

// ---- the manifest is never guessed (issue 7.1, 7.3) ------------------------------------------------

namespace {

// Runs `fn` and fails the test when it takes longer than a second (a FIFO opened for reading
// without O_NONBLOCK would block forever; this at least says which call it was).
template <class Fn>
auto quickly(Fn fn) {
  auto start = std::chrono::steady_clock::now();
  auto r = fn();
  CHECK(std::chrono::steady_clock::now() - start < std::chrono::seconds(1));
  return r;
}

}  // namespace

TEST_CASE("a missing manifest while key files exist is an error, never an empty keystore", "[keystore]") {
  Fixture f;
  {
    auto ks = f.open();
    add(ks, "ES256");
    add(ks, "ES256");
  }
  auto files = files_in(f.dir + "/keys");
  REQUIRE(::unlink((f.dir + "/keystore.json").c_str()) == 0);
  // Writers that create keystores do not take it for a new one either.
  auto ks = f.open();
  CHECK_FALSE(exists(f.dir + "/keystore.json"));
  auto m = ks.manifest();
  REQUIRE_FALSE(m);
  CHECK(m.error().code == ErrorCode::keystore);
  CHECK_THAT(m.error().message, Contains("2 file(s)"));
  CHECK_THAT(m.error().hint, Contains("backup"));
  CHECK(m.error().remedy == Remedy::import_key_file);
  CHECK_THAT(m.error().subject, Contains("keys.recovered"));
  CHECK_FALSE(ks.jwks());
  CHECK_FALSE(ks.verification_keys(k_no_pass));
  CHECK_FALSE(ks.signing_key("", "", k_no_pass));
  AddOptions o;
  o.alg = "ES256";
  CHECK_FALSE(ks.add(o, k_no_pass));
  CHECK_FALSE(ks.rotate(rot("ES256", Force::yes), k_no_pass));
  CHECK_FALSE(ks.prune(0, 0));
  auto c = ks.check(k_no_pass);
  CHECK_FALSE(c.ok());
  CHECK(c.unknown_files.size() == 2);
  CHECK(files_in(f.dir + "/keys") == files);
  CHECK_FALSE(exists(f.dir + "/keystore.json"));
}

TEST_CASE("only a directory with neither manifest nor key files is a new keystore, and only for writers",
          "[keystore]") {
  TempDir tmp;
  FixedClock clock(k_t0);
  std::string dir = tmp.file("empty");
  REQUIRE(::mkdir(dir.c_str(), 0700) == 0);
  auto reader = Keystore::open(dir, clock, false);
  REQUIRE(reader);
  auto m = reader->manifest();
  REQUIRE_FALSE(m);
  CHECK(m.error().code == ErrorCode::keystore);
  CHECK_THAT(m.error().message, Contains("no keystore.json"));
  CHECK_FALSE(reader->jwks());
  CHECK_FALSE(reader->check(k_no_pass).ok());
  CHECK_FALSE(exists(dir + "/keystore.json"));
  auto writer = Keystore::open(dir, clock, true);
  REQUIRE(writer);
  REQUIRE(writer->manifest());
  CHECK(writer->manifest()->keys.empty());
}

TEST_CASE("a keystore path that is not a directory is refused", "[keystore]") {
  TempDir tmp;
  FixedClock clock(k_t0);
  std::string file = tmp.file("file");
  write_file(file, "{}");
  for (bool create : {false, true}) {
    auto ks = Keystore::open(file, clock, create);
    REQUIRE_FALSE(ks);
    CHECK(ks.error().code == ErrorCode::keystore);
    CHECK_THAT(ks.error().message, Contains("not a directory"));
  }
}

TEST_CASE("an odd keystore.json (dangling or looping symlink, directory, FIFO, unreadable) is refused at once",
          "[keystore]") {
  Fixture f;
  {
    auto ks = f.open();
    add(ks, "ES256");
  }
  std::string path = f.dir + "/keystore.json";
  REQUIRE(::unlink(path.c_str()) == 0);
  std::string expect;
  SECTION("dangling symlink") {
    REQUIRE(::symlink((f.dir + "/gone.json").c_str(), path.c_str()) == 0);
    expect = "symbolic link to a missing file";
  }
  SECTION("symlink loop") {
    REQUIRE(::symlink(path.c_str(), path.c_str()) == 0);
    expect = "symbolic link loop";
  }
  SECTION("directory") {
    REQUIRE(::mkdir(path.c_str(), 0700) == 0);
    expect = "a directory";
  }
  SECTION("FIFO") {
    REQUIRE(::mkfifo(path.c_str(), 0600) == 0);
    expect = "a FIFO";
  }
  SECTION("character device") {
    REQUIRE(::symlink("/dev/zero", path.c_str()) == 0);
    expect = "character device";
  }
  SECTION("unreadable") {
    write_file(path, "{\"format\": 1, \"keys\": []}");
    REQUIRE(::chmod(path.c_str(), 0) == 0);
    if (::geteuid() == 0) {
      WARN("running as root: mode 000 does not make a file unreadable; the other sections cover the rest");
      return;
    }
    expect = "cannot open";
  }
  auto ks = f.open();
  auto m = quickly([&] { return ks.manifest(); });
  REQUIRE_FALSE(m);
  CHECK(m.error().code == ErrorCode::keystore);
  CHECK_THAT(m.error().message, Contains(expect));
  CHECK_FALSE(m.error().hint.empty());
  AddOptions o;
  o.alg = "ES256";
  CHECK_FALSE(quickly([&] { return ks.add(o, k_no_pass); }));
  CHECK_FALSE(ks.check(k_no_pass).ok());
  CHECK(files_in(f.dir + "/keys").size() == 1);
}

TEST_CASE("a manifest with wrong JSON types is a keystore error, never an exception", "[keystore]") {
  Fixture f;
  auto ks = f.open();
  add(ks, "ES256");
  json good = f.manifest_json();
  const std::vector<std::pair<const char*, std::function<void(json&)>>> breakages = {
      {"format as string", [](json& j) { j["format"] = "1"; }},
      {"format as float", [](json& j) { j["format"] = 1.5; }},
      {"format null", [](json& j) { j["format"] = nullptr; }},
      {"format missing", [](json& j) { j.erase("format"); }},
      {"keys as object", [](json& j) { j["keys"] = json::object(); }},
      {"entry as string", [](json& j) { j["keys"][0] = "key"; }},
      {"kid as number", [](json& j) { j["keys"][0]["kid"] = 7; }},
      {"alg as array", [](json& j) { j["keys"][0]["alg"] = json::array(); }},
      {"state as bool", [](json& j) { j["keys"][0]["state"] = true; }},
      {"use unknown", [](json& j) { j["keys"][0]["use"] = "both"; }},
      {"created as number", [](json& j) { j["keys"][0]["created"] = 1767225600; }},
      {"activated as object", [](json& j) { j["keys"][0]["activated"] = json::object(); }},
      {"published as number", [](json& j) { j["keys"][0]["published"] = 5; }},
      {"encrypted as string", [](json& j) { j["keys"][0]["encrypted"] = "no"; }},
      {"thumbprint as number", [](json& j) { j["keys"][0]["thumbprint"] = 1; }},
      {"jwk as string", [](json& j) { j["keys"][0]["jwk"] = "{}"; }},
      {"pruned as string", [](json& j) { j["pruned"] = "x"; }},
      {"pruned escaping keys/", [](json& j) {
         j["pruned"] = json::array({{{"kid", "a"}, {"file", "../keystore.json"}, {"sha256", "x"}}});
       }},
  };
  for (const auto& [name, breakage] : breakages) {
    INFO(name);
    json j = good;
    breakage(j);
    write_file(f.dir + "/keystore.json", j.dump());
    Result<Manifest> m = Manifest{};
    REQUIRE_NOTHROW(m = ks.manifest());
    REQUIRE_FALSE(m);
    CHECK(m.error().code == ErrorCode::keystore);
    CHECK_NOTHROW(ks.check(k_no_pass));
    CHECK_FALSE(ks.check(k_no_pass).ok());
  }
}

TEST_CASE("key files that are FIFOs, devices or directories are refused without blocking", "[keystore]") {
  Fixture f;
  auto ks = f.open();
  auto a = add(ks, "ES256");
  std::string path = f.key_path(a);
  REQUIRE(::unlink(path.c_str()) == 0);
  SECTION("FIFO") { REQUIRE(::mkfifo(path.c_str(), 0600) == 0); }
  SECTION("directory") { REQUIRE(::mkdir(path.c_str(), 0700) == 0); }
  SECTION("device") { REQUIRE(::symlink("/dev/zero", path.c_str()) == 0); }
  auto k = quickly([&] { return ks.load(a, k_no_pass); });
  REQUIRE_FALSE(k);
  CHECK(k.error().code == ErrorCode::keystore);
  CHECK_THAT(k.error().message, Contains("not a regular file"));
  CHECK_FALSE(quickly([&] { return ks.signing_key("ES256", "", k_no_pass); }));
  auto c = quickly([&] { return ks.check(k_no_pass); });
  CHECK_FALSE(c.ok());
}

// ---- owners (issue 7.6) ----------------------------------------------------------------------------

TEST_CASE("a keystore directory, manifest or key file owned by another user is refused", "[keystore]") {
  if (::geteuid() != 0) {
    WARN("skipped: needs root to chown files to another user");
    return;
  }
  constexpr uid_t k_other = 12345;
  Fixture f;
  KeyEntry a;
  {
    auto ks = f.open();
    a = add(ks, "ES256");
  }
  SECTION("directory") {
    REQUIRE(::chown(f.dir.c_str(), k_other, static_cast<gid_t>(-1)) == 0);
    auto ks = Keystore::open(f.dir, f.clock, false);
    REQUIRE_FALSE(ks);
    CHECK(ks.error().code == ErrorCode::keystore);
    CHECK_THAT(ks.error().message, Contains("owned by uid 12345"));
    CHECK_THAT(ks.error().hint, Contains("chown"));
    CHECK_FALSE(Keystore::open(f.dir, f.clock, true));
  }
  SECTION("keys directory") {
    REQUIRE(::chown((f.dir + "/keys").c_str(), k_other, static_cast<gid_t>(-1)) == 0);
    CHECK_FALSE(Keystore::open(f.dir, f.clock, false));
  }
  SECTION("manifest") {
    REQUIRE(::chown((f.dir + "/keystore.json").c_str(), k_other, static_cast<gid_t>(-1)) == 0);
    auto ks = Keystore::open(f.dir, f.clock, false);
    REQUIRE(ks);
    auto m = ks->manifest();
    REQUIRE_FALSE(m);
    CHECK_THAT(m.error().message, Contains("owned by uid 12345"));
    CHECK_FALSE(ks->jwks());
  }
  SECTION("key file") {
    REQUIRE(::chown(f.key_path(a).c_str(), k_other, static_cast<gid_t>(-1)) == 0);
    auto ks = Keystore::open(f.dir, f.clock, false);
    REQUIRE(ks);
    auto k = ks->load(a, k_no_pass);
    REQUIRE_FALSE(k);
    CHECK_THAT(k.error().message, Contains("owned by uid 12345"));
    CHECK_FALSE(ks->check(k_no_pass).ok());
  }
}

// ---- rotation cannot cause an outage (issue 7.7) ---------------------------------------------------

TEST_CASE("rotate waits min_next_age after a next key was created and says when it is safe", "[keystore]") {
  Fixture f;
  auto ks = f.open();
  add(ks, "ES256");
  auto b = add(ks, "ES256");
  std::string before = read_file(f.dir + "/keystore.json");
  f.clock.set(k_t0 + 10 * 60);
  RotateOptions o;
  o.alg = "ES256";
  CHECK(o.min_next_age == 3600);  // the documented default
  auto early = ks.rotate(o, k_no_pass);
  REQUIRE_FALSE(early);
  CHECK(early.error().code == ErrorCode::keystore);
  CHECK_THAT(early.error().message, Contains(b.kid));
  CHECK_THAT(early.error().message, Contains("2026-01-01T01:00:00Z"));
  CHECK(early.error().remedy == Remedy::force_rotate);
  CHECK(early.error().param == "min_next_age");
  CHECK(read_file(f.dir + "/keystore.json") == before);
  o.min_next_age = 5 * 60;
  CHECK(ks.rotate(o, k_no_pass));
}

TEST_CASE("rotate counts from the first publication once a keystore is published", "[keystore]") {
  Fixture f;
  auto ks = f.open();
  auto a = add(ks, "ES256");
  auto b = add(ks, "ES256");
  f.clock.set(k_t0 + 2 * k_hour);
  REQUIRE(ks.record_published({a.kid, b.kid}));
  CHECK(manifest(ks).find(b.kid)->published == k_t0 + 2 * k_hour);
  f.clock.set(k_t0 + 2 * k_hour + 1800);
  REQUIRE(ks.record_published({b.kid}));  // the first publication counts
  CHECK(manifest(ks).find(b.kid)->published == k_t0 + 2 * k_hour);
  RotateOptions o;
  auto early = ks.rotate(o, k_no_pass);
  REQUIRE_FALSE(early);
  CHECK_THAT(early.error().message, Contains("first published at 2026-01-01T02:00:00Z"));
  CHECK_THAT(early.error().message, Contains("2026-01-01T03:00:00Z"));
  f.clock.set(k_t0 + 3 * k_hour);
  auto r = ks.rotate(o, k_no_pass);
  REQUIRE(r);
  std::string c = r->front().added;
  // The fresh next key was never output by keys jwks: however old, it is not activated.
  f.clock.set(k_t0 + 10 * k_day);
  auto unpublished = ks.rotate(o, k_no_pass);
  REQUIRE_FALSE(unpublished);
  CHECK_THAT(unpublished.error().message, Contains("never been in a published JWKS"));
  CHECK(state_of(ks, c) == KeyState::next);
  REQUIRE(ks.record_published({c}));
  f.clock.set(k_t0 + 10 * k_day + k_hour);
  CHECK(ks.rotate(o, k_no_pass));
  o.force = Force::yes;  // emergencies: at once
  CHECK(ks.rotate(o, k_no_pass));
}

TEST_CASE("rotate --if-older-than rotates once per interval and says why it skipped", "[keystore]") {
  Fixture f;
  auto ks = f.open();
  auto a = add(ks, "ES256");
  add(ks, "ES256");
  RotateOptions o;
  o.if_older_than = k_day;
  f.clock.set(k_t0 + 2 * k_hour);
  std::string before = read_file(f.dir + "/keystore.json");
  auto young = ks.rotate(o, k_no_pass);
  REQUIRE(young);
  REQUIRE(young->size() == 1);
  CHECK_THAT(young->front().skipped, Contains(a.kid));
  CHECK_THAT(young->front().skipped, Contains("2026-01-02T00:00:00Z"));
  CHECK(read_file(f.dir + "/keystore.json") == before);
  f.clock.set(k_t0 + k_day);
  auto due = ks.rotate(o, k_no_pass);
  REQUIRE(due);
  CHECK(due->front().skipped.empty());
  // A second run in the same interval (another cron job that waited for the lock) does nothing.
  auto again = ks.rotate(o, k_no_pass);
  REQUIRE(again);
  CHECK_FALSE(again->front().skipped.empty());
  CHECK(manifest(ks).keys.size() == 3);
}

TEST_CASE("write_output_file never replaces an existing file without Overwrite::yes", "[keystore]") {
  TempDir tmp;
  std::string path = tmp.file("out.json");
  REQUIRE(tokctl::keys::write_output_file(path, "one", 0644, tokctl::keys::Overwrite::no));
  CHECK(read_file(path) == "one");
  CHECK(file_mode(path) == 0644);
  auto again = tokctl::keys::write_output_file(path, "two", 0644, tokctl::keys::Overwrite::no);
  REQUIRE_FALSE(again);
  CHECK(again.error().code == ErrorCode::usage);
  CHECK(again.error().remedy == Remedy::force_overwrite);
  CHECK(read_file(path) == "one");
  REQUIRE(tokctl::keys::write_output_file(path, "three", 0600, tokctl::keys::Overwrite::yes));
  CHECK(read_file(path) == "three");
  CHECK(files_in(tmp.path()) == std::set<std::string>{"out.json"});
}

// Regression (review): with Overwrite::yes a FIFO or device was renamed over like a file (as root,
// `keys jwks --out /dev/null --force` replaced the system's /dev/null with a regular file).
TEST_CASE("write_output_file with Overwrite::yes replaces files only, never a FIFO or a directory", "[keystore]") {
  TempDir tmp;
  const std::string fifo = tmp.file("fifo");
  REQUIRE(::mkfifo(fifo.c_str(), 0600) == 0);
  const std::string dir = tmp.file("dir");
  REQUIRE(::mkdir(dir.c_str(), 0700) == 0);
  for (const std::string& path : {fifo, dir}) {
    INFO(path);
    auto r = tokctl::keys::write_output_file(path, "data", 0644, tokctl::keys::Overwrite::yes);
    REQUIRE_FALSE(r);
    CHECK(r.error().code == ErrorCode::usage);
    CHECK_THAT(r.error().message, Contains("only a file is ever replaced"));
  }
  struct stat st{};
  REQUIRE(::lstat(fifo.c_str(), &st) == 0);
  CHECK(S_ISFIFO(st.st_mode));
  REQUIRE(::lstat(dir.c_str(), &st) == 0);
  CHECK(S_ISDIR(st.st_mode));
  CHECK(files_in(tmp.path()) == std::set<std::string>{"fifo", "dir"});
}

// ---- manifest integrity (audit: private members, another key's jwk, alg/use, key files) ----------

namespace {

void write_manifest(const Fixture& f, const json& j) { write_file(f.dir + "/keystore.json", j.dump(2)); }

json key_file_json(const Fixture& f, const KeyEntry& e) { return json::parse(read_file(f.key_path(e))); }

std::size_t entry_index(const json& m, const std::string& kid) {
  for (std::size_t i = 0; i < m["keys"].size(); ++i)
    if (m["keys"][i]["kid"] == kid) return i;
  FAIL("no entry " << kid);
  return 0;
}

}  // namespace

TEST_CASE("a manifest whose public jwk holds a private member is a keystore error that never echoes it",
          "[keystore][integrity]") {
  Fixture f;
  auto ks = f.open();
  auto ec = add(ks, "ES256");
  auto rsa = import_test_key(ks, "rsa2048", "RS256");
  const json good = f.manifest_json();
  for (const auto& [entry, members] :
       {std::pair{ec, std::vector<std::string>{"d"}},
        std::pair{rsa, std::vector<std::string>{"d", "p", "q", "dp", "dq", "qi"}}}) {
    json file = key_file_json(f, entry);
    for (const auto& member : members) {
      INFO(entry.alg << " " << member);
      json m = good;
      auto i = entry_index(m, entry.kid);
      m["keys"][i]["jwk"][member] = file.at(member);
      write_manifest(f, m);
      auto got = ks.manifest();
      REQUIRE_FALSE(got);
      CHECK(got.error().code == ErrorCode::keystore);
      CHECK_THAT(got.error().message, Contains(entry.kid) && Contains("\"" + member + "\""));
      CHECK_THAT(got.error().hint, Contains("rotate"));
      const std::string value = file.at(member).get<std::string>();
      CHECK(got.error().message.find(value) == std::string::npos);
      CHECK(got.error().hint.find(value) == std::string::npos);
      CHECK_FALSE(ks.jwks());
      auto r = ks.check(k_no_pass);
      CHECK_FALSE(r.ok());
      CHECK(join(r.problems).find(value) == std::string::npos);
    }
  }
  SECTION("a secret in the manifest (kty oct with k) is refused too") {
    json m = good;
    m["keys"][0]["jwk"] = {{"kty", "oct"}, {"k", "c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0MTI"}};
    write_manifest(f, m);
    auto got = ks.manifest();
    REQUIRE_FALSE(got);
    CHECK_THAT(got.error().message, Contains("\"k\""));
  }
}

TEST_CASE("another key's public jwk in the manifest is refused by jwks, verification, signing and check",
          "[keystore][integrity]") {
  Fixture f;
  auto ks = f.open();
  auto a = add(ks, "ES256");
  auto b = add(ks, "ES256");
  REQUIRE(ks.jwks());
  json m = f.manifest_json();
  auto ia = entry_index(m, a.kid), ib = entry_index(m, b.kid);
  SECTION("the jwk of key b under key a") {
    m["keys"][ia]["jwk"] = m["keys"][ib]["jwk"];
    write_manifest(f, m);
    REQUIRE(ks.manifest());
    auto jwks = ks.jwks();
    auto verification = ks.verification_keys(k_no_pass);
    auto signing = ks.signing_key("ES256", "", k_no_pass);
    auto loaded = ks.load(*manifest(ks).find(a.kid), k_no_pass);
    REQUIRE_FALSE(jwks);
    REQUIRE_FALSE(verification);
    REQUIRE_FALSE(signing);
    REQUIRE_FALSE(loaded);
    for (const auto& err : {jwks.error(), verification.error(), signing.error(), loaded.error()}) {
      CHECK(err.code == ErrorCode::keystore);
      CHECK_THAT(err.message, Contains(a.kid));
      CHECK_FALSE(err.hint.empty());
    }
    auto r = ks.check(k_no_pass);
    CHECK_FALSE(r.ok());
    CHECK(any_contains(r.problems, a.kid));
  }
  SECTION("the jwk and thumbprint of a key that is not in the keystore") {
    auto other = test_key("p256");
    m["keys"][ia]["jwk"] = other.to_json(KeyPart::public_only);
    m["keys"][ia]["thumbprint"] = *other.thumbprint();
    write_manifest(f, m);
    REQUIRE(ks.jwks());  // consistent in itself: only the key file can tell
    auto s = ks.signing_key("ES256", "", k_no_pass);
    REQUIRE_FALSE(s);
    CHECK(s.error().code == ErrorCode::keystore);
    auto r = ks.check(k_no_pass);
    CHECK_FALSE(r.ok());
    CHECK(any_contains(r.problems, a.kid));
  }
  SECTION("the jwk and thumbprint of key b under key a: one key listed twice") {
    m["keys"][ia]["jwk"] = m["keys"][ib]["jwk"];
    m["keys"][ia]["thumbprint"] = m["keys"][ib]["thumbprint"];
    write_manifest(f, m);
    auto got = ks.manifest();
    REQUIRE_FALSE(got);
    CHECK_THAT(got.error().message, Contains("same thumbprint"));
  }
}

TEST_CASE("a key file that lost its private part is keystore damage, for signing and for check",
          "[keystore][integrity]") {
  Fixture f;
  auto ks = f.open();
  auto a = add(ks, "ES256");
  json file = key_file_json(f, a);
  file.erase("d");
  write_file(f.key_path(a), file.dump());
  REQUIRE(::chmod(f.key_path(a).c_str(), 0600) == 0);
  auto s = ks.signing_key("", "", k_no_pass);
  REQUIRE_FALSE(s);
  CHECK(s.error().code == ErrorCode::keystore);
  CHECK_THAT(s.error().message, Contains(a.kid) && Contains("public part"));
  CHECK_THAT(s.error().hint, Contains("backup"));
  auto r = ks.check(k_no_pass);
  CHECK_FALSE(r.ok());
  CHECK(any_contains(r.problems, a.kid));
}

TEST_CASE("a manifest alg that does not fit the key, or that no key has, is damage naming the kid",
          "[keystore][integrity]") {
  Fixture f;
  auto ks = f.open();
  auto a = add(ks, "ES256");
  json m = f.manifest_json();
  SECTION("RS256 on an EC key") {
    m["keys"][0]["alg"] = "RS256";
    write_manifest(f, m);
    REQUIRE(ks.manifest());
    auto s = ks.signing_key("", "", k_no_pass);
    REQUIRE_FALSE(s);
    CHECK(s.error().code == ErrorCode::keystore);
    CHECK_THAT(s.error().message, Contains(a.kid) && Contains("RS256"));
    auto j = ks.jwks();
    REQUIRE_FALSE(j);
    CHECK(j.error().code == ErrorCode::keystore);
    auto r = ks.check(k_no_pass);
    CHECK_FALSE(r.ok());
    CHECK(any_contains(r.problems, a.kid));
    CHECK(any_contains(r.problems, "RS256"));
  }
  SECTION("ES384 on a P-256 key") {
    m["keys"][0]["alg"] = "ES384";
    write_manifest(f, m);
    CHECK_FALSE(ks.signing_key("", "", k_no_pass));
    CHECK(any_contains(ks.check(k_no_pass).problems, a.kid));
  }
  for (const char* bad : {"none", "PBES2-HS256+A128KW", "RS1"}) {
    DYNAMIC_SECTION("alg " << bad) {
      m["keys"][0]["alg"] = bad;
      write_manifest(f, m);
      auto got = ks.manifest();
      REQUIRE_FALSE(got);
      CHECK(got.error().code == ErrorCode::keystore);
      CHECK_THAT(got.error().message, Contains(a.kid) && Contains(bad));
      CHECK_FALSE(ks.check(k_no_pass).ok());
    }
  }
}

TEST_CASE("a use that contradicts the alg (a signing key marked enc) is damage naming the kid",
          "[keystore][integrity]") {
  Fixture f;
  auto ks = f.open();
  auto a = add(ks, "ES256");
  auto e = add(ks, "ECDH-ES+A256KW");
  json m = f.manifest_json();
  SECTION("signing key marked enc") { m["keys"][entry_index(m, a.kid)]["use"] = "enc"; }
  SECTION("encryption key marked sig") { m["keys"][entry_index(m, e.kid)]["use"] = "sig"; }
  write_manifest(f, m);
  auto got = ks.manifest();
  REQUIRE_FALSE(got);
  CHECK(got.error().code == ErrorCode::keystore);
  CHECK_THAT(got.error().message, Contains("use"));
  CHECK_FALSE(ks.check(k_no_pass).ok());
}

TEST_CASE("a manifest that lists no public jwk for an asymmetric key, or one for a secret, is refused",
          "[keystore][integrity]") {
  Fixture f;
  auto ks = f.open();
  add(ks, "ES256");
  import_test_key(ks, "hs256", "HS256");
  json m = f.manifest_json();
  SECTION("EC without jwk") { m["keys"][0].erase("jwk"); }
  SECTION("HMAC with a public-looking jwk") { m["keys"][1]["jwk"] = m["keys"][0]["jwk"]; }
  SECTION("empty thumbprint") { m["keys"][0]["thumbprint"] = ""; }
  write_manifest(f, m);
  auto got = ks.manifest();
  REQUIRE_FALSE(got);
  CHECK(got.error().code == ErrorCode::keystore);
}

// ---- pairwise-subject secret (ppid.secret) ------------------------------------------------------

TEST_CASE("the pairwise-subject secret is made once, 32 bytes 0600, and recorded in the manifest",
          "[keystore][ppid]") {
  Fixture f;
  auto ks = f.open();
  auto none = ks.pairwise_secret(tokctl::keys::CreateSecret::no);
  REQUIRE(none);
  CHECK_FALSE(*none);
  CHECK_FALSE(exists(f.dir + "/ppid.secret"));
  f.clock.set(k_t0 + 60);
  auto s = ks.pairwise_secret(tokctl::keys::CreateSecret::yes);
  REQUIRE(s);
  REQUIRE(*s);
  CHECK((*s)->size() == 32);
  CHECK(file_mode(f.dir + "/ppid.secret") == 0600);
  CHECK(read_file(f.dir + "/ppid.secret") == **s);
  json rec = f.manifest_json().at("pairwise_secret");
  CHECK(rec.at("file") == "ppid.secret");
  CHECK(rec.at("created") == "2026-01-01T00:01:00Z");
  CHECK(rec.at("sha256") == sha256_b64(**s));
  for (auto create : {tokctl::keys::CreateSecret::no, tokctl::keys::CreateSecret::yes}) {
    auto again = ks.pairwise_secret(create);
    REQUIRE(again);
    REQUIRE(*again);
    CHECK(**again == **s);
  }
  // Every writer keeps the record.
  auto a = add(ks, "ES256");
  add(ks, "ES256");
  REQUIRE(ks.rotate(rot("ES256"), k_no_pass));
  f.clock.set(k_t0 + 400 * k_day);
  REQUIRE(ks.prune(k_day, 0));
  REQUIRE(ks.record_published({manifest(ks).keys.front().kid}));
  REQUIRE(ks.retire(manifest(ks).keys.back().kid));
  CHECK_FALSE(manifest(ks).find(a.kid));
  CHECK(f.manifest_json().at("pairwise_secret") == rec);
  CHECK(ks.check(k_no_pass).ok());
}

TEST_CASE("once recorded, a missing, short, replaced or odd pairwise secret is an error, never a new secret",
          "[keystore][ppid]") {
  Fixture f;
  auto ks = f.open();
  auto s = ks.pairwise_secret(tokctl::keys::CreateSecret::yes);
  REQUIRE(s);
  REQUIRE(*s);
  const std::string path = f.dir + "/ppid.secret";
  REQUIRE(::unlink(path.c_str()) == 0);
  std::string expect;
  SECTION("missing") { expect = "missing"; }
  SECTION("2 bytes") {
    write_file(path, "ab");
    REQUIRE(::chmod(path.c_str(), 0600) == 0);
    expect = "2 bytes";
  }
  SECTION("another 32-byte secret") {
    write_file(path, std::string(32, 'x'));
    REQUIRE(::chmod(path.c_str(), 0600) == 0);
    expect = "replaced";
  }
  SECTION("readable by others") {
    write_file(path, **s);
    REQUIRE(::chmod(path.c_str(), 0644) == 0);
    expect = "chmod 600";
  }
  SECTION("a directory") {
    REQUIRE(::mkdir(path.c_str(), 0700) == 0);
    expect = "a directory";
  }
  SECTION("a FIFO") {
    REQUIRE(::mkfifo(path.c_str(), 0600) == 0);
    expect = "a FIFO";
  }
  for (auto create : {tokctl::keys::CreateSecret::no, tokctl::keys::CreateSecret::yes}) {
    auto got = quickly([&] { return ks.pairwise_secret(create); });
    REQUIRE_FALSE(got);
    CHECK(got.error().code == ErrorCode::keystore);
    CHECK_THAT(got.error().message + " " + got.error().hint, Contains(expect));
    if (expect != "chmod 600") CHECK_THAT(got.error().hint, Contains("backup"));
  }
  auto r = quickly([&] { return ks.check(k_no_pass); });
  CHECK_FALSE(r.ok());
  CHECK(any_contains(r.problems, "ppid.secret"));
  if (expect == "missing") CHECK_FALSE(exists(path));
}

TEST_CASE("a pairwise secret an older tokctl made unrecorded is used as is, checked, and recorded on first need",
          "[keystore][ppid]") {
  Fixture f;
  auto ks = f.open();
  const std::string path = f.dir + "/ppid.secret";
  const std::string legacy(32, '\x5a');
  write_file(path, legacy);
  REQUIRE(::chmod(path.c_str(), 0600) == 0);
  auto r = ks.check(k_no_pass);
  CHECK(r.ok());
  CHECK(any_contains(r.notes, "not recorded"));
  auto s = ks.pairwise_secret(tokctl::keys::CreateSecret::no);
  REQUIRE(s);
  REQUIRE(*s);
  CHECK(**s == legacy);
  CHECK_FALSE(f.manifest_json().contains("pairwise_secret"));
  s = ks.pairwise_secret(tokctl::keys::CreateSecret::yes);
  REQUIRE(s);
  REQUIRE(*s);
  CHECK(**s == legacy);
  CHECK(f.manifest_json().at("pairwise_secret").at("sha256") == sha256_b64(legacy));
  SECTION("a short unrecorded file is refused, not used") {
    json m = f.manifest_json();
    m.erase("pairwise_secret");
    write_manifest(f, m);
    write_file(path, "ab");
    auto got = ks.pairwise_secret(tokctl::keys::CreateSecret::yes);
    REQUIRE_FALSE(got);
    CHECK(got.error().code == ErrorCode::keystore);
    CHECK(read_file(path) == "ab");
    CHECK_FALSE(ks.check(k_no_pass).ok());
  }
}

// ---- a symlinked manifest ---------------------------------------------------------------------

TEST_CASE("writers refuse a symlinked keystore.json and leave link and target alone; readers follow it",
          "[keystore]") {
  Fixture f;
  auto ks = f.open();
  auto a = add(ks, "ES256");
  const std::string path = f.dir + "/keystore.json";
  const std::string target = f.tmp.file("real-keystore.json");
  REQUIRE(::rename(path.c_str(), target.c_str()) == 0);
  REQUIRE(::symlink(target.c_str(), path.c_str()) == 0);
  const std::string before = read_file(target);
  REQUIRE(ks.manifest());
  REQUIRE(ks.signing_key("", "", k_no_pass));
  auto added = ks.add(AddOptions{"ES256", "", std::nullopt, std::nullopt, std::nullopt}, k_no_pass);
  REQUIRE_FALSE(added);
  CHECK(added.error().code == ErrorCode::keystore);
  CHECK_THAT(added.error().message, Contains("symbolic link"));
  CHECK_THAT(added.error().hint, Contains("readlink"));
  CHECK_FALSE(ks.retire(a.kid));
  CHECK_FALSE(ks.record_published({a.kid}));
  CHECK_FALSE(ks.pairwise_secret(tokctl::keys::CreateSecret::yes));
  struct stat st{};
  REQUIRE(::lstat(path.c_str(), &st) == 0);
  CHECK(S_ISLNK(st.st_mode));
  CHECK(read_file(target) == before);
  CHECK(files_in(f.dir + "/keys").size() == 1);
  CHECK_FALSE(exists(f.dir + "/ppid.secret"));
  auto r = ks.check(k_no_pass);
  CHECK_FALSE(r.ok());
  CHECK(any_contains(r.problems, "symbolic link"));
}
