"""The host side of secrets: reading values, the placeholder key, placeholders, the vault."""

from __future__ import annotations

import os
import shlex
import stat
import sys
import threading
import time
from pathlib import Path

import pytest

from vibebox_core.config.schema import Secret
from vibebox_core.errors import SecretError
from vibebox_core.network import sources
from vibebox_core.network.secrets import (
    PLACEHOLDER_PREFIX,
    PLACEHOLDER_RE,
    SecretVault,
    load_placeholder_key,
    placeholder,
)
from vibebox_core.network.sources import read_value

TOKEN = "ghp_S3cretValue0123456789"


def python(code: str) -> str:
    """A ``command:`` source running ``code`` with this interpreter (no shell)."""
    return "command:" + shlex.join([sys.executable, "-c", code])


# ---------------------------------------------------------------------------------------------
# read_value


def test_env_source_reads_the_given_environment() -> None:
    assert read_value("env:GH", environ={"GH": f"  {TOKEN}\n"}) == TOKEN
    with pytest.raises(SecretError, match="env:GH: the variable is not set") as refused:
        read_value("env:GH", environ={})
    assert refused.value.hint


def test_env_source_defaults_to_the_process_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VBX_TEST_SECRET", TOKEN)
    assert read_value("env:VBX_TEST_SECRET") == TOKEN


def test_file_source(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "token").write_text(f"{TOKEN}\n")
    assert read_value(f"file:{tmp_path / 'token'}") == TOKEN
    monkeypatch.setenv("HOME", str(tmp_path))
    assert read_value("file:~/token") == TOKEN


def test_file_source_refusals(tmp_path: Path) -> None:
    (tmp_path / "token").write_text(TOKEN)
    (tmp_path / "link").symlink_to(tmp_path / "token")
    (tmp_path / "big").write_bytes(b"a" * (sources.VALUE_LIMIT + 1))
    os.mkfifo(tmp_path / "fifo")
    for name, fragment in (
        ("link", "symlink"),
        ("missing", "No such file"),
        ("big", "larger than"),
        ("fifo", "not a regular file"),
    ):
        with pytest.raises(SecretError, match=fragment):
            read_value(f"file:{tmp_path / name}")
    with pytest.raises(SecretError, match="not a regular file"):
        read_value(f"file:{tmp_path}")


def test_command_source() -> None:
    assert read_value(python(f"print('{TOKEN}')")) == TOKEN
    # No shell: the metacharacters are plain arguments.
    code = "import sys; print(sys.argv[1])"
    assert read_value(python(code) + " '$(id);|x'") == "$(id);|x"
    # stdin is empty, the directory is /.
    assert read_value(python("import sys, os; print(repr(sys.stdin.read()) + os.getcwd())")) == (
        "''/"
    )
    assert read_value(python("import os; print(os.environ['A'])"), environ={"A": "b"}) == "b"


def test_a_failing_command_quotes_stderr_never_stdout() -> None:
    code = (
        "import os, sys; print(os.environ['V']); print('no\\x1b[2J login', file=sys.stderr); "
        "sys.exit(3)"
    )
    with pytest.raises(SecretError) as refused:
        read_value(python(code), environ={"V": TOKEN})
    message = str(refused.value)
    assert "exited with status 3: no\\x1b[2J login" in message
    assert TOKEN not in message and TOKEN not in refused.value.hint
    with pytest.raises(SecretError, match="cannot run"):
        read_value("command:/nonexistent/vbx-token-helper")
    with pytest.raises(SecretError, match="NUL"):
        read_value(python("print(1)"), environ={"V": "a\x00b"})


def _gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return True
    return state in ("Z", "X")  # dead, not yet reaped by its new parent


def test_a_slow_command_is_stopped_with_its_children(tmp_path: Path) -> None:
    pid_file = tmp_path / "child.pid"
    child = tmp_path / "child.py"
    child.write_text(
        f"import os, time\nopen({str(pid_file)!r}, 'w').write(str(os.getpid()))\ntime.sleep(60)\n"
    )
    # The command waits for its child to be up, then hangs; the child holds the pipes open.
    code = (
        f"import os, subprocess, sys, time; subprocess.Popen([sys.executable, {str(child)!r}])\n"
        f"while not os.path.getsize({str(pid_file)!r}) if os.path.exists({str(pid_file)!r}) "
        "else True: time.sleep(0.01)\ntime.sleep(60)"
    )
    started = time.monotonic()
    with pytest.raises(SecretError, match="no answer within 3 s"):
        read_value(python(code), timeout=3)
    assert time.monotonic() - started < 20
    pid = int(pid_file.read_text())
    deadline = time.monotonic() + 10
    while not _gone(pid) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert _gone(pid)


def test_a_command_printing_too_much_is_stopped() -> None:
    with pytest.raises(SecretError, match="more than"):
        read_value(python("import sys\nwhile True: sys.stdout.write('a' * 65536)"), timeout=10)


@pytest.mark.parametrize(
    "value",
    [f"{TOKEN}\r\nX-Injected: 1", f"{TOKEN}\nsecond", f"{TOKEN}\x00", f"{TOKEN}é", "  \n", ""],
)
def test_values_that_cannot_go_into_a_header_are_refused(value: str, tmp_path: Path) -> None:
    path = tmp_path / "token"
    path.write_bytes(value.encode())
    sources = [f"file:{path}"]
    if "\x00" not in value:  # an environment cannot hold a NUL
        sources += ["env:V", python("import os, sys; sys.stdout.write(os.environ['V'])")]
    else:
        sources.append(python(f"import sys; sys.stdout.write(open({str(path)!r}).read())"))
    for source in sources:
        with pytest.raises(SecretError) as refused:
            read_value(source, environ={"V": value})
        assert TOKEN not in str(refused.value) and TOKEN not in refused.value.hint


def test_a_tab_and_inner_spaces_are_kept() -> None:
    assert read_value("env:V", environ={"V": "Bearer a\tb c\n"}) == "Bearer a\tb c"


# ---------------------------------------------------------------------------------------------
# The placeholder key and placeholders


def test_the_key_is_made_once_and_private(tmp_path: Path) -> None:
    directory = tmp_path / "secrets" / "s1"
    key = load_placeholder_key(directory)
    assert len(key) == 32
    assert load_placeholder_key(directory) == key
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    assert stat.S_IMODE((directory / "placeholder.key").stat().st_mode) == 0o600
    assert load_placeholder_key(tmp_path / "s2") != key


def test_a_damaged_key_is_refused(tmp_path: Path) -> None:
    (tmp_path / "placeholder.key").write_bytes(b"short")
    with pytest.raises(SecretError, match="damaged"):
        load_placeholder_key(tmp_path)
    (tmp_path / "placeholder.key").unlink()
    (tmp_path / "placeholder.key").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(SecretError):
        load_placeholder_key(tmp_path)


def test_placeholders_are_stable_distinct_and_look_like_placeholders() -> None:
    key, other = b"k" * 32, b"o" * 32
    a = placeholder(key, "GITHUB_TOKEN")
    assert a == placeholder(key, "GITHUB_TOKEN")
    assert a.startswith(PLACEHOLDER_PREFIX) and len(a) == len(PLACEHOLDER_PREFIX) + 40
    assert PLACEHOLDER_RE.fullmatch(a)
    assert a != placeholder(key, "NPM_TOKEN") and a != placeholder(other, "GITHUB_TOKEN")


# ---------------------------------------------------------------------------------------------
# The vault


GH = Secret("GITHUB_TOKEN", ("api.github.com",), "env:GH")
NPM = Secret("NPM_TOKEN", ("registry.npmjs.org", "npmjs.com"), "env:NPM")


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class CountingReader:
    def __init__(self) -> None:
        self.calls: list[str] = []

    def __call__(self, source: str) -> str:
        self.calls.append(source)
        if source == "env:FAIL":
            raise SecretError("the secret source env:FAIL: the variable is not set", hint="x")
        return f"value-of-{source}-{len(self.calls)}"


def test_guest_env_and_for_host() -> None:
    vault = SecretVault([GH, NPM], b"k" * 32)
    assert vault.secrets == (GH, NPM)
    assert vault.guest_env() == {
        "GITHUB_TOKEN": placeholder(b"k" * 32, "GITHUB_TOKEN"),
        "NPM_TOKEN": placeholder(b"k" * 32, "NPM_TOKEN"),
    }
    assert vault.for_host("API.GitHub.com.") == (GH,)
    assert vault.for_host("www.npmjs.com") == (NPM,)
    assert vault.for_host("github.com") == ()
    assert vault.for_host("api.github.com.evil.example") == ()


def test_scan() -> None:
    vault = SecretVault([GH, NPM], b"k" * 32)
    gh = vault.guest_env()["GITHUB_TOKEN"]
    assert vault.scan("GET / HTTP/1.1\r\nHost: a\r\n") == ([], False)
    assert vault.scan(f"Authorization: Bearer {gh}\r\n") == ([GH], False)
    stale = placeholder(b"old" * 11, "GITHUB_TOKEN")
    assert vault.scan(f"x-api-key: {stale}\r\n") == ([], True)
    assert vault.scan(f"a: {gh}\r\nb: {stale}\r\n") == ([GH], True)
    assert vault.scan("vbxph_not-a-placeholder") == ([], False)


def test_values_are_cached_for_ttl() -> None:
    clock, reader = FakeClock(), CountingReader()
    vault = SecretVault([GH, NPM], b"k" * 32, reader=reader, ttl=60, clock=clock)
    first = vault.value(GH)
    assert vault.value(GH) == first and reader.calls == ["env:GH"]
    clock.now += 59.9
    assert vault.value(GH) == first
    clock.now += 0.2
    assert vault.value(GH) != first and reader.calls == ["env:GH", "env:GH"]
    vault.value(NPM)
    assert reader.calls[-1] == "env:NPM"


def test_update_drops_changed_and_removed_values() -> None:
    clock, reader = FakeClock(), CountingReader()
    vault = SecretVault([GH, NPM], b"k" * 32, reader=reader, clock=clock)
    vault.value(GH), vault.value(NPM)
    moved = Secret("GITHUB_TOKEN", ("api.github.com",), "env:GH2")
    vault.update([moved, NPM])
    assert vault.secrets == (moved, NPM)
    vault.value(NPM)  # unchanged: still cached
    assert reader.calls == ["env:GH", "env:NPM"]
    vault.value(moved)
    assert reader.calls[-1] == "env:GH2"
    with pytest.raises(SecretError, match="not approved"):
        vault.value(GH)  # the old definition is gone
    vault.update([])
    with pytest.raises(SecretError):
        vault.value(NPM)
    assert vault.guest_env() == {} and vault.scan(placeholder(b"k" * 32, "NPM_TOKEN"))[1]


def test_a_failing_source_names_the_secret() -> None:
    failing = Secret("BROKEN", ("a.example",), "env:FAIL")
    vault = SecretVault([failing], b"k" * 32, reader=CountingReader())
    with pytest.raises(SecretError, match=r"^secret BROKEN: the secret source env:FAIL"):
        vault.value(failing)


def test_the_repr_shows_names_only() -> None:
    vault = SecretVault([GH], b"k" * 32, reader=lambda source: TOKEN)
    assert vault.value(GH) == TOKEN
    text = repr(vault)
    assert "GITHUB_TOKEN" in text and TOKEN not in text and "env:GH" not in text
    assert placeholder(b"k" * 32, "GITHUB_TOKEN") not in text


def test_threads_share_one_vault() -> None:
    vault = SecretVault([GH, NPM], b"k" * 32, reader=lambda source: source.upper())
    errors: list[BaseException] = []

    def work() -> None:
        try:
            for _ in range(200):
                assert vault.value(NPM) == "ENV:NPM"
                vault.scan(vault.guest_env()["NPM_TOKEN"])
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for _ in range(50):
        vault.update([GH, NPM])
    for thread in threads:
        thread.join()
    assert errors == []
