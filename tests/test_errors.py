"""Errors: clear exception classes, and a failing call changes nothing."""

import pytest

import mappy_python as mappy


def entries(m, keys):
    return [m.query(k) for k in keys]


def test_error_hierarchy():
    assert issubclass(mappy.InvalidParameterError, mappy.MapletError)
    assert issubclass(mappy.InvalidParameterError, ValueError)
    assert issubclass(mappy.IncompatibleMapletsError, ValueError)
    assert issubclass(mappy.CorruptDataError, ValueError)
    assert issubclass(mappy.MemoryLimitError, MemoryError)
    assert issubclass(mappy.MapletOverflowError, OverflowError)
    assert issubclass(mappy.MapletError, Exception)
    assert mappy.MapletError.__module__ == "mappy_python"


@pytest.mark.parametrize(
    "args, kwargs, fragment",
    [
        ((0, 0.01), {}, "expected_items"),
        ((-5, 0.01), {}, "expected_items"),
        ((100, 0.0), {}, "false_positive_rate"),
        ((100, 1.0), {}, "false_positive_rate"),
        ((100, 1.5), {}, "false_positive_rate"),
        ((100, 0.01), {"memory_limit_mb": 0}, "memory_limit_mb"),
    ],
)
def test_bad_parameters(args, kwargs, fragment):
    with pytest.raises(mappy.InvalidParameterError, match=fragment):
        mappy.Maplet(*args, **kwargs)


def test_bad_operator_is_a_type_error():
    with pytest.raises(TypeError, match="operator"):
        mappy.Maplet(100, 0.01, "counter")
    with pytest.raises(TypeError):
        mappy.CustomOperator(42)


def test_memory_limit_stops_growth_and_changes_nothing():
    m = mappy.Maplet(1000, 0.01, mappy.CounterOperator(), memory_limit_mb=0.01)
    inserted = 0
    with pytest.raises(mappy.MemoryLimitError):
        for i in range(100_000):
            m.insert(f"k{i}", 1)
            inserted += 1
    before = (len(m), m.stats().memory_usage)
    with pytest.raises(mappy.MemoryLimitError):
        m.insert(f"k{inserted}", 1)
    assert (len(m), m.stats().memory_usage) == before
    assert m.stats().memory_usage <= 0.01 * 2**20
    assert all(m.query(f"k{i}") >= 1 for i in range(inserted))


def test_failing_custom_function_propagates_and_changes_nothing():
    class Boom(Exception):
        pass

    def merge(old, new):
        if new == "bad":
            raise Boom("no")
        return old + new

    m = mappy.Maplet(100, 0.01, mappy.CustomOperator(merge))
    m.insert("k", "a")
    with pytest.raises(Boom):
        m.insert("k", "bad")
    assert m.query("k") == "a"
    m.insert("k", "b")
    assert m.query("k") == "ab"


def test_incomparable_max_values_propagate():
    m = mappy.Maplet(100, 0.01, mappy.MaxOperator())
    m.insert("k", {"a": 1})
    with pytest.raises(TypeError):
        m.insert("k", {"b": 2})
    assert m.query("k") == {"a": 1}


def test_vector_mismatch_and_overflow_change_nothing():
    v = mappy.Maplet(100, 0.01, mappy.VectorOperator())
    v.insert("k", [1.0, 2.0])
    with pytest.raises(mappy.InvalidValueError):
        v.insert("k", [1.0])
    assert v.query("k").tolist() == [1.0, 2.0]
    c = mappy.Maplet(100, 0.01)
    c.batch_insert([("a", 1), ("b", 2**63 - 1)])
    with pytest.raises(OverflowError):
        c.insert("b", 1)
    assert entries(c, ["a", "b"]) == [1, 2**63 - 1]


def test_batch_with_a_failing_merge_changes_nothing():
    c = mappy.Maplet(10_000, 0.01)
    c.insert("big", 2**63 - 10)
    before = c.to_bytes()
    pairs = [(f"k{i}", 1) for i in range(2000)] + [("big", 100)] + [(f"after{i}", 1) for i in range(10)]
    with pytest.raises(OverflowError) as info:
        c.batch_insert(pairs)
    assert info.value.__notes__ == ["at item 2000 of the batch"]
    assert c.to_bytes() == before
    assert len(c) == 1 and c.query("big") == 2**63 - 10


def _raises_on_99(a, b):
    if b == 99:
        raise RuntimeError("refused")
    return a + b


@pytest.mark.parametrize(
    "operator, stored, good, bad, error",
    [
        (mappy.CounterOperator(), 2**63 - 1, 1, 1, OverflowError),
        (mappy.CustomOperator(_raises_on_99), 1, 2, 99, RuntimeError),
        (mappy.SetOperator(), {1}, {2}, 5, TypeError),
        (mappy.VectorOperator(), [1.0, 2.0], [1.0, 1.0], [1.0], mappy.InvalidValueError),
        (mappy.MaxOperator(), 1, 2, "text", TypeError),
        (mappy.MaxOperator(), 1.5, 2.5, {"a": 1}, TypeError),
        (mappy.MinOperator(), 3, 2, None, TypeError),
    ],
)
@pytest.mark.parametrize("size", [3, 40, 3000])
def test_failing_batches_change_nothing(operator, stored, good, bad, error, size):
    """Whatever fails, wherever in the batch: the maplet is as it was, bytes,
    memory and storage included (a batch that had to move numbers to Python
    objects moves them back)."""
    m = mappy.Maplet(50, 0.01, operator)
    m.insert("stored", stored)
    before, memory = m.to_bytes(), m.stats().memory_usage
    pairs = [(f"k{i}", good) for i in range(size)]
    pairs.insert(size // 2, ("stored", bad))
    with pytest.raises(error):
        m.batch_insert(pairs)
    assert m.to_bytes() == before
    assert m.stats().memory_usage == memory
    assert len(m) == 1 and m.query("k0") is None
    keys, values = zip(*pairs)
    with pytest.raises(error):
        m.batch_insert(list(keys), list(values))
    assert m.to_bytes() == before


def test_a_batch_over_the_memory_limit_changes_nothing():
    m = mappy.Maplet(100, 0.01, memory_limit_mb=1)
    m.batch_insert([f"a{i}" for i in range(50)], [1] * 50)
    before = m.to_bytes()
    with pytest.raises(mappy.MemoryLimitError):
        m.batch_insert([f"k{i}" for i in range(2_000_000)], [1] * 2_000_000)
    assert m.to_bytes() == before


def test_a_failed_kmer_count_changes_nothing(tmp_path):
    m = mappy.Maplet(50_000, 0.001)
    mappy.count_kmers(m, ["ACGTTGCAAGGCTTAACCGGTTAACGATCGATCGGATC" * 50], 21)
    before = m.to_bytes()
    # More good reads than the parser hands over at once, then a broken one.
    read = "ACGGTCATTGACCATGGTACCAGTTGACGTACGATGCATGCAAGTCCGTA" * 100
    path = tmp_path / "broken.fq"
    path.write_text(f"@r\n{read}\n+\n{'I' * len(read)}\n" * 400 + "@bad\nACGT\n")
    with pytest.raises(mappy.MapletError, match="broken.fq"):
        mappy.count_kmers(m, str(path), 21)
    assert m.to_bytes() == before


@pytest.mark.parametrize("stored, bad", [(1, "text"), (1.5, {"a": 1}), (2**40, [1])])
def test_a_failing_insert_keeps_the_storage(stored, bad):
    """A value that needs Python-object storage and then fails to merge
    leaves the numbers stored as numbers."""
    m = mappy.Maplet(100, 0.01, mappy.MaxOperator())
    m.insert("x", stored)
    before = m.to_bytes()
    with pytest.raises(TypeError):
        m.insert("x", bad)
    assert m.to_bytes() == before
    assert m.query("x") == stored
