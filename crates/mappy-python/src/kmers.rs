//! k-mer counting into a counter maplet, in memory or into a file, and
//! k-mer (and key) lookups in batches.

use mappy_core as core;
use mappy_core::hash;
use numpy::PyArray1;
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyFrozenSet, PyList, PyString};

use crate::args;
use crate::errors::{guarded, map_err};
use crate::maplet::Maplet;
use crate::operators::Spec;
use crate::state::{Inner, Storage};

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
pub(crate) fn count_kmers<'py>(
    py: Python<'py>,
    maplet: &Bound<'py, Maplet>,
    sequences_or_paths: &Bound<'py, PyAny>,
    #[pyo3(from_py_with = args::k)] k: usize,
    #[pyo3(from_py_with = args::canonical)] canonical: bool,
    #[pyo3(from_py_with = args::threads)] threads: Option<usize>,
) -> PyResult<Bound<'py, PyDict>> {
    guarded(py, || {
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
        let (paths, seqs): (Vec<std::path::PathBuf>, Vec<Vec<u8>>) =
            match as_path(sequences_or_paths) {
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
                    let items: Vec<Bound<'py, PyAny>> =
                        if sequences_or_paths.is_instance_of::<PyString>() {
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
        let mut state = m.state.lock(py)?;
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
    })
}

/// count_kmers_to_file(paths, output, k, expected_items=None, false_positive_rate=0.01, *, canonical=True, threads=None, seed=None, partitions=1, tmp_dir=None, progress=None)
///
/// Counts the k-mers of FASTA/FASTQ files (plain or gzip) into a new
/// counter maplet and saves it at ``output`` (atomically: on error the
/// file is left as it was). Returns what :func:`count_kmers` returns, with
/// ``distinct`` (the saved maplet's entries), ``expected_items`` (the ones
/// it was built for) and ``input_passes`` (times the input was read).
///
/// ``expected_items`` is a hint: the maplet is the one built for it (or,
/// without it, for a power of two of home slots), doubled as often as it
/// must be to hold every distinct k-mer, and the file is the same byte for
/// byte whatever the mode. In memory, a hint that holds the k-mers reads
/// the input once; otherwise the distinct k-mers are estimated on a first
/// read and counted on a second.
///
/// With ``partitions`` above 1 the maplet's table is never whole in memory
/// and the input is read once: the k-mers' keys are sorted, summed and
/// delta-coded into that many parts in scratch files in ``tmp_dir``
/// (default: beside ``output``), each part is merged on its own
/// (``threads`` parts at once), and the table is written out as it is
/// built. The scratch files are removed whatever happens.
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
/// >>> count_kmers_to_file([reads], out, 4, partitions=2)["distinct"]
/// 3
/// >>> Maplet.load(out).query("ACGT")
/// 2
#[pyfunction]
#[pyo3(signature = (paths, output, k, expected_items=None, false_positive_rate=0.01, *, canonical=true, threads=None, seed=None, partitions=1, tmp_dir=None, progress=None))]
#[allow(clippy::too_many_arguments)]
pub(crate) fn count_kmers_to_file<'py>(
    py: Python<'py>,
    #[pyo3(from_py_with = args::paths)] paths: Vec<std::path::PathBuf>,
    #[pyo3(from_py_with = args::output)] output: std::path::PathBuf,
    #[pyo3(from_py_with = args::k)] k: usize,
    #[pyo3(from_py_with = args::expected_items)] expected_items: Option<usize>,
    #[pyo3(from_py_with = args::rate)] false_positive_rate: f64,
    #[pyo3(from_py_with = args::canonical)] canonical: bool,
    #[pyo3(from_py_with = args::threads)] threads: Option<usize>,
    #[pyo3(from_py_with = args::seed)] seed: Option<u64>,
    #[pyo3(from_py_with = args::partitions)] partitions: usize,
    #[pyo3(from_py_with = args::tmp_dir)] tmp_dir: Option<std::path::PathBuf>,
    progress: Option<Py<PyAny>>,
) -> PyResult<Bound<'py, PyDict>> {
    guarded(py, || {
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
                tmp_dir.as_deref(),
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
        out.set_item("input_passes", saved.input_passes)?;
        Ok(out)
    })
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
pub(crate) fn canonical_kmer(#[pyo3(from_py_with = args::kmer)] kmer: String) -> Option<String> {
    core::kmer::canonical_kmer(&kmer)
}

/// query_kmers(maplet, kmers, canonical=True)
///
/// The counts of k-mers (a list of ``str`` or ``bytes``) in a maplet
/// counted by :func:`count_kmers` or :func:`count_kmers_to_file`, as a NumPy
/// ``int64`` array (0 for a k-mer never counted): each k-mer is looked up
/// by its canonical form (by its upper-case form with
/// ``canonical=False``), all in one batch without the GIL. Raises
/// ``ValueError`` naming the first item that is not a k-mer of A, C, G
/// and T (either case) at most 32 long.
///
/// >>> m = Maplet(100, 0.001); _ = count_kmers(m, ["ACGTT"], 3)
/// >>> query_kmers(m, ["acg", b"AAC", "TTT"]).tolist()
/// [2, 1, 0]
#[pyfunction]
#[pyo3(signature = (maplet, kmers, canonical=true))]
pub(crate) fn query_kmers<'py>(
    py: Python<'py>,
    maplet: &Bound<'py, Maplet>,
    kmers: &Bound<'py, PyList>,
    #[pyo3(from_py_with = args::canonical)] canonical: bool,
) -> PyResult<Bound<'py, PyArray1<i64>>> {
    guarded(py, || {
        let m = maplet.get();
        let mut texts: Vec<&[u8]> = Vec::with_capacity(kmers.len());
        let items: Vec<Bound<'py, PyAny>> = kmers.iter().collect();
        for (i, item) in items.iter().enumerate() {
            if let Ok(b) = item.cast::<PyBytes>() {
                texts.push(b.as_bytes());
            } else if let Ok(s) = item.cast::<PyString>() {
                // A str that is not UTF-8 (a lone surrogate) is no k-mer.
                texts.push(s.to_str().map(str::as_bytes).unwrap_or(b"-"));
            } else {
                return Err(PyTypeError::new_err(format!(
                    "query_kmers takes k-mers as str or bytes, item {i} is {}",
                    item.get_type().name()?
                )));
            }
        }
        let hashes = core::kmer::kmer_key_hashes(texts.iter().copied(), canonical, m.seed)
            .map_err(|i| {
                PyValueError::new_err(format!(
                    "item {i}: {} is not a k-mer of A, C, G and T (at most 32 long)",
                    items[i].repr().map(|r| r.to_string()).unwrap_or_default()
                ))
            })?;
        let counts = counts_of(py, m, &hashes)?
            .into_iter()
            .map(|c| c.unwrap_or(0))
            .collect();
        Ok(PyArray1::from_vec(py, counts))
    })
}

/// The packed integer answers for `hashes` (counter, integer max/min),
/// looked up in one batch without the GIL; `TypeError` for other values.
fn counts_of(py: Python<'_>, m: &Maplet, hashes: &[u64]) -> PyResult<Vec<Option<i64>>> {
    packed_counts_of(py, m, hashes)?
        .ok_or_else(|| PyTypeError::new_err("the maplet's values are not integers"))
}

/// As [`counts_of`], `None` for values that are not packed integers.
fn packed_counts_of(
    py: Python<'_>,
    m: &Maplet,
    hashes: &[u64],
) -> PyResult<Option<Vec<Option<i64>>>> {
    let state = m.state.lock(py)?;
    Ok(py.detach(|| match &*state {
        Inner::Counter(c) => Some(c.query_many_hashes(hashes)),
        Inner::MaxI64(c) => Some(c.query_many_hashes(hashes)),
        Inner::MinI64(c) => Some(c.query_many_hashes(hashes)),
        _ => None,
    }))
}

/// The answers for `hashes` as Python objects, one by one.
fn objects_of(py: Python<'_>, m: &Maplet, hashes: &[u64]) -> PyResult<Vec<Option<Py<PyAny>>>> {
    let state = m.state.lock(py)?;
    hashes.iter().map(|&h| state.query(py, h)).collect()
}

/// `KEY<TAB>VALUE` lines for values that are Python objects, as the
/// query commands show them: ``-`` for an absent key, ``str(value)``, or
/// for a frozenset its items' ``str`` sorted and joined by commas; the
/// whole text encoded as UTF-8 with ``surrogateescape``.
fn object_lines(
    py: Python<'_>,
    texts: &[&[u8]],
    values: &[Option<Py<PyAny>>],
) -> PyResult<Vec<u8>> {
    let tab = PyString::new(py, "\t");
    let newline = PyString::new(py, "\n");
    let absent = PyString::new(py, "-");
    let comma = PyString::new(py, ",");
    let lines = PyList::empty(py);
    for (text, value) in texts.iter().zip(values) {
        lines.append(PyString::new(py, &String::from_utf8_lossy(text)))?;
        lines.append(&tab)?;
        match value {
            None => lines.append(&absent)?,
            Some(v) if v.bind(py).is_instance_of::<PyFrozenSet>() => {
                let items = PyList::empty(py);
                for item in v.bind(py).try_iter()? {
                    items.append(item?.str()?)?;
                }
                items.sort()?;
                lines.append(comma.call_method1("join", (items,))?)?;
            }
            Some(v) => lines.append(v.bind(py).str()?)?,
        }
        lines.append(&newline)?;
    }
    let text = PyString::new(py, "").call_method1("join", (lines,))?;
    let bytes = text.call_method1("encode", ("utf-8", "surrogateescape"))?;
    Ok(bytes.cast::<PyBytes>()?.as_bytes().to_vec())
}

/// _answer_lines(maplet, keys, kmers, canonical)
///
/// The ``mappy query`` and ``mappy kmers query`` commands' work on a batch:
/// ``keys`` is ``bytes`` of newline-separated keys (trailing ``\r``
/// removed, empty lines skipped) or a list of ``str``, each one key. With
/// ``kmers``, keys are k-mers, looked up as :func:`query_kmers` does.
/// Returns the output, ``KEY<TAB>VALUE`` lines (``-`` for an absent key),
/// and the index (line or item, from 0) of the first key that is not
/// UTF-8 text or not a k-mer, or -1; the output then covers the keys before
/// it. Values that are not integers show as ``str(value)`` (a frozenset:
/// its items' ``str``, sorted, joined by commas).
#[pyfunction]
pub(crate) fn _answer_lines<'py>(
    py: Python<'py>,
    maplet: &Bound<'py, Maplet>,
    keys: &Bound<'py, PyAny>,
    kmers: bool,
    canonical: bool,
) -> PyResult<(Bound<'py, PyBytes>, i64)> {
    guarded(py, || {
        let m = maplet.get();
        let mut items: Vec<Bound<'py, PyString>> = Vec::new();
        if !keys.is_instance_of::<PyBytes>() {
            let list = keys
                .cast::<PyList>()
                .map_err(|_| PyTypeError::new_err("_answer_lines takes bytes or a list of str"))?;
            items = list
                .iter()
                .map(|k| k.cast_into::<PyString>().map_err(PyErr::from))
                .collect::<PyResult<_>>()?;
        }
        // Each key's text and hash, up to the first bad one.
        let seed = m.seed;
        let mut buf = [0u8; 32];
        let mut hash_of = |text: &[u8]| -> Option<u64> {
            if kmers {
                core::kmer::kmer_key(text, canonical, &mut buf).map(|key| hash::hash_str(key, seed))
            } else {
                std::str::from_utf8(text)
                    .ok()
                    .map(|key| hash::hash_str(key, seed))
            }
        };
        let mut texts: Vec<&[u8]> = Vec::new();
        let mut hashes: Vec<u64> = Vec::new();
        let mut bad = -1i64;
        if let Ok(data) = keys.cast::<PyBytes>() {
            for (i, line) in data.as_bytes().split(|&b| b == b'\n').enumerate() {
                let end = line.iter().rposition(|&b| b != b'\r').map_or(0, |e| e + 1);
                let line = &line[..end];
                if line.is_empty() {
                    continue;
                }
                match hash_of(line) {
                    Some(h) => hashes.push(h),
                    None => {
                        bad = i as i64;
                        break;
                    }
                }
                texts.push(line);
            }
        } else {
            for (i, s) in items.iter().enumerate() {
                let text = match s.to_str() {
                    Ok(t) => t.as_bytes(),
                    // A str that is not UTF-8 (a lone surrogate) is no k-mer.
                    Err(_) if kmers => b"-",
                    Err(e) => return Err(e),
                };
                match hash_of(text) {
                    Some(h) => hashes.push(h),
                    None => {
                        bad = i as i64;
                        break;
                    }
                }
                texts.push(text);
            }
        }
        let Some(answers) = packed_counts_of(py, m, &hashes)? else {
            let values = objects_of(py, m, &hashes)?;
            return Ok((PyBytes::new(py, &object_lines(py, &texts, &values)?), bad));
        };
        let mut out = Vec::with_capacity(texts.iter().map(|t| t.len() + 8).sum());
        for (text, answer) in texts.iter().zip(&answers) {
            out.extend_from_slice(text);
            out.push(b'\t');
            match answer {
                Some(v) => {
                    use std::io::Write;
                    write!(out, "{v}").expect("writing to memory");
                }
                None => out.push(b'-'),
            }
            out.push(b'\n');
        }
        Ok((PyBytes::new(py, &out), bad))
    })
}
