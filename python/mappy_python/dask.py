"""Build one maplet from a Dask collection larger than one machine.

Every partition builds its own maplet on a worker, with the same parameters
and seed, and the maplets are merged pairwise in a tree (each merge is a
linear pass over two sorted tables). Maplets travel between processes
pickled, which costs about their ``stats().memory_usage`` in bytes.

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

from typing import TYPE_CHECKING, Any, Callable, Iterable, Optional, Sequence, Union

if TYPE_CHECKING:
    from ._mappy import Maplet

__all__ = ["build"]

KeyFn = Union[None, str, Callable[[Any], Any]]
ValueFn = Union[None, str, int, float, Callable[[Any], Any]]


def _partition_maplet(
    records: Any,
    key: KeyFn,
    value: ValueFn,
    params: dict,
) -> Any:
    import mappy_python as mappy

    maplet = mappy.Maplet(
        params["expected_items"],
        params["false_positive_rate"],
        params["operator"],
        seed=params["seed"],
        fixed_precision=params["fixed_precision"],
    )
    if hasattr(records, "columns"):  # a pandas DataFrame partition
        keys = records[key].tolist() if isinstance(key, str) else records.index.tolist()
        if value is None:
            values: Sequence[Any] = [1] * len(keys)
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
            values = [1] * len(keys)
        elif callable(value):
            values = [value(r) for r in records]
        else:
            values = [value] * len(keys)
    if keys:
        maplet.batch_insert(keys, values)
    return maplet


def _merge_all(maplets: Sequence[Any]) -> Any:
    import mappy_python as mappy

    return mappy.merge(maplets)


def build(
    collection: Any,
    *,
    key: KeyFn = None,
    value: ValueFn = None,
    expected_items: int,
    false_positive_rate: float,
    operator: Optional[Any] = None,
    seed: Optional[int] = None,
    fixed_precision: bool = False,
    split_every: int = 8,
) -> Maplet:
    """Build a maplet from a ``dask.bag.Bag`` or ``dask.dataframe.DataFrame``.

    Args:
        collection: the records. A Bag's records are keys themselves unless
            ``key`` says how to get one; a DataFrame's rows give their key
            from the column ``key`` (or the index when ``key`` is None).
        key: for a Bag, a function of a record; for a DataFrame, a column name.
        value: what each record inserts: a column name (DataFrame), a function
            of a record (or of a row namedtuple), a constant, or None for 1.
        expected_items: distinct keys expected in the whole collection.
        false_positive_rate: as for ``Maplet``.
        operator: as for ``Maplet`` (default ``CounterOperator()``).
        seed: hash seed; every partition uses the same one.
        fixed_precision: as for ``Maplet``: merges stay exact even if the
            partitions' maplets grow.
        split_every: how many maplets each merge step combines.

    Returns:
        The merged ``Maplet``, computed on the current Dask scheduler (a
            ``dask.distributed.Client`` if one is active).

    Examples:
        >>> import dask.bag as db, mappy_python as mappy
        >>> bag = db.from_sequence(["x", "y", "x"], npartitions=2)
        >>> mappy.dask.build(bag, expected_items=10, false_positive_rate=0.01).query("x")
        2
    """
    import dask
    from dask import delayed

    import mappy_python as mappy

    if split_every < 2:
        raise ValueError("split_every must be at least 2")
    params = {
        "expected_items": expected_items,
        "false_positive_rate": false_positive_rate,
        "operator": operator if operator is not None else mappy.CounterOperator(),
        "seed": seed,
        "fixed_precision": fixed_precision,
    }
    # Fail here, not on a worker, for bad parameters.
    mappy.Maplet(
        expected_items, false_positive_rate, params["operator"], seed=seed, fixed_precision=fixed_precision
    )

    if isinstance(key, str) and not hasattr(collection, "columns"):
        raise TypeError("a column name as key needs a DataFrame; pass a function for a Bag")
    parts: Iterable[Any] = collection.to_delayed()
    if hasattr(collection, "columns"):
        parts = list(parts)
    build_part = delayed(_partition_maplet, pure=True)
    merge = delayed(_merge_all, pure=True)
    level = [build_part(p, key, value, params) for p in parts]
    if not level:
        return mappy.Maplet(
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
