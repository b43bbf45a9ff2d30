#!/usr/bin/env bash
# bench/floor.sh — the best `verify --batch` ratio to `openssl speed` that any verifier parsing
# claims with nlohmann/json (the project's JSON library) could reach (issue 11 point 2).
#
# Usage: bash bench/floor.sh [--rounds N] [--seconds S] [--keep] [path/to/tokctl]
#
# For ES256, RS256, EdDSA and HS256: signs 200 distinct tokens like verify.sh's, then in each
# round times (bench/floor.cpp, built as the tokctl_bench_floor target) nlohmann's lexer alone
# over their payloads (a SAX handler that keeps nothing), tokctl's strict parse of them, and
# tokctl's base64url decode, and takes `openssl speed` of the primitive in the same round.
# A verifier must at least lex every payload byte (duplicates, numbers and UTF-8 are only found
# that way) and run the primitive; the header is the same for every token of one signer, so it is
# left out. Hence the bound, per round:
#   best ratio = t_primitive / (t_primitive + t_lex + t_b64)
# with everything else (key choice, claim checks, output, I/O) free. A goal above the bound
# cannot be met without another JSON parser. Medians over the rounds; exits 0 unless a step fails.
set -euo pipefail
script_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo_dir=$(dirname "$script_dir")
# shellcheck source=bench/lib.sh
. "$script_dir/lib.sh"

tokctl=""
rounds=3
speed_seconds=1
floor_seconds=1
keep=no
openssl_bin=${OPENSSL:-openssl}
n_distinct=200
n_tokens=200

usage() { sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'; }
while [[ $# -gt 0 ]]; do
    case $1 in
        --rounds) rounds=${2:?}; shift 2 ;;
        --seconds) speed_seconds=${2:?}; floor_seconds=$2; shift 2 ;;
        --keep) keep=yes; shift ;;
        *) common_arg "$1"; shift ;;
    esac
done
require_positive "$rounds" "$speed_seconds"
tokctl=${tokctl:-$repo_dir/build/cli/tokctl}
require_tools
build_dir=$(cd "$(dirname "$tokctl")/.." && pwd)
[[ -f $build_dir/CMakeCache.txt ]] || die "no CMake build beside $tokctl (floor.cpp is built in its build directory)"
cmake --build "$build_dir" --target tokctl_bench_floor >/dev/null || die "cannot build tokctl_bench_floor in $build_dir"
floor=$build_dir/bench/tokctl_bench_floor
work_dir tokctl-floor
private_copy
bench_now=$(date +%s)

echo "tokctl verify floor — $(date -u +%Y-%m-%dT%H:%M:%SZ)"
print_common_header
echo "  rounds:  $rounds, each: tokctl_bench_floor -$floor_seconds s per measure, openssl speed -seconds $speed_seconds"
echo
printf '%-6s %8s %12s %9s %10s %9s %9s %13s %13s %6s\n' alg payload "openssl ns" "lex ns" "strict ns" "b64 ns" bound "bound(strict)" "range" goal
for alg in ES256 RS256 EdDSA HS256; do
    make_key "$alg"
    make_tokens "$alg" "$work/$alg.jwk"
    signing_input=$(awk -F. '{ s += length($1) + 1 + length($2) } END { printf "%d", s / NR + 0.5 }' "$work/$alg.distinct")
    prim=() lex=() strict=() b64=() bound=() bound_strict=()
    for ((r = 1; r <= rounds; r++)); do
        read -r rate _ < <(openssl_verify_rate "${speed_prim[$alg]}" "$signing_input") || die "$alg: no rate from openssl speed"
        line=$("$floor" "$work/$alg.distinct" "$floor_seconds") || die "$alg: tokctl_bench_floor failed"
        read -r bytes l s b < <(sed -E 's/payload_bytes=([0-9]+) lex_ns=([0-9.]+) strict_ns=([0-9.]+) b64_ns=([0-9.]+).*/\1 \2 \3 \4/' <<<"$line")
        p=$(awk -v r="$rate" 'BEGIN { printf "%.1f", 1e9 / r }')
        prim+=("$p") lex+=("$l") strict+=("$s") b64+=("$b")
        bound+=("$(awk -v p="$p" -v l="$l" -v b="$b" 'BEGIN { printf "%.3f", p / (p + l + b) }')")
        bound_strict+=("$(awk -v p="$p" -v l="$s" -v b="$b" 'BEGIN { printf "%.3f", p / (p + l + b) }')")
    done
    read -r bm bmin bmax < <(median_min_max "${bound[@]}")
    printf '%-6s %7sB %12s %9s %10s %9s %9s %13s %13s %6s\n' "$alg" "$bytes" \
        "$(median_min_max "${prim[@]}" | cut -d' ' -f1)" "$(median_min_max "${lex[@]}" | cut -d' ' -f1)" \
        "$(median_min_max "${strict[@]}" | cut -d' ' -f1)" "$(median_min_max "${b64[@]}" | cut -d' ' -f1)" \
        "$bm" "$(median_min_max "${bound_strict[@]}" | cut -d' ' -f1)" "$bmin-$bmax" "${verify_goal[$alg]}"
done
echo
echo "bound: the best verify --batch ratio to openssl speed with nlohmann's lexer as the only cost"
echo "besides the primitive and base64url; bound(strict): the same with tokctl's strict claims parse."
