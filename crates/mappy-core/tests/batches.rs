//! Batch lookups answer exactly what lookups one at a time answer.

use mappy_core::{Counter, Maplet};

fn splitmix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

fn check<O: mappy_core::Operator>(m: &Maplet<O>, queries: &[u64])
where
    O::Value: PartialEq + std::fmt::Debug,
{
    let one_by_one: Vec<_> = queries.iter().map(|&h| m.query_hash(h)).collect();
    assert_eq!(m.query_many_hashes(queries), one_by_one);
    let contains: Vec<bool> = queries.iter().map(|&h| m.contains_hash(h)).collect();
    assert_eq!(m.contains_many_hashes(queries), contains);
}

#[test]
fn batches_answer_as_lookups_do() {
    for (n, rate) in [(50_000usize, 0.01), (20_000, 0.5), (3_000, 0.001)] {
        let mut m = Maplet::new(n, rate, Counter).unwrap();
        let present: Vec<u64> = (0..n as u64).map(splitmix).collect();
        for (i, &h) in present.iter().enumerate() {
            m.insert_hash(h, 1 + (i % 300) as i64).unwrap();
        }
        // Present keys out of order, repeats, and absent keys, in batches
        // of several sizes.
        let mut queries: Vec<u64> = present.iter().rev().step_by(3).copied().collect();
        queries.extend(present.iter().take(500));
        queries.extend((0..n as u64).map(|i| splitmix((i + 1) << 40)));
        for len in [queries.len(), 5000, 100] {
            check(&m, &queries[..len.min(queries.len())]);
        }
        check(&Maplet::new(n, rate, Counter).unwrap(), &queries);
        // Past growth, fingerprints of several lengths: several entries can
        // match one key, and the batch folds them as a lookup does.
        for i in 0..n as u64 {
            m.insert_hash(splitmix(i + (1 << 50)), 2).unwrap();
        }
        check(&m, &queries);
    }
}

#[test]
fn batches_of_side_stored_values_answer_as_lookups_do() {
    use std::collections::BTreeSet;
    let mut m = Maplet::new(10_000, 0.01, mappy_core::SetUnion::default()).unwrap();
    let present: Vec<u64> = (0..10_000u64).map(splitmix).collect();
    for (i, &h) in present.iter().enumerate() {
        m.insert_hash(h, BTreeSet::from([format!("v{}", i % 7)]))
            .unwrap();
    }
    let mut queries = present.clone();
    queries.extend((0..10_000u64).map(|i| splitmix(i + (1 << 40))));
    check(&m, &queries);
}
