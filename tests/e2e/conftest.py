"""Fixtures shared by the end-to-end tests, which drive the real stack.

They run inside the lab network namespace (``.ci/lab-up``) where libvirtd and virtlogd live,
under TCG. Outside a working lab they are skipped locally and fail under ``CI=true``, so CI
can never pass by skipping them.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import libvirt
import pytest

from vibebox_core.doctor import checks, examine

LAB_NAMESPACE = "vbxlab"


def _image_store() -> Path:
    override = os.environ.get("VIBEBOX_TEST_IMAGES")
    if override:
        return Path(override)
    return Path.home() / ".vibebox" / "images"


def _lab_problem() -> str | None:
    """Return why the lab cannot run e2e tests, or None when it can."""
    if shutil.which("virsh") is None:
        return "virsh is not installed (run .ci/setup)"
    netns = subprocess.run(["ip", "netns", "identify"], capture_output=True, text=True)
    if netns.stdout.strip() != LAB_NAMESPACE:
        return f"not inside the lab namespace {LAB_NAMESPACE!r} (run under .ci/test)"
    probe = subprocess.run(
        ["virsh", "-c", "qemu:///system", "version"], capture_output=True, text=True
    )
    if probe.returncode != 0:
        return f"libvirtd is not answering: {probe.stderr.strip()}"
    if not any(_image_store().glob("*/image.toml")):
        return f"no base image in {_image_store()} (run `vibebox image build`)"
    return None


def _slow_libvirt_warning() -> str | None:
    """A warning line when two QEMU capability calls are slow (libvirt re-probing QEMU on
    every call: with /dev/kvm closed to libvirt-qemu the suite took 18 min instead of 6)."""
    try:
        conn = libvirt.open("qemu:///system")
    except libvirt.libvirtError:
        return None
    try:
        timings = examine._timed_capabilities(conn)
    except libvirt.libvirtError:
        return None
    finally:
        conn.close()
    check = checks.check_capabilities(timings, kvm_closed_to_qemu=examine.kvm_closed_to_qemu())
    if check.holds:
        return None
    return f"WARNING: libvirt is slow here, e2e tests will crawl: {check.summary}; fix: {check.fix}"


_warnings: list[str] = []


@pytest.fixture(scope="session")
def require_lab(request: pytest.FixtureRequest) -> None:
    """Skip (locally) or fail (under CI) when the real stack is not available; print a warning
    line when libvirt calls are slow."""
    problem = _lab_problem()
    if problem is None:
        warning = _slow_libvirt_warning()
        if warning is not None:
            _warnings.append(warning)
            reporter = request.config.pluginmanager.get_plugin("terminalreporter")
            if reporter is not None:
                reporter.write_line("")
                reporter.write_line(warning, yellow=True, bold=True)
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"e2e lab unavailable under CI: {problem}")
    pytest.skip(f"e2e lab unavailable: {problem}")


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """Repeat the slow-libvirt warning at the end, where it is read."""
    for warning in _warnings:
        terminalreporter.write_line(warning, yellow=True, bold=True)


def _make_home(prefix: str) -> Path:
    home = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
    home.chmod(0o755)
    (home / "images").symlink_to(_image_store())
    return home


@pytest.fixture(scope="session")
def e2e_home_shared(require_lab: None) -> Iterator[Path]:
    """A VIBEBOX_HOME shared by every e2e test of the run, images linked to the store."""
    home = _make_home("vbx-e2e-")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("VIBEBOX_HOME", str(home))
        mp.setenv("VIBEBOX_ACCEL", os.environ.get("VIBEBOX_ACCEL", "tcg"))
        yield home
    shutil.rmtree(home, ignore_errors=True)


@pytest.fixture
def e2e_home(require_lab: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A VIBEBOX_HOME for one test, images linked to the store."""
    home = _make_home("vbx-e2e-")
    monkeypatch.setenv("VIBEBOX_HOME", str(home))
    monkeypatch.setenv("VIBEBOX_ACCEL", os.environ.get("VIBEBOX_ACCEL", "tcg"))
    yield home
    shutil.rmtree(home, ignore_errors=True)


@pytest.fixture
def e2e_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh project directory under /tmp that libvirt-qemu can traverse."""
    project = Path(tempfile.mkdtemp(prefix="vbx-proj-", dir="/tmp"))
    project.chmod(0o755)
    return project
