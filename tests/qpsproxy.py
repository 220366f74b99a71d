"""A UDP proxy in front of a DNS server that records when every query arrived.

Arrival times are the kernel's (SO_TIMESTAMPNS), so a test process that is busy for a moment
does not make queries look bunched. Optionally it plays a resolver's per-client rate limit:
beyond `refuse_above` queries in the last second it answers REFUSED itself.
"""

from __future__ import annotations

import bisect
import selectors
import socket
import struct
import threading
from collections import deque

_TIMESTAMP = struct.Struct("qq")  # struct timespec
# Python 3.11 does not export it; 35 on Linux (asm-generic, x86-64 and arm64 alike).
SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)


def _refused(query: bytes) -> bytes | None:
    """A REFUSED response to `query`: same id, question echoed, no records."""
    if len(query) < 12:
        return None
    pos = 12
    while pos < len(query) and query[pos]:
        pos += query[pos] + 1
    end = pos + 5
    if end > len(query):
        return None
    qid, flags = struct.unpack("!HH", query[:4])
    out_flags = 0x8000 | (flags & 0x7900) | 0x0080 | 5  # QR, opcode and RD kept, RA, REFUSED
    return struct.pack("!HHHHHH", qid, out_flags, 1, 0, 0, 0) + query[12:end]


class CountingProxy:
    def __init__(self, upstream: str, *, refuse_above: int | None = None) -> None:
        host, port = upstream.rsplit(":", 1)
        self.upstream = (host, int(port))
        self.refuse_above = refuse_above
        self.arrivals: list[float] = []  # kernel receive times, seconds
        self.refused = 0
        self._recent: deque[float] = deque()
        self._front = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._front.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        self._front.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        self._front.bind(("127.0.0.1", 0))
        self.port = self._front.getsockname()[1]
        self._clients: dict[tuple[str, int], socket.socket] = {}
        self._selector = selectors.DefaultSelector()
        self._selector.register(self._front, selectors.EVENT_READ, None)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def __enter__(self) -> CountingProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        for sock in [self._front, *self._clients.values()]:
            sock.close()

    def _serve(self) -> None:
        while not self._stop.is_set():
            for key, _ in self._selector.select(timeout=0.1):
                if key.data is None:
                    self._from_client()
                else:
                    reply = key.fileobj.recv(65535)
                    self._front.sendto(reply, key.data)

    def _from_client(self) -> None:
        query, ancdata, _, client = self._front.recvmsg(65535, socket.CMSG_SPACE(_TIMESTAMP.size))
        stamp = next((s + ns / 1e9 for level, kind, data in ancdata if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS
                      for s, ns in [_TIMESTAMP.unpack(data[: _TIMESTAMP.size])]), None)
        if stamp is None:
            raise RuntimeError("no kernel timestamp on a received datagram")
        self.arrivals.append(stamp)
        if self.refuse_above is not None:
            self._recent.append(stamp)
            while self._recent and self._recent[0] <= stamp - 1.0:
                self._recent.popleft()
            if len(self._recent) > self.refuse_above:
                reply = _refused(query)
                if reply is not None:
                    self.refused += 1
                    self._front.sendto(reply, client)
                return
        upstream = self._clients.get(client)
        if upstream is None:
            upstream = self._clients[client] = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            upstream.connect(self.upstream)
            self._selector.register(upstream, selectors.EVENT_READ, client)
        upstream.send(query)

    def busiest_second(self) -> int:
        """The most queries that arrived within any one second (a window starting at each arrival)."""
        times = sorted(self.arrivals)
        return max((bisect.bisect_left(times, t + 1.0) - i for i, t in enumerate(times)), default=0)
