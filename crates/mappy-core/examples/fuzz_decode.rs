//! A mutation fuzzer for the maplet decoder and the memory-mapped opening,
//! on the stable toolchain.
//!
//! It starts from valid encodings of maplets of every built-in operator
//! (counter, max and min over `i64` and `f64`, vector add over `f32` and
//! `f64`, set union over strings and over `u64`, a custom operator with a
//! [`ValueCodec`] value), mutates them (bit flips, byte overwrites, extreme
//! numbers aimed at each header size and count, fingerprint-length counts,
//! table header words, side-store lengths, truncation, extension with the
//! sizes adjusted to match, splicing), reseals the checksum nine times in
//! ten so that the mutations reach the structural checks, and opens them:
//! from bytes (`from_bytes`, and `from_frozen_bytes`, which must agree
//! with it and copy before a change), from a file (`load`) and, for the packed
//! operators, memory-mapped from a file (`load_mmap`); and a run of keys
//! for a shard (`Maplet::decode_runs`, what a sharded build sends), whose
//! keys it checks and inserts. After a successful
//! opening it queries, iterates, takes `stats`, runs `verify`, encodes
//! (`try_to_bytes`, `to_bytes`), clones and inserts, checking that:
//!
//! - a maplet decoded from bytes holds every invariant and re-encodes to
//!   bytes that decode again;
//! - a memory-mapped one answers every query without panicking, refuses
//!   writes with `ReadOnly`, and either verifies (then holds every
//!   invariant and re-encodes) or refuses `try_to_bytes`, `try_clone` and
//!   writes into a clone with `Corrupt`, while `to_bytes` writes data no
//!   reader accepts.
//!
//! The process runs under a 2 GiB address-space limit (`RLIMIT_AS`, on
//! Linux), so that an outsized allocation aborts the run instead of
//! passing unnoticed. Each case runs under `catch_unwind`: a panic or a
//! broken check is a failure, its input is written to
//! `fuzz-failure-N.bin` in the working directory, and the run exits with
//! status 1.
//!
//! `cargo run --release -p mappy-core --example fuzz_decode -- SECONDS [SEED]`

use std::collections::BTreeSet;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mappy_core::hash::hash_bytes;
use mappy_core::{
    Counter, Custom, FrozenBytes, Maplet, MapletError, Max, Min, Operator, Options, SetUnion,
    ValueCodec, VectorAdd,
};

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

/// The address-space limit of the run.
const MEMORY_CAP: u64 = 2 << 30;

#[cfg(target_os = "linux")]
fn cap_memory() {
    let lim = libc::rlimit {
        rlim_cur: MEMORY_CAP,
        rlim_max: MEMORY_CAP,
    };
    // SAFETY: setrlimit only reads the struct passed; lowering a limit of
    // our own process is always allowed.
    #[allow(unsafe_code)]
    let r = unsafe { libc::setrlimit(libc::RLIMIT_AS, &lim) };
    assert_eq!(r, 0, "setrlimit(RLIMIT_AS) failed");
}

#[cfg(not(target_os = "linux"))]
fn cap_memory() {}

/// The operators of the corpus, in the order of [`corpus`].
const NAMES: [&str; 16] = [
    "counter",
    "counter-fixed",
    "max-i64",
    "min-i64",
    "max-f64",
    "min-f64",
    "vector-f32",
    "vector-f64",
    "set-string",
    "set-u64",
    "custom-i64",
    "custom-string",
    "counter-shard",
    "shard-runs",
    "counter-large",
    "set-large",
];

fn sum_i64(a: &i64, b: &i64) -> mappy_core::Result<i64> {
    Ok(a.wrapping_add(*b))
}

fn concat(a: &String, b: &String) -> mappy_core::Result<String> {
    Ok(if a <= b {
        format!("{a}{b}")
    } else {
        format!("{b}{a}")
    })
}

type SumOp = Custom<i64, fn(&i64, &i64) -> mappy_core::Result<i64>>;
type ConcatOp = Custom<String, fn(&String, &String) -> mappy_core::Result<String>>;

fn sum_op() -> SumOp {
    Custom::new("sum", sum_i64 as fn(&i64, &i64) -> mappy_core::Result<i64>)
}

fn concat_op() -> ConcatOp {
    Custom::new(
        "concat",
        concat as fn(&String, &String) -> mappy_core::Result<String>,
    )
}

fn filled<O: Operator>(
    n: usize,
    op: O,
    options: Options,
    keys: u64,
    value: impl Fn(u64) -> O::Value,
) -> Maplet<O>
where
    O::Value: ValueCodec,
{
    let mut m = Maplet::with_options(n, 0.01, op, options).unwrap();
    for i in 0..keys {
        m.insert(&i, value(i)).unwrap();
    }
    m
}

fn corpus() -> Vec<Vec<u8>> {
    let counter = filled(
        40,
        Counter,
        Options {
            seed: 3,
            memory_limit: Some(1 << 24),
            ..Options::default()
        },
        700,
        |i| {
            if i % 5 == 0 {
                -(i as i64)
            } else {
                i as i64 * 1000
            }
        },
    );
    let fixed = filled(
        8,
        Counter,
        Options {
            fixed_precision: true,
            ..Options::default()
        },
        200,
        |i| i as i64 % 9 + 1,
    );
    let maxi = filled(50, Max::<i64>::new(), Options::default(), 90, |i| {
        i as i64 - 40
    });
    let mini = filled(50, Min::<i64>::new(), Options::default(), 90, |i| {
        (i as i64) << 20
    });
    let maxf = filled(100, Max::<f64>::new(), Options::default(), 90, |i| {
        i as f64 / 3.0
    });
    let minf = filled(30, Min::<f64>::new(), Options::default(), 60, |i| {
        -(i as f64) * 1e10
    });
    let vf32 = filled(30, VectorAdd::<f32>::new(), Options::default(), 40, |i| {
        vec![i as f32; 2]
    });
    let vf64 = filled(30, VectorAdd::<f64>::new(), Options::default(), 40, |i| {
        vec![i as f64; 3]
    });
    let mut sets = filled(
        30,
        SetUnion::<String>::new(),
        Options::default(),
        120,
        |i| BTreeSet::from([format!("{i}")]),
    );
    for i in 0..60u64 {
        sets.insert(&(i % 50), BTreeSet::from([format!("x{i}")]))
            .unwrap();
    }
    sets.remove(&7u64).unwrap();
    let mut setu = filled(20, SetUnion::<u64>::new(), Options::default(), 50, |i| {
        BTreeSet::from([i, i * 7])
    });
    setu.remove(&3u64).unwrap();
    let sum = filled(20, sum_op(), Options::default(), 30, |i| i as i64);
    let cat = filled(20, concat_op(), Options::default(), 30, |i| format!("s{i}"));
    // Shard 1 of 4 of a counter, with the keys of its hash range.
    let mut shard = Maplet::with_shard(
        400,
        0.01,
        Counter,
        Options::default(),
        mappy_core::shard::Shard::new(1, 4).unwrap(),
    )
    .unwrap();
    for i in 0..600u64 {
        let h = shard.hash(&i);
        if shard.shard().owns(h) {
            shard.insert_hash(h, i as i64 % 7 + 1).unwrap();
        }
    }
    vec![
        counter.to_bytes(),
        fixed.to_bytes(),
        maxi.to_bytes(),
        mini.to_bytes(),
        maxf.to_bytes(),
        minf.to_bytes(),
        vf32.to_bytes(),
        vf64.to_bytes(),
        sets.to_bytes(),
        setu.to_bytes(),
        sum.to_bytes(),
        cat.to_bytes(),
        shard.to_bytes(),
        shard_runs(),
        // Larger than the first read of a file (64 KiB), so that `load`
        // reads a header, then the rest: the table, or the side store.
        filled(60_000, Counter, Options::default(), 50_000, |i| {
            i as i64 % 300 + 1
        })
        .to_bytes(),
        filled(
            3000,
            SetUnion::<String>::new(),
            Options::default(),
            2500,
            |i| BTreeSet::from([format!("a longer value {i:>24}")]),
        )
        .to_bytes(),
    ]
}

/// The shard the corpus's runs are for: shard 1 of 4 of a counter.
fn runs_target() -> Maplet<Counter> {
    Maplet::with_shard(
        400,
        0.01,
        Counter,
        Options::default(),
        mappy_core::shard::Shard::new(1, 4).unwrap(),
    )
    .unwrap()
}

/// A run of keys for [`runs_target`], with repeated keys.
fn shard_runs() -> Vec<u8> {
    let m = runs_target();
    let hashes: Vec<u64> = (0..900u64).map(|i| m.hash(&(i % 600))).collect();
    let coded = m.encode_runs(&hashes).unwrap();
    coded.runs.into_iter().find(|r| r.0 == 1).unwrap().1
}

/// Decodes a mutated run and inserts its keys: the keys are the shard's,
/// in increasing order, each standing for at least one, and the insert
/// either keeps the table within the bits sent or is reported.
fn exercise_runs(input: &[u8]) -> Result<bool, String> {
    let mut m = runs_target();
    let keys = match m.decode_runs(&[input]) {
        Ok(k) => k,
        Err(MapletError::Corrupt(_) | MapletError::InvalidParameter(_)) => return Ok(false),
        Err(e) => return Err(format!("unexpected error {e}")),
    };
    if !keys.hashes.iter().all(|&h| m.shard().owns(h)) {
        return Err("a decoded key of another shard".into());
    }
    if !keys.hashes.windows(2).all(|w| w[0] < w[1]) || keys.counts.contains(&0) {
        return Err("decoded keys out of order or counted 0".into());
    }
    let pairs: Vec<(u64, i64)> = keys
        .hashes
        .iter()
        .zip(&keys.counts)
        .map(|(&h, &c)| (h, i64::try_from(c).unwrap_or(i64::MAX)))
        .collect();
    if m.insert_many_hashes(pairs).is_ok() {
        let _ = m.keeps_precision(keys.precision);
        m.verify()
            .map_err(|e| format!("a table built from runs fails verify: {e}"))?;
    }
    Ok(true)
}

fn u64_at(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(at..at + 8)?.try_into().ok()?))
}

fn put_u64(b: &mut [u8], at: usize, v: u64) {
    if at + 8 <= b.len() {
        b[at..at + 8].copy_from_slice(&v.to_le_bytes());
    }
}

/// An extreme or nearby number to put where `old` was.
fn nasty(rng: &mut Rng, old: u64) -> u64 {
    match rng.below(12) {
        0 => 0,
        1 => 1,
        2 => u64::MAX,
        3 => u64::MAX / 2,
        4 => 1 << 40,
        5 => 1 << 62,
        6 => old.wrapping_add(1),
        7 => old.wrapping_sub(1),
        8 => old.wrapping_mul(2),
        9 => old / 2,
        10 => 1 << rng.below(64),
        _ => rng.next(),
    }
}

/// Offset of the slot table in an encoding (from its operator-name length).
fn table_offset(b: &[u8]) -> usize {
    let name_len = b
        .get(20..24)
        .map_or(0, |x| u32::from_le_bytes(x.try_into().unwrap()) as usize);
    (616 + name_len.min(1 << 20)).next_multiple_of(8)
}

fn mutate(rng: &mut Rng, base: &[u8], other: &[u8]) -> Vec<u8> {
    let mut b = base.to_vec();
    for _ in 0..1 + rng.below(4) {
        let n = b.len().max(1);
        match rng.below(12) {
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
                // The header's sizes and counts: seed, expected items, rate,
                // limit, canonical, initial canonical, initial fbits, len,
                // W, S.
                let at = 24 + 8 * rng.below(10);
                let old = u64_at(&b, at).unwrap_or(0);
                let v = nasty(rng, old);
                put_u64(&mut b, at, v);
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
            5 => {
                // Header codes: flags, operator, widths, reserved; the name
                // length.
                if rng.below(3) == 0 {
                    let v = [0u32, 1, 3, 8, 255, 4096, u32::MAX, rng.next() as u32][rng.below(8)];
                    if b.len() >= 24 {
                        b[20..24].copy_from_slice(&v.to_le_bytes());
                    }
                } else {
                    let at = 12 + rng.below(8);
                    if at < b.len() {
                        b[at] = [0, 1, 2, 61, 62, 63, 64, 65, 255, rng.next() as u8][rng.below(10)];
                    }
                }
            }
            6 => {
                // A fingerprint-length count.
                let at = 104 + 8 * rng.below(64);
                let old = u64_at(&b, at).unwrap_or(0);
                let v = nasty(rng, old);
                put_u64(&mut b, at, v);
            }
            7 => {
                // A table header word: occupieds, runends or spills of a
                // pair of blocks (the stride from the widths).
                let t = table_offset(&b);
                let (fbits, vbits) = (
                    *b.get(17).unwrap_or(&8) as usize,
                    *b.get(18).unwrap_or(&8) as usize,
                );
                let stride = 5 + 2 * (fbits + vbits);
                let words = b.len().saturating_sub(t + 8) / 8;
                let pairs = words / stride.max(1);
                if pairs > 0 {
                    let at = t + 8 * (rng.below(pairs) * stride + rng.below(5));
                    let old = u64_at(&b, at).unwrap_or(0);
                    let v = match rng.below(4) {
                        0 => old ^ (1 << rng.below(64)),
                        1 => 0,
                        2 => u64::MAX,
                        _ => nasty(rng, old),
                    };
                    put_u64(&mut b, at, v);
                }
            }
            8 => {
                // Extension: bytes appended before the checksum, and now and
                // then the table or side-store size made to match them.
                let extra = 8 * (1 + rng.below(64));
                let at = b.len().saturating_sub(8);
                let fill: Vec<u8> = match rng.below(3) {
                    0 => vec![0; extra],
                    1 => vec![0xff; extra],
                    _ => (0..extra).map(|_| rng.next() as u8).collect(),
                };
                b.splice(at..at, fill);
                match rng.below(3) {
                    0 => {
                        let w = u64_at(&b, 88).unwrap_or(0);
                        put_u64(&mut b, 88, w.wrapping_add(extra as u64 / 8));
                    }
                    1 => {
                        let s = u64_at(&b, 96).unwrap_or(0);
                        put_u64(&mut b, 96, s.wrapping_add(extra as u64));
                    }
                    _ => {}
                }
            }
            9 => {
                // The side store: its count or a value's length.
                let t = table_offset(&b);
                let w = u64_at(&b, 88).unwrap_or(0).min(1 << 30) as usize;
                let side = t + 8 * w;
                if side + 8 <= b.len() {
                    if rng.below(2) == 0 {
                        let old = u64_at(&b, side).unwrap_or(0);
                        let v = nasty(rng, old);
                        put_u64(&mut b, side, v);
                    } else {
                        let at = side + 8 + rng.below(b.len() - side - 8 + 1);
                        let v = [
                            0u32,
                            1,
                            4,
                            u32::MAX,
                            u32::MAX - 1,
                            1 << 31,
                            rng.next() as u32,
                        ][rng.below(7)];
                        if at + 4 <= b.len() {
                            b[at..at + 4].copy_from_slice(&v.to_le_bytes());
                        }
                    }
                }
            }
            10 => {
                // A run of slot bits flipped inside the table.
                let t = table_offset(&b);
                if b.len() > t + 16 {
                    let i = t + rng.below(b.len() - t - 8);
                    let len = 1 + rng.below(16);
                    for x in b.iter_mut().skip(i).take(len) {
                        *x ^= rng.next() as u8;
                    }
                }
            }
            _ => {
                // Everything but the header replaced by another encoding's
                // tail, or the header by another's.
                let cut = 616.min(b.len()).min(other.len());
                if rng.below(2) == 0 {
                    b.truncate(cut);
                    b.extend_from_slice(&other[cut..]);
                } else {
                    b[..cut].copy_from_slice(&other[..cut]);
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

/// Checks that `input` read in place (`from_frozen_bytes`) gives what
/// `from_bytes` gave (`opened`): the same maplet or the same error; and
/// that changing it copies the table, leaving the bytes as they were.
fn same_when_frozen<O>(
    input: &[u8],
    op: O,
    opened: &mappy_core::Result<Maplet<O>>,
) -> Result<(), String>
where
    O: Operator + Clone,
    O::Value: ValueCodec + std::fmt::Debug,
{
    let owner: Arc<dyn FrozenBytes> = Arc::new(input.to_vec().into_boxed_slice());
    let frozen = Maplet::from_frozen_bytes(owner.clone(), op);
    match (opened, frozen) {
        (Ok(m), Ok(mut f)) => {
            if m.try_to_bytes().ok() != f.try_to_bytes().ok() {
                return Err("read in place, the maplet differs".into());
            }
            if let Some(e) = m.entries().next() {
                let _ = f.insert(&777u64, e.value);
                f.check_invariants();
            }
            if owner.bytes() != input {
                return Err("a change wrote into the frozen bytes".into());
            }
            Ok(())
        }
        (Err(a), Err(b)) if a.to_string() == b.to_string() => Ok(()),
        (a, b) => Err(format!(
            "read in place, the opening differs: {:?} against {:?}",
            a.as_ref().map(|m| m.len()),
            b.map(|m| m.len())
        )),
    }
}

/// How a case was opened.
#[derive(Clone, Copy)]
enum Mode {
    Bytes,
    File,
    Mmap,
}

const MODES: [&str; 3] = ["bytes", "file", "mmap"];

/// Opens `input` as a maplet of `op` the way `mode` says and exercises
/// it; `Ok(true)` if it opened, `Err` for a broken check.
fn exercise<O>(input: &[u8], op: O, mode: Mode, file: &Path) -> Result<bool, String>
where
    O: Operator + Clone,
    O::Value: ValueCodec + std::fmt::Debug,
{
    let opened = match mode {
        Mode::Bytes => Maplet::from_bytes(input, op.clone()),
        Mode::File => {
            std::fs::write(file, input).map_err(|e| e.to_string())?;
            Maplet::load(file, op.clone())
        }
        Mode::Mmap => {
            std::fs::write(file, input).map_err(|e| e.to_string())?;
            Maplet::load_mmap(file, op.clone())
        }
    };
    if let Mode::Bytes = mode {
        same_when_frozen(input, op.clone(), &opened)?;
    }
    let m = match opened {
        Ok(m) => m,
        Err(
            MapletError::Corrupt(_)
            | MapletError::Incompatible(_)
            | MapletError::InvalidParameter(_)
            | MapletError::OutOfMemory { .. },
        ) => return Ok(false),
        Err(e) => return Err(format!("unexpected error kind on opening: {e:?}")),
    };
    // Queries, iteration and figures: bounded, whatever the words.
    let mut hits = 0usize;
    for k in 0..200u64 {
        hits += m.query(&k).is_some() as usize;
        let _ = m.contains(&(k ^ 0xdead_beef));
    }
    let _ = m.query_many(&(0..64u64).collect::<Vec<_>>());
    let n = m.entries().take(1 << 20).count();
    let st = m.stats();
    let _ = (hits, n, st.expected_false_positive_rate);
    let verified = m.verify();
    match mode {
        Mode::Bytes | Mode::File => {
            verified.map_err(|e| format!("a decoded maplet fails verify: {e}"))?;
            let back = m
                .try_to_bytes()
                .map_err(|e| format!("re-encoding failed: {e}"))?;
            Maplet::from_bytes(&back, op.clone())
                .map_err(|e| format!("the re-encoding does not decode: {e}"))?;
            if n != m.len() {
                return Err(format!("{n} entries iterated, len() {}", m.len()));
            }
            let mut c = m.clone();
            if let Some(e) = m.entries().next() {
                let _ = c.insert(&12345u64, e.value);
            }
            c.check_invariants();
        }
        Mode::Mmap => {
            let mut w = m.try_clone().ok();
            if let Some(first) = m.entries().next() {
                // A mapped maplet refuses writes whatever its state.
                let mut m2 = Maplet::load_mmap(file, op.clone()).map_err(|e| e.to_string())?;
                if !matches!(
                    m2.insert(&1u64, first.value.clone()),
                    Err(MapletError::ReadOnly)
                ) {
                    return Err("a mapped maplet accepted an insert".into());
                }
                if !matches!(m2.clear(), Err(MapletError::ReadOnly)) {
                    return Err("a mapped maplet accepted clear".into());
                }
                if let Some(c) = &mut w {
                    let _ = c.insert(&1u64, first.value);
                }
            }
            match verified {
                Ok(()) => {
                    let back = m
                        .try_to_bytes()
                        .map_err(|e| format!("a verified map does not encode: {e}"))?;
                    Maplet::from_bytes(&back, op.clone())
                        .map_err(|e| format!("a verified map re-encodes badly: {e}"))?;
                    m.check_invariants();
                    if let Some(c) = w {
                        c.check_invariants();
                    }
                }
                Err(_) => {
                    if m.try_to_bytes().is_ok() {
                        return Err("a damaged map was re-encoded".into());
                    }
                    if w.is_some() {
                        return Err("a damaged map was copied by try_clone".into());
                    }
                    if Maplet::from_bytes(&m.to_bytes(), op.clone()).is_ok() {
                        return Err("to_bytes sealed a damaged map".into());
                    }
                    let mut c = m.clone();
                    if let Some(e) = m.entries().next() {
                        if !matches!(c.insert(&1u64, e.value), Err(MapletError::Corrupt(_))) {
                            return Err("a copy of a damaged map accepted an insert".into());
                        }
                    }
                }
            }
        }
    }
    Ok(true)
}

fn run_case(op: usize, input: &[u8], mode: Mode, file: &Path) -> Result<bool, String> {
    match op {
        0 | 1 | 12 => exercise(input, Counter, mode, file),
        2 => exercise(input, Max::<i64>::new(), mode, file),
        3 => exercise(input, Min::<i64>::new(), mode, file),
        4 => exercise(input, Max::<f64>::new(), mode, file),
        5 => exercise(input, Min::<f64>::new(), mode, file),
        6 => exercise(input, VectorAdd::<f32>::new(), mode, file),
        7 => exercise(input, VectorAdd::<f64>::new(), mode, file),
        8 => exercise(input, SetUnion::<String>::new(), mode, file),
        9 => exercise(input, SetUnion::<u64>::new(), mode, file),
        10 => exercise(input, sum_op(), mode, file),
        11 => exercise(input, concat_op(), mode, file),
        13 => exercise_runs(input),
        15 => exercise(input, SetUnion::<String>::new(), mode, file),
        _ => exercise(input, Counter, mode, file),
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let seconds: u64 = args.next().and_then(|s| s.parse().ok()).unwrap_or(10);
    let seed: u64 = args.next().and_then(|s| s.parse().ok()).unwrap_or(1);
    let corpus = corpus();
    cap_memory();
    // A file in memory where there is one: rewriting a file on disk for
    // every case would wait for the disk (ext4 flushes a truncated file on
    // close).
    let shm = Path::new("/dev/shm");
    let dir = if shm.is_dir() {
        shm.to_path_buf()
    } else {
        std::env::temp_dir()
    };
    let file = dir.join(format!("mappy-fuzz-{}.maplet", std::process::id()));
    let mut rng = Rng(seed);
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let (mut runs, mut accepted, mut failures) = (0u64, 0u64, 0u64);
    let mut per = [[(0u64, 0u64); 3]; NAMES.len()];
    std::panic::set_hook(Box::new(|info| eprintln!("fuzz_decode: panic: {info}")));
    while Instant::now() < deadline {
        for _ in 0..100 {
            let op = rng.below(corpus.len());
            let other = &corpus[rng.below(corpus.len())];
            let input = mutate(&mut rng, &corpus[op], other);
            let packed = op <= 5 || op == 14;
            let mode = match rng.below(8) {
                // Runs are bytes only (they are never files).
                _ if op == 13 => Mode::Bytes,
                0 => Mode::File,
                1..=3 if packed => Mode::Mmap,
                // A side-stored operator is refused at once: now and then.
                1 if !packed => Mode::Mmap,
                _ => Mode::Bytes,
            };
            let r = catch_unwind(AssertUnwindSafe(|| run_case(op, &input, mode, &file)));
            let ok = match r {
                Ok(Ok(ok)) => ok,
                Ok(Err(msg)) => {
                    failures += 1;
                    eprintln!(
                        "fuzz_decode: {} ({}): {msg}",
                        NAMES[op], MODES[mode as usize]
                    );
                    let _ = std::fs::write(format!("fuzz-failure-{failures}.bin"), &input);
                    false
                }
                Err(_) => {
                    failures += 1;
                    eprintln!(
                        "fuzz_decode: {} ({}): panicked",
                        NAMES[op], MODES[mode as usize]
                    );
                    let _ = std::fs::write(format!("fuzz-failure-{failures}.bin"), &input);
                    false
                }
            };
            runs += 1;
            accepted += ok as u64;
            let cell = &mut per[op][mode as usize];
            cell.0 += 1;
            cell.1 += ok as u64;
        }
    }
    let _ = std::fs::remove_file(&file);
    println!(
        "fuzz_decode: {runs} inputs in {seconds} s (seed {seed}), {accepted} opened, \
         {failures} failures (panics or broken checks), under a {} GiB address-space limit",
        MEMORY_CAP >> 30
    );
    println!("operator         bytes (opened)       file (opened)        mmap (opened)");
    for (name, cells) in NAMES.iter().zip(&per) {
        let cell = |(n, ok): (u64, u64)| format!("{n:>10} ({ok:>7})");
        println!(
            "{name:<14} {} {} {}",
            cell(cells[0]),
            cell(cells[1]),
            cell(cells[2])
        );
    }
    if failures > 0 {
        std::process::exit(1);
    }
}
