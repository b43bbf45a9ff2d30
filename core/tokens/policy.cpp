#include <tokctl/tokens/policy.hpp>

#include <cstdlib>
#include <unistd.h>

#include <yaml-cpp/yaml.h>

#include <tokctl/util/time.hpp>

namespace tokctl::tokens {
namespace {

std::string where(const std::string& path, const YAML::Node& n) {
  auto m = n.Mark();
  if (m.is_null()) return path;
  return path + ":" + std::to_string(m.line + 1) + ":" + std::to_string(m.column + 1);
}

}  // namespace

std::string resolve_config_path(const std::string& flag) {
  if (!flag.empty()) return flag;
  if (const char* env = std::getenv("TOKCTL_CONFIG"); env && *env) return env;
  if (::access("tokctl.yaml", F_OK) == 0) return "tokctl.yaml";
  return {};
}

Result<Policy> load_policy(const std::string& path) {
  Policy p;
  if (path.empty()) return p;
  p.source = path;
  YAML::Node root;
  try {
    root = YAML::LoadFile(path);
  } catch (const YAML::BadFile&) {
    return fail(ErrorCode::usage, "cannot read policy file '" + path + "'");
  } catch (const YAML::Exception& e) {
    return fail(ErrorCode::malformed, path + ":" + std::to_string(e.mark.line + 1) + ":" +
                                          std::to_string(e.mark.column + 1) + ": " + e.msg);
  }
  if (!root || root.IsNull()) return p;
  if (!root.IsMap()) return fail(ErrorCode::malformed, where(path, root) + ": the policy must be a mapping");
  try {
    if (auto n = root["issuer"]) p.issuer = n.as<std::string>();
    if (auto n = root["keystore"]) p.keystore = n.as<std::string>();
    if (auto tokens = root["tokens"]) {
      if (auto n = tokens["max_lifetime"]) {
        auto d = parse_duration(n.as<std::string>());
        if (!d) return fail(ErrorCode::malformed, where(path, n) + ": tokens.max_lifetime: " + d.error().message);
        p.max_lifetime = *d;
      }
    }
  } catch (const YAML::Exception& e) {
    return fail(ErrorCode::malformed, path + ":" + std::to_string(e.mark.line + 1) + ":" +
                                          std::to_string(e.mark.column + 1) + ": " + e.msg);
  }
  return p;
}

}  // namespace tokctl::tokens
