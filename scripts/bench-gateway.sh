#!/usr/bin/env bash
# Gateway benchmark: requests per second and p50/p99 latency of `dstore gateway` under 32 concurrent
# clients (wrk), for the requests a user of the web UI or of the 1.x API makes: a 100-result search for
# a name, the same for a rarer name (few matches, so most of the store is searched), a search by
# domain, a summary of the last hour of data, and a 1.x get-endpoint-data. Prints a table with the
# goal (p99 under 50 ms for a 100-result search for a name); asserts nothing.
#
#   scripts/bench-gateway.sh                         # 5,000,000 events over 2 hours, 10 s per request
#                                                    # (30 s for the summary); about 3 minutes
#   EVENTS=1000000 DURATION=5 SLOW_DURATION=10 scripts/bench-gateway.sh
#   CONNECTIONS=64 WORKERS=8 scripts/bench-gateway.sh
#
# The events are examples/gen_traffic.rs output (seed fixed) spread evenly over SPAN seconds ending at
# START + SPAN, imported with `dstore import`. The gateway runs with its defaults (4 workers, 8 searches
# at once, 10 s time budget) unless WORKERS is set, on a free loopback port, and is stopped by its PID
# at exit. wrk runs on the same machine (it is installed with apt-get when missing); on a small machine
# it takes CPU from the gateway, so the figures are a lower bound. Each request is first made once with
# curl to show what it finds (events, msec, timedOut). Scratch files live under ${TMPDIR:-/tmp} and are
# removed on exit.
set -euo pipefail
export LC_ALL=C

EVENTS=${EVENTS:-5000000}
SEED=${SEED:-1}
# 2026-01-01T00:00:00Z; the data covers [START, START + SPAN)
START=${START:-1767225600}
SPAN=${SPAN:-7200}
DURATION=${DURATION:-10}
SLOW_DURATION=${SLOW_DURATION:-30}
CONNECTIONS=${CONNECTIONS:-32}
WRK_THREADS=${WRK_THREADS:-2}
WORKERS=${WORKERS:-}
# The rarer name is the one at this rank among the most frequent.
RARE_RANK=${RARE_RANK:-20000}
GOAL_P99_MS=50

cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib.sh
source scripts/lib.sh

# wrk prints latencies as 812.00us, 1.23ms, 2.01s or 1.50m; in milliseconds:
to_ms() {
	awk -v v="$1" 'BEGIN {
		n = v + 0; u = v; sub(/^[0-9.]+/, "", u)
		f = (u == "us" ? 0.001 : u == "ms" ? 1 : u == "s" ? 1000 : u == "m" ? 60000 : -1)
		if (f < 0) { print "n/a"; exit }
		printf "%.2f", n * f
	}'
}

[[ $EVENTS =~ ^[1-9][0-9]*$ ]] || die "EVENTS must be a positive integer, not '$EVENTS'"
if ! [[ $SPAN =~ ^[1-9][0-9]*$ ]] || ((SPAN < 3600)); then
	die "SPAN must be at least 3600 seconds, not '$SPAN'"
fi
[[ $DURATION =~ ^[1-9][0-9]*$ ]] || die "DURATION must be a positive integer, not '$DURATION'"
[[ $SLOW_DURATION =~ ^[1-9][0-9]*$ ]] || die "SLOW_DURATION must be a positive integer, not '$SLOW_DURATION'"
[[ $CONNECTIONS =~ ^[1-9][0-9]*$ ]] || die "CONNECTIONS must be a positive integer, not '$CONNECTIONS'"
if ! [[ $WRK_THREADS =~ ^[1-9][0-9]*$ ]] || ((WRK_THREADS > CONNECTIONS)); then
	die "WRK_THREADS must be a positive integer no larger than CONNECTIONS"
fi
[[ $RARE_RANK =~ ^[1-9][0-9]*$ ]] || die "RARE_RANK must be a positive integer, not '$RARE_RANK'"
[[ -z $WORKERS || $WORKERS =~ ^[1-9][0-9]*$ ]] || die "WORKERS must be a positive integer, not '$WORKERS'"

build_release gen_traffic
DSTORE=target/release/dstore
GEN=target/release/examples/gen_traffic
[[ -x $DSTORE ]] || die "$DSTORE was not built"
[[ -x $GEN ]] || die "$GEN was not built"

if ! command -v wrk >/dev/null; then
	say "== installing wrk"
	apt-get install -y wrk || { apt-get update && apt-get install -y wrk; } ||
		die "wrk is needed; install it and run again"
fi
command -v curl >/dev/null || die "curl is needed for the probe requests"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/dstore-bench-gateway.XXXXXX")
GW_PID=
cleanup() {
	if [[ -n $GW_PID ]] && kill -0 "$GW_PID" 2>/dev/null; then
		kill "$GW_PID" 2>/dev/null || true
		wait "$GW_PID" 2>/dev/null || true
	fi
	rm -rf "$WORK"
}
trap cleanup EXIT

describe_machine
echo "wrk:     $(wrk --version 2>&1 | awk 'NR == 1 { print substr($0, 1, 60) }' || true)"
echo "scratch: $WORK"
echo

RATE=$(awk -v n="$EVENTS" -v s="$SPAN" 'BEGIN { printf "%.6f", n / s }')
END=$((START + SPAN))
echo "== store: $(thousands "$EVENTS") events over $SPAN s from $START (seed $SEED)"
"$GEN" --events "$EVENTS" --seed "$SEED" --start "$START" --rate "$RATE" 2>"$WORK/gen.log" |
	"$DSTORE" import --quiet --storage-dir "$WORK/store" - ||
	{
		cat "$WORK/gen.log" >&2
		die "generating or importing the events failed"
	}
sed 's/^/  /' "$WORK/gen.log"
echo "  store: $(thousands "$(du -sb "$WORK/store" | cut -f1)") bytes in $(find "$WORK/store" -name '*.dst' | wc -l) segment(s)"

# The names searched for: the most frequent one, and one far down the list.
TOP=$("$DSTORE" grep --storage-dir "$WORK/store" --top qname "$RARE_RANK" --count)
# (awk reads to the end: a `| head` would end the pipeline early, which pipefail calls a failure)
VALUES=$(printf '%s' "$TOP" | grep -o '"value":"[^"]*"' | cut -d'"' -f4 || true)
NAME=$(awk 'NR == 1' <<<"$VALUES")
RARE=$(awk 'END { print }' <<<"$VALUES")
[[ -n $NAME && -n $RARE ]] || die "no query names in the store: $TOP"
# The domain: the name without its first label (or the name itself when it has two labels or fewer).
DOMAIN=${NAME%.}
[[ $DOMAIN == *.*.* ]] && DOMAIN=${DOMAIN#*.}
echo "  names: '$NAME' (the most frequent), '$RARE' (rank $RARE_RANK or the last); domain '$DOMAIN'"
echo

say "== starting the gateway"
gateway_args=(gateway --storage-dir "$WORK/store")
[[ -n $WORKERS ]] && gateway_args+=(--workers "$WORKERS")
PORT=
for attempt in 1 2 3 4 5; do
	port=$((20000 + RANDOM % 40000))
	"$DSTORE" "${gateway_args[@]}" --listen "127.0.0.1:$port" 2>"$WORK/gateway.log" &
	GW_PID=$!
	for _ in $(seq 1 500); do
		grep -q "on http://127.0.0.1:$port/" "$WORK/gateway.log" && break
		kill -0 "$GW_PID" 2>/dev/null || break
		sleep 0.02
	done
	if grep -q "on http://127.0.0.1:$port/" "$WORK/gateway.log"; then
		PORT=$port
		break
	fi
	kill "$GW_PID" 2>/dev/null || true
	wait "$GW_PID" 2>/dev/null || true
	GW_PID=
	grep -q "cannot listen" "$WORK/gateway.log" || {
		cat "$WORK/gateway.log" >&2
		die "the gateway did not start (attempt $attempt)"
	}
done
[[ -n $PORT ]] || die "no free port for the gateway after 5 attempts"
BASE="http://127.0.0.1:$PORT"
sed 's/^/  /' "$WORK/gateway.log"

FROM=$((END - 3600))
names=(
	"search for a name, 100 results"
	"search for a rarer name"
	"search by domain, 100 results"
	"summary of the last hour of data"
	"get-endpoint-data (1.x), q=domain"
)
# A summary of an hour reads millions of events and takes seconds even alone: it gets longer runs so
# that some finish.
durations=("$DURATION" "$DURATION" "$DURATION" "$SLOW_DURATION" "$DURATION")
urls=(
	"/api/v1/search?qname=$NAME&limit=100"
	"/api/v1/search?qname=$RARE&limit=100"
	"/api/v1/search?domain=$DOMAIN&limit=100"
	"/api/v1/summary?from=$FROM&to=$END"
	"/get-endpoint-data?q=$DOMAIN&limit=100"
)

echo "== probes (one request each)"
for i in "${!urls[@]}"; do
	body=$(curl -sS --max-time 60 -o - -w '\n%{http_code} %{time_total}' "$BASE${urls[$i]}") ||
		die "curl ${urls[$i]} failed"
	status=$(printf '%s' "$body" | tail -n 1)
	json=$(printf '%s' "$body" | sed '$d')
	found=$(printf '%s' "$json" | grep -o '"\(number\|total\)":[0-9]*' | awk -F: 'NR == 1 { print $2 }' || true)
	[[ -n $found ]] || found=$(printf '%s' "$json" | grep -o '"qid"' | wc -l || true)
	timed_out=$(printf '%s' "$json" | grep -o '"timedOut":[a-z]*' | awk -F: 'NR == 1 { print $2 }' || true)
	echo "  ${names[$i]}: HTTP ${status% *}, ${status#* } s, $found events${timed_out:+, timedOut $timed_out}"
	echo "    ${urls[$i]}"
	[[ ${status% *} == 200 ]] || die "${urls[$i]} answered ${status% *}: $(printf '%s' "$json" | head -c 300)"
done
echo

# The gateway finishes every request it has read, also when its client has gone: after a wrk run it
# may still be busy with the last request of each connection. Wait (bounded) until /metrics shows no
# search running three times in a row, so that no run pays for the previous one.
drain() {
	local running idle=0
	for _ in $(seq 1 1200); do
		running=$(curl -sS --max-time 120 "$BASE/metrics" | awk '$1 == "dstore_gateway_searches_running" { print $2 }') ||
			die "/metrics failed"
		if [[ $running == 0 ]]; then
			idle=$((idle + 1))
			((idle < 3)) || return 0
		else
			idle=0
		fi
		sleep 0.1
	done
	die "the gateway is still busy after the previous run"
}

# Counts the answers cut short by the time budget ("timedOut":true), over all wrk threads.
cat >"$WORK/count.lua" <<'LUA'
local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args) timedout = 0 end
function response(status, headers, body)
	if string.find(body, '"timedOut":true', 1, true) then timedout = timedout + 1 end
end
function done(summary, latency, requests)
	local n = 0
	for _, t in ipairs(threads) do n = n + t:get("timedout") end
	io.write(string.format("timedOut answers: %d\n", n))
end
LUA

echo "== wrk: $CONNECTIONS connections, $WRK_THREADS threads, $DURATION s per request ($SLOW_DURATION s for the summary)"
rows=()
for i in "${!urls[@]}"; do
	drain
	out=$WORK/wrk-$i.txt
	secs=${durations[$i]}
	wrk --latency -t "$WRK_THREADS" -c "$CONNECTIONS" -d "${secs}s" --timeout 60s -s "$WORK/count.lua" "$BASE${urls[$i]}" >"$out" 2>&1 ||
		{
			cat "$out" >&2
			die "wrk failed on ${urls[$i]}"
		}
	sed 's/^/  /' "$out"
	total=$(awk '/requests in/ { print $1 }' "$out")
	rps=$(awk '/^Requests\/sec:/ { printf "%.1f", $2 }' "$out")
	mean=$(to_ms "$(awk '$1 == "Latency" { print $2; exit }' "$out")")
	# Little's law: with every connection always waiting for an answer, the mean latency is
	# connections / throughput. Far above wrk's mean, it says some connections waited for answers
	# that had not come when the run ended (wrk does not count those).
	little=$(awk -v c="$CONNECTIONS" -v r="${rps:-0}" 'BEGIN { if (r > 0) printf "%.0f", 1000 * c / r; else print "n/a" }')
	p50=$(to_ms "$(awk '$1 == "50%" { print $2 }' "$out")")
	p99=$(to_ms "$(awk '$1 == "99%" { print $2 }' "$out")")
	if [[ ${total:-0} == 0 ]]; then
		mean=- p50="none done" p99="in $secs s"
	fi
	non2xx=$(awk -F': *' '/Non-2xx or 3xx responses/ { print $2 }' "$out")
	errors=$(awk '/Socket errors/ { gsub(/,/, ""); print $4 + $6 + $8 + $10 }' "$out")
	timed_out=$(awk '/^timedOut answers:/ { print $3 }' "$out")
	goal="" verdict=""
	if ((i == 0)); then
		goal="p99 < $GOAL_P99_MS ms"
		verdict=$(awk -v p="$p99" -v g="$GOAL_P99_MS" 'BEGIN { print ((p ~ /^[0-9.]+$/ && p + 0 < g) ? "met" : "missed") }')
	fi
	rows+=("${names[$i]}|$secs|$(thousands "${total:-0}")|${rps:-0}|${mean}|${little}|${p50}|${p99}|${non2xx:-0}/${errors:-0}|${timed_out:-n/a}|$goal|$verdict")
done
echo

echo "== results: $(thousands "$EVENTS") events over $((SPAN / 3600)) h, $CONNECTIONS clients, gateway workers ${WORKERS:-4 (default)}, $(nproc) cpus ($CPU_MODEL), wrk on the same machine"
{
	printf '%s\n' "request|s|requests|req/s|mean ms|conns/(req/s) ms|p50 ms|p99 ms|non-2xx/errors|timedOut|goal|"
	printf '%s\n' "${rows[@]}"
} | awk -F'|' '
	{ for (i = 1; i <= NF; i++) { cell[NR, i] = $i; if (length($i) > w[i]) w[i] = length($i) } rows = NR; if (NF > cols) cols = NF }
	END {
		for (r = 1; r <= rows; r++) {
			line = sprintf("%-" w[1] "s", cell[r, 1])
			for (i = 2; i <= cols; i++)
				line = line "  " sprintf(i >= cols - 1 ? "%-" w[i] "s" : "%" w[i] "s", cell[r, i])
			sub(/ +$/, "", line)
			print line
		}
	}'
echo "(conns/(req/s): the mean latency Little's law gives for $CONNECTIONS connections always waiting; far above"
echo " wrk's mean, some connections were left waiting for answers wrk never saw, and p50/p99 flatter the server)"
