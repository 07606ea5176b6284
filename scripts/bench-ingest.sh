#!/usr/bin/env bash
# Ingest benchmark: how many events per second `dstore ingest` receives and stores from many TCP
# producers on loopback, what each million events costs it in CPU, its peak memory, and what it drops,
# next to the same runs against a plain socket sink (`load_gen --sink`: read, count frames, discard)
# and the in-process LZ4 limit (`lz4_limit`: one core doing nothing but compress 1 MiB chunks). Prints
# figures and a verdict against the goals; asserts nothing.
#
#   scripts/bench-ingest.sh                     # about 5 minutes
#   DURATION=20 UNPACED_DURATION=5 scripts/bench-ingest.sh
#   ONLY=unpaced scripts/bench-ingest.sh         # only the cases whose name matches (grep -E)
#
# Cases, each against a fresh ingest (and again against the sink):
#   1, 64 and 1000 connections unpaced (as fast as the sender can write, for UNPACED_DURATION s);
#   64 connections, and 1000 connections plus 1000 idle ones, paced at RATE events/s in total for
#   DURATION s (SINK_DURATION s against the sink, which only shows that the socket path keeps up).
# The stream is examples/gen_traffic.rs output (EVENTS events, seed fixed) held in the sender's memory;
# the sender (examples/load_gen.rs) loops over it. Sender, ingest and sink share this machine's CPUs.
#
# Figures for ingest: "received/s" is events_total over the window from the sender's first write to
# the moment ingest had read everything it was sent; "stored/s" is the events the store holds (the
# count ingest logs when it closes the store) over the window up to the moment its writer had caught
# up (stored + dropped = received); MB/s is stored/s in framed input bytes; CPU is ingest's user +
# system time (/proc/PID/stat) before SIGTERM, per million events stored; peak RSS is VmHWM before
# SIGTERM; dropped is dropped_events_total plus partial frames. Every process the script starts is
# stopped by its PID, and the scratch directory under ${TMPDIR:-/tmp} is removed on exit.
set -euo pipefail

EVENTS=${EVENTS:-2000000}
SEED=${SEED:-1}
RATE=${RATE:-1000000}
DURATION=${DURATION:-60}
UNPACED_DURATION=${UNPACED_DURATION:-10}
SINK_DURATION=${SINK_DURATION:-15}
LZ4_SECONDS=${LZ4_SECONDS:-3}
# Bounded waits: for ingest to read and store what it was sent, and to exit after SIGTERM.
DRAIN_TIMEOUT=${DRAIN_TIMEOUT:-120}
STOP_TIMEOUT=${STOP_TIMEOUT:-60}

cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib.sh
source scripts/lib.sh

now() { date +%s.%N; }
is_true() { [[ $(calc "$1" "${@:2}") != 0.000000 ]]; }
# The value of KEY in a one-line JSON object of numbers, booleans, null and plain strings.
json_field() { sed -n "s/.*\"$2\":\(\"[^\"]*\"\|[^,}]*\).*/\1/p" "$1" | tr -d '"'; }

for var in EVENTS RATE DURATION UNPACED_DURATION SINK_DURATION LZ4_SECONDS DRAIN_TIMEOUT STOP_TIMEOUT; do
	[[ ${!var} =~ ^[1-9][0-9]*$ ]] || die "$var must be a positive integer, not '${!var}'"
done
command -v curl >/dev/null || die "curl is needed to read ingest's /metrics"

# Every process this script starts, until it has been waited for; the trap stops what is left.
STARTED=()
forget() {
	local keep=() p
	for p in "${STARTED[@]}"; do [[ $p == "$1" ]] || keep+=("$p"); done
	STARTED=("${keep[@]}")
}
WORK=
cleanup() {
	local p i
	for p in "${STARTED[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
	for p in "${STARTED[@]}"; do
		for ((i = 0; i < 100; i++)); do alive "$p" || break; sleep 0.05; done
		if alive "$p"; then kill -KILL "$p" 2>/dev/null || true; fi
		wait "$p" 2>/dev/null || true
	done
	[[ -z $WORK ]] || rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# 1000 senders + 1000 idle connections, and ingest's end of them, each in its own process.
want_files=65536
hard=$(ulimit -Hn)
if [[ $hard != unlimited ]] && ((hard < want_files)); then want_files=$hard; fi
ulimit -n "$want_files" || die "cannot raise the open-files limit to $want_files"
((want_files >= 2100)) || die "the open-files limit is $want_files; 2,100 are needed (1000 + 1000 idle connections)"

build_release gen_traffic load_gen lz4_limit
# DSTORE=/path/to/dstore measures that executable instead of this tree's, to set an older build
# beside this one (run the script once with each, alternating).
DSTORE=${DSTORE:-target/release/dstore}
GEN=target/release/examples/gen_traffic
LOAD=target/release/examples/load_gen
LZ4=target/release/examples/lz4_limit
for b in "$DSTORE" "$GEN" "$LOAD" "$LZ4"; do [[ -x $b ]] || die "$b was not built"; done

WORK=$(mktemp -d "${TMPDIR:-/tmp}/dstore-bench-ingest.XXXXXX")
F=$WORK/traffic.pb
: >"$WORK/empty.conf"
TICKS=$(getconf CLK_TCK)

describe_machine
echo "open files: $(ulimit -n); somaxconn $(cat /proc/sys/net/core/somaxconn 2>/dev/null || echo '?'); tcp_rmem $(cat /proc/sys/net/ipv4/tcp_rmem 2>/dev/null | tr '\t' ' ')"
echo "scratch:    $WORK"
echo

echo "== input: $(thousands "$EVENTS") events, seed $SEED"
"$GEN" --events "$EVENTS" --seed "$SEED" >"$F" 2>"$WORK/gen.log" || {
	cat "$WORK/gen.log" >&2
	die "gen_traffic failed"
}
sed 's/^/  /' "$WORK/gen.log"
BYTES_PER_EVENT=$(calc 'b / n' b="$(stat -c %s "$F")" n="$EVENTS")
echo

# Reads ingest's counters into EV (events_total), ST (stored), DR (dropped), PA (partial frames),
# CONNS (open connections), DG (events in degraded blocks; 0 from builds without them). Keeps the
# previous values if the request fails.
read_metrics() {
	local out
	out=$(curl -fsS --max-time 5 "http://$METRICS/metrics" 2>/dev/null | awk '
		{ m[$1] = $2 }
		END {
			p = "dstore_ingest_"
			if (!((p "events_total") in m)) exit 1
			print m[p "events_total"], m[p "stored_events_total"], m[p "dropped_events_total"], m[p "partial_frames_total"], m[p "connections"], m[p "degraded_events_total"] + 0
		}') || return 0
	read -r EV ST DR PA CONNS DG <<<"$out"
}

# Each run keeps its logs and figures in a directory of its own, $RUN.
RUNS=0
new_run() {
	RUNS=$((RUNS + 1))
	RUN=$WORK/run-$RUNS
	mkdir "$RUN"
}

# Starts the sender for a case; sets SENDER. Arguments: connections idle rate(0 = unpaced) seconds port.
start_sender() {
	local args=("$F" --target "127.0.0.1:$5" --connections "$1" --idle "$2" --duration "$4")
	((${3} > 0)) && args+=(--rate "$3")
	"$LOAD" "${args[@]}" >"$RUN/send.json" 2>"$RUN/send.err" &
	SENDER=$!
	STARTED+=("$SENDER")
}

finish_sender() {
	local status=0
	wait "$SENDER" || status=$?
	forget "$SENDER"
	if ((status != 0)); then
		cat "$RUN/send.err" >&2
		die "load_gen exited with status $status"
	fi
	SENT=$(json_field "$RUN/send.json" events)
	SEND_START=$(json_field "$RUN/send.json" started_unix)
	SEND_END=$(json_field "$RUN/send.json" finished_unix)
	KEPT_UP=$(json_field "$RUN/send.json" kept_up)
	PACING=""
	[[ $KEPT_UP == null ]] || PACING=", kept up with the rate: $KEPT_UP"
	ACHIEVED=$(FORMAT=%.0f calc e e="$(json_field "$RUN/send.json" events_per_sec)")
	SENDER_CPU=$(json_field "$RUN/send.json" cpu_seconds)
	CONNECT_SECS=$(json_field "$RUN/send.json" connect_seconds)
}

ROWS=()
# add_row case received/s stored/s MB/s cpu-per-M rss-MiB dropped goal verdict
add_row() {
	local IFS='|'
	ROWS+=("$*")
}

verdict_rate() { # stored/s goal
	if is_true 'v >= g' v="$1" g="$2"; then echo met; else echo missed; fi
}

run_ingest() {
	local name=$1 conns=$2 idle=$3 rate=$4 secs=$5
	new_run
	local store=$RUN/store log=$RUN/ingest.log
	mkdir "$store"
	echo "== ingest: $name, $secs s"
	DSTORE_CONFIG=/nonexistent "$DSTORE" ingest --storage-dir "$store" --config "$WORK/empty.conf" \
		--listen 127.0.0.1:0 --metrics-listen 127.0.0.1:0 --status-interval 0 --max-connections 4000 \
		2>"$log" &
	local ing=$!
	STARTED+=("$ing")
	local line
	line=$(wait_for_line "$log" 'metrics on http://' "$ing") || {
		cat "$log" >&2
		die "dstore ingest did not start"
	}
	METRICS=$(sed -n 's|.*metrics on http://\([^/]*\)/metrics.*|\1|p' <<<"$line")
	local port
	port=$(sed -n 's/.*listening on 127\.0\.0\.1:\([0-9]*\).*/\1/p' "$log" | head -n 1)
	[[ -n $port && -n $METRICS ]] || die "no address in ingest's log: $(cat "$log")"

	EV=0 ST=0 DR=0 PA=0 CONNS=0 DG=0
	start_sender "$conns" "$idle" "$rate" "$secs" "$port"
	local last=-1 t t_recv=0 t_stored=0 most_conns=0
	while alive "$SENDER"; do
		read_metrics
		t=$(now)
		if [[ $EV != "$last" ]]; then last=$EV t_recv=$t; fi
		((CONNS > most_conns)) && most_conns=$CONNS
		sleep 0.1
	done
	finish_sender
	# Bounded wait: until ingest has read everything the sender wrote (or events_total has not moved
	# for 5 s: under memory pressure the kernel drops segments and TCP resends them seconds later)
	# and the writer has caught up.
	local deadline stable_since drain_note=""
	deadline=$(calc 't + d' t="$(now)" d="$DRAIN_TIMEOUT")
	stable_since=$(now)
	while :; do
		read_metrics
		t=$(now)
		if [[ $EV != "$last" ]]; then last=$EV t_recv=$t stable_since=$t t_stored=0; fi
		if ((ST + DR >= EV)) && [[ $t_stored == 0 ]]; then t_stored=$t; fi
		if ((ST + DR >= EV)) && { ((EV >= SENT)) || is_true 't - s >= 5' t="$t" s="$stable_since"; }; then break; fi
		if is_true 't > d' t="$t" d="$deadline"; then
			drain_note="; NOT DRAINED after ${DRAIN_TIMEOUT}s"
			[[ $t_stored != 0 ]] || t_stored=$t
			break
		fi
		sleep 0.05
	done
	local received=$EV dropped=$DR partial=$PA stored_metric=$ST
	local ticks rss_kib
	ticks=$(sed 's/.*) //' "/proc/$ing/stat" | awk '{ print $12 + $13 }')
	rss_kib=$(awk '/^VmHWM:/ { print $2 }' "/proc/$ing/status")

	local t0 status=0 i stop_note=""
	t0=$(now)
	kill -TERM "$ing"
	for ((i = 0; i < STOP_TIMEOUT * 20; i++)); do alive "$ing" || break; sleep 0.05; done
	if alive "$ing"; then
		kill -KILL "$ing"
		stop_note=" (did not exit within ${STOP_TIMEOUT}s of SIGTERM: killed)"
	fi
	wait "$ing" || status=$?
	forget "$ing"
	local stop_secs
	stop_secs=$(FORMAT=%.2f calc 'b - a' a="$t0" b="$(now)")
	local stored final_received
	stored=$(sed -n 's/.*store closed: \([0-9]*\) events.*/\1/p' "$log" | tail -n 1)
	[[ -n $stored ]] || stored=$stored_metric
	final_received=$(sed -n 's/.*stopping: \([0-9]*\) events received.*/\1/p' "$log" | tail -n 1)
	[[ -n $final_received ]] || final_received=$received
	((status == 0)) || stop_note+=" exit status $status"

	local recv_win stored_win recv_eps stored_eps mbs cpu_m rss_mib
	recv_win=$(calc '(e > r ? e : r) - s' s="$SEND_START" e="$SEND_END" r="$t_recv")
	stored_win=$(calc '(e > r ? e : r) - s' s="$SEND_START" e="$SEND_END" r="$t_stored")
	recv_eps=$(FORMAT=%.0f calc 'n / w' n="$received" w="$recv_win")
	stored_eps=$(FORMAT=%.0f calc 'n / w' n="$stored" w="$stored_win")
	mbs=$(FORMAT=%.1f calc 'e * b / 1e6' e="$stored_eps" b="$BYTES_PER_EVENT")
	cpu_m=n/a
	((stored > 0)) && cpu_m=$(FORMAT=%.2f calc 'k / hz / n * 1e6' k="$ticks" hz="$TICKS" n="$stored")
	rss_mib=$(FORMAT=%.0f calc 'k / 1024' k="$rss_kib")

	echo "  sent $(thousands "$SENT") ($(thousands "$ACHIEVED")/s$PACING; $conns connections$( ((idle == 0)) || echo " + $idle idle") opened in ${CONNECT_SECS}s, at most $most_conns open at once seen; sender CPU ${SENDER_CPU}s)"
	echo "  ingest received $(thousands "$received") in $(FORMAT=%.2f calc w w="$recv_win")s, stored $(thousands "$stored") in $(FORMAT=%.2f calc w w="$stored_win")s ($(thousands "$DG") in degraded blocks), dropped $(thousands "$dropped"), partial frames $partial$drain_note"
	echo "  ingest CPU $(FORMAT=%.1f calc 'k / hz' k="$ticks" hz="$TICKS")s, peak RSS $rss_mib MiB, exited ${stop_secs}s after SIGTERM$stop_note"
	((final_received == received)) || echo "  NOTE: ingest read $((final_received - received)) more events after SIGTERM (its log says $final_received received)"
	((SENT == final_received)) || echo "  NOTE: sent $SENT but ingest received $final_received: $((SENT - final_received)) lost on the way"
	((stored + dropped + partial >= received)) || echo "  NOTE: $((received - stored - dropped)) events received are neither stored nor counted as dropped"

	local goal verdict
	if ((rate == 0)); then
		goal=">= 2,000,000/s"
		verdict=$(verdict_rate "$stored_eps" 2000000)
	else
		goal="$(thousands "$rate")/s, 0 dropped"
		if [[ $KEPT_UP != true ]]; then
			verdict="sender behind"
		elif ((dropped == 0 && partial == 0 && stored == SENT)); then
			verdict=met
		else
			verdict=missed
		fi
	fi
	if ((conns >= 1000)); then
		goal+=", < 100 MiB"
		if [[ $verdict == met ]] && ! is_true 'r < 100' r="$rss_mib"; then verdict=missed; fi
	fi
	add_row "ingest: $name" "$(thousands "$recv_eps")" "$(thousands "$stored_eps")" "$mbs" "$cpu_m" "$rss_mib" \
		"$(thousands "$((dropped + partial))")" "$goal" "$verdict"
	rm -rf "$store"
	echo
}

run_sink() {
	local name=$1 conns=$2 idle=$3 rate=$4 secs=$5
	echo "== sink: $name, $secs s"
	new_run
	"$LOAD" --sink --listen 127.0.0.1:0 --expect-connections "$((conns + idle))" \
		>"$RUN/sink.json" 2>"$RUN/sink.err" &
	local sink=$!
	STARTED+=("$sink")
	local line port
	line=$(wait_for_line "$RUN/sink.err" 'listening on ' "$sink") || {
		cat "$RUN/sink.err" >&2
		die "load_gen --sink did not start"
	}
	port=$(sed -n 's/.*listening on 127\.0\.0\.1:\([0-9]*\).*/\1/p' <<<"$line")
	start_sender "$conns" "$idle" "$rate" "$secs" "$port"
	while alive "$SENDER"; do sleep 0.25; done
	finish_sender
	local i status=0
	for ((i = 0; i < STOP_TIMEOUT * 20; i++)); do alive "$sink" || break; sleep 0.05; done
	if alive "$sink"; then
		kill -TERM "$sink"
		wait "$sink" || true
		forget "$sink"
		die "the sink did not finish after every sender connection closed"
	fi
	wait "$sink" || status=$?
	forget "$sink"
	((status == 0)) || die "load_gen --sink exited with status $status: $(cat "$RUN/sink.err")"
	local got last win eps mbs cpu cpu_m rss_mib
	got=$(json_field "$RUN/sink.json" events)
	last=$(json_field "$RUN/sink.json" last_byte_unix)
	cpu=$(json_field "$RUN/sink.json" cpu_seconds)
	win=$(calc '(e > l ? e : l) - s' s="$SEND_START" e="$SEND_END" l="$last")
	eps=$(FORMAT=%.0f calc 'n / w' n="$got" w="$win")
	mbs=$(FORMAT=%.1f calc 'e * b / 1e6' e="$eps" b="$BYTES_PER_EVENT")
	cpu_m=$(FORMAT=%.2f calc 'c / n * 1e6' c="$cpu" n="$got")
	rss_mib=$(FORMAT=%.0f calc 'k / 1024' k="$(json_field "$RUN/sink.json" peak_rss_kib)")
	echo "  sent $(thousands "$SENT") ($(thousands "$ACHIEVED")/s$PACING; connections opened in ${CONNECT_SECS}s; sender CPU ${SENDER_CPU}s)"
	echo "  sink read $(thousands "$got") in $(FORMAT=%.2f calc w w="$win")s, CPU ${cpu}s, peak RSS $rss_mib MiB, partial frames $(json_field "$RUN/sink.json" partial_frames)"
	add_row "sink: $name" "$(thousands "$eps")" "$(thousands "$eps")" "$mbs" "$cpu_m" "$rss_mib" \
		"$(thousands "$((SENT - got))")" "socket limit" ""
	echo
}

K=$((RATE / 1000))
RATE_NAME=$([[ $((RATE % 1000000)) == 0 ]] && echo "$((RATE / 1000000))M/s" || echo "${K}k/s")
# name | connections | idle | rate (0: unpaced)
CASES=(
	"1 conn, unpaced|1|0|0"
	"64 conns, unpaced|64|0|0"
	"1000 conns, unpaced|1000|0|0"
	"64 conns, paced $RATE_NAME|64|0|$RATE"
	"1000 conns + 1000 idle, paced $RATE_NAME|1000|1000|$RATE"
)
for c in "${CASES[@]}"; do
	IFS='|' read -r name conns idle rate <<<"$c"
	[[ -z ${ONLY:-} ]] || grep -qE -- "$ONLY" <<<"$name" || continue
	if ((rate == 0)); then
		run_ingest "$name" "$conns" "$idle" 0 "$UNPACED_DURATION"
		run_sink "$name" "$conns" "$idle" 0 "$UNPACED_DURATION"
	else
		run_ingest "$name" "$conns" "$idle" "$rate" "$DURATION"
		run_sink "$name" "$conns" "$idle" "$rate" "$SINK_DURATION"
	fi
done

echo "== in-process LZ4 limit: $LZ4_SECONDS s"
"$LZ4" "$F" --seconds "$LZ4_SECONDS" >"$WORK/lz4.json" 2>"$WORK/lz4.err" || die "lz4_limit failed: $(cat "$WORK/lz4.err")"
LZ4_EPS=$(FORMAT=%.0f calc e e="$(json_field "$WORK/lz4.json" events_per_sec)")
LZ4_RATIO=$(json_field "$WORK/lz4.json" ratio)
echo "  $(thousands "$LZ4_EPS") events/s, $(json_field "$WORK/lz4.json" mb_per_sec) MB/s of input, ratio $LZ4_RATIO"
add_row "lz4 compress, 1 MiB chunks, one core" "" "$(thousands "$LZ4_EPS")" \
	"$(FORMAT=%.1f calc 'e * b / 1e6' e="$LZ4_EPS" b="$BYTES_PER_EVENT")" "$(FORMAT=%.2f calc '1e6 / e' e="$LZ4_EPS")" "" "" "in-process limit" ""
echo

echo "load average after the runs: $(cut -d' ' -f1-3 /proc/loadavg) (1, 5, 15 min)"
echo "== results: $(thousands "$EVENTS")-event stream ($(FORMAT=%.1f calc b b="$BYTES_PER_EVENT") bytes/event framed), $(nproc) cpus ($CPU_MODEL), sender on the same machine"
{
	printf '%s|%s|%s|%s|%s|%s|%s|%s|%s\n' case received/s stored/s MB/s "CPU s/M" "RSS MiB" dropped goal ""
	printf '%s\n' "${ROWS[@]}"
} | awk -F'|' '
	{ for (i = 1; i <= NF; i++) { cell[NR, i] = $i; if (length($i) > w[i]) w[i] = length($i) } rows = NR }
	END {
		for (r = 1; r <= rows; r++) {
			line = sprintf("%-" w[1] "s", cell[r, 1])
			for (i = 2; i <= 7; i++) line = line sprintf("  %" w[i] "s", cell[r, i])
			line = line sprintf("  %-" w[8] "s  %s", cell[r, 8], cell[r, 9])
			sub(/ +$/, "", line)
			print line
		}
	}'
