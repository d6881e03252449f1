"""``vibebox checkpoint save | list | restore | rm`` as a user runs it, on a session whose VM
is off (a small real qcow2 disk, no VM): what it prints, the confirmation, the errors."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from cli.cli_run import assert_clean_error, assert_no_raw_controls, vibebox

from vibebox_core.paths import ProjectPaths

pytestmark = pytest.mark.skipif(shutil.which("qemu-img") is None, reason="needs qemu-img")

# A session id no libvirt domain has: the VM is "missing", i.e. off.
SESSION_ID = "019bf291-0002-7c23-ba1d-dce7e6d40693"


def with_disk(root: Path) -> ProjectPaths:
    project = ProjectPaths.for_directory(root)
    project.cache.mkdir()
    project.session_id.write_text(SESSION_ID + "\n")
    subprocess.run(
        ["qemu-img", "create", "-q", "-f", "qcow2", str(project.disk), "64M"], check=True
    )
    return project


def test_save_list_restore_rm(hostile_project: Path) -> None:
    with_disk(hostile_project)
    saved = vibebox("checkpoint", "save", "before-upgrade", cwd=hostile_project)
    assert saved.returncode == 0, saved.stderr
    assert saved.stdout == "saved checkpoint before-upgrade (the VM is off)\n"

    listed = vibebox("checkpoint", "list", cwd=hostile_project)
    assert listed.returncode == 0, listed.stderr
    head, row, usage = listed.stdout.splitlines()
    assert head.split() == ["NAME", "CREATED", "(UTC)", "DATA"]
    assert row.startswith("before-upgrade  20") and row.endswith(("B", "KiB", "MiB"))
    assert usage.startswith("disk.qcow2 takes ") and "checkpoints included" in usage

    as_json = vibebox("checkpoint", "list", "--json", cwd=hostile_project)
    (item,) = json.loads(as_json.stdout)
    assert item["name"] == "before-upgrade"
    assert item["created"].endswith("Z") and isinstance(item["data_bytes"], int)

    refused = vibebox("checkpoint", "restore", "before-upgrade", cwd=hostile_project)
    assert_clean_error(refused, "no terminal to ask", "--yes")

    restored = vibebox("checkpoint", "restore", "before-upgrade", "--yes", cwd=hostile_project)
    assert restored.returncode == 0, restored.stderr
    assert "restored checkpoint before-upgrade" in restored.stdout
    assert "project files on the host are untouched" in restored.stdout

    removed = vibebox("checkpoint", "rm", "before-upgrade", cwd=hostile_project)
    assert removed.stdout == "removed checkpoint before-upgrade\n"
    empty = vibebox("checkpoint", "list", cwd=hostile_project)
    assert empty.stdout.startswith("no checkpoints")
    assert_no_raw_controls(saved.stdout, listed.stdout, refused.stderr, restored.stdout)


def test_save_without_a_name_and_a_taken_name(hostile_project: Path) -> None:
    with_disk(hostile_project)
    first = vibebox("checkpoint", "save", cwd=hostile_project)
    assert first.returncode == 0, first.stderr
    name = first.stdout.split()[2]
    assert name.startswith("ckpt-")
    again = vibebox("checkpoint", "save", name, cwd=hostile_project)
    assert_clean_error(again, "already has a checkpoint", "checkpoint rm")


@pytest.mark.parametrize("name", ["12", "-x", "a b", "x\x1b[2J"])
def test_bad_names_are_clean_errors(hostile_project: Path, name: str) -> None:
    with_disk(hostile_project)
    for verb in ("save", "restore", "rm"):
        result = vibebox("checkpoint", verb, "--", name, cwd=hostile_project)
        assert_clean_error(result, "invalid checkpoint name", "letters, digits")
        assert_no_raw_controls(result.stderr)


def test_no_session_and_no_verb(tmp_path: Path) -> None:
    assert_clean_error(vibebox("checkpoint", "list", cwd=tmp_path), "has no session")
    assert vibebox("checkpoint", cwd=tmp_path).returncode == 2
