"""Scale-out on Dask: partitions build maplets on worker processes and the
maplets merge in a tree; the result answers as a single-process build."""

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
