"""Build a maplet from a Dask collection larger than one machine, and query
one from Dask.

Two ways to build, chosen by ``build(..., shards=...)``:

- **Sharded** (``shards=S``): workers hash the records and code each
  partition's keys for each shard (chosen by the hash's top bits) as one
  run of sorted, delta-coded home slots and fingerprints, 2 to 3 bytes a
  key whatever the keys are (``Maplet.encode_runs``); Dask's own shuffle
  routes the runs to their shards, and each shard is built on one worker
  and saved there (``path=``) or sent back. No worker ever holds more than
  its shards, and the result answers exactly as one maplet of the same
  parameters would (see ``mappy.ShardedMaplet``).
- **Tree merge** (``shards=None``): every partition builds a maplet of the
  whole size, and the maplets merge pairwise in a tree. Each maplet travels
  pickled, about ``stats().memory_usage`` bytes, once per partition: fine
  while the whole fits one worker easily, and what ``shards="auto"`` (the
  default) picks then.

``query`` answers every record of a Bag or DataFrame from a sharded maplet
saved in a directory, each worker memory-mapping the shards it needs.

Example::

    import dask.bag as db
    import mappy_python as mappy
    from dask.distributed import Client, LocalCluster

    with LocalCluster(n_workers=2, processes=True) as cluster, Client(cluster):
        words = db.from_sequence(["a", "b", "a", "c"] * 1000, npartitions=8)
        counts = mappy.dask.build(words, expected_items=10, false_positive_rate=0.01)
        assert counts.query("a") >= 2000

Size ``expected_items`` for the whole collection, not for one partition:
every partition's maplet is built that large, so that none of them grows and
the merged maplet answers exactly as one maplet that saw every record.
"""

from __future__ import annotations

import functools
from typing import Any, Callable, Iterable, Optional, Sequence, Union

from ._layout import local_path, make_directory, manifest_stamp, remote_location, write_manifest, write_shard
from ._mappy import CounterOperator, Maplet, MapletOverflowError, hash_keys
from ._mappy import merge as merge_maplets
from .sharded import ShardedMaplet

__all__ = ["build", "query"]

KeyFn = Union[None, str, Callable[[Any], Any]]
ValueFn = Union[None, str, int, float, Callable[[Any], Any]]


def _keys_values(records: Any, key: KeyFn, value: ValueFn) -> tuple:
    """A partition's keys, and its values (``None``: a count of 1 each)."""
    import numpy as np

    values: Optional[Sequence[Any]]
    if isinstance(records, np.ndarray) and key is None:
        # A Bag whose partitions are NumPy integer arrays of keys: hashed in place.
        return records, None if value is None else [value] * len(records)
    if hasattr(records, "columns"):  # a pandas DataFrame partition
        column = records[key] if isinstance(key, str) else records.index
        if column.dtype in (np.int64, np.uint64):
            keys = column.to_numpy()
        else:
            keys = column.tolist()
        if value is None:
            values = None
        elif isinstance(value, str):
            values = records[value].tolist()
        elif callable(value):
            values = [value(row) for row in records.itertuples(index=False)]
        else:
            values = [value] * len(keys)
    else:
        records = list(records)
        keys = [key(r) for r in records] if callable(key) else records
        if value is None:
            values = None
        elif callable(value):
            values = [value(r) for r in records]
        else:
            values = [value] * len(keys)
    return keys, values


def _partition_maplet(
    records: Any,
    key: KeyFn,
    value: ValueFn,
    params: dict,
) -> Any:
    maplet = Maplet(
        params["expected_items"],
        params["false_positive_rate"],
        params["operator"],
        seed=params["seed"],
        fixed_precision=params["fixed_precision"],
    )
    keys, values = _keys_values(records, key, value)
    if len(keys):
        if values is None:
            import numpy as np

            values = np.ones(len(keys), dtype=np.int64) if isinstance(keys, np.ndarray) else [1] * len(keys)
        maplet.batch_insert(keys, values)
    return maplet


# ---- the sharded build ------------------------------------------------------

#: Hashes kept by each partition's sketch of the distinct count: the
#: estimate is within about 1/sqrt(_SKETCH) = 1.6% of the truth.
_SKETCH = 4096


def _shard_shape(params: dict, expected: int, shards: int, index: int = 0) -> Any:
    """An empty shard ``index`` of ``shards`` of the build: what codes a
    partition's hashes for every shard, and what a shard is built in."""
    return Maplet(
        expected,
        params["false_positive_rate"],
        params["operator"],
        seed=params["seed"],
        fixed_precision=params["fixed_precision"],
        shard=(index, shards),
    )


def _sketch(records: Any, key: KeyFn, value: ValueFn, seed: int) -> Any:
    """The smallest distinct hashes of a partition's keys."""
    import numpy as np

    keys, _ = _keys_values(records, key, value)
    return np.unique(hash_keys(keys, seed=seed))[:_SKETCH]


def _distinct_estimate(sketches: Sequence[Any]) -> int:
    """The distinct count of all partitions' hashes, from their sketches:
    exact below ``_SKETCH`` distinct hashes, else ``(k - 1) / x`` for the
    ``k``-th smallest hash ``x`` as a fraction of the hash range."""
    import numpy as np

    smallest = np.unique(np.concatenate([np.asarray(s, dtype=np.uint64) for s in sketches] or [[]]))
    if len(smallest) < _SKETCH:
        return len(smallest)
    return int((_SKETCH - 1) / (float(smallest[_SKETCH - 1]) / 2.0**64))


def _coded(
    records: Any, key: KeyFn, value: ValueFn, params: dict, expected: int, shards: int, values: Any
) -> Any:
    """A partition as a frame of one row per shard it has keys for: the
    shard, the run of its keys (``Maplet.encode_runs``: 2 to 3 bytes a key)
    and, if ``values``, its values in run order: ``"counts"`` as the bytes
    of an int64 array, ``"objects"`` as a list."""
    import numpy as np
    import pandas as pd

    keys, vals = _keys_values(records, key, value)
    hashes = hash_keys(keys, seed=params["seed"])
    runs, order, bounds = _shard_shape(params, expected, shards).encode_runs(hashes)
    frame = pd.DataFrame(
        {
            "shard": pd.Series([i for i, _ in runs], dtype=np.uint16),
            "run": pd.Series([r for _, r in runs], dtype=object),
        }
    )
    if values:
        cuts = [order[bounds[j] : bounds[j + 1]] for j in range(len(runs))]
        if vals is None:
            vals = np.ones(len(hashes), dtype=np.int64)
        if values == "counts":
            counts = np.asarray(vals, dtype=np.int64)
            frame["v"] = pd.Series([counts[c].tobytes() for c in cuts], dtype=object)
        else:
            frame["v"] = pd.Series([[vals[i] for i in c.tolist()] for c in cuts], dtype=object)
    return frame


def _build_shards(frame: Any, expected: int, params: dict, shards: int, path: Optional[str]) -> list:
    """Builds every shard whose runs ``frame`` holds (the shuffle put all
    of a shard's runs in one partition): ``(index, maplet)``, or
    ``(index, None)`` once saved under ``path``."""
    import itertools

    import numpy as np

    out = []
    which = frame["shard"].to_numpy()
    # One shard at a time, so that only one shard's keys are decoded at once.
    for index in np.unique(which).tolist():
        rows = frame[which == index]
        m = _shard_shape(params, expected, shards, int(index))
        values: Any = None
        if "v" in frame.columns and len(rows):
            if isinstance(rows["v"].iloc[0], (bytes, bytearray, memoryview)):
                values = np.concatenate([np.frombuffer(b, dtype=np.int64) for b in rows["v"]])
            else:
                values = list(itertools.chain.from_iterable(rows["v"]))
        m.batch_insert_runs(rows["run"].tolist(), values)
        del rows, values
        if path is None:
            out.append((int(index), m))
        else:
            write_shard(path, int(index), m)
            out.append((int(index), None))
    return out


def _build_sharded(
    collection: Any, key: KeyFn, value: ValueFn, params: dict, shards: int, path: Optional[str]
) -> Any:
    import os

    import dask

    params = dict(params, seed=params["seed"] if params["seed"] is not None else Maplet(1, 0.5).seed)
    # Counting ones needs no value column. Counts travel as the bytes of
    # int64 arrays, through Dask's fast (Arrow) shuffle; other values are
    # Python objects, shuffled pickled, as they are.
    counter = isinstance(params["operator"], CounterOperator)
    values: Any = "counts" if counter else "objects"
    if counter and value is None:
        values = None
    parts = list(collection.to_delayed())
    if path is not None:
        path = os.fspath(path)
        make_directory(path)
    expected = params["expected_items"]
    if expected is None and parts:
        expected = _estimate(parts, key, value, params["seed"])
    if not parts:
        empty = ShardedMaplet(
            expected or 1,
            params["false_positive_rate"],
            params["operator"],
            shards=shards,
            seed=params["seed"],
            fixed_precision=params["fixed_precision"],
        )
        if path is None:
            return empty
        empty.save(path)
        return _open_saved(path, params["operator"])
    with dask.config.set({"dataframe.convert-string": False}):
        try:
            return _shuffle_and_build(parts, key, value, values, params, expected, shards, path)
        except MapletOverflowError as e:
            if params["expected_items"] is None or "grew past" not in str(e):
                raise
    # expected_items was far below the truth: a shard outgrew the bits its
    # keys were sent with. Built again at the measured size.
    estimate = _estimate(parts, key, value, params["seed"])
    with dask.config.set({"dataframe.convert-string": False}):
        return _shuffle_and_build(parts, key, value, values, params, max(estimate, expected), shards, path)


def _estimate(parts: list, key: KeyFn, value: ValueFn, seed: int) -> int:
    """The distinct count of the partitions' keys, from a sketch of each
    (a pass over the collection of its own), with room for its error."""
    import dask
    from dask import delayed

    sketch = delayed(_sketch, pure=True)
    (estimate,) = dask.compute(delayed(_distinct_estimate)([sketch(p, key, value, seed) for p in parts]))
    return max(1, int(estimate * 1.05) + 16)


def _shuffle_and_build(
    parts: list,
    key: KeyFn,
    value: ValueFn,
    values: Any,
    params: dict,
    expected: int,
    shards: int,
    path: Optional[str],
) -> Any:
    import dask
    import dask.dataframe as dd
    import numpy as np
    import pandas as pd
    from dask import delayed

    meta = pd.DataFrame({"shard": pd.Series(dtype=np.uint16), "run": pd.Series(dtype=object)})
    if values:
        meta["v"] = pd.Series(dtype=object)
    code = delayed(_coded, pure=True)
    coded = dd.from_delayed(
        [code(p, key, value, params, expected, shards, values) for p in parts], meta=meta, verify_meta=False
    )
    method = "tasks" if values == "objects" else params["shuffle_method"]
    shuffled = coded.shuffle(
        "shard",
        npartitions=min(shards, max(1, coded.npartitions)),
        ignore_index=True,
        shuffle_method=method,
    )
    build_part = delayed(_build_shards, pure=True)
    built = [build_part(p, expected, params, shards, path) for p in shuffled.to_delayed()]
    (results,) = dask.compute(built)
    found = {i: m for part in results for i, m in part}
    maplets = []
    for i in range(shards):
        if i in found:
            maplets.append(found[i])
            continue
        # A shard no record hashed to.
        m = _shard_shape(params, expected, shards, i)
        if path is not None:
            write_shard(path, i, m)
        maplets.append(m)
    if path is None:
        return ShardedMaplet.from_shards(maplets)
    write_manifest(path, shards)
    return _open_saved(path, params["operator"])


def _open_saved(path: str, operator: Any) -> Any:
    """The sharded maplet saved under ``path``: memory-mapped if local."""
    mmap = remote_location(path) is None
    return ShardedMaplet.load(path, operator, mmap=mmap, allow_pickle=True)


#: The largest table ``shards="auto"`` builds by tree merge.
_TREE_MERGE_BYTES = 64 << 20

#: The largest shard table ``shards="auto"`` builds. A shard is built from
#: its keys decoded at about 16 bytes each, ten times its table: small
#: shards keep that a small part of a worker's memory.
_SHARD_BYTES = 2 << 20


def _auto_shards(params: dict) -> Optional[int]:
    """``None`` (tree merge) when the whole table is small, else a number of
    shards of at most ``_SHARD_BYTES`` each."""
    n = params["expected_items"]
    if n is None:
        return 64
    whole = Maplet(
        n, params["false_positive_rate"], params["operator"], fixed_precision=params["fixed_precision"]
    ).stats()
    if whole.memory_usage <= _TREE_MERGE_BYTES:
        return None
    shards = 2
    while shards < 1 << 16 and whole.memory_usage / shards > _SHARD_BYTES:
        shards *= 2
    return shards


def _merge_all(maplets: Sequence[Any]) -> Any:
    return merge_maplets(maplets)


def build(
    collection: Any,
    *,
    key: KeyFn = None,
    value: ValueFn = None,
    expected_items: Optional[int] = None,
    false_positive_rate: float,
    operator: Optional[Any] = None,
    seed: Optional[int] = None,
    fixed_precision: bool = False,
    split_every: int = 8,
    shards: Union[None, int, str] = "auto",
    path: Optional[Any] = None,
    shuffle_method: Optional[str] = None,
) -> Union[Maplet, ShardedMaplet]:
    """Build a maplet from a ``dask.bag.Bag`` or ``dask.dataframe.DataFrame``.

    Args:
        collection: the records. A Bag's records are keys themselves unless
            ``key`` says how to get one; a DataFrame's rows give their key
            from the column ``key`` (or the index when ``key`` is None).
        key: for a Bag, a function of a record; for a DataFrame, a column name.
        value: what each record inserts: a column name (DataFrame), a function
            of a record (or of a row namedtuple), a constant, or None for 1.
        expected_items: distinct keys expected in the whole collection. A
            sharded build may leave it out: the distinct count is then
            estimated first, in a pass of its own over the collection,
            from a 32 KiB sketch of each partition's hashes. A hint far
            below the truth (a shard grows past 4 times its share) is
            found out, and the build runs again at the measured size.
        false_positive_rate: as for ``Maplet``.
        operator: as for ``Maplet`` (default ``CounterOperator()``).
        seed: hash seed; every partition uses the same one.
        fixed_precision: as for ``Maplet``: merges stay exact even if the
            partitions' maplets grow.
        split_every: how many maplets each merge step of a tree merge
            combines.
        shards: a power of two: build a ``ShardedMaplet`` of that many
            shards by shuffling runs of each shard's keys; ``None``: tree merge into one
            ``Maplet``; ``"auto"``: tree merge when the whole table takes at
            most 64 MiB, else shards of at most 2 MiB each.
        path: a sharded build saves its shards there (a directory every
            worker can write, created if missing, or an fsspec URL such as
            ``s3://bucket/counts``) and returns them (memory-mapped if
            local); without it the shards come back to the client.
        shuffle_method: how a sharded build shuffles its runs: Dask's
            ``"p2p"`` or ``"tasks"`` (None: Dask's default, P2P on a
            distributed cluster). Values that are Python objects always
            shuffle as tasks (pickled).

    Returns:
        The merged ``Maplet`` or the ``ShardedMaplet``, computed on the
            current Dask scheduler (a ``dask.distributed.Client`` if one is
            active).

    Examples:
        >>> import dask.bag as db, mappy_python as mappy
        >>> bag = db.from_sequence(["x", "y", "x"], npartitions=2)
        >>> mappy.dask.build(bag, expected_items=10, false_positive_rate=0.01).query("x")
        2
        >>> mappy.dask.build(bag, false_positive_rate=0.01, shards=4).query("x")
        2
    """
    import dask
    from dask import delayed

    if split_every < 2:
        raise ValueError("split_every must be at least 2")
    params = {
        "expected_items": expected_items,
        "false_positive_rate": false_positive_rate,
        "operator": operator if operator is not None else CounterOperator(),
        "seed": seed,
        "fixed_precision": fixed_precision,
        "shuffle_method": shuffle_method,
    }
    # Fail here, not on a worker, for bad parameters.
    Maplet(
        expected_items if expected_items is not None else 1,
        false_positive_rate,
        params["operator"],
        seed=seed,
        fixed_precision=fixed_precision,
    )
    if shards == "auto":
        shards = _auto_shards(params)
    elif shards is not None and (
        isinstance(shards, bool) or not isinstance(shards, int) or shards < 1 or shards & (shards - 1)
    ):
        raise ValueError(f"shards must be a power of two, None or 'auto', got {shards!r}")
    if shards is None and expected_items is None:
        raise TypeError("a tree-merge build needs expected_items; give it, or shards=")
    if shards is None and path is not None:
        raise ValueError("path= is for a sharded build: give shards= too")

    if isinstance(key, str) and not hasattr(collection, "columns"):
        raise TypeError("a column name as key needs a DataFrame; pass a function for a Bag")
    if shards is not None:
        return _build_sharded(collection, key, value, params, shards, path)
    parts: Iterable[Any] = collection.to_delayed()
    if hasattr(collection, "columns"):
        parts = list(parts)
    build_part = delayed(_partition_maplet, pure=True)
    merge = delayed(_merge_all, pure=True)
    level = [build_part(p, key, value, params) for p in parts]
    if not level:
        return Maplet(
            expected_items,
            false_positive_rate,
            params["operator"],
            seed=seed,
            fixed_precision=fixed_precision,
        )
    while len(level) > 1:
        level = [merge(level[i : i + split_every]) for i in range(0, len(level), split_every)]
    (result,) = dask.compute(level[0])
    return result


# ---- querying on Dask ---------------------------------------------------------


@functools.lru_cache(maxsize=8)
def _opened(path: str, stamp: Any, operator: Any) -> Any:
    """The sharded maplet saved at ``path``, opened once per worker process
    (memory-mapped if local); ``stamp``, the manifest as it is now, opens a
    newer save anew."""
    return _open_saved(path, operator)


def _source(src: Any, operator: Any) -> Any:
    if isinstance(src, str):
        return _opened(src, manifest_stamp(src), operator)
    return src


def _answer(records: Any, key: KeyFn, src: Any, operator: Any, column: Optional[str]) -> Any:
    keys, _ = _keys_values(records, key, None)
    answers = _source(src, operator).batch_query(keys)
    if column is None:
        return list(answers)
    import pandas as pd

    out = records.copy()
    out[column] = pd.Series(list(answers), index=records.index, dtype=object)
    return out


def query(
    collection: Any,
    maplet: Any,
    *,
    key: KeyFn = None,
    column: str = "answer",
    operator: Optional[Any] = None,
) -> Any:
    """Answers every record of a Bag or DataFrame from a maplet.

    Args:
        collection: a ``dask.bag.Bag`` (records are keys unless ``key`` is a
            function of one) or a ``dask.dataframe.DataFrame`` (keys from the
            column ``key``, or the index).
        maplet: the directory of a saved ``ShardedMaplet`` (each worker
            memory-maps it, once per process: nothing is shipped), an fsspec
            URL of one (each worker reads it once), or a ``Maplet`` /
            ``ShardedMaplet`` object (shipped to the workers).
        key: as for ``build``.
        column: the new column of a DataFrame that holds the answers.
        operator: the operator a saved custom-operator maplet needs.

    Returns:
        A lazy Bag of answers in record order, or the DataFrame with the
        answers in ``column``.

    Examples:
        >>> import dask.bag as db, mappy_python as mappy
        >>> counts = mappy.ShardedMaplet(100, 0.01, shards=2)
        >>> counts.batch_insert(["x", "x", "y"])
        >>> mappy.dask.query(db.from_sequence(["x", "y", "z"]), counts).compute()
        [2, 1, None]
    """
    import os

    from dask import delayed

    if isinstance(key, str) and not hasattr(collection, "columns"):
        raise TypeError("a column name as key needs a DataFrame; pass a function for a Bag")
    src: Any = maplet
    if isinstance(maplet, (str, os.PathLike)):
        src = os.fspath(maplet)
        if remote_location(src) is None:
            src = os.path.abspath(local_path(src))
        _source(src, operator)  # a bad directory fails here, not on a worker
    else:
        src = delayed(maplet)  # one copy in the graph, not one per partition
    if hasattr(collection, "columns"):
        meta = collection._meta.copy()
        meta[column] = _object_series()
        return collection.map_partitions(_answer, key, src, operator, column, meta=meta)
    return collection.map_partitions(_answer, key, src, operator, None)


def _object_series() -> Any:
    import pandas as pd

    return pd.Series(dtype=object)
