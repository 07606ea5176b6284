#!/usr/bin/env bash
# Compaction benchmark: makes a store the way overload makes one (ingest sent a synthetic stream as
# fast as one sender can, so that most blocks are written degraded), then times `dstore compact` on
# it and prints bytes per event before and after and events rewritten per second (one core). Checks
# that `dstore cat --raw` gives the same bytes before and after; asserts nothing else.
#
#   scripts/bench-compact.sh               # about a minute
#   EVENTS=1000000 SECONDS_SENT=4 scripts/bench-compact.sh
set -euo pipefail

EVENTS=${EVENTS:-2000000}
SECONDS_SENT=${SECONDS_SENT:-6}
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib.sh
source scripts/lib.sh

for var in EVENTS SECONDS_SENT; do
	[[ ${!var} =~ ^[1-9][0-9]*$ ]] || die "$var must be a positive integer, not '${!var}'"
done

build_release gen_traffic load_gen
DSTORE=${DSTORE:-target/release/dstore}
GEN=target/release/examples/gen_traffic
LOAD=target/release/examples/load_gen
for b in "$DSTORE" "$GEN" "$LOAD"; do [[ -x $b ]] || die "$b was not built"; done

WORK=$(mktemp -d "${TMPDIR:-/tmp}/dstore-bench-compact.XXXXXX")
INGEST=
cleanup() {
	stop_pid "$INGEST"
	rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

describe_machine
echo

"$GEN" --events "$EVENTS" --seed 1 >"$WORK/traffic.pb" 2>/dev/null || die "gen_traffic failed"
: >"$WORK/empty.conf"
echo "== ingest, 4 connections unpaced for $SECONDS_SENT s"
"$DSTORE" ingest --storage-dir "$WORK/store" --config "$WORK/empty.conf" --listen 127.0.0.1:0 \
	--status-interval 0 2>"$WORK/ingest.log" &
INGEST=$!
line=$(wait_for_line "$WORK/ingest.log" 'listening on 127\.0\.0\.1:' "$INGEST") ||
	die "dstore ingest did not start: $(cat "$WORK/ingest.log")"
port=$(sed -n 's/.*listening on 127\.0\.0\.1:\([0-9]*\).*/\1/p' <<<"$line")
"$LOAD" "$WORK/traffic.pb" --target "127.0.0.1:$port" --connections 4 --duration "$SECONDS_SENT" \
	>/dev/null 2>"$WORK/load.err" || die "load_gen failed: $(cat "$WORK/load.err")"
stop_pid "$INGEST" 60
INGEST=
grep -m1 'store closed' "$WORK/ingest.log" | sed 's/^/  /'

# events, bytes on disk: from dstore stats --json.
stats() { "$DSTORE" stats --json --storage-dir "$WORK/store" | sed -n "s/.*\"$1\":\([0-9.]*\).*/\1/p"; }
events=$(stats events)
before=$(stats bytesOnDisk)
"$DSTORE" cat --raw --quiet --storage-dir "$WORK/store" | cksum >"$WORK/before.sum"

echo "== dstore compact"
start=$(now_ms)
"$DSTORE" compact --quiet --storage-dir "$WORK/store" | sed 's/^/  /'
took_ms=$(($(now_ms) - start))
after=$(stats bytesOnDisk)
"$DSTORE" cat --raw --quiet --storage-dir "$WORK/store" | cksum >"$WORK/after.sum"
same=no
cmp -s "$WORK/before.sum" "$WORK/after.sum" && same=yes

echo
echo "== results: $(thousands "$events") events stored by ingest under overload, $(nproc) cpus ($CPU_MODEL)"
echo "bytes per event before:  $(FORMAT=%.1f calc 'b / e' b="$before" e="$events")"
echo "bytes per event after:   $(FORMAT=%.1f calc 'b / e' b="$after" e="$events")"
echo "compact took:            $(FORMAT=%.1f calc 'm / 1000' m="$took_ms") s, $(thousands "$(FORMAT=%.0f calc 'e * 1000 / m' e="$events" m="$took_ms")") events/s"
echo "cat --raw the same bytes: $same"
