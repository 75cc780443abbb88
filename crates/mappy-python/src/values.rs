//! Values: conversion between Python values and each storage's, and the
//! operator for values kept as Python objects (whose merges call Python),
//! with their plain encoding in saved files.

use std::sync::Arc;

use mappy_core as core;
use mappy_core::plain::Plain;
use mappy_core::{Operator, OperatorKind};
use numpy::PyReadonlyArray1;
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{
    PyBool, PyBytes, PyFloat, PyFrozenSet, PyInt, PyList, PySet, PyString, PyTuple, PyType,
};

use crate::errors::{carried, map_err, raise, Class};

/// A Python object held in a maplet's side store, with the memory it held
/// when it was stored: measured once, the first time the maplet asks (so
/// a value that is merged away is never measured), then kept, so that what
/// the memory limit and `memory_usage` count stays what was added even if
/// the object is changed later.
pub(crate) struct PyObj(pub(crate) Py<PyAny>, Measure);

/// [`PyObj`]'s size: `(total, own)` bytes once measured, `own` being the
/// object's own `sys.getsizeof` without its items.
#[derive(Default)]
pub(crate) struct Measure(std::sync::OnceLock<(usize, usize)>);

impl Measure {
    fn of(total: usize, own: usize) -> Measure {
        Measure(std::sync::OnceLock::from((total, own)))
    }
}

impl Clone for PyObj {
    fn clone(&self) -> Self {
        let m = self
            .1
             .0
            .get()
            .map_or_else(Measure::default, |&(t, o)| Measure::of(t, o));
        Python::attach(|py| PyObj(self.0.clone_ref(py), m))
    }
}

impl PyObj {
    /// `v`, to be measured when first stored.
    pub(crate) fn new(v: Bound<'_, PyAny>) -> PyObj {
        PyObj(v.unbind(), Measure::default())
    }

    /// `(total, own)` bytes (see [`Measure`]): `sys.getsizeof` of the
    /// object, plus that of each item of a set, frozenset, tuple or list (a
    /// set of strings counts its strings).
    fn measured(&self) -> (usize, usize) {
        *self.1 .0.get_or_init(|| {
            Python::attach(|py| {
                let v = self.0.bind(py);
                let own = sizeof(v);
                let mut total = own;
                if v.is_instance_of::<PyFrozenSet>()
                    || v.is_instance_of::<PySet>()
                    || v.is_instance_of::<PyTuple>()
                    || v.is_instance_of::<PyList>()
                {
                    if let Ok(items) = v.try_iter() {
                        for item in items.flatten() {
                            total = total.saturating_add(sizeof(&item));
                        }
                    }
                }
                (total, own)
            })
        })
    }
}

/// `sys.getsizeof(v)`: computed here for the common exact types
/// (`frozenset`, ASCII `str`, `bytes`, `float`, small `int`, from sizes
/// read once and the object's own fields, as their `__sizeof__` does),
/// asked of Python otherwise; the smallest object's size if that fails.
fn sizeof(v: &Bound<'_, PyAny>) -> usize {
    static GETSIZEOF: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
    static BASE: std::sync::OnceLock<[usize; 5]> = std::sync::OnceLock::new();
    const SMALLEST: usize = 16;
    let py = v.py();
    let ask = |x: &Bound<'_, PyAny>| {
        GETSIZEOF
            .import(py, "sys", "getsizeof")
            .and_then(|f| f.call1((x,)))
            .and_then(|n| n.extract::<usize>())
            .unwrap_or(SMALLEST)
    };
    let base = BASE.get_or_init(|| {
        [
            ask(PyString::new(py, "").as_any()),
            ask(PyBytes::new(py, b"").as_any()),
            ask(PyFloat::new(py, 0.0).as_any()),
            ask(1i64.into_pyobject(py).expect("an int").as_any()),
            PyFrozenSet::empty(py).map_or(SMALLEST, |f| ask(f.as_any())),
        ]
    });
    #[cfg(not(any(Py_LIMITED_API, PyPy, GraalPy)))]
    if v.is_exact_instance_of::<PyFrozenSet>() {
        // As `set.__sizeof__` counts: the object, and its hash table when
        // that outgrew the one inside the object.
        // SAFETY: `v` is a live, exact frozenset, whose layout is
        // `PySetObject`; its fields are only read.
        unsafe {
            let so = v.as_ptr().cast::<pyo3::ffi::PySetObject>();
            let table = (*so).table;
            let small = std::ptr::addr_of_mut!((*so).smalltable).cast::<pyo3::ffi::setentry>();
            return if table == small {
                base[4]
            } else {
                base[4] + ((*so).mask as usize + 1) * std::mem::size_of::<pyo3::ffi::setentry>()
            };
        }
    }
    if v.is_exact_instance_of::<PyString>() {
        #[cfg(not(Py_LIMITED_API))]
        // SAFETY: `v` is a live `str` object, and the thread is attached.
        unsafe {
            let p = v.as_ptr();
            if pyo3::ffi::PyUnicode_IS_ASCII(p) != 0 {
                return base[0] + pyo3::ffi::PyUnicode_GET_LENGTH(p) as usize;
            }
        }
    } else if let Ok(b) = v.cast_exact::<PyBytes>() {
        return base[1] + b.as_bytes().len();
    } else if v.is_exact_instance_of::<PyFloat>() {
        return base[2];
    } else if v.is_exact_instance_of::<PyInt>() {
        // One 30-bit digit.
        if v.extract::<i64>()
            .is_ok_and(|i| i != 0 && i.unsigned_abs() < 1 << 30)
        {
            return base[3];
        }
    }
    ask(v)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ObjKind {
    Max,
    Min,
    Set,
    Custom,
}

/// The operator for values kept as Python objects: merges call Python.
#[derive(Clone)]
pub(crate) struct PyOp {
    pub(crate) kind: ObjKind,
    pub(crate) func: Option<Arc<Py<PyAny>>>,
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

    fn heap_size(&self, value: &PyObj) -> usize {
        value.measured().0
    }

    fn merge(&self, existing: &PyObj, incoming: &PyObj) -> core::Result<PyObj> {
        Python::attach(|py| {
            let (a, b) = (existing.0.bind(py), incoming.0.bind(py));
            let merged = match self.kind {
                // The winner keeps the size it was measured at.
                ObjKind::Max => {
                    let winner = if b.gt(a)? { incoming } else { existing };
                    return Ok(winner.clone());
                }
                ObjKind::Min => {
                    let winner = if b.lt(a)? { incoming } else { existing };
                    return Ok(winner.clone());
                }
                ObjKind::Set => {
                    // Measured from the parts: the items already held keep
                    // their sizes, so a merge costs what the incoming set
                    // holds, not what the union does.
                    let union = a.call_method1("__or__", (b,))?;
                    let Some(&(held, held_own)) = existing.1 .0.get() else {
                        // Not measured yet (no memory limit asked for it):
                        // neither is the union, until something asks.
                        return Ok(PyObj::new(union));
                    };
                    let own = sizeof(&union);
                    let mut total = held.saturating_sub(held_own).saturating_add(own);
                    for item in b.try_iter()? {
                        let item = item?;
                        if !a.contains(&item)? {
                            total = total.saturating_add(sizeof(&item));
                        }
                    }
                    return Ok(PyObj(union.unbind(), Measure::of(total, own)));
                }
                ObjKind::Custom => {
                    let merged = self
                        .func
                        .as_ref()
                        .expect("custom operators have a function")
                        .bind(py)
                        .call1((a, b))?;
                    if merged.is_none() {
                        return Err(no_none(py));
                    }
                    merged
                }
            };
            Ok::<_, PyErr>(PyObj::new(merged))
        })
        .map_err(carried)
    }
}

/// A number a max or min maplet can pack, or anything else.
pub(crate) enum Num {
    Int(i64),
    Float(f64),
    Other,
}

pub(crate) fn classify(v: &Bound<'_, PyAny>) -> Num {
    if v.is_instance_of::<PyFloat>() {
        return v.extract::<f64>().map(Num::Float).unwrap_or(Num::Other);
    }
    if v.is_instance_of::<PyInt>() {
        return v.extract::<i64>().map(Num::Int).unwrap_or(Num::Other);
    }
    // NumPy scalars: its integers are no `int`, its float32 no `float`.
    static INTEGER: PyOnceLock<Py<PyType>> = PyOnceLock::new();
    static FLOATING: PyOnceLock<Py<PyType>> = PyOnceLock::new();
    let py = v.py();
    let is = |t: &PyOnceLock<Py<PyType>>, name: &str| {
        t.import(py, "numpy", name)
            .is_ok_and(|t| v.is_instance(t).unwrap_or(false))
    };
    if is(&INTEGER, "integer") {
        return v.extract::<i64>().map(Num::Int).unwrap_or(Num::Other);
    }
    if is(&FLOATING, "floating") {
        return v
            .call_method0("__float__")
            .and_then(|f| f.extract::<f64>())
            .map(Num::Float)
            .unwrap_or(Num::Other);
    }
    Num::Other
}

/// A counter's value.
///
/// Negative counts are refused unless the counter is `signed`: they would
/// let a query answer less than the truth.
pub(crate) fn as_count(v: &Bound<'_, PyAny>, signed: bool) -> PyResult<i64> {
    let c = v.extract::<i64>().map_err(counter_value_error)?;
    if c < 0 && !signed {
        return Err(negative_count(v.py(), c));
    }
    Ok(c)
}

/// The error for a negative count given to an unsigned counter.
pub(crate) fn negative_count(py: Python<'_>, c: i64) -> PyErr {
    raise(
        py,
        Class::InvalidValue,
        format!(
            "invalid value: a count of {c}: counters take counts of 0 or more, so that no answer \
             is below the truth; build the maplet with CounterOperator(signed=True) to allow \
             negative counts (answers are then two-sided)"
        ),
    )
}

/// A value for integer max/min storage (which [`Inner::adapt`] chose).
pub(crate) fn as_int(v: &Bound<'_, PyAny>) -> PyResult<i64> {
    match classify(v) {
        Num::Int(i) => Ok(i),
        _ => Err(PyTypeError::new_err("expected an int")),
    }
}

/// A value for float max/min storage: a float, or an int it holds exactly.
pub(crate) fn as_float(v: &Bound<'_, PyAny>) -> PyResult<f64> {
    match classify(v) {
        Num::Float(f) => Ok(f),
        Num::Int(i) if exact_in_f64(i) => Ok(i as f64),
        _ => Err(PyTypeError::new_err("expected a float")),
    }
}

/// A value kept as a Python object: sets as frozensets, others as they are.
/// Max and min refuse NaN (and any value unequal to itself), which has no
/// order: whichever way it compared, some answer would be wrong.
pub(crate) fn as_obj(op: &PyOp, v: &Bound<'_, PyAny>) -> PyResult<PyObj> {
    if v.is_none() {
        return Err(no_none(v.py()));
    }
    Ok(PyObj::new(match op.kind {
        ObjKind::Set => to_set(v)?.into_bound(v.py()),
        ObjKind::Max | ObjKind::Min => {
            if !v.eq(v)? {
                return Err(raise(
                    v.py(),
                    Class::InvalidValue,
                    "invalid value: NaN has no order, so max and min refuse it",
                ));
            }
            v.clone()
        }
        ObjKind::Custom => v.clone(),
    }))
}

/// `None` answers a query for a key that is absent, so no value may be it.
fn no_none(_py: Python<'_>) -> PyErr {
    PyTypeError::new_err(
        "None cannot be stored (a query answers None for an absent key); \
         a custom merge function must return a value",
    )
}

/// Whether a float holds `i` exactly.
pub(crate) fn exact_in_f64(i: i64) -> bool {
    (i as f64) as i64 == i && i.unsigned_abs() <= 1 << 53
}

/// A batch's error, noting which item failed.
pub(crate) fn batch_error(py: Python<'_>, index: usize, e: core::MapletError) -> PyErr {
    at_item(py, index, map_err(py, e))
}

/// `err`, noting that item `index` of a batch raised it. Notes show in
/// tracebacks from Python 3.11; before, where `add_note` is absent, the
/// note is put in the exception's `__notes__` list all the same.
pub(crate) fn at_item(py: Python<'_>, index: usize, err: PyErr) -> PyErr {
    let note = format!("at item {index} of the batch");
    let value = err.value(py);
    if value.hasattr("add_note").unwrap_or(false) {
        let _ = value.call_method1("add_note", (note,));
    } else if let Ok(notes) = value.getattr("__notes__") {
        let _ = notes.call_method1("append", (note,));
    } else if let Ok(notes) = PyList::new(py, [note]) {
        let _ = value.setattr("__notes__", notes);
    }
    err
}

pub(crate) fn f32_array(v: &Bound<'_, PyAny>) -> bool {
    v.extract::<PyReadonlyArray1<'_, f32>>().is_ok()
}

pub(crate) fn to_vector<T>(v: &Bound<'_, PyAny>) -> PyResult<Vec<T>>
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
pub(crate) trait AsPrimitive<T> {
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

pub(crate) fn to_set(v: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
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

pub(crate) fn counter_value_error(e: PyErr) -> PyErr {
    Python::attach(|py| {
        if e.is_instance_of::<pyo3::exceptions::PyOverflowError>(py) {
            raise(
                py,
                Class::Overflow,
                "counter values must fit in a signed 64-bit integer",
            )
        } else if e.is_instance_of::<pyo3::exceptions::PyTypeError>(py) {
            pyo3::exceptions::PyTypeError::new_err(format!(
                "a counter's value must be an int: {}",
                e.value(py)
            ))
        } else {
            e
        }
    })
}

// ---- values in saved files -----------------------------------------------------

/// `v` as plain data, if it is one of the exact types a file holds without
/// pickle (subclasses are not: they would come back as their base type).
fn scalar_plain(v: &Bound<'_, PyAny>) -> PyResult<Option<Plain>> {
    Ok(Some(if v.is_none() {
        Plain::None
    } else if v.is_exact_instance_of::<PyBool>() {
        Plain::Bool(v.is_truthy()?)
    } else if v.is_exact_instance_of::<PyInt>() {
        Plain::Int(int_bytes(v)?)
    } else if v.is_exact_instance_of::<PyFloat>() {
        Plain::Float(v.extract()?)
    } else if let Ok(s) = v.cast_exact::<PyString>() {
        match s.to_str() {
            Ok(s) => Plain::Str(s.to_string()),
            // Lone surrogates have no UTF-8 form.
            Err(_) => return Ok(None),
        }
    } else if let Ok(b) = v.cast_exact::<PyBytes>() {
        Plain::Bytes(b.as_bytes().to_vec())
    } else {
        return Ok(None);
    }))
}

/// The minimal little-endian two's-complement bytes of an int.
fn int_bytes(v: &Bound<'_, PyAny>) -> PyResult<Vec<u8>> {
    if let Ok(i) = v.extract::<i64>() {
        let b = i.to_le_bytes();
        // Drop high bytes that only repeat the sign of the byte below.
        let mut n = 8;
        while n > 1
            && ((b[n - 1] == 0 && b[n - 2] < 0x80) || (b[n - 1] == 0xff && b[n - 2] >= 0x80))
        {
            n -= 1;
        }
        return Ok(b[..n].to_vec());
    }
    let bits: usize = v.call_method0("bit_length")?.extract()?;
    let kwargs = pyo3::types::PyDict::new(v.py());
    kwargs.set_item("signed", true)?;
    let b = v.call_method("to_bytes", ((bits + 8) / 8, "little"), Some(&kwargs))?;
    Ok(b.cast::<PyBytes>()?.as_bytes().to_vec())
}

fn plain_of(v: &Bound<'_, PyAny>) -> PyResult<Option<Plain>> {
    if let Some(p) = scalar_plain(v)? {
        return Ok(Some(p));
    }
    let Ok(set) = v.cast_exact::<PyFrozenSet>() else {
        return Ok(None);
    };
    let mut items = Vec::with_capacity(set.len());
    for item in set.iter() {
        match scalar_plain(&item)? {
            Some(p) => items.push(p),
            None => return Ok(None),
        }
    }
    Ok(Some(Plain::Set(items)))
}

/// Appends the saved form of `v`: plain data where it is plain, otherwise
/// a pickle (which loading refuses unless the caller allows it).
pub(crate) fn encode_value(v: &Bound<'_, PyAny>, out: &mut Vec<u8>) -> core::Result<()> {
    match plain_of(v).map_err(carried)? {
        Some(p) => p.encode(out),
        None => {
            let b = v
                .py()
                .import("pickle")
                .and_then(|pickle| pickle.call_method1("dumps", (v, 4)))
                .map_err(carried)?;
            let b = b.cast::<PyBytes>().map_err(|e| carried(e.into()))?;
            out.extend_from_slice(b.as_bytes());
        }
    }
    Ok(())
}

/// The message of a refused pickle.
const PICKLE_REFUSED: &str =
    "this maplet holds pickled values (objects other than str, bytes, int, \
     float, bool, None and frozensets of those), and unpickling can run code: they are refused. \
     Pass allow_pickle=True only for data you trust.";

fn from_plain(py: Python<'_>, p: Plain) -> PyResult<Bound<'_, PyAny>> {
    Ok(match p {
        Plain::None => py.None().into_bound(py),
        Plain::Bool(b) => PyBool::new(py, b).to_owned().into_any(),
        Plain::Int(b) if b.len() <= 8 => {
            let fill = if b[b.len() - 1] >= 0x80 { 0xff } else { 0 };
            let mut w = [fill; 8];
            w[..b.len()].copy_from_slice(&b);
            i64::from_le_bytes(w).into_pyobject(py)?.into_any()
        }
        Plain::Int(b) => {
            let kwargs = pyo3::types::PyDict::new(py);
            kwargs.set_item("signed", true)?;
            py.get_type::<PyInt>().call_method(
                "from_bytes",
                (PyBytes::new(py, &b), "little"),
                Some(&kwargs),
            )?
        }
        Plain::Float(f) => PyFloat::new(py, f).into_any(),
        Plain::Str(s) => PyString::new(py, &s).into_any(),
        Plain::Bytes(b) => PyBytes::new(py, &b).into_any(),
        Plain::Set(items) => {
            let items = items
                .into_iter()
                .map(|p| from_plain(py, p))
                .collect::<PyResult<Vec<_>>>()?;
            PyFrozenSet::new(py, items)?.into_any()
        }
        Plain::Opaque(_) => unreachable!("opaque values are unpickled by the caller"),
    })
}

/// A value from its saved form. Pickled values are refused with
/// `UnsafeDataError` unless `allow_pickle`.
pub(crate) fn decode_value(py: Python<'_>, b: &[u8], allow_pickle: bool) -> core::Result<PyObj> {
    let obj = match Plain::decode(b)? {
        Plain::Opaque(_) if !allow_pickle => {
            return Err(carried(raise(py, Class::UnsafeData, PICKLE_REFUSED)))
        }
        Plain::Opaque(bytes) => py
            .import("pickle")
            .and_then(|pickle| pickle.call_method1("loads", (PyBytes::new(py, &bytes),)))
            .map_err(carried)?,
        p => from_plain(py, p).map_err(carried)?,
    };
    Ok(PyObj::new(obj))
}
