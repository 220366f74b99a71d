"""Prometheus recording rules and alerts.

Aggregations always name their labels (`by (...)`), so a label added to a metric later cannot
change a figure. Per-target series are joined per agent (`agent_labels` + `target`).
"""

from __future__ import annotations

from dijkwacht.dns import FAILED

from .config import Config, seconds

FAILED_RESULTS = "|".join(sorted(FAILED))


def recorded(cfg: Config) -> dict[str, str]:
    """Names of the recorded series, by role."""
    g = cfg.group_label
    return {
        "target_foreign": "target:dijkwacht_foreign_dependencies:any",
        "target_errors": "target:dijkwacht_scan_errors:sum",
        "scanned": "dijkwacht:targets_scanned:count",
        "foreign": "dijkwacht:targets_foreign:count",
        "foreign_ratio": "dijkwacht:targets_foreign:ratio",
        "category_scanned": "category:dijkwacht_targets_scanned:count",
        "category_foreign": "category:dijkwacht_targets_foreign:count",
        "category_foreign_ratio": "category:dijkwacht_targets_foreign:ratio",
        "provider": "provider:dijkwacht_targets:count",
        "category_provider": "category_provider:dijkwacht_targets:count",
        "category_role": "category_role:dijkwacht_targets:count",
        "category_role_foreign": "category_role:dijkwacht_targets_foreign:count",
        "category_role_foreign_ratio": "category_role:dijkwacht_targets_foreign:ratio",
        "jurisdiction": "jurisdiction:dijkwacht_targets:count",
        "category_jurisdiction": "category_jurisdiction:dijkwacht_targets:count",
        "group_scanned": f"{g}:dijkwacht_targets_scanned:count",
        "group_foreign": f"{g}:dijkwacht_targets_foreign:count",
        "group_foreign_ratio": f"{g}:dijkwacht_targets_foreign:ratio",
        "group_category_foreign_ratio": f"{g}_category:dijkwacht_targets_foreign:ratio",
        "dns_failed_ratio": "instance:dijkwacht_dns_queries_failed:ratio",
        "stale": "instance:dijkwacht_targets_stale:count",
        "detector_failing_ratio": "instance_detector:dijkwacht_targets_failing:ratio",
    }


def recording_rules(cfg: Config) -> list[dict]:
    r = recorded(cfg)
    s, agent, target, g = cfg.sel, cfg.by_agent, cfg.by_target, cfg.group_label
    # 1 per (agent, target, category) when the category has a foreign dependency, else 0.
    foreign01 = f"clamp_max(dijkwacht_foreign_dependencies{s()}, 1)"
    with_group = f"on ({target}) group_left ({g}) max by ({target}, {g}) (dijkwacht_target_info{s()})"
    deps = f"dijkwacht_dependency_info{s()}"
    foreign_true = 'foreign="true"'
    failed = f'result=~"{FAILED_RESULTS}"'
    # 1 per target without a clean scan for `stale_intervals` although its latest scan had no
    # errors (a target with errors is failing, not stale), else 0; and 1 per target that never
    # had a clean scan nor errors (a stuck agent without stored state), as
    # DijkwachtTargetNotScanned counts them, so that DijkwachtScansStalled sees them too.
    stale = (
        f"((time() - dijkwacht_last_successful_scan_timestamp_seconds{s()})"
        f" > bool on ({agent}) group_left () ({cfg.stale_intervals} * dijkwacht_scan_interval_seconds{s()}))"
        f" * on ({target}) ({r['target_errors']} == bool 0)"
        f" or on ({target}) (max by ({target}) (dijkwacht_target_info{s()})"
        f" unless on ({target}) dijkwacht_last_successful_scan_timestamp_seconds{s()}"
        f" unless on ({target}) ({r['target_errors']} > 0))"
    )
    health = [
        # Per target (16,500 series for 16,500 targets, from five times as many): read once per
        # evaluation, by the figures and alerts below.
        (r["target_foreign"], f"max by ({target}) ({foreign01})"),
        (r["target_errors"], f"sum by ({target}) (dijkwacht_scan_errors{s()})"),
        # Per agent: what the alerts compare against.
        (
            r["dns_failed_ratio"],
            f"sum by ({agent}) (rate(dijkwacht_dns_queries_total{s(failed)}[{cfg.dns_window}]))"
            f" / sum by ({agent}) (rate(dijkwacht_dns_queries_total{s()}[{cfg.dns_window}]))",
        ),
        (r["stale"], f"sum by ({agent}) ({stale})"),
        (r["detector_failing_ratio"], f"avg by ({agent}, detector) (dijkwacht_scan_errors{s()} > bool 0)"),
    ]
    overview = [
        # The headline: targets with any foreign dependency (of those with a completed scan).
        (r["scanned"], f"count({r['target_foreign']})"),
        (r["foreign"], f"sum({r['target_foreign']})"),
        (r["foreign_ratio"], f"{r['foreign']} / {r['scanned']}"),
        (r["category_scanned"], f"count by (category) ({foreign01})"),
        (r["category_foreign"], f"sum by (category) ({foreign01})"),
        (r["category_foreign_ratio"], f"{r['category_foreign']} / {r['category_scanned']}"),
        # Targets per provider / jurisdiction: one per target, whatever else tells the series apart.
        (r["provider"], f"count by (provider, jurisdiction, foreign) (max by ({target}, provider, jurisdiction, foreign) ({deps}))"),
        (r["category_provider"], f"count by (category, role, provider, jurisdiction, foreign) (max by ({target}, category, role, provider, jurisdiction, foreign) ({deps}))"),
        # Per role (email mailbox / gateway / sending, meeting, ...): of the targets with a
        # dependency in the role, those with a foreign one.
        (r["category_role"], f"count by (category, role) (max by ({target}, category, role) ({deps}))"),
        (r["category_role_foreign"], f"count by (category, role) (max by ({target}, category, role) (dijkwacht_dependency_info{s(foreign_true)}))"),
        (r["category_role_foreign_ratio"], f"({r['category_role_foreign']} or 0 * {r['category_role']}) / {r['category_role']}"),
        (r["jurisdiction"], f"count by (jurisdiction, foreign) (max by ({target}, jurisdiction, foreign) ({deps}))"),
        (r["category_jurisdiction"], f"count by (category, jurisdiction, foreign) (max by ({target}, category, jurisdiction, foreign) ({deps}))"),
        (r["group_scanned"], f"count by ({g}) ({r['target_foreign']} * {with_group})"),
        (r["group_foreign"], f"sum by ({g}) ({r['target_foreign']} * {with_group})"),
        (r["group_foreign_ratio"], f"{r['group_foreign']} / {r['group_scanned']}"),
        (r["group_category_foreign_ratio"], f"avg by ({g}, category) ({foreign01} * {with_group})"),
    ]
    # Rules of a group run in order (later ones read the earlier ones' results); the overview
    # group reads the health group's latest per-target series.
    return [
        _group("dijkwacht.health", cfg.rule_interval, [{"record": name, "expr": expr} for name, expr in health]),
        _group("dijkwacht.overview", cfg.overview_interval, [{"record": name, "expr": expr} for name, expr in overview]),
    ]


def _group(name: str, interval: str | None, rules: list[dict]) -> dict:
    group: dict = {"name": name}
    if interval:
        group["interval"] = interval
    group["rules"] = rules
    return group


def _anchor(name: str) -> str:
    return name.lower()


def alert_rules(cfg: Config) -> list[dict]:
    r = recorded(cfg)
    s, agent, target, deployment = cfg.sel, cfg.by_agent, cfg.by_target, cfg.by_deployment
    sev = cfg.severities
    window = seconds(cfg.move_alert_window)
    resolver_down = f"({r['dns_failed_ratio']} > {cfg.dns_failure_ratio})"
    detectors_down = f"(max by ({agent}) ({r['detector_failing_ratio']}) > {cfg.widespread_ratio})"
    agent_down = f"({r['stale']} / on ({agent}) dijkwacht_targets{s()} > {cfg.widespread_ratio})"
    interval = f"dijkwacht_scan_interval_seconds{s()}"

    def last_change(matchers: str) -> str:
        return (
            f"last_over_time(dijkwacht_dependency_last_change_timestamp_seconds{s(matchers)}[{cfg.restart_tolerance}])"
            f"\n  > (time() - {window})"
        )

    move_text = (
        "dijkwacht confirmed a DNS change of {{ $labels.target }} ({{ $labels.category }}) at {{ $value | humanizeTimestamp }}:"
        " from {{ if $labels.from_provider }}{{ $labels.from_provider }}{{ else }}(none){{ end }}"
        " [{{ if $labels.from_jurisdiction }}{{ $labels.from_jurisdiction }}{{ else }}unknown{{ end }}]"
        " to {{ if $labels.to_provider }}{{ $labels.to_provider }}{{ else }}(none){{ end }}"
        " [{{ if $labels.to_jurisdiction }}{{ $labels.to_jurisdiction }}{{ else }}unknown{{ end }}]. "
    )
    alerts = [
        dict(
            alert="DijkwachtDependencyMovedForeign",
            expr=last_change('reason="dns", kind="home_to_foreign"'),
            severity=sev["critical"],
            summary="{{ $labels.target }}: {{ $labels.category }} moved out of home to {{ $labels.to_provider }} ({{ $labels.to_jurisdiction }})",
            description=move_text + "A provider under a jurisdiction outside the configured home came in where there was none,"
            f" or took a home provider's place. The alert stays for {cfg.move_alert_window} after the change.",
        ),
        dict(
            alert="DijkwachtDependencyMovedBetweenForeign",
            expr=last_change('reason="dns", kind="foreign_to_foreign"'),
            severity=sev["info"],
            summary="{{ $labels.target }}: {{ $labels.category }} moved between foreign providers, to {{ $labels.to_provider }} ({{ $labels.to_jurisdiction }})",
            description=move_text + "The dependency was already foreign; it moved to, or added, another foreign provider."
            f" The alert stays for {cfg.move_alert_window} after the change.",
        ),
        dict(
            alert="DijkwachtOwnershipMadeForeign",
            expr=last_change('reason="ownership", to_foreign="true"'),
            severity=sev["warning"],
            summary="{{ $labels.target }}: {{ $labels.category }} provider {{ $labels.to_provider }} is now under foreign ownership ({{ $labels.to_jurisdiction }})",
            description="The provider catalog changed the ultimate parent of a provider {{ $labels.target }} uses for {{ $labels.category }};"
            " no DNS record changed. Noticed at {{ $value | humanizeTimestamp }}: jurisdiction"
            " {{ if $labels.from_jurisdiction }}{{ $labels.from_jurisdiction }}{{ else }}unknown{{ end }} became"
            " {{ if $labels.to_jurisdiction }}{{ $labels.to_jurisdiction }}{{ else }}unknown{{ end }}."
            f" An acquisition affects many targets at once: route these grouped by to_provider. The alert stays for {cfg.move_alert_window}.",
        ),
        dict(
            alert="DijkwachtResolverFailing",
            expr=f"{r['dns_failed_ratio']} > {cfg.dns_failure_ratio}",
            for_=cfg.dns_for,
            severity=sev["critical"],
            summary="dijkwacht on {{ $labels.instance }}: {{ $value | humanizePercentage }} of DNS queries fail",
            description="{{ $value | humanizePercentage }} of the agent's DNS queries over the last"
            f" {cfg.dns_window} ended in SERVFAIL, REFUSED, a timeout or another error: the resolver or the network is failing,"
            " so no target's dependencies can be seen and no move can be confirmed. Per-target scan alerts of this agent are held back meanwhile.",
        ),
        dict(
            alert="DijkwachtDetectorFailing",
            expr=f"max by ({agent}, detector) ({r['detector_failing_ratio']}) > {cfg.widespread_ratio}\nunless on ({agent}) {resolver_down}",
            for_=cfg.widespread_for,
            severity=sev["warning"],
            summary="dijkwacht on {{ $labels.instance }}: detector {{ $labels.detector }} fails for {{ $value | humanizePercentage }} of the targets",
            description="The latest scans of {{ $value | humanizePercentage }} of the targets report errors of the {{ $labels.detector }} detector,"
            " while DNS in general works: the detector (or a plugin) is broken, not the targets. Per-target scan alerts of this agent are held back meanwhile.",
        ),
        dict(
            alert="DijkwachtTargetScanFailing",
            expr=(
                f"({r['target_errors']} > 0)\n"
                f"unless on ({target})\n"
                f"  ((time() - dijkwacht_last_successful_scan_timestamp_seconds{s()}) <= on ({agent}) group_left () ({cfg.failing_intervals} * {interval}))\n"
                f"unless on ({agent}) {resolver_down}\n"
                f"unless on ({agent}) {detectors_down}"
            ),
            for_=cfg.failing_for,
            severity=sev["warning"],
            summary="{{ $labels.target }}: scans keep failing",
            description="Every scan of {{ $labels.target }}"
            f" for at least {cfg.failing_intervals} scan intervals reported errors ({{{{ $value }}}} in the latest):"
            " its dependencies may be out of date and no change of it can be confirmed."
            ' Which detectors fail: dijkwacht_scan_errors{target="{{ $labels.target }}"} > 0.',
        ),
        dict(
            alert="DijkwachtScansStalled",
            expr=f"{agent_down.strip('()')}\nunless on ({agent}) {resolver_down}",
            for_=cfg.widespread_for,
            severity=sev["warning"],
            summary="dijkwacht on {{ $labels.instance }}: {{ $value | humanizePercentage }} of the targets are not being scanned",
            description=f"{{{{ $value | humanizePercentage }}}} of the targets had no clean scan for {cfg.stale_intervals} scan intervals"
            " although their latest scans had no errors: the agent does not get round to them (overloaded, or its scheduler is stuck)."
            " Per-target staleness alerts of this agent are held back meanwhile.",
        ),
        dict(
            alert="DijkwachtTargetNotScanned",
            expr=(
                f"(\n  (time() - dijkwacht_last_successful_scan_timestamp_seconds{s()}) > on ({agent}) group_left () ({cfg.stale_intervals} * {interval})\n"
                f"  or on ({target})\n"
                f"  (max by ({target}) (dijkwacht_target_info{s()}) unless on ({target}) dijkwacht_last_successful_scan_timestamp_seconds{s()})\n)\n"
                f"unless on ({target}) ({r['target_errors']} > 0)\n"
                f"unless on ({agent}) {resolver_down}\n"
                f"unless on ({agent}) {agent_down}"
            ),
            for_=cfg.failing_for,
            severity=sev["warning"],
            summary="{{ $labels.target }} has not been scanned for " + f"{cfg.stale_intervals} intervals",
            description="{{ $labels.target }} had no clean scan for"
            f" more than {cfg.stale_intervals} scan intervals (or never had one), and no scan of it reported errors:"
            " the agent does not get to it, so its dependency metrics are stale.",
        ),
        dict(
            alert="DijkwachtDown",
            expr=f"up{s()} == 0\nor\nabsent(up{s()})",
            for_=cfg.down_for,
            severity=sev["critical"],
            summary="dijkwacht {{ if $labels.instance }}on {{ $labels.instance }} {{ end }}is down or not scraped",
            description=f"Prometheus could not scrape the agent for {cfg.down_for}, or has no agent to scrape at all"
            " (pod Pending, host down, scrape configuration gone): no dependency change is being seen.",
        ),
        dict(
            alert="DijkwachtShardMissing",
            # Shards the agents announce, less those with an agent reporting, less agents that
            # Prometheus fails to scrape (DijkwachtDown covers those): shards with no scrape target.
            expr=(
                f"max by ({deployment}) (dijkwacht_shards{s()})\n"
                f"- count by ({deployment}) (count by ({deployment}, shard) (dijkwacht_shards{s()}))\n"
                f"- (count by ({deployment}) (up{s()} == 0) or 0 * max by ({deployment}) (dijkwacht_shards{s()}))\n"
                "> 0"
            ),
            for_=cfg.shard_missing_for,
            severity=sev["critical"],
            summary="dijkwacht job {{ $labels.job }}: {{ $value }} shard(s) without an agent",
            description="The agents split their targets into shards (dijkwacht_shards), but for {{ $value }} shard(s) Prometheus has no agent to scrape"
            f" for {cfg.shard_missing_for} (pod Pending or not scheduled, target gone from service discovery):"
            " that shard's targets are not watched, and nothing else alerts on them."
            ' The shards that report: count by (shard) (dijkwacht_shards{job="{{ $labels.job }}"}).',
        ),
        dict(
            alert="DijkwachtIPDataStale",
            # A feed whose file is missing or empty is exported as updated at 0: the first branch
            # keeps that 0 as the value, so the text can tell "never" from "long ago".
            expr=f"dijkwacht_ip_ranges_updated_timestamp_seconds{s()} == 0\nor\ntime() - dijkwacht_ip_ranges_updated_timestamp_seconds{s()} > {seconds(cfg.ip_data_max_age)}",
            for_=cfg.data_age_for,
            severity=sev["warning"],
            summary="IP range data of {{ $labels.provider }} {{ if eq $value 0.0 }}is missing{{ else }}is older than " + cfg.ip_data_max_age + "{{ end }}",
            description="{{ if eq $value 0.0 }}The agent has no IP ranges of {{ $labels.provider }}: the provider's file in its data dir is missing or empty."
            " Addresses in the provider's ranges are not attributed to it, so hosting and CDN detection relies on host names alone."
            "{{ else }}The IP ranges of {{ $labels.provider }} were last updated {{ $value | humanizeDuration }} ago:"
            " hosting and CDN detection by address range may miss the provider's new prefixes.{{ end }}",
        ),
        dict(
            alert="DijkwachtCatalogStale",
            expr=f"time() - dijkwacht_catalog_updated_timestamp_seconds{s()} > {seconds(cfg.catalog_max_age)}",
            for_=cfg.data_age_for,
            severity=sev["warning"],
            summary="dijkwacht on {{ $labels.instance }}: provider catalog is older than " + cfg.catalog_max_age,
            description="The newest provider catalog file the agent loaded is {{ $value | humanizeDuration }} old:"
            " acquisitions and new provider fingerprints since then are unknown to it.",
        ),
        dict(
            alert="DijkwachtConfigReloadFailed",
            expr=f"dijkwacht_config_last_reload_successful{s()} == 0",
            for_=cfg.reload_failed_for,
            severity=sev["warning"],
            summary="dijkwacht on {{ $labels.instance }} failed to reload its configuration",
            description="The last reload (of a changed file, on SIGHUP or POST /-/reload) failed; the agent runs on with the previous configuration"
            " and would not start with the broken one.",
        ),
        dict(
            alert="DijkwachtStateWriteFailing",
            expr=f"sum by ({agent}) (increase(dijkwacht_state_write_errors_total{s()}[{cfg.fault_window}])) > 0",
            severity=sev["warning"],
            summary="dijkwacht on {{ $labels.instance }} cannot write its state database",
            description=f"{{{{ $value | printf \"%.0f\" }}}} scan result(s) in the last {cfg.fault_window} could not be written to the state database"
            " (full disk, read-only or damaged volume). Such scans are dropped whole: no change of those targets is confirmed meanwhile,"
            " and their metrics age until writes succeed again.",
        ),
        dict(
            alert="DijkwachtInternalErrors",
            expr=f"sum by ({agent}, where) (increase(dijkwacht_internal_errors_total{s()}[{cfg.fault_window}])) > 0",
            severity=sev["warning"],
            summary="dijkwacht on {{ $labels.instance }}: unexpected errors in {{ $labels.where }}",
            description=f"The agent caught {{{{ $value | printf \"%.0f\" }}}} unexpected error(s) in {{{{ $labels.where }}}} over the last {cfg.fault_window}"
            " (http: a request answered 500; reload: the previous configuration stays; scan: the target is rescanned next interval)."
            " It keeps running, but this is a bug or an unforeseen fault: the agent's log has one error line for each.",
        ),
    ]
    rules = []
    for a in alerts:
        rule: dict = {"alert": a["alert"], "expr": a["expr"]}
        if a.get("for_"):
            rule["for"] = a["for_"]
        rule["labels"] = {"severity": a["severity"]}
        rule["annotations"] = {
            "summary": a["summary"],
            "description": a["description"],
            "runbook_url": f"{cfg.runbook_url}#{_anchor(a['alert'])}",
        }
        rules.append(rule)
    return [_group("dijkwacht.alerts", cfg.rule_interval, rules)]
