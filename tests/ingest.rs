//! `dstore ingest` as a daemon on loopback, fed bad input while good producers stream the real
//! samples next to it: garbage, HTTP, TLS, zero and over-long lengths, frames that are not
//! PBDNSMessage, silent, slow and cut-off producers, floods of connections, refused addresses, then
//! SIGTERM, kill -9 and a full disk. Each bad client must get a clear outcome (the server closes it
//! or keeps it, a counter moves, a line is logged) and the good producers must lose nothing: what
//! `dstore cat --raw` prints afterwards is exactly what they sent.

mod common;

use common::*;
use dstore::frame::{FrameReader, FrameWidth};
use prost::Message as _;
use std::collections::BTreeMap;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Barrier};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

const DNSDIST: &str = "dnsdist-live-same-traffic.pb";
const RECURSOR: &str = "recursor-live-with-outgoing.pb";
/// The longest any single wait in these tests lasts.
const WAIT: Duration = Duration::from_secs(10);
/// How soon a connection the server turns away must be closed.
const CLOSE_WITHIN: Duration = Duration::from_secs(3);
/// How long SIGTERM may take.
const STOP_WITHIN: Duration = Duration::from_secs(5);
const FLUSH_INTERVAL: Duration = Duration::from_millis(200);

// ---------------------------------------------------------------------------------------------
// Frames and bytes

fn sample_frames(name: &str) -> Vec<Vec<u8>> {
    let bytes = std::fs::read(sample(name)).expect("read a sample stream");
    frames_of(&bytes)
}

/// Whether `frame` is a PBDNSMessage, by prost's own decoder: the reference that ingest's faster
/// check (`pb::decodes`) must agree with.
fn decodes(frame: &[u8]) -> bool {
    dstore::pb::Message::decode(frame).is_ok()
}

/// What a receiver must do with a byte stream.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Outcome {
    /// Close the connection: the stream is HTTP, TLS or SSH.
    Foreign(&'static str),
    /// Close the connection: a length is zero or over the limit.
    BadLength(usize),
    /// Keep the connection and wait for more; `leftover` bytes of an unfinished frame are pending.
    Open { leftover: usize },
}

/// The framing every PowerDNS receiver applies, written out independently of the daemon: the
/// first four bytes are looked at once (HTTP, TLS and SSH are turned away), then length-prefixed
/// frames are cut until a length is zero or over `max_frame`. Returns the whole frames before the
/// end and what must happen to the connection.
fn reference_framing(bytes: &[u8], width: FrameWidth, max_frame: usize) -> (Vec<Vec<u8>>, Outcome) {
    const FOREIGN: [(&[u8], &str); 10] = [
        (b"GET ", "HTTP"),
        (b"POST", "HTTP"),
        (b"HEAD", "HTTP"),
        (b"PUT ", "HTTP"),
        (b"DELE", "HTTP"),
        (b"OPTI", "HTTP"),
        (b"CONN", "HTTP"),
        (b"PRI ", "HTTP"),
        (&[0x16, 0x03], "TLS"),
        (b"SSH-", "SSH"),
    ];
    if bytes.len() >= 4 {
        if let Some((_, what)) = FOREIGN.iter().find(|(m, _)| bytes.starts_with(m)) {
            return (Vec::new(), Outcome::Foreign(what));
        }
    }
    let prefix = width.prefix_len();
    let mut frames = Vec::new();
    let mut pos = 0;
    while bytes.len() - pos >= prefix {
        let len = bytes[pos..pos + prefix]
            .iter()
            .fold(0usize, |n, &b| (n << 8) | usize::from(b));
        if len == 0 || len > max_frame {
            return (frames, Outcome::BadLength(len));
        }
        if bytes.len() - pos < prefix + len {
            break;
        }
        frames.push(bytes[pos + prefix..pos + prefix + len].to_vec());
        pos += prefix + len;
    }
    (
        frames,
        Outcome::Open {
            leftover: bytes.len() - pos,
        },
    )
}

/// Fails unless `stored` and `expected` hold the same frames the same number of times.
fn assert_same_frames(stored: &[Vec<u8>], expected: &[Vec<u8>], what: &str) {
    let mut count: BTreeMap<&[u8], i64> = BTreeMap::new();
    for f in expected {
        *count.entry(f).or_default() += 1;
    }
    for f in stored {
        *count.entry(f).or_default() -= 1;
    }
    let missing: i64 = count.values().filter(|&&c| c > 0).sum();
    let unexpected: i64 = -count.values().filter(|&&c| c < 0).sum::<i64>();
    if missing != 0 || unexpected != 0 {
        let first_missing = count.iter().find(|(_, &c)| c > 0).map(|(f, _)| hex(f));
        let first_unexpected = count.iter().find(|(_, &c)| c < 0).map(|(f, _)| hex(f));
        panic!(
            "{what}: {} frames stored, {} sent: {missing} sent but not stored (first: {first_missing:?}), {unexpected} stored but never sent (first: {first_unexpected:?})",
            stored.len(),
            expected.len()
        );
    }
}

fn hex(bytes: &[u8]) -> String {
    let mut s: String = bytes.iter().take(24).map(|b| format!("{b:02x}")).collect();
    if bytes.len() > 24 {
        s.push_str(&format!("... ({} bytes)", bytes.len()));
    }
    s
}

// ---------------------------------------------------------------------------------------------
// The daemon

/// A running `dstore ingest`; dropping it kills the process (by its PID) if it still runs.
struct Ingest {
    child: Child,
    pid: u32,
    lines: Receiver<String>,
    log: Vec<String>,
    /// The listeners, in flag order: `--listen` ones first, then `--listen-frame4`.
    listen: Vec<SocketAddr>,
    metrics: SocketAddr,
    store: PathBuf,
}

impl Ingest {
    /// Starts ingest on `dir`'s store and configuration file (written empty if missing), with one
    /// 2-byte listener on 127.0.0.1, metrics, a 200 ms flush interval, no status line unless
    /// `extra` asks for one, and `extra` flags.
    fn start(dir: &Scratch, extra: &[&str]) -> Ingest {
        Ingest::start_at(&dir.path("store"), &dir.path("tcpdistro.conf"), extra)
    }

    fn start_at(store: &Path, config: &Path, extra: &[&str]) -> Ingest {
        if !config.exists() {
            std::fs::write(config, "").expect("write the configuration file");
        }
        let flush = format!("{}ms", FLUSH_INTERVAL.as_millis());
        let mut args: Vec<&str> = vec![
            "ingest",
            "--storage-dir",
            store.to_str().expect("utf-8 path"),
            "--config",
            config.to_str().expect("utf-8 path"),
            "--listen",
            "127.0.0.1:0",
            "--flush-interval",
            &flush,
            "--metrics-listen",
            "127.0.0.1:0",
        ];
        if !extra.contains(&"--status-interval") {
            args.extend_from_slice(&["--status-interval", "0"]);
        }
        args.extend_from_slice(extra);
        let listeners = args
            .iter()
            .filter(|a| **a == "--listen" || **a == "--listen-frame4")
            .count();
        let mut child = dstore()
            .args(&args)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start dstore ingest");
        let pid = child.id();
        let stderr = child.stderr.take().expect("piped stderr");
        let (tx, lines) = mpsc::channel();
        thread::Builder::new()
            .name(format!("ingest-{pid}-stderr"))
            .spawn(move || {
                let mut reader = BufReader::new(stderr);
                let mut line = Vec::new();
                loop {
                    line.clear();
                    match reader.read_until(b'\n', &mut line) {
                        Ok(0) | Err(_) => return,
                        Ok(_) => {
                            let text = String::from_utf8_lossy(&line).trim_end().to_string();
                            if tx.send(text).is_err() {
                                return;
                            }
                        }
                    }
                }
            })
            .expect("spawn the stderr reader");
        let mut ingest = Ingest {
            child,
            pid,
            lines,
            log: Vec::new(),
            listen: Vec::new(),
            metrics: SocketAddr::from(([127, 0, 0, 1], 0)),
            store: store.to_path_buf(),
        };
        let deadline = Instant::now() + WAIT;
        let mut metrics = None;
        let mut seen = 0;
        while ingest.listen.len() < listeners || metrics.is_none() {
            let left = deadline.saturating_duration_since(Instant::now());
            match ingest
                .lines
                .recv_timeout(left.max(Duration::from_millis(1)))
            {
                Ok(line) => ingest.log.push(line),
                Err(_) => panic!(
                    "ingest did not start within {WAIT:?} (exit: {:?}); its log:\n{}",
                    ingest.child.try_wait(),
                    ingest.log.join("\n")
                ),
            }
            for line in &ingest.log[seen..] {
                if let Some(rest) = line.split("listening on ").nth(1) {
                    let addr = rest.split(' ').next().unwrap_or("");
                    ingest.listen.push(
                        addr.parse()
                            .unwrap_or_else(|_| panic!("no address in `{line}`")),
                    );
                }
                if let Some(rest) = line.split("metrics on http://").nth(1) {
                    let addr = rest.split('/').next().unwrap_or("");
                    metrics = Some(
                        addr.parse()
                            .unwrap_or_else(|_| panic!("no address in `{line}`")),
                    );
                }
            }
            seen = ingest.log.len();
        }
        ingest.metrics = metrics.expect("metrics address");
        ingest
    }

    fn addr(&self, listener: usize) -> SocketAddr {
        self.listen[listener]
    }

    fn drain_log(&mut self) {
        while let Ok(line) = self.lines.try_recv() {
            self.log.push(line);
        }
    }

    fn log_text(&mut self) -> String {
        self.drain_log();
        self.log.join("\n")
    }

    /// Waits until the log has `n` lines containing `needle`; returns the last of them.
    fn wait_log_n(&mut self, needle: &str, n: usize) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            self.drain_log();
            let found: Vec<&String> = self.log.iter().filter(|l| l.contains(needle)).collect();
            if found.len() >= n {
                return found[n - 1].clone();
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                panic!(
                    "no{} log line with `{needle}` within {WAIT:?}; the log:\n{}",
                    if n > 1 {
                        format!(" {n}th")
                    } else {
                        String::new()
                    },
                    self.log.join("\n")
                );
            }
            match self.lines.recv_timeout(left) {
                Ok(line) => self.log.push(line),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => thread::sleep(Duration::from_millis(20)),
            }
        }
    }

    fn wait_log(&mut self, needle: &str) -> String {
        self.wait_log_n(needle, 1)
    }

    /// Every sample of `GET /metrics`, by full name (labels included).
    fn metrics(&self) -> BTreeMap<String, u64> {
        http_get(self.metrics, "/metrics")
            .lines()
            .filter(|l| !l.starts_with('#'))
            .filter_map(|l| {
                let (name, value) = l.rsplit_once(' ')?;
                Some((name.to_string(), value.parse().ok()?))
            })
            .collect()
    }

    /// `dstore_ingest_{name}`, which must be there.
    fn metric(&self, name: &str) -> u64 {
        let full = format!("dstore_ingest_{name}");
        let all = self.metrics();
        *all.get(&full)
            .unwrap_or_else(|| panic!("no {full} in /metrics: {all:?}"))
    }

    /// Waits until `dstore_ingest_{name}` satisfies `ok`; returns its value.
    fn wait_metric(&mut self, name: &str, want: &str, ok: impl Fn(u64) -> bool) -> u64 {
        let deadline = Instant::now() + WAIT;
        loop {
            let value = self.metric(name);
            if ok(value) {
                return value;
            }
            if Instant::now() >= deadline {
                panic!(
                    "dstore_ingest_{name} is {value} after {WAIT:?}, expected {want}; the log:\n{}",
                    self.log_text()
                );
            }
            thread::sleep(Duration::from_millis(40));
        }
    }

    fn wait_metric_eq(&mut self, name: &str, want: u64) {
        self.wait_metric(name, &want.to_string(), |v| v == want);
    }

    fn wait_metric_at_least(&mut self, name: &str, want: u64) -> u64 {
        self.wait_metric(name, &format!("at least {want}"), |v| v >= want)
    }

    fn signal(&self, name: &str) {
        let status = std::process::Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.pid.to_string())
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{name} {} failed", self.pid);
    }

    fn wait_exit(&mut self, within: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait for ingest") {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Reads the log to its end once the process is gone.
    fn collect_log(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(2);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return;
            }
            match self.lines.recv_timeout(left) {
                Ok(line) => self.log.push(line),
                Err(_) => return,
            }
        }
    }

    /// SIGTERM, then the exit status, which must come within `STOP_WITHIN`.
    fn stop(&mut self) -> ExitStatus {
        self.signal("TERM");
        let Some(status) = self.wait_exit(STOP_WITHIN) else {
            panic!(
                "ingest did not exit within {STOP_WITHIN:?} of SIGTERM; its log:\n{}",
                self.log_text()
            );
        };
        self.collect_log();
        status
    }

    /// The CPU time ingest used so far, in clock ticks.
    fn cpu_ticks(&self) -> u64 {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid)).expect("read stat");
        let after = stat.rsplit_once(')').expect("stat format").1;
        let fields: Vec<&str> = after.split_whitespace().collect();
        // utime and stime are fields 14 and 15; `after` starts at field 3.
        fields[11].parse::<u64>().expect("utime") + fields[12].parse::<u64>().expect("stime")
    }
}

impl Drop for Ingest {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            // Child::kill sends SIGKILL to this child's PID, and to nothing else.
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The body of a `GET path` answered with 200, over a plain HTTP/1.0 connection.
fn http_get(addr: SocketAddr, path: &str) -> String {
    let mut s = TcpStream::connect_timeout(&addr, WAIT)
        .unwrap_or_else(|e| panic!("cannot connect to the metrics at {addr}: {e}"));
    s.set_read_timeout(Some(WAIT)).expect("set a timeout");
    s.write_all(format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").as_bytes())
        .expect("send the request");
    let mut got = Vec::new();
    let mut buf = [0u8; 16384];
    loop {
        let n = s
            .read(&mut buf)
            .unwrap_or_else(|e| panic!("GET {path} at {addr}: {e}"));
        if n == 0 {
            break;
        }
        got.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&got);
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let length = head.lines().find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.eq_ignore_ascii_case("content-length")
                    .then(|| v.trim().parse::<usize>().ok())?
            });
            if length.is_some_and(|len| body.len() >= len) {
                break;
            }
        }
    }
    let text = String::from_utf8_lossy(&got).into_owned();
    let (head, body) = text
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("GET {path}: not an HTTP response: {text:?}"));
    assert!(
        head.starts_with("HTTP/1.") && head.split(' ').nth(1) == Some("200"),
        "GET {path}: {head}"
    );
    body.to_string()
}

/// What the store holds, as `dstore cat --raw` and `dstore cat` print it; both must succeed.
struct Stored {
    frames: Vec<Vec<u8>>,
    json: Vec<String>,
}

fn stored(store: &Path, width: FrameWidth) -> Stored {
    let dir = store.to_str().expect("utf-8 path");
    let mut raw = vec!["cat", "--raw", "-q", "--storage-dir", dir];
    if width == FrameWidth::Four {
        raw.push("--frame4");
    }
    let o = run(&raw);
    assert!(
        o.status.success(),
        "dstore cat --raw failed ({}): {}",
        o.status,
        stderr(&o)
    );
    let mut reader = FrameReader::new(o.stdout.as_slice(), width);
    let mut frames = Vec::new();
    while let Some(f) = reader.next_frame().expect("reading memory") {
        frames.push(f.to_vec());
    }
    assert!(
        reader.truncated().is_none(),
        "dstore cat --raw printed a partial frame"
    );
    let o = run(&["cat", "-q", "--storage-dir", dir]);
    assert!(
        o.status.success(),
        "dstore cat failed ({}): {}",
        o.status,
        stderr(&o)
    );
    let json: Vec<String> = String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(str::to_string)
        .collect();
    assert_eq!(
        json.len(),
        frames.len(),
        "dstore cat printed {} JSON lines for {} stored frames",
        json.len(),
        frames.len()
    );
    Stored { frames, json }
}

// ---------------------------------------------------------------------------------------------
// Producers

/// Writes `bytes` in chunks of 1 to `max_chunk` bytes, `pause` apart.
fn send_paced(
    stream: &mut TcpStream,
    bytes: &[u8],
    rng: &mut Rng,
    max_chunk: usize,
    pause: Duration,
) -> io::Result<()> {
    let mut pos = 0;
    while pos < bytes.len() {
        let n = rng.between(1, max_chunk).min(bytes.len() - pos);
        stream.write_all(&bytes[pos..pos + n])?;
        pos += n;
        if !pause.is_zero() {
            thread::sleep(pause);
        }
    }
    Ok(())
}

fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect_timeout(&addr, WAIT)
        .unwrap_or_else(|e| panic!("cannot connect to {addr}: {e}"));
    s.set_write_timeout(Some(WAIT)).expect("set a timeout");
    s
}

/// A good producer: one connection that sends its frames whole, then closes.
struct Producer {
    what: String,
    frames: Vec<Vec<u8>>,
    thread: JoinHandle<io::Result<()>>,
}

impl Producer {
    /// Streams `frames` to `addr` in chunks of up to `max_chunk` bytes, `pause` apart, cut
    /// anywhere in the frames.
    fn spawn(
        what: &str,
        addr: SocketAddr,
        frames: Vec<Vec<u8>>,
        width: FrameWidth,
        max_chunk: usize,
        pause: Duration,
    ) -> Producer {
        let bytes = framed(&frames, width);
        let seed = 0x9e37_79b9_7f4a_7c15 ^ bytes.len() as u64 ^ u64::from(addr.port());
        let thread = thread::Builder::new()
            .name(what.to_string())
            .spawn(move || {
                let mut s = TcpStream::connect_timeout(&addr, WAIT)?;
                s.set_write_timeout(Some(WAIT))?;
                send_paced(&mut s, &bytes, &mut Rng(seed), max_chunk, pause)
            })
            .expect("spawn a producer");
        Producer {
            what: what.to_string(),
            frames,
            thread,
        }
    }

    /// A whole sample, sent over about a second so that it overlaps what the test does meanwhile.
    fn sample(name: &str, addr: SocketAddr, width: FrameWidth) -> Producer {
        Producer::spawn(
            name,
            addr,
            sample_frames(name),
            width,
            8192,
            Duration::from_millis(15),
        )
    }

    fn join(self) -> Vec<Vec<u8>> {
        match self.thread.join() {
            Ok(Ok(())) => self.frames,
            Ok(Err(e)) => panic!("good producer {} could not send: {e}", self.what),
            Err(_) => panic!("good producer {} panicked", self.what),
        }
    }
}

/// The two samples, streamed at the same time on the first listener.
/// Waits for the producers to finish; the frames they sent, in order.
fn join_all(producers: Vec<Producer>) -> Vec<Vec<u8>> {
    producers.into_iter().flat_map(Producer::join).collect()
}

fn good_producers(ingest: &Ingest) -> Vec<Producer> {
    vec![
        Producer::sample(DNSDIST, ingest.addr(0), FrameWidth::Two),
        Producer::sample(RECURSOR, ingest.addr(0), FrameWidth::Two),
    ]
}

/// Waits for the server to close `stream`: a read gives the end of the stream or a reset.
fn assert_closed_by_server(stream: &mut TcpStream, within: Duration, what: &str) {
    let deadline = Instant::now() + within;
    let mut buf = [0u8; 4096];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            panic!("{what}: the server still has the connection open after {within:?}");
        }
        stream.set_read_timeout(Some(left)).expect("set a timeout");
        match stream.read(&mut buf) {
            Ok(0) => return,
            Ok(n) => panic!("{what}: ingest wrote {n} bytes to a producer; it never writes"),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::ConnectionReset | io::ErrorKind::ConnectionAborted
                ) =>
            {
                return
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock
                        | io::ErrorKind::TimedOut
                        | io::ErrorKind::Interrupted
                ) => {}
            Err(e) => panic!("{what}: reading gave {e}"),
        }
    }
}

/// Fails if the server closes `stream` within `during`.
fn assert_still_open(stream: &mut TcpStream, during: Duration, what: &str) {
    stream
        .set_read_timeout(Some(during))
        .expect("set a timeout");
    let mut buf = [0u8; 16];
    match stream.read(&mut buf) {
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
            ) => {}
        Ok(0) => panic!("{what}: the server closed the connection"),
        Ok(n) => panic!("{what}: ingest wrote {n} bytes to a producer; it never writes"),
        Err(e) => panic!("{what}: the connection failed: {e}"),
    }
}

/// Sends `bytes` on a new connection to `listener` and checks that ingest does what
/// `reference_framing` says: closes at once (counted and logged) for a foreign stream or a bad
/// length, otherwise keeps the connection until the producer closes, counting a partial frame
/// left at the end. Returns the outcome and the frames that must be stored.
fn bad_stream(
    ingest: &mut Ingest,
    listener: usize,
    width: FrameWidth,
    max_frame: usize,
    bytes: &[u8],
    what: &str,
) -> (Outcome, Vec<Vec<u8>>) {
    let (frames, outcome) = reference_framing(bytes, width, max_frame);
    let foreign = ingest.metric("foreign_streams_total");
    let bad_lengths = ingest.metric("bad_lengths_total");
    let partial = ingest.metric("partial_frames_total");
    let mut s = connect(ingest.addr(listener));
    // The server may close before it read everything: a failed write is part of the outcome.
    let _ = s.write_all(bytes);
    match outcome {
        Outcome::Foreign(protocol) => {
            assert_closed_by_server(&mut s, CLOSE_WITHIN, what);
            ingest.wait_metric_eq("foreign_streams_total", foreign + 1);
            ingest.wait_log(&format!("speaks {protocol}, not a protobuf stream"));
        }
        Outcome::BadLength(len) => {
            assert_closed_by_server(&mut s, CLOSE_WITHIN, what);
            ingest.wait_metric_eq("bad_lengths_total", bad_lengths + 1);
            ingest.wait_log(&format!("a frame length of {len} bytes is zero or over"));
        }
        Outcome::Open { leftover } => {
            assert_still_open(&mut s, Duration::from_millis(300), what);
            s.shutdown(Shutdown::Write).expect("half-close");
            assert_closed_by_server(&mut s, CLOSE_WITHIN, what);
            if leftover > 0 {
                ingest.wait_metric_eq("partial_frames_total", partial + 1);
                ingest.wait_log(&format!(
                    "closed its connection inside a frame: {leftover} bytes dropped"
                ));
            }
        }
    }
    (outcome, frames)
}

/// Joins the good producers, waits until ingest stored everything expected (their frames and
/// `extra`), checks the counters (`counters` by name, without the `dstore_ingest_` prefix), stops
/// ingest with SIGTERM and compares the store with what was sent, as multisets of frames.
fn finish(
    mut ingest: Ingest,
    producers: Vec<Producer>,
    extra: Vec<Vec<u8>>,
    counters: &[(&str, u64)],
    width: FrameWidth,
) -> Stored {
    let mut expected = extra;
    expected.extend(join_all(producers));
    let n = expected.len() as u64;
    let deadline = Instant::now() + WAIT;
    while ingest.metric("stored_events_total") < n && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(40));
    }
    let metrics = ingest.metrics();
    let get = |name: &str| metrics.get(&format!("dstore_ingest_{name}")).copied();
    let mut wrong = Vec::new();
    let producer_events: u64 = metrics
        .iter()
        .filter(|(k, _)| k.starts_with("dstore_ingest_producer_events_total{"))
        .map(|(_, v)| v)
        .sum();
    for &(name, want) in [
        ("stored_events_total", n),
        ("events_total", n),
        ("dropped_events_total", 0),
    ]
    .iter()
    .chain(counters)
    {
        if get(name) != Some(want) {
            wrong.push(format!("{name} is {:?}, expected {want}", get(name)));
        }
    }
    if Some(producer_events) != get("events_total") {
        wrong.push(format!(
            "the producer_events_total add up to {producer_events}, events_total is {:?}",
            get("events_total")
        ));
    }
    let status = ingest.stop();
    assert!(
        status.success(),
        "ingest exited with {status} after SIGTERM; its log:\n{}",
        ingest.log_text()
    );
    let store = stored(&ingest.store, width);
    assert_same_frames(&store.frames, &expected, "the store after SIGTERM");
    assert!(
        wrong.is_empty(),
        "the counters before SIGTERM: {}\nlog:\n{}",
        wrong.join("; "),
        ingest.log_text()
    );
    store
}

// ---------------------------------------------------------------------------------------------
// Bad bytes

#[test]
fn random_garbage_is_framed_as_any_receiver_would_and_closed_on_a_bad_length() {
    let dir = Scratch::new("ingest-garbage");
    let max_frame = 1 << 20;
    let mut ingest = Ingest::start(
        &dir,
        &[
            "--listen-frame4",
            "127.0.0.1:0",
            "--max-frame",
            &max_frame.to_string(),
        ],
    );
    let good = good_producers(&ingest);
    let mut rng = Rng(0x5eed_0001);
    let mut expected = Vec::new();
    // On a 2-byte listener random bytes look like frames of random lengths: they are stored (as
    // undecodable) until a zero length comes or the producer leaves in the middle of one.
    let garbage = rng.bytes(200_000);
    let (outcome, frames) = bad_stream(
        &mut ingest,
        0,
        FrameWidth::Two,
        0xffff,
        &garbage,
        "random bytes on a 2-byte listener",
    );
    println!(
        "2-byte listener: {} frames in the garbage, then {outcome:?}",
        frames.len()
    );
    expected.extend(frames);
    // On a 4-byte listener the first length is almost surely over --max-frame.
    let garbage = rng.bytes(200_000);
    let (outcome, frames) = bad_stream(
        &mut ingest,
        1,
        FrameWidth::Four,
        max_frame,
        &garbage,
        "random bytes on a 4-byte listener",
    );
    println!(
        "4-byte listener: {} frames in the garbage, then {outcome:?}",
        frames.len()
    );
    assert!(
        matches!(outcome, Outcome::BadLength(_)),
        "the seed should give an over-long first length"
    );
    expected.extend(frames);
    let undecodable = expected.iter().filter(|f| !decodes(f)).count() as u64;
    finish(
        ingest,
        good,
        expected,
        &[("undecodable_events_total", undecodable)],
        FrameWidth::Two,
    );
}

/// Sends `bytes` that start like another protocol's stream: the connection is turned away as
/// `kind`, the good producers meanwhile lose nothing.
fn turned_away(tag: &str, bytes: &[u8], what: &str, kind: &'static str) {
    let dir = Scratch::new(tag);
    let mut ingest = Ingest::start(&dir, &[]);
    let good = good_producers(&ingest);
    let (outcome, _) = bad_stream(&mut ingest, 0, FrameWidth::Two, 0xffff, bytes, what);
    assert_eq!(outcome, Outcome::Foreign(kind));
    finish(
        ingest,
        good,
        Vec::new(),
        &[
            ("foreign_streams_total", 1),
            ("bad_lengths_total", 0),
            ("partial_frames_total", 0),
            ("undecodable_events_total", 0),
        ],
        FrameWidth::Two,
    );
}

#[test]
fn an_http_request_is_turned_away() {
    let request =
        b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: curl/8.5.0\r\nAccept: */*\r\n\r\n";
    turned_away("ingest-http", request, "an HTTP request", "HTTP");
}

#[test]
fn a_tls_client_hello_is_turned_away() {
    // A TLS 1.2 record header, a ClientHello handshake header, version, random, and the rest.
    let mut rng = Rng(0x5eed_0002);
    let body_len = 508usize;
    let mut hello = vec![0x16, 0x03, 0x01];
    hello.extend_from_slice(&(body_len as u16).to_be_bytes());
    hello.push(0x01);
    hello.extend_from_slice(&((body_len - 4) as u32).to_be_bytes()[1..]);
    hello.extend_from_slice(&[0x03, 0x03]);
    hello.extend(rng.bytes(body_len - 6));
    turned_away("ingest-tls", &hello, "a TLS ClientHello", "TLS");
}

#[test]
fn a_zero_length_closes_the_connection_after_the_frames_before_it() {
    let dir = Scratch::new("ingest-zero");
    let mut ingest = Ingest::start(&dir, &[]);
    let good = good_producers(&ingest);
    // Just the two zero bytes.
    let (outcome, frames) = bad_stream(
        &mut ingest,
        0,
        FrameWidth::Two,
        0xffff,
        &[0, 0],
        "a zero length",
    );
    assert_eq!(outcome, Outcome::BadLength(0));
    assert!(frames.is_empty());
    // Three good frames and then a zero length, in one write: the three are kept.
    let mut bytes = framed(&sample_frames(DNSDIST)[..3], FrameWidth::Two);
    bytes.extend_from_slice(&[0, 0, 0x42, 0x42]);
    let (outcome, frames) = bad_stream(
        &mut ingest,
        0,
        FrameWidth::Two,
        0xffff,
        &bytes,
        "three frames, then a zero length",
    );
    assert_eq!(outcome, Outcome::BadLength(0));
    assert_eq!(frames.len(), 3);
    finish(
        ingest,
        good,
        frames,
        &[
            ("bad_lengths_total", 2),
            ("foreign_streams_total", 0),
            ("partial_frames_total", 0),
        ],
        FrameWidth::Two,
    );
}

#[test]
fn an_over_long_length_on_a_frame4_listener_closes_the_connection() {
    let dir = Scratch::new("ingest-overlong");
    let max_frame = 100_000;
    let mut ingest = Ingest::start(
        &dir,
        &[
            "--listen-frame4",
            "127.0.0.1:0",
            "--max-frame",
            &max_frame.to_string(),
        ],
    );
    // One good producer on each listener; the Recursor one with frame4.
    let good = vec![
        Producer::sample(DNSDIST, ingest.addr(0), FrameWidth::Two),
        Producer::sample(RECURSOR, ingest.addr(1), FrameWidth::Four),
    ];
    let mut rng = Rng(0x5eed_0003);
    let mut kept = sample_frames(RECURSOR)[..5].to_vec();
    // A frame of exactly --max-frame bytes is still accepted.
    kept.push(rng.bytes(max_frame));
    let mut bytes = framed(&kept, FrameWidth::Four);
    bytes.extend_from_slice(&(max_frame as u32 + 1).to_be_bytes());
    bytes.extend(rng.bytes(4000));
    let (outcome, frames) = bad_stream(
        &mut ingest,
        1,
        FrameWidth::Four,
        max_frame,
        &bytes,
        "a length of --max-frame + 1",
    );
    assert_eq!(outcome, Outcome::BadLength(max_frame + 1));
    assert_eq!(frames, kept);
    let undecodable = kept.iter().filter(|f| !decodes(f)).count() as u64;
    // A length that no allocation could satisfy.
    let (outcome, _) = bad_stream(
        &mut ingest,
        1,
        FrameWidth::Four,
        max_frame,
        &[0xff, 0xff, 0xff, 0xf0, 1, 2, 3, 4],
        "a length of 4 GiB",
    );
    assert_eq!(outcome, Outcome::BadLength(0xffff_fff0));
    finish(
        ingest,
        good,
        frames,
        &[
            ("bad_lengths_total", 2),
            ("undecodable_events_total", undecodable),
            ("partial_frames_total", 0),
        ],
        FrameWidth::Four,
    );
}

#[test]
fn frames_that_are_not_pbdnsmessage_are_stored_flagged_and_the_connection_stays() {
    let dir = Scratch::new("ingest-undecodable");
    // Undecodable events are not logged one by one: the status line counts them.
    let mut ingest = Ingest::start(&dir, &["--status-interval", "1s"]);
    let good = good_producers(&ingest);
    let mut rng = Rng(0x5eed_0004);
    let junk: Vec<Vec<u8>> = (0..100)
        .map(|_| {
            let n = rng.between(1, 300);
            rng.bytes(n)
        })
        .collect();
    let undecodable = junk.iter().filter(|f| !decodes(f)).count();
    assert!(undecodable >= 90, "the seed should give undecodable frames");
    let mut s = connect(ingest.addr(0));
    for half in junk.chunks(50) {
        s.write_all(&framed(half, FrameWidth::Two))
            .expect("ingest must keep a connection that sends well-framed frames");
        assert_still_open(
            &mut s,
            Duration::from_millis(300),
            "a producer of undecodable frames",
        );
    }
    ingest.wait_metric_eq("undecodable_events_total", undecodable as u64);
    ingest.wait_log(&format!(", {undecodable} undecodable,"));
    drop(s);
    let store = finish(
        ingest,
        good,
        junk,
        &[
            ("undecodable_events_total", undecodable as u64),
            ("bad_lengths_total", 0),
            ("foreign_streams_total", 0),
            ("partial_frames_total", 0),
        ],
        FrameWidth::Two,
    );
    let flagged = store
        .json
        .iter()
        .filter(|l| l.contains("\"undecodable\":true"))
        .count();
    assert_eq!(
        flagged, undecodable,
        "dstore cat should mark each undecodable event"
    );
}

// ---------------------------------------------------------------------------------------------
// Silent, slow and cut-off producers

#[test]
fn silent_producers_stay_connected_and_cost_nothing() {
    let dir = Scratch::new("ingest-silent");
    let mut ingest = Ingest::start(&dir, &[]);
    let good = good_producers(&ingest);
    let mut silent: Vec<TcpStream> = (0..50).map(|_| connect(ingest.addr(0))).collect();
    ingest.wait_metric_at_least("accepted_connections_total", 52);
    let sent = join_all(good);
    ingest.wait_metric_eq("stored_events_total", sent.len() as u64);
    ingest.wait_metric_eq("connections", 50);
    // Nothing to do but hold fifty silent connections: the daemon sleeps.
    let before = ingest.cpu_ticks();
    thread::sleep(Duration::from_secs(1));
    let used = ingest.cpu_ticks() - before;
    assert!(
        used <= 10,
        "ingest used {used} clock ticks of CPU in one second with only silent connections open"
    );
    for s in &mut silent {
        assert_still_open(s, Duration::from_millis(5), "a silent producer");
    }
    assert_eq!(ingest.metric("connections"), 50);
    drop(silent);
    ingest.wait_metric_eq("connections", 0);
    finish(
        ingest,
        Vec::new(),
        sent,
        &[("partial_frames_total", 0), ("bad_lengths_total", 0)],
        FrameWidth::Two,
    );
}

#[test]
fn a_producer_sending_one_byte_every_20ms_gets_its_frames_stored_whole() {
    let dir = Scratch::new("ingest-slow");
    let ingest = Ingest::start(&dir, &[]);
    let good = good_producers(&ingest);
    let recursor = sample_frames(RECURSOR);
    // The two shortest frames: about 180 bytes, so under four seconds.
    let mut by_len: Vec<&Vec<u8>> = recursor.iter().collect();
    by_len.sort_by_key(|f| f.len());
    let slow_frames: Vec<Vec<u8>> = by_len[..2].iter().map(|f| f.to_vec()).collect();
    let bytes = framed(&slow_frames, FrameWidth::Two);
    let mut s = connect(ingest.addr(0));
    s.set_nodelay(true).expect("no Nagle");
    let started = Instant::now();
    for (i, b) in bytes.iter().enumerate() {
        s.write_all(&[*b])
            .unwrap_or_else(|e| panic!("the slow producer's byte {i} could not be sent: {e}"));
        thread::sleep(Duration::from_millis(20));
    }
    assert_still_open(&mut s, Duration::from_millis(100), "a slow producer");
    println!(
        "sent {} bytes one at a time in {:?}",
        bytes.len(),
        started.elapsed()
    );
    drop(s);
    finish(
        ingest,
        good,
        slow_frames,
        &[
            ("partial_frames_total", 0),
            ("bad_lengths_total", 0),
            ("undecodable_events_total", 0),
        ],
        FrameWidth::Two,
    );
}

#[test]
fn a_connection_ending_inside_a_frame_keeps_the_frames_before_and_counts_the_partial_one() {
    let dir = Scratch::new("ingest-partial");
    let mut ingest = Ingest::start(&dir, &[]);
    let good = good_producers(&ingest);
    let frames = sample_frames(DNSDIST);
    // Ten frames and half of the eleventh.
    let whole = framed(&frames[..10], FrameWidth::Two);
    let eleventh = framed(&frames[10..11], FrameWidth::Two);
    let mut bytes = whole.clone();
    bytes.extend_from_slice(&eleventh[..eleventh.len() / 2]);
    let (outcome, kept) = bad_stream(
        &mut ingest,
        0,
        FrameWidth::Two,
        0xffff,
        &bytes,
        "a connection ending inside a frame",
    );
    assert_eq!(
        outcome,
        Outcome::Open {
            leftover: eleventh.len() / 2
        }
    );
    assert_eq!(kept, frames[..10].to_vec());
    // Five frames and one byte of the next length prefix.
    let mut bytes = framed(&frames[20..25], FrameWidth::Two);
    bytes.push(0);
    let (outcome, more) = bad_stream(
        &mut ingest,
        0,
        FrameWidth::Two,
        0xffff,
        &bytes,
        "a connection ending inside a length prefix",
    );
    assert_eq!(outcome, Outcome::Open { leftover: 1 });
    let mut expected = kept;
    expected.extend(more);
    finish(
        ingest,
        good,
        expected,
        &[("partial_frames_total", 2), ("bad_lengths_total", 0)],
        FrameWidth::Two,
    );
}

// ---------------------------------------------------------------------------------------------
// Many connections

#[test]
fn three_hundred_concurrent_producers_lose_nothing() {
    const PRODUCERS: usize = 300;
    let dir = Scratch::new("ingest-300");
    let mut ingest = Ingest::start(&dir, &[]);
    let mut all = sample_frames(DNSDIST);
    all.extend(sample_frames(RECURSOR));
    let slices: Vec<Vec<Vec<u8>>> = (0..PRODUCERS)
        .map(|i| all[i * all.len() / PRODUCERS..(i + 1) * all.len() / PRODUCERS].to_vec())
        .collect();
    let connected = Arc::new(Barrier::new(PRODUCERS + 1));
    let go = Arc::new(Barrier::new(PRODUCERS + 1));
    let addr = ingest.addr(0);
    let threads: Vec<JoinHandle<io::Result<()>>> = slices
        .into_iter()
        .enumerate()
        .map(|(i, slice)| {
            let (connected, go) = (connected.clone(), go.clone());
            thread::Builder::new()
                .name(format!("producer-{i}"))
                .stack_size(128 << 10)
                .spawn(move || {
                    let stream = TcpStream::connect_timeout(&addr, WAIT);
                    connected.wait();
                    go.wait();
                    let mut s = stream?;
                    s.set_write_timeout(Some(WAIT))?;
                    let mut rng = Rng(0x5eed_1000 + i as u64);
                    // Frame by frame with short pauses, so that the producers interleave.
                    for f in &slice {
                        s.write_all(&framed(std::slice::from_ref(f), FrameWidth::Two))?;
                        thread::sleep(Duration::from_millis(rng.between(0, 4) as u64));
                    }
                    Ok(())
                })
                .expect("spawn a producer")
        })
        .collect();
    assert_eq!(threads.len(), PRODUCERS);
    connected.wait();
    ingest.wait_metric_eq("connections", PRODUCERS as u64);
    go.wait();
    for (i, t) in threads.into_iter().enumerate() {
        match t.join() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => panic!("producer {i} could not send: {e}"),
            Err(_) => panic!("producer {i} panicked"),
        }
    }
    ingest.wait_metric_eq("stored_events_total", all.len() as u64);
    let by_producer = ingest
        .metrics()
        .get("dstore_ingest_producer_events_total{producer=\"127.0.0.1\"}")
        .copied();
    assert_eq!(by_producer, Some(all.len() as u64));
    finish(
        ingest,
        Vec::new(),
        all,
        &[
            ("accepted_connections_total", PRODUCERS as u64),
            ("partial_frames_total", 0),
            ("connection_cap_reached_total", 0),
        ],
        FrameWidth::Two,
    );
}

/// The soft limit on open files of this process.
fn open_files_limit() -> Option<usize> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

#[test]
fn a_flood_of_idle_connections_meets_the_cap_and_good_producers_are_served() {
    let dir = Scratch::new("ingest-flood");
    // Other tests run at the same time and hold a few hundred descriptors too.
    let limit = open_files_limit().unwrap_or(1024);
    let idle_count = 1000.min(limit.saturating_sub(800));
    let cap = 200.min(idle_count / 5).max(2);
    if idle_count < 1000 {
        println!(
            "NOTE: the open-files limit is {limit}: {idle_count} idle connections and a cap of {cap} instead of 1000 and 200"
        );
    }
    let mut ingest = Ingest::start(&dir, &["--max-connections", &cap.to_string()]);
    // Two good producers, connected before the flood and streaming through it (about 2 s each).
    let before = vec![
        Producer::spawn(
            "dnsdist during the flood",
            ingest.addr(0),
            sample_frames(DNSDIST),
            FrameWidth::Two,
            8192,
            Duration::from_millis(30),
        ),
        Producer::spawn(
            "recursor during the flood",
            ingest.addr(0),
            sample_frames(RECURSOR),
            FrameWidth::Two,
            8192,
            Duration::from_millis(30),
        ),
    ];
    ingest.wait_metric_eq("accepted_connections_total", 2);
    // Non-blocking connects: the ones past the cap and the listen backlog wait in SYN_SENT.
    let idle: Vec<mio::net::TcpStream> = (0..idle_count)
        .map(|_| mio::net::TcpStream::connect(ingest.addr(0)).expect("start a connect"))
        .collect();
    ingest.wait_metric_eq("connections", cap as u64);
    ingest.wait_metric_at_least("connection_cap_reached_total", 1);
    ingest.wait_log("the most allowed: not accepting more until one closes");
    thread::sleep(Duration::from_millis(300));
    let established = idle.iter().filter(|s| s.peer_addr().is_ok()).count();
    println!(
        "{established} of {idle_count} idle connections established with a cap of {cap}; ingest holds {}",
        ingest.metric("connections")
    );
    assert!(ingest.running(), "ingest died under the flood");
    assert_eq!(ingest.metric("connections"), cap as u64);
    drop(idle);
    ingest.wait_metric("connections", "at most 2", |n| n <= 2);
    // New producers once the idle ones are gone.
    let after = vec![
        Producer::spawn(
            "dnsdist after the flood",
            ingest.addr(0),
            sample_frames(DNSDIST),
            FrameWidth::Two,
            65536,
            Duration::ZERO,
        ),
        Producer::spawn(
            "recursor after the flood",
            ingest.addr(0),
            sample_frames(RECURSOR),
            FrameWidth::Two,
            65536,
            Duration::ZERO,
        ),
    ];
    let cap_reached = ingest.metric("connection_cap_reached_total");
    assert!(cap_reached >= 1);
    let mut producers = before;
    producers.extend(after);
    finish(
        ingest,
        producers,
        Vec::new(),
        &[
            ("partial_frames_total", 0),
            ("refused_connections_total", 0),
        ],
        FrameWidth::Two,
    );
}

// ---------------------------------------------------------------------------------------------
// allow-from

#[test]
fn allow_from_refuses_other_addresses_at_once() {
    let dir = Scratch::new("ingest-refuse");
    // 127.0.0.1 is refused; the good producers come from ::1, which is allowed.
    let mut ingest = Ingest::start(
        &dir,
        &["--listen", "[::1]:0", "--allow-from", "10.0.0.0/8,::1/128"],
    );
    let good = vec![
        Producer::sample(DNSDIST, ingest.addr(1), FrameWidth::Two),
        Producer::sample(RECURSOR, ingest.addr(1), FrameWidth::Two),
    ];
    let mut s = connect(ingest.addr(0));
    let _ = s.write_all(&framed(&sample_frames(DNSDIST)[..5], FrameWidth::Two));
    assert_closed_by_server(&mut s, CLOSE_WITHIN, "a producer outside allow-from");
    ingest.wait_metric_eq("refused_connections_total", 1);
    ingest.wait_log("refused a connection from 127.0.0.1: not in allow-from");
    let metrics = ingest.metrics();
    let v4 = metrics.get("dstore_ingest_producer_events_total{producer=\"127.0.0.1\"}");
    assert_eq!(v4, None, "a refused producer's events were counted");
    finish(
        ingest,
        good,
        Vec::new(),
        &[
            ("refused_connections_total", 1),
            ("accepted_connections_total", 2),
            ("producer_events_total{producer=\"::1\"}", 2124 + 2402),
        ],
        FrameWidth::Two,
    );
}

#[test]
fn sighup_rereads_allow_from_and_closes_connections_no_longer_allowed() {
    let dir = Scratch::new("ingest-sighup");
    let config = dir.path("tcpdistro.conf");
    std::fs::write(&config, "allow-from = 10.0.0.0/8\n").expect("write the configuration");
    let mut ingest = Ingest::start(&dir, &[]);
    let mut s = connect(ingest.addr(0));
    assert_closed_by_server(&mut s, CLOSE_WITHIN, "127.0.0.1 before SIGHUP");
    ingest.wait_metric_eq("refused_connections_total", 1);
    ingest.wait_log("refused a connection from 127.0.0.1");

    std::fs::write(&config, "allow-from = 127.0.0.0/8\n").expect("write the configuration");
    ingest.signal("HUP");
    ingest.wait_log_n("allow-from read again", 1);
    let good = good_producers(&ingest);
    let mut idle = connect(ingest.addr(0));
    assert_still_open(
        &mut idle,
        Duration::from_millis(300),
        "127.0.0.1 after SIGHUP allowed it",
    );
    let sent = join_all(good);
    ingest.wait_metric_eq("stored_events_total", sent.len() as u64);
    ingest.wait_metric_eq("connections", 1);

    std::fs::write(&config, "allow-from = 10.0.0.0/8\n").expect("write the configuration");
    ingest.signal("HUP");
    ingest.wait_log_n("allow-from read again", 2);
    assert_closed_by_server(
        &mut idle,
        CLOSE_WITHIN,
        "an open connection no longer allowed after SIGHUP",
    );
    ingest.wait_metric_eq("refused_connections_total", 2);
    ingest.wait_metric_eq("connections", 0);
    finish(
        ingest,
        Vec::new(),
        sent,
        &[
            ("refused_connections_total", 2),
            ("accepted_connections_total", 3),
        ],
        FrameWidth::Two,
    );
}

// ---------------------------------------------------------------------------------------------
// Stopping, crashing, a full disk

#[test]
fn sigterm_mid_stream_stores_every_whole_frame_received_and_exits_0() {
    let dir = Scratch::new("ingest-sigterm");
    let mut ingest = Ingest::start(&dir, &[]);
    let dnsdist = sample_frames(DNSDIST);
    // A: a thousand frames and half of the next, then nothing.
    let mut a = connect(ingest.addr(0));
    let mut bytes = framed(&dnsdist[..1000], FrameWidth::Two);
    let next = framed(&dnsdist[1000..1001], FrameWidth::Two);
    bytes.extend_from_slice(&next[..next.len() / 2]);
    a.write_all(&bytes).expect("send A");
    ingest.wait_metric_eq("events_total", 1000);
    let _silent = connect(ingest.addr(0));
    // B: the Recursor sample over and over, still streaming when SIGTERM comes.
    let recursor = sample_frames(RECURSOR);
    let stream_b: Vec<Vec<u8>> = (0..20).flat_map(|_| recursor.iter().cloned()).collect();
    let b_bytes = framed(&stream_b, FrameWidth::Two);
    let b_addr = ingest.addr(0);
    let b = thread::spawn(move || -> io::Result<()> {
        let mut s = TcpStream::connect_timeout(&b_addr, WAIT)?;
        s.set_write_timeout(Some(WAIT))?;
        send_paced(
            &mut s,
            &b_bytes,
            &mut Rng(0x5eed_0005),
            8192,
            Duration::from_millis(2),
        )
    });
    let received = ingest.wait_metric_at_least("events_total", 1500);
    ingest.signal("TERM");
    let started = Instant::now();
    let Some(status) = ingest.wait_exit(STOP_WITHIN) else {
        panic!(
            "ingest did not exit within {STOP_WITHIN:?} of SIGTERM; its log:\n{}",
            ingest.log_text()
        );
    };
    println!("ingest exited {:?} after SIGTERM", started.elapsed());
    ingest.collect_log();
    assert!(
        status.success(),
        "ingest exited with {status} after SIGTERM; its log:\n{}",
        ingest.log_text()
    );
    let b_result = b.join().expect("B does not panic");
    assert!(
        b_result.is_err(),
        "B sent its whole stream before ingest stopped: the test did not stop it mid-stream"
    );
    let stopping = ingest.wait_log("stopping:");
    assert!(stopping.contains(" 0 dropped"), "{stopping}");
    let received_in_all: usize = stopping
        .split("stopping: ")
        .nth(1)
        .and_then(|r| r.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no count in `{stopping}`"));
    ingest.wait_log("store closed");
    let store = stored(&ingest.store, FrameWidth::Two);
    assert_eq!(
        store.frames.len(),
        received_in_all,
        "ingest said it received {received_in_all} whole frames by the end, the store holds {}",
        store.frames.len()
    );
    assert!(
        store.frames.len() >= 1000 && store.frames[..1000] == dnsdist[..1000],
        "the first 1000 stored frames are not A's 1000 frames ({} stored)",
        store.frames.len()
    );
    let from_b = &store.frames[1000..];
    assert!(
        from_b.len() <= stream_b.len() && from_b == &stream_b[..from_b.len()],
        "what is stored after A's frames is not a prefix of B's stream"
    );
    assert!(
        store.frames.len() as u64 >= received,
        "{received} frames were received before SIGTERM, only {} stored",
        store.frames.len()
    );
    println!(
        "{} of B's frames stored, {} received before SIGTERM in all",
        from_b.len(),
        received
    );
    drop(a);
}

#[test]
fn after_kill_9_ingest_restarts_and_the_store_holds_a_prefix_of_what_was_sent() {
    let dir = Scratch::new("ingest-kill9");
    let mut ingest = Ingest::start(&dir, &[]);
    let mut sent = sample_frames(DNSDIST);
    sent.extend(sample_frames(RECURSOR));
    let bytes = framed(&sent, FrameWidth::Two);
    let early = framed(&sent[..1500], FrameWidth::Two).len();
    let mut s = connect(ingest.addr(0));
    s.write_all(&bytes[..early]).expect("send the first 1500");
    ingest.wait_metric_eq("stored_events_total", 1500);
    // These 1500 were sent more than flush-interval + 1 s before the kill.
    thread::sleep(FLUSH_INTERVAL + Duration::from_secs(1));
    let rest = bytes[early..].to_vec();
    let producer = thread::spawn(move || {
        send_paced(
            &mut s,
            &rest,
            &mut Rng(0x5eed_0006),
            2048,
            Duration::from_millis(5),
        )
    });
    thread::sleep(Duration::from_millis(400));
    ingest.signal("KILL");
    let status = ingest.wait_exit(WAIT).expect("ingest dies on SIGKILL");
    assert!(!status.success());
    assert!(
        producer.join().expect("no panic").is_err(),
        "the producer finished before the kill: the test did not kill mid-stream"
    );
    drop(ingest);

    let mut again = Ingest::start(&dir, &[]);
    let recovery: Vec<&String> = again
        .log
        .iter()
        .filter(|l| l.contains("recover") || l.contains("torn") || l.contains("damaged"))
        .collect();
    println!("restart after kill -9 logged: {recovery:?}");
    let check_prefix = |frames: &[Vec<u8>], when: &str| -> usize {
        assert!(
            frames.len() <= sent.len() && frames == &sent[..frames.len()],
            "{when}: the store is not a prefix of what was sent ({} frames)",
            frames.len()
        );
        assert!(
            frames.len() >= 1500,
            "{when}: only {} frames survived, but 1500 were sent more than {:?} before the kill",
            frames.len(),
            FLUSH_INTERVAL + Duration::from_secs(1)
        );
        frames.len()
    };
    let kept = check_prefix(
        &stored(&again.store, FrameWidth::Two).frames,
        "after the restart",
    );
    println!("{kept} of {} frames survived kill -9", sent.len());
    // The restarted daemon takes new traffic after what survived.
    let more = Producer::sample(RECURSOR, again.addr(0), FrameWidth::Two).join();
    again.wait_metric_eq("stored_events_total", more.len() as u64);
    let status = again.stop();
    assert!(status.success(), "{}", again.log_text());
    let store = stored(&again.store, FrameWidth::Two);
    assert_eq!(store.frames.len(), kept + more.len());
    check_prefix(&store.frames[..kept], "after the second run");
    assert!(
        store.frames[kept..] == more[..],
        "the second run's frames are not stored after the survivors"
    );
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            let line = s.lines().find(|l| l.starts_with("Uid:"))?.to_string();
            line.split_whitespace().nth(2).map(|euid| euid == "0")
        })
        .unwrap_or(false)
}

/// A tmpfs mounted for the test, unmounted when dropped.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(dir: &Path, size: &str) -> Option<Tmpfs> {
        let ok = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .status()
            .is_ok_and(|s| s.success());
        ok.then(|| Tmpfs(dir.to_path_buf()))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let unmounted = std::process::Command::new("umount")
            .arg(&self.0)
            .status()
            .is_ok_and(|s| s.success());
        if !unmounted {
            let _ = std::process::Command::new("umount")
                .arg("-l")
                .arg(&self.0)
                .status();
        }
    }
}

#[test]
fn a_full_disk_is_logged_loudly_and_writing_resumes_when_space_returns() {
    if !is_root() {
        println!("SKIPPED: the full-disk test mounts a tmpfs and needs root; it was not run");
        return;
    }
    let dir = Scratch::new("ingest-full");
    let mnt = dir.path("tmpfs");
    std::fs::create_dir_all(&mnt).expect("create the mount point");
    let Some(_mount) = Tmpfs::mount(&mnt, "3m") else {
        println!(
            "SKIPPED: mount -t tmpfs failed (no CAP_SYS_ADMIN?); the full-disk test was not run"
        );
        return;
    };
    // Ballast: freeing it is how space comes back.
    let ballast = mnt.join("ballast");
    std::fs::write(&ballast, vec![0x55u8; 2 << 20]).expect("write the ballast");
    let mut ingest = Ingest::start_at(
        &mnt.join("store"),
        &dir.path("tcpdistro.conf"),
        &["--queue-mb", "4"],
    );
    let dnsdist = framed(&sample_frames(DNSDIST), FrameWidth::Two);
    let stop = Arc::new(AtomicBool::new(false));
    let filler = {
        let (stop, addr) = (stop.clone(), ingest.addr(0));
        thread::spawn(move || -> io::Result<usize> {
            let mut s = TcpStream::connect_timeout(&addr, WAIT)?;
            s.set_write_timeout(Some(WAIT))?;
            let deadline = Instant::now() + Duration::from_secs(30);
            let mut repeats = 0;
            while repeats < 20_000 && !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
                s.write_all(&dnsdist)?;
                repeats += 1;
                // About 100 MB/s: faster than the writer, without spinning on drops.
                thread::sleep(Duration::from_millis(2));
            }
            Ok(repeats)
        })
    };
    let line = ingest.wait_log("CANNOT WRITE");
    println!("ingest logged: {line}");
    ingest.wait_metric_at_least("write_errors_total", 1);
    stop.store(true, Ordering::Relaxed);
    let repeats = filler
        .join()
        .expect("no panic")
        .unwrap_or_else(|e| panic!("the filling producer was cut off: {e}"));
    println!("{repeats} copies of the sample sent before the disk was full");
    thread::sleep(Duration::from_millis(500));
    assert!(ingest.running(), "ingest exited on a full disk");
    let stored_when_full = ingest.metric("stored_events_total");

    std::fs::remove_file(&ballast).expect("remove the ballast");
    // Writing again: the writer's last word is that it resumed, and the queue has drained.
    let deadline = Instant::now() + WAIT;
    loop {
        ingest.drain_log();
        let last = ingest
            .log
            .iter()
            .rev()
            .find(|l| l.contains("CANNOT WRITE") || l.contains("writable again"));
        if last.is_some_and(|l| l.contains("writable again")) && ingest.metric("queued_bytes") == 0
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "ingest did not resume writing within {WAIT:?} of space coming back; its log:\n{}",
            ingest.log_text()
        );
        thread::sleep(Duration::from_millis(100));
    }
    // New traffic once there is room again is stored whole, after everything else.
    let dropped = ingest.metric("dropped_events_total");
    let more = Producer::sample(RECURSOR, ingest.addr(0), FrameWidth::Two).join();
    let resumed =
        ingest.wait_metric_at_least("stored_events_total", stored_when_full + more.len() as u64);
    println!("stored {stored_when_full} events when the disk filled, {resumed} after it had room");
    assert_eq!(ingest.metric("dropped_events_total"), dropped);
    // Every event received was stored or dropped and counted (dropped ones while the queue was
    // full, without being copied to a batch).
    ingest.wait_metric_at_least(
        "stored_events_total",
        ingest.metric("events_total") - dropped,
    );
    assert_eq!(
        ingest.metric("events_total"),
        ingest.metric("stored_events_total") + dropped
    );
    let status = ingest.stop();
    assert!(
        status.success(),
        "ingest exited with {status}; its log:\n{}",
        ingest.log_text()
    );
    let store = stored(&ingest.store, FrameWidth::Two);
    let n = store.frames.len();
    assert!(n >= more.len(), "only {n} frames in the store");
    assert!(
        store.frames[n - more.len()..] == more[..],
        "the frames sent after space returned are not the last ones stored"
    );
}
