"""FramePacer: when output that just arrived is painted (a fake clock; no Textual)."""

from __future__ import annotations

from vibebox_tui.terminal.frames import (
    ECHO_INTERVAL,
    ECHO_WINDOW,
    FRAME_INTERVAL,
    IDLE_GAP,
    LONG_FLOOD_INTERVAL,
    FramePacer,
)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def output(pacer: FramePacer) -> float:
    """Output just came: seconds until it may be painted (0: now)."""
    pacer.arrived()
    return pacer.wait()


def test_output_after_a_quiet_spell_paints_at_once() -> None:
    clock = Clock()
    pacer = FramePacer(interval=0.05, echo_window=0.2, clock=clock)
    assert output(pacer) == 0.0  # nothing painted yet
    pacer.painted()
    clock.now += 0.05
    assert output(pacer) == 0.0  # a frame's time has passed


def test_output_during_a_flood_waits_for_the_next_frame() -> None:
    clock = Clock()
    pacer = FramePacer(interval=0.05, echo_window=0.2, clock=clock)
    pacer.painted()
    clock.now += 0.01
    assert abs(output(pacer) - 0.04) < 1e-9  # the rest of the frame
    clock.now += 0.03
    assert abs(output(pacer) - 0.01) < 1e-9
    clock.now += 0.01
    assert output(pacer) == 0.0


def test_after_a_key_output_paints_at_once_for_the_echo_window() -> None:
    clock = Clock()
    pacer = FramePacer(interval=0.05, echo_window=0.2, clock=clock)
    pacer.painted()
    pacer.typed()
    clock.now += 0.001
    assert 0.0 < output(pacer) <= ECHO_INTERVAL  # a frame was just painted: not at every read
    clock.now += ECHO_INTERVAL
    assert output(pacer) == 0.0  # the echo: no waiting for the flood's next frame
    pacer.painted()
    clock.now += 0.1
    assert output(pacer) == 0.0  # still inside the window
    clock.now += 0.11
    pacer.painted()
    clock.now += 0.01
    assert output(pacer) > 0.0  # the window is over: paced again


def test_a_key_at_a_quiet_prompt_paints_its_echo_then_the_flood_it_starts_is_paced() -> None:
    clock = Clock()
    pacer = FramePacer(interval=0.05, echo_window=0.2, clock=clock)
    pacer.painted()
    clock.now += 1.0
    pacer.typed()  # Enter on `cat big.log`, nothing scrolling
    clock.now += 0.001
    pacer.scrolled(1, 24)  # the echo of Enter
    assert output(pacer) == 0.0
    pacer.painted()
    clock.now += ECHO_INTERVAL
    pacer.scrolled(30, 24)  # the first read of the flood
    assert output(pacer) == 0.0  # still the echo window: this frame is painted at once...
    pacer.painted()
    clock.now += 0.001
    pacer.scrolled(30, 24)
    assert output(pacer) > 0.0  # ...and the rest of the flood waits for its frames


def test_a_key_typed_while_output_scrolls_keeps_its_whole_echo_window() -> None:
    clock = Clock()
    pacer = FramePacer(interval=0.05, echo_window=0.2, clock=clock)
    pacer.scrolled(40, 24)
    pacer.painted()
    clock.now += 0.01
    pacer.typed()  # its echo may come behind output already on its way
    for _ in range(5):
        clock.now += 0.01
        pacer.scrolled(40, 24)
        assert output(pacer) == 0.0
        pacer.painted()
    clock.now += 0.16
    pacer.scrolled(40, 24)
    pacer.painted()
    clock.now += 0.01
    assert output(pacer) > 0.0  # the window is over


def test_in_an_echo_window_output_that_only_streams_by_keeps_the_floods_pace() -> None:
    clock = Clock()
    pacer = FramePacer(interval=0.05, echo_window=0.2, clock=clock)
    pacer.painted()
    pacer.typed()
    clock.now += 0.01
    pacer.arrived()
    assert abs(pacer.wait(in_place=False) - 0.04) < 1e-9  # a flood's rows: its next frame
    assert abs(pacer.look_again(in_place=False) - IDLE_GAP) < 1e-9
    assert pacer.wait(in_place=True) == 0.0  # the echo drawn in place: now
    assert pacer.look_again(in_place=True) == 0.0


def test_defaults_pace_below_the_display_rate_and_keep_the_echo_window() -> None:
    assert 1 / 60 <= FRAME_INTERVAL <= 1 / 10
    assert ECHO_WINDOW >= FRAME_INTERVAL


def test_slow_rendering_spaces_the_frames_of_a_flood() -> None:
    clock = Clock()
    pacer = FramePacer(interval=0.05, echo_window=0.2, clock=clock, render_share=0.1)
    for _ in range(30):
        pacer.rendered(0.001)  # a quick frame: the interval stands
    pacer.painted()
    clock.now += 0.01
    assert abs(output(pacer) - 0.04) < 1e-3
    for _ in range(30):
        pacer.rendered(0.02)  # a busy machine: 20 ms of rendering a frame
    pacer.painted()
    clock.now += 0.01
    assert abs(output(pacer) - 0.19) < 0.01  # 0.2 s apart keeps rendering at a tenth
    pacer.typed()
    assert output(pacer) == 0.0  # an echo still paints at once


def test_a_long_flood_gets_fewer_frames_until_it_pauses() -> None:
    clock = Clock()
    pacer = FramePacer(interval=1 / 30, echo_window=0.2, clock=clock)
    pacer.painted()
    for _ in range(13):  # 0.43 s of frames back to back
        clock.now += 1 / 30
        assert output(pacer) < 1e-9
        pacer.painted()
    clock.now += 0.04
    assert output(pacer) == 0.0  # still 30 a second
    pacer.painted()
    clock.now += 0.04
    assert abs(output(pacer) - (LONG_FLOOD_INTERVAL - 0.04)) < 1e-9  # past LONG_FLOOD: 15
    clock.now += 1.0  # a pause ends the flood
    pacer.painted()
    clock.now += 1 / 30
    assert output(pacer) < 1e-9  # 30 a second again


def test_output_that_stops_during_a_flood_is_painted_without_waiting_for_the_frame() -> None:
    clock = Clock()
    pacer = FramePacer(interval=0.1, echo_window=0.2, clock=clock)
    pacer.painted()
    for _ in range(5):  # reads a few milliseconds apart: each waits for the frame
        clock.now += IDLE_GAP / 3
        assert output(pacer) > 0.0
    assert pacer.look_again() == IDLE_GAP  # the widget looks again this soon...
    clock.now += IDLE_GAP / 2
    assert pacer.wait() > 0.0  # ...nothing came yet, but not for long enough
    clock.now += IDLE_GAP / 2 + 1e-6
    assert pacer.wait() == 0.0  # the output paused: what came is painted now
    pacer.painted()
    clock.now += IDLE_GAP / 3
    assert output(pacer) > 0.0  # more: paced again, as the flood goes on
    clock.now += 0.1
    assert pacer.look_again() == 0.0  # the frame is due
