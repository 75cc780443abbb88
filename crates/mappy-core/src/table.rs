//! The slot table: a rank-and-select quotient filter whose slots hold a
//! fingerprint field and a packed value.
//!
//! # Layout
//! Slots come in blocks of 64, stored in pairs: a 5-word header, then the
//! pair's 128 slots of `fbits + vbits` bits each, a fingerprint field and its
//! value side by side. The header holds, for each block `b` of the pair,
//! `occupieds` (bit `i`: some entry has home slot `64 b + i`), `runends`
//! (bit `i`: slot `64 b + i` ends a run) and a 32-bit `spill`: the number of
//! entries whose home slot lies before the block but which sit in it or
//! later. With it, the run of any home slot is found by rank (in
//! `occupieds`) and select (in `runends`) without scanning. Header words are
//! aligned, so reading one is a single load; the header costs 2.5 bits per
//! slot.
//!
//! # Invariants
//! 1. Entries with the same home slot `q` form a *run* of consecutive slots,
//!    sorted by field; a run starts at `max(q, end of the previous run + 1)`.
//!    Runs never wrap: slots past the `canonical` home slots are an overflow
//!    area that grows by whole blocks when a run needs it.
//! 2. `spill[b]` = number of entries with home slot `< 64 b` at a slot
//!    `>= 64 b`.
//! 3. A field holds a fingerprint of `L` bits, a marker `1`, then zeros
//!    (`L + 1 + zeros = fbits`). A query fingerprint has the full
//!    `fbits - 1` bits; it matches a field when their first `L` bits agree.
//!    Doubling the table moves the first fingerprint bit into the home slot,
//!    so every entry keeps matching exactly the keys it matched before.
//!
//! # Files
//! This file holds the table, its one constructor ([`Table::assemble`]),
//! the header and slot access, rank and select, and the insert and removal
//! of one entry. Below it, `bits` holds the bit-level helpers; above it,
//! each adding an `impl Table` block, `lookup` the lookups, `passes`
//! the whole-table passes, `builder` the front-to-back [`Builder`] and
//! doubling, `parts` the sizes and the words for saving and loading, and
//! `check` the invariant checks.

#[cfg(target_endian = "little")]
use crate::storage::as_bytes_mut;
use crate::storage::{AllocError, Words};

mod bits;
mod builder;
mod check;
mod lookup;
mod parts;
mod passes;
#[cfg(test)]
mod tests;

#[cfg(target_endian = "little")]
use bits::store_at_bit;
pub(crate) use bits::{field_len, field_len_or_zero, field_matches, mask, value_width};
use bits::{read_bits, read_bits_masked, select64, shift_bits_up, write_bits};
pub(crate) use builder::Builder;

/// Maximum fraction of home slots in use before the table doubles.
pub(crate) const MAX_LOAD: f64 = 0.95;
/// Widest fingerprint field (fingerprint bits plus the marker).
pub(crate) const MAX_FBITS: u32 = 62;

/// Slots per block.
const SLOTS: usize = 64;
/// Header words per pair of blocks: occupieds (2), runends (2), spills (2 x 32 bits).
const HDR: usize = 5;

/// What [`Table::probe`] found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Probe {
    /// The matching entry with the longest fingerprint.
    Found {
        /// Its slot.
        slot: usize,
        /// The slot's first bit, while the table's widths stay as they are.
        bit: usize,
    },
    /// No entry matches: a new one goes at `pos`; `run_end` is the end of
    /// the home slot's run, if it has one.
    Missing {
        /// Where the new entry goes.
        pos: usize,
        /// End of the existing run.
        run_end: Option<usize>,
    },
}

/// The slot table. See the module documentation for its layout.
#[derive(Clone, Debug)]
pub(crate) struct Table {
    canonical: u64,
    fbits: u32,
    vbits: u32,
    signed: bool,
    /// Words per pair of blocks: the header, then 128 slots of
    /// `fbits + vbits` bits.
    stride: usize,
    /// Bits per slot, `fbits + vbits`, and the masks of the two parts:
    /// cached for lookups.
    width: usize,
    fmask: u64,
    vmask: u64,
    words: Words,
    /// Slots in the table, home slots and overflow area: cached, as
    /// `words.len()` divided by the stride.
    nslots: usize,
    /// `MAX_LOAD * canonical`, rounded down: cached for inserts.
    max_len: usize,
    len: usize,
    /// Entries by fingerprint length.
    len_hist: [u64; 64],
}

impl Table {
    /// An empty table with `canonical` home slots.
    #[cfg(any(test, feature = "kmers"))]
    pub(crate) fn new(canonical: u64, fbits: u32, vbits: u32, signed: bool) -> Table {
        Self::try_new(canonical, fbits, vbits, signed).expect("memory for the table")
    }

    /// [`new`](Table::new), or an error if the memory cannot be had.
    pub(crate) fn try_new(
        canonical: u64,
        fbits: u32,
        vbits: u32,
        signed: bool,
    ) -> Result<Table, AllocError> {
        Self::with_blocks(canonical, fbits, vbits, signed, Self::blocks_for(canonical))
    }

    /// An empty table of `nblocks` blocks, a whole number of pairs.
    fn with_blocks(
        canonical: u64,
        fbits: u32,
        vbits: u32,
        signed: bool,
        nblocks: usize,
    ) -> Result<Table, AllocError> {
        assert!(canonical >= 1 && (2..=MAX_FBITS).contains(&fbits) && (1..=64).contains(&vbits));
        let stride = Self::stride_for(fbits, vbits);
        let words = (nblocks / 2)
            .checked_mul(stride)
            .ok_or(AllocError { bytes: usize::MAX })?;
        let words = Words::try_zeroed(words)?;
        Ok(Self::assemble(
            canonical, fbits, vbits, signed, words, 0, [0; 64],
        ))
    }

    /// A table of these widths, words and counts, with the fields cached
    /// from them (stride, slot width, masks, slots, most entries): the one
    /// place a `Table` is put together, which every constructor, clone and
    /// load goes through. The caller has checked the widths and that the
    /// words are whole pairs of blocks for `canonical` home slots.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn assemble(
        canonical: u64,
        fbits: u32,
        vbits: u32,
        signed: bool,
        words: Words,
        len: usize,
        len_hist: [u64; 64],
    ) -> Table {
        let stride = Self::stride_for(fbits, vbits);
        Table {
            canonical,
            fbits,
            vbits,
            signed,
            stride,
            width: (fbits + vbits) as usize,
            fmask: mask(fbits),
            vmask: mask(vbits),
            nslots: words.len() / stride * 2 * SLOTS,
            max_len: (MAX_LOAD * canonical as f64) as usize,
            words,
            len,
            len_hist,
        }
    }

    fn stride_for(fbits: u32, vbits: u32) -> usize {
        HDR + 2 * (fbits + vbits) as usize
    }

    /// Blocks for `canonical` home slots and at least one block of overflow,
    /// rounded up to whole pairs.
    fn blocks_for(canonical: u64) -> usize {
        ((canonical as usize).div_ceil(SLOTS) + 1).next_multiple_of(2)
    }

    pub(crate) fn canonical(&self) -> u64 {
        self.canonical
    }
    pub(crate) fn fbits(&self) -> u32 {
        self.fbits
    }
    pub(crate) fn vbits(&self) -> u32 {
        self.vbits
    }
    pub(crate) fn signed(&self) -> bool {
        self.signed
    }
    pub(crate) fn len(&self) -> usize {
        self.len
    }
    /// Most entries the table holds before it must double: `MAX_LOAD` of
    /// its home slots.
    #[inline]
    pub(crate) fn max_len(&self) -> usize {
        self.max_len
    }
    pub(crate) fn nblocks(&self) -> usize {
        self.nslots / SLOTS
    }
    pub(crate) fn nslots(&self) -> usize {
        self.nslots
    }
    pub(crate) fn heap_bytes(&self) -> usize {
        self.words.heap_bytes()
    }
    /// Bytes of the table's words, wherever they lie.
    pub(crate) fn table_bytes(&self) -> usize {
        self.words.len() * 8
    }
    pub(crate) fn len_hist(&self) -> &[u64; 64] {
        &self.len_hist
    }

    // ---- bit access -------------------------------------------------------

    /// Word index of header word `k` of block `b`'s pair.
    #[inline]
    fn hdr(&self, b: usize, k: usize) -> usize {
        (b / 2) * self.stride + k
    }
    #[inline]
    fn occ_word(&self, b: usize) -> u64 {
        self.words[self.hdr(b, b % 2)]
    }
    #[inline]
    fn run_word(&self, b: usize) -> u64 {
        self.words[self.hdr(b, 2 + b % 2)]
    }
    #[inline]
    fn spill(&self, b: usize) -> usize {
        (self.words[self.hdr(b, 4)] >> (32 * (b % 2))) as u32 as usize
    }
    #[inline]
    fn add_spill(&mut self, b: usize, delta: i64) {
        let i = self.hdr(b, 4);
        let sh = 32 * (b % 2);
        let v = ((self.words[i] >> sh) & 0xffff_ffff) as i64 + delta;
        debug_assert!((0..=u32::MAX as i64).contains(&v));
        self.words[i] = (self.words[i] & !(0xffff_ffff << sh)) | ((v as u64) << sh);
    }
    #[inline]
    fn is_occupied(&self, q: usize) -> bool {
        self.occ_word(q / SLOTS) >> (q % SLOTS) & 1 == 1
    }
    #[inline]
    fn set_bit(&mut self, word: usize, bit: usize, on: bool) {
        let w = &mut self.words[word];
        if on {
            *w |= 1 << bit;
        } else {
            *w &= !(1 << bit);
        }
    }
    #[inline]
    fn set_occupied(&mut self, q: usize, on: bool) {
        let b = q / SLOTS;
        self.set_bit(self.hdr(b, b % 2), q % SLOTS, on)
    }
    #[inline]
    fn is_runend(&self, s: usize) -> bool {
        self.run_word(s / SLOTS) >> (s % SLOTS) & 1 == 1
    }
    #[inline]
    fn set_runend(&mut self, s: usize, on: bool) {
        let b = s / SLOTS;
        self.set_bit(self.hdr(b, 2 + b % 2), s % SLOTS, on)
    }

    /// First bit of slot `s` (its field; the value follows).
    #[inline]
    fn slot_bit(&self, s: usize) -> usize {
        ((s / (2 * SLOTS)) * self.stride + HDR) * 64 + (s % (2 * SLOTS)) * self.width
    }

    /// The field of slot `s`.
    #[inline]
    pub(crate) fn field(&self, s: usize) -> u64 {
        read_bits(&self.words, self.slot_bit(s), self.fbits)
    }
    #[inline]
    fn set_field(&mut self, s: usize, f: u64) {
        let bit = self.slot_bit(s);
        write_bits(&mut self.words, bit, self.fbits, f)
    }
    /// The raw value bits of slot `s`.
    #[inline]
    pub(crate) fn raw_value(&self, s: usize) -> u64 {
        read_bits(
            &self.words,
            self.slot_bit(s) + self.fbits as usize,
            self.vbits,
        )
    }
    #[inline]
    fn set_raw_value(&mut self, s: usize, raw: u64) {
        let bit = self.slot_bit(s) + self.fbits as usize;
        // A value of up to 57 bits is one unaligned read and write.
        #[cfg(target_endian = "little")]
        if self.vbits <= 57 && store_at_bit(&mut self.words, bit, self.vmask, raw & self.vmask) {
            return;
        }
        write_bits(&mut self.words, bit, self.vbits, raw)
    }
    /// The value of slot `s`, sign-extended when the table is signed.
    #[inline]
    pub(crate) fn value(&self, s: usize) -> i64 {
        self.value_of_raw(self.raw_value(s))
    }
    /// A value from its raw bits, sign-extended when the table is signed.
    #[inline]
    pub(crate) fn value_of_raw(&self, raw: u64) -> i64 {
        if self.signed && self.vbits < 64 {
            let sh = 64 - self.vbits;
            ((raw << sh) as i64) >> sh
        } else {
            raw as i64
        }
    }
    /// Stores `v` in slot `s`; the caller has checked that it fits.
    #[inline]
    pub(crate) fn set_value(&mut self, s: usize, v: i64) {
        debug_assert!(self.fits(v));
        self.set_raw_value(s, v as u64)
    }
    /// Whether `v` can be stored without widening.
    #[inline]
    pub(crate) fn fits(&self, v: i64) -> bool {
        if self.signed {
            // The bits above the top value bit are all copies of it.
            (v >> (self.vbits - 1)).wrapping_add(1) as u64 <= 1
        } else {
            // No bit above the value bits, nor the sign bit (set in every
            // negative value, and above the value bits unless they are 64).
            v as u64 & (!self.vmask | 1 << 63) == 0
        }
    }
    /// Writes field `f` and raw value bits `raw` to slot `s`, in one write
    /// where the slot fits in a word.
    #[inline]
    fn set_slot(&mut self, s: usize, f: u64, raw: u64) {
        let bit = self.slot_bit(s);
        if self.width <= 64 {
            let v = (f & self.fmask) | ((raw & self.vmask) << self.fbits);
            #[cfg(target_endian = "little")]
            if self.width <= 57 && store_at_bit(&mut self.words, bit, (1 << self.width) - 1, v) {
                return;
            }
            write_bits(&mut self.words, bit, self.width as u32, v);
        } else {
            write_bits(&mut self.words, bit, self.fbits, f);
            write_bits(&mut self.words, bit + self.fbits as usize, self.vbits, raw);
        }
    }
    /// Copies slot `src` (field and value, not the runend bit) to slot `dst`.
    #[inline]
    fn copy_slot(&mut self, dst: usize, src: usize) {
        let width = self.fbits + self.vbits;
        let (from, to) = (self.slot_bit(src), self.slot_bit(dst));
        if width <= 64 {
            let v = read_bits(&self.words, from, width);
            write_bits(&mut self.words, to, width, v);
        } else {
            let f = read_bits(&self.words, from, self.fbits);
            write_bits(&mut self.words, to, self.fbits, f);
            let v = read_bits(&self.words, from + self.fbits as usize, self.vbits);
            write_bits(&mut self.words, to + self.fbits as usize, self.vbits, v);
        }
    }
    /// Copies slot `src` (field, value and runend bit) to slot `dst`.
    #[inline]
    fn move_slot(&mut self, dst: usize, src: usize) {
        self.copy_slot(dst, src);
        let r = self.is_runend(src);
        self.set_runend(dst, r);
    }
    /// Moves slots `pos..empty` (fields, values, runend bits) one slot up,
    /// to `pos + 1..=empty`, a word at a time.
    fn shift_up(&mut self, pos: usize, empty: usize) {
        let width = (self.fbits + self.vbits) as usize;
        // Slots: within a pair they are contiguous bits; the last slot of a
        // pair moves to the first of the next on its own.
        let mut top = empty;
        while top > pos {
            if top % (2 * SLOTS) == 0 {
                // Runend bits move below, all together: copy only the bits.
                self.copy_slot(top, top - 1);
                top -= 1;
                continue;
            }
            let lo = pos.max(top / (2 * SLOTS) * (2 * SLOTS));
            let (from, to) = (self.slot_bit(lo), self.slot_bit(top - 1) + width);
            #[cfg(target_endian = "little")]
            if width % 8 == 0 {
                // Slots of whole bytes (two for a 1% counter with 8-bit
                // values): the slots lo..top are a run of bytes, moved up by
                // one slot.
                let (a, b) = (from / 8, to / 8);
                as_bytes_mut(&mut self.words).copy_within(a..b, a + width / 8);
                top = lo;
                continue;
            }
            shift_bits_up(&mut self.words, from, to, width);
            top = lo;
        }
        // Runend bits, block by block from the top, carrying bit 63 up.
        let mut b = empty / SLOTS;
        loop {
            let base = b * SLOTS;
            let (lo, hi) = ((pos + 1).max(base), empty.min(base + SLOTS - 1));
            if lo <= hi {
                let w = self.run_word(b);
                let carry = if lo == base {
                    self.run_word(b - 1) >> 63
                } else {
                    0
                };
                let shifted = (w << 1) | carry;
                let m = (u64::MAX >> (SLOTS - 1 - (hi - base))) & (u64::MAX << (lo - base));
                let at = self.hdr(b, 2 + b % 2);
                self.words[at] = (w & !m) | (shifted & m);
            }
            if base <= pos + 1 {
                break;
            }
            b -= 1;
        }
    }

    /// Empties slot `s`.
    #[inline]
    fn clear_slot(&mut self, s: usize) {
        self.set_field(s, 0);
        self.set_raw_value(s, 0);
        self.set_runend(s, false);
    }

    // ---- rank and select --------------------------------------------------

    /// For home slot `q`, over words already borrowed: whether it is
    /// occupied, how many home slots of its block up to and including it
    /// are (`d`), and where the block's own runs may start (`p0`: after the
    /// entries spilled into it from earlier blocks).
    #[inline]
    fn rank_in(&self, w: &[u64], q: usize) -> (bool, usize, usize) {
        let (b, bit) = (q / SLOTS, q % SLOTS);
        let base = (b / 2) * self.stride;
        let odd = b % 2;
        let occ = w[base + odd];
        let d = (occ << (63 - bit)).count_ones() as usize;
        let p0 = b * SLOTS + (w[base + 4] >> (32 * odd)) as u32 as usize;
        (occ >> bit & 1 == 1, d, p0)
    }

    /// Slots `start..=end` of the run of home slot `q`, if it has one, over
    /// words already borrowed.
    #[inline]
    fn run_in(&self, w: &[u64], q: usize) -> Option<(usize, usize)> {
        let (occupied, d, p0) = self.rank_in(w, q);
        if !occupied {
            return None;
        }
        let start = if d == 1 {
            q.max(p0)
        } else {
            q.max(self.select_runend_in(w, p0, d - 2)? + 1)
        };
        // The run ends at the first runend at or after its start.
        Some((start, self.select_runend_in(w, start, 0)?))
    }

    /// For home slot `q`: whether it is occupied, and the end of the run of
    /// the last occupied home slot `<= q` that starts in `q`'s block (`q`'s
    /// own run if it is occupied), else where the block's runs may start.
    /// One rank and at most one select. `None` only in a damaged table
    /// (a memory map not yet verified) whose runends run out.
    #[inline(always)]
    fn locate_run(&self, w: &[u64], q: usize) -> Option<(bool, Result<usize, usize>)> {
        let (occupied, d, p0) = self.rank_in(w, q);
        let end = if d == 0 {
            Err(p0)
        } else {
            // Runends from p0 on close the block's runs in order.
            Ok(self.select_runend_in(w, p0, d - 1)?)
        };
        Some((occupied, end))
    }

    /// Whether slot `s` ends a run, over words already borrowed.
    #[inline]
    fn runend_in(&self, w: &[u64], s: usize) -> bool {
        let b = s / SLOTS;
        w[self.hdr(b, 2 + b % 2)] >> (s % SLOTS) & 1 == 1
    }

    /// The slot before `s` (whose first bit is `at`), and its first bit.
    #[inline]
    fn prev_slot(&self, s: usize, at: usize) -> (usize, usize) {
        if s % (2 * SLOTS) == 0 {
            (s - 1, self.slot_bit(s - 1))
        } else {
            (s - 1, at - self.width)
        }
    }

    /// Position of the `k`-th (from 0) runend at or after slot `p`, over
    /// words already borrowed; `None` if the table ends first, which only a
    /// damaged table allows (a memory map not yet verified): the bounds
    /// check every read makes anyway, taken as an answer instead of a panic.
    #[inline(always)]
    fn select_runend_in(&self, w: &[u64], p: usize, mut k: usize) -> Option<usize> {
        let mut b = p / SLOTS;
        let mut word = *w.get(self.hdr(b, 2 + b % 2))? & (u64::MAX << (p % SLOTS));
        loop {
            let c = word.count_ones() as usize;
            if k < c {
                return Some(
                    b * SLOTS
                        + if k == 0 {
                            word.trailing_zeros() as usize
                        } else {
                            select64(word, k)
                        },
                );
            }
            k -= c;
            b += 1;
            word = *w.get(self.hdr(b, 2 + b % 2))?;
        }
    }

    /// Whether every stored fingerprint has full length, so that a query
    /// matches at most one entry.
    #[inline]
    pub(crate) fn uniform(&self) -> bool {
        // `fbits` is at most MAX_FBITS (< 64): the mask only spares a
        // bounds check.
        self.len_hist[(self.fbits as usize - 1) & 63] == self.len as u64
    }

    /// Slots `start..=end` of the run of home slot `q`, if it has one: the
    /// run ends at the first runend at or after its start.
    #[inline]
    pub(crate) fn run(&self, q: u64) -> Option<(usize, usize)> {
        self.run_in(&self.words, q as usize)
    }

    /// The first unused slot at or after `p`, if any before the table's end.
    ///
    /// Hops by a lower bound on the slots in use from `p` on: a block's first
    /// `spill` slots are in use, and past them, slot `p` starts at least as
    /// many used slots as the block has runs with home slot `<= p` that have
    /// not ended before `p` (each holds a slot at or after `p`). With none,
    /// `p` is unused.
    fn first_empty_from(&self, mut p: usize) -> Option<usize> {
        let w: &[u64] = &self.words;
        let nslots = self.nslots();
        while p < nslots {
            let b = p / SLOTS;
            let base = (b / 2) * self.stride;
            let odd = b % 2;
            let spill = (w[base + 4] >> (32 * odd)) as u32 as usize;
            let mut i = p % SLOTS;
            if i < spill {
                p = b * SLOTS + spill;
                continue;
            }
            // Within the block the header words stay put: hop on them.
            let occ = w[base + odd];
            let ends = w[base + 2 + odd] & (u64::MAX << spill);
            loop {
                let started = (occ & (u64::MAX >> (63 - i))).count_ones();
                let ended = (ends & ((1u64 << i) - 1)).count_ones();
                if started == ended {
                    return Some(b * SLOTS + i);
                }
                i += (started - ended) as usize;
                if i >= SLOTS {
                    break;
                }
            }
            p = b * SLOTS + i;
        }
        None
    }

    /// Drops overflow blocks beyond the first `nblocks` (a whole number of
    /// pairs, all of them empty), as after a failed batch that added them.
    pub(crate) fn truncate_blocks(&mut self, nblocks: usize) {
        if nblocks < self.nblocks() {
            debug_assert!(nblocks % 2 == 0 && nblocks >= Self::blocks_for(self.canonical));
            self.words.truncate(nblocks / 2 * self.stride);
            self.nslots = nblocks * SLOTS;
        }
    }

    /// Adds a pair of blocks to the overflow area; an error, changing
    /// nothing, if the memory cannot be had (the words may have to move, so
    /// this can need the whole table's size again).
    fn push_block(&mut self) -> Result<(), AllocError> {
        // Exact: the overflow area grows rarely, and a doubled allocation
        // would cost far more than the blocks.
        self.words.try_extend_zeroed(self.stride)?;
        self.nslots += 2 * SLOTS;
        Ok(())
    }

    // ---- insertion and removal --------------------------------------------

    /// One pass over the run of home slot `q` for an insert: the slot
    /// matching `query` with the longest fingerprint, or where a new entry
    /// with field `new_field` goes. The run is walked back from its end.
    #[inline(always)]
    pub(crate) fn probe(&self, q: u64, query: u64, new_field: u64) -> Probe {
        let w: &[u64] = &self.words;
        let q = q as usize;
        // Writable tables are valid: their runs end.
        let located = self.locate_run(w, q).expect("a writable table is valid");
        let end = match located {
            (true, Ok(end)) => end,
            // A new run starts at q or just after the previous run.
            (false, Ok(prev)) => {
                return Probe::Missing {
                    pos: q.max(prev + 1),
                    run_end: None,
                };
            }
            (false, Err(p0)) => {
                return Probe::Missing {
                    pos: q.max(p0),
                    run_end: None,
                };
            }
            (true, Err(_)) => unreachable!("an occupied home slot has a run"),
        };
        let uniform = self.uniform();
        let fbits = self.fbits as usize;
        let mut best: Option<(usize, usize, u32)> = None;
        let mut pos = end + 1;
        let (mut s, mut at) = (end, self.slot_bit(end));
        loop {
            let f = read_bits_masked(w, at, fbits, self.fmask);
            if field_matches(f, query) {
                if uniform {
                    return Probe::Found { slot: s, bit: at };
                }
                // Walking back, the earliest of equally long matches wins.
                let tz = f.trailing_zeros();
                if best.is_none_or(|(_, _, btz)| tz <= btz) {
                    best = Some((s, at, tz));
                }
            }
            if f > new_field {
                pos = s;
            } else if uniform && f < query {
                // Fields ascend: every earlier one is below both, so none
                // matches and the new entry does not go before it.
                break;
            }
            if s == q || self.runend_in(w, s - 1) {
                break;
            }
            (s, at) = self.prev_slot(s, at);
        }
        match best {
            Some((slot, bit, _)) => Probe::Found { slot, bit },
            None => Probe::Missing {
                pos,
                run_end: Some(end),
            },
        }
    }

    /// Grows the overflow area until a slot at or after `pos` is empty, so
    /// that [`insert_at`](Table::insert_at) there cannot fail; an error,
    /// changing nothing, if the memory cannot be had.
    pub(crate) fn make_room_from(&mut self, pos: usize) -> Result<(), AllocError> {
        while self.first_empty_from(pos).is_none() {
            self.push_block()?;
        }
        Ok(())
    }

    /// Adds a new entry with home slot `q`, field `field` and value `v`
    /// (which must fit) where [`probe`](Table::probe) said it goes. The
    /// caller keeps the load below the maximum.
    ///
    /// # Errors
    /// When the overflow area must grow and the memory cannot be had; the
    /// table is then unchanged.
    #[inline(always)]
    pub(crate) fn insert_at(
        &mut self,
        q: u64,
        field: u64,
        v: i64,
        pos: usize,
        old_end: Option<usize>,
    ) -> Result<(), AllocError> {
        let q = q as usize;
        // A new run placed at its own home slot finds that slot unused:
        // earlier runs end before it and later ones start after it.
        if old_end.is_none() && pos == q {
            self.insert_run_at_home(q, field, v);
            return Ok(());
        }
        let empty = loop {
            match self.first_empty_from(pos) {
                Some(e) => break e,
                None => self.push_block()?,
            }
        };
        if empty > pos {
            self.shift_up(pos, empty);
        }
        debug_assert!(self.fits(v));
        self.set_slot(pos, field, v as u64);
        match old_end {
            None => {
                self.set_occupied(q, true);
                self.set_runend(pos, true);
            }
            Some(end) if pos == end + 1 => {
                self.set_runend(end, false);
                self.set_runend(pos, true);
            }
            Some(_) => self.set_runend(pos, false),
        }
        // Invariant 2: the new entry counts for every block start in
        // (q, pos], and each shifted entry for the block start it crossed,
        // so every block starting in (q, empty] gains one.
        for b in q / SLOTS + 1..=empty / SLOTS {
            self.add_spill(b, 1);
        }
        self.len += 1;
        self.len_hist[field_len(field, self.fbits) as usize] += 1;
        Ok(())
    }

    /// [`insert_at`](Table::insert_at) of a new run at its own unused home
    /// slot `q` (about half of all new entries): no slot moves and no spill
    /// changes, so the two header bits and the slot are written through
    /// one borrow of the words, from one position of the pair.
    #[inline]
    fn insert_run_at_home(&mut self, q: usize, field: u64, v: i64) {
        let (b, i) = (q / SLOTS, q % SLOTS);
        let base = (b / 2) * self.stride;
        let bit = (base + HDR) * 64 + (q % (2 * SLOTS)) * self.width;
        let (fbits, vbits, width) = (self.fbits, self.vbits, self.width);
        let raw = v as u64 & self.vmask;
        let w: &mut [u64] = &mut self.words;
        w[base + b % 2] |= 1 << i;
        w[base + 2 + b % 2] |= 1 << i;
        if width <= 64 {
            let slot = (field & self.fmask) | raw << fbits;
            #[cfg(target_endian = "little")]
            let stored = width <= 57 && store_at_bit(w, bit, (1 << width) - 1, slot);
            #[cfg(not(target_endian = "little"))]
            let stored = false;
            if !stored {
                write_bits(w, bit, width as u32, slot);
            }
        } else {
            write_bits(w, bit, fbits, field);
            write_bits(w, bit + fbits as usize, vbits, raw);
        }
        self.len += 1;
        self.len_hist[field_len(field, fbits) as usize] += 1;
    }

    /// Removes the entry at slot `s`, whose home slot is `q`.
    pub(crate) fn remove(&mut self, q: u64, s: usize) {
        let q = q as usize;
        let (start, end) = self.run(q as u64).expect("remove: home slot has no run");
        debug_assert!((start..=end).contains(&s));
        self.len_hist[field_len(self.field(s), self.fbits) as usize] -= 1;
        // Find how far the following entries shift left: through every run
        // that is not at its home slot, up to an empty slot or a run at home.
        let mut last = end;
        let mut next_q = q;
        loop {
            let p = last + 1;
            match self.next_occupied_after(next_q) {
                Some(q2) if q2 < p => {
                    next_q = q2;
                    last = self
                        .select_runend_in(&self.words, p, 0)
                        .expect("a writable table is valid");
                }
                _ => break,
            }
        }
        if start == end {
            self.set_occupied(q, false);
        } else if s == end {
            self.set_runend(s - 1, true);
        }
        for j in s..last {
            self.move_slot(j, j + 1);
        }
        self.clear_slot(last);
        // Invariant 2, as in insert_new: every block starting in (q, last]
        // loses one.
        for b in q / SLOTS + 1..=last / SLOTS {
            self.add_spill(b, -1);
        }
        self.len -= 1;
    }

    /// The next occupied home slot after `q`.
    fn next_occupied_after(&self, q: usize) -> Option<usize> {
        let mut p = q + 1;
        let limit = self.canonical as usize;
        while p < limit {
            let w = self.occ_word(p / SLOTS) >> (p % SLOTS);
            if w != 0 {
                let r = p + w.trailing_zeros() as usize;
                return (r < limit).then_some(r);
            }
            p = (p / SLOTS + 1) * SLOTS;
        }
        None
    }
}
