//! Saving, loading and memory-mapping maplets, and reading hostile bytes.

use std::collections::BTreeSet;
use std::sync::Arc;

use mappy_core::{
    AnyMaplet, Counter, Custom, FrozenBytes, Maplet, MapletError, Max, Options, SetUnion, VectorAdd,
};
use proptest::prelude::*;

fn sample_counter(n: u64) -> Maplet<Counter> {
    let mut m = Maplet::with_options(
        50,
        0.01,
        Counter,
        Options {
            seed: 7,
            memory_limit: Some(1 << 30),
            ..Options::default()
        },
    )
    .unwrap();
    for i in 0..n {
        m.insert(
            &i,
            if i % 7 == 0 {
                -(i as i64)
            } else {
                (i * i) as i64
            },
        )
        .unwrap();
    }
    m
}

fn temp_path(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("mappy-test-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join("m.maplet")
}

#[test]
fn round_trips_keep_every_entry_and_parameter() {
    let m = sample_counter(3000); // grows from 50 and goes signed
    let back = Maplet::from_bytes(&m.to_bytes(), Counter).unwrap();
    assert_eq!(
        back.entries().collect::<Vec<_>>(),
        m.entries().collect::<Vec<_>>()
    );
    assert_eq!(
        (back.seed(), back.memory_limit(), back.capacity()),
        (7, Some(1 << 30), m.capacity())
    );
    assert_eq!(back.stats(), m.stats());
    back.check_invariants();
    // The encoding costs about the maplet's memory.
    assert!(m.to_bytes().len() <= m.memory_usage() + 1024);

    let mut mx = Maplet::new(100, 0.001, Max::<f64>::new()).unwrap();
    mx.insert("a", -2.5).unwrap();
    mx.insert("b", 1e300).unwrap();
    let back = Maplet::from_bytes(&mx.to_bytes(), Max::<f64>::new()).unwrap();
    assert_eq!(
        (back.query("a"), back.query("b")),
        (Some(-2.5), Some(1e300))
    );

    let mut sets = Maplet::new(100, 0.01, SetUnion::<String>::new()).unwrap();
    for i in 0..300 {
        sets.insert(&(i % 40), BTreeSet::from([format!("v{i}")]))
            .unwrap();
    }
    sets.remove(&3u64).unwrap();
    let back = Maplet::from_bytes(&sets.to_bytes(), SetUnion::<String>::new()).unwrap();
    assert_eq!(
        back.entries().collect::<Vec<_>>(),
        sets.entries().collect::<Vec<_>>()
    );

    let mut vecs = Maplet::new(10, 0.01, VectorAdd::<f32>::new()).unwrap();
    vecs.insert("x", vec![1.0, 2.0]).unwrap();
    vecs.insert("x", vec![0.5, 0.5]).unwrap();
    let back = Maplet::from_bytes(&vecs.to_bytes(), VectorAdd::<f32>::new()).unwrap();
    assert_eq!(back.query("x"), Some(vec![1.5, 2.5]));

    let op = || Custom::new("concat", |a: &String, b: &String| Ok(format!("{a}{b}")));
    let mut c = Maplet::new(10, 0.01, op()).unwrap();
    c.insert("k", "ab".to_string()).unwrap();
    c.insert("k", "cd".to_string()).unwrap();
    let back = Maplet::from_bytes(&c.to_bytes(), op()).unwrap();
    assert_eq!(back.query("k").as_deref(), Some("abcd"));
}

#[test]
fn wrong_operator_version_or_magic_is_a_clear_error() {
    let bytes = sample_counter(100).to_bytes();
    let err = Maplet::from_bytes(&bytes, Max::<i64>::new()).unwrap_err();
    assert!(matches!(err, MapletError::Incompatible(_)), "{err}");
    let mut v2 = bytes.clone();
    v2[8] = 2;
    let err = Maplet::from_bytes(&v2, Counter).unwrap_err();
    assert!(err.to_string().contains("version 2"), "{err}");
    let err = Maplet::from_bytes(b"hello world", Counter).unwrap_err();
    assert!(matches!(err, MapletError::Corrupt(_)), "{err}");
}

#[test]
fn every_truncation_is_an_error() {
    let bytes = sample_counter(200).to_bytes();
    for n in 0..bytes.len() {
        assert!(
            Maplet::from_bytes(&bytes[..n], Counter).is_err(),
            "accepted {n} of {} bytes",
            bytes.len()
        );
    }
}

/// Replaces the checksum so that mutations reach the structural checks.
fn reseal(bytes: &mut [u8]) {
    let n = bytes.len() - 8;
    let sum = xxhash_rust_free_checksum(&bytes[..n]);
    bytes[n..].copy_from_slice(&sum.to_le_bytes());
}

fn xxhash_rust_free_checksum(body: &[u8]) -> u64 {
    // The same checksum the format uses, through the public hash function.
    mappy_core::hash::hash_bytes(body, 0)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    /// Hostile bytes (valid checksum, anything inside) never panic, and what
    /// they decode to passes every invariant.
    #[test]
    fn hostile_bytes_never_panic(flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6), cut in any::<prop::sample::Index>(), truncate in any::<bool>()) {
        let mut bytes = sample_counter(150).to_bytes();
        for (at, x) in flips {
            let i = at.index(bytes.len() - 8);
            bytes[i] ^= x | 1;
        }
        if truncate {
            let n = 16 + cut.index(bytes.len() - 16);
            bytes.truncate(n);
        }
        if bytes.len() >= 8 {
            reseal(&mut bytes);
        }
        if let Ok(m) = Maplet::from_bytes(&bytes, Counter) {
            m.check_invariants();
            let _ = m.query("anything");
        }
        let frozen = Maplet::from_frozen_bytes(Arc::new(bytes.clone().into_boxed_slice()), Counter);
        prop_assert_eq!(
            frozen.map(|m| m.to_bytes()).map_err(|e| e.to_string()),
            Maplet::from_bytes(&bytes, Counter).map(|m| m.to_bytes()).map_err(|e| e.to_string())
        );
        let mut sets = Maplet::new(20, 0.01, SetUnion::<String>::new()).unwrap();
        sets.insert("a", BTreeSet::from(["x".to_string()])).unwrap();
        let _ = Maplet::from_bytes(&bytes, SetUnion::<String>::new());
    }
}

#[test]
fn save_is_atomic_and_load_round_trips() {
    let path = temp_path("save");
    let m = sample_counter(500);
    m.save(&path).unwrap();
    let dir = path.parent().unwrap();
    assert_eq!(
        std::fs::read_dir(dir).unwrap().count(),
        1,
        "a temporary file was left behind"
    );
    // The file, written as it is made, holds exactly the bytes in memory.
    assert!(std::fs::read(&path).unwrap() == m.to_bytes());
    let back = Maplet::load(&path, Counter).unwrap();
    assert_eq!(
        back.entries().collect::<Vec<_>>(),
        m.entries().collect::<Vec<_>>()
    );
    // Saving over a file replaces it whole.
    sample_counter(10).save(&path).unwrap();
    assert_eq!(
        Maplet::load(&path, Counter).unwrap().len(),
        sample_counter(10).len()
    );
    // A failing save (no such folder) leaves nothing behind and says why.
    let err = m.save(dir.join("missing/m.maplet")).unwrap_err();
    assert!(matches!(err, MapletError::Io(_)), "{err}");
    // A writer that fails part-way leaves the file as it was, and no
    // temporary file behind.
    let kept = std::fs::read(&path).unwrap();
    let err = mappy_core::format::write_atomic_with(&path, |f| {
        std::io::Write::write_all(f, b"half a maplet")?;
        Err(MapletError::InvalidValue("stopped".into()))
    })
    .unwrap_err();
    assert!(matches!(err, MapletError::InvalidValue(_)), "{err}");
    assert!(std::fs::read(&path).unwrap() == kept);
    assert_eq!(std::fs::read_dir(dir).unwrap().count(), 1);
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn memory_mapped_maplets_answer_and_refuse_writes() {
    let path = temp_path("mmap");
    let m = sample_counter(2000);
    m.save(&path).unwrap();
    let mut mapped = Maplet::load_mmap(&path, Counter).unwrap();
    assert!(mapped.is_read_only());
    assert_eq!(mapped.memory_usage(), 0);
    for i in 0..2000u64 {
        assert_eq!(mapped.query(&i), m.query(&i));
    }
    mapped.verify().unwrap();
    assert!(matches!(mapped.insert("x", 1), Err(MapletError::ReadOnly)));
    assert!(matches!(mapped.remove(&1u64), Err(MapletError::ReadOnly)));
    assert!(matches!(mapped.clear(), Err(MapletError::ReadOnly)));
    let counted = mappy_core::kmer::count_sequences(&mut mapped, [&b"ACGTACGT"[..]], 3, true);
    assert!(matches!(counted, Err(MapletError::ReadOnly)), "{counted:?}");
    assert!(mapped.is_read_only() && mapped.memory_usage() == 0);
    assert_eq!(mapped.query(&1u64), m.query(&1u64));
    let mut copy = mapped.clone();
    assert!(!copy.is_read_only());
    copy.insert("x", 1).unwrap();
    assert!(Maplet::load_mmap(&path, Max::<i64>::new()).is_err());
    let sets = Maplet::new(20, 0.01, SetUnion::<String>::new()).unwrap();
    sets.save(&path).unwrap();
    assert!(matches!(
        Maplet::load_mmap(&path, SetUnion::<String>::new()),
        Err(MapletError::InvalidParameter(_))
    ));
    std::fs::remove_dir_all(path.parent().unwrap()).unwrap();
}

#[test]
fn fixed_precision_survives_a_round_trip() {
    let fixed = Options {
        fixed_precision: true,
        ..Options::default()
    };
    let mut m = Maplet::with_options(50, 0.01, Counter, fixed).unwrap();
    for i in 0..400u64 {
        m.insert(&i, 1).unwrap();
    }
    let back = Maplet::from_bytes(&m.to_bytes(), Counter).unwrap();
    assert!(back.options().fixed_precision);
    assert_eq!(
        back.entries().collect::<Vec<_>>(),
        m.entries().collect::<Vec<_>>()
    );
    let plain = Maplet::new(50, 0.01, Counter).unwrap();
    assert!(matches!(
        m.clone().merge(&plain),
        Err(MapletError::Incompatible(_))
    ));
}

/// A file large enough to be read in pieces (its header first, then its
/// table in two halves on two threads) loads exactly as its bytes do, and
/// damage anywhere, a resealed change to the header's name length, or a
/// cut at any of several points, is refused by both with the same error.
#[test]
fn large_files_load_as_their_bytes_and_refuse_damage() {
    let mut m = Maplet::new(6_000_000, 0.01, Counter).unwrap();
    let keys: Vec<u64> = (0..5_500_000u64).collect();
    let values = keys
        .iter()
        .map(|k| (k * 7919 % (1 << 20)) as i64 + 2)
        .collect();
    m.insert_many(&keys, values).unwrap();
    let bytes = m.to_bytes();
    assert!(bytes.len() > 2 * (8 << 20), "{} bytes", bytes.len());
    let path = temp_path("large");
    std::fs::write(&path, &bytes).unwrap();
    let loaded = Maplet::load(&path, Counter).unwrap();
    assert_eq!(loaded.to_bytes(), bytes);
    assert_eq!(loaded.query(&12345u64), m.query(&12345u64));
    let n = bytes.len();
    let mut cases: Vec<(String, Vec<u8>)> = Vec::new();
    for at in [
        0,
        9,
        16,
        60,
        300,
        600,
        700,
        n / 4,
        n / 2 - 3,
        n / 2 + 5,
        n - 300,
        n - 9,
        n - 1,
    ] {
        let mut b = bytes.clone();
        b[at] ^= 0x10;
        cases.push((format!("flip at {at}"), b));
    }
    for len in [
        n - 1,
        n - 8,
        n / 2,
        (64 << 10) + 3,
        64 << 10,
        (64 << 10) - 1,
        700,
        40,
    ] {
        cases.push((format!("cut to {len}"), bytes[..len].to_vec()));
    }
    // Name lengths that move where the table starts, the checksum made
    // right again, so the structure itself is what is refused.
    for name_len in [1u32, 8, 4096, 70_000, u32::MAX] {
        let mut b = bytes.clone();
        b[20..24].copy_from_slice(&name_len.to_le_bytes());
        reseal(&mut b);
        cases.push((format!("name length {name_len}"), b));
    }
    for (what, b) in cases {
        std::fs::write(&path, &b).unwrap();
        let from_file = Maplet::load(&path, Counter);
        let from_bytes = Maplet::from_bytes(&b, Counter);
        assert!(
            matches!(
                from_file,
                Err(MapletError::Corrupt(_) | MapletError::Incompatible(_))
            ),
            "{what}: {:?}",
            from_file.map(|m| m.len())
        );
        assert_eq!(
            from_file.unwrap_err().to_string(),
            from_bytes.unwrap_err().to_string(),
            "{what}"
        );
        let frozen = Maplet::from_frozen_bytes(Arc::new(b.clone().into_boxed_slice()), Counter);
        assert_eq!(
            frozen.unwrap_err().to_string(),
            Maplet::from_bytes(&b, Counter).unwrap_err().to_string(),
            "{what}"
        );
        let any =
            mappy_core::AnyMaplet::<Custom<i64, fn(&i64, &i64) -> mappy_core::Result<i64>>>::load(
                &path,
                |_| unreachable!("no custom operator"),
                |_| unreachable!("no side store"),
            );
        assert!(any.is_err(), "{what}");
    }
    std::fs::remove_dir_all(path.parent().unwrap()).unwrap();
}

/// Frozen bytes at an odd address: their table cannot be read in place.
struct Misaligned(Box<[u8]>);

// SAFETY: a boxed slice's bytes stay put and are never written while shared.
#[allow(unsafe_code)]
unsafe impl FrozenBytes for Misaligned {
    fn bytes(&self) -> &[u8] {
        &self.0[1..]
    }
}

#[test]
fn frozen_bytes_are_read_in_place_until_the_first_change() {
    let m = sample_counter(3000);
    let bytes = m.to_bytes();
    let owner: Arc<dyn FrozenBytes> = Arc::new(bytes.clone().into_boxed_slice());
    let mut read = Maplet::from_frozen_bytes(owner.clone(), Counter).unwrap();
    // The maplet holds the bytes (no copy), answers as the original does
    // and writes the same bytes back.
    assert_eq!(Arc::strong_count(&owner), 2);
    assert_eq!(read.to_bytes(), bytes);
    for i in 0..3000u64 {
        assert_eq!(read.query(&i), m.query(&i));
    }
    let copy = read.clone();
    assert_eq!(Arc::strong_count(&owner), 2, "a clone copies");
    // The first change copies the table, then makes it.
    read.insert(&5u64, 10).unwrap();
    assert_eq!(Arc::strong_count(&owner), 1);
    assert_eq!(read.query(&5u64), m.query(&5u64).map(|v| v + 10));
    assert_eq!(owner.bytes(), &bytes[..], "the bytes are never written");
    assert_eq!(copy.to_bytes(), bytes);
    read.check_invariants();

    // Every kind of change starts the same way: growth, deletes, clear,
    // batches, merges.
    for change in 0..5 {
        let mut r = Maplet::from_frozen_bytes(owner.clone(), Counter).unwrap();
        let mut expected = Maplet::from_bytes(&bytes, Counter).unwrap();
        for t in [&mut r, &mut expected] {
            match change {
                0 => {
                    for i in 10_000..20_000u64 {
                        t.insert(&i, 1).unwrap();
                    }
                }
                1 => assert!(t.delete(&7u64, &m.query(&7u64).unwrap()).unwrap()),
                2 => t.clear().unwrap(),
                3 => t
                    .insert_many(&(0..5000u64).collect::<Vec<_>>(), vec![1; 5000])
                    .unwrap(),
                _ => t.merge(&m).unwrap(),
            }
        }
        assert_eq!(r.to_bytes(), expected.to_bytes(), "change {change}");
        r.check_invariants();
        assert_eq!(Arc::strong_count(&owner), 1, "change {change}");
    }

    // Misaligned bytes are copied at once, with the same result.
    let mut padded = vec![0u8];
    padded.extend_from_slice(&bytes);
    let odd: Arc<dyn FrozenBytes> = Arc::new(Misaligned(padded.into_boxed_slice()));
    let read = Maplet::from_frozen_bytes(odd.clone(), Counter).unwrap();
    assert_eq!(Arc::strong_count(&odd), 1);
    assert_eq!(read.to_bytes(), bytes);

    // Whatever the operator.
    let any =
        AnyMaplet::<Custom<i64, fn(&i64, &i64) -> mappy_core::Result<i64>>>::from_frozen_bytes(
            owner.clone(),
            |_| unreachable!("a counter"),
            |_| unreachable!("no side store"),
        )
        .unwrap();
    assert!(matches!(any, AnyMaplet::Counter(_)));
    assert_eq!(Arc::strong_count(&owner), 2);
}
