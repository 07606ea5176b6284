# shellcheck shell=bash
# Shell helpers the benchmark scripts share; sourced, not run. The caller sets `set -euo pipefail`
# and runs from the repository root.

BENCH=$(basename "$0" .sh)
# A build to measure given in the environment (DSTORE=...), rather than this tree's.
DSTORE_GIVEN=${DSTORE:-}
CPU_MODEL=$(lscpu 2>/dev/null | sed -n 's/^Model name:[[:space:]]*//p' | head -n 1)
CPU_MODEL=${CPU_MODEL:-unknown}

say() { printf '%s\n' "$*" >&2; }
die() {
	say "$BENCH: $*"
	exit 1
}
median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
thousands() { printf '%s' "$1" | sed -e ':a' -e 's/\([0-9]\)\([0-9]\{3\}\)\($\|[,.]\)/\1,\2\3/' -e 'ta'; }
now_ms() { echo $((${EPOCHREALTIME/./} / 1000)); }
# calc 'EXPRESSION' a=1 b=2: awk arithmetic on named values, printed with %.6f unless FORMAT is set.
calc() {
	local expr=$1
	shift
	local vars=()
	for v in "$@"; do vars+=(-v "$v"); done
	awk "${vars[@]}" "BEGIN { printf \"${FORMAT:-%.6f}\", ($expr) }"
}
# Builds dstore and the examples named, in release mode.
build_release() {
	say "== build"
	cargo build --release "${@/#/--example=}"
	cargo build --release
}
# Whether process $1 runs (a zombie does not).
alive() {
	local state
	[[ -n ${1:-} ]] || return 1
	state=$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -c1) || return 1
	[[ -n $state && $state != Z ]]
}

# Stops process $1 (one this script started): SIGTERM, up to $2 seconds (default 10) for it to
# exit, then SIGKILL; reaps it.
stop_pid() {
	local i
	[[ -n ${1:-} ]] || return 0
	kill -TERM "$1" 2>/dev/null || true
	for ((i = 0; i < ${2:-10} * 10; i++)); do alive "$1" || break; sleep 0.1; done
	if alive "$1"; then kill -KILL "$1" 2>/dev/null || true; fi
	wait "$1" 2>/dev/null || true
}

# Prints the "== machine" lines every benchmark starts with: cores, CPU, memory, kernel, compiler,
# the dstore measured (the tree's revision, or $DSTORE when a script was given another build) and
# the load. The caller adds its own lines after it.
# Waits for a line matching PATTERN in FILE while PID lives; prints the line.
wait_for_line() {
	local file=$1 pattern=$2 pid=$3 i
	for ((i = 0; i < 200; i++)); do
		if grep -m1 -- "$pattern" "$file" 2>/dev/null; then return 0; fi
		alive "$pid" || break
		sleep 0.05
	done
	return 1
}

describe_machine() {
	local dstore
	if [[ -z $DSTORE_GIVEN ]]; then
		dstore="$(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet HEAD -- src 2>/dev/null || echo ' (with uncommitted changes in src/)')"
	else
		dstore="$DSTORE_GIVEN (given by DSTORE)"
	fi
	echo "== machine"
	echo "cpus:       $(nproc)"
	echo "cpu:        $CPU_MODEL"
	echo "memory:     $(awk '/^MemTotal:/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)"
	echo "kernel:     $(uname -sr)"
	echo "rustc:      $(rustc --version)"
	echo "dstore:     $dstore"
	echo "load:       $(cut -d ' ' -f 1-3 /proc/loadavg) (1, 5, 15 min) before the runs; other work on the machine skews the figures"
}
