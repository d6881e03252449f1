"""ThreadedStream reads ahead on the IO loop: whole batches per hop, nothing lost or reordered."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator

import pytest

from vibebox_core.errors import SupervisorError
from vibebox_core.streams import MemoryStream, ReadsAhead
from vibebox_tui.backend.io_thread import GIL_SWITCH, READ_AHEAD, IOThread, ThreadedStream


class FrameStream(MemoryStream):
    """A MemoryStream that hands out one queued chunk per read (as the relay does per frame)
    and counts the reads."""

    def __init__(self) -> None:
        super().__init__()
        self.reads = 0

    async def read(self) -> bytes:
        self.reads += 1
        if self.eof or self.closed:
            return b""
        data = await self._queue.get()
        if not data:
            self.eof = True
        return data


class BrokenStream(MemoryStream):
    async def read(self) -> bytes:
        raise SupervisorError("the terminal relay broke: test")


@pytest.fixture
async def io() -> AsyncIterator[IOThread]:
    thread = IOThread()
    yield thread
    thread.loop.call_soon_threadsafe(thread.loop.stop)


async def on_io(io: IOThread, stream: MemoryStream, *chunks: bytes) -> None:
    for chunk in chunks:
        await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(_feed(stream, chunk), io.loop))


async def _feed(stream: MemoryStream, chunk: bytes) -> None:
    if chunk:
        stream.feed(chunk)
    else:
        stream.feed_eof()
    await asyncio.sleep(0)  # let the IO side's reader take it as its own read


async def test_frames_that_arrived_meanwhile_come_in_one_read(io: IOThread) -> None:
    stream = FrameStream()
    threaded = ThreadedStream(io, stream)
    await on_io(io, stream, b"first")
    assert await threaded.read() == b"first"
    frames = [b"frame %03d;" % n for n in range(200)]
    await on_io(io, stream, *frames)
    got = await threaded.read()
    assert got.count(b";") > 100  # one read carried what arrived meanwhile, not one frame
    while len(got) < sum(map(len, frames)):
        got += await threaded.read()
    assert got == b"".join(frames)  # in order, nothing lost
    assert stream.reads >= 200  # the IO side read them one frame at a time
    await threaded.close()


async def test_the_io_side_stops_reading_ahead_until_the_terminal_catches_up(
    io: IOThread,
) -> None:
    stream = FrameStream()
    threaded = ThreadedStream(io, stream)
    block = b"x" * (64 * 1024)
    count = READ_AHEAD // len(block) + 3
    await on_io(io, stream, b"go")
    assert await threaded.read() == b"go"
    await on_io(io, stream, *([block] * count))
    for _ in range(20):
        await asyncio.sleep(0.01)
    assert not stream._queue.empty()  # it paused with READ_AHEAD bytes in hand
    got = b""
    while len(got) < count * len(block):
        got += await threaded.read()
    assert got == block * count
    await threaded.close()


async def test_take_ready_hands_over_what_was_read_ahead_without_waiting(io: IOThread) -> None:
    stream = FrameStream()
    threaded = ThreadedStream(io, stream)
    assert isinstance(threaded, ReadsAhead)
    assert threaded.take_ready() == b""  # nothing read yet, and it does not wait
    await on_io(io, stream, b"go")
    assert await threaded.read() == b"go"  # the first read starts the reading ahead
    block = b"y" * (64 * 1024)
    count = READ_AHEAD // len(block) + 3
    await on_io(io, stream, *([block] * count))
    for _ in range(20):
        await asyncio.sleep(0.01)
    assert not stream._queue.empty()  # paused with READ_AHEAD bytes in hand
    got = threaded.take_ready()
    assert len(got) >= READ_AHEAD  # all of it at once...
    for _ in range(500):  # ...and taking it let the IO side read on
        if len(got) >= count * len(block):
            break
        await asyncio.sleep(0.01)
        got += threaded.take_ready()
    assert got == block * count and threaded.take_ready() == b""
    await threaded.close()


async def test_a_cancelled_read_loses_nothing(io: IOThread) -> None:
    stream = FrameStream()
    threaded = ThreadedStream(io, stream)
    waiting = asyncio.ensure_future(threaded.read())
    await asyncio.sleep(0.05)
    waiting.cancel()  # the terminal detached while the stream was quiet
    await on_io(io, stream, b"kept")
    assert await asyncio.wait_for(threaded.read(), 5) == b"kept"
    await threaded.close()


async def test_an_error_reaches_the_terminal_and_the_end_is_an_empty_read(io: IOThread) -> None:
    broken = ThreadedStream(io, BrokenStream())
    with pytest.raises(SupervisorError):
        await asyncio.wait_for(broken.read(), 5)
    stream = FrameStream()
    threaded = ThreadedStream(io, stream)
    await on_io(io, stream, b"last", b"")
    got = b""
    while (data := await asyncio.wait_for(threaded.read(), 5)) != b"":
        got += data
    assert got == b"last"


async def test_the_io_thread_hands_the_gil_over_within_a_millisecond(io: IOThread) -> None:
    # A key and its echo cross between the app's thread and this one; at CPython's default
    # 5 ms switch interval each crossing could wait that long behind a busy parser.
    assert sys.getswitchinterval() <= GIL_SWITCH == 0.001
