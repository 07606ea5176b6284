//! `dstore compact` on stores whose degraded blocks (written while ingest was behind) the tests
//! made through the library from the real samples: every event reads back exactly as before, in
//! the same order, from fewer bytes; what a shipper has not sent, the segment being written and
//! segments compacted before are left alone; a crash's leftover is cleaned up.

mod common;

use common::*;
use dstore::clickhouse::ship::{Batch, Position, PositionFile, Reader};
use dstore::clickhouse::Flavor;
use dstore::filter::Filter;
use dstore::format::codec::Encoder;
use dstore::format::compact::compact_segment;
use dstore::format::store::sequence_of;
use dstore::format::{segment_paths, Segment, WriterOptions};
use std::path::{Path, PathBuf};

/// Every frame of the samples, the malformed dnspcap2protobuf ones among them.
fn sample_frames() -> Vec<Vec<u8>> {
    SAMPLES
        .iter()
        .flat_map(|name| frames_of(&std::fs::read(sample(name)).expect("read a sample")))
        .collect()
}

/// One writer session: one new segment holding `frames`, the blocks from `degraded_from` on
/// written degraded; sealed, or left as a writer that stopped without closing leaves it.
fn write_segment(dir: &Path, frames: &[Vec<u8>], degraded_from: usize, seal: bool) -> PathBuf {
    let before = segment_paths(dir).unwrap_or_default();
    let options = WriterOptions {
        block_bytes: 16 << 10,
        ..WriterOptions::default()
    };
    let (mut w, _) = open_writer(dir, options);
    for (i, f) in frames.iter().enumerate() {
        w.set_degraded(i >= degraded_from);
        w.append(f, 1_700_000_000_000_000 + i as u64)
            .expect("append");
    }
    if seal {
        w.close().expect("close");
    } else {
        w.flush().expect("flush");
    }
    let after = segment_paths(dir).expect("list the store");
    let new: Vec<&PathBuf> = after.iter().filter(|p| !before.contains(p)).collect();
    assert_eq!(new.len(), 1, "one writer session makes one segment");
    new[0].clone()
}

/// What a reader learns of each event of a segment, in order; every block must read.
fn events(path: &Path) -> Vec<Read> {
    let (events, errors) = read_events(path);
    assert!(errors.is_empty(), "{}: {errors:?}", path.display());
    events
}

/// Blocks of a segment without a summary: the degraded ones.
fn without_summary(path: &Path) -> usize {
    let segment = Segment::open(path).expect("open a segment");
    let mut buf = Vec::new();
    segment
        .blocks
        .iter()
        .filter(|b| segment.read_summary(b, &mut buf).is_none())
        .count()
}

fn compact(dir: &Path, extra: &[&str]) -> String {
    let mut args = vec![
        "compact",
        "--storage-dir",
        dir.to_str().expect("utf-8 path"),
    ];
    args.extend_from_slice(extra);
    let o = run(&args);
    assert!(o.status.success(), "dstore {args:?}: {}", stderr(&o));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn cat(dir: &Path, raw: bool) -> Vec<u8> {
    let mut args = vec![
        "cat",
        "-q",
        "--storage-dir",
        dir.to_str().expect("utf-8 path"),
    ];
    if raw {
        args.push("--raw");
    }
    let o = run(&args);
    assert!(o.status.success(), "dstore {args:?}: {}", stderr(&o));
    o.stdout
}

fn size(path: &Path) -> u64 {
    std::fs::metadata(path).expect("stat").len()
}

#[test]
fn compact_rewrites_degraded_blocks_into_the_same_events_in_fewer_bytes() {
    let scratch = Scratch::new("compact");
    let dir = scratch.0.join("store");
    let frames = sample_frames();
    let half = frames.len() / 2;
    // Degraded whole; normal then degraded; degraded behind a shipper; degraded, being written.
    let paths = [
        write_segment(&dir, &frames, 0, true),
        write_segment(&dir, &frames, half, true),
        write_segment(&dir, &frames, 0, true),
        write_segment(&dir, &frames[..half], 0, false),
    ];
    for p in &paths {
        assert!(without_summary(p) > 0, "test set-up: degraded blocks");
    }
    let seq = |p: &Path| -> u64 {
        sequence_of(&p.file_name().expect("a name").to_string_lossy()).expect("a segment number")
    };
    let ship = PositionFile {
        path: dir.join("ship-ch1-8123-dns_events.position"),
    };
    ship.save(Position::start_of(seq(&paths[2])))
        .expect("save a position");
    let want: Vec<_> = paths.iter().map(|p| events(p)).collect();
    let (raw, json) = (cat(&dir, true), cat(&dir, false));
    let sizes: Vec<u64> = paths.iter().map(|p| size(p)).collect();

    let before = snapshot(&dir);
    let out = compact(&dir, &["--dry-run"]);
    assert!(
        out.contains("Would compact 2 segments") && out.contains("stopping at segment"),
        "{out}"
    );
    assert!(snapshot(&dir) == before, "a dry run changed the store");

    // A compaction that crashed left its temporary file; readers do not see it.
    let leftover = dir.join(format!(
        ".{}.compacting",
        paths[2].file_name().expect("a name").to_string_lossy()
    ));
    std::fs::write(&leftover, b"half a segment").expect("write a leftover");
    assert_eq!(cat(&dir, true), raw, "a leftover is not read");

    let out = compact(&dir, &[]);
    assert!(out.contains("Compacted 2 segments"), "{out}");
    assert!(!leftover.exists(), "the leftover is removed");
    for (i, p) in paths.iter().enumerate() {
        assert_eq!(events(p), want[i], "segment {i} reads back the same events");
    }
    for p in &paths[..2] {
        assert_eq!(
            without_summary(p),
            0,
            "{}: every block compacted",
            p.display()
        );
    }
    assert!(
        size(&paths[0]) * 10 < sizes[0] * 9,
        "a degraded segment shrinks by a tenth at least: {} from {}",
        size(&paths[0]),
        sizes[0]
    );
    assert!(
        size(&paths[1]) < sizes[1],
        "a half-degraded segment shrinks"
    );
    let untouched = |p: &Path| {
        let name = p.file_name().expect("a name").to_string_lossy();
        std::fs::read(p).expect("read") == before[&*name]
    };
    assert!(
        untouched(&ship.path) && untouched(&paths[2]) && untouched(&paths[3]),
        "what the shipper has not sent, and the segment being written, are untouched"
    );
    assert_eq!(cat(&dir, true), raw, "cat --raw gives the same bytes");
    assert_eq!(cat(&dir, false), json, "cat gives the same JSON");
    assert_eq!(
        std::fs::read_to_string(dir.join("compacted-through")).expect("the marker"),
        format!("{}\n", seq(&paths[1]))
    );

    // stats says how far compaction went and what the shipper has still to send.
    let o = run(&[
        "stats",
        "--json",
        "--storage-dir",
        dir.to_str().expect("utf-8 path"),
    ]);
    let doc: serde_json::Value = serde_json::from_slice(&o.stdout).expect("stats --json");
    assert_eq!(doc["compactedThrough"], seq(&paths[1]));
    assert_eq!(
        doc["shippers"],
        serde_json::json!([{
            "file": "ship-ch1-8123-dns_events.position",
            "segment": seq(&paths[2]),
            "offset": 0,
            "bytesBehind": size(&paths[2]) + size(&paths[3]),
        }])
    );

    // Again: nothing new. Once the shipper moved on, the next segment; never the one being written.
    assert!(compact(&dir, &[]).contains("Compacted 0 segments"));
    ship.save(Position::start_of(seq(&paths[3])))
        .expect("save a position");
    assert!(compact(&dir, &["-q"]).contains("Compacted 1 segments"));
    assert_eq!(without_summary(&paths[2]), 0);
    assert!(
        untouched(&paths[3]),
        "the segment being written is untouched"
    );
    for (i, p) in paths.iter().enumerate() {
        assert_eq!(events(p), want[i], "segment {i} after the second run");
    }

    // --all looks behind the marker. Opening the store for writing seals the segment left being
    // written; a new degraded segment follows it, and the marker and the shipper are moved past
    // both.
    let late = write_segment(&dir, &frames, 0, true);
    std::fs::write(dir.join("compacted-through"), format!("{}\n", seq(&late))).expect("marker");
    ship.save(Position::start_of(seq(&late) + 1))
        .expect("save a position");
    assert!(compact(&dir, &["--dry-run"]).contains("Would compact 0 segments"));
    let out = compact(&dir, &["--all", "--dry-run"]);
    assert!(out.contains("Would compact 2 segments"), "{out}");
}

/// A reader that went away (`dstore stats | head -1`, say) ends the maintenance commands quietly with
/// success, as it ends cat and grep: no panic, no error.
#[test]
fn maintenance_output_into_a_closed_pipe_ends_quietly() {
    let scratch = Scratch::new("compact-pipe");
    let dir = scratch.0.join("store");
    write_segment(&dir, &sample_frames(), 0, true);
    let store = dir.to_str().expect("utf-8 path");
    for args in [
        vec!["stats", "--storage-dir", store],
        vec!["rotate", "1", "hour", "--storage-dir", store],
        vec!["compact", "--dry-run", "--all", "--storage-dir", store],
    ] {
        let (reader, writer) = std::io::pipe().expect("a pipe");
        drop(reader);
        let o = dstore()
            .args(&args)
            .stdout(writer)
            .stderr(std::process::Stdio::piped())
            .output()
            .expect("run dstore");
        assert!(
            o.status.success() && o.stderr.is_empty(),
            "dstore {args:?} into a closed pipe: {}, {}",
            o.status,
            stderr(&o)
        );
    }
}

/// A shipper says where it stands as soon as it starts, before ClickHouse took anything (here there
/// is no ClickHouse at all): from then on compact and rotate leave the whole store to it.
#[test]
fn a_shipper_that_has_sent_nothing_yet_holds_compact_and_rotate_off() {
    let scratch = Scratch::new("compact-new-shipper");
    let dir = scratch.0.join("store");
    let path = write_segment(&dir, &sample_frames(), 0, true);
    let store = dir.to_str().expect("utf-8 path");
    let url = format!("http://127.0.0.1:{}", free_port());
    let mut child = dstore()
        .args(["ship", "--storage-dir", store, "--url", &url])
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start dstore ship");
    let position = dir.join(format!(
        "ship-127.0.0.1-{}-dns_events.position",
        url.rsplit(':').next().expect("a port")
    ));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !position.exists() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
    let saved = PositionFile {
        path: position.clone(),
    }
    .load();
    assert_eq!(
        saved,
        Ok(Some(Position::start_of(0))),
        "{}",
        position.display()
    );
    let size = size(&path);
    assert!(compact(&dir, &[]).contains("Compacted 0 segments"));
    let o = run(&["rotate", "--older-than", "1s", "--storage-dir", store]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(std::fs::metadata(&path).map(|m| m.len()).ok(), Some(size));
}

/// A shipper halfway through a segment when it is compacted under it (one that started after
/// compact looked for shippers, say) goes on at the same event: it resumes by the event's place
/// in the segment, which compaction keeps, not by the byte offset, which it changes. Its rows are
/// exactly those of a shipper that read the segment in one go.
#[test]
fn ship_goes_on_at_the_same_event_in_a_segment_compacted_under_it() {
    let scratch = Scratch::new("compact-under-ship");
    let dir = scratch.0.join("store");
    let path = write_segment(&dir, &sample_frames(), 0, true);
    let reader = || Reader::new(&dir, "edge1", Flavor::Modern, Filter::default());

    let (mut all, mut pos) = (Batch::default(), Position::default());
    reader()
        .fill(&mut pos, &mut all, u64::MAX)
        .expect("read the store");
    assert!(all.rows > 1000, "test set-up: {} rows", all.rows);

    let (mut first, mut pos) = (Batch::default(), Position::default());
    let done = reader()
        .fill(&mut pos, &mut first, all.rows / 3)
        .expect("read a third");
    assert!(!done && first.rows < all.rows, "stopped part way: {pos:?}");
    let segment = Segment::open(&path).expect("open the segment");
    let compacted = compact_segment(&segment, &mut Encoder::new(), false)
        .expect("compact")
        .expect("something to compact");
    assert!(compacted.bytes_after < compacted.bytes_before);

    let mut rest = Batch::default();
    reader()
        .fill(&mut pos, &mut rest, u64::MAX)
        .expect("read the rest");
    assert_eq!(first.rows + rest.rows, all.rows, "every row once");
    let mut joined = first.data.clone();
    joined.extend_from_slice(&rest.data);
    assert!(joined == all.data, "the same rows, in the same order");
}

/// A segment that cannot be compacted (a flipped bit in one of its degraded blocks) is left
/// exactly as it is and said so, with exit status 2; the segments after it are compacted, and the
/// next run does not try it again.
#[test]
fn a_damaged_segment_is_left_as_it_is_and_the_rest_compacted() {
    let scratch = Scratch::new("compact-damaged");
    let dir = scratch.0.join("store");
    let frames = sample_frames();
    let damaged = write_segment(&dir, &frames, 0, true);
    let good = write_segment(&dir, &frames, 0, true);
    let block = Segment::open(&damaged).expect("open").blocks[1].offset;
    let mut bytes = std::fs::read(&damaged).expect("read");
    bytes[block as usize + dstore::format::block::BLOCK_HEADER_LEN + 10] ^= 0x40;
    std::fs::write(&damaged, &bytes).expect("flip a bit");

    let store = dir.to_str().expect("utf-8 path");
    let o = run(&["compact", "--storage-dir", store]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("left as it is") && stderr(&o).contains(&*damaged.to_string_lossy()),
        "{}",
        stderr(&o)
    );
    assert!(String::from_utf8_lossy(&o.stdout).contains("Compacted 1 segments"));
    assert!(
        std::fs::read(&damaged).expect("read") == bytes,
        "left byte for byte"
    );
    assert_eq!(without_summary(&good), 0, "the next segment is compacted");
    assert!(compact(&dir, &[]).contains("Compacted 0 segments"));
}
