"""A hostile client for the load tests: N concurrent requests to one URL, from its own process
(so that it does not share an event loop with the agent or the DNS server it is measured on).

`python -m tests.flood URL N [AUTHORIZATION]` prints {"statuses": {status: count}, "seconds": s}.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections import Counter

import aiohttp


async def flood(url: str, count: int, authorization: str = "") -> dict:
    statuses: Counter[str] = Counter()
    headers = {"Authorization": authorization} if authorization else {}
    connector = aiohttp.TCPConnector(limit=0, force_close=True)
    timeout = aiohttp.ClientTimeout(total=120)
    started = time.monotonic()
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as http:

        async def one(i: int) -> None:
            try:
                async with http.get(url.replace("{i}", str(i)), headers=headers) as response:
                    await response.read()
                    statuses[str(response.status)] += 1
            except (aiohttp.ClientError, OSError, asyncio.TimeoutError) as exc:
                statuses[type(exc).__name__] += 1

        await asyncio.gather(*(one(i) for i in range(count)))
    return {"statuses": dict(statuses), "seconds": round(time.monotonic() - started, 2)}


if __name__ == "__main__":
    print(json.dumps(asyncio.run(flood(sys.argv[1], int(sys.argv[2]), sys.argv[3] if len(sys.argv) > 3 else ""))))
