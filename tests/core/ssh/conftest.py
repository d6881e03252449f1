"""Fixtures of the SSH tests: a project whose path has a space, a hostile ``~/.ssh/config``."""

from __future__ import annotations

from pathlib import Path

import pytest

from vibebox_core.paths import ProjectPaths


@pytest.fixture
def project(tmp_path: Path) -> ProjectPaths:
    root = tmp_path / "my proj"
    root.mkdir()
    return ProjectPaths.for_directory(root)


@pytest.fixture
def hostile_home(tmp_path: Path) -> Path:
    """A HOME whose ~/.ssh/config would hand over the agent and run commands on the host."""
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True)
    (home / ".ssh" / "config").write_text(
        "Host *\n  ForwardAgent yes\n  ForwardX11 yes\n  PermitLocalCommand yes\n"
        f"  LocalCommand touch {tmp_path}/pwned\n  ProxyCommand sh -c 'touch {tmp_path}/pwned'\n"
        "  LocalForward 9999 127.0.0.1:22\n  StrictHostKeyChecking no\n"
    )
    return home
