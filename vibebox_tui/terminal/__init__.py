"""The embedded terminal: an xterm-compatible emulator and the Textual widget showing it."""
