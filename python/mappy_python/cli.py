"""The ``mappy`` command: build, query, inspect and merge saved maplets, and
count k-mers.

    mappy build OUT [INPUT ...]        keys (and values) from lines, TSV or CSV
    mappy query FILE [KEY ...]         values of keys (or of keys on stdin)
    mappy stats FILE                   size and accuracy figures
    mappy merge OUT IN [IN ...]        one maplet from several
    mappy kmers count -k K -o OUT READS ...
    mappy kmers query FILE KMER ...

Inputs may be plain or gzip-compressed; ``-`` reads standard input. Errors
name the file and line, exit non-zero and leave no output file behind (a
maplet is written only when complete, and atomically).
"""

from __future__ import annotations

import argparse
import csv
import gzip
import io
import os
import sys
import time
from typing import IO, Iterator, List, Optional, Sequence, Tuple

import mappy_python as mappy

OPERATORS = {
    "counter": mappy.CounterOperator,
    "max": mappy.MaxOperator,
    "min": mappy.MinOperator,
    "set": mappy.SetOperator,
}


class CliError(Exception):
    """A user-facing error: printed as ``mappy: error: ...``, exit status 1."""


class Progress:
    """A one-line progress report on stderr, shown only on a terminal."""

    def __init__(self, label: str, total: Optional[int] = None) -> None:
        self.label = label
        self.total = total
        self.enabled = sys.stderr.isatty()
        self.last = 0.0

    def update(self, done: int) -> None:
        now = time.monotonic()
        if not self.enabled or now - self.last < 0.2:
            return
        self.last = now
        if self.total:
            pct = min(100.0, 100.0 * done / self.total)
            bar = "#" * int(pct / 4)
            sys.stderr.write(f"\r{self.label} [{bar:<25}] {pct:5.1f}%\033[K")
        else:
            sys.stderr.write(f"\r{self.label} {done:,}\033[K")
        sys.stderr.flush()

    def close(self) -> None:
        if self.enabled:
            sys.stderr.write("\r\033[K")
            sys.stderr.flush()


def open_text(path: str) -> IO[str]:
    """Opens a plain or gzip-compressed text file, or stdin for ``-``."""
    if path == "-":
        return sys.stdin
    try:
        raw = open(path, "rb")
    except OSError as e:
        raise CliError(f"{path}: {e.strerror}") from None
    if raw.peek(2)[:2] == b"\x1f\x8b" if hasattr(raw, "peek") else path.endswith(".gz"):
        return io.TextIOWrapper(gzip.GzipFile(fileobj=raw), encoding="utf-8")
    return io.TextIOWrapper(raw, encoding="utf-8")


def parse_value(text: str, operator: str, where: str) -> object:
    if operator == "set":
        return frozenset([text])
    try:
        return int(text)
    except ValueError:
        pass
    if operator == "counter":
        raise CliError(f"{where}: value {text!r} is not an integer")
    try:
        return float(text)
    except ValueError:
        raise CliError(f"{where}: value {text!r} is not a number") from None


def records(
    path: str, fmt: str, key_col: int, value_col: Optional[int], operator: str
) -> Iterator[Tuple[str, object]]:
    """(key, value) pairs of a file; the value is 1 without a value column."""
    with open_text(path) as handle:
        name = "<stdin>" if path == "-" else path
        if fmt == "lines":
            if operator == "set":
                raise CliError("the set operator needs values: use --format tsv or csv with --value-column")
            for line in handle:
                line = line.rstrip("\r\n")
                if line:
                    yield line, 1
            return
        reader = csv.reader(handle, delimiter="\t" if fmt == "tsv" else ",")
        for n, row in enumerate(reader, 1):
            if not row:
                continue
            where = f"{name}:{n}"
            need = max(key_col, value_col if value_col is not None else 0)
            if len(row) <= need:
                raise CliError(f"{where}: expected at least {need + 1} columns, found {len(row)}")
            if value_col is None:
                if operator == "set":
                    raise CliError("the set operator needs values: give --value-column")
                value: object = 1
            else:
                value = parse_value(row[value_col], operator, where)
            yield row[key_col], value


def input_size(paths: Sequence[str]) -> Optional[int]:
    try:
        return sum(os.path.getsize(p) for p in paths) if "-" not in paths else None
    except OSError:
        return None


def load(path: str) -> mappy.Maplet:
    try:
        return mappy.Maplet.load(path)
    except FileNotFoundError:
        raise CliError(f"{path}: no such file") from None
    except (OSError, mappy.MapletError) as e:
        raise CliError(f"{path}: {e}") from None


def save(maplet: mappy.Maplet, path: str) -> None:
    """Saves ``maplet`` at ``path``, a failure as an error naming the path."""
    try:
        maplet.save(path)
    except OSError as e:
        raise CliError(f"{path}: {e.strerror or e}") from None


def cmd_build(args: argparse.Namespace) -> None:
    inputs = args.inputs or ["-"]
    for p in inputs:
        if p != "-" and not os.path.exists(p):
            raise CliError(f"{p}: no such file")
    maplet = mappy.Maplet(
        args.expected_items,
        args.rate,
        OPERATORS[args.operator](),
        seed=args.seed,
    )
    value_col = None if args.value_column is None else args.value_column - 1
    progress = Progress("building", total=None)
    batch_keys: List[str] = []
    batch_values: List[object] = []
    count = 0
    for path in inputs:
        for key, value in records(path, args.format, args.key_column - 1, value_col, args.operator):
            batch_keys.append(key)
            batch_values.append(value)
            if len(batch_keys) >= 100_000:
                maplet.batch_insert(batch_keys, batch_values)
                count += len(batch_keys)
                batch_keys, batch_values = [], []
                progress.update(count)
    if batch_keys:
        maplet.batch_insert(batch_keys, batch_values)
        count += len(batch_keys)
    progress.close()
    save(maplet, args.output)
    print(f"{args.output}: {count:,} records, {len(maplet):,} entries", file=sys.stderr)


def keys_from(args_keys: Sequence[str]) -> Iterator[str]:
    if args_keys:
        yield from args_keys
    else:
        for line in sys.stdin:
            line = line.rstrip("\r\n")
            if line:
                yield line


def show(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, frozenset):
        return ",".join(sorted(map(str, value)))
    return str(value)


def cmd_query(args: argparse.Namespace) -> None:
    maplet = load(args.file)
    for key in keys_from(args.keys):
        print(f"{key}\t{show(maplet.query(key))}")


def cmd_stats(args: argparse.Namespace) -> None:
    s = load(args.file).stats()
    for name in (
        "item_count",
        "capacity",
        "load_factor",
        "memory_usage",
        "bits_per_item",
        "false_positive_rate",
        "expected_false_positive_rate",
    ):
        print(f"{name}\t{getattr(s, name)}")


def cmd_merge(args: argparse.Namespace) -> None:
    maplets = [load(p) for p in args.inputs]
    try:
        merged = mappy.merge(maplets)
    except mappy.MapletError as e:
        raise CliError(str(e)) from None
    save(merged, args.output)


def cmd_kmers_count(args: argparse.Namespace) -> None:
    for p in args.reads:
        if not os.path.exists(p):
            raise CliError(f"{p}: no such file")
    if not 1 <= args.k <= 32:
        raise CliError(f"k must be between 1 and 32, got {args.k}")
    if args.partitions < 1:
        raise CliError(f"--partitions must be at least 1, got {args.partitions}")
    progress = Progress("reading k-mers")
    labels = {"reading": "reading k-mers", "counting": "counting parts", "saving": "saving"}

    def report(stage: str, done: int, total: Optional[int]) -> None:
        progress.label, progress.total = labels.get(stage, stage), total
        progress.update(done)

    try:
        stats = mappy.count_kmers_to_file(
            args.reads,
            args.output,
            args.k,
            args.expected_items,
            args.rate,
            canonical=not args.no_canonical,
            threads=args.threads,
            seed=args.seed,
            partitions=args.partitions,
            progress=report if progress.enabled else None,
        )
    except mappy.MapletError as e:
        raise CliError(str(e)) from None
    except OSError as e:
        # Writing the output or the scratch files beside it.
        raise CliError(f"{args.output}: {e.strerror or e}") from None
    finally:
        progress.close()
    print(
        f"{args.output}: {stats['kmers']:,} k-mers from {stats['sequences']:,} sequences, "
        f"{stats['distinct']:,} distinct",
        file=sys.stderr,
    )
    if stats["expected_items"] != args.expected_items:
        print(
            f"note: more distinct k-mers than --expected-items {args.expected_items:,}: "
            f"the maplet was built for {stats['expected_items']:,}",
            file=sys.stderr,
        )


def cmd_kmers_query(args: argparse.Namespace) -> None:
    maplet = load(args.file)
    for kmer in keys_from(args.kmers):
        key = mappy.canonical_kmer(kmer) if not args.no_canonical else kmer.upper()
        if key is None:
            raise CliError(f"{kmer!r} is not a k-mer of A, C, G and T")
        print(f"{kmer}\t{show(maplet.query(key))}")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="mappy", description=__doc__.split("\n\n")[0])
    p.add_argument("--version", action="version", version=f"mappy {mappy.__version__}")
    sub = p.add_subparsers(dest="command", required=True)

    def sizing(q: argparse.ArgumentParser, expected: int) -> None:
        q.add_argument("--rate", type=float, default=0.01, help="false-positive rate (default 0.01)")
        q.add_argument(
            "--expected-items",
            type=int,
            default=expected,
            help=f"distinct keys expected (default {expected:,}; the maplet grows past it)",
        )
        q.add_argument("--seed", type=int, default=None, help="hash seed")

    b = sub.add_parser(
        "build",
        help="build a maplet from keys (and values)",
        description="Build a maplet from lines, TSV or CSV.",
    )
    b.add_argument("output", help="the maplet file to write")
    b.add_argument("inputs", nargs="*", help="input files, plain or .gz ('-' or none: stdin)")
    b.add_argument(
        "--format",
        choices=["lines", "tsv", "csv"],
        default="lines",
        help="input format (default: one key per line)",
    )
    b.add_argument("--key-column", type=int, default=1, help="1-based key column for tsv/csv (default 1)")
    b.add_argument(
        "--value-column", type=int, default=None, help="1-based value column (default: each record counts 1)"
    )
    b.add_argument(
        "--operator", choices=sorted(OPERATORS), default="counter", help="merge operator (default counter)"
    )
    sizing(b, 1_000_000)
    b.set_defaults(run=cmd_build)

    q = sub.add_parser(
        "query", help="print the values of keys", description="Print KEY<TAB>VALUE; '-' for an absent key."
    )
    q.add_argument("file")
    q.add_argument("keys", nargs="*", help="keys (default: one per line on stdin)")
    q.set_defaults(run=cmd_query)

    s = sub.add_parser("stats", help="print size and accuracy figures")
    s.add_argument("file")
    s.set_defaults(run=cmd_stats)

    m = sub.add_parser("merge", help="merge maplets built with the same parameters")
    m.add_argument("output")
    m.add_argument("inputs", nargs="+")
    m.set_defaults(run=cmd_merge)

    k = sub.add_parser("kmers", help="count and query k-mers of DNA sequences")
    ksub = k.add_subparsers(dest="kmers_command", required=True)
    kc = ksub.add_parser("count", help="count k-mers of FASTA/FASTQ files (plain or .gz)")
    kc.add_argument("-k", type=int, required=True, help="k-mer length, 1 to 32")
    kc.add_argument("-o", "--output", required=True, help="the maplet file to write")
    kc.add_argument("reads", nargs="+", help="FASTA or FASTQ files, plain or .gz")
    kc.add_argument("--no-canonical", action="store_true", help="count k-mers as read, not canonical")
    kc.add_argument("--threads", type=int, default=None, help="worker threads (default: all cores)")
    kc.add_argument(
        "--partitions",
        type=int,
        default=1,
        help="count in this many parts through scratch files beside the output, THREADS parts "
        "at a time, so that only about THREADS/N of the table is in memory (default 1: all in "
        "memory)",
    )
    sizing(kc, 10_000_000)
    kc.set_defaults(run=cmd_kmers_count)
    kq = ksub.add_parser("query", help="print the counts of k-mers")
    kq.add_argument("file")
    kq.add_argument("kmers", nargs="*", help="k-mers (default: one per line on stdin)")
    kq.add_argument("--no-canonical", action="store_true", help="the maplet counts k-mers as read")
    kq.set_defaults(run=cmd_kmers_query)
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parser().parse_args(argv)
    try:
        args.run(args)
    except CliError as e:
        print(f"mappy: error: {e}", file=sys.stderr)
        return 1
    except (mappy.MapletError, OverflowError, ValueError, TypeError) as e:
        print(f"mappy: error: {e}", file=sys.stderr)
        return 1
    except BrokenPipeError:
        return 0
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
