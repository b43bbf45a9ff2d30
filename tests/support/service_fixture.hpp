#pragma once
// The TokenService setup shared by the unit tests of the token service and of token exchange.

#include <memory>
#include <string>

#include <tokctl/tokens/service.hpp>
#include <tokctl/util/time.hpp>

namespace tokctl::test {

/// Loads the policy file `policy_path`, opens (creating it if needed) the keystore `ks_dir` on
/// `clock`, adds one active ES256 key when the keystore has none, and opens a TokenService on them
/// (no passphrase). FAILs the running test on any error.
std::unique_ptr<tokens::TokenService> open_service(const std::string& policy_path, const std::string& ks_dir,
                                                   const Clock& clock);

}  // namespace tokctl::test
