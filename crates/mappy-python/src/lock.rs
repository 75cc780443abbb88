//! The lock each maplet guards its state with, and the waits for it: a
//! thread waiting for a maplet answers Ctrl-C, and a wait that would never
//! end (merge functions of two maplets that read each other, from two
//! threads) raises `RuntimeError` instead.

use std::cell::UnsafeCell;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;

use crate::state::Inner;

/// A token of the calling thread, never 0: its interpreter thread state,
/// which no other live thread shares. (A thread-local of our own would do
/// as well, but in an extension module each read of one is a call into the
/// dynamic loader, a large part of a single lookup's cost.)
pub(crate) fn thread_token(_py: Python<'_>) -> u64 {
    // SAFETY: the `Python` token proves this thread is attached to the
    // interpreter, so it has a current thread state and the call cannot fail.
    #[allow(unsafe_code)]
    let state = unsafe { pyo3::ffi::PyThreadState_Get() };
    state as usize as u64
}

/// A maplet's state and the lock that guards it: one holder at a time.
///
/// Every holder takes it while attached to the interpreter (a batch takes
/// it first, then detaches for the work), so where the interpreter has a
/// GIL, the GIL already orders all attempts: testing the flag and setting
/// it is then a plain load and store, with no atomic read-modify-write. A
/// `std::sync::Mutex` costs two such instructions per call (lock and
/// unlock), about a third of a single lookup. On a free-threaded build the
/// flag is taken by compare-and-swap.
pub(crate) struct StateLock {
    /// Whether a thread holds the state.
    pub(crate) held: AtomicBool,
    /// Thread token of the holder, 0 when free: tells a merge function that
    /// re-enters its own maplet (which would wait forever) from contention.
    pub(crate) owner: AtomicU64,
    state: UnsafeCell<Inner>,
}

// SAFETY: the state is reached only through a `Locked`, and `try_lock`
// hands out at most one at a time; `Inner` is `Send`, so whichever thread
// holds the lock may use it.
#[allow(unsafe_code)]
unsafe impl Sync for StateLock {}

impl StateLock {
    pub(crate) fn new(inner: Inner) -> StateLock {
        StateLock {
            held: AtomicBool::new(false),
            owner: AtomicU64::new(0),
            state: UnsafeCell::new(inner),
        }
    }

    /// Takes the lock if it is free. The calling thread must be attached to
    /// the interpreter (it holds a `Python` token, or is the garbage
    /// collector's thread).
    #[inline]
    pub(crate) fn try_lock(&self, token: u64) -> Option<Locked<'_>> {
        #[cfg(not(Py_GIL_DISABLED))]
        let taken = {
            // The caller holds the GIL, and so does every other thread that
            // takes or tests the lock: no other thread runs between the
            // load and the store. (A holder may release the lock detached;
            // that store only ever frees it.)
            let free = !self.held.load(Ordering::Acquire);
            if free {
                self.held.store(true, Ordering::Relaxed);
            }
            free
        };
        #[cfg(Py_GIL_DISABLED)]
        let taken = self
            .held
            .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_ok();
        taken.then(|| {
            self.owner.store(token, Ordering::Relaxed);
            Locked { lock: self }
        })
    }
}

/// The maplet's state, locked by this thread.
pub(crate) struct Locked<'a> {
    lock: &'a StateLock,
}

impl Drop for Locked<'_> {
    fn drop(&mut self) {
        self.lock.owner.store(0, Ordering::Relaxed);
        self.lock.held.store(false, Ordering::Release);
    }
}

impl std::ops::Deref for Locked<'_> {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        // SAFETY: this `Locked` is the only one (see `StateLock::try_lock`),
        // and it lends the state out only through its own borrows.
        #[allow(unsafe_code)]
        unsafe {
            &*self.lock.state.get()
        }
    }
}

impl std::ops::DerefMut for Locked<'_> {
    fn deref_mut(&mut self) -> &mut Inner {
        // SAFETY: as in `deref`; `&mut self` makes this borrow exclusive.
        #[allow(unsafe_code)]
        unsafe {
            &mut *self.lock.state.get()
        }
    }
}

/// Threads waiting for a lock: (thread token, the lock). An entry lives
/// only while its thread waits in [`StateLock::lock`], which holds a
/// reference to the lock all that time.
static WAITING: Mutex<Vec<(u64, usize)>> = Mutex::new(Vec::new());

impl StateLock {
    /// Locks the state. The common case, nobody holding it, is inlined;
    /// otherwise the thread waits detached, so that the holder can take the
    /// interpreter to finish.
    ///
    /// # Errors
    /// `RuntimeError` if waiting would never end (this thread, or a thread
    /// waiting on a lock this thread holds, holds it), and the exception of
    /// a signal handler (`KeyboardInterrupt`) that runs while waiting.
    #[inline]
    pub(crate) fn lock(&self, py: Python<'_>) -> PyResult<Locked<'_>> {
        match self.try_lock(thread_token(py)) {
            Some(locked) => Ok(locked),
            None => self.lock_contended(py),
        }
    }

    #[cold]
    #[inline(never)]
    fn lock_contended(&self, py: Python<'_>) -> PyResult<Locked<'_>> {
        let me = thread_token(py);
        let id = self as *const StateLock as usize;
        let waiting = Waiting::register(me, id);
        let mut pause = Duration::from_micros(2);
        let mut tries = 0u32;
        loop {
            if let Some(locked) = self.try_lock(me) {
                return Ok(locked);
            }
            if self.owner.load(Ordering::Relaxed) == me {
                return Err(PyRuntimeError::new_err(
                    "a maplet's merge function used the same maplet: that would deadlock",
                ));
            }
            if tries % 64 == 63 {
                if waiting.in_cycle() {
                    return Err(PyRuntimeError::new_err(
                        "the merge functions of two or more maplets wait for each other (each \
                         runs while its maplet is locked, and uses the other): that would deadlock",
                    ));
                }
                py.check_signals()?;
            }
            // The holder is another thread: a batch working detached, or a
            // call waiting for the interpreter. Let it run, yielding at
            // first, then sleeping a little longer each time (at most 1 ms).
            py.detach(|| {
                if tries < 16 {
                    std::thread::yield_now();
                } else {
                    std::thread::sleep(pause);
                    pause = (pause * 2).min(Duration::from_millis(1));
                }
            });
            tries = tries.wrapping_add(1);
        }
    }
}

/// This thread's entry in [`WAITING`], removed when dropped.
struct Waiting {
    me: u64,
    lock: usize,
}

impl Waiting {
    fn register(me: u64, lock: usize) -> Waiting {
        WAITING
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((me, lock));
        Waiting { me, lock }
    }

    /// Whether the holders of the locks form a cycle back to this thread:
    /// the lock's holder waits for a lock whose holder waits ... for a lock
    /// this thread holds.
    fn in_cycle(&self) -> bool {
        let waiting = WAITING.lock().unwrap_or_else(|e| e.into_inner());
        let mut lock = self.lock;
        // Each step moves to another waiting thread: at most one step each.
        for _ in 0..=waiting.len() {
            // SAFETY: `lock` is this thread's lock or one another thread
            // waits for; either thread holds a reference to it while its
            // entry is in `WAITING`, which we hold locked.
            #[allow(unsafe_code)]
            let owner = unsafe { &*(lock as *const StateLock) }
                .owner
                .load(Ordering::Relaxed);
            if owner == 0 {
                return false;
            }
            if owner == self.me {
                return true;
            }
            match waiting.iter().find(|(t, _)| *t == owner) {
                Some(&(_, next)) => lock = next,
                None => return false,
            }
        }
        false
    }
}

impl Drop for Waiting {
    fn drop(&mut self) {
        let mut waiting = WAITING.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(i) = waiting
            .iter()
            .position(|&(t, l)| t == self.me && l == self.lock)
        {
            waiting.swap_remove(i);
        }
    }
}
