"""The global session index, ``~/.vibebox/sessions.toml``: which directory has which session."""
