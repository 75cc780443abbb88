"""Basic maplet operations: the main job of `make demo`.

Counts the k-mers of the bundled sample reads, shows what a maplet answers,
its size against a Python dict, and a save/load round trip.
"""

import os
import sys
import tempfile
from pathlib import Path

import mappy_python as mappy

SAMPLE = Path(__file__).resolve().parent / "data" / "sample_reads.fa"


def reads(path):
    seq = []
    for line in path.read_text().splitlines():
        if line.startswith(">"):
            if seq:
                yield "".join(seq)
            seq = []
        else:
            seq.append(line.strip())
    if seq:
        yield "".join(seq)


def main(k=21):
    # Quick start: a counter with a 1% false-positive rate.
    maplet = mappy.Maplet(1000, 0.01, mappy.CounterOperator())
    maplet.insert("user:123", 42)
    maplet.insert("user:456", 17)
    print(f"user:123 -> {maplet.query('user:123')}, user:999 -> {maplet.query('user:999')}")

    # k-mer counting over the sample reads, in batches.
    sequences = list(reads(SAMPLE))
    kmers = [s[i : i + k] for s in sequences for i in range(len(s) - k + 1)]
    counter = mappy.Maplet(len(set(kmers)), 0.01, mappy.CounterOperator())
    counter.batch_insert(kmers, [1] * len(kmers))
    exact = {}
    for km in kmers:
        exact[km] = exact.get(km, 0) + 1
    wrong = sum(1 for km, n in exact.items() if counter.query(km) != n)
    low = sum(1 for km, n in exact.items() if counter.query(km) < n)
    stats = counter.stats()
    print(f"{len(sequences)} reads, {len(kmers):,} {k}-mers, {len(exact):,} distinct")
    print(f"answers exact for {100 * (1 - wrong / len(exact)):.2f}% of k-mers; {low} below the truth")
    print(f"maplet: {stats.memory_usage:,} bytes ({stats.bits_per_item:.1f} bits per k-mer)")
    dict_bytes = sys.getsizeof(exact) + sum(sys.getsizeof(km) for km in exact)
    print(f"dict:   {dict_bytes:,} bytes ({dict_bytes / stats.memory_usage:.0f}x more)")
    top = sorted(exact, key=exact.get, reverse=True)[:3]
    for km in top:
        print(f"  {km}: {counter.query(km)} (exact {exact[km]})")

    # Save and load.
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "kmers.maplet")
        counter.save(path)
        again = mappy.Maplet.load(path)
        assert again.query(top[0]) == counter.query(top[0])
        print(f"saved and loaded {os.path.getsize(path):,} bytes")


if __name__ == "__main__":
    main()
