//! Counting in parts: the k-mers' keys sorted and written to scratch files
//! split by key range, each part then merged into its distinct keys with
//! their counts, which the saved table is built from.

use std::fs::File;
use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::encode::{hash_packed, packed_batches, PACKED_BATCH};
use super::read::{fan_out, FirstError, Input};
use super::report::{KmerStats, Progress, Report, SavedCount, Stage};
use super::size::{add_equal, build, choose, merge_at, sum_equal, Hll, Shapes};
use crate::error::{MapletError, Result};
use crate::format;
use crate::runs::{encode_run, rice_bits, Run};

/// Where scratch files go.
pub(super) struct Scratch<'a> {
    pub(super) out: &'a Path,
    pub(super) dir: Option<&'a Path>,
}

impl Scratch<'_> {
    fn file(&self, tag: &str) -> Result<format::ScratchFile> {
        match self.dir {
            Some(d) => format::ScratchFile::in_dir(d, self.out, tag),
            None => format::ScratchFile::beside(self.out, tag),
        }
    }
}

/// The most distinct k-mers counting in parts provides for (keys longer
/// than such a count needs would not fit the 32-bit offsets of its
/// buffer at small rates).
const MOST_IN_PARTS: u64 = 1 << 34;

/// An upper bound on the distinct k-mers of the input: its bytes (half of
/// them for FASTQ, whose qualities are as long as the bases; 64 times them
/// for gzip), at most [`MOST_IN_PARTS`], which is also the bound for what
/// is not a plain file.
fn distinct_bound(paths: &[PathBuf], scale: u64) -> f64 {
    let mut bound = 0u64;
    for p in paths {
        let Ok(meta) = std::fs::metadata(p) else {
            return MOST_IN_PARTS as f64;
        };
        if !meta.is_file() {
            return MOST_IN_PARTS as f64;
        }
        let mut magic = [0u8; 2];
        let gz = File::open(p)
            .and_then(|mut f| f.read_exact(&mut magic))
            .is_ok()
            && magic == [0x1f, 0x8b];
        let n = if gz {
            meta.len().saturating_mul(64)
        } else if magic[0] == b'@' {
            meta.len() / 2
        } else {
            meta.len()
        };
        bound = bound.saturating_add(n.saturating_mul(scale));
    }
    bound.clamp(1, MOST_IN_PARTS) as f64
}

pub(super) fn count_in_parts(
    input: &Input<'_>,
    scratch: &Scratch<'_>,
    shapes: &Shapes,
    partitions: usize,
    progress: Progress<'_>,
) -> Result<SavedCount> {
    let bits_c0 = 64 - shapes.c0.leading_zeros();
    let mut scale = 1;
    let mut passes = 0;
    loop {
        passes += 1;
        // Keys long enough for the largest size the input can need.
        let most = shapes.holding(distinct_bound(input.paths, scale));
        let level = shapes.level(most).min(64 - bits_c0);
        let top = (0..=most)
            .rev()
            .find(|&k| shapes.level(k) <= level)
            .unwrap_or(0);
        let hll = std::sync::Mutex::new(Hll::new());
        let parts = (0..partitions)
            .map(|i| scratch.file(&format!("part{i}")))
            .collect::<Result<Vec<_>>>()?;
        let range = (shapes.c0 as u128) << level;
        let stats = split_files(input, shapes.c0, level, range, &parts, &hll, progress)?;
        let estimate = hll.into_inner().expect("estimate lock").estimate();
        let from = shapes.holding(estimate).saturating_sub(2);
        // The sizes near the estimate, whose distinct keys the merge counts.
        let near: Vec<(u32, u32)> = (from..from + 5)
            .filter(|&k| shapes.valid(k) && shapes.level(k) <= level)
            .map(|k| (k, level - shapes.level(k)))
            .collect();
        let shifts: Vec<u32> = near.iter().map(|&(_, s)| s).collect();
        let (entries, tallies) = merge_parts(parts, scratch, input.workers, &shifts, progress)?;
        let read = || {
            entries
                .iter()
                .flat_map(|e| runs_of(e.reopen()))
                .map(move |e| e.map(|(key, v)| (key, level, v)))
        };
        // The smallest of them that holds its distinct keys, unless the
        // smallest does (a smaller one might too) or none does: then
        // counted from the entries.
        let tallied = near
            .iter()
            .zip(Tally::combine(&tallies, near.len()))
            .find(|((k, _), t)| t.distinct <= shapes.max_len(*k));
        let (c, known) = match tallied {
            Some(((k, _), t)) if *k == 0 || *k > from => (Some(*k), Some((t.distinct, t.widest))),
            _ => (choose(shapes, 0, from, level, &read)?, None),
        };
        match c {
            Some(k) if k <= top => {
                let saved = build(shapes, k, scratch.out, &read, known, progress)?;
                return Ok(SavedCount {
                    stats,
                    input_passes: passes,
                    ..saved
                });
            }
            // The input held more distinct k-mers than its size bound
            // (gzip compressing more than 64-fold): read it again with
            // longer keys.
            _ if scale == 1 && input.paths.iter().all(|p| p.is_file()) => scale = 1 << 20,
            _ => {
                return Err(MapletError::InvalidParameter(
                    "too many distinct k-mers for counting in parts".into(),
                ))
            }
        }
    }
}

/// Keys the workers hold before they sort and write them, all together (4
/// bytes each).
const SPLIT_BUFFER: usize = 12 << 20;

/// A worker's keys before they are sorted and written: in buckets by the
/// top bits of their hash (so by key range), each as its offset from the
/// smallest key its bucket can hold, in 32 bits.
struct Buckets {
    /// The hash's bits below the bucket number.
    shift: u32,
    /// The smallest key of each bucket.
    start: Vec<u64>,
    /// Bucket `b` is `keys[b * room..][..lens[b]]` (one allocation, which
    /// goes back to the system when dropped).
    keys: Vec<u32>,
    lens: Vec<usize>,
    /// Keys a bucket takes before they are written.
    room: usize,
    /// Bits of an offset.
    bits: u32,
}

impl Buckets {
    /// Buckets for keys below `range`, at least `parts` of them, for about
    /// `cap` keys in all.
    fn new(range: u128, parts: usize, cap: usize) -> Result<Buckets> {
        let mut nb = parts.next_power_of_two().max(256);
        while range / nb as u128 >= 1 << 31 {
            nb *= 2;
        }
        if nb > 1 << 16 {
            return Err(MapletError::InvalidParameter(
                "the false-positive rate is too small to count in parts".into(),
            ));
        }
        let each = cap / nb;
        let room = each + 4 * (each as f64).sqrt() as usize + 16;
        Ok(Buckets {
            shift: 64 - nb.trailing_zeros(),
            start: (0..nb)
                .map(|b| (b as u128 * range / nb as u128) as u64)
                .collect(),
            keys: vec![0; nb * room],
            lens: vec![0; nb],
            room,
            bits: 128 - (range / nb as u128 + 1).leading_zeros(),
        })
    }

    /// The bucket of hash `h` and its key's offset there, by the buckets'
    /// `shift` and `start` (see [`Buckets`]).
    #[inline]
    fn place(shift: u32, start: &[u64], h: u64, key: u64) -> (u32, u32) {
        let b = if shift == 64 {
            0
        } else {
            (h >> shift) as usize
        };
        (b as u32, (key - start[b]) as u32)
    }

    /// Adds a key placed by [`Buckets::place`]; whether its bucket
    /// is now full (it must then be flushed before the next push).
    #[inline]
    fn push(&mut self, (b, low): (u32, u32)) -> bool {
        let b = b as usize;
        let len = &mut self.lens[b];
        self.keys[b * self.room + *len] = low;
        *len += 1;
        *len >= self.room
    }

    /// Sorts the keys and appends to each of the `writers` (parts, each a
    /// run of whole buckets) a run of its keys, equal keys summed: the
    /// parts split among `threads` threads.
    fn flush(
        &mut self,
        writers: &[std::sync::Mutex<BufWriter<File>>],
        threads: usize,
    ) -> Result<()> {
        let nb = self.lens.len();
        let parts = writers.len();
        let (room, bits) = (self.room, self.bits);
        // Part p holds buckets bounds[p]..bounds[p + 1].
        let bounds: Vec<usize> = (0..=parts).map(|p| (p * nb).div_ceil(parts)).collect();
        let per = parts.div_ceil(threads.max(1));
        let (lens, start) = (&self.lens, &self.start);
        let results = std::thread::scope(|scope| {
            let mut rest: &mut [u32] = &mut self.keys;
            let mut handles = Vec::new();
            for p0 in (0..parts).step_by(per) {
                let p1 = (p0 + per).min(parts);
                let (b0, b1) = (bounds[p0], bounds[p1]);
                let (mine, others) = std::mem::take(&mut rest).split_at_mut((b1 - b0) * room);
                rest = others;
                let bounds = &bounds;
                handles.push(scope.spawn(move || -> Result<()> {
                    for p in p0..p1 {
                        let (lo, hi) = (bounds[p] - b0, bounds[p + 1] - b0);
                        flush_part(
                            &mut mine[lo * room..hi * room],
                            &lens[b0 + lo..b0 + hi],
                            &start[b0 + lo..b0 + hi],
                            (room, bits),
                            &writers[p],
                        )?;
                    }
                    Ok(())
                }));
            }
            handles
                .into_iter()
                .map(|h| h.join().expect("a flushing thread does not panic"))
                .collect::<Vec<_>>()
        });
        self.lens.fill(0);
        results.into_iter().collect()
    }
}

/// Sorts the buckets of one part (`keys`, `room` slots a bucket, `lens`
/// of them filled, offsets of `bits` bits from `start`) and appends them
/// to `writer` as one run, equal keys summed.
fn flush_part(
    keys: &mut [u32],
    lens: &[usize],
    start: &[u64],
    (room, bits): (usize, u32),
    writer: &std::sync::Mutex<BufWriter<File>>,
) -> Result<()> {
    let mut n = 0;
    let (mut first, mut last) = (None, 0);
    let mut tmp = Vec::new();
    for (b, (&len, &st)) in lens.iter().zip(start).enumerate() {
        let k = &mut keys[b * room..][..len];
        radix_sort(k, bits, &mut tmp);
        if let (Some(&lo), Some(&hi)) = (k.first(), k.last()) {
            first.get_or_insert(st + lo as u64);
            last = st + hi as u64;
            n += 1 + k.windows(2).filter(|w| w[0] != w[1]).count();
        }
    }
    let Some(first) = first else {
        return Ok(());
    };
    let keys = &*keys;
    let all = sum_equal(
        lens.iter()
            .zip(start)
            .enumerate()
            .flat_map(|(b, (&len, &st))| {
                summed(&keys[b * room..][..len]).map(move |(k, c)| Ok((st + k as u64, c)))
            }),
    )
    .map(|e| e.expect("the counts of one buffer do not overflow"));
    let run = encode_run(all, rice_bits(first, last, n));
    writer.lock().expect("part lock").write_all(&run)?;
    Ok(())
}

/// Sorts `keys` of `bits` bits, least significant digit first (`tmp` is
/// scratch space).
pub(super) fn radix_sort(keys: &mut [u32], bits: u32, tmp: &mut Vec<u32>) {
    const DIGIT: u32 = 11;
    let n = keys.len();
    if n < 512 {
        keys.sort_unstable();
        return;
    }
    let passes = bits.div_ceil(DIGIT).max(1);
    let width = bits.div_ceil(passes);
    let mask = (1u32 << width) - 1;
    tmp.resize(n, 0);
    let scatter = |src: &[u32], dst: &mut [u32], shift: u32| {
        let mut at = [0usize; 1 << DIGIT];
        for &k in src {
            at[((k >> shift) & mask) as usize] += 1;
        }
        let mut sum = 0;
        for a in &mut at {
            (*a, sum) = (sum, sum + *a);
        }
        for &k in src {
            let d = &mut at[((k >> shift) & mask) as usize];
            dst[*d] = k;
            *d += 1;
        }
    };
    let mut in_keys = true;
    for pass in 0..passes {
        if in_keys {
            scatter(keys, &mut tmp[..n], pass * width);
        } else {
            scatter(&tmp[..n], keys, pass * width);
        }
        in_keys = !in_keys;
    }
    if !in_keys {
        keys.copy_from_slice(&tmp[..n]);
    }
}

/// Reads the input and writes the keys of its k-mers (`level` bits beyond
/// those of a home slot among `c0`, below `range`) to `parts`, split by key
/// range: the workers hash and fill one shared buffer of [`SPLIT_BUFFER`]
/// keys, which, when one of its buckets is full, is sorted and written out
/// (by as many threads), each part getting one run of its keys there,
/// equal keys summed (see [`encode_run`]).
fn split_files(
    input: &Input<'_>,
    c0: u64,
    level: u32,
    range: u128,
    parts: &[format::ScratchFile],
    hll: &std::sync::Mutex<Hll>,
    progress: Progress<'_>,
) -> Result<KmerStats> {
    use std::sync::Mutex;
    let writers = parts
        .iter()
        .map(|p| Ok(Mutex::new(BufWriter::with_capacity(64 << 10, p.file()?))))
        .collect::<Result<Vec<_>>>()?;
    let (k, canonical, seed, workers) = (input.k, input.canonical, input.seed, input.workers);
    let shared = Buckets::new(range, parts.len(), SPLIT_BUFFER)?;
    let (shift, start) = (shared.shift, &shared.start.clone());
    let buckets = Mutex::new(shared);
    let first = FirstError::new();
    let read = Mutex::new(0u64);
    let stats = std::thread::scope(|scope| -> Result<KmerStats> {
        let (writers, first, read, buckets) = (&writers, &first, &read, &buckets);
        let (reader, handles) = fan_out(scope, input.paths, input.k, workers, move |chunks| {
            let mut stats = KmerStats::default();
            let mut est = Hll::new();
            let mut placed: Vec<(u32, u32)> = Vec::with_capacity(PACKED_BATCH);
            let mut hashes: Vec<u64> = Vec::new();
            for chunk in chunks {
                if first.stopped() {
                    // Drain the reader, which then stops.
                    continue;
                }
                let seqs = chunk.iter().map(|p| (&p.seq[..], p.cont));
                let r = packed_batches(seqs, k, canonical, &mut hashes, |hashes, _| {
                    // Hashed and placed without the lock, then added.
                    hash_packed(hashes, k, seed);
                    placed.clear();
                    for &h in hashes.iter() {
                        est.add(h);
                        let key = ((h as u128 * c0 as u128) >> (64 - level)) as u64;
                        placed.push(Buckets::place(shift, start, h, key));
                    }
                    {
                        let mut shared = buckets.lock().expect("buckets lock");
                        for &x in &placed {
                            if shared.push(x) {
                                // A bucket is full: all are written out.
                                shared.flush(writers, workers)?;
                            }
                        }
                    }
                    // Reported under the lock: in order.
                    let mut done = read.lock().expect("progress lock");
                    *done += placed.len() as u64;
                    progress(Report {
                        stage: Stage::Reading,
                        done: *done,
                        total: None,
                    })
                });
                match r {
                    Ok(s) => stats += s,
                    Err(e) => first.fail(e),
                }
            }
            (stats, est)
        });
        let mut stats = KmerStats::default();
        let mut est = hll.lock().expect("estimate lock");
        for h in handles {
            let (s, e) = h.join().expect("a worker does not panic");
            stats += s;
            est.merge(&e);
        }
        reader.join().expect("the reader thread does not panic")?;
        Ok(stats)
    })?;
    first.into_result()?;
    buckets
        .into_inner()
        .expect("buckets lock")
        .flush(&writers, workers)?;
    for w in writers {
        w.into_inner()
            .expect("part lock")
            .into_inner()
            .map_err(|e| MapletError::from(e.into_error()))?;
    }
    Ok(stats)
}

/// The distinct values of sorted `keys`, each with how often it occurs.
fn summed<T: Copy + PartialEq>(keys: &[T]) -> impl Iterator<Item = (T, u64)> + '_ {
    let mut i = 0;
    std::iter::from_fn(move || {
        let &key = keys.get(i)?;
        let n = keys[i..].iter().take_while(|&&x| x == key).count();
        i += n;
        Some((key, n as u64))
    })
}

/// Merges each part's runs into its sorted distinct keys with their
/// counts, `workers` parts at once, in one run per part in new scratch
/// files (in order); each part's file is removed once merged.
fn merge_parts(
    parts: Vec<format::ScratchFile>,
    scratch: &Scratch<'_>,
    workers: usize,
    shifts: &[u32],
    progress: Progress<'_>,
) -> Result<(Vec<format::ScratchFile>, Vec<Vec<Tally>>)> {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Mutex;
    let n = parts.len();
    let entries = (0..n)
        .map(|i| scratch.file(&format!("entries{i}")))
        .collect::<Result<Vec<_>>>()?;
    let parts: Vec<Mutex<Option<format::ScratchFile>>> =
        parts.into_iter().map(|p| Mutex::new(Some(p))).collect();
    let tallies: Vec<Mutex<Vec<Tally>>> = (0..n).map(|_| Mutex::new(Vec::new())).collect();
    let next = AtomicUsize::new(0);
    let counted = AtomicUsize::new(0);
    let first = FirstError::new();
    let merge_one = |i: usize| -> Result<()> {
        let part = parts[i]
            .lock()
            .expect("part lock")
            .take()
            .expect("merged once");
        let mut bytes = Vec::new();
        part.reopen()?.read_to_end(&mut bytes)?;
        drop(part);
        let mut runs = Vec::new();
        let mut at = 0;
        let mut total = 0usize;
        while at < bytes.len() {
            let (run, len) = Run::parse(&bytes[..], at, SCRATCH)?;
            total = total.saturating_add(run.left as usize);
            runs.push(run);
            at += len;
        }
        // A k-way merge, summing equal keys.
        let mut heap = std::collections::BinaryHeap::new();
        for (r, run) in runs.iter_mut().enumerate() {
            if let Some((key, v)) = run.next_entry()? {
                heap.push(std::cmp::Reverse((key, r, v)));
            }
        }
        let mut merged: Vec<(u64, u64)> = Vec::new();
        let mut pending = None;
        while let Some(std::cmp::Reverse((key, r, v))) = heap.pop() {
            if let Some(sum) = add_equal(&mut pending, key, v)? {
                merged.push(sum);
            }
            if let Some((key, v)) = runs[r].next_entry()? {
                heap.push(std::cmp::Reverse((key, r, v)));
            }
        }
        merged.extend(pending);
        drop(runs);
        let mut out = BufWriter::with_capacity(64 << 10, entries[i].file()?);
        if let (Some(first), Some(last)) = (merged.first(), merged.last()) {
            let r = rice_bits(first.0, last.0, merged.len());
            out.write_all(&encode_run(merged.iter().copied(), r))?;
        }
        *tallies[i].lock().expect("tally lock") = shifts
            .iter()
            .map(|&s| Tally::of(&merged, s))
            .collect::<Result<_>>()?;
        out.flush()?;
        progress(Report {
            stage: Stage::Counting,
            done: counted.fetch_add(1, Ordering::Relaxed) as u64 + 1,
            total: Some(n as u64),
        })
    };
    std::thread::scope(|scope| {
        for _ in 0..workers.min(n) {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n || first.stopped() {
                    return;
                }
                if let Err(e) = merge_one(i) {
                    first.fail(e);
                }
            });
        }
    });
    first.into_result()?;
    let tallies = tallies
        .into_iter()
        .map(|t| t.into_inner().expect("tally lock"))
        .collect();
    Ok((entries, tallies))
}

/// The distinct keys of a part cut by some bits, and their largest count;
/// its first and last keys so cut, with their counts, to join the parts.
#[derive(Clone, Copy, Debug, Default)]
struct Tally {
    distinct: usize,
    widest: u64,
    first: (u64, u64),
    last: (u64, u64),
}

impl Tally {
    /// The tally of sorted distinct keys with counts, cut by `shift` bits.
    fn of(entries: &[(u64, u64)], shift: u32) -> Result<Tally> {
        let mut t = Tally::default();
        for e in merge_at(0, entries.iter().map(|&(k, v)| Ok((k, shift, v)))) {
            let (key, v) = e?;
            if t.distinct == 0 {
                t.first = (key, v);
            }
            t.distinct += 1;
            t.widest = t.widest.max(v);
            t.last = (key, v);
        }
        Ok(t)
    }

    /// The tallies of all the parts together (`tallies[part][size]`), one a
    /// size: a key cut short that spans parts is one, its count summed.
    fn combine(tallies: &[Vec<Tally>], sizes: usize) -> Vec<Tally> {
        (0..sizes)
            .map(|s| {
                let mut all = Tally::default();
                let mut carry: Option<(u64, u64)> = None;
                for t in tallies.iter().map(|t| t[s]).filter(|t| t.distinct > 0) {
                    all.distinct += t.distinct;
                    all.widest = all.widest.max(t.widest);
                    carry = match carry {
                        Some((key, v)) if key == t.first.0 => {
                            all.distinct -= 1;
                            let sum = v.saturating_add(t.first.1);
                            all.widest = all.widest.max(sum);
                            Some(if t.distinct == 1 { (key, sum) } else { t.last })
                        }
                        _ => Some(t.last),
                    };
                }
                all
            })
            .collect()
    }
}

/// What a damaged scratch file is called in its error.
const SCRATCH: &str = "a scratch file of k-mer keys";

/// A scratch file's bytes, shared by the runs read from it.
#[derive(Clone)]
struct Shared(Arc<Vec<u8>>);

impl AsRef<[u8]> for Shared {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

/// The entries of a file of runs, read whole, one run after another.
pub(super) fn runs_of(file: Result<File>) -> impl Iterator<Item = Result<(u64, u64)>> {
    let mut state: Option<(Shared, usize, Option<Run<Shared>>)> = None;
    let mut file = Some(file);
    let mut failed = false;
    std::iter::from_fn(move || loop {
        if failed {
            return None;
        }
        let fail = |e: MapletError, failed: &mut bool| {
            *failed = true;
            Some(Err(e))
        };
        if state.is_none() {
            let mut bytes = Vec::new();
            let read = file
                .take()
                .expect("read once")
                .and_then(|mut f| Ok(f.read_to_end(&mut bytes).map(drop)?));
            if let Err(e) = read {
                return fail(e, &mut failed);
            }
            state = Some((Shared(Arc::new(bytes)), 0, None));
        }
        let (bytes, at, run) = state.as_mut().expect("just set");
        if run.is_none() {
            if *at >= bytes.0.len() {
                return None;
            }
            match Run::parse(bytes.clone(), *at, SCRATCH) {
                Ok((r, len)) => {
                    *at += len;
                    *run = Some(r);
                }
                Err(e) => return fail(e, &mut failed),
            }
        }
        match run.as_mut().expect("just set").next_entry() {
            Ok(Some(e)) => return Some(Ok(e)),
            Ok(None) => *run = None,
            Err(e) => return fail(e, &mut failed),
        }
    })
}
