"""Every Python snippet of README.md (which carries the promised README's
snippets unchanged) runs as written and prints what the README says."""

import ast
import asyncio
import contextlib
import io
import re
from pathlib import Path

import pytest
from aiohttp import web

README = Path(__file__).resolve().parent.parent / "README.md"
BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)

# What each snippet must print, keyed by a line that identifies the snippet.
EXPECTED = {
    "Create a maplet for counting with 1% false-positive rate": [
        (r"User 123 count: (\d+)", lambda n: int(n) >= 42),
        (r"User 123 exists: (\w+)", lambda s: s == "True"),
        (r"Load factor: ([\d.]+)%", lambda x: 0 < float(x) < 1),
        (r"Memory usage: (\d+) bytes", lambda n: int(n) > 0),
    ],
    "Create k-mer counter": [(r"ATC appears approximately (\d+) times", lambda n: int(n) >= 3)],
    "Create traffic counter": [(r"192\.168\.1\.1 traffic: (\d+) bytes", lambda n: int(n) >= 1536)],
    "Create maplet with NumPy support": [(r"Retrieved vector: \[1\. 2\. 3\.\]()", lambda _: True)],
    "Create thread-safe maplet": [(r"Total items processed: (\d+)", lambda n: int(n) >= 400)],
    "Create maplet with specific memory constraints": [
        (r"Memory usage: ([\d.]+) MB", lambda x: 0 < float(x) <= 100),
        (r"Load factor: ([\d.]+)%", lambda x: float(x) == 0),
    ],
    "except mappy.MapletError as e:": [(r"Result: (\d+)", lambda n: int(n) == 42)],
    'm.save("users.maplet")': [],
    "mappy.dask.build(words": [(r"rose: (\d+)", lambda n: int(n) >= 3000)],
    "mappy.dask.build(users": [(r"(\d+) \[\d+, \d+, \d+\]", lambda n: int(n) >= 20)],
    "def benchmark_maplet():": [
        (r"Insert rate: (\d+) ops/sec", lambda n: int(n) > 0),
        (r"Query rate: (\d+) ops/sec", lambda n: int(n) > 0),
    ],
}


def snippet_id(code):
    for marker in EXPECTED:
        if marker in code:
            return marker
    return code.strip().splitlines()[-1][:60]


def run(code):
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code, "<README>", "exec"), {"__name__": "__readme__"})
    return out.getvalue()


def test_readme_has_every_promised_snippet():
    assert len(BLOCKS) >= 12
    for marker in EXPECTED:
        assert any(marker in b for b in BLOCKS), marker


@pytest.mark.parametrize("code", [b for b in BLOCKS if "await " not in b], ids=snippet_id)
def test_snippet_runs_and_prints_what_it_says(code, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # snippets that save files write them here
    printed = run(code)
    for pattern, ok in EXPECTED.get(snippet_id(code), []):
        match = re.search(pattern, printed)
        assert match, f"{pattern!r} not in output:\n{printed}"
        assert ok(match.group(1)), f"{match.group(0)!r} is not what the README promises"


async def cache_servers():
    """Two small cache servers on 127.0.0.1, as the snippet's remote side."""
    stores, runners, urls = [], [], []
    for _ in range(2):
        store = {}

        async def get(request, store=store):
            key = request.match_info["key"]
            if key in store:
                return web.json_response(store[key])
            return web.Response(status=404)

        async def post(request, store=store):
            store[request.match_info["key"]] = await request.json()
            return web.Response(status=200)

        app = web.Application()
        app.add_routes([web.get("/cache/{key}", get), web.post("/cache/{key}", post)])
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]
        stores.append(store)
        runners.append(runner)
        urls.append(f"http://127.0.0.1:{port}")
    return stores, runners, urls


def test_distributed_cache_snippet_against_local_servers():
    (code,) = [b for b in BLOCKS if "await " in b]

    async def main():
        stores, runners, urls = await cache_servers()
        try:
            local = code.replace("http://server1:8080", urls[0]).replace("http://server2:8080", urls[1])
            flags = ast.PyCF_ALLOW_TOP_LEVEL_AWAIT
            namespace = {"__name__": "__readme__"}
            result = eval(compile(local, "<README>", "exec", flags=flags), namespace)
            if result is not None:
                await result
            assert namespace["user_data"] == {"name": "John", "age": 30}
            # The set() propagated to both servers.
            assert all(s.get("user:123") == {"name": "John", "age": 30} for s in stores)
            # A fresh cache fetches from the servers.
            fresh = namespace["DistributedCache"](urls)
            assert await fresh.get("user:123") == {"name": "John", "age": 30}
            assert await fresh.get("missing") is None
        finally:
            for r in runners:
                await r.cleanup()

    asyncio.run(main())
