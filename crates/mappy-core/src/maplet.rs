//! [`Maplet`]: the approximate key-value map.
//!
//! # Files
//! This file holds the struct, [`Options`], [`Stats`], [`Entry`], sizing,
//! construction and the accessors. Each child adds one concern's
//! `impl Maplet` block, and they depend one way (`trust` at the bottom,
//! `batch` on top):
//! - `trust`: whether the table is known valid; the gates every write, copy
//!   and save passes; `verify`;
//! - `journal`: the undo record of an open batch, `atomically`;
//! - `grow`: widening the values, doubling the table;
//! - `query`: query, contains, their batches, entries, stats;
//! - `insert`: insert, delete, remove, clear;
//! - `header`: the saved header, written and read in this one place;
//! - `save` and `load`: into and from bytes, writers and files;
//! - `mmap`: read-only memory-mapped opening;
//! - `merge`: merge, map_values, concat;
//! - `batch`: the bulk inserts, all or nothing.

use crate::error::{MapletError, Result};
use crate::hash::{Key, DEFAULT_SEED};
use crate::operator::{Operator, OperatorKind};
use crate::shard::Shard;
use crate::side::SideStore;
use crate::table::{value_width, Table, MAX_FBITS, MAX_LOAD};

mod batch;
mod grow;
mod header;
mod insert;
mod journal;
mod load;
mod merge;
#[cfg(all(feature = "mmap", target_endian = "little"))]
mod mmap;
mod query;
mod save;
mod trust;

use journal::Journal;
use trust::Trust;

/// Options beyond the expected size and false-positive rate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Options {
    /// Seed of the key hash. Maplets merge only with equal seeds.
    pub seed: u64,
    /// Largest heap size, in bytes, the maplet may grow to. An operation that
    /// would need more fails with [`MapletError::MemoryLimit`] and changes
    /// nothing. Everything the maplet holds counts: the slot table, the side
    /// store's index, and what each side-stored value owns as the
    /// operator's [`heap_size`](Operator::heap_size) reports it (a vector's
    /// elements, a set's elements), checked before a new value is stored
    /// and before a merged value that owns more replaces an old one. The
    /// limit is kept by `clone`, saved with the maplet, and checked by
    /// [`Maplet::merge`] against the merged result.
    pub memory_limit: Option<usize>,
    /// Keep every fingerprint the same length however the maplet grows
    /// (3 bits per item are reserved up front, so that after growing 16-fold
    /// the false-positive rate is still within twice the configured one).
    /// Then maplets that grew differently still merge into exactly what one
    /// maplet that saw every insert would hold. By default fingerprints
    /// written after growth are longer instead, which costs nothing up front
    /// but makes a merge after growth one-sided rather than identical.
    ///
    /// Growth is bounded: each doubling moves one fingerprint bit into the
    /// home slot, so a fixed-precision maplet grows at most `2^(f - 1)`-fold
    /// where `f` is its field width (`f - 1` fingerprint bits: 10 for a rate
    /// of 0.01, so 1024-fold). Past that every entry would have to be copied
    /// into both halves of the next table; that doubling is refused with
    /// [`MapletError::CapacityExhausted`] (nothing changes, and a new key
    /// that matches an entry still merges into it), so entries are never
    /// duplicated and `len()` never exceeds the distinct keys inserted.
    /// Measured (test `fixed_precision_growth_is_bounded`, rate 0.01, from
    /// `expected_items` 8 and 1, on 100,000 absent keys, just after the
    /// doubling that reaches each size, load about 0.48):
    ///
    /// | growth | false-positive rate |
    /// |---|---|
    /// | 16x | 0.0075 (from 1: 0.0078) |
    /// | 64x | 0.030 (0.030) |
    /// | 1024x, the limit | 0.475 (0.473) |
    ///
    /// Build a fixed-precision maplet for the size it will reach.
    ///
    /// With default options growth is bounded the same way, but only by the
    /// entries written at the initial size (later ones get longer
    /// fingerprints): a maplet grows `2^(f0 - 1)`-fold for its initial field
    /// width `f0`, and a small one reserves enough bits up front to reach at
    /// least [`MIN_REACH`] home slots (about 4 million items). The doubling
    /// past that is refused with [`MapletError::CapacityExhausted`] as above.
    pub fixed_precision: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            seed: DEFAULT_SEED,
            memory_limit: None,
            fixed_precision: false,
        }
    }
}

/// Numbers describing a maplet's size and accuracy.
#[derive(Clone, Debug, PartialEq)]
pub struct Stats {
    /// Home slots (the quotient range); doubles when the maplet grows.
    pub capacity: u64,
    /// Physical slots, including the overflow area.
    pub slots: usize,
    /// Stored entries (distinct fingerprints).
    pub items: usize,
    /// `items / capacity`; the maplet doubles before this passes 0.95.
    pub load_factor: f64,
    /// Bytes held: the slot table (in memory, or for a memory-mapped
    /// maplet, mapped from its file) and the side store.
    pub memory_usage: usize,
    /// `memory_usage * 8 / items` (0 when empty).
    pub bits_per_item: f64,
    /// The false-positive rate the maplet was built for.
    pub false_positive_rate: f64,
    /// The expected false-positive rate now, from the stored fingerprints.
    pub expected_false_positive_rate: f64,
    /// Bits of each fingerprint field (fingerprint plus a marker bit).
    pub fingerprint_bits: u32,
    /// Bits of each packed value.
    pub value_bits: u32,
}

/// One stored entry, as [`Maplet::entries`] yields it.
#[derive(Clone, Debug, PartialEq)]
pub struct Entry<V> {
    /// Home slot.
    pub quotient: u64,
    /// The stored fingerprint bits (after the home slot).
    pub fingerprint: u64,
    /// How many bits of `fingerprint` are stored.
    pub fingerprint_len: u32,
    /// The merged value of every key with this fingerprint.
    pub value: V,
}

/// A space-efficient approximate map from keys to values.
///
/// Each key is hashed to a home slot and a short fingerprint; only those are
/// stored, packed with the value in a quotient-filter slot table, so space is
/// `O(log 1/ε + v)` bits per item. Keys that share a fingerprint share an
/// entry, whose value is the operator's merge of theirs. A query of an
/// inserted key therefore returns its true value or one worse in the
/// operator's one direction (a count never lower), and is exact with
/// probability at least `1 - ε`; a key never inserted returns `None` except
/// with probability about `ε`.
///
/// ```
/// use mappy_core::{Maplet, Counter};
///
/// let n = 100_000;
/// let mut m = Maplet::new(n, 0.01, Counter).unwrap();
/// for i in 0..n as u64 {
///     m.insert(&i, 1 + (i % 85) as i64).unwrap();
/// }
/// // No false negatives, and a count is never below the truth.
/// assert!((0..n as u64).all(|i| m.query(&i).unwrap() >= 1 + (i % 85) as i64));
/// // Stored counts (sums of up to three colliding keys included) stay
/// // below 256, so they pack in 8 bits: at most 20 bits per item in all.
/// assert!(m.stats().bits_per_item <= 20.0, "{}", m.stats().bits_per_item);
/// // Keys never inserted are found at about the configured rate.
/// let fp = (n as u64..2 * n as u64).filter(|i| m.contains(i)).count();
/// assert!((fp as f64) < 0.0125 * n as f64, "{fp}");
/// ```
pub struct Maplet<O: Operator> {
    op: O,
    table: Table,
    side: SideStore<O::Value>,
    expected_items: usize,
    false_positive_rate: f64,
    options: Options,
    initial_canonical: u64,
    initial_fbits: u32,
    /// Which hash range the maplet holds.
    shard: Shard,
    /// While a batch is open: how to undo what it did to the table.
    journal: Option<Box<Journal>>,
    /// Whether the table has been checked: a memory map is not, on opening.
    trust: Trust,
}

impl<O: Operator + Clone> Clone for Maplet<O> {
    /// An ordinary in-memory copy. A memory-mapped maplet not yet verified
    /// is [`verify`](Maplet::verify)-ed first (the copy reads every word
    /// anyway): a copy of a damaged one keeps answering queries (bounded,
    /// never panicking) but refuses every write and every way of saving
    /// with [`MapletError::Corrupt`], so damage is never sealed under a
    /// fresh checksum. Use [`try_clone`](Maplet::try_clone) to be told.
    fn clone(&self) -> Self {
        let _ = self.ensure_verified();
        self.with_table(self.table.clone())
    }
}

impl<O: Operator> std::fmt::Debug for Maplet<O> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Maplet")
            .field("operator", &self.op.kind())
            .field("len", &self.len())
            .field("capacity", &self.table.canonical())
            .field("false_positive_rate", &self.false_positive_rate)
            .finish()
    }
}

/// Value width and signedness a table of `vbits` bits needs to also hold
/// `bits`. Turning signed costs the stored non-negative values one more bit.
fn widths_for(vbits: u32, signed: bool, bits: i64) -> (u32, bool) {
    if signed || bits >= 0 {
        (vbits.max(value_width(bits, signed)), signed)
    } else {
        ((vbits + 1).min(64).max(value_width(bits, true)), true)
    }
}

/// Fingerprint field width (with its marker) for a rate: at full load a
/// random key matches an entry with probability about `0.95 * 2^-(fbits-1)`.
fn fbits_for(rate: f64) -> u32 {
    ((MAX_LOAD / rate).log2().ceil().max(1.0) as u32 + 1).min(MAX_FBITS)
}

/// The home slots every maplet with default options can grow to: a small
/// one reserves enough fingerprint bits up front that its oldest entries
/// keep at least one after each doubling up to this size (see
/// [`Options::fixed_precision`]). At most a few bits per slot on tables
/// below it, so at most a few hundred KiB in all.
pub const MIN_REACH: u64 = 1 << 22;

/// The field width a table of `canonical` home slots needs for its entries
/// to survive doubling to [`MIN_REACH`] slots: one fingerprint bit per
/// doubling, plus the field's end bit.
fn reach_bits(canonical: u64) -> u32 {
    let mut doublings = 0;
    while canonical << doublings < MIN_REACH {
        doublings += 1;
    }
    doublings + 1
}

/// Home slots of a maplet for `expected_items`: enough for them at the
/// maximum load, rounded up from 4,096 to a multiple of 64 and from 2^20
/// to a multiple of 1,024, so that it splits into that many equal shards
/// (see [`crate::shard`]). The table is made of 64-slot blocks, so the
/// first rounding costs no memory and the second at most 0.1%.
pub(crate) fn whole_canonical(expected_items: usize) -> u64 {
    let c = ((expected_items as f64 / MAX_LOAD).ceil() as u64).max(1);
    match c {
        0..4096 => c,
        4096..0x10_0000 => c.next_multiple_of(64),
        _ => c.next_multiple_of(1024),
    }
}

impl<O: Operator> Maplet<O> {
    /// A maplet for about `expected_items` keys with false-positive rate
    /// `false_positive_rate`, merging with `op`.
    ///
    /// # Errors
    /// [`MapletError::InvalidParameter`] if `expected_items` is 0 or larger
    /// than 2^40, or the rate is not strictly between 0 and 1;
    /// [`MapletError::OutOfMemory`] if the system refuses the table's
    /// memory.
    pub fn new(expected_items: usize, false_positive_rate: f64, op: O) -> Result<Self> {
        Self::with_options(expected_items, false_positive_rate, op, Options::default())
    }

    /// Like [`new`](Maplet::new), with a seed and a memory limit.
    ///
    /// # Errors
    /// As [`new`](Maplet::new), [`MapletError::MemoryLimit`] if even the
    /// empty maplet exceeds the limit, and [`MapletError::OutOfMemory`] if
    /// the system refuses the table's memory (never an abort: try
    /// `expected_items` of 2^40 under a 1 GiB address-space limit).
    pub fn with_options(
        expected_items: usize,
        false_positive_rate: f64,
        op: O,
        options: Options,
    ) -> Result<Self> {
        Self::with_shard(
            expected_items,
            false_positive_rate,
            op,
            options,
            Shard::WHOLE,
        )
    }

    /// Shard `shard` of a maplet with these parameters (see [`crate::shard`]):
    /// its part of the home slots of the maplet
    /// [`with_options`](Maplet::with_options) builds, rounded up to a
    /// multiple of the number of shards, with that maplet's fingerprints.
    /// It takes whole hashes, answers those of other shards as absent and
    /// refuses to insert them.
    ///
    /// # Errors
    /// As [`with_options`](Maplet::with_options).
    pub fn with_shard(
        expected_items: usize,
        false_positive_rate: f64,
        op: O,
        options: Options,
        shard: Shard,
    ) -> Result<Self> {
        if expected_items == 0 {
            return Err(MapletError::InvalidParameter(
                "expected_items must be at least 1".into(),
            ));
        }
        if expected_items > 1 << 40 {
            return Err(MapletError::InvalidParameter(format!(
                "expected_items must be at most 2^40, got {expected_items}"
            )));
        }
        if !(false_positive_rate > 0.0 && false_positive_rate < 1.0) {
            return Err(MapletError::InvalidParameter(format!(
                "false_positive_rate must be strictly between 0 and 1, got {false_positive_rate}"
            )));
        }
        if false_positive_rate < 1e-15 {
            return Err(MapletError::InvalidParameter(format!(
                "false_positive_rate must be at least 1e-15, got {false_positive_rate}"
            )));
        }
        let whole = whole_canonical(expected_items).next_multiple_of(shard.count() as u64);
        let fbits = Self::fbits_for_shape(false_positive_rate, options, whole);
        let canonical = whole / shard.count() as u64;
        Self::with_fields(
            expected_items,
            false_positive_rate,
            op,
            options,
            (canonical, fbits),
            shard,
        )
    }

    /// The field width (with its marker) a new maplet of `canonical` home
    /// slots gets at `rate` with `options`.
    pub(crate) fn fbits_for_shape(rate: f64, options: Options, canonical: u64) -> u32 {
        if options.fixed_precision {
            fbits_for(rate) + 3
        } else {
            fbits_for(rate).max(reach_bits(canonical))
        }
        .min(MAX_FBITS)
    }

    /// Like [`with_options`](Maplet::with_options) once its parameters are
    /// checked, with `canonical` home slots and fields `extra_fbits` wider
    /// than such a maplet would have.
    pub(crate) fn with_shape(
        expected_items: usize,
        false_positive_rate: f64,
        op: O,
        options: Options,
        canonical: u64,
        extra_fbits: u32,
    ) -> Result<Self> {
        let fbits = (Self::fbits_for_shape(false_positive_rate, options, canonical) + extra_fbits)
            .min(MAX_FBITS);
        Self::with_fields(
            expected_items,
            false_positive_rate,
            op,
            options,
            (canonical, fbits),
            Shard::WHOLE,
        )
    }

    /// An empty maplet of `canonical` home slots and fields `fbits` wide,
    /// holding `shard`'s hash range.
    fn with_fields(
        expected_items: usize,
        false_positive_rate: f64,
        op: O,
        options: Options,
        (canonical, fbits): (u64, u32),
        shard: Shard,
    ) -> Result<Self> {
        let bytes = Table::bytes_for(canonical, fbits, 1);
        if let Some(limit) = options.memory_limit {
            if bytes > limit {
                return Err(MapletError::MemoryLimit {
                    needed: bytes,
                    limit,
                });
            }
        }
        let mut side = SideStore::default();
        side.count_values(&op, options.memory_limit.is_some());
        Ok(Maplet {
            op,
            table: Table::try_new(canonical, fbits, 1, false)?,
            side,
            expected_items,
            false_positive_rate,
            options,
            initial_canonical: canonical,
            initial_fbits: fbits,
            shard,
            journal: None,
            trust: Trust::trusted(),
        })
    }

    /// A maplet with this one's parameters (size, rate, options, initial
    /// shape and shard) that holds `table` and `side` and merges with `op`:
    /// valid, with no batch open.
    fn with_contents<O2: Operator>(
        &self,
        op: O2,
        table: Table,
        side: SideStore<O2::Value>,
    ) -> Maplet<O2> {
        Maplet {
            op,
            table,
            side,
            expected_items: self.expected_items,
            false_positive_rate: self.false_positive_rate,
            options: self.options,
            initial_canonical: self.initial_canonical,
            initial_fbits: self.initial_fbits,
            shard: self.shard,
            journal: None,
            trust: Trust::trusted(),
        }
    }

    /// Home slots and field width (with its marker) the maplet was built
    /// with, and those it has now (after any doublings).
    pub(crate) fn shapes(&self) -> ((u64, u32), (u64, u32)) {
        (
            (self.initial_canonical, self.initial_fbits),
            (self.table.canonical(), self.table.fbits()),
        )
    }

    /// Which hash range the maplet holds ([`Shard::WHOLE`] unless built by
    /// [`with_shard`](Maplet::with_shard)).
    pub fn shard(&self) -> Shard {
        self.shard
    }

    /// Home slot and query field of a whole hash in this maplet's table.
    #[inline(always)]
    fn place(&self, hash: u64) -> (u64, u64) {
        self.table.locate(self.shard.local(hash))
    }

    /// The operator.
    pub fn operator(&self) -> &O {
        &self.op
    }
    /// The seed and memory limit.
    pub fn options(&self) -> Options {
        self.options
    }
    /// The hash seed.
    pub fn seed(&self) -> u64 {
        self.options.seed
    }
    /// The memory limit in bytes, if any.
    pub fn memory_limit(&self) -> Option<usize> {
        self.options.memory_limit
    }
    /// Whether the table stores its values sign-extended: it has held a
    /// negative value (a signed counter's) since it was built.
    pub fn holds_signed_values(&self) -> bool {
        self.table.signed()
    }
    /// Sets the memory limit (`None`: no limit).
    ///
    /// # Errors
    /// [`MapletError::MemoryLimit`] if the maplet already holds more than
    /// `limit`; the limit is then unchanged.
    pub fn set_memory_limit(&mut self, limit: Option<usize>) -> Result<()> {
        let needed = self.memory_usage();
        if let Some(limit) = limit.filter(|&l| needed > l) {
            return Err(MapletError::MemoryLimit { needed, limit });
        }
        self.options.memory_limit = limit;
        self.side.count_values(&self.op, limit.is_some());
        Ok(())
    }
    /// The number of items the maplet was sized for.
    pub fn expected_items(&self) -> usize {
        self.expected_items
    }
    /// The configured false-positive rate.
    pub fn false_positive_rate(&self) -> f64 {
        self.false_positive_rate
    }
    /// Home slots now (grows by doubling).
    pub fn capacity(&self) -> u64 {
        self.table.canonical()
    }
    /// Stored entries: distinct fingerprints, which is the number of distinct
    /// keys inserted less those that share a fingerprint.
    pub fn len(&self) -> usize {
        self.table.len()
    }
    /// Whether nothing is stored.
    pub fn is_empty(&self) -> bool {
        self.table.len() == 0
    }

    /// The hash of `key` under this maplet's seed, for the `*_hash` methods.
    #[inline]
    pub fn hash<K: Key + ?Sized>(&self, key: &K) -> u64 {
        key.hash_with(self.options.seed)
    }

    /// Heap bytes held by the slot table and the side store.
    pub fn memory_usage(&self) -> usize {
        self.table
            .heap_bytes()
            .saturating_add(self.side.heap_bytes(&self.op))
    }

    fn check_memory(&self, table_bytes: usize) -> Result<()> {
        if let Some(limit) = self.options.memory_limit {
            let needed = table_bytes.saturating_add(self.side.heap_bytes(&self.op));
            if needed > limit {
                return Err(MapletError::MemoryLimit { needed, limit });
            }
        }
        Ok(())
    }

    #[inline]
    fn value_at(&self, s: usize) -> O::Value {
        let v = self.table.value(s);
        if O::PACKED {
            self.op.unpack(v)
        } else {
            self.side.get(v as usize).clone()
        }
    }

    #[inline]
    fn value_ref(&self, s: usize) -> std::borrow::Cow<'_, O::Value> {
        let v = self.table.value(s);
        if O::PACKED {
            std::borrow::Cow::Owned(self.op.unpack(v))
        } else {
            std::borrow::Cow::Borrowed(self.side.get(v as usize))
        }
    }

    /// Value width and signedness the table needs to hold packed `bits`.
    fn widths_for(&self, bits: i64) -> (u32, bool) {
        widths_for(self.table.vbits(), self.table.signed(), bits)
    }

    /// Entries the table holds before the next one doubles it.
    pub(crate) fn max_len(&self) -> usize {
        self.table.max_len()
    }

    /// Checks the slot table's invariants from scratch, panicking if one is
    /// broken. For tests; linear in the table size.
    #[doc(hidden)]
    pub fn check_invariants(&self) {
        self.table.check_invariants();
    }

    /// The operator kind and the parameters that must match for a merge.
    pub fn kind(&self) -> OperatorKind {
        self.op.kind()
    }
}

impl<O: Operator + Clone> Maplet<O> {
    /// A copy of everything but the table, with `table`.
    fn with_table(&self, table: Table) -> Self {
        Maplet {
            journal: self.journal.clone(),
            trust: self.trust.clone(),
            ..self.with_contents(self.op.clone(), table, self.side.clone())
        }
    }
}
