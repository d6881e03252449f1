"""Every file name vibebox uses, in one place.

Global state lives under ``~/.vibebox`` (``VIBEBOX_HOME`` moves it; the tests always set it).
Per-project state lives in ``<project>/vibebox.toml`` (meant to be committed) and the
``<project>/.vibebox/`` cache (never committed; deleting it deletes the session).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from vibebox_core.errors import ConfigError
from vibebox_core.fileio import read_bounded_text

HOME_ENV = "VIBEBOX_HOME"
DEFAULT_HOME_NAME = ".vibebox"

# Under the global home.
SESSIONS_INDEX = "sessions.toml"
SESSIONS_LOCK = "sessions.lock"
IMAGES_DIR = "images"
RUN_DIR = "run"
BIN_DIR = "bin"
VIRTIOFSD_READONLY = "virtiofsd-ro"  # under BIN_DIR: serves read-only virtiofs shares
VIRTIOFSD_READWRITE = "virtiofsd-rw"  # under BIN_DIR: serves read-write shares, .vibebox/ hidden
SHARE_GUARD_LAUNCHER = "vibebox-share-launch"  # under BIN_DIR, + "-<digest>": runs virtiofsd
SHARE_GUARD_LIB = "vibebox-share-guard"  # under BIN_DIR, + "-<digest>.so": preloaded into it
SHARE_WRAPPERS_DIR = "shares"  # under BIN_DIR: one wrapper per share, "<session>-<tag>"
APPROVED_DIR = "approved"  # one approved snapshot per project, "<key>.json"
SECRETS_DIR = "secrets"  # one host-only directory per session with secrets: its CA, placeholder key
SECRET_CA_KEY = "ca.key"  # in a session's secrets directory (0600; never leaves the host)
SECRET_CA_CERT = "ca.crt"  # ... the CA the guest trusts (copied into the seed)
SECRET_PLACEHOLDER_KEY = "placeholder.key"  # ... derives the placeholders the guest sees

# Inside one image directory, ``images/<name>/``.
IMAGE_KERNEL = "vmlinuz"
IMAGE_INITRD = "initrd.img"
IMAGE_BASE_DISK = "base.qcow2"
IMAGE_METADATA = "image.toml"
DEFAULT_IMAGE_NAME = "debian-12"

# In a project directory.
PROJECT_CONFIG = "vibebox.toml"
PROJECT_CACHE = ".vibebox"

# Inside the project cache, ``<project>/.vibebox/``.
CACHE_SESSION_ID = "session-id"
CACHE_DISK = "disk.qcow2"
CACHE_DISK_BASE = "disk-base"  # sha256 of the base image the instance disk was made on
CACHE_CLIENT_KEY = "id_ed25519"
CACHE_CLIENT_PUBKEY = "id_ed25519.pub"
CACHE_HOST_KEY = "ssh_host_ed25519_key"
CACHE_HOST_PUBKEY = "ssh_host_ed25519_key.pub"
CACHE_KNOWN_HOSTS = "known_hosts"
CACHE_SSH_CONFIG = "ssh_config"  # vibebox's own OpenSSH config (`ssh -F`)
CACHE_SEED_DIR = "seed"
CACHE_IPV4 = "ipv4"
CACHE_CONSOLE_LOG = "console.log"
CACHE_SUPERVISOR_LOG = "supervisor.log"
CACHE_SUPERVISOR_PID = "supervisor.pid"
CACHE_SUPERVISOR_LOCK = "supervisor.lock"
CACHE_NETWORK_LOG = "network.log"
CACHE_NETWORK_DEF = "network.xml"  # the session network as last defined (restart if changed)
CACHE_PROVISION_PENDING = "provision-pending"  # made with a fresh instance disk: provision it
CACHE_PROVISION_RECORD = "provision.json"  # what ran: the list's digest, when, each step's status
CACHE_PROVISION_LOG = "provision.log"  # the steps' output, the last MiB
CACHE_PROVISION_LOCK = "provision.lock"  # one vibebox provisions a session at a time
CACHE_CHECKPOINT_RECORDS = "checkpoints"  # the provision record as each checkpoint saw it
CACHE_GITIGNORE = ".gitignore"


def vibebox_home() -> Path:
    """Return the global vibebox directory (``$VIBEBOX_HOME`` or ``~/.vibebox``)."""
    override = os.environ.get(HOME_ENV)
    if override:
        return Path(override).expanduser().absolute()
    return Path.home() / DEFAULT_HOME_NAME


def sessions_index_path() -> Path:
    """Return the path of the global session index."""
    return vibebox_home() / SESSIONS_INDEX


def sessions_lock_path() -> Path:
    """Return the lock file that serialises writers of the session index."""
    return vibebox_home() / SESSIONS_LOCK


def images_dir() -> Path:
    """Return the directory that holds one sub-directory per base image."""
    return vibebox_home() / IMAGES_DIR


def image_dir(name: str = DEFAULT_IMAGE_NAME) -> Path:
    """Return the directory of one base image."""
    return images_dir() / name


def run_dir() -> Path:
    """Return the directory for supervisor sockets (short paths: UNIX sockets max 107 bytes)."""
    return vibebox_home() / RUN_DIR


def virtiofsd_readonly_path() -> Path:
    """Return the wrapper libvirt runs (as root) to serve a virtiofs share read-only."""
    return vibebox_home() / BIN_DIR / VIRTIOFSD_READONLY


def virtiofsd_readwrite_path() -> Path:
    """Return the wrapper libvirt runs (as root) to serve a read-write share, .vibebox/ hidden."""
    return vibebox_home() / BIN_DIR / VIRTIOFSD_READWRITE


def session_secrets_dir(session_id: str) -> Path:
    """Return a session's host-only secrets directory (its TLS CA and placeholder key).

    Under ``$VIBEBOX_HOME``, never in the project: the guest can read and write the project.
    """
    return vibebox_home() / SECRETS_DIR / session_id


def supervisor_socket_path(session_id: str) -> Path:
    """Return the UNIX socket of one session's supervisor."""
    return run_dir() / f"{session_id}.sock"


@dataclass(frozen=True)
class ProjectPaths:
    """The files of one project directory."""

    root: Path

    @classmethod
    def for_directory(cls, directory: str | os.PathLike[str]) -> ProjectPaths:
        """Build the paths for ``directory``, made absolute and resolved."""
        return cls(Path(directory).expanduser().resolve())

    @property
    def name(self) -> str:
        """The project's name: the last component of its directory."""
        return self.root.name

    @property
    def config(self) -> Path:
        return self.root / PROJECT_CONFIG

    @property
    def cache(self) -> Path:
        return self.root / PROJECT_CACHE

    @property
    def session_id(self) -> Path:
        return self.cache / CACHE_SESSION_ID

    @property
    def disk(self) -> Path:
        return self.cache / CACHE_DISK

    @property
    def disk_base(self) -> Path:
        """Records which base image (its sha256) the instance overlay was made on."""
        return self.cache / CACHE_DISK_BASE

    @property
    def client_key(self) -> Path:
        return self.cache / CACHE_CLIENT_KEY

    @property
    def client_pubkey(self) -> Path:
        return self.cache / CACHE_CLIENT_PUBKEY

    @property
    def host_key(self) -> Path:
        return self.cache / CACHE_HOST_KEY

    @property
    def host_pubkey(self) -> Path:
        return self.cache / CACHE_HOST_PUBKEY

    @property
    def known_hosts(self) -> Path:
        return self.cache / CACHE_KNOWN_HOSTS

    @property
    def ssh_config(self) -> Path:
        return self.cache / CACHE_SSH_CONFIG

    @property
    def seed_dir(self) -> Path:
        """Read-only share that hands the guest its keys and settings at boot."""
        return self.cache / CACHE_SEED_DIR

    @property
    def ipv4(self) -> Path:
        return self.cache / CACHE_IPV4

    def recorded_ipv4(self) -> str | None:
        """The guest's address as last written to :attr:`ipv4`; None when there is none."""
        try:  # a regular file of a few bytes only (fileio): never a FIFO or a device
            return read_bounded_text(self.ipv4, limit=256).strip() or None
        except (OSError, ConfigError):
            return None

    @property
    def console_log(self) -> Path:
        return self.cache / CACHE_CONSOLE_LOG

    @property
    def supervisor_log(self) -> Path:
        return self.cache / CACHE_SUPERVISOR_LOG

    @property
    def supervisor_pid(self) -> Path:
        return self.cache / CACHE_SUPERVISOR_PID

    @property
    def supervisor_lock(self) -> Path:
        return self.cache / CACHE_SUPERVISOR_LOCK

    @property
    def network_def(self) -> Path:
        """The session network's XML as vibebox last defined it."""
        return self.cache / CACHE_NETWORK_DEF

    @property
    def network_log(self) -> Path:
        return self.cache / CACHE_NETWORK_LOG

    @property
    def provision_pending(self) -> Path:
        """Exists while a fresh instance disk waits for ``[provision] run``."""
        return self.cache / CACHE_PROVISION_PENDING

    @property
    def provision_record(self) -> Path:
        return self.cache / CACHE_PROVISION_RECORD

    @property
    def checkpoint_records(self) -> Path:
        """``<name>.json`` (the provision record when checkpoint ``name`` was saved) or
        ``<name>.none`` (there was none: the disk was not provisioned yet)."""
        return self.cache / CACHE_CHECKPOINT_RECORDS

    @property
    def provision_log(self) -> Path:
        return self.cache / CACHE_PROVISION_LOG

    @property
    def provision_lock(self) -> Path:
        return self.cache / CACHE_PROVISION_LOCK
