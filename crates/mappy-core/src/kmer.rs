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

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc;

use crate::error::{MapletError, Result};
use crate::format;
use crate::hash::hash_str;
use crate::table::value_width;
use crate::{Counter, Maplet, Options};

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
    let mut buf = [0u8; 32];
    let key = kmer_key(kmer.as_bytes(), true, &mut buf)?;
    Some(key.to_owned())
}

/// The key counting stores for a k-mer, written into `buf`: its canonical
/// form with `canonical`, else the k-mer in upper case; `None` if it is
/// empty, longer than 32 or has other characters than ACGT (either case).
pub fn kmer_key<'b>(kmer: &[u8], canonical: bool, buf: &'b mut [u8; 32]) -> Option<&'b str> {
    let k = kmer.len();
    if k == 0 || k > 32 {
        return None;
    }
    // Table lookups, not a branch a base: bases in random order would
    // mispredict about one branch in two.
    let mut rc = [0u8; 32];
    let mut bad = 0u8;
    for (i, &b) in kmer.iter().enumerate() {
        let (up, comp) = BASES[b as usize];
        bad |= up;
        buf[i] = up;
        rc[k - 1 - i] = comp;
    }
    if bad & 0x80 != 0 {
        return None;
    }
    // Equal lengths: byte order is string order.
    if canonical && rc[..k] < buf[..k] {
        buf[..k].copy_from_slice(&rc[..k]);
    }
    Some(std::str::from_utf8(&buf[..k]).expect("ASCII letters"))
}

/// For each byte, the base in upper case and its complement, or 0xFF
/// (high bit set) for a byte that is not a base.
static BASES: [(u8, u8); 256] = {
    let mut t = [(0xFF, 0xFF); 256];
    let pairs = [(b'A', b'T'), (b'C', b'G'), (b'G', b'C'), (b'T', b'A')];
    let mut i = 0;
    while i < 4 {
        let (b, c) = pairs[i];
        t[b as usize] = (b, c);
        t[b.to_ascii_lowercase() as usize] = (b, c);
        i += 1;
    }
    t
};

/// The hashes of the keys counting stores for `kmers` (see [`kmer_key`]),
/// with the maplet's `seed`, for one batch of lookups
/// ([`Maplet::query_many_hashes`]). `Err(i)` when the `i`-th (from 0) is
/// not a k-mer.
///
/// ```
/// use mappy_core::{kmer, Counter, Maplet};
///
/// let mut m = Maplet::new(100, 0.001, Counter).unwrap();
/// kmer::count_sequences(&mut m, [&b"ACGTT"[..]], 3, true).unwrap();
/// let seed = m.seed();
/// let hashes = kmer::kmer_key_hashes([&b"acg"[..], b"AAC", b"TTT"], true, seed).unwrap();
/// assert_eq!(m.query_many_hashes(&hashes), [Some(2), Some(1), None]);
/// assert_eq!(kmer::kmer_key_hashes([&b"ACG"[..], b"ANC"], true, seed), Err(1));
/// ```
pub fn kmer_key_hashes<'a>(
    kmers: impl IntoIterator<Item = &'a [u8]>,
    canonical: bool,
    seed: u64,
) -> std::result::Result<Vec<u64>, usize> {
    let kmers = kmers.into_iter();
    let mut out = Vec::with_capacity(kmers.size_hint().0);
    let mut buf = [0u8; 32];
    for (i, kmer) in kmers.enumerate() {
        match kmer_key(kmer, canonical, &mut buf) {
            Some(key) => out.push(hash_str(key, seed)),
            None => return Err(i),
        }
    }
    Ok(out)
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
    let workers = check_input(paths, k, threads)?;
    maplet.atomically(|maplet| count_files_into(maplet, paths, k, canonical, workers, &|_| Ok(())))
}

/// Checks k and that the files exist; the number of workers to use.
fn check_input(paths: &[PathBuf], k: usize, threads: Option<usize>) -> Result<usize> {
    check_k(k)?;
    if let Some(p) = paths.iter().find(|p| !p.exists()) {
        return Err(MapletError::InvalidParameter(format!(
            "{}: no such file",
            p.display()
        )));
    }
    Ok(threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
        .max(1))
}

fn count_files_into(
    maplet: &mut Maplet<Counter>,
    paths: &[PathBuf],
    k: usize,
    canonical: bool,
    workers: usize,
    progress: Progress<'_>,
) -> Result<KmerStats> {
    let seed = maplet.seed();
    hash_files(paths, k, canonical, workers, seed, progress, |hashes| {
        maplet
            .insert_hashes_streaming(hashes, 1)
            .map_err(|(_, e)| e)
    })
}

/// Reads the files and hands the hashes of their k-mers to `sink`, a batch
/// at a time: one thread parses, `workers` threads hash. After the first
/// error of `sink` (or of `progress`, told what was read after each batch),
/// the rest of the input is read but not handed over.
fn hash_files(
    paths: &[PathBuf],
    k: usize,
    canonical: bool,
    workers: usize,
    seed: u64,
    progress: Progress<'_>,
    mut sink: impl FnMut(&[u64]) -> Result<()>,
) -> Result<KmerStats> {
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
                result = sink(&hashes).and_then(|()| {
                    progress(Report {
                        stage: Stage::Reading,
                        done: stats.kmers,
                        total: None,
                    })
                });
            }
        }
        reader.join().expect("the reader thread does not panic")?;
        result.map(|()| stats)
    })
}

/// The stages of [`count_files_to_path`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    /// Reading and hashing the input (`done`: k-mers so far).
    Reading,
    /// Counting the parts (`done`: parts counted).
    Counting,
    /// Building and saving the table (`done`: entries written).
    Saving,
}

/// How far [`count_files_to_path`] is: of its `stage`, `done` out of
/// `total` (`None` when not known beforehand).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Report {
    /// The stage.
    pub stage: Stage,
    /// Work of the stage done.
    pub done: u64,
    /// Work of the stage in all, if known.
    pub total: Option<u64>,
}

/// A function told of progress now and then (from any of the threads that
/// do the work); an error from it stops the work with that error.
pub type Progress<'a> = &'a (dyn Fn(Report) -> Result<()> + Sync);

/// What [`count_files_to_path`] did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SavedCount {
    /// What the input held.
    pub stats: KmerStats,
    /// Distinct k-mers (entries) in the saved maplet.
    pub distinct: usize,
    /// The expected items the saved maplet was built for: the ones asked
    /// for, or a multiple when the k-mers did not fit them.
    pub expected_items: usize,
}

/// Counts the k-mers of FASTA/FASTQ files into a new counter maplet for
/// `expected_items` at `false_positive_rate` and saves it at `out`
/// (atomically: on error `out` is left as it was).
///
/// With `partitions` above 1 the whole table is never in memory: the
/// k-mers' hashes are first split by hash range (so by home slot) into
/// `partitions` scratch files beside `out` (8 bytes per k-mer); the parts
/// are then counted, as many at once as there are workers, each into a
/// table that only its share of home slots touches; their entries are kept
/// in scratch files (24 bytes per distinct k-mer), and the saved table is
/// built from them front to back, written out as it is finished. Memory is
/// then about `workers / partitions` of the table's, for scratch disk
/// space; the maplet saved is the same as with one partition, which counts
/// in memory. If the k-mers outnumber what the
/// maplet holds at its maximum load, counting starts over (from the scratch
/// files) with twice the expected items, so that the saved maplet never
/// has an overfull table.
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
    expected_items: usize,
    false_positive_rate: f64,
    options: Options,
    partitions: usize,
    progress: Progress<'_>,
) -> Result<SavedCount> {
    let new = |n: usize| Maplet::with_options(n, false_positive_rate, Counter, options);
    let mut shell = new(expected_items)?;
    let workers = check_input(paths, k, threads)?;
    if partitions <= 1 {
        let stats = count_files_into(&mut shell, paths, k, canonical, workers, progress)?;
        shell.save(out)?;
        return Ok(SavedCount {
            stats,
            distinct: shell.len(),
            expected_items,
        });
    }
    // Split the hashes by hash range: home slots grow with the hash, so
    // each part holds the entries of a run of home slots, in order, at any
    // table size.
    let parts = (0..partitions)
        .map(|i| format::ScratchFile::beside(out, &format!("part{i}")))
        .collect::<Result<Vec<_>>>()?;
    let mut writers = parts
        .iter()
        .map(|p| Ok(BufWriter::with_capacity(64 << 10, p.file()?)))
        .collect::<Result<Vec<_>>>()?;
    let stats = hash_files(
        paths,
        k,
        canonical,
        workers,
        shell.seed(),
        progress,
        |hashes| {
            for &h in hashes {
                let part = ((h as u128 * partitions as u128) >> 64) as usize;
                writers[part].write_all(&h.to_le_bytes())?;
            }
            Ok(())
        },
    )?;
    for w in writers {
        w.into_inner()
            .map_err(|e| MapletError::from(e.into_error()))?;
    }
    let entries = (0..partitions)
        .map(|i| format::ScratchFile::beside(out, &format!("entries{i}")))
        .collect::<Result<Vec<_>>>()?;
    let mut expected = expected_items;
    loop {
        let fits = match count_parts(&shell, &parts, &entries, &new, expected, workers, progress)? {
            Some((lens, widths)) => Some(boundaries(&entries, &lens, widths)?)
                .filter(|&(distinct, _)| distinct <= shell.max_len()),
            None => None,
        };
        if let Some((distinct, (vbits, signed))) = fits {
            let readers = entries
                .iter()
                .map(|e| Ok(BufReader::with_capacity(64 << 10, e.reopen()?)))
                .collect::<Result<Vec<_>>>()?;
            let total = Some(distinct as u64);
            let mut written = 0u64;
            let entries = merged(readers).map(|e| {
                written += 1;
                if written % (1 << 20) == 0 {
                    progress(Report {
                        stage: Stage::Saving,
                        done: written,
                        total,
                    })?;
                }
                e
            });
            let saved = shell.save_entries(out, vbits, signed, entries)?;
            debug_assert_eq!(saved, distinct);
            return Ok(SavedCount {
                stats,
                distinct,
                expected_items: expected,
            });
        }
        // More distinct k-mers than the maplet holds at its maximum load:
        // start over (from the scratch files) with a table twice as large.
        expected = expected
            .checked_mul(2)
            .ok_or_else(|| MapletError::InvalidParameter("too many distinct k-mers".into()))?;
        shell = new(expected)?;
    }
}

/// A value width in bits, and whether values are signed.
type Widths = (u32, bool);

/// Counts the parts, `workers` at a time, each into its own maplet with
/// `shell`'s parameters, and writes each part's entries, in table order, to
/// its scratch file in `entries`: each part's number of entries, and the
/// value width they all need. `None` if they do not fit `shell` at its
/// maximum load.
fn count_parts(
    shell: &Maplet<Counter>,
    parts: &[format::ScratchFile],
    entries: &[format::ScratchFile],
    new: &(impl Fn(usize) -> Result<Maplet<Counter>> + Sync),
    expected: usize,
    workers: usize,
    progress: Progress<'_>,
) -> Result<Option<(Vec<usize>, Widths)>> {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::sync::Mutex;
    let max_len = shell.max_len();
    let next = AtomicUsize::new(0);
    let counted = AtomicUsize::new(0);
    let total = AtomicUsize::new(0);
    let stop = AtomicBool::new(false);
    // Values start as wide as the parts counted so far needed: the saved
    // table needs that much, and widening costs time.
    let widths = Mutex::new(shell.value_bits());
    let done: Mutex<Vec<Option<usize>>> = Mutex::new(vec![None; parts.len()]);
    let error: Mutex<Option<MapletError>> = Mutex::new(None);
    let count_one = |i: usize| -> Result<Option<usize>> {
        let start = *widths.lock().expect("widths lock");
        let mut m = new(expected)?.with_value_bits(start);
        let mut input = parts[i].reopen()?;
        let mut buf = vec![0u8; 512 << 10];
        let mut hashes: Vec<u64> = Vec::with_capacity(buf.len() / 8);
        loop {
            if stop.load(Ordering::Relaxed) {
                // Another part overfilled the table or failed: this one's
                // count is not needed.
                return Ok(None);
            }
            let n = read_full(&mut input, &mut buf)?;
            if n == 0 {
                break;
            }
            hashes.clear();
            hashes.extend(
                buf[..n]
                    .chunks_exact(8)
                    .map(|c| u64::from_le_bytes(c.try_into().expect("8 bytes"))),
            );
            if m.len() + hashes.len() < max_len {
                m.insert_hashes_streaming(&hashes, 1).map_err(|(_, e)| e)?;
                continue;
            }
            // Near the maximum load: one at a time, and never let the table
            // double, since every part must keep the same home slots.
            for &h in &hashes {
                if m.len() >= max_len && !m.contains_hash(h) {
                    return Ok(None);
                }
                m.insert_hash(h, 1)?;
            }
        }
        if total.fetch_add(m.len(), Ordering::Relaxed) + m.len() > max_len + parts.len() {
            // Over the maximum load even if every part boundary merges two
            // entries into one.
            return Ok(None);
        }
        let mut out = BufWriter::with_capacity(64 << 10, entries[i].file()?);
        for e in m.raw_entries() {
            write_entry(&mut out, e)?;
        }
        out.flush()?;
        let (vbits, signed) = m.value_bits();
        let mut w = widths.lock().expect("widths lock");
        *w = (w.0.max(vbits), w.1 | signed);
        drop(w);
        progress(Report {
            stage: Stage::Counting,
            done: counted.fetch_add(1, Ordering::Relaxed) as u64 + 1,
            total: Some(parts.len() as u64),
        })?;
        Ok(Some(m.len()))
    };
    std::thread::scope(|scope| {
        for _ in 0..workers.min(parts.len()) {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= parts.len() || stop.load(Ordering::Relaxed) {
                    return;
                }
                match count_one(i) {
                    Ok(Some(len)) => done.lock().expect("parts lock")[i] = Some(len),
                    Ok(None) => stop.store(true, Ordering::Relaxed),
                    Err(e) => {
                        stop.store(true, Ordering::Relaxed);
                        error.lock().expect("error lock").get_or_insert(e);
                    }
                }
            });
        }
    });
    if let Some(e) = error.into_inner().expect("error lock") {
        return Err(e);
    }
    let lens: Option<Vec<usize>> = done.into_inner().expect("parts lock").into_iter().collect();
    Ok(lens.map(|lens| (lens, widths.into_inner().expect("widths lock"))))
}

/// The number of entries of the parts together (of `lens` entries each),
/// and the value width they need (`widths` for the parts' own counts),
/// where a home slot and fingerprint split between neighbouring
/// parts (the hash range boundary fell inside it) is one entry whose
/// count is the sum. Only the first and last entry of each part can be
/// split so.
fn boundaries(
    entries: &[format::ScratchFile],
    lens: &[usize],
    mut widths: Widths,
) -> Result<(usize, Widths)> {
    let mut distinct = 0;
    // The last entry so far, with the count summed over the parts it spans.
    let mut carry: Option<(u64, u64, i64)> = None;
    for (file, &len) in entries.iter().zip(lens) {
        if len == 0 {
            continue;
        }
        let mut f = file.reopen()?;
        let first = read_entry(&mut f)?.ok_or_else(cut_short)?;
        f.seek(std::io::SeekFrom::Start(24 * (len as u64 - 1)))?;
        let last = read_entry(&mut f)?.ok_or_else(cut_short)?;
        distinct += len;
        match carry {
            Some((q, fp, v)) if (q, fp) == (first.0, first.1) => {
                distinct -= 1;
                let sum = v.checked_add(first.2).ok_or_else(|| {
                    MapletError::InvalidValue("a k-mer count overflows 64 bits".into())
                })?;
                widths.0 = widths.0.max(value_width(sum, widths.1));
                carry = Some(if len == 1 { (q, fp, sum) } else { last });
            }
            _ => carry = Some(last),
        }
    }
    Ok((distinct, widths))
}

fn cut_short() -> MapletError {
    MapletError::Corrupt("a scratch file of k-mer entries is cut short".into())
}

/// The entries of the parts' scratch files in order, those split between
/// neighbouring parts summed into one (see [`boundaries`]).
fn merged(mut readers: Vec<BufReader<File>>) -> impl Iterator<Item = Result<(u64, u64, i64)>> {
    readers.reverse();
    let mut pending: Option<(u64, u64, i64)> = None;
    let mut next = move || -> Result<Option<(u64, u64, i64)>> {
        while let Some(r) = readers.last_mut() {
            if let Some(e) = read_entry(r)? {
                return Ok(Some(e));
            }
            readers.pop();
        }
        Ok(None)
    };
    std::iter::from_fn(move || loop {
        let e = match next() {
            Ok(e) => e,
            Err(err) => return Some(Err(err)),
        };
        match (pending, e) {
            (Some((q, f, v)), Some((q2, f2, v2))) if (q, f) == (q2, f2) => {
                pending = Some((q, f, v.wrapping_add(v2)));
            }
            (p, e) => {
                pending = e;
                if let Some(p) = p {
                    return Some(Ok(p));
                }
                e?;
            }
        }
    })
}

/// Reads until `buf` is full or the input ends; the bytes read.
fn read_full(r: &mut impl Read, buf: &mut [u8]) -> Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(n)
}

fn write_entry(w: &mut impl Write, (q, f, v): (u64, u64, i64)) -> Result<()> {
    w.write_all(&q.to_le_bytes())?;
    w.write_all(&f.to_le_bytes())?;
    w.write_all(&v.to_le_bytes())?;
    Ok(())
}

/// The next entry written by [`write_entry`], or `None` at the end.
fn read_entry(r: &mut impl Read) -> Result<Option<(u64, u64, i64)>> {
    let mut b = [0u8; 24];
    match read_full(r, &mut b)? {
        0 => Ok(None),
        24 => {
            let word =
                |i: usize| u64::from_le_bytes(b[8 * i..8 * i + 8].try_into().expect("8 bytes"));
            Ok(Some((word(0), word(1), word(2) as i64)))
        }
        _ => Err(MapletError::Corrupt(
            "a scratch file of k-mer entries is cut short".into(),
        )),
    }
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
