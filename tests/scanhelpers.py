"""Running the corpus through a real Scanner and comparing with the expectations."""

from __future__ import annotations

from dijkwacht.config import AgentSettings
from dijkwacht.ipranges import IPRanges
from dijkwacht.runtime import build_runtime, load_data
from dijkwacht.targets import Target, normalise_domain

from .corpus import CASES, PROVIDER_ZONE


def corpus_zone(cases=CASES) -> str:
    return PROVIDER_ZONE + "\n" + "\n".join(c.zone for c in cases)


def corpus_failures(cases=CASES) -> dict:
    failures: dict = {}
    for c in cases:
        failures.update(c.failures)
    return failures


async def scan_cases(nameserver: str, ranges: IPRanges, cases=CASES, **settings):
    """Scan every case (by the name a user would type) and return {domain: TargetResult}."""
    agent = AgentSettings(nameservers=(nameserver,), dns_timeout=settings.pop("dns_timeout", 0.4), dns_tries=1, **settings)
    data = load_data(agent)
    data.ranges = ranges
    runtime = build_runtime(agent, data)
    targets = [Target(normalise_domain(c.query or c.domain)) for c in cases]
    try:
        results = [r async for r in runtime.scanner.scan_all(targets)]
    finally:
        await runtime.close()
    return {r.target.domain: r for r in results}, runtime


def observed(result) -> set[tuple[str, str, str]]:
    return {(d.category, d.provider, d.confidence) for d in result.dependencies}


def mismatches(results, cases=CASES) -> list[str]:
    """Human-readable differences between results and expectations (empty when all match)."""
    problems = []
    for c in cases:
        result = results[c.domain]
        got = observed(result)
        if got != set(c.expect):
            problems.append(f"{c.domain}: missing {sorted(set(c.expect) - got)}, unexpected {sorted(got - set(c.expect))} ({c.note})")
        errors = {e.detector for e in result.errors}
        if errors != set(c.errors):
            problems.append(f"{c.domain}: errors from {sorted(errors)}, expected {sorted(c.errors)}: {[e.message for e in result.errors]}")
    return problems


def precision_recall(results, cases=CASES) -> tuple[float, float, int, int, int]:
    """Over (target, category, provider) pairs: precision, recall, true/false positives, misses."""
    tp = fp = fn = 0
    for c in cases:
        got = {(cat, prov) for cat, prov, _ in observed(results[c.domain])}
        want = {(cat, prov) for cat, prov, _ in c.expect}
        tp += len(got & want)
        fp += len(got - want)
        fn += len(want - got)
    precision = tp / (tp + fp) if tp + fp else 1.0
    recall = tp / (tp + fn) if tp + fn else 1.0
    return precision, recall, tp, fp, fn
