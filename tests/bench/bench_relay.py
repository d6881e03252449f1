"""Relay benchmark on the real stack: the supervisor's terminal relay next to OpenSSH (prints
numbers).

Both sides read the guest's output and throw it away, so no terminal's parsing or painting
counts, only the path the bytes take:

* ``relay``: a login shell opened by the session's supervisor, read over its UNIX socket (what
  the dashboard's terminal reads; the supervisor holds the SSH connection);
* ``openssh``: ``ssh -tt`` into the same guest with the session's key (what ``vibebox shell``
  runs), read from its PTY.

Each round times ``cat FILE; echo MARK`` (the 4 MB coloured file of ``bench_flood.py``) on each
side in turn, Enter -> the marker read, and takes the CPU time QEMU (the guest) spent meanwhile.
The ratio is what the relay costs a flood before the dashboard does anything with it.

    ip netns exec vbxlab env VIBEBOX_ACCEL=tcg .venv/bin/python tests/bench/bench_relay.py \\
        /tmp/my-project [--rounds 6] [--mb 4]
"""

from __future__ import annotations

import argparse
import asyncio
import fcntl
import os
import pty
import statistics
import struct
import sys
import termios
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/: the helpers' import root
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from bench.bench_dashboard import start_holder
from bench.bench_flood import COLS, GUEST_FILE, ROWS, cpu_seconds, guest_ssh, qemu_pid, stage

from vibebox_core import paths
from vibebox_core.paths import ProjectPaths
from vibebox_core.supervisor.relay import RelayPtyStream

READY = "stty -echo; echo READ$((1))Y\r"


def command(number: int) -> bytes:
    return f"cat {GUEST_FILE}; echo X-$(({number}))-END\r".encode()


def marker(number: int) -> bytes:
    return f"X-{number}-END".encode()


class OpenSSHSide:
    """``ssh -tt`` in a PTY of COLS x ROWS, read with blocking reads."""

    def __init__(self, argv: list[str]) -> None:
        pid, fd = pty.fork()
        if pid == 0:
            os.execvp(argv[0], [argv[0], "-tt", *argv[1:]])
        fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", ROWS, COLS, 0, 0))
        self.pid, self.fd = pid, fd

    def run(self, data: bytes, until: bytes, timeout: float) -> None:
        os.write(self.fd, data)
        seen, deadline = b"", time.monotonic() + timeout
        while until not in seen:
            if time.monotonic() > deadline:
                raise SystemExit(f"openssh: {until!r} did not come within {timeout:.0f} s")
            seen = (seen + os.read(self.fd, 1 << 16))[-4096:]

    def close(self) -> None:
        os.kill(self.pid, 9)
        os.waitpid(self.pid, 0)


async def relay_run(stream: RelayPtyStream, data: bytes, until: bytes, timeout: float) -> None:
    await stream.write(data)
    seen, deadline = b"", time.monotonic() + timeout
    while until not in seen:
        chunk = await asyncio.wait_for(stream.read(), max(0.1, deadline - time.monotonic()))
        if not chunk:
            raise SystemExit("relay: the stream ended")
        seen = (seen + chunk)[-4096:]


async def measure(directory: str, rounds: int, timeout: float) -> dict[str, list[float]]:
    project = ProjectPaths.for_directory(directory)
    socket_path = paths.supervisor_socket_path(project.session_id.read_text().strip())
    stream = await RelayPtyStream.open(socket_path, COLS, ROWS)
    ssh = OpenSSHSide(guest_ssh(directory))
    qemu = qemu_pid(directory)
    taken: dict[str, list[float]] = {"relay": [], "openssh": [], "relay qemu": [], "ssh qemu": []}
    try:
        await relay_run(stream, READY.encode(), b"READ1Y", timeout)
        ssh.run(READY.encode(), b"READ1Y", timeout)
        for number in range(rounds + 1):  # round 0: the file in the page cache, paths warm
            sides = [("relay", True), ("openssh", False)]
            for label, is_relay in sides if number % 2 else sides[::-1]:
                cpu, start = cpu_seconds(qemu) if qemu else 0.0, time.monotonic()
                if is_relay:
                    await relay_run(stream, command(number), marker(number), timeout)
                else:
                    ssh.run(command(number), marker(number), timeout)
                if number:
                    taken[label].append(time.monotonic() - start)
                    qemu_key = "relay qemu" if is_relay else "ssh qemu"
                    taken[qemu_key].append((cpu_seconds(qemu) if qemu else 0.0) - cpu)
    finally:
        ssh.close()
        await stream.close()
    return taken


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("directory", help="project directory (its session is started and kept up)")
    parser.add_argument("--rounds", type=int, default=6, help="interleaved timed rounds")
    parser.add_argument("--mb", type=float, default=4.0, help="flood file size in MB")
    parser.add_argument("--timeout", type=float, default=120.0)
    args = parser.parse_args()
    directory = str(Path(args.directory).resolve())
    holder = start_holder(directory)
    try:
        stage(guest_ssh(directory), args.mb)
        taken = asyncio.run(measure(directory, args.rounds, args.timeout))
    finally:
        assert holder.stdin is not None
        holder.stdin.close()
        holder.wait(timeout=30)
    med = statistics.median
    print(f"{args.mb:.0f} MB coloured cat, output read and discarded, {args.rounds} rounds:")
    for label, qemu_key in (("relay", "relay qemu"), ("openssh", "ssh qemu")):
        values = taken[label]
        print(
            f"  {label:<8} {med(values):6.3f} s  (qemu {med(taken[qemu_key]):.2f} CPU-s)  "
            f"({', '.join(f'{x:.3f}' for x in values)})"
        )
    print(f"  ratio relay / openssh {med(taken['relay']) / med(taken['openssh']):6.2f} x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
