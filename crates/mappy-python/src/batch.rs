//! Batches: many keys (and values) converted first, then inserted or
//! looked up in one call to the core, detached from the interpreter
//! wherever the values are packed.

use mappy_core::hash;
use numpy::{PyArray1, PyReadonlyArray1, PyUntypedArrayMethods};
use pyo3::exceptions::PyTypeError;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyList;

use crate::args;
use crate::keys::{hash_key, hash_keys, paired, try_collect, CountReader, Counts};
use crate::maplet::Maplet;
use crate::operators::Spec;
use crate::state::{Inner, Storage};
use crate::values::{at_item, batch_error, classify, negative_count, Num};

impl Maplet {
    pub(crate) fn batch_insert_impl(
        &self,
        py: Python<'_>,
        pairs_or_keys: &Bound<'_, PyAny>,
        values: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        let seed = self.seed;
        let (keys, vals): (Vec<u64>, Vec<Bound<'_, PyAny>>);
        // Counts as a NumPy int64 array for a NumPy integer array of keys:
        // both read in place, in one pass.
        if let (Some(v), Spec::Counter) = (values, self.spec) {
            if let Ok(counts) = v.extract::<PyReadonlyArray1<'_, i64>>() {
                let counts = counts.as_array();
                let pairs = if let Ok(a) = pairs_or_keys.extract::<PyReadonlyArray1<'_, u64>>() {
                    paired(a.as_array(), counts, hash::hash_u64, seed)?
                } else if let Ok(a) = pairs_or_keys.extract::<PyReadonlyArray1<'_, i64>>() {
                    paired(a.as_array(), counts, hash::hash_i64, seed)?
                } else {
                    None
                };
                if let Some(pairs) = pairs {
                    self.check_counts(py, counts.iter().copied())?;
                    return self.insert_counts(py, pairs);
                }
            }
        }
        // Counts for a list of keys: keys hashed and counts read in one pass.
        if let (Some(v), Spec::Counter) = (values, self.spec) {
            if let (Ok(keys), Ok(counts)) = (pairs_or_keys.cast::<PyList>(), v.cast::<PyList>()) {
                if keys.len() != counts.len() {
                    return Err(PyValueError::new_err(format!(
                        "{} keys but {} values",
                        keys.len(),
                        counts.len()
                    )));
                }
                let mut reader = CountReader::new(self.signed);
                let counts = keys
                    .iter()
                    .zip(counts.iter())
                    .enumerate()
                    .map(|(i, (k, x))| {
                        let h = hash_key(&k, seed).map_err(|e| at_item(py, i, e))?;
                        Ok((h, reader.read(&x).map_err(|e| at_item(py, i, e))?))
                    })
                    .collect::<PyResult<_>>()?;
                return self.insert_counts(py, counts);
            }
        }
        let (hashes, numpy_vals) = match values {
            Some(v) => {
                let (h, _) = hash_keys(pairs_or_keys, seed)?;
                (h, Some(v))
            }
            None => {
                let mut hs = Vec::new();
                let mut vs = Vec::new();
                for pair in args::iterate(pairs_or_keys, "pairs_or_keys")? {
                    let pair = pair?;
                    let (k, v): (Bound<'_, PyAny>, Bound<'_, PyAny>) =
                        pair.extract().map_err(|_| {
                            PyTypeError::new_err(
                                "batch_insert takes (key, value) pairs, or keys and values",
                            )
                        })?;
                    hs.push(hash_key(&k, seed)?);
                    vs.push(v);
                }
                keys = hs;
                vals = vs;
                return self.insert_converted(py, keys, ValuesIn::Objects(vals));
            }
        };
        self.insert_hashes_values(py, hashes, numpy_vals.expect("values given"))
    }

    /// Inserts precomputed hashes (see `hash_keys`), with `values` (one per
    /// hash) or, given `None`, a count of 1 each (counters only).
    pub(crate) fn batch_insert_hashes_impl(
        &self,
        py: Python<'_>,
        hashes: &Bound<'_, PyAny>,
        values: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        let hashes = hashes
            .extract::<PyReadonlyArray1<'_, u64>>()
            .map_err(|_| PyTypeError::new_err("hashes must be a NumPy uint64 array"))?;
        let hashes = try_collect(hashes.len(), hashes.as_array().iter().copied())?;
        match values {
            Some(v) => self.insert_hashes_values(py, hashes, v),
            None if self.spec == Spec::Counter => {
                self.insert_counts(py, Counts::Same(hashes, Some(1)))
            }
            None => Err(PyTypeError::new_err(
                "batch_insert_hashes needs values for a maplet that is not a counter",
            )),
        }
    }

    /// Inserts `hashes` with their values `v`, all or nothing.
    fn insert_hashes_values(
        &self,
        py: Python<'_>,
        hashes: Vec<u64>,
        v: &Bound<'_, PyAny>,
    ) -> PyResult<()> {
        let n = hashes.len();
        // Counts as a NumPy int64 array are read in place.
        if self.spec == Spec::Counter {
            if let Ok(a) = v.extract::<PyReadonlyArray1<'_, i64>>() {
                if a.len() != n {
                    return Err(PyValueError::new_err(format!(
                        "{n} keys but {} values",
                        a.len()
                    )));
                }
                let counts: Vec<i64> = a.as_array().to_vec();
                self.check_counts(py, counts.iter().copied())?;
                return self.insert_converted(py, hashes, ValuesIn::Ints(counts));
            }
        }
        if self.spec == Spec::Counter {
            if let Ok(list) = v.cast::<PyList>() {
                if list.len() != n {
                    return Err(PyValueError::new_err(format!(
                        "{n} keys but {} values",
                        list.len()
                    )));
                }
                let mut reader = CountReader::new(self.signed);
                let counts = hashes
                    .into_iter()
                    .zip(list.iter())
                    .enumerate()
                    .map(|(i, (h, x))| Ok((h, reader.read(&x).map_err(|e| at_item(py, i, e))?)))
                    .collect::<PyResult<_>>()?;
                return self.insert_counts(py, counts);
            }
        }
        let vs: Vec<Bound<'_, PyAny>> = v.try_iter()?.collect::<PyResult<_>>()?;
        if vs.len() != n {
            return Err(PyValueError::new_err(format!(
                "{n} keys but {} values",
                vs.len()
            )));
        }
        self.insert_converted(py, hashes, ValuesIn::Objects(vs))
    }

    pub(crate) fn batch_query_impl(
        &self,
        py: Python<'_>,
        keys: &Bound<'_, PyAny>,
    ) -> PyResult<Py<PyAny>> {
        let (hashes, is_array) = hash_keys(keys, self.seed)?;
        if self.spec == Spec::Counter {
            let state = self.state.lock(py)?;
            let answers = py.detach(|| match &*state {
                Inner::Counter(m) => m.query_many_hashes(&hashes),
                _ => unreachable!("a counter maplet keeps counter storage"),
            });
            drop(state);
            if is_array {
                let counts: Vec<i64> = answers.into_iter().map(|a| a.unwrap_or(0)).collect();
                return Ok(PyArray1::from_vec(py, counts).into_any().unbind());
            }
            return Ok(PyList::new(py, answers)?.into_any().unbind());
        }
        let state = self.state.lock(py)?;
        let out = hashes
            .iter()
            .map(|&h| state.query(py, h))
            .collect::<PyResult<Vec<_>>>()?;
        Ok(PyList::new(py, out)?.into_any().unbind())
    }

    pub(crate) fn batch_contains_impl(
        &self,
        py: Python<'_>,
        keys: &Bound<'_, PyAny>,
    ) -> PyResult<Py<PyAny>> {
        let (hashes, is_array) = hash_keys(keys, self.seed)?;
        let state = self.state.lock(py)?;
        let answers = py.detach(|| state.contains_many_hashes(&hashes));
        drop(state);
        if is_array {
            Ok(PyArray1::from_vec(py, answers).into_any().unbind())
        } else {
            Ok(PyList::new(py, answers)?.into_any().unbind())
        }
    }
}

/// Values converted for insertion.
pub(crate) enum ValuesIn<'py> {
    Ints(Vec<i64>),
    Objects(Vec<Bound<'py, PyAny>>),
}

impl Maplet {
    /// Refuses negative counts for an unsigned counter.
    pub(crate) fn check_counts(
        &self,
        py: Python<'_>,
        counts: impl Iterator<Item = i64>,
    ) -> PyResult<()> {
        if self.signed {
            return Ok(());
        }
        match counts.enumerate().find(|&(_, c)| c < 0) {
            None => Ok(()),
            Some((i, c)) => Err(at_item(py, i, negative_count(py, c))),
        }
    }

    /// Inserts hashes with packed integers into a counter or integer
    /// max/min maplet, detached from the interpreter.
    fn insert_counts(&self, py: Python<'_>, counts: Counts) -> PyResult<()> {
        let mut state = self.state.lock(py)?;
        state.insert_counts(py, counts)
    }

    fn insert_converted(
        &self,
        py: Python<'_>,
        hashes: Vec<u64>,
        values: ValuesIn<'_>,
    ) -> PyResult<()> {
        // Packed operators: convert everything, then work without the GIL.
        // Counts already converted are moved, not copied.
        let (values, ints): (ValuesIn<'_>, Option<Vec<i64>>) = match values {
            ValuesIn::Ints(v) => (ValuesIn::Objects(Vec::new()), Some(v)),
            other => (other, None),
        };
        let ints: Option<Vec<i64>> = match (&values, self.spec) {
            _ if ints.is_some() => ints,
            (ValuesIn::Objects(vs), Spec::Counter) => {
                let mut reader = CountReader::new(self.signed);
                Some(
                    vs.iter()
                        .enumerate()
                        .map(|(i, v)| reader.read(v).map_err(|e| at_item(py, i, e)))
                        .collect::<PyResult<_>>()?,
                )
            }
            (ValuesIn::Objects(vs), Spec::Max | Spec::Min)
                if matches!(&*self.state.lock(py)?, Inner::MaxI64(_) | Inner::MinI64(_)) =>
            {
                vs.iter()
                    .map(|v| match classify(v) {
                        Num::Int(i) => Some(i),
                        _ => None,
                    })
                    .collect()
            }
            _ => None,
        };
        if let Some(ints) = ints {
            return self.insert_counts(py, hashes.into_iter().zip(ints).collect());
        }
        let floats: Option<Vec<f64>> = match (&values, &*self.state.lock(py)?) {
            (ValuesIn::Objects(vs), Inner::MaxF64(_) | Inner::MinF64(_)) => vs
                .iter()
                .map(|v| match classify(v) {
                    Num::Float(f) => Some(f),
                    _ => None,
                })
                .collect(),
            _ => None,
        };
        if let Some(floats) = floats {
            let pairs: Vec<(u64, f64)> = hashes.into_iter().zip(floats).collect();
            let mut state = self.state.lock(py)?;
            let r = py.detach(|| match &mut *state {
                Inner::MaxF64(m) => m.insert_many_hashes(pairs),
                Inner::MinF64(m) => m.insert_many_hashes(pairs),
                _ => unreachable!("checked above"),
            });
            drop(state);
            return r.map_err(|(i, e)| batch_error(py, i, e));
        }
        // Everything else while attached (merges may call Python), all or
        // nothing: first the storage every value needs, then one core batch.
        // If anything fails, the storage the maplet had comes back.
        let ValuesIn::Objects(vs) = values else {
            unreachable!("ints are handled above")
        };
        let mut state = self.state.lock(py)?;
        let empty = state.is_empty();
        let mut original: Option<Box<Inner>> = None;
        let mut r = Ok(());
        for (i, v) in vs.iter().enumerate() {
            match state.adapt(py, v, empty && i == 0) {
                Ok(replaced) => {
                    if original.is_none() {
                        original = replaced;
                    }
                }
                Err(e) => {
                    r = Err(e);
                    break;
                }
            }
        }
        if r.is_ok() {
            r = state.insert_all(py, hashes, &vs, self.signed);
        }
        if r.is_err() {
            if let Some(original) = original {
                *state = *original;
            }
        }
        r
    }
}
