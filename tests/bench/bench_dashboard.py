"""Benchmark: how fast the dashboard paints and gives a usable prompt (prints numbers).

Launches the dashboard in a pseudo-terminal (120x40, as a user's terminal would be) and
measures, from process start:

* first paint: the first frame holding the header;
* usable prompt: the guest's shell prompt drawn in the terminal area;

next to a raw asyncssh connect + command (``true``) to the same, already running session in
the same run. Targets: first paint <= 0.8 s; prompt <= 1.3x raw.

The dashboard gets its shell from the session's supervisor, which keeps one SSH connection to the
guest (:mod:`vibebox_core.supervisor.relay`), so it pays no key exchange; the raw numbers do. The
first run after the session booted may be slower (the guest is still settling): the medians are what
the targets are checked against, and every run is printed.

The raw numbers come twice: in this (warm) process, and from a fresh Python process timed
from its start like the dashboard is (interpreter start + imports + connect + command, or
a login shell in a PTY until its prompt, which is what the dashboard opens), so those
ratios compare like with like.

    # real stack, inside the lab (the session is started first and kept running meanwhile):
    ip netns exec vbxlab .venv/bin/python tests/bench/bench_dashboard.py /tmp/my-project
    # UI only (in-memory backend; no VM, no raw SSH number):
    .venv/bin/python tests/bench/bench_dashboard.py --demo
"""

from __future__ import annotations

import argparse
import asyncio
import fcntl
import os
import re
import select
import signal
import statistics
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

from vibebox_core.paths import ProjectPaths
from vibebox_core.ssh.connect import connect

REPO = Path(__file__).resolve().parents[2]
COLS, ROWS = 120, 40
ESCAPES = re.compile(rb"\x1b(?:\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)|[@-Z\\-_])")
HEADER = b"vibebox"
PROMPT = re.compile(rb"vibecoder@vibebox:[^$#\s]*[$#]")

# Plain `vibebox` in the project directory (the console script calls the same main()).
LAUNCH = """
import sys
from vibebox_cli.main import main
sys.exit(main({argv!r}))
"""


def visible(data: bytes) -> bytes:
    """Output with escape sequences removed (the text Textual drew)."""
    return ESCAPES.sub(b"", data)


def launch_once(directory: str, demo: bool, timeout: float) -> tuple[float, float]:
    """Start the dashboard in a PTY; return (first paint, prompt) in seconds from start."""
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", ROWS, COLS, 0, 0))
    env = dict(os.environ, TERM="xterm-256color", COLORTERM="truecolor")
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    code = LAUNCH.format(argv=["attach", "--demo"] if demo else [])
    start = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, "-c", code],
        stdin=slave,
        stdout=slave,
        stderr=slave,
        cwd=directory if not demo else str(REPO),
        env=env,
        start_new_session=True,
    )
    os.close(slave)
    seen = b""
    first_paint = prompt = float("nan")
    try:
        while time.monotonic() - start < timeout:
            ready, _, _ = select.select([master], [], [], 0.05)
            if not ready:
                if proc.poll() is not None:
                    break
                continue
            try:
                chunk = os.read(master, 65536)
            except OSError:
                break
            seen += visible(chunk)
            now = time.monotonic() - start
            if first_paint != first_paint and HEADER in seen:
                first_paint = now
            if PROMPT.search(seen):
                prompt = now
                break
        # Leave as a user would: focus out of the terminal, then q (detaches; the VM stays up).
        os.write(master, b"\x1c")
        time.sleep(0.2)
        os.write(master, b"q")
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=10)
    finally:
        os.close(master)
    return first_paint, prompt


async def raw_ssh(directory: str) -> float:
    """asyncssh connect + ``true`` on the session, with vibebox's keys (seconds)."""
    project = ProjectPaths.for_directory(directory)
    ipv4 = project.ipv4.read_text().strip()
    start = time.monotonic()
    conn = await connect(project, ipv4)
    try:
        await conn.run("true", check=True)
    finally:
        conn.close()
    return time.monotonic() - start


async def raw_shell(directory: str) -> float:
    """asyncssh connect + a login shell in a PTY until its prompt shows (seconds)."""
    project = ProjectPaths.for_directory(directory)
    ipv4 = project.ipv4.read_text().strip()
    start = time.monotonic()
    conn = await connect(project, ipv4)
    try:
        process = await conn.create_process(
            term_type="xterm-256color", term_size=(COLS - 36, ROWS - 2), encoding=None
        )
        seen = b""
        while not PROMPT.search(visible(seen)):
            chunk = await process.stdout.read(65536)
            if not chunk:
                raise SystemExit("the guest shell ended before its prompt")
            seen += chunk
        elapsed = time.monotonic() - start
        process.close()
    finally:
        conn.close()
    return elapsed


# Raw baseline timed the way the dashboard is: a fresh interpreter, from process start.
FRESH_RAW = """
import asyncio, sys, time
from vibebox_core.ssh.connect import connect
from vibebox_core.paths import ProjectPaths

async def raw():
    project = ProjectPaths.for_directory({directory!r})
    conn = await connect(project, project.ipv4.read_text().strip())
    try:
        if not {shell!r}:
            await conn.run("true", check=True)
            return time.monotonic()
        import re
        escapes, prompt = re.compile({escapes!r}), re.compile({prompt!r})
        process = await conn.create_process(
            term_type="xterm-256color", term_size=({cols!r}, {rows!r}), encoding=None
        )
        seen = b""
        while not prompt.search(escapes.sub(b"", seen)):
            chunk = await process.stdout.read(65536)
            if not chunk:
                raise SystemExit("the guest shell ended before its prompt")
            seen += chunk
        done = time.monotonic()
        process.close()
        return done
    finally:
        conn.close()

print(repr(asyncio.run(raw())), flush=True)
"""


def fresh_raw_ssh(directory: str, shell: bool = False) -> float:
    """A new Python process doing asyncssh connect + ``true`` (``shell``: a login shell in a
    PTY until its prompt, as the dashboard opens), seconds from its start."""
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    code = FRESH_RAW.format(
        directory=directory,
        shell=shell,
        escapes=ESCAPES.pattern,
        prompt=PROMPT.pattern,
        cols=COLS - 36,
        rows=ROWS - 2,
    )
    start = time.monotonic()
    out = subprocess.run(
        [sys.executable, "-c", code],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
        check=True,
        timeout=60,
    ).stdout
    return float(out.strip().splitlines()[-1]) - start


HOLDER = """
import asyncio, sys
from vibebox_core.paths import ProjectPaths
from vibebox_core.session.start import ensure_running

async def hold():
    project = ProjectPaths.for_directory({directory!r})
    session = await ensure_running(project, client="bench holder")
    print("ready", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    await session.close()

asyncio.run(hold())
"""


def start_holder(directory: str) -> subprocess.Popen[str]:
    """Keep the session running (attached) for the whole run, starting it when needed."""
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER.format(directory=directory)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert holder.stdout is not None
    if holder.stdout.readline().strip() != "ready":
        holder.kill()
        raise SystemExit("could not start or attach to the session (see the error above)")
    return holder


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "directory", nargs="?", help="project directory (its session is started and kept up)"
    )
    parser.add_argument("--demo", action="store_true", help="fake backend: UI numbers only")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--timeout", type=float, default=60.0)
    args = parser.parse_args()
    if not args.demo and not args.directory:
        parser.error("give a project directory whose session runs, or --demo")
    directory = str(Path(args.directory or REPO).resolve())
    paints: list[float] = []
    prompts: list[float] = []
    raws: list[float] = []
    shells: list[float] = []
    fresh: list[float] = []
    fresh_shells: list[float] = []
    holder = None if args.demo else start_holder(directory)
    try:
        for _ in range(args.runs):
            paint, prompt = launch_once(directory, args.demo, args.timeout)
            paints.append(paint)
            prompts.append(prompt)
            if not args.demo:
                raws.append(asyncio.run(raw_ssh(directory)))
                shells.append(asyncio.run(raw_shell(directory)))
                fresh.append(fresh_raw_ssh(directory))
                fresh_shells.append(fresh_raw_ssh(directory, shell=True))
    finally:
        if holder is not None:
            assert holder.stdin is not None
            holder.stdin.close()  # the holder detaches; the VM stays up for its grace period
            holder.wait(timeout=30)
    med = statistics.median
    print(
        f"dashboard ({'fake backend' if args.demo else directory}), {COLS}x{ROWS}, "
        f"{args.runs} runs, median (all runs)"
    )
    fmt = ", ".join
    print(
        f"  first paint      {med(paints):6.3f} s  ({fmt(f'{p:.3f}' for p in paints)})"
        f"  target <= 0.8 s"
    )
    print(f"  usable prompt    {med(prompts):6.3f} s  ({fmt(f'{p:.3f}' for p in prompts)})")
    if raws:
        print(
            f"  raw asyncssh     {med(raws):6.3f} s  ({fmt(f'{r:.3f}' for r in raws)})"
            "  connect + `true`"
        )
        print(
            f"  raw shell        {med(shells):6.3f} s  ({fmt(f'{r:.3f}' for r in shells)})"
            "  connect + login shell in a PTY until its prompt"
        )
        print(
            f"  raw fresh proc   {med(fresh):6.3f} s  ({fmt(f'{r:.3f}' for r in fresh)})"
            "  new python process: start + imports + connect + `true`"
        )
        print(
            f"  fresh shell      {med(fresh_shells):6.3f} s  "
            f"({fmt(f'{r:.3f}' for r in fresh_shells)})"
            "  new python process: start + imports + connect + login shell until its prompt"
        )
        print(f"  prompt / raw     {med(prompts) / med(raws):6.2f} x   target <= 1.3 x")
        print(f"  prompt / shell   {med(prompts) / med(shells):6.2f} x")
        print(
            f"  prompt / fresh   {med(prompts) / med(fresh):6.2f} x   "
            "(like for like: both from process start)"
        )
        print(f"  prompt / fresh shell {med(prompts) / med(fresh_shells):6.2f} x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
