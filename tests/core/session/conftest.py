"""Fixtures of the session tests: a project in the short VIBEBOX_HOME, its index entry, a fake
hypervisor with its domain and network defined."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from vibebox_core import paths
from vibebox_core.hypervisor import domain_xml, names, network_xml
from vibebox_core.hypervisor.fake import FakeHypervisor
from vibebox_core.index.entry import SessionEntry
from vibebox_core.paths import ProjectPaths

SID = "019bf290-cccc-7c23-ba1d-dce7e6d40693"


@pytest.fixture
def project(short_home: Path, no_accel_env: None) -> ProjectPaths:
    """A project in the short VIBEBOX_HOME (tests/conftest.py), its .vibebox made; no
    VIBEBOX_ACCEL from the caller."""
    root = short_home / "my-proj"
    (root / paths.PROJECT_CACHE).mkdir(parents=True)
    return ProjectPaths.for_directory(root)


@pytest.fixture
def entry(project: ProjectPaths) -> SessionEntry:
    return SessionEntry(SID, project.root, datetime(2026, 11, 27, tzinfo=UTC))


@pytest.fixture
def defined(project: ProjectPaths, entry: SessionEntry) -> FakeHypervisor:
    """A fake hypervisor with the session's domain and network defined (the VM off)."""
    hv = FakeHypervisor()
    spec = network_xml.NetworkSpec.for_session(entry.id)
    domain = domain_xml.DomainSpec(
        session_id=entry.id,
        name=names.domain_name(project.name, entry.id),
        cpus=1,
        memory_mb=512,
        accel="tcg",
        kernel=Path("/k"),
        initrd=Path("/i"),
        disk=project.disk,
        console_log=project.console_log,
        network=spec.name,
        mac=spec.mac,
    )
    hv.define(domain_xml.domain_xml(domain), network_xml.network_xml(spec))
    return hv
