//! Synthetic PowerDNS protobuf traffic, shaped like what dnsdist 1.7 sends through `RemoteLogAction` and
//! `RemoteLogResponseAction(rl, nil, true)` on a busy resolver: a framed stream (2-byte big-endian length,
//! then one `PBDNSMessage`) of queries, each followed 0.1-50 ms later, interleaved with other traffic, by
//! its response carrying the same messageId.
//!
//! The point is a realistic input for the storage-format benchmark, so the things that decide how well a
//! stream compresses follow real traffic: qnames drawn Zipf-like from a fixed set of plausible names,
//! clients Zipf-like from a fixed set of addresses, answers (addresses, TTL, CNAME) a pure function of the
//! name, and the incompressible parts (messageId, DNS id, source port) random as they are in real life.
//! The output is a function of the arguments alone: the same `--seed` gives the same bytes.
//!
//! ```text
//! cargo run --release --example gen_traffic -- --events 5000000 > traffic.pb
//! ```

use std::cmp::Ordering;
use std::collections::{BinaryHeap, HashSet};
use std::io::{self, BufWriter, Write};
use std::process::ExitCode;

use clap::Parser;
use dstore::pb;
use prost::Message as _;

/// Write a synthetic dnsdist 1.7 protobuf stream (2-byte framed PBDNSMessage) to stdout.
#[derive(Parser, Debug)]
#[command(name = "gen_traffic")]
struct Args {
    /// Frames to write in total, queries and responses together.
    #[arg(long, default_value_t = 1_000_000)]
    events: u64,
    /// Seed of the pseudo-random generator: the same seed gives the same stream.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Distinct client addresses.
    #[arg(long, default_value_t = 5000, value_parser = clap::value_parser!(u32).range(1..))]
    clients: u32,
    /// Distinct query names.
    #[arg(long, default_value_t = 200_000, value_parser = clap::value_parser!(u32).range(1..))]
    names: u32,
    /// Frames per second of simulated time (queries and responses together).
    #[arg(long, default_value_t = 100_000.0)]
    rate: f64,
    /// Unix time of the first frame, in seconds.
    #[arg(long, default_value_t = 1_767_225_600)]
    start: u64,
}

const QTYPE_A: u32 = 1;
const QTYPE_NS: u32 = 2;
const QTYPE_CNAME: u32 = 5;
const QTYPE_SOA: u32 = 6;
const QTYPE_PTR: u32 = 12;
const QTYPE_MX: u32 = 15;
const QTYPE_TXT: u32 = 16;
const QTYPE_AAAA: u32 = 28;
const QTYPE_SRV: u32 = 33;
const QTYPE_HTTPS: u32 = 65;

const RCODE_NOERROR: u32 = 0;
const RCODE_SERVFAIL: u32 = 2;
const RCODE_NXDOMAIN: u32 = 3;
const RCODE_REFUSED: u32 = 5;

/// Share of all queries per qtype for ordinary host names (reverse names only ever get PTR).
/// A and AAAA come out near 60% and 25% of all traffic once the ~3% of PTR is added.
const QTYPE_SHARE: &[(u32, f64)] = &[
    (QTYPE_A, 0.62),
    (QTYPE_AAAA, 0.26),
    (QTYPE_HTTPS, 0.07),
    (QTYPE_TXT, 0.02),
    (QTYPE_MX, 0.015),
    (QTYPE_NS, 0.005),
    (QTYPE_SOA, 0.005),
    (QTYPE_SRV, 0.005),
];
/// How often an A query is followed at once by the AAAA query for the same name from the same client,
/// as dual-stack stub resolvers do.
const AAAA_FOLLOWS_A: f64 = 0.3;
const SERVFAIL_SHARE: f64 = 0.01;
const REFUSED_SHARE: f64 = 0.0005;
/// Queries that never get an answer: dnsdist logs no response for a backend timeout.
const UNANSWERED_SHARE: f64 = 0.001;
const TCP_SHARE: f64 = 0.05;
const IPV6_CLIENT_SHARE: f64 = 0.1;
/// Names this popular always resolve; below them a share of names does not exist, tuned so that about
/// 8% of responses are NXDOMAIN.
const ALWAYS_EXISTING_NAMES: usize = 1000;
const NONEXISTENT_NAME_SHARE: f64 = 0.18;
const REVERSE_NAME_SHARE: f64 = 0.03;
const BASE_DOMAINS: usize = 2000;

/// SplitMix64: tiny, fast, and good enough for traffic that only has to look plausible.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Rng(seed)
    }

    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Uniform in [0, n).
    fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }

    /// Uniform in [lo, hi].
    fn between(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi - lo + 1)
    }

    fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }

    /// Index drawn with the given relative weights.
    fn weighted(&mut self, weights: &[f64]) -> usize {
        let total: f64 = weights.iter().sum();
        let mut x = self.unit() * total;
        for (i, w) in weights.iter().enumerate() {
            if x < *w {
                return i;
            }
            x -= w;
        }
        weights.len() - 1
    }

    /// A rank in [0, n) with P(k) close to 1/(k+1): Zipf with exponent 1, by inverting the continuous
    /// distribution (log-uniform), which needs no table.
    fn zipf(&mut self, n: usize) -> usize {
        let r = ((self.unit() * ((n + 1) as f64).ln()).exp() - 1.0) as usize;
        r.min(n - 1)
    }

    /// Exponentially distributed with the given mean.
    fn exponential(&mut self, mean: f64) -> f64 {
        -(1.0 - self.unit()).ln() * mean
    }

    fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            let bytes = self.next_u64().to_le_bytes();
            chunk.copy_from_slice(&bytes[..chunk.len()]);
        }
    }
}

/// FNV-1a: the stable hash from which everything about a name's answers is derived.
fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

const WORDS: &[&str] = &[
    "acme", "alpha", "amber", "anchor", "apex", "arrow", "atlas", "aurora", "azure", "beacon",
    "bear", "berry", "birch", "blue", "bold", "bright", "brook", "cactus", "canyon", "carbon",
    "cedar", "cherry", "citrus", "civic", "cloud", "cobalt", "comet", "coral", "crane", "crest",
    "crystal", "cyber", "dawn", "delta", "desert", "digital", "dragon", "dune", "eagle", "echo",
    "ember", "falcon", "fern", "fiber", "field", "flash", "forest", "fox", "frost", "galaxy",
    "garden", "giant", "glacier", "globe", "gold", "granite", "green", "harbor", "hawk", "haven",
    "horizon", "hub", "iron", "island", "jade", "jet", "kite", "lake", "laser", "leaf", "lemon",
    "light", "lime", "lion", "logic", "lotus", "lunar", "magnet", "maple", "marble", "matrix",
    "meadow", "metro", "mint", "moon", "mosaic", "nano", "nest", "net", "nova", "oak", "ocean",
    "olive", "omega", "onyx", "orbit", "otter", "owl", "palm", "panda", "paper", "peak", "pearl",
    "pepper", "pilot", "pine", "pixel", "planet", "polar", "prime", "pulse", "quantum", "quartz",
    "rabbit", "radar", "rain", "raven", "red", "ridge", "river", "rocket", "rose", "ruby", "sage",
    "salt", "sand", "shadow", "signal", "silver", "sky", "smart", "snow", "solar", "sonic",
    "spark", "spring", "star", "stone", "storm", "summit", "sun", "swift", "tango", "terra",
    "tide", "tiger", "timber", "titan", "trail", "tree", "tribe", "true", "tulip", "urban",
    "valley", "vector", "velvet", "vertex", "violet", "vista", "wave", "willow", "wind", "wolf",
    "zen", "zephyr", "shop", "media", "news", "bank", "health", "travel", "games", "music",
    "photo", "video", "data", "tech", "labs", "systems", "group", "online", "world", "home",
    "city", "mail", "app", "soft",
];

/// The heads of real traffic, most popular first.
#[rustfmt::skip]
const FAMOUS_DOMAINS: &[&str] = &[
    "google.com", "googleapis.com", "gstatic.com", "facebook.com", "apple.com", "icloud.com",
    "microsoft.com", "windows.com", "amazonaws.com", "cloudflare.com", "akamaiedge.net",
    "akamaihd.net", "youtube.com", "googlevideo.com", "instagram.com", "whatsapp.net",
    "netflix.com", "nflxvideo.net", "doubleclick.net", "googlesyndication.com", "office.com",
    "live.com", "msftconnecttest.com", "azure.com", "github.com", "twitter.com", "tiktokcdn.com",
    "spotify.com", "amazon.com", "linkedin.com", "yahoo.com", "wikipedia.org", "mozilla.org",
    "ubuntu.com", "debian.org", "cloudfront.net", "fastly.net", "edgekey.net", "sentry.io",
    "digicert.com", "letsencrypt.org", "ntp.org", "samsung.com", "xiaomi.com", "roblox.com",
    "discord.com", "zoom.us", "slack.com", "dropbox.com", "adobe.com", "bing.com", "reddit.com",
    "twitch.tv", "heise.de", "spiegel.de", "bol.com", "nu.nl", "bbc.co.uk", "lemonde.fr",
    "yandex.ru",
];

/// Top-level suffixes with their weights among generated base domains.
const TLDS: &[(&str, f64)] = &[
    ("com", 46.0),
    ("net", 10.0),
    ("org", 7.0),
    ("de", 6.0),
    ("nl", 4.0),
    ("io", 3.0),
    ("co.uk", 3.0),
    ("fr", 2.5),
    ("ru", 2.5),
    ("jp", 2.0),
    ("info", 2.0),
    ("eu", 1.5),
    ("it", 1.5),
    ("es", 1.5),
    ("pl", 1.0),
    ("be", 1.0),
    ("se", 1.0),
    ("ch", 1.0),
    ("cloud", 1.0),
    ("app", 1.0),
    ("dev", 1.0),
    ("com.br", 1.0),
];

#[rustfmt::skip]
const HOST_LABELS: &[&str] = &[
    "api", "mail", "cdn", "static", "img", "images", "login", "auth", "accounts", "m", "app",
    "graph", "edge", "video", "ns1", "ns2", "smtp", "imap", "mx", "push", "update", "updates",
    "telemetry", "metrics", "ads", "tracking", "analytics", "s3", "storage", "assets", "media",
    "content", "clients", "connect", "play", "gateway", "portal", "shop", "news", "blog", "docs",
    "support", "status", "time", "ntp", "ocsp", "crl", "config", "settings", "sync", "chat", "ws",
    "stream", "live", "dl", "download", "files", "autodiscover", "vpn", "remote", "secure",
    "events", "log", "collector", "beacon", "pixel",
];

const REGION_LABELS: &[&str] = &[
    "eu-west-1",
    "eu-central-1",
    "us-east-1",
    "us-west-2",
    "ap-southeast-1",
    "prod",
    "eu",
    "us",
    "edge",
    "global",
    "r1",
    "r2",
    "r3",
    "r4",
    "web",
    "v2",
    "int",
    "public",
];

/// Suffixes appended by stub resolvers' search lists: a classic source of NXDOMAIN.
const SEARCH_SUFFIXES: &[&str] = &[
    "lan",
    "local",
    "home",
    "corp",
    "internal",
    "localdomain",
    "fritz.box",
];

/// Where popular names alias to.
const CDN_SUFFIXES: &[&str] = &[
    "edgekey.net.",
    "akamaiedge.net.",
    "cdn.cloudflare.net.",
    "cloudfront.net.",
    "azureedge.net.",
    "map.fastly.net.",
    "trafficmanager.net.",
    "elb.amazonaws.com.",
    "ghs.googlehosted.com.",
];

const TTLS: &[u32] = &[
    20, 30, 60, 60, 120, 300, 300, 300, 600, 900, 1800, 3600, 3600, 14400, 86400,
];
const CNAME_TTLS: &[u32] = &[60, 300, 300, 3600, 21600];
const IPV4_FIRST_OCTETS: &[u8] = &[
    13, 18, 23, 31, 34, 35, 52, 54, 64, 69, 76, 93, 104, 142, 151, 157, 172, 185, 192, 199, 204,
    216,
];
const IPV6_PREFIXES: &[[u8; 4]] = &[
    [0x26, 0x06, 0x47, 0x00],
    [0x2a, 0x00, 0x14, 0x50],
    [0x26, 0x20, 0x01, 0xec],
    [0x2a, 0x03, 0x28, 0x80],
    [0x26, 0x00, 0x1f, 0x18],
    [0x2a, 0x04, 0x4e, 0x42],
    [0x20, 0x01, 0x48, 0x60],
];

#[derive(Clone, Copy, PartialEq, Eq)]
enum NameKind {
    /// An ordinary host name that resolves.
    Host,
    /// A `in-addr.arpa.` name, only ever asked for PTR.
    Reverse,
    /// A name that gets NXDOMAIN.
    Nonexistent,
}

struct Name {
    qname: String,
    /// FNV-1a of `qname` (mixed with the seed): the source of its answers.
    hash: u64,
    kind: NameKind,
}

fn base_domains(rng: &mut Rng) -> Vec<String> {
    let tld_weights: Vec<f64> = TLDS.iter().map(|t| t.1).collect();
    let mut seen = HashSet::new();
    let mut bases = Vec::with_capacity(BASE_DOMAINS);
    for d in FAMOUS_DOMAINS {
        if seen.insert(d.to_string()) {
            bases.push(d.to_string());
        }
    }
    while bases.len() < BASE_DOMAINS {
        let a = rng.pick(WORDS);
        let b = rng.pick(WORDS);
        let stem = match rng.below(10) {
            0..=3 => format!("{a}{b}"),
            4..=5 => format!("{a}-{b}"),
            6..=7 => (*a).to_string(),
            8 => format!("{a}{}", rng.between(1, 99)),
            _ => format!("my{a}"),
        };
        let tld = TLDS[rng.weighted(&tld_weights)].0;
        let d = format!("{stem}.{tld}");
        if seen.insert(d.clone()) {
            bases.push(d);
        }
    }
    bases
}

fn hex_label(rng: &mut Rng, len: usize) -> String {
    const HEX: &[u8] = b"0123456789abcdef";
    (0..len).map(|_| char::from(*rng.pick(HEX))).collect()
}

fn junk_label(rng: &mut Rng, len: usize) -> String {
    const ALNUM: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    (0..len).map(|_| char::from(*rng.pick(ALNUM))).collect()
}

/// The name at popularity rank `rank`, always the same for a given seed.
fn make_name(seed: u64, rank: usize, bases: &[String]) -> Name {
    let mut rng = Rng::new(seed ^ (rank as u64).wrapping_mul(0xA24B_AED4_963E_E407));
    // Popular names sit under popular base domains.
    let base = &bases[if rank < 50 {
        rng.zipf(60.min(bases.len()))
    } else {
        rng.zipf(bases.len())
    }];
    let (qname, kind) = if rank >= ALWAYS_EXISTING_NAMES && rng.chance(REVERSE_NAME_SHARE) {
        let name = if rng.chance(0.5) {
            format!(
                "{}.{}.{}.10.in-addr.arpa.",
                rng.below(256),
                rng.below(256),
                rng.below(256)
            )
        } else {
            let first = rng.pick(IPV4_FIRST_OCTETS);
            format!(
                "{}.{}.{}.{first}.in-addr.arpa.",
                rng.below(256),
                rng.below(256),
                rng.below(256)
            )
        };
        (name, NameKind::Reverse)
    } else if rank >= ALWAYS_EXISTING_NAMES && rng.chance(NONEXISTENT_NAME_SHARE) {
        let name = match rng.below(10) {
            0..=4 => {
                let len = 6 + rng.below(10) as usize;
                format!("{}.{base}.", junk_label(&mut rng, len))
            }
            5..=7 => format!(
                "{}.{base}.{}.",
                rng.pick(HOST_LABELS),
                rng.pick(SEARCH_SUFFIXES)
            ),
            _ => format!("{}.{}.", rng.pick(WORDS), rng.pick(SEARCH_SUFFIXES)),
        };
        (name, NameKind::Nonexistent)
    } else {
        let name = match rng.below(100) {
            0..=9 => format!("{base}."),
            10..=24 => format!("www.{base}."),
            25..=52 => format!("{}.{base}.", rng.pick(HOST_LABELS)),
            53..=72 => format!(
                "{}.{}.{base}.",
                rng.pick(HOST_LABELS),
                rng.pick(REGION_LABELS)
            ),
            73..=77 => format!(
                "{}.{}.{}.{base}.",
                rng.pick(HOST_LABELS),
                rng.pick(REGION_LABELS),
                rng.pick(HOST_LABELS)
            ),
            78..=89 => {
                let len = 8 + rng.below(17) as usize;
                format!(
                    "{}.{}.{base}.",
                    hex_label(&mut rng, len),
                    rng.pick(HOST_LABELS)
                )
            }
            _ => match rng.below(3) {
                0 => format!("srv{}.{base}.", rng.between(1, 40)),
                1 => format!(
                    "node-{:02}.{}.{base}.",
                    rng.between(1, 64),
                    rng.pick(REGION_LABELS)
                ),
                _ => format!("e{}.a.{base}.", rng.between(100, 99999)),
            },
        };
        (name, NameKind::Host)
    };
    let hash = fnv1a(qname.as_bytes()) ^ seed.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    Name { qname, hash, kind }
}

/// Length of a name in DNS wire format.
fn wire_len(name: &str) -> u64 {
    name.len() as u64 + 1
}

struct Client {
    addr: Vec<u8>,
    family: pb::SocketFamily,
}

fn make_clients(rng: &mut Rng, n: u32) -> Vec<Client> {
    (0..n)
        .map(|_| {
            if rng.chance(IPV6_CLIENT_SHARE) {
                let mut addr = vec![0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
                addr[4] = 0;
                addr[5] = rng.below(16) as u8;
                rng.fill(&mut addr[6..]);
                Client {
                    addr,
                    family: pb::SocketFamily::Inet6,
                }
            } else {
                let mut addr = vec![10, 0, 0, 0];
                rng.fill(&mut addr[1..]);
                Client {
                    addr,
                    family: pb::SocketFamily::Inet,
                }
            }
        })
        .collect()
}

const SERVERS_V4: [[u8; 4]; 2] = [[192, 0, 2, 53], [192, 0, 2, 54]];
const SERVERS_V6: [[u8; 16]; 2] = [
    [
        0x20, 0x01, 0x0d, 0xb8, 0xff, 0xff, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x53,
    ],
    [
        0x20, 0x01, 0x0d, 0xb8, 0xff, 0xff, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x54,
    ],
];

/// What a name's answers look like, derived from its hash alone.
struct Answers {
    ttl: u32,
    /// The alias chain, each the target of the one before, the first owned by the qname.
    cnames: Vec<String>,
    cname_ttl: u32,
    a: Vec<[u8; 4]>,
    aaaa: Vec<[u8; 16]>,
    /// Wire bytes of answer data for the qtypes whose records dnsdist does not export.
    other_rdata: u64,
    /// Wire bytes of the SOA in the authority section of a negative answer.
    soa_bytes: u64,
}

fn answers(name: &Name) -> Answers {
    let mut rng = Rng::new(name.hash);
    let ttl = *rng.pick(TTLS);
    // Aliases as the big CDNs hand them out; Akamai-style ones chain twice.
    let mut cnames = Vec::new();
    if rng.chance(0.35) {
        let stem = name.qname.trim_end_matches('.');
        match rng.below(5) {
            0 => {
                cnames.push(format!("{stem}.edgekey.net."));
                let n = rng.between(100, 99999);
                cnames.push(format!("e{n}.dsc{}.akamaiedge.net.", rng.below(10)));
            }
            1 => {
                let word = rng.pick(WORDS);
                cnames.push(format!(
                    "{word}-{}.trafficmanager.net.",
                    rng.pick(REGION_LABELS)
                ));
                cnames.push(format!("{word}.azureedge.net."));
            }
            2 => cnames.push(format!("d{}.cloudfront.net.", hex_label(&mut rng, 13))),
            3 => cnames.push(format!("{stem}.cdn.cloudflare.net.")),
            _ => {
                let label = format!("{}-{}", rng.pick(WORDS), rng.pick(REGION_LABELS));
                cnames.push(format!("{label}.{}", rng.pick(CDN_SUFFIXES)));
            }
        }
    }
    let cname_ttl = *rng.pick(CNAME_TTLS);
    let a_count = 1 + rng.weighted(&[40.0, 25.0, 20.0, 15.0]);
    let first = *rng.pick(IPV4_FIRST_OCTETS);
    let a = (0..a_count)
        .map(|_| {
            let mut addr = [first, 0, 0, 0];
            rng.fill(&mut addr[1..]);
            addr
        })
        .collect();
    let aaaa_count = if rng.chance(0.7) {
        1 + rng.weighted(&[50.0, 30.0, 12.0, 8.0])
    } else {
        0
    };
    let prefix = *rng.pick(IPV6_PREFIXES);
    let aaaa = (0..aaaa_count)
        .map(|_| {
            let mut addr = [0u8; 16];
            addr[..4].copy_from_slice(&prefix);
            rng.fill(&mut addr[4..]);
            addr
        })
        .collect();
    let other_rdata = rng.between(30, 200);
    let soa_bytes = rng.between(60, 90);
    Answers {
        ttl,
        cnames,
        cname_ttl,
        a,
        aaaa,
        other_rdata,
        soa_bytes,
    }
}

fn record(name: &str, rtype: u32, ttl: u32, rdata: Vec<u8>) -> pb::Record {
    pb::Record {
        name: Some(name.to_string()),
        r#type: Some(rtype),
        class: Some(1),
        ttl: Some(ttl),
        rdata: Some(rdata),
        udr: None,
    }
}

/// The response part of a response message and its size on the wire.
fn respond(
    name: &Name,
    qtype: u32,
    query_bytes: u64,
    rng: &mut Rng,
) -> (u32, Vec<pb::Record>, u64) {
    const RR_FIXED: u64 = 12; // compressed owner name, type, class, ttl, rdlength
    if rng.chance(SERVFAIL_SHARE) {
        return (RCODE_SERVFAIL, Vec::new(), query_bytes);
    }
    if rng.chance(REFUSED_SHARE) {
        return (RCODE_REFUSED, Vec::new(), query_bytes);
    }
    let ans = answers(name);
    if name.kind == NameKind::Nonexistent || (name.kind == NameKind::Reverse && name.hash % 5 < 2) {
        return (
            RCODE_NXDOMAIN,
            Vec::new(),
            query_bytes + RR_FIXED + ans.soa_bytes,
        );
    }
    let mut rrs = Vec::new();
    let mut bytes = query_bytes;
    let mut owner = name.qname.as_str();
    for target in &ans.cnames {
        rrs.push(record(
            owner,
            QTYPE_CNAME,
            ans.cname_ttl,
            target.as_bytes().to_vec(),
        ));
        bytes += RR_FIXED + wire_len(target);
        owner = target;
    }
    match qtype {
        QTYPE_A => {
            for addr in &ans.a {
                rrs.push(record(owner, QTYPE_A, ans.ttl, addr.to_vec()));
                bytes += RR_FIXED + 4;
            }
        }
        QTYPE_AAAA if ans.aaaa.is_empty() => bytes += RR_FIXED + ans.soa_bytes,
        QTYPE_AAAA => {
            for addr in &ans.aaaa {
                rrs.push(record(owner, QTYPE_AAAA, ans.ttl, addr.to_vec()));
                bytes += RR_FIXED + 16;
            }
        }
        // dnsdist exports only A, AAAA and CNAME records: the rest shows only in the size.
        _ => bytes += RR_FIXED + ans.other_rdata,
    }
    (RCODE_NOERROR, rrs, bytes)
}

/// A query waiting for its response, ordered by when the response is due.
struct Pending {
    due_ns: u64,
    seq: u64,
    name: usize,
    query: pb::Message,
}

impl Ord for Pending {
    fn cmp(&self, other: &Self) -> Ordering {
        // Reversed: BinaryHeap is a max-heap and the earliest due must come out first.
        (other.due_ns, other.seq).cmp(&(self.due_ns, self.seq))
    }
}

impl PartialOrd for Pending {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Pending {
    fn eq(&self, other: &Self) -> bool {
        (self.due_ns, self.seq) == (other.due_ns, other.seq)
    }
}

impl Eq for Pending {}

fn split_time(ns: u64) -> (u32, u32) {
    (
        (ns / 1_000_000_000) as u32,
        ((ns % 1_000_000_000) / 1000) as u32,
    )
}

/// Backend latency in nanoseconds: mostly cache hits under a millisecond, the rest 2-50 ms.
fn latency_ns(rng: &mut Rng) -> u64 {
    let (lo, hi): (f64, f64) = if rng.chance(0.7) {
        (100e3, 1e6)
    } else {
        (2e6, 50e6)
    };
    (lo * (hi / lo).powf(rng.unit())) as u64
}

#[derive(Default)]
struct Tally {
    events: u64,
    bytes: u64,
    queries: u64,
    responses: u64,
    nxdomain: u64,
    servfail: u64,
    a: u64,
    aaaa: u64,
}

struct Generator {
    rng: Rng,
    names: Vec<Name>,
    clients: Vec<Client>,
    /// Draw weights per qtype that, with the AAAA follow-ups, give the `QTYPE_SHARE` mix.
    qtype_weights: Vec<f64>,
    follow_up: Option<(usize, usize)>,
}

impl Generator {
    fn new(args: &Args) -> Self {
        let mut rng = Rng::new(args.seed);
        let bases = base_domains(&mut rng);
        let names = (0..args.names as usize)
            .map(|r| make_name(args.seed, r, &bases))
            .collect();
        let clients = make_clients(&mut rng, args.clients);
        // An A draw yields 1 + q queries on average; solve for the draw weights that give the shares.
        let share_a = QTYPE_SHARE[0].1;
        let draw_a = share_a / (1.0 - share_a * AAAA_FOLLOWS_A);
        let per_draw = 1.0 + draw_a * AAAA_FOLLOWS_A;
        let qtype_weights = QTYPE_SHARE
            .iter()
            .map(|&(t, share)| match t {
                QTYPE_A => draw_a,
                QTYPE_AAAA => share * per_draw - draw_a * AAAA_FOLLOWS_A,
                _ => share * per_draw,
            })
            .collect();
        Generator {
            rng,
            names,
            clients,
            qtype_weights,
            follow_up: None,
        }
    }

    /// A new query at `now_ns`: (name index, message).
    fn query(&mut self, now_ns: u64) -> (usize, pb::Message) {
        let rng = &mut self.rng;
        let (client, name, qtype) = match self.follow_up.take() {
            Some((client, name)) => (client, name, QTYPE_AAAA),
            None => {
                // Half the traffic from a heavy-tailed few (NATs, mail servers), half spread evenly.
                let client = if rng.chance(0.5) {
                    rng.zipf(self.clients.len())
                } else {
                    rng.below(self.clients.len() as u64) as usize
                };
                let name = rng.zipf(self.names.len());
                let qtype = if self.names[name].kind == NameKind::Reverse {
                    QTYPE_PTR
                } else {
                    QTYPE_SHARE[rng.weighted(&self.qtype_weights)].0
                };
                if qtype == QTYPE_A && rng.chance(AAAA_FOLLOWS_A) {
                    self.follow_up = Some((client, name));
                }
                (client, name, qtype)
            }
        };
        let c = &self.clients[client];
        let server = rng.below(2) as usize;
        let to = match c.family {
            pb::SocketFamily::Inet => SERVERS_V4[server].to_vec(),
            pb::SocketFamily::Inet6 => SERVERS_V6[server].to_vec(),
        };
        let mut message_id = vec![0u8; 16];
        rng.fill(&mut message_id);
        // dnsdist's ids are random (version 4) UUIDs.
        message_id[6] = (message_id[6] & 0x0f) | 0x40;
        message_id[8] = (message_id[8] & 0x3f) | 0x80;
        let protocol = if rng.chance(TCP_SHARE) {
            pb::SocketProtocol::Tcp
        } else {
            pb::SocketProtocol::Udp
        };
        let qname = &self.names[name].qname;
        // Header, question, and usually an EDNS OPT record, sometimes with a cookie.
        let mut in_bytes = 12 + wire_len(qname) + 4;
        if rng.chance(0.9) {
            in_bytes += 11;
            if rng.chance(0.3) {
                in_bytes += 12;
            }
        }
        let (sec, usec) = split_time(now_ns);
        let msg = pb::Message {
            r#type: pb::MessageType::DnsQueryType as i32,
            message_id: Some(message_id),
            socket_family: Some(c.family as i32),
            socket_protocol: Some(protocol as i32),
            from: Some(c.addr.clone()),
            to: Some(to),
            in_bytes: Some(in_bytes),
            time_sec: Some(sec),
            time_usec: Some(usec),
            id: Some(rng.below(65536) as u32),
            question: Some(pb::Question {
                q_name: Some(qname.clone()),
                q_type: Some(qtype),
                q_class: Some(1),
            }),
            // dnsdist 1.7 sends a response block with only the query time on queries too.
            response: Some(pb::Response {
                query_time_sec: Some(sec),
                query_time_usec: Some(usec),
                ..Default::default()
            }),
            from_port: Some(rng.between(1024, 65535) as u32),
            to_port: Some(53),
            ..Default::default()
        };
        (name, msg)
    }

    /// The response to `query`, logged at `now_ns`.
    fn response(
        &mut self,
        name: usize,
        mut msg: pb::Message,
        now_ns: u64,
        tally: &mut Tally,
    ) -> pb::Message {
        let qtype = msg
            .question
            .as_ref()
            .and_then(|q| q.q_type)
            .unwrap_or(QTYPE_A);
        let query_bytes = msg.in_bytes.unwrap_or(40);
        let (rcode, rrs, in_bytes) = respond(&self.names[name], qtype, query_bytes, &mut self.rng);
        match rcode {
            RCODE_NXDOMAIN => tally.nxdomain += 1,
            RCODE_SERVFAIL => tally.servfail += 1,
            _ => {}
        }
        let (sec, usec) = split_time(now_ns);
        msg.r#type = pb::MessageType::DnsResponseType as i32;
        msg.time_sec = Some(sec);
        msg.time_usec = Some(usec);
        msg.in_bytes = Some(in_bytes);
        if let Some(resp) = msg.response.as_mut() {
            resp.rcode = Some(rcode);
            resp.rrs = rrs;
        }
        msg
    }
}

fn write_frame(out: &mut impl Write, msg: &pb::Message, tally: &mut Tally) -> io::Result<()> {
    let body = msg.encode_to_vec();
    let len = u16::try_from(body.len()).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            "message longer than 65535 bytes",
        )
    })?;
    out.write_all(&len.to_be_bytes())?;
    out.write_all(&body)?;
    tally.events += 1;
    tally.bytes += 2 + body.len() as u64;
    Ok(())
}

fn generate(args: &Args, out: &mut impl Write) -> io::Result<Tally> {
    let mut gen = Generator::new(args);
    let mut pending: BinaryHeap<Pending> = BinaryHeap::new();
    let mut tally = Tally::default();
    let mean_gap_ns = 1e9 / args.rate;
    let mut now_ns = args.start.saturating_mul(1_000_000_000);
    let mut seq = 0u64;
    while tally.events < args.events {
        now_ns += gen.rng.exponential(mean_gap_ns) as u64;
        let due = pending.peek().is_some_and(|p| p.due_ns <= now_ns);
        // Stop asking once the answers still owed fill the remaining budget, so every query that is
        // meant to be answered is.
        let room_for_pair = tally.events + pending.len() as u64 + 2 <= args.events;
        if due || (!room_for_pair && !pending.is_empty()) {
            if let Some(p) = pending.pop() {
                now_ns = now_ns.max(p.due_ns);
                let msg = gen.response(p.name, p.query, now_ns, &mut tally);
                write_frame(out, &msg, &mut tally)?;
                tally.responses += 1;
            }
        } else {
            let (name, msg) = gen.query(now_ns);
            write_frame(out, &msg, &mut tally)?;
            tally.queries += 1;
            match msg.question.as_ref().and_then(|q| q.q_type) {
                Some(QTYPE_A) => tally.a += 1,
                Some(QTYPE_AAAA) => tally.aaaa += 1,
                _ => {}
            }
            if room_for_pair && !gen.rng.chance(UNANSWERED_SHARE) {
                let due_ns = now_ns + latency_ns(&mut gen.rng);
                pending.push(Pending {
                    due_ns,
                    seq,
                    name,
                    query: msg,
                });
                seq += 1;
            }
        }
    }
    out.flush()?;
    Ok(tally)
}

fn percent(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        100.0 * part as f64 / whole as f64
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    if !(args.rate.is_finite() && args.rate > 0.0) {
        eprintln!("gen_traffic: --rate must be a positive number of events per second");
        return ExitCode::from(2);
    }
    let started = std::time::Instant::now();
    let stdout = io::stdout();
    let mut out = BufWriter::with_capacity(1 << 20, stdout.lock());
    let tally = match generate(&args, &mut out) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => return ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("gen_traffic: writing to stdout: {e}");
            return ExitCode::from(2);
        }
    };
    let secs = started.elapsed().as_secs_f64();
    eprintln!(
        "gen_traffic: {} events, {} bytes, {:.1} bytes/event ({:.2} s, {:.0} events/s)",
        tally.events,
        tally.bytes,
        tally.bytes as f64 / tally.events.max(1) as f64,
        secs,
        tally.events as f64 / secs.max(1e-9),
    );
    eprintln!(
        "gen_traffic: {} queries ({:.1}% A, {:.1}% AAAA), {} responses ({:.1}% NXDOMAIN, {:.1}% SERVFAIL)",
        tally.queries,
        percent(tally.a, tally.queries),
        percent(tally.aaaa, tally.queries),
        tally.responses,
        percent(tally.nxdomain, tally.responses),
        percent(tally.servfail, tally.responses),
    );
    ExitCode::SUCCESS
}
