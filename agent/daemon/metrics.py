"""Prometheus metrics rendered from a snapshot of the agent's state at scrape time.

`collect()` does no I/O: it reads the in-memory snapshot the daemon keeps up to date after
every scan. The same family builders render `/probe` results, so both pages agree.
"""

from __future__ import annotations

import platform
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from .. import __version__
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


def _foreign(dep: Dependency, home: frozenset[str]) -> bool:
    return bool(dep.jurisdiction) and dep.jurisdiction not in home


def dependency_families(views: Iterable[TargetView], home: frozenset[str], detectors: Iterable[str]) -> Iterator[Metric]:
    """Per-target families shared by /metrics and /probe."""
    info = GaugeMetricFamily(
        "dijkwacht_dependency_info",
        "1 for each current dependency of a target on a provider, with the provider's ultimate parent's jurisdiction." + CACHED,
        labels=["target", "category", "provider", "jurisdiction", "foreign"],
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
                is_foreign = _foreign(dep, home)
                count += is_foreign
                info.add_metric([domain, category, dep.provider, dep.jurisdiction, "true" if is_foreign else "false"], 1)
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
    def __init__(self, snapshot: Snapshot) -> None:
        self.snapshot = snapshot

    def collect(self) -> Iterator[Metric]:
        s = self.snapshot
        build = GaugeMetricFamily("dijkwacht_build_info", "Version of dijkwacht and of the Python running it.", labels=["version", "python_version"])
        build.add_metric([__version__, platform.python_version()], 1)
        yield build
        yield GaugeMetricFamily("dijkwacht_targets", "Number of configured targets.", value=len(s.views))
        keys = list(s.label_keys)
        target_info = GaugeMetricFamily("dijkwacht_target_info", "1 per configured target, carrying its configured labels, to join on.", labels=["target", *keys])
        for view in s.views.values():
            target_info.add_metric([view.domain, *(view.labels.get(k, "") for k in keys)], 1)
        yield target_info
        yield from dependency_families(s.views.values(), s.home, s.detectors)

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
