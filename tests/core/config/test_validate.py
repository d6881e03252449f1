"""vibebox.toml and sessions.toml validation: the table of bad inputs, port specs, libvirt_uri."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pytest
from core.config.configfiles import toml_str, write

from vibebox_core import paths
from vibebox_core.config.load import load_config
from vibebox_core.config.schema import ACCEL_ENV, GUEST_HOME, PortForward
from vibebox_core.config.validate import check_libvirt_uri, parse_port
from vibebox_core.errors import ConfigError, SessionIndexError, VibeboxError
from vibebox_core.index.sessions import SessionIndex
from vibebox_core.paths import ProjectPaths

pytestmark = pytest.mark.usefixtures("no_accel_env")


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
    project.config.write_text(f"[box]\nlibvirt_uri = {toml_str(uri)}\n")
    with pytest.raises(ConfigError) as refused:
        load_config(project)
    message = str(refused.value)
    assert "box.libvirt_uri" in message and "line 2" in message
    assert "not supported" in message or "run a program" in message
    assert "qemu:///system" in refused.value.hint


@pytest.mark.parametrize("uri", [u for u in OTHER_URIS if u.strip() != "qemu:///system"])
def test_remote_and_other_uris_are_refused(project: ProjectPaths, uri: str) -> None:
    project.config.write_text(f"[box]\nlibvirt_uri = {toml_str(uri)}\n")
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


# ---------------------------------------------------------------------------------------------
# Port specs


def test_mount_spec_strings() -> None:
    assert str(PortForward(8000, 8000)) == "8000"
    assert str(PortForward(8080, 80)) == "8080:80"
    assert parse_port(" 8080:80 ") == PortForward(8080, 80)
    assert parse_port(22) == PortForward(22, 22)
