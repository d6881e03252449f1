"""The fake backend's demo: fixed session ids, times, console lines and the demo sessions.

Fixed so that a snapshot taken today matches one taken tomorrow (``vibebox --demo``, the
screenshots and the dashboard's tests use them).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from vibebox_core.progress import ProgressEvent
from vibebox_tui.backend.base import NetLine, SessionRow

FIXED_NOW = datetime(2026, 11, 27, 10, 15, tzinfo=UTC)
GUEST_HOME = "/home/vibecoder"

#: Steps a fake start reports, with their fixed elapsed seconds.
BOOT_STEPS: tuple[ProgressEvent, ...] = (
    ProgressEvent("preparing session", "keys, seed share, instance disk", 0.4, True),
    ProgressEvent("starting VM", "libvirt domain defined, booting under TCG", 1.2, False),
    ProgressEvent("waiting for SSH", "lease 192.168.122.57, waiting for sshd", 14.8, False),
)

#: A provisioning a fake start can report after its boot steps (``provision=``): two steps,
#: their output, the second one failing.
PROVISION_FAILING: tuple[ProgressEvent, ...] = (
    ProgressEvent("provisioning", "2 steps", 15.1),
    ProgressEvent("provisioning", "step 1/2: sudo apt-get install -y jq", 15.1),
    ProgressEvent(
        "provisioning",
        "step 1/2: sudo apt-get install -y jq",
        16.0,
        output=(
            "Reading package lists...",
            "Setting up jq (1.6-2.1) ...",
            "\x1b[31mhostile\x1b]0;title\x07 output",
        ),
    ),
    ProgressEvent("provisioning", "step 2/2: make setup", 16.2),
    ProgressEvent(
        "provisioning",
        "step 2/2: make setup",
        16.4,
        output=("make: *** No rule to make target 'setup'.  Stop.",),
    ),
    ProgressEvent(
        "provisioning", "step 2/2 failed with exit status 2", 16.4, done=True, failed=True
    ),
)
#: What the core says after :data:`PROVISION_FAILING`.
PROVISION_FAILING_NOTICE = (
    "Provisioning step 2 of 2 failed with exit status 2: make setup (2026-11-27T10:15:16Z). "
    "The session is usable; the output is in .vibebox/provision.log, and `vibebox provision` "
    "runs the list again."
)

CONSOLE_LINES = (
    "[    0.000000] Linux version 6.1.0-27-cloud-amd64 (debian-kernel@lists.debian.org)",
    "[    1.204511] virtiofs virtio1: discovered new tag: vibebox-project",
    "[    2.918340] systemd[1]: Starting vibebox-setup.service - vibebox guest setup...",
    "[    3.551202] systemd[1]: Finished vibebox-setup.service - vibebox guest setup.",
    "[    4.120007] systemd[1]: Started ssh.service - OpenBSD Secure Shell server.",
    "Debian GNU/Linux 12 vibebox ttyS0",
)


def fake_id(n: int) -> str:
    """A fixed, valid-looking UUIDv7 for the ``n``-th fake session (made minutes apart, so
    their first 8 digits differ as real ones mostly do)."""
    return f"019bf2{0x90 + n:02x}-{n:04x}-7c23-ba1d-dce7e6d40693"


def demo_sessions(root: Path = Path("/home/me/src")) -> list[SessionRow]:
    """Four sessions in every interesting state, one of them broken."""
    return [
        SessionRow(fake_id(1), root / "webshop", "running", 1, FIXED_NOW),
        SessionRow(
            fake_id(2), root / "ml-notebooks", "shut off", 0, FIXED_NOW - timedelta(hours=5)
        ),
        SessionRow(
            fake_id(3),
            root / "old-api",
            "broken",
            None,
            FIXED_NOW - timedelta(days=12),
            reason="disk.qcow2 is missing; run `vibebox delete` and start again",
        ),
        SessionRow(
            fake_id(4), root / "dotfiles", "shut off", 0, FIXED_NOW - timedelta(days=2, hours=3)
        ),
    ]


def net_line(line: str, *, host: str | None = None, verdict: str | None = None) -> NetLine:
    """A network log entry from its line: ``host`` and ``verdict`` default to what the line
    says (``"10:15:03 blocked proxy evil.example:443 (reason)"``: the word after the verdict
    and the source, its port cut)."""
    words = line.split()
    if verdict is None:
        verdict = next((w for w in words if w in ("allowed", "blocked")), "allowed")
    if host is None:
        after = words[words.index(verdict) + 1 :] if verdict in words else words[1:]
        after = [w for w in after if w not in ("proxy", "dns")] or [""]
        host = after[0].rsplit(":", 1)[0] if after[0].count(":") == 1 else after[0]
    return NetLine(line, host, verdict)
