//! One event as one row of ClickHouse's RowBinary format, in the column order of
//! `schema::COLUMNS`. The frame is read at the protobuf wire level, so an undecodable frame still
//! gives every field that can be read (and `undecodable = 1`).
//!
//! RowBinary, as ClickHouse reads it: fixed-width integers little-endian; String a LEB128 length
//! then the bytes; FixedString(16) and IPv6 16 bytes (IPv6 in network order); UUID its two 64-bit
//! halves, each little-endian; DateTime a UInt32, DateTime64(6) an Int64 of microseconds; Nullable a
//! byte (1 = NULL) before the value; Array a LEB128 count then the elements.

use super::schema::Flavor;
use crate::event_json::{address_text, record_data_text};
use crate::format::wire::{put_varint, read_field, read_varint, WIRE_LEN, WIRE_VARINT};
use crate::format::StoredEvent;
use std::borrow::Cow;

/// An event's identity in the table: the node that stored it and its sequence number there
/// (segment sequence number << 40 | the event's position in its segment).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EventId {
    pub segment: u64,
    pub ordinal: u64,
}

impl EventId {
    pub fn seq(self) -> u64 {
        self.segment << 40 | (self.ordinal & ((1 << 40) - 1))
    }
}

/// One answer record: name, type, ttl, rdata.
type Record<'a> = (&'a [u8], u32, u32, &'a [u8]);

/// The fields a row holds, as read from the frame. The last occurrence of a singular field wins.
#[derive(Default)]
struct Fields<'a> {
    kind: Option<u32>,
    message_id: &'a [u8],
    server_identity: &'a [u8],
    protocol: Option<u32>,
    from: &'a [u8],
    to: &'a [u8],
    in_bytes: u64,
    id: u32,
    qname: &'a [u8],
    qtype: u32,
    qclass: u32,
    rcode: Option<u32>,
    query_sec: Option<u32>,
    query_usec: u32,
    records: Vec<Record<'a>>,
    policy: &'a [u8],
    tags: Vec<&'a [u8]>,
    ecs: &'a [u8],
    requestor_id: &'a [u8],
    device_id: &'a [u8],
    device_name: &'a [u8],
    from_port: u32,
    to_port: u32,
}

/// The fields of `buf`, each as its field number and value, up to the first malformed one.
fn fields(buf: &[u8]) -> impl Iterator<Item = (u32, u8, &[u8])> {
    let mut pos = 0;
    std::iter::from_fn(move || {
        let f = read_field(buf, &mut pos, false)?;
        Some((f.number(), f.wire_type(), &buf[f.value_start..f.value_end]))
    })
}

fn varint(wire: u8, v: &[u8]) -> Option<u64> {
    (wire == WIRE_VARINT)
        .then(|| read_varint(v, &mut 0))
        .flatten()
}

fn small(wire: u8, v: &[u8]) -> Option<u32> {
    varint(wire, v).map(|x| x as u32)
}

impl<'a> Fields<'a> {
    fn parse(frame: &'a [u8]) -> Fields<'a> {
        let mut f = Fields::default();
        for (number, wire, v) in fields(frame) {
            let bytes = (wire == WIRE_LEN).then_some(v);
            match number {
                1 => f.kind = small(wire, v).or(f.kind),
                2 => f.message_id = bytes.unwrap_or(f.message_id),
                3 => f.server_identity = bytes.unwrap_or(f.server_identity),
                5 => f.protocol = small(wire, v).or(f.protocol),
                6 => f.from = bytes.unwrap_or(f.from),
                7 => f.to = bytes.unwrap_or(f.to),
                8 => f.in_bytes = varint(wire, v).unwrap_or(f.in_bytes),
                11 => f.id = small(wire, v).unwrap_or(f.id),
                12 if wire == WIRE_LEN => f.question(v),
                13 if wire == WIRE_LEN => f.response(v),
                14 => f.ecs = bytes.unwrap_or(f.ecs),
                15 => f.requestor_id = bytes.unwrap_or(f.requestor_id),
                17 => f.device_id = bytes.unwrap_or(f.device_id),
                19 => f.device_name = bytes.unwrap_or(f.device_name),
                20 => f.from_port = small(wire, v).unwrap_or(f.from_port),
                21 => f.to_port = small(wire, v).unwrap_or(f.to_port),
                _ => {}
            }
        }
        f
    }

    fn question(&mut self, buf: &'a [u8]) {
        for (number, wire, v) in fields(buf) {
            match number {
                1 if wire == WIRE_LEN => self.qname = v,
                2 => self.qtype = small(wire, v).unwrap_or(self.qtype),
                3 => self.qclass = small(wire, v).unwrap_or(self.qclass),
                _ => {}
            }
        }
    }

    fn response(&mut self, buf: &'a [u8]) {
        for (number, wire, v) in fields(buf) {
            match number {
                1 => self.rcode = small(wire, v).or(self.rcode),
                2 if wire == WIRE_LEN => {
                    let mut rr: Record = (&[], 0, 0, &[]);
                    for (n, w, x) in fields(v) {
                        match n {
                            1 if w == WIRE_LEN => rr.0 = x,
                            2 => rr.1 = small(w, x).unwrap_or(rr.1),
                            4 => rr.2 = small(w, x).unwrap_or(rr.2),
                            5 if w == WIRE_LEN => rr.3 = x,
                            _ => {}
                        }
                    }
                    self.records.push(rr);
                }
                3 if wire == WIRE_LEN => self.policy = v,
                4 if wire == WIRE_LEN => self.tags.push(v),
                5 => self.query_sec = small(wire, v).or(self.query_sec),
                6 => self.query_usec = small(wire, v).unwrap_or(self.query_usec),
                _ => {}
            }
        }
    }
}

/// The name of a message type or protocol, or its number when it has none (a newer PowerDNS).
fn enum_text(value: Option<u32>, names: &[&'static str]) -> Cow<'static, str> {
    match value {
        None => Cow::Borrowed(""),
        Some(n) => match names.get(n as usize) {
            Some(name) if !name.is_empty() => Cow::Borrowed(name),
            _ => Cow::Owned(n.to_string()),
        },
    }
}

/// Indexed by PBDNSMessage's Type and SocketProtocol numbers.
const TYPES: &[&str] = &[
    "",
    "query",
    "response",
    "outgoing-query",
    "incoming-response",
    "internal",
];
const PROTOCOLS: &[&str] = &[
    "",
    "udp",
    "tcp",
    "dot",
    "doh",
    "dnscrypt-udp",
    "dnscrypt-tcp",
    "doq",
];

/// 4 address bytes as IPv4-mapped IPv6, 16 as they are, anything else as `::`.
fn address16(bytes: &[u8]) -> [u8; 16] {
    let mut out = [0u8; 16];
    match bytes.len() {
        4 => {
            out[10] = 0xff;
            out[11] = 0xff;
            out[12..].copy_from_slice(bytes);
        }
        16 => out.copy_from_slice(bytes),
        _ => {}
    }
    out
}

fn put_str(out: &mut Vec<u8>, s: &[u8]) {
    put_varint(out, s.len() as u64);
    out.extend_from_slice(s);
}

/// Appends the row of `ev` to `out`.
pub fn encode_row(out: &mut Vec<u8>, ev: &StoredEvent, node: &str, id: EventId, flavor: Flavor) {
    let f = Fields::parse(ev.frame);
    match flavor {
        Flavor::Modern => out.extend_from_slice(&(ev.time_us as i64).to_le_bytes()),
        Flavor::Legacy => {
            let secs = u32::try_from(ev.time_us / 1_000_000).unwrap_or(u32::MAX);
            out.extend_from_slice(&secs.to_le_bytes());
            out.extend_from_slice(&((ev.time_us % 1_000_000) as u32).to_le_bytes());
        }
    }
    put_str(out, node.as_bytes());
    out.extend_from_slice(&id.seq().to_le_bytes());
    put_str(out, enum_text(f.kind, TYPES).as_bytes());
    out.push(u8::from(ev.undecodable()));
    let mut message_id = [0u8; 16];
    let n = f.message_id.len().min(16);
    message_id[..n].copy_from_slice(&f.message_id[..n]);
    if flavor == Flavor::Modern {
        message_id[..8].reverse();
        message_id[8..].reverse();
    }
    out.extend_from_slice(&message_id);
    put_str(out, f.server_identity);
    put_str(out, enum_text(f.protocol, PROTOCOLS).as_bytes());
    out.extend_from_slice(&address16(f.from));
    out.extend_from_slice(&(f.from_port as u16).to_le_bytes());
    out.extend_from_slice(&address16(f.to));
    out.extend_from_slice(&(f.to_port as u16).to_le_bytes());
    out.extend_from_slice(&u32::try_from(f.in_bytes).unwrap_or(u32::MAX).to_le_bytes());
    out.extend_from_slice(&(f.id as u16).to_le_bytes());
    put_str(out, f.qname);
    out.extend_from_slice(&(f.qtype as u16).to_le_bytes());
    out.extend_from_slice(&(f.qclass as u16).to_le_bytes());
    match f.rcode {
        Some(rcode) => out.extend_from_slice(&[0, rcode as u8]),
        None => out.push(1),
    }
    let latency = f.query_sec.and_then(|sec| {
        let query_us = u64::from(sec) * 1_000_000 + u64::from(f.query_usec);
        ev.time_us
            .checked_sub(query_us)
            .and_then(|l| u32::try_from(l).ok())
    });
    match latency {
        Some(l) => {
            out.push(0);
            out.extend_from_slice(&l.to_le_bytes());
        }
        None => out.push(1),
    }
    let count = f.records.len() as u64;
    put_varint(out, count);
    for rr in &f.records {
        put_str(out, rr.0);
    }
    put_varint(out, count);
    for rr in &f.records {
        out.extend_from_slice(&(rr.1 as u16).to_le_bytes());
    }
    put_varint(out, count);
    for rr in &f.records {
        out.extend_from_slice(&rr.2.to_le_bytes());
    }
    put_varint(out, count);
    for rr in &f.records {
        put_str(out, record_data_text(Some(rr.1), rr.3).as_bytes());
    }
    put_str(out, f.policy);
    put_varint(out, f.tags.len() as u64);
    for tag in &f.tags {
        put_str(out, tag);
    }
    let ecs = if f.ecs.is_empty() {
        String::new()
    } else {
        address_text(f.ecs)
    };
    put_str(out, ecs.as_bytes());
    put_str(out, f.requestor_id);
    put_str(out, f.device_id);
    put_str(out, f.device_name);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pb;
    use prost::Message as _;

    fn row(msg: &pb::Message, time_us: u64, flavor: Flavor) -> Vec<u8> {
        let frame = msg.encode_to_vec();
        let ev = StoredEvent {
            frame: &frame,
            time_us,
            flags: 0,
        };
        let mut out = Vec::new();
        let id = EventId {
            segment: 3,
            ordinal: 7,
        };
        encode_row(&mut out, &ev, "n1", id, flavor);
        out
    }

    #[test]
    fn a_response_row_byte_by_byte() {
        let msg = pb::Message {
            r#type: pb::MessageType::DnsResponseType as i32,
            message_id: Some((1..=16).collect()),
            socket_protocol: Some(1),
            from: Some(vec![192, 0, 2, 1]),
            from_port: Some(5353),
            id: Some(0x1234),
            question: Some(pb::Question {
                q_name: Some("a.example.".into()),
                q_type: Some(1),
                q_class: Some(1),
            }),
            response: Some(pb::Response {
                rcode: Some(3),
                query_time_sec: Some(10),
                query_time_usec: Some(0),
                rrs: vec![pb::Record {
                    name: Some("a.example.".into()),
                    r#type: Some(1),
                    ttl: Some(60),
                    rdata: Some(vec![198, 51, 100, 7]),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            ..Default::default()
        };
        let out = row(&msg, 10_000_250, Flavor::Legacy);
        let mut want = Vec::new();
        want.extend_from_slice(&10u32.to_le_bytes());
        want.extend_from_slice(&250u32.to_le_bytes());
        want.extend_from_slice(b"\x02n1");
        want.extend_from_slice(&(3u64 << 40 | 7).to_le_bytes());
        want.extend_from_slice(b"\x08response");
        want.push(0);
        want.extend((1..=16).collect::<Vec<u8>>());
        want.push(0); // server identity
        want.extend_from_slice(b"\x03udp");
        want.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 192, 0, 2, 1]);
        want.extend_from_slice(&5353u16.to_le_bytes());
        want.extend_from_slice(&[0; 16]);
        want.extend_from_slice(&0u16.to_le_bytes());
        want.extend_from_slice(&0u32.to_le_bytes());
        want.extend_from_slice(&0x1234u16.to_le_bytes());
        want.extend_from_slice(b"\x0aa.example.");
        want.extend_from_slice(&[1, 0, 1, 0]);
        want.extend_from_slice(&[0, 3]);
        want.push(0);
        want.extend_from_slice(&250u32.to_le_bytes());
        want.extend_from_slice(b"\x01\x0aa.example.");
        want.extend_from_slice(&[1, 1, 0]);
        want.push(1);
        want.extend_from_slice(&60u32.to_le_bytes());
        want.extend_from_slice(b"\x01\x0c198.51.100.7");
        want.extend_from_slice(&[0, 0, 0, 0, 0, 0]);
        assert_eq!(out, want);
    }

    #[test]
    fn modern_rows_swap_the_uuid_halves_and_take_microseconds() {
        let msg = pb::Message {
            r#type: 1,
            message_id: Some((1..=16).collect()),
            ..Default::default()
        };
        let out = row(&msg, 1_700_000_000_123_456, Flavor::Modern);
        assert_eq!(out[..8], 1_700_000_000_123_456i64.to_le_bytes());
        let at = 8 + 3 + 8 + 6 + 1;
        assert_eq!(
            out[at..at + 16],
            [8, 7, 6, 5, 4, 3, 2, 1, 16, 15, 14, 13, 12, 11, 10, 9]
        );
    }

    #[test]
    fn an_undecodable_frame_gives_what_can_be_read() {
        let good = pb::Message {
            r#type: 1,
            question: Some(pb::Question {
                q_name: Some("x.example.".into()),
                q_type: Some(28),
                q_class: Some(1),
            }),
            ..Default::default()
        }
        .encode_to_vec();
        let mut frame = good.clone();
        frame.extend_from_slice(&[0x0a, 0xff]); // a length running past the end
        let ev = StoredEvent {
            frame: &frame,
            time_us: 5,
            flags: crate::format::codec::FLAG_UNDECODABLE,
        };
        let (mut a, mut b) = (Vec::new(), Vec::new());
        let id = EventId {
            segment: 1,
            ordinal: 0,
        };
        encode_row(&mut a, &ev, "n", id, Flavor::Legacy);
        let ok = StoredEvent {
            frame: &good,
            flags: 0,
            ..ev
        };
        encode_row(&mut b, &ok, "n", id, Flavor::Legacy);
        // Same row but for the undecodable byte.
        let flag_at = 4 + 4 + 2 + 8 + 6;
        assert_eq!((a[flag_at], b[flag_at]), (1, 0));
        a[flag_at] = 0;
        assert_eq!(a, b);
    }
}
