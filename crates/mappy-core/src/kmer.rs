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

use std::path::{Path, PathBuf};
use std::sync::mpsc;

use crate::error::{MapletError, Result};
use crate::hash::hash_str;
use crate::{Counter, Maplet};

/// What a counting run saw.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KmerStats {
    /// Sequences (records) read.
    pub sequences: u64,
    /// Bases read.
    pub bases: u64,
    /// k-mers counted.
    pub kmers: u64,
    /// k-mer positions skipped because they span a non-ACGT character.
    pub skipped: u64,
}

impl std::ops::AddAssign for KmerStats {
    fn add_assign(&mut self, o: KmerStats) {
        self.sequences += o.sequences;
        self.bases += o.bases;
        self.kmers += o.kmers;
        self.skipped += o.skipped;
    }
}

fn code(b: u8) -> Option<u64> {
    match b {
        b'A' | b'a' => Some(0),
        b'C' | b'c' => Some(1),
        b'G' | b'g' => Some(2),
        b'T' | b't' => Some(3),
        _ => None,
    }
}

fn check_k(k: usize) -> Result<()> {
    if (1..=32).contains(&k) {
        Ok(())
    } else {
        Err(MapletError::InvalidParameter(format!(
            "k must be between 1 and 32, got {k}"
        )))
    }
}

/// The hash of a packed k-mer: its text, hashed as a string key.
#[inline]
fn hash_packed(packed: u64, k: usize, seed: u64) -> u64 {
    let mut text = [0u8; 32];
    for (i, t) in text[..k].iter_mut().enumerate() {
        *t = b"ACGT"[((packed >> (2 * (k - 1 - i))) & 3) as usize];
    }
    hash_str(
        std::str::from_utf8(&text[..k]).expect("ASCII letters"),
        seed,
    )
}

/// Calls `emit` with the packed (canonical) k-mers of `seq`, in order.
fn for_each_kmer(
    seq: &[u8],
    k: usize,
    canonical: bool,
    stats: &mut KmerStats,
    mut emit: impl FnMut(u64),
) {
    let mask = if k == 32 {
        u64::MAX
    } else {
        (1u64 << (2 * k)) - 1
    };
    let shift = 2 * (k as u32 - 1);
    let (mut fwd, mut rev, mut valid, mut counted) = (0u64, 0u64, 0usize, 0u64);
    for &b in seq {
        match code(b) {
            Some(c) => {
                fwd = ((fwd << 2) | c) & mask;
                rev = (rev >> 2) | ((3 - c) << shift);
                valid += 1;
                if valid >= k {
                    counted += 1;
                    emit(if canonical { fwd.min(rev) } else { fwd });
                }
            }
            None => valid = 0,
        }
    }
    stats.sequences += 1;
    stats.bases += seq.len() as u64;
    stats.kmers += counted;
    stats.skipped += (seq.len() + 1).saturating_sub(k) as u64 - counted;
}

/// The canonical form of a k-mer (the smaller of it and its reverse
/// complement, upper case), or `None` if it has other characters than ACGT
/// or is longer than 32.
pub fn canonical_kmer(kmer: &str) -> Option<String> {
    if kmer.is_empty() || kmer.len() > 32 || !kmer.bytes().all(|b| code(b).is_some()) {
        return None;
    }
    let up = kmer.to_ascii_uppercase();
    let rc: String = up
        .bytes()
        .rev()
        .map(|b| match b {
            b'A' => 'T',
            b'C' => 'G',
            b'G' => 'C',
            _ => 'A',
        })
        .collect();
    Some(if rc < up { rc } else { up })
}

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
    let mut stats = KmerStats::default();
    let mut batch = Vec::new();
    for seq in sequences {
        for_each_kmer(seq, k, canonical, &mut stats, |p| {
            batch.push(hash_packed(p, k, seed))
        });
        if batch.len() >= 1 << 16 {
            maplet
                .insert_hashes_streaming(&batch, 1)
                .map_err(|(_, e)| e)?;
            batch.clear();
        }
    }
    maplet
        .insert_hashes_streaming(&batch, 1)
        .map_err(|(_, e)| e)?;
    Ok(stats)
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
    check_k(k)?;
    for p in paths {
        if !p.exists() {
            return Err(MapletError::InvalidParameter(format!(
                "{}: no such file",
                p.display()
            )));
        }
    }
    let workers = threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
        .max(1);
    maplet.atomically(|maplet| count_files_into(maplet, paths, k, canonical, workers))
}

fn count_files_into(
    maplet: &mut Maplet<Counter>,
    paths: &[PathBuf],
    k: usize,
    canonical: bool,
    workers: usize,
) -> Result<KmerStats> {
    let seed = maplet.seed();
    std::thread::scope(|scope| {
        let (seq_tx, seq_rx) = mpsc::sync_channel::<Vec<Vec<u8>>>(workers);
        let seq_rx = std::sync::Arc::new(std::sync::Mutex::new(seq_rx));
        let (hash_tx, hash_rx) = mpsc::sync_channel::<(Vec<u64>, KmerStats)>(workers);
        let reader = scope.spawn(move || -> Result<()> {
            for path in paths {
                read_file(path, &seq_tx)?;
            }
            Ok(())
        });
        for _ in 0..workers {
            let rx = seq_rx.clone();
            let tx = hash_tx.clone();
            scope.spawn(move || loop {
                let Ok(chunk) = rx.lock().expect("reader lock").recv() else {
                    return;
                };
                let mut stats = KmerStats::default();
                let mut out = Vec::with_capacity(chunk.iter().map(|s| s.len()).sum());
                for seq in &chunk {
                    for_each_kmer(seq, k, canonical, &mut stats, |p| {
                        out.push(hash_packed(p, k, seed))
                    });
                }
                if tx.send((out, stats)).is_err() {
                    return;
                }
            });
        }
        drop(hash_tx);
        let mut stats = KmerStats::default();
        let mut result = Ok(());
        for (hashes, s) in hash_rx {
            stats += s;
            if result.is_ok() {
                result = maplet
                    .insert_hashes_streaming(&hashes, 1)
                    .map_err(|(_, e)| e);
            }
        }
        reader.join().expect("the reader thread does not panic")?;
        result.map(|()| stats)
    })
}

/// Parses one file, sending its sequences in chunks of about 16 KB. A
/// chunk becomes 8 bytes of hash per k-mer (128 KB), and only a few chunks
/// are in flight at once (the channels hold one per worker), so the
/// pipeline needs about a MiB beside the table.
fn read_file(path: &Path, tx: &mpsc::SyncSender<Vec<Vec<u8>>>) -> Result<()> {
    let bad = |e: &dyn std::fmt::Display| {
        MapletError::InvalidParameter(format!("{}: {e}", path.display()))
    };
    let mut reader = needletail::parse_fastx_file(path).map_err(|e| bad(&e))?;
    let mut chunk = Vec::new();
    let mut size = 0;
    while let Some(record) = reader.next() {
        let record = record.map_err(|e| bad(&e))?;
        let seq = record.seq().into_owned();
        size += seq.len();
        chunk.push(seq);
        if size >= 1 << 14 {
            if tx.send(std::mem::take(&mut chunk)).is_err() {
                return Ok(());
            }
            size = 0;
        }
    }
    if !chunk.is_empty() {
        let _ = tx.send(chunk);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packing_and_canonical_forms() {
        let mut seen = Vec::new();
        let mut stats = KmerStats::default();
        for_each_kmer(b"ACGTT", 3, false, &mut stats, |p| seen.push(p));
        assert_eq!(seen, vec![0b000110, 0b011011, 0b101111]); // ACG CGT GTT
        seen.clear();
        for_each_kmer(b"ACGTT", 3, true, &mut stats, |p| seen.push(p));
        assert_eq!(seen, vec![0b000110, 0b000110, 0b000001]); // ACG ACG AAC
        assert_eq!(canonical_kmer("GTT").as_deref(), Some("AAC"));
        assert_eq!(canonical_kmer("ANC"), None);
        let mut stats = KmerStats::default();
        for_each_kmer(&[b'A'; 40], 32, true, &mut stats, |_| {});
        assert_eq!(stats.kmers, 9);
    }
}
