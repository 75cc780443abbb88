"""Building one counter maplet from many partitions on Dask: the sharded
build against the tree merge and against one process's ``batch_insert``.

Each build runs in a fresh process of its own (so that the client's peak
memory is its own), on a fresh ``LocalCluster`` of worker processes on
127.0.0.1. The keys are random 64-bit integers (as good as distinct), made
on the workers partition by partition from a seed, so that the client holds
none; one process makes the same keys for the single-process build. Every
build saves its result; a last process memory-maps all of them and checks
that the sharded and tree-merged maplets answer every key, and a million
absent ones, exactly as the single-process maplet does.

Measured: wall time of the build (from the client's call to its result), the
peak resident memory of every worker process and of the client
(``getrusage``: the whole life of each process), and the bytes the workers
sent one another and the client: the shuffle's (Dask's P2P comms) and
task results fetched (``get-data``).

    python benchmarks/dask/build.py [--keys 50000000] [--partitions 200]
        [--workers 2] [--shards 16] [--rounds 3] [--out benchmarks/dask/RESULTS.md]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time

RATE = 0.01
#: Room over the key count, so that no shard outgrows its share (the
#: single-process and tree-merged maplets get the same parameters).
ROOM = 1.05


def keys_of(part: int, per_part: int):
    import numpy as np

    return np.random.default_rng(part).integers(0, 2**63, size=per_part, dtype=np.uint64)


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def worker_figures(dask_worker) -> dict:
    import resource

    shuffle = 0
    for k, v in dask_worker.digests_total.items():
        if len(k) == 5 and k[0] == "p2p" and k[2:] == ("background-comms", "process", "bytes"):
            shuffle += v
    return {
        "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        # Task results sent to other workers and the client, sized by
        # Dask's `sizeof` (a maplet's is its memory, see Maplet.__sizeof__).
        "get_data_bytes": dask_worker.transfer_outgoing_bytes_total,
        "shuffle_bytes": shuffle,
    }


def run_one(args: argparse.Namespace) -> dict:
    """One build, in this process; prints its figures as JSON."""
    import numpy as np

    import mappy_python as mappy

    per_part = args.keys // args.partitions
    n = per_part * args.partitions
    expected = int(n * ROOM)
    out = os.path.join(args.work, args.method)
    if args.method == "single":
        keys = np.concatenate([keys_of(p, per_part) for p in range(args.partitions)])
        t = time.perf_counter()
        m = mappy.Maplet(expected, RATE)
        m.batch_insert(keys, np.ones(len(keys), dtype=np.int64))
        wall = time.perf_counter() - t
        m.save(out + ".maplet")
        return {"wall_s": wall, "client_mb": peak_mb(), "workers": [], "table_bytes": m.stats().memory_usage}

    import dask
    import dask.bag as db
    from dask.distributed import Client, LocalCluster

    with (
        LocalCluster(
            n_workers=args.workers,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            dashboard_address=None,
            memory_limit=0,
        ) as cluster,
        Client(cluster) as client,
    ):
        bag = db.from_delayed([dask.delayed(keys_of)(p, per_part) for p in range(args.partitions)])
        t = time.perf_counter()
        if args.method == "tree":
            m = mappy.dask.build(bag, expected_items=expected, false_positive_rate=RATE, shards=None)
        else:
            m = mappy.dask.build(
                bag, expected_items=expected, false_positive_rate=RATE, shards=args.shards, path=out
            )
        wall = time.perf_counter() - t
        workers = list(client.run(worker_figures).values())
    if args.method == "tree":
        m.save(out + ".maplet")
    return {
        "wall_s": wall,
        "client_mb": peak_mb(),
        "workers": workers,
        "table_bytes": m.stats()["memory_usage"],
    }


def check(args: argparse.Namespace) -> dict:
    """Every key and a million absent ones, answered by the three builds."""
    import numpy as np

    import mappy_python as mappy

    per_part = args.keys // args.partitions
    keys = np.concatenate([keys_of(p, per_part) for p in range(args.partitions)])
    absent = np.random.default_rng(10**9).integers(2**63, 2**64 - 1, size=1_000_000, dtype=np.uint64)
    single = mappy.Maplet.load(os.path.join(args.work, "single.maplet"), mmap=True)
    tree = mappy.Maplet.load(os.path.join(args.work, "tree.maplet"), mmap=True)
    sharded = mappy.ShardedMaplet.load(os.path.join(args.work, "sharded"), mmap=True)
    out = {}
    for name, probes in (("keys", keys), ("absent", absent)):
        want = single.batch_query(probes)
        out[f"sharded_{name}_equal"] = bool(np.array_equal(sharded.batch_query(probes), want))
        out[f"tree_{name}_equal"] = bool(np.array_equal(tree.batch_query(probes), want))
        out[f"{name}"] = len(probes)
    out["false_positives"] = int(np.count_nonzero(single.batch_query(absent)))
    return out


def subprocess_json(args: argparse.Namespace, *extra: str) -> dict:
    cmd = [
        sys.executable,
        __file__,
        "--keys",
        str(args.keys),
        "--partitions",
        str(args.partitions),
        "--workers",
        str(args.workers),
        "--shards",
        str(args.shards),
        "--work",
        args.work,
        *extra,
    ]
    r = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if r.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{r.stderr[-4000:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--keys", type=int, default=50_000_000)
    ap.add_argument("--partitions", type=int, default=200)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--shards", type=int, default=16)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--work", default=None)
    ap.add_argument("--method", choices=["single", "tree", "sharded"], default=None)
    ap.add_argument("--check", action="store_true")
    ap.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "RESULTS.md"))
    args = ap.parse_args()
    if args.method:
        print(json.dumps(run_one(args)))
        return
    if args.check:
        print(json.dumps(check(args)))
        return

    with tempfile.TemporaryDirectory(prefix="mappy-dask-bench-") as work:
        args.work = work
        runs: dict = {"single": [], "tree": [], "sharded": []}
        for r in range(args.rounds):
            for method in runs:
                got = subprocess_json(args, "--method", method)
                runs[method].append(got)
                print(f"round {r + 1} {method}: {got['wall_s']:.1f} s", file=sys.stderr)
        checked = subprocess_json(args, "--check")
    write_results(args, runs, checked)


def write_results(args: argparse.Namespace, runs: dict, checked: dict) -> None:
    per_part = args.keys // args.partitions
    n = per_part * args.partitions
    table = statistics.median(r["table_bytes"] for r in runs["single"])
    budget = 1.5 * table / args.workers / 2**20 + 300
    hashes = 8 * n

    def med(method: str, f) -> float:
        return statistics.median(f(r) for r in runs[method])

    def span(method: str, f, fmt: str) -> str:
        xs = [f(r) for r in runs[method]]
        return f"{format(statistics.median(xs), fmt)} ({format(min(xs), fmt)}-{format(max(xs), fmt)})"

    def worker_peak(r: dict) -> float:
        return max((w["peak_mb"] for w in r["workers"]), default=0.0)

    def moved(r: dict) -> float:
        return sum(w["get_data_bytes"] + w["shuffle_bytes"] for w in r["workers"])

    rows = []
    for method, label in (
        ("single", "one process, `batch_insert`"),
        ("tree", "tree merge (`shards=None`)"),
        ("sharded", f"sharded (`shards={args.shards}`, `path=`)"),
    ):
        rows.append(
            f"| {label} | {span(method, lambda r: r['wall_s'], '.1f')} | "
            f"{span(method, worker_peak, ',.0f') if method != 'single' else '-'} | "
            f"{span(method, lambda r: r['client_mb'], ',.0f')} | "
            f"{span(method, lambda r: moved(r) / 2**20, ',.0f') if method != 'single' else '-'} |"
        )
    sharded_moved = med("sharded", moved)
    client_peak = med("sharded", lambda r: r["client_mb"])
    lines = [
        "# Dask: building one counter maplet from many partitions",
        "",
        f"{n:,} random 64-bit keys in {args.partitions} partitions, counter at rate {RATE},",
        f"`expected_items` {int(n * ROOM):,} (5% room) for every build; a `LocalCluster` of",
        f"{args.workers} worker processes (one thread each) on 127.0.0.1 of a 2-core machine.",
        f"Median of {args.rounds} rounds (min-max). Made by `make bench-dask`:",
        "",
        "```",
        f"python benchmarks/dask/build.py --keys {args.keys} --partitions {args.partitions} "
        f"--workers {args.workers} --shards {args.shards} --rounds {args.rounds}",
        "```",
        "",
        "| build | wall s | largest worker's peak RSS, MB | client's peak RSS, MB | sent by workers, MiB |",
        "|---|---|---|---|---|",
        *rows,
        "",
        f"The table: {table / 2**20:,.1f} MiB. Targets (issue: scale-out):",
        "",
        f"- every worker and the client at most 1.5 x (table / workers) + 300 MB = {budget:,.0f} MB: "
        f"largest sharded worker {med('sharded', worker_peak):,.0f} MB, client "
        f"{client_peak:,.0f} MB: "
        f"{'met' if max(med('sharded', worker_peak), client_peak) <= budget else 'NOT met'};",
        f"- bytes moved at most 2 x the keys' hashes plus the table = "
        f"{(2 * hashes + table) / 2**20:,.0f} MiB: sharded {sharded_moved / 2**20:,.0f} MiB "
        f"({sharded_moved / hashes:.2f} x the hashes): "
        f"{'met' if sharded_moved <= 2 * hashes + table else 'NOT met'};",
        f"- answers exactly as the single-process maplet over all {checked['keys']:,} keys and "
        f"{checked['absent']:,} absent ones: sharded "
        f"{'yes' if checked['sharded_keys_equal'] and checked['sharded_absent_equal'] else 'NO'}, "
        f"tree merge {'yes' if checked['tree_keys_equal'] and checked['tree_absent_equal'] else 'NO'} "
        f"({checked['false_positives']:,} of the absent keys are false positives of all three, "
        f"{checked['false_positives'] / checked['absent']:.4f}).",
        "",
        "Sent by workers: Dask's P2P shuffle comms plus every task result a worker",
        "sent another worker or the client, as the workers' own metrics count them",
        "(results by Dask's `sizeof`: a maplet's is its memory); the sharded build writes its shards to",
        "`path=` on the workers and sends back only their names. Each process's",
        "peak RSS covers its whole life (Python, NumPy, pandas and Dask included:",
        "an idle worker is about 150 MB).",
        "",
    ]
    with open(args.out, "w") as f:
        f.write("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
