//! A store: a directory of segment files named `<sequence>-<UTC creation time>.dst`, written by one
//! writer at a time (it holds an exclusive lock on `writer.lock`) and read by any number of readers.

use super::block::{decode_payload, encode_block, BlockHeader, MAX_FRAME_BYTES};
use super::codec::{Decoded, Encoder, Event, FLAG_RECEIVE_TIME, FLAG_UNCHECKED, FLAG_UNDECODABLE};
use super::schema::{self, Facts};
use super::segment::{BlockRef, Recovery, Segment, SegmentWriter};
use super::wire::message_time_us;
use super::Error;
use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, SyncSender};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub const SEGMENT_SUFFIX: &str = ".dst";
pub const LOCK_FILE: &str = "writer.lock";
/// Holds the sequence number the next segment takes, so that numbers are never used twice, even
/// after every segment was removed (FORMAT.md, "The store").
pub const NEXT_SEGMENT_FILE: &str = "next-segment";

/// The file that `dstore rotate` and `dstore compact` lock (`flock`) while they change a store, so
/// that one never removes or rewrites a segment under the other.
pub const MAINTENANCE_LOCK_FILE: &str = "maintenance.lock";

/// Waits for, and takes, the store's maintenance lock: held until the file returned is closed.
pub fn lock_maintenance(dir: &Path) -> Result<std::fs::File, Error> {
    let path = dir.join(MAINTENANCE_LOCK_FILE);
    let io = |source| Error::Io {
        path: path.clone(),
        source,
    };
    // Read-only where it exists: a lock file left by root (a rotate run by hand) still locks for
    // the unprivileged services. `flock` needs no write access.
    let file = match File::open(&path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path),
        opened => opened,
    }
    .map_err(io)?;
    file.lock().map_err(io)?;
    Ok(file)
}

/// The number in the store's file `name` (`next-segment`, say), or 0 when there is none.
pub fn read_number_file(dir: &Path, name: &str) -> u64 {
    std::fs::read_to_string(dir.join(name))
        .ok()
        .and_then(|t| t.trim().parse().ok())
        .unwrap_or(0)
}

/// Replaces the store's file `name` with `number` as decimal text: a temporary file, fsynced,
/// renamed over it, the directory fsynced.
pub fn write_number_file(dir: &Path, name: &str, number: u64) -> Result<(), Error> {
    let path = dir.join(name);
    let tmp = dir.join(format!("{name}.tmp"));
    let io = |source| Error::Io {
        path: path.clone(),
        source,
    };
    let mut f = std::fs::File::create(&tmp).map_err(io)?;
    std::io::Write::write_all(&mut f, format!("{number}\n").as_bytes()).map_err(io)?;
    f.sync_all().map_err(io)?;
    std::fs::rename(&tmp, &path).map_err(io)?;
    super::segment::sync_dir(dir)
}

/// When the writer closes a block and a segment.
#[derive(Clone, Debug)]
pub struct WriterOptions {
    /// A block is written once its frames reach this many bytes.
    pub block_bytes: usize,
    pub block_events: usize,
    /// A segment is sealed and a new one started past this size or age.
    pub segment_bytes: u64,
    pub segment_age: Duration,
    /// Threads that encode blocks side by side.
    pub encoders: usize,
}

impl Default for WriterOptions {
    fn default() -> Self {
        WriterOptions {
            block_bytes: 1 << 20,
            block_events: 65_536,
            segment_bytes: 512 << 20,
            segment_age: Duration::from_secs(3600),
            encoders: std::thread::available_parallelism().map_or(1, |n| n.get().min(4)),
        }
    }
}

/// Counters of what a writer has stored.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WriterStats {
    pub events: u64,
    pub undecodable: u64,
    pub frame_bytes: u64,
    pub blocks: u64,
    pub block_bytes: u64,
    /// Blocks whose events were stored as opaque frames because the codec's check failed.
    pub opaque_fallbacks: u64,
    /// Blocks written in the degraded form (see `StoreWriter::set_degraded`), and their events.
    pub degraded_blocks: u64,
    pub degraded_events: u64,
}

pub fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

/// The segment files of a store, oldest first.
pub fn segment_paths(dir: &Path) -> Result<Vec<PathBuf>, Error> {
    let entries = std::fs::read_dir(dir).map_err(|source| Error::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    let mut paths: Vec<PathBuf> = entries
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| sequence_of(n).is_some())
        })
        .collect();
    paths.sort();
    Ok(paths)
}

/// The segment files of a store with their sequence numbers, oldest first.
pub fn numbered_segments(dir: &Path) -> Result<Vec<(u64, PathBuf)>, Error> {
    Ok(segment_paths(dir)?
        .into_iter()
        .filter_map(|p| Some((sequence_of(p.file_name()?.to_str()?)?, p)))
        .collect())
}

/// The sequence number in a segment file's name (`0000000012-20261126T102138Z.dst` is 12).
pub fn sequence_of(name: &str) -> Option<u64> {
    let stem = name.strip_suffix(SEGMENT_SUFFIX)?;
    let (seq, _) = stem.split_once('-')?;
    (seq.len() == 10).then(|| seq.parse().ok()).flatten()
}

/// `2026-11-26T10:21:38Z` style UTC text for a time in microseconds, without separators when
/// `compact` (for file names).
pub fn utc_text(time_us: u64, compact: bool) -> String {
    let secs = time_us / 1_000_000;
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let (h, m, s) = (rem / 3600, rem % 3600 / 60, rem % 60);
    if compact {
        format!("{year:04}{month:02}{day:02}T{h:02}{m:02}{s:02}Z")
    } else {
        format!("{year:04}-{month:02}-{day:02}T{h:02}:{m:02}:{s:02}Z")
    }
}

/// The one writer of a store.
pub struct StoreWriter {
    dir: PathBuf,
    _lock: File,
    options: WriterOptions,
    frames: Vec<u8>,
    pending: Pending,
    pool: EncoderPool,
    segment: Option<SegmentWriter>,
    next_sequence: u64,
    stats: WriterStats,
    poisoned: bool,
    degraded: bool,
}

impl StoreWriter {
    /// Opens (creating if needed) the store in `dir` for writing: takes the writer lock, then
    /// recovers and seals any segment a crash left unsealed.
    pub fn open(dir: &Path, options: WriterOptions) -> Result<(StoreWriter, Vec<Recovery>), Error> {
        let io = |source| Error::Io {
            path: dir.to_path_buf(),
            source,
        };
        std::fs::create_dir_all(dir).map_err(io)?;
        let lock_path = dir.join(LOCK_FILE);
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|source| Error::Io {
                path: lock_path.clone(),
                source,
            })?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(Error::Locked {
                    path: dir.to_path_buf(),
                })
            }
            Err(std::fs::TryLockError::Error(source)) => {
                return Err(Error::Io {
                    path: lock_path,
                    source,
                })
            }
        }
        let mut recoveries = Vec::new();
        let mut next_sequence = read_number_file(dir, NEXT_SEGMENT_FILE).max(1);
        for path in segment_paths(dir)? {
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
            next_sequence = next_sequence.max(sequence_of(name).unwrap_or(0) + 1);
            recoveries.extend(SegmentWriter::recover(&path)?);
        }
        let writer = StoreWriter {
            dir: dir.to_path_buf(),
            _lock: lock,
            pool: EncoderPool::new(options.encoders),
            options,
            frames: Vec::new(),
            pending: Vec::new(),
            segment: None,
            next_sequence,
            stats: WriterStats::default(),
            poisoned: false,
            degraded: false,
        };
        Ok((writer, recoveries))
    }

    pub fn stats(&self) -> &WriterStats {
        &self.stats
    }

    /// Adds one event: the exact frame and the time it was received (used when the message carries
    /// no time of its own). Whether it decodes as a PBDNSMessage, and its time, are worked out by
    /// the encoder threads.
    /// A frame longer than a block holds (`block::MAX_FRAME_BYTES`) is refused, and the writer
    /// carries on.
    pub fn append(&mut self, frame: &[u8], receive_time_us: u64) -> Result<(), Error> {
        self.check_poisoned()?;
        if frame.len() as u64 > MAX_FRAME_BYTES {
            return Err(Error::FrameTooLong { len: frame.len() });
        }
        // A block never holds more frame bytes than the format allows: this one starts the next.
        if (self.frames.len() + frame.len()) as u64 > MAX_FRAME_BYTES {
            self.write_block()?;
        }
        self.frames.extend_from_slice(frame);
        self.pending
            .push((self.frames.len() as u32, receive_time_us));
        if self.frames.len() >= self.options.block_bytes
            || self.pending.len() >= self.options.block_events
        {
            self.write_block()?;
        }
        Ok(())
    }

    /// Adds a batch of events at once: `frames` back to back, `ends[i]` the end of event i's frame,
    /// `receive_time_us[i]` its receive time. With no frame pending, the batch's buffer becomes the
    /// block's without a copy.
    pub fn append_batch(
        &mut self,
        frames: Vec<u8>,
        ends: &[u32],
        receive_time_us: &[u64],
    ) -> Result<(), Error> {
        self.check_poisoned()?;
        let whole = ends.last().map_or(0, |&e| e as usize) == frames.len()
            && ends.len() == receive_time_us.len()
            && self.pending.len() + ends.len() <= self.options.block_events
            && (self.frames.len() + frames.len()) as u64 <= MAX_FRAME_BYTES;
        if !whole {
            // A batch of more events or bytes than a block takes (or a malformed one): one by one.
            let mut start = 0;
            for (&end, &time) in ends.iter().zip(receive_time_us) {
                let frame = frames.get(start..end as usize).unwrap_or_default();
                start = end as usize;
                self.append(frame, time)?;
            }
            return Ok(());
        }
        let base = self.frames.len() as u32;
        if self.frames.is_empty() {
            self.frames = frames;
        } else {
            self.frames.extend_from_slice(&frames);
        }
        self.pending.extend(
            ends.iter()
                .zip(receive_time_us)
                .map(|(&e, &t)| (base + e, t)),
        );
        if self.frames.len() >= self.options.block_bytes
            || self.pending.len() >= self.options.block_events
        {
            self.write_block()?;
        }
        Ok(())
    }

    /// While `degraded`, the blocks handed to the encoders are written in the cheaper form the
    /// format also allows: every frame opaque (plain LZ4 of the frames) and no summary. That costs
    /// several times less CPU than taking frames apart, for about 1.6 times the bytes; a writer
    /// that cannot keep up otherwise (ingest under load) stores everything rather than drop events.
    pub fn set_degraded(&mut self, degraded: bool) {
        self.degraded = degraded;
    }

    /// Writes what is pending as a block and makes everything appended so far durable.
    pub fn flush(&mut self) -> Result<(), Error> {
        self.check_poisoned()?;
        self.write_block()?;
        self.write_encoded(true)?;
        if let Some(segment) = &self.segment {
            let synced = segment.sync();
            self.poison_on_error(synced)?;
        }
        Ok(())
    }

    /// Flushes and seals the current segment.
    pub fn close(mut self) -> Result<WriterStats, Error> {
        self.flush()?;
        if let Some(segment) = self.segment.take() {
            segment.seal()?;
        }
        Ok(self.stats)
    }

    fn check_poisoned(&self) -> Result<(), Error> {
        if self.poisoned {
            return Err(Error::Poisoned {
                path: self.dir.clone(),
            });
        }
        Ok(())
    }

    /// A failed write or fsync is not retried: what reached the disk is unknown, so the writer
    /// refuses further work and recovery on the next open sorts it out.
    fn poison_on_error<T>(&mut self, r: Result<T, Error>) -> Result<T, Error> {
        if r.is_err() {
            self.poisoned = true;
        }
        r
    }

    /// Hands what is pending to the encoders, and writes the blocks they have finished, in order.
    fn write_block(&mut self) -> Result<(), Error> {
        if !self.pending.is_empty() {
            // The next block's buffers start at the size this one reached, rather than grow to it
            // again by doubling (which copied every frame about once more).
            let next = (
                Vec::with_capacity(self.frames.capacity()),
                Vec::with_capacity(self.pending.capacity()),
            );
            let frames = std::mem::replace(&mut self.frames, next.0);
            let pending = std::mem::replace(&mut self.pending, next.1);
            self.pool.submit(frames, pending, self.degraded);
        }
        self.write_encoded(false)
    }

    /// Writes every encoded block that is next in order; with `all`, waits for every block.
    fn write_encoded(&mut self, all: bool) -> Result<(), Error> {
        while let Some(done) = self.pool.next(all) {
            self.append_block(&done.block, done.header, done.fell_back)?;
            if done.degraded {
                self.stats.degraded_blocks += 1;
                self.stats.degraded_events += u64::from(done.header.event_count);
            }
        }
        Ok(())
    }

    fn append_block(
        &mut self,
        block: &[u8],
        header: BlockHeader,
        fell_back: bool,
    ) -> Result<(), Error> {
        let now = now_us();
        let rotate = self.segment.as_ref().is_some_and(|s| {
            s.len() + block.len() as u64 > self.options.segment_bytes && !s.is_empty()
                || now.saturating_sub(s.created_us) > self.options.segment_age.as_micros() as u64
        });
        if rotate {
            let sealed = self.segment.take().map(|s| s.seal()).transpose();
            self.poison_on_error(sealed)?;
        }
        if self.segment.is_none() {
            // The number is taken for good before the file exists: a crash in between leaves a
            // gap, never a number used twice.
            let taken = write_number_file(&self.dir, NEXT_SEGMENT_FILE, self.next_sequence + 1);
            self.poison_on_error(taken)?;
            let name = format!(
                "{:010}-{}{SEGMENT_SUFFIX}",
                self.next_sequence,
                utc_text(now, true)
            );
            let created = SegmentWriter::create(&self.dir.join(name), now);
            self.segment = Some(self.poison_on_error(created)?);
            self.next_sequence += 1;
        }
        let appended = match self.segment.as_mut() {
            Some(segment) => segment.append(block, header),
            None => Ok(()),
        };
        self.poison_on_error(appended)?;
        self.stats.events += u64::from(header.event_count);
        self.stats.undecodable += u64::from(header.undecodable);
        self.stats.frame_bytes += header.frame_bytes;
        self.stats.blocks += 1;
        self.stats.block_bytes += block.len() as u64;
        self.stats.opaque_fallbacks += u64::from(fell_back);
        Ok(())
    }
}

/// Events waiting for a block: the end of each frame in the frame buffer and its receive time.
pub(super) type Pending = Vec<(u32, u64)>;

/// A block for the pool to encode: its place in the order, its frames and events, and whether it is
/// to be written in the degraded form.
type Job = (u64, Vec<u8>, Pending, bool);

/// A block encoded by the pool.
struct Encoded {
    seq: u64,
    block: Vec<u8>,
    header: BlockHeader,
    fell_back: bool,
    degraded: bool,
}

/// Encoder threads: blocks are encoded side by side and come back in the order they went in, so
/// that encoding (the costly part of writing) uses every core while the file stays in order.
struct EncoderPool {
    jobs: Vec<SyncSender<Job>>,
    done: Receiver<Encoded>,
    next_submit: u64,
    next_write: u64,
    finished: BTreeMap<u64, Encoded>,
}

impl EncoderPool {
    fn new(threads: usize) -> EncoderPool {
        let (done_tx, done) = std::sync::mpsc::channel();
        let jobs = (0..threads.max(1))
            .map(|i| {
                let (tx, rx) = std::sync::mpsc::sync_channel::<Job>(1);
                let done_tx = done_tx.clone();
                let work = move || {
                    let mut encoder = Encoder::new();
                    let mut facts = Vec::new();
                    for (seq, frames, pending, degraded) in rx {
                        let events = events_of(&frames, &pending, degraded, &mut facts);
                        // LZ4 alone leaves about 0.4 of the frames, the full encoding 0.25.
                        let mut block = Vec::with_capacity(frames.len() / 2);
                        let (header, fell_back) =
                            encode_block(&mut encoder, &events, &facts, degraded, &mut block);
                        if done_tx
                            .send(Encoded {
                                seq,
                                block,
                                header,
                                fell_back,
                                degraded,
                            })
                            .is_err()
                        {
                            return;
                        }
                    }
                };
                std::thread::Builder::new()
                    .name(format!("encoder-{i}"))
                    .spawn(work)
                    .expect("cannot start an encoder thread");
                tx
            })
            .collect();
        EncoderPool {
            jobs,
            done,
            next_submit: 0,
            next_write: 0,
            finished: BTreeMap::new(),
        }
    }

    fn submit(&mut self, frames: Vec<u8>, pending: Pending, degraded: bool) {
        let seq = self.next_submit;
        self.next_submit += 1;
        let worker = &self.jobs[(seq % self.jobs.len() as u64) as usize];
        // A worker that is gone left its result missing; `next` then reports nothing more.
        let _ = worker.send((seq, frames, pending, degraded));
    }

    /// The next block in order: waits for it when `wait` or when too many blocks are in flight.
    fn next(&mut self, wait: bool) -> Option<Encoded> {
        while let Ok(done) = self.done.try_recv() {
            self.finished.insert(done.seq, done);
        }
        loop {
            if let Some(done) = self.finished.remove(&self.next_write) {
                self.next_write += 1;
                return Some(done);
            }
            let in_flight = self.next_submit - self.next_write;
            if in_flight == 0 || (!wait && in_flight < 2 * self.jobs.len() as u64) {
                return None;
            }
            let done = self.done.recv().ok()?;
            self.finished.insert(done.seq, done);
        }
    }
}

/// The events of a block: each frame, its time and flags, and in `facts` what the schema walk found.
/// A degraded block skips the schema walk (its frames are flagged unchecked) and reads the time
/// alone, which costs a third as much.
pub(super) fn events_of<'a>(
    frames: &'a [u8],
    pending: &Pending,
    degraded: bool,
    facts: &mut Vec<Option<Facts>>,
) -> Vec<Event<'a>> {
    facts.clear();
    let mut start = 0usize;
    pending
        .iter()
        .map(|&(end, receive_time_us)| {
            let frame = frames.get(start..end as usize).unwrap_or_default();
            start = end as usize;
            let found = if degraded {
                None
            } else {
                schema::inspect(frame)
            };
            let (time, flags) = match &found {
                Some(f) => (f.time_us(), 0),
                None if degraded => (message_time_us(frame), FLAG_UNCHECKED),
                None => (message_time_us(frame), FLAG_UNDECODABLE),
            };
            facts.push(found);
            let (time_us, flags) = match time {
                Some(t) => (t, flags),
                None => (receive_time_us, flags | FLAG_RECEIVE_TIME),
            };
            Event {
                frame,
                time_us,
                flags,
            }
        })
        .collect()
}

/// One stored event, as a reader sees it.
#[derive(Clone, Copy, Debug)]
pub struct StoredEvent<'a> {
    pub frame: &'a [u8],
    pub time_us: u64,
    pub flags: u8,
}

impl StoredEvent<'_> {
    pub fn undecodable(&self) -> bool {
        super::codec::is_undecodable(self.flags, self.frame)
    }
    pub fn time_from_receive(&self) -> bool {
        self.flags & FLAG_RECEIVE_TIME != 0
    }
}

/// A time range in microseconds: from (inclusive) to (exclusive).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TimeRange {
    pub from_us: u64,
    pub to_us: u64,
}

impl TimeRange {
    pub const ALL: TimeRange = TimeRange {
        from_us: 0,
        to_us: u64::MAX,
    };
    /// Whether a block whose events lie in [min, max] may hold events of the range.
    pub fn overlaps(&self, min: u64, max: u64) -> bool {
        min < self.to_us && max >= self.from_us
    }
    /// Whether every event of [min, max] lies in the range.
    pub fn covers(&self, min: u64, max: u64) -> bool {
        min >= self.from_us && max < self.to_us
    }
    pub fn contains(&self, t: u64) -> bool {
        self.from_us <= t && t < self.to_us
    }
}

/// Reads the events of one segment in a time range, block by block. Damaged blocks are passed to
/// `on_damage` and skipped; the scan goes on. `on_event` returns false to stop.
pub fn scan_segment(
    segment: &Segment,
    range: TimeRange,
    decoded: &mut Decoded,
    buf: &mut Vec<u8>,
    on_damage: &mut dyn FnMut(Error),
    on_event: &mut dyn FnMut(StoredEvent) -> std::io::Result<bool>,
) -> std::io::Result<bool> {
    for block in blocks_in(segment, range) {
        match decode_block(segment, block, decoded, buf) {
            Ok(()) => {
                if !emit(decoded, range, on_event)? {
                    return Ok(false);
                }
            }
            Err(e) => on_damage(e),
        }
    }
    Ok(true)
}

/// `scan_segment` with several threads decoding blocks side by side; events still come out in
/// order, on the calling thread.
pub struct Scanner {
    work: Vec<(Decoded, Vec<u8>)>,
}

/// What `Scanner::scan_framed` hands over.
#[derive(Clone, Copy, Debug)]
pub enum Framed<'a> {
    /// Consecutive events, each frame after its length prefix, back to back.
    Run { bytes: &'a [u8], events: usize },
    /// One event whose block holds a frame too long for the prefix: the caller frames it itself
    /// (and says which one does not fit).
    Event(StoredEvent<'a>),
}

impl Scanner {
    pub fn new(threads: usize) -> Scanner {
        Scanner {
            work: (0..threads.max(1)).map(|_| Default::default()).collect(),
        }
    }

    pub fn scan(
        &mut self,
        segment: &Segment,
        range: TimeRange,
        on_damage: &mut dyn FnMut(Error),
        on_event: &mut dyn FnMut(StoredEvent) -> std::io::Result<bool>,
    ) -> std::io::Result<bool> {
        self.set_length_prefix(0);
        self.scan_blocks(segment, range, on_damage, &mut |decoded| {
            emit(decoded, range, on_event)
        })
    }

    /// Like `scan`, for output in the framed layout (each frame after a big-endian length of
    /// `prefix` bytes, 2 or 4): the frames are rebuilt in place after their prefixes, and handed
    /// over a run of events at a time, so that printing them is one write per block.
    pub fn scan_framed(
        &mut self,
        segment: &Segment,
        range: TimeRange,
        prefix: usize,
        on_damage: &mut dyn FnMut(Error),
        on_frames: &mut dyn FnMut(Framed) -> std::io::Result<bool>,
    ) -> std::io::Result<bool> {
        self.set_length_prefix(prefix);
        self.scan_blocks(segment, range, on_damage, &mut |decoded| {
            emit_framed(decoded, range, on_frames)
        })
    }

    fn set_length_prefix(&mut self, prefix: usize) {
        for (decoded, _) in &mut self.work {
            decoded.set_length_prefix(prefix);
        }
    }

    fn scan_blocks(
        &mut self,
        segment: &Segment,
        range: TimeRange,
        on_damage: &mut dyn FnMut(Error),
        on_block: &mut dyn FnMut(&Decoded) -> std::io::Result<bool>,
    ) -> std::io::Result<bool> {
        let blocks: Vec<&BlockRef> = blocks_in(segment, range).collect();
        for chunk in blocks.chunks(self.work.len()) {
            let work = &mut self.work[..chunk.len()];
            let results: Vec<Result<(), Error>> = if chunk.len() == 1 {
                let (decoded, buf) = &mut work[0];
                vec![decode_block(segment, chunk[0], decoded, buf)]
            } else {
                std::thread::scope(|scope| {
                    let handles: Vec<_> = chunk
                        .iter()
                        .zip(work.iter_mut())
                        .map(|(block, (decoded, buf))| {
                            scope.spawn(move || decode_block(segment, block, decoded, buf))
                        })
                        .collect();
                    handles
                        .into_iter()
                        .zip(chunk)
                        .map(|(h, block)| {
                            h.join().unwrap_or_else(|_| {
                                Err(segment.block_error(block.offset, "decoder panicked".into()))
                            })
                        })
                        .collect()
                })
            };
            for (result, (decoded, _)) in results.into_iter().zip(work.iter()) {
                match result {
                    Ok(()) => {
                        if !on_block(decoded)? {
                            return Ok(false);
                        }
                    }
                    Err(e) => on_damage(e),
                }
            }
        }
        Ok(true)
    }
}

fn blocks_in(segment: &Segment, range: TimeRange) -> impl Iterator<Item = &BlockRef> {
    segment
        .blocks
        .iter()
        .filter(move |b| range.overlaps(b.header.min_time_us, b.header.max_time_us))
}

/// Reads and decodes one block of `segment` into `decoded`.
pub fn decode_block(
    segment: &Segment,
    block: &BlockRef,
    decoded: &mut Decoded,
    buf: &mut Vec<u8>,
) -> Result<(), Error> {
    let payload = segment.read_payload(block, buf)?;
    decode_payload(&block.header, payload, decoded)
        .map_err(|e| segment.block_error(block.offset, e.to_string()))
}

fn emit(
    decoded: &Decoded,
    range: TimeRange,
    on_event: &mut dyn FnMut(StoredEvent) -> std::io::Result<bool>,
) -> std::io::Result<bool> {
    for i in 0..decoded.len() {
        let time_us = decoded.times[i];
        if range.contains(time_us)
            && !on_event(StoredEvent {
                frame: decoded.frame(i),
                time_us,
                flags: decoded.flags[i],
            })?
        {
            return Ok(false);
        }
    }
    Ok(true)
}

/// The events of `decoded` in `range` as runs of framed bytes (one run for a block wholly in the
/// range), or one by one when some frame is too long for its prefix.
fn emit_framed(
    decoded: &Decoded,
    range: TimeRange,
    on_frames: &mut dyn FnMut(Framed) -> std::io::Result<bool>,
) -> std::io::Result<bool> {
    let n = decoded.len();
    if n > 0 && decoded.framed(0, n).is_none() {
        return emit(decoded, range, &mut |ev| on_frames(Framed::Event(ev)));
    }
    let mut run_start = None;
    for i in 0..=n {
        if i < n && range.contains(decoded.times[i]) {
            run_start.get_or_insert(i);
            continue;
        }
        if let Some(first) = run_start.take() {
            let bytes = decoded.framed(first, i).unwrap_or_default();
            if !on_frames(Framed::Run {
                bytes,
                events: i - first,
            })? {
                return Ok(false);
            }
        }
    }
    Ok(true)
}
