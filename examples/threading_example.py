"""Many threads, one maplet: inserts from threads add up exactly, and batch
calls let other threads run while they work."""

import threading

import numpy as np

import mappy_python as mappy


def main(threads=4, per_thread=10_000):
    shared = mappy.Maplet(1000, 0.01, mappy.CounterOperator())

    def worker(worker_id):
        for i in range(per_thread):
            shared.insert(f"key_{i % 100}", 1)

    pool = [threading.Thread(target=worker, args=(i,)) for i in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    total = sum(shared.query(f"key_{i}") for i in range(100))
    print(f"total count: {total} (expected {threads * per_thread})")

    # Batch inserts release the GIL: four threads each insert an array.
    big = mappy.Maplet(4_000_000, 0.01, mappy.CounterOperator())
    arrays = [np.arange(i * 1_000_000, (i + 1) * 1_000_000, dtype=np.uint64) for i in range(4)]
    pool = [
        threading.Thread(target=big.batch_insert, args=(a, np.ones(len(a), dtype=np.int64))) for a in arrays
    ]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    print(f"entries after parallel batches: {len(big):,}")


if __name__ == "__main__":
    main()
