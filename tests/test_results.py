"""The figures the README's benchmark table quotes are the ones in the
results files it links to, as `make bench` last wrote them."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()


def section(text, title):
    start = text.index(f"\n## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end > 0 else None]


def test_every_decimal_figure_of_the_benchmark_table_is_in_a_results_file():
    bench = section(README, "Benchmarks")
    linked = re.findall(r"\]\((benchmarks/[^)]+\.md)\)", bench)
    assert len(linked) >= 4, linked
    results = "\n".join((ROOT / p).read_text() for p in linked)
    table = [line for line in bench.splitlines() if line.startswith("| ")]
    assert len(table) >= 6
    figures = {f for line in table for f in re.findall(r"(?<![\d.])\d+\.\d+(?![\d.])", line)}
    assert len(figures) >= 30
    missing = sorted(f for f in figures if not re.search(rf"(?<![\d.]){re.escape(f)}(?!\d)", results))
    assert not missing, f"in the README's table but in no results file: {missing}"


def test_the_pitch_quotes_the_table():
    pitch = README[: README.index("\n## ")]
    bench = section(README, "Benchmarks")
    for figure in re.findall(r"\d+\.\d+(?:-\d+\.\d+)?", pitch):
        assert figure in bench, figure
