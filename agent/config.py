"""Configuration: TOML loaded into typed, validated settings.

Every mistake is reported with the file, the key and (where it can be found) the line, and
unknown keys are rejected: a typo such as `htp_probe = true` must not be silently ignored.
"""

from __future__ import annotations

import argparse
import ipaddress
import math
import os
import re
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .catalog import expand_home
from .errors import ConfigError, shown
from .ratelimit import default_max_qps
from .shard import Shard, parse_shard
from .targets import InvalidTarget, Target, TargetsFileProblem, check_labels, dedupe, normalise_domain, normalise_host, read_targets
from .tomlpos import find_line, read_toml

_DURATION = re.compile(r"^(?:(\d+(?:\.\d+)?)h)?(?:(\d+(?:\.\d+)?)m(?!s))?(?:(\d+(?:\.\d+)?)s)?(?:(\d+)ms)?$")

# ---- value checks ------------------------------------------------------------------------
# Every setting is checked here, by type and range, in one place: `load_config` (which
# check-config, `run` at start and every reload go through) and the command line's options
# (`argument`), so a value is rejected in the same words wherever it is given. A check takes
# the raw value and returns the typed one, or raises ValueError with a short reason; a new
# key picks one of these (or composes its own from them).

Check = Callable[[Any], Any]


def _bound(value: float, minimum: float, maximum: float, unit: str) -> None:
    if value < minimum:
        if value <= 0 < minimum:
            raise ValueError(f"must be positive (at least {minimum:g}{unit})")
        raise ValueError(f"must be at least {minimum:g}{unit}")
    if value > maximum:
        raise ValueError(f"must be at most {maximum:g}{unit}")


def number(minimum: float, maximum: float, *, whole: bool = False, unit: str = "") -> Check:
    """A finite number (a whole one with `whole`) in [minimum, maximum]."""

    def check(value: Any) -> Any:
        if isinstance(value, bool) or not isinstance(value, int if whole else (int, float)):
            raise ValueError(f"must be a {'whole number' if whole else 'number'}")
        if not math.isfinite(value):
            raise ValueError("must be a finite number")
        _bound(value, minimum, maximum, unit)
        return int(value) if whole else float(value)

    return check


def parse_duration(value: object) -> float:
    """Seconds from a number or a Go-style duration string such as "15m", "1h30m", "500ms"."""
    if isinstance(value, bool):
        raise ValueError("must be a duration such as \"15m\"")
    if isinstance(value, (int, float)):
        if not math.isfinite(value):
            raise ValueError("must be a finite duration")
        if value <= 0:
            raise ValueError("must be positive")
        return float(value)
    if isinstance(value, str):
        match = _DURATION.match(value.strip())
        if match and any(match.groups()):
            h, m, s, ms = (float(g) if g else 0.0 for g in match.groups())
            total = h * 3600 + m * 60 + s + ms / 1000
            if 0 < total < math.inf:
                return total
    raise ValueError(f"{shown(str(value))} is not a duration such as \"15m\", \"1h\" or \"30s\"")


def duration(minimum: float, maximum: float) -> Check:
    """A duration (see parse_duration) of at least `minimum` and at most `maximum` seconds."""

    def check(value: Any) -> float:
        seconds = parse_duration(value)
        _bound(seconds, minimum, maximum, " s")
        return seconds

    return check


def choice(*options: str) -> Check:
    def check(value: Any) -> str:
        if value not in options:
            raise ValueError(f"must be one of {', '.join(repr(o) for o in options)}")
        return value

    return check


def argument(check: Check, parse: Callable[[str], Any] = float) -> Callable[[str], Any]:
    """An argparse `type=` from a check: the command line rejects what the file rejects."""

    def convert(text: str) -> Any:
        try:
            return check(parse(text))
        except ValueError as exc:
            reason = str(exc) if not str(exc).startswith(("invalid literal", "could not convert")) else "is not a number"
            raise argparse.ArgumentTypeError(f"{shown(text)}: {reason}") from None

    return convert


def parse_nameserver(value: str) -> str:
    """Validate "ip", "ip:port" or "[ipv6]:port"; return c-ares' "ip:port" / "[ipv6]:port" form."""
    text = value.strip()
    host, port = text, None
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        if rest:
            if not rest.startswith(":"):
                raise ValueError(f"{shown(value)} is not HOST or HOST:PORT")
            port = rest[1:]
    elif text.count(":") == 1:
        host, port = text.split(":")
    if "%" in host:
        # c-ares cannot use a scoped (link-local) address: it would fail on the first query.
        raise ValueError(f"{shown(value)}: zone ids (%...) are not supported; give a global, site or loopback address")
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        raise ValueError(f"{shown(value)}: nameserver must be an IP address (optionally with :PORT)") from None
    if port is not None:
        if not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"{shown(value)}: port must be 1-65535")
    port_number = int(port) if port else 53
    return f"[{address}]:{port_number}" if address.version == 6 else f"{address}:{port_number}"


def _rate(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError("must be a number (queries per second; 0 for no limit)")
    if not math.isfinite(value):
        raise ValueError("must be a finite number (queries per second; 0 for no limit)")
    if value < 0:
        raise ValueError("must be 0 (no limit) or positive")
    if value:
        _bound(value, 0.1, 1_000_000, " queries/s")
    return float(value)


def _bool(value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError("must be true or false")
    return value


def _string(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError("must be a string")
    return value


def _path(value: Any) -> str:
    text = _string(value)
    if "\0" in text:
        raise ValueError("must not contain a NUL character")
    return text


def _strings(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError("must be a list of strings")
    return tuple(value)


def _paths(value: Any) -> tuple[str, ...]:
    return tuple(_path(v) for v in _strings(value))


def _home(value: Any) -> tuple[str, ...]:
    entries = _strings(value)
    if not entries:
        raise ValueError("must name at least one jurisdiction (EU, EEA or ISO alpha-2 codes)")
    expand_home(entries)
    return tuple(e.upper() for e in entries)


def _nameservers(value: Any) -> tuple[str, ...]:
    return tuple(parse_nameserver(v) for v in _strings(value))


_HOSTNAME = re.compile(r"^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$")


def _listen(value: Any) -> str:
    """[HOST]:PORT; HOST an IP address ([IPv6] or bare) or a host name, empty for every address."""
    text = _string(value)
    host, sep, port = text.rpartition(":")
    if not sep or not (port.isascii() and port.isdigit()) or not 0 <= int(port) < 65536:
        raise ValueError("must be [HOST]:PORT with a port of 0 to 65535, e.g. :9849 (every address) or 127.0.0.1:9849")
    bracketed = host.startswith("[") and host.endswith("]")
    bare = host[1:-1] if bracketed else host
    if bare and (bracketed or not _HOSTNAME.match(bare)):
        try:
            ipaddress.ip_address(bare)
        except ValueError:
            raise ValueError(f"host {shown(host)} is not an IP address or host name") from None
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
    http_probe_allow_private: bool = False
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
    on_corrupt_state: str = "refuse"
    probe_concurrency: int = 8
    probe_max_inflight: int = 50
    shard: Shard | None = None


# The checks of every key. Ranges keep a typo from stalling the agent: an interval of 1 ms
# rescans without pause, a timeout of 1e308 never fires.
AGENT_FIELDS: dict[str, Check] = {
    "home": _home,
    "nameservers": _nameservers,
    "data_dir": _path,
    "dns_timeout": number(0.05, 60, unit=" s"),
    "dns_tries": number(1, 10, whole=True),
    "max_inflight": number(1, 10_000, whole=True),
    "max_qps": _rate,
    "concurrency": number(1, 10_000, whole=True),
    "detector_timeout": number(0.1, 3600, unit=" s"),
    "http_probe": _bool,
    "http_timeout": number(0.1, 300, unit=" s"),
    "http_probe_allow_private": _bool,
    "count_inferred": _bool,
    "catalog": _paths,
    "targets_file": _path,
    "targets_dir": _path,
    "log_level": _log_level,
}
DAEMON_FIELDS: dict[str, Check] = {
    "listen": _listen,
    "interval": duration(1, 30 * 86400),
    "state_path": _path,
    "confirmations": number(1, 100, whole=True),
    "web_config": _path,
    "on_corrupt_state": choice("refuse", "move-aside"),
    "probe_concurrency": number(1, 1000, whole=True),
    "probe_max_inflight": number(1, 10_000, whole=True),
    "shard": _shard,
}
_TARGET_FIELDS = {"domain", "labels", "hosts"}


@dataclass(frozen=True)
class PluginSettings:
    disable: tuple[str, ...] = ()  # plugin (entry-point) names not to load
    strict: bool = False  # a plugin that cannot be used is fatal, not skipped


_PLUGINS_FIELDS: dict[str, Callable[[Any], Any]] = {"disable": _strings, "strict": _bool}


@dataclass(frozen=True)
class Config:
    path: str = ""
    agent: AgentSettings = field(default_factory=AgentSettings)
    daemon: DaemonSettings = field(default_factory=DaemonSettings)
    detectors: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    targets: tuple[Target, ...] = ()
    problems: tuple[TargetsFileProblem, ...] = ()
    plugins: PluginSettings = field(default_factory=PluginSettings)
    warnings: tuple[str, ...] = ()


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


def _parse(path: Path) -> tuple[_Doc, dict[str, Any]]:
    text, raw = read_toml(path, "config")
    unknown = set(raw) - set(_SECTIONS)
    if unknown:
        key = sorted(unknown)[0]
        raise ConfigError(str(path), f"unknown section (known: {', '.join(_SECTIONS)})", key=key, line=find_line(text, key) or find_line(text, "", key))
    return _Doc(str(path), text), raw


_SECTIONS = ("agent", "daemon", "detectors", "plugins", "targets")


def load_plugin_settings(path: Path | str) -> PluginSettings:
    """Only the `[plugins]` section: it must be known before plugins (and their settings) load."""
    doc, raw = _parse(Path(path))
    return PluginSettings(**doc.section("plugins", raw.get("plugins", {}), _PLUGINS_FIELDS))


def load_config(
    path: Path | str,
    detector_schemas: Mapping[str, Mapping[str, Any]] | None = None,
    *,
    plugin_names: Collection[str] | None = None,
    unloaded: Mapping[str, str] | None = None,
    check_paths: bool = True,
) -> Config:
    """Load and validate a config file.

    `detector_schemas` maps detector names to their settings' defaults (see Detector.settings);
    when given, `[detectors.<name>]` tables are checked against them. `plugin_names` (when
    given) are the installed plugins `[plugins] disable` may name; while any plugin is
    `unloaded` (failed or disabled: plugin -> why), settings of a detector that is not loaded
    may be that plugin's and are ignored with a warning instead of being an error. With
    `check_paths`, a configured `data_dir` or `web_config` that does not exist is an error: a
    typo must not silently switch IP evidence or TLS off (`data update`, which creates the
    directory, and `history` pass False).
    """
    path = Path(path)
    doc, raw = _parse(path)
    plugins = doc.section("plugins", raw.get("plugins", {}), _PLUGINS_FIELDS)
    if plugin_names is not None:
        for name in plugins.get("disable", ()):
            if name not in plugin_names:
                raise doc.error("plugins", "disable", f"no plugin named '{name}' is installed (installed: {', '.join(sorted(plugin_names))})")

    base = path.parent
    agent = doc.section("agent", raw.get("agent", {}), AGENT_FIELDS)
    for key in ("data_dir", "targets_file", "targets_dir"):
        if key in agent:
            agent[key] = _relative(base, agent[key])
    if "catalog" in agent:
        agent["catalog"] = tuple(_relative(base, c) for c in agent["catalog"])
    daemon = doc.section("daemon", raw.get("daemon", {}), DAEMON_FIELDS)
    for key in ("state_path", "web_config"):
        if key in daemon:
            daemon[key] = _relative(base, daemon[key])
    if check_paths:
        if agent.get("data_dir") and not Path(agent["data_dir"]).is_dir():
            raise doc.error("agent", "data_dir", f"no such directory: {agent['data_dir']} (fill it with `dijkwacht data update`, or remove the key to use hostname evidence only)")
        if daemon.get("web_config") and not Path(daemon["web_config"]).is_file():
            raise doc.error("daemon", "web_config", f"no such file: {daemon['web_config']}")

    warnings: list[str] = []
    detectors = _detector_settings(doc, raw.get("detectors", {}), detector_schemas, unloaded or {}, warnings)
    targets = _targets(doc, raw.get("targets", []))
    problems: list[TargetsFileProblem] = []
    if agent.get("targets_file"):
        try:
            more, problems = read_targets(agent["targets_file"])
        except ConfigError as exc:
            raise doc.error("agent", "targets_file", exc.message + f" ({agent['targets_file']})") from None
        targets.extend((t, agent["targets_file"], line) for t, line in more)
    if agent.get("targets_dir"):
        more_located, dir_problems = _targets_dir(doc, agent["targets_dir"])
        targets.extend(more_located)
        problems = [*problems, *dir_problems]
    unique, repeated = dedupe(targets)
    problems = sorted([*problems, *repeated], key=lambda p: (p.path, p.line))
    return Config(str(path), AgentSettings(**agent), DaemonSettings(**daemon), detectors, tuple(unique), tuple(problems), PluginSettings(**plugins), tuple(warnings))


def _targets_dir(doc: _Doc, directory: str) -> tuple[list[tuple[Target, str, int]], list[TargetsFileProblem]]:
    """Every `*.toml` (`[[targets]]` tables) and `*.txt` (targets file lines) in `directory`,
    in name order: how the Helm chart hands its per-shard ConfigMaps to the agent."""
    if not os.path.isdir(directory):
        raise doc.error("agent", "targets_dir", f"not a directory ({directory})")
    targets: list[tuple[Target, str, int]] = []
    problems: list[TargetsFileProblem] = []
    for path in sorted(Path(directory).iterdir()):
        if path.name.startswith("."):
            continue  # a mounted ConfigMap's ..data links
        if path.suffix == ".txt":
            more, found = read_targets(path)
            targets.extend((t, str(path), line) for t, line in more)
            problems.extend(found)
        elif path.suffix == ".toml":
            text, raw = read_toml(path, "targets")
            extra = set(raw) - {"targets"}
            if extra:
                key = sorted(extra)[0]
                raise ConfigError(str(path), "a targets file holds only [[targets]] tables", key=key, line=find_line(text, key) or find_line(text, "", key))
            targets.extend(_targets(_Doc(str(path), text), raw.get("targets", [])))
    return targets, problems


def _detector_settings(
    doc: _Doc, raw: Any, schemas: Mapping[str, Mapping[str, Any]] | None, unloaded: Mapping[str, str], warnings: list[str]
) -> dict[str, dict[str, Any]]:
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
            if unloaded:  # perhaps the settings of a plugin that failed or is disabled
                why = "; ".join(f"{plugin}: {reason}" for plugin, reason in sorted(unloaded.items()))
                warnings.append(str(doc.error("detectors", name, f"ignored: no detector of that name is loaded (not loaded: {why})")))
                continue
            raise doc.error("detectors", name, f"no detector of that name is loaded (loaded: {', '.join(sorted(schemas))})")
        try:
            out[name] = check_detector_settings(schemas[name], table)
        except _SettingError as exc:
            raise doc.error(where, exc.key, exc.message) from None
    return out


class _SettingError(ValueError):
    def __init__(self, key: str, message: str) -> None:
        super().__init__(f"{key}: {message}")
        self.key, self.message = key, message


def check_detector_settings(defaults: Mapping[str, Any], values: Mapping[str, Any]) -> dict[str, Any]:
    """A detector's settings: its defaults overridden by `values`, which must have their types.

    Raises ValueError ("key: why") for an unknown key or a value of another type.
    """
    settings = dict(defaults)
    for key, value in values.items():
        if key not in defaults:
            raise _SettingError(key, f"unknown setting (known: {', '.join(sorted(defaults)) or 'none'})")
        if not _same_type(defaults[key], value):
            raise _SettingError(key, f"must be of the same type as the default {defaults[key]!r}")
        if isinstance(value, float) and not math.isfinite(value):
            raise _SettingError(key, "must be a finite number")
        settings[key] = value
    return settings


def _same_type(default: Any, value: Any) -> bool:
    if isinstance(default, bool) or isinstance(value, bool):
        return isinstance(default, bool) and isinstance(value, bool)
    if isinstance(default, float):
        return isinstance(value, (int, float))
    if isinstance(default, (list, tuple)):
        return isinstance(value, list) and all(isinstance(v, str) for v in value)
    return isinstance(value, type(default))


def _targets(doc: _Doc, raw: Any) -> list[tuple[Target, str, int]]:
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
            hosts = tuple(normalise_host(h) for h in _strings(entry.get("hosts", [])))
        except (ValueError, InvalidTarget) as exc:
            raise doc.error("targets", "hosts", str(exc), i) from None
        targets.append((Target(domain, labels, hosts), doc.path, find_line(doc.text, "targets", "domain", i) or 0))
    return targets
