"""The per-terminal secret that makes a vibebox command (``:new``, ``:exit``...) unforgeable.

The guest shell's ``:new`` prints ``ESC ] 7777 ; vibebox-command=new;TOKEN BEL`` and the
dashboard acts on it. Without a secret, any program output that holds the same bytes (``cat``
of a file a cloned repository ships, a hostile build script) would trigger it. So the host
makes a fresh random token for every PTY it opens and hands it to the guest's login shell in the
SSH ``env`` request (:data:`ENV_NAME`, accepted by the guest's sshd). ``shell.bash`` moves it into
a shell variable that is not exported and removes it from the environment, so programs the shell
runs, and files they write, never carry it. The host acts only on a command whose token
:func:`matches` the PTY's own, compared in constant time; everything else is ignored.

What this does not stop: guest root (or the user's own processes) can read the shell's memory
or its initial environment (``/proc/<pid>/environ``) and forge a command. That is why a command
can at most *ask* (``:new`` opens a dialog that ignores keys typed before it appeared) or leave
the dashboard (``:exit``); nothing destructive happens on a command alone.
"""

from __future__ import annotations

import hmac
import re
import secrets

#: The environment variable that carries the token to the guest's login shell.
ENV_NAME = "VIBEBOX_COMMAND_TOKEN"
_FORMAT = re.compile(r"[0-9a-f]{32}")


def new_token() -> str:
    """A fresh token: 128 random bits as 32 lowercase hex digits."""
    return secrets.token_hex(16)


def is_token(value: object) -> bool:
    """True when ``value`` has the form of a token (so it is safe in an env value)."""
    return isinstance(value, str) and _FORMAT.fullmatch(value) is not None


def matches(expected: str | None, got: str) -> bool:
    """True when ``got`` is the token ``expected`` (constant time; no token never matches)."""
    if not expected or not is_token(expected):
        return False
    return hmac.compare_digest(expected.encode("ascii"), got.encode("utf-8", "surrogateescape"))
