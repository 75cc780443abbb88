"""What a limited-API (abi3) build would cost, per call: two builds side by side.

Each build is a Python interpreter with its own ``mappy_python`` installed
(docs/RELEASING.md says how the abi3 one is made). Rounds alternate between
the builds, each round a fresh process that times every call REPEATS times
over N string keys and keeps the best (the least disturbed by other work on
the machine); the table gives, per call, the median over the rounds of the
ratio abi3 / per-version within each pair of rounds.

    python benchmarks/abi3_cost.py PER_VERSION_PYTHON ABI3_PYTHON [N] [ROUNDS] [REPEATS]
"""

import json
import statistics
import subprocess
import sys

ROUND = r"""
import gc, json, sys, time
import mappy_python as mappy

n, repeats = int(sys.argv[1]), int(sys.argv[2])
keys = [f"key_{i}" for i in range(n)]
ones = [1] * n
r = {}

def best(name, setup, f):
    times = []
    for _ in range(repeats):
        arg = setup()
        gc.collect()
        t = time.perf_counter()
        f(arg)
        times.append(time.perf_counter() - t)
    r[name] = n / min(times)

def fresh():
    return mappy.Maplet(n, 0.01)

def full():
    m = fresh()
    m.batch_insert(keys, ones)
    return m

def insert(m):
    ins = m.insert
    for k in keys:
        ins(k, 1)

def query(m):
    q = m.query
    for k in keys:
        q(k)

def contains(m):
    for k in keys:
        k in m

best("insert", fresh, insert)
best("query", full, query)
best("in", full, contains)
best("batch_insert (list)", fresh, lambda m: m.batch_insert(keys, ones))
best("batch_query (list)", full, lambda m: m.batch_query(keys))
print(json.dumps(r))
"""


def one_round(python, n, repeats):
    out = subprocess.run(
        [python, "-c", ROUND, str(n), str(repeats)], capture_output=True, text=True, check=True
    )
    return json.loads(out.stdout)


def main():
    per_version, abi3 = sys.argv[1], sys.argv[2]
    n = int(sys.argv[3]) if len(sys.argv) > 3 else 200_000
    rounds = int(sys.argv[4]) if len(sys.argv) > 4 else 15
    repeats = int(sys.argv[5]) if len(sys.argv) > 5 else 5
    pairs = [(one_round(per_version, n, repeats), one_round(abi3, n, repeats)) for _ in range(rounds)]
    print(
        f"`python benchmarks/abi3_cost.py PER_VERSION ABI3 {n} {rounds} {repeats}`: {n:,} string keys, "
        f"{rounds} alternating rounds, best of {repeats} per call and round.\n"
    )
    print("| call | per-version (calls/s) | abi3 (calls/s) | abi3 / per-version | quartiles |")
    print("|---|---|---|---|---|")
    for name in pairs[0][0]:
        a = statistics.median(p[name] for p, _ in pairs)
        b = statistics.median(q[name] for _, q in pairs)
        ratios = [q[name] / p[name] for p, q in pairs]
        q1, med, q3 = statistics.quantiles(ratios, n=4)
        print(f"| {name} | {a:,.0f} | {b:,.0f} | {med:.3f} | {q1:.3f}-{q3:.3f} |")


if __name__ == "__main__":
    main()
