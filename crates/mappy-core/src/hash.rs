//! Hashing keys to 64-bit fingerprints.
//!
//! Keys are hashed once with XXH3-64, a specified algorithm whose output is
//! the same on every platform, process and version. Each key type hashes a
//! canonical byte encoding under its own domain-separated seed, so the string
//! `"1"`, the bytes `b"1"` and the integer `1` are three different keys.
//! Integers are encoded little-endian, so the hash does not depend on the
//! machine's byte order.

use xxhash_rust::xxh3::xxh3_64_with_seed;

/// The seed used when none is given.
pub const DEFAULT_SEED: u64 = 0x6d61_706c_6574_5f31; // "maplet_1"

const STR_DOMAIN: u64 = 0x9e37_79b9_7f4a_7c15;
const BYTES_DOMAIN: u64 = 0xc2b2_ae3d_27d4_eb4f;
const INT_DOMAIN: u64 = 0x1656_67b1_9e37_79f9;

/// A key that a maplet can hash.
///
/// Implemented for strings, byte strings and integers. Implement it for a
/// type of your own by hashing a canonical encoding with [`hash_bytes`].
pub trait Key {
    /// The key's 64-bit hash under `seed`.
    fn hash_with(&self, seed: u64) -> u64;
}

/// Hashes raw bytes under `seed` (the building block of every [`Key`]).
#[inline]
pub fn hash_bytes(bytes: &[u8], seed: u64) -> u64 {
    xxh3_64_with_seed(bytes, seed)
}

/// Hashes a string key.
#[inline]
pub fn hash_str(s: &str, seed: u64) -> u64 {
    hash_bytes(s.as_bytes(), seed ^ STR_DOMAIN)
}

/// [`hash_str`] of a string given as its UTF-8 bytes (not checked).
#[cfg(feature = "kmers")]
#[inline]
pub(crate) fn hash_str_bytes(b: &[u8], seed: u64) -> u64 {
    hash_bytes(b, seed ^ STR_DOMAIN)
}

/// Hashes a byte-string key.
#[inline]
pub fn hash_byte_key(b: &[u8], seed: u64) -> u64 {
    hash_bytes(b, seed ^ BYTES_DOMAIN)
}

/// Hashes an integer key given as its minimal little-endian two's-complement
/// bytes (so every integer, of any size, has exactly one encoding).
#[inline]
pub fn hash_int_bytes(le_bytes: &[u8], seed: u64) -> u64 {
    hash_bytes(le_bytes, seed ^ INT_DOMAIN)
}

/// Hashes a signed 64-bit integer key (same result as [`hash_int_bytes`] on
/// its minimal encoding, so integers hash alike whatever their Rust type).
#[inline]
pub fn hash_i64(v: i64, seed: u64) -> u64 {
    let bytes = v.to_le_bytes();
    hash_int_bytes(&bytes[..minimal_len(v as i128)], seed)
}

/// Hashes an unsigned 64-bit integer key.
#[inline]
pub fn hash_u64(v: u64, seed: u64) -> u64 {
    let bytes = (v as u128).to_le_bytes();
    hash_int_bytes(&bytes[..minimal_len(v as i128)], seed)
}

/// Length of the minimal little-endian two's-complement encoding of `v`
/// (at least one byte).
#[inline]
fn minimal_len(v: i128) -> usize {
    let significant = if v < 0 {
        128 - (!v).leading_zeros()
    } else {
        128 - v.leading_zeros()
    };
    // One more bit for the sign, rounded up to whole bytes.
    ((significant as usize + 1).div_ceil(8)).max(1)
}

impl Key for str {
    fn hash_with(&self, seed: u64) -> u64 {
        hash_str(self, seed)
    }
}

impl Key for String {
    fn hash_with(&self, seed: u64) -> u64 {
        hash_str(self, seed)
    }
}

impl Key for [u8] {
    fn hash_with(&self, seed: u64) -> u64 {
        hash_byte_key(self, seed)
    }
}

impl<const N: usize> Key for [u8; N] {
    fn hash_with(&self, seed: u64) -> u64 {
        hash_byte_key(self, seed)
    }
}

impl Key for Vec<u8> {
    fn hash_with(&self, seed: u64) -> u64 {
        hash_byte_key(self, seed)
    }
}

macro_rules! int_key {
    ($($signed:ty),* ; $($unsigned:ty),*) => {
        $(impl Key for $signed {
            fn hash_with(&self, seed: u64) -> u64 {
                hash_i64(*self as i64, seed)
            }
        })*
        $(impl Key for $unsigned {
            fn hash_with(&self, seed: u64) -> u64 {
                hash_u64(*self as u64, seed)
            }
        })*
    };
}
int_key!(i8, i16, i32, i64, isize; u8, u16, u32, u64, usize);

impl<K: Key + ?Sized> Key for &K {
    fn hash_with(&self, seed: u64) -> u64 {
        (**self).hash_with(seed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minimal_encoding_lengths() {
        assert_eq!(minimal_len(0), 1);
        assert_eq!(minimal_len(127), 1);
        assert_eq!(minimal_len(128), 2);
        assert_eq!(minimal_len(-128), 1);
        assert_eq!(minimal_len(-129), 2);
        assert_eq!(minimal_len(u64::MAX as i128), 9);
    }

    #[test]
    fn integer_types_agree() {
        assert_eq!(5u8.hash_with(1), 5i64.hash_with(1));
        assert_eq!(
            u64::MAX.hash_with(1),
            hash_int_bytes(&[0xff; 8].iter().copied().chain([0]).collect::<Vec<_>>(), 1)
        );
        assert_ne!((-1i64).hash_with(1), u64::MAX.hash_with(1));
    }

    #[test]
    fn types_are_separate_domains() {
        assert_ne!("1".hash_with(0), b"1".hash_with(0));
        assert_ne!("1".hash_with(0), 1i64.hash_with(0));
    }

    #[test]
    fn hash_is_stable() {
        // Pinned: a change here breaks every saved maplet.
        assert_eq!(hash_bytes(b"maplet", 0), xxh3_64_with_seed(b"maplet", 0));
        assert_eq!(
            "user:123".hash_with(DEFAULT_SEED),
            "user:123".hash_with(DEFAULT_SEED)
        );
    }
}
