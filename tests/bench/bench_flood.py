"""Flood benchmark on the real stack: the dashboard next to tmux + OpenSSH (prints numbers).

One private tmux server (its own socket, no user config) holds two 120x40 windows on the same
running session of one project:

* ``dash``: the real dashboard (``vibebox`` in the project directory);
* ``ssh``: plain OpenSSH into the same guest, with the session's key and pinned known-hosts
  (the command ``vibebox shell`` runs).

A 4 MB coloured file (log lines with 16-colour, 256-colour and truecolor SGR spans, the stream
of ``bench_terminal.py``) is copied to the guest's ``/tmp`` once. Each round types
``cat FILE; echo MARK`` into each window in turn (interleaved) and times Enter -> the marker
visible on tmux's screen (``capture-pane``, polled). Then, while a guest program floods rows
2..N with the same file, keys are sent to each window and the time until its echo on row 1 is
drawn is taken from tmux's control-mode output (the bytes the dashboard, or ssh, wrote),
the sides taking turns in blocks; p50/p95. One more echo side has no terminal at all: the same
program through ``ssh -tt`` whose output this script reads and throws away, so what it measures
is the guest's own part of an echo (sshd under TCG, the network, the ssh client; a terminal
that takes output slower than the guest makes it adds the flood that queues up in front of the
echo meanwhile): the floor under every terminal's number. Last, the dashboard's resident memory
(now and peak).

Each timed ``cat`` also takes the CPU time (user + system, all threads) that every process on
its path spent meanwhile: the dashboard, the session's supervisor, QEMU (the guest), the tmux
server and, on the other side, the ``ssh`` client; the medians per ``cat`` show where a
flood's time goes. With ``--baseline CHECKOUT`` a third window runs that checkout's dashboard
(on the same session and supervisor), interleaved with the other two: an old and a new
dashboard compared under the same load, which on a shared machine varies more between runs
than the change being measured.

With ``--trace`` every dashboard's echoes are also timed hop by hop (the session is stopped
first and comes up traced): when its input thread sent the key, when the supervisor wrote it
to the guest and read the echo back, when the dashboard's IO thread had it, the parser took
it, and the frame drawing it was written (:mod:`bench.echo_trace.sitecustomize`, which
changes nothing in vibebox; it wraps the functions on those hops from outside): where an
echo's time goes, the guest or this side.

Targets: dashboard / ssh <= 1.2x, echo p95 <= 30 ms, RSS <= 80 MB.

The session is up before the dashboards start, and the memory printed is that of a dashboard
attached to a running session; with ``--cold`` the session is stopped first and the dashboard
boots the VM itself (the supervisor then waits for the guest's SSH, so the dashboard loads no
SSH library either way; before it did, it held a connection of its own: 85 MB at the first
prompt). Every dashboard's terminal comes through the supervisor's relay.

    # inside the lab; the session is started (or attached) and kept up meanwhile:
    ip netns exec vbxlab env VIBEBOX_ACCEL=tcg .venv/bin/python tests/bench/bench_flood.py \
        /tmp/my-project [--rounds 5] [--mb 4] [--presses 60] [--baseline /tmp/old-checkout] \
        [--cold] [--trace]
"""

from __future__ import annotations

import argparse
import os
import random
import re
import select
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/: the helpers' import root
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from bench.bench_dashboard import LAUNCH, PROMPT, REPO, start_holder
from bench.bench_terminal import make_stream
from bench.echo_trace import sitecustomize as echo_trace

from vibebox_core.paths import ProjectPaths
from vibebox_core.ssh import openssh

COLS, ROWS = 120, 40
GUEST_FILE = "/tmp/vbx-flood.txt"
GUEST_ECHO = "/tmp/vbx-echo.py"
POLL = 0.02
"""Seconds between two looks at a window's screen (the same for both sides)."""
T = TypeVar("T")
ECHO_BLOCKS = 3
"""The keys timed during a flood go to the sides in this many interleaved blocks."""
FLOOR = "floor"
"""The echo side with no terminal: ``ssh -tt`` read by the benchmark (:func:`echo_floor`)."""
TRACE_DIR = Path(echo_trace.__file__).parent
"""Put first on ``PYTHONPATH`` with ``--trace``: its ``sitecustomize`` times every hop."""

# Runs in the guest: floods rows 2..N with the file (as fast as the PTY takes it) and, for
# every key read, draws "ECHO-<count>" on row 1 at once; "!" ends it.
ECHO_PROGRAM = r"""
import os, select, sys, termios, tty
fd = sys.stdin.fileno()
out = sys.stdout.buffer
rows = os.get_terminal_size().lines
lines = open(sys.argv[1], "rb").read().splitlines(keepends=True)
saved = termios.tcgetattr(fd)
tty.setraw(fd)
out.write(b"\x1b[2J\x1b[2;%dr\x1b[%d;1H" % (rows, rows))
count = index = 0
try:
    while True:
        if select.select([fd], [], [], 0)[0]:
            data = os.read(fd, 256)
            if b"!" in data:
                break
            for _ in data:
                count += 1
                out.write(b"\x1b7\x1b[1;1H\x1b[2KECHO-%05d\x1b8" % count)
        out.write(b"".join(lines[index : index + 20]))
        index = (index + 20) % len(lines)
        out.flush()
finally:
    out.write(b"\x1b[r\x1b[2J\x1b[H\x1b[0m")
    out.flush()
    termios.tcsetattr(fd, termios.TCSADRAIN, saved)
"""


class Tmux:
    """A private tmux server: ``tmux -L NAME -f /dev/null ...``."""

    def __init__(self) -> None:
        self.socket = f"vbxflood-{os.getpid()}"

    def argv(self, *args: str) -> list[str]:
        return ["tmux", "-L", self.socket, "-f", "/dev/null", *args]

    def run(self, *args: str) -> str:
        return subprocess.run(
            self.argv(*args), check=True, stdout=subprocess.PIPE, text=True, timeout=30
        ).stdout

    def start(self, name: str, command: str) -> None:
        """A detached session ``name`` of COLS x ROWS running ``command``."""
        self.run("new-session", "-d", "-s", name, "-x", str(COLS), "-y", str(ROWS), command)
        self.run("set-option", "-t", name, "window-size", "manual")
        self.run("set-option", "-t", name, "remain-on-exit", "on")

    def screen(self, name: str) -> str:
        return self.run("capture-pane", "-p", "-t", name)

    def type(self, name: str, text: str) -> None:
        self.run("send-keys", "-t", name, "-l", text)

    def key(self, name: str, key: str) -> None:
        self.run("send-keys", "-t", name, key)

    def pane_pid(self, name: str) -> int:
        return int(self.run("display-message", "-p", "-t", name, "#{pane_pid}").strip())

    def kill(self) -> None:
        subprocess.run(self.argv("kill-server"), stderr=subprocess.DEVNULL, check=False)

    def wait_for(self, name: str, found: re.Pattern[str] | str, timeout: float) -> float:
        """Poll ``name``'s screen until ``found`` shows; the time it showed (monotonic)."""
        deadline = time.monotonic() + timeout
        while True:
            text = self.screen(name)
            now = time.monotonic()
            hit = found.search(text) if isinstance(found, re.Pattern) else found in text
            if hit:
                return now
            if now > deadline:
                tail = "\n".join(text.rstrip().splitlines()[-5:])
                raise SystemExit(f"{name}: {found!r} did not show within {timeout:.0f} s:\n{tail}")
            time.sleep(POLL)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of ``pid`` (all its threads) so far; 0 once it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def qemu_pid(directory: str) -> int | None:
    """The QEMU process of the session of ``directory`` (its domain is named after it)."""
    name = f"guest=vibebox-{Path(directory).name}-".encode()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if b"qemu-system" in cmdline and name in cmdline:
                return int(entry.name)
    return None


class CpuMeter:
    """CPU seconds each watched process spends during a timed section, per side."""

    def __init__(self, pids: dict[str, int | None]) -> None:
        self.pids = {label: pid for label, pid in pids.items() if pid}
        self.samples: dict[str, dict[str, list[float]]] = {}
        self.walls: dict[str, float] = {}  # seconds the sections of each side took

    def measure(self, side: str, run: Callable[..., T], *args: Any) -> T:
        """``run(*args)``, with the CPU time of every process during it taken for ``side``."""
        before = {label: cpu_seconds(pid) for label, pid in self.pids.items()}
        start = time.monotonic()
        result = run(*args)
        self.walls[side] = self.walls.get(side, 0.0) + time.monotonic() - start
        taken = self.samples.setdefault(side, {})
        for label, pid in self.pids.items():
            taken.setdefault(label, []).append(cpu_seconds(pid) - before[label])
        return result

    def report(self) -> list[str]:
        """Per side, each process's median CPU seconds per section."""
        return self._lines(lambda side, values: statistics.median(values))

    def report_cores(self) -> list[str]:
        """Per side, the cores each process kept busy over all its sections (CPU / wall)."""
        return self._lines(lambda side, values: sum(values) / max(self.walls[side], 1e-9))

    def _lines(self, value: Callable[[str, list[float]], float]) -> list[str]:
        lines = []
        for side, taken in self.samples.items():
            parts = ", ".join(f"{label} {value(side, v):.2f}" for label, v in taken.items())
            lines.append(f"  {side:<18}  {parts}")
        return lines


def guest_ssh(directory: str, *extra: str) -> list[str]:
    """``vibebox shell``'s OpenSSH command line for the session of ``directory``."""
    project = ProjectPaths.for_directory(directory)
    ipv4 = project.recorded_ipv4()
    if ipv4 is None:
        raise SystemExit(f"the session of {directory} has no recorded address")
    return openssh.openssh_argv(project, ipv4, *extra)


def stage(ssh_argv: list[str], mb: float) -> None:
    """Copy the flood file and the echo program to the guest's /tmp."""
    data = make_stream(int(mb * 1e6))
    data = data[: data.rfind(b"\n") + 1]  # whole lines: no escape sequence cut at the end
    for path, payload in ((GUEST_FILE, data), (GUEST_ECHO, ECHO_PROGRAM.encode())):
        subprocess.run([*ssh_argv, f"cat > {path}"], input=payload, check=True, timeout=120)
    sgr = data.count(b"\x1b[")
    print(f"flood file: {len(data) / 1e6:.1f} MB, {sgr} SGR sequences")


def time_cat(tmux: Tmux, name: str, number: int, timeout: float) -> float:
    """Enter -> the end marker of ``cat FILE`` visible in window ``name`` (seconds)."""
    tag = f"FLOOD{os.getpid()}"
    tmux.type(name, f"cat {GUEST_FILE}; echo {tag}-$(({number}))-END")
    tmux.wait_for(name, f"$(({number}))-END", 30)  # the command line is drawn
    start = time.monotonic()
    tmux.key(name, "Enter")
    end = tmux.wait_for(name, f"{tag}-{number}-END", timeout)
    tmux.type(name, "clear")
    tmux.key(name, "Enter")
    return end - start


_OUTPUT = re.compile(rb"^%output %\d+ (.*)$")
_OCTAL = re.compile(rb"\\([0-7]{3})")


def time_echoes(
    send: Callable[[bytes], None],
    out: int,
    written: Callable[[bytes], list[bytes]],
    presses: int,
    settle: float = 0.5,
    ahead: list[int] | None = None,
) -> list[float]:
    """Send ``x`` ``presses`` times; seconds until each key's echo shows in what ``out`` gives.

    ``written`` turns what was read from ``out`` into the bytes the side wrote (whole pieces,
    in order); ``send`` types one key. ``out`` is read for ``settle`` seconds before the first
    key; ``!`` ends the flood afterwards. ``ahead`` gets, for each echo seen, how many bytes
    came between the key and its echo.
    """
    os.set_blocking(out, False)
    seen = b""
    passed = 0  # bytes looked through since the key
    rnd = random.Random(11)
    latencies: list[float] = []

    def drain(until: float, marker: bytes | None) -> float | None:
        nonlocal seen, passed
        while True:
            now = time.monotonic()
            if now >= until:
                return None
            ready, _, _ = select.select([out], [], [], until - now)
            if not ready:
                return None
            chunk = os.read(out, 1 << 20)
            if not chunk:
                return None
            for piece in written(chunk):
                # The marker is looked for in each write as it comes (with the end of the one
                # before, which may hold its start): a frame longer than what is kept would
                # push a marker near its start out before it was looked at.
                kept = len(seen[-32:])
                seen = seen[-32:] + piece
                if marker is not None and marker in seen:
                    if ahead is not None:
                        ahead.append(passed + seen.index(marker) - kept)
                    return time.monotonic()
                passed += len(piece)

    drain(time.monotonic() + settle, None)
    for number in range(1, presses + 1):
        seen = b""
        passed = 0
        marker = b"ECHO-%05d" % number
        echo_trace.note("send", marker)
        send(b"x")
        sent = time.monotonic()
        shown = drain(sent + 2.0, marker)
        if shown is not None:
            echo_trace.note("seen", marker)
        latencies.append((shown if shown is not None else sent + 2.0) - sent)
        drain(time.monotonic() + rnd.uniform(0.05, 0.15), None)
    send(b"!")
    drain(time.monotonic() + 0.5, None)
    return latencies


def echo_latency(tmux: Tmux, name: str, presses: int) -> list[float]:
    """Keys typed while the guest floods; seconds until window ``name`` draws each echo.

    What the window wrote comes from tmux's control mode (``%output`` lines).
    """
    tmux.type(name, f"python3 {GUEST_ECHO} {GUEST_FILE}")
    tmux.key(name, "Enter")
    time.sleep(3.0)  # the flood is under way
    control = subprocess.Popen(
        tmux.argv("-C", "attach", "-t", name),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    assert control.stdin is not None and control.stdout is not None
    stdin = control.stdin
    buffer = b""

    def send(key: bytes) -> None:
        stdin.write(f"send-keys -t {name} -l {key.decode()}\n".encode())
        stdin.flush()

    def written(chunk: bytes) -> list[bytes]:
        nonlocal buffer
        buffer += chunk
        *lines, buffer = buffer.split(b"\n")
        matches = (_OUTPUT.match(line) for line in lines)
        return [_OCTAL.sub(b"", match.group(1)) for match in matches if match]

    try:
        return time_echoes(send, control.stdout.fileno(), written, presses)
    finally:
        stdin.close()
        control.wait(timeout=10)


def echo_floor(directory: str, presses: int, ahead: list[int] | None = None) -> list[float]:
    """The same keys and flood with no terminal at all: OpenSSH's output read by this script.

    ``ssh -tt`` with pipes on both ends: the guest program still writes to a PTY (120x40),
    its bytes come through sshd, the network and the ssh client, and nothing parses or draws
    them. What is left is the guest's own part of an echo (the guest program, its PTY and sshd
    under TCG): a floor no terminal on this machine can go under.
    """
    remote = f"stty cols {COLS} rows {ROWS} && exec python3 {GUEST_ECHO} {GUEST_FILE}"
    child = subprocess.Popen(
        [*guest_ssh(directory, "-tt"), remote],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    assert child.stdin is not None and child.stdout is not None
    stdin = child.stdin

    def send(key: bytes) -> None:
        stdin.write(key)
        stdin.flush()

    try:  # read for 3 s first: the flood under way, as on the other sides
        return time_echoes(send, child.stdout.fileno(), lambda chunk: [chunk], presses, 3.0, ahead)
    finally:
        stdin.close()
        try:
            child.wait(timeout=10)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()


def rss(pid: int) -> tuple[float, float]:
    """(current, peak) resident memory of ``pid`` in MB."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        fields[key] = value.strip()
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, int(len(ordered) * fraction + 0.5) - 1)]


def start_dashboard(
    tmux: Tmux, name: str, directory: str, repo: Path, trace: str | None = None
) -> None:
    """Window ``name``: the dashboard of the checkout ``repo`` in ``directory``; with
    ``trace``, its hops go to that file (:mod:`bench.echo_trace.sitecustomize`)."""
    env = {"TERM": "xterm-256color", "COLORTERM": "truecolor", "PYTHONPATH": str(repo)}
    if trace is not None:
        env.update({"PYTHONPATH": f"{TRACE_DIR}{os.pathsep}{repo}", echo_trace.ENV: trace})
    exports = " ".join(f"{k}={shlex.quote(v)}" for k, v in env.items())
    code = LAUNCH.format(argv=[])
    tmux.start(
        name,
        f"cd {shlex.quote(directory)} && exec env {exports} "
        f"{shlex.quote(sys.executable)} -c {shlex.quote(code)}",
    )


def stop_session(directory: str) -> None:
    """``vibebox stop`` in ``directory`` (the VM shut down, the supervisor gone); a directory
    with no session yet has nothing to stop."""
    argv = [sys.executable, "-m", "vibebox_cli.main", "stop"]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run(
        argv,
        cwd=directory,
        env=env,
        timeout=180,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    if done.returncode and "has no session" not in done.stderr:
        sys.stderr.write(done.stderr)
        raise subprocess.CalledProcessError(done.returncode, argv)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("directory", help="project directory (its session is started and kept up)")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved timed rounds")
    parser.add_argument("--mb", type=float, default=4.0, help="flood file size in MB")
    parser.add_argument("--presses", type=int, default=60, help="keys timed during the flood")
    parser.add_argument("--timeout", type=float, default=120.0)
    parser.add_argument(
        "--baseline",
        type=Path,
        help="another vibebox checkout: its dashboard runs as a third window, interleaved "
        "(an old and a new dashboard compared under the same load; the supervisor is shared)",
    )
    parser.add_argument(
        "--cold",
        action="store_true",
        help="stop the session first: the dashboard boots the VM (its memory is that of a "
        "dashboard that did)",
    )
    parser.add_argument(
        "--trace",
        action="store_true",
        help="also time each echo at every hop (input thread, supervisor, IO thread, parser, "
        "frame written): the session is stopped first, so its supervisor starts traced",
    )
    args = parser.parse_args()
    directory = str(Path(args.directory).resolve())
    trace: str | None = None
    if args.cold or args.trace:
        stop_session(directory)
    if args.trace:
        trace = str(Path(tempfile.mkdtemp(prefix="vbx-echo-trace-")) / "hops")
        echo_trace.open_trace(trace)
        # The holder starts the session's supervisor, which keeps this environment.
        os.environ[echo_trace.ENV] = trace
        os.environ["PYTHONPATH"] = os.pathsep.join(
            p for p in (str(TRACE_DIR), os.environ.get("PYTHONPATH", "")) if p
        )
    # (window, label): the dashboards first, then the plain side.
    sides = [("dash", "dashboard in tmux")]
    if args.baseline is not None:
        sides.append(("base", "baseline dashboard"))
    sides.append(("ssh", "tmux + OpenSSH"))
    labels = dict(sides)
    dashboards = [name for name, _ in sides if name != "ssh"]
    tmux = Tmux()
    if args.cold:  # the dashboard boots the VM, before anything else attaches
        start_dashboard(tmux, "dash", directory, REPO, trace)
        try:
            tmux.wait_for("dash", re.compile(PROMPT.pattern.decode()), 300)
        except BaseException:
            tmux.kill()
            raise
    holder = start_holder(directory)
    times: dict[str, list[float]] = {name: [] for name, _ in sides}
    echoes: dict[str, list[float]] = {}
    floor_ahead: list[int] = []  # bytes between a key and its echo, no terminal
    memory: dict[str, tuple[float, float, float]] = {}
    try:
        ssh_argv = guest_ssh(directory)
        stage(ssh_argv, args.mb)
        if not args.cold:
            start_dashboard(tmux, "dash", directory, REPO, trace)
        if args.baseline is not None:
            start_dashboard(tmux, "base", directory, args.baseline.resolve(), trace)
        shell = guest_ssh(directory, "-t")  # what `vibebox shell` runs
        tmux.start("ssh", f"exec env TERM=xterm-256color {shlex.join(shell)}")
        for name, _ in sides:
            tmux.wait_for(name, re.compile(PROMPT.pattern.decode()), 90)
        supervisor = ProjectPaths.for_directory(directory).supervisor_pid.read_text().split()
        tmux_server = int(tmux.run("display-message", "-p", "#{pid}").strip())
        pids: dict[str, int | None] = {labels[name]: tmux.pane_pid(name) for name in dashboards}
        pids.update(
            {
                "supervisor": int(supervisor[0]) if supervisor else None,
                "qemu": qemu_pid(directory),
                "tmux": tmux_server,
                "ssh": tmux.pane_pid("ssh"),
            }
        )
        meter = CpuMeter(pids)
        echo_meter = CpuMeter(pids)
        started = {name: rss(tmux.pane_pid(name))[0] for name in dashboards}
        # One untimed round each: the file in the guest's page cache, every path warm.
        for name, _ in sides:
            time_cat(tmux, name, 0, args.timeout)
        for number in range(1, args.rounds + 1):
            shift = number % len(sides)
            for name, label in sides[shift:] + sides[:shift]:
                seconds = meter.measure(label, time_cat, tmux, name, number, args.timeout)
                times[name].append(seconds)
        # The keys too go to the sides in turn, a block each (the flood restarted for each),
        # so a slow spell of the machine falls on every side alike.
        # The floor (no terminal) takes its turn among them.
        turns = [name for name, _ in sides] + [FLOOR]
        blocks = max(1, min(ECHO_BLOCKS, args.presses))
        for block in range(blocks):
            presses = args.presses // blocks + (block < args.presses % blocks)
            shift = block % len(turns)
            for name in turns[shift:] + turns[:shift]:
                echo_trace.note("side", name.encode())
                label = labels.get(name, "no terminal (floor)")
                if name == FLOOR:
                    found = echo_meter.measure(label, echo_floor, directory, presses, floor_ahead)
                else:
                    found = echo_meter.measure(label, echo_latency, tmux, name, presses)
                echoes.setdefault(name, []).extend(x * 1000 for x in found)
        for name in dashboards:
            now, peak = rss(tmux.pane_pid(name))
            memory[name] = (started[name], now, peak)
            tmux.key(name, "C-\\")
            time.sleep(0.2)
            tmux.type(name, "q")
    finally:
        tmux.kill()
        assert holder.stdin is not None
        holder.stdin.close()
        holder.wait(timeout=30)
    med = statistics.median
    fmt = ", ".join
    plain = med(times["ssh"])
    print(f"{args.mb:.0f} MB coloured cat, {COLS}x{ROWS} tmux windows, {args.rounds} rounds:")
    for name, label in sides:
        values = times[name]
        print(f"  {label:<19} {med(values):6.3f} s  ({fmt(f'{x:.3f}' for x in values)})")
    for name in dashboards:
        ratio = med(times[name]) / plain
        print(f"  ratio {labels[name]:<13} {ratio:6.2f} x   target <= 1.2 x")
    print("CPU seconds per cat (median), by process:")
    for line in meter.report():
        print(line)
    print("CPU cores busy while the keys were timed (CPU seconds / wall seconds), by process:")
    for line in echo_meter.report_cores():
        print(line)
    print(f"keystroke echo during a flood ({args.presses} keys each):")
    for name, label in [*sides, (FLOOR, "no terminal (floor)")]:
        values = echoes[name]
        target = "   target p95 <= 30 ms" if name in dashboards else ""
        unseen = sum(1 for value in values if value >= 2000)
        print(
            f"  {label:<19} p50 {med(values):6.1f} ms, p95 {percentile(values, 0.95):6.1f} ms, "
            f"max {max(values):6.1f} ms{target}"
            + (f"   ({unseen} not seen within 2 s, counted as 2 s)" if unseen else "")
        )
    if trace is not None:
        for name in dashboards:
            print(f"{labels[name]}: each echo's delay after its key, hop by hop ({trace}):")
            traced = echo_trace.echoes(trace, name)
            for hop in echo_trace.HOPS:
                values = [echo.delays[hop] for echo in traced if hop in echo.delays]
                if values:
                    print(
                        f"  {hop:<8} p50 {med(values):6.1f} ms, p95 "
                        f"{percentile(values, 0.95):6.1f} ms  ({len(values)} echoes)"
                    )
            ahead = [echo.ahead / 1000 for echo in traced if echo.ahead is not None]
            if ahead:
                print(
                    f"  output the supervisor read between the key and its echo: p50 "
                    f"{med(ahead):.1f} KB, p95 {percentile(ahead, 0.95):.1f} KB"
                )
            else:
                print("  (no supervisor hops: the supervisor was not started by this run)")
        if floor_ahead:
            kb = [value / 1000 for value in floor_ahead]
            print(
                f"no terminal (floor): output between the key and its echo: p50 {med(kb):.1f} "
                f"KB, p95 {percentile(kb, 0.95):.1f} KB"
            )
    for name in dashboards:
        started_mb, now, peak = memory[name]
        how = "booted the VM itself" if args.cold and name == "dash" else "attached to it running"
        print(
            f"{labels[name]} RSS ({how}): {started_mb:.0f} MB at the "
            f"first prompt, {now:.0f} MB after "
            f"the floods, {peak:.0f} MB peak   target <= 80 MB"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
