"""A TerminalView on a local PTY, on the dashboard's own driver: the key table's fast e2e run.

``python local_terminal.py PROGRAM [ARGS...]`` shows PROGRAM full screen, the keyboard in the
terminal, as the dashboard shows a guest shell; run it in tmux (see test_keys_e2e.py).
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import pty
import struct
import sys
import termios

from textual.app import App, ComposeResult
from textual.driver import Driver

from vibebox_tui.terminal import TerminalView
from vibebox_tui.terminal.input import dashboard_driver


class LocalPty:
    """A :class:`~vibebox_core.streams.ByteStream` over a child process on a local PTY."""

    def __init__(self, argv: list[str]) -> None:
        pid, fd = pty.fork()
        if pid == 0:  # the child
            os.execvp(argv[0], argv)
        self.pid, self.fd = pid, fd
        self._output: asyncio.Queue[bytes] = asyncio.Queue()
        asyncio.get_running_loop().add_reader(fd, self._readable)

    def _readable(self) -> None:
        try:
            data = os.read(self.fd, 65536)
        except OSError:
            data = b""
        if not data:
            asyncio.get_running_loop().remove_reader(self.fd)
        self._output.put_nowait(data)

    async def read(self) -> bytes:
        return await self._output.get()

    async def write(self, data: bytes) -> None:
        while data:
            data = data[os.write(self.fd, data) :]

    async def resize(self, cols: int, rows: int) -> None:
        fcntl.ioctl(self.fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))

    async def close(self) -> None:
        os.close(self.fd)


class LocalTerminalApp(App[None]):
    def __init__(self, argv: list[str]) -> None:
        super().__init__()
        self.argv = argv
        self.terminal = TerminalView()

    def get_driver_class(self) -> type[Driver]:
        return dashboard_driver(super().get_driver_class())

    def compose(self) -> ComposeResult:
        yield self.terminal

    def on_mount(self) -> None:
        self.terminal.attach(LocalPty(self.argv))
        self.terminal.focus()

    def on_terminal_view_disconnected(self) -> None:
        self.exit()


if __name__ == "__main__":
    LocalTerminalApp(sys.argv[1:]).run()
