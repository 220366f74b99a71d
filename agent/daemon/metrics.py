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
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from .. import __version__, figures
from ..catalog import is_foreign
from ..dns import STATUSES
from ..figures import CHANGE_KINDS
from ..ipranges import RangeFile
from ..pluginhost import PluginRecord
from ..scanner import Dependency
from ..shard import Shard
from ..state import Change

CACHED = " Results are cached from the last scan of each target, not measured at scrape time."

# How a confirmed change moved a (target, category) relative to the home jurisdictions
# (figures.change_kind, the one definition the report uses too). Bounded, so every
# (category, kind, reason) counter series exists from the start and increase() sees the first change.
KINDS = CHANGE_KINDS
REASONS = ("dns", "ownership")
DURATION_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)


def change_kind(change: Change, home: frozenset[str]) -> str:
    return figures.change_kind(change.from_jurisdiction, change.to_jurisdiction, change.to_foreign, home)


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


def dependency_families(views: Iterable[TargetView], home: frozenset[str], detectors: Iterable[str], prefix: str = "dijkwacht_") -> Iterator[Metric]:
    """Per-target families. /probe renders them under its own prefix, so that a Prometheus
    scraping both /metrics and /probe never mixes an on-demand scan into the agent's figures."""
    info = GaugeMetricFamily(
        prefix + "dependency_info",
        "1 for each current dependency of a target on a provider, with its role and the provider's ultimate parent's jurisdiction." + CACHED,
        labels=["target", "category", "role", "provider", "jurisdiction", "foreign", "confidence"],
    )
    foreign = GaugeMetricFamily(prefix + "foreign_dependencies", "Number of current foreign dependencies per target and category." + CACHED, labels=["target", "category"])
    success = GaugeMetricFamily(prefix + "last_successful_scan_timestamp_seconds", "Unix time of the last scan of the target that had no errors.", labels=["target"])
    errors = GaugeMetricFamily(prefix + "scan_errors", "Errors in the latest scan of the target, per detector (0 when fine).", labels=["target", "detector"])
    detectors = tuple(detectors)
    for view in views:
        domain = view.domain
        for category, deps in view.deps.items():
            count = 0
            for dep in deps:
                foreign_dep = is_foreign(dep.jurisdiction, home)
                count += foreign_dep
                info.add_metric([domain, category, dep.role, dep.provider, dep.jurisdiction, "true" if foreign_dep else "false", dep.confidence], 1)
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
    categories: tuple[str, ...] = ()
    interval: float = 0.0
    confirmations: int = 0
    shard: Shard = Shard(0, 1)
    last_changes: dict[tuple[str, str], Change] = field(default_factory=dict)
    changes_total: Counter[tuple[str, str, str]] = field(default_factory=Counter)  # (category, kind, reason)
    durations: list[int] = field(default_factory=lambda: [0] * len(DURATION_BUCKETS))  # observations per bucket
    durations_sum: float = 0.0
    durations_count: int = 0
    dns_queries: Counter[str] = field(default_factory=Counter)
    detector_errors: Counter[str] = field(default_factory=Counter)
    catalog_loaded: float = 0.0
    catalog_updated: float = 0.0
    catalog_providers: int = 0
    range_files: tuple[RangeFile, ...] = ()
    reload_ok: bool = True
    reload_success_time: float = 0.0
    plugins: tuple[PluginRecord, ...] = ()
    detector_plugin: dict[str, str] = field(default_factory=dict)  # detector -> plugin
    quarantined: dict[str, str] = field(default_factory=dict)  # detector -> why
    loop_stalls: Counter[str] = field(default_factory=Counter)  # detector found running ("" none) -> stalls

    def observe_duration(self, seconds: float) -> None:
        for i, bound in enumerate(DURATION_BUCKETS):
            if seconds <= bound:
                self.durations[i] += 1
                break
        self.durations_sum += seconds
        self.durations_count += 1


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
        yield GaugeMetricFamily("dijkwacht_scan_interval_seconds", "Configured time between two scans of a target ([daemon] interval).", value=s.interval)
        yield GaugeMetricFamily("dijkwacht_scan_confirmations", "Consecutive agreeing scans needed to confirm a change ([daemon] confirmations).", value=s.confirmations)
        # Every agent says how many shards there are, so a shard without an agent (a pod that
        # never got scheduled has no `up` series at all) shows as a missing `shard` label value.
        shards = GaugeMetricFamily("dijkwacht_shards", "Number of shards the targets are split over ([daemon] shard or --shard; 1 when not sharded), with this agent's index.", labels=["shard"])
        shards.add_metric([str(s.shard.index)], s.shard.total)
        yield shards

        last = GaugeMetricFamily(
            "dijkwacht_dependency_last_change_timestamp_seconds",
            "Unix time of the last confirmed dependency change per target and category; labels describe it. From the persisted history.",
            labels=["target", "category", "from_provider", "to_provider", "from_jurisdiction", "to_jurisdiction", "to_foreign", "kind", "reason"],
        )
        for (target, category), c in s.last_changes.items():
            if target in s.views:
                last.add_metric(
                    [target, category, ",".join(c.from_providers), ",".join(c.to_providers), c.from_jurisdiction, c.to_jurisdiction,
                     str(c.to_foreign).lower(), change_kind(c, s.home), c.reason],
                    c.at,
                )
        yield last
        changes = CounterMetricFamily(
            "dijkwacht_dependency_changes", "Confirmed dependency changes since the agent started, by category, kind and reason.",
            labels=["category", "kind", "reason"],
        )
        categories = sorted({*s.categories, *(c for c, _, _ in s.changes_total)})
        for category in categories:
            for kind in KINDS:
                for reason in REASONS:
                    changes.add_metric([category, kind, reason], s.changes_total.get((category, kind, reason), 0))
        yield changes
        cumulative, buckets = 0, []
        for bound, count in zip(DURATION_BUCKETS, s.durations):
            cumulative += count
            buckets.append((str(float(bound)), cumulative))
        buckets.append(("+Inf", s.durations_count))
        yield HistogramMetricFamily("dijkwacht_scan_duration_seconds", "Duration of one target scan (all detectors).", buckets=buckets, sum_value=s.durations_sum)
        queries = CounterMetricFamily("dijkwacht_dns_queries", "DNS queries sent, by result class.", labels=["result"])
        # Every class from the start: the first failures must show in rate(), and the failure
        # share needs its numerator before the first failure.
        for result in sorted({*STATUSES, *s.dns_queries}):
            queries.add_metric([result], s.dns_queries.get(result, 0))
        yield queries
        detector_errors = CounterMetricFamily("dijkwacht_detector_errors", "Errors reported by detectors since start.", labels=["detector"])
        for detector in s.detectors:
            detector_errors.add_metric([detector], s.detector_errors.get(detector, 0))
        yield detector_errors
        quarantined = {s.detector_plugin.get(d) for d in s.quarantined}
        plugins = GaugeMetricFamily(
            "dijkwacht_plugin_info",
            "1 per plugin found, with its status: loaded, disabled, failed (could not be used; `dijkwacht plugins` says why) "
            "or quarantined (a detector of it timed out repeatedly and is no longer run until a restart).",
            labels=["plugin", "version", "distribution", "status"],
        )
        for p in s.plugins:
            plugins.add_metric([p.name, p.version, p.distribution, "quarantined" if p.name in quarantined else p.status], 1)
        yield plugins
        stalls = CounterMetricFamily(
            "dijkwacht_event_loop_stalls", "Times the agent's event loop did not turn for over 0.5 s, by the detector found running (\"\" if none).", labels=["detector"]
        )
        for detector, count in sorted(s.loop_stalls.items()):
            stalls.add_metric([detector], count)
        yield stalls
        yield GaugeMetricFamily("dijkwacht_catalog_loaded_timestamp_seconds", "Unix time the provider catalog was last loaded.", value=s.catalog_loaded)
        yield GaugeMetricFamily("dijkwacht_catalog_updated_timestamp_seconds", "Modification time of the newest loaded catalog file.", value=s.catalog_updated)
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
    """Metrics of one on-demand scan, for /probe: all named dijkwacht_probe_*."""

    def __init__(self, view: TargetView, home: frozenset[str], detectors: Iterable[str], duration: float) -> None:
        self.view, self.home, self.detectors, self.duration = view, home, tuple(detectors), duration

    def collect(self) -> Iterator[Metric]:
        yield GaugeMetricFamily("dijkwacht_probe_success", "1 if the scan had no errors.", value=int(not any(self.view.errors.values())))
        yield GaugeMetricFamily("dijkwacht_probe_duration_seconds", "How long the scan took.", value=self.duration)
        for family in dependency_families([self.view], self.home, self.detectors, prefix="dijkwacht_probe_"):
            if family.name != "dijkwacht_probe_last_successful_scan_timestamp_seconds":  # that is now, by definition
                yield family


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
