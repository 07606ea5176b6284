//! `dstore compact`: rewrites the degraded blocks that ingest wrote while it was behind (every frame
//! opaque, no summary) in the full encoding, segment by segment, once those segments are sealed.
//! Safe beside a running ingest (it never touches the segment being written), searches (a reader
//! keeps the file it opened) and ship (which resumes by an event's place in its segment, which
//! compaction keeps; as a second guard, compaction stops at the first segment a shipper has not
//! read to the end). See `format::compact`.

use super::rotate::furthest_behind_shipper;
use crate::config::StoreArgs;
use crate::format::codec::Encoder;
use crate::format::compact::{compact_segment, Compacted, TEMP_SUFFIX};
use crate::format::store::{
    lock_maintenance, numbered_segments, read_number_file, write_number_file,
};
use crate::format::Segment;
use anyhow::{Context, Result};
use clap::{ArgMatches, Command, CommandFactory, FromArgMatches, Parser};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

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
    /// Stop starting new segments after this many seconds (0: no limit), so that a run beside
    /// rotate (the timer runs both) leaves time for the next
    #[arg(long, value_name = "SECONDS", default_value_t = 0)]
    max_seconds: u64,
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
    if !args.dry_run {
        let _lock = lock_maintenance(&dir)?;
        remove_leftovers(&dir)?;
    }
    let mut marker = read_number_file(&dir, COMPACTED_FILE);
    let through = if args.all { 0 } else { marker };
    let stop = furthest_behind_shipper(&dir, &args.ship_position)?;
    let deadline =
        (args.max_seconds > 0).then(|| Instant::now() + Duration::from_secs(args.max_seconds));
    let mut encoder = Encoder::new();
    let mut total = Compacted::default();
    let (mut segments, mut failed, mut last) = (0, 0, through);
    // What this prints is a report: a reader that went away stops none of the work.
    for (seq, path) in numbered_segments(&dir).context("cannot list the store")? {
        if seq <= through {
            continue;
        }
        if let Some((file, first)) = stop.as_ref().filter(|(_, first)| seq >= *first) {
            if !args.quiet {
                let _ = writeln!(
                    out,
                    "stopping at segment {seq}: {} has not shipped past segment {first}",
                    file.display()
                );
            }
            break;
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            if !args.quiet {
                let _ = writeln!(out, "stopping at segment {seq}: --max-seconds reached");
            }
            break;
        }
        // The lock is taken for one segment at a time, so that a rotate waits for one at most.
        let lock = (!args.dry_run)
            .then(|| lock_maintenance(&dir))
            .transpose()?;
        let done = match Segment::open(&path) {
            Ok(s) if !s.sealed => break,
            Ok(s) => compact_segment(&s, &mut encoder, args.dry_run),
            Err(e) if e.is_not_found() => continue,
            Err(e) => Err(e),
        };
        drop(lock);
        last = seq;
        match done {
            Ok(Some(done)) => {
                if !args.quiet {
                    let _ = writeln!(out, "{}: {}", name(&path), describe(&done, args.dry_run));
                }
                segments += 1;
                total.blocks += done.blocks;
                total.events += done.events;
                total.bytes_before += done.bytes_before;
                total.bytes_after += done.bytes_after;
            }
            Ok(None) => continue,
            // A segment that cannot be compacted (a damaged block, say) is left as it is; the
            // rest goes on.
            Err(e) => {
                eprintln!("dstore compact: {} left as it is: {e}", path.display());
                failed += 1;
            }
        }
        if !args.dry_run && last > marker {
            write_number_file(&dir, COMPACTED_FILE, last)?;
            marker = last;
        }
    }
    if !args.dry_run && last > marker {
        write_number_file(&dir, COMPACTED_FILE, last)?;
    }
    let verb = if args.dry_run {
        "Would compact"
    } else {
        "Compacted"
    };
    let _ = writeln!(
        out,
        "{verb} {segments} segments: {}",
        describe(&total, args.dry_run)
    );
    Ok(if failed > 0 {
        ExitCode::from(super::EXIT_ERROR)
    } else {
        ExitCode::SUCCESS
    })
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
