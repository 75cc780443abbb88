"""Every example runs and prints what it should."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"

EXPECTED = {
    "basic_usage.py": [r"user:123 -> 42, user:999 -> None", r" 0 below the truth", r"saved and loaded"],
    "kmer_counting.py": [r"answers below the truth: 0", r"exact answers: (99|100)\."],
    "distributed_cache.py": [
        r"local: 1700000600",
        r"fetched: 1700000600",
        r"missing: None",
        r"page:3 views: 100",
    ],
    "numpy_integration.py": [
        r"vec1 = \[1\.5 2\.5 3\.5\] \(float32\)",
        r"first counts: \[1 1 1 1 1\] \(ndarray, int64\)",
    ],
    "threading_example.py": [
        r"total count: 40000 \(expected 40000\)",
        r"entries after parallel batches: 3,9\d\d,\d\d\d",
    ],
}


def test_every_example_is_tested():
    assert sorted(p.name for p in EXAMPLES.glob("*.py")) == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_example(name):
    r = subprocess.run([sys.executable, str(EXAMPLES / name)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    for pattern in EXPECTED[name]:
        assert re.search(pattern, r.stdout), f"{pattern!r} not in:\n{r.stdout}"
