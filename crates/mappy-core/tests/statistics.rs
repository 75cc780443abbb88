//! Statistical tests of the promise: the false-positive rate at full load,
//! the share of exact answers, and the rate after 16-fold growth.

use mappy_core::{Counter, Maplet, Options};

const N: u64 = 1_000_000;

/// Keys `0..n` present with count 1; returns (false-positive rate over `N`
/// absent keys, share of present keys answered exactly).
fn measure(m: &Maplet<Counter>, n: u64) -> (f64, f64) {
    let fp = (n..n + N).filter(|k| m.contains(k)).count() as f64 / N as f64;
    let exact = (0..n).filter(|k| m.query(k) == Some(1)).count() as f64 / n as f64;
    (fp, exact)
}

#[test]
fn false_positive_rate_at_full_load() {
    for rate in [0.01, 0.001] {
        let mut m = Maplet::new(N as usize, rate, Counter).unwrap();
        for k in 0..N {
            m.insert(&k, 1).unwrap();
        }
        let stats = m.stats();
        assert_eq!(stats.capacity, m.capacity(), "the maplet grew");
        assert!(
            stats.load_factor > 0.94,
            "not at full load: {}",
            stats.load_factor
        );
        let (fp, exact) = measure(&m, N);
        assert!(
            fp <= 1.25 * rate,
            "rate {rate}: measured false-positive rate {fp}"
        );
        assert!(
            exact >= 1.0 - rate,
            "rate {rate}: only {exact} of present keys exact"
        );
        assert!(
            (0..N).all(|k| m.query(&k).is_some_and(|v| v >= 1)),
            "a false negative"
        );
    }
}

#[test]
fn false_positive_rate_after_growing_sixteen_fold() {
    let rate = 0.01;
    let mut m = Maplet::new((N / 16) as usize, rate, Counter).unwrap();
    let initial = m.capacity();
    for k in 0..N {
        m.insert(&k, 1).unwrap();
    }
    assert_eq!(m.capacity(), 16 * initial);
    let (fp, exact) = measure(&m, N);
    eprintln!(
        "after 16x growth: false-positive rate {fp}, exact {exact}, {:?}",
        m.stats()
    );
    assert!(
        fp <= 2.0 * rate,
        "after 16x growth: measured false-positive rate {fp}"
    );
    // A key that meets an older, shorter fingerprint shares its entry, so
    // both answer inexactly: about twice the false-positive rate of keys.
    assert!(
        exact >= 1.0 - 3.0 * rate,
        "after 16x growth: only {exact} exact"
    );
    assert!(
        (0..N).all(|k| m.query(&k).is_some_and(|v| v >= 1)),
        "a false negative"
    );
    m.check_invariants();
}

#[test]
fn fixed_precision_rate_after_growing_sixteen_fold() {
    let rate = 0.01;
    let fixed = Options {
        fixed_precision: true,
        ..Options::default()
    };
    let mut m = Maplet::with_options((N / 16) as usize, rate, Counter, fixed).unwrap();
    let initial = m.capacity();
    for k in 0..N {
        m.insert(&k, 1).unwrap();
    }
    assert_eq!(m.capacity(), 16 * initial);
    let (fp, _) = measure(&m, N);
    assert!(
        fp <= 2.0 * rate,
        "fixed precision after 16x growth: measured false-positive rate {fp}"
    );
    assert!(
        (0..N).all(|k| m.query(&k).is_some_and(|v| v >= 1)),
        "a false negative"
    );
    m.check_invariants();
}
