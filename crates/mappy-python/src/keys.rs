//! Keys: hashing one key, and the hashes (and counts) of a batch, with
//! NumPy integer arrays read in place.

use mappy_core as core;
use mappy_core::hash;
use mappy_core::Operator;
use numpy::PyReadonlyArray1;
use pyo3::exceptions::{PyMemoryError, PyTypeError};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{
    IntoPyDict, PyByteArray, PyBytes, PyFloat, PyInt, PyList, PyMemoryView, PyString, PyType,
};

use crate::args;
use crate::values::as_count;

/// The hash of a key: `str`, bytes-like, or `int` (of any size), each in its
/// own domain, so that `"1"`, `b"1"` and `1` are different keys.
pub(crate) fn hash_key(key: &Bound<'_, PyAny>, seed: u64) -> PyResult<u64> {
    if let Ok(s) = key.cast::<PyString>() {
        return Ok(hash::hash_str(s.to_str()?, seed));
    }
    if let Ok(b) = key.cast::<PyBytes>() {
        return Ok(hash::hash_byte_key(b.as_bytes(), seed));
    }
    if key.is_instance_of::<PyInt>() {
        if let Ok(v) = key.extract::<i64>() {
            return Ok(hash::hash_i64(v, seed));
        }
        // A big int: its minimal little-endian two's-complement bytes.
        let bits: usize = key.call_method0("bit_length")?.extract()?;
        let bytes = key.call_method(
            "to_bytes",
            ((bits + 8) / 8, "little"),
            Some(&[("signed", true)].into_py_dict(key.py())?),
        )?;
        return Ok(hash::hash_int_bytes(
            bytes.cast::<PyBytes>()?.as_bytes(),
            seed,
        ));
    }
    if key.is_instance_of::<PyByteArray>() || key.is_instance_of::<PyMemoryView>() {
        let b = key.py().get_type::<PyBytes>().call1((key,))?;
        return Ok(hash::hash_byte_key(b.cast::<PyBytes>()?.as_bytes(), seed));
    }
    // NumPy's booleans are no integer keys, though NumPy 2.0 still gives
    // them a (deprecated) `__index__`, as `bool` is none for NumPy arrays.
    static NUMPY_BOOL: PyOnceLock<Py<PyType>> = PyOnceLock::new();
    let numpy_bool = NUMPY_BOOL
        .import(key.py(), "numpy", "bool_")
        .is_ok_and(|t| key.is_instance(t).unwrap_or(false));
    if !numpy_bool && key.hasattr("__index__")? && !key.is_instance_of::<PyFloat>() {
        // NumPy integer scalars and other integer-like objects, through
        // `operator.index`, which insists on an int (so no recursion).
        let i = key.py().import("operator")?.call_method1("index", (key,))?;
        if i.is_instance_of::<PyInt>() {
            return hash_key(&i, seed);
        }
    }
    Err(PyTypeError::new_err(format!(
        "maplet keys must be str, bytes or int, not {}",
        key.get_type().name()?
    )))
}

/// The hashes and counts of a batch, gathered in one pass. While every
/// count is the same (counting occurrences: all ones), only the hashes are
/// kept and the batch goes in as that one count under every hash, which
/// halves the memory the batch takes and reads; the first different count
/// turns what was gathered into (hash, count) pairs.
pub(crate) enum Counts {
    Same(Vec<u64>, Option<i64>),
    Pairs(Vec<(u64, i64)>),
}

impl FromIterator<(u64, i64)> for Counts {
    fn from_iter<I: IntoIterator<Item = (u64, i64)>>(iter: I) -> Counts {
        let iter = iter.into_iter();
        // The upper bound: a conversion that may fail has no lower one.
        let (lo, hi) = iter.size_hint();
        let mut out = Counts::Same(Vec::with_capacity(hi.unwrap_or(lo)), None);
        for (h, c) in iter {
            out.push(h, c);
        }
        out
    }
}

impl Counts {
    #[inline]
    fn push(&mut self, h: u64, c: i64) {
        match self {
            Counts::Same(hashes, same) => match *same {
                Some(x) if x != c => self.switch_to_pairs(h, c),
                _ => {
                    *same = Some(c);
                    hashes.push(h);
                }
            },
            Counts::Pairs(pairs) => pairs.push((h, c)),
        }
    }

    /// The first count unlike the others: pairs from here on.
    #[cold]
    fn switch_to_pairs(&mut self, h: u64, c: i64) {
        if let Counts::Same(hashes, Some(x)) = self {
            let mut pairs = Vec::with_capacity(hashes.capacity());
            pairs.extend(hashes.iter().map(|&h| (h, *x)));
            pairs.push((h, c));
            *self = Counts::Pairs(pairs);
        }
    }

    /// Inserts the batch, all or nothing.
    pub(crate) fn insert_into<O: Operator<Value = i64>>(
        self,
        m: &mut core::Maplet<O>,
    ) -> std::result::Result<(), (usize, core::MapletError)> {
        match self {
            Counts::Same(hashes, Some(c)) => m.insert_hashes_with_value(&hashes, c),
            Counts::Same(_, None) => Ok(()),
            Counts::Pairs(pairs) => m.insert_many_hashes(pairs),
        }
    }
}

/// Reads Python counts, converting each run of one object once (counting
/// passes the same small-int object for every key). The last object is
/// held, so that no other object can take its address meanwhile.
pub(crate) struct CountReader<'py> {
    last: Option<(Bound<'py, PyAny>, i64)>,
    /// Whether negative counts are allowed (a signed counter).
    signed: bool,
}

impl<'py> CountReader<'py> {
    pub(crate) fn new(signed: bool) -> Self {
        CountReader { last: None, signed }
    }

    #[inline]
    pub(crate) fn read(&mut self, x: &Bound<'py, PyAny>) -> PyResult<i64> {
        if let Some((o, v)) = &self.last {
            if o.is(x) {
                return Ok(*v);
            }
        }
        let v = as_count(x, self.signed)?;
        self.last = Some((x.clone(), v));
        Ok(v)
    }
}

/// The counts of integer keys and counts read in place, if the two arrays
/// have the same length.
///
/// # Errors
/// `MemoryError` when the batch's memory cannot be had.
pub(crate) fn paired<T: Copy>(
    keys: numpy::ndarray::ArrayView1<'_, T>,
    counts: numpy::ndarray::ArrayView1<'_, i64>,
    hash: fn(T, u64) -> u64,
    seed: u64,
) -> PyResult<Option<Counts>> {
    if keys.len() != counts.len() {
        return Ok(None);
    }
    let n = keys.len();
    let hashes = keys.iter().map(|&k| hash(k, seed));
    // The memory first, before the counts are read.
    let mut same = try_collect(n, std::iter::empty())?;
    let first = counts.first().copied();
    Ok(Some(if counts.iter().all(|&c| Some(c) == first) {
        same.extend(hashes);
        Counts::Same(same, first)
    } else {
        drop(same);
        Counts::Pairs(try_collect(n, hashes.zip(counts.iter().copied()))?)
    }))
}

/// The `n` items of `items` in a vector whose memory is asked for first:
/// `MemoryError`, not an abort, when an array (perhaps a memory-mapped file
/// larger than memory) needs more than the system has.
pub(crate) fn try_collect<T>(n: usize, items: impl Iterator<Item = T>) -> PyResult<Vec<T>> {
    let mut v = Vec::new();
    v.try_reserve_exact(n).map_err(|_| {
        PyMemoryError::new_err(format!(
            "cannot allocate {} bytes for a batch of {n} keys",
            n.saturating_mul(std::mem::size_of::<T>())
        ))
    })?;
    v.extend(items);
    Ok(v)
}

/// Hashes of many keys: a NumPy integer array is read in place.
pub(crate) fn hash_keys(keys: &Bound<'_, PyAny>, seed: u64) -> PyResult<(Vec<u64>, bool)> {
    if let Ok(a) = keys.extract::<PyReadonlyArray1<'_, u64>>() {
        let n = a.len()?;
        let out = match a.as_slice() {
            Ok(s) => try_collect(n, s.iter().map(|&v| hash::hash_u64(v, seed)))?,
            Err(_) => try_collect(n, a.as_array().iter().map(|&v| hash::hash_u64(v, seed)))?,
        };
        return Ok((out, true));
    }
    if let Ok(a) = keys.extract::<PyReadonlyArray1<'_, i64>>() {
        let n = a.len()?;
        let out = match a.as_slice() {
            Ok(s) => try_collect(n, s.iter().map(|&v| hash::hash_i64(v, seed)))?,
            Err(_) => try_collect(n, a.as_array().iter().map(|&v| hash::hash_i64(v, seed)))?,
        };
        return Ok((out, true));
    }
    if let Ok(list) = keys.cast::<PyList>() {
        let out = list
            .iter()
            .map(|k| hash_key(&k, seed))
            .collect::<PyResult<_>>()?;
        return Ok((out, false));
    }
    let is_array = keys.hasattr("__array_interface__")?;
    // A length is only a hint: an object may claim any.
    let mut out = Vec::with_capacity(keys.len().unwrap_or(0).min(1 << 16));
    for k in args::iterate(keys, "keys")? {
        out.push(hash_key(&k?, seed)?);
    }
    Ok((out, is_array))
}
