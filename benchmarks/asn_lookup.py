"""Benchmark: the IP-to-AS table against the provider range lookup.

Loads an ip2asn table (a real one with --table, else a synthetic one of the real table's size:
about 480,000 IPv4 and 130,000 IPv6 random disjoint ranges of 78,000 ASes, written to a
temporary ip2asn-combined.tsv.gz), then times

* loading it: the first time (gzip, parse, arrays, writing the index beside it), and again
  from that index; the memory it keeps (its arrays and AS records) and the peak resident size
  of the process while loading,
* lookups of random addresses, IPv4 and IPv6, in the table and in the provider range files
  (../shared/data/ip-ranges, or --ranges DIR) for comparison: the table must be as fast.

    python benchmarks/asn_lookup.py [--table ip2asn-combined.tsv.gz] [--lookups 200000]
"""

from __future__ import annotations

import argparse
import gzip
import ipaddress
import multiprocessing
import random
import resource
import sys
import tempfile
import time
from pathlib import Path

from dijkwacht.asn import COMBINED, load_table
from dijkwacht.ipranges import load_ranges

RANGES = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "ip-ranges"


def synthetic_table(path: Path, v4_rows: int, v6_rows: int, seed: int) -> None:
    """Disjoint random ranges in the ip2asn format, like the real table in size and shape."""
    rng = random.Random(seed)
    lines = []
    for version, rows, bits in ((4, v4_rows, 32), (6, v6_rows, 128)):
        # Evenly spread starts in the routed part of the space, each range up to the next start.
        low, high = (1 << 24, 224 << 24) if version == 4 else (0x2000 << 112, 0x2C00 << 112)
        starts = sorted(rng.sample(range(low, high, (high - low) // (rows * 4)), rows))
        make = ipaddress.IPv4Address if version == 4 else ipaddress.IPv6Address
        for start, nxt in zip(starts, [*starts[1:], high]):
            end = start + rng.randint(1, max(1, (nxt - start) // 2 ** (bits // 16))) * 2 ** (bits // 16) - 1
            end = min(end, nxt - 1)
            asn = rng.randint(1, 78_000) * 5  # as many ASes as the real table, its holders' names repeat
            lines.append(f"{make(start)}\t{make(end)}\t{asn}\tNL\tAS{asn}-EXAMPLE Example Holder {asn}\n")
    path.write_bytes(gzip.compress("".join(lines).encode(), compresslevel=6))


def kept_bytes(table) -> int:
    """What a loaded table keeps: its arrays and one record per AS (names shared per AS)."""
    arrays = [getattr(family, name) for family in (table._v4, table._v6) for name in ("starts", "ends", "asns")]
    records = table._info.values()
    return sum(a.itemsize * len(a) for a in arrays) + sys.getsizeof(table._info) + sum(sys.getsizeof(r) + sys.getsizeof(r.name) for r in records)


def addresses(n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        if i % 4 == 3:
            out.append(str(ipaddress.IPv6Address((0x2000 << 112) + rng.getrandbits(122))))
        else:
            out.append(str(ipaddress.IPv4Address(rng.randint(1 << 24, (224 << 24) - 1))))
    return out


def rates(lookups: list, sample: list[str], repeat: int = 5) -> list[float]:
    """Lookups per second of each function, best of `repeat` passes over `sample`; the passes
    alternate between the functions, so a busy machine slows them alike."""
    best = [float("inf")] * len(lookups)
    for _ in range(repeat):
        for n, lookup in enumerate(lookups):
            started = time.perf_counter()
            for address in sample:
                lookup(address)
            best[n] = min(best[n], time.perf_counter() - started)
    return [len(sample) / b for b in best]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--table", type=Path, help="an ip2asn-combined.tsv.gz (default: a synthetic one of the same size)")
    parser.add_argument("--v4-rows", type=int, default=480_000, help="synthetic IPv4 ranges (default 480,000)")
    parser.add_argument("--v6-rows", type=int, default=130_000, help="synthetic IPv6 ranges (default 130,000)")
    parser.add_argument("--ranges", type=Path, default=RANGES, help="provider range files to compare with")
    parser.add_argument("--lookups", type=int, default=200_000, help="random addresses looked up (default 200,000)")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        table_path = Path(tmp) / COMBINED
        if args.table is not None:
            table_path.symlink_to(args.table.resolve())
        else:
            started = time.perf_counter()
            # In a child process, so the peak resident size below is the loading's alone.
            child = multiprocessing.get_context("fork").Process(target=synthetic_table, args=(table_path, args.v4_rows, args.v6_rows, args.seed))
            child.start()
            child.join()
            print(f"synthetic table: {args.v4_rows:,} IPv4 + {args.v6_rows:,} IPv6 ranges, {table_path.stat().st_size / 1e6:.1f} MB gzip, written in {time.perf_counter() - started:.1f} s")
        started = time.perf_counter()
        table = load_table(tmp)
        load = time.perf_counter() - started
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e3
        started = time.perf_counter()
        table = load_table(tmp)
        reload = time.perf_counter() - started
    [info] = table.files
    print(f"load: {load:.2f} s for {info.rows_v4:,} IPv4 + {info.rows_v6:,} IPv6 rows -> {len(table):,} ranges, {reload:.2f} s from its index; keeps {kept_bytes(table) / 1e6:.1f} MB (peak resident size while loading {peak:.0f} MB)")
    sample = addresses(args.lookups, args.seed)
    hits = sum(table.lookup(a) is not None for a in sample)
    if not args.ranges.is_dir():
        [as_rate] = rates([table.lookup], sample)
        print(f"lookup: AS table {as_rate / 1e6:.2f} M/s ({hits / len(sample):.0%} of random addresses routed)")
        return 0
    ranges = load_ranges(args.ranges)
    as_rate, range_rate = rates([table.lookup, ranges.lookup], sample)
    prefixes = sum(f.prefixes_v4 + f.prefixes_v6 for f in ranges.files if f.provider != "ip2asn")
    print(
        f"lookup: AS table {as_rate / 1e6:.2f} M/s = {1e6 / as_rate:.2f} us ({hits / len(sample):.0%} of random addresses routed); "
        f"provider ranges ({prefixes:,} prefixes) {range_rate / 1e6:.2f} M/s = {1e6 / range_rate:.2f} us; ratio {as_rate / range_rate:.2f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
