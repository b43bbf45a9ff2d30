#!/usr/bin/env bash
# bench/serve.sh — how fast `tokctl serve` answers, measured with wrk on loopback, side by side
# with node oidc-provider configured for the same flows.
#
# Usage: bench/serve.sh [TOKCTL] [--duration S] [--connections N] [--rounds R] [--prefill N]
#                       [--no-peer] [--floor] [--keep]
#
# One server (2 threads on the 2-core machine) on a fresh keystore, store and policy; wrk (2
# threads, N keep-alive connections) runs each flow for S seconds, the flows (and the two
# servers) alternating for R rounds; the median req/s and its min-max, and the median p99
# latency, are reported per flow:
#   cc-jwt       POST /oauth/token client_credentials, ES256 JWT access token
#   cc-opaque    POST /oauth/token client_credentials, opaque token (a store write each)
#   introspect   POST /oauth/introspect, an opaque token, JSON answer (a store read each)
#   phantom      POST /oauth/introspect, Accept: application/jwt (a read and an ES256 signature)
#   jwks         GET /oauth/jwks
# and, in the same run, `openssl speed ecdsap256` (its sign/s on one core) for the JWT flows.
# --prefill N issues N opaque tokens into the store first (the store-size dependence).
# The peer: node oidc-provider (pinned in tests/interop/node, installed by scripts/install-deps)
# started by tests/interop/node/oidc_provider_server.mjs, one process (its in-memory store is not
# shared across processes), the same flows except phantom; --no-peer skips it. Its store is
# memory only, tokctl's is a durable SQLite file: the comparison favours the peer.
# wrk and the server share the 2 cores, as they would on one box: the ratios are what counts.
# Each flow's request must be answered 200 once (curl) before the rounds, and no wrk run may count
# an answer of status 400 or more or a socket error; otherwise the flow reads FAILED and the script
# exits 1. (wrk counts no 1xx or 3xx answer as an error: none of these endpoints sends one.)
# --floor also measures, in the same rounds with the same wrk and the flow's own request, bare
# servers on the same Asio threading (bench/serve_floor.cpp, built as tokctl_bench_serve_floor):
# `raw` (Asio alone: read to the blank line, write a preformatted answer) for every flow but
# phantom, `beast` (Beast's parser and serializer) for jwks, `raw-es256` (raw plus one ES256
# signature) for cc-jwt. No server on Asio answers faster than its floor on this machine, so
# floor / peer is the largest ratio to the peer any such server could show here.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
tokctl=""
keep=no
openssl_bin=openssl
duration=8
connections=64
rounds=3
prefill=0
peer=auto
floor=no

usage() { sed -n '2,32p' "$0" | sed 's/^# \{0,1\}//'; }
# shellcheck source=bench/lib.sh
source "$here/lib.sh"

while [[ $# -gt 0 ]]; do
    case $1 in
        --duration) duration=${2:?}; shift 2 ;;
        --connections) connections=${2:?}; shift 2 ;;
        --rounds) rounds=${2:?}; shift 2 ;;
        --prefill) prefill=${2:?}; shift 2 ;;
        --no-peer) peer=no; shift ;;
        --floor) floor=yes; shift ;;
        --keep) keep=yes; shift ;;
        *) common_arg "$1"; shift ;;
    esac
done
require_positive "$duration" "$connections" "$rounds"
[[ $prefill == 0 ]] || require_positive "$prefill"
tokctl=${tokctl:-$here/../build/cli/tokctl}
require_tools
command -v wrk >/dev/null || die "wrk not found (Debian: apt install wrk)"
command -v jq >/dev/null || die "jq not found (Debian: apt install jq)"
peer_dir=$here/../tests/interop/node
if [[ $peer == auto ]]; then
    if command -v node >/dev/null && [[ -d $peer_dir/node_modules/oidc-provider ]]; then
        peer=yes
    else
        peer=no
        note "oidc-provider is not installed (scripts/install-deps installs it): no side-by-side columns"
    fi
fi
work_dir tokctl-bench-serve

# The service: a keystore with an ES256 key, a policy with a JWT client and an opaque client.
ks=$work/ks
"$tokctl" --keystore "$ks" keys add --alg ES256 -q >/dev/null
printf 'issuer: https://bench.test\nscopes:\n  - name: read\n' > "$work/p.yaml"
secret_jwt=$("$tokctl" --config "$work/p.yaml" -o json clients add cc-jwt --scope read | jq -r .client_secret)
secret_opaque=$("$tokctl" --config "$work/p.yaml" -o json clients add cc-opaque --scope read --format opaque |
                jq -r .client_secret)
if ((prefill > 0)); then
    note "issuing $prefill opaque tokens into the store"
    "$tokctl" --config "$work/p.yaml" --keystore "$ks" issue --client-id cc-opaque --format opaque --sub load \
        --scope read --ttl 1d --count "$prefill" > /dev/null
fi
"$tokctl" --config "$work/p.yaml" --keystore "$ks" serve --listen 127.0.0.1:0 --threads 2 \
    > "$work/ready.json" 2> /dev/null &
server=$!
peer_pid=""
floor_pids=()
trap 'kill $server $peer_pid "${floor_pids[@]}" 2>/dev/null; cleanup' EXIT
wait_ready() {  # wait_ready FILE WHAT
    for _ in $(seq 200); do [[ -s $1 ]] && return; sleep 0.05; done
    die "$2 did not start"
}
wait_ready "$work/ready.json" "tokctl serve"
url=http://$(jq -r .listen "$work/ready.json")
basic_jwt=$(printf 'cc-jwt:%s' "$secret_jwt" | base64 -w0)
basic_opaque=$(printf 'cc-opaque:%s' "$secret_opaque" | base64 -w0)
opaque_token=$(curl -sf -H "Authorization: Basic $basic_opaque" -d grant_type=client_credentials -d scope=read \
               "$url/oauth/token" | jq -r .access_token)
[[ -n $opaque_token && $opaque_token != null ]] || die "no opaque token to introspect"

if [[ $peer == yes ]]; then
    clients=$(jq -cn --arg a "$secret_jwt" --arg b "$secret_opaque" \
        '[{client_id: "cc-jwt", client_secret: $a, format: "jwt"}, {client_id: "cc-opaque", client_secret: $b, format: "opaque"}]')
    node "$peer_dir/oidc_provider_server.mjs" 0 https://peer.bench.test "$clients" > "$work/peer.json" 2> "$work/peer.err" &
    peer_pid=$!
    wait_ready "$work/peer.json" "oidc-provider"
    peer_url=http://$(jq -r .listen "$work/peer.json")
    peer_token=$(curl -sf -H "Authorization: Basic $basic_opaque" -d grant_type=client_credentials -d scope=read \
                 "$peer_url/token" | jq -r .access_token)
    [[ -n $peer_token && $peer_token != null ]] || die "oidc-provider issued no opaque token"
    [[ $(curl -sf -H "Authorization: Basic $basic_opaque" -d "token=$peer_token" "$peer_url/token/introspection" |
         jq -r .active) == true ]] || die "oidc-provider does not introspect its own token"
fi

declare -A floor_url
if [[ $floor == yes ]]; then
    floor_bin=$here/../build/bench/tokctl_bench_serve_floor
    if [[ ! -x $floor_bin ]]; then
        note "building tokctl_bench_serve_floor"
        cmake --build "$here/../build" --target tokctl_bench_serve_floor > "$work/floor-build.log" 2>&1 ||
            die "cannot build tokctl_bench_serve_floor (see $work/floor-build.log)"
    fi
    curl -sf "$url/oauth/jwks" > "$work/jwks.body" || die "no JWKS from tokctl serve"
    for m in raw beast raw-es256; do
        "$floor_bin" "$m" "$work/jwks.body" 2 > "$work/floor-$m.addr" 2> "$work/floor-$m.err" &
        floor_pids+=($!)
        wait_ready "$work/floor-$m.addr" "tokctl_bench_serve_floor $m"
        floor_url[$m]=http://$(head -1 "$work/floor-$m.addr")
    done
fi
# The floors measured per flow (--floor).
floors_of() { case $1 in jwks) echo raw beast ;; cc-jwt) echo raw-es256 ;; phantom) echo "" ;; *) echo raw ;; esac; }

# wrk scripts: a POST body and headers per flow. wrk itself counts answers of status 400 and up
# ("Non-2xx or 3xx responses") and socket errors; any fails the flow (run_wrk). A Lua response()
# callback, which would see every status, costs wrk a Lua call and a header table per answer on
# the cores the server also runs on (JWKS: 58k req/s with one, 69-79k without, same binary), so
# each flow's exact answer (200) is checked once with curl before the rounds instead (check_flow).
lua() {  # lua NAME METHOD BODY HEADER...
    local name=$1 method=$2 body=$3
    shift 3
    {
        echo "wrk.method = \"$method\""
        echo "wrk.body = \"$body\""
        echo 'wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"'
        for h in "$@"; do echo "wrk.headers[\"${h%%:*}\"] = \"${h#*: }\""; done
    } > "$work/$name.lua"
    {
        echo "-X $method"
        [[ $method == GET ]] || echo "--data-raw $body"
        echo "-H Content-Type:application/x-www-form-urlencoded"
        for h in "$@"; do echo "-H ${h%%:*}:${h#*: }"; done
    } > "$work/$name.curl"
}
check_flow() {  # check_flow NAME URL: the flow's request once, answered 200
    local args=() status
    while read -r opt val; do args+=("$opt" "$val"); done < "$work/$1.curl"
    status=$(curl -s -o /dev/null -w '%{http_code}' "${args[@]}" "$2")
    [[ $status == 200 ]] || die "$1: $2 answered $status, not 200"
}
lua cc-jwt POST "grant_type=client_credentials&scope=read" "Authorization: Basic $basic_jwt"
lua cc-opaque POST "grant_type=client_credentials&scope=read" "Authorization: Basic $basic_opaque"
lua introspect POST "token=$opaque_token" "Authorization: Basic $basic_opaque"
lua phantom POST "token=$opaque_token" "Authorization: Basic $basic_opaque" "Accept: application/jwt"
lua jwks GET "" "X-Bench: 1"
if ((prefill > 0)); then
    # Introspect tokens drawn at random from the prefilled store, not one hot row.
    "$tokctl" --config "$work/p.yaml" --keystore "$ks" issue --client-id cc-opaque --format opaque --sub load \
        --scope read --ttl 1d --count 1000 > "$work/sample.txt"
    sed -i "1i wrk.path = \"/oauth/introspect\"\ntoks = {}\nfor l in io.lines(\"$work/sample.txt\") do toks[#toks + 1] = l end\nrequest = function() return wrk.format(nil, nil, nil, \"token=\" .. toks[math.random(#toks)]) end" \
        "$work/introspect.lua"
fi
flows=(cc-jwt cc-opaque introspect phantom jwks)
path_of() { case $1 in cc-*) echo /oauth/token ;; introspect|phantom) echo /oauth/introspect ;; jwks) echo /oauth/jwks ;; esac; }
if [[ $peer == yes ]]; then
    lua p-cc-jwt POST "grant_type=client_credentials&scope=read" "Authorization: Basic $basic_jwt"
    lua p-cc-opaque POST "grant_type=client_credentials&scope=read" "Authorization: Basic $basic_opaque"
    lua p-introspect POST "token=$peer_token" "Authorization: Basic $basic_opaque"
    lua p-jwks GET "" "X-Bench: 1"
fi
peer_path_of() { case $1 in cc-*) echo /token ;; introspect) echo /token/introspection ;; jwks) echo /jwks ;; *) echo "" ;; esac; }

# wrk's "Requests/sec" and the 99% latency in ms.
run_wrk() {  # run_wrk LUA URL -> "RPS P99_MS NON2XX"
    local out
    out=$(wrk -t2 -c"$connections" -d"${duration}s" --latency -s "$work/$1.lua" "$2" 2>&1) || true
    local rps p99 bad
    rps=$(awk '/^Requests\/sec:/ {print $2}' <<<"$out")
    p99=$(awk '$1 == "99%" {v=$2; if (v ~ /us$/) {sub(/us/,"",v); v=v/1000} else if (v ~ /ms$/) {sub(/ms/,"",v)} else if (v ~ /s$/) {sub(/s/,"",v); v=v*1000}; print v}' <<<"$out")
    bad=$(awk '/Non-2xx or 3xx responses:/ {n += $NF} /Socket errors:/ {gsub(/,/, ""); n += $4 + $6 + $8 + $10} END {print n + 0}' <<<"$out")
    if [[ -z $rps ]]; then  # no run at all (the server is gone): a failure, said
        note "$1: wrk: $(head -1 <<<"$out")"
        bad=$((${bad:-0} + 1))
    fi
    echo "${rps:-0} ${p99:-0} ${bad:-?}"
}

for f in "${flows[@]}"; do
    check_flow "$f" "$url$(path_of "$f")"
    pp=$(peer_path_of "$f")
    if [[ $peer == yes && -n $pp ]]; then check_flow "p-$f" "$peer_url$pp"; fi
done

declare -A rps p99 failed prps pp99 pfailed frps ffailed
speeds=()
for r in $(seq "$rounds"); do
    note "round $r/$rounds"
    for f in "${flows[@]}"; do
        read -r x y bad < <(run_wrk "$f" "$url$(path_of "$f")")
        rps[$f]+="$x "
        p99[$f]+="$y "
        [[ $bad == 0 ]] || failed[$f]=$bad
        pp=$(peer_path_of "$f")
        if [[ $peer == yes && -n $pp ]]; then
            read -r x y bad < <(run_wrk "p-$f" "$peer_url$pp")
            prps[$f]+="$x "
            pp99[$f]+="$y "
            [[ $bad == 0 ]] || pfailed[$f]=$bad
        fi
        if [[ $floor == yes ]]; then
            for m in $(floors_of "$f"); do
                read -r x y bad < <(run_wrk "$f" "${floor_url[$m]}$(path_of "$f")")
                frps[$f/$m]+="$x "
                [[ $bad == 0 ]] || ffailed[$f/$m]=$bad
            done
        fi
    done
    s=$("$openssl_bin" speed -elapsed -seconds 3 -mr ecdsap256 2>/dev/null | awk -F: 'index($0, "+F4:") == 1 {print $4; exit}')
    speeds+=("${s:-0}")
done

median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
minmax() { tr ' ' '\n' | grep -v '^$' | sort -g | awk 'NR==1 {lo=$1} {hi=$1} END {printf "%.0f-%.0f", lo, hi}'; }
sign=$(printf '%s ' "${speeds[@]}" | median)

echo "tokctl serve, wrk -t2 -c$connections, ${duration}s per flow, $rounds alternated rounds; $(nproc) cores"
echo "store: $((prefill + 1)) tokens before the run$( ((prefill > 0)) && echo ", introspection of 1000 of them at random")"
echo "openssl speed ecdsap256 (one core): median $(printf '%.0f' "$sign") sign/s"
[[ $peer == yes ]] && echo "peer: node oidc-provider $(jq -r .version "$peer_dir/node_modules/oidc-provider/package.json") (node $(node --version)), one process, in-memory store"
printf '%-11s %10s %13s %8s %10s %10s %8s %8s\n' flow "req/s" "min-max" "p99 ms" "vs sign/s" "peer req/s" "peer p99" "vs peer"
status=0
for f in "${flows[@]}"; do
    if [[ -n ${failed[$f]:-} ]]; then
        printf '%-11s %10s   (%s answers >= 400 or socket errors)\n' "$f" FAILED "${failed[$f]}"
        status=1
        continue
    fi
    m=$(echo "${rps[$f]}" | median)
    ratio=""
    [[ $f == cc-jwt || $f == phantom ]] && ratio=$(awk -v a="$m" -v b="$sign" 'BEGIN {if (b > 0) printf "%.2fx", a / b}')
    peer_rps="-" peer_p99="-" vs="-"
    if [[ -n ${pfailed[$f]:-} ]]; then
        peer_rps="FAILED"
        status=1
    elif [[ -n ${prps[$f]:-} ]]; then
        pm=$(echo "${prps[$f]}" | median)
        peer_rps=$(printf '%.0f' "$pm")
        peer_p99=$(printf '%.2f' "$(echo "${pp99[$f]}" | median)")
        vs=$(awk -v a="$m" -v b="$pm" 'BEGIN {if (b > 0) printf "%.1fx", a / b}')
    fi
    printf '%-11s %10.0f %13s %8.2f %10s %10s %8s %8s\n' "$f" "$m" "$(echo "${rps[$f]}" | minmax)" \
        "$(echo "${p99[$f]}" | median)" "${ratio:--}" "$peer_rps" "$peer_p99" "$vs"
done
if [[ $floor == yes ]]; then
    echo
    echo "floors: bare servers on the same Asio threading, the same wrk and request (bench/serve_floor.cpp)"
    printf '%-11s %-10s %12s %13s %14s %14s\n' flow floor "floor req/s" "min-max" "tokctl/floor" "floor/peer"
    for f in "${flows[@]}"; do
        for m in $(floors_of "$f"); do
            if [[ -n ${ffailed[$f/$m]:-} ]]; then
                printf '%-11s %-10s %12s\n' "$f" "$m" FAILED
                status=1
                continue
            fi
            fm=$(echo "${frps[$f/$m]}" | median)
            m_tok=$(echo "${rps[$f]}" | median)
            of_peer="-"
            [[ -n ${prps[$f]:-} ]] && of_peer=$(awk -v a="$fm" -v b="$(echo "${prps[$f]}" | median)" 'BEGIN {if (b > 0) printf "%.1fx", a / b}')
            printf '%-11s %-10s %12.0f %13s %14s %14s\n' "$f" "$m" "$fm" "$(echo "${frps[$f/$m]}" | minmax)" \
                "$(awk -v a="$m_tok" -v b="$fm" 'BEGIN {if (b > 0) printf "%.2f", a / b}')" "$of_peer"
        done
    done
fi
exit $status
