//! Building a table front to back: [`Builder`] takes entries in home-slot
//! order and writes each where it belongs, with no shifting; doubling a
//! table rebuilds it through one.

use super::bits::{field_len, mask, write_bits};
use super::{Table, SLOTS};
use crate::storage::AllocError;

/// Builds a table from entries given in home-slot order (fields ascending
/// within a home slot), with no shifting.
pub(crate) struct Builder {
    table: Table,
    next_free: usize,
    last_q: Option<u64>,
    /// Blocks `0..settled` have their final spill.
    settled: usize,
    /// The table's slots (cached: counting them divides).
    nslots: usize,
}

impl Builder {
    /// A builder for a table of `canonical` home slots.
    /// An error if the table's memory cannot be had.
    pub(crate) fn new(
        canonical: u64,
        fbits: u32,
        vbits: u32,
        signed: bool,
    ) -> Result<Builder, AllocError> {
        let table = Table::try_new(canonical, fbits, vbits, signed)?;
        Ok(Builder {
            nslots: table.nslots(),
            table,
            next_free: 0,
            last_q: None,
            settled: 1,
        })
    }

    /// Sets the spill of blocks `settled..upto`. Entries arrive in home-slot
    /// order, so when none to come has its home before block `b`, those
    /// before it fill every slot from `64 b` up to `next_free`: the spill is
    /// that many. Each block is set once, whatever the clustering.
    fn settle(&mut self, upto: usize) {
        for b in self.settled..upto.min(self.table.nblocks()) {
            let spill = self.next_free.saturating_sub(b * SLOTS);
            if spill > 0 {
                self.table.add_spill(b, spill as i64);
            }
        }
        self.settled = self.settled.max(upto);
    }

    /// The table being built (to check widths).
    pub(crate) fn table(&self) -> &Table {
        &self.table
    }

    /// Widens the values of the table being built.
    pub(crate) fn widen_values(&mut self, vbits: u32, signed: bool) -> Result<(), AllocError> {
        // Entries lie below `next_free`, spills in blocks below `settled`.
        let used = self
            .next_free
            .div_ceil(2 * SLOTS)
            .max(self.settled.div_ceil(2));
        self.table.widen_values_of_pairs(vbits, signed, 0, used)
    }

    /// Appends an entry; `v` must fit the table's value width.
    ///
    /// # Errors
    /// When the overflow area must grow and the memory cannot be had.
    #[inline]
    pub(crate) fn push(&mut self, q: u64, field: u64, v: i64) -> Result<(), AllocError> {
        let home_block = q as usize / SLOTS;
        if home_block >= self.settled {
            self.settle(home_block + 1);
        }
        let same_run = self.last_q == Some(q);
        let pos = if same_run {
            self.next_free
        } else {
            debug_assert!(self.last_q.is_none_or(|l| l < q));
            (q as usize).max(self.next_free)
        };
        while pos >= self.nslots {
            self.table.push_block()?;
            self.nslots = self.table.nslots();
        }
        let t = &mut self.table;
        let (fbits, width) = (t.fbits as usize, t.width);
        let bit = t.slot_bit(pos);
        let run_at = t.hdr(pos / SLOTS, 2 + (pos / SLOTS) % 2);
        // Same run: the slot before ends it no more (a runend bit to clear);
        // a new run: its home slot becomes occupied (a bit to set).
        let (flip_at, flip) = if same_run {
            let prev = pos - 1;
            (t.hdr(prev / SLOTS, 2 + (prev / SLOTS) % 2), prev % SLOTS)
        } else {
            (t.hdr(home_block, home_block % 2), q as usize % SLOTS)
        };
        let raw = v as u64 & t.vmask;
        let w: &mut [u64] = &mut t.words;
        if width <= 64 {
            write_bits(w, bit, width as u32, field | raw << fbits);
        } else {
            write_bits(w, bit, fbits as u32, field);
            write_bits(w, bit + fbits, (width - fbits) as u32, raw);
        }
        if same_run {
            w[flip_at] &= !(1 << flip);
        } else {
            w[flip_at] |= 1 << flip;
        }
        w[run_at] |= 1 << (pos % SLOTS);
        t.len += 1;
        t.len_hist[field_len(field, t.fbits) as usize] += 1;
        self.last_q = Some(q);
        self.next_free = pos + 1;
        Ok(())
    }

    /// The finished table.
    pub(crate) fn finish(mut self) -> Table {
        self.settle(self.table.nblocks());
        self.table
    }

    #[cfg(feature = "kmers")]
    /// How many pairs of blocks from the first are final: no later
    /// [`push`](Builder::push) or [`finish`](Builder::finish) changes them.
    /// A push writes its slot at `next_free` or later, may clear the runend
    /// of slot `next_free - 1`, marks a home slot at `last_q` or later, and
    /// settles the spill of blocks from `settled` on.
    fn final_pairs(&self) -> usize {
        let by_slot = self.next_free.saturating_sub(1) / (2 * SLOTS);
        let by_home = self.last_q.map_or(0, |q| q as usize / (2 * SLOTS));
        by_slot.min(by_home).min(self.settled / 2)
    }

    #[cfg(feature = "kmers")]
    /// Hands the words of the final pairs not handed out yet to `out`,
    /// oldest first, and gives their memory back (see
    /// [`Words::release`](crate::storage::Words::release)). Called now and
    /// then while pushing, it keeps only the unfinished end of the table in
    /// memory; `drained` counts the pairs handed out so far.
    pub(crate) fn drain_final<E>(
        &mut self,
        drained: &mut usize,
        out: &mut impl FnMut(&[u64]) -> std::result::Result<(), E>,
    ) -> std::result::Result<(), E> {
        let upto = self.final_pairs();
        if upto > *drained {
            let stride = self.table.stride;
            out(&self.table.words[*drained * stride..upto * stride])?;
            self.table
                .words
                .release_front(*drained * stride, upto * stride);
            *drained = upto;
        }
        Ok(())
    }

    #[cfg(feature = "kmers")]
    /// [`finish`](Builder::finish) for a table drained as it was built: the
    /// rest of the words go to `out`, and the table returned has the shape
    /// and counts of the whole but none of its words in memory.
    pub(crate) fn finish_drained<E>(
        mut self,
        drained: usize,
        out: &mut impl FnMut(&[u64]) -> std::result::Result<(), E>,
    ) -> std::result::Result<Table, E> {
        self.settle(self.table.nblocks());
        let (stride, end) = (self.table.stride, self.table.words.len());
        out(&self.table.words[drained * stride..])?;
        self.table.words.release_front(drained * stride, end);
        Ok(self.table)
    }
}

impl Table {
    /// The table with twice the home slots. Each entry moves to home slot
    /// `2q` or `2q + 1` by its first fingerprint bit, which it loses.
    /// `fbits`, `vbits` and `signed` may be wider than now. Every entry must
    /// have a fingerprint bit left (`len_hist()[0] == 0`: the maplet refuses
    /// to grow otherwise, rather than copy such an entry into both halves).
    /// The new table's memory is allocated first: an error if it cannot be
    /// had.
    pub(crate) fn doubled(
        &self,
        fbits: u32,
        vbits: u32,
        signed: bool,
    ) -> Result<Table, AllocError> {
        assert!(fbits >= self.fbits && vbits >= self.vbits && (signed || !self.signed));
        let canonical = self
            .canonical
            .checked_mul(2)
            .ok_or(AllocError { bytes: usize::MAX })?;
        let mut b = Builder::new(canonical, fbits, vbits, signed)?;
        let top = 1u64 << (self.fbits - 1);
        let fmask = mask(self.fbits);
        let widen = fbits - self.fbits;
        let mut lo: Vec<(u64, i64)> = Vec::new();
        let mut hi: Vec<(u64, i64)> = Vec::new();
        for (q, start, end) in self.runs() {
            lo.clear();
            hi.clear();
            for s in start..=end {
                let f = self.field(s);
                let v = self.value(s);
                debug_assert!(f != top, "an entry with no fingerprint bit left to move");
                let nf = ((f << 1) & fmask) << widen;
                if f & top == 0 {
                    lo.push((nf, v));
                } else {
                    hi.push((nf, v));
                }
            }
            lo.sort_unstable_by_key(|e| e.0);
            hi.sort_unstable_by_key(|e| e.0);
            for &(f, v) in &lo {
                b.push(2 * q, f, v)?;
            }
            for &(f, v) in &hi {
                b.push(2 * q + 1, f, v)?;
            }
        }
        Ok(b.finish())
    }
}
