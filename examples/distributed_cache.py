"""A local maplet in front of remote cache servers (asyncio + aiohttp).

Starts two small cache servers on 127.0.0.1, then puts a DistributedCache
(as in docs/concurrency.md) in front of them: each user's last-seen time,
kept by a MaxOperator maplet, so that setting a key again keeps the later
time. Values set are answered from the local maplet; a fresh cache fetches
from the servers.

A cache of approximate answers can answer for a key it never saw: at rate
0.01 about 1% of absent keys get another key's value (never a key's own
value wrong the other way: a time at least as late as the truth). Use it
where such an answer is harmless, or check the answer at the source.
"""

import asyncio

import aiohttp
from aiohttp import web

import mappy_python as mappy


class DistributedCache:
    def __init__(self, servers):
        self.servers = servers
        self.local_cache = mappy.Maplet(10_000, 0.01, mappy.MaxOperator())

    async def get(self, key):
        local_value = self.local_cache.query(key)
        if local_value is not None:
            return local_value
        async with aiohttp.ClientSession() as session:
            for server in self.servers:
                try:
                    async with session.get(f"{server}/cache/{key}") as response:
                        if response.status == 200:
                            value = await response.json()
                            self.local_cache.insert(key, value)
                            return value
                except aiohttp.ClientError:
                    continue
        return None

    async def set(self, key, value):
        self.local_cache.insert(key, value)
        async with aiohttp.ClientSession() as session:
            posts = [session.post(f"{server}/cache/{key}", json=value) for server in self.servers]
            for response in await asyncio.gather(*posts, return_exceptions=True):
                if not isinstance(response, BaseException):
                    response.release()


async def start_server(store, route="/cache"):
    """A cache server on 127.0.0.1 holding `store`, at `route`/KEY: returns
    its runner and its URL."""

    async def get(request):
        key = request.match_info["key"]
        return web.json_response(store[key]) if key in store else web.Response(status=404)

    async def post(request):
        store[request.match_info["key"]] = await request.json()
        return web.Response()

    app = web.Application()
    app.add_routes([web.get(route + "/{key}", get), web.post(route + "/{key}", post)])
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return runner, f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"


async def main():
    stores = [{}, {}]
    started = [await start_server(s) for s in stores]
    urls = [url for _, url in started]
    try:
        cache = DistributedCache(urls)
        await cache.set("user:123", 1_700_000_000)
        await cache.set("user:123", 1_700_000_600)  # seen again: the later time stays
        print("local:", await cache.get("user:123"))
        fresh = DistributedCache(urls)
        print("fetched:", await fresh.get("user:123"))
        print("missing:", await fresh.get("user:999"))
        # Batch work off the event loop.
        counts = mappy.Maplet(1000, 0.01, mappy.CounterOperator())
        await counts.abatch_insert([f"page:{i % 10}" for i in range(1000)], [1] * 1000)
        print("page:3 views:", (await counts.abatch_query(["page:3"]))[0])
    finally:
        for runner, _ in started:
            await runner.cleanup()


if __name__ == "__main__":
    asyncio.run(main())
