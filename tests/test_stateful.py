"""Stateful tests: every operator family driven by hypothesis against an exact
model (a dict), through inserts, batches, deletes, merges, copies, clears,
growth and every round trip (bytes, files, pickle, memory maps).

The maplets start at ``expected_items=8`` so that inserts force growth, and
use a false-positive rate of 1e-9 with a few dozen keys, so that no two keys
share a fingerprint (about 1e-6 over every run): answers are then exact, and
the tests assert exactness, which implies the one-sided promise.
"""

import operator
import os
import pickle
import shutil
import tempfile

import numpy as np
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

import mappy_python as mappy

RATE = 1e-9
START = 8  # expected_items: a handful of inserts makes the maplet grow

STR_KEYS = [f"key-{i}" for i in range(12)] + ["", "ü-ñ", "k" * 200]
INT_KEYS = [0, 1, 7, 255, 2**31, 2**63 - 1, 2**63, 2**64 - 1, -1, -(2**63), 2**70, -(2**90)]
KEYS = STR_KEYS + INT_KEYS
# Keys a NumPy uint64 array can carry (the same keys as the Python ints).
U64_KEYS = [k for k in INT_KEYS if 0 <= k < 2**64]

keys = st.sampled_from(KEYS)
u64_keys = st.sampled_from(U64_KEYS)

SETTINGS = settings(
    max_examples=30,
    stateful_step_count=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)


class MapletMachine(RuleBasedStateMachine):
    """Common rules; subclasses give the operator, values and model merge."""

    values = st.integers(0, 1000)
    mappable = False  # load(mmap=True) works for counters and numeric max/min
    numpy_values_dtype = None  # a dtype for NumPy batches, if the operator takes them
    # Fixed-precision maplets merge exactly whatever their growth. Without
    # it, a merge of maplets that grew differently may keep a key's short
    # entry beside its long one (README, Design: Merge): answers stay exact,
    # but len() may count a key twice (deletes still remove the key whole:
    # test_hostile.py, the split-entry tests).
    fixed_precision = True
    # Whether to_bytes() of what from_bytes() read is the same bytes (sets
    # encode their items in iteration order, which a rebuilt frozenset may change).
    stable_bytes = True

    def __init__(self):
        super().__init__()
        self.m = self.new()
        self.model = {}
        self.split = False  # a merge may have left a key two entries
        self.dir = tempfile.mkdtemp(prefix="mappy-stateful-")

    def teardown(self):
        shutil.rmtree(self.dir, ignore_errors=True)

    # ---- per operator ----------------------------------------------------------

    def make_operator(self):
        raise NotImplementedError

    def combine(self, old, new):
        raise NotImplementedError

    def same(self, got, want):
        return got == want

    def new(self):
        return mappy.Maplet(START, RATE, self.make_operator(), fixed_precision=self.fixed_precision)

    def maybe_absent(self, model):
        """Model keys whose entry may be gone (a counter's count of zero)."""
        return set()

    def load_operator(self):
        """The operator `from_bytes`/`load` need (custom operators only)."""
        return None

    # ---- model -----------------------------------------------------------------

    def model_insert(self, key, value):
        self.model[key] = self.combine(self.model[key], value) if key in self.model else value

    def check(self, m, model=None):
        model = self.model if model is None else model
        loose = self.maybe_absent(model)
        for k, want in model.items():
            got = m.query(k)
            if k in loose:
                assert got is None or self.same(got, want), (k, got, want)
                continue
            assert got is not None, (k, want)
            assert self.same(got, want), (k, got, want)
            assert k in m and m.contains(k)
        for k in KEYS:
            if k not in model:
                assert m.query(k) is None, (k, m.query(k))
                assert k not in m
        present = len(model) - len(loose)
        if self.split and model is self.model:
            assert present <= len(m), (len(m), present)
        else:
            assert present <= len(m) <= len(model), (len(m), len(model))

    # ---- rules -----------------------------------------------------------------

    @rule(key=keys, data=st.data())
    def insert(self, key, data):
        value = data.draw(self.values)
        self.m.insert(key, value)
        self.model_insert(key, value)

    @rule(data=st.data())
    def batch_insert_pairs(self, data):
        pairs = data.draw(st.lists(st.tuples(keys, self.values), max_size=12))
        self.m.batch_insert(pairs)
        for k, v in pairs:
            self.model_insert(k, v)

    @rule(data=st.data())
    def batch_insert_keys_and_values(self, data):
        pairs = data.draw(st.lists(st.tuples(keys, self.values), max_size=12))
        self.m.batch_insert([k for k, _ in pairs], [v for _, v in pairs])
        for k, v in pairs:
            self.model_insert(k, v)

    @precondition(lambda self: self.numpy_values_dtype is not None)
    @rule(data=st.data())
    def batch_insert_numpy(self, data):
        pairs = data.draw(st.lists(st.tuples(u64_keys, self.values), max_size=12))
        ks = np.array([k for k, _ in pairs], dtype=np.uint64)
        vs = np.array([v for _, v in pairs], dtype=self.numpy_values_dtype)
        self.m.batch_insert(ks, vs)
        for k, v in pairs:
            self.model_insert(k, v.item() if hasattr(v, "item") else v)

    @rule(data=st.data())
    def batch_query_agrees(self, data):
        ks = data.draw(st.lists(keys, max_size=10))
        got = self.m.batch_query(ks)
        assert len(got) == len(ks)
        for k, g in zip(ks, got):
            single = self.m.query(k)
            assert (g is None and single is None) or self.same(g, single), (k, g, single)
        assert self.m.batch_contains(ks) == [k in self.m for k in ks]

    @precondition(lambda self: self.model)
    @rule(data=st.data())
    def delete(self, data):
        key = data.draw(st.sampled_from(sorted(self.model, key=repr)))
        found = self.m.delete(key)
        assert found is True or key in self.maybe_absent(self.model)
        del self.model[key]

    @rule(data=st.data())
    def merge(self, data):
        other = self.new()
        pairs = data.draw(st.lists(st.tuples(keys, self.values), max_size=20))
        theirs = {}
        for k, v in pairs:
            other.insert(k, v)
            theirs[k] = self.combine(theirs[k], v) if k in theirs else v
        self.check(other, theirs)
        if data.draw(st.booleans()):
            self.m.merge(other)
        else:
            merged = self.m | other
            self.check(self.m)  # `|` leaves both as they were
            self.check(other, theirs)
            self.m = merged
        for k, v in theirs.items():
            self.model_insert(k, v)
        if not self.fixed_precision and theirs:
            self.split = True

    @rule(key=keys, data=st.data())
    def copy_is_independent(self, key, data):
        before = self.m.to_bytes()
        c = self.m.copy()
        c.insert(key, data.draw(self.values))
        c.clear()
        assert self.m.to_bytes() == before
        self.check(self.m)

    @rule()
    def clear(self):
        self.m.clear()
        self.model.clear()
        self.split = False
        assert len(self.m) == 0

    @rule()
    def bytes_round_trip(self):
        data = self.m.to_bytes()
        back = mappy.Maplet.from_bytes(data, self.load_operator())
        if self.stable_bytes:
            assert back.to_bytes() == data
        self.m = back

    @rule()
    def file_round_trip(self):
        path = os.path.join(self.dir, "m.maplet")
        self.m.save(path)
        self.m.save(path)  # over an existing file
        self.m = mappy.Maplet.load(path, self.load_operator())

    @rule()
    def pickle_round_trip(self):
        self.m = pickle.loads(pickle.dumps(self.m))

    @precondition(lambda self: self.mappable)
    @rule(key=keys, data=st.data())
    def mmap_round_trip(self, key, data):
        path = os.path.join(self.dir, "mapped.maplet")
        self.m.save(path)
        r = mappy.Maplet.load(path, self.load_operator(), mmap=True)
        assert r.read_only
        r.verify()
        self.check(r)
        before = r.to_bytes()
        assert before == self.m.to_bytes()
        value = data.draw(self.values)
        for write in (
            lambda: r.insert(key, value),
            lambda: r.batch_insert([(key, value)]),
            lambda: r.delete(key),
            r.clear,
        ):
            try:
                write()
            except mappy.ReadOnlyError:
                pass
            else:
                raise AssertionError("a write to a mapped maplet went through")
        assert r.to_bytes() == before
        self.m = r.copy()  # writable again
        assert not self.m.read_only
        os.unlink(path)

    @invariant()
    def answers_match_the_model(self):
        self.check(self.m)


# ---- counters ----------------------------------------------------------------------


class CounterMachine(MapletMachine):
    values = st.integers(0, 1000)
    mappable = True
    numpy_values_dtype = np.int64

    def make_operator(self):
        return mappy.CounterOperator()

    def combine(self, old, new):
        return old + new

    def maybe_absent(self, model):
        # A count of zero may be kept (as 0) or dropped: both are exact.
        return {k for k, v in model.items() if v == 0}

    @precondition(lambda self: any(v > 0 for v in self.model.values()))
    @rule(data=st.data())
    def delete_some(self, data):
        key = data.draw(st.sampled_from(sorted((k for k, v in self.model.items() if v > 0), key=repr)))
        n = data.draw(st.integers(0, self.model[key]))
        assert self.m.delete(key, n) is True
        self.model[key] -= n

    @precondition(lambda self: self.model)
    @rule(data=st.data())
    def delete_too_much_is_refused(self, data):
        key = data.draw(st.sampled_from(sorted(self.model, key=repr)))
        n = self.model[key] + data.draw(st.integers(1, 10))
        before = self.m.to_bytes()
        try:
            self.m.delete(key, n)
        except mappy.InvalidValueError:
            pass
        else:
            raise AssertionError("an unsigned counter took a delete above its count")
        assert self.m.to_bytes() == before

    @rule(key=keys, n=st.integers(-1000, -1))
    def negative_count_is_refused(self, key, n):
        before = self.m.to_bytes()
        for bad in (
            lambda: self.m.insert(key, n),
            lambda: self.m.batch_insert([("other", 1), (key, n)]),
            lambda: self.m.batch_insert(["other", key], [1, n]),
            lambda: self.m.delete(key, n),
        ):
            try:
                bad()
            except mappy.InvalidValueError:
                pass
            else:
                raise AssertionError("an unsigned counter took a negative count")
        assert self.m.to_bytes() == before


class GrowingCounterMachine(CounterMachine):
    """Without fixed precision: merges of maplets that grew differently."""

    fixed_precision = False


class SignedCounterMachine(CounterMachine):
    values = st.integers(-1000, 1000)

    def make_operator(self):
        return mappy.CounterOperator(signed=True)

    def load_operator(self):
        # Files do not record signedness: a loaded counter is signed if it
        # holds a negative count, or if the operator says so.
        return mappy.CounterOperator(signed=True)

    @precondition(lambda self: self.model)
    @rule(data=st.data())
    def delete_some(self, data):
        key = data.draw(st.sampled_from(sorted(self.model, key=repr)))
        n = data.draw(st.integers(-1000, 1000))
        self.m.delete(key, n)
        self.model[key] -= n

    @precondition(lambda self: self.model)
    @rule(data=st.data())
    def delete_too_much_is_refused(self, data):
        # Signed counters allow it: the count goes below zero.
        key = data.draw(st.sampled_from(sorted(self.model, key=repr)))
        n = abs(self.model[key]) + data.draw(st.integers(1, 10))
        self.m.delete(key, n)
        self.model[key] -= n

    @rule(key=keys, n=st.integers(-1000, -1))
    def negative_count_is_refused(self, key, n):
        self.m.insert(key, n)
        self.model_insert(key, n)

    @rule()
    def stays_signed_through_round_trips(self):
        assert self.m.operator.signed


# ---- max and min -------------------------------------------------------------------


class MaxIntMachine(MapletMachine):
    values = st.integers(-(2**62), 2**62)
    mappable = True
    # NumPy integers are numbers to max/min (test_hostile.py).
    numpy_values_dtype = np.int64

    def make_operator(self):
        return mappy.MaxOperator()

    def combine(self, old, new):
        return max(old, new)

    @rule(key=keys)
    def nan_is_refused(self, key):
        before = self.m.to_bytes()
        for bad in (
            lambda: self.m.insert(key, float("nan")),
            lambda: self.m.batch_insert([(key, float("nan"))]),
            lambda: self.m.batch_insert([key], [np.float64("nan")]),
        ):
            try:
                bad()
            except mappy.InvalidValueError:
                pass
            else:
                raise AssertionError("max/min took NaN")
        assert self.m.to_bytes() == before


class MinIntMachine(MaxIntMachine):
    def make_operator(self):
        return mappy.MinOperator()

    def combine(self, old, new):
        return min(old, new)


floats = st.floats(allow_nan=False, width=64)


class MaxFloatMachine(MaxIntMachine):
    values = floats
    numpy_values_dtype = np.float64

    def same(self, got, want):
        return got == want and type(got) is float


class MinFloatMachine(MaxFloatMachine):
    def make_operator(self):
        return mappy.MinOperator()

    def combine(self, old, new):
        return min(old, new)


# ---- sets, vectors, custom ---------------------------------------------------------

set_items = st.one_of(st.integers(-5, 5), st.sampled_from(["a", "b", "c", "ü"]))


class SetMachine(MapletMachine):
    values = st.frozensets(set_items, max_size=4)
    stable_bytes = False

    def make_operator(self):
        return mappy.SetOperator()

    def combine(self, old, new):
        return old | new

    def same(self, got, want):
        return isinstance(got, frozenset) and got == want


VECTOR_LENGTH = 3
# Small integers as floats: every sum is exact, whatever the order.
vectors = st.lists(st.integers(-100, 100).map(float), min_size=VECTOR_LENGTH, max_size=VECTOR_LENGTH)


class GrowingSetMachine(SetMachine):
    fixed_precision = False


class VectorMachine(MapletMachine):
    values = vectors.map(lambda v: np.array(v, dtype=np.float64))

    def make_operator(self):
        return mappy.VectorOperator()

    def combine(self, old, new):
        return old + new

    def same(self, got, want):
        return isinstance(got, np.ndarray) and got.dtype == np.float64 and got.tolist() == list(want)

    @rule(key=keys, data=st.data())
    def insert_list(self, key, data):
        value = data.draw(vectors)
        self.m.insert(key, value)
        self.model_insert(key, np.array(value))

    @precondition(lambda self: self.model)
    @rule(data=st.data())
    def wrong_length_is_refused(self, data):
        key = data.draw(st.sampled_from(sorted(self.model, key=repr)))
        before = self.m.to_bytes()
        try:
            self.m.insert(key, [1.0] * (VECTOR_LENGTH + 1))
        except mappy.InvalidValueError:
            pass
        else:
            raise AssertionError("a vector of another length was merged")
        assert self.m.to_bytes() == before


class CustomMachine(MapletMachine):
    """A custom merge that adds, one-sided like a counter."""

    values = st.integers(0, 1000)

    def make_operator(self):
        return mappy.CustomOperator(operator.add)

    def load_operator(self):
        return mappy.CustomOperator(operator.add)

    def combine(self, old, new):
        return old + new


for machine in (
    CounterMachine,
    GrowingCounterMachine,
    SignedCounterMachine,
    MaxIntMachine,
    MinIntMachine,
    MaxFloatMachine,
    MinFloatMachine,
    SetMachine,
    GrowingSetMachine,
    VectorMachine,
    CustomMachine,
):
    machine.TestCase.settings = SETTINGS

TestCounter = CounterMachine.TestCase
TestGrowingCounter = GrowingCounterMachine.TestCase
TestSignedCounter = SignedCounterMachine.TestCase
TestMaxInt = MaxIntMachine.TestCase
TestMinInt = MinIntMachine.TestCase
TestMaxFloat = MaxFloatMachine.TestCase
TestMinFloat = MinFloatMachine.TestCase
TestSet = SetMachine.TestCase
TestGrowingSet = GrowingSetMachine.TestCase
TestVector = VectorMachine.TestCase
TestCustom = CustomMachine.TestCase
