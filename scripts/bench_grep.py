#!/usr/bin/env python3
"""The small jobs of scripts/bench-grep.sh that bash does badly: free loopback ports, the block
headers of a store (read straight from the segment files, as FORMAT.md lays them out), reading
`dstore grep` JSON, and recounting matches from `dstore cat` output when dstore and ClickHouse
disagree. Standard library only.

    bench_grep.py ports N                      N free TCP ports on 127.0.0.1, one per line
    bench_grep.py blocks STORE [FROM TO]       block count, events, first and last event time (µs);
                                               with FROM TO (µs), also the blocks whose time range
                                               meets [FROM, TO]
    bench_grep.py rare-candidates N            from `--top qname ... --count` JSON on stdin: up to
                                               N names seen exactly once, one per line
    bench_grep.py top                          from `--top FIELD N --count` JSON on stdin:
                                               "count<TAB>value" lines
    bench_grep.py times                        from NDJSON on stdin: "min max" event times (µs)
    bench_grep.py recount KIND ARG [ARG2]      from `dstore cat` JSON lines on stdin, the number of
                                               events matching KIND: rcode N | requestor IP |
                                               qname NAME | window FROM TO (unix seconds)
    bench_grep.py recount-top N FROM TO        from `dstore cat` JSON lines on stdin: the N most
                                               frequent qnames of events in [FROM, TO) (unix
                                               seconds) as "count<TAB>qname" lines
"""

import collections
import glob
import json
import os
import socket
import struct
import sys

# FORMAT.md: a segment starts with a 32-byte header, then blocks, each a 64-byte header and its
# payload; a sealed segment's footer index follows the last block and starts with no block magic.
FILE_HEADER_LEN = 32
BLOCK_HEADER_LEN = 64
BLOCK_MAGIC = b"dblk"
EVENT_COUNT_OFFSET = 4
MIN_TIME_OFFSET = 8
MAX_TIME_OFFSET = 16
PAYLOAD_LENGTH_OFFSET = 32


def ports(n):
    socks = []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        for s in socks:
            print(s.getsockname()[1])
    finally:
        for s in socks:
            s.close()


def store_blocks(store):
    """(min time, max time, events) of every block, segments in sequence order."""
    blocks = []
    for path in sorted(glob.glob(os.path.join(store, "*.dst"))):
        size = os.path.getsize(path)
        with open(path, "rb") as f:
            offset = FILE_HEADER_LEN
            while offset + BLOCK_HEADER_LEN <= size:
                f.seek(offset)
                header = f.read(BLOCK_HEADER_LEN)
                if len(header) < BLOCK_HEADER_LEN or header[:4] != BLOCK_MAGIC:
                    break
                (events,) = struct.unpack_from("<I", header, EVENT_COUNT_OFFSET)
                (min_time,) = struct.unpack_from("<q", header, MIN_TIME_OFFSET)
                (max_time,) = struct.unpack_from("<q", header, MAX_TIME_OFFSET)
                (payload,) = struct.unpack_from("<I", header, PAYLOAD_LENGTH_OFFSET)
                blocks.append((min_time, max_time, events))
                offset += BLOCK_HEADER_LEN + payload
    return blocks


def blocks(store, span):
    found = store_blocks(store)
    if not found:
        sys.exit("bench_grep.py: no blocks in " + store)
    line = "%d %d %d %d" % (
        len(found),
        sum(b[2] for b in found),
        min(b[0] for b in found),
        max(b[1] for b in found),
    )
    if span:
        lo, hi = span
        line += " %d" % sum(1 for b in found if b[0] <= hi and b[1] >= lo)
    print(line)


def top_entries(doc):
    for values in doc["luaresult"]["top"].values():
        return [(v["count"], v["value"]) for v in values]
    return []


def rare_candidates(n):
    entries = top_entries(json.load(sys.stdin))
    once = sorted(value for count, value in entries if count == 1)
    for value in once[:n]:
        print(value)


def top():
    for count, value in top_entries(json.load(sys.stdin)):
        print("%d\t%s" % (count, value))


def times():
    lo = hi = None
    for line in sys.stdin:
        e = json.loads(line)
        t = e["timeSec"] * 1_000_000 + e["timeUsec"]
        lo = t if lo is None else min(lo, t)
        hi = t if hi is None else max(hi, t)
    if lo is None:
        sys.exit("bench_grep.py: no events")
    print(lo, hi)


def recount(kind, args):
    if kind == "rcode":
        want = int(args[0])
        match = lambda e: "rcodeName" in e and e["rcode"] == want
    elif kind == "requestor":
        match = lambda e: e["requestor"] == args[0]
    elif kind == "qname":
        want = args[0].lower().rstrip(".") + "."
        match = lambda e: e["question"].lower() == want
    elif kind == "window":
        lo, hi = int(args[0]), int(args[1])
        match = lambda e: lo <= e["timeSec"] < hi
    else:
        sys.exit("bench_grep.py: unknown recount kind " + kind)
    print(sum(1 for line in sys.stdin if match(json.loads(line))))


def recount_top(n, lo, hi):
    counts = collections.Counter()
    for line in sys.stdin:
        e = json.loads(line)
        if lo <= e["timeSec"] < hi:
            counts[e["question"]] += 1
    for value, count in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:n]:
        print("%d\t%s" % (count, value))


def main(argv):
    if len(argv) < 2:
        sys.exit(__doc__)
    cmd, args = argv[1], argv[2:]
    if cmd == "ports":
        ports(int(args[0]))
    elif cmd == "blocks":
        blocks(args[0], (int(args[1]), int(args[2])) if len(args) == 3 else None)
    elif cmd == "rare-candidates":
        rare_candidates(int(args[0]))
    elif cmd == "top":
        top()
    elif cmd == "times":
        times()
    elif cmd == "recount":
        recount(args[0], args[1:])
    elif cmd == "recount-top":
        recount_top(int(args[0]), int(args[1]), int(args[2]))
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv)
