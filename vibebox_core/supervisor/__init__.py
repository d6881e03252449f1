"""The per-session supervisor: the server process, how to reach it, and its terminal relay.

``server`` (the process: reference count, grace shutdown, the socket server), ``roles`` (what
it needs from the VM, the shells and the session's services), ``client`` (what
a vibebox process uses: probe, spawn, connect, ask), ``lock`` (the start/stop lock), ``relay``
(PTYs framed over the socket), ``shared_ssh`` (the supervisor's one SSH connection) and
``__main__`` (``python -m vibebox_core.supervisor``, the composition root).
"""
