//! One key written: insert, delete, remove, clear.

use super::journal::Step;
use super::Maplet;
use crate::error::Result;
use crate::hash::Key;
use crate::operator::Operator;
use crate::side::SideStore;
use crate::table::{Probe, Table};

impl<O: Operator> Maplet<O> {
    /// Inserts `value` under `key`, merging with what its fingerprint holds.
    ///
    /// # Errors
    /// The operator's errors (overflow, mismatched lengths, a failing custom
    /// function), [`MapletError::MemoryLimit`], [`MapletError::OutOfMemory`]
    /// when growing or widening needs memory the system refuses,
    /// [`MapletError::CapacityExhausted`] when a fixed-precision maplet can
    /// grow no further (see [`Options::fixed_precision`]),
    /// [`MapletError::ReadOnly`] for a memory-mapped maplet, and
    /// [`MapletError::Corrupt`] for a copy of a memory-mapped maplet that
    /// `verify` found damaged; the maplet is unchanged.
    ///
    /// [`MapletError::MemoryLimit`]: crate::MapletError::MemoryLimit
    /// [`MapletError::OutOfMemory`]: crate::MapletError::OutOfMemory
    /// [`MapletError::CapacityExhausted`]: crate::MapletError::CapacityExhausted
    /// [`Options::fixed_precision`]: super::Options::fixed_precision
    /// [`MapletError::ReadOnly`]: crate::MapletError::ReadOnly
    /// [`MapletError::Corrupt`]: crate::MapletError::Corrupt
    pub fn insert<K: Key + ?Sized>(&mut self, key: &K, value: O::Value) -> Result<()> {
        let h = self.hash(key);
        self.insert_hash(h, value)
    }

    /// The field a new entry of query field `f` gets in table `t`: the full
    /// fingerprint, or with fixed precision as many bits as entries written
    /// at the initial size keep after the table's doublings.
    pub(super) fn field_for_new(&self, t: &Table, f: u64) -> u64 {
        if !self.options.fixed_precision {
            return f;
        }
        let w = t.fbits();
        let doublings = (t.canonical() / self.initial_canonical).trailing_zeros();
        let len = (self.initial_fbits - 1)
            .saturating_sub(doublings)
            .min(w - 1);
        let fingerprint = f >> 1 >> (w - 1 - len);
        (fingerprint << 1 << (w - 1 - len)) | (1 << (w - 1 - len))
    }

    /// [`insert`](Maplet::insert) by a precomputed [`hash`](Maplet::hash).
    ///
    /// # Errors
    /// As [`insert`](Maplet::insert).
    pub fn insert_hash(&mut self, hash: u64, value: O::Value) -> Result<()> {
        self.writable()?;
        if !self.shard.owns(hash) {
            return Err(self.shard.foreign(hash));
        }
        self.op.validate(&value)?;
        let (q, f) = self.place(hash);
        // The slots are read or written next to the header: start both loads.
        self.table.prefetch_insert(q);
        let (pos, run_end) = match self.table.probe(q, f, self.field_for_new(&self.table, f)) {
            Probe::Found { slot, bit } => {
                if O::PACKED {
                    // The value is read once, where the probe found it.
                    let old = self.table.value_at_bit(bit);
                    let merged = self.op.merge(&self.op.unpack(old), &value)?;
                    self.record(Step::Replaced(hash, old));
                    let bits = self.op.pack(&merged);
                    if self.table.fits(bits) {
                        self.table.set_value_at_bit(bit, bits);
                        return Ok(());
                    }
                    return self.replace_value(slot, merged);
                }
                let merged = self.op.merge(&self.value_ref(slot), &value)?;
                return self.replace_value(slot, merged);
            }
            Probe::Missing { pos, run_end } => (pos, run_end),
        };
        // A new entry. The common case, a packed value that fits in a table
        // that need not grow, takes the short path; the rest is kept out of
        // line so that this path stays small.
        if O::PACKED && !self.options.fixed_precision && self.table.len() < self.table.max_len() {
            let bits = self.op.pack(&value);
            if self.table.fits(bits) {
                self.table.insert_at(q, f, bits, pos, run_end)?;
                self.record(Step::Created(hash));
                return Ok(());
            }
        }
        self.insert_new(hash, value, q, f, pos, run_end)
    }

    /// [`insert_hash`](Maplet::insert_hash) of a key whose fingerprint is
    /// absent (home slot `q`, query field `f`; the new entry goes at `pos`,
    /// the run ends at `run_end`), making room first where needed: doubling
    /// the table, widening its values, or storing the value aside.
    #[cold]
    #[inline(never)]
    fn insert_new(
        &mut self,
        hash: u64,
        value: O::Value,
        q: u64,
        f: u64,
        pos: usize,
        run_end: Option<usize>,
    ) -> Result<()> {
        let grow = self.table.len() >= self.table.max_len();
        let bits = if O::PACKED {
            self.op.pack(&value)
        } else {
            self.side.next_index() as i64
        };
        let (vbits, signed) = self.widths_for(bits);
        let fbits = if grow {
            self.fbits_after_doubling()
        } else {
            self.table.fbits()
        };
        let canonical = self.table.canonical() * if grow { 2 } else { 1 };
        let (mut q, mut f, mut pos, mut run_end) = (q, f, pos, run_end);
        // A side-stored value counts what it owns, as the operator reports
        // it, against the memory limit (and is measured only if there is one).
        let side_extra = if O::PACKED || self.options.memory_limit.is_none() {
            0
        } else {
            self.side
                .bytes_for_one_more()
                .saturating_add(self.op.heap_size(&value))
        };
        if grow || vbits != self.table.vbits() || signed != self.table.signed() {
            self.check_memory(
                self.table
                    .bytes_after(canonical, fbits, vbits)
                    .saturating_add(side_extra),
            )?;
            if !O::PACKED {
                self.side.try_reserve_one()?;
            }
            if grow {
                // Doubled and widened in one new table: all or nothing.
                self.grow_to(fbits, vbits, signed)?;
                (q, f) = self.place(hash);
                match self.table.probe(q, f, self.field_for_new(&self.table, f)) {
                    Probe::Missing { pos: p, run_end: e } => (pos, run_end) = (p, e),
                    Probe::Found { .. } => unreachable!("doubling changed which entries match"),
                }
            } else {
                self.widen_values(vbits, signed)?;
            }
        } else if !O::PACKED {
            self.check_memory(self.table.heap_bytes().saturating_add(side_extra))?;
            self.side.try_reserve_one()?;
        }
        // The overflow area grows first, so that a refusal leaves nothing
        // behind (no side-store value without its entry).
        self.table.make_room_from(pos)?;
        let bits = if O::PACKED {
            bits
        } else {
            self.side.insert(value, &self.op) as i64
        };
        let field = self.field_for_new(&self.table, f);
        self.table.insert_at(q, field, bits, pos, run_end)?;
        self.record(Step::Created(hash));
        Ok(())
    }

    /// Stores `value` in slot `s`, widening packed values if needed.
    fn replace_value(&mut self, s: usize, value: O::Value) -> Result<()> {
        if O::PACKED {
            let bits = self.op.pack(&value);
            if !self.table.fits(bits) {
                let (vbits, signed) = self.widths_for(bits);
                self.check_memory(self.table.bytes_after(
                    self.table.canonical(),
                    self.table.fbits(),
                    vbits,
                ))?;
                self.widen_values(vbits, signed)?;
            }
            self.table.set_value(s, bits);
        } else {
            // A merged value that owns more than the old one (a longer set)
            // counts the difference against the limit.
            let i = self.table.value(s) as usize;
            if self.options.memory_limit.is_some() {
                let (old, new) = (
                    self.side.value_heap_size(i, &self.op),
                    self.op.heap_size(&value),
                );
                if new > old {
                    self.check_memory(self.table.heap_bytes().saturating_add(new - old))?;
                }
            }
            self.side.replace(i, value, &self.op);
        }
        Ok(())
    }

    /// Takes `value` out of `key`'s entry with the operator's
    /// [`subtract`](Operator::subtract): a counter subtracts (removing the
    /// entry at zero); other operators remove the entry. Returns whether an
    /// entry was found. A colliding key shares the entry, so deleting one key
    /// affects the other's answer the same way: deleting a key that was never
    /// inserted can lower another key's answer below the truth. Delete only
    /// what you inserted. A key with entries of several fingerprint lengths
    /// (after merging maplets that grew differently) is taken out of its
    /// longest entry first, then the next ([`Operator::take_from`]).
    ///
    /// # Errors
    /// The operator's errors; the maplet is unchanged.
    pub fn delete<K: Key + ?Sized>(&mut self, key: &K, value: &O::Value) -> Result<bool> {
        let h = self.hash(key);
        self.delete_hash(h, value)
    }

    /// [`delete`](Maplet::delete) by a precomputed [`hash`](Maplet::hash).
    ///
    /// # Errors
    /// As [`delete`](Maplet::delete).
    pub fn delete_hash(&mut self, hash: u64, value: &O::Value) -> Result<bool> {
        self.writable()?;
        if !self.shard.owns(hash) {
            return Ok(false);
        }
        let (q, f) = self.place(hash);
        let Some(mut s) = self.table.best_match(q, f) else {
            return Ok(false);
        };
        // A key has several entries only after a merge of maplets that grew
        // differently: the value comes off the longest first, and what an
        // entry cannot give (see `Operator::take_from`) off the next one.
        // The last entry takes whatever is left.
        let mut removed = value.clone();
        let mut left = self.table.matches(q, f).count();
        loop {
            left -= 1;
            let (keep, rest) = if left == 0 {
                (self.op.subtract(&self.value_ref(s), &removed)?, None)
            } else {
                self.op.take_from(&self.value_ref(s), &removed)?
            };
            match keep {
                Some(v) => self.replace_value(s, v)?,
                None => self.remove_slot(q, s),
            }
            match (rest, self.table.best_match(q, f)) {
                (Some(r), Some(next)) => (removed, s) = (r, next),
                _ => break,
            }
        }
        Ok(true)
    }

    /// Removes `key`'s entry whatever it holds. Returns whether one was found.
    ///
    /// # Errors
    /// [`MapletError::ReadOnly`] for a memory-mapped maplet.
    ///
    /// [`MapletError::ReadOnly`]: crate::MapletError::ReadOnly
    pub fn remove<K: Key + ?Sized>(&mut self, key: &K) -> Result<bool> {
        let h = self.hash(key);
        self.remove_hash(h)
    }

    /// [`remove`](Maplet::remove) by a precomputed [`hash`](Maplet::hash).
    ///
    /// # Errors
    /// As [`remove`](Maplet::remove).
    pub fn remove_hash(&mut self, hash: u64) -> Result<bool> {
        self.writable()?;
        if !self.shard.owns(hash) {
            return Ok(false);
        }
        let (q, f) = self.place(hash);
        // Every entry of the key: it has several after a merge of maplets
        // that grew differently.
        let mut found = false;
        while let Some(s) = self.table.best_match(q, f) {
            self.remove_slot(q, s);
            found = true;
        }
        Ok(found)
    }

    fn remove_slot(&mut self, q: u64, s: usize) {
        if !O::PACKED {
            self.side.remove(self.table.value(s) as usize, &self.op);
        }
        self.table.remove(q, s);
    }

    /// Removes everything and returns to the initial size.
    ///
    /// # Errors
    /// [`MapletError::ReadOnly`] for a memory-mapped maplet.
    ///
    /// [`MapletError::ReadOnly`]: crate::MapletError::ReadOnly
    pub fn clear(&mut self) -> Result<()> {
        // The old words are dropped, not changed: borrowed ones need no copy.
        self.writable_in_place()?;
        self.table = Table::try_new(self.initial_canonical, self.initial_fbits, 1, false)?;
        self.side = SideStore::default();
        self.side
            .count_values(&self.op, self.options.memory_limit.is_some());
        Ok(())
    }
}
