"""The libvirt connection under the adapter: opened lazily, shared by threads, errors translated.

:class:`LibvirtConnection` holds the one ``virConnect`` of a
:class:`~vibebox_core.hypervisor.libvirt.LibvirtHypervisor` and the few calls every method is
built from: look up a session's domain or network (None when missing), run a call tolerating
some error codes, and turn every other ``libvirtError`` into a
:class:`~vibebox_core.errors.VMError` (:mod:`vibebox_core.hypervisor.errors`).

libvirt-python is imported inside the functions that call it, never at module level: it loads
a C library (about 18 ms here), and what never talks to libvirt (the dashboard and the tests on
the fake hypervisor, commands that only read the index) should not pay for it.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, TypeVar

from vibebox_core.errors import VMError
from vibebox_core.hypervisor import names
from vibebox_core.hypervisor.errors import translate_libvirt_error
from vibebox_core.hypervisor.failure import ERR_NO_DOMAIN, ERR_NO_NETWORK

if TYPE_CHECKING:
    import libvirt

T = TypeVar("T")

#: ``VIR_DOMAIN_XML_INACTIVE``: a domain's persistent definition, not its live one.
XML_INACTIVE = 2

_silenced = False
_silence_lock = threading.Lock()


def silence_libvirt() -> None:
    """Stop libvirt from printing every error on stderr; vibebox reports them itself."""
    global _silenced
    with _silence_lock:
        if _silenced:
            return
        import libvirt  # deferred for start-up: see the module docstring

        def _ignore(_ctx: object, _err: object) -> None:
            return None

        libvirt.registerErrorHandler(_ignore, None)
        _silenced = True


class LibvirtConnection:
    """A lazily opened, thread-safe libvirt connection and the calls built on it.

    Args:
        uri: libvirt connection URI, e.g. ``qemu:///system`` or ``qemu+ssh://host/system``.
    """

    def __init__(self, uri: str = "qemu:///system") -> None:
        self.uri = uri
        self._conn: libvirt.virConnect | None = None
        self._lock = threading.Lock()

    @contextmanager
    def _errors(self, action: str) -> Iterator[None]:
        import libvirt  # deferred for start-up: see the module docstring

        try:
            yield
        except libvirt.libvirtError as exc:
            raise translate_libvirt_error(exc, action=action, uri=self.uri) from exc

    def _connection(self) -> libvirt.virConnect:
        import libvirt  # deferred for start-up: see the module docstring

        silence_libvirt()
        with self._lock:
            conn = self._conn
            if conn is not None:
                # A cheap round trip: without an event loop libvirt notices a restarted daemon
                # only when a call fails, so check here and reconnect instead of failing.
                try:
                    conn.getLibVersion()
                    return conn
                except libvirt.libvirtError:
                    with contextlib.suppress(libvirt.libvirtError):
                        conn.close()
                self._conn = None
            with self._errors(f"connect to {self.uri}"):
                conn = libvirt.open(self.uri)
            if conn is None:  # pragma: no cover - old bindings returned None
                raise VMError(f"cannot reach libvirt at {self.uri}")
            self._conn = conn
            return conn

    def close(self) -> None:
        """Drop the connection (reopened on the next call)."""
        with self._lock:
            conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):  # closing a dead connection must not raise
                conn.close()

    @staticmethod
    def _code(exc: Any) -> int:
        return int(exc.get_error_code() or 0)

    def _lookup(self, session_id: str) -> libvirt.virDomain | None:
        """The session's domain, or None when there is none."""
        import libvirt  # deferred for start-up: see the module docstring

        conn = self._connection()
        sid = names.canonical_session_id(session_id)
        try:
            return conn.lookupByUUIDString(sid)
        except libvirt.libvirtError as exc:
            if self._code(exc) == ERR_NO_DOMAIN:
                return None
            raise translate_libvirt_error(
                exc, action=f"look up the VM of session {sid}", uri=self.uri
            ) from exc

    def _require(self, session_id: str, action: str) -> libvirt.virDomain:
        """The session's domain; a VMError that says how to define it again when there is none."""
        dom = self._lookup(session_id)
        if dom is None:
            raise VMError(
                f"cannot {action}: session {session_id} has no VM defined",
                hint="`vibebox` in the project directory defines it again",
            )
        return dom

    def _network(self, session_id: str) -> libvirt.virNetwork | None:
        return self._network_by_name(names.network_name(session_id))

    def _network_by_name(self, name: str) -> libvirt.virNetwork | None:
        import libvirt  # deferred for start-up: see the module docstring

        conn = self._connection()
        try:
            return conn.networkLookupByName(name)
        except libvirt.libvirtError as exc:
            if self._code(exc) == ERR_NO_NETWORK:
                return None
            raise translate_libvirt_error(
                exc, action=f"look up network {name}", uri=self.uri
            ) from exc

    def _tolerant(self, action: str, call: Callable[[], T], *ignore: int) -> T | None:
        """Run ``call``; return None for the ``ignore`` error codes, translate the others."""
        import libvirt  # deferred for start-up: see the module docstring

        try:
            return call()
        except libvirt.libvirtError as exc:
            if self._code(exc) in ignore:
                return None
            raise translate_libvirt_error(exc, action=action, uri=self.uri) from exc
