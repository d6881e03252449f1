"""Pinning a share's host directory: no symlink at any component, same device and inode."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import pytest

from vibebox_cli.commands import approve
from vibebox_core.config import snapshot
from vibebox_core.config.edit import set_value
from vibebox_core.config.load import load_config
from vibebox_core.index.sessions import SessionIndex
from vibebox_core.paths import ProjectPaths
from vibebox_core.share import pins
from vibebox_core.share.pins import MountChangedError, MountPinError, PinnedDir


def test_pin_records_device_and_inode(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "inner"
    target.mkdir(parents=True)
    pinned = pins.pin(target)
    info = os.stat(target)
    assert pinned == PinnedDir(str(target), info.st_dev, info.st_ino)
    assert pins.pin(str(target) + "/") == pinned  # a trailing slash names the same


def test_pin_of_root() -> None:
    assert pins.pin("/").path == "/"


@pytest.mark.parametrize("level", [0, 1, 2])
def test_symlink_at_any_component_is_refused(tmp_path: Path, level: int) -> None:
    parts = ["a", "b", "c"]
    real = tmp_path / "real"
    real.joinpath(*parts[level + 1 :]).mkdir(parents=True)
    above = tmp_path.joinpath("chain", *parts[:level])
    above.mkdir(parents=True)
    (above / parts[level]).symlink_to(real)  # the component at `level` is a symlink
    path = tmp_path.joinpath("chain", *parts)
    assert path.is_dir()  # it resolves when symlinks are followed
    with pytest.raises(MountPinError, match=f"{parts[level]}' is a symlink"):
        pins.pin(path)


def test_symlink_above_the_path_is_refused(tmp_path: Path) -> None:
    (tmp_path / "real" / "inner").mkdir(parents=True)
    (tmp_path / "sub").symlink_to(tmp_path / "real")
    with pytest.raises(MountPinError, match=r"sub' is a symlink"):
        pins.pin(tmp_path / "sub" / "inner")


def test_non_directory_and_missing_are_refused(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(MountPinError, match="is not a directory"):
        pins.pin(tmp_path / "file")
    with pytest.raises(MountPinError, match="is not a directory"):
        pins.pin(tmp_path / "file" / "below")
    with pytest.raises(MountPinError, match="does not exist"):
        pins.pin(tmp_path / "missing")


@pytest.mark.parametrize("bad", ["relative/dir", "/a/../b", "/a/./b", "/a/b/..", "/a\0b"])
def test_relative_dot_dotdot_and_nul_are_refused(bad: str) -> None:
    with pytest.raises(MountPinError):
        pins.pin(bad)


def test_dotdot_is_refused_even_when_it_would_resolve(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    with pytest.raises(MountPinError, match=r"'\.\.'"):
        pins.pin(f"{tmp_path}/a/../b")


def test_check_passes_for_the_same_directory(tmp_path: Path) -> None:
    approved = pins.pin(tmp_path)
    assert pins.check_pinned(approved) == approved


def test_swapped_directory_with_the_same_name_is_refused(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "inner"
    target.mkdir(parents=True)
    approved = pins.pin(target)
    (tmp_path / "sub").rename(tmp_path / "old")
    target.mkdir(parents=True)  # same name, a new directory (another inode)
    with pytest.raises(MountChangedError, match="is now another directory") as info:
        pins.check_pinned(approved, mount="./sub/inner:~/inner")
    assert "./sub/inner:~/inner" in info.value.message
    assert "vibebox approve" in info.value.hint


def test_parent_replaced_by_a_symlink_is_refused(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "inner"
    target.mkdir(parents=True)
    approved = pins.pin(target)
    (tmp_path / "sub").rename(tmp_path / "moved")
    (tmp_path / "sub").symlink_to(tmp_path / "moved")  # same inode behind a symlink
    with pytest.raises(MountChangedError, match="is a symlink"):
        pins.check_pinned(approved)


def test_removed_directory_is_refused(tmp_path: Path) -> None:
    target = tmp_path / "gone"
    target.mkdir()
    approved = pins.pin(target)
    target.rmdir()
    with pytest.raises(MountChangedError, match="does not exist"):
        pins.check_pinned(approved)


def test_open_pinned_yields_a_descriptor_of_the_directory(tmp_path: Path) -> None:
    with pins.open_pinned(tmp_path) as (fd, pinned):
        assert os.fstat(fd).st_ino == pinned.ino == os.stat(tmp_path).st_ino


def test_round_trip_and_damaged_records() -> None:
    pinned = PinnedDir("/x", 1, 2)
    assert PinnedDir.from_dict(pinned.to_dict()) == pinned
    for bad in ({"path": "/x", "dev": "1", "ino": 2}, {"path": "/x", "dev": True, "ino": 2}, {}):
        with pytest.raises(MountPinError, match="damaged"):
            PinnedDir.from_dict(bad)


def test_is_within_compares_components() -> None:
    assert pins.is_within("/a/b", "/a")
    assert pins.is_within("/a", "/a")
    assert not pins.is_within("/ab", "/a")
    assert pins.is_within("/anything", "/")


def test_changed_pins_lists_moved_and_damaged_records(tmp_path: Path) -> None:
    (tmp_path / "kept").mkdir()
    (tmp_path / "moved").mkdir()
    recorded = {
        "/kept": pins.pin(tmp_path / "kept").to_dict(),
        "/moved": pins.pin(tmp_path / "moved").to_dict(),
        "/damaged": {"path": "/x"},
    }
    (tmp_path / "moved").rename(tmp_path / "old")
    (tmp_path / "moved").mkdir()
    lines = pins.changed_pins(recorded)
    assert len(lines) == 2
    assert any("→ /moved' changed since it was approved" in line for line in lines)
    assert any("damaged" in line for line in lines)
    assert pins.changed_pins({"/kept": recorded["/kept"]}) == []


def test_approve_records_a_recreated_mount_directory_again(
    project: ProjectPaths, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`vibebox approve` shows a mount whose directory was replaced and pins the new one."""
    data = tmp_path / "data"
    data.mkdir()
    load_config(project)
    set_value(project, "box", "mounts", [f"{data}:/data"])
    args = argparse.Namespace(directory=str(project.root), yes=True)
    assert approve.run(args) == 0
    first = snapshot.approved_pins(project)["/data"]
    assert approve.run(args) == 0
    assert "nothing to approve" in capsys.readouterr().out

    data.rename(tmp_path / "data.old")
    data.mkdir()  # the user re-creates it: same path, another inode
    assert approve.run(args) == 0
    out = capsys.readouterr().out
    assert "directories of mounts you approved" in out and "→ /data' changed" in out
    assert "from its next start" in out
    again = snapshot.approved_pins(project)["/data"]
    assert again["ino"] == os.stat(data).st_ino != first["ino"]


def test_check_cache_refuses_a_symlinked_cache_or_entry(tmp_path: Path) -> None:
    cache = tmp_path / "proj" / ".vibebox"
    pins.check_cache(cache)  # missing: vibebox makes it
    cache.parent.mkdir()
    (tmp_path / "elsewhere").mkdir()
    cache.symlink_to(tmp_path / "elsewhere")  # shipped by a cloned repository
    with pytest.raises(MountPinError, match="is a symlink") as info:
        pins.check_cache(cache)
    assert "rm -r" in info.value.hint
    cache.unlink()
    cache.write_text("not a directory")
    with pytest.raises(MountPinError, match="not a directory"):
        pins.check_cache(cache)
    cache.unlink()
    cache.mkdir()
    (cache / "id_ed25519").write_text("key")
    pins.check_cache(cache)
    (cache / "seed").symlink_to("/etc")
    with pytest.raises(MountPinError, match="holds a symlink"):
        pins.check_cache(cache)


def test_a_new_session_refuses_a_symlinked_cache(project: ProjectPaths, tmp_path: Path) -> None:
    (tmp_path / "target").mkdir()
    project.cache.symlink_to(tmp_path / "target")
    with pytest.raises(MountPinError, match="is a symlink"):
        SessionIndex().ensure(project.root)
    assert list((tmp_path / "target").iterdir()) == []  # nothing written through it
