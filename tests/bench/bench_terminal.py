"""Terminal benchmark: prints numbers (throughput, keystroke latency under a flood, memory).

Run: .venv/bin/python tests/bench/bench_terminal.py [--mb 10]

1. A mixed stream (plain text lines and SGR colours: 16, 256 and truecolor) of N MB at 120x40,
   fed in the widget's slices through vibebox's emulator, and the same bytes through stock
   ``pyte.Screen`` + ``pyte.ByteStream``, in the same run.
2. The same stream through a real ``TerminalView`` in a headless Textual app (parsing plus
   repainting), end to end.
3. Keystroke-to-screen latency while the flood runs: a key is posted to the app, the fake PTY
   echoes it on the top row (outside the scrolling region, as a status line would be) and the
   time until the widget renders that row with the echo is taken; p50/p95/max.
4. Resident memory (current and peak).
Targets: >= 5 MB/s, p95 <= 50 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import re
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import pyte
from textual import events
from textual.app import App, ComposeResult
from textual.strip import Strip

from vibebox_tui.terminal import TerminalView
from vibebox_tui.terminal.vt.emulator import Emulator
from vibebox_tui.terminal.widget import FEED_SLICE

COLUMNS, LINES = 120, 40
CHUNK = 64 * 1024


def make_stream(size: int, seed: int = 42) -> bytes:
    """Log-like lines: plain text, 16-colour, bold, 256-colour and truecolor spans."""
    rnd = random.Random(seed)
    words = [
        "lorem",
        "ipsum",
        "dolor",
        "sit",
        "amet",
        "consectetur",
        "adipiscing",
        "elit",
        "sed",
        "do",
        "eiusmod",
        "tempor",
        "incididunt",
        "ut",
        "labore",
        "et",
        "dolore",
        "magna",
        "aliqua",
    ]
    parts: list[bytes] = []
    total = 0
    n = 0
    while total < size:
        n += 1
        text = " ".join(rnd.choice(words) for _ in range(rnd.randint(6, 16)))
        if n % 5 == 0:
            line = f"{text} {n}\r\n"
        else:
            line = (
                f"\x1b[32mINFO\x1b[0m {n:08d} \x1b[1;34mmodule.py\x1b[0m:{n % 997} {text} "
                f"\x1b[38;5;{n % 256}m{rnd.choice(words)}\x1b[0m "
                f"\x1b[38;2;{n % 256};100;200mrgb\x1b[m\r\n"
            )
        data = line.encode()
        parts.append(data)
        total += len(data)
    return b"".join(parts)[:size]


def make_unicode_stream(size: int) -> bytes:
    """Lines of CJK, accented Latin and box drawing, some coloured (not part of the target)."""
    line = ("日本語のテキスト " * 6 + "\x1b[33mé café naïve\x1b[0m ─│┌┐ █▓▒░\r\n").encode()
    return (line * (size // len(line) + 1))[:size]


def bench_emulator(data: bytes) -> tuple[float, Emulator]:
    emulator = Emulator(COLUMNS, LINES)
    start = time.perf_counter()
    for i in range(0, len(data), FEED_SLICE):
        emulator.feed(data[i : i + FEED_SLICE])
    return len(data) / (time.perf_counter() - start) / 1e6, emulator


def bench_pyte(data: bytes) -> tuple[float, pyte.Screen]:
    screen = pyte.Screen(COLUMNS, LINES)
    stream = pyte.ByteStream(screen)
    start = time.perf_counter()
    for i in range(0, len(data), CHUNK):
        stream.feed(data[i : i + CHUNK])
    return len(data) / (time.perf_counter() - start) / 1e6, screen


def same_screen(emulator: Emulator, screen: pyte.Screen) -> bool:
    """Text, cursor and every cell's foreground colour and bold flag agree."""
    ours = emulator.screen
    if ours.display != screen.display:
        return False
    if (ours.cursor.x, ours.cursor.y) != (screen.cursor.x, screen.cursor.y):
        return False
    for y, line in enumerate(ours.buffer):
        for x, attr_id in enumerate(line.attrs):
            attr, char = ours.table.attrs[attr_id], screen.buffer[y][x]
            if bool(attr.flags & 1) != char.bold or (attr.fg == -1) != (char.fg == "default"):
                return False
    return True


class FloodStream:
    """A fake PTY: endless (or finite) output in CHUNK reads; echoes each write on row 1."""

    def __init__(self, data: bytes, *, loop_forever: bool, prefix: bytes = b"") -> None:
        self.data = data
        self.pos = 0
        self.loop_forever = loop_forever
        self.echo: list[bytes] = [prefix] if prefix else []
        self.keys = 0
        self.total = 0
        self.done = asyncio.Event()

    async def read(self) -> bytes:
        await asyncio.sleep(0)
        if self.echo:
            out = b"".join(self.echo)
            self.echo.clear()
            return out
        if self.pos >= len(self.data):
            if not self.loop_forever:
                self.done.set()
                await asyncio.Event().wait()  # stay open, like an idle shell
            self.pos = 0
        chunk = self.data[self.pos : self.pos + CHUNK]
        self.pos += len(chunk)
        self.total += len(chunk)
        return chunk

    async def write(self, data: bytes) -> None:
        if data.startswith(b"\x1b["):
            return  # answers to queries, not keys
        self.keys += 1
        self.echo.append(b"\x1b7\x1b[1;1H\x1b[2KKEY:%d\x1b8" % self.keys)

    async def resize(self, cols: int, rows: int) -> None:
        pass

    async def close(self) -> None:
        pass


_KEY = re.compile(r"KEY:(\d+)")


class ProbeView(TerminalView):
    """Records when row 0 is first rendered showing each echoed key number."""

    seen: dict[int, float]

    def render_line(self, y: int) -> Strip:
        strip = super().render_line(y)
        if y == 0:
            match = _KEY.search(strip.text)
            if match:
                self.seen.setdefault(int(match.group(1)), time.perf_counter())
        return strip


class BenchApp(App[None]):
    def __init__(self, stream: FloodStream) -> None:
        super().__init__()
        self.stream = stream

    def compose(self) -> ComposeResult:
        view = ProbeView(self.stream)
        view.seen = {}
        yield view

    def on_mount(self) -> None:
        self.query_one(ProbeView).focus()


async def bench_widget(data: bytes) -> float:
    stream = FloodStream(data, loop_forever=False)
    app = BenchApp(stream)
    async with app.run_test(size=(COLUMNS, LINES)):
        start = time.perf_counter()
        await stream.done.wait()
        elapsed = time.perf_counter() - start
    return len(data) / elapsed / 1e6


async def bench_latency(data: bytes, presses: int) -> tuple[list[float], float]:
    # Keep rows 2..40 scrolling; row 1 is the status line the echo goes to.
    stream = FloodStream(data, loop_forever=True)
    app = BenchApp(stream)
    latencies: list[float] = []
    rnd = random.Random(7)
    async with app.run_test(size=(COLUMNS, LINES)):
        view = app.query_one(ProbeView)
        await asyncio.sleep(0.3)  # flood under way, size settled (a resize resets margins)
        stream.echo.append(b"\x1b[2;%dr\x1b[2;1H" % LINES)
        flood_start = stream.total
        start = time.perf_counter()
        for number in range(1, presses + 1):
            char = "abcdefghij"[number % 10]
            sent = time.perf_counter()
            app.post_message(events.Key(char, char))
            deadline = sent + 2.0
            while number not in view.seen and time.perf_counter() < deadline:
                await asyncio.sleep(0.001)
            latencies.append(view.seen.get(number, deadline) - sent)
            await asyncio.sleep(rnd.uniform(0.01, 0.03))
        flood_rate = (stream.total - flood_start) / (time.perf_counter() - start) / 1e6
    return latencies, flood_rate


def rss() -> tuple[float, float]:
    fields = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key, _, value = line.partition(":")
        fields[key] = value.strip()
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=float, default=10.0, help="stream size in MB")
    parser.add_argument("--presses", type=int, default=100, help="keystrokes to time")
    args = parser.parse_args()
    data = make_stream(int(args.mb * 1e6))
    print(f"stream: {len(data) / 1e6:.1f} MB mixed text + SGR at {COLUMNS}x{LINES}")
    ours, emulator = bench_emulator(data)
    print(f"vibebox emulator:            {ours:7.2f} MB/s")
    cjk = make_unicode_stream(len(data) // 5)
    print(f"  (CJK/box-drawing text, {len(cjk) / 1e6:.0f} MB:  {bench_emulator(cjk)[0]:5.2f} MB/s)")
    stock, reference = bench_pyte(data)
    print(f"stock pyte Screen+ByteStream:{stock:7.2f} MB/s   (x{ours / stock:.1f})")
    verdict = "identical" if same_screen(emulator, reference) else "DIFFERENT"
    print(f"final screens (text, cursor, colours), vibebox vs pyte: {verdict}")
    widget = asyncio.run(bench_widget(data))
    print(f"TerminalView in headless app:{widget:7.2f} MB/s   (parse + repaint, end to end)")
    latencies, flood = asyncio.run(bench_latency(data, args.presses))
    ms = sorted(x * 1000 for x in latencies)
    p95 = ms[max(0, int(len(ms) * 0.95) - 1)]
    print(
        f"keystroke->screen under flood: p50 {statistics.median(ms):.1f} ms, "
        f"p95 {p95:.1f} ms, max {ms[-1]:.1f} ms ({len(ms)} keys; flood {flood:.2f} MB/s)"
    )
    now, peak = rss()
    print(
        f"RSS: {now:.0f} MB now, {peak:.0f} MB peak (includes the {len(data) / 1e6:.0f} MB input)"
    )
    ok = ours >= 5 and p95 <= 50
    print(f"targets (>= 5 MB/s, p95 <= 50 ms): {'met' if ok else 'NOT met'}")


if __name__ == "__main__":
    main()
