//! The exception classes, the one mapping from the core's errors to them,
//! and the one guard every entry point runs under.

use std::panic::{catch_unwind, AssertUnwindSafe};

use mappy_core::MapletError as E;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyType};

/// The package's exception classes, in the order `CLASSES` defines them.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Class {
    Maplet,
    InvalidParameter,
    InvalidValue,
    Overflow,
    MemoryLimit,
    Incompatible,
    Corrupt,
    ReadOnly,
    UnsafeData,
}

/// Python names of [`Class`], by its discriminant.
pub(crate) const NAMES: [&str; 9] = [
    "MapletError",
    "InvalidParameterError",
    "InvalidValueError",
    "MapletOverflowError",
    "MemoryLimitError",
    "IncompatibleMapletsError",
    "CorruptDataError",
    "ReadOnlyError",
    "UnsafeDataError",
];

const CLASSES: &std::ffi::CStr = c"
class MapletError(Exception):
    \"\"\"Base class of every error a maplet raises.\"\"\"

class InvalidParameterError(MapletError, ValueError):
    \"\"\"A constructor or method argument is out of range.\"\"\"

class InvalidValueError(MapletError, ValueError):
    \"\"\"A value the maplet's operator cannot store or merge.\"\"\"

class MapletOverflowError(MapletError, OverflowError):
    \"\"\"A count that would pass the range of a signed 64-bit integer, or a
    maplet that cannot grow any further.\"\"\"

class MemoryLimitError(MapletError, MemoryError):
    \"\"\"The operation would take the maplet past its memory limit, or needs
    more memory than the system can give.\"\"\"

class IncompatibleMapletsError(MapletError, ValueError):
    \"\"\"Maplets built with different operators, parameters or seeds.\"\"\"

class CorruptDataError(MapletError, ValueError):
    \"\"\"Saved maplet data that is truncated, damaged, of another version, or
    not a maplet at all.\"\"\"

class ReadOnlyError(MapletError):
    \"\"\"A write to a memory-mapped (read-only) maplet.\"\"\"

class UnsafeDataError(MapletError, ValueError):
    \"\"\"Saved data holding pickled values, refused because unpickling can run
    code: pass allow_pickle=True only for data you trust.\"\"\"

_classes = (MapletError, InvalidParameterError, InvalidValueError, MapletOverflowError,
            MemoryLimitError, IncompatibleMapletsError, CorruptDataError, ReadOnlyError,
            UnsafeDataError)
for _c in _classes:
    _c.__module__ = 'mappy_python'
";

static TYPES: PyOnceLock<Vec<Py<PyType>>> = PyOnceLock::new();

/// Defines the classes and adds them to `m`.
pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    let ns = PyDict::new(py);
    py.run(CLASSES, Some(&ns), None)?;
    let mut types = Vec::with_capacity(NAMES.len());
    for name in NAMES {
        let t = ns
            .get_item(name)?
            .ok_or_else(|| pyo3::exceptions::PyRuntimeError::new_err(name))?
            .cast_into::<PyType>()?;
        m.add(name, &t)?;
        types.push(t.unbind());
    }
    let _ = TYPES.set(py, types);
    Ok(())
}

/// An exception of `class` with `msg`.
pub(crate) fn raise(py: Python<'_>, class: Class, msg: impl Into<String>) -> PyErr {
    match TYPES.get(py) {
        Some(types) => PyErr::from_type(types[class as usize].bind(py).clone(), msg.into()),
        // Only before the module is initialised, which nothing can call.
        None => pyo3::exceptions::PyRuntimeError::new_err(msg.into()),
    }
}

/// The one place where core errors become Python exceptions.
pub(crate) fn map_err(py: Python<'_>, e: E) -> PyErr {
    let msg = e.to_string();
    let class = match e {
        E::InvalidParameter(_) => Class::InvalidParameter,
        E::InvalidValue(_) => Class::InvalidValue,
        E::Overflow(_) => Class::Overflow,
        E::MemoryLimit { .. } | E::OutOfMemory { .. } => Class::MemoryLimit,
        E::CapacityExhausted(_) => Class::Overflow,
        E::Incompatible(_) => Class::Incompatible,
        E::Corrupt(_) => Class::Corrupt,
        E::ReadOnly => Class::ReadOnly,
        // `OSError(errno, strerror)` picks the subclass (FileNotFoundError,
        // IsADirectoryError, ...) and fills `errno` and `strerror`.
        E::Io(io) => {
            return match io.raw_os_error() {
                Some(code) => {
                    let text = std::io::Error::from_raw_os_error(code).to_string();
                    let text = text.split(" (os error").next().unwrap_or(&text).to_string();
                    pyo3::exceptions::PyOSError::new_err((code, text))
                }
                None => PyErr::from(io),
            }
        }
        // A Python merge function's own exception, handed back unchanged.
        E::Operator(inner) => match inner.downcast::<PyErr>() {
            Ok(pyerr) => return *pyerr,
            Err(other) => {
                return raise(py, Class::Maplet, format!("merge operator failed: {other}"))
            }
        },
        _ => Class::Maplet,
    };
    raise(py, class, msg)
}

/// `err` with `filename` set, if it is an `OSError` that has none.
pub(crate) fn with_filename(py: Python<'_>, err: PyErr, path: &std::path::Path) -> PyErr {
    if err.is_instance_of::<pyo3::exceptions::PyOSError>(py) {
        let v = err.value(py);
        let has_errno = v.getattr("errno").is_ok_and(|e| !e.is_none());
        if has_errno && v.getattr("filename").is_ok_and(|f| f.is_none()) {
            let _ = v.setattr("filename", path.to_string_lossy());
        }
    }
    err
}

/// A core result as a Python one.
pub(crate) trait OrRaise<T> {
    /// The value, or the error mapped by [`map_err`].
    fn or_raise(self, py: Python<'_>) -> PyResult<T>;
}

impl<T> OrRaise<T> for mappy_core::Result<T> {
    fn or_raise(self, py: Python<'_>) -> PyResult<T> {
        self.map_err(|e| map_err(py, e))
    }
}

/// A Python error carried through a core callback (a merge function or a
/// value decoder), handed back unchanged by [`map_err`].
pub(crate) fn carried(e: PyErr) -> E {
    E::Operator(Box::new(e))
}

/// Runs `f`, turning a Rust panic into a `MapletError` rather than letting
/// PyO3 raise its `PanicException` (a `BaseException`, which `except
/// Exception` would not catch). Every entry point runs under it.
#[inline]
pub(crate) fn guarded<T>(py: Python<'_>, f: impl FnOnce() -> PyResult<T>) -> PyResult<T> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(r) => r,
        Err(panic) => Err(panicked(py, panic)),
    }
}

#[cold]
#[inline(never)]
fn panicked(py: Python<'_>, panic: Box<dyn std::any::Any + Send>) -> PyErr {
    let what = panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_default();
    raise(py, Class::Maplet, format!("internal error: {what}"))
}

/// _panic_for_tests()
///
/// Panics inside the guard every entry point runs under: the tests' way of
/// showing that a Rust panic reaches Python as a ``MapletError``.
#[pyfunction]
pub(crate) fn _panic_for_tests(py: Python<'_>) -> PyResult<()> {
    guarded(py, || panic!("a panic raised on purpose"))
}
