"""``vibebox-*`` domains, networks and filters no session owns, and the check listing them."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from vibebox_core.doctor.checks import Check
from vibebox_core.hypervisor.names import canonical_session_id, session_id_from_network_name


@dataclass(frozen=True)
class DomainFact:
    """A ``vibebox-*`` domain as doctor sees it."""

    name: str
    uuid: str
    #: The session id in ``.vibebox/session-id`` next to its disk (None when gone).
    cache_session_id: str | None = None


@dataclass(frozen=True)
class Leftovers:
    """Definitions without a session (names)."""

    domains: list[str] = field(default_factory=list)
    networks: list[str] = field(default_factory=list)
    filters: list[str] = field(default_factory=list)


def find_leftovers(
    domains: Iterable[DomainFact],
    networks: Iterable[str],
    filters: Iterable[str],
    known: Iterable[str],
) -> Leftovers:
    """The ``vibebox-*`` definitions no session owns.

    A session owns its domain (UUID = session id), its network and filter
    (``vibebox-<session id>``). A session is this index's, or any whose ``.vibebox/`` (next to
    the domain's disk) still names it: another ``VIBEBOX_HOME`` on the same libvirt is not a
    leftover.
    """
    owners = {canonical_session_id(sid) for sid in known}
    left = Leftovers()
    for dom in domains:
        sid = dom.uuid.lower()
        if sid in owners:
            continue
        if dom.cache_session_id is not None and dom.cache_session_id.lower() == sid:
            owners.add(sid)
            continue
        left.domains.append(dom.name)
    for name in networks:
        owner = session_id_from_network_name(name)
        if owner is not None and owner not in owners:
            left.networks.append(name)
    for name in filters:
        owner = session_id_from_network_name(name)
        if owner is not None and owner not in owners:
            left.filters.append(name)
    return left


def check_leftovers(left: Leftovers, *, uri: str) -> Check:
    """Nothing named ``vibebox-*`` is left without a session."""
    virsh = f"virsh -c {uri}"
    commands = [f"{virsh} destroy {name}; {virsh} undefine {name}" for name in left.domains]
    commands += [f"{virsh} net-destroy {n}; {virsh} net-undefine {n}" for n in left.networks]
    commands += [f"{virsh} nwfilter-undefine {name}" for name in left.filters]
    if not commands:
        return Check("leftovers", "ok", "no vibebox domains, networks or filters without a session")
    parts = []
    for what, names in (
        ("domain", left.domains),
        ("network", left.networks),
        ("filter", left.filters),
    ):
        if names:
            plural = "s" if len(names) > 1 else ""
            parts.append(
                f"{len(names)} {what}{plural} ({', '.join(names[:3])}{', …' * (len(names) > 3)})"
            )
    return Check(
        "leftovers",
        "fail",
        "left without a session: " + "; ".join(parts),
        "; ".join(commands[:4]) + ("; …" if len(commands) > 4 else ""),
        items=(*left.domains, *left.networks, *left.filters),
    )
