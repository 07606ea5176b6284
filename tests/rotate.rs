//! `dstore rotate` and `dstore stats` run as users run them, on stores whose contents the tests know
//! exactly: segments written through the library or `dstore import` with events at chosen times
//! before now. Rotate at many cutoffs, dry and for real, by age, by size and from the
//! configuration file; beside a running ingest and searches, with every event accounted for; killed
//! at random points; given bad arguments. What is expected is computed here, from what was written
//! and from the file sizes listed here, never from dstore's own answers.

mod common;

use common::*;
use dstore::clickhouse::ship::{Position, PositionFile};
use dstore::format::{Segment, WriterOptions};
use dstore::frame::{FrameReader, FrameWidth};
use prost::Message as _;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const SEC: u64 = 1_000_000;
const MIN: u64 = 60 * SEC;
const HOUR: u64 = 60 * MIN;
const DAY: u64 = 24 * HOUR;
/// The longest any single wait in these tests lasts.
const WAIT: Duration = Duration::from_secs(15);

// ---------------------------------------------------------------------------------------------
// Events and segments with known times

fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_micros() as u64
}

/// Every event of every test carries a different message id, so frames are unique.
fn next_id() -> u64 {
    static ID: AtomicU64 = AtomicU64::new(1);
    ID.fetch_add(1, Ordering::Relaxed)
}

/// A PowerDNS query event at `time_us`, made unique by `id`.
fn event(id: u64, time_us: u64) -> Vec<u8> {
    const NAMES: [&str; 4] = [
        "www.example.com.",
        "mail.example.net.",
        "cdn.example.org.",
        "api.example.com.",
    ];
    dstore::pb::Message {
        r#type: 1,
        message_id: Some([id.to_be_bytes(), (!id).to_be_bytes()].concat()),
        server_identity: Some(b"resolver-1".to_vec()),
        socket_family: Some(1),
        socket_protocol: Some(1),
        from: Some(vec![192, 0, 2, (id % 7) as u8]),
        to: Some(vec![192, 0, 2, 53]),
        in_bytes: Some(40),
        time_sec: Some((time_us / SEC) as u32),
        time_usec: Some((time_us % SEC) as u32),
        id: Some((id % 65_536) as u32),
        question: Some(dstore::pb::Question {
            q_name: Some(NAMES[(id % 4) as usize].to_string()),
            q_type: Some(1),
            q_class: Some(1),
        }),
        ..Default::default()
    }
    .encode_to_vec()
}

/// `n` times from `from` to `to`, both included, evenly apart.
fn spread(from: u64, to: u64, n: usize) -> Vec<u64> {
    assert!(n >= 2 && from <= to);
    (0..n as u64)
        .map(|i| from + (to - from) * i / (n as u64 - 1))
        .collect()
}

/// A segment file as the test wrote it.
#[derive(Clone, Debug)]
struct Written {
    name: String,
    frames: Vec<Vec<u8>>,
    min: u64,
    max: u64,
    sealed: bool,
}

impl Written {
    fn events(&self) -> usize {
        self.frames.len()
    }
}

/// The segment files in `dir`, by name.
fn segment_names(dir: &Path) -> BTreeSet<String> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return BTreeSet::new();
    };
    entries
        .map(|e| e.expect("read the store directory").file_name())
        .map(|n| n.to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".dst"))
        .collect()
}

fn file_len(dir: &Path, name: &str) -> u64 {
    std::fs::metadata(dir.join(name))
        .unwrap_or_else(|e| panic!("stat {name}: {e}"))
        .len()
}

/// Writes one segment holding events at `times` through the library: one writer session makes one
/// segment, sealed when the writer closes. Unsealed, it is what a writer that stopped without
/// closing leaves: whole blocks, fsynced, and no index.
fn write_segment(dir: &Path, times: &[u64], seal: bool) -> Written {
    let before = segment_names(dir);
    let mut writer = open_writer(dir, WriterOptions::default()).0;
    let frames: Vec<Vec<u8>> = times.iter().map(|&t| event(next_id(), t)).collect();
    for f in &frames {
        writer.append(f, now_us()).expect("append an event");
    }
    if seal {
        writer.close().expect("close the writer");
    } else {
        writer.flush().expect("flush the writer");
        drop(writer);
    }
    let after = segment_names(dir);
    let new: Vec<&String> = after.difference(&before).collect();
    assert_eq!(new.len(), 1, "one writer session made {new:?}");
    Written {
        name: new[0].clone(),
        frames,
        min: *times.iter().min().expect("times"),
        max: *times.iter().max().expect("times"),
        sealed: seal,
    }
}

/// Writes `frames` as a 2-byte length-prefixed stream into `path`.
fn write_stream(path: &Path, frames: &[Vec<u8>]) {
    let mut out = Vec::new();
    for f in frames {
        dstore::frame::write_frame(&mut out, FrameWidth::Two, f).expect("frame fits");
    }
    std::fs::write(path, out).expect("write the stream");
}

/// One `dstore import` run of events at `times`: one new, sealed segment.
fn import_segment(dir: &Path, scratch: &Scratch, times: &[u64]) -> Written {
    let before = segment_names(dir);
    let frames: Vec<Vec<u8>> = times.iter().map(|&t| event(next_id(), t)).collect();
    let input = scratch.path(&format!("import-{}.pb", next_id()));
    write_stream(&input, &frames);
    let o = run(&[
        "import",
        "-q",
        "--storage-dir",
        dir.to_str().expect("utf-8 path"),
        input.to_str().expect("utf-8 path"),
    ]);
    assert!(o.status.success(), "dstore import: {}", stderr(&o));
    let after = segment_names(dir);
    let new: Vec<&String> = after.difference(&before).collect();
    assert_eq!(new.len(), 1, "one import run made {new:?}");
    Written {
        name: new[0].clone(),
        frames,
        min: *times.iter().min().expect("times"),
        max: *times.iter().max().expect("times"),
        sealed: true,
    }
}

/// `2026-11-26T10:21:38Z` for a time in microseconds, counted here year by year and month by month.
fn utc(time_us: u64) -> String {
    let secs = time_us / SEC;
    let (mut days, rem) = (secs / 86_400, secs % 86_400);
    let leap = |y: u64| (y.is_multiple_of(4) && !y.is_multiple_of(100)) || y.is_multiple_of(400);
    let mut year = 1970;
    loop {
        let len = if leap(year) { 366 } else { 365 };
        if days < len {
            break;
        }
        days -= len;
        year += 1;
    }
    let feb = if leap(year) { 29 } else { 28 };
    let months = [31, feb, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
    let mut month = 0;
    while days >= months[month] {
        days -= months[month];
        month += 1;
    }
    format!(
        "{year:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        month + 1,
        days + 1,
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

fn day_of(time_us: u64) -> String {
    utc(time_us)[..10].to_string()
}

// ---------------------------------------------------------------------------------------------
// Running dstore

fn dir_arg(dir: &Path) -> &str {
    dir.to_str().expect("utf-8 path")
}

/// `dstore rotate ARGS --storage-dir DIR`, which must succeed quietly; its stdout.
fn rotate_ok(dir: &Path, args: &[&str]) -> String {
    let mut all = vec!["rotate"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["--storage-dir", dir_arg(dir)]);
    let o = run(&all);
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(
        o.status.success() && o.stderr.is_empty(),
        "dstore {}: {}\nstdout:\n{out}stderr:\n{}",
        all.join(" "),
        o.status,
        stderr(&o)
    );
    out
}

/// What rotate must print having chosen `chosen` (sizes taken from `dir` now, so before removal).
fn report(dir: &Path, really: bool, chosen: &[&Written]) -> String {
    let n = chosen.len();
    let events: usize = chosen.iter().map(|w| w.events()).sum();
    let bytes: u64 = chosen.iter().map(|w| file_len(dir, &w.name)).sum();
    let mut detail = format!("{events} events, {bytes} bytes");
    if let (Some(first), Some(last)) = (
        chosen.iter().map(|w| w.min).min(),
        chosen.iter().map(|w| w.max).max(),
    ) {
        detail.push_str(&format!(", from {} to {}", utc(first), utc(last)));
    }
    let verdict = if really {
        format!("Removed {n} files for rotate")
    } else {
        format!("Would remove {n} files for actual rotate")
    };
    format!(
        "dstore: storage in '{}'\n{verdict} ({detail})\n",
        dir.display()
    )
}

/// `dstore grep --count` over the whole store: exit 0 with a number, or 1 with 0.
fn grep_count(dir: &Path, extra: &[&str]) -> u64 {
    let mut args = vec!["grep", "--count", "--storage-dir", dir_arg(dir)];
    args.extend_from_slice(extra);
    let o = run(&args);
    let text = String::from_utf8_lossy(&o.stdout).into_owned();
    let n: u64 = text
        .strip_suffix('\n')
        .and_then(|t| t.parse().ok())
        .unwrap_or_else(|| {
            panic!(
                "dstore {}: not a count: {text:?} ({}; {})",
                args.join(" "),
                o.status,
                stderr(&o)
            )
        });
    let want = if n > 0 { 0 } else { 1 };
    assert!(
        o.status.code() == Some(want) && o.stderr.is_empty(),
        "dstore {}: count {n}, {} (want exit {want}); stderr: {}",
        args.join(" "),
        o.status,
        stderr(&o)
    );
    n
}

fn frames_in(stream: &[u8]) -> Vec<Vec<u8>> {
    let mut reader = FrameReader::new(stream, FrameWidth::Two);
    let mut out = Vec::new();
    while let Some(f) = reader.next_frame().expect("reading memory") {
        out.push(f.to_vec());
    }
    assert!(reader.truncated().is_none(), "a partial frame at the end");
    out
}

/// The frames `dstore cat --raw` prints, sorted; it must succeed.
fn stored_frames(dir: &Path) -> Vec<Vec<u8>> {
    let o = run(&["cat", "--raw", "-q", "--storage-dir", dir_arg(dir)]);
    assert!(
        o.status.success() && o.stderr.is_empty(),
        "dstore cat --raw: {}: {}",
        o.status,
        stderr(&o)
    );
    let mut frames = frames_in(&o.stdout);
    frames.sort();
    frames
}

/// The frames of `segments`, sorted.
fn frames_of_segments<'a>(segments: impl IntoIterator<Item = &'a Written>) -> Vec<Vec<u8>> {
    let mut frames: Vec<Vec<u8>> = segments
        .into_iter()
        .flat_map(|w| w.frames.iter().cloned())
        .collect();
    frames.sort();
    frames
}

/// Fails unless the store holds exactly the events of `present`.
fn assert_holds(dir: &Path, present: &[&Written], what: &str) {
    let want: usize = present.iter().map(|w| w.events()).sum();
    assert_eq!(
        grep_count(dir, &[]),
        want as u64,
        "{what}: dstore grep --count"
    );
    let stored = stored_frames(dir);
    assert!(
        stored == frames_of_segments(present.iter().copied()),
        "{what}: dstore cat --raw gives {} frames, not the {want} of the segments left",
        stored.len()
    );
}

/// A process of ours, killed (SIGKILL, by its PID) if the test ends while it still runs.
struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// `Removed N files for rotate (E events, ...)` or the dry run's line: (N, E).
fn parse_verdict(line: &str) -> Option<(u64, u64)> {
    let rest = line
        .strip_prefix("Removed ")
        .or_else(|| line.strip_prefix("Would remove "))?;
    let (n, rest) = rest.split_once(' ')?;
    let (_, rest) = rest.split_once(" (")?;
    let (e, _) = rest.split_once(" events, ")?;
    Some((n.parse().ok()?, e.parse().ok()?))
}

// ---------------------------------------------------------------------------------------------
// Age

/// A store whose segments end at known ages, rotated at thirteen cutoffs from a month down to
/// nothing: each dry run (1.x words and --older-than --dry-run) says exactly what the real one then
/// removes and changes no byte; the real one (1.x `really` and --older-than) removes exactly the
/// sealed segments whose every event is older than the cutoff, and the searches then see exactly
/// the events of the segments left.
#[test]
fn rotate_at_many_cutoffs_dry_and_really() {
    let scratch = Scratch::new("rotate-cutoffs");
    let dir = scratch.path("store");
    let base = now_us();
    // (age of the oldest event, age of the newest, events); the fifth is out of time order and
    // spans two days, so only its newest event counts.
    let plan: [(u64, u64, usize); 11] = [
        (9 * DAY, 8 * DAY, 40),
        (50 * HOUR, 49 * HOUR, 120),
        (30 * HOUR, 25 * HOUR, 60),
        (12 * HOUR, 11 * HOUR, 200),
        (48 * HOUR, 5 * MIN, 90),
        (6 * HOUR, 5 * HOUR + 30 * MIN, 33),
        (3 * HOUR, 2 * HOUR, 150),
        (100 * MIN, 70 * MIN, 75),
        (50 * MIN, 40 * MIN, 20),
        (20 * MIN, 10 * MIN, 300),
        (6 * MIN, 4 * MIN, 45),
    ];
    let mut segments: Vec<Written> = plan
        .iter()
        .map(|&(old, new, n)| write_segment(&dir, &spread(base - old, base - new, n), true))
        .collect();
    // Written last and never sealed (a writer stopped without closing): never removed, however
    // old its events.
    segments.push(write_segment(
        &dir,
        &spread(base - 10 * DAY, base - 9 * DAY, 25),
        false,
    ));
    let newest_age = |w: &Written| base - w.max;

    let cutoffs: [(&str, &str, u64); 13] = [
        ("1 month", "720h", 30 * DAY),
        ("2 weeks", "2w", 14 * DAY),
        ("7 days", "7d", 7 * DAY),
        ("40 hours", "40h", 40 * HOUR),
        ("1 day", "1d", DAY),
        ("600 minutes", "600m", 10 * HOUR),
        ("5 hours", "5h", 5 * HOUR),
        ("90 minutes", "90m", 90 * MIN),
        ("1 hour", "1h", HOUR),
        ("30 min", "30m", 30 * MIN),
        ("7 minutes", "7m", 7 * MIN),
        ("90 seconds", "90s", 90 * SEC),
        ("0 sec", "0s", 0),
    ];
    // The test runs well within two minutes, so a segment is on the same side of each cutoff
    // whenever rotate looks at it.
    for (_, _, age) in cutoffs {
        for w in &segments {
            assert!(newest_age(w).abs_diff(age) >= 2 * MIN, "test set-up");
        }
    }

    let mut present: Vec<&Written> = segments.iter().collect();
    assert_holds(&dir, &present, "as written");
    let mut removed_total = 0;
    for (i, (words, duration, age)) in cutoffs.into_iter().enumerate() {
        let chosen: Vec<&Written> = present
            .iter()
            .copied()
            .filter(|w| w.sealed && newest_age(w) > age)
            .collect();
        let before = snapshot(&dir);
        let words: Vec<&str> = words.split(' ').collect();

        let dry = report(&dir, false, &chosen);
        assert_eq!(rotate_ok(&dir, &words), dry, "dstore rotate {words:?}");
        assert!(
            snapshot(&dir) == before,
            "dstore rotate {words:?} changed the store"
        );
        assert_eq!(
            rotate_ok(&dir, &["--older-than", duration, "--dry-run"]),
            dry,
            "--older-than {duration} --dry-run"
        );
        assert!(snapshot(&dir) == before, "--dry-run changed the store");
        if i % 4 == 0 {
            let mut w = words.clone();
            w.extend_from_slice(&["really", "--dry-run"]);
            assert_eq!(rotate_ok(&dir, &w), dry, "dstore rotate {w:?}");
            assert!(
                snapshot(&dir) == before,
                "`really --dry-run` changed the store"
            );
        }

        let really = report(&dir, true, &chosen);
        let got = if i % 2 == 0 {
            let mut w = words.clone();
            w.push("really");
            rotate_ok(&dir, &w)
        } else {
            rotate_ok(&dir, &["--older-than", duration])
        };
        assert_eq!(got, really, "rotate at {duration}, for real");
        present.retain(|w| !chosen.iter().any(|c| c.name == w.name));
        removed_total += chosen.len();
        // What is left is byte for byte what was there.
        let after = snapshot(&dir);
        let mut expected = before.clone();
        for c in &chosen {
            expected.remove(&c.name);
        }
        assert!(
            after == expected,
            "after rotate at {duration}: files {:?}, expected {:?}",
            after.keys().collect::<Vec<_>>(),
            expected.keys().collect::<Vec<_>>()
        );
        // Again: nothing more to do.
        let mut again = words.clone();
        again.push("really");
        assert_eq!(
            rotate_ok(&dir, &again),
            report(&dir, true, &[]),
            "a second rotate at {duration}"
        );
        assert_holds(&dir, &present, &format!("after rotate at {duration}"));
    }
    assert_eq!(
        removed_total, 11,
        "every sealed segment goes by the last cutoff"
    );
    assert_eq!(present.len(), 1);
    assert!(!present[0].sealed);
    assert!(
        now_us() - base < 2 * MIN,
        "the test took too long for its margins"
    );
}

// ---------------------------------------------------------------------------------------------
// Size

/// What `--max-size limit` (and `--older-than` when `age` is given) must choose among `present`,
/// oldest first, at the moment: the old ones, then the oldest sealed ones until the rest fits.
fn by_size<'a>(
    dir: &Path,
    present: &[&'a Written],
    limit: u64,
    old: impl Fn(&Written) -> bool,
) -> Vec<&'a Written> {
    let mut total: u64 = present.iter().map(|w| file_len(dir, &w.name)).sum();
    let mut chosen = Vec::new();
    for w in present.iter().copied().filter(|w| w.sealed) {
        if old(w) || total > limit {
            total -= file_len(dir, &w.name);
            chosen.push(w);
        }
    }
    chosen
}

/// `--max-size` at sizes around every segment boundary, with and without units, alone and with
/// `--older-than`: the oldest sealed segments go until the total of the file sizes listed here
/// fits, and never the unsealed one.
#[test]
fn rotate_by_max_size() {
    let scratch = Scratch::new("rotate-size");
    let dir = scratch.path("store");
    let base = now_us();
    let counts = [10, 200, 50, 500, 5, 100, 300, 20];
    let mut segments: Vec<Written> = counts
        .iter()
        .enumerate()
        .map(|(k, &n)| {
            let k = k as u64;
            let (old, new) = ((20 - 2 * k) * HOUR, (19 - 2 * k) * HOUR);
            write_segment(&dir, &spread(base - old, base - new, n), true)
        })
        .collect();
    segments.push(write_segment(
        &dir,
        &spread(base - 30 * MIN, base - MIN, 60),
        false,
    ));
    let size: Vec<u64> = segments.iter().map(|w| file_len(&dir, &w.name)).collect();
    let total: u64 = size.iter().sum();
    let unsealed = size[8];
    let never = |_: &Written| false;

    let mut present: Vec<&Written> = segments.iter().collect();
    let before = snapshot(&dir);
    let limits: Vec<(String, u64)> = vec![
        ("1G".into(), 1 << 30),
        ("2 GiB".into(), 2 << 30),
        (total.to_string(), total),
        ((total - 1).to_string(), total - 1),
        ((total - size[0]).to_string(), total - size[0]),
        ((total - size[0] - 1).to_string(), total - size[0] - 1),
        (
            (total - size[0] - size[1] - size[2]).to_string(),
            total - size[0] - size[1] - size[2],
        ),
        ((total / 2).to_string(), total / 2),
        ((unsealed + size[7]).to_string(), unsealed + size[7]),
        (unsealed.to_string(), unsealed),
        ((unsealed - 1).to_string(), unsealed - 1),
        ("1K".into(), 1024),
        ("1.5k".into(), 1536),
        ("0".into(), 0),
    ];
    for (text, limit) in &limits {
        let chosen = by_size(&dir, &present, *limit, never);
        assert_eq!(
            rotate_ok(&dir, &["--max-size", text, "--dry-run"]),
            report(&dir, false, &chosen),
            "--max-size {text} --dry-run (total {total}, sizes {size:?})"
        );
    }
    // With an age as well: everything older than 12 hours, and then what the size still needs.
    let twelve = |w: &Written| base - w.max > 12 * HOUR;
    let limit = total - size[0] - size[1] - size[2] - size[3] - size[4] - 1;
    let chosen = by_size(&dir, &present, limit, twelve);
    assert_eq!(chosen.len(), 6, "test set-up");
    assert_eq!(
        rotate_ok(
            &dir,
            &[
                "--older-than",
                "12h",
                "--max-size",
                &limit.to_string(),
                "--dry-run"
            ]
        ),
        report(&dir, false, &chosen),
        "--older-than 12h --max-size {limit} --dry-run"
    );
    assert!(snapshot(&dir) == before, "a dry run changed the store");

    // For real, shrinking.
    let steps: Vec<(Vec<String>, u64, bool)> = vec![
        (vec!["--max-size".into(), "1G".into()], 1 << 30, false),
        (
            vec!["--max-size".into(), (total - size[0]).to_string()],
            total - size[0],
            false,
        ),
        (
            vec![
                "--max-size".into(),
                (total - size[0] - size[1] - 1).to_string(),
            ],
            total - size[0] - size[1] - 1,
            false,
        ),
        (
            vec![
                "--older-than".into(),
                "12h".into(),
                "--max-size".into(),
                "1T".into(),
            ],
            1 << 40,
            true,
        ),
        (vec!["--max-size".into(), "0".into()], 0, false),
    ];
    let expected_left = [9, 8, 6, 5, 1];
    for ((args, limit, aged), left) in steps.iter().zip(expected_left) {
        let chosen = if *aged {
            by_size(&dir, &present, *limit, twelve)
        } else {
            by_size(&dir, &present, *limit, never)
        };
        let want = report(&dir, true, &chosen);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        assert_eq!(rotate_ok(&dir, &args), want, "dstore rotate {args:?}");
        present.retain(|w| !chosen.iter().any(|c| c.name == w.name));
        assert_eq!(present.len(), left, "segments left after {args:?}");
        assert_eq!(
            segment_names(&dir),
            present.iter().map(|w| w.name.clone()).collect(),
            "files left after {args:?}"
        );
        assert_holds(&dir, &present, &format!("after {args:?}"));
    }
    assert!(!present[0].sealed, "only the unsealed segment is left");
}

// ---------------------------------------------------------------------------------------------
// Beside dstore ship

/// `dstore rotate ARGS --storage-dir DIR`, which must succeed: (stdout, stderr).
fn rotate_with_notes(dir: &Path, args: &[&str]) -> (String, String) {
    let mut all = vec!["rotate"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["--storage-dir", dir_arg(dir)]);
    let o = run(&all);
    assert!(
        o.status.success(),
        "dstore {}: {}",
        all.join(" "),
        stderr(&o)
    );
    (String::from_utf8_lossy(&o.stdout).into_owned(), stderr(&o))
}

/// Saves a shipper's position (at the start of `segment`, plus `offset`) in `path`, as ship does.
fn ship_at(path: PathBuf, segment: u64, offset: u64) -> PositionFile {
    let file = PositionFile { path };
    file.save(Position {
        offset,
        ..Position::start_of(segment)
    })
    .expect("save a position");
    file
}

/// Segment `w`'s sequence number: the digits its file name starts with.
fn sequence(w: &Written) -> u64 {
    w.name[..10]
        .parse()
        .expect("a segment name starts with its number")
}

/// Age never removes what a shipper has not read to the end: its position file in the store (found
/// by itself) or one given with --ship-position holds back its segment and every later one, and
/// rotate says so; a damaged position file holds back everything by age; --max-size still removes
/// (the disk comes first) and warns that those events will not reach ClickHouse.
#[test]
fn rotate_keeps_what_ship_has_not_sent() {
    let scratch = Scratch::new("rotate-ship");
    let dir = scratch.path("store");
    let base = now_us();
    let segments: Vec<Written> = (0..5u64)
        .map(|k| {
            let end = (20 - 2 * k) * HOUR;
            write_segment(&dir, &spread(base - end - HOUR, base - end, 20), true)
        })
        .collect();
    let all: Vec<&Written> = segments.iter().collect();
    // The shipper in the store has read segments 0 and 1 and is inside segment 2.
    let inside = ship_at(
        dir.join("ship-ch1-8123-dns_events.position"),
        sequence(&segments[2]),
        64,
    );

    let before = snapshot(&dir);
    let (out, notes) = rotate_with_notes(&dir, &["--older-than", "1h", "--dry-run"]);
    assert_eq!(out, report(&dir, false, &all[..2]), "dry run, one shipper");
    assert!(
        notes.contains("kept 3 old files not yet shipped (60 events")
            && notes.contains("ship-ch1-8123-dns_events.position is at segment"),
        "rotate says what it keeps and why: {notes}"
    );
    assert!(snapshot(&dir) == before, "a dry run changed the store");

    // A second shipper, its position file elsewhere, further behind: inside segment 1.
    let outside = ship_at(scratch.path("other.position"), sequence(&segments[1]), 0);
    let other = outside.path.to_str().expect("utf-8 path");
    let want = report(&dir, true, &all[..1]);
    let (out, notes) = rotate_with_notes(&dir, &["--older-than", "1h", "--ship-position", other]);
    assert_eq!(out, want, "for real, two shippers");
    assert!(notes.contains("kept 4 old files"), "{notes}");
    assert_holds(&dir, &all[1..], "after rotate beside two shippers");

    // The far one catches up to the near one: segment 1 may go now.
    ship_at(outside.path.clone(), sequence(&segments[2]), 0);
    let want = report(&dir, true, &all[1..2]);
    let (out, _) = rotate_with_notes(&dir, &["--older-than", "1h", "--ship-position", other]);
    assert_eq!(out, want, "after the far shipper caught up");
    assert_holds(&dir, &all[2..], "after the far shipper caught up");

    // A damaged position file: nothing goes by age, with a warning.
    std::fs::write(&inside.path, "dstore-ship-position 1 banana\n").expect("damage the file");
    let (out, notes) = rotate_with_notes(&dir, &["--older-than", "1h"]);
    assert_eq!(out, report(&dir, true, &[]), "damaged position file");
    assert!(
        notes.contains("WARNING") && notes.contains("is not a position file"),
        "{notes}"
    );
    assert_holds(&dir, &all[2..], "beside a damaged position file");

    // A size limit still removes, and warns what ClickHouse will never get.
    let want = report(&dir, true, &all[2..]);
    let (out, notes) = rotate_with_notes(&dir, &["--max-size", "0"]);
    assert_eq!(out, want, "--max-size 0 beside a shipper");
    assert!(
        notes.contains("WARNING: 3 files not yet shipped removed to fit --max-size (60 events")
            && notes.contains("will never reach ClickHouse"),
        "{notes}"
    );
    assert!(segment_names(&dir).is_empty(), "every sealed segment went");
}

// ---------------------------------------------------------------------------------------------
// The configuration file and the 1.x lines

/// `--configured` takes retention and max-size from the file DSTORE_CONFIG names (and the store
/// from its storage-dir); the 1.x forms print exactly the 1.x lines; DSTORE_STORAGE_DIR is
/// honoured. The store is built with `dstore import`, one run per segment.
#[test]
fn rotate_configured_and_the_1x_lines() {
    let scratch = Scratch::new("rotate-configured");
    let dir = scratch.path("store");
    std::fs::create_dir_all(&dir).expect("create the store dir");
    let base = now_us();
    let segments: Vec<Written> = [
        (10 * HOUR, 9 * HOUR, 80),
        (5 * HOUR, 4 * HOUR, 120),
        (2 * HOUR, 90 * MIN, 60),
        (30 * MIN, 10 * MIN, 40),
    ]
    .iter()
    .map(|&(old, new, n)| import_segment(&dir, &scratch, &spread(base - old, base - new, n)))
    .collect();
    let [s1, s2, s3, s4] = [&segments[0], &segments[1], &segments[2], &segments[3]];
    let conf = scratch.path("dstore.conf");
    let configured = |text: &str, args: &[&str]| -> Output {
        std::fs::write(&conf, text).expect("write dstore.conf");
        dstore()
            .env("DSTORE_CONFIG", &conf)
            .arg("rotate")
            .args(args)
            .output()
            .expect("run dstore")
    };
    let stdout = |o: &Output| String::from_utf8_lossy(&o.stdout).into_owned();
    let d = dir.display();

    // 1.x: `dstore rotate 1 hour` and `... really`, the store from DSTORE_STORAGE_DIR.
    let before = snapshot(&dir);
    let o = dstore()
        .env("DSTORE_STORAGE_DIR", &dir)
        .args(["rotate", "3", "hours"])
        .output()
        .expect("run dstore");
    assert!(o.status.success() && o.stderr.is_empty(), "{}", stderr(&o));
    let want = report(&dir, false, &[s1, s2]);
    assert_eq!(stdout(&o), want);
    let lines: Vec<&str> = want.lines().collect();
    assert_eq!(lines[0], format!("dstore: storage in '{d}'"));
    assert!(lines[1].starts_with("Would remove 2 files for actual rotate ("));
    assert!(
        snapshot(&dir) == before,
        "the 1.x dry run changed the store"
    );

    // --configured --dry-run, then for real: retention from the file, the store from its
    // storage-dir.
    let text = format!("# dstore\nstorage-dir = {d}\nretention = 3h\n");
    let want = report(&dir, false, &[s1, s2]);
    let o = configured(&text, &["--configured", "--dry-run"]);
    assert!(o.status.success() && o.stderr.is_empty(), "{}", stderr(&o));
    assert_eq!(stdout(&o), want, "--configured --dry-run");
    assert!(
        snapshot(&dir) == before,
        "--configured --dry-run changed the store"
    );
    let want = report(&dir, true, &[s1, s2]);
    let o = configured(&text, &["--configured"]);
    assert!(o.status.success() && o.stderr.is_empty(), "{}", stderr(&o));
    assert_eq!(stdout(&o), want, "--configured");
    assert!(want
        .lines()
        .nth(1)
        .is_some_and(|l| l.starts_with("Removed 2 files for rotate (")));
    assert_holds(&dir, &[s3, s4], "after --configured retention = 3h");

    // max-size alone: the oldest goes until the rest fits.
    let limit = file_len(&dir, &s3.name) + file_len(&dir, &s4.name) - 1;
    let text = format!("storage-dir = {d}\nmax-size = {limit}\n");
    let want = report(&dir, true, &[s3]);
    let o = configured(&text, &["--configured"]);
    assert!(o.status.success() && o.stderr.is_empty(), "{}", stderr(&o));
    assert_eq!(stdout(&o), want, "--configured, max-size = {limit}");
    assert_holds(&dir, &[s4], "after --configured max-size");

    // Both, nothing left to remove: the 1.x line with 0.
    let text = format!("storage-dir = {d}\nretention = 7d\nmax-size = 500G\n");
    let o = configured(&text, &["--configured"]);
    assert!(o.status.success() && o.stderr.is_empty(), "{}", stderr(&o));
    assert_eq!(stdout(&o), report(&dir, true, &[]));

    // Mistakes: one line, exit 2, nothing removed.
    let before = snapshot(&dir);
    let cases: [(String, &[&str], &[&str]); 5] = [
        (
            format!("storage-dir = {d}\n"),
            &["--configured"],
            &["remove"],
        ),
        (
            format!("storage-dir = {d}\nretention = forever\n"),
            &["--configured"],
            &["retention", "forever"],
        ),
        (
            format!("storage-dir = {d}\nmax-size = huge\n"),
            &["--configured"],
            &["max-size", "huge"],
        ),
        (
            format!("storage-dir = {d}\nretention = 1h\n"),
            &["--configured", "--older-than", "1h"],
            &["--configured", "--older-than"],
        ),
        (
            format!("storage-dir = {d}\nretention = 1h\n"),
            &["--configured", "1", "hour"],
            &["--configured"],
        ),
    ];
    for (text, args, needles) in &cases {
        let o = configured(text, args);
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(2), "{args:?} with {text:?}: {err}");
        assert!(!err.contains("panicked"), "{args:?}: {err}");
        let first = err.lines().next().unwrap_or("");
        for n in *needles {
            assert!(
                first.contains(n),
                "{args:?} with {text:?}: `{first}` lacks `{n}`"
            );
        }
    }
    let o = dstore()
        .env("DSTORE_CONFIG", scratch.path("missing.conf"))
        .args(["rotate", "--configured"])
        .output()
        .expect("run dstore");
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("missing.conf"), "{}", stderr(&o));
    assert!(
        snapshot(&dir) == before,
        "a refused rotate changed the store"
    );
}

// ---------------------------------------------------------------------------------------------
// Bad arguments

/// Every mistake gets exit 2 and one line on stderr naming it, no panic, nothing on stdout, and the
/// store untouched.
#[test]
fn rotate_bad_arguments() {
    let scratch = Scratch::new("rotate-args");
    let dir = scratch.path("store");
    let base = now_us();
    write_segment(&dir, &spread(base - 5 * DAY, base - 4 * DAY, 30), true);
    let before = snapshot(&dir);
    let cases: [(&[&str], &[&str]); 11] = [
        (&["banana"], &["banana"]),
        (&["1"], &["unit"]),
        (&["1", "fortnight"], &["fortnight"]),
        (&["1", "hour", "please"], &["really"]),
        (&["1", "hour", "really", "now"], &["really"]),
        (&["banana", "hours"], &["banana"]),
        (&["1.5", "hours"], &["1.5"]),
        (&["--max-size", "lots"], &["--max-size", "lots"]),
        (&["--max-size", "5X"], &["5X"]),
        (&["--older-than", "soon"], &["--older-than", "soon"]),
        (&[], &["remove"]),
    ];
    for (args, needles) in cases {
        let mut all = vec!["rotate", "--storage-dir", dir_arg(&dir)];
        all.extend_from_slice(args);
        let o = run(&all);
        let err = stderr(&o);
        let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
        assert_eq!(o.status.code(), Some(2), "dstore rotate {args:?}: {err}");
        assert!(
            o.stdout.is_empty(),
            "dstore rotate {args:?} printed {:?}",
            String::from_utf8_lossy(&o.stdout)
        );
        assert_eq!(lines.len(), 1, "dstore rotate {args:?}: stderr {err:?}");
        assert!(
            !err.contains("panicked") && !err.contains("RUST_BACKTRACE"),
            "{err}"
        );
        assert!(lines[0].starts_with("dstore"), "{args:?}: {err}");
        for n in needles {
            assert!(
                lines[0].to_lowercase().contains(&n.to_lowercase()),
                "dstore rotate {args:?}: `{err}` lacks `{n}`"
            );
        }
        assert!(
            snapshot(&dir) == before,
            "dstore rotate {args:?} changed the store"
        );
    }
    // A store that is not there: an error that names it, for rotate and stats.
    let missing = scratch.path("no-such-store");
    for args in [
        vec!["rotate", "1", "hour", "really"],
        vec!["stats"],
        vec!["stats", "--json"],
    ] {
        let mut all = args.clone();
        all.extend_from_slice(&["--storage-dir", dir_arg(&missing)]);
        let o = run(&all);
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(2), "dstore {all:?}: {err}");
        assert_eq!(err.lines().count(), 1, "dstore {all:?}: {err:?}");
        assert!(err.contains("no-such-store"), "dstore {all:?}: {err}");
    }
    assert!(!missing.exists(), "rotate or stats created the store");
}

// ---------------------------------------------------------------------------------------------
// Beside ingest and searches

/// A running `dstore ingest`; dropping it kills the process (by its PID) if it still runs.
struct Ingest {
    child: Child,
    lines: Receiver<String>,
    log: Vec<String>,
    listen: SocketAddr,
    metrics: SocketAddr,
}

impl Ingest {
    fn start(store: &Path, config: &Path) -> Ingest {
        std::fs::write(config, "").expect("write the configuration file");
        let mut child = dstore()
            .args([
                "ingest",
                "--storage-dir",
                dir_arg(store),
                "--config",
                config.to_str().expect("utf-8 path"),
                "--listen",
                "127.0.0.1:0",
                "--flush-interval",
                "200ms",
                "--status-interval",
                "0",
                "--metrics-listen",
                "127.0.0.1:0",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start dstore ingest");
        let stderr = child.stderr.take().expect("piped stderr");
        let (tx, lines) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { return };
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        let mut ingest = Ingest {
            child,
            lines,
            log: Vec::new(),
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            metrics: SocketAddr::from(([127, 0, 0, 1], 0)),
        };
        let (mut listen, mut metrics) = (None, None);
        let deadline = Instant::now() + WAIT;
        while listen.is_none() || metrics.is_none() {
            let left = deadline.saturating_duration_since(Instant::now());
            let Ok(line) = ingest
                .lines
                .recv_timeout(left.max(Duration::from_millis(1)))
            else {
                panic!(
                    "ingest did not start within {WAIT:?}; its log:\n{}",
                    ingest.log.join("\n")
                );
            };
            if let Some(rest) = line.split("listening on ").nth(1) {
                listen = rest.split(' ').next().and_then(|a| a.parse().ok());
            }
            if let Some(rest) = line.split("metrics on http://").nth(1) {
                metrics = rest.split('/').next().and_then(|a| a.parse().ok());
            }
            ingest.log.push(line);
        }
        ingest.listen = listen.expect("listen address");
        ingest.metrics = metrics.expect("metrics address");
        ingest
    }

    fn log_text(&mut self) -> String {
        while let Ok(line) = self.lines.try_recv() {
            self.log.push(line);
        }
        self.log.join("\n")
    }

    /// `dstore_ingest_{name}` from GET /metrics.
    fn metric(&self, name: &str) -> u64 {
        let mut s = TcpStream::connect_timeout(&self.metrics, WAIT).expect("connect to metrics");
        s.set_read_timeout(Some(WAIT)).expect("set a timeout");
        s.write_all(b"GET /metrics HTTP/1.0\r\n\r\n")
            .expect("send the request");
        let mut text = String::new();
        s.read_to_string(&mut text).expect("read the metrics");
        let full = format!("dstore_ingest_{name} ");
        text.lines()
            .find_map(|l| l.strip_prefix(&full)?.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {full} in /metrics:\n{text}"))
    }

    /// SIGTERM (to this PID only), then its exit status.
    fn stop(&mut self) -> ExitStatus {
        let status = std::process::Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -TERM failed");
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait for ingest") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "ingest did not stop within {WAIT:?}; its log:\n{}",
                self.log_text()
            );
            thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Ingest {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// For eight seconds a producer streams events dated from three hours ago to now into a running
/// ingest, while `dstore rotate 1 hour really` runs again and again, sealed segments beside
/// ingest's cross the one-hour line one after another, and `dstore grep --count` and
/// `dstore cat --raw` read the store. Rotate never fails, the readers never fail and never say
/// anything impossible, and at the end every event is accounted for: the events written before and
/// sent during the run are those still stored plus those rotate reported removed, and the stored
/// ones are exactly the frames expected.
#[test]
fn rotate_beside_ingest_and_grep_accounts_for_every_event() {
    const RUN: Duration = Duration::from_secs(8);
    let scratch = Scratch::new("rotate-concurrent");
    let dir = scratch.path("store");
    let base = now_us();
    let mut old = Vec::new();
    for k in 0..6 {
        let new = 2 * HOUR + k * 10 * MIN;
        old.push(write_segment(
            &dir,
            &spread(base - new - HOUR, base - new, 150),
            true,
        ));
    }
    let mut young = Vec::new();
    for k in 0..4 {
        let new = 5 * MIN + k * MIN;
        young.push(write_segment(
            &dir,
            &spread(base - new - 35 * MIN, base - new, 100),
            true,
        ));
    }
    // These cross the one-hour line during the run, one every 0.4 s from 1.5 s in.
    let start = now_us();
    let mut crossing = Vec::new();
    for k in 0..16 {
        let new = HOUR - 1_500_000 - k * 400_000;
        crossing.push(write_segment(
            &dir,
            &spread(start - new - 90 * MIN, start - new, 100),
            true,
        ));
    }
    let written: Vec<&Written> = old.iter().chain(&young).chain(&crossing).collect();
    let pre: u64 = written.iter().map(|w| w.events() as u64).sum();
    let young_events: u64 = young.iter().map(|w| w.events() as u64).sum();

    let mut ingest = Ingest::start(&dir, &scratch.path("tcpdistro.conf"));
    let stop = Arc::new(AtomicBool::new(false));
    let sent_count = Arc::new(AtomicU64::new(0));

    let producer = {
        let (stop, sent_count, addr) = (stop.clone(), sent_count.clone(), ingest.listen);
        thread::spawn(move || {
            let mut rng = Rng::from_clock("producer");
            let mut s = TcpStream::connect_timeout(&addr, WAIT).expect("connect to ingest");
            s.set_write_timeout(Some(WAIT)).expect("set a timeout");
            let mut sent = Vec::new();
            let began = Instant::now();
            while !stop.load(Ordering::Relaxed) && began.elapsed() < RUN {
                let now = now_us();
                let batch: Vec<Vec<u8>> = (0..50)
                    .map(|_| event(next_id(), now - rng.below(3 * HOUR)))
                    .collect();
                let mut bytes = Vec::new();
                for f in &batch {
                    dstore::frame::write_frame(&mut bytes, FrameWidth::Two, f).expect("fits");
                }
                // Counted before sending, so a reader never sees more than the count allows.
                sent_count.fetch_add(batch.len() as u64, Ordering::SeqCst);
                s.write_all(&bytes).expect("send to ingest");
                sent.extend(batch);
                thread::sleep(Duration::from_millis(10));
            }
            sent
        })
    };

    let readers = {
        let (stop, sent_count, dir) = (stop.clone(), sent_count.clone(), dir.clone());
        thread::spawn(move || {
            let mut runs = 0u32;
            while !stop.load(Ordering::Relaxed) && runs < 2000 {
                let args: Vec<&str> = match runs % 3 {
                    0 => vec!["grep", "--count"],
                    1 => vec!["grep", "--count", "--last", "2h"],
                    _ => vec!["cat", "--raw", "-q"],
                };
                let mut all = args.clone();
                all.extend_from_slice(&["--storage-dir", dir_arg(&dir)]);
                let o = run(&all);
                let bound = pre + sent_count.load(Ordering::SeqCst);
                let n = if args[0] == "cat" {
                    assert!(
                        o.status.success() && o.stderr.is_empty(),
                        "dstore {all:?} beside ingest and rotate: {}: {}",
                        o.status,
                        stderr(&o)
                    );
                    frames_in(&o.stdout).len() as u64
                } else {
                    let text = String::from_utf8_lossy(&o.stdout);
                    let n: u64 = text
                        .strip_suffix('\n')
                        .and_then(|t| t.parse().ok())
                        .unwrap_or_else(|| {
                            panic!(
                                "dstore {all:?} beside ingest and rotate: {}, stdout {text:?}, stderr {}",
                                o.status,
                                stderr(&o)
                            )
                        });
                    assert!(
                        o.status.code() == Some(if n > 0 { 0 } else { 1 }) && o.stderr.is_empty(),
                        "dstore {all:?} beside ingest and rotate: count {n}, {}: {}",
                        o.status,
                        stderr(&o)
                    );
                    n
                };
                assert!(
                    (young_events..=bound).contains(&n),
                    "dstore {all:?} counted {n}: at least the {young_events} recent events written before, at most {bound}"
                );
                runs += 1;
                thread::sleep(Duration::from_millis(20));
            }
            runs
        })
    };

    let rotator = {
        let (stop, dir) = (stop.clone(), dir.clone());
        thread::spawn(move || {
            let mut removals = Vec::new();
            let mut runs = 0u32;
            while !stop.load(Ordering::Relaxed) && runs < 500 {
                let dry = runs % 5 == 4;
                let args: &[&str] = if dry {
                    &["--older-than", "1h", "--dry-run"]
                } else {
                    &["1", "hour", "really"]
                };
                let out = rotate_ok(&dir, args);
                let lines: Vec<&str> = out.lines().collect();
                assert_eq!(lines.len(), 2, "dstore rotate {args:?}: {out}");
                assert_eq!(lines[0], format!("dstore: storage in '{}'", dir.display()));
                let head = if dry { "Would remove " } else { "Removed " };
                assert!(lines[1].starts_with(head), "dstore rotate {args:?}: {out}");
                let verdict = parse_verdict(lines[1])
                    .unwrap_or_else(|| panic!("dstore rotate {args:?}: {out}"));
                if !dry {
                    removals.push(verdict);
                }
                runs += 1;
                thread::sleep(Duration::from_millis(100));
            }
            removals
        })
    };

    thread::sleep(RUN);
    stop.store(true, Ordering::Relaxed);
    let sent = producer.join().expect("the producer");
    let reader_runs = readers
        .join()
        .expect("grep and cat beside ingest and rotate");
    let mut removals = rotator.join().expect("rotate beside ingest");
    assert!(reader_runs >= 10, "only {reader_runs} searches ran");
    let removing_runs = removals.iter().filter(|(n, _)| *n > 0).count();
    assert!(
        removing_runs >= 2,
        "segments crossed the line during the run, yet only {removing_runs} rotate runs removed any: {removals:?}"
    );

    // Everything sent is stored, then ingest stops cleanly.
    let deadline = Instant::now() + WAIT;
    while ingest.metric("stored_events_total") < sent.len() as u64 {
        assert!(
            Instant::now() < deadline,
            "ingest stored {} of {} events; its log:\n{}",
            ingest.metric("stored_events_total"),
            sent.len(),
            ingest.log_text()
        );
        thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(ingest.metric("stored_events_total"), sent.len() as u64);
    assert_eq!(ingest.metric("dropped_events_total"), 0);
    let status = ingest.stop();
    assert!(status.success(), "ingest: {status}; {}", ingest.log_text());

    // Once more now that every crossing segment is past the line.
    while now_us() < start + 8_500_000 {
        thread::sleep(Duration::from_millis(50));
    }
    let out = rotate_ok(&dir, &["1", "hour", "really"]);
    removals.push(
        out.lines()
            .nth(1)
            .and_then(parse_verdict)
            .unwrap_or_else(|| panic!("final rotate: {out}")),
    );

    let names = segment_names(&dir);
    let gone: Vec<&Written> = written
        .iter()
        .copied()
        .filter(|w| !names.contains(&w.name))
        .collect();
    let kept: Vec<&Written> = written
        .iter()
        .copied()
        .filter(|w| names.contains(&w.name))
        .collect();
    let mut gone_names: Vec<&str> = gone.iter().map(|w| w.name.as_str()).collect();
    gone_names.sort();
    let mut want_gone: Vec<&str> = old
        .iter()
        .chain(&crossing)
        .map(|w| w.name.as_str())
        .collect();
    want_gone.sort();
    assert_eq!(gone_names, want_gone, "the segments removed");
    assert_eq!(kept.len(), young.len());
    assert!(
        names.len() > kept.len(),
        "ingest's own segment is missing: {names:?}"
    );

    eprintln!(
        "{} events sent, {reader_runs} searches, rotate removals (files, events): {removals:?}",
        sent.len()
    );
    let reported_files: u64 = removals.iter().map(|r| r.0).sum();
    let reported_events: u64 = removals.iter().map(|r| r.1).sum();
    let gone_events: u64 = gone.iter().map(|w| w.events() as u64).sum();
    assert_eq!(reported_files, gone.len() as u64, "files reported removed");
    assert_eq!(
        reported_events, gone_events,
        "events reported removed: {removals:?}"
    );
    let stored = stored_frames(&dir);
    assert_eq!(
        pre + sent.len() as u64,
        stored.len() as u64 + reported_events,
        "written before ({pre}) + sent ({}) = still stored + reported removed",
        sent.len()
    );
    let mut want = frames_of_segments(kept.iter().copied());
    want.extend(sent);
    want.sort();
    assert!(
        stored == want,
        "the stored frames are not the sent ones plus the segments kept"
    );
    assert_eq!(grep_count(&dir, &[]), stored.len() as u64);
}

/// Three rotates started at the same moment, as a timer's and operators' may be: between them they
/// remove every old segment once, and what they report adds up to what went, no segment counted
/// twice.
#[test]
fn rotates_at_once_report_each_removal_once() {
    let scratch = Scratch::new("rotate-at-once");
    let template = scratch.path("template");
    let base = now_us();
    let mut writer = open_writer(
        &template,
        WriterOptions {
            block_events: 4,
            segment_bytes: 1,
            ..WriterOptions::default()
        },
    )
    .0;
    let times = spread(base - 5 * HOUR, base - 2 * HOUR, 1200);
    for &t in &times {
        writer
            .append(&event(next_id(), t), now_us())
            .expect("append");
    }
    writer.close().expect("close");
    let files = segment_names(&template).len() as u64;
    assert!(files >= 250, "test set-up: {files} segments");
    let mut rounds = Vec::new();
    for round in 0..6 {
        let dir = scratch.path(&format!("store-{round}"));
        copy_store(&template, &dir);
        let spawn = || {
            Guard(
                dstore()
                    .args([
                        "rotate",
                        "--older-than",
                        "1h",
                        "--storage-dir",
                        dir_arg(&dir),
                    ])
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .spawn()
                    .expect("start dstore rotate"),
            )
        };
        let children = [spawn(), spawn(), spawn()];
        let mut reports = Vec::new();
        for mut g in children {
            let mut out = String::new();
            let mut err = String::new();
            g.0.stdout
                .take()
                .expect("piped")
                .read_to_string(&mut out)
                .expect("read stdout");
            g.0.stderr
                .take()
                .expect("piped")
                .read_to_string(&mut err)
                .expect("read stderr");
            let status = g.0.wait().expect("wait for rotate");
            assert!(
                status.success() && err.is_empty(),
                "rotate: {status}: {err}"
            );
            reports.push(
                out.lines()
                    .nth(1)
                    .and_then(parse_verdict)
                    .unwrap_or_else(|| panic!("rotate said {out:?}")),
            );
        }
        assert!(
            segment_names(&dir).is_empty(),
            "round {round}: old segments left"
        );
        rounds.push(reports);
    }
    let wrong: Vec<&Vec<(u64, u64)>> = rounds
        .iter()
        .filter(|r| {
            r.iter().map(|x| x.0).sum::<u64>() != files
                || r.iter().map(|x| x.1).sum::<u64>() != times.len() as u64
        })
        .collect();
    assert!(
        wrong.is_empty(),
        "{} files and {} events removed by three rotates at once, but in {} of {} rounds what they reported (files, events each) adds up otherwise: {wrong:?}",
        files,
        times.len(),
        wrong.len(),
        rounds.len()
    );
}

fn copy_store(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("create the copy");
    for e in std::fs::read_dir(from).expect("list the template") {
        let p = e.expect("entry").path();
        std::fs::copy(&p, to.join(p.file_name().expect("name"))).expect("copy a file");
    }
}

// ---------------------------------------------------------------------------------------------
// Crashes

/// `dstore rotate 1 hour really` killed with SIGKILL at random moments (some at once) on a store of
/// many small segments: afterwards the store opens for stats, cat and grep without error, every file
/// left is one of the originals byte for byte and opens as a sealed segment, the recent segments are
/// all there, and a rotate left to finish removes exactly the old ones still there.
#[test]
fn rotate_killed_at_random_points() {
    let scratch = Scratch::new("rotate-crash");
    let template = scratch.path("template");
    let base = now_us();
    let small = WriterOptions {
        block_events: 20,
        segment_bytes: 1,
        ..WriterOptions::default()
    };
    let write_many = |from: u64, to: u64, n: usize| -> BTreeSet<String> {
        let before = segment_names(&template);
        let mut writer = open_writer(&template, small.clone()).0;
        for t in spread(from, to, n) {
            writer
                .append(&event(next_id(), t), now_us())
                .expect("append");
        }
        writer.close().expect("close");
        segment_names(&template)
            .difference(&before)
            .cloned()
            .collect()
    };
    let old = write_many(base - 5 * HOUR, base - 2 * HOUR, 4000);
    let recent = write_many(base - 30 * MIN, base - MIN, 400);
    assert!(
        old.len() >= 150 && recent.len() >= 15,
        "test set-up: {} and {}",
        old.len(),
        recent.len()
    );
    let original = snapshot(&template);
    let events: BTreeMap<String, u64> = original
        .keys()
        .filter(|n| n.ends_with(".dst"))
        .map(|n| {
            let s = Segment::open(&template.join(n)).expect("open a segment");
            (n.clone(), s.events())
        })
        .collect();
    assert_eq!(events.values().sum::<u64>(), 4400, "test set-up");

    // How long an uninterrupted rotate takes, to kill the others within it.
    let full = scratch.path("full");
    copy_store(&template, &full);
    let began = Instant::now();
    let out = rotate_ok(&full, &["1", "hour", "really"]);
    let took = began.elapsed();
    assert!(
        out.contains(&format!(
            "Removed {} files for rotate (4000 events,",
            old.len()
        )),
        "{out}"
    );
    assert_eq!(segment_names(&full), recent);

    let mut rng = Rng::from_clock("rotate_killed_at_random_points");
    let window = (took.as_micros() as u64 * 3 / 2).max(1);
    for round in 0..12 {
        let dir = scratch.path(&format!("store-{round}"));
        copy_store(&template, &dir);
        let delay = if round < 2 {
            Duration::ZERO
        } else {
            Duration::from_micros(rng.below(window))
        };
        let mut child = Guard(
            dstore()
                .args([
                    "rotate",
                    "1",
                    "hour",
                    "really",
                    "--storage-dir",
                    dir_arg(&dir),
                ])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("start dstore rotate"),
        );
        thread::sleep(delay);
        let _ = child.0.kill();
        let _ = child.0.wait();
        let what = format!("round {round}, killed after {delay:?} (a full rotate took {took:?})");

        let left = snapshot(&dir);
        for (name, bytes) in &left {
            assert!(
                original.get(name) == Some(bytes),
                "{what}: {name} is not one of the original files, byte for byte"
            );
            if name.ends_with(".dst") {
                let s = Segment::open(&dir.join(name))
                    .unwrap_or_else(|e| panic!("{what}: {name} does not open: {e}"));
                assert!(s.sealed && s.damage.is_empty(), "{what}: {name}");
            }
        }
        let names = segment_names(&dir);
        assert!(names.is_superset(&recent), "{what}: a recent segment went");
        let expected: u64 = names.iter().map(|n| events[n]).sum();

        let o = run(&["stats", "--json", "--storage-dir", dir_arg(&dir)]);
        assert!(
            o.status.success() && o.stderr.is_empty(),
            "{what}: stats: {}",
            stderr(&o)
        );
        let doc: Value = serde_json::from_slice(&o.stdout).expect("stats --json is JSON");
        assert_eq!(doc["events"], expected, "{what}: stats");
        assert_eq!(doc["segments"], names.len(), "{what}: stats");
        assert_eq!(doc["damagedBlocks"], 0, "{what}: stats");
        assert_eq!(stored_frames(&dir).len() as u64, expected, "{what}: cat");
        assert_eq!(grep_count(&dir, &[]), expected, "{what}: grep");

        // Finishing the job removes exactly the old segments still there.
        let old_left = names.difference(&recent).count();
        eprintln!("{what}: {old_left} of {} old segments left", old.len());
        let out = rotate_ok(&dir, &["1", "hour", "really"]);
        assert!(
            out.lines()
                .nth(1)
                .is_some_and(|l| l.starts_with(&format!("Removed {old_left} files for rotate ("))),
            "{what}: then: {out}"
        );
        assert_eq!(segment_names(&dir), recent, "{what}: then");
    }
}

// ---------------------------------------------------------------------------------------------
// Stats

fn stats_json(dir: &Path) -> (Value, Output) {
    let o = run(&["stats", "--json", "--storage-dir", dir_arg(dir)]);
    let doc: Value = serde_json::from_slice(&o.stdout).unwrap_or_else(|e| {
        panic!(
            "stats --json: {e}: {:?} ({})",
            String::from_utf8_lossy(&o.stdout),
            stderr(&o)
        )
    });
    (doc, o)
}

fn stats_table(dir: &Path) -> (Vec<String>, Output) {
    let o = run(&["stats", "--storage-dir", dir_arg(dir)]);
    let lines = String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(str::to_string)
        .collect();
    (lines, o)
}

/// What stats must report for `segments` in `dir`: (events, bytes, frame bytes with their
/// 2-byte prefixes, first event, last event, events per day).
fn expected_stats(
    dir: &Path,
    segments: &[&Written],
) -> (u64, u64, u64, u64, u64, BTreeMap<String, u64>) {
    let events: u64 = segments.iter().map(|w| w.events() as u64).sum();
    let bytes: u64 = segments.iter().map(|w| file_len(dir, &w.name)).sum();
    let framed: u64 = segments
        .iter()
        .flat_map(|w| &w.frames)
        .map(|f| f.len() as u64 + 2)
        .sum();
    let first = segments.iter().map(|w| w.min).min().expect("segments");
    let last = segments.iter().map(|w| w.max).max().expect("segments");
    let mut per_day = BTreeMap::new();
    for w in segments {
        for f in &w.frames {
            let m = dstore::pb::Message::decode(f.as_slice()).expect("our own frame");
            let t =
                u64::from(m.time_sec.expect("time")) * SEC + u64::from(m.time_usec.expect("us"));
            *per_day.entry(day_of(t)).or_insert(0) += 1;
        }
    }
    (events, bytes, framed, first, last, per_day)
}

/// Stats, as JSON and as a table, on a store of whole days: four segments on three days (none on
/// the day between), every figure as written.
#[test]
fn stats_reports_what_was_written() {
    let scratch = Scratch::new("stats");
    let dir = scratch.path("store");
    let today = now_us() / DAY * DAY;
    let day = |n: u64| today - n * DAY;
    let segments = [
        write_segment(
            &dir,
            &spread(day(4) + 5 * SEC, day(4) + 11 * HOUR, 60),
            true,
        ),
        write_segment(
            &dir,
            &spread(day(4) + 12 * HOUR, day(4) + DAY - 10 * SEC, 40),
            true,
        ),
        write_segment(&dir, &spread(day(2) + HOUR, day(2) + 23 * HOUR, 250), true),
        write_segment(&dir, &spread(day(1), day(1) + DAY - 1, 77), true),
    ];
    let all: Vec<&Written> = segments.iter().collect();
    let (events, bytes, framed, first, last, per_day) = expected_stats(&dir, &all);
    assert_eq!(per_day.len(), 3, "test set-up");

    let (doc, o) = stats_json(&dir);
    assert!(o.status.success() && o.stderr.is_empty(), "{}", stderr(&o));
    assert_eq!(doc["storageDir"], dir.display().to_string());
    assert_eq!(doc["segments"], 4);
    assert_eq!(doc["unsealedSegments"], 0);
    assert_eq!(doc["events"], events);
    assert_eq!(doc["bytesOnDisk"], bytes);
    assert_eq!(doc["firstEvent"], utc(first));
    assert_eq!(doc["lastEvent"], utc(last));
    assert_eq!(doc["damagedBlocks"], 0);
    assert!(doc["blocks"].as_u64().is_some_and(|b| b >= 4), "{doc}");
    let days: BTreeMap<String, u64> =
        serde_json::from_value(doc["eventsPerDay"].clone()).expect("eventsPerDay is a map");
    assert_eq!(days, per_day, "eventsPerDay");
    let per_event = doc["bytesPerEvent"].as_f64().expect("bytesPerEvent");
    assert!(
        (per_event - bytes as f64 / events as f64).abs() <= 0.051,
        "bytesPerEvent {per_event}, {bytes} bytes for {events} events"
    );
    let ratio = doc["compressionRatio"].as_f64().expect("compressionRatio");
    let want_ratio = framed as f64 / bytes as f64;
    assert!(
        (ratio - want_ratio).abs() <= 0.0051 && ratio > 1.0,
        "compressionRatio {ratio}, {framed} bytes framed stored in {bytes}"
    );

    let (lines, o) = stats_table(&dir);
    assert!(o.status.success() && o.stderr.is_empty(), "{}", stderr(&o));
    let line = |key: &str| -> String {
        lines
            .iter()
            .find(|l| l.starts_with(key))
            .unwrap_or_else(|| panic!("no `{key}` line in {lines:#?}"))
            .clone()
    };
    assert_eq!(
        line("time span"),
        format!("time span        {} to {}", utc(first), utc(last))
    );
    assert!(
        line("segments").starts_with("segments         4 "),
        "{lines:#?}"
    );
    assert_eq!(line("events    "), format!("events           {events}"));
    assert!(
        line("bytes on disk").starts_with(&format!("bytes on disk    {bytes} ")),
        "{lines:#?}"
    );
    assert_eq!(line("damaged blocks"), "damaged blocks   0");
    let shown: f64 = line("bytes per event")["bytes per event".len()..]
        .trim()
        .parse()
        .expect("bytes per event is a number");
    assert!((shown - bytes as f64 / events as f64).abs() <= 0.051);
    let shown: f64 = line("compression")["compression".len()..]
        .trim()
        .split('x')
        .next()
        .and_then(|t| t.parse().ok())
        .expect("compression is a number");
    assert!((shown - want_ratio).abs() <= 0.0051 && shown > 1.0);
    let at = lines
        .iter()
        .position(|l| l == "events per day")
        .unwrap_or_else(|| panic!("no `events per day` in {lines:#?}"));
    let shown: Vec<&str> = lines[at + 1..].iter().map(String::as_str).collect();
    let want: Vec<String> = per_day.iter().map(|(d, n)| format!("  {d}  {n}")).collect();
    assert_eq!(shown, want, "the table's events per day");

    // After a rotate, stats follows.
    rotate_ok(&dir, &["--older-than", "3d"]);
    let (events, bytes, _, first, last, per_day) = expected_stats(&dir, &all[2..]);
    let (doc, o) = stats_json(&dir);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(doc["segments"], 2);
    assert_eq!(doc["events"], events);
    assert_eq!(doc["bytesOnDisk"], bytes);
    assert_eq!(doc["firstEvent"], utc(first));
    assert_eq!(doc["lastEvent"], utc(last));
    let days: BTreeMap<String, u64> =
        serde_json::from_value(doc["eventsPerDay"].clone()).expect("eventsPerDay is a map");
    assert_eq!(days, per_day);

    // An empty store: zeros, no times, exit 0.
    let empty = scratch.path("empty");
    std::fs::create_dir_all(&empty).expect("create a directory");
    let (doc, o) = stats_json(&empty);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(doc["events"], 0);
    assert_eq!(doc["segments"], 0);
    assert_eq!(doc["firstEvent"], Value::Null);
    let (lines, o) = stats_table(&empty);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        lines.iter().any(|l| l == "events           0"),
        "{lines:#?}"
    );
}

/// Events per day counts each event on its own day, also when one segment holds several days (one
/// `dstore import` of a capture three days long makes one segment).
#[test]
fn stats_events_per_day_counts_each_event_on_its_day() {
    let scratch = Scratch::new("stats-days");
    let dir = scratch.path("store");
    std::fs::create_dir_all(&dir).expect("create the store dir");
    let today = now_us() / DAY * DAY;
    let w = import_segment(
        &dir,
        &scratch,
        &spread(today - 3 * DAY + 10 * HOUR, today - DAY + 20 * HOUR, 300),
    );
    let (events, _, _, _, _, per_day) = expected_stats(&dir, &[&w]);
    assert_eq!(per_day.len(), 3, "test set-up");
    let (doc, o) = stats_json(&dir);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(doc["events"], events);
    let days: BTreeMap<String, u64> =
        serde_json::from_value(doc["eventsPerDay"].clone()).expect("eventsPerDay is a map");
    assert_eq!(
        days, per_day,
        "eventsPerDay of one segment spanning three days"
    );
}

/// A damaged block (a segment left unsealed, the header of its first block hit) is counted by
/// stats, which then exits 2; the rest is still reported, and rotate still works beside it.
#[test]
fn stats_counts_damaged_blocks() {
    let scratch = Scratch::new("stats-damage");
    let dir = scratch.path("store");
    let base = now_us();
    let sealed = write_segment(&dir, &spread(base - 3 * HOUR, base - 2 * HOUR, 50), true);
    // Two blocks, no index.
    let before = segment_names(&dir);
    let mut writer = open_writer(&dir, WriterOptions::default()).0;
    for t in spread(base - 50 * MIN, base - 40 * MIN, 30) {
        writer
            .append(&event(next_id(), t), now_us())
            .expect("append");
    }
    writer.flush().expect("flush");
    for t in spread(base - 30 * MIN, base - 20 * MIN, 20) {
        writer
            .append(&event(next_id(), t), now_us())
            .expect("append");
    }
    writer.flush().expect("flush");
    drop(writer);
    let name = segment_names(&dir)
        .difference(&before)
        .next()
        .expect("a new segment")
        .clone();
    let path = dir.join(&name);
    let mut bytes = std::fs::read(&path).expect("read the segment");
    bytes[dstore::format::segment::FILE_HEADER_LEN] ^= 0xff;
    std::fs::write(&path, bytes).expect("damage the segment");

    let (doc, o) = stats_json(&dir);
    assert_eq!(
        o.status.code(),
        Some(2),
        "stats on a damaged store: {}",
        stderr(&o)
    );
    assert_eq!(doc["damagedBlocks"], 1, "{doc}");
    assert_eq!(doc["segments"], 2);
    assert_eq!(doc["unsealedSegments"], 1);
    assert_eq!(doc["events"], sealed.events() as u64 + 20, "{doc}");
    let (lines, o) = stats_table(&dir);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        lines.iter().any(|l| l == "damaged blocks   1"),
        "{lines:#?}"
    );

    let want = report(&dir, true, &[&sealed]);
    assert_eq!(rotate_ok(&dir, &["1", "hour", "really"]), want);
    assert_eq!(
        segment_names(&dir),
        BTreeSet::from([name]),
        "the unsealed one stays"
    );
}

/// Removing every segment does not make the next one reuse a number: exporters name events by
/// (segment number, place), so a reused number would give two events one name.
#[test]
fn segment_numbers_are_never_reused() {
    let s = Scratch::new("rotate-numbers");
    let dir = s.path("store");
    let now = now_us();
    let old = [
        import_segment(&dir, &s, &[now - 3 * DAY, now - 2 * DAY]),
        import_segment(&dir, &s, &[now - 2 * DAY]),
    ];
    let number = |name: &str| -> u64 { name[..10].parse().expect("a numbered segment") };
    let o = run(&[
        "rotate",
        "-q",
        "--older-than",
        "1d",
        "--storage-dir",
        dir.to_str().expect("utf-8 path"),
    ]);
    assert!(o.status.success(), "dstore rotate: {}", stderr(&o));
    assert!(segment_names(&dir).is_empty(), "{:?}", segment_names(&dir));
    let new = import_segment(&dir, &s, &[now - MIN]);
    assert!(
        number(&new.name) > number(&old[1].name),
        "{} after {}",
        new.name,
        old[1].name
    );
}
