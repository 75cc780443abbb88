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
use crate::maplet::{Maplet, Options};
use crate::operator::Counter;
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
mod tests;
