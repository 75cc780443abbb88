//! Bit-level helpers over words: masks, select within a word (by `pdep`
//! where the CPU has a fast one, else broadword), reading, writing and
//! shifting bit fields that may cross word boundaries, and the bit counts
//! of fingerprint fields and values.

#[cfg(target_endian = "little")]
use crate::storage::{as_bytes, as_bytes_mut};

/// The low `width` bits set (all 64 for 64).
#[inline]
pub(crate) fn mask(width: u32) -> u64 {
    if width >= 64 {
        u64::MAX
    } else {
        (1u64 << width) - 1
    }
}

/// `SELECT_IN_BYTE[8 b + k]`: position of the `k`-th set bit of byte `b`.
static SELECT_IN_BYTE: [u8; 2048] = {
    let mut t = [0u8; 2048];
    let mut b = 0;
    while b < 256 {
        let (mut k, mut i) = (0, 0);
        while i < 8 {
            if b >> i & 1 == 1 {
                t[b * 8 + k] = i as u8;
                k += 1;
            }
            i += 1;
        }
        b += 1;
    }
    t
};

/// Position of the `k`-th (from 0) set bit of `w`; `w` has more than `k`.
///
/// One `pdep` where the CPU has a fast one (checked once per process),
/// else [`select64_broadword`]. A lookup makes one select.
#[inline]
pub(super) fn select64(w: u64, k: usize) -> usize {
    #[cfg(target_arch = "x86_64")]
    if fast_pdep() {
        // SAFETY: `fast_pdep` is true only on CPUs with BMI2.
        #[allow(unsafe_code)]
        return unsafe { select64_pdep(w, k) };
    }
    select64_broadword(w, k)
}

/// Whether this CPU has BMI2 with a `pdep` of a few cycles: every one with
/// BMI2 but AMD's before Zen 3 (family 0x19), where it is microcoded and
/// slower than the broadword select.
#[cfg(target_arch = "x86_64")]
#[inline]
pub(super) fn fast_pdep() -> bool {
    use std::sync::atomic::{AtomicU8, Ordering};
    // 0: not yet checked, 1: no, 2: yes. A relaxed load is all a lookup
    // pays (checking twice from two threads at once is harmless).
    static FAST: AtomicU8 = AtomicU8::new(0);
    match FAST.load(Ordering::Relaxed) {
        0 => {
            let fast = check_fast_pdep();
            FAST.store(1 + fast as u8, Ordering::Relaxed);
            fast
        }
        x => x == 2,
    }
}

/// Whether this CPU has a fast `pdep` (see [`fast_pdep`]).
#[cfg(target_arch = "x86_64")]
#[cold]
fn check_fast_pdep() -> bool {
    if !std::is_x86_feature_detected!("bmi2") {
        return false;
    }
    let vendor = std::arch::x86_64::__cpuid(0);
    let amd = (vendor.ebx, vendor.edx, vendor.ecx) == (0x6874_7541, 0x6974_6e65, 0x444d_4163);
    let eax = std::arch::x86_64::__cpuid(1).eax;
    let family = ((eax >> 8) & 0xf)
        + if (eax >> 8) & 0xf == 0xf {
            (eax >> 20) & 0xff
        } else {
            0
        };
    !amd || family >= 0x19
}

/// [`select64`] by `pdep`: the `k`-th set bit of `w` is where bit `k` of a
/// dense mask lands when deposited into `w`'s set bits.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "bmi2")]
fn select64_pdep(w: u64, k: usize) -> usize {
    std::arch::x86_64::_pdep_u64(1u64 << k, w).trailing_zeros() as usize
}

/// [`select64`] on any 64-bit CPU, in constant time: byte popcounts summed
/// by one multiplication locate the byte, a table the bit within it.
#[inline]
fn select64_broadword(w: u64, k: usize) -> usize {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    debug_assert!(k < w.count_ones() as usize);
    let mut c = w - ((w >> 1) & 0x5555_5555_5555_5555);
    c = (c & 0x3333_3333_3333_3333) + ((c >> 2) & 0x3333_3333_3333_3333);
    c = (c + (c >> 4)) & 0x0f0f_0f0f_0f0f_0f0f;
    // Byte i of `cum`: set bits in bytes 0..=i (at most 64, so no carries).
    let cum = c.wrapping_mul(ONES);
    // High bit of byte i set where cum_i <= k: the bytes wholly before the target.
    let before = (((k as u64 * ONES) | HIGHS) - cum) & HIGHS;
    let byte = before.count_ones() as usize;
    let skipped = if byte == 0 {
        0
    } else {
        (cum >> (8 * byte - 8)) & 0xff
    } as usize;
    let b = ((w >> (8 * byte)) & 0xff) as usize;
    8 * byte + SELECT_IN_BYTE[8 * b + k - skipped] as usize
}

#[inline]
pub(super) fn read_bits(words: &[u64], bit: usize, width: u32) -> u64 {
    read_bits_masked(words, bit, width as usize, mask(width))
}

/// Moves bits `start..end` of `words` up by `by` bits (to
/// `start + by..end + by`), from the top word down so that no source bit is
/// overwritten before it is read.
pub(super) fn shift_bits_up(words: &mut [u64], start: usize, end: usize, by: usize) {
    if by >= 64 {
        return shift_bits_up_far(words, start, end, by);
    }
    debug_assert!(by > 0 && start < end);
    let (dst_lo, dst_hi) = (start + by, end + by);
    let (first, last) = (dst_lo / 64, (dst_hi - 1) / 64);
    // Destination word `w` takes its bits from the source words `w` and
    // `w - 1` (neither written yet, going down). Only the first and last
    // words are partly in the range and need masks.
    let lo_mask = u64::MAX << (dst_lo % 64);
    let hi_mask = u64::MAX >> (63 - (dst_hi - 1) % 64);
    let below = |words: &[u64], w: usize| if w > 0 { words[w - 1] >> (64 - by) } else { 0 };
    if first == last {
        let m = lo_mask & hi_mask;
        let v = (words[first] << by) | below(words, first);
        words[first] = (words[first] & !m) | (v & m);
        return;
    }
    let v = (words[last] << by) | (words[last - 1] >> (64 - by));
    words[last] = (words[last] & !hi_mask) | (v & hi_mask);
    let inner = &mut words[first..last];
    for i in (1..inner.len()).rev() {
        inner[i] = (inner[i] << by) | (inner[i - 1] >> (64 - by));
    }
    let v = (words[first] << by) | below(words, first);
    words[first] = (words[first] & !lo_mask) | (v & lo_mask);
}

/// [`shift_bits_up`] by a word or more (slots wider than a word), a
/// destination word at a time.
fn shift_bits_up_far(words: &mut [u64], start: usize, end: usize, by: usize) {
    let (dst_lo, dst_hi) = (start + by, end + by);
    let mut w = (dst_hi - 1) / 64;
    loop {
        let word_lo = w * 64;
        let (lo, hi) = (dst_lo.max(word_lo), dst_hi.min(word_lo + 64));
        let v = read_bits(words, lo - by, (hi - lo) as u32);
        write_bits(words, lo, (hi - lo) as u32, v);
        if word_lo <= dst_lo {
            break;
        }
        w -= 1;
    }
}

/// The eight bytes of `words` from byte `bit / 8` on, shifted so that bit
/// `bit` comes first: one unaligned load holding any field of up to 57 bits
/// that starts at `bit`. `None` within eight bytes of the end.
#[cfg(target_endian = "little")]
#[inline(always)]
pub(super) fn load_at_bit(words: &[u64], bit: usize) -> Option<u64> {
    let i = bit / 8;
    let b: [u8; 8] = as_bytes(words).get(i..i + 8)?.try_into().ok()?;
    // On a little-endian machine word `w`'s bit `j` is bit `j % 8` of byte
    // `8 w + j / 8`: the bytes read little-endian line up with the words.
    Some(u64::from_le_bytes(b) >> (bit % 8))
}

/// Writes `value` (no wider than the mask `m`, of at most 57 bits) to the
/// bits of `m` from `bit` on, as one unaligned read and write of the eight
/// bytes from byte `bit / 8` (the bits around the field are written back
/// as they were). `false`, writing nothing, within eight bytes of the end.
#[cfg(target_endian = "little")]
#[inline(always)]
pub(super) fn store_at_bit(words: &mut [u64], bit: usize, m: u64, value: u64) -> bool {
    debug_assert!(m >> 57 == 0 && value & !m == 0);
    let bytes = as_bytes_mut(words);
    let i = bit / 8;
    let Some(b) = bytes.get_mut(i..i + 8) else {
        return false;
    };
    let sh = bit % 8;
    let x = u64::from_le_bytes((&*b).try_into().expect("eight bytes"));
    b.copy_from_slice(&((x & !(m << sh)) | (value << sh)).to_le_bytes());
    true
}

/// The `width`-bit field at `bit` of `words` (`fmask` its mask), read as
/// one load where the field lies in a single word.
#[inline]
pub(super) fn read_bits_masked(words: &[u64], bit: usize, width: usize, fmask: u64) -> u64 {
    let (w, sh) = (bit / 64, bit % 64);
    let mut v = words[w] >> sh;
    if sh + width > 64 {
        v |= words[w + 1] << (64 - sh);
    }
    v & fmask
}

#[inline]
pub(super) fn write_bits(words: &mut [u64], bit: usize, width: u32, value: u64) {
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

/// [`field_len`] of a field that may be zero (in a memory map not yet
/// verified: `validate` rejects zero fields inside runs), read as 0 instead
/// of overflowing. For iteration; the hot paths see only valid tables.
#[inline]
pub(crate) fn field_len_or_zero(field: u64, fbits: u32) -> u32 {
    (fbits - 1).saturating_sub(field.trailing_zeros())
}

/// Whether a stored field matches a full-length query field.
#[inline]
pub(crate) fn field_matches(field: u64, query: u64) -> bool {
    // Wrapping: only a zero field (damaged data, which `validate` rejects)
    // shifts by 65; release builds compute the same either way.
    (field ^ query).wrapping_shr(field.trailing_zeros() + 1) == 0
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

#[cfg(test)]
mod tests {
    use super::super::tests::next;
    use super::*;

    #[test]
    fn select_matches_the_naive_one() {
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..2000 {
            next(&mut x);
            for w in [x, x & (x >> 7), x | 1 << 63, 1 << (x % 64), u64::MAX] {
                let mut v = w;
                for k in 0..w.count_ones() as usize {
                    let want = v.trailing_zeros() as usize;
                    assert_eq!(select64(w, k), want, "{w:#x} {k}");
                    assert_eq!(select64_broadword(w, k), want, "{w:#x} {k}");
                    #[cfg(target_arch = "x86_64")]
                    if std::is_x86_feature_detected!("bmi2") {
                        // SAFETY: this CPU has BMI2.
                        #[allow(unsafe_code)]
                        let got = unsafe { select64_pdep(w, k) };
                        assert_eq!(got, want, "{w:#x} {k}");
                    }
                    v &= v - 1;
                }
            }
        }
    }

    #[test]
    fn bit_shifts_match_bit_by_bit_moves() {
        let mut x = 3u64;
        for _ in 0..500 {
            next(&mut x);
            let mut words: Vec<u64> = (0..8).map(|i| x.rotate_left(i * 7) ^ (i as u64)).collect();
            let start = (x % 200) as usize;
            let end = start + 1 + (x >> 20) as usize % 150;
            let by = 1 + (x >> 40) as usize % 100;
            if end + by > 8 * 64 {
                continue;
            }
            let mut want = words.clone();
            for bit in (start..end).rev() {
                let v = read_bits(&want, bit, 1);
                write_bits(&mut want, bit + by, 1, v);
            }
            shift_bits_up(&mut words, start, end, by);
            assert_eq!(words, want, "start {start} end {end} by {by}");
        }
    }

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
}
