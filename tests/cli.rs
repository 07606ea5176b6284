//! The executable as users meet it: multicall names, help and version, the storage directory's
//! sources, time selection, pipes, and one clear line with exit 2 for every bad flag.

mod common;

use common::*;
use std::io::{Read, Write};
use std::process::Stdio;

fn imported(tag: &str, sample_name: &str) -> Scratch {
    let dir = Scratch::new(tag);
    let o = run(&[
        "import",
        "-q",
        "--storage-dir",
        dir.path("store").to_str().unwrap(),
        sample(sample_name).to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    dir
}

#[test]
fn every_1x_name_runs_its_applet_through_a_symlink() {
    let dir = Scratch::new("links");
    let o = run(&["links", dir.0.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    // Each name runs its own applet: its help shows an option only that applet has.
    for (alias, option) in [
        ("tcpdistro", "--listen-frame4"),
        ("dgrep", "--qname-regex"),
        ("dcat", "--raw"),
        ("dnspb2json", "--pretty"),
        ("egateway", "--token-file"),
    ] {
        let link = dir.path(alias);
        assert!(
            link.symlink_metadata().unwrap().file_type().is_symlink(),
            "{alias}"
        );
        let o = std::process::Command::new(&link)
            .arg("--help")
            .output()
            .unwrap();
        assert!(o.status.success(), "{alias} --help: {}", stderr(&o));
        let help = String::from_utf8_lossy(&o.stdout);
        assert!(
            help.contains("Usage:") && help.contains(alias) && help.contains(option),
            "{alias} --help says:\n{help}"
        );
        let o = std::process::Command::new(&link)
            .arg("--version")
            .output()
            .unwrap();
        assert!(o.status.success());
        assert!(String::from_utf8_lossy(&o.stdout).contains(env!("CARGO_PKG_VERSION")));
    }
    // Existing files are not replaced without --force.
    assert!(!run(&["links", dir.0.to_str().unwrap()]).status.success());
    assert!(run(&["links", "--force", dir.0.to_str().unwrap()])
        .status
        .success());
}

#[test]
fn dcat_through_a_symlink_reads_the_store() {
    let store = imported("dcat", "recursor-live-small.pb");
    let bin = Scratch::new("dcatbin");
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_dstore"), bin.path("dcat")).unwrap();
    let o = std::process::Command::new(bin.path("dcat"))
        .args([
            "--raw",
            "-q",
            "--storage-dir",
            store.path("store").to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        o.stdout,
        std::fs::read(sample("recursor-live-small.pb")).unwrap()
    );
}

#[test]
fn list_help_and_version() {
    let o = run(&["--list"]);
    assert!(o.status.success());
    let list = String::from_utf8(o.stdout).unwrap();
    for name in [
        "ingest (also tcpdistro)",
        "import",
        "cat (also dcat)",
        "pb2json (also dnspb2json)",
        "grep (also dgrep)",
        "rotate",
        "compact",
        "stats",
        "gateway (also egateway)",
        "links",
    ] {
        assert!(
            list.lines().any(|l| l == name),
            "--list lacks {name}:\n{list}"
        );
    }
    let o = run(&["--version"]);
    assert!(o.status.success());
    assert_eq!(
        String::from_utf8(o.stdout).unwrap().trim(),
        format!("dstore {}", env!("CARGO_PKG_VERSION"))
    );
    for applet in ["import", "cat", "pb2json", "links", "compact"] {
        let o = run(&[applet, "--help"]);
        assert!(o.status.success(), "{applet} --help");
        assert!(
            String::from_utf8_lossy(&o.stdout).contains(&format!("dstore {applet}")),
            "{applet}"
        );
    }
}

#[test]
fn bad_words_get_one_clear_line_and_exit_2() {
    let cases: &[&[&str]] = &[
        &["banana"],
        &["cat", "--frobnicate"],
        &[
            "cat",
            "--storage-dir",
            "/nonexistent",
            "--from",
            "yesterday-ish",
        ],
        &[
            "cat",
            "--storage-dir",
            "/nonexistent",
            "--from",
            "2026-01-02",
            "--to",
            "2026-01-01",
        ],
        &["cat", "--frame4"],
        &[
            "import",
            "--storage-dir",
            "/nonexistent/x",
            "/nonexistent/input.pb",
        ],
        &["cat", "--storage-dir", "/nonexistent"],
    ];
    for args in cases {
        let o = run(args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
        let err = stderr(&o);
        assert!(
            !err.contains("panicked") && !err.contains("RUST_BACKTRACE"),
            "{args:?}: {err}"
        );
        assert!(err.to_lowercase().contains("error"), "{args:?}: {err}");
        // Each cause is said once, not once by its wrapper and again by itself.
        for line in err.lines() {
            let parts: Vec<&str> = line.split(": ").collect();
            let distinct: std::collections::BTreeSet<&str> = parts.iter().copied().collect();
            assert_eq!(
                distinct.len(),
                parts.len(),
                "{args:?}: a cause said twice: {line}"
            );
        }
    }
}

#[test]
fn the_storage_dir_comes_from_the_flag_then_the_environment_then_the_config_file() {
    let store = imported("sources", "recursor-live-small.pb");
    let dir = store.path("store");
    let count = |o: std::process::Output| {
        assert!(o.status.success(), "{}", stderr(&o));
        String::from_utf8(o.stdout).unwrap().lines().count()
    };
    assert_eq!(
        count(
            dstore()
                .args(["cat", "-q"])
                .env("DSTORE_STORAGE_DIR", &dir)
                .output()
                .unwrap()
        ),
        22
    );
    let conf = store.path("dstore.conf");
    std::fs::write(
        &conf,
        format!(
            "# 1.x style\nstorage-dir = {}\nhash-split = 1024\nfuture-key = 1\n",
            dir.display()
        ),
    )
    .unwrap();
    let o = dstore()
        .args(["cat", "-q"])
        .env("DSTORE_CONFIG", &conf)
        .output()
        .unwrap();
    assert!(
        stderr(&o).contains("unknown setting `future-key`"),
        "{}",
        stderr(&o)
    );
    assert_eq!(count(o), 22);
    // The flag wins over both.
    let o = dstore()
        .args(["cat", "-q", "--storage-dir", "/nonexistent"])
        .env("DSTORE_STORAGE_DIR", &dir)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn from_and_to_select_by_event_time() {
    let store = imported("times", "dnsdist-live-same-traffic.pb");
    let d = store.path("store");
    let all = run(&["cat", "-q", "--storage-dir", d.to_str().unwrap()]);
    let lines: Vec<serde_json::Value> = String::from_utf8(all.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let time = |v: &serde_json::Value| {
        v["timeSec"].as_u64().unwrap() * 1_000_000 + v["timeUsec"].as_u64().unwrap()
    };
    let mut times: Vec<u64> = lines.iter().map(time).collect();
    times.sort();
    let (from, to) = (times[300], times[1500]);
    let fmt = |t: u64| format!("{}.{:06}", t / 1_000_000, t % 1_000_000);
    let o = run(&[
        "cat",
        "-q",
        "--storage-dir",
        d.to_str().unwrap(),
        "--from",
        &fmt(from),
        "--to",
        &fmt(to),
    ]);
    assert!(o.status.success());
    let got: Vec<u64> = String::from_utf8(o.stdout)
        .unwrap()
        .lines()
        .map(|l| time(&serde_json::from_str(l).unwrap()))
        .collect();
    let want = times.iter().filter(|&&t| from <= t && t < to).count();
    assert_eq!(got.len(), want);
    assert!(got.iter().all(|&t| from <= t && t < to));
}

#[test]
fn cat_raw_pipes_into_pb2json_and_import() {
    let store = imported("pipe", "recursor-live-with-outgoing.pb");
    let raw = run(&[
        "cat",
        "--raw",
        "-q",
        "--storage-dir",
        store.path("store").to_str().unwrap(),
    ]);
    let mut child = dstore()
        .arg("pb2json")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let input = raw.stdout.clone();
    let feeder = std::thread::spawn(move || stdin.write_all(&input));
    let mut out = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    feeder.join().unwrap().unwrap();
    assert!(child.wait().unwrap().success());
    assert_eq!(out.lines().count(), 2402);

    // And back into a second store from standard input, unchanged.
    let mut child = dstore()
        .args([
            "import",
            "-q",
            "--storage-dir",
            store.path("again").to_str().unwrap(),
            "-",
        ])
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(&raw.stdout).unwrap();
    assert!(child.wait().unwrap().success());
    let again = run(&[
        "cat",
        "--raw",
        "-q",
        "--storage-dir",
        store.path("again").to_str().unwrap(),
    ]);
    assert!(again.stdout == raw.stdout);
}

#[test]
fn a_closed_pipe_ends_cat_quietly_with_exit_0() {
    let store = imported("epipe", "dnsdist-live-same-traffic.pb");
    let mut child = dstore()
        .args([
            "cat",
            "-q",
            "--storage-dir",
            store.path("store").to_str().unwrap(),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = [0u8; 10];
    child
        .stdout
        .as_mut()
        .unwrap()
        .read_exact(&mut first)
        .unwrap();
    drop(child.stdout.take());
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(o.stderr.is_empty(), "{}", stderr(&o));
}

#[test]
fn import_reports_a_partial_last_frame_and_keeps_the_rest() {
    let dir = Scratch::new("partial");
    let mut bytes = std::fs::read(sample("recursor-live-small.pb")).unwrap();
    bytes.truncate(bytes.len() - 3);
    std::fs::write(dir.path("cut.pb"), &bytes).unwrap();
    let o = run(&[
        "import",
        "--storage-dir",
        dir.path("store").to_str().unwrap(),
        dir.path("cut.pb").to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("partial frame was dropped"),
        "{}",
        stderr(&o)
    );
    assert!(stderr(&o).contains("imported 21 events"), "{}", stderr(&o));
}

/// Output that cannot be written (a full disk, here /dev/full) is one clear error and exit 2, from
/// every command that prints; a closed pipe, by contrast, ends them quietly.
#[test]
fn output_to_a_full_disk_is_one_clear_error() {
    let store = imported("full", "recursor-live-small.pb");
    let dir = store.path("store");
    let dir = dir.to_str().unwrap();
    let links = store.path("links");
    std::fs::create_dir(&links).unwrap();
    let input = sample("recursor-live-small.pb");
    let cases: &[&[&str]] = &[
        &["--list"],
        &["cat", "-q", "--storage-dir", dir],
        &["cat", "-q", "--raw", "--storage-dir", dir],
        &["pb2json", input.to_str().unwrap()],
        &["stats", "--storage-dir", dir],
        &["stats", "--json", "--storage-dir", dir],
        &["grep", "--storage-dir", dir],
        &["links", "--force", links.to_str().unwrap()],
    ];
    for args in cases {
        let full = std::fs::OpenOptions::new()
            .write(true)
            .open("/dev/full")
            .expect("/dev/full, which Linux always has");
        let o = dstore().args(*args).stdout(full).output().unwrap();
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {err}");
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
        assert!(
            err.contains("cannot write") && err.matches("No space left on device").count() == 1,
            "{args:?}: {err}"
        );
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let o = dstore().args(*args).stdout(writer).output().unwrap();
        assert!(
            o.status.success() && o.stderr.is_empty(),
            "{args:?} into a closed pipe: {}, {}",
            o.status,
            stderr(&o)
        );
    }
    // The links were all made, whatever became of the list of them: one for each alias.
    let list = run(&["--list"]);
    let aliases = String::from_utf8_lossy(&list.stdout)
        .matches("(also ")
        .count();
    assert!(aliases > 0);
    assert_eq!(std::fs::read_dir(&links).unwrap().count(), aliases);
}
