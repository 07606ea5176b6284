//! The hasher of the writer's internal maps (field paths, shapes, messageIds, the summary's name
//! hashes). std's SipHash cost a few percent of every import; this is a folded multiply of each
//! 8-byte word with a per-process random key, as foldhash does: several times faster on short keys,
//! and still keyed, so that a producer cannot precompute messageIds that collide to slow a block down.

use std::hash::{BuildHasher, Hasher};
use std::sync::OnceLock;

const MIX: u64 = 0x243f_6a88_85a3_08d3;

/// The 128-bit product of `a` and `b`, its halves xored: every input bit reaches every output bit.
#[inline(always)]
fn folded_multiply(a: u64, b: u64) -> u64 {
    let p = u128::from(a) * u128::from(b);
    (p as u64) ^ ((p >> 64) as u64)
}

/// Builds `FastHasher`s keyed with this process's random key.
#[derive(Clone, Copy, Debug)]
pub struct FastState {
    key: u64,
}

impl Default for FastState {
    fn default() -> Self {
        static KEY: OnceLock<u64> = OnceLock::new();
        // std's RandomState is seeded from the operating system's randomness.
        let key = *KEY.get_or_init(|| std::collections::hash_map::RandomState::new().hash_one(MIX));
        FastState { key: key | 1 }
    }
}

impl BuildHasher for FastState {
    type Hasher = FastHasher;
    #[inline]
    fn build_hasher(&self) -> FastHasher {
        FastHasher {
            hash: self.key,
            key: self.key ^ MIX,
        }
    }
}

pub struct FastHasher {
    hash: u64,
    key: u64,
}

impl FastHasher {
    #[inline(always)]
    fn add(&mut self, word: u64) {
        self.hash = folded_multiply(self.hash ^ word, self.key);
    }
}

impl Hasher for FastHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            self.add(u64::from_le_bytes(word));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut word = [0u8; 8];
            word[..rest.len()].copy_from_slice(rest);
            // The length keeps "a" and "a\0" apart.
            self.add(u64::from_le_bytes(word) ^ ((rest.len() as u64) << 59));
        }
    }
    #[inline]
    fn write_u8(&mut self, i: u8) {
        self.add(u64::from(i));
    }
    #[inline]
    fn write_u16(&mut self, i: u16) {
        self.add(u64::from(i));
    }
    #[inline]
    fn write_u32(&mut self, i: u32) {
        self.add(u64::from(i));
    }
    #[inline]
    fn write_u64(&mut self, i: u64) {
        self.add(i);
    }
    #[inline]
    fn write_usize(&mut self, i: usize) {
        self.add(i as u64);
    }
    #[inline]
    fn finish(&self) -> u64 {
        self.hash
    }
}

pub type FastMap<K, V> = std::collections::HashMap<K, V, FastState>;
pub type FastSet<K> = std::collections::HashSet<K, FastState>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_keys_hash_equal_and_near_keys_apart() {
        let s = FastState::default();
        assert_eq!(s.hash_one(b"example.com"), s.hash_one(b"example.com"));
        assert_ne!(s.hash_one(&b"a"[..]), s.hash_one(&b"a\0"[..]));
        let mut seen = FastSet::default();
        for i in 0u64..10_000 {
            assert!(seen.insert(s.hash_one(i.to_le_bytes())));
        }
    }
}
