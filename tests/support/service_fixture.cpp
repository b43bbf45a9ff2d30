#include "support/service_fixture.hpp"

#include <catch2/catch.hpp>

#include <optional>
#include <utility>

#include <tokctl/jose/jws.hpp>
#include <tokctl/keys/keystore.hpp>
#include <tokctl/tokens/policy.hpp>
#include <tokctl/util/base64.hpp>

#include "support/keys.hpp"

namespace tokctl::test {
namespace {

// The keystore's active signing key (private), kid set.
jose::Jwk active_key(const std::string& ks_dir, const Clock& clock) {
  auto ks = keys::Keystore::open(ks_dir, clock, false);
  if (!ks) FAIL("keystore: " << ks.error().message);
  auto k = ks->signing_key("", "", std::nullopt);
  if (!k) FAIL("signing key: " << k.error().message);
  return std::move(*k);
}

std::string sign(nlohmann::json header, const nlohmann::json& claims, jose::Alg alg, const jose::Jwk& key) {
  auto t = jose::sign_compact(std::move(header), claims.dump(), alg, key);
  if (!t) FAIL("sign: " << t.error().message);
  return *t;
}

}  // namespace

std::unique_ptr<tokens::TokenService> open_service(const std::string& policy_path, const std::string& ks_dir,
                                                   const Clock& clock) {
  auto policy = tokens::load_policy(policy_path);
  if (!policy) FAIL("load_policy: " << policy.error().message);
  auto ks = keys::Keystore::open(ks_dir, clock, true);
  if (!ks) FAIL("keystore: " << ks.error().message);
  auto m = ks->manifest();
  if (m && m->keys.empty()) {
    keys::AddOptions add;
    add.alg = "ES256";
    add.state = keys::KeyState::active;
    if (auto k = ks->add(add, std::nullopt); !k) FAIL("keys add: " << k.error().message);
  }
  auto s = tokens::TokenService::open(std::move(*policy), std::move(*ks), clock, std::nullopt);
  if (!s) FAIL("open: " << s.error().message);
  return std::move(*s);
}

std::string sign_with_keystore(const std::string& ks_dir, const Clock& clock, const nlohmann::json& claims,
                               const nlohmann::json& header_extra) {
  jose::Jwk key = active_key(ks_dir, clock);
  nlohmann::json header{{"kid", key.kid()}, {"typ", "at+jwt"}};
  header.update(header_extra);
  return sign(std::move(header), claims, jose::Alg::ES256, key);
}

std::vector<std::pair<std::string, std::string>> forged_tokens(const std::string& ks_dir, const Clock& clock,
                                                               const nlohmann::json& claims) {
  jose::Jwk key = active_key(ks_dir, clock);
  const nlohmann::json header{{"kid", key.kid()}, {"typ", "at+jwt"}};
  std::vector<std::pair<std::string, std::string>> out;

  // Valid claims, bad signature: the signature of a token with other claims, same key.
  nlohmann::json other = claims;
  other["jti"] = "someone-else";
  std::string real_other = sign(header, other, jose::Alg::ES256, key);
  std::string body = sign(header, claims, jose::Alg::ES256, key);
  body = body.substr(0, body.rfind('.'));
  out.emplace_back("bad signature", body + real_other.substr(real_other.rfind('.')));

  // A good signature, but a critical header parameter nobody understands.
  nlohmann::json crit = header;
  crit["crit"] = {"x-must-understand"};
  crit["x-must-understand"] = true;
  out.emplace_back("unknown crit", sign(crit, claims, jose::Alg::ES256, key));

  // An alg the keystore key does not allow (it pins ES256).
  out.emplace_back("alg not allowed", sign(header, claims, jose::Alg::HS256, test_key("hs256")));

  // Another key claiming the keystore key's kid.
  jose::Jwk impostor = test_key(key.kid() == "p256b" ? "p256" : "p256b");
  impostor.set_kid(key.kid());
  out.emplace_back("other key, same kid", sign(header, claims, jose::Alg::ES256, impostor));
  return out;
}

}  // namespace tokctl::test
