"""Rate-limited recording: repeats and floods become honest summaries, never silent losses."""

from __future__ import annotations

from pathlib import Path

from vibebox_core.network import log, ratelimit
from vibebox_core.network.log import NetEvent, VerdictName
from vibebox_core.network.ratelimit import Recorder


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _dns(host: str, second: int, verdict: VerdictName = "blocked") -> NetEvent:
    return NetEvent(
        "dns",
        host,
        53,
        verdict,
        "not in the allowlist (A)",
        time=f"2026-11-27T10:15:{second:02d}.000Z",
    )


def test_repeats_are_written_then_counted_into_one_summary(tmp_path: Path) -> None:
    path, clock = tmp_path / "network.log", Clock()
    recorder = Recorder(path, window=10, per_key=3, per_window=100, clock=clock)
    for second in range(20):
        recorder.record(_dns("x.example", second))
    recorder.record(_dns("other.example", 30, "allowed"))
    assert [e.count for e in log.tail(path, 100)] == [1, 1, 1, 1]
    clock.now = 11
    recorder.flush()
    events = log.tail(path, 100)
    summary = events[-1]
    assert (summary.host, summary.verdict, summary.count) == ("x.example", "blocked", 17)
    assert summary.reason == (
        "17 more blocked DNS queries for x.example between "
        "2026-11-27T10:15:03.000Z and 2026-11-27T10:15:19.000Z: not in the allowlist (A)"
    )
    assert sum(e.count for e in events) == 21  # every decision counted once
    # A new window writes the first ones as they are again.
    recorder.record(_dns("x.example", 40))
    assert log.tail(path, 1)[0].count == 1


def test_a_new_reason_is_written_at_once(tmp_path: Path) -> None:
    path, clock = tmp_path / "network.log", Clock()
    recorder = Recorder(path, window=10, per_key=2, per_window=100, clock=clock)
    for second in range(5):
        recorder.record(_dns("x.example", second))
    changed = NetEvent("dns", "x.example", 53, "blocked", "blocklist entry x.example (A)")
    recorder.record(changed)  # e.g. an approved policy change: not held back
    assert log.tail(path, 1)[0].reason == "blocklist entry x.example (A)"
    recorder.close()
    assert sum(e.count for e in log.tail(path, 100)) == 6


def test_a_flood_of_names_is_counted_under_its_domain(tmp_path: Path) -> None:
    path, clock = tmp_path / "network.log", Clock()
    recorder = Recorder(path, window=10, per_key=5, per_window=10, clock=clock)
    recorder.record(_dns("allowed.vbx.test", 0, "allowed"))
    for i in range(500):
        recorder.record(_dns(f"q{i}.flood.example", 1 + i % 50))
    recorder.close()
    events = log.tail(path, 1000)
    assert len(events) <= 12
    assert events[0].host == "allowed.vbx.test"  # the earlier decision is still there
    flood = [e for e in events if e.host == "*.flood.example"]
    assert len(flood) == 1 and flood[0].count == 491
    assert "(491 names)" in flood[0].reason
    assert sum(e.count for e in events) == 501


def test_module_recorder_is_shared_and_flushed(tmp_path: Path) -> None:
    path = tmp_path / "network.log"
    assert ratelimit.recorder_for(path) is ratelimit.recorder_for(path)
    for second in range(8):
        ratelimit.record(path, _dns("same.example", second))
    ratelimit.flush_all()  # the window is not over: nothing summarised yet
    assert len(log.tail(path, 100)) == ratelimit.PER_KEY
    ratelimit.close(path)
    events = log.tail(path, 100)
    assert events[-1].count == 8 - ratelimit.PER_KEY
    assert sum(e.count for e in events) == 8


def test_a_full_disk_does_not_raise(tmp_path: Path) -> None:
    def full(path: Path, event: NetEvent) -> None:
        raise OSError(28, "No space left on device")

    recorder = Recorder(tmp_path / "network.log", write=full)
    recorder.record(_dns("a.example", 1))
    recorder.close()
