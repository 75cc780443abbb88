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

use pyo3::prelude::*;

mod args;
mod batch;
mod errors;
mod fastcall;
mod frozen;
mod keys;
mod kmers;
mod lock;
mod maplet;
mod operators;
mod shards;
mod state;
mod stats;
mod values;

use maplet::Maplet;

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
    m.add_function(wrap_pyfunction!(maplet::merge, m)?)?;
    m.add_function(wrap_pyfunction!(errors::_panic_for_tests, m)?)?;
    m.add_function(wrap_pyfunction!(shards::hash_keys, m)?)?;
    m.add_function(wrap_pyfunction!(shards::shard_indices, m)?)?;
    m.add_function(wrap_pyfunction!(shards::concat_shards, m)?)?;
    m.add_function(wrap_pyfunction!(shards::_write_manifest, m)?)?;
    m.add_function(wrap_pyfunction!(shards::_read_manifest, m)?)?;
    m.add_function(wrap_pyfunction!(shards::_file_checksum, m)?)?;
    m.add_function(wrap_pyfunction!(shards::_manifest_text, m)?)?;
    m.add_function(wrap_pyfunction!(shards::_parse_manifest, m)?)?;
    m.add_function(wrap_pyfunction!(shards::_shard_file, m)?)?;
    m.add_function(wrap_pyfunction!(shards::_checksum_of, m)?)?;
    m.add("_MANIFEST", mappy_core::shard::MANIFEST)?;
    m.add("_CHECKSUM_LEN", mappy_core::shard::CHECKSUM_LEN)?;
    m.add_function(wrap_pyfunction!(kmers::count_kmers, m)?)?;
    m.add_function(wrap_pyfunction!(kmers::count_kmers_to_file, m)?)?;
    m.add_function(wrap_pyfunction!(kmers::canonical_kmer, m)?)?;
    m.add_function(wrap_pyfunction!(kmers::query_kmers, m)?)?;
    m.add_function(wrap_pyfunction!(kmers::_answer_lines, m)?)?;
    Ok(())
}
