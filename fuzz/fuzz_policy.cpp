// Fuzz target: the policy file (tokctl/tokens/policy.hpp). check_policy reads a path, so each input
// is written to tokctl.yaml in a private temporary directory (a relative "subjects" file resolves
// there too, and is absent). Any input must give a Policy or problems, never a crash or an escaping
// exception.

#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include <tokctl/tokens/policy.hpp>

namespace {

std::string make_policy_path() {
  const char* tmp = std::getenv("TMPDIR");
  std::string dir = std::string(tmp != nullptr && *tmp != '\0' ? tmp : "/tmp") + "/tokctl-fuzz-policy-XXXXXX";
  if (::mkdtemp(dir.data()) == nullptr) std::abort();
  return dir + "/tokctl.yaml";
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const std::string path = make_policy_path();
  std::FILE* f = std::fopen(path.c_str(), "wb");
  if (f == nullptr) std::abort();
  if (size > 0 && std::fwrite(data, 1, size, f) != size) std::abort();
  std::fclose(f);
  const tokctl::tokens::PolicyCheck check = tokctl::tokens::check_policy(path);
  if (check.problems.empty()) {
    // A clean policy answers its lookups.
    (void)check.policy.scope_rule("read");
    (void)check.policy.client("cli");
    if (!tokctl::tokens::load_policy(path)) std::abort();
  }
  return 0;
}
