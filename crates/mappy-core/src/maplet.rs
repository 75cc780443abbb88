//! [`Maplet`]: the approximate key-value map.

use std::path::Path;

use crate::error::{MapletError, Result};
use crate::format::{self, ValueCodec};
use crate::hash::{Key, DEFAULT_SEED};
use crate::operator::{Operator, OperatorKind};
use crate::shard::Shard;
use crate::side::SideStore;
use crate::sort::{sort_by_key, sort_packed, try_vec};
use crate::storage::{FrozenBytes, Words};
use crate::table::{
    field_len_or_zero, field_matches, value_width, Builder, Probe, Table, MAX_FBITS, MAX_LOAD,
};
use std::sync::Arc;

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
    /// Heap bytes held: the slot table and the side store.
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

    // ---- values --------------------------------------------------------------
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

    // ---- bulk operations -------------------------------------------------------
    /// Inserts many `(hash, value)` pairs, all or nothing. The result is
    /// that of inserting them one by one in order, except that a large batch
    /// may grow the maplet before it rather than during it, so entries may
    /// keep more fingerprint bits.
    ///
    /// A large batch for a packed operator (counter, max, min) is sorted by
    /// hash, which is the table's own order, and merged into the table in one
    /// linear pass; the pass builds a new table beside the old one, so it
    /// briefly needs memory for both. Smaller batches, and batches for
    /// operators whose values live in the side store, are inserted one by
    /// one, keeping a record of each change to undo if a later pair fails.
    ///
    /// # Errors
    /// `(index, error)` of the first pair that failed: a value the operator
    /// rejects, a merge that fails (a counter overflow, vectors of different
    /// lengths, a custom function's error) or the memory limit. The maplet is
    /// then exactly as it was before the call.
    pub fn insert_many_hashes(
        &mut self,
        pairs: Vec<(u64, O::Value)>,
    ) -> std::result::Result<(), (usize, MapletError)> {
        self.writable().map_err(|e| (0, e))?;
        for (i, (h, v)) in pairs.iter().enumerate() {
            if !self.shard.owns(*h) {
                return Err((i, self.shard.foreign(*h)));
            }
            self.op.validate(v).map_err(|e| (i, e))?;
        }
        // A batch is merged in one pass over the table when that beats
        // inserting its pairs one by one.
        if O::PACKED && pairs.len() >= 1024 && pairs.len() * 32 >= self.len() {
            if let Ok(table) = self.merge_batch(&Batch::Pairs(&pairs)) {
                self.replace_table(table);
                return Ok(());
            }
            // A pair that fails to merge, or the memory limit: the one-by-one
            // replay below finds the exact pair, and is undone.
        }
        self.atomically(|m| m.insert_one_by_one(pairs))
    }

    /// Inserts `value` under each of `hashes`: the same as
    /// [`insert_many_hashes`](Maplet::insert_many_hashes) with that value in
    /// every pair, without building the pairs (for counting occurrences,
    /// half the memory).
    ///
    /// # Errors
    /// As [`insert_many_hashes`](Maplet::insert_many_hashes); the maplet is
    /// then exactly as it was before the call.
    pub fn insert_hashes_with_value(
        &mut self,
        hashes: &[u64],
        value: O::Value,
    ) -> std::result::Result<(), (usize, MapletError)> {
        self.writable().map_err(|e| (0, e))?;
        if hashes.is_empty() {
            return Ok(());
        }
        self.op.validate(&value).map_err(|e| (0, e))?;
        if let Some(i) = hashes.iter().position(|&h| !self.shard.owns(h)) {
            return Err((i, self.shard.foreign(hashes[i])));
        }
        if O::PACKED && hashes.len() >= 1024 && hashes.len() * 32 >= self.len() {
            if let Ok(table) = self.merge_batch(&Batch::Same(hashes, &value)) {
                self.replace_table(table);
                return Ok(());
            }
        }
        self.atomically(|m| m.insert_one_by_one(hashes.iter().map(|&h| (h, value.clone()))))
    }

    #[cfg(feature = "kmers")]
    /// Inserts `value` under each of `hashes` one at a time, each home
    /// slot's header and slots prefetched 16 inserts ahead (a header
    /// alone, 8 ahead, left the slot load missing the cache), inside an open
    /// [`atomically`](Maplet::atomically) batch. Unlike
    /// [`insert_hashes_with_value`](Maplet::insert_hashes_with_value) it
    /// needs no memory beyond the table: the first call of the batch sets
    /// the table aside for the undo and goes on in a copy (free when the
    /// maplet is empty: a new table's pages are not touched until written),
    /// so no change needs a journal entry.
    pub(crate) fn insert_hashes_streaming(
        &mut self,
        hashes: &[u64],
        value: O::Value,
    ) -> std::result::Result<(), (usize, MapletError)> {
        const AHEAD: usize = 16;
        // Before any copy: a memory-mapped maplet refuses at once.
        self.writable().map_err(|e| (0, e))?;
        self.set_table_aside();
        for (i, &h) in hashes.iter().enumerate() {
            if let Some(&next) = hashes.get(i + AHEAD) {
                let q = self.place(next).0;
                self.table.prefetch(q);
                self.table.prefetch_home(q);
            }
            self.insert_hash(h, value.clone()).map_err(|e| (i, e))?;
        }
        Ok(())
    }

    #[cfg(feature = "kmers")]
    /// In an open batch that has not yet kept a table for its undo, keeps
    /// the current one (see [`replace_table`](Maplet::replace_table)) and
    /// continues in a copy of it.
    fn set_table_aside(&mut self) {
        if !self.undo_lacks_table() {
            return;
        }
        let copy = if self.table.len() == 0 {
            Table::new(
                self.table.canonical(),
                self.table.fbits(),
                self.table.vbits(),
                self.table.signed(),
            )
        } else {
            self.table.clone()
        };
        self.replace_table(copy);
    }

    fn insert_one_by_one<I>(&mut self, pairs: I) -> std::result::Result<(), (usize, MapletError)>
    where
        I: IntoIterator<Item = (u64, O::Value)>,
    {
        for (i, (h, v)) in pairs.into_iter().enumerate() {
            self.insert_hash(h, v).map_err(|e| (i, e))?;
        }
        Ok(())
    }

    /// The table with a batch merged in, in one pass. Packed operators only.
    fn merge_batch(&self, pairs: &Batch<'_, O::Value>) -> Result<Table> {
        // Grow a copy (leaving `self` as it is) until the merged entries can
        // fit, then merge; a merge that overfills stops at once, and the copy
        // grows again. What the merged table must hold at least: the entries
        // stored, and in a table whose fingerprints all have full length the
        // distinct fingerprints of the batch (in a grown table one shorter
        // stored fingerprint may take several of them).
        let mut grown: Option<Table> = None;
        let mut at_least = self.len();
        let fits = |t: &Table, n: usize| n <= t.max_len();
        loop {
            let t = grown.as_ref().unwrap_or(&self.table);
            if fits(t, at_least) {
                let sorted = self.sorted_batch(t, pairs)?;
                if t.uniform() {
                    let distinct = 1
                        + (1..sorted.len())
                            .filter(|&i| sorted.key(i) != sorted.key(i - 1))
                            .count();
                    at_least = at_least.max(distinct);
                }
                if fits(t, at_least) {
                    if let Some(out) = self.merge_sorted_into(t, &sorted)? {
                        self.check_memory(out.heap_bytes())?;
                        return Ok(out);
                    }
                    at_least = t.max_len() + 1;
                }
            }
            let f = self.fbits_after_doubling_of(t);
            self.check_memory(t.bytes_after(2 * t.canonical(), f, t.vbits()))?;
            self.check_can_double(t)?;
            grown = Some(t.doubled(f, t.vbits(), t.signed())?);
        }
    }

    /// A batch as `t`'s sort keys and packed values, sorted by key; an
    /// error if the memory for it cannot be had.
    fn sorted_batch(&self, t: &Table, batch: &Batch<'_, O::Value>) -> Result<SortedBatch> {
        let key_bits = t.sort_key_bits();
        let n = batch.len();
        let (lo, hi) = (0..n).fold((0i64, 0i64), |(lo, hi), i| {
            let bits = self.op.pack(batch.value(i));
            (lo.min(bits), hi.max(bits))
        });
        let signed = lo < 0;
        let vbits = value_width(lo, signed).max(value_width(hi, signed));
        if key_bits + vbits <= 64 {
            let vmask = (1u64 << vbits) - 1;
            let entry = |i: usize| {
                let bits = self.op.pack(batch.value(i)) as u64 & vmask;
                (t.sort_key(self.shard.local(batch.hash(i))) << vbits) | bits
            };
            let entries = if key_bits + vbits <= 32 {
                let mut e: Vec<u32> = try_vec(n)?;
                e.extend((0..n).map(|i| entry(i) as u32));
                sort_packed(&mut e, key_bits, vbits)?;
                Entries::Narrow(e)
            } else {
                let mut e: Vec<u64> = try_vec(n)?;
                e.extend((0..n).map(entry));
                sort_packed(&mut e, key_bits, vbits)?;
                Entries::Wide(e)
            };
            return Ok(SortedBatch::Packed {
                entries,
                vbits,
                signed,
            });
        }
        let mut pairs: Vec<(u64, i64)> = try_vec(n)?;
        pairs.extend((0..n).map(|i| {
            (
                t.sort_key(self.shard.local(batch.hash(i))),
                self.op.pack(batch.value(i)),
            )
        }));
        sort_by_key(&mut pairs, key_bits)?;
        Ok(SortedBatch::Pairs(pairs))
    }

    /// `t` with a batch of `(sort key, packed value)` pairs, sorted by key,
    /// merged in, in one pass; `None` as soon as the entries overfill `t`'s
    /// home slots (past that, each entry would land ever farther from home).
    fn merge_sorted_into(&self, t: &Table, sorted: &SortedBatch) -> Result<Option<Table>> {
        let limit = t.max_len();
        let base = self;
        let mut out = Builder::new(t.canonical(), t.fbits(), t.vbits(), t.signed())?;
        let push = |out: &mut Builder, q: u64, f: u64, v: &O::Value| -> Result<()> {
            let bits = base.op.pack(v);
            if !out.table().fits(bits) {
                let (vbits, signed) = widths_for(out.table().vbits(), out.table().signed(), bits);
                out.widen_values(vbits, signed)?;
            }
            out.push(q, f, bits)?;
            Ok(())
        };
        if t.len() == 0 {
            // Into an empty table (a bulk load): nothing to match, so each
            // run of equal fields in the batch becomes one entry.
            let mut cur: Option<(u64, u64, O::Value)> = None;
            for i in 0..sorted.len() {
                let (key, bits) = sorted.get(i).expect("i < len");
                let (q, f) = t.locate_sort_key(key);
                let field = base.field_for_new(t, f);
                let v = base.op.unpack(bits);
                match &mut cur {
                    Some((cq, cf, cv)) if *cq == q && *cf == field => {
                        *cv = base.op.merge(cv, &v)?
                    }
                    _ => {
                        if let Some((cq, cf, cv)) = cur.replace((q, field, v)) {
                            push(&mut out, cq, cf, &cv)?;
                            if out.table().len() > limit {
                                return Ok(None);
                            }
                        }
                    }
                }
            }
            if let Some((cq, cf, cv)) = cur {
                push(&mut out, cq, cf, &cv)?;
            }
            return Ok((out.table().len() <= limit).then(|| out.finish()));
        }
        let mut runs = t.runs().peekable();
        let mut next = 0usize;
        let mut existing: Vec<(u64, O::Value)> = Vec::new();
        let mut created: Vec<(u64, O::Value)> = Vec::new();
        while next < sorted.len() || runs.peek().is_some() {
            let batch_q = sorted.get(next).map(|p| t.locate_sort_key(p.0).0);
            let q = match (runs.peek(), batch_q) {
                (Some(r), Some(b)) => r.0.min(b),
                (Some(r), None) => r.0,
                (None, Some(b)) => b,
                (None, None) => break,
            };
            existing.clear();
            if runs.peek().is_some_and(|r| r.0 == q) {
                let (_, start, end) = runs.next().unwrap();
                existing.extend((start..=end).map(|s| (t.field(s), base.op.unpack(t.value(s)))));
            }
            created.clear();
            while let Some((key, bits)) = sorted.get(next) {
                let v = &base.op.unpack(bits);
                let (iq, f) = t.locate_sort_key(key);
                let new_field = base.field_for_new(t, f);
                if iq != q {
                    break;
                }
                next += 1;
                let best = existing
                    .iter()
                    .enumerate()
                    .filter(|(_, e)| field_matches(e.0, f))
                    .min_by_key(|(_, e)| e.0.trailing_zeros())
                    .map(|(k, _)| k);
                match best {
                    Some(k) => existing[k].1 = base.op.merge(&existing[k].1, v)?,
                    None => match created.last_mut() {
                        Some(c) if c.0 == new_field => c.1 = base.op.merge(&c.1, v)?,
                        _ => created.push((new_field, v.clone())),
                    },
                }
            }
            // Both lists are sorted by field; emit them merged.
            let (mut a, mut b) = (existing.iter().peekable(), created.iter().peekable());
            loop {
                let e = match (a.peek(), b.peek()) {
                    (Some(x), Some(y)) if x.0 <= y.0 => a.next(),
                    (Some(_), Some(_)) => b.next(),
                    (Some(_), None) => a.next(),
                    (None, Some(_)) => b.next(),
                    (None, None) => break,
                };
                let (f, v) = e.unwrap();
                push(&mut out, q, *f, v)?;
            }
            if out.table().len() > limit {
                return Ok(None);
            }
        }
        Ok(Some(out.finish()))
    }

    /// Inserts `keys[i]` with `values[i]` for every `i`, like
    /// [`insert_many_hashes`](Maplet::insert_many_hashes).
    ///
    /// # Errors
    /// As [`insert_many_hashes`](Maplet::insert_many_hashes); also when the
    /// slices differ in length (index 0, nothing inserted).
    pub fn insert_many<K: Key>(
        &mut self,
        keys: &[K],
        values: Vec<O::Value>,
    ) -> std::result::Result<(), (usize, MapletError)> {
        if keys.len() != values.len() {
            return Err((
                0,
                MapletError::InvalidParameter(format!(
                    "{} keys but {} values",
                    keys.len(),
                    values.len()
                )),
            ));
        }
        let seed = self.options.seed;
        self.insert_many_hashes(keys.iter().map(|k| k.hash_with(seed)).zip(values).collect())
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
            op: self.op.clone(),
            table,
            side: self.side.clone(),
            expected_items: self.expected_items,
            false_positive_rate: self.false_positive_rate,
            options: self.options,
            initial_canonical: self.initial_canonical,
            initial_fbits: self.initial_fbits,
            shard: self.shard,
            journal: self.journal.clone(),
            trust: self.trust.clone(),
        }
    }
}

/// A batch of inserts: (hash, value) pairs, or one value for many hashes.
enum Batch<'a, V> {
    Pairs(&'a [(u64, V)]),
    Same(&'a [u64], &'a V),
}

impl<V> Batch<'_, V> {
    fn len(&self) -> usize {
        match self {
            Batch::Pairs(p) => p.len(),
            Batch::Same(h, _) => h.len(),
        }
    }
    #[inline]
    fn hash(&self, i: usize) -> u64 {
        match self {
            Batch::Pairs(p) => p[i].0,
            Batch::Same(h, _) => h[i],
        }
    }
    #[inline]
    fn value(&self, i: usize) -> &V {
        match self {
            Batch::Pairs(p) => &p[i].1,
            Batch::Same(_, v) => v,
        }
    }
}

/// A batch sorted by sort key: each entry a sort key and packed value bits.
/// Where the two fit in one word together (the usual case: a few dozen key
/// bits and small values), an entry takes 8 bytes instead of 16, or 4 where
/// they fit in 32 bits (up to about a million slots with small counts),
/// which halves or quarters the memory the sort moves.
enum SortedBatch {
    /// Key above `vbits` value bits (sign-extended if `signed`).
    Packed {
        entries: Entries,
        vbits: u32,
        signed: bool,
    },
    /// Key and value side by side.
    Pairs(Vec<(u64, i64)>),
}

/// Packed batch entries in words of 4 or 8 bytes.
enum Entries {
    Narrow(Vec<u32>),
    Wide(Vec<u64>),
}

impl Entries {
    #[inline]
    fn len(&self) -> usize {
        match self {
            Entries::Narrow(e) => e.len(),
            Entries::Wide(e) => e.len(),
        }
    }

    #[inline]
    fn get(&self, i: usize) -> Option<u64> {
        match self {
            Entries::Narrow(e) => e.get(i).map(|&x| u64::from(x)),
            Entries::Wide(e) => e.get(i).copied(),
        }
    }
}

impl SortedBatch {
    fn len(&self) -> usize {
        match self {
            SortedBatch::Packed { entries, .. } => entries.len(),
            SortedBatch::Pairs(p) => p.len(),
        }
    }

    /// The sort key of entry `i`.
    #[inline]
    fn key(&self, i: usize) -> u64 {
        match self {
            SortedBatch::Packed { entries, vbits, .. } => entries.get(i).expect("i < len") >> vbits,
            SortedBatch::Pairs(p) => p[i].0,
        }
    }

    /// Entry `i` as (sort key, packed value), if there is one.
    #[inline]
    fn get(&self, i: usize) -> Option<(u64, i64)> {
        match self {
            SortedBatch::Packed {
                entries,
                vbits,
                signed,
            } => entries.get(i).map(|e| {
                let sh = 64 - vbits;
                let v = if *signed {
                    ((e << sh) as i64) >> sh
                } else {
                    ((e << sh) >> sh) as i64
                };
                (e >> vbits, v)
            }),
            SortedBatch::Pairs(p) => p.get(i).copied(),
        }
    }
}
