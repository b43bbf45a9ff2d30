#pragma once
// The policy file (tokctl.yaml): issuer, token formats and lifetimes, scopes, claims, subjects,
// clients and exchange rules. Schema in DESIGN.md; unknown keys are errors with file:line:column.

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include <tokctl/util/error.hpp>

namespace tokctl::tokens {

struct TokenKindPolicy {
  std::string format;     ///< access: jwt | opaque | wrapped | jwe; refresh: opaque; id: jwt
  std::int64_t ttl = 0;   ///< seconds
  bool rotate = false;    ///< refresh: a used refresh token is replaced (reuse revokes the grant)
};

struct ScopeRule {
  std::string name;                 ///< exact scope, or empty for a prefix rule
  std::string prefix;               ///< any scope starting with this (e.g. "video_stream_")
  std::optional<std::int64_t> ttl;  ///< dropped from tokens issued more than ttl after the grant began
  nlohmann::json claims = nlohmann::json::object();  ///< added when the scope is granted

  /// True when `scope` is covered by this rule.
  bool matches(std::string_view scope) const;
};

struct ClientPolicy {
  std::string id;
  std::string secret_hash;             ///< "sha256:<hex>" (serve: client authentication)
  std::vector<std::string> scopes;     ///< allowed scopes (exact names or prefix rules' prefixes)
  std::vector<std::string> audiences;  ///< allowed audiences; the first is the default
  std::string format;                  ///< overrides tokens.access.format
  std::string sector;                  ///< pairwise subject (PPID) sector identifier
};

struct ExchangeRule {
  std::string from;                 ///< subject token audience
  std::vector<std::string> to;      ///< allowed target audiences
  std::vector<std::string> scopes;  ///< at most these (and a subset of the subject token's)
  std::vector<std::string> modes;   ///< delegate | impersonate | embed
};

struct Policy {
  std::string issuer = "https://tokctl.local";
  std::string keystore;  ///< empty: not set (absolute, or relative to the policy file)
  std::string store;     ///< empty: sqlite:<keystore>/tokens.db
  TokenKindPolicy access{"jwt", 15 * 60, false};
  TokenKindPolicy refresh{"opaque", 30 * 86400, true};
  TokenKindPolicy id{"jwt", 15 * 60, false};
  std::string opaque_prefix;
  std::string jwe_recipient;              ///< public key file that format jwe encrypts to
  std::int64_t max_lifetime = 24 * 3600;  ///< the longest any token lives; keys prune uses it
  std::vector<std::string> wrapper_claims;  ///< non-sensitive claims copied into wrapped tokens
  std::vector<ScopeRule> scopes;
  nlohmann::json claims = nlohmann::json::object();  ///< added to every access token (templates)
  std::string subjects_file;
  std::map<std::string, nlohmann::json> subjects;  ///< sub -> attributes
  std::map<std::string, ClientPolicy> clients;
  std::vector<ExchangeRule> exchange;
  std::string source;  ///< the file it came from (empty: built-in defaults)

  /// The scope rule covering `scope`, or nullptr. With no scopes configured every scope is unknown.
  const ScopeRule* scope_rule(std::string_view scope) const;
  const ClientPolicy* client(std::string_view id) const;
};

/// Every problem in a policy file, each "file:line:column: message".
struct PolicyCheck {
  Policy policy;
  std::vector<std::string> problems;
};

/// Reads and validates `path` ("" gives the defaults), collecting every problem.
PolicyCheck check_policy(const std::string& path);

/// check_policy that fails (ErrorCode::malformed, all problems in the message) unless clean.
Result<Policy> load_policy(const std::string& path);

}  // namespace tokctl::tokens
