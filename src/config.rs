//! Where the store lives. The storage directory comes from, in order: the `--storage-dir` flag, the
//! `DSTORE_STORAGE_DIR` environment variable, `storage-dir` in the dstore 1.x style configuration file
//! (`/etc/dstore/dstore.conf`, or the file named by `DSTORE_CONFIG`), then `/var/lib/dstore`.

use anyhow::{Context, Result};
use std::path::{Path, PathBuf};

pub const DEFAULT_STORAGE_DIR: &str = "/var/lib/dstore";
pub const DEFAULT_CONFIG_FILE: &str = "/etc/dstore/dstore.conf";

/// Keys of dstore.conf that this version understands; others are warned about and ignored.
const KNOWN_KEYS: &[&str] = &["storage-dir", "hash-split", "retention", "max-size"];

/// `--storage-dir`, shared by every applet that touches the store.
#[derive(clap::Args, Debug, Clone)]
pub struct StoreArgs {
    /// Store directory [default: $DSTORE_STORAGE_DIR, then storage-dir in /etc/dstore/dstore.conf,
    /// then /var/lib/dstore]
    #[arg(long, value_name = "DIR")]
    pub storage_dir: Option<PathBuf>,
}

impl StoreArgs {
    pub fn resolve(&self) -> Result<PathBuf> {
        if let Some(dir) = &self.storage_dir {
            return Ok(dir.clone());
        }
        if let Some(dir) = std::env::var_os("DSTORE_STORAGE_DIR").filter(|d| !d.is_empty()) {
            return Ok(PathBuf::from(dir));
        }
        let (path, explicit) = match std::env::var_os("DSTORE_CONFIG") {
            Some(p) => (PathBuf::from(p), true),
            None => (PathBuf::from(DEFAULT_CONFIG_FILE), false),
        };
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                let conf = parse_conf(&text, &path);
                if let Some(dir) = conf.get("storage-dir") {
                    return Ok(PathBuf::from(dir));
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !explicit => {}
            Err(e) => {
                return Err(e).with_context(|| format!("cannot read {}", path.display()));
            }
        }
        Ok(PathBuf::from(DEFAULT_STORAGE_DIR))
    }
}

/// Parses `key = value` lines; `#` starts a comment. Unknown keys and malformed lines are reported
/// on stderr and skipped: a configuration written for a newer dstore still starts this one.
pub fn parse_conf(text: &str, path: &Path) -> std::collections::BTreeMap<String, String> {
    parse_conf_with(text, path, KNOWN_KEYS)
}

/// `parse_conf` for a file whose known keys are `known`.
pub fn parse_conf_with(
    text: &str,
    path: &Path,
    known: &[&str],
) -> std::collections::BTreeMap<String, String> {
    let mut out = std::collections::BTreeMap::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            eprintln!(
                "dstore: warning: {}:{}: expected `key = value`, line ignored",
                path.display(),
                n + 1
            );
            continue;
        };
        let key = key.trim();
        if !known.contains(&key) {
            eprintln!(
                "dstore: warning: {}:{}: unknown setting `{key}` ignored",
                path.display(),
                n + 1
            );
            continue;
        }
        out.insert(key.to_string(), value.trim().to_string());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_1x_style_lines_and_skips_what_it_does_not_know() {
        let conf = parse_conf(
            "# dstore\nstorage-dir = /srv/dns  # here\nhash-split=1024\nbogus = 1\nnot a line\n",
            Path::new("dstore.conf"),
        );
        assert_eq!(
            conf.get("storage-dir").map(String::as_str),
            Some("/srv/dns")
        );
        assert_eq!(conf.get("hash-split").map(String::as_str), Some("1024"));
        assert_eq!(conf.len(), 2);
    }
}
