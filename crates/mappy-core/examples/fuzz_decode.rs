//! A mutation fuzzer for the maplet decoder that runs on the stable
//! toolchain: it mutates valid encodings of several maplets (bit flips,
//! byte overwrites, extreme header numbers, truncation, splicing), reseals
//! the checksum most of the time so the mutations reach the structural
//! checks, and decodes. Decoding must return an error or a maplet whose
//! every invariant holds; a panic fails the run.
//!
//! `cargo run --release -p mappy-core --example fuzz_decode -- SECONDS [SEED]`

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use mappy_core::hash::hash_bytes;
use mappy_core::{Counter, Maplet, Max, Options, SetUnion, VectorAdd};

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

fn corpus() -> Vec<(&'static str, Vec<u8>)> {
    let mut counter = Maplet::with_options(
        40,
        0.01,
        Counter,
        Options {
            seed: 3,
            memory_limit: Some(1 << 24),
            ..Options::default()
        },
    )
    .unwrap();
    for i in 0..700u64 {
        counter
            .insert(
                &i,
                if i % 5 == 0 {
                    -(i as i64)
                } else {
                    i as i64 * 1000
                },
            )
            .unwrap();
    }
    let mut max = Maplet::new(100, 0.001, Max::<f64>::new()).unwrap();
    for i in 0..90u64 {
        max.insert(&i, i as f64 / 3.0).unwrap();
    }
    let mut sets = Maplet::new(30, 0.01, SetUnion::<String>::new()).unwrap();
    for i in 0..120u64 {
        sets.insert(&(i % 50), BTreeSet::from([format!("{i}")]))
            .unwrap();
    }
    sets.remove(&7u64).unwrap();
    let mut vecs = Maplet::new(30, 0.01, VectorAdd::<f64>::new()).unwrap();
    for i in 0..40u64 {
        vecs.insert(&i, vec![i as f64; 3]).unwrap();
    }
    vec![
        ("counter", counter.to_bytes()),
        ("max", max.to_bytes()),
        ("set", sets.to_bytes()),
        ("vector", vecs.to_bytes()),
    ]
}

fn mutate(rng: &mut Rng, base: &[u8], other: &[u8]) -> Vec<u8> {
    let mut b = base.to_vec();
    for _ in 0..1 + rng.below(4) {
        let n = b.len().max(1);
        match rng.below(6) {
            0 => {
                let i = rng.below(n);
                if i < b.len() {
                    b[i] ^= 1 << rng.below(8);
                }
            }
            1 => {
                let i = rng.below(n);
                if i < b.len() {
                    b[i] = rng.next() as u8;
                }
            }
            2 => {
                // An extreme number in the header's numeric fields.
                let at = 24 + 8 * rng.below(10);
                let v = [0u64, 1, u64::MAX, u64::MAX / 2, 1 << 40, rng.next()][rng.below(6)];
                if at + 8 <= b.len() {
                    b[at..at + 8].copy_from_slice(&v.to_le_bytes());
                }
            }
            3 => b.truncate(rng.below(n)),
            4 => {
                let i = rng.below(n);
                let j = rng.below(other.len());
                let len = rng
                    .below(64)
                    .min(b.len().saturating_sub(i))
                    .min(other.len() - j);
                b[i..i + len].copy_from_slice(&other[j..j + len]);
            }
            _ => {
                // Header codes: widths, operator, flags.
                let at = 12 + rng.below(8);
                if at < b.len() {
                    b[at] = rng.next() as u8;
                }
            }
        }
    }
    if rng.below(10) != 0 && b.len() >= 8 {
        let n = b.len() - 8;
        let sum = hash_bytes(&b[..n], 0);
        b[n..].copy_from_slice(&sum.to_le_bytes());
    }
    b
}

fn main() {
    let mut args = std::env::args().skip(1);
    let seconds: u64 = args.next().and_then(|s| s.parse().ok()).unwrap_or(10);
    let seed: u64 = args.next().and_then(|s| s.parse().ok()).unwrap_or(1);
    let corpus = corpus();
    let mut rng = Rng(seed);
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let (mut runs, mut accepted) = (0u64, 0u64);
    while Instant::now() < deadline {
        for _ in 0..1000 {
            let (name, base) = &corpus[rng.below(corpus.len())];
            let other = &corpus[rng.below(corpus.len())].1;
            let input = mutate(&mut rng, base, other);
            let ok = match *name {
                "counter" => Maplet::from_bytes(&input, Counter)
                    .map(|m| m.check_invariants())
                    .is_ok(),
                "max" => Maplet::from_bytes(&input, Max::<f64>::new())
                    .map(|m| m.check_invariants())
                    .is_ok(),
                "set" => Maplet::from_bytes(&input, SetUnion::<String>::new())
                    .map(|m| m.check_invariants())
                    .is_ok(),
                _ => Maplet::from_bytes(&input, VectorAdd::<f64>::new())
                    .map(|m| m.check_invariants())
                    .is_ok(),
            };
            runs += 1;
            accepted += ok as u64;
        }
    }
    println!("fuzz_decode: {runs} inputs in {seconds} s (seed {seed}), {accepted} decoded to valid maplets, 0 crashes");
}
