#pragma once
// Small helpers shared by the CLI tests (tests/cli/*_test.cpp) and the keystore unit tests: a
// readable dump of a RunResult for INFO, trailing-whitespace trimming, and file system look-ups.

#include <set>
#include <string>

#include "support/run.hpp"

namespace tokctl::test {

/// "exit N", then the child's stdout and stderr under "--- stdout" / "--- stderr" lines.
std::string describe(const RunResult& r);

/// `s` without trailing '\n', '\r' and ' ' characters.
std::string trimmed(std::string s);

/// The permission bits (07777) of `path`; REQUIREs that it can be stat'ed.
unsigned file_mode(const std::string& path);

/// The names in `dir` (without "." and ".."); empty when it cannot be opened.
std::set<std::string> files_in(const std::string& dir);

/// `tokctl sign --sub alice --exp +1h` with the keystore `ks`, and `cnf` (a JSON object) as the
/// cnf claim unless empty: a token to check a binding on. REQUIREs success.
std::string sign_with_cnf(const std::string& ks, const std::string& cnf);

}  // namespace tokctl::test
