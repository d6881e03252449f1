"""Every dashboard action the command palette lists: (title, description, action name)."""

from __future__ import annotations

PALETTE: tuple[tuple[str, str, str], ...] = (
    ("Attach to the selected session", "Enter in the session list", "attach_selected"),
    ("Delete the selected session", "Asks first (d in the session list)", "delete_selected"),
    ("New session (:new)", "Delete this session and start a fresh one (n)", "new_session"),
    (
        "Save a checkpoint",
        "Checkpoint the guest's disk now (a running VM pauses for a moment)",
        "save_checkpoint",
    ),
    (
        "Checkpoints",
        "List this session's checkpoints; restore (asks first) or remove one",
        "checkpoints",
    ),
    ("Explain (:explain)", "Show and focus the inspector", "explain"),
    ("Toggle inspector", "Show or hide the inspector (i)", "toggle_inspector"),
    ("Help (:help)", "List the vibebox commands (?)", "help"),
    ("New tab", "Another terminal into this session, a shell of its own (o)", "new_tab"),
    ("Close tab", "End the shown tab's shell; the last tab disconnects (w)", "close_tab"),
    ("Next tab", "Show the next tab (], or 1-9 for tab N)", "next_tab"),
    ("Previous tab", "Show the previous tab ([)", "previous_tab"),
    ("Focus terminal", "Move the focus to the terminal (t)", "focus_terminal"),
    ("Focus sessions", "Move the focus to the session list (s)", "focus_browser"),
    ("Console log", "While a VM boots: show or hide its console tail (c)", "toggle_console"),
    ("Exit (:exit)", "Leave vibebox; the VM stays up for the grace period (q)", "quit_app"),
)
