"""A maplet split by hash range into shards.

The top bits of a key's hash choose its shard; within the shard the key
sits where it would in one maplet of all the shards' home slots. So a
``ShardedMaplet`` answers every key, inserted or not, exactly as one
``Maplet`` of the same parameters and seed does (as long as no shard has
grown on its own; one that grew is only more precise), and each shard is an
ordinary ``Maplet`` that can be built, saved, memory-mapped and queried on
its own, in another process or on another machine (``mappy.dask.build``
builds each shard on one worker).

>>> import mappy_python as mappy
>>> s = mappy.ShardedMaplet(10_000, 0.01, shards=4)
>>> s.batch_insert(["a", "b", "a"], [1, 1, 1])
>>> s.query("a"), s.query("b"), len(s)
(2, 1, 2)
>>> single = mappy.Maplet(10_000, 0.01)
>>> single.batch_insert(["a", "b", "a"], [1, 1, 1])
>>> s.to_maplet().to_bytes() == single.to_bytes()
True

Saved, a sharded maplet is a directory: one ``.maplet`` file per shard
(``shard-00000.maplet``, ...) and a manifest with each file's checksum
(see ``docs/FORMAT.md``).
"""

from __future__ import annotations

# NumPy is imported where batches need it, so that importing the package
# does not.
import os
from typing import Any, Iterable, Iterator, List, Optional, Sequence, Union

from ._layout import make_directory, open_shards, remote_location, write_manifest, write_shard
from ._mappy import CorruptDataError, Maplet, concat_shards, hash_keys, shard_indices

__all__ = ["ShardedMaplet", "ShardedStats"]

PathLike = Union[str, "os.PathLike[str]"]


class ShardedStats(dict):
    """Figures of a sharded maplet: sums over its shards (``item_count``,
    ``capacity``, ``memory_usage``, ``slots``), ``load_factor`` of the
    whole, ``shards``, and each shard's own ``Stats`` in ``per_shard``.
    Read as a mapping or by attribute.

    Examples:
        >>> import mappy_python as mappy
        >>> mappy.ShardedMaplet(1000, 0.01, shards=2).stats().shards
        2
    """

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None


class ShardedMaplet:
    """A maplet split by hash range into shards.

    ``ShardedMaplet(expected_items, false_positive_rate, operator=None, *,
    shards, seed=None, fixed_precision=False)``: a maplet for
    ``expected_items`` keys in all, split into ``shards``
    shards (a power of two up to 65,536). Every method that takes a key
    routes it to its shard; batches are split by shard and answered in
    order.
    """

    __slots__ = ("_shards", "_seed", "_count")

    def __init__(
        self,
        expected_items: int,
        false_positive_rate: float,
        operator: Optional[Any] = None,
        *,
        shards: int,
        seed: Optional[int] = None,
        fixed_precision: bool = False,
    ) -> None:
        if isinstance(shards, bool) or not isinstance(shards, int):
            raise TypeError("shards must be an int")
        if shards < 1 or shards & (shards - 1) or shards > 1 << 16:
            raise ValueError(f"shards must be a power of two from 1 to 65536, got {shards}")
        parts = [
            Maplet(
                expected_items,
                false_positive_rate,
                operator,
                seed=seed,
                fixed_precision=fixed_precision,
                shard=(i, shards),
            )
            for i in range(shards)
        ]
        self._set(parts)

    def _set(self, parts: List[Maplet]) -> None:
        self._shards = parts
        self._count = len(parts)
        self._seed = parts[0].seed

    @classmethod
    def from_shards(cls, shards: Iterable[Maplet]) -> ShardedMaplet:
        """The sharded maplet whose shards are ``shards``: every shard of
        one sharded maplet (``Maplet(..., shard=(i, n))`` for ``i`` in
        ``range(n)``), in order, with the same parameters and seed.

        Examples:
            >>> import mappy_python as mappy
            >>> parts = [mappy.Maplet(100, 0.01, shard=(i, 2)) for i in range(2)]
            >>> len(mappy.ShardedMaplet.from_shards(parts).shards)
            2
        """
        parts = list(shards)
        if not parts or not all(isinstance(p, Maplet) for p in parts):
            raise TypeError("from_shards() takes a non-empty sequence of Maplets")
        n = len(parts)
        for i, p in enumerate(parts):
            if p.shard != (i, n) and not (n == 1 and p.shard is None):
                raise ValueError(f"shard {i} of {n} expected, found {p.shard}")
            if p.seed != parts[0].seed:
                raise ValueError("the shards have different seeds")
        self = cls.__new__(cls)
        self._set(parts)
        return self

    # ---- routing ----------------------------------------------------------

    @property
    def shards(self) -> Sequence[Maplet]:
        """The shards, in order (a tuple; each is an ordinary ``Maplet``)."""
        return tuple(self._shards)

    @property
    def seed(self) -> int:
        """The hash seed every shard shares."""
        return self._seed

    def shard_of(self, key: Any) -> int:
        """The index of the shard that holds ``key``.

        Examples:
            >>> import mappy_python as mappy
            >>> s = mappy.ShardedMaplet(100, 0.01, shards=4)
            >>> s.shards[s.shard_of("a")].shard[0] == s.shard_of("a")
            True
        """
        return int(shard_indices(hash_keys([key], seed=self._seed), self._count)[0])

    def _split(self, keys: Any) -> tuple:
        """``keys`` as a list or array, their hashes, and each one's shard."""
        import numpy as np

        if not isinstance(keys, (list, np.ndarray)):
            keys = list(keys)
        hashes = hash_keys(keys, seed=self._seed)
        return keys, hashes, shard_indices(hashes, self._count)

    @staticmethod
    def _pick(items: Any, where: Any) -> Any:
        import numpy as np

        if isinstance(items, np.ndarray):
            return items[where]
        return [items[i] for i in where.tolist()]

    # ---- single keys -----------------------------------------------------

    def insert(self, key: Any, value: Any = 1) -> None:
        """Inserts ``value`` under ``key`` in its shard (see ``Maplet.insert``)."""
        self._shards[self.shard_of(key)].insert(key, value)

    def query(self, key: Any) -> Any:
        """The value of ``key`` (``None`` if absent), from its shard."""
        return self._shards[self.shard_of(key)].query(key)

    def get(self, key: Any, default: Any = None) -> Any:
        """The value of ``key``, or ``default`` if absent, as ``dict.get``."""
        value = self.query(key)
        return default if value is None else value

    def contains(self, key: Any) -> bool:
        """Whether ``key``'s fingerprint is present in its shard."""
        return key in self._shards[self.shard_of(key)]

    def __contains__(self, key: Any) -> bool:
        return self.contains(key)

    def __getitem__(self, key: Any) -> Any:
        return self._shards[self.shard_of(key)][key]

    def delete(self, key: Any, value: Any = None) -> bool:
        """``Maplet.delete`` in ``key``'s shard (delete only what you inserted)."""
        return self._shards[self.shard_of(key)].delete(key, value)

    def __len__(self) -> int:
        return sum(len(s) for s in self._shards)

    def __iter__(self) -> Iterator[Any]:
        raise TypeError("a maplet keeps fingerprints, not keys: it cannot be iterated")

    # ---- batches ------------------------------------------------------------

    def batch_insert(self, keys: Any, values: Any = None) -> None:
        """Inserts ``values[i]`` under ``keys[i]`` (``values=None``: a count
        of 1 each for a counter), split by shard. Each shard's part is all
        or nothing; if one shard refuses, the shards before it keep theirs.
        """
        import numpy as np

        keys, hashes, where = self._split(keys)
        if values is not None:
            if not isinstance(values, (list, np.ndarray)):
                values = list(values)
            if len(values) != len(keys):
                raise ValueError(f"{len(keys)} keys but {len(values)} values")
        for i in np.unique(where).tolist():
            sel = np.flatnonzero(where == i)
            part = None if values is None else self._pick(values, sel)
            self._shards[i].batch_insert_hashes(hashes[sel], part)

    def batch_query(self, keys: Any) -> Any:
        """The values of many keys, in order, as ``Maplet.batch_query``
        answers them (a NumPy array for NumPy integer keys of a counter)."""
        return self._gather(keys, "batch_query")

    def batch_contains(self, keys: Any) -> Any:
        """Membership of many keys, in order, as ``Maplet.batch_contains``."""
        return self._gather(keys, "batch_contains")

    def _gather(self, keys: Any, method: str) -> Any:
        import numpy as np

        keys, _, where = self._split(keys)
        out: Any = None
        for i in np.unique(where).tolist():
            sel = np.flatnonzero(where == i)
            got = getattr(self._shards[i], method)(self._pick(keys, sel))
            if out is None:
                array = isinstance(got, np.ndarray)
                out = np.empty(len(keys), dtype=got.dtype) if array else [None] * len(keys)
            if isinstance(out, np.ndarray):
                out[sel] = got
            else:
                for j, v in zip(sel.tolist(), got):
                    out[j] = v
        if out is None:  # no keys
            return getattr(self._shards[0], method)(keys)
        return out

    # ---- the whole ------------------------------------------------------------

    def stats(self) -> ShardedStats:
        """Sums over the shards, and each shard's ``Stats``."""
        per = [s.stats() for s in self._shards]
        items = sum(p.item_count for p in per)
        capacity = sum(p.capacity for p in per)
        return ShardedStats(
            shards=self._count,
            item_count=items,
            capacity=capacity,
            load_factor=items / capacity,
            memory_usage=sum(p.memory_usage for p in per),
            false_positive_rate=per[0].false_positive_rate,
            per_shard=per,
        )

    @property
    def expected_items(self) -> int:
        """The items the whole was sized for."""
        return self._shards[0].expected_items

    @property
    def false_positive_rate(self) -> float:
        """The configured false-positive rate."""
        return self._shards[0].false_positive_rate

    @property
    def read_only(self) -> bool:
        """Whether the shards are memory-mapped."""
        return any(s.read_only for s in self._shards)

    def to_maplet(self) -> Maplet:
        """One ordinary ``Maplet`` holding every shard's entries: it answers
        every key exactly as this sharded maplet does (``concat_shards``)."""
        return concat_shards(self._shards)

    def copy(self) -> ShardedMaplet:
        """An independent, writable copy."""
        return ShardedMaplet.from_shards([s.copy() for s in self._shards])

    def merge(self, other: ShardedMaplet) -> None:
        """Merges ``other`` into ``self`` shard by shard (``Maplet.merge``)."""
        if not isinstance(other, ShardedMaplet):
            raise TypeError("merge() takes a ShardedMaplet")
        if other._count != self._count:
            raise ValueError(f"shard counts differ ({self._count} and {other._count})")
        for a, b in zip(self._shards, other._shards):
            a.merge(b)

    def verify(self, *, checksum_only: bool = False) -> None:
        """``Maplet.verify`` of every shard; ``CorruptDataError`` names the first
        damaged one."""
        for i, s in enumerate(self._shards):
            try:
                s.verify(checksum_only=checksum_only)
            except CorruptDataError as e:
                raise CorruptDataError(f"shard {i}: {e}") from e

    def save(self, directory: PathLike) -> None:
        """Saves every shard to ``directory`` (created if missing) as
        ``shard-NNNNN.maplet``, then the manifest naming their checksums.
        Each file is written atomically; the manifest last, so a directory
        whose save was interrupted is refused on loading, never half-read.
        ``directory`` may be an fsspec URL (``s3://bucket/counts``; needs
        the filesystem's package), written through fsspec.
        """
        make_directory(directory)
        for i, s in enumerate(self._shards):
            write_shard(directory, i, s)
        write_manifest(directory, self._count)

    @classmethod
    def load(
        cls,
        directory: PathLike,
        operator: Optional[Any] = None,
        *,
        mmap: bool = False,
        allow_pickle: bool = False,
    ) -> ShardedMaplet:
        """Opens the sharded maplet saved in ``directory`` (``Maplet.load`` of
        each shard, memory-mapped with ``mmap=True``). A missing, damaged,
        stale or misplaced shard raises ``CorruptDataError`` naming it.
        ``directory`` may be an fsspec URL: each shard is then read whole
        (``mmap=True`` needs a local path).
        """
        remote = remote_location(directory) is not None
        if remote and mmap:
            raise ValueError("mmap=True needs a local directory, not a URL")
        parts = open_shards(directory, operator, mmap=mmap, allow_pickle=allow_pickle)
        if remote:
            return cls.from_shards(parts)
        try:
            return cls.from_shards(parts)
        except ValueError as e:
            raise CorruptDataError(str(e)) from e

    def __reduce__(self) -> tuple:
        return (ShardedMaplet.from_shards, (list(self._shards),))

    def __repr__(self) -> str:
        return (
            f"ShardedMaplet(shards={self._count}, len={len(self)}, "
            f"false_positive_rate={self.false_positive_rate})"
        )
