"""``python -m vibebox_core.supervisor <project-dir>``: builds and runs one session's supervisor.

The composition root: it parses the command line, reads the approved config for the defaults,
builds the session's pieces (the libvirt hypervisor, the network policy services, the shared
SSH connection for relayed terminals), detaches and runs
:class:`~vibebox_core.supervisor.server.Supervisor`.

The module name is the marker (:data:`vibebox_core.supervisor.client.MODULE`) that
:func:`vibebox_core.supervisor.client.clean_stale` looks for in a supervisor's command line,
the same before and after the move into a package, so supervisors started by an older vibebox
are still recognised.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import sys
from pathlib import Path
from typing import Any

from vibebox_core import paths
from vibebox_core.config.approval import enforced_config
from vibebox_core.config.snapshot import read_approved
from vibebox_core.errors import VibeboxError
from vibebox_core.hypervisor.base import Hypervisor
from vibebox_core.hypervisor.libvirt import LibvirtHypervisor
from vibebox_core.index.sessions import SessionIndex
from vibebox_core.network.enforce import start_session_network
from vibebox_core.paths import ProjectPaths
from vibebox_core.supervisor.roles import HypervisorVM, SessionServices
from vibebox_core.supervisor.server import Supervisor
from vibebox_core.supervisor.shared_ssh import SharedSSH

log = logging.getLogger("vibebox.supervisor")


async def session_services(
    project: ProjectPaths, session_id: str, hypervisor: Hypervisor | None = None
) -> SessionServices | None:
    """Start the session's host-side services; return them (to stop them and ask their status).

    The network policy's proxy and DNS filter
    (:func:`vibebox_core.network.enforce.start_session_network`, on the session network's
    gateway) start here, once the VM runs, enforcing the policy approved in the session index,
    and stop before the VM is shut down. Their status says whether an approved change waits
    for the next start.
    """
    if hypervisor is None:
        return None
    subnet = await asyncio.to_thread(hypervisor.network_subnet, session_id)
    if subnet is None:
        log.error("network policy: the session has no network; the guest gets no egress")
        return None

    def approved() -> dict[str, Any] | None:
        return read_approved(SessionIndex().get(session_id).extra)

    network = await start_session_network(
        project.network_log,
        subnet,
        approved,
        on_change=lambda when: log.info("approved network policy change applies: %s", when),
        # The session's CA and placeholder key; the proxy terminates TLS for the hosts that
        # carry a secret only when this boot's guest trusts the CA (the seed had it).
        secrets_dir=paths.session_secrets_dir(session_id),
        ca_trusted=(project.seed_dir / "ca.crt").is_file(),
    )
    enforcer = network.enforcer
    log.info(
        "network policy %s: proxy on %s:%d, DNS filter on %s:%d",
        enforcer.policy.mode,
        enforcer.gateway_ip,
        enforcer.proxy_port,
        enforcer.gateway_ip,
        enforcer.dns_port,
    )
    return network


def _daemonize() -> None:
    """Second fork: the first child exits so the daemon is re-parented (not our caller's)."""
    if os.fork() > 0:
        os._exit(0)


def _setup_logging(path: Path) -> None:
    handler = logging.FileHandler(path)
    handler.setFormatter(
        logging.Formatter("%(asctime)s supervisor[%(process)d] %(levelname)s %(message)s")
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)


async def _serve(project: ProjectPaths, session_id: str, uri: str, grace_ms: int) -> int:
    hypervisor = LibvirtHypervisor(uri, poll_interval=0.05)  # notice the power-off quickly
    supervisor = Supervisor(
        session_id,
        paths.supervisor_socket_path(session_id),
        project.supervisor_lock,
        HypervisorVM(hypervisor, session_id),
        grace=grace_ms / 1000.0,
        pid_path=project.supervisor_pid,
        services=lambda: session_services(project, session_id, hypervisor),
        terminals=SharedSSH(project, session_id, hypervisor),
    )
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, lambda: supervisor.request_stop("signal"))
    reason = await supervisor.run()
    log.info("exiting: %s", reason)
    hypervisor.close()
    return 0


def _config_defaults(project: ProjectPaths) -> tuple[str, int]:
    config = enforced_config(project)  # the approved snapshot, never the guest-writable file
    return config.box.libvirt_uri, config.supervisor.auto_shutdown_ms


def main(argv: list[str] | None = None) -> int:
    """``python -m vibebox_core.supervisor <project-dir>``: run one session's supervisor."""
    parser = argparse.ArgumentParser(prog="python -m vibebox_core.supervisor")
    parser.add_argument("project")
    parser.add_argument("--session-id")
    parser.add_argument("--uri")
    parser.add_argument("--grace-ms", type=int)
    parser.add_argument("--foreground", action="store_true", help="do not detach")
    args = parser.parse_args(argv)
    project = ProjectPaths.for_directory(args.project)
    try:
        session_id = args.session_id or project.session_id.read_text().strip()
        uri, grace_ms = args.uri, args.grace_ms
        if uri is None or grace_ms is None:
            default_uri, default_grace = _config_defaults(project)
            uri = uri or default_uri
            grace_ms = default_grace if grace_ms is None else grace_ms
    except (OSError, VibeboxError) as exc:
        print(f"supervisor: cannot start: {exc}", file=sys.stderr)
        return 1
    if not args.foreground:
        _daemonize()
        with contextlib.suppress(OSError):
            os.setsid()
    _setup_logging(project.supervisor_log)
    try:
        return asyncio.run(_serve(project, session_id, uri, grace_ms))
    except Exception:
        log.exception("supervisor failed")
        return 1


if __name__ == "__main__":
    sys.exit(main())
