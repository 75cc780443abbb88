use mappy_core::{Counter, Maplet};

#[test]
fn smoke() {
    let n = 2_000u64;
    let mut m = Maplet::new(100, 0.01, Counter).unwrap();
    for i in 0..n {
        let before = m.clone();
        m.insert(&i, (i % 300) as i64 + 1).unwrap();
        if std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| m.check_invariants())).is_err()
        {
            before.check_invariants();
            panic!(
                "insert {i} broke it: before {:?} after {:?}",
                before.stats(),
                m.stats()
            );
        }
    }
}

#[test]
fn smoke_delete() {
    let n = 3_000u64;
    let mut m = Maplet::new(100, 0.01, Counter).unwrap();
    for i in 0..n {
        m.insert(&i, (i % 300) as i64 + 1).unwrap();
    }
    m.check_invariants();
    for i in 0..n {
        m.delete(&i, &((i % 300) as i64 + 1)).unwrap();
        m.check_invariants();
    }
    eprintln!("{:?}", m.stats());
}

#[test]
fn print_stats() {
    let n = 100_000usize;
    let mut m = Maplet::new(n, 0.01, Counter).unwrap();
    for i in 0..n as u64 {
        m.insert(&i, 1 + (i % 200) as i64).unwrap();
    }
    eprintln!("{:?}", m.stats());
}
