"""Sessions: starting one, its live status, taking it down, running commands, explaining it."""
