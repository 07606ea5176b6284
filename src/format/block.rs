//! A block: a fixed 64-byte header (time range, event count, lengths, checksums) followed by the
//! payload that the codec writes. See FORMAT.md, "Block".

use super::codec::{self, Decoded, Encoder, Event, FLAG_UNDECODABLE};
use super::schema::Facts;
use std::fmt;

pub const BLOCK_MAGIC: [u8; 4] = *b"dblk";

pub const MAGIC_OFFSET: usize = 0;
pub const EVENT_COUNT_OFFSET: usize = MAGIC_OFFSET + 4;
pub const MIN_TIME_OFFSET: usize = EVENT_COUNT_OFFSET + 4;
pub const MAX_TIME_OFFSET: usize = MIN_TIME_OFFSET + 8;
pub const FRAME_BYTES_OFFSET: usize = MAX_TIME_OFFSET + 8;
pub const PAYLOAD_LEN_OFFSET: usize = FRAME_BYTES_OFFSET + 8;
pub const PAYLOAD_CRC_OFFSET: usize = PAYLOAD_LEN_OFFSET + 4;
pub const UNDECODABLE_OFFSET: usize = PAYLOAD_CRC_OFFSET + 4;
pub const RESERVED_OFFSET: usize = UNDECODABLE_OFFSET + 4;
pub const HEADER_CRC_OFFSET: usize = RESERVED_OFFSET + 16;
pub const BLOCK_HEADER_LEN: usize = HEADER_CRC_OFFSET + 4;

/// The most a block may hold: bounds what a reader allocates for a header it has not yet verified
/// beyond its own checksum.
pub const MAX_PAYLOAD_LEN: u32 = 256 << 20;
pub const MAX_EVENTS: u32 = 1 << 20;
/// The most frame bytes a block holds, and so the longest frame a store takes: what a reader may
/// set aside to rebuild a block's frames. Half the payload bound, so that a block of frames that
/// do not compress still fits its payload with the per-event sections and the summary beside them.
/// A writer starts a new block rather than pass it.
pub const MAX_FRAME_BYTES: u64 = 128 << 20;

/// What a block header says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlockHeader {
    pub event_count: u32,
    pub min_time_us: u64,
    pub max_time_us: u64,
    /// Bytes of the frames themselves, without length prefixes.
    pub frame_bytes: u64,
    pub payload_len: u32,
    pub payload_crc: u32,
    pub undecodable: u32,
}

/// Why a header is not a valid block header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HeaderError {
    Short,
    Magic,
    Checksum { expected: u32, found: u32 },
    Bounds,
}

impl fmt::Display for HeaderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HeaderError::Short => f.write_str("block header cut short"),
            HeaderError::Magic => f.write_str("no block magic"),
            HeaderError::Checksum { expected, found } => write!(
                f,
                "block header checksum is {found:#010x}, the header says {expected:#010x}"
            ),
            HeaderError::Bounds => f.write_str("block header values out of bounds"),
        }
    }
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    let mut x = [0; 4];
    x.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(x)
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut x = [0; 8];
    x.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(x)
}

impl BlockHeader {
    pub fn encode(&self) -> [u8; BLOCK_HEADER_LEN] {
        let mut b = [0u8; BLOCK_HEADER_LEN];
        b[MAGIC_OFFSET..EVENT_COUNT_OFFSET].copy_from_slice(&BLOCK_MAGIC);
        b[EVENT_COUNT_OFFSET..MIN_TIME_OFFSET].copy_from_slice(&self.event_count.to_le_bytes());
        b[MIN_TIME_OFFSET..MAX_TIME_OFFSET].copy_from_slice(&self.min_time_us.to_le_bytes());
        b[MAX_TIME_OFFSET..FRAME_BYTES_OFFSET].copy_from_slice(&self.max_time_us.to_le_bytes());
        b[FRAME_BYTES_OFFSET..PAYLOAD_LEN_OFFSET].copy_from_slice(&self.frame_bytes.to_le_bytes());
        b[PAYLOAD_LEN_OFFSET..PAYLOAD_CRC_OFFSET].copy_from_slice(&self.payload_len.to_le_bytes());
        b[PAYLOAD_CRC_OFFSET..UNDECODABLE_OFFSET].copy_from_slice(&self.payload_crc.to_le_bytes());
        b[UNDECODABLE_OFFSET..RESERVED_OFFSET].copy_from_slice(&self.undecodable.to_le_bytes());
        let crc = crc32fast::hash(&b[..HEADER_CRC_OFFSET]);
        b[HEADER_CRC_OFFSET..BLOCK_HEADER_LEN].copy_from_slice(&crc.to_le_bytes());
        b
    }

    pub fn decode(b: &[u8]) -> Result<BlockHeader, HeaderError> {
        let b = b.get(..BLOCK_HEADER_LEN).ok_or(HeaderError::Short)?;
        if b[MAGIC_OFFSET..EVENT_COUNT_OFFSET] != BLOCK_MAGIC {
            return Err(HeaderError::Magic);
        }
        let expected = u32_at(b, HEADER_CRC_OFFSET);
        let found = crc32fast::hash(&b[..HEADER_CRC_OFFSET]);
        if expected != found {
            return Err(HeaderError::Checksum { expected, found });
        }
        let h = BlockHeader {
            event_count: u32_at(b, EVENT_COUNT_OFFSET),
            min_time_us: u64_at(b, MIN_TIME_OFFSET),
            max_time_us: u64_at(b, MAX_TIME_OFFSET),
            frame_bytes: u64_at(b, FRAME_BYTES_OFFSET),
            payload_len: u32_at(b, PAYLOAD_LEN_OFFSET),
            payload_crc: u32_at(b, PAYLOAD_CRC_OFFSET),
            undecodable: u32_at(b, UNDECODABLE_OFFSET),
        };
        if !h.in_bounds() {
            return Err(HeaderError::Bounds);
        }
        Ok(h)
    }

    /// Whether the counts, lengths and times are within the bounds of a valid header (FORMAT.md,
    /// "Block header"): what a reader may allocate for the block rests on them.
    pub fn in_bounds(&self) -> bool {
        self.frame_bytes <= MAX_FRAME_BYTES && self.in_bounds_but_frame_bytes()
    }

    /// `in_bounds` without the frame bytes bound, which came later: what a footer entry is held
    /// to, so that a block written before that bound reads as damaged alone.
    pub fn in_bounds_but_frame_bytes(&self) -> bool {
        self.event_count <= MAX_EVENTS
            && self.payload_len <= MAX_PAYLOAD_LEN
            && self.min_time_us <= self.max_time_us
            && self.undecodable <= self.event_count
    }

    /// Header plus payload.
    pub fn block_len(&self) -> u64 {
        BLOCK_HEADER_LEN as u64 + u64::from(self.payload_len)
    }
}

/// Encodes `events` as one whole block (header and payload) appended to `out`; `facts` are what
/// `schema::inspect` found in each (`None` for the undecodable ones). A `degraded` block has every
/// frame opaque and no summary: the cheap form, for a writer that is behind. Returns the header
/// and whether the codec fell back to opaque frames.
pub fn encode_block(
    encoder: &mut Encoder,
    events: &[Event],
    facts: &[Option<Facts>],
    degraded: bool,
    out: &mut Vec<u8>,
) -> (BlockHeader, bool) {
    let start = out.len();
    out.resize(start + BLOCK_HEADER_LEN, 0);
    let fell_back = if degraded {
        encoder.encode_opaque(events, &[], out);
        false
    } else {
        let summary = super::summary::build(events, facts);
        encoder.encode(events, &summary, out)
    };
    let payload = &out[start + BLOCK_HEADER_LEN..];
    let header = BlockHeader {
        event_count: events.len() as u32,
        min_time_us: events.iter().map(|e| e.time_us).min().unwrap_or(0),
        max_time_us: events.iter().map(|e| e.time_us).max().unwrap_or(0),
        frame_bytes: codec::frame_bytes(events),
        payload_len: payload.len() as u32,
        payload_crc: crc32fast::hash(payload),
        undecodable: events
            .iter()
            .filter(|e| e.flags & FLAG_UNDECODABLE != 0)
            .count() as u32,
    };
    out[start..start + BLOCK_HEADER_LEN].copy_from_slice(&header.encode());
    (header, fell_back)
}

/// Why a payload does not give back its events.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PayloadError {
    Checksum { expected: u32, found: u32 },
    Codec(codec::CodecError),
}

impl fmt::Display for PayloadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PayloadError::Checksum { expected, found } => write!(
                f,
                "block payload checksum is {found:#010x}, the header says {expected:#010x}"
            ),
            PayloadError::Codec(e) => write!(f, "block payload does not decode: {e}"),
        }
    }
}

/// The payload's checksum against the header's: checked before anything is decompressed.
fn check_payload(header: &BlockHeader, payload: &[u8]) -> Result<(), PayloadError> {
    let found = crc32fast::hash(payload);
    if found != header.payload_crc {
        return Err(PayloadError::Checksum {
            expected: header.payload_crc,
            found,
        });
    }
    Ok(())
}

/// Verifies the payload's checksum, then reads the fields at `paths` of every event (see
/// `codec::decode_columns`).
pub fn decode_payload_columns(
    header: &BlockHeader,
    payload: &[u8],
    paths: &[&[u32]],
    out: &mut codec::Columns,
) -> Result<bool, PayloadError> {
    check_payload(header, payload)?;
    codec::decode_columns(
        payload,
        header.event_count as usize,
        header.frame_bytes,
        paths,
        out,
    )
    .map_err(PayloadError::Codec)
}

/// Verifies the payload's checksum, then decodes it.
pub fn decode_payload(
    header: &BlockHeader,
    payload: &[u8],
    out: &mut Decoded,
) -> Result<(), PayloadError> {
    check_payload(header, payload)?;
    codec::decode(
        payload,
        header.event_count as usize,
        header.frame_bytes,
        out,
    )
    .map_err(PayloadError::Codec)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(frame_bytes: u64) -> BlockHeader {
        BlockHeader {
            event_count: 1,
            min_time_us: 1,
            max_time_us: 2,
            frame_bytes,
            payload_len: 0,
            payload_crc: 0,
            undecodable: 0,
        }
    }

    #[test]
    fn a_payload_expanding_past_its_headers_frame_bytes_is_damage_within_what_it_says() {
        // A million events inheriting 60 kB each: 60 GB from a few kilobytes of payload, in a
        // block whose header says the most a block holds, 128 MiB.
        let count = MAX_EVENTS as usize;
        let payload = codec::inheriting_payload(count, 60_000);
        let header = BlockHeader {
            event_count: MAX_EVENTS,
            min_time_us: 0,
            max_time_us: 0,
            frame_bytes: MAX_FRAME_BYTES,
            payload_len: payload.len() as u32,
            payload_crc: crc32fast::hash(&payload),
            undecodable: 0,
        };
        let header = BlockHeader::decode(&header.encode()).expect("a valid header");
        for prefix in [0, 4] {
            let mut decoded = Decoded::default();
            decoded.set_length_prefix(prefix);
            match decode_payload(&header, &payload, &mut decoded) {
                Err(PayloadError::Codec(e)) => assert!(e.0.contains("block header"), "{e}"),
                other => panic!("decoded: {other:?}"),
            }
            // The frames as the header gives them, their prefixes and the decoder's lookahead.
            let bound = MAX_FRAME_BYTES as usize + prefix * count + (1 << 20);
            assert!(decoded.frame_capacity() <= bound, "{prefix}");
        }
    }

    #[test]
    fn a_header_claiming_more_frame_bytes_than_a_block_holds_is_out_of_bounds() {
        let at_bound = header(MAX_FRAME_BYTES);
        assert_eq!(BlockHeader::decode(&at_bound.encode()), Ok(at_bound));
        for frame_bytes in [MAX_FRAME_BYTES + 1, u64::from(u32::MAX) + 64, u64::MAX] {
            assert_eq!(
                BlockHeader::decode(&header(frame_bytes).encode()),
                Err(HeaderError::Bounds),
                "{frame_bytes}"
            );
        }
    }
}
