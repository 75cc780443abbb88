"""k-mer counting without a size hint, from a thousand to 500 million distinct k-mers.

For each size N the input is one random sequence (seeded, so the same every
run) cut into FASTA records of a million k-mers each, N 31-mers in all: with
4^31 possible 31-mers, the chance that two of 500 million coincide (or one is
another's reverse complement) is about 5%, so the distinct count is N, the
exact hint. Each way of counting (in memory and in parts, with the hint N
and without one) runs ROUNDS times in turn, 2 threads: wall time and peak
RSS by `/usr/bin/time -v` (medians, min-max), the ratio of each without a
hint to the same with it, output size, and whether the files of the two
modes are the same byte for byte. Needs the package installed
(`make install`). Writes benchmarks/kmers/RESULTS-scale.md.

    python benchmarks/kmers/scale.py [--work DIR] [--sizes 1000 ...] [--rounds 3]
"""

from __future__ import annotations

import argparse
import filecmp
import os
import random
import shutil
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from kmc import fmt, measure  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
K = 31
RATE = 0.001
PER_RECORD = 1_000_000
BASES = bytes.maketrans(bytes(range(256)), b"ACGT" * 64)


def make_input(work: str, n: int) -> str:
    """A FASTA file of `n` random 31-mers, made once."""
    path = os.path.join(work, f"random-{n}.fa")
    if os.path.exists(path):
        return path
    rng = random.Random(n)
    with open(path + ".tmp", "wb") as f:
        left, i = n, 0
        while left:
            m = min(left, PER_RECORD)
            f.write(b">r%d\n" % i + rng.randbytes(m + K - 1).translate(BASES) + b"\n")
            left, i = left - m, i + 1
    os.replace(path + ".tmp", path)
    return path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", default="/tmp/mappy-scale-bench")
    sizes = [1_000, 1_000_000, 30_000_000, 100_000_000, 500_000_000]
    ap.add_argument("--sizes", type=int, nargs="+", default=sizes)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--partitions", type=int, default=64)
    ap.add_argument("--out", default=os.path.join(HERE, "RESULTS-scale.md"))
    args = ap.parse_args()
    os.makedirs(args.work, exist_ok=True)
    mappy_bin = os.path.join(os.path.dirname(sys.executable), "mappy")
    scratch = os.path.join(args.work, "scratch")
    commands: list[str] = []
    rows: list[str] = []
    for n in args.sizes:
        reads = make_input(args.work, n)
        configs = {}
        for mode in ("in memory", "in parts"):
            for hinted in (True, False):
                name = f"{mode.replace(' ', '-')}-{'hint' if hinted else 'none'}.maplet"
                out = os.path.join(args.work, name)
                cmd = [mappy_bin, "kmers", "count", "-k", str(K), "--rate", str(RATE)]
                cmd += ["--threads", str(args.threads)]
                if hinted:
                    cmd += ["--expected-items", str(n)]
                if mode == "in parts":
                    cmd += ["--partitions", str(args.partitions), "--tmp-dir", scratch]
                cmd += ["-o", out, reads]
                configs[(mode, hinted)] = (cmd, out)
                commands.append(" ".join(cmd))
        runs: dict = {c: [] for c in configs}
        for _ in range(args.rounds):
            for c, (cmd, _) in configs.items():
                runs[c].append(measure(cmd, scratch if c[0] == "in parts" else None))
                print(n, c, runs[c][-1], file=sys.stderr)
        same, same_none = (
            filecmp.cmp(configs[("in memory", h)][1], configs[("in parts", h)][1], shallow=False)
            for h in (True, False)
        )
        for mode in ("in memory", "in parts"):
            hint, none = runs[(mode, True)], runs[(mode, False)]
            t_ratio = statistics.median(r[0] for r in none) / statistics.median(r[0] for r in hint)
            m_ratio = statistics.median(r[1] for r in none) / statistics.median(r[1] for r in hint)
            size_h = os.path.getsize(configs[(mode, True)][1]) / 1e6
            size_n = os.path.getsize(configs[(mode, False)][1]) / 1e6
            rows.append(
                f"| {n:,} | {mode} | {fmt([r[0] for r in hint], 1, 2)} | {fmt([r[0] for r in none], 1, 2)} "
                f"| {t_ratio:.2f} | {fmt([r[1] for r in hint], 1e6, 0)} "
                f"| {fmt([r[1] for r in none], 1e6, 0)} "
                f"| {m_ratio:.2f} | {size_h:.2f} / {size_n:.2f} | {same} / {same_none} |"
            )
        for _, out in configs.values():
            os.remove(out)
    shutil.rmtree(scratch, ignore_errors=True)
    with open(args.out, "w") as f:
        f.write(
            "# k-mer counting without a size hint, 1k to 500M distinct k-mers\n\n"
            f"Input: for each N, one seeded random sequence cut into FASTA records of a million {K}-mers, "
            f"N {K}-mers in all, each distinct (two of 500M coinciding has odds of about 1 in 20), "
            "so N is the exact hint.\n\n"
            f"Method: `python benchmarks/kmers/scale.py --rounds {args.rounds}` "
            f"(--threads {args.threads} --partitions {args.partitions}); every way of counting "
            f"{args.rounds} times in turn, median (min-max). Wall time and peak RSS by `/usr/bin/time -v`; "
            "ratio: without a hint over with the exact one; same file: in memory and in parts byte for byte, "
            f"with the hint / without. mappy at rate {RATE}, k = {K}. 2 cores, shared with other work.\n\n"
            "| distinct | mode | wall s, hint | wall s, no hint | time ratio | peak RSS MB, hint "
            "| peak RSS MB, no hint | memory ratio | output MB, hint / none | same file |\n"
            "|---|---|---|---|---|---|---|---|---|---|\n" + "\n".join(rows) + "\n\n"
            "## Exact commands\n\n```\n" + "\n".join(commands) + "\n```\n"
        )


if __name__ == "__main__":
    main()
