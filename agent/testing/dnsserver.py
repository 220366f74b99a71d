"""A small authoritative DNS server for tests and the built-in demo.

Plugin authors can test detectors against it exactly as dijkwacht's own tests do: give it
zone lines, start it on 127.0.0.1, point a DNSEngine at it. It answers over UDP and TCP,
follows CNAMEs inside its data (as a server with all names in one zone would), and can be
told to SERVFAIL, REFUSE, stay silent (timeout) or truncate for chosen names.
"""

from __future__ import annotations

import asyncio
import shlex
import socket
import struct
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

TYPES = {"A": 1, "NS": 2, "CNAME": 5, "SOA": 6, "PTR": 12, "MX": 15, "TXT": 16, "AAAA": 28, "SRV": 33, "CAA": 257}
TYPE_NAMES = {v: k for k, v in TYPES.items()}
_OPT = 41


@dataclass(frozen=True, slots=True)
class Record:
    name: str
    rtype: str
    rdata: tuple[str, ...]
    ttl: int = 300


def parse_zone(text: str) -> list[Record]:
    """Parse zone-file style lines with absolute names: `name [ttl] [IN] TYPE rdata...`.

    `;` starts a comment; TXT strings are quoted. No $ORIGIN, no relative names: what is
    written is what is served, which keeps test data unambiguous.
    """
    records = []
    for raw in text.splitlines():
        line = raw.split(";", 1)[0].strip() if '"' not in raw else raw.strip()
        if not line or line.startswith(";"):
            continue
        words = shlex.split(line, comments=False, posix=True)
        name = words.pop(0).lower().rstrip(".")
        ttl = 300
        if words and words[0].isdigit():
            ttl = int(words.pop(0))
        if words and words[0].upper() == "IN":
            words.pop(0)
        rtype = words.pop(0).upper()
        if rtype not in TYPES:
            raise ValueError(f"unsupported record type {rtype} in: {raw}")
        records.append(Record(name, rtype, tuple(words), ttl))
    return records


def _name(name: str) -> bytes:
    out = bytearray()
    for label in name.rstrip(".").split("."):
        if label:
            encoded = label.encode("ascii")
            out.append(len(encoded))
            out += encoded
    out.append(0)
    return bytes(out)


def _rdata(record: Record) -> bytes:
    d = record.rdata
    t = record.rtype
    if t == "A":
        return socket.inet_pton(socket.AF_INET, d[0])
    if t == "AAAA":
        return socket.inet_pton(socket.AF_INET6, d[0])
    if t in ("CNAME", "NS", "PTR"):
        return _name(d[0])
    if t == "MX":
        return struct.pack("!H", int(d[0])) + _name(d[1])
    if t == "SRV":
        return struct.pack("!HHH", int(d[0]), int(d[1]), int(d[2])) + _name(d[3])
    if t == "TXT":
        out = bytearray()
        for text in d:
            data = text.encode("utf-8")
            for i in range(0, max(len(data), 1), 255):
                chunk = data[i : i + 255]
                out.append(len(chunk))
                out += chunk
        return bytes(out)
    if t == "SOA":
        return _name(d[0]) + _name(d[1]) + struct.pack("!IIIII", *(int(x) for x in d[2:7]))
    if t == "CAA":
        return bytes([int(d[0]), len(d[1])]) + d[1].encode() + d[2].encode()
    raise ValueError(t)


def _rr(record: Record) -> bytes:
    rdata = _rdata(record)
    return _name(record.name) + struct.pack("!HHIH", TYPES[record.rtype], 1, record.ttl, len(rdata)) + rdata


def _parse_question(packet: bytes) -> tuple[int, int, str, int, int, int]:
    """(id, flags, qname, qtype, question end offset, EDNS payload size or 0)."""
    qid, flags, qdcount, _, _, arcount = struct.unpack("!HHHHHH", packet[:12])
    pos = 12
    labels = []
    while True:
        length = packet[pos]
        pos += 1
        if length == 0:
            break
        labels.append(packet[pos : pos + length].decode("ascii", "replace"))
        pos += length
    qtype, _qclass = struct.unpack("!HH", packet[pos : pos + 4])
    end = pos + 4
    edns = 0
    if arcount and len(packet) >= end + 11 and packet[end] == 0:
        rtype, size = struct.unpack("!HH", packet[end + 1 : end + 5])
        if rtype == _OPT:
            edns = size
    return qid, flags, ".".join(labels).lower(), qtype, end, edns


class FakeDNSServer:
    """Serve `records` on 127.0.0.1 (UDP and TCP, same port).

    `failures` maps a name (or (name, qtype)) to "servfail", "refused" or "timeout";
    names in `truncate` always get a truncated UDP answer, so clients must retry over TCP;
    `delay(name)` gives the seconds to wait before a UDP answer for that name (slow servers).
    `asked` counts the queries received per (name, qtype).
    """

    def __init__(
        self,
        records: Iterable[Record] | str,
        *,
        failures: Mapping[str | tuple[str, str], str] | None = None,
        truncate: Iterable[str] = (),
        delay: Callable[[str], float] | None = None,
        host: str = "127.0.0.1",
    ) -> None:
        if isinstance(records, str):
            records = parse_zone(records)
        self.host = host
        self.port = 0
        self.failures = dict(failures or {})
        self.truncate = {n.lower().rstrip(".") for n in truncate}
        self.delay = delay
        self.asked: Counter[tuple[str, str]] = Counter()
        self._by_name: dict[str, list[Record]] = {}
        self._names: set[str] = set()
        self.load(records)
        self._udp: asyncio.DatagramTransport | None = None
        self._tcp: asyncio.base_events.Server | None = None

    def load(self, records: Iterable[Record]) -> None:
        """Replace the served data (tests use this to change a zone between scans)."""
        by_name: dict[str, list[Record]] = {}
        for record in records:
            by_name.setdefault(record.name, []).append(record)
        names = set(by_name)
        for name in list(names):  # empty non-terminals exist (NODATA), they are not NXDOMAIN
            parts = name.split(".")
            for i in range(1, len(parts)):
                names.add(".".join(parts[i:]))
        self._by_name, self._names = by_name, names

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def answer(self, qname: str, qtype: int) -> tuple[int, list[Record], list[Record]] | None:
        """(rcode, answer, authority) for a question, or None to stay silent."""
        tname = TYPE_NAMES.get(qtype, str(qtype))
        failure = self.failures.get((qname, tname)) or self.failures.get(qname)
        if failure == "timeout":
            return None
        if failure in ("servfail", "refused"):
            return (2 if failure == "servfail" else 5), [], []
        answer: list[Record] = []
        current = qname
        seen = {qname}
        for _ in range(16):
            here = self._by_name.get(current, ())
            cname = next((r for r in here if r.rtype == "CNAME"), None)
            if cname is None or tname == "CNAME":
                answer.extend(r for r in here if r.rtype == tname)
                break
            answer.append(cname)
            current = cname.rdata[0].lower().rstrip(".")
            if current in seen:  # a loop: hand out what we have, as real servers do
                break
            seen.add(current)
        return (0 if current in self._names else 3), answer, []

    def _respond(self, packet: bytes, udp: bool) -> bytes | None:
        try:
            qid, flags, qname, qtype, end, edns = _parse_question(packet)
        except (struct.error, IndexError):
            return None
        self.asked[(qname, TYPE_NAMES.get(qtype, str(qtype)))] += 1
        result = self.answer(qname, qtype)
        if result is None:
            return None
        rcode, answer, authority = result
        rd = flags & 0x0100
        body = b"".join(_rr(r) for r in answer) + b"".join(_rr(r) for r in authority)
        limit = max(edns, 512)
        truncated = udp and (qname in self.truncate or 12 + (end - 12) + len(body) > limit)
        out_flags = 0x8000 | 0x0400 | rd | 0x0080 | rcode | (0x0200 if truncated else 0)
        counts = (0, 0) if truncated else (len(answer), len(authority))
        header = struct.pack("!HHHHHH", qid, out_flags, 1, counts[0], counts[1], 0)
        return header + packet[12:end] + (b"" if truncated else body)

    async def start(self) -> FakeDNSServer:
        loop = asyncio.get_running_loop()
        for _ in range(20):
            udp_transport, _ = await loop.create_datagram_endpoint(lambda: _UDP(self), local_addr=(self.host, self.port))
            port = udp_transport.get_extra_info("sockname")[1]
            try:
                self._tcp = await asyncio.start_server(self._serve_tcp, self.host, port)
            except OSError:
                udp_transport.close()
                continue
            self._udp, self.port = udp_transport, port
            return self
        raise OSError("could not bind UDP and TCP on the same port")

    async def stop(self) -> None:
        if self._udp:
            self._udp.close()
        if self._tcp:
            self._tcp.close()
            await self._tcp.wait_closed()

    async def __aenter__(self) -> FakeDNSServer:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def _serve_tcp(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                length = struct.unpack("!H", await reader.readexactly(2))[0]
                reply = self._respond(await reader.readexactly(length), udp=False)
                if reply is None:
                    continue
                writer.write(struct.pack("!H", len(reply)) + reply)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


class _UDP(asyncio.DatagramProtocol):
    def __init__(self, server: FakeDNSServer) -> None:
        self.server = server
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        reply = self.server._respond(data, udp=True)
        if reply is None or self.transport is None:
            return
        wait = self.server.delay(_parse_question(data)[2]) if self.server.delay else 0
        if wait > 0:
            asyncio.get_running_loop().call_later(wait, self._send, reply, addr)
        else:
            self.transport.sendto(reply, addr)

    def _send(self, reply: bytes, addr: tuple[str, int]) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.sendto(reply, addr)
