"""The figures the benchmarks page's summary table and the README quote are
the ones in the results files, as `make bench` last wrote them."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()
BENCHMARKS = (ROOT / "docs" / "benchmarks.md").read_text()
# The results files the benchmarks page includes (pymdownx.snippets lines).
INCLUDED = re.findall(r'^--8<-- "(benchmarks/[^":]+\.md)(?::\d+)*"$', BENCHMARKS, flags=re.M)
RESULTS = "\n".join((ROOT / p).read_text() for p in INCLUDED)
DECIMAL = r"(?<![\d.])\d+\.\d+(?![\d.])"


def section(text, title):
    start = text.index(f"\n## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end > 0 else None]


def missing_from_results(figures):
    return sorted(f for f in figures if not re.search(rf"(?<![\d.]){re.escape(f)}(?!\d)", RESULTS))


def test_the_benchmarks_page_includes_every_results_file_of_the_table():
    assert len(INCLUDED) >= 8, INCLUDED
    for path in INCLUDED:
        assert (ROOT / path).is_file(), path


def test_every_decimal_figure_of_the_benchmark_table_is_in_a_results_file():
    glance = section(BENCHMARKS, "At a glance")
    table = [line for line in glance.splitlines() if line.startswith("| ")]
    assert len(table) >= 6
    figures = {f for line in table for f in re.findall(DECIMAL, line)}
    assert len(figures) >= 30
    missing = missing_from_results(figures)
    assert not missing, f"in the benchmarks page's table but in no results file: {missing}"


def test_the_readme_quotes_the_results_files():
    """The pitch's figures (bits per key) and the k-mer counter's."""
    pitch = README[: README.index("\n## ")]
    kmers = section(README, "Counting k-mers from the command line")
    kmers = re.sub(r"```.*?```", "", kmers, flags=re.S)  # not the commands' k-mers
    pitch_figures = re.findall(DECIMAL, pitch)
    assert len(pitch_figures) >= 4 and "bits per key" in pitch
    figures = set(pitch_figures) | set(re.findall(DECIMAL, kmers))
    missing = missing_from_results(figures)
    assert not missing, f"in the README but in no results file: {missing}"
