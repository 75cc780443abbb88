//! Tests of the k-mer counting internals: packing, runs, sorting and the
//! estimate.

use std::fs::File;

use super::encode::{for_each_kmer, packed_batches, PACKED_BATCH};
use super::memory::estimate_files;
use super::parts::{radix_sort, runs_of};
use super::read::Input;
use super::size::Hll;
use super::{canonical_kmer, count_sequences, kmer_key, kmer_key_hashes, KmerStats, Report};
use crate::error::{MapletError, Result};
use crate::maplet::Maplet;
use crate::operator::Counter;
use crate::runs::{encode_run, rice_bits, RUN_HEADER};

/// A long sequence (and a chunk of short ones) is handed on in batches
/// of at most PACKED_BATCH k-mers, together the k-mers of the whole in
/// order, the last batch told what the sequences held; an error stops
/// the batches and is returned.
#[test]
fn long_sequences_are_handed_on_in_bounded_batches() {
    let mut x = 7u64;
    let mut long: Vec<u8> = (0..PACKED_BATCH * 3 + 100)
        .map(|_| {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            b"ACGT"[(x >> 62) as usize]
        })
        .collect();
    long[PACKED_BATCH + 5] = b'N';
    let seqs: Vec<&[u8]> = vec![b"ACGTACGTAC", &long, b"GGGGCCCCAAAATTT"];
    let mut want = Vec::new();
    let mut want_stats = KmerStats::default();
    for s in &seqs {
        for_each_kmer(s, false, 11, true, &mut want_stats, |p| want.push(p));
    }
    let (mut got, mut sizes, mut told) = (Vec::new(), Vec::new(), Vec::new());
    let stats = packed_batches(
        seqs.iter().map(|&s| (s, false)),
        11,
        true,
        &mut Vec::new(),
        |b, s| {
            got.extend_from_slice(b);
            sizes.push(b.len());
            told.push(s);
            Ok(())
        },
    )
    .unwrap();
    assert_eq!(got, want);
    assert!(
        sizes.len() >= 3 && sizes.iter().all(|&n| n <= PACKED_BATCH),
        "{sizes:?}"
    );
    assert_eq!((stats, told.pop().unwrap()), (want_stats, Some(want_stats)));
    assert!(told.iter().all(|s| s.is_none()));
    let mut calls = 0;
    let r = packed_batches(
        seqs.iter().map(|&s| (s, false)),
        11,
        true,
        &mut Vec::new(),
        |_, _| {
            calls += 1;
            Err(MapletError::InvalidParameter("stop".into()))
        },
    );
    assert!(matches!(r, Err(MapletError::InvalidParameter(_))) && calls == 1);
}

#[test]
fn packing_and_canonical_forms() {
    let mut seen = Vec::new();
    let mut stats = KmerStats::default();
    for_each_kmer(b"ACGTT", false, 3, false, &mut stats, |p| seen.push(p));
    assert_eq!(seen, vec![0b000110, 0b011011, 0b101111]); // ACG CGT GTT
    seen.clear();
    for_each_kmer(b"ACGTT", false, 3, true, &mut stats, |p| seen.push(p));
    assert_eq!(seen, vec![0b000110, 0b000110, 0b000001]); // ACG ACG AAC
    assert_eq!(canonical_kmer("GTT").as_deref(), Some("AAC"));
    assert_eq!(canonical_kmer("ANC"), None);
    let mut stats = KmerStats::default();
    for_each_kmer(&[b'A'; 40], false, 32, true, &mut stats, |_| {});
    assert_eq!(stats.kmers, 9);
}

#[test]
fn runs_decode_to_what_was_encoded() {
    // Gaps far above and below the mean (unary escapes), counts of 1
    // and up to 2^64 - 1, a key of 0 and of 2^64 - 1.
    let mut keys = vec![0u64, 1, 2, 1000, 1 << 40, (1 << 40) + 3];
    keys.extend((0..500).map(|i| (1u64 << 41) + i * 977));
    keys.push(u64::MAX);
    let entries: Vec<(u64, u64)> = keys
        .iter()
        .enumerate()
        .map(|(i, &k)| (k, [1, 2, 3, u64::MAX, 1 << 33][i % 5]))
        .collect();
    let (first, last) = (entries[0].0, entries[entries.len() - 1].0);
    let mut bytes = encode_run(
        entries.iter().copied(),
        rice_bits(first, last, entries.len()),
    );
    let second = encode_run([(7u64, 9u64)].into_iter(), 0);
    assert!(encode_run(std::iter::empty(), 3).is_empty());
    bytes.extend_from_slice(&second);
    let path = std::env::temp_dir().join(format!("mappy-runs-{}", std::process::id()));
    std::fs::write(&path, &bytes).unwrap();
    let back: Vec<(u64, u64)> = runs_of(File::open(&path).map_err(Into::into))
        .collect::<Result<_>>()
        .unwrap();
    let mut want = entries.clone();
    want.push((7, 9));
    assert_eq!(back, want);
    // Cut short anywhere: an error, never a panic or a wrong answer.
    for cut in [
        1,
        RUN_HEADER,
        RUN_HEADER + 3,
        bytes.len() - second.len() - 1,
    ] {
        std::fs::write(&path, &bytes[..cut]).unwrap();
        let r: Result<Vec<(u64, u64)>> = runs_of(File::open(&path).map_err(Into::into)).collect();
        assert!(r.is_err(), "cut at {cut}");
    }
    std::fs::remove_file(&path).unwrap();
}

#[test]
fn radix_sort_sorts() {
    let mut tmp = Vec::new();
    for (n, bits) in [
        (0, 5),
        (100, 7),
        (5000, 1),
        (5000, 11),
        (20_000, 22),
        (20_000, 31),
        (9000, 32),
    ] {
        let mask = if bits == 32 {
            u32::MAX
        } else {
            (1 << bits) - 1
        };
        let mut keys: Vec<u32> = (0..n as u64)
            .map(|i| (crate::hash::hash_str(&i.to_string(), 3) as u32) & mask)
            .collect();
        let mut want = keys.clone();
        want.sort_unstable();
        radix_sort(&mut keys, bits, &mut tmp);
        assert_eq!(keys, want, "{n} {bits}");
    }
}

#[test]
fn the_estimating_pass_counts_distinct_canonical_kmers() {
    // Random bases with an N now and then, each sequence twice (once
    // reverse-complemented): the estimate is of distinct canonical
    // k-mers, within a few percent, whatever k.
    let mut x = 7u64;
    let mut seqs: Vec<Vec<u8>> = Vec::new();
    for _ in 0..400 {
        let seq: Vec<u8> = (0..500)
            .map(|_| {
                x = x
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                b"ACGTACGTACGTACGTACGTACGTACGTACGTACGTN"[(x >> 58) as usize % 37]
            })
            .collect();
        let rc: Vec<u8> = seq
            .iter()
            .rev()
            .map(|&b| match b {
                b'A' => b'T',
                b'C' => b'G',
                b'G' => b'C',
                b'T' => b'A',
                o => o,
            })
            .collect();
        seqs.extend([seq, rc]);
    }
    let dir = std::env::temp_dir().join(format!("mappy-estimate-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("reads.fa");
    let text: String = seqs
        .iter()
        .enumerate()
        .map(|(i, s)| format!(">{i}\n{}\n", String::from_utf8_lossy(s)))
        .collect();
    std::fs::write(&path, text).unwrap();
    for (k, canonical) in [(5, true), (11, true), (21, true), (31, false), (32, true)] {
        let mut exact = std::collections::HashSet::new();
        for s in &seqs {
            for_each_kmer(s, false, k, canonical, &mut KmerStats::default(), |p| {
                exact.insert(p);
            });
        }
        let paths = [path.clone()];
        let input = Input {
            paths: &paths,
            k,
            canonical,
            workers: 2,
            seed: 1,
        };
        let e = estimate_files(&input, &|_| Ok(())).unwrap();
        let n = exact.len() as f64;
        assert!((e - n).abs() <= 0.03 * n, "k={k}: {e} for {n}");
    }
    // An error of the progress callback stops the pass with it.
    let input = Input {
        paths: std::slice::from_ref(&path),
        k: 21,
        canonical: true,
        workers: 2,
        seed: 1,
    };
    let stop = |_: Report| Err(MapletError::InvalidParameter("stop".into()));
    assert!(matches!(
        estimate_files(&input, &stop),
        Err(MapletError::InvalidParameter(m)) if m == "stop"
    ));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn the_estimate_is_within_a_few_percent() {
    for n in [0u64, 10, 1000, 100_000, 1_000_000] {
        let mut hll = Hll::new();
        for i in 0..n {
            hll.add(crate::hash::hash_str(&i.to_string(), 1));
            hll.add(crate::hash::hash_str(&i.to_string(), 1)); // repeats count once
        }
        let e = hll.estimate();
        assert!((e - n as f64).abs() <= 0.03 * n as f64 + 1.0, "{n}: {e}");
    }
}

#[test]
fn kmer_keys_match_what_counting_stores() {
    let mut buf = [0u8; 32];
    assert_eq!(kmer_key(b"gtt", true, &mut buf), Some("AAC"));
    assert_eq!(kmer_key(b"gtt", false, &mut buf), Some("GTT"));
    assert_eq!(kmer_key(b"ACGT", true, &mut buf), Some("ACGT")); // its own reverse complement
    for bad in [&b""[..], b"AC-T", b"ACGTN", &[b'A'; 33], "AÉ".as_bytes()] {
        assert_eq!(kmer_key(bad, true, &mut buf), None);
    }
    assert_eq!(
        kmer_key(&[b't'; 32], true, &mut buf),
        Some(&*"A".repeat(32))
    );
    // Every k-mer counting sees is found by its key's hash.
    let seq = b"ACGTTGCAAGGCTTACNNACGGGTACCATG";
    for canonical in [true, false] {
        let mut m = Maplet::new(1000, 0.001, Counter).unwrap();
        count_sequences(&mut m, [&seq[..]], 5, canonical).unwrap();
        let kmers: Vec<&[u8]> = seq.windows(5).filter(|w| !w.contains(&b'N')).collect();
        let hashes = kmer_key_hashes(kmers.iter().copied(), canonical, m.seed()).unwrap();
        assert_eq!(hashes.len(), kmers.len());
        for (h, w) in hashes.iter().zip(&kmers) {
            let key = kmer_key(w, canonical, &mut buf).unwrap();
            assert_eq!(m.query_hash(*h), m.query(key));
            assert!(m.query(key).unwrap() >= 1);
        }
    }
    assert_eq!(kmer_key_hashes([&b"ACG"[..], b"", b"AC"], true, 0), Err(1));
}
