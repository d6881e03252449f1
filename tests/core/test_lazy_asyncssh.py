"""asyncssh (and cryptography with it) is imported only when a connection is made.

``import asyncssh`` costs about 28 MB of RSS, and the dashboard attached to a running session
gets its terminals through the supervisor's UNIX-socket relay, never over SSH of its own: the
modules it imports must not load asyncssh until something calls for a connection.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from vibebox_core.paths import ProjectPaths
from vibebox_core.ssh.keys import ensure_keys

REPO = Path(__file__).resolve().parents[2]

#: What ``vibebox`` (the dashboard) imports before it attaches.
DASHBOARD_MODULES = (
    "vibebox_cli.main",
    "vibebox_cli.commands.attach",
    "vibebox_tui.app",
    "vibebox_tui.backend.core",
    "vibebox_core.session.start",
)


def _run(code: str, home: Path) -> dict[str, object]:
    """Run ``code`` in a fresh interpreter; it prints one JSON object, returned here."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "VIBEBOX_HOME": str(home)}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True
    )
    result: dict[str, object] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def _dashboard_imports(home: Path) -> dict[str, object]:
    code = (
        "import importlib, json, sys\n"
        f"for name in {DASHBOARD_MODULES!r}:\n"
        "    importlib.import_module(name)\n"
        "print(json.dumps({m: m in sys.modules for m in ('asyncssh', 'cryptography')}))\n"
    )
    return _run(code, home)


def test_the_dashboard_modules_do_not_import_asyncssh(tmp_path: Path) -> None:
    assert _dashboard_imports(tmp_path)["asyncssh"] is False


def test_the_dashboard_modules_do_not_import_cryptography(tmp_path: Path) -> None:
    assert _dashboard_imports(tmp_path)["cryptography"] is False


def test_asyncssh_is_imported_when_a_connection_needs_it(tmp_path: Path) -> None:
    """Importing the connect module loads nothing; building the connection options does."""
    root = tmp_path / "project"
    root.mkdir()
    ensure_keys(ProjectPaths.for_directory(root))
    code = (
        "import json, sys\n"
        "from vibebox_core.paths import ProjectPaths\n"
        "from vibebox_core.ssh import connect\n"
        "before = 'asyncssh' in sys.modules\n"
        f"options = connect._options(ProjectPaths.for_directory({str(root)!r}), 1.0)\n"
        "print(json.dumps({'before': before, 'after': 'asyncssh' in sys.modules,\n"
        "                  'options': type(options).__name__}))\n"
    )
    result = _run(code, tmp_path / "home")
    assert result == {"before": False, "after": True, "options": "SSHClientConnectionOptions"}
