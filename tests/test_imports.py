"""The layering, checked two ways: import-linter's contracts and run-time import probes.

The contracts in pyproject.toml (``[tool.importlinter]``) see every import statement, deferred
ones too. What only a run can show is probed in a fresh interpreter: vibebox_core imports
without Textual or Rich, and a warm attach loads no image builder (the builder is imported
inside ``session.boot.prepare_and_start``, for a cold start only). ``vibebox list`` imports no
Textual: tests/cli/test_cli.py.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
CONTRACTS = [
    contract["id"]
    for contract in tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["importlinter"][
        "contracts"
    ]
]

_PROBE = """
import importlib, json, pkgutil, sys
import vibebox_core
walked = pkgutil.walk_packages(vibebox_core.__path__, "vibebox_core.")
# a __main__ module runs its program when imported: it is an entry point, not a library
names = sorted(m.name for m in walked if not m.name.endswith(".__main__"))
for name in names:
    importlib.import_module(name)
ui = sorted(m for m in sys.modules if m.split(".")[0] in ("textual", "rich"))
print(json.dumps({"modules": names, "ui": ui}))
"""

# What `vibebox` loads to attach to a running session: the command, the dashboard and its
# core backend, the session start (whose cold path alone builds an image).
_ATTACH_PROBE = """
import json, sys
import vibebox_cli.main, vibebox_cli.commands.attach
import vibebox_tui.app, vibebox_tui.backend.core
import vibebox_core.session.start
builders = ("vibebox_core.images.build", "vibebox_core.images.workspace")
print(json.dumps(sorted(m for m in builders if m in sys.modules)))
"""


def _probe(code: str, cwd: Path) -> str:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO)
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=cwd, env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_core_imports_without_textual_or_rich(tmp_path: Path) -> None:
    report = json.loads(_probe(_PROBE, tmp_path))
    for name in ("config.load", "index", "session.explain", "paths", "errors"):
        assert f"vibebox_core.{name}" in report["modules"]
    assert report["ui"] == [], f"vibebox_core imported {report['ui']}"


def test_warm_attach_imports_no_image_builder(tmp_path: Path) -> None:
    loaded = json.loads(_probe(_ATTACH_PROBE, tmp_path))
    assert loaded == [], f"the attach path imported {loaded}"


@pytest.mark.parametrize("contract", CONTRACTS)
def test_import_contract_is_kept(contract: str) -> None:
    lint_imports = Path(sys.executable).with_name("lint-imports")
    result = subprocess.run(
        [str(lint_imports), "--no-cache", "--contract", contract],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, f"lint-imports --contract {contract}:\n{result.stdout}"
