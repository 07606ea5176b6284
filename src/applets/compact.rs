//! `dstore compact`: rewrites the degraded blocks that ingest wrote while it was behind (every frame
//! opaque, no summary) in the full encoding, segment by segment, once those segments are sealed.
//! Safe beside a running ingest (it never touches the segment being written), searches (a reader
//! keeps the file it opened) and ship (which resumes by an event's place in its segment, which
//! compaction keeps; as a second guard, compaction stops at the first segment a shipper has not
//! read to the end). See `format::compact`.

use super::rotate::ship_positions;
use crate::config::StoreArgs;
use crate::format::codec::Encoder;
use crate::format::compact::{compact_segment, Compacted, TEMP_SUFFIX};
use crate::format::store::{lock_maintenance, read_number_file, sequence_of, write_number_file};
use crate::format::{segment_paths, Segment};
use anyhow::{Context, Result};
use clap::{ArgMatches, Command, CommandFactory, FromArgMatches, Parser};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// The store's file holding the number of the last segment compaction has been through: each run
/// goes on from there, so that it reads only segments sealed since.
pub const COMPACTED_FILE: &str = "compacted-through";

/// Rewrite the blocks ingest wrote in the cheap form while it was behind, in the full encoding
/// (about 40% smaller, and searchable by summary); the same events in the same order
#[derive(Parser, Debug)]
#[command(
    after_help = "Examples:\n  dstore compact                  # segments sealed since the last run\n  dstore compact --all --dry-run  # what every segment would gain"
)]
struct CompactArgs {
    #[command(flatten)]
    store: StoreArgs,
    /// Look at every sealed segment, not only those sealed since the last run
    #[arg(long)]
    all: bool,
    /// A `dstore ship` position file kept outside the store (those named ship-*.position in it are
    /// found by themselves): compaction stops at the first segment it has not shipped
    #[arg(long, value_name = "FILE")]
    ship_position: Vec<PathBuf>,
    /// Only say what would be compacted
    #[arg(long)]
    dry_run: bool,
    /// Only the summary line
    #[arg(long, short)]
    quiet: bool,
}

pub fn command() -> Command {
    CompactArgs::command()
}

pub fn run(m: &ArgMatches) -> Result<ExitCode> {
    let mut out = std::io::stdout().lock();
    let args = CompactArgs::from_arg_matches(m)?;
    let dir = args.store.resolve()?;
    let _lock = if args.dry_run {
        None
    } else {
        Some(lock_maintenance(&dir)?)
    };
    if !args.dry_run {
        remove_leftovers(&dir)?;
    }
    let through = if args.all {
        0
    } else {
        read_number_file(&dir, COMPACTED_FILE)
    };
    let stop = ship_positions(&dir, &args.ship_position)?
        .into_iter()
        .min_by_key(|(_, segment)| *segment);
    let mut encoder = Encoder::new();
    let mut total = Compacted::default();
    let (mut segments, mut last) = (0, through);
    for path in segment_paths(&dir).context("cannot list the store")? {
        let Some(seq) = path
            .file_name()
            .and_then(|n| sequence_of(&n.to_string_lossy()))
            .filter(|&seq| seq > through)
        else {
            continue;
        };
        if let Some((file, first)) = stop.as_ref().filter(|(_, first)| seq >= *first) {
            if !args.quiet {
                writeln!(
                    out,
                    "stopping at segment {seq}: {} has not shipped past segment {first}",
                    file.display()
                )?;
            }
            break;
        }
        let segment = match Segment::open(&path) {
            Ok(s) if !s.sealed => break,
            Ok(s) => s,
            Err(e) if e.is_not_found() => continue,
            Err(e) => return Err(e.into()),
        };
        let done = compact_segment(&segment, &mut encoder, args.dry_run)
            .with_context(|| format!("cannot compact {}", path.display()))?;
        last = seq;
        if let Some(done) = done {
            if !args.quiet {
                writeln!(out, "{}: {}", name(&path), describe(&done, args.dry_run))?;
            }
            segments += 1;
            total.blocks += done.blocks;
            total.events += done.events;
            total.bytes_before += done.bytes_before;
            total.bytes_after += done.bytes_after;
            if !args.dry_run {
                write_number_file(&dir, COMPACTED_FILE, last)?;
            }
        }
    }
    if !args.dry_run && last > read_number_file(&dir, COMPACTED_FILE) {
        write_number_file(&dir, COMPACTED_FILE, last)?;
    }
    let verb = if args.dry_run {
        "Would compact"
    } else {
        "Compacted"
    };
    writeln!(
        out,
        "{verb} {segments} segments: {}",
        describe(&total, args.dry_run)
    )?;
    Ok(ExitCode::SUCCESS)
}

/// Removes what a compaction stopped by a crash left: its temporary files.
fn remove_leftovers(dir: &Path) -> Result<()> {
    for entry in std::fs::read_dir(dir).with_context(|| format!("cannot list {}", dir.display()))? {
        let path = entry?.path();
        let name = name(&path);
        if name.starts_with('.') && name.ends_with(TEMP_SUFFIX) {
            std::fs::remove_file(&path)
                .with_context(|| format!("cannot remove {}", path.display()))?;
        }
    }
    Ok(())
}

fn name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn describe(c: &Compacted, dry_run: bool) -> String {
    if dry_run {
        return format!("{} degraded blocks, {} events", c.blocks, c.events);
    }
    format!(
        "{} blocks, {} events rewritten; {} bytes, was {}",
        c.blocks, c.events, c.bytes_after, c.bytes_before
    )
}
