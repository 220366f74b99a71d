"""Sharding the targets over several agents, the hashmod way Prometheus shards its targets.

A target belongs to shard `int(sha256(domain)[:8 hex digits], 16) % N`: the first 32 bits of
the SHA-256 of its normalised domain name (lowercase A-labels), modulo the number of shards.
The hash is stable across processes, hosts and versions (Python's own hash() is randomised per
process), and the Helm chart computes the same function in its templates
(`sha256sum | trunc 8`, parsed as hex) to split the targets into per-shard ConfigMaps.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

# "2/4", or a StatefulSet pod name with the total ("dijkwacht-2/4"): the ordinal is the index.
_SHARD = re.compile(r"^(?:.+-)?(\d+)/(\d+)$")


def shard_of(domain: str, total: int) -> int:
    return int(hashlib.sha256(domain.encode("ascii")).hexdigest()[:8], 16) % total


@dataclass(frozen=True, slots=True)
class Shard:
    index: int
    total: int

    def owns(self, domain: str) -> bool:
        return self.total == 1 or shard_of(domain, self.total) == self.index

    def __str__(self) -> str:
        return f"{self.index}/{self.total}"


def parse_shard(text: str) -> Shard:
    """"i/N" with 0 <= i < N; i may be given as a StatefulSet pod name ending in "-<ordinal>"."""
    match = _SHARD.match(text.strip())
    if not match:
        raise ValueError(f"'{text}' is not a shard such as \"0/4\" (index/total)")
    index, total = int(match.group(1)), int(match.group(2))
    if total < 1 or index >= total:
        raise ValueError(f"'{text}': the index must be at least 0 and below the total")
    return Shard(index, total)
