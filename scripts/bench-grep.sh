#!/usr/bin/env bash
# Query benchmark: how long whole `dstore grep` commands take on 30 days of realistic dnsdist traffic,
# side by side with whole `clickhouse-client` commands asking ClickHouse the same of the same events,
# and with `lz4 -dc` of the raw stream (the decompression limit of a full scan). Checks that dstore and
# ClickHouse count the same, and prints a verdict against the goals; asserts nothing else.
#
#   scripts/bench-grep.sh                   # 10,000,000 events, 5 runs each, medians; about 5 minutes
#                                           # on 2 cores, over 2 of them loading ClickHouse
#   EVENTS=1000000 RUNS=3 scripts/bench-grep.sh
#
# The events are examples/gen_traffic.rs output (seed fixed) spread evenly over 30 days, imported with
# `dstore import`; ClickHouse gets the same events from `dstore cat`. ClickHouse is the Debian package
# (18.16), installed when missing, run as a private server for this benchmark only: its own config and
# data under the scratch directory, on free loopback ports, stopped by its PID at exit. If it cannot be
# installed or started the benchmark goes on without it (its column says n/a). Its table keeps what
# the queries need, sorted by (qname, time), one partition a day:
#
#   dns (time DateTime, usec UInt32, qname String, qtype UInt16, rcode UInt16, has_rcode UInt8,
#        type UInt8, requestor String, responder String)
#
# Every command is timed whole (process start to exit, output to /dev/null) after one untimed run
# whose output is kept for the checks. The page cache is warm: the figures are CPU, not disk. Scratch
# files live under ${TMPDIR:-/tmp} and are removed on exit.
set -euo pipefail
export LC_ALL=C

EVENTS=${EVENTS:-10000000}
RUNS=${RUNS:-5}
SEED=${SEED:-1}
# 2026-01-01T00:00:00Z
START=${START:-1767225600}
DAYS=30
CH_START_TIMEOUT=${CH_START_TIMEOUT:-60}
CH_STOP_TIMEOUT=${CH_STOP_TIMEOUT:-30}

cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib.sh
source scripts/lib.sh

per_second() { FORMAT=%.0f calc 'ms > 0 ? n * 1000 / ms : 0' n="$1" ms="$2"; }

for var in EVENTS RUNS SEED START CH_START_TIMEOUT CH_STOP_TIMEOUT; do
	[[ ${!var} =~ ^[0-9]+$ && ${!var} != 0 ]] || die "$var must be a positive integer, not '${!var}'"
done
((BASH_VERSINFO[0] >= 5)) || die "bash 5 is needed (EPOCHREALTIME)"
command -v python3 >/dev/null || die "python3 is needed (scripts/bench_grep.py)"

# The one process this script leaves running in the background is the private clickhouse-server.
WORK=
CH_PID=
cleanup() {
	stop_pid "$CH_PID" "$CH_STOP_TIMEOUT"
	[[ -z $WORK ]] || rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

build_release gen_traffic
HELPER=(python3 scripts/bench_grep.py)
for b in target/release/dstore target/release/examples/gen_traffic; do [[ -x $b ]] || die "$b was not built"; done

apt_install() { apt-get install -y "$@" || { apt-get update && apt-get install -y "$@"; }; }
if ! command -v lz4 >/dev/null; then
	say "== installing lz4"
	apt_install lz4 || die "lz4 is needed for the decompression limit; install it and run again"
fi
# Debian's clickhouse-server package also installs a system service; on a machine that starts
# services it may run on the default ports. This benchmark never talks to it: it runs its own server.
CH_WHY=
if ! command -v clickhouse-server >/dev/null || ! command -v clickhouse-client >/dev/null; then
	say "== installing clickhouse-server and clickhouse-client"
	apt_install clickhouse-server clickhouse-client ||
		CH_WHY="apt-get install clickhouse-server clickhouse-client failed"
fi

WORK=$(mktemp -d "${TMPDIR:-/tmp}/dstore-bench-grep.XXXXXX")
mkdir "$WORK/out" "$WORK/bin"
# Copies, so that a build in target/ while this runs cannot swap the binary between two measurements.
cp target/release/dstore target/release/examples/gen_traffic "$WORK/bin/"
DSTORE=$WORK/bin/dstore
GEN=$WORK/bin/gen_traffic
F=$WORK/traffic.pb
STORE=$WORK/store

describe_machine
echo "clickhouse: $(dpkg-query -W -f '${Version}' clickhouse-server 2>/dev/null || echo 'not installed')"
echo "lz4:        $(lz4 -V 2>&1 | grep -o 'v[0-9][0-9.]*' | head -n 1)"
echo "scratch:    $WORK"
echo

# ---- ClickHouse: a private server -------------------------------------------------------------------

CH_OK=false
CH=()
ch() { "${CH[@]}" "$@"; }

# Writes a minimal 18.16 configuration under $WORK/ch, starts the server in the background and waits
# (bounded) until it answers. On failure sets CH_WHY and returns 1; the benchmark goes on without it.
start_clickhouse() {
	local dir=$WORK/ch ports i
	mkdir -p "$dir/data" "$dir/tmp" "$dir/user_files" "$dir/format_schemas" "$dir/log"
	mapfile -t ports < <("${HELPER[@]}" ports 2)
	((${#ports[@]} == 2)) || {
		CH_WHY="no free loopback ports"
		return 1
	}
	CH_PORT=${ports[0]}
	CH_HTTP_PORT=${ports[1]}
	cat >"$dir/config.xml" <<-EOF
		<?xml version="1.0"?>
		<yandex>
		    <logger>
		        <level>warning</level>
		        <log>$dir/log/server.log</log>
		        <errorlog>$dir/log/server.err.log</errorlog>
		        <size>100M</size>
		        <count>1</count>
		    </logger>
		    <listen_host>127.0.0.1</listen_host>
		    <tcp_port>$CH_PORT</tcp_port>
		    <http_port>$CH_HTTP_PORT</http_port>
		    <max_connections>64</max_connections>
		    <max_concurrent_queries>16</max_concurrent_queries>
		    <uncompressed_cache_size>1073741824</uncompressed_cache_size>
		    <mark_cache_size>536870912</mark_cache_size>
		    <path>$dir/data/</path>
		    <tmp_path>$dir/tmp/</tmp_path>
		    <user_files_path>$dir/user_files/</user_files_path>
		    <format_schema_path>$dir/format_schemas/</format_schema_path>
		    <users_config>$dir/users.xml</users_config>
		    <default_profile>default</default_profile>
		    <default_database>default</default_database>
		    <timezone>UTC</timezone>
		    <mlock_executable>false</mlock_executable>
		</yandex>
	EOF
	cat >"$dir/users.xml" <<-'EOF'
		<?xml version="1.0"?>
		<yandex>
		    <profiles>
		        <default>
		            <max_memory_usage>4000000000</max_memory_usage>
		        </default>
		    </profiles>
		    <users>
		        <default>
		            <password></password>
		            <networks><ip>127.0.0.1</ip></networks>
		            <profile>default</profile>
		            <quota>default</quota>
		        </default>
		    </users>
		    <quotas>
		        <default>
		            <interval>
		                <duration>3600</duration>
		                <queries>0</queries>
		                <errors>0</errors>
		                <result_rows>0</result_rows>
		                <read_rows>0</read_rows>
		                <execution_time>0</execution_time>
		            </interval>
		        </default>
		    </quotas>
		</yandex>
	EOF
	clickhouse-server --config-file="$dir/config.xml" >"$dir/log/stdout" 2>&1 &
	CH_PID=$!
	CH=(clickhouse-client --host 127.0.0.1 --port "$CH_PORT")
	for ((i = 0; i < CH_START_TIMEOUT * 4; i++)); do
		if ! alive "$CH_PID"; then
			wait "$CH_PID" 2>/dev/null || true
			CH_PID=
			CH_WHY="clickhouse-server exited at start: $(tail -q -n 3 "$dir/log/server.err.log" "$dir/log/stdout" 2>/dev/null | tr '\n' ' ')"
			return 1
		fi
		if ch --query 'SELECT 1' >/dev/null 2>&1; then
			return 0
		fi
		sleep 0.25
	done
	CH_WHY="clickhouse-server did not answer within ${CH_START_TIMEOUT} s: $(tail -n 3 "$dir/log/server.err.log" 2>/dev/null | tr '\n' ' ')"
	return 1
}

if [[ -z $CH_WHY ]]; then
	echo "== clickhouse-server (private, 127.0.0.1)"
	if start_clickhouse; then
		CH_OK=true
		echo "  pid $CH_PID, tcp port $CH_PORT, http port $CH_HTTP_PORT, version $(ch --query 'SELECT version()')"
	fi
	echo
fi
if ! $CH_OK; then
	say "bench-grep: going on without ClickHouse: $CH_WHY"
fi
# The reason ClickHouse stopped taking part, from any step on; its figures then say n/a.
ch_failed() {
	CH_OK=false
	CH_WHY=$1
	say "bench-grep: going on without ClickHouse: $CH_WHY"
}

# ---- the events --------------------------------------------------------------------------------------

SPAN=$((DAYS * 86400))
RATE=$(FORMAT=%.6f calc 'n / s' n="$EVENTS" s="$SPAN")
echo "== input: $(thousands "$EVENTS") events over $DAYS days from $(date -u -d "@$START" +%FT%TZ) ($RATE events/s), seed $SEED"
t0=$EPOCHREALTIME
"$GEN" --events "$EVENTS" --seed "$SEED" --rate "$RATE" --start "$START" >"$F" 2>"$WORK/gen.log" || {
	cat "$WORK/gen.log" >&2
	die "gen_traffic failed"
}
t1=$EPOCHREALTIME
sed 's/^/  /' "$WORK/gen.log"
INPUT_BYTES=$(stat -c %s "$F")
echo "  generated in $(calc 'b - a' a="$t0" b="$t1") s; $(thousands "$INPUT_BYTES") bytes, $(FORMAT=%.1f calc 'b / n' b="$INPUT_BYTES" n="$EVENTS") bytes/event"
lz4 -1 -q -c "$F" >"$WORK/raw.lz4"
LZ4_BYTES=$(stat -c %s "$WORK/raw.lz4")
echo "  lz4 -1: $(thousands "$LZ4_BYTES") bytes, $(FORMAT=%.1f calc 'b / n' b="$LZ4_BYTES" n="$EVENTS") bytes/event"
echo

echo "== dstore import"
mkdir "$STORE"
t0=$EPOCHREALTIME
"$DSTORE" import --quiet --storage-dir "$STORE" "$F" || die "dstore import failed; see its message above"
t1=$EPOCHREALTIME
IMPORT_SECS=$(calc 'b - a' a="$t0" b="$t1")
STORE_BYTES=$(du -sb "$STORE" | cut -f1)
read -r BLOCKS STORED FIRST_US LAST_US < <("${HELPER[@]}" blocks "$STORE")
[[ ${LAST_US:-} =~ ^[0-9]+$ ]] || die "could not read the block headers of $STORE"
((STORED == EVENTS)) || die "the store holds $STORED events, not $EVENTS"
FIRST_S=$((FIRST_US / 1000000))
LAST_S=$((LAST_US / 1000000))
echo "  imported in $IMPORT_SECS s ($(thousands "$(FORMAT=%.0f calc 'n / s' n="$EVENTS" s="$IMPORT_SECS")") events/s)"
echo "  store: $(thousands "$STORE_BYTES") bytes, $(FORMAT=%.1f calc 'b / n' b="$STORE_BYTES" n="$EVENTS") bytes/event, $(thousands "$BLOCKS") blocks ($(thousands $((EVENTS / BLOCKS))) events/block)"
echo "  events from $(date -u -d "@$FIRST_S" +%FT%TZ) to $(date -u -d "@$LAST_S" +%FT%TZ)"
# The page cache keeps the raw stream's pages only as long as nothing needs the memory; the scans are
# meant to measure CPU, so the generated file goes once it is stored and compressed.
rm -f "$F"
echo

# ---- ClickHouse: the same events ---------------------------------------------------------------------

# dstore cat's JSON goes into a staging table whose columns are named after its keys (ClickHouse parses
# JSONEachRow itself, far faster than a script would), then into `dns` in one INSERT ... SELECT. A
# message without an rcode has no rcodeName: has_rcode says which.
CH_LOAD_SECS=n/a
CH_BYTES=n/a
if $CH_OK; then
	echo "== ClickHouse load (dstore cat | clickhouse-client INSERT ... FORMAT JSONEachRow)"
	t0=$EPOCHREALTIME
	if ! ch --multiquery --query "
		CREATE TABLE dns_json (timeSec UInt32, timeUsec UInt32, question String, qtype UInt16,
			rcode UInt16, rcodeName String, messageType String, requestor String, responder String)
			ENGINE = Log;
		CREATE TABLE dns (time DateTime, usec UInt32, qname String, qtype UInt16, rcode UInt16,
			has_rcode UInt8, type UInt8, requestor String, responder String)
			ENGINE = MergeTree() PARTITION BY toYYYYMMDD(time) ORDER BY (qname, time)" 2>"$WORK/ch.err"; then
		ch_failed "CREATE TABLE failed: $(head -c 300 "$WORK/ch.err")"
	elif ! "$DSTORE" cat --quiet --storage-dir "$STORE" |
		ch --input_format_skip_unknown_fields=1 --query 'INSERT INTO dns_json FORMAT JSONEachRow' 2>"$WORK/ch.err"; then
		ch_failed "loading dstore cat output failed: $(head -c 300 "$WORK/ch.err")"
	else
		t1=$EPOCHREALTIME
		echo "  dstore cat | JSONEachRow into a staging table: $(calc 'b - a' a="$t0" b="$t1") s"
		if ! ch --query "
			INSERT INTO dns SELECT toDateTime(timeSec), timeUsec, question, qtype, rcode, rcodeName != '',
				transform(messageType, ['DNSQueryType', 'DNSResponseType', 'DNSOutgoingQueryType',
					'DNSIncomingResponseType'], [1, 2, 3, 4], 0),
				requestor, responder
			FROM dns_json" 2>"$WORK/ch.err"; then
			ch_failed "INSERT ... SELECT failed: $(head -c 300 "$WORK/ch.err")"
		else
			t2=$EPOCHREALTIME
			echo "  INSERT INTO dns SELECT ... FROM the staging table: $(calc 'b - a' a="$t1" b="$t2") s"
			ch --query 'DROP TABLE dns_json'
			# What a long-lived table looks like: merged, one part a day.
			ch --query 'OPTIMIZE TABLE dns FINAL' 2>"$WORK/ch.err" || say "  OPTIMIZE TABLE dns FINAL failed: $(head -c 300 "$WORK/ch.err")"
			t3=$EPOCHREALTIME
			echo "  OPTIMIZE TABLE dns FINAL: $(calc 'b - a' a="$t2" b="$t3") s"
			CH_LOAD_SECS=$(calc 'b - a' a="$t0" b="$t3")
			read -r CH_ROWS CH_PARTS CH_BYTES < <(ch --query "SELECT sum(rows), count(), sum(bytes_on_disk)
				FROM system.parts WHERE database = currentDatabase() AND table = 'dns' AND active")
			echo "  loaded in $CH_LOAD_SECS s: $(thousands "$CH_ROWS") rows, $CH_PARTS parts, $(thousands "$CH_BYTES") bytes on disk, $(FORMAT=%.1f calc 'b / n' b="$CH_BYTES" n="$EVENTS") bytes/event"
			((CH_ROWS == EVENTS)) || ch_failed "the dns table holds $CH_ROWS rows, not $EVENTS"
		fi
	fi
	echo
fi

# ---- the queries' parameters -------------------------------------------------------------------------

# The 1-minute window: the whole minute nearest the middle of the data.
WIN_FROM=$(((FIRST_S + LAST_S) / 2 / 60 * 60))
WIN_TO=$((WIN_FROM + 60))
# The last day: everything up to and including the last event's second.
DAY_TO=$((LAST_S + 1))
DAY_FROM=$((DAY_TO - 86400))
# One client: the first IPv4 requestor of the window (so an ordinary one, neither the busiest nor idle).
CLIENT=$("$DSTORE" grep --storage-dir "$STORE" --from "$WIN_FROM" --to "$WIN_TO" --ndjson |
	grep -o -m 1 '"requestor":"[0-9.]*"' | cut -d '"' -f 4) || true
[[ -n $CLIENT ]] || CLIENT=$("$DSTORE" grep --storage-dir "$STORE" --limit 1 --ndjson | grep -o '"requestor":"[^"]*"' | cut -d '"' -f 4)
[[ -n $CLIENT ]] || die "found no requestor to search for"

# The rare name. A store with 10,000 blocks needs ~65M events (a block holds ~1 MiB of frames), too
# many here, so the name is rare in the store there is: a qname asked exactly once (its query and its
# response) whose events all lie in one block, found from the data rather than planted, so dstore and
# ClickHouse search the very same bytes. Candidates are the names of the tally of query names with a
# count of 1, in name order; the first whose events span a single block's time range is taken.
echo "== choosing the rare name"
RARE=
RARE_EVENTS=0
"$DSTORE" grep --storage-dir "$STORE" --type query --top qname 1000000 --count >"$WORK/qnames.json" ||
	die "dstore grep --top qname failed"
while IFS= read -r name; do
	"$DSTORE" grep --storage-dir "$STORE" --qname "$name" --ndjson >"$WORK/rare.ndjson" || continue
	read -r lo hi < <("${HELPER[@]}" times <"$WORK/rare.ndjson")
	read -r _ _ _ _ meeting < <("${HELPER[@]}" blocks "$STORE" "$lo" "$hi")
	if ((meeting == 1)); then
		RARE=$name
		RARE_EVENTS=$(wc -l <"$WORK/rare.ndjson")
		break
	fi
done < <("${HELPER[@]}" rare-candidates 50 <"$WORK/qnames.json")
rm -f "$WORK/qnames.json"
if [[ -n $RARE ]]; then
	echo "  $RARE: $RARE_EVENTS events, in 1 block of $(thousands "$BLOCKS") (1 in $(thousands "$BLOCKS"); the goal speaks of 1 in 10,000)"
else
	say "  no qname asked exactly once lies in a single block; the rare-name query is left out"
fi
echo "  client: $CLIENT; window: [$WIN_FROM, $WIN_TO) ($(date -u -d "@$WIN_FROM" +%FT%TZ)); last day: [$DAY_FROM, $DAY_TO)"
echo

# ---- timing -------------------------------------------------------------------------------------------

# measure KEY OK_STATUSES COMMAND...: one untimed run with its stdout kept in $WORK/out/KEY, then RUNS
# timed runs with stdout to /dev/null; MS[KEY] is the median in milliseconds, or n/a if the first run
# ended with a status not in OK_STATUSES (space-separated).
declare -A MS
measure() {
	local key=$1 ok=$2 status=0 run t0 t1 ms=()
	shift 2
	"$@" >"$WORK/out/$key" 2>"$WORK/out/$key.err" || status=$?
	if [[ " $ok " != *" $status "* ]]; then
		say "  $key: exit status $status: $(head -c 300 "$WORK/out/$key.err")"
		MS[$key]=n/a
		return 1
	fi
	for ((run = 1; run <= RUNS; run++)); do
		t0=$EPOCHREALTIME
		"$@" >/dev/null 2>&1 || true
		t1=$EPOCHREALTIME
		ms+=("$(calc '(b - a) * 1000' a="$t0" b="$t1")")
	done
	MS[$key]=$(FORMAT=%.1f calc 'v' v="$(median "${ms[@]}")")
	printf '  %-16s %9s ms   runs: %s\n' "$key" "${MS[$key]}" "$(printf '%.1f ' "${ms[@]}")"
}
dmeasure() { measure "$@" || die "$1: the command failed; see above"; }
# dstore grep exits 1 when nothing matches: that is an answer, not a failure.
dg() { "$DSTORE" grep --storage-dir "$STORE" "$@"; }
chq() {
	if $CH_OK; then
		measure "$1" 0 "${CH[@]}" --query "$2" || ch_failed "a query failed: $2"
	fi
	[[ -n ${MS[$1]:-} ]] || MS[$1]=n/a
}
out() { cat "$WORK/out/$1"; }
lines() { wc -l <"$WORK/out/$1"; }

NPROC=$(nproc)
echo "== queries (median of $RUNS runs after one untimed run; load $(cut -d ' ' -f 1-3 /proc/loadavg))"
dmeasure floor-dstore 0 "$DSTORE" --version
chq floor-ch 'SELECT 1'
dmeasure lz4 0 lz4 -dc "$WORK/raw.lz4"

dmeasure rcode '0 1' dg --count --rcode NXDOMAIN
chq rcode-ch 'SELECT count() FROM dns WHERE rcode = 3 AND has_rcode'

dmeasure client-1 '0 1' dg --count --requestor "$CLIENT" --threads 1
dmeasure client-n '0 1' dg --count --requestor "$CLIENT" --threads "$NPROC"
chq client-ch1 "SELECT count() FROM dns WHERE requestor = '$CLIENT' SETTINGS max_threads = 1"
chq client-ch "SELECT count() FROM dns WHERE requestor = '$CLIENT'"

if [[ -n $RARE ]]; then
	dmeasure rare '0 1' dg --qname "$RARE" --ndjson
	chq rare-ch "SELECT * FROM dns WHERE qname = '$RARE' FORMAT JSONEachRow"
	# A name in no block: what the block summaries alone cost, to scale the rare-name time to the
	# goal's 10,000 blocks (below).
	dmeasure absent '0 1' dg --qname "absent-$RANDOM$RANDOM.invalid" --count
fi

dmeasure window-count '0 1' dg --from "$WIN_FROM" --to "$WIN_TO" --count
chq window-count-ch "SELECT count() FROM dns WHERE time >= toDateTime($WIN_FROM) AND time < toDateTime($WIN_TO)"
dmeasure window-ndjson '0 1' dg --from "$WIN_FROM" --to "$WIN_TO" --ndjson
chq window-ndjson-ch "SELECT * FROM dns WHERE time >= toDateTime($WIN_FROM) AND time < toDateTime($WIN_TO) FORMAT JSONEachRow"

dmeasure top '0 1' dg --from "$DAY_FROM" --to "$DAY_TO" --top qname 10 --count
chq top-ch "SELECT qname, count() AS c FROM dns WHERE time >= toDateTime($DAY_FROM) AND time < toDateTime($DAY_TO)
	GROUP BY qname ORDER BY c DESC, qname LIMIT 10"
echo

# ---- do they agree? -----------------------------------------------------------------------------------

MISMATCHES=0
# agree WHAT DSTORE_VALUE CH_VALUE RECOUNT...: prints both; on a difference, says so loudly and asks a
# third party (RECOUNT..., a command printing the right value) which one is right.
agree() {
	local what=$1 d=$2 c=$3 third
	shift 3
	if [[ $c == n/a ]]; then
		printf '  %-36s dstore %s, ClickHouse n/a\n' "$what" "$d"
	elif [[ $d == "$c" ]]; then
		printf '  %-36s dstore %s, ClickHouse %s: agree\n' "$what" "$d" "$c"
	else
		MISMATCHES=$((MISMATCHES + 1))
		printf '  %-36s dstore %s, ClickHouse %s: MISMATCH\n' "$what" "$d" "$c"
		say "  !!! MISMATCH on $what: dstore says $d, ClickHouse says $c; recounting from dstore cat ..."
		third=$("$@")
		local right=neither
		if [[ $third == "$d" ]]; then
			right="dstore is right"
		elif [[ $third == "$c" ]]; then
			right="ClickHouse is right"
		fi
		printf '  %-36s recount of dstore cat output: %s -> %s\n' "" "$third" "$right"
	fi
}
ch_value() { if [[ ${MS[$1]} == n/a ]]; then echo n/a; else "${@:2}"; fi; }
cat_all() { "$DSTORE" cat --quiet --storage-dir "$STORE"; }
# Around the window with an hour's margin, so the recount does not lean on the time index it checks.
cat_around() { "$DSTORE" cat --quiet --storage-dir "$STORE" --from "$(($1 - 3600))" --to "$(($2 + 3600))"; }
recount_all() { cat_all | "${HELPER[@]}" recount "$@"; }
recount_window() { cat_around "$WIN_FROM" "$WIN_TO" | "${HELPER[@]}" recount window "$WIN_FROM" "$WIN_TO"; }
recount_top() { cat_around "$DAY_FROM" "$DAY_TO" | "${HELPER[@]}" recount-top 10 "$DAY_FROM" "$DAY_TO" | tr '\t\n' ' ;'; }

echo "== dstore and ClickHouse agree?"
agree "NXDOMAIN responses" "$(out rcode)" "$(ch_value rcode-ch out rcode-ch)" recount_all rcode 3
[[ $(out client-1) == "$(out client-n)" ]] || {
	MISMATCHES=$((MISMATCHES + 1))
	say "  !!! MISMATCH: --threads 1 counts $(out client-1) events of $CLIENT, --threads $NPROC counts $(out client-n)"
}
agree "events of $CLIENT" "$(out client-n)" "$(ch_value client-ch out client-ch)" recount_all requestor "$CLIENT"
if [[ -n $RARE ]]; then
	agree "events of the rare name" "$(lines rare)" "$(ch_value rare-ch lines rare-ch)" recount_all qname "$RARE"
fi
agree "events in the window (count)" "$(out window-count)" "$(ch_value window-count-ch out window-count-ch)" recount_window
agree "events in the window (ndjson lines)" "$(lines window-ndjson)" "$(ch_value window-ndjson-ch lines window-ndjson-ch)" recount_window
# Names with equal counts may come in either order: compare (count, name) pairs sorted the same way.
"${HELPER[@]}" top <"$WORK/out/top" | sort -t $'\t' -k1,1nr -k2,2 >"$WORK/top.dstore"
TOP_SUMMARY="$(wc -l <"$WORK/top.dstore") names, counts $(head -n 1 "$WORK/top.dstore" | cut -f1) to $(tail -n 1 "$WORK/top.dstore" | cut -f1)"
if [[ ${MS[top-ch]} == n/a ]]; then
	agree "top 10 qnames of the last day" "$TOP_SUMMARY" n/a true
else
	awk -F '\t' '{ print $2 "\t" $1 }' "$WORK/out/top-ch" | sort -t $'\t' -k1,1nr -k2,2 >"$WORK/top.ch"
	if cmp -s "$WORK/top.dstore" "$WORK/top.ch"; then
		agree "top 10 qnames of the last day" "$TOP_SUMMARY" "$TOP_SUMMARY" true
	else
		agree "top 10 qnames of the last day" "$(tr '\t\n' ' ;' <"$WORK/top.dstore")" "$(tr '\t\n' ' ;' <"$WORK/top.ch")" recount_top
	fi
fi
echo

# ---- results ------------------------------------------------------------------------------------------

# verdict DSTORE_MS CH_MS [MAX_MS] [MIN_EVENTS_PER_S EVENTS_PER_S]: "met", or "missed: " and why.
verdict() {
	local d=$1 c=$2 max=${3:-} min_eps=${4:-} eps=${5:-} why=()
	if [[ $d == n/a ]]; then
		echo "n/a"
		return
	fi
	if [[ -n $max ]] && [[ $(calc 'd < m' d="$d" m="$max") == 0.000000 ]]; then why+=("${d} ms"); fi
	if [[ -n $min_eps ]] && [[ $(calc 'e >= m' e="$eps" m="$min_eps") == 0.000000 ]]; then why+=("$(thousands "$eps") events/s"); fi
	if [[ $c != n/a ]] && [[ $(calc 'd < c' d="$d" c="$c") == 0.000000 ]]; then why+=("not faster than ClickHouse"); fi
	if ((${#why[@]} == 0)); then
		if [[ $c == n/a ]]; then echo "met (no ClickHouse)"; else echo "met"; fi
	else
		local IFS=';'
		echo "missed: ${why[*]}" | sed 's/;/; /g'
	fi
}

ROWS=()
# row QUERY DSTORE_MS CH_MS LZ4_MS EVENTS_PER_S GOAL VERDICT
row() {
	local IFS='|'
	ROWS+=("$*")
}
eps() { if [[ $1 == n/a ]]; then echo n/a; else thousands "$(per_second "$EVENTS" "$1")"; fi; }
EPS_1=$(per_second "$EVENTS" "${MS[client-1]}")

row query "dstore ms" "ClickHouse ms" "lz4 -dc ms" "dstore events/s" goal ""
row "process start (--version / SELECT 1)" "${MS[floor-dstore]}" "${MS[floor-ch]}" "" "" "" ""
row "count --rcode NXDOMAIN, all events" "${MS[rcode]}" "${MS[rcode-ch]}" "${MS[lz4]}" "$(eps "${MS[rcode]}")" \
	"< ClickHouse" "$(verdict "${MS[rcode]}" "${MS[rcode-ch]}")"
row "count --requestor, scan, 1 thread (*)" "${MS[client-1]}" "${MS[client-ch1]}" "${MS[lz4]}" "$(eps "${MS[client-1]}")" \
	">= 10,000,000/s, < ClickHouse" "$(verdict "${MS[client-1]}" "${MS[client-ch1]}" "" 10000000 "$EPS_1")"
row "count --requestor, scan, $NPROC threads" "${MS[client-n]}" "${MS[client-ch]}" "${MS[lz4]}" "$(eps "${MS[client-n]}")" \
	"< ClickHouse" "$(verdict "${MS[client-n]}" "${MS[client-ch]}")"
if [[ -n $RARE ]]; then
	row "rare qname (1 of $(thousands "$BLOCKS") blocks), ndjson" "${MS[rare]}" "${MS[rare-ch]}" "" "" \
		"< 100 ms, < ClickHouse" "$(verdict "${MS[rare]}" "${MS[rare-ch]}" 100)"
fi
row "1-minute window of 30 days, count" "${MS[window-count]}" "${MS[window-count-ch]}" "" "" \
	"< 20 ms, < ClickHouse" "$(verdict "${MS[window-count]}" "${MS[window-count-ch]}" 20)"
row "1-minute window of 30 days, ndjson" "${MS[window-ndjson]}" "${MS[window-ndjson-ch]}" "" "" \
	"< 20 ms, < ClickHouse" "$(verdict "${MS[window-ndjson]}" "${MS[window-ndjson-ch]}" 20)"
row "top 10 qnames, last day" "${MS[top]}" "${MS[top-ch]}" "" "" \
	"< ClickHouse" "$(verdict "${MS[top]}" "${MS[top-ch]}")"

echo "== results: $(thousands "$EVENTS") events over $DAYS days, median of $RUNS runs, whole commands, $NPROC cpus ($CPU_MODEL)"
printf '%s\n' "${ROWS[@]}" | awk -F'|' '
	{ for (i = 1; i <= NF; i++) { cell[NR, i] = $i; if (length($i) > w[i]) w[i] = length($i) } rows = NR }
	END {
		for (r = 1; r <= rows; r++) {
			line = sprintf("%-" w[1] "s  %" w[2] "s  %" w[3] "s  %" w[4] "s  %" w[5] "s  %-" w[6] "s  %s",
				cell[r, 1], cell[r, 2], cell[r, 3], cell[r, 4], cell[r, 5], cell[r, 6], cell[r, 7])
			sub(/ +$/, "", line)
			print line
		}
	}'
echo
echo "(*) ClickHouse with max_threads = 1 in this row; with its default ($NPROC threads) in the others."
if [[ -n $RARE ]] && ((BLOCKS >= 1000)); then
	# Rejecting a block by its summary costs (absent - process start) / blocks; the rare-name search on
	# 10,000 blocks pays that for the blocks this store lacks. (Below 1,000 blocks, process start and
	# noise outweigh it.)
	echo "rare qname scaled to 10,000 blocks: ~$(FORMAT=%.0f calc 'r + (10000 - n) * (a - f) / n' r="${MS[rare]}" a="${MS[absent]}" f="${MS[floor-dstore]}" n="$BLOCKS") ms (a name in no block: ${MS[absent]} ms for $(thousands "$BLOCKS") blocks, $(FORMAT=%.1f calc '(a - f) * 1000 / n' a="${MS[absent]}" f="${MS[floor-dstore]}" n="$BLOCKS") µs a block)"
fi
echo "lz4 -dc of the raw stream: $(eps "${MS[lz4]}") events/s; ClickHouse requestor scan: $(eps "${MS[client-ch1]}") events/s on 1 thread, $(eps "${MS[client-ch]}") on $NPROC"
echo "dstore: $(thousands "$STORE_BYTES") bytes ($(FORMAT=%.1f calc 'b / n' b="$STORE_BYTES" n="$EVENTS") bytes/event), $(thousands "$BLOCKS") blocks; import $IMPORT_SECS s"
if [[ $CH_BYTES != n/a ]]; then
	echo "ClickHouse: $(thousands "$CH_BYTES") bytes ($(FORMAT=%.1f calc 'b / n' b="$CH_BYTES" n="$EVENTS") bytes/event, 9 columns only), load $CH_LOAD_SECS s"
else
	echo "ClickHouse: n/a${CH_WHY:+ ($CH_WHY)}"
fi
echo "raw stream: $(thousands "$INPUT_BYTES") bytes framed, $(thousands "$LZ4_BYTES") with lz4 -1"
if ((MISMATCHES > 0)); then
	echo "!!! $MISMATCHES MISMATCH(ES) between dstore and ClickHouse: see above"
elif [[ ${MS[top-ch]} == n/a ]]; then
	echo "no ClickHouse counts to compare with"
else
	echo "dstore and ClickHouse agree on every count"
fi
