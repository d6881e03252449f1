"""Reads keys in raw mode and records the bytes of each, for the key table e2e tests.

Runs in the guest (and on the host, for the local run): ``key_reader.py OUT SETUP RESET TAG``.
SETUP and RESET are hex: what to write to the terminal before reading (the modes of the key
table's group) and after. Every ``§`` read ends a record: one line of hex in OUT; ``¤`` ends
the run. Prints ``READY TAG`` once the modes are set and ``DONE TAG`` at the end.
"""

import os
import sys
import termios
import tty

SEPARATOR = "§".encode()
END = "¤".encode()


def main() -> None:
    out_path, setup, reset, tag = sys.argv[1:5]
    fd = sys.stdin.fileno()
    saved = termios.tcgetattr(fd)
    tty.setraw(fd)
    try:
        os.write(1, bytes.fromhex(setup) + f"READY {tag}\r\n".encode())
        pending = b""
        with open(out_path, "w") as out:
            while True:
                data = os.read(fd, 65536)
                if not data:
                    break
                pending += data
                while SEPARATOR in pending:
                    record, pending = pending.split(SEPARATOR, 1)
                    out.write(record.hex() + "\n")
                    out.flush()
                if END in pending:
                    break
    finally:
        os.write(1, bytes.fromhex(reset))
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)
        os.write(1, f"DONE {tag}\r\n".encode())


if __name__ == "__main__":
    main()
