//! Shards against one maplet: the shards of a maplet, each given only the
//! keys of its hash range, answer every key exactly as the one maplet does,
//! and stitched together are that maplet byte for byte; each shard saves,
//! loads and memory-maps as an ordinary maplet that knows its range.
//! (From 4,096 expected items the home slots are a multiple of 64, so up to
//! 64 shards split them evenly.)

use mappy_core::shard::Shard;
use mappy_core::{Counter, Maplet, Options, SetUnion};
use proptest::prelude::*;

fn build(
    n: usize,
    bits: u32,
    seed: u64,
    keys: &[(u64, i64)],
) -> (Maplet<Counter>, Vec<Maplet<Counter>>) {
    let count = 1u32 << bits;
    let opts = Options {
        seed,
        ..Options::default()
    };
    let mut whole = Maplet::with_options(n, 0.01, Counter, opts).unwrap();
    let mut shards: Vec<_> = (0..count)
        .map(|i| Maplet::with_shard(n, 0.01, Counter, opts, Shard::new(i, count).unwrap()).unwrap())
        .collect();
    for &(k, v) in keys {
        let h = whole.hash(&k);
        whole.insert_hash(h, v).unwrap();
        shards[Shard::of(h, count) as usize]
            .insert_hash(h, v)
            .unwrap();
    }
    (whole, shards)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn shards_answer_as_one_maplet(
        bits in 0u32..7,
        n in 4096usize..40_000,
        seed in any::<u64>(),
        keys in prop::collection::vec((0u64..50_000, 1i64..1000), 0..3000),
    ) {
        let (whole, shards) = build(n.max(keys.len() * 2), bits, seed, &keys);
        let count = 1u32 << bits;
        prop_assert_eq!(whole.capacity() % count as u64, 0);
        // Every key, inserted or not, from its own shard; other shards say absent.
        for k in 0..60_000u64 {
            let h = whole.hash(&k);
            let i = Shard::of(h, count) as usize;
            prop_assert_eq!(shards[i].query_hash(h), whole.query_hash(h));
            if count > 1 {
                prop_assert_eq!(shards[(i + 1) % count as usize].query_hash(h), None);
            }
        }
        let refs: Vec<_> = shards.iter().collect();
        prop_assert_eq!(Maplet::concat(&refs).unwrap().to_bytes(), whole.to_bytes());
        // Each shard round-trips as itself.
        for s in &shards {
            let back = Maplet::from_bytes(&s.to_bytes(), Counter).unwrap();
            prop_assert_eq!(back.shard(), s.shard());
            prop_assert_eq!(back.to_bytes(), s.to_bytes());
        }
    }
}

#[test]
fn batches_route_and_refuse_foreign_hashes_all_or_nothing() {
    let (whole, mut shards) = build(10_000, 2, 1, &[]);
    let hashes: Vec<u64> = (0..5000u64).map(|k| whole.hash(&k)).collect();
    let mine: Vec<u64> = hashes
        .iter()
        .copied()
        .filter(|&h| Shard::of(h, 4) == 1)
        .collect();
    // One foreign hash in the batch: nothing is inserted.
    let err = shards[1].insert_hashes_with_value(&hashes, 1).unwrap_err();
    assert!(err.1.to_string().contains("belongs to shard"), "{}", err.1);
    assert!(shards[1].is_empty());
    let pairs: Vec<_> = hashes.iter().map(|&h| (h, 2)).collect();
    assert!(shards[1].insert_many_hashes(pairs).is_err() && shards[1].is_empty());
    shards[1].insert_hashes_with_value(&mine, 1).unwrap();
    // (Fewer entries than hashes where two share a fingerprint.)
    assert!(shards[1].len() <= mine.len() && shards[1].len() + 20 > mine.len());
    let answers = shards[1].query_many_hashes(&hashes);
    for (h, a) in hashes.iter().zip(answers) {
        assert_eq!(a.is_some(), Shard::of(*h, 4) == 1);
    }
    assert!(!shards[1]
        .remove_hash(
            hashes
                .iter()
                .copied()
                .find(|&h| Shard::of(h, 4) == 0)
                .unwrap()
        )
        .unwrap());
}

#[test]
fn side_store_shards_concatenate_with_every_value() {
    let opts = Options::default();
    let mut whole = Maplet::with_options(5000, 0.01, SetUnion::<u32>::new(), opts).unwrap();
    let mut shards: Vec<_> = (0..8)
        .map(|i| {
            Maplet::with_shard(5000, 0.01, SetUnion::new(), opts, Shard::new(i, 8).unwrap())
                .unwrap()
        })
        .collect();
    for k in 0..4000u64 {
        let h = whole.hash(&k);
        let v: std::collections::BTreeSet<u32> = [(k % 7) as u32, (k % 3) as u32 + 10].into();
        whole.insert_hash(h, v.clone()).unwrap();
        shards[Shard::of(h, 8) as usize].insert_hash(h, v).unwrap();
    }
    let refs: Vec<_> = shards.iter().collect();
    let stitched = Maplet::concat(&refs).unwrap();
    for k in 0..8000u64 {
        assert_eq!(stitched.query(&k), whole.query(&k), "key {k}");
    }
}

#[test]
fn shards_that_grew_differently_are_brought_to_one_size() {
    let opts = Options::default();
    let mut shards: Vec<_> = (0..4)
        .map(|i| Maplet::with_shard(1000, 0.01, Counter, opts, Shard::new(i, 4).unwrap()).unwrap())
        .collect();
    let probe = Maplet::with_options(1000, 0.01, Counter, opts).unwrap();
    // Shard 0 gets five times its share and doubles; the others do not.
    for k in 0..6000u64 {
        let h = probe.hash(&k);
        let i = Shard::of(h, 4) as usize;
        if i == 0 || k < 1000 {
            shards[i].insert_hash(h, 1).unwrap();
        }
    }
    assert!(shards[0].capacity() > shards[1].capacity());
    let refs: Vec<_> = shards.iter().collect();
    let whole = Maplet::concat(&refs).unwrap();
    assert_eq!(whole.capacity(), 4 * shards[0].capacity());
    assert_eq!(whole.len(), shards.iter().map(|s| s.len()).sum::<usize>());
    for k in 0..6000u64 {
        let h = probe.hash(&k);
        let i = Shard::of(h, 4) as usize;
        if let Some(v) = shards[i].query_hash(h) {
            assert!(whole.query_hash(h) >= Some(v), "key {k}");
        }
    }
    // Not shards of one whole: refused.
    assert!(Maplet::concat(&refs[..3]).is_err());
    let other = Maplet::with_shard(2000, 0.01, Counter, opts, Shard::new(3, 4).unwrap()).unwrap();
    assert!(Maplet::concat(&[refs[0], refs[1], refs[2], &other]).is_err());
}
