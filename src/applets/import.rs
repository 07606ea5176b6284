//! `dstore import`: reads files of length-prefixed PowerDNS protobuf frames into the store.

use crate::config::StoreArgs;
use crate::format::block::MAX_FRAME_BYTES;
use crate::format::store::now_us;
use crate::format::{Error, Recovery, StoreWriter, WriterOptions};
use crate::frame::{FrameReader, FrameWidth};
use anyhow::{Context, Result};
use clap::{ArgMatches, Command, CommandFactory, FromArgMatches, Parser};
use std::io::{IsTerminal, Read};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

/// Import files of length-prefixed PowerDNS protobuf frames (as dnspcap2protobuf writes them, or
/// as `dstore cat --raw` prints them) into the store
#[derive(Parser, Debug)]
struct Args {
    /// Files to import; `-` (the default) is standard input
    #[arg(value_name = "FILE")]
    files: Vec<PathBuf>,
    #[command(flatten)]
    store: StoreArgs,
    /// Frames have a 4-byte length prefix (Recursor's frame4) instead of 2 bytes
    #[arg(long)]
    frame4: bool,
    /// No progress and no summary on stderr
    #[arg(long, short)]
    quiet: bool,
}

pub fn command() -> Command {
    Args::command()
}

pub fn run(m: &ArgMatches) -> Result<ExitCode> {
    let args = Args::from_arg_matches(m)?;
    let dir = args.store.resolve()?;
    let width = if args.frame4 {
        FrameWidth::Four
    } else {
        FrameWidth::Two
    };
    let files = if args.files.is_empty() {
        vec![PathBuf::from("-")]
    } else {
        args.files.clone()
    };
    // Open every input before touching the store, so a mistyped name changes nothing.
    let mut inputs: Vec<(String, Box<dyn Read>, Option<u64>)> = Vec::new();
    for path in &files {
        if path.as_os_str() == "-" {
            inputs.push((
                "standard input".into(),
                Box::new(std::io::stdin().lock()),
                None,
            ));
        } else {
            let file = std::fs::File::open(path)
                .with_context(|| format!("cannot open {}", path.display()))?;
            let len = file.metadata().ok().map(|m| m.len());
            inputs.push((path.display().to_string(), Box::new(file), len));
        }
    }
    let (mut writer, recoveries) = StoreWriter::open(&dir, WriterOptions::default())
        .with_context(|| format!("cannot open the store in {}", dir.display()))?;
    report_recoveries(&recoveries);
    let progress = !args.quiet && std::io::stderr().is_terminal();
    let started = Instant::now();
    let mut input_bytes = 0u64;
    let mut truncated = 0;
    let mut too_long = 0u64;
    let mut failed = None;
    let (mut frames_read, mut read_at) = (0u64, 0);
    for (name, input, total) in inputs {
        let mut reader = FrameReader::new(input, width);
        let mut last_report = Instant::now();
        loop {
            let frame = match reader.next_frame() {
                Ok(Some(frame)) => frame,
                Ok(None) => break,
                Err(e) => {
                    // Keep what was read: the store is closed cleanly below.
                    failed = Some(anyhow::Error::new(e).context(format!("cannot read {name}")));
                    break;
                }
            };
            // The clock is read every 256 frames, not for each: a frame without a time of its
            // own gets the time it was read to within a fraction of a millisecond.
            if frames_read % 256 == 0 {
                read_at = now_us();
            }
            frames_read += 1;
            match writer.append(frame, read_at) {
                // The writer refuses the frame and carries on: so does the import.
                Err(Error::FrameTooLong { len }) => {
                    eprintln!(
                        "dstore import: {name}: the frame at offset {} is {len} bytes, longer than the {MAX_FRAME_BYTES} bytes a block holds; skipped",
                        reader.offset() - (width.prefix_len() + len) as u64
                    );
                    too_long += 1;
                    continue;
                }
                written => written.context("cannot write to the store")?,
            }
            if progress && last_report.elapsed().as_millis() >= 250 {
                last_report = Instant::now();
                let done = reader.offset();
                let share = total
                    .filter(|&t| t > 0)
                    .map(|t| format!(" {:5.1}%", 100.0 * done as f64 / t as f64))
                    .unwrap_or_default();
                eprint!(
                    "\r{name}:{share} {} MB, {} events",
                    done >> 20,
                    writer.stats().events
                );
            }
        }
        if progress {
            eprint!("\r\x1b[K");
        }
        input_bytes += reader.offset();
        if let Some(t) = reader.truncated() {
            truncated += 1;
            eprintln!("dstore import: {name}: {t}");
        }
        if failed.is_some() {
            break;
        }
    }
    let stats = writer.close().context("cannot finish writing the store")?;
    if !args.quiet {
        let secs = started.elapsed().as_secs_f64();
        let per_event = |bytes: u64| {
            if stats.events == 0 {
                0.0
            } else {
                bytes as f64 / stats.events as f64
            }
        };
        eprintln!(
            "imported {} events ({} undecodable) from {} file(s){} into {}: {} bytes framed ({:.1}/event), {} bytes stored ({:.1}/event), {:.2} s, {:.0} events/s",
            stats.events,
            stats.undecodable,
            files.len(),
            if truncated > 0 { format!(", {truncated} with a partial last frame") } else { String::new() },
            dir.display(),
            input_bytes,
            per_event(input_bytes),
            stats.block_bytes,
            per_event(stats.block_bytes),
            secs,
            stats.events as f64 / secs.max(1e-9),
        );
        if stats.opaque_fallbacks > 0 {
            eprintln!(
                "dstore import: {} block(s) stored as opaque frames after a failed codec check",
                stats.opaque_fallbacks
            );
        }
    }
    match failed {
        Some(e) => Err(e),
        // Every other frame is in; the error says that some were not.
        None if too_long > 0 => Err(anyhow::anyhow!(
            "{too_long} frame(s) longer than {MAX_FRAME_BYTES} bytes were not imported"
        )),
        None => Ok(ExitCode::SUCCESS),
    }
}

/// Says what opening the store had to repair.
pub fn report_recoveries(recoveries: &[Recovery]) {
    for line in recoveries.iter().flat_map(Recovery::messages) {
        eprintln!("dstore: {line}");
    }
}
