#!/usr/bin/env bash
# bench/store.sh — the SQLite token store as it grows (issue 11 points 1 and 5): opaque issuance
# rate, bytes written and introspection latency at each store size, against an empty store.
#
#   bash bench/store.sh [--sizes 10000,100000,1000000] [--batch 10000] [--rounds 5]
#                       [--lookups 2000] [--keep] [TOKCTL]
#
# For each size S (ascending; the store grows to at least S rows with untimed `issue --count`
# chunks of 10^5; the table's "rows" is the count the rounds start from), --rounds rounds of:
#   issue       tokctl issue --format opaque --count BATCH: tokens/s (wall) and the bytes the
#               process wrote (write_bytes of /proc/PID/io, which counts the WAL, checkpoints
#               and the database file alike), per 10^4 tokens. Round i runs at S + i*BATCH rows.
#   introspect  tokctl introspect --batch with LOOKUPS stored tokens (sampled over the whole store;
#               fewer while the sample pool is smaller) and with one: (t_N - t_1) / (N - 1) is the
#               time per lookup without
#               process start-up. "miss" does the same with tokens that were never issued (one
#               lookup since schema 7; a store migrated from schema 5 also tries the legacy key
#               until its last legacy row is pruned).
# The first row, "empty", issues BATCH into a fresh store every round: the baseline the others
# are compared with (ratio = median at S / median empty; for bytes, lower is better).
# Medians over the rounds, with min-max. Targets (issue 11): issuance at 10^6 rows >= 0.8x the
# empty rate, >= 50k tokens/s, bytes per 10^4 tokens within 2x of empty; introspection flat.
# 10^7 rows: --sizes 10000,100000,1000000,10000000 (about 6 GB of disk and 3 minutes to grow).
set -euo pipefail
sizes=10000,100000,1000000
batch=10000
rounds=5
lookups=2000
keep=no
tokctl=""
while [[ $# -gt 0 ]]; do
    case $1 in
        --sizes) sizes=$2; shift 2 ;;
        --batch) batch=$2; shift 2 ;;
        --rounds) rounds=$2; shift 2 ;;
        --lookups) lookups=$2; shift 2 ;;
        --keep) keep=yes; shift ;;
        -h|--help) sed -n '2,24p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        -*) echo "bench: unknown option '$1' (see --help)" >&2; exit 2 ;;
        *) tokctl=$1; shift ;;
    esac
done
for v in "$batch" "$rounds" "$lookups"; do
    [[ $v =~ ^[1-9][0-9]*$ ]] || { echo "bench: '$v' is not a positive integer" >&2; exit 2; }
done
((lookups >= 2)) || { echo "bench: --lookups must be at least 2" >&2; exit 2; }
IFS=, read -r -a size_list <<< "$sizes"
prev=0
for s in "${size_list[@]}"; do
    [[ $s =~ ^[1-9][0-9]*$ ]] || { echo "bench: --sizes wants positive integers, ascending: '$s'" >&2; exit 2; }
    ((s > prev)) || { echo "bench: --sizes must ascend" >&2; exit 2; }
    prev=$s
done
tokctl=${tokctl:-$(dirname "$0")/../build/cli/tokctl}
[[ -x $tokctl ]] || { echo "bench: tokctl binary '$tokctl' not found (build it first, or pass its path)" >&2; exit 2; }
tokctl=$(cd "$(dirname "$tokctl")" && pwd)/$(basename "$tokctl")
work=$(mktemp -d "${TMPDIR:-/tmp}/tokctl-store.XXXXXX")
# shellcheck disable=SC2317  # invoked by the EXIT trap
cleanup() {
    local rc=$?
    if [[ $keep == no && $rc -eq 0 ]]; then rm -rf "$work"; else echo "bench: files kept in $work" >&2; fi
}
trap cleanup EXIT
cd "$work"
export NO_COLOR=1 TOKCTL_KEYSTORE=$work/ks TOKCTL_CONFIG=$work/policy.yaml TOKCTL_PASSPHRASE=
store=$work/ks/tokens.db
note() { echo "bench: $*" >&2; }

"$tokctl" keys add --alg ES256 -q > /dev/null
printf 'issuer: https://bench.test\nscopes:\n  - name: read\n' > policy.yaml
"$tokctl" config check > /dev/null

# timed_io OUT CMD...: runs CMD with stdout to OUT (stdin from $stdin_file, else /dev/null) in a
# child shell; prints "SECONDS WRITE_BYTES". A shell's /proc/PID/io counts the children it reaped.
stdin_file=/dev/null
timed_io() {
    local out=$1
    shift
    # shellcheck disable=SC2016  # expanded by the child shell
    sh -c 'out=$1; in=$2; shift 2
           s=$(date +%s%N); "$@" > "$out" < "$in" || [ $? -eq 1 ]; e=$(date +%s%N)
           w=$(sed -n "s/^write_bytes: //p" /proc/$$/io)
           echo "$(( e - s )) $w"' sh "$out" "$stdin_file" "$@"
}
reset_store() { rm -f "$store" "$store-wal" "$store-shm"; }
issue_cmd=("$tokctl" issue --format opaque --sub bench --scope read --count)

# median / min / max of the numbers on stdin: "MEDIAN MIN MAX".
stats() { sort -g | awk '{v[NR]=$1} END {m = NR % 2 ? v[(NR+1)/2] : (v[NR/2] + v[NR/2+1]) / 2; print m, v[1], v[NR]}'; }

# One round at the current size: appends "RATE MB_PER_1E4" to rates.txt/bytes.txt and lookup
# times (µs) to hit.txt/miss.txt.
round() {
    local r ns wb
    stdin_file=/dev/null
    r=$(timed_io issued.txt "${issue_cmd[@]}" "$batch")
    ns=${r% *}
    wb=${r#* }
    [[ $(wc -l < issued.txt) == "$batch" ]] || { note "issue printed $(wc -l < issued.txt) lines, not $batch"; exit 1; }
    awk -v n="$batch" -v ns="$ns" 'BEGIN {printf "%.0f\n", n / (ns / 1e9)}' >> rates.txt
    awk -v n="$batch" -v b="$wb" 'BEGIN {printf "%.2f\n", b / n * 1e4 / 1e6}' >> bytes.txt
    shuf -n 200 issued.txt >> pool.txt
    [[ ${1:-} == empty ]] && return 0
    local kind file
    for kind in hit miss; do
        file=lookup-$kind.txt
        if [[ $kind == hit ]]; then
            shuf -n "$lookups" pool.txt > "$file"
        else
            # 30 random bytes -> 40 base64 characters: exactly LOOKUPS lines.
            head -c $(( lookups * 30 )) /dev/urandom | base64 -w 40 | tr '+/' '-_' | sed 's/^/miss/' > "$file"
        fi
        head -n 1 "$file" > one.txt
        stdin_file=one.txt
        local t1 tn
        t1=$(timed_io answers.txt "$tokctl" introspect --batch)
        stdin_file=$file
        tn=$(timed_io answers.txt "$tokctl" introspect --batch)
        local active
        active=$(grep -c '"active":true' answers.txt || true)
        if [[ $kind == hit && $active != "$(wc -l < "$file")" ]]; then note "only $active of $(wc -l < "$file") stored tokens introspect active"; exit 1; fi
        if [[ $kind == miss && $active != 0 ]]; then note "$active never-issued tokens introspect active"; exit 1; fi
        awk -v a="${t1% *}" -v b="${tn% *}" -v n="$(wc -l < "$file")" 'BEGIN {printf "%.2f\n", (b - a) / 1e3 / (n - 1)}' >> "$kind.txt"
    done
}

printf '%-10s %-26s %-7s %-22s %-7s %-22s %-22s\n' rows "issue tokens/s (min-max)" ratio "MB per 1e4 (min-max)" ratio \
    "introspect µs (min-max)" "miss µs (min-max)"
report() { # report LABEL
    local rate bytes hit miss
    read -r rate rmin rmax < <(stats < rates.txt)
    read -r bytes bmin bmax < <(stats < bytes.txt)
    if [[ $1 == empty ]]; then
        base_rate=$rate base_bytes=$bytes
        hit="-" miss="-"
    else
        read -r h hmin hmax < <(stats < hit.txt)
        read -r m mmin mmax < <(stats < miss.txt)
        hit="$h ($hmin-$hmax)" miss="$m ($mmin-$mmax)"
    fi
    printf '%-10s %-26s %-7s %-22s %-7s %-22s %-22s\n' "$1" "$rate ($rmin-$rmax)" \
        "$(awk -v a="$rate" -v b="$base_rate" 'BEGIN {printf "%.2fx", a / b}')" "$bytes ($bmin-$bmax)" \
        "$(awk -v a="$bytes" -v b="$base_bytes" 'BEGIN {printf "%.2fx", a / b}')" "$hit" "$miss"
}

# The baseline: BATCH tokens into an empty store, every round.
: > rates.txt; : > bytes.txt
for ((r = 0; r < rounds; r++)); do reset_store; round empty; done
report empty
reset_store
: > pool.txt
have=0
for s in "${size_list[@]}"; do
    while ((have < s)); do
        n=$(( s - have < 100000 ? s - have : 100000 ))
        "${issue_cmd[@]}" "$n" > grow.txt
        shuf -n 1000 grow.txt >> pool.txt
        have=$(( have + n ))
    done
    note "store at $have rows ($(du -m "$store" | cut -f1) MB)"
    label=$have
    : > rates.txt; : > bytes.txt; : > hit.txt; : > miss.txt
    for ((r = 0; r < rounds; r++)); do round; have=$(( have + batch )); done
    report "$label"
done
