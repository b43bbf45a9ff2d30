# shellcheck shell=bash disable=SC2154  # the variables are set by the sourcing script (see below)
# bench/lib.sh — functions shared by the bench/ scripts (sourced, not run).
#
# The callers set: tokctl (path, "" until given), keep (yes|no), openssl_bin, speed_seconds,
# runs; define usage(). work_dir sets $work; private_copy sets $tokctl_src and points $tokctl at a
# copy; print_common_header sets $load.

# The arguments both scripts handle alike: -h/--help, an unknown option, the tokctl path.
common_arg() {
    case $1 in
        -h|--help) usage; exit 0 ;;
        -*) echo "bench: unknown option '$1' (see --help)" >&2; exit 2 ;;
        *) if [[ -n $tokctl ]]; then echo "bench: more than one tokctl path given" >&2; exit 2; fi
           tokctl=$1 ;;
    esac
}

# Exit 2 unless every argument is a positive integer.
require_positive() {
    local v
    for v in "$@"; do
        [[ $v =~ ^[1-9][0-9]*$ ]] || { echo "bench: '$v' is not a positive integer" >&2; exit 2; }
    done
}

# Exit 2 unless $tokctl is executable and $openssl_bin is found.
require_tools() {
    if [[ ! -x $tokctl ]]; then
        echo "bench: tokctl binary '$tokctl' not found or not executable (build it first, or pass its path)" >&2
        exit 2
    fi
    command -v "$openssl_bin" >/dev/null || { echo "bench: '$openssl_bin' not found" >&2; exit 2; }
}

# work_dir NAME: a temporary directory $work, removed at exit unless --keep, or the run failed
# (then its files are kept for a look).
work_dir() {
    work=$(mktemp -d "${TMPDIR:-/tmp}/$1.XXXXXX")
    trap cleanup EXIT
}
# shellcheck disable=SC2317  # invoked by the EXIT trap
cleanup() {
    local rc=$?
    if [[ $keep == no && $rc -eq 0 ]]; then rm -rf "$work"; else echo "bench: files kept in $work" >&2; fi
}

die() {
    echo "bench: error: $*" >&2
    exit 1
}
note() { echo "bench: $*" >&2; }

# Run a command, keep its stderr; on failure show the command and its stderr, then die.
run_or_die() {
    local err=$work/last.err
    local rc=0
    "$@" 2>"$err" || rc=$?
    if ((rc)); then
        echo "bench: command failed (exit $rc): $*" >&2
        sed 's/^/    /' "$err" >&2
        die "giving up"
    fi
}

now_epoch() { date +%s.%N; }
# median_min_max N...: "MEDIAN MIN MAX" of the numbers given.
median_min_max() {
    printf '%s\n' "$@" | sort -g |
        awk '{ v[NR] = $1 } END { m = NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2; print m, v[1], v[NR] }'
}
# a - b with 6 decimals
fsub() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.6f", a - b }'; }
# The smaller of two times; an empty first one counts as none.
fmin() {
    if [[ -z $1 ]] || awk -v a="$2" -v b="$1" 'BEGIN { exit !(a < b) }'; then echo "$2"; else echo "$1"; fi
}

# speed_mr OUT ARGS...: `openssl speed -seconds S -elapsed -mr ARGS` (machine-readable) into OUT;
# on failure show OUT and die.
speed_mr() {
    local out=$1; shift
    "$openssl_bin" speed -seconds "$speed_seconds" -elapsed -mr "$@" >"$out" 2>&1 ||
        { sed 's/^/    /' "$out" >&2; die "openssl speed $* failed"; }
}

# Run a private copy, so that a rebuild of the binary during the run (a relink
# leaves it missing or half-written for a moment) cannot spoil a measurement.
private_copy() {
    tokctl_src=$tokctl
    tokctl=$work/tokctl
    cp "$tokctl_src" "$tokctl" || die "cannot copy $tokctl_src"
}

# The header lines both reports start with (after their title): tokctl, build type, openssl,
# load average (kept in $load) and CPU.
print_common_header() {
    echo "  tokctl:  $tokctl_src ($("$tokctl" --version 2>/dev/null | head -n 1 || echo 'version unknown'))"
    build_type=$(sed -n 's/^CMAKE_BUILD_TYPE:[A-Z]*=//p' "$(dirname "$tokctl_src")/../CMakeCache.txt" 2>/dev/null || true)
    [[ -n $build_type ]] && echo "  build:   CMAKE_BUILD_TYPE=$build_type$( [[ $build_type == Debug ]] && echo ' (Debug: figures are not meaningful)')"
    echo "  openssl: $("$openssl_bin" version)"
    load=$(cut -d' ' -f1 /proc/loadavg 2>/dev/null || echo '?')
    busy=$(awk -v l="$load" -v n="$(nproc)" 'BEGIN { if (l + 0 > n * 0.5) print " (machine busy: figures will be low and noisy)" }')
    echo "  load:    1-min load average $load at start$busy"
    echo "  cpu:     $(awk -F': *' '/^model name/ { print $2; exit }' /proc/cpuinfo 2>/dev/null || echo unknown), $(nproc) cores"
}

# ---- keys and tokens for the verify benchmarks (verify.sh, peers.sh) ----------------------------
declare -A bench_gen_args=(
    [ES256]="--alg ES256"
    [RS256]="--alg RS256 --bits 2048"
    [EdDSA]="--alg EdDSA --crv Ed25519"
    [HS256]="--alg HS256"
)

# make_key ALG: generates $work/ALG.jwk (the signing key) and sets verify_key to what a verifier
# gets: the public JWK from `tokctl keys convert --public --to jwk`, or the secret for HS256.
make_key() {
    local alg=$1
    local key=$work/$alg.jwk pub=$work/$alg.pub.jwk
    # shellcheck disable=SC2086  # the arguments hold several words on purpose
    run_or_die "$tokctl" keys generate ${bench_gen_args[$alg]} --out "$key"
    verify_key=$key
    if [[ $alg != HS256 ]]; then
        "$tokctl" keys convert "$key" --public --to jwk >"$pub" 2>"$work/convert.err" ||
            { sed 's/^/    /' "$work/convert.err" >&2; die "$alg: tokctl keys convert --public --to jwk failed"; }
        verify_key=$pub
    fi
}

# make_tokens ALG KEY: signs $n_distinct distinct tokens (distinct sub and jti, iss, iat and exp)
# at $bench_now into $work/ALG.distinct, then repeats them to $n_tokens lines in $work/ALG.tokens.
# A repeated line costs a verifier what a fresh token from the same signer would: tokctl keeps
# nothing between lines but the parse of the last header it saw (which every token of one signer
# shares), and neither jose's jwtVerify nor PyJWT's decode keeps anything. Signing 20,000 tokens
# one process at a time would only make the benchmark slow.
make_tokens() {
    local alg=$1 key=$2 i tok
    local distinct=$work/$alg.distinct tokens=$work/$alg.tokens
    : >"$distinct"
    for ((i = 1; i <= n_distinct; i++)); do
        tok=$(run_or_die "$tokctl" --now "$bench_now" sign --key "$key" \
                  --iss https://bench.tokctl.test --sub "user-$i" --exp +1h --jti auto </dev/null)
        [[ $tok =~ ^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$ ]] ||
            die "$alg: 'tokctl sign' printed something that is not a compact JWS: '$tok'"
        printf '%s\n' "$tok" >>"$distinct"
    done
    [[ $(sort -u "$distinct" | wc -l) -eq $n_distinct ]] || die "$alg: tokctl sign produced duplicate tokens"
    awk -v n="$n_tokens" '{ t[NR] = $0 } END { for (i = 0; i < n; i++) print t[i % NR + 1] }' \
        "$distinct" >"$tokens"
}

# ---- openssl speed for the verify benchmarks (verify.sh, floor.sh) ------------------------------
# The 1-thread goals of issue 11 point 2: tokens/s over the primitive's openssl speed rate.
declare -A verify_goal=([ES256]=0.95 [RS256]=0.85 [EdDSA]=0.95 [HS256]=0.30)
declare -A speed_prim=([ES256]=ecdsap256 [RS256]=rsa2048 [EdDSA]=ed25519 [HS256]=hmac-sha256)
declare -A speed_label=([ES256]="ecdsap256" [RS256]="rsa2048" [EdDSA]="ed25519" [HS256]="hmac(sha256)")

# Prints OpenSSL's verify operations per second (and, for HMAC, the block size used) for one primitive, parsed from
# `openssl speed -mr` (machine-readable) output. Each call runs for about
# 2 x --seconds for the signature algorithms (OpenSSL 3.0 always times sign, then
# verify) and --seconds for HMAC.
#   -mr lines used:  +F2:<n>:2048:<sign/s>:<verify/s>             (rsa2048)
#                    +F4:<n>:256:<sign/s>:<verify/s>              (ecdsap256)
#                    +F6:<n>:253:Ed25519:<sign/s>:<verify/s>      (ed25519)
#                    +R:<count>:hmac(sha256):<seconds>            (HMAC, one block size)
#                    +H:<size>:... / +F:<n>:hmac(sha256):<bytes/s>... (HMAC, default sizes)
openssl_verify_rate() {
    local prim=$1 size=${2:-0} out=$work/speed-$1.txt tag
    if [[ ${3:-1} != 1 ]]; then openssl_multi_rate "$@"; return; fi
    case $prim in
        ecdsap256) tag='+F4:' ;;
        rsa2048)   tag='+F2:' ;;
        ed25519)   tag='+F6:' ;;
        hmac-sha256)
            # HMAC over a message the size of the JWS signing input. OpenSSL 3.0's
            # `-hmac sha256` re-initialises the MAC with the same key for every
            # block, as a JWS verifier does for every token; -bytes sets the block
            # size exactly. Should -bytes be refused, fall back to the default
            # block sizes and take the one nearest to the signing input.
            if "$openssl_bin" speed -seconds "$speed_seconds" -elapsed -mr -hmac sha256 -bytes "$size" >"$out" 2>&1; then
                awk -F: -v want="$size" '$1 == "+R" { if ($4 > 0) { printf "%.1f %d\n", $2 / $4, want; found = 1; exit } }
                         END { if (!found) exit 1 }' "$out" && return 0
            fi
            speed_mr "$out" -hmac sha256
            awk -F: -v want="$size" '
                $1 == "+H" { for (i = 2; i <= NF; i++) sz[i] = $i; n = NF }
                $1 == "+F" && $3 == "hmac(sha256)" {
                    best = 0
                    for (i = 2; i <= n; i++) {
                        d = sz[i] - want; if (d < 0) d = -d
                        if (!best || d < bestd) { best = i; bestd = d }
                    }
                    # +F fields: +F, index, name, then bytes/s per size (field i+2 for +H field i)
                    printf "%.1f %d\n", $(best + 2) / sz[best], sz[best]; found = 1; exit
                }
                END { if (!found) exit 1 }' "$out" || die "could not parse openssl speed HMAC output (see $out)"
            note "openssl speed -bytes unavailable: HMAC rate taken at the nearest default block size"
            return 0 ;;
        *) die "internal: unknown primitive $prim" ;;
    esac
    speed_mr "$out" "$prim"
    awk -F: -v tag="$tag" 'index($0, tag) == 1 { printf "%.1f\n", $NF; found = 1; exit }
                           END { if (!found) exit 1 }' "$out" ||
        die "could not find '$tag' verify rate in openssl speed $prim output (see $out)"
}

# openssl_multi_rate PRIM SIZE N: the same rate with `openssl speed -multi N` (N processes, one per
# core), summed over them: what the machine gives N threads of the bare primitive, to set beside
# `verify --batch --threads N`. The -mr summary is the last line with the rate's tag (for HMAC
# OpenSSL 3.0 labels it hmac(md5); its bytes/s are the -hmac sha256 figures of the children).
openssl_multi_rate() {
    local prim=$1 size=$2 n=$3 out=$work/speed-$1-multi$3.txt tag
    case $prim in
        ecdsap256) tag='+F4:' ;;
        rsa2048)   tag='+F2:' ;;
        ed25519)   tag='+F6:' ;;
        hmac-sha256)
            "$openssl_bin" speed -seconds "$speed_seconds" -elapsed -mr -multi "$n" -hmac sha256 -bytes "$size" >"$out" 2>&1 ||
                { sed 's/^/    /' "$out" >&2; die "openssl speed -multi $n -hmac sha256 failed"; }
            awk -F: -v size="$size" '$1 == "+F" { r = $4 / size } END { if (!r) exit 1; printf "%.1f %d\n", r, size }' "$out" ||
                die "could not parse openssl speed -multi HMAC output (see $out)"
            return 0 ;;
        *) die "internal: unknown primitive $prim" ;;
    esac
    speed_mr "$out" -multi "$n" "$prim"
    awk -v tag="$tag" 'index($0, tag) == 1 { n = split($0, f, ":"); r = f[n] } END { if (!r) exit 1; printf "%.1f\n", r }' "$out" ||
        die "could not find the '$tag' -multi $n summary in openssl speed output (see $out)"
}
