//! What a search asks for, and whether an event has it: shared by `dstore grep` and the HTTP gateway.
//! Conditions of different kinds must all hold; several values of one kind are alternatives. An event
//! is read at the wire level (`View`) without decoding the whole message, and a block whose summary
//! rules a search out is never opened.

use crate::dns::{qtype_from_name, rcode_from_name};
use crate::format::codec::{Columns, FLAG_UNDECODABLE};
use crate::format::summary::{name_key, Summary};
use crate::format::wire::{read_field, read_varint, WIRE_LEN, WIRE_VARINT};
use crate::format::{StoredEvent, TimeRange};
use crate::net::Cidr;
use crate::timespec::{parse_duration, parse_time};
use std::net::IpAddr;

/// An answer condition: an address (or range) in an A/AAAA record, or a name in any record.
#[derive(Clone, Debug)]
pub enum Answer {
    Address(Cidr),
    Name(Vec<u8>),
}

#[derive(Clone, Debug, Default)]
pub struct Filter {
    /// From (inclusive) to (exclusive).
    pub time: Option<TimeRange>,
    /// Name keys (lowercase, no trailing dot).
    pub qnames: Vec<Vec<u8>>,
    pub domains: Vec<Vec<u8>>,
    pub qname_regex: Option<regex::bytes::Regex>,
    pub qtypes: Vec<u32>,
    pub rcodes: Vec<u32>,
    pub rcodes_not: Vec<u32>,
    pub types: Vec<u32>,
    pub requestors: Vec<Cidr>,
    pub responders: Vec<Cidr>,
    /// Either side of the exchange.
    pub addresses: Vec<Cidr>,
    pub answers: Vec<Answer>,
    pub ecs: Vec<Cidr>,
    pub ids: Vec<Vec<u8>>,
    pub policies: Vec<Vec<u8>>,
    /// Only events with an applied policy (1.x egateway `has_preason`).
    pub has_policy: bool,
    pub tags: Vec<Vec<u8>>,
    pub server_identities: Vec<Vec<u8>>,
    pub requestor_ids: Vec<Vec<u8>>,
    pub device_ids: Vec<Vec<u8>>,
    pub device_names: Vec<Vec<u8>>,
    pub protocols: Vec<u32>,
}

/// (name, type, rdata) of an answer record.
pub type Record<'a> = (Option<&'a [u8]>, Option<u32>, Option<&'a [u8]>);

/// The fields of one PBDNSMessage that filters look at, read from the wire without allocating for
/// the common fields. The last occurrence of a singular field wins, as protobuf requires.
#[derive(Default, Debug)]
pub struct View<'a> {
    pub kind: Option<u32>,
    pub message_id: Option<&'a [u8]>,
    pub server_identity: Option<&'a [u8]>,
    pub protocol: Option<u32>,
    pub from: Option<&'a [u8]>,
    pub to: Option<&'a [u8]>,
    pub qname: Option<&'a [u8]>,
    pub qtype: Option<u32>,
    pub rcode: Option<u32>,
    pub policy: Option<&'a [u8]>,
    pub tags: Vec<&'a [u8]>,
    pub ecs: Option<&'a [u8]>,
    pub requestor_id: Option<&'a [u8]>,
    pub device_id: Option<&'a [u8]>,
    pub device_name: Option<&'a [u8]>,
    pub records: Vec<Record<'a>>,
}

fn fields(buf: &[u8]) -> impl Iterator<Item = (u32, &[u8])> {
    let mut pos = 0;
    std::iter::from_fn(move || {
        let f = read_field(buf, &mut pos, false)?;
        Some((f.tag, &buf[f.value_start..f.value_end]))
    })
}

fn varint(tag: u32, v: &[u8]) -> Option<u32> {
    ((tag & 7) as u8 == WIRE_VARINT)
        .then(|| read_varint(v, &mut 0).map(|x| x as u32))
        .flatten()
}

fn bytes(tag: u32, v: &[u8]) -> Option<&[u8]> {
    ((tag & 7) as u8 == WIRE_LEN).then_some(v)
}

impl<'a> View<'a> {
    pub fn parse(frame: &'a [u8]) -> View<'a> {
        let mut v = View::default();
        for (tag, value) in fields(frame) {
            match tag >> 3 {
                1 => v.kind = varint(tag, value),
                2 => v.message_id = bytes(tag, value),
                3 => v.server_identity = bytes(tag, value),
                5 => v.protocol = varint(tag, value),
                6 => v.from = bytes(tag, value),
                7 => v.to = bytes(tag, value),
                12 if tag & 7 == 2 => {
                    for (t, x) in fields(value) {
                        match t >> 3 {
                            1 => v.qname = bytes(t, x),
                            2 => v.qtype = varint(t, x),
                            _ => {}
                        }
                    }
                }
                13 if tag & 7 == 2 => {
                    for (t, x) in fields(value) {
                        match t >> 3 {
                            1 => v.rcode = varint(t, x),
                            2 if t & 7 == 2 => {
                                let mut rr = (None, None, None);
                                for (rt, rx) in fields(x) {
                                    match rt >> 3 {
                                        1 => rr.0 = bytes(rt, rx),
                                        2 => rr.1 = varint(rt, rx),
                                        5 => rr.2 = bytes(rt, rx),
                                        _ => {}
                                    }
                                }
                                v.records.push(rr);
                            }
                            3 => v.policy = bytes(t, x),
                            4 => v.tags.extend(bytes(t, x)),
                            _ => {}
                        }
                    }
                }
                14 => v.ecs = bytes(tag, value),
                15 => v.requestor_id = bytes(tag, value),
                17 => v.device_id = bytes(tag, value),
                19 => v.device_name = bytes(tag, value),
                _ => {}
            }
        }
        v
    }
}

/// The fields `matches_view` reads that a block's columns can give without rebuilding frames.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Field {
    Kind,
    MessageId,
    ServerIdentity,
    Protocol,
    From,
    To,
    Qname,
    Qtype,
    Rcode,
    Policy,
    Ecs,
    RequestorId,
    DeviceId,
    DeviceName,
}

impl Field {
    /// The field's path: its tags from the top-level message down.
    pub fn path(self) -> &'static [u32] {
        match self {
            Field::Kind => &[0x08],
            Field::MessageId => &[0x12],
            Field::ServerIdentity => &[0x1a],
            Field::Protocol => &[0x28],
            Field::From => &[0x32],
            Field::To => &[0x3a],
            Field::Qname => &[0x62, 0x0a],
            Field::Qtype => &[0x62, 0x10],
            Field::Rcode => &[0x6a, 0x08],
            Field::Policy => &[0x6a, 0x1a],
            Field::Ecs => &[0x72],
            Field::RequestorId => &[0x7a],
            Field::DeviceId => &[138],
            Field::DeviceName => &[154],
        }
    }
}

/// An address from its raw 4 or 16 bytes.
pub fn ip_of(bytes: &[u8]) -> Option<IpAddr> {
    match bytes.len() {
        4 => <[u8; 4]>::try_from(bytes).ok().map(IpAddr::from),
        16 => <[u8; 16]>::try_from(bytes).ok().map(IpAddr::from),
        _ => None,
    }
}

fn strip_dot(name: &[u8]) -> &[u8] {
    name.strip_suffix(b".").unwrap_or(name)
}

/// Whether `name` is `domain` or a name under it (both compared without case and trailing dot).
fn under(name: &[u8], domain: &[u8]) -> bool {
    let name = strip_dot(name);
    if domain.is_empty() {
        return true;
    }
    name.len() >= domain.len()
        && name[name.len() - domain.len()..].eq_ignore_ascii_case(domain)
        && (name.len() == domain.len() || name[name.len() - domain.len() - 1] == b'.')
}

fn any_of<T>(wanted: &[T], f: impl Fn(&T) -> bool) -> bool {
    wanted.is_empty() || wanted.iter().any(f)
}

fn in_ranges(ranges: &[Cidr], bytes: Option<&[u8]>) -> bool {
    ranges.is_empty()
        || bytes
            .and_then(ip_of)
            .is_some_and(|ip| ranges.iter().any(|c| c.contains(ip)))
}

fn equal_to(wanted: &[Vec<u8>], value: Option<&[u8]>) -> bool {
    wanted.is_empty() || value.is_some_and(|v| wanted.iter().any(|w| w.as_slice() == v))
}

impl Filter {
    /// Whether any condition looks inside the message (as opposed to time only).
    pub fn has_field_conditions(&self) -> bool {
        !(self.qnames.is_empty()
            && self.domains.is_empty()
            && self.qname_regex.is_none()
            && self.qtypes.is_empty()
            && self.rcodes.is_empty()
            && self.rcodes_not.is_empty()
            && self.types.is_empty()
            && self.requestors.is_empty()
            && self.responders.is_empty()
            && self.addresses.is_empty()
            && self.answers.is_empty()
            && self.ecs.is_empty()
            && self.ids.is_empty()
            && self.policies.is_empty()
            && !self.has_policy
            && self.tags.is_empty()
            && self.server_identities.is_empty()
            && self.requestor_ids.is_empty()
            && self.device_ids.is_empty()
            && self.device_names.is_empty()
            && self.protocols.is_empty())
    }

    pub fn range(&self) -> TimeRange {
        self.time.unwrap_or(TimeRange::ALL)
    }

    /// Whether a stored event matches. Undecodable events match a search by time only.
    pub fn matches(&self, event: &StoredEvent) -> bool {
        if !self.range().contains(event.time_us) {
            return false;
        }
        if !self.has_field_conditions() {
            return true;
        }
        // An unchecked frame (of a degraded block) is checked only when it would match.
        event.flags & FLAG_UNDECODABLE == 0
            && self.matches_view(&View::parse(event.frame))
            && !event.undecodable()
    }

    pub fn matches_view(&self, v: &View) -> bool {
        let qname = v.qname.unwrap_or_default();
        any_of(&self.qnames, |k| {
            v.qname.is_some() && strip_dot(qname).eq_ignore_ascii_case(k)
        }) && any_of(&self.domains, |d| v.qname.is_some() && under(qname, d))
            && self
                .qname_regex
                .as_ref()
                .is_none_or(|re| v.qname.is_some_and(|q| re.is_match(q)))
            && any_of(&self.qtypes, |t| v.qtype == Some(*t))
            && any_of(&self.rcodes, |r| v.rcode == Some(*r))
            && (self.rcodes_not.is_empty()
                || v.rcode.is_some_and(|r| !self.rcodes_not.contains(&r)))
            && any_of(&self.types, |t| v.kind == Some(*t))
            && in_ranges(&self.requestors, v.from)
            && in_ranges(&self.responders, v.to)
            && (self.addresses.is_empty()
                || in_ranges(&self.addresses, v.from)
                || in_ranges(&self.addresses, v.to))
            && any_of(&self.answers, |a| {
                v.records.iter().any(|rr| answer_matches(a, rr))
            })
            && in_ranges(&self.ecs, v.ecs)
            && equal_to(&self.ids, v.message_id)
            && (!self.has_policy || v.policy.is_some_and(|x| !x.is_empty()))
            && any_of(&self.policies, |p| {
                v.policy.is_some_and(|x| x.eq_ignore_ascii_case(p))
            })
            && any_of(&self.tags, |t| v.tags.contains(&t.as_slice()))
            && equal_to(&self.server_identities, v.server_identity)
            && equal_to(&self.requestor_ids, v.requestor_id)
            && equal_to(&self.device_ids, v.device_id)
            && equal_to(&self.device_names, v.device_name)
            && any_of(&self.protocols, |p| v.protocol == Some(*p))
    }

    /// The fields this filter reads, when columns can answer it (no answer or tag conditions).
    pub fn columns(&self) -> Option<Vec<Field>> {
        if !self.answers.is_empty() || !self.tags.is_empty() {
            return None;
        }
        let mut fields = Vec::new();
        let mut want = |used: bool, f: Field| {
            if used {
                fields.push(f);
            }
        };
        want(!self.types.is_empty(), Field::Kind);
        want(!self.ids.is_empty(), Field::MessageId);
        want(!self.server_identities.is_empty(), Field::ServerIdentity);
        want(!self.protocols.is_empty(), Field::Protocol);
        want(
            !self.requestors.is_empty() || !self.addresses.is_empty(),
            Field::From,
        );
        want(
            !self.responders.is_empty() || !self.addresses.is_empty(),
            Field::To,
        );
        want(
            !self.qnames.is_empty() || !self.domains.is_empty() || self.qname_regex.is_some(),
            Field::Qname,
        );
        want(!self.qtypes.is_empty(), Field::Qtype);
        want(
            !self.rcodes.is_empty() || !self.rcodes_not.is_empty(),
            Field::Rcode,
        );
        want(!self.policies.is_empty() || self.has_policy, Field::Policy);
        want(!self.ecs.is_empty(), Field::Ecs);
        want(!self.requestor_ids.is_empty(), Field::RequestorId);
        want(!self.device_ids.is_empty(), Field::DeviceId);
        want(!self.device_names.is_empty(), Field::DeviceName);
        Some(fields)
    }

    /// Whether event `i` of a block read by columns (the `fields` of `columns()`) matches.
    pub fn matches_columns(&self, cols: &Columns, fields: &[Field], i: usize) -> bool {
        if !self.range().contains(cols.times[i]) || cols.flags[i] & FLAG_UNDECODABLE != 0 {
            return false;
        }
        if let Some(frame) = cols.opaque_frame(i) {
            // An unchecked frame (of a degraded block) is checked only when it would match.
            return self.matches_view(&View::parse(frame)) && !cols.undecodable(i);
        }
        let mut v = View::default();
        for (w, f) in fields.iter().enumerate() {
            let n = || cols.number(w, i).map(|x| x as u32);
            let b = cols.bytes(w, i);
            match f {
                Field::Kind => v.kind = n(),
                Field::MessageId => v.message_id = b,
                Field::ServerIdentity => v.server_identity = b,
                Field::Protocol => v.protocol = n(),
                Field::From => v.from = b,
                Field::To => v.to = b,
                Field::Qname => v.qname = b,
                Field::Qtype => v.qtype = n(),
                Field::Rcode => v.rcode = n(),
                Field::Policy => v.policy = b,
                Field::Ecs => v.ecs = b,
                Field::RequestorId => v.requestor_id = b,
                Field::DeviceId => v.device_id = b,
                Field::DeviceName => v.device_name = b,
            }
        }
        self.matches_view(&v)
    }

    /// False when a block's summary shows that none of its events can match.
    pub fn block_may_match(&self, s: &Summary) -> bool {
        let has = |counts: &[(u32, u64)], wanted: &[u32]| {
            wanted.is_empty() || counts.iter().any(|(v, n)| *n > 0 && wanted.contains(v))
        };
        any_of(&self.qnames, |k| k.is_empty() || s.may_hold_name(k))
            && any_of(&self.domains, |d| d.is_empty() || s.may_hold_name(d))
            && has(&s.qtypes, &self.qtypes)
            && has(&s.rcodes, &self.rcodes)
            && has(&s.types, &self.types)
    }

    /// The number of matching events of a block taken whole from its summary, when the filter is
    /// one condition on type, qtype or rcode (or none): the count does not need the block opened.
    pub fn count_from_summary(&self, s: &Summary, events: u64) -> Option<u64> {
        let sum = |counts: &[(u32, u64)], keep: &dyn Fn(u32) -> bool| {
            counts
                .iter()
                .filter(|(v, _)| keep(*v))
                .map(|(_, n)| n)
                .sum()
        };
        let only = |kinds: usize| {
            let mut other = self.clone();
            other.time = None;
            match kinds {
                0 => other.types.clear(),
                1 => other.qtypes.clear(),
                _ => {
                    other.rcodes.clear();
                    other.rcodes_not.clear();
                }
            }
            !other.has_field_conditions()
        };
        if !self.has_field_conditions() {
            Some(events)
        } else if only(0) {
            Some(sum(&s.types, &|v| self.types.contains(&v)))
        } else if only(1) {
            Some(sum(&s.qtypes, &|v| self.qtypes.contains(&v)))
        } else if only(2) {
            Some(sum(&s.rcodes, &|v| {
                (self.rcodes.is_empty() || self.rcodes.contains(&v))
                    && !self.rcodes_not.contains(&v)
            }))
        } else {
            None
        }
    }
}

fn answer_matches(a: &Answer, rr: &Record) -> bool {
    match a {
        Answer::Address(c) => {
            matches!(rr.1, Some(1 | 28)) && rr.2.and_then(ip_of).is_some_and(|ip| c.contains(ip))
        }
        Answer::Name(n) => {
            let is_address = matches!(rr.1, Some(1 | 28));
            (!is_address && rr.2.is_some_and(|d| strip_dot(d).eq_ignore_ascii_case(n)))
                || rr.0.is_some_and(|d| strip_dot(d).eq_ignore_ascii_case(n))
        }
    }
}

/// Parses a message type as grep takes it: query, response, outgoing-query, incoming-response,
/// or the number.
pub fn parse_type(s: &str) -> Result<u32, String> {
    Ok(match s.to_ascii_lowercase().as_str() {
        "query" | "q" | "1" => 1,
        "response" | "r" | "2" => 2,
        "outgoing-query" | "outgoing" | "3" => 3,
        "incoming-response" | "incoming" | "4" => 4,
        "internal" | "5" => 5,
        _ => {
            return Err(format!(
                "`{s}` is not a message type: query, response, outgoing-query, incoming-response"
            ))
        }
    })
}

pub fn parse_protocol(s: &str) -> Result<u32, String> {
    Ok(match s.to_ascii_lowercase().as_str() {
        "udp" => 1,
        "tcp" => 2,
        "dot" => 3,
        "doh" => 4,
        "dnscryptudp" | "dnscrypt-udp" => 5,
        "dnscrypttcp" | "dnscrypt-tcp" => 6,
        "doq" => 7,
        n => n.parse().map_err(|_| {
            format!("`{s}` is not a protocol: udp, tcp, dot, doh, doq, dnscrypt-udp, dnscrypt-tcp")
        })?,
    })
}

pub fn parse_qtype(s: &str) -> Result<u32, String> {
    qtype_from_name(s)
        .or_else(|| s.parse().ok())
        .ok_or_else(|| format!("`{s}` is not a qtype (A, AAAA, MX, ... or a number)"))
}

/// An rcode or, with a leading `!`, its negation.
pub fn parse_rcode(s: &str) -> Result<(bool, u32), String> {
    let (negated, name) = match s.strip_prefix('!') {
        Some(rest) => (true, rest),
        None => (false, s),
    };
    let code = rcode_from_name(name)
        .or_else(|| name.parse().ok())
        .ok_or_else(|| format!("`{s}` is not an rcode (NOERROR, NXDOMAIN, SERVFAIL, ... or a number, `!` to negate)"))?;
    Ok((negated, code))
}

/// A messageId as UUID text (hyphens optional) or 32 hex digits.
pub fn parse_id(s: &str) -> Result<Vec<u8>, String> {
    let hex: String = s.chars().filter(|c| *c != '-').collect();
    if hex.len() != 32 || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(format!("`{s}` is not a message id (a UUID)"));
    }
    (0..16)
        .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).map_err(|e| e.to_string()))
        .collect()
}

pub fn parse_name(s: &str) -> Result<Vec<u8>, String> {
    if s.is_empty() || s.chars().any(char::is_whitespace) {
        return Err(format!("`{s}` is not a domain name"));
    }
    Ok(name_key(s.as_bytes()))
}

pub fn parse_answer(s: &str) -> Result<Answer, String> {
    match s.parse::<Cidr>() {
        Ok(c) => Ok(Answer::Address(c)),
        // A slash makes it a range, however malformed: never a name.
        Err(e) if s.contains('/') => Err(e),
        Err(_) => parse_name(s).map(Answer::Name),
    }
}

/// A glob over names (`*` any run of characters, `?` one) as a case-insensitive regex.
pub fn glob_regex(glob: &str) -> Result<regex::bytes::Regex, String> {
    let mut re = String::from("(?i)^");
    for c in glob.chars() {
        match c {
            '*' => re.push_str(".*"),
            '?' => re.push('.'),
            c => re.push_str(&regex::escape(&c.to_string())),
        }
    }
    re.push_str("\\.?$");
    regex::bytes::Regex::new(&re).map_err(|e| e.to_string())
}

pub fn compile_regex(re: &str) -> Result<regex::bytes::Regex, String> {
    regex::bytes::RegexBuilder::new(re)
        .case_insensitive(true)
        .size_limit(1 << 20)
        .build()
        .map_err(|e| {
            let why = e
                .to_string()
                .lines()
                .last()
                .unwrap_or_default()
                .trim()
                .to_string();
            format!("`{re}` is not a valid regex: {why}")
        })
}

/// Adds the dstore 1.x search words: `t=week` (time back from now), `pr=POLICY`, and egateway's
/// `~ANSWER`, `=ID`, `c:REQUESTOR-ID`, `d:DEVICE-ID`, `dn:DEVICE-NAME`, `rcode:3`/`rcode:!0`, an
/// address or range (either side of the exchange), or a domain name (it and the names under it).
pub fn add_term(filter: &mut Filter, term: &str, now_us: u64) -> Result<(), String> {
    let t = term.trim();
    if let Some(window) = t.strip_prefix("t=") {
        let d = match window {
            "hour" => 3600 * 1_000_000,
            "day" => 86_400 * 1_000_000,
            "week" => 7 * 86_400 * 1_000_000,
            "month" => 30 * 86_400 * 1_000_000,
            other => parse_duration(other)?,
        };
        let range = filter.time.get_or_insert(TimeRange::ALL);
        range.from_us = range.from_us.max(now_us.saturating_sub(d));
    } else if let Some(p) = t.strip_prefix("pr=") {
        filter.policies.push(p.as_bytes().to_vec());
    } else if let Some(a) = t.strip_prefix('~') {
        filter.answers.push(parse_answer(a)?);
    } else if let Some(id) = t.strip_prefix('=') {
        filter.ids.push(parse_id(id)?);
    } else if let Some(x) = t.strip_prefix("dn:") {
        filter.device_names.push(x.as_bytes().to_vec());
    } else if let Some(x) = t.strip_prefix("d:") {
        filter.device_ids.push(x.as_bytes().to_vec());
    } else if let Some(x) = t.strip_prefix("c:") {
        filter.requestor_ids.push(x.as_bytes().to_vec());
    } else if let Some(x) = t.strip_prefix("rcode:") {
        let (neg, code) = parse_rcode(x)?;
        if neg {
            filter.rcodes_not.push(code)
        } else {
            filter.rcodes.push(code)
        }
    } else if let Some(x) = t.strip_prefix("from=").or_else(|| t.strip_prefix("to=")) {
        let at = parse_time(x, now_us)?;
        let range = filter.time.get_or_insert(TimeRange::ALL);
        if t.starts_with("from=") {
            range.from_us = at
        } else {
            range.to_us = at
        }
    } else if let Ok(c) = t.parse::<Cidr>() {
        filter.addresses.push(c);
    } else if t.contains('/') {
        return Err(t.parse::<Cidr>().err().unwrap_or_default());
    } else {
        filter
            .domains
            .push(parse_name(t).map_err(|_| format!("`{term}` is not a search word"))?);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_under_a_domain() {
        assert!(under(b"www.Example.com.", b"example.com"));
        assert!(under(b"example.com", b"example.com"));
        assert!(!under(b"badexample.com.", b"example.com"));
        assert!(!under(b"com.", b"example.com"));
        assert!(under(b"anything.", b""));
    }

    #[test]
    fn terms_of_1x() {
        let mut f = Filter::default();
        let now = 10 * 86_400 * 1_000_000;
        for t in [
            "t=week",
            "pr=spamhaus-dbl",
            "~192.0.2.1",
            "=890feb8a-dca0-4e1d-96a0-61a9c360fd4f",
            "c:alice",
            "d:dev1",
            "dn:phone",
            "rcode:!0",
            "10.0.0.0/8",
            "Example.COM.",
        ] {
            add_term(&mut f, t, now).unwrap();
        }
        assert_eq!(f.time.unwrap().from_us, 3 * 86_400 * 1_000_000);
        assert_eq!(f.policies, vec![b"spamhaus-dbl".to_vec()]);
        assert_eq!(f.ids[0].len(), 16);
        assert_eq!(f.rcodes_not, vec![0]);
        assert_eq!(f.domains, vec![b"example.com".to_vec()]);
        assert_eq!(f.device_names, vec![b"phone".to_vec()]);
        assert!(add_term(&mut f, "rcode:BANANA", now).is_err());
        assert!(add_term(&mut f, "=xyz", now).is_err());
        assert!(add_term(&mut f, "t=fortnight", now).is_err());
    }

    #[test]
    fn globs_and_parsers() {
        let re = glob_regex("*.example.com").unwrap();
        assert!(re.is_match(b"www.EXAMPLE.com."));
        assert!(!re.is_match(b"example.org."));
        assert_eq!(parse_rcode("!NXDOMAIN"), Ok((true, 3)));
        assert_eq!(parse_qtype("aaaa"), Ok(28));
        assert_eq!(parse_qtype("65"), Ok(65));
        assert!(parse_qtype("bogus").is_err());
        assert_eq!(parse_type("incoming-response"), Ok(4));
        assert!(compile_regex("(").is_err());
    }
}
