//! `dstore export clickhouse`: a one-off copy of (part of) the store into a ClickHouse table.
//! `dstore ship`: the daemon that follows the store as it grows and ships every block to
//! ClickHouse in batches, keeping its position in a file so that restarts, crashes and a ClickHouse
//! that is down lose nothing.

use super::grep::Conditions;
use crate::clickhouse::ship::{lag_bytes, Batch, Position, PositionFile, Reader};
use crate::clickhouse::{Client, Endpoint, Flavor, Table};
use crate::config::StoreArgs;
use crate::format::store::{now_us, utc_text};
use crate::log::Log;
use crate::timespec::parse_duration;
use anyhow::{bail, Context, Result};
use clap::{ArgMatches, Command, CommandFactory, FromArgMatches, Parser, Subcommand};
use std::io::{IsTerminal, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Where and how to reach ClickHouse, and the table: shared by export and ship.
#[derive(clap::Args, Debug)]
struct Target {
    /// ClickHouse's HTTP interface, http://HOST:PORT or https://HOST:PORT
    #[arg(long, value_name = "URL")]
    url: Option<String>,
    /// With https: trust the CAs in this PEM file rather than the usual public ones
    #[arg(long, value_name = "FILE")]
    ca_file: Option<PathBuf>,
    /// The table, TABLE or DATABASE.TABLE
    #[arg(long, value_name = "TABLE", default_value = "dns_events")]
    table: String,
    /// ClickHouse user
    #[arg(long, value_name = "USER")]
    user: Option<String>,
    /// File holding the user's password (or set DSTORE_CLICKHOUSE_PASSWORD)
    #[arg(long, value_name = "FILE")]
    password_file: Option<PathBuf>,
    /// Column types: modern (ClickHouse 20.1 and later), legacy, or auto (ask the server)
    #[arg(long, value_name = "SCHEMA", default_value = "auto")]
    schema: String,
    /// Days rows live in the table (modern schema; 0 keeps them forever)
    #[arg(long, value_name = "DAYS", default_value_t = 90)]
    ttl_days: u32,
    /// Create the table if it does not exist
    #[arg(long)]
    create: bool,
    /// The name rows carry in `node` [default: this host's name]
    #[arg(long, value_name = "NAME")]
    node: Option<String>,
    /// Rows per insert
    #[arg(long, value_name = "N", default_value_t = 100_000)]
    batch_rows: u64,
    /// Send rows uncompressed (default: ClickHouse's LZ4 framing)
    #[arg(long)]
    no_compress: bool,
    /// Seconds to wait for ClickHouse on each request
    #[arg(long, value_name = "SECONDS", default_value_t = 60)]
    timeout: u64,
}

/// Copy events into another system.
#[derive(Parser, Debug)]
struct ExportArgs {
    #[command(subcommand)]
    to: ExportTo,
}

#[derive(Subcommand, Debug)]
enum ExportTo {
    /// Copy (part of) the store into a ClickHouse table, over its HTTP interface.
    #[command(
        after_help = "Examples:\n  dstore export clickhouse --url http://127.0.0.1:8123 --create --last 1d\n  dstore export clickhouse --url http://ch:8123 --print-schema\n  dstore export clickhouse --schema modern --out batches/ --domain example.com"
    )]
    Clickhouse(ClickhouseArgs),
}

#[derive(clap::Args, Debug)]
struct ClickhouseArgs {
    #[command(flatten)]
    store: StoreArgs,
    #[command(flatten)]
    target: Target,
    #[command(flatten)]
    conditions: Conditions,
    /// Print the CREATE TABLE statement and exit
    #[arg(long)]
    print_schema: bool,
    /// Write the batches to DIR (RowBinary files, with the INSERT and CREATE statements) instead of sending them
    #[arg(long, value_name = "DIR", conflicts_with = "url")]
    out: Option<PathBuf>,
    /// No progress on stderr
    #[arg(long, short)]
    quiet: bool,
}

pub fn export_command() -> Command {
    ExportArgs::command()
}

/// Follow the store and ship every event to ClickHouse, losing nothing.
#[derive(Parser, Debug)]
#[command(
    after_help = "The position is saved after each batch ClickHouse accepts; a restart goes on from there.\nRows carry (node, seq); the table is a ReplacingMergeTree on them, so a batch sent twice folds into one.\n\nExample:\n  dstore ship --url http://127.0.0.1:8123 --create --metrics-listen 127.0.0.1:9102"
)]
struct ShipArgs {
    #[command(flatten)]
    store: StoreArgs,
    #[command(flatten)]
    target: Target,
    /// Where the position is kept [default: STORAGE_DIR/ship-TABLE.position]
    #[arg(long, value_name = "FILE")]
    position_file: Option<PathBuf>,
    /// With no position file yet: start at events of this time (unix seconds, RFC 3339, -1h) rather than the start of the store
    #[arg(long, value_name = "TIME", allow_hyphen_values = true)]
    from: Option<String>,
    /// Send a batch that is not full after it has waited this long (1s, 10s, 1m)
    #[arg(long, value_name = "DURATION", default_value = "5s")]
    flush_interval: String,
    /// Stop once the store has been shipped (for scripts and tests)
    #[arg(long)]
    until_caught_up: bool,
    /// Serve Prometheus metrics on ADDR:PORT
    #[arg(long, value_name = "ADDR")]
    metrics_listen: Option<SocketAddr>,
    /// Log to this file (SIGHUP reopens it) rather than stderr
    #[arg(long, value_name = "FILE")]
    log_file: Option<PathBuf>,
}

pub fn ship_command() -> Command {
    ShipArgs::command()
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "dstore".into())
}

impl Target {
    fn endpoint(&self) -> Result<Endpoint> {
        let url = self.url.as_deref().context("--url is required")?;
        let mut e = Endpoint::parse(url).map_err(|e| anyhow::anyhow!("--url: {e}"))?;
        e.user = self.user.clone();
        e.password = match &self.password_file {
            Some(p) => Some(
                std::fs::read_to_string(p)
                    .with_context(|| format!("--password-file: cannot read {}", p.display()))?
                    .trim_end_matches(['\n', '\r'])
                    .to_string(),
            ),
            None => std::env::var("DSTORE_CLICKHOUSE_PASSWORD").ok(),
        };
        if e.password.is_some() && e.user.is_none() {
            e.user = Some("default".into());
        }
        e.timeout = Duration::from_secs(self.timeout.max(1));
        e.ca_file = self.ca_file.clone();
        Ok(e)
    }

    fn client(&self) -> Result<Client> {
        let mut client =
            Client::new(self.endpoint()?).map_err(|e| anyhow::anyhow!("--ca-file: {e}"))?;
        client.compress = !self.no_compress;
        Ok(client)
    }

    fn node(&self) -> String {
        self.node.clone().unwrap_or_else(hostname)
    }

    /// The table, its flavor taken from --schema or, for `auto`, from the server's version.
    fn table(&self, client: Option<&mut Client>) -> Result<Table> {
        let mut table = Table::parse(&self.table, Flavor::Modern, self.ttl_days)
            .map_err(|e| anyhow::anyhow!("--table: {e}"))?;
        table.flavor =
            match Flavor::parse(&self.schema).map_err(|e| anyhow::anyhow!("--schema: {e}"))? {
                Some(f) => f,
                None => match client {
                    Some(c) => server_flavor(c, &table)?,
                    None => Flavor::Modern,
                },
            };
        Ok(table)
    }

    /// Checks every option that needs no server, so that a bad one is an error at once rather
    /// than something a daemon retries.
    fn check(&self) -> Result<()> {
        if self.batch_rows == 0 {
            bail!("--batch-rows must be at least 1");
        }
        Flavor::parse(&self.schema).map_err(|e| anyhow::anyhow!("--schema: {e}"))?;
        Table::parse(&self.table, Flavor::Modern, self.ttl_days)
            .map_err(|e| anyhow::anyhow!("--table: {e}"))?;
        if self.url.is_some() {
            self.client()?;
        }
        Ok(())
    }
}

/// The flavor for `table` on this server: the one of the table if it exists (a server upgraded
/// since it was created keeps its legacy table), else the newest the server's version takes.
fn server_flavor(c: &mut Client, table: &Table) -> Result<Flavor> {
    let server = c.endpoint().to_string();
    let asked = |e| {
        anyhow::anyhow!(
            "cannot ask ClickHouse at {server} about {}: {e}",
            table.qualified()
        )
    };
    let database = match &table.database {
        Some(db) => format!("'{db}'"),
        None => "currentDatabase()".into(),
    };
    let time_type = c
        .query(&format!(
            "SELECT type FROM system.columns WHERE database = {database} AND table = '{}' AND name = 'time' FORMAT TSV",
            table.name
        ))
        .map_err(asked)?;
    if let Some(flavor) = Flavor::of_time_column(time_type.trim()) {
        return Ok(flavor);
    }
    let version = c.query("SELECT version()").map_err(asked)?;
    Flavor::for_version(&version).map_err(|e| anyhow::anyhow!(e))
}

/// Connects, settles the table (creating it with --create), and returns both.
fn connect(target: &Target) -> Result<(Client, Table)> {
    let mut client = target.client()?;
    let table = target.table(Some(&mut client))?;
    if target.create {
        client
            .query(&table.create_statement())
            .with_context(|| format!("cannot create {}", table.qualified()))?;
    }
    Ok((client, table))
}

fn insert(client: &mut Client, table: &Table, batch: &Batch) -> Result<()> {
    client
        .insert(&table.insert_statement(), &batch.data)
        .map_err(|e| {
            let hint = if e.to_string().contains("doesn't exist") {
                " (create it with --create, or see --print-schema)"
            } else {
                ""
            };
            anyhow::anyhow!(
                "ClickHouse at {} refused {} rows: {e}{hint}",
                client.endpoint(),
                batch.rows
            )
        })
}

pub fn export(m: &ArgMatches) -> Result<ExitCode> {
    let ExportTo::Clickhouse(args) = ExportArgs::from_arg_matches(m)?.to;
    let filter = args.conditions.filter("")?;
    let target = &args.target;
    target.check()?;
    if args.print_schema {
        let mut client = match target.url {
            Some(_) => Some(target.client()?),
            None => None,
        };
        let table = target.table(client.as_mut())?;
        super::print(&format!("{};\n", table.create_statement().trim_end()))?;
        return Ok(ExitCode::SUCCESS);
    }
    let dir = args.store.resolve()?;
    crate::format::segment_paths(&dir).context("cannot list the store")?;
    let (mut sink, table) = match &args.out {
        Some(out) => {
            let table = target.table(None)?;
            write_statements(out, &table)?;
            (Sink::Files(out.clone()), table)
        }
        None => {
            let (client, table) = connect(target)?;
            (Sink::ClickHouse(client), table)
        }
    };
    let progress = !args.quiet && std::io::stderr().is_terminal();
    let started = Instant::now();
    let mut reader = Reader::new(&dir, &target.node(), table.flavor, filter);
    let mut pos = Position::default();
    let mut batch = Batch::default();
    let (mut rows, mut batches) = (0u64, 0u64);
    loop {
        let done = reader
            .fill(&mut pos, &mut batch, target.batch_rows)
            .with_context(|| format!("reading {}", dir.display()))?;
        if batch.rows > 0 {
            batches += 1;
            match &mut sink {
                Sink::ClickHouse(c) => insert(c, &table, &batch)?,
                Sink::Files(out) => {
                    let path = out.join(format!("batch-{batches:06}.rowbinary"));
                    std::fs::write(&path, &batch.data)
                        .with_context(|| format!("cannot write {}", path.display()))?;
                }
            }
            rows += batch.rows;
            batch.clear();
            if progress {
                eprint!("\rdstore export: {rows} rows in {batches} batches");
            }
        }
        if done {
            break;
        }
    }
    let secs = started.elapsed().as_secs_f64();
    if !args.quiet {
        let sent = match &sink {
            Sink::ClickHouse(c) => format!(
                ", {:.1} bytes sent per row",
                c.sent_bytes as f64 / rows.max(1) as f64
            ),
            Sink::Files(_) => String::new(),
        };
        eprintln!(
            "{}dstore export: {rows} rows in {batches} batches to {} in {secs:.2} s ({:.0} rows/s{sent})",
            if progress { "\r" } else { "" },
            table.qualified(),
            rows as f64 / secs.max(1e-9)
        );
    }
    for note in reader.notes.damaged.iter().chain(&reader.notes.gone) {
        eprintln!("dstore export: {note}");
    }
    Ok(if reader.notes.damaged.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(super::EXIT_ERROR)
    })
}

/// Where export puts its batches.
enum Sink {
    ClickHouse(Client),
    /// `--out DIR`: files, for loading elsewhere.
    Files(PathBuf),
}

fn write_statements(out: &Path, table: &Table) -> Result<()> {
    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    for (name, text) in [
        ("create.sql", table.create_statement()),
        ("insert.sql", table.insert_statement()),
    ] {
        let path = out.join(name);
        std::fs::write(&path, text + "\n")
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(())
}

/// The shipper's counters, for the log and /metrics.
#[derive(Default)]
struct ShipStats {
    rows: AtomicU64,
    batches: AtomicU64,
    bytes_sent: AtomicU64,
    failures: AtomicU64,
    damaged_blocks: AtomicU64,
    gone_segments: AtomicU64,
    lag_bytes: AtomicU64,
    shipped_time_us: AtomicU64,
    failing_for: AtomicU64,
}

impl ShipStats {
    fn prometheus(&self) -> String {
        let mut out = String::new();
        let counters = [
            ("rows_total", "Rows ClickHouse accepted", &self.rows),
            (
                "batches_total",
                "Inserts ClickHouse accepted",
                &self.batches,
            ),
            (
                "sent_bytes_total",
                "Bytes sent to ClickHouse, requests included",
                &self.bytes_sent,
            ),
            (
                "failures_total",
                "Inserts that failed and were retried",
                &self.failures,
            ),
            (
                "damaged_blocks_total",
                "Damaged blocks skipped",
                &self.damaged_blocks,
            ),
            (
                "gone_segments_total",
                "Segments removed before they were shipped to the end",
                &self.gone_segments,
            ),
        ];
        for (name, help, v) in counters {
            out.push_str(&format!(
                "# HELP dstore_ship_{name} {help}\n# TYPE dstore_ship_{name} counter\ndstore_ship_{name} {}\n",
                v.load(Relaxed)
            ));
        }
        let shipped = self.shipped_time_us.load(Relaxed);
        let gauges = [
            (
                "lag_bytes",
                "Bytes of the store not yet shipped",
                self.lag_bytes.load(Relaxed) as f64,
            ),
            (
                "shipped_time_seconds",
                "Time of the newest event shipped",
                shipped as f64 / 1e6,
            ),
        ];
        for (name, help, v) in gauges {
            out.push_str(&format!(
                "# HELP dstore_ship_{name} {help}\n# TYPE dstore_ship_{name} gauge\ndstore_ship_{name} {v}\n"
            ));
        }
        out
    }
}

/// Sleeps up to `d`, waking early when asked to stop.
fn nap(d: Duration, stop: &AtomicBool) {
    let until = Instant::now() + d;
    while !stop.load(Relaxed) {
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        std::thread::sleep(left.min(Duration::from_millis(100)));
    }
}

pub fn ship(m: &ArgMatches) -> Result<ExitCode> {
    let args = ShipArgs::from_arg_matches(m)?;
    let flush_interval = parse_duration(&args.flush_interval)
        .map(Duration::from_micros)
        .map_err(|e| anyhow::anyhow!("--flush-interval: {e}"))?;
    let start_us = match &args.from {
        Some(t) => Some(
            crate::timespec::parse_time(t, now_us()).map_err(|e| anyhow::anyhow!("--from: {e}"))?,
        ),
        None => None,
    };
    let target = &args.target;
    target.check()?;
    let endpoint = target.endpoint()?; // --url is required; only the server's answers are retried
    let dir = args.store.resolve()?;
    crate::format::segment_paths(&dir).context("cannot list the store")?;
    let position_file = PositionFile {
        path: args.position_file.clone().unwrap_or_else(|| {
            // One file per server and table, so that shipping one store to two clusters keeps
            // two positions.
            let server: String = format!("{}-{}", endpoint.host, endpoint.port)
                .chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                        c
                    } else {
                        '_'
                    }
                })
                .collect();
            dir.join(format!("ship-{server}-{}.position", target.table))
        }),
    };
    // One shipper per position file: two would overwrite each other's position.
    let _lock = position_file.lock().map_err(|e| anyhow::anyhow!(e))?;
    let saved = position_file.load().map_err(|e| anyhow::anyhow!(e))?;
    if saved.is_none() {
        // Said at once, before the first batch: rotate and compact hold off from here on.
        position_file
            .save(Position::start_of(0))
            .with_context(|| format!("cannot write {}", position_file.path.display()))?;
    }
    // Nothing shipped yet: no position, or only the one saved as it started.
    let fresh = saved.is_none_or(|p| p.segment == 0);
    let log =
        Arc::new(Log::new("dstore ship", args.log_file.clone()).context("cannot open the log")?);
    let stop = Arc::new(AtomicBool::new(false));
    let reopen = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register(signal, stop.clone())?;
    }
    signal_hook::flag::register(signal_hook::consts::SIGHUP, reopen.clone())?;
    // ClickHouse may be down when the shipper starts (a reboot of both): keep trying.
    let mut tries = 0u32;
    let (mut client, table) = loop {
        match connect(target) {
            Ok(ok) => break ok,
            Err(e) if stop.load(Relaxed) => return Err(e),
            Err(e) => {
                tries += 1;
                let wait = Duration::from_secs(1 << tries.min(6));
                log.limited("connect", || {
                    format!("{e:#}; trying again in {} s", wait.as_secs())
                });
                nap(wait, &stop);
            }
        }
    };
    let mut pos = saved.unwrap_or_default();
    let mut filter = crate::filter::Filter::default();
    if fresh {
        if let Some(from) = start_us {
            filter.time = Some(crate::format::TimeRange {
                from_us: from,
                to_us: u64::MAX,
            });
        }
    }
    let stats = Arc::new(ShipStats::default());
    if let Some(addr) = args.metrics_listen {
        let stats = stats.clone();
        crate::metrics::serve(addr, move || stats.prometheus(), &log)?;
    }
    log.info(&format!(
        "shipping {} to {} table {} ({} schema) from segment {} offset {}; position in {}",
        dir.display(),
        client.endpoint(),
        table.qualified(),
        table.flavor,
        pos.segment,
        pos.offset,
        position_file.path.display()
    ));
    let mut reader = Reader::new(&dir, &target.node(), table.flavor, filter);
    let mut batch = Batch::default();
    let mut batch_started: Option<Instant> = None;
    let mut saved_pos = saved;
    let mut last_report = Instant::now();
    let mut reported_rows = 0;
    loop {
        if reopen.swap(false, Relaxed) {
            if let Err(e) = log.reopen() {
                log.info(&format!("cannot reopen the log: {e}"));
            }
        }
        let caught_up = match reader.fill(&mut pos, &mut batch, target.batch_rows) {
            Ok(done) => done,
            Err(e) => {
                log.limited("read", || format!("cannot read the store: {e}"));
                nap(Duration::from_secs(1), &stop);
                if stop.load(Relaxed) {
                    break;
                }
                continue;
            }
        };
        for note in reader.notes.damaged.drain(..) {
            stats.damaged_blocks.fetch_add(1, Relaxed);
            log.info(&format!("skipped a damaged block: {note}"));
        }
        if let Some(note) = reader.notes.waiting.take() {
            log.limited("waiting", || {
                format!("waiting for a block of the segment being written to check out: {note}")
            });
        }
        if let Some(note) = reader.notes.ahead.take() {
            log.limited("ahead", || note);
        }
        for note in reader.notes.gone.drain(..) {
            stats.gone_segments.fetch_add(1, Relaxed);
            log.info(&format!("lost events: {note}"));
        }
        if batch.rows > 0 && batch_started.is_none() {
            batch_started = Some(Instant::now());
        }
        let due = batch.rows >= target.batch_rows
            || batch_started.is_some_and(|t| t.elapsed() >= flush_interval)
            || (batch.rows > 0 && (args.until_caught_up || stop.load(Relaxed)));
        if due {
            match insert(&mut client, &table, &batch) {
                Ok(()) => {
                    stats.failing_for.store(0, Relaxed);
                    stats.rows.fetch_add(batch.rows, Relaxed);
                    stats.batches.fetch_add(1, Relaxed);
                    stats.bytes_sent.store(client.sent_bytes, Relaxed);
                    stats.shipped_time_us.fetch_max(batch.newest_us, Relaxed);
                    batch.clear();
                    batch_started = None;
                }
                Err(e) => {
                    stats.failures.fetch_add(1, Relaxed);
                    let failures = stats.failing_for.fetch_add(1, Relaxed) + 1;
                    let wait = Duration::from_secs(1 << failures.min(6));
                    log.limited("insert", || {
                        format!("{e:#}; trying again in {} s", wait.as_secs())
                    });
                    if stop.load(Relaxed) {
                        log.info(
                            "stopping with an unsent batch; it is sent again on the next start",
                        );
                        break;
                    }
                    nap(wait, &stop);
                    // The batch stays as it is, and so does the saved position.
                    continue;
                }
            }
        }
        // Save the position once nothing read is waiting to be sent.
        if batch.rows == 0 && saved_pos != Some(pos) {
            if let Err(e) = position_file.save(pos) {
                // Rows would be sent again after a restart, never lost; say so loudly.
                log.limited("position", || {
                    format!(
                        "cannot save the position in {}: {e}",
                        position_file.path.display()
                    )
                });
            } else {
                saved_pos = Some(pos);
            }
        }
        stats.lag_bytes.store(lag_bytes(&dir, pos), Relaxed);
        if last_report.elapsed() >= Duration::from_secs(60) {
            let rows = stats.rows.load(Relaxed);
            log.info(&format!(
                "{} rows shipped in the last minute, {} in all; newest shipped {}; {} bytes behind",
                rows - reported_rows,
                rows,
                utc_text(stats.shipped_time_us.load(Relaxed), false),
                stats.lag_bytes.load(Relaxed)
            ));
            reported_rows = rows;
            last_report = Instant::now();
        }
        if stop.load(Relaxed) && batch.rows == 0 {
            break;
        }
        if caught_up {
            if args.until_caught_up && batch.rows == 0 {
                break;
            }
            nap(Duration::from_millis(500), &stop);
        }
    }
    let rows = stats.rows.load(Relaxed);
    log.info(&format!(
        "stopped: {rows} rows shipped, position segment {} offset {}",
        pos.segment, pos.offset
    ));
    let _ = std::io::stderr().flush();
    Ok(ExitCode::SUCCESS)
}
