"""The VT emulator: bytes in, screen state out; pure Python, no screen library."""
