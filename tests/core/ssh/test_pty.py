"""SSHPtyStream against a real asyncssh server on loopback (vibebox_core.ssh.pty)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import asyncssh
import pytest

from vibebox_core.errors import SSHError
from vibebox_core.ssh.pty import TERM_TYPE, SSHPtyStream
from vibebox_core.streams import ByteStream


async def _guest(process: asyncssh.SSHServerProcess[bytes]) -> None:
    """A tiny 'guest program': reports its PTY, echoes input, reports resizes, exits 3 on q."""
    width, height, _, _ = process.get_terminal_size()
    process.stdout.write(f"term={process.get_terminal_type()} {width}x{height}\r\n".encode())
    while True:
        try:
            data = await process.stdin.read(100)
        except asyncssh.TerminalSizeChanged as change:
            process.stdout.write(f"resized {change.width}x{change.height}\r\n".encode())
            continue
        if not data or data == b"q":
            break
        if data == b"e":
            # The output ends first and the status follows later, as OpenSSH may send them.
            process.stdout.write_eof()
            await asyncio.sleep(0.3)
            process.exit(5)
            return
        process.stdout.write(data)
    process.exit(3)


class _OpenServer(asyncssh.SSHServer):
    def begin_auth(self, username: str) -> bool:
        return False  # loopback test server: no authentication


@pytest.fixture
async def connection() -> AsyncIterator[asyncssh.SSHClientConnection]:
    host_key = asyncssh.generate_private_key("ssh-ed25519")
    server = await asyncssh.listen(
        "127.0.0.1",
        0,
        server_host_keys=[host_key],
        server_factory=_OpenServer,
        process_factory=_guest,
        encoding=None,
    )
    port = server.sockets[0].getsockname()[1]
    trusted = asyncssh.import_known_hosts(
        f"[127.0.0.1]:{port} {host_key.export_public_key().decode()}"
    )
    conn = await asyncssh.connect(
        "127.0.0.1", port, known_hosts=trusted, username="vibecoder", client_keys=None
    )
    try:
        yield conn
    finally:
        conn.close()
        server.close()
        await server.wait_closed()


async def _read_until(stream: SSHPtyStream, needle: bytes) -> bytes:
    data = b""
    while needle not in data:
        chunk = await asyncio.wait_for(stream.read(), 5)
        assert chunk, f"stream ended before {needle!r}: {data!r}"
        data += chunk
    return data


async def test_ssh_pty_stream_roundtrip_resize_and_exit(
    connection: asyncssh.SSHClientConnection,
) -> None:
    stream = await SSHPtyStream.open(connection, 90, 30)
    assert isinstance(stream, ByteStream)
    assert f"term={TERM_TYPE} 90x30".encode() in await _read_until(stream, b"\r\n")
    await stream.write("héllo".encode())
    assert "héllo".encode() in await _read_until(stream, "héllo".encode())
    await stream.resize(120, 40)
    assert b"resized 120x40" in await _read_until(stream, b"resized")
    await stream.write(b"q")
    while await asyncio.wait_for(stream.read(), 5):
        pass
    assert stream.exit_status == 3
    assert stream.end_reason == "Session exited with status 3"
    await stream.close()
    assert await stream.read() == b""


async def test_the_exit_status_is_kept_when_it_comes_after_the_end_of_output(
    connection: asyncssh.SSHClientConnection,
) -> None:
    stream = await SSHPtyStream.open(connection, 80, 24)
    await _read_until(stream, b"\r\n")
    await stream.write(b"e")
    while await asyncio.wait_for(stream.read(), 5):
        pass
    assert stream.exit_status == 5
    assert stream.end_reason == "Session exited with status 5"
    await stream.close()


async def test_ssh_pty_stream_open_on_closed_connection_is_an_ssh_error(
    connection: asyncssh.SSHClientConnection,
) -> None:
    connection.close()
    await connection.wait_closed()
    with pytest.raises(SSHError):
        await SSHPtyStream.open(connection, 80, 24)


async def test_ssh_pty_stream_reports_a_dropped_connection(
    connection: asyncssh.SSHClientConnection,
) -> None:
    stream = await SSHPtyStream.open(connection, 80, 24)
    await _read_until(stream, b"\r\n")
    connection.abort()
    try:
        while await asyncio.wait_for(stream.read(), 5):
            pass
    except SSHError as exc:
        assert "lost" in str(exc)
    assert stream.exit_status is None
    assert stream.end_reason.startswith("Connection lost")
