"""The detector corpus (tests/corpus.py) through the whole scan path, against the fake server.

Every case's dependencies are asserted exactly, including what must NOT be reported, and
every case's errors too: a failure is never absence.
"""

from __future__ import annotations

import pytest

from dijkwacht.catalog import EU
from dijkwacht.detector import CONFIRMED, INDICATED, INFERRED

from .corpus import CASES
from .scanhelpers import corpus_failures, corpus_zone, mismatches, precision_recall, scan_cases


async def test_corpus_has_enough_cases_of_every_family():
    assert len(CASES) >= 40
    categories = {cat for c in CASES for cat, _, _ in c.expect}
    assert categories == {"email", "video", "cdn", "hosting", "dns"}
    assert {conf for c in CASES for _, _, conf in c.expect} == {CONFIRMED, INDICATED, INFERRED}


async def test_corpus_results_are_exact(dns_server, shared_ranges):
    server = await dns_server(corpus_zone(), failures=corpus_failures())
    results, _ = await scan_cases(server.address, shared_ranges)
    assert mismatches(results) == []
    precision, recall, *_ = precision_recall(results)
    assert (precision, recall) == (1.0, 1.0)


async def test_every_dependency_has_evidence_and_jurisdiction(dns_server, shared_ranges):
    server = await dns_server(corpus_zone(), failures=corpus_failures())
    results, _ = await scan_cases(server.address, shared_ranges)
    for result in results.values():
        for dep in result.dependencies:
            assert dep.evidence, dep
            assert len(dep.jurisdiction) == 2, dep
            assert dep.foreign == (dep.jurisdiction not in EU)  # the default home
    gemeente = results["gemeente-a.nl"].dependencies[0]
    assert gemeente.jurisdiction == "US" and gemeente.foreign
    assert "MX 0 gemeente-a-nl.mail.protection.outlook.com" in gemeente.evidence
    assert any(e.startswith("TXT MS=") for e in gemeente.evidence)  # corroboration only


async def test_shared_provider_names_are_resolved_once(dns_server, shared_ranges):
    server = await dns_server(corpus_zone(), failures=corpus_failures())
    await scan_cases(server.address, shared_ranges)
    assert server.asked[("gemeente-a-nl.mail.protection.outlook.com", "A")] <= 1  # matched by name: never asked
    assert server.asked[("aspmx.l.google.com", "A")] == 0
    # each target's own names are asked once, although several detectors need them
    assert server.asked[("gemeente-a.nl", "TXT")] == 1
    assert server.asked[("site-ai.nl", "A")] == 1


async def test_without_ip_data_hostname_evidence_still_works(dns_server):
    from dijkwacht.ipranges import IPRanges

    server = await dns_server(corpus_zone(), failures=corpus_failures())
    results, _ = await scan_cases(server.address, IPRanges())
    assert ("email", "microsoft", CONFIRMED) in {(d.category, d.provider, d.confidence) for d in results["gemeente-a.nl"].dependencies}
    assert results["stad-m.nl"].dependencies == []  # needs IP data
