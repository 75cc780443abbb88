//! Whole-table passes: the runs in order, and the same entries at other
//! widths, in a new table (reformat) or in place (value widening).

#[cfg(target_arch = "x86_64")]
use super::bits::fast_pdep;
#[cfg(target_endian = "little")]
use super::bits::load_at_bit;
use super::bits::{mask, read_bits, write_bits};
use super::{Table, HDR, SLOTS};
use crate::storage::AllocError;

impl Table {
    /// Every run in home-slot order: `(q, start, end)`.
    pub(crate) fn runs(&self) -> Runs<'_> {
        Runs {
            table: self,
            q: 0,
            next_free: 0,
        }
    }

    /// The same entries in a table with other field and value widths. A
    /// wider field keeps every fingerprint (new entries get longer ones).
    pub(crate) fn reformat(
        &self,
        fbits: u32,
        vbits: u32,
        signed: bool,
    ) -> Result<Table, AllocError> {
        assert!(fbits >= self.fbits);
        let mut t = Table::with_blocks(self.canonical, fbits, vbits, signed, self.nblocks())?;
        t.len = self.len;
        t.len_hist = self.len_hist;
        let shift = fbits - self.fbits;
        for pair in 0..self.nblocks() / 2 {
            t.words[pair * t.stride..pair * t.stride + HDR]
                .copy_from_slice(&self.words[pair * self.stride..pair * self.stride + HDR]);
        }
        for (_, start, end) in self.runs() {
            for s in start..=end {
                t.set_field(s, self.field(s) << shift);
                t.set_value(s, self.value(s));
            }
        }
        Ok(t)
    }

    /// Changes the value width and signedness in place (neither may
    /// narrow what the values need), without a second table: the words
    /// grow at the end, then each pair of blocks moves to its new place,
    /// the last first, so that no pair is overwritten before it is read.
    ///
    /// Pairs of blocks before the first one in use and after the last are
    /// all zero and stay so without being written, so widening a table that
    /// holds entries in a part of its home slots only touches that part's
    /// memory.
    pub(crate) fn widen_values(&mut self, vbits: u32, signed: bool) -> Result<(), AllocError> {
        let npairs = self.nblocks() / 2;
        // A pair holds an entry, or part of a run passing through it, only
        // if its header is not all zero (a run passing through shows as
        // spill).
        let in_use = |p: usize| self.words[p * self.stride..p * self.stride + HDR] != [0; HDR];
        let first = (0..npairs).find(|&p| in_use(p)).unwrap_or(npairs);
        let used = (first..npairs)
            .rev()
            .find(|&p| in_use(p))
            .map_or(first, |p| p + 1);
        self.widen_values_of_pairs(vbits, signed, first, used)
    }

    /// [`widen_values`](Table::widen_values) where every pair of blocks
    /// before `first` and from `used` on is known to be all zero (headers
    /// too), as past the end of a table being built: those stay zero
    /// without a look.
    pub(super) fn widen_values_of_pairs(
        &mut self,
        vbits: u32,
        signed: bool,
        first: usize,
        used: usize,
    ) -> Result<(), AllocError> {
        let (old_vbits, old_signed) = (self.vbits, self.signed);
        assert!(vbits >= old_vbits && (signed || !old_signed));
        let (old_stride, old_width) = (self.stride, self.width);
        let stride = Self::stride_for(self.fbits, vbits);
        let width = (self.fbits + vbits) as usize;
        let npairs = self.nblocks() / 2;
        let fbits = self.fbits as usize;
        let (fmask, old_vmask) = (self.fmask, mask(old_vbits));
        // A slot's value as raw bits of the new width.
        let widen = |raw: u64| -> u64 {
            let raw = if old_signed && old_vbits < 64 {
                let sh = 64 - old_vbits;
                (((raw << sh) as i64) >> sh) as u64
            } else {
                raw
            };
            raw & mask(vbits)
        };
        // Pair `old` (its header and slots) into `new` (all zero), widened.
        let widen_pair = |old: &[u64], new: &mut [u64]| {
            new[..HDR].copy_from_slice(&old[..HDR]);
            // Unsigned slots keep their bits: several at a time, spread
            // apart by one `pdep`.
            #[cfg(target_arch = "x86_64")]
            if !old_signed && width <= 32 && fast_pdep() {
                // SAFETY: `fast_pdep` is true only on CPUs with BMI2.
                #[allow(unsafe_code)]
                unsafe {
                    widen_slots_pdep(old, new, old_width, width)
                };
                return;
            }
            #[cfg(target_endian = "little")]
            if width <= 57 {
                // Slots of both widths fit one unaligned load, and the new
                // words are zero: a slot is written by or-ing it in. An
                // unused slot is all zero and widens to zero, so every slot
                // goes the same way, without a branch.
                let old_mask = mask(old_width as u32);
                let (mut from, mut to) = (HDR * 64, HDR * 64);
                for _ in 0..2 * SLOTS {
                    let slot = match load_at_bit(old, from) {
                        Some(x) => x & old_mask,
                        None => read_bits(old, from, old_width as u32),
                    };
                    // Unsigned values widen with zeros, so the slot's bits
                    // stay as they are (also when the table turns signed:
                    // they are not negative).
                    let v = if old_signed {
                        (slot & fmask) | widen((slot >> fbits) & old_vmask) << fbits
                    } else {
                        slot
                    };
                    let (w, sh) = (to / 64, to % 64);
                    new[w] |= v << sh;
                    // The bits past word `w` (none when the slot ends in it:
                    // `v` has `width <= 64 - sh` bits then).
                    if let Some(next) = new.get_mut(w + 1) {
                        *next |= (v >> 1) >> (63 - sh);
                    }
                    from += old_width;
                    to += width;
                }
                return;
            }
            for i in 0..2 * SLOTS {
                let (from, to) = (HDR * 64 + i * old_width, HDR * 64 + i * width);
                // Unused slots are all zero, and a used slot's field never
                // is (it ends in its marker bit).
                if width <= 64 {
                    let slot = read_bits(old, from, old_width as u32);
                    let field = slot & fmask;
                    if field != 0 {
                        let raw = (slot >> fbits) & old_vmask;
                        write_bits(new, to, width as u32, field | widen(raw) << fbits);
                    }
                } else {
                    let field = read_bits(old, from, fbits as u32);
                    if field != 0 {
                        let raw = read_bits(old, from + fbits, old_vbits);
                        write_bits(new, to, fbits as u32, field);
                        write_bits(new, to + fbits, vbits, widen(raw));
                    }
                }
            }
        };
        // In place, the last pair first, so that none is overwritten before
        // it is read: no second table. (On Linux a large table's words grow
        // by `mremap`, so the new words past the end take no memory until
        // a pair moves into them.)
        // First, so that a refusal leaves the table as it was.
        self.words.try_extend_zeroed(
            npairs
                .checked_mul(stride - old_stride)
                .ok_or(AllocError { bytes: usize::MAX })?,
        )?;
        let mut pair = vec![0u64; old_stride];
        for p in (0..npairs.min(used)).rev() {
            // The pairs from here down are zero and move within the zero
            // words below the first pair in use: nothing to write.
            if p < first && (p + 1) * stride <= first * old_stride {
                break;
            }
            pair.copy_from_slice(&self.words[p * old_stride..(p + 1) * old_stride]);
            let new = &mut self.words[p * stride..(p + 1) * stride];
            new.fill(0);
            // A pair whose header is all zero holds no entry: a run that
            // passes through it would show as spill.
            if pair[..HDR].iter().any(|&x| x != 0) {
                widen_pair(&pair, new);
            }
        }
        // The words the pairs from `first` moved out of are zero now: their
        // pages go back to the system. (A table whose first pairs are empty,
        // as each k-mer counting thread's but the first, would otherwise
        // keep them in memory, more at each widening.)
        if first > 0 {
            self.words.release(first * old_stride, first * stride);
        }
        self.vbits = vbits;
        self.signed = signed;
        self.stride = stride;
        self.width = width;
        self.vmask = mask(vbits);
        Ok(())
    }
}

/// Iterator over the runs of a table.
pub(crate) struct Runs<'a> {
    table: &'a Table,
    q: usize,
    next_free: usize,
}

impl Iterator for Runs<'_> {
    type Item = (u64, usize, usize);

    fn next(&mut self) -> Option<Self::Item> {
        let t = self.table;
        let limit = t.canonical as usize;
        while self.q < limit {
            let w = t.occ_word(self.q / SLOTS) >> (self.q % SLOTS);
            if w == 0 {
                self.q = (self.q / SLOTS + 1) * SLOTS;
                continue;
            }
            let q = self.q + w.trailing_zeros() as usize;
            if q >= limit {
                break;
            }
            let start = q.max(self.next_free);
            // A damaged table (a memory map not yet verified) whose runs
            // do not end: stop there.
            let Some(end) = t.select_runend_in(&t.words, start, 0) else {
                self.q = limit;
                return None;
            };
            self.q = q + 1;
            self.next_free = end + 1;
            return Some((q as u64, start, end));
        }
        None
    }
}

/// The `2 * SLOTS` slots of a pair, `old_width` bits each from bit
/// `HDR * 64` of `old`, copied unchanged into zeroed slots of `width` bits
/// (at most 32, at least `old_width`) from bit `HDR * 64` of `new`. The
/// slots go in groups of as many as fit a word: the group's bits are read
/// as one word and `pdep` moves each slot to its new place.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "bmi2")]
fn widen_slots_pdep(old: &[u64], new: &mut [u64], old_width: usize, width: usize) {
    debug_assert!(old_width <= width && width <= 32);
    let per = 64 / width;
    // One slot's bits at each `width`-bit step of a word.
    let spread = |n: usize| (0..n).fold(0u64, |m, j| m | mask(old_width as u32) << (j * width));
    let full = spread(per);
    let (mut from, mut to) = (HDR * 64, HDR * 64);
    let mut left = 2 * SLOTS;
    while left > 0 {
        let n = per.min(left);
        let deposit = if n == per { full } else { spread(n) };
        // The group's `n * old_width` bits (at most 63) from bit `from`,
        // and whatever follows them, which the deposit mask leaves out.
        let (w, sh) = (from / 64, from % 64);
        let mut x = old[w] >> sh;
        if sh > 0 {
            x |= old.get(w + 1).map_or(0, |&y| y << (64 - sh));
        }
        let y = std::arch::x86_64::_pdep_u64(x, deposit);
        let (w, sh) = (to / 64, to % 64);
        new[w] |= y << sh;
        if sh > 0 {
            if let Some(next) = new.get_mut(w + 1) {
                *next |= y >> (64 - sh);
            }
        }
        from += n * old_width;
        to += n * width;
        left -= n;
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::next;
    use super::*;

    /// Slots widened by `pdep` hold the bits they held, each at its new
    /// place, and nothing else is written: every pair of widths up to 32,
    /// random slots and random bits before and after them.
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn pdep_widening_moves_each_slot_unchanged() {
        if !std::is_x86_feature_detected!("bmi2") {
            return;
        }
        let mut x = 7u64;
        for width in 2..=32usize {
            for old_width in 1..=width {
                let old_words = (HDR * 64 + 2 * SLOTS * old_width).div_ceil(64) + 1;
                let mut old: Vec<u64> = (0..old_words).map(|_| next(&mut x)).collect();
                let slots: Vec<u64> = (0..2 * SLOTS)
                    .map(|i| read_bits(&old, HDR * 64 + i * old_width, old_width as u32))
                    .collect();
                // Bits past the last slot must not reach the new slots.
                let end = HDR * 64 + 2 * SLOTS * old_width;
                write_bits(&mut old, end, 1, 1);
                // One word more than the slots take, which must stay zero.
                let new_words = (HDR * 64 + 2 * SLOTS * width).div_ceil(64);
                let mut new = vec![0u64; new_words + 1];
                // SAFETY: this CPU has BMI2.
                #[allow(unsafe_code)]
                unsafe {
                    widen_slots_pdep(&old, &mut new, old_width, width)
                };
                assert!(new[..HDR].iter().all(|&w| w == 0), "{old_width} -> {width}");
                for (i, &v) in slots.iter().enumerate() {
                    let got = read_bits(&new, HDR * 64 + i * width, width as u32);
                    assert_eq!(got, v, "slot {i}: {old_width} -> {width}");
                }
                assert_eq!(new[new_words], 0, "{old_width} -> {width}");
            }
        }
    }
}
