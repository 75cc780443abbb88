//! `Maplet.insert`, `Maplet.query`, `Maplet.contains` and `key in maplet`
//! by the interpreter's cheapest calling conventions.
//!
//! A Python loop makes these calls once per key. As `#[pymethods]` each
//! would accept keywords, parse its arguments against a general
//! description, and pass through a trampoline that keeps PyO3's
//! bookkeeping: about 140 instructions a call, as many as the lookup
//! itself. Installed instead as plain method descriptors (`METH_O` for a
//! key, `METH_FASTCALL` for a key and a value), they take their arguments
//! positionally, as `dict.get` does, and go straight to the shared
//! implementation in [`Maplet`].
//!
//! PyO3 counts the threads it knows to be attached, and a `Py` dropped on
//! a thread it does not count waits in a pool until the next PyO3 call.
//! Counter maplets hold no Python objects, so their calls drop none and run
//! as they are, except a write to one read from a `bytes` object, whose
//! first change drops its reference to it; every other maplet's calls, and
//! every error, are handled inside [`Python::attach`], which counts the
//! thread as attached.

use std::ffi::{c_int, CStr};
use std::ptr;

use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::PyType;

use crate::errors::guarded;
use crate::maplet::Maplet;
use crate::operators::Spec;

/// Runs `body` on the maplet `slf`, returning its new reference, or NULL
/// with its error raised.
///
/// # Safety
/// The calling thread is attached to the interpreter and `slf` is an
/// instance of `Maplet` or of a subclass (the method descriptor checks
/// this before the call).
unsafe fn call(
    slf: *mut ffi::PyObject,
    writes: bool,
    body: impl FnOnce(Python<'_>, &Maplet) -> PyResult<*mut ffi::PyObject>,
) -> *mut ffi::PyObject {
    // SAFETY: the caller's guarantees, passed on.
    unsafe { call_or(slf, writes, body, ptr::null_mut()) }
}

/// Runs `body` (which changes the maplet if `writes`) on the maplet `slf`,
/// returning what it returns, or `failed` with its error raised.
///
/// # Safety
/// As [`call`].
#[inline(always)]
unsafe fn call_or<T>(
    slf: *mut ffi::PyObject,
    writes: bool,
    body: impl FnOnce(Python<'_>, &Maplet) -> PyResult<T>,
    failed: T,
) -> T {
    // SAFETY: the interpreter calls a method only on an attached thread.
    let py = unsafe { Python::assume_attached() };
    // SAFETY: `slf` is a live, borrowed reference to a `Maplet` instance.
    let slf = unsafe { Borrowed::from_ptr(py, slf) };
    // SAFETY: as above: the descriptor checked the instance's type.
    let slf = unsafe { slf.cast_unchecked::<Maplet>() };
    let maplet = slf.get();
    let r = if maplet.spec == Spec::Counter && !(writes && maplet.lent) {
        guarded(py, || body(py, maplet))
    } else {
        Python::attach(|py| guarded(py, || body(py, maplet)))
    };
    match r {
        Ok(obj) => obj,
        Err(e) => {
            Python::attach(|py| e.restore(py));
            failed
        }
    }
}

/// A new reference to a `bool`.
fn py_bool(b: bool) -> *mut ffi::PyObject {
    let obj = if b {
        // SAFETY: the two booleans are static objects.
        unsafe { ffi::Py_True() }
    } else {
        // SAFETY: as above.
        unsafe { ffi::Py_False() }
    };
    // SAFETY: a valid object; the caller gets the new reference.
    unsafe { ffi::Py_IncRef(obj) };
    obj
}

/// A new reference to `None`.
fn py_none() -> *mut ffi::PyObject {
    // SAFETY: `None` is a static object; the caller gets the new reference.
    unsafe {
        let none = ffi::Py_None();
        ffi::Py_IncRef(none);
        none
    }
}

unsafe extern "C" fn query(slf: *mut ffi::PyObject, key: *mut ffi::PyObject) -> *mut ffi::PyObject {
    // SAFETY: called by the interpreter through the `METH_O` descriptor
    // `install` made: `slf` is a `Maplet`, `key` a borrowed reference.
    unsafe {
        call(slf, false, |py, m| {
            let key = Borrowed::from_ptr(py, key);
            Ok(match m.query_key(py, &key)? {
                Some(v) => v.into_ptr(),
                None => py_none(),
            })
        })
    }
}

unsafe extern "C" fn contains(
    slf: *mut ffi::PyObject,
    key: *mut ffi::PyObject,
) -> *mut ffi::PyObject {
    // SAFETY: as in `query`.
    unsafe {
        call(slf, false, |py, m| {
            let key = Borrowed::from_ptr(py, key);
            Ok(py_bool(m.contains_key(py, &key)?))
        })
    }
}

/// `key in maplet`: the type's `sq_contains` slot, as `contains`.
unsafe extern "C" fn sq_contains(slf: *mut ffi::PyObject, key: *mut ffi::PyObject) -> c_int {
    // SAFETY: called by the interpreter through the slot `install` set on
    // the `Maplet` type (and inherited by subclasses): `slf` is a `Maplet`,
    // `key` a borrowed reference. The answer is the slot's 1 or 0, with no
    // `bool` object made; -1 with the error raised.
    unsafe {
        call_or(
            slf,
            false,
            |py, m| {
                let key = Borrowed::from_ptr(py, key);
                Ok(c_int::from(m.contains_key(py, &key)?))
            },
            -1,
        )
    }
}

unsafe extern "C" fn insert(
    slf: *mut ffi::PyObject,
    args: *mut *mut ffi::PyObject,
    nargs: ffi::Py_ssize_t,
) -> *mut ffi::PyObject {
    // SAFETY: called by the interpreter through the `METH_FASTCALL`
    // descriptor `install` made: `args` holds `nargs` borrowed references.
    unsafe {
        call(slf, true, |py, m| {
            if nargs != 2 {
                return Err(pyo3::exceptions::PyTypeError::new_err(format!(
                    "insert() takes exactly 2 arguments (key, value) ({nargs} given)"
                )));
            }
            let key = Borrowed::from_ptr(py, *args);
            let value = Borrowed::from_ptr(py, *args.add(1));
            m.insert_key(py, &key, &value)?;
            Ok(py_none())
        })
    }
}

/// One method: its name, docstring (text signature first) and entry point.
struct Method {
    name: &'static CStr,
    doc: &'static CStr,
    meth: ffi::PyMethodDefPointer,
    flags: std::ffi::c_int,
}

/// Puts the three methods on the `Maplet` class.
pub(crate) fn install(cls: &Bound<'_, PyType>) -> PyResult<()> {
    let methods = [
        Method {
            name: c"insert",
            doc: c"insert($self, key, value, /)
--

Merges ``value`` into what ``key``'s fingerprint holds. On any error
the maplet is unchanged.

>>> m = Maplet(100, 0.01); m.insert(\"a\", 2); m.insert(\"a\", 3); m.query(\"a\")
5
",
            meth: ffi::PyMethodDefPointer {
                PyCFunctionFast: insert,
            },
            flags: ffi::METH_FASTCALL,
        },
        Method {
            name: c"query",
            doc: c"query($self, key, /)
--

The value stored for ``key``, or ``None`` if its fingerprint is absent.

>>> m = Maplet(100, 0.01); m.insert(b\"k\", 1); m.query(b\"k\"), m.query(\"other\")
(1, None)
",
            meth: ffi::PyMethodDefPointer { PyCFunction: query },
            flags: ffi::METH_O,
        },
        Method {
            name: c"contains",
            doc: c"contains($self, key, /)
--

Whether ``key``'s fingerprint is present (``key in maplet`` too).

>>> m = Maplet(100, 0.01); m.insert(7, 1); m.contains(7), 8 in m
(True, False)
",
            meth: ffi::PyMethodDefPointer {
                PyCFunction: contains,
            },
            flags: ffi::METH_O,
        },
    ];
    let py = cls.py();
    let t = cls.as_ptr().cast::<ffi::PyTypeObject>();
    // SAFETY: `t` is the `Maplet` heap type, whose `tp_as_sequence` points at
    // its own sequence slots (PyO3 filled `sq_contains` for `__contains__`);
    // the type is not yet in use, and `PyType_Modified` drops what the
    // interpreter cached of it.
    unsafe {
        let seq = (*t).tp_as_sequence;
        if !seq.is_null() && (*seq).sq_contains.is_some() {
            (*seq).sq_contains = Some(sq_contains);
            ffi::PyType_Modified(t);
        }
    }
    for m in methods {
        // The interpreter keeps a pointer to the definition for the life
        // of the descriptor, which lives as long as the class: leak it.
        let def = Box::leak(Box::new(ffi::PyMethodDef {
            ml_name: m.name.as_ptr(),
            ml_meth: m.meth,
            ml_flags: m.flags,
            ml_doc: m.doc.as_ptr(),
        }));
        // SAFETY: `cls` is a type object and `def` a complete definition
        // that outlives it; the call returns a new reference or NULL.
        let descr = unsafe {
            Bound::from_owned_ptr_or_err(
                py,
                ffi::PyDescr_NewMethod(cls.as_ptr().cast::<ffi::PyTypeObject>(), def),
            )?
        };
        cls.setattr(m.name.to_str().expect("ASCII names"), descr)?;
    }
    Ok(())
}
