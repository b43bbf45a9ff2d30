#!/usr/bin/env bash
# bench/issue.sh — time `tokctl issue --count N` against OpenSSL's raw ES256 sign rate.
#
# Usage: bench/issue.sh [options] [path/to/tokctl]     (default: build/cli/tokctl)
# Run `bench/issue.sh --help` for the options; bench/README.md explains the figures.
#
# In one run it
#   1. makes a temporary keystore with one ES256 key (`tokctl keys add --alg ES256`)
#      and a minimal policy (issuer + one scope),
#   2. issues N tokens once per format, untimed, and checks the output: N distinct
#      lines of the right shape, a sample JWT that `tokctl verify --keystore`
#      accepts, a sample opaque token that `tokctl introspect` reports active,
#   3. times `tokctl issue --count N --format jwt|opaque > /dev/null` (best wall
#      time of 3 runs; every opaque run starts from an empty tokens.db, on disk),
#   4. runs `openssl speed -elapsed ecdsap256` for OpenSSL's ES256 sign rate,
# then prints tokens/s against the targets of issue 4, point 9:
#   JWT (ES256)  >= 0.85 x OpenSSL's ES256 sign/s, on one core
#   opaque       >= 50,000 tokens/s with the store on disk
#
# It is a benchmark, not a test: it exits 0 whatever the figures are, and non-zero
# only when a command fails (bad arguments: 2; keystore, policy, issue, the checks
# or openssl speed: 1).
set -euo pipefail

# ---------------------------------------------------------------- options
script_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo_dir=$(dirname "$script_dir")
# shellcheck source=bench/lib.sh
. "$script_dir/lib.sh"

tokctl=""
kinds_wanted="jwt opaque"
n_jwt=20000
n_opaque=100000
runs=3
speed_seconds=3
keep=no
openssl_bin=${OPENSSL:-openssl}
jwt_target=0.85        # ratio to openssl's ES256 sign/s
opaque_target=50000    # tokens/s

usage() {
    cat <<EOF
Usage: $0 [options] [path/to/tokctl]

Times 'tokctl issue --count N' for ES256 JWTs and for opaque tokens (stored in
the keystore's tokens.db, on disk) and compares the JWT rate with
'openssl speed ecdsap256' (ES256 sign/s) measured in the same run.

Options:
  --kind LIST        only these kinds, comma- or space-separated (default: jwt,opaque)
  --jwt-tokens N     JWTs per run (default $n_jwt)
  --opaque-tokens N  opaque tokens per run (default $n_opaque)
  --runs N           timed runs per kind; the best is kept (default $runs)
  --seconds N        seconds per 'openssl speed' measurement (default $speed_seconds)
  --keep             keep the temporary directory (keystore, policy, outputs)
  -h, --help         this help

Environment: OPENSSL=path overrides the openssl binary; TMPDIR sets where the
temporary keystore (and so the token store) goes.
Default tokctl: $repo_dir/build/cli/tokctl
EOF
}

while (($#)); do
    case $1 in
        --kind|--kinds) kinds_wanted=${2//,/ }; shift 2 ;;
        --kind=*|--kinds=*) v=${1#*=}; kinds_wanted=${v//,/ }; shift ;;
        --jwt-tokens) n_jwt=$2; shift 2 ;;
        --opaque-tokens) n_opaque=$2; shift 2 ;;
        --runs) runs=$2; shift 2 ;;
        --seconds) speed_seconds=$2; shift 2 ;;
        --keep) keep=yes; shift ;;
        *) common_arg "$1"; shift ;;
    esac
done
tokctl=${tokctl:-$repo_dir/build/cli/tokctl}

require_positive "$n_jwt" "$n_opaque" "$runs" "$speed_seconds"
[[ -n ${kinds_wanted// /} ]] || { echo "bench: --kind needs jwt, opaque or both" >&2; exit 2; }
for k in $kinds_wanted; do
    case $k in jwt|opaque) ;; *) echo "bench: unsupported --kind '$k' (jwt, opaque)" >&2; exit 2 ;; esac
done
require_tools

work_dir tokctl-bench-issue

# ---------------------------------------------------------------- openssl speed
# OpenSSL's ES256 *sign* operations per second, from `openssl speed -mr ecdsap256`
# (machine-readable). OpenSSL 3.0 times sign, then verify, so this takes about
# 2 x --seconds.   -mr line used:  +F4:<n>:256:<sign/s>:<verify/s>
openssl_sign_rate() {
    local out=$work/speed-ecdsap256.txt
    speed_mr "$out" ecdsap256
    awk -F: 'index($0, "+F4:") == 1 && $4 > 0 { printf "%.1f\n", $4; found = 1; exit }
             END { if (!found) exit 1 }' "$out" ||
        die "could not find the '+F4:' sign rate in openssl speed ecdsap256 output (see $out)"
}

# ---------------------------------------------------------------- tokctl
private_copy

ks=$work/keystore
policy=$work/policy.yaml
issuer=https://bench.test
store=$ks/tokens.db

# Start every timed run from an empty token store, so that the runs are comparable
# (each one inserts N rows into an empty database) and best-of-N means something.
reset_store() { rm -f "$store" "$store-wal" "$store-shm" "$store-journal"; }

declare -A n_of=([jwt]=$n_jwt [opaque]=$n_opaque)
issue_cmd() {   # issue_cmd KIND -> the command in the array $cmd
    cmd=("$tokctl" --keystore "$ks" --config "$policy" issue
         --format "$1" --count "${n_of[$1]}" --sub bench --scope read)
}

# One untimed run whose output is kept and checked: exit 0, N lines, N distinct
# lines, each of the right shape; a sample JWT verifies against the keystore; a
# sample opaque token introspects active.
check_kind() {
    local kind=$1 n=${n_of[$1]} outf=$work/issue-$1.out errf=$work/issue-$1.err
    local rc=0 lines distinct shaped sample shape
    local -a cmd
    issue_cmd "$kind"
    reset_store
    "${cmd[@]}" >"$outf" 2>"$errf" || rc=$?
    if ((rc)); then
        echo "bench: $kind: '${cmd[*]}' exited $rc" >&2
        head -n 5 "$errf" | sed 's/^/    stderr: /' >&2
        return 1
    fi
    case $kind in
        jwt)    shape='^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$' ;;
        opaque) shape='^[A-Za-z0-9_-]{43,}$' ;;   # 256-bit random, base64url (plus any prefix)
    esac
    lines=$(wc -l <"$outf")
    distinct=$(sort -u "$outf" | wc -l)
    shaped=$(grep -c -E "$shape" "$outf" || true)
    if [[ $lines -ne $n || $distinct -ne $n || $shaped -ne $n ]]; then
        echo "bench: $kind: expected $n distinct tokens, got $lines lines, $distinct distinct, $shaped of the expected shape" >&2
        grep -v -m 3 -E "$shape" "$outf" | sed 's/^/    stdout: /' >&2 || true
        return 1
    fi
    sample=$(sed -n "$(( (n + 1) / 2 ))p" "$outf")   # one from the middle
    rc=0
    case $kind in
        jwt)
            "$tokctl" verify --keystore "$ks" --iss "$issuer" --sub bench --typ at+jwt "$sample" \
                >"$work/verify.out" 2>&1 || rc=$?
            if ((rc)); then
                echo "bench: jwt: 'tokctl verify --keystore' rejected a sample token (exit $rc):" >&2
                sed 's/^/    /' "$work/verify.out" >&2
                return 1
            fi ;;
        opaque)
            local rows
            "$tokctl" --keystore "$ks" --config "$policy" introspect "$sample" \
                >"$work/introspect.out" 2>&1 || rc=$?
            if ((rc)) || ! grep -q -E '"active"[[:space:]]*:[[:space:]]*true' "$work/introspect.out"; then
                echo "bench: opaque: 'tokctl introspect' did not report a sample token active (exit $rc):" >&2
                sed 's/^/    /' "$work/introspect.out" >&2
                return 1
            fi
            # Every token must have reached the store, not just the sample.
            if command -v sqlite3 >/dev/null; then
                rows=$(sqlite3 "$store" 'SELECT count(*) FROM tokens' 2>/dev/null || echo '?')
                if [[ $rows != "$n" ]]; then
                    echo "bench: opaque: tokens.db holds $rows token rows after issuing $n" >&2
                    return 1
                fi
            fi ;;
    esac
}

# Best-of-$runs wall time, in seconds, of `issue --count N > /dev/null`.
time_kind() {
    local kind=$1 errf=$work/issue-$1.timed.err
    local best="" t0 t1 dt rc i
    local -a cmd
    issue_cmd "$kind"
    for ((i = 0; i < runs; i++)); do
        reset_store
        rc=0
        t0=$(now_epoch)
        "${cmd[@]}" >/dev/null 2>"$errf" || rc=$?
        t1=$(now_epoch)
        if ((rc)); then
            echo "bench: $kind: '${cmd[*]} > /dev/null' exited $rc" >&2
            head -n 5 "$errf" | sed 's/^/    stderr: /' >&2
            return 1
        fi
        dt=$(fsub "$t1" "$t0")
        best=$(fmin "$best" "$dt")
    done
    echo "$best"
}

# ---------------------------------------------------------------- setup
start_all=$(now_epoch)

{
    echo "tokctl issue benchmark — $(date -u +%Y-%m-%dT%H:%M:%SZ)"
    print_common_header
    fstype=$(stat -f -c %T "$work" 2>/dev/null || echo unknown)
    echo "  store:   $work/keystore/tokens.db ($fstype$( [[ $fstype == tmpfs || $fstype == ramfs ]] && echo ': in memory, not on disk; set TMPDIR to a disk'))"
    echo "  timing:  best of $runs, wall clock, date +%s.%N, output to /dev/null, empty store per run;" \
         "openssl speed -elapsed -seconds $speed_seconds"
    echo
}

note "creating an ES256 keystore and a policy"
run_or_die "$tokctl" keys add --alg ES256 --keystore "$ks" >/dev/null
cat >"$policy" <<EOF
# Minimal policy for bench/issue.sh
issuer: $issuer
scopes:
  - name: read
EOF
run_or_die "$tokctl" --config "$policy" config check >/dev/null

# ---------------------------------------------------------------- measure
failures=0
declare -A secs=()
for kind in $kinds_wanted; do
    note "$kind: issuing ${n_of[$kind]} tokens once and checking them (untimed)"
    if ! check_kind "$kind"; then
        failures=$((failures + 1)); secs[$kind]=FAIL; continue
    fi
    note "$kind: timing 'issue --count ${n_of[$kind]} --format $kind > /dev/null', best of $runs"
    if ! secs[$kind]=$(time_kind "$kind"); then
        failures=$((failures + 1)); secs[$kind]=FAIL
    fi
done
reset_store

ossl=""
if [[ " $kinds_wanted " == *" jwt "* ]]; then
    note "openssl speed ecdsap256 (ES256 sign/s)"
    ossl=$(openssl_sign_rate)
fi
load_end=$(cut -d' ' -f1 /proc/loadavg 2>/dev/null || echo '?')
elapsed=$(fsub "$(now_epoch)" "$start_all")

# ---------------------------------------------------------------- table
declare -A label=([jwt]="jwt ES256" [opaque]="opaque+db")
row() { printf '%-10s %8s %9s %10s %16s %6s %12s  %s\n' "$@"; }
echo
row kind tokens seconds tokens/s reference ratio target status
row ---------- -------- --------- ---------- ---------------- ------ ------------ ------
for kind in $kinds_wanted; do
    n=${n_of[$kind]} s=${secs[$kind]}
    if [[ $kind == jwt ]]; then
        ref=$(printf '%.0f' "$ossl"); tgt=">= $jwt_target x"
    else
        ref=-; tgt=">= $opaque_target/s"
    fi
    if [[ $s == FAIL ]]; then
        row "${label[$kind]}" "$n" - - "$ref" - "$tgt" FAILED
        continue
    fi
    tps=$(awk -v n="$n" -v s="$s" 'BEGIN { printf "%.0f", n / s }')
    if [[ $kind == jwt ]]; then
        ratio=$(awk -v t="$tps" -v o="$ossl" 'BEGIN { printf "%.2f", t / o }')
        ok=$(awk -v r="$ratio" -v t="$jwt_target" 'BEGIN { print (r >= t) ? "met" : "BELOW" }')
    else
        ratio=-
        ok=$(awk -v r="$tps" -v t="$opaque_target" 'BEGIN { print (r >= t) ? "met" : "BELOW" }')
    fi
    row "${label[$kind]}" "$n" "$(printf '%.3f' "$s")" "$tps" "$ref" "$ratio" "$tgt" "$ok"
done
echo
[[ -n $ossl ]] && echo "reference = openssl speed ecdsap256, ES256 sign/s (bare primitive, one core); ratio = tokctl tokens/s / that."
[[ " $kinds_wanted " == *" opaque "* ]] &&
    echo "opaque+db = 256-bit random tokens, each stored (SHA-256 keyed row) in tokens.db on disk; target is absolute."
echo "1-min load average $load at start, $load_end at end. Whole run: $(printf '%.0f' "$elapsed") s."

if ((failures)); then
    echo "bench: $failures kind(s) failed; see messages above" >&2
    exit 1
fi
exit 0
