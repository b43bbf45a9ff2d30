# shellcheck shell=bash disable=SC2154  # the variables are set by the sourcing script (see below)
# bench/lib.sh — functions shared by bench/verify.sh and bench/issue.sh (sourced, not run).
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
