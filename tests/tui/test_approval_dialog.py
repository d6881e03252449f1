"""The approval dialog says whether a file changed since approval or was never approved."""

from __future__ import annotations

from pathlib import Path

from vibebox_tui.screens.confirm import confirm_approval


def test_first_start_dialog_names_a_never_approved_file() -> None:
    screen = confirm_approval(Path("/p"), ["+ mount: /etc → /mnt/etc (rw)"], first=True)
    assert "was never approved" in screen.body_text and "cloned repository" in screen.body_text
    assert "+ mount: /etc → /mnt/etc (rw)" in screen.body_text


def test_change_dialog_names_a_change_and_escapes_each_line() -> None:
    screen = confirm_approval(Path("/p"), ["~ cpus: 2 → 8", "+ network entry: a\rb"])
    assert "changed the session's mounts, network or resources" in screen.body_text
    assert "~ cpus: 2 → 8" in screen.body_text
    assert "\r" not in screen.body_text and "a\\rb" in screen.body_text


def test_inspector_shows_an_unapproved_change_apart() -> None:
    from vibebox_tui.backend.base import InspectorData
    from vibebox_tui.widgets.inspector import render_inspector

    data = InspectorData(
        project=Path("/p"),
        session_id=None,
        network_mode="allowlist",
        network_entries=("pypi.org",),
        unapproved=("+ network entry: evil.example", "~ cpus: 2 → 64\x1b[2K"),
    )
    text = render_inspector(data, width=60).plain
    pending = text.split("not approved, not enforced")[1]
    assert "+ network entry: evil.example" in pending
    assert "\x1b" not in text and "\\x1b[2K" in text
    network = text.split("Network")[1]
    assert "pypi.org" in network and "evil.example" not in network
