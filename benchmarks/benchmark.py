"""Python-level benchmark: mappy against a dict counter and rbloom, in one run.

Over N string keys ``key_{i}`` (default 1,000,000), the median of ROUNDS
rounds (default 5) of each measurement, every ratio taken against a
baseline measured in the same round. Writes ``benchmarks/RESULTS-python.md``
and ``benchmarks/python.png``.

    python benchmarks/benchmark.py [N] [ROUNDS]
"""

import os

# NumPy's OpenBLAS worker threads spin on a 2-core machine, stealing a core
# from whichever side runs; nothing here uses BLAS.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import gc
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import rbloom

import mappy_python as mappy

HERE = Path(__file__).resolve().parent


def timed(f):
    gc.collect()
    t = time.perf_counter()
    f()
    return time.perf_counter() - t


def dict_bytes(d):
    return sys.getsizeof(d) + sum(sys.getsizeof(k) for k in d)


def one_round(n, keys, absent, np_keys, np_ones):
    r = {}
    # Baseline: a dict counter, one key at a time.
    d = {}

    def dict_insert():
        get = d.get
        for k in keys:
            d[k] = get(k, 0) + 1

    r["dict insert"] = n / timed(dict_insert)

    def dict_query():
        get = d.get
        for k in keys:
            get(k)

    r["dict query"] = n / timed(dict_query)
    r["dict bytes/item"] = dict_bytes(d) / n

    m = mappy.Maplet(n, 0.01, mappy.CounterOperator())

    def maplet_insert():
        ins = m.insert
        for k in keys:
            ins(k, 1)

    r["maplet insert"] = n / timed(maplet_insert)

    def maplet_query():
        q = m.query
        for k in keys:
            q(k)

    r["maplet query"] = n / timed(maplet_query)

    def maplet_in():
        for k in absent:
            k in m  # noqa: B015

    r["maplet in"] = n / timed(maplet_in)
    r["maplet bytes/item"] = m.stats().memory_usage / n

    bloom = rbloom.Bloom(n, 0.01)
    bloom.update(keys)

    def bloom_in():
        for k in absent:
            k in bloom  # noqa: B015

    r["rbloom in"] = n / timed(bloom_in)

    m2 = mappy.Maplet(n, 0.01, mappy.CounterOperator())
    ones = [1] * n
    r["maplet batch_insert (list)"] = n / timed(lambda: m2.batch_insert(keys, ones))

    m3 = mappy.Maplet(n, 0.01, mappy.CounterOperator())
    r["maplet batch_insert (NumPy uint64)"] = n / timed(lambda: m3.batch_insert(np_keys, np_ones))
    return r


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 5
    keys = [f"key_{i}" for i in range(n)]
    absent = [f"absent_{i}" for i in range(n)]
    np_keys = np.arange(n, dtype=np.uint64) * np.uint64(0x9E3779B97F4A7C15)
    np_ones = np.ones(n, dtype=np.int64)
    runs = [one_round(n, keys, absent, np_keys, np_ones) for _ in range(rounds)]
    med = {k: statistics.median(r[k] for r in runs) for k in runs[0]}

    def ratio(a, b):
        return statistics.median(r[a] / r[b] for r in runs)

    checks = [
        ("per-call insert vs dict counter loop", ratio("maplet insert", "dict insert"), 2.0),
        ("per-call query vs dict.get loop", ratio("maplet query", "dict query"), 1.5),
        ("`key in maplet` vs `key in rbloom.Bloom` (1%)", ratio("maplet in", "rbloom in"), 1.0),
        ("batch_insert (list) vs dict counter loop", ratio("maplet batch_insert (list)", "dict insert"), 5.0),
    ]
    lines = [
        "# Python benchmark results",
        "",
        f"`python benchmarks/benchmark.py {n} {rounds}` (`make bench`): {n:,} keys `key_{{i}}`, "
        f"median of {rounds} rounds,",
        "every ratio against a baseline measured in the same round. 2-core shared machine.",
        "",
        "| measurement | operations/s (median) |",
        "|---|---|",
    ]
    for k, v in med.items():
        if "bytes" not in k:
            lines.append(f"| {k} | {v:,.0f} |")
    lines += ["", "| memory | bytes per item |", "|---|---|"]
    lines.append(f"| mappy counter at 1% | {med['maplet bytes/item']:.2f} |")
    lines.append(f"| dict counter with its key strings | {med['dict bytes/item']:.1f} |")
    lines += ["", "| target | measured | goal | met |", "|---|---|---|---|"]
    for name, value, goal in checks:
        lines.append(f"| {name} | {value:.2f}x | >= {goal}x | {'yes' if value >= goal else 'no'} |")
    np_rate = med["maplet batch_insert (NumPy uint64)"]
    met = "yes" if np_rate >= 20e6 else "no"
    rate = f"{np_rate / 1e6:.1f}M keys/s"
    lines.append(f"| batch insert of a NumPy uint64 array | {rate} | >= 20M keys/s | {met} |")
    bpi = med["maplet bytes/item"]
    lines.append(f"| counter memory at 1% | {bpi:.2f} bytes/item | <= 3 | {'yes' if bpi <= 3 else 'no'} |")
    (HERE / "RESULTS-python.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [
        "dict insert",
        "maplet insert",
        "dict query",
        "maplet query",
        "rbloom in",
        "maplet in",
        "maplet batch_insert (list)",
        "maplet batch_insert (NumPy uint64)",
    ]
    fig, ax = plt.subplots(figsize=(9, 4.5))
    ax.barh(
        names,
        [med[k] / 1e6 for k in names],
        color=["#999" if not k.startswith("maplet") else "#2a7" for k in names],
    )
    ax.set_xlabel("million operations per second (median)")
    ax.set_title(f"mappy_python vs dict and rbloom, {n:,} string keys")
    fig.tight_layout()
    fig.savefig(HERE / "python.png", dpi=110)


if __name__ == "__main__":
    main()
