//! k-mer counting against an exact count.
#![cfg(feature = "kmers")]

use std::collections::HashMap;
use std::io::Write;
use std::path::PathBuf;

use mappy_core::kmer::{canonical_kmer, count_files, count_sequences};
use mappy_core::{Counter, Maplet};

fn random_dna(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed;
    (0..n)
        .map(|i| {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            if i % 97 == 50 {
                b'N'
            } else {
                b"ACGTacgt"[(x >> 33) as usize % 8]
            }
        })
        .collect()
}

fn exact(seqs: &[Vec<u8>], k: usize, canonical: bool) -> HashMap<String, i64> {
    let mut out = HashMap::new();
    for s in seqs {
        let s = String::from_utf8(s.to_ascii_uppercase()).unwrap();
        for i in 0..(s.len() + 1).saturating_sub(k) {
            let w = &s[i..i + k];
            if w.bytes().all(|b| b"ACGT".contains(&b)) {
                let key = if canonical {
                    canonical_kmer(w).unwrap()
                } else {
                    w.to_string()
                };
                *out.entry(key).or_default() += 1;
            }
        }
    }
    out
}

/// A folder of the test's own (tests run in parallel in one process).
fn temp_dir(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("mappy-kmers-{}-{test}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn counts_match_an_exact_count() {
    let seqs: Vec<Vec<u8>> = (0..60).map(|i| random_dna(10 + i * 37, i as u64)).collect();
    for k in [1, 5, 21, 31, 32] {
        for canonical in [true, false] {
            let truth = exact(&seqs, k, canonical);
            let mut m = Maplet::new(truth.len().max(1), 0.001, Counter).unwrap();
            let stats =
                count_sequences(&mut m, seqs.iter().map(|s| s.as_slice()), k, canonical).unwrap();
            assert_eq!(stats.kmers as i64, truth.values().sum::<i64>());
            let exact_share = truth
                .iter()
                .filter(|(km, &n)| m.query(km.as_str()) == Some(n))
                .count() as f64
                / truth.len() as f64;
            assert!(
                truth
                    .iter()
                    .all(|(km, &n)| m.query(km.as_str()).unwrap() >= n),
                "k={k} undercount"
            );
            assert!(exact_share > 0.99, "k={k}: {exact_share}");
        }
    }
}

#[test]
fn files_plain_gzip_fasta_fastq_and_threads_agree() {
    let seqs: Vec<Vec<u8>> = (0..300).map(|i| random_dna(150, 1000 + i as u64)).collect();
    let fasta: String = seqs
        .iter()
        .enumerate()
        .map(|(i, s)| format!(">r{i}\n{}\n", String::from_utf8_lossy(s)))
        .collect();
    let fastq: String = seqs
        .iter()
        .enumerate()
        .map(|(i, s)| {
            format!(
                "@r{i}\n{}\n+\n{}\n",
                String::from_utf8_lossy(s),
                "I".repeat(s.len())
            )
        })
        .collect();
    let dir = temp_dir("files");
    let fa = dir.join("reads.fa");
    std::fs::write(&fa, &fasta).unwrap();
    let fq_gz = dir.join("reads.fq.gz");
    let mut gz = flate2::write::GzEncoder::new(
        std::fs::File::create(&fq_gz).unwrap(),
        flate2::Compression::fast(),
    );
    gz.write_all(fastq.as_bytes()).unwrap();
    gz.finish().unwrap();
    let truth = exact(&seqs, 21, true);
    let mut single = Maplet::new(truth.len(), 0.001, Counter).unwrap();
    count_sequences(&mut single, seqs.iter().map(|s| s.as_slice()), 21, true).unwrap();
    for (path, threads) in [(&fa, Some(1)), (&fa, Some(3)), (&fq_gz, None)] {
        let mut m = Maplet::new(truth.len(), 0.001, Counter).unwrap();
        let stats = count_files(&mut m, std::slice::from_ref(path), 21, true, threads).unwrap();
        assert_eq!(stats.sequences, 300);
        assert_eq!(
            m.entries().collect::<Vec<_>>(),
            single.entries().collect::<Vec<_>>()
        );
    }
    let bad = dir.join("bad.fq");
    std::fs::write(&bad, "@r1\nACGT\n+\nII\n").unwrap();
    let mut m = Maplet::new(100, 0.01, Counter).unwrap();
    let err = count_files(&mut m, std::slice::from_ref(&bad), 3, true, None).unwrap_err();
    assert!(
        err.to_string().contains(&bad.display().to_string()),
        "{err}"
    );
    let err = count_files(&mut m, &[dir.join("none.fa")], 3, true, None).unwrap_err();
    assert!(err.to_string().contains("no such file"), "{err}");
    assert!(count_sequences(&mut m, [&b"ACGT"[..]], 33, true).is_err());
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_failed_count_changes_nothing() {
    let mut m = Maplet::new(50_000, 0.001, Counter).unwrap();
    count_sequences(&mut m, [&random_dna(20_000, 1)[..]], 21, true).unwrap();
    let before = m.to_bytes();
    // Good records, more than the parser sends to the counters at once,
    // then one whose quality line is missing.
    let dir = temp_dir("broken");
    let path = dir.join("broken.fq");
    let mut text = String::new();
    for i in 0..400 {
        let good = String::from_utf8(random_dna(5_000, 2 + i)).unwrap();
        text += &format!("@r{i}\n{good}\n+\n{}\n", "I".repeat(good.len()));
    }
    text += "@bad\nACGTACGT\n";
    std::fs::write(&path, text).unwrap();
    let err = count_files(&mut m, std::slice::from_ref(&path), 21, true, Some(2)).unwrap_err();
    assert!(err.to_string().contains("broken.fq"), "{err}");
    assert!(m.to_bytes() == before, "a failed count changed the maplet");
    // The same into an empty maplet, whose table is set aside unwritten.
    let mut empty = Maplet::new(50_000, 0.001, Counter).unwrap();
    let empty_before = empty.to_bytes();
    assert!(count_files(&mut empty, std::slice::from_ref(&path), 21, true, Some(2)).is_err());
    assert!(empty.to_bytes() == empty_before && empty.is_empty());
    // k out of range, and the memory limit reached part-way.
    assert!(count_sequences(&mut m, [&b"ACGT"[..]], 33, true).is_err());
    let seqs: Vec<Vec<u8>> = (0..3).map(|i| random_dna(2_000_000, i)).collect();
    let limited = &mut Maplet::with_options(
        1000,
        0.001,
        Counter,
        mappy_core::Options {
            memory_limit: Some(200_000),
            ..Default::default()
        },
    )
    .unwrap();
    limited.insert(&"x", 5).unwrap();
    let limited_before = limited.to_bytes();
    assert!(count_sequences(limited, seqs.iter().map(|s| &s[..]), 21, true).is_err());
    assert!(limited.to_bytes() == limited_before);
    std::fs::remove_dir_all(dir).unwrap();
}

/// Counting past the expected size grows the maplet as it goes, and a
/// count into a maplet that already holds counts adds to them: no count
/// below the truth either way, and nearly all exact.
#[test]
fn counting_grows_and_adds_to_what_is_stored() {
    let seqs: Vec<Vec<u8>> = (0..200).map(|i| random_dna(300, 5000 + i as u64)).collect();
    let truth = exact(&seqs, 21, true);
    let (first, rest) = seqs.split_at(80);
    let dir = temp_dir("grows");
    let path = dir.join("rest.fa");
    let fasta: String = rest
        .iter()
        .enumerate()
        .map(|(i, s)| format!(">r{i}\n{}\n", String::from_utf8_lossy(s)))
        .collect();
    std::fs::write(&path, fasta).unwrap();
    // Sized for a sixteenth of the distinct k-mers: it doubles four times.
    let mut m = Maplet::new(truth.len() / 16, 0.001, Counter).unwrap();
    let before = m.capacity();
    count_sequences(&mut m, first.iter().map(|s| s.as_slice()), 21, true).unwrap();
    count_files(&mut m, std::slice::from_ref(&path), 21, true, Some(2)).unwrap();
    assert!(
        m.capacity() >= 16 * before,
        "{} -> {}",
        before,
        m.capacity()
    );
    let exact = truth
        .iter()
        .filter(|(km, &n)| {
            let got = m.query(km.as_str()).unwrap();
            assert!(got >= n, "{km}: {got} < {n}");
            got == n
        })
        .count();
    assert!(
        exact as f64 > 0.99 * truth.len() as f64,
        "{exact} of {}",
        truth.len()
    );
    m.check_invariants();
    std::fs::remove_dir_all(dir).unwrap();
}

/// `seqs` as `dir/reads.fa`.
fn write_fasta(dir: &std::path::Path, seqs: &[Vec<u8>]) -> PathBuf {
    let fasta: String = seqs
        .iter()
        .enumerate()
        .map(|(i, s)| format!(">r{i}\n{}\n", String::from_utf8_lossy(s)))
        .collect();
    let reads = dir.join("reads.fa");
    std::fs::write(&reads, fasta).unwrap();
    reads
}

/// Files in `dir` whose names start with a dot: scratch and temporary files.
fn hidden_files(dir: &std::path::Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.'))
        .collect()
}

#[test]
fn counting_in_parts_saves_what_counting_in_memory_saves() {
    use mappy_core::kmer::count_files_to_path;
    use mappy_core::Options;
    let dir = temp_dir("parts");
    // Random reads, and one read repeated 300 times: its k-mers get counts
    // that need wider values than the others, in some parts only.
    let mut seqs: Vec<Vec<u8>> = (0..400).map(|i| random_dna(150, 5000 + i as u64)).collect();
    seqs.extend(std::iter::repeat_n(random_dna(60, 7), 300));
    let reads = write_fasta(&dir, &seqs);
    let truth = exact(&seqs, 21, true);
    // At a rate of 0.5 fingerprints are one bit long, so entries often
    // stand for several k-mers, and many parts split a home slot between
    // them: their shared entries must become one.
    for rate in [0.001, 0.5] {
        let mut m = Maplet::new(truth.len(), rate, Counter).unwrap();
        count_files(&mut m, std::slice::from_ref(&reads), 21, true, Some(2)).unwrap();
        let in_memory = dir.join("memory.maplet");
        m.save(&in_memory).unwrap();
        for parts in [1, 2, 3, 64] {
            let out = dir.join(format!("parts{parts}.maplet"));
            let saved = count_files_to_path(
                std::slice::from_ref(&reads),
                &out,
                21,
                true,
                Some(2),
                Some(truth.len()),
                rate,
                Options::default(),
                parts,
                None,
                &|_| Ok(()),
            )
            .unwrap();
            assert_eq!(saved.distinct, m.len(), "rate {rate}, {parts} parts");
            assert_eq!(saved.expected_items, truth.len());
            assert_eq!(saved.stats.kmers as i64, truth.values().sum::<i64>());
            assert!(
                std::fs::read(&out).unwrap() == std::fs::read(&in_memory).unwrap(),
                "rate {rate}, {parts} parts: the files differ"
            );
        }
    }
    assert_eq!(hidden_files(&dir), Vec::<String>::new());
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn counting_in_parts_beyond_the_expected_items_doubles_without_reading_again() {
    use mappy_core::kmer::count_files_to_path;
    use mappy_core::Options;
    let dir = temp_dir("parts-larger");
    let seqs: Vec<Vec<u8>> = (0..200).map(|i| random_dna(150, 9000 + i as u64)).collect();
    let reads = write_fasta(&dir, &seqs);
    let truth = exact(&seqs, 21, true);
    let out = dir.join("out.maplet");
    let saved = count_files_to_path(
        std::slice::from_ref(&reads),
        &out,
        21,
        true,
        None,
        Some(truth.len() / 5),
        0.001,
        Options::default(),
        4,
        None,
        &|_| Ok(()),
    )
    .unwrap();
    assert!(saved.expected_items >= truth.len() / 5 * 4, "{saved:?}");
    assert_eq!(saved.input_passes, 1);
    let m = Maplet::load(&out, Counter).unwrap();
    assert_eq!(m.len(), saved.distinct);
    assert!(m.stats().load_factor <= 0.95, "{:?}", m.stats());
    assert!(truth
        .iter()
        .all(|(km, &n)| m.query(km.as_str()).unwrap() >= n));
    let exact_share = truth
        .iter()
        .filter(|(km, &n)| m.query(km.as_str()) == Some(n))
        .count() as f64
        / truth.len() as f64;
    assert!(exact_share > 0.99, "{exact_share}");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn counting_in_parts_fails_cleanly() {
    use mappy_core::kmer::count_files_to_path;
    use mappy_core::Options;
    let dir = temp_dir("parts-fail");
    let good = dir.join("good.fa");
    std::fs::write(&good, ">a\nACGTACGTACGTTTGA\n").unwrap();
    let bad = dir.join("bad.fq");
    std::fs::write(&bad, "@r1\nACGT\n+\nII\n").unwrap();
    let out = dir.join("out.maplet");
    std::fs::write(&out, b"what was there").unwrap();
    let err = count_files_to_path(
        &[good.clone(), bad.clone()],
        &out,
        5,
        true,
        None,
        Some(100),
        0.01,
        Options::default(),
        3,
        None,
        &|_| Ok(()),
    )
    .unwrap_err();
    assert!(
        err.to_string().contains(&bad.display().to_string()),
        "{err}"
    );
    for (k, rate) in [(0, 0.01), (5, 1.5)] {
        assert!(count_files_to_path(
            std::slice::from_ref(&good),
            &out,
            k,
            true,
            None,
            Some(100),
            rate,
            Options::default(),
            3,
            None,
            &|_| Ok(()),
        )
        .is_err());
    }
    assert_eq!(std::fs::read(&out).unwrap(), b"what was there");
    assert_eq!(hidden_files(&dir), Vec::<String>::new());
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_count_summed_across_parts_gets_the_bits_it_needs() {
    use mappy_core::kmer::count_files_to_path;
    use mappy_core::Options;
    // A few dozen k-mers seen once each, at a rate where they often share
    // an entry, in many more parts than entries: shared entries then mostly
    // fall across part boundaries, where every part holds counts of 1 (one
    // bit) and only the sum across the boundary needs two.
    let dir = temp_dir("parts-widths");
    for seed in 0..24u64 {
        let seq = random_dna(40, 777 + seed);
        let reads = dir.join("reads.fa");
        std::fs::write(&reads, format!(">r\n{}\n", String::from_utf8_lossy(&seq))).unwrap();
        let mut m = Maplet::new(40, 0.5, Counter).unwrap();
        count_files(&mut m, std::slice::from_ref(&reads), 12, false, Some(1)).unwrap();
        assert!(m.len() <= 38, "the maplet must not grow");
        let in_memory = dir.join("memory.maplet");
        m.save(&in_memory).unwrap();
        let out = dir.join("parts.maplet");
        count_files_to_path(
            std::slice::from_ref(&reads),
            &out,
            12,
            false,
            Some(2),
            Some(40),
            0.5,
            Options::default(),
            256,
            None,
            &|_| Ok(()),
        )
        .unwrap();
        assert!(
            std::fs::read(&out).unwrap() == std::fs::read(&in_memory).unwrap(),
            "seed {seed}: the files differ"
        );
    }
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn counting_reports_progress_and_stops_when_told() {
    use mappy_core::kmer::{count_files_to_path, Report, Stage};
    use mappy_core::{MapletError, Options};
    use std::sync::Mutex;
    let dir = temp_dir("progress");
    let seqs: Vec<Vec<u8>> = (0..3000).map(|i| random_dna(150, 300 + i as u64)).collect();
    let reads = write_fasta(&dir, &seqs);
    let out = dir.join("out.maplet");
    // 21-mers in 3 parts, each report to `progress`.
    let count = |progress: &(dyn Fn(Report) -> Result<(), MapletError> + Sync)| {
        count_files_to_path(
            std::slice::from_ref(&reads),
            &out,
            21,
            true,
            Some(2),
            Some(500_000),
            0.01,
            Options::default(),
            3,
            None,
            progress,
        )
    };
    let seen: Mutex<Vec<Report>> = Mutex::new(Vec::new());
    let saved = count(&|r| {
        seen.lock().unwrap().push(r);
        Ok(())
    })
    .unwrap();
    let seen = seen.into_inner().unwrap();
    let reading: Vec<u64> = seen
        .iter()
        .filter(|r| r.stage == Stage::Reading)
        .map(|r| r.done)
        .collect();
    assert!(reading.windows(2).all(|w| w[0] <= w[1]));
    assert_eq!(reading.last(), Some(&saved.stats.kmers));
    let mut counting: Vec<u64> = seen
        .iter()
        .filter(|r| r.stage == Stage::Counting)
        .map(|r| r.done)
        .collect();
    counting.sort();
    assert_eq!(counting, vec![1, 2, 3]);
    assert!(seen.iter().all(|r| r.total.is_none_or(|t| r.done <= t)));
    // An error from the report stops the work: no output, no scratch files.
    std::fs::remove_file(&out).unwrap();
    for stage in [Stage::Reading, Stage::Counting] {
        let err = count(&|r| {
            if r.stage == stage {
                Err(MapletError::InvalidParameter("stop".into()))
            } else {
                Ok(())
            }
        })
        .unwrap_err();
        assert!(err.to_string().contains("stop"), "{err}");
        assert!(!out.exists());
        assert_eq!(hidden_files(&dir), Vec::<String>::new());
    }
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn in_memory_and_in_parts_are_identical_whatever_the_hint() {
    use mappy_core::kmer::count_files_to_path;
    use mappy_core::Options;
    let dir = temp_dir("hints");
    let seqs: Vec<Vec<u8>> = (0..300).map(|i| random_dna(150, 4000 + i as u64)).collect();
    let reads = write_fasta(&dir, &seqs);
    let truth = exact(&seqs, 21, true);
    let n = truth.len();
    let tmp = dir.join("scratch");
    std::fs::create_dir(&tmp).unwrap();
    for hint in [Some(n / 100), Some(n / 3), Some(n), Some(4 * n), None] {
        let mut files = Vec::new();
        for (parts, threads) in [(1, 1), (1, 2), (4, 2), (16, 1)] {
            let out = dir.join(format!("p{parts}t{threads}.maplet"));
            let saved = count_files_to_path(
                std::slice::from_ref(&reads),
                &out,
                21,
                true,
                Some(threads),
                hint,
                0.01,
                Options::default(),
                parts,
                Some(&tmp),
                &|_| Ok(()),
            )
            .unwrap();
            // In parts the input is read once whatever the hint; in memory
            // once if the hint holds the k-mers, else twice.
            let fits = hint.is_some_and(|h| h >= n);
            let passes = if parts > 1 || fits { 1 } else { 2 };
            assert_eq!(saved.input_passes, passes, "{hint:?} {parts}");
            let m = Maplet::load(&out, Counter).unwrap();
            assert_eq!(m.len(), saved.distinct);
            assert!(m.stats().load_factor <= 0.95);
            if let Some(h) = hint {
                assert!(saved.expected_items >= h);
                if fits {
                    assert_eq!(saved.expected_items, h);
                } else {
                    assert!(saved.expected_items < 2 * n, "{saved:?}");
                }
            }
            assert!(truth
                .iter()
                .all(|(k, &c)| m.query(k.as_str()).unwrap() >= c));
            files.push(std::fs::read(&out).unwrap());
        }
        assert!(
            files.windows(2).all(|w| w[0] == w[1]),
            "{hint:?}: the files differ"
        );
        assert_eq!(hidden_files(&tmp), Vec::<String>::new());
    }
    // A hint that holds them gives what counting into a maplet of that size
    // gives.
    let mut m = Maplet::new(n, 0.01, Counter).unwrap();
    count_files(&mut m, std::slice::from_ref(&reads), 21, true, Some(2)).unwrap();
    let direct = dir.join("direct.maplet");
    m.save(&direct).unwrap();
    let out = dir.join("p4t2.maplet");
    count_files_to_path(
        std::slice::from_ref(&reads),
        &out,
        21,
        true,
        Some(2),
        Some(n),
        0.01,
        Options::default(),
        4,
        None,
        &|_| Ok(()),
    )
    .unwrap();
    assert!(std::fs::read(&out).unwrap() == std::fs::read(&direct).unwrap());
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_missing_scratch_folder_is_a_clear_error() {
    use mappy_core::kmer::count_files_to_path;
    use mappy_core::Options;
    let dir = temp_dir("no-tmp");
    let reads = write_fasta(&dir, &[random_dna(100, 1)]);
    let err = count_files_to_path(
        std::slice::from_ref(&reads),
        &dir.join("out.maplet"),
        21,
        true,
        None,
        None,
        0.01,
        Options::default(),
        4,
        Some(&dir.join("nowhere")),
        &|_| Ok(()),
    )
    .unwrap_err();
    assert!(err.to_string().contains("nowhere: not a folder"), "{err}");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn one_kmer_repeated_more_than_a_buffer_holds() {
    use mappy_core::kmer::count_files_to_path;
    use mappy_core::Options;
    // 200,000 times the same k-mer: all in one bucket of the buffer that
    // sorts them, many times what it holds before it is written out.
    let dir = temp_dir("repeats");
    let mut seqs = vec![vec![b'A'; 200_020]];
    seqs.extend((0..50).map(|i| random_dna(150, 60 + i as u64)));
    let reads = write_fasta(&dir, &seqs);
    let truth = exact(&seqs, 21, true);
    let mut files = Vec::new();
    for parts in [1, 3] {
        let out = dir.join(format!("{parts}.maplet"));
        count_files_to_path(
            std::slice::from_ref(&reads),
            &out,
            21,
            true,
            Some(1),
            None,
            0.01,
            Options::default(),
            parts,
            None,
            &|_| Ok(()),
        )
        .unwrap();
        let m = Maplet::load(&out, Counter).unwrap();
        assert_eq!(m.query("A".repeat(21).as_str()), Some(200_000));
        assert!(truth
            .iter()
            .all(|(k, &c)| m.query(k.as_str()).unwrap() >= c));
        files.push(std::fs::read(&out).unwrap());
    }
    assert!(files[0] == files[1]);
    std::fs::remove_dir_all(dir).unwrap();
}

/// A record longer than the pieces the reader hands out (a whole
/// chromosome) counts exactly what the whole sequence counts: every k-mer
/// across the cuts once, and the bases and sequences as they are; in
/// memory and in parts, whatever the threads.
#[test]
fn a_long_record_counts_as_one_sequence() {
    use mappy_core::kmer::{count_files_to_path, KmerStats};
    use mappy_core::Options;
    let dir = temp_dir("long");
    // 2.5 Mbp: cut in three at least, with N (and lowercase) near the cuts.
    let mut seqs = vec![random_dna(2_500_000, 77), random_dna(300, 78)];
    for at in [(1 << 20) - 3, (1 << 20) + 12, 2 << 20] {
        seqs[0][at] = b'N';
    }
    let truth = exact(&seqs, 31, true);
    let mut whole = Maplet::new(truth.len(), 0.001, Counter).unwrap();
    let want = count_sequences(&mut whole, seqs.iter().map(|s| s.as_slice()), 31, true).unwrap();
    assert_eq!(want.sequences, 2);
    assert_eq!(want.bases, 2_500_300);
    assert_eq!(want.kmers as i64, truth.values().sum::<i64>());
    // One line a record, and lines of 80 and (with DOS line ends) 61 bases.
    let wrapped = |width: usize, end: &str| -> String {
        seqs.iter()
            .enumerate()
            .map(|(i, s)| {
                let lines: Vec<_> = s.chunks(width).map(String::from_utf8_lossy).collect();
                format!(">r{i}{end}{}{end}", lines.join(end))
            })
            .collect()
    };
    let reads = write_fasta(&dir, &seqs);
    for (name, text) in [("80.fa", wrapped(80, "\n")), ("61.fa", wrapped(61, "\r\n"))] {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        let mut m = Maplet::new(truth.len(), 0.001, Counter).unwrap();
        let got = count_files(&mut m, std::slice::from_ref(&path), 31, true, Some(2)).unwrap();
        assert_eq!(got, want, "{name}");
        assert_eq!(
            m.entries().collect::<Vec<_>>(),
            whole.entries().collect::<Vec<_>>()
        );
    }
    for threads in [Some(1), Some(2)] {
        let mut m = Maplet::new(truth.len(), 0.001, Counter).unwrap();
        let got: KmerStats =
            count_files(&mut m, std::slice::from_ref(&reads), 31, true, threads).unwrap();
        assert_eq!(got, want);
        assert_eq!(
            m.entries().collect::<Vec<_>>(),
            whole.entries().collect::<Vec<_>>()
        );
    }
    let mut files = Vec::new();
    for parts in [1, 4] {
        let out = dir.join(format!("long{parts}.maplet"));
        let saved = count_files_to_path(
            std::slice::from_ref(&reads),
            &out,
            31,
            true,
            Some(2),
            None,
            0.001,
            Options::default(),
            parts,
            None,
            &|_| Ok(()),
        )
        .unwrap();
        assert_eq!(saved.stats, want, "{parts} parts");
        files.push(std::fs::read(&out).unwrap());
    }
    assert!(files[0] == files[1], "in memory and in parts differ");
    std::fs::remove_dir_all(dir).unwrap();
}
