#!/usr/bin/env bash
# ClickHouse shipping benchmark: how many rows per second `dstore export clickhouse` and
# `dstore ship` put into a real ClickHouse (Debian's clickhouse-server, run privately on loopback),
# and how many bytes each event costs on the wire and in ClickHouse's storage. Side by side in one
# run: rows encoded without any network (`--out`, the encoder's own limit), inserts with ClickHouse's
# LZ4 framing, inserts uncompressed, and the ship daemon from an empty position to caught up.
# Prints figures; asserts nothing.
#
#   scripts/bench-clickhouse.sh                 # 1M events, 3 runs of each case
#   EVENTS=200000 RUNS=1 scripts/bench-clickhouse.sh
#
# The stream is examples/gen_traffic.rs output (seed fixed), imported once into a scratch store.
# Every figure is the median of RUNS runs; each run inserts into a table dropped and created anew.
# The server and the scratch directory under ${TMPDIR:-/tmp} are removed on exit.
set -euo pipefail

EVENTS=${EVENTS:-1000000}
RUNS=${RUNS:-3}
SEED=${SEED:-1}
BATCH_ROWS=${BATCH_ROWS:-100000}
START_TIMEOUT=${START_TIMEOUT:-60}

cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib.sh
source scripts/lib.sh

for var in EVENTS RUNS SEED BATCH_ROWS START_TIMEOUT; do
	[[ ${!var} =~ ^[0-9]+$ && ${!var} != 0 ]] || die "$var must be a positive integer, not '${!var}'"
done
((BASH_VERSINFO[0] >= 5)) || die "bash 5 is needed (EPOCHREALTIME)"
command -v clickhouse-server >/dev/null || die "clickhouse-server is needed: apt-get install clickhouse-server"
command -v curl >/dev/null || die "curl is needed"

WORK=
CH_PID=
cleanup() {
	stop_pid "$CH_PID" 10
	[[ -z $WORK ]] || rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

build_release gen_traffic
WORK=$(mktemp -d "${TMPDIR:-/tmp}/dstore-bench-clickhouse.XXXXXX")
mkdir -p "$WORK/bin" "$WORK/ch"/{data,tmp,user_files,format_schemas,log}
# Copies, so that a build in target/ while this runs cannot swap the binary between measurements.
cp target/release/dstore target/release/examples/gen_traffic "$WORK/bin/"
DSTORE=$WORK/bin/dstore
STORE=$WORK/store

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
TCP_PORT=$(free_port)
HTTP_PORT=$(free_port)
URL=http://127.0.0.1:$HTTP_PORT
cat >"$WORK/ch/config.xml" <<EOF
<?xml version="1.0"?>
<yandex>
    <logger><level>warning</level><log>$WORK/ch/log/server.log</log><errorlog>$WORK/ch/log/server.err.log</errorlog><size>100M</size><count>1</count></logger>
    <listen_host>127.0.0.1</listen_host>
    <tcp_port>$TCP_PORT</tcp_port>
    <http_port>$HTTP_PORT</http_port>
    <path>$WORK/ch/data/</path>
    <tmp_path>$WORK/ch/tmp/</tmp_path>
    <user_files_path>$WORK/ch/user_files/</user_files_path>
    <format_schema_path>$WORK/ch/format_schemas/</format_schema_path>
    <users_config>$WORK/ch/users.xml</users_config>
    <default_profile>default</default_profile>
    <default_database>default</default_database>
    <timezone>UTC</timezone>
    <mark_cache_size>536870912</mark_cache_size>
    <mlock_executable>false</mlock_executable>
</yandex>
EOF
cat >"$WORK/ch/users.xml" <<'EOF'
<?xml version="1.0"?>
<yandex>
    <profiles><default><max_memory_usage>4000000000</max_memory_usage></default></profiles>
    <users><default><password></password><networks><ip>127.0.0.1</ip></networks><profile>default</profile><quota>default</quota></default></users>
    <quotas><default></default></quotas>
</yandex>
EOF
clickhouse-server --config-file="$WORK/ch/config.xml" >"$WORK/ch/log/stdout" 2>&1 &
CH_PID=$!
q() { curl -sS --fail-with-body "$URL/" --data-binary "$1"; }
for ((i = 0; i < START_TIMEOUT * 4; i++)); do
	q 'SELECT 1' >/dev/null 2>&1 && break
	alive "$CH_PID" || die "clickhouse-server exited: $(tail -n 3 "$WORK/ch/log/server.err.log" 2>/dev/null)"
	sleep 0.25
done
q 'SELECT 1' >/dev/null || die "clickhouse-server did not answer within $START_TIMEOUT s"

describe_machine
echo "clickhouse: $(q 'SELECT version()') (private, 127.0.0.1, sharing the machine with dstore)"
echo

say "== $EVENTS synthetic events into a scratch store"
"$WORK/bin/gen_traffic" --events "$EVENTS" --seed "$SEED" >"$WORK/traffic.pb"
"$DSTORE" import -q --storage-dir "$STORE" "$WORK/traffic.pb"
rm "$WORK/traffic.pb"
ROWS=$("$DSTORE" grep --count --storage-dir "$STORE")
echo "events:     $ROWS"
echo "batch:      $BATCH_ROWS rows per insert"
echo

# run_case NAME COMMAND...: runs the command RUNS times against a fresh table, timing each and
# taking dstore's own CPU time (user + system, from bash's `time`); the command's stderr is kept in
# $WORK/last.err.
declare -A RATE BYTES CPU
run_case() {
	local name=$1 rates=() cpus=() t0 t1 TIMEFORMAT='%U %S'
	shift
	for ((r = 1; r <= RUNS; r++)); do
		q 'DROP TABLE IF EXISTS bench' >/dev/null
		rm -rf "$WORK/out" "$WORK/position"
		t0=$(now_ms)
		{ time "$@" 2>"$WORK/last.err"; } 2>"$WORK/time.out" ||
			die "$name failed: $(tail -n 3 "$WORK/last.err")"
		t1=$(now_ms)
		rates+=($((ROWS * 1000 / (t1 - t0 > 0 ? t1 - t0 : 1))))
		cpus+=("$(awk -v n="$ROWS" '{ printf "%.2f", ($1 + $2) * 1000000 / n }' "$WORK/time.out")")
	done
	RATE[$name]=$(median "${rates[@]}")
	CPU[$name]=$(median "${cpus[@]}")
}
common=(--storage-dir "$STORE" --table bench --batch-rows "$BATCH_ROWS" --node bench)

say "== encode only (--out)"
run_case encode "$DSTORE" export clickhouse -q "${common[@]}" --schema legacy --out "$WORK/out"
BYTES[encode]=$(du -cb "$WORK"/out/batch-*.rowbinary | tail -n 1 | awk -v n="$ROWS" '{ printf "%.1f", $1 / n }')

say "== export, LZ4 framing"
run_case export-lz4 "$DSTORE" export clickhouse "${common[@]}" --url "$URL" --create
BYTES[export-lz4]=$(grep -o '[0-9.]* bytes sent per row' "$WORK/last.err" | cut -d ' ' -f 1)
STORED=$(q "SELECT sum(data_compressed_bytes) / sum(rows) FROM system.parts WHERE table = 'bench' AND active")
COUNTED=$(q 'SELECT count() FROM bench')
[[ $COUNTED == "$ROWS" ]] || die "ClickHouse holds $COUNTED rows, the store $ROWS"

say "== export, uncompressed"
run_case export-plain "$DSTORE" export clickhouse "${common[@]}" --url "$URL" --create --no-compress
BYTES[export-plain]=$(grep -o '[0-9.]* bytes sent per row' "$WORK/last.err" | cut -d ' ' -f 1)

say "== ship, empty position to caught up"
run_case ship "$DSTORE" ship "${common[@]}" --url "$URL" --create --until-caught-up \
	--position-file "$WORK/position"
COUNTED=$(q 'SELECT count() FROM bench')
[[ $COUNTED == "$ROWS" ]] || die "after ship ClickHouse holds $COUNTED rows, the store $ROWS"

echo "== rows per second and dstore's CPU seconds per million rows (median of $RUNS), bytes per event"
printf '%-34s %12s %12s %18s\n' case rows/s cpu-s/M bytes/event
printf '%-34s %12s %12s %18s\n' "encode rows only (--out)" "${RATE[encode]}" "${CPU[encode]}" "${BYTES[encode]} RowBinary"
printf '%-34s %12s %12s %18s\n' "export, LZ4 framing" "${RATE[export-lz4]}" "${CPU[export-lz4]}" "${BYTES[export-lz4]} sent"
printf '%-34s %12s %12s %18s\n' "export, uncompressed" "${RATE[export-plain]}" "${CPU[export-plain]}" "${BYTES[export-plain]} sent"
printf '%-34s %12s %12s %18s\n' "ship --until-caught-up (LZ4)" "${RATE[ship]}" "${CPU[ship]}" "-"
printf '%-34s %12s %12s %18.1f\n' "ClickHouse storage (legacy table)" "-" "-" "$STORED"
printf '%-34s %12s %12s %18.1f\n' "dstore storage" "-" "-" "$(du -cb "$STORE"/*.dst | tail -n 1 | awk -v n="$ROWS" '{ print $1 / n }')"
