//! Throughput and space of a counter maplet beside `qfilter` (a
//! rank-and-select quotient filter answering membership at the same rate)
//! and `std::collections::HashMap<u64, u64>`, all in one run.
//!
//! Every structure gets the same precomputed 64-bit key hashes, so the
//! numbers compare the tables, not the hash functions. Each figure is the
//! median of `MAPPY_BENCH_ROUNDS` rounds (default 5), each on a fresh table.
//!
//! Run: `cargo bench -p mappy-core --bench maplet` (set `MAPPY_BENCH_N`, a
//! comma-separated list of sizes, default `1000000,10000000`).

use std::collections::HashMap;
use std::hint::black_box;
use std::time::Instant;

use mappy_core::{Counter, Maplet};

fn splitmix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(|a, b| a.partial_cmp(b).unwrap());
    xs[xs.len() / 2]
}

/// Million operations per second of `f` over `n` items.
fn mops(n: usize, f: impl FnOnce()) -> f64 {
    let t = Instant::now();
    f();
    n as f64 / t.elapsed().as_secs_f64() / 1e6
}

#[derive(Default)]
struct Figures {
    insert: Vec<f64>,
    hit: Vec<f64>,
    miss: Vec<f64>,
    bulk: Vec<f64>,
    bulk_hit: Vec<f64>,
    bits: f64,
    fpr: f64,
}

fn main() {
    let sizes: Vec<usize> = std::env::var("MAPPY_BENCH_N")
        .unwrap_or_else(|_| "1000000,10000000".into())
        .split(',')
        .map(|s| s.trim().parse().expect("MAPPY_BENCH_N: sizes"))
        .collect();
    let rounds: usize = std::env::var("MAPPY_BENCH_ROUNDS")
        .map(|r| r.parse().unwrap())
        .unwrap_or(5);
    // cargo bench passes --bench; a filter argument selects nothing here.
    println!("| n | rate | structure | insert Mops/s | batch insert Mops/s | query present Mops/s | batch query present Mops/s | query absent Mops/s | bits/item | measured FP rate |");
    println!("|---|---|---|---|---|---|---|---|---|---|");
    let mut equal_load = Vec::new();
    let mut qfilter_load = Vec::new();
    for &n in &sizes {
        let present: Vec<u64> = (0..n as u64).map(splitmix).collect();
        let absent: Vec<u64> = (n as u64..2 * n as u64)
            .map(|i| splitmix(i ^ 0xdead_beef_0000_0000))
            .collect();
        // Counts from 1 to 50: stored counts stay below 256 even where up to
        // five keys share a fingerprint.
        let counts: Vec<i64> = (0..n as i64).map(|i| 1 + i % 50).collect();
        for rate in [0.01, 0.001] {
            let (mut m, mut q, mut h) =
                (Figures::default(), Figures::default(), Figures::default());
            for _ in 0..rounds {
                // Maplet.
                let mut maplet = Maplet::new(n, rate, Counter).unwrap();
                m.insert.push(mops(n, || {
                    for (&k, &c) in present.iter().zip(&counts) {
                        maplet.insert_hash(k, c).unwrap();
                    }
                }));
                m.hit.push(mops(n, || {
                    for &k in &present {
                        black_box(maplet.query_hash(k));
                    }
                }));
                let mut fp = 0usize;
                m.miss.push(mops(n, || {
                    for &k in &absent {
                        fp += maplet.query_hash(k).is_some() as usize;
                    }
                }));
                m.bulk_hit.push(mops(n, || {
                    black_box(maplet.query_many_hashes(&present));
                }));
                m.bits = maplet.stats().bits_per_item;
                m.fpr = fp as f64 / n as f64;
                drop(maplet);
                // The same inserts as one batch.
                let mut bulk = Maplet::new(n, rate, Counter).unwrap();
                let pairs: Vec<(u64, i64)> = present
                    .iter()
                    .copied()
                    .zip(counts.iter().copied())
                    .collect();
                m.bulk
                    .push(mops(n, || bulk.insert_many_hashes(pairs).unwrap()));
                assert!(present.iter().all(|&k| bulk.contains_hash(k)));
                drop(bulk);

                // qfilter, membership only.
                let mut filter = qfilter::Filter::new(n as u64, rate).unwrap();
                q.insert.push(mops(n, || {
                    for &k in &present {
                        filter.insert_fingerprint(false, k).unwrap();
                    }
                }));
                q.hit.push(mops(n, || {
                    for &k in &present {
                        black_box(filter.contains_fingerprint(k));
                    }
                }));
                let mut fp = 0usize;
                q.miss.push(mops(n, || {
                    for &k in &absent {
                        fp += filter.contains_fingerprint(k) as usize;
                    }
                }));
                q.bits = filter.memory_usage() as f64 * 8.0 / n as f64;
                q.fpr = fp as f64 / n as f64;
                drop(filter);

                // HashMap<u64, u64>, exact.
                let mut map: HashMap<u64, u64> = HashMap::with_capacity(n);
                h.insert.push(mops(n, || {
                    for (&k, &c) in present.iter().zip(&counts) {
                        *map.entry(k).or_insert(0) += c as u64;
                    }
                }));
                h.hit.push(mops(n, || {
                    for &k in &present {
                        black_box(map.get(&k));
                    }
                }));
                h.miss.push(mops(n, || {
                    for &k in &absent {
                        black_box(map.get(&k));
                    }
                }));
                h.bits = (map.capacity() * 17 + map.capacity() / 8) as f64 * 8.0 / n as f64;
                h.fpr = 0.0;
            }
            for (name, f) in [
                ("mappy Maplet<Counter>", &m),
                ("qfilter (membership)", &q),
                ("HashMap<u64, u64>", &h),
            ] {
                let cell = |v: &Vec<f64>| {
                    if v.is_empty() {
                        String::new()
                    } else {
                        format!("{:.1}", median(v.clone()))
                    }
                };
                println!(
                    "| {n} | {rate} | {name} | {:.1} | {} | {:.1} | {} | {:.1} | {:.1} | {:.5} |",
                    median(f.insert.clone()),
                    cell(&f.bulk),
                    median(f.hit.clone()),
                    cell(&f.bulk_hit),
                    median(f.miss.clone()),
                    f.bits,
                    f.fpr
                );
            }
            println!(
                "| {n} | {rate} | ratio mappy/qfilter | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | | |",
                median(m.insert.clone()) / median(q.insert.clone()),
                median(m.bulk.clone()) / median(q.insert.clone()),
                median(m.hit.clone()) / median(q.hit.clone()),
                median(m.bulk_hit.clone()) / median(q.hit.clone()),
                median(m.miss.clone()) / median(q.miss.clone())
            );
            equal_load.push(at_equal_load(n, rate, rounds, &present, &counts));
            qfilter_load.push(at_qfilter_load(n, rate, rounds, &present, &counts));
        }
    }
    println!();
    println!("Both at 95% load: `n'` keys, the most that fill a qfilter of the largest power-of-two size below `n / 0.95` slots to 95%, in a maplet and a qfilter each built for `n'`.");
    println!();
    println!("| n | rate | n' | mappy insert Mops/s | qfilter insert Mops/s | ratio | mappy query Mops/s | qfilter query Mops/s | ratio |");
    println!("|---|---|---|---|---|---|---|---|---|");
    for row in equal_load {
        println!("{row}");
    }
    println!();
    println!("The maplet at the qfilter's load: `n` keys in a qfilter built for `n` and in a maplet with as many home slots as that qfilter has slots.");
    println!();
    println!("| n | rate | load | mappy bits/item | mappy insert Mops/s | qfilter insert Mops/s | ratio | mappy query Mops/s | qfilter query Mops/s | ratio |");
    println!("|---|---|---|---|---|---|---|---|---|---|");
    for row in qfilter_load {
        println!("{row}");
    }
}

/// Medians of single inserts and present-key queries (Mops/s) over `keys`
/// of a maplet built for `maplet_expected` items and a qfilter built for
/// `qfilter_expected`, and the maplet's bits per item.
struct SingleOps {
    maplet_insert: f64,
    qfilter_insert: f64,
    maplet_query: f64,
    qfilter_query: f64,
    maplet_bits: f64,
}

impl SingleOps {
    /// The table cells: inserts of both and their ratio, then queries.
    fn cells(&self) -> String {
        format!(
            "{:.1} | {:.1} | {:.2} | {:.1} | {:.1} | {:.2} |",
            self.maplet_insert,
            self.qfilter_insert,
            self.maplet_insert / self.qfilter_insert,
            self.maplet_query,
            self.qfilter_query,
            self.maplet_query / self.qfilter_query
        )
    }
}

fn single_ops(
    keys: &[u64],
    counts: &[i64],
    rate: f64,
    rounds: usize,
    maplet_expected: usize,
    qfilter_expected: usize,
) -> SingleOps {
    let n = keys.len();
    let (mut mi, mut mq, mut qi, mut qq) = (vec![], vec![], vec![], vec![]);
    let mut maplet_bits = 0.0;
    for _ in 0..rounds {
        let mut maplet = Maplet::new(maplet_expected, rate, Counter).unwrap();
        mi.push(mops(n, || {
            for (&k, &c) in keys.iter().zip(counts) {
                maplet.insert_hash(k, c).unwrap();
            }
        }));
        mq.push(mops(n, || {
            for &k in keys {
                black_box(maplet.query_hash(k));
            }
        }));
        maplet_bits = maplet.stats().bits_per_item;
        drop(maplet);
        let mut filter = qfilter::Filter::new(qfilter_expected as u64, rate).unwrap();
        qi.push(mops(n, || {
            for &k in keys {
                filter.insert_fingerprint(false, k).unwrap();
            }
        }));
        qq.push(mops(n, || {
            for &k in keys {
                black_box(filter.contains_fingerprint(k));
            }
        }));
    }
    SingleOps {
        maplet_insert: median(mi),
        qfilter_insert: median(qi),
        maplet_query: median(mq),
        qfilter_query: median(qq),
        maplet_bits,
    }
}

/// Single inserts and present-key queries of a maplet and a qfilter that
/// both end at 95% load, as one table row.
fn at_equal_load(n: usize, rate: f64, rounds: usize, present: &[u64], counts: &[i64]) -> String {
    let slots = 1usize << (usize::BITS - 1 - ((n as f64 / 0.95) as usize).leading_zeros());
    let n95 = (slots * 19).div_ceil(20);
    let qf = qfilter::Filter::new(n95 as u64, rate).unwrap();
    assert_eq!(qf.capacity() as usize, n95, "qfilter sized to 95% load");
    let o = single_ops(&present[..n95], &counts[..n95], rate, rounds, n95, n95);
    format!("| {n} | {rate} | {n95} | {}", o.cells())
}

/// Single inserts and present-key queries of `n` keys in a qfilter built
/// for `n` and in a maplet given as many home slots as that qfilter has
/// slots, so that both end at the qfilter's load, as one table row.
fn at_qfilter_load(n: usize, rate: f64, rounds: usize, present: &[u64], counts: &[i64]) -> String {
    // A qfilter's capacity is 95% of its slots, and a maplet built for `c`
    // items has `c / 0.95` home slots.
    let capacity = qfilter::Filter::new(n as u64, rate).unwrap().capacity() as usize;
    let o = single_ops(&present[..n], &counts[..n], rate, rounds, capacity, n);
    format!(
        "| {n} | {rate} | {:.0}% | {:.1} | {}",
        100.0 * n as f64 / (capacity as f64 / 0.95),
        o.maplet_bits,
        o.cells()
    )
}
