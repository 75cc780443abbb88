"""What README.md shows works as written: its Python snippets run and print
what they say, its two commands are the Makefile's, and its Rust example is
the crate documentation's, which `cargo test` runs as a doctest."""

import contextlib
import io
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()
BLOCKS = re.findall(r"```python\n(.*?)```", README, flags=re.S)
CORE_DOCS = ROOT / "crates" / "mappy-core" / "src" / "lib.rs"

# What each snippet must print, keyed by a line that identifies the snippet.
EXPECTED = {
    'mappy.Maplet.load("counts.maplet")': [(r"^(\d+)\n$", lambda n: int(n) >= 42)],
}


def snippet_id(code):
    for marker in EXPECTED:
        if marker in code:
            return marker
    return code.strip().splitlines()[-1][:60]


def run(code):
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code, "<README>", "exec"), {"__name__": "__main__"})
    return out.getvalue()


def section(title):
    start = README.index(f"\n## {title}\n")
    end = README.find("\n## ", start + 1)
    return README[start : end if end > 0 else None]


def test_readme_has_every_promised_snippet():
    # The quick start comes first (tests/wheel_check.py runs it from each wheel).
    assert BLOCKS and "Maplet(" in BLOCKS[0]
    for marker in EXPECTED:
        assert any(marker in b for b in BLOCKS), marker
    commands = section("Two commands")
    assert re.search(r"^make demo +# ", commands, re.M) and re.search(r"^make test +# ", commands, re.M)
    kmers = section("Counting k-mers from the command line")
    assert "mappy kmers count -k 21" in kmers and "mappy kmers query" in kmers
    assert re.search(r"```rust\n.*use mappy_core::", section("Rust"), re.S)
    for page in re.findall(r"\]\((docs/[\w.-]+\.md)(?:#[\w-]+)?\)", README):
        assert (ROOT / page).is_file(), page


def test_the_two_commands_are_make_targets():
    makefile = (ROOT / "Makefile").read_text()
    for target in ("demo", "test"):
        assert re.search(rf"^{target}:", makefile, re.M), target


@pytest.mark.parametrize("code", BLOCKS, ids=snippet_id)
def test_snippet_runs_and_prints_what_it_says(code, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # snippets that save files write them here
    printed = run(code)
    for pattern, ok in EXPECTED.get(snippet_id(code), []):
        match = re.search(pattern, printed)
        assert match, f"{pattern!r} not in output:\n{printed}"
        assert ok(match.group(1)), f"{match.group(0)!r} is not what the README promises"


def crate_doc_examples():
    """The code blocks of mappy-core's crate documentation (its `//!` lines)."""
    lines = [line for line in CORE_DOCS.read_text().splitlines() if line.startswith("//!")]
    doc = "\n".join(re.sub(r"^//! ?", "", line) for line in lines) + "\n"
    return re.findall(r"^```(\w*)\n(.*?)^```", doc, flags=re.S | re.M)


def test_the_rust_example_is_the_crate_doctest():
    """The README's Rust block is (a part of) the crate documentation's
    example: `cargo test -p mappy-core` compiles and runs it, so it cannot
    drift from the code."""
    (readme_rust,) = re.findall(r"```rust\n(.*?)```", README, flags=re.S)
    doctests = [code for info, code in crate_doc_examples() if info in ("", "rust")]
    assert any(readme_rust in code for code in doctests), (
        f"the README's Rust example is not in {CORE_DOCS.relative_to(ROOT)}'s crate docs"
    )
