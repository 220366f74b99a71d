"""When each target is due: evenly spread over the interval, stable across restarts.

Each target gets a fixed phase in [0, interval) from a hash of its name, so a pass over
16,500 targets is a steady trickle rather than a burst every 15 minutes, and a restart does
not bunch them up. A little jitter keeps agents watching the same domains from aligning.
"""

from __future__ import annotations

import hashlib
import heapq
import math
import random


def phase(domain: str, interval: float) -> float:
    digest = hashlib.blake2b(domain.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64 * interval


def next_due(domain: str, after: float, interval: float, jitter: float = 0.02) -> float:
    """The first time at the target's phase at least half an interval after `after`."""
    p = phase(domain, interval)
    k = math.ceil((after + interval / 2 - p) / interval)
    return p + k * interval + random.uniform(-jitter, jitter) * interval


class Schedule:
    """A heap of (due time, domain); entries of removed targets are skipped lazily."""

    def __init__(self) -> None:
        self._heap: list[tuple[float, str]] = []
        self._due: dict[str, float] = {}

    def set(self, domain: str, due: float) -> None:
        self._due[domain] = due
        heapq.heappush(self._heap, (due, domain))

    def remove(self, domain: str) -> None:
        self._due.pop(domain, None)

    def pop_due(self, now: float) -> list[str]:
        out = []
        while self._heap and self._heap[0][0] <= now:
            due, domain = heapq.heappop(self._heap)
            if self._due.get(domain) == due:
                del self._due[domain]
                out.append(domain)
        return out

    def next_time(self) -> float | None:
        while self._heap and self._due.get(self._heap[0][1]) != self._heap[0][0]:
            heapq.heappop(self._heap)
        return self._heap[0][0] if self._heap else None

    def __contains__(self, domain: str) -> bool:
        return domain in self._due
