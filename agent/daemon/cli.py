"""`dijkwacht run` (the agent) and `dijkwacht history` (its change log)."""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import signal
import sys
from pathlib import Path

import structlog

from ..cli_plugins import add_strict_option
from ..config import DAEMON_FIELDS, Config, argument, duration, load_config
from ..errors import DijkwachtError
from ..shard import parse_shard
from ..state import StateStore
from .agent import Daemon
from .server import serve
from .webconfig import load_web_config

log = structlog.get_logger()

SHUTDOWN_TIMEOUT = 9.0  # seconds from SIGTERM to exit, at most


def add_parsers(sub: argparse._SubParsersAction) -> None:
    run = sub.add_parser("run", help="run the agent: scheduled scans, state, /metrics", description="Run the agent: rescan every target each interval, keep confirmed dependencies and their change history in SQLite, and serve Prometheus metrics. The configuration is reloaded when one of its files changes, on SIGHUP, and on POST /-/reload (with --web.enable-lifecycle); SIGTERM stops cleanly.")
    run.add_argument("--config", required=True, metavar="FILE", help="TOML configuration file")
    run.add_argument("--web.config.file", dest="web_config", metavar="FILE", help="exporter-toolkit web config (TLS, basic auth); default: [daemon] web_config")
    run.add_argument("--listen", type=argument(DAEMON_FIELDS["listen"], str), metavar="[HOST]:PORT", help="address to serve HTTP on (default: [daemon] listen, :9849 = every address of both families)")
    run.add_argument("--state-path", metavar="FILE", help="state database (default: [daemon] state_path); each shard needs its own")
    run.add_argument("--web.enable-lifecycle", dest="lifecycle", action="store_true", help="enable POST /-/reload (off by default: it changes state)")
    run.add_argument("--shard", type=_shard, metavar="I/N", help="scan only shard I of N (0 <= I < N; I may be a StatefulSet pod name ending in -I); default: [daemon] shard, else all targets")
    run.add_argument("--config.reload-interval", dest="reload_interval", type=_interval, default=30.0, metavar="DURATION", help="how often to check the configuration, targets, catalog and IP range files for changes and reload (default 30s; 0 turns it off)")
    add_strict_option(run)

    history = sub.add_parser("history", help="show confirmed dependency changes", description="Show the confirmed dependency changes the agent recorded.")
    where = history.add_mutually_exclusive_group(required=True)
    where.add_argument("--config", metavar="FILE", help="configuration file (its [daemon] state_path is read)")
    where.add_argument("--state", metavar="PATH", help="state database to read")
    history.add_argument("--target", metavar="DOMAIN", help="only this target")
    history.add_argument("--since", metavar="DATE", type=_date, help="only changes at or after this date (YYYY-MM-DD or ISO timestamp, UTC)")
    history.add_argument("--format", choices=["json", "table"], default="table", help="output format")


def _shard(text: str):
    try:
        return parse_shard(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _interval(text: str) -> float:
    if text.strip() in ("0", "0s"):
        return 0.0
    try:
        return duration(0.1, 86400)(text)  # checking every millisecond would be a busy loop
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _date(text: str) -> float:
    try:
        when = dt.datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a date such as 2026-01-31") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return when.timestamp()


def dispatch(args: argparse.Namespace) -> int:
    if args.command == "run":
        return asyncio.run(_run(args))
    return _history(args)


async def _run(args: argparse.Namespace) -> int:
    daemon = Daemon(args.config, shard=args.shard, log_level=args.log_level, state_path=args.state_path, strict_plugins=args.strict_plugins)
    await daemon.start()
    assert daemon.config is not None
    try:
        web_config = load_web_config(args.web_config or daemon.config.daemon.web_config)
        listen = args.listen or daemon.config.daemon.listen
        runner = await serve(daemon, web_config, listen, lifecycle=args.lifecycle)
    except BaseException:
        await daemon.stop(grace=0)
        raise

    async def reload_web_config(config: Config):
        """Validate the web config with the rest of a reload; apply it only if all is valid."""
        new = await asyncio.to_thread(load_web_config, args.web_config or config.daemon.web_config)
        web_config.check_update(new)
        return lambda: web_config.update(new)

    daemon.reload_hooks.append(reload_web_config)
    daemon.watch_also(lambda: web_config.files)  # a rotated certificate is reloaded without a signal
    log.info("http.listening", address=listen, web_config=web_config.describe(), lifecycle=args.lifecycle)
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    loop.add_signal_handler(signal.SIGHUP, lambda: daemon.background(daemon.reload()))
    watcher = asyncio.create_task(daemon.watch(args.reload_interval)) if args.reload_interval else None
    await stop.wait()
    log.info("agent.stopping")
    try:
        # Whatever is in flight (a slow /probe, scans waiting out DNS timeouts), the agent is
        # gone well within systemd's and Kubernetes' stop timeouts.
        async with asyncio.timeout(SHUTDOWN_TIMEOUT):
            await runner.cleanup()
            await daemon.stop()
            if watcher is not None:
                await watcher
    except TimeoutError:
        log.warning("agent.stop_timeout", seconds=SHUTDOWN_TIMEOUT)
    web_config.close()
    return 0


def _history(args: argparse.Namespace) -> int:
    path = args.state or load_config(args.config, check_paths=False).daemon.state_path
    if not Path(path).is_file():
        raise DijkwachtError(f"no state database at {path} (has `dijkwacht run` been started with this configuration?)")
    store = StateStore(path, readonly=True)
    try:
        changes = store.changes(args.target, args.since)
    finally:
        store.close()
    if args.format == "json":
        print(json.dumps([c.to_json() for c in changes], indent=2, ensure_ascii=False))
        return 0
    if not changes:
        print("no changes recorded")
        return 0
    for c in changes:
        j = c.to_json()
        moved = f"{','.join(c.from_providers) or '-'} ({c.from_jurisdiction or '?'}) -> {','.join(c.to_providers) or '-'} ({c.to_jurisdiction or '?'})"
        flag = "  FOREIGN" if c.to_foreign else ""
        print(f"{j['at']}  {c.target}  {c.category}  {c.reason}  {moved}{flag}")
        for line in c.evidence[:4]:
            print(f"    {line}")
    sys.stdout.flush()
    return 0
