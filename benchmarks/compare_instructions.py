"""Instructions per call of two builds of the package, counted by callgrind.

Wall-clock ratios on a shared machine scatter widely; instruction counts do
not (the same binary and inputs give the same count whatever else runs).
For each call, each build runs a fresh process under ``valgrind
--tool=callgrind`` twice, doing the call over N string keys once and then
five times; the difference of the two totals over 4N is the cost of one
call, with the set-up (import, building the maplet) cancelled out.

    python benchmarks/compare_instructions.py OLD_PYTHON NEW_PYTHON [N] [OUT.md]
"""

import os
import re
import subprocess
import sys
import tempfile

SCRIPT = r"""
import gc
import sys
import mappy_python as mappy

gc.disable()  # a collection would land in one run and not the other

n, reps, call = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
keys = [f"key_{i}" for i in range(n)]
ctor = {"set insert (sets of 20)": mappy.SetOperator, "max insert": mappy.MaxOperator}
m = mappy.Maplet(n, 0.01, ctor.get(call, mappy.CounterOperator)())
if call in ("query", "contains", "in"):
    for k in keys:
        m.insert(k, 1)


def run():
    if call == "insert":
        ins = m.insert
        for k in keys:
            ins(k, 1)
    elif call == "max insert":
        ins = m.insert
        for i, k in enumerate(keys):
            ins(k, i)
    elif call == "set insert (sets of 20)":
        ins = m.insert
        w = max(1, n // 20)
        for i in range(n):
            ins(keys[i % w], {i})
    elif call == "query":
        q = m.query
        for k in keys:
            q(k)
    elif call == "contains":
        c = m.contains
        for k in keys:
            c(k)
    elif call == "in":
        for k in keys:
            k in m


for _ in range(reps):
    run()
"""

CALLS = ["insert", "query", "contains", "in", "max insert", "set insert (sets of 20)"]


def instructions(python, n, reps, call, script):
    with tempfile.NamedTemporaryFile(suffix=".out") as out:
        r = subprocess.run(
            ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out.name}", python, script]
            + [str(n), str(reps), call],
            capture_output=True,
            text=True,
            check=True,
            # str hashes are salted per process unless fixed: dict and set
            # work would differ from run to run.
            env={**os.environ, "PYTHONHASHSEED": "0"},
        )
    return int(re.search(r"Collected : (\d+)", r.stderr).group(1))


def per_call(python, n, call, script):
    # The inserting calls grow their maplet on the repeats (into existing
    # entries): the repeats measure inserts that merge, as most do.
    return (instructions(python, n, 5, call, script) - instructions(python, n, 1, call, script)) / (4 * n)


def main():
    old, new = sys.argv[1], sys.argv[2]
    n = int(sys.argv[3]) if len(sys.argv) > 3 else 20_000
    out_path = sys.argv[4] if len(sys.argv) > 4 else None
    with tempfile.NamedTemporaryFile("w", suffix=".py", delete=False) as f:
        f.write(SCRIPT)
    lines = [
        f"`python benchmarks/compare_instructions.py OLD NEW {n}`: instructions per call "
        f"(callgrind), {n:,} string keys; a call's figure includes the Python loop around it.",
        "",
        "| call | old | new | new / old |",
        "|---|---|---|---|",
    ]
    for call in CALLS:
        o, w = per_call(old, n, call, f.name), per_call(new, n, call, f.name)
        lines.append(f"| {call} | {o:,.0f} | {w:,.0f} | {w / o:.3f} |")
        print(lines[-1], flush=True)
    text = "\n".join(lines) + "\n"
    print(text)
    if out_path:
        with open(out_path, "w") as fh:
            fh.write(text)


if __name__ == "__main__":
    main()
