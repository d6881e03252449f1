"""``[network] ports``: host loopback ports forwarded to the guest while a vibebox is attached.

Forwarding rides the SSH connection vibebox already holds to the guest, so it needs no host
firewall rule and no route into the session network, and it ends when the connection does.
Listeners bind 127.0.0.1 only: a forwarded port is for the user on this machine, never for
the network around it.
"""

from __future__ import annotations

import errno
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from vibebox_core.config.schema import PortForward
from vibebox_core.config.snapshot import read_approved
from vibebox_core.errors import NetworkPolicyError

if TYPE_CHECKING:
    import asyncssh

FORWARD_HOST = "127.0.0.1"


async def start_port_forwards(
    conn: asyncssh.SSHClientConnection, ports: Sequence[PortForward]
) -> list[asyncssh.SSHListener]:
    """Listen on ``127.0.0.1:<host_port>`` for each entry and forward to the guest's port.

    All or nothing: when one port cannot be opened the ones already opened are closed.

    Args:
        conn: the SSH connection to the guest.
        ports: the ``[network] ports`` of the config.

    Returns:
        The listeners; close them (``listener.close()``) on detach.

    Raises:
        NetworkPolicyError: a host port is already taken (or cannot be bound); the message
            names the port and the hint says how to resolve it.
    """
    import asyncssh

    listeners: list[asyncssh.SSHListener] = []
    try:
        for port in ports:
            try:
                listener = await conn.forward_local_port(
                    FORWARD_HOST, port.host_port, "localhost", port.guest_port
                )
            except OSError as exc:
                if exc.errno == errno.EADDRINUSE:
                    raise NetworkPolicyError(
                        f"cannot forward port {port.host_port} to the guest: "
                        f"127.0.0.1:{port.host_port} is already in use on this machine",
                        hint=(
                            f"stop the program listening there (`ss -ltnp 'sport = :"
                            f"{port.host_port}'` shows it) or map another host port in "
                            f'vibebox.toml, e.g. ports = ["{port.host_port + 1}:'
                            f'{port.guest_port}"]'
                        ),
                    ) from exc
                raise NetworkPolicyError(
                    f"cannot forward port {port.host_port} to the guest: {exc.strerror or exc}",
                    hint="check [network] ports in vibebox.toml",
                ) from exc
            except asyncssh.Error as exc:
                raise NetworkPolicyError(
                    f"the guest refused to forward port {port.guest_port}: {exc.reason}",
                    hint="check that the guest's sshd allows TCP forwarding",
                ) from exc
            listeners.append(listener)
    except BaseException:
        for listener in listeners:
            listener.close()
        raise
    return listeners


def close_port_forwards(listeners: Sequence[asyncssh.SSHListener]) -> None:
    """Close listeners returned by :func:`start_port_forwards`."""
    for listener in listeners:
        listener.close()


@dataclass
class PortForwards:
    """Forwards held open: what is open and what could not be.

    The dashboard's are held by the session's supervisor, shared by every dashboard attached
    (:mod:`vibebox_core.supervisor.server`); a port another program holds is reported in
    :attr:`problems`, never fatal.

    Attributes:
        listeners: the open listeners.
        problems: one error per port that could not be forwarded (message + hint).
    """

    listeners: list[asyncssh.SSHListener] = field(default_factory=list)
    problems: list[NetworkPolicyError] = field(default_factory=list)

    @property
    def ports(self) -> list[int]:
        """The host ports that are forwarded."""
        return [listener.get_port() for listener in self.listeners]

    def close(self) -> None:
        close_port_forwards(self.listeners)
        self.listeners = []


async def open_port_forwards(
    conn: asyncssh.SSHClientConnection, ports: Sequence[PortForward]
) -> PortForwards:
    """Forward each port on its own; collect the ones that fail instead of raising."""
    result = PortForwards()
    for port in ports:
        try:
            result.listeners += await start_port_forwards(conn, [port])
        except NetworkPolicyError as exc:
            result.problems.append(exc)
    return result


def approved_ports(
    extra: Mapping[str, Any], configured: Sequence[PortForward]
) -> list[PortForward]:
    """The port forwards to open: the approved ones from the session index.

    ``ports`` is part of ``[network]``, which the guest can edit; only approved forwards are
    opened. Before any approval (a new session) the configured ones are used.

    Args:
        extra: the session index entry's ``extra``.
        configured: ``config.network.ports``.
    """
    approved = read_approved(extra)
    if approved is None:
        return list(configured)
    pairs = approved.get("network", {}).get("ports", [])
    return [PortForward(int(h), int(g)) for h, g in pairs]
