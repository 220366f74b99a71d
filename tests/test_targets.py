"""Target names: normalised (case, trailing dot, IDN) or rejected with a reason."""

from __future__ import annotations

import pytest

from dijkwacht.targets import InvalidTarget, normalise_domain, read_targets_file


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Example.NL", "example.nl"),
        ("example.nl.", "example.nl"),
        ("  gemeente.nl ", "gemeente.nl"),
        ("zürich.ch", "xn--zrich-kva.ch"),
        ("MÜNCHEN.de", "xn--mnchen-3ya.de"),
        ("xn--zrich-kva.ch", "xn--zrich-kva.ch"),
        ("_dmarc.example.nl", "_dmarc.example.nl"),
    ],
)
def test_normalise(raw, expected):
    assert normalise_domain(raw) == expected


@pytest.mark.parametrize(
    ("raw", "why"),
    [
        ("", "empty"),
        ("localhost", "no dot"),
        ("http://example.nl", "not a domain name"),
        ("a b.nl", "not a domain name"),
        ("bad..nl", "invalid label"),
        ("-bad.nl", "invalid label"),
        ("192.0.2.1", "IP address"),
        ("x" * 64 + ".nl", "invalid label"),
        ("a.b" * 100 + ".nl", "longer than 253"),
    ],
)
def test_invalid_names_say_why(raw, why):
    with pytest.raises(InvalidTarget, match=why):
        normalise_domain(raw)


def test_targets_file_keeps_good_lines_and_reports_bad_ones(tmp_path):
    path = tmp_path / "targets.txt"
    path.write_text("# header\n\nExample.nl sector=hospital\nnot a domain\nzürich.ch # comment\nx.nl novalue\n")
    targets, problems = read_targets_file(path)
    assert [(t.domain, dict(t.labels)) for t in targets] == [("example.nl", {"sector": "hospital"}), ("xn--zrich-kva.ch", {})]
    assert [(p.line, p.path) for p in problems] == [(4, str(path)), (6, str(path))]
    assert "novalue" in problems[1].message
