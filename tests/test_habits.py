"""Python habits: what a user expects of a mapping-like object, of its
arguments' errors, of its sizes and of its types."""

import inspect
import os
import shutil
import subprocess
import sys
import textwrap

import pytest

import mappy_python as mappy
from mappy_python import cli
from mappy_python.sharded import ShardedMaplet


def sharded():
    s = ShardedMaplet(1000, 0.01, shards=4)
    s.insert("a", 2)
    return s


def plain():
    m = mappy.Maplet(1000, 0.01)
    m.insert("a", 2)
    return m


@pytest.mark.parametrize("make", [plain, sharded], ids=["Maplet", "ShardedMaplet"])
@pytest.mark.parametrize("use", [iter, list, dict, tuple, set, lambda m: [k for k in m]])
def test_a_maplet_cannot_be_iterated_and_says_why(make, use):
    with pytest.raises(TypeError, match="fingerprints, not keys"):
        use(make())


@pytest.mark.parametrize("make", [plain, sharded], ids=["Maplet", "ShardedMaplet"])
def test_get_answers_as_dict_get(make):
    m = make()
    assert m.get("a") == 2
    assert m.get("absent") is None
    assert m.get("absent", 0) == 0
    assert m.get("a", 0) == 2


def test_get_of_a_set_maplet_keeps_the_default_object():
    m = mappy.Maplet(100, 0.01, mappy.SetOperator())
    m.insert("a", {1})
    default = object()
    assert m.get("a", default) == frozenset({1})
    assert m.get("b", default) is default


def test_one_default_rate_for_the_package_and_the_command():
    kmers = cli.parser().parse_args(["kmers", "count", "-k", "21", "-o", "x.maplet", "in.fa"])
    build = cli.parser().parse_args(["build", "x.maplet", "in.txt"])
    python = inspect.signature(mappy.count_kmers_to_file).parameters["false_positive_rate"].default
    assert kmers.rate == build.rate == python == 0.01


BAD_ARGUMENTS = [
    ("false_positive_rate", TypeError, lambda: mappy.Maplet(1000, "0.01")),
    ("false_positive_rate", TypeError, lambda: mappy.Maplet(1000, false_positive_rate=[0.1])),
    ("expected_items", TypeError, lambda: mappy.Maplet("many", 0.01)),
    ("memory_limit_mb", TypeError, lambda: mappy.Maplet(1000, 0.01, memory_limit_mb="1")),
    ("seed", TypeError, lambda: mappy.Maplet(1000, 0.01, seed="1")),
    ("seed", ValueError, lambda: mappy.Maplet(1000, 0.01, seed=-1)),
    ("seed", ValueError, lambda: mappy.Maplet(1000, 0.01, seed=2**64)),
    ("fixed_precision", TypeError, lambda: mappy.Maplet(1000, 0.01, fixed_precision=1)),
    ("shard", TypeError, lambda: mappy.Maplet(1000, 0.01, shard="0/2")),
    ("operator", TypeError, lambda: mappy.Maplet(1000, 0.01, 5)),
    ("k", TypeError, lambda: mappy.count_kmers_to_file([], "out.maplet", "21")),
    ("k", ValueError, lambda: mappy.count_kmers_to_file([], "out.maplet", -1)),
    ("expected_items", TypeError, lambda: mappy.count_kmers_to_file([], "o", 21, "9")),
    ("false_positive_rate", TypeError, lambda: mappy.count_kmers_to_file([], "o", 21, None, "x")),
    ("threads", ValueError, lambda: mappy.count_kmers_to_file([], "o", 21, threads=-2)),
    ("partitions", TypeError, lambda: mappy.count_kmers_to_file([], "o", 21, partitions=2.5)),
    ("canonical", TypeError, lambda: mappy.count_kmers_to_file([], "o", 21, canonical="no")),
    ("k", TypeError, lambda: mappy.count_kmers(mappy.Maplet(10, 0.01), ["ACGT"], 2.0)),
    ("threads", TypeError, lambda: mappy.count_kmers(mappy.Maplet(10, 0.01), ["ACGT"], 2, threads="2")),
    ("canonical", TypeError, lambda: mappy.query_kmers(mappy.Maplet(10, 0.01), ["ACG"], canonical=None)),
    ("allow_pickle", TypeError, lambda: mappy.Maplet.from_bytes(plain().to_bytes(), allow_pickle="yes")),
    ("mmap", TypeError, lambda: mappy.Maplet.load("absent.maplet", mmap=1)),
    ("allow_pickle", TypeError, lambda: mappy.Maplet.load("absent.maplet", allow_pickle=0)),
    ("checksum_only", TypeError, lambda: plain().verify(checksum_only="no")),
    ("seed", ValueError, lambda: mappy.hash_keys(["a"], seed=-5)),
    ("count", TypeError, lambda: mappy.shard_indices(mappy.hash_keys(["a"]), "4")),
    ("signed", TypeError, lambda: mappy.CounterOperator(signed="no")),
    ("data", TypeError, lambda: mappy.Maplet.from_bytes("not bytes")),
    ("path", TypeError, lambda: plain().save(3)),
    ("path", TypeError, lambda: mappy.Maplet.load(None)),
    ("paths", TypeError, lambda: mappy.count_kmers_to_file("reads.fa", "o", 21)),
    ("output", TypeError, lambda: mappy.count_kmers_to_file([], 7, 21)),
    ("tmp_dir", TypeError, lambda: mappy.count_kmers_to_file([], "o", 21, tmp_dir=1.5)),
    ("value", TypeError, lambda: plain().insert("a", "x")),
    ("value", TypeError, lambda: plain().delete("a", "x")),
    ("pairs_or_keys", TypeError, lambda: plain().batch_insert(5)),
    ("keys", TypeError, lambda: plain().batch_query(5)),
    ("keys", TypeError, lambda: mappy.hash_keys(5)),
    ("other", TypeError, lambda: plain().merge(5)),
    ("maplets", TypeError, lambda: mappy.merge(5)),
    ("kmer", TypeError, lambda: mappy.canonical_kmer(5)),
]


IDS = [f"{name}-{i}" for i, (name, _, _) in enumerate(BAD_ARGUMENTS)]


@pytest.mark.parametrize("name, kind, call", BAD_ARGUMENTS, ids=IDS)
def test_a_bad_argument_raises_an_error_that_names_it(name, kind, call, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(kind) as e:
        call()
    assert name in str(e.value), str(e.value)
    assert not os.listdir(tmp_path)


def test_a_memory_mapped_maplet_reports_its_table_size(tmp_path):
    m = mappy.Maplet(100_000, 0.01)
    m.batch_insert([f"k{i}" for i in range(50_000)], [1] * 50_000)
    path = tmp_path / "m.maplet"
    m.save(path)
    mapped = mappy.Maplet.load(path, mmap=True)
    loaded = mappy.Maplet.load(path)
    s, t = mapped.stats(), loaded.stats()
    assert s.item_count == t.item_count > 0
    # The table's words, mapped from the file: the same bytes as in memory.
    assert s.memory_usage == t.memory_usage
    assert 0 < s.memory_usage < os.path.getsize(path)
    assert s.bits_per_item == pytest.approx(t.bits_per_item)
    assert 10 < s.bits_per_item < 30


def test_maplet_is_subscriptable_as_a_generic_type():
    alias = mappy.Maplet[int]
    assert alias.__origin__ is mappy.Maplet
    assert alias.__args__ == (int,)


USER_SCRIPT = """\
from typing import Any, FrozenSet, List, Optional

import mappy_python as mappy

counts = mappy.Maplet(1000, 0.01)
n: Optional[int] = counts.query("a")
total: int = counts.get("a", 0) + 1
many: List[Optional[int]] = counts.batch_query(["a", "b"])
sets = mappy.Maplet(1000, 0.01, mappy.SetOperator())
members: Optional[FrozenSet[Any]] = sets.query("a")
highest = mappy.Maplet(1000, 0.01, mappy.MaxOperator())
anything: Optional[str] = highest.query("a")
wrong: str = counts.query("a")  # line 13: an int is no str
also_wrong: int = sets.get("a", 0)  # line 14: a frozenset is no int
bad_rate = mappy.Maplet(1000, "0.01")  # line 15: a str is no rate
"""
BAD_LINES = {13, 14, 15}


def checked_lines(output, script):
    lines = set()
    for line in output.splitlines():
        if script.name in line and "error" in line:
            after = line.split(script.name, 1)[1]
            lines.add(int(after.lstrip(":(").split(":")[0].split(",")[0].strip()))
    return lines


def test_mypy_checks_values_by_operator(tmp_path):
    script = tmp_path / "user.py"
    script.write_text(USER_SCRIPT)
    out = subprocess.run(
        [sys.executable, "-m", "mypy", "--no-incremental", "--follow-imports=silent", str(script)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert checked_lines(out.stdout, script) == BAD_LINES, out.stdout


def test_pyright_checks_values_by_operator(tmp_path):
    script = tmp_path / "user.py"
    script.write_text(USER_SCRIPT)
    (tmp_path / "pyrightconfig.json").write_text('{"typeCheckingMode": "standard"}')
    exe = shutil.which("basedpyright", path=os.path.dirname(sys.executable))
    assert exe, "basedpyright is in the test extra"
    out = subprocess.run(
        [exe, "--pythonpath", sys.executable, str(script)], capture_output=True, text=True, cwd=tmp_path
    )
    got = set()
    for line in out.stdout.splitlines():
        if script.name in line and " - error" in line:
            got.add(int(line.split(script.name + ":", 1)[1].split(":")[0]))
    assert got == BAD_LINES, textwrap.indent(out.stdout, "  ")
