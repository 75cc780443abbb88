//! Counting with the whole table in memory: one table a worker, each for
//! its range of home slots, after an estimating pass when there is no hint.

use std::path::Path;
use std::sync::mpsc;

use super::encode::for_each_kmer;
use super::read::{fan_out, hash_files, FirstError, Input};
use super::report::{KmerStats, Progress, Report, SavedCount, Stage};
use super::size::{build, choose, Hll, Shapes};
use crate::error::Result;
use crate::maplet::Maplet;
use crate::operator::Counter;

/// Inserts `hashes` into `m` unless that would double its table: `false`
/// (and `m` partly filled) then.
fn insert_capped(m: &mut Maplet<Counter>, hashes: &[u64]) -> Result<bool> {
    let max_len = m.max_len();
    if m.len() + hashes.len() < max_len {
        m.insert_hashes_streaming(hashes, 1).map_err(|(_, e)| e)?;
        return Ok(true);
    }
    for &h in hashes {
        if m.len() >= max_len && !m.contains_hash(h) {
            return Ok(false);
        }
        m.insert_hash(h, 1)?;
    }
    Ok(true)
}

pub(super) fn count_in_memory(
    input: &Input<'_>,
    out: &Path,
    shapes: &Shapes,
    progress: Progress<'_>,
) -> Result<SavedCount> {
    let hll = std::sync::Mutex::new(Hll::new());
    let mut passes = 0;
    let mut lowest = 0;
    // The size to count at: the hint's; else, once estimated, one that
    // holds a few percent more (a smaller size is cut from it).
    let mut guess = shapes.hint.map(|_| 0);
    loop {
        passes += 1;
        let Some(g) = guess else {
            let estimate = estimate_files(input, progress)?;
            guess = Some(shapes.holding(estimate * 1.03).max(lowest));
            continue;
        };
        let estimating = passes == 1;
        let (read, tables) = count_tables(input, progress, estimating.then_some(&hll), &|| {
            shapes.shell(g, 0)
        })?;
        let Some(tables) = tables else {
            // More distinct k-mers than this size holds.
            lowest = g + 1;
            guess = Some(if estimating {
                let estimate = hll.lock().expect("estimate lock").estimate();
                shapes.holding(estimate * 1.03).max(lowest)
            } else {
                lowest
            });
            continue;
        };
        let fbits = tables[0].fbits();
        let entries = || {
            tables.iter().flat_map(move |m| {
                m.raw_entries().map(move |(q, field, v)| {
                    let fp = field >> 1;
                    Ok(((q << (fbits - 1)) | fp, g + fbits - 1, v as u64))
                })
            })
        };
        let top = shapes.level(g);
        let k = if g == lowest {
            g
        } else {
            choose(shapes, lowest, g.saturating_sub(2), top, &entries)?.unwrap_or(g)
        };
        let saved = build(shapes, k, out, &entries, None, progress)?;
        return Ok(SavedCount {
            stats: read,
            input_passes: passes,
            ..saved
        });
    }
}

/// Estimates the distinct k-mers of the input (HyperLogLog) without their
/// keys: a pass that only packs the k-mers and mixes each into its
/// register (a bijection of the packed k-mer, so distinct k-mers stay
/// distinct), much cheaper than hashing their text.
pub(super) fn estimate_files(input: &Input<'_>, progress: Progress<'_>) -> Result<f64> {
    use std::sync::Mutex;
    let (k, canonical, workers) = (input.k, input.canonical, input.workers);
    let first = FirstError::new();
    let read = Mutex::new(0u64);
    let hll = Mutex::new(Hll::new());
    std::thread::scope(|scope| -> Result<()> {
        let (first, read, hll) = (&first, &read, &hll);
        let (reader, _) = fan_out(scope, input.paths, input.k, workers, move |chunks| {
            let mut est = Hll::new();
            let mut stats = KmerStats::default();
            for chunk in chunks {
                if first.stopped() {
                    // Every worker stops; the reader, finding no one
                    // to take its chunks, then stops too.
                    break;
                }
                let before = stats.kmers;
                for piece in &chunk {
                    let (seq, cont) = (&piece.seq, piece.cont);
                    for_each_kmer(seq, cont, k, canonical, &mut stats, |p| est.add(mix(p)));
                }
                let mut done = read.lock().expect("progress lock");
                *done += stats.kmers - before;
                let r = progress(Report {
                    stage: Stage::Reading,
                    done: *done,
                    total: None,
                });
                if let Err(e) = r {
                    first.fail(e);
                    break;
                }
            }
            hll.lock().expect("estimate lock").merge(&est);
        });
        reader.join().expect("the reader thread does not panic")
    })?;
    first.into_result()?;
    Ok(hll.into_inner().expect("estimate lock").estimate())
}

/// A bijection of `u64` whose outputs look random (the finaliser of
/// MurmurHash3): distinct packed k-mers get distinct, well-spread values.
#[inline]
fn mix(mut x: u64) -> u64 {
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^= x >> 33;
    x = x.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    x ^ (x >> 33)
}

/// Counts the input into tables that `make` makes, one a worker, each
/// for its range of home slots (the rest of its table is never touched,
/// so costs no memory): together, in order, their entries are those of one
/// table. `None` for the tables if their entries would outnumber the
/// table's maximum load. With `hll`, the hashes are also added to it.
#[allow(clippy::type_complexity)]
fn count_tables(
    input: &Input<'_>,
    progress: Progress<'_>,
    hll: Option<&std::sync::Mutex<Hll>>,
    make: &(dyn Fn() -> Result<Maplet<Counter>> + Sync),
) -> Result<(KmerStats, Option<Vec<Maplet<Counter>>>)> {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let ranges = input.workers;
    let tables = (0..ranges).map(|_| make()).collect::<Result<Vec<_>>>()?;
    let canonical = tables[0].capacity();
    let max_len = tables[0].max_len();
    let total = AtomicUsize::new(0);
    // Stopped, without an error, when the entries outnumber the maximum load.
    let first = FirstError::new();
    let (stats, tables) = std::thread::scope(|scope| -> Result<_> {
        let mut senders = Vec::new();
        let mut handles = Vec::new();
        for mut m in tables {
            let (tx, rx) = mpsc::sync_channel::<Vec<u64>>(4);
            senders.push(tx);
            let (total, first) = (&total, &first);
            handles.push(scope.spawn(move || {
                let mut insert = |hashes: &[u64]| {
                    let before = m.len();
                    let fits = match insert_capped(&mut m, hashes) {
                        Ok(fits) => fits,
                        Err(e) => {
                            first.fail(e);
                            false
                        }
                    };
                    let added = m.len() - before;
                    if !fits || total.fetch_add(added, Ordering::Relaxed) + added > max_len {
                        first.stop();
                    }
                };
                let (mut pending, mut ordered) = (Vec::new(), Vec::new());
                for batch in rx {
                    if first.stopped() {
                        continue;
                    }
                    pending.extend_from_slice(&batch);
                    if pending.len() >= ORDERED_BATCH {
                        in_table_order(&pending, &mut ordered);
                        insert(&ordered);
                        pending.clear();
                    }
                }
                if !first.stopped() {
                    in_table_order(&pending, &mut ordered);
                    insert(&ordered);
                }
                m
            }));
        }
        // A home slot's range: `q * per_slot / 2^64`, below `ranges` for
        // every slot, and never smaller for a larger slot.
        let per_slot = ((ranges as u128) << 64).div_ceil(canonical as u128);
        let mut split: Vec<Vec<u64>> = vec![Vec::new(); ranges];
        let stats = hash_files(input, progress, hll, |hashes| {
            if first.stopped() {
                return Ok(());
            }
            for &h in hashes {
                let q = (h as u128 * canonical as u128) >> 64;
                split[((q * per_slot) >> 64) as usize].push(h);
            }
            for (tx, batch) in senders.iter().zip(&mut split) {
                if !batch.is_empty() {
                    // A table's thread ends only with the channel.
                    let _ = tx.send(std::mem::take(batch));
                }
            }
            Ok(())
        });
        drop(senders);
        let tables: Vec<_> = handles
            .into_iter()
            .map(|h| h.join().expect("a counting thread does not panic"))
            .collect();
        Ok((stats?, tables))
    })?;
    let over = first.stopped();
    first.into_result()?;
    Ok((stats, (!over).then_some(tables)))
}

/// Hashes a counting thread gathers before it inserts them, in the order
/// of [`in_table_order`] (1 MiB).
const ORDERED_BATCH: usize = 1 << 17;

/// `hashes` into `out` by their top 12 bits (one counting-sort pass): the
/// order of their home slots, to 1/4096 of the table, so that inserting
/// them sweeps the table instead of jumping about it.
fn in_table_order(hashes: &[u64], out: &mut Vec<u64>) {
    let mut at = vec![0usize; 1 << 12];
    for &h in hashes {
        at[(h >> 52) as usize] += 1;
    }
    let mut sum = 0;
    for a in &mut at {
        (*a, sum) = (sum, sum + *a);
    }
    out.clear();
    out.resize(hashes.len(), 0);
    for &h in hashes {
        let b = &mut at[(h >> 52) as usize];
        out[*b] = h;
        *b += 1;
    }
}
