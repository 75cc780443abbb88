"""Per-call speed of two builds of the package, side by side in one run.

Each build is a Python interpreter with its own ``mappy_python`` installed.
Rounds alternate between the builds (old, new, old, new, ...), each round
a fresh process timing the same calls over N string keys; the table gives
the median over ROUNDS rounds of each build and the ratio new / old.

    python benchmarks/compare_builds.py OLD_PYTHON NEW_PYTHON [N] [ROUNDS] [OUT.md]
"""

import json
import statistics
import subprocess
import sys

ROUND = r"""
import gc, json, os, sys, time
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
import numpy as np
import mappy_python as mappy

n = int(sys.argv[1])
keys = [f"key_{i}" for i in range(n)]
np_keys = np.arange(n, dtype=np.uint64)
ones = [1] * n
r = {}

def timed(name, f):
    gc.collect()
    t = time.perf_counter()
    f()
    r[name] = n / (time.perf_counter() - t)

m = mappy.Maplet(n, 0.01)
def insert():
    ins = m.insert
    for k in keys:
        ins(k, 1)
timed("insert", insert)
def query():
    q = m.query
    for k in keys:
        q(k)
timed("query", query)
def contains():
    for k in keys:
        k in m
timed("in", contains)
timed("batch_insert (list)", lambda: mappy.Maplet(n, 0.01).batch_insert(keys, ones))
timed("batch_insert (NumPy)", lambda: mappy.Maplet(n, 0.01).batch_insert(np_keys, np.ones(n, dtype=np.int64)))
timed("batch_query (list)", lambda: m.batch_query(keys))
mx = mappy.Maplet(n, 0.01, mappy.MaxOperator())
def max_insert():
    ins = mx.insert
    for i, k in enumerate(keys):
        ins(k, i)
timed("max insert", max_insert)
ms = mappy.Maplet(n, 0.01, mappy.SetOperator())
def set_insert():
    # Sets of 20 items on average: n / 20 keys, each item a new one.
    ins = ms.insert
    k = max(1, n // 20)
    for i in range(n):
        ins(keys[i % k], {i})
timed("set insert (sets of 20)", set_insert)
print(json.dumps(r))
"""


def one_round(python, n):
    out = subprocess.run([python, "-c", ROUND, str(n)], capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def main():
    old, new = sys.argv[1], sys.argv[2]
    n = int(sys.argv[3]) if len(sys.argv) > 3 else 1_000_000
    rounds = int(sys.argv[4]) if len(sys.argv) > 4 else 5
    out_path = sys.argv[5] if len(sys.argv) > 5 else None
    runs = {"old": [], "new": []}
    for _ in range(rounds):
        runs["old"].append(one_round(old, n))
        runs["new"].append(one_round(new, n))
    lines = [
        f"`python benchmarks/compare_builds.py OLD NEW {n} {rounds}`: {n:,} string keys, "
        f"{rounds} alternating rounds per build, medians.",
        "",
        "| call | old (ops/s) | new (ops/s) | new / old | min-max of new / old per round |",
        "|---|---|---|---|---|",
    ]
    for name in runs["old"][0]:
        o = statistics.median(r[name] for r in runs["old"])
        w = statistics.median(r[name] for r in runs["new"])
        per = [b[name] / a[name] for a, b in zip(runs["old"], runs["new"])]
        lines.append(f"| {name} | {o:,.0f} | {w:,.0f} | {w / o:.3f} | {min(per):.3f}-{max(per):.3f} |")
    text = "\n".join(lines) + "\n"
    print(text)
    if out_path:
        with open(out_path, "w") as f:
            f.write(text)


if __name__ == "__main__":
    main()
