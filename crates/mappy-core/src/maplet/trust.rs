//! Whether a maplet's table is known to be valid, and the gates every write,
//! copy and save passes through.

use super::Maplet;
use crate::error::{MapletError, Result};
use crate::format;
use crate::operator::Operator;

/// Whether a maplet's table is known to be valid. Every maplet built in
/// memory or decoded from bytes is; a memory-mapped one is not until
/// [`Maplet::verify`] has read it all (done once, then remembered), and
/// until then nothing may copy its words into a writable maplet or seal
/// them under a fresh checksum.
///
/// The state lives behind a pointer, and only for a maplet that needs one
/// (`None` is trusted): an atomic inside the maplet itself would make
/// `&Maplet` interior-mutable, which stops the compiler from keeping the
/// table's fields in registers across lookups (about ten more
/// instructions a query, measured).
#[derive(Debug)]
pub(super) struct Trust(Option<Box<std::sync::atomic::AtomicU8>>);

const TRUSTED: u8 = 0;
const UNVERIFIED: u8 = 1;
const DAMAGED: u8 = 2;

impl Trust {
    pub(super) fn trusted() -> Trust {
        Trust(None)
    }
    #[cfg(all(feature = "mmap", target_endian = "little"))]
    pub(super) fn unverified() -> Trust {
        Trust(Some(Box::new(std::sync::atomic::AtomicU8::new(UNVERIFIED))))
    }
    #[inline]
    pub(super) fn get(&self) -> u8 {
        match &self.0 {
            None => TRUSTED,
            Some(a) => a.load(std::sync::atomic::Ordering::Relaxed),
        }
    }
    /// Records a verification's result (for a maplet that was not trusted:
    /// one built in memory or decoded from bytes is valid by construction).
    pub(super) fn set(&self, state: u8) {
        if let Some(a) = &self.0 {
            a.store(state, std::sync::atomic::Ordering::Relaxed)
        }
    }
}

impl Clone for Trust {
    fn clone(&self) -> Trust {
        match self.get() {
            TRUSTED => Trust(None),
            state => Trust(Some(Box::new(std::sync::atomic::AtomicU8::new(state)))),
        }
    }
}

impl<O: Operator> Maplet<O> {
    /// Whether the maplet is memory-mapped and so read-only.
    pub fn is_read_only(&self) -> bool {
        self.table.is_mapped()
    }

    #[inline]
    pub(super) fn writable(&mut self) -> Result<()> {
        // One test on the insert path; the reasons are sorted out of line.
        if self.trust.0.is_some() || !self.table.owns_words() {
            return self.writable_slow();
        }
        Ok(())
    }

    #[cold]
    #[inline(never)]
    fn writable_slow(&mut self) -> Result<()> {
        self.writable_in_place()?;
        // Words borrowed from frozen bytes are copied before the first
        // write (fallibly: an error leaves the maplet as it was).
        Ok(self.table.own_words()?)
    }

    /// [`writable`](Maplet::writable) for a change that replaces the table
    /// instead of writing its words: not memory-mapped, known valid.
    pub(super) fn writable_in_place(&self) -> Result<()> {
        if self.table.is_mapped() {
            return Err(MapletError::ReadOnly);
        }
        self.ensure_verified()
    }

    /// `Ok` if the table is known to be valid, verifying it first (once) if
    /// it is a memory map not yet verified.
    ///
    /// # Errors
    /// [`MapletError::Corrupt`] if it is damaged.
    pub(super) fn ensure_verified(&self) -> Result<()> {
        match self.trust.get() {
            TRUSTED => Ok(()),
            UNVERIFIED => self.verify(),
            _ => Err(MapletError::Corrupt(
                "the maplet's data is damaged (verify() failed): it can be queried, \
                 but not modified, copied into a writable maplet or saved"
                    .into(),
            )),
        }
    }

    /// Checks the maplet from scratch: for a memory-mapped maplet the
    /// checksum of the whole file, then, for any maplet, every invariant of
    /// the slot table and that every packed value is one the operator
    /// accepts. Linear in the table's size; allocates nothing. For a
    /// memory-mapped maplet (and copies of it) the result is remembered:
    /// after a failure it refuses writes and saving with
    /// [`MapletError::Corrupt`]; after a success it may be cloned, saved and
    /// merged from without another check.
    ///
    /// A maplet built in memory or decoded with
    /// [`from_bytes`](Maplet::from_bytes) was checked already; this is for
    /// maplets opened with `load_mmap`, whose words are not read on opening.
    ///
    /// # Errors
    /// [`MapletError::Corrupt`] saying what is wrong.
    pub fn verify(&self) -> Result<()> {
        let r = self.check_everything();
        self.trust.set(if r.is_ok() { TRUSTED } else { DAMAGED });
        r
    }

    /// Checks only the checksum of the file a memory-mapped maplet was
    /// mapped from (nothing for a maplet in memory): a fast check, at the
    /// speed of reading the file, that it was not truncated or damaged,
    /// though not that a file made to pass it holds a valid table (which
    /// [`verify`](Maplet::verify) checks). A failure marks the maplet
    /// damaged.
    ///
    /// # Errors
    /// [`MapletError::Corrupt`] for a checksum that does not match.
    pub fn verify_checksum(&self) -> Result<()> {
        let Some(file) = self.table.file_bytes() else {
            return Ok(());
        };
        let r = format::verified(file).map(drop);
        if r.is_err() {
            self.trust.set(DAMAGED);
        }
        r
    }

    fn check_everything(&self) -> Result<()> {
        if let Some(file) = self.table.file_bytes() {
            format::verified(file)?;
        }
        self.table.validate().map_err(MapletError::Corrupt)?;
        if O::PACKED && !O::ACCEPTS_EVERY_VALUE {
            for (_, start, end) in self.table.runs() {
                for s in start..=end {
                    self.op
                        .validate(&self.op.unpack(self.table.value(s)))
                        .map_err(|e| MapletError::Corrupt(format!("slot {s}: {e}")))?;
                }
            }
        }
        Ok(())
    }

    /// Whether the maplet is known to be valid: `false` for a memory-mapped
    /// maplet not yet [`verify`](Maplet::verify)-ed, or one (or a copy of
    /// one) that failed verification.
    pub fn is_verified(&self) -> bool {
        self.trust.get() == TRUSTED
    }

    /// A copy, like [`clone`](Clone::clone), that reports what `clone`
    /// cannot.
    ///
    /// # Errors
    /// [`MapletError::Corrupt`] for a memory-mapped maplet that
    /// [`verify`](Maplet::verify) finds damaged;
    /// [`MapletError::OutOfMemory`] if the copy's memory cannot be had.
    pub fn try_clone(&self) -> Result<Self>
    where
        O: Clone,
    {
        self.ensure_verified()?;
        Ok(self.with_table(self.table.try_clone()?))
    }
}
