//! A segment file: a 32-byte file header, blocks appended one after another, and, once sealed, a
//! footer index of every block's offset and header so that a reader finds the blocks of a time range
//! with one read. An unsealed segment (being written, or left by a crash) is read by walking from
//! block header to block header. See FORMAT.md, "Segment file" and "Crash safety".

use super::block::{BlockHeader, BLOCK_HEADER_LEN, BLOCK_MAGIC};
use super::codec::SECTION_SUMMARY;
use super::summary::Summary;
use super::Error;
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

pub const SEGMENT_MAGIC: [u8; 8] = *b"\x89DST\r\n\x1a\n";
pub const FORMAT_VERSION: u16 = 1;

pub const FILE_MAGIC_OFFSET: usize = 0;
pub const VERSION_OFFSET: usize = FILE_MAGIC_OFFSET + 8;
pub const FILE_RESERVED_OFFSET: usize = VERSION_OFFSET + 2;
pub const CREATED_OFFSET: usize = FILE_RESERVED_OFFSET + 6;
pub const FILE_RESERVED2_OFFSET: usize = CREATED_OFFSET + 8;
pub const FILE_HEADER_CRC_OFFSET: usize = FILE_RESERVED2_OFFSET + 4;
pub const FILE_HEADER_LEN: usize = FILE_HEADER_CRC_OFFSET + 4;

/// One footer index entry: the block's offset and the values of its header. It holds no block
/// magic, so that a reader walking a segment whose footer is damaged never takes an entry for a
/// block.
pub const ENTRY_OFFSET_OFFSET: usize = 0;
pub const ENTRY_EVENT_COUNT_OFFSET: usize = ENTRY_OFFSET_OFFSET + 8;
pub const ENTRY_MIN_TIME_OFFSET: usize = ENTRY_EVENT_COUNT_OFFSET + 4;
pub const ENTRY_MAX_TIME_OFFSET: usize = ENTRY_MIN_TIME_OFFSET + 8;
pub const ENTRY_FRAME_BYTES_OFFSET: usize = ENTRY_MAX_TIME_OFFSET + 8;
pub const ENTRY_PAYLOAD_LEN_OFFSET: usize = ENTRY_FRAME_BYTES_OFFSET + 8;
pub const ENTRY_PAYLOAD_CRC_OFFSET: usize = ENTRY_PAYLOAD_LEN_OFFSET + 4;
pub const ENTRY_UNDECODABLE_OFFSET: usize = ENTRY_PAYLOAD_CRC_OFFSET + 4;
pub const INDEX_ENTRY_LEN: usize = ENTRY_UNDECODABLE_OFFSET + 4;

pub const TRAILER_MAGIC: [u8; 8] = *b"\x89DSX\r\n\x1a\n";
pub const TRAILER_MAGIC_OFFSET: usize = 0;
pub const INDEX_OFFSET_OFFSET: usize = TRAILER_MAGIC_OFFSET + 8;
pub const BLOCK_COUNT_OFFSET: usize = INDEX_OFFSET_OFFSET + 8;
pub const INDEX_CRC_OFFSET: usize = BLOCK_COUNT_OFFSET + 4;
pub const TRAILER_RESERVED_OFFSET: usize = INDEX_CRC_OFFSET + 4;
pub const TRAILER_CRC_OFFSET: usize = TRAILER_RESERVED_OFFSET + 4;
pub const TRAILER_LEN: usize = TRAILER_CRC_OFFSET + 4;

/// A block's place in its segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlockRef {
    pub offset: u64,
    pub header: BlockHeader,
}

/// Something wrong found while opening a segment, that the rest of it can be read past.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Damage {
    pub offset: u64,
    pub what: String,
}

/// An open segment, ready to read.
pub struct Segment {
    pub path: PathBuf,
    file: File,
    pub len: u64,
    pub created_us: u64,
    pub blocks: Vec<BlockRef>,
    pub sealed: bool,
    /// Bytes after the last whole block of an unsealed segment: a block being written, or torn by a
    /// crash.
    pub tail_bytes: u64,
    pub damage: Vec<Damage>,
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn le_u32(b: &[u8], at: usize) -> u32 {
    let mut x = [0; 4];
    x.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(x)
}

fn le_u64(b: &[u8], at: usize) -> u64 {
    let mut x = [0; 8];
    x.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(x)
}

pub fn encode_file_header(created_us: u64) -> [u8; FILE_HEADER_LEN] {
    let mut b = [0u8; FILE_HEADER_LEN];
    b[FILE_MAGIC_OFFSET..VERSION_OFFSET].copy_from_slice(&SEGMENT_MAGIC);
    b[VERSION_OFFSET..FILE_RESERVED_OFFSET].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
    b[CREATED_OFFSET..FILE_RESERVED2_OFFSET].copy_from_slice(&created_us.to_le_bytes());
    let crc = crc32fast::hash(&b[..FILE_HEADER_CRC_OFFSET]);
    b[FILE_HEADER_CRC_OFFSET..].copy_from_slice(&crc.to_le_bytes());
    b
}

/// Checks a file header and returns its creation time.
fn decode_file_header(b: &[u8], path: &Path) -> Result<u64, Error> {
    let bad = |what: String| Error::FileHeader {
        path: path.to_path_buf(),
        what,
    };
    if b.len() < FILE_HEADER_LEN {
        return Err(bad(format!(
            "{} bytes long, shorter than a segment header",
            b.len()
        )));
    }
    if b[FILE_MAGIC_OFFSET..VERSION_OFFSET] != SEGMENT_MAGIC {
        return Err(bad("not a dstore segment (bad magic at offset 0)".into()));
    }
    let expected = le_u32(b, FILE_HEADER_CRC_OFFSET);
    let found = crc32fast::hash(&b[..FILE_HEADER_CRC_OFFSET]);
    if expected != found {
        return Err(bad(format!(
            "header checksum at offset {FILE_HEADER_CRC_OFFSET} is {expected:#010x}, the header gives {found:#010x}"
        )));
    }
    let version = u16::from_le_bytes([b[VERSION_OFFSET], b[VERSION_OFFSET + 1]]);
    if version != FORMAT_VERSION {
        return Err(bad(format!(
            "format version {version}; this dstore reads version {FORMAT_VERSION}"
        )));
    }
    Ok(le_u64(b, CREATED_OFFSET))
}

fn encode_footer(blocks: &[BlockRef], index_offset: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(blocks.len() * INDEX_ENTRY_LEN + TRAILER_LEN);
    for b in blocks {
        let h = &b.header;
        out.extend_from_slice(&b.offset.to_le_bytes());
        out.extend_from_slice(&h.event_count.to_le_bytes());
        out.extend_from_slice(&h.min_time_us.to_le_bytes());
        out.extend_from_slice(&h.max_time_us.to_le_bytes());
        out.extend_from_slice(&h.frame_bytes.to_le_bytes());
        out.extend_from_slice(&h.payload_len.to_le_bytes());
        out.extend_from_slice(&h.payload_crc.to_le_bytes());
        out.extend_from_slice(&h.undecodable.to_le_bytes());
    }
    let index_crc = crc32fast::hash(&out);
    let mut t = [0u8; TRAILER_LEN];
    t[TRAILER_MAGIC_OFFSET..INDEX_OFFSET_OFFSET].copy_from_slice(&TRAILER_MAGIC);
    t[INDEX_OFFSET_OFFSET..BLOCK_COUNT_OFFSET].copy_from_slice(&index_offset.to_le_bytes());
    t[BLOCK_COUNT_OFFSET..INDEX_CRC_OFFSET].copy_from_slice(&(blocks.len() as u32).to_le_bytes());
    t[INDEX_CRC_OFFSET..TRAILER_RESERVED_OFFSET].copy_from_slice(&index_crc.to_le_bytes());
    let crc = crc32fast::hash(&t[..TRAILER_CRC_OFFSET]);
    t[TRAILER_CRC_OFFSET..].copy_from_slice(&crc.to_le_bytes());
    out.extend_from_slice(&t);
    out
}

/// Reads the footer index; `None` if the segment has no valid footer (it is not sealed).
fn read_footer(file: &File, len: u64) -> Option<Vec<BlockRef>> {
    let trailer_at = len.checked_sub(TRAILER_LEN as u64)?;
    let mut t = [0u8; TRAILER_LEN];
    file.read_exact_at(&mut t, trailer_at).ok()?;
    if t[..INDEX_OFFSET_OFFSET] != TRAILER_MAGIC
        || le_u32(&t, TRAILER_CRC_OFFSET) != crc32fast::hash(&t[..TRAILER_CRC_OFFSET])
    {
        return None;
    }
    let index_offset = le_u64(&t, INDEX_OFFSET_OFFSET);
    let count = le_u32(&t, BLOCK_COUNT_OFFSET) as u64;
    if index_offset < FILE_HEADER_LEN as u64
        || index_offset.checked_add(count * INDEX_ENTRY_LEN as u64)? != trailer_at
    {
        return None;
    }
    let mut index = vec![0u8; (count as usize).checked_mul(INDEX_ENTRY_LEN)?];
    file.read_exact_at(&mut index, index_offset).ok()?;
    if crc32fast::hash(&index) != le_u32(&t, INDEX_CRC_OFFSET) {
        return None;
    }
    let mut blocks = Vec::with_capacity(count as usize);
    let mut end = FILE_HEADER_LEN as u64;
    for entry in index.chunks_exact(INDEX_ENTRY_LEN) {
        let offset = le_u64(entry, ENTRY_OFFSET_OFFSET);
        let header = BlockHeader {
            event_count: le_u32(entry, ENTRY_EVENT_COUNT_OFFSET),
            min_time_us: le_u64(entry, ENTRY_MIN_TIME_OFFSET),
            max_time_us: le_u64(entry, ENTRY_MAX_TIME_OFFSET),
            frame_bytes: le_u64(entry, ENTRY_FRAME_BYTES_OFFSET),
            payload_len: le_u32(entry, ENTRY_PAYLOAD_LEN_OFFSET),
            payload_crc: le_u32(entry, ENTRY_PAYLOAD_CRC_OFFSET),
            undecodable: le_u32(entry, ENTRY_UNDECODABLE_OFFSET),
        };
        // Blocks lie in order, inside the data area, and their entries are within the bounds of
        // a header: a reader sets aside the block's length before it reads the header itself.
        if offset < end
            || offset + header.block_len() > index_offset
            || !header.in_bounds_but_frame_bytes()
        {
            return None;
        }
        end = offset + header.block_len();
        blocks.push(BlockRef { offset, header });
    }
    Some(blocks)
}

/// Walks an unsealed segment from block to block. Returns the whole blocks, the damage found, and
/// the offset where the last whole block ends.
fn walk(file: &File, len: u64, path: &Path) -> Result<(Vec<BlockRef>, Vec<Damage>, u64), Error> {
    let mut blocks = Vec::new();
    let mut damage = Vec::new();
    let mut offset = FILE_HEADER_LEN as u64;
    let mut end = offset;
    let mut h = [0u8; BLOCK_HEADER_LEN];
    while offset + BLOCK_HEADER_LEN as u64 <= len {
        file.read_exact_at(&mut h, offset).map_err(io_err(path))?;
        match BlockHeader::decode(&h) {
            Ok(header) if offset + header.block_len() <= len => {
                blocks.push(BlockRef { offset, header });
                offset += header.block_len();
                end = offset;
                continue;
            }
            Ok(_) => {}
            Err(_) => {}
        }
        // No whole block here: the rest is a torn tail unless a valid block follows.
        match find_next_block(file, offset + 1, len, path)? {
            Some(next) => {
                let what = match BlockHeader::decode(&h) {
                    Err(e) => e.to_string(),
                    Ok(_) => "block runs past the end of the file".to_string(),
                };
                damage.push(Damage {
                    offset,
                    what: format!("{what}; {} bytes skipped", next - offset),
                });
                offset = next;
            }
            None => break,
        }
    }
    Ok((blocks, damage, end))
}

/// The offset of the next whole, valid block header at or after `from`.
fn find_next_block(file: &File, from: u64, len: u64, path: &Path) -> Result<Option<u64>, Error> {
    const CHUNK: usize = 1 << 20;
    let mut buf = vec![0u8; CHUNK + BLOCK_HEADER_LEN];
    let mut at = from;
    while at + BLOCK_HEADER_LEN as u64 <= len {
        let n = ((len - at) as usize).min(buf.len());
        file.read_exact_at(&mut buf[..n], at)
            .map_err(io_err(path))?;
        let searchable = n.saturating_sub(BLOCK_HEADER_LEN - 1);
        for i in 0..searchable {
            if buf[i..i + 4] == BLOCK_MAGIC {
                if let Ok(header) = BlockHeader::decode(&buf[i..i + BLOCK_HEADER_LEN]) {
                    if at + i as u64 + header.block_len() <= len {
                        return Ok(Some(at + i as u64));
                    }
                }
            }
        }
        at += searchable.max(1) as u64;
    }
    Ok(None)
}

impl Segment {
    /// Opens a segment for reading. A bad file header is an error; damaged blocks and a torn or
    /// growing tail are recorded in `damage` and `tail_bytes`.
    pub fn open(path: &Path) -> Result<Segment, Error> {
        let file = File::open(path).map_err(io_err(path))?;
        Segment::from_file(file, path)
    }

    fn from_file(file: File, path: &Path) -> Result<Segment, Error> {
        let len = file.metadata().map_err(io_err(path))?.len();
        let mut head = [0u8; FILE_HEADER_LEN];
        let n = (&file)
            .take(FILE_HEADER_LEN as u64)
            .read(&mut head)
            .map_err(io_err(path))?;
        let created_us = decode_file_header(&head[..n], path)?;
        if let Some(blocks) = read_footer(&file, len) {
            return Ok(Segment {
                path: path.to_path_buf(),
                file,
                len,
                created_us,
                blocks,
                sealed: true,
                tail_bytes: 0,
                damage: Vec::new(),
            });
        }
        let (blocks, damage, end) = walk(&file, len, path)?;
        Ok(Segment {
            path: path.to_path_buf(),
            file,
            len,
            created_us,
            blocks,
            sealed: false,
            tail_bytes: len - end,
            damage,
        })
    }

    /// Reads one block's payload into `buf`. The header on disk must match the one indexed.
    pub fn read_payload<'b>(
        &self,
        block: &BlockRef,
        buf: &'b mut Vec<u8>,
    ) -> Result<&'b [u8], Error> {
        let len = block.header.block_len() as usize;
        buf.resize(len, 0);
        super::codec::give_back(buf);
        self.file
            .read_exact_at(buf, block.offset)
            .map_err(io_err(&self.path))?;
        match BlockHeader::decode(buf) {
            Ok(h) if h == block.header => {}
            Ok(_) => {
                return Err(self.block_error(
                    block.offset,
                    "block header differs from the footer index".into(),
                ))
            }
            Err(e) => return Err(self.block_error(block.offset, e.to_string())),
        }
        Ok(&buf[BLOCK_HEADER_LEN..])
    }

    /// Reads only a block's summary (the first section of its payload, with a checksum of its own),
    /// not the rest. `None` if the block has none, or it does not check out.
    pub fn read_summary(&self, block: &BlockRef, buf: &mut Vec<u8>) -> Option<Summary> {
        const FIRST_READ: usize = 16 << 10;
        let payload_len = block.header.payload_len as usize;
        let at = block.offset + BLOCK_HEADER_LEN as u64;
        buf.resize(FIRST_READ.min(payload_len), 0);
        self.file.read_exact_at(buf, at).ok()?;
        let count = usize::from(u16::from_le_bytes([*buf.first()?, *buf.get(1)?]));
        // The directory: kind, storage, key length, key, raw length, stored length per section.
        let mut pos = 2;
        let mut first = None;
        for _ in 0..count {
            let (kind, storage, key_len) = (
                *buf.get(pos)?,
                *buf.get(pos + 1)?,
                usize::from(*buf.get(pos + 2)?),
            );
            pos += 3 + key_len;
            let stored = u32::from_le_bytes(buf.get(pos + 4..pos + 8)?.try_into().ok()?) as usize;
            pos += 8;
            first.get_or_insert((kind, storage, stored));
        }
        let (kind, storage, len) = first?;
        if kind != SECTION_SUMMARY || storage != 0 || pos.checked_add(len)? > payload_len {
            return None;
        }
        if pos + len > buf.len() {
            buf.resize(pos + len, 0);
            self.file.read_exact_at(buf, at).ok()?;
        }
        Summary::decode(&buf[pos..pos + len])
    }

    pub fn block_error(&self, offset: u64, what: String) -> Error {
        Error::Block {
            path: self.path.clone(),
            offset,
            what,
        }
    }

    pub fn events(&self) -> u64 {
        self.blocks
            .iter()
            .map(|b| u64::from(b.header.event_count))
            .sum()
    }

    pub fn time_range(&self) -> Option<(u64, u64)> {
        let min = self.blocks.iter().map(|b| b.header.min_time_us).min()?;
        let max = self.blocks.iter().map(|b| b.header.max_time_us).max()?;
        Some((min, max))
    }
}

/// What recovery did to a segment left unsealed by a crash.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Recovery {
    pub path: PathBuf,
    pub blocks: usize,
    pub dropped_bytes: u64,
    pub damage: Vec<Damage>,
    pub removed: bool,
}

impl Recovery {
    /// What recovery did, one line each, for people: damage found, then the repair.
    pub fn messages(&self) -> Vec<String> {
        let path = self.path.display();
        let mut out: Vec<String> = self
            .damage
            .iter()
            .map(|d| format!("{path}: damaged data at offset {}: {}", d.offset, d.what))
            .collect();
        out.push(if self.removed {
            format!("{path}: removed a segment left empty by an interrupted writer")
        } else {
            format!(
                "{path}: recovered an unsealed segment: {} whole blocks kept, {} bytes of a torn last block dropped",
                self.blocks, self.dropped_bytes
            )
        });
        out
    }
}

/// Appends blocks to a new segment; `seal` writes the footer.
pub struct SegmentWriter {
    path: PathBuf,
    file: File,
    len: u64,
    blocks: Vec<BlockRef>,
    pub created_us: u64,
}

/// fsyncs a directory, so that a file created or renamed in it survives a crash.
pub fn sync_dir(dir: &Path) -> Result<(), Error> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err(dir))
}

fn remove_durably(path: &Path) -> Result<(), Error> {
    std::fs::remove_file(path).map_err(io_err(path))?;
    match path.parent() {
        Some(dir) => sync_dir(dir),
        None => Ok(()),
    }
}

impl SegmentWriter {
    /// Creates the file (it must not exist), writes the header, and makes both durable.
    pub fn create(path: &Path, created_us: u64) -> Result<SegmentWriter, Error> {
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(path)
            .map_err(io_err(path))?;
        file.write_all(&encode_file_header(created_us))
            .map_err(io_err(path))?;
        file.sync_all().map_err(io_err(path))?;
        if let Some(dir) = path.parent() {
            sync_dir(dir)?;
        }
        Ok(SegmentWriter {
            path: path.to_path_buf(),
            file,
            len: FILE_HEADER_LEN as u64,
            blocks: Vec::new(),
            created_us,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.blocks.is_empty()
    }

    /// Appends one encoded block (header and payload). Not durable until `sync`.
    pub fn append(&mut self, block: &[u8], header: BlockHeader) -> Result<(), Error> {
        self.file.write_all(block).map_err(io_err(&self.path))?;
        self.blocks.push(BlockRef {
            offset: self.len,
            header,
        });
        self.len += block.len() as u64;
        Ok(())
    }

    pub fn sync(&self) -> Result<(), Error> {
        self.file.sync_data().map_err(io_err(&self.path))
    }

    /// Writes the footer index and makes the whole file durable.
    pub fn seal(mut self) -> Result<PathBuf, Error> {
        let footer = encode_footer(&self.blocks, self.len);
        self.file.write_all(&footer).map_err(io_err(&self.path))?;
        self.file.sync_all().map_err(io_err(&self.path))?;
        Ok(self.path)
    }

    /// Recovers a segment left unsealed: cuts the torn tail after its last whole block and seals
    /// it, or removes it if it holds no block. `None` for a segment that is sealed already.
    pub fn recover(path: &Path) -> Result<Option<Recovery>, Error> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .map_err(io_err(path))?;
        let len = file.metadata().map_err(io_err(path))?.len();
        let segment = match Segment::from_file(file, path) {
            Ok(segment) => segment,
            // A crash while the header was being written: nothing else was ever in the file.
            Err(Error::FileHeader { .. }) if len <= FILE_HEADER_LEN as u64 => {
                remove_durably(path)?;
                let report = Recovery {
                    path: path.to_path_buf(),
                    blocks: 0,
                    dropped_bytes: len,
                    damage: Vec::new(),
                    removed: true,
                };
                return Ok(Some(report));
            }
            Err(e) => return Err(e),
        };
        let mut report = Recovery {
            path: path.to_path_buf(),
            blocks: segment.blocks.len(),
            dropped_bytes: segment.tail_bytes,
            damage: segment.damage.clone(),
            removed: false,
        };
        if segment.sealed {
            return Ok(None);
        }
        if segment.blocks.is_empty() {
            remove_durably(path)?;
            report.removed = true;
            return Ok(Some(report));
        }
        let end = segment.len - segment.tail_bytes;
        segment.file.set_len(end).map_err(io_err(path))?;
        let writer = SegmentWriter {
            path: path.to_path_buf(),
            file: segment.file,
            len: end,
            blocks: segment.blocks,
            created_us: segment.created_us,
        };
        let mut file = &writer.file;
        std::io::Seek::seek(&mut file, std::io::SeekFrom::End(0)).map_err(io_err(path))?;
        writer.seal()?;
        Ok(Some(report))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::block::{MAX_FRAME_BYTES, MAX_PAYLOAD_LEN};

    /// A sealed segment of one block entry over a hole: the index says `payload_len` bytes.
    fn segment_over_a_hole(path: &Path, payload_len: u32, frame_bytes: u64) {
        let header = BlockHeader {
            event_count: 1,
            min_time_us: 0,
            max_time_us: 0,
            frame_bytes,
            payload_len,
            payload_crc: 0,
            undecodable: 0,
        };
        let offset = FILE_HEADER_LEN as u64;
        let index_offset = offset + header.block_len();
        let mut file = File::create(path).unwrap();
        file.write_all(&encode_file_header(1)).unwrap();
        file.set_len(index_offset).unwrap();
        let footer = encode_footer(&[BlockRef { offset, header }], index_offset);
        file.write_all_at(&footer, index_offset).unwrap();
    }

    #[test]
    fn a_footer_entry_out_of_a_headers_bounds_is_no_footer() {
        let dir = std::env::temp_dir().join(format!("dstore-footer-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("0000000001-20260101T000000Z.dst");
        // Within the bounds, the index is taken as it is (the block is checked when read).
        segment_over_a_hole(&path, MAX_PAYLOAD_LEN, 1);
        let segment = Segment::open(&path).unwrap();
        assert!(segment.sealed);
        assert_eq!(segment.blocks.len(), 1);
        // Frame bytes past their bound (a block written before there was one) leave the footer
        // whole: that block alone reads as damaged.
        segment_over_a_hole(&path, 1024, MAX_FRAME_BYTES + 1);
        let segment = Segment::open(&path).unwrap();
        assert!(segment.sealed);
        assert!(segment
            .read_payload(&segment.blocks[0], &mut Vec::new())
            .is_err());
        // Past them, a reader would set aside the length before reading the block's own header:
        // the footer is not valid, and the segment is walked (finding no block in the hole).
        segment_over_a_hole(&path, MAX_PAYLOAD_LEN + 1, 1);
        let segment = Segment::open(&path).unwrap();
        assert!(!segment.sealed);
        assert!(segment.blocks.is_empty());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
