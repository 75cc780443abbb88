//! The `Maplet` class: construction, single keys, Python protocols,
//! merging, persistence, pickling and garbage collection. Every entry
//! point runs under [`guarded`]; batches are in [`crate::batch`].

use std::path::PathBuf;
use std::sync::Arc;

use mappy_core as core;
use mappy_core::hash;
use numpy::PyArray1;
use pyo3::exceptions::{PyKeyError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyTuple, PyType};
use pyo3::{PyTraverseError, PyVisit};

use crate::args;
use crate::errors::{guarded, map_err, raise, with_filename, Class, OrRaise};
use crate::frozen;
use crate::keys::hash_key;
use crate::lock::StateLock;
use crate::operators::{
    spec_of, CounterOperator, CustomOperator, MaxOperator, MinOperator, SetOperator, Spec,
    VectorOperator,
};
use crate::state::{Inner, Storage};
use crate::stats::Stats;
use crate::values::{
    counter_value_error, decode_value, encode_value, negative_count, ObjKind, PyOp,
};

/// The `other` argument of `merge`: a maplet, or a `TypeError` naming it.
fn other_maplet<'py>(obj: &Bound<'py, PyAny>) -> PyResult<Bound<'py, Maplet>> {
    args::named(obj, "other")
}

/// A space-efficient approximate map from keys to values.
///
/// Keys are ``str``, bytes-like or ``int``. Each key keeps only a short
/// fingerprint, so space is about ``log2(1/rate) + value bits`` per key.
/// Queries return the true value, or with probability below
/// ``false_positive_rate`` one that is off in the operator's one direction
/// (a count too high, a set too large); keys never inserted return ``None``
/// except with about that probability.
///
/// >>> m = Maplet(1000, 0.01, CounterOperator())
/// >>> m.insert("user:123", 42)
/// >>> m.query("user:123")
/// 42
/// >>> "user:123" in m, m.query("nobody")
/// (True, None)
#[pyclass(module = "mappy_python", frozen, subclass, weakref)]
pub(crate) struct Maplet {
    pub(crate) state: StateLock,
    /// The hash seed (fixed for the maplet's life; kept here so hashing a
    /// key needs no lock).
    pub(crate) seed: u64,
    pub(crate) spec: Spec,
    pub(crate) func: Option<Py<PyAny>>,
    /// A counter that allows negative counts (its answers are two-sided).
    pub(crate) signed: bool,
    /// Read from a `bytes` object whose buffer its table may still borrow
    /// (a change may drop the last reference to it: see
    /// [`crate::fastcall`]).
    pub(crate) lent: bool,
}

/// `encode_runs`' answer: each shard's index and run, the positions of
/// the batch's values in run order, and where each shard's start.
pub(crate) type EncodedRuns<'py> = (
    Vec<(u32, Bound<'py, PyBytes>)>,
    Bound<'py, PyArray1<u32>>,
    Vec<usize>,
);

/// The operator a saved custom-operator maplet needs, from its saved name.
fn saved_operator(
    py: Python<'_>,
    name: &str,
    func: Option<&Py<PyAny>>,
) -> core::Result<(PyOp, Spec)> {
    let (kind, spec) = match name {
        "python-max" => (ObjKind::Max, Spec::Max),
        "python-min" => (ObjKind::Min, Spec::Min),
        "python-set" => (ObjKind::Set, Spec::Set),
        "python-custom" => (ObjKind::Custom, Spec::Custom),
        other => {
            return Err(core::MapletError::Incompatible(format!(
                "operator {other:?} is not one of this package's"
            )))
        }
    };
    if kind == ObjKind::Custom && func.is_none() {
        return Err(crate::errors::carried(PyValueError::new_err(
            "this maplet was built with a CustomOperator: pass operator=CustomOperator(fn) to load it",
        )));
    }
    let func = func
        .filter(|_| kind == ObjKind::Custom)
        .map(|f| Arc::new(f.clone_ref(py)));
    Ok((PyOp { kind, func }, spec))
}

/// The spec of a maplet's storage, for those that are not custom.
fn spec_of_storage(inner: &Inner) -> Spec {
    match inner {
        Inner::Counter(_) => Spec::Counter,
        Inner::MaxI64(_) | Inner::MaxF64(_) => Spec::Max,
        Inner::MinI64(_) | Inner::MinF64(_) => Spec::Min,
        Inner::VecF32(_) | Inner::VecF64(_) => Spec::Vector,
        Inner::Other(m) => match m.operator().kind {
            ObjKind::Max => Spec::Max,
            ObjKind::Min => Spec::Min,
            ObjKind::Set => Spec::Set,
            ObjKind::Custom => Spec::Custom,
        },
    }
}

impl Maplet {
    pub(crate) fn from_inner(inner: Inner, func: Option<Py<PyAny>>, signed: bool) -> Maplet {
        let spec = spec_of_storage(&inner);
        // A counter that holds a negative count is signed, whatever it was
        // opened as: its answers are two-sided already.
        let signed = signed || matches!(&inner, Inner::Counter(m) if m.holds_signed_values());
        Maplet {
            seed: inner.seed(),
            state: StateLock::new(inner),
            spec,
            func,
            signed,
            lent: false,
        }
    }

    /// A maplet read from saved bytes in `data`: a `bytes` object, whose
    /// table it reads in place (keeping the object alive) until its first
    /// change (see [`lendable`]), or any other buffer, copied first.
    fn read(
        py: Python<'_>,
        data: &Bound<'_, PyAny>,
        func: Option<Py<PyAny>>,
        allow_pickle: bool,
    ) -> PyResult<Maplet> {
        let operator = |name: &str| saved_operator(py, name, func.as_ref()).map(|(op, _)| op);
        let decode = |b: &[u8]| decode_value(py, b, allow_pickle);
        let lent = lendable(data)?;
        let inner = match (&lent, data.cast::<PyBytes>()) {
            (Some(b), _) => Inner::from_frozen_bytes(frozen::lend(b), operator, decode),
            // A subclass of bytes: immutable, read as it is.
            (None, Ok(b)) => Inner::from_bytes(b.as_bytes(), operator, decode),
            (None, Err(_)) => {
                let copy = pyo3::buffer::PyBuffer::<u8>::get(data)?.to_vec(py)?;
                Inner::from_bytes(&copy, operator, decode)
            }
        }
        .or_raise(py)?;
        Ok(Maplet {
            lent: lent.is_some(),
            ..Maplet::from_inner(inner, func, false)
        })
    }

    fn operator_object<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        Ok(match self.spec {
            Spec::Counter => Bound::new(
                py,
                CounterOperator {
                    signed: self.signed,
                },
            )?
            .into_any(),
            Spec::Max => Bound::new(py, MaxOperator)?.into_any(),
            Spec::Min => Bound::new(py, MinOperator)?.into_any(),
            Spec::Set => Bound::new(py, SetOperator)?.into_any(),
            Spec::Vector => Bound::new(py, VectorOperator)?.into_any(),
            Spec::Custom => Bound::new(
                py,
                CustomOperator {
                    func: self
                        .func
                        .as_ref()
                        .expect("custom has a function")
                        .clone_ref(py),
                },
            )?
            .into_any(),
        })
    }

    /// The maplet's bytes (`to_bytes()`) as a Python bytes object.
    pub(crate) fn to_py_bytes<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyBytes>> {
        let state = self.state.lock(py)?;
        // Packed maplets are written straight into the new bytes object.
        if let Some(len) = state.packed_bytes_len() {
            return PyBytes::new_with(py, len, |buf| {
                py.detach(|| state.write_packed_bytes(buf)).or_raise(py)
            });
        }
        let b = state
            .to_bytes_with(|v, out| encode_value(v.0.bind(py), out))
            .or_raise(py)?;
        Ok(PyBytes::new(py, &b))
    }

    /// `insert(key, value)`: see [`crate::fastcall`], which puts it on the class.
    #[inline]
    pub(crate) fn insert_key(
        &self,
        py: Python<'_>,
        key: &Bound<'_, PyAny>,
        value: &Bound<'_, PyAny>,
    ) -> PyResult<()> {
        let h = hash_key(key, self.seed)?;
        self.state.lock(py)?.insert(py, h, value, self.signed)
    }

    /// `query(key)`: see [`crate::fastcall`].
    #[inline]
    pub(crate) fn query_key(
        &self,
        py: Python<'_>,
        key: &Bound<'_, PyAny>,
    ) -> PyResult<Option<Py<PyAny>>> {
        let h = hash_key(key, self.seed)?;
        self.state.lock(py)?.query(py, h)
    }

    /// `contains(key)`: see [`crate::fastcall`].
    #[inline]
    pub(crate) fn contains_key(&self, py: Python<'_>, key: &Bound<'_, PyAny>) -> PyResult<bool> {
        let h = hash_key(key, self.seed)?;
        Ok(self.state.lock(py)?.contains_hash(h))
    }

    /// A copy of the state (of a mapped maplet, verified first).
    pub(crate) fn cloned_state(&self, py: Python<'_>) -> PyResult<Inner> {
        let state = self.state.lock(py)?;
        if matches!(&*state, Inner::Other(_)) {
            state.try_clone()
        } else {
            py.detach(|| state.try_clone())
        }
        .or_raise(py)
    }

    fn copy_inner(&self, py: Python<'_>) -> PyResult<Maplet> {
        Ok(Maplet::from_inner(
            self.cloned_state(py)?,
            self.func.as_ref().map(|f| f.clone_ref(py)),
            self.signed,
        ))
    }

    fn merge_inner(slf: &Bound<'_, Self>, other: &Bound<'_, Maplet>) -> PyResult<()> {
        let py = slf.py();
        let (me, them) = (slf.get(), other.get());
        if me.spec != them.spec {
            return Err(map_err(
                py,
                core::MapletError::Incompatible(format!(
                    "operators differ ({:?} and {:?})",
                    me.spec, them.spec
                )),
            ));
        }
        // A copy of the other, so that no two maplets are ever locked at
        // once (and merging a maplet into itself works).
        let theirs = them.cloned_state(py)?;
        let mut state = me.state.lock(py)?;
        let r = state.merge(&theirs);
        if let Err(core::MapletError::Incompatible(_)) = &r {
            // Numeric max/min against object storage: both to objects.
            if matches!(me.spec, Spec::Max | Spec::Min) && !state.is_empty() && !theirs.is_empty() {
                let original = state.replace_with_objects(py)?;
                let mut theirs = theirs;
                theirs.convert_to_objects(py)?;
                let r = state.merge(&theirs);
                if r.is_err() {
                    if let Some(original) = original {
                        *state = *original;
                    }
                }
                return r.or_raise(py);
            }
        }
        r.or_raise(py)
    }
}

#[pymethods]
impl Maplet {
    /// Maplet(expected_items, false_positive_rate, operator=CounterOperator(), *, capacity=None, memory_limit_mb=None, seed=None, fixed_precision=False, shard=None)
    ///
    /// A maplet sized for ``expected_items`` distinct keys at
    /// ``false_positive_rate``; ``capacity=`` is another name for
    /// ``expected_items`` (give one of the two; the ``capacity`` property is
    /// the number of home slots). It grows past that size when needed, to at
    /// least 2**22 home slots (about 4 million keys) or ``2**(f - 1)``-fold
    /// for ``f`` fingerprint bits, whichever is more; past that an insert
    /// raises ``MapletOverflowError`` and changes nothing (entries are never
    /// copied). ``memory_limit_mb`` caps its memory, Python values included
    /// (as ``sys.getsizeof`` measures them when stored, a set with its
    /// items): an operation that would need more raises
    /// ``MemoryLimitError`` and changes nothing. ``fixed_precision``
    /// keeps every fingerprint the same length however the maplet grows (3
    /// more bits per item), so that maplets which grew differently still
    /// merge into exactly what one maplet that saw every insert would hold.
    /// ``shard=(index, count)`` builds one shard of a ``ShardedMaplet``.
    ///
    /// >>> Maplet(capacity=1000, false_positive_rate=0.01).expected_items
    /// 1000
    #[new]
    #[pyo3(signature = (expected_items=None, false_positive_rate=None, operator=None, *, capacity=None, memory_limit_mb=None, seed=None, fixed_precision=false, shard=None))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        expected_items: Option<&Bound<'_, PyAny>>,
        #[pyo3(from_py_with = args::optional_rate)] false_positive_rate: Option<f64>,
        operator: Option<&Bound<'_, PyAny>>,
        capacity: Option<&Bound<'_, PyAny>>,
        #[pyo3(from_py_with = args::memory_limit_mb)] memory_limit_mb: Option<f64>,
        #[pyo3(from_py_with = args::seed)] seed: Option<u64>,
        #[pyo3(from_py_with = args::fixed_precision)] fixed_precision: bool,
        #[pyo3(from_py_with = args::shard)] shard: Option<(u32, u32)>,
    ) -> PyResult<Self> {
        guarded(py, || {
            let shard = match shard {
                None => core::shard::Shard::WHOLE,
                Some((index, count)) => core::shard::Shard::new(index, count).or_raise(py)?,
            };
            let expected_items = match (expected_items, capacity) {
                (Some(_), Some(_)) => {
                    return Err(PyTypeError::new_err(
                        "Maplet() got both expected_items and capacity, which are two names \
                         for one argument: give one",
                    ))
                }
                (Some(n), None) | (None, Some(n)) => n,
                (None, None) => {
                    return Err(PyTypeError::new_err(
                        "Maplet() missing required argument: 'expected_items' (or 'capacity')",
                    ))
                }
            };
            let Some(false_positive_rate) = false_positive_rate else {
                return Err(PyTypeError::new_err(
                    "Maplet() missing required argument: 'false_positive_rate'",
                ));
            };
            let n: i64 = expected_items
                .extract()
                .map_err(|_| PyTypeError::new_err("expected_items must be an int"))?;
            if n <= 0 {
                return Err(raise(
                    py,
                    Class::InvalidParameter,
                    format!("invalid parameter: expected_items must be at least 1, got {n}"),
                ));
            }
            let memory_limit = match memory_limit_mb {
                Some(mb) if !(mb > 0.0 && mb.is_finite()) => {
                    return Err(raise(
                        py,
                        Class::InvalidParameter,
                        format!("invalid parameter: memory_limit_mb must be positive, got {mb}"),
                    ))
                }
                Some(mb) => Some((mb * 1024.0 * 1024.0) as usize),
                None => None,
            };
            let (spec, func, signed) = spec_of(operator)?;
            let opts = core::Options {
                seed: seed.unwrap_or(hash::DEFAULT_SEED),
                memory_limit,
                fixed_precision,
            };
            let inner = Inner::new(
                spec,
                func.as_ref(),
                py,
                n as usize,
                false_positive_rate,
                opts,
                shard,
            )
            .or_raise(py)?;
            Ok(Maplet::from_inner(inner, func, signed))
        })
    }

    fn __contains__(&self, py: Python<'_>, key: &Bound<'_, PyAny>) -> PyResult<bool> {
        guarded(py, || self.contains_key(py, key))
    }

    fn __getitem__(&self, py: Python<'_>, key: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        guarded(py, || {
            self.query_key(py, key)?
                .ok_or_else(|| PyKeyError::new_err(key.clone().unbind()))
        })
    }

    /// ``Maplet[int]`` in an annotation: maplets are generic in the values
    /// their operator keeps (see the type stubs).
    #[classmethod]
    fn __class_getitem__(cls: &Bound<'_, PyType>, item: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        let alias = cls.py().import("types")?.getattr("GenericAlias")?;
        Ok(alias.call1((cls, item))?.unbind())
    }

    /// A maplet stores fingerprints of its keys, not the keys: it cannot
    /// be iterated (``iter``, ``list``, ``dict`` and ``for`` raise
    /// ``TypeError``), rather than fall back to ``m[0]``, ``m[1]``, ...
    fn __iter__(&self) -> PyResult<()> {
        Err(PyTypeError::new_err(
            "a maplet keeps fingerprints, not keys: it cannot be iterated",
        ))
    }

    /// get(key, default=None)
    ///
    /// The value stored for ``key``, or ``default`` if its fingerprint is
    /// absent, as ``dict.get`` answers (``query`` answers ``None``).
    ///
    /// >>> m = Maplet(100, 0.01); m.insert("a", 2); m.get("a"), m.get("b"), m.get("b", 0)
    /// (2, None, 0)
    #[pyo3(signature = (key, default=None))]
    fn get(
        &self,
        py: Python<'_>,
        key: &Bound<'_, PyAny>,
        default: Option<Py<PyAny>>,
    ) -> PyResult<Py<PyAny>> {
        guarded(py, || {
            Ok(self
                .query_key(py, key)?
                .unwrap_or_else(|| default.unwrap_or_else(|| py.None())))
        })
    }

    fn __len__(&self, py: Python<'_>) -> PyResult<usize> {
        guarded(py, || Ok(self.state.lock(py)?.len()))
    }

    /// The maplet's memory in bytes (``stats().memory_usage``) plus the
    /// object's own: what ``sys.getsizeof`` reports, and what Dask counts
    /// when it keeps or sends a maplet.
    fn __sizeof__(&self, py: Python<'_>) -> PyResult<usize> {
        guarded(py, || {
            let used = self.state.lock(py)?.stats().memory_usage;
            Ok(std::mem::size_of::<Self>().saturating_add(used))
        })
    }

    fn __hash__(&self) -> PyResult<isize> {
        Err(PyTypeError::new_err(
            "unhashable type: 'Maplet' (it is mutable)",
        ))
    }

    /// delete(key, value=None)
    ///
    /// With a counter and a ``value``, subtracts it (removing the entry at
    /// zero); otherwise removes ``key``'s entry. Returns whether one was
    /// found. An unsigned counter refuses a ``value`` above the stored count
    /// (``InvalidValueError``, nothing changed).
    ///
    /// Keys sharing a fingerprint share an entry, so deleting a key that was
    /// never inserted can remove (or lower) the entry of another key, whose
    /// answer can then be below the truth, or absent. The guarantee holds as
    /// long as you delete only what you inserted.
    ///
    /// >>> m = Maplet(100, 0.01); m.insert("a", 5); m.delete("a", 2), m.query("a")
    /// (True, 3)
    #[pyo3(signature = (key, value=None))]
    fn delete(
        &self,
        py: Python<'_>,
        key: &Bound<'_, PyAny>,
        value: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<bool> {
        guarded(py, || {
            let h = hash_key(key, self.seed)?;
            let mut state = self.state.lock(py)?;
            let r = match (&mut *state, value) {
                (Inner::Counter(m), Some(v)) => {
                    let n = v.extract::<i64>().map_err(counter_value_error)?;
                    if !self.signed {
                        if n < 0 {
                            return Err(negative_count(py, n));
                        }
                        let stored = m.query_hash(h).unwrap_or(0);
                        if n > stored {
                            return Err(raise(
                                py,
                                Class::InvalidValue,
                                format!(
                                    "invalid value: deleting {n} from a stored count of {stored} \
                                     would leave it negative, below the truth for some key; \
                                     delete only what you inserted"
                                ),
                            ));
                        }
                    }
                    m.delete_hash(h, &n)
                }
                (inner, _) => inner.remove_hash(h),
            };
            r.or_raise(py)
        })
    }

    /// batch_insert(pairs) or batch_insert(keys, values)
    ///
    /// Inserts many values at once: an iterable of ``(key, value)`` pairs, or
    /// keys and values as two sequences or NumPy arrays. Input is converted
    /// first; for counters and numeric max/min the work then runs without
    /// the GIL. All or nothing: if any item fails (a bad key or value, an
    /// overflow, a merge function's error, the memory limit), the exception
    /// notes which item, and the maplet is exactly as it was.
    ///
    /// >>> m = Maplet(100, 0.01); m.batch_insert([("a", 1), ("b", 2)]); m.batch_insert(["a"], [4])
    /// >>> m.batch_query(["a", "b"])
    /// [5, 2]
    #[pyo3(signature = (pairs_or_keys, values=None))]
    fn batch_insert(
        &self,
        py: Python<'_>,
        pairs_or_keys: &Bound<'_, PyAny>,
        values: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        guarded(py, || self.batch_insert_impl(py, pairs_or_keys, values))
    }

    /// batch_insert_hashes(hashes, values=None)
    ///
    /// ``batch_insert`` by precomputed hashes: ``hashes`` a NumPy uint64
    /// array from ``hash_keys(keys, seed=maplet.seed)``, ``values`` one per
    /// hash (``None``: a count of 1 each, counters only). Hashes move
    /// between processes at 8 bytes a key whatever the keys are (see
    /// ``mappy.dask``). All or nothing.
    ///
    /// >>> m = Maplet(100, 0.01); m.batch_insert_hashes(hash_keys(["a", "b", "a"], seed=m.seed))
    /// >>> m.query("a")
    /// 2
    #[pyo3(signature = (hashes, values=None))]
    fn batch_insert_hashes(
        &self,
        py: Python<'_>,
        hashes: &Bound<'_, PyAny>,
        values: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        guarded(py, || self.batch_insert_hashes_impl(py, hashes, values))
    }

    /// encode_runs(hashes)
    ///
    /// ``hashes`` (a NumPy uint64 array from ``hash_keys``) coded for the
    /// shards of a maplet built like this one, in 2 to 3 bytes a key where a
    /// hash takes 8: what a sharded build sends each shard (see
    /// ``mappy.dask``). Answers ``(runs, order, bounds)``: ``runs`` a list
    /// of ``(shard index, bytes)`` for each shard that owns some of the
    /// hashes; the values for ``runs[i]`` are those at positions
    /// ``order[bounds[i]:bounds[i + 1]]`` of the batch. Any shard of the
    /// sharded maplet (or the maplet itself, unsharded) can code.
    ///
    /// >>> m = Maplet(1000, 0.01, shard=(0, 2)); h = hash_keys(["a", "b", "a"], seed=m.seed)
    /// >>> runs, order, bounds = m.encode_runs(h)
    /// >>> sorted(order.tolist()), bounds[-1]
    /// ([0, 1, 2], 3)
    fn encode_runs<'py>(
        &self,
        py: Python<'py>,
        hashes: &Bound<'py, PyAny>,
    ) -> PyResult<EncodedRuns<'py>> {
        guarded(py, || self.encode_runs_impl(py, hashes))
    }

    /// batch_insert_runs(runs, values=None)
    ///
    /// Inserts the keys of ``runs`` (bytes from ``encode_runs`` for this
    /// maplet's shard, built with the same parameters and seed): exactly
    /// what inserting the hashes they were coded from does, values in the
    /// order ``encode_runs`` gave (``None``: each key counted as often as
    /// it occurred, counters only). All or nothing; a run for another
    /// shard or other parameters is a ``ValueError``, a damaged one a
    /// ``CorruptDataError``, and a shard that would grow past the bits the
    /// runs carry (more than 4 times its share of ``expected_items``) a
    /// ``MapletOverflowError``, the maplet unchanged.
    ///
    /// >>> m = Maplet(1000, 0.01); runs, _, _ = m.encode_runs(hash_keys(["a", "b", "a"], seed=m.seed))
    /// >>> m.batch_insert_runs([r for _, r in runs]); m.query("a")
    /// 2
    #[pyo3(signature = (runs, values=None))]
    fn batch_insert_runs(
        &self,
        py: Python<'_>,
        runs: &Bound<'_, PyAny>,
        values: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        guarded(py, || self.batch_insert_runs_impl(py, runs, values))
    }

    /// batch_query(keys)
    ///
    /// The values of many keys, in order (``None`` where absent). Given a
    /// NumPy integer array and a counter maplet, answers a NumPy int64 array
    /// with 0 for absent keys.
    ///
    /// >>> import numpy as np; m = Maplet(100, 0.01); m.batch_insert(np.array([1, 2], dtype=np.uint64), [3, 4])
    /// >>> m.batch_query(np.array([1, 2, 9], dtype=np.uint64))
    /// array([3, 4, 0])
    fn batch_query(&self, py: Python<'_>, keys: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        guarded(py, || self.batch_query_impl(py, keys))
    }

    /// batch_contains(keys)
    ///
    /// Membership of many keys (a NumPy bool array for NumPy input).
    ///
    /// >>> m = Maplet(100, 0.01); m.insert("a", 1); m.batch_contains(["a", "b"])
    /// [True, False]
    fn batch_contains(&self, py: Python<'_>, keys: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        guarded(py, || self.batch_contains_impl(py, keys))
    }

    /// abatch_insert(pairs) or abatch_insert(keys, values)
    ///
    /// ``batch_insert`` in a worker thread, for ``await`` in asyncio code.
    ///
    /// >>> import asyncio; m = Maplet(100, 0.01); asyncio.run(m.abatch_insert([("a", 1)])); m.query("a")
    /// 1
    #[pyo3(signature = (pairs_or_keys, values=None))]
    fn abatch_insert<'py>(
        slf: &Bound<'py, Self>,
        pairs_or_keys: &Bound<'py, PyAny>,
        values: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let f = slf.getattr("batch_insert")?;
        let asyncio = slf.py().import("asyncio")?;
        match values {
            Some(v) => asyncio.call_method1("to_thread", (f, pairs_or_keys, v)),
            None => asyncio.call_method1("to_thread", (f, pairs_or_keys)),
        }
    }

    /// abatch_query(keys)
    ///
    /// ``batch_query`` in a worker thread, for ``await`` in asyncio code.
    ///
    /// >>> import asyncio; m = Maplet(100, 0.01); m.insert("a", 1); asyncio.run(m.abatch_query(["a"]))
    /// [1]
    fn abatch_query<'py>(
        slf: &Bound<'py, Self>,
        keys: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let f = slf.getattr("batch_query")?;
        slf.py()
            .import("asyncio")?
            .call_method1("to_thread", (f, keys))
    }

    /// clear()
    ///
    /// Removes everything and returns to the initial size.
    ///
    /// >>> m = Maplet(100, 0.01); m.insert("a", 1); m.clear(); len(m)
    /// 0
    fn clear(&self, py: Python<'_>) -> PyResult<()> {
        guarded(py, || self.state.lock(py)?.clear().or_raise(py))
    }

    /// copy()
    ///
    /// An independent copy (in memory and writable, even of a memory-mapped
    /// maplet, which is verified first: ``CorruptDataError`` if damaged).
    ///
    /// >>> m = Maplet(100, 0.01); c = m.copy(); c.insert("a", 1); "a" in m
    /// False
    pub(crate) fn copy(&self, py: Python<'_>) -> PyResult<Maplet> {
        guarded(py, || self.copy_inner(py))
    }

    fn __copy__(&self, py: Python<'_>) -> PyResult<Maplet> {
        self.copy(py)
    }

    #[pyo3(signature = (memo=None))]
    fn __deepcopy__(&self, py: Python<'_>, memo: Option<&Bound<'_, PyAny>>) -> PyResult<Maplet> {
        let _ = memo;
        self.copy(py)
    }

    /// merge(other)
    ///
    /// Merges ``other`` into this maplet in place: it then answers as one
    /// maplet that saw both sets of inserts. Both must have been built with
    /// the same operator, parameters and seed (``IncompatibleMapletsError``
    /// otherwise, nothing changed). An empty maplet merges with any of the
    /// same operator and parameters, whatever its values' storage. A
    /// memory-mapped ``other`` is verified first.
    ///
    /// >>> a, b = Maplet(100, 0.01), Maplet(100, 0.01); a.insert("k", 1); b.insert("k", 2)
    /// >>> a.merge(b); a.query("k"), (a | b).query("k")
    /// (3, 5)
    pub(crate) fn merge(
        slf: &Bound<'_, Self>,
        #[pyo3(from_py_with = other_maplet)] other: Bound<'_, Maplet>,
    ) -> PyResult<()> {
        guarded(slf.py(), || Self::merge_inner(slf, &other))
    }

    /// ``a | b``: a new maplet merging both.
    fn __or__(slf: &Bound<'_, Self>, other: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        let py = slf.py();
        guarded(py, || {
            let Ok(other) = other.cast::<Maplet>() else {
                return Ok(py.NotImplemented());
            };
            let out = Bound::new(py, slf.get().copy_inner(py)?)?;
            Self::merge_inner(&out, other)?;
            Ok(out.into_any().unbind())
        })
    }

    /// stats()
    ///
    /// Size and accuracy figures: ``load_factor``, ``memory_usage`` (bytes),
    /// ``item_count``, ``capacity``, ``false_positive_rate``,
    /// ``expected_false_positive_rate``, ``bits_per_item``.
    ///
    /// >>> s = Maplet(1000, 0.01).stats(); s.capacity, s.item_count
    /// (1053, 0)
    fn stats(&self, py: Python<'_>) -> PyResult<Stats> {
        guarded(py, || {
            let state = self.state.lock(py)?;
            let s = state.stats();
            // Python values count as they were measured when stored.
            let memory_usage = s.memory_usage;
            Ok(Stats {
                item_count: s.items,
                capacity: s.capacity,
                load_factor: s.load_factor,
                memory_usage,
                bits_per_item: if s.items == 0 {
                    0.0
                } else {
                    memory_usage as f64 * 8.0 / s.items as f64
                },
                false_positive_rate: s.false_positive_rate,
                expected_false_positive_rate: s.expected_false_positive_rate,
            })
        })
    }

    /// verify(*, checksum_only=False)
    ///
    /// Checks the maplet from scratch (every invariant of its table): for a
    /// memory-mapped maplet, whose file is checked only cheaply on opening.
    /// Raises ``CorruptDataError`` saying what is wrong. With
    /// ``checksum_only=True``, checks only a mapped maplet's file checksum
    /// (at the speed of reading the file): it catches a truncated or
    /// damaged file, not one made to pass it.
    ///
    /// >>> Maplet(100, 0.01).verify()
    #[pyo3(signature = (*, checksum_only=false))]
    fn verify(
        &self,
        py: Python<'_>,
        #[pyo3(from_py_with = args::checksum_only)] checksum_only: bool,
    ) -> PyResult<()> {
        guarded(py, || {
            let state = self.state.lock(py)?;
            py.detach(|| {
                if checksum_only {
                    state.verify_checksum()
                } else {
                    state.verify()
                }
            })
            .or_raise(py)
        })
    }

    /// The number of distinct keys the maplet was sized for.
    #[getter]
    fn expected_items(&self, py: Python<'_>) -> PyResult<usize> {
        guarded(py, || Ok(self.state.lock(py)?.expected_items()))
    }

    /// The configured false-positive rate.
    #[getter]
    fn false_positive_rate(&self, py: Python<'_>) -> PyResult<f64> {
        guarded(py, || Ok(self.state.lock(py)?.false_positive_rate()))
    }

    /// Home slots now; doubles when the maplet grows.
    #[getter]
    fn capacity(&self, py: Python<'_>) -> PyResult<u64> {
        guarded(py, || Ok(self.state.lock(py)?.capacity()))
    }

    /// The hash seed.
    #[getter(seed)]
    fn get_seed(&self) -> u64 {
        self.seed
    }

    /// The merge operator.
    #[getter]
    fn operator<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        guarded(py, || self.operator_object(py))
    }

    /// ``(index, count)`` if the maplet is shard ``index`` of a maplet
    /// split into ``count`` shards (see ``ShardedMaplet``), else ``None``.
    /// A shard answers keys of other shards as absent and refuses to
    /// insert them.
    ///
    /// >>> Maplet(1000, 0.01, shard=(1, 4)).shard
    /// (1, 4)
    #[getter]
    fn shard(&self, py: Python<'_>) -> PyResult<Option<(u32, u32)>> {
        guarded(py, || {
            let s = self.state.lock(py)?.shard();
            Ok((!s.is_whole()).then_some((s.index(), s.count())))
        })
    }

    /// Whether the maplet is memory-mapped, and so read-only.
    #[getter]
    fn read_only(&self, py: Python<'_>) -> PyResult<bool> {
        guarded(py, || Ok(self.state.lock(py)?.is_read_only()))
    }

    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        guarded(py, || {
            let (len, cap, rate) = {
                let s = self.state.lock(py)?;
                (s.len(), s.capacity(), s.false_positive_rate())
            };
            Ok(format!(
                "Maplet(operator={}, len={len}, capacity={cap}, false_positive_rate={rate})",
                self.operator_object(py)?.repr()?
            ))
        })
    }

    // ---- persistence ---------------------------------------------------------------

    /// to_bytes()
    ///
    /// The maplet in the file format of ``docs/FORMAT.md`` (about
    /// ``stats().memory_usage`` bytes). Values that are ``str``, ``bytes``,
    /// ``int``, ``float``, ``bool``, ``None`` or frozensets of those are
    /// stored as plain data; other Python objects are pickled, and reading
    /// them back needs ``allow_pickle=True``. A memory-mapped maplet is
    /// verified first (``CorruptDataError`` if damaged).
    ///
    /// >>> m = Maplet(100, 0.01); m.insert("a", 1); Maplet.from_bytes(m.to_bytes()).query("a")
    /// 1
    fn to_bytes<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyBytes>> {
        guarded(py, || self.to_py_bytes(py))
    }

    /// from_bytes(data, operator=None, *, allow_pickle=False)
    ///
    /// A maplet from ``to_bytes()`` output; ``operator`` is needed only for a
    /// ``CustomOperator``. Raises ``CorruptDataError`` for damaged data, and
    /// ``UnsafeDataError`` for data holding pickled values unless
    /// ``allow_pickle=True`` (unpickling can run code: allow it only for data
    /// you trust).
    ///
    /// >>> Maplet.from_bytes(b"not a maplet")
    /// Traceback (most recent call last):
    /// CorruptDataError: corrupt maplet data: not a maplet (bad magic bytes or too short)
    #[classmethod]
    #[pyo3(signature = (data, operator=None, *, allow_pickle=false))]
    fn from_bytes(
        _cls: &Bound<'_, PyType>,
        py: Python<'_>,
        #[pyo3(from_py_with = args::data)] data: Bound<'_, PyBytes>,
        operator: Option<&Bound<'_, PyAny>>,
        #[pyo3(from_py_with = args::allow_pickle)] allow_pickle: bool,
    ) -> PyResult<Maplet> {
        guarded(py, || {
            let (_, func, signed) = spec_of(operator)?;
            let mut m = Maplet::read(py, data.as_any(), func, allow_pickle)?;
            m.signed |= signed && m.spec == Spec::Counter;
            Ok(m)
        })
    }

    /// save(path)
    ///
    /// Writes the maplet to ``path`` atomically (a temporary file beside it,
    /// flushed, then renamed over it), so a crash never leaves a damaged
    /// file. Only regular files are written: a ``path`` that is a directory,
    /// FIFO or device raises ``OSError`` and nothing is written. A symbolic
    /// link at ``path`` is replaced by the new file (the file it pointed to
    /// is left as it was). A memory-mapped maplet is verified first, and
    /// saving over its own file is safe (the mapping keeps the old file).
    ///
    /// >>> import os, tempfile; p = os.path.join(tempfile.mkdtemp(), "m.maplet")
    /// >>> m = Maplet(100, 0.01); m.insert("a", 1); m.save(p); Maplet.load(p).query("a")
    /// 1
    fn save(
        &self,
        py: Python<'_>,
        #[pyo3(from_py_with = args::path)] path: PathBuf,
    ) -> PyResult<()> {
        guarded(py, || {
            let state = self.state.lock(py)?;
            // Packed values stream to the file, detached; Python objects are
            // encoded attached.
            if matches!(&*state, Inner::Other(_)) {
                state.save_with(&path, |v, out| encode_value(v.0.bind(py), out))
            } else {
                py.detach(|| state.save_with(&path, |_, _| unreachable!("packed values")))
            }
            .or_raise(py)
            .map_err(|e| with_filename(py, e, &path))
        })
    }

    /// load(path, operator=None, *, mmap=False, allow_pickle=False)
    ///
    /// Reads a saved maplet (a regular file; anything else raises
    /// ``CorruptDataError`` before it is read). ``operator`` is needed only
    /// for a ``CustomOperator``; ``allow_pickle`` as for :meth:`from_bytes`.
    /// With ``mmap=True`` (counters and numeric max/min), maps the file
    /// read-only instead of reading it: opening takes milliseconds whatever
    /// the size, and processes share the pages; every write raises
    /// ``ReadOnlyError``. Opening checks the header and sizes, not every
    /// byte: :meth:`verify` checks the rest, and ``copy``, ``to_bytes``,
    /// ``save`` and ``merge`` verify before they write anything. The file
    /// must not be truncated or written in place while mapped (the
    /// package's own saves replace files instead).
    ///
    /// >>> import os, tempfile; p = os.path.join(tempfile.mkdtemp(), "m.maplet")
    /// >>> Maplet(100, 0.01).save(p); Maplet.load(p, mmap=True).read_only
    /// True
    #[classmethod]
    #[pyo3(signature = (path, operator=None, *, mmap=false, allow_pickle=false))]
    fn load(
        _cls: &Bound<'_, PyType>,
        py: Python<'_>,
        #[pyo3(from_py_with = args::path)] path: PathBuf,
        operator: Option<&Bound<'_, PyAny>>,
        #[pyo3(from_py_with = args::mmap)] mmap: bool,
        #[pyo3(from_py_with = args::allow_pickle)] allow_pickle: bool,
    ) -> PyResult<Maplet> {
        guarded(py, || {
            let (_, func, signed) = spec_of(operator)?;
            let mut m = if mmap {
                let inner = py
                    .detach(|| Inner::load_mmap(&path))
                    .or_raise(py)
                    .map_err(|e| with_filename(py, e, &path))?;
                Maplet::from_inner(inner, None, false)
            } else {
                let inner = Inner::load(
                    &path,
                    |name| saved_operator(py, name, func.as_ref()).map(|(op, _)| op),
                    |b| decode_value(py, b, allow_pickle),
                )
                .or_raise(py)
                .map_err(|e| with_filename(py, e, &path))?;
                Maplet::from_inner(inner, func, false)
            };
            m.signed |= signed && m.spec == Spec::Counter;
            Ok(m)
        })
    }

    /// Pickling: the maplet's bytes, as an out-of-band buffer under
    /// protocol 5 (`pickle.PickleBuffer`: with a `buffer_callback`, as Dask
    /// pickles, the bytes are handed over without a copy into the pickle).
    fn __reduce_ex__<'py>(
        slf: &Bound<'py, Self>,
        protocol: i64,
    ) -> PyResult<(Bound<'py, PyAny>, Bound<'py, PyTuple>)> {
        let py = slf.py();
        guarded(py, || {
            let mut data = slf.get().to_bytes(py)?.into_any();
            if protocol >= 5 {
                data = py
                    .import("pickle")?
                    .getattr("PickleBuffer")?
                    .call1((data,))?;
            }
            let restore = py.get_type::<Maplet>().getattr("_restore")?;
            let func = slf
                .get()
                .func
                .as_ref()
                .map(|f| f.clone_ref(py))
                .unwrap_or_else(|| py.None());
            Ok((
                restore,
                PyTuple::new(
                    py,
                    [
                        data,
                        func.into_bound(py),
                        pyo3::types::PyBool::new(py, slf.get().signed)
                            .to_owned()
                            .into_any(),
                    ],
                )?,
            ))
        })
    }

    /// Unpickling: a maplet from its bytes and, for custom operators, its
    /// merge function. A pickle is trusted data (unpickling it could run
    /// any code already), so pickled values in it are allowed.
    ///
    /// `data` is the `bytes` of ``to_bytes()`` or, from an out-of-band
    /// pickle, any object with the buffer protocol. The table of a `bytes`
    /// object (exactly, not a subclass; or of a `PickleBuffer` or read-only
    /// `memoryview` of a whole one) is read in place until the maplet's
    /// first change; any other buffer is copied first (its owner could
    /// change it while it is read).
    #[staticmethod]
    #[pyo3(signature = (data, func=None, signed=false))]
    fn _restore(
        py: Python<'_>,
        data: &Bound<'_, PyAny>,
        func: Option<Py<PyAny>>,
        signed: bool,
    ) -> PyResult<Maplet> {
        guarded(py, || {
            let func = func.filter(|f| !f.is_none(py));
            let mut m = Maplet::read(py, data, func, true)?;
            m.signed |= signed && m.spec == Spec::Counter;
            Ok(m)
        })
    }

    fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
        if let Some(f) = &self.func {
            visit.call(f)?;
        }
        // Never block in the collector: a maplet in use is skipped. (The
        // collector runs attached, with no thread state to use as token.)
        if let Some(state) = self.state.try_lock(u64::MAX) {
            if let Inner::Other(m) = &*state {
                for v in m.stored_values() {
                    visit.call(&v.0)?;
                }
                if let Some(f) = &m.operator().func {
                    visit.call(&**f)?;
                }
            }
        }
        Ok(())
    }

    fn __clear__(&self) {
        if let Some(mut state) = self.state.try_lock(u64::MAX) {
            if let Inner::Other(m) = &mut *state {
                let _ = m.clear();
            }
        }
    }
}

/// merge(maplets)
///
/// A new maplet merging an iterable of maplets built with the same operator,
/// parameters and seed; the inputs are unchanged.
///
/// >>> a, b = Maplet(100, 0.01), Maplet(100, 0.01); a.insert("k", 1); b.insert("k", 2)
/// >>> merge([a, b]).query("k"), a.query("k")
/// (3, 1)
#[pyfunction]
pub(crate) fn merge(py: Python<'_>, maplets: &Bound<'_, PyAny>) -> PyResult<Py<Maplet>> {
    guarded(py, || {
        let mut it = args::iterate(maplets, "maplets")?;
        let first = it
            .next()
            .ok_or_else(|| PyValueError::new_err("merge() needs at least one maplet"))??;
        let first = first
            .cast::<Maplet>()
            .map_err(|_| PyTypeError::new_err("merge() takes maplets"))?;
        let out = Bound::new(py, first.get().copy(py)?)?;
        for m in it {
            let m = m?;
            let m = m
                .cast::<Maplet>()
                .map_err(|_| PyTypeError::new_err("merge() takes maplets"))?;
            Maplet::merge_inner(&out, m)?;
        }
        Ok(out.unbind())
    })
}

/// The `bytes` object whose whole buffer `data` is: `data` itself, or the
/// object under a `PickleBuffer` or `memoryview` of all of it, read-only
/// (the buffers an out-of-band pickle of a `bytes` object hands over).
/// Exact `bytes` only: a subclass can hold references (a cycle through the
/// maplet, which the collector could not see) and run code when dropped
/// (while the maplet is locked), so it is copied instead.
fn lendable<'py>(data: &Bound<'py, PyAny>) -> PyResult<Option<Bound<'py, PyBytes>>> {
    if let Ok(b) = data.cast_exact::<PyBytes>() {
        return Ok(Some(b.clone()));
    }
    let pickle_buffer = data.py().import("pickle")?.getattr("PickleBuffer")?;
    let view = if data.is_exact_instance_of::<pyo3::types::PyMemoryView>() {
        data.clone()
    } else if data.is_exact_instance(&pickle_buffer) {
        // A view of a buffer that is not contiguous has no raw form: copied.
        match data.call_method0("raw") {
            Ok(view) => view,
            Err(_) => return Ok(None),
        }
    } else {
        return Ok(None);
    };
    let obj = view.getattr("obj")?;
    let Ok(b) = obj.cast_exact::<PyBytes>() else {
        return Ok(None);
    };
    // All of it, as plain bytes: a slice or a cast view is copied.
    let whole = view.getattr("readonly")?.is_truthy()?
        && view.getattr("contiguous")?.is_truthy()?
        && view.getattr("nbytes")?.extract::<usize>()? == b.as_bytes().len()
        && view.getattr("format")?.extract::<String>()? == "B";
    Ok(whole.then(|| b.clone()))
}
