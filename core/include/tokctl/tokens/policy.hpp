#pragma once
// The policy file (tokctl.yaml). This first version reads the settings the keystore needs;
// the token service grows it (scopes, claims, clients, exchange rules).

#include <cstdint>
#include <optional>
#include <string>

#include <tokctl/util/error.hpp>

namespace tokctl::tokens {

struct Policy {
  std::string issuer;
  std::string keystore;                   ///< empty: not set
  std::int64_t max_lifetime = 24 * 3600;  ///< tokens.max_lifetime: the longest any token lives
  std::string source;                     ///< file it came from (empty: built-in defaults)
};

/// --config FILE, else $TOKCTL_CONFIG, else ./tokctl.yaml if present, else "" (defaults).
std::string resolve_config_path(const std::string& flag);

/// Loads `path` ("" gives the defaults). Fails with ErrorCode::malformed naming file:line:column.
Result<Policy> load_policy(const std::string& path);

}  // namespace tokctl::tokens
