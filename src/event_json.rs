//! JSON for one event. Every applet that shows events (`cat`, `pb2json`, `grep`, the HTTP gateway)
//! turns a stored frame into a JSON object here, so they all print the same keys with the same
//! meaning.
//!
//! The object starts with the item keys of dstore 1.x, always present and in 1.x's order (`answer`,
//! `origRequestor`, `preason`, `qid`, `qr`, `question`, `rcode`, `requestor`, `responder`, `tags`,
//! `timeSec`, `timeUsec`, `type`), so that 1.x consumers keep working. Every other PBDNSMessage
//! field that the message carries follows under a camelCase name; absent fields are left out.
//! Addresses become address text, message ids UUID text, enums their schema names (or the number,
//! for a value this schema does not know), and bytes that are not text become lowercase hex.
//!
//! A frame that does not decode as a whole still gives what can be read: the longest prefix that
//! ends on a field boundary and decodes, marked `undecodable: true` with an `error` saying where
//! the frame goes wrong. Nothing here panics, whatever the bytes.

use crate::dns::{qtype_name, rcode_name};
use crate::pb;
use prost::Message as _;
use serde_json::{Map, Value};
use std::fmt::Write as _;
use std::net::{Ipv4Addr, Ipv6Addr};

/// Store-side facts about an event that are not in the frame itself.
#[derive(Clone, Copy, Debug, Default)]
pub struct EventMeta {
    /// The event's time in microseconds since the Unix epoch, as the store indexed it; used for
    /// `timeSec`/`timeUsec` when the message has no time of its own.
    pub time_us: Option<u64>,
    /// The time above is when the event was received, not a time the sender put in the message.
    pub time_from_receive: bool,
}

/// The JSON object for one frame (one PBDNSMessage without its length prefix).
pub fn frame_to_json(frame: &[u8], meta: &EventMeta) -> Map<String, Value> {
    match pb::Message::decode(frame) {
        Ok(msg) => event_to_json(&msg, meta, has_field(frame, TYPE_FIELD)),
        Err(whole_frame_error) => {
            let (msg, read, error) = decode_prefix(frame, &whole_frame_error);
            let type_sent = has_field(frame.get(..read).unwrap_or_default(), TYPE_FIELD);
            let mut obj = event_to_json(&msg, meta, type_sent);
            obj.insert("undecodable".into(), Value::Bool(true));
            obj.insert("error".into(), Value::String(error));
            obj
        }
    }
}

/// The JSON object for one decoded message, without store-side facts.
pub fn message_to_json(msg: &pb::Message) -> Map<String, Value> {
    event_to_json(msg, &EventMeta::default(), true)
}

/// `type_sent`: whether the wire had field 1. It is required, so a decoder fills in its default,
/// DNSQueryType, when it is missing; the JSON must not claim a type the sender never gave.
fn event_to_json(msg: &pb::Message, meta: &EventMeta, type_sent: bool) -> Map<String, Value> {
    let mut obj = Map::new();
    let response = msg.response.as_ref();
    let question = msg.question.as_ref();
    let rrs = response.map(|r| r.rrs.as_slice()).unwrap_or_default();
    let is_response = is_response_type(msg.r#type);

    // The dstore 1.x item keys, always present.
    let answer: Vec<String> = rrs.iter().map(rdata_text).collect();
    obj.insert("answer".into(), answer.join(", ").into());
    obj.insert(
        "origRequestor".into(),
        msg.original_requestor_subnet
            .as_deref()
            .map(address_text)
            .unwrap_or_default()
            .into(),
    );
    obj.insert(
        "preason".into(),
        response
            .and_then(|r| r.applied_policy.clone())
            .unwrap_or_default()
            .into(),
    );
    obj.insert(
        "qid".into(),
        msg.message_id
            .as_deref()
            .map(uuid_text)
            .unwrap_or_default()
            .into(),
    );
    obj.insert("qr".into(), is_response.into());
    obj.insert(
        "question".into(),
        question
            .and_then(|q| q.q_name.clone())
            .unwrap_or_default()
            .into(),
    );
    obj.insert(
        "rcode".into(),
        response.and_then(|r| r.rcode).unwrap_or(0).into(),
    );
    obj.insert(
        "requestor".into(),
        msg.from
            .as_deref()
            .map(address_text)
            .unwrap_or_default()
            .into(),
    );
    obj.insert(
        "responder".into(),
        msg.to
            .as_deref()
            .map(address_text)
            .unwrap_or_default()
            .into(),
    );
    let tags = response.map(|r| r.tags.as_slice()).unwrap_or_default();
    obj.insert("tags".into(), tags.to_vec().into());
    let (sec, usec) = match (msg.time_sec, meta.time_us) {
        (None, Some(us)) => (us / 1_000_000, us % 1_000_000),
        (sec, _) => (
            u64::from(sec.unwrap_or(0)),
            u64::from(msg.time_usec.unwrap_or(0)),
        ),
    };
    obj.insert("timeSec".into(), sec.into());
    obj.insert("timeUsec".into(), usec.into());
    obj.insert(
        "type".into(),
        question
            .and_then(|q| q.q_type)
            .map(|t| qtype_name(t).into_owned())
            .unwrap_or_default()
            .into(),
    );

    // Everything else the message carries.
    if type_sent {
        obj.insert(
            "messageType".into(),
            enum_json(
                msg.r#type,
                pb::MessageType::try_from(msg.r#type).map(|e| e.as_str_name()),
            ),
        );
    }
    if let Some(v) = &msg.server_identity {
        obj.insert("serverIdentity".into(), text_or_hex(v).into());
    }
    if let Some(v) = msg.socket_family {
        obj.insert(
            "socketFamily".into(),
            enum_json(v, pb::SocketFamily::try_from(v).map(|e| e.as_str_name())),
        );
    }
    if let Some(v) = msg.socket_protocol {
        obj.insert(
            "socketProtocol".into(),
            enum_json(v, pb::SocketProtocol::try_from(v).map(|e| e.as_str_name())),
        );
    }
    insert_opt(&mut obj, "fromPort", msg.from_port);
    insert_opt(&mut obj, "toPort", msg.to_port);
    insert_opt(&mut obj, "inBytes", msg.in_bytes);
    insert_opt(&mut obj, "id", msg.id);
    insert_opt(&mut obj, "qtype", question.and_then(|q| q.q_type));
    insert_opt(&mut obj, "qclass", question.and_then(|q| q.q_class));
    if let Some(rcode) = response.and_then(|r| r.rcode) {
        obj.insert("rcodeName".into(), rcode_name(rcode).into_owned().into());
    }
    if !rrs.is_empty() {
        obj.insert(
            "rrs".into(),
            rrs.iter().map(record_json).collect::<Vec<_>>().into(),
        );
    }
    if let Some(r) = response {
        if is_response {
            if let Some(latency) = latency_usec(msg, r) {
                obj.insert("latencyUsec".into(), latency.into());
            }
        }
        insert_opt(&mut obj, "queryTimeSec", r.query_time_sec);
        insert_opt(&mut obj, "queryTimeUsec", r.query_time_usec);
        if let Some(v) = r.applied_policy_type {
            obj.insert(
                "appliedPolicyType".into(),
                enum_json(v, pb::PolicyType::try_from(v).map(|e| e.as_str_name())),
            );
        }
        insert_opt(
            &mut obj,
            "appliedPolicyTrigger",
            r.applied_policy_trigger.clone(),
        );
        insert_opt(&mut obj, "appliedPolicyHit", r.applied_policy_hit.clone());
        if let Some(v) = r.applied_policy_kind {
            obj.insert(
                "appliedPolicyKind".into(),
                enum_json(v, pb::PolicyKind::try_from(v).map(|e| e.as_str_name())),
            );
        }
        if let Some(v) = r.validation_state {
            obj.insert(
                "validationState".into(),
                enum_json(v, pb::VState::try_from(v).map(|e| e.as_str_name())),
            );
        }
    }
    insert_opt(&mut obj, "requestorId", msg.requestor_id.clone());
    insert_opt(
        &mut obj,
        "initialRequestId",
        msg.initial_request_id.as_deref().map(uuid_text),
    );
    insert_opt(
        &mut obj,
        "deviceId",
        msg.device_id.as_deref().map(device_id_text),
    );
    insert_opt(&mut obj, "deviceName", msg.device_name.clone());
    insert_opt(&mut obj, "newlyObservedDomain", msg.newly_observed_domain);
    if !msg.meta.is_empty() {
        obj.insert("meta".into(), meta_json(&msg.meta).into());
    }
    if !msg.trace.is_empty() {
        obj.insert(
            "trace".into(),
            msg.trace.iter().map(trace_json).collect::<Vec<_>>().into(),
        );
    }
    if let Some(v) = msg.http_version {
        obj.insert(
            "httpVersion".into(),
            enum_json(v, pb::HttpVersion::try_from(v).map(|e| e.as_str_name())),
        );
    }
    insert_opt(&mut obj, "workerId", msg.worker_id);
    insert_opt(&mut obj, "packetCacheHit", msg.packet_cache_hit);
    insert_opt(&mut obj, "outgoingQueries", msg.outgoing_queries);
    insert_opt(&mut obj, "headerFlags", msg.header_flags);
    insert_opt(&mut obj, "ednsVersion", msg.edns_version);
    insert_opt(
        &mut obj,
        "openTelemetryData",
        msg.open_telemetry_data.as_deref().map(hex),
    );
    insert_opt(&mut obj, "ede", msg.ede);
    insert_opt(&mut obj, "edeText", msg.ede_text.clone());
    insert_opt(
        &mut obj,
        "openTelemetryTraceID",
        msg.open_telemetry_trace_id.as_deref().map(hex),
    );

    if meta.time_from_receive {
        obj.insert("timeFromReceive".into(), true.into());
    }
    obj
}

/// Types 2 (DNSResponseType) and 4 (DNSIncomingResponseType) are responses. The presence of a
/// `response` block says nothing: dnsdist sends one with queries too.
fn is_response_type(t: i32) -> bool {
    matches!(
        pb::MessageType::try_from(t),
        Ok(pb::MessageType::DnsResponseType | pb::MessageType::DnsIncomingResponseType)
    )
}

/// How long the answer took: the response's time minus the query time it carries, when the
/// message has all four parts and the difference is not negative.
fn latency_usec(msg: &pb::Message, r: &pb::Response) -> Option<u64> {
    let at =
        |sec: Option<u32>, usec: Option<u32>| Some(u64::from(sec?) * 1_000_000 + u64::from(usec?));
    let sent = at(msg.time_sec, msg.time_usec)?;
    let asked = at(r.query_time_sec, r.query_time_usec)?;
    sent.checked_sub(asked)
}

fn insert_opt<T: Into<Value>>(obj: &mut Map<String, Value>, key: &str, value: Option<T>) {
    if let Some(v) = value {
        obj.insert(key.to_string(), v.into());
    }
}

/// An enum as its schema name, or as the bare number when this schema does not know the value.
fn enum_json<E>(raw: i32, name: Result<&'static str, E>) -> Value {
    match name {
        Ok(n) => n.into(),
        Err(_) => raw.into(),
    }
}

fn record_json(rr: &pb::Record) -> Value {
    let mut obj = Map::new();
    insert_opt(&mut obj, "name", rr.name.clone());
    insert_opt(
        &mut obj,
        "type",
        rr.r#type.map(|t| qtype_name(t).into_owned()),
    );
    insert_opt(&mut obj, "class", rr.class);
    insert_opt(&mut obj, "ttl", rr.ttl);
    if rr.rdata.is_some() {
        obj.insert("rdata".into(), rdata_text(rr).into());
    }
    insert_opt(&mut obj, "udr", rr.udr);
    obj.into()
}

const QTYPE_A: u32 = 1;
const QTYPE_AAAA: u32 = 28;

/// A and AAAA rdata are raw address bytes on the wire; every other type is sent as presentation
/// text already.
fn rdata_text(rr: &pb::Record) -> String {
    record_data_text(rr.r#type, rr.rdata.as_deref().unwrap_or_default())
}

/// A record's rdata as text, given its type: the one rendering JSON and exports share.
pub fn record_data_text(rtype: Option<u32>, rdata: &[u8]) -> String {
    match (rtype, rdata.len()) {
        (Some(QTYPE_A), 4) | (Some(QTYPE_AAAA), 16) => address_text(rdata),
        (Some(QTYPE_A | QTYPE_AAAA), _) => hex(rdata),
        _ => text_or_hex(rdata),
    }
}

fn meta_json(meta: &[pb::Meta]) -> Map<String, Value> {
    let mut obj = Map::new();
    for m in meta {
        let entry = obj.entry(m.key.clone()).or_insert_with(|| {
            let mut v = Map::new();
            v.insert("stringVal".into(), Value::Array(Vec::new()));
            v.insert("intVal".into(), Value::Array(Vec::new()));
            Value::Object(v)
        });
        // A key sent twice keeps the values of both.
        if let Some(Value::Array(a)) = entry.get_mut("stringVal") {
            a.extend(m.value.string_val.iter().map(|s| Value::from(s.as_str())));
        }
        if let Some(Value::Array(a)) = entry.get_mut("intVal") {
            a.extend(m.value.int_val.iter().map(|&i| Value::from(i)));
        }
    }
    obj
}

fn trace_json(ev: &pb::TraceEvent) -> Value {
    let mut obj = Map::new();
    obj.insert("ts".into(), ev.ts.into());
    obj.insert(
        "event".into(),
        enum_json(
            ev.event,
            pb::EventType::try_from(ev.event).map(|e| e.as_str_name()),
        ),
    );
    obj.insert("start".into(), ev.start.into());
    insert_opt(&mut obj, "boolVal", ev.bool_val);
    insert_opt(&mut obj, "intVal", ev.int_val);
    insert_opt(&mut obj, "stringVal", ev.string_val.clone());
    insert_opt(&mut obj, "bytesVal", ev.bytes_val.as_deref().map(hex));
    insert_opt(&mut obj, "custom", ev.custom.clone());
    obj.into()
}

/// Lowercase hex, two digits a byte.
fn hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// 4 bytes as IPv4 text, 16 as IPv6 text; any other length as hex, so nothing is lost.
pub fn address_text(bytes: &[u8]) -> String {
    if let Ok(v4) = <[u8; 4]>::try_from(bytes) {
        Ipv4Addr::from(v4).to_string()
    } else if let Ok(v6) = <[u8; 16]>::try_from(bytes) {
        Ipv6Addr::from(v6).to_string()
    } else {
        hex(bytes)
    }
}

/// 16 bytes as a lowercase hyphenated UUID (PowerDNS message ids are UUIDs), anything else as hex.
pub fn uuid_text(bytes: &[u8]) -> String {
    if bytes.len() != 16 {
        return hex(bytes);
    }
    let mut s = String::with_capacity(36);
    for (i, b) in bytes.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            s.push('-');
        }
        let _ = write!(s, "{b:02x}");
    }
    s
}

fn text_or_hex(bytes: &[u8]) -> String {
    match std::str::from_utf8(bytes) {
        Ok(s) => s.to_string(),
        Err(_) => hex(bytes),
    }
}

/// Device ids are opaque bytes, often binary; show them as text only when they read as text.
fn device_id_text(bytes: &[u8]) -> String {
    match std::str::from_utf8(bytes) {
        Ok(s) if !s.is_empty() && !s.chars().any(char::is_control) => s.to_string(),
        _ => hex(bytes),
    }
}

/// What can be read of a frame that does not decode: the fields up to the first one that cannot
/// be walked over or does not decode, merged as a decoder would, and a sentence saying where
/// reading stopped. Field by field, so the cost stays linear in the frame's length.
/// Returns the message, how many bytes of the frame went into it, and the sentence.
fn decode_prefix(
    frame: &[u8],
    whole_frame_error: &prost::DecodeError,
) -> (pb::Message, usize, String) {
    let mut msg = pb::Message::default();
    let mut pos = 0;
    let problem = loop {
        if pos >= frame.len() {
            // Every field decoded on its own, so the frame as a whole fails for another reason.
            break prost_reason(whole_frame_error);
        }
        let end = match field_end(frame, pos) {
            Ok(end) => end,
            Err(why) => break why,
        };
        let Some(field) = frame.get(pos..end) else {
            break "a field runs past the end of the frame".to_string();
        };
        // Try the field alone first: a failed merge may leave part of its value behind.
        if let Err(e) = pb::Message::decode(field) {
            break format!("field {}: {}", field_number(frame, pos), prost_reason(&e));
        }
        if let Err(e) = msg.merge(field) {
            break prost_reason(&e);
        }
        pos = end;
    };
    let error = format!(
        "not a valid PBDNSMessage: {problem} (at byte {pos} of {}; the fields before it are shown)",
        frame.len()
    );
    (msg, pos, error)
}

/// prost's text without its fixed preamble.
fn prost_reason(e: &prost::DecodeError) -> String {
    let text = e.to_string();
    match text.strip_prefix("failed to decode Protobuf message: ") {
        Some(rest) => rest.to_string(),
        None => text,
    }
}

/// PBDNSMessage's `type`.
const TYPE_FIELD: u64 = 1;

/// Whether a top-level field with this number is on the wire, as far as the wire can be walked.
/// Senders put `type` first, so this usually looks at one byte.
fn has_field(frame: &[u8], number: u64) -> bool {
    let mut pos = 0;
    while pos < frame.len() {
        if field_number(frame, pos) == number {
            return true;
        }
        match field_end(frame, pos) {
            Ok(end) => pos = end,
            Err(_) => return false,
        }
    }
    false
}

/// The largest field number protobuf allows.
const MAX_FIELD_NUMBER: u64 = (1 << 29) - 1;

/// A varint at `pos`: its value and the offset just past it.
fn read_varint(buf: &[u8], pos: usize) -> Option<(u64, usize)> {
    let mut value = 0u64;
    for i in 0..10 {
        let b = *buf.get(pos.checked_add(i)?)?;
        value |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Some((value, pos + i + 1));
        }
    }
    None
}

fn field_number(frame: &[u8], pos: usize) -> u64 {
    read_varint(frame, pos)
        .map(|(tag, _)| tag >> 3)
        .unwrap_or(0)
}

/// Where the top-level field starting at `pos` ends, following only the wire format, or why it
/// cannot be followed.
fn field_end(frame: &[u8], pos: usize) -> Result<usize, String> {
    let (tag, after_tag) =
        read_varint(frame, pos).ok_or_else(|| "the frame ends inside a field tag".to_string())?;
    let number = tag >> 3;
    if number == 0 || number > MAX_FIELD_NUMBER {
        return Err(format!("field number {number} is not valid"));
    }
    let fixed = |width: usize| {
        after_tag
            .checked_add(width)
            .filter(|&end| end <= frame.len())
            .ok_or_else(|| format!("field {number} runs past the end of the frame"))
    };
    match tag & 7 {
        0 => read_varint(frame, after_tag)
            .map(|(_, end)| end)
            .ok_or_else(|| format!("field {number}: the frame ends inside a number")),
        1 => fixed(8),
        2 => {
            let (len, after_len) = read_varint(frame, after_tag)
                .ok_or_else(|| format!("field {number}: the frame ends inside a length"))?;
            let remaining = frame.len().saturating_sub(after_len);
            match usize::try_from(len) {
                Ok(len) if len <= remaining => Ok(after_len + len),
                _ => Err(format!(
                    "field {number} claims {len} bytes but only {remaining} remain"
                )),
            }
        }
        5 => fixed(4),
        wire => Err(format!(
            "field {number} has wire type {wire}, which this schema never uses"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn keys(obj: &Map<String, Value>) -> Vec<&str> {
        obj.keys().map(String::as_str).collect()
    }

    const ONE_X_KEYS: [&str; 13] = [
        "answer",
        "origRequestor",
        "preason",
        "qid",
        "qr",
        "question",
        "rcode",
        "requestor",
        "responder",
        "tags",
        "timeSec",
        "timeUsec",
        "type",
    ];

    fn full_response() -> pb::Message {
        pb::Message {
            r#type: pb::MessageType::DnsResponseType as i32,
            message_id: Some((0u8..16).collect()),
            server_identity: Some(b"rec1".to_vec()),
            socket_family: Some(pb::SocketFamily::Inet as i32),
            socket_protocol: Some(pb::SocketProtocol::Doh as i32),
            from: Some(vec![192, 0, 2, 1]),
            to: Some(vec![198, 51, 100, 7]),
            in_bytes: Some(42),
            time_sec: Some(1_700_000_001),
            time_usec: Some(250),
            id: Some(4660),
            question: Some(pb::Question {
                q_name: Some("www.example.test.".into()),
                q_type: Some(1),
                q_class: Some(1),
            }),
            response: Some(pb::Response {
                rcode: Some(0),
                rrs: vec![
                    pb::Record {
                        name: Some("www.example.test.".into()),
                        r#type: Some(5),
                        class: Some(1),
                        ttl: Some(300),
                        rdata: Some(b"web.example.test.".to_vec()),
                        udr: None,
                    },
                    pb::Record {
                        name: Some("web.example.test.".into()),
                        r#type: Some(1),
                        class: Some(1),
                        ttl: Some(60),
                        rdata: Some(vec![192, 0, 2, 80]),
                        udr: Some(true),
                    },
                ],
                applied_policy: Some("spamhaus-dbl".into()),
                tags: vec!["a".into(), "b".into()],
                query_time_sec: Some(1_700_000_000),
                query_time_usec: Some(999_000),
                applied_policy_type: Some(pb::PolicyType::Qname as i32),
                applied_policy_trigger: Some("www.example.test.".into()),
                applied_policy_hit: Some("www.example.test.rpz.".into()),
                applied_policy_kind: Some(pb::PolicyKind::Nxdomain as i32),
                validation_state: Some(pb::VState::BogusNoRrsig as i32),
            }),
            original_requestor_subnet: Some(vec![203, 0, 113, 0]),
            requestor_id: Some("alice".into()),
            initial_request_id: Some(vec![0xab; 16]),
            device_id: Some(vec![0, 1, 0xfe]),
            newly_observed_domain: Some(false),
            device_name: Some("laptop".into()),
            from_port: Some(53000),
            to_port: Some(443),
            meta: vec![
                pb::Meta {
                    key: "k".into(),
                    value: pb::MetaValue {
                        string_val: vec!["x".into()],
                        int_val: vec![1],
                    },
                },
                pb::Meta {
                    key: "k".into(),
                    value: pb::MetaValue {
                        string_val: vec![],
                        int_val: vec![-2],
                    },
                },
            ],
            trace: vec![pb::TraceEvent {
                ts: 10,
                event: pb::EventType::ReqRecv as i32,
                start: true,
                bool_val: None,
                int_val: Some(5),
                string_val: None,
                bytes_val: Some(vec![0xde, 0xad]),
                custom: None,
            }],
            http_version: Some(pb::HttpVersion::Http2 as i32),
            worker_id: Some(3),
            packet_cache_hit: Some(false),
            outgoing_queries: Some(2),
            header_flags: Some(0x8081),
            edns_version: Some(0x8000),
            open_telemetry_data: Some(vec![1, 2]),
            ede: Some(15),
            ede_text: Some("blocked".into()),
            open_telemetry_trace_id: Some(vec![0xff; 4]),
        }
    }

    #[test]
    fn every_field_of_a_full_response() {
        let msg = full_response();
        let obj = frame_to_json(&msg.encode_to_vec(), &EventMeta::default());
        let expected = json!({
            "answer": "web.example.test., 192.0.2.80",
            "origRequestor": "203.0.113.0",
            "preason": "spamhaus-dbl",
            "qid": "00010203-0405-0607-0809-0a0b0c0d0e0f",
            "qr": true,
            "question": "www.example.test.",
            "rcode": 0,
            "requestor": "192.0.2.1",
            "responder": "198.51.100.7",
            "tags": ["a", "b"],
            "timeSec": 1_700_000_001u64,
            "timeUsec": 250,
            "type": "A",
        });
        // In two parts: one json! this size exceeds the macro recursion limit.
        let rest = json!({
            "messageType": "DNSResponseType",
            "serverIdentity": "rec1",
            "socketFamily": "INET",
            "socketProtocol": "DOH",
            "fromPort": 53000,
            "toPort": 443,
            "inBytes": 42,
            "id": 4660,
            "qtype": 1,
            "qclass": 1,
            "rcodeName": "NOERROR",
            "rrs": [
                {"name": "www.example.test.", "type": "CNAME", "class": 1, "ttl": 300,
                 "rdata": "web.example.test."},
                {"name": "web.example.test.", "type": "A", "class": 1, "ttl": 60,
                 "rdata": "192.0.2.80", "udr": true},
            ],
            "latencyUsec": 1_250,
            "queryTimeSec": 1_700_000_000u64,
            "queryTimeUsec": 999_000,
            "appliedPolicyType": "QNAME",
            "appliedPolicyTrigger": "www.example.test.",
            "appliedPolicyHit": "www.example.test.rpz.",
            "appliedPolicyKind": "NXDOMAIN",
            "validationState": "BogusNoRRSIG",
            "requestorId": "alice",
            "initialRequestId": "abababab-abab-abab-abab-abababababab",
            "deviceId": "0001fe",
            "deviceName": "laptop",
            "newlyObservedDomain": false,
            "meta": {"k": {"stringVal": ["x"], "intVal": [1, -2]}},
            "trace": [{"ts": 10, "event": "ReqRecv", "start": true, "intVal": 5, "bytesVal": "dead"}],
            "httpVersion": "HTTP2",
            "workerId": 3,
            "packetCacheHit": false,
            "outgoingQueries": 2,
            "headerFlags": 0x8081,
            "ednsVersion": 0x8000,
            "openTelemetryData": "0102",
            "ede": 15,
            "edeText": "blocked",
            "openTelemetryTraceID": "ffffffff",
        });
        let mut expected = expected.as_object().cloned().unwrap_or_default();
        expected.extend(rest.as_object().cloned().unwrap_or_default());
        assert_eq!(obj, expected);
        // Key order is part of the interface, not only the set of keys.
        let expected_keys = keys(&expected);
        assert_eq!(keys(&obj), expected_keys);
        assert_eq!(message_to_json(&msg), obj);
    }

    #[test]
    fn an_empty_frame_has_the_one_x_keys_and_nothing_else() {
        let obj = frame_to_json(&[], &EventMeta::default());
        assert_eq!(keys(&obj), ONE_X_KEYS);
        assert_eq!(
            Value::Object(obj),
            json!({"answer": "", "origRequestor": "", "preason": "", "qid": "", "qr": false,
                   "question": "", "rcode": 0, "requestor": "", "responder": "", "tags": [],
                   "timeSec": 0, "timeUsec": 0, "type": ""})
        );
    }

    #[test]
    fn a_query_with_a_response_block_is_not_a_response() {
        // dnsdist sends a response block with query times on queries.
        let mut msg = full_response();
        msg.r#type = pb::MessageType::DnsQueryType as i32;
        let obj = message_to_json(&msg);
        assert_eq!(obj["qr"], false);
        assert_eq!(obj["messageType"], "DNSQueryType");
        assert!(!obj.contains_key("latencyUsec"));
        msg.r#type = pb::MessageType::DnsIncomingResponseType as i32;
        assert_eq!(message_to_json(&msg)["qr"], true);
    }

    #[test]
    fn latency_needs_all_four_times_and_is_never_negative() {
        let mut msg = full_response();
        if let Some(r) = msg.response.as_mut() {
            r.query_time_sec = Some(1_700_000_002);
        }
        assert!(!message_to_json(&msg).contains_key("latencyUsec"));
        if let Some(r) = msg.response.as_mut() {
            r.query_time_sec = Some(1_700_000_001);
            r.query_time_usec = None;
        }
        assert!(!message_to_json(&msg).contains_key("latencyUsec"));
    }

    #[test]
    fn the_store_time_fills_in_for_a_message_without_one() {
        let msg = pb::Message {
            r#type: 1,
            ..Default::default()
        };
        let meta = EventMeta {
            time_us: Some(1_700_000_000_123_456),
            time_from_receive: true,
        };
        let obj = frame_to_json(&msg.encode_to_vec(), &meta);
        assert_eq!(obj["timeSec"], 1_700_000_000u64);
        assert_eq!(obj["timeUsec"], 123_456);
        assert_eq!(obj["timeFromReceive"], true);
        assert_eq!(keys(&obj).last(), Some(&"timeFromReceive"));

        // The message's own time wins over the store's.
        let msg = pb::Message {
            r#type: 1,
            time_sec: Some(5),
            time_usec: Some(6),
            ..Default::default()
        };
        let obj = frame_to_json(&msg.encode_to_vec(), &meta);
        assert_eq!(
            (obj["timeSec"].as_u64(), obj["timeUsec"].as_u64()),
            (Some(5), Some(6))
        );
        assert!(!frame_to_json(&msg.encode_to_vec(), &EventMeta::default())
            .contains_key("timeFromReceive"));
    }

    #[test]
    fn ipv6_addresses_and_records() {
        let v6 = |s: &str| s.parse::<Ipv6Addr>().map(|a| a.octets().to_vec()).ok();
        let msg = pb::Message {
            r#type: 2,
            socket_family: Some(pb::SocketFamily::Inet6 as i32),
            from: v6("2001:db8::1"),
            to: v6("::1"),
            original_requestor_subnet: v6("2001:db8:aa::"),
            question: Some(pb::Question {
                q_name: Some("v6.test.".into()),
                q_type: Some(28),
                q_class: None,
            }),
            response: Some(pb::Response {
                rrs: vec![
                    pb::Record {
                        r#type: Some(28),
                        rdata: v6("2001:db8::80"),
                        ..Default::default()
                    },
                    pb::Record {
                        r#type: Some(28),
                        rdata: v6("fe80::1:2"),
                        ..Default::default()
                    },
                ],
                ..Default::default()
            }),
            ..Default::default()
        };
        let obj = message_to_json(&msg);
        assert_eq!(obj["requestor"], "2001:db8::1");
        assert_eq!(obj["responder"], "::1");
        assert_eq!(obj["origRequestor"], "2001:db8:aa::");
        assert_eq!(obj["socketFamily"], "INET6");
        assert_eq!(obj["type"], "AAAA");
        assert_eq!(obj["answer"], "2001:db8::80, fe80::1:2");
        assert_eq!(
            obj["rrs"],
            json!([{"type": "AAAA", "rdata": "2001:db8::80"}, {"type": "AAAA", "rdata": "fe80::1:2"}])
        );
    }

    #[test]
    fn odd_bytes_become_hex() {
        let msg = pb::Message {
            r#type: 1,
            message_id: Some(vec![1, 2, 3]),
            from: Some(vec![1, 2, 3, 4, 5]),
            server_identity: Some(vec![0xff, 0xfe]),
            device_id: Some(b"phone-7".to_vec()),
            response: Some(pb::Response {
                rrs: vec![
                    pb::Record {
                        r#type: Some(1),
                        rdata: Some(vec![1, 2, 3]),
                        ..Default::default()
                    },
                    pb::Record {
                        r#type: Some(16),
                        rdata: Some(vec![0xc3, 0x28]),
                        ..Default::default()
                    },
                ],
                ..Default::default()
            }),
            ..Default::default()
        };
        let obj = message_to_json(&msg);
        assert_eq!(obj["qid"], "010203");
        assert_eq!(obj["requestor"], "0102030405");
        assert_eq!(obj["serverIdentity"], "fffe");
        assert_eq!(obj["deviceId"], "phone-7");
        assert_eq!(obj["answer"], "010203, c328");
    }

    #[test]
    fn unknown_numbers_stay_numbers() {
        let msg = pb::Message {
            r#type: 9,
            socket_protocol: Some(42),
            question: Some(pb::Question {
                q_type: Some(4242),
                ..Default::default()
            }),
            response: Some(pb::Response {
                rcode: Some(65536),
                validation_state: Some(99),
                rrs: vec![pb::Record {
                    r#type: Some(4242),
                    rdata: Some(b"\\# 0".to_vec()),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            trace: vec![pb::TraceEvent {
                event: 7,
                ..Default::default()
            }],
            ..Default::default()
        };
        let obj = message_to_json(&msg);
        assert_eq!(obj["type"], "TYPE4242");
        assert_eq!(obj["qtype"], 4242);
        assert_eq!(obj["messageType"], 9);
        assert_eq!(obj["qr"], false);
        assert_eq!(obj["socketProtocol"], 42);
        assert_eq!(obj["rcode"], 65536);
        assert_eq!(obj["rcodeName"], "NETWORK_ERROR");
        assert_eq!(obj["validationState"], 99);
        assert_eq!(obj["rrs"][0]["type"], "TYPE4242");
        assert_eq!(obj["trace"][0]["event"], 7);
    }

    /// A response as dnspcap2protobuf 4.7.3 writes it: field 13 as tag 0x6a and five zero bytes
    /// (a length placeholder never filled in), then the response's fields.
    #[test]
    fn an_undecodable_frame_shows_the_fields_before_the_damage() {
        let good = pb::Message {
            r#type: 2,
            message_id: Some(vec![0x11; 16]),
            from: Some(vec![127, 0, 0, 1]),
            to: Some(vec![127, 0, 0, 2]),
            time_sec: Some(1_700_000_000),
            time_usec: Some(7),
            question: Some(pb::Question {
                q_name: Some("a.test.".into()),
                q_type: Some(15),
                q_class: Some(1),
            }),
            ..Default::default()
        };
        let mut frame = good.encode_to_vec();
        let prefix_len = frame.len();
        frame.extend_from_slice(&[0x6a, 0, 0, 0, 0, 0, 0x08, 0x03]);
        assert!(pb::Message::decode(frame.as_slice()).is_err());

        let obj = frame_to_json(&frame, &EventMeta::default());
        assert_eq!(&keys(&obj)[..13], ONE_X_KEYS);
        assert_eq!(obj["undecodable"], true);
        assert_eq!(obj["question"], "a.test.");
        assert_eq!(obj["type"], "MX");
        assert_eq!(obj["requestor"], "127.0.0.1");
        assert_eq!(obj["responder"], "127.0.0.2");
        assert_eq!(obj["qid"], "11111111-1111-1111-1111-111111111111");
        assert_eq!(obj["qr"], true);
        assert_eq!(obj["timeSec"], 1_700_000_000u64);
        assert_eq!(obj["rcode"], 0);
        let error = obj["error"].as_str().unwrap_or_default();
        assert!(error.contains("field number 0"), "{error}");
        assert!(
            error.contains(&format!("byte {}", prefix_len + 2)),
            "{error}"
        );
    }

    #[test]
    fn a_field_that_walks_but_does_not_decode_stops_the_prefix() {
        // qName (field 12.1) that is not UTF-8, then a valid id that must not be shown.
        let mut frame = pb::Message {
            r#type: 1,
            id: Some(7),
            ..Default::default()
        }
        .encode_to_vec();
        frame.extend_from_slice(&[0x62, 0x03, 0x0a, 0x01, 0xff]);
        frame.extend_from_slice(&[0x58, 0x09]);
        let obj = frame_to_json(&frame, &EventMeta::default());
        assert_eq!(obj["undecodable"], true);
        assert_eq!(obj["id"], 7);
        assert_eq!(obj["messageType"], "DNSQueryType");
        let error = obj["error"].as_str().unwrap_or_default();
        assert!(
            error.starts_with("not a valid PBDNSMessage: field 12"),
            "{error}"
        );
    }

    #[test]
    fn never_panics_on_hostile_bytes() {
        let seeds: [&[u8]; 8] = [
            &[0xff; 11],
            &[0x08],
            &[0x12, 0xff, 0xff, 0xff, 0xff, 0x0f],
            &[0x0b, 0x0c],
            &[0x0e],
            &[0x0d, 1, 2],
            &[0x09, 1, 2, 3, 4, 5, 6, 7],
            &[0x62, 0x02, 0x12, 0x05],
        ];
        for seed in seeds {
            let obj = frame_to_json(seed, &EventMeta::default());
            assert_eq!(obj["undecodable"], true, "{seed:?}");
            assert!(obj.contains_key("error"));
        }
        // Every cut and every single-byte change of a full message.
        let frame = full_response().encode_to_vec();
        for cut in 0..frame.len() {
            let obj = frame_to_json(frame.get(..cut).unwrap_or_default(), &EventMeta::default());
            assert_eq!(&keys(&obj)[..13], ONE_X_KEYS);
        }
        for i in 0..frame.len() {
            for x in [0x00, 0x80, 0xff] {
                let mut bad = frame.clone();
                if let Some(b) = bad.get_mut(i) {
                    *b ^= x;
                }
                let obj = frame_to_json(&bad, &EventMeta::default());
                assert_eq!(&keys(&obj)[..13], ONE_X_KEYS);
            }
        }
    }
}
