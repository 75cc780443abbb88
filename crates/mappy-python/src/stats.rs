//! The figures of `Maplet.stats()`, read as attributes or as a mapping.

use pyo3::exceptions::PyKeyError;
use pyo3::prelude::*;
use pyo3::types::{PyIterator, PyList, PyString, PyTuple};

/// Size and accuracy figures of a maplet (from ``Maplet.stats()``).
#[pyclass(module = "mappy_python", frozen, get_all)]
pub(crate) struct Stats {
    /// Stored entries (distinct fingerprints).
    pub(crate) item_count: usize,
    /// Home slots (grows by doubling).
    pub(crate) capacity: u64,
    /// ``item_count / capacity``; the maplet doubles before this passes 0.95.
    pub(crate) load_factor: f64,
    /// Bytes of memory held by the slot table and the side store, with the
    /// stored Python objects at their ``sys.getsizeof`` (shallow) size.
    pub(crate) memory_usage: usize,
    /// ``memory_usage * 8 / item_count``.
    pub(crate) bits_per_item: f64,
    /// The configured false-positive rate.
    pub(crate) false_positive_rate: f64,
    /// The false-positive rate expected now, from the stored fingerprints.
    pub(crate) expected_false_positive_rate: f64,
}

/// The field names, in the order a mapping view lists them.
const FIELDS: [&str; 7] = [
    "item_count",
    "capacity",
    "load_factor",
    "memory_usage",
    "bits_per_item",
    "false_positive_rate",
    "expected_false_positive_rate",
];

impl Stats {
    fn field<'py>(&self, py: Python<'py>, name: &str) -> PyResult<Option<Bound<'py, PyAny>>> {
        Ok(Some(match name {
            "item_count" => self.item_count.into_pyobject(py)?.into_any(),
            "capacity" => self.capacity.into_pyobject(py)?.into_any(),
            "load_factor" => self.load_factor.into_pyobject(py)?.into_any(),
            "memory_usage" => self.memory_usage.into_pyobject(py)?.into_any(),
            "bits_per_item" => self.bits_per_item.into_pyobject(py)?.into_any(),
            "false_positive_rate" => self.false_positive_rate.into_pyobject(py)?.into_any(),
            "expected_false_positive_rate" => self
                .expected_false_positive_rate
                .into_pyobject(py)?
                .into_any(),
            _ => return Ok(None),
        }))
    }
}

#[pymethods]
impl Stats {
    /// ``stats()["load_factor"]``: the figures read as a mapping too.
    fn __getitem__<'py>(
        &self,
        py: Python<'py>,
        key: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let found = match key.cast::<PyString>() {
            Ok(s) => self.field(py, s.to_str()?)?,
            Err(_) => None,
        };
        found.ok_or_else(|| PyKeyError::new_err(key.clone().unbind()))
    }

    fn __len__(&self) -> usize {
        FIELDS.len()
    }

    fn __iter__<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyIterator>> {
        PyTuple::new(py, FIELDS)?.try_iter()
    }

    fn __contains__(&self, key: &Bound<'_, PyAny>) -> bool {
        key.extract::<&str>().is_ok_and(|k| FIELDS.contains(&k))
    }

    /// The field names.
    fn keys<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        PyList::new(py, FIELDS)
    }

    /// The figures, in the order of :meth:`keys`.
    fn values<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let vals = FIELDS
            .iter()
            .map(|k| self.field(py, k).map(|v| v.expect("a field")))
            .collect::<PyResult<Vec<_>>>()?;
        PyList::new(py, vals)
    }

    /// ``(name, figure)`` pairs.
    fn items<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let items = FIELDS
            .iter()
            .map(|k| Ok((*k, self.field(py, k)?.expect("a field"))))
            .collect::<PyResult<Vec<_>>>()?;
        PyList::new(py, items)
    }

    /// ``stats().get("load_factor")``, as a mapping.
    #[pyo3(signature = (key, default=None))]
    fn get<'py>(
        &self,
        py: Python<'py>,
        key: &Bound<'py, PyAny>,
        default: Option<Bound<'py, PyAny>>,
    ) -> PyResult<Option<Bound<'py, PyAny>>> {
        match key.cast::<PyString>() {
            Ok(s) => Ok(self.field(py, s.to_str()?)?.or(default)),
            Err(_) => Ok(default),
        }
    }

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
