//! Bulk inserts: many pairs at once, all or nothing, sorted and merged in one
//! pass when large.

use super::{widths_for, Maplet};
use crate::error::{MapletError, Result};
use crate::hash::Key;
use crate::operator::Operator;
use crate::sort::{sort_by_key, sort_packed, try_vec};
use crate::table::{field_matches, value_width, Builder, Table};

impl<O: Operator> Maplet<O> {
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
