"""The kernel's file helpers: the atomic writer's modes and refusals, the flock, bounded reads."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from vibebox_core.fileio import (
    ProjectFileError,
    lock_file,
    read_bounded,
    read_bounded_text,
    write_atomic,
)


def _mode(path: Path) -> int:
    return path.stat().st_mode & 0o7777


def test_write_atomic_sets_exactly_the_mode(tmp_path: Path) -> None:
    key = tmp_path / "id_ed25519"
    write_atomic(key, b"secret", mode=0o600)
    assert key.read_bytes() == b"secret" and _mode(key) == 0o600
    write_atomic(key, "text is UTF-8: é", mode=0o640)
    assert key.read_text(encoding="utf-8") == "text is UTF-8: é" and _mode(key) == 0o640
    assert sorted(p.name for p in tmp_path.iterdir()) == ["id_ed25519"]  # no temp file left


def test_write_atomic_without_a_mode_keeps_the_replaced_files(tmp_path: Path) -> None:
    path = tmp_path / "vibebox.toml"
    write_atomic(path, "a", mode=None)
    assert _mode(path) == 0o666 & ~_current_umask()
    path.chmod(0o604)
    write_atomic(path, "b", mode=None, durable=True)
    assert path.read_text() == "b" and _mode(path) == 0o604


def test_write_atomic_exclusive_never_replaces(tmp_path: Path) -> None:
    path = tmp_path / "vibebox.toml"
    write_atomic(path, "first", exclusive=True)
    with pytest.raises(FileExistsError):
        write_atomic(path, "second", exclusive=True)
    assert path.read_text() == "first"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["vibebox.toml"]


def test_write_atomic_leaves_no_temp_file_when_it_fails(tmp_path: Path) -> None:
    target = tmp_path / "dir"
    target.mkdir()
    with pytest.raises(OSError):
        write_atomic(target, "a directory cannot be replaced by a file")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dir"]


def test_lock_file_is_exclusive_until_closed(tmp_path: Path) -> None:
    path = tmp_path / "sessions.lock"
    fd = lock_file(path)
    assert _mode(path) == 0o600 & ~_current_umask()
    with pytest.raises(BlockingIOError):
        lock_file(path, wait=False)
    os.close(fd)
    again = lock_file(path, wait=False)  # released by the close
    os.close(again)


def test_read_bounded_refuses_a_symlink_and_a_large_file(tmp_path: Path) -> None:
    real = tmp_path / "real"
    real.write_text("x" * 10)
    link = tmp_path / "link"
    link.symlink_to(real)
    assert read_bounded(real, limit=10) == b"x" * 10
    assert read_bounded_text(real) == "x" * 10
    with pytest.raises(ProjectFileError, match="symlink"):
        read_bounded(link)
    with pytest.raises(ProjectFileError, match="only up to 9 bytes"):
        read_bounded(real, limit=9)
    with pytest.raises(FileNotFoundError):
        read_bounded(tmp_path / "missing")


def _current_umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask
