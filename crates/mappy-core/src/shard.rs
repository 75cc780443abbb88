//! Maplets split by hash range into shards, and the manifest of a sharded
//! maplet saved to a directory.
//!
//! A maplet of `S = 2^b` shards keeps each key in the shard its hash's top
//! `b` bits name. Shard `i` is an ordinary [`Maplet`](crate::Maplet) that
//! knows it is shard `i` of `S` (the file format records it): it takes the
//! whole hash of a key, answers a key of another shard as absent and
//! refuses to insert one, and within its range places a key by the hash's
//! remaining bits exactly as one maplet of `S` times its home slots would.
//! So the shards of [`Maplet::with_shard`](crate::Maplet::with_shard),
//! together, hold exactly the entries of one maplet of the same parameters
//! and seed (whose home slots are rounded up to a multiple of `S`, which
//! they already are for up to 64 shards from 4,000 items and up to 1,024
//! from a million), and [`Maplet::concat`](crate::Maplet::concat) stitches
//! them into that one maplet.
//!
//! ```
//! use mappy_core::{shard::Shard, Counter, Maplet, Options};
//!
//! let (n, rate, opts) = (10_000, 0.01, Options::default());
//! let mut whole = Maplet::with_options(n, rate, Counter, opts).unwrap();
//! let mut shards: Vec<_> = (0..4)
//!     .map(|i| Maplet::with_shard(n, rate, Counter, opts, Shard::new(i, 4).unwrap()).unwrap())
//!     .collect();
//! for k in 0..5_000u64 {
//!     let h = whole.hash(&k);
//!     whole.insert_hash(h, 1).unwrap();
//!     shards[Shard::of(h, 4) as usize].insert_hash(h, 1).unwrap();
//! }
//! // Every key, inserted or not, gets the same answer from its shard.
//! for k in 0..20_000u64 {
//!     let h = whole.hash(&k);
//!     assert_eq!(shards[Shard::of(h, 4) as usize].query_hash(h), whole.query_hash(h));
//! }
//! let refs: Vec<_> = shards.iter().collect();
//! assert_eq!(Maplet::concat(&refs).unwrap().to_bytes(), whole.to_bytes());
//! ```

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use crate::error::{MapletError, Result};

/// Most shards a maplet may be split into.
pub const MAX_SHARDS: u32 = 1 << 16;

/// Which hash range a maplet holds: shard `index` of `count()`, or the
/// whole range ([`Shard::WHOLE`], one shard of one).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Shard {
    bits: u32,
    index: u32,
}

impl Shard {
    /// The whole hash range: an ordinary maplet.
    pub const WHOLE: Shard = Shard { bits: 0, index: 0 };

    /// Shard `index` of `count`.
    ///
    /// # Errors
    /// [`MapletError::InvalidParameter`] unless `count` is a power of two
    /// up to [`MAX_SHARDS`] and `index < count`.
    pub fn new(index: u32, count: u32) -> Result<Shard> {
        if !count.is_power_of_two() || count > MAX_SHARDS {
            return Err(MapletError::InvalidParameter(format!(
                "the number of shards must be a power of two from 1 to {MAX_SHARDS}, got {count}"
            )));
        }
        if index >= count {
            return Err(MapletError::InvalidParameter(format!(
                "shard index {index} is not below the number of shards, {count}"
            )));
        }
        Ok(Shard {
            bits: count.trailing_zeros(),
            index,
        })
    }

    /// From the two numbers the file format stores (the count's bits and
    /// the index).
    pub(crate) fn from_stored(bits: u32, index: u32) -> Option<Shard> {
        (bits <= MAX_SHARDS.trailing_zeros() && (index as u64) < 1u64 << bits)
            .then_some(Shard { bits, index })
    }

    /// The shard of `hash` among `count` shards (a power of two): the
    /// hash's top bits. Any other `count` is treated as the next power of
    /// two.
    #[inline]
    pub fn of(hash: u64, count: u32) -> u32 {
        // ceil(log2(count)), 0 for 0 and 1: never overflows.
        let bits = 32 - count.saturating_sub(1).leading_zeros();
        (((hash as u128) << bits) >> 64) as u32
    }

    /// Which shard this is.
    pub fn index(&self) -> u32 {
        self.index
    }
    /// How many shards the whole has.
    pub fn count(&self) -> u32 {
        1 << self.bits
    }
    /// log2 of [`count`](Shard::count).
    pub fn bits(&self) -> u32 {
        self.bits
    }
    /// Whether this is the whole range (an ordinary maplet).
    pub fn is_whole(&self) -> bool {
        self.bits == 0
    }

    /// Whether `hash` belongs to this shard.
    #[inline]
    pub fn owns(&self, hash: u64) -> bool {
        (((hash as u128) << self.bits) >> 64) as u32 == self.index
    }

    /// The bits of `hash` that place it within the shard.
    #[inline]
    pub(crate) fn local(&self, hash: u64) -> u64 {
        hash << self.bits
    }

    /// The error for inserting `hash`, which belongs to another shard.
    pub(crate) fn foreign(&self, hash: u64) -> MapletError {
        MapletError::InvalidParameter(format!(
            "the key belongs to shard {} of {}, not to this maplet, shard {}",
            Shard::of(hash, self.count()),
            self.count(),
            self.index
        ))
    }
}

impl std::fmt::Display for Shard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "shard {} of {}", self.index, self.count())
    }
}

// ---- the manifest -------------------------------------------------------------

/// The name of the manifest in a sharded maplet's directory.
pub const MANIFEST: &str = "manifest.txt";

/// The first line of every manifest.
const MANIFEST_MAGIC: &str = "mappy sharded maplet 1";

/// Longest manifest read (64 Ki shards take about 3 MiB).
const MANIFEST_MAX: u64 = 8 << 20;

/// What a sharded maplet's directory holds: the number of shards and, for
/// each, its file (relative to the directory) and the checksum its file
/// ends with. The parameters live in the shard files themselves, which
/// must agree; the manifest says which files make the whole, so that a
/// missing, extra, stale or swapped shard is found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Manifest {
    /// Checksum of each shard's file, in shard order.
    pub checksums: Vec<u64>,
}

impl Manifest {
    /// The file name of shard `i`.
    pub fn file_name(i: usize) -> String {
        format!("shard-{i:05}.maplet")
    }

    /// The path of shard `i` in `dir`.
    pub fn shard_path(dir: &Path, i: usize) -> PathBuf {
        dir.join(Self::file_name(i))
    }

    /// The manifest's text.
    pub fn to_text(&self) -> String {
        let mut s = format!("{MANIFEST_MAGIC}\nshards {}\n", self.checksums.len());
        for (i, c) in self.checksums.iter().enumerate() {
            let _ = writeln!(s, "{} {c:016x}", Self::file_name(i));
        }
        s
    }

    /// Parses a manifest's text.
    ///
    /// # Errors
    /// [`MapletError::Corrupt`], saying which line is wrong.
    pub fn parse(text: &str) -> Result<Manifest> {
        let bad = |line: usize, what: &str| {
            MapletError::Corrupt(format!("{MANIFEST}: line {line}: {what}"))
        };
        let mut lines = text.lines();
        if lines.next() != Some(MANIFEST_MAGIC) {
            return Err(bad(1, "not a sharded maplet's manifest"));
        }
        let count: u32 = lines
            .next()
            .and_then(|l| l.strip_prefix("shards "))
            .and_then(|n| n.parse().ok())
            .filter(|n: &u32| n.is_power_of_two() && *n <= MAX_SHARDS)
            .ok_or_else(|| {
                bad(
                    2,
                    &format!("expected `shards N`, N a power of two up to {MAX_SHARDS}"),
                )
            })?;
        let mut checksums = Vec::with_capacity(count as usize);
        for i in 0..count as usize {
            let line = lines
                .next()
                .ok_or_else(|| bad(i + 3, "missing shard line"))?;
            let (name, sum) = line
                .split_once(' ')
                .ok_or_else(|| bad(i + 3, "expected `FILE CHECKSUM`"))?;
            if name != Self::file_name(i) {
                return Err(bad(i + 3, &format!("expected {}", Self::file_name(i))));
            }
            let sum = (sum.len() == 16)
                .then(|| u64::from_str_radix(sum, 16).ok())
                .flatten()
                .ok_or_else(|| bad(i + 3, "the checksum is not 16 hex digits"))?;
            checksums.push(sum);
        }
        if lines.next().is_some() {
            return Err(bad(count as usize + 3, "more lines than shards"));
        }
        Ok(Manifest { checksums })
    }

    /// Reads `dir`'s manifest.
    ///
    /// # Errors
    /// [`MapletError::Io`] if it cannot be read (a missing directory or
    /// manifest: not found); [`MapletError::Corrupt`] if it is not one.
    pub fn read(dir: &Path) -> Result<Manifest> {
        use std::io::Read;
        // Never waits on a FIFO, never reads a device.
        let (file, _) = crate::format::open_regular(&dir.join(MANIFEST))?;
        let mut text = String::new();
        file.take(MANIFEST_MAX + 1)
            .read_to_string(&mut text)
            .map_err(|_| MapletError::Corrupt(format!("{MANIFEST} is not text")))?;
        if text.len() as u64 > MANIFEST_MAX {
            return Err(MapletError::Corrupt(format!("{MANIFEST} is too long")));
        }
        Self::parse(&text)
    }

    /// Writes `dir`'s manifest (atomically: it names only shard files
    /// already written).
    ///
    /// # Errors
    /// [`MapletError::Io`].
    pub fn write(&self, dir: &Path) -> Result<()> {
        crate::format::write_atomic(&dir.join(MANIFEST), self.to_text().as_bytes())
    }
}

/// Bytes of the checksum a saved maplet's file ends with.
pub const CHECKSUM_LEN: usize = 8;

/// The checksum `bytes` end with (their last [`CHECKSUM_LEN`] bytes: a
/// saved maplet's, or just its end), or `None` if they are shorter.
pub fn checksum_of(bytes: &[u8]) -> Option<u64> {
    let start = bytes.len().checked_sub(CHECKSUM_LEN)?;
    let tail: [u8; CHECKSUM_LEN] = bytes[start..].try_into().ok()?;
    Some(u64::from_le_bytes(tail))
}

/// The checksum a saved maplet's file ends with (its last
/// [`CHECKSUM_LEN`] bytes), read without reading the rest.
///
/// # Errors
/// [`MapletError::Io`]; [`MapletError::Corrupt`] for a file too short to
/// be a maplet.
pub fn file_checksum(path: &Path) -> Result<u64> {
    use std::io::{Read, Seek, SeekFrom};
    let (mut f, len) = crate::format::open_regular(path)?;
    if len < (crate::format::FIXED_HEADER + CHECKSUM_LEN) as u64 {
        return Err(MapletError::Corrupt(format!(
            "{} is too short to be a maplet",
            path.display()
        )));
    }
    f.seek(SeekFrom::Start(len - CHECKSUM_LEN as u64))?;
    let mut b = [0u8; CHECKSUM_LEN];
    f.read_exact(&mut b)?;
    Ok(u64::from_le_bytes(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_split_the_hash_range_by_its_top_bits() {
        let s = Shard::new(5, 8).unwrap();
        assert!(s.owns(5 << 61) && s.owns((6 << 61) - 1) && !s.owns(6 << 61));
        assert_eq!(Shard::of(u64::MAX, 8), 7);
        assert_eq!(Shard::of(u64::MAX, 1), 0);
        assert_eq!(Shard::of(u64::MAX, 0), 0);
        assert_eq!(Shard::of(u64::MAX, 6), 7);
        assert_eq!(Shard::of(u64::MAX, u32::MAX), u32::MAX);
        assert!(Shard::WHOLE.owns(u64::MAX) && Shard::WHOLE.is_whole());
        assert!(Shard::new(3, 6).is_err() && Shard::new(8, 8).is_err());
        assert!(Shard::new(0, 1 << 17).is_err());
    }

    #[test]
    fn a_checksum_is_the_last_eight_bytes() {
        assert_eq!(checksum_of(&[9, 1, 0, 0, 0, 0, 0, 0, 0]), Some(1));
        assert_eq!(checksum_of(&[1, 0, 0, 0, 0, 0, 0, 0]), Some(1));
        assert_eq!(checksum_of(&[1, 0, 0, 0, 0, 0, 0]), None);
    }

    #[test]
    fn manifests_round_trip_and_bad_ones_are_named() {
        let m = Manifest {
            checksums: vec![1, u64::MAX],
        };
        assert_eq!(Manifest::parse(&m.to_text()).unwrap(), m);
        for (text, line) in [
            ("nope\n", 1),
            ("mappy sharded maplet 1\nshards 3\n", 2),
            (
                "mappy sharded maplet 1\nshards 2\nshard-00000.maplet 0000000000000001\n",
                4,
            ),
            (
                "mappy sharded maplet 1\nshards 1\nshard-00001.maplet 0000000000000001\n",
                3,
            ),
            (
                "mappy sharded maplet 1\nshards 1\nshard-00000.maplet 01\n",
                3,
            ),
            (
                "mappy sharded maplet 1\nshards 1\nshard-00000.maplet 0000000000000001\nx\n",
                4,
            ),
        ] {
            let e = Manifest::parse(text).unwrap_err().to_string();
            assert!(e.contains(&format!("line {line}:")), "{text:?}: {e}");
        }
    }
}
