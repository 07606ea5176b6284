//! `dstore ingest` (1.x `tcpdistro`): arguments and `/etc/dstore/tcpdistro.conf` turned into an
//! `IngestConfig`, then the daemon.

use crate::config::{parse_conf_with, StoreArgs};
use crate::format::block::MAX_FRAME_BYTES;
use crate::format::WriterOptions;
use crate::frame::FrameWidth;
use crate::ingest::{self, IngestConfig};
use crate::net::{parse_cidr_list, Cidr, DEFAULT_ALLOW_FROM};
use crate::timespec::parse_duration;
use anyhow::{bail, Context, Result};
use clap::{ArgMatches, Command, CommandFactory, FromArgMatches, Parser};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

pub const DEFAULT_CONFIG: &str = "/etc/dstore/tcpdistro.conf";
const CONF_KEYS: &[&str] = &[
    "listen-address",
    "listen-address-frame4",
    "answer-limit",
    "allow-from",
    "max-connections",
    "flush-interval",
    "metrics-listen",
    "storage-dir",
    "enable-alerts",
    "alert-address",
    "alert-tags",
];

/// Receive PowerDNS protobuf streams over TCP (dnsdist RemoteLogger, Recursor protobufServer,
/// Authoritative protobuf-servers) and store every event
#[derive(Parser, Debug)]
struct Args {
    #[command(flatten)]
    store: StoreArgs,
    /// Address to listen on, 2-byte frames (repeatable) [default: [::]:2000, IPv4 and IPv6]
    #[arg(long, value_name = "ADDR:PORT")]
    listen: Vec<SocketAddr>,
    /// Address to listen on for 4-byte frames (Recursor's frame4) (repeatable)
    #[arg(long, value_name = "ADDR:PORT")]
    listen_frame4: Vec<SocketAddr>,
    /// Ranges allowed to connect, comma-separated [default: loopback and private ranges]
    #[arg(long, value_name = "CIDR,...")]
    allow_from: Option<String>,
    /// Most connections at once; accepting resumes below it
    #[arg(long, value_name = "N")]
    max_connections: Option<usize>,
    /// Longest frame accepted on 4-byte listeners, in bytes (at most 134217728, 128 MiB)
    #[arg(long, value_name = "BYTES", default_value_t = 16 << 20)]
    max_frame: usize,
    /// Keep at most N answer records per response (1.x answer-limit)
    #[arg(long, value_name = "N")]
    answer_limit: Option<usize>,
    /// Every accepted event is on disk and fsynced within this time (e.g. 1s, 200ms)
    #[arg(long, value_name = "DURATION")]
    flush_interval: Option<String>,
    /// A status line on stderr this often; 0 turns it off
    #[arg(long, value_name = "DURATION", default_value = "10s")]
    status_interval: String,
    /// Serve Prometheus metrics on this address (GET /metrics)
    #[arg(long, value_name = "ADDR:PORT")]
    metrics_listen: Option<SocketAddr>,
    /// Most bytes received and waiting for the disk; beyond it events are dropped and counted
    #[arg(long, value_name = "MB", default_value_t = 32)]
    queue_mb: usize,
    /// Threads that encode and compress blocks [default: the cores, up to 4]
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=64))]
    encoders: Option<u16>,
    /// Log to this file instead of stderr (SIGHUP reopens it)
    #[arg(long, value_name = "FILE")]
    log_file: Option<PathBuf>,
    /// Configuration file [default: /etc/dstore/tcpdistro.conf, if it exists]
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
}

pub fn command() -> Command {
    Args::command()
}

/// Reads the tcpdistro.conf in force: the one named, or the default one if it exists.
fn read_conf(path: &Option<PathBuf>) -> Result<BTreeMap<String, String>> {
    let (path, explicit) = match path {
        Some(p) => (p.clone(), true),
        None => (PathBuf::from(DEFAULT_CONFIG), false),
    };
    match std::fs::read_to_string(&path) {
        Ok(text) => Ok(parse_conf_with(&text, &path, CONF_KEYS)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !explicit => Ok(BTreeMap::new()),
        Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
}

/// Parses a duration given as `1s`, `200ms`, `0.5` (seconds).
fn parse_interval(text: &str) -> Result<Duration> {
    let t = text.trim();
    if let Some(ms) = t.strip_suffix("ms") {
        return Ok(Duration::from_millis(
            ms.trim()
                .parse()
                .with_context(|| format!("`{text}` is not a duration"))?,
        ));
    }
    if let Ok(secs) = t.parse::<f64>() {
        if secs.is_finite() && secs >= 0.0 {
            return Ok(Duration::from_secs_f64(secs));
        }
    }
    parse_duration(t)
        .map(Duration::from_micros)
        .map_err(anyhow::Error::msg)
}

fn allow_from(flag: &Option<String>, conf: &BTreeMap<String, String>) -> Result<Vec<Cidr>> {
    let text = flag
        .as_deref()
        .or(conf.get("allow-from").map(String::as_str))
        .unwrap_or(DEFAULT_ALLOW_FROM);
    parse_cidr_list(text).map_err(|e| anyhow::anyhow!("allow-from: {e}"))
}

fn addresses(text: &str, key: &str) -> Result<Vec<SocketAddr>> {
    text.split([',', ' '])
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse()
                .map_err(|_| anyhow::anyhow!("{key}: `{s}` is not ADDR:PORT"))
        })
        .collect()
}

fn config(args: &Args, conf: &BTreeMap<String, String>) -> Result<IngestConfig> {
    let storage_dir = match (&args.store.storage_dir, conf.get("storage-dir")) {
        (None, Some(dir)) if std::env::var_os("DSTORE_STORAGE_DIR").is_none() => PathBuf::from(dir),
        _ => args.store.resolve()?,
    };
    let mut listen: Vec<(SocketAddr, FrameWidth)> = Vec::new();
    let (two, four) = if args.listen.is_empty() && args.listen_frame4.is_empty() {
        (
            conf.get("listen-address")
                .map(|a| addresses(a, "listen-address"))
                .transpose()?
                .unwrap_or_default(),
            conf.get("listen-address-frame4")
                .map(|a| addresses(a, "listen-address-frame4"))
                .transpose()?
                .unwrap_or_default(),
        )
    } else {
        (args.listen.clone(), args.listen_frame4.clone())
    };
    listen.extend(two.into_iter().map(|a| (a, FrameWidth::Two)));
    listen.extend(four.into_iter().map(|a| (a, FrameWidth::Four)));
    if listen.is_empty() {
        listen.push((SocketAddr::from(([0u16; 8], 2000)), FrameWidth::Two));
    }
    let number = |flag: Option<usize>, key: &str, default: usize| -> Result<usize> {
        match (flag, conf.get(key)) {
            (Some(n), _) => Ok(n),
            (None, Some(v)) => v
                .parse()
                .map_err(|_| anyhow::anyhow!("{key}: `{v}` is not a number")),
            (None, None) => Ok(default),
        }
    };
    let answer_limit = match (args.answer_limit, conf.get("answer-limit")) {
        (Some(n), _) => Some(n),
        (None, Some(v)) => Some(
            v.parse()
                .map_err(|_| anyhow::anyhow!("answer-limit: `{v}` is not a number"))?,
        ),
        (None, None) => None,
    };
    let flush = args
        .flush_interval
        .as_deref()
        .or(conf.get("flush-interval").map(String::as_str))
        .unwrap_or("1s");
    let flush_interval = parse_interval(flush).context("--flush-interval")?;
    if flush_interval.is_zero() {
        bail!("--flush-interval must be more than 0");
    }
    let status = parse_interval(&args.status_interval).context("--status-interval")?;
    let metrics_listen = match (args.metrics_listen, conf.get("metrics-listen")) {
        (Some(a), _) => Some(a),
        (None, Some(v)) => Some(
            v.parse()
                .map_err(|_| anyhow::anyhow!("metrics-listen: `{v}` is not ADDR:PORT"))?,
        ),
        (None, None) => None,
    };
    for key in ["enable-alerts", "alert-address", "alert-tags"] {
        if conf.contains_key(key) {
            eprintln!(
                "dstore ingest: warning: `{key}` (1.x alerting) is not supported and is ignored"
            );
        }
    }
    let max_connections = number(args.max_connections, "max-connections", 1024)?;
    if max_connections == 0 {
        bail!("--max-connections must be at least 1");
    }
    if args.max_frame as u64 > MAX_FRAME_BYTES {
        bail!("--max-frame must be at most {MAX_FRAME_BYTES}, the longest frame a store holds");
    }
    Ok(IngestConfig {
        storage_dir,
        listen,
        allow_from: allow_from(&args.allow_from, conf)?,
        max_connections,
        max_frame: args.max_frame.max(1),
        answer_limit,
        flush_interval,
        status_interval: (!status.is_zero()).then_some(status),
        metrics_listen,
        queue_bytes: args.queue_mb.max(1) << 20,
        log_file: args.log_file.clone(),
        writer: WriterOptions {
            encoders: args
                .encoders
                .map_or(WriterOptions::default().encoders, usize::from),
            ..WriterOptions::default()
        },
    })
}

pub fn run(m: &ArgMatches) -> Result<ExitCode> {
    let args = Args::from_arg_matches(m)?;
    let conf = read_conf(&args.config)?;
    let mut config = config(&args, &conf)?;
    // Two-byte frames cannot be longer than 65535 bytes whatever --max-frame says.
    if config.listen.iter().all(|(_, w)| *w == FrameWidth::Two) {
        config.max_frame = config.max_frame.min(FrameWidth::Two.max_len());
    }
    let flag = args.allow_from.clone();
    let conf_path = args.config.clone();
    ingest::run(config, move || {
        match read_conf(&conf_path).and_then(|c| allow_from(&flag, &c)) {
            Ok(list) => Some(list),
            Err(e) => {
                eprintln!("dstore ingest: keeping the old allow-from: {e:#}");
                None
            }
        }
    })?;
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn a_max_frame_longer_than_a_block_holds_is_refused() {
        let conf = BTreeMap::new();
        let args = |n: u64| {
            Args::try_parse_from([
                "ingest",
                "--storage-dir",
                "/tmp/x",
                "--max-frame",
                &n.to_string(),
            ])
            .unwrap()
        };
        assert!(config(&args(MAX_FRAME_BYTES), &conf).is_ok());
        let e = config(&args(MAX_FRAME_BYTES + 1), &conf).unwrap_err();
        assert!(e.to_string().contains("--max-frame"), "{e}");
    }

    #[test]
    fn intervals() {
        assert_eq!(parse_interval("1s").unwrap(), Duration::from_secs(1));
        assert_eq!(parse_interval("200ms").unwrap(), Duration::from_millis(200));
        assert_eq!(parse_interval("0.25").unwrap(), Duration::from_millis(250));
        assert!(parse_interval("soon").is_err());
    }

    #[test]
    fn flags_override_the_config_file() {
        let conf = parse_conf_with(
            "listen-address = 127.0.0.1:2001, [::1]:2001\nanswer-limit = 3\nallow-from = 10.0.0.0/8\nenable-alerts = yes\n",
            Path::new("tcpdistro.conf"),
            CONF_KEYS,
        );
        let args =
            Args::try_parse_from(["ingest", "--storage-dir", "/tmp/x", "--answer-limit", "5"])
                .unwrap();
        let c = config(&args, &conf).unwrap();
        assert_eq!(c.listen.len(), 2);
        assert_eq!(c.answer_limit, Some(5));
        assert_eq!(c.allow_from, parse_cidr_list("10.0.0.0/8").unwrap());
        let args = Args::try_parse_from([
            "ingest",
            "--storage-dir",
            "/tmp/x",
            "--listen",
            "127.0.0.1:9",
        ])
        .unwrap();
        let c = config(&args, &conf).unwrap();
        assert_eq!(
            c.listen,
            vec![("127.0.0.1:9".parse().unwrap(), FrameWidth::Two)]
        );
        assert_eq!(c.answer_limit, Some(3));
    }
}
