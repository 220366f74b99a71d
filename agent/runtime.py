"""Assembling a scanner from configuration: the one place the scan's parts are built.

`dijkwacht scan`, `/probe` and the daemon all get their Scanner from `build_runtime`, so they
share the same catalog, ranges, DNS engine and detectors (and the same behaviour).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import structlog

from .catalog import Catalog, load_catalog
from .config import AgentSettings, Config, load_config, load_plugin_settings
from .detector import Detector
from .dns import DNSEngine
from .httpprobe import HttpProbe
from .ipranges import IPRanges, load_ranges
from .isolation import Isolation
from .pluginhost import PluginHost, make_plugin_manager
from .ratelimit import RateChange, log_rate_change
from .scanner import Scanner, Services

log = structlog.get_logger()


@dataclass
class Data:
    """What is loaded from disk and shared read-only: plugins' detector classes, catalog, ranges."""

    host: PluginHost
    detector_classes: list[type[Detector]]
    catalog: Catalog
    ranges: IPRanges

    @property
    def trusted(self) -> frozenset[str]:
        """Detectors of dijkwacht's own distribution: they run on the scan's loop, not a lane."""
        return self.host.builtin_detectors


def load_data(agent: AgentSettings, host: PluginHost | None = None, classes: list[type[Detector]] | None = None) -> Data:
    host = host or make_plugin_manager()
    classes = host.detector_classes() if classes is None else classes
    catalog = load_catalog([*host.catalog_files(), *(Path(p) for p in agent.catalog)])
    return Data(host, classes, catalog, load_ranges(agent.data_dir))


def load_config_with_plugins(path: Path | str, host: PluginHost | None = None, *, strict: bool = False) -> tuple[Config, Data]:
    """Load a config file, validating `[detectors.*]` against the loaded detectors' settings.

    The `[plugins]` section is read first: it says which plugins to load, and how strictly.
    """
    if host is None:
        plugins = load_plugin_settings(path)
        host = make_plugin_manager(disable=plugins.disable, strict=strict or plugins.strict)
    classes = host.detector_classes()
    config = load_config(
        path, {cls.name: dict(cls.settings) for cls in classes}, plugin_names={r.name for r in host.records}, unloaded=host.unloaded
    )
    for warning in config.warnings:
        log.warning("config.warning", warning=warning)
    return config, load_data(config.agent, host, classes)


@dataclass(eq=False)  # compared and hashed by identity: the daemon counts each one's users
class Runtime:
    scanner: Scanner
    engine: DNSEngine
    data: Data
    http: HttpProbe | None = None
    detectors: list[Detector] = field(default_factory=list)
    isolation: Isolation | None = None  # closed with the runtime when the runtime made it

    async def close(self) -> None:
        if self.isolation is not None:
            await self.isolation.close()
        if self.http is not None:
            await self.http.close()
        await self.engine.close()


def build_runtime(
    agent: AgentSettings,
    data: Data,
    detector_settings: Mapping[str, Mapping[str, Any]] | None = None,
    *,
    only: Sequence[str] = (),
    dns_stats: Counter[str] | None = None,
    on_rate_change: Callable[[RateChange], None] | None = None,
    isolation: Isolation | None = None,
) -> Runtime:
    """Build engine, probe and scanner. Must be called inside a running event loop.

    A daemon passes its one `isolation` (lanes and quarantine outlive a reload); without it the
    runtime makes its own and closes it with itself.
    """
    engine = DNSEngine(agent.nameservers, timeout=agent.dns_timeout, tries=agent.dns_tries, max_inflight=agent.max_inflight, stats=dns_stats, max_qps=agent.query_rate)
    engine.rate_listeners.append(on_rate_change or log_rate_change)
    http = HttpProbe(engine, timeout=agent.http_timeout, allow_private=agent.http_probe_allow_private) if agent.http_probe else None
    settings = detector_settings or {}
    detectors = [cls(settings.get(cls.name)) for cls in data.detector_classes if not only or cls.name in only]
    services = Services(engine, data.catalog, data.ranges, agent.home_codes, http)
    owned = Isolation() if isolation is None else None
    scanner = Scanner(services, detectors, detector_timeout=agent.detector_timeout, isolation=isolation or owned, trusted=data.trusted)
    return Runtime(scanner, engine, data, http, detectors, owned)
