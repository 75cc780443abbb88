"""NumPy arrays as values and as batches of keys."""

import numpy as np

import mappy_python as mappy


def main():
    # Vectors, summed element by element; float32 stays float32.
    vectors = mappy.Maplet(1000, 0.01, mappy.VectorOperator())
    vectors.insert("vec1", np.array([1.0, 2.0, 3.0], dtype=np.float32))
    vectors.insert("vec1", np.array([0.5, 0.5, 0.5], dtype=np.float32))
    v = vectors.query("vec1")
    print(f"vec1 = {v} ({v.dtype})")

    # A million integer keys from an array, inserted and queried in batches.
    rng = np.random.default_rng(7)
    keys = rng.integers(0, 2**63, size=1_000_000, dtype=np.uint64)
    counts = mappy.Maplet(1_000_000, 0.01, mappy.CounterOperator())
    counts.batch_insert(keys, np.ones(len(keys), dtype=np.int64))
    answers = counts.batch_query(keys[:5])
    print(f"first counts: {answers} ({type(answers).__name__}, {answers.dtype})")
    print(f"absent keys found: {counts.batch_contains(np.arange(10_000, dtype=np.uint64)).sum()} of 10000")
    s = counts.stats()
    print(f"{s.item_count:,} entries in {s.memory_usage / 2**20:.1f} MiB ({s.bits_per_item:.1f} bits each)")


if __name__ == "__main__":
    main()
