"""Hostile tests of maplets that read their table in place from a ``bytes``
object (``Maplet.from_bytes``, ``pickle.loads`` and out-of-band buffers),
copying it only before their first change.

The maplet keeps a strong reference to the bytes object while it borrows
the table: the reference must appear on loading, go away at the first
change (at the latest by the next call), never drop below where it was,
and the bytes object must never change. Every answer must be that of a
maplet that copied its table, and every load must refuse damaged data.
Whatever could kill the interpreter runs in a subprocess.
"""

import array
import asyncio
import copy
import gc
import io
import mmap
import os
import pickle
import struct
import subprocess
import sys
import textwrap
import threading
import weakref

import fsspec
import numpy as np
import pytest
import xxhash

import mappy_python as mappy

TABLE_AT = 616  # the table of a maplet without an operator name (docs/FORMAT.md)


# The resident memory of the process, for code run by `run_python` (which
# puts it where a line reads RSS_HELPER).
RSS_HELPER = """
def status(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field):
                return int(line.split()[1]) * 1024

def rss():
    return status("VmRSS")
"""


def run_python(code, timeout=60, env=None):
    """Runs `code` in a fresh interpreter: (exit status, stdout + stderr)."""
    code = textwrap.dedent(code).replace("\nRSS_HELPER\n", RSS_HELPER)
    r = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "RUST_BACKTRACE": "0", **(env or {})},
    )
    return r.returncode, r.stdout + r.stderr


def assert_clean(rc, out, marker):
    assert rc == 0, (rc, out[-3000:])
    assert marker in out, out[-3000:]
    for bad in ("PanicException", "Traceback", "panicked at", "Exception ignored"):
        assert bad not in out, out[-3000:]


def plus(a, b):
    """A custom merge function that pickles (module level)."""
    return a + b


# name: (operator factory, value of the i-th insert)
OPERATORS = {
    "counter": (mappy.CounterOperator, lambda i: i % 7 + 1),
    "signed": (lambda: mappy.CounterOperator(signed=True), lambda i: i % 9 - 4),
    "max": (mappy.MaxOperator, lambda i: i * 3),
    "min-float": (mappy.MinOperator, lambda i: i / 3),
    "max-str": (mappy.MaxOperator, lambda i: f"s{i:05d}"),
    "set": (mappy.SetOperator, lambda i: frozenset([i, "x"])),
    "vector": (mappy.VectorOperator, lambda i: [float(i), 1.0]),
    "vector32": (mappy.VectorOperator, lambda i: np.array([i, 2], dtype=np.float32)),
    "custom": (lambda: mappy.CustomOperator(plus), lambda i: f"v{i}"),
}


def build(name, n=400, expected=1000):
    op, value = OPERATORS[name]
    m = mappy.Maplet(expected, 1e-6, op())
    for i in range(n):
        m.insert(f"k{i}", value(i))
    return m


def operator_for(name):
    """The operator `from_bytes` needs (only a custom one)."""
    return OPERATORS[name][0]() if name == "custom" else None


def plain(v):
    return v.tolist() if isinstance(v, np.ndarray) else v


def answers(m, keys):
    return [plain(m.query(k)) for k in keys]


def same(x, y, keys):
    """`x` and `y` hold the same: their answers, and their bytes unless they
    hold Python sets (a set is saved in its iteration order, which a set
    read back need not share, with or without this change)."""
    assert len(x) == len(y) and answers(x, keys) == answers(y, keys)
    if not isinstance(x.operator, mappy.SetOperator):
        assert x.to_bytes() == y.to_bytes()


def reread(data, op=None):
    """A maplet read from a copy of `data` (the path that never borrows)."""
    func = op.func if isinstance(op, mappy.CustomOperator) else None
    return mappy.Maplet._restore(bytearray(data), func)


def fresh(data):
    """An equal bytes object that is not `data` (``bytes(data)`` is `data`)."""
    return bytes(bytearray(data))


def out_of_band(m):
    """A protocol-5 pickle of `m` and the bytes of its one buffer."""
    buffers = []
    stream = pickle.dumps(m, protocol=5, buffer_callback=buffers.append)
    assert len(buffers) == 1
    return stream, bytes(buffers[0].raw())


def reseal(b):
    b[-8:] = struct.pack("<Q", xxhash.xxh3_64_intdigest(bytes(b[:-8])))
    return bytes(b)


def other_call():
    """Some unrelated call into the extension (it may release references
    that were dropped while detached)."""
    mappy.Maplet(10, 0.1).copy()


# ---- reading in place, copying on the first change ------------------------------------------


@pytest.mark.parametrize("name", list(OPERATORS))
def test_every_operator_borrows_until_its_first_change(name):
    m = build(name)
    data = m.to_bytes()
    snap = fresh(data)
    keys = [f"k{i}" for i in range(400)] + ["absent", "new"]
    base = sys.getrefcount(data)
    b = mappy.Maplet.from_bytes(data, operator_for(name))
    assert sys.getrefcount(data) == base + 1
    assert b.to_bytes() == reread(data, operator_for(name)).to_bytes() and not b.read_only
    same(b, m, keys)
    b.verify()
    # Copies of every kind are maplets of their own: they hold no reference.
    copies = [copy.copy(b), copy.deepcopy(b), b.copy()]
    copies += [pickle.loads(pickle.dumps(b, protocol=p)) for p in range(pickle.HIGHEST_PROTOCOL + 1)]
    assert sys.getrefcount(data) == base + 1
    for c in copies:
        same(c, m, keys)
    del copies
    # The first change copies the table, then makes the change.
    value = OPERATORS[name][1](5)
    b.insert("new", value)
    b.insert("k3", value)
    m.insert("new", value)
    m.insert("k3", value)
    assert sys.getrefcount(data) == base
    same(b, m, keys)
    assert data == snap
    del b
    gc.collect()
    assert sys.getrefcount(data) == base


def test_reads_of_every_kind_keep_reading_in_place(tmp_path):
    m = mappy.Maplet(10_000, 1e-6)
    keys = np.arange(3000, dtype=np.uint64)
    m.batch_insert(keys, np.full(3000, 2, dtype=np.int64))
    data = m.to_bytes()
    base = sys.getrefcount(data)
    b = mappy.Maplet.from_bytes(data)
    reads = [
        lambda x: x.query(5),
        lambda x: x.contains(5),
        lambda x: 5 in x,
        lambda x: x[5],
        lambda x: len(x),
        lambda x: x.batch_query(keys).tolist(),
        lambda x: x.batch_contains(keys).tolist(),
        lambda x: asyncio.run(x.abatch_query(keys)).tolist(),
        lambda x: dict(x.stats().items()),
        lambda x: sys.getsizeof(x) > 0,
        lambda x: repr(x),
        lambda x: (x.capacity, x.seed, x.expected_items, x.false_positive_rate, x.shard, x.read_only),
        lambda x: x.verify(),
        lambda x: x.verify(checksum_only=True),
        lambda x: x.to_bytes(),
        lambda x: [len(r) for _, r in x.encode_runs(mappy.hash_keys(keys, x.seed))[0]],
        lambda x: mappy.query_kmers(x, ["ACGTACGTACGTACGTACGTA"]).tolist(),
    ]
    for read in reads:
        assert read(b) == read(m)
        assert sys.getrefcount(data) == base + 1
    b.save(tmp_path / "b.maplet")
    assert (tmp_path / "b.maplet").read_bytes() == data and sys.getrefcount(data) == base + 1


def test_maplets_reading_one_bytes_object_stay_independent():
    m = build("counter")
    data = m.to_bytes()
    snap = fresh(data)
    base = sys.getrefcount(data)
    many = [mappy.Maplet.from_bytes(data) for _ in range(20)]
    assert sys.getrefcount(data) == base + 20
    for i, x in enumerate(many):
        if i % 2:
            x.insert("k1", i)
    for i, x in enumerate(many):
        assert x.query("k1") == m.query("k1") + (i if i % 2 else 0)
        assert x.query("k2") == m.query("k2")
    assert sys.getrefcount(data) == base + 10
    assert data == snap
    del many, x
    gc.collect()
    assert sys.getrefcount(data) == base


@pytest.mark.parametrize("name", ["counter", "max-str", "set", "custom"])
def test_merges_into_from_and_with_itself(name):
    m = build(name)
    data = m.to_bytes()
    snap = fresh(data)
    base = sys.getrefcount(data)
    op = operator_for(name)
    keys = [f"k{i}" for i in range(400)]

    def twice():
        t = m.copy()
        t.merge(m.copy())
        return t

    # A borrowed maplet merged into another keeps its reference.
    b = mappy.Maplet.from_bytes(data, op)
    other = m.copy()
    other.merge(b)
    assert sys.getrefcount(data) == base + 1 and b.to_bytes() == reread(data, op).to_bytes()
    same(other, twice(), keys)
    # ... and merged into itself, or another into it, copies first.
    b.merge(b)
    assert sys.getrefcount(data) == base
    same(b, twice(), keys)
    c = mappy.Maplet.from_bytes(data, op)
    c.merge(m)
    same(c, twice(), keys)
    both = mappy.merge([mappy.Maplet.from_bytes(data, op), mappy.Maplet.from_bytes(data, op)])
    same(both, twice(), keys)
    gc.collect()
    assert sys.getrefcount(data) == base  # every one of them has copied (or was dropped)
    assert data == snap


def test_failed_first_changes_change_nothing():
    m = mappy.Maplet(100, 1e-6)
    m.insert("big", 2**62)
    m.insert("one", 1)
    data = m.to_bytes()
    snap = fresh(data)
    base = sys.getrefcount(data)
    b = mappy.Maplet.from_bytes(data)
    for call, error in [
        (lambda: b.insert("one", "x"), TypeError),
        (lambda: b.insert("one", -1), mappy.InvalidValueError),
        (lambda: b.insert("big", 2**62), mappy.MapletOverflowError),
        (lambda: b.batch_insert([("one", 1), ("big", 2**62)]), mappy.MapletOverflowError),
        (lambda: b.insert(object(), 1), TypeError),
    ]:
        with pytest.raises(error):
            call()
        # Still borrowed or copied: either way unchanged, never released twice.
        assert sys.getrefcount(data) in (base, base + 1)
        assert b.to_bytes() == data and b.query("big") == 2**62 and b.query("one") == 1
    b.insert("one", 1)
    assert sys.getrefcount(data) == base and b.query("one") == 2 and data == snap


@pytest.mark.parametrize(
    "change",
    ["insert", "batch_insert", "batch_insert_hashes", "delete", "delete_absent", "clear", "abatch_insert"],
)
def test_every_kind_of_change_releases_the_bytes_by_the_next_call(change):
    m = mappy.Maplet(100_000, 1e-4)
    keys = np.arange(20_000, dtype=np.uint64)
    m.batch_insert(keys, np.full(len(keys), 3, dtype=np.int64))
    data = m.to_bytes()
    snap = fresh(data)
    base = sys.getrefcount(data)
    b = mappy.Maplet.from_bytes(data)
    ref = m.copy()
    calls = {
        "insert": lambda x: x.insert(5, 1),
        "batch_insert": lambda x: x.batch_insert(keys[:5000], np.ones(5000, dtype=np.int64)),
        "batch_insert_hashes": lambda x: x.batch_insert_hashes(mappy.hash_keys(keys[:3000], x.seed)),
        "delete": lambda x: x.delete(5, 1),
        "delete_absent": lambda x: x.delete("absent"),
        "clear": lambda x: x.clear(),
        "abatch_insert": lambda x: asyncio.run(x.abatch_insert(keys[:5000], np.ones(5000, dtype=np.int64))),
    }
    calls[change](b)
    calls[change](ref)
    b.query(1)
    other_call()
    if change == "delete_absent":
        # Nothing changed: the table may still be borrowed.
        assert sys.getrefcount(data) in (base, base + 1)
    else:
        assert sys.getrefcount(data) == base
    assert b.to_bytes() == ref.to_bytes() and data == snap
    assert (b.batch_query(keys) == ref.batch_query(keys)).all()


def copied(m):
    """`m` read back from a copy of its bytes (not borrowed)."""
    stream, raw = out_of_band(m)
    return pickle.loads(stream, buffers=[bytearray(raw)])


def outcome(method, *args):
    try:
        return ("ok", method(*args))
    except Exception as e:  # compared, not hidden: both sides must agree
        return ("error", type(e).__name__)


@pytest.mark.parametrize(
    "op, value",
    [
        (mappy.CounterOperator, lambda r: r.randint(1, 5)),
        (lambda: mappy.CounterOperator(signed=True), lambda r: r.randint(-5, 5)),
        (mappy.MaxOperator, lambda r: r.choice([r.randint(-9, 9), r.random(), "s"])),
        (mappy.SetOperator, lambda r: frozenset([r.randint(0, 3)])),
    ],
    ids=["counter", "signed", "max", "set"],
)
def test_random_changes_to_borrowed_maplets_give_what_copied_ones_give(op, value):
    import random

    rng = random.Random(11)
    a = mappy.Maplet(200, 0.01, op())
    b = copied(a)
    lent = []  # (bytes object, its contents when lent)
    for step in range(600):
        kind = rng.choice(["lend", "lend", "insert", "batch", "delete", "merge", "clear", "pickle"])
        if kind == "lend":
            # Both go through their bytes (which renumber a side store).
            data = a.to_bytes()
            lent.append((data, fresh(data)))
            a = mappy.Maplet.from_bytes(data, op())
            b = copied(b)
        elif kind == "insert":
            key, v = rng.randrange(500), value(rng)
            assert outcome(a.insert, key, v) == outcome(b.insert, key, v)
        elif kind == "batch":
            pairs = [(rng.randrange(500), value(rng)) for _ in range(rng.randrange(1, 40))]
            assert outcome(a.batch_insert, pairs) == outcome(b.batch_insert, pairs)
        elif kind == "delete":
            key = rng.randrange(500)
            assert outcome(a.delete, key) == outcome(b.delete, key)
        elif kind == "merge":
            o = mappy.Maplet(200, 0.01, op())
            outcome(o.batch_insert, [(rng.randrange(500), value(rng)) for _ in range(20)])
            theirs = mappy.Maplet.from_bytes(o.to_bytes(), op())
            assert outcome(a.merge, theirs) == outcome(b.merge, o)
        elif kind == "clear" and rng.random() < 0.1:
            a.clear()
            b.clear()
        elif kind == "pickle":
            a = pickle.loads(pickle.dumps(a, protocol=rng.randrange(pickle.HIGHEST_PROTOCOL + 1)))
            b = copied(b)
        assert a.to_bytes() == b.to_bytes(), (step, kind)
    keys = list(range(500))
    assert answers(a, keys) == answers(b, keys)
    for data, contents in lent:
        assert data == contents


# ---- out-of-band buffers ---------------------------------------------------------------------


class BytesSub(bytes):
    """A bytes subclass whose Python-level protocols all lie."""

    def __eq__(self, other):
        return False

    __hash__ = bytes.__hash__

    def __len__(self):
        return 0

    def __getitem__(self, i):
        raise RuntimeError("read through __getitem__")

    def __bytes__(self):
        return b"junk"


def buffer_cases(raw, tmp_path):
    """(name, buffer, the object whose reference is counted, whether the
    maplet should keep a reference to it (None: either is right), a function
    that changes it or None)."""
    n = len(raw)
    ba = bytearray(raw)
    ba2 = bytearray(raw)
    ba3 = bytearray(raw)
    npa = np.frombuffer(bytearray(raw), dtype=np.uint8)
    npa.flags.writeable = False
    arr = array.array("B", raw)
    path = tmp_path / "raw.bin"
    path.write_bytes(raw)
    f = open(path, "r+b")  # closed by the caller
    mm = mmap.mmap(f.fileno(), n)
    sub = BytesSub(raw)
    padded = b"x" + raw

    def scribble(buf):
        def change():
            buf[TABLE_AT : TABLE_AT + 64] = bytes(64)
            buf[:8] = b"XXXXXXXX"

        return change

    cases = [
        ("bytes", raw, raw, True, None),
        ("memoryview", memoryview(raw), raw, True, None),
        ("PickleBuffer", pickle.PickleBuffer(raw), raw, True, None),
        ("whole slice", memoryview(raw)[:], raw, True, None),
        ("2-d view of all of it", memoryview(raw).cast("B", shape=[n // 8, 8]), raw, None, None),
        ("view of a view", memoryview(memoryview(raw)), raw, True, None),
        ("bytes subclass", sub, sub, None, None),
        ("view of a bytes subclass", memoryview(sub), sub, None, None),
        ("slice", memoryview(padded)[1:], padded, False, None),
        ("cast view", memoryview(raw).cast("c"), raw, False, None),
        ("bytearray", ba, ba, False, scribble(ba)),
        ("read-only view of a bytearray", memoryview(ba2).toreadonly(), ba2, False, scribble(ba2)),
        ("PickleBuffer of a bytearray", pickle.PickleBuffer(ba3), ba3, False, scribble(ba3)),
        ("read-only numpy array", npa, npa, False, None),
        ("array.array", arr, arr, False, None),
        ("mmap", mm, mm, False, scribble(mm)),
        ("read-only view of an mmap", memoryview(mm).toreadonly(), mm, False, scribble(mm)),
    ]
    return cases, (f, mm)


def test_out_of_band_buffers_are_borrowed_only_when_they_are_all_of_a_bytes_object(tmp_path):
    m = build("counter")
    stream, raw = out_of_band(m)
    data = m.to_bytes()
    keys = [f"k{i}" for i in range(400)]
    cases, (f, mm) = buffer_cases(raw, tmp_path)
    try:
        for name, buf, owner, kept, change in cases:
            count = sys.getrefcount(owner)
            for load in (lambda b: pickle.loads(stream, buffers=[b]), mappy.Maplet._restore):
                back = load(buf)
                assert back.to_bytes() == data, name
                assert kept is None or (sys.getrefcount(owner) > count) == kept, name
                if change is not None:
                    # A copy was read: changing the buffer changes nothing.
                    saved = bytes(owner)
                    change()
                    assert back.to_bytes() == data and answers(back, keys) == answers(m, keys), name
                    owner[:] = saved
                back.insert("k1", 1)
                assert back.query("k1") == m.query("k1") + 1, name
                assert sys.getrefcount(owner) == count, name
                del back
            assert sys.getrefcount(owner) == count, name
        assert raw == data
    finally:
        for case in cases:
            if isinstance(case[1], memoryview):
                case[1].release()
        mm.close()
        f.close()


# A PickleBuffer over a buffer that is not contiguous has no raw() view to
# look under: it is copied, as the same buffer is under any other wrapper.
# A read-only one reaches _restore as it is from pickle.loads too.
def test_a_non_contiguous_pickle_buffer_is_copied_as_any_other_buffer():
    m = build("counter")
    stream, raw = out_of_band(m)
    spread = np.zeros(2 * len(raw), dtype=np.uint8)
    spread[::2] = np.frombuffer(raw, dtype=np.uint8)
    strided = spread[::2]  # the maplet's bytes, every other byte of `spread`
    assert not strided.flags.c_contiguous and bytes(strided) == raw
    read_only = memoryview(strided).toreadonly()
    # The same bytes under other wrappers are copied and read.
    for buf in (strided, memoryview(strided), read_only):
        assert mappy.Maplet._restore(buf).to_bytes() == raw
        assert pickle.loads(stream, buffers=[buf]).to_bytes() == raw
    results = {}
    for name, load in [
        ("_restore", lambda: mappy.Maplet._restore(pickle.PickleBuffer(strided))),
        ("_restore read-only", lambda: mappy.Maplet._restore(pickle.PickleBuffer(read_only))),
        ("pickle.loads read-only", lambda: pickle.loads(stream, buffers=[pickle.PickleBuffer(read_only)])),
    ]:
        try:
            results[name] = load().to_bytes() == raw
        except BufferError as e:
            results[name] = f"BufferError: {e}"
    assert results == dict.fromkeys(results, True)


def test_views_released_before_or_after_loading(tmp_path):
    m = build("counter")
    stream, raw = out_of_band(m)
    count = sys.getrefcount(raw)
    for make in (memoryview, pickle.PickleBuffer):
        view = make(raw)
        view.release()
        with pytest.raises(ValueError):
            pickle.loads(stream, buffers=[view])
        with pytest.raises(ValueError):
            mappy.Maplet._restore(view)
        del view
        assert sys.getrefcount(raw) == count
        # Released after loading: the maplet holds the bytes, not the view.
        view = make(raw)
        back = pickle.loads(stream, buffers=[view])
        view.release()
        del view
        gc.collect()
        assert sys.getrefcount(raw) == count + 1
        assert back.to_bytes() == raw and back.query("k5") == m.query("k5")
        del back
        assert sys.getrefcount(raw) == count


def test_bytes_shared_with_a_bytesio_stay_as_they_were():
    # BytesIO.getvalue() hands out its own buffer; it must copy before it
    # writes again while we borrow it.
    m = build("counter")
    data = m.to_bytes()
    bio = io.BytesIO()
    bio.write(data)
    b = mappy.Maplet.from_bytes(bio.getvalue())
    bio.seek(0)
    bio.write(b"\xff" * 3000)
    bio.truncate(10)
    bio.write(b"x" * 9000)
    assert b.to_bytes() == data and b.query("k7") == m.query("k7")
    b.insert("k7", 1)
    assert b.query("k7") == m.query("k7") + 1


def test_a_buffer_changed_by_another_thread_while_it_is_copied_is_refused_or_read_whole():
    m = mappy.Maplet(200_000, 0.01)
    m.batch_insert(np.arange(100_000, dtype=np.uint64), np.ones(100_000, dtype=np.int64))
    stream, raw = out_of_band(m)
    buf = np.frombuffer(bytearray(raw), dtype=np.uint8).copy()
    stop = threading.Event()

    def flip():
        # NumPy releases the GIL over the loop: the bytes change while read.
        while not stop.is_set():
            np.bitwise_xor(buf, 0x5A, out=buf)

    t = threading.Thread(target=flip)
    t.start()
    seen = {"read": 0, "refused": 0}
    try:
        for view in (lambda: buf, lambda: memoryview(buf).toreadonly(), lambda: pickle.PickleBuffer(buf)):
            for _ in range(60):
                try:
                    back = pickle.loads(stream, buffers=[view()])
                except mappy.CorruptDataError:
                    seen["refused"] += 1
                else:
                    assert back.to_bytes() == raw
                    seen["read"] += 1
    finally:
        stop.set()
        t.join()
    assert seen["read"] + seen["refused"] == 180 and seen["refused"] > 0


# ---- damaged data ----------------------------------------------------------------------------


def routes(stream):
    """Every way of reading a maplet's bytes: in place, and copied."""
    return {
        "from_bytes": lambda d: mappy.Maplet.from_bytes(d),
        "buffer bytes": lambda d: pickle.loads(stream, buffers=[d]),
        "buffer memoryview": lambda d: pickle.loads(stream, buffers=[memoryview(d)]),
        "buffer PickleBuffer": lambda d: pickle.loads(stream, buffers=[pickle.PickleBuffer(d)]),
        "_restore": lambda d: mappy.Maplet._restore(d),
        "copied": lambda d: pickle.loads(stream, buffers=[bytearray(d)]),
    }


def verdict(read, d):
    try:
        return read(d).to_bytes()
    except mappy.CorruptDataError:
        return "corrupt"


@pytest.mark.parametrize("n", [3000, 700_000])  # the second is past the threaded checksum's 1 MiB
def test_damage_is_refused_alike_whether_read_in_place_or_copied(n):
    m = mappy.Maplet(n, 0.01)
    m.batch_insert(np.arange(n, dtype=np.uint64), np.ones(n, dtype=np.int64))
    stream, data = out_of_band(m)
    words = struct.unpack_from("<Q", data, 88)[0]
    fbits, vbits = data[17], data[18]
    stride = 5 + 2 * (fbits + vbits)
    ways = routes(stream)
    rng = np.random.default_rng(n)
    damaged = []
    # Bit flips, unsealed (the checksum) and resealed (the table's checks).
    for at in rng.integers(0, len(data) - 8, 12):
        d = bytearray(data)
        d[at] ^= 1 << int(at % 8)
        damaged.append((bytes(d), True))
        damaged.append((reseal(bytearray(d)), False))
    # Resealed tables that break an invariant for sure.
    for pair in (0, words // stride // 2, words // stride - 1):
        d = bytearray(data)
        at = TABLE_AT + 8 * pair * stride
        d[at + 16 : at + 32] = bytes(16)  # runends of both blocks gone
        d[at : at + 16] = b"\xff" * 16  # every slot occupied
        damaged.append((reseal(d), True))
    d = bytearray(data)
    d[88:96] = struct.pack("<Q", words + 1)  # a table one word longer than the data
    damaged.append((reseal(d), True))
    damaged.append((data[:-1], True))
    damaged.append((data + b"\0" * 8, True))
    for d, must_refuse in damaged:
        count = sys.getrefcount(d)
        got = {name: verdict(read, d) for name, read in ways.items()}
        assert len(set(got.values())) == 1, got.keys()
        if must_refuse:
            assert got["from_bytes"] == "corrupt"
        gc.collect()
        assert sys.getrefcount(d) == count
    assert all(verdict(read, data) == data for read in ways.values())


def test_refused_loads_release_the_bytes():
    m = mappy.Maplet(100, 0.01, mappy.CustomOperator(plus))
    m.insert("k", (1, 2))  # a tuple: pickled in the data
    data = m.to_bytes()
    count = sys.getrefcount(data)
    with pytest.raises(mappy.UnsafeDataError):
        mappy.Maplet.from_bytes(data, mappy.CustomOperator(plus))
    with pytest.raises(ValueError, match="CustomOperator"):
        mappy.Maplet.from_bytes(data)
    with pytest.raises(mappy.CorruptDataError):
        mappy.Maplet.from_bytes(data[:-3])
    assert sys.getrefcount(data) == count
    back = mappy.Maplet.from_bytes(data, mappy.CustomOperator(plus), allow_pickle=True)
    assert back.query("k") == (1, 2)
    back.insert("k", (3,))
    assert back.query("k") == (1, 2, 3) and sys.getrefcount(data) == count


# ---- other sources and helpers ---------------------------------------------------------------


def test_mapped_then_to_bytes_then_borrowed(tmp_path):
    m = mappy.Maplet(50_000, 1e-6, mappy.MaxOperator())
    m.batch_insert([(i, i * 2) for i in range(20_000)])
    path = tmp_path / "m.maplet"
    m.save(path)
    mapped = mappy.Maplet.load(path, mmap=True)
    data = mapped.to_bytes()
    base = sys.getrefcount(data)
    b = mappy.Maplet.from_bytes(data)
    assert sys.getrefcount(data) == base + 1 and not b.read_only
    assert b.to_bytes() == m.to_bytes()
    b.insert(7, 10**6)
    with pytest.raises(mappy.ReadOnlyError):
        mapped.insert(7, 10**6)
    assert b.query(7) == 10**6 and mapped.query(7) == 14 and sys.getrefcount(data) == base
    assert mappy.Maplet.load(path).to_bytes() == m.to_bytes()


@pytest.mark.parametrize(
    "op, first, then",
    [
        (mappy.MaxOperator, [1, 2, 3], [2.5, 7.5]),
        (mappy.MaxOperator, [1, 2, 3], ["a"]),
        (mappy.MinOperator, [1.5, 2.5], [1, 2**60 + 1]),
        (mappy.MaxOperator, [], [2.5, 1]),
        (mappy.MinOperator, [], ["zz", "a"]),
        (mappy.VectorOperator, [], [np.array([1, 2], dtype=np.float32)]),
        (mappy.VectorOperator, [[1.0, 2.0]], [np.array([1, 2], dtype=np.float32)]),
        (mappy.CounterOperator, [1, 2], [2**62]),
    ],
)
def test_storage_conversions_of_borrowed_maplets_answer_as_copies_do(op, first, then):
    m = mappy.Maplet(100, 1e-6, op())
    for i, v in enumerate(first):
        m.insert(f"k{i}", v)
    stream, data = out_of_band(m)
    base = sys.getrefcount(data)
    results = []
    for load in (
        lambda: mappy.Maplet.from_bytes(data),
        lambda: pickle.loads(stream, buffers=[bytearray(data)]),
    ):
        back = load()
        r = []
        for i, v in enumerate(then):
            try:
                back.insert(f"k{i}", v)
                r.append("ok")
            except Exception as e:  # the same error either way
                r.append(type(e).__name__)
        r.append([(type(x).__name__, plain(x)) for x in (back.query(f"k{i}") for i in range(4))])
        r.append((back.to_bytes(), repr(back)))
        results.append(r)
        del back
        other_call()
        assert sys.getrefcount(data) == base
    assert results[0] == results[1]
    assert m.to_bytes() == data


def test_count_kmers_into_a_borrowed_maplet():
    rng = np.random.default_rng(3)
    seqs = ["".join(rng.choice(list("ACGT"), 1500)) for _ in range(12)]
    m = mappy.Maplet(100_000, 1e-4)
    mappy.count_kmers(m, seqs[:6], 21)
    data = m.to_bytes()
    base = sys.getrefcount(data)
    probe = [s[i : i + 21] for s in seqs for i in range(0, 1400, 91)]
    for threads in (1, 2):
        ref = mappy.Maplet.from_bytes(fresh(data)).copy()
        mappy.count_kmers(ref, seqs[6:], 21, threads=threads)
        b = mappy.Maplet.from_bytes(data)
        mappy.count_kmers(b, seqs[6:], 21, threads=threads)
        other_call()
        assert sys.getrefcount(data) == base
        assert b.to_bytes() == ref.to_bytes()
        assert (mappy.query_kmers(b, probe) == mappy.query_kmers(ref, probe)).all()
    assert data == m.to_bytes()


def test_sharded_maplets_of_borrowed_shards():
    s = mappy.ShardedMaplet(4000, 0.001, shards=4)
    keys = np.arange(3000, dtype=np.uint64)
    s.batch_insert(keys, np.full(3000, 2, dtype=np.int64))
    back = pickle.loads(pickle.dumps(s, protocol=5))
    buffers = []
    stream = pickle.dumps(s, protocol=5, buffer_callback=buffers.append)
    raws = [bytes(b.raw()) for b in buffers]
    oob = pickle.loads(stream, buffers=raws)
    whole = mappy.concat_shards([mappy.Maplet.from_bytes(m.to_bytes()) for m in s.shards])
    for x in (back, oob):
        assert (x.batch_query(keys) == s.batch_query(keys)).all()
        x.batch_insert(keys[:10], np.ones(10, dtype=np.int64))
        assert (x.batch_query(keys[:10]) == s.batch_query(keys[:10]) + 1).all()
    assert (whole.batch_query(keys) == s.batch_query(keys)).all()
    assert [bytes(b.raw()) for b in buffers] == raws
    # Loaded from an in-memory file system (whose files are BytesIO
    # buffers), then the files replaced and scribbled over.
    s.save("memory://lending-hostile/sm")
    loaded = mappy.ShardedMaplet.load("memory://lending-hostile/sm")
    other = mappy.ShardedMaplet(4000, 0.001, shards=4, seed=s.seed)
    other.batch_insert(keys, np.full(3000, 5, dtype=np.int64))
    other.save("memory://lending-hostile/sm")
    fs = fsspec.filesystem("memory")
    with fs.open("/lending-hostile/sm/shard-00000.maplet", "wb") as f:
        f.write(b"junk")
    assert (loaded.batch_query(keys) == s.batch_query(keys)).all()
    loaded.batch_insert(keys, np.ones(3000, dtype=np.int64))
    assert (loaded.batch_query(keys) == s.batch_query(keys) + 1).all()
    fs.rm("/lending-hostile", recursive=True)


# ---- threads, memory and the process ---------------------------------------------------------


def test_threads_loading_changing_and_dropping_maplets_of_one_bytes_object():
    m = mappy.Maplet(20_000, 1e-4)
    keys = np.arange(5000, dtype=np.uint64)
    m.batch_insert(keys, np.full(5000, 3, dtype=np.int64))
    data = m.to_bytes()
    snap = fresh(data)
    base = sys.getrefcount(data)
    start = threading.Barrier(4)
    bad = []

    def work(t):
        start.wait()
        for i in range(60):
            b = mappy.Maplet.from_bytes(data) if i % 2 else pickle.loads(pickle.dumps(m), buffers=None)
            if b.query(int(i)) != 3:
                bad.append((t, i))
            if i % 3 == 0:
                b.insert(int(i), 1)
            elif i % 3 == 1:
                b.batch_insert(keys[:50], np.ones(50, dtype=np.int64))
            del b
            if i % 20 == 0:
                gc.collect()

    ts = [threading.Thread(target=work, args=(t,)) for t in range(4)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    gc.collect()
    other_call()
    assert not bad and data == snap and sys.getrefcount(data) == base


def test_a_borrowed_maplet_used_from_many_threads_at_once():
    code = """
    import gc, pickle, sys, threading
    import numpy as np
    import mappy_python as mappy

    keys = np.arange(5000, dtype=np.uint64)
    for kind in ("counter", "set"):
        if kind == "counter":
            src = mappy.Maplet(20_000, 1e-4)
            src.batch_insert(keys, np.full(5000, 3, dtype=np.int64))
        else:
            src = mappy.Maplet(20_000, 1e-4, mappy.SetOperator())
            src.batch_insert([(int(k), frozenset([0])) for k in keys])
        data = src.to_bytes()
        snap = bytes(bytearray(data))
        base = sys.getrefcount(data)
        for rnd in range(12):
            m = mappy.Maplet.from_bytes(data)
            go = threading.Barrier(7)
            errors = []

            def check(v):
                if kind == "counter":
                    return v is not None and v >= 3
                return v is not None and 0 in v

            def queries():
                go.wait()
                for i in range(3000):
                    if not check(m.query(i % 5000)):
                        errors.append(("query", i))

            def inserts():
                go.wait()
                for i in range(400):
                    m.insert(i, 1 if kind == "counter" else frozenset([1]))

            def batches():
                go.wait()
                if kind == "counter":
                    m.batch_insert(keys[:2000], np.ones(2000, dtype=np.int64))
                else:
                    m.batch_insert([(int(k), frozenset([2])) for k in keys[:2000]])
                got = m.batch_query(keys)
                if not all(check(v) for v in got):
                    errors.append("batch_query")

            def copies():
                go.wait()
                for _ in range(4):
                    c = m.copy()
                    p = pickle.loads(pickle.dumps(m, protocol=5))
                    if not (check(c.query(4999)) and check(p.query(4999))):
                        errors.append("copy")
                    mappy.merge([m, p])
                    del c, p
                    gc.collect()

            def merges():
                go.wait()
                for _ in range(4):
                    x = mappy.Maplet.from_bytes(data)
                    x.merge(m)
                    m.to_bytes()
                    m.stats()
                    del x
                    gc.collect()

            def churn():
                go.wait()
                for _ in range(40):
                    y = mappy.Maplet.from_bytes(data)
                    y.insert(1, 1 if kind == "counter" else frozenset([3]))
                    del y

            def collect():
                go.wait()
                for _ in range(20):
                    gc.collect()

            ts = [
                threading.Thread(target=f)
                for f in (queries, inserts, batches, copies, merges, churn, collect)
            ]
            for t in ts:
                t.start()
            for t in ts:
                t.join()
            assert not errors, errors[:5]
            got = m.batch_query(keys)
            if kind == "counter":
                want = np.full(5000, 3)
                want[:2000] += 1
                want[:400] += 1
                assert (got >= want).all() and (got == want).mean() > 0.99
            else:
                assert all(0 in v for v in got)
                assert all({1, 2} <= got[i] for i in range(400))
            del m, got
        gc.collect()
        mappy.Maplet(10, 0.1).copy()
        assert data == snap, kind
        assert sys.getrefcount(data) == base, (kind, sys.getrefcount(data) - base)
    print("threads ok")
    """
    rc, out = run_python(code, timeout=120)
    assert_clean(rc, out, "threads ok")


def test_memory_stays_flat_over_many_load_change_drop_cycles():
    code = """
    import gc, pickle, sys
    import numpy as np
    import mappy_python as mappy

    RSS_HELPER

    n = 1_000_000
    m = mappy.Maplet(n, 0.01)
    keys = np.arange(n, dtype=np.uint64)
    m.batch_insert(keys, np.ones(n, dtype=np.int64))
    data = m.to_bytes()
    buffers = []
    stream = pickle.dumps(m, protocol=5, buffer_callback=buffers.append)
    base = sys.getrefcount(data)

    def cycle(i):
        a = mappy.Maplet.from_bytes(data)
        a.insert(i, 1)
        b = pickle.loads(stream, buffers=[data])
        b.batch_insert(keys[:100], np.ones(100, dtype=np.int64))
        c = pickle.loads(pickle.dumps(a))
        c.insert(3, 3)
        d = pickle.loads(stream, buffers=[memoryview(data)])
        d.query(1)
        e = mappy.Maplet.from_bytes(data)
        e.copy()

    for i in range(10):
        cycle(i)
    gc.collect()
    before = rss()
    for i in range(150):  # each cycle reads 8 MB of maplets
        cycle(i)
    gc.collect()
    grown = rss() - before
    assert grown < 48 << 20, grown
    assert sys.getrefcount(data) == base
    print("flat", grown)
    """
    rc, out = run_python(code, timeout=120)
    assert_clean(rc, out, "flat")


def test_bytes_freed_at_the_first_change_are_never_read_again():
    # The maplet holds the only reference to its bytes: the first change
    # frees them (PYTHONMALLOC=debug scribbles over freed memory, and new
    # objects reuse it), so any later read of them would give wrong answers.
    code = """
    import gc, pickle
    import numpy as np
    import mappy_python as mappy

    def plus(a, b):
        return a + b

    keys = np.arange(2000, dtype=np.uint64)
    ops = {
        "counter": (mappy.CounterOperator(), 2),
        "max": (mappy.MaxOperator(), 5),
        "set": (mappy.SetOperator(), frozenset([1])),
        "custom": (mappy.CustomOperator(plus), 7),
        "vector": (mappy.VectorOperator(), [1.0, 2.0]),
    }
    for name, (op, val) in ops.items():
        ref = mappy.Maplet(10_000, 1e-6, op)
        ref.batch_insert([(int(k), val) for k in keys])
        for change in ("insert", "batch", "merge", "delete", "clear"):
            for load in ("from_bytes", "pickle", "out of band"):
                r = ref.copy()
                if load == "from_bytes":
                    b = mappy.Maplet.from_bytes(ref.to_bytes(), op if name == "custom" else None)
                elif load == "pickle":
                    b = pickle.loads(pickle.dumps(ref))
                else:
                    bufs = []
                    s = pickle.dumps(ref, protocol=5, buffer_callback=bufs.append)
                    raw = bytes(bufs[0].raw())
                    del bufs
                    b = pickle.loads(s, buffers=[raw])
                    del raw
                gc.collect()
                for x in (b, r):
                    if change == "insert":
                        x.insert(7, val)
                    elif change == "batch":
                        x.batch_insert([(int(k), val) for k in keys[:1500]])
                    elif change == "merge":
                        x.merge(ref)
                    elif change == "delete":
                        x.delete(7)
                    else:
                        x.clear()
                mappy.Maplet(10, 0.1).copy()
                junk = [bytes(4000) for _ in range(200)]
                assert b.to_bytes() == r.to_bytes(), (name, change, load)
                assert repr(b.batch_query(keys)) == repr(r.batch_query(keys)), (name, change, load)
                del junk
    print("never read again")
    """
    rc, out = run_python(code, env={"PYTHONMALLOC": "debug", "PYTHONDEVMODE": "1"})
    assert_clean(rc, out, "never read again")


def test_exiting_while_daemon_threads_change_borrowed_maplets():
    code = """
    import threading, time
    import numpy as np
    import mappy_python as mappy

    m = mappy.Maplet(1_000_000, 0.01)
    keys = np.arange(500_000, dtype=np.uint64)
    m.batch_insert(keys, np.ones(len(keys), dtype=np.int64))
    data = m.to_bytes()
    lent = [mappy.Maplet.from_bytes(data) for _ in range(4)]

    def work(x):
        while True:
            x.batch_insert(keys[:100_000], np.ones(100_000, dtype=np.int64))
            x.insert(5, 1)
            x.query(5)

    for x in lent:
        threading.Thread(target=work, args=(x,), daemon=True).start()
    time.sleep(0.2)
    print("exiting")
    """
    for _ in range(2):
        rc, out = run_python(code)
        assert_clean(rc, out, "exiting")


def test_a_signed_counter_restored_in_place():
    m = mappy.Maplet(100, 1e-6, mappy.CounterOperator(signed=True))
    m.insert("a", 3)
    data = m.to_bytes()
    base = sys.getrefcount(data)
    for back in (mappy.Maplet._restore(data, None, True), pickle.loads(pickle.dumps(m))):
        assert back.operator.signed
        back.insert("a", -5)
        assert back.query("a") == -2
        del back
        assert sys.getrefcount(data) == base
    unsigned = mappy.Maplet._restore(data)
    with pytest.raises(mappy.InvalidValueError):
        unsigned.insert("a", -5)
    assert unsigned.query("a") == 3 and sys.getrefcount(data) == base + 1


def test_loads_take_no_memory_for_the_table_until_the_first_change():
    code = """
    import gc, pickle
    import numpy as np
    import mappy_python as mappy

    RSS_HELPER

    n = 8_000_000
    m = mappy.Maplet(n, 0.01)
    m.batch_insert(np.arange(n, dtype=np.uint64), np.ones(n, dtype=np.int64))
    data = m.to_bytes()
    buffers = []
    stream = pickle.dumps(m, protocol=5, buffer_callback=buffers.append)
    del m, buffers
    gc.collect()
    size = len(data)
    before = rss()
    lent = [mappy.Maplet.from_bytes(data) for _ in range(4)]
    lent += [pickle.loads(stream, buffers=[data]), pickle.loads(stream, buffers=[memoryview(data)])]
    loaded = rss()
    assert loaded - before < size // 4, (loaded - before, size)
    lent[0].insert(1, 1)
    changed = rss()
    assert changed - loaded > size // 2, (changed - loaded, size)
    lent[0].insert(2, 1)
    lent[0].batch_insert([(3, 1), (4, 1)])
    assert rss() - changed < size // 4
    assert all(x.query(5) == 1 for x in lent) and lent[0].query(1) == 2
    print("in place", size)
    """
    rc, out = run_python(code)
    assert_clean(rc, out, "in place")


# MALLOC_MMAP_THRESHOLD_ makes every large allocation a mapping of its own,
# which RLIMIT_DATA then counts: no freed heap memory can hide an allocation.
LIMITED = (
    """
import gc, pickle, resource, sys
import numpy as np
import mappy_python as mappy
"""
    + RSS_HELPER
    + """
def vmdata():
    return status("VmData")

def limited(headroom):
    resource.setrlimit(resource.RLIMIT_DATA, (vmdata() + headroom, resource.RLIM_INFINITY))

def unlimited():
    resource.setrlimit(resource.RLIMIT_DATA, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))

n = 2_000_000
m = mappy.Maplet(1000, 0.01)  # grown to hold n keys: clear() returns to 1000
keys = np.arange(n, dtype=np.uint64)
m.batch_insert(keys, np.ones(n, dtype=np.int64))
data = m.to_bytes()
probe = keys[:: n // 1000]
want = m.batch_query(probe)
buffers = []
stream = pickle.dumps(m, protocol=5, buffer_callback=buffers.append)
del m, buffers
gc.collect()
base = sys.getrefcount(data)
"""
)


def test_the_first_copy_failing_is_a_memory_error_that_changes_nothing():
    code = (
        LIMITED
        + """
b = mappy.Maplet.from_bytes(data)
other = mappy.Maplet(1000, 0.01)
other.insert(1, 1)
calls = {
    "insert": lambda: b.insert(1, 1),
    "insert a new key": lambda: b.insert("new", 1),
    "batch_insert": lambda: b.batch_insert([(1, 1), (2, 2)]),
    "batch_insert_hashes": lambda: b.batch_insert_hashes(mappy.hash_keys(keys[:10], b.seed)),
    "delete": lambda: b.delete(1, 1),
    "merge": lambda: b.merge(other),
}
limited(len(data) // 2)
for name, call in calls.items():
    try:
        call()
    except MemoryError as e:
        assert isinstance(e, mappy.MemoryLimitError), (name, e)
    else:
        raise AssertionError(name + ": no MemoryError")
    assert (b.batch_query(probe) == want).all(), name
    assert sys.getrefcount(data) == base + 1, name
unlimited()
assert b.to_bytes() == data
b.insert(1, 1)
assert b.query(1) == 2 and sys.getrefcount(data) == base
print("refused cleanly")
"""
    )
    rc, out = run_python(code, env={"MALLOC_MMAP_THRESHOLD_": "65536"})
    assert_clean(rc, out, "refused cleanly")


# clear() drops the borrowed table without copying it first: a borrowed
# maplet clears in a few kilobytes, as one that copied its bytes does, even
# where memory for a copy of the table cannot be had.
def test_clearing_a_borrowed_maplet_needs_no_copy_of_its_table():
    code = (
        LIMITED
        + """
copied = pickle.loads(stream, buffers=[bytearray(data)])
lent = mappy.Maplet.from_bytes(data)
results = {}
for name, x in (("copied", copied), ("borrowed", lent)):
    limited(len(data) // 2)
    try:
        x.clear()
        results[name] = ("cleared", len(x))
    except MemoryError as e:
        results[name] = ("MemoryError", str(e))
    unlimited()
print(results)
assert results["copied"] == ("cleared", 0), results
assert results["borrowed"] == ("cleared", 0), results
assert sys.getrefcount(data) == base
print("cleared both")
"""
    )
    rc, out = run_python(code, env={"MALLOC_MMAP_THRESHOLD_": "65536"})
    assert_clean(rc, out, "cleared both")


# ---- bytes subclasses ------------------------------------------------------------------------


def test_a_bytes_subclass_is_read_as_the_bytes_it_holds():
    m = build("set")
    data = m.to_bytes()
    sub = BytesSub(data)
    keys = [f"k{i}" for i in range(400)]
    for load in (mappy.Maplet.from_bytes, lambda b: pickle.loads(out_of_band(m)[0], buffers=[b])):
        back = load(sub)
        assert back.to_bytes() == reread(data).to_bytes()
        same(back, m, keys)
        back.insert("k1", frozenset(["y"]))
        assert back.query("k1") == m.query("k1") | {"y"}
    assert bytes(bytearray(sub)) == data


# A bytes subclass can hold references (its __dict__), so a maplet that kept
# one could close a cycle the collector never sees: only exact bytes objects
# are lent, subclasses are copied, and such a cycle is collected.
def test_a_cycle_through_a_borrowed_bytes_subclass_is_collected():
    class Tagged(bytes):
        pass

    m = build("counter")
    alive = []
    for load in (
        lambda b: mappy.Maplet.from_bytes(b),
        lambda b: pickle.loads(out_of_band(m)[0], buffers=[b]),
        lambda b: mappy.Maplet._restore(memoryview(b)),
    ):
        b = Tagged(m.to_bytes())
        back = load(b)
        b.maplet = back  # maplet -> bytes -> its __dict__ -> maplet
        alive.append(weakref.ref(back))
        del b, back
    gc.collect()
    assert [r() is None for r in alive] == [True] * 3


# The first change drops the maplet's reference to the bytes while the
# maplet is locked; a bytes subclass's finalizer could then run and find its
# maplet busy. Subclasses are copied, never lent, so a finalizer that uses
# the maplet finds it usable.
def test_a_finalizer_of_the_borrowed_bytes_finds_the_maplet_usable():
    code = """
    import mappy_python as mappy

    live, ran, errors = [], [], []

    class Watched(bytes):
        def __del__(self):
            ran.append(1)
            for x in live:
                try:
                    x.query("k")
                except Exception as e:
                    errors.append(repr(e))

    m = mappy.Maplet(100, 0.01)
    m.insert("k", 1)
    for change in ("insert", "batch_insert", "clear"):
        x = mappy.Maplet.from_bytes(Watched(m.to_bytes()))
        live.append(x)
        if change == "insert":
            x.insert("k", 1)
        elif change == "batch_insert":
            x.batch_insert([("k", 1)])
        else:
            x.clear()
        assert x.query("k") == (None if change == "clear" else 2)
        live.clear()
        del x
    assert len(ran) == 3, ran
    print(errors)
    assert errors == [], errors
    print("finalizers ok")
    """
    rc, out = run_python(code)
    assert_clean(rc, out, "finalizers ok")
