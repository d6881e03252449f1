"""The share guard without a VM: the preloaded library under a real process, and the launcher.

The library (``vibebox_core/share/shim.c``) is compiled as vibebox compiles it and preloaded
into a Python child that makes the calls virtiofsd makes (the libc functions and raw
``syscall()``), so each rule is seen to change what reaches the kernel. The launcher runs with a
stand-in for virtiofsd that reports what it was given and what it sees.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from vibebox_core.errors import VirtiofsdError
from vibebox_core.hypervisor import domain_xml, virtiofs
from vibebox_core.share import guard, pins
from vibebox_core.share.pins import MountChangedError

needs_cc = pytest.mark.skipif(shutil.which("cc") is None, reason="no C compiler")
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (mount namespace, ids)")

SHARE_UID, SHARE_GID = 4321, 4322


@pytest.fixture(scope="module")
def binaries(tmp_path_factory: pytest.TempPathFactory) -> guard.GuardBinaries:
    if shutil.which("cc") is None:
        pytest.skip("no C compiler")
    return guard.build_guard(tmp_path_factory.mktemp("guard"))


def run_preloaded(
    binaries: guard.GuardBinaries, cwd: Path, code: str, *, env: dict[str, str] | None = None
) -> dict[str, object]:
    """Run ``code`` in a Python child with the guard preloaded; it prints one JSON object."""
    child_env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "LD_PRELOAD": str(binaries.shim),
        "VIBEBOX_SHARE_UID": str(SHARE_UID),
        "VIBEBOX_SHARE_GID": str(SHARE_GID),
    }
    if env is not None:
        child_env = env | {"LD_PRELOAD": str(binaries.shim)}
    prelude = textwrap.dedent(
        """
        import ctypes, errno, json, os, stat
        libc = ctypes.CDLL(None, use_errno=True)
        out = {}
        def attempt(name, fn):
            try:
                fn()
                out[name] = "ok"
            except OSError as exc:
                out[name] = errno.errorcode[exc.errno]
        keep = []
        def cstr(text):
            buf = ctypes.create_string_buffer(text)
            keep.append(buf)
            return ctypes.addressof(buf)
        def sys_(name, *args):
            ctypes.set_errno(0)
            res = libc.syscall(*[ctypes.c_long(a) for a in args])
            out[name] = res if res != -1 else errno.errorcode[ctypes.get_errno()]
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", prelude + textwrap.dedent(code) + "\nprint(json.dumps(out))"],
        cwd=cwd,
        env=child_env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def mode_of(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


@needs_cc
def test_setuid_and_setgid_bits_are_stripped_from_every_mode(
    binaries: guard.GuardBinaries, tmp_path: Path
) -> None:
    (tmp_path / "bin").write_text("#!/bin/sh\n")
    (tmp_path / "bin2").write_text("#!/bin/sh\n")
    (tmp_path / "sub").mkdir()
    out = run_preloaded(
        binaries,
        tmp_path,
        """
        os.umask(0)
        os.chmod("bin", 0o4755)
        os.chmod("bin2", 0o6777)
        os.close(os.open("created", os.O_CREAT | os.O_WRONLY, 0o6755))
        os.mkdir("dir", 0o2775)
        os.chmod("dir", 0o2775)
        os.mkfifo("fifo", 0o4644)
        os.mknod("node", 0o4644 | stat.S_IFREG)
        libc.creat(b"creat", 0o4755)
        libc.fchmod(os.open("creat", os.O_RDONLY), 0o6755)
        fd = os.open(".", os.O_RDONLY | os.O_DIRECTORY)
        os.chmod("bin", 0o4700, dir_fd=fd)
        # raw fchmodat(AT_FDCWD, "bin", 04777) through syscall()
        sys_("raw", 268, -100, cstr(b"bin"), 0o4777)
        """,
    )
    assert out == {"raw": 0}
    assert mode_of(tmp_path / "bin") == 0o777  # the raw fchmodat(04777) came last
    assert mode_of(tmp_path / "bin2") == 0o777
    assert mode_of(tmp_path / "created") == 0o755
    assert mode_of(tmp_path / "dir") == 0o775
    assert mode_of(tmp_path / "fifo") == 0o644
    assert mode_of(tmp_path / "creat") == 0o755
    assert mode_of(tmp_path / "node") == 0o644


@needs_cc
def test_the_same_calls_without_the_guard_keep_the_bits(tmp_path: Path) -> None:
    """The control: the rules above are the guard's doing, not the file system's."""
    (tmp_path / "bin").write_text("#!/bin/sh\n")
    os.chmod(tmp_path / "bin", 0o4755)
    (tmp_path / "dir").mkdir()
    os.chmod(tmp_path / "dir", 0o2775)
    assert mode_of(tmp_path / "bin") & stat.S_ISUID
    assert os.stat(tmp_path / "dir").st_mode & stat.S_ISGID


@needs_cc
@needs_root
def test_device_nodes_and_whiteouts_are_refused(
    binaries: guard.GuardBinaries, tmp_path: Path
) -> None:
    (tmp_path / "a").write_text("a")
    out = run_preloaded(
        binaries,
        tmp_path,
        """
        attempt("block", lambda: os.mknod("blk", 0o600 | stat.S_IFBLK, os.makedev(8, 0)))
        attempt("char", lambda: os.mknod("chr", 0o600 | stat.S_IFCHR, os.makedev(1, 3)))
        fd = os.open(".", os.O_RDONLY | os.O_DIRECTORY)
        attempt("at", lambda: os.mknod("chr2", 0o600 | stat.S_IFCHR, os.makedev(1, 3), dir_fd=fd))
        # mknodat(AT_FDCWD, "raw", S_IFCHR|0600, makedev(1, 3)) and renameat2(RENAME_WHITEOUT)
        sys_("raw_mknodat", 259, -100, cstr(b"raw"),
             0o20600, os.makedev(1, 3))
        sys_("whiteout", 316, -100, cstr(b"a"),
             -100, cstr(b"b"), 4)
        attempt("fifo", lambda: os.mknod("fifo", 0o600 | stat.S_IFIFO))
        """,
    )
    assert out == {
        "block": "EPERM",
        "char": "EPERM",
        "at": "EPERM",
        "raw_mknodat": "EPERM",
        "whiteout": "EPERM",
        "fifo": "ok",
    }
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "fifo"]


@needs_cc
@needs_root
def test_chown_only_to_the_share_owner(binaries: guard.GuardBinaries, tmp_path: Path) -> None:
    (tmp_path / "f").write_text("f")
    (tmp_path / "g").write_text("g")
    out = run_preloaded(
        binaries,
        tmp_path,
        f"""
        attempt("foreign", lambda: os.chown("f", 1234, 1234))
        attempt("root", lambda: os.chown("f", 0, 0))
        attempt("foreign_gid", lambda: os.chown("f", -1, 1234))
        attempt("lchown", lambda: os.lchown("f", 1234, -1))
        attempt("fchown", lambda: os.fchown(os.open("f", os.O_RDONLY), 1234, -1))
        sys_("raw_fchownat", 260, -100,
             cstr(b"f"), 1234, 1234, 0)
        attempt("owner", lambda: os.chown("g", {SHARE_UID}, {SHARE_GID}))
        """,
    )
    assert out == {
        "foreign": "EPERM",
        "root": "EPERM",
        "foreign_gid": "EPERM",
        "lchown": "EPERM",
        "fchown": "EPERM",
        "raw_fchownat": "EPERM",
        "owner": "ok",
    }
    assert (os.stat(tmp_path / "f").st_uid, os.stat(tmp_path / "f").st_gid) == (0, 0)
    assert (os.stat(tmp_path / "g").st_uid, os.stat(tmp_path / "g").st_gid) == (
        SHARE_UID,
        SHARE_GID,
    )


@needs_cc
@needs_root
def test_identity_switches_land_on_the_share_owner(
    binaries: guard.GuardBinaries, tmp_path: Path
) -> None:
    """virtiofsd's pattern: syscall(SYS_setres[ug]id, -1, guest id, -1), then back to 0."""
    tmp_path.chmod(0o777)
    out = run_preloaded(
        binaries,
        tmp_path,
        """
        # as virtiofsd for a request of guest root (uid 0) and then of guest uid 1000
        for guest in (0, 1000):
            sys_(f"gid_{guest}", 119, -1, guest, -1)
            sys_(f"uid_{guest}", 117, -1, guest, -1)
            out[f"ids_{guest}"] = [os.geteuid(), os.getegid()]
            os.close(os.open(f"made_by_{guest}", os.O_CREAT | os.O_WRONLY, 0o644))
            sys_(f"back_uid_{guest}", 117, -1, 0, -1)
            sys_(f"back_gid_{guest}", 119, -1, 0, -1)
            out[f"after_{guest}"] = [os.geteuid(), os.getegid()]
        sys_("switched_twice_a", 117, -1, 1000, -1)
        sys_("switched_twice_b", 117, -1, 2000, -1)
        out["twice"] = os.geteuid()
        sys_("back", 117, -1, 0, -1)
        sys_("real_uid", 117, 1234, -1, -1)
        sys_("saved_uid", 117, -1, -1, 1234)
        attempt("setuid", lambda: os.setuid(1234))
        attempt("libc_setresuid", lambda: os.setresuid(-1, 1000, -1))
        out["libc_euid"] = os.geteuid()
        attempt("libc_back", lambda: os.setresuid(-1, 0, -1))
        out["final"] = [os.getuid(), os.geteuid()]
        """,
    )
    for guest in (0, 1000):
        assert out[f"ids_{guest}"] == [SHARE_UID, SHARE_GID]
        assert out[f"after_{guest}"] == [0, 0]
        made = os.stat(tmp_path / f"made_by_{guest}")
        assert (made.st_uid, made.st_gid) == (SHARE_UID, SHARE_GID)
    assert out["twice"] == SHARE_UID
    assert out["real_uid"] == out["saved_uid"] == out["setuid"] == "EPERM"
    assert out["libc_setresuid"] == "ok" and out["libc_euid"] == SHARE_UID
    assert out["final"] == [0, 0]


@needs_cc
def test_security_and_trusted_xattrs_are_refused(
    binaries: guard.GuardBinaries, tmp_path: Path
) -> None:
    (tmp_path / "f").write_text("f")
    out = run_preloaded(
        binaries,
        tmp_path,
        """
        attempt("cap", lambda: os.setxattr("f", "security.capability", b"\\x01" * 20))
        attempt("trusted", lambda: os.setxattr("f", "trusted.x", b"1"))
        attempt("lcap", lambda: os.setxattr("f", "security.x", b"1", follow_symlinks=False))
        attempt("fcap", lambda: os.setxattr(os.open("f", os.O_RDONLY), "security.x", b"1"))
        """,
    )
    assert out == {"cap": "EPERM", "trusted": "EPERM", "lcap": "EPERM", "fcap": "EPERM"}


@needs_cc
def test_the_guard_fails_closed_without_an_owner(
    binaries: guard.GuardBinaries, tmp_path: Path
) -> None:
    done = subprocess.run(
        [sys.executable, "-c", "print('served')"],
        env={"PATH": "/usr/bin:/bin", "LD_PRELOAD": str(binaries.shim)},
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 97
    assert "served" not in done.stdout
    assert "share owner is not set" in done.stderr


@needs_cc
@pytest.mark.skipif(not virtiofs.VIRTIOFSD.exists(), reason="no virtiofsd")
def test_the_real_virtiofsd_loads_the_guard(binaries: guard.GuardBinaries) -> None:
    """ld.so runs the guard's initialiser in the real virtiofsd, which then works normally."""
    done = subprocess.run(
        [str(virtiofs.VIRTIOFSD), "--version"],
        env={
            "PATH": "/usr/bin:/bin",
            "LD_PRELOAD": str(binaries.shim),
            "LD_DEBUG": "libs",
            "VIBEBOX_SHARE_UID": str(SHARE_UID),
            "VIBEBOX_SHARE_GID": str(SHARE_GID),
        },
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "virtiofsd version" in done.stdout
    assert f"calling init: {binaries.shim}" in done.stderr


def test_build_names_a_missing_compiler(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CC", "no-such-compiler-vibebox")
    with pytest.raises(VirtiofsdError, match="no C compiler") as info:
        guard.build_guard(tmp_path)
    assert "apt-get install gcc" in info.value.hint


@needs_cc
def test_build_is_reused_and_reports_compile_errors(
    binaries: guard.GuardBinaries, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    again = guard.build_guard(binaries.shim.parent)
    assert again == binaries
    fake = tmp_path / "cc"
    fake.write_text("#!/bin/sh\necho 'shim.c:1: error: broken' >&2\nexit 1\n")
    fake.chmod(0o755)
    monkeypatch.setenv("CC", str(fake))
    with pytest.raises(VirtiofsdError, match="broken"):
        guard.build_guard(tmp_path / "out")


# --------------------------------------------------------------------------- the launcher

FAKE_VIRTIOFSD = """#!/bin/sh
# Stands in for virtiofsd: report the arguments, the environment and the view it serves.
src=""
for arg in "$@"; do case "$arg" in source=*) src="${arg#source=}"; src="${src%%,*}" ;; esac; done
{
  echo "ARGS $*"
  echo "PRELOAD $LD_PRELOAD"
  echo "OWNER $VIBEBOX_SHARE_UID:$VIBEBOX_SHARE_GID"
  echo "LABEL $VIBEBOX_SHARE"
  echo "SERVED $(stat -c '%d:%i' "$src")"
  echo "CACHE $(ls -A "$src/.vibebox" | tr '\\n' ' ')"
  if touch "$src/written" 2>/dev/null; then echo "WRITE ok"; else echo "WRITE refused"; fi
} > "$REPORT"
"""


@pytest.fixture
def fake_virtiofsd(tmp_path: Path) -> Path:
    fake = tmp_path / "fake-virtiofsd"
    fake.write_text(FAKE_VIRTIOFSD)
    fake.chmod(0o755)
    return fake


def launch(
    binaries: guard.GuardBinaries,
    fake: Path,
    pinned: pins.PinnedDir,
    report: Path,
    *,
    read_only: bool = False,
    source: str | None = None,
) -> subprocess.CompletedProcess[str]:
    script = guard.wrapper_script(
        binaries,
        pinned,
        read_only=read_only,
        owner=guard.ShareOwner(SHARE_UID, SHARE_GID),
        label="sid:tag",
        real=fake,
    )
    wrapper = report.parent / "wrapper"
    wrapper.write_text(script)
    wrapper.chmod(0o700)
    src = (source if source is not None else pinned.path).replace(",", ",,")
    return subprocess.run(
        [str(wrapper), "--fd=3", "-o", f"source={src},cache=auto", "--thread-pool-size=1"],
        env={"PATH": "/usr/bin:/bin", "REPORT": str(report)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def read_report(report: Path) -> dict[str, str]:
    lines = report.read_text().splitlines()
    return {line.split(" ", 1)[0]: line.split(" ", 1)[1] if " " in line else "" for line in lines}


@needs_cc
@needs_root
def test_launcher_serves_the_pinned_directory_guarded(
    binaries: guard.GuardBinaries, fake_virtiofsd: Path, tmp_path: Path
) -> None:
    project = tmp_path / "my, project"
    (project / ".vibebox").mkdir(parents=True)
    (project / ".vibebox" / "id_ed25519").write_text("secret")
    pinned = pins.pin(project)
    report = tmp_path / "report"
    done = launch(binaries, fake_virtiofsd, pinned, report)
    assert done.returncode == 0, done.stderr
    got = read_report(report)
    assert got["SERVED"] == f"{pinned.dev}:{pinned.ino}"
    assert got["CACHE"].strip() == ""  # .vibebox/ is masked
    assert got["PRELOAD"] == str(binaries.shim)
    assert got["OWNER"] == f"{SHARE_UID}:{SHARE_GID}"
    assert got["LABEL"] == "sid:tag"
    assert "modcaps=-mknod:-setfcap:-fsetid" in got["ARGS"]
    assert got["ARGS"].endswith("-o no_xattr")
    assert ",cache=auto" in got["ARGS"] and "--thread-pool-size=1" in got["ARGS"]
    assert got["WRITE"] == "ok" and (project / "written").exists()
    assert (project / ".vibebox" / "id_ed25519").read_text() == "secret"


@needs_cc
@needs_root
def test_launcher_read_only_share_refuses_writes(
    binaries: guard.GuardBinaries, fake_virtiofsd: Path, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    report = tmp_path / "report"
    done = launch(binaries, fake_virtiofsd, pins.pin(data), report, read_only=True)
    assert done.returncode == 0, done.stderr
    assert read_report(report)["WRITE"] == "refused"
    assert not (data / "written").exists()


@needs_cc
@needs_root
def test_launcher_refuses_a_swapped_or_symlinked_directory(
    binaries: guard.GuardBinaries, fake_virtiofsd: Path, tmp_path: Path
) -> None:
    inner = tmp_path / "sub" / "inner"
    inner.mkdir(parents=True)
    approved = pins.pin(inner)
    elsewhere = tmp_path / "elsewhere" / "inner"
    elsewhere.mkdir(parents=True)
    (tmp_path / "sub").rename(tmp_path / "old")
    (tmp_path / "sub").symlink_to(tmp_path / "elsewhere")
    report = tmp_path / "report"
    done = launch(binaries, fake_virtiofsd, approved, report)
    assert done.returncode == 1
    assert "symlink" in done.stderr and not report.exists()
    (tmp_path / "sub").unlink()
    (tmp_path / "sub" / "inner").mkdir(parents=True)  # same name, another inode
    done = launch(binaries, fake_virtiofsd, approved, report)
    assert done.returncode == 1
    assert "not the approved one" in done.stderr and not report.exists()


@needs_cc
@needs_root
def test_launcher_refuses_a_vibebox_that_is_no_directory(
    binaries: guard.GuardBinaries, fake_virtiofsd: Path, tmp_path: Path
) -> None:
    project = tmp_path / "proj"
    project.mkdir()
    (tmp_path / "keys").mkdir()
    (project / ".vibebox").symlink_to(tmp_path / "keys")
    report = tmp_path / "report"
    done = launch(binaries, fake_virtiofsd, pins.pin(project), report)
    assert done.returncode == 1
    assert ".vibebox is not a directory" in done.stderr and not report.exists()


@needs_cc
@needs_root
def test_launcher_refuses_another_source(
    binaries: guard.GuardBinaries, fake_virtiofsd: Path, tmp_path: Path
) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    report = tmp_path / "report"
    done = launch(
        binaries, fake_virtiofsd, pins.pin(tmp_path / "a"), report, source=str(tmp_path / "b")
    )
    assert done.returncode == 1
    assert "another directory" in done.stderr and not report.exists()


# --------------------------------------------------------------------------- guard_shares


@needs_cc
def test_guard_shares_pins_and_writes_one_wrapper_per_share(tmp_path: Path) -> None:
    project = tmp_path / "proj"
    seed = project / ".vibebox" / "seed"
    seed.mkdir(parents=True)
    data = tmp_path / "data"
    data.mkdir()
    recorded = {"/home/vibecoder/data": pins.pin(data).to_dict()}
    sid = "019bf290-cccc-7c23-ba1d-dce7e6d40693"
    shares = guard.guard_shares(
        sid,
        project,
        [
            (virtiofs.Share(seed, "vibebox-seed", True), None),
            (virtiofs.Share(project, "vibebox-project", False), "/home/vibecoder/proj"),
            (virtiofs.Share(data, "vibebox-m1", True), "/home/vibecoder/data"),
        ],
        recorded,
        directory=tmp_path / "bin",
    )
    assert [s.tag for s in shares] == ["vibebox-seed", "vibebox-project", "vibebox-m1"]
    for share in shares:
        assert share.binary == tmp_path / "bin" / "shares" / f"{sid}-{share.tag}"
        text = share.binary.read_text()
        assert f"--label {sid}:{share.tag}" in text
        assert ("--ro" in text) is share.read_only
        assert stat.S_IMODE(share.binary.stat().st_mode) == 0o700
    assert f"--ino {pins.pin(data).ino}" in shares[2].binary.read_text()  # type: ignore[union-attr]

    xml = domain_xml.domain_xml(
        domain_xml.DomainSpec(
            session_id=sid,
            name="vibebox-proj-019bf290",
            cpus=1,
            memory_mb=512,
            accel="tcg",
            kernel=Path("/k"),
            initrd=Path("/i"),
            disk=Path("/d"),
            console_log=Path("/c"),
            network="n",
            mac="52:54:00:00:00:01",
            filesystems=tuple(shares),
        )
    )
    for share in shares:
        assert f'<binary path="{share.binary}"' in xml


@needs_cc
def test_guard_shares_refuses_a_mount_swapped_after_approval(tmp_path: Path) -> None:
    project = tmp_path / "proj"
    (project / "sub" / "inner").mkdir(parents=True)
    recorded = {"/home/vibecoder/inner": pins.pin(project / "sub" / "inner").to_dict()}
    (project / "sub").rename(project / "moved")
    (tmp_path / "evil" / "inner").mkdir(parents=True)
    (project / "sub").symlink_to(tmp_path / "evil")
    share = virtiofs.Share(project / "sub" / "inner", "vibebox-m1", False)
    with pytest.raises(MountChangedError, match="changed since it was approved") as info:
        guard.guard_shares(
            "019bf290-cccc-7c23-ba1d-dce7e6d40693",
            project,
            [(share, "/home/vibecoder/inner")],
            recorded,
            directory=tmp_path / "bin",
        )
    assert "/home/vibecoder/inner" in info.value.message
    assert "vibebox approve" in info.value.hint
    with pytest.raises(VirtiofsdError, match="no recorded directory"):
        guard.guard_shares(
            "019bf290-cccc-7c23-ba1d-dce7e6d40693",
            project,
            [(share, "/home/vibecoder/other")],
            recorded,
            directory=tmp_path / "bin",
        )


def test_share_owner_is_the_user_or_the_project_owner_for_root(tmp_path: Path) -> None:
    owner = guard.share_owner(pins.pin(tmp_path))
    if os.getuid() == 0:
        info = tmp_path.stat()
        assert owner == guard.ShareOwner(info.st_uid, info.st_gid)
    else:
        assert owner == guard.ShareOwner(os.getuid(), os.getgid())


def test_remove_wrappers_removes_only_that_sessions(tmp_path: Path) -> None:
    shares = tmp_path / "shares"
    shares.mkdir()
    sid, other = "019bf290-cccc-7c23-ba1d-dce7e6d40693", "019bf290-dddd-7c23-8a1d-0123456789ab"
    for name in (f"{sid}-vibebox-seed", f"{sid}-vibebox-m1", f"{other}-vibebox-seed"):
        (shares / name).write_text("#!/bin/sh\n")
    guard.remove_wrappers(sid, tmp_path)
    assert [p.name for p in shares.iterdir()] == [f"{other}-vibebox-seed"]
    guard.remove_wrappers(sid, tmp_path / "missing")  # nothing there: fine
