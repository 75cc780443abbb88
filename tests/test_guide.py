"""Every code block of the guide (docs/*.md) runs as written.

Each page's ``python`` blocks run in order in one namespace, as a reader
would type them, in a fresh directory holding a link to ``examples/``; the
blocks assert what they show. Each ``console`` block's ``$`` lines run in
bash in that directory, and what they print (stdout and stderr) must be
the lines shown after them (``...`` matches anything, as in doctest).
"""

import contextlib
import doctest
import io
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
BLOCK = re.compile(r"^```(python|console)\n(.*?)^```", re.S | re.M)
# Pages of reference that hold no runnable guide code.
NOT_GUIDE = {
    "FORMAT.md",
    "FUZZING.md",
    "perf-notes.md",
    "api.md",
    "benchmarks.md",
    "RELEASING.md",
    "SCALE.md",
}
PAGES = sorted(p.name for p in DOCS.glob("*.md") if p.name not in NOT_GUIDE)


def test_every_guide_page_has_code():
    for name in PAGES:
        assert BLOCK.search((DOCS / name).read_text()), f"{name} shows no code"
    assert {"getting-started.md", "guarantees.md", "cli.md", "kmers.md", "dask.md"} <= set(PAGES)


def console_steps(block):
    """(command, expected output) pairs of a console block."""
    steps = []
    for line in block.splitlines():
        if steps and steps[-1][0].endswith("\\") and not steps[-1][1]:
            steps[-1][0] += "\n" + line  # a command continued on the next line
        elif line.startswith("$ "):
            steps.append([line[2:], []])
        else:
            assert steps, f"output before any command: {line!r}"
            steps[-1][1].append(line)
    return [(cmd, "\n".join(out) + "\n" if out else "") for cmd, out in steps]


def run_console(block, cwd):
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}", LC_ALL="C")
    checker = doctest.OutputChecker()
    for cmd, expected in console_steps(block):
        done = subprocess.run(
            ["bash", "-c", cmd], cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        assert checker.check_output(expected, done.stdout, doctest.ELLIPSIS), (
            f"$ {cmd}\nexpected:\n{expected}got:\n{done.stdout}"
        )


@pytest.mark.parametrize("page", PAGES)
def test_guide_page_runs(page, tmp_path, monkeypatch):
    (tmp_path / "examples").symlink_to(ROOT / "examples")
    monkeypatch.chdir(tmp_path)
    namespace = {"__name__": "__guide__"}
    for kind, code in BLOCK.findall((DOCS / page).read_text()):
        if kind == "python":
            with contextlib.redirect_stdout(io.StringIO()):
                exec(compile(code, f"<{page}>", "exec"), namespace)
        else:
            run_console(code, tmp_path)
