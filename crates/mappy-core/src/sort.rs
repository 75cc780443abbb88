//! Sorting batches by hash, which is the slot table's own order.

/// Sorts `(key, payload)` pairs by key, stably, where keys are below
/// `2^bits`, with a least-significant-digit radix sort: as few passes as
/// digits of at most 14 bits allow (a pass whose digit is the same in every
/// key is skipped). Linear time: a batch sorts faster than it could be
/// inserted one by one.
pub(crate) fn sort_by_key(pairs: &mut Vec<(u64, i64)>, bits: u32) {
    if pairs.len() < 1024 {
        pairs.sort_by_key(|p| p.0);
        return;
    }
    let passes = bits.div_ceil(14).max(1) as usize;
    let digit = bits.div_ceil(passes as u32).max(1) as usize;
    let buckets = 1usize << digit;
    let mask = buckets - 1;
    let mut counts = vec![0usize; buckets * passes];
    for &(k, _) in pairs.iter() {
        for d in 0..passes {
            counts[d * buckets + ((k >> (digit * d)) as usize & mask)] += 1;
        }
    }
    let mut scratch = vec![(0u64, 0i64); pairs.len()];
    let n = pairs.len();
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
        for &p in pairs.iter() {
            let b = (p.0 >> (digit * d)) as usize & mask;
            scratch[next[b]] = p;
            next[b] += 1;
        }
        std::mem::swap(pairs, &mut scratch);
    }
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
            sort_by_key(&mut w, bits);
            assert_eq!(w, expect, "{bits} bits");
        }
        sort_by_key(&mut v, 64);
        assert_eq!(v, want);
    }
}
