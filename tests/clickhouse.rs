//! `dstore export clickhouse` and `dstore ship` against a real ClickHouse: Debian's clickhouse-server
//! (18.16, the legacy schema), started privately on loopback for each test with its own config and
//! data folder; and the modern schema loaded into a current ClickHouse engine (chdb, from PyPI) from
//! the exact batches export writes.

mod common;

use common::{dstore, run, sample, samples, stderr, Scratch};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A private clickhouse-server on 127.0.0.1, stopped (by its PID) when dropped.
struct ClickHouse {
    dir: PathBuf,
    http_port: u16,
    /// With TLS: the https port.
    https_port: Option<u16>,
    child: Option<Child>,
}

const START_TIMEOUT: Duration = Duration::from_secs(60);

/// Makes a CA and a certificate it signs for 127.0.0.1 (openssl's command line), in `dir`.
fn make_certificates(dir: &Path) {
    let openssl = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("openssl (Debian package openssl)");
        assert!(out.status.success(), "openssl {args:?}: {}", stderr(&out));
    };
    let days = ["-days", "2"];
    openssl(
        &[
            &[
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-keyout",
                "ca.key",
                "-out",
                "ca.pem",
                "-subj",
                "/CN=dstore test CA",
            ][..],
            &days,
        ]
        .concat(),
    );
    openssl(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "key.pem",
        "-out",
        "leaf.csr",
        "-subj",
        "/CN=127.0.0.1",
    ]);
    std::fs::write(
        dir.join("leaf.ext"),
        "basicConstraints=CA:FALSE\nsubjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n",
    )
    .expect("write leaf.ext");
    openssl(
        &[
            &[
                "x509",
                "-req",
                "-in",
                "leaf.csr",
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-out",
                "cert.pem",
                "-extfile",
                "leaf.ext",
            ][..],
            &days,
        ]
        .concat(),
    );
}

impl ClickHouse {
    fn start(dir: &Path) -> ClickHouse {
        ClickHouse::start_with(dir, false)
    }

    fn start_with(dir: &Path, tls: bool) -> ClickHouse {
        for sub in ["data", "tmp", "user_files", "format_schemas", "log"] {
            std::fs::create_dir_all(dir.join(sub)).expect("clickhouse dirs");
        }
        let d = dir.display();
        let (tcp_port, http_port) = (common::free_port(), common::free_port());
        let https_port = tls.then(common::free_port);
        let https = match https_port {
            Some(port) => {
                make_certificates(dir);
                format!(
                    "<https_port>{port}</https_port>\n    <openSSL><server><certificateFile>{d}/cert.pem</certificateFile><privateKeyFile>{d}/key.pem</privateKeyFile><verificationMode>none</verificationMode><loadDefaultCAFile>false</loadDefaultCAFile><disableProtocols>sslv2,sslv3</disableProtocols></server></openSSL>"
                )
            }
            None => String::new(),
        };
        let config = format!(
            r#"<?xml version="1.0"?>
<yandex>
    <logger><level>warning</level><log>{d}/log/server.log</log><errorlog>{d}/log/server.err.log</errorlog><size>10M</size><count>1</count></logger>
    <listen_host>127.0.0.1</listen_host>
    <tcp_port>{tcp_port}</tcp_port>
    <http_port>{http_port}</http_port>
    {https}
    <path>{d}/data/</path>
    <tmp_path>{d}/tmp/</tmp_path>
    <user_files_path>{d}/user_files/</user_files_path>
    <format_schema_path>{d}/format_schemas/</format_schema_path>
    <users_config>{d}/users.xml</users_config>
    <default_profile>default</default_profile>
    <default_database>default</default_database>
    <timezone>UTC</timezone>
    <mark_cache_size>67108864</mark_cache_size>
    <mlock_executable>false</mlock_executable>
</yandex>
"#
        );
        let users = r#"<?xml version="1.0"?>
<yandex>
    <profiles><default></default></profiles>
    <users>
        <default><password></password><networks><ip>127.0.0.1</ip></networks><profile>default</profile><quota>default</quota></default>
        <shipper><password>s3cret</password><networks><ip>127.0.0.1</ip></networks><profile>default</profile><quota>default</quota></shipper>
    </users>
    <quotas><default></default></quotas>
</yandex>
"#;
        std::fs::write(dir.join("config.xml"), config).expect("write config");
        std::fs::write(dir.join("users.xml"), users).expect("write users");
        let mut ch = ClickHouse {
            dir: dir.to_path_buf(),
            http_port,
            https_port,
            child: None,
        };
        ch.spawn();
        ch
    }

    fn spawn(&mut self) {
        let child = Command::new("clickhouse-server")
            .arg(format!(
                "--config-file={}",
                self.dir.join("config.xml").display()
            ))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect(
                "clickhouse-server (Debian package clickhouse-server; scripts/test.sh installs it)",
            );
        self.child = Some(child);
        let started = Instant::now();
        while started.elapsed() < START_TIMEOUT {
            if self.try_query("SELECT 1").is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        let log = std::fs::read_to_string(self.dir.join("log/server.err.log")).unwrap_or_default();
        panic!("clickhouse-server did not answer within {START_TIMEOUT:?}: {log}");
    }

    /// Kills the server (SIGKILL, as a crash) and waits for it.
    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.http_port)
    }

    fn try_query(&self, sql: &str) -> Result<String, String> {
        let endpoint = dstore::clickhouse::Endpoint::parse(&self.url())?;
        dstore::clickhouse::Client::new(endpoint)?
            .query(sql)
            .map_err(|e| e.to_string())
    }

    fn query(&self, sql: &str) -> String {
        self.try_query(sql)
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
            .trim()
            .to_string()
    }

    fn number(&self, sql: &str) -> u64 {
        let text = self.query(sql);
        text.parse()
            .unwrap_or_else(|_| panic!("{sql}: `{text}` is not a number"))
    }
}

impl Drop for ClickHouse {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A store holding every sample stream, with its event count.
fn sample_store(s: &Scratch) -> (String, u64) {
    let store = s.path("store").display().to_string();
    let mut args = vec!["import", "-q", "--storage-dir", &store];
    let files: Vec<String> = std::fs::read_dir(samples())
        .expect("samples")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "pb"))
        .map(|p| p.display().to_string())
        .collect();
    args.extend(files.iter().map(String::as_str));
    let out = run(&args);
    assert!(out.status.success(), "{}", stderr(&out));
    let events = grep_count(&store, &[]);
    assert!(events > 8000, "{events}");
    (store, events)
}

fn grep_count(store: &str, conditions: &[&str]) -> u64 {
    let mut args = vec!["grep", "--count", "--storage-dir", store];
    args.extend_from_slice(conditions);
    let out = run(&args);
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("grep --count: {}", stderr(&out)))
}

/// (qname, qtype, rcode, type, requestor, message id) of every decodable event, as grep shows them.
fn grep_fields(store: &str) -> BTreeMap<String, u64> {
    let out = run(&["grep", "--ndjson", "--storage-dir", store]);
    assert!(out.status.success(), "{}", stderr(&out));
    let mut seen = BTreeMap::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let v: serde_json::Value = serde_json::from_str(line).expect("grep JSON");
        if v.get("undecodable").is_some() {
            continue;
        }
        let kind = match v["messageType"].as_str().unwrap_or("") {
            "DNSQueryType" => "query",
            "DNSResponseType" => "response",
            "DNSOutgoingQueryType" => "outgoing-query",
            "DNSIncomingResponseType" => "incoming-response",
            other => panic!("message type {other}"),
        };
        let rcode = if kind.ends_with("response") {
            v["rcode"].to_string()
        } else {
            "\\N".into()
        };
        let key = format!(
            "{}\t{}\t{}\t{}\t{}\t{}",
            v["question"].as_str().unwrap_or(""),
            v["qtype"].as_u64().unwrap_or(0),
            rcode,
            kind,
            v["requestor"].as_str().unwrap_or(""),
            v["qid"].as_str().unwrap_or("").replace('-', ""),
        );
        *seen.entry(key).or_insert(0) += 1;
    }
    seen
}

/// The same fields as ClickHouse holds them (legacy schema: addresses and ids as 16 bytes).
fn clickhouse_fields(ch: &ClickHouse, table: &str) -> BTreeMap<String, u64> {
    let text = ch.query(&format!(
        "SELECT qname, qtype, rcode, type, replaceOne(IPv6NumToString(requestor), '::ffff:', '') AS r, \
         lower(hex(message_id)) AS m, count() FROM {table} FINAL WHERE undecodable = 0 \
         GROUP BY qname, qtype, rcode, type, r, m FORMAT TSV"
    ));
    text.lines()
        .map(|l| {
            let (key, n) = l.rsplit_once('\t').expect("tab");
            // No address (an outgoing query's requestor) is `::` in ClickHouse, absent in JSON.
            (key.replace("\t::\t", "\t\t"), n.parse().expect("count"))
        })
        .collect()
}

/// `dstore export clickhouse -q --storage-dir STORE ARGS...`.
fn export(store: &str, args: &[&str]) -> std::process::Output {
    let mut all = vec!["export", "clickhouse", "-q", "--storage-dir", store];
    all.extend_from_slice(args);
    run(&all)
}

/// The same, with its summary on stderr.
fn export_loud(store: &str, args: &[&str]) -> std::process::Output {
    let mut all = vec!["export", "clickhouse", "--storage-dir", store];
    all.extend_from_slice(args);
    run(&all)
}

/// Asserts two tallies are equal, showing a few of the differences rather than both whole.
fn assert_same(clickhouse: &BTreeMap<String, u64>, grep: &BTreeMap<String, u64>) {
    let keys: std::collections::BTreeSet<&String> = clickhouse.keys().chain(grep.keys()).collect();
    let differ: Vec<String> = keys
        .into_iter()
        .filter(|k| clickhouse.get(*k) != grep.get(*k))
        .take(10)
        .map(|k| {
            format!(
                "{k}: clickhouse {:?}, grep {:?}",
                clickhouse.get(k),
                grep.get(k)
            )
        })
        .collect();
    assert!(
        differ.is_empty(),
        "{} vs {} distinct rows; first differences:\n{}",
        clickhouse.len(),
        grep.len(),
        differ.join("\n")
    );
}

#[test]
fn export_copies_the_store_field_for_field() {
    let s = Scratch::new("ch-export");
    let ch = ClickHouse::start(&s.path("ch"));
    let (store, events) = sample_store(&s);
    let url = ch.url();
    let out = export_loud(
        &store,
        &[
            "--url",
            &url,
            "--create",
            "--batch-rows",
            "2000",
            "--node",
            "edge1",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains(&format!("{events} rows")),
        "{}",
        stderr(&out)
    );
    assert_eq!(ch.number("SELECT count() FROM dns_events"), events);
    assert_eq!(
        ch.number("SELECT uniqExact(node, seq) FROM dns_events"),
        events
    );
    assert_eq!(
        ch.query("SELECT groupUniqArray(node) FROM dns_events"),
        "['edge1']"
    );
    // Undecodable frames are rows too, marked.
    assert_eq!(ch.number("SELECT sum(undecodable) FROM dns_events"), 1060);
    assert_same(&clickhouse_fields(&ch, "dns_events"), &grep_fields(&store));
    // Times to the microsecond, as grep has them.
    let first = run(&["grep", "--ndjson", "--limit", "1", "--storage-dir", &store]);
    let v: serde_json::Value = serde_json::from_slice(&first.stdout).expect("json");
    assert_eq!(
        ch.query("SELECT toUInt32(time), time_usec FROM dns_events ORDER BY time, time_usec LIMIT 1 FORMAT TSV"),
        format!("{}\t{}", v["timeSec"], v["timeUsec"])
    );
    // Answers, with A records as text.
    let answers = ch.number(
        "SELECT count() FROM dns_events WHERE has(answer_data, '192.0.2.1') AND undecodable = 0",
    );
    assert_eq!(answers, grep_count(&store, &["--answer", "192.0.2.1"]));

    // A filtered export into a second table: the same conditions as grep, the same count.
    let conditions = ["--type", "response", "--qtype", "A"];
    let mut args = vec![
        "export",
        "clickhouse",
        "--storage-dir",
        &store,
        "--url",
        &url,
        "--create",
        "--table",
        "default.a_responses",
        "-q",
    ];
    args.extend_from_slice(&conditions);
    let out = run(&args);
    assert!(out.status.success(), "{}", stderr(&out));
    let want = grep_count(&store, &conditions);
    assert!(want > 0);
    assert_eq!(ch.number("SELECT count() FROM a_responses"), want);

    // Exporting again duplicates nothing that FINAL does not fold.
    let out = export(&store, &["--url", &url, "--node", "edge1"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(ch.number("SELECT count() FROM dns_events"), 2 * events);
    assert_eq!(ch.number("SELECT count() FROM dns_events FINAL"), events);
}

#[test]
fn export_says_what_is_wrong() {
    let s = Scratch::new("ch-bad");
    let ch = ClickHouse::start(&s.path("ch"));
    let (store, _) = sample_store(&s);
    let closed = format!("http://127.0.0.1:{}", common::free_port());
    let cases: &[(&[&str], &str)] = &[
        (
            &["--url", "ftp://127.0.0.1"],
            "not an http:// or https:// URL",
        ),
        (
            &["--url", "https://127.0.0.1:1", "--ca-file", "/nonexistent"],
            "cannot read CA file",
        ),
        (
            &["--url", &ch.url(), "--table", "x;drop"],
            "not a table name",
        ),
        (&["--url", &ch.url(), "--schema", "newest"], "not a schema"),
        (&["--url", &ch.url(), "--batch-rows", "0"], "at least 1"),
        (&["--url", &closed], "cannot ask ClickHouse"),
        (
            &["--url", &ch.url(), "--table", "missing"],
            "create it with --create",
        ),
        (&["--url", &ch.url(), "--user", "shipper"], "shipper"),
        (&["--url", &ch.url(), "--qtype", "NOPE"], "--qtype"),
    ];
    for (extra, says) in cases {
        let mut args = vec!["export", "clickhouse", "-q", "--storage-dir", &store];
        args.extend_from_slice(extra);
        let out = run(&args);
        assert_eq!(out.status.code(), Some(2), "{extra:?}: {}", stderr(&out));
        assert!(stderr(&out).contains(says), "{extra:?}: {}", stderr(&out));
        assert!(!stderr(&out).contains("panicked"), "{}", stderr(&out));
    }
    // The right password works.
    let pw = s.path("pw");
    std::fs::write(&pw, "s3cret\n").expect("write");
    let out = export(
        &store,
        &[
            "--url",
            &ch.url(),
            "--user",
            "shipper",
            "--password-file",
            pw.to_str().expect("utf-8"),
            "--create",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
}

#[test]
fn export_over_tls_checks_the_certificate() {
    let s = Scratch::new("ch-tls");
    let ch = ClickHouse::start_with(&s.path("ch"), true);
    let (store, events) = sample_store(&s);
    let url = format!("https://127.0.0.1:{}", ch.https_port.expect("https"));
    let ca = s.path("ch/ca.pem").display().to_string();
    let out = export(&store, &["--url", &url, "--ca-file", &ca, "--create"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(ch.number("SELECT count() FROM dns_events"), events);
    // The server's certificate is checked: not signed by a public CA, so refused without --ca-file.
    let out = export(&store, &["--url", &url]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("UnknownIssuer"), "{}", stderr(&out));
    // A CA file that is not one.
    let out = export(&store, &["--url", &url, "--ca-file", &store]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("--ca-file"), "{}", stderr(&out));
    assert_eq!(ch.number("SELECT count() FROM dns_events"), events);
}

/// A dstore daemon started by a test: its stderr goes to a file (never a pipe nobody reads), and it
/// is killed (by its PID) if the test ends before stopping it.
struct Daemon {
    child: Option<Child>,
    log: PathBuf,
}

impl Daemon {
    fn spawn(mut cmd: Command, log: PathBuf) -> Daemon {
        let file = std::fs::File::create(&log).expect("daemon log file");
        let child = cmd.stderr(file).spawn().expect("start a dstore daemon");
        Daemon {
            child: Some(child),
            log,
        }
    }

    fn running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// SIGKILL, as a crash.
    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM, as systemd stops it; waits (bounded) and returns its log. It must exit 0.
    fn stop(mut self) -> String {
        let mut child = self.child.take().expect("running");
        // Only a child not yet reaped is signalled: its PID cannot belong to another process.
        let mut status = child.try_wait().expect("daemon status");
        if status.is_none() {
            let _ = Command::new("kill").arg(child.id().to_string()).status();
        }
        let started = Instant::now();
        while status.is_none() && started.elapsed() < Duration::from_secs(30) {
            status = child.try_wait().expect("daemon status");
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let status = status.unwrap_or_else(|| child.wait().expect("daemon status"));
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        assert!(status.success(), "exited with {status:?}: {log}");
        log
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Starts `dstore ship` in the background, its log in `position`.log.
fn ship(store: &str, url: &str, position: &Path, extra: &[&str]) -> Daemon {
    let mut cmd = dstore();
    cmd.args([
        "ship",
        "--storage-dir",
        store,
        "--url",
        url,
        "--create",
        "--batch-rows",
        "500",
        "--flush-interval",
        "200ms",
        "--node",
        "edge1",
        "--position-file",
    ])
    .arg(position)
    .args(extra);
    Daemon::spawn(cmd, position.with_extension("log"))
}

fn import(store: &str, file: &Path) {
    let out = run(&[
        "import",
        "-q",
        "--storage-dir",
        store,
        file.to_str().expect("utf-8"),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
}

/// Polls `f` until it is true, for at most `limit`.
fn wait_for(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let started = Instant::now();
    while started.elapsed() < limit {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    false
}

#[test]
fn ship_follows_the_store_through_outages_and_crashes() {
    let mut rng = common::Rng::from_clock("kill moments");
    let s = Scratch::new("ch-ship");
    let mut ch = ClickHouse::start(&s.path("ch"));
    let store = s.path("store").display().to_string();
    let position = s.path("ship.position");
    let small = sample("recursor-live-small.pb");
    let big = sample("dnsdist-live-same-traffic.pb");
    import(&store, &small);

    // Follows the store as it grows.
    let shipper = ship(&store, &ch.url(), &position, &[]);
    let shipped = |ch: &ClickHouse, n: u64| {
        wait_for(Duration::from_secs(60), || {
            ch.try_query("SELECT uniqExact(seq) FROM dns_events")
                .is_ok_and(|t| t.trim() == n.to_string())
        })
    };
    let first = grep_count(&store, &[]);
    if !shipped(&ch, first) {
        panic!("the first import was not shipped: {}", shipper.stop());
    }
    import(&store, &big);
    let second = grep_count(&store, &[]);
    assert!(second > first);
    assert!(shipped(&ch, second), "the second import was not shipped");

    // ClickHouse killed while ship sends a backlog (batches of 500 rows), more events arriving
    // while it is down; then it comes back.
    import(&store, &big);
    import(&store, &small);
    std::thread::sleep(Duration::from_millis(100 + rng.below(400)));
    ch.kill();
    import(&store, &small);
    import(&store, &big);
    std::thread::sleep(Duration::from_secs(2));
    ch.spawn();
    let third = grep_count(&store, &[]);
    assert!(
        shipped(&ch, third),
        "not caught up after ClickHouse came back"
    );
    let log = shipper.stop();
    assert!(log.contains("trying again"), "{log}");

    // The shipper killed at random moments while it ships, then restarted each time.
    for i in 0..5u64 {
        import(&store, if i % 2 == 0 { &big } else { &small });
        let mut child = ship(&store, &ch.url(), &position, &[]);
        std::thread::sleep(Duration::from_millis(50 + rng.below(400)));
        child.kill();
    }
    // The last one ships what is left and stops by itself, within a bounded time.
    let mut last = ship(&store, &ch.url(), &position, &["--until-caught-up"]);
    assert!(
        wait_for(Duration::from_secs(120), || !last.running()),
        "ship --until-caught-up did not finish"
    );
    last.stop(); // it has exited: stop only checks that it exited 0

    // Every event once, and nothing else: duplicates (a batch sent again after a kill) fold.
    let events = grep_count(&store, &[]);
    assert_eq!(
        ch.number("SELECT uniqExact(node, seq) FROM dns_events"),
        events
    );
    assert_eq!(ch.number("SELECT count() FROM dns_events FINAL"), events);
    assert_same(&clickhouse_fields(&ch, "dns_events"), &grep_fields(&store));
}

/// ship behind a running ingest: blocks are read from the segment ingest is still writing.
#[test]
fn ship_follows_a_running_ingest() {
    let s = Scratch::new("ch-live");
    let ch = ClickHouse::start(&s.path("ch"));
    let store = s.path("store").display().to_string();
    let listen = format!("127.0.0.1:{}", common::free_port());
    let mut cmd = dstore();
    cmd.args(["ingest", "--storage-dir", &store, "--listen", &listen])
        .args(["--flush-interval", "200ms", "--status-interval", "0"]);
    let mut ingest = Daemon::spawn(cmd, s.path("ingest.log"));
    let mut producer = None;
    assert!(wait_for(Duration::from_secs(20), || {
        producer = std::net::TcpStream::connect(&listen).ok();
        producer.is_some()
    }));
    let mut producer = producer.expect("connected");
    let position = s.path("ship.position");
    let metrics = format!("127.0.0.1:{}", common::free_port());
    let shipper = ship(
        &store,
        &ch.url(),
        &position,
        &["--metrics-listen", &metrics],
    );
    let mut sent = 0;
    for name in ["recursor-live-small.pb", "dnsdist-live-same-traffic.pb"] {
        let bytes = std::fs::read(sample(name)).expect("sample");
        sent += common::frames_of(&bytes).len() as u64;
        std::io::Write::write_all(&mut producer, &bytes).expect("send to ingest");
        let shipped = wait_for(Duration::from_secs(60), || {
            ch.try_query("SELECT uniqExact(seq) FROM dns_events")
                .is_ok_and(|t| t.trim() == sent.to_string())
        });
        assert!(shipped, "{name}: not shipped while ingest runs");
    }
    // A second shipper on the same position file is refused while the first runs.
    let second = dstore()
        .args([
            "ship",
            "--storage-dir",
            &store,
            "--url",
            &ch.url(),
            "--position-file",
        ])
        .arg(&position)
        .output()
        .expect("a second ship");
    assert_eq!(second.status.code(), Some(2), "{}", stderr(&second));
    assert!(
        stderr(&second).contains("another dstore ship"),
        "{}",
        stderr(&second)
    );
    // Ingest ran all along: ship read the segment it was writing (sealed only when it stops).
    assert!(ingest.running());
    // Its metrics say so too: every row shipped, nothing behind.
    let metric = |name: &str| -> Option<f64> {
        let mut conn = std::net::TcpStream::connect(&metrics).ok()?;
        conn.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
        std::io::Write::write_all(&mut conn, b"GET /metrics HTTP/1.0\r\n\r\n").ok()?;
        let mut text = String::new();
        std::io::Read::read_to_string(&mut conn, &mut text).ok()?;
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
    };
    assert!(wait_for(Duration::from_secs(10), || {
        metric("dstore_ship_rows_total") == Some(sent as f64)
            && metric("dstore_ship_lag_bytes") == Some(0.0)
    }));
    assert_eq!(metric("dstore_ship_failures_total"), Some(0.0));
    drop(producer);
    ingest.stop();
    shipper.stop();
    assert_eq!(grep_count(&store, &[]), sent);
    assert_eq!(ch.number("SELECT count() FROM dns_events FINAL"), sent);
    assert_same(&clickhouse_fields(&ch, "dns_events"), &grep_fields(&store));
}

#[test]
fn ship_refuses_a_damaged_position_file() {
    let s = Scratch::new("ch-pos");
    let store = s.path("store").display().to_string();
    import(&store, &sample("recursor-live-small.pb"));
    let position = s.path("ship.position");
    std::fs::write(&position, "segment twelve\n").expect("write");
    let out = dstore()
        .args([
            "ship",
            "--storage-dir",
            &store,
            "--url",
            "http://127.0.0.1:1",
            "--schema",
            "legacy",
        ])
        .arg("--position-file")
        .arg(&position)
        .output()
        .expect("ship");
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("not a position file"),
        "{}",
        stderr(&out)
    );
    // Options are checked before anything is tried, not retried like an absent server.
    for (args, says) in [
        (&["--schema", "legacy"][..], "--url is required"),
        (
            &["--url", "http://127.0.0.1:1", "--table", "a-b"],
            "not a table name",
        ),
        (
            &["--url", "http://127.0.0.1:1", "--flush-interval", "soon"],
            "--flush-interval",
        ),
    ] {
        let out = dstore()
            .args(["ship", "--storage-dir", &store])
            .args(args)
            .output()
            .expect("ship");
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert!(stderr(&out).contains(says), "{args:?}: {}", stderr(&out));
    }
}

/// The modern schema, and the very batches export sends, in a current ClickHouse (chdb).
#[test]
fn modern_batches_load_into_current_clickhouse() {
    let s = Scratch::new("ch-modern");
    let (store, events) = sample_store(&s);
    let out_dir = s.path("batches");
    let out = export(
        &store,
        &[
            "--schema",
            "modern",
            "--out",
            out_dir.to_str().expect("utf-8"),
            "--batch-rows",
            "3000",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let loader = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/chdb_load.py");
    let out = Command::new("python3")
        .arg(&loader)
        .arg(&out_dir)
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "tests/chdb_load.py (needs `pip install chdb`; scripts/test.sh installs it): {}",
        stderr(&out)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let got: BTreeMap<&str, &str> = text.lines().filter_map(|l| l.split_once('=')).collect();
    assert_eq!(got["rows"], events.to_string(), "{text}");
    assert_eq!(got["undecodable"], "1060", "{text}");
    assert!(
        got["version"].starts_with(|c: char| c.is_ascii_digit()),
        "{text}"
    );
    // UUIDs, IPv6 and microsecond times read back as grep shows them.
    let first = run(&[
        "grep",
        "--ndjson",
        "--limit",
        "1",
        "--type",
        "response",
        "--storage-dir",
        &store,
    ]);
    let v: serde_json::Value = serde_json::from_slice(&first.stdout).expect("json");
    assert_eq!(
        got["first_response_id"],
        v["qid"].as_str().expect("qid"),
        "{text}"
    );
    assert_eq!(
        got["first_response_requestor"],
        format!("::ffff:{}", v["requestor"].as_str().expect("requestor")),
        "{text}"
    );
    assert_eq!(
        got["first_response_time"],
        format!(
            "{}.{:06}",
            v["timeSec"],
            v["timeUsec"].as_u64().expect("usec")
        ),
        "{text}"
    );
    assert_eq!(
        got["responses_a"],
        grep_count(&store, &["--type", "response", "--qtype", "A"]).to_string()
    );
    assert!(got["ttl"].contains("TTL"), "{text}");
}
