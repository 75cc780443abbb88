"""k-mer counting on realistic reads: mappy against KMC 3 and Jellyfish 2.

The input is made deterministically from Debian packages: the E. coli K-12
MG1655 genome of `ragout-examples` (`apt-get download ragout-examples`,
`dpkg-deb -x`), and 30x HiSeq 2500 paired reads (2 x 150 bp) simulated from
it by ART (`art-nextgen-simulation-tools`):
`art_illumina -ss HS25 -p -l 150 -f 30 -m 500 -s 10 -rs 42`. Needs `kmc`,
`kmc_tools`, `jellyfish`, `art_illumina` and the package installed
(`make install`); `apt-get install -y art-nextgen-simulation-tools kmc jellyfish`.

Each tool runs ROUNDS times (medians, min-max): wall time and peak RSS by
`/usr/bin/time -v`, scratch disk by polling the scratch folder's size every
50 ms, output size. Accuracy of mappy's file against KMC's exact counts
(`kmc -ci1 -cs4294967295`, `kmc_tools transform ... dump`), and its measured
false-positive rate on 1,000,000 random k-mers absent from the reads.
Writes benchmarks/kmers/RESULTS-kmc.md.

    python benchmarks/kmers/kmc.py [--work DIR] [--k 21 31] [--threads 1 2] [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import subprocess
import sys
import threading
import time

import numpy as np

import mappy_python as mappy

HERE = os.path.dirname(os.path.abspath(__file__))
RATE = 0.001


def run(cmd: list[str], **kw) -> None:
    subprocess.run(cmd, check=True, **kw)


def make_input(work: str) -> list[str]:
    reads = [os.path.join(work, "reads1.fq"), os.path.join(work, "reads2.fq")]
    if all(os.path.exists(r) for r in reads):
        return reads
    genome = os.path.join(work, "MG1655-K12.fasta")
    if not os.path.exists(genome):
        run(["apt-get", "download", "ragout-examples"], cwd=work)
        deb = next(f for f in os.listdir(work) if f.startswith("ragout-examples") and f.endswith(".deb"))
        run(["dpkg-deb", "-x", deb, "pkg"], cwd=work)
        src = os.path.join(work, "pkg/usr/share/doc/ragout/examples/E.Coli/references/MG1655-K12.fasta.gz")
        with open(genome, "wb") as out:
            run(["zcat", src], stdout=out)
    run(
        ["art_illumina", "-ss", "HS25", "-p", "-l", "150", "-f", "30", "-m", "500", "-s", "10", "-rs", "42",
         "-i", genome, "-o", os.path.join(work, "reads"), "-na", "-q"],
        stdout=subprocess.DEVNULL,
    )  # fmt: skip
    return reads


def du(path: str) -> int:
    total = 0
    for root, _, files in os.walk(path):
        for f in files:
            try:
                total += os.lstat(os.path.join(root, f)).st_blocks * 512
            except OSError:
                pass
    return total


def measure(cmd: list[str], scratch: str | None) -> tuple[float, int, int]:
    """Wall seconds, peak RSS in bytes, peak scratch bytes."""
    if scratch:
        shutil.rmtree(scratch, ignore_errors=True)
        os.makedirs(scratch)
    peak = [0]
    done = threading.Event()

    def poll() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], du(scratch))
            time.sleep(0.05)

    poller = threading.Thread(target=poll) if scratch else None
    if poller:
        poller.start()
    p = subprocess.run(["/usr/bin/time", "-v", *cmd], capture_output=True, text=True)
    done.set()
    if poller:
        poller.join()
    if p.returncode != 0:
        sys.exit(f"failed: {' '.join(cmd)}\n{p.stderr}")
    wall = rss = 0.0
    for line in p.stderr.splitlines():
        line = line.strip()
        if line.startswith("Elapsed (wall clock)"):
            s = 0.0
            for part in line.rsplit(": ", 1)[1].split(":"):
                s = s * 60 + float(part)
            wall = s
        elif line.startswith("Maximum resident set size"):
            rss = int(line.rsplit(": ", 1)[1]) * 1024
    return wall, int(rss), peak[0]


def encode(kmer: str) -> int:
    return int(kmer.translate(str.maketrans("ACGT", "0123")), 4)


def canonical_int(x: int, k: int) -> int:
    rc, y = 0, x
    for _ in range(k):
        rc = (rc << 2) | (3 - (y & 3))
        y >>= 2
    return min(x, rc)


def accuracy(maplet_path: str, dump: str, k: int) -> dict:
    kmers, truth = [], []
    with open(dump) as f:
        for line in f:
            km, c = line.split()
            kmers.append(km)
            truth.append(int(c))
    truth = np.array(truth, dtype=np.int64)
    m = mappy.Maplet.load(maplet_path)
    got = np.asarray(mappy.query_kmers(m, kmers))
    present = np.sort(np.array([encode(x) for x in kmers], dtype=np.uint64))
    rng = random.Random(1)
    absent: list[str] = []
    while len(absent) < 1_000_000:
        batch = [canonical_int(rng.getrandbits(2 * k), k) for _ in range(200_000)]
        arr = np.array(batch, dtype=np.uint64)
        pos = np.searchsorted(present, arr).clip(0, len(present) - 1)
        for x, hit in zip(batch, present[pos] == arr):
            if not hit:
                absent.append(np.base_repr(x, 4).zfill(k).translate(str.maketrans("0123", "ACGT")))
    absent = absent[:1_000_000]
    fp = np.asarray(mappy.query_kmers(m, absent))
    return {
        "kmers": len(kmers),
        "exact": float((got == truth).mean()),
        "below": int((got < truth).sum()),
        "fp": float((fp > 0).mean()),
        "absent": len(absent),
    }


def fmt(values: list[float], unit: float, digits: int) -> str:
    med = statistics.median(values) / unit
    return f"{med:.{digits}f} ({min(values) / unit:.{digits}f}-{max(values) / unit:.{digits}f})"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", default="/tmp/mappy-kmc-bench")
    ap.add_argument("--k", type=int, nargs="+", default=[21])
    ap.add_argument("--threads", type=int, nargs="+", default=[2, 1])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--partitions", type=int, default=16)
    ap.add_argument("--out", default=os.path.join(HERE, "RESULTS-kmc.md"))
    args = ap.parse_args()
    work = args.work
    os.makedirs(work, exist_ok=True)
    reads = make_input(work)
    mappy_bin = os.path.join(os.path.dirname(sys.executable), "mappy")
    listing = os.path.join(work, "reads.lst")
    with open(listing, "w") as f:
        f.write("\n".join(reads) + "\n")
    bases = sum(len(line) - 1 for r in reads for i, line in enumerate(open(r)) if i % 4 == 1)
    scratch = os.path.join(work, "scratch")
    sections, commands = [], []
    for k in args.k:
        # KMC's exact counts: the truth, and the distinct count for the hints.
        truth_db = os.path.join(work, f"truth{k}")
        run(["kmc", f"-k{k}", "-t2", "-ci1", "-cs4294967295", "-hp", f"@{listing}", truth_db, work],
            stdout=subprocess.DEVNULL)  # fmt: skip
        dump = os.path.join(work, f"truth{k}.tsv")
        run(["kmc_tools", "-hp", "transform", truth_db, "dump", dump], stdout=subprocess.DEVNULL)
        distinct = sum(1 for _ in open(dump))
        for t in args.threads:
            out = os.path.join(work, "out")
            m_out = os.path.join(work, "m.maplet")
            base = [mappy_bin, "kmers", "count", "-k", str(k), "--rate", str(RATE), "--threads", str(t)]
            parts = ["--partitions", str(args.partitions), "--tmp-dir", scratch]
            kmc_cmd = ["kmc", f"-k{k}", f"-t{t}", "-ci1", "-cs4294967295", "-hp", f"@{listing}", out, scratch]
            jf = ["jellyfish", "count", "-m", str(k), "-C", "-t", str(t), "-o", os.path.join(scratch, "jf")]
            hint = ["--expected-items", str(distinct)]
            tools = {
                "KMC 3": (kmc_cmd, [out + ".kmc_pre", out + ".kmc_suf"]),
                "Jellyfish 2, sized": ([*jf, "-s", str(distinct), *reads], None),
                "Jellyfish 2, unsized (-s 1M)": ([*jf, "-s", "1M", *reads], None),
                "mappy in memory, hint": ([*base, *hint, "-o", m_out, *reads], [m_out]),
                "mappy in memory, no hint": ([*base, "-o", m_out, *reads], [m_out]),
                "mappy in parts, hint": ([*base, *hint, *parts, "-o", m_out, *reads], [m_out]),
                "mappy in parts, no hint": ([*base, *parts, "-o", m_out, *reads], [m_out]),
            }
            results: dict[str, list[tuple[float, int, int, int]]] = {n: [] for n in tools}
            files: dict[str, bytes] = {}
            for _ in range(args.rounds):
                for name, (cmd, outputs) in tools.items():
                    wall, rss, disk = measure(cmd, scratch)
                    if outputs is None:  # Jellyfish writes its output into the scratch folder
                        outputs = [os.path.join(scratch, f) for f in os.listdir(scratch)]
                        size = sum(os.path.getsize(f) for f in outputs)
                        disk = max(0, disk - size)
                    else:
                        size = sum(os.path.getsize(f) for f in outputs)
                    results[name].append((wall, rss, disk, size))
                    if name.startswith("mappy"):
                        with open(m_out, "rb") as f:
                            files[name] = f.read()
                        if name == "mappy in parts, no hint" and t == args.threads[0]:
                            acc_file = os.path.join(work, f"acc{k}.maplet")
                            shutil.copy(m_out, acc_file)
                    commands.append(" ".join(cmd))
            same_hint = files["mappy in memory, hint"] == files["mappy in parts, hint"]
            same_none = files["mappy in memory, no hint"] == files["mappy in parts, no hint"]
            kmc_wall = statistics.median(w for w, *_ in results["KMC 3"])
            kmc_rss = statistics.median(r for _, r, *_ in results["KMC 3"])
            rows = [
                f"### k = {k}, {t} thread{'s' if t > 1 else ''}",
                "",
                "| tool | wall s | peak RSS MB | scratch MB | output MB | wall / KMC | RSS / KMC |",
                "|---|---|---|---|---|---|---|",
            ]
            for name, rs in results.items():
                walls = [r[0] for r in rs]
                rss = [r[1] for r in rs]
                disk = [r[2] for r in rs]
                rows.append(
                    f"| {name} | {fmt(walls, 1, 2)} | {fmt(rss, 1e6, 0)} | {fmt(disk, 1e6, 0)} | "
                    f"{statistics.median(r[3] for r in rs) / 1e6:.0f} | "
                    f"{statistics.median(walls) / kmc_wall:.2f} | {statistics.median(rss) / kmc_rss:.3f} |"
                )
            rows += [
                "",
                f"In memory and in parts, the files are byte for byte the same: with the hint {same_hint}, "
                f"without {same_none}.",
                "",
            ]
            sections.append("\n".join(rows))
        acc = accuracy(os.path.join(work, f"acc{k}.maplet"), dump, k)
        sections.append(
            f"Accuracy at k = {k} (mappy in parts, no hint, rate {RATE}) against KMC 3's exact counts of "
            f"{acc['kmers']:,} distinct k-mers: {acc['exact']:.5f} counted exactly, {acc['below']} below the "
            f"truth; false-positive rate on {acc['absent']:,} random k-mers absent from the reads: "
            f"{acc['fp']:.5f} (configured {RATE}, ratio {acc['fp'] / RATE:.2f}).\n"
        )
    text = [
        "# k-mer counting: mappy against KMC 3 and Jellyfish 2",
        "",
        f"Input: E. coli K-12 MG1655 (`ragout-examples`), 30x ART HiSeq 2500 paired reads, 2 x 150 bp "
        f"(`art_illumina -ss HS25 -p -l 150 -f 30 -m 500 -s 10 -rs 42`): {bases:,} bp in two FASTQ files.",
        "",
        f"Method: `python benchmarks/kmers/kmc.py` ({' '.join(sys.argv[1:]) or 'defaults'}); each "
        f"tool {args.rounds} times in turn, median (min-max). Wall time and peak RSS by `/usr/bin/time -v`; "
        "scratch disk as the peak size of the scratch folder, polled every 50 ms (Jellyfish: of its output "
        "folder, less the output); output size of the final files. mappy at rate 0.001, in parts "
        f"`--partitions {args.partitions} --tmp-dir`, where the save also writes the table once to a "
        "temporary file beside the output (as large as the output), not counted as scratch. 2 cores, "
        "shared with other work: medians.",
        "",
        *sections,
        "## Exact commands",
        "",
        "```",
        *sorted(set(commands)),
        "```",
        "",
    ]
    with open(args.out, "w") as f:
        f.write("\n".join(text))
    print("\n".join(text))


if __name__ == "__main__":
    main()
