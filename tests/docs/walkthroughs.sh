#!/usr/bin/env bash
# README walkthroughs run verbatim: every fenced ```sh block right after a line
# `<!-- walkthrough -->` in README.md is extracted and run with `bash -euo pipefail` in a fresh
# directory that holds a copy of examples/, with the tokctl under test first on PATH and no
# keystore, policy or passphrase of the machine leaking in. A block that fails fails the test, with
# its text and output.
#
#   usage: bash tests/docs/walkthroughs.sh TOKCTL SRC_DIR
#
# The last line is `walkthroughs: N passed, M failed`.
set -u

if [[ $# -ne 2 ]]; then
  echo "usage: $0 TOKCTL SRC_DIR" >&2
  exit 2
fi
TOKCTL=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
SRC=$2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# Extract the marked blocks into $work/blocks/N.sh (with the heading they belong to as a comment).
mkdir -p "$work/blocks" "$work/bin"
ln -s "$TOKCTL" "$work/bin/tokctl"
awk -v out="$work/blocks" '
  /^#+ / { heading = $0 }
  /^<!-- walkthrough -->/ { armed = 1; next }
  armed && /^```sh/ { n++; file = sprintf("%s/%02d.sh", out, n); print "# " heading > file; inblock = 1; armed = 0; next }
  inblock && /^```/ { inblock = 0; close(file); next }
  inblock { print > file }
  armed && !/^[[:space:]]*$/ { armed = 0 }
' "$SRC/README.md"

passed=0
failed=0
blocks=("$work"/blocks/*.sh)
if [[ ! -e ${blocks[0]} ]]; then
  echo "FAIL: README.md has no <!-- walkthrough --> blocks"
  echo "walkthroughs: 0 passed, 1 failed"
  exit 1
fi
for block in "${blocks[@]}"; do
  dir=$work/run-$(basename "$block" .sh)
  mkdir -p "$dir/home"
  cp -r "$SRC/examples" "$dir/examples"
  if out=$(cd "$dir" && env -u TOKCTL_KEYSTORE -u TOKCTL_CONFIG -u TOKCTL_PASSPHRASE -u XDG_CACHE_HOME \
             -u TOKCTL_SERVER -u TOKCTL_PROFILE -u TOKCTL_CLIENT_ID -u TOKCTL_CLIENT_SECRET -u TOKCTL_CLIENT_SECRET_FILE \
             HOME="$dir/home" XDG_DATA_HOME="$dir/home/.local/share" NO_COLOR=1 \
             PATH="$work/bin:$PATH" bash -euo pipefail "$block" 2>&1 </dev/null); then
    passed=$((passed + 1))
    echo "ok: $(head -1 "$block" | sed 's/^# //')"
  else
    failed=$((failed + 1))
    echo "FAIL: $(head -1 "$block" | sed 's/^# //')"
    sed 's/^/    | /' "$block"
    echo "    output:"
    printf '%s\n' "$out" | tail -20 | sed 's/^/    > /'
  fi
done
echo "walkthroughs: $passed passed, $failed failed"
[[ $failed -eq 0 ]]
