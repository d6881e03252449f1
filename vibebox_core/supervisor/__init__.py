"""The per-session supervisor: the server process, how to reach it, and its terminal relay."""
