"""Opening a large saved maplet: memory-mapped against read in full.

Builds a counter maplet of N keys (default 50 million, a file of about
80 MB), saves it, then times, median of 5 rounds each: ``Maplet.load``
(reads and checks the whole file), ``Maplet.load(mmap=True)`` (maps it), and
the first query after each. Writes ``benchmarks/RESULTS-mmap.md``.

    python benchmarks/mmap_open.py [N]
"""

import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import mappy_python as mappy


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 50_000_000
    m = mappy.Maplet(n, 0.01, mappy.CounterOperator())
    for start in range(0, n, 5_000_000):
        keys = np.arange(start, min(n, start + 5_000_000), dtype=np.uint64)
        m.batch_insert(keys, np.ones(len(keys), dtype=np.int64))
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "big.maplet")
        m.save(path)
        size = os.path.getsize(path)
        del m
        rows = {}
        for mode in ("load (read and check)", "load(mmap=True)"):
            opens, firsts = [], []
            for _ in range(5):
                t = time.perf_counter()
                x = mappy.Maplet.load(path, mmap=mode.startswith("load(mmap"))
                opens.append(time.perf_counter() - t)
                t = time.perf_counter()
                assert x.query(12345) >= 1
                firsts.append(time.perf_counter() - t)
                del x
            rows[mode] = (statistics.median(opens), statistics.median(firsts))
    lines = [
        "# Opening a saved maplet",
        "",
        f"`python benchmarks/mmap_open.py {n}` (`make bench`): a counter maplet of {n:,} keys, "
        f"a file of {size / 2**20:.0f} MiB;",
        "median of 5 rounds (the file is in the page cache after the first).",
        "",
        "| open with | open (ms) | first query (ms) |",
        "|---|---|---|",
    ]
    for mode, (o, f) in rows.items():
        lines.append(f"| `Maplet.{mode}` | {1e3 * o:.2f} | {1e3 * f:.3f} |")
    (Path(__file__).resolve().parent / "RESULTS-mmap.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
