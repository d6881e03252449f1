"""One error root for vibebox, with one subclass per area.

Everything that can go wrong inside ``vibebox_core`` surfaces as a :class:`VibeboxError`
whose message a person can act on; libvirt, asyncssh and OS errors are translated at the
boundary where they happen, so the CLI and the dashboard never see a foreign exception.

Hierarchy::

    VibeboxError
    ├── ConfigError
    ├── SessionIndexError
    │   └── SessionNotFoundError
    ├── ImageError
    ├── VMError                      libvirt, translated by hypervisor.errors (by table)
    │   ├── LibvirtUnreachableError  the daemon does not answer / refuses this user
    │   ├── VirtiofsdError           a share could not be served
    │   ├── QemuError                QEMU refused the VM (disk format, memory, KVM)
    │   ├── StorageAccessError       a disk, kernel or log is missing or closed to QEMU
    │   ├── HostNetworkError         dnsmasq, firewall, subnet collision
    │   └── NwfilterError            the policy's nwfilter is missing or stale
    ├── SSHError                     asyncssh and OS errors, translated by ssh.connect.ssh_error
    │   └── SSHAuthError             the host key is not the pinned one, or the key was refused
    ├── SupervisorError
    ├── NetworkPolicyError
    ├── SecretError                  a secret's value cannot be read on the host (never holds it)
    ├── ProvisionError               a ``[provision] run`` step failed in the guest
    └── CheckpointError              a checkpoint name, or qemu-img/QEMU refused one
"""

from __future__ import annotations


class VibeboxError(Exception):
    """Root of every error vibebox raises on purpose.

    Attributes:
        hint: the next step a user can take, shown under the message (may be empty).
    """

    def __init__(self, message: str, *, hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message


class ConfigError(VibeboxError):
    """``vibebox.toml`` is missing a value, has a wrong one, or cannot be read."""


class SessionIndexError(VibeboxError):
    """``sessions.toml`` is damaged, locked away, or names an unknown session."""


class SessionNotFoundError(SessionIndexError):
    """No session matches the given id or directory."""


class ImageError(VibeboxError):
    """The base image store cannot build, find or verify an image."""


class VMError(VibeboxError):
    """libvirt refused or failed to define, start, stop or inspect a VM or its network."""


class SSHError(VibeboxError):
    """The guest's SSH server cannot be reached, or its host key is not the pinned one."""


class SSHAuthError(SSHError):
    """Either side refused the other: the guest's host key is not the one pinned, or the guest
    refused vibebox's key. Waiting for a booting guest cannot help, so nobody retries it."""


class SupervisorError(VibeboxError):
    """The per-session supervisor cannot be started, reached or stopped."""


class NetworkPolicyError(VibeboxError):
    """The network policy is invalid, unapproved, or cannot be enforced."""


class SecretError(VibeboxError):
    """A ``[[secrets]]`` value cannot be read on the host (its variable is unset, its file or
    command failed) or cannot be sent (a line break, a control character); the message names
    the secret and its source, never the value."""


class ProvisionError(VibeboxError):
    """A ``[provision] run`` step failed (or could not run) in the guest."""


class LibvirtUnreachableError(VMError):
    """libvirt does not answer at the configured URI, or refuses this user."""


class VirtiofsdError(VMError):
    """virtiofsd could not serve one of the VM's shares (QEMU then cannot start)."""


class QemuError(VMError):
    """QEMU itself refused or failed to run the VM (a bad disk, memory, KVM)."""


class StorageAccessError(VMError):
    """A file the VM needs (disk, kernel, initrd, log) is missing or QEMU may not open it."""


class HostNetworkError(VMError):
    """The session network cannot be set up on the host (dnsmasq, firewall, subnet collision)."""


class SubnetInUseError(HostNetworkError):
    """The session network's subnet is taken by another interface on the host (a network
    started meanwhile by another vibebox, or an interface libvirt does not know)."""


class NwfilterError(VMError):
    """The network policy's libvirt nwfilter is missing, stale or unsupported."""


class CheckpointError(VibeboxError):
    """A checkpoint name is invalid or unknown, or qemu-img/QEMU refused to save, restore or
    remove a checkpoint of the guest's disk."""
