#!/usr/bin/env bash
# bench/startup.sh — one-shot start-up: a single `tokctl verify` / `tokctl decode` against the
# one-shot tools doing the same job, in alternated rounds (issue 11 point 4).
#
#   bash bench/startup.sh [--rounds N] [--runs N] [--instructions] [TOKCTL]
#
# Cases (one ES256 token, fixed keys made here):
#   verify-pem       tokctl verify TOKEN --key pub.pem      vs  openssl dgst -sha256 -verify pub.pem
#   verify-jwk       tokctl verify TOKEN --key pub.jwk      vs  the same openssl dgst
#   verify-keystore  tokctl verify TOKEN (keystore keys)    vs  the same openssl dgst
#   decode           tokctl decode TOKEN                    vs  jose jws fmt (latchset), when installed
# Each round times --runs back-to-back runs of each command (wall clock, date +%s%N), alternating
# tokctl and the peer; the table gives the median per-run time over the rounds and the ratio's
# median with its min-max. --instructions also counts instructions once per command under
# valgrind (callgrind), which a noisy machine does not move.
set -euo pipefail
rounds=7
runs=100
instructions=no
tokctl=""
while [[ $# -gt 0 ]]; do
    case $1 in
        --rounds) rounds=$2; shift 2 ;;
        --runs) runs=$2; shift 2 ;;
        --instructions) instructions=yes; shift ;;
        -h|--help) sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        -*) echo "bench: unknown option '$1' (see --help)" >&2; exit 2 ;;
        *) tokctl=$1; shift ;;
    esac
done
[[ $rounds =~ ^[1-9][0-9]*$ && $runs =~ ^[1-9][0-9]*$ ]] || { echo "bench: --rounds/--runs want positive integers" >&2; exit 2; }
tokctl=${tokctl:-$(dirname "$0")/../build/cli/tokctl}
[[ -x $tokctl ]] || { echo "bench: tokctl binary '$tokctl' not found (build it first, or pass its path)" >&2; exit 2; }
tokctl=$(cd "$(dirname "$tokctl")" && pwd)/$(basename "$tokctl")
work=$(mktemp -d "${TMPDIR:-/tmp}/tokctl-startup.XXXXXX")
trap 'rm -rf "$work"' EXIT
cd "$work"
export NO_COLOR=1 TOKCTL_KEYSTORE=$work/ks TOKCTL_CONFIG= TOKCTL_PASSPHRASE=

# Fixtures: a keystore key, its public key as JWK and PEM, a token, and the DER signature over its
# signing input for openssl dgst.
"$tokctl" keys add --alg ES256 -q > /dev/null
kid=$("$tokctl" -o json keys list | /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["keys"][0]["kid"])')
"$tokctl" keys export "$kid" --public > pub.jwk
"$tokctl" keys export "$kid" --public --format pem > pub.pem
token=$("$tokctl" sign --sub bench --exp +1h)
printf '%s' "${token%.*}" > input.bin
/usr/bin/python3 - "$token" <<'PY'
import base64, sys
sig = sys.argv[1].split(".")[2]
raw = base64.urlsafe_b64decode(sig + "=" * (-len(sig) % 4))
def der_int(b):
    b = b.lstrip(b"\0") or b"\0"
    if b[0] & 0x80: b = b"\0" + b
    return b"\x02" + bytes([len(b)]) + b
body = der_int(raw[:32]) + der_int(raw[32:])
open("sig.der", "wb").write(b"\x30" + bytes([len(body)]) + body)
PY
printf '%s' "$token" > token.jws
openssl dgst -sha256 -verify pub.pem -signature sig.der input.bin > /dev/null || { echo "bench: openssl refuses the fixture" >&2; exit 1; }

cases=(verify-pem verify-jwk verify-keystore)
command -v jose > /dev/null && cases+=(decode)
ours() {
    case $1 in
        verify-pem) echo "$tokctl verify $token --key pub.pem -q" ;;
        verify-jwk) echo "$tokctl verify $token --key pub.jwk -q" ;;
        verify-keystore) echo "$tokctl verify $token -q" ;;
        decode) echo "$tokctl decode $token" ;;
    esac
}
peer() {
    case $1 in
        decode) echo "jose jws fmt -i token.jws -c" ;;
        *) echo "openssl dgst -sha256 -verify pub.pem -signature sig.der input.bin" ;;
    esac
}
for c in "${cases[@]}"; do
    # shellcheck disable=SC2046
    $(ours "$c") > /dev/null || { echo "bench: $(ours "$c") failed" >&2; exit 1; }
done

# Per-run microseconds of `runs` back-to-back runs of a command line.
time_runs() {
    local t0 t1 i
    t0=$(date +%s%N)
    for ((i = 0; i < runs; i++)); do $1 > /dev/null; done
    t1=$(date +%s%N)
    echo $(( (t1 - t0) / runs / 1000 ))
}
declare -A ours_us peer_us
for ((r = 1; r <= rounds; r++)); do
    for c in "${cases[@]}"; do
        if ((r % 2)); then
            ours_us[$c]+=" $(time_runs "$(ours "$c")")"; peer_us[$c]+=" $(time_runs "$(peer "$c")")"
        else
            peer_us[$c]+=" $(time_runs "$(peer "$c")")"; ours_us[$c]+=" $(time_runs "$(ours "$c")")"
        fi
    done
done

count_ir() {
    valgrind --tool=callgrind --callgrind-out-file=/dev/null "$@" 2>&1 >/dev/null | sed -n 's/.*Collected : \([0-9]*\).*/\1/p'
}
echo "startup: $rounds rounds x $runs runs per command, $(nproc) cores, $(date -u +%Y-%m-%dT%H:%MZ)"
printf '%-16s %10s %10s %8s %13s' case "tokctl us" "peer us" ratio "ratio min-max"
[[ $instructions == yes ]] && printf ' %12s %12s %7s' "tokctl Ir" "peer Ir" "Ir x"
printf '  peer\n'
for c in "${cases[@]}"; do
    read -r -a o <<< "${ours_us[$c]}"
    read -r -a p <<< "${peer_us[$c]}"
    line=$(/usr/bin/python3 - "${#o[@]}" "${o[@]}" "${p[@]}" <<'PY'
import statistics, sys
n = int(sys.argv[1]); o = list(map(int, sys.argv[2:2 + n])); p = list(map(int, sys.argv[2 + n:]))
ratios = [a / b for a, b in zip(o, p)]
print(f"{statistics.median(o):10.0f} {statistics.median(p):10.0f} {statistics.median(ratios):7.2f}x {min(ratios):5.2f}-{max(ratios):.2f}x")
PY
)
    printf '%-16s %s' "$c" "$line"
    if [[ $instructions == yes ]]; then
        # shellcheck disable=SC2046
        oi=$(count_ir $(ours "$c")); pi=$(count_ir $(peer "$c"))
        printf ' %12s %12s %6.2fx' "$oi" "$pi" "$(/usr/bin/python3 -c "print($oi / $pi)")"
    fi
    printf '  %s\n' "$(peer "$c" | cut -d' ' -f1-3)"
done
