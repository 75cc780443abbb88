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
        [--workers 2] [--shards 64] [--rounds 3] [--out benchmarks/dask/RESULTS.md]
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
METHODS = {
    "single": "one process, `batch_insert`",
    "tree": "tree merge (`shards=None`)",
    "sharded-p2p": "sharded, P2P shuffle",
    "sharded-tasks": "sharded, task shuffle",
}
#: Room over the key count, so that no shard outgrows its share (the
#: single-process and tree-merged maplets get the same parameters).
ROOM = 1.05


def keys_of(part: int, per_part: int):
    import numpy as np

    return np.random.default_rng(part).integers(0, 2**63, size=per_part, dtype=np.uint64)


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class CountShuffleSends:
    """A worker plugin that counts the bytes each worker's P2P shuffle sends
    to other workers (not those it sends itself)."""

    name = "count-shuffle-sends"

    def setup(self, worker) -> None:
        from dask.sizeof import sizeof
        from distributed.shuffle._core import ShuffleRun

        worker.mappy_bench_sent = 0
        send = ShuffleRun._send
        if getattr(send, "counted", False):
            return

        async def counted(run, address, shards):
            if address != run.local_address:
                worker.mappy_bench_sent += len(shards) if isinstance(shards, bytes) else sizeof(shards)
            return await send(run, address, shards)

        counted.counted = True
        ShuffleRun._send = counted


def worker_figures(dask_worker) -> dict:
    import resource

    shuffle = getattr(dask_worker, "mappy_bench_sent", 0)
    return {
        "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        # Task results sent to other workers and the client (a task
        # shuffle's too), sized by Dask's `sizeof` (a maplet's is its
        # memory, see Maplet.__sizeof__).
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
        from distributed import WorkerPlugin

        client.register_plugin(type("Count", (CountShuffleSends, WorkerPlugin), {})())
        bag = db.from_delayed([dask.delayed(keys_of)(p, per_part) for p in range(args.partitions)])
        t = time.perf_counter()
        if args.method == "tree":
            m = mappy.dask.build(bag, expected_items=expected, false_positive_rate=RATE, shards=None)
        else:
            m = mappy.dask.build(
                bag,
                expected_items=expected,
                false_positive_rate=RATE,
                shards=args.shards,
                path=out,
                shuffle_method=args.method.split("-")[1],
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
    built = {"tree": mappy.Maplet.load(os.path.join(args.work, "tree.maplet"), mmap=True)}
    for m in ("sharded-p2p", "sharded-tasks"):
        built[m] = mappy.ShardedMaplet.load(os.path.join(args.work, m), mmap=True)
    out = {}
    for name, probes in (("keys", keys), ("absent", absent)):
        want = single.batch_query(probes)
        for m, got in built.items():
            out[f"{m}_{name}_equal"] = bool(np.array_equal(got.batch_query(probes), want))
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
    ap.add_argument("--shards", type=int, default=64)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--work", default=None)
    ap.add_argument("--method", choices=list(METHODS), default=None)
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
        runs: dict = {m: [] for m in METHODS}
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
    for method, label in METHODS.items():
        dist = method != "single"
        rows.append(
            f"| {label} | {span(method, lambda r: r['wall_s'], '.1f')} | "
            f"{span(method, worker_peak, ',.0f') if dist else '-'} | "
            f"{span(method, lambda r: r['client_mb'], ',.0f')} | "
            f"{span(method, lambda r: moved(r) / 2**20, ',.0f') if dist else '-'} |"
        )

    def verdicts(method: str) -> list:
        peak = max(med(method, worker_peak), med(method, lambda r: r["client_mb"]))
        sent = med(method, moved)
        exact = checked[f"{method}_keys_equal"] and checked[f"{method}_absent_equal"]
        return [
            f"- {METHODS[method]}: largest worker {med(method, worker_peak):,.0f} MB, client "
            f"{med(method, lambda r: r['client_mb']):,.0f} MB against {budget:,.0f} MB: "
            f"{'met' if peak <= budget else 'NOT met'}; {sent / 2**20:,.0f} MiB moved "
            f"({sent / n:.2f} bytes a key, {sent / hashes:.2f} x the hashes) against "
            f"{(2 * hashes + table) / 2**20:,.0f} MiB: "
            f"{'met' if sent <= 2 * hashes + table else 'NOT met'}; answers "
            f"{'exactly' if exact else 'NOT exactly'} as one process's.",
        ]

    lines = [
        "# Dask: building one counter maplet from many partitions",
        "",
        f"{n:,} random 64-bit keys in {args.partitions} partitions, counter at rate {RATE},",
        f"`expected_items` {int(n * ROOM):,} (5% room) for every build; a `LocalCluster` of",
        f"{args.workers} worker processes (one thread each) on 127.0.0.1 of a 2-core machine;",
        f'{args.shards} shards (what `shards="auto"` picks: tables of at most 2 MiB). '
        f"Median of {args.rounds} rounds (min-max). Made by `make bench-dask`:",
        "",
        "```",
        f"python benchmarks/dask/build.py --keys {args.keys} --partitions {args.partitions} "
        f"--workers {args.workers} --shards {args.shards} --rounds {args.rounds}",
        "```",
        "",
        "| build | wall s | largest worker's peak RSS, MB | client's peak RSS, MB "
        "| moved between processes, MiB |",
        "|---|---|---|---|---|",
        *rows,
        "",
        f"The table: {table / 2**20:,.1f} MiB; the keys' hashes {hashes / 2**20:,.0f} MiB. "
        "Against the targets (at most 1.5 x (table / workers) + 300 MB for every process;",
        "at most 2 x the hashes plus the table moved; answers exactly those of one process,",
        f"over all {checked['keys']:,} keys and {checked['absent']:,} absent ones, of which "
        f"{checked['false_positives']:,} are false positives of every build):",
        "",
        *(line for m in ("tree", "sharded-p2p", "sharded-tasks") for line in verdicts(m)),
        "",
        "Moved between processes: what each worker's P2P shuffle sent to other",
        "workers (counted by a worker plugin at the shuffle's send), plus every",
        "task result a worker sent another worker or the client (a task shuffle's",
        "pieces included), as Dask's own transfer counters size them (a maplet by",
        "its memory, see `Maplet.__sizeof__`). The sharded builds send each",
        "shard its keys as one run per partition (`Maplet.encode_runs`: sorted,",
        "delta-coded home slots and fingerprints), write their shards to",
        "`path=` on the workers and send back only their names. Each",
        "process's peak RSS covers its whole life: an idle worker that has",
        "imported NumPy, pandas, PyArrow and mappy is about 165 MB.",
        "",
    ]
    with open(args.out, "w") as f:
        f.write("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
