//! Batches are all or nothing: a batch that fails at any pair, for any
//! reason, leaves the maplet exactly as it was (the same bytes, the same
//! entries, the same memory), across growth, value widening, side-store
//! values and the one-pass merge of large batches.

use mappy_core::{Counter, Custom, Maplet, MapletError, Operator, Options, ValueCodec, VectorAdd};
use proptest::prelude::*;

/// Everything observable about a maplet's contents and size.
fn snapshot<O: Operator>(m: &Maplet<O>) -> impl PartialEq + std::fmt::Debug
where
    O::Value: PartialEq + std::fmt::Debug,
{
    (m.entries().collect::<Vec<_>>(), m.stats(), m.capacity())
}

/// Runs a batch that must fail, checks that the maplet is exactly as it
/// was (entries, size, bytes, invariants), and returns the failure.
fn failed_batch<O: Operator>(m: &mut Maplet<O>, batch: Vec<(u64, O::Value)>) -> (usize, MapletError)
where
    O::Value: PartialEq + std::fmt::Debug + ValueCodec,
{
    let (bytes, before) = (m.to_bytes(), snapshot(m));
    let err = m.insert_many_hashes(batch).unwrap_err();
    m.check_invariants();
    assert_eq!(snapshot(m), before);
    assert!(m.to_bytes() == bytes, "bytes differ after a failed batch");
    err
}

fn spread(i: u64) -> u64 {
    i.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ (i >> 7)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// A counter batch that overflows at a chosen pair: sizes that grow the
    /// table, values that widen it, and batches large enough for the
    /// one-pass merge.
    #[test]
    fn failed_counter_batches_change_nothing(
        expected in 20usize..600,
        prefill in 0usize..400,
        size in 1usize..3000,
        wide in any::<bool>(),
        at in any::<prop::sample::Index>(),
    ) {
        let mut m = Maplet::new(expected, 0.01, Counter).unwrap();
        for i in 0..prefill as u64 {
            m.insert_hash(spread(i), 1 + (i % 5) as i64).unwrap();
        }
        m.insert_hash(spread(1 << 40), i64::MAX - 10).unwrap();
        let mut batch: Vec<(u64, i64)> = (0..size as u64)
            .map(|i| (spread(i + 1000), if wide && i % 7 == 0 { 1 << 40 } else { 3 }))
            .collect();
        let bad = at.index(size);
        batch[bad] = (spread(1 << 40), 11);
        let err = failed_batch(&mut m, batch);
        prop_assert_eq!(err.0, bad);
        prop_assert!(matches!(err.1, MapletError::Overflow(_)), "{}", err.1);
    }

    /// Side-store values: vectors whose lengths clash at a chosen pair.
    #[test]
    fn failed_vector_batches_change_nothing(
        expected in 20usize..300,
        prefill in 1usize..200,
        size in 1usize..800,
        at in any::<prop::sample::Index>(),
    ) {
        let mut m = Maplet::new(expected, 0.01, VectorAdd::<f64>::new()).unwrap();
        for i in 0..prefill as u64 {
            m.insert_hash(spread(i), vec![i as f64, 1.0, 2.0]).unwrap();
        }
        let mut batch: Vec<(u64, Vec<f64>)> = (0..size as u64)
            // Every third pair lands on a stored key and merges.
            .map(|i| (spread(if i % 3 == 0 { i % prefill as u64 } else { i + 5000 }), vec![1.0; 3]))
            .collect();
        let bad = at.index(size);
        batch[bad] = (spread(0), vec![1.0, 2.0]);
        let err = failed_batch(&mut m, batch);
        prop_assert_eq!(err.0, bad);
    }

    /// A custom merge function that refuses a chosen pair.
    #[test]
    fn failed_custom_batches_change_nothing(
        expected in 20usize..300,
        size in 2usize..1500,
        at in any::<prop::sample::Index>(),
    ) {
        let op = Custom::new("refuses negatives", |a: &i64, b: &i64| {
            if *b < 0 {
                Err(MapletError::InvalidValue("negative".into()))
            } else {
                Ok(a + b)
            }
        });
        let mut m = Maplet::new(expected, 0.01, op).unwrap();
        m.insert_hash(spread(7), 1).unwrap();
        let mut batch: Vec<(u64, i64)> = (0..size as u64).map(|i| (spread(i % 600 + 10), 2)).collect();
        let bad = at.index(size);
        batch[bad] = (spread(7), -1);
        let before = snapshot(&m);
        let err = m.insert_many_hashes(batch).unwrap_err();
        prop_assert_eq!(err.0, bad);
        m.check_invariants();
        prop_assert_eq!(snapshot(&m), before);
    }
}

#[test]
fn a_batch_over_the_memory_limit_changes_nothing() {
    for size in [400usize, 3000] {
        let mut m = Maplet::with_options(
            100,
            0.01,
            Counter,
            Options {
                memory_limit: Some(1200),
                ..Options::default()
            },
        )
        .unwrap();
        for i in 0..50 {
            m.insert_hash(spread(i), 1).unwrap();
        }
        let batch: Vec<(u64, i64)> = (0..size as u64).map(|i| (spread(i + 100), 1)).collect();
        let err = failed_batch(&mut m, batch);
        assert!(
            matches!(err.1, MapletError::MemoryLimit { .. }),
            "{}",
            err.1
        );
    }
}

#[test]
fn a_batch_that_succeeds_after_a_failed_one_is_whole() {
    let mut m = Maplet::new(100, 0.01, Counter).unwrap();
    m.insert_hash(spread(1), i64::MAX).unwrap();
    let batch: Vec<(u64, i64)> = (2..400).map(|i| (spread(i), 1)).collect();
    let mut failing = batch.clone();
    failing.push((spread(1), 1));
    assert!(m.insert_many_hashes(failing).is_err());
    assert_eq!(m.len(), 1);
    m.insert_many_hashes(batch.clone()).unwrap();
    m.check_invariants();
    assert!(batch
        .iter()
        .all(|&(h, _)| m.query_hash(h).is_some_and(|v| v >= 1)));
    assert_eq!(m.query_hash(spread(1)), Some(i64::MAX));
}
