"""Unit tests for the guest's boot-time setup script (vibebox_core/guest/vibebox-setup).

The script runs inside the guest as root; here its pure parts run against files in a temp
directory (the module constants that name guest paths are pointed there).
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import os
from pathlib import Path
from types import ModuleType

import pytest

from vibebox_core.images import plan


@pytest.fixture
def setup() -> ModuleType:
    path = plan.guest_dir() / "vibebox-setup"
    loader = importlib.machinery.SourceFileLoader("vibebox_setup", str(path))
    spec = importlib.util.spec_from_loader("vibebox_setup", loader)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


def test_set_ids_rewrites_only_the_user_line(setup: ModuleType, tmp_path: Path) -> None:
    passwd = tmp_path / "passwd"
    passwd.write_text(
        "root:x:0:0:root:/root:/bin/bash\n"
        "vibecoder:x:1000:1000:vibebox user:/home/vibecoder:/bin/bash\n"
    )
    passwd.chmod(0o644)
    assert setup._set_ids(str(passwd), "vibecoder", {2: "1234", 3: "1235"})
    assert passwd.read_text().splitlines() == [
        "root:x:0:0:root:/root:/bin/bash",
        "vibecoder:x:1234:1235:vibebox user:/home/vibecoder:/bin/bash",
    ]
    assert passwd.stat().st_mode & 0o777 == 0o644
    assert not setup._set_ids(str(passwd), "vibecoder", {2: "1234", 3: "1235"})  # no change
    with pytest.raises(KeyError):
        setup._set_ids(str(passwd), "nobody", {2: "1"})


def test_guest_paths(setup: ModuleType) -> None:
    assert setup.guest_path("~/data") == "/home/vibecoder/data"
    assert setup.guest_path("~") == "/home/vibecoder"
    assert setup.guest_path("/srv/x/../y") == "/srv/y"
    with pytest.raises(ValueError):
        setup.guest_path("relative/dir")


def test_environment_files_follow_guest_json(
    setup: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env_file = tmp_path / "environment"
    apt = tmp_path / "apt.conf.d" / "90vibebox-proxy"
    git = tmp_path / "gitconfig"
    monkeypatch.setattr(setup, "ENV_FILE", str(env_file))
    monkeypatch.setattr(setup, "APT_PROXY", str(apt))
    monkeypatch.setattr(setup, "GITCONFIG", str(git))
    proxy = "http://10.213.5.1:3128"
    setup.write_environment({"http_proxy": proxy, "HTTPS_PROXY": proxy, "bad key": "x"})
    text = env_file.read_text()
    assert f'http_proxy="{proxy}"' in text and f'HTTPS_PROXY="{proxy}"' in text
    assert "bad key" not in text
    assert f'Acquire::http::Proxy "{proxy}";' in apt.read_text()
    assert f'Acquire::https::Proxy "{proxy}";' in apt.read_text()
    assert f"proxy = {proxy}" in git.read_text()
    # The next boot has no proxy: everything vibebox wrote is gone, nothing else is touched.
    setup.write_environment({})
    assert env_file.read_text() == ""
    assert not apt.exists() and not git.exists()
    git.write_text("[user]\n\tname = someone\n")
    setup.write_environment({})
    assert git.exists()


def test_session_ca_is_added_replaced_and_removed(
    setup: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seed, bundle, local = tmp_path / "seed", tmp_path / "bundle.crt", tmp_path / "local.crt"
    seed.mkdir()
    public = "-----BEGIN CERTIFICATE-----\nPUBLIC\n-----END CERTIFICATE-----\n"
    bundle.write_text(public)
    monkeypatch.setattr(setup, "SEED", str(seed))
    monkeypatch.setattr(setup, "CA_BUNDLE", str(bundle))
    monkeypatch.setattr(setup, "SESSION_CA", str(local))
    first = "-----BEGIN CERTIFICATE-----\nFIRST\n-----END CERTIFICATE-----\n"
    (seed / "ca.crt").write_text(first)
    setup.trust_session_ca()
    assert bundle.read_text() == public + setup.CA_BEGIN + first + setup.CA_END
    assert local.read_text() == first
    # The next session's CA replaces the old one instead of piling up.
    second = first.replace("FIRST", "SECOND")
    (seed / "ca.crt").write_text(second)
    setup.trust_session_ca()
    assert bundle.read_text() == public + setup.CA_BEGIN + second + setup.CA_END
    # A session without secrets has no CA: the guest trusts only the public roots again.
    (seed / "ca.crt").unlink()
    setup.trust_session_ca()
    assert bundle.read_text() == public
    assert not local.exists()
    (seed / "ca.crt").write_text("not a certificate")
    with pytest.raises(ValueError):
        setup.trust_session_ca()


def test_shell_integration_defines_the_four_commands() -> None:
    text = (plan.guest_dir() / "shell.bash").read_text()
    for name in ("new", "exit", "explain", "help"):
        assert f":{name}() {{ __vibebox_command {name}; }}" in text
    assert "\\033]7777;vibebox-command=%s;%s\\007" in text


def test_shell_integration_runs_in_bash_and_is_skipped_by_sh(tmp_path: Path) -> None:
    import shutil
    import subprocess

    guest = plan.guest_dir()
    # The profile snippet sources /usr/lib/vibebox/shell.bash; point it at the package copy.
    profile = tmp_path / "vibebox.sh"
    profile.write_text(
        (guest / "profile-vibebox.sh")
        .read_text()
        .replace("/usr/lib/vibebox/shell.bash", str(guest / "shell.bash"))
    )
    token = "0123456789abcdef0123456789abcdef"
    out = subprocess.run(
        ["bash", "-c", f". {profile}; :new; :help; env; bash -c ':new'; echo $?"],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "VIBEBOX_COMMAND_TOKEN": token},
    )
    signed = "".join(f"\x1b]7777;vibebox-command={n};{token}\x07" for n in ("new", "help"))
    assert out.stdout.startswith(signed)
    # The token is gone from the environment: programs and nested shells never see it.
    assert token not in out.stdout[len(signed) :]
    assert out.stdout.endswith("\n127\n") or out.stdout.endswith("\n1\n")
    unsigned = subprocess.run(
        ["bash", "-c", f". {profile}; :new"], capture_output=True, text=True, env=dict(os.environ)
    )
    assert (unsigned.returncode, unsigned.stdout) == (1, "")  # no token: nothing to sign with
    assert "only in the dashboard" in unsigned.stderr
    posix = subprocess.run(
        ["bash", "--posix", "-c", f". {profile}; echo ok"], capture_output=True, text=True
    )
    assert (posix.returncode, posix.stdout, posix.stderr) == (0, "ok\n", "")
    if shutil.which("dash"):
        dash = subprocess.run(
            ["dash", "-c", f". {profile}; echo ok"], capture_output=True, text=True
        )
        assert (dash.returncode, dash.stdout, dash.stderr) == (0, "ok\n", "")
