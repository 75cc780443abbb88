//! Sorting batches by hash, which is the slot table's own order.

/// Sorts `(key, payload)` pairs by key, stably, where keys are below
/// `2^bits`, with a least-significant-digit radix sort of 11-bit digits (a
/// pass whose digit is the same in every key is skipped). Linear time: a
/// batch sorts faster than it could be inserted one by one.
pub(crate) fn sort_by_key(pairs: &mut Vec<(u64, i64)>, bits: u32) {
    const DIGIT: u32 = 11;
    const BUCKETS: usize = 1 << DIGIT;
    if pairs.len() < 1024 {
        pairs.sort_by_key(|p| p.0);
        return;
    }
    let passes = bits.div_ceil(DIGIT).max(1) as usize;
    let mut counts = vec![[0usize; BUCKETS]; passes];
    for &(k, _) in pairs.iter() {
        for (d, c) in counts.iter_mut().enumerate() {
            c[(k >> (DIGIT as usize * d)) as usize & (BUCKETS - 1)] += 1;
        }
    }
    let mut scratch = vec![(0u64, 0i64); pairs.len()];
    let n = pairs.len();
    for (d, c) in counts.iter().enumerate() {
        if c.contains(&n) {
            continue;
        }
        let mut next = [0usize; BUCKETS];
        let mut sum = 0;
        for (b, &x) in c.iter().enumerate() {
            next[b] = sum;
            sum += x;
        }
        for &p in pairs.iter() {
            let b = (p.0 >> (DIGIT as usize * d)) as usize & (BUCKETS - 1);
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
        sort_by_key(&mut v, 64);
        assert_eq!(v, want);
    }
}
