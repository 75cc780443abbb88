//! Looking a key up: its home slot and query field (from a hash or a sort
//! key), prefetching its slots, the matching entries of its run, and the
//! value of a found slot read and written by its first bit.

use super::bits::{field_matches, mask, read_bits, read_bits_masked, write_bits};
#[cfg(target_endian = "little")]
use super::bits::{load_at_bit, store_at_bit};
use super::{Table, SLOTS};

impl Table {
    /// Home slot and full-length query field of a hash.
    #[inline]
    pub(crate) fn locate(&self, hash: u64) -> (u64, u64) {
        let prod = (hash as u128) * (self.canonical as u128);
        let q = (prod >> 64) as u64;
        let frac = prod as u64;
        let fp = frac >> (64 - (self.fbits - 1));
        (q, (fp << 1) | 1)
    }

    /// A hash's home slot and fingerprint as one number, ordered like the
    /// table: `q << (fbits - 1) | fingerprint`, below `2^sort_key_bits()`.
    #[inline]
    pub(crate) fn sort_key(&self, hash: u64) -> u64 {
        let (q, f) = self.locate(hash);
        (q << (self.fbits - 1)) | (f >> 1)
    }

    /// Bits of a [`sort_key`](Table::sort_key).
    pub(crate) fn sort_key_bits(&self) -> u32 {
        64 - self.canonical.leading_zeros() + self.fbits - 1
    }

    /// Home slot and query field of a [`sort_key`](Table::sort_key).
    #[inline]
    pub(crate) fn locate_sort_key(&self, key: u64) -> (u64, u64) {
        (
            key >> (self.fbits - 1),
            ((key & mask(self.fbits - 1)) << 1) | 1,
        )
    }

    /// Asks the CPU to start loading the block header and the first slots of
    /// home slot `q`, so that a lookup a few steps later finds them in cache.
    #[inline]
    pub(crate) fn prefetch(&self, q: u64) {
        self.prefetch_words(self.hdr(q as usize / SLOTS, 0));
    }

    /// Asks the CPU to start loading the slots around home slot `q` while
    /// the header is read: a run starts at or a little after its home slot,
    /// so the two loads overlap instead of following each other.
    #[inline]
    pub(crate) fn prefetch_home(&self, q: u64) {
        self.prefetch_words(self.slot_bit(q as usize) / 64);
    }

    /// [`prefetch_home`](Table::prefetch_home) for an insert, which also
    /// writes where the run ends and the slots after it, up to the next
    /// unused one: at high load those lie past the home slot's two lines.
    #[inline]
    pub(crate) fn prefetch_insert(&self, q: u64) {
        let at = self.slot_bit(q as usize) / 64;
        self.prefetch_words(at);
        self.prefetch_words(at + 16);
    }

    /// Prefetches the two cache lines from word `at` on.
    #[inline]
    fn prefetch_words(&self, at: usize) {
        #[cfg(target_arch = "x86_64")]
        {
            // Past the end is harmless: the address is only computed
            // (`wrapping_add`) and prefetched, never dereferenced.
            let p = self.words.as_ptr().wrapping_add(at) as *const i8;
            // SAFETY: a prefetch is only a hint: it never faults and has no
            // effect a program can observe, whatever the address.
            #[allow(unsafe_code)]
            unsafe {
                std::arch::x86_64::_mm_prefetch(p, std::arch::x86_64::_MM_HINT_T0);
                std::arch::x86_64::_mm_prefetch(p.wrapping_add(64), std::arch::x86_64::_MM_HINT_T0);
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        let _ = at;
    }

    /// A slot of home slot `q`'s run whose field matches `query`, and that
    /// slot's value bits: the only one when the table is
    /// [`uniform`](Table::uniform). The run is walked back from its end (one
    /// select finds it), stopping at `q` or the previous run's end.
    #[inline(always)]
    pub(crate) fn find(&self, q: u64, query: u64) -> Option<(usize, u64)> {
        let w: &[u64] = &self.words;
        let q = q as usize;
        // Most absent keys stop here, before the select.
        if !self.is_occupied(q) {
            return None;
        }
        let Some((true, Ok(end))) = self.locate_run(w, q) else {
            return None;
        };
        let fbits = self.fbits as usize;
        let (mut s, mut at) = (end, self.slot_bit(end));
        loop {
            // A slot of up to 57 bits, field and value, is one load (the
            // loop's own copy of the steps below: merged, the lookup takes
            // six more instructions).
            #[cfg(target_endian = "little")]
            if self.width <= 57 {
                if let Some(slot) = load_at_bit(w, at) {
                    if field_matches(slot & self.fmask, query) {
                        return Some((s, (slot >> fbits) & self.vmask));
                    }
                    if s <= q || self.runend_in(w, s - 1) {
                        return None;
                    }
                    (s, at) = self.prev_slot(s, at);
                    continue;
                }
            }
            if field_matches(read_bits_masked(w, at, fbits, self.fmask), query) {
                let v = read_bits_masked(w, at + fbits, self.vbits as usize, self.vmask);
                return Some((s, v));
            }
            if s <= q || self.runend_in(w, s - 1) {
                return None;
            }
            (s, at) = self.prev_slot(s, at);
        }
    }

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

    /// The value of the slot whose first bit is `bit` (as
    /// [`Probe::Found`](super::Probe::Found) gives it), sign-extended when
    /// the table is signed.
    #[inline]
    pub(crate) fn value_at_bit(&self, bit: usize) -> i64 {
        self.value_of_raw(read_bits(
            &self.words,
            bit + self.fbits as usize,
            self.vbits,
        ))
    }

    /// Stores `v` in the slot whose first bit is `bit`; the caller has
    /// checked that it fits.
    #[inline]
    pub(crate) fn set_value_at_bit(&mut self, bit: usize, v: i64) {
        debug_assert!(self.fits(v));
        let (bit, raw) = (bit + self.fbits as usize, v as u64 & self.vmask);
        // A value of up to 57 bits is one unaligned read and write.
        #[cfg(target_endian = "little")]
        if self.vbits <= 57 && store_at_bit(&mut self.words, bit, self.vmask, raw) {
            return;
        }
        write_bits(&mut self.words, bit, self.vbits, raw)
    }
}
