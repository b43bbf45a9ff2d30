#!/usr/bin/env bash
# bench/verify.sh — time `tokctl verify --batch` against OpenSSL's raw verify rate.
#
# Usage: bench/verify.sh [options] [path/to/tokctl]     (default: build/cli/tokctl)
# Run `bench/verify.sh --help` for the options; bench/README.md explains the figures.
#
# For each of ES256, RS256 (2048-bit), EdDSA (Ed25519) and HS256 it
#   1. generates a key with `tokctl keys generate` (and a public JWK for verifying),
#   2. signs a few hundred distinct tokens with `tokctl sign` (distinct sub and jti),
#   3. repeats those lines until the file holds >= 20,000 tokens,
#   4. in each of --rounds rounds (default 5), times one
#      `tokctl verify --batch --threads 1 --key KEY --now T < tokens` (checking every line came
#      back "valid":true) and one `openssl speed -elapsed` of the same primitive, alternating
#      which goes first, and takes the ratio of the two in that round,
# then prints the medians over the rounds: tokens/s, OpenSSL's verify/s and the ratio with its
# min-max, against the targets (met or BELOW by the median ratio).
#
# It is a benchmark, not a test: it exits 0 whatever the ratios are, and non-zero
# only when a command fails (key generation, signing, a verify run that does not
# accept every token, or openssl speed giving nothing to parse).
set -euo pipefail

# ---------------------------------------------------------------- options
script_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo_dir=$(dirname "$script_dir")
# shellcheck source=bench/lib.sh
. "$script_dir/lib.sh"

tokctl=""
algs_wanted="ES256 RS256 EdDSA HS256"
n_tokens=20000
n_distinct=200
rounds=5
speed_seconds=1
extra_threads=()
keep=no
openssl_bin=${OPENSSL:-openssl}

usage() {
    cat <<EOF
Usage: $0 [options] [path/to/tokctl]

Times 'tokctl verify --batch --threads 1' over >= 20,000 ES256, RS256, EdDSA and
HS256 tokens and compares it with 'openssl speed' for the same primitive.

Options:
  --threads N        also time 'verify --batch --threads N' (repeatable; e.g. --threads 2), with its
                     speed-up over 1 thread beside 'openssl speed -multi N' over one process
  --alg LIST         only these algorithms, comma- or space-separated
                     (default: ES256,RS256,EdDSA,HS256)
  --tokens N         tokens per algorithm (default $n_tokens)
  --distinct N       distinct tokens signed per algorithm, repeated up to --tokens
                     (default $n_distinct)
  --rounds N         alternated rounds of tokctl and openssl speed; medians are
                     reported (default $rounds; --runs is the old name)
  --seconds N        seconds per 'openssl speed' measurement (default $speed_seconds)
  --keep             keep the temporary directory (keys, tokens, outputs)
  -h, --help         this help

Environment: OPENSSL=path overrides the openssl binary.
Default tokctl: $repo_dir/build/cli/tokctl
EOF
}

while (($#)); do
    case $1 in
        --threads) extra_threads+=("${2:?--threads needs a number}"); shift 2 ;;
        --threads=*) extra_threads+=("${1#*=}"); shift ;;
        --alg|--algs) algs_wanted=${2//,/ }; shift 2 ;;
        --alg=*|--algs=*) v=${1#*=}; algs_wanted=${v//,/ }; shift ;;
        --tokens) n_tokens=$2; shift 2 ;;
        --distinct) n_distinct=$2; shift 2 ;;
        --rounds|--runs) rounds=$2; shift 2 ;;
        --seconds) speed_seconds=$2; shift 2 ;;
        --keep) keep=yes; shift ;;
        *) common_arg "$1"; shift ;;
    esac
done
tokctl=${tokctl:-$repo_dir/build/cli/tokctl}

require_positive "$n_tokens" "$n_distinct" "$rounds" "$speed_seconds" ${extra_threads[@]+"${extra_threads[@]}"}
for a in $algs_wanted; do
    case $a in ES256|RS256|EdDSA|HS256) ;; *) echo "bench: unsupported --alg '$a' (ES256, RS256, EdDSA, HS256)" >&2; exit 2 ;; esac
done
require_tools

work_dir tokctl-bench

# ---------------------------------------------------------------- tokctl timing
# The wall time, in seconds, of one `verify --batch` run, which is checked: one output line per
# token, each with "valid":true, and exit status 0.
time_verify() {
    local key=$1 tokens=$2 threads=$3 alg=$4 expect=$5
    local outf=$work/verify-$alg-t$threads.jsonl errf=$work/verify-$alg-t$threads.err
    local -a cmd=("$tokctl" verify --batch --threads "$threads" --key "$key" --now "$bench_now")
    local t0 t1 rc=0 valid lines
    t0=$(now_epoch)
    "${cmd[@]}" <"$tokens" >"$outf" 2>"$errf" || rc=$?
    t1=$(now_epoch)
    lines=$(wc -l <"$outf")
    valid=$(grep -c -E '"valid"[[:space:]]*:[[:space:]]*true' "$outf" || true)
    if [[ $rc -ne 0 || $lines -ne $expect || $valid -ne $expect ]]; then
        echo "bench: $alg: '${cmd[*]} < $tokens' exited $rc with $valid of $expect lines \"valid\":true ($lines output lines)" >&2
        grep -v -m 3 -E '"valid"[[:space:]]*:[[:space:]]*true' "$outf" | sed 's/^/    stdout: /' >&2 || true
        head -n 5 "$errf" | sed 's/^/    stderr: /' >&2
        return 1
    fi
    fsub "$t1" "$t0"
}

# ---------------------------------------------------------------- per algorithm

private_copy

bench_now=$(date +%s)   # tokens are issued at this instant and verified at it
failures=0
rows=()                 # "alg|threads|tokens|tok/s|openssl/s|ratio|ratio min-max|target|status"
start_all=$(now_epoch)

{
    echo "tokctl verify benchmark — $(date -u +%Y-%m-%dT%H:%M:%SZ)"
    print_common_header
    echo "  timing:  $rounds alternated rounds of one tokctl run (wall clock) and openssl speed -elapsed -seconds $speed_seconds; medians"
    echo "  tokens:  $n_distinct distinct per algorithm, repeated to $n_tokens (a repeated line costs what a fresh token of the same signer would)"
    echo
}

for alg in $algs_wanted; do
    note "$alg: generating key"
    key=$work/$alg.jwk
    make_key "$alg"  # sets verify_key: the public JWK, as a real verifier would have

    note "$alg: signing $n_distinct distinct tokens"
    make_tokens "$alg" "$key"
    tokens=$work/$alg.tokens
    # Signing input = "header.payload": the bytes HMAC runs over.
    signing_input=$(awk -F. '{ s += length($1) + 1 + length($2) } END { printf "%d", s / NR + 0.5 }' "$work/$alg.distinct")
    token_len=$(awk '{ s += length($0) } END { printf "%d", s / NR + 0.5 }' "$work/$alg.distinct")

    thread_list=(1 ${extra_threads[@]+"${extra_threads[@]}"})
    declare -A tps_list=() ratio_list=() scale_list=() ossl_scale_list=() failed=()
    ossl_list=""
    note "$alg: $rounds rounds of verify --batch (threads: ${thread_list[*]}, $n_tokens tokens of ${token_len} bytes) and openssl speed ${speed_label[$alg]}$( [[ $alg == HS256 ]] && echo " on $signing_input-byte messages")"
    for ((round = 1; round <= rounds; round++)); do
        # Alternate who goes first, so a drift in the machine's speed hits both alike.
        if ((round % 2 == 0)); then
            read -r ossl block < <(openssl_verify_rate "${speed_prim[$alg]}" "$signing_input") ||
                die "$alg: no rate from openssl speed"
        fi
        declare -A secs=()
        for th in "${thread_list[@]}"; do
            [[ -n ${failed[$th]:-} ]] && continue
            if ! secs[$th]=$(time_verify "$verify_key" "$tokens" "$th" "$alg" "$n_tokens"); then
                failures=$((failures + 1))
                failed[$th]=1
            fi
        done
        if ((round % 2 == 1)); then
            read -r ossl block < <(openssl_verify_rate "${speed_prim[$alg]}" "$signing_input") ||
                die "$alg: no rate from openssl speed"
        fi
        [[ $alg == HS256 ]] && hmac_size=$block
        ossl_list+="$ossl "
        for th in "${thread_list[@]}"; do
            [[ -n ${failed[$th]:-} ]] && continue
            tps=$(awk -v n="$n_tokens" -v s="${secs[$th]}" 'BEGIN { printf "%.0f", n / s }')
            tps_list[$th]+="$tps "
            ratio_list[$th]+="$(awk -v t="$tps" -v o="$ossl" 'BEGIN { printf "%.3f", t / o }') "
            # N threads: tokctl's speed-up over its 1-thread run, and OpenSSL's over one process
            # with `openssl speed -multi N` in the same round (what the machine's cores allow).
            if [[ $th != 1 && -z ${failed[1]:-} ]]; then
                read -r multi _ < <(openssl_verify_rate "${speed_prim[$alg]}" "$signing_input" "$th") ||
                    die "$alg: no rate from openssl speed -multi $th"
                scale_list[$th]+="$(awk -v a="${secs[1]}" -v b="${secs[$th]}" 'BEGIN { printf "%.3f", a / b }') "
                ossl_scale_list[$th]+="$(awk -v m="$multi" -v o="$ossl" 'BEGIN { printf "%.3f", m / o }') "
            fi
        done
        unset secs
    done
    read -r ossl_med _ _ < <(median_min_max $ossl_list)

    for th in "${thread_list[@]}"; do
        if [[ -n ${failed[$th]:-} ]]; then
            rows+=("$alg|$th|$n_tokens|-|$ossl_med|-|-|-|FAILED")
            continue
        fi
        read -r tps _ _ < <(median_min_max ${tps_list[$th]})
        read -r ratio rmin rmax < <(median_min_max ${ratio_list[$th]})
        ratio=$(printf '%.2f' "$ratio")
        tgt=${verify_goal[$alg]}
        if [[ $th != 1 && -n ${scale_list[$th]:-} ]]; then
            # The goal for N threads is a speed-up of 1.85x on 2 (issue 11 point 2), N - 0.15 here.
            read -r scale smin smax < <(median_min_max ${scale_list[$th]})
            read -r oscale _ _ < <(median_min_max ${ossl_scale_list[$th]})
            tgt_col=$(awk -v n="$th" 'BEGIN { printf ">= %.2fx", n - 0.15 }')
            if awk -v s="$scale" -v n="$th" 'BEGIN { exit !(s >= n - 0.15) }'; then status=met; else status=BELOW; fi
            status+=$(printf ' (%.2fx of 1 thread, %.2f-%.2f; openssl speed -multi %s: %.2fx)' "$scale" "$smin" "$smax" "$th" "$oscale")
        elif [[ $th != 1 ]]; then
            status="info (vs 1-core openssl)"; tgt_col="-"
        elif [[ -z $tgt ]]; then
            status="report only"; tgt_col="-"
        else
            tgt_col=">= $tgt"
            if awk -v r="$ratio" -v t="$tgt" 'BEGIN { exit !(r >= t) }'; then status=met; else status=BELOW; fi
        fi
        rows+=("$alg|$th|$n_tokens|$(printf '%.0f' "$tps")|$ossl_med|$ratio|$(printf '%.2f-%.2f' "$rmin" "$rmax")|$tgt_col|$status")
    done
    unset tps_list ratio_list scale_list ossl_scale_list failed
done

elapsed=$(fsub "$(now_epoch)" "$start_all")

# ---------------------------------------------------------------- table
echo
printf '%-6s %7s %8s %10s %16s %6s %11s %7s  %s\n' \
    alg threads tokens tokens/s "openssl verify/s" ratio "min-max" target status
printf '%-6s %7s %8s %10s %16s %6s %11s %7s  %s\n' \
    ------ ------- -------- ---------- ---------------- ------ ----------- ------- ------
for r in "${rows[@]}"; do
    IFS='|' read -r a th n tps o ratio range tgt st <<<"$r"
    o=$(printf '%.0f' "$o")
    printf '%-6s %7s %8s %10s %16s %6s %11s %7s  %s\n' "$a" "$th" "$n" "$tps" "$o" "$ratio" "$range" "$tgt" "$st"
done
echo
declare -A speed_note=([ES256]="ES256 = openssl speed ecdsap256"
                       [RS256]="RS256 = openssl speed rsa2048"
                       [EdDSA]="EdDSA = openssl speed ed25519"
                       [HS256]="HS256 = openssl speed -hmac sha256 on ${hmac_size:-?}-byte messages (the JWS signing input)")
for a in $algs_wanted; do echo "${speed_note[$a]}"; done
echo "(OpenSSL's figures are the bare primitive on a short buffer: no base64url decoding, JSON parsing or claim checks.)"
echo "ratio = median over the rounds of (tokctl tokens/s / openssl verify/s in the same round), single core; tokens/s and openssl verify/s are medians too. Whole run: $(printf '%.0f' "$elapsed") s."

if ((failures)); then
    echo "bench: $failures verify configuration(s) failed; see messages above" >&2
    exit 1
fi
exit 0
