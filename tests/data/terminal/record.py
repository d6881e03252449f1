"""Record real programs' output at a fixed terminal size, for the terminal emulation tests.

Usage: python tests/data/terminal/record.py [name ...]

Each recording is ``<name>.bin`` (the raw bytes the program wrote to its PTY) and
``<name>.json`` (size, command, and the byte offset reached before each scripted input, so a
test can replay a prefix and check the screen at that moment). Programs run at 80x24 with
TERM=xterm-256color and LANG=C.UTF-8. Queries (DA, CPR) are not answered: programs time out
and carry on, which is what they do on a terminal that never replies.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import pty
import select
import struct
import sys
import termios
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
COLS, ROWS = 80, 24

# name -> (argv, [(wait_after_input_s, input_bytes, mark_name)]): input, wait, then mark
SCRIPTS: dict[str, tuple[list[str], list[tuple[float, bytes, str]]]] = {
    "vim": (
        ["vim", "--clean", "-n", "/tmp/vbx-rec/hello.py"],
        [
            (1.5, b"", "opened"),
            (0.8, b"Goimport sys\x1b", "edited"),
            (1.0, b":wq\r", "quit"),
        ],
    ),
    "less": (
        ["less", "/tmp/vbx-rec/lines.txt"],
        [(1.0, b"", "opened"), (0.8, b" ", "paged"), (1.0, b"q", "quit")],
    ),
    "top": (
        ["top", "-d", "1"],
        [(2.5, b"", "running"), (1.0, b"q", "quit")],
    ),
    "ls": (
        ["ls", "--color=always", "-1", "/tmp/vbx-rec/lsdir"],
        [(1.0, b"", "done")],
    ),
    "altscreen": (
        [
            "sh",
            "-c",
            "echo before; tput smcup; tput clear; echo inside alt; tput cup 10 5; "
            "printf 'at 10,5'; sleep 0.5; tput rmcup; echo after",
        ],
        [(0.25, b"", "inside"), (1.0, b"", "done")],
    ),
    "progress": (
        [
            sys.executable,
            "-c",
            "import sys,time\n"
            "for i in range(0, 101, 5):\n"
            "    bar = '#' * (i // 5) + ' ' * (20 - i // 5)\n"
            "    sys.stdout.write(f'\\r\\x1b[32m[{bar}]\\x1b[0m {i:3d}%')\n"
            "    sys.stdout.flush(); time.sleep(0.01)\n"
            "print(); print('done')\n",
        ],
        [(1.0, b"", "done")],
    ),
    "unicode": (
        [
            "printf",
            "%s\\n",
            "CJK: 漢字かなカナ end",
            "VS16: ❤️ heart | end",
            "ZWJ: 👨‍👩‍👧 family | end",
            "flag: 🇩🇪 de | end",
            "combining: e\u0301 cafe\u0301 | end",
            "wide-wrap: " + "字" * 40,
        ],
        [(0.5, b"", "done")],
    ),
    "sgr": (
        [
            "printf",
            "\\033[?1;2mA\\033[>4;2mB\\033[38:2::255:0:0mRED\\033[4:3mCURLY\\033[0m"
            "\\033[38;2;0;128;255mTRUE\\033[0m\\033[38;5;208mORANGE\\033[0m"
            "\\033[1;3;4;7;9mALL\\033[0m\\033[2mDIM\\033[0m\\033[58:5:1mUL\\033[59m"
            "\\033[>1m\\033[?25lEND\\n",
        ],
        [(0.5, b"", "done")],
    ),
}


def prepare() -> None:
    base = Path("/tmp/vbx-rec")
    base.mkdir(exist_ok=True)
    (base / "hello.py").write_text('print("hello")\n\n\ndef main() -> int:\n    return 0\n')
    (base / "lines.txt").write_text("".join(f"line {i:03d} of the text\n" for i in range(1, 101)))
    lsdir = base / "lsdir"
    if lsdir.exists():
        for p in lsdir.iterdir():
            if p.is_dir() and not p.is_symlink():
                p.rmdir()
            else:
                p.unlink()
    lsdir.mkdir(exist_ok=True)
    (lsdir / "adir").mkdir()
    (lsdir / "plain.txt").write_text("x")
    exe = lsdir / "run.sh"
    exe.write_text("#!/bin/sh\n")
    exe.chmod(0o755)
    (lsdir / "link").symlink_to("plain.txt")
    (lsdir / "archive.tar.gz").write_bytes(b"")


def record(name: str) -> None:
    argv, steps = SCRIPTS[name]
    pid, fd = pty.fork()
    if pid == 0:
        os.environ.update(TERM="xterm-256color", LANG="C.UTF-8", LC_ALL="C.UTF-8", COLUMNS="80")
        os.environ["LINES"] = "24"
        os.execvp(argv[0], argv)
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", ROWS, COLS, 0, 0))
    out = bytearray()
    marks: list[dict[str, object]] = []

    def pump(seconds: float) -> bool:
        end = time.monotonic() + seconds
        while (left := end - time.monotonic()) > 0:
            r, _, _ = select.select([fd], [], [], left)
            if r:
                try:
                    chunk = os.read(fd, 65536)
                except OSError:
                    return False
                if not chunk:
                    return False
                out.extend(chunk)
        return True

    alive = True
    for wait, data, mark in steps:
        # send the input first, then let the program answer for `wait` seconds, then mark
        if alive and data:
            os.write(fd, data)
        if alive:
            alive = pump(wait)
        marks.append({"name": mark, "offset": len(out), "input": data.decode()})
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, 9)
    os.waitpid(pid, 0)
    (HERE / f"{name}.bin").write_bytes(bytes(out))
    meta = {"cols": COLS, "rows": ROWS, "argv": argv, "marks": marks, "length": len(out)}
    (HERE / f"{name}.json").write_text(json.dumps(meta, indent=2) + "\n")
    print(f"{name}: {len(out)} bytes, marks {[(m['name'], m['offset']) for m in marks]}")


if __name__ == "__main__":
    prepare()
    for n in sys.argv[1:] or list(SCRIPTS):
        record(n)
