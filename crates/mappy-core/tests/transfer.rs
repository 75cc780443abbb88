//! Keys sent to their shards in runs: shards built from the runs of many
//! partitions equal, byte for byte, the shards built from the hashes, with
//! and without growth; damaged, foreign and mismatched runs are errors.

use mappy_core::shard::Shard;
use mappy_core::{Counter, Maplet, MapletError, Options};
use proptest::prelude::*;

fn shards(n: usize, count: u32, opts: Options) -> Vec<Maplet<Counter>> {
    (0..count)
        .map(|i| Maplet::with_shard(n, 0.01, Counter, opts, Shard::new(i, count).unwrap()).unwrap())
        .collect()
}

/// Each shard given all its runs at once, as a sharded build does.
fn insert_runs(shards: &mut [Maplet<Counter>], parts: &[Vec<u64>]) {
    let mut by_shard: Vec<Vec<Vec<u8>>> = vec![Vec::new(); shards.len()];
    for part in parts {
        for (i, run) in shards[0].encode_runs(part).unwrap().runs {
            by_shard[i as usize].push(run);
        }
    }
    for (m, runs) in shards.iter_mut().zip(&by_shard) {
        let refs: Vec<&[u8]> = runs.iter().map(|r| r.as_slice()).collect();
        let keys = m.decode_runs(&refs).unwrap();
        let pairs: Vec<(u64, i64)> = keys
            .hashes
            .iter()
            .zip(&keys.counts)
            .map(|(&h, &c)| (h, c as i64))
            .collect();
        m.insert_many_hashes(pairs).unwrap();
        assert!(m.keeps_precision(keys.precision));
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    #[test]
    fn runs_build_the_shards_hashes_build(
        n in 4_096usize..20_000,
        // Up to 3x the expected items: the shards grow.
        fill in 0.0f64..3.0,
        bits in 0u32..5,
        parts in 1usize..6,
        seed in any::<u64>(),
        repeat in 1u64..4,
    ) {
        let count = 1u32 << bits;
        let opts = Options { seed, ..Options::default() };
        let mut by_hash = shards(n, count, opts);
        let mut by_run = shards(n, count, opts);
        let keys = (fill * n as f64) as u64;
        let hashes: Vec<u64> = (0..keys)
            .flat_map(|k| std::iter::repeat_n(k, (k % repeat + 1) as usize))
            .map(|k| by_hash[0].hash(&k))
            .collect();
        // Each shard given all its hashes in one batch, as a sharded build
        // from hashes does.
        for (i, m) in by_hash.iter_mut().enumerate() {
            let mine: Vec<u64> =
                hashes.iter().copied().filter(|&h| Shard::of(h, count) == i as u32).collect();
            m.insert_hashes_with_value(&mine, 1).unwrap();
        }
        let chunk = hashes.len().div_ceil(parts).max(1);
        let parts: Vec<Vec<u64>> = hashes.chunks(chunk).map(|c| c.to_vec()).collect();
        insert_runs(&mut by_run, &parts);
        // A shard given fewer than 1,024 hashes inserts them one by one, and
        // if it grows meanwhile, which entries keep longer fingerprints
        // depends on the order (runs come sorted): then only the promise
        // holds, every key found with at least its count.
        let small = by_hash.iter().any(|m| m.len() < 1_024);
        for (a, b) in by_hash.iter().zip(&by_run) {
            if small && fill > 0.9 {
                for &h in hashes.iter().filter(|&&h| a.shard().owns(h)) {
                    prop_assert!(b.query_hash(h) >= a.query_hash(h).map(|_| 1));
                }
            } else {
                prop_assert!(a.to_bytes() == b.to_bytes());
            }
        }
    }
}

#[test]
fn order_gives_each_shard_its_values_in_run_order() {
    let opts = Options::default();
    let m = Maplet::with_shard(10_000, 0.01, Counter, opts, Shard::new(2, 4).unwrap()).unwrap();
    let hashes: Vec<u64> = (0..3_000u64).map(|k| m.hash(&(k % 1_000))).collect();
    let coded = m.encode_runs(&hashes).unwrap();
    assert_eq!(coded.bounds.len(), coded.runs.len() + 1);
    assert_eq!(*coded.bounds.last().unwrap(), hashes.len());
    let mut seen = vec![false; hashes.len()];
    for (j, (index, run)) in coded.runs.iter().enumerate() {
        let target =
            Maplet::with_shard(10_000, 0.01, Counter, opts, Shard::new(*index, 4).unwrap())
                .unwrap();
        let keys = target.decode_runs(&[run]).unwrap();
        let positions = &coded.order[coded.bounds[j]..coded.bounds[j + 1]];
        // Each key's positions are the hashes it stands for.
        let mut at = 0;
        for (&h, &c) in keys.hashes.iter().zip(&keys.counts) {
            for &p in &positions[at..at + c as usize] {
                let own = hashes[p as usize];
                assert_eq!(Shard::of(own, 4), *index);
                // The run's hash and the position's own hash are one key to
                // the shard: inserting one finds the other.
                let mut probe = target.clone();
                probe.insert_hash(h, 1).unwrap();
                assert!(probe.contains_hash(own));
                assert!(!seen[p as usize]);
                seen[p as usize] = true;
            }
            at += c as usize;
        }
        assert_eq!(at, positions.len());
    }
    assert!(seen.iter().all(|&s| s));
}

#[test]
fn foreign_mismatched_and_damaged_runs_are_errors() {
    let opts = Options::default();
    let four = shards(10_000, 4, opts);
    let hashes: Vec<u64> = (0..5_000u64).map(|k| four[0].hash(&k)).collect();
    let coded = four[0].encode_runs(&hashes).unwrap();
    let (index, run) = &coded.runs[0];
    // Another shard's run.
    let other = &four[(*index as usize + 1) % 4];
    assert!(matches!(
        other.decode_runs(&[run]),
        Err(MapletError::InvalidParameter(_))
    ));
    // A maplet of other parameters.
    let bigger =
        Maplet::with_shard(100_000, 0.01, Counter, opts, Shard::new(*index, 4).unwrap()).unwrap();
    assert!(matches!(
        bigger.decode_runs(&[run]),
        Err(MapletError::InvalidParameter(_))
    ));
    let own = &four[*index as usize];
    let whole = own.decode_runs(&[run]).unwrap();
    // Cut short anywhere, or a byte changed anywhere: an error or other
    // keys of this shard, never a panic.
    for cut in 0..run.len() {
        assert!(own.decode_runs(&[&run[..cut]]).is_err(), "cut at {cut}");
    }
    let mut longer = run.clone();
    longer.push(0);
    assert!(own.decode_runs(&[&longer]).is_err());
    for at in 0..run.len().min(400) {
        for flip in [1u8, 0x80, 0xFF] {
            let mut bad = run.clone();
            bad[at] ^= flip;
            if let Ok(keys) = own.decode_runs(&[&bad]) {
                assert!(keys.hashes.iter().all(|&h| own.shard().owns(h)));
                assert!(keys.hashes.windows(2).all(|w| w[0] < w[1]));
            }
        }
    }
    assert!(whole.hashes.len() <= run.len() * 8);
}

#[test]
fn growth_past_the_bits_sent_is_reported() {
    let opts = Options::default();
    let mut m = shards(4_096, 2, opts).remove(0);
    let hashes: Vec<u64> = (0..200_000u64)
        .map(|k| m.hash(&k))
        .filter(|&h| Shard::of(h, 2) == 0)
        .collect();
    let coded = m.encode_runs(&hashes).unwrap();
    let keys = m.decode_runs(&[&coded.runs[0].1]).unwrap();
    assert!(m.keeps_precision(keys.precision));
    m.insert_hashes_with_value(&hashes, 1).unwrap();
    // 24 times its expected items: four doublings or more.
    assert!(!m.keeps_precision(keys.precision));
}
