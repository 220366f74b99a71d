"""Running one detector exactly as the agent runs it, for plugin tests."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..catalog import Catalog, expand_home, load_catalog
from ..config import check_detector_settings
from ..detector import Detector
from ..dns import DNSEngine
from ..ipranges import IPRanges
from ..isolation import Isolation
from ..pluginhost import PluginRecord, check_detector_class, make_plugin_manager
from ..scanner import Dependency, Scanner, Services, TargetResult
from ..targets import Target, normalise_domain
from .dnsserver import FakeDNSServer


@dataclass
class DetectorRun:
    """What the agent made of one detector's run on one target."""

    result: TargetResult

    @property
    def dependencies(self) -> list[Dependency]:
        """Accepted findings merged per (category, provider), with name, parent, jurisdiction, foreign."""
        return self.result.dependencies

    @property
    def providers(self) -> set[tuple[str, str]]:
        """{(category, provider)} of the dependencies."""
        return {(d.category, d.provider) for d in self.result.dependencies}

    @property
    def errors(self) -> list[str]:
        """Exceptions, timeouts, rejected findings and failed lookups, as the scan JSON shows them."""
        return [e.message for e in self.result.errors]

    @property
    def warnings(self) -> list[str]:
        """What the detector reported with `ctx.warn()`, as the scan JSON shows it."""
        return [w.message for w in self.result.warnings]


def plugin_catalog(*sources: str | os.PathLike[str] | object) -> Catalog:
    """The built-in catalog plus the given catalog files and plugins' `dijkwacht_catalog_files()`.

    Nothing else installed is read, so another plugin's catalog can neither break nor change a test.
    """
    files: list[Path] = []
    for source in sources:
        if isinstance(source, (str, os.PathLike)):
            files.append(Path(source))
        else:
            files.extend(Path(p) for p in getattr(source, "dijkwacht_catalog_files")())
    return load_catalog(files)


def _own_catalog(cls: type[Detector]) -> Catalog:
    """The built-in catalog plus the files of the plugin module that defines `cls`, if it has the hook."""
    module = sys.modules.get(cls.__module__)
    return plugin_catalog(module) if hasattr(module, "dijkwacht_catalog_files") else plugin_catalog()


async def run_detector(
    detector: type[Detector],
    target: str | Target,
    server: FakeDNSServer | str,
    *,
    settings: Mapping[str, Any] | None = None,
    catalog: Catalog | None = None,
    ip: IPRanges | None = None,
    hosts: Iterable[str] = (),
    home: Iterable[str] = ("EU",),
    timeout: float = 10.0,
    dns_timeout: float = 0.5,
) -> DetectorRun:
    """Run `detector` on `target` against `server` (a FakeDNSServer or "ip:port") as the agent does.

    The class is checked as the plugin loader checks it and `settings` as `[detectors.NAME]`
    is; the detector runs on its own thread like every third-party detector, under `timeout`;
    what it returns is checked against the contract; failed lookups, exceptions and rejected
    findings become `errors`. `catalog` defaults to the built-in one plus the catalog files of
    the module defining the class (if that module implements `dijkwacht_catalog_files`).
    """
    check_detector_class(detector)
    options = check_detector_settings(detector.settings, settings or {})
    if isinstance(target, str):
        target = Target(normalise_domain(target), hosts=tuple(hosts))
    address = server.address if isinstance(server, FakeDNSServer) else server
    engine = DNSEngine([address], timeout=dns_timeout, tries=1)
    isolation = Isolation()
    try:
        services = Services(engine, catalog or _own_catalog(detector), ip or IPRanges(), expand_home(home))
        scanner = Scanner(services, [detector(options)], detector_timeout=timeout, isolation=isolation)
        return DetectorRun(await scanner.scan(target))
    finally:
        await isolation.close()
        await engine.close()


def check_plugin(plugin: str | object) -> PluginRecord:
    """Load a plugin as the agent would, next to the built-ins, and return its record.

    `plugin` is a module (or object) with the hooks, or the entry-point name of an installed
    plugin. `record.status` is "loaded", or "failed" with `record.error` saying why.
    """
    if isinstance(plugin, str):
        host = make_plugin_manager(autoload=True)
        found = [r for r in host.records if r.name == plugin and not r.builtin] or [r for r in host.records if r.name == plugin]
        if not found:
            raise LookupError(f"no plugin with the entry-point name '{plugin}' is installed")
        return found[0]
    return make_plugin_manager([plugin], autoload=False).records[-1]
