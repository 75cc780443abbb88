//! Where the slot table's words live: on the heap, or in a read-only memory
//! map of a saved maplet.

use std::ops::{Deref, DerefMut};

/// The slot table's words.
pub(crate) enum Words {
    /// Heap words, writable.
    Owned(Vec<u64>),
    /// Words inside a memory-mapped file, read-only.
    #[cfg(all(feature = "mmap", target_endian = "little"))]
    Mapped(Mapped),
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

impl Words {
    pub(crate) fn zeroed(n: usize) -> Words {
        let v = vec![0; n];
        advise_huge_pages(&v);
        Words::Owned(v)
    }

    /// Whether the words are read-only (memory-mapped).
    pub(crate) fn is_mapped(&self) -> bool {
        !matches!(self, Words::Owned(_))
    }

    /// Heap bytes held (none for a memory map).
    pub(crate) fn heap_bytes(&self) -> usize {
        match self {
            Words::Owned(v) => v.capacity() * 8,
            #[cfg(all(feature = "mmap", target_endian = "little"))]
            Words::Mapped(_) => 0,
        }
    }

    /// Appends `n` zero words, allocating exactly.
    pub(crate) fn extend_zeroed(&mut self, n: usize) {
        let v = self.owned_mut();
        v.reserve_exact(n);
        v.resize(v.len() + n, 0);
    }

    /// Keeps the first `n` words, releasing the memory of the rest.
    pub(crate) fn truncate(&mut self, n: usize) {
        let v = self.owned_mut();
        v.truncate(n);
        v.shrink_to_fit();
    }

    /// Sets words `start..end` to zero, giving the memory of the whole
    /// pages among them back to the system (they read as zero and take no
    /// memory until written again), so that a table written front to back
    /// and saved as it goes needs memory only for the part not yet saved.
    pub(crate) fn release(&mut self, start: usize, end: usize) {
        let v = &mut self.owned_mut()[start..end];
        #[cfg(target_os = "linux")]
        {
            // SAFETY: sysconf only reads a system setting.
            #[allow(unsafe_code)]
            let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(1) as usize;
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
                // anonymous memory (heap or an allocator's own mapping), for
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

    fn owned_mut(&mut self) -> &mut Vec<u64> {
        match self {
            Words::Owned(v) => v,
            // Every mutating maplet operation refuses a mapped maplet first.
            #[cfg(all(feature = "mmap", target_endian = "little"))]
            Words::Mapped(_) => unreachable!("a memory-mapped maplet is read-only"),
        }
    }
}

impl Deref for Words {
    type Target = [u64];

    #[inline]
    fn deref(&self) -> &[u64] {
        match self {
            Words::Owned(v) => v,
            #[cfg(all(feature = "mmap", target_endian = "little"))]
            #[allow(unsafe_code)]
            Words::Mapped(m) => {
                // SAFETY: `Mapped::new` checked that the `len` words at
                // `offset` lie inside the map and are 8-byte aligned; every
                // bit pattern is a valid `u64`; the map lives as long as the
                // `Arc` we hold and is mapped read-only, so nothing in this
                // process writes it (see `Maplet::load_mmap` for writers in
                // other processes).
                unsafe {
                    std::slice::from_raw_parts(m.map.as_ptr().add(m.offset) as *const u64, m.len)
                }
            }
        }
    }
}

/// Asks the kernel to back a large table with huge pages. Lookups land on
/// random slots, so with 4 KiB pages nearly every lookup in a table of tens
/// of megabytes also misses the TLB; with 2 MiB pages the whole table fits
/// in it. Only a hint: where transparent huge pages are off, nothing
/// changes.
///
/// The advice covers every page the words touch, not just their 2 MiB-aligned
/// middle: a large allocation is a mapping of its own, and advice on part of
/// it would split it in several, which `mremap` cannot move. The table then
/// grows in place or moves without a copy (see `Table::widen_values`).
#[cfg(target_os = "linux")]
fn advise_huge_pages(words: &[u64]) {
    const HUGE: usize = 2 << 20;
    let bytes = std::mem::size_of_val(words);
    if bytes < HUGE {
        return;
    }
    // SAFETY: sysconf only reads a system setting.
    #[allow(unsafe_code)]
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(1) as usize;
    let start = words.as_ptr() as usize;
    let (lo, hi) = (start & !(page - 1), (start + bytes).next_multiple_of(page));
    // SAFETY: the range is the pages that hold `words` (their edges may
    // also hold other bytes of this process's heap), and MADV_HUGEPAGE
    // changes only how the kernel backs pages, never their contents; a
    // failure leaves them as they are.
    #[allow(unsafe_code)]
    unsafe {
        libc::madvise(lo as *mut libc::c_void, hi - lo, libc::MADV_HUGEPAGE);
    }
}

#[cfg(not(target_os = "linux"))]
fn advise_huge_pages(_: &[u64]) {}

impl DerefMut for Words {
    #[inline]
    fn deref_mut(&mut self) -> &mut [u64] {
        self.owned_mut()
    }
}

impl Clone for Words {
    /// A copy is always on the heap and writable.
    fn clone(&self) -> Words {
        Words::Owned(self.to_vec())
    }
}

impl std::fmt::Debug for Words {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Words({} words{})",
            self.len(),
            if self.is_mapped() { ", mapped" } else { "" }
        )
    }
}
