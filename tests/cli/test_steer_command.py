"""``vibebox allow`` / ``vibebox block``: the CLI side of steering, on a real vibebox.toml."""

from __future__ import annotations

from pathlib import Path

from cli.cli_run import TEST_CONFIG, assert_clean_error, assert_no_raw_controls, vibebox

from vibebox_core.config.approval import review
from vibebox_core.config.snapshot import read_snapshot
from vibebox_core.paths import ProjectPaths

COMMENTED = TEST_CONFIG + '[network]\nmode = "blocklist"  # mine\nentries = ["example.com"]\n'


def _project(tmp_path: Path) -> Path:
    root = tmp_path / "shop"
    root.mkdir()
    (root / "vibebox.toml").write_text(COMMENTED)
    return root


def test_block_then_allow_prints_what_changed_and_when(tmp_path: Path) -> None:
    root = _project(tmp_path)
    blocked = vibebox("block", "Evil.test", "x.example.com", cwd=root)
    assert blocked.returncode == 0, blocked.stderr
    assert blocked.stdout.splitlines() == [
        "evil.test: added blocklist entry evil.test; applies at the next start",
        # Never approved: the defaults (nothing blocked) are the base, not the file's entry.
        "x.example.com: added blocklist entry x.example.com; applies at the next start",
    ]
    allowed = vibebox("allow", "-C", str(root), "api.x.example.com", cwd=tmp_path)
    assert allowed.returncode == 0, allowed.stderr
    assert allowed.stdout.splitlines() == [
        "api.x.example.com: removed blocklist entry x.example.com (unblocks x.example.com and "
        "all its subdomains); applies at the next start"
    ]
    text = (root / "vibebox.toml").read_text()
    assert "# mine" in text and '"evil.test"' in text and "x.example.com" not in text
    project = ProjectPaths.for_directory(root)
    snapshot = read_snapshot(project)
    assert snapshot is not None and snapshot.values["network"]["entries"] == ["evil.test"]
    # The file's own example.com was never approved: it is still pending.
    assert review(project).diff == ("+ network entry: example.com",)


def test_already_in_that_state_says_so(tmp_path: Path) -> None:
    root = _project(tmp_path)
    result = vibebox("allow", "pypi.org", cwd=root)
    assert result.returncode == 0
    assert result.stdout == "pypi.org: already allowed (no blocklist entry covers it)\n"


def test_an_ip_address_is_a_one_line_error(tmp_path: Path) -> None:
    root = _project(tmp_path)
    result = vibebox("allow", "10.0.0.1", cwd=root)
    assert_clean_error(result, "IP address", "domains only")
    assert (root / "vibebox.toml").read_text() == COMMENTED


def test_a_hostile_host_name_is_refused_escaped(tmp_path: Path) -> None:
    root = _project(tmp_path)
    result = vibebox("block", "evil\x1b]0;owned\x07.test", cwd=root)
    assert_clean_error(result, "not a domain name")
    assert_no_raw_controls(result.stdout, result.stderr)


def test_a_refused_file_changes_nothing(tmp_path: Path) -> None:
    root = _project(tmp_path)
    (root / "vibebox.toml").write_text("[box]\ncpus = 0\n")
    result = vibebox("allow", "pypi.org", cwd=root)
    assert_clean_error(result, "nothing was changed")
    assert (root / "vibebox.toml").read_text() == "[box]\ncpus = 0\n"


def test_no_host_is_a_usage_error(tmp_path: Path) -> None:
    result = vibebox("block", cwd=_project(tmp_path))
    assert result.returncode == 2 and "HOST" in result.stderr
