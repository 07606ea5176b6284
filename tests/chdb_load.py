"""Loads the batches `dstore export clickhouse --schema modern --out DIR` wrote into a current
ClickHouse engine (chdb, in process): creates the table from DIR/create.sql, inserts every
DIR/batch-*.rowbinary with the columns of DIR/insert.sql, and prints key=value facts for
tests/clickhouse.rs to compare with `dstore grep`. Fails loudly on any ClickHouse error."""

import glob
import os
import sys

from chdb import session


def main(d):
    s = session.Session()
    s.query(open(os.path.join(d, "create.sql")).read())
    insert = open(os.path.join(d, "insert.sql")).read().strip()
    suffix = " FORMAT RowBinary"
    assert insert.endswith(suffix), insert
    head = insert[: -len(suffix)]
    batches = sorted(glob.glob(os.path.join(d, "batch-*.rowbinary")))
    assert batches, "no batches in " + d
    for path in batches:
        # The table's own column types read the file: exactly what the server would be sent.
        s.query(f"{head} SELECT * FROM file('{path}', 'RowBinary')")

    def one(sql):
        return s.query(sql, "TSV").bytes().decode().strip()

    print("version=" + one("SELECT version()"))
    print("rows=" + one("SELECT count() FROM dns_events"))
    print("undecodable=" + one("SELECT sum(undecodable) FROM dns_events"))
    first = one(
        "SELECT toString(message_id), toString(requestor), toUnixTimestamp64Micro(time) "
        "FROM dns_events WHERE type = 'response' AND undecodable = 0 ORDER BY time, seq LIMIT 1"
    ).split("\t")
    micros = int(first[2])
    print("first_response_id=" + first[0])
    print("first_response_requestor=" + first[1])
    print(f"first_response_time={micros // 1000000}.{micros % 1000000:06d}")
    print(
        "responses_a="
        + one(
            "SELECT count() FROM dns_events WHERE type = 'response' AND qtype = 1 AND undecodable = 0"
        )
    )
    create = one("SHOW CREATE TABLE dns_events").replace("\\n", " ")
    print("ttl=" + ("TTL" if "TTL" in create else "none"))


if __name__ == "__main__":
    main(sys.argv[1])
