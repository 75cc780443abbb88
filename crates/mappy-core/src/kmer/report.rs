//! What counting reports: input statistics, progress, what a saved count did.

use crate::error::Result;

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

/// The stages of [`count_files_to_path`](super::count_files_to_path).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    /// Reading and hashing the input (`done`: k-mers so far).
    Reading,
    /// Counting the parts (`done`: parts counted).
    Counting,
    /// Building and saving the table (`done`: entries written).
    Saving,
}

/// How far [`count_files_to_path`](super::count_files_to_path) is: of its
/// `stage`, `done` out of `total` (`None` when not known beforehand).
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

/// What [`count_files_to_path`](super::count_files_to_path) did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SavedCount {
    /// What the input held.
    pub stats: KmerStats,
    /// Distinct k-mers (entries) in the saved maplet.
    pub distinct: usize,
    /// The expected items the saved maplet was built for: the ones asked
    /// for, a multiple when the k-mers did not fit them, or without a
    /// hint 95% of its home slots.
    pub expected_items: usize,
    /// Times the input was read: 1 in parts; in memory 1 when the hint
    /// held the k-mers, else 2 (3 only when the estimate fell more than 3%
    /// short, about 4 standard errors of its HyperLogLog).
    pub input_passes: u32,
}
