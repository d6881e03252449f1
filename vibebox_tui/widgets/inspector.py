"""The inspector (``:explain``): what this session can see and reach, live, and where the
network policy is steered from its log.

It draws an :class:`~vibebox_tui.backend.base.InspectorData`; the app polls the backend for a
changed fingerprint (config mtime, VM state, network log) and hands a new one over. While the
inspector has the focus (the user moved it there: tab, a click; showing it never takes the
focus from the terminal), up/down and j/k move a cursor over the recent network entries and
``a``/``b`` ask to allow or block the entry's host (:class:`Inspector.SteerRequested`); the app
asks for confirmation and lets the core do it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.geometry import Region
from textual.message import Message
from textual.widgets import Static

from vibebox_tui.backend.base import InspectorData, NetLine
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


def render_inspector(data: InspectorData, width: int = 40, cursor: int | None = None) -> Text:
    """The inspector's text for ``data``, long paths clipped to ``width`` cells.

    Everything in ``data`` may be guest-derived (paths, host names in the network log, the
    project name): each string is escaped with :func:`~vibebox_core.sanitize.clean` and drawn
    as plain :class:`~rich.text.Text`, never as markup. ``cursor`` marks one of the shown
    network entries (an index into :func:`shown_network`).
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
    recent = shown_network(data)
    if not recent:
        text.append("\n    none logged yet", style="dim")
    for index, row in enumerate(recent):
        style = "red" if row.verdict == "blocked" else "green"
        if index == cursor:
            text.append("\n  ▸ ")
            text.append(clean(row.line), style=f"{style} reverse")
        else:
            text.append(f"\n    {clean(row.line)}", style=style)
    if cursor is not None and recent:
        text.append("\n  a allow  b block the selected host", style="dim")

    if data.secrets:
        _heading(text, "Secrets", "host-held")
        for secret in data.secrets:
            text.append(f"\n  {clean(secret.name, 64)}", style="bold")
            text.append(f"  from {clean(secret.source_kind, 16)}", style="dim")
            hosts = ", ".join(clean(host, 80) for host in secret.hosts)
            text.append(f"\n    → {clip(hosts, width - 6)}")

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


def shown_network(data: InspectorData) -> tuple[NetLine, ...]:
    """The network entries the inspector lists (the newest :data:`RECENT_NETWORK_LINES`)."""
    return data.recent_network[-RECENT_NETWORK_LINES:]


def short_directory_str(path: str) -> str:
    return short_directory(Path(path))


class Inspector(VerticalScroll, can_focus=True):
    """A scrollable panel showing one session's explain model; its network entries can be
    selected and their host allowed or blocked."""

    BINDINGS = [
        Binding("up,k", "move(-1)", "Previous entry", show=False),
        Binding("down,j", "move(1)", "Next entry", show=False),
        Binding("a", "steer('allow')", "Allow host"),
        Binding("b", "steer('block')", "Block host"),
    ]

    @dataclass(eq=False)
    class SteerRequested(Message):
        """The user asked to allow or block ``entry.host`` (the host the guest asked for, not
        checked yet: the core refuses what cannot be steered)."""

        entry: NetLine
        action: Literal["allow", "block"]

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.data: InspectorData | None = None
        #: The selected network entry (an index into shown_network), None: none yet.
        self.cursor: int | None = None
        # Set by the focus events themselves: has_focus may not say so yet while they run.
        self._focused = False

    def compose(self) -> ComposeResult:
        yield Static(Text("Loading…", style="dim"), id="inspector-body")

    def on_mount(self) -> None:
        self.border_title = "Inspector"

    def show_data(self, data: InspectorData) -> None:
        """Draw ``data`` (no-op when unchanged); the selected entry stays selected."""
        if data == self.data:
            return
        selected = self.selected
        self.data = data
        rows = shown_network(data)
        if self.cursor is not None:
            if selected in rows:
                self.cursor = rows.index(selected)
            else:
                self.cursor = min(self.cursor, len(rows) - 1) if rows else None
        self._redraw()

    @property
    def selected(self) -> NetLine | None:
        """The network entry under the cursor."""
        if self.data is None or self.cursor is None:
            return None
        rows = shown_network(self.data)
        return rows[self.cursor] if 0 <= self.cursor < len(rows) else None

    def _redraw(self) -> None:
        if self.data is not None:
            width = self.scrollable_content_region.width or 40
            cursor = self.cursor if self._focused else None
            body = render_inspector(self.data, width, cursor)
            self.query_one("#inspector-body", Static).update(body)
            if cursor is not None:
                marker = body.plain.find("  ▸ ")
                self.scroll_to_region(
                    Region(0, body.plain[:marker].count("\n"), 1, 1), animate=False
                )

    def on_resize(self) -> None:
        self._redraw()

    def on_focus(self) -> None:
        self._focused = True
        if self.cursor is None and self.data is not None and shown_network(self.data):
            self.cursor = len(shown_network(self.data)) - 1  # the newest entry
        self._redraw()

    def on_blur(self) -> None:
        self._focused = False
        self._redraw()

    def action_move(self, step: int) -> None:
        if self.data is None:
            return
        rows = shown_network(self.data)
        if not rows:
            return
        current = len(rows) - 1 if self.cursor is None else self.cursor
        self.cursor = max(0, min(len(rows) - 1, current + step))
        self._redraw()

    def action_steer(self, action: str) -> None:
        entry = self.selected
        if entry is None:
            self.notify("No network entry selected", severity="warning", markup=False)
            return
        self.post_message(self.SteerRequested(entry, "allow" if action == "allow" else "block"))

    @property
    def text(self) -> str:
        """The plain text shown (for tests)."""
        if not self.data:
            return ""
        return render_inspector(self.data, cursor=self.cursor if self._focused else None).plain
