//! The sizes a count can end at, the estimate of its distinct k-mers, and
//! choosing a size and saving the table at it from sorted keys.

use std::path::Path;

use super::report::{KmerStats, Progress, Report, SavedCount, Stage};
use crate::error::{MapletError, Result};
use crate::maplet::{Maplet, Options};
use crate::operator::Counter;
use crate::table::{value_width, MAX_LOAD};

/// The sizes a count can end at: the table built for the hint (or, with
/// none, of one home slot) doubled `k` times, `k` from 0.
pub(super) struct Shapes {
    pub(super) hint: Option<usize>,
    rate: f64,
    options: Options,
    /// Home slots at `k = 0`.
    pub(super) c0: u64,
}

/// Most doublings considered (far past the 2^40 items a maplet holds).
const MAX_DOUBLINGS: u32 = 48;

impl Shapes {
    pub(super) fn new(hint: Option<usize>, rate: f64, options: Options) -> Result<Shapes> {
        // Checks the parameters (its table's pages are never touched).
        Maplet::with_options(hint.unwrap_or(1), rate, Counter, options)?;
        let c0 = match hint {
            // The home slots `with_options(h)` builds.
            Some(h) => crate::maplet::whole_canonical(h),
            None => 1,
        };
        Ok(Shapes {
            hint,
            rate,
            options,
            c0,
        })
    }

    fn canonical(&self, k: u32) -> u64 {
        self.c0 << k
    }

    /// Whether `k` doublings give a maplet of at most 2^40 items.
    pub(super) fn valid(&self, k: u32) -> bool {
        k <= MAX_DOUBLINGS && (self.c0 as u128) << k <= 1u128 << 41
    }

    pub(super) fn max_len(&self, k: u32) -> usize {
        (MAX_LOAD * self.canonical(k) as f64) as usize
    }

    pub(super) fn expected(&self, k: u32) -> usize {
        match self.hint {
            Some(h) => h << k,
            None => self.max_len(k).max(1),
        }
    }

    fn fbits(&self, k: u32) -> u32 {
        Maplet::<Counter>::fbits_for_shape(self.rate, self.options, self.canonical(k))
    }

    /// Bits of a key at `k` doublings beyond those of a home slot at 0:
    /// the key is `floor(hash * c0 * 2^level / 2^64)`.
    pub(super) fn level(&self, k: u32) -> u32 {
        k + self.fbits(k) - 1
    }

    /// The smallest `k` whose maximum load holds `n` entries.
    pub(super) fn holding(&self, n: f64) -> u32 {
        let mut k = 0;
        while self.valid(k + 1) && (self.max_len(k) as f64) < n {
            k += 1;
        }
        k
    }

    /// The empty maplet of `k` doublings, as if built for its size.
    pub(super) fn shell(&self, k: u32, extra_fbits: u32) -> Result<Maplet<Counter>> {
        if !self.valid(k) || self.expected(k) > 1 << 40 {
            return Err(MapletError::InvalidParameter(
                "too many distinct k-mers (more than 2^40)".into(),
            ));
        }
        match self.hint {
            Some(h) if k == 0 && extra_fbits == 0 => {
                Maplet::with_options(h, self.rate, Counter, self.options)
            }
            _ => Maplet::with_shape(
                self.expected(k),
                self.rate,
                Counter,
                self.options,
                self.canonical(k),
                extra_fbits,
            ),
        }
    }
}

/// A distinct-count estimate: HyperLogLog over the k-mers' hashes.
#[derive(Clone)]
pub(super) struct Hll(Vec<u8>);

/// log2 of the registers: 16 KiB, a standard error of about 0.8%.
const HLL_BITS: u32 = 14;

impl Hll {
    pub(super) fn new() -> Hll {
        Hll(vec![0; 1 << HLL_BITS])
    }

    #[inline]
    pub(super) fn add(&mut self, h: u64) {
        let i = (h >> (64 - HLL_BITS)) as usize;
        let rank = ((h << HLL_BITS) | (1 << (HLL_BITS - 1))).leading_zeros() as u8 + 1;
        if rank > self.0[i] {
            self.0[i] = rank;
        }
    }

    pub(super) fn merge(&mut self, o: &Hll) {
        for (a, &b) in self.0.iter_mut().zip(&o.0) {
            *a = (*a).max(b);
        }
    }

    pub(super) fn estimate(&self) -> f64 {
        let m = self.0.len() as f64;
        let sum: f64 = self.0.iter().map(|&r| 2f64.powi(-(r as i32))).sum();
        let zeros = self.0.iter().filter(|&&r| r == 0).count();
        let raw = 0.7213 / (1.0 + 1.079 / m) * m * m / sum;
        if raw <= 2.5 * m && zeros > 0 {
            m * (m / zeros as f64).ln()
        } else {
            raw
        }
    }
}

/// The final number of doublings: the smallest from `floor` whose
/// maximum load holds the distinct keys at its size, counted from the
/// sorted entries (key, its level, count) that `entries` makes, whose
/// levels are all at least `top`; looked for from `from` up (and from
/// `floor` if `from` holds them). `None` if it needs a level above `top`.
pub(super) fn choose<I>(
    shapes: &Shapes,
    floor: u32,
    from: u32,
    top: u32,
    entries: &impl Fn() -> I,
) -> Result<Option<u32>>
where
    I: Iterator<Item = Result<(u64, u32, u64)>>,
{
    let (mut floor, mut lo) = (floor, from.max(floor));
    loop {
        // A few sizes a pass, from the smallest not yet ruled out.
        let ks: Vec<u32> = (lo..lo + 6)
            .filter(|&k| shapes.valid(k) && shapes.level(k) <= top)
            .collect();
        if ks.is_empty() {
            return Ok(None);
        }
        let levels: Vec<u32> = ks.iter().map(|&k| shapes.level(k)).collect();
        let mut last: Vec<Option<u64>> = vec![None; ks.len()];
        let mut distinct = vec![0usize; ks.len()];
        for e in entries() {
            let (key, level, _) = e?;
            for i in 0..ks.len() {
                let kk = key >> (level - levels[i]);
                if last[i] != Some(kk) {
                    last[i] = Some(kk);
                    distinct[i] += 1;
                }
            }
        }
        match (0..ks.len()).find(|&i| distinct[i] <= shapes.max_len(ks[i])) {
            Some(0) if lo > floor => (lo, floor) = (floor, lo),
            Some(i) => return Ok(Some(ks[i])),
            None => lo = ks[ks.len() - 1] + 1,
        }
    }
}

/// Saves the maplet of `k` doublings holding the sorted `entries` (key,
/// its level, count), merged at its size.
/// `known`: the distinct keys and the largest count at that size, if
/// counted already.
pub(super) fn build<I>(
    shapes: &Shapes,
    k: u32,
    out: &Path,
    entries: &impl Fn() -> I,
    known: Option<(usize, u64)>,
    progress: Progress<'_>,
) -> Result<SavedCount>
where
    I: Iterator<Item = Result<(u64, u32, u64)>>,
{
    let level = shapes.level(k);
    let (distinct, widest) = match known {
        Some(known) => known,
        None => {
            let (mut distinct, mut widest) = (0usize, 0u64);
            for e in merge_at(level, entries()) {
                let (_, v) = e?;
                distinct += 1;
                widest = widest.max(v);
            }
            (distinct, widest)
        }
    };
    let widest = i64::try_from(widest)
        .map_err(|_| MapletError::InvalidValue("a k-mer count overflows 63 bits".into()))?;
    let shell = shapes.shell(k, 0)?;
    let fb = shell.fbits();
    let total = Some(distinct as u64);
    let mut written = 0u64;
    let rows = merge_at(level, entries()).map(|e| {
        let (key, v) = e?;
        written += 1;
        if written % (1 << 20) == 0 {
            progress(Report {
                stage: Stage::Saving,
                done: written,
                total,
            })?;
        }
        let fp = key & ((1u64 << (fb - 1)) - 1);
        Ok((key >> (fb - 1), (fp << 1) | 1, v as i64))
    });
    let saved = shell.save_entries(out, value_width(widest, false).max(1), false, rows)?;
    debug_assert_eq!(saved, distinct);
    Ok(SavedCount {
        stats: KmerStats::default(),
        distinct,
        expected_items: shapes.expected(k),
        input_passes: 1,
    })
}

/// The sorted `entries` (key, its level, count) cut to keys of `level`
/// bits, equal keys summed.
pub(super) fn merge_at(
    level: u32,
    entries: impl Iterator<Item = Result<(u64, u32, u64)>>,
) -> impl Iterator<Item = Result<(u64, u64)>> {
    sum_equal(entries.map(move |e| e.map(|(key, l, v)| (key >> (l - level), v))))
}

/// Sorted keys with counts, equal neighbours summed into one; an error
/// where `entries` has one, or where a sum overflows 64 bits.
pub(super) fn sum_equal(
    mut entries: impl Iterator<Item = Result<(u64, u64)>>,
) -> impl Iterator<Item = Result<(u64, u64)>> {
    let mut pending: Option<(u64, u64)> = None;
    std::iter::from_fn(move || loop {
        match entries.next() {
            Some(Ok((key, v))) => match add_equal(&mut pending, key, v) {
                Ok(None) => {}
                done => return done.transpose(),
            },
            Some(Err(e)) => return Some(Err(e)),
            None => return pending.take().map(Ok),
        }
    })
}

/// The step of summing equal neighbours of a sorted stream: `(key, v)` is
/// added to `pending` if it has the same key (`None`); otherwise it
/// becomes `pending` and the sum it ends is returned.
///
/// # Errors
/// [`MapletError::InvalidValue`] if the sum overflows 64 bits.
#[inline(always)]
pub(super) fn add_equal(
    pending: &mut Option<(u64, u64)>,
    key: u64,
    v: u64,
) -> Result<Option<(u64, u64)>> {
    match pending {
        Some((pk, pv)) if *pk == key => {
            *pv = pv.checked_add(v).ok_or_else(|| {
                MapletError::InvalidValue("a k-mer count overflows 64 bits".into())
            })?;
            Ok(None)
        }
        _ => Ok(pending.replace((key, v))),
    }
}
