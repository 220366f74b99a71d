"""Configuration: TOML loaded into typed, validated settings.

Every mistake is reported with the file, the key and (where it can be found) the line, and
unknown keys are rejected: a typo such as `htp_probe = true` must not be silently ignored.
"""

from __future__ import annotations

import ipaddress
import os
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .catalog import expand_home
from .errors import ConfigError
from .ratelimit import default_max_qps
from .shard import Shard, parse_shard
from .targets import InvalidTarget, Target, TargetsFileProblem, check_labels, normalise_domain, read_targets_file
from .tomlpos import find_line

_DURATION = re.compile(r"^(?:(\d+(?:\.\d+)?)h)?(?:(\d+(?:\.\d+)?)m(?!s))?(?:(\d+(?:\.\d+)?)s)?(?:(\d+)ms)?$")


def parse_duration(value: object) -> float:
    """Seconds from a number or a Go-style duration string such as "15m", "1h30m", "500ms"."""
    if isinstance(value, bool):
        raise ValueError("must be a duration such as \"15m\"")
    if isinstance(value, (int, float)):
        if value <= 0:
            raise ValueError("must be positive")
        return float(value)
    if isinstance(value, str):
        match = _DURATION.match(value.strip())
        if match and any(match.groups()):
            h, m, s, ms = (float(g) if g else 0.0 for g in match.groups())
            total = h * 3600 + m * 60 + s + ms / 1000
            if total > 0:
                return total
    raise ValueError(f"'{value}' is not a duration such as \"15m\", \"1h\" or \"30s\"")


def parse_nameserver(value: str) -> str:
    """Validate "ip", "ip:port" or "[ipv6]:port"; return c-ares' "ip:port" / "[ipv6]:port" form."""
    text = value.strip()
    host, port = text, None
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        if rest:
            if not rest.startswith(":"):
                raise ValueError(f"'{value}' is not HOST or HOST:PORT")
            port = rest[1:]
    elif text.count(":") == 1:
        host, port = text.split(":")
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        raise ValueError(f"'{value}': nameserver must be an IP address (optionally with :PORT)") from None
    if port is not None:
        if not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"'{value}': port must be 1-65535")
    port_number = int(port) if port else 53
    return f"[{address}]:{port_number}" if address.version == 6 else f"{address}:{port_number}"


def _positive(kind: type) -> Callable[[Any], Any]:
    def check(value: Any) -> Any:
        if isinstance(value, bool) or not isinstance(value, (int, float) if kind is float else int):
            raise ValueError(f"must be a {'number' if kind is float else 'whole number'}")
        if value <= 0:
            raise ValueError("must be positive")
        return kind(value)

    return check


def _rate(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError("must be a number (queries per second; 0 for no limit)")
    if value < 0:
        raise ValueError("must be 0 (no limit) or positive")
    return float(value)


def _bool(value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError("must be true or false")
    return value


def _string(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError("must be a string")
    return value


def _strings(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError("must be a list of strings")
    return tuple(value)


def _home(value: Any) -> tuple[str, ...]:
    entries = _strings(value)
    if not entries:
        raise ValueError("must name at least one jurisdiction (EU, EEA or ISO alpha-2 codes)")
    expand_home(entries)
    return tuple(e.upper() for e in entries)


def _nameservers(value: Any) -> tuple[str, ...]:
    return tuple(parse_nameserver(v) for v in _strings(value))


def _listen(value: Any) -> str:
    text = _string(value)
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) < 65536:
        raise ValueError(f"'{text}' must be [HOST]:PORT, e.g. :9849 (every address) or 127.0.0.1:9849")
    return text


def _shard(value: Any) -> Shard:
    return parse_shard(_string(value))


def _log_level(value: Any) -> str:
    text = _string(value).lower()
    if text not in ("debug", "info", "warning", "error"):
        raise ValueError("must be debug, info, warning or error")
    return text


def _default_state_path() -> str:
    base = os.environ.get("STATE_DIRECTORY", "/var/lib/dijkwacht").split(":")[0]
    return str(Path(base) / "state.db")


@dataclass(frozen=True)
class AgentSettings:
    home: tuple[str, ...] = ("EU",)
    nameservers: tuple[str, ...] = ()
    data_dir: str = ""
    dns_timeout: float = 2.0
    dns_tries: int = 2
    max_inflight: int = 200
    max_qps: float | None = None  # None: automatic (ratelimit.default_max_qps); 0: no limit
    concurrency: int = 64
    detector_timeout: float = 30.0
    http_probe: bool = False
    http_timeout: float = 5.0
    count_inferred: bool = False
    catalog: tuple[str, ...] = ()
    targets_file: str = ""
    targets_dir: str = ""
    log_level: str = "info"

    @property
    def home_codes(self) -> frozenset[str]:
        return expand_home(self.home)

    @property
    def query_rate(self) -> float | None:
        """The query rate limit in force: None for no limit."""
        if self.max_qps is None:
            return default_max_qps(self.nameservers)
        return self.max_qps or None


@dataclass(frozen=True)
class DaemonSettings:
    listen: str = ":9849"  # every address of both families
    interval: float = 900.0
    state_path: str = field(default_factory=_default_state_path)
    confirmations: int = 2
    web_config: str = ""
    shard: Shard | None = None


_AGENT_FIELDS: dict[str, Callable[[Any], Any]] = {
    "home": _home,
    "nameservers": _nameservers,
    "data_dir": _string,
    "dns_timeout": _positive(float),
    "dns_tries": _positive(int),
    "max_inflight": _positive(int),
    "max_qps": _rate,
    "concurrency": _positive(int),
    "detector_timeout": _positive(float),
    "http_probe": _bool,
    "http_timeout": _positive(float),
    "count_inferred": _bool,
    "catalog": _strings,
    "targets_file": _string,
    "targets_dir": _string,
    "log_level": _log_level,
}
_DAEMON_FIELDS: dict[str, Callable[[Any], Any]] = {
    "listen": _listen,
    "interval": parse_duration,
    "state_path": _string,
    "confirmations": _positive(int),
    "web_config": _string,
    "shard": _shard,
}
_TARGET_FIELDS = {"domain", "labels", "hosts"}


@dataclass(frozen=True)
class Config:
    path: str = ""
    agent: AgentSettings = field(default_factory=AgentSettings)
    daemon: DaemonSettings = field(default_factory=DaemonSettings)
    detectors: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    targets: tuple[Target, ...] = ()
    problems: tuple[TargetsFileProblem, ...] = ()


class _Doc:
    """A parsed file plus what is needed to point at a line in it."""

    def __init__(self, path: str, text: str) -> None:
        self.path = path
        self.text = text

    def error(self, table: str, key: str, message: str, index: int | None = None) -> ConfigError:
        dotted = ".".join(p for p in (table, key) if p)
        if index is not None:
            dotted = f"{table}[{index}]" + (f".{key}" if key else "")
        return ConfigError(self.path, message, key=dotted, line=find_line(self.text, table, key, index))

    def section(self, table: str, raw: Any, fields: Mapping[str, Callable[[Any], Any]]) -> dict[str, Any]:
        if not isinstance(raw, dict):
            raise self.error("", table, "must be a table")
        out = {}
        for key, value in raw.items():
            check = fields.get(key)
            if check is None:
                raise self.error(table, key, f"unknown key (known: {', '.join(sorted(fields))})")
            try:
                out[key] = check(value)
            except ValueError as exc:
                raise self.error(table, key, str(exc)) from None
        return out


def _relative(base: Path, value: str) -> str:
    return str(base / value) if value and not os.path.isabs(value) else value


def load_config(path: Path | str, detector_schemas: Mapping[str, Mapping[str, Any]] | None = None) -> Config:
    """Load and validate a config file.

    `detector_schemas` maps detector names to their settings' defaults (see Detector.settings);
    when given, `[detectors.<name>]` tables are checked against them.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(str(path), f"cannot read config: {exc.strerror}") from exc
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        line = re.search(r"line (\d+)", str(exc))
        raise ConfigError(str(path), f"invalid TOML: {exc}", line=int(line.group(1)) if line else None) from exc
    doc = _Doc(str(path), text)
    unknown = set(raw) - {"agent", "daemon", "detectors", "targets"}
    if unknown:
        key = sorted(unknown)[0]
        raise ConfigError(str(path), "unknown section (known: agent, daemon, detectors, targets)", key=key, line=find_line(text, key) or find_line(text, "", key))

    base = path.parent
    agent = doc.section("agent", raw.get("agent", {}), _AGENT_FIELDS)
    for key in ("data_dir", "targets_file", "targets_dir"):
        if key in agent:
            agent[key] = _relative(base, agent[key])
    if "catalog" in agent:
        agent["catalog"] = tuple(_relative(base, c) for c in agent["catalog"])
    daemon = doc.section("daemon", raw.get("daemon", {}), _DAEMON_FIELDS)
    for key in ("state_path", "web_config"):
        if key in daemon:
            daemon[key] = _relative(base, daemon[key])

    detectors = _detector_settings(doc, raw.get("detectors", {}), detector_schemas)
    targets = _targets(doc, raw.get("targets", []))
    problems: list[TargetsFileProblem] = []
    if agent.get("targets_file"):
        try:
            more, problems = read_targets_file(agent["targets_file"])
        except ConfigError as exc:
            raise doc.error("agent", "targets_file", exc.message + f" ({agent['targets_file']})") from None
        targets.extend(more)
    if agent.get("targets_dir"):
        more, dir_problems = _targets_dir(doc, agent["targets_dir"])
        targets.extend(more)
        problems.extend(dir_problems)
    return Config(str(path), AgentSettings(**agent), DaemonSettings(**daemon), detectors, tuple(targets), tuple(problems))


def _targets_dir(doc: _Doc, directory: str) -> tuple[list[Target], list[TargetsFileProblem]]:
    """Every `*.toml` (`[[targets]]` tables) and `*.txt` (targets file lines) in `directory`,
    in name order: how the Helm chart hands its per-shard ConfigMaps to the agent."""
    if not os.path.isdir(directory):
        raise doc.error("agent", "targets_dir", f"not a directory ({directory})")
    targets: list[Target] = []
    problems: list[TargetsFileProblem] = []
    for path in sorted(Path(directory).iterdir()):
        if path.name.startswith("."):
            continue  # a mounted ConfigMap's ..data links
        if path.suffix == ".txt":
            more, found = read_targets_file(path)
            targets.extend(more)
            problems.extend(found)
        elif path.suffix == ".toml":
            text = path.read_text(encoding="utf-8")
            try:
                raw = tomllib.loads(text)
            except tomllib.TOMLDecodeError as exc:
                line = re.search(r"line (\d+)", str(exc))
                raise ConfigError(str(path), f"invalid TOML: {exc}", line=int(line.group(1)) if line else None) from None
            extra = set(raw) - {"targets"}
            if extra:
                key = sorted(extra)[0]
                raise ConfigError(str(path), "a targets file holds only [[targets]] tables", key=key, line=find_line(text, key) or find_line(text, "", key))
            targets.extend(_targets(_Doc(str(path), text), raw.get("targets", [])))
    return targets, problems


def _detector_settings(doc: _Doc, raw: Any, schemas: Mapping[str, Mapping[str, Any]] | None) -> dict[str, dict[str, Any]]:
    if not isinstance(raw, dict):
        raise doc.error("", "detectors", "must be a table of [detectors.<name>] tables")
    out: dict[str, dict[str, Any]] = {}
    for name, table in raw.items():
        where = f"detectors.{name}"
        if not isinstance(table, dict):
            raise doc.error("detectors", name, "must be a table")
        if schemas is None:
            out[name] = dict(table)
            continue
        if name not in schemas:
            raise doc.error("detectors", name, f"no detector of that name is loaded (loaded: {', '.join(sorted(schemas))})")
        defaults = schemas[name]
        settings = dict(defaults)
        for key, value in table.items():
            if key not in defaults:
                known = ", ".join(sorted(defaults)) or "none"
                raise doc.error(where, key, f"unknown setting (known: {known})")
            if not _same_type(defaults[key], value):
                raise doc.error(where, key, f"must be of the same type as the default {defaults[key]!r}")
            settings[key] = value
        out[name] = settings
    return out


def _same_type(default: Any, value: Any) -> bool:
    if isinstance(default, bool) or isinstance(value, bool):
        return isinstance(default, bool) and isinstance(value, bool)
    if isinstance(default, float):
        return isinstance(value, (int, float))
    if isinstance(default, (list, tuple)):
        return isinstance(value, list) and all(isinstance(v, str) for v in value)
    return isinstance(value, type(default))


def _targets(doc: _Doc, raw: Any) -> list[Target]:
    if not isinstance(raw, list):
        raise doc.error("", "targets", "must be an array of tables ([[targets]])")
    targets = []
    for i, entry in enumerate(raw):
        if not isinstance(entry, dict):
            raise doc.error("targets", "", "each target must be a table", i)
        extra = set(entry) - _TARGET_FIELDS
        if extra:
            raise doc.error("targets", sorted(extra)[0], "unknown key (known: domain, hosts, labels)", i)
        if "domain" not in entry or not isinstance(entry["domain"], str):
            raise doc.error("targets", "domain", "is required and must be a string", i)
        try:
            domain = normalise_domain(entry["domain"])
        except InvalidTarget as exc:
            raise doc.error("targets", "domain", str(exc), i) from None
        labels = entry.get("labels", {})
        if not isinstance(labels, dict):
            raise doc.error("targets", "labels", "must be a table of strings", i)
        try:
            labels = check_labels(labels)
        except InvalidTarget as exc:
            raise doc.error("targets", "labels", str(exc), i) from None
        try:
            hosts = _strings(entry.get("hosts", []))
        except ValueError as exc:
            raise doc.error("targets", "hosts", str(exc), i) from None
        targets.append(Target(domain, labels, hosts))
    return targets
