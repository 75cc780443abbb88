//! Read-only memory-mapped opening of a saved packed maplet.

use std::path::Path;

use super::header::Header;
use super::trust::Trust;
use super::{Maplet, Options};
use crate::error::{MapletError, Result};
use crate::format;
use crate::operator::Operator;
use crate::side::SideStore;
use crate::storage::Words;
use crate::table::Table;

impl<O: Operator> Maplet<O> {
    /// Opens a saved maplet of a packed operator (counter, max, min)
    /// read-only through a memory map, without reading the file: queries
    /// touch only the pages they need, and processes share those pages.
    ///
    /// What can be checked without reading the file is checked on opening:
    /// that `path` is a regular file (a directory, FIFO or device is
    /// refused before it is mapped), the magic, the version, every header
    /// field and size against the file's length. The checksum and the
    /// table's invariants are not (that would read the whole file):
    /// [`verify`](Maplet::verify) checks them on demand. Until then the
    /// maplet treats its words as untrusted: every query and iteration is
    /// bounded and never panics whatever the bytes (on damaged bytes it may
    /// answer wrongly, which `verify` reveals), and nothing copies or saves
    /// them without verifying first ([`clone`](Clone::clone),
    /// [`to_bytes`](Maplet::to_bytes), [`save`](Maplet::save), a
    /// [`merge`](Maplet::merge) from it, [`map_values`](Maplet::map_values)
    /// all verify once, then remember the result), so damage is never
    /// sealed under a fresh checksum.
    ///
    /// Every modifying operation (insert, delete, remove, clear, merge into
    /// it) fails with [`MapletError::ReadOnly`]; a `clone` is an ordinary
    /// in-memory maplet.
    ///
    /// The file must not be modified while it is mapped (saving over it with
    /// [`save`](Maplet::save) is safe: that replaces the file rather than
    /// writing into it). If another process truncates it, reading a page
    /// past its new end raises `SIGBUS`, which ends the process: no check
    /// can prevent that (SQLite's memory-mapped I/O has the same limit), so
    /// use [`load`](Maplet::load) for files that others may shorten.
    ///
    /// # Errors
    /// [`MapletError::InvalidParameter`] for operators with a side store,
    /// [`MapletError::Io`] when the file cannot be opened or mapped,
    /// [`MapletError::Corrupt`] for a path that is not a regular file and
    /// for header errors, and the other header errors of
    /// [`from_bytes_with`](Maplet::from_bytes_with).
    pub fn load_mmap(path: impl AsRef<Path>, op: O) -> Result<Self> {
        if !O::PACKED {
            return Err(MapletError::InvalidParameter(format!(
                "only maplets with packed values can be memory-mapped, not {}",
                op.kind()
            )));
        }
        let (file, len) = format::open_regular(path.as_ref())?;
        if len < (format::FIXED_HEADER + 8) as u64 {
            return Err(MapletError::Corrupt(format!(
                "{len} bytes is too short for a maplet"
            )));
        }
        let len = usize::try_from(len)
            .map_err(|_| MapletError::Corrupt(format!("{len} bytes cannot be mapped")))?;
        // SAFETY: the map is read-only and exactly as long as the file was
        // when checked. Its contents could change only if another process
        // wrote into the file, which the documentation above rules out (our
        // own `save` replaces files by renaming); the words are treated as
        // untrusted until verified, so changed contents give wrong answers
        // or a `verify` error, never undefined behaviour in this crate.
        #[allow(unsafe_code)]
        let map = std::sync::Arc::new(unsafe { memmap2::MmapOptions::new().len(len).map(&file)? });
        let bytes: &[u8] = &map;
        if bytes[..8] != format::MAGIC {
            return Err(MapletError::Corrupt(
                "not a maplet (bad magic bytes)".into(),
            ));
        }
        let version = u32::from_le_bytes(bytes[8..12].try_into().unwrap());
        if version != format::VERSION {
            return Err(MapletError::Corrupt(format!(
                "format version {version} is not supported (this library reads version {})",
                format::VERSION
            )));
        }
        let body = &bytes[..bytes.len() - 8];
        let (header, table_offset, words_len) = Header::read(body, body.len(), &op)?;
        let end = words_len
            .checked_mul(8)
            .and_then(|w| w.checked_add(table_offset))
            .and_then(|w| w.checked_add(header.side_len));
        if end != Some(body.len()) {
            return Err(MapletError::Corrupt(
                "sizes do not match the file length".into(),
            ));
        }
        if header.side_len != 0 {
            return Err(MapletError::Corrupt(
                "a side store for a packed operator".into(),
            ));
        }
        let mapped = crate::storage::Mapped::new(map.clone(), table_offset, words_len)
            .ok_or_else(|| MapletError::Corrupt("the table is not aligned in the file".into()))?;
        let table = Table::from_parts(
            header.canonical,
            header.fbits,
            header.vbits,
            header.flags & 1 == 1,
            Words::mapped(mapped),
            header.len,
            header.len_hist,
        )
        .map_err(MapletError::Corrupt)?;
        header.check_initial(&table)?;
        Ok(Maplet {
            op,
            table,
            side: SideStore::default(),
            expected_items: header.expected_items,
            false_positive_rate: header.false_positive_rate,
            options: Options {
                seed: header.seed,
                memory_limit: header.memory_limit,
                fixed_precision: header.flags >> 2 & 1 == 1,
            },
            initial_canonical: header.initial_canonical,
            initial_fbits: header.initial_fbits,
            shard: header.shard,
            journal: None,
            trust: Trust::unverified(),
        })
    }
}
