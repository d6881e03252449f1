"""The terminal relay: framing, and a shell relayed by a supervisor over its UNIX socket.

The supervisor here is the real :class:`~vibebox_core.supervisor.server.Supervisor` on a fake VM;
the guest shell is a :class:`~vibebox_core.streams.MemoryStream`. The real SSH side is covered by
``tests/e2e/test_terminal_e2e.py``.
"""

from __future__ import annotations

import asyncio
import json
import stat
from collections.abc import AsyncIterator
from pathlib import Path
from typing import cast

import pytest
from core.supervisor.fakes import Terminals, serving, wait_until

from vibebox_core import commandtoken
from vibebox_core.errors import SSHError, SupervisorError
from vibebox_core.supervisor import client, relay
from vibebox_core.supervisor.client import SupervisorConnection
from vibebox_core.supervisor.relay import RelayPtyStream
from vibebox_core.supervisor.server import Supervisor


def reader_of(data: bytes, eof: bool = True) -> asyncio.StreamReader:
    reader = asyncio.StreamReader()
    reader.feed_data(data)
    if eof:
        reader.feed_eof()
    return reader


async def test_frames_round_trip_and_end_cleanly_between_frames() -> None:
    data = relay.frame(relay.DATA, b"hello") + relay.resize_frame(100, 30)
    reader = reader_of(data)
    assert await relay.read_frame(reader) == (b"d", b"hello")
    kind, payload = await relay.read_frame(reader) or (b"", b"")
    assert kind == relay.RESIZE and relay.parse_size(payload) == (100, 30)
    assert await relay.read_frame(reader) is None


async def test_a_cut_or_oversized_frame_is_an_error() -> None:
    with pytest.raises(relay.FrameError):
        await relay.read_frame(reader_of(relay.frame(relay.DATA, b"hello")[:-2]))
    with pytest.raises(relay.FrameError):
        await relay.read_frame(reader_of(b"d\x00"))
    with pytest.raises(relay.FrameError):
        await relay.read_frame(reader_of(b"d" + (relay.MAX_FRAME + 1).to_bytes(4, "big")))
    with pytest.raises(relay.FrameError):
        relay.parse_size(b"\x00")


async def test_the_client_takes_every_whole_frame_that_came_in_one_read() -> None:
    """A flood's frames that queued up while the terminal was busy come out of one read
    (not one read each); a frame of an unknown kind is skipped, the end frame ends it."""
    frames = b"".join(relay.frame(relay.DATA, b"%d," % n) for n in range(300))
    end = {"status": 3, "signal": None, "reason": "Session exited with status 3"}
    data = frames + relay.frame(b"?", b"skipped") + relay.frame(relay.DATA, b"last")
    data += relay.frame(relay.END, json.dumps(end).encode()) + relay.frame(relay.DATA, b"late")
    reader = reader_of(data[:-7], eof=False)  # the last frame cut short, for now
    stream = RelayPtyStream(reader, cast(asyncio.StreamWriter, None))
    assert await stream.read() == b"".join(b"%d," % n for n in range(300)) + b"last"
    assert stream.exit_status == 3 and stream.end_reason == end["reason"]
    assert await stream.read() == b""  # the end frame ended it: the frame after is ignored
    cut = RelayPtyStream(reader_of(relay.frame(relay.DATA, b"hello")[:-2]), stream._writer)
    with pytest.raises(SupervisorError, match="inside a frame"):
        await cut.read()
    huge = b"d" + (relay.MAX_FRAME + 1).to_bytes(4, "big")
    with pytest.raises(SupervisorError, match="larger than"):
        await RelayPtyStream(reader_of(huge, eof=False), stream._writer).read()


def test_sizes_are_clamped_to_what_a_pty_takes() -> None:
    _, payload = relay.resize_frame(0, 70000)[:5], relay.resize_frame(0, 70000)[5:]
    assert relay.parse_size(payload) == (1, 65535)


@pytest.fixture
async def terminals(short_home: Path) -> AsyncIterator[tuple[Supervisor, Terminals]]:
    shells = Terminals()
    async for sup in serving(short_home, shells):
        yield sup, shells


async def test_a_relayed_shell_carries_output_input_and_resizes(
    terminals: tuple[Supervisor, Terminals],
) -> None:
    sup, shells = terminals
    stream = await RelayPtyStream.open(sup.socket_path, 90, 20)
    assert shells.sizes == [(90, 20)]
    # The client's fresh command token is the one the shell is opened with.
    assert commandtoken.is_token(stream.command_token)
    assert shells.tokens == [stream.command_token]
    shell = shells.shells[0]
    shell.feed(b"vibecoder@vibebox:~$ ")
    assert await stream.read() == b"vibecoder@vibebox:~$ "
    await stream.write(b"echo hi\r")
    await stream.resize(120, 40)
    await shell.wait_for(lambda: bytes(shell.written) == b"echo hi\r" and bool(shell.resizes))
    assert shell.resizes == [(120, 40)]
    big = bytes(range(256)) * 1024  # binary-safe, larger than one socket read
    shell.feed(big)
    got = b""
    while len(got) < len(big):
        got += await stream.read()
    assert got == big
    assert sup.attached == 0  # a terminal is not an attachment; the attach op is
    await stream.close()
    await wait_until(lambda: shell.closed)


async def test_a_flood_and_a_large_paste_cross_the_relay_whole_and_in_order(
    terminals: tuple[Supervisor, Terminals],
) -> None:
    """The supervisor keeps little output queued per client (relay.OUTPUT_QUEUE): a client
    that stops reading holds the guest back instead, and nothing is lost; reads and writes of
    any size are split into frames the other side accepts."""
    sup, shells = terminals
    stream = await RelayPtyStream.open(sup.socket_path, 80, 24)
    shell = shells.shells[0]
    chunks = [bytes([n % 256]) * 16384 for n in range(256)]  # 4 MiB, each chunk its own byte
    for chunk in chunks:
        shell.feed(chunk)
        await asyncio.sleep(0)  # the pump runs between feeds, as it would for a real guest
    await asyncio.sleep(0.2)  # the client lags behind
    got = bytearray()
    while len(got) < 4 * 1024 * 1024:
        data = await stream.read()
        assert data
        got += data
    assert bytes(got) == b"".join(chunks)
    # And a paste larger than one frame goes the other way whole.
    paste = bytes(range(256)) * (12 * 1024)  # 3 MiB
    await stream.write(paste)
    await shell.wait_for(lambda: len(shell.written) >= len(paste))
    assert bytes(shell.written) == paste
    await stream.close()


async def test_the_shells_end_reaches_the_client_with_its_reason(
    terminals: tuple[Supervisor, Terminals],
) -> None:
    sup, shells = terminals
    stream = await RelayPtyStream.open(sup.socket_path, 80, 24)
    shells.shells[0].feed(b"bye\r\n")
    shells.shells[0].feed_eof("Session exited with status 3")
    assert await stream.read() == b"bye\r\n"
    assert await stream.read() == b""
    assert stream.end_reason == "Session exited with status 3"
    assert await stream.read() == b""
    await stream.write(b"ignored after the end")  # no error, nothing sent


async def test_only_the_user_can_reach_the_socket(
    terminals: tuple[Supervisor, Terminals],
) -> None:
    sup, _ = terminals
    assert stat.S_IMODE(sup.socket_path.stat().st_mode) == 0o600
    assert stat.S_IMODE(sup.socket_path.parent.stat().st_mode) == 0o700


async def test_a_shell_the_guest_refuses_is_an_error_with_its_hint(short_home: Path) -> None:
    async for sup in serving(short_home, Terminals(fail="the guest said no")):
        with pytest.raises(SSHError) as caught:
            await RelayPtyStream.open(sup.socket_path, 80, 24)
        assert caught.value.message == "the guest said no" and caught.value.hint == "a hint"


async def test_a_supervisor_without_terminals_refuses(short_home: Path) -> None:
    async for sup in serving(short_home, None):
        with pytest.raises(SSHError, match="opens no terminals"):
            await RelayPtyStream.open(sup.socket_path, 80, 24)


async def test_no_supervisor_is_a_clear_error(short_home: Path) -> None:
    with pytest.raises(SupervisorError, match="no supervisor answers"):
        await RelayPtyStream.open(short_home / "nobody.sock", 80, 24)


async def test_shutdown_ends_relayed_shells_and_closes_the_connection(short_home: Path) -> None:
    shells = Terminals()
    async for sup in serving(short_home, shells):
        stream = await RelayPtyStream.open(sup.socket_path, 80, 24)
        await sup.request_stop("test")
        assert shells.closed
        while await stream.read():
            pass
        assert stream.end_reason


async def test_a_supervisor_that_never_answers_times_out_with_a_clear_error(
    short_home: Path,
) -> None:
    path = short_home / "mute.sock"

    async def mute(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()  # reads the request, never answers

    server = await asyncio.start_unix_server(mute, path=str(path))
    try:
        with pytest.raises(SupervisorError, match="did not open a terminal: timed out"):
            await RelayPtyStream.open(path, 80, 24, timeout=0.2)
    finally:
        server.close()


async def test_two_tabs_of_one_vibebox_count_it_once(
    terminals: tuple[Supervisor, Terminals],
) -> None:
    sup, shells = terminals
    # A vibebox attaches once, then opens its terminals (the dashboard's tabs) on the relay.
    attachment = await SupervisorConnection.open(sup.socket_path)
    assert await attachment.attach("vibebox dashboard") == 1
    tabs = [await RelayPtyStream.open(sup.socket_path, 80, 24) for _ in range(2)]
    assert len(shells.shells) == 2 and shells.shells[0] is not shells.shells[1]
    assert sup.attached == 1 and (await attachment.status())["attached"] == 1
    status = await asyncio.to_thread(client.status_sync, sup.socket_path)
    assert status is not None and status["attached"] == 1  # what `vibebox list` shows
    # Each tab is its own PTY: what one tab types reaches its shell only.
    await tabs[1].write(b"ls\r")
    await shells.shells[1].wait_for(lambda: bytes(shells.shells[1].written) == b"ls\r")
    assert shells.shells[0].written == b""
    # Closing a tab leaves the count alone; detaching drops it to 0, whatever tab is open.
    await tabs[0].close()
    await wait_until(lambda: shells.shells[0].closed)
    assert sup.attached == 1
    await attachment.close()
    await wait_until(lambda: sup.attached == 0)
    await tabs[1].close()
