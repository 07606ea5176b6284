//! Ingest's counters: shared between the event loop, the store writer and the metrics endpoint, and
//! rendered as a status line and as Prometheus text.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;

#[derive(Default)]
pub struct Stats {
    /// Frames received whole.
    pub events: AtomicU64,
    /// Bytes of those frames, length prefixes included.
    pub bytes: AtomicU64,
    /// Events stored that did not decode as PBDNSMessage.
    pub undecodable: AtomicU64,
    /// Events written to the store (and fsynced at the next flush).
    pub stored: AtomicU64,
    /// Events dropped because the queue to the disk was full.
    pub dropped: AtomicU64,
    /// Partial frames at the end of a connection.
    pub partial_frames: AtomicU64,
    /// Zero or over-long frame lengths (the connection is closed).
    pub bad_lengths: AtomicU64,
    /// Connections refused by allow-from.
    pub refused_connections: AtomicU64,
    /// Connections closed because they did not speak the protobuf stream (HTTP, TLS, SSH).
    pub foreign_streams: AtomicU64,
    pub accepted_connections: AtomicU64,
    pub open_connections: AtomicU64,
    /// Times accepting paused at the connection cap.
    pub connection_cap_reached: AtomicU64,
    pub write_errors: AtomicU64,
    /// Bytes of the store's segment files.
    pub disk_bytes: AtomicU64,
    pub queued_bytes: AtomicU64,
    /// Blocks written in the degraded form (every frame opaque, no summary) because the encoders
    /// were behind, and the events in them.
    pub degraded_blocks: AtomicU64,
    pub degraded_events: AtomicU64,
    pub producers: Mutex<BTreeMap<IpAddr, Producer>>,
}

/// Counts per producer address.
#[derive(Clone, Copy, Default, Debug)]
pub struct Producer {
    pub events: u64,
    pub bytes: u64,
    pub connections: u64,
}

impl Stats {
    pub fn producer(&self, ip: IpAddr, f: impl FnOnce(&mut Producer)) {
        let mut map = self.producers.lock().unwrap_or_else(|e| e.into_inner());
        f(map.entry(ip).or_default());
    }

    fn counters(&self) -> [(&'static str, &'static str, &'static str, u64); 17] {
        let g = |a: &AtomicU64| a.load(Relaxed);
        [
            (
                "events_total",
                "counter",
                "Frames received whole.",
                g(&self.events),
            ),
            (
                "bytes_total",
                "counter",
                "Bytes received in whole frames, length prefixes included.",
                g(&self.bytes),
            ),
            (
                "stored_events_total",
                "counter",
                "Events written to the store.",
                g(&self.stored),
            ),
            (
                "undecodable_events_total",
                "counter",
                "Events stored that do not decode as PBDNSMessage.",
                g(&self.undecodable),
            ),
            (
                "degraded_blocks_total",
                "counter",
                "Blocks written with every frame opaque and no summary because the encoders were behind.",
                g(&self.degraded_blocks),
            ),
            (
                "degraded_events_total",
                "counter",
                "Events in those degraded blocks.",
                g(&self.degraded_events),
            ),
            (
                "dropped_events_total",
                "counter",
                "Events dropped: received while the queue to the disk was full, or held by the writer when a write failed.",
                g(&self.dropped),
            ),
            (
                "partial_frames_total",
                "counter",
                "Partial frames dropped at the end of a connection.",
                g(&self.partial_frames),
            ),
            (
                "bad_lengths_total",
                "counter",
                "Zero or over-long frame lengths; the connection was closed.",
                g(&self.bad_lengths),
            ),
            (
                "refused_connections_total",
                "counter",
                "Connections refused by allow-from.",
                g(&self.refused_connections),
            ),
            (
                "foreign_streams_total",
                "counter",
                "Connections closed for speaking HTTP, TLS or SSH.",
                g(&self.foreign_streams),
            ),
            (
                "accepted_connections_total",
                "counter",
                "Connections accepted.",
                g(&self.accepted_connections),
            ),
            (
                "connections",
                "gauge",
                "Connections open.",
                g(&self.open_connections),
            ),
            (
                "connection_cap_reached_total",
                "counter",
                "Times accepting paused at --max-connections.",
                g(&self.connection_cap_reached),
            ),
            (
                "write_errors_total",
                "counter",
                "Failed writes or fsyncs of the store.",
                g(&self.write_errors),
            ),
            (
                "disk_bytes",
                "gauge",
                "Bytes of the store's segment files.",
                g(&self.disk_bytes),
            ),
            (
                "queued_bytes",
                "gauge",
                "Bytes received and waiting for the store writer.",
                g(&self.queued_bytes),
            ),
        ]
    }

    /// The Prometheus text exposition of every counter, and per-producer counts.
    pub fn prometheus(&self) -> String {
        let mut out = String::new();
        for (name, kind, help, value) in self.counters() {
            let _ = writeln!(out, "# HELP dstore_ingest_{name} {help}\n# TYPE dstore_ingest_{name} {kind}\ndstore_ingest_{name} {value}");
        }
        let producers = self
            .producers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        for (name, help, get) in [
            (
                "producer_events_total",
                "Frames received whole, by producer address.",
                (|p: &Producer| p.events) as fn(&Producer) -> u64,
            ),
            (
                "producer_bytes_total",
                "Bytes received, by producer address.",
                |p| p.bytes,
            ),
            (
                "producer_connections_total",
                "Connections accepted, by producer address.",
                |p| p.connections,
            ),
        ] {
            let _ = writeln!(
                out,
                "# HELP dstore_ingest_{name} {help}\n# TYPE dstore_ingest_{name} counter"
            );
            for (ip, p) in &producers {
                let _ = writeln!(out, "dstore_ingest_{name}{{producer=\"{ip}\"}} {}", get(p));
            }
        }
        out
    }

    /// One status line: rates since `last` (the previous events and bytes counts) over `secs`.
    pub fn status_line(&self, last: (u64, u64), secs: f64) -> (String, (u64, u64)) {
        let g = |a: &AtomicU64| a.load(Relaxed);
        let now = (g(&self.events), g(&self.bytes));
        let rate = |a: u64, b: u64| (a.saturating_sub(b)) as f64 / secs.max(1e-3);
        let line = format!(
            "{:.0} events/s, {:.2} MB/s, {} connections, {} events stored ({} in degraded blocks), {} undecodable, {} dropped, {} partial frames, {:.1} MB on disk",
            rate(now.0, last.0),
            rate(now.1, last.1) / 1e6,
            g(&self.open_connections),
            g(&self.stored),
            g(&self.degraded_events),
            g(&self.undecodable),
            g(&self.dropped),
            g(&self.partial_frames),
            g(&self.disk_bytes) as f64 / 1e6,
        );
        (line, now)
    }
}
