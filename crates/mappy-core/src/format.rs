//! Saving and loading maplets: the byte format of `docs/FORMAT.md`.
//!
//! Everything is little-endian. A file is a header (magic, version,
//! operator, parameters, seed, counts), the slot table's words at an
//! 8-byte-aligned offset (so a file can be memory-mapped and used in place),
//! the side store, and an XXH3-64 checksum of all that precedes it. Reading
//! checks the checksum, every size against the input's length before
//! allocating, and every invariant of the table, so truncated, corrupted or
//! hostile input is an error, never a crash or an outsized allocation.

use std::collections::BTreeSet;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use xxhash_rust::xxh3::xxh3_64;

use crate::error::{MapletError, Result};
use crate::operator::OperatorKind;

/// The first eight bytes of every saved maplet.
pub const MAGIC: [u8; 8] = *b"MAPPYMAP";
/// The format version this library writes (and the only one it reads).
pub const VERSION: u32 = 1;
/// Bytes before the (variable-length) operator name.
pub(crate) const FIXED_HEADER: usize = 104 + 64 * 8;

/// A value that can be written to the side store and read back.
///
/// Implemented for the value types of the built-in side-stored operators;
/// other value types go through [`Maplet::to_bytes_with`] and
/// [`Maplet::from_bytes_with`].
///
/// [`Maplet::to_bytes_with`]: crate::Maplet::to_bytes_with
/// [`Maplet::from_bytes_with`]: crate::Maplet::from_bytes_with
pub trait ValueCodec: Sized {
    /// Appends the value's bytes to `out`.
    fn encode(&self, out: &mut Vec<u8>);
    /// The value whose bytes are exactly `bytes`.
    ///
    /// # Errors
    /// [`MapletError::Corrupt`] for bytes no value encodes to.
    fn decode(bytes: &[u8]) -> Result<Self>;
}

fn corrupt(msg: impl Into<String>) -> MapletError {
    MapletError::Corrupt(msg.into())
}

macro_rules! codec_for_number {
    ($($t:ty),*) => {$(
        impl ValueCodec for $t {
            fn encode(&self, out: &mut Vec<u8>) {
                out.extend_from_slice(&self.to_le_bytes());
            }
            fn decode(bytes: &[u8]) -> Result<Self> {
                let arr = bytes.try_into().map_err(|_| corrupt(concat!("a ", stringify!($t), " value of the wrong length")))?;
                Ok(<$t>::from_le_bytes(arr))
            }
        }
    )*};
}
codec_for_number!(i64, u64, i32, u32, f64, f32);

macro_rules! codec_for_vec {
    ($($t:ty),*) => {$(
        impl ValueCodec for Vec<$t> {
            fn encode(&self, out: &mut Vec<u8>) {
                for x in self {
                    out.extend_from_slice(&x.to_le_bytes());
                }
            }
            fn decode(bytes: &[u8]) -> Result<Self> {
                const W: usize = std::mem::size_of::<$t>();
                if bytes.len() % W != 0 {
                    return Err(corrupt("a vector value of the wrong length"));
                }
                Ok(bytes.chunks_exact(W).map(|c| <$t>::from_le_bytes(c.try_into().unwrap())).collect())
            }
        }
    )*};
}
codec_for_vec!(f32, f64);

impl ValueCodec for String {
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self.as_bytes());
    }
    fn decode(bytes: &[u8]) -> Result<Self> {
        String::from_utf8(bytes.to_vec()).map_err(|_| corrupt("a string value that is not UTF-8"))
    }
}

impl ValueCodec for Vec<u8> {
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self);
    }
    fn decode(bytes: &[u8]) -> Result<Self> {
        Ok(bytes.to_vec())
    }
}

impl<T: ValueCodec + Ord> ValueCodec for BTreeSet<T> {
    fn encode(&self, out: &mut Vec<u8>) {
        for x in self {
            let at = out.len();
            out.extend_from_slice(&[0; 4]);
            x.encode(out);
            let n = (out.len() - at - 4) as u32;
            out[at..at + 4].copy_from_slice(&n.to_le_bytes());
        }
    }
    fn decode(mut bytes: &[u8]) -> Result<Self> {
        let mut set = BTreeSet::new();
        while !bytes.is_empty() {
            let item =
                take_sized(&mut bytes)?.ok_or_else(|| corrupt("a free slot inside a set value"))?;
            set.insert(T::decode(item)?);
        }
        Ok(set)
    }
}

/// Reads a `u32` length and that many bytes; `Ok(None)` for the length
/// `u32::MAX`, which marks a free side-store index.
pub(crate) fn take_sized<'a>(bytes: &mut &'a [u8]) -> Result<Option<&'a [u8]>> {
    let n = u32::from_le_bytes(take(bytes, 4)?.try_into().unwrap());
    if n == u32::MAX {
        return Ok(None);
    }
    Ok(Some(take(bytes, n as usize)?))
}

/// The first `n` bytes of `bytes`, advancing it.
pub(crate) fn take<'a>(bytes: &mut &'a [u8], n: usize) -> Result<&'a [u8]> {
    if bytes.len() < n {
        return Err(corrupt(format!(
            "truncated: {n} more bytes expected, {} left",
            bytes.len()
        )));
    }
    let (head, rest) = bytes.split_at(n);
    *bytes = rest;
    Ok(head)
}

pub(crate) fn take_u64(bytes: &mut &[u8]) -> Result<u64> {
    Ok(u64::from_le_bytes(take(bytes, 8)?.try_into().unwrap()))
}

pub(crate) fn take_u32(bytes: &mut &[u8]) -> Result<u32> {
    Ok(u32::from_le_bytes(take(bytes, 4)?.try_into().unwrap()))
}

/// The byte code of an operator kind.
pub(crate) fn kind_code(kind: OperatorKind) -> u8 {
    match kind {
        OperatorKind::Counter => 1,
        OperatorKind::MaxI64 => 2,
        OperatorKind::MinI64 => 3,
        OperatorKind::MaxF64 => 4,
        OperatorKind::MinF64 => 5,
        OperatorKind::SetUnion => 6,
        OperatorKind::VectorF32 => 7,
        OperatorKind::VectorF64 => 8,
        OperatorKind::Custom(_) => 9,
    }
}

/// The checksum of a saved maplet (everything before the checksum).
pub(crate) fn checksum(bytes: &[u8]) -> u64 {
    xxh3_64(bytes)
}

/// Checks the checksum at the end of `bytes`, returning what precedes it.
pub(crate) fn verified(bytes: &[u8]) -> Result<&[u8]> {
    check_start(bytes, bytes.len())?;
    let (body, sum) = bytes.split_at(bytes.len() - 8);
    if checksum(body) != u64::from_le_bytes(sum.try_into().unwrap()) {
        return Err(checksum_mismatch());
    }
    Ok(body)
}

/// Checks that `start`, the first bytes of `len`, begins a maplet of this
/// version and that `len` can hold one.
fn check_start(start: &[u8], len: usize) -> Result<()> {
    if len < FIXED_HEADER + 8 || start.len() < 12 {
        return Err(corrupt(format!("{len} bytes is too short for a maplet")));
    }
    if start[..8] != MAGIC {
        return Err(corrupt("not a maplet (bad magic bytes)"));
    }
    let version = u32::from_le_bytes(start[8..12].try_into().unwrap());
    if version != VERSION {
        return Err(corrupt(format!(
            "format version {version} is not supported (this library reads version {VERSION})"
        )));
    }
    Ok(())
}

/// The error of a checksum that does not match.
fn checksum_mismatch() -> MapletError {
    corrupt("checksum mismatch: the data is truncated or damaged")
}

/// Opens `path` for reading if it is a regular file (following symbolic
/// links), with its length. Anything else (a directory, a FIFO, a device
/// such as `/dev/zero`, a socket) is refused before it is read; on Linux
/// the file is opened non-blocking, so that a FIFO put in its place
/// between the check and the opening does not block, and the opened file
/// itself is checked again.
///
/// # Errors
/// [`MapletError::Corrupt`] for a path that is not a regular file;
/// [`MapletError::Io`] when it cannot be opened.
pub(crate) fn open_regular(path: &Path) -> Result<(fs::File, u64)> {
    let not_regular = |t: fs::FileType| {
        let what = if t.is_dir() {
            "a directory"
        } else if t.is_symlink() {
            "a symbolic link"
        } else {
            "a FIFO, device or socket"
        };
        corrupt(format!(
            "{} is not a regular file (it is {what}); only regular files are read",
            path.display()
        ))
    };
    let meta = fs::metadata(path)?;
    if !meta.is_file() {
        return Err(not_regular(meta.file_type()));
    }
    let mut options = fs::OpenOptions::new();
    options.read(true);
    #[cfg(target_os = "linux")]
    {
        use std::os::unix::fs::OpenOptionsExt;
        // No effect on a regular file; a FIFO does not wait for a writer.
        options.custom_flags(libc::O_NONBLOCK);
    }
    let file = options.open(path)?;
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(not_regular(meta.file_type()));
    }
    Ok((file, meta.len()))
}

/// The bytes of the regular file at `path` (see [`open_regular`]), never
/// more than its length said when it was opened, in memory allocated
/// fallibly.
///
/// # Errors
/// As [`open_regular`]; [`MapletError::OutOfMemory`] when the bytes cannot
/// be allocated; [`MapletError::Corrupt`] when the file shrank while read;
/// [`MapletError::Io`] when reading fails.
pub(crate) fn read_regular(path: &Path) -> Result<Vec<u8>> {
    use std::io::Read;
    let (file, len) = open_regular(path)?;
    let n = usize::try_from(len).map_err(|_| MapletError::OutOfMemory { bytes: usize::MAX })?;
    let mut buf = Vec::new();
    buf.try_reserve_exact(n)
        .map_err(|_| MapletError::OutOfMemory { bytes: n })?;
    file.take(len).read_to_end(&mut buf)?;
    if buf.len() != n {
        return Err(corrupt(format!(
            "{}: the file shrank from {n} to {} bytes while it was read",
            path.display(),
            buf.len()
        )));
    }
    Ok(buf)
}

/// A regular file read in two pieces: its first bytes (`head`: a saved
/// maplet's header and operator name, up to where its table's words start)
/// and the rest (`rest_len` bytes) into words, so that the table's words
/// come first in them and need no moving.
#[cfg(target_endian = "little")]
pub(crate) struct SplitFile {
    pub(crate) head: Vec<u8>,
    pub(crate) rest: crate::storage::Words,
    pub(crate) rest_len: usize,
}

#[cfg(target_endian = "little")]
impl SplitFile {
    /// The bytes after the head.
    pub(crate) fn rest_bytes(&self) -> &[u8] {
        &self.rest.as_bytes()[..self.rest_len]
    }

    /// Checks the magic bytes, the version and the checksum as
    /// [`verified`] does on the whole file, without joining its pieces.
    pub(crate) fn verify(&self) -> Result<()> {
        let rest = self.rest_bytes();
        let Some(body_rest) = rest.len().checked_sub(8) else {
            return verified(&self.head).map(|_| ());
        };
        check_start(&self.head, self.head.len() + rest.len())?;
        let mut sum = xxhash_rust::xxh3::Xxh3::new();
        sum.update(&self.head);
        sum.update(&rest[..body_rest]);
        if sum.digest() != u64::from_le_bytes(rest[body_rest..].try_into().unwrap()) {
            return Err(checksum_mismatch());
        }
        Ok(())
    }
}

/// Bytes read first from a file to find where its table's words start:
/// a smaller file is read whole into the head.
#[cfg(target_endian = "little")]
const PEEK: usize = 64 << 10;

/// Reads the regular file at `path` (refusing anything else, as
/// [`read_regular`] does) as a [`SplitFile`]: its head ends where the
/// header's operator name, padded to a multiple of eight, says the table
/// starts, when that lies within the file; else (a small or malformed
/// file) the head is the whole file. Large parts are read on two threads.
///
/// # Errors
/// As [`read_regular`].
#[cfg(target_endian = "little")]
pub(crate) fn read_regular_split(path: &Path) -> Result<SplitFile> {
    let (file, len) = open_regular(path)?;
    let n = usize::try_from(len).map_err(|_| MapletError::OutOfMemory { bytes: usize::MAX })?;
    let shrank = |got: usize| {
        corrupt(format!(
            "{}: the file shrank from {n} to {got} bytes while it was read",
            path.display()
        ))
    };
    // Reads `buf.len()` bytes at `start`, never past the opened length.
    let read_exact_at = |buf: &mut [u8], start: usize| -> Result<()> {
        let mut got = 0;
        while got < buf.len() {
            match read_at(&file, &mut buf[got..], (start + got) as u64) {
                Ok(0) => return Err(shrank(start + got)),
                Ok(k) => got += k,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    };
    let mut head = Vec::new();
    let peek = n.min(PEEK);
    head.try_reserve_exact(peek)
        .map_err(|_| MapletError::OutOfMemory { bytes: peek })?;
    head.resize(peek, 0);
    read_exact_at(&mut head, 0)?;
    let split = if n < PEEK {
        n
    } else {
        let name_len = u32::from_le_bytes(head[20..24].try_into().unwrap()) as usize;
        match (FIXED_HEADER + name_len).checked_next_multiple_of(8) {
            Some(at) if at + 8 <= n => at,
            _ => n,
        }
    };
    if split > peek {
        head.try_reserve_exact(split - peek)
            .map_err(|_| MapletError::OutOfMemory { bytes: split })?;
        head.resize(split, 0);
        read_exact_at(&mut head[peek..], peek)?;
    }
    let rest_len = n - split;
    head.truncate(split);
    let rest = crate::storage::Words::try_filled(rest_len.div_ceil(8), |first, part| {
        let start = first * 8;
        let end = (start + part.len() * 8).min(rest_len);
        let buf = &mut crate::storage::as_bytes_mut(part)[..end - start];
        read_exact_at(buf, split + start)
    })?;
    Ok(SplitFile {
        head,
        rest,
        rest_len,
    })
}

/// Reads from `file` at `offset` without moving its cursor, so that two
/// threads may read one file.
#[cfg(unix)]
fn read_at(file: &fs::File, buf: &mut [u8], offset: u64) -> std::io::Result<usize> {
    std::os::unix::fs::FileExt::read_at(file, buf, offset)
}

/// Reads from `file` at `offset` (see the Unix version).
#[cfg(windows)]
fn read_at(file: &fs::File, buf: &mut [u8], offset: u64) -> std::io::Result<usize> {
    std::os::windows::fs::FileExt::seek_read(file, buf, offset)
}

/// Refuses to replace anything at `path` but a regular file or a symbolic
/// link (which a rename replaces itself, leaving its target as it was).
fn check_replaceable(path: &Path) -> Result<()> {
    match fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_file() || m.file_type().is_symlink() => Ok(()),
        Ok(m) => Err(MapletError::Io(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!(
                "{} is not a regular file (it is {}); refusing to replace it",
                path.display(),
                if m.is_dir() {
                    "a directory"
                } else {
                    "a FIFO, device or socket"
                }
            ),
        ))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Writes `bytes` to `path` atomically: a temporary file in the same
/// folder, flushed to disk, then renamed over `path`, so a crash at any
/// point leaves either the old file or the new one, never a mix.
///
/// Only a regular file is replaced: if `path` exists and is anything else
/// (a directory, a FIFO, a device such as `/dev/null`, a socket) nothing is
/// written. A symbolic link at `path` is replaced itself, by the rename:
/// the file it pointed to is never written through. The temporary file is
/// created new (`O_EXCL`), so a link planted under its name is not
/// followed either.
///
/// # Errors
/// [`MapletError::Io`] when the file cannot be written, of kind
/// `InvalidInput` when `path` is not a regular file or a link; `path` is
/// then left as it was.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    write_atomic_with(path, |f| Ok(f.write_all(bytes)?))
}

/// As [`write_atomic`], with the bytes written to the open temporary file
/// by `write`; if it fails, the temporary file is removed and `path` is
/// left as it was.
///
/// # Errors
/// [`MapletError::InvalidParameter`] for a path with no file name;
/// [`MapletError::Io`]; the errors of `write`.
pub fn write_atomic_with(
    path: &Path,
    write: impl FnOnce(&mut fs::File) -> Result<()>,
) -> Result<()> {
    check_replaceable(path)?;
    let (dir, tmp) = beside(path, "")?;
    // A leftover of this process id (a crash) goes; a link is removed, not
    // followed.
    let _ = fs::remove_file(&tmp);
    let result = (|| -> Result<()> {
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)?;
        write(&mut f)?;
        f.sync_all()?;
        drop(f);
        fs::rename(&tmp, path)?;
        // Make the rename itself durable.
        #[cfg(unix)]
        fs::File::open(&dir)?.sync_all()?;
        Ok(())
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// The folder of `path`, and a hidden name in it for a temporary file
/// that belongs to this process (`tag` tells apart several at once).
fn beside(path: &Path, tag: &str) -> Result<(PathBuf, PathBuf)> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => std::env::current_dir()?,
    };
    let name = path.file_name().ok_or_else(|| {
        MapletError::InvalidParameter(format!("{}: not a file path", path.display()))
    })?;
    let tmp = dir.join(format!(
        ".{}.{}{tag}.tmp",
        name.to_string_lossy(),
        std::process::id()
    ));
    Ok((dir, tmp))
}

#[cfg(feature = "kmers")]
/// A temporary file beside another path, removed when dropped: scratch
/// space for work too large to keep in memory.
pub(crate) struct ScratchFile {
    path: PathBuf,
}

#[cfg(feature = "kmers")]
impl ScratchFile {
    /// A scratch file in the folder of `path`, named for it and `tag`.
    pub(crate) fn beside(path: &Path, tag: &str) -> Result<ScratchFile> {
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let (_, path) = beside(path, &format!(".{tag}{n}"))?;
        Ok(ScratchFile { path })
    }

    /// A scratch file in the folder `dir`, named for `path` and `tag`.
    pub(crate) fn in_dir(dir: &Path, path: &Path, tag: &str) -> Result<ScratchFile> {
        let there = dir.join(path.file_name().ok_or_else(|| {
            MapletError::InvalidParameter(format!("{}: not a file path", path.display()))
        })?);
        Self::beside(&there, tag)
    }

    /// The file, created empty, open for reading and writing.
    pub(crate) fn file(&self) -> Result<fs::File> {
        Ok(fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&self.path)?)
    }
}

#[cfg(feature = "kmers")]
impl ScratchFile {
    /// The file as it is, open for reading.
    pub(crate) fn reopen(&self) -> Result<fs::File> {
        Ok(fs::File::open(&self.path)?)
    }
}

#[cfg(feature = "kmers")]
impl Drop for ScratchFile {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.path);
    }
}

/// A writer that keeps the checksum of everything written through it, and
/// ends the data with it.
pub(crate) struct Checksummed<'a, W: Write> {
    inner: &'a mut W,
    sum: Box<xxhash_rust::xxh3::Xxh3>,
}

impl<'a, W: Write> Checksummed<'a, W> {
    pub(crate) fn new(inner: &'a mut W) -> Self {
        Checksummed {
            inner,
            sum: Box::new(xxhash_rust::xxh3::Xxh3::new()),
        }
    }

    pub(crate) fn write(&mut self, bytes: &[u8]) -> Result<()> {
        self.sum.update(bytes);
        Ok(self.inner.write_all(bytes)?)
    }

    /// Writes the checksum of everything before it.
    pub(crate) fn finish(self) -> Result<()> {
        Ok(self.inner.write_all(&self.sum.digest().to_le_bytes())?)
    }

    /// Ends the data with the complement of its checksum: data no reader
    /// accepts (for a maplet whose words are known to be damaged).
    pub(crate) fn finish_broken(self) -> Result<()> {
        Ok(self.inner.write_all(&(!self.sum.digest()).to_le_bytes())?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codecs_round_trip() {
        let set: BTreeSet<String> = ["a".to_string(), "bc".to_string()].into();
        let mut out = Vec::new();
        set.encode(&mut out);
        assert_eq!(BTreeSet::<String>::decode(&out).unwrap(), set);
        let v = vec![1.5f32, -2.0];
        out.clear();
        v.encode(&mut out);
        assert_eq!(Vec::<f32>::decode(&out).unwrap(), v);
        assert!(Vec::<f32>::decode(&out[..5]).is_err());
        assert!(BTreeSet::<String>::decode(&[9, 0, 0, 0, b'x']).is_err());
    }
}
