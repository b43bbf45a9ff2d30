#!/usr/bin/env bash
# CTest runs each Catch test case as `tokctl_tests "<name>"`. A name that starts with '-' is read
# by Catch as an option instead ("-o json ..." ran every test case, writing to a file named after
# the rest): no test case name may start with one.
# Usage: test_names.sh SOURCE_DIR
set -euo pipefail
src=${1:?usage: test_names.sh SOURCE_DIR}
pattern='TEST_CASE\("[[:space:]]*-'
# The scanner must see such a name where there is one.
if ! printf '%s\n' 'TEST_CASE("-o json is one document", "[x]") {' | grep -qE "$pattern"; then
  echo "test_names.sh: the scanner failed its own probe" >&2
  exit 1
fi
found=$(cd "$src" && grep -rnE --include='*.cpp' "$pattern" tests || true)
if [[ -n $found ]]; then
  echo "test case names that Catch would read as options (start them with a word):" >&2
  echo "$found" >&2
  exit 1
fi
echo "no test case name starts with '-'"
