"""``[provision] run`` on the real stack: once per new session across stop/start, again after
``:new`` (recreate), a failing step named with its exit status while the session stays usable.

One project for the module; its VM boots three times (the first start, the start after
``vibebox stop``, the start after recreate). Each step writes into the project (visible on the
host through the share) and into the guest's own home (on the instance disk), so a run is
counted on both sides.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import tomlkit
from e2e.livesession import delete_session, domstate, run_cli, session_id_of

from vibebox_core.paths import ProjectPaths
from vibebox_core.session import approve, teardown

pytestmark = pytest.mark.e2e

BOOT = 300  # seconds a cold start may take (TCG on a busy 2-core machine)
WARM = 120

STEPS = [
    # A program left in the background keeps the step's output open: sshd reports the exit
    # status anyway, and the step ends without waiting 30 s for it.
    "sleep 30 & echo run >> provisioned.txt",
    'printf "%s %s\\n" "$(id -un)" "$PWD" >> ~/guest-provisioned.txt',
]
FAILING = ["echo first >> failing.txt", "echo broken >&2; exit 3", "touch never.txt"]


@dataclass
class Box:
    project: ProjectPaths

    def vibebox(self, *args: str, timeout: float = BOOT) -> subprocess.CompletedProcess[str]:
        return run_cli(self.project.root, *args, timeout=timeout)

    def set_steps(self, steps: list[str]) -> None:
        doc = tomlkit.parse(self.project.config.read_text())
        doc["provision"] = {"run": steps}
        self.project.config.write_text(tomlkit.dumps(doc))

    def guest_file(self) -> list[str]:
        result = self.vibebox("exec", "--", "cat", "/home/vibecoder/guest-provisioned.txt")
        assert result.returncode == 0, result.stderr
        return result.stdout.splitlines()

    def host_file(self, name: str = "provisioned.txt") -> list[str]:
        return (self.project.root / name).read_text().splitlines()

    def explain(self) -> dict[str, object]:
        result = self.vibebox("explain", "--json", timeout=WARM)
        assert result.returncode == 0, result.stderr
        provision = json.loads(result.stdout)["provision"]
        assert isinstance(provision, dict)
        return provision


@pytest.fixture(scope="module")
def box(e2e_home_shared: Path) -> Iterator[Box]:
    root = Path(tempfile.mkdtemp(prefix="vbx-prov-", dir="/tmp")) / "provisioned"
    root.mkdir()
    root.parent.chmod(0o755)
    root.chmod(0o755)
    # The steps write into the project as the guest user (uid 1000 when vibebox runs as
    # root): the directory is that user's, as a real project of a non-root user would be.
    os.chown(root, 1000, 1000)
    project = ProjectPaths.for_directory(root)
    project.config.write_text(
        "[box]\ncpus = 1\nmemory_mb = 1024\n\n[supervisor]\nauto_shutdown_ms = 600000\n\n"
        + tomlkit.dumps({"provision": {"run": STEPS}})
    )
    approve.approve(project)  # the longer grace; [provision] itself asks nothing
    yield Box(project)
    with contextlib.suppress(OSError):
        delete_session(session_id_of(root))
    shutil.rmtree(root.parent, ignore_errors=True)


def test_the_first_start_provisions_as_the_guest_user_in_the_project(box: Box) -> None:
    result = box.vibebox("exec", "--", "true")
    assert result.returncode == 0, result.stderr
    assert box.host_file() == ["run"]
    assert box.guest_file() == [f"vibecoder /home/vibecoder/{box.project.name}"]
    log = box.project.provision_log.read_text()
    assert "==> step 2/2: exit status 0" in log
    assert "background programs' output is not waited for" in log
    state = box.explain()
    assert state["state"] == "done" and state["changed"] is False


def test_it_runs_once_across_stop_and_start(box: Box) -> None:
    session_id = session_id_of(box.project.root)
    stopped = box.vibebox("stop", timeout=WARM)
    assert stopped.returncode == 0, stopped.stderr
    assert domstate(session_id) == "shut off"
    assert box.guest_file() == [f"vibecoder /home/vibecoder/{box.project.name}"]  # boots again
    assert box.host_file() == ["run"]


def test_a_failing_step_is_named_and_the_session_stays_usable(box: Box) -> None:
    box.set_steps(FAILING)
    assert box.explain()["changed"] is True  # the list changed since it ran; nothing asked
    result = box.vibebox("provision", timeout=WARM)
    assert result.returncode == 1
    assert "step 2 of 3 failed with exit status 3" in result.stderr
    assert "│ broken" in result.stderr  # its output, as it came
    assert box.host_file("failing.txt") == ["first"]
    assert not (box.project.root / "never.txt").exists()
    alive = box.vibebox("exec", "--", "echo", "alive", timeout=WARM)
    assert alive.returncode == 0 and alive.stdout == "alive\n"
    state = box.explain()
    assert state["state"] == "failed" and state["changed"] is False


def test_recreate_provisions_the_new_session_again(box: Box) -> None:
    old = session_id_of(box.project.root)
    box.set_steps([*STEPS, *FAILING])
    asyncio.run(teardown.recreate(box.project))  # what `:new` does after its confirmation
    assert session_id_of(box.project.root) != old
    result = box.vibebox("exec", "--", "echo", "usable")
    # The failing step is said on stderr; the command runs all the same.
    assert result.returncode == 0 and result.stdout == "usable\n", result.stderr
    assert "Provisioning step 4 of 5 failed with exit status 3" in result.stderr
    assert box.host_file() == ["run", "run"]  # the project's file: once per session
    assert box.guest_file() == [f"vibecoder /home/vibecoder/{box.project.name}"]  # a new disk
    assert box.host_file("failing.txt") == ["first", "first"]
