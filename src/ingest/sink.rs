//! The store writer thread: takes batches of frames from the event loop, appends them to the store
//! (whose encoder threads find the frames that do not decode) and makes them durable every flush
//! interval. When the disk fails (full, read-only, gone) it says so, stops taking batches so that
//! the bounded queue holds what arrives meanwhile, and reopens the store every second until writing
//! works again.

use super::stats::Stats;
use crate::format::{StoreWriter, WriterOptions, WriterStats};
use crate::log::Log;
use std::path::PathBuf;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Frames received together, with the time they were received.
#[derive(Default)]
pub struct Batch {
    pub frames: Vec<u8>,
    /// The end of each frame in `frames`.
    pub ends: Vec<u32>,
    pub receive_time_us: Vec<u64>,
}

impl Batch {
    pub fn with_capacity(bytes: usize) -> Batch {
        // About 150 bytes a frame, as PowerDNS messages go.
        let events = bytes / 128;
        Batch {
            frames: Vec::with_capacity(bytes),
            ends: Vec::with_capacity(events),
            receive_time_us: Vec::with_capacity(events),
        }
    }
    pub fn push(&mut self, frame: &[u8], receive_time_us: u64) {
        self.frames.extend_from_slice(frame);
        self.ends.push(self.frames.len() as u32);
        self.receive_time_us.push(receive_time_us);
    }
    pub fn len(&self) -> usize {
        self.ends.len()
    }
    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }
}

pub struct Sink {
    pub dir: PathBuf,
    pub options: WriterOptions,
    pub flush_interval: Duration,
    /// The bound of the queue from the event loop; above an eighth of it the writer is behind.
    pub queue_bytes: u64,
    pub stats: Arc<Stats>,
    pub log: Arc<Log>,
}

const RETRY: Duration = Duration::from_secs(1);

impl Sink {
    /// Opens the store, recovering what a crash left.
    pub fn open(&self) -> Result<StoreWriter, crate::format::Error> {
        let (writer, recoveries) = StoreWriter::open(&self.dir, self.options.clone())?;
        for line in recoveries
            .iter()
            .flat_map(crate::format::Recovery::messages)
        {
            self.log.info(&line);
        }
        Ok(writer)
    }

    /// Runs until the event loop hangs up, then flushes and seals. `writer` is the store opened at
    /// start-up (so that a store that cannot be opened stops the daemon before it listens).
    pub fn run(
        self,
        mut writer: Option<StoreWriter>,
        batches: Receiver<Batch>,
    ) -> Result<(), crate::format::Error> {
        let mut next_flush = Instant::now() + self.flush_interval;
        let mut dirty = false;
        let mut degraded = false;
        // Events handed to the writer now open; those it has not written when it fails are lost.
        let mut handed = 0u64;
        loop {
            let Some(w) = writer.as_mut() else {
                std::thread::sleep(RETRY);
                match self.open() {
                    Ok(w) => {
                        self.log.info("the store is writable again; resuming");
                        writer = Some(w);
                        handed = 0;
                    }
                    Err(e) => self
                        .log
                        .limited("reopen", || format!("still cannot open the store: {e}")),
                }
                continue;
            };
            let wait = next_flush.saturating_duration_since(Instant::now());
            let result = match batches.recv_timeout(wait) {
                Ok(batch) => {
                    self.stats
                        .queued_bytes
                        .fetch_sub(batch.frames.len() as u64, Relaxed);
                    dirty = true;
                    degraded = self.behind(degraded);
                    w.set_degraded(degraded);
                    handed += batch.len() as u64;
                    self.store(w, batch)
                }
                Err(RecvTimeoutError::Timeout) => Ok(()),
                Err(RecvTimeoutError::Disconnected) => break,
            };
            let result = result.and_then(|()| {
                if Instant::now() >= next_flush {
                    next_flush = Instant::now() + self.flush_interval;
                    if dirty {
                        dirty = false;
                        return self.flush(w);
                    }
                }
                Ok(())
            });
            if let Err(e) = result {
                self.stats.write_errors.fetch_add(1, Relaxed);
                let lost = self.count_lost(w, handed);
                self.log.info(&format!(
                    "CANNOT WRITE THE STORE: {e}. Events already flushed are safe; the {lost} not yet written are lost (counted as dropped); new events wait in the queue (then are dropped and counted) while the store is reopened every second"
                ));
                writer = None;
            }
        }
        match writer {
            Some(mut w) => {
                // The last blocks are written (and counted) before the segment is sealed.
                if let Err(e) = self.flush(&mut w) {
                    let lost = self.count_lost(&w, handed);
                    self.log.info(&format!(
                        "CANNOT WRITE THE STORE while stopping: {e}. The {lost} events not yet written are lost (counted as dropped)"
                    ));
                    return Err(e);
                }
                let stats = w.close()?;
                self.log.info(&format!(
                    "store closed: {} events in {} blocks this run",
                    stats.events, stats.blocks
                ));
                Ok(())
            }
            None => Ok(()),
        }
    }

    /// What a failed writer held in memory (its block being filled, blocks being encoded, the
    /// batch it failed on) is gone with it: of the `handed` events, those it did not write are
    /// counted as dropped. Returns how many.
    fn count_lost(&self, w: &StoreWriter, handed: u64) -> u64 {
        let lost = handed.saturating_sub(w.stats().events);
        self.stats.dropped.fetch_add(lost, Relaxed);
        lost
    }

    /// Whether the encoders are behind, so that blocks should be written in the degraded form
    /// (every frame opaque, no summary) rather than let the queue fill and events be dropped:
    /// from an eighth of the queue's bound until it is down to a thirty-second. How many blocks
    /// end up degraded depends on the CPU left, not on these marks; low marks keep the queue, and
    /// so the daemon's memory, small.
    fn behind(&self, was: bool) -> bool {
        let queued = self.stats.queued_bytes.load(Relaxed);
        let limit = if was {
            self.queue_bytes / 32
        } else {
            self.queue_bytes / 8
        };
        queued > limit
    }

    fn store(&self, w: &mut StoreWriter, batch: Batch) -> Result<(), crate::format::Error> {
        let before = w.stats().clone();
        let appended = w.append_batch(batch.frames, &batch.ends, &batch.receive_time_us);
        self.count_written(w, &before);
        appended
    }

    fn flush(&self, w: &mut StoreWriter) -> Result<(), crate::format::Error> {
        let before = w.stats().clone();
        let flushed = w.flush();
        self.count_written(w, &before);
        flushed?;
        Ok(())
    }

    /// Counts what the blocks written since `before` added: an event is stored once its block is
    /// in the segment file (and fsynced at the next flush). The encoder threads find the
    /// undecodable frames, so they are counted as their blocks are written.
    fn count_written(&self, w: &StoreWriter, before: &WriterStats) {
        let s = w.stats();
        for (counter, now, was) in [
            (&self.stats.stored, s.events, before.events),
            (&self.stats.disk_bytes, s.block_bytes, before.block_bytes),
            (&self.stats.undecodable, s.undecodable, before.undecodable),
            (
                &self.stats.degraded_blocks,
                s.degraded_blocks,
                before.degraded_blocks,
            ),
            (
                &self.stats.degraded_events,
                s.degraded_events,
                before.degraded_events,
            ),
        ] {
            counter.fetch_add(now - was, Relaxed);
        }
    }
}
