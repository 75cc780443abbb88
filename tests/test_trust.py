"""The trust rules: files never run code, bad input never changes a maplet,
no wait lasts for ever, and no call breaks the one-sided promise."""

import os
import pickle
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import mappy_python as mappy


def run_python(code, timeout=60):
    """Runs `code` in a fresh interpreter; its exit status and output."""
    r = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=timeout
    )
    return r.returncode, r.stdout + r.stderr


# ---- files never run code --------------------------------------------------------


class Exploit:
    """A value whose unpickling would run a command."""

    def __reduce__(self):
        return (os.system, ("echo exploited > /dev/stderr",))


def custom():
    return mappy.CustomOperator(lambda a, b: a)


def test_pickled_values_are_refused_on_load_unless_allowed(tmp_path):
    m = mappy.Maplet(100, 0.01, custom())
    m.insert("k", Exploit())
    data = m.to_bytes()
    with pytest.raises(mappy.UnsafeDataError, match="allow_pickle=True"):
        mappy.Maplet.from_bytes(data, custom())
    path = tmp_path / "m.maplet"
    m.save(path)
    with pytest.raises(mappy.UnsafeDataError, match="unpickling can run code"):
        mappy.Maplet.load(path, custom())
    # The refusal is a ValueError too, as numpy.load's is.
    assert issubclass(mappy.UnsafeDataError, ValueError)


def test_allowing_pickle_reads_objects_back():
    m = mappy.Maplet(100, 0.01, mappy.MaxOperator())
    m.insert("t", (1, "a"))
    back = mappy.Maplet.from_bytes(m.to_bytes(), allow_pickle=True)
    assert back.query("t") == (1, "a")
    with pytest.raises(mappy.UnsafeDataError):
        mappy.Maplet.from_bytes(m.to_bytes())


PLAIN_SETS = [
    frozenset(),
    frozenset({"a", "b"}),
    frozenset({b"\x00\xff", b""}),
    frozenset({0, -1, 2**63, -(2**200), 255, -128}),
    frozenset({1.5, float("inf"), -0.0}),
    frozenset({None, True}),
    frozenset({"ü", 7, 2.5, b"x"}),
]


@pytest.mark.parametrize("items", PLAIN_SETS, ids=repr)
def test_sets_of_plain_items_round_trip_exactly_without_pickle(items, tmp_path):
    m = mappy.Maplet(100, 0.01, mappy.SetOperator())
    m.insert("k", items)
    back = mappy.Maplet.from_bytes(m.to_bytes())  # no allow_pickle
    got = back.query("k")
    assert got == items
    assert sorted(map(repr, got)) == sorted(map(repr, items))  # same types, not just equal
    path = tmp_path / "s.maplet"
    m.save(path)
    assert mappy.Maplet.load(path).query("k") == items


def test_plain_scalars_of_object_max_round_trip_without_pickle():
    m = mappy.Maplet(100, 0.01, mappy.MaxOperator())
    m.insert("s", "pear")
    m.insert("b", b"\x01")
    m.insert("big", 2**100)
    back = mappy.Maplet.from_bytes(m.to_bytes())
    assert (back.query("s"), back.query("b"), back.query("big")) == ("pear", b"\x01", 2**100)


def test_unpickling_a_pickled_maplet_allows_its_values():
    m = mappy.Maplet(100, 0.01, mappy.MaxOperator())
    m.insert("t", (2, 3))
    assert pickle.loads(pickle.dumps(m)).query("t") == (2, 3)


# ---- files that are not maplets ------------------------------------------------


def test_loading_what_is_not_a_regular_file_is_refused_before_reading(tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    code = f"""
    import mappy_python as mappy
    for path in ({str(fifo)!r}, "/dev/zero", {str(tmp_path)!r}):
        for mmap in (False, True):
            try:
                mappy.Maplet.load(path, mmap=mmap)
            except mappy.CorruptDataError as e:
                assert "not a regular file" in str(e), e
            else:
                raise AssertionError(path)
    print("refused")
    """
    rc, out = run_python(code, timeout=30)
    assert rc == 0 and "refused" in out, out


def test_save_writes_only_regular_files(tmp_path):
    m = mappy.Maplet(100, 0.01)
    m.insert("a", 1)
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    for target in (fifo, tmp_path):
        with pytest.raises(OSError, match="not a regular file"):
            m.save(target)
    assert fifo.exists() and not fifo.is_file()
    # A symbolic link is replaced; the file it pointed to is left as it was.
    other = tmp_path / "other"
    other.write_bytes(b"keep me")
    link = tmp_path / "link.maplet"
    link.symlink_to(other)
    m.save(link)
    assert other.read_bytes() == b"keep me"
    assert not link.is_symlink() and mappy.Maplet.load(link).query("a") == 1


# ---- memory-mapped maplets -------------------------------------------------------


def mapped(tmp_path, operator=None, value=1):
    m = mappy.Maplet(1000, 0.01, operator or mappy.CounterOperator())
    for i in range(500):
        m.insert(i, value)
    path = tmp_path / "m.maplet"
    m.save(path)
    return path


@pytest.mark.parametrize("op", [mappy.CounterOperator(), mappy.MaxOperator(), mappy.MinOperator()])
@pytest.mark.parametrize("value", [1, 2.5, "text", (1, 2), [1.0]])
def test_a_mapped_maplet_refuses_every_write_whatever_the_value(tmp_path, op, value):
    r = mappy.Maplet.load(mapped(tmp_path, op), mmap=True)
    before = r.to_bytes()
    for write in (
        lambda: r.insert("new", value),
        lambda: r.batch_insert([("new", value)]),
        lambda: r.batch_insert(["new"], [value]),
        lambda: r.delete(1),
        lambda: r.clear(),
        lambda: r.merge(mappy.Maplet(1000, 0.01, op)),
    ):
        with pytest.raises((mappy.ReadOnlyError, TypeError, ValueError)) as e:
            write()
        # Values the operator could store are refused as writes.
        if not isinstance(value, (tuple, list)) and not (
            isinstance(op, mappy.CounterOperator) and not isinstance(value, int)
        ):
            assert isinstance(e.value, mappy.ReadOnlyError), (write, e.value)
    assert r.to_bytes() == before and r.read_only


def test_damage_in_a_mapped_table_is_found_and_never_resealed(tmp_path):
    path = mapped(tmp_path)
    data = bytearray(path.read_bytes())
    for at in range(700, len(data) - 16, 97):  # the slot table
        data[at] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(mappy.CorruptDataError):
        mappy.Maplet.load(path)  # the checksum
    r = mappy.Maplet.load(path, mmap=True)  # cheap checks only
    with pytest.raises(mappy.CorruptDataError):
        r.verify()
    out = tmp_path / "resealed.maplet"
    for write in (r.copy, r.to_bytes, lambda: r.save(out), lambda: mappy.Maplet(1000, 0.01).merge(r)):
        with pytest.raises(mappy.CorruptDataError):
            write()
    assert not out.exists()


def test_verify_passes_on_a_sound_mapped_maplet(tmp_path):
    r = mappy.Maplet.load(mapped(tmp_path), mmap=True)
    r.verify()
    assert r.copy().query(3) >= 1


# ---- panics and deadlocks --------------------------------------------------------


def test_a_rust_panic_reaches_python_as_a_maplet_error():
    with pytest.raises(mappy.MapletError, match="internal error"):
        mappy._mappy._panic_for_tests()


def test_merge_functions_that_read_each_others_maplet_never_deadlock():
    code = """
    import threading
    import mappy_python as mappy
    both = threading.Barrier(2)
    a = b = None
    def fa(x, y):
        both.wait()
        b.query("k")
        return x + y
    def fb(x, y):
        both.wait()
        a.query("k")
        return x + y
    a = mappy.Maplet(100, 0.01, mappy.CustomOperator(fa))
    b = mappy.Maplet(100, 0.01, mappy.CustomOperator(fb))
    a.insert("k", 1)
    b.insert("k", 1)
    outcome = {}
    def run(name, m):
        try:
            m.insert("k", 1)
            outcome[name] = "merged"
        except RuntimeError as e:
            assert "deadlock" in str(e)
            outcome[name] = "refused"
    ts = [threading.Thread(target=run, args=(n, m)) for n, m in (("a", a), ("b", b))]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert "refused" in outcome.values(), outcome
    # A refused insert changed nothing; a merged one added its 1.
    assert sorted((a.query("k"), b.query("k"))) in ([1, 1], [1, 2]), (a.query("k"), b.query("k"))
    print("finished", sorted(outcome.values()))
    """
    rc, out = run_python(code, timeout=60)
    assert rc == 0 and "finished" in out, out


def test_a_thread_waiting_for_a_maplet_answers_ctrl_c():
    code = """
    import os, signal, threading, time
    import mappy_python as mappy
    holding = threading.Event()
    def slow(x, y):
        holding.set()
        time.sleep(20)
        return x
    m = mappy.Maplet(100, 0.01, mappy.CustomOperator(slow))
    m.insert("k", 1)
    threading.Thread(target=m.insert, args=("k", 2), daemon=True).start()
    holding.wait()
    threading.Timer(0.3, os.kill, (os.getpid(), signal.SIGINT)).start()
    start = time.monotonic()
    try:
        m.query("k")  # waits for the lock the slow merge holds
    except KeyboardInterrupt:
        print("interrupted after", round(time.monotonic() - start, 1))
        os._exit(0)
    print("not interrupted")
    os._exit(1)
    """
    rc, out = run_python(code, timeout=15)
    assert rc == 0 and "interrupted" in out, out


# ---- the one-sided promise -------------------------------------------------------


def test_unsigned_counters_refuse_what_could_make_an_answer_too_low():
    m = mappy.Maplet(100, 0.01)
    m.insert("a", 3)
    before = m.to_bytes()
    with pytest.raises(mappy.InvalidValueError, match="signed=True"):
        m.insert("a", -1)
    with pytest.raises(mappy.InvalidValueError, match="delete only what you inserted"):
        m.delete("a", 4)
    with pytest.raises(mappy.InvalidValueError):
        m.delete("a", -1)
    for batch in (
        lambda: m.batch_insert([("b", 1), ("c", -2)]),
        lambda: m.batch_insert(["b", "c"], [1, -2]),
        lambda: m.batch_insert(np.array([1, 2], dtype=np.uint64), np.array([1, -2], dtype=np.int64)),
    ):
        with pytest.raises(mappy.InvalidValueError) as e:
            batch()
        assert "at item 1 of the batch" in "".join(getattr(e.value, "__notes__", []))
    assert m.to_bytes() == before
    assert m.delete("a", 3) and "a" not in m


def test_signed_counters_take_negative_counts_and_say_so():
    op = mappy.CounterOperator(signed=True)
    assert op.signed and repr(op) == "CounterOperator(signed=True)"
    assert pickle.loads(pickle.dumps(op)) == op != mappy.CounterOperator()
    m = mappy.Maplet(100, 0.01, op)
    m.insert("a", -5)
    m.delete("a", 10)
    assert m.query("a") == -15
    assert m.operator == op
    back = mappy.Maplet.from_bytes(m.to_bytes())  # holds a negative count: signed
    assert back.operator.signed
    assert pickle.loads(pickle.dumps(mappy.Maplet(10, 0.01, op))).operator.signed


@pytest.mark.parametrize("op", [mappy.MaxOperator(), mappy.MinOperator()])
def test_max_and_min_refuse_nan_whatever_the_storage(op):
    for first in (1, 1.5, "s"):
        m = mappy.Maplet(100, 0.01, op)
        m.insert("a", first)
        before = m.to_bytes() if first != "s" else None
        with pytest.raises(mappy.InvalidValueError, match="NaN"):
            m.insert("a", float("nan"))
        with pytest.raises(mappy.InvalidValueError):
            m.insert("b", np.float64("nan"))
        assert m.query("a") == first
        if before is not None:
            assert m.to_bytes() == before


def empty_and_full(op, value):
    full = mappy.Maplet(100, 0.01, op)
    full.insert("k", value)
    return mappy.Maplet(100, 0.01, op), full


@pytest.mark.parametrize(
    ("op", "value"),
    [
        (mappy.CounterOperator(), 3),
        (mappy.MaxOperator(), 3),
        (mappy.MaxOperator(), 2.5),
        (mappy.MinOperator(), -2.5),
        (mappy.MaxOperator(), "obj"),
        (mappy.SetOperator(), {"x"}),
        (mappy.VectorOperator(), np.array([1.0, 2.0])),
        (mappy.VectorOperator(), np.array([1.0, 2.0], dtype=np.float32)),
        (mappy.CustomOperator(lambda a, b: a + b), 4),
    ],
    ids=repr,
)
def test_empty_maplets_merge_both_ways_for_every_operator_and_value(op, value):
    def check(m):
        got = m.query("k")
        assert (
            np.all(got == value)
            if isinstance(value, np.ndarray)
            else got == (frozenset(value) if isinstance(value, set) else value)
        )

    empty, full = empty_and_full(op, value)
    empty.merge(full)
    check(empty)
    empty, full = empty_and_full(op, value)
    full.merge(empty)
    check(full)
    check(mappy.merge([mappy.Maplet(100, 0.01, op), full, mappy.Maplet(100, 0.01, op)]))


def test_merging_into_an_empty_maplet_keeps_its_memory_limit():
    small = mappy.Maplet(100, 0.01, mappy.VectorOperator(), memory_limit_mb=0.05)
    _, big = empty_and_full(mappy.VectorOperator(), np.ones(100_000))
    with pytest.raises(mappy.MemoryLimitError):
        small.merge(big)
    assert len(small) == 0
    _, fits = empty_and_full(mappy.VectorOperator(), np.ones(4))
    small.merge(fits)
    with pytest.raises(mappy.MemoryLimitError):
        small.insert("big", np.ones(100_000))


def test_delete_documents_the_rule_that_keeps_the_guarantee():
    doc = mappy.Maplet.delete.__doc__
    assert "never inserted" in doc and "delete only what you inserted" in doc.lower()


# ---- stats read as a mapping -----------------------------------------------------


def test_stats_read_as_attributes_and_as_a_mapping():
    m = mappy.Maplet(1000, 0.01)
    m.insert("a", 1)
    s = m.stats()
    assert s["load_factor"] == s.load_factor and s["item_count"] == 1
    d = dict(s)
    assert d["capacity"] == s.capacity and set(d) == set(s.keys())
    assert "memory_usage" in s and "nothing" not in s and len(s) == len(d)
    with pytest.raises(KeyError):
        s["nothing"]
    from collections.abc import Mapping

    assert isinstance(s, Mapping)


def test_os_errors_carry_errno_and_filename(tmp_path):
    import errno

    missing = tmp_path / "missing.maplet"
    with pytest.raises(FileNotFoundError) as e:
        mappy.Maplet.load(missing)
    assert e.value.errno == errno.ENOENT and e.value.filename == str(missing)
    with pytest.raises(FileNotFoundError) as e:
        mappy.Maplet(10, 0.01).save(tmp_path / "no" / "dir.maplet")
    assert e.value.errno == errno.ENOENT and e.value.filename.endswith("dir.maplet")


def test_key_in_maplet_takes_the_fast_slot_and_subclasses_can_override_it():
    m = mappy.Maplet(10, 0.01)
    m.insert("a", 1)
    assert "a" in m and "b" not in m and m.__contains__("a")
    with pytest.raises(TypeError):
        1.5 in m  # noqa: B015

    class Plain(mappy.Maplet):
        pass

    class Own(mappy.Maplet):
        def __contains__(self, key):
            return key == "own"

    p = Plain(10, 0.01)
    p.insert("x", 1)
    assert "x" in p and "y" not in p
    assert "own" in Own(10, 0.01) and "x" not in Own(10, 0.01)


def test_growth_is_bounded_and_never_duplicates_entries():
    """A maplet built for one item, filled a few keys at a time, grows to at
    least 2**22 home slots; the doubling past the point where its oldest
    fingerprints have no bits left is refused with ``MapletOverflowError``,
    and the refused batch changes nothing. (A large batch into a nearly
    empty maplet sizes the table for itself first, so its entries get the
    longer fingerprints of the grown table.)"""
    m = mappy.Maplet(1, 0.01, mappy.CounterOperator())
    inserted = 0
    with pytest.raises(mappy.MapletOverflowError, match="grown"):
        for start in range(0, 20_000_000, 1000):
            keys = np.arange(start, start + 1000, dtype=np.uint64)
            before = (len(m), m.capacity)
            try:
                m.batch_insert(keys, np.ones(len(keys), dtype=np.int64))
            except mappy.MapletOverflowError:
                assert (len(m), m.capacity) == before
                raise
            inserted += len(keys)
            if start % 100_000 == 0:
                assert len(m) <= inserted
    assert len(m) <= inserted
    assert m.capacity >= 2**22
    assert inserted >= 3_000_000
    assert m.batch_query(np.arange(inserted, dtype=np.uint64)).min() >= 1


def _big(i):
    return "x" * 2000 + str(i)


@pytest.mark.parametrize(
    "op, value",
    [
        (mappy.SetOperator(), lambda i: {_big(i)}),
        (mappy.CustomOperator(lambda a, b: a + b), lambda i: _big(i).encode()),
        (mappy.MaxOperator(), lambda i: (_big(i), i)),
    ],
    ids=["set", "custom", "object-max"],
)
def test_the_memory_limit_counts_python_values(op, value):
    """Values kept as Python objects count toward ``memory_limit_mb`` with
    what they hold (a set with its items): a maplet of a few hundred keys
    under a 1 MiB limit refuses the insert that would pass it, and the
    refused insert changes nothing."""
    m = mappy.Maplet(1000, 0.01, op, memory_limit_mb=1)
    stored = 0
    with pytest.raises(mappy.MemoryLimitError):
        for i in range(100_000):
            before = (len(m), m.stats().memory_usage, m.to_bytes())
            m.insert(f"k{i}", value(i))
            stored += len(_big(i))
    assert (len(m), m.stats().memory_usage, m.to_bytes()) == before
    assert m.stats().memory_usage <= 2**20
    # The values' bytes are what filled it, not the table.
    assert 2**20 / 2 < stored < 2**20


def test_a_value_changed_after_it_was_stored_keeps_the_accounts_straight():
    """A stored object keeps the size it was first measured at (at the
    insert under a memory limit; without one, when the figure is first asked
    for): growing it afterwards neither lets the maplet pass its limit nor
    unbalances the figures when the value is replaced or removed."""
    for limit in (64.0, None):
        m = mappy.Maplet(1000, 0.01, mappy.MaxOperator(), memory_limit_mb=limit)
        empty = m.stats().memory_usage
        m.insert("k", [1])
        if limit is None:
            m.stats()  # measured here
        held = m.query("k")
        held.extend(range(100_000))  # the caller's own object, changed in place
        grown = m.stats().memory_usage
        assert grown - empty < 10_000
        m.insert("k", [2])  # replaces it: the old figure is taken off
        assert m.stats().memory_usage - empty < 10_000
        assert m.delete("k")
        assert m.stats().memory_usage <= grown


def test_a_set_value_counts_what_sys_getsizeof_says_it_holds():
    """A set value counts its own size and its items', as ``sys.getsizeof``
    gives them, whether it arrived whole or grew by merges: the figures of
    sets of different sizes differ by exactly what ``getsizeof`` says."""
    import sys

    def held(build, n):
        m = mappy.Maplet(100, 0.01, mappy.SetOperator())
        m.insert("warm", {1})
        m.insert("warm2", {1})
        empty = m.stats().memory_usage
        if build == "whole":
            m.insert("k", frozenset(f"item{i}" for i in range(n)) or {""})
        else:
            for i in range(n):
                m.insert("k", {f"item{i}"})
        v = m.query("k")
        want = sys.getsizeof(v) + sum(map(sys.getsizeof, v))
        return m.stats().memory_usage - empty - want

    overheads = {held(build, n) for build in ("whole", "merged") for n in (1, 4, 5, 20, 300)}
    assert len(overheads) == 1, overheads  # only the index's own slot differs
    assert 0 <= overheads.pop() <= 64
