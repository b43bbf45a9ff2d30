#include "support/cli_helpers.hpp"

#include <catch2/catch.hpp>

#include <dirent.h>
#include <sys/stat.h>

#include <vector>

namespace tokctl::test {

std::string describe(const RunResult& r) {
  return "exit " + std::to_string(r.code) + "\n--- stdout\n" + r.out + "--- stderr\n" + r.err;
}

std::string trimmed(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r' || s.back() == ' ')) s.pop_back();
  return s;
}

unsigned file_mode(const std::string& path) {
  struct stat st{};
  REQUIRE(::stat(path.c_str(), &st) == 0);
  return st.st_mode & 07777;
}

std::set<std::string> files_in(const std::string& dir) {
  std::set<std::string> out;
  if (DIR* d = ::opendir(dir.c_str())) {
    while (dirent* ent = ::readdir(d)) {
      std::string n = ent->d_name;
      if (n != "." && n != "..") out.insert(n);
    }
    ::closedir(d);
  }
  return out;
}

std::string sign_with_cnf(const std::string& ks, const std::string& cnf) {
  std::vector<std::string> args = {"--keystore", ks, "sign", "--sub", "alice", "--exp", "+1h"};
  if (!cnf.empty()) args.insert(args.end(), {"--claim", "cnf=" + cnf});
  auto r = run(args);
  REQUIRE(r.code == 0);
  return trimmed(r.out);
}

}  // namespace tokctl::test
