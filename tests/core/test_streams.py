"""The ByteStream protocol, the in-memory MemoryStream, what the stream modules import."""

from __future__ import annotations

import subprocess
import sys

import pytest

from vibebox_core.streams import ByteStream, MemoryStream, end_reason


async def test_memory_stream_batches_and_records() -> None:
    stream = MemoryStream()
    assert isinstance(stream, ByteStream)
    stream.feed(b"ab")
    stream.feed(b"cd")
    assert await stream.read() == b"abcd"
    await stream.write(b"key")
    await stream.resize(100, 30)
    assert stream.written == b"key" and stream.resizes == [(100, 30)]
    stream.feed(b"tail")
    stream.feed_eof("Session exited with status 3")
    assert await stream.read() == b"tail"
    assert await stream.read() == b""
    assert end_reason(stream) == "Session exited with status 3"


async def test_memory_stream_wait_for_times_out() -> None:
    stream = MemoryStream()
    with pytest.raises(TimeoutError):
        await stream.wait_for(lambda: bool(stream.written), timeout=0.05)


@pytest.mark.parametrize(
    ("module", "unwanted"),
    [
        ("vibebox_core.streams", ("asyncssh", "textual", "rich")),
        ("vibebox_core.ssh.pty", ("textual", "rich")),
    ],
)
def test_stream_modules_never_import_the_ui(module: str, unwanted: tuple[str, ...]) -> None:
    """The widget's streams load no screen library; the protocol not even asyncssh."""
    code = (
        f"import sys, {module}; "
        f"print(sorted({{m.split('.')[0] for m in sys.modules}} & set({unwanted!r})))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
