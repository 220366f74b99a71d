"""Prometheus metrics rendered from a snapshot of the agent's state at scrape time.

`collect()` does no I/O: it reads the in-memory snapshot the daemon keeps up to date after
every scan. The same family builders render `/probe` results, so both pages agree.
"""

from __future__ import annotations

import asyncio
import platform
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field

from prometheus_client import generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from .. import __version__
from ..catalog import is_foreign
from ..ipranges import RangeFile
from ..scanner import Dependency
from .state import Change

CACHED = " Results are cached from the last scan of each target, not measured at scrape time."


@dataclass
class TargetView:
    """What the metrics say about one target: confirmed dependencies and its last scan."""

    domain: str
    labels: Mapping[str, str] = field(default_factory=dict)
    deps: dict[str, list[Dependency]] = field(default_factory=dict)  # category -> dependencies
    last_success: float | None = None
    errors: dict[str, int] = field(default_factory=dict)  # detector -> errors in the last scan
    scanned: bool = False
    # This target's sample lines per family, rendered once per change (see TargetRenderer).
    rendered: dict[str, str] | None = field(default=None, compare=False, repr=False)


def target_info_family(views: Iterable[TargetView], label_keys: Iterable[str]) -> Metric:
    keys = list(label_keys)
    family = GaugeMetricFamily("dijkwacht_target_info", "1 per configured target, carrying its configured labels, to join on.", labels=["target", *keys])
    for view in views:
        family.add_metric([view.domain, *(view.labels.get(k, "") for k in keys)], 1)
    return family


def dependency_families(views: Iterable[TargetView], home: frozenset[str], detectors: Iterable[str]) -> Iterator[Metric]:
    """Per-target families shared by /metrics and /probe."""
    info = GaugeMetricFamily(
        "dijkwacht_dependency_info",
        "1 for each current dependency of a target on a provider, with its role and the provider's ultimate parent's jurisdiction." + CACHED,
        labels=["target", "category", "role", "provider", "jurisdiction", "foreign"],
    )
    foreign = GaugeMetricFamily("dijkwacht_foreign_dependencies", "Number of current foreign dependencies per target and category." + CACHED, labels=["target", "category"])
    success = GaugeMetricFamily("dijkwacht_last_successful_scan_timestamp_seconds", "Unix time of the last scan of the target that had no errors.", labels=["target"])
    errors = GaugeMetricFamily("dijkwacht_scan_errors", "Errors in the latest scan of the target, per detector (0 when fine).", labels=["target", "detector"])
    detectors = tuple(detectors)
    for view in views:
        domain = view.domain
        for category, deps in view.deps.items():
            count = 0
            for dep in deps:
                foreign_dep = is_foreign(dep.jurisdiction, home)
                count += foreign_dep
                info.add_metric([domain, category, dep.role, dep.provider, dep.jurisdiction, "true" if foreign_dep else "false"], 1)
            foreign.add_metric([domain, category], count)
        if view.last_success is not None:
            success.add_metric([domain], view.last_success)
        if view.scanned:
            for detector in detectors:
                errors.add_metric([domain, detector], view.errors.get(detector, 0))
    yield from (info, foreign, success, errors)


@dataclass
class Snapshot:
    """Current state for the collector. The daemon replaces its parts; collect() only reads."""

    views: dict[str, TargetView] = field(default_factory=dict)
    label_keys: tuple[str, ...] = ()
    home: frozenset[str] = frozenset()
    detectors: tuple[str, ...] = ()
    last_changes: dict[tuple[str, str], Change] = field(default_factory=dict)
    changes_total: Counter[tuple[str, str, str, str, str]] = field(default_factory=Counter)
    dns_queries: Counter[str] = field(default_factory=Counter)
    detector_errors: Counter[str] = field(default_factory=Counter)
    catalog_loaded: float = 0.0
    catalog_providers: int = 0
    range_files: tuple[RangeFile, ...] = ()
    reload_ok: bool = True
    reload_success_time: float = 0.0


class StateCollector(Collector):
    """The agent-wide families. The per-target ones come from TargetRenderer."""

    def __init__(self, snapshot: Snapshot) -> None:
        self.snapshot = snapshot

    def collect(self) -> Iterator[Metric]:
        s = self.snapshot
        build = GaugeMetricFamily("dijkwacht_build_info", "Version of dijkwacht and of the Python running it.", labels=["version", "python_version"])
        build.add_metric([__version__, platform.python_version()], 1)
        yield build
        yield GaugeMetricFamily("dijkwacht_targets", "Number of configured targets.", value=len(s.views))

        last = GaugeMetricFamily(
            "dijkwacht_dependency_last_change_timestamp_seconds",
            "Unix time of the last confirmed dependency change per target and category; labels describe it. From the persisted history.",
            labels=["target", "category", "from_provider", "to_provider", "from_jurisdiction", "to_jurisdiction", "to_foreign", "reason"],
        )
        for (target, category), c in s.last_changes.items():
            if target in s.views:
                last.add_metric(
                    [target, category, ",".join(c.from_providers), ",".join(c.to_providers), c.from_jurisdiction, c.to_jurisdiction, str(c.to_foreign).lower(), c.reason],
                    c.at,
                )
        yield last
        changes = CounterMetricFamily(
            "dijkwacht_dependency_changes", "Confirmed dependency changes since the agent started.",
            labels=["category", "from_jurisdiction", "to_jurisdiction", "to_foreign", "reason"],
        )
        for labels, count in sorted(s.changes_total.items()):
            changes.add_metric(list(labels), count)
        yield changes
        queries = CounterMetricFamily("dijkwacht_dns_queries", "DNS queries sent, by result class.", labels=["result"])
        for result, count in sorted(s.dns_queries.items()):
            queries.add_metric([result], count)
        yield queries
        detector_errors = CounterMetricFamily("dijkwacht_detector_errors", "Errors reported by detectors since start.", labels=["detector"])
        for detector in s.detectors:
            detector_errors.add_metric([detector], s.detector_errors.get(detector, 0))
        yield detector_errors
        yield GaugeMetricFamily("dijkwacht_catalog_loaded_timestamp_seconds", "Unix time the provider catalog was last loaded.", value=s.catalog_loaded)
        yield GaugeMetricFamily("dijkwacht_catalog_providers", "Number of providers in the loaded catalog.", value=s.catalog_providers)
        updated = GaugeMetricFamily("dijkwacht_ip_ranges_updated_timestamp_seconds", "Unix time the provider's IP range file was last refreshed.", labels=["provider"])
        prefixes = GaugeMetricFamily("dijkwacht_ip_ranges_prefixes", "IP prefixes loaded for the provider.", labels=["provider"])
        for f in s.range_files:
            updated.add_metric([f.provider], f.updated)
            prefixes.add_metric([f.provider], f.prefixes_v4 + f.prefixes_v6)
        yield updated
        yield prefixes
        yield GaugeMetricFamily("dijkwacht_config_last_reload_successful", "1 if the last configuration (re)load succeeded.", value=int(s.reload_ok))
        yield GaugeMetricFamily("dijkwacht_config_last_reload_success_timestamp_seconds", "Unix time of the last successful configuration load.", value=s.reload_success_time)


class ProbeCollector(Collector):
    """Metrics of one on-demand scan, for /probe."""

    def __init__(self, view: TargetView, home: frozenset[str], detectors: Iterable[str], duration: float) -> None:
        self.view, self.home, self.detectors, self.duration = view, home, tuple(detectors), duration

    def collect(self) -> Iterator[Metric]:
        yield GaugeMetricFamily("dijkwacht_probe_success", "1 if the scan had no errors.", value=int(not any(self.view.errors.values())))
        yield GaugeMetricFamily("dijkwacht_probe_duration_seconds", "How long the scan took.", value=self.duration)
        yield from dependency_families([self.view], self.home, self.detectors)


class _Once(Collector):
    def __init__(self, families: Iterable[Metric]) -> None:
        self.families = list(families)

    def collect(self) -> Iterator[Metric]:
        return iter(self.families)


def _split(text: bytes) -> dict[str, tuple[str, str]]:
    """Exposition text -> family name -> (HELP/TYPE header lines, sample lines)."""
    out: dict[str, tuple[str, str]] = {}
    name = ""
    for line in text.decode().splitlines(keepends=True):
        if line.startswith("# HELP "):
            name = line.split(" ", 3)[2]
            out[name] = (line, "")
        elif line.startswith("#"):
            out[name] = (out[name][0] + line, out[name][1])
        else:
            out[name] = (out[name][0], out[name][1] + line)
    return out


class TargetRenderer:
    """The per-target families (16 samples a target), rendered per target once per change.

    prometheus_client formats every sample at every scrape; for 16,500 targets that is about
    270,000 samples and 1.6 s. A target's samples only change when it is scanned, so each
    TargetView keeps its own lines (formatted by prometheus_client itself, so the text is
    identical) and a scrape only joins them, family by family, under the family headers.
    """

    FAMILIES = (
        "dijkwacht_target_info",
        "dijkwacht_dependency_info",
        "dijkwacht_foreign_dependencies",
        "dijkwacht_last_successful_scan_timestamp_seconds",
        "dijkwacht_scan_errors",
    )

    def __init__(self, snapshot: Snapshot) -> None:
        self.snapshot = snapshot

    def _families(self, views: list[TargetView]) -> list[Metric]:
        s = self.snapshot
        return [target_info_family(views, s.label_keys), *dependency_families(views, s.home, s.detectors)]

    def prepare(self, view: TargetView) -> None:
        if view.rendered is None:
            view.rendered = {name: lines for name, (_, lines) in _split(generate_latest(_Once(self._families([view])))).items()}

    async def prepare_all(self, chunk: int = 500) -> None:
        """Render every target ahead of the first scrape, yielding to the loop between chunks."""
        views = list(self.snapshot.views.values())
        for start in range(0, len(views), chunk):
            for view in views[start : start + chunk]:
                self.prepare(view)
            await asyncio.sleep(0)

    def render(self) -> bytes:
        headers = _split(generate_latest(_Once(self._families([]))))
        views = list(self.snapshot.views.values())
        for view in views:
            self.prepare(view)
        parts = []
        for name in self.FAMILIES:
            parts.append(headers[name][0])
            parts.extend(view.rendered.get(name, "") for view in views)
        return "".join(parts).encode()
