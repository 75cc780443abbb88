"""A sharded maplet's directory, on the local disk or at an fsspec URL.

What the directory holds is the core's to say (``mappy_core::shard``): the
shard files' names, the manifest's name and text, and the checksum each
file ends with all come from the native module. This module only reads
and writes them, in one place for ``ShardedMaplet`` and ``mappy.dask``
alike: a local path (or ``file://`` URL) through the core, any other
fsspec URL through its filesystem.
"""

from __future__ import annotations

import os
from typing import Any, Callable, List, Optional, Tuple

from ._mappy import (
    _CHECKSUM_LEN,
    _MANIFEST,
    CorruptDataError,
    Maplet,
    _checksum_of,
    _file_checksum,
    _manifest_text,
    _parse_manifest,
    _read_manifest,
    _shard_file,
    _write_manifest,
)

__all__ = [
    "local_path",
    "make_directory",
    "manifest_stamp",
    "open_shards",
    "remote_location",
    "write_manifest",
    "write_shard",
]


def remote_location(location: Any) -> Optional[Tuple[Any, str]]:
    """``(filesystem, path)`` for an fsspec URL other than a local file's,
    else ``None`` (a local path, or ``file://``)."""
    if not (isinstance(location, str) and "://" in location):
        return None
    import fsspec

    fs, path = fsspec.core.url_to_fs(location)
    if "file" in (fs.protocol if isinstance(fs.protocol, tuple) else (fs.protocol,)):
        return None
    return fs, path


def local_path(location: Any) -> str:
    """A local path, from a path or a ``file://`` URL."""
    location = os.fspath(location)
    return location[len("file://") :] if location.startswith("file://") else location


def make_directory(location: Any) -> None:
    """Creates the directory at ``location`` (and its parents) if missing."""
    remote = remote_location(location)
    if remote is None:
        os.makedirs(local_path(location), exist_ok=True)
    else:
        remote[0].makedirs(remote[1], exist_ok=True)


def write_shard(location: Any, index: int, maplet: Maplet) -> None:
    """Saves ``maplet`` as shard ``index`` of the directory at ``location``
    (atomically if local)."""
    remote = remote_location(location)
    if remote is None:
        maplet.save(os.path.join(local_path(location), _shard_file(index)))
        return
    fs, root = remote
    with fs.open(f"{root}/{_shard_file(index)}", "wb") as f:
        f.write(maplet.to_bytes())


def write_manifest(location: Any, count: int) -> None:
    """Writes the manifest of the ``count`` shard files already saved at
    ``location``, with the checksum each file ends with (atomically if
    local)."""
    remote = remote_location(location)
    if remote is None:
        _write_manifest(local_path(location), count)
        return
    fs, root = remote
    sums = []
    for i in range(count):
        with fs.open(f"{root}/{_shard_file(i)}", "rb") as f:
            f.seek(-_CHECKSUM_LEN, 2)
            checksum = _checksum_of(f.read(_CHECKSUM_LEN))
        if checksum is None:
            raise CorruptDataError(f"{root}/{_shard_file(i)} is too short to be a maplet")
        sums.append(checksum)
    with fs.open(f"{root}/{_MANIFEST}", "w") as f:
        f.write(_manifest_text(sums))


def manifest_stamp(location: Any) -> Any:
    """What changes when the directory at ``location`` is saved anew: the
    manifest's modification time if local, else its text."""
    remote = remote_location(location)
    if remote is None:
        return os.stat(os.path.join(local_path(location), _MANIFEST)).st_mtime_ns
    fs, root = remote
    return fs.cat_file(f"{root}/{_MANIFEST}")


#: A shard file as read: the checksum it ends with, and what opens it.
_Read = Tuple[Optional[int], Callable[[], Maplet]]


def open_shards(location: Any, operator: Any, *, mmap: bool, allow_pickle: bool) -> List[Maplet]:
    """The shards the manifest at ``location`` names, in order: each one
    ``Maplet.load`` of its file (memory-mapped with ``mmap=True``, local
    only) or, at a URL, ``Maplet.from_bytes`` of it read whole. A missing,
    damaged, stale or misplaced shard raises ``CorruptDataError`` naming
    it."""
    remote = remote_location(location)
    read: Callable[[int], _Read]
    if remote is None:
        files = _read_manifest(local_path(location))
        sums = [checksum for _, checksum in files]

        def read(i: int) -> _Read:
            path = files[i][0]
            return _file_checksum(path), lambda: Maplet.load(
                path, operator, mmap=mmap, allow_pickle=allow_pickle
            )

    else:
        fs, root = remote
        try:
            text = fs.cat_file(f"{root}/{_MANIFEST}").decode("utf-8", "replace")
        except FileNotFoundError:
            raise FileNotFoundError(f"{root}/{_MANIFEST}") from None
        sums = _parse_manifest(text)

        def read(i: int) -> _Read:
            data = fs.cat_file(f"{root}/{_shard_file(i)}")
            return _checksum_of(data), lambda: Maplet.from_bytes(data, operator, allow_pickle=allow_pickle)

    parts = []
    for i, checksum in enumerate(sums):
        name = f"shard {i} ({_shard_file(i)})"
        try:
            found, load = read(i)
        except FileNotFoundError:
            raise CorruptDataError(f"{name} is missing") from None
        except CorruptDataError as e:
            raise CorruptDataError(f"{name}: {e}") from e
        if found != checksum:
            # Only a local file's message names the checksum found.
            seen = f" (checksum {found:016x})" if remote is None and found is not None else ""
            raise CorruptDataError(f"{name} is not the file the manifest names{seen}")
        try:
            m = load()
        except CorruptDataError as e:
            raise CorruptDataError(f"{name}: {e}") from e
        if m.shard != (i, len(sums)) and not (len(sums) == 1 and m.shard is None):
            raise CorruptDataError(f"{name} holds {m.shard}, not shard {i} of {len(sums)}")
        parts.append(m)
    return parts
