#include "support/service_fixture.hpp"

#include <catch2/catch.hpp>

#include <optional>
#include <utility>

#include <tokctl/keys/keystore.hpp>
#include <tokctl/tokens/policy.hpp>

namespace tokctl::test {

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

}  // namespace tokctl::test
