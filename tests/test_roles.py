"""Roles (what a provider does for a target) and inferred dependencies that do not count.

Every role reaches the scan JSON, the scan table and the metrics; a newsletter service in SPF
is `sending`, never `mailbox`; an inferred dependency is in the JSON but neither exported nor
counted as foreign nor recorded as a change unless `[agent] count_inferred = true`.
"""

from __future__ import annotations

import json
import sqlite3

import aiohttp
from prometheus_client import generate_latest
from prometheus_client.registry import Collector

from dijkwacht.catalog import EU, load_catalog
from dijkwacht.daemon.agent import Daemon
from dijkwacht.daemon.metrics import TargetView, dependency_families
from dijkwacht.daemon.server import serve
from dijkwacht.daemon.webconfig import WebConfig
from dijkwacht.state import StateStore
from dijkwacht.detector import Finding
from dijkwacht.output import render_table
from dijkwacht.figures import counted
from dijkwacht.scanner import Classifier, Dependency, TargetResult
from dijkwacht.targets import Target

from .scanhelpers import corpus_failures, corpus_zone, scan_cases
from .test_daemon import wait_for

BUILT_IN_ROLES = {"mailbox", "gateway", "sending", "meeting", "cdn", "hosting", "dns"}


def _views(results, count_inferred=False):
    views = []
    for domain, result in results.items():
        deps: dict[str, list[Dependency]] = {}
        for dep in counted(result.dependencies, count_inferred):
            deps.setdefault(dep.category, []).append(dep)
        views.append(TargetView(domain, {}, deps, scanned=True))
    return views


class _Families(Collector):
    def __init__(self, families):
        self.families = list(families)

    def collect(self):
        return iter(self.families)


def _metrics(views) -> str:
    return generate_latest(_Families(dependency_families(views, EU, ()))).decode()


async def test_every_role_appears_in_json_table_and_metrics(dns_server, shared_ranges):
    server = await dns_server(corpus_zone(), failures=corpus_failures())
    results, _ = await scan_cases(server.address, shared_ranges)
    in_json = {d["role"] for r in results.values() for d in json.loads(json.dumps(r.to_json()))["dependencies"]}
    assert in_json == BUILT_IN_ROLES
    table = render_table(results.values())
    assert all(f" {role} " in table for role in BUILT_IN_ROLES)
    text = _metrics(_views(results))
    assert {role for role in BUILT_IN_ROLES if f'role="{role}"' in text} == BUILT_IN_ROLES


async def test_roles_of_known_setups(dns_server, shared_ranges):
    server = await dns_server(corpus_zone(), failures=corpus_failures())
    results, _ = await scan_cases(server.address, shared_ranges)

    def roles(domain):
        return {(d.category, d.provider, d.role) for d in results[domain].dependencies}

    # Proofpoint filters in front of Exchange Online.
    assert roles("ziekenhuis-g.nl") == {("email", "proofpoint", "gateway"), ("email", "microsoft", "mailbox")}
    # A newsletter or transactional service in SPF only is a sender, never the mailbox.
    assert roles("redirect-r.nl") == {("email", "sendgrid", "sending")}
    assert ("email", "mailchimp", "sending") in roles("hybride-q.nl")
    assert roles("stad-m.nl") == {("email", "leaseweb", "mailbox")}  # self-hosted at a hoster
    assert ("video", "google", "meeting") in roles("school-d.nl")
    for result in results.values():
        for dep in result.dependencies:
            if dep.provider in ("mailchimp", "sendgrid", "mailgun"):
                assert dep.role != "mailbox", (result.target.domain, dep)


def test_one_dependency_per_provider_and_category_with_its_first_role():
    catalog = load_catalog()
    classify = Classifier(catalog, EU).dependencies
    deps = classify(
        [
            Finding("email", "amazon", ["SPF include:amazonses.com"], "indicated", role="sending"),
            Finding("email", "amazon", ["MX 10 inbound-smtp.eu-west-1.amazonaws.com"]),
            Finding("email", "proofpoint", ["MX 10 mx0a-001.pphosted.com"]),
            Finding("identity", "microsoft", ["CNAME login -> login.microsoftonline.com"]),
            Finding("sso", "microsoft", ["TXT x"], role="identity"),
        ]
    )
    assert [(d.category, d.provider, d.role, d.confidence) for d in deps] == [
        ("email", "amazon", "mailbox", "confirmed"),  # mailbox outranks sending: counted once
        ("email", "proofpoint", "gateway", "confirmed"),  # mail_gateway in the catalog
        ("identity", "microsoft", "identity", "confirmed"),  # a plugin category is its own role
        ("sso", "microsoft", "identity", "confirmed"),  # a plugin's own role is kept
    ]
    assert deps[0].to_json()["role"] == "mailbox"


def _dep(provider, confidence="confirmed", category="video", juris="US"):
    return Dependency(category, provider, provider, juris, True, ("evidence",), confidence, provider, "meeting")


def _result(*deps):
    return TargetResult(Target("gemeente.nl"), list(deps), [], frozenset(), frozenset({"video"}))


def test_inferred_dependencies_are_not_exported_unless_asked():
    result = _result(_dep("microsoft"), _dep("google", "inferred"))
    views = _views({"gemeente.nl": result})
    text = _metrics(views)
    assert 'provider="microsoft"' in text and 'provider="google"' not in text
    assert 'dijkwacht_foreign_dependencies{category="video",target="gemeente.nl"} 1.0' in text
    text = _metrics(_views({"gemeente.nl": result}, count_inferred=True))
    assert 'provider="google"' in text
    assert 'dijkwacht_foreign_dependencies{category="video",target="gemeente.nl"} 2.0' in text
    # the scan table lists it, but its summary does not count it as foreign
    only_inferred = _result(_dep("google", "inferred"))
    assert "(1 dependencies, 0 foreign)" in render_table([only_inferred])
    assert "(1 dependencies, 1 foreign)" in render_table([only_inferred], count_inferred=True)


def test_inferred_dependencies_never_become_changes(tmp_path):
    store = StateStore(tmp_path / "state.db", confirmations=1)
    store.record(_result(_dep("microsoft")), EU, now=1)
    assert store.record(_result(_dep("microsoft"), _dep("google", "inferred")), EU, now=2) == []
    assert store.record(_result(_dep("microsoft")), EU, now=3) == []
    # stored all the same, so switching count_inferred on is no move either
    store.record(_result(_dep("microsoft"), _dep("google", "inferred")), EU, now=4)
    store.count_inferred = True
    assert store.record(_result(_dep("microsoft"), _dep("google", "inferred")), EU, now=5) == []
    [change] = store.record(_result(_dep("microsoft")), EU, now=6)
    assert change.from_providers == ("google", "microsoft") and change.to_providers == ("microsoft",)


def test_role_is_stored_and_an_old_database_gains_the_column(tmp_path):
    path = tmp_path / "state.db"
    db = sqlite3.connect(path)
    db.executescript(
        "CREATE TABLE dependencies (target TEXT NOT NULL, category TEXT NOT NULL, provider TEXT NOT NULL,"
        " name TEXT NOT NULL, jurisdiction TEXT NOT NULL, parent TEXT NOT NULL, confidence TEXT NOT NULL,"
        " evidence TEXT NOT NULL, since REAL NOT NULL, PRIMARY KEY (target, category, provider));"
        "INSERT INTO dependencies VALUES ('gemeente.nl', 'video', 'microsoft', 'Teams', 'US', 'Microsoft', 'confirmed', '[]', 1);"
    )
    db.commit()
    db.close()
    store = StateStore(path)
    assert [d.role for d in store.stored("gemeente.nl")["video"]] == [""]
    store.record(_result(_dep("microsoft")), EU, now=2)  # a baseline for video: stored with its role
    assert [d.role for d in store.dependencies()["gemeente.nl"]["video"]] == ["meeting"]


async def test_daemon_and_probe_leave_inferred_out_unless_configured(dns_server, tmp_path):
    server = await dns_server('school.nl MX 1 aspmx.l.google.com.\nschool.nl TXT "v=spf1 include:_spf.google.com ~all"\n')
    config = tmp_path / "dijkwacht.toml"
    body = f'nameservers = ["{server.address}"]\ndns_timeout = 0.3\ndns_tries = 1\n'
    rest = f'[daemon]\ninterval = "1h"\nstate_path = "{tmp_path / "state.db"}"\n[[targets]]\ndomain = "school.nl"\n'
    config.write_text("[agent]\n" + body + rest)
    daemon = Daemon(config)
    await daemon.start()
    runner = await serve(daemon, WebConfig(), "127.0.0.1:0")
    base = f"http://127.0.0.1:{runner.addresses[0][1]}"
    meet = 'category="video",confidence="inferred",foreign="true",jurisdiction="US",provider="google",role="meeting"'
    try:
        await wait_for(lambda: daemon.ready)
        async with aiohttp.ClientSession() as http:
            for path in ("/metrics", "/probe?target=school.nl"):
                async with http.get(base + path) as response:
                    text = await response.text()
                assert 'provider="google",role="mailbox"' in text and meet not in text, path
                family = "dijkwacht_probe_foreign_dependencies" if path.startswith("/probe") else "dijkwacht_foreign_dependencies"
                assert family + '{category="video",target="school.nl"} 0.0' in text, path
            assert [d.confidence for d in daemon.state.stored("school.nl")["video"]] == ["inferred"]  # kept, not shown
            config.write_text("[agent]\ncount_inferred = true\n" + body + rest)
            assert (await daemon.reload())[0]
            for path in ("/metrics", "/probe?target=school.nl"):
                async with http.get(base + path) as response:
                    assert meet in await response.text(), path
        assert daemon.state.changes() == []  # switching the setting is no move
    finally:
        await runner.cleanup()
        await daemon.stop()
