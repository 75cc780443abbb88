//! Every file is hostile: hostile bytes, hostile files, damaged memory
//! maps, memory caps and growth limits. Each case `fuzz_decode` found is
//! pinned here.

use std::collections::BTreeSet;
use std::path::PathBuf;

use mappy_core::{Counter, Custom, Maplet, MapletError, Max, Options, SetUnion, VectorAdd};

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("mappy-hostile-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn reseal(bytes: &mut [u8]) {
    let n = bytes.len() - 8;
    let sum = mappy_core::hash::hash_bytes(&bytes[..n], 0);
    bytes[n..].copy_from_slice(&sum.to_le_bytes());
}

fn put_u64(b: &mut [u8], at: usize, v: u64) {
    b[at..at + 8].copy_from_slice(&v.to_le_bytes());
}

fn counter(n: u64) -> Maplet<Counter> {
    let mut m = Maplet::new(100, 0.01, Counter).unwrap();
    for i in 0..n {
        m.insert(&i, i as i64 + 1).unwrap();
    }
    m
}

fn is_corrupt<T: std::fmt::Debug>(r: &Result<T, MapletError>) -> bool {
    matches!(r, Err(MapletError::Corrupt(_)))
}

type SumOp = Custom<i64, fn(&i64, &i64) -> mappy_core::Result<i64>>;

fn sum_op() -> SumOp {
    fn sum(a: &i64, b: &i64) -> mappy_core::Result<i64> {
        Ok(a + b)
    }
    Custom::new("sum", sum as fn(&i64, &i64) -> mappy_core::Result<i64>)
}

/// fuzz_decode, seed 42: a custom operator's name whose padding to a
/// multiple of 8 runs past the end of the data made `from_bytes` slice
/// past its input (a panic), before the sizes were checked.
#[test]
fn pinned_name_padding_past_the_end() {
    let mut m = Maplet::new(10, 0.01, sum_op()).unwrap();
    m.insert("a", 1).unwrap();
    let good = m.to_bytes();
    // Header and the three bytes of "sum", no table, no side store: the
    // padding (to byte 624) is missing.
    for pad in 0..5 {
        let mut b = good[..616 + 3].to_vec();
        put_u64(&mut b, 88, 0);
        put_u64(&mut b, 96, 0);
        b.extend(std::iter::repeat_n(0, pad));
        b.extend_from_slice(&[0; 8]);
        reseal(&mut b);
        assert!(is_corrupt(&Maplet::from_bytes(&b, sum_op())), "pad {pad}");
    }
}

/// Sizes the input cannot hold, and implausible parameters, are refused
/// before anything of the claimed size is allocated.
#[test]
fn claimed_sizes_are_checked_against_the_input() {
    let good = counter(300).to_bytes();
    let cases: &[(usize, u64)] = &[
        (88, u64::MAX),     // W
        (88, u64::MAX / 8), // W * 8 overflows nothing but exceeds the input
        (88, 1 << 40),
        (96, u64::MAX), // S
        (96, 1 << 40),
        (80, u64::MAX), // len
        (80, 1 << 40),
        (56, u64::MAX), // canonical
        (56, 1 << 60),
        (56, 0),
        (64, 0), // initial canonical
        (64, u64::MAX),
        (72, 63), // initial fbits
        (72, u64::MAX),
        (32, 0),                  // expected items
        (40, f64::NAN.to_bits()), // rate
        (40, 0),
        (104, u64::MAX), // a fingerprint-length count
    ];
    for &(at, v) in cases {
        let mut b = good.clone();
        put_u64(&mut b, at, v);
        reseal(&mut b);
        assert!(
            is_corrupt(&Maplet::from_bytes(&b, Counter)),
            "field at {at} = {v}"
        );
    }
    // Widths, flags and the name length.
    for (at, v) in [
        (17usize, 0u8),
        (17, 1),
        (17, 63),
        (17, 255),
        (18, 0),
        (18, 65),
        (18, 255),
        // Shard bits above 16, and a shard index past the count.
        (19, 17),
        (13, 1),
        (12, 0xf8),
    ] {
        let mut b = good.clone();
        b[at] = v;
        reseal(&mut b);
        assert!(Maplet::from_bytes(&b, Counter).is_err(), "byte {at} = {v}");
    }
    for name_len in [1u32, 7, 8, 4096, u32::MAX] {
        let mut b = good.clone();
        b[20..24].copy_from_slice(&name_len.to_le_bytes());
        reseal(&mut b);
        assert!(
            Maplet::from_bytes(&b, Counter).is_err(),
            "name_len {name_len}"
        );
    }
}

/// A side store that claims more values than it holds, a value length past
/// its end, or a slot referring past the store's end.
#[test]
fn side_store_sizes_are_checked() {
    let mut m = Maplet::new(20, 0.01, VectorAdd::<f64>::new()).unwrap();
    for i in 0..10u64 {
        m.insert(&i, vec![i as f64; 4]).unwrap();
    }
    let good = m.to_bytes();
    let w = u64::from_le_bytes(good[88..96].try_into().unwrap()) as usize;
    let side = 616 + 8 * w;
    for count in [11u64, 1 << 40, u64::MAX] {
        let mut b = good.clone();
        put_u64(&mut b, side, count);
        reseal(&mut b);
        assert!(
            is_corrupt(&Maplet::from_bytes(&b, VectorAdd::<f64>::new())),
            "{count}"
        );
    }
    for len in [33u32, 1 << 31, u32::MAX - 1] {
        let mut b = good.clone();
        b[side + 8..side + 12].copy_from_slice(&len.to_le_bytes());
        reseal(&mut b);
        assert!(
            is_corrupt(&Maplet::from_bytes(&b, VectorAdd::<f64>::new())),
            "{len}"
        );
    }
    // Fewer values than slots refer to: slot indices past the end.
    let mut b = good.clone();
    put_u64(&mut b, side, 9);
    let cut = b.len() - 8 - (4 + 32);
    b.drain(cut..b.len() - 8);
    reseal(&mut b);
    assert!(is_corrupt(&Maplet::from_bytes(&b, VectorAdd::<f64>::new())));
}

/// `load`, `load_with` and `load_mmap` read regular files only.
#[test]
fn only_regular_files_are_loaded() {
    let dir = temp_dir("irregular");
    assert!(is_corrupt(&Maplet::load(&dir, Counter)));
    assert!(is_corrupt(&Maplet::load_mmap(&dir, Counter)));
    for dev in ["/dev/zero", "/dev/null", "/dev/urandom"] {
        if std::path::Path::new(dev).exists() {
            assert!(is_corrupt(&Maplet::load(dev, Counter)), "{dev}");
            assert!(is_corrupt(&Maplet::load_mmap(dev, Counter)), "{dev}");
        }
    }
    #[cfg(target_os = "linux")]
    {
        // A FIFO with no writer: opening it must not block.
        let fifo = dir.join("fifo");
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: mkfifo reads the path only.
        #[allow(unsafe_code)]
        let r = unsafe { libc::mkfifo(c.as_ptr(), 0o600) };
        assert_eq!(r, 0);
        assert!(is_corrupt(&Maplet::load(&fifo, Counter)));
        assert!(is_corrupt(&Maplet::load_mmap(&fifo, Counter)));
        // Nor is a FIFO replaced by save.
        let err = counter(5).save(&fifo).unwrap_err();
        assert!(
            matches!(&err, MapletError::Io(e) if e.kind() == std::io::ErrorKind::InvalidInput),
            "{err}"
        );
        assert!(std::fs::symlink_metadata(&fifo)
            .unwrap()
            .file_type()
            .is_fifo_like());
    }
    // An empty file and a short one.
    let f = dir.join("short");
    std::fs::write(&f, b"").unwrap();
    assert!(is_corrupt(&Maplet::load(&f, Counter)));
    assert!(is_corrupt(&Maplet::load_mmap(&f, Counter)));
    std::fs::write(&f, b"MAPPYMAP").unwrap();
    assert!(is_corrupt(&Maplet::load_mmap(&f, Counter)));
    std::fs::remove_dir_all(&dir).unwrap();
}

trait FifoLike {
    fn is_fifo_like(&self) -> bool;
}

impl FifoLike for std::fs::FileType {
    fn is_fifo_like(&self) -> bool {
        #[cfg(unix)]
        {
            use std::os::unix::fs::FileTypeExt;
            self.is_fifo()
        }
        #[cfg(not(unix))]
        false
    }
}

/// `save` replaces only regular files, and a symbolic link itself.
#[test]
fn save_replaces_only_regular_files_and_links() {
    let dir = temp_dir("save");
    let m = counter(50);
    let sub = dir.join("a-directory");
    std::fs::create_dir(&sub).unwrap();
    let err = m.save(&sub).unwrap_err();
    assert!(
        matches!(&err, MapletError::Io(e) if e.kind() == std::io::ErrorKind::InvalidInput),
        "{err}"
    );
    assert!(sub.is_dir());
    if std::path::Path::new("/dev/null").exists() {
        let err = m.save("/dev/null").unwrap_err();
        assert!(
            matches!(&err, MapletError::Io(e) if e.kind() == std::io::ErrorKind::InvalidInput),
            "{err}"
        );
    }
    // Nothing was left behind in the folder.
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1);
    #[cfg(unix)]
    {
        let target = dir.join("target");
        std::fs::write(&target, b"keep me").unwrap();
        let link = dir.join("link");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        m.save(&link).unwrap();
        assert_eq!(std::fs::read(&target).unwrap(), b"keep me");
        assert!(std::fs::symlink_metadata(&link).unwrap().is_file());
        let back = Maplet::load(&link, Counter).unwrap();
        assert_eq!(back.query(&7u64), m.query(&7u64));
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Damaged words in a mapped file: queries and iteration stay bounded and
/// never panic; `verify` reports the damage; nothing copies or re-seals it.
#[test]
fn damaged_maps_never_panic_and_are_never_resealed() {
    let dir = temp_dir("mmap");
    let path = dir.join("m.maplet");
    let m = counter(2000);
    let good = m.to_bytes();
    let w = u64::from_le_bytes(good[88..96].try_into().unwrap()) as usize;
    let mut rng = 0x1234_5678_u64;
    let mut next = || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let mut damaged = 0;
    for case in 0..300 {
        let mut b = good.clone();
        // Header words of the pairs (occupieds, runends, spills) or slots.
        for _ in 0..1 + case % 4 {
            let word = (next() as usize) % w;
            let v = match next() % 4 {
                0 => 0,
                1 => u64::MAX,
                2 => next(),
                _ => {
                    u64::from_le_bytes(b[616 + 8 * word..624 + 8 * word].try_into().unwrap())
                        ^ (1 << (next() % 64))
                }
            };
            put_u64(&mut b, 616 + 8 * word, v);
        }
        if case % 2 == 0 {
            reseal(&mut b);
        }
        std::fs::write(&path, &b).unwrap();
        let mut mapped = Maplet::load_mmap(&path, Counter).unwrap();
        for i in 0..3000u64 {
            let _ = mapped.query(&i);
        }
        let _ = mapped.entries().count();
        let _ = mapped.stats();
        // Writes are refused whatever the state.
        assert!(matches!(
            mapped.insert(&1u64, 1),
            Err(MapletError::ReadOnly)
        ));
        assert!(matches!(mapped.remove(&1u64), Err(MapletError::ReadOnly)));
        assert!(matches!(
            mapped.delete(&1u64, &1),
            Err(MapletError::ReadOnly)
        ));
        assert!(matches!(mapped.clear(), Err(MapletError::ReadOnly)));
        assert!(matches!(
            mapped.insert_many_hashes(vec![(1, 1); 2000]),
            Err((0, MapletError::ReadOnly))
        ));
        assert!(matches!(
            mapped.insert_hashes_with_value(&[1, 2, 3], 1),
            Err((0, MapletError::ReadOnly))
        ));
        assert!(matches!(mapped.merge(&m), Err(MapletError::ReadOnly)));
        if mapped.verify().is_ok() {
            // Flips that left a valid table (and a resealed checksum).
            mapped.check_invariants();
            continue;
        }
        damaged += 1;
        assert!(!mapped.is_verified());
        assert!(is_corrupt(&mapped.try_to_bytes()));
        assert!(is_corrupt(&mapped.try_clone()));
        assert!(is_corrupt(&mapped.save(dir.join("copy"))));
        assert!(!dir.join("copy").exists());
        assert!(Maplet::from_bytes(&mapped.to_bytes(), Counter).is_err());
        let mut copy = mapped.clone();
        assert!(is_corrupt(&copy.insert(&1u64, 1)));
        assert!(is_corrupt(&copy.try_to_bytes()));
        let mut other = m.clone();
        assert!(is_corrupt(&other.merge(&mapped)));
        assert_eq!(other.query(&5u64), m.query(&5u64));
        assert!(is_corrupt(
            &mapped.map_values(Max::<i64>::new(), |v| Ok(*v))
        ));
    }
    assert!(damaged > 100, "{damaged}");
    // An undamaged map: cloned, saved and merged from after its verify.
    std::fs::write(&path, &good).unwrap();
    let mapped = Maplet::load_mmap(&path, Counter).unwrap();
    assert!(!mapped.is_verified());
    let copy = mapped.try_clone().unwrap();
    assert!(mapped.is_verified());
    assert_eq!(copy.to_bytes(), good);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The memory limit counts side-stored values, refusing an insert or a
/// merge that would pass it and changing nothing; clones keep the limit.
#[test]
fn memory_limit_counts_side_values_and_survives_clone_and_merge() {
    let limit = 256 << 10;
    let opts = Options {
        memory_limit: Some(limit),
        ..Options::default()
    };
    let mut m = Maplet::with_options(100, 0.01, VectorAdd::<f64>::new(), opts).unwrap();
    let mut refused = None;
    for i in 0..1000u64 {
        match m.insert(&i, vec![1.0; 1000]) {
            Ok(()) => assert!(m.memory_usage() <= limit, "{}", m.memory_usage()),
            Err(e) => {
                refused = Some((i, e));
                break;
            }
        }
    }
    let (at, e) = refused.expect("8 KB vectors pass a 256 KB limit");
    assert!(matches!(e, MapletError::MemoryLimit { .. }), "{e}");
    assert!(at < 40, "{at}");
    let (len, usage) = (m.len(), m.memory_usage());
    assert!(m.query(&at).is_none());
    // A clone keeps the limit and refuses the same insert.
    let mut c = m.clone();
    assert_eq!(c.memory_limit(), Some(limit));
    assert!(matches!(
        c.insert(&at, vec![1.0; 1000]),
        Err(MapletError::MemoryLimit { .. })
    ));
    // A merge that would pass the limit changes nothing.
    let mut other = Maplet::with_options(100, 0.01, VectorAdd::<f64>::new(), opts).unwrap();
    for i in 5000..5010u64 {
        other.insert(&i, vec![2.0; 1000]).unwrap();
    }
    assert!(matches!(
        m.merge(&other),
        Err(MapletError::MemoryLimit { .. })
    ));
    assert_eq!((m.len(), m.memory_usage()), (len, usage));
    assert!(m.query(&5000u64).is_none());

    // Sets that grow by merging count too.
    let mut sets = Maplet::with_options(10, 0.01, SetUnion::<u64>::new(), opts).unwrap();
    let mut hit = false;
    for i in 0..100_000u64 {
        match sets.insert("k", BTreeSet::from([i])) {
            Ok(()) => assert!(sets.memory_usage() <= limit),
            Err(e) => {
                assert!(matches!(e, MapletError::MemoryLimit { .. }), "{e}");
                assert_eq!(sets.query("k").unwrap().len() as u64, i);
                hit = true;
                break;
            }
        }
    }
    assert!(hit);
}

/// With fixed precision from a tiny start, growth never duplicates entries
/// or runs away: `len()` stays at most the distinct keys inserted, no
/// answer is below the truth, and once the fingerprints have no bits left
/// the next doubling is refused with `CapacityExhausted`, changing nothing.
/// Prints the false-positive rates after 16x, 64x and 1000x growth (see
/// `Options::fixed_precision`).
/// Inserts keys `0..limit` with count 1 until growth is refused with
/// `CapacityExhausted`, checking that entries never outnumber the keys
/// inserted and calling `each` after every insert; the number inserted.
/// Panics if the maplet grew without limit.
fn fill_until_refused(
    m: &mut Maplet<Counter>,
    limit: u64,
    mut each: impl FnMut(&Maplet<Counter>),
) -> u64 {
    let mut inserted = 0u64;
    for i in 0..limit {
        match m.insert(&i, 1) {
            Ok(()) => inserted += 1,
            Err(MapletError::CapacityExhausted(_)) => return inserted,
            Err(e) => panic!("{e}"),
        }
        assert!(m.len() as u64 <= inserted, "entries duplicated");
        each(m);
    }
    panic!("a maplet grew past {limit} keys without limit");
}

/// After a refusal, 100 new keys from `from`: each joins an entry it
/// matches or is refused (some are), and no entry is added; the keys that
/// joined.
fn refusals_change_nothing(m: &mut Maplet<Counter>, from: u64) -> Vec<u64> {
    let (len, cap) = (m.len(), m.capacity());
    let mut joined = Vec::new();
    let mut refused = 0;
    for k in from..from + 100 {
        match m.insert(&k, 1) {
            Ok(()) => joined.push(k),
            Err(MapletError::CapacityExhausted(_)) => refused += 1,
            Err(e) => panic!("{e}"),
        }
    }
    assert!(refused > 0);
    assert_eq!((m.len(), m.capacity()), (len, cap));
    joined
}

#[test]
fn fixed_precision_growth_is_bounded() {
    for start in [1usize, 8] {
        let opts = Options {
            fixed_precision: true,
            ..Options::default()
        };
        let mut m = Maplet::with_options(start, 0.01, Counter, opts).unwrap();
        let initial = m.capacity();
        let mut measured: Vec<(u64, f64)> = Vec::new();
        let inserted = fill_until_refused(&mut m, 1_000_000, |m| {
            let growth = m.capacity() / initial;
            if [16, 64, 1024].contains(&growth) && measured.last().is_none_or(|&(g, _)| g != growth)
            {
                let fp = (10_000_000..10_100_000u64)
                    .filter(|k| m.contains(k))
                    .count();
                measured.push((growth, fp as f64 / 100_000.0));
            }
        });
        let (len, cap) = (m.len(), m.capacity());
        refusals_change_nothing(&mut m, 2_000_000);
        // Present keys still answer at least their count.
        assert!((0..inserted).all(|i| m.query(&i).is_some_and(|v| v >= 1)));
        m.check_invariants();
        eprintln!(
            "fixed precision from {start}: {inserted} keys, {len} entries, capacity {cap} \
             ({}x); false-positive rate by growth: {measured:?}",
            cap / initial
        );
    }
}

/// With default options growth is bounded too: entries written after a
/// doubling get longer fingerprints, but the entries written at the initial
/// size lose one bit per doubling, and once they have none left the next
/// doubling is refused with `CapacityExhausted` rather than copying them
/// into both halves. Until then nothing is duplicated and no answer is below
/// the truth; the refusal changes nothing. Prints the growth reached and the
/// false-positive rate there (see `Options::fixed_precision`).
#[test]
fn default_growth_never_duplicates_entries() {
    // Every size and rate reserves the same reach (checked cheaply by
    // `every_maplet_reserves_the_minimum_reach`); this grows the smallest.
    for (start, rate) in [(1usize, 0.01)] {
        let mut m = Maplet::new(start, rate, Counter).unwrap();
        let initial = m.capacity();
        let inserted = fill_until_refused(&mut m, 10_000_000, |_| ());
        let (len, cap) = (m.len(), m.capacity());
        let growth = cap / initial;
        // The bound: 2^(f - 1)-fold for the initial field width f, which is
        // wide enough to reach MIN_REACH home slots.
        assert!(growth.is_power_of_two(), "{growth}");
        assert!(cap >= mappy_core::MIN_REACH, "grew only to {cap} slots");
        let joined = refusals_change_nothing(&mut m, 20_000_000);
        assert!((0..inserted).all(|i| m.query(&i).is_some_and(|v| v >= 1)));
        // Deleting what was inserted empties it: no copy is left behind.
        for i in (0..inserted).chain(joined) {
            m.delete(&i, &1).unwrap();
        }
        assert_eq!(m.len(), 0);
        m.check_invariants();
        eprintln!(
            "default options from {start} at {rate}: {inserted} keys, {len} entries, \
             {growth}x growth when refused"
        );
    }
}

/// A maplet with default options is wide enough for its oldest entries to
/// keep a fingerprint bit through every doubling up to `MIN_REACH` home
/// slots, and no wider than its rate needs once it is that large.
#[test]
fn every_maplet_reserves_the_minimum_reach() {
    for rate in [0.5, 0.1, 0.01, 0.001, 1e-6] {
        for expected in [1usize, 10, 1000, 100_000, 1 << 20, 1 << 22] {
            let m = Maplet::new(expected, rate, Counter).unwrap();
            let f = m.stats().fingerprint_bits;
            let slots = m.capacity();
            assert!(
                (slots as u128) << (f - 1) >= mappy_core::MIN_REACH as u128,
                "{expected} at {rate}: {f} bits on {slots} slots"
            );
            if slots >= mappy_core::MIN_REACH {
                let exact = Maplet::with_options(
                    expected,
                    rate,
                    Counter,
                    Options {
                        fixed_precision: true,
                        ..Options::default()
                    },
                )
                .unwrap();
                assert_eq!(
                    f + 3,
                    exact.stats().fingerprint_bits,
                    "{expected} at {rate}"
                );
            }
        }
    }
}

/// Run in a child process under a 1 GiB address-space limit (see
/// `huge_tables_fail_cleanly_under_a_memory_cap`); does nothing otherwise.
#[test]
fn memory_cap_child() {
    if std::env::var_os("MAPPY_MEMORY_CAP_CHILD").is_none() {
        return;
    }
    #[cfg(target_os = "linux")]
    {
        let lim = libc::rlimit {
            rlim_cur: 1 << 30,
            rlim_max: 1 << 30,
        };
        // SAFETY: setrlimit reads the struct only; lowering our own limit
        // is always allowed.
        #[allow(unsafe_code)]
        let r = unsafe { libc::setrlimit(libc::RLIMIT_AS, &lim) };
        assert_eq!(r, 0);
    }
    for n in [1usize << 40, 1 << 38, 1 << 34] {
        let r = Maplet::with_options(n, 0.01, Counter, Options::default());
        assert!(
            matches!(r, Err(MapletError::OutOfMemory { .. })),
            "{n}: {r:?}"
        );
    }
    for n in [usize::MAX / 2, 1 << 60] {
        assert!(Maplet::new(n, 0.01, Counter).is_err());
    }
    // Widening every value of a large table to 64 bits needs more than the
    // cap: refused, nothing changed.
    let mut m = Maplet::new(1 << 27, 0.01, Counter).unwrap();
    m.insert("a", 1).unwrap();
    let before = (m.len(), m.memory_usage());
    let r = m.insert("b", i64::MAX);
    assert!(matches!(r, Err(MapletError::OutOfMemory { .. })), "{r:?}");
    assert_eq!((m.len(), m.memory_usage()), before);
    assert_eq!(m.query("a"), Some(1));
    assert!(matches!(
        m.try_clone().map(|_| ()),
        Ok(()) | Err(MapletError::OutOfMemory { .. })
    ));
    println!("memory cap child: ok");
}

#[test]
#[cfg(target_os = "linux")]
fn huge_tables_fail_cleanly_under_a_memory_cap() {
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "memory_cap_child",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("MAPPY_MEMORY_CAP_CHILD", "1")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("memory cap child: ok"),
        "status {:?}\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}
