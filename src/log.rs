//! The daemons' log: one line per message, with a UTC time, to stderr or to a file that SIGHUP
//! reopens (for logrotate). Messages that a misbehaving peer can trigger go through `limited`, which
//! lets a few through per key and ten seconds and then says how many it held back.

use crate::format::store::{now_us, utc_text};
use std::collections::HashMap;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};

const LIMIT_WINDOW: Duration = Duration::from_secs(10);
const LIMIT_COUNT: u32 = 5;

pub struct Log {
    name: &'static str,
    path: Option<PathBuf>,
    out: Mutex<Box<dyn Write + Send>>,
    limits: Mutex<HashMap<&'static str, (Instant, u32, u64)>>,
}

impl Log {
    /// Logs to `path` (appending), or to stderr.
    pub fn new(name: &'static str, path: Option<PathBuf>) -> std::io::Result<Log> {
        let out = open(&path)?;
        Ok(Log {
            name,
            path,
            out: Mutex::new(out),
            limits: Mutex::new(HashMap::new()),
        })
    }

    pub fn info(&self, msg: &str) {
        let line = format!("{} {}: {msg}\n", utc_text(now_us(), false), self.name);
        let mut out = self.out.lock().unwrap_or_else(|e| e.into_inner());
        let _ = out.write_all(line.as_bytes());
        let _ = out.flush();
    }

    /// Logs at most a few messages per `key` every ten seconds.
    pub fn limited(&self, key: &'static str, msg: impl FnOnce() -> String) {
        let now = Instant::now();
        let mut held_back = 0;
        {
            let mut limits = self.limits.lock().unwrap_or_else(|e| e.into_inner());
            let entry = limits.entry(key).or_insert((now, 0, 0));
            if now.duration_since(entry.0) >= LIMIT_WINDOW {
                held_back = entry.2;
                *entry = (now, 0, 0);
            }
            if entry.1 >= LIMIT_COUNT {
                entry.2 += 1;
                return;
            }
            entry.1 += 1;
        }
        if held_back > 0 {
            self.info(&format!(
                "({held_back} more messages like the next one were not logged)"
            ));
        }
        self.info(&msg());
    }

    /// Reopens the log file, after logrotate moved it away.
    pub fn reopen(&self) -> std::io::Result<()> {
        if self.path.is_some() {
            let out = open(&self.path)?;
            *self.out.lock().unwrap_or_else(|e| e.into_inner()) = out;
        }
        Ok(())
    }
}

fn open(path: &Option<PathBuf>) -> std::io::Result<Box<dyn Write + Send>> {
    Ok(match path {
        Some(p) => Box::new(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(p)?,
        ),
        None => Box::new(std::io::stderr()),
    })
}
