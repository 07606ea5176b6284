//! `dstore ingest` against the real PowerDNS producers on loopback: dnsdist's RemoteLogger in front
//! of an Authoritative server, the Recursor's protobufServer and outgoingProtobufServer, and
//! dnspcap2protobuf piped through nc. Each test starts its own processes on free ports, stops
//! exactly those by PID, and compares what the producer says it sent with what the store holds.
//!
//! The producers come from Debian packages (dnsdist, pdns-recursor, pdns-server,
//! pdns-backend-bind, pdns-tools, dnsperf, dnsutils, netcat-openbsd); `scripts/test.sh` installs
//! them. See ../shared/reference/real-producers.md for how they are run here.

mod common;

use common::{sample, Scratch};
use serde_json::Value;
use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// How long a daemon may take to say it is ready, or to exit after SIGTERM.
const START_TIMEOUT: Duration = Duration::from_secs(10);
const STOP_TIMEOUT: Duration = Duration::from_secs(10);
/// Senders flush their buffer about once a second.
const SENDER_FLUSH: Duration = Duration::from_secs(3);
/// Any one-shot command (dig, dnsperf, the dnsdist console, dstore cat) is killed after this.
const COMMAND_TIMEOUT_SECS: u32 = 30;

/// The dnsdist console key: 32 bytes, base64. Loopback only.
const CONSOLE_KEY: &str = "ZHN0b3JlLWludGVyb3AtdGVzdC1jb25zb2xlLWtleSE=";

const ZONE: &str = "\
$ORIGIN example.test.
$TTL 300
@         IN SOA   ns1.example.test. hostmaster.example.test. 1 3600 600 86400 300
@         IN NS    ns1.example.test.
ns1       IN A     127.0.0.1
@         IN MX    10 mail.example.test.
@         IN TXT   \"dstore interop\"
mail      IN A     192.0.2.25
www       IN A     192.0.2.1
www       IN AAAA  2001:db8::1
alias     IN CNAME www.example.test.
multi     IN A     192.0.2.11
multi     IN A     192.0.2.12
multi     IN A     192.0.2.13
multi     IN A     192.0.2.14
dig       IN A     192.0.2.53
dig       IN AAAA  2001:db8::53
dig       IN MX    20 mail.example.test.
dig       IN TXT   \"over tcp\"
dig-alias IN CNAME dig.example.test.
";

// ---------------------------------------------------------------------------------------------
// Processes

/// A background process this test started. Dropping it stops it: SIGTERM, then SIGKILL if it is
/// still there after `STOP_TIMEOUT`. Its stdout and stderr lines arrive through a channel and are
/// kept for failure messages.
struct Daemon {
    name: String,
    child: Child,
    lines: Receiver<String>,
    log: Arc<Mutex<Vec<String>>>,
    status: Option<ExitStatus>,
}

impl Daemon {
    fn spawn(name: &str, mut command: Command) -> Daemon {
        command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name} ({command:?}): {e}"));
        let (tx, lines) = mpsc::channel();
        let log = Arc::new(Mutex::new(Vec::new()));
        let stdout = child
            .stdout
            .take()
            .map(|s| Box::new(s) as Box<dyn Read + Send>);
        let stderr = child
            .stderr
            .take()
            .map(|s| Box::new(s) as Box<dyn Read + Send>);
        for stream in [stdout, stderr].into_iter().flatten() {
            let (tx, log) = (tx.clone(), log.clone());
            thread::spawn(move || {
                let mut reader = BufReader::new(stream);
                let mut buf = Vec::new();
                loop {
                    buf.clear();
                    match reader.read_until(b'\n', &mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(_) => {
                            let line = String::from_utf8_lossy(&buf).trim_end().to_string();
                            log.lock()
                                .unwrap_or_else(|e| e.into_inner())
                                .push(line.clone());
                            let _ = tx.send(line);
                        }
                    }
                }
            });
        }
        Daemon {
            name: name.to_string(),
            child,
            lines,
            log,
            status: None,
        }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Everything the process printed so far.
    fn output(&self) -> String {
        self.log
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .join("\n")
    }

    /// Waits for a line containing `needle` and returns it; fails the test after `timeout`.
    fn wait_for_line(&mut self, needle: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if line.contains(needle) => return line,
                Ok(_) => {}
                Err(RecvTimeoutError::Timeout) => panic!(
                    "{} did not print `{needle}` within {timeout:?}; it printed:\n{}",
                    self.name,
                    self.output()
                ),
                Err(RecvTimeoutError::Disconnected) => {
                    let status = self.child.wait().ok();
                    panic!(
                        "{} exited ({status:?}) before printing `{needle}`; it printed:\n{}",
                        self.name,
                        self.output()
                    )
                }
            }
        }
    }

    /// Sends SIGTERM unless the process is already gone.
    fn terminate(&mut self) {
        if self.status.is_some() || matches!(self.child.try_wait(), Ok(Some(_))) {
            return;
        }
        let _ = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .stderr(Stdio::null())
            .status();
    }

    /// SIGTERM, a bounded wait, then SIGKILL. Returns the exit status if the process exited by
    /// itself within `STOP_TIMEOUT`.
    fn stop(&mut self) -> Option<ExitStatus> {
        if let Some(status) = self.status {
            return Some(status);
        }
        self.terminate();
        let deadline = Instant::now() + STOP_TIMEOUT;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                self.status = Some(status);
                return Some(status);
            }
            thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        None
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if self.stop().is_none() {
            eprintln!(
                "{} (pid {}) ignored SIGTERM for {STOP_TIMEOUT:?} and was killed",
                self.name,
                self.pid()
            );
        }
    }
}

/// Runs a one-shot command under coreutils `timeout`, so that no wait is unbounded.
fn run_bounded(program: &Path, args: &[&str]) -> Output {
    Command::new("timeout")
        .args(["-k", "2", &COMMAND_TIMEOUT_SECS.to_string()])
        .arg(program)
        .args(args)
        .stdin(Stdio::null())
        .env_remove("DSTORE_STORAGE_DIR")
        .env("DSTORE_CONFIG", "/nonexistent/dstore.conf")
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", program.display()))
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The full path of a program from the PowerDNS and DNS tool packages; sbin is searched too since
/// pdns_server and pdns_recursor live there and a non-root PATH may lack it.
fn program(name: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin", "/usr/bin", "/bin"].map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!(
                "`{name}` is not installed: run scripts/test.sh, which installs dnsdist, \
                 pdns-recursor, pdns-server, pdns-backend-bind, pdns-tools, dnsperf, dnsutils \
                 and netcat-openbsd"
            )
        })
}

/// A port free on 127.0.0.1 for both TCP and UDP, never handed out twice by this test binary so
/// that tests running in parallel do not collide.
fn free_port() -> u16 {
    static GIVEN: Mutex<BTreeSet<u16>> = Mutex::new(BTreeSet::new());
    for _ in 0..200 {
        let tcp = TcpListener::bind("127.0.0.1:0").expect("bind a TCP port on loopback");
        let port = tcp.local_addr().expect("local address").port();
        if UdpSocket::bind(("127.0.0.1", port)).is_err() {
            continue;
        }
        if GIVEN.lock().unwrap_or_else(|e| e.into_inner()).insert(port) {
            return port;
        }
    }
    panic!("no free port on 127.0.0.1 after 200 tries");
}

// ---------------------------------------------------------------------------------------------
// dstore ingest and the store

struct Ingest {
    daemon: Daemon,
    addr: SocketAddr,
    metrics: Option<SocketAddr>,
    store: PathBuf,
}

/// Starts `dstore ingest` on a port the system picks and learns the port from its log.
fn start_ingest(dir: &Scratch, extra: &[&str]) -> Ingest {
    let store = dir.path("store");
    let conf = dir.path("tcpdistro.conf");
    std::fs::write(&conf, "").expect("write an empty tcpdistro.conf");
    let mut command = Command::new(env!("CARGO_BIN_EXE_dstore"));
    command
        .env_remove("DSTORE_STORAGE_DIR")
        .env("DSTORE_CONFIG", "/nonexistent/dstore.conf")
        .arg("ingest")
        .arg("--storage-dir")
        .arg(&store)
        .arg("--config")
        .arg(&conf)
        .args(["--listen", "127.0.0.1:0"])
        .args(["--flush-interval", "200ms", "--status-interval", "0"])
        .args(["--metrics-listen", "127.0.0.1:0"])
        .args(extra);
    let mut daemon = Daemon::spawn("dstore ingest", command);
    let line = daemon.wait_for_line("listening on ", START_TIMEOUT);
    let addr = after(&line, "listening on ")
        .parse()
        .unwrap_or_else(|_| panic!("no address in `{line}`"));
    let line = daemon.wait_for_line("metrics on http://", START_TIMEOUT);
    let metrics = after(&line, "metrics on http://")
        .trim_end_matches("/metrics")
        .parse()
        .ok();
    Ingest {
        daemon,
        addr,
        metrics,
        store,
    }
}

/// Runs dnsperf on 127.0.0.1:`port` with the queries in `queries`, 2000 a second for `seconds`.
fn dnsperf(port: u16, queries: &Path, seconds: u32) -> Output {
    run_bounded(
        &program("dnsperf"),
        &[
            "-s",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-d",
            path_str(queries),
            "-Q",
            "2000",
            "-l",
            &seconds.to_string(),
        ],
    )
}

/// dnsperf's output, which must be a success, and the count of queries it completed.
fn dnsperf_completed(perf: &Output) -> (String, u64) {
    let perf_out = text(&perf.stdout);
    assert!(
        perf.status.success(),
        "dnsperf: {perf_out}{}",
        text(&perf.stderr)
    );
    let completed: u64 = after(&perf_out, "Queries completed:")
        .parse()
        .unwrap_or_else(|_| panic!("no completed count from dnsperf:\n{perf_out}"));
    (perf_out, completed)
}

/// The first word after `marker` in `line`.
fn after<'a>(line: &'a str, marker: &str) -> &'a str {
    line.split_once(marker)
        .and_then(|(_, rest)| rest.split_whitespace().next())
        .unwrap_or("")
}

impl Ingest {
    /// One unlabelled counter or gauge from `GET /metrics`.
    fn metric(&self, name: &str) -> u64 {
        let addr = self.metrics.expect("ingest serves metrics");
        let mut stream =
            TcpStream::connect_timeout(&addr, Duration::from_secs(5)).expect("connect to metrics");
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .expect("set a read timeout");
        write!(
            stream,
            "GET /metrics HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
        )
        .expect("send the metrics request");
        let mut body = String::new();
        stream
            .read_to_string(&mut body)
            .expect("read the metrics response");
        body.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
            .unwrap_or_else(|| panic!("no metric {name} in:\n{body}"))
    }

    /// SIGTERM, and the daemon must drain, flush and exit 0 within the bounded wait.
    fn stop(&mut self) {
        let status = self.daemon.stop();
        assert!(
            status.is_some_and(|s| s.success()),
            "dstore ingest did not exit 0 after SIGTERM ({status:?}); it printed:\n{}",
            self.daemon.output()
        );
    }

    /// Every stored event, as `dstore cat` prints it.
    fn events(&self) -> Vec<Value> {
        let o = run_bounded(
            Path::new(env!("CARGO_BIN_EXE_dstore")),
            &["cat", "--storage-dir", path_str(&self.store)],
        );
        assert!(o.status.success(), "dstore cat: {}", text(&o.stderr));
        text(&o.stdout)
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("`{l}`: {e}")))
            .collect()
    }

    /// The stored frames exactly as received, as `dstore cat --raw` prints them.
    fn raw(&self) -> Vec<u8> {
        let o = run_bounded(
            Path::new(env!("CARGO_BIN_EXE_dstore")),
            &["cat", "--raw", "--storage-dir", path_str(&self.store)],
        );
        assert!(o.status.success(), "dstore cat --raw: {}", text(&o.stderr));
        o.stdout
    }
}

fn path_str(p: &Path) -> &str {
    p.to_str().expect("temp paths are UTF-8")
}

fn str_field<'a>(event: &'a Value, key: &str) -> &'a str {
    event.get(key).and_then(Value::as_str).unwrap_or("")
}

fn count_type(events: &[Value], message_type: &str) -> usize {
    events
        .iter()
        .filter(|e| str_field(e, "messageType") == message_type)
        .count()
}

/// The (type, rdata) pairs of an event's records.
fn records(event: &Value) -> Vec<(String, String)> {
    event
        .get("rrs")
        .and_then(Value::as_array)
        .map(|rrs| {
            rrs.iter()
                .map(|rr| {
                    (
                        str_field(rr, "type").to_string(),
                        str_field(rr, "rdata").to_string(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

// ---------------------------------------------------------------------------------------------
// The producers

/// pdns_server with the bind backend serving example.test.
fn start_auth(dir: &Scratch) -> (Daemon, u16) {
    let port = free_port();
    let conf_dir = dir.path("auth");
    std::fs::create_dir_all(&conf_dir).expect("create the auth dir");
    let zone = conf_dir.join("example.test.zone");
    let named = conf_dir.join("named.conf");
    std::fs::write(&zone, ZONE).expect("write the zone");
    std::fs::write(
        &named,
        format!(
            "zone \"example.test\" {{ type master; file \"{}\"; }};\n",
            zone.display()
        ),
    )
    .expect("write named.conf");
    std::fs::write(
        conf_dir.join("pdns.conf"),
        format!(
            "launch=bind\nbind-config={}\nlocal-address=127.0.0.1:{port}\ndaemon=no\nguardian=no\n\
             disable-syslog=yes\nsocket-dir={}\nsecurity-poll-suffix=\nwebserver=no\napi=no\n",
            named.display(),
            conf_dir.display()
        ),
    )
    .expect("write pdns.conf");
    let mut command = Command::new(program("pdns_server"));
    command.arg(format!("--config-dir={}", conf_dir.display()));
    let mut daemon = Daemon::spawn("pdns_server", command);
    daemon.wait_for_line("ready to distribute questions", START_TIMEOUT);
    (daemon, port)
}

struct Dnsdist {
    daemon: Daemon,
    port: u16,
    conf: PathBuf,
}

/// dnsdist in front of the authoritative server, logging queries and responses to `logger`.
fn start_dnsdist(dir: &Scratch, backend: u16, logger: SocketAddr) -> Dnsdist {
    let port = free_port();
    let console = free_port();
    let conf = dir.path("dnsdist.conf");
    std::fs::write(
        &conf,
        format!(
            r#"setSecurityPollSuffix("")
setLocal("127.0.0.1:{port}")
setACL({{"127.0.0.0/8"}})
controlSocket("127.0.0.1:{console}")
setKey("{CONSOLE_KEY}")
newServer({{address="127.0.0.1:{backend}", checkName="example.test.", checkType="SOA", mustResolve=true}})
rl = newRemoteLogger("{logger}", 2, 100, 1)
addAction(AllRule(), RemoteLogAction(rl))
addResponseAction(AllRule(), RemoteLogResponseAction(rl, nil, true))
"#
        ),
    )
    .expect("write dnsdist.conf");
    let mut command = Command::new(program("dnsdist"));
    command
        .args(["--supervised", "--disable-syslog", "-C"])
        .arg(&conf);
    let mut daemon = Daemon::spawn("dnsdist", command);
    daemon.wait_for_line("as 'up'", START_TIMEOUT);
    Dnsdist { daemon, port, conf }
}

impl Dnsdist {
    /// Runs a Lua expression in dnsdist's console and returns what it printed.
    fn console(&self, lua: &str) -> String {
        let o = run_bounded(
            &program("dnsdist"),
            &["-C", path_str(&self.conf), "-c", "-e", lua],
        );
        assert!(
            o.status.success(),
            "dnsdist -c -e '{lua}': {}{}",
            text(&o.stdout),
            text(&o.stderr)
        );
        text(&o.stdout).trim().to_string()
    }

    /// The remote logger's own counts, from `rl:toString()`: "ADDR (N processed, M dropped)".
    fn logger_counts(&self) -> (u64, u64) {
        let line = self.console("rl:toString()");
        let number_before = |word: &str| -> u64 {
            line.split_once(word)
                .and_then(|(head, _)| head.rsplit([' ', '(']).find(|w| !w.is_empty()))
                .and_then(|n| n.parse().ok())
                .unwrap_or_else(|| panic!("no `{word}` count in `{line}`"))
        };
        (number_before(" processed"), number_before(" dropped"))
    }

    fn counter(&self, name: &str) -> u64 {
        let out = self.console(&format!("getStatisticsCounters()[\"{name}\"]"));
        out.parse()
            .unwrap_or_else(|_| panic!("dnsdist counter {name}: `{out}`"))
    }
}

/// One dig: its whole output. `extra` holds flags such as `+tcp`.
fn dig(port: u16, name: &str, qtype: &str, extra: &[&str]) -> String {
    let port = port.to_string();
    let mut args = vec![
        "@127.0.0.1",
        "-p",
        &port,
        "+time=2",
        "+tries=1",
        name,
        qtype,
    ];
    args.extend_from_slice(extra);
    let o = run_bounded(&program("dig"), &args);
    let out = text(&o.stdout);
    assert!(
        o.status.success() && out.contains("status: "),
        "dig {args:?} got no answer:\n{out}{}",
        text(&o.stderr)
    );
    out
}

fn dig_status(out: &str) -> &str {
    after(out, "status: ").trim_end_matches(',')
}

/// The query and the response logged for one client question: exactly one of each, same qid.
fn query_and_response<'a>(events: &'a [Value], qname: &str, qtype: &str) -> (&'a Value, &'a Value) {
    let find = |message_type: &str| -> &'a Value {
        let found: Vec<&Value> = events
            .iter()
            .filter(|e| {
                str_field(e, "messageType") == message_type
                    && str_field(e, "question") == qname
                    && str_field(e, "type") == qtype
            })
            .collect();
        assert_eq!(
            found.len(),
            1,
            "expected one {message_type} for {qname} {qtype}, found {found:?}"
        );
        found[0]
    };
    let (query, response) = (find("DNSQueryType"), find("DNSResponseType"));
    assert_eq!(query["qid"], response["qid"], "{query}\n{response}");
    assert_eq!(query["qr"], Value::Bool(false));
    assert_eq!(response["qr"], Value::Bool(true));
    (query, response)
}

// ---------------------------------------------------------------------------------------------
// The tests

#[test]
fn dnsdist_remote_logger_everything_sent_is_stored() {
    let dir = Scratch::new("interop-dnsdist");
    let (mut auth, auth_port) = start_auth(&dir);
    let mut ingest = start_ingest(&dir, &[]);
    let mut dnsdist = start_dnsdist(&dir, auth_port, ingest.addr);
    let port = dnsdist.port;

    // Digs on names dnsperf does not ask, so that each gives exactly one query and one response.
    let a = dig(port, "dig.example.test", "A", &[]);
    assert!(a.contains("192.0.2.53"), "{a}");
    let aaaa = dig(port, "dig.example.test", "AAAA", &[]);
    assert!(aaaa.contains("2001:db8::53"), "{aaaa}");
    let tcp = dig(port, "dig.example.test", "TXT", &["+tcp"]);
    assert!(tcp.contains("over tcp"), "{tcp}");
    dig(port, "dig.example.test", "MX", &[]);
    dig(port, "dig-alias.example.test", "A", &[]);
    let missing = dig(port, "dig-missing.example.test", "A", &[]);
    assert_eq!(dig_status(&missing), "NXDOMAIN", "{missing}");
    let digs = 6;

    let queries = dir.path("queries.txt");
    let mut list = String::new();
    for i in 0..200 {
        list.push_str(&format!(
            "www.example.test A\nwww.example.test AAAA\nalias.example.test A\n\
             example.test MX\nexample.test TXT\nperf-{i}.example.test A\n"
        ));
    }
    std::fs::write(&queries, list).expect("write the dnsperf query file");
    let (perf_out, completed) = dnsperf_completed(&dnsperf(port, &queries, 2));
    assert!(
        completed >= 1000,
        "dnsperf completed only {completed}:\n{perf_out}"
    );

    thread::sleep(SENDER_FLUSH);
    let (sent, sender_dropped) = dnsdist.logger_counts();
    let dnsdist_queries = dnsdist.counter("queries");
    let received = ingest.metric("dstore_ingest_events_total");
    let receiver_dropped = ingest.metric("dstore_ingest_dropped_events_total");
    let partial = ingest.metric("dstore_ingest_partial_frames_total");
    ingest.stop();
    dnsdist.daemon.terminate();
    auth.terminate();

    let events = ingest.events();
    let stored_queries = count_type(&events, "DNSQueryType");
    let stored_responses = count_type(&events, "DNSResponseType");
    eprintln!(
        "dnsdist: {dnsdist_queries} queries, logger {sent} processed, {sender_dropped} dropped; \
         dnsperf {completed} completed + {digs} digs; ingest {received} received, \
         {receiver_dropped} dropped, {partial} partial; stored {} ({stored_queries} queries, \
         {stored_responses} responses)",
        events.len()
    );
    assert_eq!(sender_dropped, 0, "dnsdist's logger dropped messages");
    assert_eq!(receiver_dropped, 0, "ingest dropped events");
    assert_eq!(partial, 0, "ingest saw partial frames");
    assert_eq!(received, sent, "ingest received what dnsdist sent");
    assert_eq!(
        events.len() as u64,
        sent,
        "the store holds what dnsdist sent"
    );
    assert_eq!(stored_queries, stored_responses);
    assert_eq!(stored_queries + stored_responses, events.len());
    assert_eq!(stored_queries as u64, dnsdist_queries);
    assert!(stored_queries as u64 >= completed + digs);
    assert!(events.iter().all(|e| e.get("undecodable").is_none()));

    for e in &events {
        assert_eq!(str_field(e, "requestor"), "127.0.0.1", "{e}");
        assert_eq!(str_field(e, "responder"), "127.0.0.1", "{e}");
    }
    let (q, r) = query_and_response(&events, "dig.example.test.", "A");
    assert_eq!(str_field(q, "socketProtocol"), "UDP");
    assert_eq!(r["rcode"], 0);
    assert_eq!(records(r), [("A".to_string(), "192.0.2.53".to_string())]);
    let (_, r) = query_and_response(&events, "dig.example.test.", "AAAA");
    assert_eq!(r["rcode"], 0);
    assert_eq!(
        records(r),
        [("AAAA".to_string(), "2001:db8::53".to_string())]
    );
    let (q, r) = query_and_response(&events, "dig.example.test.", "TXT");
    assert_eq!(str_field(q, "socketProtocol"), "TCP", "{q}");
    assert_eq!(str_field(r, "socketProtocol"), "TCP", "{r}");
    assert_eq!(r["rcode"], 0);
    let (_, r) = query_and_response(&events, "dig.example.test.", "MX");
    assert_eq!(r["rcode"], 0);
    let (_, r) = query_and_response(&events, "dig-alias.example.test.", "A");
    let rrs = records(r);
    assert!(
        rrs.iter().any(|(t, _)| t == "CNAME") && rrs.contains(&("A".into(), "192.0.2.53".into())),
        "CNAME and A expected: {r}"
    );
    let (_, r) = query_and_response(&events, "dig-missing.example.test.", "A");
    assert_eq!(r["rcode"], 3, "NXDOMAIN: {r}");
    assert!(records(r).is_empty(), "{r}");
    let perf_nx = events
        .iter()
        .filter(|e| str_field(e, "messageType") == "DNSResponseType")
        .filter(|e| str_field(e, "question").starts_with("perf-"))
        .collect::<Vec<_>>();
    assert!(!perf_nx.is_empty());
    assert!(perf_nx.iter().all(|e| e["rcode"] == 3));
}

#[test]
fn ingest_restarted_while_dnsdist_sends_loses_only_the_gap() {
    let dir = Scratch::new("interop-restart");
    let (mut auth, auth_port) = start_auth(&dir);
    let mut first = start_ingest(&dir, &[]);
    let mut dnsdist = start_dnsdist(&dir, auth_port, first.addr);

    let queries = dir.path("queries.txt");
    let mut list = String::new();
    for i in 0..500 {
        list.push_str(&format!(
            "www.example.test A\nalias.example.test A\nexample.test MX\nrestart-{i}.example.test A\n"
        ));
    }
    std::fs::write(&queries, list).expect("write the dnsperf query file");
    let port = dnsdist.port;
    let perf = thread::spawn(move || dnsperf(port, &queries, 6));

    // Two seconds into the load: SIGTERM, and a new ingest on the same port and store at once.
    thread::sleep(Duration::from_secs(2));
    let unix_now = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("the clock is after 1970")
            .as_secs_f64()
    };
    let term_at = unix_now();
    let stopping = Instant::now();
    first.stop();
    let stop_took = stopping.elapsed();
    // start_ingest listens on a port of its own as well; dnsdist keeps sending to the first one's.
    let listen = first.addr.to_string();
    let mut second = start_ingest(&dir, &["--listen", &listen]);
    let down_for = stopping.elapsed();
    let up_at = unix_now();

    let (_, completed) = dnsperf_completed(&perf.join().expect("the dnsperf thread"));
    thread::sleep(SENDER_FLUSH);
    let (processed, sender_dropped) = dnsdist.logger_counts();
    let dnsdist_queries = dnsdist.counter("queries");
    let dnsdist_responses = dnsdist.counter("responses");
    let second_partial = second.metric("dstore_ingest_partial_frames_total");
    let second_bad_lengths = second.metric("dstore_ingest_bad_lengths_total");
    second.stop();
    dnsdist.daemon.terminate();
    auth.terminate();

    // What each run said as it stopped: "stopping: N events received, N dropped, N partial
    // frames" and "store closed: N events in N blocks this run".
    let logged = |ingest: &Ingest, line_marker: &str, marker: &str| -> u64 {
        let out = ingest.daemon.output();
        let line = out
            .lines()
            .rfind(|l| l.contains(line_marker))
            .unwrap_or_else(|| panic!("no `{line_marker}` line from ingest:\n{out}"));
        after(line, marker)
            .parse()
            .unwrap_or_else(|_| panic!("no number after `{marker}` in `{line}`"))
    };
    let first_received = logged(&first, "stopping: ", "stopping: ");
    let first_dropped = logged(&first, "stopping: ", "received, ");
    let first_partial = logged(&first, "stopping: ", "dropped, ");
    let first_stored = logged(&first, "store closed: ", "store closed: ");
    let second_stored = logged(&second, "store closed: ", "store closed: ");

    let events = second.events();
    let time = |e: &Value, sec: &str, usec: &str| -> Option<f64> {
        Some(e.get(sec)?.as_f64()? + e.get(usec)?.as_f64()? / 1e6)
    };
    let event_time = |e: &Value| time(e, "timeSec", "timeUsec").unwrap_or(0.0);
    let undecodable = events
        .iter()
        .filter(|e| e.get("undecodable").is_some())
        .count();
    let before_term = events.iter().filter(|e| event_time(e) < term_at).count();
    let after_restart = events.iter().filter(|e| event_time(e) > up_at).count();
    let query_ids: BTreeSet<&str> = events
        .iter()
        .filter(|e| str_field(e, "messageType") == "DNSQueryType")
        .map(|e| str_field(e, "qid"))
        .collect();
    // dnsdist flushes its buffer at least once a second and reconnects within its
    // reconnectWaitTime (1 s) of the new ingest listening: a query outside this window cannot
    // have been lost.
    let (gap_from, gap_to) = (term_at - 1.5, up_at + 2.0);
    let orphans: Vec<&Value> = events
        .iter()
        .filter(|e| str_field(e, "messageType") == "DNSResponseType")
        .filter(|e| !query_ids.contains(str_field(e, "qid")))
        .collect();
    let outside_gap: Vec<&&Value> = orphans
        .iter()
        .filter(|r| {
            let asked = time(r, "queryTimeSec", "queryTimeUsec").unwrap_or(event_time(r));
            !(gap_from..=gap_to).contains(&asked)
        })
        .collect();
    let mut seen = BTreeSet::new();
    let duplicates = events
        .iter()
        .filter(|e| !seen.insert((str_field(e, "qid"), str_field(e, "messageType"))))
        .count();
    let stored = events.len() as u64;
    eprintln!(
        "restart: ingest 1 exited {:.2} s after SIGTERM (received {first_received}, dropped \
         {first_dropped}, {first_partial} partial frames, stored {first_stored}); ingest 2 \
         listening {:.2} s after SIGTERM, stored {second_stored} ({second_partial} partial \
         frames, {second_bad_lengths} bad lengths). dnsperf {completed} completed; dnsdist \
         {dnsdist_queries} queries + {dnsdist_responses} responses = {} messages; logger \
         {processed} processed + {sender_dropped} dropped = {}. Stored {stored} \
         ({before_term} timed before the SIGTERM, {after_restart} after the restart, \
         {undecodable} undecodable, {duplicates} duplicates): processed - stored = {} queued \
         by dnsdist and lost while ingest was down; {} responses without their query, {} of \
         them asked outside the gap",
        stop_took.as_secs_f64(),
        down_for.as_secs_f64(),
        dnsdist_queries + dnsdist_responses,
        processed + sender_dropped,
        processed as i64 - stored as i64,
        orphans.len(),
        outside_gap.len(),
    );
    assert_eq!(
        processed + sender_dropped,
        dnsdist_queries + dnsdist_responses,
        "dnsdist's logger either queues (processed) or drops every message"
    );
    assert_eq!(undecodable, 0, "undecodable events in the store");
    assert_eq!(duplicates, 0, "an event stored twice");
    assert!(
        first_stored > 0 && second_stored > 0,
        "both runs store events"
    );
    assert_eq!(
        first_stored + second_stored,
        stored,
        "the store holds what both runs stored"
    );
    assert!(before_term > 0, "events from before the restart");
    assert!(after_restart > 0, "events from after the restart");
    assert!(
        outside_gap.is_empty(),
        "responses whose query was asked outside the gap [{gap_from:.3}, {gap_to:.3}] but is \
         not stored: {:?}",
        outside_gap.iter().take(3).collect::<Vec<_>>()
    );
    assert!(stored <= processed, "more stored than dnsdist sent");
    assert!(
        stored * 10 >= processed * 9,
        "stored {stored} is less than 90% of the {processed} messages dnsdist processed"
    );
}

#[test]
fn recursor_client_and_outgoing_messages_are_all_stored() {
    let dir = Scratch::new("interop-recursor");
    let (mut auth, auth_port) = start_auth(&dir);
    let mut ingest = start_ingest(&dir, &[]);
    let port = free_port();
    let conf_dir = dir.path("recursor");
    std::fs::create_dir_all(&conf_dir).expect("create the recursor dir");
    let lua = conf_dir.join("recursor.lua");
    std::fs::write(
        &lua,
        format!(
            "protobufServer(\"{0}\", {{logQueries=true, logResponses=true}})\n\
             outgoingProtobufServer(\"{0}\")\n",
            ingest.addr
        ),
    )
    .expect("write recursor.lua");
    std::fs::write(
        conf_dir.join("recursor.conf"),
        format!(
            "local-address=127.0.0.1\nlocal-port={port}\n\
             forward-zones=example.test=127.0.0.1:{auth_port}\nhint-file=no\n\
             security-poll-suffix=\ndaemon=no\ndisable-syslog=yes\nsocket-dir={}\n\
             lua-config-file={}\nthreads=2\ndnssec=off\nquiet=yes\n",
            conf_dir.display(),
            lua.display()
        ),
    )
    .expect("write recursor.conf");
    let mut command = Command::new(program("pdns_recursor"));
    command.arg(format!("--config-dir={}", conf_dir.display()));
    let mut recursor = Daemon::spawn("pdns_recursor", command);
    let socket_dir = format!("--socket-dir={}", conf_dir.display());
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        let o = run_bounded(&program("rec_control"), &[&socket_dir, "ping"]);
        if text(&o.stdout).contains("pong") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "pdns_recursor did not answer rec_control ping; it printed:\n{}",
            recursor.output()
        );
        thread::sleep(Duration::from_millis(100));
    }

    // Five different questions, each a cache miss, then one the cache answers.
    let asked = [
        ("www.example.test", "A", "NOERROR"),
        ("alias.example.test", "A", "NOERROR"),
        ("www.example.test", "AAAA", "NOERROR"),
        ("example.test", "MX", "NOERROR"),
        ("missing.example.test", "A", "NXDOMAIN"),
        ("www.example.test", "A", "NOERROR"),
    ];
    for (name, qtype, status) in asked {
        let out = dig(port, name, qtype, &[]);
        assert_eq!(dig_status(&out), status, "{out}");
    }
    let misses: BTreeSet<(String, String)> = asked
        .iter()
        .map(|(n, t, _)| (format!("{n}."), t.to_string()))
        .collect();

    thread::sleep(SENDER_FLUSH);
    let connections = ingest.metric("dstore_ingest_accepted_connections_total");
    let received = ingest.metric("dstore_ingest_events_total");
    ingest.stop();
    recursor.terminate();
    auth.terminate();

    let events = ingest.events();
    let count = |t: &str| count_type(&events, t);
    let (queries, responses) = (count("DNSQueryType"), count("DNSResponseType"));
    let (outgoing, incoming) = (
        count("DNSOutgoingQueryType"),
        count("DNSIncomingResponseType"),
    );
    eprintln!(
        "recursor: {} client queries asked; ingest {received} received on {connections} \
         connections; stored {queries}/{responses}/{outgoing}/{incoming} of types 1/2/3/4",
        asked.len()
    );
    assert_eq!(events.len() as u64, received);
    assert_eq!(queries + responses + outgoing + incoming, events.len());
    assert_eq!(queries, asked.len(), "one client query per dig");
    assert_eq!(responses, asked.len(), "one client response per dig");
    assert_eq!(outgoing, misses.len(), "one outgoing query per cache miss");
    assert_eq!(
        incoming,
        misses.len(),
        "one incoming response per cache miss"
    );
    assert!(
        connections >= 2,
        "the client and the outgoing loggers connect separately ({connections})"
    );
    assert!(events.iter().all(|e| e.get("undecodable").is_none()));

    for (name, qtype, status) in asked {
        let qname = format!("{name}.");
        let client: Vec<&Value> = events
            .iter()
            .filter(|e| str_field(e, "question") == qname && str_field(e, "type") == qtype)
            .filter(|e| str_field(e, "requestor") == "127.0.0.1")
            .collect();
        assert!(
            client.len() >= 2,
            "client query and response for {qname} {qtype}: {client:?}"
        );
        let rcode = if status == "NXDOMAIN" { 3 } else { 0 };
        for e in client
            .iter()
            .filter(|e| str_field(e, "messageType") == "DNSResponseType")
        {
            assert_eq!(e["rcode"], rcode, "{e}");
            assert_eq!(str_field(e, "responder"), "127.0.0.1", "{e}");
        }
    }
    let www = events
        .iter()
        .find(|e| {
            str_field(e, "messageType") == "DNSResponseType"
                && str_field(e, "question") == "www.example.test."
                && str_field(e, "type") == "A"
        })
        .expect("a response for www.example.test A");
    assert!(
        records(www).contains(&("A".into(), "192.0.2.1".into())),
        "{www}"
    );

    let out_questions: BTreeSet<(String, String)> = events
        .iter()
        .filter(|e| str_field(e, "messageType") == "DNSOutgoingQueryType")
        .map(|e| {
            assert_eq!(str_field(e, "responder"), "127.0.0.1", "{e}");
            assert_eq!(e["toPort"], auth_port, "{e}");
            (str_field(e, "question").into(), str_field(e, "type").into())
        })
        .collect();
    assert_eq!(out_questions, misses);
    let nx_in = events
        .iter()
        .find(|e| {
            str_field(e, "messageType") == "DNSIncomingResponseType"
                && str_field(e, "question") == "missing.example.test."
        })
        .expect("the incoming response for missing.example.test");
    assert_eq!(nx_in["rcode"], 3, "{nx_in}");
}

/// Field 2 (the messageId) and the first fields 9 and 10 (the time of the run) removed: what
/// dnspcap2protobuf writes the same on every run. None if the frame's head cannot be walked.
fn without_run_stamps(frame: &[u8]) -> Option<Vec<u8>> {
    fn varint(b: &[u8], pos: &mut usize) -> Option<u64> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let byte = *b.get(*pos)?;
            *pos += 1;
            v |= u64::from(byte & 0x7f) << shift;
            if byte < 0x80 {
                return Some(v);
            }
        }
        None
    }
    let (mut out, mut pos, mut seen) = (Vec::new(), 0, BTreeSet::new());
    while pos < frame.len() {
        let start = pos;
        let tag = varint(frame, &mut pos)?;
        match tag & 7 {
            0 => {
                varint(frame, &mut pos)?;
            }
            2 => {
                let len = usize::try_from(varint(frame, &mut pos)?).ok()?;
                pos = pos.checked_add(len).filter(|&p| p <= frame.len())?;
            }
            _ => return None,
        }
        let field = tag >> 3;
        let stamp = field == 2 || ((field == 9 || field == 10) && !seen.contains(&field));
        seen.insert(field);
        if !stamp {
            out.extend_from_slice(frame.get(start..pos)?);
        }
        if field == 10 {
            // The stamps come first; the rest (malformed responses included) is kept as is.
            out.extend_from_slice(frame.get(pos..)?);
            return Some(out);
        }
    }
    Some(out)
}

/// Splits a stream of 2-byte-length frames.
fn frames(stream: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    let mut rest = stream;
    while let [hi, lo, tail @ ..] = rest {
        let len = usize::from(u16::from_be_bytes([*hi, *lo]));
        assert!(len <= tail.len(), "a torn frame at the end of the stream");
        out.push(&tail[..len]);
        rest = &tail[len..];
    }
    assert!(rest.is_empty(), "a lone byte at the end of the stream");
    out
}

#[test]
fn dnspcap2protobuf_through_nc_is_stored_byte_for_byte() {
    let dir = Scratch::new("interop-pcap");
    let mut ingest = start_ingest(&dir, &[]);
    let sent_file = dir.path("sent.pb");
    // The documented pipe, with a tee to keep the exact bytes sent: dnspcap2protobuf stamps each
    // run with a fresh random messageId and the current time.
    let pipeline = format!(
        "set -o pipefail; '{}' '{}' /dev/stdout | tee '{}' | '{}' -q1 127.0.0.1 {}",
        program("dnspcap2protobuf").display(),
        sample("dnsdist-5300.pcap").display(),
        sent_file.display(),
        program("nc").display(),
        ingest.addr.port()
    );
    let o = run_bounded(Path::new("bash"), &["-c", &pipeline]);
    assert!(o.status.success(), "{pipeline}: {}", text(&o.stderr));
    let sent = std::fs::read(&sent_file).expect("read what was sent");
    let deadline = Instant::now() + Duration::from_secs(10);
    while ingest.metric("dstore_ingest_events_total") < 2120 && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(50));
    }
    ingest.stop();

    let raw = ingest.raw();
    let sample_bytes = std::fs::read(sample("dnsdist-5300.pb")).expect("read the sample");
    let (sent_frames, stored, expected) = (frames(&sent), frames(&raw), frames(&sample_bytes));
    eprintln!(
        "dnspcap2protobuf: {} frames, {} bytes sent; stored {} frames, {} bytes",
        sent_frames.len(),
        sent.len(),
        stored.len(),
        raw.len()
    );
    assert_eq!(expected.len(), 2120);
    assert_eq!(sent_frames.len(), 2120);
    assert!(
        raw == sent,
        "the store does not hold the bytes sent, byte for byte"
    );
    for (i, (got, want)) in stored.iter().zip(&expected).enumerate() {
        let (got, want) = (without_run_stamps(got), without_run_stamps(want));
        assert!(
            got.is_some() && got == want,
            "frame {i} differs from dnsdist-5300.pb beyond the messageId and run time"
        );
    }

    let events = ingest.events();
    assert_eq!(events.len(), 2120);
    let undecodable: Vec<&Value> = events
        .iter()
        .filter(|e| e.get("undecodable") == Some(&Value::Bool(true)))
        .collect();
    assert_eq!(
        undecodable.len(),
        1060,
        "the malformed responses of pdns-tools 4.7.3"
    );
    assert!(undecodable
        .iter()
        .all(|e| str_field(e, "messageType") == "DNSResponseType"));
    assert_eq!(count_type(&events, "DNSQueryType"), 1060);
}

#[test]
fn answer_limit_keeps_one_record() {
    let dir = Scratch::new("interop-limit");
    let (mut auth, auth_port) = start_auth(&dir);
    let mut ingest = start_ingest(&dir, &["--answer-limit", "1"]);
    let mut dnsdist = start_dnsdist(&dir, auth_port, ingest.addr);
    let out = dig(dnsdist.port, "multi.example.test", "A", &[]);
    let answers = out
        .lines()
        .filter(|l| l.starts_with("multi.example.test.") && l.contains("\tA\t"))
        .count();
    assert_eq!(answers, 4, "the server answers with four records:\n{out}");
    thread::sleep(SENDER_FLUSH);
    let (sent, dropped) = dnsdist.logger_counts();
    ingest.stop();
    dnsdist.daemon.terminate();
    auth.terminate();

    assert_eq!((sent, dropped), (2, 0));
    let events = ingest.events();
    assert_eq!(events.len(), 2);
    let (_, response) = query_and_response(&events, "multi.example.test.", "A");
    let rrs = records(response);
    assert_eq!(rrs.len(), 1, "{response}");
    assert_eq!(rrs[0].0, "A");
    assert!(rrs[0].1.starts_with("192.0.2.1"), "{response}");
}
