"""The Maplet API: Python protocols, operators, keys, copies and merges."""

import copy
import gc
import inspect
import pickle
import sys

import cloudpickle
import numpy as np
import pytest

import mappy_python as mappy


def counter(n=1000, rate=0.01, **kw):
    return mappy.Maplet(n, rate, mappy.CounterOperator(), **kw)


def test_constructor_positional_and_keyword():
    a = mappy.Maplet(1000, 0.01, mappy.CounterOperator())
    b = mappy.Maplet(
        expected_items=1000,
        false_positive_rate=0.01,
        operator=mappy.CounterOperator(),
        memory_limit_mb=10,
        seed=7,
    )
    c = mappy.Maplet(1000, 0.01)  # counter by default
    assert a.seed == c.seed != b.seed == 7
    assert isinstance(c.operator, mappy.CounterOperator)
    assert (b.expected_items, b.false_positive_rate) == (1000, 0.01)


def test_python_protocols():
    m = counter()
    m.insert("a", 3)
    assert len(m) == 1 and "a" in m and "b" not in m
    assert m["a"] == 3
    with pytest.raises(KeyError):
        m["b"]
    assert repr(m) == "Maplet(operator=CounterOperator(), len=1, capacity=1053, false_positive_rate=0.01)"
    with pytest.raises(TypeError):
        hash(m)
    assert "Stats(item_count=1" in repr(m.stats())


def test_per_key_calls_take_positional_arguments_only():
    """insert, query and contains take their arguments as dict.get does;
    a wrong call is a TypeError that changes nothing."""
    m = counter()
    m.insert("a", 3)
    before = m.to_bytes()
    for bad in (
        lambda: m.insert("a"),
        lambda: m.insert("a", 1, 2),
        lambda: m.insert(),
        lambda: m.insert(key="a", value=1),
        lambda: m.query(),
        lambda: m.query("a", "b"),
        lambda: m.query(key="a"),
        lambda: m.contains(key="a"),
        lambda: m.insert(["unhashable"], 1),
        lambda: m.query(1.5),
    ):
        with pytest.raises(TypeError):
            bad()
    assert m.to_bytes() == before
    assert (m.query("a"), m.contains("a"), m.contains("b")) == (3, True, False)
    # Unbound, the methods accept only maplets.
    with pytest.raises(TypeError):
        mappy.Maplet.query({}, "a")
    assert mappy.Maplet.query(m, "a") == 3
    for name, sig in [("insert", "(self, key, value, /)"), ("query", "(self, key, /)")]:
        assert str(inspect.signature(getattr(mappy.Maplet, name))) == sig


def test_subclasses_keep_and_override_the_per_key_calls():
    class Logged(mappy.Maplet):
        def query(self, key):
            return ("logged", super().query(key))

    m = Logged(100, 0.01)
    m.insert("a", 2)
    assert m.query("a") == ("logged", 2)
    assert m.contains("a") and m["a"] == 2


def test_per_key_calls_on_every_storage_release_what_they_drop():
    """Maplets that hold Python objects drop replaced values at once."""

    class Tracked:
        alive = 0

        def __init__(self, n):
            self.n = n
            Tracked.alive += 1

        def __del__(self):
            Tracked.alive -= 1

        def __lt__(self, other):
            return self.n < other.n

    m = mappy.Maplet(100, 0.01, mappy.MaxOperator())
    for i in range(1000):
        m.insert("k", Tracked(i))
    assert m.query("k").n == 999
    assert Tracked.alive == 1


def test_keys_of_each_type_are_distinct_and_stable():
    m = counter(seed=1)
    for k in ("1", b"1", 1, bytearray(b"x"), memoryview(b"y"), 2**100, -(2**70), np.int64(5)):
        m.insert(k, 1)
    assert len(m) == 8
    assert m.query(bytearray(b"1")) == m.query(b"1") == 1
    assert m.query(np.uint8(5)) == m.query(5) == 1
    assert m.query(True) == m.query(1)  # bool is an int, as in a dict
    with pytest.raises(TypeError, match="str, bytes or int"):
        m.insert(1.5, 1)
    with pytest.raises(TypeError):
        m.query(("a",))

    # Every process hashes keys alike: the same inserts give the same bytes.
    import subprocess
    import sys

    code = (
        "import mappy_python as m, sys; x = m.Maplet(100, 0.01); x.insert('k', 1); "
        "x.insert(2**70, 2); sys.stdout.buffer.write(x.to_bytes())"
    )
    here = counter(100)
    here.insert("k", 1)
    here.insert(2**70, 2)
    assert (
        subprocess.run([sys.executable, "-c", code], capture_output=True, check=True).stdout
        == here.to_bytes()
    )


def test_counter_values():
    m = mappy.Maplet(1000, 0.01, mappy.CounterOperator(signed=True))
    m.insert("a", -5)
    m.insert("a", 2)
    assert m.query("a") == -3
    with pytest.raises(OverflowError):
        m.insert("b", 2**63)
    assert "b" not in m
    m.insert("c", 2**63 - 1)
    with pytest.raises(OverflowError):
        m.insert("c", 1)
    assert m.query("c") == 2**63 - 1
    with pytest.raises(TypeError):
        m.insert("d", "1")


def test_max_min_numbers_and_objects():
    mx = mappy.Maplet(100, 0.01, mappy.MaxOperator())
    mx.insert("a", 3)
    mx.insert("a", 7)
    mx.insert("a", 5)
    assert mx.query("a") == 7
    mx.insert("a", 8.5)  # a float after ints: still answers numbers
    assert mx.query("a") == 8.5
    mx.insert("cfg", {"v": 1})  # any comparable objects
    assert mx.query("cfg") == {"v": 1}
    mn = mappy.Maplet(100, 0.01, mappy.MinOperator())
    for v in (3.5, -1.25, 2.0):
        mn.insert("x", v)
    assert mn.query("x") == -1.25
    strings = mappy.Maplet(100, 0.01, mappy.MaxOperator())
    strings.insert("s", "apple")
    strings.insert("s", "pear")
    assert strings.query("s") == "pear"


def test_sets_vectors_custom():
    s = mappy.Maplet(100, 0.01, mappy.SetOperator())
    s.insert("k", {1, 2})
    s.insert("k", [2, 3])
    s.insert("k", frozenset({"x"}))
    assert s.query("k") == frozenset({1, 2, 3, "x"})
    with pytest.raises(TypeError):
        s.insert("k", "abc")
    v = mappy.Maplet(100, 0.01, mappy.VectorOperator())
    v.insert("a", [1, 2])
    v.insert("a", np.array([0.5, 0.5]))
    assert v.query("a").tolist() == [1.5, 2.5] and v.query("a").dtype == np.float64
    with pytest.raises(ValueError, match="length"):
        v.insert("a", [1.0, 2.0, 3.0])
    assert v.query("a").tolist() == [1.5, 2.5]
    c = mappy.Maplet(100, 0.01, mappy.CustomOperator(lambda a, b: a + b * 2))
    c.insert("k", 1)
    c.insert("k", 10)
    assert c.query("k") == 21


def test_delete_and_clear():
    m = counter()
    m.insert("a", 5)
    assert m.delete("a", 2) and m.query("a") == 3
    assert m.delete("a", 3) and m.query("a") is None
    assert not m.delete("missing")
    m.insert("b", 1)
    assert m.delete("b") and "b" not in m
    m.insert("c", 1)
    m.clear()
    assert len(m) == 0 and m.capacity == 1053


def test_batches():
    m = counter()
    m.batch_insert([("a", 1), ("b", 2), ("a", 3)])
    m.batch_insert(["c", "d"], [5, 6])
    assert m.batch_query(["a", "b", "c", "d", "zz"]) == [4, 2, 5, 6, None]
    assert m.batch_contains(["a", "zz"]) == [True, False]
    keys = np.array([10, 20, 30], dtype=np.uint64)
    m.batch_insert(keys, np.array([1, 2, 3], dtype=np.int64))
    out = m.batch_query(keys)
    assert isinstance(out, np.ndarray) and out.tolist() == [1, 2, 3]
    assert m.query(10) == 1  # array keys are the same keys as Python ints
    m.batch_insert(np.array([-5, 7], dtype=np.int64), np.array([2, 3], dtype=np.int64))
    strided = np.array([40, 0, 50, 0], dtype=np.uint64)[::2]
    m.batch_insert(strided, np.array([4, 5, 6, 7], dtype=np.int64)[::2])
    assert [m.query(k) for k in (-5, 7, 40, 50)] == [2, 3, 4, 6]
    with pytest.raises(ValueError, match="keys but"):
        m.batch_insert(keys, np.array([1, 2], dtype=np.int64))
    with pytest.raises(ValueError, match="keys but"):
        m.batch_insert(["x", "y"], [1])
    with pytest.raises(TypeError):
        m.batch_insert(["x", 1.5], [1, 1])
    assert "x" not in m  # a bad key stops the batch before anything is inserted


@pytest.mark.parametrize("as_array", [False, True])
def test_batches_of_one_count_and_of_counts_that_change(as_array):
    # Large enough to be merged in one pass. All counts alike go in as one
    # count under every key; a different count part way turns the batch
    # into pairs. Either way: the same as inserting the pairs one by one.
    n = 3000
    for counts in ([3] * n, [3] * 1000 + [4] + [3] * (n - 1001), [7] + [1] * (n - 1)):
        keys = list(range(n)) + list(range(n // 2))
        counts = counts + [2] * (n // 2)
        if as_array:
            batch = (np.array(keys, dtype=np.uint64), np.array(counts, dtype=np.int64))
        else:
            batch = ([f"k{k}" for k in keys], counts)
        m, one = counter(10_000), counter(10_000)
        m.batch_insert(*batch)
        for k, c in zip(*batch):
            one.insert(int(k) if as_array else k, int(c))
        assert len(m) == len(one)
        assert [m.query(int(k) if as_array else k) for k in batch[0][:n]] == [
            one.query(int(k) if as_array else k) for k in batch[0][:n]
        ]
    # A bad count after a run of equal ones changes nothing.
    m = counter(10_000)
    m.insert("k0", 1)
    with pytest.raises(OverflowError):
        m.batch_insert([f"k{i}" for i in range(n)], [1] * (n - 1) + [2**64])
    assert len(m) == 1 and m.query("k0") == 1 and "k1" not in m


def test_copy_merge_and_or():
    a, b = counter(), counter()
    a.insert("x", 1)
    b.insert("x", 2)
    b.insert("y", 5)
    c = a | b
    assert (c.query("x"), c.query("y"), a.query("y")) == (3, 5, None)
    d = copy.copy(a)
    d.insert("z", 1)
    assert "z" not in a
    a.merge(b)
    assert a.query("x") == 3
    assert mappy.merge([counter(), b, b]).query("y") == 10
    with pytest.raises(mappy.IncompatibleMapletsError):
        a.merge(counter(rate=0.001))
    with pytest.raises(mappy.IncompatibleMapletsError):
        a.merge(counter(seed=9))
    with pytest.raises(mappy.IncompatibleMapletsError):
        a.merge(mappy.Maplet(1000, 0.01, mappy.MaxOperator()))
    assert a.query("x") == 3


def test_pickle_and_cloudpickle_round_trip():
    m = counter()
    m.batch_insert([(f"k{i}", i) for i in range(500)])
    for dumps, loads in ((pickle.dumps, pickle.loads), (cloudpickle.dumps, cloudpickle.loads)):
        data = dumps(m)
        assert len(data) <= m.stats().memory_usage + 2048
        back = loads(data)
        assert all(back.query(f"k{i}") == m.query(f"k{i}") for i in range(500))
    sets = mappy.Maplet(100, 0.01, mappy.SetOperator())
    sets.insert("k", {"a"})
    assert pickle.loads(pickle.dumps(sets)).query("k") == frozenset({"a"})
    custom = mappy.Maplet(100, 0.01, mappy.CustomOperator(max))
    custom.insert("k", 3)
    assert pickle.loads(pickle.dumps(custom)).query("k") == 3
    unpicklable = mappy.Maplet(100, 0.01, mappy.CustomOperator(lambda a, b: a))
    with pytest.raises((pickle.PicklingError, AttributeError, TypeError)):
        pickle.dumps(unpicklable)
    assert cloudpickle.loads(cloudpickle.dumps(unpicklable)).operator.func(1, 2) == 1


def test_protocol_5_pickles_hand_the_bytes_over_out_of_band():
    m = counter()
    m.batch_insert([(f"k{i}", i) for i in range(500)])
    buffers = []
    data = pickle.dumps(m, protocol=5, buffer_callback=buffers.append)
    # The table travels beside the pickle, not in it.
    assert len(buffers) == 1 and len(data) < 200
    raw = bytes(buffers[0].raw())
    assert raw == m.to_bytes()
    for given in (raw, bytearray(raw), memoryview(raw), buffers[0]):
        back = pickle.loads(data, buffers=[given])
        assert all(back.query(f"k{i}") == m.query(f"k{i}") for i in range(500))
    # In band (no callback) and under older protocols, as before.
    for protocol in range(pickle.HIGHEST_PROTOCOL + 1):
        assert pickle.loads(pickle.dumps(m, protocol=protocol)).query("k7") == m.query("k7")
    # A damaged or foreign buffer is refused as damaged bytes are.
    bad = bytearray(raw)
    bad[len(bad) // 2] ^= 0xFF
    with pytest.raises(mappy.CorruptDataError):
        pickle.loads(data, buffers=[bad])
    with pytest.raises(TypeError):
        mappy.Maplet._restore(12345)
    with pytest.raises(mappy.CorruptDataError):
        mappy.Maplet._restore(memoryview(b"junk"))


def test_bytes_are_read_in_place_until_the_first_change():
    m = counter()
    m.batch_insert([(f"k{i}", i) for i in range(2000)])
    data = m.to_bytes()
    before = sys.getrefcount(data)
    back = mappy.Maplet.from_bytes(data)
    # The maplet keeps the bytes object (no copy of its table) ...
    assert sys.getrefcount(data) == before + 1
    assert back.to_bytes() == data and not back.read_only
    # ... until it first changes: the table is copied, then changed.
    back.insert("k3", 10)
    assert sys.getrefcount(data) == before
    assert back.query("k3") == m.query("k3") + 10 and data == m.to_bytes()
    # Deleting the caller's reference leaves the maplet whole.
    again = mappy.Maplet.from_bytes(bytes(data))
    gc.collect()
    assert again.query("k1999") == m.query("k1999")
    # Pickles: in band, and out of band from bytes or from views of all
    # of them, keep the bytes; a slice, or a writable buffer, is copied.
    pickled = pickle.loads(pickle.dumps(m))
    assert pickled.query("k5") == m.query("k5")
    buffers = []
    small = pickle.dumps(m, protocol=5, buffer_callback=buffers.append)
    raw = bytes(buffers[0].raw())
    padded = b"x" + raw
    writable = bytearray(raw)
    for given, owner, kept in (
        (raw, raw, True),
        (memoryview(raw), raw, True),
        (pickle.PickleBuffer(raw), raw, True),
        (memoryview(padded)[1:], padded, False),
        (memoryview(raw).cast("c"), raw, False),
        (writable, writable, False),
        (memoryview(writable).toreadonly(), writable, False),
    ):
        count = sys.getrefcount(owner)
        back = pickle.loads(small, buffers=[given])
        assert back.to_bytes() == data
        assert (sys.getrefcount(owner) > count) == kept, given
        back.insert("new", 1)
        assert back.query("new") >= 1 and bytes(buffers[0].raw()) == data
        assert sys.getrefcount(owner) == count
    # Still bytes only, as before.
    with pytest.raises(TypeError):
        mappy.Maplet.from_bytes(bytearray(data))


def test_save_load_and_mmap(tmp_path):
    path = tmp_path / "m.maplet"
    m = counter()
    m.batch_insert([(f"k{i}", i) for i in range(1000)])
    m.save(path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.maplet"]
    for loaded in (mappy.Maplet.load(path), mappy.Maplet.load(str(path), mmap=True)):
        assert all(loaded.query(f"k{i}") == m.query(f"k{i}") for i in range(1000))
    mapped = mappy.Maplet.load(path, mmap=True)
    assert mapped.read_only and not m.read_only
    for write in (
        lambda: mapped.insert("x", 1),
        lambda: mapped.batch_insert(["x", "y"], [1, 2]),
        lambda: mappy.count_kmers(mapped, ["ACGTACGT"], 3),
    ):
        with pytest.raises(mappy.ReadOnlyError):
            write()
    assert mapped.read_only and mapped.to_bytes() == m.to_bytes()
    writable = mapped.copy()
    writable.insert("x", 1)
    assert writable.query("x") == 1
    with pytest.raises(FileNotFoundError):
        mappy.Maplet.load(tmp_path / "missing.maplet")
    data = m.to_bytes()
    for bad in (data[:-1], data[:100], b"\x00" * len(data), data[:16] + b"\x02" + data[17:]):
        with pytest.raises(mappy.MapletError):
            mappy.Maplet.from_bytes(bad)
    assert mappy.Maplet.from_bytes(data).query("k5") == 5


def test_fixed_precision_merges_equal_one_maplet_after_growth():
    def new():
        return mappy.Maplet(100, 0.01, mappy.CounterOperator(), fixed_precision=True)

    a, b, everything = new(), new(), new()
    first = [f"a{i}" for i in range(3000)]
    second = [f"b{i % 500}" for i in range(2000)]
    for k in first:
        a.insert(k, 1)
        everything.insert(k, 1)
    for k in second:
        b.insert(k, 2)
        everything.insert(k, 2)
    assert a.capacity != b.capacity  # they grew differently
    merged = a | b
    assert merged.to_bytes() == everything.to_bytes()
    with pytest.raises(mappy.IncompatibleMapletsError):
        a.merge(counter(100))


def test_memory_usage_counts_python_values():
    import sys

    plain = mappy.Maplet(100, 0.01, mappy.SetOperator())
    plain.insert("k", {1})
    big = mappy.Maplet(100, 0.01, mappy.SetOperator())
    items = set(range(10_000))
    big.insert("k", items)
    grown = big.stats().memory_usage - plain.stats().memory_usage
    assert grown >= sys.getsizeof(frozenset(items)) - sys.getsizeof(frozenset({1}))


def test_count_kmers_to_file(tmp_path):
    reads = tmp_path / "r.fa"
    reads.write_text(">a\nACGTACGTAC\n>b\nTTTTNGGGG\n")
    out = tmp_path / "k.maplet"
    stats = mappy.count_kmers_to_file([reads], out, 4, 10, partitions=2)
    assert stats == {
        "sequences": 2,
        "bases": 19,
        "kmers": 9,
        "skipped": 4,
        "distinct": 5,
        "expected_items": 10,
        "input_passes": 1,
    }
    m = mappy.Maplet.load(out)
    assert m.query("ACGT") == 2 and m.query("AAAA") == 1 and m.query("CCCC") == 1
    in_memory = mappy.Maplet(10, 0.01, mappy.CounterOperator())
    mappy.count_kmers(in_memory, str(reads), 4)
    assert m.to_bytes() == in_memory.to_bytes()
    out.write_bytes(b"kept")
    with pytest.raises(mappy.InvalidParameterError, match="partitions"):
        mappy.count_kmers_to_file([reads], out, 4, 10, partitions=0)
    with pytest.raises(ValueError):
        mappy.count_kmers_to_file([reads], out, 40, 10, partitions=2)
    with pytest.raises(mappy.InvalidParameterError, match="no such file"):
        mappy.count_kmers_to_file([tmp_path / "none.fa"], out, 4, 10)
    assert out.read_bytes() == b"kept"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["k.maplet", "r.fa"]


def test_count_kmers_to_file_without_a_hint_and_with_scratch_elsewhere(tmp_path):
    import random

    rng = random.Random(3)
    reads = tmp_path / "r.fa"
    seqs = ("".join(rng.choice("ACGT") for _ in range(150)) for _ in range(300))
    reads.write_text("".join(f">r{i}\n{seq}\n" for i, seq in enumerate(seqs)))
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    files, passes = [], []
    # Hints far too small, about right, and none: one file.
    for hint in (100, 40_000, None):
        for parts in (1, 4):
            out = tmp_path / f"{hint}-{parts}.maplet"
            stats = mappy.count_kmers_to_file([reads], out, 21, hint, partitions=parts, tmp_dir=scratch)
            files.append(out.read_bytes())
            passes.append(stats["input_passes"])
            assert list(scratch.iterdir()) == []
        assert files[-1] == files[-2], hint
    m = mappy.Maplet.load(tmp_path / "None-4.maplet")
    assert m.query(mappy.canonical_kmer(reads.read_text().splitlines()[1][:21])) >= 1
    # In parts the input is read once whatever the hint; in memory once if
    # the hint holds the k-mers, else twice (an estimate, then the count).
    assert passes == [2, 1, 1, 1, 2, 1]
    with pytest.raises(mappy.InvalidParameterError, match="not a folder"):
        mappy.count_kmers_to_file([reads], tmp_path / "x.maplet", 21, partitions=2, tmp_dir=tmp_path / "no")


def test_count_kmers_to_file_reports_progress_and_stops_on_an_exception(tmp_path):
    import random

    rng = random.Random(5)
    reads = tmp_path / "r.fa"
    reads.write_text(
        "".join(f">r{i}\n{''.join(rng.choice('ACGT') for _ in range(150))}\n" for i in range(2000))
    )
    out = tmp_path / "k.maplet"
    seen = []
    stats = mappy.count_kmers_to_file(
        [reads], out, 21, 400_000, partitions=3, threads=2, progress=lambda *a: seen.append(a)
    )
    assert stats["kmers"] == 2000 * 130
    assert seen and {s for s, _, _ in seen} <= {"reading", "counting", "saving"}
    assert ("reading", seen[0][1], None) == seen[0]

    def stop(stage, done, total):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        mappy.count_kmers_to_file([reads], tmp_path / "no.maplet", 21, 400_000, partitions=3, progress=stop)
    assert not (tmp_path / "no.maplet").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["k.maplet", "r.fa"]


# ---- the names code written for the upstream package uses ------------------------


def test_capacity_is_another_name_for_expected_items():
    m = mappy.Maplet(capacity=1000, false_positive_rate=0.01)
    assert m.expected_items == 1000
    assert mappy.Maplet(1000, 0.01).capacity == m.capacity
    m.insert("a", 2)
    assert m.query("a") == 2 and m.stats()["item_count"] == 1 and dict(m.stats())["item_count"] == 1
    mx = mappy.Maplet(capacity=10, false_positive_rate=0.01, operator=mappy.MaxOperator(), seed=3)
    assert mx.seed == 3 and mx.expected_items == 10
    with pytest.raises(TypeError, match="both expected_items and capacity"):
        mappy.Maplet(1000, 0.01, capacity=1000)
    with pytest.raises(TypeError, match="both expected_items and capacity"):
        mappy.Maplet(expected_items=10, capacity=20, false_positive_rate=0.01)
    with pytest.raises(TypeError, match="'expected_items' \\(or 'capacity'\\)"):
        mappy.Maplet(false_positive_rate=0.01)
    with pytest.raises(TypeError, match="'false_positive_rate'"):
        mappy.Maplet(capacity=10)
    with pytest.raises(TypeError, match="'false_positive_rate'"):
        mappy.Maplet(10)
    with pytest.raises(mappy.InvalidParameterError, match="at least 1"):
        mappy.Maplet(capacity=0, false_positive_rate=0.01)
    with pytest.raises(TypeError, match="must be an int"):
        mappy.Maplet(capacity="many", false_positive_rate=0.01)


def test_verify_checksum_only_checks_a_mapped_file_fast(tmp_path):
    path = tmp_path / "m.maplet"
    m = mappy.Maplet(1000, 0.01)
    m.batch_insert([f"k{i}" for i in range(500)], [1] * 500)
    m.save(str(path))
    assert m.verify(checksum_only=True) is None  # in memory: nothing to check
    mappy.Maplet.load(str(path), mmap=True).verify(checksum_only=True)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    mapped = mappy.Maplet.load(str(path), mmap=True)
    with pytest.raises(mappy.CorruptDataError, match="checksum mismatch"):
        mapped.verify(checksum_only=True)
    with pytest.raises(mappy.CorruptDataError):
        mapped.copy()  # marked damaged
