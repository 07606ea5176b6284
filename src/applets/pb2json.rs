//! `dstore pb2json [FILE...]`, also run as `dnspb2json` (its dstore 1.x name): turns a raw
//! length-prefixed PowerDNS protobuf stream, as a sender writes it or `dnspcap2protobuf` saves it,
//! into JSON, one object a line, with the keys `event_json` defines.

use crate::event_json::{frame_to_json, EventMeta};
use crate::frame::{FrameReader, FrameWidth};
use anyhow::{Context, Result};
use clap::{ArgMatches, Command, CommandFactory, FromArgMatches, Parser};
use std::fs::File;
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Print a length-prefixed PowerDNS protobuf stream as JSON, one object a line
#[derive(Parser, Debug)]
#[command(
    after_help = "A frame that does not decode is still printed, with \"undecodable\": true, \
an \"error\" and the fields before the damage. A stream that ends inside a frame is reported on \
standard error and is not an error."
)]
struct Args {
    /// Files to read; standard input when none is given or for `-`
    files: Vec<PathBuf>,
    /// One JSON object a line (the default; accepted for dnspb2json compatibility)
    #[arg(short = 'L', long)]
    lines: bool,
    /// Indented JSON, one object after another
    #[arg(long, conflicts_with = "lines")]
    pretty: bool,
    /// Frames have a 4-byte length prefix (Recursor's frame4 mode) instead of a 2-byte one
    #[arg(long)]
    frame4: bool,
}

/// What to do, decided from the arguments before any input is read.
struct Config {
    inputs: Vec<Input>,
    width: FrameWidth,
    pretty: bool,
}

enum Input {
    Stdin,
    File(PathBuf),
}

impl Input {
    fn name(&self) -> String {
        match self {
            Input::Stdin => "standard input".to_string(),
            Input::File(p) => p.display().to_string(),
        }
    }
}

impl Config {
    fn from_args(args: Args) -> Config {
        let mut inputs: Vec<Input> = args
            .files
            .into_iter()
            .map(|p| {
                if p == Path::new("-") {
                    Input::Stdin
                } else {
                    Input::File(p)
                }
            })
            .collect();
        if inputs.is_empty() {
            inputs.push(Input::Stdin);
        }
        Config {
            inputs,
            width: if args.frame4 {
                FrameWidth::Four
            } else {
                FrameWidth::Two
            },
            pretty: args.pretty,
        }
    }
}

pub fn command() -> Command {
    Args::command()
}

pub fn run(m: &ArgMatches) -> Result<ExitCode> {
    let config = Config::from_args(Args::from_arg_matches(m)?);
    let stdout = io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    for input in &config.inputs {
        match input {
            Input::Stdin => convert(io::stdin().lock(), input, &config, &mut out)?,
            Input::File(path) => {
                let file =
                    File::open(path).with_context(|| format!("cannot read {}", path.display()))?;
                convert(file, input, &config, &mut out)?;
            }
        }
    }
    out.flush().context(super::CANNOT_WRITE)?;
    Ok(ExitCode::SUCCESS)
}

/// Prints every frame of one input. Write errors (a closed pipe above all) keep the I/O error
/// underneath, so that main can tell a closed pipe from other failures.
fn convert<R: Read, W: Write>(
    source: R,
    input: &Input,
    config: &Config,
    out: &mut W,
) -> Result<()> {
    let mut reader = FrameReader::new(source, config.width);
    let meta = EventMeta::default();
    while let Some(frame) = reader
        .next_frame()
        .with_context(|| format!("cannot read {}", input.name()))?
    {
        let obj = frame_to_json(frame, &meta);
        if config.pretty {
            serde_json::to_writer_pretty(&mut *out, &obj)
                .map_err(io::Error::from)
                .context(super::CANNOT_WRITE)?;
        } else {
            serde_json::to_writer(&mut *out, &obj)
                .map_err(io::Error::from)
                .context(super::CANNOT_WRITE)?;
        }
        out.write_all(b"\n").context(super::CANNOT_WRITE)?;
    }
    if let Some(t) = reader.truncated() {
        // Senders cut streams mid-frame when a connection drops; that is a fact about the input
        // worth a line, not a failure.
        let _ = writeln!(io::stderr(), "dstore pb2json: {}: {t}", input.name());
    }
    Ok(())
}
