"""End-to-end: build, merge, save, reload, memory-map and query, as an
application would. Runs under pytest, or directly:

    python tests/test_integration.py
"""

import os
import pickle
import sys
import tempfile

import numpy as np

import mappy_python as mappy


def test_word_counts_end_to_end():
    words = [f"word{(i * 7919) % 20_000}" for i in range(200_000)]
    truth = {}
    for w in words:
        truth[w] = truth.get(w, 0) + 1
    halves = []
    for part in (words[:100_000], words[100_000:]):
        m = mappy.Maplet(20_000, 0.001, mappy.CounterOperator())
        m.batch_insert(part, [1] * len(part))
        halves.append(m)
    merged = mappy.merge(halves)
    single = mappy.Maplet(20_000, 0.001, mappy.CounterOperator())
    single.batch_insert(words, [1] * len(words))
    assert all(merged.query(w) == single.query(w) >= n for w, n in truth.items())
    # A colliding pair makes two answers inexact: allow twice the rate.
    assert sum(merged.query(w) == n for w, n in truth.items()) >= (1 - 2 * 0.001) * len(truth)
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "words.maplet")
        merged.save(path)
        for loaded in (
            mappy.Maplet.load(path),
            mappy.Maplet.load(path, mmap=True),
            pickle.loads(pickle.dumps(merged)),
        ):
            assert all(loaded.query(w) == merged.query(w) for w in list(truth)[:2000])
        del loaded


def test_kmers_end_to_end():
    sample = os.path.join(os.path.dirname(__file__), "..", "examples", "data", "sample_reads.fa")
    m = mappy.Maplet(150_000, 0.001, mappy.CounterOperator())
    stats = mappy.count_kmers(m, sample, 21)
    assert stats["sequences"] == 2000 and stats["kmers"] == 2000 * 130
    read = open(sample).read().splitlines()[1]
    assert m.query(mappy.canonical_kmer(read[:21])) >= 1
    again = mappy.Maplet(150_000, 0.001, mappy.CounterOperator())
    mappy.count_kmers(again, [read], 21)
    assert again.query(mappy.canonical_kmer(read[:21])) == 1


def test_numpy_batches_end_to_end():
    keys = np.arange(100_000, dtype=np.uint64) * 2654435761
    m = mappy.Maplet(100_000, 0.01, mappy.CounterOperator())
    m.batch_insert(keys, np.full(len(keys), 3, dtype=np.int64))
    assert (m.batch_query(keys) >= 3).all()


if __name__ == "__main__":
    failures = 0
    for name, test in sorted(globals().items()):
        if name.startswith("test_") and callable(test):
            try:
                test()
                print(f"ok     {name}")
            except Exception as e:  # report every failure, then exit non-zero
                failures += 1
                print(f"FAILED {name}: {type(e).__name__}: {e}")
    print(f"{sum(n.startswith('test_') for n in globals()) - failures} passed, {failures} failed")
    sys.exit(1 if failures else 0)
