//! Exposes the target interpreter's configuration as `cfg`s, among them
//! `Py_GIL_DISABLED` for free-threaded builds, which the state lock needs.
fn main() {
    pyo3_build_config::use_pyo3_cfgs();
}
