"""`dijkwacht report`: the sovereignty report of scan results or of the agent's state."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import structlog

from .catalog import expand_home
from .config import AgentSettings
from .daemon.cli import _date
from .errors import DijkwachtError
from .ipranges import load_ranges
from .report import build, catalog_info, ip_info, label_keys
from .report.html import render_html
from .report.inputs import apply_home, apply_labels, read_results, read_state
from .report.text import render_csv, render_json, render_markdown
from .runtime import load_config_with_plugins, load_data

log = structlog.get_logger()

DEFAULT_TITLE = "Digital sovereignty report"
DEFAULT_HISTORY_DAYS = 30


class UsageError(DijkwachtError):
    pass


def add_parser(sub: argparse._SubParsersAction) -> None:
    report = sub.add_parser(
        "report", help="write the sovereignty report (HTML, Markdown, CSV or JSON) of scan results or the agent's state",
        description="Write the sovereignty report: how many domains depend on a provider whose ultimate parent falls outside home, "
        "per category, role, provider, jurisdiction and group, what changed (from the agent's state), every domain with its evidence, "
        "and the method. HTML is one self-contained file that requests nothing from anywhere.",
    )
    report.add_argument("results", nargs="?", metavar="RESULTS", help="scan results: the JSON array of `scan --format json` or the lines of `--format jsonl`; - reads stdin")
    report.add_argument("--state", metavar="STATE.db", help="the agent's state database instead: its confirmed dependencies and change history")
    report.add_argument("--config", metavar="FILE", help="the agent's configuration: its state database (without RESULTS or --state), its targets and their labels, home, count_inferred, catalog and data_dir")
    report.add_argument("--format", choices=["html", "md", "csv", "json"], default="html", help="html: one self-contained page (default); md: Markdown; csv: one row per (domain, category, provider); json: every figure")
    report.add_argument("--output", metavar="FILE", help="write to FILE instead of stdout")
    report.add_argument("--group-by", action="append", metavar="LABEL", help="show the shares per value of this target label (repeatable; default: every label the targets carry)")
    report.add_argument("--title", default=DEFAULT_TITLE, help=f"the report's title (default: {DEFAULT_TITLE!r})")
    report.add_argument("--since", type=_date, metavar="DATE", help=f"changes at or after DATE (YYYY-MM-DD or ISO timestamp, UTC; needs the state; default: the last {DEFAULT_HISTORY_DAYS} days)")
    report.add_argument("--home", action="append", metavar="CODE", help="home jurisdiction: EU, EEA or an ISO alpha-2 code (repeatable; default: the config's, else EU); give the scan's")
    report.add_argument("--count-inferred", action="store_true", default=None, help="count inferred dependencies (default: the config's count_inferred, else no)")
    report.add_argument("--data-dir", metavar="DIR", help="the IP range files whose dates the report states (default: the config's data_dir)")
    report.add_argument("--domains", action="store_true", help="md: include the table of every domain and dependency")


def run(args: argparse.Namespace) -> int:
    if args.results and args.state:
        raise UsageError("report: give scan RESULTS or --state, not both")
    if not (args.results or args.state or args.config):
        raise UsageError("report: give scan RESULTS (a file, or - for stdin), --state STATE.db or --config FILE")
    if args.results and args.since is not None:
        raise UsageError("report: --since needs the agent's history (--state or --config), not scan results")
    if args.config:
        config, data = load_config_with_plugins(args.config)
        settings = config.agent
    else:
        config, settings = None, AgentSettings()
        data = load_data(settings)
    home = tuple(h.upper() for h in args.home) if args.home else settings.home
    try:
        home_codes = expand_home(home)
    except ValueError as exc:
        raise UsageError(f"--home: {exc}") from None
    count_inferred = settings.count_inferred if args.count_inferred is None else True
    now = time.time()
    since = args.since if args.since is not None else now - DEFAULT_HISTORY_DAYS * 86400
    configured = {t.domain: t.labels for t in config.targets} if config is not None else None

    if args.results:
        loaded = read_results(args.results)
        if configured:
            apply_labels(loaded.results, configured)
    else:
        loaded = read_state(args.state or config.daemon.state_path, targets=configured, since=since)  # type: ignore[union-attr]
    differing = apply_home(loaded.results, home_codes)
    if differing and loaded.kind == "scan":
        log.warning("report.home_differs", dependencies=differing, home=",".join(home), effect="foreign recomputed for this home")
        loaded.notes.append(f"{differing} dependencies were marked foreign or not for another home when scanned; recomputed for this report's home")

    keys = label_keys(loaded.results)
    group_by = args.group_by or keys
    missing = [k for k in group_by if k not in keys]
    if missing:
        raise UsageError(f"--group-by {missing[0]}: no target has that label (labels found: {', '.join(keys) or 'none'})")
    data_dir = args.data_dir or settings.data_dir
    if args.data_dir and not Path(args.data_dir).is_dir():
        raise UsageError(f"--data-dir {args.data_dir}: not a directory")
    ranges = load_ranges(data_dir) if data_dir != settings.data_dir else data.ranges
    report = build(loaded, title=args.title, home=home, home_codes=home_codes, count_inferred=count_inferred, group_by=group_by,
                   since=since, catalog=catalog_info(data.catalog), ip_data=ip_info(ranges.files), now=now)
    if args.format == "html":
        text = render_html(report)
    elif args.format == "md":
        text = render_markdown(report, domains=args.domains)
    elif args.format == "csv":
        text = render_csv(report)
    else:
        text = render_json(report)
    if args.output:
        Path(args.output).write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    return 0
