//! Rewriting a sealed segment's degraded blocks (written while ingest was behind: every frame
//! opaque, no summary) in the full encoding, once there is time for it: the same events in the same
//! order, so the same identities, in fewer bytes and with the summaries searches skip blocks by.
//!
//! The new segment is written beside the old one under a name no reader lists, sealed, read back
//! and compared event by event with the old (frame, time, receive-time flag, whether it decodes),
//! and only then renamed over it. A crash at any point leaves the old segment, or the new one
//! whole; a leftover temporary file is removed by the next run.

use super::block::encode_block;
use super::codec::{is_undecodable, Encoder, FLAG_RECEIVE_TIME};
use super::segment::{sync_dir, Segment, SegmentWriter};
use super::store::{decode_block, events_of};
use super::{Decoded, Error};
use std::path::{Path, PathBuf};

/// What compacting one segment did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Compacted {
    /// Blocks rewritten.
    pub blocks: usize,
    pub events: u64,
    /// The segment's size before and after.
    pub bytes_before: u64,
    pub bytes_after: u64,
}

/// The suffix of the temporary file a compaction writes; readers list only segment names.
pub const TEMP_SUFFIX: &str = ".compacting";

/// Where the new version of `segment` is written before it replaces the old.
fn temp_path(segment: &Path) -> PathBuf {
    let name = segment
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    segment.with_file_name(format!(".{name}{TEMP_SUFFIX}"))
}

/// Rewrites the blocks of `old` that have no summary (the degraded ones) as the writer writes
/// blocks when it is not behind, and puts the result in its place: as if ingest had kept up. (A
/// block of frames that do not decode may come out a little larger; the segment as a whole
/// shrinks.) `None` when there is nothing to do: a segment unsealed, damaged, or without such
/// blocks. With `dry_run`, only says what it would do.
pub fn compact_segment(
    old: &Segment,
    encoder: &mut Encoder,
    dry_run: bool,
) -> Result<Option<Compacted>, Error> {
    if !old.sealed || !old.damage.is_empty() {
        return Ok(None);
    }
    let mut buf = Vec::new();
    let degraded: Vec<bool> = old
        .blocks
        .iter()
        .map(|b| old.read_summary(b, &mut buf).is_none())
        .collect();
    if !degraded.contains(&true) {
        return Ok(None);
    }
    if dry_run {
        let todo = old.blocks.iter().zip(&degraded).filter(|(_, &d)| d);
        return Ok(Some(Compacted {
            blocks: degraded.iter().filter(|&&d| d).count(),
            events: todo.map(|(b, _)| u64::from(b.header.event_count)).sum(),
            bytes_before: old.len,
            bytes_after: old.len,
        }));
    }
    let path = &old.path;
    let tmp = temp_path(path);
    match std::fs::remove_file(&tmp) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            return Err(Error::Io {
                path: tmp,
                source: e,
            })
        }
        _ => {}
    }
    let written = write_compacted(old, &degraded, &tmp, encoder).and_then(|done| {
        same_events(old, &Segment::open(&tmp)?, &degraded)?;
        same_owner(path, &tmp)?;
        Ok(done)
    });
    let done = match written {
        Ok(done) => done,
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            return Err(e);
        }
    };
    std::fs::rename(&tmp, path).map_err(|source| Error::Io {
        path: path.clone(),
        source,
    })?;
    if let Some(dir) = path.parent() {
        sync_dir(dir)?;
    }
    Ok(Some(done))
}

/// Writes `old` to `tmp`, the blocks marked `degraded` encoded as the writer encodes them (the
/// time each was stored with standing for the receive time of those without one), the others
/// copied as they are; and seals it.
fn write_compacted(
    old: &Segment,
    degraded: &[bool],
    tmp: &Path,
    encoder: &mut Encoder,
) -> Result<Compacted, Error> {
    let mut out = SegmentWriter::create(tmp, old.created_us)?;
    let (mut buf, mut decoded, mut block) = (Vec::new(), Decoded::default(), Vec::new());
    let (mut pending, mut facts) = (Vec::new(), Vec::new());
    let mut done = Compacted {
        bytes_before: old.len,
        ..Compacted::default()
    };
    for (b, &degraded) in old.blocks.iter().zip(degraded) {
        if !degraded {
            // Copied as it is on disk: `buf` holds the whole block, header and payload.
            old.read_payload(b, &mut buf)?;
            out.append(&buf, b.header)?;
            continue;
        }
        decode_block(old, b, &mut decoded, &mut buf)?;
        pending.clear();
        let mut end = 0u32;
        for i in 0..decoded.len() {
            end += decoded.frame(i).len() as u32;
            pending.push((end, decoded.times[i]));
        }
        let frames = decoded.framed(0, decoded.len()).unwrap_or_default();
        let events = events_of(frames, &pending, false, &mut facts);
        block.clear();
        let (header, _) = encode_block(encoder, &events, &facts, false, &mut block);
        out.append(&block, header)?;
        done.blocks += 1;
        done.events += u64::from(header.event_count);
    }
    done.bytes_after = out.len();
    out.seal()?;
    Ok(done)
}

/// Gives `tmp` the mode and owner of `path`, so that the services that read the old segment read
/// the new one (a compaction run by root must not leave a file only root reads). Only root may
/// give a file to another user: an unprivileged run on segments that are not its own fails here,
/// and the segment is left as it is.
fn same_owner(path: &Path, tmp: &Path) -> Result<(), Error> {
    use std::os::unix::fs::MetadataExt;
    let io = |source| Error::Io {
        path: tmp.to_path_buf(),
        source,
    };
    let meta = std::fs::metadata(path).map_err(io)?;
    std::fs::set_permissions(tmp, meta.permissions()).map_err(io)?;
    let mine = std::fs::metadata(tmp).map_err(io)?;
    if (mine.uid(), mine.gid()) != (meta.uid(), meta.gid()) {
        std::os::unix::fs::chown(tmp, Some(meta.uid()), Some(meta.gid())).map_err(io)?;
    }
    Ok(())
}

/// Fails unless `new` gives every event of `old` as readers see it: the same frame, time, receive
/// time flag and decodability, in the same order. The blocks not `degraded` were copied: they must
/// be the same bytes, which is cheaper to check than their events.
fn same_events(old: &Segment, new: &Segment, degraded: &[bool]) -> Result<(), Error> {
    let differ = |what: String| Error::Block {
        path: new.path.clone(),
        offset: 0,
        what: format!("the compacted segment differs from the original: {what}"),
    };
    if !new.sealed || !new.damage.is_empty() || new.blocks.len() != old.blocks.len() {
        return Err(differ("its blocks".into()));
    }
    let (mut a, mut b) = (Decoded::default(), Decoded::default());
    let (mut buf_a, mut buf_b) = (Vec::new(), Vec::new());
    for (n, ((x, y), &degraded)) in old.blocks.iter().zip(&new.blocks).zip(degraded).enumerate() {
        if !degraded {
            let copied = old.read_payload(x, &mut buf_a)? == new.read_payload(y, &mut buf_b)?;
            if !copied {
                return Err(differ(format!("block {n}")));
            }
            continue;
        }
        decode_block(old, x, &mut a, &mut buf_a)?;
        decode_block(new, y, &mut b, &mut buf_b)?;
        let same = a.len() == b.len()
            && (0..a.len()).all(|i| {
                let (fa, fb) = (a.frame(i), b.frame(i));
                fa == fb
                    && a.times[i] == b.times[i]
                    && a.flags[i] & FLAG_RECEIVE_TIME == b.flags[i] & FLAG_RECEIVE_TIME
                    && is_undecodable(a.flags[i], fa) == is_undecodable(b.flags[i], fb)
            });
        if !same {
            return Err(differ(format!("block {n}")));
        }
    }
    Ok(())
}
