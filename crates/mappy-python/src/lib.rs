//! Python bindings for mappy maplets (module `mappy_python._mappy`).
use pyo3::prelude::*;

/// The native module.
#[pymodule]
fn _mappy(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
