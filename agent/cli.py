"""The `dijkwacht` command line."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import structlog

from . import __version__, cli_catalog, cli_data, cli_plugins, cli_report, logs
from .daemon import cli as daemon_cli
from .daemon.webconfig import load_web_config
from .config import AGENT_FIELDS, AgentSettings, Config, argument, load_config, number, parse_nameserver
from .errors import DijkwachtError, one_line
from .campaign import Campaign, CampaignStats, LocalSource, written_name
from .figures import Tally, render_summary
from .isolation import Isolation
from .output import JsonLinesWriter, JsonWriter, TableWriter, Writer, read_for_resume
from .progress import Progress
from .runtime import Runtime, build_runtime, load_config_with_plugins, load_data
from .scanner import TargetResult
from .targets import InvalidTarget, Target, normalise_domain, read_targets_file, unique
from .workers import Workers, auto_workers

log = structlog.get_logger()


class UsageError(DijkwachtError):
    pass


def _nameserver(value: str) -> str:
    try:
        return parse_nameserver(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _whole(text: str) -> int:
    if not text.strip().lstrip("+-").isdigit():
        raise ValueError("is not a whole number")
    return int(text)


MAX_WORKERS = 64


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dijkwacht",
        description="Find which providers serve a domain's email, video, CDN, hosting and DNS, "
        "and under which jurisdiction their ultimate parent company falls.",
    )
    parser.add_argument("--version", action="version", version=f"dijkwacht {__version__}")
    parser.add_argument("--log-level", choices=["debug", "info", "warning", "error"], help="log level (default: the config's, else warning for scan)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    scan = sub.add_parser("scan", help="scan domains once and print their dependencies", description="Scan domains once and print their providers and jurisdictions. Exit status is 0 even when some lookups failed (failures are reported per target in \"errors\"); non-zero only for usage or configuration errors.")
    scan.add_argument("domains", nargs="*", metavar="DOMAIN", help="domain names to scan (IDN allowed); added to the config's and targets file's targets")
    scan.add_argument("--config", metavar="FILE", help="TOML configuration file (see docs/configuration.md)")
    scan.add_argument("--nameserver", action="append", type=_nameserver, metavar="HOST[:PORT]", help="DNS server to ask, by IP address (repeatable; default: the config's, else the system resolver)")
    scan.add_argument("--data-dir", metavar="DIR", help="directory of <provider>.txt IP range files (fill it with 'dijkwacht data update'); without it only hostname evidence is used")
    scan.add_argument("--format", choices=["json", "jsonl", "table"], default="json", help="json: one JSON array, one object per target, in input order (default); jsonl: one JSON object per line, written as each target is final (for long scans and --resume); table: a readable summary")
    scan.add_argument("--output", metavar="FILE", help="write the results to FILE instead of stdout (jsonl: line by line, each line complete; json and table: renamed into place when done)")
    scan.add_argument("--resume", action="store_true", help="with --format jsonl --output FILE: skip the targets FILE already holds and append the rest (an interrupted scan continues)")
    scan.add_argument("--targets-file", metavar="FILE", help="file with one domain per line, '#' comments, optional key=value labels")
    scan.add_argument("--http-probe", action="store_true", default=None, help="also read HTTP(S) response headers of the apex/www for CDN fingerprints (opens connections to the targets; off by default)")
    scan.add_argument("--http-probe-allow-private", action="store_true", default=None, help="let --http-probe contact private, loopback and link-local addresses too (off: a target pointing at 127.0.0.1 or 10.0.0.0/8 is not contacted)")
    scan.add_argument("--home", action="append", metavar="CODE", help="home jurisdiction: EU, EEA or an ISO alpha-2 code (repeatable; default: the config's, else EU)")
    scan.add_argument("--detector", action="append", metavar="NAME", help="run only this detector (repeatable; see 'dijkwacht plugins')")
    scan.add_argument("--concurrency", type=argument(AGENT_FIELDS["concurrency"], _whole), metavar="N", help="targets scanned at once, per worker (default 64)")
    scan.add_argument("--timeout", type=argument(AGENT_FIELDS["dns_timeout"]), metavar="SECONDS", help="DNS timeout per try (default 2)")
    scan.add_argument("--workers", type=argument(number(1, MAX_WORKERS, whole=True), _whole), metavar="N", help="worker processes to shard the targets over (default: 1 below 2,000 targets, else one per CPU core up to 4)")
    scan.add_argument("--max-inflight", type=argument(AGENT_FIELDS["max_inflight"], _whole), metavar="N", help="DNS queries in flight at once, per worker (default 200)")
    scan.add_argument("--max-qps", type=argument(AGENT_FIELDS["max_qps"]), metavar="N", help="DNS queries per second, all workers together (default: no limit when every nameserver is on loopback, else 500; 0: no limit). The rate halves while many answers fail and recovers gradually")
    scan.add_argument("--stats", action="store_true", help="print timing, DNS query counts and the rate limit's backoffs to stderr at the end")
    scan.add_argument("--quiet", action="store_true", help="no progress and no summary on stderr (warnings and errors only)")
    scan.add_argument("--progress-interval", type=argument(number(0.1, 86400, unit=" s")), default=10.0, metavar="SECONDS", help="without a terminal on stderr: log a progress line this often (default 10)")
    scan.add_argument("--summary-json", metavar="FILE", help="write the campaign's headline figures (see agent/figures.py) and the run's figures to FILE as JSON")
    scan.add_argument("--demo", action="store_true", help="scan built-in example domains served by an embedded DNS server on 127.0.0.1 (works offline)")

    cli_plugins.add_strict_option(scan)
    cli_plugins.add_parser(sub)

    cli_catalog.add_parser(sub)

    check = sub.add_parser("check-config", help="validate a configuration file and exit")
    check.add_argument("config", metavar="FILE", help="TOML configuration file")
    cli_plugins.add_strict_option(check)

    cli_data.add_parser(sub)
    cli_report.add_parser(sub)
    daemon_cli.add_parsers(sub)
    return parser


def _scan_settings(args: argparse.Namespace, config: Config) -> AgentSettings:
    agent = config.agent
    changes: dict = {}
    if args.nameserver:
        changes["nameservers"] = tuple(args.nameserver)
    if args.data_dir:
        if not Path(args.data_dir).is_dir():
            raise UsageError(f"--data-dir: no such directory: {one_line(args.data_dir)}")
        changes["data_dir"] = args.data_dir
    if args.http_probe:
        changes["http_probe"] = True
    if args.http_probe_allow_private:
        changes["http_probe_allow_private"] = True
    if args.home:
        changes["home"] = tuple(h.upper() for h in args.home)
    if args.concurrency is not None:
        changes["concurrency"] = args.concurrency
    if args.timeout is not None:
        changes["dns_timeout"] = args.timeout
    if args.max_inflight is not None:
        changes["max_inflight"] = args.max_inflight
    if args.max_qps is not None:
        changes["max_qps"] = args.max_qps
    settings = replace(agent, **changes)
    try:
        settings.home_codes
    except ValueError as exc:
        raise UsageError(f"--home: {exc}") from None
    return settings


def _targets(args: argparse.Namespace, config: Config) -> list[Target | str]:
    """Targets in input order: config, targets file, command line. Invalid names stay as strings.
    A domain given twice is scanned once, with the first occurrence's labels."""
    items: list[Target | str] = list(config.targets)
    problems = list(config.problems)
    if args.targets_file:
        found, more = read_targets_file(args.targets_file)
        items.extend(found)
        problems.extend(more)
    for problem in problems:
        print(f"dijkwacht: {problem}", file=sys.stderr)
    for raw in args.domains:
        try:
            items.append(Target(normalise_domain(raw)))
        except InvalidTarget as exc:
            print(f"dijkwacht: {exc}", file=sys.stderr)
            items.append(raw)
    valid = list(unique([t for t in items if isinstance(t, Target)]))
    kept: set[str] = {t.domain for t in valid}
    out: list[Target | str] = []
    for item in items:
        if isinstance(item, str):
            out.append(item)
        elif item.domain in kept:
            out.append(item)
            kept.discard(item.domain)
    return out


def _writer(args: argparse.Namespace, ip_data: bool, count_inferred: bool) -> Writer:
    if args.format == "jsonl":
        return JsonLinesWriter(args.output, append=args.resume)
    if args.format == "table":
        return TableWriter(args.output, ip_data=ip_data, count_inferred=count_inferred)
    return JsonWriter(args.output)


def _scan(args: argparse.Namespace) -> int:
    """Prepare everything synchronously (workers must fork before any event loop), then scan."""
    if args.resume and not (args.format == "jsonl" and args.output):
        raise UsageError("--resume needs --format jsonl and --output FILE (the file the interrupted scan wrote)")
    if args.config:
        config, data = load_config_with_plugins(args.config, strict=args.strict_plugins)
    else:
        config, data = Config(), None
    if args.demo:
        from .demo import DEMO_TARGETS_WITH_LABELS

        config = replace(config, targets=(*config.targets, *DEMO_TARGETS_WITH_LABELS))
    settings = _scan_settings(args, config)
    if data is None or settings.data_dir != config.agent.data_dir:
        data = load_data(settings, data.host if data else cli_plugins.load_host(None, args.strict_plugins))
    items = _targets(args, config)
    if not items:
        raise UsageError("no targets: give domains, --targets-file, a config with [[targets]], or --demo")
    if data.ranges.empty:
        log.warning("ip_ranges.missing", data_dir=settings.data_dir or None, effect="only hostname evidence is used")
    unknown = set(args.detector or ()) - {cls.name for cls in data.detector_classes}
    if unknown:
        raise UsageError(f"--detector: no detector named {', '.join(sorted(unknown))}")
    tally = Tally(count_inferred=settings.count_inferred)
    if args.resume:
        done = read_for_resume(args.output, tally.add)
        before = len(items)
        items = [t for t in items if written_name(t) not in done]
        log.info("scan.resuming", file=args.output, done=len(done), skipped=before - len(items), left=len(items))
    valid = [t for t in items if isinstance(t, Target)]
    gc.freeze()  # the catalog, ranges and plugins live for the whole run: keep them out of GC passes
    workers = 1 if args.demo else (args.workers or auto_workers(len(valid)))
    workers = max(1, min(workers, len(valid)))
    limit = None if args.demo else settings.query_rate
    # Each worker gets an equal share of the rate (the shards are equal), and 0 means none.
    settings = replace(settings, max_qps=limit / workers if limit else 0)
    only = tuple(args.detector or ())
    progress = Progress(Progress.choose(args.quiet), interval=args.progress_interval)
    campaign = Campaign(items, progress, workers=workers, limit=limit, concurrency=settings.concurrency)
    pool = Workers(settings, data, config.detectors, only, valid, workers, on_rate_change=campaign.rate_changed) if workers > 1 else None
    writer = _writer(args, ip_data=not data.ranges.empty, count_inferred=settings.count_inferred)  # after the fork: no buffered output is copied
    started = time.perf_counter()
    interrupted = False
    try:
        asyncio.run(_run_scan(args, settings, data, config, only, campaign, pool, writer, tally))
    except KeyboardInterrupt:
        interrupted = True
    finally:
        if pool is not None:
            pool.close(now=interrupted)
        writer.close()
    return _report(args, campaign.stats, tally, writer, time.perf_counter() - started, len(valid), len(items), interrupted)


def _report(args: argparse.Namespace, stats: CampaignStats, tally: Tally, writer: Writer, seconds: float, targets: int, items: int, interrupted: bool) -> int:
    """The end of a scan on stderr: summary, --summary-json, --stats, and how to resume."""
    fig = tally.figures()
    if not args.quiet:
        sys.stderr.write(render_summary(fig))
    if args.summary_json:
        run = {"interrupted": interrupted, "seconds": round(seconds, 2), "workers": stats.workers, "max_qps": stats.limit,
               "backoffs": stats.backoffs, "lowest_qps": _round(stats.lowest_rate), "retried": stats.retried, "retry_qps": _round(stats.retry_rate),
               "queries": dict(stats.queries), "written": writer.count}
        Path(args.summary_json).write_text(json.dumps({**fig, "scan": run}, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    if args.stats:
        total = sum(stats.queries.values())
        print(
            f"dijkwacht: {targets} targets in {seconds:.2f} s with {stats.workers} worker(s); {total} queries "
            f"({total / seconds:.0f}/s; {', '.join(f'{k} {v}' for k, v in sorted(stats.queries.items()))}); {stats.cache_hits} answered from cache",
            file=sys.stderr,
        )
        print(f"dijkwacht: {_rate_report(stats)}", file=sys.stderr)
    if interrupted:
        where = f"; continue with --resume --output {args.output}" if args.format == "jsonl" and args.output else ""
        print(f"dijkwacht: interrupted: {writer.count} of {items} results written{where}", file=sys.stderr)
        return 130
    return 0


def _round(rate: float | None) -> float | None:
    return None if rate is None else round(rate, 1)


def _rate_report(stats: CampaignStats) -> str:
    if stats.limit is None:
        text = "rate: no limit (every nameserver is on loopback, or --max-qps 0)"
    else:
        text = f"rate: limit {stats.limit:g} q/s ({stats.workers} worker(s) x {stats.limit / stats.workers:g})"
        if stats.backoffs:
            text += f"; backed off {stats.backoffs} time(s), lowest {stats.lowest_rate:.0f} q/s" if stats.lowest_rate is not None else f"; backed off {stats.backoffs} time(s)"
        else:
            text += "; never backed off"
    if stats.retried:
        text += f"; retried {stats.retried} target(s) at {stats.retry_rate:.0f} q/s"
    return text


async def _run_scan(args, settings: AgentSettings, data, config: Config, only, campaign: Campaign, pool: Workers | None, writer: Writer, tally: Tally) -> None:
    demo = None
    runtime = None
    if args.demo:
        from .demo import start_demo_server

        demo = await start_demo_server()
        settings = replace(settings, nameservers=(demo.address,))

    isolation = Isolation()  # shared by both passes: a detector quarantined in the first stays so

    def retry_runtime(rate: float) -> Runtime:
        return build_runtime(replace(settings, max_qps=rate), data, config.detectors, only=only, on_rate_change=campaign.rate_changed, isolation=isolation)

    def emit(index: int, result: TargetResult) -> None:
        obj = result.to_json()
        writer.write(index, obj, result)
        tally.add(obj)

    try:
        if pool is not None:
            source = pool
        else:
            runtime = build_runtime(settings, data, config.detectors, only=only, on_rate_change=campaign.rate_changed, isolation=isolation)
            source = LocalSource(runtime, [t for t in campaign.items if isinstance(t, Target)], settings.concurrency)
        await campaign.run(source, emit, retry_runtime)
    except asyncio.CancelledError:
        if pool is not None:
            pool.close(now=True)  # before the loop waits for the threads that read their pipes
        raise
    finally:
        if runtime is not None:
            await runtime.close()
        await isolation.close()
        if demo is not None:
            await demo.stop()


def _check_config(args: argparse.Namespace) -> int:
    config, data = load_config_with_plugins(args.config, strict=args.strict_plugins)
    web = load_web_config(config.daemon.web_config) if config.daemon.web_config else None
    print(f"{args.config}: ok ({len(config.targets)} targets, {len(data.detector_classes)} detectors, {len(data.catalog.providers)} providers, {sum(f.prefixes_v4 + f.prefixes_v6 for f in data.ranges.files)} IP prefixes{', web config ' + web.describe() if web else ''})")
    for problem in config.problems:
        print(f"warning: {problem}")
    for warning in config.warnings:
        print(f"warning: {warning}")
    for name, error in data.host.failed.items():
        print(f"warning: plugin '{name}' is not used: {error}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command. Whatever goes wrong ends in one line on stderr and an exit status,
    never a traceback: 2 for bad input, 1 for the system (a taken port), 70 for a bug."""
    try:
        parser = build_parser()
        args = parser.parse_args(argv)
        # A scan logs its progress (without a terminal) and backoffs at info; --quiet silences them.
        default_level = "info" if args.command == "run" or (args.command == "scan" and not args.quiet) else "warning"
        logs.configure(args.log_level or default_level)
        if args.command == "scan":
            return _scan(args)
        if args.command == "plugins":
            return cli_plugins.run(args)
        if args.command == "catalog":
            return cli_catalog.run(args)
        if args.command == "check-config":
            return _check_config(args)
        if args.command == "data":
            return _data(args)
        if args.command == "report":
            return cli_report.run(args)
        return daemon_cli.dispatch(args)
    except BrokenPipeError:  # (an OSError: first) the reader went away, e.g. `| head`
        _silence_stdout()
        return 0
    except DijkwachtError as exc:
        print(f"dijkwacht: {one_line(str(exc), 1000)}", file=sys.stderr)
        return 2
    except OSError as exc:  # e.g. the state directory is not writable, the port is taken
        print(f"dijkwacht: {one_line(str(exc), 1000)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # a bug: say what, once; the traceback only with --log-level debug
        log.debug("internal_error", exc_info=True)
        print(f"dijkwacht: internal error: {type(exc).__name__}: {one_line(str(exc))} (please report it)", file=sys.stderr)
        return 70


def _silence_stdout() -> None:
    """Point stdout at /dev/null, so that the interpreter's final flush does not fail again."""
    with contextlib.suppress(OSError, ValueError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)


def _data(args: argparse.Namespace) -> int:
    data_dir = args.data_dir
    if not data_dir and getattr(args, "config", None):
        data_dir = load_config(args.config, check_paths=False).agent.data_dir
    if not data_dir:
        raise UsageError("data update: --data-dir is required")
    return cli_data.run(args, Path(data_dir))


if __name__ == "__main__":
    sys.exit(main())
