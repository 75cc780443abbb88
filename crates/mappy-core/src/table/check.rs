//! Checking a slot table's invariants: run by run, saying what is wrong,
//! and, for a table read from untrusted bytes, in one linear pass over its
//! words, a few machine operations per slot.
//!
//! [`Table::validate_by_runs`] states the invariants run by run and slot by
//! slot; the word-wise pass checks the same ones:
//!
//! - **Layout.** Read the occupieds as opening brackets and the runends as
//!   closing ones, slot by slot (a slot's opening first). The runs are laid
//!   out as the invariants say exactly when no bracket closes with none
//!   open and none is left open at the end: the `i`-th runend then lies at
//!   or after the `i`-th occupied home slot, so run `i` ends there, and a
//!   slot lies in a run exactly when a bracket is open at it. The open
//!   count is carried from block to block, and within a block taken four
//!   slots at a time through a table ([`NIBBLE`]).
//! - **Spills.** With `k` home slots before block `b` and `r` of their runs
//!   still open at its start, `spill[b]` must be 0 when `r = 0`, and else
//!   point just past the `k`-th runend. A cursor that only moves forward
//!   counts the runends before that point, so the whole check is linear
//!   however large the spills claim to be.
//! - **Slots.** Groups of slots that fit in a word are checked at once
//!   (SWAR): a slot outside every run is all zero, a field inside a run is
//!   not zero and not below the one before it in the same run, and the
//!   fingerprint lengths are counted from the fields' low bits.
//!
//! A table that fails is handed to [`Table::validate_by_runs`], which says
//! what is wrong.

use super::bits::{field_len, mask, read_bits};
use super::{Table, HDR, SLOTS};
use crate::storage::as_bytes;

/// `NIBBLE[(o << 4 | e) * 5 + c]` for the occupied bits `o` and runend bits
/// `e` of four slots, with `c` (at most 4) runs open before them: bits 0-3
/// say which of the four slots lie in a run, bit 4 that a runend closes
/// with no run open. Four open runs or more behave as four: no four slots
/// can close them all.
static NIBBLE: [u8; 256 * 5] = {
    let mut t = [0u8; 256 * 5];
    let mut i = 0;
    while i < 256 * 5 {
        let (oe, c) = (i / 5, i % 5);
        let (o, e) = (oe >> 4, oe & 15);
        let (mut open, mut used, mut bad) = (c, 0u8, 0u8);
        let mut j = 0;
        while j < 4 {
            open += (o >> j) & 1;
            if open > 0 {
                used |= 1 << j;
            }
            if (e >> j) & 1 == 1 {
                if open == 0 {
                    bad = 1;
                } else {
                    open -= 1;
                }
            }
            j += 1;
        }
        t[i] = used | bad << 4;
        i += 1;
    }
    t
};

/// Which slots of a block lie in a run, given its occupied bits `occ`
/// and runend bits `ends`, with `open` runs of earlier home slots open at
/// its start; `None` if a runend closes with no run open (at a slot in no
/// run). Four slots at a time, through [`NIBBLE`].
#[inline]
fn in_runs(occ: u64, ends: u64, open: u64) -> Option<u64> {
    if open >= SLOTS as u64 {
        // No 64 slots close so many runs: all lie in runs.
        return Some(u64::MAX);
    }
    // Four chains of four nibbles each, independent: each starts from the
    // open count at its first slot, from the counts of the slots before it.
    let (mut u, mut bad) = (0u64, 0u8);
    let mut c = [0u64; 4];
    for (q, c) in c.iter_mut().enumerate() {
        let below = mask(16 * q as u32);
        // Wrapping, as below.
        *c = open
            .wrapping_add((occ & below).count_ones() as u64)
            .wrapping_sub((ends & below).count_ones() as u64);
    }
    for j in 0..4 {
        for (q, c) in c.iter_mut().enumerate() {
            let at = 16 * q + 4 * j;
            let (o, e) = ((occ >> at) & 15, (ends >> at) & 15);
            // Wrapping: `c` passes below zero only after a runend closed
            // with no run open, which `bad` has recorded.
            let t = NIBBLE[(o << 4 | e) as usize * 5 + (*c).min(4) as usize];
            u |= ((t & 15) as u64) << at;
            bad |= t;
            *c = c
                .wrapping_add(o.count_ones() as u64)
                .wrapping_sub(e.count_ones() as u64);
        }
    }
    (bad >> 4 == 0).then_some(u)
}

/// Slots checked at once, as groups of `width` bits in one word: as many as
/// fit in 57 bits (one unaligned window), and fewer than `width`, which
/// [`Group::spread`] needs. 1 where no two fit.
fn group_for(width: usize) -> usize {
    (57 / width).min(width - 1).max(1)
}

/// Constants for a group of `n` slots of `width` bits in a word.
struct Group {
    n: usize,
    /// `2^n - 1`.
    low: u64,
    /// Spreads bit `k` of a number below `2^n` to bit `k * width`.
    mul: u64,
    /// Bit `k * width` for each slot `k`.
    ones: u64,
    /// The group's bits.
    bits_mask: u64,
    /// The fields' bits, and the bit above each (the value's lowest).
    fields: u64,
    guards: u64,
    /// The last slot's first bit.
    top: usize,
}

impl Group {
    fn new(n: usize, width: usize, fbits: u32) -> Group {
        let (mut mul, mut ones) = (0u64, 0u64);
        for k in 0..n {
            mul |= 1 << (k * (width - 1));
            ones |= 1 << (k * width);
        }
        Group {
            n,
            low: mask(n as u32),
            mul,
            ones,
            bits_mask: mask((n * width) as u32),
            fields: ones.wrapping_mul(mask(fbits)),
            guards: ones << fbits,
            top: n.saturating_sub(1) * width,
        }
    }

    /// Bit `k` of `bits` at bit `k * width`, for `k < n`: the product of
    /// bit `k` and term `j` of `mul` lands at `k + j (width - 1)`, which is
    /// `k * width` only for `j = k`, and no two products share a bit since
    /// `k < n < width`; the others are masked off.
    #[inline(always)]
    fn spread(&self, bits: u64) -> u64 {
        (bits & self.low).wrapping_mul(self.mul) & self.ones
    }
}

/// What the pass carries from one pair of blocks to the next.
struct State {
    /// Home slots before the current block, and runends.
    opened: u64,
    closed: u64,
    /// Runends before block `cursor`, counted forward for the spill checks.
    cursor: usize,
    cursor_closed: u64,
    /// The last point a spill checked; spills point forward.
    last_spill_end: usize,
    /// The last slot of the previous block: in a run, a runend.
    prev_used: u64,
    prev_end: u64,
    /// The field of the slot before the current one.
    prev_field: u64,
    /// Entries found, those of full-length fingerprints apart.
    count: u64,
    full: u64,
    hist: [u64; 64],
}

impl Table {
    /// Checks every invariant from scratch (for tests), panicking with what
    /// is wrong: run by run, and word-wise as loading does, which must agree.
    pub(crate) fn check_invariants(&self) {
        let by_runs = self.validate_by_runs();
        if let Err(e) = &by_runs {
            panic!("slot table invariant broken: {e}");
        }
        assert!(
            self.check_words(),
            "the word-wise check rejects a table that holds every invariant"
        );
    }

    /// Checks every invariant from scratch, run by run, saying what is
    /// wrong; then that rank and select find every run. Never panics,
    /// whatever the words hold. Loading checks the same invariants faster,
    /// word-wise ([`validate`](Table::validate)), and comes here to say
    /// what is wrong.
    pub(crate) fn validate_by_runs(&self) -> Result<(), String> {
        let nslots = self.nslots();
        if self.words.len() % self.stride != 0 || self.nblocks() < Self::blocks_for(self.canonical)
        {
            return Err(format!(
                "{} words do not hold {} home slots",
                self.words.len(),
                self.canonical
            ));
        }
        for q in self.canonical as usize..nslots {
            if self.is_occupied(q) {
                return Err(format!(
                    "home slot {q} is past the {} home slots",
                    self.canonical
                ));
            }
        }
        // One pass over the home slots in order, allocating nothing and
        // visiting each slot a bounded number of times whatever the words
        // hold (a run that never ends, spills of billions), so that a
        // damaged table of any size is rejected in linear time.
        let mut next_free = 0usize;
        let mut count = 0usize;
        let mut hist = [0u64; 64];
        // Blocks whose spill has been checked: `0..checked`.
        let mut checked = 0usize;
        // Entries before the runs of block `b` all lie below `next_free`
        // and fill every slot from their home on, so the entries with home
        // before `64 b` at a slot from `64 b` on number exactly
        // `next_free - 64 b` (or none) once every home slot before `64 b`
        // is placed.
        let check_spills = |upto: usize, next_free: usize, checked: &mut usize| {
            while *checked < upto {
                let b = *checked;
                let want = next_free.saturating_sub(b * SLOTS);
                if self.spill(b) != want {
                    return Err(format!(
                        "block {b} records {} spilled entries, holds {want}",
                        self.spill(b)
                    ));
                }
                *checked += 1;
            }
            Ok(())
        };
        // Slots `from..to`, between runs, must be empty.
        let check_empty = |from: usize, to: usize| {
            for s in from..to {
                if self.is_runend(s) || self.field(s) != 0 || self.raw_value(s) != 0 {
                    return Err(format!("slot {s} is outside every run but not empty"));
                }
            }
            Ok(())
        };
        for q in 0..self.canonical as usize {
            if !self.is_occupied(q) {
                continue;
            }
            check_spills(q / SLOTS + 1, next_free, &mut checked)?;
            let start = q.max(next_free);
            check_empty(next_free, start)?;
            let mut end = start;
            while end < nslots && !self.is_runend(end) {
                end += 1;
            }
            if end >= nslots {
                return Err(format!("the run of home slot {q} does not end"));
            }
            let mut prev = 0;
            for s in start..=end {
                let f = self.field(s);
                if f == 0 {
                    return Err(format!(
                        "empty field at slot {s} in the run of home slot {q}"
                    ));
                }
                if f < prev {
                    return Err(format!("the run of home slot {q} is not sorted"));
                }
                prev = f;
                hist[field_len(f, self.fbits) as usize] += 1;
            }
            count += end - start + 1;
            next_free = end + 1;
        }
        check_spills(self.nblocks(), next_free, &mut checked)?;
        check_empty(next_free, nslots)?;
        if count != self.len {
            return Err(format!("{count} entries stored, {} recorded", self.len));
        }
        if hist != self.len_hist {
            return Err("fingerprint length counts do not match the entries".into());
        }
        // With the layout verified, rank and select find every run.
        next_free = 0;
        for q in 0..self.canonical as usize {
            if self.is_occupied(q) {
                let start = q.max(next_free);
                let mut end = start;
                while !self.is_runend(end) {
                    end += 1;
                }
                if self.run(q as u64) != Some((start, end)) {
                    return Err(format!("rank and select miss the run of home slot {q}"));
                }
                next_free = end + 1;
            }
        }
        Ok(())
    }

    /// Checks every invariant, as [`validate_by_runs`](Table::validate_by_runs)
    /// does, in one word-wise pass; when one is broken, that check says
    /// which. Never panics, whatever the words hold.
    pub(crate) fn validate(&self) -> Result<(), String> {
        if self.check_words() {
            return Ok(());
        }
        Err(self
            .validate_by_runs()
            .err()
            .unwrap_or_else(|| "the slot table's words are inconsistent".into()))
    }

    /// Whether every invariant holds (see the module documentation). A
    /// large table is checked in two halves on two threads where the
    /// machine has them.
    fn check_words(&self) -> bool {
        let nblocks = self.nblocks();
        if self.words.len() % self.stride != 0
            || nblocks < Self::blocks_for(self.canonical)
            || self.words.len() / self.stride * 2 != nblocks
        {
            return false;
        }
        let v = View {
            words: &self.words,
            stride: self.stride,
            width: self.width,
            fbits: self.fbits,
            canonical: self.canonical as usize,
            nslots: self.nslots,
        };
        let npairs = nblocks / 2;
        let two = npairs >= PARALLEL_PAIRS
            && std::thread::available_parallelism().is_ok_and(|n| n.get() > 1);
        let mid = npairs / 2;
        // Each half's state after it, `None` if it found damage. A thread
        // the system refuses (a cap on threads or address space) leaves
        // the whole table to this one.
        let halves = two
            .then(|| {
                std::thread::scope(|scope| {
                    let second = std::thread::Builder::new()
                        .spawn_scoped(scope, || v.check_pairs(mid..npairs, v.state_at(mid)))
                        .ok()?;
                    let first = v.check_pairs(0..mid, v.state_at(0));
                    Some((first, second.join().ok().flatten()))
                })
            })
            .flatten();
        let mut last = match halves {
            Some((Some(first), Some(mut last))) => {
                last.count += first.count;
                last.full += first.full;
                for (h, f) in last.hist.iter_mut().zip(first.hist) {
                    *h += f;
                }
                last
            }
            Some(_) => return false,
            None => match v.check_pairs(0..npairs, v.state_at(0)) {
                Some(st) => st,
                None => return false,
            },
        };
        last.hist[self.fbits as usize - 1] += last.full;
        last.opened == last.closed && last.count == self.len as u64 && last.hist == self.len_hist
    }
}

/// Pairs of blocks from which a table is checked on two threads (about a
/// million slots): below, a thread costs more than it saves.
const PARALLEL_PAIRS: usize = 1 << 13;

/// What the check reads of a table: its words and shape (a plain slice, to
/// share between threads).
struct View<'a> {
    words: &'a [u64],
    stride: usize,
    width: usize,
    fbits: u32,
    canonical: usize,
    nslots: usize,
}

impl View<'_> {
    fn run_word(&self, b: usize) -> u64 {
        self.words[(b / 2) * self.stride + 2 + b % 2]
    }
    fn is_runend(&self, s: usize) -> bool {
        self.run_word(s / SLOTS) >> (s % SLOTS) & 1 == 1
    }
    fn slot_bit(&self, s: usize) -> usize {
        ((s / (2 * SLOTS)) * self.stride + HDR) * 64 + (s % (2 * SLOTS)) * self.width
    }
    fn field(&self, s: usize) -> u64 {
        read_bits(self.words, self.slot_bit(s), self.fbits)
    }
    fn raw_value(&self, s: usize) -> u64 {
        let vbits = (self.width - self.fbits as usize) as u32;
        read_bits(self.words, self.slot_bit(s) + self.fbits as usize, vbits)
    }

    /// The state of the pass at the start of pair `pair`, from the headers
    /// before it: a count of home slots and runends, the last slot's.
    fn state_at(&self, pair: usize) -> State {
        let (mut opened, mut closed) = (0u64, 0u64);
        for p in 0..pair {
            let h = &self.words[p * self.stride..p * self.stride + 4];
            opened += (h[0].count_ones() + h[1].count_ones()) as u64;
            closed += (h[2].count_ones() + h[3].count_ones()) as u64;
        }
        // The slot before lies in a run when one is open there: opened
        // through it, not closed before it.
        let (prev_used, prev_end, prev_field) = match (pair * 2 * SLOTS).checked_sub(1) {
            Some(s) => {
                let end = self.is_runend(s) as u64;
                ((opened + end > closed) as u64, end, self.field(s))
            }
            None => (0, 0, 0),
        };
        State {
            opened,
            closed,
            cursor: 0,
            cursor_closed: 0,
            last_spill_end: 0,
            prev_used,
            prev_end,
            prev_field,
            count: 0,
            full: 0,
            hist: [0; 64],
        }
    }

    /// Checks pairs `pairs` from state `st`, returning the state after them
    /// if they hold every invariant.
    fn check_pairs(&self, pairs: std::ops::Range<usize>, st: State) -> Option<State> {
        macro_rules! by_width {
            ($($w:literal)*) => {
                match self.width {
                    $($w => self.check_pairs_of::<$w>(pairs, st),)*
                    _ => self.check_pairs_of::<0>(pairs, st),
                }
            };
        }
        // Slots of up to 28 bits go two or more to a word.
        by_width!(3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22 23 24 25 26 27 28)
    }

    /// [`check_pairs`](View::check_pairs) for slots of `W` bits, or of any
    /// width one by one for `W = 0`.
    fn check_pairs_of<const W: usize>(
        &self,
        pairs: std::ops::Range<usize>,
        mut st: State,
    ) -> Option<State> {
        for pair in pairs {
            let (used, start) = self.check_headers(pair, &mut st)?;
            let ok = if W == 0 {
                self.check_slots_one_by_one(pair, used, start, &mut st)
            } else {
                self.check_slots::<W>(pair, used, start, &mut st)
            };
            if !ok {
                return None;
            }
        }
        Some(st)
    }

    /// Checks the headers of pair `pair` (occupieds past the home slots,
    /// the bracket layout, the spills), returning which of its 128 slots
    /// lie in a run and which start one.
    #[inline]
    fn check_headers(&self, pair: usize, st: &mut State) -> Option<(u128, u128)> {
        let w = self.words;
        let base = pair * self.stride;
        let (mut used, mut start) = (0u128, 0u128);
        for half in 0..2 {
            let b = 2 * pair + half;
            let occ = w[base + half];
            let ends = w[base + 2 + half];
            // No home slot past the `canonical` ones.
            let first = b * SLOTS;
            let canonical = self.canonical;
            if first + SLOTS > canonical {
                let past = if first >= canonical {
                    u64::MAX
                } else {
                    u64::MAX << (canonical - first)
                };
                if occ & past != 0 {
                    return None;
                }
            }
            let open = st.opened - st.closed;
            let spill = (w[base + 4] >> (32 * half)) as u32 as usize;
            if !self.check_spill(b, spill, open, st) {
                return None;
            }
            let u = in_runs(occ, ends, open)?;
            st.count += u.count_ones() as u64;
            st.opened += occ.count_ones() as u64;
            st.closed += ends.count_ones() as u64;
            // A slot in a run starts one unless the slot before it lies in
            // the same run: in a run, and not its end.
            let before_in_run = (u << 1 | st.prev_used) & !(ends << 1 | st.prev_end);
            let s = u & !before_in_run;
            st.prev_used = u >> 63;
            st.prev_end = ends >> 63;
            used |= (u as u128) << (64 * half);
            start |= (s as u128) << (64 * half);
        }
        Some((used, start))
    }

    /// Checks the spill of block `b`, with `open` runs of earlier home slots
    /// open at its start (see the module documentation).
    #[inline]
    fn check_spill(&self, b: usize, spill: usize, open: u64, st: &mut State) -> bool {
        if open == 0 {
            return spill == 0;
        }
        let end = b * SLOTS + spill;
        if spill == 0 || end > self.nslots || end < st.last_spill_end {
            return false;
        }
        st.last_spill_end = end;
        if st.cursor < b {
            st.cursor = b;
            st.cursor_closed = st.closed;
        }
        while st.cursor < end / SLOTS {
            st.cursor_closed += self.run_word(st.cursor).count_ones() as u64;
            st.cursor += 1;
        }
        let closed_before_end = st.cursor_closed
            + if end % SLOTS == 0 {
                0
            } else {
                (self.run_word(end / SLOTS) & mask((end % SLOTS) as u32)).count_ones() as u64
            };
        closed_before_end == st.opened && self.is_runend(end - 1)
    }

    /// Checks the 128 slots of `W` bits of pair `pair`, a group at a time,
    /// given which lie in runs (`used`) and which start one.
    #[inline(always)]
    fn check_slots<const W: usize>(
        &self,
        pair: usize,
        used: u128,
        start: u128,
        st: &mut State,
    ) -> bool {
        let n = group_for(W);
        let full = Group::new(n, W, self.fbits);
        let tail = Group::new(SLOTS % n, W, self.fbits);
        let fbits = self.fbits as usize;
        // The pair's slots as bytes, and eight more to read each group as
        // one unaligned word; for the last pair, a copy with zeros after.
        let region = 16 * W;
        let at = (pair * self.stride + HDR) * 8;
        let bytes = as_bytes(self.words);
        let mut copy = [0u8; 16 * 28 + 8];
        let r: &[u8] = match bytes.get(at..at + region + 8) {
            Some(r) => r,
            None => {
                copy[..region].copy_from_slice(&bytes[at..at + region]);
                &copy[..region + 8]
            }
        };
        let cont = used & !start;
        let mut bad = 0u64;
        let mut prev_field = st.prev_field;
        let mut full_count = 0u64;
        let mut group = |c: &Group, bit: usize, used: u64, cont: u64| {
            let word = u64::from_le_bytes(r[bit / 8..bit / 8 + 8].try_into().expect("8 bytes"));
            let x = (word >> (bit % 8)) & c.bits_mask;
            let u = c.spread(used);
            let cn = c.spread(cont);
            // Slots outside runs hold nothing at all.
            bad |= x & (c.ones ^ u).wrapping_mul(mask(W as u32));
            let f = x & c.fields;
            // A field is not zero when adding all ones carries past it.
            let nonzero = f.wrapping_add(c.fields) >> fbits;
            bad |= u & !nonzero;
            // Each field against the one before it: the guard bit survives
            // the subtraction when it is not smaller.
            let prev = (f << W) | prev_field;
            let not_less = (f | c.guards).wrapping_sub(prev) >> fbits;
            bad |= cn & !not_less;
            // Full-length fingerprints end in the marker bit.
            full_count += (u & f).count_ones() as u64;
            let rest = u & !f;
            if rest != 0 {
                self.count_short(rest, f, st);
            }
            prev_field = f >> c.top;
        };
        // Block by block, so that which slots are used is a word.
        for half in 0..2 {
            let (mut used, mut cont) = ((used >> (64 * half)) as u64, (cont >> (64 * half)) as u64);
            let first = half * SLOTS * W;
            for k in 0..SLOTS / n {
                group(&full, first + k * n * W, used, cont);
                used >>= n;
                cont >>= n;
            }
            if tail.n > 0 {
                group(&tail, first + (SLOTS - tail.n) * W, used, cont);
            }
        }
        st.prev_field = prev_field;
        st.full += full_count;
        bad == 0
    }

    /// Counts by length the fingerprints shorter than full of the fields
    /// `f` of a group, those at the bits `rest`.
    #[cold]
    #[inline(never)]
    fn count_short(&self, mut rest: u64, f: u64, st: &mut State) {
        let fbits = self.fbits as usize;
        let mut t = 1;
        while rest != 0 && t < fbits {
            let hit = rest & (f >> t);
            st.hist[fbits - 1 - t] += hit.count_ones() as u64;
            rest &= !hit;
            t += 1;
        }
    }

    /// [`check_slots_swar`](Table::check_slots_swar) a slot at a time, for
    /// slots too wide to group.
    fn check_slots_one_by_one(&self, pair: usize, used: u128, start: u128, st: &mut State) -> bool {
        for i in 0..2 * SLOTS {
            let s = pair * 2 * SLOTS + i;
            let (f, v) = (self.field(s), self.raw_value(s));
            if (used >> i) & 1 == 0 {
                if f != 0 || v != 0 {
                    return false;
                }
                st.prev_field = 0;
                continue;
            }
            if f == 0 || ((start >> i) & 1 == 0 && f < st.prev_field) {
                return false;
            }
            st.hist[field_len(f, self.fbits) as usize] += 1;
            st.prev_field = f;
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{insert_new, next};
    use super::*;

    /// A table of `canonical` home slots holding `n` entries (about a third
    /// crowded onto a few home slots, for long clusters), fingerprints of
    /// several lengths and values of up to `vbits` bits.
    fn filled(canonical: u64, fbits: u32, vbits: u32, n: usize, seed: u64) -> Table {
        let mut t = Table::new(canonical, fbits, vbits, false);
        let mut x = seed;
        for i in 0..n {
            next(&mut x);
            let (q, f) = t.locate(x);
            let q = if i % 3 == 0 {
                [0, 63, 64, 127, 128, canonical - 1][i % 6].min(canonical - 1)
            } else {
                q
            };
            // Some shorter fingerprints: the marker moved up, zeros below.
            let f = match i % 7 {
                0 => (f | 1) & !3 | 2,
                1 if fbits > 3 => (f | 1) & !7 | 4,
                _ => f,
            };
            let v = (x >> 20) as i64 & ((1i64 << vbits.min(62)) - 1);
            if t.len() + 1 < t.max_len() {
                insert_new(&mut t, q, f, v);
            }
        }
        t
    }

    /// The word-wise check accepts exactly the tables the run-by-run one
    /// does: valid tables of every width class (grouped slots, one by one,
    /// wider than a word), then each with one of many random kinds of
    /// damage (a bit of a header, a slot, a spill, the counts).
    #[test]
    fn word_wise_check_agrees_with_the_run_by_run_one() {
        let mut x = 99u64;
        let (mut accepted, mut rejected) = (0, 0);
        for (fbits, vbits) in [
            (2u32, 1u32),
            (3, 1),
            (5, 3),
            (8, 2),
            (9, 1),
            (7, 9),
            (13, 11),
            (20, 8),
            (21, 7),
            (20, 9),
            (30, 20),
            (40, 64),
        ] {
            for (canonical, n) in [(1u64, 1usize), (100, 90), (300, 280), (1000, 940)] {
                let t = filled(canonical, fbits, vbits, n, next(&mut x));
                assert!(t.validate_by_runs().is_ok());
                assert!(t.check_words(), "{fbits} {vbits} {canonical}");
                for _ in 0..300 {
                    let mut d = t.clone();
                    let r = next(&mut x);
                    let words = d.words.len();
                    match r % 6 {
                        // A header word: an occupied, a runend, a spill.
                        0 => {
                            let pair = (r >> 8) as usize % (words / d.stride);
                            let k = (r >> 40) as usize % HDR;
                            d.words[pair * d.stride + k] ^= 1 << ((r >> 50) % 64);
                        }
                        1 => {
                            let pair = (r >> 8) as usize % (words / d.stride);
                            let k = 4;
                            let v = d.words[pair * d.stride + k];
                            d.words[pair * d.stride + k] =
                                v.wrapping_add(1 << (32 * (r >> 60 & 1)));
                        }
                        // A bit anywhere.
                        2 | 3 => {
                            let w = (r >> 8) as usize % words;
                            d.words[w] ^= 1 << ((r >> 50) % 64);
                        }
                        4 => d.len = d.len.wrapping_add(1 + (r >> 62) as usize) % (n + 3),
                        _ => {
                            let l = (r >> 8) as usize % fbits as usize;
                            d.len_hist[l] = d.len_hist[l].wrapping_add(1);
                        }
                    }
                    let want = d.validate_by_runs().is_ok();
                    assert_eq!(d.check_words(), want, "{fbits} {vbits} {canonical} {r:#x}");
                    assert_eq!(d.validate().is_ok(), want);
                    if want {
                        accepted += 1;
                    } else {
                        rejected += 1;
                    }
                }
            }
        }
        // Both sides were reached (a flipped bit of a value is no damage).
        assert!(accepted > 100 && rejected > 1000, "{accepted} {rejected}");
    }

    /// A table large enough to be checked on two threads is judged as a
    /// whole: damage on either side of the split, and runs across it.
    #[test]
    fn two_halves_agree_with_the_whole() {
        let canonical = (PARALLEL_PAIRS * 2 * SLOTS) as u64 + 1000;
        let t = filled(canonical, 8, 2, (canonical as f64 * 0.9) as usize, 5);
        assert!(t.check_words());
        let npairs = t.nblocks() / 2;
        let mid = npairs / 2;
        let mut x = 3u64;
        for pair in [0, mid - 1, mid, mid + 1, npairs - 1] {
            for _ in 0..4 {
                let mut d = t.clone();
                let r = next(&mut x);
                let w = pair * d.stride + (r >> 8) as usize % d.stride;
                d.words[w] ^= 1 << ((r >> 50) % 64);
                assert_eq!(
                    d.check_words(),
                    d.validate_by_runs().is_ok(),
                    "{pair} {r:#x}"
                );
            }
        }
    }

    #[test]
    fn spreading_puts_each_bit_at_its_slot() {
        for width in 3..=28 {
            let n = group_for(width);
            let g = Group::new(n, width, 2);
            for bits in [0u64, 1, mask(n as u32), 0b1010_1010_1010 & mask(n as u32)] {
                let want = (0..n).fold(0u64, |m, k| m | ((bits >> k) & 1) << (k * width));
                assert_eq!(g.spread(bits | 1 << 40), want, "{width} {bits:#b}");
            }
        }
    }
}
