//! Model-based property tests: a maplet against an exact `HashMap`, over
//! random sequences of inserts, deletes, merges, growth and clears.
//!
//! Hashes are drawn from a few home slots and fingerprints so that runs are
//! long, clusters cross blocks and fingerprints collide often.

use std::collections::{BTreeSet, HashMap};

use mappy_core::{Counter, Maplet, Max, Min, Options, SetUnion};
use proptest::prelude::*;

const EXPECTED: usize = 200;

/// A hash whose home slot is `q` and whose first fingerprint bits are `fp`
/// in a maplet with `canonical` home slots and field width `fbits`.
fn crafted(q: u64, fp: u64, low: u64, canonical: u64, fbits: u32) -> u64 {
    let shift = 64 - (fbits - 1);
    let x: u128 = ((q as u128) << 64) + ((fp as u128) << shift) + ((low as u128) << (shift - 12));
    (x.div_ceil(canonical as u128)) as u64
}

#[derive(Clone, Debug)]
enum Op {
    Insert(u64, i64),
    Delete(u64),
    DeletePart(u64),
    Merge(Vec<(u64, i64)>),
    Grow(u16),
    Clear,
}

/// The field width of [`new_maplet`]'s table (a small maplet reserves bits
/// to grow, see `mappy_core::MIN_REACH`).
fn field() -> u32 {
    Maplet::new(EXPECTED, 0.01, Counter)
        .unwrap()
        .stats()
        .fingerprint_bits
}

fn key_strategy() -> impl Strategy<Value = u64> {
    let f = field();
    prop_oneof![
        // Crowded: few home slots, few fingerprints.
        (0u64..6, 0u64..6, 0u64..4).prop_map(move |(q, fp, low)| crafted(q * 31, fp, low, 211, f)),
        // Near the end of the table.
        (0u64..4, 0u64..64).prop_map(move |(q, fp)| crafted(210 - q, fp, 0, 211, f)),
        any::<u64>(),
    ]
}

fn op_strategy() -> impl Strategy<Value = Op> {
    prop_oneof![
        8 => (key_strategy(), 1i64..300).prop_map(|(k, v)| Op::Insert(k, v)),
        2 => key_strategy().prop_map(Op::Delete),
        1 => key_strategy().prop_map(Op::DeletePart),
        1 => prop::collection::vec((key_strategy(), 1i64..50), 0..40).prop_map(Op::Merge),
        1 => (1u16..400).prop_map(Op::Grow),
        1 => Just(Op::Clear),
    ]
}

fn check(m: &Maplet<Counter>, model: &HashMap<u64, i64>) {
    m.check_invariants();
    for (&h, &truth) in model {
        if truth == 0 {
            continue;
        }
        let got = m.query_hash(h);
        assert!(
            got.is_some_and(|v| v >= truth),
            "hash {h:#x}: truth {truth}, got {got:?}"
        );
    }
}

fn new_maplet() -> Maplet<Counter> {
    // 211 home slots at this size and rate, matching `crafted`'s arguments.
    let m = Maplet::new(EXPECTED, 0.01, Counter).unwrap();
    assert_eq!(m.capacity(), 211);
    m
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn counter_matches_model(ops in prop::collection::vec(op_strategy(), 1..120)) {
        let mut m = new_maplet();
        let mut model: HashMap<u64, i64> = HashMap::new();
        let mut next = 1u64 << 40;
        // Whether a merge brought entries of another fingerprint length: a
        // key's short entry and long entry then both stay (folding one
        // into the other could lower another key's answer), so the
        // maplet may hold more entries than live keys.
        let mut mixed = false;
        for op in ops {
            match op {
                Op::Insert(h, v) => {
                    m.insert_hash(h, v).unwrap();
                    *model.entry(h).or_default() += v;
                }
                Op::Delete(h) => {
                    let truth = model.get(&h).copied().unwrap_or(0);
                    if truth > 0 {
                        prop_assert!(m.delete_hash(h, &truth).unwrap());
                        model.insert(h, 0);
                    }
                }
                Op::DeletePart(h) => {
                    let truth = model.get(&h).copied().unwrap_or(0);
                    if truth > 1 {
                        prop_assert!(m.delete_hash(h, &(truth / 2)).unwrap());
                        *model.get_mut(&h).unwrap() -= truth / 2;
                    }
                }
                Op::Merge(pairs) => {
                    let mut other = new_maplet();
                    for (h, v) in pairs {
                        other.insert_hash(h, v).unwrap();
                        *model.entry(h).or_default() += v;
                    }
                    other.check_invariants();
                    mixed |= m.capacity() != other.capacity();
                    m.merge(&other).unwrap();
                }
                Op::Grow(k) => {
                    for _ in 0..k {
                        next = next.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                        m.insert_hash(next, 1).unwrap();
                        *model.entry(next).or_default() += 1;
                    }
                }
                Op::Clear => {
                    m.clear().unwrap();
                    model.clear();
                    mixed = false;
                }
            }
            check(&m, &model);
        }
        let live = model.values().filter(|&&v| v > 0).count();
        prop_assert!(mixed || m.len() <= live, "{} entries for {live} live keys", m.len());
    }

    /// Maplets that did not grow merge into exactly what one maplet that saw
    /// every insert holds. (Once maplets grow, a fingerprint's precision
    /// depends on when its key arrived, so a merge is then one-sided but not
    /// identical; see `merge_of_maplets_that_grew_differently`.)
    #[test]
    fn merge_answers_like_one_maplet(
        a in prop::collection::vec((key_strategy(), 1i64..100), 0..100),
        b in prop::collection::vec((key_strategy(), 1i64..100), 0..100),
    ) {
        let mut ma = new_maplet();
        let mut mb = new_maplet();
        let mut all = new_maplet();
        for &(h, v) in &a {
            ma.insert_hash(h, v).unwrap();
            all.insert_hash(h, v).unwrap();
        }
        for &(h, v) in &b {
            mb.insert_hash(h, v).unwrap();
            all.insert_hash(h, v).unwrap();
        }
        prop_assert_eq!(all.capacity(), 211);
        ma.merge(&mb).unwrap();
        ma.check_invariants();
        prop_assert_eq!(ma.entries().collect::<Vec<_>>(), all.entries().collect::<Vec<_>>());
        for &(h, _) in a.iter().chain(&b) {
            prop_assert_eq!(ma.query_hash(h), all.query_hash(h));
        }
    }

    /// A bulk insert holds exactly what inserting one by one holds when
    /// neither grows, and stays one-sided when the batch makes it grow.
    #[test]
    fn bulk_insert_matches_one_by_one(
        before in prop::collection::vec((key_strategy(), 1i64..100), 0..150),
        batch in prop::collection::vec((key_strategy(), -50i64..100), 1024..1500),
        crowd in 0usize..1100,
    ) {
        let mut small = new_maplet();
        for &(h, v) in &before {
            small.insert_hash(h, v).unwrap();
        }
        let batch: Vec<(u64, i64)> = batch.into_iter().map(|(h, v)| (if h % 1100 < crowd as u64 { h } else { h % 97 }, v)).collect();
        // Big enough not to grow: exact equality with one-by-one inserts.
        let mut one = Maplet::new(5000, 0.01, Counter).unwrap();
        let mut bulk = one.clone();
        for &(h, v) in before.iter().chain(&batch) {
            one.insert_hash(h, v).unwrap();
        }
        for &(h, v) in &before {
            bulk.insert_hash(h, v).unwrap();
        }
        bulk.insert_many_hashes(batch.clone()).unwrap();
        bulk.check_invariants();
        prop_assert_eq!(bulk.entries().collect::<Vec<_>>(), one.entries().collect::<Vec<_>>());
        // Small: the batch makes it grow.
        small.insert_many_hashes(batch.clone()).unwrap();
        small.check_invariants();
        let mut truth: HashMap<u64, i64> = HashMap::new();
        for &(h, v) in before.iter().chain(&batch) {
            *truth.entry(h).or_default() += v;
        }
        for (h, _) in truth {
            prop_assert!(small.query_hash(h).is_some(), "false negative after bulk insert");
        }
    }

    /// One value for many hashes is the same as the pairs it stands for,
    /// in a batch merged in one pass or inserted one by one.
    #[test]
    fn one_value_for_many_hashes_matches_the_pairs(
        hashes in prop::collection::vec(key_strategy(), 0..1400),
        value in -50i64..100,
    ) {
        let mut pairs = Maplet::new(5000, 0.01, Counter).unwrap();
        let mut same = pairs.clone();
        pairs.insert_many_hashes(hashes.iter().map(|&h| (h, value)).collect()).unwrap();
        same.insert_hashes_with_value(&hashes, value).unwrap();
        same.check_invariants();
        prop_assert_eq!(same.entries().collect::<Vec<_>>(), pairs.entries().collect::<Vec<_>>());
    }

    /// A batch into an empty maplet (a bulk load, merged without matching
    /// against stored entries) holds what one-by-one inserts hold, with
    /// full or fixed-precision fingerprints, and after growing it answers
    /// every key at least its total.
    #[test]
    fn bulk_load_into_an_empty_maplet(
        batch in prop::collection::vec((key_strategy(), 1i64..100), 1024..1500),
        fixed_precision in any::<bool>(),
    ) {
        let options = Options { fixed_precision, ..Options::default() };
        let mut one = Maplet::with_options(5000, 0.01, Counter, options).unwrap();
        let mut bulk = one.clone();
        for &(h, v) in &batch {
            one.insert_hash(h, v).unwrap();
        }
        bulk.insert_many_hashes(batch.clone()).unwrap();
        bulk.check_invariants();
        prop_assert_eq!(bulk.entries().collect::<Vec<_>>(), one.entries().collect::<Vec<_>>());
        let mut small = Maplet::with_options(100, 0.01, Counter, options).unwrap();
        small.insert_many_hashes(batch.clone()).unwrap();
        small.check_invariants();
        let mut truth: HashMap<u64, i64> = HashMap::new();
        for &(h, v) in &batch {
            *truth.entry(h).or_default() += v;
        }
        for (h, v) in truth {
            prop_assert!(small.query_hash(h).is_some_and(|a| a >= v), "below the truth after a bulk load");
        }
    }

    /// Whatever the width of the values, and so whichever form the sort
    /// takes (key and value in 4 bytes, in 8, or side by side), a batch
    /// holds what one-by-one inserts hold.
    #[test]
    fn bulk_insert_of_values_of_any_width_matches_one_by_one(
        batch in prop::collection::vec((key_strategy(), -(1i64 << 50)..(1i64 << 50)), 1024..1300),
        value_bits in prop::sample::select(vec![4u32, 28, 50]),
    ) {
        let batch: Vec<(u64, i64)> = batch.iter().map(|&(h, v)| (h, v >> (50 - value_bits))).collect();
        let mut one = Maplet::new(5000, 0.01, Counter).unwrap();
        let mut bulk = one.clone();
        for &(h, v) in &batch {
            one.insert_hash(h, v).unwrap();
        }
        bulk.insert_many_hashes(batch).unwrap();
        bulk.check_invariants();
        prop_assert_eq!(bulk.entries().collect::<Vec<_>>(), one.entries().collect::<Vec<_>>());
    }

    /// With fixed-precision fingerprints, maplets that grew differently
    /// merge into exactly what one maplet that saw every insert holds.
    #[test]
    fn fixed_precision_merges_are_exact_after_growth(
        a in prop::collection::vec((any::<u64>(), 1i64..100), 0..600),
        b in prop::collection::vec((any::<u64>(), 1i64..100), 0..600),
        crowd in prop::collection::vec((0u64..6, 0u64..6, 1i64..100), 0..60),
    ) {
        let fixed = Options { fixed_precision: true, ..Options::default() };
        let new = || Maplet::with_options(EXPECTED / 4, 0.01, Counter, fixed).unwrap();
        let (mut ma, mut mb, mut all) = (new(), new(), new());
        let crowded: Vec<(u64, i64)> = crowd.iter().map(|&(q, fp, v)| (crafted(q * 7, fp, 0, 53, 11), v)).collect();
        for &(h, v) in a.iter().chain(&crowded) {
            ma.insert_hash(h, v).unwrap();
            all.insert_hash(h, v).unwrap();
        }
        for &(h, v) in &b {
            mb.insert_hash(h, v).unwrap();
            all.insert_hash(h, v).unwrap();
        }
        ma.merge(&mb).unwrap();
        ma.check_invariants();
        prop_assert_eq!(ma.capacity(), all.capacity());
        prop_assert_eq!(ma.entries().collect::<Vec<_>>(), all.entries().collect::<Vec<_>>());
    }

    #[test]
    fn extremes_and_sets_are_one_sided(pairs in prop::collection::vec((key_strategy(), -1000i64..1000), 1..300)) {
        let mut max = Maplet::new(EXPECTED, 0.01, Max::<i64>::new()).unwrap();
        let mut min = Maplet::new(EXPECTED, 0.01, Min::<i64>::new()).unwrap();
        let mut set = Maplet::new(EXPECTED, 0.01, SetUnion::<i64>::new()).unwrap();
        let mut truth: HashMap<u64, (i64, i64, BTreeSet<i64>)> = HashMap::new();
        for &(h, v) in &pairs {
            max.insert_hash(h, v).unwrap();
            min.insert_hash(h, v).unwrap();
            set.insert_hash(h, BTreeSet::from([v])).unwrap();
            let e = truth.entry(h).or_insert((v, v, BTreeSet::new()));
            e.0 = e.0.max(v);
            e.1 = e.1.min(v);
            e.2.insert(v);
        }
        max.check_invariants();
        set.check_invariants();
        for (h, (hi, lo, s)) in truth {
            prop_assert!(max.query_hash(h).unwrap() >= hi);
            prop_assert!(min.query_hash(h).unwrap() <= lo);
            prop_assert!(set.query_hash(h).unwrap().is_superset(&s));
        }
    }
}

#[test]
fn empty_maplet_answers_nothing() {
    let m = Maplet::new(1000, 0.01, Counter).unwrap();
    assert!(m.is_empty());
    assert_eq!(m.query("anything"), None);
    assert!(!m.contains(&42u64));
    assert_eq!(m.entries().count(), 0);
    m.check_invariants();
}

#[test]
fn many_keys_on_one_home_slot() {
    let mut m = Maplet::new(100_000, 0.001, Counter).unwrap();
    let (canonical, fbits) = (m.capacity(), m.stats().fingerprint_bits);
    // Every fingerprint the field can hold, on one home slot.
    let distinct = 1u64 << (fbits - 1);
    let hashes: Vec<u64> = (0..distinct)
        .map(|fp| crafted(7, fp, 0, canonical, fbits))
        .collect();
    for (i, &h) in hashes.iter().enumerate() {
        m.insert_hash(h, i as i64 + 1).unwrap();
    }
    m.check_invariants();
    assert_eq!(m.len(), distinct as usize);
    for (i, &h) in hashes.iter().enumerate() {
        assert_eq!(m.query_hash(h), Some(i as i64 + 1));
    }
    // Keys homed right after the crowded slot still work.
    for q in 8..40 {
        let h = crafted(q, 1, 0, canonical, fbits);
        m.insert_hash(h, 5).unwrap();
        assert_eq!(m.query_hash(h), Some(5));
    }
    for (i, &h) in hashes.iter().enumerate().step_by(2) {
        assert!(m.delete_hash(h, &(i as i64 + 1)).unwrap());
    }
    m.check_invariants();
    for (i, &h) in hashes.iter().enumerate() {
        assert_eq!(
            m.query_hash(h),
            if i % 2 == 0 { None } else { Some(i as i64 + 1) }
        );
    }
}

#[test]
fn runs_at_the_end_of_the_table_extend_the_overflow_area() {
    let mut m = Maplet::new(1000, 0.01, Counter).unwrap();
    let (canonical, fbits) = (m.capacity(), m.stats().fingerprint_bits);
    let slots_before = m.stats().slots;
    let hashes: Vec<u64> = (0..200)
        .map(|fp| crafted(canonical - 1, fp, 0, canonical, fbits))
        .collect();
    for &h in &hashes {
        m.insert_hash(h, 1).unwrap();
    }
    m.check_invariants();
    assert!(
        m.stats().slots > slots_before,
        "the overflow area did not grow"
    );
    assert!(hashes.iter().all(|&h| m.query_hash(h) == Some(1)));
    for &h in &hashes {
        assert!(m.remove_hash(h).unwrap());
    }
    m.check_invariants();
    assert!(m.is_empty());
}

#[test]
fn full_table_then_one_more_doubles() {
    let mut m = Maplet::new(1000, 0.01, Counter).unwrap();
    let cap = m.capacity();
    let mut i = 0u64;
    while (m.len() as f64) < 0.95 * cap as f64 - 1.0 {
        m.insert(&i, 1).unwrap();
        i += 1;
    }
    assert_eq!(m.capacity(), cap);
    m.check_invariants();
    while m.capacity() == cap {
        m.insert(&i, 1).unwrap();
        i += 1;
    }
    assert_eq!(m.capacity(), 2 * cap);
    m.check_invariants();
    assert!((0..i).all(|k| m.query(&k).is_some_and(|v| v >= 1)));
}

#[test]
fn failed_operations_change_nothing() {
    let mut m = Maplet::new(100, 0.01, Counter).unwrap();
    m.insert("a", i64::MAX - 1).unwrap();
    m.insert("b", 7).unwrap();
    let before: Vec<_> = m.entries().collect();
    assert!(matches!(
        m.insert("a", 5),
        Err(mappy_core::MapletError::Overflow(_))
    ));
    assert_eq!(m.entries().collect::<Vec<_>>(), before);

    let mut small = Maplet::with_options(
        100,
        0.01,
        Counter,
        Options {
            memory_limit: Some(1200),
            ..Options::default()
        },
    )
    .unwrap();
    let mut inserted = 0u64;
    let err = loop {
        match small.insert(&inserted, 1) {
            Ok(()) => inserted += 1,
            Err(e) => break e,
        }
    };
    assert!(
        matches!(err, mappy_core::MapletError::MemoryLimit { .. }),
        "{err}"
    );
    let before: Vec<_> = small.entries().collect();
    assert!(small.insert(&inserted, 1).is_err());
    assert_eq!(small.entries().collect::<Vec<_>>(), before);
    assert!(small.memory_usage() <= 1200);
    assert!((0..inserted).all(|k| small.contains(&k)));
}

#[test]
fn invalid_parameters_are_rejected() {
    assert!(Maplet::new(0, 0.01, Counter).is_err());
    for rate in [0.0, 1.0, -0.5, 2.0, f64::NAN] {
        let err = Maplet::new(10, rate, Counter).unwrap_err();
        assert!(err.to_string().contains("false_positive_rate"), "{err}");
    }
}

#[test]
fn incompatible_maplets_do_not_merge() {
    let mut a = Maplet::new(100, 0.01, Counter).unwrap();
    a.insert("x", 1).unwrap();
    let b = Maplet::new(100, 0.001, Counter).unwrap();
    let c = Maplet::with_options(
        100,
        0.01,
        Counter,
        Options {
            seed: 1,
            ..Options::default()
        },
    )
    .unwrap();
    assert!(matches!(
        a.merge(&b),
        Err(mappy_core::MapletError::Incompatible(_))
    ));
    assert!(matches!(
        a.merge(&c),
        Err(mappy_core::MapletError::Incompatible(_))
    ));
    assert_eq!(a.query("x"), Some(1));
}

#[test]
fn merge_of_maplets_that_grew_differently() {
    let mut a = Maplet::new(100, 0.01, Counter).unwrap();
    let mut b = Maplet::new(100, 0.01, Counter).unwrap();
    for i in 0..2000u64 {
        a.insert(&i, 1).unwrap();
    }
    for i in 1000..1100u64 {
        b.insert(&i, 2).unwrap();
    }
    assert!(a.capacity() > b.capacity());
    b.merge(&a).unwrap();
    b.check_invariants();
    for i in 0..2000u64 {
        let want = if (1000..1100).contains(&i) { 3 } else { 1 };
        assert!(b.query(&i).unwrap() >= want);
    }
}

#[test]
fn bulk_insert_reports_the_failing_pair_and_changes_nothing() {
    let mut m = Maplet::new(10_000, 0.01, Counter).unwrap();
    m.insert_hash(42, 5).unwrap();
    let mut batch: Vec<(u64, i64)> = (0..3000u64)
        .map(|i| (i.wrapping_mul(0x9e37_79b9_7f4a_7c15), 1))
        .collect();
    batch[2000] = (batch[10].0, i64::MAX);
    let before = m.to_bytes();
    let err = m.insert_many_hashes(batch.clone()).unwrap_err();
    assert_eq!(err.0, 2000);
    assert!(matches!(err.1, mappy_core::MapletError::Overflow(_)));
    m.check_invariants();
    assert!(m.to_bytes() == before, "a failed batch changed the maplet");
    assert_eq!((m.len(), m.query_hash(42)), (1, Some(5)));
}

#[test]
fn one_value_for_many_hashes_reports_the_failing_hash_and_changes_nothing() {
    let mut m = Maplet::new(10_000, 0.01, Counter).unwrap();
    let hashes: Vec<u64> = (0..3000u64)
        .map(|i| i.wrapping_mul(0x9e37_79b9_7f4a_7c15))
        .collect();
    m.insert_hash(hashes[1500], i64::MAX - 3).unwrap();
    let before = m.to_bytes();
    let err = m.insert_hashes_with_value(&hashes, 5).unwrap_err();
    assert_eq!(err.0, 1500);
    assert!(matches!(err.1, mappy_core::MapletError::Overflow(_)));
    m.check_invariants();
    assert!(m.to_bytes() == before, "a failed batch changed the maplet");
}

#[test]
fn batches_that_outgrow_the_table_merge_whole() {
    let spread = |i: u64| i.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ (i >> 29);
    for (expected, first, second) in [
        (100, 0, 200_000),
        (50_000, 50_000, 50_000),
        (50_000, 45_000, 150_000),
    ] {
        let mut m = Maplet::new(expected, 0.01, Counter).unwrap();
        let a: Vec<(u64, i64)> = (0..first).map(|i| (spread(i), 1)).collect();
        let b: Vec<(u64, i64)> = (first..first + second).map(|i| (spread(i), 2)).collect();
        m.insert_many_hashes(a).unwrap();
        m.insert_many_hashes(b).unwrap();
        m.check_invariants();
        assert!((0..first).all(|i| m.query_hash(spread(i)).is_some_and(|v| v >= 1)));
        assert!((first..first + second).all(|i| m.query_hash(spread(i)).is_some_and(|v| v >= 2)));
        let load = m.len() as f64 / m.capacity() as f64;
        assert!(load > 0.3 && load <= 0.95, "load {load}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// A maplet with a memory limit keeps the sum of its side-stored values'
    /// sizes as they come and go; one without measures them when asked. The
    /// two always agree, through inserts, merges into stored sets, deletes,
    /// failed batches, merges of maplets and limits set and lifted.
    #[test]
    fn counted_and_measured_memory_agree(
        ops in prop::collection::vec((0u64..300, prop::collection::btree_set(0u32..50, 0..6), 0u8..10), 1..200),
    ) {
        let limited = Options { memory_limit: Some(1 << 40), ..Options::default() };
        let mut counted = Maplet::with_options(EXPECTED, 0.01, SetUnion::<u32>::new(), limited).unwrap();
        let mut measured = Maplet::new(EXPECTED, 0.01, SetUnion::<u32>::new()).unwrap();
        for (k, set, what) in ops {
            for m in [&mut counted, &mut measured] {
                match what {
                    0 => { m.remove(&k).unwrap(); }
                    1 => {
                        // A batch that fails at its last pair changes nothing.
                        let h = m.hash(&k);
                        let pairs = vec![(h, set.clone()), (h, set.clone())];
                        let _ = m.insert_many_hashes(pairs);
                    }
                    2 => {
                        let mut other = Maplet::new(EXPECTED, 0.01, SetUnion::<u32>::new()).unwrap();
                        other.insert(&k, set.clone()).unwrap();
                        other.insert(&(k + 1000), set.clone()).unwrap();
                        let before = m.options().memory_limit;
                        m.merge(&other).unwrap();
                        prop_assert_eq!(m.options().memory_limit, before);
                    }
                    _ => m.insert(&k, set.clone()).unwrap(),
                }
            }
            prop_assert_eq!(counted.memory_usage(), measured.memory_usage());
        }
        // Lifting the limit, and setting one again, keeps the figure.
        let before = counted.memory_usage();
        counted.set_memory_limit(None).unwrap();
        prop_assert_eq!(counted.memory_usage(), before);
        measured.set_memory_limit(Some(1 << 40)).unwrap();
        prop_assert_eq!(measured.memory_usage(), before);
        // A copy holds the same values (its index may have less spare room).
        let copy = measured.clone();
        let spare = measured.memory_usage() - copy.memory_usage();
        prop_assert!(spare < 64 * 1024, "{spare}");
    }
}
