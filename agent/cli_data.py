"""`dijkwacht data update`: refresh the range files from the providers' official lists."""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path

from . import asn
from .rangefeeds import FEEDS, FeedResult, update_ranges


def _positive_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a number of seconds") from None
    if not value > 0:  # also rejects nan
        raise argparse.ArgumentTypeError("the timeout must be more than 0 seconds")
    return value


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
            "the old file untouched; other files in the data directory are never changed."
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


async def _update(args: argparse.Namespace, data_dir: Path) -> list[FeedResult]:
    chosen = args.providers
    feeds = None if chosen is None else [p for p in chosen if p != asn.FEED]
    results = await update_ranges(data_dir, providers=feeds, timeout=args.timeout, force=args.force)
    if chosen is None or asn.FEED in chosen:
        results.append(await asn.update_table(data_dir, timeout=args.timeout, force=args.force))
    return results


def run(args: argparse.Namespace, data_dir: Path) -> int:
    """Update the range files in `data_dir`; one line per provider; 0 if every feed succeeded."""
    results = asyncio.run(_update(args, data_dir))
    for result in results:
        if result.ok:
            print(f"{result.provider}  ok  {result.prefixes_v4} IPv4  {result.prefixes_v6} IPv6  {result.path}")
        else:
            print(f"{result.provider}  FAILED  {' '.join(result.error.split())}")
    return 0 if all(result.ok for result in results) else 1
