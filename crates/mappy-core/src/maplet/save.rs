//! A maplet written out: into bytes, a writer, a file, or a file built front
//! to back.

use std::path::Path;

use super::Maplet;
use crate::error::{MapletError, Result};
use crate::format::{self, ValueCodec};
use crate::operator::Operator;

impl<O: Operator> Maplet<O> {
    /// The maplet in the byte format of `docs/FORMAT.md`, side-stored values
    /// written by `encode`. The result is about [`memory_usage`] bytes.
    ///
    /// [`memory_usage`]: Maplet::memory_usage
    ///
    /// # Errors
    /// The first error `encode` returns; [`MapletError::OutOfMemory`] if
    /// the bytes cannot be allocated; [`MapletError::Corrupt`] for a
    /// memory-mapped maplet (or a copy of one) that
    /// [`verify`](Maplet::verify) finds damaged: a mapped maplet is
    /// verified before its words are written out (once, then remembered),
    /// so that damage is never sealed under a fresh checksum.
    pub fn to_bytes_with(
        &self,
        encode: impl FnMut(&O::Value, &mut Vec<u8>) -> Result<()>,
    ) -> Result<Vec<u8>> {
        self.ensure_verified()?;
        let mut out = Vec::new();
        let bytes = self
            .table
            .words()
            .len()
            .saturating_mul(8)
            .saturating_add(1024);
        out.try_reserve_exact(bytes)
            .map_err(|_| MapletError::OutOfMemory { bytes })?;
        self.write_sealed(&mut out, encode, true)?;
        Ok(out)
    }

    /// The length of [`to_bytes_with`](Maplet::to_bytes_with)'s bytes for a
    /// packed operator's maplet, known before they are made; `None` for a
    /// side-stored one (its values must be encoded to know).
    ///
    /// ```
    /// use mappy_core::{Counter, Maplet};
    /// let mut m = Maplet::new(1000, 0.01, Counter).unwrap();
    /// m.insert("ATC", 3).unwrap();
    /// let mut out = vec![0; m.packed_bytes_len().unwrap()];
    /// m.write_packed_bytes(&mut out).unwrap();
    /// assert_eq!(out, m.to_bytes());
    /// ```
    pub fn packed_bytes_len(&self) -> Option<usize> {
        O::PACKED.then(|| self.table_offset() + self.table.words().len() * 8 + 8)
    }

    /// Writes a packed operator's maplet, as
    /// [`to_bytes_with`](Maplet::to_bytes_with) makes it, into `out`, which
    /// must be exactly [`packed_bytes_len`](Maplet::packed_bytes_len) long:
    /// for a caller that owns the memory the bytes go to (one copy, not
    /// two).
    ///
    /// # Errors
    /// [`MapletError::InvalidValue`] for a side-stored maplet or an `out` of
    /// another length (then nothing is written); [`MapletError::Corrupt`]
    /// for a damaged memory-mapped maplet.
    pub fn write_packed_bytes(&self, out: &mut [u8]) -> Result<()> {
        if self.packed_bytes_len() != Some(out.len()) {
            return Err(MapletError::InvalidValue(format!(
                "{} bytes is not the length of this maplet's bytes",
                out.len()
            )));
        }
        self.ensure_verified()?;
        let mut w = out;
        self.write_sealed(&mut w, |_, _| Ok(()), true)
    }

    /// Writes the bytes of [`to_bytes_with`](Maplet::to_bytes_with) to `w`
    /// as they are made, holding no copy of the table: only the side store
    /// is encoded in memory first (the header gives its length).
    ///
    /// ```
    /// use mappy_core::{Counter, Maplet, ValueCodec};
    /// let mut m = Maplet::new(1000, 0.01, Counter).unwrap();
    /// m.insert("ATC", 3).unwrap();
    /// let mut out = Vec::new();
    /// m.write_with(&mut out, |v, buf| {
    ///     v.encode(buf);
    ///     Ok(())
    /// })
    /// .unwrap();
    /// assert_eq!(out, m.to_bytes());
    /// ```
    ///
    /// # Errors
    /// The first error `encode` returns, and [`MapletError::Io`] from `w`;
    /// `w` may then have taken part of the bytes. [`MapletError::Corrupt`],
    /// before anything is written, for a damaged memory-mapped maplet (see
    /// [`to_bytes_with`](Maplet::to_bytes_with)).
    pub fn write_with(
        &self,
        w: &mut impl std::io::Write,
        encode: impl FnMut(&O::Value, &mut Vec<u8>) -> Result<()>,
    ) -> Result<()> {
        self.ensure_verified()?;
        self.write_sealed(w, encode, true)
    }

    /// [`write_with`](Maplet::write_with) without the check, ending the
    /// data with its checksum if `seal`, else with that checksum's
    /// complement (data that no reader accepts).
    fn write_sealed(
        &self,
        w: &mut impl std::io::Write,
        mut encode: impl FnMut(&O::Value, &mut Vec<u8>) -> Result<()>,
        seal: bool,
    ) -> Result<()> {
        let t = &self.table;
        let mut side = Vec::new();
        if !O::PACKED {
            let slots = self.side.slots();
            side.extend_from_slice(&(slots.len() as u64).to_le_bytes());
            for slot in slots {
                match slot {
                    None => side.extend_from_slice(&u32::MAX.to_le_bytes()),
                    Some(v) => {
                        let at = side.len();
                        side.extend_from_slice(&[0; 4]);
                        encode(v, &mut side)?;
                        let n = u32::try_from(side.len() - at - 4)
                            .ok()
                            .filter(|&n| n != u32::MAX)
                            .ok_or_else(|| {
                                MapletError::InvalidValue(
                                    "a value of 4 GiB or more cannot be saved".into(),
                                )
                            })?;
                        side[at..at + 4].copy_from_slice(&n.to_le_bytes());
                    }
                }
            }
        }
        let head = self.header(t, side.len());
        let mut w = format::Checksummed::new(w);
        w.write(&head)?;
        // Writes of 4 MiB: each hashed while it is still in cache, and
        // large enough for the file system (1 MiB writes measured up to
        // twice as slow to save here; see docs/perf-notes.md).
        #[cfg(target_endian = "little")]
        for chunk in t.words().chunks(512 << 10) {
            w.write(crate::storage::as_bytes(chunk))?;
        }
        #[cfg(not(target_endian = "little"))]
        {
            let mut buf = Vec::with_capacity(64 << 10);
            for chunk in t.words().chunks(8 << 10) {
                buf.clear();
                for x in chunk {
                    buf.extend_from_slice(&x.to_le_bytes());
                }
                w.write(&buf)?;
            }
        }
        w.write(&side)?;
        if seal {
            w.finish()
        } else {
            w.finish_broken()
        }
    }

    /// Saves to `path` atomically (see [`to_bytes_with`]): a crash while
    /// saving leaves the previous file intact.
    ///
    /// Only a regular file is ever replaced: if `path` exists and is a
    /// directory, a FIFO, a device (`/dev/null`) or a socket, nothing is
    /// written. A symbolic link at `path` is itself replaced by the new
    /// file (renamed over it); the file it pointed to is left untouched,
    /// never written through.
    ///
    /// [`to_bytes_with`]: Maplet::to_bytes_with
    ///
    /// # Errors
    /// [`MapletError::Io`] (of kind `InvalidInput` when `path` exists and is
    /// neither a regular file nor a symbolic link), the errors of `encode`,
    /// and [`MapletError::Corrupt`] for a damaged memory-mapped maplet (see
    /// [`to_bytes_with`](Maplet::to_bytes_with)); the file at `path` is then
    /// as it was.
    pub fn save_with(
        &self,
        path: impl AsRef<Path>,
        encode: impl FnMut(&O::Value, &mut Vec<u8>) -> Result<()>,
    ) -> Result<()> {
        self.ensure_verified()?;
        format::write_atomic_with(path.as_ref(), |f| {
            let mut w = std::io::BufWriter::with_capacity(1 << 16, f);
            self.write_with(&mut w, encode)?;
            std::io::Write::flush(&mut w)?;
            Ok(())
        })
    }

    #[cfg(feature = "kmers")]
    /// Saves to `path` (atomically, see [`format::write_atomic_with`]) a
    /// maplet with this one's parameters and home slots that holds
    /// `entries`: (home slot, field, value) in table order, values fitting
    /// `vbits` bits (`signed`). The table is built front to back and its
    /// finished part written out (to a temporary file beside `path`) as it
    /// goes, so that only its unfinished end is ever in memory. Returns the
    /// number of entries. Packed operators only.
    ///
    /// # Errors
    /// The first error of `entries`; [`MapletError::Io`].
    pub(crate) fn save_entries(
        &self,
        path: &Path,
        vbits: u32,
        signed: bool,
        entries: impl Iterator<Item = Result<(u64, u64, i64)>>,
    ) -> Result<usize> {
        use crate::table::Builder;
        use std::io::{Read, Seek, Write};
        assert!(O::PACKED, "save_entries: a packed operator");
        let t = &self.table;
        let scratch = format::ScratchFile::beside(path, "words")?;
        let mut words = std::io::BufWriter::with_capacity(256 << 10, scratch.file()?);
        let mut write = |ws: &[u64]| -> Result<()> {
            for w in ws {
                words.write_all(&w.to_le_bytes())?;
            }
            Ok(())
        };
        let mut b = Builder::new(t.canonical(), t.fbits(), vbits, signed)?;
        let mut drained = 0;
        for (i, e) in entries.enumerate() {
            let (q, f, v) = e?;
            b.push(q, f, v)?;
            if i % 4096 == 4095 {
                b.drain_final(&mut drained, &mut write)?;
            }
        }
        let built = b.finish_drained(drained, &mut write)?;
        let mut file = words.into_inner().map_err(|e| e.into_error())?;
        file.rewind()?;
        let head = self.header(&built, 0);
        format::write_atomic_with(path, |out| {
            let mut w = format::Checksummed::new(out);
            w.write(&head)?;
            let mut buf = vec![0u8; 128 << 10];
            loop {
                let n = file.read(&mut buf)?;
                if n == 0 {
                    break;
                }
                w.write(&buf[..n])?;
            }
            w.finish()
        })?;
        Ok(built.len())
    }

    #[cfg(feature = "kmers")]
    /// The entries in table order: home slot, field and value.
    pub(crate) fn raw_entries(&self) -> impl Iterator<Item = (u64, u64, i64)> + '_ {
        let t = &self.table;
        t.runs().flat_map(move |(q, start, end)| {
            (start..=end).map(move |s| (q, t.field(s), t.value(s)))
        })
    }

    #[cfg(feature = "kmers")]
    /// The width of the table's fields (fingerprint and marker).
    pub(crate) fn fbits(&self) -> u32 {
        self.table.fbits()
    }
}

impl<O: Operator> Maplet<O>
where
    O::Value: ValueCodec,
{
    /// The maplet in the byte format of `docs/FORMAT.md`.
    ///
    /// ```
    /// use mappy_core::{Maplet, Counter};
    /// let mut m = Maplet::new(1000, 0.01, Counter).unwrap();
    /// m.insert("ATC", 3).unwrap();
    /// let bytes = m.to_bytes();
    /// let back = Maplet::from_bytes(&bytes, Counter).unwrap();
    /// assert_eq!(back.query("ATC"), Some(3));
    /// assert!(Maplet::from_bytes(&bytes[..bytes.len() - 1], Counter).is_err());
    /// ```
    ///
    /// A memory-mapped maplet is [`verify`](Maplet::verify)-ed first (once,
    /// then remembered). If it is damaged, or memory for the bytes cannot be
    /// had, the bytes are written without a valid checksum (its complement
    /// ends them), so that no reader ever accepts them: damage is never
    /// sealed. [`try_to_bytes`](Maplet::try_to_bytes) reports the error
    /// instead.
    pub fn to_bytes(&self) -> Vec<u8> {
        let encode = |v: &O::Value, out: &mut Vec<u8>| {
            v.encode(out);
            Ok(())
        };
        self.to_bytes_with(encode).unwrap_or_else(|_| {
            let mut out = Vec::new();
            // Writing into a Vec fails only if its memory cannot be had,
            // which aborts as any Vec does.
            let _ = self.write_sealed(&mut out, encode, false);
            out
        })
    }

    /// Saves to `path` atomically; only a regular file is ever replaced, and
    /// a symbolic link is replaced itself, never written through (see
    /// [`save_with`](Maplet::save_with)).
    ///
    /// # Errors
    /// As [`save_with`](Maplet::save_with).
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        self.save_with(path, |v, out| {
            v.encode(out);
            Ok(())
        })
    }

    /// [`to_bytes`](Maplet::to_bytes) that reports a damaged memory-mapped
    /// maplet instead of writing it unsealed.
    ///
    /// # Errors
    /// As [`to_bytes_with`](Maplet::to_bytes_with).
    pub fn try_to_bytes(&self) -> Result<Vec<u8>> {
        self.to_bytes_with(|v, out| {
            v.encode(out);
            Ok(())
        })
    }
}
