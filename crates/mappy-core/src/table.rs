//! The slot table: a rank-and-select quotient filter whose slots hold a
//! fingerprint field and a packed value.
//!
//! # Layout
//! Slots come in blocks of 64. A block is `2 + fbits + vbits` words:
//! `occupieds` (bit `i`: some entry has home slot `64 b + i`), `runends`
//! (bit `i`: slot `64 b + i` ends a run), then the 64 fingerprint fields of
//! `fbits` bits each, then the 64 values of `vbits` bits each. A separate
//! `spill[b]` counts the entries whose home slot lies before block `b` but
//! which sit in block `b` or later; with it, the run of any home slot is found
//! by rank (in `occupieds`) and select (in `runends`) without scanning.
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

/// Maximum fraction of home slots in use before the table doubles.
pub(crate) const MAX_LOAD: f64 = 0.95;
/// Widest fingerprint field (fingerprint bits plus the marker).
pub(crate) const MAX_FBITS: u32 = 62;

#[inline]
fn mask(width: u32) -> u64 {
    if width >= 64 {
        u64::MAX
    } else {
        (1u64 << width) - 1
    }
}

/// Position of the `k`-th (from 0) set bit of `w`; `w` has more than `k`.
#[inline]
fn select64(mut w: u64, k: usize) -> usize {
    for _ in 0..k {
        w &= w - 1;
    }
    w.trailing_zeros() as usize
}

#[inline]
fn read_bits(words: &[u64], bit: usize, width: u32) -> u64 {
    let (w, sh) = (bit / 64, bit % 64);
    let mut v = words[w] >> sh;
    if sh + width as usize > 64 {
        v |= words[w + 1] << (64 - sh);
    }
    v & mask(width)
}

#[inline]
fn write_bits(words: &mut [u64], bit: usize, width: u32, value: u64) {
    let (w, sh) = (bit / 64, bit % 64);
    let m = mask(width);
    let value = value & m;
    words[w] = (words[w] & !(m << sh)) | (value << sh);
    if sh + width as usize > 64 {
        let hi = 64 - sh;
        words[w + 1] = (words[w + 1] & !(m >> hi)) | (value >> hi);
    }
}

/// Fingerprint length of a field (bits before the marker).
#[inline]
pub(crate) fn field_len(field: u64, fbits: u32) -> u32 {
    fbits - 1 - field.trailing_zeros()
}

/// Whether a stored field matches a full-length query field.
#[inline]
pub(crate) fn field_matches(field: u64, query: u64) -> bool {
    ((field ^ query) >> (field.trailing_zeros() + 1)) == 0
}

/// Bits needed to hold `x` (packed, sign-extended if `signed`).
#[inline]
pub(crate) fn value_width(x: i64, signed: bool) -> u32 {
    let w = if signed {
        65 - if x < 0 {
            (!x).leading_zeros()
        } else {
            x.leading_zeros()
        }
    } else {
        64 - (x as u64).leading_zeros()
    };
    w.clamp(1, 64)
}

/// The slot table. See the module documentation for its layout.
#[derive(Clone, Debug)]
pub(crate) struct Table {
    canonical: u64,
    fbits: u32,
    vbits: u32,
    signed: bool,
    stride: usize,
    words: Vec<u64>,
    spill: Vec<u32>,
    len: usize,
    /// Entries by fingerprint length.
    len_hist: [u64; 64],
}

impl Table {
    /// An empty table with `canonical` home slots.
    pub(crate) fn new(canonical: u64, fbits: u32, vbits: u32, signed: bool) -> Table {
        assert!(canonical >= 1 && (2..=MAX_FBITS).contains(&fbits) && (1..=64).contains(&vbits));
        let nblocks = Self::blocks_for(canonical);
        let stride = 2 + fbits as usize + vbits as usize;
        Table {
            canonical,
            fbits,
            vbits,
            signed,
            stride,
            words: vec![0; nblocks * stride],
            spill: vec![0; nblocks],
            len: 0,
            len_hist: [0; 64],
        }
    }

    fn blocks_for(canonical: u64) -> usize {
        (canonical as usize).div_ceil(64) + 1
    }

    /// Heap bytes a table with these parameters takes when empty.
    pub(crate) fn bytes_for(canonical: u64, fbits: u32, vbits: u32) -> usize {
        let nblocks = Self::blocks_for(canonical);
        nblocks * (2 + fbits as usize + vbits as usize) * 8 + nblocks * 4
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
    pub(crate) fn nblocks(&self) -> usize {
        self.spill.len()
    }
    pub(crate) fn nslots(&self) -> usize {
        self.nblocks() * 64
    }
    pub(crate) fn heap_bytes(&self) -> usize {
        self.words.capacity() * 8 + self.spill.capacity() * 4
    }
    pub(crate) fn len_hist(&self) -> &[u64; 64] {
        &self.len_hist
    }

    /// Heap bytes after a [`reformat`](Table::reformat) or doubling.
    pub(crate) fn bytes_after(&self, canonical: u64, fbits: u32, vbits: u32) -> usize {
        let extra = self
            .nblocks()
            .saturating_sub(Self::blocks_for(self.canonical));
        let nblocks = Self::blocks_for(canonical) + extra;
        nblocks * (2 + fbits as usize + vbits as usize) * 8 + nblocks * 4
    }

    /// Home slot and full-length query field of a hash.
    #[inline]
    pub(crate) fn locate(&self, hash: u64) -> (u64, u64) {
        let prod = (hash as u128) * (self.canonical as u128);
        let q = (prod >> 64) as u64;
        let frac = prod as u64;
        let fp = frac >> (64 - (self.fbits - 1));
        (q, (fp << 1) | 1)
    }

    // ---- bit access -------------------------------------------------------

    #[inline]
    fn occupieds(&self, b: usize) -> u64 {
        self.words[b * self.stride]
    }
    #[inline]
    fn runends(&self, b: usize) -> u64 {
        self.words[b * self.stride + 1]
    }
    #[inline]
    fn is_occupied(&self, q: usize) -> bool {
        self.occupieds(q / 64) >> (q % 64) & 1 == 1
    }
    #[inline]
    fn set_occupied(&mut self, q: usize, on: bool) {
        let w = &mut self.words[(q / 64) * self.stride];
        if on {
            *w |= 1 << (q % 64);
        } else {
            *w &= !(1 << (q % 64));
        }
    }
    #[inline]
    fn is_runend(&self, s: usize) -> bool {
        self.runends(s / 64) >> (s % 64) & 1 == 1
    }
    #[inline]
    fn set_runend(&mut self, s: usize, on: bool) {
        let w = &mut self.words[(s / 64) * self.stride + 1];
        if on {
            *w |= 1 << (s % 64);
        } else {
            *w &= !(1 << (s % 64));
        }
    }

    /// The field of slot `s`.
    #[inline]
    pub(crate) fn field(&self, s: usize) -> u64 {
        let base = (s / 64) * self.stride + 2;
        read_bits(
            &self.words[base..base + self.fbits as usize],
            (s % 64) * self.fbits as usize,
            self.fbits,
        )
    }
    #[inline]
    fn set_field(&mut self, s: usize, f: u64) {
        let base = (s / 64) * self.stride + 2;
        let fb = self.fbits;
        write_bits(
            &mut self.words[base..base + fb as usize],
            (s % 64) * fb as usize,
            fb,
            f,
        )
    }
    /// The raw value bits of slot `s`.
    #[inline]
    pub(crate) fn raw_value(&self, s: usize) -> u64 {
        let base = (s / 64) * self.stride + 2 + self.fbits as usize;
        read_bits(
            &self.words[base..base + self.vbits as usize],
            (s % 64) * self.vbits as usize,
            self.vbits,
        )
    }
    /// The value of slot `s`, sign-extended when the table is signed.
    #[inline]
    pub(crate) fn value(&self, s: usize) -> i64 {
        let raw = self.raw_value(s);
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
        let base = (s / 64) * self.stride + 2 + self.fbits as usize;
        let vb = self.vbits;
        write_bits(
            &mut self.words[base..base + vb as usize],
            (s % 64) * vb as usize,
            vb,
            v as u64,
        )
    }
    /// Whether `v` can be stored without widening.
    #[inline]
    pub(crate) fn fits(&self, v: i64) -> bool {
        if v < 0 && !self.signed {
            return false;
        }
        value_width(v, self.signed) <= self.vbits
    }

    // ---- rank and select --------------------------------------------------

    /// Position of the `k`-th (from 0) runend at or after slot `p`.
    #[inline]
    fn select_runend_from(&self, p: usize, mut k: usize) -> usize {
        let mut b = p / 64;
        let mut w = self.runends(b) & (u64::MAX << (p % 64));
        loop {
            let c = w.count_ones() as usize;
            if k < c {
                return b * 64 + select64(w, k);
            }
            k -= c;
            b += 1;
            w = self.runends(b);
        }
    }

    /// End of the run of the last occupied home slot `<= q`, or `None` if
    /// that run ends before block `q / 64` starts (so nothing before `q`
    /// reaches into `q`'s block); `d` is how many occupied home slots of
    /// `q`'s block are `<= q`.
    #[inline]
    fn last_runend_upto(&self, q: usize) -> (Option<usize>, usize) {
        let b = q / 64;
        let i = q % 64;
        let upto = if i == 63 {
            u64::MAX
        } else {
            (1u64 << (i + 1)) - 1
        };
        let d = (self.occupieds(b) & upto).count_ones() as usize;
        let p0 = b * 64 + self.spill[b] as usize;
        if d == 0 {
            (if p0 > b * 64 { Some(p0 - 1) } else { None }, 0)
        } else {
            (Some(self.select_runend_from(p0, d - 1)), d)
        }
    }

    /// Slots `start..=end` of the run of home slot `q`, if it has one.
    #[inline]
    pub(crate) fn run(&self, q: u64) -> Option<(usize, usize)> {
        let q = q as usize;
        if !self.is_occupied(q) {
            return None;
        }
        let b = q / 64;
        let i = q % 64;
        let upto = if i == 63 {
            u64::MAX
        } else {
            (1u64 << (i + 1)) - 1
        };
        let d = (self.occupieds(b) & upto).count_ones() as usize;
        let p0 = b * 64 + self.spill[b] as usize;
        if d == 1 {
            let end = self.select_runend_from(p0, 0);
            Some((q.max(p0), end))
        } else {
            let prev = self.select_runend_from(p0, d - 2);
            let end = self.select_runend_from(prev + 1, 0);
            Some((q.max(prev + 1), end))
        }
    }

    /// Where a new entry of home slot `q` (not occupied) would start its run.
    fn new_run_start(&self, q: usize) -> usize {
        match self.last_runend_upto(q).0 {
            Some(e) => q.max(e + 1),
            None => q,
        }
    }

    /// The first unused slot at or after `p`, if any before the table's end.
    fn first_empty_from(&self, mut p: usize) -> Option<usize> {
        while p < self.nslots() {
            match self.last_runend_upto(p).0 {
                Some(e) if e >= p => p = e + 1,
                _ => return Some(p),
            }
        }
        None
    }

    fn push_block(&mut self) {
        // Exact: the overflow area grows rarely, and a doubled allocation
        // would cost far more than the block.
        self.words.reserve_exact(self.stride);
        self.spill.reserve_exact(1);
        self.words.resize(self.words.len() + self.stride, 0);
        self.spill.push(0);
    }

    // ---- lookup -----------------------------------------------------------

    /// The slots of home slot `q` whose fields match `query`.
    #[inline]
    pub(crate) fn matches(&self, q: u64, query: u64) -> impl Iterator<Item = usize> + '_ {
        let range = match self.run(q) {
            Some((s, e)) => s..e + 1,
            None => 0..0,
        };
        range.filter(move |&s| field_matches(self.field(s), query))
    }

    /// The matching slot with the longest fingerprint (the most specific).
    #[inline]
    pub(crate) fn best_match(&self, q: u64, query: u64) -> Option<usize> {
        let mut best: Option<(usize, u32)> = None;
        for s in self.matches(q, query) {
            let tz = self.field(s).trailing_zeros();
            if best.is_none_or(|(_, btz)| tz < btz) {
                best = Some((s, tz));
            }
        }
        best.map(|(s, _)| s)
    }

    // ---- insertion and removal --------------------------------------------

    /// Adds a new entry with home slot `q`, field `field` and value `v`
    /// (which must fit). The caller keeps the load below the maximum.
    pub(crate) fn insert_new(&mut self, q: u64, field: u64, v: i64) {
        let q = q as usize;
        let pos = match self.run(q as u64) {
            Some((start, end)) => {
                let mut pos = end + 1;
                for s in start..=end {
                    if self.field(s) > field {
                        pos = s;
                        break;
                    }
                }
                pos
            }
            None => self.new_run_start(q),
        };
        let was_occupied = self.is_occupied(q);
        let old_end = if was_occupied {
            self.run(q as u64).map(|r| r.1)
        } else {
            None
        };
        let empty = loop {
            match self.first_empty_from(pos) {
                Some(e) => break e,
                None => self.push_block(),
            }
        };
        // Shift slots pos..empty one to the right.
        for j in (pos + 1..=empty).rev() {
            let f = self.field(j - 1);
            self.set_field(j, f);
            let v = self.raw_value(j - 1);
            self.set_raw_value(j, v);
            let r = self.is_runend(j - 1);
            self.set_runend(j, r);
        }
        self.set_field(pos, field);
        self.set_value(pos, v);
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
        for b in q / 64 + 1..=empty / 64 {
            self.spill[b] += 1;
        }
        self.len += 1;
        self.len_hist[field_len(field, self.fbits) as usize] += 1;
    }

    #[inline]
    fn set_raw_value(&mut self, s: usize, raw: u64) {
        let base = (s / 64) * self.stride + 2 + self.fbits as usize;
        let vb = self.vbits;
        write_bits(
            &mut self.words[base..base + vb as usize],
            (s % 64) * vb as usize,
            vb,
            raw,
        )
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
                    last = self.select_runend_from(p, 0);
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
            let f = self.field(j + 1);
            self.set_field(j, f);
            let v = self.raw_value(j + 1);
            self.set_raw_value(j, v);
            let r = self.is_runend(j + 1);
            self.set_runend(j, r);
        }
        self.set_field(last, 0);
        self.set_raw_value(last, 0);
        self.set_runend(last, false);
        // Invariant 2, as in insert_new: every block starting in (q, last]
        // loses one.
        for b in q / 64 + 1..=last / 64 {
            self.spill[b] -= 1;
        }
        self.len -= 1;
    }

    /// The next occupied home slot after `q`.
    fn next_occupied_after(&self, q: usize) -> Option<usize> {
        let mut p = q + 1;
        let limit = self.canonical as usize;
        while p < limit {
            let w = self.occupieds(p / 64) >> (p % 64);
            if w != 0 {
                let r = p + w.trailing_zeros() as usize;
                return (r < limit).then_some(r);
            }
            p = (p / 64 + 1) * 64;
        }
        None
    }

    /// Checks every invariant from scratch (for tests), panicking with what
    /// is wrong.
    pub(crate) fn check_invariants(&self) {
        let mut next_free = 0usize;
        let mut count = 0usize;
        let mut hist = [0u64; 64];
        let mut spill = vec![0u32; self.nblocks()];
        let mut used = vec![false; self.nslots()];
        for q in 0..self.canonical as usize {
            if !self.is_occupied(q) {
                continue;
            }
            let start = q.max(next_free);
            let mut end = start;
            while !self.is_runend(end) {
                end += 1;
            }
            let mut prev = 0;
            for s in start..=end {
                let f = self.field(s);
                assert!(
                    f != 0 && f < (1 << self.fbits),
                    "field at slot {s} of home slot {q}: {f:#x}"
                );
                assert!(f >= prev, "run of home slot {q} not sorted");
                prev = f;
                hist[field_len(f, self.fbits) as usize] += 1;
                used[s] = true;
                for b in q / 64 + 1..=s / 64 {
                    spill[b] += 1;
                }
            }
            count += end - start + 1;
            next_free = end + 1;
        }
        for s in 0..self.nslots() {
            if !used[s] {
                assert!(!self.is_runend(s), "runend bit on unused slot {s}");
                assert_eq!(self.field(s), 0, "field on unused slot {s}");
            }
        }
        for q in self.canonical as usize..self.nslots() {
            assert!(
                !self.is_occupied(q),
                "occupied bit past the home slots at {q}"
            );
        }
        assert_eq!(count, self.len, "entry count");
        assert_eq!(hist, self.len_hist, "length histogram");
        assert_eq!(spill, self.spill, "spill counts");
        next_free = 0;
        for q in 0..self.canonical as usize {
            if self.is_occupied(q) {
                let start = q.max(next_free);
                let mut end = start;
                while !self.is_runend(end) {
                    end += 1;
                }
                assert_eq!(
                    self.run(q as u64),
                    Some((start, end)),
                    "run of home slot {q}"
                );
                next_free = end + 1;
            }
        }
    }

    // ---- whole-table passes ------------------------------------------------

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
    pub(crate) fn reformat(&self, fbits: u32, vbits: u32, signed: bool) -> Table {
        assert!(fbits >= self.fbits);
        let mut t = Table {
            canonical: self.canonical,
            fbits,
            vbits,
            signed,
            stride: 2 + fbits as usize + vbits as usize,
            words: Vec::new(),
            spill: self.spill.clone(),
            len: self.len,
            len_hist: self.len_hist,
        };
        t.words = vec![0; self.nblocks() * t.stride];
        let shift = fbits - self.fbits;
        for b in 0..self.nblocks() {
            t.words[b * t.stride] = self.occupieds(b);
            t.words[b * t.stride + 1] = self.runends(b);
        }
        for (_, start, end) in self.runs() {
            for s in start..=end {
                t.set_field(s, self.field(s) << shift);
                t.set_value(s, self.value(s));
            }
        }
        t
    }

    /// The table with twice the home slots. Each entry moves to home slot
    /// `2q` or `2q + 1` by its first fingerprint bit; an entry with no
    /// fingerprint bits left is copied to both, its value passed through
    /// `dup` for the second copy. `fbits` may be wider than now.
    pub(crate) fn doubled(&self, fbits: u32, mut dup: impl FnMut(i64) -> i64) -> Table {
        assert!(fbits >= self.fbits);
        let mut b = Builder::new(
            self.canonical * 2,
            fbits,
            self.vbits,
            self.signed,
            self.nslots() * 2,
        );
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
                if f == top {
                    lo.push((f << widen, v));
                    hi.push((f << widen, dup(v)));
                } else {
                    let nf = ((f << 1) & fmask) << widen;
                    if f & top == 0 {
                        lo.push((nf, v));
                    } else {
                        hi.push((nf, v));
                    }
                }
            }
            lo.sort_unstable_by_key(|e| e.0);
            hi.sort_unstable_by_key(|e| e.0);
            for &(f, v) in &lo {
                b.push(2 * q, f, v);
            }
            for &(f, v) in &hi {
                b.push(2 * q + 1, f, v);
            }
        }
        b.finish()
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
            let w = t.occupieds(self.q / 64) >> (self.q % 64);
            if w == 0 {
                self.q = (self.q / 64 + 1) * 64;
                continue;
            }
            let q = self.q + w.trailing_zeros() as usize;
            if q >= limit {
                break;
            }
            let start = q.max(self.next_free);
            let end = t.select_runend_from(start, 0);
            self.q = q + 1;
            self.next_free = end + 1;
            return Some((q as u64, start, end));
        }
        None
    }
}

/// Builds a table from entries given in home-slot order (fields ascending
/// within a home slot), with no shifting.
pub(crate) struct Builder {
    table: Table,
    next_free: usize,
    last_q: Option<u64>,
}

impl Builder {
    /// A builder for a table of `canonical` home slots; `slots_hint` reserves
    /// room for the overflow area.
    pub(crate) fn new(
        canonical: u64,
        fbits: u32,
        vbits: u32,
        signed: bool,
        slots_hint: usize,
    ) -> Builder {
        let mut table = Table::new(canonical, fbits, vbits, signed);
        let want = slots_hint.div_ceil(64) * table.stride;
        if want > table.words.len() {
            table.words.reserve(want - table.words.len());
        }
        Builder {
            table,
            next_free: 0,
            last_q: None,
        }
    }

    /// The table being built (to check widths).
    pub(crate) fn table(&self) -> &Table {
        &self.table
    }

    /// Widens the values of the table being built.
    pub(crate) fn widen_values(&mut self, vbits: u32, signed: bool) {
        self.table = self.table.reformat(self.table.fbits, vbits, signed);
    }

    /// Appends an entry; `v` must fit the table's value width.
    pub(crate) fn push(&mut self, q: u64, field: u64, v: i64) {
        let t = &mut self.table;
        let pos = if self.last_q == Some(q) {
            t.set_runend(self.next_free - 1, false);
            self.next_free
        } else {
            debug_assert!(self.last_q.is_none_or(|l| l < q));
            t.set_occupied(q as usize, true);
            (q as usize).max(self.next_free)
        };
        while pos >= t.nslots() {
            t.push_block();
        }
        t.set_field(pos, field);
        t.set_value(pos, v);
        t.set_runend(pos, true);
        // Invariant 2: this entry counts for every block start in (q, pos].
        for b in (q as usize) / 64 + 1..=pos / 64 {
            t.spill[b] += 1;
        }
        t.len += 1;
        t.len_hist[field_len(field, t.fbits) as usize] += 1;
        self.last_q = Some(q);
        self.next_free = pos + 1;
    }

    /// The finished table.
    pub(crate) fn finish(self) -> Table {
        self.table
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bits_roundtrip_across_words() {
        let mut words = vec![0u64; 13];
        for i in 0..64 {
            write_bits(&mut words, i * 13, 13, (i as u64 * 977) & mask(13));
        }
        for i in 0..64 {
            assert_eq!(read_bits(&words, i * 13, 13), (i as u64 * 977) & mask(13));
        }
    }

    #[test]
    fn field_matching_respects_prefix_length() {
        // fbits 8: field 1011_0100 has L = 5 (prefix 10110).
        let f = 0b1011_0100;
        assert_eq!(field_len(f, 8), 5);
        assert!(field_matches(f, 0b1011_0111));
        assert!(field_matches(f, 0b1011_0001));
        assert!(!field_matches(f, 0b1011_1001));
        assert!(field_matches(0b1000_0000, 0b0110_1011)); // L = 0 matches all
    }

    #[test]
    fn value_widths() {
        assert_eq!(value_width(0, false), 1);
        assert_eq!(value_width(255, false), 8);
        assert_eq!(value_width(255, true), 9);
        assert_eq!(value_width(-1, true), 1);
        assert_eq!(value_width(-128, true), 8);
        assert_eq!(value_width(i64::MIN, true), 64);
    }
}
