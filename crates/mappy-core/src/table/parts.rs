//! A table's words as the rest of the crate sees them: the heap bytes a
//! table of given widths takes, a table from serialized parts, and its
//! words for serialization, memory maps and copies.

use super::{Table, MAX_FBITS};
use crate::storage::{AllocError, Words};

impl Table {
    /// Heap bytes a table with these parameters takes when empty
    /// (saturating: a size past `usize` reads as `usize::MAX`).
    pub(crate) fn bytes_for(canonical: u64, fbits: u32, vbits: u32) -> usize {
        (Self::blocks_for(canonical) / 2)
            .saturating_mul(Self::stride_for(fbits, vbits))
            .saturating_mul(8)
    }

    /// Heap bytes after a [`reformat`](Table::reformat) or doubling.
    pub(crate) fn bytes_after(&self, canonical: u64, fbits: u32, vbits: u32) -> usize {
        let extra = self
            .nblocks()
            .saturating_sub(Self::blocks_for(self.canonical));
        ((Self::blocks_for(canonical) + extra) / 2)
            .saturating_mul(Self::stride_for(fbits, vbits))
            .saturating_mul(8)
    }

    /// Whether the table is a read-only memory map.
    pub(crate) fn is_mapped(&self) -> bool {
        self.words.is_mapped()
    }

    /// Whether the table's words can be written where they are (see
    /// [`Words::is_own`]).
    #[inline]
    pub(crate) fn owns_words(&self) -> bool {
        self.words.is_own()
    }

    /// Copies words borrowed from frozen bytes into memory of the table's
    /// own (see [`Words::own`]).
    pub(crate) fn own_words(&mut self) -> Result<(), AllocError> {
        self.words.own()
    }

    /// The words, for serialization.
    pub(crate) fn words(&self) -> &[u64] {
        &self.words
    }

    /// The whole file, for a table memory-mapped from one.
    pub(crate) fn file_bytes(&self) -> Option<&[u8]> {
        self.words.file_bytes()
    }

    /// A copy in memory of its own; an error if the memory cannot be had.
    pub(crate) fn try_clone(&self) -> Result<Table, crate::storage::AllocError> {
        Ok(Self::assemble(
            self.canonical,
            self.fbits,
            self.vbits,
            self.signed,
            self.words.try_clone()?,
            self.len,
            self.len_hist,
        ))
    }

    /// A table from serialized parts; checks that the sizes agree (but not
    /// the contents: see [`validate`](Table::validate)).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn from_parts(
        canonical: u64,
        fbits: u32,
        vbits: u32,
        signed: bool,
        words: Words,
        len: usize,
        len_hist: [u64; 64],
    ) -> Result<Table, String> {
        if canonical == 0 || canonical > 1 << 48 {
            return Err(format!("{canonical} home slots"));
        }
        if !(2..=MAX_FBITS).contains(&fbits) || !(1..=64).contains(&vbits) {
            return Err(format!(
                "field width {fbits} or value width {vbits} out of range"
            ));
        }
        let stride = Self::stride_for(fbits, vbits);
        if words.len() % stride != 0 || words.len() / stride * 2 < Self::blocks_for(canonical) {
            return Err(format!(
                "{} words do not hold {canonical} home slots",
                words.len()
            ));
        }
        Ok(Self::assemble(
            canonical, fbits, vbits, signed, words, len, len_hist,
        ))
    }
}
