"""Headline figures: one definition of every count, from scan JSON objects or TargetResults."""

from __future__ import annotations

from dijkwacht.figures import figures, render_summary, status
from dijkwacht.scanner import Dependency, ScanError, TargetResult
from dijkwacht.targets import Target


def dep(category, provider, foreign, confidence="confirmed", jurisdiction="US", **extra):
    return {"category": category, "provider": provider, "name": provider, "jurisdiction": jurisdiction, "foreign": foreign,
            "evidence": [], "confidence": confidence, "parent": f"{provider} Inc.", **extra}


RESULTS = [
    {"target": "a.nl", "dependencies": [dep("email", "microsoft", True, role="mailbox"), dep("dns", "transip", False, jurisdiction="BE", role="dns")],
     "errors": [], "labels": {"sector": "gemeente"}},
    {"target": "b.nl", "dependencies": [dep("email", "transip", False, jurisdiction="BE"), dep("video", "google", True, confidence="inferred")],
     "errors": [], "labels": {"sector": "gemeente"}},
    {"target": "c.nl", "dependencies": [], "errors": [{"detector": "email", "message": "MX c.nl: TIMEOUT"}], "retried": True,
     "labels": {"sector": "waterschap"}},
    {"target": "d.nl", "dependencies": [dep("cdn", "cloudflare", True), dep("email", "microsoft", True, role="mailbox")],
     "errors": [{"detector": "hosting", "message": "A d.nl: SERVFAIL"}]},
    {"target": "e.nl", "dependencies": [dep("email", "unknownmail", False, jurisdiction="")], "errors": [], "retried": True},
]


def test_every_target_is_foreign_clean_or_unknown_and_errors_are_never_clean():
    fig = figures(RESULTS)
    assert (fig["targets"], fig["foreign"], fig["clean"], fig["unknown"], fig["incomplete"]) == (5, 2, 2, 1, 2)
    assert fig["foreign"] + fig["clean"] + fig["unknown"] == fig["targets"]
    assert fig["retried"] == 2 and fig["still_failed"] == ["c.nl"]
    assert fig["errors"] == {"targets": 2, "by_detector": {"email": 1, "hosting": 1}}


def test_inferred_findings_count_only_when_asked():
    assert "video" not in figures(RESULTS)["categories"]
    assert figures(RESULTS)["foreign"] == 2
    counted = figures(RESULTS, count_inferred=True)
    assert counted["categories"]["video"] == {"targets": 1, "foreign": 1}
    assert counted["foreign"] == 3 and counted["clean"] == 1 and counted["count_inferred"] is True


def test_per_category_role_provider_jurisdiction_and_label():
    fig = figures(RESULTS)
    assert fig["categories"] == {"email": {"targets": 4, "foreign": 2}, "cdn": {"targets": 1, "foreign": 1}, "dns": {"targets": 1, "foreign": 0}}
    assert list(fig["categories"]) == ["email", "cdn", "dns"]  # most targets first, then by name
    assert fig["roles"] == {"mailbox": {"targets": 2, "foreign": 2}, "dns": {"targets": 1, "foreign": 0}}
    assert fig["providers"]["microsoft"] == {"parent": "microsoft Inc.", "jurisdiction": "US", "targets": 2, "foreign": 2, "categories": {"email": 2}}
    assert fig["providers"]["transip"]["targets"] == 2 and fig["providers"]["transip"]["categories"] == {"dns": 1, "email": 1}
    assert list(fig["providers"])[:2] == ["microsoft", "transip"]
    assert fig["jurisdictions"] == {"US": {"targets": 2, "foreign": 2}, "BE": {"targets": 2, "foreign": 0}, "unknown": {"targets": 1, "foreign": 0}}
    assert fig["labels"] == {"sector": {"gemeente": {"targets": 2, "foreign": 1, "clean": 1, "unknown": 0},
                                        "waterschap": {"targets": 1, "foreign": 0, "clean": 0, "unknown": 1}}}


def test_target_results_count_exactly_like_their_json():
    results = [
        TargetResult(Target("x.nl", {"sector": "rijk"}), [Dependency("email", "google", "Gmail", "US", True, ("MX",), "confirmed", "Alphabet Inc.")]),
        TargetResult(Target("y.nl"), [], [ScanError("dns", "NS y.nl: REFUSED")], retried=True),
    ]
    assert figures(results) == figures([r.to_json() for r in results])
    assert figures(results)["still_failed"] == ["y.nl"]


def test_keys_are_stable_and_an_empty_campaign_is_zero():
    fig = figures([])
    assert list(fig) == ["schema", "count_inferred", "targets", "foreign", "clean", "unknown", "incomplete", "retried", "still_failed",
                         "categories", "roles", "providers", "jurisdictions", "labels", "errors"]
    assert fig["targets"] == 0 and render_summary(fig).startswith("0 targets")


def test_summary_text_names_the_counts_and_the_top_providers():
    text = render_summary(figures(RESULTS), top=2)
    assert "5 targets: 2 with a foreign dependency (40.0 %), 2 without, 1 unknown" in text
    assert "retried 2, still failing 1" in text and "still failing: c.nl" in text
    assert "top 2 providers" in text and "microsoft" in text and "cloudflare" not in text


def _as_result(obj):
    deps = [Dependency(d["category"], d["provider"], d["name"], d["jurisdiction"], d["foreign"], tuple(d["evidence"]), d["confidence"], d["parent"], d.get("role", ""))
            for d in obj["dependencies"]]
    errors = [ScanError(e["detector"], e["message"]) for e in obj["errors"]]
    return TargetResult(Target(obj["target"], obj.get("labels", {})), deps, errors, retried=obj.get("retried", False))


def test_one_counting_rule_for_scan_objects_dependencies_and_the_scan_table():
    """`counted` takes scan JSON objects and scanner Dependencies alike; the scan table's lines
    and its last line are this module's figures, not a count of their own."""
    from dijkwacht.figures import counted, headline
    from dijkwacht.output import render_table

    results = [_as_result(obj) for obj in RESULTS]
    for count_inferred in (False, True):
        for obj, result in zip(RESULTS, results):
            kept = [(d.category, d.provider) for d in counted(result.dependencies, count_inferred)]
            assert kept == [(d["category"], d["provider"]) for d in counted(obj["dependencies"], count_inferred)]
            assert len(kept) == len(obj["dependencies"]) - (obj["target"] == "b.nl" and not count_inferred)
        fig = figures(RESULTS, count_inferred=count_inferred)
        lines = render_table(results, count_inferred=count_inferred).splitlines()
        assert lines[-1] == f"{headline(fig)}; {fig['incomplete']} with errors"
        unknown = [line.split()[0] for line in lines if line.endswith(": unknown, nothing foreign found)")]
        assert unknown == [obj["target"] for obj in RESULTS if status(obj, count_inferred=count_inferred) == "unknown"] == ["c.nl"]
    assert "b.nl  (2 dependencies, 0 foreign)" in render_table(results)  # Meet inferred from Google mail does not count
