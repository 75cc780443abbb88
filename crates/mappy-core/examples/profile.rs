//! Timings of one operation at a time, for profiling with `perf` or
//! callgrind: a counter maplet at 1% over `N` keys (default 1M), median-free
//! per-round nanoseconds on stderr.
//!
//! ```text
//! N=1000000 cargo run --release -p mappy-core --example profile -- MODE [ROUNDS]
//! ```
//!
//! MODE: `insert` (one by one, maplet sized for N), `insert2` (sized for
//! 2N, half load), `batch` (one `insert_many_hashes`), `query` (present
//! keys, the default), `qfins` and `qf` (`qfilter` inserts and queries).
use mappy_core::{Counter, Maplet};
use std::hint::black_box;
fn splitmix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}
fn main() {
    let mode = std::env::args().nth(1).unwrap_or_default();
    let n: usize = std::env::var("N")
        .map(|s| s.parse().unwrap())
        .unwrap_or(1_000_000);
    let present: Vec<u64> = (0..n as u64).map(splitmix).collect();
    let mut m = Maplet::new(n, 0.01, Counter).unwrap();
    if mode == "insert" || mode == "insert2" {
        let cap = if mode == "insert2" { 2 * n } else { n };
        for r in 0..5 {
            let mut m = Maplet::new(cap, 0.01, Counter).unwrap();
            let t = std::time::Instant::now();
            for (i, &k) in present.iter().enumerate() {
                m.insert_hash(k, 1 + (i % 50) as i64).unwrap();
            }
            eprintln!(
                "round {r}: insert {:.1} ns",
                t.elapsed().as_nanos() as f64 / n as f64
            );
        }
        return;
    }
    if mode == "batch" {
        for r in 0..5 {
            let mut m = Maplet::new(n, 0.01, Counter).unwrap();
            let pairs: Vec<(u64, i64)> = present
                .iter()
                .enumerate()
                .map(|(i, &k)| (k, 1 + (i % 50) as i64))
                .collect();
            let t = std::time::Instant::now();
            m.insert_many_hashes(pairs).unwrap();
            eprintln!(
                "round {r}: batch {:.1} ns",
                t.elapsed().as_nanos() as f64 / n as f64
            );
        }
        return;
    }
    if mode == "qfins" {
        for r in 0..5 {
            let mut f = qfilter::Filter::new(n as u64, 0.01).unwrap();
            let t = std::time::Instant::now();
            for &k in &present {
                f.insert_fingerprint(false, k).unwrap();
            }
            eprintln!(
                "round {r}: qf insert {:.1} ns",
                t.elapsed().as_nanos() as f64 / n as f64
            );
        }
        return;
    }
    if mode == "qf" {
        let mut f = qfilter::Filter::new(n as u64, 0.01).unwrap();
        for &k in &present {
            f.insert_fingerprint(false, k).unwrap();
        }
        let rounds: usize = std::env::args()
            .nth(2)
            .map(|r| r.parse().unwrap())
            .unwrap_or(10);
        for r in 0..rounds {
            let t = std::time::Instant::now();
            for &k in &present {
                black_box(f.contains_fingerprint(k));
            }
            eprintln!(
                "round {r}: qf query {:.1} ns",
                t.elapsed().as_nanos() as f64 / n as f64
            );
        }
        return;
    }
    let pairs: Vec<(u64, i64)> = present
        .iter()
        .enumerate()
        .map(|(i, &k)| (k, 1 + (i % 50) as i64))
        .collect();
    m.insert_many_hashes(pairs).unwrap();
    let rounds: usize = std::env::args()
        .nth(2)
        .map(|r| r.parse().unwrap())
        .unwrap_or(10);
    for r in 0..rounds {
        let t = std::time::Instant::now();
        for &k in &present {
            black_box(m.query_hash(k));
        }
        eprintln!(
            "round {r}: query {:.1} ns",
            t.elapsed().as_nanos() as f64 / n as f64
        );
    }
}
