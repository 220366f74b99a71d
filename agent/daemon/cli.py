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

from ..config import Config, load_config
from ..errors import DijkwachtError
from .agent import Daemon
from .server import serve
from .state import StateStore
from .webconfig import load_web_config

log = structlog.get_logger()

SHUTDOWN_TIMEOUT = 9.0  # seconds from SIGTERM to exit, at most


def add_parsers(sub: argparse._SubParsersAction) -> None:
    run = sub.add_parser("run", help="run the agent: scheduled scans, state, /metrics", description="Run the agent: rescan every target each interval, keep confirmed dependencies and their change history in SQLite, and serve Prometheus metrics. SIGHUP or POST /-/reload reloads the configuration; SIGTERM stops cleanly.")
    run.add_argument("--config", required=True, metavar="FILE", help="TOML configuration file")
    run.add_argument("--web.config.file", dest="web_config", metavar="FILE", help="exporter-toolkit web config (TLS, basic auth); default: [daemon] web_config")
    run.add_argument("--listen", metavar="HOST:PORT", help="address to serve HTTP on (default: [daemon] listen, 0.0.0.0:9849)")

    history = sub.add_parser("history", help="show confirmed dependency changes", description="Show the confirmed dependency changes the agent recorded.")
    where = history.add_mutually_exclusive_group(required=True)
    where.add_argument("--config", metavar="FILE", help="configuration file (its [daemon] state_path is read)")
    where.add_argument("--state", metavar="PATH", help="state database to read")
    history.add_argument("--target", metavar="DOMAIN", help="only this target")
    history.add_argument("--since", metavar="DATE", type=_date, help="only changes at or after this date (YYYY-MM-DD or ISO timestamp, UTC)")
    history.add_argument("--format", choices=["json", "table"], default="table", help="output format")


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
    daemon = Daemon(args.config)
    await daemon.start()
    assert daemon.config is not None
    try:
        web_config = load_web_config(args.web_config or daemon.config.daemon.web_config)
        listen = args.listen or daemon.config.daemon.listen
        runner = await serve(daemon, web_config, listen)
    except BaseException:
        await daemon.stop(grace=0)
        raise

    async def reload_web_config(config: Config):
        """Validate the web config with the rest of a reload; apply it only if all is valid."""
        new = await asyncio.to_thread(load_web_config, args.web_config or config.daemon.web_config)
        web_config.check_update(new)
        return lambda: web_config.update(new)

    daemon.reload_hooks.append(reload_web_config)
    log.info("http.listening", address=listen, web_config=web_config.describe())
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    loop.add_signal_handler(signal.SIGHUP, lambda: daemon.background(daemon.reload()))
    await stop.wait()
    log.info("agent.stopping")
    try:
        # Whatever is in flight (a slow /probe, scans waiting out DNS timeouts), the agent is
        # gone well within systemd's and Kubernetes' stop timeouts.
        async with asyncio.timeout(SHUTDOWN_TIMEOUT):
            await runner.cleanup()
            await daemon.stop()
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
