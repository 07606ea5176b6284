//! `dstore gateway` as an HTTP client sees it: the JSON API, the 1.x get-endpoint-data, errors,
//! methods, HEAD, content types, the bearer token, the refusal to listen beyond loopback without
//! one, the search cap, /openapi.json and /metrics. Each gateway is the real binary on a free
//! loopback port, stopped by its PID when its guard drops. The expected answers come from
//! `dstore grep` on the same store (the API promises the same events in the same order) or from
//! the events as built here; the HTTP client is a plain `TcpStream` speaking HTTP/1.1.

mod common;

use common::synthetic::*;
use common::*;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Output, Stdio};
use std::time::{Duration, Instant};

// ---------------------------------------------------------------------------------------------
// A small HTTP/1.1 client: one request per connection (`Connection: close`), the whole answer read.

/// An answer as the client saw it.
struct Http {
    what: String,
    status: u16,
    headers: Vec<(String, String)>,
    /// The body, de-chunked.
    body: Vec<u8>,
}

impl Http {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    fn content_type(&self) -> &str {
        self.header("Content-Type").unwrap_or("")
    }
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "{}: {} with a body that is not JSON ({e}): {:?}",
                self.what,
                self.status,
                &self.text()[..self.text().len().min(300)]
            )
        })
    }
    /// A short description for failure messages.
    fn brief(&self) -> String {
        let t = self.text();
        format!(
            "{} -> {} [{}] {}",
            self.what,
            self.status,
            self.content_type(),
            &t[..t.len().min(300)]
        )
    }
}

const IO_TIMEOUT: Duration = Duration::from_secs(30);

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn dechunk(mut b: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    for _ in 0..1_000_000 {
        let end = find(b, b"\r\n").ok_or("no chunk-size line")?;
        let line = std::str::from_utf8(&b[..end]).map_err(|_| "chunk-size line not UTF-8")?;
        let hex = line.split(';').next().unwrap_or("").trim();
        let size = usize::from_str_radix(hex, 16).map_err(|_| format!("chunk size {line:?}"))?;
        b = &b[end + 2..];
        if size == 0 {
            return Ok(out);
        }
        if b.len() < size + 2 {
            return Err(format!("chunk of {size} bytes cut short"));
        }
        out.extend_from_slice(&b[..size]);
        b = &b[size + 2..];
    }
    Err("too many chunks".into())
}

/// Sends one request and reads the whole answer. For HEAD the body is what came after the head,
/// which must be nothing.
fn exchange(
    addr: SocketAddr,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
) -> Result<Http, String> {
    let what = format!("{method} {}", &target[..target.len().min(200)]);
    let err = |e: std::io::Error| format!("{what}: {e}");
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).map_err(err)?;
    s.set_read_timeout(Some(IO_TIMEOUT)).map_err(err)?;
    s.set_write_timeout(Some(IO_TIMEOUT)).map_err(err)?;
    let mut req = format!("{method} {target} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    if matches!(method, "POST" | "PUT" | "PATCH") {
        req.push_str("Content-Length: 0\r\n");
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).map_err(err)?;
    let mut raw = Vec::new();
    let mut buf = [0u8; 65536];
    loop {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => raw.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            // A reset after a complete answer still leaves the answer.
            Err(e) if !raw.is_empty() && e.kind() == std::io::ErrorKind::ConnectionReset => break,
            Err(e) => return Err(err(e)),
        }
    }
    let head_end = find(&raw, b"\r\n\r\n")
        .ok_or_else(|| format!("{what}: no complete head in {} bytes", raw.len()))?;
    let head =
        std::str::from_utf8(&raw[..head_end]).map_err(|_| format!("{what}: head not UTF-8"))?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or("");
    let status: u16 = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("{what}: status line {status_line:?}"))?;
    if !status_line.starts_with("HTTP/1.") {
        return Err(format!("{what}: status line {status_line:?}"));
    }
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let mut http = Http {
        what,
        status,
        headers,
        body: Vec::new(),
    };
    let rest = &raw[head_end + 4..];
    http.body = if method == "HEAD" {
        rest.to_vec()
    } else if http
        .header("Transfer-Encoding")
        .is_some_and(|t| t.eq_ignore_ascii_case("chunked"))
    {
        dechunk(rest).map_err(|e| format!("{}: {e}", http.what))?
    } else if let Some(len) = http.header("Content-Length") {
        let len: usize = len
            .parse()
            .map_err(|_| format!("{}: Content-Length {len:?}", http.what))?;
        if rest.len() < len {
            return Err(format!(
                "{}: body of {} bytes, Content-Length {len}",
                http.what,
                rest.len()
            ));
        }
        rest[..len].to_vec()
    } else {
        rest.to_vec()
    };
    Ok(http)
}

/// Percent-encodes a query-string value (everything but the unreserved characters).
fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

fn qs(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
        .collect::<Vec<_>>()
        .join("&")
}

// ---------------------------------------------------------------------------------------------
// The gateway under test, stopped by PID when dropped.

struct Gateway {
    child: Child,
    addr: SocketAddr,
    token: Option<String>,
    log: PathBuf,
}

impl Gateway {
    fn start(store: &Path, scratch: &Scratch, args: &[&str]) -> Gateway {
        Gateway::start_on("127.0.0.1", store, scratch, args)
    }

    /// Starts `dstore gateway` on `host` and a free port, retrying with another port when the one
    /// picked was taken meanwhile; returns once it logs that it serves.
    fn start_on(host: &str, store: &Path, scratch: &Scratch, args: &[&str]) -> Gateway {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        for attempt in 0..8 {
            let port = free_port();
            let listen = format!("{host}:{port}");
            let n = N.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let log = scratch.path(&format!("gateway-{n}.log"));
            let log_file = std::fs::File::create(&log).expect("create the gateway log");
            let child = dstore()
                .args(["gateway", "--storage-dir"])
                .arg(store)
                .args(["--listen", &listen])
                .args(args)
                .stdout(Stdio::null())
                .stderr(log_file)
                .spawn()
                .expect("start dstore gateway");
            let mut gw = Gateway {
                child,
                addr: SocketAddr::from(([127, 0, 0, 1], port)),
                token: None,
                log,
            };
            let serving = format!(" on http://{listen}/ (");
            let deadline = Instant::now() + Duration::from_secs(15);
            loop {
                let text = gw.log_text();
                if text.contains("serving") && text.contains(&serving) {
                    return gw;
                }
                if let Ok(Some(status)) = gw.child.try_wait() {
                    if text.contains("cannot listen") && attempt < 7 {
                        break; // the port was taken between the probe and the start
                    }
                    panic!("dstore gateway {args:?} exited ({status}) before serving: {text}");
                }
                if Instant::now() > deadline {
                    panic!("dstore gateway {args:?} did not say it serves within 15 s: {text}");
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        panic!("no free port for the gateway after 8 attempts");
    }

    fn with_token(mut self, token: &str) -> Gateway {
        self.token = Some(token.to_string());
        self
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn request(&self, method: &str, target: &str) -> Http {
        let auth = self.token.as_ref().map(|t| format!("Bearer {t}"));
        let headers: Vec<(&str, &str)> = auth
            .as_deref()
            .map(|a| vec![("Authorization", a)])
            .unwrap_or_default();
        exchange(self.addr, method, target, &headers).unwrap_or_else(|e| panic!("{e}"))
    }

    fn get(&self, target: &str) -> Http {
        self.request("GET", target)
    }

    /// GET that must answer 200 with JSON.
    fn ok_json(&self, target: &str) -> Value {
        let r = self.get(target);
        assert_eq!(r.status, 200, "{}", r.brief());
        assert!(
            r.content_type().starts_with("application/json"),
            "{}",
            r.brief()
        );
        r.json()
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        // Child::kill signals this child's PID only.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs dstore with `args` for at most `secs` seconds (killing it, by PID, after that); returns
/// its exit code (None if it had to be killed) and stderr.
fn run_bounded(args: &[&str], scratch: &Scratch, secs: u64) -> (Option<i32>, String) {
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let err_path = scratch.path(&format!("bounded-{n}.err"));
    let mut child = dstore()
        .args(args)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&err_path).expect("stderr file"))
        .spawn()
        .expect("start dstore");
    let deadline = Instant::now() + Duration::from_secs(secs);
    let code = loop {
        if let Ok(Some(status)) = child.try_wait() {
            break status.code();
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    (code, std::fs::read_to_string(&err_path).unwrap_or_default())
}

// ---------------------------------------------------------------------------------------------
// Stores with known contents, and what `dstore grep` says about them.

struct Store {
    scratch: Scratch,
    dir: PathBuf,
    evs: Vec<Ev>,
}

/// The synthetic events of tests/grep.rs: queries, responses, outgoing traffic, policies, tags,
/// shared message ids and two undecodable frames.
fn synthetic_store(tag: &str) -> Store {
    let mut evs = synthetic_events();
    evs.sort_by_key(|e| e.time_us);
    let scratch = Scratch::new(tag);
    let dir = scratch.path("store");
    let frames: Vec<Vec<u8>> = evs.iter().map(Ev::frame).collect();
    import_files(&scratch, &dir, &[&frames]);
    Store { scratch, dir, evs }
}

/// The live samples of dnsdist and the recursor, imported in this order (the small recursor
/// capture, imported last, holds the oldest events).
fn sample_store(tag: &str) -> Store {
    let scratch = Scratch::new(tag);
    let dir = scratch.path("store");
    for name in [
        "dnsdist-live-same-traffic.pb",
        "recursor-live-with-outgoing.pb",
        "recursor-live-small.pb",
    ] {
        let o = dstore()
            .args(["import", "-q", "--storage-dir"])
            .arg(&dir)
            .arg(sample(name))
            .output()
            .expect("run dstore import");
        assert!(o.status.success(), "import {name}: {}", stderr(&o));
    }
    Store {
        scratch,
        dir,
        evs: Vec::new(),
    }
}

fn grep(store: &Path, args: &[&str]) -> Output {
    dstore()
        .arg("grep")
        .arg("--storage-dir")
        .arg(store)
        .args(args)
        .output()
        .expect("run dstore grep")
}

/// `dstore grep ARGS --ndjson`: the events, one JSON object each.
fn grep_lines(store: &Path, args: &[&str]) -> Vec<Value> {
    let o = grep(store, &[args, &["--ndjson"]].concat());
    assert!(
        matches!(o.status.code(), Some(0 | 1)),
        "dstore grep {args:?} --ndjson: {}",
        stderr(&o)
    );
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(|l| {
            serde_json::from_str(l).unwrap_or_else(|e| panic!("grep line not JSON ({e}): {l}"))
        })
        .collect()
}

fn grep_count(store: &Path, args: &[&str]) -> u64 {
    let o = grep(store, &[args, &["--count"]].concat());
    let text = String::from_utf8_lossy(&o.stdout).trim().to_string();
    text.parse().unwrap_or_else(|_| {
        panic!(
            "dstore grep {args:?} --count printed {text:?}: {}",
            stderr(&o)
        )
    })
}

/// `dstore grep ARGS --count` with --top or --histogram: its luaresult.
fn grep_luaresult(store: &Path, args: &[&str]) -> Value {
    let o = grep(store, &[args, &["--count"]].concat());
    let v: Value = serde_json::from_slice(&o.stdout).unwrap_or_else(|e| {
        panic!(
            "dstore grep {args:?} --count is not JSON ({e}): {} {}",
            String::from_utf8_lossy(&o.stdout),
            stderr(&o)
        )
    });
    v["luaresult"].clone()
}

fn item_time(item: &Value) -> u64 {
    item["timeSec"].as_u64().expect("timeSec") * 1_000_000
        + item["timeUsec"].as_u64().expect("timeUsec")
}

fn items_of(doc: &Value) -> Vec<Value> {
    doc["items"]
        .as_array()
        .cloned()
        .unwrap_or_else(|| panic!("no items array in {doc}"))
}

/// Where two lists of events first differ, for failure messages.
fn first_difference(got: &[Value], want: &[Value]) -> String {
    let i = got
        .iter()
        .zip(want)
        .position(|(g, w)| g != w)
        .unwrap_or(got.len().min(want.len()));
    let show = |v: Option<&Value>| {
        v.map(|v| {
            format!(
                "{} {}.{:06} {}",
                v["qid"], v["timeSec"], v["timeUsec"], v["question"]
            )
        })
        .unwrap_or_else(|| "(none)".into())
    };
    format!(
        "{} items, want {}; first difference at {i}: got {}, want {}",
        got.len(),
        want.len(),
        show(got.get(i)),
        show(want.get(i))
    )
}

fn report(bad: Vec<String>) {
    assert!(
        bad.is_empty(),
        "{} problem(s):\n{}",
        bad.len(),
        bad.join("\n")
    );
}

fn id_text(n: u8) -> String {
    uuid_text(&uuid(n))
}

// ---------------------------------------------------------------------------------------------
// /api/v1/search

/// Conditions as query parameters, and the same conditions as `dstore grep` arguments.
type Case = (Vec<(&'static str, String)>, Vec<String>);

fn case(pairs: &[(&'static str, &str)], args: &[&str]) -> Case {
    (
        pairs.iter().map(|(k, v)| (*k, v.to_string())).collect(),
        args.iter().map(|s| s.to_string()).collect(),
    )
}

fn synthetic_cases() -> Vec<Case> {
    let id1 = id_text(1);
    let eq1 = format!("={id1}");
    let from = (B_SECS + 1).to_string();
    let to = (B_SECS + 61).to_string();
    vec![
        case(&[], &[]),
        case(
            &[("qname", "www.example.com")],
            &["--qname", "www.example.com"],
        ),
        case(&[("domain", "example.com")], &["--domain", "example.com"]),
        case(&[("qtype", "AAAA")], &["--qtype", "AAAA"]),
        case(&[("rcode", "NXDOMAIN")], &["--rcode", "NXDOMAIN"]),
        case(&[("rcode", "!0")], &["--rcode", "!0"]),
        case(&[("type", "response")], &["--type", "response"]),
        case(
            &[("type", "query"), ("type", "outgoing-query")],
            &["--type", "query", "--type", "outgoing-query"],
        ),
        case(
            &[("requestor", "192.0.2.0/24")],
            &["--requestor", "192.0.2.0/24"],
        ),
        case(
            &[("responder", "198.51.100.53")],
            &["--responder", "198.51.100.53"],
        ),
        case(&[("answer", "192.0.2.80")], &["--answer", "192.0.2.80"]),
        case(
            &[("answer", "mx.example.net")],
            &["--answer", "mx.example.net"],
        ),
        case(&[("ecs", "203.0.113.0/24")], &["--ecs", "203.0.113.0/24"]),
        case(&[("id", &id1)], &["--id", &id1]),
        case(&[("policy", "spamhaus-dbl")], &["--policy", "spamhaus-dbl"]),
        case(&[("tag", "malware")], &["--tag", "malware"]),
        case(&[("qname_regex", "^www\\.")], &["--qname-regex", "^www\\."]),
        case(
            &[("qname-glob", "*.example.com")],
            &["--qname-glob", "*.example.com"],
        ),
        case(&[("protocol", "udp")], &["--protocol", "udp"]),
        case(
            &[("server_identity", "dnsdist-1")],
            &["--server-identity", "dnsdist-1"],
        ),
        case(&[("requestor_id", "alice")], &["--requestor-id", "alice"]),
        case(&[("device_id", "dev-1")], &["--device-id", "dev-1"]),
        case(&[("device_name", "phone")], &["--device-name", "phone"]),
        case(
            &[("from", &from), ("to", &to)],
            &["--from", &from, "--to", &to],
        ),
        case(&[("from", &from)], &["--from", &from]),
        case(&[("last", "800d")], &["--last", "800d"]),
        case(
            &[("q", "example.com rcode:!0")],
            &["example.com", "rcode:!0"],
        ),
        case(&[("q", "~192.0.2.80")], &["~192.0.2.80"]),
        case(&[("q", &eq1)], &[&eq1]),
        case(&[("q", "c:alice")], &["c:alice"]),
        case(&[("q", "dn:laptop")], &["dn:laptop"]),
        case(&[("q", "192.0.2.1")], &["192.0.2.1"]),
        case(
            &[
                ("domain", "example.com"),
                ("qtype", "A"),
                ("type", "response"),
            ],
            &[
                "--domain",
                "example.com",
                "--qtype",
                "A",
                "--type",
                "response",
            ],
        ),
        case(
            &[("qname", "nothing.example")],
            &["--qname", "nothing.example"],
        ),
    ]
}

fn sample_cases() -> Vec<Case> {
    vec![
        case(&[], &[]),
        case(&[("domain", "example.test")], &["--domain", "example.test"]),
        case(
            &[("qname", "www.example.test")],
            &["--qname", "www.example.test"],
        ),
        case(&[("qtype", "AAAA")], &["--qtype", "AAAA"]),
        case(&[("type", "response")], &["--type", "response"]),
        case(&[("type", "outgoing-query")], &["--type", "outgoing-query"]),
        case(&[("rcode", "NXDOMAIN")], &["--rcode", "NXDOMAIN"]),
        case(
            &[("requestor", "127.0.0.0/8")],
            &["--requestor", "127.0.0.0/8"],
        ),
        case(&[("protocol", "tcp")], &["--protocol", "tcp"]),
        case(
            &[("qname_glob", "h1*.example.test")],
            &["--qname-glob", "h1*.example.test"],
        ),
        case(
            &[("q", "example.test rcode:!0")],
            &["example.test", "rcode:!0"],
        ),
    ]
}

/// Every event of a search, newest first and oldest first, is what `dstore grep --ndjson` prints
/// for the same conditions (with --reverse, and without).
#[test]
fn search_answers_what_grep_finds_in_both_orders() {
    let syn = synthetic_store("search-syn");
    let smp = sample_store("search-smp");
    let mut bad = Vec::new();
    for (store, cases) in [(&syn, synthetic_cases()), (&smp, sample_cases())] {
        let gw = Gateway::start(&store.dir, &store.scratch, &["--max-limit", "100000"]);
        let mut nonempty = 0;
        for (pairs, args) in &cases {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let mut newest: Option<Vec<Value>> = None;
            for (order, reverse) in [
                (Some("newest"), true),
                (Some("oldest"), false),
                (None, true),
            ] {
                let mut p: Vec<(&str, &str)> =
                    pairs.iter().map(|(k, v)| (*k, v.as_str())).collect();
                p.push(("limit", "100000"));
                if let Some(o) = order {
                    p.push(("order", o));
                }
                let target = format!("/api/v1/search?{}", qs(&p));
                let r = gw.get(&target);
                if r.status != 200 {
                    bad.push(r.brief());
                    continue;
                }
                let doc = r.json();
                let items = items_of(&doc);
                let mut gargs = args.clone();
                if reverse {
                    gargs.push("--reverse");
                }
                let want = grep_lines(&store.dir, &gargs);
                if items != want {
                    bad.push(format!(
                        "{target} vs dstore grep {}: {}",
                        gargs.join(" "),
                        first_difference(&items, &want)
                    ));
                }
                if doc["number"].as_u64() != Some(items.len() as u64)
                    || !doc["next"].is_null()
                    || doc["timedOut"] != json!(false)
                    || !doc["msec"].as_f64().is_some_and(|m| m >= 0.0)
                {
                    bad.push(format!(
                        "{target}: number {}, next {}, timedOut {}, msec {} for {} items (all of them)",
                        doc["number"],
                        doc["next"],
                        doc["timedOut"],
                        doc["msec"],
                        items.len()
                    ));
                }
                if order.is_none() && newest.as_ref() != Some(&items) {
                    bad.push(format!(
                        "{target}: without order= the items are not newest first"
                    ));
                }
                if order == Some("newest") {
                    newest = Some(items.clone());
                    nonempty += usize::from(!items.is_empty());
                }
            }
        }
        assert!(
            nonempty * 2 > cases.len(),
            "most cases should find something: {nonempty} of {}",
            cases.len()
        );
    }
    report(bad);
}

fn bulk_frame(i: usize, time_us: u64) -> Vec<u8> {
    let pair = i / 2;
    let kind = if i.is_multiple_of(2) { QUERY } else { RESPONSE };
    let mut e = ev(
        &format!("b{i}"),
        time_us,
        kind,
        Some(&format!("h{}.bulk.example.", pair % 500)),
        Some(if pair.is_multiple_of(3) { 28 } else { 1 }),
    )
    .from(&format!(
        "10.{}.{}.{}",
        pair % 7,
        pair / 256 % 256,
        pair % 256
    ))
    .to("10.0.0.53");
    let mut id = [0u8; 16];
    id[..8].copy_from_slice(&(i as u64 / 2).to_be_bytes());
    id[8..16].copy_from_slice(&time_us.to_be_bytes());
    e.id = Some(id);
    if kind == RESPONSE {
        e = e.rcode(if pair.is_multiple_of(7) { 3 } else { 0 });
    }
    e.frame()
}

fn now_us() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_micros() as u64
}

/// Follows `next` from `first` (a page already fetched) until a page without `next`; every page
/// but the last holds `limit` items. Bounded: at most `max_pages` pages.
fn walk(gw: &Gateway, base: &str, first: Value, limit: usize, max_pages: usize) -> Vec<Value> {
    let mut items = Vec::new();
    let mut page = first;
    for _ in 0..max_pages {
        let got = items_of(&page);
        assert!(
            got.len() <= limit,
            "{base}: a page of {} items, limit {limit}",
            got.len()
        );
        assert_eq!(
            page["number"].as_u64(),
            Some(got.len() as u64),
            "{base}: number"
        );
        items.extend(got.iter().cloned());
        match page["next"].as_str() {
            None => {
                assert!(page["next"].is_null(), "{base}: next {}", page["next"]);
                return items;
            }
            Some(cursor) => {
                assert_eq!(got.len(), limit, "{base}: a short page with a next cursor");
                page = gw.ok_json(&format!("{base}&cursor={}", enc(cursor)));
            }
        }
    }
    panic!("{base}: still a next cursor after {max_pages} pages");
}

/// Paging with the cursor, newest first and oldest first, gives every event once, in the order
/// grep gives them, page after page of exactly `limit`; a cursor gives the same page each time;
/// events stored after the first page do not shift the later pages, and a fresh first page shows
/// them.
#[test]
fn paging_with_the_cursor_gives_every_event_once_in_order_despite_new_data() {
    let scratch = Scratch::new("paging");
    let dir = scratch.path("store");
    // Three imports (three segments), later ones newer; every tenth event shares its time with
    // the one before it.
    let mut t = B + 86_400_000_000;
    let mut files: Vec<Vec<Vec<u8>>> = vec![Vec::new(), Vec::new(), Vec::new()];
    for i in 0..6000usize {
        if !i.is_multiple_of(10) {
            t += 1000;
        }
        files[i / 2000].push(bulk_frame(i, t));
    }
    let refs: Vec<&[Vec<u8>]> = files.iter().map(Vec::as_slice).collect();
    import_files(&scratch, &dir, &refs);
    let gw = Gateway::start(&dir, &scratch, &[]);
    let before_newest = grep_lines(&dir, &["--reverse"]);
    let before_oldest = grep_lines(&dir, &[]);
    let nx_newest = grep_lines(&dir, &["--rcode", "NXDOMAIN", "--reverse"]);
    assert_eq!(before_newest.len(), 6000);

    const LIMIT: usize = 250;
    let newest_base = format!("/api/v1/search?limit={LIMIT}");
    let oldest_base = format!("/api/v1/search?limit={LIMIT}&order=oldest");
    let nx_base = "/api/v1/search?rcode=NXDOMAIN&limit=37".to_string();
    let newest_first = gw.ok_json(&newest_base);
    let oldest_first = gw.ok_json(&oldest_base);
    let nx_first = gw.ok_json(&nx_base);

    // A cursor gives the same page every time.
    let cursor = newest_first["next"]
        .as_str()
        .expect("a next cursor")
        .to_string();
    let a = gw.ok_json(&format!("{newest_base}&cursor={}", enc(&cursor)));
    let b = gw.ok_json(&format!("{newest_base}&cursor={}", enc(&cursor)));
    assert_eq!(
        a["items"], b["items"],
        "the same cursor gave two different pages"
    );
    assert_eq!(a["next"], b["next"]);

    // New events arrive, stamped after the first pages were served.
    let fresh_from = now_us() + 1000;
    let new_frames: Vec<Vec<u8>> = (0..300)
        .map(|i| bulk_frame(10_000 + i, fresh_from + i as u64))
        .collect();
    import_files(&scratch, &dir, &[&new_frames]);
    while now_us() <= fresh_from + 1000 {
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(grep_count(&dir, &[]), 6300);

    let mut bad = Vec::new();
    for (label, base, first, limit, want) in [
        (
            "newest first",
            &newest_base,
            newest_first,
            LIMIT,
            &before_newest,
        ),
        (
            "oldest first",
            &oldest_base,
            oldest_first,
            LIMIT,
            &before_oldest,
        ),
        ("NXDOMAIN newest first", &nx_base, nx_first, 37, &nx_newest),
    ] {
        let got = walk(&gw, base, first, limit, 200);
        if &got != want {
            bad.push(format!("{label}: pages {}", first_difference(&got, want)));
        }
        let keys: BTreeSet<(u64, String, bool)> = got
            .iter()
            .map(|v| (item_time(v), v["qid"].to_string(), v["qr"] == json!(true)))
            .collect();
        if keys.len() != got.len() {
            bad.push(format!(
                "{label}: {} items but {} distinct events",
                got.len(),
                keys.len()
            ));
        }
        let times: Vec<u64> = got.iter().map(item_time).collect();
        let ordered = if label.contains("oldest") {
            times.windows(2).all(|w| w[0] <= w[1])
        } else {
            times.windows(2).all(|w| w[0] >= w[1])
        };
        if !ordered {
            bad.push(format!("{label}: pages out of time order"));
        }
    }
    assert!(!nx_newest.is_empty());

    // A fresh first page shows the new events, newest first.
    let fresh = gw.ok_json(&newest_base);
    let fresh_items = items_of(&fresh);
    let now_newest = grep_lines(&dir, &["--reverse", "--limit", &LIMIT.to_string()]);
    if fresh_items != now_newest || item_time(&fresh_items[0]) < fresh_from {
        bad.push(format!(
            "a fresh first page after new data: {}",
            first_difference(&fresh_items, &now_newest)
        ));
    }
    report(bad);
}

/// `limit` is capped by --max-limit, on the search and on get-endpoint-data; paging with a capped
/// limit still visits every event once.
#[test]
fn limit_is_capped_by_max_limit() {
    let s = synthetic_store("cap");
    let gw = Gateway::start(&s.dir, &s.scratch, &["--max-limit", "7"]);
    let all = grep_lines(&s.dir, &["--reverse"]);
    assert!(all.len() > 14);
    let mut bad = Vec::new();
    for (target, want) in [
        ("/api/v1/search", 7),
        ("/api/v1/search?limit=1000", 7),
        ("/api/v1/search?limit=7", 7),
        ("/api/v1/search?limit=8", 7),
        ("/api/v1/search?limit=3", 3),
        ("/api/v1/search?limit=1", 1),
        ("/get-endpoint-data", 7),
        ("/get-endpoint-data?limit=1000", 7),
        ("/get-endpoint-data?limit=2", 2),
    ] {
        let doc = gw.ok_json(target);
        let n = items_of(&doc).len();
        if n != want {
            bad.push(format!("{target}: {n} items, want {want}"));
        }
        if target.starts_with("/api/") && (doc["next"].is_null() || doc["number"] != want) {
            bad.push(format!(
                "{target}: next {} number {}, want a cursor and {want}",
                doc["next"], doc["number"]
            ));
        }
    }
    let base = "/api/v1/search?limit=1000";
    let got = walk(&gw, base, gw.ok_json(base), 7, 20);
    if got != all {
        bad.push(format!(
            "paging with limit=1000 capped to 7: {}",
            first_difference(&got, &all)
        ));
    }
    report(bad);
}

// ---------------------------------------------------------------------------------------------
// /api/v1/summary

#[test]
fn summary_agrees_with_grep_count_top_and_histogram() {
    let syn = synthetic_store("summary-syn");
    let smp = sample_store("summary-smp");
    let from = (B_SECS + 1).to_string();
    let to = (B_SECS + 3601).to_string();
    let syn_cases = vec![
        case(&[], &[]),
        case(&[("type", "response")], &["--type", "response"]),
        case(&[("domain", "example.com")], &["--domain", "example.com"]),
        case(&[("q", "rcode:!0")], &["rcode:!0"]),
        case(
            &[("from", &from), ("to", &to)],
            &["--from", &from, "--to", &to],
        ),
        case(
            &[("qname", "nothing.example")],
            &["--qname", "nothing.example"],
        ),
    ];
    let smp_cases = vec![
        case(&[], &[]),
        case(&[("type", "query")], &["--type", "query"]),
        case(
            &[("domain", "example.test"), ("rcode", "!0")],
            &["--domain", "example.test", "--rcode", "!0"],
        ),
    ];
    let mut bad = Vec::new();
    for (store, cases) in [(&syn, syn_cases), (&smp, smp_cases)] {
        let gw = Gateway::start(&store.dir, &store.scratch, &[]);
        for (pairs, args) in &cases {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            for (top, interval, secs) in [
                ("3", "60", 60u64),
                ("1", "1m", 60),
                ("10", "1h", 3600),
                ("1000", "1", 1),
            ] {
                let mut p: Vec<(&str, &str)> =
                    pairs.iter().map(|(k, v)| (*k, v.as_str())).collect();
                p.push(("top", top));
                p.push(("interval", interval));
                let target = format!("/api/v1/summary?{}", qs(&p));
                let r = gw.get(&target);
                if r.status != 200 || !r.content_type().starts_with("application/json") {
                    bad.push(r.brief());
                    continue;
                }
                let doc = r.json();
                let total = grep_count(&store.dir, &args);
                if doc["total"].as_u64() != Some(total) {
                    bad.push(format!(
                        "{target}: total {}, dstore grep {} --count says {total}",
                        doc["total"],
                        args.join(" ")
                    ));
                }
                for (field, n) in [
                    ("qname", top),
                    ("requestor", top),
                    ("rcode", "64"),
                    ("qtype", "64"),
                ] {
                    let lua =
                        grep_luaresult(&store.dir, &[&args[..], &["--top", field, n]].concat());
                    if doc["top"][field] != lua["top"][field] {
                        bad.push(format!(
                            "{target}: top.{field} {}, dstore grep --top {field} {n} --count says {}",
                            doc["top"][field], lua["top"][field]
                        ));
                    }
                }
                let h = &doc["histogram"];
                let buckets = h["buckets"].as_array().cloned().unwrap_or_default();
                let sum: u64 = buckets.iter().filter_map(|b| b["count"].as_u64()).sum();
                if sum != total || h["interval"] != json!(secs) {
                    bad.push(format!("{target}: histogram interval {} counts summing to {sum}, want {secs} and {total}", h["interval"]));
                }
                let hist_arg = format!("{secs}s");
                let lua = grep_luaresult(
                    &store.dir,
                    &[&args[..], &["--histogram", &hist_arg]].concat(),
                );
                let want_buckets = lua["histogram"]["buckets"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default();
                if buckets != want_buckets {
                    bad.push(format!(
                        "{target}: histogram {h}, dstore grep --histogram {hist_arg} says {}",
                        lua["histogram"]
                    ));
                }
                if doc["timedOut"] != json!(false)
                    || !doc["msec"].as_f64().is_some_and(|m| m >= 0.0)
                {
                    bad.push(format!(
                        "{target}: timedOut {} msec {}",
                        doc["timedOut"], doc["msec"]
                    ));
                }
            }
        }
        // Defaults: ten rows per top table, hourly bars when there is no time range.
        let doc = gw.ok_json("/api/v1/summary");
        for field in ["qname", "requestor", "rcode", "qtype"] {
            if !doc["top"][field]
                .as_array()
                .is_some_and(|rows| rows.len() <= 10 && !rows.is_empty())
            {
                bad.push(format!(
                    "/api/v1/summary: top.{field} {}",
                    doc["top"][field]
                ));
            }
        }
        if doc["histogram"]["interval"] != json!(3600) {
            bad.push(format!(
                "/api/v1/summary: default interval {}, want 3600 with no time range",
                doc["histogram"]["interval"]
            ));
        }
        let lua = grep_luaresult(&store.dir, &["--top", "qname", "10"]);
        if doc["top"]["qname"] != lua["top"]["qname"] {
            bad.push(format!(
                "/api/v1/summary: top.qname {}, grep says {}",
                doc["top"]["qname"], lua["top"]["qname"]
            ));
        }
    }
    report(bad);
}

// ---------------------------------------------------------------------------------------------
// /api/v1/event/{id}

#[test]
fn event_endpoint_gives_the_query_and_the_response_sharing_a_qid() {
    let syn = synthetic_store("event-syn");
    let gw = Gateway::start(&syn.dir, &syn.scratch, &[]);
    let id4 = id_text(4);
    for form in [id4.clone(), id4.replace('-', ""), id4.to_ascii_uppercase()] {
        let doc = gw.ok_json(&format!("/api/v1/event/{form}"));
        let items = items_of(&doc);
        let want = grep_lines(&syn.dir, &["--id", &id4]);
        assert_eq!(
            items, want,
            "/api/v1/event/{form} vs dstore grep --id {id4}"
        );
        assert_eq!(items.len(), 2, "/api/v1/event/{form}: {items:?}");
        assert!(items.iter().all(|i| i["qid"] == json!(id4)));
        assert_eq!(items[0]["qr"], json!(false), "the query first");
        assert_eq!(items[1]["qr"], json!(true), "then the response");
        assert_eq!(items[0]["messageType"], json!("DNSQueryType"));
        assert_eq!(items[1]["messageType"], json!("DNSResponseType"));
    }
    // Outgoing traffic: the outgoing query and its incoming response.
    let doc = gw.ok_json(&format!("/api/v1/event/{}", id_text(5)));
    let kinds: Vec<&Value> = doc["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|i| &i["messageType"])
        .collect();
    assert_eq!(
        kinds,
        [
            &json!("DNSOutgoingQueryType"),
            &json!("DNSIncomingResponseType")
        ]
    );
    drop(gw);

    // Real traffic: every response of the dnsdist sample has its query under the same qid.
    let smp = sample_store("event-smp");
    let gw = Gateway::start(&smp.dir, &smp.scratch, &[]);
    let responses = items_of(&gw.ok_json("/api/v1/search?type=response&limit=5"));
    assert_eq!(responses.len(), 5);
    for r in responses {
        let qid = r["qid"].as_str().expect("qid").to_string();
        let items = items_of(&gw.ok_json(&format!("/api/v1/event/{qid}")));
        assert_eq!(items.len(), 2, "/api/v1/event/{qid}: {items:?}");
        assert!(items.iter().all(|i| i["qid"] == json!(qid)));
        assert_eq!(items.iter().filter(|i| i["qr"] == json!(true)).count(), 1);
        assert!(
            items.contains(&r),
            "/api/v1/event/{qid} does not hold the response searched"
        );
        assert_eq!(items, grep_lines(&smp.dir, &["--id", &qid]));
    }
}

// ---------------------------------------------------------------------------------------------
// /get-endpoint-data (1.x)

#[test]
fn get_endpoint_data_takes_each_1x_parameter() {
    let s = synthetic_store("ged");
    let gw = Gateway::start(&s.dir, &s.scratch, &[]);
    let client = |e: &Ev| matches!(e.kind, QUERY | RESPONSE);
    let outgoing = |e: &Ev| matches!(e.kind, OUTGOING | INCOMING);
    let id1 = id_text(1);
    let eq1 = format!("={id1}");
    let start = (B_SECS + 1).to_string();
    let end = (B_SECS + 61).to_string();
    type P = Box<dyn Fn(&Ev) -> bool>;
    fn p(f: impl Fn(&Ev) -> bool + 'static) -> P {
        Box::new(f)
    }
    /// Parameters, which events (as built) must come back, and the same search as grep arguments.
    type GedCase<'a> = (Vec<(&'a str, &'a str)>, P, Option<Vec<&'a str>>);
    let cases: Vec<GedCase> = vec![
        (
            vec![],
            p(client),
            Some(vec!["--type", "query", "--type", "response"]),
        ),
        (
            vec![("only_responses", "1")],
            p(|e| e.kind == RESPONSE),
            Some(vec!["--type", "response"]),
        ),
        (
            vec![("only_responses", "true")],
            p(|e| e.kind == RESPONSE),
            None,
        ),
        (vec![("only_responses", "0")], p(client), None),
        (
            vec![("outgoing", "1")],
            p(outgoing),
            Some(vec![
                "--type",
                "outgoing-query",
                "--type",
                "incoming-response",
            ]),
        ),
        (vec![("outgoing", "yes")], p(outgoing), None),
        (
            vec![("outgoing", "1"), ("only_responses", "1")],
            p(|e| e.kind == INCOMING),
            Some(vec!["--type", "incoming-response"]),
        ),
        (
            vec![("q", "example.com")],
            p(move |e| client(e) && e.under("example.com")),
            None,
        ),
        (
            vec![("q", "rcode:3")],
            p(move |e| client(e) && e.rcode == Some(3)),
            None,
        ),
        (
            vec![("q", "rcode:!0")],
            p(move |e| client(e) && e.rcode.is_some_and(|r| r != 0)),
            None,
        ),
        (
            vec![("q", "~192.0.2.80")],
            p(move |e| client(e) && e.answer_in("192.0.2.80")),
            None,
        ),
        (
            vec![("q", &eq1)],
            p(move |e| client(e) && e.id == Some(uuid(1))),
            None,
        ),
        (
            vec![("q", "c:alice")],
            p(move |e| client(e) && e.requestor_id.as_deref() == Some("alice")),
            None,
        ),
        (
            vec![("q", "d:dev-1")],
            p(move |e| client(e) && e.device_id.as_deref() == Some("dev-1")),
            None,
        ),
        (
            vec![("q", "dn:phone")],
            p(move |e| client(e) && e.device_name.as_deref() == Some("phone")),
            None,
        ),
        (
            vec![("q", "192.0.2.1")],
            p(move |e| client(e) && (e.requestor_in("192.0.2.1") || e.responder_in("192.0.2.1"))),
            None,
        ),
        (
            vec![("q", "example.com rcode:0")],
            p(move |e| client(e) && e.under("example.com") && e.rcode == Some(0)),
            None,
        ),
        (
            vec![("q", "example.com"), ("outgoing", "1")],
            p(move |e| outgoing(e) && e.under("example.com")),
            None,
        ),
        (
            vec![("start", &start), ("end", &end)],
            p(move |e| client(e) && (B + 1_000_000..B + 61_000_000).contains(&e.time_us)),
            None,
        ),
        (
            vec![("start", &start)],
            p(move |e| client(e) && e.time_us >= B + 1_000_000),
            None,
        ),
        (
            vec![("end", &end)],
            p(move |e| client(e) && e.time_us < B + 61_000_000),
            None,
        ),
        (
            vec![("preasons", "spamhaus-dbl")],
            p(move |e| client(e) && e.policy_is("spamhaus-dbl")),
            None,
        ),
        (
            vec![("preasons", "spamhaus-dbl,custom-policy")],
            p(move |e| client(e) && (e.policy_is("spamhaus-dbl") || e.policy_is("custom-policy"))),
            None,
        ),
        (
            vec![("preasons_tags", "malware")],
            p(move |e| client(e) && e.has_tag("malware")),
            None,
        ),
        (
            vec![("preasons_tags", "blocked,malware")],
            p(move |e| client(e) && (e.has_tag("blocked") || e.has_tag("malware"))),
            None,
        ),
        (
            vec![("has_preason", "1")],
            p(move |e| client(e) && e.policy.as_deref().is_some_and(|x| !x.is_empty())),
            None,
        ),
        (vec![("has_preason", "0")], p(client), None),
        (
            vec![("has_preason", "1"), ("preasons_tags", "blocked")],
            p(move |e| client(e) && e.policy.is_some() && e.has_tag("blocked")),
            None,
        ),
        (vec![("limit", "2")], p(client), None),
        (vec![("q", "nothing.example")], p(|_| false), None),
    ];
    let mut bad = Vec::new();
    for (pairs, pred, grep_args) in &cases {
        let target = format!("/get-endpoint-data?{}", qs(pairs));
        let r = gw.get(&target);
        if r.status != 200 || !r.content_type().starts_with("application/json") {
            bad.push(r.brief());
            continue;
        }
        let doc = r.json();
        if doc
            .as_object()
            .map(|o| o.keys().cloned().collect::<Vec<_>>())
            != Some(vec!["items".to_string()])
        {
            bad.push(format!("{target}: keys of {doc}, want only items"));
        }
        let items = items_of(&doc);
        let limit = pairs
            .iter()
            .find(|(k, _)| *k == "limit")
            .map_or(100, |(_, v)| v.parse().expect("limit"));
        let mut want: Vec<&Ev> = s.evs.iter().filter(|e| !e.undecodable && pred(e)).collect();
        want.reverse();
        want.truncate(limit);
        let want_labels: Vec<&str> = want.iter().map(|e| e.label.as_str()).collect();
        let got_labels: Vec<String> = items
            .iter()
            .map(|i| {
                let t = item_time(i);
                s.evs
                    .iter()
                    .find(|e| e.time_us == t)
                    .map_or(format!("?{t}"), |e| e.label.clone())
            })
            .collect();
        if got_labels != want_labels {
            bad.push(format!("{target}: {got_labels:?}, want {want_labels:?}"));
        }
        if let Some(args) = grep_args {
            let want = grep_lines(&s.dir, &[&args[..], &["--reverse"]].concat());
            if items != want {
                bad.push(format!(
                    "{target} vs dstore grep {args:?} --reverse: {}",
                    first_difference(&items, &want)
                ));
            }
        }
    }
    report(bad);
}

// ---------------------------------------------------------------------------------------------
// Errors: 400 naming the parameter, 404, 405, 414

fn expect_error(r: &Http, status: u16, parameter: Option<&str>, bad: &mut Vec<String>) {
    if r.status != status || !r.content_type().starts_with("application/json") {
        bad.push(format!("want {status} JSON: {}", r.brief()));
        return;
    }
    let v: Value = match serde_json::from_slice(&r.body) {
        Ok(v) => v,
        Err(e) => {
            bad.push(format!("{}: not JSON ({e})", r.brief()));
            return;
        }
    };
    if v["error"].as_str().is_none_or(str::is_empty) {
        bad.push(format!("{}: no error message", r.brief()));
    }
    if let Some(p) = parameter {
        if v["parameter"] != json!(p) {
            bad.push(format!(
                "{}: parameter {}, want {p:?}",
                r.brief(),
                v["parameter"]
            ));
        }
    }
}

#[test]
fn bad_parameters_are_400_naming_the_parameter() {
    let s = synthetic_store("errors");
    let gw = Gateway::start(&s.dir, &s.scratch, &[]);
    let mut bad = Vec::new();
    let search: Vec<(&str, &str)> = vec![
        ("limit=0", "limit"),
        ("limit=-1", "limit"),
        ("limit=ten", "limit"),
        ("limit=99999999999999999999999", "limit"),
        ("order=sideways", "order"),
        ("cursor=garbage", "cursor"),
        ("cursor=1%3Ax", "cursor"),
        ("from=yesterdayish", "from"),
        ("to=soon", "to"),
        ("from=1767225700&to=1767225600", "from"),
        ("last=forever", "last"),
        ("qname=", "qname"),
        ("qname=a%20b", "qname"),
        ("domain=", "domain"),
        ("qname_regex=(", "qname_regex"),
        ("qtype=BOGUS", "qtype"),
        ("rcode=BOGUS", "rcode"),
        ("type=sideways", "type"),
        ("requestor=1.2.3.4%2F99", "requestor"),
        ("responder=not-an-address", "responder"),
        ("answer=192.0.2.0%2F99", "answer"),
        ("ecs=nope", "ecs"),
        ("id=not-a-uuid", "id"),
        ("protocol=pigeon", "protocol"),
        ("frobnicate=1", "frobnicate"),
        ("q=rcode%3ABOGUS", "q"),
        ("q=1.2.3.4%2F99", "q"),
        ("q=%3Dnot-a-uuid", "q"),
        ("q=from%3Dnever", "q"),
        ("q=%zz", "q"),
    ];
    for (query, parameter) in &search {
        let r = gw.get(&format!("/api/v1/search?{query}"));
        expect_error(&r, 400, Some(parameter), &mut bad);
    }
    for (query, parameter) in [
        ("top=0", "top"),
        ("top=1001", "top"),
        ("top=x", "top"),
        ("interval=0", "interval"),
        ("interval=fortnightly", "interval"),
        ("qtype=BOGUS", "qtype"),
        ("frobnicate=1", "frobnicate"),
    ] {
        let r = gw.get(&format!("/api/v1/summary?{query}"));
        expect_error(&r, 400, Some(parameter), &mut bad);
    }
    expect_error(
        &gw.get("/api/v1/event/not-a-uuid"),
        400,
        Some("id"),
        &mut bad,
    );
    for (query, parameter) in [
        ("start=abc", "start"),
        ("end=abc", "end"),
        ("limit=0", "limit"),
        ("limit=many", "limit"),
        ("q=rcode%3ABOGUS", "q"),
        ("bogus=1", "bogus"),
        ("only_responses=banana", "only_responses"),
        ("outgoing=perhaps", "outgoing"),
        ("has_preason=maybe", "has_preason"),
    ] {
        let r = gw.get(&format!("/get-endpoint-data?{query}"));
        expect_error(&r, 400, Some(parameter), &mut bad);
    }
    // An empty time range names one of the two ends.
    let r = gw.get(&format!(
        "/get-endpoint-data?start={}&end={}",
        B_SECS + 10,
        B_SECS
    ));
    expect_error(&r, 400, None, &mut bad);
    if !r.json()["parameter"]
        .as_str()
        .is_some_and(|p| p == "start" || p == "end")
    {
        bad.push(format!("{}: parameter should be start or end", r.brief()));
    }
    // The gateway is still serving.
    assert_eq!(gw.get("/healthz").status, 200);
    report(bad);
}

#[test]
fn unknown_paths_other_methods_and_huge_urls() {
    let s = synthetic_store("paths");
    let gw = Gateway::start(&s.dir, &s.scratch, &[]);
    let mut bad = Vec::new();
    let absent = uuid_text(&[0x11; 16]);
    for path in [
        "/nope".to_string(),
        "/api".to_string(),
        "/api/v1".to_string(),
        "/api/v1/nope".to_string(),
        "/api/v2/search".to_string(),
        "/api/v1/search/extra".to_string(),
        "/api/v1/event/".to_string(),
        format!("/api/v1/event/{}/more", id_text(1)),
        format!("/api/v1/event/{absent}"),
        "/ui/nope.js".to_string(),
        "/get-endpoint-data/x".to_string(),
    ] {
        expect_error(&gw.get(&path), 404, None, &mut bad);
    }
    for method in ["POST", "PUT", "DELETE", "PATCH", "OPTIONS"] {
        for path in [
            "/api/v1/search",
            "/api/v1/summary",
            "/get-endpoint-data",
            "/",
            "/healthz",
            "/nope",
        ] {
            let r = gw.request(method, path);
            expect_error(&r, 405, None, &mut bad);
            let allow = r.header("Allow").unwrap_or("");
            let methods: BTreeSet<String> = allow
                .split(',')
                .map(|m| m.trim().to_ascii_uppercase())
                .collect();
            if !(methods.contains("GET") && methods.contains("HEAD")) || methods.contains(method) {
                bad.push(format!("{}: Allow {allow:?}, want GET and HEAD", r.brief()));
            }
        }
    }
    for len in [9000, 100_000] {
        let long = format!("/api/v1/search?q={}", "a".repeat(len));
        expect_error(&gw.get(&long), 414, None, &mut bad);
        let long = format!("/{}", "b".repeat(len));
        expect_error(&gw.get(&long), 414, None, &mut bad);
    }
    assert_eq!(gw.get("/healthz").status, 200, "still serving");
    report(bad);
}

#[test]
fn head_requests_and_content_types() {
    let s = synthetic_store("head");
    let gw = Gateway::start(&s.dir, &s.scratch, &[]);
    let mut bad = Vec::new();
    let id1 = id_text(1);
    let event = format!("/api/v1/event/{id1}");
    let cases: Vec<(&str, u16, &str)> = vec![
        ("/", 200, "text/html"),
        ("/index.html", 200, "text/html"),
        ("/ui/app.js", 200, "javascript"),
        ("/ui/app.css", 200, "text/css"),
        ("/healthz", 200, "text/plain"),
        ("/metrics", 200, "text/plain"),
        ("/openapi.json", 200, "application/json"),
        ("/api/v1/search?limit=2", 200, "application/json"),
        ("/api/v1/search?limit=1000", 200, "application/json"),
        ("/api/v1/summary", 200, "application/json"),
        (&event, 200, "application/json"),
        ("/get-endpoint-data", 200, "application/json"),
        ("/api/v1/search?limit=0", 400, "application/json"),
        ("/nope", 404, "application/json"),
    ];
    for (path, status, ctype) in cases {
        let get = gw.get(path);
        let head = gw.request("HEAD", path);
        if get.status != status || !get.content_type().contains(ctype) {
            bad.push(format!("want {status} {ctype}: {}", get.brief()));
        }
        if get.body.is_empty() {
            bad.push(format!("{}: an empty body", get.brief()));
        }
        if head.status != status || head.content_type() != get.content_type() {
            bad.push(format!(
                "HEAD {path}: {} [{}], GET gave {} [{}]",
                head.status,
                head.content_type(),
                get.status,
                get.content_type()
            ));
        }
        if !head.body.is_empty() {
            bad.push(format!("HEAD {path}: {} bytes of body", head.body.len()));
        }
        if ctype.starts_with("text/")
            && ctype != "text/plain"
            && !get.content_type().contains("charset=utf-8")
        {
            bad.push(format!("{}: no charset", get.brief()));
        }
    }
    let metrics = gw.get("/metrics");
    if !metrics
        .content_type()
        .starts_with("text/plain; version=0.0.4")
    {
        bad.push(format!(
            "/metrics Content-Type {:?}, want Prometheus text 0.0.4",
            metrics.content_type()
        ));
    }
    let html = gw.get("/").text();
    if !html.to_ascii_lowercase().contains("<html") {
        bad.push("/ is not an HTML page".into());
    }
    assert_eq!(gw.get("/healthz").text().trim(), "ok");
    report(bad);
}

// ---------------------------------------------------------------------------------------------
// The bearer token, and listening beyond loopback

const TOKEN: &str = "gateway-test-token-0123456789abcdef";

#[test]
fn a_token_guards_the_api_but_not_the_ui_or_healthz() {
    let s = synthetic_store("token");
    let token_file = s.scratch.path("token");
    std::fs::write(&token_file, format!("{TOKEN}\n")).expect("write token");
    let gw = Gateway::start(
        &s.dir,
        &s.scratch,
        &["--token-file", token_file.to_str().expect("utf-8")],
    );
    let mut bad = Vec::new();
    let event = format!("/api/v1/event/{}", id_text(1));
    let protected = [
        "/api/v1/search?limit=1",
        "/api/v1/summary",
        event.as_str(),
        "/get-endpoint-data",
        "/metrics",
        "/openapi.json",
    ];
    let short = &TOKEN[..TOKEN.len() - 1];
    let long = format!("{TOKEN}x");
    let wrong: Vec<Option<String>> = vec![
        None,
        Some("Bearer wrong-token-0123456789abcdefgh".into()),
        Some(format!("Bearer {short}")),
        Some(format!("Bearer {long}")),
        Some(format!("Basic {TOKEN}")),
        Some(TOKEN.to_string()),
        Some("Bearer ".into()),
    ];
    for path in protected {
        for auth in &wrong {
            let headers: Vec<(&str, &str)> = auth
                .as_deref()
                .map(|a| vec![("Authorization", a)])
                .unwrap_or_default();
            let r = exchange(gw.addr, "GET", path, &headers).unwrap_or_else(|e| panic!("{e}"));
            expect_error(&r, 401, None, &mut bad);
            if !r
                .header("WWW-Authenticate")
                .is_some_and(|h| h.starts_with("Bearer"))
            {
                bad.push(format!(
                    "{} with {auth:?}: WWW-Authenticate {:?}",
                    r.brief(),
                    r.header("WWW-Authenticate")
                ));
            }
            if r.text().contains(TOKEN) {
                bad.push(format!("{}: the answer shows the token", r.brief()));
            }
        }
        let auth = format!("Bearer {TOKEN}");
        let r = exchange(gw.addr, "GET", path, &[("Authorization", &auth)])
            .unwrap_or_else(|e| panic!("{e}"));
        if r.status != 200 {
            bad.push(format!("with the token: {}", r.brief()));
        }
    }
    for path in ["/", "/index.html", "/ui/app.js", "/ui/app.css", "/healthz"] {
        let r = exchange(gw.addr, "GET", path, &[]).unwrap_or_else(|e| panic!("{e}"));
        if r.status != 200 {
            bad.push(format!("public without a token: {}", r.brief()));
        }
    }
    // With the token the API answers as without one.
    let gw = gw.with_token(TOKEN);
    let items = items_of(&gw.ok_json("/api/v1/search?order=oldest&limit=1000"));
    assert_eq!(items, grep_lines(&s.dir, &[]));
    report(bad);
}

#[test]
fn refuses_to_listen_beyond_loopback_without_a_token() {
    let s = Scratch::new("refuse");
    let dir = s.path("store");
    std::fs::create_dir_all(&dir).expect("store dir");
    let store = dir.to_str().expect("utf-8");
    let short_file = s.path("short-token");
    std::fs::write(&short_file, "tooshort\n").expect("write");
    let good_file = s.path("token");
    std::fs::write(&good_file, TOKEN).expect("write");
    let mut bad = Vec::new();
    for (listen, extra, needle) in [
        (format!("0.0.0.0:{}", free_port()), vec![], "token-file"),
        (format!("[::]:{}", free_port()), vec![], "token-file"),
        (format!("192.0.2.1:{}", free_port()), vec![], "token-file"),
        (
            format!("0.0.0.0:{}", free_port()),
            vec!["--token-file", short_file.to_str().expect("utf-8")],
            "16",
        ),
        (
            format!("127.0.0.1:{}", free_port()),
            vec!["--token-file", "/nonexistent/token"],
            "token",
        ),
    ] {
        let args: Vec<&str> = [
            &["gateway", "--storage-dir", store, "--listen", &listen][..],
            &extra,
        ]
        .concat();
        let (code, err) = run_bounded(&args, &s, 10);
        let lines: Vec<&str> = err.lines().collect();
        if code != Some(2)
            || lines.len() != 1
            || !lines[0].contains(needle)
            || err.contains("serving")
            || err.contains("panicked")
        {
            bad.push(format!("dstore {}: exit {code:?}, stderr {err:?}; want exit 2 and one line naming {needle}", args.join(" ")));
        }
    }
    // With a token it serves on every address; reach it over loopback.
    let gw = Gateway::start_on(
        "0.0.0.0",
        &dir,
        &s,
        &["--token-file", good_file.to_str().expect("utf-8")],
    )
    .with_token(TOKEN);
    assert_eq!(gw.get("/api/v1/search").status, 200);
    assert_eq!(
        exchange(gw.addr, "GET", "/api/v1/search", &[])
            .expect("answer")
            .status,
        401
    );
    report(bad);
}

// ---------------------------------------------------------------------------------------------
// The search cap: 503 with Retry-After

/// A search is held for certain by a "segment" that is a FIFO: the gateway's search blocks
/// opening and reading it until this test writes to it. While it is held, every other search
/// (with --max-searches 1) is answered 503 with Retry-After, and routes that do not search are
/// not; once it is released, searches are answered again.
#[cfg(target_os = "linux")]
#[test]
fn beyond_max_searches_the_answer_is_503_with_retry_after() {
    use std::os::unix::fs::OpenOptionsExt;
    const O_NONBLOCK: i32 = 0o4000; // Linux
    const ENXIO: i32 = 6; // Linux: no reader has the FIFO open yet
    let s = Scratch::new("busy");
    let dir = s.path("store");
    std::fs::create_dir_all(&dir).expect("store dir");
    let fifo = dir.join("0000000001-20260101T000000Z.dst");
    let o = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .output()
        .expect("run mkfifo");
    assert!(
        o.status.success(),
        "mkfifo: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let gw = Gateway::start(
        &dir,
        &s,
        &[
            "--max-searches",
            "1",
            "--workers",
            "4",
            "--time-budget",
            "60",
        ],
    );

    let addr = gw.addr;
    let held = std::thread::spawn(move || exchange(addr, "GET", "/api/v1/search?qtype=A", &[]));
    // Wait (bounded) until the held search has the FIFO open: then it is inside the search.
    let deadline = Instant::now() + Duration::from_secs(10);
    let writer = loop {
        match std::fs::OpenOptions::new()
            .write(true)
            .custom_flags(O_NONBLOCK)
            .open(&fifo)
        {
            Ok(f) => break f,
            Err(e) if e.raw_os_error() == Some(ENXIO) && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(10))
            }
            Err(e) => panic!(
                "the first search never opened the store's segment ({e}); this test relies on it"
            ),
        }
    };
    let mut bad = Vec::new();
    let id = id_text(1);
    let event = format!("/api/v1/event/{id}");
    for path in [
        "/api/v1/search",
        "/api/v1/search?limit=5&order=oldest",
        "/api/v1/summary",
        event.as_str(),
        "/get-endpoint-data?q=example.com",
    ] {
        let r = gw.get(path);
        expect_error(&r, 503, None, &mut bad);
        if r.header("Retry-After")
            .is_none_or(|v| v.parse::<u64>().is_err())
        {
            bad.push(format!(
                "{}: Retry-After {:?}",
                r.brief(),
                r.header("Retry-After")
            ));
        }
    }
    for path in ["/healthz", "/", "/openapi.json"] {
        let r = gw.get(path);
        if r.status != 200 {
            bad.push(format!("not a search, yet: {}", r.brief()));
        }
    }
    // Release the held search: it meets garbage where a segment header should be.
    {
        let mut w = writer;
        let _ = w.write_all(&[0u8; 64]);
    }
    let first = held
        .join()
        .expect("the held request's thread")
        .unwrap_or_else(|e| panic!("{e}"));
    if first.status != 200 {
        bad.push(format!("the held search: {}", first.brief()));
    }
    std::fs::remove_file(&fifo).expect("remove the FIFO");
    for path in ["/api/v1/search", "/api/v1/summary", "/get-endpoint-data"] {
        let r = gw.get(path);
        if r.status != 200 {
            bad.push(format!("after the held search ended: {}", r.brief()));
        }
    }
    report(bad);
}

/// Many searches at once on a real store with --max-searches 1: each is answered 200 or 503 (with
/// Retry-After), never anything else, and the gateway serves afterwards.
#[test]
fn concurrent_searches_are_answered_200_or_503() {
    let s = sample_store("concurrent");
    let gw = Gateway::start(
        &s.dir,
        &s.scratch,
        &["--max-searches", "1", "--workers", "8"],
    );
    let addr = gw.addr;
    let threads: Vec<_> = (0..16)
        .map(|i| {
            std::thread::spawn(move || {
                let path = if i % 2 == 0 {
                    "/api/v1/summary?top=100"
                } else {
                    "/api/v1/search?limit=1000&qname_regex=x"
                };
                exchange(addr, "GET", path, &[])
            })
        })
        .collect();
    let mut statuses = BTreeMap::new();
    for t in threads {
        let r = t.join().expect("thread").unwrap_or_else(|e| panic!("{e}"));
        assert!(
            r.status == 200
                || (r.status == 503
                    && r.header("Retry-After").is_some()
                    && r.json()["error"].is_string()),
            "{}",
            r.brief()
        );
        *statuses.entry(r.status).or_insert(0) += 1;
    }
    assert!(
        statuses.get(&200).copied().unwrap_or(0) >= 1,
        "{statuses:?}"
    );
    assert_eq!(gw.get("/api/v1/search?limit=1").status, 200);
}

// ---------------------------------------------------------------------------------------------
// /openapi.json and /metrics

fn openapi_parameters(doc: &Value, path: &str) -> BTreeSet<String> {
    let params = doc["paths"][path]["get"]["parameters"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    params
        .iter()
        .map(|p| match p["$ref"].as_str() {
            Some(r) => {
                let name = r.rsplit('/').next().unwrap_or_default();
                doc["components"]["parameters"][name]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string()
            }
            None => p["name"].as_str().unwrap_or_default().to_string(),
        })
        .collect()
}

#[test]
fn openapi_json_parses_and_lists_every_route() {
    let s = synthetic_store("openapi");
    let gw = Gateway::start(&s.dir, &s.scratch, &[]);
    let doc = gw.ok_json("/openapi.json");
    assert!(
        doc["openapi"].as_str().is_some_and(|v| v.starts_with("3.")),
        "openapi {}",
        doc["openapi"]
    );
    assert!(doc["info"]["title"].is_string());
    let paths: BTreeSet<String> = doc["paths"]
        .as_object()
        .expect("paths")
        .keys()
        .cloned()
        .collect();
    let routes = [
        "/api/v1/search",
        "/api/v1/summary",
        "/api/v1/event/{id}",
        "/get-endpoint-data",
        "/metrics",
        "/healthz",
        "/openapi.json",
    ];
    let mut bad = Vec::new();
    for route in routes {
        if !paths.contains(route) {
            bad.push(format!("/openapi.json does not list {route}"));
        }
    }
    // Every path it lists answers GET (not 404 or 405), and its GET has responses.
    for path in &paths {
        if !doc["paths"][path]["get"]["responses"].is_object() {
            bad.push(format!("{path}: no GET with responses"));
        }
        let real = path.replace("{id}", &id_text(1));
        let r = gw.get(&real);
        if r.status != 200 {
            bad.push(format!("listed in /openapi.json: {}", r.brief()));
        }
    }
    // Every $ref points at something.
    let text = doc.to_string();
    for r in text.split("\"$ref\":\"#/").skip(1) {
        let pointer = format!("/{}", r.split('"').next().unwrap_or_default());
        if doc.pointer(&pointer).is_none() {
            bad.push(format!("$ref #{pointer} points at nothing"));
        }
    }
    let ged = openapi_parameters(&doc, "/get-endpoint-data");
    for p in [
        "q",
        "start",
        "end",
        "limit",
        "preasons",
        "preasons_tags",
        "has_preason",
        "only_responses",
        "outgoing",
    ] {
        if !ged.contains(p) {
            bad.push(format!("/get-endpoint-data: parameter {p} not documented"));
        }
    }
    report(bad);
}

/// Every parameter the search and summary routes accept (each checked to be accepted here) is in
/// /openapi.json.
#[test]
fn openapi_json_documents_every_parameter_the_routes_accept() {
    let s = synthetic_store("openapi-params");
    let gw = Gateway::start(&s.dir, &s.scratch, &[]);
    let doc = gw.ok_json("/openapi.json");
    let id1 = id_text(1);
    let conditions: Vec<(&str, &str)> = vec![
        ("from", "1767225600"),
        ("to", "1767229200"),
        ("last", "1h"),
        ("q", "example.com"),
        ("qname", "www.example.com"),
        ("domain", "example.com"),
        ("qname_regex", "^www"),
        ("qname_glob", "*.example.com"),
        ("qtype", "A"),
        ("rcode", "NOERROR"),
        ("type", "query"),
        ("requestor", "192.0.2.1"),
        ("responder", "198.51.100.53"),
        ("answer", "192.0.2.80"),
        ("ecs", "203.0.113.0/24"),
        ("id", &id1),
        ("policy", "spamhaus-dbl"),
        ("tag", "malware"),
        ("protocol", "udp"),
        ("server_identity", "dnsdist-1"),
        ("requestor_id", "alice"),
        ("device_id", "dev-1"),
        ("device_name", "laptop"),
    ];
    let mut bad = Vec::new();
    for (route, extra) in [
        ("/api/v1/search", vec![("limit", "5"), ("order", "oldest")]),
        ("/api/v1/summary", vec![("interval", "60"), ("top", "5")]),
    ] {
        let documented = openapi_parameters(&doc, route);
        let mut missing = Vec::new();
        for (k, v) in conditions.iter().chain(extra.iter()) {
            let r = gw.get(&format!("{route}?{}", qs(&[(k, v)])));
            assert_eq!(r.status, 200, "{route} should accept {k}: {}", r.brief());
            if !documented.contains(*k) {
                missing.push(*k);
            }
        }
        if route == "/api/v1/search" && !documented.contains("cursor") {
            missing.push("cursor");
        }
        if !missing.is_empty() {
            bad.push(format!(
                "{route} accepts but /openapi.json does not document: {}",
                missing.join(", ")
            ));
        }
    }
    report(bad);
}

fn metric(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name).and_then(|rest| rest.strip_prefix(' ')))
        .and_then(|v| v.trim().parse().ok())
}

#[test]
fn metrics_count_requests_by_route_and_status() {
    let s = synthetic_store("metrics");
    let gw = Gateway::start(&s.dir, &s.scratch, &[]);
    let requests = [
        ("/api/v1/search", 200),
        ("/api/v1/search?limit=1", 200),
        ("/api/v1/search?limit=0", 400),
        ("/api/v1/summary", 200),
        ("/api/v1/summary?top=0", 400),
        ("/get-endpoint-data", 200),
        ("/healthz", 200),
        ("/", 200),
        ("/nope", 404),
    ];
    for (path, status) in requests {
        assert_eq!(gw.get(path).status, status, "{path}");
    }
    let event = format!("/api/v1/event/{}", id_text(1));
    assert_eq!(gw.get(&event).status, 200);
    assert_eq!(gw.request("HEAD", "/api/v1/search").status, 200);
    assert_eq!(gw.request("POST", "/api/v1/search").status, 405);
    let r = gw.get("/metrics");
    assert_eq!(r.status, 200);
    let text = r.text();
    let mut bad = Vec::new();
    let route = |name: &str| {
        metric(
            &text,
            &format!("dstore_gateway_requests_total{{route=\"{name}\"}}"),
        )
    };
    for (name, want) in [
        ("search", 4.0), // three GET and one HEAD
        ("summary", 2.0),
        ("event", 1.0),
        ("get-endpoint-data", 1.0),
        ("healthz", 1.0),
        ("ui", 1.0),
        ("metrics", 0.0),
        ("openapi", 0.0),
        ("other", 2.0), // /nope and the POST
    ] {
        if route(name) != Some(want) {
            bad.push(format!(
                "requests_total{{route={name}}} {:?}, want {want}",
                route(name)
            ));
        }
    }
    // Every request answered is in exactly one route and one status class.
    let total_routes: f64 = text
        .lines()
        .filter(|l| l.starts_with("dstore_gateway_requests_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    if total_routes != 12.0 {
        bad.push(format!("requests_total sums to {total_routes}, want 12"));
    }
    let status = |class: &str| {
        metric(
            &text,
            &format!("dstore_gateway_responses_total{{status=\"{class}\"}}"),
        )
    };
    for (class, want) in [("2xx", 8.0), ("4xx", 4.0), ("5xx", 0.0)] {
        if status(class) != Some(want) {
            bad.push(format!(
                "responses_total{{status={class}}} {:?}, want {want}",
                status(class)
            ));
        }
    }
    // The latency histogram: cumulative buckets, +Inf equal to the count. A request's latency is
    // recorded once its answer is sent, so the last ones may still be on their way: ask again
    // (bounded) until every request answered before a /metrics answer is in its histogram.
    let mut latency_ok = false;
    let mut last = String::new();
    for _ in 0..100 {
        let t = gw.get("/metrics").text();
        let answered: f64 = t
            .lines()
            .filter(|l| l.starts_with("dstore_gateway_requests_total{"))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum();
        let buckets: Vec<f64> = t
            .lines()
            .filter(|l| l.starts_with("dstore_gateway_request_seconds_bucket{"))
            .filter_map(|l| l.rsplit(' ').next()?.parse().ok())
            .collect();
        let count = metric(&t, "dstore_gateway_request_seconds_count").unwrap_or(-1.0);
        if buckets.windows(2).any(|w| w[0] > w[1])
            || buckets.last() != Some(&count)
            || count > answered
        {
            bad.push(format!(
                "request_seconds buckets {buckets:?}, count {count}, {answered} requests answered"
            ));
            break;
        }
        if count == answered {
            latency_ok = true;
            break;
        }
        last = format!("count {count}, {answered} requests answered");
        std::thread::sleep(Duration::from_millis(20));
    }
    if !latency_ok && bad.is_empty() {
        bad.push(format!(
            "request_seconds never caught up with the requests answered: {last}"
        ));
    }
    let events = metric(&text, "dstore_gateway_store_events");
    if events != Some(s.evs.len() as f64) {
        bad.push(format!("store_events {events:?}, want {}", s.evs.len()));
    }
    if metric(&text, "dstore_gateway_searches_running") != Some(0.0) {
        bad.push("searches_running is not 0 at rest".into());
    }
    // The metrics requests themselves show in the next one.
    let polls = metric(
        &gw.get("/metrics").text(),
        "dstore_gateway_requests_total{route=\"metrics\"}",
    );
    let again = metric(
        &gw.get("/metrics").text(),
        "dstore_gateway_requests_total{route=\"metrics\"}",
    );
    if !polls.is_some_and(|n| n >= 2.0) || again != polls.map(|n| n + 1.0) {
        bad.push(format!(
            "/metrics requests counted {polls:?} then {again:?}"
        ));
    }
    report(bad);
}

// ---------------------------------------------------------------------------------------------
// Order across segments

/// Newest first means newest first, also when the segments were imported out of time order (the
/// small recursor capture, imported last, is the oldest traffic in the sample store).
#[test]
fn order_holds_across_segments_imported_out_of_time_order() {
    let s = sample_store("order");
    let gw = Gateway::start(&s.dir, &s.scratch, &["--max-limit", "100000"]);
    let mut bad = Vec::new();
    for (order, newest) in [("newest", true), ("oldest", false)] {
        let target = format!("/api/v1/search?limit=100000&order={order}");
        let times: Vec<u64> = items_of(&gw.ok_json(&target))
            .iter()
            .map(item_time)
            .collect();
        assert!(times.len() > 4000);
        let out_of_order =
            times
                .windows(2)
                .position(|w| if newest { w[0] < w[1] } else { w[0] > w[1] });
        if let Some(i) = out_of_order {
            bad.push(format!(
                "{target}: item {i} at {} then item {} at {} ({} items)",
                times[i],
                i + 1,
                times[i + 1],
                times.len()
            ));
        }
    }
    let first = items_of(&gw.ok_json("/get-endpoint-data?limit=1&outgoing=0"));
    let newest_client = grep_lines(&s.dir, &["--type", "query", "--type", "response"])
        .into_iter()
        .map(|v| item_time(&v))
        .max();
    if first.first().map(item_time) != newest_client {
        bad.push(format!(
            "/get-endpoint-data?limit=1: the event at {:?}, but the newest client event is at {newest_client:?}",
            first.first().map(item_time)
        ));
    }
    report(bad);
}
