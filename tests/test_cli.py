"""The ``mappy`` command line, run as users run it."""

import contextlib
import gzip
import os
import pty
import random
import re
import signal
import subprocess
import sys
import time
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
    assert "--partitions" in usage_error(r, "kmers count")


def test_kmers_count_without_a_hint_and_with_scratch_elsewhere(tmp_path):
    scratch, out = tmp_path / "scratch", tmp_path / "out"
    scratch.mkdir()
    out.mkdir()
    whole, parts = out / "whole.maplet", out / "parts.maplet"
    args = ["kmers", "count", "-k", 21, SAMPLE]
    assert mappy_cli(*args, "-o", whole).returncode == 0
    r = mappy_cli(*args, "-o", parts, "--partitions", 4, "--tmp-dir", scratch)
    assert r.returncode == 0, r.stderr
    assert "built for" not in r.stderr  # no hint: nothing to say about one
    assert parts.read_bytes() == whole.read_bytes()
    m = mappy.Maplet.load(parts)
    assert m.query(mappy.canonical_kmer(SAMPLE.read_text().splitlines()[1][:21])) >= 1
    assert 0.45 <= m.stats().load_factor <= 0.95
    assert names(scratch) == [] and names(out) == ["parts.maplet", "whole.maplet"]
    # On failure too, nothing is left in the scratch folder, nor an output.
    bad = tmp_path / "bad.fq"
    bad.write_text("@r\nACGTACGTACGTACGTACGTACGT\n+\nII\n")
    r = mappy_cli("kmers", "count", "-k", 21, SAMPLE, bad, "-o", out / "bad.maplet", "--partitions", 4,
                  "--tmp-dir", scratch)  # fmt: skip
    assert r.returncode == 1 and str(bad) in r.stderr and "Traceback" not in r.stderr
    assert names(scratch) == [] and names(out) == ["parts.maplet", "whole.maplet"]
    r = mappy_cli(*args, "-o", out / "x.maplet", "--partitions", 4, "--tmp-dir", tmp_path / "nowhere")
    assert r.returncode == 1 and "nowhere" in r.stderr and "Traceback" not in r.stderr
    assert names(out) == ["parts.maplet", "whole.maplet"]


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
    assert "between 1 and 32" in usage_error(r, "kmers count")
    r = mappy_cli("kmers", "count", "-k", 21, "-o", tmp_path / "x.maplet", tmp_path / "none.fa")
    assert r.returncode == 1 and "no such file" in r.stderr
    bad = tmp_path / "bad.fq"
    bad.write_text("@r1\nACGT\n+\nII\n")  # quality shorter than the sequence
    r = mappy_cli("kmers", "count", "-k", 3, "-o", tmp_path / "x.maplet", bad)
    assert r.returncode == 1 and r.stderr.startswith(f"mappy: error: {bad}: ")
    assert not (tmp_path / "x.maplet").exists()


# ---- hostile input: every bad input is one line on stderr, status 1 --------


def run(*args, stdin=b"", shell_redirect=""):
    """The command with bytes on stdin; ``shell_redirect`` (such as ``<&-``)
    closes a standard stream first."""
    cmd = [sys.executable, "-m", "mappy_python.cli", *map(str, args)]
    if shell_redirect:
        cmd = ["sh", "-c", f'exec "$@" {shell_redirect}', "sh", *cmd]
    r = subprocess.run(cmd, input=stdin, capture_output=True, timeout=60)
    return subprocess.CompletedProcess(
        r.args, r.returncode, r.stdout.decode(), r.stderr.decode(errors="replace")
    )


def fails(r, prefix=""):
    """The run failed as promised: status 1, one line ``mappy: error: PREFIX...``."""
    assert r.returncode == 1, (r.returncode, r.stderr)
    assert r.stderr.startswith(f"mappy: error: {prefix}"), r.stderr
    assert "Traceback" not in r.stderr and r.stderr.count("\n") == 1, r.stderr
    return r.stderr


def usage_error(r, command):
    """A usage error, as argparse reports one: status 2, the usage of the
    command given, then ``mappy COMMAND: error: ...``; returns the message."""
    prog = f"mappy {command}".strip()
    assert r.returncode == 2, (r.returncode, r.stderr)
    assert r.stderr.startswith(f"usage: {prog} "), r.stderr
    last = r.stderr.splitlines()[-1]
    assert last.startswith(f"{prog}: error: "), r.stderr
    assert "Traceback" not in r.stderr and r.stdout == "", r.stderr
    return last


def names(folder):
    return sorted(p.name for p in folder.iterdir())


@pytest.fixture
def keys(tmp_path):
    src = tmp_path / "keys.txt"
    src.write_text("apple\nbanana\napple\n")
    return src


@pytest.fixture
def maplet(tmp_path, keys):
    out = tmp_path / "keys.maplet"
    assert run("build", out, keys, "--expected-items", 100).returncode == 0
    return out


def test_gzip_cut_short_damaged_or_not_gzip(tmp_path):
    data = gzip.compress("".join(f"key{i}\t{i}\n" for i in range(20000)).encode())
    cut, damaged, fake = tmp_path / "cut.tsv.gz", tmp_path / "damaged.tsv.gz", tmp_path / "fake.tsv.gz"
    cut.write_bytes(data[: len(data) // 2])
    middle = len(data) // 2
    damaged.write_bytes(
        data[:middle] + bytes(b ^ 0x55 for b in data[middle : middle + 64]) + data[middle + 64 :]
    )
    fake.write_bytes(b"\x00\xff\xfe binary, neither gzip nor text")
    out = tmp_path / "out.maplet"
    assert "cut short" in fails(run("build", out, cut, "--format", "tsv"), f"{cut}: ")
    assert "gzip" in fails(run("build", out, damaged, "--format", "tsv"), f"{damaged}: ")
    assert "not UTF-8" in fails(run("build", out, fake, "--format", "tsv"), f"{fake}:1: ")
    for args in (["-k", 5, cut], ["-k", 5, damaged]):
        fails(run("kmers", "count", "-o", out, *args))
    assert names(tmp_path) == ["cut.tsv.gz", "damaged.tsv.gz", "fake.tsv.gz"]
    # A plain file named .gz is read as what it is.
    plain = tmp_path / "plain.txt.gz"
    plain.write_text("x\ny\n")
    assert run("build", out, plain).returncode == 0


def test_csv_field_over_the_limit(tmp_path):
    src = tmp_path / "big.csv"
    src.write_text("a,1\n" + "b" * 200_000 + ",2\n")
    out = tmp_path / "out.maplet"
    assert "field larger than field limit" in fails(run("build", out, src, "--format", "csv"), f"{src}:2: ")
    assert names(tmp_path) == ["big.csv"]


def test_columns_below_one_or_past_the_row(tmp_path):
    src = tmp_path / "t.tsv"
    src.write_text("a\t1\nb\n")
    out = tmp_path / "out.maplet"
    for option in ("--key-column", "--value-column"):
        for n in (0, -1):
            assert "must be at least 1" in usage_error(
                run("build", out, src, "--format", "tsv", option, n), "build"
            )
    assert "at least 2 columns" in fails(
        run("build", out, src, "--format", "tsv", "--value-column", 2), f"{src}:2: "
    )
    fails(run("build", out, src, "--format", "tsv", "--key-column", 9), f"{src}:1: ")
    assert names(tmp_path) == ["t.tsv"]


@pytest.mark.parametrize(
    "value,operator,message",
    [
        ("two", "counter", "not an integer"),
        ("1.5", "counter", "not an integer"),
        ("x", "max", "not a number"),
        ("nan", "max", "not a number"),
        (str(2**64), "counter", "64-bit"),
    ],
)
def test_values_that_are_not_numbers(tmp_path, value, operator, message):
    src = tmp_path / "v.tsv"
    src.write_text(f"a\t1\nb\t{value}\n")
    out = tmp_path / "out.maplet"
    r = run("build", out, src, "--format", "tsv", "--value-column", 2, "--operator", operator)
    assert message in fails(r, f"{src}:2: ")
    assert names(tmp_path) == ["v.tsv"]


def test_options_that_are_not_numbers(tmp_path, keys):
    out = tmp_path / "out.maplet"
    for args in (
        ["build", out, keys, "--expected-items", "many"],
        ["build", out, keys, "--rate", "low"],
        ["build", out, keys, "--expected-items", 0],
        ["kmers", "count", "-k", "x", "-o", out, keys],
        ["kmers", "count", "-k", 5, "-o", out, keys, "--threads", 0],
        ["kmers", "count", "-k", 5, "-o", out, keys, "--rate", 2],
    ):
        usage_error(run(*args), " ".join(args[:2]) if args[0] == "kmers" else args[0])
    assert names(tmp_path) == ["keys.txt"]


def test_missing_inputs_and_folders_as_inputs(tmp_path, maplet):
    out, missing, folder = tmp_path / "out.maplet", tmp_path / "missing", tmp_path / "folder"
    folder.mkdir()
    for bad, message in ((missing, "no such file"), (folder, "is a directory")):
        for args in (
            ["build", out, bad],
            ["query", bad, "x"],
            ["stats", bad],
            ["merge", out, maplet, bad],
            ["kmers", "count", "-k", 5, "-o", out, bad],
            ["kmers", "query", bad, "ACGT"],
        ):
            assert message in fails(run(*args), f"{bad}: ")
    assert names(tmp_path) == ["folder", "keys.maplet", "keys.txt"]


def test_a_fifo_or_a_device_as_a_maplet(tmp_path, maplet):
    for args in (["stats", "/dev/zero"], ["query", "/dev/zero", "x"], ["kmers", "query", "/dev/zero", "ACG"]):
        assert "not a maplet" in fails(run(*args), "/dev/zero: ")
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    for junk in (b"junk", b"MAPPYMAP and then junk"):
        writer = subprocess.Popen(["sh", "-c", f'printf "%s" "{junk.decode()}" > "{fifo}"'])
        fails(run("stats", fifo), f"{fifo}: ")
        writer.wait(timeout=10)
    cut = tmp_path / "cut.maplet"
    cut.write_bytes(maplet.read_bytes()[:-9])
    assert "corrupt" in fails(run("stats", cut), f"{cut}: ")
    # A maplet through a pipe is fine.
    writer = subprocess.Popen(["sh", "-c", f'cat "{maplet}" > "{fifo}"'])
    r = run("stats", fifo)
    writer.wait(timeout=10)
    assert r.returncode == 0 and "item_count\t2" in r.stdout, r.stderr


def test_stdin_closed_or_empty(tmp_path, maplet):
    out = tmp_path / "out.maplet"
    for args in (
        ["build", out],
        ["build", out, "-"],
        ["query", maplet],
        ["kmers", "count", "-k", 3, "-o", out, "-"],
    ):
        assert "closed" in fails(run(*args, shell_redirect="<&-"), "<stdin>: ")
    assert "no records" in fails(run("build", out, stdin=b""), "<stdin>: ")
    fails(run("kmers", "count", "-k", 3, "-o", out, "-", stdin=b""), "<stdin>: ")
    fails(run("stats", "-", stdin=b""), "<stdin>: ")
    r = run("query", maplet, stdin=b"")  # no keys: nothing to print
    assert r.returncode == 0 and r.stdout == "" and r.stderr == ""
    fails(run("build", out, "-", "-", stdin=b"x\n"))
    assert names(tmp_path) == ["keys.maplet", "keys.txt"]


def test_stdout_closed_or_gone(tmp_path, maplet):
    assert "closed" in fails(run("query", maplet, "apple", shell_redirect=">&-"))
    fails(run("stats", maplet, shell_redirect=">&-"))
    many = tmp_path / "many.txt"
    many.write_text("".join(f"key{i}\n" for i in range(200_000)))
    with open(many) as keys_in:
        proc = subprocess.Popen(
            [sys.executable, "-m", "mappy_python.cli", "query", str(maplet)],
            stdin=keys_in,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        assert proc.stdout.readline().startswith(b"key0\t")
        proc.stdout.close()  # as `| head -1` does
        err = proc.stderr.read().decode()
        assert proc.wait(timeout=30) == 0
    assert err == "", err


def test_an_output_that_is_an_input_or_a_folder(tmp_path, keys, maplet):
    before = {p: p.read_bytes() for p in (keys, maplet)}
    reads = tmp_path / "r.fa"
    reads.write_text(">a\nACGTACGTAC\n")
    for args in (
        ["build", keys, keys],
        ["build", tmp_path / "." / "keys.txt", "-", keys, "--expected-items", 10],
        ["merge", maplet, maplet, maplet],
        ["kmers", "count", "-k", 3, "-o", reads, reads],
    ):
        assert "is also an input" in fails(run(*args, stdin=b"x\n"))
    link = tmp_path / "link.txt"
    link.symlink_to(keys)
    fails(run("build", link, keys))
    folder = tmp_path / "folder"
    folder.mkdir()
    for args in (
        ["build", folder, keys],
        ["merge", folder, maplet],
        ["kmers", "count", "-k", 3, "-o", folder, reads],
    ):
        assert "is a directory" in fails(run(*args), f"{folder}: ")
    assert {p: p.read_bytes() for p in before} == before and reads.read_text() == ">a\nACGTACGTAC\n"
    assert (
        names(tmp_path) == ["folder", "keys.maplet", "keys.txt", "link.txt", "r.fa"] and names(folder) == []
    )


def test_bytes_that_are_not_utf8(tmp_path, maplet):
    src = tmp_path / "latin1.txt"
    src.write_bytes(b"ok\ncaf\xe9\n")
    out = tmp_path / "out.maplet"
    assert "not UTF-8" in fails(run("build", out, src), f"{src}:2: ")
    gz = tmp_path / "latin1.csv.gz"
    gz.write_bytes(gzip.compress(b"a,1\nb,2\ncaf\xe9,3\n"))
    fails(run("build", out, gz, "--format", "csv", "--value-column", 2), f"{gz}:3: ")
    fails(run("query", maplet, stdin=b"apple\n\xff\n"), "<stdin>:2: ")
    assert not out.exists()


def test_kmers_that_are_not_kmers(tmp_path):
    reads = tmp_path / "r.fa"
    reads.write_text(">a\nACGTACGTAC\n")
    out = tmp_path / "k.maplet"
    assert run("kmers", "count", "-k", 4, "-o", out, reads).returncode == 0
    for extra in ([], ["--no-canonical"]):
        fails(run("kmers", "query", out, *extra, stdin=b"ACGT\nAC-T\n"), "<stdin>:2: 'AC-T' is not a k-mer")
        fails(run("kmers", "query", out, "ACGT", "AXGT", *extra), "argument: 'AXGT' is not a k-mer")
        fails(run("kmers", "query", out, "A" * 33, *extra))


def test_dash_reads_stdin_everywhere(tmp_path, maplet):
    data = maplet.read_bytes()
    r = run("build", tmp_path / "b.maplet", stdin=gzip.compress(b"x\nx\n"))  # no inputs: stdin
    assert r.returncode == 0 and mappy.Maplet.load(str(tmp_path / "b.maplet")).query("x") >= 2
    r = run("query", "-", "apple", stdin=data)
    assert r.returncode == 0 and int(r.stdout.split("\t")[1]) >= 2
    fails(run("query", "-", stdin=data), "<stdin>: ")  # the keys cannot come from stdin too
    r = run("stats", "-", stdin=data)
    assert r.returncode == 0 and "item_count\t2" in r.stdout
    r = run("merge", tmp_path / "m.maplet", maplet, "-", stdin=data)
    assert r.returncode == 0 and mappy.Maplet.load(str(tmp_path / "m.maplet")).query("apple") >= 4
    fasta = b">a\nACGTACGTAC\n"
    for stdin in (fasta, gzip.compress(fasta)):
        r = run("kmers", "count", "-k", 4, "-o", tmp_path / "k.maplet", "-", stdin=stdin)
        assert r.returncode == 0, r.stderr
        r = run("kmers", "query", "-", "ACGT", stdin=(tmp_path / "k.maplet").read_bytes())
        assert r.returncode == 0 and r.stdout == "ACGT\t2\n"
    assert names(tmp_path) == ["b.maplet", "k.maplet", "keys.maplet", "keys.txt", "m.maplet"]


@pytest.fixture(scope="module")
def big_fasta(tmp_path_factory):
    """About 3 MB of random reads: read 40 times, a count of several seconds."""
    rng = random.Random(7)
    path = tmp_path_factory.mktemp("reads") / "random.fa"
    path.write_text("".join(f">r{i}\n{''.join(rng.choices('ACGT', k=3000))}\n" for i in range(1000)))
    return path


@pytest.mark.parametrize("terminal", [False, True])
@pytest.mark.parametrize(("partitions", "tmp_dir"), [(1, False), (4, False), (4, True)])
def test_ctrl_c_stops_a_count_at_once_and_leaves_nothing(tmp_path, big_fasta, terminal, partitions, tmp_dir):
    out = tmp_path / "k.maplet"
    master, slave = pty.openpty() if terminal else (None, None)
    args = ["kmers", "count", "-k", 21, "-o", out, *[big_fasta] * 40, "--partitions", partitions]
    if tmp_dir:
        (tmp_path / "scratch").mkdir()
        args += ["--tmp-dir", tmp_path / "scratch"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "mappy_python.cli", *map(str, args)],
        stderr=slave if terminal else subprocess.PIPE,
    )
    try:
        # Running: its private folder beside the output is there.
        deadline = time.monotonic() + 30
        while not any(tmp_path.iterdir()) and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(0.3)
        assert proc.poll() is None, "the count ended before Ctrl-C"
        proc.send_signal(signal.SIGINT)
        start = time.monotonic()
        assert proc.wait(timeout=5) == 130
        assert time.monotonic() - start < 3
    finally:
        proc.kill()
        proc.wait()
    if terminal:
        os.close(slave)
        err = b""
        with contextlib.suppress(OSError):  # EIO once all is read
            while chunk := os.read(master, 65536):
                err += chunk
        os.close(master)
    else:
        err = proc.stderr.read()
    assert b"Traceback" not in err and b"Error" not in err, err
    assert names(tmp_path) == (["scratch"] if tmp_dir else [])
    if tmp_dir:
        assert names(tmp_path / "scratch") == []


# ---- queries in batches ------------------------------------------------------


def test_query_answers_every_key_of_a_long_stdin_as_single_queries_do(tmp_path):
    """Many batches (of arguments and of stdin), blank lines and CRLF, and
    the answers each key's own query gives."""
    keys = [f"key{i}" for i in range(0, 300_000, 3)]
    src = tmp_path / "keys.txt"
    src.write_text("".join(f"{k}\n" * (1 + i % 3) for i, k in enumerate(keys)))
    out = tmp_path / "keys.maplet"
    assert run("build", out, src, "--expected-items", 100_000).returncode == 0
    m = mappy.Maplet.load(str(out))
    asked = [f"key{i}" for i in range(0, 150_000)]  # a third present
    lines = "".join(
        f"{k}\r\n" if i % 5 == 0 else f"{k}\n\n" if i % 7 == 0 else f"{k}\n" for i, k in enumerate(asked)
    )
    want = "".join(f"{k}\t{'-' if m.query(k) is None else m.query(k)}\n" for k in asked)
    assert len(lines) > 1 << 20  # more than one batch of stdin
    for stdin in (lines.encode(), gzip.compress(lines.encode())):
        r = run("query", out, stdin=stdin)
        assert r.returncode == 0 and r.stderr == "", r.stderr
        assert r.stdout == want
    r = run("query", out, *asked[:70_000])  # more than one batch of arguments
    assert r.returncode == 0 and r.stdout == "".join(want.splitlines(True)[:70_000])
    # No final newline, and a key as wide as a batch.
    wide = "w" * (3 << 20)
    r = run("query", out, stdin=f"key3\n{wide}\nkey6".encode())
    assert r.stdout == f"key3\t{m.query('key3')}\n{wide}\t-\nkey6\t{m.query('key6')}\n"


def test_a_bad_line_deep_in_stdin_is_named_after_the_answers_before_it(tmp_path, maplet):
    m = mappy.Maplet.load(str(maplet))
    good = [f"k{i}" for i in range(120_000)]
    for bad, message in ((b"caf\xe9", "not UTF-8 text (byte 0xe9)"),):
        stdin = "".join(f"{k}\n" for k in good).encode() + b"\n" + bad + b"\nafter\n"
        r = run("query", maplet, stdin=stdin)
        assert message in fails(r, f"<stdin>:{len(good) + 2}: ")
        assert r.stdout.splitlines() == [f"{k}\t{m.query(k) or '-'}" for k in good]


def kmer_maplet(tmp_path, canonical=True):
    reads = tmp_path / "r.fa"
    rng = random.Random(3)
    reads.write_text("".join(f">r{i}\n{''.join(rng.choices('ACGT', k=500))}\n" for i in range(400)))
    out = tmp_path / ("k.maplet" if canonical else "k-as-read.maplet")
    extra = [] if canonical else ["--no-canonical"]
    assert run("kmers", "count", "-k", 21, "-o", out, reads, *extra).returncode == 0
    return out, reads.read_text().splitlines()[1::2]


@pytest.mark.parametrize("canonical", [True, False])
def test_kmers_query_answers_in_batches_as_the_maplet_does(tmp_path, canonical):
    out, seqs = kmer_maplet(tmp_path, canonical)
    m = mappy.Maplet.load(str(out))
    rng = random.Random(5)
    kmers = [s[i : i + 21] for s in seqs for i in range(0, 480, 7)]
    kmers += ["".join(rng.choices("ACGT", k=21)) for _ in range(len(kmers))]
    kmers += ["acgt", "T" * 32, "g"]
    kmers = [k.lower() if i % 3 == 0 else k for i, k in enumerate(kmers)]
    rng.shuffle(kmers)

    def key(k):
        return mappy.canonical_kmer(k) if canonical else k.upper()

    want = "".join(f"{k}\t{'-' if m.query(key(k)) is None else m.query(key(k))}\n" for k in kmers)
    assert sum(m.query(key(k)) is not None for k in kmers) >= len(kmers) // 2 - 10
    extra = [] if canonical else ["--no-canonical"]
    stdin = "".join(f"{k}\r\n" if i % 4 else f"{k}\n\n" for i, k in enumerate(kmers)).encode()
    assert len(stdin) > 1 << 20
    r = run("kmers", "query", out, *extra, stdin=stdin)
    assert r.returncode == 0 and r.stderr == "", r.stderr
    assert r.stdout == want
    r = run("kmers", "query", out, *kmers[:1000], *extra)
    assert r.stdout == "".join(want.splitlines(True)[:1000])
    # The Python batch call agrees.
    counts = mappy.query_kmers(m, kmers, canonical=canonical)
    assert counts.dtype.name == "int64"
    assert counts.tolist() == [m.query(key(k)) or 0 for k in kmers]


def test_kmers_query_names_the_line_of_a_bad_kmer_past_the_first_batch(tmp_path):
    out, seqs = kmer_maplet(tmp_path)
    good = [s[:21] for s in seqs] * 200  # 80,000 lines, 1.8 MB
    for bad, message in (
        ("AC-T", "'AC-T' is not a k-mer of A, C, G and T (at most 32 long)"),
        ("A" * 33, "is not a k-mer"),
        ("ACGTÉ", "'ACGTÉ' is not a k-mer"),
    ):
        stdin = ("".join(f"{k}\n" for k in good) + f"{bad}\r\nACGT\n").encode()
        r = run("kmers", "query", out, stdin=stdin)
        assert message in fails(r, f"<stdin>:{len(good) + 1}: ")
        assert len(r.stdout.splitlines()) == len(good)
    stdin = ("".join(f"{k}\n" for k in good[:5]) + "\n").encode() + b"AC\xffT\n"
    r = run("kmers", "query", out, stdin=stdin)
    assert "not UTF-8 text (byte 0xff)" in fails(r, "<stdin>:7: ")
    fails(run("kmers", "query", out, *good[:3], "ACGTN"), "argument: 'ACGTN' is not a k-mer")
    with pytest.raises(ValueError, match="item 1: 'AXGT' is not a k-mer"):
        mappy.query_kmers(mappy.Maplet.load(str(out)), ["ACGT", "AXGT"])
    with pytest.raises(TypeError, match="str or bytes"):
        mappy.query_kmers(mappy.Maplet.load(str(out)), ["ACGT", 7])


def test_query_of_values_that_are_not_counts(tmp_path):
    """Sets and floats are answered as before, through the slower path."""
    src = tmp_path / "v.tsv"
    src.write_text("a\tx\na\ty\nb\tz\n")
    sets = tmp_path / "sets.maplet"
    r = run("build", sets, src, "--format", "tsv", "--value-column", 2, "--operator", "set")
    assert r.returncode == 0, r.stderr
    r = run("query", sets, stdin=b"a\n\nb\nnone\n")
    assert r.returncode == 0 and r.stdout.splitlines()[:2] == ["a\tx,y", "b\tz"]
    assert r.stdout.splitlines()[2] in ("none\t-", "none\tx,y", "none\tz")
    assert "not UTF-8" in fails(run("query", sets, stdin=b"a\nb\n\xff\n"), "<stdin>:3: ")
    src.write_text("p\t1.5\nq\t2.25\n")
    floats = tmp_path / "max.maplet"
    r = run("build", floats, src, "--format", "tsv", "--value-column", 2, "--operator", "max")
    assert r.returncode == 0, r.stderr
    r = run("query", floats, "p", "q")
    assert r.stdout == "p\t1.5\nq\t2.25\n"


def test_query_opens_a_saved_counter_memory_mapped(tmp_path, maplet):
    """A counter is mapped, not read whole; a maplet that cannot be mapped
    is read."""
    import mappy_python.cli as cli

    assert cli.load(str(maplet), mmap=True).read_only
    assert not cli.load(str(maplet)).read_only
    src = tmp_path / "v.tsv"
    src.write_text("a\tx\n")
    sets = tmp_path / "sets.maplet"
    assert (
        run("build", sets, src, "--format", "tsv", "--value-column", 2, "--operator", "set").returncode == 0
    )
    assert not cli.load(str(sets), mmap=True).read_only  # sets cannot be mapped: read whole
    # A damaged file is refused all the same: its checksum is checked.
    data = bytearray(maplet.read_bytes())
    data[len(data) // 2] ^= 0x40
    damaged = tmp_path / "damaged.maplet"
    damaged.write_bytes(bytes(data))
    mappy.Maplet.load(str(damaged), mmap=True)  # opening alone does not see it
    for args in (["query", damaged, "apple"], ["kmers", "query", damaged, "ACGT"]):
        assert "checksum mismatch" in fails(run(*args), f"{damaged}: ")


def test_options_may_follow_the_keys_file_and_stats_read_as_short_figures(tmp_path):
    """``mappy kmers query FILE --no-canonical KMER`` takes the option among
    the k-mers, and ``mappy stats`` prints floats to six significant
    figures."""
    reads = tmp_path / "r.fa"
    reads.write_text(">r\nACGTTGCA\n")
    out = tmp_path / "k.maplet"
    from mappy_python import cli

    assert cli.main(["kmers", "count", "-k", "4", "--no-canonical", "-o", str(out), str(reads)]) == 0
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "mappy_python.cli",
            "kmers",
            "query",
            str(out),
            "--no-canonical",
            "ACGT",
            "TTGC",
        ],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[0].split("\t") == ["ACGT", "1"]
    r = subprocess.run(
        [sys.executable, "-m", "mappy_python.cli", "kmers", "query", str(out), "ACGT", "--bogus"],
        capture_output=True,
        text=True,
    )
    assert "unrecognized arguments: --bogus" in usage_error(r, "kmers query")
    r = subprocess.run(
        [sys.executable, "-m", "mappy_python.cli", "stats", str(out)], capture_output=True, text=True
    )
    figures = dict(line.split("\t") for line in r.stdout.splitlines())
    assert figures["load_factor"] == f"{float(figures['load_factor']):.6g}"
    assert len(figures["load_factor"]) <= 12


# ---- usage errors, -o -, --help ---------------------------------------------


@pytest.mark.parametrize(
    "args,command,message",
    [
        ([], "", "required: command"),
        (["kmers"], "kmers", "required: command"),
        (["kmers", "count"], "kmers count", "required: -k, -o/--output, reads"),
        (["kmers", "count", "-o", "x.maplet", "r.fa"], "kmers count", "required: -k"),
        (["kmers", "count", "-k", "x", "-o", "x.maplet", "r.fa"], "kmers count", "not an integer: 'x'"),
        (["kmers", "count", "-k", "0", "-o", "x.maplet", "r.fa"], "kmers count", "between 1 and 32"),
        (["kmers", "count", "-k", "5", "-o", "x.maplet", "r.fa", "--rate", "1.5"], "kmers count", "--rate"),
        (["kmers", "count", "-k", "5", "-o"], "kmers count", "expected one argument"),
        (["kmers", "query", "x.maplet", "ACGT", "--bogus"], "kmers query", "unrecognized arguments: --bogus"),
        (["kmers", "frobnicate"], "kmers", "invalid choice: 'frobnicate'"),
        (["frobnicate"], "", "invalid choice: 'frobnicate'"),
        (["stats", "--bogus", "x.maplet"], "stats", "unrecognized arguments: --bogus"),
        (["build"], "build", "required: output"),
        (["build", "out.maplet", "--format", "xml"], "build", "invalid choice: 'xml'"),
        (["build", "out.maplet", "--rate", "0"], "build", "strictly between 0 and 1"),
        (["build", "out.maplet", "--expected-items", "-3"], "build", "must be at least 1"),
        (["query"], "query", "required: file"),
        (["stats"], "stats", "required: file"),
        (["stats", "a.maplet", "b.maplet"], "stats", "unrecognized arguments: b.maplet"),
        (["merge", "out.maplet"], "merge", "required: inputs"),
    ],
)
def test_a_usage_error_exits_2_with_the_usage_of_the_command(tmp_path, args, command, message):
    r = subprocess.run(
        [sys.executable, "-m", "mappy_python.cli", *args], capture_output=True, text=True, cwd=tmp_path
    )
    assert message in usage_error(r, command)
    assert "kmers_command" not in r.stderr
    assert names(tmp_path) == []  # nothing read, nothing written


def test_main_returns_the_usage_status_in_process(capsys):
    from mappy_python import cli

    assert cli.main(["kmers"]) == 2
    assert capsys.readouterr().err.startswith("usage: mappy kmers ")
    assert cli.main(["--help"]) == 0
    assert capsys.readouterr().out.startswith("usage: mappy ")
    assert cli.main(["--version"]) == 0
    assert capsys.readouterr().out == f"mappy {mappy.__version__}\n"


@pytest.mark.parametrize(
    "args,command,option",
    [
        (["kmers", "count", "-k", 5, "-o", "-", SAMPLE], "kmers count", "-o/--output"),
        (["kmers", "count", "-k", 5, "--output", "-", SAMPLE], "kmers count", "-o/--output"),
        (["build", "-", "keys.txt"], "build", "output"),
        (["merge", "-", "keys.maplet", "keys.maplet"], "merge", "output"),
    ],
)
def test_a_maplet_is_not_written_to_stdout(tmp_path, maplet, args, command, option):
    """``-`` as the output is refused before anything is read: a maplet is
    a binary file written atomically, not a stream."""
    r = subprocess.run(
        [sys.executable, "-m", "mappy_python.cli", *map(str, args)],
        input="apple\n",
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    message = usage_error(r, command)
    assert f"argument {option}: '-': a maplet cannot be written to standard output" in message
    assert names(tmp_path) == ["keys.maplet", "keys.txt"]  # no file named '-' either


def every_command():
    """Every command and subcommand of the parser, as argument lists."""
    import argparse

    from mappy_python import cli

    def walk(p, prefix):
        yield prefix
        for action in p._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    yield from walk(sub, [*prefix, name])

    return list(walk(cli.parser(), []))


def test_help_is_plain_text_for_every_command():
    """argparse shows help as it is written: no reStructuredText (``mappy``),
    no Markdown, for every command."""
    commands = every_command()
    assert {" ".join(c) for c in commands} == {
        "", "build", "query", "stats", "merge", "kmers", "kmers count", "kmers query",
    }  # fmt: skip
    for args in commands:
        r = mappy_cli(*args, "--help")
        assert r.returncode == 0 and r.stderr == "", r.stderr
        assert r.stdout.startswith(f"usage: {' '.join(['mappy', *args])} "), r.stdout
        assert "`" not in r.stdout, (args, r.stdout)
        assert not re.search(r":(func|class|meth|mod):|\*\*", r.stdout), (args, r.stdout)
        # Each command says what it does, in a sentence of its own.
        assert re.search(r"\n\n[A-Z](?:[^\n]|\n(?!\n))*\.\n\n", r.stdout), (args, r.stdout)
