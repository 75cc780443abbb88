//! Python `bytes` lent to the core, whose tables then read their words in
//! place (see [`mappy_core::Maplet::from_frozen_bytes`]).

use std::sync::Arc;

use mappy_core::FrozenBytes;
use pyo3::prelude::*;
use pyo3::types::PyBytes;

/// A `bytes` object's buffer, kept alive by a strong reference to it.
struct LentBytes {
    /// Keeps the object, and so its buffer, alive; dropped detached, the
    /// reference is released the next time a thread attaches.
    _object: Py<PyBytes>,
    ptr: *const u8,
    len: usize,
}

// SAFETY: the pointer is into a `bytes` object's buffer, which never
// changes once made and stays where it is while the object lives; the
// object lives at least as long as `_object`, and reading it takes no
// interpreter state, so it may be read from any thread.
#[allow(unsafe_code)]
unsafe impl Send for LentBytes {}
// SAFETY: as for `Send`: shared access only ever reads.
#[allow(unsafe_code)]
unsafe impl Sync for LentBytes {}

// SAFETY: `bytes` returns the same buffer every time, and nothing writes a
// `bytes` object's buffer after it is made (see `Send`).
#[allow(unsafe_code)]
unsafe impl FrozenBytes for LentBytes {
    fn bytes(&self) -> &[u8] {
        // SAFETY: `len` bytes at `ptr`, alive and unchanged while `self`
        // is (see `Send`).
        unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
    }
}

/// `data`'s bytes, lent to the core.
pub(crate) fn lend(data: &Bound<'_, PyBytes>) -> Arc<dyn FrozenBytes> {
    let bytes = data.as_bytes();
    Arc::new(LentBytes {
        _object: data.clone().unbind(),
        ptr: bytes.as_ptr(),
        len: bytes.len(),
    })
}
