//! `dstore rotate`: removes old data, whole segment files at a time, by age or to fit a size; safe
//! beside a running ingest (it never removes a segment still being written, which is unsealed) and
//! running searches (an open file stays readable until closed). Age alone never removes what a
//! `dstore ship` has not sent yet. `dstore stats`: what the store holds.

use super::compact::COMPACTED_FILE;
use crate::clickhouse::ship::{lag_bytes, Position, PositionFile};
use crate::config::{parse_conf, StoreArgs, DEFAULT_CONFIG_FILE};
use crate::format::block::decode_payload_columns;
use crate::format::codec::Columns;
use crate::format::segment::sync_dir;
use crate::format::store::{
    lock_maintenance, now_us, numbered_segments, read_number_file, utc_text,
};
use crate::format::Segment;
use crate::timespec::parse_duration;
use anyhow::{bail, Context, Result};
use clap::{ArgMatches, Command, CommandFactory, FromArgMatches, Parser};
use serde_json::json;
use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Remove old data: `dstore rotate 1 hour` says what it would remove, `dstore rotate 1 hour really`
/// removes it (the 1.x forms); `--older-than 7d` and `--max-size 500G` remove (with `--dry-run`, only
/// say). Whole segment files go, oldest first; the one being written never does.
#[derive(Parser, Debug)]
#[command(
    after_help = "Examples:\n  dstore rotate 1 hour            # dry run\n  dstore rotate 30 days really\n  dstore rotate --older-than 7d --max-size 500G\n  dstore rotate --configured      # retention and max-size from dstore.conf (for a timer)"
)]
struct RotateArgs {
    /// AGE UNIT [really]: keep this much (1 hour, 30 minutes, 7 days, 2 weeks); without `really`, a dry run
    #[arg(value_name = "AGE UNIT [really]")]
    words: Vec<String>,
    #[command(flatten)]
    store: StoreArgs,
    /// Remove segments whose events are all older than this (30m, 12h, 7d, 2w)
    #[arg(long, value_name = "DURATION")]
    older_than: Option<String>,
    /// Remove the oldest segments until the store fits in this size (500M, 20G, 2T)
    #[arg(long, value_name = "SIZE")]
    max_size: Option<String>,
    /// Take retention and max-size from dstore.conf
    #[arg(long, conflicts_with_all = ["older_than", "max_size", "words"])]
    configured: bool,
    /// A `dstore ship` position file kept outside the store (those named ship-*.position in the
    /// store are found by themselves): what it has not shipped is not removed by age
    #[arg(long, value_name = "FILE")]
    ship_position: Vec<PathBuf>,
    /// Only say what would be removed
    #[arg(long)]
    dry_run: bool,
    /// No progress bar
    #[arg(long, short)]
    quiet: bool,
}

pub fn rotate_command() -> Command {
    RotateArgs::command()
}

/// Parses `500G`, `20 GB`, `1.5T`, `1048576` as bytes (powers of 1024).
fn parse_size(text: &str) -> Result<u64> {
    let t = text.trim().to_ascii_uppercase();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: f64 = num
        .parse()
        .with_context(|| format!("`{text}` is not a size such as 500G"))?;
    let shift = match unit.trim().trim_end_matches("IB").trim_end_matches('B') {
        "" => 0,
        "K" => 10,
        "M" => 20,
        "G" => 30,
        "T" => 40,
        "P" => 50,
        _ => bail!("`{text}` has an unknown unit: use K, M, G, T or P"),
    };
    Ok((n * (1u64 << shift) as f64) as u64)
}

/// The 1.x words: NUMBER UNIT [really].
fn parse_words(words: &[String]) -> Result<Option<(u64, bool)>> {
    match words {
        [] => Ok(None),
        [n, unit, rest @ ..] => {
            let really = match rest {
                [] => false,
                [w] if w == "really" => true,
                _ => bail!("expected `AGE UNIT [really]`, such as `dstore rotate 1 hour really`"),
            };
            let n: u64 = n
                .parse()
                .with_context(|| format!("`{n}` is not a number: use `dstore rotate 1 hour`"))?;
            let unit = unit.trim_end_matches('s');
            let secs = match unit {
                "second" | "sec" => 1,
                "minute" | "min" => 60,
                "hour" => 3600,
                "day" => 86_400,
                "week" => 7 * 86_400,
                "month" => 30 * 86_400,
                _ => bail!(
                    "`{unit}` is not a unit: use seconds, minutes, hours, days, weeks or months"
                ),
            };
            let age = n
                .checked_mul(secs * 1_000_000)
                .context("that age is too long")?;
            Ok(Some((age, really)))
        }
        [w] => bail!("`{w}`: expected `AGE UNIT [really]`, such as `dstore rotate 1 hour`"),
    }
}

/// A segment as rotate and stats see it.
struct Info {
    path: PathBuf,
    sequence: u64,
    bytes: u64,
    events: u64,
    frame_bytes: u64,
    blocks: usize,
    range: Option<(u64, u64)>,
    sealed: bool,
    damage: usize,
}

fn inventory(dir: &Path) -> Result<Vec<Info>> {
    let mut out = Vec::new();
    for (sequence, path) in numbered_segments(dir).context("cannot list the store")? {
        match Segment::open(&path) {
            Ok(s) => out.push(Info {
                sequence,
                bytes: s.len,
                events: s.events(),
                frame_bytes: s.blocks.iter().map(|b| b.header.frame_bytes).sum(),
                blocks: s.blocks.len(),
                range: s.time_range(),
                sealed: s.sealed,
                damage: s.damage.len(),
                path,
            }),
            Err(e) if e.is_not_found() => {}
            Err(e) => eprintln!("dstore: {e}"),
        }
    }
    Ok(out)
}

pub fn rotate(m: &ArgMatches) -> Result<ExitCode> {
    let mut out = std::io::stdout().lock();
    // What this prints is a report: a reader that went away stops none of the work.
    let args = RotateArgs::from_arg_matches(m)?;
    let (mut age, mut really) = match parse_words(&args.words)? {
        Some((age, really)) => (Some(age), really && !args.dry_run),
        None => (None, !args.dry_run),
    };
    let mut max_size = args
        .max_size
        .as_deref()
        .map(parse_size)
        .transpose()
        .context("--max-size")?;
    if let Some(d) = &args.older_than {
        age = Some(
            parse_duration(d)
                .map_err(anyhow::Error::msg)
                .context("--older-than")?,
        );
    }
    if args.configured {
        let path = std::env::var_os("DSTORE_CONFIG")
            .map_or_else(|| PathBuf::from(DEFAULT_CONFIG_FILE), PathBuf::from);
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        let conf = parse_conf(&text, &path);
        age = conf
            .get("retention")
            .map(|r| parse_duration(r).map_err(anyhow::Error::msg))
            .transpose()
            .context("retention")?;
        max_size = conf
            .get("max-size")
            .map(|s| parse_size(s))
            .transpose()
            .context("max-size")?;
        really = !args.dry_run;
    }
    if age.is_none() && max_size.is_none() {
        bail!("say what to remove: `dstore rotate 1 hour [really]`, --older-than, --max-size or --configured");
    }
    let dir = args.store.resolve()?;
    let _ = writeln!(out, "dstore: storage in '{}'", dir.display());
    // Not beside a compaction rewriting a segment this would remove.
    let _lock = really.then(|| lock_maintenance(&dir)).transpose()?;
    let segments = inventory(&dir)?;
    // Segments from the position of the shipper furthest behind on are not yet shipped.
    let behind = furthest_behind_shipper(&dir, &args.ship_position)?;
    let unshipped = |s: &Info| {
        behind
            .as_ref()
            .is_some_and(|(_, first)| s.sequence >= *first)
    };
    // Oldest first; a segment still being written (unsealed) is never removed. Age alone never
    // removes what a shipper has not sent yet; a size limit does (the disk comes first), loudly.
    let cutoff = age.map(|a| now_us().saturating_sub(a));
    let mut total: u64 = segments.iter().map(|s| s.bytes).sum();
    let (mut chosen, mut held) = (Vec::new(), Vec::new());
    for s in segments.iter().filter(|s| s.sealed) {
        let old = cutoff.is_some_and(|c| s.range.is_none_or(|(_, max)| max < c));
        let too_big = max_size.is_some_and(|m| total > m);
        if too_big || (old && !unshipped(s)) {
            total -= s.bytes;
            chosen.push(s);
        } else if old {
            held.push(s);
        }
    }
    let would = if really { "" } else { "would be " };
    if let Some((file, first)) = &behind {
        if !held.is_empty() {
            eprintln!(
                "dstore: kept {} old files not yet shipped ({}): {} is at segment {first}; remove that file if its shipper is gone for good",
                held.len(),
                describe(&held),
                file.display()
            );
        }
        let lost: Vec<&Info> = chosen.iter().copied().filter(|s| unshipped(s)).collect();
        if !lost.is_empty() {
            eprintln!(
                "dstore: WARNING: {} files not yet shipped {would}removed to fit --max-size ({}): {} is at segment {first}; their events will never reach ClickHouse",
                lost.len(),
                describe(&lost),
                file.display()
            );
        }
    }
    if !really {
        let _ = writeln!(
            out,
            "Would remove {} files for actual rotate ({})",
            chosen.len(),
            describe(&chosen)
        );
        return Ok(ExitCode::SUCCESS);
    }
    let progress = !args.quiet && std::io::stderr().is_terminal() && chosen.len() > 1;
    // Only what this run removed is reported: another rotate may have removed some meanwhile.
    let mut removed = Vec::new();
    for (i, s) in chosen.iter().enumerate() {
        match std::fs::remove_file(&s.path) {
            Ok(()) => removed.push(*s),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e).with_context(|| format!("cannot remove {}", s.path.display())),
        }
        if progress {
            eprint!(
                "\r[{:<40}] {}/{}",
                "#".repeat(40 * (i + 1) / chosen.len()),
                i + 1,
                chosen.len()
            );
        }
    }
    if progress {
        eprintln!();
    }
    sync_dir(&dir).context("cannot make the removals durable")?;
    let _ = writeln!(
        out,
        "Removed {} files for rotate ({})",
        removed.len(),
        describe(&removed)
    );
    Ok(ExitCode::SUCCESS)
}

/// The `dstore ship` position files of this store: those named ship-*.position in it, and `extra`.
fn position_files(dir: &Path, extra: &[PathBuf]) -> Result<Vec<PositionFile>> {
    let mut files = extra.to_vec();
    for entry in std::fs::read_dir(dir).with_context(|| format!("cannot list {}", dir.display()))? {
        let name = entry?.file_name();
        let name = name.to_string_lossy();
        if name.starts_with("ship-") && name.ends_with(".position") {
            files.push(dir.join(&*name));
        }
    }
    Ok(files
        .into_iter()
        .map(|path| PositionFile { path })
        .collect())
}

/// The `dstore ship` position (`position_files`) furthest behind, if any: the file and the first
/// segment its shipper has not read to the end. A file that is not there yet holds back nothing;
/// one that cannot be read (which its shipper refuses too) holds back everything, with a warning:
/// what it held back is unknown.
pub(super) fn furthest_behind_shipper(
    dir: &Path,
    extra: &[PathBuf],
) -> Result<Option<(PathBuf, u64)>> {
    let mut furthest: Option<(PathBuf, u64)> = None;
    for file in position_files(dir, extra)? {
        let segment = match file.load() {
            Ok(Some(pos)) => pos.segment,
            Ok(None) => continue,
            Err(e) => {
                eprintln!("dstore: WARNING: {e}; until it is mended or removed, it holds back the whole store");
                0
            }
        };
        if furthest.as_ref().is_none_or(|(_, f)| segment < *f) {
            furthest = Some((file.path, segment));
        }
    }
    Ok(furthest)
}

/// A shipper of the store as stats shows it.
struct Shipper {
    /// Its position file's name.
    file: String,
    /// Its position, or why it cannot be read.
    position: Result<Position, String>,
    /// Bytes of the store at and after its position.
    behind: u64,
}

/// The shippers whose position files are in the store.
fn shippers(dir: &Path) -> Result<Vec<Shipper>> {
    Ok(position_files(dir, &[])?
        .into_iter()
        .filter_map(|file| {
            let position = file.load().transpose()?;
            let behind = position.as_ref().map_or(0, |&p| lag_bytes(dir, p));
            Some(Shipper {
                file: file.path.file_name()?.to_string_lossy().into_owned(),
                position,
                behind,
            })
        })
        .collect())
}

/// `E events, B bytes, from T1 to T2` of some segments.
fn describe(segments: &[&Info]) -> String {
    let (events, bytes) = segments
        .iter()
        .fold((0, 0), |(e, b), s| (e + s.events, b + s.bytes));
    let first = segments.iter().filter_map(|s| s.range).map(|r| r.0).min();
    let last = segments.iter().filter_map(|s| s.range).map(|r| r.1).max();
    match (first, last) {
        (Some(a), Some(b)) => format!(
            "{events} events, {bytes} bytes, from {} to {}",
            utc_text(a, false),
            utc_text(b, false)
        ),
        _ => format!("{events} events, {bytes} bytes"),
    }
}

/// Show what the store holds: time span, segments, events, bytes, compression, events per day
#[derive(Parser, Debug)]
struct StatsArgs {
    #[command(flatten)]
    store: StoreArgs,
    /// One JSON document instead of a table
    #[arg(long)]
    json: bool,
}

pub fn stats_command() -> Command {
    StatsArgs::command()
}

/// Events per UTC day: a block within one day counts whole from its header; a block that spans
/// midnight has its event times read (its times section only).
fn events_per_day(segments: &[Info]) -> BTreeMap<String, u64> {
    let day = |t: u64| utc_text(t, false)[..10].to_string();
    let mut per_day: BTreeMap<String, u64> = BTreeMap::new();
    let (mut buf, mut columns) = (Vec::new(), Columns::default());
    for info in segments {
        let Ok(segment) = Segment::open(&info.path) else {
            continue;
        };
        for block in &segment.blocks {
            let h = &block.header;
            if day(h.min_time_us) == day(h.max_time_us) {
                *per_day.entry(day(h.min_time_us)).or_insert(0) += u64::from(h.event_count);
                continue;
            }
            let read = segment
                .read_payload(block, &mut buf)
                .ok()
                .and_then(|payload| decode_payload_columns(h, payload, &[], &mut columns).ok());
            if read.is_some() {
                for &t in &columns.times {
                    *per_day.entry(day(t)).or_insert(0) += 1;
                }
            }
        }
    }
    per_day
}

pub fn stats(m: &ArgMatches) -> Result<ExitCode> {
    use std::fmt::Write as _;
    // Written whole at the end, so that a failure to print is said once.
    let mut out = String::new();
    let args = StatsArgs::from_arg_matches(m)?;
    let dir = args.store.resolve()?;
    let segments = inventory(&dir)?;
    let events: u64 = segments.iter().map(|s| s.events).sum();
    let bytes: u64 = segments.iter().map(|s| s.bytes).sum();
    let frame_bytes: u64 = segments.iter().map(|s| s.frame_bytes).sum();
    let blocks: usize = segments.iter().map(|s| s.blocks).sum();
    let damaged: usize = segments.iter().map(|s| s.damage).sum();
    let unsealed = segments.iter().filter(|s| !s.sealed).count();
    let first = segments.iter().filter_map(|s| s.range).map(|r| r.0).min();
    let last = segments.iter().filter_map(|s| s.range).map(|r| r.1).max();
    let per_day = events_per_day(&segments);
    let compacted =
        (dir.join(COMPACTED_FILE).exists()).then(|| read_number_file(&dir, COMPACTED_FILE));
    let ships = shippers(&dir)?;
    let per_event = if events > 0 {
        bytes as f64 / events as f64
    } else {
        0.0
    };
    let ratio = if bytes > 0 {
        (frame_bytes + 2 * events) as f64 / bytes as f64
    } else {
        0.0
    };
    if args.json {
        let doc = json!({
            "storageDir": dir.display().to_string(),
            "segments": segments.len(),
            "unsealedSegments": unsealed,
            "blocks": blocks,
            "events": events,
            "bytesOnDisk": bytes,
            "bytesPerEvent": (per_event * 10.0).round() / 10.0,
            "compressionRatio": (ratio * 100.0).round() / 100.0,
            "firstEvent": first.map(|t| utc_text(t, false)),
            "lastEvent": last.map(|t| utc_text(t, false)),
            "damagedBlocks": damaged,
            "eventsPerDay": per_day,
            "compactedThrough": compacted,
            "shippers": ships.iter().map(|s| match &s.position {
                Ok(p) => json!({"file": s.file, "segment": p.segment, "offset": p.offset, "bytesBehind": s.behind}),
                Err(e) => json!({"file": s.file, "error": e}),
            }).collect::<Vec<_>>(),
        });
        writeln!(out, "{doc}")?;
    } else {
        let show = |t: Option<u64>| t.map_or_else(|| "-".to_string(), |t| utc_text(t, false));
        writeln!(out, "storage dir      {}", dir.display())?;
        writeln!(out, "time span        {} to {}", show(first), show(last))?;
        writeln!(
            out,
            "segments         {} ({unsealed} being written or not yet recovered)",
            segments.len()
        )?;
        writeln!(out, "blocks           {blocks}")?;
        writeln!(out, "events           {events}")?;
        writeln!(
            out,
            "bytes on disk    {bytes} ({:.1} MB)",
            bytes as f64 / 1e6
        )?;
        writeln!(out, "bytes per event  {per_event:.1}")?;
        writeln!(
            out,
            "compression      {ratio:.2}x (of the frames as received, length prefixes included)"
        )?;
        writeln!(out, "damaged blocks   {damaged}")?;
        match compacted {
            Some(n) => writeln!(out, "compacted        through segment {n}")?,
            None => writeln!(out, "compacted        never")?,
        }
        for ship in &ships {
            match &ship.position {
                Ok(p) => writeln!(
                    out,
                    "shipper          {}: segment {} offset {}, {} bytes behind",
                    ship.file, p.segment, p.offset, ship.behind
                )?,
                Err(e) => writeln!(out, "shipper          {e}")?,
            }
        }
        if !per_day.is_empty() {
            writeln!(out, "events per day")?;
            for (day, n) in &per_day {
                writeln!(out, "  {day}  {n}")?;
            }
        }
    }
    super::print(&out)?;
    Ok(if damaged > 0 {
        ExitCode::from(super::EXIT_ERROR)
    } else {
        ExitCode::SUCCESS
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_words() {
        assert_eq!(parse_size("500G").unwrap(), 500 << 30);
        assert_eq!(parse_size("1.5 TiB").unwrap(), 3 << 39);
        assert_eq!(parse_size("4096").unwrap(), 4096);
        assert!(parse_size("lots").is_err());
        let w = |s: &str| s.split(' ').map(String::from).collect::<Vec<_>>();
        assert_eq!(
            parse_words(&w("1 hour")).unwrap(),
            Some((3_600_000_000, false))
        );
        assert_eq!(
            parse_words(&w("2 weeks really")).unwrap(),
            Some((14 * 86_400_000_000, true))
        );
        assert!(parse_words(&w("banana")).is_err());
        assert!(parse_words(&w("1 fortnight")).is_err());
        assert!(parse_words(&w("1 hour please")).is_err());
    }
}
