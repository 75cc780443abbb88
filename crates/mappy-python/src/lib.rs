//! Python bindings for mappy maplets: the native module
//! `mappy_python._mappy`. Conversion and error mapping only; every algorithm
//! lives in `mappy-core`.
//!
//! Threads: a `Maplet` is a frozen class holding its state behind its own
//! lock (`StateLock`), always taken while attached to the interpreter.
//! Single-key calls stay attached; batch calls on packed operators convert
//! their input first, take the lock, then release the interpreter for the
//! work. Operators that call back into Python (max/min over objects, sets,
//! custom functions) run attached, and a merge function that re-enters the
//! same maplet from its own thread gets a `RuntimeError` instead of a
//! deadlock.

use std::cell::UnsafeCell;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use mappy_core as core;
use mappy_core::hash;
use mappy_core::{Counter, Max, Min, Operator, OperatorKind, VectorAdd};
use numpy::{PyArray1, PyReadonlyArray1, PyUntypedArrayMethods};
use pyo3::exceptions::{PyKeyError, PyRuntimeError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{
    PyByteArray, PyBytes, PyDict, PyFloat, PyFrozenSet, PyInt, PyList, PyMemoryView, PyString,
    PyTuple, PyType,
};
use pyo3::{PyTraverseError, PyVisit};

mod fastcall;

// ---- errors ----------------------------------------------------------------

const ERROR_CLASSES: &std::ffi::CStr = c"
class MapletError(Exception):
    \"\"\"Base class of every error a maplet raises.\"\"\"

class InvalidParameterError(MapletError, ValueError):
    \"\"\"A constructor or method argument is out of range.\"\"\"

class InvalidValueError(MapletError, ValueError):
    \"\"\"A value the maplet's operator cannot store or merge.\"\"\"

class MapletOverflowError(MapletError, OverflowError):
    \"\"\"A count that would pass the range of a signed 64-bit integer.\"\"\"

class MemoryLimitError(MapletError, MemoryError):
    \"\"\"The operation would take the maplet past its memory limit.\"\"\"

class IncompatibleMapletsError(MapletError, ValueError):
    \"\"\"Maplets built with different operators, parameters or seeds.\"\"\"

class CorruptDataError(MapletError, ValueError):
    \"\"\"Saved maplet data that is truncated, damaged or of another version.\"\"\"

class ReadOnlyError(MapletError):
    \"\"\"A write to a memory-mapped (read-only) maplet.\"\"\"

for _c in (MapletError, InvalidParameterError, InvalidValueError, MapletOverflowError,
           MemoryLimitError, IncompatibleMapletsError, CorruptDataError, ReadOnlyError):
    _c.__module__ = 'mappy_python'
";

const ERROR_NAMES: [&str; 8] = [
    "MapletError",
    "InvalidParameterError",
    "InvalidValueError",
    "MapletOverflowError",
    "MemoryLimitError",
    "IncompatibleMapletsError",
    "CorruptDataError",
    "ReadOnlyError",
];

static ERRORS: PyOnceLock<Py<PyDict>> = PyOnceLock::new();

fn error_type<'py>(py: Python<'py>, name: &str) -> Bound<'py, PyType> {
    let dict = ERRORS
        .get(py)
        .expect("error classes are made when the module is imported")
        .bind(py);
    dict.get_item(name)
        .ok()
        .flatten()
        .and_then(|t| t.cast_into::<PyType>().ok())
        .expect("every error class is defined")
}

fn raise(py: Python<'_>, name: &str, msg: String) -> PyErr {
    PyErr::from_type(error_type(py, name), msg)
}

/// The one place where core errors become Python exceptions.
fn map_err(py: Python<'_>, e: core::MapletError) -> PyErr {
    use core::MapletError as E;
    let msg = e.to_string();
    match e {
        E::InvalidParameter(_) => raise(py, "InvalidParameterError", msg),
        E::InvalidValue(_) => raise(py, "InvalidValueError", msg),
        E::Overflow(_) => raise(py, "MapletOverflowError", msg),
        E::MemoryLimit { .. } => raise(py, "MemoryLimitError", msg),
        E::Incompatible(_) => raise(py, "IncompatibleMapletsError", msg),
        E::Corrupt(_) => raise(py, "CorruptDataError", msg),
        E::ReadOnly => raise(py, "ReadOnlyError", msg),
        E::Io(io) => PyErr::from(io),
        // A Python merge function's own exception, handed back unchanged.
        E::Operator(inner) => match inner.downcast::<PyErr>() {
            Ok(pyerr) => *pyerr,
            Err(other) => raise(py, "MapletError", format!("merge operator failed: {other}")),
        },
        _ => raise(py, "MapletError", msg),
    }
}

/// Runs `f`, turning a Rust panic into a `MapletError` rather than letting
/// it reach Python.
fn guarded<T>(py: Python<'_>, f: impl FnOnce() -> PyResult<T>) -> PyResult<T> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(r) => r,
        Err(panic) => {
            let what = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            Err(raise(py, "MapletError", format!("internal error: {what}")))
        }
    }
}

// ---- keys ------------------------------------------------------------------

/// The hash of a key: `str`, bytes-like, or `int` (of any size), each in its
/// own domain, so that `"1"`, `b"1"` and `1` are different keys.
fn hash_key(key: &Bound<'_, PyAny>, seed: u64) -> PyResult<u64> {
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
    if key.hasattr("__index__")? && !key.is_instance_of::<PyFloat>() {
        // NumPy integer scalars and other integer-like objects.
        let i = key.call_method0("__index__")?;
        return hash_key(&i, seed);
    }
    Err(PyTypeError::new_err(format!(
        "maplet keys must be str, bytes or int, not {}",
        key.get_type().name()?
    )))
}

use pyo3::types::IntoPyDict;

/// The hashes and counts of a batch, gathered in one pass. While every
/// count is the same (counting occurrences: all ones), only the hashes are
/// kept and the batch goes in as that one count under every hash, which
/// halves the memory the batch takes and reads; the first different count
/// turns what was gathered into (hash, count) pairs.
enum Counts {
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
    fn insert_into<O: Operator<Value = i64>>(
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
#[derive(Default)]
struct CountReader<'py> {
    last: Option<(Bound<'py, PyAny>, i64)>,
}

impl<'py> CountReader<'py> {
    #[inline]
    fn read(&mut self, x: &Bound<'py, PyAny>) -> PyResult<i64> {
        if let Some((o, v)) = &self.last {
            if o.is(x) {
                return Ok(*v);
            }
        }
        let v = x.extract::<i64>().map_err(counter_value_error)?;
        self.last = Some((x.clone(), v));
        Ok(v)
    }
}

/// The counts of integer keys and counts read in place, if the two arrays
/// have the same length.
fn paired<T: Copy>(
    keys: numpy::ndarray::ArrayView1<'_, T>,
    counts: numpy::ndarray::ArrayView1<'_, i64>,
    hash: fn(T, u64) -> u64,
    seed: u64,
) -> Option<Counts> {
    (keys.len() == counts.len()).then(|| {
        keys.iter()
            .zip(counts.iter())
            .map(|(&k, &c)| (hash(k, seed), c))
            .collect()
    })
}

/// Hashes of many keys: a NumPy integer array is read in place.
fn hash_keys(keys: &Bound<'_, PyAny>, seed: u64) -> PyResult<(Vec<u64>, bool)> {
    if let Ok(a) = keys.extract::<PyReadonlyArray1<'_, u64>>() {
        let out = match a.as_slice() {
            Ok(s) => s.iter().map(|&v| hash::hash_u64(v, seed)).collect(),
            Err(_) => a
                .as_array()
                .iter()
                .map(|&v| hash::hash_u64(v, seed))
                .collect(),
        };
        return Ok((out, true));
    }
    if let Ok(a) = keys.extract::<PyReadonlyArray1<'_, i64>>() {
        let out = match a.as_slice() {
            Ok(s) => s.iter().map(|&v| hash::hash_i64(v, seed)).collect(),
            Err(_) => a
                .as_array()
                .iter()
                .map(|&v| hash::hash_i64(v, seed))
                .collect(),
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
    let mut out = Vec::with_capacity(keys.len().unwrap_or(0));
    for k in keys.try_iter()? {
        out.push(hash_key(&k?, seed)?);
    }
    Ok((out, is_array))
}

// ---- values held as Python objects --------------------------------------------

/// A Python object held in a maplet's side store.
struct PyObj(Py<PyAny>);

impl Clone for PyObj {
    fn clone(&self) -> Self {
        Python::attach(|py| PyObj(self.0.clone_ref(py)))
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ObjKind {
    Max,
    Min,
    Set,
    Custom,
}

/// The operator for values kept as Python objects: merges call Python.
#[derive(Clone)]
struct PyOp {
    kind: ObjKind,
    func: Option<Arc<Py<PyAny>>>,
}

impl PyOp {
    fn name(kind: ObjKind) -> &'static str {
        match kind {
            ObjKind::Max => "python-max",
            ObjKind::Min => "python-min",
            ObjKind::Set => "python-set",
            ObjKind::Custom => "python-custom",
        }
    }
}

impl Operator for PyOp {
    type Value = PyObj;
    const PACKED: bool = false;

    fn kind(&self) -> OperatorKind {
        OperatorKind::Custom(Self::name(self.kind))
    }

    fn merge(&self, existing: &PyObj, incoming: &PyObj) -> core::Result<PyObj> {
        Python::attach(|py| {
            let (a, b) = (existing.0.bind(py), incoming.0.bind(py));
            let merged = match self.kind {
                ObjKind::Max => {
                    if b.gt(a)? {
                        b.clone()
                    } else {
                        a.clone()
                    }
                }
                ObjKind::Min => {
                    if b.lt(a)? {
                        b.clone()
                    } else {
                        a.clone()
                    }
                }
                ObjKind::Set => a.call_method1("__or__", (b,))?,
                ObjKind::Custom => self
                    .func
                    .as_ref()
                    .expect("custom operators have a function")
                    .bind(py)
                    .call1((a, b))?,
            };
            Ok::<_, PyErr>(PyObj(merged.unbind()))
        })
        .map_err(|e| core::MapletError::Operator(Box::new(e)))
    }
}

// ---- the maplet's state ----------------------------------------------------------

type M<O> = core::Maplet<O>;

/// A maplet, in the storage its values need.
enum Inner {
    Counter(M<Counter>),
    MaxI(M<Max<i64>>),
    MinI(M<Min<i64>>),
    MaxF(M<Max<f64>>),
    MinF(M<Min<f64>>),
    VecF32(M<VectorAdd<f32>>),
    VecF64(M<VectorAdd<f64>>),
    Obj(M<PyOp>),
}

/// Runs `$body` with `$m` bound to the maplet, whatever its storage.
macro_rules! each {
    ($inner:expr, $m:ident => $body:expr) => {
        match $inner {
            Inner::Counter($m) => $body,
            Inner::MaxI($m) => $body,
            Inner::MinI($m) => $body,
            Inner::MaxF($m) => $body,
            Inner::MinF($m) => $body,
            Inner::VecF32($m) => $body,
            Inner::VecF64($m) => $body,
            Inner::Obj($m) => $body,
        }
    };
}

/// The operator a user chose, as the Python operator objects describe it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Spec {
    Counter,
    Max,
    Min,
    Set,
    Vector,
    Custom,
}

/// A number a max or min maplet can pack, or anything else.
enum Num {
    Int(i64),
    Float(f64),
    Other,
}

fn classify(v: &Bound<'_, PyAny>) -> Num {
    if v.is_instance_of::<PyFloat>() {
        return v.extract::<f64>().map(Num::Float).unwrap_or(Num::Other);
    }
    if v.is_instance_of::<PyInt>() {
        return v.extract::<i64>().map(Num::Int).unwrap_or(Num::Other);
    }
    Num::Other
}

/// A counter's value.
fn as_count(v: &Bound<'_, PyAny>) -> PyResult<i64> {
    v.extract::<i64>().map_err(counter_value_error)
}

/// A value for integer max/min storage (which [`Inner::adapt`] chose).
fn as_int(v: &Bound<'_, PyAny>) -> PyResult<i64> {
    match classify(v) {
        Num::Int(i) => Ok(i),
        _ => Err(PyTypeError::new_err("expected an int")),
    }
}

/// A value for float max/min storage: a float, or an int it holds exactly.
fn as_float(v: &Bound<'_, PyAny>) -> PyResult<f64> {
    match classify(v) {
        Num::Float(f) => Ok(f),
        Num::Int(i) if exact_in_f64(i) => Ok(i as f64),
        _ => Err(PyTypeError::new_err("expected a float")),
    }
}

/// A value kept as a Python object: sets as frozensets, others as they are.
fn as_obj(op: &PyOp, v: &Bound<'_, PyAny>) -> PyResult<PyObj> {
    Ok(PyObj(if op.kind == ObjKind::Set {
        to_set(v)?
    } else {
        v.clone().unbind()
    }))
}

/// Whether a float holds `i` exactly.
fn exact_in_f64(i: i64) -> bool {
    (i as f64) as i64 == i && i.unsigned_abs() <= 1 << 53
}

/// A batch's error, noting which item failed.
fn batch_error(py: Python<'_>, index: usize, e: core::MapletError) -> PyErr {
    let err = map_err(py, e);
    let _ = err
        .value(py)
        .call_method1("add_note", (format!("at item {index} of the batch"),));
    err
}

fn f32_array(v: &Bound<'_, PyAny>) -> bool {
    v.extract::<PyReadonlyArray1<'_, f32>>().is_ok()
}

fn to_vector<T>(v: &Bound<'_, PyAny>) -> PyResult<Vec<T>>
where
    T: numpy::Element + Copy + for<'a, 'py> FromPyObject<'a, 'py>,
    f64: AsPrimitive<T>,
    f32: AsPrimitive<T>,
{
    if let Ok(a) = v.extract::<PyReadonlyArray1<'_, f64>>() {
        return Ok(a.as_array().iter().map(|&x| x.as_()).collect());
    }
    if let Ok(a) = v.extract::<PyReadonlyArray1<'_, f32>>() {
        return Ok(a.as_array().iter().map(|&x| x.as_()).collect());
    }
    if v.hasattr("ndim")? && v.getattr("ndim")?.extract::<usize>()? != 1 {
        return Err(PyValueError::new_err(
            "vector values must be one-dimensional",
        ));
    }
    let mut out = Vec::new();
    for x in v
        .try_iter()
        .map_err(|_| PyTypeError::new_err("vector values must be arrays or sequences of numbers"))?
    {
        out.push(x?.extract::<f64>()?.as_());
    }
    Ok(out)
}

/// `as` conversions between the float types.
trait AsPrimitive<T> {
    fn as_(self) -> T;
}
impl AsPrimitive<f32> for f64 {
    fn as_(self) -> f32 {
        self as f32
    }
}
impl AsPrimitive<f64> for f64 {
    fn as_(self) -> f64 {
        self
    }
}
impl AsPrimitive<f32> for f32 {
    fn as_(self) -> f32 {
        self
    }
}
impl AsPrimitive<f64> for f32 {
    fn as_(self) -> f64 {
        self as f64
    }
}

fn to_set(v: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
    if v.is_instance_of::<PyFrozenSet>() {
        return Ok(v.clone().unbind());
    }
    if v.is_instance_of::<PyString>() || v.is_instance_of::<PyBytes>() {
        return Err(PyTypeError::new_err(
            "set values must be sets or iterables of items; wrap a single string as {\"...\"}",
        ));
    }
    Ok(
        PyFrozenSet::new(v.py(), v.try_iter()?.collect::<PyResult<Vec<_>>>()?)?
            .into_any()
            .unbind(),
    )
}

impl Inner {
    fn new(
        spec: Spec,
        func: Option<&Py<PyAny>>,
        py: Python<'_>,
        n: usize,
        rate: f64,
        opts: core::Options,
    ) -> core::Result<Inner> {
        Ok(match spec {
            Spec::Counter => Inner::Counter(M::with_options(n, rate, Counter, opts)?),
            Spec::Max => Inner::MaxI(M::with_options(n, rate, Max::new(), opts)?),
            Spec::Min => Inner::MinI(M::with_options(n, rate, Min::new(), opts)?),
            Spec::Vector => Inner::VecF64(M::with_options(n, rate, VectorAdd::new(), opts)?),
            Spec::Set => Inner::Obj(M::with_options(
                n,
                rate,
                PyOp {
                    kind: ObjKind::Set,
                    func: None,
                },
                opts,
            )?),
            Spec::Custom => Inner::Obj(M::with_options(
                n,
                rate,
                PyOp {
                    kind: ObjKind::Custom,
                    func: func.map(|f| Arc::new(f.clone_ref(py))),
                },
                opts,
            )?),
        })
    }

    /// Moves a numeric max/min maplet to Python-object storage.
    fn convert_to_objects(&mut self, py: Python<'_>) -> PyResult<()> {
        self.replace_with_objects(py).map(drop)
    }

    /// Moves a numeric max/min maplet to Python-object storage and returns
    /// the numeric one it replaced (`None` if there was nothing to move).
    fn replace_with_objects(&mut self, py: Python<'_>) -> PyResult<Option<Box<Inner>>> {
        let obj = |v: PyResult<Bound<'_, PyAny>>| -> core::Result<PyObj> {
            v.map(|b| PyObj(b.unbind()))
                .map_err(|e| core::MapletError::Operator(Box::new(e)))
        };
        let max = PyOp {
            kind: ObjKind::Max,
            func: None,
        };
        let min = PyOp {
            kind: ObjKind::Min,
            func: None,
        };
        let converted = match self {
            Inner::MaxI(m) => m.map_values(max, |v| {
                obj(v
                    .into_pyobject(py)
                    .map(|b| b.into_any())
                    .map_err(Into::into))
            }),
            Inner::MinI(m) => m.map_values(min, |v| {
                obj(v
                    .into_pyobject(py)
                    .map(|b| b.into_any())
                    .map_err(Into::into))
            }),
            Inner::MaxF(m) => m.map_values(max, |v| {
                obj(v
                    .into_pyobject(py)
                    .map(|b| b.into_any())
                    .map_err(Into::into))
            }),
            Inner::MinF(m) => m.map_values(min, |v| {
                obj(v
                    .into_pyobject(py)
                    .map(|b| b.into_any())
                    .map_err(Into::into))
            }),
            _ => return Ok(None),
        };
        let converted = Inner::Obj(converted.map_err(|e| map_err(py, e))?);
        Ok(Some(Box::new(std::mem::replace(self, converted))))
    }

    /// Changes the storage, if `value` needs it, to one that can hold
    /// `value` as well as everything stored (numbers to Python objects; an
    /// empty maplet's first value chooses floats or float32 vectors), as
    /// [`insert`](Inner::insert) would; answers do not change. Returns the
    /// storage it replaced (boxed: the usual answer, no change, is then a
    /// null pointer rather than a whole maplet moved through the stack).
    /// `first`: the maplet is empty and `value` is the first of its batch.
    fn adapt(
        &mut self,
        py: Python<'_>,
        value: &Bound<'_, PyAny>,
        first: bool,
    ) -> PyResult<Option<Box<Inner>>> {
        let numeric_max_min = matches!(
            self,
            Inner::MaxI(_) | Inner::MinI(_) | Inner::MaxF(_) | Inner::MinF(_)
        );
        let new = match self {
            _ if numeric_max_min => match (&*self, classify(value)) {
                (Inner::MaxI(_) | Inner::MinI(_), Num::Int(_)) => return Ok(None),
                (Inner::MaxI(_) | Inner::MinI(_), Num::Float(_)) if first => {
                    let opts = self.options();
                    let (n, rate) = self.sizing();
                    let new = match self {
                        Inner::MaxI(_) => {
                            M::with_options(n, rate, Max::new(), opts).map(Inner::MaxF)
                        }
                        _ => M::with_options(n, rate, Min::new(), opts).map(Inner::MinF),
                    };
                    new.map_err(|e| map_err(py, e))?
                }
                (Inner::MaxF(_) | Inner::MinF(_), Num::Float(_)) => return Ok(None),
                (Inner::MaxF(_) | Inner::MinF(_), Num::Int(i)) if exact_in_f64(i) => {
                    return Ok(None)
                }
                _ => return self.replace_with_objects(py),
            },
            Inner::VecF64(m) if first && f32_array(value) => {
                let (opts, n, rate) = (m.options(), m.expected_items(), m.false_positive_rate());
                Inner::VecF32(
                    M::with_options(n, rate, VectorAdd::new(), opts).map_err(|e| map_err(py, e))?,
                )
            }
            _ => return Ok(None),
        };
        Ok(Some(Box::new(std::mem::replace(self, new))))
    }

    /// Inserts `values` under `hashes`, all or nothing: every value is
    /// converted for the current storage first (which [`adapt`](Inner::adapt)
    /// chose), then the core inserts them as one batch.
    fn insert_all(
        &mut self,
        py: Python<'_>,
        hashes: Vec<u64>,
        values: &[Bound<'_, PyAny>],
    ) -> PyResult<()> {
        fn pairs<T>(
            hashes: Vec<u64>,
            values: &[Bound<'_, PyAny>],
            f: impl Fn(&Bound<'_, PyAny>) -> PyResult<T>,
        ) -> PyResult<Vec<(u64, T)>> {
            hashes
                .into_iter()
                .zip(values)
                .map(|(h, v)| Ok((h, f(v)?)))
                .collect()
        }
        let r = match self {
            Inner::Counter(m) => m.insert_many_hashes(pairs(hashes, values, as_count)?),
            Inner::MaxI(m) => m.insert_many_hashes(pairs(hashes, values, as_int)?),
            Inner::MinI(m) => m.insert_many_hashes(pairs(hashes, values, as_int)?),
            Inner::MaxF(m) => m.insert_many_hashes(pairs(hashes, values, as_float)?),
            Inner::MinF(m) => m.insert_many_hashes(pairs(hashes, values, as_float)?),
            Inner::VecF32(m) => m.insert_many_hashes(pairs(hashes, values, to_vector::<f32>)?),
            Inner::VecF64(m) => m.insert_many_hashes(pairs(hashes, values, to_vector::<f64>)?),
            Inner::Obj(m) => {
                let op = m.operator().clone();
                m.insert_many_hashes(pairs(hashes, values, |v| as_obj(&op, v))?)
            }
        };
        r.map_err(|(i, e)| batch_error(py, i, e))
    }

    /// Inserts one value, changing the storage first if it needs to; if
    /// the insert fails, the storage the maplet had comes back.
    fn insert(&mut self, py: Python<'_>, h: u64, value: &Bound<'_, PyAny>) -> PyResult<()> {
        let original = self.adapt(py, value, self.is_empty())?;
        let r = self.insert_adapted(py, h, value);
        if let (Err(_), Some(original)) = (&r, original) {
            *self = *original;
        }
        r
    }

    /// Inserts a value the storage can hold (see [`adapt`](Inner::adapt)).
    fn insert_adapted(&mut self, py: Python<'_>, h: u64, value: &Bound<'_, PyAny>) -> PyResult<()> {
        let r = match self {
            Inner::Counter(m) => m.insert_hash(h, as_count(value)?),
            Inner::MaxI(m) => m.insert_hash(h, as_int(value)?),
            Inner::MinI(m) => m.insert_hash(h, as_int(value)?),
            Inner::MaxF(m) => m.insert_hash(h, as_float(value)?),
            Inner::MinF(m) => m.insert_hash(h, as_float(value)?),
            Inner::VecF32(m) => m.insert_hash(h, to_vector::<f32>(value)?),
            Inner::VecF64(m) => m.insert_hash(h, to_vector::<f64>(value)?),
            Inner::Obj(m) => {
                let v = as_obj(m.operator(), value)?;
                m.insert_hash(h, v)
            }
        };
        r.map_err(|e| map_err(py, e))
    }

    fn query(&self, py: Python<'_>, h: u64) -> PyResult<Option<Py<PyAny>>> {
        Ok(match self {
            Inner::Counter(m) => m
                .query_hash(h)
                .map(|v| v.into_pyobject(py).map(|b| b.into_any().unbind()))
                .transpose()?,
            Inner::MaxI(m) => m
                .query_hash(h)
                .map(|v| v.into_pyobject(py).map(|b| b.into_any().unbind()))
                .transpose()?,
            Inner::MinI(m) => m
                .query_hash(h)
                .map(|v| v.into_pyobject(py).map(|b| b.into_any().unbind()))
                .transpose()?,
            Inner::MaxF(m) => m
                .query_hash(h)
                .map(|v| PyFloat::new(py, v).into_any().unbind()),
            Inner::MinF(m) => m
                .query_hash(h)
                .map(|v| PyFloat::new(py, v).into_any().unbind()),
            Inner::VecF32(m) => m
                .query_hash(h)
                .map(|v| PyArray1::from_vec(py, v).into_any().unbind()),
            Inner::VecF64(m) => m
                .query_hash(h)
                .map(|v| PyArray1::from_vec(py, v).into_any().unbind()),
            Inner::Obj(m) => m.query_hash(h).map(|v| v.0),
        })
    }

    fn is_empty(&self) -> bool {
        each!(self, m => m.is_empty())
    }
    fn options(&self) -> core::Options {
        each!(self, m => m.options())
    }
    fn sizing(&self) -> (usize, f64) {
        each!(self, m => (m.expected_items(), m.false_positive_rate()))
    }

    fn clone_with(&self, py: Python<'_>) -> Inner {
        // Cloning Python values needs the interpreter, which we hold.
        let _ = py;
        match self {
            Inner::Counter(m) => Inner::Counter(m.clone()),
            Inner::MaxI(m) => Inner::MaxI(m.clone()),
            Inner::MinI(m) => Inner::MinI(m.clone()),
            Inner::MaxF(m) => Inner::MaxF(m.clone()),
            Inner::MinF(m) => Inner::MinF(m.clone()),
            Inner::VecF32(m) => Inner::VecF32(m.clone()),
            Inner::VecF64(m) => Inner::VecF64(m.clone()),
            Inner::Obj(m) => Inner::Obj(m.clone()),
        }
    }
}

fn counter_value_error(e: PyErr) -> PyErr {
    Python::attach(|py| {
        if e.is_instance_of::<pyo3::exceptions::PyOverflowError>(py) {
            raise(
                py,
                "MapletOverflowError",
                "counter values must fit in a signed 64-bit integer".into(),
            )
        } else {
            e
        }
    })
}

// ---- operator classes ------------------------------------------------------------

/// Adds counts: a query never answers less than the true total.
///
/// >>> m = Maplet(100, 0.01, CounterOperator())
/// >>> m.insert("a", 2); m.insert("a", 3); m.query("a")
/// 5
#[pyclass(module = "mappy_python", frozen, eq, from_py_object)]
#[derive(Clone, PartialEq)]
struct CounterOperator;

#[pymethods]
impl CounterOperator {
    #[new]
    fn new() -> Self {
        CounterOperator
    }
    fn __repr__(&self) -> &'static str {
        "CounterOperator()"
    }
}

/// Keeps the largest value (numbers, or any mutually comparable objects): a
/// query never answers less than the true maximum.
#[pyclass(module = "mappy_python", frozen, eq, from_py_object)]
#[derive(Clone, PartialEq)]
struct MaxOperator;

#[pymethods]
impl MaxOperator {
    #[new]
    fn new() -> Self {
        MaxOperator
    }
    fn __repr__(&self) -> &'static str {
        "MaxOperator()"
    }
}

/// Keeps the smallest value: a query never answers more than the true minimum.
#[pyclass(module = "mappy_python", frozen, eq, from_py_object)]
#[derive(Clone, PartialEq)]
struct MinOperator;

#[pymethods]
impl MinOperator {
    #[new]
    fn new() -> Self {
        MinOperator
    }
    fn __repr__(&self) -> &'static str {
        "MinOperator()"
    }
}

/// Unions sets (values: any iterable of hashable items; queries answer a
/// frozenset), never smaller than the true set.
#[pyclass(module = "mappy_python", frozen, eq, from_py_object)]
#[derive(Clone, PartialEq)]
struct SetOperator;

#[pymethods]
impl SetOperator {
    #[new]
    fn new() -> Self {
        SetOperator
    }
    fn __repr__(&self) -> &'static str {
        "SetOperator()"
    }
}

/// Adds vectors element by element (NumPy arrays or sequences of numbers;
/// float32 arrays stay float32). Vectors of different lengths are an error.
#[pyclass(module = "mappy_python", frozen, eq, from_py_object)]
#[derive(Clone, PartialEq)]
struct VectorOperator;

#[pymethods]
impl VectorOperator {
    #[new]
    fn new() -> Self {
        VectorOperator
    }
    fn __repr__(&self) -> &'static str {
        "VectorOperator()"
    }
}

/// Merges with a Python function ``fn(old, new)``; its exceptions propagate
/// and leave the maplet unchanged.
///
/// >>> m = Maplet(100, 0.01, CustomOperator(lambda a, b: a + b * 2))
#[pyclass(module = "mappy_python", frozen)]
struct CustomOperator {
    func: Py<PyAny>,
}

#[pymethods]
impl CustomOperator {
    #[new]
    fn new(func: Bound<'_, PyAny>) -> PyResult<Self> {
        if !func.is_callable() {
            return Err(PyTypeError::new_err(
                "CustomOperator needs a callable merge(old, new)",
            ));
        }
        Ok(CustomOperator {
            func: func.unbind(),
        })
    }
    /// The merge function.
    #[getter]
    fn func(&self, py: Python<'_>) -> Py<PyAny> {
        self.func.clone_ref(py)
    }
    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        Ok(format!("CustomOperator({})", self.func.bind(py).repr()?))
    }
    fn __reduce__(&self, py: Python<'_>) -> PyResult<(Py<PyAny>, (Py<PyAny>,))> {
        Ok((
            py.get_type::<CustomOperator>().into_any().unbind(),
            (self.func.clone_ref(py),),
        ))
    }
    fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
        visit.call(&self.func)
    }
}

fn spec_of(op: Option<&Bound<'_, PyAny>>) -> PyResult<(Spec, Option<Py<PyAny>>)> {
    let Some(op) = op else {
        return Ok((Spec::Counter, None));
    };
    if op.is_instance_of::<CounterOperator>() {
        Ok((Spec::Counter, None))
    } else if op.is_instance_of::<MaxOperator>() {
        Ok((Spec::Max, None))
    } else if op.is_instance_of::<MinOperator>() {
        Ok((Spec::Min, None))
    } else if op.is_instance_of::<SetOperator>() {
        Ok((Spec::Set, None))
    } else if op.is_instance_of::<VectorOperator>() {
        Ok((Spec::Vector, None))
    } else if let Ok(c) = op.cast::<CustomOperator>() {
        Ok((Spec::Custom, Some(c.get().func.clone_ref(op.py()))))
    } else {
        Err(PyTypeError::new_err(format!(
            "operator must be CounterOperator(), MaxOperator(), MinOperator(), SetOperator(), \
             VectorOperator() or CustomOperator(fn), not {}",
            op.repr()?
        )))
    }
}

// ---- statistics ------------------------------------------------------------------

/// Size and accuracy figures of a maplet (from ``Maplet.stats()``).
#[pyclass(module = "mappy_python", frozen, get_all)]
struct Stats {
    /// Stored entries (distinct fingerprints).
    item_count: usize,
    /// Home slots (grows by doubling).
    capacity: u64,
    /// ``item_count / capacity``; the maplet doubles before this passes 0.95.
    load_factor: f64,
    /// Bytes of memory held by the slot table and the side store, with the
    /// stored Python objects at their ``sys.getsizeof`` (shallow) size.
    memory_usage: usize,
    /// ``memory_usage * 8 / item_count``.
    bits_per_item: f64,
    /// The configured false-positive rate.
    false_positive_rate: f64,
    /// The false-positive rate expected now, from the stored fingerprints.
    expected_false_positive_rate: f64,
}

#[pymethods]
impl Stats {
    fn __repr__(&self) -> String {
        format!(
            "Stats(item_count={}, capacity={}, load_factor={:.4}, memory_usage={}, bits_per_item={:.2}, \
             false_positive_rate={}, expected_false_positive_rate={:.6})",
            self.item_count,
            self.capacity,
            self.load_factor,
            self.memory_usage,
            self.bits_per_item,
            self.false_positive_rate,
            self.expected_false_positive_rate
        )
    }
}

// ---- the Maplet class ---------------------------------------------------------------

/// A token of the calling thread, never 0: its interpreter thread state,
/// which no other live thread shares. (A thread-local of our own would do
/// as well, but in an extension module each read of one is a call into the
/// dynamic loader, a large part of a single lookup's cost.)
fn thread_token(_py: Python<'_>) -> u64 {
    // SAFETY: the `Python` token proves this thread is attached to the
    // interpreter, so it has a current thread state and the call cannot fail.
    #[allow(unsafe_code)]
    let state = unsafe { pyo3::ffi::PyThreadState_Get() };
    state as usize as u64
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
struct Maplet {
    state: StateLock,
    /// The hash seed (fixed for the maplet's life; kept here so hashing a
    /// key needs no lock).
    seed: u64,
    spec: Spec,
    func: Option<Py<PyAny>>,
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
struct StateLock {
    /// Whether a thread holds the state.
    held: AtomicBool,
    /// Thread token of the holder, 0 when free: tells a merge function that
    /// re-enters its own maplet (which would wait forever) from contention.
    owner: AtomicU64,
    state: UnsafeCell<Inner>,
}

// SAFETY: the state is reached only through a `Locked`, and `try_lock`
// hands out at most one at a time; `Inner` is `Send`, so whichever thread
// holds the lock may use it.
#[allow(unsafe_code)]
unsafe impl Sync for StateLock {}

impl StateLock {
    fn new(inner: Inner) -> StateLock {
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
    fn try_lock(&self, token: u64) -> Option<Locked<'_>> {
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
struct Locked<'a> {
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

impl Maplet {
    /// Locks the state. The common case, nobody holding it, is inlined;
    /// otherwise the thread waits detached, so that the holder can take the
    /// interpreter to finish.
    #[inline]
    fn lock(&self, py: Python<'_>) -> PyResult<Locked<'_>> {
        match self.state.try_lock(thread_token(py)) {
            Some(locked) => Ok(locked),
            None => self.lock_contended(py),
        }
    }

    #[cold]
    #[inline(never)]
    fn lock_contended(&self, py: Python<'_>) -> PyResult<Locked<'_>> {
        let me = thread_token(py);
        let mut pause = Duration::from_micros(2);
        let mut tries = 0u32;
        loop {
            if let Some(locked) = self.state.try_lock(me) {
                return Ok(locked);
            }
            if self.state.owner.load(Ordering::Relaxed) == me {
                return Err(PyRuntimeError::new_err(
                    "a maplet's merge function used the same maplet: that would deadlock",
                ));
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
            tries += 1;
        }
    }

    fn seed(&self, _py: Python<'_>) -> PyResult<u64> {
        Ok(self.seed)
    }

    fn from_inner(inner: Inner, spec: Spec, func: Option<Py<PyAny>>) -> Maplet {
        let seed = each!(&inner, m => m.seed());
        Maplet {
            state: StateLock::new(inner),
            seed,
            spec,
            func,
        }
    }

    fn operator_object<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        Ok(match self.spec {
            Spec::Counter => Bound::new(py, CounterOperator)?.into_any(),
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

    fn to_bytes_inner(&self, py: Python<'_>) -> PyResult<Vec<u8>> {
        let state = self.lock(py)?;
        let r = match &*state {
            Inner::Counter(m) => Ok(m.to_bytes()),
            Inner::MaxI(m) => Ok(m.to_bytes()),
            Inner::MinI(m) => Ok(m.to_bytes()),
            Inner::MaxF(m) => Ok(m.to_bytes()),
            Inner::MinF(m) => Ok(m.to_bytes()),
            Inner::VecF32(m) => Ok(m.to_bytes()),
            Inner::VecF64(m) => Ok(m.to_bytes()),
            Inner::Obj(m) => {
                let pickle = py.import("pickle")?;
                m.to_bytes_with(|v, out| {
                    let b = pickle
                        .call_method1("dumps", (v.0.bind(py),))
                        .map_err(|e| core::MapletError::Operator(Box::new(e)))?;
                    out.extend_from_slice(
                        b.cast::<PyBytes>()
                            .map_err(|e| core::MapletError::Operator(Box::new(PyErr::from(e))))?
                            .as_bytes(),
                    );
                    Ok(())
                })
            }
        };
        r.map_err(|e| map_err(py, e))
    }
}

/// Reads a saved maplet of whatever operator it holds.
fn inner_from_bytes(
    py: Python<'_>,
    data: &[u8],
    func: Option<&Py<PyAny>>,
) -> PyResult<(Inner, Spec)> {
    if data.len() < 624 || data[..8] != core::format::MAGIC {
        return Err(raise(
            py,
            "CorruptDataError",
            "corrupt maplet data: not a maplet".into(),
        ));
    }
    let code = data[16];
    let name_len = u32::from_le_bytes(data[20..24].try_into().unwrap()) as usize;
    let name = data
        .get(616..616 + name_len)
        .and_then(|n| std::str::from_utf8(n).ok())
        .unwrap_or("");
    let e = |err| map_err(py, err);
    Ok(match code {
        1 => (
            Inner::Counter(M::from_bytes(data, Counter).map_err(e)?),
            Spec::Counter,
        ),
        2 => (
            Inner::MaxI(M::from_bytes(data, Max::new()).map_err(e)?),
            Spec::Max,
        ),
        3 => (
            Inner::MinI(M::from_bytes(data, Min::new()).map_err(e)?),
            Spec::Min,
        ),
        4 => (
            Inner::MaxF(M::from_bytes(data, Max::new()).map_err(e)?),
            Spec::Max,
        ),
        5 => (
            Inner::MinF(M::from_bytes(data, Min::new()).map_err(e)?),
            Spec::Min,
        ),
        7 => (
            Inner::VecF32(M::from_bytes(data, VectorAdd::new()).map_err(e)?),
            Spec::Vector,
        ),
        8 => (
            Inner::VecF64(M::from_bytes(data, VectorAdd::new()).map_err(e)?),
            Spec::Vector,
        ),
        9 => {
            let (kind, spec) = match name {
                "python-max" => (ObjKind::Max, Spec::Max),
                "python-min" => (ObjKind::Min, Spec::Min),
                "python-set" => (ObjKind::Set, Spec::Set),
                "python-custom" => (ObjKind::Custom, Spec::Custom),
                other => {
                    return Err(raise(
                        py,
                        "IncompatibleMapletsError",
                        format!("operator {other:?} is not one of this package's"),
                    ))
                }
            };
            if kind == ObjKind::Custom && func.is_none() {
                return Err(PyValueError::new_err(
                    "this maplet was built with a CustomOperator: pass operator=CustomOperator(fn) to load it",
                ));
            }
            let op = PyOp {
                kind,
                func: func
                    .filter(|_| kind == ObjKind::Custom)
                    .map(|f| Arc::new(f.clone_ref(py))),
            };
            let pickle = py.import("pickle")?;
            let m = M::from_bytes_with(data, op, |b| {
                pickle
                    .call_method1("loads", (PyBytes::new(py, b),))
                    .map(|o| PyObj(o.unbind()))
                    .map_err(|e| core::MapletError::Operator(Box::new(e)))
            })
            .map_err(e)?;
            (Inner::Obj(m), spec)
        }
        other => {
            return Err(raise(
                py,
                "CorruptDataError",
                format!("corrupt maplet data: unknown operator code {other}"),
            ))
        }
    })
}

impl Maplet {
    /// `insert(key, value)`: see [`fastcall`], which puts it on the class.
    #[inline]
    fn insert_key(
        &self,
        py: Python<'_>,
        key: &Bound<'_, PyAny>,
        value: &Bound<'_, PyAny>,
    ) -> PyResult<()> {
        let h = hash_key(key, self.seed)?;
        guarded(py, || self.lock(py)?.insert(py, h, value))
    }

    /// `query(key)`: see [`fastcall`].
    #[inline]
    fn query_key(&self, py: Python<'_>, key: &Bound<'_, PyAny>) -> PyResult<Option<Py<PyAny>>> {
        let h = hash_key(key, self.seed)?;
        let state = self.lock(py)?;
        guarded(py, || state.query(py, h))
    }

    /// `contains(key)`: see [`fastcall`].
    #[inline]
    fn contains_key(&self, py: Python<'_>, key: &Bound<'_, PyAny>) -> PyResult<bool> {
        let h = hash_key(key, self.seed)?;
        let state = self.lock(py)?;
        Ok(each!(&*state, m => m.contains_hash(h)))
    }
}

#[pymethods]
impl Maplet {
    /// Maplet(expected_items, false_positive_rate, operator=CounterOperator(), *, memory_limit_mb=None, seed=None)
    ///
    /// A maplet sized for ``expected_items`` distinct keys at
    /// ``false_positive_rate``; it grows past that size when needed.
    /// ``memory_limit_mb`` caps its memory: an operation that would need more
    /// raises ``MemoryLimitError`` and changes nothing. ``fixed_precision``
    /// keeps every fingerprint the same length however the maplet grows (3
    /// more bits per item), so that maplets which grew differently still
    /// merge into exactly what one maplet that saw every insert would hold.
    #[new]
    #[pyo3(signature = (expected_items, false_positive_rate, operator=None, *, memory_limit_mb=None, seed=None, fixed_precision=false))]
    fn new(
        py: Python<'_>,
        expected_items: &Bound<'_, PyAny>,
        false_positive_rate: f64,
        operator: Option<&Bound<'_, PyAny>>,
        memory_limit_mb: Option<f64>,
        seed: Option<u64>,
        fixed_precision: bool,
    ) -> PyResult<Self> {
        let n: i64 = expected_items
            .extract()
            .map_err(|_| PyTypeError::new_err("expected_items must be an int"))?;
        if n <= 0 {
            return Err(raise(
                py,
                "InvalidParameterError",
                format!("invalid parameter: expected_items must be at least 1, got {n}"),
            ));
        }
        let memory_limit = match memory_limit_mb {
            Some(mb) if !(mb > 0.0 && mb.is_finite()) => {
                return Err(raise(
                    py,
                    "InvalidParameterError",
                    format!("invalid parameter: memory_limit_mb must be positive, got {mb}"),
                ))
            }
            Some(mb) => Some((mb * 1024.0 * 1024.0) as usize),
            None => None,
        };
        let (spec, func) = spec_of(operator)?;
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
        )
        .map_err(|e| map_err(py, e))?;
        Ok(Maplet::from_inner(inner, spec, func))
    }

    fn __contains__(&self, py: Python<'_>, key: &Bound<'_, PyAny>) -> PyResult<bool> {
        self.contains_key(py, key)
    }

    fn __getitem__(&self, py: Python<'_>, key: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        self.query_key(py, key)?
            .ok_or_else(|| PyKeyError::new_err(key.clone().unbind()))
    }

    fn __len__(&self, py: Python<'_>) -> PyResult<usize> {
        Ok(each!(&*self.lock(py)?, m => m.len()))
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
    /// found. Keys sharing the fingerprint share the entry.
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
        let h = hash_key(key, self.seed)?;
        let mut state = self.lock(py)?;
        let r = match (&mut *state, value) {
            (Inner::Counter(m), Some(v)) => {
                m.delete_hash(h, &v.extract::<i64>().map_err(counter_value_error)?)
            }
            (inner, _) => each!(inner, m => m.remove_hash(h)),
        };
        r.map_err(|e| map_err(py, e))
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
        let seed = self.seed(py)?;
        let (keys, vals): (Vec<u64>, Vec<Bound<'_, PyAny>>);
        // Counts as a NumPy int64 array for a NumPy integer array of keys:
        // both read in place, in one pass.
        if let (Some(v), Spec::Counter) = (values, self.spec) {
            if let Ok(counts) = v.extract::<PyReadonlyArray1<'_, i64>>() {
                let counts = counts.as_array();
                let pairs = if let Ok(a) = pairs_or_keys.extract::<PyReadonlyArray1<'_, u64>>() {
                    paired(a.as_array(), counts, hash::hash_u64, seed)
                } else if let Ok(a) = pairs_or_keys.extract::<PyReadonlyArray1<'_, i64>>() {
                    paired(a.as_array(), counts, hash::hash_i64, seed)
                } else {
                    None
                };
                if let Some(pairs) = pairs {
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
                let mut reader = CountReader::default();
                let counts = keys
                    .iter()
                    .zip(counts.iter())
                    .map(|(k, x)| Ok((hash_key(&k, seed)?, reader.read(&x)?)))
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
                for pair in pairs_or_keys.try_iter()? {
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
        let v = numpy_vals.unwrap();
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
                let mut reader = CountReader::default();
                let counts = hashes
                    .into_iter()
                    .zip(list.iter())
                    .map(|(h, x)| Ok((h, reader.read(&x)?)))
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
        let (hashes, is_array) = hash_keys(keys, self.seed(py)?)?;
        if self.spec == Spec::Counter {
            let state = self.lock(py)?;
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
        let state = self.lock(py)?;
        let out = hashes
            .iter()
            .map(|&h| state.query(py, h))
            .collect::<PyResult<Vec<_>>>()?;
        Ok(PyList::new(py, out)?.into_any().unbind())
    }

    /// batch_contains(keys)
    ///
    /// Membership of many keys (a NumPy bool array for NumPy input).
    ///
    /// >>> m = Maplet(100, 0.01); m.insert("a", 1); m.batch_contains(["a", "b"])
    /// [True, False]
    fn batch_contains(&self, py: Python<'_>, keys: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        let (hashes, is_array) = hash_keys(keys, self.seed(py)?)?;
        let state = self.lock(py)?;
        let answers = py.detach(|| each!(&*state, m => m.contains_many_hashes(&hashes)));
        drop(state);
        if is_array {
            Ok(PyArray1::from_vec(py, answers).into_any().unbind())
        } else {
            Ok(PyList::new(py, answers)?.into_any().unbind())
        }
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
        let mut state = self.lock(py)?;
        each!(&mut *state, m => m.clear()).map_err(|e| map_err(py, e))
    }

    /// copy()
    ///
    /// An independent copy (in memory and writable, even of a memory-mapped
    /// maplet).
    ///
    /// >>> m = Maplet(100, 0.01); c = m.copy(); c.insert("a", 1); "a" in m
    /// False
    fn copy(&self, py: Python<'_>) -> PyResult<Maplet> {
        let inner = self.lock(py)?.clone_with(py);
        Ok(Maplet::from_inner(
            inner,
            self.spec,
            self.func.as_ref().map(|f| f.clone_ref(py)),
        ))
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
    /// otherwise, nothing changed).
    ///
    /// >>> a, b = Maplet(100, 0.01), Maplet(100, 0.01); a.insert("k", 1); b.insert("k", 2)
    /// >>> a.merge(b); a.query("k"), (a | b).query("k")
    /// (3, 5)
    fn merge(slf: &Bound<'_, Self>, other: &Bound<'_, Maplet>) -> PyResult<()> {
        let py = slf.py();
        if slf.is(other) {
            let copy = slf.get().copy(py)?;
            return Self::merge(slf, &Bound::new(py, copy)?);
        }
        let other_inner = other.get().lock(py)?.clone_with(py);
        let mut state = slf.get().lock(py)?;
        let r = match (&mut *state, &other_inner) {
            (Inner::Counter(a), Inner::Counter(b)) => a.merge(b),
            (Inner::MaxI(a), Inner::MaxI(b)) => a.merge(b),
            (Inner::MinI(a), Inner::MinI(b)) => a.merge(b),
            (Inner::MaxF(a), Inner::MaxF(b)) => a.merge(b),
            (Inner::MinF(a), Inner::MinF(b)) => a.merge(b),
            (Inner::VecF32(a), Inner::VecF32(b)) => a.merge(b),
            (Inner::VecF64(a), Inner::VecF64(b)) => a.merge(b),
            (Inner::Obj(a), Inner::Obj(b)) => a.merge(b),
            (a, b) if slf.get().spec == other.get().spec && (a.is_empty() || b.is_empty()) => {
                if a.is_empty() {
                    let check =
                        each!(&*a, m => (m.seed(), m.expected_items(), m.false_positive_rate()));
                    let theirs =
                        each!(b, m => (m.seed(), m.expected_items(), m.false_positive_rate()));
                    if check == theirs {
                        *a = b.clone_with(py);
                        return Ok(());
                    }
                }
                Err(core::MapletError::Incompatible(
                    "the maplets differ in parameters or seed".into(),
                ))
            }
            (a, b) => {
                // Numeric max/min against object storage: move both to objects.
                if slf.get().spec == other.get().spec
                    && matches!(slf.get().spec, Spec::Max | Spec::Min)
                {
                    a.convert_to_objects(py)?;
                    let mut b = b.clone_with(py);
                    b.convert_to_objects(py)?;
                    match (&mut *a, &b) {
                        (Inner::Obj(x), Inner::Obj(y)) => x.merge(y),
                        _ => Err(core::MapletError::Incompatible("storage mismatch".into())),
                    }
                } else {
                    Err(core::MapletError::Incompatible(format!(
                        "operators differ ({:?} and {:?})",
                        slf.get().spec,
                        other.get().spec
                    )))
                }
            }
        };
        r.map_err(|e| map_err(py, e))
    }

    /// ``a | b``: a new maplet merging both.
    fn __or__(slf: &Bound<'_, Self>, other: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        let py = slf.py();
        let Ok(other) = other.cast::<Maplet>() else {
            return Ok(py.NotImplemented());
        };
        let out = Bound::new(py, slf.get().copy(py)?)?;
        Self::merge(&out, other)?;
        Ok(out.into_any().unbind())
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
        let state = self.lock(py)?;
        let s = each!(&*state, m => m.stats());
        // Python values count with their own (shallow) size.
        let mut objects = 0usize;
        if let Inner::Obj(m) = &*state {
            let getsizeof = py.import("sys")?.getattr("getsizeof")?;
            for v in m.stored_values() {
                objects += getsizeof.call1((v.0.bind(py),))?.extract::<usize>()?;
            }
        }
        let memory_usage = s.memory_usage + objects;
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
    }

    /// The number of distinct keys the maplet was sized for.
    #[getter]
    fn expected_items(&self, py: Python<'_>) -> PyResult<usize> {
        Ok(each!(&*self.lock(py)?, m => m.expected_items()))
    }

    /// The configured false-positive rate.
    #[getter]
    fn false_positive_rate(&self, py: Python<'_>) -> PyResult<f64> {
        Ok(each!(&*self.lock(py)?, m => m.false_positive_rate()))
    }

    /// Home slots now; doubles when the maplet grows.
    #[getter]
    fn capacity(&self, py: Python<'_>) -> PyResult<u64> {
        Ok(each!(&*self.lock(py)?, m => m.capacity()))
    }

    /// The hash seed.
    #[getter(seed)]
    fn get_seed(&self, py: Python<'_>) -> PyResult<u64> {
        self.seed(py)
    }

    /// The merge operator.
    #[getter]
    fn operator<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        self.operator_object(py)
    }

    /// Whether the maplet is memory-mapped, and so read-only.
    #[getter]
    fn read_only(&self, py: Python<'_>) -> PyResult<bool> {
        Ok(each!(&*self.lock(py)?, m => m.is_read_only()))
    }

    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        let (len, cap, rate) =
            each!(&*self.lock(py)?, m => (m.len(), m.capacity(), m.false_positive_rate()));
        Ok(format!(
            "Maplet(operator={}, len={len}, capacity={cap}, false_positive_rate={rate})",
            self.operator_object(py)?.repr()?
        ))
    }

    // ---- persistence ---------------------------------------------------------------

    /// to_bytes()
    ///
    /// The maplet in the file format of ``docs/FORMAT.md`` (about
    /// ``stats().memory_usage`` bytes; object values are pickled).
    ///
    /// >>> m = Maplet(100, 0.01); m.insert("a", 1); Maplet.from_bytes(m.to_bytes()).query("a")
    /// 1
    fn to_bytes<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyBytes>> {
        let b = self.to_bytes_inner(py)?;
        Ok(PyBytes::new(py, &b))
    }

    /// from_bytes(data, operator=None)
    ///
    /// A maplet from ``to_bytes()`` output; ``operator`` is needed only for a
    /// ``CustomOperator``. Raises ``CorruptDataError`` for damaged data.
    ///
    /// >>> Maplet.from_bytes(b"not a maplet")
    /// Traceback (most recent call last):
    /// CorruptDataError: corrupt maplet data: not a maplet
    #[classmethod]
    #[pyo3(signature = (data, operator=None))]
    fn from_bytes(
        _cls: &Bound<'_, PyType>,
        py: Python<'_>,
        data: &[u8],
        operator: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Maplet> {
        let func = match operator {
            Some(op) => spec_of(Some(op))?.1,
            None => None,
        };
        let (inner, spec) = guarded(py, || inner_from_bytes(py, data, func.as_ref()))?;
        Ok(Maplet::from_inner(inner, spec, func))
    }

    /// save(path)
    ///
    /// Writes the maplet to ``path`` atomically (a temporary file, flushed,
    /// then renamed), so a crash never leaves a damaged file.
    ///
    /// >>> import os, tempfile; p = os.path.join(tempfile.mkdtemp(), "m.maplet")
    /// >>> m = Maplet(100, 0.01); m.insert("a", 1); m.save(p); Maplet.load(p).query("a")
    /// 1
    fn save(&self, py: Python<'_>, path: std::path::PathBuf) -> PyResult<()> {
        let state = self.lock(py)?;
        // Packed values stream to the file, detached; Python objects are
        // pickled attached, then written.
        let r = py.detach(|| match &*state {
            Inner::Counter(m) => Some(m.save(&path)),
            Inner::MaxI(m) => Some(m.save(&path)),
            Inner::MinI(m) => Some(m.save(&path)),
            Inner::MaxF(m) => Some(m.save(&path)),
            Inner::MinF(m) => Some(m.save(&path)),
            Inner::VecF32(m) => Some(m.save(&path)),
            Inner::VecF64(m) => Some(m.save(&path)),
            Inner::Obj(_) => None,
        });
        drop(state);
        let r = match r {
            Some(r) => r,
            None => {
                let bytes = self.to_bytes_inner(py)?;
                py.detach(|| core::format::write_atomic(&path, &bytes))
            }
        };
        r.map_err(|e| map_err(py, e))
    }

    /// load(path, operator=None, *, mmap=False)
    ///
    /// Reads a saved maplet. With ``mmap=True`` (counters and numeric
    /// max/min), maps the file read-only instead of reading it: opening
    /// takes milliseconds whatever the size, and processes share the pages;
    /// writes raise ``ReadOnlyError``.
    ///
    /// >>> import os, tempfile; p = os.path.join(tempfile.mkdtemp(), "m.maplet")
    /// >>> Maplet(100, 0.01).save(p); Maplet.load(p, mmap=True).read_only
    /// True
    #[classmethod]
    #[pyo3(signature = (path, operator=None, *, mmap=false))]
    fn load(
        cls: &Bound<'_, PyType>,
        py: Python<'_>,
        path: std::path::PathBuf,
        operator: Option<&Bound<'_, PyAny>>,
        mmap: bool,
    ) -> PyResult<Maplet> {
        if !mmap {
            let data = py.detach(|| std::fs::read(&path)).map_err(PyErr::from)?;
            return Self::from_bytes(cls, py, &data, operator);
        }
        let mut head = [0u8; 17];
        {
            use std::io::Read;
            let mut f = std::fs::File::open(&path)?;
            f.read_exact(&mut head).map_err(|_| {
                raise(
                    py,
                    "CorruptDataError",
                    "corrupt maplet data: too short".into(),
                )
            })?;
        }
        let e = |err| map_err(py, err);
        let (inner, spec) = match head[16] {
            1 => (
                Inner::Counter(M::load_mmap(&path, Counter).map_err(e)?),
                Spec::Counter,
            ),
            2 => (
                Inner::MaxI(M::load_mmap(&path, Max::new()).map_err(e)?),
                Spec::Max,
            ),
            3 => (
                Inner::MinI(M::load_mmap(&path, Min::new()).map_err(e)?),
                Spec::Min,
            ),
            4 => (
                Inner::MaxF(M::load_mmap(&path, Max::new()).map_err(e)?),
                Spec::Max,
            ),
            5 => (
                Inner::MinF(M::load_mmap(&path, Min::new()).map_err(e)?),
                Spec::Min,
            ),
            _ => return Err(raise(
                py,
                "InvalidParameterError",
                "invalid parameter: only counters and numeric max/min maplets can be memory-mapped"
                    .into(),
            )),
        };
        Ok(Maplet::from_inner(inner, spec, None))
    }

    fn __reduce__<'py>(
        slf: &Bound<'py, Self>,
    ) -> PyResult<(Bound<'py, PyAny>, Bound<'py, PyTuple>)> {
        let py = slf.py();
        let data = slf.get().to_bytes(py)?;
        let restore = py.get_type::<Maplet>().getattr("_restore")?;
        let func = slf
            .get()
            .func
            .as_ref()
            .map(|f| f.clone_ref(py))
            .unwrap_or_else(|| py.None());
        Ok((
            restore,
            PyTuple::new(py, [data.into_any(), func.into_bound(py)])?,
        ))
    }

    /// Unpickling: a maplet from its bytes and, for custom operators, its
    /// merge function.
    #[staticmethod]
    fn _restore(py: Python<'_>, data: &[u8], func: Option<Py<PyAny>>) -> PyResult<Maplet> {
        let func = func.filter(|f| !f.is_none(py));
        let (inner, spec) = guarded(py, || inner_from_bytes(py, data, func.as_ref()))?;
        Ok(Maplet::from_inner(inner, spec, func))
    }

    fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
        if let Some(f) = &self.func {
            visit.call(f)?;
        }
        // Never block in the collector: a maplet in use is skipped. (The
        // collector runs attached, with no thread state to use as token.)
        if let Some(state) = self.state.try_lock(u64::MAX) {
            if let Inner::Obj(m) = &*state {
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
            if let Inner::Obj(m) = &mut *state {
                let _ = m.clear();
            }
        }
    }
}

/// Values converted for insertion.
enum ValuesIn<'py> {
    Ints(Vec<i64>),
    Objects(Vec<Bound<'py, PyAny>>),
}

impl Maplet {
    /// Inserts hashes with packed integers into a counter or integer
    /// max/min maplet, detached from the interpreter.
    fn insert_counts(&self, py: Python<'_>, counts: Counts) -> PyResult<()> {
        let mut state = self.lock(py)?;
        let r = py.detach(|| match &mut *state {
            Inner::Counter(m) => counts.insert_into(m),
            Inner::MaxI(m) => counts.insert_into(m),
            Inner::MinI(m) => counts.insert_into(m),
            _ => unreachable!("a counter or integer max/min maplet"),
        });
        drop(state);
        r.map_err(|(i, e)| batch_error(py, i, e))
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
                let mut reader = CountReader::default();
                Some(vs.iter().map(|v| reader.read(v)).collect::<PyResult<_>>()?)
            }
            (ValuesIn::Objects(vs), Spec::Max | Spec::Min)
                if matches!(&*self.lock(py)?, Inner::MaxI(_) | Inner::MinI(_)) =>
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
        let floats: Option<Vec<f64>> = match (&values, &*self.lock(py)?) {
            (ValuesIn::Objects(vs), Inner::MaxF(_) | Inner::MinF(_)) => vs
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
            let mut state = self.lock(py)?;
            let r = py.detach(|| match &mut *state {
                Inner::MaxF(m) => m.insert_many_hashes(pairs),
                Inner::MinF(m) => m.insert_many_hashes(pairs),
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
        let mut state = self.lock(py)?;
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
            r = state.insert_all(py, hashes, &vs);
        }
        if r.is_err() {
            if let Some(original) = original {
                *state = *original;
            }
        }
        r
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
fn merge(py: Python<'_>, maplets: &Bound<'_, PyAny>) -> PyResult<Py<Maplet>> {
    let mut it = maplets.try_iter()?;
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
        Maplet::merge(&out, m)?;
    }
    Ok(out.unbind())
}

/// count_kmers(maplet, sequences_or_paths, k, canonical=True, threads=None)
///
/// Counts the k-mers (1 <= k <= 32) of DNA sequences into a counter maplet:
/// ``sequences_or_paths`` is a FASTA/FASTQ path (plain or gzip), a list of
/// paths, or an iterable of sequences (str or bytes). k-mers spanning a base
/// other than ACGT are skipped; ``canonical`` counts each k-mer with its
/// reverse complement. Keys are the (canonical) k-mer strings, so
/// ``maplet.query(canonical_kmer("ACG"))`` finds them. Returns counts of
/// what was read. The work runs without the GIL, on ``threads`` cores.
///
/// >>> m = Maplet(100, 0.001); count_kmers(m, ["ACGTAC"], 3)["kmers"], m.query(canonical_kmer("GTA"))
/// (4, 2)
#[pyfunction]
#[pyo3(signature = (maplet, sequences_or_paths, k, canonical=true, threads=None))]
fn count_kmers<'py>(
    py: Python<'py>,
    maplet: &Bound<'py, Maplet>,
    sequences_or_paths: &Bound<'py, PyAny>,
    k: usize,
    canonical: bool,
    threads: Option<usize>,
) -> PyResult<Bound<'py, PyDict>> {
    if maplet.get().spec != Spec::Counter {
        return Err(PyTypeError::new_err(
            "count_kmers needs a maplet with CounterOperator()",
        ));
    }
    let as_path = |o: &Bound<'py, PyAny>| -> Option<std::path::PathBuf> {
        if o.is_instance_of::<PyString>() || o.hasattr("__fspath__").unwrap_or(false) {
            o.extract::<std::path::PathBuf>().ok()
        } else {
            None
        }
    };
    let (paths, seqs): (Vec<std::path::PathBuf>, Vec<Vec<u8>>) = match as_path(sequences_or_paths) {
        Some(p)
            if !sequences_or_paths.is_instance_of::<PyString>()
                || std::path::Path::new(&p).exists()
                || !p
                    .to_string_lossy()
                    .bytes()
                    .all(|b| b"ACGTNacgtn".contains(&b)) =>
        {
            (vec![p], Vec::new())
        }
        _ => {
            let mut paths = Vec::new();
            let mut seqs = Vec::new();
            let items: Vec<Bound<'py, PyAny>> = if sequences_or_paths.is_instance_of::<PyString>() {
                vec![sequences_or_paths.clone()]
            } else {
                sequences_or_paths.try_iter()?.collect::<PyResult<_>>()?
            };
            for item in items {
                if let Ok(b) = item.cast::<PyBytes>() {
                    seqs.push(b.as_bytes().to_vec());
                } else if let Ok(s) = item.cast::<PyString>() {
                    let text = s.to_str()?;
                    if std::path::Path::new(text).exists() {
                        paths.push(text.into());
                    } else {
                        seqs.push(text.as_bytes().to_vec());
                    }
                } else if let Some(p) = as_path(&item) {
                    paths.push(p);
                } else {
                    return Err(PyTypeError::new_err(
                        "count_kmers takes paths or sequences (str or bytes)",
                    ));
                }
            }
            if !paths.is_empty() && !seqs.is_empty() {
                return Err(PyTypeError::new_err(
                    "count_kmers takes paths or sequences, not both",
                ));
            }
            (paths, seqs)
        }
    };
    let m = maplet.get();
    let mut state = m.lock(py)?;
    let stats = py.detach(|| match &mut *state {
        Inner::Counter(c) => {
            if paths.is_empty() {
                core::kmer::count_sequences(c, seqs.iter().map(|s| s.as_slice()), k, canonical)
            } else {
                core::kmer::count_files(c, &paths, k, canonical, threads)
            }
        }
        _ => unreachable!("checked above"),
    });
    drop(state);
    let stats = stats.map_err(|e| map_err(py, e))?;
    let out = PyDict::new(py);
    out.set_item("sequences", stats.sequences)?;
    out.set_item("bases", stats.bases)?;
    out.set_item("kmers", stats.kmers)?;
    out.set_item("skipped", stats.skipped)?;
    Ok(out)
}

/// count_kmers_to_file(paths, output, k, expected_items, false_positive_rate=0.001, *, canonical=True, threads=None, seed=None, partitions=1, progress=None)
///
/// Counts the k-mers of FASTA/FASTQ files (plain or gzip) into a new
/// counter maplet for ``expected_items`` distinct k-mers and saves it at
/// ``output`` (atomically: on error the file is left as it was). Returns
/// what :func:`count_kmers` returns, with ``distinct`` (the saved maplet's
/// entries) and ``expected_items`` (the ones it was built for: twice or
/// more the ones asked for when the k-mers did not fit them).
///
/// With ``partitions`` above 1 the maplet's table is never whole in memory:
/// the k-mers are split into that many parts in scratch files beside
/// ``output`` (8 bytes per k-mer, plus 24 per distinct k-mer), each part
/// is counted on its own (``threads`` parts at once), and the table is
/// written out as it is built. Memory is then about ``threads /
/// partitions`` of the table's; the file saved is the same.
///
/// ``progress``, if given, is called now and then (at most ten times a
/// second) as ``progress(stage, done, total)``: ``"reading"`` with the
/// k-mers read so far, ``"counting"`` with the parts counted, ``"saving"``
/// with the entries written; ``total`` is ``None`` where not known. An
/// exception from it (such as ``KeyboardInterrupt``) stops the work and is
/// raised; the output is then left as it was.
///
/// >>> import os, tempfile
/// >>> d = tempfile.mkdtemp(); reads = os.path.join(d, "r.fa")
/// >>> _ = open(reads, "w").write(">r\nACGTACGTAC\n")
/// >>> out = os.path.join(d, "k.maplet")
/// >>> count_kmers_to_file([reads], out, 4, 10, partitions=2)["distinct"]
/// 3
/// >>> Maplet.load(out).query("ACGT")
/// 2
#[pyfunction]
#[pyo3(signature = (paths, output, k, expected_items, false_positive_rate=0.001, *, canonical=true, threads=None, seed=None, partitions=1, progress=None))]
#[allow(clippy::too_many_arguments)]
fn count_kmers_to_file<'py>(
    py: Python<'py>,
    paths: Vec<std::path::PathBuf>,
    output: std::path::PathBuf,
    k: usize,
    expected_items: usize,
    false_positive_rate: f64,
    canonical: bool,
    threads: Option<usize>,
    seed: Option<u64>,
    partitions: usize,
    progress: Option<Py<PyAny>>,
) -> PyResult<Bound<'py, PyDict>> {
    if partitions == 0 {
        return Err(map_err(
            py,
            core::MapletError::InvalidParameter("partitions must be at least 1".into()),
        ));
    }
    let opts = core::Options {
        seed: seed.unwrap_or(hash::DEFAULT_SEED),
        ..core::Options::default()
    };
    // The callback's exception, raised once the work has stopped.
    let failed: std::sync::Mutex<Option<PyErr>> = std::sync::Mutex::new(None);
    let last = std::sync::Mutex::new(None::<std::time::Instant>);
    let report = |r: core::kmer::Report| -> core::Result<()> {
        let Some(cb) = &progress else {
            return Ok(());
        };
        {
            let mut last = last.lock().unwrap_or_else(|e| e.into_inner());
            let now = std::time::Instant::now();
            if last.is_some_and(|t| now - t < std::time::Duration::from_millis(100)) {
                return Ok(());
            }
            *last = Some(now);
        }
        let stage = match r.stage {
            core::kmer::Stage::Reading => "reading",
            core::kmer::Stage::Counting => "counting",
            core::kmer::Stage::Saving => "saving",
        };
        Python::attach(|py| cb.call1(py, (stage, r.done, r.total)).map(drop)).map_err(|e| {
            failed
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get_or_insert(e);
            core::MapletError::InvalidParameter("stopped by the progress callback".into())
        })
    };
    let saved = py.detach(|| {
        core::kmer::count_files_to_path(
            &paths,
            &output,
            k,
            canonical,
            threads,
            expected_items,
            false_positive_rate,
            opts,
            partitions,
            &report,
        )
    });
    if let Some(e) = failed.into_inner().unwrap_or_else(|p| p.into_inner()) {
        return Err(e);
    }
    let saved = saved.map_err(|e| map_err(py, e))?;
    let out = PyDict::new(py);
    out.set_item("sequences", saved.stats.sequences)?;
    out.set_item("bases", saved.stats.bases)?;
    out.set_item("kmers", saved.stats.kmers)?;
    out.set_item("skipped", saved.stats.skipped)?;
    out.set_item("distinct", saved.distinct)?;
    out.set_item("expected_items", saved.expected_items)?;
    Ok(out)
}

/// canonical_kmer(kmer)
///
/// The canonical form of a k-mer (the smaller of it and its reverse
/// complement, upper case), or ``None`` if it holds other letters than
/// ACGT or is longer than 32.
///
/// >>> canonical_kmer("TTT"), canonical_kmer("ANT")
/// ('AAA', None)
#[pyfunction]
fn canonical_kmer(kmer: &str) -> Option<String> {
    core::kmer::canonical_kmer(kmer)
}

/// The native module.
#[pymodule]
fn _mappy(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    let ns = PyDict::new(py);
    py.run(ERROR_CLASSES, Some(&ns), None)?;
    for name in ERROR_NAMES {
        m.add(name, ns.get_item(name)?.expect("defined above"))?;
    }
    let _ = ERRORS.set(py, ns.unbind());
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add_class::<Maplet>()?;
    fastcall::install(&py.get_type::<Maplet>())?;
    m.add_class::<Stats>()?;
    m.add_class::<CounterOperator>()?;
    m.add_class::<MaxOperator>()?;
    m.add_class::<MinOperator>()?;
    m.add_class::<SetOperator>()?;
    m.add_class::<VectorOperator>()?;
    m.add_class::<CustomOperator>()?;
    m.add_function(wrap_pyfunction!(merge, m)?)?;
    m.add_function(wrap_pyfunction!(count_kmers, m)?)?;
    m.add_function(wrap_pyfunction!(count_kmers_to_file, m)?)?;
    m.add_function(wrap_pyfunction!(canonical_kmer, m)?)?;
    Ok(())
}
