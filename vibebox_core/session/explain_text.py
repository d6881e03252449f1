"""The plain text ``vibebox explain`` prints, from the explain model.

The model (:class:`~vibebox_core.session.explain_model.Explain`) is gathered in
:mod:`vibebox_core.session.explain`; ``--json`` prints its
:meth:`~vibebox_core.session.explain_model.Explain.to_dict` instead.
"""

from __future__ import annotations

from vibebox_core.session.explain_model import Explain

_SOURCES = {
    "approved": "the approved snapshot (vibebox.toml matches it)",
    "changed": "the approved snapshot (vibebox.toml differs: see pending)",
    "new": "the defaults (nothing approved yet for this project)",
}


def render_text(explain: Explain) -> str:
    """Render the model as the plain text ``vibebox explain`` prints."""
    out: list[str] = [f"project  {explain.project}"]
    out.append(f"session  {explain.session_id or '(none yet: `vibebox` here creates it)'}")
    if explain.approval:
        source = _SOURCES.get(explain.approval, "the approved snapshot")
        out.append(f"enforced {source}")
    out.append("")
    out.append("mounts (host → guest)")
    for mount in explain.mounts:
        access = "ro" if mount.read_only else "rw"
        note = "  (project, default)" if mount.default else ""
        out.append(f"  {mount.host} → {mount.guest}  {access}{note}")
    out.append("")
    out.append(f"network  {explain.network.summary}")
    for entry in explain.network.entries:
        out.append(f"  {entry}")
    if explain.network.ports:
        out.append(
            "  ports (host loopback → guest, while attached): " + ", ".join(explain.network.ports)
        )
    if explain.secrets:
        out.append("")
        out.append("secrets  (the guest holds a placeholder; the host adds the value)")
        for secret in explain.secrets:
            out.append(f"  {secret.describe()}")
    if explain.file_problem:
        out.append("")
        out.append("vibebox.toml is refused; the approved values above apply:")
        out.append(f"  {explain.file_problem}")
    if explain.pending:
        out.append("")
        if explain.pending_asks:
            out.append("pending: vibebox.toml asks for this, NOT approved and NOT enforced")
            out.append("  (the next start asks; `vibebox approve` shows and approves it)")
        else:
            out.append("pending: vibebox.toml asks for this, not approved yet")
            out.append("  (it grants nothing beyond the defaults: the first start approves it)")
        out.extend(f"  {line}" for line in explain.pending)
    shown = explain.provision
    if shown is not None and (shown.steps != 0 or shown.record is not None):
        steps = shown.steps
        listed = "refused file" if steps is None else f"{steps} step{'s' if steps != 1 else ''}"
        out.append("")
        out.append(f"provision  {listed} in [provision] run")
        out.append(f"  {shown.summary}")
    out.append("")
    out.append("storage")
    width = max(len(item.label) for item in explain.storage)
    for item in explain.storage:
        missing = "" if item.exists else "  (not created yet)"
        out.append(f"  {item.label:<{width}}  {item.path}{missing}")
    if explain.vm is not None:
        vm = explain.vm
        out.append("")
        attached = "" if vm.attached is None else f", {vm.attached} attached"
        out.append(f"vm  {vm.state}{attached}")
        out.append(f"  ipv4 {vm.ipv4 or '-'}, {vm.cpus} cpus, {vm.memory_mb} MiB")
    if explain.network_summary is not None:
        out.append("")
        out.append("network log")
        out.extend(f"  {line}" for line in explain.network_summary.lines())
    if explain.recent_network:
        out.append("")
        out.append("recent network")
        for event in explain.recent_network:
            out.append(f"  {event.describe()}")
    return "\n".join(out) + "\n"
