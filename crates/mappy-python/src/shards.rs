//! Shards: hashing keys for routing, the shard of each hash, stitching
//! shards into one maplet, and a sharded directory's manifest. The
//! `ShardedMaplet` class itself is Python (`mappy_python/sharded.py`).

use std::path::PathBuf;

use mappy_core as core;
use mappy_core::shard::{self, Manifest, Shard};
use numpy::{PyArray1, PyReadonlyArray1, PyUntypedArrayMethods};
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyBytes;

use crate::args;
use crate::errors::{guarded, with_filename, OrRaise};
use crate::keys::{hash_keys as hashes_of, try_collect, Counts};
use crate::maplet::{EncodedRuns, Maplet};
use crate::operators::Spec;
use crate::state::Storage;

/// hash_keys(keys, seed=None)
///
/// The 64-bit hashes of ``keys`` (a sequence of ``str``, bytes or ``int``,
/// or a NumPy integer array) under ``seed`` (default: a maplet's default),
/// as a NumPy uint64 array: what ``Maplet.batch_insert_hashes`` takes.
///
/// >>> hash_keys(["a", "b"]).dtype
/// dtype('uint64')
#[pyfunction]
#[pyo3(signature = (keys, seed=None))]
pub(crate) fn hash_keys<'py>(
    py: Python<'py>,
    keys: &Bound<'py, PyAny>,
    #[pyo3(from_py_with = args::seed)] seed: Option<u64>,
) -> PyResult<Bound<'py, PyArray1<u64>>> {
    guarded(py, || {
        let (h, _) = hashes_of(keys, seed.unwrap_or(core::hash::DEFAULT_SEED))?;
        Ok(PyArray1::from_vec(py, h))
    })
}

/// shard_indices(hashes, count)
///
/// The shard of each hash among ``count`` shards (a power of two), as a
/// NumPy uint32 array.
///
/// >>> shard_indices(hash_keys(["a", "b", "c"]), 1).tolist()
/// [0, 0, 0]
#[pyfunction]
pub(crate) fn shard_indices<'py>(
    py: Python<'py>,
    hashes: &Bound<'py, PyAny>,
    #[pyo3(from_py_with = args::count)] count: u32,
) -> PyResult<Bound<'py, PyArray1<u32>>> {
    guarded(py, || {
        Shard::new(0, count).or_raise(py)?;
        let hashes = hashes
            .extract::<PyReadonlyArray1<'_, u64>>()
            .map_err(|_| PyTypeError::new_err("hashes must be a NumPy uint64 array"))?;
        let out = try_collect(
            hashes.len(),
            hashes.as_array().iter().map(|&h| Shard::of(h, count)),
        )?;
        Ok(PyArray1::from_vec(py, out))
    })
}

/// concat_shards(shards)
///
/// The one ordinary ``Maplet`` that ``shards`` (every shard of a sharded
/// maplet, in order) hold together: it answers every key exactly as its
/// shard does.
///
/// >>> parts = [Maplet(1000, 0.01, shard=(i, 2)) for i in range(2)]
/// >>> concat_shards(parts).shard is None
/// True
#[pyfunction]
pub(crate) fn concat_shards(py: Python<'_>, shards: &Bound<'_, PyAny>) -> PyResult<Maplet> {
    guarded(py, || {
        let mut parts = Vec::new();
        let mut first: Option<Bound<'_, Maplet>> = None;
        for s in shards.try_iter()? {
            let s = s?;
            let m = s
                .cast::<Maplet>()
                .map_err(|_| PyTypeError::new_err("concat_shards() takes maplets"))?;
            if let Some(f) = &first {
                if f.get().spec != m.get().spec {
                    return Err(PyValueError::new_err(
                        "concat_shards(): the shards have different operators",
                    ));
                }
            } else {
                first = Some(m.clone());
            }
            // Copies, so that no two maplets are ever locked at once.
            parts.push(m.get().cloned_state(py)?);
        }
        let first = first
            .ok_or_else(|| PyValueError::new_err("concat_shards() needs at least one shard"))?;
        let first = first.get();
        let refs: Vec<_> = parts.iter().collect();
        let whole = match core::AnyMaplet::concat(&refs) {
            Err(core::MapletError::Incompatible(_))
                if matches!(first.spec, Spec::Max | Spec::Min) =>
            {
                // Numeric and object storage among the shards: all objects.
                for p in parts.iter_mut() {
                    p.convert_to_objects(py)?;
                }
                let refs: Vec<_> = parts.iter().collect();
                core::AnyMaplet::concat(&refs)
            }
            r => r,
        }
        .or_raise(py)?;
        Ok(Maplet::from_inner(
            whole,
            first.func.as_ref().map(|f| f.clone_ref(py)),
            first.signed,
        ))
    })
}

/// _write_manifest(dir, count)
///
/// Writes the manifest of the ``count`` shard files already saved in
/// ``dir`` (each file's own checksum, read from its end).
#[pyfunction]
pub(crate) fn _write_manifest(py: Python<'_>, dir: PathBuf, count: u32) -> PyResult<()> {
    guarded(py, || {
        Shard::new(0, count).or_raise(py)?;
        let checksums = (0..count as usize)
            .map(|i| {
                let path = Manifest::shard_path(&dir, i);
                shard::file_checksum(&path)
                    .or_raise(py)
                    .map_err(|e| with_filename(py, e, &path))
            })
            .collect::<PyResult<Vec<_>>>()?;
        Manifest { checksums }
            .write(&dir)
            .or_raise(py)
            .map_err(|e| with_filename(py, e, &dir.join(shard::MANIFEST)))
    })
}

/// _read_manifest(dir)
///
/// The shard files of the sharded maplet saved in ``dir``: a list of
/// ``(path, checksum)`` in shard order.
#[pyfunction]
pub(crate) fn _read_manifest(py: Python<'_>, dir: PathBuf) -> PyResult<Vec<(PathBuf, u64)>> {
    guarded(py, || {
        let m = Manifest::read(&dir)
            .or_raise(py)
            .map_err(|e| with_filename(py, e, &dir.join(shard::MANIFEST)))?;
        Ok(m.checksums
            .into_iter()
            .enumerate()
            .map(|(i, c)| (Manifest::shard_path(&dir, i), c))
            .collect())
    })
}

/// _file_checksum(path)
///
/// The checksum a saved maplet's file ends with.
#[pyfunction]
pub(crate) fn _file_checksum(py: Python<'_>, path: PathBuf) -> PyResult<u64> {
    guarded(py, || {
        shard::file_checksum(&path)
            .or_raise(py)
            .map_err(|e| with_filename(py, e, &path))
    })
}

/// _shard_file(index)
///
/// The file name of shard ``index`` in a sharded maplet's directory.
#[pyfunction]
pub(crate) fn _shard_file(index: usize) -> String {
    Manifest::file_name(index)
}

/// _checksum_of(data)
///
/// The checksum ``data`` (a saved maplet's bytes, or at least their last
/// ``_CHECKSUM_LEN``) end with, or ``None`` if they are shorter.
#[pyfunction]
pub(crate) fn _checksum_of(data: &[u8]) -> Option<u64> {
    shard::checksum_of(data)
}

/// _manifest_text(checksums)
///
/// The manifest of a sharded maplet whose shard files end with
/// ``checksums`` (for a directory written through fsspec).
#[pyfunction]
pub(crate) fn _manifest_text(py: Python<'_>, checksums: Vec<u64>) -> PyResult<String> {
    guarded(py, || {
        let count = u32::try_from(checksums.len()).unwrap_or(u32::MAX);
        Shard::new(0, count).or_raise(py)?;
        Ok(Manifest { checksums }.to_text())
    })
}

/// _parse_manifest(text)
///
/// The shard files' checksums a manifest's text names, in shard order.
#[pyfunction]
pub(crate) fn _parse_manifest(py: Python<'_>, text: &str) -> PyResult<Vec<u64>> {
    guarded(py, || Ok(Manifest::parse(text).or_raise(py)?.checksums))
}

impl Maplet {
    /// `(runs, order, bounds)`: `hashes` coded for the shards of a maplet
    /// built like this one (see the core's `transfer` module).
    pub(crate) fn encode_runs_impl<'py>(
        &self,
        py: Python<'py>,
        hashes: &Bound<'py, PyAny>,
    ) -> PyResult<EncodedRuns<'py>> {
        let hashes = hashes
            .extract::<PyReadonlyArray1<'_, u64>>()
            .map_err(|_| PyTypeError::new_err("hashes must be a NumPy uint64 array"))?;
        let state = self.state.lock(py)?;
        let coded = match hashes.as_slice() {
            Ok(h) => py.detach(|| core::any_maplet_each!(&*state, m => m.encode_runs(h))),
            Err(_) => {
                let h = try_collect(hashes.len(), hashes.as_array().iter().copied())?;
                py.detach(|| core::any_maplet_each!(&*state, m => m.encode_runs(&h)))
            }
        }
        .or_raise(py)?;
        drop(state);
        let runs = coded
            .runs
            .into_iter()
            .map(|(i, r)| (i, PyBytes::new(py, &r)))
            .collect();
        Ok((runs, PyArray1::from_vec(py, coded.order), coded.bounds))
    }

    /// Inserts the keys of `runs` (bytes from `encode_runs` for this
    /// maplet's shard) with `values`, all or nothing.
    pub(crate) fn batch_insert_runs_impl(
        &self,
        py: Python<'_>,
        runs: &Bound<'_, PyAny>,
        values: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        let held: Vec<Bound<'_, PyBytes>> = runs
            .try_iter()
            .map_err(|_| PyTypeError::new_err("runs must be an iterable of bytes"))?
            .map(|r| {
                r?.cast_into::<PyBytes>()
                    .map_err(|_| PyTypeError::new_err("runs must be an iterable of bytes"))
            })
            .collect::<PyResult<_>>()?;
        let refs: Vec<&[u8]> = held.iter().map(|b| b.as_bytes()).collect();
        // Values are read before the lock is taken: reading them may run
        // Python code.
        let values = match values {
            None if self.spec != Spec::Counter => {
                return Err(PyTypeError::new_err(
                    "batch_insert_runs needs values for a maplet that is not a counter",
                ))
            }
            None => RunValues::Counts,
            Some(v) if self.spec == Spec::Counter => match v.extract::<PyReadonlyArray1<'_, i64>>()
            {
                Ok(a) => RunValues::Ints(a.as_array().to_vec()),
                Err(_) => RunValues::Objects(sequence(v)?),
            },
            Some(v) => RunValues::Objects(sequence(v)?),
        };
        let mut state = self.state.lock(py)?;
        // Decoded detached from the interpreter: a shard's runs hold millions
        // of keys.
        let mut keys = py
            .detach(|| core::any_maplet_each!(&*state, m => m.decode_runs(&refs)))
            .or_raise(py)?;
        let precision = keys.precision;
        let n = keys.counts.iter().try_fold(0usize, |n, &c| {
            usize::try_from(c).ok().and_then(|c| n.checked_add(c))
        });
        let expanded = |n: usize| -> PyResult<Vec<u64>> {
            try_collect(
                n,
                keys.hashes
                    .iter()
                    .zip(&keys.counts)
                    .flat_map(|(&h, &c)| std::iter::repeat_n(h, c as usize)),
            )
        };
        let mismatch = |got: usize| {
            PyValueError::new_err(format!(
                "the runs hold {} keys but {got} values were given",
                n.map_or_else(|| "more than 2^64".to_string(), |n| n.to_string())
            ))
        };
        // A table that may grow is copied first: an insert that grew it
        // past the bits the runs carry is undone with the copy.
        let before = if core::any_maplet_each!(&*state, m => m.may_grow_with(&keys)) {
            Some(state.try_clone().or_raise(py)?)
        } else {
            None
        };
        let r = match values {
            RunValues::Counts => {
                // Keys that each occurred once (the usual case) keep their
                // hashes where they are: no copy beside them.
                let counts = if keys.counts.iter().all(|&c| c == 1) {
                    let hashes = std::mem::take(&mut keys.hashes);
                    keys.counts = Vec::new();
                    Counts::Same(hashes, Some(1))
                } else {
                    let counts = std::mem::take(&mut keys.counts);
                    std::mem::take(&mut keys.hashes)
                        .into_iter()
                        .zip(counts)
                        .map(|(h, c)| (h, i64::try_from(c).unwrap_or(i64::MAX)))
                        .collect()
                };
                state.insert_counts(py, counts)
            }
            RunValues::Ints(ints) => {
                if Some(ints.len()) != n {
                    return Err(mismatch(ints.len()));
                }
                self.check_counts(py, ints.iter().copied())?;
                let counts: Counts = expanded(ints.len())?.into_iter().zip(ints).collect();
                state.insert_counts(py, counts)
            }
            RunValues::Objects(objects) => {
                if Some(objects.len()) != n {
                    return Err(mismatch(objects.len()));
                }
                let hashes = expanded(objects.len())?;
                match objects.first() {
                    None => Ok(()),
                    Some(first) => {
                        let empty = state.is_empty();
                        let original = state.adapt(py, first, empty)?;
                        let r = state.insert_all(py, hashes, &objects, self.signed);
                        if let (Err(_), Some(original)) = (&r, original) {
                            *state = *original;
                        }
                        r
                    }
                }
            }
        };
        r?;
        if !core::any_maplet_each!(&*state, m => m.keeps_precision(precision)) {
            *state = before.expect("a maplet that grew was copied first");
            return Err(core::MapletError::CapacityExhausted(format!(
                "the runs' keys carry {precision} bits, and this shard grew past them: \
                 build every shard with more expected_items"
            )))
            .or_raise(py);
        }
        Ok(())
    }
}

/// The values `batch_insert_runs` was given.
enum RunValues<'py> {
    /// None: each key counted as often as it occurred.
    Counts,
    /// A NumPy int64 array for a counter.
    Ints(Vec<i64>),
    /// Anything else, value by value.
    Objects(Vec<Bound<'py, PyAny>>),
}

fn sequence<'py>(v: &Bound<'py, PyAny>) -> PyResult<Vec<Bound<'py, PyAny>>> {
    v.try_iter()
        .map_err(|_| PyTypeError::new_err("values must be a sequence"))?
        .collect()
}
