//! Runs: sorted distinct keys with counts, in a few bits each.
//!
//! A run stores the gaps between its keys Rice-coded and each count
//! Elias-gamma-coded (1 bit for a count of 1), so a run of `n` keys spread
//! over a range `R` takes about `log2(R / n) + 2.5` bits a key. The k-mer
//! counter keeps its scratch files in runs, and a sharded build ships each
//! partition's keys to their shards in runs (see
//! [`crate::shard::ShardRuns`]).
//!
//! A run is a header (entries, Rice parameter `r`, first key, payload
//! bytes; little-endian) and a bit stream of, for each entry after the
//! first, the gap to the key before minus one, Rice-coded, and for each its
//! count. Decoding checks every length against the bytes it has, so a
//! damaged run is an error, never a panic, a wrong key order or an
//! allocation beyond the run's own size.

use crate::error::{MapletError, Result};
use crate::table::mask;

/// Bytes of a run's header.
pub(crate) const RUN_HEADER: usize = 25;

/// Unary quotients of at least this many bits are written as this many
/// ones and the rest Elias-gamma-coded.
const UNARY_MAX: u64 = 32;

/// The Rice parameter for about `n` sorted keys from `first` to `last`.
pub(crate) fn rice_bits(first: u64, last: u64, n: usize) -> u32 {
    let mean = (last - first) / (n as u64).max(1);
    63 - mean.max(1).leading_zeros()
}

/// Encodes a run of entries, sorted distinct keys with counts of at least
/// 1, with Rice parameter `r` (see [`rice_bits`]). Nothing for no entries.
pub(crate) fn encode_run(entries: impl Iterator<Item = (u64, u64)>, r: u32) -> Vec<u8> {
    let mut w = BitWriter::default();
    w.out.resize(RUN_HEADER, 0);
    let (mut n, mut first, mut prev) = (0u64, 0u64, None);
    for (key, count) in entries {
        match prev {
            Some(p) => {
                let gap: u64 = key - p - 1;
                let q = gap >> r;
                let len = 64 - count.leading_zeros();
                let (head, tail) = (q as u32 + 1 + r, 2 * len - 1);
                if q < UNARY_MAX && head + tail <= 32 {
                    // The common entry in one write: the quotient's ones
                    // and zero, the gap's low bits, the count's gamma code.
                    let code = ((1u64 << q) - 1)
                        | (gap & ((1u64 << r) - 1)) << (q + 1)
                        | ((1u64 << (len - 1)) - 1) << head
                        | (count & ((1u64 << (len - 1)) - 1)) << (head + len);
                    w.put(code, head + tail);
                    prev = Some(key);
                    n += 1;
                    continue;
                }
                w.unary(q);
                w.put(gap, r);
            }
            None => first = key,
        }
        w.gamma(count);
        prev = Some(key);
        n += 1;
    }
    if n == 0 {
        return Vec::new();
    }
    let mut out = w.finish();
    let len = (out.len() - RUN_HEADER) as u64;
    out[..8].copy_from_slice(&n.to_le_bytes());
    out[8] = r as u8;
    out[9..17].copy_from_slice(&first.to_le_bytes());
    out[17..25].copy_from_slice(&len.to_le_bytes());
    out
}

/// Bits written least significant first into bytes.
#[derive(Default)]
struct BitWriter {
    out: Vec<u8>,
    acc: u64,
    n: u32,
}

impl BitWriter {
    /// The low `bits` bits of `v`, `bits` at most 64.
    #[inline]
    fn put(&mut self, v: u64, bits: u32) {
        if bits > 32 {
            self.put(v & 0xFFFF_FFFF, 32);
            self.put(v >> 32, bits - 32);
            return;
        }
        // Fewer than 32 bits are pending: they and `v` fit one word.
        self.acc |= (v & ((1u64 << bits) - 1)) << self.n;
        self.n += bits;
        if self.n >= 32 {
            self.out.extend_from_slice(&(self.acc as u32).to_le_bytes());
            self.acc >>= 32;
            self.n -= 32;
        }
    }

    fn unary(&mut self, q: u64) {
        if q >= UNARY_MAX {
            self.put(u64::MAX, UNARY_MAX as u32);
            self.gamma(q - UNARY_MAX + 1);
        } else {
            self.put((1u64 << q) - 1, q as u32 + 1);
        }
    }

    /// `x` of at least 1: its bit length less one in unary, then its bits
    /// below the top one.
    fn gamma(&mut self, x: u64) {
        let len = 64 - x.leading_zeros();
        self.put((1u64 << (len - 1)) - 1, len);
        self.put(x, len - 1);
    }

    fn finish(mut self) -> Vec<u8> {
        let bytes = self.n.div_ceil(8) as usize;
        self.out.extend_from_slice(&self.acc.to_le_bytes()[..bytes]);
        self.out
    }
}

/// Reads what [`BitWriter`] wrote, from `bytes[at..end]`.
struct BitReader<B> {
    bytes: B,
    at: usize,
    end: usize,
    /// The next `n` bits, least significant first; the rest zero.
    acc: u64,
    n: u32,
    /// What the bytes are, for the error when they are damaged.
    what: &'static str,
}

impl<B: AsRef<[u8]>> BitReader<B> {
    fn damaged(&self) -> MapletError {
        MapletError::Corrupt(format!("{} is damaged", self.what))
    }

    #[inline]
    fn refill(&mut self) {
        let bytes = self.bytes.as_ref();
        if let Some(word) = bytes
            .get(self.at..self.at + 8)
            .filter(|_| self.at + 8 <= self.end)
        {
            // Whole bytes up to 56 bits or more, from one unaligned read.
            let word = u64::from_le_bytes(word.try_into().expect("8 bytes"));
            let take = (63 - self.n) / 8;
            self.acc |= (word & mask(8 * take)) << self.n;
            self.at += take as usize;
            self.n += 8 * take;
            return;
        }
        while self.n <= 56 && self.at < self.end {
            self.acc |= (bytes[self.at] as u64) << self.n;
            self.at += 1;
            self.n += 8;
        }
    }

    #[inline]
    fn consume(&mut self, bits: u32) {
        self.acc = if bits >= 64 { 0 } else { self.acc >> bits };
        self.n -= bits;
    }

    /// The next `bits` bits (at most 64).
    #[inline]
    fn get(&mut self, bits: u32) -> Result<u64> {
        if bits > 32 {
            let lo = self.get(32)?;
            return Ok(lo | self.get(bits - 32)? << 32);
        }
        if self.n < bits {
            self.refill();
            if self.n < bits {
                return Err(self.damaged());
            }
        }
        let v = self.acc & ((1u64 << bits) - 1);
        self.consume(bits);
        Ok(v)
    }

    /// The number of ones before the next zero (which is read too), at
    /// most `most`: then no zero follows.
    #[inline]
    fn ones(&mut self, most: u64) -> Result<u64> {
        let mut q = 0;
        loop {
            if self.n == 0 {
                self.refill();
                if self.n == 0 {
                    return Err(self.damaged());
                }
            }
            let ones = (self.acc.trailing_ones().min(self.n) as u64).min(most - q);
            q += ones;
            self.consume(ones as u32);
            if q == most {
                return Ok(q);
            }
            if self.n > 0 {
                self.consume(1);
                return Ok(q);
            }
        }
    }

    #[inline]
    fn unary(&mut self) -> Result<u64> {
        let q = self.ones(UNARY_MAX)?;
        if q == UNARY_MAX {
            return Ok(self.gamma()? + UNARY_MAX - 1);
        }
        Ok(q)
    }

    #[inline]
    fn gamma(&mut self) -> Result<u64> {
        let len = self.ones(64)? + 1;
        if len > 64 {
            return Err(self.damaged());
        }
        Ok((1u64 << (len - 1)) | self.get(len as u32 - 1)?)
    }
}

/// One run being decoded, from bytes held as `B` (a slice, or a shared
/// buffer of several runs).
pub(crate) struct Run<B> {
    bits: BitReader<B>,
    /// Entries not yet read.
    pub(crate) left: u64,
    r: u32,
    /// The first key, until it is read; then the last key read.
    first: Option<u64>,
    prev: u64,
}

impl<B: AsRef<[u8]>> Run<B> {
    /// The run at `bytes[at..]`, and its length in bytes; `what` names the
    /// bytes in the error if they are damaged.
    pub(crate) fn parse(bytes: B, at: usize, what: &'static str) -> Result<(Run<B>, usize)> {
        let damaged = || MapletError::Corrupt(format!("{what} is damaged"));
        let all = bytes.as_ref();
        let head = all
            .get(at..at.saturating_add(RUN_HEADER))
            .ok_or_else(damaged)?;
        let word = |i: usize| u64::from_le_bytes(head[i..i + 8].try_into().expect("8 bytes"));
        let (left, r, first, len) = (word(0), head[8] as u32, word(9), word(17));
        let start = at + RUN_HEADER;
        // Every entry takes at least one bit (its count), so a run claims
        // no more entries than its payload has bits.
        let end = usize::try_from(len)
            .ok()
            .and_then(|l| start.checked_add(l))
            .filter(|&e| e <= all.len() && r <= 63 && left <= len.saturating_mul(8))
            .ok_or_else(damaged)?;
        let bits = BitReader {
            bytes,
            at: start,
            end,
            acc: 0,
            n: 0,
            what,
        };
        let run = Run {
            bits,
            left,
            r,
            first: Some(first),
            prev: 0,
        };
        Ok((run, end - at))
    }

    /// The next key and its count; keys come strictly increasing.
    pub(crate) fn next_entry(&mut self) -> Result<Option<(u64, u64)>> {
        if self.left == 0 {
            return Ok(None);
        }
        self.left -= 1;
        if self.first.is_none() {
            if let Some(entry) = self.next_short() {
                return Ok(Some(entry));
            }
        }
        let key = match self.first.take() {
            Some(f) => f,
            None => {
                let q = self.bits.unary()?;
                let gap = q
                    .checked_shl(self.r)
                    .filter(|g| g >> self.r == q)
                    .ok_or_else(|| self.bits.damaged())?
                    | self.bits.get(self.r)?;
                self.prev
                    .checked_add(gap)
                    .and_then(|k| k.checked_add(1))
                    .ok_or_else(|| self.bits.damaged())?
            }
        };
        self.prev = key;
        Ok(Some((key, self.bits.gamma()?)))
    }

    /// The next entry after the first when it is the common one that
    /// [`encode_run`] writes at once (all its bits among those at hand,
    /// and its key in range); else `None`, having read nothing.
    #[inline]
    fn next_short(&mut self) -> Option<(u64, u64)> {
        let b = &mut self.bits;
        if b.n < 32 {
            b.refill();
        }
        let q = b.acc.trailing_ones();
        let head = q + 1 + self.r;
        if q as u64 >= UNARY_MAX || head >= b.n {
            return None;
        }
        let low = (b.acc >> (q + 1)) & mask(self.r);
        let rest = b.acc >> head;
        let len = rest.trailing_ones() + 1;
        if head + 2 * len - 1 > b.n {
            return None;
        }
        let count = (1u64 << (len - 1)) | ((rest >> len) & mask(len - 1));
        let key = self
            .prev
            .checked_add(((q as u64) << self.r) | low)?
            .checked_add(1)?;
        b.consume(head + 2 * len - 1);
        self.prev = key;
        Some((key, count))
    }
}
