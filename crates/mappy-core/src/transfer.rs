//! Moving a batch's keys to their shards in a few bytes each.
//!
//! A sharded build across processes (the Dask build of the Python package)
//! hashes each partition where it lies and sends every shard the keys it
//! owns. Sending the 8-byte hashes makes the shuffle, not the maplet, the
//! largest thing a worker holds. A shard needs far less of a hash: only the
//! bits that place it, its home slot and fingerprint, which is the table's
//! *sort key* ([`Maplet::encode_runs`] adds a few bits for growth). Sorted,
//! a partition's sort keys for one shard are close together, so their gaps,
//! Rice-coded with their counts (see `runs`), take about
//! `log2(partitions) + fingerprint bits + 7` bits a key, 2 to 3 bytes, where
//! a hash takes 8.
//!
//! The receiving shard ([`Maplet::decode_runs`]) turns each sort key back
//! into a hash that it places exactly where the key's own hash goes, in its
//! table as built and as long as its growth needs no more bits than were
//! sent ([`Maplet::keeps_precision`]). So the shards built from runs answer
//! every key, inserted or not, exactly as shards built from the hashes.
//!
//! ```
//! use mappy_core::{shard::Shard, Counter, Maplet, Options};
//!
//! let (n, rate, opts) = (10_000, 0.01, Options::default());
//! let shard = |i| Maplet::with_shard(n, rate, Counter, opts, Shard::new(i, 4).unwrap()).unwrap();
//! let mut by_hash: Vec<_> = (0..4).map(shard).collect();
//! let mut by_run: Vec<_> = (0..4).map(shard).collect();
//! let hashes: Vec<u64> = (0..5_000u64).map(|k| by_hash[0].hash(&k)).collect();
//! for &h in &hashes {
//!     by_hash[Shard::of(h, 4) as usize].insert_hash(h, 1).unwrap();
//! }
//! // One partition's hashes, coded for their shards (any shard can code).
//! let coded = by_run[0].encode_runs(&hashes).unwrap();
//! for (index, run) in &coded.runs {
//!     let m = &mut by_run[*index as usize];
//!     let keys = m.decode_runs(&[run.as_slice()]).unwrap();
//!     for (&h, &c) in keys.hashes.iter().zip(&keys.counts) {
//!         m.insert_hash(h, c as i64).unwrap();
//!     }
//!     assert!(m.keeps_precision(keys.precision));
//! }
//! for k in 0..20_000u64 {
//!     let h = by_hash[0].hash(&k);
//!     let i = Shard::of(h, 4) as usize;
//!     assert_eq!(by_run[i].query_hash(h), by_hash[i].query_hash(h));
//! }
//! ```

use crate::error::{MapletError, Result};
use crate::maplet::Maplet;
use crate::operator::Operator;
use crate::runs::{encode_run, rice_bits, Run};
use crate::shard::Shard;
use crate::sort::try_vec;

/// Sort-key bits sent beyond those of the shard's table as built: room for
/// at least two doublings (each may widen new fingerprints by one bit).
pub const RUN_EXTRA_BITS: u32 = 4;

/// The first bytes of a coded run.
const MAGIC: &[u8; 4] = b"mRUN";

/// Bytes before the run itself: magic, shard bits, precision, two zero
/// bytes, shard index (u32), home slots (u64); little-endian.
const HEADER: usize = 20;

/// What a damaged run is called in its error.
const WHAT: &str = "a run of keys for a shard";

/// A batch of hashes coded for the shards that own them
/// ([`Maplet::encode_runs`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ShardRuns {
    /// Each shard that owns some of the hashes, in increasing order, and
    /// its run: the distinct sort keys of its hashes, with how many hashes
    /// each stands for.
    pub runs: Vec<(u32, Vec<u8>)>,
    /// The positions of the hashes in the batch, shard by shard, and within
    /// a shard in the order of its run (equal keys in batch order): the
    /// values of `runs[i]` are those at `order[bounds[i]..bounds[i + 1]]`.
    pub order: Vec<u32>,
    /// Where each shard's positions start in `order`, and the end.
    pub bounds: Vec<usize>,
}

/// The keys of one shard's runs ([`Maplet::decode_runs`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RunKeys {
    /// A hash for each key of the runs, placed where the key's own hash is
    /// placed; runs in order, each in increasing order of its keys.
    pub hashes: Vec<u64>,
    /// How many of the batch's hashes each key stands for (at least 1).
    pub counts: Vec<u64>,
    /// The fewest sort-key bits any run carried (see
    /// [`Maplet::keeps_precision`]).
    pub precision: u32,
}

impl<O: Operator> Maplet<O> {
    /// Sort-key bits of this maplet's runs, below `2^64` with its shard bits.
    fn run_precision(&self) -> u32 {
        let ((_, f0), _) = self.shapes();
        (f0 - 1 + RUN_EXTRA_BITS).min(self.run_precision_room())
    }

    /// The most sort-key bits a run can carry: the home slot's bits and
    /// these fit in 64 with the shard's.
    fn run_precision_room(&self) -> u32 {
        let ((c0, _), _) = self.shapes();
        64 - self.shard().bits() - (64 - c0.leading_zeros())
    }

    /// `hash`'s sort key among `c0` home slots with `p` bits beyond them.
    #[inline]
    fn run_key(&self, c0: u64, p: u32, hash: u64) -> u64 {
        ((self.shard().local(hash) as u128 * c0 as u128) >> (64 - p)) as u64
    }

    /// Codes `hashes` for the shards of a maplet built like this one (any
    /// of its shards, or the maplet itself unsharded: one run for all):
    /// for each shard, one run of the sort keys of the hashes it owns, and
    /// where each hash's value goes.
    ///
    /// # Errors
    /// [`MapletError::InvalidParameter`] for 2^32 hashes or more;
    /// [`MapletError::OutOfMemory`].
    pub fn encode_runs(&self, hashes: &[u64]) -> Result<ShardRuns> {
        let n = hashes.len();
        if n > u32::MAX as usize {
            return Err(MapletError::InvalidParameter(
                "at most 2^32 - 1 hashes can be coded at once".into(),
            ));
        }
        let ((c0, _), _) = self.shapes();
        let p = self.run_precision();
        let (bits, count) = (self.shard().bits(), self.shard().count());
        let mut keyed: Vec<(u32, u64, u32)> = try_vec(n)?;
        keyed.extend(
            hashes
                .iter()
                .enumerate()
                .map(|(i, &h)| (Shard::of(h, count), self.run_key(c0, p, h), i as u32)),
        );
        keyed.sort_unstable();
        let mut out = ShardRuns {
            order: try_vec(n)?,
            ..ShardRuns::default()
        };
        out.order.extend(keyed.iter().map(|e| e.2));
        let mut start = 0;
        while start < n {
            let index = keyed[start].0;
            let end = start + keyed[start..].partition_point(|e| e.0 == index);
            let mine = &keyed[start..end];
            let distinct = 1 + mine.windows(2).filter(|w| w[0].1 != w[1].1).count();
            let r = rice_bits(mine[0].1, mine[mine.len() - 1].1, distinct);
            let mut run = Vec::with_capacity(HEADER);
            run.extend_from_slice(MAGIC);
            run.extend_from_slice(&[bits as u8, p as u8, 0, 0]);
            run.extend_from_slice(&index.to_le_bytes());
            run.extend_from_slice(&c0.to_le_bytes());
            run.extend_from_slice(&encode_run(counted(mine), r));
            out.runs.push((index, run));
            out.bounds.push(start);
            start = end;
        }
        out.bounds.push(n);
        Ok(out)
    }

    /// The keys of `runs` coded by [`encode_runs`](Maplet::encode_runs) of a
    /// maplet built like this one, for this maplet's shard: a hash for each
    /// that this maplet places where the key's own hash goes, as long as
    /// [`keeps_precision`](Maplet::keeps_precision) holds. Nothing is
    /// inserted.
    ///
    /// # Errors
    /// [`MapletError::InvalidParameter`] for a run of another shard or of
    /// a maplet of other parameters; [`MapletError::Corrupt`] for a damaged
    /// run; [`MapletError::OutOfMemory`]. Every length is checked against
    /// the runs' own bytes first: a run holds at most 8 keys a byte, so the
    /// keys take at most 128 bytes for each byte of the runs.
    pub fn decode_runs(&self, runs: &[&[u8]]) -> Result<RunKeys> {
        let ((c0, f0), _) = self.shapes();
        let shard = self.shard();
        let mut parsed = Vec::with_capacity(runs.len());
        let mut total = 0usize;
        let mut precision = u32::MAX;
        for bytes in runs {
            let damaged = || MapletError::Corrupt(format!("{WHAT} is damaged"));
            let head = bytes.get(..HEADER).ok_or_else(damaged)?;
            if &head[..4] != MAGIC || head[6..8] != [0, 0] {
                return Err(damaged());
            }
            let (bits, p) = (u32::from(head[4]), u32::from(head[5]));
            let index = u32::from_le_bytes(head[8..12].try_into().expect("4 bytes"));
            let canonical = u64::from_le_bytes(head[12..20].try_into().expect("8 bytes"));
            if bits != shard.bits() || index != shard.index() {
                return Err(MapletError::InvalidParameter(format!(
                    "{WHAT} {index} of {} given to {shard}",
                    1u64 << bits.min(63)
                )));
            }
            if canonical != c0 || p < f0 - 1 || p > self.run_precision_room() {
                return Err(MapletError::InvalidParameter(format!(
                    "{WHAT} coded for a maplet of other parameters \
                     ({canonical} home slots and {p} bits, not {c0} and at least {})",
                    f0 - 1
                )));
            }
            let (run, len) = Run::parse(&bytes[HEADER..], 0, WHAT)?;
            if len != bytes.len() - HEADER {
                return Err(damaged());
            }
            total = total.saturating_add(run.left as usize);
            precision = precision.min(p);
            parsed.push((run, p));
        }
        let mut keys = RunKeys {
            hashes: try_vec(total)?,
            counts: try_vec(total)?,
            precision: if parsed.is_empty() {
                self.run_precision()
            } else {
                precision
            },
        };
        for (mut run, p) in parsed {
            while let Some((key, count)) = run.next_entry()? {
                keys.hashes.push(self.hash_of_run_key(c0, p, key)?);
                keys.counts.push(count);
            }
        }
        Ok(keys)
    }

    /// The smallest hash of this shard whose sort key among `c0` home slots
    /// with `p` bits is `key`.
    fn hash_of_run_key(&self, c0: u64, p: u32, key: u64) -> Result<u64> {
        let shard = self.shard();
        let bits = shard.bits();
        // The local hashes of `key` are those from ceil(key 2^(64-p) / c0)
        // on, 2^(64-p) / c0 >= 2^bits of them (see `run_precision`): the
        // first with its low `bits` bits zero is one.
        let low = ((key as u128) << (64 - p)).div_ceil(c0 as u128);
        let local = low.div_ceil(1u128 << bits) << bits;
        let hash = u64::try_from(local)
            .ok()
            .map(|l| {
                if bits == 0 {
                    l
                } else {
                    (u64::from(shard.index()) << (64 - bits)) | (l >> bits)
                }
            })
            .filter(|&h| self.run_key(c0, p, h) == key)
            .ok_or_else(|| MapletError::Corrupt(format!("{WHAT} is damaged")))?;
        Ok(hash)
    }

    /// Whether inserting `keys` might grow the table: a caller that must
    /// undo an insert that grew past the bits sent (see
    /// [`keeps_precision`](Maplet::keeps_precision)) keeps a copy first.
    pub fn may_grow_with(&self, keys: &RunKeys) -> bool {
        self.len().saturating_add(keys.hashes.len()) > self.max_len()
    }

    /// Whether the hashes of runs of `precision` bits are still placed
    /// exactly where their keys' own hashes are: true unless the table has
    /// grown further than those bits reach. A maplet that has must not
    /// stand for the keys' own (a key would be looked up by bits it was
    /// never placed by); build it again with more `expected_items`.
    pub fn keeps_precision(&self, precision: u32) -> bool {
        let ((c0, _), (c, f)) = self.shapes();
        (c / c0).trailing_zeros() + f - 1 <= precision
    }
}

/// A shard's sorted `(shard, key, position)` entries as distinct keys and
/// how many times each occurs.
fn counted(mine: &[(u32, u64, u32)]) -> impl Iterator<Item = (u64, u64)> + '_ {
    let mut i = 0;
    std::iter::from_fn(move || {
        let key = mine.get(i)?.1;
        let n = mine[i..].partition_point(|e| e.1 == key);
        i += n;
        Some((key, n as u64))
    })
}
