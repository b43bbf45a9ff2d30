#!/usr/bin/env bash
# bench/serve.sh — how fast `tokctl serve` answers, measured with wrk on loopback.
#
# Usage: bench/serve.sh [TOKCTL] [--duration S] [--connections N] [--rounds R] [--keep]
#
# One server (2 threads on the 2-core machine) on a fresh keystore, store and policy; wrk (2
# threads, N keep-alive connections) runs each flow for S seconds, the flows alternating for R
# rounds; the median req/s and its min-max, and the median p99 latency, are reported per flow:
#   cc-jwt       POST /oauth/token client_credentials, ES256 JWT access token
#   cc-opaque    POST /oauth/token client_credentials, opaque token (a store write each)
#   introspect   POST /oauth/introspect, an opaque token, JSON answer (a store read each)
#   phantom      POST /oauth/introspect, Accept: application/jwt (a read and an ES256 signature)
#   jwks         GET /oauth/jwks
# and, in the same run, `openssl speed ecdsap256` (its sign/s on one core) for the JWT flows.
# wrk and the server share the 2 cores, as they would on one box: the ratios are what counts.
# Every wrk run must see only 2xx answers, or the flow reads FAILED and the script exits 1.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
tokctl=""
keep=no
openssl_bin=openssl
duration=8
connections=64
rounds=3

usage() { sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//'; }
# shellcheck source=bench/lib.sh
source "$here/lib.sh"

while [[ $# -gt 0 ]]; do
    case $1 in
        --duration) duration=${2:?}; shift 2 ;;
        --connections) connections=${2:?}; shift 2 ;;
        --rounds) rounds=${2:?}; shift 2 ;;
        --keep) keep=yes; shift ;;
        *) common_arg "$1"; shift ;;
    esac
done
require_positive "$duration" "$connections" "$rounds"
tokctl=${tokctl:-$here/../build/cli/tokctl}
require_tools
command -v wrk >/dev/null || die "wrk not found (Debian: apt install wrk)"
command -v jq >/dev/null || die "jq not found (Debian: apt install jq)"
work_dir tokctl-bench-serve

# The service: a keystore with an ES256 key, a policy with a JWT client and an opaque client.
ks=$work/ks
"$tokctl" --keystore "$ks" keys add --alg ES256 -q >/dev/null
printf 'issuer: https://bench.test\nscopes:\n  - name: read\n' > "$work/p.yaml"
secret_jwt=$("$tokctl" --config "$work/p.yaml" -o json clients add cc-jwt --scope read | jq -r .client_secret)
secret_opaque=$("$tokctl" --config "$work/p.yaml" -o json clients add cc-opaque --scope read --format opaque |
                jq -r .client_secret)
"$tokctl" --config "$work/p.yaml" --keystore "$ks" serve --listen 127.0.0.1:0 --threads 2 \
    > "$work/ready.json" 2> /dev/null &
server=$!
trap 'kill $server 2>/dev/null; cleanup' EXIT
for _ in $(seq 100); do [[ -s $work/ready.json ]] && break; sleep 0.05; done
[[ -s $work/ready.json ]] || die "the server did not start"
url=http://$(jq -r .listen "$work/ready.json")
basic_jwt=$(printf 'cc-jwt:%s' "$secret_jwt" | base64 -w0)
basic_opaque=$(printf 'cc-opaque:%s' "$secret_opaque" | base64 -w0)
opaque_token=$(curl -sf -H "Authorization: Basic $basic_opaque" -d grant_type=client_credentials -d scope=read \
               "$url/oauth/token" | jq -r .access_token)
[[ -n $opaque_token && $opaque_token != null ]] || die "no opaque token to introspect"

# wrk scripts: a POST body and headers per flow; any non-2xx answer is counted.
lua() {  # lua NAME METHOD BODY HEADER...
    local name=$1 method=$2 body=$3
    shift 3
    {
        echo "wrk.method = \"$method\""
        echo "wrk.body = \"$body\""
        echo 'wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"'
        for h in "$@"; do echo "wrk.headers[\"${h%%:*}\"] = \"${h#*: }\""; done
        echo 'bad = 0'
        echo 'response = function(status) if status >= 300 then bad = bad + 1 end end'
        echo 'done = function() io.stderr:write("non2xx " .. bad .. "\n") end'
    } > "$work/$name.lua"
}
lua cc-jwt POST "grant_type=client_credentials&scope=read" "Authorization: Basic $basic_jwt"
lua cc-opaque POST "grant_type=client_credentials&scope=read" "Authorization: Basic $basic_opaque"
lua introspect POST "token=$opaque_token" "Authorization: Basic $basic_opaque"
lua phantom POST "token=$opaque_token" "Authorization: Basic $basic_opaque" "Accept: application/jwt"
lua jwks GET "" "X-Bench: 1"
flows=(cc-jwt cc-opaque introspect phantom jwks)
path_of() { case $1 in cc-*) echo /oauth/token ;; introspect|phantom) echo /oauth/introspect ;; jwks) echo /oauth/jwks ;; esac; }

# wrk's "Requests/sec" and the 99% latency in ms.
run_wrk() {  # run_wrk FLOW -> "RPS P99_MS NON2XX"
    local out
    out=$(wrk -t2 -c"$connections" -d"${duration}s" --latency -s "$work/$1.lua" "$url$(path_of "$1")" 2>&1)
    local rps p99 bad
    rps=$(awk '/^Requests\/sec:/ {print $2}' <<<"$out")
    p99=$(awk '$1 == "99%" {v=$2; if (v ~ /us$/) {sub(/us/,"",v); v=v/1000} else if (v ~ /ms$/) {sub(/ms/,"",v)} else if (v ~ /s$/) {sub(/s/,"",v); v=v*1000}; print v}' <<<"$out")
    bad=$(awk '/^non2xx/ {print $2}' <<<"$out")
    echo "${rps:-0} ${p99:-0} ${bad:-?}"
}

declare -A rps p99 failed
speeds=()
for r in $(seq "$rounds"); do
    note "round $r/$rounds"
    for f in "${flows[@]}"; do
        read -r x y bad < <(run_wrk "$f")
        rps[$f]+="$x "
        p99[$f]+="$y "
        [[ $bad == 0 ]] || failed[$f]=$bad
    done
    s=$("$openssl_bin" speed -elapsed -seconds 3 -mr ecdsap256 2>/dev/null | awk -F: 'index($0, "+F4:") == 1 {print $4; exit}')
    speeds+=("${s:-0}")
done

median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
minmax() { tr ' ' '\n' | grep -v '^$' | sort -g | awk 'NR==1 {lo=$1} {hi=$1} END {printf "%.0f-%.0f", lo, hi}'; }
sign=$(printf '%s ' "${speeds[@]}" | median)

echo "tokctl serve, wrk -t2 -c$connections, ${duration}s per flow, $rounds alternated rounds; $(nproc) cores"
echo "openssl speed ecdsap256 (one core): median $(printf '%.0f' "$sign") sign/s"
printf '%-11s %12s %15s %10s %s\n' flow "req/s" "min-max" "p99 ms" "vs sign/s"
status=0
for f in "${flows[@]}"; do
    m=$(echo "${rps[$f]}" | median)
    ratio=""
    [[ $f == cc-jwt || $f == phantom ]] && ratio=$(awk -v a="$m" -v b="$sign" 'BEGIN {if (b > 0) printf "%.2fx", a / b}')
    if [[ -n ${failed[$f]:-} ]]; then
        printf '%-11s %12s   (%s non-2xx answers)\n' "$f" FAILED "${failed[$f]}"
        status=1
    else
        printf '%-11s %12.0f %15s %10.2f %s\n' "$f" "$m" "$(echo "${rps[$f]}" | minmax)" "$(echo "${p99[$f]}" | median)" "$ratio"
    fi
done
exit $status
