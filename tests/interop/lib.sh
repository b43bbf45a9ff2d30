# shellcheck shell=bash
# tests/interop/lib.sh — harness shared by run.sh, jwe_run.sh and tokens_run.sh (sourced, not run):
# pass/fail/skip counters, the summary line, the prerequisite check of the tokctl argument, the
# work directory (with its cleanup), the timeout wrapper and small file helpers.
# The sourcing script sets TOKCTL (the binary) before calling need_tokctl or tk.

passed=0
failed=0
skips=()         # "check: reason", one per skipped check
skip_reasons=()  # the reasons alone, one per skipped check

pass() { printf 'ok   %s\n' "$1"; passed=$((passed + 1)); }
fail() { printf 'FAIL %s\n' "$1"; failed=$((failed + 1)); }
skip() { printf 'skip %s (%s)\n' "$1" "$2"; skips+=("$1: $2"); skip_reasons+=("$2"); }

# interop_summary NAME [by-reason]: lists the skipped checks (or, with by-reason, how many were
# skipped for each reason), then prints "NAME: N passed, M failed[, K skipped]". Returns 1 when
# anything failed.
interop_summary() {
  if ((${#skips[@]})); then
    echo "skipped (peer does not support the combination):"
    if [[ ${2:-} == by-reason ]]; then
      printf '%s\n' "${skip_reasons[@]}" | sort | uniq -c | sed 's/^ */  /'
    else
      printf '  %s\n' "${skips[@]}"
    fi
    echo "$1: $passed passed, $failed failed, ${#skips[@]} skipped"
  else
    echo "$1: $passed passed, $failed failed"
  fi
  ((failed == 0))
}

# shellcheck disable=SC2034  # prereq_ok is read by the sourcing script
# need_tokctl SCRIPT: exit 2 with a usage line when no tokctl was given; make TOKCTL absolute;
# set prereq_ok=1, or fail and set prereq_ok=0 when it is not executable.
need_tokctl() {
  if [[ -z $TOKCTL ]]; then
    echo "usage: bash $1 /path/to/tokctl" >&2
    exit 2
  fi
  [[ $TOKCTL == /* ]] || TOKCTL=$PWD/$TOKCTL
  prereq_ok=1
  if [[ ! -x $TOKCTL ]]; then
    fail "tokctl binary not found or not executable: $TOKCTL"; prereq_ok=0
  fi
}

# enter_work_dir NAME: a fresh directory $work under TMPDIR, removed at exit unless
# TOKCTL_INTEROP_KEEP=1, and cd into it.
enter_work_dir() {
  work=$(mktemp -d "${TMPDIR:-/tmp}/$1.XXXXXX") || exit 1
  if [[ ${TOKCTL_INTEROP_KEEP:-0} == 1 ]]; then
    echo "work directory kept: $work"
  else
    trap 'rm -rf "$work"' EXIT
    trap 'exit 130' INT TERM
  fi
  cd "$work" || exit 1
}

# tokctl with a 30 s time limit.
tk() { timeout 30 "$TOKCTL" "$@"; }

# The first bytes (400 unless given) of a file, on one line.
oneline() { head -c "${2:-400}" "$1" 2>/dev/null | tr '\n' ' '; }

# tamper_jws IN OUT: a copy of the compact JWS in IN with one character in the middle of the
# signature changed (never the last one, whose low bits may be ignored by lenient base64url
# decoders).
tamper_jws() {
  local t sig p c n
  t=$(<"$1") || return 1
  sig=${t##*.}
  p=$((${#sig} / 2))
  c=${sig:p:1}
  n=A; [[ $c == A ]] && n=B
  printf '%s' "${t%.*}.${sig:0:p}${n}${sig:p+1}" >"$2"
}
