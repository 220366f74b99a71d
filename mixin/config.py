"""The mixin's settings, in one place. Override any of them with a YAML file of the same keys:
`python -m mixin --config my.yml --out DIR`."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

import yaml


@dataclass(frozen=True)
class Config:
    # Selects the agents' series (the scrape job of /metrics). /probe answers with other metric
    # names, so a probe job in the same Prometheus never counts.
    selector: str = 'job="dijkwacht"'
    # Labels that identify one agent; per-target series are joined on these plus `target`.
    # `namespace` tells apart Helm releases in different namespaces (their pods, the
    # `instance`, may have the same names); outside Kubernetes the label is absent, and
    # grouping by an absent label changes nothing.
    agent_labels: tuple[str, ...] = ("job", "namespace", "instance")
    # Labels that identify one deployment of sharded agents (the agents that export the same
    # `dijkwacht_shards`): every Helm release gets job="dijkwacht", in its own namespace.
    deployment_labels: tuple[str, ...] = ("job", "namespace")
    # The target label (from `labels = { ... }` in the agent's configuration) to break figures down by.
    group_label: str = "sector"

    # Move alerts fire for this long after the confirmed change.
    move_alert_window: str = "24h"
    # Series of an agent that restarts (or misses a scrape) are bridged for this long, so a
    # restart neither resolves nor re-fires an alert.
    restart_tolerance: str = "10m"
    # A target is stale after this many scan intervals without a clean scan.
    stale_intervals: int = 3
    # A target's scan failure is persistent after this many intervals of errors, and `for:` on top.
    failing_intervals: int = 2
    failing_for: str = "30m"
    # Share of targets at which a problem is the agent's or resolver's, not the targets'.
    widespread_ratio: float = 0.5
    widespread_for: str = "30m"
    # Share of failed DNS queries (servfail, refused, timeout, error) over `dns_window`.
    dns_failure_ratio: float = 0.5
    dns_window: str = "5m"
    dns_for: str = "5m"
    down_for: str = "5m"
    shard_missing_for: str = "5m"
    # The agent's own faults (state database writes, caught internal errors) alert when any
    # happened within this window.
    fault_window: str = "15m"
    reload_failed_for: str = "5m"
    ip_data_max_age: str = "14d"
    catalog_max_age: str = "180d"
    data_age_for: str = "1h"

    # Evaluation interval of the alerts and the per-agent series they read; None leaves
    # Prometheus' global one.
    rule_interval: str | None = None
    # Evaluation interval of the overview's figures. They change once per scan interval at most
    # and cost the most (every target's series, see docs/performance.md); under the query
    # lookback of 5m, so an instant query always finds the latest.
    overview_interval: str = "2m"
    # Where docs/runbooks.md is published; each alert links to its own section.
    runbook_url: str = "https://github.com/example/dijkwacht/blob/main/docs/runbooks.md"
    # Grafana: dashboard uids, tags, folder and the default time range.
    uid_prefix: str = "dijkwacht"
    dashboard_tags: tuple[str, ...] = ("dijkwacht",)
    grafana_folder: str = "dijkwacht"
    time_from: str = "now-7d"
    # Severity label per alert class.
    severities: dict[str, str] = field(default_factory=lambda: {"critical": "critical", "warning": "warning", "info": "info"})

    @property
    def by_agent(self) -> str:
        return ", ".join(self.agent_labels)

    @property
    def by_deployment(self) -> str:
        return ", ".join(self.deployment_labels)

    @property
    def by_target(self) -> str:
        return ", ".join((*self.agent_labels, "target"))

    def sel(self, extra: str = "") -> str:
        """A selector of the agents' series, with extra matchers."""
        return "{" + ", ".join(m for m in (self.selector, extra) if m) + "}"


def seconds(duration: str) -> int:
    """A Prometheus duration ("90s", "15m", "24h", "14d", "1h30m") in seconds."""
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}
    total, number = 0, ""
    for char in duration:
        if char.isdigit():
            number += char
        elif char in units and number:
            total += int(number) * units[char]
            number = ""
        else:
            raise ValueError(f"not a duration: {duration!r}")
    if number:
        raise ValueError(f"not a duration: {duration!r} (unit missing)")
    return total


def load(path: Path | None) -> Config:
    if path is None:
        return Config()
    data = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    known = {f.name for f in dataclasses.fields(Config)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise SystemExit(f"{path}: unknown key {unknown[0]!r} (known: {', '.join(sorted(known))})")
    for key in ("agent_labels", "deployment_labels", "dashboard_tags"):
        if key in data:
            data[key] = tuple(data[key])
    return Config(**data)
