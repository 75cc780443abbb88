//! Python bindings for mappy maplets: the native module
//! `mappy_python._mappy`. Conversion, locking and error mapping only; every
//! algorithm, and every byte of the file format, lives in `mappy-core`.
//!
//! Threads: a `Maplet` is a frozen class holding its state behind its own
//! lock ([`lock`]), always taken while attached to the interpreter.
//! Single-key calls stay attached; batch calls on packed operators convert
//! their input first, take the lock, then release the interpreter for the
//! work. Operators that call back into Python (max/min over objects, sets,
//! custom functions) run attached. Every entry point runs under
//! [`errors::guarded`], so no Rust panic reaches Python.

use pyo3::exceptions::PyTypeError;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

mod batch;
mod errors;
mod fastcall;
mod keys;
mod kmers;
mod lock;
mod maplet;
mod operators;
mod state;
mod stats;
mod values;

use errors::guarded;
use maplet::Maplet;

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
    guarded(py, || {
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
    })
}

/// _panic_for_tests()
///
/// Panics inside the guard every entry point runs under: the tests' way of
/// showing that a Rust panic reaches Python as a ``MapletError``.
#[pyfunction]
fn _panic_for_tests(py: Python<'_>) -> PyResult<()> {
    guarded(py, || panic!("a panic raised on purpose"))
}

/// The native module.
#[pymodule]
fn _mappy(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    errors::register(m)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add_class::<Maplet>()?;
    fastcall::install(&py.get_type::<Maplet>())?;
    m.add_class::<stats::Stats>()?;
    m.add_class::<operators::CounterOperator>()?;
    m.add_class::<operators::MaxOperator>()?;
    m.add_class::<operators::MinOperator>()?;
    m.add_class::<operators::SetOperator>()?;
    m.add_class::<operators::VectorOperator>()?;
    m.add_class::<operators::CustomOperator>()?;
    m.add_function(wrap_pyfunction!(merge, m)?)?;
    m.add_function(wrap_pyfunction!(_panic_for_tests, m)?)?;
    m.add_function(wrap_pyfunction!(kmers::count_kmers, m)?)?;
    m.add_function(wrap_pyfunction!(kmers::count_kmers_to_file, m)?)?;
    m.add_function(wrap_pyfunction!(kmers::canonical_kmer, m)?)?;
    Ok(())
}
