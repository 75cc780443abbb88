//! A maplet read back: from bytes, frozen bytes and files, every size and
//! invariant checked.

use std::path::Path;
use std::sync::Arc;

use super::header::Header;
use super::Maplet;
use crate::error::{MapletError, Result};
use crate::format::{self, ValueCodec};
use crate::operator::Operator;
use crate::storage::{FrozenBytes, Words};

/// Bytes from which [`Maplet::from_bytes_with`] computes a packed maplet's
/// checksum beside the rest (a megabyte: below, a thread costs more
/// than it saves).
const OVERLAP_BYTES: usize = 1 << 20;

impl<O: Operator> Maplet<O> {
    /// Reads a maplet written by [`to_bytes_with`](Maplet::to_bytes_with),
    /// side-stored values read by `decode`. Safe on untrusted input.
    ///
    /// # Errors
    /// [`MapletError::Corrupt`] for truncated, damaged, hostile or
    /// wrong-version data (checked: the checksum, every size before it is
    /// allocated, every table invariant); [`MapletError::Incompatible`] when
    /// the data holds another operator's maplet; the errors of `decode`.
    pub fn from_bytes_with(
        bytes: &[u8],
        op: O,
        decode: impl FnMut(&[u8]) -> Result<O::Value>,
    ) -> Result<Self> {
        Self::read_bytes(bytes, None, op, decode)
    }

    /// [`from_frozen_bytes`](Maplet::from_frozen_bytes) with side-stored
    /// values read by `decode`, as [`from_bytes_with`](Maplet::from_bytes_with).
    ///
    /// # Errors
    /// As [`from_bytes_with`](Maplet::from_bytes_with).
    pub fn from_frozen_bytes_with(
        owner: Arc<dyn FrozenBytes>,
        op: O,
        decode: impl FnMut(&[u8]) -> Result<O::Value>,
    ) -> Result<Self> {
        Self::read_bytes(owner.bytes(), Some(&owner), op, decode)
    }

    /// [`from_bytes_with`](Maplet::from_bytes_with) of `bytes`, which, with
    /// `frozen`, lie inside its bytes: the table then borrows its words.
    pub(crate) fn read_bytes(
        bytes: &[u8],
        frozen: Option<&Arc<dyn FrozenBytes>>,
        op: O,
        decode: impl FnMut(&[u8]) -> Result<O::Value>,
    ) -> Result<Self> {
        // Large packed maplets (nothing decoded, nothing but memory written)
        // have their checksum computed on a thread of its own while the
        // rest is read and checked; a mismatch is still the error reported.
        if O::PACKED && bytes.len() >= OVERLAP_BYTES {
            return std::thread::scope(|scope| {
                let sum = std::thread::Builder::new()
                    .spawn_scoped(scope, || format::verified(bytes).map(|_| ()));
                let Ok(sum) = sum else {
                    format::verified(bytes)?;
                    return Self::from_body(&bytes[..bytes.len() - 8], frozen, op, decode);
                };
                let read = Self::from_body(&bytes[..bytes.len() - 8], frozen, op, decode);
                match sum.join() {
                    Ok(Ok(())) => read,
                    Ok(Err(e)) => Err(e),
                    Err(_) => Err(MapletError::Corrupt("the checksum was not computed".into())),
                }
            });
        }
        Self::from_body(format::verified(bytes)?, frozen, op, decode)
    }

    /// [`from_bytes_with`](Maplet::from_bytes_with) of the bytes before the
    /// checksum, which is checked apart (inside `frozen`'s bytes, if
    /// given). Whatever `body` holds, only reads within it and allocations
    /// no larger than it.
    fn from_body(
        body: &[u8],
        frozen: Option<&Arc<dyn FrozenBytes>>,
        op: O,
        decode: impl FnMut(&[u8]) -> Result<O::Value>,
    ) -> Result<Self> {
        let (header, table_offset, words_len) = Header::read(body, body.len(), &op)?;
        let (words_bytes, side_bytes) = Header::parts(body, table_offset, words_len, &header)?;
        #[cfg(target_endian = "little")]
        let borrowed = frozen.and_then(|owner| Words::borrowed(owner, words_bytes));
        #[cfg(not(target_endian = "little"))]
        let borrowed = frozen.and(None);
        let words = match borrowed {
            Some(words) => words,
            // Sized by the input's own length, and still fallible.
            None => Words::try_from_le_bytes(words_bytes)?,
        };
        header.into_maplet(op, words, side_bytes, decode)
    }

    /// [`from_bytes_with`](Maplet::from_bytes_with) on a file read as a
    /// [`format::SplitFile`] whose checksum the caller has checked
    /// ([`format::SplitFile::verify`]): the same checks, after which the
    /// table's words, read to the front of its words, stay there (no
    /// second copy, nothing moved).
    ///
    /// # Errors
    /// As [`from_bytes_with`](Maplet::from_bytes_with).
    #[cfg(target_endian = "little")]
    pub(crate) fn from_verified_file(
        file: format::SplitFile,
        op: O,
        decode: impl FnMut(&[u8]) -> Result<O::Value>,
    ) -> Result<Self> {
        if file.rest_len == 0 {
            // A small or malformed file, read whole into its head.
            return Self::from_body(&file.head[..file.head.len() - 8], None, op, decode);
        }
        let body_len = file.head.len() + file.rest_len - 8;
        let (header, table_offset, words_len) = Header::read(&file.head, body_len, &op)?;
        if table_offset != file.head.len() {
            return Err(MapletError::Corrupt(
                "the table does not start where the header says".into(),
            ));
        }
        let rest = file.rest_bytes();
        let (_, side_bytes) = Header::parts(&rest[..rest.len() - 8], 0, words_len, &header)?;
        let mut side = Vec::new();
        side.try_reserve_exact(side_bytes.len())
            .map_err(|_| MapletError::OutOfMemory {
                bytes: side_bytes.len(),
            })?;
        side.extend_from_slice(side_bytes);
        let mut words = file.rest;
        words.truncate(words_len);
        header.into_maplet(op, words, &side, decode)
    }

    /// Loads a maplet saved by [`save_with`](Maplet::save_with).
    ///
    /// Only a regular file is read (a symbolic link to one is followed),
    /// and never more of it than its length said when it was opened: a
    /// directory, a FIFO, a device such as `/dev/zero` or a socket is
    /// refused before anything is read (on Linux a FIFO is opened
    /// non-blocking, so that opening one does not wait for a writer).
    ///
    /// # Errors
    /// [`MapletError::Corrupt`] for a path that is not a regular file
    /// (directories included) or a file whose length changed while it was
    /// read; [`MapletError::Io`] when it cannot be opened or read;
    /// [`MapletError::OutOfMemory`] when its bytes cannot be allocated; and
    /// those of [`from_bytes_with`](Maplet::from_bytes_with).
    pub fn load_with(
        path: impl AsRef<Path>,
        op: O,
        decode: impl FnMut(&[u8]) -> Result<O::Value>,
    ) -> Result<Self> {
        #[cfg(target_endian = "little")]
        {
            let file = format::read_regular_split(path.as_ref())?;
            file.verify()?;
            Self::from_verified_file(file, op, decode)
        }
        #[cfg(not(target_endian = "little"))]
        Self::from_bytes_with(&format::read_regular(path.as_ref())?, op, decode)
    }
}

impl<O: Operator> Maplet<O>
where
    O::Value: ValueCodec,
{
    /// Reads a maplet written by [`to_bytes`](Maplet::to_bytes).
    ///
    /// # Errors
    /// As [`from_bytes_with`](Maplet::from_bytes_with).
    pub fn from_bytes(bytes: &[u8], op: O) -> Result<Self> {
        Self::from_bytes_with(bytes, op, O::Value::decode)
    }

    /// [`from_bytes`](Maplet::from_bytes) of bytes that stay as they are
    /// (a Python `bytes` object, say): every check is the same, but the
    /// table reads its words where they lie in `owner`, which it keeps
    /// alive, instead of a copy. The first change to the maplet copies
    /// them into memory of its own (its one cost, paid only if it is
    /// changed). Bytes whose table is not 8-byte aligned are copied at
    /// once.
    ///
    /// ```
    /// use mappy_core::{Counter, Maplet};
    /// use std::sync::Arc;
    ///
    /// let mut m = Maplet::new(100, 0.01, Counter).unwrap();
    /// m.insert("a", 2).unwrap();
    /// let frozen: Box<[u8]> = m.to_bytes().into();
    /// let mut read = Maplet::from_frozen_bytes(Arc::new(frozen), Counter).unwrap();
    /// assert_eq!(read.query("a"), Some(2));
    /// read.insert("a", 1).unwrap(); // copies the table, then writes
    /// assert_eq!(read.query("a"), Some(3));
    /// ```
    ///
    /// # Errors
    /// As [`from_bytes`](Maplet::from_bytes).
    pub fn from_frozen_bytes(owner: Arc<dyn FrozenBytes>, op: O) -> Result<Self> {
        Self::from_frozen_bytes_with(owner, op, O::Value::decode)
    }

    /// Loads a maplet saved by [`save`](Maplet::save); only a regular file
    /// is read, as for [`load_with`](Maplet::load_with).
    ///
    /// # Errors
    /// As [`load_with`](Maplet::load_with).
    pub fn load(path: impl AsRef<Path>, op: O) -> Result<Self> {
        Self::from_bytes(&format::read_regular(path.as_ref())?, op)
    }
}
