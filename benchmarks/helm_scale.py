#!/usr/bin/env python3
"""The Helm chart and the agent at scale: N targets with two labels over R shards.

    python benchmarks/helm_scale.py [--targets 50000] [--replicas 4] [--runs 3]

Prints the chart's render time (Helm v4 Go SDK, `helm-python-sdk`; best of --runs), the
number and sizes of the target ConfigMaps and the largest object (JSON bytes, as the API
server receives it; the limit is 1 MiB), an estimate of Helm's release record (gzipped JSON
of values, manifests and chart, base64: what Helm stores in a Secret, same limit), and how
long an agent takes to load every target from the rendered ConfigMaps laid out as the pod
mounts them, and to keep its shard.
"""

from __future__ import annotations

import argparse
import base64
import gzip
import json
import tempfile
import time
from pathlib import Path

import helm_python as helm
import yaml

from dijkwacht.config import load_config
from dijkwacht.shard import Shard

CHART = Path(__file__).resolve().parents[1] / "deploy" / "helm" / "dijkwacht"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--targets", type=int, default=50_000)
    parser.add_argument("--replicas", type=int, default=4)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    targets = [{"domain": f"gemeente-{i:05d}.nl", "labels": {"sector": "municipality", "owner": f"team-{i % 50}"}} for i in range(args.targets)]
    values = {"targets": targets, "replicas": args.replicas}
    with helm.Chart.load(CHART) as chart:
        times = []
        for _ in range(args.runs):
            started = time.perf_counter()
            manifests = chart.render(values, name="rel", namespace="mon")
            times.append(time.perf_counter() - started)
        release = {"name": "rel", "config": values, "manifest": "\n---\n".join(manifests.values()),
                   "chart": {"templates": chart.templates, "files": chart.files, "values": chart.values}}
    docs = [d for path, text in manifests.items() if not path.endswith("NOTES.txt") for d in yaml.safe_load_all(text) if d]
    buckets = [d for d in docs if d["kind"] == "ConfigMap" and "-targets-" in d["metadata"]["name"]]
    sizes = sorted(len(json.dumps(d)) for d in buckets)
    print(f"targets: {args.targets}, replicas: {args.replicas}")
    print(f"helm render: {min(times):.2f} s (best of {args.runs})")
    print(f"target ConfigMaps: {len(buckets)}, {sizes[0]:,}-{sizes[-1]:,} bytes")
    print(f"largest object: {max(len(json.dumps(d)) for d in docs):,} bytes (limit 1,048,576)")
    print(f"helm release record (estimate): {len(base64.b64encode(gzip.compress(json.dumps(release).encode()))):,} bytes")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "targets").mkdir()
        for cm in buckets:
            for key, text in cm["data"].items():
                (root / "targets" / key).write_text(text, encoding="utf-8")
        (root / "dijkwacht.toml").write_text('[agent]\ntargets_dir = "targets"\n', encoding="utf-8")
        started = time.perf_counter()
        config = load_config(root / "dijkwacht.toml")
        loaded = time.perf_counter() - started
        started = time.perf_counter()
        share = [t for t in config.targets if Shard(0, args.replicas).owns(t.domain)]
        kept = time.perf_counter() - started
    print(f"agent: load {len(config.targets):,} targets {loaded:.2f} s, keep shard 0/{args.replicas} ({len(share):,}) {kept:.3f} s")


if __name__ == "__main__":
    main()
