"""The mechanics of an image build: its scratch directory, its commands and its clean-up.

:mod:`vibebox_core.images.build` says which steps a build takes; this module is how each runs
safely, whatever is being built. A build works in ``images/.build-<name>-<pid>/`` on the
store's file system, so the finished image is renamed into place (atomic). A failed or
interrupted build removes that directory, detaching first any mount the bootstrap left below it
(never deleting host files through a mount); SIGTERM unwinds like Ctrl-C so that clean-up runs;
and a build killed outright is cleaned up by the next one, which finds its process gone. Files
a user-namespace build owns are removed and measured through the namespace's ``helper``.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

from vibebox_core.errors import ImageError
from vibebox_core.progress import ProgressClock

#: Name prefix of a build's scratch directory in the store (``.build-<name>-<pid>``).
BUILD_PREFIX = ".build-"


class Interrupted(Exception):
    """SIGTERM during a build: unwinds like KeyboardInterrupt so the cleanup runs."""


@contextlib.contextmanager
def terminate_unwinds() -> Iterator[None]:
    """Turn SIGTERM into an exception while a build runs (main thread only)."""
    if sys.platform != "linux" or not _in_main_thread():
        yield
        return

    def handler(signum: int, frame: FrameType | None) -> None:
        raise Interrupted("terminated")

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _in_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


def mounts_below(directory: Path, mountinfo: Path = Path("/proc/self/mountinfo")) -> list[Path]:
    """Mount points at or below ``directory``, deepest first."""
    root = os.path.realpath(directory)
    found = []
    try:
        lines = mountinfo.read_text(encoding="utf-8").splitlines()
    except OSError:
        return []
    for line in lines:
        fields = line.split()
        if len(fields) < 5:
            continue
        point = fields[4].encode().decode("unicode_escape")
        if point == root or point.startswith(root + "/"):
            found.append(Path(point))
    return sorted(found, key=lambda p: len(p.parts), reverse=True)


def remove_build_dir(directory: Path, helper: Sequence[str] = ()) -> None:
    """Remove a build directory, detaching any mount the bootstrap left below it first.

    Never follows a mount: if something stays mounted the directory is left in place rather
    than deleting files of the host through it.
    """
    if not directory.exists():
        return
    for point in mounts_below(directory):
        subprocess.run(["umount", "--lazy", str(point)], capture_output=True)
    if mounts_below(directory):
        raise ImageError(
            f"{directory} still has mounts below it; not removing it",
            hint=f"unmount them (findmnt -R {directory}), then rm -rf {directory}",
        )
    if helper:
        # Files owned by the build's user namespace: only its root can remove them.
        subprocess.run([*helper, "rm", "-rf", str(directory)], capture_output=True)
    shutil.rmtree(directory, ignore_errors=True)


def clean_stale_builds(store: Path) -> None:
    """Remove build directories whose process is gone (a build killed outright)."""
    for directory in store.glob(BUILD_PREFIX + "*"):
        try:
            pid = int((directory / "pid").read_text().strip())
        except (OSError, ValueError):
            pid = 0
        if pid and _pid_alive(pid):
            continue
        with contextlib.suppress(ImageError):
            remove_build_dir(directory)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@dataclass
class Runner:
    """Runs build commands, logging their output and reporting progress."""

    clock: ProgressClock
    log: Path
    throttle: float = 2.0
    tail: deque[str] = field(default_factory=lambda: deque(maxlen=25))

    def __call__(self, step: str, command: Sequence[str], *, cwd: Path | None = None) -> None:
        """Run ``command`` as the build step ``step``, its output going to the log.

        Raises:
            ImageError: the command cannot be started or exits non-zero (the message quotes it
                and the tail of its output; the hint names the log).
        """
        self.clock(step, shlex.join(command)[:200])
        with self.log.open("a", encoding="utf-8") as log:
            log.write(f"\n$ {shlex.join(command)}\n")
            log.flush()
            try:
                process = subprocess.Popen(
                    list(command),
                    stdout=subprocess.PIPE,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    cwd=cwd,
                    text=True,
                    errors="replace",
                    env={**os.environ, "DEBIAN_FRONTEND": "noninteractive", "LC_ALL": "C.UTF-8"},
                )
            except OSError as exc:
                raise ImageError(f"cannot run {command[0]}: {exc.strerror or exc}") from None
            try:
                assert process.stdout is not None
                last = 0.0
                for line in process.stdout:
                    log.write(line)
                    line = line.rstrip()
                    if line:
                        self.tail.append(line)
                    if line and time.monotonic() - last >= self.throttle:
                        last = time.monotonic()
                        self.clock(step, line[:200])
                code = process.wait()
            except BaseException:
                process.terminate()
                try:
                    process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
                raise
        if code != 0:
            tail = "\n".join(self.tail)
            raise ImageError(
                f"{step} failed: `{shlex.join(command)[:300]}` exited with status {code}\n{tail}",
                hint=f"the full log is {self.log}",
            )
        self.clock(step, done=True)


def dir_bytes(directory: Path, helper: Sequence[str] = ()) -> int:
    """Bytes the files below ``directory`` take on disk (``helper``: measured as its root)."""
    if helper:
        # Owned by the build's user namespace: measure from inside it.
        result = subprocess.run(
            [*helper, "du", "-s", "-B1", str(directory)], capture_output=True, text=True
        )
        with contextlib.suppress(ValueError, IndexError):
            return int(result.stdout.split()[0])
    total = 0
    for root, dirs, files in os.walk(directory):
        for name in files + dirs:
            with contextlib.suppress(OSError):
                st = os.lstat(os.path.join(root, name))
                total += st.st_blocks * 512 if st.st_blocks else st.st_size
    return total
