//! `dstore pb2json` and `dnspb2json` as users run them, on the real captures in ../shared/samples
//! (see its README.md for what each holds).

use prost::Message as _;
use serde_json::{Map, Value};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

fn sample(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/samples")
        .join(name)
}

fn dstore() -> Command {
    Command::new(env!("CARGO_BIN_EXE_dstore"))
}

fn run(mut cmd: Command) -> Output {
    cmd.output().expect("the dstore binary runs")
}

/// Runs with `input` on standard input, fed from another thread so that a full stdout pipe
/// cannot deadlock the two processes.
fn run_with_stdin(mut cmd: Command, input: Vec<u8>) -> Output {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the dstore binary runs");
    let stdin = child.stdin.take();
    let feeder = std::thread::spawn(move || {
        if let Some(mut stdin) = stdin {
            let _ = stdin.write_all(&input);
        }
    });
    let out = child
        .wait_with_output()
        .expect("the dstore binary finishes");
    feeder.join().expect("the stdin feeder does not panic");
    out
}

fn json_lines(out: &Output) -> Vec<Map<String, Value>> {
    let text = std::str::from_utf8(&out.stdout).expect("pb2json prints UTF-8");
    text.lines()
        .map(|line| match serde_json::from_str::<Value>(line) {
            Ok(Value::Object(obj)) => obj,
            other => panic!("not a JSON object on a line: {line}: {other:?}"),
        })
        .collect()
}

fn pb2json(file: &str) -> Vec<Map<String, Value>> {
    let mut cmd = dstore();
    cmd.arg("pb2json").arg(sample(file));
    let out = run(cmd);
    assert!(out.status.success(), "{out:?}");
    json_lines(&out)
}

/// The frames of a 2-byte length-prefixed stream, read here independently of the crate's reader.
fn frames(file: &str) -> Vec<Vec<u8>> {
    let bytes = std::fs::read(sample(file)).expect("sample is readable");
    let mut rest = bytes.as_slice();
    let mut out = Vec::new();
    while let [hi, lo, tail @ ..] = rest {
        let len = usize::from(*hi) << 8 | usize::from(*lo);
        let (frame, after) = tail
            .split_at_checked(len)
            .expect("the sample has no partial frame");
        out.push(frame.to_vec());
        rest = after;
    }
    out
}

/// A directory of its own under the system temp dir, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> TempDir {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or_default();
        let dir = std::env::temp_dir().join(format!(
            "dstore-pb2json-test-{}-{nanos}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir(&dir).expect("can create a temp dir");
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn recursor_small_gives_one_line_a_frame_each_with_a_message_type() {
    let lines = pb2json("recursor-live-small.pb");
    assert_eq!(lines.len(), 22);
    for obj in &lines {
        let t = obj
            .get("messageType")
            .and_then(Value::as_str)
            .unwrap_or_default();
        assert!(t.starts_with("DNS"), "{obj:?}");
    }
}

#[test]
fn dnsdist_live_has_as_many_responses_as_queries() {
    let lines = pb2json("dnsdist-live-same-traffic.pb");
    assert_eq!(lines.len(), 2124);
    let responses = lines.iter().filter(|o| o["qr"] == true).count();
    assert_eq!(responses, 1062);
}

#[test]
fn malformed_dnspcap2protobuf_responses_still_show_what_can_be_read() {
    let lines = pb2json("dnsdist-5300.pb");
    assert_eq!(lines.len(), 2120);
    let broken: Vec<_> = lines
        .iter()
        .filter(|o| o.get("undecodable") == Some(&Value::Bool(true)))
        .collect();
    assert_eq!(broken.len(), 1060);
    for obj in broken {
        assert_eq!(obj["messageType"], "DNSResponseType", "{obj:?}");
        assert_eq!(obj["qr"], true);
        assert_ne!(obj["question"], "", "{obj:?}");
        assert_ne!(obj["requestor"], "", "{obj:?}");
        assert_ne!(obj["timeSec"], 0, "{obj:?}");
        let error = obj["error"].as_str().unwrap_or_default();
        assert!(error.contains("field number 0"), "{error}");
    }
}

#[test]
fn question_type_and_rcode_agree_with_prost_on_every_frame() {
    let frames = frames("dnsdist-5300.fixed.pb");
    let lines = pb2json("dnsdist-5300.fixed.pb");
    assert_eq!(lines.len(), frames.len());
    assert_eq!(frames.len(), 2120);
    for (frame, obj) in frames.iter().zip(&lines) {
        let msg = dstore::pb::Message::decode(frame.as_slice()).expect("the fixed file decodes");
        let q = msg.question.clone().unwrap_or_default();
        assert_eq!(obj["question"], q.q_name.unwrap_or_default());
        assert_eq!(obj["qtype"], q.q_type.expect("every frame has a qtype"));
        assert_eq!(
            obj["type"],
            dstore::dns::qtype_name(q.q_type.unwrap_or_default()).as_ref()
        );
        assert_eq!(
            obj["rcode"],
            msg.response.and_then(|r| r.rcode).unwrap_or(0)
        );
        assert!(obj.get("undecodable").is_none());
    }
}

#[test]
fn the_first_frames_of_recursor_small_match_the_golden_file() {
    let mut cmd = dstore();
    cmd.arg("pb2json").arg(sample("recursor-live-small.pb"));
    let out = run(cmd);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).expect("UTF-8");
    let head: String = text.split_inclusive('\n').take(3).collect();
    let golden_path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/recursor-live-small.head.ndjson");
    let golden = std::fs::read_to_string(&golden_path).expect("golden file is readable");
    assert_eq!(head, golden);
}

#[test]
fn runs_as_dnspb2json_with_dash_l() {
    let dir = TempDir::new();
    let link = dir.0.join("dnspb2json");
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_dstore"), &link).expect("can create a symlink");
    let mut cmd = Command::new(&link);
    cmd.arg("-L").arg(sample("recursor-live-small.pb"));
    let out = run(cmd);
    assert!(out.status.success(), "{out:?}");
    let lines = json_lines(&out);
    assert_eq!(lines.len(), 22);
    assert_eq!(lines, pb2json("recursor-live-small.pb"));
}

#[test]
fn a_stream_cut_inside_its_last_frame_prints_the_rest_and_exits_zero() {
    let mut bytes = std::fs::read(sample("recursor-live-small.pb")).expect("sample is readable");
    bytes.truncate(bytes.len() - 3);
    let mut cmd = dstore();
    cmd.arg("pb2json");
    let out = run_with_stdin(cmd, bytes);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(json_lines(&out).len(), 21);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("partial") || stderr.contains("truncated"),
        "{stderr}"
    );
}

#[test]
fn several_files_and_dash_for_stdin_are_read_in_order() {
    let mut cmd = dstore();
    cmd.arg("pb2json")
        .arg(sample("recursor-live-small.pb"))
        .arg("-");
    let bytes = std::fs::read(sample("dnsdist-5300.fixed.pb")).expect("sample is readable");
    let out = run_with_stdin(cmd, bytes);
    assert!(out.status.success());
    let lines = json_lines(&out);
    assert_eq!(lines.len(), 22 + 2120);
    assert_eq!(lines[22], pb2json("dnsdist-5300.fixed.pb")[0]);
}

#[test]
fn a_missing_file_is_an_error_that_names_it() {
    let mut cmd = dstore();
    cmd.arg("pb2json").arg("/nonexistent/dstore-test.pb");
    let out = run(cmd);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("cannot read /nonexistent/dstore-test.pb"),
        "{stderr}"
    );
}

#[test]
fn pretty_output_holds_the_same_objects() {
    let mut cmd = dstore();
    cmd.arg("pb2json")
        .arg("--pretty")
        .arg(sample("recursor-live-small.pb"));
    let out = run(cmd);
    assert!(out.status.success());
    let objects: Vec<Value> = serde_json::Deserializer::from_slice(&out.stdout)
        .into_iter()
        .collect::<Result<_, _>>()
        .expect("a sequence of JSON values");
    let lines: Vec<Value> = pb2json("recursor-live-small.pb")
        .into_iter()
        .map(Value::Object)
        .collect();
    assert_eq!(objects, lines);
}

#[test]
fn a_reader_that_goes_away_is_not_an_error() {
    use std::io::{BufRead, BufReader};
    let mut child = dstore()
        .arg("pb2json")
        .arg(sample("recursor-live-with-outgoing.pb"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the dstore binary runs");
    if let Some(stdout) = child.stdout.take() {
        let mut first = String::new();
        BufReader::new(stdout)
            .read_line(&mut first)
            .expect("one line");
        assert!(first.starts_with("{\"answer\""), "{first}");
        // Dropping the reader closes the pipe, as `| head -1` does.
    }
    let out = child
        .wait_with_output()
        .expect("the dstore binary finishes");
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(String::from_utf8_lossy(&out.stderr), "");
}
