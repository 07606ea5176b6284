//! `dstore ingest`: the daemon that PowerDNS Recursors, dnsdists and Authoritative servers stream to.
//! The event loop (`server`) reads and frames; the store writer (`sink`) runs on its own thread
//! behind a queue bounded in bytes; `stats` counts everything for the status line and `/metrics`.

mod server;
mod sink;
mod stats;

pub use server::Server;
pub use sink::{Batch, Sink};
pub use stats::Stats;

use crate::format::wire::{put_varint, read_field};
use crate::format::WriterOptions;
use crate::frame::FrameWidth;
use crate::log::Log;
use crate::net::Cidr;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// Everything ingest needs, parsed and checked before any socket or file is opened.
#[derive(Clone, Debug)]
pub struct IngestConfig {
    pub storage_dir: PathBuf,
    pub listen: Vec<(SocketAddr, FrameWidth)>,
    pub allow_from: Vec<Cidr>,
    pub max_connections: usize,
    /// The longest frame accepted; a longer length closes the connection.
    pub max_frame: usize,
    pub answer_limit: Option<usize>,
    pub flush_interval: Duration,
    pub status_interval: Option<Duration>,
    pub metrics_listen: Option<SocketAddr>,
    /// Bytes received but not yet handed to the store writer, at most.
    pub queue_bytes: usize,
    pub log_file: Option<PathBuf>,
    pub writer: WriterOptions,
}

/// Keeps at most `limit` answer records (field 13.2) of a message; writes the shortened message to
/// `out` and returns true if there was anything to cut. Anything it cannot parse is left alone.
pub fn limit_answers(frame: &[u8], limit: usize, out: &mut Vec<u8>) -> bool {
    let mut pos = 0;
    let mut response = None;
    while pos < frame.len() {
        let start = pos;
        let Some(field) = read_field(frame, &mut pos, false) else {
            return false;
        };
        if field.tag == (13 << 3 | 2) {
            response = Some((start, field));
        }
    }
    let Some((start, field)) = response else {
        return false;
    };
    let body = &frame[field.value_start..field.value_end];
    let mut kept = Vec::with_capacity(body.len());
    let (mut p, mut records, mut cut) = (0, 0usize, false);
    while p < body.len() {
        let s = p;
        let Some(f) = read_field(body, &mut p, false) else {
            return false;
        };
        if f.tag == (2 << 3 | 2) {
            records += 1;
            if records > limit {
                cut = true;
                continue;
            }
        }
        kept.extend_from_slice(&body[s..p]);
    }
    if !cut {
        return false;
    }
    out.clear();
    out.extend_from_slice(&frame[..start]);
    put_varint(out, u64::from(field.tag));
    put_varint(out, kept.len() as u64);
    out.extend_from_slice(&kept);
    out.extend_from_slice(&frame[field.value_end..]);
    true
}

/// Keeps the daemon's memory to what it uses. Its megabyte buffers (batches, blocks) are made on
/// one thread and freed on another; glibc raises its mmap threshold past such sizes once one is
/// freed, and then keeps them in per-thread arenas, where the free space is scattered: under
/// overload the resident size crept 40 MiB past what was in use. A fixed threshold of 1 MiB
/// returns the batches to the system when freed (a lower one cost a tenth of the throughput in
/// mmap churn), and one arena serves threads that allocate a few times per megabyte.
fn bound_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets allocator parameters; it is called before any thread starts.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 20);
        libc::mallopt(libc::M_ARENA_MAX, 1);
    }
}

/// Runs the daemon until SIGTERM or SIGINT. `reload` gives the allow-from list anew on SIGHUP.
pub fn run(config: IngestConfig, reload: impl FnMut() -> Option<Vec<Cidr>>) -> anyhow::Result<()> {
    use anyhow::Context;
    bound_allocator();
    let log = Arc::new(
        Log::new("dstore ingest", config.log_file.clone()).context("cannot open the log file")?,
    );
    let stats = Arc::new(Stats::default());
    let sink = Sink {
        dir: config.storage_dir.clone(),
        options: config.writer.clone(),
        flush_interval: config.flush_interval,
        queue_bytes: config.queue_bytes as u64,
        stats: stats.clone(),
        log: log.clone(),
    };
    let writer = sink
        .open()
        .with_context(|| format!("cannot open the store in {}", config.storage_dir.display()))?;
    let disk: u64 = crate::format::segment_paths(&config.storage_dir)
        .map(|paths| {
            paths
                .iter()
                .filter_map(|p| p.metadata().ok())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0);
    stats
        .disk_bytes
        .store(disk, std::sync::atomic::Ordering::Relaxed);

    let (signal_read, signal_write) =
        mio::net::UnixStream::pair().context("cannot create the signal pipe")?;
    let signal_write = std::sync::Arc::new(std::os::unix::net::UnixStream::from(
        std::os::fd::OwnedFd::from(signal_write),
    ));
    register_signals(&signal_write)?;

    let (queue, batches) = std::sync::mpsc::channel();
    let server = Server::bind(
        config.clone(),
        signal_read,
        stats.clone(),
        log.clone(),
        queue,
    )?;
    if let Some(addr) = config.metrics_listen {
        let stats = stats.clone();
        crate::metrics::serve(addr, move || stats.prometheus(), &log)?;
    }
    let writer_thread = std::thread::Builder::new()
        .name("store-writer".into())
        .spawn(move || sink.run(Some(writer), batches))?;
    let log_for_reload = log.clone();
    let mut reload = reload;
    server
        .run(move || {
            if let Err(e) = log_for_reload.reopen() {
                log_for_reload.info(&format!("cannot reopen the log file: {e}"));
            }
            log_for_reload.info("SIGHUP: log reopened, allow-from read again");
            reload()
        })
        .context("the event loop failed")?;
    match writer_thread.join() {
        Ok(result) => result.context("cannot finish writing the store")?,
        Err(_) => anyhow::bail!("the store writer thread panicked"),
    }
    log.info("stopped");
    Ok(())
}

/// SIGTERM and SIGINT write `T` to the pipe, SIGHUP `H`; the event loop reads them.
fn register_signals(pipe: &Arc<std::os::unix::net::UnixStream>) -> anyhow::Result<()> {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    for (signal, byte) in [(SIGTERM, b'T'), (SIGINT, b'T'), (SIGHUP, b'H')] {
        let pipe = pipe.clone();
        // SAFETY: the handler only writes one byte to a non-blocking socket, which is
        // async-signal-safe.
        unsafe {
            signal_hook::low_level::register(signal, move || {
                let _ = std::io::Write::write(&mut &*pipe, &[byte]);
            })
        }?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pb;
    use prost::Message as _;

    #[test]
    fn keeps_the_first_records_and_every_other_field() {
        let rr = |n: u8| pb::Record {
            name: Some("a.example.".into()),
            r#type: Some(1),
            rdata: Some(vec![192, 0, 2, n]),
            ..Default::default()
        };
        let msg = pb::Message {
            r#type: 2,
            message_id: Some(vec![7; 16]),
            time_sec: Some(5),
            response: Some(pb::Response {
                rcode: Some(0),
                rrs: (1..=5).map(rr).collect(),
                applied_policy: Some("p".into()),
                ..Default::default()
            }),
            from_port: Some(53),
            ..Default::default()
        };
        let frame = msg.encode_to_vec();
        let mut out = Vec::new();
        assert!(limit_answers(&frame, 2, &mut out));
        let cut = pb::Message::decode(out.as_slice()).unwrap();
        let mut want = msg.clone();
        want.response.as_mut().unwrap().rrs.truncate(2);
        assert_eq!(cut, want);
        assert!(!limit_answers(&frame, 5, &mut out), "nothing to cut");
        assert!(!limit_answers(&[0xff, 0xff], 1, &mut out), "not a message");
    }
}
