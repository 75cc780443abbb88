//! Keys read: query, contains, their batches, entries and stats.

use super::{Entry, Maplet, Stats};
use crate::hash::Key;
use crate::operator::Operator;
use crate::table::field_len_or_zero;

impl<O: Operator> Maplet<O> {
    /// The value stored for `key`, or `None` if its fingerprint is absent.
    pub fn query<K: Key + ?Sized>(&self, key: &K) -> Option<O::Value> {
        self.query_hash(self.hash(key))
    }

    /// [`query`](Maplet::query) by a precomputed [`hash`](Maplet::hash).
    #[inline(always)]
    pub fn query_hash(&self, hash: u64) -> Option<O::Value> {
        if !self.shard.owns(hash) {
            return None;
        }
        let (q, f) = self.place(hash);
        self.table.prefetch_home(q);
        if self.table.uniform() {
            // Every fingerprint has full length: at most one entry matches.
            let (_, raw) = self.table.find(q, f)?;
            let v = self.table.value_of_raw(raw);
            return Some(if O::PACKED {
                self.op.unpack(v)
            } else {
                self.side.get(v as usize).clone()
            });
        }
        self.query_folded(q, f)
    }

    /// [`query_hash`](Maplet::query_hash) in a table that holds
    /// fingerprints of several lengths, where several entries can match:
    /// out of line, so that the common path stays small enough to inline.
    #[cold]
    #[inline(never)]
    fn query_folded(&self, q: u64, f: u64) -> Option<O::Value> {
        // Several entries match only when fingerprints of different lengths
        // share a prefix (after growth); the answer folds them all, in slot
        // order.
        let mut acc: Option<O::Value> = None;
        for s in self.table.matches(q, f) {
            acc = Some(match acc {
                None => self.value_at(s),
                Some(a) => self.op.merge(&a, &self.value_ref(s)).unwrap_or(a),
            });
        }
        acc
    }

    /// Whether `key`'s fingerprint is present.
    pub fn contains<K: Key + ?Sized>(&self, key: &K) -> bool {
        self.contains_hash(self.hash(key))
    }

    /// [`contains`](Maplet::contains) by a precomputed [`hash`](Maplet::hash).
    #[inline]
    pub fn contains_hash(&self, hash: u64) -> bool {
        if !self.shard.owns(hash) {
            return false;
        }
        let (q, f) = self.place(hash);
        self.table.prefetch_home(q);
        self.table.find(q, f).is_some()
    }

    /// Queries many hashes at once, prefetching each lookup's block a few
    /// lookups ahead so that the memory accesses overlap.
    pub fn query_many_hashes(&self, hashes: &[u64]) -> Vec<Option<O::Value>> {
        self.prefetched(hashes, |h| self.query_hash(h))
    }

    /// `lookup` of every hash, each block prefetched eight lookups ahead.
    pub(super) fn prefetched<T>(&self, hashes: &[u64], lookup: impl Fn(u64) -> T) -> Vec<T> {
        const AHEAD: usize = 8;
        let mut out = Vec::with_capacity(hashes.len());
        for (i, &h) in hashes.iter().enumerate() {
            if let Some(&next) = hashes.get(i + AHEAD) {
                self.table.prefetch(self.place(next).0);
            }
            out.push(lookup(h));
        }
        out
    }

    /// Queries many keys at once (hashed in one pass, then as
    /// [`query_many_hashes`](Maplet::query_many_hashes)).
    pub fn query_many<K: Key>(&self, keys: &[K]) -> Vec<Option<O::Value>> {
        let seed = self.options.seed;
        let hashes: Vec<u64> = keys.iter().map(|k| k.hash_with(seed)).collect();
        self.query_many_hashes(&hashes)
    }

    /// Membership of many hashes at once, prefetching like
    /// [`query_many_hashes`](Maplet::query_many_hashes).
    pub fn contains_many_hashes(&self, hashes: &[u64]) -> Vec<bool> {
        self.prefetched(hashes, |h| self.contains_hash(h))
    }

    /// Every stored entry, in home-slot order.
    pub fn entries(&self) -> impl Iterator<Item = Entry<O::Value>> + '_ {
        let fbits = self.table.fbits();
        self.table.runs().flat_map(move |(q, start, end)| {
            (start..=end).map(move |s| {
                let f = self.table.field(s);
                // Saturating: a memory map not yet verified may hold zero
                // fields inside runs.
                let len = field_len_or_zero(f, fbits);
                Entry {
                    quotient: q,
                    fingerprint: if len == 0 { 0 } else { f >> (fbits - len) },
                    fingerprint_len: len,
                    value: self.value_at(s),
                }
            })
        })
    }

    /// The side-stored values, borrowed (none for packed operators); for
    /// bindings that must visit the foreign objects a maplet holds.
    pub fn stored_values(&self) -> impl Iterator<Item = &O::Value> + '_ {
        self.side.slots().iter().flatten()
    }

    /// Size and accuracy figures.
    pub fn stats(&self) -> Stats {
        let items = self.len();
        // A mapped table holds no heap, but its bytes are the maplet's size.
        let memory_usage = if self.table.is_mapped() {
            self.table
                .table_bytes()
                .saturating_add(self.side.heap_bytes(&self.op))
        } else {
            self.memory_usage()
        };
        let hist = self.table.len_hist();
        let matches: f64 = (0..64)
            .map(|l| hist[l] as f64 * 2f64.powi(-(l as i32)))
            .sum();
        Stats {
            capacity: self.table.canonical(),
            slots: self.table.nslots(),
            items,
            load_factor: items as f64 / self.table.canonical() as f64,
            memory_usage,
            bits_per_item: if items == 0 {
                0.0
            } else {
                memory_usage as f64 * 8.0 / items as f64
            },
            false_positive_rate: self.false_positive_rate,
            expected_false_positive_rate: matches / self.table.canonical() as f64,
            fingerprint_bits: self.table.fbits(),
            value_bits: self.table.vbits(),
        }
    }
}
