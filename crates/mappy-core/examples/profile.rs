//! Timings of one operation at a time, for profiling with `perf` or
//! callgrind: a counter maplet at 1% over `N` keys (default 1M), each
//! round's nanoseconds per operation on stderr.
//!
//! ```text
//! N=1000000 cargo run --release -p mappy-core --example profile -- MODE [ROUNDS]
//! ```
//!
//! MODE: `insert` (one by one, maplet sized for N), `insert2` (sized for
//! 2N, half load), `batch` (one `insert_many_hashes`), `batch1` (the same
//! with every count 1), `query` (present keys, the default), `absent`
//! (membership of N absent keys in a maplet of `SMALL` keys, default N),
//! `qfins` and `qf` (`qfilter` inserts and queries), `update` (single
//! inserts of present keys, each adding to its entry), `bq` (one
//! `query_many_hashes` of the present keys), `widen` (one insert that
//! widens every value of a full table, per key of the table), `widen2`
//! (the same half full), `load` (`from_bytes` of the
//! maplet's bytes), `tobytes`, `verify` (the table's checks). `CAP` sets the capacity of the insert modes;
//! `ONES` makes every count 1; `WIDE` has the insert modes start from a
//! maplet whose values are already 8 bits wide (one entry of 255), so that
//! no insert widens them.
use mappy_core::{Counter, Maplet};
use std::hint::black_box;

fn splitmix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// Runs `round` `rounds` times, printing each one's time per key.
fn rounds(label: &str, rounds: usize, n: usize, mut round: impl FnMut()) {
    for r in 0..rounds {
        let t = std::time::Instant::now();
        round();
        let ns = t.elapsed().as_nanos() as f64 / n as f64;
        eprintln!("round {r}: {label} {ns:.1} ns");
    }
}

fn main() {
    let mode = std::env::args().nth(1).unwrap_or_default();
    let count: Option<usize> = std::env::args().nth(2).map(|r| r.parse().unwrap());
    let n: usize = std::env::var("N").map_or(1_000_000, |s| s.parse().unwrap());
    let present: Vec<u64> = (0..n as u64).map(splitmix).collect();
    let ones = std::env::var("ONES").is_ok();
    let wide = std::env::var("WIDE").is_ok();
    let pairs: Vec<(u64, i64)> = present
        .iter()
        .enumerate()
        .map(|(i, &k)| (k, if ones { 1 } else { 1 + (i % 50) as i64 }))
        .collect();
    match mode.as_str() {
        "insert" | "insert2" => {
            let cap = if mode == "insert2" { 2 * n } else { n };
            let cap = std::env::var("CAP").map_or(cap, |s| s.parse().unwrap());
            rounds("insert", count.unwrap_or(5), n, || {
                let mut m = Maplet::new(cap, 0.01, Counter).unwrap();
                if wide {
                    // Values 8 bits wide from the start: no widening.
                    m.insert_hash(u64::MAX, 255).unwrap();
                }
                for &(k, c) in &pairs {
                    m.insert_hash(k, c).unwrap();
                }
            });
        }
        "batch" => rounds("batch", count.unwrap_or(5), n, || {
            let mut m = Maplet::new(n, 0.01, Counter).unwrap();
            m.insert_many_hashes(pairs.clone()).unwrap();
        }),
        "batch1" => {
            let ones: Vec<(u64, i64)> = present.iter().map(|&k| (k, 1)).collect();
            rounds("batch of ones", count.unwrap_or(5), n, || {
                let mut m = Maplet::new(n, 0.01, Counter).unwrap();
                m.insert_many_hashes(ones.clone()).unwrap();
            })
        }
        "widen" | "widen2" => {
            // One insert that widens every value of a full table (half full
            // for `widen2`): counts from 1 to 15, then one of 2^20.
            let cap = if mode == "widen2" { 2 * n } else { n };
            let mut m = Maplet::new(cap, 0.01, Counter).unwrap();
            for &k in &present {
                m.insert_hash(k, 1 + (k % 15) as i64).unwrap();
            }
            let extra = splitmix(u64::MAX);
            for r in 0..count.unwrap_or(9) {
                let mut c = m.clone();
                let t = std::time::Instant::now();
                c.insert_hash(extra, 1 << 20).unwrap();
                let ns = t.elapsed().as_nanos() as f64 / n as f64;
                eprintln!("round {r}: widen {ns:.1} ns");
            }
        }
        "qfins" => rounds("qf insert", count.unwrap_or(5), n, || {
            let mut f = qfilter::Filter::new(n as u64, 0.01).unwrap();
            for &k in &present {
                f.insert_fingerprint(false, k).unwrap();
            }
        }),
        "qf" => {
            let mut f = qfilter::Filter::new(n as u64, 0.01).unwrap();
            for &k in &present {
                f.insert_fingerprint(false, k).unwrap();
            }
            rounds("qf query", count.unwrap_or(10), n, || {
                for &k in &present {
                    black_box(f.contains_fingerprint(k));
                }
            });
        }
        "absent" => {
            // Membership of absent keys in a maplet of SMALL keys (default
            // N: in cache when small), the same number of calls as "query".
            let small: usize = std::env::var("SMALL").map_or(n, |s| s.parse().unwrap());
            let mut m = Maplet::new(small, 0.01, Counter).unwrap();
            m.insert_many_hashes(pairs[..small].to_vec()).unwrap();
            let absent: Vec<u64> = (n as u64..2 * n as u64).map(splitmix).collect();
            rounds("contains absent", count.unwrap_or(10), n, || {
                for &k in &absent {
                    black_box(m.contains_hash(k));
                }
            });
        }
        "update" => {
            // Single inserts of present keys: each adds to its entry.
            let mut m = Maplet::new(n, 0.01, Counter).unwrap();
            m.insert_many_hashes(pairs.clone()).unwrap();
            rounds("update", count.unwrap_or(10), n, || {
                for &k in &present {
                    m.insert_hash(k, 1).unwrap();
                }
            });
        }
        "load" | "tobytes" | "verify" => {
            let mut m = Maplet::new(n, 0.01, Counter).unwrap();
            m.insert_many_hashes(pairs.clone()).unwrap();
            let bytes = m.to_bytes();
            let mb = bytes.len() as f64 / 1e6;
            for r in 0..count.unwrap_or(5) {
                let t = std::time::Instant::now();
                if mode == "load" {
                    black_box(Maplet::from_bytes(&bytes, Counter).unwrap());
                } else if mode == "verify" {
                    m.verify().unwrap();
                } else {
                    black_box(m.to_bytes());
                }
                let s = t.elapsed().as_secs_f64();
                eprintln!("round {r}: {mode} {:.2} ms, {:.0} MB/s", s * 1e3, mb / s);
            }
        }
        "bq" => {
            let mut m = Maplet::new(n, 0.01, Counter).unwrap();
            m.insert_many_hashes(pairs.clone()).unwrap();
            rounds("batch query", count.unwrap_or(10), n, || {
                black_box(m.query_many_hashes(&present));
            });
        }
        _ => {
            let mut m = Maplet::new(n, 0.01, Counter).unwrap();
            m.insert_many_hashes(pairs.clone()).unwrap();
            rounds("query", count.unwrap_or(10), n, || {
                for &k in &present {
                    black_box(m.query_hash(k));
                }
            });
        }
    }
}
