"""Record real programs' output at a fixed terminal size, for the terminal emulation tests.

Usage: python tests/data/terminal/record.py [name ...]

Each recording is ``<name>.bin`` (the raw bytes the program wrote to its PTY) and
``<name>.json`` (size, command, and the byte offset reached before each scripted input, so a
test can replay a prefix and check the screen at that moment). Programs run at 80x24 with
TERM=xterm-256color and LANG=C.UTF-8. Queries (DA, CPR) are not answered -- programs time out
and carry on, as on a terminal that never replies -- except for the recordings in ``ANSWERED``
(programs that wait for the answer: vttest, fzf, mc), whose queries vibebox's own emulator,
fed the same bytes, answers as the dashboard would.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import pty
import select
import struct
import subprocess
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
    # -- real full-screen programs, compared cell by cell with xterm.js (test_conformance) --
    "vim_split": (
        ["vim", "--clean", "-n", "-c", "syntax on", "/tmp/vbx-rec/hello.py"],
        [
            (1.5, b"", "opened"),
            (1.0, b":vsplit /tmp/vbx-rec/lines.txt\r", "split"),
            (0.8, b"50Gzz", "moved"),
            (0.8, b"\x17lvjjd", "visual"),
            (1.0, b":help\r", "help"),
            (0.8, b"\x06\x06", "scrolled"),
            (1.0, b":qa!\r", "quit"),
        ],
    ),
    "nvi": (
        ["nvi", "/tmp/vbx-rec/lines.txt"],
        [
            (1.0, b"", "opened"),
            (0.8, b"\x06", "paged"),
            (0.8, b"Ohi\x1b", "edited"),
            (0.8, b":q!\r", "quit"),
        ],
    ),
    "nano": (
        ["nano", "--ignorercfiles", "/tmp/vbx-rec/hello.py"],
        [
            (1.2, b"", "opened"),
            (0.8, b"# new line\r", "typed"),
            (0.8, b"\x17main\r", "searched"),
            (0.8, b"\x18", "asked"),
            (0.8, b"n", "quit"),
        ],
    ),
    "emacs": (
        ["emacs", "-nw", "-Q", "/tmp/vbx-rec/hello.py"],
        [
            (3.0, b"", "opened"),
            (0.8, b"\x0e\x0e\x05 # end", "edited"),
            (1.0, b"\x18\x03", "asked"),
            (0.8, b"n", "answered"),
            (1.0, b"yes\r", "quit"),
        ],
    ),
    "joe": (
        ["joe", "-nobackups", "/tmp/vbx-rec/hello.py"],
        [
            (1.2, b"", "opened"),
            (0.8, b"x = 1\r", "typed"),
            (0.8, b"\x03", "asked"),
            (0.8, b"y", "quit"),
        ],
    ),
    "less_search": (
        ["less", "-R", "/tmp/vbx-rec/colour.txt"],
        [
            (1.0, b"", "opened"),
            (0.8, b"/line 03\r", "searched"),
            (0.8, b"G", "end"),
            (0.8, b"g", "top"),
            (0.8, b"q", "quit"),
        ],
    ),
    "man": (
        ["man", "ls"],
        [
            (2.0, b"", "opened"),
            (0.8, b" ", "paged"),
            (0.8, b"/--color\r", "searched"),
            (0.8, b"q", "quit"),
        ],
    ),
    "git_log_graph": (
        [
            "git",
            "-C",
            "/tmp/vbx-rec/repo",
            "-c",
            "color.ui=always",
            "-c",
            "core.pager=less -R",
            "log",
            "--graph",
            "--decorate",
            "--all",
            "--format=%h %s%d",
        ],
        [(1.0, b"", "opened"), (0.8, b"q", "quit")],
    ),
    "git_show_diff": (
        [
            "git",
            "-C",
            "/tmp/vbx-rec/repo",
            "-c",
            "color.ui=always",
            "-c",
            "core.pager=less -R",
            "show",
            "--stat",
            "-p",
            "HEAD~1",
        ],
        [(1.0, b"", "opened"), (0.8, b" ", "paged"), (0.8, b"q", "quit")],
    ),
    "tig": (
        ["tig", "-C", "/tmp/vbx-rec/repo", "--all"],
        [(1.5, b"", "opened"), (0.8, b"j\r", "diff"), (0.8, b"q", "back"), (0.8, b"q", "quit")],
    ),
    "htop": (
        ["htop", "-d", "10", "--no-mouse"],
        [
            (2.5, b"", "running"),
            (1.0, b"\x1bOS", "setup"),
            (1.0, b"\x1b", "back"),
            (1.0, b"t", "tree"),
            (1.0, b"q", "quit"),
        ],
    ),
    "top_batch_colour": (
        ["top", "-d", "1"],
        [(2.0, b"", "running"), (1.0, b"z", "colour"), (1.0, b"1", "cpus"), (1.0, b"q", "quit")],
    ),
    "watch": (
        ["watch", "-n", "0.5", "-d", "ls", "-l", "/tmp/vbx-rec/lsdir"],
        [(1.8, b"", "running"), (0.5, b"q", "quit")],
    ),
    "tmux": (
        ["tmux", "-L", "vbx-rec", "-f", "/dev/null", "new-session", "sh"],
        [
            (1.5, b"", "opened"),
            (0.8, b"printf '\\033[31mred\\033[0m plain\\n'; ls /tmp/vbx-rec/lsdir\r", "typed"),
            (1.0, b"\x02%", "split"),
            (0.8, b"echo right pane\r", "right"),
            (0.8, b'\x02"', "hsplit"),
            (0.8, b"exit\r", "closed"),
            (0.8, b"exit\r", "closed2"),
            (1.0, b"exit\r", "quit"),
        ],
    ),
    "screen": (
        ["screen", "-q", "-c", "/dev/null", "-S", "vbx-rec", "sh"],
        [
            (1.5, b"", "opened"),
            (0.8, b"echo inside screen; tput setaf 2; echo green; tput sgr0\r", "typed"),
            (0.8, b"\x01c", "window2"),
            (0.8, b"echo second\r", "second"),
            (0.8, b'\x01"', "list"),
            (0.8, b"\r", "picked"),
            (0.8, b"exit\r", "closed"),
            (1.0, b"exit\r", "quit"),
        ],
    ),
    "dialog_msgbox": (
        ["dialog", "--title", "Notice", "--msgbox", "Hello from dialog.\nSecond line.", "10", "40"],
        [(1.0, b"", "shown"), (1.0, b"\r", "quit")],
    ),
    "dialog_menu": (
        [
            "dialog",
            "--menu",
            "Pick one",
            "15",
            "50",
            "5",
            "1",
            "Apples",
            "2",
            "Bananas",
            "3",
            "Cherries",
            "4",
            "Dates",
            "5",
            "Elderberries",
            "6",
            "Figs",
        ],
        [
            (1.0, b"", "shown"),
            (0.6, b"\x1bOB\x1bOB", "moved"),
            (0.6, b"\x1bOB\x1bOB\x1bOB", "scrolled"),
            (1.0, b"\r", "quit"),
        ],
    ),
    "dialog_checklist": (
        [
            "dialog",
            "--checklist",
            "Toppings",
            "14",
            "44",
            "4",
            "a",
            "Cheese",
            "on",
            "b",
            "Ham",
            "off",
            "c",
            "Olives",
            "off",
            "d",
            "Basil",
            "on",
        ],
        [
            (1.0, b"", "shown"),
            (0.6, b"\x1bOB ", "toggled"),
            (0.6, b"\t", "buttons"),
            (1.0, b"\r", "quit"),
        ],
    ),
    "dialog_gauge": (
        [
            "sh",
            "-c",
            "for i in 0 20 40 60 80 100; do echo $i; sleep 0.2; done | "
            "dialog --gauge 'Working...' 8 50 0",
        ],
        [(2.0, b"", "done")],
    ),
    "whiptail_yesno": (
        ["whiptail", "--title", "Question", "--yesno", "Continue with the install?", "10", "50"],
        [(1.0, b"", "shown"), (0.6, b"\t", "moved"), (1.0, b"\r", "quit")],
    ),
    "whiptail_inputbox": (
        ["whiptail", "--inputbox", "Your name:", "10", "50", "vibe"],
        [(1.0, b"", "shown"), (0.6, b"box", "typed"), (1.0, b"\r", "quit")],
    ),
    "fzf": (
        ["sh", "-c", "seq 1 500 | fzf --height=100%"],
        [
            (1.2, b"", "opened"),
            (0.6, b"4", "filtered"),
            (0.6, b"2", "narrowed"),
            (0.6, b"\x1b[A", "moved"),
            (1.0, b"\r", "quit"),
        ],
    ),
    "fzf_inline": (
        ["sh", "-c", "seq 1 50 | fzf --height=10 --reverse --border"],
        [(1.2, b"", "opened"), (0.6, b"3", "filtered"), (1.0, b"\x1b", "quit")],
    ),
    "mc": (
        ["mc", "-u", "-X", "/tmp/vbx-rec/lsdir", "/tmp/vbx-rec"],
        [
            (3.0, b"", "opened"),
            (0.8, b"\x1bOB\x1bOB", "moved"),
            (0.8, b"\t", "other"),
            (1.0, b"\x1b[21~", "asked"),
            (1.0, b"\r", "quit"),
        ],
    ),
    "ncdu": (
        ["ncdu", "-x", "/tmp/vbx-rec"],
        [
            (1.5, b"", "scanned"),
            (0.6, b"j", "moved"),
            (0.6, b"?", "help"),
            (0.6, b"q", "back"),
            (1.0, b"q", "quit"),
        ],
    ),
    "w3m": (
        ["w3m", "-no-mouse", "/tmp/vbx-rec/page.html"],
        [(1.5, b"", "opened"), (0.6, b" ", "paged"), (0.6, b"q", "asked"), (1.0, b"y", "quit")],
    ),
    "lynx": (
        ["lynx", "-nopause", "-force_html", "/tmp/vbx-rec/page.html"],
        [
            (1.5, b"", "opened"),
            (0.6, b"\x1b[B", "moved"),
            (0.6, b" ", "paged"),
            (0.6, b"q", "asked"),
            (1.0, b"y", "quit"),
        ],
    ),
    "vttest_cursor": (
        ["vttest"],
        [
            (1.0, b"", "menu"),
            (1.0, b"1\r", "screen1"),
            (1.0, b"\r", "screen2"),
            (1.0, b"\r", "screen3"),
            (1.0, b"\r", "screen4"),
            (1.0, b"\r", "screen5"),
            (1.0, b"\r", "screen6"),
            (1.0, b"0\r", "back"),
            (1.0, b"0\r", "quit"),
        ],
    ),
    "vttest_screen": (
        ["vttest"],
        [
            (1.0, b"", "menu"),
            (1.0, b"2\r", "screen1"),
            (1.0, b"\r", "screen2"),
            (1.0, b"\r", "screen3"),
            (1.0, b"\r", "screen4"),
            (1.0, b"\r", "screen5"),
            (1.0, b"\r", "screen6"),
            (1.0, b"\r", "screen7"),
            (1.0, b"\r", "screen8"),
            (1.0, b"0\r", "back"),
            (1.0, b"0\r", "quit"),
        ],
    ),
    "vttest_charsets": (
        ["vttest"],
        [
            (1.0, b"", "menu"),
            (1.0, b"3\r", "charmenu"),
            (1.0, b"9\r", "screen1"),
            (1.0, b"\r", "back"),
            (1.0, b"0\r", "menu2"),
            (1.0, b"0\r", "quit"),
        ],
    ),
    "vttest_insert_delete": (
        ["vttest"],
        [
            (1.0, b"", "menu"),
            (1.0, b"8\r", "screen1"),
            (1.0, b"\r", "screen2"),
            (1.0, b"\r", "screen3"),
            (1.0, b"\r", "screen4"),
            (1.0, b"\r", "screen5"),
            (1.0, b"\r", "screen6"),
            (1.0, b"\r", "screen7"),
            (1.0, b"0\r", "quit"),
        ],
    ),
    "bash_readline": (
        ["bash", "--norc", "--noprofile", "-i"],
        [
            (1.0, b"", "prompt"),
            (0.5, b"echo hello world", "typed"),
            (0.5, b"\x1b[D\x1b[D\x1b[D\x1b[D\x1b[D\x1bbbig \x01# ", "edited"),
            (0.5, b"\r", "ran"),
            (0.5, b"\x1b[A\x05 again" + b" long" * 14, "history"),
            (0.5, b"\x15ls --color=always /tmp/vbx-rec/lsdir\r", "ls"),
            (0.5, b"exit\r", "quit"),
        ],
    ),
    "zsh_line_editor": (
        ["zsh", "-f", "-i"],
        [
            (1.0, b"", "prompt"),
            (0.5, b"echo one two three", "typed"),
            (0.5, b"\x1bb\x1bbX", "edited"),
            (0.5, b"\r", "ran"),
            (0.5, b"print -P '%F{red}red%f %B bold%b'\r", "prompt_colours"),
            (0.5, b"exit\r", "quit"),
        ],
    ),
    "python_repl": (
        [sys.executable, "-q", "-i"],
        [
            (1.0, b"", "prompt"),
            (0.5, b"print('\\u6f22\\u5b57', 6 * 7)\r", "printed"),
            (0.5, b"for i in range(3):\r", "block"),
            (0.5, b"    print(i)\r\r", "looped"),
            (0.5, b"\x1b[A\x1b[A", "history"),
            (0.5, b"\x03exit()\r", "quit"),
        ],
    ),
    "bc": (
        ["bc", "-q"],
        [(0.6, b"", "started"), (0.5, b"2^200\r", "computed"), (0.5, b"quit\r", "quit")],
    ),
    "tput_sequences": (
        [
            "sh",
            "-c",
            "tput clear; tput cup 2 4; tput bold; printf bold; tput sgr0; tput cup 3 4; "
            "tput setaf 1; tput setab 7; printf red-on-white; tput sgr0; tput cup 4 4; tput smul; "
            "printf underlined; tput rmul; tput cup 5 4; tput rev; printf reverse; tput sgr0; "
            "tput cup 6 0; printf 'abcdefghij'; tput cup 6 3; tput ech 2; tput cup 6 6; "
            "tput dch 1; "
            "tput cup 7 0; printf 0123456789; tput cup 7 2; tput ich 3; tput cup 8 0; "
            "printf 'to be erased'; tput cup 8 5; tput el; tput cup 10 0; tput csr 10 12; "
            "printf 'r1\\nr2\\nr3\\nr4\\nr5'; tput csr 0 23; tput cup 14 0; tput hpa 7; "
            "printf col8; tput cup 15 0; tput smacs; printf lqqqk; tput rmacs; tput cup 16 0; "
            "tput civis; printf hidden; tput cnorm; tput cup 17 0; tput init; printf after-init; "
            "tput cup 20 0",
        ],
        [(1.0, b"", "done")],
    ),
    "sl": (
        ["/usr/games/sl"],
        [(1.2, b"", "running"), (3.5, b"", "done")],
    ),
    "cmatrix": (
        ["cmatrix", "-b", "-u", "3"],
        [(1.5, b"", "running"), (1.0, b"q", "quit")],
    ),
    "pv_progress": (
        ["sh", "-c", "head -c 300000 /dev/zero | pv -p -t -e -r -b -L 150k -w 80 > /dev/null"],
        [(2.5, b"", "done")],
    ),
    "figlet_banner": (
        ["sh", "-c", "figlet -w 80 vibebox; figlet -w 80 -f small terminal"],
        [(0.8, b"", "done")],
    ),
}

# Environment for a recording beyond TERM/LANG (prompts that do not depend on the machine).
ENV: dict[str, dict[str, str]] = {
    "bash_readline": {"PS1": "vbx$ ", "HISTFILE": "/dev/null"},
    "zsh_line_editor": {"PS1": "%F{green}zsh%f%% ", "HISTFILE": "/dev/null"},
    "python_repl": {"PYTHONSTARTUP": ""},
    "tmux": {"PS1": "$ "},
    "screen": {"PS1": "$ "},
    "git_log_graph": {"LESS": "R"},
    "git_show_diff": {"LESS": "R"},
}


# Programs that wait for the answers to their queries.
ANSWERED = {
    "vttest_cursor",
    "vttest_screen",
    "vttest_charsets",
    "vttest_insert_delete",
    "fzf",
    "fzf_inline",
    "mc",
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
    (base / "colour.txt").write_text(
        "".join(
            f"\x1b[3{i % 8}mline {i:03d}\x1b[0m \x1b[1mbold\x1b[0m text\n" for i in range(1, 80)
        )
    )
    (base / "page.html").write_text(
        "<html><head><title>Test page</title></head><body><h1>Heading</h1>"
        "<p>A paragraph with <b>bold</b>, <i>italic</i> and a <a href='#x'>link</a>.</p>"
        "<ul>" + "".join(f"<li>item {i}</li>" for i in range(40)) + "</ul>"
        "<table border=1><tr><th>a</th><th>b</th></tr><tr><td>1</td><td>2</td></tr></table>"
        "<pre>  preformatted\n    text</pre></body></html>\n"
    )
    repo = base / "repo"
    if not repo.exists():
        git = ["git", "-C", str(repo), "-c", "user.name=Rec", "-c", "user.email=rec@example.org"]
        subprocess.run(["git", "init", "-q", "-b", "main", str(repo)], check=True)
        for i in range(1, 6):
            (repo / f"file{i}.txt").write_text(f"content {i}\n" * i)
            subprocess.run([*git, "add", "."], check=True)
            subprocess.run([*git, "commit", "-q", "-m", f"commit number {i}"], check=True)
            if i == 3:
                subprocess.run([*git, "checkout", "-q", "-b", "topic"], check=True)
        subprocess.run([*git, "checkout", "-q", "main"], check=True)
        (repo / "file1.txt").write_text("changed on main\n")
        subprocess.run([*git, "commit", "-q", "-am", "main changes file1"], check=True)
        subprocess.run([*git, "merge", "-q", "--no-ff", "-m", "merge topic", "topic"], check=True)


def record(name: str) -> None:
    argv, steps = SCRIPTS[name]
    pid, fd = pty.fork()
    if pid == 0:
        os.environ.update(TERM="xterm-256color", LANG="C.UTF-8", LC_ALL="C.UTF-8", COLUMNS="80")
        os.environ["LINES"] = "24"
        os.environ.update(ENV.get(name, {}))
        os.environ.pop("TMUX", None)
        os.environ.pop("STY", None)
        os.execvp(argv[0], argv)
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", ROWS, COLS, 0, 0))
    out = bytearray()
    marks: list[dict[str, object]] = []
    answer = None
    if name in ANSWERED:
        sys.path.insert(0, str(HERE.parents[2]))
        from vibebox_tui.terminal.vt.emulator import Emulator

        answer = Emulator(COLS, ROWS)

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
                if answer is not None:
                    answer.feed(chunk)
                    if replies := answer.take_replies():
                        os.write(fd, replies)
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
