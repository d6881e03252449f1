"""The network log: append, tail (torn lines), summary, rotation."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from vibebox_core.network import log, logsummary
from vibebox_core.network.log import NetEvent, Source, VerdictName


def _event(host: str, verdict: VerdictName = "allowed", source: Source = "proxy") -> NetEvent:
    return NetEvent(source, host, 443, verdict, "why", time="2026-11-27T10:15:00.000Z")


def test_append_writes_one_json_object_per_line(tmp_path: Path) -> None:
    path = tmp_path / "network.log"
    log.append(path, NetEvent("dns", "a.test", 53, "blocked", "not in the allowlist"))
    log.append(path, _event("b.test"))
    lines = path.read_text().splitlines()
    assert len(lines) == 2
    first = json.loads(lines[0])
    assert list(first) == ["time", "source", "host", "port", "verdict", "reason"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", first["time"])
    assert first["source"] == "dns" and first["verdict"] == "blocked"


def test_tail_skips_torn_last_line_and_garbage(tmp_path: Path) -> None:
    path = tmp_path / "network.log"
    for i in range(5):
        log.append(path, _event(f"h{i}.test"))
    with path.open("ab") as f:
        f.write(b"not json\n")
        f.write(b'{"source": "proxy", "host": 1}\n')  # wrong types
        f.write(b'{"time": "2026-11-27T10:15:00Z", "source": "proxy", "host": "torn')
    events = log.tail(path, 3)
    assert [e.host for e in events] == ["h2.test", "h3.test", "h4.test"]
    assert [e.host for e in log.tail(path, 100)] == [f"h{i}.test" for i in range(5)]
    assert log.tail(path, 0) == []


def test_tail_of_missing_or_empty_log(tmp_path: Path) -> None:
    assert log.tail(tmp_path / "missing.log", 5) == []
    (tmp_path / "empty.log").write_bytes(b"")
    assert log.tail(tmp_path / "empty.log", 5) == []


def test_tail_reads_from_the_end_of_a_big_log(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(log, "_TAIL_CHUNK", 64)  # force several backwards reads
    path = tmp_path / "network.log"
    for i in range(200):
        log.append(path, _event(f"h{i}.test"))
    assert [e.host for e in log.tail(path, 4)] == [f"h{i}.test" for i in range(196, 200)]


def test_summary_counts(tmp_path: Path) -> None:
    path = tmp_path / "network.log"
    assert logsummary.summary(path).lines() == ["no network decisions logged yet"]
    decisions: list[tuple[str, VerdictName]] = [
        ("a", "allowed"),
        ("b", "blocked"),
        ("b", "blocked"),
        ("c", "blocked"),
    ]
    for host, verdict in decisions:
        log.append(path, _event(host, verdict))
    summary = logsummary.summary(path)
    assert (summary.total, summary.allowed, summary.blocked) == (4, 1, 3)
    assert summary.top_blocked == (("b", 2), ("c", 1))
    assert summary.top_allowed == (("a", 1),)
    assert summary.lines()[0].endswith("1 allowed, 3 blocked")
    assert json.loads(json.dumps(summary.to_dict()))["top_blocked"] == [["b", 2], ["c", 1]]


def test_rotation_keeps_the_log_bounded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(log, "MAX_LOG_BYTES", 1000)
    path = tmp_path / "network.log"
    for i in range(30):
        log.append(path, _event(f"h{i}.test"))
    assert path.stat().st_size <= 1000
    assert (tmp_path / "network.log.1").exists()
    assert log.tail(path, 1)[0].host == "h29.test"


def test_describe() -> None:
    assert _event("x.test", "blocked").describe() == "10:15:00 blocked proxy x.test:443 (why)"


# --- a flood cannot erase the audit trail ------------------------------------------------------


def _at(
    host: str, second: int, verdict: VerdictName = "blocked", source: Source = "dns"
) -> NetEvent:
    return NetEvent(
        source,
        host,
        53,
        verdict,
        "why",
        time=f"2026-11-27T10:{second // 60:02d}:{second % 60:02d}.000Z",
    )


def test_count_field_only_when_a_line_stands_for_several(tmp_path: Path) -> None:
    path = tmp_path / "network.log"
    log.append(path, _at("a.test", 1))
    log.append(path, NetEvent("dns", "b.test", 53, "blocked", "41 more", count=41))
    first, second = (json.loads(line) for line in path.read_text().splitlines())
    assert "count" not in first and second["count"] == 41
    assert log.tail(path, 1)[0].count == 41
    with path.open("a") as f:
        f.write(json.dumps(first | {"count": 0}) + "\n")
        f.write(json.dumps(first | {"count": True}) + "\n")
    assert len(log.tail(path, 10)) == 2  # malformed counts are not events


def test_rotation_by_line_count(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(log, "MAX_LOG_LINES", 10)
    path = tmp_path / "network.log"
    for i in range(25):
        log.append(path, _at(f"h{i}.test", i))
    assert len(path.read_text().splitlines()) <= 10
    assert len(log.rotated(path).read_text().splitlines()) == 10


def test_oldest_decisions_are_summarised_not_lost(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(log, "MAX_LOG_LINES", 50)
    monkeypatch.setattr(log, "MAX_SUMMARY_RECORDS", 20)
    path = tmp_path / "network.log"
    log.append(path, _at("allowed.vbx.test", 0, "allowed", "proxy"))
    log.append(path, _at("secret.unlisted.example", 1))
    log.append(path, _at("secret.unlisted.example", 2))
    for i in range(1000):  # a flood of unique names, far more than the log keeps
        log.append(path, _at(f"x{i}.flood.example", 3 + i % 50))
    earlier = {(r.source, r.host, r.verdict): r for r in log.earlier(path)}
    assert len(earlier) <= 20
    first = earlier[("proxy", "allowed.vbx.test", "allowed")]
    assert (first.count, first.first) == (1, "2026-11-27T10:00:00.000Z")
    secret = earlier[("dns", "secret.unlisted.example", "blocked")]
    assert (secret.count, secret.first, secret.last) == (
        2,
        "2026-11-27T10:00:01.000Z",
        "2026-11-27T10:00:02.000Z",
    )
    flood = earlier[("dns", "*.flood.example", "blocked")]
    assert flood.hosts > 1 and flood.describe().startswith(
        f"{flood.count} blocked dns decisions for *.flood.example ("
    )
    # Honest: every decision is counted exactly once, summarised or still in the log.
    summary = logsummary.summary(path)
    assert summary.total == 1003
    assert summary.allowed == 1 and summary.blocked == 1002


def test_summary_bound_keeps_counts_exact(tmp_path: Path) -> None:
    records = [
        log.EarlierRecord(
            "dns", f"n{i}.d{i}.example", "blocked", i + 1, 1, f"T{i:03d}", f"T{i:03d}"
        )
        for i in range(30)
    ]
    bounded = log._bounded(records, limit=10)
    assert len(bounded) <= 10
    assert sum(r.count for r in bounded) == sum(r.count for r in records)
    assert sum(r.hosts for r in bounded) == 30
    assert any(r.host == "(other hosts)" for r in bounded)
    assert min(r.first for r in bounded) == "T000"
