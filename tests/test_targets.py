"""Target names: normalised (case, trailing dot, IDN) or rejected with a reason."""

from __future__ import annotations

import pytest

from dijkwacht.targets import InvalidTarget, check_labels, normalise_domain, read_targets_file


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


@pytest.mark.parametrize("raw", ["xn--zz.de", "xn--a.nl", "xn--zrich-kva.xn--zz"])
def test_a_labels_follow_the_idna_rules_of_u_labels(raw):
    with pytest.raises(InvalidTarget, match="invalid IDN label"):
        normalise_domain(raw)


@pytest.mark.parametrize("name", ["__name__", "__meta_x", "target", "job", "instance", "category", "provider", "bad-name", "1x"])
def test_reserved_or_invalid_label_names_are_rejected(name):
    with pytest.raises(InvalidTarget, match="label name"):
        check_labels({name: "x"})


def test_valid_label_names_pass():
    assert check_labels({"sector": "a", "_private": "b", "Owner2": "c"}) == {"sector": "a", "_private": "b", "Owner2": "c"}


def test_targets_file_with_invalid_utf8_long_lines_and_control_characters(tmp_path):
    path = tmp_path / "targets.txt"
    path.write_bytes(
        b"good.nl\n"
        b"caf\xe9.nl\n"  # Latin-1, not UTF-8
        + b"x" * 50_000 + b".nl\n"
        b"evil\x1b[31m.nl\x00 __name__=x\n"
        b"labels.nl __name__=x\n"
        b"last.nl\n"
    )
    targets, problems = read_targets_file(path)
    assert [t.domain for t in targets] == ["good.nl", "last.nl"]
    messages = {p.line: p.message for p in problems}
    assert messages[2].startswith("not valid UTF-8")
    assert messages[3] == "line longer than 4096 bytes"
    assert "\x1b" not in messages[4] and "\\x1b" in messages[4] and len(messages[4]) < 200
    assert "reserved" in messages[5]


def test_an_invalid_name_is_quoted_short_and_escaped():
    with pytest.raises(InvalidTarget) as info:
        normalise_domain("a\x00" + "b" * 10_000)
    message = str(info.value)
    assert len(message) < 300 and "\x00" not in message and "\\x00" in message
