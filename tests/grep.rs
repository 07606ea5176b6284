//! `dstore grep` (also run as `dgrep`) as users run it, against stores built by `dstore import`
//! from the shared samples and from synthetic streams whose every field is known here. Each
//! expected answer is computed in this file from the events as built (or, for the samples, from
//! the frames decoded with prost), never by asking the code under test.

mod common;

use common::synthetic::*;
use common::*;
use dstore::pb;
use prost::Message as _;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};

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

fn grep(store: &Path, args: &[&str]) -> Output {
    let mut full = vec!["grep", "--storage-dir", store.to_str().expect("utf-8 path")];
    full.extend_from_slice(args);
    run(&full)
}

fn keys(v: &Value) -> Vec<String> {
    v.as_object()
        .map(|o| o.keys().cloned().collect())
        .unwrap_or_default()
}

fn item_time(item: &Value) -> u64 {
    item["timeSec"].as_u64().expect("timeSec") * 1_000_000
        + item["timeUsec"].as_u64().expect("timeUsec")
}

/// The times of a document's items, none when `items` is not an array.
fn item_times(doc: &Value) -> Vec<u64> {
    doc["items"]
        .as_array()
        .map(|a| a.iter().map(item_time).collect())
        .unwrap_or_default()
}

/// Parses the 1.x document and checks its shape: the four keys in order, `number` the item count,
/// `msec` a number, every item starting with the 1.x keys in their order.
fn try_document(o: &Output, label: &str) -> Result<Value, String> {
    let text = String::from_utf8(o.stdout.clone()).map_err(|_| format!("{label}: not UTF-8"))?;
    if !(text.ends_with("}\n") && text.matches('\n').count() == 1) {
        return Err(format!(
            "{label}: not one line of JSON: {:?} {}",
            &text[..text.len().min(300)],
            stderr(o)
        ));
    }
    let doc: Value = serde_json::from_str(&text)
        .map_err(|e| format!("{label}: not JSON ({e}): {}", &text[..text.len().min(300)]))?;
    if keys(&doc) != ["items", "luaresult", "msec", "number"] {
        return Err(format!("{label}: document keys {:?}", keys(&doc)));
    }
    let items = doc["items"]
        .as_array()
        .ok_or_else(|| format!("{label}: items is not an array"))?;
    if doc["number"].as_u64() != Some(items.len() as u64) {
        return Err(format!(
            "{label}: number {} for {} items",
            doc["number"],
            items.len()
        ));
    }
    if !doc["msec"].as_f64().is_some_and(|m| m >= 0.0) {
        return Err(format!("{label}: msec {}", doc["msec"]));
    }
    if !doc["luaresult"].is_object() {
        return Err(format!("{label}: luaresult {}", doc["luaresult"]));
    }
    for item in items {
        if keys(item).get(..13) != Some(&ONE_X_KEYS.map(String::from)[..]) {
            return Err(format!("{label}: item key order of {item}"));
        }
    }
    Ok(doc)
}

fn document(o: &Output, label: &str) -> Value {
    try_document(o, label).unwrap_or_else(|e| panic!("{e}"))
}

fn ndjson(o: &Output) -> Vec<Value> {
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

fn one_clear_line(o: &Output, label: &str, needle: &str) -> Result<(), String> {
    let err = stderr(o);
    let lines: Vec<&str> = err.lines().collect();
    if o.status.code() != Some(2) {
        return Err(format!(
            "{label}: exit {:?}, want 2; stderr: {err}",
            o.status.code()
        ));
    }
    if err.contains("panicked") || err.contains("RUST_BACKTRACE") {
        return Err(format!("{label}: panicked: {err}"));
    }
    if lines.len() != 1 {
        return Err(format!(
            "{label}: stderr has {} lines, want one:\n{err}",
            lines.len()
        ));
    }
    if !lines[0].contains(needle) {
        return Err(format!(
            "{label}: the message does not name `{needle}`: {err}"
        ));
    }
    if !o.stdout.is_empty() {
        return Err(format!(
            "{label}: printed on stdout: {}",
            String::from_utf8_lossy(&o.stdout)
        ));
    }
    Ok(())
}

/// Events of a store and their frames, as written (sorted by time).
struct Built {
    _scratch: Scratch,
    store: PathBuf,
    evs: Vec<Ev>,
    frames: Vec<Vec<u8>>,
}

fn build(tag: &str, mut evs: Vec<Ev>) -> Built {
    evs.sort_by_key(|e| e.time_us);
    let scratch = Scratch::new(tag);
    let store = scratch.path("store");
    let frames: Vec<Vec<u8>> = evs.iter().map(Ev::frame).collect();
    import_files(&scratch, &store, &[&frames]);
    Built {
        _scratch: scratch,
        store,
        evs,
        frames,
    }
}

impl Built {
    fn labels(&self, idx: &[usize]) -> Vec<String> {
        idx.iter().map(|&i| self.evs[i].label.clone()).collect()
    }
    fn labels_of_times(&self, times: &[u64]) -> Vec<String> {
        times
            .iter()
            .map(|t| {
                self.evs
                    .iter()
                    .find(|e| e.time_us == *t)
                    .map_or_else(|| format!("?{t}"), |e| e.label.clone())
            })
            .collect()
    }

    /// The events (in time order) in [from, to) that satisfy `fields`; undecodable events only
    /// when there is no field condition.
    fn select(&self, time: Option<(u64, u64)>, fields: Option<&dyn Fn(&Ev) -> bool>) -> Vec<usize> {
        (0..self.evs.len())
            .filter(|&i| {
                let e = &self.evs[i];
                time.is_none_or(|(f, t)| f <= e.time_us && e.time_us < t)
                    && match fields {
                        None => true,
                        Some(p) => !e.undecodable && p(e),
                    }
            })
            .collect()
    }

    /// Runs grep with `args` in each output form and compares with `want` (in the order given).
    /// Returns the mismatches found.
    fn check(&self, args: &[&str], want: &[usize]) -> Vec<String> {
        let label = format!("dstore grep {}", args.join(" "));
        let mut bad = Vec::new();
        let want_code = Some(if want.is_empty() { 1 } else { 0 });
        let want_times: Vec<u64> = want.iter().map(|&i| self.evs[i].time_us).collect();

        let o = grep(&self.store, &[args, &["--ndjson"]].concat());
        let got: Vec<u64> = ndjson(&o).iter().map(item_time).collect();
        if o.status.code() != want_code || got != want_times {
            bad.push(format!(
                "{label} --ndjson: exit {:?} (want {want_code:?}), got {:?}, want {:?} {}",
                o.status.code(),
                self.labels_of_times(&got),
                self.labels(want),
                stderr(&o)
            ));
        }

        let o = grep(&self.store, &[args, &["--raw"]].concat());
        let want_frames: Vec<Vec<u8>> = want.iter().map(|&i| self.frames[i].clone()).collect();
        if o.status.code() != want_code || frames_of(&o.stdout) != want_frames {
            bad.push(format!(
                "{label} --raw: exit {:?} (want {want_code:?}), {} frames, want {} equal to the input frames {:?}",
                o.status.code(),
                frames_of(&o.stdout).len(),
                want.len(),
                self.labels(want)
            ));
        }

        bad.extend(count_mismatch(&self.store, args, &label, want.len()));

        let o = grep(&self.store, args);
        match try_document(&o, &label) {
            Err(e) => bad.push(e),
            Ok(doc) => {
                let got: Vec<u64> = item_times(&doc);
                if o.status.code() != want_code || got != want_times {
                    bad.push(format!(
                        "{label}: exit {:?} (want {want_code:?}), items {:?}, want {:?}",
                        o.status.code(),
                        self.labels_of_times(&got),
                        self.labels(want)
                    ));
                }
            }
        }
        bad
    }
}

/// `grep args --count` must print `want` and exit 0, or exit 1 when `want` is 0; the mismatch, if
/// any.
fn count_mismatch(store: &Path, args: &[&str], label: &str, want: usize) -> Option<String> {
    let want_code = Some(if want == 0 { 1 } else { 0 });
    let o = grep(store, &[args, &["--count"]].concat());
    let text = String::from_utf8_lossy(&o.stdout).trim().to_string();
    (o.status.code() != want_code || text != want.to_string()).then(|| {
        format!(
            "{label} --count: exit {:?} (want {want_code:?}), printed {text:?}, want {want} {}",
            o.status.code(),
            stderr(&o)
        )
    })
}

fn report(bad: Vec<String>) {
    assert!(
        bad.is_empty(),
        "{} mismatch(es):\n{}",
        bad.len(),
        bad.join("\n")
    );
}

// ---------------------------------------------------------------------------------------------
// The synthetic store with known answers.

type Pred = Box<dyn Fn(&Ev) -> bool>;

fn p(f: impl Fn(&Ev) -> bool + 'static) -> Option<Pred> {
    Some(Box::new(f))
}

/// Each field condition alone, alternatives of one kind, combinations, and the 1.x words.
#[test]
fn each_filter_alone_and_combined_on_known_events() {
    let s = build("fields", synthetic_events());
    let id1 = uuid_text(&uuid(1));
    let id1_bare = id1.replace('-', "").to_ascii_uppercase();
    let id4 = uuid_text(&uuid(4));
    let eq1 = format!("={id1}");
    let cases: Vec<(Vec<&str>, Option<Pred>)> = vec![
        (vec![], None),
        // Names: odd case, trailing dots, look-alikes, the root, names that are absent.
        (
            vec!["--qname", "www.example.com"],
            p(|e| e.qname_is("www.example.com")),
        ),
        (
            vec!["--qname", "WWW.EXAMPLE.COM."],
            p(|e| e.qname_is("www.example.com")),
        ),
        (
            vec!["--qname", "example.com."],
            p(|e| e.qname_is("example.com")),
        ),
        (vec!["--qname", "."], p(|e| e.qname_is("."))),
        (vec!["--qname", "nowhere.example."], p(|_| false)),
        (
            vec!["--qname", "example.com", "--qname", "badexample.com"],
            p(|e| e.qname_is("example.com") || e.qname_is("badexample.com")),
        ),
        (
            vec!["--domain", "example.com"],
            p(|e| e.under("example.com")),
        ),
        (
            vec!["--domain", "Example.COM."],
            p(|e| e.under("example.com")),
        ),
        (
            vec!["--domain", "badexample.com"],
            p(|e| e.under("badexample.com")),
        ),
        (vec!["--domain", "com"], p(|e| e.under("com"))),
        (vec!["--domain", "."], p(|e| e.qname.is_some())),
        (
            vec!["--domain", "c.example.com"],
            p(|e| e.under("c.example.com")),
        ),
        (
            vec!["--domain", "example.org", "--domain", "example"],
            p(|e| e.under("example.org") || e.under("example")),
        ),
        (
            vec!["--qname-regex", "^www\\."],
            p(|e| {
                e.qname
                    .as_deref()
                    .is_some_and(|q| q.to_ascii_lowercase().starts_with("www."))
            }),
        ),
        (
            vec!["--qname-regex", "EXAMPLE\\.COM\\.$"],
            p(|e| {
                e.qname
                    .as_deref()
                    .is_some_and(|q| q.to_ascii_lowercase().ends_with("example.com."))
            }),
        ),
        (
            vec!["--qname-glob", "*.example.com"],
            p(|e| {
                e.qname
                    .as_deref()
                    .is_some_and(|q| norm(q).ends_with(".example.com"))
            }),
        ),
        (
            vec!["--qname-glob", "?ail.example.com"],
            p(|e| e.qname_is("mail.example.com")),
        ),
        // Types and codes.
        (vec!["--qtype", "AAAA"], p(|e| e.qtype == Some(28))),
        (vec!["--qtype", "aaaa"], p(|e| e.qtype == Some(28))),
        (vec!["--qtype", "28"], p(|e| e.qtype == Some(28))),
        (vec!["--qtype", "HTTPS"], p(|e| e.qtype == Some(65))),
        (
            vec!["--qtype", "A", "--qtype", "MX"],
            p(|e| matches!(e.qtype, Some(1 | 15))),
        ),
        (vec!["--qtype", "SRV"], p(|_| false)),
        (vec!["--rcode", "NXDOMAIN"], p(|e| e.rcode == Some(3))),
        (vec!["--rcode", "nxdomain"], p(|e| e.rcode == Some(3))),
        (vec!["--rcode", "3"], p(|e| e.rcode == Some(3))),
        (vec!["--rcode", "NOERROR"], p(|e| e.rcode == Some(0))),
        (
            vec!["--rcode", "!NOERROR"],
            p(|e| e.rcode.is_some_and(|r| r != 0)),
        ),
        (
            vec!["--rcode", "!0"],
            p(|e| e.rcode.is_some_and(|r| r != 0)),
        ),
        (
            vec!["--rcode", "SERVFAIL", "--rcode", "refused"],
            p(|e| matches!(e.rcode, Some(2 | 5))),
        ),
        (vec!["--type", "query"], p(|e| e.kind == QUERY)),
        (vec!["--type", "response"], p(|e| e.kind == RESPONSE)),
        (vec!["--type", "outgoing-query"], p(|e| e.kind == OUTGOING)),
        (
            vec!["--type", "incoming-response"],
            p(|e| e.kind == INCOMING),
        ),
        (
            vec!["--type", "outgoing-query", "--type", "incoming-response"],
            p(|e| matches!(e.kind, OUTGOING | INCOMING)),
        ),
        // Addresses, IPv4 and IPv6.
        (
            vec!["--requestor", "192.0.2.0/24"],
            p(|e| e.requestor_in("192.0.2.0/24")),
        ),
        (
            vec!["--requestor", "192.0.2.1"],
            p(|e| e.requestor_in("192.0.2.1")),
        ),
        (
            vec!["--requestor", "192.0.2.9"],
            p(|e| e.requestor_in("192.0.2.9")),
        ),
        (
            vec!["--requestor", "2001:db8::/32"],
            p(|e| e.requestor_in("2001:db8::/32")),
        ),
        (
            vec!["--requestor", "2001:DB8::1"],
            p(|e| e.requestor_in("2001:db8::1")),
        ),
        (
            vec![
                "--requestor",
                "10.0.0.0/8",
                "--requestor",
                "2001:db8:ffff::/48",
            ],
            p(|e| e.requestor_in("10.0.0.0/8") || e.requestor_in("2001:db8:ffff::/48")),
        ),
        (vec!["--responder", "::1"], p(|e| e.responder_in("::1"))),
        (
            vec!["--responder", "198.51.100.53/32"],
            p(|e| e.responder_in("198.51.100.53/32")),
        ),
        (
            vec!["--responder", "0.0.0.0/0"],
            p(|e| e.responder_in("0.0.0.0/0")),
        ),
        // Answers: addresses, ranges, names in any record.
        (
            vec!["--answer", "192.0.2.80"],
            p(|e| e.answer_in("192.0.2.80")),
        ),
        (
            vec!["--answer", "2001:db8::/48"],
            p(|e| e.answer_in("2001:db8::/48")),
        ),
        (
            vec!["--answer", "2001:db8:0:1::81"],
            p(|e| e.answer_in("2001:db8:0:1::81")),
        ),
        (vec!["--answer", "::/0"], p(|e| e.answer_in("::/0"))),
        (
            vec!["--answer", "0.0.0.0/0"],
            p(|e| e.answer_in("0.0.0.0/0")),
        ),
        (
            vec!["--answer", "MX.example.NET"],
            p(|e| e.answer_name("mx.example.net")),
        ),
        (
            vec!["--answer", "ns1.example.com."],
            p(|e| e.answer_name("ns1.example.com")),
        ),
        // EDNS client subnet.
        (
            vec!["--ecs", "203.0.113.0/24"],
            p(|e| e.ecs_in("203.0.113.0/24")),
        ),
        (
            vec!["--ecs", "2001:db8:aa::/48"],
            p(|e| e.ecs_in("2001:db8:aa::/48")),
        ),
        // Ids, policies, tags, identities, devices, protocols.
        (vec!["--id", id1.as_str()], p(|e| e.id == Some(uuid(1)))),
        (
            vec!["--id", id1_bare.as_str()],
            p(|e| e.id == Some(uuid(1))),
        ),
        (
            vec!["--id", id1.as_str(), "--id", id4.as_str()],
            p(|e| e.id == Some(uuid(1)) || e.id == Some(uuid(4))),
        ),
        (
            vec!["--policy", "SPAMHAUS-DBL"],
            p(|e| e.policy_is("spamhaus-dbl")),
        ),
        (
            vec!["--policy", "custom-policy"],
            p(|e| e.policy_is("custom-policy")),
        ),
        (vec!["--tag", "malware"], p(|e| e.has_tag("malware"))),
        (vec!["--tag", "blocked"], p(|e| e.has_tag("blocked"))),
        (
            vec!["--server-identity", "dnsdist-1"],
            p(|e| e.server.as_deref() == Some("dnsdist-1")),
        ),
        (
            vec!["--server-identity", "rec-1"],
            p(|e| e.server.as_deref() == Some("rec-1")),
        ),
        (
            vec!["--requestor-id", "alice"],
            p(|e| e.requestor_id.as_deref() == Some("alice")),
        ),
        (
            vec!["--device-id", "dev-2"],
            p(|e| e.device_id.as_deref() == Some("dev-2")),
        ),
        (
            vec!["--device-name", "laptop"],
            p(|e| e.device_name.as_deref() == Some("laptop")),
        ),
        (vec!["--protocol", "udp"], p(|e| e.protocol == Some(1))),
        (vec!["--protocol", "TCP"], p(|e| e.protocol == Some(2))),
        (vec!["--protocol", "dot"], p(|e| e.protocol == Some(3))),
        (vec!["--protocol", "doh"], p(|e| e.protocol == Some(4))),
        (
            vec!["--protocol", "dnscrypt-udp"],
            p(|e| e.protocol == Some(5)),
        ),
        (vec!["--protocol", "doq"], p(|e| e.protocol == Some(7))),
        // With an answer condition, which makes grep read whole frames rather than columns.
        (
            vec!["--device-name", "laptop", "--answer", "192.0.2.80"],
            p(|e| e.device_name.as_deref() == Some("laptop") && e.answer_in("192.0.2.80")),
        ),
        (
            vec!["d:dev-2", "~mx.example.net"],
            p(|e| e.device_id.as_deref() == Some("dev-2") && e.answer_name("mx.example.net")),
        ),
        (
            vec!["--requestor-id", "alice", "--answer", "192.0.2.80"],
            p(|e| e.requestor_id.as_deref() == Some("alice") && e.answer_in("192.0.2.80")),
        ),
        // Combined: every condition must hold.
        (
            vec![
                "--domain",
                "example.com",
                "--type",
                "response",
                "--rcode",
                "NOERROR",
            ],
            p(|e| e.under("example.com") && e.kind == RESPONSE && e.rcode == Some(0)),
        ),
        (
            vec![
                "--requestor",
                "192.0.2.0/24",
                "--qtype",
                "A",
                "--type",
                "query",
            ],
            p(|e| e.requestor_in("192.0.2.0/24") && e.qtype == Some(1) && e.kind == QUERY),
        ),
        (
            vec!["--policy", "spamhaus-dbl", "--rcode", "NXDOMAIN"],
            p(|e| e.policy_is("spamhaus-dbl") && e.rcode == Some(3)),
        ),
        (
            vec!["--qname", "www.example.com", "--answer", "192.0.2.80"],
            p(|e| e.qname_is("www.example.com") && e.answer_in("192.0.2.80")),
        ),
        (
            vec![
                "--requestor",
                "2001:db8::/32",
                "--qtype",
                "AAAA",
                "--protocol",
                "tcp",
            ],
            p(|e| e.requestor_in("2001:db8::/32") && e.qtype == Some(28) && e.protocol == Some(2)),
        ),
        (
            vec!["--domain", "example.com", "--tag", "malware"],
            p(|e| e.under("example.com") && e.has_tag("malware")),
        ),
        // dstore 1.x search words.
        (vec!["pr=spamhaus-dbl"], p(|e| e.policy_is("spamhaus-dbl"))),
        (vec!["~192.0.2.80"], p(|e| e.answer_in("192.0.2.80"))),
        (vec!["~2001:db8::/64"], p(|e| e.answer_in("2001:db8::/64"))),
        (
            vec!["~mx.example.net"],
            p(|e| e.answer_name("mx.example.net")),
        ),
        (vec![eq1.as_str()], p(|e| e.id == Some(uuid(1)))),
        (
            vec!["c:carol"],
            p(|e| e.requestor_id.as_deref() == Some("carol")),
        ),
        (
            vec!["d:dev-1"],
            p(|e| e.device_id.as_deref() == Some("dev-1")),
        ),
        (
            vec!["dn:phone"],
            p(|e| e.device_name.as_deref() == Some("phone")),
        ),
        (vec!["rcode:!0"], p(|e| e.rcode.is_some_and(|r| r != 0))),
        (vec!["rcode:3"], p(|e| e.rcode == Some(3))),
        (vec!["example.com"], p(|e| e.under("example.com"))),
        (vec!["EXAMPLE.ORG."], p(|e| e.under("example.org"))),
        (
            vec!["192.0.2.53"],
            p(|e| e.requestor_in("192.0.2.53") || e.responder_in("192.0.2.53")),
        ),
        (
            vec!["2001:db8::/32"],
            p(|e| e.requestor_in("2001:db8::/32") || e.responder_in("2001:db8::/32")),
        ),
        (
            vec!["pr=spamhaus-dbl", "rcode:3"],
            p(|e| e.policy_is("spamhaus-dbl") && e.rcode == Some(3)),
        ),
        (
            vec!["example.com", "--type", "response", "~192.0.2.80"],
            p(|e| e.under("example.com") && e.kind == RESPONSE && e.answer_in("192.0.2.80")),
        ),
    ];
    let mut bad = Vec::new();
    for (args, pred) in &cases {
        let want = s.select(None, pred.as_deref());
        bad.extend(s.check(args, &want));
    }
    report(bad);
}

/// --from is inclusive and --to exclusive, to the microsecond, in every way a time is written;
/// undecodable events are found by time alone and never by a field.
#[test]
fn time_edges_and_undecodable_events() {
    let s = build("times", synthetic_events());
    let secs = |us: u64| format!("{}.{:06}", (B + us) / 1_000_000, (B + us) % 1_000_000);
    // `--from` and `--to` as given, and the offsets of the window they mean.
    let span = |from: String, to: String, f: u64, t: u64| {
        (vec!["--from".into(), from, "--to".into(), to], f, t)
    };
    let window = |from: u64, to: u64| span(secs(from), secs(to), from, to);
    let owned: Vec<(Vec<String>, u64, u64)> = vec![
        window(0, 1),
        window(1, 2),
        window(1, 1_000_000),
        window(999_999, 1_000_001),
        window(1_000_000, 1_000_001),
        // Whole seconds, without a fraction.
        span(B_SECS.to_string(), (B_SECS + 1).to_string(), 0, 1_000_000),
        // RFC 3339 with and without fractions and zones.
        span(
            "2026-01-01T00:00:01Z".into(),
            "2026-01-01T00:00:01.000001Z".into(),
            1_000_000,
            1_000_001,
        ),
        span(
            "2026-01-01T01:00:00.000001+01:00".into(),
            "2026-01-01T00:00:02Z".into(),
            1,
            2_000_000,
        ),
        span(
            "2026-01-01 00:01:00".into(),
            "2026-01-01T00:01:00.000001Z".into(),
            60_000_000,
            60_000_001,
        ),
        // Only one side.
        (vec!["--to".into(), secs(2)], 0, 2),
        (vec!["--to".into(), secs(0)], 0, 0),
        (
            vec!["--from".into(), secs(3_600_000_000)],
            3_600_000_000,
            u64::MAX - B,
        ),
        (
            vec!["--from".into(), secs(3_600_000_001)],
            3_600_000_001,
            u64::MAX - B,
        ),
        // Undecodable events found by time alone.
        window(1_500_000, 1_500_001),
        window(1_000_001, 2_000_000),
        window(6_000_000, 60_000_000),
        // from= and to= as search words.
        (
            vec![format!("from={}", secs(1)), format!("to={}", secs(2))],
            1,
            2,
        ),
    ];
    let mut bad = Vec::new();
    for (args, from, to) in &owned {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let want = s.select(Some((B + from, B.saturating_add(*to))), None);
        bad.extend(s.check(&args, &want));
    }
    // The undecodable events carry a readable query name, addresses, id, policy, rcode, tags and
    // answer before the damage: no field condition may find them, even with their time.
    let u0 = secs(1_500_000);
    let u0_end = secs(1_500_001);
    let id1 = uuid_text(&uuid(1));
    for cond in [
        vec!["--qname", "www.example.com"],
        vec!["--domain", "example.com"],
        vec!["--qname-regex", "www"],
        vec!["--qtype", "A"],
        vec!["--rcode", "NXDOMAIN"],
        vec!["--rcode", "!0"],
        vec!["--type", "response"],
        vec!["--requestor", "192.0.2.1"],
        vec!["--responder", "198.51.100.53"],
        vec!["--answer", "192.0.2.80"],
        vec!["--ecs", "203.0.113.0/24"],
        vec!["--id", id1.as_str()],
        vec!["--policy", "spamhaus-dbl"],
        vec!["--tag", "malware"],
        vec!["--server-identity", "dnsdist-1"],
        vec!["--requestor-id", "alice"],
        vec!["--device-id", "dev-1"],
        vec!["--device-name", "laptop"],
        vec!["--protocol", "udp"],
        vec!["pr=spamhaus-dbl"],
        vec!["rcode:!0"],
        vec!["192.0.2.1"],
        vec!["www.example.com"],
    ] {
        let args: Vec<&str> = ["--from", u0.as_str(), "--to", u0_end.as_str()]
            .into_iter()
            .chain(cond)
            .collect();
        bad.extend(s.check(&args, &[]));
    }
    // Their items say they are undecodable and keep the 1.x keys.
    let o = grep(&s.store, &["--from", u0.as_str(), "--to", u0_end.as_str()]);
    let doc = document(&o, "undecodable item");
    assert_eq!(doc["number"], 1);
    assert_eq!(doc["items"][0]["undecodable"], true, "{}", doc["items"][0]);
    assert_eq!(item_time(&doc["items"][0]), B + 1_500_000);
    report(bad);
}

/// The 1.x document, item by item, and the other output forms of the same search.
#[test]
fn the_document_ndjson_raw_and_count_agree_with_what_was_stored() {
    let s = build("document", synthetic_events());
    let o = grep(&s.store, &[]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let doc = document(&o, "dstore grep");
    assert_eq!(doc["luaresult"], json!({}));
    let items = doc["items"].as_array().expect("items");
    assert_eq!(items.len(), s.evs.len());
    for (item, e) in items.iter().zip(&s.evs) {
        if e.undecodable {
            assert_eq!(item["undecodable"], true, "{}: {item}", e.label);
            assert_eq!(item_time(item), e.time_us, "{}", e.label);
            continue;
        }
        let first: serde_json::Map<String, Value> = item
            .as_object()
            .expect("item object")
            .iter()
            .take(13)
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        assert_eq!(Value::Object(first), e.one_x(), "{}", e.label);
        assert!(item.get("undecodable").is_none(), "{}: {item}", e.label);
        assert!(item.get("timeFromReceive").is_none(), "{}: {item}", e.label);
    }
    // --ndjson prints the same objects, one a line.
    let o = grep(&s.store, &["--ndjson"]);
    assert_eq!(o.status.code(), Some(0));
    assert_eq!(&ndjson(&o), items);
    // --raw replays exactly the input.
    let o = grep(&s.store, &["--raw"]);
    assert_eq!(o.status.code(), Some(0));
    assert_eq!(o.stdout, stream(&s.frames));
    // The raw output imports again into an equal store.
    let again = Scratch::new("document-again");
    let file = again.path("raw.pb");
    std::fs::write(&file, &o.stdout).expect("write");
    let store2 = again.path("store");
    let o = run(&[
        "import",
        "-q",
        "--storage-dir",
        store2.to_str().expect("path"),
        file.to_str().expect("path"),
    ]);
    assert!(o.status.success());
    assert_eq!(grep(&store2, &["--raw"]).stdout, stream(&s.frames));
    // --count.
    let o = grep(&s.store, &["--count"]);
    assert_eq!(
        String::from_utf8_lossy(&o.stdout),
        format!("{}\n", s.evs.len())
    );
}

/// --limit, --reverse and their combination with filters.
#[test]
fn limit_and_reverse() {
    let s = build("limit", synthetic_events());
    let all = s.select(None, None);
    let example: Vec<usize> = s.select(None, Some(&|e: &Ev| e.under("example.com")));
    let rev = |v: &[usize]| v.iter().rev().copied().collect::<Vec<_>>();
    let mut bad = Vec::new();
    bad.extend(s.check(&["--limit", "3"], &all[..3]));
    bad.extend(s.check(&["--limit", "1"], &all[..1]));
    bad.extend(s.check(&["--limit", "1000"], &all));
    bad.extend(s.check(&["--reverse"], &rev(&all)));
    bad.extend(s.check(&["--reverse", "--limit", "3"], &rev(&all)[..3]));
    bad.extend(s.check(&["--domain", "example.com", "--limit", "2"], &example[..2]));
    bad.extend(s.check(&["--domain", "example.com", "--reverse"], &rev(&example)));
    bad.extend(s.check(
        &["--domain", "example.com", "--reverse", "--limit", "4"],
        &rev(&example)[..4],
    ));
    let from = format!("{}.000001", B_SECS);
    let to = format!("{}", B_SECS + 60);
    let window = s.select(Some((B + 1, B + 60_000_000)), None);
    bad.extend(s.check(
        &["--from", &from, "--to", &to, "--reverse", "--limit", "5"],
        &rev(&window)[..5],
    ));
    report(bad);
}

/// Top-N tables and histograms under luaresult, over the matching events.
#[test]
fn top_and_histogram() {
    let s = build("top", synthetic_events());

    // What --top FIELD must count, from the events as built.
    let count_by = |want: &[usize], key: &dyn Fn(&Ev) -> Vec<String>| {
        let mut m: BTreeMap<String, u64> = BTreeMap::new();
        for &i in want {
            for k in key(&s.evs[i]) {
                *m.entry(k).or_insert(0) += 1;
            }
        }
        m
    };
    type Key = Box<dyn Fn(&Ev) -> Vec<String>>;
    fn key(f: impl Fn(&Ev) -> Vec<String> + 'static) -> Key {
        Box::new(f)
    }
    let fields: Vec<(&str, Key, bool)> = vec![
        // (field, key, whether values are names compared as DNS compares them)
        (
            "qname",
            key(|e| e.qname.iter().map(|q| norm(q)).collect()),
            true,
        ),
        (
            "requestor",
            key(|e| e.from.iter().map(|a| a.to_string()).collect()),
            false,
        ),
        (
            "responder",
            key(|e| e.to.iter().map(|a| a.to_string()).collect()),
            false,
        ),
        (
            "qtype",
            key(|e| e.qtype.iter().map(|&t| mnemonic(t)).collect()),
            false,
        ),
        (
            "rcode",
            key(|e| e.rcode.iter().map(|&r| rcode_mnemonic(r).into()).collect()),
            false,
        ),
        (
            "answer",
            key(|e| e.records.iter().map(rdata_text).collect()),
            false,
        ),
    ];
    let mut bad = Vec::new();
    for filter in [
        vec![],
        vec!["--type", "response"],
        vec!["--domain", "example.com"],
    ] {
        let want = s.select(None, Some(&|_: &Ev| true));
        let want: Vec<usize> = if filter.is_empty() {
            want
        } else if filter[1] == "response" {
            s.select(None, Some(&|e: &Ev| e.kind == RESPONSE))
        } else {
            s.select(None, Some(&|e: &Ev| e.under("example.com")))
        };
        for (field, key, names) in &fields {
            let expected = count_by(&want, key.as_ref());
            let args: Vec<&str> = filter
                .iter()
                .copied()
                .chain(["--top", field, "100"])
                .collect();
            let label = format!("dstore grep {}", args.join(" "));
            let o = grep(&s.store, &args);
            let doc = document(&o, &label);
            let rows = doc["luaresult"]["top"][field].as_array().cloned();
            let Some(rows) = rows else {
                bad.push(format!(
                    "{label}: no luaresult.top.{field}: {}",
                    doc["luaresult"]
                ));
                continue;
            };
            let counts: Vec<u64> = rows.iter().filter_map(|r| r["count"].as_u64()).collect();
            if counts.windows(2).any(|w| w[0] < w[1]) {
                bad.push(format!("{label}: rows not most frequent first: {rows:?}"));
            }
            let mut got: BTreeMap<String, u64> = BTreeMap::new();
            let mut row_count: BTreeMap<String, usize> = BTreeMap::new();
            for r in &rows {
                let v = r["value"].as_str().unwrap_or_default();
                let v = if *names { norm(v) } else { v.to_string() };
                *got.entry(v.clone()).or_insert(0) += r["count"].as_u64().unwrap_or(0);
                *row_count.entry(v).or_insert(0) += 1;
            }
            for (v, n) in &row_count {
                if *n > 1 {
                    bad.push(format!(
                        "{label}: `{v}` is counted in {n} rows: {}",
                        Value::Array(rows.clone())
                    ));
                }
            }
            if got != expected {
                bad.push(format!("{label}: top {got:?}, want {expected:?}"));
            }
        }
    }
    // Top 1 of qname: example.com is asked 5 times (as example.com, EXAMPLE.com., example.com.).
    let o = grep(&s.store, &["--top", "qname", "1"]);
    let doc = document(&o, "--top qname 1");
    let rows = doc["luaresult"]["top"]["qname"].clone();
    let row = rows[0].clone();
    if rows.as_array().map(Vec::len) != Some(1)
        || norm(row["value"].as_str().unwrap_or_default()) != "example.com"
        || row["count"] != 5
    {
        bad.push(format!(
            "dstore grep --top qname 1: {rows}, want one row of example.com counted 5 times"
        ));
    }
    // Top 2 of requestor: 192.0.2.1 (e0 e1 e12 e15) then 10.0.0.53 (e8 e9 e16); the items are all
    // the events still.
    let o = grep(&s.store, &["--top", "requestor", "2"]);
    let doc = document(&o, "--top requestor 2");
    assert_eq!(doc["number"], s.evs.len());
    let want_rows = json!([{"value": "192.0.2.1", "count": 4}, {"value": "10.0.0.53", "count": 3}]);
    if doc["luaresult"]["top"]["requestor"] != want_rows {
        bad.push(format!(
            "dstore grep --top requestor 2: {}, want {want_rows}",
            doc["luaresult"]
        ));
    }

    // Histograms per minute and per hour, undecodable events included (they have a time).
    for (interval, secs) in [("1m", 60u64), ("1h", 3600)] {
        for filter in [vec![], vec!["--type", "query"]] {
            let want = if filter.is_empty() {
                s.select(None, None)
            } else {
                s.select(None, Some(&|e: &Ev| e.kind == QUERY))
            };
            let mut buckets: BTreeMap<u64, u64> = BTreeMap::new();
            for &i in &want {
                let t = s.evs[i].time_us / 1_000_000;
                *buckets.entry(t / secs * secs).or_insert(0) += 1;
            }
            let args: Vec<&str> = filter
                .iter()
                .copied()
                .chain(["--histogram", interval])
                .collect();
            let label = format!("dstore grep {}", args.join(" "));
            let o = grep(&s.store, &args);
            let doc = document(&o, &label);
            let h = &doc["luaresult"]["histogram"];
            let got: BTreeMap<u64, u64> = h["buckets"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter(|b| b["count"].as_u64() != Some(0))
                        .map(|b| {
                            (
                                b["time"].as_u64().unwrap_or(0),
                                b["count"].as_u64().unwrap_or(0),
                            )
                        })
                        .collect()
                })
                .unwrap_or_default();
            if h["interval"] != secs || got != buckets {
                bad.push(format!(
                    "{label}: {h}, want interval {secs} and {buckets:?}"
                ));
            }
            let times: Vec<u64> = h["buckets"]
                .as_array()
                .map(|a| a.iter().filter_map(|b| b["time"].as_u64()).collect())
                .unwrap_or_default();
            if times.windows(2).any(|w| w[0] >= w[1]) {
                bad.push(format!("{label}: buckets out of order: {h}"));
            }
        }
    }
    // Both at once, and in the other output forms.
    // Responses (type 2, decodable): e1 e3 e5 e7 e10 e11 e14 in the first hour, e17 in the next;
    // five of them NOERROR.
    let o = grep(
        &s.store,
        &[
            "--type",
            "response",
            "--top",
            "rcode",
            "1",
            "--histogram",
            "1h",
        ],
    );
    let doc = document(&o, "top and histogram");
    assert_eq!(doc["number"], 8);
    assert_eq!(
        doc["luaresult"]["top"]["rcode"],
        json!([{"value": "NOERROR", "count": 5}])
    );
    assert_eq!(
        doc["luaresult"]["histogram"]["buckets"],
        json!([{"time": B_SECS, "count": 7}, {"time": B_SECS + 3600, "count": 1}])
    );
    let o = grep(
        &s.store,
        &["--type", "response", "--top", "rcode", "1", "--count"],
    );
    assert_eq!(o.status.code(), Some(0));
    let v: Value = serde_json::from_slice(&o.stdout).expect("count with top is JSON");
    assert_eq!(v["number"], 8);
    assert_eq!(
        v["luaresult"]["top"]["rcode"],
        doc["luaresult"]["top"]["rcode"]
    );
    let o = grep(
        &s.store,
        &["--type", "response", "--histogram", "1h", "--ndjson"],
    );
    let lines = ndjson(&o);
    assert_eq!(lines.len(), 9, "8 items and the luaresult line");
    assert_eq!(
        lines[8]["luaresult"]["histogram"],
        doc["luaresult"]["histogram"]
    );
    report(bad);
}

// ---------------------------------------------------------------------------------------------
// Times relative to now.

#[test]
fn relative_times_last_and_the_1x_time_window() {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_micros() as u64;
    let (m, h, d) = (60_000_000u64, 3_600_000_000u64, 86_400_000_000u64);
    let q = |label: &str, ago: u64| {
        ev(label, now - ago, QUERY, Some("recent.example."), Some(1))
            .from("192.0.2.1")
            .to("192.0.2.53")
    };
    let s = build(
        "relative",
        vec![
            q("r40d", 40 * d),
            q("r10d", 10 * d).policy("spamhaus-dbl"),
            q("r2d", 2 * d).policy("spamhaus-dbl"),
            q("r3h", 3 * h).policy("other"),
            q("r30m", 30 * m).policy("spamhaus-dbl"),
        ],
    );
    let by = |labels: &[&str]| -> Vec<usize> {
        (0..s.evs.len())
            .filter(|&i| labels.contains(&s.evs[i].label.as_str()))
            .collect()
    };
    let cases: Vec<(Vec<&str>, Vec<usize>)> = vec![
        (vec!["t=hour"], by(&["r30m"])),
        (vec!["t=2h"], by(&["r30m"])),
        (vec!["t=day"], by(&["r30m", "r3h"])),
        (vec!["t=week"], by(&["r30m", "r3h", "r2d"])),
        (vec!["t=month"], by(&["r30m", "r3h", "r2d", "r10d"])),
        (vec!["t=week", "pr=spamhaus-dbl"], by(&["r30m", "r2d"])),
        (
            vec!["t=month", "pr=SPAMHAUS-DBL"],
            by(&["r30m", "r2d", "r10d"]),
        ),
        (vec!["--last", "1h"], by(&["r30m"])),
        (vec!["--last", "7d"], by(&["r30m", "r3h", "r2d"])),
        (vec!["--last", "1w"], by(&["r30m", "r3h", "r2d"])),
        (vec!["--from=-1d"], by(&["r30m", "r3h"])),
        (vec!["--from=-3d", "--to=-1d"], by(&["r2d"])),
        (vec!["--to=-20d"], by(&["r40d"])),
        (vec!["--from", "now"], vec![]),
        (
            vec!["--to", "now"],
            by(&["r40d", "r10d", "r2d", "r3h", "r30m"]),
        ),
        // The form the help's own example uses.
        (vec!["--from", "-1d"], by(&["r30m", "r3h"])),
        (vec!["--from", "-3d", "--to", "-1d"], by(&["r2d"])),
    ];
    let mut bad = Vec::new();
    for (args, want) in &cases {
        bad.extend(s.check(args, want));
    }
    report(bad);
}

// ---------------------------------------------------------------------------------------------
// Exit codes and errors.

#[test]
fn exit_codes_found_nothing_and_bad_values() {
    let s = build("exit", synthetic_events());
    // 0 found, 1 nothing, in every output form.
    for mode in [&[][..], &["--ndjson"], &["--raw"], &["--count"]] {
        let o = grep(&s.store, &[mode, &["--qname", "www.example.com"]].concat());
        assert_eq!(o.status.code(), Some(0), "{mode:?}: {}", stderr(&o));
        assert!(o.stderr.is_empty(), "{mode:?}: {}", stderr(&o));
        let o = grep(&s.store, &[mode, &["--qname", "absent.example"]].concat());
        assert_eq!(o.status.code(), Some(1), "{mode:?}: {}", stderr(&o));
        assert!(o.stderr.is_empty(), "{mode:?}: {}", stderr(&o));
    }
    let o = grep(&s.store, &["--qname", "absent.example"]);
    let doc = document(&o, "nothing found");
    assert_eq!(doc["items"], json!([]));
    assert_eq!(doc["number"], 0);
    assert!(grep(&s.store, &["--qname", "absent.example", "--ndjson"])
        .stdout
        .is_empty());
    assert!(grep(&s.store, &["--qname", "absent.example", "--raw"])
        .stdout
        .is_empty());
    assert_eq!(
        grep(&s.store, &["--qname", "absent.example", "--count"]).stdout,
        b"0\n"
    );
    // An empty store finds nothing.
    let empty = Scratch::new("exit-empty");
    std::fs::create_dir_all(empty.path("store")).expect("mkdir");
    assert_eq!(grep(&empty.path("store"), &[]).status.code(), Some(1));

    // Each kind of bad value: exit 2, one line naming it, nothing on stdout, no panic.
    let missing = s.store.join("does-not-exist");
    let missing = missing.to_str().expect("path");
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["--from", "yesterday"], "yesterday"),
        (vec!["--to", "2026-13-01"], "2026-13-01"),
        (vec!["--from", "1767225600.5.5"], "1767225600.5.5"),
        (vec!["--last", "5 parsecs"], "5 parsecs"),
        (vec!["--from", "1767225601", "--to", "1767225600"], "--from"),
        (vec!["--from", "1767225600", "--to", "1767225600"], "--from"),
        (vec!["t=fortnight"], "fortnight"),
        (vec!["--requestor", "192.0.2.0/33"], "192.0.2.0/33"),
        (vec!["--requestor", "banana"], "banana"),
        (vec!["--responder", "2001:db8::/129"], "2001:db8::/129"),
        (vec!["--ecs", "10/8"], "10/8"),
        (vec!["--answer", "192.0.2.0/33"], "192.0.2.0/33"),
        (vec!["~192.0.2.0/33"], "192.0.2.0/33"),
        (vec!["10.0.0.0/33"], "10.0.0.0/33"),
        (vec!["--qtype", "BOGUS"], "BOGUS"),
        (vec!["--rcode", "NOPE"], "NOPE"),
        (vec!["--rcode", "!NOPE"], "NOPE"),
        (vec!["rcode:NOPE"], "NOPE"),
        (vec!["--qname-regex", "("], "("),
        (vec!["--qname-regex", "[z-a]"], "[z-a]"),
        (vec!["--top", "colour", "5"], "colour"),
        (vec!["--top", "qname", "0"], "0"),
        (vec!["--top", "qname", "many"], "many"),
        (vec!["--histogram", "fortnight"], "fortnight"),
        (vec!["--histogram", "0m"], "0m"),
        (vec!["--type", "sideways"], "sideways"),
        (vec!["--protocol", "pigeon"], "pigeon"),
        (vec!["--id", "not-a-uuid"], "not-a-uuid"),
        (vec!["=xyz"], "xyz"),
        (vec!["--qname", "two words"], "two words"),
        (vec!["--domain", ""], "--domain"),
    ];
    let mut bad = Vec::new();
    for (args, needle) in &cases {
        let o = grep(&s.store, args);
        if let Err(e) = one_clear_line(&o, &format!("dstore grep {}", args.join(" ")), needle) {
            bad.push(e);
        }
    }
    let o = run(&["grep", "--storage-dir", missing]);
    if let Err(e) = one_clear_line(&o, "a store that does not exist", "does-not-exist") {
        bad.push(e);
    }
    // Usage errors from the argument parser: exit 2, no panic.
    for args in [
        vec!["--limit", "abc"],
        vec!["--count", "--raw"],
        vec!["--ndjson", "--count"],
        vec!["--last", "1h", "--from", "-1d"],
        vec!["--qname-regex", "a", "--qname-glob", "b"],
        vec!["--top", "qname"],
        vec!["--no-such-flag"],
    ] {
        let o = grep(&s.store, &args);
        if o.status.code() != Some(2) || stderr(&o).contains("panicked") {
            bad.push(format!(
                "dstore grep {}: exit {:?}, want 2: {}",
                args.join(" "),
                o.status.code(),
                stderr(&o)
            ));
        }
    }
    report(bad);
}

// ---------------------------------------------------------------------------------------------
// The multicall name and pipes.

#[test]
fn dgrep_through_a_symlink_is_dstore_grep() {
    let s = build("dgrep", synthetic_events());
    let bin = Scratch::new("dgrep-bin");
    let link = bin.path("dgrep");
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_dstore"), &link).expect("symlink");
    let dgrep = |args: &[&str]| {
        std::process::Command::new(&link)
            .env_remove("DSTORE_STORAGE_DIR")
            .env("DSTORE_CONFIG", "/nonexistent/dstore.conf")
            .stdin(Stdio::null())
            .arg("--storage-dir")
            .arg(&s.store)
            .args(args)
            .output()
            .expect("run dgrep")
    };
    for args in [
        vec!["pr=spamhaus-dbl", "--raw"],
        vec!["badexample.com", "rcode:!0", "--raw"],
        vec!["--qname", "www.example.com", "--raw"],
        vec!["--count"],
    ] {
        let o = dgrep(&args);
        let direct = grep(&s.store, &args);
        assert_eq!(o.status.code(), Some(0), "dgrep {args:?}: {}", stderr(&o));
        assert_eq!(o.stdout, direct.stdout, "dgrep {args:?}");
    }
    let want = s.select(None, Some(&|e: &Ev| e.policy_is("spamhaus-dbl")));
    let o = dgrep(&["pr=spamhaus-dbl"]);
    let doc = document(&o, "dgrep pr=spamhaus-dbl");
    let got: Vec<u64> = item_times(&doc);
    let want_times: Vec<u64> = want.iter().map(|&i| s.evs[i].time_us).collect();
    assert_eq!(got, want_times);
    let o = dgrep(&["absent.example"]);
    assert_eq!(o.status.code(), Some(1));
    let o = dgrep(&["--qtype", "BOGUS"]);
    assert_eq!(o.status.code(), Some(2));
    // The environment names the store too, as for every applet.
    let o = std::process::Command::new(&link)
        .env("DSTORE_STORAGE_DIR", &s.store)
        .env("DSTORE_CONFIG", "/nonexistent/dstore.conf")
        .arg("--count")
        .output()
        .expect("run dgrep");
    assert_eq!(
        String::from_utf8_lossy(&o.stdout),
        format!("{}\n", s.evs.len())
    );
}

// ---------------------------------------------------------------------------------------------
// A large store: many blocks, several segments, a rare name in one block.

fn bulk_event(i: usize) -> Ev {
    let pair = i / 2;
    let kind = if i.is_multiple_of(2) { QUERY } else { RESPONSE };
    let name = match i {
        150_000 | 150_001 => "needle.rare.example.".to_string(),
        150_004 => "NEEDLE.Rare.Example".to_string(),
        _ => format!("h{}.bulk.example.", pair % 5000),
    };
    let qtype = if pair.is_multiple_of(3) { 28 } else { 1 };
    let mut e = ev(
        &format!("b{i}"),
        B + 10 * 86_400_000_000 + i as u64 * 1000,
        kind,
        Some(&name),
        Some(qtype),
    )
    .from(&format!(
        "10.{}.{}.{}",
        pair % 7,
        pair / 256 % 256,
        pair % 256
    ))
    .to("10.0.0.53");
    e.id = Some({
        let mut id = [0u8; 16];
        id[..8].copy_from_slice(&(pair as u64).to_be_bytes());
        id
    });
    if kind == RESPONSE {
        e = e.rcode(if pair.is_multiple_of(7) { 3 } else { 0 });
    }
    e
}

#[test]
fn many_blocks_and_segments_and_a_rare_name_in_one_block() {
    const N: usize = 200_000;
    const SPLIT: usize = 120_000;
    let evs: Vec<Ev> = (0..N).map(bulk_event).collect();
    let frames: Vec<Vec<u8>> = evs.iter().map(Ev::frame).collect();
    let scratch = Scratch::new("bulk");
    let store = scratch.path("store");
    import_files(&scratch, &store, &[&frames[..SPLIT], &frames[SPLIT..]]);
    let s = Built {
        _scratch: scratch,
        store,
        evs,
        frames,
    };

    // The store has several segments and many blocks; the rare name lives in one block.
    let segments = dstore::format::segment_paths(&s.store).expect("segments");
    assert!(segments.len() >= 2, "{} segment(s)", segments.len());
    let mut blocks: Vec<(u64, u64, u64)> = Vec::new();
    for path in &segments {
        let seg = dstore::format::Segment::open(path).expect("open segment");
        blocks.extend(seg.blocks.iter().map(|b| {
            (
                b.header.min_time_us,
                b.header.max_time_us,
                u64::from(b.header.event_count),
            )
        }));
    }
    assert!(blocks.len() >= 8, "{} blocks", blocks.len());
    assert_eq!(blocks.iter().map(|b| b.2).sum::<u64>(), N as u64);
    let needle_times = [150_000usize, 150_001, 150_004].map(|i| s.evs[i].time_us);
    let holding: Vec<_> = blocks
        .iter()
        .filter(|b| needle_times.iter().any(|&t| b.0 <= t && t <= b.1))
        .collect();
    assert_eq!(holding.len(), 1, "the rare name spans blocks: {holding:?}");

    let mut bad = Vec::new();
    let needle = s.select(None, Some(&|e: &Ev| e.qname_is("needle.rare.example")));
    assert_eq!(needle.len(), 3);
    bad.extend(s.check(&["--qname", "needle.rare.example"], &needle));
    bad.extend(s.check(&["--qname", "NEEDLE.RARE.EXAMPLE."], &needle));
    bad.extend(s.check(&["--domain", "rare.example"], &needle));
    bad.extend(s.check(&["needle.rare.example"], &needle));
    bad.extend(s.check(&["--qname-regex", "^needle\\."], &needle));
    bad.extend(s.check(
        &["--qname", "needle.rare.example", "--type", "response"],
        &needle[1..2],
    ));
    bad.extend(s.check(&["--qname", "needle.rare.exampl"], &[]));

    // Counts over every block: from summaries where they can, by decoding where they cannot.
    let count = |args: &[&str], want: usize, bad: &mut Vec<String>| {
        let o = grep(&s.store, &[args, &["--count"]].concat());
        let text = String::from_utf8_lossy(&o.stdout).trim().to_string();
        if text != want.to_string() {
            bad.push(format!(
                "dstore grep {} --count: {text}, want {want} {}",
                args.join(" "),
                stderr(&o)
            ));
        }
    };
    let n = |f: &dyn Fn(&Ev) -> bool| s.evs.iter().filter(|e| f(e)).count();
    count(&[], N, &mut bad);
    count(
        &["--type", "response"],
        n(&|e| e.kind == RESPONSE),
        &mut bad,
    );
    count(
        &["--rcode", "NXDOMAIN"],
        n(&|e| e.rcode == Some(3)),
        &mut bad,
    );
    count(
        &["--rcode", "!0"],
        n(&|e| e.rcode.is_some_and(|r| r != 0)),
        &mut bad,
    );
    count(&["--qtype", "AAAA"], n(&|e| e.qtype == Some(28)), &mut bad);
    count(
        &["--qtype", "AAAA", "--type", "query"],
        n(&|e| e.qtype == Some(28) && e.kind == QUERY),
        &mut bad,
    );
    count(
        &["--qname", "h42.bulk.example"],
        n(&|e| e.qname_is("h42.bulk.example")),
        &mut bad,
    );
    count(
        &["--requestor", "10.3.0.0/16"],
        n(&|e| e.requestor_in("10.3.0.0/16")),
        &mut bad,
    );
    count(&["--limit", "12345"], 12_345, &mut bad);

    // Time windows at the exact edges of blocks.
    let secs = |us: u64| format!("{}.{:06}", us / 1_000_000, us % 1_000_000);
    for w in blocks.windows(2).take(6) {
        let (prev, next) = (w[0], w[1]);
        for (from, to) in [
            (next.0, next.1),
            (next.0, next.1 + 1),
            (prev.1, next.0),
            (prev.1, next.0 + 1),
            (prev.1 + 1, next.0 + 1),
            (prev.0 + 1, next.1),
        ] {
            let want = s
                .evs
                .iter()
                .filter(|e| from <= e.time_us && e.time_us < to)
                .count();
            count(&["--from", &secs(from), "--to", &secs(to)], want, &mut bad);
            count(
                &["--from", &secs(from), "--to", &secs(to), "--type", "query"],
                s.evs
                    .iter()
                    .filter(|e| from <= e.time_us && e.time_us < to && e.kind == QUERY)
                    .count(),
                &mut bad,
            );
        }
        let want: Vec<usize> = (0..N)
            .filter(|&i| prev.1 <= s.evs[i].time_us && s.evs[i].time_us < next.0 + 1)
            .collect();
        bad.extend(s.check(&["--from", &secs(prev.1), "--to", &secs(next.0 + 1)], &want));
    }

    // Every frame, in order and newest first, and the same with one thread.
    let o = grep(&s.store, &["--raw"]);
    if o.stdout != stream(&s.frames) {
        bad.push("dstore grep --raw differs from the input".into());
    }
    let o = grep(&s.store, &["--raw", "--reverse"]);
    let reversed: Vec<&Vec<u8>> = s.frames.iter().rev().collect();
    if o.stdout != stream(&reversed) {
        bad.push("dstore grep --raw --reverse is not the input newest first".into());
    }
    let many = grep(&s.store, &["--rcode", "NXDOMAIN", "--raw"]);
    let one = grep(
        &s.store,
        &["--rcode", "NXDOMAIN", "--raw", "--threads", "1"],
    );
    if many.stdout != one.stdout || frames_of(&many.stdout).len() != n(&|e| e.rcode == Some(3)) {
        bad.push("--threads 1 and the default differ".into());
    }
    let o = grep(&s.store, &["--reverse", "--limit", "3", "--ndjson"]);
    let got: Vec<u64> = ndjson(&o).iter().map(item_time).collect();
    let want: Vec<u64> = s.evs[N - 3..].iter().rev().map(|e| e.time_us).collect();
    if got != want {
        bad.push(format!("--reverse --limit 3: {got:?}, want {want:?}"));
    }
    report(bad);
}

/// `dstore grep ... | head` ends quietly with exit 0 when head closes the pipe.
#[test]
fn a_closed_pipe_ends_grep_quietly_with_exit_0() {
    let evs: Vec<Ev> = (0..30_000).map(bulk_event).collect();
    let s = build("pipe", evs);
    let store = s.store.to_str().expect("path");
    // The way a user types it, through a shell.
    let dir = Scratch::new("pipe-sh");
    for (mode, head) in [
        ("", "head -c 100"),
        ("--ndjson", "head -n 1"),
        ("--raw", "head -c 10"),
    ] {
        let (code, err) = (dir.path("code"), dir.path("err"));
        let script = format!(
            "{{ \"$0\" grep --storage-dir \"$1\" {mode} 2>\"$2\"; echo $? >\"$3\"; }} | {head} >/dev/null"
        );
        let o = std::process::Command::new("sh")
            .arg("-c")
            .arg(&script)
            .arg(env!("CARGO_BIN_EXE_dstore"))
            .arg(store)
            .arg(&err)
            .arg(&code)
            .env_remove("DSTORE_STORAGE_DIR")
            .output()
            .expect("run sh");
        assert!(o.status.success(), "sh: {}", stderr(&o));
        let code = std::fs::read_to_string(&code).expect("exit code");
        let err = std::fs::read_to_string(&err).expect("stderr");
        assert_eq!(
            code.trim(),
            "0",
            "grep {mode} | {head}: exit {code}, stderr {err}"
        );
        assert!(err.is_empty(), "grep {mode} | {head}: stderr {err}");
    }
    // And a reader that goes away.
    let mut child = dstore()
        .args(["grep", "--storage-dir", store])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut first = [0u8; 10];
    child
        .stdout
        .as_mut()
        .expect("stdout")
        .read_exact(&mut first)
        .expect("read");
    assert_eq!(&first, b"{\"items\":[");
    drop(child.stdout.take());
    let o = child.wait_with_output().expect("wait");
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(o.stderr.is_empty(), "{}", stderr(&o));
}

// ---------------------------------------------------------------------------------------------
// The shared samples: real dnsdist and recursor streams.

struct SampleEvent {
    frame: Vec<u8>,
    msg: Option<pb::Message>,
    time_us: u64,
}

/// Time fields 9 and 10 read from the wire up to the first field that cannot be walked, as the
/// store reads them for a frame that does not decode as a whole.
fn wire_time(frame: &[u8]) -> Option<u64> {
    fn varint(b: &[u8], pos: &mut usize) -> Option<u64> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let byte = *b.get(*pos)?;
            *pos += 1;
            v |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Some(v);
            }
        }
        None
    }
    let (mut sec, mut usec, mut pos) = (None, None, 0);
    while pos < frame.len() {
        let Some(key) = varint(frame, &mut pos) else {
            break;
        };
        if key >> 3 == 0 {
            break;
        }
        match key & 7 {
            0 => {
                let Some(v) = varint(frame, &mut pos) else {
                    break;
                };
                match key >> 3 {
                    9 => sec = Some(v),
                    10 => usec = Some(v),
                    _ => {}
                }
            }
            2 => {
                let Some(len) = varint(frame, &mut pos) else {
                    break;
                };
                pos += len as usize;
            }
            1 => pos += 8,
            5 => pos += 4,
            _ => break,
        }
    }
    Some(sec? * 1_000_000 + usec.unwrap_or(0))
}

struct Sample {
    _scratch: Scratch,
    store: PathBuf,
    events: Vec<SampleEvent>,
}

fn sample_store(name: &str) -> Sample {
    let scratch = Scratch::new(&format!("sample-{}", name.replace('.', "-")));
    let store = scratch.path("store");
    let o = run(&[
        "import",
        "-q",
        "--storage-dir",
        store.to_str().expect("path"),
        sample(name).to_str().expect("path"),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    sample_of(name, scratch, store)
}

/// The sample stored as ingest stores it when its encoders are behind: every block degraded, no
/// frame checked as it is written.
fn degraded_sample_store(name: &str) -> Sample {
    let scratch = Scratch::new(&format!("degraded-{}", name.replace('.', "-")));
    let store = scratch.path("store");
    let bytes = std::fs::read(sample(name)).expect("read sample");
    let options = dstore::format::WriterOptions {
        block_bytes: 16 << 10,
        ..Default::default()
    };
    let (mut w, _) = dstore::format::StoreWriter::open(&store, options).expect("open store");
    w.set_degraded(true);
    for f in frames_of(&bytes) {
        w.append(&f, 1_700_000_000_000_000).expect("append");
    }
    let stats = w.close().expect("close");
    assert_eq!(stats.degraded_blocks, stats.blocks);
    sample_of(name, scratch, store)
}

fn sample_of(name: &str, scratch: Scratch, store: PathBuf) -> Sample {
    let bytes = std::fs::read(sample(name)).expect("read sample");
    let events = frames_of(&bytes)
        .into_iter()
        .map(|frame| {
            let msg = pb::Message::decode(frame.as_slice()).ok();
            let time_us = match &msg {
                Some(m) => {
                    u64::from(m.time_sec.expect("time")) * 1_000_000
                        + u64::from(m.time_usec.unwrap_or(0))
                }
                None => wire_time(&frame).expect("a time before the damage"),
            };
            SampleEvent {
                frame,
                msg,
                time_us,
            }
        })
        .collect();
    Sample {
        _scratch: scratch,
        store,
        events,
    }
}

type MsgPred = Box<dyn Fn(&pb::Message) -> bool>;

fn m(f: impl Fn(&pb::Message) -> bool + 'static) -> Option<MsgPred> {
    Some(Box::new(f))
}

fn m_qname(msg: &pb::Message) -> Option<&str> {
    msg.question.as_ref().and_then(|q| q.q_name.as_deref())
}
fn m_qtype(msg: &pb::Message) -> Option<u32> {
    msg.question.as_ref().and_then(|q| q.q_type)
}
fn m_rcode(msg: &pb::Message) -> Option<u32> {
    msg.response.as_ref().and_then(|r| r.rcode)
}
fn m_answer_in(msg: &pb::Message, range: &str) -> bool {
    msg.response.as_ref().is_some_and(|r| {
        r.rrs.iter().any(|rr| {
            matches!(
                (rr.r#type, rr.rdata.as_ref().map(Vec::len)),
                (Some(1), Some(4)) | (Some(28), Some(16))
            ) && cidr_contains(range, ip_of(rr.rdata.as_deref().unwrap_or_default()))
        })
    })
}

impl Sample {
    /// Matching events in the order grep prints them: by time, ties in stored order.
    fn select(
        &self,
        time: Option<(u64, u64)>,
        pred: Option<&dyn Fn(&pb::Message) -> bool>,
    ) -> Vec<usize> {
        let mut idx: Vec<usize> = (0..self.events.len())
            .filter(|&i| {
                let e = &self.events[i];
                time.is_none_or(|(f, t)| f <= e.time_us && e.time_us < t)
                    && match (pred, &e.msg) {
                        (None, _) => true,
                        (Some(_), None) => false,
                        (Some(p), Some(msg)) => p(msg),
                    }
            })
            .collect();
        idx.sort_by_key(|&i| self.events[i].time_us);
        idx
    }

    fn check(&self, name: &str, args: &[&str], want: &[usize]) -> Vec<String> {
        let label = format!("{name}: dstore grep {}", args.join(" "));
        let mut bad = Vec::new();
        let want_code = Some(if want.is_empty() { 1 } else { 0 });
        let o = grep(&self.store, &[args, &["--raw"]].concat());
        let want_frames: Vec<&Vec<u8>> = want.iter().map(|&i| &self.events[i].frame).collect();
        let got = frames_of(&o.stdout);
        if o.status.code() != want_code || got.iter().collect::<Vec<_>>() != want_frames {
            bad.push(format!(
                "{label} --raw: exit {:?} (want {want_code:?}), {} frames, want {} {}",
                o.status.code(),
                got.len(),
                want.len(),
                stderr(&o)
            ));
        }
        bad.extend(count_mismatch(&self.store, args, &label, want.len()));
        let o = grep(&self.store, args);
        match try_document(&o, &label) {
            Err(e) => bad.push(e),
            Ok(doc) => {
                let got: Vec<u64> = item_times(&doc);
                let want_times: Vec<u64> = want.iter().map(|&i| self.events[i].time_us).collect();
                if got != want_times {
                    bad.push(format!(
                        "{label}: {} items, want {} (times differ)",
                        got.len(),
                        want.len()
                    ));
                }
            }
        }
        bad
    }
}

#[test]
fn dnsdist_sample_queries_and_responses() {
    let name = "dnsdist-live-same-traffic.pb";
    let s = sample_store(name);
    assert_eq!(s.events.len(), 2124);
    let first = s.events[0].msg.clone().expect("first frame decodes");
    let first_name = m_qname(&first).expect("qname").to_string();
    let first_id = uuid_text(
        &<[u8; 16]>::try_from(first.message_id.clone().expect("id").as_slice()).expect("uuid"),
    );
    // An address that appears in some A answer.
    let answer = s
        .events
        .iter()
        .filter_map(|e| e.msg.as_ref())
        .flat_map(|msg| msg.response.iter().flat_map(|r| r.rrs.iter()))
        .find(|rr| rr.r#type == Some(1) && rr.rdata.as_ref().is_some_and(|d| d.len() == 4))
        .map(|rr| ip_of(rr.rdata.as_deref().unwrap_or_default()).to_string())
        .expect("an A answer");
    let mid = s.events[s.events.len() / 2].time_us;
    let late = s.events[s.events.len() * 3 / 4].time_us;
    let secs = |us: u64| format!("{}.{:06}", us / 1_000_000, us % 1_000_000);
    let (mid_s, late_s) = (secs(mid), secs(late));

    let tilde = format!("~{answer}");
    let equals = format!("={first_id}");
    let fname = first_name.clone();
    let fname2 = first_name.clone();
    let ans = answer.clone();
    let ans2 = answer.clone();
    let fid = first.message_id.clone();
    let fid2 = first.message_id.clone();
    type Case<'a> = (Vec<&'a str>, Option<(u64, u64)>, Option<MsgPred>);
    let cases: Vec<Case> = vec![
        (vec![], None, None),
        (vec!["--type", "query"], None, m(|x| x.r#type == 1)),
        (vec!["--type", "response"], None, m(|x| x.r#type == 2)),
        (vec!["--qtype", "AAAA"], None, m(|x| m_qtype(x) == Some(28))),
        (vec!["--qtype", "MX"], None, m(|x| m_qtype(x) == Some(15))),
        (vec!["--qtype", "txt"], None, m(|x| m_qtype(x) == Some(16))),
        (
            vec!["--qname", first_name.as_str()],
            None,
            m(move |x| m_qname(x).is_some_and(|q| norm(q) == norm(&fname))),
        ),
        (
            vec![first_name.as_str(), "--type", "response"],
            None,
            m(move |x| x.r#type == 2 && m_qname(x).is_some_and(|q| under(q, &fname2))),
        ),
        (
            vec!["--domain", "example.test"],
            None,
            m(|x| m_qname(x).is_some_and(|q| under(q, "example.test"))),
        ),
        (
            vec!["--domain", "EXAMPLE.TEST."],
            None,
            m(|x| m_qname(x).is_some_and(|q| under(q, "example.test"))),
        ),
        (
            vec!["--rcode", "!0"],
            None,
            m(|x| m_rcode(x).is_some_and(|r| r != 0)),
        ),
        (
            vec!["rcode:!0"],
            None,
            m(|x| m_rcode(x).is_some_and(|r| r != 0)),
        ),
        (
            vec!["--rcode", "NXDOMAIN"],
            None,
            m(|x| m_rcode(x) == Some(3)),
        ),
        (
            vec!["--answer", answer.as_str()],
            None,
            m(move |x| m_answer_in(x, &ans)),
        ),
        (
            vec![tilde.as_str()],
            None,
            m(move |x| m_answer_in(x, &ans2)),
        ),
        (
            vec!["--id", first_id.as_str()],
            None,
            m(move |x| x.message_id == fid),
        ),
        (
            vec![equals.as_str()],
            None,
            m(move |x| x.message_id == fid2),
        ),
        (
            vec!["--protocol", "tcp"],
            None,
            m(|x| x.socket_protocol == Some(2)),
        ),
        (
            vec!["--requestor", "127.0.0.0/8"],
            None,
            m(|x| {
                x.from
                    .as_deref()
                    .is_some_and(|a| a.len() == 4 && a[0] == 127)
            }),
        ),
        (
            vec!["--requestor", "::/0"],
            None,
            m(|x| x.from.as_ref().is_some_and(|a| a.len() == 16)),
        ),
        (
            vec![
                "--type",
                "response",
                "--qtype",
                "A",
                "--rcode",
                "0",
                "--domain",
                "example.test",
            ],
            None,
            m(|x| {
                x.r#type == 2
                    && m_qtype(x) == Some(1)
                    && m_rcode(x) == Some(0)
                    && m_qname(x).is_some_and(|q| under(q, "example.test"))
            }),
        ),
        (
            vec!["--from", mid_s.as_str(), "--to", late_s.as_str()],
            Some((mid, late)),
            None,
        ),
        (
            vec![
                "--from",
                mid_s.as_str(),
                "--to",
                late_s.as_str(),
                "--type",
                "query",
            ],
            Some((mid, late)),
            m(|x| x.r#type == 1),
        ),
    ];
    let mut bad = Vec::new();
    for (args, time, pred) in &cases {
        let want = s.select(*time, pred.as_deref());
        bad.extend(s.check(name, args, &want));
    }
    assert_eq!(
        s.select(None, Some(&|x: &pb::Message| x.r#type == 1)).len(),
        1062
    );
    // Newest first: the same events, times never increasing.
    let o = grep(&s.store, &["--reverse", "--ndjson"]);
    let times: Vec<u64> = ndjson(&o).iter().map(item_time).collect();
    let mut sorted = times.clone();
    sorted.sort_unstable();
    let mut all: Vec<u64> = s.events.iter().map(|e| e.time_us).collect();
    all.sort_unstable();
    if times.windows(2).any(|w| w[0] < w[1]) || sorted != all {
        bad.push(format!("{name}: --reverse is not every event newest first"));
    }
    report(bad);
}

#[test]
fn recursor_sample_with_outgoing_traffic() {
    let name = "recursor-live-with-outgoing.pb";
    let s = sample_store(name);
    assert_eq!(s.events.len(), 2402);
    let mut bad = Vec::new();
    for (word, kind, n) in [
        ("query", 1, 601),
        ("response", 2, 601),
        ("outgoing-query", 3, 600),
        ("incoming-response", 4, 600),
    ] {
        let want = s.select(None, Some(&move |x: &pb::Message| x.r#type == kind));
        assert_eq!(want.len(), n, "{word} in the sample");
        bad.extend(s.check(name, &["--type", word], &want));
    }
    let cases: Vec<(Vec<&str>, Option<MsgPred>)> = vec![
        (vec![], None),
        (
            vec!["--type", "outgoing-query", "--type", "incoming-response"],
            m(|x| matches!(x.r#type, 3 | 4)),
        ),
        (
            vec!["--type", "incoming-response", "--rcode", "NXDOMAIN"],
            m(|x| x.r#type == 4 && m_rcode(x) == Some(3)),
        ),
        (
            vec!["--qname", "www.example.test"],
            m(|x| m_qname(x).is_some_and(|q| norm(q) == "www.example.test")),
        ),
        (
            vec!["--qname-glob", "nx4*.example.test"],
            m(|x| {
                m_qname(x).is_some_and(|q| {
                    norm(q).starts_with("nx4") && norm(q).ends_with(".example.test")
                })
            }),
        ),
        (
            vec!["--type", "response", "--rcode", "!NOERROR"],
            m(|x| x.r#type == 2 && m_rcode(x).is_some_and(|r| r != 0)),
        ),
    ];
    for (args, pred) in &cases {
        let want = s.select(None, pred.as_deref());
        bad.extend(s.check(name, args, &want));
    }
    report(bad);
}

#[test]
fn undecodable_dnsdist_responses_are_found_by_time_only() {
    let name = "dnsdist-5300.pb";
    report(undecodable_checks(name, &sample_store(name)));
}

/// The same in degraded blocks, whose frames are checked as they are read rather than written.
#[test]
fn undecodable_responses_in_degraded_blocks_are_found_by_time_only() {
    let name = "dnsdist-5300.pb";
    report(undecodable_checks(name, &degraded_sample_store(name)));
}

fn undecodable_checks(name: &str, s: &Sample) -> Vec<String> {
    assert_eq!(s.events.len(), 2120);
    let broken: Vec<usize> = (0..s.events.len())
        .filter(|&i| s.events[i].msg.is_none())
        .collect();
    assert_eq!(broken.len(), 1060);
    let mut bad = Vec::new();
    bad.extend(s.check(name, &[], &s.select(None, None)));
    // Every response is undecodable: no field finds one.
    let responses = s.select(None, Some(&|x: &pb::Message| x.r#type == 2));
    assert!(responses.is_empty());
    bad.extend(s.check(name, &["--type", "response"], &responses));
    bad.extend(s.check(
        name,
        &["--rcode", "!0"],
        &s.select(
            None,
            Some(&|x: &pb::Message| m_rcode(x).is_some_and(|r| r != 0)),
        ),
    ));
    bad.extend(s.check(
        name,
        &["rcode:0"],
        &s.select(None, Some(&|x: &pb::Message| m_rcode(x) == Some(0))),
    ));
    bad.extend(s.check(
        name,
        &["--type", "query"],
        &s.select(None, Some(&|x: &pb::Message| x.r#type == 1)),
    ));
    bad.extend(s.check(
        name,
        &["--domain", "example.test"],
        &s.select(
            None,
            Some(&|x: &pb::Message| m_qname(x).is_some_and(|q| under(q, "example.test"))),
        ),
    ));
    bad.extend(s.check(
        name,
        &["--qtype", "MX"],
        &s.select(None, Some(&|x: &pb::Message| m_qtype(x) == Some(15))),
    ));
    // Each of a few undecodable responses, by its time alone.
    let secs = |us: u64| format!("{}.{:06}", us / 1_000_000, us % 1_000_000);
    for &i in [
        broken[0],
        broken[broken.len() / 2],
        broken[broken.len() - 1],
    ]
    .iter()
    {
        let t = s.events[i].time_us;
        let want = s.select(Some((t, t + 1)), None);
        assert!(want.contains(&i));
        bad.extend(s.check(name, &["--from", &secs(t), "--to", &secs(t + 1)], &want));
        let o = grep(&s.store, &["--from", &secs(t), "--to", &secs(t + 1)]);
        let doc = document(&o, "an undecodable response by time");
        let items = doc["items"].as_array().cloned().unwrap_or_default();
        if !items
            .iter()
            .any(|it| it["undecodable"] == true && it["qr"] == true)
        {
            bad.push(format!(
                "{name}: the item at {t} is not marked undecodable: {items:?}"
            ));
        }
        // The same window with any field condition: nothing of the broken frames.
        let want = s.select(Some((t, t + 1)), Some(&|_: &pb::Message| true));
        bad.extend(s.check(
            name,
            &["--from", &secs(t), "--to", &secs(t + 1), "--domain", "."],
            &want,
        ));
    }
    bad
}
