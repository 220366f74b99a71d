"""`dijkwacht data update`: refresh the range files from the providers' official lists."""

from __future__ import annotations

import argparse
import asyncio
import signal
from pathlib import Path

from . import asn
from .config import parse_duration
from .rangefeeds import FEEDS, FeedResult, import_ranges, update_ranges

# Exit status: every feed written; none; some (the others keep their old files). A partial
# update still changed files, so whatever reloads the agent afterwards must run (systemd:
# SuccessExitStatus=3); the agent also notices the new files by itself.
OK, FAILED, PARTIAL = 0, 1, 3


def _positive_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a number of seconds") from None
    if not value > 0:  # also rejects nan
        raise argparse.ArgumentTypeError("the timeout must be more than 0 seconds")
    return value


def _duration(text: str) -> float:
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    data = subparsers.add_parser("data", help="manage the provider IP range files", description="Manage the provider IP range files in the data directory.")
    commands = data.add_subparsers(dest="data_command", metavar="COMMAND", required=True)
    update = commands.add_parser(
        "update",
        help="download the providers' official IP range lists",
        description=(
            "Download the providers' official IP range lists and rewrite their <provider>.txt files, "
            f"and the IP-to-AS table ({asn.FEED}: iptoasn.com, public domain) into {asn.COMBINED}. "
            "A feed that fails, or that shrinks to fewer than half of the prefixes on disk, leaves "
            "the old file untouched; the others are still written. Other files in the data directory "
            "are never changed. Downloads honour HTTPS_PROXY, HTTP_PROXY and NO_PROXY. "
            "Exit status: 0 every feed written, 3 some, 1 none."
        ),
    )
    update.add_argument("--data-dir", type=Path, default=None, metavar="DIR", help="directory of range files (default: data_dir of --config)")
    update.add_argument("--config", metavar="FILE", help="configuration file whose [agent] data_dir is used when --data-dir is not given")
    update.add_argument(
        "--provider",
        action="append",
        dest="providers",
        choices=[*FEEDS, asn.FEED],
        metavar="ID",
        help=f"update only this provider; repeat for several (default: all of {', '.join([*FEEDS, asn.FEED])})",
    )
    update.add_argument("--force", action="store_true", help="replace a file even if the new list has fewer than half of its prefixes")
    update.add_argument("--timeout", type=_positive_seconds, default=30.0, metavar="SECONDS", help="time limit for each download (default: %(default)g)")
    update.add_argument(
        "--from",
        dest="source",
        type=Path,
        metavar="DIR",
        help="read the official files from DIR instead of downloading them (air-gapped sites): "
        + ", ".join([*(f"{p}: {' + '.join(f.files)}" for p, f in FEEDS.items()), f"{asn.FEED}: {asn.COMBINED}"]),
    )
    update.add_argument("--every", type=_duration, metavar="DURATION", help="repeat every DURATION (e.g. 24h) until SIGTERM, as a sidecar container does")


def _report(results: list[FeedResult]) -> int:
    for result in results:
        if result.ok:
            print(f"{result.provider}  ok  {result.prefixes_v4} IPv4  {result.prefixes_v6} IPv6  {result.path}", flush=True)
        else:
            print(f"{result.provider}  FAILED  {' '.join(result.error.split())}", flush=True)
    written = sum(result.ok for result in results)
    return OK if written == len(results) else PARTIAL if written else FAILED


async def _once(args: argparse.Namespace, data_dir: Path) -> int:
    chosen = args.providers
    feeds = None if chosen is None else [p for p in chosen if p != asn.FEED]
    # The table is optional (a scan works without): from a directory, only when it is there or asked for.
    table = asn.FEED in chosen if chosen is not None else args.source is None or (args.source / asn.COMBINED).exists()
    if args.source is not None:
        results = await asyncio.to_thread(import_ranges, data_dir, args.source, providers=feeds, force=args.force)
        if table:
            results.append(await asyncio.to_thread(asn.import_table, data_dir, args.source, force=args.force))
    else:
        results = await update_ranges(data_dir, providers=feeds, timeout=args.timeout, force=args.force)
        if table:
            results.append(await asn.update_table(data_dir, timeout=args.timeout, force=args.force))
    return _report(results)


async def _repeat(args: argparse.Namespace, data_dir: Path) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    while True:
        await _once(args, data_dir)
        try:
            await asyncio.wait_for(stop.wait(), args.every)
            return OK
        except TimeoutError:
            pass


def run(args: argparse.Namespace, data_dir: Path) -> int:
    """Update the range files in `data_dir`; one line per provider; see OK, FAILED, PARTIAL."""
    return asyncio.run(_repeat(args, data_dir) if args.every else _once(args, data_dir))
