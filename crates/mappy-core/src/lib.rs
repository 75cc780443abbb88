//! Maplets: space-efficient approximate key-value maps.
//!
//! A [`Maplet`] stores, for each key, a short fingerprint and a value, packed
//! in a quotient-filter slot table: `O(log 1/ε + v)` bits per item, never the
//! keys themselves. Keys whose fingerprints collide share one entry whose
//! value is merged by the maplet's [`Operator`], so answers err in one
//! direction only (a count is never too low, a set never too small) and are
//! exact with probability at least `1 - ε`.
//!
//! The design follows Bender, Conway, Farach-Colton, Johnson and Pandey,
//! *Time To Replace Your Filter: How Maplets Simplify System Design* (2025),
//! on a rank-and-select quotient filter (Pandey et al., *A General-Purpose
//! Counting Filter*, 2017).
//!
//! ```
//! use mappy_core::{Maplet, Counter};
//!
//! let mut kmers = Maplet::new(1000, 0.01, Counter).unwrap();
//! for kmer in ["ATC", "TCG", "CGA", "GAT", "ATC"] {
//!     kmers.insert(kmer, 1).unwrap();
//! }
//! assert!(kmers.query("ATC").unwrap() >= 2);
//! ```
#![warn(missing_docs)]
#![deny(unsafe_code)]
// Slot and block indices are the natural loop variables of the slot table.
#![allow(clippy::needless_range_loop)]

mod any;
pub mod error;
pub mod format;
pub mod hash;
#[cfg(feature = "kmers")]
pub mod kmer;
mod maplet;
pub mod operator;
pub mod plain;
mod runs;
pub mod shard;
mod side;
mod sort;
mod storage;
mod table;
pub mod transfer;

pub use any::{AnyMaplet, Stored};
pub use error::{MapletError, Result};
pub use format::ValueCodec;
pub use hash::{Key, DEFAULT_SEED};
pub use maplet::{Entry, Maplet, Options, Stats, MIN_REACH};
pub use operator::{Counter, Custom, Max, Min, Operator, OperatorKind, SetUnion, VectorAdd};
pub use storage::FrozenBytes;
