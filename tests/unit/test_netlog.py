"""The network log: append, tail (torn lines), summary, rotation."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from vibebox_core import netlog
from vibebox_core.netlog import NetEvent


def _event(host: str, verdict: str = "allowed", source: str = "proxy") -> NetEvent:
    return NetEvent(source, host, 443, verdict, "why", time="2026-11-27T10:15:00.000Z")  # type: ignore[arg-type]


def test_append_writes_one_json_object_per_line(tmp_path: Path) -> None:
    log = tmp_path / "network.log"
    netlog.append(log, NetEvent("dns", "a.test", 53, "blocked", "not in the allowlist"))
    netlog.append(log, _event("b.test"))
    lines = log.read_text().splitlines()
    assert len(lines) == 2
    first = json.loads(lines[0])
    assert list(first) == ["time", "source", "host", "port", "verdict", "reason"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", first["time"])
    assert first["source"] == "dns" and first["verdict"] == "blocked"


def test_tail_skips_torn_last_line_and_garbage(tmp_path: Path) -> None:
    log = tmp_path / "network.log"
    for i in range(5):
        netlog.append(log, _event(f"h{i}.test"))
    with log.open("ab") as f:
        f.write(b"not json\n")
        f.write(b'{"source": "proxy", "host": 1}\n')  # wrong types
        f.write(b'{"time": "2026-11-27T10:15:00Z", "source": "proxy", "host": "torn')
    events = netlog.tail(log, 3)
    assert [e.host for e in events] == ["h2.test", "h3.test", "h4.test"]
    assert [e.host for e in netlog.tail(log, 100)] == [f"h{i}.test" for i in range(5)]
    assert netlog.tail(log, 0) == []


def test_tail_of_missing_or_empty_log(tmp_path: Path) -> None:
    assert netlog.tail(tmp_path / "missing.log", 5) == []
    (tmp_path / "empty.log").write_bytes(b"")
    assert netlog.tail(tmp_path / "empty.log", 5) == []


def test_tail_reads_from_the_end_of_a_big_log(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(netlog, "_TAIL_CHUNK", 64)  # force several backwards reads
    log = tmp_path / "network.log"
    for i in range(200):
        netlog.append(log, _event(f"h{i}.test"))
    assert [e.host for e in netlog.tail(log, 4)] == [f"h{i}.test" for i in range(196, 200)]


def test_summary_counts(tmp_path: Path) -> None:
    log = tmp_path / "network.log"
    assert netlog.summary(log).lines() == ["no network decisions logged yet"]
    for host, verdict in [("a", "allowed"), ("b", "blocked"), ("b", "blocked"), ("c", "blocked")]:
        netlog.append(log, _event(host, verdict))
    summary = netlog.summary(log)
    assert (summary.total, summary.allowed, summary.blocked) == (4, 1, 3)
    assert summary.top_blocked == (("b", 2), ("c", 1))
    assert summary.top_allowed == (("a", 1),)
    assert summary.lines()[0].endswith("1 allowed, 3 blocked")
    assert json.loads(json.dumps(summary.to_dict()))["top_blocked"] == [["b", 2], ["c", 1]]


def test_rotation_keeps_the_log_bounded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(netlog, "MAX_LOG_BYTES", 1000)
    log = tmp_path / "network.log"
    for i in range(30):
        netlog.append(log, _event(f"h{i}.test"))
    assert log.stat().st_size <= 1000
    assert (tmp_path / "network.log.1").exists()
    assert netlog.tail(log, 1)[0].host == "h29.test"


def test_describe() -> None:
    assert _event("x.test", "blocked").describe() == "10:15:00 blocked proxy x.test:443 (why)"
