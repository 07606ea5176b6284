//! The block codec: turns a batch of events (exact frames, event times, flags) into the sections of a
//! block and back, byte for byte. See FORMAT.md, "Block payload".
//!
//! Each frame is taken apart field by field at the protobuf wire level (no schema beyond which fields
//! hold nested messages). Its structure, the sequence of tags, goes to a per-block dictionary of
//! shapes; each field's value goes to a column holding that field across all events of the block, so
//! that LZ4 sees like next to like. A response inherits every value that equals the same field of its
//! query (the earlier event with the same messageId), and timeSec/timeUsec are stored relative to the
//! event time. A frame that cannot be taken apart exactly is kept whole, as an opaque frame.

use super::hash::FastMap;
use super::wire::{
    put_varint, read_canonical_varint, read_field, read_varint, unzigzag, varint_len, zigzag,
    WIRE_FIXED32, WIRE_FIXED64, WIRE_LEN, WIRE_VARINT,
};
use std::fmt;

/// Event flags, one byte per event.
pub const FLAG_UNDECODABLE: u8 = 1;
pub const FLAG_RECEIVE_TIME: u8 = 2;
/// Not checked against the schema when written (a degraded block): a reader that needs to know
/// whether the frame decodes checks it then.
pub const FLAG_UNCHECKED: u8 = 4;

/// Whether an event with these flags and this frame does not decode as a PBDNSMessage.
pub fn is_undecodable(flags: u8, frame: &[u8]) -> bool {
    flags & FLAG_UNDECODABLE != 0 || flags & FLAG_UNCHECKED != 0 && !super::schema::decodes(frame)
}

/// Section kinds of a block payload.
pub const SECTION_TIMES: u8 = 1;
pub const SECTION_FLAGS: u8 = 2;
pub const SECTION_SHAPE_IDS: u8 = 3;
pub const SECTION_SHAPES: u8 = 4;
pub const SECTION_REFS: u8 = 5;
pub const SECTION_OPAQUE: u8 = 6;
pub const SECTION_COLUMN: u8 = 7;
pub const SECTION_SUMMARY: u8 = 8;

/// Section storage.
const STORED_PLAIN: u8 = 0;
const STORED_LZ4: u8 = 1;

/// Shape entry kinds, after each tag.
const KIND_LITERAL: u8 = 0;
const KIND_INHERIT: u8 = 1;
const KIND_NESTED: u8 = 2;
/// Ends a nested message in a shape (a tag is never 0).
const SHAPE_END: u8 = 0;
/// Shape id of an opaque frame.
const OPAQUE_SHAPE: u64 = 0;

/// Bounds that keep a hostile block from allocating without limit. The raw lengths of a payload's
/// sections add up to at most this: a decode holds every section it reads decompressed at once,
/// and LZ4 expands up to 255 times, so that a bound on each alone let a payload of 256 MiB hold
/// some 64 GiB of them.
pub const MAX_SECTION_LEN: usize = 256 << 20;
/// The most entries (a tag with its kind, or a 0 ending a nested message) the shapes of a block
/// hold in all, whatever its frame bytes: the tables compiled from them take under 100 bytes an
/// entry. A block written from its frames holds no more entries than frame bytes (each entry but
/// an end stands for a tag and a byte of its frame at least, an end for none but after a start
/// that took two), so this binds only blocks of over 2 MiB of frames.
pub const MAX_SHAPE_ENTRIES: usize = 1 << 21;
const MAX_SECTIONS: usize = 4096;
const MAX_NODES: usize = 2048;
const MAX_DEPTH: usize = 8;

const ROOT: u16 = 0;
const TAG_MESSAGE_ID: u32 = 2 << 3 | 2;
const TAG_TIME_SEC: u32 = 9 << 3;
const TAG_TIME_USEC: u32 = 10 << 3;

/// One event handed to the encoder.
#[derive(Clone, Copy, Debug)]
pub struct Event<'a> {
    pub frame: &'a [u8],
    pub time_us: u64,
    pub flags: u8,
}

/// What is wrong with a block payload that passed its checksum but does not decode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodecError(pub String);

impl fmt::Display for CodecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn bad<T>(what: impl Into<String>) -> Result<T, CodecError> {
    Err(CodecError(what.into()))
}

/// Which fields hold nested messages that are worth taking apart: PBDNSMessage's question (12),
/// response (13), meta (22) and trace (23), the response's records (13.2) and a meta's value (22.2).
fn holds_message(parent_path: &[u32], tag: u32) -> bool {
    matches!(
        (parent_path, tag),
        ([], 98 | 106 | 178 | 186) | ([106], 18) | ([178], 18)
    )
}

/// What the encoder knows about each field path seen in this block.
struct Node {
    path: Vec<u32>,
    holds_message: bool,
    column: Vec<u8>,
    prev: u64,
}

#[derive(Clone, Copy)]
enum Tok {
    Leaf { node: u16, start: u32, end: u32 },
    Begin { node: u16 },
    End,
}

#[derive(Clone, Copy)]
struct Leaf {
    node: u16,
    start: u32,
    end: u32,
    /// The next leaf of the same node in the same event (`NO_LEAF` if none).
    next: u32,
}

const NO_LEAF: u32 = u32::MAX;

/// Encodes blocks; keeps its buffers between blocks.
#[derive(Default)]
pub struct Encoder {
    nodes: Vec<Node>,
    /// (parent node, tag) to node id, for tags below 256 (field numbers below 32).
    small: Vec<u16>,
    large: FastMap<(u16, u32), u16>,
    toks: Vec<Tok>,
    leaves: Vec<Leaf>,
    event_leaves: Vec<(u32, u32)>,
    occ: Vec<u16>,
    /// The occurrence number of each leaf of the event being encoded.
    occs: Vec<u16>,
    /// Per node: the last leaf of the event being taken apart.
    last: Vec<u32>,
    /// Per node: (generation, first leaf) of the reference event being compared with.
    first: Vec<(u32, u32)>,
    generation: u32,
    shape: Vec<u8>,
    scratch: Vec<u8>,
    /// The opaque section (and times) of `encode_opaque`, kept: a megabyte a block otherwise.
    opaque: Vec<u8>,
    times: Vec<u8>,
    verify: Option<Box<Decoded>>,
}

impl Encoder {
    pub fn new() -> Self {
        Encoder::default()
    }

    /// Encodes `events` into a block payload appended to `out`. The result is decoded again and
    /// compared with the input; should that ever differ, the block is written with every frame
    /// opaque instead, and `true` is returned.
    pub fn encode(&mut self, events: &[Event], summary: &[u8], out: &mut Vec<u8>) -> bool {
        let start = out.len();
        self.encode_columns(events, summary, out);
        let mut check = self.verify.take().unwrap_or_default();
        let same = decode(&out[start..], events.len(), frame_bytes(events), &mut check).is_ok()
            && check.len() == events.len()
            && events.iter().enumerate().all(|(i, e)| {
                check.frame(i) == e.frame
                    && check.times[i] == e.time_us
                    && check.flags[i] == e.flags
            });
        self.verify = Some(check);
        if !same {
            out.truncate(start);
            self.encode_opaque(events, summary, out);
        }
        !same
    }

    fn reset(&mut self) {
        self.nodes.clear();
        self.nodes.push(Node {
            path: Vec::new(),
            holds_message: true,
            column: Vec::new(),
            prev: 0,
        });
        self.small.clear();
        self.large.clear();
        self.leaves.clear();
        self.event_leaves.clear();
    }

    fn node(&mut self, parent: u16, tag: u32) -> Option<u16> {
        let slot = (tag < 256).then(|| usize::from(parent) * 256 + tag as usize);
        if let Some(slot) = slot {
            if let Some(&id) = self.small.get(slot).filter(|&&id| id != 0) {
                return Some(id);
            }
        } else if let Some(&id) = self.large.get(&(parent, tag)) {
            return Some(id);
        }
        if self.nodes.len() >= MAX_NODES {
            return None;
        }
        let id = self.nodes.len() as u16;
        let parent_node = &self.nodes[usize::from(parent)];
        let mut path = parent_node.path.clone();
        let holds = parent_node.holds_message && holds_message(&path, tag);
        path.push(tag);
        self.nodes.push(Node {
            path,
            holds_message: holds,
            column: Vec::new(),
            prev: 0,
        });
        match slot {
            Some(slot) => {
                if self.small.len() <= slot {
                    self.small.resize((usize::from(parent) + 1) * 256, 0);
                }
                self.small[slot] = id;
            }
            None => {
                self.large.insert((parent, tag), id);
            }
        }
        Some(id)
    }

    /// Splits `frame[start..end]` into tokens; false if it is not a message that can be rebuilt
    /// byte for byte.
    fn tokenize(
        &mut self,
        frame: &[u8],
        start: usize,
        end: usize,
        parent: u16,
        depth: usize,
    ) -> bool {
        let Some(bytes) = frame.get(..end) else {
            return false;
        };
        let mut pos = start;
        while pos < end {
            let Some(field) = read_field(bytes, &mut pos, true) else {
                return false;
            };
            let Some(node) = self.node(parent, field.tag) else {
                return false;
            };
            if field.wire_type() == WIRE_LEN
                && depth < MAX_DEPTH
                && self.nodes[usize::from(node)].holds_message
            {
                let mark = self.toks.len();
                self.toks.push(Tok::Begin { node });
                if self.tokenize(frame, field.value_start, field.value_end, node, depth + 1) {
                    self.toks.push(Tok::End);
                    continue;
                }
                self.toks.truncate(mark);
            }
            self.toks.push(Tok::Leaf {
                node,
                start: field.value_start as u32,
                end: field.value_end as u32,
            });
        }
        true
    }

    fn encode_columns(&mut self, events: &[Event], summary: &[u8], out: &mut Vec<u8>) {
        self.reset();
        let mut times = Vec::with_capacity(events.len() * 3);
        let mut flags = Vec::with_capacity(events.len());
        let mut shape_ids = Vec::with_capacity(events.len() * 2);
        let mut refs = Vec::with_capacity(events.len() * 2);
        let mut opaque = Vec::new();
        let mut shapes: FastMap<Vec<u8>, u64> =
            FastMap::with_capacity_and_hasher(256, Default::default());
        let mut shape_list: Vec<u8> = Vec::new();
        // Sized for the block up front: growing them cost more than filling them.
        let mut by_id: FastMap<&[u8], u32> =
            FastMap::with_capacity_and_hasher(events.len(), Default::default());
        let mut prev_time = 0u64;

        for (index, event) in events.iter().enumerate() {
            put_varint(
                &mut times,
                zigzag(event.time_us.wrapping_sub(prev_time) as i64),
            );
            prev_time = event.time_us;
            flags.push(event.flags);
            let frame = event.frame;
            self.toks.clear();
            let leaves_start = self.leaves.len() as u32;
            if frame.len() > u32::MAX as usize || !self.tokenize(frame, 0, frame.len(), ROOT, 0) {
                put_varint(&mut shape_ids, OPAQUE_SHAPE);
                put_varint(&mut refs, 0);
                put_varint(&mut opaque, frame.len() as u64);
                opaque.extend_from_slice(frame);
                self.event_leaves.push((leaves_start, leaves_start));
                continue;
            }

            // Number the occurrences of each field, link them, and find the messageId.
            self.occ.resize(self.nodes.len(), 0);
            self.last.resize(self.nodes.len(), NO_LEAF);
            self.first.resize(self.nodes.len(), (0, NO_LEAF));
            let mut message_id = None;
            let mut occs = std::mem::take(&mut self.occs);
            occs.clear();
            for tok in &self.toks {
                if let Tok::Leaf { node, start, end } = *tok {
                    let n = usize::from(node);
                    let index = self.leaves.len() as u32;
                    if self.occ[n] > 0 {
                        self.leaves[self.last[n] as usize].next = index;
                    }
                    self.last[n] = index;
                    occs.push(self.occ[n]);
                    // Past 65,535 of one field the count wraps: the check of the block catches
                    // what that breaks.
                    self.occ[n] = self.occ[n].wrapping_add(1);
                    self.leaves.push(Leaf {
                        node,
                        start,
                        end,
                        next: NO_LEAF,
                    });
                    if message_id.is_none() && self.nodes[n].path == [TAG_MESSAGE_ID] {
                        message_id = Some(&frame[start as usize..end as usize]);
                    }
                }
            }
            let leaves_end = self.leaves.len() as u32;
            for leaf in &self.leaves[leaves_start as usize..] {
                self.occ[usize::from(leaf.node)] = 0;
            }
            self.event_leaves.push((leaves_start, leaves_end));
            let reference = message_id.and_then(|id| by_id.insert(id, index as u32));
            put_varint(
                &mut refs,
                reference.map_or(0, |r| index as u64 - u64::from(r)),
            );

            // Where the reference's first leaf of each node is.
            if let Some(r) = reference {
                self.generation = self.generation.wrapping_add(1);
                let (rs, re) = self.event_leaves[r as usize];
                for i in (rs..re).rev() {
                    self.first[usize::from(self.leaves[i as usize].node)] = (self.generation, i);
                }
            }

            // The shape, and each value either inherited or written to its column.
            self.shape.clear();
            let mut leaf_index = leaves_start as usize;
            for tok in &self.toks {
                match *tok {
                    Tok::Begin { node } => {
                        put_varint(
                            &mut self.shape,
                            u64::from(*self.nodes[usize::from(node)].path.last().unwrap_or(&0)),
                        );
                        self.shape.push(KIND_NESTED);
                    }
                    Tok::End => self.shape.push(SHAPE_END),
                    Tok::Leaf { .. } => {
                        let leaf = self.leaves[leaf_index];
                        leaf_index += 1;
                        let value = &frame[leaf.start as usize..leaf.end as usize];
                        let node = &mut self.nodes[usize::from(leaf.node)];
                        let tag = *node.path.last().unwrap_or(&0);
                        put_varint(&mut self.shape, u64::from(tag));
                        let time_base = time_base(&node.path, event.time_us);
                        let occ = occs[leaf_index - leaves_start as usize - 1];
                        let inherited = time_base.is_none()
                            && reference.is_some_and(|r| {
                                let (generation, mut i) = self.first[usize::from(leaf.node)];
                                if generation != self.generation {
                                    return false;
                                }
                                for _ in 0..occ {
                                    if i == NO_LEAF {
                                        break;
                                    }
                                    i = self.leaves[i as usize].next;
                                }
                                i != NO_LEAF
                                    && events[r as usize].frame.get(
                                        self.leaves[i as usize].start as usize
                                            ..self.leaves[i as usize].end as usize,
                                    ) == Some(value)
                            });
                        if inherited {
                            self.shape.push(KIND_INHERIT);
                            continue;
                        }
                        self.shape.push(KIND_LITERAL);
                        match (tag & 7) as u8 {
                            WIRE_VARINT => {
                                let mut p = 0;
                                let v = read_varint(value, &mut p).unwrap_or(0);
                                let base = time_base.unwrap_or(node.prev);
                                put_varint(&mut node.column, zigzag(v.wrapping_sub(base) as i64));
                                if time_base.is_none() {
                                    node.prev = v;
                                }
                            }
                            WIRE_LEN => {
                                put_varint(&mut node.column, value.len() as u64);
                                node.column.extend_from_slice(value);
                            }
                            _ => node.column.extend_from_slice(value),
                        }
                    }
                }
            }
            self.occs = occs;
            let id = match shapes.get(self.shape.as_slice()) {
                Some(&id) => id,
                None => {
                    let id = shapes.len() as u64 + 1;
                    shapes.insert(self.shape.clone(), id);
                    put_varint(&mut shape_list, self.shape.len() as u64);
                    shape_list.extend_from_slice(&self.shape);
                    id
                }
            };
            put_varint(&mut shape_ids, id);
        }

        let mut shapes_section = Vec::with_capacity(shape_list.len() + 5);
        put_varint(&mut shapes_section, shapes.len() as u64);
        shapes_section.extend_from_slice(&shape_list);

        let mut sections = Sections::new(out, summary);
        sections.add(SECTION_TIMES, &[], &times, &mut self.scratch);
        sections.add(SECTION_FLAGS, &[], &flags, &mut self.scratch);
        sections.add(SECTION_SHAPE_IDS, &[], &shape_ids, &mut self.scratch);
        sections.add(SECTION_SHAPES, &[], &shapes_section, &mut self.scratch);
        sections.add(SECTION_REFS, &[], &refs, &mut self.scratch);
        if !opaque.is_empty() {
            sections.add(SECTION_OPAQUE, &[], &opaque, &mut self.scratch);
        }
        let mut key = Vec::new();
        for node in self.nodes.iter().filter(|n| !n.column.is_empty()) {
            key.clear();
            for &tag in &node.path {
                put_varint(&mut key, u64::from(tag));
            }
            sections.add(SECTION_COLUMN, &key, &node.column, &mut self.scratch);
        }
        sections.finish();
    }

    /// Every frame opaque: the fallback that cannot fail to round-trip, and the cheap form of a
    /// block (no frame is taken apart, so there is nothing to check).
    pub fn encode_opaque(&mut self, events: &[Event], summary: &[u8], out: &mut Vec<u8>) {
        let (mut times, mut opaque) = (
            std::mem::take(&mut self.times),
            std::mem::take(&mut self.opaque),
        );
        times.clear();
        opaque.clear();
        let mut prev_time = 0u64;
        for event in events {
            put_varint(
                &mut times,
                zigzag(event.time_us.wrapping_sub(prev_time) as i64),
            );
            prev_time = event.time_us;
            put_varint(&mut opaque, event.frame.len() as u64);
            opaque.extend_from_slice(event.frame);
        }
        let flags: Vec<u8> = events.iter().map(|e| e.flags).collect();
        let mut sections = Sections::new(out, summary);
        sections.add(SECTION_TIMES, &[], &times, &mut self.scratch);
        sections.add(SECTION_FLAGS, &[], &flags, &mut self.scratch);
        sections.add(
            SECTION_SHAPE_IDS,
            &[],
            &vec![0; events.len()],
            &mut self.scratch,
        );
        sections.add(SECTION_SHAPES, &[], &[0], &mut self.scratch);
        sections.add(SECTION_REFS, &[], &vec![0; events.len()], &mut self.scratch);
        sections.add(SECTION_OPAQUE, &[], &opaque, &mut self.scratch);
        sections.finish();
        (self.times, self.opaque) = (times, opaque);
    }
}

/// timeSec and timeUsec at the top level are stored relative to the event time.
fn time_base(path: &[u32], time_us: u64) -> Option<u64> {
    match path {
        [TAG_TIME_SEC] => Some(time_us / 1_000_000),
        [TAG_TIME_USEC] => Some(time_us % 1_000_000),
        _ => None,
    }
}

/// Writes the section directory and bodies: `count: u16`, then per section `kind: u8, storage: u8,
/// key_len: u8, key, raw_len: u32, stored_len: u32`, then the bodies in the same order.
struct Sections<'a> {
    out: &'a mut Vec<u8>,
    directory: Vec<u8>,
    bodies: Vec<u8>,
    count: u16,
}

impl<'a> Sections<'a> {
    /// Starts a payload; a non-empty summary is its first section, stored plain, so that a
    /// reader finds it at a fixed place without reading the rest.
    fn new(out: &'a mut Vec<u8>, summary: &[u8]) -> Self {
        let mut sections = Sections {
            out,
            directory: Vec::new(),
            bodies: Vec::new(),
            count: 0,
        };
        if !summary.is_empty() {
            sections.add_plain(SECTION_SUMMARY, summary);
        }
        sections
    }

    fn add_plain(&mut self, kind: u8, raw: &[u8]) {
        self.directory.extend_from_slice(&[kind, STORED_PLAIN, 0]);
        self.directory
            .extend_from_slice(&(raw.len() as u32).to_le_bytes());
        self.directory
            .extend_from_slice(&(raw.len() as u32).to_le_bytes());
        self.bodies.extend_from_slice(raw);
        self.count += 1;
    }

    fn add(&mut self, kind: u8, key: &[u8], raw: &[u8], scratch: &mut Vec<u8>) {
        // The scratch only grows, so that it is not zeroed again for every section.
        let room = lz4_flex::block::get_maximum_output_size(raw.len());
        if scratch.len() < room {
            scratch.resize(room, 0);
        }
        let compressed =
            lz4_flex::block::compress_into(raw, &mut scratch[..room]).unwrap_or(usize::MAX);
        let (storage, body) = if compressed < raw.len() {
            (STORED_LZ4, &scratch[..compressed])
        } else {
            (STORED_PLAIN, raw)
        };
        self.directory
            .extend_from_slice(&[kind, storage, key.len() as u8]);
        self.directory.extend_from_slice(key);
        self.directory
            .extend_from_slice(&(raw.len() as u32).to_le_bytes());
        self.directory
            .extend_from_slice(&(body.len() as u32).to_le_bytes());
        self.bodies.extend_from_slice(body);
        self.count += 1;
    }

    fn finish(self) {
        self.out.extend_from_slice(&self.count.to_le_bytes());
        self.out.extend_from_slice(&self.directory);
        self.out.extend_from_slice(&self.bodies);
    }
}

/// One entry of a block's section directory.
#[derive(Clone, Copy, Debug)]
pub struct Section<'a> {
    pub kind: u8,
    pub key: &'a [u8],
    stored_lz4: bool,
    raw_len: usize,
    body: &'a [u8],
}

impl Section<'_> {
    /// The section's bytes, decompressed into `buf`.
    pub fn read_into(&self, buf: &mut Vec<u8>) -> Result<(), CodecError> {
        if !self.stored_lz4 {
            buf.clear();
            buf.extend_from_slice(self.body);
            return Ok(());
        }
        // Only growth is zeroed: the decompressor overwrites every byte it reports, and a short
        // count is an error below.
        if buf.len() < self.raw_len {
            buf.resize(self.raw_len, 0);
        }
        buf.truncate(self.raw_len);
        match lz4_flex::block::decompress_into(self.body, buf) {
            Ok(n) if n == self.raw_len => Ok(()),
            Ok(n) => bad(format!(
                "section of kind {} decompressed to {n} bytes, expected {}",
                self.kind, self.raw_len
            )),
            Err(e) => bad(format!(
                "section of kind {} does not decompress: {e}",
                self.kind
            )),
        }
    }
}

/// Parses the section directory of a block payload.
pub fn sections(payload: &[u8]) -> Result<Vec<Section<'_>>, CodecError> {
    let count = match payload.get(..2) {
        Some(b) => usize::from(u16::from_le_bytes([b[0], b[1]])),
        None => return bad("payload shorter than its section count"),
    };
    if count > MAX_SECTIONS {
        return bad(format!("{count} sections, more than {MAX_SECTIONS}"));
    }
    let mut pos = 2;
    let mut entries = Vec::with_capacity(count);
    let mut raw_total = 0usize;
    for _ in 0..count {
        let Some(&[kind, storage, key_len]) = payload.get(pos..pos + 3) else {
            return bad("section directory runs past the payload");
        };
        pos += 3;
        let Some(key) = payload.get(pos..pos + usize::from(key_len)) else {
            return bad("section key runs past the payload");
        };
        pos += usize::from(key_len);
        let Some(lens) = payload.get(pos..pos + 8) else {
            return bad("section lengths run past the payload");
        };
        let raw_len = u32::from_le_bytes([lens[0], lens[1], lens[2], lens[3]]) as usize;
        let stored_len = u32::from_le_bytes([lens[4], lens[5], lens[6], lens[7]]) as usize;
        pos += 8;
        if storage > STORED_LZ4 || (storage == STORED_PLAIN && raw_len != stored_len) {
            return bad(format!("section of kind {kind} has storage {storage}, raw length {raw_len}, stored length {stored_len}"));
        }
        raw_total += raw_len;
        if raw_total > MAX_SECTION_LEN {
            return bad(format!(
                "the sections' raw lengths add up to more than {MAX_SECTION_LEN} bytes"
            ));
        }
        entries.push((kind, storage == STORED_LZ4, key, raw_len, stored_len));
    }
    let mut out = Vec::with_capacity(count);
    for (kind, stored_lz4, key, raw_len, stored_len) in entries {
        let Some(body) = payload.get(pos..pos + stored_len) else {
            return bad(format!("section of kind {kind} runs past the payload"));
        };
        pos += stored_len;
        out.push(Section {
            kind,
            key,
            stored_lz4,
            raw_len,
            body,
        });
    }
    if pos != payload.len() {
        return bad(format!(
            "{} bytes after the last section",
            payload.len() - pos
        ));
    }
    Ok(out)
}

/// What the frames of `events` come to, length prefixes excluded: a block header's frame bytes.
pub fn frame_bytes(events: &[Event]) -> u64 {
    events.iter().map(|e| e.frame.len() as u64).sum()
}

/// A decoded block: every event's exact frame, time and flags. With a length prefix
/// (`set_length_prefix`), each frame is rebuilt after its length as a big-endian prefix of that
/// width, the layout of a framed stream, so that a caller printing one writes whole runs of events
/// at once (`framed`) rather than copying each frame.
#[derive(Default, Debug)]
pub struct Decoded {
    /// The frames, back to back, in `frames[..end of the last]`; the bytes after that are room the
    /// decoder writes ahead into (see `room`).
    frames: Vec<u8>,
    /// Where each event's frame ends in `frames`.
    ends: Vec<u32>,
    pub times: Vec<u64>,
    pub flags: Vec<u8>,
    /// Width of the length prefix before each frame: 0, 2 or 4 bytes.
    prefix: u8,
    /// Whether some frame is longer than its prefix can say (its prefix is then wrong).
    oversized: bool,
    buf: Vec<u8>,
    columns: Vec<Column>,
    opaque: Vec<u8>,
    /// Where each value of each rebuilt event lies in `frames`, its tag included, for the events
    /// that inherit it.
    leaves: Vec<(u32, u32)>,
    event_leaves: Vec<u32>,
    event_shapes: Vec<u32>,
}

impl Decoded {
    pub fn len(&self) -> usize {
        self.ends.len()
    }
    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }
    pub fn frame(&self, i: usize) -> &[u8] {
        let start = if i == 0 { 0 } else { self.ends[i - 1] as usize };
        &self.frames[start + usize::from(self.prefix)..self.ends[i] as usize]
    }

    /// Rebuilds each frame after a big-endian length prefix of `width` bytes (2 or 4; 0 for none)
    /// from the next decode on.
    pub fn set_length_prefix(&mut self, width: usize) {
        self.prefix = match width {
            2 => 2,
            4 => 4,
            _ => 0,
        };
    }

    /// Events `first..end` as one run of bytes, each frame after its length prefix. `None` when
    /// some frame of the block is too long for the prefix: the caller then takes the frames one by
    /// one (`frame`) and says which.
    pub fn framed(&self, first: usize, end: usize) -> Option<&[u8]> {
        if self.oversized || first >= end {
            return None;
        }
        let start = if first == 0 {
            0
        } else {
            *self.ends.get(first - 1)? as usize
        };
        self.frames.get(start..*self.ends.get(end - 1)? as usize)
    }

    /// The bytes set aside for frames: the most a decode has allocated for them.
    #[cfg(test)]
    pub(crate) fn frame_capacity(&self) -> usize {
        self.frames.capacity()
    }

    /// Makes room for a block of `frame_bytes` bytes of frames in `events` events (the figures of
    /// its header), so that the frames are not moved as they grow. A hint only, and bounded (the
    /// header is not covered by the payload's checksum): the decoder checks room itself.
    fn reserve_frames(&mut self, frame_bytes: usize, events: usize) {
        let want = frame_bytes
            .saturating_add(events.saturating_mul(usize::from(self.prefix)))
            .saturating_add(ROOM)
            .min(MAX_RESERVE);
        if self.frames.len() < want {
            self.frames.reserve_exact(want - self.frames.len());
            self.frames.resize(want, 0);
        }
    }
}

#[derive(Default, Debug)]
struct Column {
    key: Vec<u32>,
    data: Vec<u8>,
    pos: usize,
    prev: u64,
    /// 1 for the top-level timeSec, 2 for timeUsec, 0 otherwise.
    time: u8,
}

impl Column {
    #[inline(always)]
    fn varint(&mut self) -> Option<u64> {
        varint_at(&self.data, &mut self.pos)
    }
}

/// What one step of rebuilding a frame does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum OpKind {
    Begin,
    End,
    Varint,
    TimeSec,
    TimeUsec,
    Bytes,
    Fixed32,
    Fixed64,
    Inherit,
    /// Inherited values that lie back to back in the reference: one copy (see `Pairs`).
    Copy,
    /// Makes room for the fixed-size steps that follow, in a shape too long for one room check
    /// (see `MAX_LOOKAHEAD`).
    Room,
}

/// One step of rebuilding a frame. `record` says whether some event of the block inherits this
/// value, so its place must be remembered.
#[derive(Clone, Copy, Debug)]
struct Op {
    kind: OpKind,
    record: bool,
    tag_len: u8,
    /// The tag's varint bytes in the low `tag_len` bytes, little-endian: written as one 8-byte
    /// store (the room after the frame takes the rest).
    tag: u64,
    /// The column of a literal, the slot of an inherited value.
    arg: u32,
}

impl Op {
    fn new(kind: OpKind, tag: u32, arg: u32) -> Op {
        let mut bytes = Vec::with_capacity(5);
        put_varint(&mut bytes, u64::from(tag));
        let mut le = [0u8; 8];
        le[..bytes.len()].copy_from_slice(&bytes);
        Op {
            kind,
            record: false,
            tag_len: bytes.len() as u8,
            tag: u64::from_le_bytes(le),
            arg,
        }
    }
}

/// The shapes of a block, compiled: each shape's operations, and where each value some event
/// inherits lies among the values a shape records. Every table is linear in the shapes and their
/// entries, which `compile_shapes` bounds.
#[derive(Default)]
struct Programs {
    ops: Vec<Op>,
    ranges: Vec<(u32, u32)>,
    /// Per shape, the most bytes its fixed-size steps write (values of variable length aside).
    bounds: Vec<usize>,
    /// (shape, slot) to the place of the slot's value among the values the shape records, for
    /// the slots some event inherits. A map rather than a shapes × slots table, which a few
    /// hostile shapes of many fields would make quadratic.
    slot_pos: FastMap<(u32, u32), u16>,
    /// Per shape, its leaves in order: (column, occurrence, inherited).
    leaves: Vec<Vec<(u32, u16, bool)>>,
    /// Per shape, the place among its operations of each value it records.
    recorded_ops: Vec<Vec<u32>>,
}

impl Programs {
    /// Where the value of `slot` lies among the values `shape` records, if it records it.
    fn recorded_at(&self, shape: u32, slot: u32) -> Option<usize> {
        self.slot_pos.get(&(shape, slot)).map(|&p| usize::from(p))
    }

    /// About the bytes the tables take.
    #[cfg(test)]
    fn table_bytes(&self) -> usize {
        use std::mem::size_of;
        self.ops.capacity() * size_of::<Op>()
            + self.ranges.capacity() * 8
            + self.bounds.capacity() * 8
            + self.slot_pos.capacity() * (size_of::<((u32, u32), u16)>() + 1)
            + self.leaves.capacity() * 24
            + self.leaves.iter().map(|l| l.capacity() * 8).sum::<usize>()
            + self.recorded_ops.capacity() * 24
            + self
                .recorded_ops
                .iter()
                .map(|r| r.capacity() * 4)
                .sum::<usize>()
    }
}

/// The operations of a shape specialised for the shape of the event it inherits from: each run of
/// inherited values that lie back to back in the reference (consecutive steps of its shape, so
/// consecutive bytes of its frame) becomes one `Copy` of those bytes, tags included, with the
/// reference's leaves found at compile time rather than per value. A response inherits most of
/// its query this way in a few copies.
#[derive(Default)]
struct Pairs {
    ops: Vec<Op>,
    /// (shape, reference's shape) to its operations in `ops`.
    map: FastMap<(u32, u32), (u32, u32)>,
    /// Per shape, the last pair used: (reference's shape, operations).
    last: Vec<(u32, (u32, u32))>,
}

/// How many operations the specialised shapes of a block may hold, as a multiple of the block's
/// own and at most: past it (a hostile block pairing every shape with every other), events go the
/// general way.
const MAX_PAIR_OPS_FACTOR: usize = 8;
const MAX_PAIR_OPS: usize = 1 << 20;

impl Pairs {
    /// The operations for an event of `shape` inheriting from one of `theirs`, or `None` to use
    /// the shape's own.
    fn program(&mut self, programs: &Programs, shape: u32, theirs: u32) -> Option<(u32, u32)> {
        if let Some(&(t, range)) = self.last.get(shape as usize) {
            if t == theirs {
                return Some(range);
            }
        }
        let range = match self.map.get(&(shape, theirs)) {
            Some(&range) => range,
            None => {
                let range = self.compile(programs, shape, theirs)?;
                self.map.insert((shape, theirs), range);
                range
            }
        };
        if self.last.len() < programs.ranges.len() {
            self.last.resize(programs.ranges.len(), (u32::MAX, (0, 0)));
        }
        if let Some(last) = self.last.get_mut(shape as usize) {
            *last = (theirs, range);
        }
        Some(range)
    }

    fn compile(&mut self, programs: &Programs, shape: u32, theirs: u32) -> Option<(u32, u32)> {
        let &(start, end) = programs.ranges.get(shape as usize)?;
        let ops = programs.ops.get(start as usize..end as usize)?;
        let most = (programs.ops.len() * MAX_PAIR_OPS_FACTOR + 4096).min(MAX_PAIR_OPS);
        if self.ops.len() + ops.len() > most {
            return None;
        }
        let their_ops = programs.recorded_ops.get(theirs as usize)?;
        let first = self.ops.len() as u32;
        let mut i = 0;
        while let Some(&op) = ops.get(i) {
            let recorded_at = match op.kind {
                OpKind::Inherit => programs.recorded_at(theirs, op.arg),
                _ => None,
            };
            let p = match recorded_at {
                Some(p) => p,
                // Not inherited, or not there to inherit (an error when it runs).
                None => {
                    self.ops.push(op);
                    i += 1;
                    continue;
                }
            };
            // The run: values recorded one after the other in the reference, by steps that
            // follow each other in its shape.
            let mut k = 1;
            let mut recorded = u64::from(op.record);
            while let Some(next) = ops.get(i + k) {
                let adjacent = next.kind == OpKind::Inherit
                    && k < 32
                    && programs.recorded_at(theirs, next.arg) == Some(p + k)
                    && matches!(
                        (their_ops.get(p + k - 1), their_ops.get(p + k)),
                        (Some(&a), Some(&b)) if b == a + 1
                    );
                if !adjacent {
                    break;
                }
                recorded |= u64::from(next.record) << k;
                k += 1;
            }
            self.ops.push(Op {
                kind: OpKind::Copy,
                record: false,
                tag_len: 0,
                tag: recorded | (k as u64) << 32,
                arg: p as u32,
            });
            i += k;
        }
        Some((first, self.ops.len() as u32))
    }
}

/// A cursor over a section's bytes.
struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
    what: &'static str,
}

impl<'a> Reader<'a> {
    fn new(data: &'a [u8], what: &'static str) -> Reader<'a> {
        Reader { data, pos: 0, what }
    }

    #[inline]
    fn varint(&mut self) -> Result<u64, CodecError> {
        varint_at(self.data, &mut self.pos).ok_or_else(|| {
            CodecError(format!(
                "{} section ends early or holds a bad varint",
                self.what
            ))
        })
    }
}

#[inline(always)]
fn varint_at(data: &[u8], pos: &mut usize) -> Option<u64> {
    if let Some(&b) = data.get(*pos) {
        if b < 0x80 {
            *pos += 1;
            return Some(u64::from(b));
        }
        if let Some(&b1) = data.get(*pos + 1) {
            if b1 < 0x80 {
                *pos += 2;
                return Some(u64::from(b & 0x7f) | u64::from(b1) << 7);
            }
        }
    }
    read_varint(data, pos)
}

fn column_error<T>() -> Result<T, CodecError> {
    bad("a column ends early or holds a bad varint")
}

/// The most one fixed-size step writes past its start (an 8-byte tag store, or a tag of up to 5
/// bytes and a varint of up to 10), and the room kept after every frame being rebuilt, so that
/// such steps and the short copies below write whole words and need no room check of their own.
const ROOM: usize = 64;
/// The most `reserve_frames` sets aside: blocks hold a megabyte or two of frames; a larger one grows.
const MAX_RESERVE: usize = 16 << 20;
/// Past this, a decode that needed less than half of a buffer gives the rest back.
const KEEP_BYTES: usize = 32 << 20;

/// Gives back the memory of a buffer that an earlier block (a hostile one, say) grew far past
/// what this one used, so that a long-running reader does not keep it.
pub(crate) fn give_back<T>(v: &mut Vec<T>) {
    if v.capacity() * std::mem::size_of::<T>() > KEEP_BYTES && v.capacity() > 2 * v.len() {
        v.shrink_to_fit();
    }
}

/// The most room a shape's fixed-size steps ask for at once: a longer shape asks again on the way
/// (`OpKind::Room`). Bounds how far past the frames themselves a decode looks ahead, so that the
/// frame buffer never grows much past what the block header says.
const MAX_LOOKAHEAD: usize = 64 << 10;
/// How far past the header's figure for the frames the frame buffer may reach: a room check asks
/// for at most `MAX_LOOKAHEAD` and `ROOM` past bytes it is sure to write, and `ROOM` is kept spare.
const LOOKAHEAD_SLACK: usize = MAX_LOOKAHEAD + 2 * ROOM;

/// Makes `frames[pos..pos + n]` exist, `frames` never growing past `cap`. `pos` never passes
/// `frames.len()`.
#[inline(always)]
fn room(frames: &mut Vec<u8>, pos: usize, n: usize, cap: usize) -> Result<(), CodecError> {
    if frames.len() - pos < n {
        return grow(frames, pos, n, cap);
    }
    Ok(())
}

/// The frame buffer's only growth, and so where a block that rebuilds to more than its header
/// says is stopped: before it is allocated, however far its references would expand it.
#[cold]
#[inline(never)]
fn grow(frames: &mut Vec<u8>, pos: usize, n: usize, cap: usize) -> Result<(), CodecError> {
    let need = pos.saturating_add(n);
    if need > cap {
        return bad(format!(
            "the frames rebuild to more than the {} bytes the block header gives",
            cap.saturating_sub(LOOKAHEAD_SLACK)
        ));
    }
    let len = need
        .max(frames.len().saturating_mul(2))
        .max(1 << 16)
        .min(cap);
    frames.reserve_exact(len - frames.len());
    frames.resize(len, 0);
    Ok(())
}

/// Writes `v` as a varint at `*pos`; `frames` has 10 bytes there.
#[inline(always)]
fn put_varint_at(frames: &mut [u8], pos: &mut usize, mut v: u64) {
    let out = &mut frames[*pos..*pos + 10];
    let mut i = 0;
    while v >= 0x80 && i < 9 {
        out[i] = v as u8 | 0x80;
        v >>= 7;
        i += 1;
    }
    out[i] = v as u8;
    *pos += i + 1;
}

/// Writes the op's tag, then `v` as a varint; `frames` has `ROOM` bytes at `*pos`. A value of one
/// or two varint bytes goes into the same 8-byte word as the tag (which takes at most 5).
#[inline(always)]
fn put_tagged_varint(frames: &mut [u8], pos: &mut usize, op: &Op, v: u64) {
    let t = usize::from(op.tag_len) & 7;
    let (value, len) = if v < 0x80 {
        (v, 1)
    } else if v < 1 << 14 {
        (v & 0x7f | 0x80 | (v >> 7) << 8, 2)
    } else {
        frames[*pos..*pos + 8].copy_from_slice(&op.tag.to_le_bytes());
        *pos += t;
        put_varint_at(frames, pos, v);
        return;
    };
    let word = op.tag | value << (8 * t.min(6));
    frames[*pos..*pos + 8].copy_from_slice(&word.to_le_bytes());
    *pos += t + len;
}

/// Copies `n` bytes from `src` (which may hold more) to `frames[pos..]`, which has `n + ROOM`
/// bytes: a value of up to 64 bytes as one fixed-size move where `src` has the bytes to spare.
#[inline(always)]
fn put_bytes(frames: &mut [u8], pos: usize, src: &[u8], n: usize) {
    match (
        src.first_chunk::<16>(),
        src.first_chunk::<32>(),
        src.first_chunk::<64>(),
    ) {
        (Some(word), _, _) if n <= 16 => frames[pos..pos + 16].copy_from_slice(word),
        (_, Some(word), _) if n <= 32 => frames[pos..pos + 32].copy_from_slice(word),
        (_, _, Some(word)) if n <= 64 => frames[pos..pos + 64].copy_from_slice(word),
        _ => frames[pos..pos + n].copy_from_slice(&src[..n]),
    }
}

/// Copies `frames[s..s + n]` to `pos`, where `s + n <= pos` and `frames` has `n + ROOM` bytes
/// after `pos`: a value of up to 64 bytes as one fixed-size move through registers (all of it read
/// before any is written, so bytes read past `s + n` do no harm and are overwritten later).
#[inline(always)]
fn copy_back(frames: &mut [u8], s: usize, n: usize, pos: usize) {
    if n <= 16 {
        let word: [u8; 16] = frames[s..s + 16].try_into().unwrap_or_default();
        frames[pos..pos + 16].copy_from_slice(&word);
    } else if n <= 32 {
        let word: [u8; 32] = frames[s..s + 32].try_into().unwrap_or_default();
        frames[pos..pos + 32].copy_from_slice(&word);
    } else if n <= 64 {
        let word: [u8; 64] = frames[s..s + 64].try_into().unwrap_or([0; 64]);
        frames[pos..pos + 64].copy_from_slice(&word);
    } else {
        frames.copy_within(s..s + n, pos);
    }
}

/// Decodes a block payload holding `count` events into `out` (cleared first). `frame_bytes` is
/// what the block header says the frames come to (length prefixes excluded): a payload whose
/// frames rebuild to more is an error, found before the frame buffer grows much past it.
pub fn decode(
    payload: &[u8],
    count: usize,
    frame_bytes: u64,
    out: &mut Decoded,
) -> Result<(), CodecError> {
    out.ends.clear();
    out.times.clear();
    out.flags.clear();
    out.leaves.clear();
    out.event_leaves.clear();
    out.event_shapes.clear();
    out.oversized = false;
    out.reserve_frames(usize::try_from(frame_bytes).unwrap_or(usize::MAX), count);
    let sections = sections(payload)?;
    let mut buf = std::mem::take(&mut out.buf);
    let mut columns = std::mem::take(&mut out.columns);
    let mut opaque = std::mem::take(&mut out.opaque);
    let mut frames = std::mem::take(&mut out.frames);
    let claim = Claim { count, frame_bytes };
    let result = read_layout(
        &sections,
        claim,
        &|_| true,
        &mut buf,
        (&mut out.times, &mut out.flags),
        &mut columns,
        &mut opaque,
    )
    .and_then(|layout| rebuild(&layout, claim, &mut columns, &opaque, &mut frames, out));
    // The frame buffer's length is the room written ahead into, kept between blocks (growing it
    // again would zero it again); what the block used is less.
    let used = out.ends.last().map_or(0, |&e| e as usize) + ROOM;
    if frames.len() > KEEP_BYTES && frames.len() > 2 * used {
        frames.truncate(used);
    }
    give_back(&mut frames);
    give_back(&mut buf);
    give_back(&mut opaque);
    give_back(&mut out.leaves);
    columns.iter_mut().for_each(|c| give_back(&mut c.data));
    out.buf = buf;
    out.columns = columns;
    out.opaque = opaque;
    out.frames = frames;
    result
}

/// What a block header says its frames come to: `count` events, `frame_bytes` bytes.
#[derive(Clone, Copy)]
struct Claim {
    count: usize,
    frame_bytes: u64,
}

/// Rebuilds every event's frame into `frames` (`out.frames` taken out while it is written).
fn rebuild(
    layout: &Layout,
    Claim { count, frame_bytes }: Claim,
    columns: &mut [Column],
    opaque: &[u8],
    frames: &mut Vec<u8>,
    out: &mut Decoded,
) -> Result<(), CodecError> {
    let programs = &layout.programs;
    let mut shape_ids = Reader::new(&layout.shape_ids, "shape ids");
    let mut opaque = Reader::new(opaque, "opaque frames");
    let mut stack: Vec<(usize, usize)> = Vec::with_capacity(MAX_DEPTH);
    let mut pairs = Pairs::default();
    let mut refs = Reader::new(&layout.refs, "refs");
    let prefix = usize::from(out.prefix);
    let mut pos = 0usize;
    // The frames with their length prefixes, as the header gives them (and so that every place
    // in them, and the room after, fits a u32); the buffer never grows past `cap`.
    let claim = usize::try_from(frame_bytes)
        .unwrap_or(usize::MAX)
        .saturating_add(count.saturating_mul(prefix))
        .min(u32::MAX as usize - LOOKAHEAD_SLACK);
    let cap = claim + LOOKAHEAD_SLACK;

    for index in 0..count {
        let shape = shape_ids.varint()?;
        let reference = refs.varint()?;
        out.event_leaves.push(out.leaves.len() as u32);
        out.event_shapes.push(shape as u32);
        room(frames, pos, ROOM, cap)?;
        pos += prefix;
        let frame_start = pos;
        if shape == OPAQUE_SHAPE {
            let len = opaque.varint()? as usize;
            let bytes = opaque
                .data
                .get(opaque.pos..opaque.pos.saturating_add(len))
                .ok_or_else(|| CodecError("opaque frame runs past its section".into()))?;
            opaque.pos += len;
            room(frames, pos, len.saturating_add(ROOM), cap)?;
            frames[pos..pos + len].copy_from_slice(bytes);
            pos += len;
        } else {
            let (Some(&(ops_start, ops_end)), Some(&bound)) = (
                programs.ranges.get(shape as usize),
                programs.bounds.get(shape as usize),
            ) else {
                return bad(format!(
                    "event {index} has shape {shape}, beyond the block's shapes"
                ));
            };
            // Room for every fixed-size step of the frame: only the values of variable length
            // check for more as they come.
            let bound = bound + ROOM;
            room(frames, pos, bound, cap)?;
            // Where the reference's leaves start, and its shape, when the event inherits.
            let (theirs, ops) = match reference {
                0 => (None, &programs.ops[ops_start as usize..ops_end as usize]),
                r if r as usize <= index => {
                    let i = index - r as usize;
                    let their_shape = out.event_shapes[i];
                    let theirs = Some((out.event_leaves[i] as usize, their_shape));
                    let ops = match pairs.program(programs, shape as u32, their_shape) {
                        Some((s, e)) => &pairs.ops[s as usize..e as usize],
                        None => &programs.ops[ops_start as usize..ops_end as usize],
                    };
                    (theirs, ops)
                }
                r => return bad(format!("event {index} refers {r} events back")),
            };
            let time_us = out.times[index];
            for op in ops {
                let at = pos;
                match op.kind {
                    OpKind::Begin => {
                        frames[pos..pos + 8].copy_from_slice(&op.tag.to_le_bytes());
                        pos += usize::from(op.tag_len);
                        // One byte for the length, which is enough below 128 bytes.
                        frames[pos] = 0;
                        pos += 1;
                        stack.push((pos, out.leaves.len()));
                        continue;
                    }
                    OpKind::End => {
                        let (start, first_leaf) = stack
                            .pop()
                            .ok_or_else(|| CodecError("unbalanced shape".into()))?;
                        close_nested(frames, &mut pos, &mut out.leaves[first_leaf..], start, cap)?;
                        continue;
                    }
                    OpKind::Room => {
                        room(frames, pos, bound, cap)?;
                        continue;
                    }
                    OpKind::Varint => {
                        let c = &mut columns[op.arg as usize];
                        let Some(delta) = c.varint() else {
                            return column_error();
                        };
                        c.prev = c.prev.wrapping_add(unzigzag(delta) as u64);
                        put_tagged_varint(frames, &mut pos, op, c.prev);
                    }
                    OpKind::TimeSec | OpKind::TimeUsec => {
                        let c = &mut columns[op.arg as usize];
                        let Some(delta) = c.varint() else {
                            return column_error();
                        };
                        let base = if op.kind == OpKind::TimeUsec {
                            time_us % 1_000_000
                        } else {
                            time_us / 1_000_000
                        };
                        let v = base.wrapping_add(unzigzag(delta) as u64);
                        put_tagged_varint(frames, &mut pos, op, v);
                    }
                    OpKind::Bytes => {
                        let c = &mut columns[op.arg as usize];
                        let Some(len) = c.varint() else {
                            return column_error();
                        };
                        let len = len as usize;
                        let Some(src) = c.data.get(c.pos..).filter(|s| s.len() >= len) else {
                            return bad("column value runs past its section");
                        };
                        c.pos += len;
                        room(frames, pos, len.saturating_add(bound), cap)?;
                        put_tagged_varint(frames, &mut pos, op, len as u64);
                        put_bytes(frames, pos, src, len);
                        pos += len;
                    }
                    OpKind::Fixed32 | OpKind::Fixed64 => {
                        let c = &mut columns[op.arg as usize];
                        let len = if op.kind == OpKind::Fixed64 { 8 } else { 4 };
                        let Some(src) = c.data.get(c.pos..c.pos + len) else {
                            return bad("column value runs past its section");
                        };
                        c.pos += len;
                        frames[pos..pos + 8].copy_from_slice(&op.tag.to_le_bytes());
                        pos += usize::from(op.tag_len);
                        frames[pos..pos + len].copy_from_slice(src);
                        pos += len;
                    }
                    OpKind::Inherit => {
                        let (leaves_at, their_shape) = theirs.ok_or_else(|| {
                            CodecError(format!("event {index} inherits without a reference"))
                        })?;
                        let (s, e) = programs
                            .recorded_at(their_shape, op.arg)
                            .and_then(|p| out.leaves.get(leaves_at + p))
                            .copied()
                            .ok_or_else(|| {
                                CodecError(format!(
                                    "event {index} inherits a value its reference lacks"
                                ))
                            })?;
                        // The reference's value with its tag (and length): the same bytes here.
                        let n = (e - s) as usize;
                        room(frames, pos, n + bound, cap)?;
                        copy_back(frames, s as usize, n, pos);
                        pos += n;
                    }
                    OpKind::Copy => {
                        let Some((leaves_at, _)) = theirs else {
                            return bad(format!("event {index} inherits without a reference"));
                        };
                        let first = leaves_at + op.arg as usize;
                        let k = (op.tag >> 32) as usize;
                        let (Some(&(s, _)), Some(&(_, e))) =
                            (out.leaves.get(first), out.leaves.get(first + k - 1))
                        else {
                            return bad(format!(
                                "event {index} inherits a value its reference lacks"
                            ));
                        };
                        let Some(n) = e.checked_sub(s) else {
                            return bad("inherited values out of order");
                        };
                        let n = n as usize;
                        room(frames, pos, n + bound, cap)?;
                        copy_back(frames, s as usize, n, pos);
                        pos += n;
                        // Where the values some later event inherits now lie.
                        let mut recorded = op.tag as u32;
                        while recorded != 0 {
                            let j = recorded.trailing_zeros() as usize;
                            recorded &= recorded - 1;
                            if let Some(&(ls, le)) = out.leaves.get(first + j) {
                                let shift = at as u32;
                                out.leaves.push((ls - s + shift, le - s + shift));
                            }
                        }
                        continue;
                    }
                }
                if op.record {
                    out.leaves.push((at as u32, pos as u32));
                }
            }
            if !stack.is_empty() {
                return bad("unbalanced shape");
            }
        }
        if pos > claim {
            return bad(format!(
                "the frames rebuild to more than the {claim} bytes the block header gives"
            ));
        }
        let len = pos - frame_start;
        match prefix {
            2 => {
                out.oversized |= len > usize::from(u16::MAX);
                frames[frame_start - 2..frame_start].copy_from_slice(&(len as u16).to_be_bytes());
            }
            4 => frames[frame_start - 4..frame_start].copy_from_slice(&(len as u32).to_be_bytes()),
            _ => {}
        }
        out.ends.push(pos as u32);
    }
    Ok(())
}

/// One field's value in one event, as `decode_columns` gives it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Value {
    #[default]
    Absent,
    Number(u64),
    /// A range of the field's column (`Columns::bytes`).
    Bytes(u32, u32),
}

/// A few fields of every event of a block, read from their columns without rebuilding the frames:
/// what a search needs to decide which events match.
#[derive(Default, Debug)]
pub struct Columns {
    pub times: Vec<u64>,
    pub flags: Vec<u8>,
    /// Per wanted path, per event: the value of the field's last occurrence.
    values: Vec<Vec<Value>>,
    /// Per wanted path, the column's bytes.
    data: Vec<Vec<u8>>,
    /// Per event: the frame of an opaque event (a range of `opaque`), which callers read whole.
    pub opaque_frames: Vec<Option<(u32, u32)>>,
    pub opaque: Vec<u8>,
    buf: Vec<u8>,
    columns: Vec<Column>,
}

impl Columns {
    pub fn len(&self) -> usize {
        self.times.len()
    }
    pub fn is_empty(&self) -> bool {
        self.times.is_empty()
    }
    pub fn value(&self, path: usize, event: usize) -> Value {
        self.values[path][event]
    }
    pub fn bytes(&self, path: usize, event: usize) -> Option<&[u8]> {
        match self.values[path][event] {
            Value::Bytes(s, e) => self.data[path].get(s as usize..e as usize),
            _ => None,
        }
    }
    pub fn number(&self, path: usize, event: usize) -> Option<u64> {
        match self.values[path][event] {
            Value::Number(n) => Some(n),
            _ => None,
        }
    }
    pub fn opaque_frame(&self, event: usize) -> Option<&[u8]> {
        let (s, e) = self.opaque_frames[event]?;
        self.opaque.get(s as usize..e as usize)
    }
    /// Whether `event` does not decode (unchecked events are opaque, and checked here).
    pub fn undecodable(&self, event: usize) -> bool {
        is_undecodable(
            self.flags[event],
            self.opaque_frame(event).unwrap_or_default(),
        )
    }
}

/// Reads the fields at `paths` (each the tags from the top-level message down, e.g. `[0x62, 0x0a]`
/// for question.qName) of every event, decompressing only their columns. `Ok(false)` when some
/// event inherits a field that occurs more than once in its reference: the caller then decodes
/// the block whole. `frame_bytes` is what the block header says the frames come to: a payload
/// whose events stand for more is an error (no frame is rebuilt here, but each value walked
/// stands for bytes of one).
pub fn decode_columns(
    payload: &[u8],
    count: usize,
    frame_bytes: u64,
    paths: &[&[u32]],
    out: &mut Columns,
) -> Result<bool, CodecError> {
    let sections = sections(payload)?;
    out.opaque_frames.clear();
    let mut buf = std::mem::take(&mut out.buf);
    let mut columns = std::mem::take(&mut out.columns);
    let layout = read_layout(
        &sections,
        Claim { count, frame_bytes },
        &|key| paths.contains(&key),
        &mut buf,
        (&mut out.times, &mut out.flags),
        &mut columns,
        &mut out.opaque,
    )?;
    let programs = layout.programs;
    out.buf = buf;
    // Which wanted path each column is (if any).
    let wanted: Vec<Option<usize>> = columns
        .iter()
        .map(|c| paths.iter().position(|p| *p == c.key.as_slice()))
        .collect();
    out.values.resize_with(paths.len(), Vec::new);
    out.data.resize_with(paths.len(), Vec::new);
    for v in &mut out.values {
        v.clear();
        v.resize(count, Value::Absent);
    }
    // The occurrence each event's value is, to resolve inheritance.
    let mut occs: Vec<Vec<u16>> = vec![vec![u16::MAX; count]; paths.len()];
    let mut shape_ids = Reader::new(&layout.shape_ids, "shape ids");
    let mut refs = Reader::new(&layout.refs, "refs");
    let mut opaque_pos = 0usize;
    let mut exact = true;
    // The frame bytes the events walked so far stand for, at the least: an opaque frame its
    // length, a value its tag and a byte. Without this, a few shapes of many values, shared by
    // every event, would be walked for as long as a block of many times the header's bytes.
    let mut least = 0u64;
    for index in 0..count {
        let shape = shape_ids.varint()? as usize;
        let reference = refs.varint()? as usize;
        if shape == OPAQUE_SHAPE as usize {
            let len = read_varint(&out.opaque, &mut opaque_pos)
                .ok_or_else(|| CodecError("opaque section ends early".into()))?
                as usize;
            let end = opaque_pos.saturating_add(len);
            if end > out.opaque.len() {
                return bad("opaque frame runs past its section");
            }
            out.opaque_frames
                .push(Some((opaque_pos as u32, end as u32)));
            opaque_pos = end;
            least += len as u64;
            if least > frame_bytes {
                return frames_past(frame_bytes);
            }
            continue;
        }
        out.opaque_frames.push(None);
        let leaves = programs.leaves.get(shape).ok_or_else(|| {
            CodecError(format!(
                "event {index} has shape {shape}, beyond the block's shapes"
            ))
        })?;
        least += 2 * leaves.len() as u64;
        if least > frame_bytes {
            return frames_past(frame_bytes);
        }
        for &(column, occ, inherit) in leaves {
            let c = &mut columns[column as usize];
            // A column not wanted is never read: each column is its own stream.
            let Some(w) = wanted[column as usize] else {
                continue;
            };
            let value = if inherit {
                let r = index
                    .checked_sub(reference)
                    .filter(|_| reference > 0)
                    .ok_or_else(|| {
                        CodecError(format!("event {index} inherits without a reference"))
                    })?;
                if occs[w][r] != occ {
                    exact = false;
                }
                out.values[w][r]
            } else {
                match (c.key.last().copied().unwrap_or(0) & 7) as u8 {
                    WIRE_VARINT => {
                        let Some(delta) = c.varint() else {
                            return column_error();
                        };
                        let delta = unzigzag(delta) as u64;
                        let v = match c.time {
                            1 => (out.times[index] / 1_000_000).wrapping_add(delta),
                            2 => (out.times[index] % 1_000_000).wrapping_add(delta),
                            _ => {
                                c.prev = c.prev.wrapping_add(delta);
                                c.prev
                            }
                        };
                        Value::Number(v)
                    }
                    WIRE_LEN => {
                        let Some(len) = c.varint() else {
                            return column_error();
                        };
                        let end = c.pos.saturating_add(len as usize);
                        if end > c.data.len() {
                            return bad("column value runs past its section");
                        }
                        let v = Value::Bytes(c.pos as u32, end as u32);
                        c.pos = end;
                        v
                    }
                    wire => {
                        let len = if wire == WIRE_FIXED64 { 8 } else { 4 };
                        let end = c.pos + len;
                        if end > c.data.len() {
                            return bad("column value runs past its section");
                        }
                        let v = Value::Bytes(c.pos as u32, end as u32);
                        c.pos = end;
                        v
                    }
                }
            };
            out.values[w][index] = value;
            occs[w][index] = occ;
        }
    }
    // While the columns hold this block's sections (the swap below leaves them the last block's).
    columns.iter_mut().for_each(|c| give_back(&mut c.data));
    for data in &mut out.data {
        data.clear();
    }
    for (c, w) in columns.iter_mut().zip(&wanted) {
        if let Some(w) = w {
            std::mem::swap(&mut out.data[*w], &mut c.data);
        }
    }
    give_back(&mut out.buf);
    give_back(&mut out.opaque);
    out.data.iter_mut().for_each(give_back);
    out.columns = columns;
    Ok(exact)
}

fn frames_past<T>(frame_bytes: u64) -> Result<T, CodecError> {
    bad(format!(
        "the frames come to more than the {frame_bytes} bytes the block header gives"
    ))
}

fn need_section<'s, 'p>(
    sections: &'s [Section<'p>],
    kind: u8,
    what: &str,
) -> Result<&'s Section<'p>, CodecError> {
    sections
        .iter()
        .find(|s| s.kind == kind)
        .ok_or_else(|| CodecError(format!("no {what} section")))
}

/// What both decoders read before they walk the events: each event's shape id and reference, and
/// the shapes compiled against the columns kept.
struct Layout {
    programs: Programs,
    shape_ids: Vec<u8>,
    refs: Vec<u8>,
}

/// Reads times and flags, the columns `wanted` keeps (into `columns`), the shapes, shape ids and
/// references, and the opaque frames (into `opaque`); `buf` is scratch.
fn read_layout(
    sections: &[Section],
    claim: Claim,
    wanted: &dyn Fn(&[u32]) -> bool,
    buf: &mut Vec<u8>,
    (times, flags): (&mut Vec<u64>, &mut Vec<u8>),
    columns: &mut Vec<Column>,
    opaque: &mut Vec<u8>,
) -> Result<Layout, CodecError> {
    read_times_and_flags(sections, claim.count, buf, times, flags)?;
    let n_columns = read_columns(sections, columns, wanted)?;
    columns.truncate(n_columns);
    need_section(sections, SECTION_SHAPES, "shapes")?.read_into(buf)?;
    let programs = compile_shapes(buf, claim, columns)?;
    let mut shape_ids = Vec::new();
    need_section(sections, SECTION_SHAPE_IDS, "shape ids")?.read_into(&mut shape_ids)?;
    let mut refs = Vec::new();
    need_section(sections, SECTION_REFS, "refs")?.read_into(&mut refs)?;
    opaque.clear();
    if let Some(s) = sections.iter().find(|s| s.kind == SECTION_OPAQUE) {
        s.read_into(opaque)?;
    }
    Ok(Layout {
        programs,
        shape_ids,
        refs,
    })
}

/// Reads every event's time and flags (the times and flags sections), `buf` as scratch.
fn read_times_and_flags(
    sections: &[Section],
    count: usize,
    buf: &mut Vec<u8>,
    times: &mut Vec<u64>,
    flags: &mut Vec<u8>,
) -> Result<(), CodecError> {
    need_section(sections, SECTION_TIMES, "times")?.read_into(buf)?;
    let mut r = Reader::new(buf, "times");
    times.clear();
    let mut time = 0u64;
    for _ in 0..count {
        time = time.wrapping_add(unzigzag(r.varint()?) as u64);
        times.push(time);
    }
    need_section(sections, SECTION_FLAGS, "flags")?.read_into(flags)?;
    if flags.len() != count {
        return bad(format!(
            "flags section holds {} events, the header says {count}",
            flags.len()
        ));
    }
    Ok(())
}

/// Ends a nested message that started (after its one-byte length placeholder) at `start` and ends at
/// `*pos`: writes its length, moving the content when the length takes more than one byte.
fn close_nested(
    frames: &mut Vec<u8>,
    pos: &mut usize,
    inner_leaves: &mut [(u32, u32)],
    start: usize,
    cap: usize,
) -> Result<(), CodecError> {
    let len = *pos - start;
    if len < 0x80 {
        frames[start - 1] = len as u8;
        return Ok(());
    }
    let extra = varint_len(len as u64) - 1;
    room(frames, *pos, extra + ROOM, cap)?;
    frames.copy_within(start..start + len, start + extra);
    let mut v = len as u64;
    for b in &mut frames[start - 1..start + extra] {
        *b = (v as u8 & 0x7f) | if v >= 0x80 { 0x80 } else { 0 };
        v >>= 7;
    }
    *pos += extra;
    for (s, e) in inner_leaves {
        *s += extra as u32;
        *e += extra as u32;
    }
    Ok(())
}

/// Reads the column sections into `columns`, returning how many there are.
fn read_columns(
    sections: &[Section],
    columns: &mut Vec<Column>,
    wanted: &dyn Fn(&[u32]) -> bool,
) -> Result<usize, CodecError> {
    let mut n = 0;
    for s in sections.iter().filter(|s| s.kind == SECTION_COLUMN) {
        if columns.len() <= n {
            columns.push(Column::default());
        }
        let c = &mut columns[n];
        n += 1;
        c.key.clear();
        let mut p = 0;
        while p < s.key.len() {
            let tag = read_canonical_varint(s.key, &mut p)
                .and_then(|t| u32::try_from(t).ok())
                .ok_or_else(|| CodecError("bad column key".into()))?;
            c.key.push(tag);
        }
        c.time = match c.key.as_slice() {
            [TAG_TIME_SEC] => 1,
            [TAG_TIME_USEC] => 2,
            _ => 0,
        };
        if wanted(&c.key) {
            s.read_into(&mut c.data)?;
        } else {
            c.data.clear();
        }
        c.pos = 0;
        c.prev = 0;
    }
    Ok(n)
}

/// The room a shape's fixed-size steps take, counted as they are compiled.
#[derive(Default)]
struct Steps {
    /// Since the shape's start or its last `Room`.
    run: usize,
    /// The most of any run: what each room check of the shape asks for.
    bound: usize,
}

/// The most bytes a step writes that no room check of its own covers (its tag, and a value of
/// fixed size; a value of variable length checks for room itself).
fn step_bytes(op: &Op) -> usize {
    usize::from(op.tag_len)
        + match op.kind {
            // The length, and the bytes it may take more once known.
            OpKind::Begin => 5,
            // The bytes the length may take more, counted here too: its Begin may lie before a
            // `Room`.
            OpKind::End => 4,
            OpKind::Varint | OpKind::TimeSec | OpKind::TimeUsec => 10,
            OpKind::Fixed64 => 8,
            OpKind::Fixed32 => 4,
            OpKind::Bytes => 5,
            OpKind::Inherit | OpKind::Copy | OpKind::Room => 0,
        }
}

/// Appends a step to a shape's operations, after a `Room` when the run since the last room check
/// would pass `MAX_LOOKAHEAD`.
fn push_step(ops: &mut Vec<Op>, op: Op, steps: &mut Steps) {
    let n = step_bytes(&op);
    if steps.run + n > MAX_LOOKAHEAD {
        ops.push(Op::new(OpKind::Room, 0, 0));
        steps.run = 0;
    }
    steps.run += n;
    steps.bound = steps.bound.max(steps.run);
    ops.push(op);
}

/// Compiles the shapes section: every leaf bound to its column and slot.
fn compile_shapes(
    section: &[u8],
    Claim { count, frame_bytes }: Claim,
    columns: &[Column],
) -> Result<Programs, CodecError> {
    let mut r = Reader::new(section, "shapes");
    let n_shapes = r.varint()?;
    if n_shapes > count as u64 {
        return bad(format!("{n_shapes} shapes for {count} events"));
    }
    let mut p = Programs::default();
    p.ranges.push((0, 0));
    p.bounds.push(0);
    p.leaves.push(Vec::new());
    let mut slots: FastMap<(u32, u16), u32> = FastMap::default();
    let mut path: Vec<u32> = Vec::with_capacity(MAX_DEPTH);
    // Each column by its key (the first, should two have the same).
    let mut by_key: FastMap<&[u32], u32> = FastMap::default();
    for (i, c) in columns.iter().enumerate() {
        by_key.entry(&c.key).or_insert(i as u32);
    }
    // Per column, how often the shape being compiled has had it so far (back to 0 after each
    // shape, for the columns in its leaves).
    let mut occ: Vec<u16> = vec![0; columns.len()];
    // The slot of every leaf operation, in order.
    let mut op_slots: Vec<u32> = Vec::new();
    let most_entries = usize::try_from(frame_bytes)
        .unwrap_or(usize::MAX)
        .min(MAX_SHAPE_ENTRIES);
    let mut entries = 0usize;
    for _ in 0..n_shapes {
        let len = r.varint()? as usize;
        let shape = section
            .get(r.pos..r.pos.saturating_add(len))
            .ok_or_else(|| CodecError("shape runs past its section".into()))?;
        r.pos += len;
        let start = p.ops.len() as u32;
        let mut steps = Steps::default();
        let mut shape_leaves = Vec::new();
        path.clear();
        let mut pos = 0;
        while pos < shape.len() {
            // Each turn compiles one entry, or fails.
            entries += 1;
            if entries > most_entries {
                return bad(format!(
                    "the shapes hold more than {most_entries} entries (at most {MAX_SHAPE_ENTRIES}, and no more than the block's frame bytes)"
                ));
            }
            if shape[pos] == SHAPE_END {
                pos += 1;
                if path.pop().is_none() {
                    return bad("shape closes more messages than it opens");
                }
                push_step(&mut p.ops, Op::new(OpKind::End, 0, 0), &mut steps);
                continue;
            }
            let tag = read_varint(shape, &mut pos)
                .and_then(|t| u32::try_from(t).ok())
                .filter(|t| {
                    matches!(
                        (t & 7) as u8,
                        WIRE_VARINT | WIRE_FIXED64 | WIRE_LEN | WIRE_FIXED32
                    )
                })
                .ok_or_else(|| CodecError("bad tag in shape".into()))?;
            let kind = *shape
                .get(pos)
                .ok_or_else(|| CodecError("shape ends after a tag".into()))?;
            pos += 1;
            path.push(tag);
            match kind {
                KIND_NESTED if (tag & 7) as u8 == WIRE_LEN && path.len() <= MAX_DEPTH => {
                    push_step(&mut p.ops, Op::new(OpKind::Begin, tag, 0), &mut steps);
                    continue;
                }
                KIND_LITERAL | KIND_INHERIT => {}
                _ => return bad(format!("bad entry kind {kind} in shape")),
            }
            // An inherited value was a literal of the same field in an earlier event, so its column
            // exists too.
            let column = *by_key.get(path.as_slice()).ok_or_else(|| {
                CodecError("shape names a field with no column in the block".into())
            })?;
            path.pop();
            let n = occ[column as usize];
            // Wrapping past 65,535 as the encoder's count does (and as this one always did).
            occ[column as usize] = n.wrapping_add(1);
            let next = slots.len() as u32;
            let slot = *slots.entry((column, n)).or_insert(next);
            shape_leaves.push((column, n, kind == KIND_INHERIT));
            let c = &columns[column as usize];
            let op_kind = match (kind, (tag & 7) as u8) {
                (KIND_INHERIT, _) => OpKind::Inherit,
                (_, WIRE_VARINT) if c.time == 1 => OpKind::TimeSec,
                (_, WIRE_VARINT) if c.time == 2 => OpKind::TimeUsec,
                (_, WIRE_VARINT) => OpKind::Varint,
                (_, WIRE_LEN) => OpKind::Bytes,
                (_, WIRE_FIXED64) => OpKind::Fixed64,
                _ => OpKind::Fixed32,
            };
            let arg = if op_kind == OpKind::Inherit {
                slot
            } else {
                column
            };
            push_step(&mut p.ops, Op::new(op_kind, tag, arg), &mut steps);
            op_slots.push(slot);
        }
        if !path.is_empty() {
            return bad("shape leaves a message open");
        }
        for &(column, ..) in &shape_leaves {
            occ[column as usize] = 0;
        }
        p.leaves.push(shape_leaves);
        p.ranges.push((start, p.ops.len() as u32));
        p.bounds.push(steps.bound);
    }
    // Only the values that some event inherits are remembered while rebuilding.
    let mut inherited = vec![false; slots.len()];
    for op in p.ops.iter().filter(|op| op.kind == OpKind::Inherit) {
        inherited[op.arg as usize] = true;
    }
    let mut slots_iter = op_slots.iter();
    for (shape, &(start, end)) in p.ranges.iter().enumerate() {
        let mut recorded = 0u16;
        let mut recorded_ops = Vec::new();
        for (i, op) in p.ops[start as usize..end as usize].iter_mut().enumerate() {
            if matches!(op.kind, OpKind::Begin | OpKind::End | OpKind::Room) {
                continue;
            }
            let slot = *slots_iter
                .next()
                .ok_or_else(|| CodecError("shape bookkeeping".into()))?
                as usize;
            if inherited[slot] {
                op.record = true;
                recorded_ops.push(i as u32);
                p.slot_pos.insert((shape as u32, slot as u32), recorded);
                recorded = recorded
                    .checked_add(1)
                    .ok_or_else(|| CodecError("shape with too many fields".into()))?;
            }
        }
        p.recorded_ops.push(recorded_ops);
    }
    Ok(p)
}

/// A payload laid out as the encoder lays it out, from its parts, for tests: `count` events of
/// time 0 and flags 0, and the raw shape ids, refs, shapes and columns (key and bytes) given.
#[cfg(test)]
pub(crate) fn crafted_payload(
    count: usize,
    shape_ids: &[u8],
    refs: &[u8],
    shapes: &[u8],
    columns: &[(&[u8], &[u8])],
) -> Vec<u8> {
    let (mut out, mut scratch) = (Vec::new(), Vec::new());
    let mut sections = Sections::new(&mut out, &[]);
    sections.add(SECTION_TIMES, &[], &vec![0; count], &mut scratch);
    sections.add(SECTION_FLAGS, &[], &vec![0; count], &mut scratch);
    sections.add(SECTION_SHAPE_IDS, &[], shape_ids, &mut scratch);
    sections.add(SECTION_SHAPES, &[], shapes, &mut scratch);
    sections.add(SECTION_REFS, &[], refs, &mut scratch);
    for (key, column) in columns {
        sections.add(SECTION_COLUMN, key, column, &mut scratch);
    }
    sections.finish();
    out
}

/// A hostile payload, for tests: `count` events, the first holding field 6 with a value of
/// `value_len` bytes and each later one inheriting it from the one before; a few kilobytes that
/// rebuild to `count` frames of `value_len` and a few bytes each.
#[cfg(test)]
pub(crate) fn inheriting_payload(count: usize, value_len: usize) -> Vec<u8> {
    const TAG: u8 = 6 << 3 | WIRE_LEN;
    let mut shape_ids = vec![2; count];
    let mut refs = vec![1; count];
    if count > 0 {
        (shape_ids[0], refs[0]) = (1, 0);
    }
    let shapes = [2, 2, TAG, KIND_LITERAL, 2, TAG, KIND_INHERIT];
    let mut column = Vec::new();
    put_varint(&mut column, value_len as u64);
    column.resize(column.len() + value_len, b'x');
    crafted_payload(count, &shape_ids, &refs, &shapes, &[(&[TAG], &column)])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::block::MAX_FRAME_BYTES;
    use crate::frame::{FrameReader, FrameWidth};

    fn sample(name: &str) -> Vec<Vec<u8>> {
        let path = format!("{}/../shared/samples/{name}", env!("CARGO_MANIFEST_DIR"));
        let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        let mut reader = FrameReader::new(bytes.as_slice(), FrameWidth::Two);
        let mut frames = Vec::new();
        while let Some(f) = reader.next_frame().unwrap() {
            frames.push(f.to_vec());
        }
        frames
    }

    fn events(frames: &[Vec<u8>]) -> Vec<Event<'_>> {
        frames
            .iter()
            .enumerate()
            .map(|(i, f)| Event {
                frame: f,
                time_us: crate::format::wire::message_time_us(f)
                    .unwrap_or(1_700_000_000_000_000 + i as u64),
                flags: (i % 3) as u8,
            })
            .collect()
    }

    fn round_trip(events: &[Event]) -> (Vec<u8>, bool) {
        let mut payload = Vec::new();
        let fell_back = Encoder::new().encode(events, &[], &mut payload);
        let mut decoded = Decoded::default();
        decode(&payload, events.len(), frame_bytes(events), &mut decoded).unwrap();
        assert_eq!(decoded.len(), events.len());
        for (i, e) in events.iter().enumerate() {
            assert_eq!(decoded.frame(i), e.frame, "frame {i}");
            assert_eq!(decoded.times[i], e.time_us);
            assert_eq!(decoded.flags[i], e.flags);
        }
        (payload, fell_back)
    }

    #[test]
    fn real_streams_round_trip_exactly_without_falling_back() {
        for name in [
            "dnsdist-5300.pb",
            "dnsdist-5300.fixed.pb",
            "dnsdist-live-same-traffic.pb",
            "recursor-live-small.pb",
            "recursor-live-with-outgoing.pb",
        ] {
            let frames = sample(name);
            let raw: usize = frames.iter().map(|f| f.len() + 2).sum();
            let (payload, fell_back) = round_trip(&events(&frames));
            assert!(!fell_back, "{name}");
            eprintln!(
                "{name}: {} events, {:.1} bytes/event framed, {:.1} stored",
                frames.len(),
                raw as f64 / frames.len() as f64,
                payload.len() as f64 / frames.len() as f64
            );
        }
    }

    #[test]
    fn columns_give_each_events_last_value_of_a_field() {
        use crate::format::wire::{read_field, read_varint};
        // The last value of a top-level or nested field, read straight from the frame.
        #[derive(Debug, PartialEq)]
        enum Want {
            Absent,
            Number(u64),
            Bytes(Vec<u8>),
        }
        fn last(frame: &[u8], path: &[u32]) -> Want {
            let mut found = Want::Absent;
            let mut pos = 0;
            while let Some(f) = read_field(frame, &mut pos, false) {
                if f.tag != path[0] {
                    continue;
                }
                let v = &frame[f.value_start..f.value_end];
                if path.len() > 1 {
                    let inner = last(v, &path[1..]);
                    if inner != Want::Absent {
                        found = inner;
                    }
                } else if f.tag & 7 == 0 {
                    found = Want::Number(read_varint(v, &mut 0).unwrap());
                } else {
                    found = Want::Bytes(v.to_vec());
                }
            }
            found
        }
        let paths: [&[u32]; 5] = [&[0x08], &[0x12], &[0x32], &[0x62, 0x0a], &[0x6a, 0x08]];
        for name in [
            "dnsdist-live-same-traffic.pb",
            "recursor-live-with-outgoing.pb",
            "dnsdist-5300.pb",
        ] {
            let frames = sample(name);
            let evs = events(&frames);
            let mut payload = Vec::new();
            Encoder::new().encode(&evs, &[], &mut payload);
            let mut cols = Columns::default();
            assert!(
                decode_columns(&payload, evs.len(), frame_bytes(&evs), &paths, &mut cols).unwrap(),
                "{name}"
            );
            for (i, f) in frames.iter().enumerate() {
                if let Some(opaque) = cols.opaque_frame(i) {
                    assert_eq!(opaque, f.as_slice());
                    continue;
                }
                for (w, path) in paths.iter().enumerate() {
                    let got = match (cols.number(w, i), cols.bytes(w, i)) {
                        (Some(n), _) => Want::Number(n),
                        (None, Some(b)) => Want::Bytes(b.to_vec()),
                        (None, None) => Want::Absent,
                    };
                    assert_eq!(got, last(f, path), "{name} event {i} path {path:x?}");
                }
            }
        }
    }

    #[test]
    fn odd_frames_round_trip() {
        let frames: Vec<Vec<u8>> = vec![
            vec![],
            vec![0x08, 0x01],
            vec![0x08, 0x81, 0x00], // non-minimal varint: opaque
            vec![0x12, 0x02, 0xaa, 0xbb, 0x08, 0x02],
            vec![0x12, 0x02, 0xaa, 0xbb, 0x08, 0x02, 0x08, 0x03], // same id: inherits
            vec![0x6a, 0x03, 0x08, 0x00, 0xff], // response that is not a message: leaf
            vec![0x6a, 0x00, 0x6a, 0x02, 0x08, 0x05], // empty nested, then a nested one
            vec![0x0d, 1, 2, 3, 4, 0x09, 1, 2, 3, 4, 5, 6, 7, 8], // fixed32, fixed64
            vec![0x80, 0x02, 0x07, 0x8a, 0x02, 0x01, 0x61], // field 32 and 33
            vec![0xff; 5],
        ];
        let (_, fell_back) = round_trip(&events(&frames));
        assert!(!fell_back);
    }

    #[test]
    fn a_header_claiming_huge_frames_sets_aside_a_bounded_buffer() {
        let mut decoded = Decoded::default();
        decoded.set_length_prefix(2);
        decoded.reserve_frames(1 << 40, 1 << 20);
        assert!(decoded.frames.len() <= MAX_RESERVE);
    }

    #[test]
    fn decoding_garbage_is_an_error_not_a_panic() {
        let frames = sample("recursor-live-small.pb");
        let evs = events(&frames);
        let (payload, _) = round_trip(&evs);
        let claim = frame_bytes(&evs);
        for prefix in [0, 2] {
            let mut decoded = Decoded::default();
            decoded.set_length_prefix(prefix);
            for i in 0..payload.len() {
                for flip in [0x01, 0x80, 0xff] {
                    let mut bad = payload.clone();
                    bad[i] ^= flip;
                    let _ = decode(&bad, frames.len(), claim, &mut decoded);
                }
                let _ = decode(&payload[..i], frames.len(), claim, &mut decoded);
            }
            assert!(decode(&payload, frames.len() + 1, claim, &mut decoded).is_err());
        }
    }

    #[test]
    fn frames_rebuild_after_their_length_prefix_in_the_framed_layout() {
        let mut frames = sample("recursor-live-with-outgoing.pb");
        frames.push(vec![0x12, 0x01, 0x61]);
        let evs = events(&frames);
        let mut payload = Vec::new();
        Encoder::new().encode(&evs, &[], &mut payload);
        for width in [2usize, 4] {
            let mut decoded = Decoded::default();
            decoded.set_length_prefix(width);
            decode(&payload, evs.len(), frame_bytes(&evs), &mut decoded).unwrap();
            let mut want = Vec::new();
            for (i, f) in frames.iter().enumerate() {
                assert_eq!(decoded.frame(i), f.as_slice());
                want.extend_from_slice(&(f.len() as u32).to_be_bytes()[4 - width..]);
                want.extend_from_slice(f);
            }
            assert_eq!(decoded.framed(0, frames.len()), Some(want.as_slice()));
            let one = &want[..width + frames[0].len()];
            assert_eq!(decoded.framed(0, 1), Some(one));
        }
        // A frame longer than a 2-byte prefix can say is not handed over framed.
        let long = [vec![0x12, 0x82, 0x80, 0x04], vec![0x61; 0x10002]];
        let long = [long.concat()];
        let evs = events(&long);
        let mut payload = Vec::new();
        Encoder::new().encode(&evs, &[], &mut payload);
        let mut decoded = Decoded::default();
        decoded.set_length_prefix(2);
        decode(&payload, 1, frame_bytes(&evs), &mut decoded).unwrap();
        assert_eq!(decoded.frame(0), long[0].as_slice());
        assert_eq!(decoded.framed(0, 1), None);
    }

    /// The bytes a decoder's buffers hold on to between blocks.
    fn held(decoded: &Decoded, columns: &Columns) -> usize {
        let data = |cs: &[Column]| cs.iter().map(|c| c.data.capacity()).sum::<usize>();
        decoded.frames.capacity()
            + decoded.buf.capacity()
            + decoded.leaves.capacity() * 8
            + data(&decoded.columns)
            + columns.data.iter().map(Vec::capacity).sum::<usize>()
            + data(&columns.columns)
    }

    #[test]
    fn buffers_a_large_block_grew_are_given_back_after_the_next_blocks() {
        // 700 events each with a literal of 60 KB: about 42 MB of column and of frames.
        const TAG: u8 = 6 << 3 | WIRE_LEN;
        let (count, value_len) = (700, 60_000);
        let mut column = Vec::new();
        for i in 0..count {
            put_varint(&mut column, value_len as u64);
            column.resize(column.len() + value_len, i as u8);
        }
        let large = crafted_payload(
            count,
            &vec![1; count],
            &vec![0; count],
            &[1, 2, TAG, KIND_LITERAL],
            &[(&[TAG], &column)],
        );
        let large_bytes = (count * (value_len + 4)) as u64;
        let frames = sample("recursor-live-small.pb");
        let small_events = events(&frames);
        let mut small = Vec::new();
        Encoder::new().encode(&small_events, &[], &mut small);
        let small_bytes = frame_bytes(&small_events);

        let (mut decoded, mut columns) = (Decoded::default(), Columns::default());
        decoded.set_length_prefix(2);
        decode(&large, count, large_bytes, &mut decoded).unwrap();
        decode_columns(
            &large,
            count,
            large_bytes,
            &[&[u32::from(TAG)]],
            &mut columns,
        )
        .unwrap();
        let last = decoded.frame(count - 1);
        assert!(last.len() == value_len + 4 && last[4..].iter().all(|&b| b == (count - 1) as u8));
        assert!(
            held(&decoded, &columns) > 3 * KEEP_BYTES,
            "the test is as large as it says"
        );

        // A search's column buffers trade places with the ones it hands out, block after block:
        // the one the large block left is given back when it is next filled, a block later.
        let n = small_events.len();
        for _ in 0..2 {
            decode(&small, n, small_bytes, &mut decoded).unwrap();
            decode_columns(&small, n, small_bytes, &[&[u32::from(TAG)]], &mut columns).unwrap();
        }
        assert_eq!(decoded.frame(n - 1), small_events[n - 1].frame);
        assert!(
            held(&decoded, &columns) < KEEP_BYTES,
            "{} bytes kept",
            held(&decoded, &columns)
        );
    }

    #[test]
    fn a_block_rebuilding_to_more_than_its_header_says_is_refused_within_what_it_says() {
        let (count, value_len) = (100, 60_000);
        let payload = inheriting_payload(count, value_len);
        let each = 1 + varint_len(value_len as u64) + value_len;
        let whole = (each * count) as u64;
        for prefix in [0, 2, 4] {
            // As the header says: every frame, and no more room than that.
            let mut decoded = Decoded::default();
            decoded.set_length_prefix(prefix);
            decode(&payload, count, whole, &mut decoded).unwrap();
            assert_eq!(decoded.len(), count);
            assert_eq!(decoded.frame(count - 1), decoded.frame(0));
            assert_eq!(decoded.frame(0).len(), each);
            let bound = (each + prefix) * count + LOOKAHEAD_SLACK;
            assert!(decoded.frame_capacity() <= bound);
            // A header that says less: refused before the buffer grows past what it says.
            for claim in [2, each as u64, whole - 1] {
                let mut decoded = Decoded::default();
                decoded.set_length_prefix(prefix);
                let e = decode(&payload, count, claim, &mut decoded).unwrap_err();
                assert!(e.0.contains("block header gives"), "{e}");
                let bound = claim as usize + prefix * count + LOOKAHEAD_SLACK;
                assert!(decoded.frame_capacity() <= bound, "claim {claim}");
            }
        }
        // A few kilobytes that would rebuild to 60 GB, said to be 1 MiB of frames.
        let count = 1 << 20;
        let payload = inheriting_payload(count, value_len);
        assert!(payload.len() < 64 << 10, "{}", payload.len());
        let mut decoded = Decoded::default();
        decoded.set_length_prefix(4);
        assert!(decode(&payload, count, 1 << 20, &mut decoded).is_err());
        assert!(decoded.frame_capacity() <= (1 << 20) + 4 * count + LOOKAHEAD_SLACK);
        // So do the columns a search reads.
        let mut columns = Columns::default();
        let e =
            decode_columns(&payload, count, 1 << 20, &[&[6 << 3 | 2]], &mut columns).unwrap_err();
        assert!(e.0.contains("block header gives"), "{e}");
    }

    #[test]
    fn a_frame_too_long_for_one_room_check_rebuilds_exactly() {
        // A response of 6000 records: one shape of some 300 kB of fixed-size steps, nested
        // messages whose lengths take two and three bytes, and a `Room` every 64 kB.
        let mut records = Vec::new();
        for i in 0..6000u32 {
            let mut rr = vec![0x0a, 0x01, b'a', 0x10, 0x01, 0x18, 0x01, 0x20];
            put_varint(&mut rr, u64::from(i));
            rr.extend_from_slice(&[0x2a, 0x04, 10, 0, 0, 1]);
            records.push(0x12);
            put_varint(&mut records, rr.len() as u64);
            records.extend_from_slice(&rr);
        }
        let mut frame = vec![0x08, 0x02, 0x12, 0x02, 0xaa, 0xbb];
        frame.push(0x6a);
        put_varint(&mut frame, records.len() as u64);
        frame.extend_from_slice(&records);
        let query = [0x08, 0x01, 0x12, 0x02, 0xaa, 0xbb];
        let frames = [&query[..], &frame[..], &frame[..]];
        let events: Vec<Event> = frames
            .iter()
            .map(|f| Event {
                frame: f,
                time_us: 1_700_000_000_000_000,
                flags: 0,
            })
            .collect();
        let mut payload = Vec::new();
        assert!(!Encoder::new().encode(&events, &[], &mut payload));
        let claim: u64 = frames.iter().map(|f| f.len() as u64).sum();
        let sections = sections(&payload).unwrap();
        let (mut buf, mut times, mut flags) = (Vec::new(), Vec::new(), Vec::new());
        let (mut columns, mut opaque) = (Vec::new(), Vec::new());
        let layout = read_layout(
            &sections,
            Claim {
                count: 3,
                frame_bytes: claim,
            },
            &|_| true,
            &mut buf,
            (&mut times, &mut flags),
            &mut columns,
            &mut opaque,
        )
        .unwrap();
        let rooms = layout.programs.ops.iter();
        assert!(rooms.filter(|op| op.kind == OpKind::Room).count() > 3);
        assert!(layout.programs.bounds.iter().all(|&b| b <= MAX_LOOKAHEAD));
        for prefix in [0, 2, 4] {
            let mut decoded = Decoded::default();
            decoded.set_length_prefix(prefix);
            decode(&payload, 3, claim, &mut decoded).unwrap();
            for (i, f) in frames.iter().enumerate() {
                assert_eq!(decoded.frame(i), *f, "frame {i}");
            }
            let bound = claim as usize + 3 * prefix + LOOKAHEAD_SLACK;
            assert!(decoded.frame_capacity() <= bound);
        }
    }

    /// Varint columns for fields 1..=n, keyed as the encoder keys them.
    fn varint_columns(n: u32) -> Vec<Column> {
        (1..=n)
            .map(|field| Column {
                key: vec![field << 3],
                ..Column::default()
            })
            .collect()
    }

    /// A shape of `entries` varint fields of kind `kind`, going round fields 1..=`fields`.
    fn shape_of(entries: usize, fields: u32, kind: u8, out: &mut Vec<u8>) {
        let mut shape = Vec::new();
        for i in 0..entries {
            put_varint(&mut shape, u64::from((i as u32 % fields + 1) << 3));
            shape.push(kind);
        }
        put_varint(out, shape.len() as u64);
        out.extend_from_slice(&shape);
    }

    fn claim(count: usize, frame_bytes: u64) -> Claim {
        Claim { count, frame_bytes }
    }

    #[test]
    fn sections_decompressing_to_more_than_a_payload_holds_are_refused_before_any_is() {
        // 300 columns of a mebibyte of zeros each, some 4 kB compressed: within the bound for
        // each section, not together.
        let zeros = vec![0; 1 << 20];
        let zero_columns: Vec<(&[u8], &[u8])> =
            (0..300).map(|_| (&[0x08][..], &zeros[..])).collect();
        let payload = crafted_payload(1, &[0], &[0], &[0], &zero_columns);
        assert!(payload.len() < 2 << 20, "{}", payload.len());
        let e = sections(&payload).unwrap_err();
        assert!(e.0.contains("add up to more than"), "{e}");
        let mut decoded = Decoded::default();
        assert!(decode(&payload, 1, 1, &mut decoded).is_err());
        assert!(decoded.columns.iter().all(|c| c.data.capacity() == 0));
        let mut columns = Columns::default();
        assert!(decode_columns(&payload, 1, 1, &[&[0x08]], &mut columns).is_err());
        // As many as the bound allows are read.
        let payload = crafted_payload(1, &[0], &[0], &[0], &zero_columns[..255]);
        assert!(sections(&payload).is_ok());
    }

    #[test]
    fn shapes_of_more_entries_than_a_block_holds_are_refused() {
        let columns = varint_columns(64);
        // At most MAX_SHAPE_ENTRIES whatever the header says,
        let mut section = vec![1];
        shape_of(MAX_SHAPE_ENTRIES, 64, KIND_LITERAL, &mut section);
        assert!(compile_shapes(&section, claim(1, MAX_FRAME_BYTES), &columns).is_ok());
        let mut section = vec![1];
        shape_of(MAX_SHAPE_ENTRIES + 1, 64, KIND_LITERAL, &mut section);
        let e = compile_shapes(&section, claim(1, MAX_FRAME_BYTES), &columns).err();
        assert!(e.is_some_and(|e| e.0.contains("entries")));
        // and no more than the frame bytes it says.
        let mut section = vec![2];
        shape_of(600, 1, KIND_LITERAL, &mut section);
        shape_of(400, 1, KIND_INHERIT, &mut section);
        assert!(compile_shapes(&section, claim(2, 1000), &columns).is_ok());
        let e = compile_shapes(&section, claim(2, 999), &columns).err();
        assert!(e.is_some_and(|e| e.0.contains("entries")));
        // The same from a whole payload, a few kilobytes of it.
        let column = vec![0; 2];
        let payload = crafted_payload(2, &[1, 2], &[0, 1], &section, &[(&[0x08], &column)]);
        let e = decode(&payload, 2, 999, &mut Decoded::default()).unwrap_err();
        assert!(e.0.contains("entries"), "{e}");
    }

    #[test]
    fn shapes_of_many_inherited_fields_compile_to_tables_linear_in_their_entries() {
        // One shape of 960,000 fields (60,000 of each of 16), one inheriting 60,000 of them,
        // and 100,000 shapes of one field: a shapes × (field, occurrence) table, as it was,
        // would take 190 GB.
        let columns = varint_columns(16);
        let (wide, inheriting, narrow) = (960_000, 60_000, 100_000);
        let mut section = Vec::new();
        put_varint(&mut section, 2 + narrow as u64);
        shape_of(wide, 16, KIND_LITERAL, &mut section);
        shape_of(inheriting, 16, KIND_INHERIT, &mut section);
        for _ in 0..narrow {
            shape_of(1, 16, KIND_LITERAL, &mut section);
        }
        let shapes = 2 + narrow;
        let entries = wide + inheriting + narrow;
        let programs = compile_shapes(&section, claim(shapes, MAX_FRAME_BYTES), &columns).unwrap();
        assert_eq!(programs.ranges.len(), shapes + 1);
        // Each inherited value where each shape records it: the wide shape and the inheriting
        // one record 60,000 each, every narrow one its field.
        assert_eq!(programs.slot_pos.len(), 2 * inheriting + narrow);
        let bytes = programs.table_bytes();
        eprintln!(
            "{entries} entries, {shapes} shapes: {bytes} bytes of tables, {:.1} an entry",
            bytes as f64 / entries as f64
        );
        assert!(bytes < 64 * entries + 64 * shapes, "{bytes}");
    }
}
