//! Length-prefixed framing of PowerDNS protobuf streams: each message is preceded by its length as a
//! 2-byte big-endian integer, or a 4-byte one for Recursor's `frame4` mode. The same framing is what
//! `dstore cat --raw` writes, so its output can be replayed to any receiver.

use std::fmt;
use std::io::{self, Read, Write};

/// How wide the big-endian length prefix is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FrameWidth {
    Two,
    Four,
}

impl FrameWidth {
    pub fn prefix_len(self) -> usize {
        match self {
            FrameWidth::Two => 2,
            FrameWidth::Four => 4,
        }
    }

    /// The largest frame this width can carry.
    pub fn max_len(self) -> usize {
        match self {
            FrameWidth::Two => u16::MAX as usize,
            FrameWidth::Four => u32::MAX as usize,
        }
    }
}

/// A stream that ended inside a frame: the partial frame is dropped.
#[derive(Debug, PartialEq, Eq)]
pub struct Truncated {
    /// Offset of the partial frame's length prefix in the stream.
    pub offset: u64,
    /// Bytes the frame needed (prefix included), and bytes that were there.
    pub needed: u64,
    pub present: u64,
}

impl fmt::Display for Truncated {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "stream ends inside the frame at offset {}: {} of its {} bytes are present, the partial frame was dropped",
            self.offset, self.present, self.needed
        )
    }
}

/// Reads frames from a byte stream through a large buffer, handing out slices of it.
pub struct FrameReader<R> {
    inner: R,
    width: FrameWidth,
    buf: Vec<u8>,
    start: usize,
    end: usize,
    /// Stream offset of `buf[start]`.
    offset: u64,
    eof: bool,
    truncated: Option<Truncated>,
}

const READ_CHUNK: usize = 1 << 20;

impl<R: Read> FrameReader<R> {
    pub fn new(inner: R, width: FrameWidth) -> Self {
        FrameReader {
            inner,
            width,
            buf: vec![0; READ_CHUNK],
            start: 0,
            end: 0,
            offset: 0,
            eof: false,
            truncated: None,
        }
    }

    /// Bytes consumed so far: the offset of the next frame.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Set once the stream has ended inside a frame.
    pub fn truncated(&self) -> Option<&Truncated> {
        self.truncated.as_ref()
    }

    /// The next whole frame (without its prefix), or `None` at the end of the stream.
    pub fn next_frame(&mut self) -> io::Result<Option<&[u8]>> {
        let prefix = self.width.prefix_len();
        if !self.fill(prefix)? {
            return Ok(None);
        }
        let head = &self.buf[self.start..self.start + prefix];
        let len = head.iter().fold(0usize, |n, &b| (n << 8) | b as usize);
        if !self.fill(prefix + len)? {
            return Ok(None);
        }
        let frame_start = self.start + prefix;
        self.start = frame_start + len;
        self.offset += (prefix + len) as u64;
        Ok(Some(&self.buf[frame_start..frame_start + len]))
    }

    /// Makes `want` bytes available from `start`; false at the end of the stream (recording a
    /// partial frame, if any).
    fn fill(&mut self, want: usize) -> io::Result<bool> {
        while self.end - self.start < want {
            if self.eof {
                let present = self.end - self.start;
                if present > 0 && self.truncated.is_none() {
                    self.truncated = Some(Truncated {
                        offset: self.offset,
                        needed: want.max(self.width.prefix_len()) as u64,
                        present: present as u64,
                    });
                }
                self.start = self.end;
                return Ok(false);
            }
            if self.start > 0 {
                self.buf.copy_within(self.start..self.end, 0);
                self.end -= self.start;
                self.start = 0;
            }
            if self.buf.len() < want {
                self.buf.resize(want.max(2 * self.buf.len()), 0);
            }
            if self.end == self.buf.len() {
                continue;
            }
            match self.inner.read(&mut self.buf[self.end..]) {
                Ok(0) => self.eof = true,
                Ok(n) => self.end += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(true)
    }
}

/// Writes one frame with its length prefix. Frames longer than the width allows are an error.
pub fn write_frame<W: Write>(out: &mut W, width: FrameWidth, frame: &[u8]) -> io::Result<()> {
    if frame.len() > width.max_len() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "a {}-byte frame does not fit a {}-byte length prefix",
                frame.len(),
                width.prefix_len()
            ),
        ));
    }
    let len = (frame.len() as u32).to_be_bytes();
    out.write_all(&len[4 - width.prefix_len()..])?;
    out.write_all(frame)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames(input: &[u8], width: FrameWidth) -> (Vec<Vec<u8>>, Option<Truncated>) {
        let mut reader = FrameReader::new(input, width);
        let mut out = Vec::new();
        while let Some(f) = reader.next_frame().expect("reading a slice cannot fail") {
            out.push(f.to_vec());
        }
        (out, reader.truncated)
    }

    #[test]
    fn reads_two_byte_frames_and_reports_a_partial_last_frame() {
        let mut stream = Vec::new();
        write_frame(&mut stream, FrameWidth::Two, b"abc").unwrap();
        write_frame(&mut stream, FrameWidth::Two, b"").unwrap();
        stream.extend_from_slice(&[0, 9, 1, 2]);
        let (got, truncated) = frames(&stream, FrameWidth::Two);
        assert_eq!(got, vec![b"abc".to_vec(), Vec::new()]);
        assert_eq!(
            truncated,
            Some(Truncated {
                offset: 7,
                needed: 11,
                present: 4
            })
        );
    }

    #[test]
    fn reads_four_byte_frames_larger_than_the_read_chunk() {
        let big = vec![7u8; READ_CHUNK + 100];
        let mut stream = Vec::new();
        write_frame(&mut stream, FrameWidth::Four, &big).unwrap();
        write_frame(&mut stream, FrameWidth::Four, b"x").unwrap();
        let (got, truncated) = frames(&stream, FrameWidth::Four);
        assert_eq!(got, vec![big, b"x".to_vec()]);
        assert_eq!(truncated, None);
    }

    #[test]
    fn a_lone_prefix_byte_is_a_truncation() {
        let (got, truncated) = frames(&[0], FrameWidth::Two);
        assert!(got.is_empty());
        assert_eq!(
            truncated,
            Some(Truncated {
                offset: 0,
                needed: 2,
                present: 1
            })
        );
    }

    #[test]
    fn refuses_to_write_an_oversized_two_byte_frame() {
        let mut out = Vec::new();
        assert!(write_frame(&mut out, FrameWidth::Two, &vec![0; 70_000]).is_err());
        assert!(out.is_empty());
    }
}
