//! The in-process LZ4 limit for the ingest benchmark: how many events per second one core turns
//! into LZ4 blocks when all it does is compress. Reads a stream of 2-byte length-prefixed frames,
//! cuts it into chunks of whole frames of about 1 MiB (what a store block holds) and compresses
//! each with `lz4_flex::block::compress_into`, looping over the stream until `--seconds` have
//! passed. Prints one line of JSON.
//!
//! ```text
//! lz4_limit traffic.pb --seconds 3
//! ```

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::Parser;
use serde_json::json;

/// Compress a framed stream in ~1 MiB chunks of whole frames with LZ4 on one core.
#[derive(Parser, Debug)]
#[command(name = "lz4_limit")]
struct Args {
    /// Stream of 2-byte length-prefixed frames (gen_traffic's output)
    #[arg(value_name = "FILE")]
    file: PathBuf,
    /// Keep compressing, looping over the stream, for at least this long
    #[arg(long, value_name = "SECS", default_value_t = 2.0)]
    seconds: f64,
}

const CHUNK_BYTES: usize = 1 << 20;

/// Whole-frame chunks of about `CHUNK_BYTES`: (byte range, frames in it).
fn chunks(bytes: &[u8]) -> Result<Vec<(std::ops::Range<usize>, u64)>> {
    let (mut out, mut start, mut pos, mut frames) = (Vec::new(), 0, 0, 0u64);
    while bytes.len() - pos >= 2 {
        let len = usize::from(u16::from_be_bytes([bytes[pos], bytes[pos + 1]]));
        if bytes.len() - pos < 2 + len {
            break;
        }
        if pos + 2 + len - start > CHUNK_BYTES && frames > 0 {
            out.push((start..pos, frames));
            (start, frames) = (pos, 0);
        }
        pos += 2 + len;
        frames += 1;
    }
    if frames > 0 {
        out.push((start..pos, frames));
    }
    if out.is_empty() {
        bail!("no whole frame in the stream");
    }
    Ok(out)
}

fn run(args: Args) -> Result<serde_json::Value> {
    if !(args.seconds.is_finite() && args.seconds > 0.0) {
        bail!("--seconds must be a positive number");
    }
    let bytes = std::fs::read(&args.file)
        .with_context(|| format!("cannot read {}", args.file.display()))?;
    let chunks = chunks(&bytes).with_context(|| args.file.display().to_string())?;
    let mut out = vec![0u8; lz4_flex::block::get_maximum_output_size(CHUNK_BYTES + (1 << 16))];
    let (mut events, mut input, mut compressed, mut passes) = (0u64, 0u64, 0u64, 0u32);
    let started = Instant::now();
    while started.elapsed().as_secs_f64() < args.seconds {
        for (range, frames) in &chunks {
            let n = lz4_flex::block::compress_into(&bytes[range.clone()], &mut out)
                .map_err(|e| anyhow::anyhow!("lz4 compression failed: {e}"))?;
            events += frames;
            input += range.len() as u64;
            compressed += n as u64;
        }
        passes += 1;
    }
    let secs = started.elapsed().as_secs_f64();
    Ok(json!({
        "mode": "lz4",
        "chunks": chunks.len(),
        "passes": passes,
        "events": events,
        "bytes": input,
        "compressed_bytes": compressed,
        "ratio": (input as f64 / compressed.max(1) as f64 * 1000.0).round() / 1000.0,
        "seconds": (secs * 1e4).round() / 1e4,
        "events_per_sec": (events as f64 / secs).round(),
        "mb_per_sec": (input as f64 / 1e6 / secs * 100.0).round() / 100.0,
    }))
}

fn main() -> ExitCode {
    match run(Args::parse()) {
        Ok(figures) => {
            println!("{figures}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("lz4_limit: {e:#}");
            ExitCode::from(2)
        }
    }
}
