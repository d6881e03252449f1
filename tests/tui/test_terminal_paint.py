"""Painting: a flood is parsed for its frame and painted in paced frames, never lossy.

The widget's pacer runs on a frozen fake clock here, so "the next frame" only comes when the
test moves the clock: what is painted before that can only come from the rules being tested
(a quiet spell, a key's echo), never from a machine that happened to be fast or slow.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from textual.app import App, ComposeResult
from textual.geometry import Region
from textual.pilot import Pilot
from textual.strip import Strip
from tui.pilot_wait import wait_for

from vibebox_core.streams import MemoryStream
from vibebox_tui.terminal import TerminalView
from vibebox_tui.terminal.frames import ECHO_INTERVAL, IDLE_GAP, FramePacer
from vibebox_tui.terminal.vt.emulator import Emulator
from vibebox_tui.terminal.widget import ECHO_HOLD, FEED_SLICE, FLOOD_SLICE

COLUMNS, LINES = 60, 12


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class PaintProbe(TerminalView):
    """Keeps the text of every row as the compositor last asked for it (what was painted)."""

    def __init__(self, stream: MemoryStream) -> None:
        super().__init__(stream)
        self.painted: dict[int, str] = {}

    def render_lines(self, crop: Region) -> list[Strip]:
        strips = super().render_lines(crop)
        for y, strip in zip(crop.line_range, strips, strict=True):
            self.painted[y] = strip.text
        return strips


class PaintApp(App[None]):
    def __init__(self, stream: MemoryStream) -> None:
        super().__init__()
        self.stream = stream

    def compose(self) -> ComposeResult:
        yield PaintProbe(self.stream)

    def on_mount(self) -> None:
        self.query_one(PaintProbe).focus()


def paced(clock: Clock) -> FramePacer:
    """A pacer on the fake clock; how long this machine takes to render does not count."""
    return FramePacer(interval=0.05, echo_window=0.2, clock=clock, render_share=float("inf"))


def painted(view: PaintProbe) -> list[str]:
    return [view.painted.get(y, "") for y in range(LINES)]


def reference(data: bytes) -> list[str]:
    """The screen a fresh emulator shows for ``data`` (fed whole)."""
    emulator = Emulator(COLUMNS, LINES)
    emulator.feed(data)
    return emulator.screen.display


def flood(count: int) -> list[bytes]:
    """``count`` coloured log lines, one chunk each (so they arrive as separate reads)."""
    return [
        b"\x1b[32mINFO\x1b[0m line %05d \x1b[38;5;%dmcolour\x1b[m\r\n" % (n, n % 256)
        for n in range(count)
    ]


class ReadAheadStream(MemoryStream):
    """A stream that reads ahead on its own, as the dashboard's IO thread does
    (:class:`~vibebox_core.streams.ReadsAhead`): output fed meanwhile waits here until it is
    read or taken."""

    def __init__(self) -> None:
        super().__init__()
        self.reads = 0
        self.takes = 0
        self._ended = False

    async def read(self) -> bytes:
        self.reads += 1
        if self._ended:
            return b""
        return await super().read()

    def take_ready(self) -> bytes:
        self.takes += 1
        data = bytearray()
        while not self._queue.empty():
            chunk = self._queue.get_nowait()
            if not chunk:
                self._ended = True  # the end: the next read says so
                break
            data += chunk
        return bytes(data)


async def feed_apart(stream: MemoryStream, chunks: list[bytes]) -> None:
    for chunk in chunks:
        stream.feed(chunk)
        await asyncio.sleep(0)  # one read each, as a busy PTY delivers them


async def parsed(pilot: Pilot[Any], view: PaintProbe, text: str) -> None:
    """Wait until ``text`` is on the emulator's screen (parsed, painted or not)."""
    await wait_for(pilot, lambda: any(text in row for row in view.emulator.screen.display))


async def first_line_with_frames_apart(
    pilot: Pilot[Any], app: PaintApp, stream: MemoryStream, clock: Clock
) -> tuple[PaintProbe, list[str]]:
    """The app's view with frames 30 s apart on ``clock``, once a first line (output after a
    quiet spell) was painted at once; and what was painted then."""
    view = app.query_one(PaintProbe)
    view._pacer = FramePacer(interval=30, echo_window=0.2, clock=clock, render_share=1e9)
    stream.feed(b"first\r\n")
    await wait_for(pilot, lambda: painted(view)[0] == "first".ljust(COLUMNS))
    return view, painted(view)


async def test_a_burst_then_idle_paints_the_exact_final_screen() -> None:
    stream = MemoryStream()
    app = PaintApp(stream)
    async with app.run_test(size=(COLUMNS, LINES)) as pilot:
        view = app.query_one(PaintProbe)
        chunks = [*flood(400), b"$ done"]
        await feed_apart(stream, chunks)
        final = reference(b"".join(chunks))
        await wait_for(pilot, lambda: painted(view) == final)
        assert view.emulator.screen.display == final
        # Nothing was dropped on the way: every line scrolled through is in the scrollback.
        history = [line.text.rstrip() for line in view.emulator.screen.scrollback]
        assert [row for row in history if row.startswith("INFO")] == [
            f"INFO line {n:05d} colour" for n in range(400 - (LINES - 1))
        ]
        # ...and what scrolled away holds no rendered strip (memory after a long flood).
        assert all(line.cache is None for line in view.emulator.screen.scrollback)


@pytest.mark.parametrize("reads_ahead", [False, True])
async def test_a_flood_is_painted_at_the_next_frame_not_per_read(reads_ahead: bool) -> None:
    """Parsed for its frame, painted when the frame is due; from a stream that reads ahead
    on its own (as the dashboard's IO thread does) the flood is taken in one go, not read by
    read."""
    stream = ReadAheadStream() if reads_ahead else MemoryStream()
    app = PaintApp(stream)
    clock = Clock()
    async with app.run_test(size=(COLUMNS, LINES)) as pilot:
        view = app.query_one(PaintProbe)
        view._pacer = paced(clock)
        stream.feed(b"first\r\n")
        await wait_for(pilot, lambda: painted(view)[0] == "first".ljust(COLUMNS))  # at once
        first = painted(view)
        reads = stream.reads if isinstance(stream, ReadAheadStream) else 0
        chunks = flood(100)
        await feed_apart(stream, chunks)
        await parsed(pilot, view, "line 00099")  # every read parsed...
        if isinstance(stream, ReadAheadStream):  # ...taken in one go, not read 100 times
            assert stream.takes and stream.reads - reads <= 2
        for _ in range(5):
            await pilot.pause(0.02)
        assert painted(view) == first  # ...but the clock stood still: no frame yet
        clock.now += 0.05  # the next frame is due
        final = reference(b"first\r\n" + b"".join(chunks))
        await wait_for(pilot, lambda: painted(view) == final)
        stream.feed_eof("gone")
        await wait_for(pilot, lambda: view.disconnect_reason == "gone")


@pytest.mark.parametrize("reads_ahead", [False, True])
async def test_output_that_stops_is_painted_without_waiting_for_the_next_frame(
    reads_ahead: bool,
) -> None:
    """The end of a flood (the prompt after a ``cat``) shows once no more output came for
    IDLE_GAP, though the next frame is half a minute away."""
    stream = ReadAheadStream() if reads_ahead else MemoryStream()
    app = PaintApp(stream)
    clock = Clock()
    async with app.run_test(size=(COLUMNS, LINES)) as pilot:
        view, first = await first_line_with_frames_apart(pilot, app, stream, clock)
        chunks = [*flood(100), b"$ "]
        await feed_apart(stream, chunks)
        for _ in range(5):
            await pilot.pause(0.02)
        assert painted(view) == first  # the clock stood still: held for the frame
        clock.now += 1.5 * IDLE_GAP  # no more output for that long
        final = reference(b"first\r\n" + b"".join(chunks))
        await wait_for(pilot, lambda: painted(view) == final)


async def test_a_flood_is_parsed_in_longer_slices_once_the_flood_path_takes_them() -> None:
    """A slice the flood path took whole (plain.py) is followed by longer ones: each slice
    builds the rows it leaves on the screen, so fewer slices build fewer rows that scroll
    off unseen; anything else goes back to short slices (keys wait at most one)."""
    stream = MemoryStream()
    app = PaintApp(stream)
    async with app.run_test(size=(COLUMNS, LINES)) as pilot:
        view = app.query_one(PaintProbe)
        sizes: list[int] = []
        feed = view.emulator.feed

        def counted(data: bytes) -> None:
            sizes.append(len(data))
            feed(data)

        view.emulator.feed = counted  # type: ignore[method-assign]
        lines = b"".join(flood(12000))  # about 700 KB of coloured lines in one read
        tail = b"\x1b[H\x1b[2Jcleared\r\n" * 20000  # then output the flood path leaves
        stream.feed(lines + tail)
        await parsed(pilot, view, "cleared")
        await wait_for(pilot, lambda: sum(sizes) == len(lines + tail))
        assert sizes[0] == FEED_SLICE and FLOOD_SLICE in sizes  # longer once a flood's
        assert sizes.index(FLOOD_SLICE) == 1
        last = max(at for at, size in enumerate(sizes) if size == FLOOD_SLICE)
        assert sizes[last + 1 :] and set(sizes[last + 1 : -1]) == {FEED_SLICE}  # short again
        assert view.emulator.screen.display == reference(lines + tail)


async def test_after_a_key_output_is_parsed_as_it_comes_even_right_after_a_frame() -> None:
    stream = ReadAheadStream()
    app = PaintApp(stream)
    clock = Clock()
    async with app.run_test(size=(COLUMNS, LINES)) as pilot:
        view, _ = await first_line_with_frames_apart(pilot, app, stream, clock)
        await pilot.press("x")
        await stream.wait_for(lambda: stream.written.endswith(b"x"))
        clock.now += ECHO_INTERVAL
        stream.feed(b"x")  # the echo, painted at once
        await wait_for(pilot, lambda: painted(view)[1].startswith("x"))
        # the clock stands still: the next in-place frame is ECHO_INTERVAL away, yet what
        # comes is parsed at once (an echo in it is looked for), held only for painting
        takes = stream.takes
        stream.feed(b"y")
        await parsed(pilot, view, "xy")
        assert stream.takes == takes  # read as it came, not collected for a frame
        assert not painted(view)[1].startswith("xy")
        clock.now += ECHO_INTERVAL
        await wait_for(pilot, lambda: painted(view)[1].startswith("xy"))


async def test_a_keys_echo_paints_at_once_during_a_flood() -> None:
    stream = MemoryStream()
    app = PaintApp(stream)
    clock = Clock()
    async with app.run_test(size=(COLUMNS, LINES)) as pilot:
        view = app.query_one(PaintProbe)
        view._pacer = paced(clock)
        await feed_apart(stream, flood(50))
        await parsed(pilot, view, "line 00049")
        clock.now += 0.05
        stream.feed(b"tick\r\n")  # a frame's time has passed: painted at once
        await wait_for(pilot, lambda: any("tick" in row for row in painted(view)))
        stream.feed(b"more\r\n")  # a frame was just painted, the clock stands still: it waits
        await parsed(pilot, view, "more")
        for _ in range(5):
            await pilot.pause(0.02)
        assert not any("more" in row for row in painted(view))
        clock.now += ECHO_INTERVAL  # the flood's next frame is still 0.04 s away
        await pilot.press("x")
        await stream.wait_for(lambda: stream.written.endswith(b"x"))
        clock.now += ECHO_INTERVAL  # a round trip later (the key painted "more" at once)
        stream.feed(b"x")  # the guest echoes the key
        await wait_for(pilot, lambda: painted(view)[LINES - 1].startswith("x"))
        assert painted(view) == reference(b"".join([*flood(50), b"tick\r\nmore\r\nx"]))


async def test_held_output_is_parsed_on_a_key_and_an_echo_beside_the_flood_paints_alone() -> None:
    stream = ReadAheadStream()
    app = PaintApp(stream)
    clock = Clock()
    async with app.run_test(size=(COLUMNS, LINES)) as pilot:
        # held output waits for its frame, 30 s away, unless a key ends the wait
        view, _ = await first_line_with_frames_apart(pilot, app, stream, clock)
        # a status line on row 1, a flood below it (as bench_flood.py's echo program draws)
        await feed_apart(stream, [b"\x1b[2;%dr\x1b[%d;1H" % (LINES, LINES), *flood(100)])
        for _ in range(5):
            await pilot.pause(0.02)
        assert not any("line 00099" in row for row in painted(view))  # held for the frame
        await pilot.press("x")
        # parsed at once (an echo could be in it), but a flood streaming by keeps its frame
        await parsed(pilot, view, "line 00099")
        for _ in range(5):
            await pilot.pause(0.02)
        assert not any("line 00099" in row for row in painted(view))
        clock.now += ECHO_INTERVAL
        stream.feed(b"\x1b7\x1b[1;1H\x1b[2Kkey x\x1b8")  # the echo, drawn in place on row 1
        # painted alone, at once: a row, not the whole screen; the flood's rows at its frame
        await wait_for(pilot, lambda: painted(view)[0].startswith("key x"), timeout=5)
        for _ in range(5):
            await pilot.pause(0.02)
        assert not any("line 00099" in row for row in painted(view))
        clock.now += 30
        await wait_for(pilot, lambda: any("line 00099" in r for r in painted(view)), timeout=5)
        assert painted(view) == view.emulator.screen.display


async def test_after_a_key_a_flood_streaming_by_waits_for_its_frame_but_not_an_echo() -> None:
    """In a key's echo window output is parsed as it comes, but for plain output while a
    flood streams by (plain.py's ``plain_flow``): it cannot be the echo, and parsed read by
    read it took the dashboard's CPU from the guest. The echo behind it is parsed at once,
    with the flood held before it, and painted alone."""
    stream = ReadAheadStream()
    app = PaintApp(stream)
    clock = Clock()
    async with app.run_test(size=(COLUMNS, LINES)) as pilot:
        view, _ = await first_line_with_frames_apart(pilot, app, stream, clock)
        await feed_apart(stream, [b"\x1b[2;%dr\x1b[%d;1H" % (LINES, LINES), *flood(100)])
        await pilot.press("x")  # the held flood is parsed: a screenful streamed through
        await parsed(pilot, view, "line 00099")
        cut = [part for chunk in flood(200)[100:] for part in (chunk[:7], chunk[7:])]
        await feed_apart(stream, cut)  # reads cut inside SGRs, as a PTY's are
        for _ in range(5):
            await pilot.pause(0.02)
        assert not any("line 00199" in row for row in view.emulator.screen.display)  # held
        clock.now += ECHO_INTERVAL
        stream.feed(b"\x1b7\x1b[1;1H\x1b[2Kkey x\x1b8")  # the echo, drawn in place on row 1
        await wait_for(pilot, lambda: painted(view)[0].startswith("key x"), timeout=5)
        assert any("line 00199" in row for row in view.emulator.screen.display)
        assert not any("line 00199" in row for row in painted(view))  # the flood: its frame
        clock.now += 30
        await wait_for(pilot, lambda: any("line 00199" in r for r in painted(view)), timeout=5)
        assert painted(view) == view.emulator.screen.display


async def test_after_a_key_a_flood_streaming_by_is_held_only_up_to_the_echo_hold() -> None:
    """Held plain output is parsed before the echo behind it: past ``ECHO_HOLD`` bytes it is
    parsed as it comes, so an echo never waits for a whole frame's worth of a flood, and it is
    still painted at the flood's frame."""
    stream = ReadAheadStream()
    app = PaintApp(stream)
    clock = Clock()
    async with app.run_test(size=(COLUMNS, LINES)) as pilot:
        view, _ = await first_line_with_frames_apart(pilot, app, stream, clock)
        await feed_apart(stream, [b"\x1b[2;%dr\x1b[%d;1H" % (LINES, LINES), *flood(100)])
        await pilot.press("x")
        await parsed(pilot, view, "line 00099")
        per_line = len(flood(1)[0])
        more = flood(100 + 2 * ECHO_HOLD // per_line)[100:]
        await feed_apart(stream, more)
        last = len(more) + 99
        # Parsed up to a hold's worth before the last line (the rest may still be held)...
        await wait_for(
            pilot, lambda: numbered(view.emulator.screen.display) >= last - ECHO_HOLD // per_line
        )
        # ...and not painted before the flood's frame.
        assert numbered(painted(view)) <= 99
        clock.now += 30
        stream.feed(b"\x1b7\x1b[1;1H\x1b[2Kkey x\x1b8")
        await wait_for(pilot, lambda: painted(view)[0].startswith("key x"), timeout=5)
        await wait_for(pilot, lambda: painted(view) == view.emulator.screen.display, timeout=5)
        assert numbered(painted(view)) == last


def numbered(rows: list[str]) -> int:
    """The highest line number of :func:`flood` among ``rows`` (-1: none)."""
    return max((int(row.split()[2]) for row in rows if row.startswith("INFO line ")), default=-1)


async def test_the_cursor_paints_where_the_output_left_it() -> None:
    stream = MemoryStream()
    app = PaintApp(stream)
    async with app.run_test(size=(COLUMNS, LINES)) as pilot:
        view = app.query_one(PaintProbe)
        await feed_apart(stream, [*flood(30), b"$ ", b"ab"])
        await wait_for(pilot, lambda: painted(view)[LINES - 1].startswith("$ ab"))
        strip = view.render_line(LINES - 1)
        cursor = [seg for seg in strip if seg.style is not None and seg.style.reverse]
        assert cursor and cursor[0].text == " "  # the block cursor right after "ab"
        assert strip.crop(0, 4).text == "$ ab"
