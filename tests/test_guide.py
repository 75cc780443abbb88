"""Every code block of the guide (docs/*.md) runs as written.

Each page's ``python`` blocks run in order in one namespace, as a reader
would type them, in a fresh directory holding a link to ``examples/``, as
the main script (``if __name__ == "__main__":`` blocks run); the blocks
assert what they show. The cache in front of remote servers
(concurrency.md) runs against two local servers instead. Each ``console`` block's ``$`` lines run in
bash in that directory, and what they print (stdout and stderr) must be
the lines shown after them (``...`` matches anything, as in doctest).
"""

import asyncio
import contextlib
import doctest
import importlib.util
import io
import os
import re
import subprocess
import sys
import threading
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
BLOCK = re.compile(r"^```(python|console)\n(.*?)^```", re.S | re.M)
# The block that talks to remote servers: test_cache_in_front_of_servers runs it.
SERVERS = ("http://server1:8080", "http://server2:8080")
# Pages of reference that hold no runnable guide code.
NOT_GUIDE = {
    "FORMAT.md",
    "FUZZING.md",
    "perf-notes.md",
    "api.md",
    "RELEASING.md",
    "SCALE.md",
    "design.md",
    "development.md",
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
    namespace = {"__name__": "__main__"}
    for kind, code in BLOCK.findall((DOCS / page).read_text()):
        if kind == "python" and SERVERS[0] in code:
            continue
        if kind == "python":
            with contextlib.redirect_stdout(io.StringIO()):
                exec(compile(code, f"<{page}>", "exec"), namespace)
        else:
            run_console(code, tmp_path)


def example(name):
    """A module of examples/, imported (its main guard keeps it from running)."""
    spec = importlib.util.spec_from_file_location(name, ROOT / "examples" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def serve_caches():
    """Two small cache servers on 127.0.0.1, in a thread of their own: the
    remote side of the cache in concurrency.md. Returns their stores, their
    URLs and a function that stops them."""
    loop = asyncio.new_event_loop()
    threading.Thread(target=loop.run_forever, daemon=True).start()
    stores = [{}, {}]

    start = example("distributed_cache").start_server
    started = [asyncio.run_coroutine_threadsafe(start(s, "/last-login"), loop).result(10) for s in stores]

    def stop():
        for runner, _ in started:
            asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)

    return stores, [url for _, url in started], stop


def test_cache_in_front_of_servers():
    """The script runs as written (asyncio.run(main()) at the end), against
    local servers: what it sets reaches both, a fresh cache fetches it."""
    (code,) = [c for kind, c in BLOCK.findall((DOCS / "concurrency.md").read_text()) if SERVERS[0] in c]
    stores, urls, stop = serve_caches()
    try:
        for name, url in zip(SERVERS, urls):
            code = code.replace(name, url)
        namespace = {"__name__": "__main__"}
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            exec(compile(code, "<concurrency.md>", "exec"), namespace)
        assert out.getvalue() == "1700000600\n"
        assert stores == [{"user:123": 1_700_000_600}] * 2
        fresh = namespace["LastLoginCache"](urls)
        assert asyncio.run(fresh.get("user:123")) == 1_700_000_600
        assert fresh.local.query("user:123") == 1_700_000_600  # kept locally
        assert asyncio.run(fresh.get("user:999")) is None
        down = namespace["LastLoginCache"](["http://127.0.0.1:9", *urls])  # a server that is down
        assert asyncio.run(down.get("user:123")) == 1_700_000_600
    finally:
        stop()
