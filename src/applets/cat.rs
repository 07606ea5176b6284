//! `dstore cat` (1.x `dcat`): prints stored events as JSON lines, or as the exact original frames.

use crate::config::StoreArgs;
use crate::event_json::{frame_to_json, EventMeta};
use crate::format::store::now_us;
use crate::format::{segment_paths, Framed, Scanner, Segment, TimeRange};
use crate::frame::{write_frame, FrameWidth};
use crate::timespec::parse_time;
use anyhow::{Context, Result};
use clap::{ArgMatches, Command, CommandFactory, FromArgMatches, Parser};
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

/// Print stored events: one JSON object per line, or with --raw the exact frames as received
#[derive(Parser, Debug)]
struct Args {
    /// Segment files to print [default: the whole store, oldest first]
    #[arg(value_name = "SEGMENT")]
    segments: Vec<PathBuf>,
    #[command(flatten)]
    store: StoreArgs,
    /// Only events at or after this time (unix seconds, RFC 3339, now, -15m, -2h, -7d)
    #[arg(long, value_name = "TIME", allow_hyphen_values = true)]
    from: Option<String>,
    /// Only events before this time (exclusive)
    #[arg(long, value_name = "TIME", allow_hyphen_values = true)]
    to: Option<String>,
    /// Print the stored frames byte for byte, each after a 2-byte big-endian length
    #[arg(long)]
    raw: bool,
    /// With --raw, 4-byte lengths (Recursor's frame4)
    #[arg(long, requires = "raw")]
    frame4: bool,
    /// No summary on stderr
    #[arg(long, short)]
    quiet: bool,
    /// Threads decoding blocks [default: the number of cores]
    #[arg(long, value_name = "N")]
    threads: Option<usize>,
}

pub fn command() -> Command {
    Args::command()
}

/// Turns --from/--to into a range; shared with the applets that select by time.
pub fn time_range(from: Option<&str>, to: Option<&str>) -> Result<TimeRange> {
    let now = now_us();
    let parse = |flag: &str, t: Option<&str>, default: u64| -> Result<u64> {
        t.map_or(Ok(default), |t| {
            parse_time(t, now).map_err(|e| anyhow::anyhow!("--{flag}: {e}"))
        })
    };
    let range = TimeRange {
        from_us: parse("from", from, 0)?,
        to_us: parse("to", to, u64::MAX)?,
    };
    anyhow::ensure!(range.from_us <= range.to_us, "--from is later than --to");
    Ok(range)
}

pub fn run(m: &ArgMatches) -> Result<ExitCode> {
    let args = Args::from_arg_matches(m)?;
    let range = time_range(args.from.as_deref(), args.to.as_deref())?;
    let paths = if args.segments.is_empty() {
        let dir = args.store.resolve()?;
        segment_paths(&dir).context("cannot list the store")?
    } else {
        args.segments.clone()
    };
    let width = if args.frame4 {
        FrameWidth::Four
    } else {
        FrameWidth::Two
    };
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::with_capacity(1 << 16, stdout.lock());
    let threads = args
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let mut scanner = Scanner::new(threads);
    let (mut events, mut damaged, mut line) = (0u64, 0u64, Vec::new());
    for path in &paths {
        let segment = match Segment::open(path) {
            Ok(s) => s,
            // Removed by a rotate since the store was listed: not an error.
            Err(e) if e.is_not_found() => continue,
            Err(e) => {
                eprintln!("dstore cat: {e}");
                damaged += 1;
                continue;
            }
        };
        for d in &segment.damage {
            damaged += 1;
            eprintln!(
                "dstore cat: {}: damaged data at offset {}: {}",
                path.display(),
                d.offset,
                d.what
            );
        }
        if segment.tail_bytes > 0 && !args.quiet {
            eprintln!(
                "dstore cat: {}: {} bytes after the last whole block (a block being written, or torn by a crash) not read",
                path.display(),
                segment.tail_bytes
            );
        }
        let mut on_damage = |e| {
            damaged += 1;
            eprintln!("dstore cat: {e}");
        };
        if args.raw {
            // The frames come rebuilt after their length prefixes: a block is one write.
            let mut on_frames = |framed: Framed| -> std::io::Result<bool> {
                match framed {
                    Framed::Run { bytes, events: n } => {
                        events += n as u64;
                        out.write_all(bytes)?;
                    }
                    Framed::Event(ev) => {
                        events += 1;
                        write_frame(&mut out, width, ev.frame)?;
                    }
                }
                Ok(true)
            };
            scanner
                .scan_framed(
                    &segment,
                    range,
                    width.prefix_len(),
                    &mut on_damage,
                    &mut on_frames,
                )
                .map_err(output_error)?;
            continue;
        }
        let mut on_event = |ev: crate::format::StoredEvent| -> std::io::Result<bool> {
            events += 1;
            let meta = EventMeta {
                time_us: Some(ev.time_us),
                time_from_receive: ev.time_from_receive(),
            };
            line.clear();
            serde_json::to_writer(&mut line, &frame_to_json(ev.frame, &meta))?;
            line.push(b'\n');
            out.write_all(&line)?;
            Ok(true)
        };
        scanner
            .scan(&segment, range, &mut on_damage, &mut on_event)
            .map_err(output_error)?;
    }
    out.flush().context(super::CANNOT_WRITE)?;
    if !args.quiet {
        eprintln!("{events} events from {} segment(s)", paths.len());
    }
    if damaged > 0 {
        eprintln!("dstore cat: {damaged} damaged block(s) or segment(s) skipped");
        return Ok(ExitCode::from(super::EXIT_ERROR));
    }
    Ok(ExitCode::SUCCESS)
}

/// What printing an event failed on: the output, or (said as itself) a frame too long for the
/// length prefix asked for.
fn output_error(e: std::io::Error) -> anyhow::Error {
    if e.kind() == std::io::ErrorKind::InvalidInput {
        e.into()
    } else {
        anyhow::Error::new(e).context(super::CANNOT_WRITE)
    }
}
