#!/usr/bin/env bash
# Core messages never name CLI flags: the core names a request parameter (Error::param) or a remedy
# (Error::remedy) and each front end spells it (the CLI as --flag or a tokctl command line, the
# server as a form field). Fails on any string literal under core/ that holds "--word".
# Usage: no_flags.sh SOURCE_DIR
set -euo pipefail
src=${1:?usage: no_flags.sh SOURCE_DIR}
pattern='"([^"\\]|\\.)*--[a-z]'
scan() {  # prints offending lines of the files given; comment lines are skipped
  grep -HnE "$pattern" "$@" | grep -vE '^[^:]+:[0-9]+:[[:space:]]*(//|/?\*)' || true
}
# The scanner must see a flag where there is one, or a silent pass would mean nothing.
probe=$(mktemp)
trap 'rm -f "$probe"' EXIT
printf '%s\n' 'return fail(ErrorCode::usage, "x", "use --store sqlite:PATH");' '  // a comment may quote "--alg"' >"$probe"
if [[ $(scan "$probe" | wc -l) != 1 ]]; then
  echo "no_flags.sh: the scanner failed its own probe" >&2
  exit 1
fi
found=$(cd "$src" && scan -r --include='*.cpp' --include='*.hpp' core)
if [[ -n $found ]]; then
  echo "core string literals name CLI flags (use Error::param / Error::remedy; the CLI adds the flag):" >&2
  echo "$found" >&2
  exit 1
fi
echo "core names no CLI flags"
