#!/usr/bin/env bash
# bench/peers.sh — `tokctl verify --batch` against verify loops in npm `jose` and PyJWT.
#
# Usage: bench/peers.sh [options] [path/to/tokctl]     (default: build/cli/tokctl)
# Run `bench/peers.sh --help` for the options; bench/README.md explains the figures.
#
# For each of ES256, RS256 (2048-bit), EdDSA (Ed25519) and HS256 it
#   1. makes a key and tokens as bench/verify.sh does: `tokctl keys generate`, the public JWK
#      from `tokctl keys convert KEY --public --to jwk` (HS256: the secret JWK), 200 distinct
#      tokens from `tokctl sign` issued now with a one-hour lifetime, repeated to --tokens lines;
#   2. in each of --rounds rounds, alternating the order (tokctl, jose, PyJWT; then the reverse),
#      times
#        - `tokctl verify --batch --threads 1 --key KEY --now T < tokens`: the whole process,
#          wall clock, checked for one "valid":true line per token and exit 0;
#        - bench/peers_jose.mjs: node, npm jose (tests/interop/node/node_modules), importJWK
#          once, then `await jwtVerify(token, key, {algorithms, currentDate: T})` per token;
#        - bench/peers_pyjwt.py: /usr/bin/python3, PyJWT, jwt.PyJWK once, then
#          `jwt.decode(token, key, algorithms=[alg])` per token (real clock; the tokens are valid);
#      each peer times its own loop only (no interpreter start-up, imports, file read or key
#      import) and must accept every token;
# then prints tokens/s (medians) and the ratios tokctl/jose and tokctl/PyJWT (median, min-max
# over the per-round ratios).
#
# It is a benchmark, not a test: it exits 0 whatever the ratios are, 1 when a command fails or
# a peer is missing or rejects a token, 2 on bad arguments.
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
keep=no
openssl_bin=${OPENSSL:-openssl}          # only for the report header (lib.sh)
python_bin=${PYTHON:-/usr/bin/python3}   # the system python, where python3-jwt lives
node_bin=${NODE:-node}
node_dir=$repo_dir/tests/interop/node   # npm ci here installs jose

usage() {
    cat <<EOF
Usage: $0 [options] [path/to/tokctl]

Times 'tokctl verify --batch --threads 1' over >= 20,000 ES256, RS256, EdDSA and
HS256 tokens against a verify loop in node with npm jose and one in Python with
PyJWT, over the same tokens and key, in alternated rounds.

Options:
  --alg LIST         only these algorithms, comma- or space-separated
                     (default: ES256,RS256,EdDSA,HS256)
  --tokens N         tokens per algorithm (default $n_tokens)
  --rounds N         alternated rounds; medians are reported (default $rounds)
  --keep             keep the temporary directory (keys, tokens, outputs)
  -h, --help         this help

tokctl is timed as a whole process (start-up, key load and output included);
each peer reports the time of its verify loop only.

Peers: npm jose from $node_dir/node_modules
(install: cd tests/interop/node && npm ci), and PyJWT under $python_bin
(install: apt-get install python3-jwt python3-cryptography).
Environment: PYTHON=path and NODE=path override the interpreters.
Default tokctl: $repo_dir/build/cli/tokctl
EOF
}

while (($#)); do
    case $1 in
        --alg|--algs) algs_wanted=${2//,/ }; shift 2 ;;
        --alg=*|--algs=*) v=${1#*=}; algs_wanted=${v//,/ }; shift ;;
        --tokens) n_tokens=$2; shift 2 ;;
        --tokens=*) n_tokens=${1#*=}; shift ;;
        --rounds) rounds=$2; shift 2 ;;
        --rounds=*) rounds=${1#*=}; shift ;;
        --keep) keep=yes; shift ;;
        *) common_arg "$1"; shift ;;
    esac
done
tokctl=${tokctl:-$repo_dir/build/cli/tokctl}

require_positive "$n_tokens" "$rounds"
[[ -n ${algs_wanted// /} ]] || { echo "bench: --alg needs at least one algorithm" >&2; exit 2; }
for a in $algs_wanted; do
    case $a in ES256|RS256|EdDSA|HS256) ;; *) echo "bench: unsupported --alg '$a' (ES256, RS256, EdDSA, HS256)" >&2; exit 2 ;; esac
done
((n_distinct > n_tokens)) && n_distinct=$n_tokens
require_tools

# ---------------------------------------------------------------- peers present?
command -v "$node_bin" >/dev/null ||
    die "node not found (install nodejs, then: cd tests/interop/node && npm ci)"
jose_version=$("$node_bin" "$script_dir/peers_jose.mjs" "$node_dir" --version 2>&1) ||
    die "npm jose cannot be loaded from $node_dir/node_modules (run: cd tests/interop/node && npm ci, or scripts/install-deps): $jose_version"
[[ -x $python_bin ]] || die "$python_bin not found (install python3, python3-jwt and python3-cryptography)"
# shellcheck disable=SC2086  # one argument per algorithm
pyjwt_version=$("$python_bin" "$script_dir/peers_pyjwt.py" --version $algs_wanted 2>&1) ||
    die "PyJWT is not usable under $python_bin: $pyjwt_version"

work_dir tokctl-peers
private_copy

# ---------------------------------------------------------------- timing
# Each prints the seconds of one run, or shows what went wrong and dies.

# tokctl: the wall time of the whole process, checked: exit 0, one "valid":true line per token
# (EXPECT lines of TOKENS).
time_tokctl() {
    local alg=$1 key=$2 tokens=$3 expect=$4
    local outf=$work/tokctl-$alg.jsonl errf=$work/tokctl-$alg.err
    local -a cmd=("$tokctl" verify --batch --threads 1 --key "$key" --now "$bench_now")
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
        die "$alg: tokctl verify failed"
    fi
    fsub "$t1" "$t0"
}

# A peer: runs "$@", which prints "valid=V tokens=N seconds=S" (its loop's time); checks
# exit 0 and V == N == $n_tokens, and prints S.
time_peer() {
    local name=$1 alg=$2; shift 2
    local outf=$work/$name-$alg.out errf=$work/$name-$alg.err rc=0 line valid n secs
    "$@" >"$outf" 2>"$errf" || rc=$?
    line=$(grep -m 1 '^valid=' "$outf" || true)
    valid=$(sed -n 's/.*valid=\([0-9]*\).*/\1/p' <<<"$line")
    n=$(sed -n 's/.*tokens=\([0-9]*\).*/\1/p' <<<"$line")
    secs=$(sed -n 's/.*seconds=\([0-9.]*\).*/\1/p' <<<"$line")
    if [[ $rc -ne 0 || ${valid:-x} != "$n_tokens" || ${n:-x} != "$n_tokens" || -z $secs ]]; then
        echo "bench: $alg: $name exited $rc, accepting ${valid:-?} of $n_tokens tokens: $*" >&2
        head -n 3 "$outf" | sed 's/^/    stdout: /' >&2
        head -n 5 "$errf" | sed 's/^/    stderr: /' >&2
        die "$alg: the $name peer failed"
    fi
    echo "$secs"
}

run_one() {   # run_one WHO ALG KEY TOKENS: seconds
    case $1 in
        # tokctl: the batch, then a one-token run of the same command (its start-up and key load).
        tokctl) local batch one
                batch=$(time_tokctl "$2" "$3" "$4" "$n_tokens") || exit 1
                one=$(time_tokctl "$2" "$3" "$work/$2.one" 1) || exit 1
                echo "$batch $one" ;;
        jose)   time_peer jose "$2" "$node_bin" "$script_dir/peers_jose.mjs" "$node_dir" "$2" "$3" "$4" "$bench_now" ;;
        pyjwt)  time_peer pyjwt "$2" "$python_bin" "$script_dir/peers_pyjwt.py" "$2" "$3" "$4" "$bench_now" ;;
    esac
}

# ---------------------------------------------------------------- per algorithm
bench_now=$(date +%s)   # tokens are issued at this instant; tokctl and jose verify at it
rows=()                 # "alg|tokens|tokctl/s|jose/s|pyjwt/s|r_jose med|min|max|r_py med|min|max|1-token ms"
start_all=$(now_epoch)

{
    echo "tokctl verify --batch vs npm jose and PyJWT — $(date -u +%Y-%m-%dT%H:%M:%SZ)"
    print_common_header
    echo "  peers:   $jose_version; $pyjwt_version"
    echo "  timing:  $rounds alternated rounds; tokctl = whole process (wall clock), peers = their verify loop only; medians"
    echo "  tokens:  $n_distinct distinct per algorithm, repeated to $n_tokens (a repeated line costs what a fresh token of the same signer would)"
    echo
}

for alg in $algs_wanted; do
    note "$alg: generating key"
    key=$work/$alg.jwk
    make_key "$alg"  # sets verify_key: every verifier gets the public JWK (HS256: the secret)
    note "$alg: signing $n_distinct tokens"
    make_tokens "$alg" "$key"
    tokens=$work/$alg.tokens
    head -n 1 "$tokens" >"$work/$alg.one"

    tl="" jl="" pl="" rj="" rp="" sl=""
    note "$alg: $rounds rounds of tokctl, jose and PyJWT over $n_tokens tokens"
    for ((round = 1; round <= rounds; round++)); do
        # Alternate the order, so a drift in the machine's speed hits all alike.
        if ((round % 2)); then order=(tokctl jose pyjwt); else order=(pyjwt jose tokctl); fi
        declare -A secs=()
        for who in "${order[@]}"; do
            secs[$who]=$(run_one "$who" "$alg" "$verify_key" "$tokens") || exit 1
        done
        read -r batch one <<<"${secs[tokctl]}"   # tokctl's run_one prints two times
        sl+="$(awk -v s="$one" 'BEGIN { printf "%.1f", s * 1000 }') "
        read -r t j p < <(awk -v n="$n_tokens" -v a="$batch" -v b="${secs[jose]}" -v c="${secs[pyjwt]}" \
                              'BEGIN { printf "%.1f %.1f %.1f\n", n / a, n / b, n / c }')
        tl+="$t " jl+="$j " pl+="$p "
        rj+="$(awk -v a="$t" -v b="$j" 'BEGIN { printf "%.4f", a / b }') "
        rp+="$(awk -v a="$t" -v b="$p" 'BEGIN { printf "%.4f", a / b }') "
        note "$alg: round $round ($(IFS=,; echo "${order[*]}")): tokctl $t, jose $j, PyJWT $p tokens/s; tokctl 1-token run ${one}s"
        unset secs
    done
    # shellcheck disable=SC2086  # the lists are space-separated numbers
    {
        read -r tm _ _ < <(median_min_max $tl)
        read -r jm _ _ < <(median_min_max $jl)
        read -r pm _ _ < <(median_min_max $pl)
        read -r rjm rjlo rjhi < <(median_min_max $rj)
        read -r rpm rplo rphi < <(median_min_max $rp)
        read -r sm _ _ < <(median_min_max $sl)
    }
    rows+=("$alg|$n_tokens|$tm|$jm|$pm|$rjm|$rjlo|$rjhi|$rpm|$rplo|$rphi|$sm")
done

elapsed=$(fsub "$(now_epoch)" "$start_all")

# ---------------------------------------------------------------- table
fmt='%-6s %7s %10s %10s %10s %19s %19s %9s\n'
echo
# shellcheck disable=SC2059  # the format is ours
printf "$fmt" alg tokens tokctl/s jose/s PyJWT/s "tokctl/jose" "tokctl/PyJWT" "1-tok ms"
# shellcheck disable=SC2059
printf "$fmt" ------ ------- ---------- ---------- ---------- ------------------- ------------------- ---------
for r in "${rows[@]}"; do
    IFS='|' read -r a n t j p rjm rjlo rjhi rpm rplo rphi sm <<<"$r"
    # shellcheck disable=SC2059
    printf "$fmt" "$a" "$n" "$(printf '%.0f' "$t")" "$(printf '%.0f' "$j")" "$(printf '%.0f' "$p")" \
        "$(printf '%.2f (%.2f-%.2f)' "$rjm" "$rjlo" "$rjhi")" "$(printf '%.2f (%.2f-%.2f)' "$rpm" "$rplo" "$rphi")" "$sm"
done
echo
echo "tokens/s are medians over the rounds; a ratio is the median (min-max) over the rounds of tokctl tokens/s / the peer's in the same round."
echo "tokctl is timed as a whole process (start-up, key load, reading stdin, writing one JSON line per token);"
echo "jose and PyJWT time only their verify loop (no interpreter start-up, imports, file read or key import). Single core each."
echo "1-tok ms: the median wall time of the same tokctl command on one token, i.e. about what start-up and key load add to tokctl's figure."
echo "Whole run: $(printf '%.0f' "$elapsed") s."
exit 0
