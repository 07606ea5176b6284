//! Which frames are PBDNSMessages, and the few fields the writer needs of each, in one walk.
//!
//! A frame decodes when prost's decoder for proto/dnsmessage.proto would accept it (wire types of
//! known fields, UTF-8 of strings, nested messages, unknown fields and groups skipped); one that does
//! not is stored all the same, flagged undecodable (FORMAT.md, "Events"). The same walk picks out the
//! message's time (fields 9 and 10) and what the block summary counts (type, qName, qType, rcode), so
//! that each frame is read once rather than three times. The encoder threads call it, off the
//! thread that receives the frames.

use super::wire::{read_varint, WIRE_LEN, WIRE_VARINT};

/// The messages of the schema.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Schema {
    Message,
    Question,
    Response,
    Record,
    Meta,
    MetaValue,
    Trace,
}

/// How a known field is written.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    Varint,
    Bytes,
    Text,
    Nested(Schema),
    /// A repeated varint field, which decoders take packed as well.
    Varints,
}

fn kind(schema: Schema, number: u32) -> Option<Kind> {
    use Kind::*;
    Some(match (schema, number) {
        (Schema::Message, 1 | 4 | 5 | 8..=11 | 18 | 20 | 21 | 24..=29 | 31) => Varint,
        (Schema::Message, 2 | 3 | 6 | 7 | 14 | 16 | 17 | 30 | 33) => Bytes,
        (Schema::Message, 15 | 19 | 32) => Text,
        (Schema::Message, 12) => Nested(Schema::Question),
        (Schema::Message, 13) => Nested(Schema::Response),
        (Schema::Message, 22) => Nested(Schema::Meta),
        (Schema::Message, 23) => Nested(Schema::Trace),
        (Schema::Question, 1) => Text,
        (Schema::Question, 2 | 3) => Varint,
        (Schema::Response, 1 | 5 | 6 | 7 | 10 | 11) => Varint,
        (Schema::Response, 2) => Nested(Schema::Record),
        (Schema::Response, 3 | 4 | 8 | 9) => Text,
        (Schema::Record, 1) => Text,
        (Schema::Record, 2..=4 | 6) => Varint,
        (Schema::Record, 5) => Bytes,
        (Schema::Meta, 1) => Text,
        (Schema::Meta, 2) => Nested(Schema::MetaValue),
        (Schema::MetaValue, 1) => Text,
        (Schema::MetaValue, 2) => Varints,
        (Schema::Trace, 1..=5) => Varint,
        (Schema::Trace, 6 | 8) => Text,
        (Schema::Trace, 7) => Bytes,
        _ => return None,
    })
}

/// The fields of a decodable frame the writer needs; for each, the last occurrence wins. A field
/// that comes after a group (which no PowerDNS producer writes) is not picked out, as the plain
/// field walks of `wire::message_time_us` and FORMAT.md's summary rules stop at a group.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Facts {
    pub time_sec: Option<u64>,
    pub time_usec: Option<u64>,
    /// Field 1, the message type.
    pub kind: Option<u64>,
    /// question.qName (12.1): where it lies in the frame.
    pub qname: Option<(u32, u32)>,
    /// question.qType (12.2).
    pub qtype: Option<u64>,
    /// response.rcode (13.1).
    pub rcode: Option<u64>,
}

impl Facts {
    /// timeSec and timeUsec as microseconds, each taken as its low 32 bits as protobuf decoders do.
    pub fn time_us(&self) -> Option<u64> {
        let sec = self.time_sec? as u32;
        Some(u64::from(sec) * 1_000_000 + u64::from(self.time_usec.unwrap_or(0) as u32))
    }

    pub fn qname<'a>(&self, frame: &'a [u8]) -> Option<&'a [u8]> {
        let (s, e) = self.qname?;
        frame.get(s as usize..e as usize)
    }
}

/// Whether `frame` decodes as a PBDNSMessage, by exactly the rules prost's decoder applies.
pub fn decodes(frame: &[u8]) -> bool {
    inspect(frame).is_some()
}

/// The facts of `frame` if it decodes as a PBDNSMessage, `None` if it does not.
pub fn inspect(frame: &[u8]) -> Option<Facts> {
    let mut facts = Facts::default();
    check(frame, 0, Schema::Message, 0, Some(&mut facts)).then_some(facts)
}

/// Checks `buf` (which starts at `offset` in the frame) as a `schema` message; with `facts`, notes
/// the fields of the top-level message, its question and its response.
fn check(
    buf: &[u8],
    offset: usize,
    schema: Schema,
    depth: u32,
    mut facts: Option<&mut Facts>,
) -> bool {
    let mut pos = 0;
    while pos < buf.len() {
        let Some(key) = read_varint(buf, &mut pos) else {
            return false;
        };
        if key > u64::from(u32::MAX) || key & 7 > 5 || key >> 3 == 0 {
            return false;
        }
        let (number, wire) = ((key >> 3) as u32, (key & 7) as u8);
        match kind(schema, number) {
            None => {
                if wire == 3 {
                    facts = None;
                }
                if !skip(buf, &mut pos, wire, number, depth) {
                    return false;
                }
            }
            Some(Kind::Varint) => {
                if wire != WIRE_VARINT {
                    return false;
                }
                let Some(v) = read_varint(buf, &mut pos) else {
                    return false;
                };
                if let Some(f) = facts.as_deref_mut() {
                    match (schema, number) {
                        (Schema::Message, 1) => f.kind = Some(v),
                        (Schema::Message, 9) => f.time_sec = Some(v),
                        (Schema::Message, 10) => f.time_usec = Some(v),
                        (Schema::Question, 2) => f.qtype = Some(v),
                        (Schema::Response, 1) => f.rcode = Some(v),
                        _ => {}
                    }
                }
            }
            Some(Kind::Varints) if wire == WIRE_VARINT => {
                if read_varint(buf, &mut pos).is_none() {
                    return false;
                }
            }
            Some(k) => {
                if wire != WIRE_LEN {
                    return false;
                }
                let Some((start, body)) = delimited(buf, &mut pos) else {
                    return false;
                };
                let ok = match k {
                    Kind::Bytes => true,
                    Kind::Text => {
                        if let (Some(f), Schema::Question, 1) =
                            (facts.as_deref_mut(), schema, number)
                        {
                            let at = offset + start;
                            f.qname = Some((at as u32, (at + body.len()) as u32));
                        }
                        std::str::from_utf8(body).is_ok()
                    }
                    Kind::Nested(inner) => {
                        // Only the question and the response of the top-level message count.
                        let notes = match inner {
                            Schema::Question | Schema::Response => facts.as_deref_mut(),
                            _ => None,
                        };
                        depth < 100 && check(body, offset + start, inner, depth + 1, notes)
                    }
                    Kind::Varints => {
                        let mut p = 0;
                        while p < body.len() {
                            if read_varint(body, &mut p).is_none() {
                                return false;
                            }
                        }
                        true
                    }
                    Kind::Varint => false,
                };
                if !ok {
                    return false;
                }
            }
        }
    }
    true
}

/// A length-delimited value: where it starts in `buf`, and its bytes.
fn delimited<'a>(buf: &'a [u8], pos: &mut usize) -> Option<(usize, &'a [u8])> {
    let len = usize::try_from(read_varint(buf, pos)?).ok()?;
    let start = *pos;
    let body = buf.get(start..start.checked_add(len)?)?;
    *pos += len;
    Some((start, body))
}

/// Skips an unknown field as prost does: groups are skipped to their matching end.
fn skip(buf: &[u8], pos: &mut usize, wire: u8, number: u32, depth: u32) -> bool {
    match wire {
        0 => read_varint(buf, pos).is_some(),
        1 | 5 => {
            let n = if wire == 1 { 8 } else { 4 };
            match pos.checked_add(n).filter(|&end| end <= buf.len()) {
                Some(end) => {
                    *pos = end;
                    true
                }
                None => false,
            }
        }
        2 => delimited(buf, pos).is_some(),
        3 => {
            if depth >= 100 {
                return false;
            }
            loop {
                if *pos >= buf.len() {
                    return false;
                }
                let Some(key) = read_varint(buf, pos) else {
                    return false;
                };
                if key > u64::from(u32::MAX) || key & 7 > 5 || key >> 3 == 0 {
                    return false;
                }
                let (inner, inner_wire) = ((key >> 3) as u32, (key & 7) as u8);
                if inner_wire == 4 {
                    return inner == number;
                }
                if !skip(buf, pos, inner_wire, inner, depth + 1) {
                    return false;
                }
            }
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::wire::{message_time_us, read_field};

    /// The last value of `tag` inside the last-seen `outer` field (or at the top level), by a plain
    /// field walk that stops at anything malformed, as FORMAT.md's summary rules read.
    fn plain_last(frame: &[u8], outer: Option<u32>, tag: u32) -> Option<Vec<u8>> {
        let mut found = None;
        let mut pos = 0;
        while let Some(f) = read_field(frame, &mut pos, false) {
            let v = &frame[f.value_start..f.value_end];
            match outer {
                None if f.tag == tag => found = Some(v.to_vec()),
                Some(o) if f.tag == o => {
                    if let Some(inner) = plain_last(v, None, tag) {
                        found = Some(inner);
                    }
                }
                _ => {}
            }
        }
        found
    }

    fn varint_of(v: Option<Vec<u8>>) -> Option<u64> {
        v.and_then(|b| read_varint(&b, &mut 0))
    }

    #[test]
    fn facts_agree_with_plain_field_walks_on_real_and_mutated_frames() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/samples");
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut checked = 0;
        for name in ["dnsdist-5300.pb", "recursor-live-with-outgoing.pb"] {
            let bytes = std::fs::read(dir.join(name)).expect("sample");
            let mut reader =
                crate::frame::FrameReader::new(bytes.as_slice(), crate::frame::FrameWidth::Two);
            while let Some(f) = reader.next_frame().expect("memory") {
                let mut m = f.to_vec();
                for round in 0..4 {
                    if round > 0 && !m.is_empty() {
                        seed ^= seed << 13;
                        seed ^= seed >> 7;
                        seed ^= seed << 17;
                        let p = (seed % m.len() as u64) as usize;
                        m[p] ^= 1 << (seed >> 60 & 7);
                    }
                    let Some(facts) = inspect(&m) else { continue };
                    checked += 1;
                    assert_eq!(facts.time_us(), message_time_us(&m), "{m:02x?}");
                    assert_eq!(facts.kind, varint_of(plain_last(&m, None, 0x08)));
                    assert_eq!(
                        facts.qname(&m).map(<[u8]>::to_vec),
                        plain_last(&m, Some(0x62), 0x0a)
                    );
                    assert_eq!(facts.qtype, varint_of(plain_last(&m, Some(0x62), 0x10)));
                    assert_eq!(facts.rcode, varint_of(plain_last(&m, Some(0x6a), 0x08)));
                }
            }
        }
        assert!(checked > 1000, "{checked} frames checked");
    }
}
