"""Scale-out on Dask: partitions build maplets on worker processes and the
maplets merge in a tree; the result answers as a single-process build."""

import dask
import dask.bag as db
import dask.dataframe as dd
import pandas as pd
import pytest
from dask.distributed import Client, LocalCluster

import mappy_python as mappy


@pytest.fixture(scope="module")
def client():
    with (
        LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            dashboard_address=None,
        ) as cluster,
        Client(cluster) as c,
    ):
        yield c


def single_process(keys, values, operator=None):
    m = mappy.Maplet(6000, 0.01, operator or mappy.CounterOperator())
    m.batch_insert(keys, values)
    return m


def test_bag_build_answers_like_one_process(client):
    words = [f"w{(i * 7919) % 5000}" for i in range(60_000)]
    bag = db.from_sequence(words, npartitions=12)
    built = mappy.dask.build(bag, expected_items=6000, false_positive_rate=0.01, split_every=3)
    assert len(client.scheduler_info()["workers"]) == 2
    single = single_process(words, [1] * len(words))
    probes = set(words) | {f"absent{i}" for i in range(3000)}
    assert all(built.query(w) == single.query(w) for w in probes)
    assert len(built) == len(single)
    assert built.query("w0") >= words.count("w0")


def test_dataframe_build_with_key_and_value_columns(client):
    frame = pd.DataFrame(
        {"ip": [f"10.0.{i % 300}.{i % 7}" for i in range(20_000)], "bytes": list(range(20_000))}
    )
    ddf = dd.from_pandas(frame, npartitions=6)
    built = mappy.dask.build(ddf, key="ip", value="bytes", expected_items=6000, false_positive_rate=0.01)
    single = single_process(frame["ip"].tolist(), frame["bytes"].tolist())
    truth = frame.groupby("ip")["bytes"].sum()
    for ip, total in truth.items():
        assert built.query(ip) == single.query(ip)
        assert built.query(ip) >= total


def test_max_operator_and_key_function(client):
    records = [(f"k{i % 100}", i) for i in range(5000)]
    bag = db.from_sequence(records, npartitions=5)
    built = mappy.dask.build(
        bag,
        key=lambda r: r[0],
        value=lambda r: r[1],
        expected_items=200,
        false_positive_rate=0.001,
        operator=mappy.MaxOperator(),
    )
    for i in range(100):
        assert built.query(f"k{i}") >= max(v for k, v in records if k == f"k{i}")


@pytest.mark.parametrize("value", [lambda r: r[1] / 4, lambda r: [float(r[1]), 1.0]], ids=["float", "vector"])
def test_empty_partitions_merge_for_float_and_vector_values(client, value):
    records = [(f"k{i % 10}", i) for i in range(40)]
    bag = db.from_sequence(records, npartitions=4).filter(lambda r: r[1] < 20)  # two partitions empty
    op = mappy.MaxOperator() if value(records[1]) == 0.25 else mappy.VectorOperator()
    built = mappy.dask.build(
        bag, key=lambda r: r[0], value=value, expected_items=20, false_positive_rate=0.001, operator=op
    )
    assert len(built) == 10
    if isinstance(op, mappy.MaxOperator):
        assert built.query("k3") >= 13 / 4
    else:
        assert list(built.query("k3")) == [3.0 + 13.0, 2.0]


def test_bad_parameters_fail_before_any_work():
    bag = db.from_sequence(["a"], npartitions=1)
    with pytest.raises(ValueError):
        mappy.dask.build(bag, expected_items=0, false_positive_rate=0.01)
    with pytest.raises(TypeError):
        mappy.dask.build(bag, key="col", expected_items=10, false_positive_rate=0.01)


def test_fixed_precision_partitions_that_grow_still_merge_exactly(client):
    words = [f"w{i}" for i in range(20_000)]
    bag = db.from_sequence(words, npartitions=4)
    built = mappy.dask.build(bag, expected_items=500, false_positive_rate=0.01, fixed_precision=True)
    single = mappy.Maplet(500, 0.01, fixed_precision=True)
    for w in words:
        single.insert(w, 1)
    assert built.to_bytes() == single.to_bytes()


# ---- the sharded build ---------------------------------------------------------

WORDS = [f"w{(i * 7919) % 20_000}" for i in range(120_000)]
PROBES = sorted(set(WORDS)) + [f"absent{i}" for i in range(20_000)]


@pytest.mark.parametrize(
    "operator, value",
    [
        (None, None),
        (mappy.MaxOperator(), lambda w: len(w) * 3 + int(w[1:]) % 11),
        (mappy.SetOperator(), lambda w: {int(w[1:]) % 4, "s"}),
    ],
)
def test_sharded_build_answers_exactly_as_one_process(client, operator, value):
    bag = db.from_sequence(WORDS, npartitions=10)
    built = mappy.dask.build(
        bag, value=value, expected_items=24_000, false_positive_rate=0.01, operator=operator, shards=8
    )
    assert isinstance(built, mappy.ShardedMaplet) and len(built.shards) == 8
    single = mappy.Maplet(24_000, 0.01, operator)
    single.batch_insert(WORDS, [1 if value is None else value(w) for w in WORDS])
    assert built.batch_query(PROBES) == single.batch_query(PROBES)
    assert built.to_maplet().batch_query(PROBES) == single.batch_query(PROBES)


def test_sharded_build_without_a_size_hint_is_sized_from_the_data(client):
    bag = db.from_sequence(WORDS, npartitions=10)
    built = mappy.dask.build(bag, false_positive_rate=0.01, shards=8)
    # The sketch's estimate of 20,000 distinct keys, with 5% room.
    assert 19_000 * 1.05 < built.expected_items < 21_000 * 1.05
    assert all(s.capacity == built.shards[0].capacity for s in built.shards)  # none grew
    single = mappy.Maplet(built.expected_items, 0.01)
    single.batch_insert(WORDS, [1] * len(WORDS))
    assert built.batch_query(PROBES) == single.batch_query(PROBES)


def test_sharded_build_with_empty_partitions_and_skewed_keys(client, tmp_path):
    # 90% of the records are one key; half the partitions are empty.
    records = ["hot"] * 90_000 + WORDS[:10_000]
    bag = db.from_sequence(records, npartitions=20).filter(lambda w: True)
    parts = [[] for _ in range(10)] + [records[i::10] for i in range(10)]
    bag = db.from_delayed([dask.delayed(p) for p in parts])
    built = mappy.dask.build(
        bag, expected_items=12_000, false_positive_rate=0.01, shards=16, path=tmp_path / "skew"
    )
    assert built.read_only  # saved by the workers, memory-mapped back
    assert built.query("hot") >= 90_000
    single = mappy.Maplet(12_000, 0.01)
    single.batch_insert(records, [1] * len(records))
    probes = sorted(set(records)) + PROBES[-5000:]
    assert built.batch_query(probes) == single.batch_query(probes)
    again = mappy.ShardedMaplet.load(tmp_path / "skew")
    assert again.batch_query(probes) == single.batch_query(probes)
    # All partitions empty: every shard empty, still a whole sharded maplet.
    nothing = db.from_delayed([dask.delayed([]) for _ in range(3)])
    empty = mappy.dask.build(nothing, expected_items=100, false_positive_rate=0.01, shards=4)
    assert len(empty) == 0 and len(empty.shards) == 4


def test_a_shard_damaged_after_saving_is_named(client, tmp_path):
    bag = db.from_sequence(WORDS[:20_000], npartitions=4)
    mappy.dask.build(bag, expected_items=24_000, false_positive_rate=0.01, shards=4, path=tmp_path / "d")
    f = tmp_path / "d" / "shard-00001.maplet"
    b = bytearray(f.read_bytes())
    b[len(b) // 3] ^= 0x40
    f.write_bytes(bytes(b))
    with pytest.raises(mappy.CorruptDataError, match="shard 1"):
        mappy.ShardedMaplet.load(tmp_path / "d")


def test_sharded_build_survives_a_worker_killed_mid_build(client, tmp_path):
    import os
    import threading

    def slow(words):
        import time

        time.sleep(0.3)
        return words

    bag = db.from_sequence(WORDS, npartitions=16).map_partitions(slow)
    done = {}

    def kill_one_worker():
        import time

        time.sleep(1.0)
        workers = list(client.scheduler_info()["workers"])
        done["killed"] = workers[0]
        try:
            client.run(os._exit, 1, workers=[workers[0]])
        except Exception:  # the worker dies before it can answer
            pass

    killer = threading.Thread(target=kill_one_worker)
    killer.start()
    built = mappy.dask.build(bag, expected_items=24_000, false_positive_rate=0.01, shards=8)
    killer.join()
    assert "killed" in done
    single = mappy.Maplet(24_000, 0.01)
    single.batch_insert(WORDS, [1] * len(WORDS))
    assert built.batch_query(PROBES) == single.batch_query(PROBES)
    client.wait_for_workers(2, timeout=60)


def test_query_on_dask_from_a_saved_sharded_maplet(client, tmp_path):
    counts = mappy.ShardedMaplet(24_000, 0.01, shards=4)
    counts.batch_insert(WORDS)
    counts.save(tmp_path / "q")
    probes = WORDS[:3000] + ["nobody"]
    bag = db.from_sequence(probes, npartitions=5)
    answers = mappy.dask.query(bag, tmp_path / "q").compute()
    assert answers == counts.batch_query(probes)
    frame = pd.DataFrame({"word": probes, "n": range(len(probes))})
    out = mappy.dask.query(dd.from_pandas(frame, npartitions=3), str(tmp_path / "q"), key="word").compute()
    assert out["answer"].tolist() == counts.batch_query(probes)
    assert out["n"].tolist() == list(range(len(probes)))
    with pytest.raises(FileNotFoundError):
        mappy.dask.query(bag, tmp_path / "nowhere")


def test_sharded_build_and_query_through_an_fsspec_url(client, tmp_path):
    url = f"file://{tmp_path}/remote"
    bag = db.from_sequence(WORDS[:30_000], npartitions=4)
    built = mappy.dask.build(bag, expected_items=24_000, false_positive_rate=0.01, shards=4, path=url)
    single = mappy.Maplet(24_000, 0.01)
    single.batch_insert(WORDS[:30_000], [1] * 30_000)
    probes = PROBES[:5000]
    assert built.batch_query(probes) == single.batch_query(probes)
    assert mappy.dask.query(db.from_sequence(probes, npartitions=3), url).compute() == single.batch_query(
        probes
    )
    assert mappy.ShardedMaplet.load(url).batch_query(probes) == single.batch_query(probes)


def test_sharded_build_with_a_hint_far_too_small_is_built_again_at_the_measured_size(client):
    # 20,000 distinct keys, told 500: the shards would outgrow the bits
    # their keys were sent with, so the build measures and starts again.
    bag = db.from_sequence(WORDS, npartitions=10)
    built = mappy.dask.build(bag, expected_items=500, false_positive_rate=0.01, shards=4)
    assert built.expected_items > 19_000
    single = mappy.Maplet(built.expected_items, 0.01)
    single.batch_insert(WORDS, [1] * len(WORDS))
    assert built.batch_query(PROBES) == single.batch_query(PROBES)


def test_sharded_build_counts_with_a_value_column(client):
    frame = pd.DataFrame({"k": WORDS[:30_000], "n": [i % 5 + 1 for i in range(30_000)]})
    ddf = dd.from_pandas(frame, npartitions=6)
    built = mappy.dask.build(
        ddf, key="k", value="n", expected_items=8_000, false_positive_rate=0.01, shards=4
    )
    single = mappy.Maplet(8_000, 0.01)
    single.batch_insert(frame["k"].tolist(), frame["n"].tolist())
    assert built.batch_query(PROBES) == single.batch_query(PROBES)


def test_auto_chooses_the_tree_merge_for_small_tables_and_small_shards_else():
    params = {"false_positive_rate": 0.01, "operator": mappy.CounterOperator(), "fixed_precision": False}
    assert mappy.dask._auto_shards(dict(params, expected_items=1_000_000)) is None
    # 50M keys: an 82 MiB table in 64 shards of 1.3 MiB.
    shards = mappy.dask._auto_shards(dict(params, expected_items=52_500_000))
    whole = mappy.Maplet(52_500_000, 0.01).stats().memory_usage
    assert shards == 64 and whole / shards <= 2 << 20 < 2 * whole / shards
    assert mappy.dask._auto_shards(dict(params, expected_items=None)) == 64
