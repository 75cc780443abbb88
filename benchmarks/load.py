"""Loading and saving a large maplet, side by side with reading and writing
its bytes.

For each size N (default 10 million and 50 million keys), builds a counter
maplet at a false-positive rate of 0.01 as ``mmap_open.py`` does, saves it,
then times in alternating rounds (median of ``ROUNDS``, default 15): a plain
``open().read()`` of the file, ``Maplet.load``, ``Maplet.from_bytes`` and
``pickle.loads`` (every check kept: checksum, sizes, table invariants); a
plain ``open().write()`` of the same bytes, the same followed by
``os.fsync``, and the same done atomically as ``save`` does it (a new file
flushed to disk, renamed over the old one, the rename made durable),
``Maplet.save``, ``Maplet.to_bytes`` and ``pickle.dumps``; and pickling
under protocol 5 with a ``buffer_callback``, as Dask's workers do (the
bytes out of band, received as a memoryview of ``bytes``, which is read in
place, and of a ``bytearray``, which is copied first). Reports MB/s
(10^6 bytes) and each time over the plain read's (loads) or plain write's
(saves). Writes ``benchmarks/RESULTS-load.md``.

    python benchmarks/load.py [N ...]
"""

import os
import pickle
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import mappy_python as mappy

ROUNDS = int(os.environ.get("ROUNDS", "15"))
# Compared with the plain write; the rest with the plain read.
SAVES = {
    "open().write()",
    "open().write() + fsync",
    "the same, atomically (as save)",
    "Maplet.save",
    "Maplet.to_bytes",
    "pickle.dumps",
    "pickle.dumps, out of band",
}


def build(n):
    m = mappy.Maplet(n, 0.01, mappy.CounterOperator())
    for start in range(0, n, 5_000_000):
        keys = np.arange(start, min(n, start + 5_000_000), dtype=np.uint64)
        m.batch_insert(keys, np.ones(len(keys), dtype=np.int64))
    return m


def plain_write(path, data, sync):
    with open(path, "wb") as f:
        f.write(data)
        if sync:
            f.flush()
            os.fsync(f.fileno())


def atomic_write(path, data):
    """What ``save`` does, in plain Python: a new file beside ``path``,
    flushed to disk, renamed over it, and the rename made durable."""
    tmp = os.path.join(os.path.dirname(path), ".atomic.tmp")
    plain_write(tmp, data, True)
    os.rename(tmp, path)
    fd = os.open(os.path.dirname(path), os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def measure(n, d):
    m = build(n)
    path = os.path.join(d, f"m{n}.maplet")
    plain = os.path.join(d, f"plain{n}.bin")
    m.save(path)
    with open(path, "rb") as f:
        data = f.read()
    pickled = pickle.dumps(m)
    # Protocol 5 with a buffer callback, as Dask's workers pickle: the bytes
    # travel beside the pickle, and arrive as a memoryview of a frame.
    frames = []
    small = pickle.dumps(m, protocol=5, buffer_callback=frames.append)
    received = [memoryview(bytes(f.raw())) for f in frames]
    # A frame in writable memory (a bytearray) must be copied before it is
    # checked: its owner could change it meanwhile.
    writable = [memoryview(bytearray(f.raw())) for f in frames]
    # Each loaded maplet answers as the saved one.
    for x in (
        mappy.Maplet.load(path),
        mappy.Maplet.from_bytes(data),
        pickle.loads(pickled),
        pickle.loads(small, buffers=received),
        pickle.loads(small, buffers=writable),
    ):
        assert len(x) == len(m) and x.query(12345) == m.query(12345)
        del x

    def read():
        with open(path, "rb") as f:
            return f.read()

    ops = {
        "open().read()": read,
        "Maplet.load": lambda: mappy.Maplet.load(path),
        "Maplet.from_bytes": lambda: mappy.Maplet.from_bytes(data),
        "pickle.loads": lambda: pickle.loads(pickled),
        "pickle.loads, out of band": lambda: pickle.loads(small, buffers=received),
        "the same from writable memory": lambda: pickle.loads(small, buffers=writable),
        "open().write()": lambda: plain_write(plain, data, False),
        "open().write() + fsync": lambda: plain_write(plain, data, True),
        "the same, atomically (as save)": lambda: atomic_write(plain, data),
        "Maplet.save": lambda: m.save(path),
        "Maplet.to_bytes": lambda: m.to_bytes(),
        "pickle.dumps": lambda: pickle.dumps(m),
        "pickle.dumps, out of band": lambda: pickle.dumps(m, protocol=5, buffer_callback=list().append),
    }
    times = {k: [] for k in ops}
    for _ in range(ROUNDS):
        for name, op in ops.items():
            t = time.perf_counter()
            out = op()
            times[name].append(time.perf_counter() - t)
            del out
    return len(data), {k: statistics.median(v) for k, v in times.items()}


def main():
    sizes = [int(a) for a in sys.argv[1:]] or [10_000_000, 50_000_000]
    lines = [
        "# Loading and saving at memory speed",
        "",
        f"`python benchmarks/load.py {' '.join(map(str, sizes))}`: a counter maplet at",
        "rate 0.01 per size, built as `mmap_open.py` builds it; median of",
        f"{ROUNDS} alternating rounds (the file is in the page cache). MB/s is 10^6",
        "bytes a second; *ratio* is the time over the plain read's (loads) or",
        "the plain write's without fsync (saves). Loading keeps every check:",
        "the checksum, every size, every table invariant. Measured on",
        f"{os.cpu_count()} CPUs shared with other work: runs differ by a quarter or more.",
        "",
    ]
    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_DIR")) as d:
        for n in sizes:
            size, med = measure(n, d)
            lines += [
                f"## {n:,} keys: a file of {size / 2**20:.1f} MiB",
                "",
                "| operation | ms | MB/s | ratio |",
                "|---|---|---|---|",
            ]
            for name, t in med.items():
                base = med["open().write()" if name in SAVES else "open().read()"]
                lines.append(f"| `{name}` | {1e3 * t:.1f} | {size / t / 1e6:,.0f} | {t / base:.1f} |")
            lines.append("")
            print("\n".join(lines[-len(med) - 5 :]), flush=True)
    out = Path(__file__).resolve().parent / "RESULTS-load.md"
    out.write_text("\n".join(lines))


if __name__ == "__main__":
    main()
