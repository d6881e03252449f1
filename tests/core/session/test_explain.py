"""The explain model: mounts, network, storage, VM facts and recent network events; gather()."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pytest

from vibebox_core import paths
from vibebox_core.config.load import load_config
from vibebox_core.config.schema import GUEST_HOME
from vibebox_core.errors import ConfigError
from vibebox_core.hypervisor.fake import FakeHypervisor
from vibebox_core.index.sessions import SessionIndex
from vibebox_core.network.log import NetEvent, append
from vibebox_core.paths import ProjectPaths
from vibebox_core.session.explain import build_explain, gather
from vibebox_core.session.explain_model import NetEventView, VMInfo
from vibebox_core.session.explain_text import render_text


@pytest.fixture
def project(tmp_path: Path, no_accel_env: None) -> ProjectPaths:
    (tmp_path / "data").mkdir()
    root = tmp_path / "web"
    root.mkdir()
    (root / "vibebox.toml").write_text(
        f'[box]\nmounts = ["{tmp_path / "data"}:~/data:ro"]\n'
        '[network]\nmode = "allowlist"\nentries = ["pypi.org", "*.github.com"]\n'
        'ports = ["8000", "8080:80"]\n'
    )
    return ProjectPaths.for_directory(root)


@dataclass
class _Event:
    time: str
    host: str
    port: int | None
    verdict: str


def test_model(project: ProjectPaths, tmp_path: Path) -> None:
    config = load_config(project)
    explain = build_explain(project, config, session_id="019bf290-cccc-7c23-ba1d-dce7e6d40693")
    assert explain.project == project.root
    assert [(str(m.host), m.guest, m.read_only, m.default) for m in explain.mounts] == [
        (str(project.root), f"{GUEST_HOME}/web", False, True),
        (str(tmp_path / "data"), f"{GUEST_HOME}/data", True, False),
    ]
    assert explain.network.mode == "allowlist"
    assert set(explain.network.entries) == {"pypi.org", "github.com"}
    assert explain.network.ports == ("8000", "8080 → 80")
    storage = {item.label: item for item in explain.storage}
    assert storage["config"].path == "vibebox.toml" and storage["config"].exists
    cache = storage["cache (disk, keys, logs)"]
    assert cache.path == ".vibebox/" and not cache.exists
    assert cache.absolute == project.root / ".vibebox"
    assert storage["session index"].absolute == paths.sessions_index_path()
    assert explain.vm is None and explain.recent_network == []


def test_to_dict_is_json(project: ProjectPaths) -> None:
    config = load_config(project)
    explain = build_explain(
        project,
        config,
        session_id=None,
        vm=VMInfo("running", "10.213.4.2", 2, 2048, attached=1),
        recent_network=[
            {
                "time": "2026-11-27T10:15:00.000Z",
                "host": "a.test",
                "port": 443,
                "verdict": "blocked",
            }
        ],
    )
    data = json.loads(json.dumps(explain.to_dict()))
    assert data["session_id"] is None
    assert data["mounts"][0] == {
        "host": str(project.root),
        "guest": f"{GUEST_HOME}/web",
        "access": "rw",
        "read_only": False,
        "default": True,
    }
    assert data["mounts"][1]["access"] == "ro"
    assert data["network"] == {
        "mode": "allowlist",
        "entries": ["pypi.org", "github.com"],
        "ports": ["8000", "8080 → 80"],
    }
    assert [s["path"] for s in data["storage"]][:2] == ["vibebox.toml", ".vibebox/"]
    assert data["vm"] == {
        "state": "running",
        "ipv4": "10.213.4.2",
        "cpus": 2,
        "memory_mb": 2048,
        "attached": 1,
    }
    assert data["recent_network"] == [
        {"time": "2026-11-27T10:15:00.000Z", "host": "a.test", "port": 443, "verdict": "blocked"}
    ]


def test_events_from_objects_dicts_and_netlog(project: ProjectPaths) -> None:
    events = [
        _Event("2026-11-27T10:15:01Z", "x.test", 80, "allowed"),
        {"time": "2026-11-27T10:15:02Z", "host": "y.test", "verdict": "blocked"},
        NetEvent("dns", "z.test", 53, "blocked", "not listed", time="2026-11-27T10:15:03.000Z"),
        {"host": "w.test", "port": True},  # odd values do not break it
    ]
    explain = build_explain(project, load_config(project), session_id=None, recent_network=events)
    assert [e.to_dict() for e in explain.recent_network] == [
        {"time": "2026-11-27T10:15:01Z", "host": "x.test", "port": 80, "verdict": "allowed"},
        {"time": "2026-11-27T10:15:02Z", "host": "y.test", "port": None, "verdict": "blocked"},
        {"time": "2026-11-27T10:15:03.000Z", "host": "z.test", "port": 53, "verdict": "blocked"},
        {"time": "", "host": "w.test", "port": None, "verdict": ""},
    ]
    assert NetEventView.of(events[0]).describe() == "10:15:01  allowed  x.test:80"


def test_render_text(project: ProjectPaths, tmp_path: Path) -> None:
    explain = build_explain(
        project,
        load_config(project),
        session_id="019bf290-cccc-7c23-ba1d-dce7e6d40693",
        vm=VMInfo("running", "10.213.4.2", 2, 2048, attached=2),
        recent_network=[_Event("2026-11-27T10:15:01Z", "evil.test", 443, "blocked")],
    )
    text = render_text(explain)
    lines = text.splitlines()
    assert lines[0] == f"project  {project.root}"
    assert "session  019bf290-cccc-7c23-ba1d-dce7e6d40693" in lines
    assert f"  {project.root} → {GUEST_HOME}/web  rw  (project, default)" in lines
    assert f"  {tmp_path / 'data'} → {GUEST_HOME}/data  ro" in lines
    assert "network  allowlist: only these domains (and their subdomains) are reachable" in lines
    assert "  pypi.org" in lines and "  github.com" in lines
    assert any("8080 → 80" in line for line in lines)
    assert any(line.split() == ["config", "vibebox.toml"] for line in lines)
    assert any(line.strip().endswith(".vibebox/  (not created yet)") for line in lines)
    assert "vm  running, 2 attached" in lines
    assert "  ipv4 10.213.4.2, 2 cpus, 2048 MiB" in lines
    assert "  10:15:01  blocked  evil.test:443" in lines
    assert text.endswith("\n")


@pytest.mark.parametrize(
    ("mode", "entries", "summary"),
    [
        ("allowlist", "[]", "allowlist: no domain is reachable"),
        ("blocklist", "[]", "blocklist: every domain is reachable"),
        ("blocklist", '["x.test"]', "blocklist: every domain except these"),
    ],
)
def test_network_summaries(project: ProjectPaths, mode: str, entries: str, summary: str) -> None:
    project.config.write_text(f'[network]\nmode = "{mode}"\nentries = {entries}\n')
    explain = build_explain(project, load_config(project), session_id=None)
    assert explain.network.summary.startswith(summary)
    text = render_text(explain)
    assert "(none yet" in text and "vm  " not in text and "recent network" not in text


def test_enforced_view_shows_an_unapproved_change_apart(project: ProjectPaths) -> None:
    from vibebox_core.config import approval
    from vibebox_core.config.edit import set_value
    from vibebox_core.session import approve

    approve.approve(project)  # the user approved the file as it is
    set_value(project, "network", "entries", ["pypi.org", "*.github.com", "evil.example"])
    set_value(project, "box", "cpus", 16)
    found = approval.review(project)
    explain = build_explain(project, found.enforced_config(), session_id=None, review=found)
    assert set(explain.network.entries) == {"pypi.org", "github.com"}  # not evil.example
    assert explain.approval == "changed" and explain.pending_asks
    assert set(explain.pending) == {"+ network entry: evil.example", "~ cpus: 2 → 16"}
    text = render_text(explain)
    enforced, pending = text.split("pending: ")
    assert "evil.example" not in enforced and "evil.example" in pending
    assert "NOT approved and NOT enforced" in pending
    assert "enforced the approved snapshot (vibebox.toml differs" in enforced
    data = json.loads(json.dumps(explain.to_dict()))
    assert data["approval"]["status"] == "changed"
    assert "+ network entry: evil.example" in data["approval"]["pending"]
    assert "evil.example" not in data["network"]["entries"]


def test_enforced_view_before_any_approval(project: ProjectPaths) -> None:
    from vibebox_core.config import approval

    found = approval.review(project)
    explain = build_explain(project, found.enforced_config(), session_id=None, review=found)
    assert [m.default for m in explain.mounts] == [True]  # the extra mount is not enforced
    assert explain.network.mode == "blocklist" and explain.network.ports == ()
    assert any(line.startswith("+ mount:") for line in explain.pending)
    assert "enforced the defaults (nothing approved yet" in render_text(explain)


def test_refused_file_is_named_and_the_approved_values_shown(project: ProjectPaths) -> None:
    from vibebox_core.config import approval
    from vibebox_core.session import approve

    approve.approve(project)
    project.config.unlink()
    project.config.symlink_to("/dev/zero")
    found = approval.review(project)
    explain = build_explain(project, found.enforced_config(), session_id=None, review=found)
    assert set(explain.network.entries) == {"pypi.org", "github.com"}
    assert "symlink" in explain.file_problem
    assert "vibebox.toml is refused" in render_text(explain)


def test_gather_reads_the_entry_the_live_state_and_the_log(project: ProjectPaths) -> None:
    """The one collector of ``vibebox explain`` and the inspector: before and after a session."""
    before = gather(project, log_summary=True)
    assert before.entry is None and before.status is None and before.events == ()
    assert before.explain.vm is None and before.explain.network_summary is None
    entry = SessionIndex().ensure(project.root)
    append(project.network_log, NetEvent("proxy", "pypi.org", 443, "allowed", "listed"))
    found = gather(project, hypervisor=FakeHypervisor(), recent=5, log_summary=True)
    assert found.entry == entry and found.explain.session_id == entry.id
    assert found.status is not None and found.status.state == "shut off"
    assert found.explain.vm is not None and found.explain.vm.state == "shut off"
    assert found.explain.vm.cpus == found.config.box.cpus
    assert [event.host for event in found.events] == ["pypi.org"]
    assert [event.host for event in found.explain.recent_network] == ["pypi.org"]
    assert found.explain.network_summary is not None


def test_gather_raises_a_refused_file_only_when_asked(project: ProjectPaths) -> None:
    project.config.write_text("[box]\ncpus = -1\n")
    shown = gather(project)
    assert shown.review.error is not None and "cpus" in shown.explain.file_problem
    with pytest.raises(ConfigError, match="cpus"):
        gather(project, refuse_unreadable=True)


SECRETS = """
[[secrets]]
name = "GITHUB_TOKEN"
hosts = ["api.github.com"]
source = "command:/home/me/bin/get-token --vault personal"

[[secrets]]
name = "OPENAI_API_KEY"
hosts = ["api.openai.com", "openai.example"]
source = "file:/home/me/.config/openai/key"
"""


def test_approved_secrets_show_name_hosts_and_kind_only(project: ProjectPaths) -> None:
    from vibebox_core.session import approve

    with project.config.open("a") as f:
        f.write(SECRETS)
    approve.approve(project)
    found = gather(project)
    explain = found.explain
    assert [s.to_dict() for s in explain.secrets] == [
        {"name": "GITHUB_TOKEN", "hosts": ["api.github.com"], "source_kind": "command"},
        {
            "name": "OPENAI_API_KEY",
            "hosts": ["api.openai.com", "openai.example"],
            "source_kind": "file",
        },
    ]
    text = render_text(explain)
    assert "GITHUB_TOKEN  from command, sent to api.github.com" in text
    shown = text + json.dumps(explain.to_dict())
    # Never where the value comes from beyond its kind: no path, no command line.
    assert "get-token" not in shown and ".config/openai" not in shown


def test_an_unapproved_secret_is_pending_and_not_listed(project: ProjectPaths) -> None:
    from vibebox_core.session import approve

    approve.approve(project)
    with project.config.open("a") as f:
        f.write(SECRETS)
    explain = gather(project).explain
    assert explain.secrets == ()
    assert any("GITHUB_TOKEN" in line for line in explain.pending)
    assert "secrets  (" not in render_text(explain)
