//! Where the slot table's words live: on the heap, in an anonymous memory
//! mapping of their own (large tables on Linux), in a read-only memory
//! map of a saved maplet, or inside bytes another owner keeps unchanged
//! (copied the first time they are written).

use std::ops::{Deref, DerefMut};
use std::ptr::NonNull;

use crate::error::Result;

/// An allocation the system refused: `bytes` long (`usize::MAX` when the
/// size itself overflowed).
#[derive(Clone, Copy, Debug)]
pub(crate) struct AllocError {
    pub(crate) bytes: usize,
}

impl From<AllocError> for crate::error::MapletError {
    fn from(e: AllocError) -> Self {
        crate::error::MapletError::OutOfMemory { bytes: e.bytes }
    }
}

/// Bytes of `n` words, or the error of a size that overflows.
fn word_bytes(n: usize) -> Result<usize, AllocError> {
    n.checked_mul(8).ok_or(AllocError { bytes: usize::MAX })
}

/// The words as bytes: on a little-endian machine byte `i` holds bits
/// `8 i..8 i + 8` of the words, as the table numbers them.
#[cfg(target_endian = "little")]
#[inline(always)]
pub(crate) fn as_bytes(words: &[u64]) -> &[u8] {
    // SAFETY: the same memory, read only, borrowed for as long as the
    // words: `u8` has no alignment requirement and every byte is a `u8`.
    #[allow(unsafe_code)]
    unsafe {
        std::slice::from_raw_parts(words.as_ptr() as *const u8, words.len() * 8)
    }
}

/// [`as_bytes`], writable.
#[cfg(target_endian = "little")]
#[inline(always)]
pub(crate) fn as_bytes_mut(words: &mut [u64]) -> &mut [u8] {
    // SAFETY: the same memory, borrowed through the words' unique borrow
    // for as long as it: `u8` has no alignment requirement, and any bytes
    // make valid `u64`s.
    #[allow(unsafe_code)]
    unsafe {
        std::slice::from_raw_parts_mut(words.as_mut_ptr() as *mut u8, words.len() * 8)
    }
}

/// Aborts as the standard collections do when `n` words cannot be had
/// (for the one infallible path, `Clone`: fallible copies use `try_clone`).
fn abort_alloc(n: usize) -> ! {
    std::alloc::handle_alloc_error(
        std::alloc::Layout::array::<u64>(n).unwrap_or(std::alloc::Layout::new::<u64>()),
    )
}

/// The slot table's words.
///
/// Invariant: `len` words at `ptr` are the words of `backing`, valid (and,
/// unless the backing is a read-only map, writable through `&mut self`)
/// for as long as `backing` is not changed; every change updates both.
/// Reading them is then a slice from two fields, with no branch on where
/// they live: a lookup reads the words several times.
pub(crate) struct Words {
    ptr: NonNull<u64>,
    len: usize,
    backing: Backing,
}

enum Backing {
    /// Heap words, writable.
    Heap(Vec<u64>),
    /// Words inside frozen bytes of another owner, read in place until the
    /// first write, which copies them into memory of their own.
    #[cfg(target_endian = "little")]
    Borrowed(Borrowed),
    /// Words in an anonymous mapping of their own, writable.
    #[cfg(target_os = "linux")]
    Anon(Anon),
    /// Words inside a memory-mapped file, read-only.
    #[cfg(all(feature = "mmap", target_endian = "little"))]
    Mapped(Mapped),
}

// SAFETY: `Words` owns its backing (a `Vec`, a mapping of its own, a
// shared read-only map, or a share of frozen bytes, which are `Send` and
// `Sync` and never change), as a `Vec<u64>` owns its memory; the pointer
// only caches where that backing's words are.
#[allow(unsafe_code)]
unsafe impl Send for Words {}
// SAFETY: as for `Send`; `&Words` gives only reads.
#[allow(unsafe_code)]
unsafe impl Sync for Words {}

/// Bytes that stay where they are, unchanged, for as long as they live:
/// a table can then read its words from them in place (see
/// [`crate::Maplet::from_frozen_bytes`]).
///
/// # Safety
/// [`bytes`](FrozenBytes::bytes) returns the same bytes at the same
/// address every time it is called, and nothing writes them while the
/// value lives (from any thread: implementors are `Send + Sync`).
#[allow(unsafe_code)]
pub unsafe trait FrozenBytes: Send + Sync {
    /// The bytes.
    fn bytes(&self) -> &[u8];
}

// SAFETY: a boxed slice's bytes stay at one address while it lives, and
// only its owner, which the trait object now is, could write them, through
// `&mut`: never, since it is only ever shared.
#[allow(unsafe_code)]
unsafe impl FrozenBytes for Box<[u8]> {
    fn bytes(&self) -> &[u8] {
        self
    }
}

/// A run of little-endian words inside frozen bytes.
#[cfg(target_endian = "little")]
pub(crate) struct Borrowed {
    owner: std::sync::Arc<dyn FrozenBytes>,
    offset: usize,
    len: usize,
}

/// A run of little-endian `u64` words inside a read-only memory map.
#[cfg(all(feature = "mmap", target_endian = "little"))]
pub(crate) struct Mapped {
    map: std::sync::Arc<memmap2::Mmap>,
    offset: usize,
    len: usize,
}

#[cfg(all(feature = "mmap", target_endian = "little"))]
impl Mapped {
    /// `len` words at byte `offset` of `map`; `None` unless they lie inside
    /// the map at an 8-byte-aligned address.
    pub(crate) fn new(
        map: std::sync::Arc<memmap2::Mmap>,
        offset: usize,
        len: usize,
    ) -> Option<Mapped> {
        let end = len.checked_mul(8)?.checked_add(offset)?;
        let aligned =
            (map.as_ptr() as usize).checked_add(offset)? % std::mem::align_of::<u64>() == 0;
        (end <= map.len() && aligned).then_some(Mapped { map, offset, len })
    }
}

/// Words in an anonymous memory mapping of their own. Fresh pages read as
/// zero and take no memory until written, and growing is an `mremap`,
/// which moves pages without copying them and adds zero pages. The heap
/// allocator promises neither: it may hand out reused memory that it must
/// clear first, writing every page, so that a large table of which only a
/// part is ever used would take memory for all of it.
///
/// Invariant: the mapping is `bytes` long (whole pages), holds the `len`
/// words, and is zero past them.
#[cfg(target_os = "linux")]
struct Anon {
    ptr: NonNull<u64>,
    len: usize,
    bytes: usize,
}

#[cfg(target_os = "linux")]
fn page_size() -> usize {
    // SAFETY: sysconf only reads a system setting.
    #[allow(unsafe_code)]
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    page.max(4096) as usize
}

#[cfg(target_os = "linux")]
impl Anon {
    /// `n` zero words, or `None` if the system refuses the mapping.
    fn zeroed(n: usize) -> Option<Anon> {
        let bytes = n
            .checked_mul(8)?
            .max(1)
            .checked_next_multiple_of(page_size())?;
        let a = Anon {
            ptr: map_anon(bytes)?,
            len: n,
            bytes,
        };
        advise_huge_pages(&a);
        Some(a)
    }

    /// Makes the words `n` long: new words are zero. Growing fails, leaving
    /// the words as they were, if the system refuses the memory; shrinking
    /// never fails (if the kernel will not shrink the mapping, it stays as
    /// large, zero past the words).
    fn resize(&mut self, n: usize) -> Result<(), AllocError> {
        let page = page_size();
        let bytes = word_bytes(n)?
            .max(1)
            .checked_next_multiple_of(page)
            .ok_or(AllocError { bytes: usize::MAX })?;
        if n < self.len {
            // Past the new length the mapping must read as zero: clear the
            // words left in its last page (the pages after it go).
            let keep = (bytes / 8).min(self.len);
            // SAFETY: the mapping holds `self.len >= keep` words at `ptr`,
            // and `&mut self` makes this the only reference into it.
            #[allow(unsafe_code)]
            let words = unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) };
            words[n..keep].fill(0);
        }
        if bytes != self.bytes {
            let p = (bytes > self.bytes && bytes >= HUGE_PAGE)
                .then(|| self.move_to_aligned(bytes))
                .flatten()
                .unwrap_or_else(|| self.remap(bytes, None));
            match std::ptr::NonNull::new(p as *mut u64) {
                Some(p) if p.as_ptr() as *mut libc::c_void != libc::MAP_FAILED => {
                    self.ptr = p;
                    self.bytes = bytes;
                    // A moved or grown mapping may not keep the advice.
                    advise_huge_pages(self);
                }
                // Refused (`mremap` then changes nothing): growing fails;
                // a mapping that could not shrink stays as it is, zero
                // past the `n` words.
                _ if n > self.len => return Err(AllocError { bytes }),
                _ => {}
            }
        }
        self.len = n;
        Ok(())
    }

    /// Moves the mapping, grown to `bytes`, to a fresh range that starts on
    /// a huge-page boundary, so that its huge pages stay huge (their page
    /// tables move whole) and the pages added can be huge too; `None`,
    /// leaving it as it was, if the system refuses.
    fn move_to_aligned(&self, bytes: usize) -> Option<*mut libc::c_void> {
        let dst = map_anon(bytes)?;
        let p = self.remap(bytes, Some(dst));
        if p == libc::MAP_FAILED {
            // SAFETY: `dst` is still the mapping made above, ours alone.
            #[allow(unsafe_code)]
            unsafe {
                libc::munmap(dst.as_ptr() as *mut libc::c_void, bytes);
            }
            return None;
        }
        Some(p)
    }

    /// The mapping resized to `bytes` by `mremap`, and moved whole if need
    /// be (contents kept, pages added reading as zero): onto `dst`, a
    /// mapping of `bytes` of our own that it replaces, if given, else where
    /// the kernel chooses. `MAP_FAILED`, changing nothing, if refused. The
    /// caller then takes the returned address in place of `ptr`.
    fn remap(&self, bytes: usize, dst: Option<NonNull<u64>>) -> *mut libc::c_void {
        let (flags, to) = match dst {
            Some(d) => (
                libc::MREMAP_MAYMOVE | libc::MREMAP_FIXED,
                d.as_ptr() as *mut libc::c_void,
            ),
            None => (libc::MREMAP_MAYMOVE, std::ptr::null_mut()),
        };
        // SAFETY: `ptr` and `self.bytes` are exactly our mapping, and `dst`
        // (if any) a mapping that nothing else refers to; the kernel moves
        // ours whole or leaves everything as it was. No reference into our
        // mapping is alive: the callers hold `&mut self`, and take the
        // address returned.
        #[allow(unsafe_code)]
        unsafe {
            libc::mremap(
                self.ptr.as_ptr() as *mut libc::c_void,
                self.bytes,
                bytes,
                flags,
                to,
            )
        }
    }
}

#[cfg(target_os = "linux")]
impl Drop for Anon {
    fn drop(&mut self) {
        // SAFETY: the mapping is ours alone and nothing refers to it any
        // more (we are being dropped).
        #[allow(unsafe_code)]
        unsafe {
            libc::munmap(self.ptr.as_ptr() as *mut libc::c_void, self.bytes);
        }
    }
}

/// The huge page size that large mappings start on a multiple of (2 MiB on
/// x86-64 and on arm64 with 4 KiB pages). Elsewhere an aligned start costs
/// nothing and gains nothing.
#[cfg(target_os = "linux")]
const HUGE_PAGE: usize = 2 << 20;

/// A new private anonymous mapping of `bytes` (whole pages), reading as
/// zero. One of a huge page or more starts on a huge-page boundary: the
/// kernel backs only aligned 2 MiB ranges with huge pages, so an unaligned
/// table of a few megabytes would get few or none.
#[cfg(target_os = "linux")]
fn map_anon(bytes: usize) -> Option<NonNull<u64>> {
    let span = if bytes >= HUGE_PAGE {
        bytes.checked_add(HUGE_PAGE)?
    } else {
        bytes
    };
    // SAFETY: a new private anonymous mapping at an address of the
    // kernel's choosing: it overlaps nothing of this process.
    #[allow(unsafe_code)]
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            span,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    if p == libc::MAP_FAILED {
        return None;
    }
    let start = p as usize;
    let aligned = if span > bytes {
        start.next_multiple_of(HUGE_PAGE)
    } else {
        start
    };
    // SAFETY: the ranges before and after `aligned..aligned + bytes` are
    // whole pages of the mapping just made, which nothing refers to;
    // unmapping them leaves that range as it was.
    #[allow(unsafe_code)]
    unsafe {
        if aligned > start {
            libc::munmap(p, aligned - start);
        }
        let end = aligned + bytes;
        if start + span > end {
            libc::munmap(end as *mut libc::c_void, start + span - end);
        }
    }
    NonNull::new(aligned as *mut u64)
}

/// Asks the kernel to back a large table with huge pages. Lookups land on
/// random slots, so with 4 KiB pages nearly every lookup in a table of tens
/// of megabytes also misses the TLB; with 2 MiB pages the whole table fits
/// in it. Only a hint: where transparent huge pages are off, nothing
/// changes. The advice covers the whole mapping, so that it stays one
/// mapping, which `mremap` moves or grows whole.
#[cfg(target_os = "linux")]
fn advise_huge_pages(a: &Anon) {
    if a.bytes < 2 << 20 {
        return;
    }
    // SAFETY: the range is exactly our mapping, and MADV_HUGEPAGE changes
    // only how the kernel backs its pages, never their contents; a failure
    // leaves them as they are.
    #[allow(unsafe_code)]
    unsafe {
        libc::madvise(
            a.ptr.as_ptr() as *mut libc::c_void,
            a.bytes,
            libc::MADV_HUGEPAGE,
        );
    }
}

/// Words below which [`Words::try_filled`] fills heap memory (32 MiB).
const HEAP_FILL_WORDS: usize = 4 << 20;

/// Words from which [`Words::try_filled`] fills two halves on two threads
/// (8 MiB: below, a thread costs more than it saves).
const PARALLEL_FILL_WORDS: usize = 1 << 20;

/// Tables at least this large (in words) get a mapping of their own.
#[cfg(target_os = "linux")]
const ANON_WORDS: usize = 32 << 10;

impl Words {
    fn from_backing(backing: Backing) -> Words {
        let mut w = Words {
            ptr: NonNull::dangling(),
            len: 0,
            backing,
        };
        w.sync();
        w
    }

    /// Points `ptr` and `len` at the backing's words again, after a change.
    fn sync(&mut self) {
        (self.ptr, self.len) = match &mut self.backing {
            Backing::Heap(v) => (
                NonNull::new(v.as_mut_ptr()).expect("a Vec's pointer"),
                v.len(),
            ),
            #[cfg(target_os = "linux")]
            Backing::Anon(a) => (a.ptr, a.len),
            #[cfg(all(feature = "mmap", target_endian = "little"))]
            Backing::Mapped(m) => {
                // SAFETY: `Mapped::new` checked that the `len` words at
                // `offset` lie inside the map, 8-byte aligned.
                #[allow(unsafe_code)]
                let p = unsafe { m.map.as_ptr().add(m.offset) } as *mut u64;
                (NonNull::new(p).expect("a map's pointer"), m.len)
            }
            #[cfg(target_endian = "little")]
            Backing::Borrowed(b) => {
                // SAFETY: `Words::borrowed` checked that the `len` words at
                // `offset` lie inside the owner's bytes, 8-byte aligned;
                // they stay there (`FrozenBytes`).
                #[allow(unsafe_code)]
                let p = unsafe { b.owner.bytes().as_ptr().add(b.offset) } as *mut u64;
                (NonNull::new(p).expect("a slice's pointer"), b.len)
            }
        };
    }

    /// The words whose little-endian bytes are `sub`, read in place inside
    /// `owner`'s bytes; `None` unless `sub` lies inside them, a whole
    /// number of words at an 8-byte-aligned address.
    #[cfg(target_endian = "little")]
    pub(crate) fn borrowed(owner: &std::sync::Arc<dyn FrozenBytes>, sub: &[u8]) -> Option<Words> {
        let all = owner.bytes();
        let offset = (sub.as_ptr() as usize).checked_sub(all.as_ptr() as usize)?;
        let inside = offset.checked_add(sub.len())? <= all.len();
        let aligned = sub.as_ptr() as usize % std::mem::align_of::<u64>() == 0;
        (inside && aligned && sub.len() % 8 == 0).then(|| {
            Words::from_backing(Backing::Borrowed(Borrowed {
                owner: owner.clone(),
                offset,
                len: sub.len() / 8,
            }))
        })
    }

    /// Whether the words are borrowed from frozen bytes (see
    /// [`own`](Words::own)).
    pub(crate) fn is_borrowed(&self) -> bool {
        #[cfg(target_endian = "little")]
        if let Backing::Borrowed(_) = self.backing {
            return true;
        }
        false
    }

    /// Whether the words can be written where they are: heap or a mapping
    /// of their own (one test on the insert path).
    #[inline]
    pub(crate) fn is_own(&self) -> bool {
        match self.backing {
            Backing::Heap(_) => true,
            #[cfg(target_os = "linux")]
            Backing::Anon(_) => true,
            #[cfg(target_endian = "little")]
            Backing::Borrowed(_) => false,
            #[cfg(all(feature = "mmap", target_endian = "little"))]
            Backing::Mapped(_) => false,
        }
    }

    /// Copies borrowed words into memory of their own (nothing for words
    /// that are already); an error, leaving them borrowed, if the memory
    /// cannot be had.
    pub(crate) fn own(&mut self) -> Result<(), AllocError> {
        if self.is_borrowed() {
            *self = self.try_clone()?;
        }
        Ok(())
    }

    /// `n` zero words: a mapping of their own for a large table on Linux
    /// (whose untouched pages take no memory), else on the heap; an error,
    /// allocating nothing, if the system refuses both.
    pub(crate) fn try_zeroed(n: usize) -> Result<Words, AllocError> {
        #[cfg(target_os = "linux")]
        if n >= ANON_WORDS {
            if let Some(a) = Anon::zeroed(n) {
                return Ok(Words::from_backing(Backing::Anon(a)));
            }
        }
        Words::try_heap(n)
    }

    /// `n` zero words on the heap, an error if they cannot be had: zeroed
    /// by the allocator, which need not clear fresh pages (already zero),
    /// only memory it hands back again.
    fn try_heap(n: usize) -> Result<Words, AllocError> {
        let bytes = word_bytes(n)?;
        if n == 0 {
            return Ok(Words::from_backing(Backing::Heap(Vec::new())));
        }
        let layout = std::alloc::Layout::array::<u64>(n).map_err(|_| AllocError { bytes })?;
        // SAFETY: the layout is not empty (n > 0); a non-null result is
        // memory for `n` zeroed `u64`s (every bit pattern is a `u64`) from
        // the global allocator with exactly the layout a `Vec<u64>` of
        // capacity `n` frees it with.
        #[allow(unsafe_code)]
        let v = unsafe {
            let ptr = std::alloc::alloc_zeroed(layout) as *mut u64;
            if ptr.is_null() {
                return Err(AllocError { bytes });
            }
            Vec::from_raw_parts(ptr, n, n)
        };
        Ok(Words::from_backing(Backing::Heap(v)))
    }

    /// The words whose little-endian bytes are `bytes` (a whole number of
    /// words), zeroed memory filled in two halves on two threads when
    /// large (see [`try_filled`](Words::try_filled)); an error if they
    /// cannot be had.
    pub(crate) fn try_from_le_bytes(bytes: &[u8]) -> Result<Words> {
        Words::try_filled(bytes.len() / 8, |at, words| {
            for (word, c) in words.iter_mut().zip(bytes[at * 8..].chunks_exact(8)) {
                *word = u64::from_le_bytes(c.try_into().expect("eight bytes"));
            }
            Ok(())
        })
    }

    /// `n` zeroed words, then `fill(first, part)` for each part of them,
    /// `part` starting at word `first`: the whole at once, or for a large
    /// `n` two halves on two threads where the machine has them (copying
    /// into fresh memory is bound by the page faults, which then happen on
    /// both cores). The first error of `fill` is returned.
    pub(crate) fn try_filled(
        n: usize,
        fill: impl Fn(usize, &mut [u64]) -> Result<()> + Sync,
    ) -> Result<Words> {
        // Below glibc's largest reuse threshold (32 MiB) heap memory the
        // allocator hands back again is cheaper than fresh pages; above,
        // every buffer is fresh pages, cheaper as huge ones.
        let mut words = if n < HEAP_FILL_WORDS {
            Words::try_heap(n)?
        } else {
            Words::try_zeroed(n)?
        };
        let two = n >= PARALLEL_FILL_WORDS
            && std::thread::available_parallelism().is_ok_and(|c| c.get() > 1);
        if !two {
            fill(0, &mut words)?;
            return Ok(words);
        }
        // Halves on a page boundary (512 words).
        let mid = (n / 2) & !511;
        let (first, second) = words.split_at_mut(mid);
        let halves = std::thread::scope(|scope| {
            let other = std::thread::Builder::new()
                .spawn_scoped(scope, || fill(mid, second))
                .ok()?;
            let a = fill(0, first);
            let b = other.join().unwrap_or_else(|_| {
                Err(crate::error::MapletError::Corrupt(
                    "the words were not filled".into(),
                ))
            });
            Some(a.and(b))
        });
        match halves {
            Some(r) => r?,
            // A thread the system refuses leaves the whole to this one.
            None => fill(0, &mut words)?,
        }
        Ok(words)
    }

    /// [`try_zeroed`](Words::try_zeroed), aborting as a `Vec` does when
    /// the memory cannot be had.
    pub(crate) fn zeroed(n: usize) -> Words {
        Words::try_zeroed(n).unwrap_or_else(|_| abort_alloc(n))
    }

    /// Words inside a read-only memory map.
    #[cfg(all(feature = "mmap", target_endian = "little"))]
    pub(crate) fn mapped(m: Mapped) -> Words {
        Words::from_backing(Backing::Mapped(m))
    }

    /// Whether the words are read-only (memory-mapped).
    pub(crate) fn is_mapped(&self) -> bool {
        match self.backing {
            Backing::Heap(_) => false,
            #[cfg(target_os = "linux")]
            Backing::Anon(_) => false,
            #[cfg(target_endian = "little")]
            Backing::Borrowed(_) => false,
            #[cfg(all(feature = "mmap", target_endian = "little"))]
            Backing::Mapped(_) => true,
        }
    }

    /// Heap bytes held (none for a memory map of a file; for borrowed
    /// words, the words', which they keep alive).
    pub(crate) fn heap_bytes(&self) -> usize {
        match &self.backing {
            Backing::Heap(v) => v.capacity() * 8,
            #[cfg(target_os = "linux")]
            Backing::Anon(a) => a.bytes,
            #[cfg(target_endian = "little")]
            Backing::Borrowed(b) => b.len * 8,
            #[cfg(all(feature = "mmap", target_endian = "little"))]
            Backing::Mapped(_) => 0,
        }
    }

    /// Appends `n` zero words, allocating exactly; an error, leaving the
    /// words as they were, if the system refuses the memory.
    pub(crate) fn try_extend_zeroed(&mut self, n: usize) -> Result<(), AllocError> {
        let total = self
            .len
            .checked_add(n)
            .ok_or(AllocError { bytes: usize::MAX })?;
        let bytes = word_bytes(total)?;
        self.own()?;
        let r = match &mut self.backing {
            Backing::Heap(v) => v
                .try_reserve_exact(n)
                .map(|()| v.resize(total, 0))
                .map_err(|_| AllocError { bytes }),
            #[cfg(target_os = "linux")]
            Backing::Anon(a) => a.resize(total),
            #[cfg(target_endian = "little")]
            Backing::Borrowed(_) => unreachable!("owned above"),
            #[cfg(all(feature = "mmap", target_endian = "little"))]
            Backing::Mapped(_) => unreachable!("a memory-mapped maplet is read-only"),
        };
        self.sync();
        r
    }

    /// A writable copy in memory of its own; an error if the memory cannot
    /// be had.
    pub(crate) fn try_clone(&self) -> Result<Words, AllocError> {
        let mut w = Words::try_zeroed(self.len())?;
        w.copy_from_slice(self);
        Ok(w)
    }

    /// The words' bytes (see [`as_bytes_mut`](Words::as_bytes_mut)).
    #[cfg(target_endian = "little")]
    pub(crate) fn as_bytes(&self) -> &[u8] {
        as_bytes(self)
    }

    /// The whole file, for a read-only map of one (to check its checksum).
    pub(crate) fn file_bytes(&self) -> Option<&[u8]> {
        match &self.backing {
            #[cfg(all(feature = "mmap", target_endian = "little"))]
            Backing::Mapped(m) => Some(&m.map[..]),
            _ => None,
        }
    }

    /// Keeps the first `n` words, releasing the memory of the rest.
    pub(crate) fn truncate(&mut self, n: usize) {
        match &mut self.backing {
            Backing::Heap(v) => {
                v.truncate(n);
                v.shrink_to_fit();
            }
            #[cfg(target_os = "linux")]
            Backing::Anon(a) => {
                // Shrinking never fails.
                let _ = a.resize(n.min(a.len));
            }
            // A shorter view of the same bytes.
            #[cfg(target_endian = "little")]
            Backing::Borrowed(b) => b.len = n.min(b.len),
            #[cfg(all(feature = "mmap", target_endian = "little"))]
            Backing::Mapped(_) => unreachable!("a memory-mapped maplet is read-only"),
        }
        self.sync();
    }

    /// Sets words `start..end` to zero, giving the memory of the whole
    /// pages among them back to the system (they read as zero and take no
    /// memory until written again), so that a table written front to back
    /// and saved as it goes needs memory only for the part not yet saved.
    pub(crate) fn release(&mut self, start: usize, end: usize) {
        let v = &mut self[start..end];
        #[cfg(target_os = "linux")]
        {
            let page = page_size();
            let (lo, hi) = (v.as_ptr() as usize, v.as_ptr() as usize + 8 * v.len());
            let (plo, phi) = (lo.next_multiple_of(page), hi & !(page - 1));
            if plo < phi {
                // The words around the whole pages are zeroed by writes.
                let (head, tail) = ((plo - lo) / 8, (hi - phi) / 8);
                v[..head].fill(0);
                let n = v.len();
                v[n - tail..].fill(0);
                // SAFETY: `plo..phi` are whole pages inside the words we
                // borrow mutably, so no other object lives there and no
                // reference into them outlives this call. They are private
                // anonymous memory (a mapping of our own, or the heap), for
                // which MADV_DONTNEED makes every later read see zeros: the
                // same as writing zeros, which is what this function does.
                #[allow(unsafe_code)]
                let r = unsafe {
                    libc::madvise(plo as *mut libc::c_void, phi - plo, libc::MADV_DONTNEED)
                };
                if r == 0 {
                    return;
                }
            }
        }
        v.fill(0);
    }

    #[cfg(feature = "kmers")]
    /// [`release`](Words::release) for words given back front to back:
    /// words `..start` were released by earlier calls, so the page that
    /// holds word `start` (which [`release`](Words::release) would keep,
    /// as it holds words before `start`) is given back with the rest.
    /// Without it, the page each call ends in would never be given back.
    pub(crate) fn release_front(&mut self, start: usize, end: usize) {
        #[cfg(target_os = "linux")]
        let start = {
            let into_page = (self[start..].as_ptr() as usize % page_size()) / 8;
            start.saturating_sub(into_page)
        };
        self.release(start, end);
    }
}

impl Deref for Words {
    type Target = [u64];

    #[inline]
    fn deref(&self) -> &[u64] {
        // SAFETY: the type's invariant: `len` initialized words at `ptr`,
        // aligned, alive as long as the backing we hold. A read-only map's
        // words may change only if another process writes the file (see
        // `Maplet::load_mmap`).
        #[allow(unsafe_code)]
        unsafe {
            std::slice::from_raw_parts(self.ptr.as_ptr(), self.len)
        }
    }
}

impl DerefMut for Words {
    #[inline]
    fn deref_mut(&mut self) -> &mut [u64] {
        if !self.is_own() {
            self.make_own();
        }
        // SAFETY: the type's invariant, for a writable backing (checked
        // above), and `&mut self` makes this the only reference into it.
        #[allow(unsafe_code)]
        unsafe {
            std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len)
        }
    }
}

impl Words {
    /// Before a write to words not of their own: every mutating maplet
    /// operation refuses a mapped maplet, and owns borrowed words
    /// fallibly, first; should one not, the copy here aborts as a `Vec`
    /// does when the memory cannot be had.
    #[cold]
    #[inline(never)]
    fn make_own(&mut self) {
        #[cfg(all(feature = "mmap", target_endian = "little"))]
        if self.is_mapped() {
            unreachable!("a memory-mapped maplet is read-only");
        }
        if self.own().is_err() {
            abort_alloc(self.len);
        }
    }
}

impl Clone for Words {
    /// A copy is always writable, in memory of its own.
    fn clone(&self) -> Words {
        let mut w = Words::zeroed(self.len());
        w.copy_from_slice(self);
        w
    }
}

impl std::fmt::Debug for Words {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Words({} words{})",
            self.len(),
            if self.is_mapped() {
                ", mapped"
            } else if self.is_borrowed() {
                ", borrowed"
            } else {
                ""
            }
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Words given back front to back in pieces of any size, as a table
    /// saved as it is built gives them back, leave none of their pages in
    /// memory (asked of the kernel by `mincore`), and keep the words after.
    #[cfg(all(target_os = "linux", feature = "kmers"))]
    #[test]
    fn words_released_front_to_back_leave_no_page_in_memory() {
        let n = 1 << 20;
        let mut w = Words::zeroed(n);
        for (i, x) in w.iter_mut().enumerate() {
            *x = i as u64 + 1;
        }
        let (page, piece, end) = (page_size(), 1000, n / 2);
        let mut at = 0;
        while at < end {
            let next = (at + piece).min(end);
            w.release_front(at, next);
            at = next;
        }
        let base = w.as_ptr() as usize;
        assert_eq!(base % page, 0, "a mapping of its own starts a page");
        let pages = end * 8 / page;
        let mut resident = vec![0u8; pages];
        // SAFETY: `base..base + pages * page` lies inside the words we
        // hold, and `resident` has one byte for each of those pages.
        #[allow(unsafe_code)]
        let r = unsafe {
            libc::mincore(
                base as *mut libc::c_void,
                pages * page,
                resident.as_mut_ptr(),
            )
        };
        assert_eq!(r, 0);
        let kept = resident.iter().filter(|&&b| b & 1 == 1).count();
        assert_eq!(kept, 0, "{kept} of {pages} released pages still in memory");
        assert!(w[..end].iter().all(|&x| x == 0));
        assert!((end..n).all(|i| w[i] == i as u64 + 1));
    }

    /// Every way the words change size keeps what they held and reads zero
    /// where nothing was written, for heap words and for a mapping alike.
    #[test]
    fn words_grow_shrink_and_release() {
        for n in [100, 3 * (32 << 10)] {
            let mut w = Words::zeroed(n);
            #[cfg(target_os = "linux")]
            assert_eq!(matches!(w.backing, Backing::Anon(_)), n >= ANON_WORDS);
            assert!(w.iter().all(|&x| x == 0));
            for (i, x) in w.iter_mut().enumerate() {
                *x = i as u64 + 1;
            }
            w.try_extend_zeroed(n + 7).unwrap();
            assert_eq!(w.len(), 2 * n + 7);
            assert!((0..n).all(|i| w[i] == i as u64 + 1));
            assert!(w[n..].iter().all(|&x| x == 0));
            // Shrinking then growing again never brings old words back.
            w.truncate(n / 2 + 3);
            w.try_extend_zeroed(n).unwrap();
            assert!((0..n / 2 + 3).all(|i| w[i] == i as u64 + 1));
            assert!(w[n / 2 + 3..].iter().all(|&x| x == 0));
            let c = w.clone();
            assert_eq!(&c[..], &w[..]);
            #[cfg(target_os = "linux")]
            {
                // A mapping of a huge page or more starts on a huge-page
                // boundary, also after growing (it moves there whole).
                let mut big = Words::zeroed(HUGE_PAGE / 8 + 1);
                assert_eq!(big.as_ptr() as usize % HUGE_PAGE, 0);
                big[5] = 9;
                big.try_extend_zeroed(HUGE_PAGE / 8).unwrap();
                assert_eq!(big.as_ptr() as usize % HUGE_PAGE, 0);
                assert_eq!((big[5], big[HUGE_PAGE / 8 + 3]), (9, 0));
                let mut small = Words::zeroed(ANON_WORDS);
                small[0] = 1;
                small.try_extend_zeroed(HUGE_PAGE / 8).unwrap();
                assert_eq!(small.as_ptr() as usize % HUGE_PAGE, 0);
                assert_eq!(small[0], 1);
            }
            #[cfg(feature = "kmers")]
            {
                w.release(5, n / 2);
                assert!(w[5..n / 2].iter().all(|&x| x == 0));
                assert!((0..5).chain(n / 2..n / 2 + 3).all(|i| w[i] == i as u64 + 1));
                assert_eq!(c[6], 7, "a clone has words of its own");
            }
        }
    }
}
