"""Hostile input: keys, values, iterables, merge functions and files built to
break the maplet. Each must get a clear Python exception (or work) and leave
the maplet exactly as it was; nothing may crash, hang or raise PanicException.
Whatever could kill the interpreter runs in a subprocess.

"""

import gc
import os
import pickle
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import mappy_python as mappy

RATE = 1e-9  # few keys, no collisions: exact answers


def run_python(code, timeout=60):
    """Runs `code` in a fresh interpreter: (exit status, stdout + stderr)."""
    r = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "RUST_BACKTRACE": "0"},
    )
    return r.returncode, r.stdout + r.stderr


def assert_clean(rc, out, marker):
    assert rc == 0, (rc, out[-3000:])
    assert marker in out, out[-3000:]
    for bad in ("PanicException", "Traceback", "panicked at"):
        assert bad not in out, out[-3000:]


def op_id(x):
    """Stable test ids: a custom operator's repr holds an address."""
    return "CustomOperator" if isinstance(x, mappy.CustomOperator) else repr(x)


def snapshot(m):
    return m.to_bytes(), len(m)


# ---- hostile keys ------------------------------------------------------------------


class RaisingIndex:
    def __index__(self):
        raise ZeroDivisionError("broken __index__")


class StrIndex:
    def __index__(self):
        return "1"


class SelfIndex:
    def __index__(self):
        return self


class FloatIndex:
    def __index__(self):
        return 1.0


@pytest.mark.parametrize(
    "key, error",
    [
        (RaisingIndex(), ZeroDivisionError),
        (StrIndex(), TypeError),
        (SelfIndex(), TypeError),
        (FloatIndex(), TypeError),
        (None, TypeError),
        (1.0, TypeError),
        (float("nan"), TypeError),
        (1j, TypeError),
        (("a",), TypeError),
        ([1], TypeError),
        ({"a": 1}, TypeError),
        (object(), TypeError),
        (np.float64(1.0), TypeError),
        (np.array([1, 2]), TypeError),
        ("\ud800", UnicodeEncodeError),  # a lone surrogate has no UTF-8 form
        ("a\udfffb", UnicodeEncodeError),
    ],
    ids=op_id,
)
def test_bad_keys_raise_and_change_nothing(key, error):
    m = mappy.Maplet(100, RATE)
    m.insert("a", 1)
    before = snapshot(m)
    calls = [
        lambda: m.insert(key, 1),
        lambda: m.query(key),
        lambda: m.contains(key),
        lambda: key in m,
        lambda: m[key],
        lambda: m.delete(key),
        lambda: m.delete(key, 1),
        lambda: m.batch_insert([("b", 1), (key, 1)]),
        lambda: m.batch_insert(["b", key], [1, 1]),
        lambda: m.batch_query(["a", key]),
        lambda: m.batch_contains(["a", key]),
    ]
    for call in calls:
        with pytest.raises(error):
            call()
    assert snapshot(m) == before
    assert "b" not in m


def test_bool_keys_are_ints_as_in_a_dict():
    # Documented in test_api: True is the key 1 (as in a dict), not a TypeError.
    m = mappy.Maplet(100, RATE)
    m.insert(True, 2)
    m.insert(False, 3)
    assert m.query(1) == 2 and m.query(0) == 3


def test_huge_int_keys_are_keys():
    m = mappy.Maplet(100, RATE)
    big = 2**10000
    for k in (big, -big, big + 1, 2**64, -(2**64)):
        m.insert(k, 1)
    assert len(m) == 5
    assert all(m.query(k) == 1 for k in (big, -big, big + 1, 2**64, -(2**64)))
    assert m.query(big - 1) is None
    back = mappy.Maplet.from_bytes(m.to_bytes())
    assert back.query(big) == 1 and back.query(-big) == 1


def test_int_like_keys_are_the_same_keys_as_ints():
    class Idx:
        def __index__(self):
            return 2**70

    m = mappy.Maplet(100, RATE)
    m.insert(Idx(), 5)
    assert m.query(2**70) == 5
    m.insert(np.uint64(2**64 - 1), 1)
    assert m.query(2**64 - 1) == 1


# ---- hostile counter values --------------------------------------------------------


@pytest.mark.parametrize(
    "value, error",
    [
        (2**10000, mappy.MapletOverflowError),
        (-(2**10000), mappy.MapletOverflowError),
        (2**63, mappy.MapletOverflowError),
        (np.uint64(2**64 - 1), mappy.MapletOverflowError),
        (-1, mappy.InvalidValueError),
        (RaisingIndex(), ZeroDivisionError),
        (StrIndex(), TypeError),
        (SelfIndex(), TypeError),
        (1.0, TypeError),
        ("1", TypeError),
        (None, TypeError),
    ],
    ids=op_id,
)
def test_bad_counts_raise_and_change_nothing(value, error):
    m = mappy.Maplet(100, RATE)
    m.insert("a", 3)
    before = snapshot(m)
    for call in (
        lambda: m.insert("a", value),
        lambda: m.insert("new", value),
        # delete(key, None) removes the key: not a bad count.
        (lambda: m.delete("a", value)) if value is not None else (lambda: m.insert("a", value)),
        lambda: m.batch_insert([("b", 1), ("a", value)]),
        lambda: m.batch_insert(["b", "a"], [1, value]),
        lambda: m.batch_insert(("b", "a"), (1, value)),
    ):
        with pytest.raises(error):
            call()
    assert snapshot(m) == before


def test_signed_counter_overflow_both_ways_changes_nothing():
    m = mappy.Maplet(100, RATE, mappy.CounterOperator(signed=True))
    m.insert("lo", -(2**63))
    m.insert("hi", 2**63 - 1)
    before = snapshot(m)
    for call in (
        lambda: m.insert("lo", -1),
        lambda: m.delete("lo", 1),
        lambda: m.insert("hi", 1),
        lambda: m.delete("hi", -1),
        lambda: m.delete("hi", -(2**63)),
        lambda: m.batch_insert([("x", 1), ("hi", 1)]),
    ):
        with pytest.raises(mappy.MapletOverflowError):
            call()
    assert snapshot(m) == before
    assert m.delete("lo", -(2**63)) and m.query("lo") in (0, None)


# ---- hostile values for max/min object storage --------------------------------------


class BadBool:
    def __bool__(self):
        raise ArithmeticError("broken __bool__")


class Cmp:
    """Comparisons that work, raise, or answer something unusable."""

    def __init__(self, n, mode="ok"):
        self.n, self.mode = n, mode

    def _answer(self, result):
        if self.mode == "raise":
            raise ArithmeticError("broken comparison")
        if self.mode == "badbool":
            return BadBool()
        if self.mode == "none":
            return None
        return result

    def __eq__(self, other):
        return self._answer(isinstance(other, Cmp) and self.n == other.n)

    def __lt__(self, other):
        return self._answer(self.n < other.n)

    def __gt__(self, other):
        return self._answer(self.n > other.n)

    __hash__ = object.__hash__


@pytest.mark.parametrize("op", [mappy.MaxOperator(), mappy.MinOperator()], ids=op_id)
@pytest.mark.parametrize(
    "mode, error",
    [("raise", ArithmeticError), ("badbool", ArithmeticError), ("none", mappy.InvalidValueError)],
)
def test_broken_comparisons_raise_and_change_nothing(op, mode, error):
    m = mappy.Maplet(100, RATE, op)
    m.insert("k", Cmp(1))
    m.insert("other", Cmp(5))
    before_len, kept = len(m), m.query("k")
    for call in (
        lambda: m.insert("k", Cmp(2, mode)),
        lambda: m.insert("fresh", Cmp(2, mode)),
        lambda: m.batch_insert([("j", Cmp(3)), ("k", Cmp(2, mode))]),
        lambda: m.batch_insert(["j", "k"], [Cmp(3), Cmp(2, mode)]),
    ):
        with pytest.raises(error):
            call()
    assert len(m) == before_len and m.query("k") is kept
    assert m.query("j") is None and m.query("fresh") is None


@pytest.mark.parametrize("first", [1, 2.5, 2**70])
def test_a_failing_comparison_after_numbers_keeps_the_numbers(first):
    m = mappy.Maplet(100, RATE, mappy.MaxOperator())
    m.insert("a", first)
    m.insert("b", 7)
    before = snapshot(m)
    for mode in ("raise", "badbool", "none"):
        with pytest.raises((ArithmeticError, mappy.InvalidValueError)):
            m.insert("a", Cmp(1, mode))
        assert snapshot(m) == before


@pytest.mark.parametrize("op", [mappy.MaxOperator(), mappy.MinOperator()], ids=op_id)
def test_nan_in_every_batch_form_is_refused(op):
    nan = float("nan")
    for first in (None, 1, 1.5, "s", 2**70):
        m = mappy.Maplet(100, RATE, op)
        if first is not None:
            m.insert("a", first)
        before = snapshot(m)
        for call in (
            lambda m: m.batch_insert([("x", 1.0), ("y", nan)]),
            lambda m: m.batch_insert(["x", "y"], [1.0, nan]),
            lambda m: m.batch_insert(np.array([1, 2], dtype=np.uint64), np.array([1.0, nan])),
            lambda m: m.batch_insert(
                np.array([1, 2], dtype=np.uint64), np.array([1.0, nan], dtype=np.float32)
            ),
            lambda m: m.insert("z", np.float32("nan")),
        ):
            with pytest.raises(mappy.InvalidValueError):
                call(m)
            assert snapshot(m) == before


@pytest.mark.parametrize("op", [mappy.MaxOperator(), mappy.MinOperator()], ids=op_id)
def test_numpy_integer_values_of_max_min_are_plain_numbers(op):
    m = mappy.Maplet(100, RATE, op)
    m.insert("k", np.int64(5))
    m.batch_insert(np.array([1, 2], dtype=np.uint64), np.array([5, 6], dtype=np.int64))
    assert type(m.query("k")) is int and type(m.query(1)) is int
    back = mappy.Maplet.from_bytes(m.to_bytes())  # no allow_pickle: these are plain ints
    assert back.query("k") == 5 and back.query(2) == 6


# ---- hostile set items ---------------------------------------------------------------


class BadHash:
    def __hash__(self):
        raise ZeroDivisionError("broken __hash__")


class ClashingBadEq:
    def __hash__(self):
        return 1

    def __eq__(self, other):
        raise ArithmeticError("broken __eq__")


def _midway():
    yield 1
    raise LookupError("midway")


@pytest.mark.parametrize(
    "make, error",
    [
        (lambda: [BadHash()], ZeroDivisionError),
        (_midway, LookupError),
        (lambda: [[1]], TypeError),
        (lambda: 5, TypeError),
        (lambda: None, TypeError),
        (lambda: "abc", TypeError),
        (lambda: b"abc", TypeError),
    ],
    ids=["bad-hash", "raising-iterator", "unhashable", "int", "None", "str", "bytes"],
)
def test_broken_set_items_raise_and_change_nothing(make, error):
    s = mappy.Maplet(100, RATE, mappy.SetOperator())
    s.insert("k", {1, "a"})
    before = snapshot(s)
    for call in (
        lambda: s.insert("k", make()),
        lambda: s.insert("new", make()),
        lambda: s.batch_insert([("j", {2}), ("k", make())]),
    ):
        with pytest.raises(error):
            call()
    assert snapshot(s) == before
    assert s.query("k") == frozenset({1, "a"}) and s.query("j") is None


def test_set_items_whose_eq_raises_on_union_change_nothing():
    s = mappy.Maplet(100, RATE, mappy.SetOperator())
    s.insert("c", [ClashingBadEq()])
    before = len(s), s.query("c")
    with pytest.raises(ArithmeticError):
        s.insert("c", [ClashingBadEq()])  # the union compares the clashing items
    assert (len(s), s.query("c")) == before


@pytest.mark.parametrize("op", [mappy.SetOperator(), mappy.MaxOperator()], ids=op_id)
def test_lone_surrogate_values_round_trip_or_refuse_cleanly(op, tmp_path):
    """A str with a lone surrogate has no UTF-8 form: it is pickled, so
    loading needs allow_pickle (the README's "str round-trips exactly" does
    not hold for it: noted in the report, not a crash)."""
    value = {"\ud800", 1} if isinstance(op, mappy.SetOperator) else "\udc00abc"
    m = mappy.Maplet(100, RATE, op)
    m.insert("k", value)
    want = m.query("k")
    path = tmp_path / "s.maplet"
    m.save(path)
    for load in (
        lambda **kw: mappy.Maplet.from_bytes(m.to_bytes(), **kw),
        lambda **kw: mappy.Maplet.load(path, **kw),
    ):
        try:
            assert load().query("k") == want
        except mappy.UnsafeDataError:
            pass
        assert load(allow_pickle=True).query("k") == want
    assert pickle.loads(pickle.dumps(m)).query("k") == want


# ---- hostile iterables in batches ----------------------------------------------------


class LyingLen:
    def __init__(self, items, n):
        self.items, self.n = items, n

    def __iter__(self):
        return iter(self.items)

    def __len__(self):
        if isinstance(self.n, Exception):
            raise self.n
        return self.n


class MidRaise:
    def __init__(self, items, at, error=LookupError):
        self.items, self.at, self.error = items, at, error

    def __iter__(self):
        for i, x in enumerate(self.items):
            if i == self.at:
                raise self.error("midway")
            yield x


OPERATORS = [
    (mappy.CounterOperator(), 1),
    (mappy.CounterOperator(signed=True), -1),
    (mappy.MaxOperator(), 2),
    (mappy.MinOperator(), 2.5),
    (mappy.MaxOperator(), "s"),
    (mappy.SetOperator(), {1}),
    (mappy.VectorOperator(), [1.0, 2.0]),
    (mappy.CustomOperator(lambda a, b: a + b), 1),
]


@pytest.mark.parametrize("op, value", OPERATORS, ids=op_id)
def test_batches_that_fail_midway_change_nothing(op, value):
    m = mappy.Maplet(100, RATE, op)
    m.insert("pre", value)
    before = snapshot(m)
    keys = [f"k{i}" for i in range(300)]
    pairs = [(k, value) for k in keys]
    for call, error in (
        (lambda: m.batch_insert(MidRaise(pairs, 150)), LookupError),
        (lambda: m.batch_insert(MidRaise(keys, 150), [value] * 300), LookupError),
        (lambda: m.batch_insert(keys, MidRaise([value] * 300, 150)), LookupError),
        (lambda: m.batch_insert(MidRaise(pairs, 150, KeyboardInterrupt)), KeyboardInterrupt),
        (lambda: m.batch_insert(pairs[:10] + [("bad", value, 1)]), TypeError),
        (lambda: m.batch_insert(pairs[:10] + ["ab"]), TypeError),
        (lambda: m.batch_insert(keys, [value] * 299), ValueError),
        (lambda: m.batch_insert(keys[:5] + [1.5], [value] * 6), TypeError),
        (lambda: m.batch_insert(None), TypeError),
        (lambda: m.batch_insert(5), TypeError),
        (lambda: m.batch_insert(keys, 5), TypeError),
        (lambda: m.batch_query(MidRaise(keys, 10)), LookupError),
        (lambda: m.batch_contains(MidRaise(keys, 10)), LookupError),
    ):
        with pytest.raises(error):
            call()
        assert snapshot(m) == before
    assert m.query("k0") is None


@pytest.mark.parametrize("n", [0, -1, 2**62, 2**63 - 1, 10**30, ValueError("lying __len__")], ids=op_id)
@pytest.mark.parametrize("op, value", OPERATORS[:3] + OPERATORS[5:6], ids=op_id)
def test_iterables_whose_len_lies_are_read_as_iterated(op, value, n):
    keys = [f"k{i}" for i in range(50)]
    m = mappy.Maplet(100, RATE, op)
    m.batch_insert(LyingLen([(k, value) for k in keys], n))
    m.batch_insert(LyingLen(keys, n), LyingLen([value] * 50, n))
    assert len(m) == 50
    assert m.batch_query(LyingLen(keys, n)) == [m.query(k) for k in keys]


def test_generators_of_keys_and_values():
    m = mappy.Maplet(100, RATE)
    m.batch_insert((f"k{i}", i) for i in range(20))
    m.batch_insert((f"k{i}" for i in range(20)), (1 for _ in range(20)))
    assert m.batch_query(f"k{i}" for i in range(20)) == [i + 1 for i in range(20)]
    assert m.batch_contains(iter(["k0", "zz"])) == [True, False]


@pytest.mark.parametrize(
    "keys, error",
    [
        (np.array([1.0, 2.0]), TypeError),
        (np.array([1, 2], dtype=np.float32), TypeError),
        (np.array([1j]), TypeError),
        (np.array([True, False]), TypeError),
        (np.arange(4, dtype=np.uint64).reshape(2, 2), TypeError),
        (np.asfortranarray(np.arange(6, dtype=np.int64).reshape(2, 3)), TypeError),
        (np.array(5, dtype=np.uint64), TypeError),
        (np.array(["2020-01-01"], dtype="datetime64[D]"), TypeError),
    ],
    ids=lambda a: f"{a.dtype}{a.shape}" if isinstance(a, np.ndarray) else a.__name__,
)
def test_numpy_keys_of_the_wrong_kind_raise_and_change_nothing(keys, error):
    m = mappy.Maplet(100, RATE)
    m.insert("a", 1)
    before = snapshot(m)
    n = keys.shape[0] if keys.ndim else 1
    for call in (
        lambda: m.batch_insert(keys, np.ones(n, dtype=np.int64)),
        lambda: m.batch_insert(keys, [1] * n),
        lambda: m.batch_query(keys),
        lambda: m.batch_contains(keys),
    ):
        with pytest.raises(error):
            call()
    assert snapshot(m) == before


@pytest.mark.parametrize(
    "keys",
    [
        np.arange(12, dtype=np.uint64)[::3],
        np.arange(6, dtype=np.int64)[::-1],
        np.array([1, 2, 2**40], dtype=">i8"),  # not native byte order
        np.array([1, 2, 3], dtype=np.int32),
        np.array([1, 2, 3], dtype=np.uint8),
        np.array([], dtype=np.uint64),
        np.array([2**64 - 1, 2**63], dtype=np.uint64),
    ],
    ids=lambda a: f"{a.dtype}{a.strides}",
)
def test_numpy_keys_of_any_layout_are_the_same_keys_as_ints(keys):
    m = mappy.Maplet(100, RATE)
    counts = np.arange(1, len(keys) + 1, dtype=np.int64)
    m.batch_insert(keys, counts)
    assert [m.query(int(k)) for k in keys] == counts.tolist()
    assert m.batch_query(keys).tolist() == counts.tolist()
    ro = keys.copy()
    ro.flags.writeable = False
    assert m.batch_query(ro).tolist() == counts.tolist()
    # Counts in any layout too.
    m2 = mappy.Maplet(100, RATE)
    m2.batch_insert([int(k) for k in keys], counts[::-1].copy()[::-1])
    m2.batch_insert([int(k) for k in keys], counts.astype(">i8"))
    assert [m2.query(int(k)) for k in keys] == (2 * counts).tolist()


@pytest.mark.parametrize(
    "value, error",
    [
        ([], mappy.InvalidValueError),
        (np.array([]), mappy.InvalidValueError),
        (np.zeros((2, 2)), ValueError),
        (np.float64(1.0), ValueError),
        (["a"], TypeError),
        ([2**2000], OverflowError),
        (5, TypeError),
        (None, TypeError),
        ([1.0, 2.0, 3.0], mappy.InvalidValueError),
    ],
    ids=op_id,
)
def test_bad_vectors_raise_and_change_nothing(value, error):
    v = mappy.Maplet(100, RATE, mappy.VectorOperator())
    v.insert("k", [1.0, 2.0])
    before = snapshot(v)
    for key in ("k", "new"):
        if key == "new" and isinstance(value, list) and len(value) == 3:
            continue  # a new key may take any length
        with pytest.raises(error):
            v.insert(key, value)
    assert snapshot(v) == before


def test_vectors_of_any_layout_add_alike():
    v = mappy.Maplet(100, RATE, mappy.VectorOperator())
    v.insert("k", [1.0, 2.0])
    v.insert("k", np.arange(4.0)[::2])
    v.insert("k", np.arange(2.0)[::-1])
    v.insert("k", np.array([1, 2], dtype=">f8"))
    got = v.query("k")
    assert got.tolist() == [3.0, 6.0]
    got[0] = 1000  # the answer is a copy
    assert v.query("k").tolist() == [3.0, 6.0]


# ---- hostile merge functions --------------------------------------------------------


HOLDER = {}


def _boom(a, b):
    raise ValueError("boom")


def _reenter_query(a, b):
    HOLDER["m"].query("k")
    return a + b


def _reenter_insert(a, b):
    HOLDER["m"].insert("z", 1)
    return a + b


def _reenter_len(a, b):
    len(HOLDER["m"])
    return a + b


def _reenter_bytes(a, b):
    HOLDER["m"].to_bytes()
    return a + b


def _keyboard_interrupt(a, b):
    raise KeyboardInterrupt


def _system_exit(a, b):
    raise SystemExit(3)


@pytest.mark.parametrize(
    "fn, error",
    [
        (_boom, ValueError),
        (_reenter_query, RuntimeError),
        (_reenter_insert, RuntimeError),
        (_reenter_len, RuntimeError),
        (_reenter_bytes, RuntimeError),
        (_keyboard_interrupt, KeyboardInterrupt),
        (_system_exit, SystemExit),
    ],
    ids=lambda x: getattr(x, "__name__", x),
)
def test_failing_merge_functions_propagate_and_change_nothing(fn, error):
    def fresh():
        m = mappy.Maplet(100, RATE, mappy.CustomOperator(fn))
        m.insert("k", 1)
        m.insert("j", 10)
        HOLDER["m"] = m
        return m

    other = mappy.Maplet(100, RATE, mappy.CustomOperator(fn))
    other.insert("new", 3)
    other.insert("k", 2)
    calls = {
        "insert": lambda m: m.insert("k", 2),
        "pairs": lambda m: m.batch_insert([("a", 1), ("k", 2), ("c", 3)]),
        "keys-values": lambda m: m.batch_insert(["a", "k", "c"], [1, 2, 3]),
        "merge": lambda m: m.merge(other),
        "merge-self": lambda m: m.merge(m),
        # `m | other` merges into a copy, which a function using `m` itself
        # does not lock (it may change `m`: that is allowed).
        "or": lambda m: m | other,
    }
    for name, call in calls.items():
        if name == "or" and fn.__name__.startswith("_reenter"):
            continue
        m = fresh()
        before = snapshot(m)
        with pytest.raises(error):
            call(m)
        assert snapshot(m) == before, name
        assert m.query("k") == 1 and m.query("a") is None and m.query("new") is None
    HOLDER.clear()


def test_none_is_never_stored_it_is_the_answer_for_absent_keys():
    m = mappy.Maplet(100, RATE, mappy.CustomOperator(lambda a, b: None))
    m.insert("k", 1)
    before = snapshot(m)
    with pytest.raises(TypeError, match="None cannot be stored"):
        m.insert("k", 2)
    with pytest.raises(TypeError, match="None cannot be stored"):
        m.insert("j", None)
    assert snapshot(m) == before and m["k"] == 1
    for op in (mappy.MaxOperator(), mappy.MinOperator()):
        with pytest.raises(TypeError):
            mappy.Maplet(100, RATE, op).insert("k", None)


def test_merge_functions_that_change_other_maplets_or_collect_garbage():
    other = mappy.Maplet(100, RATE)
    other.batch_insert([("x", 1), ("y", 2)])
    victim = mappy.Maplet(100, RATE)
    victim.insert("v", 1)

    def meddle(a, b):
        other.delete("x")
        victim.clear()
        gc.collect()
        return a + [b]

    m = mappy.Maplet(100, RATE, mappy.CustomOperator(meddle))
    m.insert("k", [0])
    for i in range(30):
        m.insert("k", i)
    m.batch_insert([("k", 30), ("k", 31)])
    assert m.query("k") == [0, *range(32)]
    assert "x" not in other and other.query("y") == 2 and len(victim) == 0
    b = mappy.Maplet(100, RATE, mappy.CustomOperator(meddle))
    b.insert("k", 99)
    m.merge(b)
    assert m.query("k")[-1] == 99


def test_a_maplet_holding_itself_is_collected():
    import weakref

    m = mappy.Maplet(100, RATE, mappy.CustomOperator(lambda a, b: a))
    m.insert("self", m)
    m.insert("list", [m])
    ref = weakref.ref(m)
    del m
    gc.collect()
    assert ref() is None


def test_hostile_values_when_saving_leave_no_file(tmp_path):
    class ReduceInterrupts:
        def __reduce__(self):
            raise KeyboardInterrupt

    class ReduceReenters:
        def __reduce__(self):
            HOLDER["m"].insert("z", 1)
            return (int, ())

    for value, error in (
        (lambda: 1, (pickle.PicklingError, AttributeError, TypeError)),
        (ReduceInterrupts(), KeyboardInterrupt),
        (ReduceReenters(), RuntimeError),
    ):
        m = mappy.Maplet(100, RATE, mappy.CustomOperator(lambda a, b: a))
        m.insert("k", value)
        HOLDER["m"] = m
        for call in (lambda m: m.to_bytes(), lambda m: m.save(tmp_path / "m.maplet"), pickle.dumps):
            with pytest.raises(error):
                call(m)
        assert len(m) == 1
    HOLDER.clear()
    assert list(tmp_path.iterdir()) == []


def test_memory_usage_never_wraps():
    class Huge:
        def __sizeof__(self):
            return 2**62

    m = mappy.Maplet(100, RATE, mappy.CustomOperator(lambda a, b: a))
    for i in range(4):
        m.insert(i, Huge())
    assert m.stats().memory_usage == 2**64 - 1  # saturates, never wraps


# ---- merges that split a key's entry ---------------------------------------------------


def split_maplet(op, first, second):
    """A maplet whose key "key-11" has a short entry and a long one: merged
    from a maplet that had not grown and one that had (README: Merge)."""
    a, b = mappy.Maplet(8, RATE, op), mappy.Maplet(8, RATE, op)
    a.insert("key-11", first)
    for i in range(8):
        b.insert(f"key-{i}", first)
    b.insert("key-11", second)
    a.merge(b)
    return a


@pytest.mark.parametrize(
    "op, first, second",
    [
        (mappy.CounterOperator(), 2, 3),
        (mappy.MaxOperator(), 2, 3),
        (mappy.SetOperator(), {1}, {2}),
        (mappy.CustomOperator(lambda a, b: a + b), 2, 3),
    ],
    ids=op_id,
)
def test_delete_after_a_splitting_merge_removes_the_key(op, first, second):
    m = split_maplet(op, first, second)
    assert m.query("key-11") is not None
    assert m.delete("key-11")
    assert m.query("key-11") is None and "key-11" not in m


def test_unsigned_counter_delete_after_a_splitting_merge_stays_unsigned():
    m = split_maplet(mappy.CounterOperator(), 2, 3)
    assert m.query("key-11") == 5
    assert m.delete("key-11", 5)
    back = mappy.Maplet.from_bytes(m.to_bytes())
    assert not back.operator.signed
    with pytest.raises(mappy.InvalidValueError):
        back.insert("x", -1)
    assert "key-11" not in m


# ---- hostile files -------------------------------------------------------------------

FUZZ = r"""
import random, sys
import numpy as np
import mappy_python as mappy

rng = random.Random({seed})
name = {name!r}
op, vals = {{
    "counter": (mappy.CounterOperator(), lambda i: i * 37),
    "signed": (mappy.CounterOperator(signed=True), lambda i: -i),
    "max": (mappy.MaxOperator(), lambda i: i),
    "minf": (mappy.MinOperator(), lambda i: i / 3),
    "maxobj": (mappy.MaxOperator(), lambda i: "s" * i),
    "set": (mappy.SetOperator(), lambda i: {{i, str(i)}}),
    "vec": (mappy.VectorOperator(), lambda i: [float(i), 1.0]),
    "vec32": (mappy.VectorOperator(), lambda i: np.array([i, 1], dtype=np.float32)),
    "custom": (mappy.CustomOperator(max), lambda i: i),
}}[name]
m = mappy.Maplet(32, 0.01, op)
for i in range(60):  # past 32: it grows
    m.insert(f"k{{i}}", vals(i))
data = m.to_bytes()
name_len = int.from_bytes(data[20:24], "little")
lo, hi = 616, 616 + name_len  # the operator name: damage there is corrupt data too
again = op if name == "custom" else None
assert mappy.Maplet.from_bytes(data, again).to_bytes() is not None
changed = named = 0
for trial in range({trials}):
    d = bytearray(data)
    kind = trial % 5
    if kind == 0:
        d = d[: rng.randrange(len(d))]
    elif kind == 1:
        for _ in range(rng.randint(1, 4)):
            at = rng.randrange(len(d))
            while lo <= at < hi:
                at = rng.randrange(len(d))
            d[at] ^= 1 << rng.randrange(8)
    elif kind == 2:
        d += bytes(rng.randrange(256) for _ in range(rng.randint(1, 64)))
    elif kind == 3:
        at = rng.choice([rng.randrange(0, 104, 8), rng.randrange(hi, len(d) - 8)])
        d[at:at + 8] = rng.choice([b"\xff" * 8, b"\x00" * 8, (2**62).to_bytes(8, "little")])
    else:
        d = d[: rng.randrange(len(d))] + d[rng.randrange(len(d)):]
    if bytes(d) == data:
        continue
    changed += 1
    try:
        mappy.Maplet.from_bytes(bytes(d), again)
    except mappy.CorruptDataError:
        pass
    else:
        raise AssertionError(f"damaged data accepted: trial {{trial}}")
print("fuzzed", changed, "damaged names", named)
"""

FUZZ_OPERATORS = ["counter", "signed", "max", "minf", "maxobj", "set", "vec", "vec32", "custom"]


@pytest.mark.parametrize("name", FUZZ_OPERATORS)
def test_damaged_bytes_raise_corrupt_data_error(name):
    rc, out = run_python(FUZZ.format(seed=FUZZ_OPERATORS.index(name), name=name, trials=300), timeout=120)
    assert_clean(rc, out, "fuzzed")


@pytest.mark.parametrize("op, value", [(mappy.MaxOperator(), "text"), (mappy.SetOperator(), {1})], ids=op_id)
def test_a_damaged_operator_name_is_corrupt_data(op, value):
    m = mappy.Maplet(64, 0.01, op)
    m.insert("k", value)
    d = bytearray(m.to_bytes())
    d[616] ^= 0x01  # the first byte of the name ("python-...")
    with pytest.raises(mappy.CorruptDataError):
        mappy.Maplet.from_bytes(bytes(d))


def test_headers_claiming_huge_sizes_are_refused_before_allocating(tmp_path):
    m = mappy.Maplet(100, 0.01)
    m.insert("a", 1)
    data = m.to_bytes()
    path = tmp_path / "h.maplet"
    for offset in (56, 80, 88, 96):  # home slots, entries, words, side-store bytes
        for value in (2**61, 2**63, 2**64 - 1):
            d = bytearray(data)
            d[offset : offset + 8] = value.to_bytes(8, "little")
            with pytest.raises(mappy.CorruptDataError):
                mappy.Maplet.from_bytes(bytes(d))
            path.write_bytes(bytes(d))
            with pytest.raises(mappy.CorruptDataError):
                mappy.Maplet.load(path)
            with pytest.raises(mappy.CorruptDataError):
                mappy.Maplet.load(path, mmap=True)


def test_files_that_are_not_maplets(tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    empty = tmp_path / "empty"
    empty.write_bytes(b"")
    short = tmp_path / "short"
    short.write_bytes(b"MAPPYMAP")
    junk = tmp_path / "junk"
    junk.write_bytes(os.urandom(4096))
    code = f"""
    import mappy_python as mappy
    for path in {[str(fifo), str(tmp_path), str(empty), str(short), str(junk)]!r}:
        for mmap in (False, True):
            try:
                mappy.Maplet.load(path, mmap=mmap)
            except mappy.CorruptDataError:
                pass
            else:
                raise AssertionError(path)
    m = mappy.Maplet(10, 0.01)
    for path in ({str(fifo)!r}, {str(tmp_path)!r}):
        try:
            m.save(path)
        except OSError as e:
            assert "not a regular file" in str(e), e
        else:
            raise AssertionError(path)
    print("refused")
    """
    rc, out = run_python(code, timeout=30)  # a FIFO read would block for ever
    assert_clean(rc, out, "refused")
    assert fifo.exists() and not fifo.is_file()


def test_tampered_pickles_raise_cleanly():
    m = mappy.Maplet(100, 0.01)
    m.batch_insert([(f"k{i}", i) for i in range(50)])
    p = pickle.dumps(m)
    start = p.find(b"MAPPYMAP")
    assert start > 0
    for at in (start, start + 20, start + 100, len(p) - 12):
        q = bytearray(p)
        q[at] ^= 0xFF
        with pytest.raises(mappy.CorruptDataError):
            pickle.loads(bytes(q))
    with pytest.raises(pickle.UnpicklingError):
        pickle.loads(p[: len(p) // 2])
    with pytest.raises(TypeError):
        mappy.Maplet._restore(None)
    with pytest.raises(mappy.CorruptDataError):
        mappy.Maplet._restore(b"junk")


# ---- memory-mapped files, damaged ------------------------------------------------------


def table_offset(data):
    name_len = int.from_bytes(data[20:24], "little")
    return 616 + (name_len + 7) // 8 * 8


def mapped_file(tmp_path, op, value):
    m = mappy.Maplet(200, 0.01, op)
    for i in range(180):
        m.insert(i, value(i))
    path = tmp_path / "m.maplet"
    m.save(path)
    return path, m.to_bytes()


MAPPABLE = [
    (mappy.CounterOperator(), lambda i: i),
    (mappy.MaxOperator(), lambda i: -i),
    (mappy.MinOperator(), lambda i: i / 7),
]


@pytest.mark.parametrize("op, value", MAPPABLE, ids=op_id)
def test_damage_in_a_mapped_table_is_never_resealed(tmp_path, op, value):
    path, data = mapped_file(tmp_path, op, value)
    d = bytearray(data)
    start = table_offset(data)
    for at in range(start + 40, len(d) - 16, 61):
        d[at] ^= 0x5A
    path.write_bytes(bytes(d))
    with pytest.raises(mappy.CorruptDataError):
        mappy.Maplet.load(path)
    r = mappy.Maplet.load(path, mmap=True)
    with pytest.raises(mappy.CorruptDataError):
        r.verify()
    out = tmp_path / "out.maplet"
    for call in (
        r.copy,
        r.to_bytes,
        lambda: r.save(out),
        lambda: mappy.Maplet(200, 0.01, op).merge(r),
        lambda: r | mappy.Maplet(200, 0.01, op),
        lambda: pickle.dumps(r),
    ):
        with pytest.raises(mappy.CorruptDataError):
            call()
    assert not out.exists()


MAPPED_QUERIES = r"""
import os, random
import numpy as np
import mappy_python as mappy

rng = random.Random({seed})
path = {path!r}
op = {op}
m = mappy.Maplet(200, 0.01, op)
for i in range(180):
    m.insert(i, i)
data = m.to_bytes()
start = 616
other = []
for trial in range({trials}):
    d = bytearray(data)
    if trial % 2:
        for _ in range(rng.randint(1, 20)):
            d[rng.randrange(start, len(d) - 8)] ^= 1 << rng.randrange(8)
    else:
        at = rng.randrange(start, len(d) - 16) // 8 * 8
        d[at:at + 8] = rng.choice([b"\xff" * 8, b"\x00" * 8])
    with open(path, "wb") as f:
        f.write(d)
    r = mappy.Maplet.load(path, mmap=True)
    for call in (
        lambda: [r.query(i) for i in range(300)],
        lambda: [i in r for i in range(300)],
        lambda: r.batch_query(list(range(300))),
        lambda: r.batch_query(np.arange(300, dtype=np.uint64)),
        lambda: r.batch_contains(list(range(300))),
        r.verify,
    ):
        try:
            call()
        except mappy.CorruptDataError:
            pass
        except mappy.MapletError as e:
            other.append(str(e))
print("queried", len(other), other[:3])
assert not other, other[:3]
"""


# Regression: before d63becc (core hardening), queries of a damaged mapped
# table (e.g. a spill count of all ones) panicked in the core (index out of
# bounds) and surfaced as MapletError("internal error: ...").
@pytest.mark.parametrize("op", ["mappy.CounterOperator()", "mappy.MaxOperator()"])
def test_queries_of_a_damaged_mapped_table_raise_corrupt_data(tmp_path, op):
    code = MAPPED_QUERIES.format(seed=3, path=str(tmp_path / "m.maplet"), op=op, trials=60)
    rc, out = run_python(code, timeout=120)
    assert rc == 0 and "queried 0" in out, out[-2000:]


def test_queries_of_a_damaged_mapped_table_never_crash(tmp_path):
    """Whatever the damage: no signal, no hang, a Python exception at worst."""
    code = MAPPED_QUERIES.format(seed=4, path=str(tmp_path / "m.maplet"), op="mappy.MinOperator()", trials=60)
    code = code.replace("assert not other, other[:3]", "")
    rc, out = run_python(code, timeout=120)
    assert rc == 0 and "queried" in out, out[-2000:]
    assert "PanicException" not in out and "Traceback" not in out


HEADER_DAMAGE = r"""
import mappy_python as mappy
m = mappy.Maplet(100, 0.01)
m.insert("a", 1)
m.save({path!r})
d = bytearray(open({path!r}, "rb").read())
d[{offset}:{offset} + 8] = ({value}).to_bytes(8, "little")
open({path!r}, "wb").write(d)
try:
    r = mappy.Maplet.load({path!r}, mmap=True)
    r.verify()
    c = r.copy()
    sealed = c.to_bytes()
except mappy.CorruptDataError:
    print("refused")
else:
    try:
        mappy.Maplet.from_bytes(sealed)
    except mappy.CorruptDataError:
        print("sealed damage that from_bytes refuses")
    c.clear()  # aborts or panics on the bad initial size / width
    c.insert("b", 1)
    print("accepted")
"""


# Regression: before d63becc, a mapped file whose header claimed another
# initial size or fingerprint width (offsets 64, 72) passed verify(); copy()
# and to_bytes() sealed it under a fresh checksum, and clear() of the copy
# aborted the process (failed allocation, SIGABRT) or panicked.
@pytest.mark.parametrize("offset, value", [(64, 2**62), (72, 0), (72, 60)])
def test_header_damage_in_a_mapped_file_is_found(tmp_path, offset, value):
    code = HEADER_DAMAGE.format(path=str(tmp_path / "m.maplet"), offset=offset, value=value)
    rc, out = run_python(code, timeout=60)
    assert_clean(rc, out, "refused")


def test_a_mapped_file_truncated_while_mapped(tmp_path):
    """KNOWN LIMITATION (README: Memory-mapped maplets): if another process
    truncates a mapped file, reading a page past the new end kills the
    reader with SIGBUS. This asserts that documented behaviour: the reader
    either dies of SIGBUS, or (if that is ever caught) finishes cleanly; any
    other signal, a hang or a Python-level crash fails."""
    path = tmp_path / "m.maplet"
    code = f"""
    import os, subprocess, sys
    import mappy_python as mappy
    m = mappy.Maplet(20000, 0.01)
    m.batch_insert(list(range(20000)), [1] * 20000)
    m.save({str(path)!r})
    r = mappy.Maplet.load({str(path)!r}, mmap=True)
    assert r.query(5) == 1
    subprocess.run([sys.executable, "-c", "import os; os.truncate({str(path)!r}, 0)"], check=True)
    print("truncated", flush=True)
    try:
        total = sum(r.query(i) or 0 for i in range(20000))
        r.verify()
    except mappy.MapletError as e:
        print("raised", type(e).__name__, flush=True)
    print("survived", flush=True)
    """
    rc, out = run_python(code, timeout=60)
    assert "truncated" in out, out
    assert rc in (0, -signal.SIGBUS), (rc, out)
    if rc == 0:
        assert "survived" in out and "PanicException" not in out, out


@pytest.mark.parametrize(
    "op, value",
    [(mappy.MaxOperator(), "text"), (mappy.SetOperator(), {1}), (mappy.CustomOperator(max), 1)],
    ids=op_id,
)
def test_mapping_a_maplet_of_python_objects_is_an_invalid_parameter(tmp_path, op, value):
    m = mappy.Maplet(100, 0.01, op)
    m.insert("k", value)
    path = tmp_path / "o.maplet"
    m.save(path)
    with pytest.raises(mappy.InvalidParameterError, match="memory-mapped"):
        mappy.Maplet.load(path, mmap=True)


def test_mapped_maplets_refuse_writes_of_every_value_type(tmp_path):
    path, _ = mapped_file(tmp_path, mappy.MaxOperator(), lambda i: i)
    r = mappy.Maplet.load(path, mmap=True)
    before = r.to_bytes()
    for value in (1, 2.5, 2**70, "text", b"x", None, np.int64(3), np.float64(1.5), frozenset({1})):
        for call in (
            lambda v: r.insert("new", v),
            lambda v: r.insert(1, v),
            lambda v: r.batch_insert([("new", v)]),
            lambda v: r.batch_insert(["new"], [v]),
        ):
            with pytest.raises(mappy.ReadOnlyError):
                call(value)
    assert r.to_bytes() == before and r.read_only


# ---- the process itself --------------------------------------------------------------


# Regression: before d63becc, Maplet(2**40, 0.01) aborted the process
# ("memory allocation of 1663734700176 bytes failed", SIGABRT).
def test_a_maplet_too_large_for_memory_is_a_memory_error():
    code = """
    import mappy_python as mappy
    try:
        m = mappy.Maplet(2**40, 0.01)
    except MemoryError:
        print("refused")
    else:
        print("made", m.capacity)
    """
    rc, out = run_python(code, timeout=60)
    assert rc == 0 and ("refused" in out or "made" in out), (rc, out)


def test_a_rust_panic_is_a_maplet_error_not_a_panic_exception():
    with pytest.raises(mappy.MapletError) as e:
        mappy._mappy._panic_for_tests()
    assert type(e.value).__name__ != "PanicException"
    assert isinstance(e.value, Exception)


def test_merge_functions_reading_each_other_from_two_threads_never_deadlock():
    code = """
    import threading
    import mappy_python as mappy
    both = threading.Barrier(2)
    a = b = None
    def fa(x, y):
        both.wait(timeout=10)
        b.query("k")
        return x + y
    def fb(x, y):
        both.wait(timeout=10)
        a.query("k")
        return x + y
    a = mappy.Maplet(100, 0.01, mappy.CustomOperator(fa))
    b = mappy.Maplet(100, 0.01, mappy.CustomOperator(fb))
    a.insert("k", 1)
    b.insert("k", 1)
    def run(m):
        for _ in range(3):
            try:
                m.insert("k", 1)
            except (RuntimeError, threading.BrokenBarrierError):
                pass
    ts = [threading.Thread(target=run, args=(m,)) for m in (a, b)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(timeout=30)
    assert not any(t.is_alive() for t in ts)
    print("finished")
    """
    rc, out = run_python(code, timeout=60)
    assert_clean(rc, out, "finished")


@pytest.mark.skipif(sys.platform != "linux", reason="RLIMIT_DATA is Linux's")
def test_a_batch_larger_than_memory_is_a_memory_error_not_an_abort(tmp_path):
    """A memory-mapped NumPy array can be far larger than the memory a batch
    of its hashes needs: the batch calls raise ``MemoryError`` and change
    nothing. (In a child capped at 2 GiB of data; the arrays are 4 GiB
    sparse files, never read.)"""
    keys, counts = tmp_path / "keys.u64", tmp_path / "counts.i64"
    for p in (keys, counts):
        with open(p, "wb") as f:
            f.truncate(4 << 30)
    rc, out = run_python(
        f"""
        import resource
        import numpy as np
        import mappy_python as mappy
        resource.setrlimit(resource.RLIMIT_DATA, (2 << 30, 2 << 30))
        keys = np.memmap({str(keys)!r}, dtype=np.uint64, mode="r")
        counts = np.memmap({str(counts)!r}, dtype=np.int64, mode="r")
        m = mappy.Maplet(1000, 0.01, mappy.CounterOperator())
        m.insert(5, 2)
        before = m.to_bytes()
        calls = [
            lambda: m.batch_query(keys),
            lambda: m.batch_contains(keys),
            lambda: m.batch_insert(keys, counts),
        ]
        for call in calls:
            try:
                call()
            except MemoryError as e:
                assert "cannot allocate" in str(e), e
            else:
                raise AssertionError("no MemoryError")
        assert m.to_bytes() == before and m.query(5) == 2
        print("refused cleanly")
        """
    )
    assert_clean(rc, out, "refused cleanly")
