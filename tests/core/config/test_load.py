"""vibebox.toml loading: defaults, the accel override, bounded regular-file reads, fuzzed input."""

from __future__ import annotations

import os
import random
import threading
from pathlib import Path

import pytest
from core.config.configfiles import write

from vibebox_core.config.load import _write_defaults, load_config
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
from vibebox_core.errors import ConfigError
from vibebox_core.fileio import MAX_PROJECT_FILE, ProjectFileError, read_bounded_text
from vibebox_core.index.ids import read_session_id_file
from vibebox_core.paths import ProjectPaths

pytestmark = pytest.mark.usefixtures("no_accel_env")


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
