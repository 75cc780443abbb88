"""The ``mappy`` command line, run as users run it."""

import gzip
import subprocess
import sys
from pathlib import Path

import pytest

import mappy_python as mappy

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "examples" / "data" / "sample_reads.fa"


def mappy_cli(*args, stdin=None):
    return subprocess.run(
        [sys.executable, "-m", "mappy_python.cli", *map(str, args)],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_every_command_has_help():
    for args in (
        [],
        ["build"],
        ["query"],
        ["stats"],
        ["merge"],
        ["kmers"],
        ["kmers", "count"],
        ["kmers", "query"],
    ):
        r = mappy_cli(*args, "--help")
        assert r.returncode == 0, r.stderr
        assert "usage: mappy" in r.stdout


def test_build_query_stats_from_lines_and_stdin(tmp_path):
    keys = tmp_path / "keys.txt"
    keys.write_text("apple\nbanana\napple\n\ncherry\napple\n")
    out = tmp_path / "fruit.maplet"
    r = mappy_cli("build", out, keys, "--expected-items", 100)
    assert r.returncode == 0, r.stderr
    r = mappy_cli("query", out, "apple", "banana", "durian")
    assert r.returncode == 0, r.stderr
    lines = dict(line.split("\t") for line in r.stdout.splitlines())
    assert int(lines["apple"]) >= 3 and int(lines["banana"]) >= 1
    assert lines["durian"] in ("-", "1", "2", "3")  # absent, but for a false positive
    r = mappy_cli("query", out, stdin="cherry\n")
    assert r.stdout.startswith("cherry\t")
    r = mappy_cli("stats", out)
    stats = dict(line.split("\t") for line in r.stdout.splitlines())
    assert int(stats["item_count"]) == 3
    # Keys from stdin.
    out2 = tmp_path / "stdin.maplet"
    r = mappy_cli("build", out2, "-", stdin="x\ny\nx\n")
    assert r.returncode == 0, r.stderr
    assert mappy.Maplet.load(str(out2)).query("x") >= 2


def test_build_from_gzipped_tsv_with_values(tmp_path):
    src = tmp_path / "traffic.tsv.gz"
    with gzip.open(src, "wt") as f:
        f.write("192.168.1.1\t1024\n192.168.1.2\t2048\n192.168.1.1\t512\n")
    out = tmp_path / "traffic.maplet"
    r = mappy_cli("build", out, src, "--format", "tsv", "--value-column", 2)
    assert r.returncode == 0, r.stderr
    m = mappy.Maplet.load(str(out))
    assert m.query("192.168.1.1") >= 1536


def test_malformed_and_missing_input_fail_cleanly(tmp_path):
    src = tmp_path / "bad.csv"
    src.write_text("a,1\nb,two\n")
    out = tmp_path / "bad.maplet"
    r = mappy_cli("build", out, src, "--format", "csv", "--value-column", 2)
    assert r.returncode == 1
    assert f"{src}:2" in r.stderr and "not an integer" in r.stderr
    assert not out.exists()
    r = mappy_cli("build", out, tmp_path / "missing.txt")
    assert r.returncode == 1 and "no such file" in r.stderr
    assert not out.exists()
    r = mappy_cli("query", tmp_path / "missing.maplet", "x")
    assert r.returncode == 1 and "no such file" in r.stderr
    (tmp_path / "junk.maplet").write_bytes(b"not a maplet at all")
    r = mappy_cli("stats", tmp_path / "junk.maplet")
    assert r.returncode == 1 and "error" in r.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.csv", "junk.maplet"]


def test_merge(tmp_path):
    a, b, out = tmp_path / "a.txt", tmp_path / "b.txt", tmp_path / "ab.maplet"
    a.write_text("x\nx\ny\n")
    b.write_text("x\nz\n")
    for src in (a, b):
        assert mappy_cli("build", src.with_suffix(".maplet"), src, "--expected-items", 100).returncode == 0
    r = mappy_cli("merge", out, a.with_suffix(".maplet"), b.with_suffix(".maplet"))
    assert r.returncode == 0, r.stderr
    m = mappy.Maplet.load(str(out))
    assert m.query("x") >= 3 and m.query("z") >= 1
    other = tmp_path / "other.maplet"
    assert mappy_cli("build", other, a, "--expected-items", 100, "--rate", 0.001).returncode == 0
    r = mappy_cli("merge", tmp_path / "bad.maplet", a.with_suffix(".maplet"), other)
    assert r.returncode == 1 and "incompatible" in r.stderr.lower()
    assert not (tmp_path / "bad.maplet").exists()


@pytest.mark.parametrize("canonical", [True, False])
def test_kmers_count_and_query(tmp_path, canonical):
    out = tmp_path / "kmers.maplet"
    extra = [] if canonical else ["--no-canonical"]
    r = mappy_cli("kmers", "count", "-k", 21, "-o", out, SAMPLE, "--expected-items", 400_000, *extra)
    assert r.returncode == 0, r.stderr
    first_read = SAMPLE.read_text().splitlines()[1]
    kmer = first_read[:21]
    r = mappy_cli("kmers", "query", out, kmer, *extra)
    assert r.returncode == 0, r.stderr
    assert int(r.stdout.split("\t")[1]) >= 1
    r = mappy_cli("kmers", "query", out, "ACGTN" * 4 + "A")
    assert r.returncode == 1 and "k-mer" in r.stderr


def test_kmers_count_in_partitions_writes_the_same_file(tmp_path):
    whole, parts = tmp_path / "whole.maplet", tmp_path / "parts.maplet"
    args = ["kmers", "count", "-k", 21, SAMPLE, "--expected-items", 400_000]
    assert mappy_cli(*args, "-o", whole).returncode == 0
    r = mappy_cli(*args, "-o", parts, "--partitions", 5)
    assert r.returncode == 0, r.stderr
    assert "distinct" in r.stderr
    assert parts.read_bytes() == whole.read_bytes()
    # Scratch files go beside the output and are gone afterwards.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["parts.maplet", "whole.maplet"]
    # Too few expected items: the count starts over, larger, and says so.
    small = tmp_path / "small.maplet"
    r = mappy_cli(*args[:5], "-o", small, "--expected-items", 1000, "--partitions", 3)
    assert r.returncode == 0, r.stderr
    assert "built for" in r.stderr
    m = mappy.Maplet.load(small)
    assert m.stats().load_factor <= 0.95
    assert m.query(mappy.canonical_kmer(SAMPLE.read_text().splitlines()[1][:21])) >= 1
    r = mappy_cli(*args, "-o", tmp_path / "x.maplet", "--partitions", 0)
    assert r.returncode == 1 and "--partitions" in r.stderr


def test_an_output_that_cannot_be_written_is_an_error_naming_it(tmp_path):
    reads = tmp_path / "r.fa"
    reads.write_text(">a\nACGTACGTAC\n")
    out = tmp_path / "no" / "such" / "folder.maplet"
    for args in (
        ["build", out, reads],
        ["kmers", "count", "-k", 3, "-o", out, reads],
        ["kmers", "count", "-k", 3, "-o", out, reads, "--partitions", 2],
    ):
        r = mappy_cli(*args)
        assert r.returncode == 1, r.stderr
        assert r.stderr.startswith(f"mappy: error: {out}: ") and "Traceback" not in r.stderr


def test_kmers_count_errors(tmp_path):
    r = mappy_cli("kmers", "count", "-k", 40, "-o", tmp_path / "x.maplet", SAMPLE)
    assert r.returncode == 1 and "between 1 and 32" in r.stderr
    r = mappy_cli("kmers", "count", "-k", 21, "-o", tmp_path / "x.maplet", tmp_path / "none.fa")
    assert r.returncode == 1 and "no such file" in r.stderr
    bad = tmp_path / "bad.fq"
    bad.write_text("@r1\nACGT\n+\nII\n")  # quality shorter than the sequence
    r = mappy_cli("kmers", "count", "-k", 3, "-o", tmp_path / "x.maplet", bad)
    assert r.returncode == 1 and str(bad) in r.stderr
    assert not (tmp_path / "x.maplet").exists()
