//! The storage format end to end: exact round trips of real streams, recovery from a torn tail at
//! every offset, detection of flipped bytes, and the golden version-1 store.

mod common;

use common::*;
use dstore::format::block::{BLOCK_HEADER_LEN, MAX_FRAME_BYTES};
use dstore::format::segment::{FILE_HEADER_LEN, TRAILER_LEN};
use dstore::format::{
    scan_segment, segment_paths, Decoded, Segment, StoreWriter, TimeRange, WriterOptions,
};
use dstore::frame::FrameWidth;
use std::path::Path;

fn small_blocks() -> WriterOptions {
    WriterOptions {
        block_bytes: 4096,
        ..WriterOptions::default()
    }
}

/// Writes `frames` into a new store in `dir` and closes it.
fn write_store(dir: &Path, frames: &[Vec<u8>], options: WriterOptions) {
    let (mut w, recovered) = StoreWriter::open(dir, options).expect("open store");
    assert!(recovered.is_empty());
    for (i, f) in frames.iter().enumerate() {
        w.append(f, 1_700_000_000_000_000 + i as u64)
            .expect("append");
    }
    w.close().expect("close");
}

/// Every event of every readable block of a segment, and the errors met.
fn read_segment(path: &Path) -> (Vec<Vec<u8>>, Vec<String>) {
    let (events, errors) = read_events(path);
    (events.into_iter().map(|e| e.frame).collect(), errors)
}

#[test]
fn import_then_cat_raw_gives_back_every_sample_byte_for_byte() {
    for name in SAMPLES {
        let dir = Scratch::new("roundtrip");
        let store = dir.path("store");
        let store = store.to_str().expect("utf-8 path");
        let sample = sample(name);
        let o = run(&[
            "import",
            "--storage-dir",
            store,
            sample.to_str().expect("utf-8"),
        ]);
        assert!(o.status.success(), "{name}: {}", stderr(&o));
        let o = run(&["cat", "--raw", "--quiet", "--storage-dir", store]);
        assert!(o.status.success(), "{name}: {}", stderr(&o));
        assert!(
            o.stdout == std::fs::read(&sample).expect("sample"),
            "{name}: cat --raw differs from the input"
        );
    }
}

#[test]
fn the_malformed_dnspcap2protobuf_responses_are_kept_and_counted() {
    let dir = Scratch::new("undecodable");
    let store = dir.path("store");
    let o = run(&[
        "import",
        "--storage-dir",
        store.to_str().unwrap(),
        sample("dnsdist-5300.pb").to_str().unwrap(),
    ]);
    assert!(o.status.success());
    assert!(
        stderr(&o).contains("imported 2120 events (1060 undecodable)"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn many_blocks_and_segments_read_back_in_order_and_by_time() {
    let dir = Scratch::new("segments");
    let frames = frames_of(&std::fs::read(sample("dnsdist-live-same-traffic.pb")).unwrap());
    let options = WriterOptions {
        block_bytes: 2048,
        segment_bytes: 16 * 1024,
        ..WriterOptions::default()
    };
    write_store(&dir.0, &frames, options);
    let paths = segment_paths(&dir.0).unwrap();
    assert!(
        paths.len() > 3,
        "expected several segments, got {}",
        paths.len()
    );
    let mut all = Vec::new();
    for p in &paths {
        let segment = Segment::open(p).unwrap();
        assert!(segment.sealed && segment.damage.is_empty() && segment.tail_bytes == 0);
        all.extend(read_segment(p).0);
    }
    assert_eq!(all, frames);

    // A time range selects exactly the events inside it, and skips blocks outside it.
    let times: Vec<u64> = frames
        .iter()
        .map(|f| dstore::format::wire::message_time_us(f).unwrap())
        .collect();
    let (lo, hi) = (times[500], times[900]);
    let range = TimeRange {
        from_us: lo.min(hi),
        to_us: lo.max(hi),
    };
    let expected: Vec<&Vec<u8>> = frames
        .iter()
        .zip(&times)
        .filter(|(_, t)| range.contains(**t))
        .map(|(f, _)| f)
        .collect();
    let mut got = Vec::new();
    let (mut decoded, mut buf) = (Decoded::default(), Vec::new());
    for p in &paths {
        let segment = Segment::open(p).unwrap();
        scan_segment(
            &segment,
            range,
            &mut decoded,
            &mut buf,
            &mut |e| panic!("{e}"),
            &mut |ev| {
                assert!(range.contains(ev.time_us));
                got.push(ev.frame.to_vec());
                Ok(true)
            },
        )
        .unwrap();
    }
    assert_eq!(got.iter().collect::<Vec<_>>(), expected);
}

#[test]
fn a_torn_last_block_is_cut_at_every_offset_and_every_whole_block_survives() {
    let dir = Scratch::new("torn");
    let frames = frames_of(&std::fs::read(sample("recursor-live-with-outgoing.pb")).unwrap());
    let frames = &frames[..400];
    write_store(&dir.path("orig"), frames, small_blocks());
    let seg_path = segment_paths(&dir.path("orig")).unwrap().remove(0);
    let sealed = Segment::open(&seg_path).unwrap();
    let last = *sealed.blocks.last().unwrap();
    let kept: usize = sealed.blocks[..sealed.blocks.len() - 1]
        .iter()
        .map(|b| b.header.event_count as usize)
        .sum();
    let bytes = std::fs::read(&seg_path).unwrap();
    let name = seg_path.file_name().unwrap();
    // Cut anywhere from the start of the last block to just before the footer's end (a crash while
    // writing the last block or the footer).
    let end = bytes.len() - 1;
    for cut in (last.offset as usize)..end {
        let store = dir.path("cut");
        let _ = std::fs::remove_dir_all(&store);
        std::fs::create_dir_all(&store).unwrap();
        std::fs::write(store.join(name), &bytes[..cut]).unwrap();
        let whole_last = cut as u64 >= last.offset + last.header.block_len();
        let (w, recovered) = StoreWriter::open(&store, WriterOptions::default()).unwrap();
        assert_eq!(recovered.len(), 1, "cut at {cut}");
        let expected_drop = if whole_last {
            cut as u64 - (last.offset + last.header.block_len())
        } else {
            cut as u64 - last.offset
        };
        assert_eq!(recovered[0].dropped_bytes, expected_drop, "cut at {cut}");
        assert!(
            recovered[0].damage.is_empty(),
            "cut at {cut}: {:?}",
            recovered[0].damage
        );
        w.close().unwrap();
        let (got, errors) = read_segment(&store.join(name));
        assert!(errors.is_empty(), "cut at {cut}: {errors:?}");
        let want = if whole_last { frames.len() } else { kept };
        assert_eq!(got, frames[..want], "cut at {cut}");
        assert!(
            Segment::open(&store.join(name)).unwrap().sealed,
            "recovery seals the segment"
        );
    }
}

#[test]
fn flipped_bytes_are_detected_named_and_skipped() {
    let dir = Scratch::new("flip");
    let frames = frames_of(&std::fs::read(sample("dnsdist-live-same-traffic.pb")).unwrap());
    write_store(&dir.0, &frames, small_blocks());
    let path = segment_paths(&dir.0).unwrap().remove(0);
    let good = std::fs::read(&path).unwrap();
    let segment = Segment::open(&path).unwrap();
    let blocks = segment.blocks.clone();
    assert!(blocks.len() > 5);
    let events_in = |i: usize| blocks[i].header.event_count as usize;
    let total: usize = (0..blocks.len()).map(events_in).sum();

    // Positions to flip: every byte of every block header, and a spread of payload bytes.
    let mut positions: Vec<(usize, usize)> = Vec::new();
    for (i, b) in blocks.iter().enumerate() {
        let o = b.offset as usize;
        positions.extend((o..o + BLOCK_HEADER_LEN).map(|p| (i, p)));
        let end = o + b.header.block_len() as usize;
        positions.extend((o + BLOCK_HEADER_LEN..end).step_by(97).map(|p| (i, p)));
    }
    for (i, pos) in positions {
        let mut bad = good.clone();
        bad[pos] ^= 0x10;
        std::fs::write(&path, &bad).unwrap();
        let (got, errors) = read_segment(&path);
        assert_eq!(errors.len(), 1, "flip at {pos}: {errors:?}");
        let offset = blocks[i].offset;
        assert!(
            errors[0].contains(&format!("block at offset {offset}"))
                && errors[0].contains(path.to_str().unwrap()),
            "flip at {pos}: {}",
            errors[0]
        );
        assert_eq!(
            got.len(),
            total - events_in(i),
            "flip at {pos}: the other blocks are still read"
        );
    }

    // A flipped byte in the footer: the segment is read by walking its blocks instead.
    for pos in [good.len() - TRAILER_LEN + 3, good.len() - TRAILER_LEN - 5] {
        let mut bad = good.clone();
        bad[pos] ^= 0x01;
        std::fs::write(&path, &bad).unwrap();
        let s = Segment::open(&path).unwrap();
        assert!(!s.sealed);
        let (got, errors) = read_segment(&path);
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(got, frames);
    }

    // A flipped byte in the file header: the file is refused, with a reason.
    for pos in 0..FILE_HEADER_LEN {
        let mut bad = good.clone();
        bad[pos] ^= 0x01;
        std::fs::write(&path, &bad).unwrap();
        let err = Segment::open(&path)
            .err()
            .unwrap_or_else(|| panic!("flip at {pos} not detected"))
            .to_string();
        assert!(err.contains(path.to_str().unwrap()), "{err}");
    }
}

#[test]
fn a_damaged_block_in_an_unsealed_segment_is_skipped_and_the_blocks_after_it_are_found() {
    let dir = Scratch::new("resync");
    let frames = frames_of(&std::fs::read(sample("dnsdist-live-same-traffic.pb")).unwrap());
    write_store(&dir.0, &frames, small_blocks());
    let path = segment_paths(&dir.0).unwrap().remove(0);
    let segment = Segment::open(&path).unwrap();
    let victim = segment.blocks[3];
    let mut bytes = std::fs::read(&path).unwrap();
    bytes.truncate(bytes.len() - TRAILER_LEN - 1); // unsealed
    bytes[victim.offset as usize + 9] ^= 0xff; // header of block 3
    std::fs::write(&path, &bytes).unwrap();
    let s = Segment::open(&path).unwrap();
    assert_eq!(s.blocks.len(), segment.blocks.len() - 1);
    assert_eq!(s.damage.len(), 1);
    assert_eq!(s.damage[0].offset, victim.offset);
    assert!(
        s.damage[0].what.contains("checksum"),
        "{}",
        s.damage[0].what
    );
    let (got, _) = read_segment(&path);
    assert_eq!(got.len(), frames.len() - victim.header.event_count as usize);
}

#[test]
fn a_second_writer_is_refused() {
    let dir = Scratch::new("lock");
    let (_w, _) = StoreWriter::open(&dir.0, WriterOptions::default()).unwrap();
    let err = StoreWriter::open(&dir.0, WriterOptions::default())
        .err()
        .expect("second writer refused");
    assert!(err.to_string().contains("another dstore process"), "{err}");
}

#[test]
fn messages_without_a_time_take_the_receive_time() {
    let dir = Scratch::new("rtime");
    let (mut w, _) = StoreWriter::open(&dir.0, WriterOptions::default()).unwrap();
    w.append(&[0x08, 0x01], 42_000_000).unwrap();
    w.append(&[0x08, 0x01, 0x48, 0x07], 43_000_000).unwrap();
    w.close().unwrap();
    let segment = Segment::open(&segment_paths(&dir.0).unwrap()[0]).unwrap();
    let mut seen = Vec::new();
    scan_segment(
        &segment,
        TimeRange::ALL,
        &mut Decoded::default(),
        &mut Vec::new(),
        &mut |e| panic!("{e}"),
        &mut |ev| {
            seen.push((ev.time_us, ev.time_from_receive()));
            Ok(true)
        },
    )
    .unwrap();
    assert_eq!(seen, vec![(42_000_000, true), (7_000_000, false)]);
}

/// The golden store was written by format version 1 and is never regenerated: every later version
/// must read it.
#[test]
fn the_golden_v1_store_reads_back_exactly() {
    let golden = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/v1");
    let o = run(&[
        "cat",
        "--raw",
        "--quiet",
        "--storage-dir",
        golden.join("store").to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        o.stdout == std::fs::read(golden.join("frames.pb")).unwrap(),
        "golden store reads back differently"
    );
    let o = run(&[
        "cat",
        "--quiet",
        "--storage-dir",
        golden.join("store").to_str().unwrap(),
    ]);
    assert!(o.status.success());
    assert_eq!(
        String::from_utf8(o.stdout).unwrap(),
        std::fs::read_to_string(golden.join("events.ndjson")).unwrap()
    );
}

#[test]
fn a_segment_cut_before_its_first_block_is_removed_on_open() {
    let dir = Scratch::new("cuthead");
    write_store(
        &dir.0,
        &frames_of(&std::fs::read(sample("recursor-live-small.pb")).unwrap()),
        WriterOptions::default(),
    );
    let path = segment_paths(&dir.0).unwrap().remove(0);
    let bytes = std::fs::read(&path).unwrap();
    for cut in 0..FILE_HEADER_LEN + BLOCK_HEADER_LEN {
        std::fs::write(&path, &bytes[..cut]).unwrap();
        let (w, recovered) = open_writer(&dir.0, WriterOptions::default());
        assert_eq!(recovered.len(), 1, "cut at {cut}");
        assert!(recovered[0].removed, "cut at {cut}");
        assert!(!path.exists());
        w.close().unwrap();
        assert!(
            segment_paths(&dir.0).unwrap().is_empty(),
            "closing an unused writer creates no segment"
        );
    }
}

#[test]
fn degraded_blocks_keep_every_event_exactly_and_have_no_summary() {
    for name in SAMPLES {
        let dir = Scratch::new("degraded");
        let frames = frames_of(&std::fs::read(sample(name)).expect("sample"));
        let receive_time = |i: usize| 1_700_000_000_000_000 + i as u64;
        let (mut w, _) = StoreWriter::open(&dir.0, small_blocks()).expect("open store");
        w.set_degraded(true);
        // The first half one by one, the rest in batches of 100, as ingest hands them over.
        let half = frames.len() / 2;
        for (i, f) in frames[..half].iter().enumerate() {
            w.append(f, receive_time(i)).expect("append");
        }
        for (n, chunk) in frames[half..].chunks(100).enumerate() {
            let (mut batch, mut ends) = (Vec::new(), Vec::new());
            for f in chunk {
                batch.extend_from_slice(f);
                ends.push(batch.len() as u32);
            }
            let times: Vec<u64> = (0..chunk.len())
                .map(|i| receive_time(half + n * 100 + i))
                .collect();
            w.append_batch(batch, &ends, &times).expect("append batch");
        }
        let stats = w.close().expect("close");
        assert_eq!(stats.degraded_events, frames.len() as u64, "{name}");
        assert_eq!(stats.degraded_blocks, stats.blocks, "{name}");
        assert_eq!(
            stats.undecodable, 0,
            "{name}: degraded blocks check nothing"
        );
        let path = &segment_paths(&dir.0).expect("list")[0];
        let (read, errors) = read_events(path);
        assert!(errors.is_empty(), "{name}: {errors:?}");
        // Read back, every event is what a normal block gives: frame, time, and whether it decodes
        // (checked as it is read, since the writer did not).
        let normal = Scratch::new("normal");
        write_store(&normal.0, &frames, small_blocks());
        let (want, _) = read_events(&segment_paths(&normal.0).expect("list")[0]);
        assert!(
            read == want,
            "{name}: degraded blocks read back differently"
        );
        if *name == "dnsdist-5300.pb" {
            assert!(
                read.iter().any(|e| e.undecodable),
                "{name} has undecodable frames"
            );
        }
        let segment = Segment::open(path).expect("open segment");
        let mut buf = Vec::new();
        for block in &segment.blocks {
            assert!(segment.read_summary(block, &mut buf).is_none(), "{name}");
        }
    }
}

#[test]
fn a_writer_starts_a_new_block_rather_than_pass_the_frame_bytes_bound() {
    let dir = Scratch::new("frame-bound");
    // Blocks that would otherwise take every frame.
    let options = WriterOptions {
        block_bytes: usize::MAX,
        ..WriterOptions::default()
    };
    let (mut w, _) = StoreWriter::open(&dir.0, options).expect("open store");
    // Opaque frames, the cheap form: the bound is the writer's, whatever the form.
    w.set_degraded(true);
    let third = MAX_FRAME_BYTES as usize / 3 + 1;
    let frames: Vec<Vec<u8>> = (0..5u8).map(|i| vec![i; third]).collect();
    for (i, f) in frames[..3].iter().enumerate() {
        w.append(f, 1_700_000_000_000_000 + i as u64)
            .expect("append");
    }
    // A batch that would take the block past the bound goes in one by one.
    let batch = frames[3..].concat();
    let ends = [third as u32, 2 * third as u32];
    w.append_batch(
        batch,
        &ends,
        &[1_700_000_000_000_003, 1_700_000_000_000_004],
    )
    .expect("append batch");
    // A frame longer than a block holds is refused, and the writer goes on.
    let too_long = vec![0u8; MAX_FRAME_BYTES as usize + 1];
    let e = w
        .append(&too_long, 1_700_000_000_000_005)
        .expect_err("refused");
    assert!(e.to_string().contains("longer than"), "{e}");
    let stats = w.close().expect("close");
    assert_eq!(stats.events, 5);
    let path = &segment_paths(&dir.0).expect("list")[0];
    let segment = Segment::open(path).expect("open segment");
    let sizes: Vec<u64> = segment
        .blocks
        .iter()
        .map(|b| b.header.frame_bytes)
        .collect();
    let third = third as u64;
    assert_eq!(sizes, [2 * third, 2 * third, third]);
    let (read, errors) = read_segment(path);
    assert!(errors.is_empty(), "{errors:?}");
    assert!(read == frames, "the frames read back differ");
}

#[test]
fn import_skips_a_frame_longer_than_a_block_holds_says_so_and_keeps_the_rest() {
    let dir = Scratch::new("import-too-long");
    let store = dir.path("store");
    let store = store.to_str().expect("utf-8 path");
    let input = dir.path("frames.pb");
    let frames = [
        vec![0x08, 0x01],
        vec![0u8; MAX_FRAME_BYTES as usize + 1],
        vec![0x08, 0x02],
    ];
    std::fs::write(&input, framed(&frames, FrameWidth::Four)).expect("write input");
    let o = run(&[
        "import",
        "--frame4",
        "--storage-dir",
        store,
        input.to_str().expect("utf-8"),
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(
        err.contains(&format!(
            "the frame at offset 6 is {} bytes",
            MAX_FRAME_BYTES + 1
        )) && err.contains("skipped")
            && err.contains("imported 2 events"),
        "{err}"
    );
    let path = &segment_paths(Path::new(store)).expect("list")[0];
    let (read, errors) = read_segment(path);
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(read, [frames[0].clone(), frames[2].clone()]);
}

/// A block payload built from FORMAT.md alone, its sections stored plain: `count` events, the
/// first holding field 6 with a value of `value_len` bytes and each later one inheriting it from
/// the one before.
fn inheriting_payload(count: usize, value_len: usize) -> Vec<u8> {
    const TAG: u8 = 6 << 3 | 2;
    let (literal, inherited) = (0, 1);
    let mut shape_ids = vec![2; count];
    let mut refs = vec![1; count];
    (shape_ids[0], refs[0]) = (1, 0);
    let mut column = vec![0x80 | (value_len & 0x7f) as u8, (value_len >> 7) as u8];
    assert!(value_len < 1 << 14);
    column.resize(2 + value_len, b'x');
    let sections: [(u8, &[u8], &[u8]); 6] = [
        (1, &[], &vec![0; count]),
        (2, &[], &vec![0; count]),
        (3, &[], &shape_ids),
        (4, &[], &[2, 2, TAG, literal, 2, TAG, inherited]),
        (5, &[], &refs),
        (7, &[TAG], &column),
    ];
    let mut payload = (sections.len() as u16).to_le_bytes().to_vec();
    for (kind, key, body) in sections {
        payload.extend_from_slice(&[kind, 0, key.len() as u8]);
        payload.extend_from_slice(key);
        payload.extend_from_slice(&(body.len() as u32).to_le_bytes());
        payload.extend_from_slice(&(body.len() as u32).to_le_bytes());
    }
    for (_, _, body) in sections {
        payload.extend_from_slice(body);
    }
    payload
}

#[test]
fn a_block_rebuilding_to_more_frame_bytes_than_its_header_says_is_skipped_as_damage() {
    use dstore::format::block::{encode_block, BlockHeader};
    use dstore::format::codec::{Encoder, Event};
    use dstore::format::segment::SegmentWriter;

    let dir = Scratch::new("expanding");
    let path = dir.path("0000000001-20260101T000000Z.dst");
    let mut w = SegmentWriter::create(&path, 1_700_000_000_000_000).expect("create segment");
    let frames = [vec![0x08, 0x01], vec![0x08, 0x02]];
    let good = |frame: &[u8], w: &mut SegmentWriter| {
        let event = Event {
            frame,
            time_us: 1_700_000_000_000_000,
            flags: 0,
        };
        let mut block = Vec::new();
        let (header, _) = encode_block(&mut Encoder::new(), &[event], &[], true, &mut block);
        w.append(&block, header).expect("append");
    };
    good(&frames[0], &mut w);
    // 100,000 events of 10 kB each (1 GB) from 0.4 MB of payload, in a block said to hold 1 MiB of
    // frames.
    let hostile_at = w.len();
    let payload = inheriting_payload(100_000, 10_000);
    let header = BlockHeader {
        event_count: 100_000,
        min_time_us: 1_700_000_000_000_000,
        max_time_us: 1_700_000_000_000_000,
        frame_bytes: 1 << 20,
        payload_len: payload.len() as u32,
        payload_crc: crc32fast::hash(&payload),
        undecodable: 0,
    };
    w.append(&[&header.encode()[..], &payload].concat(), header)
        .expect("append");
    good(&frames[1], &mut w);
    w.seal().expect("seal");
    let (read, errors) = read_segment(&path);
    assert_eq!(read, frames);
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].contains(&format!("block at offset {hostile_at}"))
            && errors[0].contains("more than the 1048576 bytes the block header gives"),
        "{errors:?}"
    );
}

/// A frame too long for `cat --raw`'s 2-byte prefix is said as that (with `--frame4` it prints),
/// not as a failure to write the output.
#[test]
fn a_frame_too_long_for_two_byte_framing_is_named_as_such() {
    let dir = Scratch::new("cat-too-long");
    let store = dir.path("store");
    let store = store.to_str().expect("utf-8 path");
    let input = dir.path("frames.pb");
    let bytes = framed(&[vec![0u8; 70_000]], FrameWidth::Four);
    std::fs::write(&input, &bytes).expect("write input");
    let input = input.to_str().expect("utf-8 path");
    let o = run(&["import", "-q", "--frame4", "--storage-dir", store, input]);
    assert!(o.status.success(), "{}", stderr(&o));

    let o = run(&["cat", "-q", "--raw", "--storage-dir", store]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(
        err.contains("a 70000-byte frame does not fit a 2-byte length prefix")
            && !err.contains("cannot write"),
        "{err}"
    );
    let o = run(&["cat", "-q", "--raw", "--frame4", "--storage-dir", store]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(o.stdout == bytes, "the frame, after its 4-byte length");
}
