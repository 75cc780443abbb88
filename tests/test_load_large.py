"""Round trips of maplets large enough that loading checks their table on
two threads, and damage to each invariant of such a table (resealed under
a fresh checksum, so that the table checks must find it)."""

import pickle
import struct

import numpy as np
import pytest
import xxhash

import mappy_python as mappy

N = 1_200_000
# The fixed header: the table's words start right after it for a counter.
TABLE_AT = 104 + 64 * 8


@pytest.fixture(scope="module")
def big():
    m = mappy.Maplet(N, 0.01, mappy.CounterOperator())
    keys = np.arange(N, dtype=np.uint64)
    m.batch_insert(keys, (keys % 7 + 1).astype(np.int64))
    return m


@pytest.fixture(scope="module")
def grown():
    # Started small: doubled four times, so its fingerprints are of
    # several lengths.
    m = mappy.Maplet(80_000, 0.01, mappy.CounterOperator())
    keys = np.arange(N, dtype=np.uint64)
    for part in np.array_split(keys, 12):
        m.batch_insert(part, np.ones(len(part), dtype=np.int64))
    return m


def same(a, b):
    probe = np.arange(0, 2 * N, 997, dtype=np.uint64)
    assert len(a) == len(b)
    assert np.array_equal(a.batch_query(probe), b.batch_query(probe))
    assert a.to_bytes() == b.to_bytes()


@pytest.mark.parametrize("which", ["big", "grown"])
def test_large_round_trips(which, request, tmp_path):
    m = request.getfixturevalue(which)
    path = tmp_path / "m.maplet"
    m.save(path)
    for back in (
        mappy.Maplet.load(path),
        mappy.Maplet.from_bytes(m.to_bytes()),
        pickle.loads(pickle.dumps(m)),
    ):
        same(m, back)
        back.insert(N + 5, 3)
        assert back.query(N + 5) >= 3


def reseal(b):
    b[-8:] = struct.pack("<Q", xxhash.xxh3_64_intdigest(bytes(b[:-8])))
    return bytes(b)


def u64(b, at):
    return struct.unpack_from("<Q", b, at)[0]


def shape(b):
    fbits, vbits = b[17], b[18]
    stride = 5 + 2 * (fbits + vbits)
    pairs = u64(b, 88) // stride
    return stride, pairs


def header_word(b, pair, k):
    stride, _ = shape(b)
    return TABLE_AT + 8 * (pair * stride + k)


def damage(kind, b):
    stride, pairs = shape(b)
    mid = pairs // 2
    if kind == "occupied past the home slots":
        # The last pair lies wholly in the overflow area.
        at = header_word(b, pairs - 1, 1)
        b[at : at + 8] = struct.pack("<Q", u64(b, at) | 1 << 63)
    elif kind == "home slots without runs":
        at = header_word(b, mid, 0)
        b[at : at + 8] = b"\xff" * 8
    elif kind == "runend removed":
        for k in (2, 3):
            at = header_word(b, mid, k)
            w = u64(b, at)
            if w:
                b[at : at + 8] = struct.pack("<Q", w & (w - 1))
                return
        raise AssertionError("no runend to remove")
    elif kind == "runend added":
        at = header_word(b, mid, 2)
        w = u64(b, at)
        free = ~w & (w + 1)
        b[at : at + 8] = struct.pack("<Q", w | free)
    elif kind == "spill":
        at = header_word(b, mid, 4)
        b[at : at + 8] = struct.pack("<Q", u64(b, at) ^ (1 << 33 | 1))
    elif kind == "entry count":
        b[80:88] = struct.pack("<Q", u64(b, 80) + 1)
    elif kind == "fingerprint length counts":
        at = 104 + 8 * b[17] - 8 * 2
        b[at : at + 8] = struct.pack("<Q", u64(b, at) + 1)
    elif kind == "zero fields in runs":
        start = header_word(b, mid, 5)
        end = header_word(b, mid + 1, 0)
        b[start:end] = bytes(end - start)
    elif kind == "slot outside every run":
        # The table's last slot, far into the overflow area, which is free.
        end = TABLE_AT + 8 * u64(b, 88)
        b[end - 1] = 0x80
    else:
        raise AssertionError(kind)


KINDS = [
    "occupied past the home slots",
    "home slots without runs",
    "runend removed",
    "runend added",
    "spill",
    "entry count",
    "fingerprint length counts",
    "zero fields in runs",
    "slot outside every run",
]


@pytest.mark.parametrize("kind", KINDS)
def test_each_broken_invariant_is_corrupt_data(big, kind, tmp_path):
    b = bytearray(big.to_bytes())
    damage(kind, b)
    data = reseal(b)
    with pytest.raises(mappy.CorruptDataError):
        mappy.Maplet.from_bytes(data)
    path = tmp_path / "d.maplet"
    path.write_bytes(data)
    with pytest.raises(mappy.CorruptDataError):
        mappy.Maplet.load(path)
    with pytest.raises(mappy.CorruptDataError):
        mappy.Maplet.load(path, mmap=True).verify()


def test_damage_without_a_fresh_checksum_is_caught_first(big):
    b = bytearray(big.to_bytes())
    damage("spill", b)
    with pytest.raises(mappy.CorruptDataError, match="checksum"):
        mappy.Maplet.from_bytes(bytes(b))
