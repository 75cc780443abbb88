"""Sharded maplets: shards split by hash range answer exactly as one maplet
of the same parameters, save to a directory with a manifest, and refuse
damaged, missing or misplaced shards by name."""

import os
import pickle
import shutil

import numpy as np
import pytest

import mappy_python as mappy


def filled(maplet, keys, values=None):
    maplet.batch_insert(keys, [1] * len(keys) if values is None else values)
    return maplet


KEYS = [f"key{(i * 7919) % 20_000}" for i in range(60_000)]
ABSENT = [f"absent{i}" for i in range(20_000)]


@pytest.mark.parametrize("shards", [1, 2, 8, 64])
def test_shards_answer_every_key_as_one_maplet(shards):
    one = filled(mappy.Maplet(24_000, 0.01, seed=7), KEYS)
    sharded = filled(mappy.ShardedMaplet(24_000, 0.01, shards=shards, seed=7), KEYS)
    assert sharded.stats().capacity == one.capacity
    probes = sorted(set(KEYS)) + ABSENT
    assert sharded.batch_query(probes) == one.batch_query(probes)
    assert sharded.batch_contains(probes) == one.batch_contains(probes)
    assert all(sharded.query(k) == one.query(k) for k in probes[::97])
    assert len(sharded) == len(one)
    # Stitched together, the shards are byte for byte that one maplet.
    assert sharded.to_maplet().to_bytes() == one.to_bytes()


@pytest.mark.parametrize(
    "operator, values",
    [
        (mappy.MaxOperator(), lambda i: i % 1000),
        (mappy.MinOperator(), lambda i: float(i % 333) / 3),
        (mappy.SetOperator(), lambda i: {i % 5, f"t{i % 3}"}),
    ],
)
def test_shards_of_every_operator_answer_as_one_maplet(operator, values):
    keys = KEYS[:10_000]
    vals = [values(i) for i in range(len(keys))]
    one = filled(mappy.Maplet(12_000, 0.01, operator), keys, vals)
    sharded = filled(mappy.ShardedMaplet(12_000, 0.01, operator, shards=4), keys, vals)
    probes = sorted(set(keys)) + ABSENT[:5000]
    assert sharded.batch_query(probes) == one.batch_query(probes)
    assert sharded.to_maplet().batch_query(probes) == one.batch_query(probes)


def test_numpy_keys_answer_numpy_arrays():
    keys = np.arange(50_000, dtype=np.uint64)
    one = mappy.Maplet(60_000, 0.01)
    one.batch_insert(keys, np.ones(len(keys), dtype=np.int64))
    sharded = mappy.ShardedMaplet(60_000, 0.01, shards=16)
    sharded.batch_insert(keys, np.ones(len(keys), dtype=np.int64))
    probes = np.arange(100_000, dtype=np.uint64)
    got = sharded.batch_query(probes)
    assert isinstance(got, np.ndarray) and np.array_equal(got, one.batch_query(probes))
    assert np.array_equal(sharded.batch_contains(probes), one.batch_contains(probes))


def test_a_shard_refuses_keys_of_other_shards_and_answers_them_absent():
    s = mappy.ShardedMaplet(1000, 0.01, shards=4)
    key = "k"
    home = s.shard_of(key)
    other = s.shards[(home + 1) % 4]
    with pytest.raises(mappy.InvalidParameterError, match="belongs to shard"):
        other.insert(key, 1)
    with pytest.raises(mappy.InvalidParameterError, match="belongs to shard"):
        other.batch_insert([key], [1])
    s.insert(key, 3)
    assert s.query(key) == 3 and other.query(key) is None and key not in other
    assert len(other) == 0
    # Shards of different ranges do not merge.
    with pytest.raises(mappy.IncompatibleMapletsError, match="hash ranges"):
        other.merge(s.shards[home])


def test_bad_shard_counts_are_refused():
    for bad in (0, 3, 1 << 17):
        with pytest.raises(ValueError):
            mappy.ShardedMaplet(100, 0.01, shards=bad)
    with pytest.raises(mappy.InvalidParameterError):
        mappy.Maplet(100, 0.01, shard=(4, 4))
    with pytest.raises(mappy.InvalidParameterError):
        mappy.Maplet(100, 0.01, shard=(0, 6))
    with pytest.raises(ValueError, match="shard 1 of 2 expected"):
        mappy.ShardedMaplet.from_shards([mappy.Maplet(100, 0.01, shard=(0, 2))] * 2)
    with pytest.raises(mappy.InvalidParameterError, match="shards must come in order"):
        mappy.concat_shards([mappy.Maplet(100, 0.01, shard=(1, 2)), mappy.Maplet(100, 0.01, shard=(0, 2))])


def test_save_load_and_mmap_round_trip(tmp_path):
    s = filled(mappy.ShardedMaplet(24_000, 0.01, shards=8), KEYS)
    s.save(tmp_path / "s")
    names = sorted(os.listdir(tmp_path / "s"))
    assert names == ["manifest.txt"] + [f"shard-{i:05d}.maplet" for i in range(8)]
    probes = sorted(set(KEYS)) + ABSENT
    for mmap in (False, True):
        back = mappy.ShardedMaplet.load(tmp_path / "s", mmap=mmap)
        assert back.read_only == mmap
        assert back.batch_query(probes) == s.batch_query(probes)
        back.verify()
    # Each shard file is an ordinary maplet, answering its own keys alone.
    alone = mappy.Maplet.load(tmp_path / "s" / "shard-00003.maplet", mmap=True)
    assert alone.shard == (3, 8)
    for k in sorted(set(KEYS))[:500]:
        assert alone.query(k) == (s.query(k) if s.shard_of(k) == 3 else None)
    assert pickle.loads(pickle.dumps(s)).batch_query(probes) == s.batch_query(probes)


def test_damaged_missing_and_misplaced_shards_are_named(tmp_path):
    s = filled(mappy.ShardedMaplet(24_000, 0.01, shards=4), KEYS)
    d = tmp_path / "s"
    s.save(d)
    good = (d / "shard-00002.maplet").read_bytes()

    # A flipped byte in the table: the file's own checksum fails.
    bad = bytearray(good)
    bad[len(bad) // 2] ^= 0xFF
    (d / "shard-00002.maplet").write_bytes(bytes(bad))
    with pytest.raises(mappy.CorruptDataError, match="shard 2"):
        mappy.ShardedMaplet.load(d)
    with pytest.raises(mappy.CorruptDataError, match="shard 2"):
        mappy.ShardedMaplet.load(d, mmap=True).verify()

    # Another shard's file in its place.
    shutil.copy(d / "shard-00001.maplet", d / "shard-00002.maplet")
    with pytest.raises(mappy.CorruptDataError, match="shard 2 .*not the file the manifest names"):
        mappy.ShardedMaplet.load(d)

    # Missing.
    os.remove(d / "shard-00002.maplet")
    with pytest.raises(mappy.CorruptDataError, match="shard 2 .*missing"):
        mappy.ShardedMaplet.load(d)

    # A damaged manifest.
    (d / "shard-00002.maplet").write_bytes(good)
    mappy.ShardedMaplet.load(d)
    text = (d / "manifest.txt").read_text()
    (d / "manifest.txt").write_text(text.replace("shards 4", "shards 3"))
    with pytest.raises(mappy.CorruptDataError, match="manifest.txt: line 2"):
        mappy.ShardedMaplet.load(d)
    with pytest.raises(FileNotFoundError):
        mappy.ShardedMaplet.load(tmp_path / "nowhere")


def test_a_shard_that_grew_alone_still_concatenates_one_sidedly():
    s = mappy.ShardedMaplet(1000, 0.01, shards=4)
    keys = [f"g{i}" for i in range(6000)]
    filled(s, keys)
    caps = {m.capacity for m in s.shards}
    whole = s.to_maplet()
    assert whole.capacity == max(caps) * 4
    assert all(whole.query(k) >= 1 for k in keys)
    assert len(whole) == len(s)


def test_merge_copy_and_stats():
    a = filled(mappy.ShardedMaplet(24_000, 0.01, shards=4), KEYS[:30_000])
    b = filled(mappy.ShardedMaplet(24_000, 0.01, shards=4), KEYS[30_000:])
    c = a.copy()
    c.merge(b)
    one = filled(mappy.Maplet(24_000, 0.01), KEYS)
    probes = sorted(set(KEYS)) + ABSENT
    assert c.batch_query(probes) == one.batch_query(probes)
    assert a.batch_query(["key0"]) != c.batch_query(["key0"]) or a.query("key0") == one.query("key0")
    st = c.stats()
    assert st.shards == 4 and st["item_count"] == len(c) == len(one)
    assert st.capacity == one.capacity and len(st.per_shard) == 4
    with pytest.raises(ValueError, match="shard counts differ"):
        a.merge(mappy.ShardedMaplet(24_000, 0.01, shards=2))


def test_fifos_and_devices_in_a_sharded_directory_are_refused_not_waited_on(tmp_path):
    import subprocess
    import sys

    s = filled(mappy.ShardedMaplet(24_000, 0.01, shards=2), KEYS[:1000])
    fifo_manifest = tmp_path / "m"
    s.save(fifo_manifest)
    os.remove(fifo_manifest / "manifest.txt")
    os.mkfifo(fifo_manifest / "manifest.txt")
    fifo_shard = tmp_path / "s"
    s.save(fifo_shard)
    os.remove(fifo_shard / "shard-00001.maplet")
    os.mkfifo(fifo_shard / "shard-00001.maplet")
    code = f"""
import mappy_python as mappy
for d, what in [({str(fifo_manifest)!r}, "not a regular file"), ({str(fifo_shard)!r}, "shard 1")]:
    for mmap in (False, True):
        try:
            mappy.ShardedMaplet.load(d, mmap=mmap)
        except mappy.CorruptDataError as e:
            assert what in str(e), e
        else:
            raise SystemExit("loaded " + d)
print("refused")
"""
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and "refused" in r.stdout, r.stderr
    with pytest.raises(OSError):
        s.save(tmp_path / "m" / "manifest.txt")  # not a directory


def test_save_and_load_through_an_fsspec_filesystem():
    # fsspec's in-memory filesystem: what a remote store goes through.
    s = filled(mappy.ShardedMaplet(24_000, 0.01, shards=4), KEYS)
    s.save("memory://counts")
    back = mappy.ShardedMaplet.load("memory://counts")
    probes = sorted(set(KEYS))[:3000] + ABSENT[:3000]
    assert back.batch_query(probes) == s.batch_query(probes)
    with pytest.raises(ValueError, match="mmap"):
        mappy.ShardedMaplet.load("memory://counts", mmap=True)
    import fsspec

    fs = fsspec.filesystem("memory")
    data = bytearray(fs.cat_file("/counts/shard-00001.maplet"))
    data[100] ^= 1
    fs.pipe_file("/counts/shard-00001.maplet", bytes(data))
    with pytest.raises(mappy.CorruptDataError, match="shard 1"):
        mappy.ShardedMaplet.load("memory://counts")
    fs.rm("/counts/shard-00001.maplet")
    with pytest.raises(mappy.CorruptDataError, match="shard 1 .*missing"):
        mappy.ShardedMaplet.load("memory://counts")


# ---- keys sent to their shards in runs ------------------------------------------


def _runs_for(maplet, keys):
    return maplet.encode_runs(mappy.hash_keys(keys, seed=maplet.seed))


@pytest.mark.parametrize(
    "operator, value",
    [
        (None, None),
        (mappy.CounterOperator(signed=True), lambda i: i % 7 - 3),
        (mappy.MaxOperator(), lambda i: i % 13),
        (mappy.SetOperator(), lambda i: {i % 3}),
    ],
)
def test_shards_built_from_runs_equal_shards_built_from_hashes(operator, value):
    keys = [f"k{i % 3000}" for i in range(9000)]
    vals = [1] * len(keys) if value is None else [value(i) for i in range(len(keys))]
    by_hash = mappy.ShardedMaplet(4000, 0.01, operator, shards=4)
    by_hash.batch_insert(keys, vals)
    shards = [mappy.Maplet(4000, 0.01, operator, shard=(i, 4), seed=by_hash.seed) for i in range(4)]
    # Three partitions, each coded for every shard.
    got = {i: ([], []) for i in range(4)}
    for part in range(3):
        lo, hi = part * 3000, (part + 1) * 3000
        runs, order, bounds = _runs_for(shards[0], keys[lo:hi])
        for j, (index, run) in enumerate(runs):
            got[index][0].append(run)
            got[index][1].extend(vals[lo + p] for p in order[bounds[j] : bounds[j + 1]].tolist())
    probes = sorted(set(keys)) + [f"absent{i}" for i in range(3000)]
    for i, m in enumerate(shards):
        m.batch_insert_runs(got[i][0], None if value is None else got[i][1])
        assert m.batch_query(probes) == by_hash.shards[i].batch_query(probes)
        if not isinstance(operator, mappy.SetOperator):
            # (Side-stored values are numbered in the order they came.)
            assert m.to_bytes() == by_hash.shards[i].to_bytes()


def test_bad_runs_leave_the_shard_as_it_was():
    shard = mappy.Maplet(5000, 0.01, shard=(1, 2))
    other = mappy.Maplet(5000, 0.01, shard=(0, 2), seed=shard.seed)
    runs, _, _ = _runs_for(other, [f"k{i}" for i in range(2000)])
    mine = dict(runs)[1]
    theirs = dict(runs)[0]
    shard.batch_insert_runs([mine])
    before = shard.to_bytes()
    with pytest.raises(ValueError, match="given to shard 1 of 2"):
        shard.batch_insert_runs([mine, theirs])
    with pytest.raises(ValueError, match="other parameters"):
        mappy.Maplet(50_000, 0.01, shard=(1, 2), seed=shard.seed).batch_insert_runs([mine])
    for bad in (mine[:-1], mine + b"\0", b"", b"mRUN" + mine[4:10]):
        with pytest.raises(mappy.CorruptDataError):
            shard.batch_insert_runs([bad])
    with pytest.raises(TypeError, match="bytes"):
        shard.batch_insert_runs(["not bytes"])
    with pytest.raises(TypeError, match="bytes"):
        shard.batch_insert_runs(3)
    with pytest.raises(ValueError, match="values were given"):
        shard.batch_insert_runs([mine], [1, 2])
    with pytest.raises(ValueError, match="values were given"):
        shard.batch_insert_runs([mine], np.ones(3, dtype=np.int64))
    with pytest.raises(TypeError, match="needs values"):
        mappy.Maplet(5000, 0.01, mappy.MaxOperator(), shard=(1, 2)).batch_insert_runs([mine])
    with pytest.raises(TypeError, match="uint64"):
        shard.encode_runs(["a"])
    assert shard.to_bytes() == before


def test_a_shard_that_would_outgrow_the_bits_sent_refuses_and_is_unchanged():
    small = mappy.Maplet(4096, 0.01)
    runs, _, _ = _runs_for(small, [f"k{i}" for i in range(200_000)])
    small.batch_insert_runs([])
    small.insert("x", 5)
    before = small.to_bytes()
    with pytest.raises(mappy.MapletOverflowError, match="grew past"):
        small.batch_insert_runs([r for _, r in runs])
    assert small.to_bytes() == before
    # Within the bits sent (4 times the expected items), it grows.
    fits = mappy.Maplet(4096, 0.01)
    runs, _, _ = _runs_for(fits, [f"k{i}" for i in range(12_000)])
    fits.batch_insert_runs([r for _, r in runs])
    reference = mappy.Maplet(4096, 0.01, seed=fits.seed)
    reference.batch_insert([f"k{i}" for i in range(12_000)], [1] * 12_000)
    assert fits.capacity > 4096 and fits.to_bytes() == reference.to_bytes()
