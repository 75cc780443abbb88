//! k-mers packed two bits a base, their canonical forms, and the keys and
//! hashes counting stores for them.

use super::report::KmerStats;
use crate::error::{MapletError, Result};
use crate::hash::{hash_str, hash_str_bytes};

/// The two-bit code of each byte, 4 for a byte that is not a base: a
/// lookup, where a `match` would branch four ways on every (random) base.
static CODES: [u8; 256] = {
    let mut t = [4u8; 256];
    let mut i = 0;
    while i < 4 {
        t[b"ACGT"[i] as usize] = i as u8;
        t[b"acgt"[i] as usize] = i as u8;
        i += 1;
    }
    t
};

pub(super) fn check_k(k: usize) -> Result<()> {
    if (1..=32).contains(&k) {
        Ok(())
    } else {
        Err(MapletError::InvalidParameter(format!(
            "k must be between 1 and 32, got {k}"
        )))
    }
}

/// The text of a packed k-mer, upper case, in `text[..k]`.
#[inline]
fn spell(packed: u64, k: usize, text: &mut [u8; 32]) {
    // Four bases a byte of the packed k-mer, left-aligned: eight lookups.
    let left = packed << (64 - 2 * k);
    for (j, four) in text.chunks_exact_mut(4).enumerate() {
        four.copy_from_slice(&FOUR_BASES[(left >> (56 - 8 * j)) as u8 as usize]);
    }
}

/// Replaces each packed k-mer of `packed` by its hash: its text, hashed as
/// a string key. The texts of a block of k-mers are spelled before any of
/// them is hashed: hashing a text just written reads it in words that
/// straddle the four-byte writes, which the processor cannot forward from
/// its store buffer (2.7x slower, measured).
pub(super) fn hash_packed(packed: &mut [u64], k: usize, seed: u64) {
    const BLOCK: usize = 64;
    let mut texts = [[0u8; 32]; BLOCK];
    for block in packed.chunks_mut(BLOCK) {
        for (p, text) in block.iter().zip(texts.iter_mut()) {
            spell(*p, k, text);
        }
        for (p, text) in block.iter_mut().zip(&texts) {
            // The bytes of the k-mer's text, as `hash_str` hashes them.
            *p = hash_str_bytes(&text[..k], seed);
        }
    }
}

/// The text of each byte of packed bases (four, the first in the top bits).
static FOUR_BASES: [[u8; 4]; 256] = {
    let mut t = [[0u8; 4]; 256];
    let mut b = 0;
    while b < 256 {
        let mut i = 0;
        while i < 4 {
            t[b][i] = b"ACGT"[(b >> (6 - 2 * i)) & 3];
            i += 1;
        }
        b += 1;
    }
    t
};

/// Packed k-mers handed on at once at most (512 KiB of them): a long
/// sequence (a whole chromosome) is handed on in pieces, never needing 8
/// bytes of memory per base.
pub(super) const PACKED_BATCH: usize = 1 << 16;

/// Calls `batch` with the packed (canonical) k-mers of `seqs` (each with
/// whether it goes on from the one before, as [`for_each_kmer`]) in order, in
/// `buf`, at most [`PACKED_BATCH`] at a time; the last call (made even if
/// there are none) is given what `seqs` held. After the first error of
/// `batch`, the k-mers left are read but not handed on, and it is returned.
pub(super) fn packed_batches<'s>(
    seqs: impl IntoIterator<Item = (&'s [u8], bool)>,
    k: usize,
    canonical: bool,
    buf: &mut Vec<u64>,
    mut batch: impl FnMut(&mut Vec<u64>, Option<KmerStats>) -> Result<()>,
) -> Result<KmerStats> {
    let mut stats = KmerStats::default();
    let mut result = Ok(());
    buf.clear();
    for (seq, cont) in seqs {
        for_each_kmer(seq, cont, k, canonical, &mut stats, |p| {
            if result.is_ok() {
                buf.push(p);
                if buf.len() >= PACKED_BATCH {
                    result = batch(buf, None);
                    buf.clear();
                }
            }
        });
    }
    result?;
    batch(buf, Some(stats))?;
    buf.clear();
    Ok(stats)
}

/// Calls `emit` with the packed (canonical) k-mers of `seq`, in order.
/// `cont`: `seq` goes on from a piece before it, whose last `k - 1` bases
/// it repeats (see [`Piece`](super::read::Piece)): counted as no new sequence and none of
/// those bases.
pub(super) fn for_each_kmer(
    seq: &[u8],
    cont: bool,
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
        let c = CODES[b as usize] as u64;
        if c > 3 {
            valid = 0;
            continue;
        }
        fwd = ((fwd << 2) | c) & mask;
        rev = (rev >> 2) | ((3 - c) << shift);
        valid += 1;
        if valid >= k {
            counted += 1;
            emit(if canonical { fwd.min(rev) } else { fwd });
        }
    }
    stats.sequences += u64::from(!cont);
    stats.bases += (seq.len() - if cont { k - 1 } else { 0 }) as u64;
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
/// ([`Maplet::query_many_hashes`](crate::Maplet::query_many_hashes)).
/// `Err(i)` when the `i`-th (from 0) is not a k-mer.
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
