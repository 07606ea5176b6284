//! The block summary: what a block holds, readable without decompressing it. Counts of message
//! types, qtypes and rcodes answer counting queries outright; a Bloom filter of query names and their
//! parent domains lets a search for a name skip the blocks that cannot hold it. See FORMAT.md,
//! "Summary section".

use super::codec::Event;
use super::hash::FastSet;
use super::schema::Facts;
use super::wire::{put_varint, read_varint};

const SUMMARY_VERSION: u8 = 1;
/// Bloom filter bits per distinct name, and probes per name: about 2% false positives.
const BITS_PER_NAME: usize = 10;
const PROBES: u8 = 6;
const MAX_BLOOM_BYTES: usize = 1 << 20;

/// A decoded summary.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Summary {
    /// (value, events) pairs, ascending by value.
    pub types: Vec<(u32, u64)>,
    pub qtypes: Vec<(u32, u64)>,
    pub rcodes: Vec<(u32, u64)>,
    probes: u8,
    bloom: Vec<u8>,
}

/// A name as the Bloom filter keys it: ASCII-lowercased, without a trailing dot.
pub fn name_key(name: &[u8]) -> Vec<u8> {
    let mut key = Vec::new();
    name_key_into(name, &mut key);
    key
}

fn name_key_into(name: &[u8], key: &mut Vec<u8>) {
    let name = name.strip_suffix(b".").unwrap_or(name);
    key.clear();
    key.extend(name.iter().map(u8::to_ascii_lowercase));
}

/// The name and each parent domain: `www.example.com`, `example.com`, `com`.
fn name_and_parents(key: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut rest = Some(key);
    std::iter::from_fn(move || {
        let current = rest.filter(|r| !r.is_empty())?;
        rest = current
            .iter()
            .position(|&b| b == b'.')
            .map(|i| &current[i + 1..]);
        Some(current)
    })
}

/// FNV-1a 64 of the key, then the splitmix64 finaliser for well-spread bits.
fn hash(key: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in key {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h ^= h >> 30;
    h = h.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h ^= h >> 27;
    h = h.wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^ (h >> 31)
}

/// Bit positions of a key: probe i is (h1 + i × h2) mod bits.
fn probes(key: &[u8], probes: u8, bits: u64) -> impl Iterator<Item = u64> {
    probe_bits(hash(key), probes, bits)
}

fn probe_bits(h: u64, probes: u8, bits: u64) -> impl Iterator<Item = u64> {
    let (h1, h2) = (h & 0xffff_ffff, (h >> 32) | 1);
    (0..u64::from(probes)).map(move |i| h1.wrapping_add(i.wrapping_mul(h2)) % bits)
}

/// Events per value of one field; a block holds a handful of distinct values, so a short list
/// searched in order beats a map.
#[derive(Default)]
struct Counts(Vec<(u32, u64)>);

impl Counts {
    #[inline]
    fn add(&mut self, value: u32) {
        match self.0.iter_mut().find(|(v, _)| *v == value) {
            Some((_, n)) => *n += 1,
            None => self.0.push((value, 1)),
        }
    }

    fn encode_into(mut self, out: &mut Vec<u8>) {
        self.0.sort_unstable();
        put_varint(out, self.0.len() as u64);
        for (k, n) in self.0 {
            put_varint(out, u64::from(k));
            put_varint(out, n);
        }
    }
}

/// Builds the summary section of a block of `events`, from what `schema::inspect` found in each
/// (`facts`, `None` for the undecodable ones): type (1), question.qName (12.1), question.qType
/// (12.2) and response.rcode (13.1), the last occurrence of each.
pub fn build(events: &[Event], facts: &[Option<Facts>]) -> Vec<u8> {
    let (mut types, mut qtypes, mut rcodes) =
        (Counts::default(), Counts::default(), Counts::default());
    // The hashes of the distinct names and parents: the filter's size follows their number.
    let mut hashes: FastSet<u64> =
        FastSet::with_capacity_and_hasher(events.len(), Default::default());
    // Names already taken in, as sent: popular names come back many times in a block, and one
    // lookup costs less than keying and hashing a name and its parents again.
    let mut seen: FastSet<&[u8]> = FastSet::with_capacity_and_hasher(1024, Default::default());
    let mut key = Vec::new();
    for (e, f) in events.iter().zip(facts) {
        let Some(f) = f else { continue };
        for (counts, v) in [
            (&mut types, f.kind),
            (&mut qtypes, f.qtype),
            (&mut rcodes, f.rcode),
        ] {
            if let Some(v) = v {
                counts.add(v as u32);
            }
        }
        if let Some(q) = f.qname(e.frame).filter(|q| seen.insert(q)) {
            name_key_into(q, &mut key);
            hashes.extend(name_and_parents(&key).map(hash));
        }
    }
    let bits = (hashes.len() * BITS_PER_NAME)
        .clamp(64, MAX_BLOOM_BYTES * 8)
        .next_multiple_of(8);
    let mut bloom = vec![0u8; bits / 8];
    for &h in &hashes {
        for bit in probe_bits(h, PROBES, bits as u64) {
            bloom[(bit / 8) as usize] |= 1 << (bit % 8);
        }
    }
    let mut out = vec![SUMMARY_VERSION];
    types.encode_into(&mut out);
    qtypes.encode_into(&mut out);
    rcodes.encode_into(&mut out);
    out.push(PROBES);
    put_varint(&mut out, bloom.len() as u64);
    out.extend_from_slice(&bloom);
    let crc = crc32fast::hash(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

impl Summary {
    /// Parses a summary section; `None` if it is damaged (its own CRC fails) or of an unknown
    /// version, in which case a reader opens the block instead.
    pub fn decode(bytes: &[u8]) -> Option<Summary> {
        let (body, crc) = bytes.split_last_chunk::<4>()?;
        if crc32fast::hash(body) != u32::from_le_bytes(*crc)
            || body.first() != Some(&SUMMARY_VERSION)
        {
            return None;
        }
        let mut pos = 1;
        let mut counts = || -> Option<Vec<(u32, u64)>> {
            let n = read_varint(body, &mut pos)?;
            let mut v = Vec::with_capacity(n.min(1024) as usize);
            for _ in 0..n {
                let k = u32::try_from(read_varint(body, &mut pos)?).ok()?;
                v.push((k, read_varint(body, &mut pos)?));
            }
            Some(v)
        };
        let (types, qtypes, rcodes) = (counts()?, counts()?, counts()?);
        let probes = *body.get(pos)?;
        pos += 1;
        let len = usize::try_from(read_varint(body, &mut pos)?).ok()?;
        let bloom = body.get(pos..pos.checked_add(len)?)?.to_vec();
        (pos + len == body.len() && !bloom.is_empty()).then_some(Summary {
            types,
            qtypes,
            rcodes,
            probes,
            bloom,
        })
    }

    /// False only if no event of the block has `name` (a key from `name_key`) as its query name
    /// or as a parent domain of it.
    pub fn may_hold_name(&self, key: &[u8]) -> bool {
        let bits = self.bloom.len() as u64 * 8;
        probes(key, self.probes, bits)
            .all(|bit| self.bloom[(bit / 8) as usize] & (1 << (bit % 8)) != 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::codec::FLAG_UNDECODABLE;

    #[test]
    fn parents_and_keys() {
        let key = name_key(b"WWW.Example.COM.");
        assert_eq!(key, b"www.example.com");
        let all: Vec<&[u8]> = name_and_parents(&key).collect();
        assert_eq!(all, [&b"www.example.com"[..], b"example.com", b"com"]);
        assert_eq!(name_and_parents(b"").count(), 0);
    }

    #[test]
    fn counts_and_names_survive_a_round_trip() {
        // type=1, question{qName="A.example.", qType=28}; type=2, same question, response{rcode=3}
        let q = [
            0x08, 0x01, 0x62, 0x0e, 0x0a, 0x0a, b'A', b'.', b'e', b'x', b'a', b'm', b'p', b'l',
            b'e', b'.', 0x10, 0x1c,
        ];
        let mut r = q.to_vec();
        r[1] = 2;
        r.extend_from_slice(&[0x6a, 0x02, 0x08, 0x03]);
        let events = [
            Event {
                frame: &q,
                time_us: 1,
                flags: 0,
            },
            Event {
                frame: &r,
                time_us: 2,
                flags: 0,
            },
            Event {
                frame: &[0x08, 0x05, 0xff],
                time_us: 3,
                flags: FLAG_UNDECODABLE,
            },
        ];
        let facts: Vec<_> = events
            .iter()
            .map(|e| crate::format::schema::inspect(e.frame))
            .collect();
        assert_eq!(facts[2], None, "the third frame does not decode");
        let s = Summary::decode(&build(&events, &facts)).unwrap();
        assert_eq!(s.types, vec![(1, 1), (2, 1)]);
        assert_eq!(s.qtypes, vec![(28, 2)]);
        assert_eq!(s.rcodes, vec![(3, 1)]);
        assert!(s.may_hold_name(b"a.example"));
        assert!(s.may_hold_name(b"example"));
        assert!(!s.may_hold_name(b"b.example"));
        let mut bytes = build(&events, &facts);
        bytes[3] ^= 1;
        assert_eq!(Summary::decode(&bytes), None, "damage is detected");
    }
}
