#pragma once
// The TokenService setup shared by the unit tests of the token service and of token exchange,
// and tokens that only look like the keystore's (forgeries) for the trust regression tests.

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include <tokctl/tokens/service.hpp>
#include <tokctl/util/time.hpp>

namespace tokctl::test {

/// Loads the policy file `policy_path`, opens (creating it if needed) the keystore `ks_dir` on
/// `clock`, adds one active ES256 key when the keystore has none, and opens a TokenService on them
/// (no passphrase). FAILs the running test on any error.
std::unique_ptr<tokens::TokenService> open_service(const std::string& policy_path, const std::string& ks_dir,
                                                   const Clock& clock);

/// `claims` signed with the active key of the keystore `ks_dir` (as `tokctl sign` does), with
/// `header_extra` merged into the header (kid and typ at+jwt are set). FAILs the test on error.
std::string sign_with_keystore(const std::string& ks_dir, const Clock& clock, const nlohmann::json& claims,
                               const nlohmann::json& header_extra = nlohmann::json::object());

/// Tokens carrying `claims` that the keystore `ks_dir` must never treat as its own, by name:
/// "bad signature" (the claims with another token's signature), "unknown crit" (a good signature
/// over a header with an unknown critical parameter), "alg not allowed" (HS256 under the key's kid)
/// and "other key, same kid" (ES256 by an unrelated key claiming the keystore key's kid).
std::vector<std::pair<std::string, std::string>> forged_tokens(const std::string& ks_dir, const Clock& clock,
                                                               const nlohmann::json& claims);

}  // namespace tokctl::test
