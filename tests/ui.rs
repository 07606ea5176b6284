//! The web UI in a real browser: starts `dstore gateway` on a store imported from the samples and
//! runs the browser tests (tests/browser, Node's test runner driving Debian's chromium through
//! playwright-core) against it. scripts/test.sh installs chromium and the npm packages.

mod common;

use common::*;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Gateway(Child);

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn the_web_ui_searches_shows_and_links_in_chromium() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    assert!(
        root.join("tests/browser/node_modules/playwright-core")
            .is_dir(),
        "playwright-core is not installed: run scripts/test.sh (or `npm ci` in tests/browser)"
    );
    let dir = Scratch::new("ui");
    let store = dir.path("store");
    for name in ["recursor-live-with-outgoing.pb", "dnsdist-5300.fixed.pb"] {
        let o = run(&[
            "import",
            "-q",
            "--storage-dir",
            store.to_str().unwrap(),
            sample(name).to_str().unwrap(),
        ]);
        assert!(o.status.success(), "{}", stderr(&o));
    }
    // A free port, then the gateway on it; its start-up line says it is serving.
    let port = free_port();
    let mut child = dstore()
        .args([
            "gateway",
            "--storage-dir",
            store.to_str().unwrap(),
            "--listen",
            &format!("127.0.0.1:{port}"),
        ])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr_pipe = child.stderr.take().unwrap();
    let gateway = Gateway(child);
    let mut lines = BufReader::new(stderr_pipe).lines();
    let started = Instant::now();
    loop {
        let line = lines
            .next()
            .expect("the gateway ended before serving")
            .unwrap();
        if line.contains("serving") {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the gateway did not start"
        );
    }
    let expect =
        r#"{"name":"h148.example.test.","count":6,"qid":"890feb8a-dca0-4e1d-96a0-61a9c360fd4f"}"#;
    let out = Command::new("node")
        .args(["--test", "tests/browser/ui.test.mjs"])
        .current_dir(root)
        .env("DSTORE_GATEWAY_URL", format!("http://127.0.0.1:{port}"))
        .env("DSTORE_UI_EXPECT", expect)
        .output()
        .expect("node is needed for the browser tests");
    drop(gateway);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "browser tests failed:\n{text}");
    assert!(text.contains("# fail 0"), "{text}");
}
