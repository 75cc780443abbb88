//! Arguments read with errors that name them. PyO3 reports an argument of
//! the wrong type as `must be real number, not str` (the parameter only in
//! an exception note): the public entry points read their scalar
//! arguments through [`named`] instead.

use pyo3::conversion::FromPyObjectOwned;
use pyo3::exceptions::{PyOverflowError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyIterator};
use std::path::PathBuf;

/// `obj` as a `T`. A wrong type raises `TypeError`, a number out of `T`'s
/// range `ValueError`, each starting `argument 'name':`.
pub(crate) fn named<'py, T: FromPyObjectOwned<'py>>(
    obj: &Bound<'py, PyAny>,
    name: &str,
) -> PyResult<T> {
    obj.extract::<T>().map_err(|e| {
        let e: PyErr = e.into();
        let py = obj.py();
        let message = format!("argument '{name}': {}", e.value(py));
        if e.is_instance_of::<PyOverflowError>(py) || e.is_instance_of::<PyValueError>(py) {
            PyValueError::new_err(format!("{message} (got {})", short_repr(obj)))
        } else if e.is_instance_of::<PyTypeError>(py) {
            PyTypeError::new_err(message)
        } else {
            e
        }
    })
}

/// `repr(obj)`, cut to 60 characters.
fn short_repr(obj: &Bound<'_, PyAny>) -> String {
    let r = obj
        .repr()
        .map(|r| r.to_string())
        .unwrap_or_else(|_| "?".into());
    match r.char_indices().nth(60) {
        Some((i, _)) => format!("{}...", &r[..i]),
        None => r,
    }
}

/// One reader a parameter, for `#[pyo3(from_py_with = ...)]`, which takes
/// a function's path.
macro_rules! readers {
    ($($reader:ident -> $t:ty, $name:literal;)*) => {$(
        #[doc = concat!("The `", $name, "` argument, as [`named`] reads it.")]
        pub(crate) fn $reader(obj: &Bound<'_, PyAny>) -> PyResult<$t> {
            named(obj, $name)
        }
    )*};
}

readers! {
    optional_rate -> Option<f64>, "false_positive_rate";
    rate -> f64, "false_positive_rate";
    memory_limit_mb -> Option<f64>, "memory_limit_mb";
    seed -> Option<u64>, "seed";
    fixed_precision -> bool, "fixed_precision";
    shard -> Option<(u32, u32)>, "shard";
    k -> usize, "k";
    expected_items -> Option<usize>, "expected_items";
    canonical -> bool, "canonical";
    threads -> Option<usize>, "threads";
    partitions -> usize, "partitions";
    allow_pickle -> bool, "allow_pickle";
    mmap -> bool, "mmap";
    checksum_only -> bool, "checksum_only";
    count -> u32, "count";
    signed -> bool, "signed";
    path -> PathBuf, "path";
    output -> PathBuf, "output";
    paths -> Vec<PathBuf>, "paths";
    tmp_dir -> Option<PathBuf>, "tmp_dir";
    kmer -> String, "kmer";
}

/// An iterator over the argument `name`, or a `TypeError` naming it.
pub(crate) fn iterate<'py>(
    obj: &Bound<'py, PyAny>,
    name: &str,
) -> PyResult<Bound<'py, PyIterator>> {
    obj.try_iter().map_err(|e| {
        let py = obj.py();
        if e.is_instance_of::<PyTypeError>(py) {
            let ty = obj
                .get_type()
                .name()
                .map_or_else(|_| "?".to_string(), |n| n.to_string());
            PyTypeError::new_err(format!("argument '{name}' must be iterable, not {ty}"))
        } else {
            e
        }
    })
}

/// The `data` argument: a `bytes` object.
pub(crate) fn data<'py>(obj: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyBytes>> {
    named(obj, "data")
}
