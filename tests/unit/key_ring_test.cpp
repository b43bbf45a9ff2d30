// Key snapshots for long-running processes (tokctl/keys/key_ring.hpp, issue 8 point 1): a
// KeyProvider serves one immutable KeyRing until keystore.json changes, looks at the file at most
// once per check interval, keeps a good ring when the manifest turns unreadable, and Signer /
// SignatureVerifier / TokenVerifier are const objects shared by threads.

#include <tokctl/keys/key_ring.hpp>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <string>
#include <thread>
#include <vector>

#include <tokctl/jose/jws.hpp>
#include <tokctl/util/base64.hpp>

#include "support/keys.hpp"
#include "support/jws_helpers.hpp"
#include "support/run.hpp"

using nlohmann::json;
using tokctl::ErrorCode;
using tokctl::FixedClock;
using tokctl::UnixTime;
using namespace tokctl::keys;
using namespace std::chrono_literals;
namespace jose = tokctl::jose;
using tokctl::test::read_file;
using tokctl::test::TempDir;
using tokctl::test::write_file;

namespace {

constexpr UnixTime k_t0 = 1767225600;  // 2026-01-01T00:00:00Z

struct Ring {
  TempDir dir;
  FixedClock clock{k_t0};
  std::string ks_dir = dir.file("ks");

  Ring() {
    auto ks = Keystore::open(ks_dir, clock, true);
    REQUIRE(ks);
    AddOptions active;
    active.alg = "ES256";
    active.state = KeyState::active;
    REQUIRE(ks->add(active, std::nullopt));
    AddOptions next;
    next.alg = "ES256";
    next.state = KeyState::next;
    REQUIRE(ks->add(next, std::nullopt));
  }
  Keystore keystore() const {
    auto ks = Keystore::open(ks_dir, clock, false);
    REQUIRE(ks);
    return std::move(*ks);
  }
  std::string active_kid() const {
    auto m = keystore().manifest();
    REQUIRE(m);
    const KeyEntry* e = m->active("ES256");
    REQUIRE(e);
    return e->kid;
  }
  void rotate() {
    RotateOptions r;
    r.alg = "ES256";
    r.force = Force::yes;
    auto ks = keystore();
    REQUIRE(ks.rotate(r, std::nullopt));
  }
  std::shared_ptr<const KeyRing> current(const KeyProvider& p) const {
    auto r = p.current();
    REQUIRE(r);
    return *r;
  }
};

std::string sign_with(const KeyRing& ring, const json& claims) {
  REQUIRE(ring.signer);
  auto t = jose::sign_compact(json{{"kid", ring.signer->key().kid()}}, claims.dump(), *ring.signer);
  REQUIRE(t);
  return *t;
}

}  // namespace

TEST_CASE("a key provider reads the keystore when first asked and serves one ring until it changes",
          "[keyring]") {
  Ring f;
  const std::string old_kid = f.active_kid();
  KeyProvider p(f.keystore(), std::nullopt, f.clock, 0ms);
  auto first = f.current(p);
  CHECK(first->generation == 1);
  REQUIRE(first->signer);
  CHECK(first->signer->key().kid() == old_kid);
  CHECK(f.current(p) == first);  // unchanged keystore.json: the same ring, nothing re-read
  CHECK_FALSE(p.refresh());
  const std::string old_token = sign_with(*first, json{{"sub", "a"}, {"exp", k_t0 + 60}});

  f.rotate();
  const std::string new_kid = f.active_kid();
  REQUIRE(new_kid != old_kid);
  auto second = f.current(p);
  CHECK(second != first);
  CHECK(second->generation == 2);
  CHECK(second->signer->key().kid() == new_kid);
  // The old ring is still whole for whoever holds it.
  CHECK(first->signer->key().kid() == old_kid);
  // The new ring verifies tokens of both keys, and publishes both (and the fresh next key).
  const std::string new_token = sign_with(*second, json{{"sub", "b"}, {"exp", k_t0 + 60}});
  REQUIRE(second->verifier);
  for (const auto& t : {old_token, new_token}) {
    auto rep = second->verifier->verify(t);
    CHECK(rep.valid);
    CHECK(rep.signature_verified);
  }
  CHECK(tokctl::test::header_kid(new_token) == new_kid);
  REQUIRE(second->jwks);
  auto jwks = json::parse(*second->jwks);
  std::vector<std::string> kids;
  for (const auto& k : jwks.at("keys")) kids.push_back(k.at("kid").get<std::string>());
  CHECK(kids.size() == 3);
  CHECK(std::find(kids.begin(), kids.end(), old_kid) != kids.end());
  CHECK(std::find(kids.begin(), kids.end(), new_kid) != kids.end());
  for (const auto& k : jwks.at("keys")) CHECK_FALSE(k.contains("d"));
}

TEST_CASE("the check interval bounds how often keystore.json is looked at; refresh() looks now", "[keyring]") {
  Ring f;
  KeyProvider p(f.keystore(), std::nullopt, f.clock, 1h);
  auto first = f.current(p);
  f.rotate();
  CHECK(f.current(p) == first);  // within the interval: the ring in hand
  CHECK(p.refresh());
  auto second = f.current(p);
  CHECK(second->generation == 2);
  CHECK(second->signer->key().kid() == f.active_kid());

  // A short interval: the rotation shows up once it has passed.
  KeyProvider q(f.keystore(), std::nullopt, f.clock, 50ms);
  auto q1 = f.current(q);
  f.rotate();
  std::this_thread::sleep_for(80ms);
  auto q2 = f.current(q);
  CHECK(q2 != q1);
  CHECK(q2->signer->key().kid() == f.active_kid());
}

TEST_CASE("an unreadable keystore.json does not replace a good ring", "[keyring]") {
  Ring f;
  KeyProvider p(f.keystore(), std::nullopt, f.clock, 0ms);
  auto good = f.current(p);
  const std::string manifest = f.ks_dir + "/keystore.json";
  const std::string saved = read_file(manifest);
  auto replace = [&](const std::string& content) {  // as writers do: a new file renamed in place
    write_file(manifest + ".t", content);
    REQUIRE(std::rename((manifest + ".t").c_str(), manifest.c_str()) == 0);
  };

  SECTION("malformed") { replace("{\"format\":1,\"keys\":"); }
  SECTION("wrong types") { replace(R"({"format":1,"keys":[{"kid":7}]})"); }
  SECTION("gone") { REQUIRE(std::remove(manifest.c_str()) == 0); }

  auto still = p.current();
  REQUIRE(still);
  CHECK(*still == good);
  REQUIRE(p.last_error());
  CHECK(p.last_error()->code == ErrorCode::keystore);

  replace(saved);
  auto back = f.current(p);
  CHECK(back != good);
  CHECK(back->generation == 2);
  CHECK_FALSE(p.last_error());
}

TEST_CASE("a provider with nothing loaded yet reports why the keystore cannot be read", "[keyring]") {
  Ring f;
  KeyProvider p(f.keystore(), std::nullopt, f.clock, 0ms);
  REQUIRE(std::remove((f.ks_dir + "/keystore.json").c_str()) == 0);
  auto r = p.current();
  REQUIRE_FALSE(r);
  CHECK(r.error().code == ErrorCode::keystore);
  CHECK_THAT(r.error().message, Catch::Matchers::Contains("missing"));
}

TEST_CASE("a ring records a keystore without an active key instead of failing to load", "[keyring]") {
  TempDir dir;
  FixedClock clock{k_t0};
  auto ks = Keystore::open(dir.file("ks"), clock, true);
  REQUIRE(ks);
  AddOptions next;
  next.alg = "EdDSA";
  next.state = KeyState::next;
  REQUIRE(ks->add(next, std::nullopt));
  KeyProvider p(std::move(*ks), std::nullopt, clock, 0ms);
  auto r = p.current();
  REQUIRE(r);
  REQUIRE_FALSE((*r)->signer);
  CHECK((*r)->signer.error().code == ErrorCode::keystore);
  CHECK((*r)->verifier);  // the next key is published and verifies
}

TEST_CASE("one Signer, SignatureVerifier and TokenVerifier serve 4 threads at once", "[keyring][concurrency]") {
  struct Case {
    const char* key;
    jose::Alg alg;
  };
  const Case cases[] = {{"hs256", jose::Alg::HS256}, {"rsa2048", jose::Alg::RS256}, {"rsa2048", jose::Alg::PS256},
                        {"p256", jose::Alg::ES256},  {"ed25519", jose::Alg::EdDSA}};
  FixedClock clock{k_t0};
  for (const auto& c : cases) {
    CAPTURE(jose::to_string(c.alg));
    const jose::Jwk& key = tokctl::test::test_key(c.key);
    auto signer = jose::Signer::create(c.alg, key);
    REQUIRE(signer);
    auto sigv = jose::SignatureVerifier::create(c.alg, key);
    REQUIRE(sigv);
    jose::VerifyOptions vo;
    vo.allowed_algs = {c.alg};
    auto tv = jose::TokenVerifier::create(jose::JwkSet({key}), jose::KeySource::single, vo, clock);
    REQUIRE(tv);
    const jose::Signer& s = *signer;
    const jose::SignatureVerifier& v = *sigv;
    const jose::TokenVerifier& t = *tv;
    std::atomic<int> failures{0};
    std::vector<std::thread> threads;
    for (int n = 0; n < 4; ++n) {
      threads.emplace_back([&, n] {
        for (int i = 0; i < 40; ++i) {
          const std::string input = "thread " + std::to_string(n) + " token " + std::to_string(i);
          auto sig = s.sign(input);
          if (!sig || !v.verify(input, *sig) || v.verify(input + "x", *sig)) ++failures;
          json claims{{"sub", input}, {"exp", k_t0 + 60}};
          auto jwt = jose::sign_compact(json::object(), claims.dump(), s);
          if (!jwt || !t.verify(*jwt).valid) ++failures;
          if (jwt && t.verify(jwt->substr(0, jwt->size() - 2) + (jwt->back() == 'A' ? "BB" : "AA")).valid) ++failures;
        }
      });
    }
    for (auto& th : threads) th.join();
    CHECK(failures == 0);
  }
}

TEST_CASE("a ring over a manifest listing another key's public jwk neither signs, verifies nor publishes it",
          "[keyring][integrity]") {
  Ring f;
  const std::string kid = f.active_kid();
  const std::string path = f.ks_dir + "/keystore.json";
  json m = json::parse(read_file(path));
  REQUIRE(m["keys"].size() == 2);
  const std::size_t active = m["keys"][0]["kid"] == kid ? 0 : 1;
  m["keys"][active]["jwk"] = m["keys"][1 - active]["jwk"];
  write_file(path, m.dump(2));
  auto ks = f.keystore();
  auto ring = KeyRing::load(ks, std::nullopt, f.clock, 1);
  REQUIRE(ring);
  REQUIRE_FALSE((*ring)->signer);
  REQUIRE_FALSE((*ring)->verifier);
  REQUIRE_FALSE((*ring)->jwks);
  for (const auto* err : {&(*ring)->signer.error(), &(*ring)->verifier.error(), &(*ring)->jwks.error()}) {
    CHECK(err->code == ErrorCode::keystore);
    CHECK(err->message.find(kid) != std::string::npos);
  }
}
