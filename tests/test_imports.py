"""vibebox_core never pulls in the UI: every module imports without Textual or Rich."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

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


def test_core_imports_without_textual_or_rich(tmp_path: Path) -> None:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO)
    result = subprocess.run(
        [sys.executable, "-c", _PROBE], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    for name in ("config.load", "index", "session.explain", "paths", "errors"):
        assert f"vibebox_core.{name}" in report["modules"]
    assert report["ui"] == [], f"vibebox_core imported {report['ui']}"
