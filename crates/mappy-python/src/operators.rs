//! The operator classes and the choice of storage they make.

use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;

use crate::args;
use pyo3::types::PyType;
use pyo3::{PyTraverseError, PyVisit};

/// The operator a user chose, as the Python operator objects describe it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Spec {
    Counter,
    Max,
    Min,
    Set,
    Vector,
    Custom,
}

/// CounterOperator(signed=False)
///
/// Adds counts: a query never answers less than the true total. Counts are
/// 0 or more, and ``delete(key, n)`` refuses an ``n`` above the stored
/// count, since either could make an answer fall below the truth. With
/// ``signed=True`` negative counts and any deletes are allowed, and answers
/// are then two-sided: a colliding key's negative count can pull an answer
/// below the truth. A loaded maplet is signed if it holds a negative count.
///
/// >>> m = Maplet(100, 0.01, CounterOperator())
/// >>> m.insert("a", 2); m.insert("a", 3); m.query("a")
/// 5
#[pyclass(module = "mappy_python", frozen, eq, from_py_object)]
#[derive(Clone, PartialEq)]
pub(crate) struct CounterOperator {
    /// Whether negative counts are allowed (answers then two-sided).
    #[pyo3(get)]
    pub(crate) signed: bool,
}

#[pymethods]
impl CounterOperator {
    #[new]
    #[pyo3(signature = (signed=false))]
    fn new(#[pyo3(from_py_with = args::signed)] signed: bool) -> Self {
        CounterOperator { signed }
    }
    fn __repr__(&self) -> &'static str {
        if self.signed {
            "CounterOperator(signed=True)"
        } else {
            "CounterOperator()"
        }
    }
    fn __reduce__<'py>(slf: &Bound<'py, Self>) -> (Bound<'py, PyType>, (bool,)) {
        (slf.get_type(), (slf.get().signed,))
    }
}

/// Keeps the largest value (numbers, or any mutually comparable objects): a
/// query never answers less than the true maximum.
#[pyclass(module = "mappy_python", frozen, eq, from_py_object)]
#[derive(Clone, PartialEq)]
pub(crate) struct MaxOperator;

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
pub(crate) struct MinOperator;

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
pub(crate) struct SetOperator;

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
pub(crate) struct VectorOperator;

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
/// >>> m.insert("k", 1); m.insert("k", 3); m.query("k")
/// 7
#[pyclass(module = "mappy_python", frozen)]
pub(crate) struct CustomOperator {
    pub(crate) func: Py<PyAny>,
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

/// The storage an operator object chooses, its merge function (custom
/// operators) and whether counts may be negative (signed counters).
pub(crate) fn spec_of(op: Option<&Bound<'_, PyAny>>) -> PyResult<(Spec, Option<Py<PyAny>>, bool)> {
    let Some(op) = op else {
        return Ok((Spec::Counter, None, false));
    };
    if let Ok(c) = op.cast::<CounterOperator>() {
        Ok((Spec::Counter, None, c.get().signed))
    } else if op.is_instance_of::<MaxOperator>() {
        Ok((Spec::Max, None, false))
    } else if op.is_instance_of::<MinOperator>() {
        Ok((Spec::Min, None, false))
    } else if op.is_instance_of::<SetOperator>() {
        Ok((Spec::Set, None, false))
    } else if op.is_instance_of::<VectorOperator>() {
        Ok((Spec::Vector, None, false))
    } else if let Ok(c) = op.cast::<CustomOperator>() {
        Ok((Spec::Custom, Some(c.get().func.clone_ref(op.py())), false))
    } else {
        Err(PyTypeError::new_err(format!(
            "operator must be CounterOperator(), MaxOperator(), MinOperator(), SetOperator(), \
             VectorOperator() or CustomOperator(fn), not {}",
            op.repr()?
        )))
    }
}
