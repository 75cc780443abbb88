"""k-mer counting speed of two builds of the package, side by side in one run.

Each build is a Python interpreter with its own ``mappy_python`` installed.
Rounds alternate between the builds (old, new, old, new, ...); each round
runs ``mappy kmers count`` on the same reads, in memory and in 8 parts, in a
fresh process, and records its wall time and CPU time. The table gives the
median over ROUNDS rounds of each build and the ratio new / old, and checks
that both builds write the same bytes.

    python benchmarks/compare_kmers.py OLD_PYTHON NEW_PYTHON READS [K] [ROUNDS] [OUT.md]

Reads can come from ``benchmarks/kmers/make_reads.py``.
"""

import filecmp
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time

MODES = {
    "in memory": [],
    "in 8 parts": ["--partitions", "8"],
}


def one_run(python, reads, k, mode, out):
    args = [python, "-m", "mappy_python.cli", "kmers", "count", "-k", str(k), "--threads", "2"]
    args += [*MODES[mode], "-o", out, reads]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(args, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def main():
    old, new, reads = sys.argv[1], sys.argv[2], sys.argv[3]
    k = int(sys.argv[4]) if len(sys.argv) > 4 else 21
    rounds = int(sys.argv[5]) if len(sys.argv) > 5 else 5
    out_path = sys.argv[6] if len(sys.argv) > 6 else None
    runs = {(b, m): [] for b in ("old", "new") for m in MODES}
    with tempfile.TemporaryDirectory() as work:
        files = {b: os.path.join(work, f"{b}.maplet") for b in ("old", "new")}
        same = True
        for _ in range(rounds):
            for mode in MODES:
                for build, python in (("old", old), ("new", new)):
                    runs[build, mode].append(one_run(python, reads, k, mode, files[build]))
                same = same and filecmp.cmp(files["old"], files["new"], shallow=False)
    size = os.path.getsize(reads)
    lines = [
        f"`python benchmarks/compare_kmers.py OLD NEW READS {k} {rounds}`: "
        f"`mappy kmers count -k {k} --threads 2` on {size / 1e6:.0f} MB of reads, "
        f"{rounds} alternating rounds per build and mode, medians. "
        f"Both builds wrote the same bytes in every round: {'yes' if same else 'NO'}.",
        "",
        "| mode | old wall s | new wall s | new / old | old CPU s | new CPU s | new / old |",
        "|---|---|---|---|---|---|---|",
    ]
    for mode in MODES:
        ow = statistics.median(w for w, _ in runs["old", mode])
        nw = statistics.median(w for w, _ in runs["new", mode])
        oc = statistics.median(c for _, c in runs["old", mode])
        nc = statistics.median(c for _, c in runs["new", mode])
        lines.append(
            f"| {mode} | {ow:.2f} | {nw:.2f} | {nw / ow:.3f} | {oc:.2f} | {nc:.2f} | {nc / oc:.3f} |"
        )
    text = "\n".join(lines) + "\n"
    print(text)
    if out_path:
        with open(out_path, "w") as f:
            f.write(text)
    if not same:
        sys.exit("the two builds wrote different files")


if __name__ == "__main__":
    main()
