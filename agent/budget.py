"""A FIFO concurrency budget for thousands of waiters.

asyncio.Semaphore in Python 3.11 scans its waiter queue from the front on every release,
skipping waiters already woken; with 16,500 targets queued that made each release cost
O(waiters) (measured: six million Future.done() calls for 3,000 targets). Here a release
hands its slot straight to the oldest waiter.
"""

from __future__ import annotations

import asyncio
from collections import deque


class Budget:
    __slots__ = ("_free", "_waiters")

    def __init__(self, size: int) -> None:
        self._free = size
        self._waiters: deque[asyncio.Future[None]] = deque()

    def try_acquire(self) -> bool:
        """Take a slot without waiting, if one is free (the hot path: no coroutine at all)."""
        if self._free > 0 and not self._waiters:
            self._free -= 1
            return True
        return False

    async def __aenter__(self) -> None:
        if self.try_acquire():
            return
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self._release()  # the slot was handed to us just as we were cancelled
            else:
                self._waiters.remove(waiter)
            raise

    async def __aexit__(self, *exc: object) -> None:
        self._release()

    acquire = __aenter__

    def release(self) -> None:
        self._release()

    def _release(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)  # the slot passes on without being freed
                return
        self._free += 1
