//! A maplet's state: a core [`AnyMaplet`] whose own-kind values are Python
//! objects, and what Python values do to it (the storage a value needs,
//! conversion on insert and query).

use std::sync::Arc;

use mappy_core as core;
use mappy_core::{AnyMaplet, Counter, Max, Min, VectorAdd};
use numpy::PyArray1;
use pyo3::prelude::*;
use pyo3::types::PyFloat;
use pyo3::IntoPyObjectExt;

use crate::errors::{carried, map_err};
use crate::keys::Counts;
use crate::operators::Spec;
use crate::values::{
    as_count, as_float, as_int, as_obj, batch_error, classify, exact_in_f64, f32_array, to_vector,
    Num, ObjKind, PyObj, PyOp,
};

/// A maplet, in the storage its values need.
pub(crate) type Inner = AnyMaplet<PyOp>;

type M<O> = core::Maplet<O>;

/// What Python values do to a maplet's storage.
pub(crate) trait Storage: Sized {
    /// An empty maplet for operator `spec`.
    fn new(
        spec: Spec,
        func: Option<&Py<PyAny>>,
        py: Python<'_>,
        n: usize,
        rate: f64,
        opts: core::Options,
        shard: core::shard::Shard,
    ) -> core::Result<Self>;
    /// Moves a numeric max/min maplet to Python-object storage.
    fn convert_to_objects(&mut self, py: Python<'_>) -> PyResult<()>;
    /// As `convert_to_objects`, returning the storage replaced.
    fn replace_with_objects(&mut self, py: Python<'_>) -> PyResult<Option<Box<Self>>>;
    /// Changes the storage if `value` needs it (see the implementation).
    fn adapt(
        &mut self,
        py: Python<'_>,
        value: &Bound<'_, PyAny>,
        first: bool,
    ) -> PyResult<Option<Box<Self>>>;
    /// Inserts many values, all or nothing, in the storage `adapt` chose.
    fn insert_all(
        &mut self,
        py: Python<'_>,
        hashes: Vec<u64>,
        values: &[Bound<'_, PyAny>],
        signed: bool,
    ) -> PyResult<()>;
    /// Inserts one value, changing the storage first if it needs to.
    fn insert(
        &mut self,
        py: Python<'_>,
        h: u64,
        value: &Bound<'_, PyAny>,
        signed: bool,
    ) -> PyResult<()>;
    /// Inserts a value the storage can hold.
    fn insert_adapted(
        &mut self,
        py: Python<'_>,
        h: u64,
        value: &Bound<'_, PyAny>,
        signed: bool,
    ) -> PyResult<()>;
    /// Inserts hashes with packed integers into a counter or integer
    /// max/min maplet, detached from the interpreter.
    fn insert_counts(&mut self, py: Python<'_>, counts: Counts) -> PyResult<()>;
    /// The value under `h`, as a Python object.
    fn query(&self, py: Python<'_>, h: u64) -> PyResult<Option<Py<PyAny>>>;
}

impl Storage for Inner {
    fn new(
        spec: Spec,
        func: Option<&Py<PyAny>>,
        py: Python<'_>,
        n: usize,
        rate: f64,
        opts: core::Options,
        shard: core::shard::Shard,
    ) -> core::Result<Inner> {
        Ok(match spec {
            Spec::Counter => Inner::Counter(M::with_shard(n, rate, Counter, opts, shard)?),
            Spec::Max => Inner::MaxI64(M::with_shard(n, rate, Max::new(), opts, shard)?),
            Spec::Min => Inner::MinI64(M::with_shard(n, rate, Min::new(), opts, shard)?),
            Spec::Vector => Inner::VecF64(M::with_shard(n, rate, VectorAdd::new(), opts, shard)?),
            Spec::Set => Inner::Other(M::with_shard(
                n,
                rate,
                PyOp {
                    kind: ObjKind::Set,
                    func: None,
                },
                opts,
                shard,
            )?),
            Spec::Custom => Inner::Other(M::with_shard(
                n,
                rate,
                PyOp {
                    kind: ObjKind::Custom,
                    func: func.map(|f| Arc::new(f.clone_ref(py))),
                },
                opts,
                shard,
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
        // i64 and f64 both become Python numbers.
        fn obj<'py, T: IntoPyObject<'py>>(py: Python<'py>, v: T) -> core::Result<PyObj> {
            v.into_bound_py_any(py).map(PyObj::new).map_err(carried)
        }
        let max = PyOp {
            kind: ObjKind::Max,
            func: None,
        };
        let min = PyOp {
            kind: ObjKind::Min,
            func: None,
        };
        let converted = match self {
            Inner::MaxI64(m) => m.map_values(max, |v| obj(py, v)),
            Inner::MinI64(m) => m.map_values(min, |v| obj(py, v)),
            Inner::MaxF64(m) => m.map_values(max, |v| obj(py, v)),
            Inner::MinF64(m) => m.map_values(min, |v| obj(py, v)),
            _ => return Ok(None),
        };
        let converted = Inner::Other(converted.map_err(|e| map_err(py, e))?);
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
        // A mapped maplet refuses every write, even one that would move it
        // to other storage (in memory, and so writable).
        if self.is_read_only() {
            return Err(map_err(py, core::MapletError::ReadOnly));
        }
        let numeric_max_min = matches!(
            self,
            Inner::MaxI64(_) | Inner::MinI64(_) | Inner::MaxF64(_) | Inner::MinF64(_)
        );
        let new = match self {
            _ if numeric_max_min => match (&*self, classify(value)) {
                (Inner::MaxI64(_) | Inner::MinI64(_), Num::Int(_)) => return Ok(None),
                (Inner::MaxI64(_) | Inner::MinI64(_), Num::Float(_)) if first => {
                    let (opts, n, rate, shard) = (
                        self.options(),
                        self.expected_items(),
                        self.false_positive_rate(),
                        self.shard(),
                    );
                    let new = match self {
                        Inner::MaxI64(_) => {
                            M::with_shard(n, rate, Max::new(), opts, shard).map(Inner::MaxF64)
                        }
                        _ => M::with_shard(n, rate, Min::new(), opts, shard).map(Inner::MinF64),
                    };
                    new.map_err(|e| map_err(py, e))?
                }
                (Inner::MaxF64(_) | Inner::MinF64(_), Num::Float(_)) => return Ok(None),
                (Inner::MaxF64(_) | Inner::MinF64(_), Num::Int(i)) if exact_in_f64(i) => {
                    return Ok(None)
                }
                _ => return self.replace_with_objects(py),
            },
            Inner::VecF64(m) if first && f32_array(value) => {
                let (opts, n, rate) = (m.options(), m.expected_items(), m.false_positive_rate());
                Inner::VecF32(
                    M::with_shard(n, rate, VectorAdd::new(), opts, m.shard())
                        .map_err(|e| map_err(py, e))?,
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
        signed: bool,
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
            Inner::Counter(m) => {
                m.insert_many_hashes(pairs(hashes, values, |v| as_count(v, signed))?)
            }
            Inner::MaxI64(m) => m.insert_many_hashes(pairs(hashes, values, as_int)?),
            Inner::MinI64(m) => m.insert_many_hashes(pairs(hashes, values, as_int)?),
            Inner::MaxF64(m) => m.insert_many_hashes(pairs(hashes, values, as_float)?),
            Inner::MinF64(m) => m.insert_many_hashes(pairs(hashes, values, as_float)?),
            Inner::VecF32(m) => m.insert_many_hashes(pairs(hashes, values, to_vector::<f32>)?),
            Inner::VecF64(m) => m.insert_many_hashes(pairs(hashes, values, to_vector::<f64>)?),
            Inner::Other(m) => {
                let op = m.operator().clone();
                m.insert_many_hashes(pairs(hashes, values, |v| as_obj(&op, v))?)
            }
        };
        r.map_err(|(i, e)| batch_error(py, i, e))
    }

    /// Inserts one value, changing the storage first if it needs to; if
    /// the insert fails, the storage the maplet had comes back.
    fn insert(
        &mut self,
        py: Python<'_>,
        h: u64,
        value: &Bound<'_, PyAny>,
        signed: bool,
    ) -> PyResult<()> {
        let original = self.adapt(py, value, self.is_empty())?;
        let r = self.insert_adapted(py, h, value, signed);
        if let (Err(_), Some(original)) = (&r, original) {
            *self = *original;
        }
        r
    }

    /// Inserts a value the storage can hold (see [`adapt`](Inner::adapt)).
    fn insert_adapted(
        &mut self,
        py: Python<'_>,
        h: u64,
        value: &Bound<'_, PyAny>,
        signed: bool,
    ) -> PyResult<()> {
        let r = match self {
            Inner::Counter(m) => m.insert_hash(h, as_count(value, signed)?),
            Inner::MaxI64(m) => m.insert_hash(h, as_int(value)?),
            Inner::MinI64(m) => m.insert_hash(h, as_int(value)?),
            Inner::MaxF64(m) => m.insert_hash(h, as_float(value)?),
            Inner::MinF64(m) => m.insert_hash(h, as_float(value)?),
            Inner::VecF32(m) => m.insert_hash(h, to_vector::<f32>(value)?),
            Inner::VecF64(m) => m.insert_hash(h, to_vector::<f64>(value)?),
            Inner::Other(m) => {
                let v = as_obj(m.operator(), value)?;
                m.insert_hash(h, v)
            }
        };
        r.map_err(|e| map_err(py, e))
    }

    fn insert_counts(&mut self, py: Python<'_>, counts: Counts) -> PyResult<()> {
        let r = py.detach(|| match self {
            Inner::Counter(m) => counts.insert_into(m),
            Inner::MaxI64(m) => counts.insert_into(m),
            Inner::MinI64(m) => counts.insert_into(m),
            _ => unreachable!("a counter or integer max/min maplet"),
        });
        r.map_err(|(i, e)| batch_error(py, i, e))
    }

    fn query(&self, py: Python<'_>, h: u64) -> PyResult<Option<Py<PyAny>>> {
        Ok(match self {
            Inner::Counter(m) => m
                .query_hash(h)
                .map(|v| v.into_pyobject(py).map(|b| b.into_any().unbind()))
                .transpose()?,
            Inner::MaxI64(m) => m
                .query_hash(h)
                .map(|v| v.into_pyobject(py).map(|b| b.into_any().unbind()))
                .transpose()?,
            Inner::MinI64(m) => m
                .query_hash(h)
                .map(|v| v.into_pyobject(py).map(|b| b.into_any().unbind()))
                .transpose()?,
            Inner::MaxF64(m) => m
                .query_hash(h)
                .map(|v| PyFloat::new(py, v).into_any().unbind()),
            Inner::MinF64(m) => m
                .query_hash(h)
                .map(|v| PyFloat::new(py, v).into_any().unbind()),
            Inner::VecF32(m) => m
                .query_hash(h)
                .map(|v| PyArray1::from_vec(py, v).into_any().unbind()),
            Inner::VecF64(m) => m
                .query_hash(h)
                .map(|v| PyArray1::from_vec(py, v).into_any().unbind()),
            Inner::Other(m) => m.query_hash(h).map(|v| v.0),
        })
    }
}
