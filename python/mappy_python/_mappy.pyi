"""Type stubs for the native module ``mappy_python._mappy``."""

from os import PathLike
from typing import (
    Any,
    Callable,
    Generic,
    Iterable,
    Iterator,
    List,
    NoReturn,
    Optional,
    Sequence,
    SupportsIndex,
    Tuple,
    TypeVar,
    Union,
    final,
    overload,
)

import numpy as np
import numpy.typing as npt
from typing_extensions import Self, disjoint_base

__version__: str
__all__ = [
    "MapletError",
    "InvalidParameterError",
    "InvalidValueError",
    "MapletOverflowError",
    "MemoryLimitError",
    "IncompatibleMapletsError",
    "CorruptDataError",
    "ReadOnlyError",
    "UnsafeDataError",
    "__version__",
    "Maplet",
    "Stats",
    "CounterOperator",
    "MaxOperator",
    "MinOperator",
    "SetOperator",
    "VectorOperator",
    "CustomOperator",
    "merge",
    "count_kmers",
    "count_kmers_to_file",
    "canonical_kmer",
    "query_kmers",
    "_answer_lines",
    "_panic_for_tests",
    "hash_keys",
    "shard_indices",
    "concat_shards",
    "_write_manifest",
    "_read_manifest",
    "_file_checksum",
    "_manifest_text",
    "_parse_manifest",
    "_shard_file",
    "_checksum_of",
    "_MANIFEST",
    "_CHECKSUM_LEN",
]

_Key = Union[str, bytes, bytearray, memoryview, int]

class MapletError(Exception):
    """Base class of every error a maplet raises."""

class InvalidParameterError(MapletError, ValueError):
    """A constructor or method argument is out of range."""

class InvalidValueError(MapletError, ValueError):
    """A value the maplet's operator cannot store or merge."""

class MapletOverflowError(MapletError, OverflowError):
    """A count that would pass the range of a signed 64-bit integer."""

class MemoryLimitError(MapletError, MemoryError):
    """The operation would take the maplet past its memory limit."""

class IncompatibleMapletsError(MapletError, ValueError):
    """Maplets built with different operators, parameters or seeds."""

class CorruptDataError(MapletError, ValueError):
    """Saved maplet data that is truncated, damaged or of another version."""

class ReadOnlyError(MapletError):
    """A write to a memory-mapped (read-only) maplet."""

class UnsafeDataError(MapletError, ValueError):
    """Saved data holding pickled values, refused unless ``allow_pickle=True``."""

@final
class CounterOperator:
    """Adds counts: a query never answers less than the true total.

    Counts are 0 or more and ``delete(key, n)`` refuses an ``n`` above the
    stored count. ``signed=True`` allows both, and answers are then
    two-sided (a colliding key's negative count can pull one below the truth).
    """

    def __new__(cls, signed: bool = False) -> Self: ...
    @property
    def signed(self) -> bool:
        """Whether negative counts are allowed."""
    def __reduce__(self) -> tuple[Any, tuple[bool]]: ...

@final
class MaxOperator:
    """Keeps the largest value: a query never answers less than the true maximum."""

    def __new__(cls) -> Self: ...

@final
class MinOperator:
    """Keeps the smallest value: a query never answers more than the true minimum."""

    def __new__(cls) -> Self: ...

@final
class SetOperator:
    """Unions sets; queries answer a frozenset never smaller than the true set."""

    def __new__(cls) -> Self: ...

@final
class VectorOperator:
    """Adds vectors element by element (NumPy arrays or sequences of numbers)."""

    def __new__(cls) -> Self: ...

@final
class CustomOperator:
    """Merges with a Python function ``fn(old, new)``."""

    def __new__(cls, func: Callable[[Any, Any], Any]) -> Self: ...
    @property
    def func(self) -> Callable[[Any, Any], Any]:
        """The merge function."""

_Operator = Union[CounterOperator, MaxOperator, MinOperator, SetOperator, VectorOperator, CustomOperator]

@final
class Stats:
    """Size and accuracy figures of a maplet."""

    @property
    def item_count(self) -> int:
        """Stored entries (distinct fingerprints)."""
    @property
    def capacity(self) -> int:
        """Home slots (grows by doubling)."""
    @property
    def load_factor(self) -> float:
        """``item_count / capacity``."""
    @property
    def memory_usage(self) -> int:
        """Bytes held by the slot table, the side store and stored Python objects."""
    @property
    def bits_per_item(self) -> float:
        """``memory_usage * 8 / item_count``."""
    @property
    def false_positive_rate(self) -> float:
        """The configured false-positive rate."""
    @property
    def expected_false_positive_rate(self) -> float:
        """The false-positive rate expected now."""
    # Read as a mapping too: ``stats()["load_factor"]``, ``dict(stats())``.
    def __getitem__(self, key: str, /) -> Union[int, float]: ...
    def __len__(self) -> int: ...
    def __iter__(self) -> Iterator[str]: ...
    def __contains__(self, key: object, /) -> bool: ...
    def keys(self) -> list[str]: ...
    def values(self) -> list[Union[int, float]]: ...
    def items(self) -> list[tuple[str, Union[int, float]]]: ...
    def get(self, key: str, default: Optional[Any] = None) -> Any: ...

_V = TypeVar("_V")
_D = TypeVar("_D")

@disjoint_base
class Maplet(Generic[_V]):
    """A space-efficient approximate map from keys to values.

    Generic in its values, which its operator decides: ``Maplet[int]`` for
    a counter (the default), ``Maplet[frozenset[Any]]`` for sets,
    ``Maplet[npt.NDArray[np.float64]]`` for vectors, ``Maplet[Any]`` for
    max, min and custom operators.
    """

    @overload
    def __new__(
        cls,
        expected_items: Optional[int] = None,
        false_positive_rate: Optional[float] = None,
        operator: Optional[CounterOperator] = None,
        *,
        capacity: Optional[int] = None,
        memory_limit_mb: Optional[float] = None,
        seed: Optional[int] = None,
        fixed_precision: bool = False,
        shard: Optional[tuple[int, int]] = None,
    ) -> Maplet[int]: ...
    @overload
    def __new__(
        cls,
        expected_items: Optional[int] = None,
        false_positive_rate: Optional[float] = None,
        operator: SetOperator = ...,
        *,
        capacity: Optional[int] = None,
        memory_limit_mb: Optional[float] = None,
        seed: Optional[int] = None,
        fixed_precision: bool = False,
        shard: Optional[tuple[int, int]] = None,
    ) -> Maplet[frozenset[Any]]: ...
    @overload
    def __new__(
        cls,
        expected_items: Optional[int] = None,
        false_positive_rate: Optional[float] = None,
        operator: VectorOperator = ...,
        *,
        capacity: Optional[int] = None,
        memory_limit_mb: Optional[float] = None,
        seed: Optional[int] = None,
        fixed_precision: bool = False,
        shard: Optional[tuple[int, int]] = None,
    ) -> Maplet[npt.NDArray[np.float64]]: ...
    @overload
    def __new__(
        cls,
        expected_items: Optional[int] = None,
        false_positive_rate: Optional[float] = None,
        operator: Union[MaxOperator, MinOperator, CustomOperator] = ...,
        *,
        capacity: Optional[int] = None,
        memory_limit_mb: Optional[float] = None,
        seed: Optional[int] = None,
        fixed_precision: bool = False,
        shard: Optional[tuple[int, int]] = None,
    ) -> Maplet[Any]: ...
    @overload
    def __new__(
        cls,
        expected_items: Optional[int] = None,
        false_positive_rate: Optional[float] = None,
        operator: Optional[_Operator] = None,
        *,
        capacity: Optional[int] = None,
        memory_limit_mb: Optional[float] = None,
        seed: Optional[int] = None,
        fixed_precision: bool = False,
        shard: Optional[tuple[int, int]] = None,
    ) -> Maplet[Any]:
        """A maplet sized for ``expected_items`` distinct keys at ``false_positive_rate``
        (both needed: ``TypeError`` without them); ``capacity=`` is another name for
        ``expected_items`` (``TypeError`` if both are given). ``shard=(index, count)``
        builds one shard of a ``ShardedMaplet``."""
    def __class_getitem__(cls, item: Any) -> Any: ...
    def insert(self, key: _Key, value: Any, /) -> None:
        """Merges ``value`` into what ``key``'s fingerprint holds."""
    def query(self, key: _Key, /) -> Optional[_V]:
        """The value stored for ``key``, or ``None``."""
    @overload
    def get(self, key: _Key) -> Optional[_V]:
        """The value stored for ``key``, or ``default``, as ``dict.get``."""
    @overload
    def get(self, key: _Key, default: _D) -> Union[_V, _D]: ...
    def contains(self, key: _Key, /) -> bool:
        """Whether ``key``'s fingerprint is present."""
    def delete(self, key: _Key, value: Optional[Any] = None) -> bool:
        """Subtracts a count, or removes ``key``'s entry.

        Keys sharing a fingerprint share an entry: deleting a key that was
        never inserted can remove (or lower) another key's entry, and then
        that key's answer can be below the truth. The guarantee holds as
        long as you delete only what you inserted.
        """
    def batch_insert(self, pairs_or_keys: Iterable[Any], values: Optional[Iterable[Any]] = None) -> None:
        """Inserts many values at once, all or nothing."""
    def batch_insert_hashes(self, hashes: Any, values: Optional[Iterable[Any]] = None) -> None:
        """``batch_insert`` by hashes from ``hash_keys(keys, seed=maplet.seed)``
        (a NumPy uint64 array); ``values=None`` counts 1 each (counters only)."""
    def encode_runs(self, hashes: Any) -> Tuple[List[Tuple[int, bytes]], Any, List[int]]:
        """``hashes`` coded for the shards of a maplet built like this one:
        ``(runs, order, bounds)``, the values of ``runs[i]`` at
        ``order[bounds[i]:bounds[i + 1]]``."""
    def batch_insert_runs(self, runs: Iterable[bytes], values: Optional[Iterable[Any]] = None) -> None:
        """Inserts the keys of runs from ``encode_runs`` for this shard,
        values in run order (``None``: counts, counters only)."""
    @overload
    def batch_query(self, keys: npt.NDArray[Any]) -> Any:
        """The values of many keys, in order (a NumPy array for NumPy keys of a counter)."""
    @overload
    def batch_query(self, keys: Iterable[_Key]) -> List[Optional[_V]]: ...
    def batch_contains(self, keys: Iterable[_Key]) -> Any:
        """Membership of many keys."""
    async def abatch_insert(
        self, pairs_or_keys: Iterable[Any], values: Optional[Iterable[Any]] = None
    ) -> None:
        """``batch_insert`` in a worker thread."""
    async def abatch_query(self, keys: Iterable[_Key]) -> List[Optional[_V]]:
        """``batch_query`` in a worker thread."""
    def clear(self) -> None:
        """Removes everything."""
    def copy(self) -> Maplet[_V]:
        """An independent, writable copy."""
    def __copy__(self) -> Maplet[_V]: ...
    def __deepcopy__(self, memo: Optional[Any] = None) -> Maplet[_V]: ...
    def merge(self, other: Maplet[_V]) -> None:
        """Merges ``other`` into this maplet."""
    def __or__(self, value: Any, /) -> Any: ...
    def __ror__(self, value: Any, /) -> Any: ...
    def stats(self) -> Stats:
        """Size and accuracy figures."""
    def __sizeof__(self) -> int:
        """``stats().memory_usage`` plus the object's own bytes."""
    @property
    def expected_items(self) -> int:
        """The number of distinct keys the maplet was sized for."""
    @property
    def false_positive_rate(self) -> float:
        """The configured false-positive rate."""
    @property
    def capacity(self) -> int:
        """Home slots now."""
    @property
    def seed(self) -> int:
        """The hash seed."""
    @property
    def operator(self) -> _Operator:
        """The merge operator."""
    @property
    def shard(self) -> Optional[tuple[int, int]]:
        """``(index, count)`` for a shard of a sharded maplet, else ``None``."""
    @property
    def read_only(self) -> bool:
        """Whether the maplet is memory-mapped."""
    def to_bytes(self) -> bytes:
        """The maplet in its file format."""
    @classmethod
    def from_bytes(
        cls, data: bytes, operator: Optional[_Operator] = None, *, allow_pickle: bool = False
    ) -> Maplet:
        """A maplet from ``to_bytes()`` output (pickled values need ``allow_pickle=True``)."""
    def save(self, path: Union[str, PathLike[str]]) -> None:
        """Writes the maplet to ``path`` atomically."""
    @classmethod
    def load(
        cls,
        path: Union[str, PathLike[str]],
        operator: Optional[_Operator] = None,
        *,
        mmap: bool = False,
        allow_pickle: bool = False,
    ) -> Maplet:
        """Reads a saved maplet (``mmap=True``: maps it read-only)."""
    def verify(self, *, checksum_only: bool = False) -> None:
        """Checks the maplet from scratch (``checksum_only``: a mapped file's checksum);
        ``CorruptDataError`` if damaged."""
    @staticmethod
    def _restore(
        data: bytes, func: Optional[Callable[[Any, Any], Any]] = None, signed: bool = False
    ) -> Maplet: ...
    def __reduce_ex__(self, protocol: SupportsIndex, /) -> tuple[Any, tuple[Any, ...]]: ...
    def __contains__(self, key: _Key, /) -> bool: ...
    def __getitem__(self, key: _Key, /) -> _V: ...
    def __len__(self) -> int: ...
    def __iter__(self) -> NoReturn:
        """Raises ``TypeError``: a maplet keeps fingerprints, not keys."""
    __hash__: None  # type: ignore[assignment]

def merge(maplets: Iterable[Maplet[_V]]) -> Maplet[_V]:
    """A new maplet merging maplets built alike."""

def count_kmers(
    maplet: Maplet,
    sequences_or_paths: Any,
    k: int,
    canonical: bool = True,
    threads: Optional[int] = None,
) -> dict[str, int]:
    """Counts the k-mers of DNA sequences or FASTA/FASTQ files into a counter maplet."""

def count_kmers_to_file(
    paths: Sequence[Union[str, PathLike[str]]],
    output: Union[str, PathLike[str]],
    k: int,
    expected_items: Optional[int] = None,
    false_positive_rate: float = 0.01,
    *,
    canonical: bool = True,
    threads: Optional[int] = None,
    seed: Optional[int] = None,
    partitions: int = 1,
    tmp_dir: Optional[Union[str, PathLike[str]]] = None,
    progress: Optional[Callable[[str, int, Optional[int]], object]] = None,
) -> dict[str, int]:
    """Counts the k-mers of FASTA/FASTQ files into a new counter maplet saved at ``output``."""

def _panic_for_tests() -> None: ...
def hash_keys(keys: Any, seed: Optional[int] = None) -> Any:
    """The 64-bit hashes of ``keys`` under ``seed``, as a NumPy uint64 array."""

def shard_indices(hashes: Any, count: int) -> Any:
    """The shard of each hash among ``count`` shards, as a NumPy uint32 array."""

def concat_shards(shards: Iterable[Maplet]) -> Maplet:
    """The one ordinary maplet every shard of a sharded maplet, in order, holds."""

def _write_manifest(dir: Union[str, PathLike[str]], count: int) -> None: ...
def _read_manifest(dir: Union[str, PathLike[str]]) -> list[tuple[str, int]]: ...
def _file_checksum(path: Union[str, PathLike[str]]) -> int: ...
def _manifest_text(checksums: list[int]) -> str: ...
def _parse_manifest(text: str) -> list[int]: ...
def _shard_file(index: int) -> str: ...
def _checksum_of(data: bytes) -> Optional[int]: ...

_MANIFEST: str
_CHECKSUM_LEN: int

def canonical_kmer(kmer: str) -> Optional[str]:
    """The canonical form of a k-mer, or ``None``."""

def query_kmers(maplet: Maplet, kmers: list[Union[str, bytes]], canonical: bool = True) -> Any:
    """The counts of k-mers, as a NumPy ``int64`` array (0 for a k-mer never counted)."""

def _answer_lines(
    maplet: Maplet, keys: Union[bytes, list[str]], kmers: bool, canonical: bool
) -> tuple[bytes, int]: ...
