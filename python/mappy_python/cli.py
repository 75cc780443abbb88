"""The ``mappy`` command: build, query, inspect and merge saved maplets, and
count k-mers.

    mappy build OUT [INPUT ...]        keys (and values) from lines, TSV or CSV
    mappy query FILE [KEY ...]         values of keys (or of keys on stdin)
    mappy stats FILE                   size and accuracy figures
    mappy merge OUT IN [IN ...]        one maplet from several
    mappy kmers count -k K -o OUT READS ...
    mappy kmers query FILE [KMER ...]  counts of k-mers (or of k-mers on stdin)

Inputs may be plain or gzip-compressed; ``-`` reads standard input (for a
maplet too); a maplet is written to a file, never to standard output
(``-o -`` is refused). Errors are one line, ``mappy: error: FILE[:LINE]:
message``, exit with status 1 (130 for Ctrl-C) and leave no output file
behind (a maplet is written only when complete, and atomically); an output
that is one of the inputs is refused before anything is written. Usage
errors (an unknown option, a missing argument, a bad value) are argparse's:
the command's usage line, then ``mappy ...: error: message``, status 2.

The two query commands answer keys in batches, and memory-map a saved
counter (or numeric max/min) instead of reading it: a truncated or damaged
file is refused (its checksum is checked), but not every invariant of its
table is (``mappy stats`` reads and checks it all).
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import gzip
import os
import shutil
import stat
import sys
import tempfile
import threading
import time
import zlib
from typing import IO, Callable, Iterator, List, Optional, Sequence, Tuple, TypeVar, Union

import mappy_python as mappy

OPERATORS = {
    "counter": mappy.CounterOperator,
    "max": mappy.MaxOperator,
    "min": mappy.MinOperator,
    "set": mappy.SetOperator,
}

STDIN = "-"
# Errors of reading or writing a file, and of the data in it.
FILE_ERRORS = (OSError, EOFError, zlib.error, ValueError, OverflowError, mappy.MapletError)
T = TypeVar("T")


# The one-line description of ``mappy --help``: plain text, as argparse
# shows it.
DESCRIPTION = "Build, query, inspect and merge saved maplets, and count k-mers."


class CliError(Exception):
    """A user-facing error: printed as ``mappy: error: ...``, exit status 1."""


def describe(e: BaseException) -> str:
    """What went wrong, in words, for an error of ``FILE_ERRORS``."""
    if isinstance(e, UnicodeDecodeError):
        return f"not UTF-8 text (byte {e.object[e.start]:#04x})"
    if isinstance(e, EOFError):
        return "the gzip data is cut short"
    if isinstance(e, zlib.error):
        return f"damaged gzip data ({e})"
    if isinstance(e, gzip.BadGzipFile):
        return f"bad gzip data ({e})"
    text = (e.strerror if isinstance(e, OSError) else None) or str(e)
    # The native module's OSErrors carry their message only.
    text = text.split(" (os error ")[0]
    return text[:1].lower() + text[1:]


@contextlib.contextmanager
def about(name: str) -> Iterator[None]:
    """Turns the file errors raised inside into a ``CliError`` naming ``name``."""
    try:
        yield
    except FILE_ERRORS as e:
        if isinstance(e, BrokenPipeError):
            raise
        raise CliError(f"{name}: {describe(e)}") from None


def display(path: str) -> str:
    return "<stdin>" if path == STDIN else path


def note(text: str) -> None:
    """A line on stderr, if there is one."""
    if sys.stderr is not None:
        print(text, file=sys.stderr)


def emit(text: str) -> None:
    """A line of output."""
    if sys.stdout is None:
        raise CliError("standard output is closed")
    print(text)


def same_file(a: str, b: str) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return os.path.realpath(a) == os.path.realpath(b)


def check_paths(output: Optional[str], inputs: Sequence[str]) -> None:
    """Refuses, before anything is read or written, inputs that are missing
    or folders, stdin twice or closed, and an output that is a folder or an
    input."""
    if list(inputs).count(STDIN) > 1:
        raise CliError("'-' (standard input) is given more than once")
    for p in inputs:
        if p == STDIN:
            if sys.stdin is None:
                raise CliError("<stdin>: standard input is closed")
        elif not os.path.exists(p):
            raise CliError(f"{p}: no such file")
        elif os.path.isdir(p):
            raise CliError(f"{p}: is a directory")
        elif output is not None and same_file(p, output):
            raise CliError(f"{output}: is also an input: write the output to another file")
    if output is not None and os.path.isdir(output):
        raise CliError(f"{output}: is a directory")


def integer(text: str) -> int:
    """`text` as an integer, or argparse's error."""
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None


def positive(text: str) -> int:
    """An argparse type: an integer of at least 1."""
    n = integer(text)
    if n < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {n}")
    return n


def kmer_length(text: str) -> int:
    """An argparse type: a k-mer length, 1 to 32."""
    k = integer(text)
    if not 1 <= k <= 32:
        raise argparse.ArgumentTypeError(f"k must be between 1 and 32, got {k}")
    return k


def rate(text: str) -> float:
    """An argparse type: a false-positive rate, strictly between 0 and 1."""
    try:
        r = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0.0 < r < 1.0:
        raise argparse.ArgumentTypeError(f"must be strictly between 0 and 1, got {text}")
    return r


def output_file(text: str) -> str:
    """An argparse type: the path of a maplet to write; ``-`` is refused (a
    maplet is a binary file written atomically, not a stream)."""
    if text == STDIN:
        raise argparse.ArgumentTypeError(
            "'-': a maplet cannot be written to standard output: give the path of a file"
        )
    return text


class Progress:
    """A one-line progress report on stderr, shown only on a terminal."""

    def __init__(self, label: str, total: Optional[int] = None) -> None:
        self.label = label
        self.total = total
        self.enabled = sys.stderr is not None and sys.stderr.isatty()
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


def open_binary(path: str) -> IO[bytes]:
    """A file, or stdin for ``-``, opened for reading bytes."""
    return sys.stdin.buffer if path == STDIN else open(path, "rb")


def text_lines(path: str) -> Iterator[str]:
    """The lines of a text file, plain or gzip-compressed (``-``: stdin),
    decoded as UTF-8; errors name the file (and the line)."""
    name, n = display(path), 0
    with about(name), open_binary(path) as raw:
        data = gzip.GzipFile(fileobj=raw) if raw.peek(2)[:2] == b"\x1f\x8b" else raw
        for n, line in enumerate(data, 1):
            try:
                text = line.decode("utf-8")
            except UnicodeDecodeError as e:
                raise CliError(f"{name}:{n}: {describe(e)}") from None
            yield text


def parse_value(text: str, operator: str, where: str) -> object:
    if operator == "set":
        return frozenset([text])
    value: object = None
    with contextlib.suppress(ValueError):
        value = int(text)
    if value is None and operator != "counter":
        with contextlib.suppress(ValueError):
            value = float(text)
    if value is None or value != value:  # NaN has no order
        kind = "an integer" if operator == "counter" else "a number"
        raise CliError(f"{where}: value {text!r} is not {kind}")
    if isinstance(value, int) and not -(2**63) <= value < 2**63:
        raise CliError(f"{where}: value {text!r} does not fit in a signed 64-bit integer")
    return value


def records(
    path: str, fmt: str, key_col: int, value_col: Optional[int], operator: str
) -> Iterator[Tuple[str, object]]:
    """(key, value) pairs of a file; the value is 1 without a value column."""
    if operator == "set" and (fmt == "lines" or value_col is None):
        raise CliError("the set operator needs values: use --format tsv or csv with --value-column")
    lines = text_lines(path)
    if fmt == "lines":
        for line in lines:
            line = line.rstrip("\r\n")
            if line:
                yield line, 1
        return
    reader = csv.reader(lines, delimiter="\t" if fmt == "tsv" else ",")
    need = max(key_col, value_col if value_col is not None else 0)
    while True:
        where = f"{display(path)}:{reader.line_num + 1}"
        try:
            row = next(reader, None)
        except csv.Error as e:
            raise CliError(f"{where}: {e}") from None
        if row is None:
            return
        if not row:
            continue
        if len(row) <= need:
            raise CliError(f"{where}: expected at least {need + 1} columns, found {len(row)}")
        value = 1 if value_col is None else parse_value(row[value_col], operator, where)
        yield row[key_col], value


def load(path: str, mmap: bool = False) -> mappy.Maplet:
    """A saved maplet; ``-`` reads it from stdin. Anything but a regular
    file is read as a stream, and refused unless it starts as a maplet.
    With ``mmap``, a regular file of a counter or a numeric max/min maplet
    is memory-mapped, and only its checksum checked (not every invariant of
    its table, as reading it does)."""
    check_paths(None, [path])
    with about(display(path)):
        if path != STDIN and stat.S_ISREG(os.stat(path).st_mode):
            if mmap:
                with contextlib.suppress(mappy.InvalidParameterError):  # not a mappable operator
                    mapped = mappy.Maplet.load(path, mmap=True)
                    mapped.verify(checksum_only=True)
                    return mapped
            return mappy.Maplet.load(path)
        with open_binary(path) as f:
            head = f.read(8)
            if head != b"MAPPYMAP":
                raise ValueError("not a maplet file")
            return mappy.Maplet.from_bytes(head + f.read())


def save(maplet: mappy.Maplet, path: str) -> None:
    """Saves ``maplet`` at ``path``, a failure as an error naming the path."""
    with about(path):
        maplet.save(path)


def in_thread(work: Callable[[], T]) -> T:
    """``work()`` in a thread of its own, so that the main thread sees Ctrl-C
    at once even while native code runs (``main`` then ends the process)."""
    result: list = []

    def run() -> None:
        try:
            result.append((True, work()))
        except BaseException as e:  # handed to the main thread
            result.append((False, e))

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    while worker.is_alive():
        worker.join(0.05)
    ok, value = result[0]
    if not ok:
        raise value
    return value


def cmd_build(args: argparse.Namespace) -> None:
    inputs = args.inputs or [STDIN]
    check_paths(args.output, inputs)
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
    if count == 0:
        raise CliError(f"{', '.join(map(display, inputs))}: no records to build a maplet from")
    save(maplet, args.output)
    note(f"{args.output}: {count:,} records, {len(maplet):,} entries")


# Keys are answered in batches: arguments this many at a time, stdin this
# many bytes at a time (whole lines; as much as is there, so that keys typed
# at a terminal are answered line by line).
BATCH_KEYS = 65_536
BATCH_BYTES = 1 << 20


def key_batches(args_keys: Sequence[str]) -> Iterator[Tuple[Union[bytes, List[str]], str, int]]:
    """Batches of the keys given, or else of those on stdin: (keys, where,
    first), ``keys`` a list of keys or bytes of whole lines, ``first`` the
    number of the first line (or argument) in it, from 1."""
    if args_keys:
        for start in range(0, len(args_keys), BATCH_KEYS):
            yield list(args_keys[start : start + BATCH_KEYS]), "argument", start + 1
        return
    check_paths(None, [STDIN])
    name, line = display(STDIN), 1
    with about(name):
        raw = sys.stdin.buffer
        data = gzip.GzipFile(fileobj=raw) if raw.peek(2)[:2] == b"\x1f\x8b" else raw
    rest: List[bytes] = []
    while True:
        with about(name):
            block = data.read1(BATCH_BYTES)
        cut = block.rfind(b"\n") + 1
        if block and not cut:
            rest.append(block)  # no whole line yet
            continue
        chunk = b"".join([*rest, block[:cut]]) if block else b"".join(rest)
        rest = [block[cut:]] if block and cut < len(block) else []
        if chunk:
            yield chunk, name, line
            line += chunk.count(b"\n")
        if not block:
            return


def key_at(keys: Union[bytes, List[str]], index: int) -> str:
    """The ``index``-th line (or key) of a batch, as text; ``CliError`` if
    the line is not UTF-8."""
    if isinstance(keys, list):
        return keys[index]
    line = keys.split(b"\n")[index].rstrip(b"\r")
    try:
        return line.decode("utf-8")
    except UnicodeDecodeError as e:
        raise CliError(describe(e)) from None


def not_a_kmer(kmer: str) -> str:
    return f"{kmer!r} is not a k-mer of A, C, G and T (at most 32 long)"


def write(text: bytes, out: List[Optional[IO[bytes]]]) -> None:
    """Output, in one piece; ``out`` holds stdout's byte stream once known."""
    if not text:
        return
    if not out:
        if sys.stdout is None:
            raise CliError("standard output is closed")
        sys.stdout.flush()
        out.append(sys.stdout.buffer)
    stream = out[0]
    assert stream is not None
    stream.write(text)
    if sys.stdout.isatty():
        stream.flush()


def answer_keys(maplet: mappy.Maplet, args_keys: Sequence[str], kmers: bool, canonical: bool) -> None:
    """Prints ``KEY<TAB>VALUE`` for every key, a batch at a time; a key that
    is not UTF-8 (or not a k-mer) is an error naming its line, after the
    answers of the keys before it."""
    out: List[Optional[IO[bytes]]] = []
    for keys, where, first in key_batches(args_keys):
        text, bad = mappy._mappy._answer_lines(maplet, keys, kmers, canonical)
        write(text, out)
        if bad >= 0:
            place = where if where == "argument" else f"{where}:{first + bad}"
            try:
                key = key_at(keys, bad)
            except CliError as e:
                raise CliError(f"{place}: {e}") from None
            raise CliError(f"{place}: {not_a_kmer(key)}")


def load_for_keys(path: str, keys: Sequence[str]) -> mappy.Maplet:
    if path == STDIN and not keys:
        raise CliError("<stdin>: the maplet is read from stdin: give the keys as arguments")
    return load(path, mmap=True)


def cmd_query(args: argparse.Namespace) -> None:
    maplet = load_for_keys(args.file, args.keys)
    answer_keys(maplet, args.keys, kmers=False, canonical=False)


def cmd_stats(args: argparse.Namespace) -> None:
    for name, value in load(args.file).stats().items():
        emit(f"{name}\t{value:.6g}" if isinstance(value, float) else f"{name}\t{value}")


def cmd_merge(args: argparse.Namespace) -> None:
    check_paths(args.output, args.inputs)
    maplets = [load(p) for p in args.inputs]
    merged = mappy.merge(maplets)
    save(merged, args.output)


def cmd_kmers_count(args: argparse.Namespace) -> None:
    check_paths(args.output, args.reads)
    progress = Progress("reading k-mers")
    labels = {"reading": "reading k-mers", "counting": "counting parts", "saving": "saving"}

    def report(stage: str, done: int, total: Optional[int]) -> None:
        progress.label, progress.total = labels.get(stage, stage), total
        progress.update(done)

    # The count is written in a private folder beside the output (with its
    # scratch files), moved into place only when complete, and the folder is
    # removed whatever happens: no partial output, even on Ctrl-C.
    # Scratch files go there too, or in a private folder in --tmp-dir.
    with about(args.output):
        folder = tempfile.mkdtemp(
            prefix=f".{os.path.basename(args.output)}.", dir=os.path.dirname(args.output) or "."
        )
    scratch = None
    try:
        if args.tmp_dir is not None:
            with about(args.tmp_dir):
                scratch = tempfile.mkdtemp(prefix=f".{os.path.basename(args.output)}.", dir=args.tmp_dir)
        out = os.path.join(folder, os.path.basename(args.output))
        reads = ["/dev/stdin" if p == STDIN else p for p in args.reads]

        def count() -> dict:
            return mappy.count_kmers_to_file(
                reads,
                out,
                args.k,
                args.expected_items,
                args.rate,
                canonical=not args.no_canonical,
                threads=args.threads,
                seed=args.seed,
                partitions=args.partitions,
                tmp_dir=scratch,
                progress=report if progress.enabled else None,
            )

        try:
            stats = in_thread(count)
        except OSError as e:
            # Writing the output or the scratch files beside it.
            raise CliError(f"{args.output}: {describe(e)}") from None
        except mappy.MapletError as e:
            # "invalid parameter: READS: ...": the file first, as <stdin> for stdin.
            text = str(e).replace("/dev/stdin", display(STDIN))
            rest = text.partition(": ")[2]
            named = any(rest.startswith(f"{display(p)}:") for p in args.reads)
            raise CliError(rest if named else text) from None
        finally:
            progress.close()
        if stats["sequences"] == 0:
            raise CliError(f"{', '.join(map(display, args.reads))}: no sequences to count")
        with about(args.output):
            os.replace(out, args.output)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)
    note(
        f"{args.output}: {stats['kmers']:,} k-mers from {stats['sequences']:,} sequences, "
        f"{stats['distinct']:,} distinct"
    )
    if args.expected_items is not None and stats["expected_items"] != args.expected_items:
        note(
            f"note: more distinct k-mers than --expected-items {args.expected_items:,}: "
            f"the maplet was built for {stats['expected_items']:,}"
        )


def cmd_kmers_query(args: argparse.Namespace) -> None:
    maplet = load_for_keys(args.file, args.kmers)
    answer_keys(maplet, args.kmers, kmers=True, canonical=not args.no_canonical)


def parser() -> argparse.ArgumentParser:
    """The command line. Each command's parser is its namespace's ``parser``,
    for errors found after parsing."""
    p = argparse.ArgumentParser(prog="mappy", description=DESCRIPTION)
    p.add_argument("--version", action="version", version=f"mappy {mappy.__version__}")
    sub = p.add_subparsers(dest="command", required=True)

    def sizing(q: argparse.ArgumentParser, expected: Optional[int]) -> None:
        q.add_argument("--rate", type=rate, default=0.01, help="false-positive rate (default 0.01)")
        q.add_argument(
            "--expected-items",
            type=positive,
            default=expected,
            help=f"distinct keys expected (default {expected:,}; the maplet grows past it)"
            if expected is not None
            else "distinct k-mers expected, a hint (default: none, the count finds its size)",
        )
        q.add_argument("--seed", type=int, default=None, help="hash seed")

    b = sub.add_parser(
        "build",
        help="build a maplet from keys (and values)",
        description="Build a maplet from lines, TSV or CSV.",
    )
    b.add_argument("output", type=output_file, help="the maplet file to write")
    b.add_argument("inputs", nargs="*", default=[], help="input files, plain or .gz ('-' or none: stdin)")
    b.add_argument(
        "--format",
        choices=["lines", "tsv", "csv"],
        default="lines",
        help="input format (default: one key per line)",
    )
    b.add_argument(
        "--key-column", type=positive, default=1, help="1-based key column for tsv/csv (default 1)"
    )
    b.add_argument(
        "--value-column",
        type=positive,
        default=None,
        help="1-based value column (default: each record counts 1)",
    )
    b.add_argument(
        "--operator", choices=sorted(OPERATORS), default="counter", help="merge operator (default counter)"
    )
    sizing(b, 1_000_000)
    b.set_defaults(run=cmd_build, parser=b)

    q = sub.add_parser(
        "query", help="print the values of keys", description="Print KEY<TAB>VALUE; '-' for an absent key."
    )
    q.add_argument("file")
    q.add_argument("keys", nargs="*", default=[], help="keys (default: one per line on stdin)")
    q.set_defaults(run=cmd_query, parser=q)

    s = sub.add_parser(
        "stats", help="print size and accuracy figures", description="Print size and accuracy figures."
    )
    s.add_argument("file")
    s.set_defaults(run=cmd_stats, parser=s)

    m = sub.add_parser(
        "merge",
        help="merge maplets built with the same parameters",
        description="Merge maplets built with the same parameters into one.",
    )
    m.add_argument("output", type=output_file, help="the maplet file to write")
    m.add_argument("inputs", nargs="+", help="the maplets to merge ('-': one from stdin)")
    m.set_defaults(run=cmd_merge, parser=m)

    k = sub.add_parser(
        "kmers",
        help="count and query k-mers of DNA sequences",
        description="Count the k-mers of DNA sequences into a maplet, and query their counts.",
    )
    ksub = k.add_subparsers(dest="command", required=True)
    kc = ksub.add_parser(
        "count",
        help="count k-mers of FASTA/FASTQ files (plain or .gz)",
        description="Count the k-mers (canonical by default) of FASTA or FASTQ files into a maplet file.",
    )
    kc.add_argument("-k", type=kmer_length, required=True, help="k-mer length, 1 to 32")
    kc.add_argument("-o", "--output", type=output_file, required=True, help="the maplet file to write")
    kc.add_argument("reads", nargs="+", help="FASTA or FASTQ files, plain or .gz")
    kc.add_argument("--no-canonical", action="store_true", help="count k-mers as read, not canonical")
    kc.add_argument("--threads", type=positive, default=None, help="worker threads (default: all cores)")
    kc.add_argument(
        "--partitions",
        type=positive,
        default=1,
        help="count in this many parts through scratch files beside the output, THREADS parts "
        "at a time, so that only about THREADS/N of the table is in memory (default 1: all in "
        "memory)",
    )
    kc.add_argument(
        "--tmp-dir",
        default=None,
        help="folder for the scratch files of --partitions (default: beside the output); "
        "they are removed whatever happens",
    )
    sizing(kc, None)
    kc.set_defaults(run=cmd_kmers_count, parser=kc)
    kq = ksub.add_parser(
        "query",
        help="print the counts of k-mers",
        description="Print KMER<TAB>COUNT; '-' for an absent k-mer.",
    )
    kq.add_argument("file")
    kq.add_argument("kmers", nargs="*", default=[], help="k-mers (default: one per line on stdin)")
    kq.add_argument("--no-canonical", action="store_true", help="the maplet counts k-mers as read")
    kq.set_defaults(run=cmd_kmers_query, parser=kq)
    return p


def parse(argv: Optional[Sequence[str]]) -> argparse.Namespace:
    """The arguments, with options anywhere among a command's keys: argparse
    takes a list of positionals only before the first option that follows
    it (``mappy kmers query FILE --no-canonical ACGT``)."""
    p = parser()
    args, extra = p.parse_known_args(argv)
    listed = getattr(args, "kmers", None)
    if listed is None:
        listed = getattr(args, "keys", None)
    if extra and listed is not None and not any(x.startswith("-") and x != "-" for x in extra):
        listed.extend(extra)
        extra = []
    if extra:
        # The usage and the name of the command given, not only of mappy.
        getattr(args, "parser", p).error(f"unrecognized arguments: {' '.join(extra)}")
    return args


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Runs the command; every error ends here, as one line on stderr (a
    usage error as argparse prints it, status 2)."""
    try:
        try:
            args = parse(argv)
        except SystemExit as e:  # --help, --version, or a usage error
            return e.code if isinstance(e.code, int) else 0 if e.code is None else 2
        args.run(args)
        if sys.stdout is not None:
            sys.stdout.flush()
    except BrokenPipeError:
        # The reader of our output has gone (``mappy query ... | head -1``):
        # stop quietly, and let the flush at exit write nowhere.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except KeyboardInterrupt:
        if threading.active_count() > 1:
            # Native code still runs in a worker: end the process now.
            os._exit(130)
        return 130
    except (CliError, *FILE_ERRORS, MemoryError) as e:
        message = str(e) if isinstance(e, CliError) else describe(e)
        if sys.stderr is not None:
            print(f"mappy: error: {message}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
