#pragma once
// Helpers for the data-driven third-party vector tests (tests/unit/vectors_test.cpp): locating and
// reading the vector files, and a per-file tally that counts every vector, lists every skip with
// its reason and prints one summary line per file. Header-only so tests/CMakeLists.txt needs no
// extra source.

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#ifndef TOKCTL_VECTORS_DIR
#error "TOKCTL_VECTORS_DIR must be defined (tests/CMakeLists.txt sets it to ../shared/vectors)"
#endif

namespace tokctl::test {

/// The vectors root (../shared/vectors unless overridden at configure time).
inline std::filesystem::path vectors_dir() { return std::filesystem::path(TOKCTL_VECTORS_DIR); }

/// Whole file as bytes; throws std::runtime_error naming the path when it cannot be read, so a
/// missing vector file fails the test instead of silently running nothing.
inline std::string read_text(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot read vector file " + path.string());
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

/// Parses a vector file as JSON (the files are trusted test data, so the lenient parser is fine).
inline nlohmann::json read_json(const std::filesystem::path& path) {
  return nlohmann::json::parse(read_text(path));
}

/// `text` without leading and trailing ASCII whitespace.
inline std::string trim(std::string_view text) {
  const auto first = text.find_first_not_of(" \t\r\n");
  if (first == std::string_view::npos) return {};
  const auto last = text.find_last_not_of(" \t\r\n");
  return std::string(text.substr(first, last - first + 1));
}

/// What a vector's label means for tokctl when the label alone is not the whole story.
enum class Expectation { accept, reject, either };

/// A documented per-vector decision: Wycheproof's label is overridden (data error, deliberate
/// tokctl policy) or an ambiguous case where both outcomes are fine. Printed with its reason.
struct Decision {
  int tc_id;
  Expectation expect;
  const char* reason;
};

/// "3, 7-9, 12" for a sorted list of ids.
inline std::string format_ranges(std::vector<int> ids) {
  std::sort(ids.begin(), ids.end());
  std::string out;
  for (std::size_t i = 0; i < ids.size();) {
    std::size_t j = i;
    while (j + 1 < ids.size() && ids[j + 1] == ids[j] + 1) ++j;
    if (!out.empty()) out += ", ";
    out += std::to_string(ids[i]);
    if (j > i) out += "-" + std::to_string(ids[j]);
    i = j + 1;
  }
  return out;
}

/// Per-file counts. Every vector of a file lands in exactly one bucket, so counted() + skipped()
/// must equal the file's numberOfTests.
struct Tally {
  explicit Tally(std::string name) : label(std::move(name)) {}

  std::string label;  ///< "wycheproof ecdsa_secp256r1_sha256_p1363"
  int valid_accepted = 0;
  int invalid_rejected = 0;
  int acceptable_accepted = 0;
  int acceptable_rejected = 0;
  int decided = 0;      ///< vectors handled by a documented Decision (overrides, ambiguous)
  int mismatches = 0;   ///< vectors where tokctl disagreed with the expectation (CHECK failed)
  int wrong_reason = 0; ///< rejected, but not for the reason the vector is about (CHECK failed)
  std::map<std::string, std::vector<int>> skips;  ///< reason -> tcIds
  std::vector<std::string> notes;                 ///< decisions and acceptable outcomes, printed

  void skip(int tc_id, const std::string& reason) { skips[reason].push_back(tc_id); }
  int skipped() const {
    int n = 0;
    for (const auto& [reason, ids] : skips) n += static_cast<int>(ids.size());
    return n;
  }
  int counted() const {
    return valid_accepted + invalid_rejected + acceptable_accepted + acceptable_rejected + decided +
           mismatches;
  }

  void print() const {
    std::cout << label << ": " << valid_accepted << " valid accepted, " << invalid_rejected
              << " invalid rejected, " << (acceptable_accepted + acceptable_rejected)
              << " acceptable (" << acceptable_accepted << " accepted, " << acceptable_rejected
              << " rejected), " << decided << " decided by documented policy, " << skipped()
              << " skipped";
    if (mismatches != 0) std::cout << ", " << mismatches << " MISMATCHED";
    if (wrong_reason != 0) std::cout << ", " << wrong_reason << " rejected for the WRONG REASON";
    std::cout << '\n';
    for (const auto& [reason, ids] : skips)
      std::cout << "    skipped " << ids.size() << " (tcId " << format_ranges(ids) << "): " << reason
                << '\n';
    for (const auto& note : notes) std::cout << "    " << note << '\n';
  }
};

}  // namespace tokctl::test
