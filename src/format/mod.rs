//! The dstore storage format, version 1 (FORMAT.md is normative): a store is a directory of segment
//! files; a segment is a file header, checksummed LZ4-compressed blocks each with its time range and
//! event count in a fixed header, and, once sealed, a footer index. This module imports nothing from
//! the applets, the network or HTTP.

pub mod block;
pub mod codec;
pub mod compact;
pub mod hash;
pub mod schema;
pub mod segment;
pub mod store;
pub mod summary;
pub mod wire;

pub use codec::Decoded;
pub use segment::{Damage, Recovery, Segment};
pub use store::{
    scan_segment, segment_paths, Framed, Scanner, StoreWriter, StoredEvent, TimeRange,
    WriterOptions, WriterStats,
};

use std::fmt;
use std::path::PathBuf;

/// Errors of the storage format, each naming the file and, where there is one, the offset.
#[derive(Debug)]
pub enum Error {
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    FileHeader {
        path: PathBuf,
        what: String,
    },
    Block {
        path: PathBuf,
        offset: u64,
        what: String,
    },
    Locked {
        path: PathBuf,
    },
    Poisoned {
        path: PathBuf,
    },
    /// A frame longer than a block may hold (`block::MAX_FRAME_BYTES`): not stored.
    FrameTooLong {
        len: usize,
    },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Io { path, source } => write!(f, "{}: {source}", path.display()),
            Error::FileHeader { path, what } => write!(f, "{}: {what}", path.display()),
            Error::Block { path, offset, what } => {
                write!(f, "{}: block at offset {offset}: {what}", path.display())
            }
            Error::Locked { path } => write!(
                f,
                "{}: another dstore process is writing to this store",
                path.display()
            ),
            Error::Poisoned { path } => write!(
                f,
                "{}: an earlier write failed; reopen the store to recover",
                path.display()
            ),
            Error::FrameTooLong { len } => write!(
                f,
                "a frame of {len} bytes is longer than the {} bytes a block holds",
                block::MAX_FRAME_BYTES
            ),
        }
    }
}

impl Error {
    /// The file is gone: removed by a rotate between listing the store and opening it.
    pub fn is_not_found(&self) -> bool {
        matches!(self, Error::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound)
    }
}

/// No `source`: the message already ends with the I/O error's, which a printer of the error's
/// chain would otherwise repeat.
impl std::error::Error for Error {}
