//! The protobuf wire format at the level the storage codec needs it: varints, tags, and walking a
//! message field by field without knowing its schema. Nothing here allocates or panics on any input.

/// Protobuf wire types that dstore can take apart. Groups (3 and 4) are not used by PowerDNS; a frame
/// holding one is kept as an opaque frame.
pub const WIRE_VARINT: u8 = 0;
pub const WIRE_FIXED64: u8 = 1;
pub const WIRE_LEN: u8 = 2;
pub const WIRE_FIXED32: u8 = 5;

/// Reads a varint at `*pos`, advancing it. `None` if it runs past the end or past ten bytes.
#[inline]
pub fn read_varint(buf: &[u8], pos: &mut usize) -> Option<u64> {
    // Most tags, lengths and values of a DNS message fit in one byte.
    let &first = buf.get(*pos)?;
    if first < 0x80 {
        *pos += 1;
        return Some(u64::from(first));
    }
    read_varint_slow(buf, pos)
}

#[inline]
fn read_varint_slow(buf: &[u8], pos: &mut usize) -> Option<u64> {
    let mut value = 0u64;
    for (i, &byte) in buf.get(*pos..)?.iter().take(10).enumerate() {
        value |= u64::from(byte & 0x7f) << (7 * i);
        if byte < 0x80 {
            // The tenth byte holds the 64th bit only.
            if i == 9 && byte > 1 {
                return None;
            }
            *pos += i + 1;
            return Some(value);
        }
    }
    None
}

/// Like `read_varint`, but also refuses a varint written with more bytes than it needs, so that
/// writing the value back gives the same bytes.
#[inline]
pub fn read_canonical_varint(buf: &[u8], pos: &mut usize) -> Option<u64> {
    let start = *pos;
    let value = read_varint(buf, pos)?;
    (*pos - start == varint_len(value)).then_some(value)
}

#[inline]
pub fn varint_len(value: u64) -> usize {
    // 1 byte per started group of 7 bits; 0 takes one byte.
    (64 - (value | 1).leading_zeros() as usize).div_ceil(7)
}

#[inline(always)]
pub fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    if value < 0x80 {
        out.push(value as u8);
        return;
    }
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

#[inline]
pub fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

#[inline]
pub fn unzigzag(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

/// One field of a message: its tag (field number and wire type) and where its value lies. For
/// length-delimited fields the value is the content, without the length.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Field {
    pub tag: u32,
    pub value_start: usize,
    pub value_end: usize,
}

impl Field {
    pub fn number(&self) -> u32 {
        self.tag >> 3
    }
    pub fn wire_type(&self) -> u8 {
        (self.tag & 7) as u8
    }
}

/// Reads the field at `*pos`. With `canonical`, every varint (tag, value, length) must be minimal.
/// `None` if the bytes are not a well-formed field.
#[inline]
pub fn read_field(buf: &[u8], pos: &mut usize, canonical: bool) -> Option<Field> {
    let read = if canonical {
        read_canonical_varint
    } else {
        read_varint
    };
    let tag = read(buf, pos)?;
    if tag >> 3 == 0 || tag > u64::from(u32::MAX) {
        return None;
    }
    let tag = tag as u32;
    let (value_start, value_end) = match (tag & 7) as u8 {
        WIRE_VARINT => {
            let start = *pos;
            read(buf, pos)?;
            (start, *pos)
        }
        WIRE_FIXED64 => (*pos, pos.checked_add(8)?),
        WIRE_FIXED32 => (*pos, pos.checked_add(4)?),
        WIRE_LEN => {
            let len = usize::try_from(read(buf, pos)?).ok()?;
            (*pos, pos.checked_add(len)?)
        }
        _ => return None,
    };
    if value_end > buf.len() {
        return None;
    }
    *pos = value_end;
    Some(Field {
        tag,
        value_start,
        value_end,
    })
}

/// The varint value of a field of wire type 0 (`None` for other wire types).
pub fn field_varint(buf: &[u8], field: &Field) -> Option<u64> {
    if field.wire_type() != WIRE_VARINT {
        return None;
    }
    let mut pos = field.value_start;
    read_varint(buf, &mut pos)
}

/// timeSec (field 9) and timeUsec (field 10) of a PBDNSMessage as microseconds, if timeSec is there.
/// The last occurrence of a field wins, as protobuf requires; a malformed tail ends the search.
pub fn message_time_us(frame: &[u8]) -> Option<u64> {
    let (mut sec, mut usec) = (None, None);
    let mut pos = 0;
    while pos < frame.len() {
        let Some(field) = read_field(frame, &mut pos, false) else {
            break;
        };
        match field.tag {
            0x48 => sec = field_varint(frame, &field),
            0x50 => usec = field_varint(frame, &field),
            _ => {}
        }
    }
    // The wire type is uint32: take the low 32 bits of a wider varint, as protobuf decoders do.
    let sec = sec? as u32;
    Some(u64::from(sec) * 1_000_000 + u64::from(usec.unwrap_or(0) as u32))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_round_trip_and_know_their_length() {
        for v in [
            0,
            1,
            127,
            128,
            300,
            16_383,
            16_384,
            u32::MAX as u64,
            u64::MAX,
        ] {
            let mut out = Vec::new();
            put_varint(&mut out, v);
            assert_eq!(out.len(), varint_len(v), "{v}");
            let mut pos = 0;
            assert_eq!(read_canonical_varint(&out, &mut pos), Some(v));
            assert_eq!(pos, out.len());
        }
    }

    #[test]
    fn refuses_overlong_truncated_and_oversized_varints() {
        let mut pos = 0;
        assert_eq!(read_canonical_varint(&[0x80, 0x00], &mut pos), None);
        let mut pos = 0;
        assert_eq!(read_varint(&[0x80, 0x00], &mut pos), Some(0));
        let mut pos = 0;
        assert_eq!(read_varint(&[0x80], &mut pos), None);
        let mut pos = 0;
        assert_eq!(read_varint(&[0xff; 11], &mut pos), None);
    }

    #[test]
    fn zigzag_is_its_own_inverse() {
        for v in [0i64, -1, 1, i64::MIN, i64::MAX, 12345, -98765] {
            assert_eq!(unzigzag(zigzag(v)), v);
        }
    }

    #[test]
    fn finds_the_last_time_fields() {
        // type=1, timeSec=5, timeUsec=7, timeSec=9 (a duplicate: the last wins)
        let frame = [0x08, 1, 0x48, 5, 0x50, 7, 0x48, 9];
        assert_eq!(message_time_us(&frame), Some(9_000_007));
        assert_eq!(message_time_us(&[0x08, 1]), None);
        assert_eq!(message_time_us(&[0x48, 1, 0xff]), Some(1_000_000));
    }

    #[test]
    fn a_field_cannot_reach_past_the_buffer() {
        let mut pos = 0;
        assert_eq!(read_field(&[0x12, 5, 1, 2], &mut pos, false), None);
        let mut pos = 0;
        assert_eq!(
            read_field(&[0x00, 1], &mut pos, false),
            None,
            "field number 0"
        );
        let mut pos = 0;
        assert_eq!(
            read_field(&[0x0b], &mut pos, false),
            None,
            "groups are refused"
        );
    }
}
