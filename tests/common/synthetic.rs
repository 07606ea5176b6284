//! Synthetic events with every field known, for the tests of grep and the gateway: what each event
//! is as plain data, its frame, and what each search condition means for it, written out
//! independently of src/filter.rs.

use super::*;
use dstore::pb;
use prost::Message as _;
use serde_json::{json, Value};
use std::net::IpAddr;
use std::path::Path;

pub const B: u64 = 1_767_225_600_000_000;
pub const B_SECS: u64 = B / 1_000_000;

pub const QUERY: i32 = 1;
pub const RESPONSE: i32 = 2;
pub const OUTGOING: i32 = 3;
pub const INCOMING: i32 = 4;

// ---------------------------------------------------------------------------------------------
// Synthetic events: what they are, as plain data, and their frames.

#[derive(Clone, Debug)]
pub struct Rr {
    pub name: String,
    pub rtype: u32,
    pub rdata: Vec<u8>,
}

#[derive(Clone, Debug, Default)]
pub struct Ev {
    pub label: String,
    pub time_us: u64,
    pub kind: i32,
    pub id: Option<[u8; 16]>,
    pub qname: Option<String>,
    pub qtype: Option<u32>,
    pub rcode: Option<u32>,
    pub from: Option<IpAddr>,
    pub to: Option<IpAddr>,
    pub protocol: Option<i32>,
    pub server: Option<String>,
    pub records: Vec<Rr>,
    pub policy: Option<String>,
    pub tags: Vec<String>,
    pub ecs: Option<IpAddr>,
    pub requestor_id: Option<String>,
    pub device_id: Option<String>,
    pub device_name: Option<String>,
    /// Written as dnspcap2protobuf 4.7.3 writes responses: a valid message followed by field 13
    /// with an unfilled length placeholder, so the frame as a whole does not decode.
    pub undecodable: bool,
}

pub fn uuid(n: u8) -> [u8; 16] {
    [
        0x89, 0x0f, 0xeb, 0x8a, 0xdc, 0xa0, 0x4e, 0x1d, 0x96, 0xa0, 0x61, 0xa9, 0xc3, 0x60, 0xfd, n,
    ]
}

pub fn uuid_text(id: &[u8; 16]) -> String {
    let hex: String = id.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

pub fn ip(s: &str) -> IpAddr {
    s.parse().unwrap_or_else(|_| panic!("test address {s}"))
}

pub fn octets(a: IpAddr) -> Vec<u8> {
    match a {
        IpAddr::V4(v) => v.octets().to_vec(),
        IpAddr::V6(v) => v.octets().to_vec(),
    }
}

pub fn ev(label: &str, time_us: u64, kind: i32, qname: Option<&str>, qtype: Option<u32>) -> Ev {
    Ev {
        label: label.into(),
        time_us,
        kind,
        qname: qname.map(String::from),
        qtype,
        ..Ev::default()
    }
}

impl Ev {
    pub fn id(mut self, n: u8) -> Ev {
        self.id = Some(uuid(n));
        self
    }
    pub fn from(mut self, a: &str) -> Ev {
        self.from = Some(ip(a));
        self
    }
    pub fn to(mut self, a: &str) -> Ev {
        self.to = Some(ip(a));
        self
    }
    pub fn proto(mut self, p: i32) -> Ev {
        self.protocol = Some(p);
        self
    }
    pub fn server(mut self, s: &str) -> Ev {
        self.server = Some(s.into());
        self
    }
    pub fn rcode(mut self, r: u32) -> Ev {
        self.rcode = Some(r);
        self
    }
    pub fn rr(mut self, name: &str, rtype: u32, rdata: Vec<u8>) -> Ev {
        self.records.push(Rr {
            name: name.into(),
            rtype,
            rdata,
        });
        self
    }
    pub fn a(self, name: &str, addr: &str) -> Ev {
        let rtype = if ip(addr).is_ipv4() { 1 } else { 28 };
        self.rr(name, rtype, octets(ip(addr)))
    }
    pub fn text_rr(self, name: &str, rtype: u32, text: &str) -> Ev {
        self.rr(name, rtype, text.as_bytes().to_vec())
    }
    pub fn policy(mut self, p: &str) -> Ev {
        self.policy = Some(p.into());
        self
    }
    pub fn tags(mut self, t: &[&str]) -> Ev {
        self.tags = t.iter().map(|s| s.to_string()).collect();
        self
    }
    pub fn ecs(mut self, a: &str) -> Ev {
        self.ecs = Some(ip(a));
        self
    }
    pub fn rid(mut self, s: &str) -> Ev {
        self.requestor_id = Some(s.into());
        self
    }
    pub fn did(mut self, s: &str) -> Ev {
        self.device_id = Some(s.into());
        self
    }
    pub fn dname(mut self, s: &str) -> Ev {
        self.device_name = Some(s.into());
        self
    }
    pub fn broken(mut self) -> Ev {
        self.undecodable = true;
        self
    }

    pub fn message(&self) -> pb::Message {
        let family = |a: &IpAddr| if a.is_ipv4() { 1 } else { 2 };
        let has_response = matches!(self.kind, RESPONSE | INCOMING)
            || self.rcode.is_some()
            || !self.records.is_empty()
            || self.policy.is_some()
            || !self.tags.is_empty();
        pb::Message {
            r#type: self.kind,
            message_id: self.id.map(|i| i.to_vec()),
            server_identity: self.server.as_ref().map(|s| s.as_bytes().to_vec()),
            socket_family: self.from.as_ref().map(family),
            socket_protocol: self.protocol,
            from: self.from.map(octets),
            to: self.to.map(octets),
            time_sec: Some((self.time_us / 1_000_000) as u32),
            time_usec: Some((self.time_us % 1_000_000) as u32),
            question: (self.qname.is_some() || self.qtype.is_some()).then(|| pb::Question {
                q_name: self.qname.clone(),
                q_type: self.qtype,
                q_class: Some(1),
            }),
            response: has_response.then(|| pb::Response {
                rcode: self.rcode,
                rrs: self
                    .records
                    .iter()
                    .map(|r| pb::Record {
                        name: Some(r.name.clone()),
                        r#type: Some(r.rtype),
                        class: Some(1),
                        ttl: Some(300),
                        rdata: Some(r.rdata.clone()),
                        udr: None,
                    })
                    .collect(),
                applied_policy: self.policy.clone(),
                tags: self.tags.clone(),
                ..Default::default()
            }),
            original_requestor_subnet: self.ecs.map(octets),
            requestor_id: self.requestor_id.clone(),
            device_id: self.device_id.as_ref().map(|s| s.as_bytes().to_vec()),
            device_name: self.device_name.clone(),
            ..Default::default()
        }
    }

    pub fn frame(&self) -> Vec<u8> {
        let mut f = self.message().encode_to_vec();
        if self.undecodable {
            f.extend_from_slice(&[0x6a, 0, 0, 0, 0, 0, 0x08, 0x03]);
            assert!(pb::Message::decode(f.as_slice()).is_err());
        }
        f
    }

    // What the conditions mean, written out independently of src/filter.rs.

    pub fn qname_is(&self, name: &str) -> bool {
        self.qname.as_deref().is_some_and(|q| norm(q) == norm(name))
    }
    pub fn under(&self, domain: &str) -> bool {
        self.qname.as_deref().is_some_and(|q| under(q, domain))
    }
    pub fn answer_in(&self, range: &str) -> bool {
        self.records.iter().any(|r| {
            matches!((r.rtype, r.rdata.len()), (1, 4) | (28, 16))
                && cidr_contains(range, ip_of(&r.rdata))
        })
    }
    pub fn answer_name(&self, name: &str) -> bool {
        self.records.iter().any(|r| {
            norm(&r.name) == norm(name)
                || (!matches!(r.rtype, 1 | 28)
                    && std::str::from_utf8(&r.rdata).is_ok_and(|t| norm(t) == norm(name)))
        })
    }
    pub fn requestor_in(&self, range: &str) -> bool {
        self.from.is_some_and(|a| cidr_contains(range, a))
    }
    pub fn responder_in(&self, range: &str) -> bool {
        self.to.is_some_and(|a| cidr_contains(range, a))
    }
    pub fn ecs_in(&self, range: &str) -> bool {
        self.ecs.is_some_and(|a| cidr_contains(range, a))
    }
    pub fn policy_is(&self, p: &str) -> bool {
        self.policy
            .as_deref()
            .is_some_and(|x| x.eq_ignore_ascii_case(p))
    }
    pub fn has_tag(&self, t: &str) -> bool {
        self.tags.iter().any(|x| x == t)
    }
    pub fn is_response(&self) -> bool {
        matches!(self.kind, RESPONSE | INCOMING)
    }

    /// The dstore 1.x item keys this event must print.
    pub fn one_x(&self) -> Value {
        let answer: Vec<String> = self.records.iter().map(rdata_text).collect();
        json!({
            "answer": answer.join(", "),
            "origRequestor": self.ecs.map(|a| a.to_string()).unwrap_or_default(),
            "preason": self.policy.clone().unwrap_or_default(),
            "qid": self.id.as_ref().map(uuid_text).unwrap_or_default(),
            "qr": self.is_response(),
            "question": self.qname.clone().unwrap_or_default(),
            "rcode": self.rcode.unwrap_or(0),
            "requestor": self.from.map(|a| a.to_string()).unwrap_or_default(),
            "responder": self.to.map(|a| a.to_string()).unwrap_or_default(),
            "tags": self.tags,
            "timeSec": self.time_us / 1_000_000,
            "timeUsec": self.time_us % 1_000_000,
            "type": self.qtype.map(mnemonic).unwrap_or_default(),
        })
    }
}

pub fn mnemonic(t: u32) -> String {
    match t {
        1 => "A".into(),
        2 => "NS".into(),
        5 => "CNAME".into(),
        15 => "MX".into(),
        16 => "TXT".into(),
        28 => "AAAA".into(),
        65 => "HTTPS".into(),
        other => panic!("no mnemonic for {other} in this test"),
    }
}

pub fn rcode_mnemonic(r: u32) -> &'static str {
    match r {
        0 => "NOERROR",
        2 => "SERVFAIL",
        3 => "NXDOMAIN",
        5 => "REFUSED",
        other => panic!("no rcode name for {other} in this test"),
    }
}

pub fn rdata_text(r: &Rr) -> String {
    if matches!((r.rtype, r.rdata.len()), (1, 4) | (28, 16)) {
        ip_of(&r.rdata).to_string()
    } else {
        String::from_utf8(r.rdata.clone()).expect("text rdata")
    }
}

pub fn ip_of(b: &[u8]) -> IpAddr {
    match b.len() {
        4 => IpAddr::from(<[u8; 4]>::try_from(b).expect("4 bytes")),
        16 => IpAddr::from(<[u8; 16]>::try_from(b).expect("16 bytes")),
        n => panic!("{n} bytes are not an address"),
    }
}

/// A name compared as DNS compares it: any case, the trailing dot optional (the root stays `.`).
pub fn norm(name: &str) -> String {
    let n = name.to_ascii_lowercase();
    match n.strip_suffix('.') {
        Some(s) if !s.is_empty() => s.to_string(),
        _ => n,
    }
}

/// `name` is `domain` or under it.
pub fn under(name: &str, domain: &str) -> bool {
    let (n, d) = (norm(name), norm(domain));
    if d == "." {
        return true;
    }
    n == d || n.ends_with(&format!(".{d}"))
}

/// Whether `range` (an address or `address/prefix`) holds `a`; IPv4-mapped IPv6 addresses count
/// as the IPv4 address they carry.
pub fn cidr_contains(range: &str, a: IpAddr) -> bool {
    let (net, prefix) = match range.split_once('/') {
        Some((n, p)) => (ip(n), p.parse::<u32>().expect("prefix")),
        None => {
            let n = ip(range);
            (n, if n.is_ipv4() { 32 } else { 128 })
        }
    };
    match (net.to_canonical(), a.to_canonical()) {
        (IpAddr::V4(n), IpAddr::V4(x)) => {
            let mask = u32::MAX.checked_shl(32 - prefix).unwrap_or(0);
            u32::from(n) & mask == u32::from(x) & mask
        }
        (IpAddr::V6(n), IpAddr::V6(x)) => {
            let mask = u128::MAX.checked_shl(128 - prefix).unwrap_or(0);
            u128::from(n) & mask == u128::from(x) & mask
        }
        _ => false,
    }
}

/// Frames with 2-byte big-endian length prefixes.
pub fn stream<F: AsRef<[u8]>>(frames: &[F]) -> Vec<u8> {
    let mut out = Vec::new();
    for f in frames {
        let f = f.as_ref();
        out.extend_from_slice(&u16::try_from(f.len()).expect("short frame").to_be_bytes());
        out.extend_from_slice(f);
    }
    out
}

/// Imports `files` (each a list of frames) into the store at `store`, one `dstore import` run each.
pub fn import_files(scratch: &Scratch, store: &Path, files: &[&[Vec<u8>]]) {
    for (n, frames) in files.iter().enumerate() {
        let file = scratch.path(&format!("input-{n}.pb"));
        std::fs::write(&file, stream(frames)).expect("write input");
        let o = run(&[
            "import",
            "-q",
            "--storage-dir",
            store.to_str().expect("utf-8 path"),
            file.to_str().expect("utf-8 path"),
        ]);
        assert!(o.status.success(), "import: {}", stderr(&o));
    }
}

// ---------------------------------------------------------------------------------------------
// Running grep and reading what it prints.

pub fn synthetic_events() -> Vec<Ev> {
    let s = |us: u64| B + us;
    // What a query and its response share: the id, the addresses, the protocol and the rest.
    let alice = |e: Ev| {
        e.id(1)
            .from("192.0.2.1")
            .to("198.51.100.53")
            .proto(1)
            .server("dnsdist-1")
            .rid("alice")
            .did("dev-1")
            .dname("laptop")
    };
    let bob = |e: Ev| {
        e.id(2)
            .from("2001:db8::1")
            .to("2001:db8::53")
            .proto(2)
            .server("dnsdist-2")
            .rid("bob")
    };
    let bad = |e: Ev| e.id(3).from("192.0.2.77").to("198.51.100.53").proto(3);
    let phone = |e: Ev| {
        e.id(4)
            .from("10.1.2.3")
            .to("10.0.0.53")
            .proto(4)
            .ecs("203.0.113.0")
            .did("dev-2")
            .dname("phone")
    };
    let rec = |e: Ev| {
        e.id(5)
            .from("10.0.0.53")
            .to("192.0.2.53")
            .proto(1)
            .server("rec-1")
    };
    let deep = |e: Ev| e.id(8).from("192.0.2.1").to("198.51.100.53").proto(7);
    let upper = |e: Ev| {
        e.id(9)
            .from("192.0.2.2")
            .to("198.51.100.53")
            .proto(1)
            .server("dnsdist-1")
    };
    vec![
        alice(ev("e0", s(0), QUERY, Some("www.Example.COM."), Some(1))),
        alice(ev("e1", s(1), RESPONSE, Some("www.Example.COM."), Some(1)))
            .rcode(0)
            .a("www.example.com.", "192.0.2.80"),
        bob(ev("e2", s(2), QUERY, Some("example.com"), Some(28))),
        bob(ev(
            "e3",
            s(999_999),
            RESPONSE,
            Some("EXAMPLE.com."),
            Some(28),
        ))
        .rcode(0)
        .a("example.com.", "2001:db8::80")
        .a("example.com.", "2001:db8:0:1::81"),
        bad(ev(
            "e4",
            s(1_000_000),
            QUERY,
            Some("badexample.com."),
            Some(1),
        )),
        bad(ev(
            "e5",
            s(1_000_001),
            RESPONSE,
            Some("badexample.com."),
            Some(1),
        ))
        .rcode(3)
        .policy("spamhaus-dbl")
        .tags(&["malware"]),
        // Undecodable: every field a filter looks at is readable before the damage.
        alice(ev(
            "u0",
            s(1_500_000),
            RESPONSE,
            Some("www.example.com."),
            Some(1),
        ))
        .ecs("203.0.113.0")
        .rcode(3)
        .policy("spamhaus-dbl")
        .tags(&["malware"])
        .a("www.example.com.", "192.0.2.80")
        .broken(),
        phone(ev(
            "e6",
            s(2_000_000),
            QUERY,
            Some("Mail.example.com"),
            Some(15),
        )),
        phone(ev(
            "e7",
            s(2_000_500),
            RESPONSE,
            Some("mail.example.com."),
            Some(15),
        ))
        .rcode(0)
        .text_rr("mail.example.com.", 5, "mx.example.net.")
        .a("mx.example.net.", "198.51.100.25"),
        rec(ev(
            "e8",
            s(3_000_000),
            OUTGOING,
            Some("example.com."),
            Some(2),
        )),
        // "ns1.example.com." is 16 bytes long: text, not an IPv6 address.
        rec(ev(
            "e9",
            s(3_000_010),
            INCOMING,
            Some("example.com."),
            Some(2),
        ))
        .rcode(0)
        .text_rr("example.com.", 2, "ns1.example.com."),
        ev(
            "e10",
            s(4_000_000),
            RESPONSE,
            Some("EvIl.Example.Org"),
            Some(1),
        )
        .id(6)
        .from("2001:db8:ffff::9")
        .to("::1")
        .proto(1)
        .ecs("2001:db8:aa::")
        .rid("carol")
        .rcode(5)
        .policy("Custom-Policy")
        .tags(&["blocked", "malware"]),
        ev(
            "e11",
            s(5_000_000),
            RESPONSE,
            Some("xn--bcher-kva.example."),
            Some(16),
        )
        .id(7)
        .from("::ffff:192.0.2.9")
        .to("198.51.100.53")
        .proto(5)
        .rcode(2)
        .text_rr("xn--bcher-kva.example.", 16, "\"hello\""),
        deep(ev(
            "e12",
            s(6_000_000),
            QUERY,
            Some("a.b.c.example.com."),
            Some(65),
        )),
        deep(ev(
            "u1",
            s(7_000_000),
            QUERY,
            Some("a.b.c.example.com."),
            Some(65),
        ))
        .broken(),
        upper(ev(
            "e13",
            s(60_000_000),
            QUERY,
            Some("WWW.EXAMPLE.COM"),
            Some(1),
        )),
        upper(ev(
            "e14",
            s(60_000_001),
            RESPONSE,
            Some("www.example.com."),
            Some(1),
        ))
        .rcode(0)
        .a("www.example.com.", "192.0.2.80")
        .policy("SpamHaus-DBL")
        .tags(&["blocked"]),
        // No question at all.
        ev("e15", s(120_000_000), QUERY, None, None)
            .id(10)
            .from("192.0.2.1")
            .to("198.51.100.53")
            .proto(1),
        // A root priming query, as a recursor sends it.
        ev("e16", s(125_000_000), OUTGOING, Some("."), Some(2))
            .id(11)
            .from("10.0.0.53")
            .to("199.7.83.42")
            .proto(1)
            .server("rec-1"),
        ev(
            "e17",
            s(3_600_000_000),
            RESPONSE,
            Some("example.com."),
            Some(1),
        )
        .id(12)
        .from("192.0.2.3")
        .to("198.51.100.53")
        .proto(1)
        .rcode(0)
        .a("example.com.", "203.0.113.5"),
    ]
}
