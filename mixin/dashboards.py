"""The Grafana dashboards, built with Grafana's typed SDK (grafana-foundation-sdk).

overview: the research headline as numbers (recorded aggregates, so it loads fast at 16,500
targets); target: one target's dependencies, scan health and changes; changes: timeline, table
and annotations; agent: scans, DNS, errors, data ages, reloads, process. Every table that lists
targets links to the target dashboard. No variable offers "All" over target names.
"""

from __future__ import annotations

import json

from grafana_foundation_sdk.builders import bargauge, common, dashboard, prometheus, stat, table, timeseries
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models.common import BarGaugeDisplayMode, BigValueGraphMode, GraphDrawStyle, LegendDisplayMode, LegendPlacement, VizOrientation
from grafana_foundation_sdk.models.dashboard import DataSourceRef, DataTransformerConfig, DynamicConfigValue, VariableOption, VariableRefresh, VariableSort
from grafana_foundation_sdk.models.prometheus import PromQueryFormat

from .config import Config
from .rules import FAILED_RESULTS, recorded

DS = DataSourceRef(type_val="prometheus", uid="${datasource}")
SCHEMA_VERSION = 39


def eq(label: str, value: str) -> str:
    return f'{label}="{value}"'


def rx(label: str, value: str) -> str:
    return f'{label}=~"{value}"'


def matchers(*items: str) -> str:
    return ", ".join(items)


def uids(cfg: Config) -> dict[str, str]:
    return {name: f"{cfg.uid_prefix}-{name}" for name in ("overview", "target", "changes", "agent")}


def _query(expr: str, legend: str = "", *, instant: bool = False, fmt: str = "", ref: str = "A") -> prometheus.Dataquery:
    q = prometheus.Dataquery().expr(expr).ref_id(ref).datasource(DS)
    q = q.instant() if instant else q.range()
    if legend:
        q = q.legend_format(legend)
    if fmt == "table":
        q = q.format(PromQueryFormat.TABLE)
    return q


def _common(panel, title: str, description: str, unit: str, w: int, h: int):
    return panel.title(title).description(description).datasource(DS).unit(unit).span(w).height(h)


def _last() -> common.ReduceDataOptions:
    return common.ReduceDataOptions().calcs(["lastNotNull"]).values(False)


def _stat(title, description, expr, unit, w=4, h=4, legend=""):
    panel = _common(stat.Panel(), title, description, unit, w, h).reduce_options(_last()).graph_mode(BigValueGraphMode.NONE)
    return panel.with_target(_query(expr, legend, instant=True))


def _series(title, description, exprs, unit, w=12, h=8, bars=False):
    panel = _common(timeseries.Panel(), title, description, unit, w, h).legend(
        common.VizLegendOptions().show_legend(True).display_mode(LegendDisplayMode.LIST).placement(LegendPlacement.BOTTOM)
    )
    if bars:
        panel = panel.draw_style(GraphDrawStyle.BARS).fill_opacity(80)
    for i, (expr, legend) in enumerate(exprs):
        panel = panel.with_target(_query(expr, legend, ref=chr(ord("A") + i)))
    return panel


def _bars(title, description, expr, legend, unit, w=12, h=8, **minmax):
    panel = _common(bargauge.Panel(), title, description, unit, w, h).orientation(VizOrientation.HORIZONTAL).display_mode(BarGaugeDisplayMode.BASIC).reduce_options(_last())
    for key, value in minmax.items():
        panel = getattr(panel, key)(value)
    return panel.with_target(_query(expr, legend, instant=True))


def _table(title, description, exprs, unit="none", w=24, h=10, order=(), hide=(), rename=None, link=None, times=()):
    """An instant table; `order` puts those columns first, `hide` drops columns, `link` makes
    the `target` column a drill-down link, `times` are columns holding unix time in ms."""
    panel = _common(table.Panel(), title, description, unit, w, h).show_header(True)
    for i, expr in enumerate(exprs):
        panel = panel.with_target(_query(expr, instant=True, fmt="table", ref=chr(ord("A") + i)))
    if len(exprs) > 1:
        panel = panel.with_transformation(DataTransformerConfig(id_val="merge", options={}))
    excluded = {"Time": True, "__name__": True, **{h: True for h in hide}}
    panel = panel.with_transformation(
        DataTransformerConfig(id_val="organize", options={"excludeByName": excluded, "indexByName": {c: i for i, c in enumerate(order)}, "renameByName": rename or {}})
    )
    if link:
        panel = panel.override_by_name("target", [DynamicConfigValue(id_val="links", value=[{"title": "Open the target dashboard", "url": link}])])
    for column in times:
        panel = panel.override_by_name(column, [DynamicConfigValue(id_val="unit", value="dateTimeAsIso")])
    return panel


def _datasource_variable() -> dashboard.DatasourceVariable:
    return dashboard.DatasourceVariable("datasource").label("Data source").type("prometheus")


def _query_variable(name: str, label: str, query: str, *, all_value: str | None = None) -> dashboard.QueryVariable:
    v = (
        dashboard.QueryVariable(name).label(label).datasource(DS).query({"query": query, "refId": name})
        .refresh(VariableRefresh.ON_DASHBOARD_LOAD).sort(VariableSort.ALPHABETICAL_CASE_INSENSITIVE_ASC)
    )
    if all_value is not None:
        v = v.include_all(True).all_value(all_value).multi(True).current(VariableOption(selected=True, text="All", value="$__all"))
    return v


def _board(cfg: Config, name: str, title: str, description: str):
    return (
        dashboard.Dashboard(title).uid(uids(cfg)[name]).description(description).tags(list(cfg.dashboard_tags))
        .time(cfg.time_from, "now").refresh("5m").timezone("browser").readonly()
        .link(dashboard.DashboardLink("dijkwacht").type("dashboards").tags(list(cfg.dashboard_tags[:1])).as_dropdown(True).include_vars(False).keep_time(True))
        .with_variable(_datasource_variable())
    )


def _target_link(cfg: Config) -> str:
    return f"/d/{uids(cfg)['target']}?var-target=${{__value.raw}}&${{datasource:queryparam}}&${{__url_time_range}}"


def overview(cfg: Config):
    r, s, g, target = recorded(cfg), cfg.sel, cfg.group_label, cfg.by_target
    link = _target_link(cfg)
    board = _board(cfg, "overview", "dijkwacht / Overview", "Which share of the watched targets depends on providers under a foreign jurisdiction, by category, provider, jurisdiction and group.")
    board = board.with_variable(_query_variable(g, g.capitalize(), f"label_values(dijkwacht_target_info{s()}, {g})", all_value=".*"))
    board = board.with_variable(_query_variable("category", "Category", f"label_values(dijkwacht_foreign_dependencies{s()}, category)", all_value=".+"))
    changes = "dijkwacht_dependency_changes_total"
    board = (
        board.with_row(dashboard.Row("Headline"))
        .with_panel(_stat("Targets with any foreign dependency", "Share of the targets with a completed scan that depend on at least one provider whose ultimate parent is under a jurisdiction outside the configured home, in any category.", r["foreign_ratio"], "percentunit", w=6))
        .with_panel(_stat("Targets with a foreign dependency", "Number of targets with at least one foreign dependency, in any category.", r["foreign"], "none"))
        .with_panel(_stat("Targets scanned", "Targets with at least one category scanned completely (the denominator of the shares).", r["scanned"], "none"))
        .with_panel(_stat("Targets configured", "Targets in the agents' configuration.", f"sum(dijkwacht_targets{s()})", "none"))
        .with_panel(_stat("Moves out of home", "Confirmed DNS changes in the time range that brought in a foreign provider where there was none or took a home provider's place.", f'sum(increase({changes}{s(matchers(eq("kind", "home_to_foreign"), eq("reason", "dns")))}[$__range]))', "none", w=3))
        .with_panel(_stat("Agents up", "Agents Prometheus scrapes successfully, of those it should scrape.", f"sum(up{s()})", "none", w=3))
        .with_panel(_bars("Targets with a foreign dependency, per category", "Share of the targets scanned in the category that have at least one foreign dependency in it.", r["category_foreign_ratio"], "{{category}}", "percentunit", w=12, min=0, max=1))
        .with_panel(_series("Trend: targets with a foreign dependency", "The headline share over time, overall and per category.", [(r["foreign_ratio"], "any category"), (r["category_foreign_ratio"], "{{category}}")], "percentunit", w=12))
        .with_panel(_bars(
            "Targets with a foreign dependency, per role", "Of the targets with a dependency in the role (email mailbox, gateway, sending; video meeting; cdn, hosting, dns), the share whose provider in that role is foreign.",
            r["category_role_foreign_ratio"] + "{" + rx("category", "$category") + "}", "{{category}} {{role}}", "percentunit", w=12, min=0, max=1,
        ))
        .with_panel(_table(
            "Targets per role", "Per category and role: the targets with a dependency in the role, those with a foreign one, and their share.",
            [r[name] + "{" + rx("category", "$category") + "}" for name in ("category_role", "category_role_foreign", "category_role_foreign_ratio")],
            w=12, order=("category", "role", "Value #A", "Value #B", "Value #C"), rename={"Value #A": "targets", "Value #B": "foreign", "Value #C": "share foreign"},
        ).override_by_name("share foreign", [DynamicConfigValue(id_val="unit", value="percentunit")]))
        .with_row(dashboard.Row("Providers and jurisdictions"))
        .with_panel(_bars("Targets per provider (top 15)", "Number of targets that depend on the provider in any category.", f"topk(15, {r['provider']})", "{{provider}} ({{jurisdiction}})", "none", w=8, h=10))
        .with_panel(_bars("Targets per jurisdiction", "Number of targets with at least one dependency on a provider whose ultimate parent is under this jurisdiction (empty: unknown).", r["jurisdiction"], "{{jurisdiction}}", "none", w=8, h=10))
        .with_panel(_table("Targets per category and jurisdiction", "Number of targets per category whose providers' ultimate parents are under each jurisdiction.", [r["category_jurisdiction"] + "{" + rx("category", "$category") + "}"], w=8, h=10, order=("category", "jurisdiction", "foreign", "Value"), rename={"Value": "targets"}))
        .with_panel(_table("Targets per category and provider", "Number of targets that depend on each provider, per category.", [r["category_provider"] + "{" + rx("category", "$category") + "}"], w=24, h=10, order=("category", "role", "provider", "jurisdiction", "foreign", "Value"), rename={"Value": "targets"}))
        .with_row(dashboard.Row(f"Per {g}"))
        .with_panel(_table(
            f"Targets with a foreign dependency, per {g}", f"Per value of the target label `{g}`: the targets scanned, those with any foreign dependency, and their share.",
            [r[name] + "{" + rx(g, "$" + g) + "}" for name in ("group_scanned", "group_foreign", "group_foreign_ratio")],
            w=12, h=10, order=(g, "Value #A", "Value #B", "Value #C"), rename={"Value #A": "scanned", "Value #B": "foreign", "Value #C": "share foreign"},
        ).override_by_name("share foreign", [DynamicConfigValue(id_val="unit", value="percentunit")]))
        .with_panel(_table(
            f"Share with a foreign dependency, per {g} and category", f"Per value of `{g}` and category: the share of targets with a foreign dependency in that category.",
            [r["group_category_foreign_ratio"] + "{" + matchers(rx(g, "$" + g), rx("category", "$category")) + "}"], "percentunit", w=12, h=10, order=(g, "category", "Value"), rename={"Value": "share foreign"},
        ))
        .with_row(dashboard.Row("Foreign dependencies by target").collapsed(True).with_panel(_table(
            "Foreign dependencies", f"Every current foreign dependency of the targets in the selected {g} and categories. Click a target for its dashboard.",
            [f"max by ({target}, category, role, provider, jurisdiction, confidence) (dijkwacht_dependency_info{s(matchers(eq('foreign', 'true'), rx('category', '$category')))})"
             f" * on ({target}) group_left ({g}) max by ({target}, {g}) (dijkwacht_target_info{s(rx(g, '$' + g))})"],
            w=24, h=14, order=("target", g, "category", "role", "provider", "jurisdiction", "confidence"), hide=("job", "instance", "Value"), link=link,
        )))
    )
    return board


def target(cfg: Config):
    s, target_labels = cfg.sel, cfg.by_target
    t = eq("target", "$target")
    board = _board(cfg, "target", "dijkwacht / Target", "One target: its current dependencies with provider, jurisdiction and confidence, its scan health and its confirmed changes.")
    board = board.with_variable(_query_variable("target", "Target", f"label_values(dijkwacht_target_info{s()}, target)"))
    board = board.annotation(_change_annotation(cfg, t))
    return (
        board.with_row(dashboard.Row("Dependencies"))
        .with_panel(_stat("Foreign dependencies", "Current foreign dependencies of the target, all categories together.", f"sum(dijkwacht_foreign_dependencies{s(t)})", "none"))
        .with_panel(_stat("Since the last clean scan", "Time since the last scan of the target without errors.", f"time() - max(dijkwacht_last_successful_scan_timestamp_seconds{s(t)})", "s"))
        .with_panel(_stat("Errors in the latest scan", "Errors of all detectors in the target's latest scan.", f"sum(dijkwacht_scan_errors{s(t)})", "none"))
        .with_panel(_table(f"Labels", "The target's labels from the configuration.", [f"max by ({target_labels}, {cfg.group_label}) (dijkwacht_target_info{s(t)})"], w=12, h=4, hide=("Value",)))
        .with_panel(_table(
            "Current dependencies", "One row per current dependency: the provider, the part it plays (role), the jurisdiction of its ultimate parent (empty: unknown), whether that is foreign, and how sure the detection is.",
            [f"max by (category, role, provider, jurisdiction, foreign, confidence) (dijkwacht_dependency_info{s(t)})"],
            w=14, h=10, order=("category", "role", "provider", "jurisdiction", "foreign", "confidence"), hide=("Value",),
        ))
        .with_panel(_table("Scan errors per detector", "Errors per detector in the target's latest scan (0: fine).", [f"max by (detector) (dijkwacht_scan_errors{s(t)})"], w=10, h=10, order=("detector", "Value"), rename={"Value": "errors"}))
        .with_row(dashboard.Row("History"))
        .with_panel(_table(
            "Last confirmed change per category", "The latest confirmed change of each category of this target, from the agent's persisted history.",
            [f"max by (category, kind, reason, from_provider, to_provider, from_jurisdiction, to_jurisdiction) (dijkwacht_dependency_last_change_timestamp_seconds{s(t)}) * 1000"],
            w=24, h=8, order=("Value", "category", "kind", "reason", "from_provider", "from_jurisdiction", "to_provider", "to_jurisdiction"), rename={"Value": "time"}, times=("time",),
        ))
        .with_panel(_series("Foreign dependencies per category", "Foreign dependencies of the target over time, per category; confirmed changes are annotated.", [(f"max by (category) (dijkwacht_foreign_dependencies{s(t)})", "{{category}}")], "none", w=24))
    )


def _change_annotation(cfg: Config, matchers: str = ""):
    """Confirmed changes as annotations, at the time of the change (the gauge's value)."""
    return (
        dashboard.AnnotationQuery().name("Confirmed changes").datasource(DS).enable(True).hide(False).icon_color("orange")
        .expr(f"max by (target, category, kind, reason, from_provider, to_provider, from_jurisdiction, to_jurisdiction) (dijkwacht_dependency_last_change_timestamp_seconds{cfg.sel(matchers)}) * 1000")
    )


ANNOTATION_FIELDS = {
    "step": "1m",
    "useValueForTime": True,
    "titleFormat": "{{target}} {{category}}: {{kind}} ({{reason}})",
    "textFormat": "{{from_provider}} [{{from_jurisdiction}}] -> {{to_provider}} [{{to_jurisdiction}}]",
    "tagKeys": "category,kind,reason",
}


def changes(cfg: Config):
    s, target_labels = cfg.sel, cfg.by_target
    total = "dijkwacht_dependency_changes_total"

    def in_range(kind: str, reason: str) -> str:
        return f"sum(increase({total}{s(matchers(eq('kind', kind), eq('reason', reason)))}[$__range]))"

    board = _board(cfg, "changes", "dijkwacht / Changes", "Confirmed dependency changes: how many of which kind, when, and which targets.")
    board = board.annotation(_change_annotation(cfg))
    return (
        board.with_row(dashboard.Row("In the time range"))
        .with_panel(_stat("Moves out of home", "Confirmed DNS changes that brought in a foreign provider where there was none, or in place of a home provider.", in_range("home_to_foreign", "dns"), "none", w=6))
        .with_panel(_stat("Moves between foreign providers", "Confirmed DNS changes from one foreign provider to (or next to) another.", in_range("foreign_to_foreign", "dns"), "none", w=6))
        .with_panel(_stat("Moves back home", "Confirmed DNS changes after which nothing foreign is left in the category.", in_range("foreign_to_home", "dns"), "none", w=6))
        .with_panel(_stat("Ownership changes to foreign", "Providers in use that came under a foreign parent (catalog change, no DNS change).", f"sum(increase({total}{s(matchers(eq('reason', 'ownership'), rx('kind', 'home_to_foreign|foreign_to_foreign')))}[$__range]))", "none", w=6))
        .with_panel(_series("Confirmed changes over time", "Confirmed changes per interval, by kind and reason.", [(f"sum by (kind, reason) (increase({total}{s()}[$__rate_interval]))", "{{kind}} ({{reason}})")], "none", w=24, bars=True).interval("1m"))
        .with_panel(_table(
            "Changes in the time range", "The latest confirmed change of every target and category that changed within the time range, newest first. Click a target for its dashboard.",
            [f"max by ({target_labels}, category, kind, reason, from_provider, to_provider, from_jurisdiction, to_jurisdiction) (dijkwacht_dependency_last_change_timestamp_seconds{s()}) * 1000 > (time() - $__range_s) * 1000"],
            w=24, h=12, order=("Value", "target", "category", "kind", "reason", "from_provider", "from_jurisdiction", "to_provider", "to_jurisdiction"),
            hide=("job", "instance"), rename={"Value": "time"}, link=_target_link(cfg), times=("time",),
        ).sort_by([common.TableSortByFieldState().display_name("time").desc(True)]))
    )


def agent(cfg: Config):
    r, s, a = recorded(cfg), cfg.sel, cfg.by_agent
    failed = rx("result", FAILED_RESULTS)
    board = _board(cfg, "agent", "dijkwacht / Agent health", "Is the watcher watching: scrapes, scans, DNS results, errors, data ages, reloads and the process.")
    return (
        board.with_row(dashboard.Row("Scanning"))
        .with_panel(_stat("Agents up", "Agents scraped successfully.", f"sum(up{s()})", "none"))
        .with_panel(_stat("Scan interval", "Configured time between two scans of a target.", f"max(dijkwacht_scan_interval_seconds{s()})", "s"))
        .with_panel(_stat("Confirmations", "Agreeing scans needed before a change is reported.", f"max(dijkwacht_scan_confirmations{s()})", "none"))
        .with_panel(_stat("Stale targets", f"Targets without a clean scan for {cfg.stale_intervals} scan intervals.", f"sum({r['stale']})", "none"))
        .with_panel(_stat("Failed DNS queries", f"Share of DNS queries that failed (SERVFAIL, REFUSED, timeout, error) over {cfg.dns_window}.", f"max({r['dns_failed_ratio']})", "percentunit"))
        .with_panel(_stat("Targets with errors", "Targets whose latest scan reported an error in any detector.", f"count({r['target_errors']} > 0) or vector(0)", "none"))
        .with_panel(_series("Scan duration", "95th percentile and mean duration of one target scan.", [
            (f"histogram_quantile(0.95, sum by ({a}, le) (rate(dijkwacht_scan_duration_seconds_bucket{s()}[$__rate_interval])))", "p95 {{instance}}"),
            (f"sum by ({a}) (rate(dijkwacht_scan_duration_seconds_sum{s()}[$__rate_interval])) / sum by ({a}) (rate(dijkwacht_scan_duration_seconds_count{s()}[$__rate_interval]))", "mean {{instance}}"),
        ], "s"))
        .with_panel(_series("Scans per second", "Completed target scans per second.", [(f"sum by ({a}) (rate(dijkwacht_scan_duration_seconds_count{s()}[$__rate_interval]))", "{{instance}}")], "ops"))
        .with_row(dashboard.Row("DNS and errors"))
        .with_panel(_series("DNS queries by result", "DNS queries per second the agent sends, by result.", [(f"sum by (result) (rate(dijkwacht_dns_queries_total{s()}[$__rate_interval]))", "{{result}}")], "reqps"))
        .with_panel(_series("Failed DNS queries", "Share of failed DNS queries; the DijkwachtResolverFailing alert fires above " + f"{cfg.dns_failure_ratio:.0%}.", [
            (r["dns_failed_ratio"], "{{instance}}"),
            (f"sum by ({a}) (rate(dijkwacht_dns_queries_total{s(failed)}[$__rate_interval])) / sum by ({a}) (rate(dijkwacht_dns_queries_total{s()}[$__rate_interval]))", "{{instance}} (panel interval)"),
        ], "percentunit"))
        .with_panel(_series("Detector errors", "Errors reported by each detector, per second.", [(f"sum by (detector) (rate(dijkwacht_detector_errors_total{s()}[$__rate_interval]))", "{{detector}}")], "ops"))
        .with_panel(_series("Targets failing per detector", "Share of the targets whose latest scan had errors of the detector.", [(f"max by (detector) ({r['detector_failing_ratio']})", "{{detector}}")], "percentunit"))
        .with_row(dashboard.Row("Data and configuration"))
        .with_panel(_bars("IP range data age", "Time since each provider's IP range list was refreshed (`dijkwacht data update`).", f"max by (provider) (time() - dijkwacht_ip_ranges_updated_timestamp_seconds{s()})", "{{provider}}", "s", w=8, h=10))
        .with_panel(_bars("IP prefixes per provider", "IP prefixes loaded per provider.", f"max by (provider) (dijkwacht_ip_ranges_prefixes{s()})", "{{provider}}", "none", w=8, h=10))
        .with_panel(_table(
            "Catalog and configuration", "Per agent: catalog age and size, last successful configuration load and whether the last reload succeeded.",
            [f"max by ({a}) (time() - dijkwacht_catalog_updated_timestamp_seconds{s()})", f"max by ({a}) (dijkwacht_catalog_providers{s()})",
             f"max by ({a}) (dijkwacht_config_last_reload_success_timestamp_seconds{s()}) * 1000", f"max by ({a}) (dijkwacht_config_last_reload_successful{s()})"],
            w=8, h=10, order=("instance",), hide=("job",),
            rename={"Value #A": "catalog age", "Value #B": "providers", "Value #C": "last good load", "Value #D": "last reload ok"}, times=("last good load",),
        ).override_by_name("catalog age", [DynamicConfigValue(id_val="unit", value="s")]))
        .with_row(dashboard.Row("Process"))
        .with_panel(_series("CPU", "CPU time used per second.", [(f"sum by ({a}) (rate(process_cpu_seconds_total{s()}[$__rate_interval]))", "{{instance}}")], "percentunit", w=8))
        .with_panel(_series("Memory", "Resident memory of the agent process.", [(f"max by ({a}) (process_resident_memory_bytes{s()})", "{{instance}}")], "bytes", w=8))
        .with_panel(_series("Open file descriptors", "Open file descriptors (sockets, the state database).", [(f"max by ({a}) (process_open_fds{s()})", "{{instance}}")], "none", w=8))
        .with_panel(_table("Versions", "dijkwacht and Python version of each agent, and when it started.", [
            f"max by ({a}, version, python_version) (dijkwacht_build_info{s()})", f"max by ({a}) (process_start_time_seconds{s()}) * 1000"],
            w=24, h=6, order=("instance", "version", "python_version"), hide=("job", "Value #A"), rename={"Value #B": "started"}, times=("started",)))
    )


def _finish(board, cfg: Config) -> dict:
    """The dashboard as JSON: panel ids numbered, refIds and Prometheus annotation fields set."""
    data = json.loads(json.dumps(board.build(), cls=JSONEncoder))
    next_id = 1
    for panel in data["panels"]:
        for p in [panel, *panel.get("panels", [])]:
            p["id"] = next_id
            next_id += 1
    for annotation in data["annotations"].get("list", []):
        annotation.update(ANNOTATION_FIELDS)
    data["schemaVersion"] = SCHEMA_VERSION
    data.pop("id", None)
    return data


def dashboards(cfg: Config) -> dict[str, dict]:
    """File name -> dashboard JSON."""
    builders = {"overview": overview, "target": target, "changes": changes, "agent": agent}
    return {f"dijkwacht-{name}.json": _finish(build(cfg), cfg) for name, build in builders.items()}
