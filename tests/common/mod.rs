//! Helpers shared by the integration tests: sample streams, scratch directories, the binary.

#![allow(dead_code)]

pub mod synthetic;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

/// The captured streams in ../shared/samples, the malformed dnspcap2protobuf one among them.
pub const SAMPLES: &[&str] = &[
    "dnsdist-5300.pb",
    "dnsdist-5300.fixed.pb",
    "dnsdist-live-same-traffic.pb",
    "recursor-live-small.pb",
    "recursor-live-with-outgoing.pb",
];

pub fn samples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/samples")
}

pub fn sample(name: &str) -> PathBuf {
    samples().join(name)
}

/// The frames of a length-prefixed stream, 2-byte prefixes.
pub fn frames_of(bytes: &[u8]) -> Vec<Vec<u8>> {
    let mut reader = dstore::frame::FrameReader::new(bytes, dstore::frame::FrameWidth::Two);
    let mut out = Vec::new();
    while let Some(f) = reader.next_frame().expect("reading memory") {
        out.push(f.to_vec());
    }
    out
}

/// A fresh directory under the system temp dir, removed when dropped.
pub struct Scratch(pub PathBuf);

impl Scratch {
    pub fn new(tag: &str) -> Scratch {
        static N: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "dstore-test-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create scratch dir");
        Scratch(dir)
    }
    pub fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub fn dstore() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_dstore"));
    c.env_remove("DSTORE_STORAGE_DIR")
        .env("DSTORE_CONFIG", "/nonexistent/dstore.conf");
    c.stdin(Stdio::null());
    c
}

/// Runs dstore with `args`, returning its output.
pub fn run(args: &[&str]) -> Output {
    dstore().args(args).output().expect("run dstore")
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A TCP port on 127.0.0.1 that was free a moment ago.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind 127.0.0.1:0")
        .port()
}

/// xorshift64*: reproducible bytes and choices without a dependency.
pub struct Rng(pub u64);

impl Rng {
    /// Seeded from the clock, the seed printed so that a failure can be replayed.
    pub fn from_clock(what: &str) -> Rng {
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_micros() as u64)
            | 1;
        eprintln!("{what}: seed {seed}");
        Rng(seed)
    }
    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    /// A number in `lo..=hi`.
    pub fn between(&mut self, lo: usize, hi: usize) -> usize {
        lo + (self.next() % (hi - lo + 1) as u64) as usize
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| (self.next() >> 32) as u8).collect()
    }
}

/// What a reader learns of one stored event.
#[derive(Debug, PartialEq, Eq)]
pub struct Read {
    pub frame: Vec<u8>,
    pub time_us: u64,
    pub undecodable: bool,
    pub time_from_receive: bool,
}

/// Every event of every readable block of the segment at `path`, in order, and the errors met.
pub fn read_events(path: &Path) -> (Vec<Read>, Vec<String>) {
    use dstore::format::{scan_segment, Decoded, Segment, TimeRange};
    let segment = Segment::open(path).expect("open segment");
    let (mut decoded, mut buf) = (Decoded::default(), Vec::new());
    let (mut events, mut errors) = (Vec::new(), Vec::new());
    scan_segment(
        &segment,
        TimeRange::ALL,
        &mut decoded,
        &mut buf,
        &mut |e| errors.push(e.to_string()),
        &mut |ev| {
            events.push(Read {
                frame: ev.frame.to_vec(),
                time_us: ev.time_us,
                undecodable: ev.undecodable(),
                time_from_receive: ev.time_from_receive(),
            });
            Ok(true)
        },
    )
    .expect("scan");
    (events, errors)
}

/// Opens the store in `dir` for writing, with what recovery found. Another test's child process
/// may for a moment hold a copy of a lock file descriptor this process just closed (between its
/// fork and its exec), so a lock held elsewhere is waited for, briefly.
pub fn open_writer(
    dir: &Path,
    options: dstore::format::WriterOptions,
) -> (dstore::format::StoreWriter, Vec<dstore::format::Recovery>) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        match dstore::format::StoreWriter::open(dir, options.clone()) {
            Ok(opened) => return opened,
            Err(dstore::format::Error::Locked { .. }) if std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(10))
            }
            Err(e) => panic!("open the store in {} for writing: {e}", dir.display()),
        }
    }
}

/// Every file in `dir` with its bytes: what a dry run must leave exactly as it was. The (empty)
/// file that maintenance locks while it changes the store is left out.
pub fn snapshot(dir: &Path) -> std::collections::BTreeMap<String, Vec<u8>> {
    std::fs::read_dir(dir)
        .expect("list the store")
        .map(|e| e.expect("read the store directory").path())
        .filter(|p| !p.ends_with("maintenance.lock"))
        .map(|p| {
            let name = p
                .file_name()
                .expect("a file name")
                .to_string_lossy()
                .into_owned();
            let bytes = std::fs::read(&p).unwrap_or_else(|e| panic!("read {name}: {e}"));
            (name, bytes)
        })
        .collect()
}

/// `frames`, each after a big-endian length of `width` bytes.
pub fn framed(frames: &[Vec<u8>], width: dstore::frame::FrameWidth) -> Vec<u8> {
    let mut out = Vec::new();
    for f in frames {
        dstore::frame::write_frame(&mut out, width, f).expect("frame fits its prefix");
    }
    out
}
