//! Reading a store in storage order from a position, block by block, into RowBinary batches; and
//! the position file that lets `dstore ship` carry on where it stopped.
//!
//! A position names the next block to read: a segment's sequence number and a byte offset in it.
//! It only ever moves past whole blocks, and is saved (write, fsync, rename, fsync the directory)
//! only after ClickHouse accepted every row before it: a crash loses no row, and repeats at most
//! the last batch, whose rows have the same identity (node, seq) the second time.

use super::rows::{encode_row, EventId};
use super::schema::Flavor;
use crate::filter::Filter;
use crate::format::segment::sync_dir;
use crate::format::store::{decode_block, numbered_segments};
use crate::format::{Decoded, Segment, StoredEvent};
use std::io::Write;
use std::path::{Path, PathBuf};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Position {
    pub segment: u64,
    pub offset: u64,
    /// The place in the segment of the next event to read: what reading resumes by, since
    /// `dstore compact` may rewrite a segment into other offsets (but the same blocks, each with
    /// the same events). `None` in a position saved before it was kept: then the offset.
    pub ordinal: Option<u64>,
}

impl Position {
    /// The start of segment `segment`.
    pub fn start_of(segment: u64) -> Position {
        Position {
            segment,
            offset: 0,
            ordinal: Some(0),
        }
    }
}

/// The rows read so far and not yet sent.
#[derive(Default)]
pub struct Batch {
    pub data: Vec<u8>,
    pub rows: u64,
    /// Time of the newest event in the batch.
    pub newest_us: u64,
}

impl Batch {
    pub fn clear(&mut self) {
        self.data.clear();
        self.rows = 0;
        self.newest_us = 0;
    }
}

/// What reading met besides rows: damaged blocks (skipped), segments that were removed before
/// they were read to the end, a block of the segment being written that does not check out (yet:
/// reading waits there), and a position past the end of the store.
#[derive(Default, Debug)]
pub struct Notes {
    pub damaged: Vec<String>,
    pub gone: Vec<String>,
    pub waiting: Option<String>,
    /// The position lies past every segment on disk.
    pub ahead: Option<String>,
}

pub struct Reader {
    dir: PathBuf,
    node: String,
    flavor: Flavor,
    filter: Filter,
    decoded: Decoded,
    buf: Vec<u8>,
    pub notes: Notes,
}

impl Reader {
    pub fn new(dir: &Path, node: &str, flavor: Flavor, filter: Filter) -> Reader {
        Reader {
            dir: dir.to_path_buf(),
            node: node.to_string(),
            flavor,
            filter,
            decoded: Decoded::default(),
            buf: Vec::new(),
            notes: Notes::default(),
        }
    }

    /// Appends the rows of the blocks at and after `pos` to `batch`, until it holds at least
    /// `max_rows` rows or no complete block is left, moving `pos` past each block read. Returns
    /// true when it read everything the store holds now.
    ///
    /// In the segment being written, a block that does not check out may be one being written
    /// right now: reading stops there and tries again next time. Anywhere else it is damage,
    /// noted and skipped.
    pub fn fill(
        &mut self,
        pos: &mut Position,
        batch: &mut Batch,
        max_rows: u64,
    ) -> Result<bool, crate::format::Error> {
        let mut vanished = 0;
        loop {
            let list = numbered_segments(&self.dir)?;
            let Some(index) = list.iter().position(|(seq, _)| *seq >= pos.segment) else {
                if let Some((newest, _)) = list.last() {
                    if pos.segment > newest + 1 {
                        self.notes.ahead = Some(format!(
                            "the position (segment {}) is past the newest segment ({newest}): was the store replaced? Remove the position file to ship this store from its start",
                            pos.segment
                        ));
                    }
                }
                return Ok(true);
            };
            let (seq, path) = &list[index];
            if *seq != pos.segment {
                // Numbers are never reused (FORMAT.md), so a jump means segments were removed
                // (by rotate, or empty ones by recovery) before they were read to the end.
                if pos.segment > 0 {
                    self.notes.gone.push(format!(
                        "segments {:010} to {:010} were removed before they were read to the end; going on with {}",
                        pos.segment,
                        seq - 1,
                        path.display()
                    ));
                }
                *pos = Position::start_of(*seq);
            }
            let segment = match Segment::open(path) {
                Ok(s) => s,
                // Removed between listing and opening (rotate): look again, a few times.
                Err(e) if e.is_not_found() && vanished < 3 => {
                    vanished += 1;
                    continue;
                }
                Err(e) => return Err(e),
            };
            let last = index + 1 == list.len();
            let being_written = last && !segment.sealed;
            let range = self.filter.range();
            let mut ordinal = 0u64;
            for block in &segment.blocks {
                let count = u64::from(block.header.event_count);
                let first = ordinal;
                ordinal += count;
                let read = match pos.ordinal {
                    Some(o) => first < o,
                    None => block.offset < pos.offset,
                };
                if read {
                    continue;
                }
                if batch.rows >= max_rows {
                    return Ok(false);
                }
                let next = block.offset + block.header.block_len();
                if !range.overlaps(block.header.min_time_us, block.header.max_time_us) {
                    (pos.offset, pos.ordinal) = (next, Some(ordinal));
                    continue;
                }
                if let Err(e) = decode_block(&segment, block, &mut self.decoded, &mut self.buf) {
                    if being_written {
                        self.notes.waiting = Some(e.to_string());
                        return Ok(true);
                    }
                    self.notes.damaged.push(e.to_string());
                    (pos.offset, pos.ordinal) = (next, Some(ordinal));
                    continue;
                }
                let d = &self.decoded;
                for i in 0..d.len() {
                    let ev = StoredEvent {
                        frame: d.frame(i),
                        time_us: d.times[i],
                        flags: d.flags[i],
                    };
                    if !self.filter.matches(&ev) {
                        continue;
                    }
                    let id = EventId {
                        segment: *seq,
                        ordinal: first + i as u64,
                    };
                    encode_row(&mut batch.data, &ev, &self.node, id, self.flavor);
                    batch.rows += 1;
                    batch.newest_us = batch.newest_us.max(ev.time_us);
                }
                (pos.offset, pos.ordinal) = (next, Some(ordinal));
            }
            if being_written {
                return Ok(true);
            }
            // Read to its end, and nothing more will come to it: on to the next one.
            *pos = Position::start_of(seq + 1);
        }
    }
}

/// Bytes of the store in `dir` at and after `pos`: how far behind a shipper is.
pub fn lag_bytes(dir: &Path, pos: Position) -> u64 {
    let Ok(list) = numbered_segments(dir) else {
        return 0;
    };
    list.iter()
        .filter(|(seq, _)| *seq >= pos.segment)
        .filter_map(|(seq, p)| {
            let len = std::fs::metadata(p).ok()?.len();
            Some(if *seq == pos.segment {
                len.saturating_sub(pos.offset)
            } else {
                len
            })
        })
        .sum()
}

/// Where a shipper keeps its position: one line of text, replaced atomically.
pub struct PositionFile {
    pub path: PathBuf,
}

/// Version 2 adds the ordinal; a version 1 file (segment and offset) is still read.
const POSITION_HEADER: &str = "dstore-ship-position 2";
const POSITION_HEADER_V1: &str = "dstore-ship-position 1";

impl PositionFile {
    pub fn load(&self) -> Result<Option<Position>, String> {
        let text = match std::fs::read_to_string(&self.path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(format!("cannot read {}: {e}", self.path.display())),
        };
        let damaged = || {
            format!(
                "{} is not a position file (remove it to ship the whole store again)",
                self.path.display()
            )
        };
        let mut words = text.split_whitespace();
        let header = format!(
            "{} {}",
            words.next().unwrap_or(""),
            words.next().unwrap_or("")
        );
        let with_ordinal = match header.as_str() {
            POSITION_HEADER => true,
            POSITION_HEADER_V1 => false,
            _ => return Err(damaged()),
        };
        let mut number = || words.next().and_then(|w| w.parse::<u64>().ok());
        let (segment, offset) = (number(), number());
        let ordinal = if with_ordinal { number() } else { None };
        match (
            segment,
            offset,
            ordinal.is_some() == with_ordinal,
            words.next(),
        ) {
            (Some(segment), Some(offset), true, None) => Ok(Some(Position {
                segment,
                offset,
                ordinal,
            })),
            _ => Err(damaged()),
        }
    }

    /// Locks `FILE.lock` for as long as the returned file is open; an error if another process
    /// holds it.
    pub fn lock(&self) -> Result<std::fs::File, String> {
        let mut name = self.path.clone().into_os_string();
        name.push(".lock");
        let path = PathBuf::from(name);
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
        match file.try_lock() {
            Ok(()) => Ok(file),
            Err(std::fs::TryLockError::WouldBlock) => Err(format!(
                "another dstore ship uses {} (its lock {} is held)",
                self.path.display(),
                path.display()
            )),
            Err(std::fs::TryLockError::Error(e)) => {
                Err(format!("cannot lock {}: {e}", path.display()))
            }
        }
    }

    pub fn save(&self, pos: Position) -> std::io::Result<()> {
        let tmp = self.path.with_extension("tmp");
        {
            let mut f = std::fs::File::create(&tmp)?;
            // A position read from a version 1 file is saved once reading has moved it, so with
            // its ordinal.
            match pos.ordinal {
                Some(o) => writeln!(f, "{POSITION_HEADER} {} {} {o}", pos.segment, pos.offset)?,
                None => writeln!(f, "{POSITION_HEADER_V1} {} {}", pos.segment, pos.offset)?,
            }
            f.sync_all()?;
        }
        std::fs::rename(&tmp, &self.path)?;
        let dir = match self.path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        sync_dir(dir).map_err(|e| std::io::Error::other(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn position_file_round_trip_and_damage() {
        let dir = std::env::temp_dir().join(format!("dstore-pos-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = PositionFile {
            path: dir.join("ship.position"),
        };
        assert_eq!(file.load(), Ok(None));
        let pos = Position {
            segment: 12,
            offset: 4096,
            ordinal: Some(7000),
        };
        file.save(pos).unwrap();
        assert_eq!(file.load(), Ok(Some(pos)));
        // Version 1, from before the ordinal.
        std::fs::write(&file.path, "dstore-ship-position 1 12 4096\n").unwrap();
        let old = Position {
            ordinal: None,
            ..pos
        };
        assert_eq!(file.load(), Ok(Some(old)));
        file.save(old).unwrap();
        assert_eq!(file.load(), Ok(Some(old)));
        for bad in [
            "dstore-ship-position 1 12\n",
            "dstore-ship-position 1 12 4096 7000\n",
            "dstore-ship-position 2 12 4096\n",
        ] {
            std::fs::write(&file.path, bad).unwrap();
            assert!(
                file.load().unwrap_err().contains("not a position file"),
                "{bad}"
            );
        }
        std::fs::write(&file.path, "garbage").unwrap();
        assert!(file.load().is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
