//! The input: what to read and how, the reader thread that parses it into
//! pieces of sequence, and the workers that hash their k-mers.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread::{Scope, ScopedJoinHandle};

use super::encode::{check_k, hash_packed, packed_batches};
use super::report::{KmerStats, Progress, Report, Stage};
use super::size::Hll;
use crate::error::{MapletError, Result};

/// Checks k and that the files exist; the number of workers to use.
pub(super) fn check_input(paths: &[PathBuf], k: usize, threads: Option<usize>) -> Result<usize> {
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

/// Reads the files and hands the hashes of their k-mers to `sink`, a batch
/// at a time: one thread parses, `workers` threads hash. After the first
/// error of `sink` (or of `progress`, told what was read after each batch),
/// the rest of the input is read but not handed over. With `hll`, the
/// hashes are also added to it.
pub(super) fn hash_files(
    input: &Input<'_>,
    progress: Progress<'_>,
    hll: Option<&std::sync::Mutex<Hll>>,
    mut sink: impl FnMut(&[u64]) -> Result<()>,
) -> Result<KmerStats> {
    let (paths, k, canonical, workers, seed) = (
        input.paths,
        input.k,
        input.canonical,
        input.workers,
        input.seed,
    );
    std::thread::scope(|scope| {
        let (hash_tx, hash_rx) = mpsc::sync_channel::<(Vec<u64>, KmerStats)>(workers);
        // Each worker owns a clone of the sender: `hash_rx` ends with the last.
        let (reader, _) = fan_out(scope, paths, k, workers, move |chunks| {
            let mut est = hll.map(|_| Hll::new());
            let mut buf = Vec::new();
            for chunk in chunks {
                let mut gone = false;
                let seqs = chunk.iter().map(|p| (&p.seq[..], p.cont));
                let _ = packed_batches(seqs, k, canonical, &mut buf, |out, stats| {
                    hash_packed(out, k, seed);
                    if let Some(e) = &mut est {
                        for &h in out.iter() {
                            e.add(h);
                        }
                    }
                    // Handed on whole; `out` starts again with room for as many.
                    let hashes = std::mem::replace(out, Vec::with_capacity(out.len()));
                    gone = gone || hash_tx.send((hashes, stats.unwrap_or_default())).is_err();
                    Ok(())
                });
                if gone {
                    break;
                }
            }
            if let (Some(e), Some(hll)) = (est, hll) {
                hll.lock().expect("estimate lock").merge(&e);
            }
        });
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

/// What to read and how.
pub(super) struct Input<'a> {
    pub(super) paths: &'a [PathBuf],
    pub(super) k: usize,
    pub(super) canonical: bool,
    pub(super) workers: usize,
    pub(super) seed: u64,
}

/// A sequence, or a piece of a long one: a record longer than
/// [`PIECE`] bases goes to the workers in pieces of at most that many
/// (a whole chromosome is never held by more than the parser), each after
/// the first repeating the last `k - 1` bases of the one before (`cont`),
/// so that every k-mer is in exactly one piece.
pub(super) struct Piece {
    pub(super) seq: Vec<u8>,
    pub(super) cont: bool,
}

/// Bases of a piece of a long sequence, beside the `k - 1` it repeats.
const PIECE: usize = 1 << 20;

/// The chunks of sequences the workers share, one receiver for all: each
/// chunk goes to whichever worker asks first.
pub(super) struct Chunks(Arc<Mutex<mpsc::Receiver<Vec<Piece>>>>);

impl Iterator for Chunks {
    type Item = Vec<Piece>;

    fn next(&mut self) -> Option<Vec<Piece>> {
        self.0.lock().expect("reader lock").recv().ok()
    }
}

/// Starts the thread that reads `paths` in order (see [`read_file`]),
/// `workers` chunks ahead at most, and `workers` threads, each running
/// `worker` on the chunks it takes; the handles of the reader and of the
/// workers. The reader stops early, without error, when no worker is left
/// to take its chunks.
pub(super) fn fan_out<'scope, T, W>(
    scope: &'scope Scope<'scope, '_>,
    paths: &'scope [PathBuf],
    k: usize,
    workers: usize,
    worker: W,
) -> (
    ScopedJoinHandle<'scope, Result<()>>,
    Vec<ScopedJoinHandle<'scope, T>>,
)
where
    W: FnOnce(Chunks) -> T + Clone + Send + 'scope,
    T: Send + 'scope,
{
    let (tx, rx) = mpsc::sync_channel::<Vec<Piece>>(workers);
    let reader = scope.spawn(move || -> Result<()> {
        for path in paths {
            read_file(path, k, &tx)?;
        }
        Ok(())
    });
    let rx = Arc::new(Mutex::new(rx));
    let handles = (0..workers)
        .map(|_| {
            let (chunks, worker) = (Chunks(Arc::clone(&rx)), worker.clone());
            scope.spawn(move || worker(chunks))
        })
        .collect();
    (reader, handles)
}

/// Parses one file, sending its sequences (long ones in pieces, see
/// [`Piece`]) in chunks of about 16 KB. A chunk becomes 8 bytes of hash
/// per k-mer (128 KB), and only a few chunks are in flight at once (the
/// channels hold one per worker), so the pipeline needs about a MiB beside
/// the table for reads, and a few times [`PIECE`] for long sequences.
fn read_file(path: &Path, k: usize, tx: &mpsc::SyncSender<Vec<Piece>>) -> Result<()> {
    let bad = |e: &dyn std::fmt::Display| {
        MapletError::InvalidParameter(format!("{}: {e}", path.display()))
    };
    let mut reader = needletail::parse_fastx_file(path).map_err(|e| bad(&e))?;
    let mut chunk = Vec::new();
    let mut size = 0;
    let mut send = |piece: Piece, chunk: &mut Vec<Piece>| {
        size += piece.seq.len();
        chunk.push(piece);
        if size >= 1 << 14 {
            size = 0;
            return tx.send(std::mem::take(chunk)).is_ok();
        }
        true
    };
    let cap = PIECE + k - 1;
    while let Some(record) = reader.next() {
        let record = record.map_err(|e| bad(&e))?;
        // Cut from the text as it is in the parser's buffer, line breaks
        // dropped here, so that a long FASTA record is never copied whole.
        let raw = record.raw_seq();
        let broken = matches!(record.format(), needletail::parser::Format::Fasta)
            && (raw.contains(&b'\n') || raw.contains(&b'\r'));
        let lines = std::iter::once(raw).filter(|_| !broken).chain(
            broken
                .then(|| raw.split(|&c| c == b'\n' || c == b'\r'))
                .into_iter()
                .flatten(),
        );
        let mut piece = Vec::with_capacity(raw.len().min(cap));
        let mut cont = false;
        for mut line in lines {
            while !line.is_empty() {
                let take = (cap - piece.len()).min(line.len());
                piece.extend_from_slice(&line[..take]);
                line = &line[take..];
                if piece.len() == cap {
                    let next = piece[cap - (k - 1)..].to_vec();
                    let full = std::mem::replace(&mut piece, next);
                    if !send(Piece { seq: full, cont }, &mut chunk) {
                        return Ok(());
                    }
                    cont = true;
                    piece.reserve(cap - piece.len());
                }
            }
        }
        // A last piece of only the bases it repeats has no k-mer, and no
        // base of its own to count.
        if cont && piece.len() == k - 1 {
            continue;
        }
        if !send(Piece { seq: piece, cont }, &mut chunk) {
            return Ok(());
        }
    }
    if !chunk.is_empty() {
        let _ = tx.send(chunk);
    }
    Ok(())
}

/// The first error of the threads of a stage, and whether they are to
/// stop: a thread that fails tells the others, which stop, and the stage
/// returns the error that came first.
pub(super) struct FirstError {
    error: Mutex<Option<MapletError>>,
    stop: AtomicBool,
}

impl FirstError {
    pub(super) fn new() -> FirstError {
        FirstError {
            error: Mutex::new(None),
            stop: AtomicBool::new(false),
        }
    }

    /// Keeps `e` unless an error came before it; every thread is to stop.
    pub(super) fn fail(&self, e: MapletError) {
        self.stop();
        self.error.lock().expect("error lock").get_or_insert(e);
    }

    /// Every thread is to stop, with no error (the work has become moot).
    pub(super) fn stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
    }

    /// Whether the threads are to stop.
    pub(super) fn stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    /// The error that came first, if any.
    pub(super) fn into_result(self) -> Result<()> {
        match self.error.into_inner().expect("error lock") {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}
