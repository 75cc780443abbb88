//! A maplet over any built-in operator, chosen by what a saved file holds.
//!
//! [`AnyMaplet`] is the one type a binding needs: it reads a file's header
//! to choose the operator, so the byte format and the operator codes stay
//! in this crate. Values of a binding's own kind (Python objects, say) live
//! in the [`AnyMaplet::Other`] variant, under the binding's operator `C`.

use std::path::Path;
use std::sync::Arc;

use crate::error::{MapletError, Result};
use crate::format;
use crate::maplet::{Maplet, Options, Stats};
use crate::operator::{Counter, Max, Min, Operator, VectorAdd};
use crate::shard::Shard;
use crate::storage::FrozenBytes;

/// A maplet of any built-in storage, or of a binding's operator `C`.
///
/// ```
/// use mappy_core::{AnyMaplet, Counter, Maplet, Max};
/// let mut counts = Maplet::new(100, 0.01, Counter).unwrap();
/// counts.insert("ATC", 3).unwrap();
/// let bytes = counts.to_bytes();
/// // The file says which operator it holds; nothing else is needed to read it.
/// let any = AnyMaplet::<Max<i64>>::from_bytes(&bytes, |_| unreachable!(), |_| unreachable!()).unwrap();
/// match any {
///     AnyMaplet::Counter(m) => assert!(m.query("ATC").unwrap() >= 3),
///     _ => panic!("a counter was saved"),
/// }
/// ```
#[derive(Clone, Debug)]
pub enum AnyMaplet<C: Operator> {
    /// Sums of `i64` counts.
    Counter(Maplet<Counter>),
    /// Largest `i64`.
    MaxI64(Maplet<Max<i64>>),
    /// Smallest `i64`.
    MinI64(Maplet<Min<i64>>),
    /// Largest `f64` (NaN refused).
    MaxF64(Maplet<Max<f64>>),
    /// Smallest `f64` (NaN refused).
    MinF64(Maplet<Min<f64>>),
    /// Element-wise sums of `f32` vectors.
    VecF32(Maplet<VectorAdd<f32>>),
    /// Element-wise sums of `f64` vectors.
    VecF64(Maplet<VectorAdd<f64>>),
    /// The binding's own operator, values in the side store.
    Other(Maplet<C>),
}

/// What a saved maplet holds, read from its header alone.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Stored {
    /// [`AnyMaplet::Counter`].
    Counter,
    /// [`AnyMaplet::MaxI64`].
    MaxI64,
    /// [`AnyMaplet::MinI64`].
    MinI64,
    /// [`AnyMaplet::MaxF64`].
    MaxF64,
    /// [`AnyMaplet::MinF64`].
    MinF64,
    /// [`AnyMaplet::VecF32`].
    VecF32,
    /// [`AnyMaplet::VecF64`].
    VecF64,
    /// A custom operator, by the name it was saved under.
    Custom(String),
}

impl Stored {
    /// What `bytes`, the start of a saved maplet (at least its header),
    /// holds. Checks the magic bytes and version, not the checksum.
    ///
    /// # Errors
    /// [`MapletError::Corrupt`] when `bytes` is not the start of a maplet or
    /// names no operator this crate knows.
    pub fn of(bytes: &[u8]) -> Result<Stored> {
        let corrupt = |m: &str| MapletError::Corrupt(m.to_string());
        if bytes.len() < format::FIXED_HEADER || bytes[..8] != format::MAGIC {
            return Err(corrupt("not a maplet (bad magic bytes or too short)"));
        }
        let version = u32::from_le_bytes(bytes[8..12].try_into().unwrap());
        if version != format::VERSION {
            return Err(MapletError::Corrupt(format!(
                "format version {version} is not supported (this library reads version {})",
                format::VERSION
            )));
        }
        Ok(match bytes[16] {
            1 => Stored::Counter,
            2 => Stored::MaxI64,
            3 => Stored::MinI64,
            4 => Stored::MaxF64,
            5 => Stored::MinF64,
            7 => Stored::VecF32,
            8 => Stored::VecF64,
            9 => {
                let name_len = u32::from_le_bytes(bytes[20..24].try_into().unwrap()) as usize;
                let name = bytes
                    .get(format::FIXED_HEADER..)
                    .and_then(|rest| rest.get(..name_len))
                    .ok_or_else(|| corrupt("the operator name runs past the data"))?;
                Stored::Custom(
                    std::str::from_utf8(name)
                        .map_err(|_| corrupt("operator name is not UTF-8"))?
                        .to_string(),
                )
            }
            code => {
                return Err(MapletError::Corrupt(format!(
                    "unknown operator code {code}"
                )))
            }
        })
    }
}

/// Runs `$body` with `$m` bound to the maplet, whatever its storage.
#[macro_export]
#[doc(hidden)]
macro_rules! any_maplet_each {
    ($any:expr, $m:ident => $body:expr) => {
        match $any {
            $crate::AnyMaplet::Counter($m) => $body,
            $crate::AnyMaplet::MaxI64($m) => $body,
            $crate::AnyMaplet::MinI64($m) => $body,
            $crate::AnyMaplet::MaxF64($m) => $body,
            $crate::AnyMaplet::MinF64($m) => $body,
            $crate::AnyMaplet::VecF32($m) => $body,
            $crate::AnyMaplet::VecF64($m) => $body,
            $crate::AnyMaplet::Other($m) => $body,
        }
    };
}
use any_maplet_each as each;

impl<C: Operator + Clone> AnyMaplet<C> {
    /// Reads a saved maplet of whatever operator it holds. For a custom
    /// operator, `custom` makes the operator from the saved name (or refuses
    /// it), and `decode` reads each side-stored value.
    ///
    /// # Errors
    /// As [`Maplet::from_bytes_with`]; the errors of `custom` and `decode`.
    pub fn from_bytes(
        bytes: &[u8],
        custom: impl FnOnce(&str) -> Result<C>,
        decode: impl FnMut(&[u8]) -> Result<C::Value>,
    ) -> Result<Self> {
        Self::read(bytes, None, custom, decode)
    }

    /// [`from_bytes`](AnyMaplet::from_bytes) of bytes that stay as they are,
    /// whose table the maplet reads in place until its first change (see
    /// [`Maplet::from_frozen_bytes`]).
    ///
    /// # Errors
    /// As [`from_bytes`](AnyMaplet::from_bytes).
    pub fn from_frozen_bytes(
        owner: Arc<dyn FrozenBytes>,
        custom: impl FnOnce(&str) -> Result<C>,
        decode: impl FnMut(&[u8]) -> Result<C::Value>,
    ) -> Result<Self> {
        Self::read(owner.bytes(), Some(&owner), custom, decode)
    }

    fn read(
        bytes: &[u8],
        frozen: Option<&Arc<dyn FrozenBytes>>,
        custom: impl FnOnce(&str) -> Result<C>,
        decode: impl FnMut(&[u8]) -> Result<C::Value>,
    ) -> Result<Self> {
        fn plain<O: Operator>(
            bytes: &[u8],
            frozen: Option<&Arc<dyn FrozenBytes>>,
            op: O,
        ) -> Result<Maplet<O>>
        where
            O::Value: format::ValueCodec,
        {
            Maplet::read_bytes(bytes, frozen, op, <O::Value as format::ValueCodec>::decode)
        }
        Ok(match Stored::of(bytes)? {
            Stored::Counter => AnyMaplet::Counter(plain(bytes, frozen, Counter)?),
            Stored::MaxI64 => AnyMaplet::MaxI64(plain(bytes, frozen, Max::new())?),
            Stored::MinI64 => AnyMaplet::MinI64(plain(bytes, frozen, Min::new())?),
            Stored::MaxF64 => AnyMaplet::MaxF64(plain(bytes, frozen, Max::new())?),
            Stored::MinF64 => AnyMaplet::MinF64(plain(bytes, frozen, Min::new())?),
            Stored::VecF32 => AnyMaplet::VecF32(plain(bytes, frozen, VectorAdd::new())?),
            Stored::VecF64 => AnyMaplet::VecF64(plain(bytes, frozen, VectorAdd::new())?),
            Stored::Custom(name) => {
                // The name chooses the operator: damage to it is damage, not
                // another operator.
                format::verified(bytes)?;
                AnyMaplet::Other(Maplet::read_bytes(bytes, frozen, custom(&name)?, decode)?)
            }
        })
    }

    /// Reads a maplet file (see [`from_bytes`](AnyMaplet::from_bytes)).
    ///
    /// # Errors
    /// [`MapletError::Io`] when the file cannot be read, and those of
    /// [`from_bytes`](AnyMaplet::from_bytes); [`MapletError::Corrupt`] for a
    /// path that is not a regular file (refused before it is read).
    pub fn load(
        path: &Path,
        custom: impl FnOnce(&str) -> Result<C>,
        decode: impl FnMut(&[u8]) -> Result<C::Value>,
    ) -> Result<Self> {
        #[cfg(not(target_endian = "little"))]
        return Self::from_bytes(&format::read_regular(path)?, custom, decode);
        // Read into words, which the table keeps (no second copy).
        #[cfg(target_endian = "little")]
        {
            let file = format::read_regular_split(path)?;
            let stored = Stored::of(&file.head)?;
            // Before anything is decoded; for a custom operator, before its
            // name chooses one (damage to the name is damage, not another
            // operator).
            file.verify()?;
            macro_rules! read {
                ($op:expr) => {
                    Maplet::from_verified_file(file, $op, format::ValueCodec::decode)?
                };
            }
            Ok(match stored {
                Stored::Counter => AnyMaplet::Counter(read!(Counter)),
                Stored::MaxI64 => AnyMaplet::MaxI64(read!(Max::new())),
                Stored::MinI64 => AnyMaplet::MinI64(read!(Min::new())),
                Stored::MaxF64 => AnyMaplet::MaxF64(read!(Max::new())),
                Stored::MinF64 => AnyMaplet::MinF64(read!(Min::new())),
                Stored::VecF32 => AnyMaplet::VecF32(read!(VectorAdd::new())),
                Stored::VecF64 => AnyMaplet::VecF64(read!(VectorAdd::new())),
                Stored::Custom(name) => {
                    AnyMaplet::Other(Maplet::from_verified_file(file, custom(&name)?, decode)?)
                }
            })
        }
    }

    /// An in-memory copy, told of failure: a damaged memory-mapped maplet
    /// (see [`Maplet::try_clone`]) or memory that cannot be had.
    ///
    /// # Errors
    /// [`MapletError::Corrupt`], [`MapletError::OutOfMemory`].
    pub fn try_clone(&self) -> Result<Self> {
        Ok(match self {
            AnyMaplet::Counter(m) => AnyMaplet::Counter(m.try_clone()?),
            AnyMaplet::MaxI64(m) => AnyMaplet::MaxI64(m.try_clone()?),
            AnyMaplet::MinI64(m) => AnyMaplet::MinI64(m.try_clone()?),
            AnyMaplet::MaxF64(m) => AnyMaplet::MaxF64(m.try_clone()?),
            AnyMaplet::MinF64(m) => AnyMaplet::MinF64(m.try_clone()?),
            AnyMaplet::VecF32(m) => AnyMaplet::VecF32(m.try_clone()?),
            AnyMaplet::VecF64(m) => AnyMaplet::VecF64(m.try_clone()?),
            AnyMaplet::Other(m) => AnyMaplet::Other(m.try_clone()?),
        })
    }

    /// Opens a saved maplet of packed values read-only through a memory map
    /// (see [`Maplet::load_mmap`]).
    ///
    /// # Errors
    /// [`MapletError::InvalidParameter`] for maplets whose values live in a
    /// side store (vectors, custom operators), and those of
    /// [`Maplet::load_mmap`].
    #[cfg(all(feature = "mmap", target_endian = "little"))]
    pub fn load_mmap(path: &Path) -> Result<Self> {
        let mut head = vec![0u8; format::FIXED_HEADER];
        {
            use std::io::Read;
            let (file, _) = format::open_regular(path)?;
            file.take(head.len() as u64)
                .read_exact(&mut head)
                .map_err(|_| MapletError::Corrupt("too short for a maplet".into()))?;
        }
        // Only the operator code is read here: the name of a custom operator
        // lies past the fixed header, and such maplets are not mapped anyway.
        if head[..8] == format::MAGIC && !(1..=5).contains(&head[16]) {
            return Err(MapletError::InvalidParameter(
                "only counters and numeric max/min maplets can be memory-mapped".into(),
            ));
        }
        Ok(match Stored::of(&head)? {
            Stored::Counter => AnyMaplet::Counter(Maplet::load_mmap(path, Counter)?),
            Stored::MaxI64 => AnyMaplet::MaxI64(Maplet::load_mmap(path, Max::new())?),
            Stored::MinI64 => AnyMaplet::MinI64(Maplet::load_mmap(path, Min::new())?),
            Stored::MaxF64 => AnyMaplet::MaxF64(Maplet::load_mmap(path, Max::new())?),
            Stored::MinF64 => AnyMaplet::MinF64(Maplet::load_mmap(path, Min::new())?),
            _ => {
                return Err(MapletError::InvalidParameter(
                    "only counters and numeric max/min maplets can be memory-mapped".into(),
                ))
            }
        })
    }

    /// The maplet in the byte format of `docs/FORMAT.md`, the values of
    /// [`AnyMaplet::Other`] written by `encode`. A memory-mapped maplet is
    /// verified first, so that damage is never sealed under a new checksum.
    ///
    /// # Errors
    /// [`MapletError::Corrupt`] for a damaged mapped maplet; the errors of
    /// `encode`.
    pub fn to_bytes_with(
        &self,
        encode: impl FnMut(&C::Value, &mut Vec<u8>) -> Result<()>,
    ) -> Result<Vec<u8>> {
        self.verify_if_mapped()?;
        Ok(match self {
            AnyMaplet::Counter(m) => m.to_bytes(),
            AnyMaplet::MaxI64(m) => m.to_bytes(),
            AnyMaplet::MinI64(m) => m.to_bytes(),
            AnyMaplet::MaxF64(m) => m.to_bytes(),
            AnyMaplet::MinF64(m) => m.to_bytes(),
            AnyMaplet::VecF32(m) => m.to_bytes(),
            AnyMaplet::VecF64(m) => m.to_bytes(),
            AnyMaplet::Other(m) => m.to_bytes_with(encode)?,
        })
    }

    /// The length of [`to_bytes_with`](AnyMaplet::to_bytes_with)'s bytes,
    /// known before they are made for every maplet but
    /// [`AnyMaplet::Other`] (see [`Maplet::packed_bytes_len`]).
    pub fn packed_bytes_len(&self) -> Option<usize> {
        each!(self, m => m.packed_bytes_len())
    }

    /// Writes the bytes of [`to_bytes_with`](AnyMaplet::to_bytes_with) into
    /// `out`, exactly [`packed_bytes_len`](AnyMaplet::packed_bytes_len)
    /// long (see [`Maplet::write_packed_bytes`]).
    ///
    /// # Errors
    /// As [`Maplet::write_packed_bytes`].
    pub fn write_packed_bytes(&self, out: &mut [u8]) -> Result<()> {
        each!(self, m => m.write_packed_bytes(out))
    }

    /// Saves to `path` atomically (a temporary file beside it, flushed,
    /// then renamed over it), as [`to_bytes_with`](AnyMaplet::to_bytes_with)
    /// writes. Only a regular file is ever replaced: if `path` is a
    /// directory, a FIFO or a device, nothing is written. A symbolic link
    /// at `path` is replaced by the new file; the file it pointed to is
    /// left as it was.
    ///
    /// # Errors
    /// [`MapletError::Io`] (kind `InvalidInput` for a path that is not a
    /// regular file), and those of [`to_bytes_with`](AnyMaplet::to_bytes_with).
    pub fn save_with(
        &self,
        path: &Path,
        encode: impl FnMut(&C::Value, &mut Vec<u8>) -> Result<()>,
    ) -> Result<()> {
        self.verify_if_mapped()?;
        match self {
            AnyMaplet::Counter(m) => m.save(path),
            AnyMaplet::MaxI64(m) => m.save(path),
            AnyMaplet::MinI64(m) => m.save(path),
            AnyMaplet::MaxF64(m) => m.save(path),
            AnyMaplet::MinF64(m) => m.save(path),
            AnyMaplet::VecF32(m) => m.save(path),
            AnyMaplet::VecF64(m) => m.save(path),
            AnyMaplet::Other(m) => m.save_with(path, encode),
        }
    }

    fn verify_if_mapped(&self) -> Result<()> {
        if self.is_read_only() {
            self.verify()?;
        }
        Ok(())
    }

    /// The number of stored entries.
    pub fn len(&self) -> usize {
        each!(self, m => m.len())
    }
    /// Whether nothing is stored.
    pub fn is_empty(&self) -> bool {
        each!(self, m => m.is_empty())
    }
    /// The options it was built with.
    pub fn options(&self) -> Options {
        each!(self, m => m.options())
    }
    /// The hash seed.
    pub fn seed(&self) -> u64 {
        each!(self, m => m.seed())
    }
    /// The number of distinct keys it was sized for.
    pub fn expected_items(&self) -> usize {
        each!(self, m => m.expected_items())
    }
    /// The configured false-positive rate.
    pub fn false_positive_rate(&self) -> f64 {
        each!(self, m => m.false_positive_rate())
    }
    /// Home slots now.
    pub fn capacity(&self) -> u64 {
        each!(self, m => m.capacity())
    }
    /// Size and accuracy figures.
    pub fn stats(&self) -> Stats {
        each!(self, m => m.stats())
    }
    /// Whether it is memory-mapped, and so read-only.
    pub fn is_read_only(&self) -> bool {
        each!(self, m => m.is_read_only())
    }
    /// Whether `hash` has an entry.
    pub fn contains_hash(&self, hash: u64) -> bool {
        each!(self, m => m.contains_hash(hash))
    }
    /// Membership of many hashes, in order.
    pub fn contains_many_hashes(&self, hashes: &[u64]) -> Vec<bool> {
        each!(self, m => m.contains_many_hashes(hashes))
    }

    /// Checks the table (and the checksum of a mapped file's bytes where
    /// the core keeps them); see [`Maplet::verify`].
    ///
    /// # Errors
    /// [`MapletError::Corrupt`] saying what is wrong.
    pub fn verify(&self) -> Result<()> {
        each!(self, m => m.verify())
    }

    /// Checks only a mapped maplet's file checksum; see
    /// [`Maplet::verify_checksum`].
    ///
    /// # Errors
    /// [`MapletError::Corrupt`] for a checksum that does not match.
    pub fn verify_checksum(&self) -> Result<()> {
        each!(self, m => m.verify_checksum())
    }

    /// Removes `hash`'s entry; see [`Maplet::remove_hash`].
    ///
    /// # Errors
    /// As [`Maplet::remove_hash`].
    pub fn remove_hash(&mut self, hash: u64) -> Result<bool> {
        each!(self, m => m.remove_hash(hash))
    }

    /// Removes everything; see [`Maplet::clear`].
    ///
    /// # Errors
    /// As [`Maplet::clear`].
    pub fn clear(&mut self) -> Result<()> {
        each!(self, m => m.clear())
    }

    /// Which hash range the maplet holds (see [`crate::shard`]).
    pub fn shard(&self) -> Shard {
        each!(self, m => m.shard())
    }

    /// The one ordinary maplet the shards `shards` (all of them, in order)
    /// hold together (see [`Maplet::concat`]). An empty shard whose storage
    /// differs from the others' (a max/min shard that never saw a value)
    /// counts as an empty shard of theirs.
    ///
    /// # Errors
    /// As [`Maplet::concat`]; [`MapletError::Incompatible`] for non-empty
    /// shards of different storage.
    pub fn concat(shards: &[&Self]) -> Result<Self>
    where
        C: Clone,
    {
        use AnyMaplet as A;
        let pick = *shards
            .iter()
            .find(|s| !s.is_empty())
            .or(shards.first())
            .ok_or_else(|| MapletError::InvalidParameter("no shards to concatenate".into()))?;
        macro_rules! gather {
            ($variant:ident, $m:expr) => {{
                let mut empty = Vec::new();
                for s in shards {
                    if !matches!(s, A::$variant(_)) {
                        if !s.is_empty() {
                            return Err(MapletError::Incompatible(
                                "the shards hold values of different storage".into(),
                            ));
                        }
                        empty.push(Maplet::with_shard(
                            s.expected_items(),
                            s.false_positive_rate(),
                            $m.operator().clone(),
                            s.options(),
                            s.shard(),
                        )?);
                    }
                }
                let mut empty = empty.iter();
                let refs: Vec<_> = shards
                    .iter()
                    .map(|s| match s {
                        A::$variant(m) => m,
                        _ => empty.next().expect("one empty shard made for each"),
                    })
                    .collect();
                A::$variant(Maplet::concat(&refs)?)
            }};
        }
        Ok(match pick {
            A::Counter(m) => gather!(Counter, m),
            A::MaxI64(m) => gather!(MaxI64, m),
            A::MinI64(m) => gather!(MinI64, m),
            A::MaxF64(m) => gather!(MaxF64, m),
            A::MinF64(m) => gather!(MinF64, m),
            A::VecF32(m) => gather!(VecF32, m),
            A::VecF64(m) => gather!(VecF64, m),
            A::Other(m) => gather!(Other, m),
        })
    }

    /// The parameters two maplets must share to merge.
    fn empty_like_params(&self) -> (usize, f64, Options) {
        (
            self.expected_items(),
            self.false_positive_rate(),
            self.options(),
        )
    }

    /// Merges `other` into `self` (see [`Maplet::merge`]). The two may hold
    /// different storage only when one of them is empty (a maplet whose
    /// first value chose float storage merged with one that never saw a
    /// value): merging an empty maplet changes nothing, and merging into an
    /// empty one takes the other's contents, keeping `self`'s memory limit.
    ///
    /// # Errors
    /// [`MapletError::Incompatible`] for different operators, parameters or
    /// seeds (also when one is empty), [`MapletError::ReadOnly`] into a
    /// mapped maplet, and those of [`Maplet::merge`]; `self` is then as it was.
    pub fn merge(&mut self, other: &Self) -> Result<()> {
        use AnyMaplet as A;
        match (&mut *self, other) {
            (A::Counter(a), A::Counter(b)) => a.merge(b),
            (A::MaxI64(a), A::MaxI64(b)) => a.merge(b),
            (A::MinI64(a), A::MinI64(b)) => a.merge(b),
            (A::MaxF64(a), A::MaxF64(b)) => a.merge(b),
            (A::MinF64(a), A::MinF64(b)) => a.merge(b),
            (A::VecF32(a), A::VecF32(b)) => a.merge(b),
            (A::VecF64(a), A::VecF64(b)) => a.merge(b),
            (A::Other(a), A::Other(b)) => a.merge(b),
            _ => {
                if self.is_read_only() {
                    return Err(MapletError::ReadOnly);
                }
                let (mine, theirs) = (self.empty_like_params(), other.empty_like_params());
                let same = mine.0 == theirs.0
                    && mine.1 == theirs.1
                    && mine.2.seed == theirs.2.seed
                    && mine.2.fixed_precision == theirs.2.fixed_precision;
                if !same {
                    return Err(MapletError::Incompatible(
                        "the maplets differ in expected_items, false-positive rate, seed or precision"
                            .into(),
                    ));
                }
                if other.is_empty() {
                    return Ok(());
                }
                if !self.is_empty() {
                    return Err(MapletError::Incompatible(
                        "the maplets hold values of different storage".into(),
                    ));
                }
                let mut taken = other.try_clone()?;
                each!(&mut taken, m => m.set_memory_limit(mine.2.memory_limit))?;
                *self = taken;
                Ok(())
            }
        }
    }
}
