//! The errors a maplet can report.

use std::fmt;

/// Everything that can go wrong in a maplet operation.
///
/// Every fallible operation leaves the maplet exactly as it was when it
/// returns an error: nothing is half-written.
#[derive(Debug)]
#[non_exhaustive]
pub enum MapletError {
    /// A constructor argument is out of range (the message says which).
    InvalidParameter(String),
    /// A value cannot be merged or stored: an overflowing counter, vectors
    /// of different lengths, a value of the wrong kind.
    InvalidValue(String),
    /// A number does not fit: a counter would pass the range of `i64`.
    Overflow(String),
    /// The operation needs more memory than the configured limit allows.
    MemoryLimit {
        /// Bytes the maplet would need after the operation.
        needed: usize,
        /// The configured limit, in bytes.
        limit: usize,
    },
    /// Two maplets cannot be merged because they were built differently.
    Incompatible(String),
    /// A user-supplied merge function failed; the original error is kept so
    /// that a binding can hand it back unchanged.
    Operator(Box<dyn std::error::Error + Send + Sync>),
    /// Serialized data is truncated, corrupted or of an unknown version.
    Corrupt(String),
    /// Reading or writing a file failed.
    Io(std::io::Error),
    /// The maplet is memory-mapped read-only; a copy can be modified.
    ReadOnly,
    /// The system refused memory the operation needed (an allocation or an
    /// anonymous mapping failed, or a size overflowed). Nothing changed:
    /// the maplet is exactly as it was.
    OutOfMemory {
        /// Bytes of the allocation that failed (`usize::MAX` when the size
        /// itself does not fit in a `usize`).
        bytes: usize,
    },
    /// The maplet cannot grow any further: with
    /// [`fixed_precision`](crate::Options::fixed_precision) every doubling
    /// moves one fingerprint bit into the home slot, and once the
    /// fingerprints have none left another doubling would have to copy
    /// every entry into both halves. Nothing changed. Build the maplet for
    /// more `expected_items`.
    CapacityExhausted(String),
}

impl From<std::io::Error> for MapletError {
    fn from(e: std::io::Error) -> Self {
        MapletError::Io(e)
    }
}

impl fmt::Display for MapletError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MapletError::InvalidParameter(m) => write!(f, "invalid parameter: {m}"),
            MapletError::InvalidValue(m) => write!(f, "invalid value: {m}"),
            MapletError::Overflow(m) => write!(f, "overflow: {m}"),
            MapletError::MemoryLimit { needed, limit } => write!(
                f,
                "memory limit reached: the maplet would need {needed} bytes, the limit is {limit} bytes"
            ),
            MapletError::Incompatible(m) => write!(f, "incompatible maplets: {m}"),
            MapletError::Operator(e) => write!(f, "merge operator failed: {e}"),
            MapletError::Corrupt(m) => write!(f, "corrupt maplet data: {m}"),
            MapletError::Io(e) => write!(f, "I/O error: {e}"),
            MapletError::ReadOnly => write!(f, "the maplet is memory-mapped read-only; modify a copy of it instead"),
            MapletError::OutOfMemory { bytes } => write!(f, "out of memory: an allocation of {bytes} bytes failed"),
            MapletError::CapacityExhausted(m) => write!(f, "the maplet cannot grow further: {m}"),
        }
    }
}

impl std::error::Error for MapletError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            MapletError::Operator(e) => Some(e.as_ref()),
            MapletError::Io(e) => Some(e),
            _ => None,
        }
    }
}

/// Shorthand for results of maplet operations.
pub type Result<T, E = MapletError> = std::result::Result<T, E>;
