"""The identity detector, tested with dijkwacht's test kit: the `dns_server` and
`dijkwacht_catalog` fixtures come from its pytest plugin, `run_detector` runs the detector as
the agent does (own thread, timeout, contract check, catalog owners)."""

from __future__ import annotations

import pytest

import dijkwacht_identity
from dijkwacht.testing import check_plugin, run_detector
from dijkwacht_identity import IdentityDetector

ZONE = """
login.gemeente.nl CNAME gemeente.okta.com.
gemeente.okta.com A 192.0.2.1
enterpriseregistration.gemeente.nl CNAME enterpriseregistration.windows.net.
"""


def test_the_plugin_loads_as_the_agent_loads_it():
    record = check_plugin(dijkwacht_identity)
    assert record.status == "loaded", record.error
    assert [c.name for c in record.detectors] == ["identity"]


@pytest.mark.asyncio
async def test_okta_and_entra_id_are_found_with_their_jurisdiction(dns_server):
    server = await dns_server(ZONE)
    run = await run_detector(IdentityDetector, "gemeente.nl", server)
    assert run.errors == []
    assert [(d.provider, d.name, d.role, d.jurisdiction, d.foreign, d.evidence) for d in run.dependencies] == [
        ("microsoft", "Microsoft Entra ID", "identity", "US", True, ("CNAME enterpriseregistration.gemeente.nl -> enterpriseregistration.windows.net",)),
        ("okta", "Okta Workforce Identity", "identity", "US", True, ("CNAME login.gemeente.nl -> gemeente.okta.com",)),
    ]


@pytest.mark.asyncio
async def test_no_records_means_no_identity_provider(dns_server):
    server = await dns_server("gemeente.nl A 192.0.2.1\n")
    run = await run_detector(IdentityDetector, "gemeente.nl", server)
    assert (run.dependencies, run.errors) == ([], [])


@pytest.mark.asyncio
async def test_a_failed_lookup_makes_the_result_unknown_not_empty(dns_server):
    server = await dns_server(ZONE, failures={"login.gemeente.nl": "servfail"})
    run = await run_detector(IdentityDetector, "gemeente.nl", server)
    assert run.errors == ["CNAME login.gemeente.nl: SERVFAIL"]
    assert run.result.incomplete == {"identity"}
    assert run.providers == {("identity", "microsoft")}


@pytest.mark.asyncio
async def test_the_hosts_asked_are_a_setting(dns_server):
    server = await dns_server("id.gemeente.nl CNAME gemeente.okta.com.\n")
    run = await run_detector(IdentityDetector, "gemeente.nl", server, settings={"hosts": ["id"]})
    assert run.providers == {("identity", "okta")}


def test_the_catalog_file_adds_okta_and_extends_microsoft(dijkwacht_catalog):
    catalog = dijkwacht_catalog(dijkwacht_identity)
    assert (catalog.providers["okta"].name, catalog.providers["okta"].jurisdiction) == ("Okta", "US")
    assert [f.provider for f in catalog.match_host("cname", "gemeente.okta.com", "identity")] == ["okta"]
    assert any(f.category == "email" for f in catalog.providers["microsoft"].facts)
