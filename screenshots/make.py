"""Regenerate the dashboard screenshots in this directory from the real app.

The app runs headless on the in-memory fake backend (fixed ids and times), so the images are
the same on every machine. SVGs always; PNGs too when ``cairosvg`` is installed
(``pip install cairosvg``).

    .venv/bin/python screenshots/make.py
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
os.environ["TZ"] = "UTC"
time.tzset()

from textual.pilot import Pilot  # noqa: E402

from vibebox_core.errors import VMError  # noqa: E402
from vibebox_tui.app import VibeboxApp  # noqa: E402
from vibebox_tui.backend.base import SecretRow  # noqa: E402
from vibebox_tui.backend.demo import demo_sessions, fake_id  # noqa: E402
from vibebox_tui.backend.fake import FakeBackend  # noqa: E402
from vibebox_tui.screens import ConfirmScreen, ErrorScreen, HelpScreen  # noqa: E402

SIZE = (120, 34)
PROMPT = b"\x1b[1;32mvibecoder@vibebox\x1b[0m:\x1b[1;34m~/webshop\x1b[0m$ "
SHELL = (
    PROMPT
    + b"ls\r\n\x1b[1;34msrc\x1b[0m  \x1b[1;34mtests\x1b[0m  "
    + b"pyproject.toml  README.md  vibebox.toml\r\n"
    + PROMPT
    + b"pytest -q\r\n\x1b[32m............\x1b[0m\x1b[31mF\x1b[0m\r\n"
    + b"\x1b[31mFAILED\x1b[0m tests/test_cart.py::test_discount - assert 90 == 85\r\n"
    + b"\x1b[32m12 passed\x1b[0m, \x1b[31m1 failed\x1b[0m in 0.42s\r\n"
    + PROMPT
)

Scene = Callable[[VibeboxApp, FakeBackend, Pilot[Any]], Awaitable[None]]


async def wait_for(pilot: Pilot[Any], condition: Callable[[], object]) -> None:
    deadline = time.monotonic() + 10
    while not condition():
        if time.monotonic() > deadline:
            raise RuntimeError("the app did not reach the expected state")
        await pilot.pause(0.02)


async def attached(app: VibeboxApp, backend: FakeBackend, pilot: Pilot[Any]) -> None:
    await wait_for(pilot, lambda: app.attachment is not None)
    await wait_for(pilot, lambda: app.browser.option_count == len(app.sessions) > 0)
    backend.streams[fake_id(1)].feed(SHELL)
    await wait_for(pilot, lambda: "passed" in "".join(app.terminal.emulator.screen.display))
    await pilot.pause(0.1)


async def inspector(app: VibeboxApp, backend: FakeBackend, pilot: Pilot[Any]) -> None:
    directory = demo_sessions()[0].directory
    backend.secrets[directory] = (SecretRow("GITHUB_TOKEN", ("api.github.com",), "command"),)
    backend.log_network(directory, "10:15:02 allowed proxy pypi.org:443 (listed)")
    backend.log_network(
        directory, "10:15:03 allowed proxy api.github.com:443 (injected GITHUB_TOKEN)"
    )
    backend.log_network(directory, "10:15:04 blocked dns telemetry.example (not listed)")
    await attached(app, backend, pilot)
    app.action_explain()
    await wait_for(pilot, lambda: app.inspector.data is not None)
    await pilot.pause(0.1)


async def confirm(app: VibeboxApp, backend: FakeBackend, pilot: Pilot[Any]) -> None:
    await attached(app, backend, pilot)
    stream = backend.streams[fake_id(1)]
    stream.feed(f":new\r\n\x1b]7777;vibebox-command=new;{stream.command_token}\x07".encode())
    await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen) and app.screen.armed)
    await pilot.pause(0.1)


async def help_screen(app: VibeboxApp, backend: FakeBackend, pilot: Pilot[Any]) -> None:
    await attached(app, backend, pilot)
    app.action_help()
    await wait_for(pilot, lambda: isinstance(app.screen, HelpScreen))
    await pilot.pause(0.1)


async def booting(app: VibeboxApp, backend: FakeBackend, pilot: Pilot[Any]) -> None:
    await wait_for(pilot, lambda: "waiting for SSH" in app.progress.steps)
    await wait_for(pilot, lambda: app.browser.option_count == 4)
    app.progress.focus()
    await pilot.press("ctrl+o")
    await pilot.pause(0.2)


async def error(app: VibeboxApp, backend: FakeBackend, pilot: Pilot[Any]) -> None:
    await wait_for(pilot, lambda: isinstance(app.screen, ErrorScreen))
    await wait_for(pilot, lambda: app.browser.option_count == 4)
    await pilot.pause(0.1)


async def vim(app: VibeboxApp, backend: FakeBackend, pilot: Pilot[Any]) -> None:
    await wait_for(pilot, lambda: app.attachment is not None)
    recording = HERE.parent / "tests" / "data" / "terminal" / "vim.bin"
    await wait_for(pilot, lambda: app.terminal.emulator.screen.columns == 80)
    backend.streams[fake_id(1)].feed(recording.read_bytes()[:2211])
    await wait_for(pilot, lambda: app.terminal.emulator.screen.in_alt)
    await pilot.pause(0.2)


async def approval(app: VibeboxApp, backend: FakeBackend, pilot: Pilot[Any]) -> None:
    # Armed: the dialog takes "y" only after ConfirmScreen.ARM_SECONDS, and says so then.
    await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen) and app.screen.armed)
    await wait_for(pilot, lambda: app.browser.option_count == 4)
    await pilot.pause(0.1)


def backend_for(name: str) -> FakeBackend:
    sessions = demo_sessions()
    if name == "approval":
        backend = FakeBackend(sessions, project=sessions[0].directory, prompt=b"")
        backend.unapproved[sessions[0].directory] = (
            'network.entries: + "paste.example"',
            'mounts: + "~/.ssh:~/.ssh:ro"',
        )
        return backend
    if name == "booting":
        return FakeBackend(sessions, project=sessions[1].directory, hold_boot=asyncio.Event())
    if name == "error":
        failure = VMError(
            "The VM of ml-notebooks gave no SSH within 240 s with accel=kvm "
            "(console: 'Booting the kernel.' and nothing after).",
            hint='KVM may hang under nested virtualisation: set accel = "tcg" in vibebox.toml.',
        )
        return FakeBackend(sessions, project=sessions[1].directory, fail_attach=failure)
    return FakeBackend(sessions, project=sessions[0].directory, prompt=b"")


SCENES: dict[str, tuple[Scene, tuple[int, int]]] = {
    "dashboard": (attached, SIZE),
    "inspector": (inspector, SIZE),
    "confirm-new": (confirm, SIZE),
    "help": (help_screen, SIZE),
    "booting": (booting, SIZE),
    "error": (error, SIZE),
    "approval": (approval, SIZE),
    "vim": (vim, (116, 26)),  # the terminal area is 80x24 here
    "small-80x24": (attached, (80, 24)),
}


async def shoot(name: str, scene: Scene, size: tuple[int, int]) -> Path:
    backend = backend_for(name)
    app = VibeboxApp(backend, live_clock=False)
    async with app.run_test(size=size) as pilot:
        await scene(app, backend, pilot)
        path = Path(app.save_screenshot(f"{name}.svg", str(HERE)))
        if backend.hold_boot is not None:
            backend.hold_boot.set()
    return path


def main() -> int:
    try:
        import cairosvg  # type: ignore[import-untyped]
    except ImportError:
        cairosvg = None
    for name, (scene, size) in SCENES.items():
        svg = asyncio.run(shoot(name, scene, size))
        print(f"wrote {svg.relative_to(HERE.parent)}")
        if cairosvg is not None:
            png = svg.with_suffix(".png")
            cairosvg.svg2png(url=str(svg), write_to=str(png))
            print(f"wrote {png.relative_to(HERE.parent)}")
    if cairosvg is None:
        print("cairosvg is not installed: SVGs only (pip install cairosvg for PNGs)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
