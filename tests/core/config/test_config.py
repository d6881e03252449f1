"""vibebox.toml: defaults, validation (a table of bad inputs), mounts, ports, tomlkit writes."""

from __future__ import annotations

import os
import random
import threading
from dataclasses import dataclass
from pathlib import Path

import pytest

from vibebox_core import paths
from vibebox_core.config.edit import set_value
from vibebox_core.config.load import _write_defaults, load_config
from vibebox_core.config.mounts import all_mounts, parse_mount, project_mount
from vibebox_core.config.schema import (
    ACCEL_ENV,
    DEFAULT_CONFIG_TEXT,
    GUEST_HOME,
    BoxConfig,
    Config,
    Mount,
    NetworkConfig,
    PortForward,
    SupervisorConfig,
)
from vibebox_core.config.validate import check_libvirt_uri, parse_port
from vibebox_core.errors import ConfigError, SessionIndexError, VibeboxError
from vibebox_core.fileio import MAX_PROJECT_FILE, ProjectFileError, read_bounded_text
from vibebox_core.index.ids import read_session_id_file
from vibebox_core.index.sessions import SessionIndex
from vibebox_core.paths import ProjectPaths

pytestmark = pytest.mark.usefixtures("no_accel_env")


@pytest.fixture
def data(tmp_path: Path) -> Path:
    for name in ("data", "data2"):
        (tmp_path / name).mkdir()
    return tmp_path / "data"


def write(project: ProjectPaths, text: str) -> None:
    project.config.write_text(text)


# ---------------------------------------------------------------------------------------------
# Defaults


def test_missing_file_is_created_with_commented_defaults(project: ProjectPaths) -> None:
    config = load_config(project)
    assert project.config.read_text() == DEFAULT_CONFIG_TEXT
    assert "# auto | kvm | tcg" in DEFAULT_CONFIG_TEXT
    assert config == Config(
        path=project.config,
        box=BoxConfig(),
        network=NetworkConfig(),
        supervisor=SupervisorConfig(),
    )
    assert config.box.cpus == 2 and config.box.memory_mb == 2048 and config.box.disk_gb == 10
    assert config.box.accel == "auto" and config.box.libvirt_uri == "qemu:///system"
    assert config.network.mode == "blocklist" and config.supervisor.auto_shutdown_ms == 20000


def test_create_false_uses_defaults_without_writing(project: ProjectPaths) -> None:
    config = load_config(project, create=False)
    assert not project.config.exists()
    assert config.box == BoxConfig() and config.path == project.config


def test_existing_file_is_not_rewritten(project: ProjectPaths) -> None:
    write(project, "# mine\n[box]\ncpus = 4\n")
    load_config(project)
    assert project.config.read_text() == "# mine\n[box]\ncpus = 4\n"


def test_defaults_never_clobber_a_file_written_meanwhile(project: ProjectPaths) -> None:
    write(project, "[box]\ncpus = 3\n")  # another vibebox won the race
    _write_defaults(project)
    assert project.config.read_text() == "[box]\ncpus = 3\n"
    assert sorted(p.name for p in project.root.iterdir()) == ["vibebox.toml"]


def test_missing_tables_and_keys_take_defaults(project: ProjectPaths) -> None:
    write(project, "[box]\ncpus = 4\n")
    config = load_config(project)
    assert config.box == BoxConfig(cpus=4)
    assert config.network == NetworkConfig() and config.supervisor == SupervisorConfig()


def test_missing_project_directory(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(ProjectPaths.for_directory(tmp_path / "nope"))


def test_full_file(project: ProjectPaths, data: Path) -> None:
    write(
        project,
        f"""
[box]
cpus = 4
memory_mb = 4096
disk_gb = 20
accel = "tcg"
libvirt_uri = "qemu:///session"
mounts = ["{data}:/data:ro", "{data.parent / "data2"}:~/d2:read-write"]
[network]
mode = "allowlist"
entries = ["*.PyPI.org.", "github.com", "pypi.org"]
ports = ["8000", "8080:80", 9000]
[supervisor]
auto_shutdown_ms = 0
""",
    )
    config = load_config(project)
    assert config.box.cpus == 4 and config.box.memory_mb == 4096 and config.box.disk_gb == 20
    assert config.box.accel == "tcg" and config.box.libvirt_uri == "qemu:///session"
    assert config.box.mounts == (
        Mount(data, "/data", read_only=True),
        Mount(data.parent / "data2", f"{GUEST_HOME}/d2", read_only=False),
    )
    assert config.network.mode == "allowlist"
    assert config.network.entries == ("pypi.org", "github.com")  # normalised, de-duplicated
    assert config.network.ports == (
        PortForward(8000, 8000),
        PortForward(8080, 80),
        PortForward(9000, 9000),
    )
    assert config.supervisor.auto_shutdown_ms == 0


# ---------------------------------------------------------------------------------------------
# Accelerator override


@pytest.mark.parametrize("value", ["tcg", "KVM", " auto "])
def test_accel_env_wins(project: ProjectPaths, monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    write(project, '[box]\naccel = "kvm"\ncpus = 3\n')
    monkeypatch.setenv(ACCEL_ENV, value)
    config = load_config(project)
    assert config.box.accel == value.strip().lower()
    assert config.box.cpus == 3


def test_empty_accel_env_is_ignored(project: ProjectPaths, monkeypatch: pytest.MonkeyPatch) -> None:
    write(project, '[box]\naccel = "kvm"\n')
    monkeypatch.setenv(ACCEL_ENV, "")
    assert load_config(project).box.accel == "kvm"


# ---------------------------------------------------------------------------------------------
# Mounts


def test_project_mount(project: ProjectPaths) -> None:
    mount = project_mount(project)
    assert mount == Mount(project.root, f"{GUEST_HOME}/proj", read_only=False, default=True)
    assert mount.access == "rw"


def test_all_mounts_puts_the_project_first(project: ProjectPaths, data: Path) -> None:
    write(project, f'[box]\nmounts = ["{data}:/data:ro"]\n')
    config = load_config(project)
    mounts = all_mounts(config, project)
    assert mounts[0] == project_mount(project)
    assert mounts[1:] == config.box.mounts
    assert [m.default for m in mounts] == [True, False]


@pytest.mark.parametrize(
    ("suffix", "read_only"),
    [("", False), (":rw", False), (":ro", True), (":read-only", True), (":read-write", False)],
)
def test_mount_access_words(tmp_path: Path, data: Path, suffix: str, read_only: bool) -> None:
    assert parse_mount(f"{data}:/data{suffix}", tmp_path).read_only is read_only


def test_mount_tilde_on_both_sides(
    tmp_path: Path, data: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    assert parse_mount("~/data:~/data", tmp_path) == Mount(data, f"{GUEST_HOME}/data", False)
    assert parse_mount("~/data:~/a/../b/", tmp_path).guest == f"{GUEST_HOME}/b"
    assert parse_mount("~/data:/opt/x", tmp_path).guest == "/opt/x"


def test_mount_relative_host_is_relative_to_the_project(project: ProjectPaths, data: Path) -> None:
    assert parse_mount("../data:/data", project.root).host == data


def test_mount_spec_strings() -> None:
    assert str(PortForward(8000, 8000)) == "8000"
    assert str(PortForward(8080, 80)) == "8080:80"
    assert parse_port(" 8080:80 ") == PortForward(8080, 80)
    assert parse_port(22) == PortForward(22, 22)


# ---------------------------------------------------------------------------------------------
# Writes keep comments


def test_set_value_keeps_comments_and_validates(project: ProjectPaths, data: Path) -> None:
    write(project, "# my box\n[box]\ncpus = 2  # enough\n\n[network]\n# allow nothing\n")
    config = set_value(project, "box", "cpus", 6)
    assert config.box.cpus == 6
    text = project.config.read_text()
    assert "# my box" in text and "# enough" in text and "# allow nothing" in text
    assert "cpus = 6" in text
    set_value(project, "box", "mounts", [f"{data}:/data:ro"])
    assert load_config(project).box.mounts == (Mount(data, "/data", True),)
    assert "# enough" in project.config.read_text()


def test_set_value_refused_writes_nothing(project: ProjectPaths) -> None:
    write(project, "[box]\ncpus = 2  # enough\n")
    before = project.config.read_bytes()
    with pytest.raises(ConfigError, match=r"box\.cpus"):
        set_value(project, "box", "cpus", 0)
    with pytest.raises(ConfigError, match=r"unknown key box\.cpu"):
        set_value(project, "box", "cpu", 2)
    with pytest.raises(ConfigError, match=r"unknown table \[boxx\]"):
        set_value(project, "boxx", "cpus", 2)
    assert project.config.read_bytes() == before
    assert sorted(p.name for p in project.root.iterdir()) == ["vibebox.toml"]


def test_set_value_creates_missing_table(project: ProjectPaths) -> None:
    write(project, "[box]\ncpus = 2\n")
    set_value(project, "supervisor", "auto_shutdown_ms", 500)
    assert load_config(project).supervisor.auto_shutdown_ms == 500


# ---------------------------------------------------------------------------------------------
# The table of bad inputs. Each case writes files, runs one action and expects an error whose
# message holds every fragment; afterwards every file must be byte-for-byte unchanged.

UUID4 = "6f1c9a5e-3b1d-4c8e-9f3a-2d7b8e4c1a90"
UUID7 = "019bf290-cccc-7c23-ba1d-dce7e6d40693"


@dataclass(frozen=True)
class Bad:
    name: str
    config: str | bytes | None  # vibebox.toml content ({data} is replaced), None: no file
    fragments: tuple[str, ...]
    index: str | None = None  # sessions.toml content ({project} is replaced)
    error: type[VibeboxError] = ConfigError
    env_accel: str | None = None


def _config_case(name: str, text: str | bytes, *fragments: str) -> Bad:
    return Bad(name, text, fragments)


def _index_case(name: str, text: str, *fragments: str) -> Bad:
    return Bad(name, "[box]\ncpus = 2\n", fragments, index=text, error=SessionIndexError)


BAD_INPUTS = [
    _config_case("empty file", "", "is empty"),
    _config_case("only comments", "# nothing\n\n", "is empty"),
    _config_case("not TOML", "[box\ncpus = 2\n", "not valid TOML", "line 1"),
    _config_case("not TOML, value", "[box]\ncpus = = 2\n", "not valid TOML", "line 2"),
    _config_case("truncated", "[box]\ncpus =", "not valid TOML"),
    _config_case("not UTF-8", b"[box]\n# \xff\xfe\n", "not valid UTF-8", "line 2"),
    _config_case("cpus string", '[box]\ncpus = "two"\n', "box.cpus", "line 2", "whole number"),
    _config_case("cpus zero", "[box]\n\ncpus = 0\n", "box.cpus", "line 3", "from 1 to", "got 0"),
    _config_case("cpus negative", "[box]\ncpus = -2\n", "box.cpus", "got -2"),
    _config_case("cpus float", "[box]\ncpus = 2.5\n", "box.cpus", "the number 2.5"),
    _config_case("cpus bool", "[box]\ncpus = true\n", "box.cpus", "the boolean true"),
    _config_case("memory zero", "[box]\nmemory_mb = 0\n", "box.memory_mb", "MiB", "got 0"),
    _config_case("memory negative", "[box]\nmemory_mb = -2048\n", "box.memory_mb", "-2048"),
    _config_case("disk zero", "[box]\ndisk_gb = 0\n", "box.disk_gb", "GiB"),
    _config_case("disk negative", "[box]\ndisk_gb = -1\n", "box.disk_gb"),
    _config_case("bad accel", '[box]\naccel = "xen"\n', "box.accel", "'auto', 'kvm', 'tcg'"),
    _config_case("accel not a string", "[box]\naccel = 1\n", "box.accel", "the integer 1"),
    _config_case("empty libvirt uri", '[box]\nlibvirt_uri = ""\n', "box.libvirt_uri", "URI"),
    _config_case("mode unknown", '[network]\nmode = "denylist"\n', "network.mode", "'allowlist'"),
    _config_case("mounts not array", '[box]\nmounts = "a:b"\n', "box.mounts", "an array of"),
    _config_case("mount not string", "[box]\nmounts = [1]\n", "box.mounts", "the integer 1"),
    _config_case("mount no colon", '[box]\nmounts = ["/tmp"]\n', "box.mounts", "'host:guest'"),
    _config_case("mount 4 parts", '[box]\nmounts = ["{data}:/a:ro:x"]\n', "box.mounts", "':'"),
    _config_case("mount bad access", '[box]\nmounts = ["{data}:/a:rx"]\n', "unknown access 'rx'"),
    _config_case("mount empty host", '[box]\nmounts = [":/a"]\n', "host path is empty"),
    _config_case("mount empty guest", '[box]\nmounts = ["{data}:"]\n', "guest path is empty"),
    _config_case(
        "mount relative guest",
        '[box]\nmounts = [\n  "{data}:/ok",\n  "{data2}:data",\n]\n',
        "box.mounts",
        "line 4",
        "relative",
    ),
    _config_case("mount ~user guest", '[box]\nmounts = ["{data}:~bob/x"]\n', "only '~'"),
    _config_case("mount missing host", '[box]\nmounts = ["/no/such/dir:/a"]\n', "does not exist"),
    _config_case("mount host is a file", '[box]\nmounts = ["{data}/f:/a"]\n', "not a directory"),
    _config_case("mount the project", '[box]\nmounts = [".:/p"]\n', "is the project itself"),
    _config_case(
        "mount above the project", '[box]\nmounts = ["..:/p:ro"]\n', "contains the project"
    ),
    _config_case("mount over /etc", '[box]\nmounts = ["{data}:/etc"]\n', "cannot mount over"),
    _config_case("mount under /proc", '[box]\nmounts = ["{data}:/proc/x"]\n', "cannot mount"),
    _config_case(
        "duplicate guest paths",
        '[box]\nmounts = ["{data}:/data", "{data2}:/data/"]\n',
        "/data is already used",
    ),
    _config_case(
        "duplicate of the project mount",
        '[box]\nmounts = ["{data}:~/proj"]\n',
        f"{GUEST_HOME}/proj is already used by the project mount",
    ),
    _config_case("ports not array", '[network]\nports = "8000"\n', "network.ports", "an array"),
    _config_case("port zero", '[network]\nports = ["0"]\n', "network.ports", "1 to 65535"),
    _config_case("port too big", '[network]\nports = ["70000"]\n', "'70000'", "1 to 65535"),
    _config_case("port not a number", '[network]\nports = ["80:http"]\n', "'80:http'"),
    _config_case("port three parts", '[network]\nports = ["1:2:3"]\n', "'1:2:3'"),
    _config_case("port bool", "[network]\nports = [true]\n", "the boolean true"),
    _config_case(
        "port twice",
        '[network]\nports = [\n"8000",\n"8000:9000",\n]\n',
        "host port 8000 is forwarded twice",
        "line 4",
    ),
    _config_case(
        "entry with scheme",
        '[network]\nentries = ["https://example.com"]\n',
        "network.entries",
        "without a scheme",
    ),
    _config_case("entry with space", '[network]\nentries = ["a b.com"]\n', "not a valid domain"),
    _config_case("entry IP", '[network]\nentries = ["10.0.0.1"]\n', "network.entries"),
    _config_case("entry not string", "[network]\nentries = [3]\n", "network.entries", "integer"),
    _config_case(
        "shutdown negative",
        "[supervisor]\nauto_shutdown_ms = -1\n",
        "supervisor.auto_shutdown_ms",
        "milliseconds",
    ),
    _config_case("unknown key", "[box]\ncpu = 2\n", "box.cpu", "unknown key", "'cpus'"),
    _config_case("unknown table", "[netwrok]\nmode = 'allowlist'\n", "unknown table [netwrok]"),
    _config_case("top-level key", "cpus = 2\n", "unknown top-level key 'cpus'", "line 1"),
    _config_case("table as value", "box = 3\n[network]\n", "[box]", "expected a table"),
    Bad("bad VIBEBOX_ACCEL", "[box]\n", (ACCEL_ENV, "'xen'"), env_accel="xen"),
    _index_case("damaged index", "[[sessions]\nid = 1\n", "sessions.toml", "line 1", "damaged"),
    _index_case(
        "index id is UUIDv4",
        f'[[sessions]]\nid = "{UUID7}"\ndirectory = "/a"\nlast_active = 2026-01-01T00:00:00Z\n'
        f'\n[[sessions]]\nid = "{UUID4}"\ndirectory = "/b"\nlast_active = 2026-01-01T00:00:00Z\n',
        "sessions.toml, line 7",
        "version 4",
        "UUIDv7",
    ),
    _index_case(
        "index id not a UUID",
        '[[sessions]]\nid = "abc"\ndirectory = "/a"\nlast_active = 2026-01-01T00:00:00Z\n',
        "line 2",
        "not a UUID",
    ),
    _index_case(
        "index id upper case",
        f'[[sessions]]\nid = "{UUID7.upper()}"\ndirectory = "/a"\n'
        "last_active = 2026-01-01T00:00:00Z\n",
        "canonical",
    ),
    _index_case(
        "index without last_active",
        f'[[sessions]]\nid = "{UUID7}"\ndirectory = "/a"\n',
        "line 1",
        "no 'last_active'",
    ),
    _index_case(
        "index last_active string",
        f'[[sessions]]\nid = "{UUID7}"\ndirectory = "/a"\nlast_active = "yesterday"\n',
        "line 4",
        "TOML datetime",
    ),
    _index_case(
        "index relative directory",
        f'[[sessions]]\nid = "{UUID7}"\ndirectory = "a"\nlast_active = 2026-01-01T00:00:00Z\n',
        "line 3",
        "absolute",
    ),
    _index_case(
        "index duplicate id",
        f'[[sessions]]\nid = "{UUID7}"\ndirectory = "/a"\nlast_active = 2026-01-01T00:00:00Z\n'
        f'[[sessions]]\nid = "{UUID7}"\ndirectory = "/b"\nlast_active = 2026-01-01T00:00:00Z\n',
        "line 6",
        "appears twice",
    ),
    _index_case("index sessions not tables", "sessions = 3\n", "array of tables"),
    _index_case("index unknown top-level", "version = 2\n", "unexpected top-level key"),
]


def _snapshot(*roots: Path) -> dict[str, bytes | None]:
    files: dict[str, bytes | None] = {}
    for root in roots:
        for path in sorted(root.rglob("*")):
            files[str(path)] = None if path.is_dir() else path.read_bytes()
    return files


def test_bad_input_table_is_large_enough() -> None:
    assert len(BAD_INPUTS) >= 20
    assert len({case.name for case in BAD_INPUTS}) == len(BAD_INPUTS)


@pytest.mark.parametrize("case", BAD_INPUTS, ids=[case.name for case in BAD_INPUTS])
def test_bad_input_is_refused_and_nothing_changes(
    case: Bad,
    project: ProjectPaths,
    data: Path,
    vibebox_home: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    (data / "f").write_text("a file, not a directory")
    if case.config is not None:
        if isinstance(case.config, bytes):
            project.config.write_bytes(case.config)
        else:
            text = case.config.replace("{data2}", str(data.parent / "data2"))
            project.config.write_text(text.replace("{data}", str(data)))
    if case.index is not None:
        (vibebox_home / paths.SESSIONS_INDEX).write_text(case.index)
    (vibebox_home / paths.SESSIONS_LOCK).touch()
    if case.env_accel is not None:
        monkeypatch.setenv(ACCEL_ENV, case.env_accel)
    before = _snapshot(project.root, vibebox_home, data.parent)

    with pytest.raises(case.error) as caught:
        if case.index is None:
            load_config(project)
        else:
            SessionIndex().ensure(project.root)

    message = str(caught.value)
    for fragment in case.fragments:
        assert fragment in message, f"{fragment!r} not in {message!r}"
    if case.env_accel is None:
        assert str(project.config if case.index is None else paths.sessions_index_path()) in message
    assert "Traceback" not in message
    assert caught.value.hint
    assert _snapshot(project.root, vibebox_home, data.parent) == before


def test_errors_carry_a_hint(project: ProjectPaths) -> None:
    write(project, "")
    with pytest.raises(ConfigError) as caught:
        load_config(project)
    assert caught.value.hint
    assert isinstance(caught.value, VibeboxError)


def test_unreadable_file(project: ProjectPaths) -> None:
    if os.geteuid() == 0:
        project.config.mkdir()  # root reads anything; a directory is unreadable as a file
        match = "is a directory"
    else:
        write(project, "[box]\n")
        project.config.chmod(0)
        match = "cannot read"
    with pytest.raises(ConfigError, match=match):
        load_config(project)


# ---------------------------------------------------------------------------------------------
# libvirt_uri: only this machine's qemu:///system and qemu:///session


@pytest.mark.parametrize("uri", ["qemu:///system", "qemu:///session", " qemu:///session "])
def test_local_libvirt_uris_are_accepted(project: ProjectPaths, uri: str) -> None:
    write(project, f'[box]\nlibvirt_uri = "{uri}"\n')
    assert load_config(project).box.libvirt_uri == uri.strip()


RUNS_A_PROGRAM = [
    "qemu+ext:///system?command=/tmp/x.sh",
    "qemu+ext:///system?command=./x.sh",
    "ext:///system?command=/bin/sh",
    "QEMU+EXT:///system",
    "qemu+ssh://user@host/system",
    "qemu+ssh://user@host/system?command=/tmp/x",
    "qemu+libssh://user@host/system",
    "qemu+libssh2://user@host/system?known_hosts=/x",
    "qemu:///system?command=/tmp/x",
    "qemu:///system?socket=/tmp/evil.sock",
    "qemu+unix:///system?socket=/tmp/evil.sock",
    "qemu+tls://host/system?keyfile=/tmp/k",
    "qemu+ssh://h/system?netcat=/tmp/nc",
]
OTHER_URIS = [
    "qemu+tcp://host/system",
    "qemu+tls://host/system",
    "qemu://host/system",
    "qemu+unix:///system",
    "test:///default",
    "xen:///system",
    "lxc:///",
    "qemu:///embed?root=/tmp/x",
    "qemu:///system ",  # (stripped: accepted above) -- a trailing path is not
    "qemu:///system/",
    "qemu:///systemd",
    "",
    "not a uri",
    "qemu:///system\x1b[2J",
]


@pytest.mark.parametrize("uri", RUNS_A_PROGRAM)
def test_transports_that_run_programs_are_refused(project: ProjectPaths, uri: str) -> None:
    project.config.write_text(f"[box]\nlibvirt_uri = {_toml_str(uri)}\n")
    with pytest.raises(ConfigError) as refused:
        load_config(project)
    message = str(refused.value)
    assert "box.libvirt_uri" in message and "line 2" in message
    assert "not supported" in message or "run a program" in message
    assert "qemu:///system" in refused.value.hint


@pytest.mark.parametrize("uri", [u for u in OTHER_URIS if u.strip() != "qemu:///system"])
def test_remote_and_other_uris_are_refused(project: ProjectPaths, uri: str) -> None:
    project.config.write_text(f"[box]\nlibvirt_uri = {_toml_str(uri)}\n")
    with pytest.raises(ConfigError) as refused:
        load_config(project)
    assert "not supported" in str(refused.value) or "run a program" in str(refused.value)
    assert "\x1b" not in str(refused.value)  # the value is shown escaped


def test_program_transports_name_the_reason() -> None:
    for uri in RUNS_A_PROGRAM:
        assert "run a program" in (check_libvirt_uri(uri) or ""), uri
    assert check_libvirt_uri("qemu:///system") is None
    assert check_libvirt_uri("qemu:///session") is None
    assert "paths on this machine" in (check_libvirt_uri("qemu+tcp://h/system") or "")


def _toml_str(text: str) -> str:
    return (
        '"'
        + "".join(c if c.isprintable() and c not in '"\\' else f"\\u{ord(c):04x}" for c in text)
        + '"'
    )


# ---------------------------------------------------------------------------------------------
# Mount rules: resolved paths, never .vibebox/, vibebox's home or a parent of the project


def _mount_error(project: ProjectPaths, spec: str) -> str:
    write(project, f"[box]\nmounts = [{_toml_str(spec)}]\n")
    with pytest.raises(ConfigError) as refused:
        load_config(project)
    assert "box.mounts" in str(refused.value) and "line 2" in str(refused.value)
    assert refused.value.hint
    return str(refused.value)


def test_mount_of_the_project_or_a_parent_is_refused(project: ProjectPaths) -> None:
    assert "the project itself" in _mount_error(project, ".:/data")
    assert "contains the project" in _mount_error(project, "..:/data")
    assert "contains the project" in _mount_error(project, "/:/data")
    (project.root / "sub").mkdir()
    assert "contains the project" in _mount_error(project, "./sub/../..:/data")
    assert "the project itself" in _mount_error(project, "./sub/..:/data")


def test_mount_under_vibebox_cache_is_refused(project: ProjectPaths) -> None:
    (project.cache / "seed").mkdir(parents=True)
    assert ".vibebox/" in _mount_error(project, "./.vibebox:/data")
    assert ".vibebox/" in _mount_error(project, "./.vibebox/seed:/data:ro")
    assert ".vibebox/" in _mount_error(project, f"{project.cache}/seed/../seed:/data")


def test_mount_through_a_symlink_is_resolved(project: ProjectPaths, tmp_path: Path) -> None:
    (project.cache / "seed").mkdir(parents=True)
    (project.root / "innocent").symlink_to(project.cache)  # the guest plants a symlink
    assert ".vibebox/" in _mount_error(project, "./innocent:/data")
    (project.root / "up").symlink_to(tmp_path)  # a symlinked parent of the project
    assert "contains the project" in _mount_error(project, "./up:/data")
    outside = tmp_path / "outside"
    outside.mkdir()
    (project.root / "link").symlink_to(outside)
    write(project, '[box]\nmounts = ["./link:/data"]\n')
    assert load_config(project).box.mounts[0].host == outside  # the real directory is kept


def test_mount_of_vibebox_home_is_refused(
    project: ProjectPaths, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    vibebox_home = tmp_path / "elsewhere" / "home"
    monkeypatch.setenv("VIBEBOX_HOME", str(vibebox_home))
    (vibebox_home / "images" / "debian-12").mkdir(parents=True)
    (vibebox_home / "approved").mkdir()
    assert "vibebox's home" in _mount_error(project, f"{vibebox_home}:/data")
    assert "vibebox's home" in _mount_error(project, f"{vibebox_home.parent}:/data")
    assert "vibebox's home" in _mount_error(project, f"{vibebox_home}/images:/data:ro")
    assert "vibebox's home" in _mount_error(project, f"{vibebox_home}/images/debian-12:/i")
    assert "vibebox's home" in _mount_error(project, f"{vibebox_home}/approved:/data")
    (project.root / "h").symlink_to(vibebox_home)
    assert "vibebox's home" in _mount_error(project, "./h:/data")


def test_mount_inside_the_project_is_allowed(project: ProjectPaths) -> None:
    (project.root / "sub" / "inner").mkdir(parents=True)
    write(project, '[box]\nmounts = ["./sub/inner:/data:ro"]\n')
    assert load_config(project).box.mounts[0].host == project.root / "sub" / "inner"


# ---------------------------------------------------------------------------------------------
# Only a regular file of bounded size is read


def _refused_quickly(project: ProjectPaths) -> str:
    outcome: list[BaseException | None] = []

    def read() -> None:
        try:
            load_config(project)
        except BaseException as exc:
            outcome.append(exc)
        else:
            outcome.append(None)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    reader.join(timeout=10)
    assert not reader.is_alive(), "load_config hangs"
    error = outcome[0]
    assert isinstance(error, ConfigError), error
    return str(error)


def test_config_symlink_to_dev_zero_is_refused(project: ProjectPaths) -> None:
    project.config.symlink_to("/dev/zero")
    assert "symlink" in _refused_quickly(project)


def test_config_symlink_to_a_regular_file_is_refused(project: ProjectPaths, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere.toml"
    elsewhere.write_text("[box]\ncpus = 2\n")
    project.config.symlink_to(elsewhere)
    assert "symlink" in _refused_quickly(project)


def test_config_fifo_is_refused(project: ProjectPaths) -> None:
    os.mkfifo(project.config)
    assert "FIFO" in _refused_quickly(project)


def test_config_too_large_is_refused(project: ProjectPaths) -> None:
    with project.config.open("wb") as handle:
        handle.write(b"# " + b"x" * (1024 * 1024) + b"\n")
    assert "bytes" in _refused_quickly(project)


def test_config_of_exactly_the_limit_is_read(project: ProjectPaths) -> None:
    head = b"[box]\ncpus = 2\n"
    project.config.write_bytes(head + b"#" * (MAX_PROJECT_FILE - len(head) - 1) + b"\n")
    assert load_config(project).box.cpus == 2


def test_config_directory_is_refused(project: ProjectPaths) -> None:
    project.config.mkdir()
    assert "directory" in _refused_quickly(project)


def test_session_id_file_is_read_bounded(project: ProjectPaths) -> None:
    project.cache.mkdir()
    project.session_id.symlink_to("/dev/zero")
    with pytest.raises(ProjectFileError, match="symlink"):
        read_bounded_text(project.session_id)


# ---------------------------------------------------------------------------------------------
# Every input a user can write gives a ConfigError, never something unexpected


def test_duplicate_key_names_file_and_line(project: ProjectPaths) -> None:
    write(project, "[box]\ncpus = 2\nmemory_mb = 2048\ncpus = 4\n")
    with pytest.raises(ConfigError) as refused:
        load_config(project)
    assert str(refused.value).startswith(f"{project.config}, line 4:")
    assert "'cpus' is set twice" in str(refused.value)


def test_duplicate_table_and_inline_key(project: ProjectPaths) -> None:
    write(project, "[box]\ncpus = 2\n[network]\n[box]\n")
    with pytest.raises(ConfigError, match=r"line 4"):
        load_config(project)
    write(project, '[network]\nmode = "allowlist"\nentries = ["a.example"]\nentries = []\n')
    with pytest.raises(ConfigError, match=r"line 4: the key 'entries' is set twice"):
        load_config(project)


FUZZ_SEEDS = [
    DEFAULT_CONFIG_TEXT,
    '[box]\ncpus = 4\nmounts = ["/tmp:/data:ro"]\n[network]\nmode = "allowlist"\n'
    'entries = ["a.example"]\nports = ["8080:80", 9000]\n[supervisor]\nauto_shutdown_ms = 0\n',
    '[box]\ncpus = 2\n[[secrets]]\nname = "GH"\nhosts = ["api.github.com"]\nsource = "env:GH"\n'
    '[[secrets]]\nname = "B"\nhosts = ["b.example"]\nsource = "command:gh auth token"\n',
]
FUZZ_VALUES = [
    "99999999999999999999999999",
    "-1",
    "1e999",
    "nan",
    "inf",
    "true",
    '"\\u0000"',
    "1979-05-27T07:32:00Z",
    "[1, [2, [3]]]",
    "{a = 1}",
    '"' + "x" * 5000 + '"',
    '"qemu+ext:///system?command=/tmp/x"',
    '["../..:/x"]',
    '["/dev:/x"]',
    "[[]]",
    "0x7fffffffffffffff",
    '"\\ud800"',
    '["~nouser-vbx/x:/x"]',
    '["' + "a" * 5000 + ':/x"]',
    '["/' + "a/" * 3000 + ':/x"]',
    '["a\\u0000b:/x"]',
    '["/tmp:/x\\u202ey"]',
]


def test_fuzzed_inputs_only_raise_config_errors(project: ProjectPaths) -> None:
    rng = random.Random(1234)
    keys = [("box", k) for k in ("cpus", "memory_mb", "disk_gb", "accel", "libvirt_uri", "mounts")]
    keys += [("network", k) for k in ("mode", "entries", "ports")]
    keys += [("supervisor", "auto_shutdown_ms"), ("box", "cpu"), ("nope", "x")]
    cases: list[bytes] = []
    for table, key in keys:
        for value in FUZZ_VALUES:
            cases.append(f"[{table}]\n{key} = {value}\n".encode())
    for _ in range(400):
        seed = rng.choice(FUZZ_SEEDS).encode()
        data = bytearray(seed)
        for _ in range(rng.randint(1, 8)):
            action = rng.random()
            at = rng.randrange(len(data) + 1)
            if action < 0.3 and data:
                del data[at : at + rng.randint(1, 20)]
            elif action < 0.6:
                data[at:at] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 6)))
            elif action < 0.8:
                data[at:at] = rng.choice([b"[", b"]", b"=", b'"', b"'", b"\n", b"{", b",", b"\x00"])
            else:
                data[at:at] = rng.choice([b"\xff\xfe", b"\xc3", b"\xed\xa0\x80", b"\r", b"\t"])
        cases.append(bytes(data))
    cases += [b"", b"\x00", b"\xff" * 10, b"[" * 3000, b"a = " + b"[" * 3000, b"x.y.z = 1\n" * 3]
    for case in cases:
        project.config.write_bytes(case)
        try:
            load_config(project)
        except ConfigError as exc:
            assert str(project.config) in str(exc) or "environment" in str(exc), (case, exc)
            assert exc.hint, case
        except Exception as exc:
            pytest.fail(f"{type(exc).__name__}: {exc} for {case[:200]!r}")


def test_session_id_fifo_or_symlink_is_not_read(project: ProjectPaths) -> None:
    project.cache.mkdir()
    os.mkfifo(project.session_id)
    assert read_session_id_file(project) is None  # returns at once: never waits for a writer
    project.session_id.unlink()
    project.session_id.symlink_to("/dev/zero")
    assert read_session_id_file(project) is None


def test_recorded_ipv4_fifo_is_not_read(project: ProjectPaths) -> None:
    project.cache.mkdir()
    os.mkfifo(project.ipv4)
    assert project.recorded_ipv4() is None  # at once: never waits for a writer
    project.ipv4.unlink()
    project.ipv4.write_text("10.213.0.2\n")
    assert project.recorded_ipv4() == "10.213.0.2"
