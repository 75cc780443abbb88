"""Fuzzes every way the Python package opens saved data.

For every operator, valid maplets are mutated (bit flips, header sizes set
to hostile values, truncations, extensions, splices; the checksum is then
recomputed half the time, so that mutations reach the decoder past it) and
opened through ``Maplet.from_bytes`` (refusing and allowing pickled
values), ``pickle.loads`` of a pickled maplet (in band, and out of band
under protocol 5), ``Maplet.load`` and
``Maplet.load(..., mmap=True)``; whatever opens is then queried, verified,
copied and written back. A case passes if it raises a
``MapletError``, ``ValueError``, ``TypeError``, ``OSError`` or
``MemoryError`` (or, where pickled values are allowed, whatever unpickling
damaged bytes raises), or opens; it fails if the process dies, or a
``PanicException`` or any other exception escapes.

Workers run in child processes under an address-space limit (``--mem``
GiB); a worker that dies is a crash, reported with the seed that replays
it (``--replay SEED``).

    python tests/fuzz/fuzz_python.py SECONDS [--mem GIB] [--json OUT]
"""

import argparse
import json
import os
import pickle
import random
import resource
import struct
import subprocess
import sys
import tempfile
import time

import numpy as np
import xxhash

import mappy_python as mappy

CASES_PER_WORKER = 2000
# Header fields (docs/FORMAT.md) whose hostile values are most telling.
SIZE_FIELDS = [12, 20, 24, 32, 40, 48, 56, 64, 72, 80, 88, 96]
HOSTILE = [0, 1, 7, 8, 2**31, 2**32 - 1, 2**40, 2**62, 2**63, 2**64 - 1]


def custom(a, b):
    return a + b


def seeds():
    """(name, operator for opening, bytes) of a few valid maplets of every operator."""
    out = []
    ops = {
        "counter": (mappy.CounterOperator(), lambda i: i % 300),
        "signed": (mappy.CounterOperator(signed=True), lambda i: i - 50),
        "max-int": (mappy.MaxOperator(), lambda i: i * 3),
        "min-float": (mappy.MinOperator(), lambda i: i / 7),
        "max-object": (mappy.MaxOperator(), lambda i: f"v{i}"),
        "set": (mappy.SetOperator(), lambda i: {i, f"s{i}", b"b"}),
        "vector64": (mappy.VectorOperator(), lambda i: np.array([i, 1.0])),
        "vector32": (mappy.VectorOperator(), lambda i: np.array([i, 1.0], dtype=np.float32)),
        "custom": (mappy.CustomOperator(custom), lambda i: i),
        "custom-pickled": (mappy.CustomOperator(custom), lambda i: (i,)),
    }
    for name, (op, value) in ops.items():
        for n in (0, 3, 200):
            m = mappy.Maplet(max(n, 8), 0.01, op)
            for i in range(n):
                m.insert(f"k{i}", value(i))
            out.append((name, op, m.to_bytes()))
    return out


class Pickled:
    """Pickles as a maplet of the given bytes would: in band, or (``oob``)
    as an out-of-band buffer of a ``bytearray`` under protocol 5."""

    def __init__(self, data, func, oob=False):
        self.data, self.func, self.oob = data, func, oob

    def __reduce_ex__(self, protocol):
        data = pickle.PickleBuffer(bytearray(self.data)) if self.oob and protocol >= 5 else self.data
        return (mappy.Maplet._restore, (data, self.func))


def reseal(data):
    body = data[:-8]
    return body + struct.pack("<Q", xxhash.xxh3_64_intdigest(body))


def mutate(rng, data, pool):
    data = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        kind = rng.randrange(6)
        if kind == 0 and data:  # flip bits
            for _ in range(rng.randint(1, 8)):
                data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
        elif kind == 1 and len(data) > 104:  # a hostile size in the header
            at = rng.choice(SIZE_FIELDS)
            width = 4 if at in (12, 20) else 8
            v = rng.choice(HOSTILE) % (1 << (8 * width))
            data[at : at + width] = v.to_bytes(width, "little")
        elif kind == 2:  # truncate
            del data[rng.randrange(len(data) + 1) :]
        elif kind == 3:  # extend
            data += bytes(rng.randrange(256) for _ in range(rng.choice([1, 8, 64])))
        elif kind == 4 and data:  # splice another maplet in
            other = rng.choice(pool)[2]
            at = rng.randrange(len(data))
            n = rng.randrange(1, 64)
            data[at : at + n] = other[at : at + n]
        elif kind == 5 and len(data) > 624:  # overwrite in the table or side store
            at = rng.randrange(616, len(data))
            data[at : at + 8] = rng.randbytes(8)
    data = bytes(data)
    if len(data) >= 16 and rng.random() < 0.5:
        data = reseal(data)
    return data


EXPECTED = (mappy.MapletError, ValueError, TypeError, OSError, MemoryError, pickle.UnpicklingError, EOFError)


def exercise(m):
    for k in ("k0", "k1", "absent", 5):
        m.query(k)
        _ = k in m
    m.batch_query(["k0", "k2", "zz"])
    len(m)
    m.stats()
    try:
        m.verify()
    except mappy.CorruptDataError:
        return
    m.copy()
    m.to_bytes()


def one_case(rng, pool, tmp, counts):
    name, op, base = rng.choice(pool)
    data = mutate(rng, base, pool)
    mode = rng.choice(["bytes", "bytes-pickle-allowed", "pickle", "file", "mmap"])
    counts[mode] = counts.get(mode, 0) + 1
    counts[name] = counts.get(name, 0) + 1
    try:
        if mode == "bytes":
            m = mappy.Maplet.from_bytes(data, op)
        elif mode == "bytes-pickle-allowed":
            m = mappy.Maplet.from_bytes(data, op, allow_pickle=True)
        elif mode == "pickle":
            func = op.func if isinstance(op, mappy.CustomOperator) else None
            if rng.random() < 0.5:
                m = pickle.loads(pickle.dumps(Pickled(data, func)))
            else:
                buffers = []
                small = pickle.dumps(
                    Pickled(data, func, oob=True), protocol=5, buffer_callback=buffers.append
                )
                m = pickle.loads(small, buffers=buffers)
        else:
            path = os.path.join(tmp, "case.maplet")
            with open(path, "wb") as f:
                f.write(data)
            m = mappy.Maplet.load(path, op, mmap=(mode == "mmap"))
        counts["opened"] = counts.get("opened", 0) + 1
        exercise(m)
    except EXPECTED:
        counts["refused"] = counts.get("refused", 0) + 1
    except Exception:
        # Unpickling damaged values (allowed here) may raise anything
        # pickle raises; a PanicException is a BaseException and escapes.
        if mode not in ("bytes-pickle-allowed", "pickle"):
            raise
        counts["refused"] = counts.get("refused", 0) + 1


def worker(seed, n, mem_gib):
    limit = mem_gib << 30
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    rng = random.Random(seed)
    pool = seeds()
    counts = {}
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(n):
            one_case(rng, pool, tmp, counts)
    print(json.dumps(counts))


def main():
    p = argparse.ArgumentParser()
    p.add_argument("seconds", type=float, nargs="?", default=10)
    p.add_argument("--mem", type=int, default=4, help="address-space limit of a worker, GiB")
    p.add_argument("--json", help="write the counts here")
    p.add_argument("--worker", type=int, help=argparse.SUPPRESS)
    p.add_argument("--replay", type=int, help="replay one worker's seed in this process")
    args = p.parse_args()
    if args.worker is not None or args.replay is not None:
        worker(args.worker if args.worker is not None else args.replay, CASES_PER_WORKER, args.mem)
        return
    start = time.monotonic()
    total, crashes, failures = {}, [], []
    seed = 0
    while time.monotonic() - start < args.seconds:
        r = subprocess.run(
            [sys.executable, __file__, "--worker", str(seed), "--mem", str(args.mem)],
            capture_output=True,
            text=True,
        )
        if r.returncode < 0:
            crashes.append({"seed": seed, "signal": -r.returncode, "stderr": r.stderr[-2000:]})
        elif r.returncode != 0:
            failures.append({"seed": seed, "stderr": r.stderr[-2000:]})
        else:
            for k, v in json.loads(r.stdout).items():
                total[k] = total.get(k, 0) + v
        seed += 1
    total["cases"] = sum(total.get(m, 0) for m in ("bytes", "bytes-pickle-allowed", "pickle", "file", "mmap"))
    report = {
        "seconds": round(time.monotonic() - start),
        "workers": seed,
        "counts": total,
        "crashes": crashes,
        "failures": failures,
    }
    text = json.dumps(report, indent=1)
    print(text)
    if args.json:
        with open(args.json, "w") as f:
            f.write(text)
    sys.exit(1 if crashes or failures else 0)


if __name__ == "__main__":
    main()
