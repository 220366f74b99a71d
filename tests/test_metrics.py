"""Metric semantics that dashboards and alerts rely on: the kind of a change, the histogram."""

from __future__ import annotations

import pytest

from dijkwacht.catalog import EU
from dijkwacht.daemon.metrics import DURATION_BUCKETS, Snapshot, StateCollector, change_kind
from dijkwacht.state import Change


def change(before: str, after: str, to_foreign: bool, reason: str = "dns") -> Change:
    return Change(0.0, "gemeente.nl", "email", reason, ("a",), ("b",), before, after, to_foreign, ())


@pytest.mark.parametrize(
    "before, after, to_foreign, kind",
    [
        ("BE", "US", True, "home_to_foreign"),  # TransIP -> Microsoft
        ("", "US", True, "home_to_foreign"),  # no mail (or unknown) -> Microsoft
        ("BE", "BE,US", True, "home_to_foreign"),  # a US gateway added in front of a home mailbox
        ("BE,US", "US", True, "home_to_foreign"),  # TransIP + Proofpoint -> Microsoft + Proofpoint
        ("US", "US", True, "foreign_to_foreign"),  # Google -> Microsoft
        ("BE,US", "BE,US", True, "foreign_to_foreign"),  # a second US provider next to one already there
        ("US", "BE", False, "foreign_to_home"),  # Microsoft -> TransIP
        ("US", "", False, "foreign_to_home"),  # Microsoft gone, nothing known left
        ("BE", "NL", False, "other"),  # TransIP -> Leaseweb
        ("BE,US", "US", False, "other"),  # the home provider dropped, the foreign one stays
    ],
)
def test_change_kind(before, after, to_foreign, kind):
    assert change_kind(change(before, after, to_foreign), EU) == kind


def test_ownership_change_out_of_home_is_home_to_foreign():
    assert change_kind(change("NL", "US", True, reason="ownership"), EU) == "home_to_foreign"


def test_duration_histogram_is_cumulative_with_no_created_series():
    snapshot = Snapshot()
    for seconds in (0.005, 0.3, 0.3, 100.0):
        snapshot.observe_duration(seconds)
    [family] = [f for f in StateCollector(snapshot).collect() if f.name == "dijkwacht_scan_duration_seconds"]
    samples = {(s.name, s.labels.get("le")): s.value for s in family.samples}
    assert samples[("dijkwacht_scan_duration_seconds_bucket", "0.01")] == 1
    assert samples[("dijkwacht_scan_duration_seconds_bucket", "0.25")] == 1
    assert samples[("dijkwacht_scan_duration_seconds_bucket", "0.5")] == 3
    assert samples[("dijkwacht_scan_duration_seconds_bucket", str(float(DURATION_BUCKETS[-1])))] == 3
    assert samples[("dijkwacht_scan_duration_seconds_bucket", "+Inf")] == 4
    assert samples[("dijkwacht_scan_duration_seconds_count", None)] == 4
    assert samples[("dijkwacht_scan_duration_seconds_sum", None)] == pytest.approx(100.605)
    assert not any(s.name.endswith("_created") for s in family.samples)
