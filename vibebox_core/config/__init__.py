"""A project's ``vibebox.toml``: reading it safely, validating it, and what the host approved."""
