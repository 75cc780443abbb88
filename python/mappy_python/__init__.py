"""mappy: maplets, space-efficient approximate key-value maps.

A maplet stores, for each key, a short fingerprint and a value, packed in a
quotient-filter slot table. Keys whose fingerprints collide share an entry
whose value the operator merges, so answers err in one direction only (a
count is never too low, a set never too small) and are exact with
probability at least ``1 - false_positive_rate``.

>>> import mappy_python as mappy
>>> m = mappy.Maplet(1000, 0.01, mappy.CounterOperator())
>>> m.insert("user:123", 42)
>>> m.query("user:123")
42
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any

from ._mappy import (
    CorruptDataError,
    CounterOperator,
    CustomOperator,
    IncompatibleMapletsError,
    InvalidParameterError,
    InvalidValueError,
    Maplet,
    MapletError,
    MapletOverflowError,
    MaxOperator,
    MemoryLimitError,
    MinOperator,
    ReadOnlyError,
    SetOperator,
    Stats,
    UnsafeDataError,
    VectorOperator,
    __version__,
    canonical_kmer,
    concat_shards,
    count_kmers,
    count_kmers_to_file,
    hash_keys,
    merge,
    query_kmers,
    shard_indices,
)
from .sharded import ShardedMaplet, ShardedStats

__all__ = [
    "CorruptDataError",
    "CounterOperator",
    "CustomOperator",
    "IncompatibleMapletsError",
    "InvalidParameterError",
    "InvalidValueError",
    "Maplet",
    "MapletError",
    "MapletOverflowError",
    "MaxOperator",
    "MemoryLimitError",
    "MinOperator",
    "ReadOnlyError",
    "SetOperator",
    "ShardedMaplet",
    "ShardedStats",
    "Stats",
    "UnsafeDataError",
    "VectorOperator",
    "__version__",
    "canonical_kmer",
    "concat_shards",
    "count_kmers",
    "count_kmers_to_file",
    "hash_keys",
    "merge",
    "query_kmers",
    "shard_indices",
]

# `stats()` reads as a mapping too: `stats()["load_factor"]`, `dict(stats())`.
Mapping.register(Stats)


def __getattr__(name: str) -> Any:
    # `mappy.dask` imports Dask only when used.
    if name == "dask":
        return importlib.import_module(".dask", __name__)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
