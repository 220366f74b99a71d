"""A real authoritative DNS server (Knot DNS, Debian's `knot`) for end-to-end tests.

Records are given as zone lines with absolute names (the same format as dijkwacht.testing);
names at or below a listed zone go into that zone's file, everything else into the root
zone, so the server answers for every name the tests use, on 127.0.0.1 at a free port.
"""

from __future__ import annotations

import random
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest

from dijkwacht.testing import Record, parse_zone


def require(*tools: str) -> None:
    missing = [t for t in tools if shutil.which(t) is None]
    if missing:
        pytest.fail(f"{', '.join(missing)} not installed: .ci/run installs Debian's knot and knot-dnsutils")


def _ephemeral_range() -> tuple[int, int]:
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 32768, 60999


def _bindable(port: int) -> bool:
    for kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM):
        with socket.socket(socket.AF_INET, kind) as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                return False
    return True


def free_port() -> int:
    """A port free for both UDP and TCP, chosen below the kernel's ephemeral range.

    A port the kernel hands out for bind(0) may next be taken as the source port of
    any outgoing TCP connection (a test's HTTP client, Prometheus scraping), so a
    server started on it a moment later can fail with "address already in use".
    """
    low, _ = _ephemeral_range()
    candidates = list(range(max(1024, low - 20000), low))
    random.shuffle(candidates)
    for port in candidates:
        if _bindable(port):
            return port
    raise RuntimeError("no free port below the ephemeral range")


def _line(r: Record) -> str:
    data = " ".join(f'"{d}"' for d in r.rdata) if r.rtype == "TXT" else " ".join(r.rdata)
    name = r.name + "." if r.name else "."
    return f"{name} {r.ttl} IN {r.rtype} {data}"


class Knot:
    def __init__(self, workdir: Path, records: str | list[Record], zones: list[str]) -> None:
        require("knotd", "knotc", "kdig")
        self.dir = workdir
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.zones = sorted({z.lower().rstrip(".") for z in zones}, key=lambda z: -z.count("."))
        self.serial = 1
        self.process: subprocess.Popen | None = None
        self._write_zones(parse_zone(records) if isinstance(records, str) else records)
        (self.dir / "knot.conf").write_text(self._config())

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _zone_of(self, name: str) -> str:
        for zone in self.zones:
            if name == zone or name.endswith("." + zone):
                return zone
        return ""

    def _write_zones(self, records: list[Record]) -> None:
        by_zone: dict[str, list[Record]] = {z: [] for z in ["", *self.zones]}
        for record in records:
            by_zone[self._zone_of(record.name)].append(record)
        for zone, rrs in by_zone.items():
            apex = zone + "." if zone else "."
            head = [f"{apex} 0 IN SOA ns.dijkwacht.test. hostmaster.dijkwacht.test. {self.serial} 60 60 60 0"]
            if not any(r.rtype == "NS" and r.name == zone for r in rrs):
                head.append(f"{apex} 0 IN NS ns.dijkwacht.test.")
            if not zone:
                head.append("ns.dijkwacht.test. 0 IN A 127.0.0.1")
            (self.dir / f"{zone or 'root'}.zone").write_text("\n".join(head + [_line(r) for r in rrs]) + "\n")

    def _config(self) -> str:
        zones = "\n".join(f"  - domain: {z + '.' if z else '.'}\n    file: {z or 'root'}.zone" for z in ["", *self.zones])
        return f"""server:
    listen: 127.0.0.1@{self.port}
    rundir: {self.dir}
    user: root
database:
    storage: {self.dir}/db
template:
  - id: default
    storage: {self.dir}
    semantic-checks: off
    journal-content: none
zone:
{zones}
log:
  - target: {self.dir}/knot.log
    any: info
"""

    def _ctl(self, *args: str) -> None:
        subprocess.run(["knotc", "-c", str(self.dir / "knot.conf"), *args], check=True, capture_output=True, timeout=20)

    def start(self) -> Knot:
        (self.dir / "db").mkdir(exist_ok=True)
        for _ in range(3):
            if self._start_once():
                return self
            if "address already in use" not in self._log():
                break
            # Another process took the port between choosing and binding: choose again.
            self.port = free_port()
            (self.dir / "knot.conf").write_text(self._config())
        log = self._log()
        raise RuntimeError(f"knotd did not start: {log[-2000:]}")

    def _log(self) -> str:
        path = self.dir / "knot.log"
        return path.read_text() if path.exists() else ""

    def _start_once(self) -> bool:
        self.process = subprocess.Popen(["knotd", "-c", str(self.dir / "knot.conf")], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and self.process.poll() is None:
            probe = subprocess.run(["kdig", "@127.0.0.1", "-p", str(self.port), ".", "SOA", "+short", "+time=1", "+retry=0"], capture_output=True, text=True)
            if probe.stdout.strip():
                return True
            time.sleep(0.1)
        self.stop()
        return False

    def replace(self, records: str) -> None:
        """Serve new data (all zones rewritten with a higher serial) and reload."""
        self.serial += 1
        self._write_zones(parse_zone(records))
        self._ctl("reload")

    def servfail(self, zone: str) -> None:
        """Expire a zone: Knot then answers SERVFAIL for every name in it until reload()."""
        self._ctl("zone-purge", "-f", zone.rstrip(".") + ".", "+expire")

    def reload(self) -> None:
        self._ctl("reload")

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
            self.process = None
