"""A running VM's disk through libvirt: pause and resume, and internal qcow2 snapshots by QEMU.

Checkpoints (:mod:`vibebox_core.session.checkpoint`) need a consistent disk state of a running
VM. What libvirt 9.0 offers here does not do it, measured on this stack (virtiofs shares,
QEMU 7.2):

- an internal snapshot with memory (``virsh snapshot-create-as DOM NAME``) is refused, because
  it migrates the VM's state to the file and vhost-user-fs cannot migrate: "Requested
  operation is not valid: cannot migrate domain: non-migratable device: 0000:00:03.0/
  vhost-user-fs";
- an internal disk-only snapshot (``<disk snapshot='internal'/>``, ``<memory
  snapshot='no'/>``) is refused: "Operation not supported: internal snapshot of a running VM
  must include the memory state";
- an external disk-only snapshot works, but switches the VM to a new overlay file (a chain
  to rebase or merge on every restore and removal, and libvirt 9.0 cannot revert to one).

So the VM is paused (libvirt ``suspend``: no vCPU runs, so the guest issues no write), QEMU
takes the internal snapshot of the disk's qcow2 node through its monitor (QMP
``blockdev-snapshot-internal-sync``, which flushes the node first), and the VM resumes; that
held the VM for about 20 ms here. The node is found with ``query-block`` by the disk's file
name. libvirt marks a domain whose monitor was used this way as tainted (``custom-monitor``
in its log): the commands only add or remove a snapshot inside the image, nothing libvirt
tracks.

QMP answers errors in its reply (``{"error": {"class", "desc"}}``), not as a libvirt error:
:meth:`LibvirtDisks._qmp` turns both into a :class:`~vibebox_core.errors.QemuError`.
"""

from __future__ import annotations

import json
import os
from typing import TYPE_CHECKING, Any

from vibebox_core.errors import QemuError
from vibebox_core.hypervisor.libvirt_connection import LibvirtConnection

if TYPE_CHECKING:
    import libvirt

#: libvirt_qemu.qemuMonitorCommand flag: the command is QMP (JSON), not HMP.
_QMP = 0
#: The longest QMP reply read (query-block of a VM with one disk and two shares is ~5 kB).
_REPLY_LIMIT = 1 << 20


class LibvirtDisks(LibvirtConnection):
    """Pause/resume and internal disk snapshots of running domains (a mixin of
    :class:`~vibebox_core.hypervisor.libvirt.LibvirtHypervisor`)."""

    def suspend(self, session_id: str) -> None:
        """Pause the VM's vCPUs (``virsh suspend``)."""
        dom = self._require(session_id, "pause the VM")
        with self._errors(f"pause VM {session_id}"):
            dom.suspend()

    def resume(self, session_id: str) -> None:
        """Let the paused VM run again (``virsh resume``)."""
        dom = self._require(session_id, "resume the VM")
        with self._errors(f"resume VM {session_id}"):
            dom.resume()

    def snapshot_disk(self, session_id: str, disk: str, name: str) -> None:
        """QMP ``blockdev-snapshot-internal-sync`` on the node of ``disk``."""
        dom = self._require(session_id, "snapshot the disk")
        node = self._disk_node(dom, disk)
        self._qmp(dom, "blockdev-snapshot-internal-sync", {"device": node, "name": name})

    def delete_disk_snapshot(self, session_id: str, disk: str, name: str) -> None:
        """QMP ``blockdev-snapshot-delete-internal-sync`` on the node of ``disk``."""
        dom = self._require(session_id, "delete a disk snapshot")
        node = self._disk_node(dom, disk)
        self._qmp(dom, "blockdev-snapshot-delete-internal-sync", {"device": node, "name": name})

    def _disk_node(self, dom: libvirt.virDomain, disk: str) -> str:
        """The node name of the qcow2 format layer whose file is ``disk``."""
        blocks = self._qmp(dom, "query-block", None)
        wanted = os.path.realpath(disk)
        for block in blocks if isinstance(blocks, list) else []:
            inserted = block.get("inserted") if isinstance(block, dict) else None
            if not isinstance(inserted, dict):
                continue
            file, node = inserted.get("file"), inserted.get("node-name")
            if isinstance(file, str) and isinstance(node, str) and os.path.realpath(file) == wanted:
                return node
        raise QemuError(
            f"the running VM does not use the disk {disk} (QEMU's block devices name another)",
            hint="`vibebox stop`, then try again (a stopped disk is handled with qemu-img)",
        )

    def _qmp(self, dom: libvirt.virDomain, command: str, arguments: dict[str, str] | None) -> Any:
        """Run one QMP command on the domain's monitor; its ``return`` value.

        Raises:
            QemuError: QEMU answered with an error (its ``desc`` quoted), or not in QMP.
        """
        import libvirt_qemu  # deferred for start-up: see libvirt_connection

        request: dict[str, Any] = {"execute": command}
        if arguments is not None:
            request["arguments"] = arguments
        with self._errors(f"ask QEMU to {command}"):
            reply_text = libvirt_qemu.qemuMonitorCommand(dom, json.dumps(request), _QMP)
        try:
            reply = json.loads(str(reply_text)[:_REPLY_LIMIT])
        except ValueError:
            reply = None
        if not isinstance(reply, dict):
            raise QemuError(f"QEMU sent no QMP answer to {command}")
        error = reply.get("error")
        if error is not None:
            desc = error.get("desc") if isinstance(error, dict) else error
            raise QemuError(
                f"QEMU refused {command}: {desc}",
                hint="see the VM's log in /var/log/libvirt/qemu/",
            )
        return reply.get("return")
