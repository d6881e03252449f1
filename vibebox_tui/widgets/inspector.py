"""The inspector (``:explain``): what this session can see and reach, live.

It only draws an :class:`~vibebox_tui.backend.base.InspectorData`; the app polls the backend for a
changed fingerprint (config mtime, VM state, network log) and hands a new one over.
"""

from __future__ import annotations

from pathlib import Path

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.widgets import Static

from vibebox_tui.backend.base import InspectorData
from vibebox_tui.safe import clean
from vibebox_tui.widgets.browser import clip, short_directory
from vibebox_tui.widgets.states import state_style, state_symbol

RECENT_NETWORK_LINES = 8


def _heading(text: Text, title: str, extra: str = "") -> None:
    if text:
        text.append("\n\n")
    text.append(title, style="bold underline")
    if extra:
        text.append(f"  {extra}", style="bold")


def render_inspector(data: InspectorData, width: int = 40) -> Text:
    """The inspector's text for ``data``, long paths clipped to ``width`` cells.

    Everything in ``data`` may be guest-derived (paths, host names in the network log, the
    project name): each string is escaped with :func:`~vibebox_core.sanitize.clean` and drawn
    as plain :class:`~rich.text.Text`, never as markup.
    """
    text = Text()
    _heading(text, "Session")
    text.append(
        f"\n  {clean(data.session_id[:8]) if data.session_id else 'none yet'}", style="cyan"
    )
    text.append(f"  {clean(data.project.name)}", style="bold")
    if data.problem:
        text.append(f"\n  {clean(data.problem)}", style="red")
    if data.unapproved:  # what follows is the approved snapshot; this is not enforced
        text.append("\n  vibebox.toml asks for (not approved, not enforced):", style="red")
        for line in data.unapproved:
            text.append(f"\n    {clean(line)}", style="red")

    _heading(text, "VM")
    state = clean(data.vm_state or "unknown", 40)
    text.append(f"\n  {state_symbol(state)} {state}", style=state_style(state))
    rows = [
        ("IPv4", clean(data.ipv4 or "—", 64)),
        ("cpus", str(data.cpus) if data.cpus is not None else "—"),
        ("memory", f"{data.memory_mb} MB" if data.memory_mb is not None else "—"),
    ]
    if data.attached is not None:
        rows.append(("attached", str(data.attached)))
    for label, value in rows:
        text.append(f"\n  {label:<9}{value}")

    _heading(text, "Mounts")
    if not data.mounts:
        text.append("\n  none", style="dim")
    for mount in data.mounts:
        flags = " default" if mount.default else ""
        host = clip(clean(short_directory_str(mount.host)), width - 6 - len(flags))
        text.append(f"\n  {host}  ")
        mode, colour = ("ro", "yellow") if mount.read_only else ("rw", "green")
        text.append(mode, style=colour)
        text.append(flags, style="dim")
        text.append("\n    → ", style="dim")
        text.append(clip(clean(mount.guest), width - 6))

    _heading(text, "Network", clean(data.network_mode, 40))
    if data.network_entries:
        for entry in data.network_entries:
            text.append(f"\n  {clean(entry)}")
    else:
        empty = "nothing allowed" if data.network_mode == "allowlist" else "nothing blocked"
        text.append(f"\n  {empty}", style="dim")
    for port in data.ports:
        text.append(f"\n  port {clean(port)}", style="dim")
    if data.policy_applied == "live":
        text.append("\n  approved policy applied live", style="green")
    elif data.policy_applied == "next start":
        text.append("\n  approved change applies at next start:", style="yellow")
        for line in data.policy_pending:
            text.append(f"\n    {clean(line)}", style="yellow")
    text.append("\n  recent connections", style="italic")
    recent = data.recent_network[-RECENT_NETWORK_LINES:]
    if not recent:
        text.append("\n    none logged yet", style="dim")
    for line in recent:
        style = "red" if " blocked " in f" {line} " else "green"
        text.append(f"\n    {clean(line)}", style=style)

    if data.provision:
        _heading(text, "Provisioning")
        style = "yellow" if data.provision_warn else ""
        text.append(f"\n  {clean(data.provision, 400)}", style=style)

    _heading(text, "Storage")
    for label, path in data.storage:
        if len(label) < 12:
            text.append(f"\n  {label:<12}", style="dim")
        else:  # a long label gets its own line
            text.append(f"\n  {label}\n  {'':<12}", style="dim")
        text.append(clip(clean(path), width - 14))
    return text


def short_directory_str(path: str) -> str:
    return short_directory(Path(path))


class Inspector(VerticalScroll, can_focus=True):
    """A scrollable panel showing one session's explain model."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.data: InspectorData | None = None

    def compose(self) -> ComposeResult:
        yield Static(Text("Loading…", style="dim"), id="inspector-body")

    def on_mount(self) -> None:
        self.border_title = "Inspector"

    def show_data(self, data: InspectorData) -> None:
        """Draw ``data`` (no-op when unchanged)."""
        if data == self.data:
            return
        self.data = data
        self._redraw()

    def _redraw(self) -> None:
        if self.data is not None:
            width = self.scrollable_content_region.width or 40
            self.query_one("#inspector-body", Static).update(render_inspector(self.data, width))

    def on_resize(self) -> None:
        self._redraw()

    @property
    def text(self) -> str:
        """The plain text shown (for tests)."""
        return render_inspector(self.data).plain if self.data else ""
