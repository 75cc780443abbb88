//! Sorting batches by hash, which is the slot table's own order.

use crate::storage::AllocError;

/// An empty vector with room for `n` items; an error if the memory cannot
/// be had (a batch's size comes from the caller).
pub(crate) fn try_vec<T>(n: usize) -> Result<Vec<T>, AllocError> {
    let mut v = Vec::new();
    v.try_reserve_exact(n).map_err(|_| AllocError {
        bytes: n.saturating_mul(std::mem::size_of::<T>()),
    })?;
    Ok(v)
}

/// Sorts `(key, payload)` pairs by key, stably, where keys are below
/// `2^bits`. See [`radix_sort`].
pub(crate) fn sort_by_key(pairs: &mut Vec<(u64, i64)>, bits: u32) -> Result<(), AllocError> {
    radix_sort(pairs, bits, |p| p.0)
}

/// Sorts entries that carry their key in bits `shift..shift + bits` (a
/// payload below them), stably, by that key. See [`radix_sort`].
pub(crate) fn sort_packed<T: Copy + Default + Into<u64>>(
    entries: &mut Vec<T>,
    bits: u32,
    shift: u32,
) -> Result<(), AllocError> {
    radix_sort(entries, bits, |&e| e.into() >> shift)
}

/// Sorts `items` by `key` (below `2^bits`), stably, with a
/// least-significant-digit radix sort: as few passes as digits of at most
/// 14 bits allow (a pass whose digit is the same in every key is skipped).
/// Linear time: a batch sorts faster than it could be inserted one by one.
/// An error, leaving `items` as they were, if the scratch space cannot be
/// had.
fn radix_sort<T: Copy + Default>(
    items: &mut Vec<T>,
    bits: u32,
    key: impl Fn(&T) -> u64,
) -> Result<(), AllocError> {
    if items.len() < 1024 {
        items.sort_by_key(&key);
        return Ok(());
    }
    let passes = bits.div_ceil(14).max(1) as usize;
    let digit = bits.div_ceil(passes as u32).max(1) as usize;
    let buckets = 1usize << digit;
    let mask = buckets - 1;
    let mut counts = vec![0usize; buckets * passes];
    for item in items.iter() {
        let k = key(item);
        for d in 0..passes {
            counts[d * buckets + ((k >> (digit * d)) as usize & mask)] += 1;
        }
    }
    let mut scratch = try_vec(items.len())?;
    scratch.resize(items.len(), T::default());
    let n = items.len();
    let mut next = vec![0usize; buckets];
    for d in 0..passes {
        let c = &counts[d * buckets..(d + 1) * buckets];
        if c.contains(&n) {
            continue;
        }
        let mut sum = 0;
        for (b, &x) in c.iter().enumerate() {
            next[b] = sum;
            sum += x;
        }
        for &item in items.iter() {
            let b = (key(&item) >> (digit * d)) as usize & mask;
            scratch[next[b]] = item;
            next[b] += 1;
        }
        std::mem::swap(items, &mut scratch);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sorts_stably() {
        let mut x = 7u64;
        let mut v: Vec<(u64, i64)> = (0..5000)
            .map(|i| {
                x = x
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                (x >> (if i % 3 == 0 { 60 } else { 0 }), i)
            })
            .collect();
        let mut want = v.clone();
        want.sort_by_key(|p| p.0);
        for bits in [64, 28, 31] {
            let m = if bits == 64 {
                u64::MAX
            } else {
                (1u64 << bits) - 1
            };
            let mut w: Vec<(u64, i64)> = v.iter().map(|&(k, i)| (k & m, i)).collect();
            let mut expect = w.clone();
            expect.sort_by_key(|p| p.0);
            sort_by_key(&mut w, bits).unwrap();
            assert_eq!(w, expect, "{bits} bits");
        }
        sort_by_key(&mut v, 64).unwrap();
        assert_eq!(v, want);
    }

    #[test]
    fn packed_entries_sort_by_their_key_bits_only() {
        let mut x = 11u64;
        let v: Vec<u64> = (0..5000u64)
            .map(|i| {
                x = x
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                // A 30-bit key above a 5-bit payload that records the order.
                ((x >> 34) << 5) | (i % 32)
            })
            .collect();
        let mut want = v.clone();
        want.sort_by_key(|e| e >> 5);
        let mut got = v.clone();
        sort_packed(&mut got, 30, 5).unwrap();
        assert_eq!(got, want);
        // The same entries in 4-byte words: a 27-bit key, same payload.
        let narrow: Vec<u32> = v.iter().map(|&e| (e >> 3) as u32).collect();
        let mut want: Vec<u32> = narrow.clone();
        want.sort_by_key(|&e| e >> 5);
        let mut got = narrow;
        sort_packed(&mut got, 27, 5).unwrap();
        assert_eq!(got, want);
    }
}
