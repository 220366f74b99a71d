"""Campaign parts in process: output writers, reading a file back for --resume, the retry pass."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
import structlog

from dijkwacht.campaign import Campaign, LocalSource
from dijkwacht.config import AgentSettings
from dijkwacht.output import JsonLinesWriter, JsonWriter, ResumeError, read_for_resume
from dijkwacht.progress import Progress
from dijkwacht.runtime import build_runtime, load_data
from dijkwacht.scanner import TargetResult
from dijkwacht.targets import Target
from dijkwacht.testing import FakeDNSServer


def result(domain: str) -> TargetResult:
    return TargetResult(Target(domain))


def test_json_array_is_in_input_order_and_renamed_into_place(tmp_path):
    out = tmp_path / "out.json"
    writer = JsonWriter(str(out))
    for index in (1, 0, 3):  # 2 never comes (an interrupted scan)
        r = result(f"t{index}.nl")
        writer.write(index, r.to_json(), r)
        assert not out.exists()
    writer.close()
    assert [o["target"] for o in json.loads(out.read_text())] == ["t0.nl", "t1.nl", "t3.nl"]
    assert not (tmp_path / "out.json.partial").exists()


def test_json_lines_are_appended_whole_and_read_back_for_resume(tmp_path):
    out = tmp_path / "out.jsonl"
    writer = JsonLinesWriter(str(out))
    for i in range(3):
        r = result(f"t{i}.nl")
        writer.write(i, r.to_json(), r)
    writer.close()
    with out.open("a") as f:
        f.write('{"target": "t3.nl", "depe')  # a crash in the middle of a write
    seen = []
    assert read_for_resume(str(out), seen.append) == {"t0.nl", "t1.nl", "t2.nl"}
    assert [o["target"] for o in seen] == ["t0.nl", "t1.nl", "t2.nl"]
    assert out.read_text().endswith("}\n")  # the cut line is gone
    writer = JsonLinesWriter(str(out), append=True)
    r = result("t3.nl")
    writer.write(0, r.to_json(), r)
    writer.close()
    assert [json.loads(line)["target"] for line in out.read_text().splitlines()] == ["t0.nl", "t1.nl", "t2.nl", "t3.nl"]


def test_json_lines_keep_input_order_behind_a_retried_target_and_flush_at_an_interrupt(tmp_path):
    out = tmp_path / "out.jsonl"

    def written() -> list[str]:
        return [json.loads(line)["target"] for line in out.read_text().splitlines()]

    writer = JsonLinesWriter(str(out))
    for i in (0, 2, 3):  # target 1 waits for the retry pass
        r = result(f"t{i}.nl")
        writer.write(i, r.to_json(), r)
    assert written() == ["t0.nl"]  # streamed: what is final and in order is out at once
    r = result("t1.nl")
    writer.write(1, r.to_json(), r)
    assert written() == ["t0.nl", "t1.nl", "t2.nl", "t3.nl"] and writer.count == 4
    for i in (5, 6):  # target 4 waits, and the scan is interrupted
        r = result(f"t{i}.nl")
        writer.write(i, r.to_json(), r)
    writer.close()
    assert written() == ["t0.nl", "t1.nl", "t2.nl", "t3.nl", "t5.nl", "t6.nl"]  # t4 is left to --resume
    assert read_for_resume(str(out), lambda _: None) == {f"t{i}.nl" for i in (0, 1, 2, 3, 5, 6)}


def test_resume_skips_invalid_names_too_however_long(tmp_path):
    """A name over 253 characters is written cut short; --resume once wrote it again every time."""
    from dijkwacht.cli import main

    out = tmp_path / "out.jsonl"
    args = ["scan", "--demo", "--quiet", "--format", "jsonl", "--output", str(out), "--resume", "bad name.nl", "a" * 300 + ".nl", "münchen.example"]
    out.touch()
    assert main(args) == 0
    first = [json.loads(line)["target"] for line in out.read_text().splitlines()]
    assert len(first) == len(set(first)) and any(t.startswith("aaa") and "(303 characters)" in t for t in first)
    assert main(args) == 0
    assert [json.loads(line)["target"] for line in out.read_text().splitlines()] == first


def test_resume_refuses_a_file_that_is_not_scan_results(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"target": "a.nl"}\nnot json\n{"target": "b.nl"}\n')
    with pytest.raises(ResumeError, match=r"bad.jsonl:2: not a scan result"):
        read_for_resume(str(bad), lambda obj: None)
    assert read_for_resume(str(tmp_path / "none.jsonl"), lambda obj: None) == set()


class FlakyServer(FakeDNSServer):
    """SERVFAIL for the first question about `flaky`, answers afterwards."""

    def __init__(self, *args, flaky: str, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.flaky = flaky
        self.failed_once = False

    def answer(self, qname, qtype):
        if qname == self.flaky and not self.failed_once:
            self.failed_once = True
            return 2, [], []
        return super().answer(qname, qtype)


async def test_transient_failures_are_retried_once_at_the_end_with_a_fresh_engine():
    zone = "".join(f"t{i}.nl MX 10 t{i}-nl.mail.protection.outlook.com\n" for i in range(6))
    server = await FlakyServer(zone, flaky="t1.nl").start()
    settings = AgentSettings(nameservers=(server.address,), dns_timeout=0.5, dns_tries=1)
    data = load_data(settings)
    items = [Target(f"t{i}.nl") for i in range(3)] + ["bad..name"] + [Target(f"t{i}.nl") for i in range(3, 6)]
    runtime = build_runtime(settings, data, only=["email"])
    rates = []

    def retry_runtime(rate):
        rates.append(rate)
        return build_runtime(replace(settings, max_qps=rate), data, only=["email"])

    campaign = Campaign(items, Progress("off"), workers=1, limit=None, concurrency=4)
    emitted = []
    try:
        stats = await campaign.run(LocalSource(runtime, [t for t in items if isinstance(t, Target)], 4), lambda i, r: emitted.append((i, r)), retry_runtime)
    finally:
        await runtime.close()
        await server.stop()
    assert [i for i, _ in emitted] == [0, 2, 3, 4, 5, 6, 1]  # the retried target comes last
    retried = emitted[-1][1]
    assert retried.target.domain == "t1.nl" and retried.retried and not retried.errors
    assert retried.to_json()["retried"] is True and "retried" not in emitted[0][1].to_json()
    assert emitted[2][1].errors[0].message == "invalid domain name 'bad..name'" and not emitted[2][1].transient
    assert stats.retried == 1 and len(rates) == 1 and stats.retry_rate == rates[0] >= 20


@pytest.fixture
def logging_restored():
    """main() points the logger at this test's captured stderr; later tests must not write there."""
    saved = structlog.get_config()
    yield
    structlog.configure(**saved)


def test_campaign_options_are_checked_with_one_line_errors(capsys, tmp_path, logging_restored):
    from dijkwacht.cli import main

    assert main(["scan", "--resume", "--format", "jsonl", "x.nl"]) == 2
    assert capsys.readouterr().err.strip() == "dijkwacht: --resume needs --format jsonl and --output FILE (the file the interrupted scan wrote)"
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"target": "a.nl"}\n[1, 2]\n{"target": "b.nl"}\n')
    assert main(["scan", "--resume", "--format", "jsonl", "--output", str(bad), "x.nl"]) == 2
    assert f"{bad}:2: not a scan result" in capsys.readouterr().err
    for value in ("-1", "fast", "inf"):
        with pytest.raises(SystemExit) as exit_info:
            main(["scan", "--max-qps", value, "x.nl"])
        assert exit_info.value.code == 2
        # (checked like the file's max_qps, in the same words)
        assert f"argument --max-qps: '{value}': " in capsys.readouterr().err
