//! Counting the k-mers of DNA sequences into a counter maplet.
//!
//! FASTA and FASTQ, plain or gzip-compressed, are read with `needletail`.
//! Bases are packed two bits each (A=0, C=1, G=2, T=3, so integer order is
//! lexicographic order); k runs from 1 to 32. A k-mer that spans any other
//! character (N, IUPAC codes) is skipped; lower-case bases count as upper.
//! By default each k-mer is counted in its *canonical* form: the smaller of
//! itself and its reverse complement.
//!
//! The key of a k-mer is its (canonical) text in upper case, hashed as the
//! string key it is, so `maplet.query("ACGT")` finds what counting stored.
//!
//! ```
//! use mappy_core::{kmer, Counter, Maplet};
//!
//! let mut m = Maplet::new(100, 0.001, Counter).unwrap();
//! kmer::count_sequences(&mut m, [&b"ACGTNACGT"[..], b"acgt"], 3, true).unwrap();
//! // ACG and its reverse complement CGT are one canonical k-mer: 2 + 2 + 2.
//! assert_eq!(m.query("ACG"), Some(6));
//! assert_eq!(kmer::canonical_kmer("CGT").as_deref(), Some("ACG"));
//! ```

mod encode;
mod memory;
mod parts;
mod read;
mod report;
mod size;

pub use encode::{canonical_kmer, kmer_key, kmer_key_hashes};
pub use report::{KmerStats, Progress, Report, SavedCount, Stage};

use std::path::{Path, PathBuf};

use crate::error::{MapletError, Result};
use crate::{Counter, Maplet, Options};
use encode::{check_k, hash_packed, packed_batches};
use memory::count_in_memory;
use parts::{count_in_parts, Scratch};
use read::{check_input, hash_files, Input};
use size::Shapes;

/// Counts the k-mers of `sequences` into `maplet`, all or nothing.
///
/// # Errors
/// [`MapletError::InvalidParameter`] for k outside 1 to 32; the maplet's
/// insert errors (memory limit, overflow). The maplet is then as it was.
pub fn count_sequences<'a>(
    maplet: &mut Maplet<Counter>,
    sequences: impl IntoIterator<Item = &'a [u8]>,
    k: usize,
    canonical: bool,
) -> Result<KmerStats> {
    check_k(k)?;
    maplet.atomically(|maplet| count_sequences_into(maplet, sequences, k, canonical))
}

fn count_sequences_into<'a>(
    maplet: &mut Maplet<Counter>,
    sequences: impl IntoIterator<Item = &'a [u8]>,
    k: usize,
    canonical: bool,
) -> Result<KmerStats> {
    let seed = maplet.seed();
    let seqs = sequences.into_iter().map(|s| (s, false));
    packed_batches(seqs, k, canonical, &mut Vec::new(), |batch, _| {
        hash_packed(batch, k, seed);
        maplet.insert_hashes_streaming(batch, 1).map_err(|(_, e)| e)
    })
}

/// Counts the k-mers of FASTA/FASTQ files (plain or gzip) into `maplet`,
/// all or nothing. One thread parses; `threads` workers (all cores when
/// `None`) turn sequences into hashes; the calling thread inserts them one
/// at a time, prefetching ahead, so that no memory beyond the table and
/// small buffers is needed. Until the count ends, the table the maplet had
/// before it is kept, to go back to on error (an empty new maplet's table
/// costs no memory: its pages were never touched).
///
/// # Errors
/// [`MapletError::InvalidParameter`] naming the file (and the record where
/// the parser says) for unreadable or malformed input; k out of range; the
/// maplet's insert errors. The maplet is then as it was.
pub fn count_files(
    maplet: &mut Maplet<Counter>,
    paths: &[PathBuf],
    k: usize,
    canonical: bool,
    threads: Option<usize>,
) -> Result<KmerStats> {
    let workers = check_input(paths, k, threads)?;
    maplet.atomically(|maplet| count_files_into(maplet, paths, k, canonical, workers, &|_| Ok(())))
}

fn count_files_into(
    maplet: &mut Maplet<Counter>,
    paths: &[PathBuf],
    k: usize,
    canonical: bool,
    workers: usize,
    progress: Progress<'_>,
) -> Result<KmerStats> {
    let input = Input {
        paths,
        k,
        canonical,
        workers,
        seed: maplet.seed(),
    };
    hash_files(&input, progress, None, |hashes| {
        maplet
            .insert_hashes_streaming(hashes, 1)
            .map_err(|(_, e)| e)
    })
}

/// Counts the k-mers of FASTA/FASTQ files into a new counter maplet at
/// `false_positive_rate` and saves it at `out` (atomically: on error `out`
/// is left as it was).
///
/// `expected_items` is a hint. The maplet saved is the one built for the
/// hint (or, without one, for a power of two of home slots) and doubled
/// as often as its maximum load needs to hold every distinct k-mer, each
/// entry keeping the full fingerprint that size gives it. It is the same
/// byte for byte whichever the mode, the thread count or the partitions:
///
/// - With `partitions` of 1 the table is built in memory, by one thread
///   a worker, each inserting the k-mers of its range of home slots into
///   its own table (whose other pages are never touched), saved together
///   as one table. A hint that holds the k-mers is counted straight into
///   its size. Without a hint the distinct k-mers are first estimated
///   (HyperLogLog) by a lighter read of the input, which packs the k-mers
///   but hashes no key; when the k-mers overflow a hint, the estimate is
///   made while counting. The input is then read once more to count at
///   the size that holds 3% more than the estimate; the smallest size that holds them is then cut
///   from it (a smaller size's keys are a prefix of a larger one's).
///   Input that is not a plain file (a pipe, standard input), which cannot
///   be read twice, is counted in parts instead (16 of them).
/// - With `partitions` above 1 the whole table is never in memory and the
///   input is read once: the k-mers' keys (home slot and fingerprint at
///   the largest size the input can need) are sorted, summed and written
///   to `partitions` scratch files, split by key range, delta-coded (2 to
///   3 bytes per distinct k-mer of each worker's buffer, 12 million k-mers
///   shared among the workers, 48 MiB);
///   each part is then merged, as many at once as there are workers, into
///   the sorted distinct keys with their counts (a second, smaller scratch
///   file); the final size is the smallest whose maximum load holds the
///   distinct keys at that size, counted exactly from them, and the saved
///   table is built from them front to back, written out as it is
///   finished. Scratch files go in `tmp_dir` (default: beside `out`) and
///   are removed whatever happens.
///
/// `progress` is told how far the work is (see [`Report`]).
///
/// # Errors
/// As [`count_files`]; [`MapletError::Io`] for scratch files; the maplet's
/// parameter errors; the first error of `progress`.
#[allow(clippy::too_many_arguments)]
pub fn count_files_to_path(
    paths: &[PathBuf],
    out: &Path,
    k: usize,
    canonical: bool,
    threads: Option<usize>,
    expected_items: Option<usize>,
    false_positive_rate: f64,
    options: Options,
    partitions: usize,
    tmp_dir: Option<&Path>,
    progress: Progress<'_>,
) -> Result<SavedCount> {
    let shapes = Shapes::new(expected_items, false_positive_rate, options)?;
    let workers = check_input(paths, k, threads)?;
    if let Some(d) = tmp_dir {
        if !d.is_dir() {
            return Err(MapletError::InvalidParameter(format!(
                "{}: not a folder",
                d.display()
            )));
        }
    }
    let input = Input {
        paths,
        k,
        canonical,
        workers,
        seed: options.seed,
    };
    // Input that cannot be read twice (a pipe) is counted in parts, which
    // reads it once and saves the same file.
    let once = paths.iter().any(|p| !p.is_file());
    if partitions <= 1 && !once {
        count_in_memory(&input, out, &shapes, progress)
    } else {
        let scratch = Scratch { out, dir: tmp_dir };
        let parts = if partitions <= 1 { 16 } else { partitions };
        count_in_parts(&input, &scratch, &shapes, parts, progress)
    }
}

#[cfg(test)]
mod tests {
    use std::fs::File;

    use super::encode::{for_each_kmer, packed_batches, PACKED_BATCH};
    use super::memory::estimate_files;
    use super::parts::{radix_sort, runs_of};
    use super::size::Hll;
    use super::*;
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
            let r: Result<Vec<(u64, u64)>> =
                runs_of(File::open(&path).map_err(Into::into)).collect();
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
}
