"""Unit tests for the base image store: metadata, verification, build planning, progress.

No debootstrap here: builds are exercised with the bootstrap replaced by a fake that lays out
a tiny root file system, so the rest of the pipeline (mkfs.ext4 -d, qemu-img, checksums, the
atomic install) runs for real when those tools exist.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import subprocess
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from vibebox_cli.commands import image as image_cmd
from vibebox_core import paths
from vibebox_core.errors import ImageError
from vibebox_core.images import build as imagebuild
from vibebox_core.images import plan as imageplan
from vibebox_core.images import record, store, workspace
from vibebox_core.progress import ProgressEvent


def _make_image(
    name: str = paths.DEFAULT_IMAGE_NAME,
    *,
    payload: bytes = b"disk",
    guest_digest: str | None = None,
) -> Path:
    """Write a small but complete image directory (fake artifacts, real checksums)."""
    directory = paths.image_dir(name)
    directory.mkdir(parents=True)
    artifacts = {}
    for key, file in record.ARTIFACT_FILES.items():
        data = payload + key.encode()
        (directory / file).write_bytes(data)
        artifacts[key] = record.Artifact(file, len(data), store.sha256_file(directory / file))
    info = record.ImageInfo(
        name=name,
        directory=directory,
        suite="bookworm",
        mirror="http://deb.debian.org/debian",
        builder="debootstrap",
        packages=(*imageplan.BASE_PACKAGES, "htop"),
        extra_packages=("htop",),
        built_at=datetime(2026, 11, 27, 3, 0, tzinfo=UTC),
        build_seconds=83.2,
        kernel_version="6.1.0-50-cloud-amd64",
        cmdline=imageplan.KERNEL_CMDLINE,
        rootfs_bytes=1 << 30,
        artifacts=artifacts,
        guest_digest=imageplan.guest_digest() if guest_digest is None else guest_digest,
    )
    (directory / paths.IMAGE_METADATA).write_text(info.to_toml())
    return directory


# --------------------------------------------------------------------------- metadata


def test_metadata_round_trips() -> None:
    directory = _make_image()
    info = store.read_image()
    assert info.name == "debian-12"
    assert info.extra_packages == ("htop",)
    assert info.built_at == datetime(2026, 11, 27, 3, 0, tzinfo=UTC)
    assert info.kernel == directory / "vmlinuz"
    assert info.initrd == directory / "initrd.img"
    assert info.base_disk == directory / "base.qcow2"
    assert info.cmdline.startswith("console=ttyS0 root=/dev/vda")
    assert set(info.artifacts) == {"kernel", "initrd", "base_disk"}
    assert record.ImageInfo.from_toml(info.to_toml(), directory) == info


def test_missing_image_names_the_build_command() -> None:
    with pytest.raises(ImageError) as err:
        store.read_image()
    assert "no image 'debian-12'" in err.value.message
    assert err.value.hint == "vibebox image build"


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (lambda t: t.replace("format = 1", "format = 9"), "format = 9"),
        (lambda t: t.replace('kernel_version = "6.1.0-50-cloud-amd64"\n', ""), "kernel_version"),
        (lambda t: t.replace('file = "vmlinuz"', 'file = "../etc/passwd"'), "plain file name"),
        (lambda t: t + "[[[", "not valid TOML"),
    ],
)
def test_damaged_metadata_is_refused_with_the_rebuild_command(
    edit: Callable[[str], str], expected: str
) -> None:
    directory = _make_image("custom")
    meta = directory / paths.IMAGE_METADATA
    meta.write_text(edit(meta.read_text()))
    with pytest.raises(ImageError) as err:
        store.read_image("custom")
    assert expected in err.value.message
    assert err.value.hint == "vibebox image build --name custom --force"


def test_bad_names_and_packages_are_refused() -> None:
    for bad in ("", ".hidden", "a/b", "x" * 65, "spa ce"):
        with pytest.raises(ImageError):
            record.validate_name(bad)
    assert imageplan.validate_packages(["htop", "g++", "htop"]) == ("htop", "g++")
    for bad in ("Htop", "--force", "a;rm -rf /", ""):
        with pytest.raises(ImageError):
            imageplan.validate_packages([bad])


def test_list_shows_damaged_images_without_failing() -> None:
    _make_image("good")
    broken = paths.image_dir("broken")
    broken.mkdir(parents=True)
    (paths.images_dir() / ".build-x-1").mkdir()  # an unfinished build is not listed
    listing = store.list_images()
    assert [e.name for e in listing] == ["broken", "good"]
    assert listing[0].info is None and "image.toml" in (listing[0].problem or "")
    assert listing[1].info is not None and listing[1].problem is None


def test_list_of_empty_store() -> None:
    assert store.list_images() == []


def test_remove_image() -> None:
    _make_image("old")
    store.remove_image("old")
    assert not paths.image_dir("old").exists()
    with pytest.raises(ImageError, match="no image 'old'"):
        store.remove_image("old")


# --------------------------------------------------------------------------- verification


def test_verify_accepts_a_good_image_and_caches_the_result(monkeypatch: pytest.MonkeyPatch) -> None:
    _make_image()
    events: list[ProgressEvent] = []
    store.verify_image(progress=events.append)
    assert [e.detail for e in events] == [
        "sha256 of vmlinuz",
        "sha256 of initrd.img",
        "sha256 of base.qcow2",
    ]
    hashed: list[Path] = []
    real = store.sha256_file

    def hashing(p: Path) -> str:
        hashed.append(p)
        return real(p)

    monkeypatch.setattr(store, "sha256_file", hashing)
    store.verify_image()
    assert hashed == []  # nothing changed: nothing re-hashed
    store.verify_image(use_cache=False)
    assert len(hashed) == 3


def test_verify_refuses_a_modified_base_disk() -> None:
    directory = _make_image()
    store.verify_image()  # cached as good
    disk = directory / "base.qcow2"
    data = disk.read_bytes()
    disk.write_bytes(b"X" + data[1:])  # same size
    with pytest.raises(ImageError) as err:
        store.verify_image()
    assert "does not match its checksum" in err.value.message
    assert err.value.hint == "vibebox image build --force"


def test_verify_catches_tampering_that_restores_size_and_mtime() -> None:
    directory = _make_image()
    store.verify_image()
    disk = directory / "base.qcow2"
    before = disk.stat()
    data = disk.read_bytes()
    disk.write_bytes(b"Y" + data[1:])
    os.utime(disk, ns=(before.st_atime_ns, before.st_mtime_ns))  # cover the tracks
    after = disk.stat()
    assert (after.st_size, after.st_mtime_ns) == (before.st_size, before.st_mtime_ns)
    with pytest.raises(ImageError, match="does not match its checksum"):
        store.verify_image()


def test_verify_refuses_missing_and_truncated_files() -> None:
    directory = _make_image()
    (directory / "initrd.img").unlink()
    with pytest.raises(ImageError, match=r"initrd\.img is missing"):
        store.verify_image()
    _make_image("two")
    (paths.image_dir("two") / "vmlinuz").write_bytes(b"")
    with pytest.raises(ImageError, match="has 0 bytes"):
        store.verify_image("two")


def test_ensure_image_refuses_a_damaged_image_instead_of_rebuilding(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    directory = _make_image()
    (directory / "vmlinuz").write_bytes(b"other!!!!!!!!")
    monkeypatch.setattr(imagebuild, "build_image", lambda *a, **k: pytest.fail("rebuilt"))
    with pytest.raises(ImageError):
        imagebuild.ensure_image()


# --------------------------------------------------------------------------- mirror


def test_apt_mirror_reads_deb822_and_one_line_sources(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(imageplan.MIRROR_ENV, raising=False)
    sources = tmp_path / "sources.list.d"
    sources.mkdir()
    (sources / "a-node.list").write_text("deb https://deb.nodesource.com/node_20.x nodistro main\n")
    (sources / "debian.sources").write_text(
        "Types: deb\n# comment\nURIs: http://mirror.example/debian/\nSuites: bookworm\n"
        "Components: main\n\nTypes: deb\nURIs: http://mirror.example/debian-security\n"
        "Suites: bookworm-security\n"
    )
    assert imageplan.apt_mirror((tmp_path / "none", sources)) == "http://mirror.example/debian"
    one_line = tmp_path / "sources.list"
    one_line.write_text(
        "# x\ndeb [arch=amd64 signed-by=/k.gpg] http://m2.example/debian bookworm main\n"
    )
    assert imageplan.apt_mirror((one_line,)) == "http://m2.example/debian"
    assert imageplan.apt_mirror((tmp_path / "none",)) == imageplan.FALLBACK_MIRROR
    monkeypatch.setenv(imageplan.MIRROR_ENV, "http://cache.local/debian/")
    assert imageplan.apt_mirror((one_line,)) == "http://cache.local/debian"


# --------------------------------------------------------------------------- build planning


def _plan(tmp_path: Path, **kw: Any) -> imageplan.BuildPlan:
    args: dict[str, Any] = {
        "rootfs": tmp_path / "rootfs",
        "boot_out": tmp_path / "boot",
        "packages": ("systemd", "htop"),
        "mirror": "http://deb.debian.org/debian",
        "cache_dir": tmp_path / "cache",
        "guest": imageplan.guest_dir(),
    }
    args.update(kw)
    return imageplan.plan_build(**args)


def test_root_builds_with_debootstrap_minbase(tmp_path: Path) -> None:
    plan = _plan(tmp_path, is_root=True, which=lambda tool: f"/usr/sbin/{tool}")
    assert plan.builder == "debootstrap"
    assert plan.bootstrap[:3] == ("debootstrap", "--variant=minbase", "--components=main")
    assert "--include=systemd,htop" in plan.bootstrap
    assert f"--cache-dir={tmp_path / 'cache' / 'debootstrap'}" in plan.bootstrap
    assert plan.bootstrap[-3:] == (
        "bookworm",
        str(tmp_path / "rootfs"),
        "http://deb.debian.org/debian",
    )
    assert plan.configure[:2] == ("bash", str(imageplan.guest_dir() / "configure-rootfs.sh"))
    assert "update-initramfs -u -k all" in plan.initramfs[-1]
    assert plan.helper == ()


def test_non_root_builds_with_mmdebstrap_in_unshare_mode(tmp_path: Path) -> None:
    plan = _plan(
        tmp_path,
        is_root=False,
        which=lambda tool: f"/usr/bin/{tool}",
        unshare_problem=lambda: None,
    )
    assert plan.builder == "mmdebstrap"
    assert plan.bootstrap[:3] == ("mmdebstrap", "--mode=unshare", "--variant=minbase")
    hooks = [a for a in plan.bootstrap if a.startswith("--customize-hook=")]
    assert any("configure-rootfs.sh" in h for h in hooks)
    assert any("update-initramfs" in h for h in hooks)
    assert f"--customize-hook=sync-out /boot {tmp_path / 'boot'}" in hooks
    cache = tmp_path / "cache" / "mmdebstrap"
    assert f"--setup-hook=sync-in {cache} /var/cache/apt/archives/" in plan.bootstrap
    assert hooks[-1] == f"--customize-hook=sync-out /var/cache/apt/archives {cache}"
    assert plan.helper == ("mmdebstrap", "--unshare-helper")


def test_root_without_debootstrap_falls_back_to_mmdebstrap(tmp_path: Path) -> None:
    plan = _plan(tmp_path, is_root=True, which=lambda t: "/x" if t == "mmdebstrap" else None)
    assert plan.builder == "mmdebstrap" and "--mode=root" in plan.bootstrap
    assert plan.helper == ()


def test_non_root_without_user_namespaces_names_the_exact_command(tmp_path: Path) -> None:
    with pytest.raises(ImageError) as err:
        _plan(
            tmp_path,
            is_root=False,
            which=lambda tool: f"/usr/bin/{tool}",
            unshare_problem=lambda: "/etc/subuid has no range for me",
        )
    assert "/etc/subuid has no range for me" in err.value.message
    assert "mmdebstrap --mode=unshare --variant=minbase" in err.value.message
    assert "sudo vibebox image build" in err.value.hint


def test_no_builder_at_all(tmp_path: Path) -> None:
    with pytest.raises(ImageError, match="mmdebstrap is not installed"):
        _plan(tmp_path, is_root=False, which=lambda tool: None)
    with pytest.raises(ImageError) as err:
        _plan(tmp_path, is_root=True, which=lambda tool: None)
    assert "apt-get install debootstrap" in err.value.hint


def test_rootfs_is_sized_with_headroom() -> None:
    mib = 2**20
    size = imageplan.rootfs_size_bytes(600 * mib)
    assert size % (64 * mib) == 0
    assert size >= 600 * mib * 1.15 + imageplan.ROOTFS_HEADROOM_MB * mib


def test_guest_files_are_package_data() -> None:
    guest = imageplan.guest_dir()
    for name in (
        "configure-rootfs.sh",
        "vibebox-setup",
        "vibebox-setup.service",
        "shell.bash",
        "profile-vibebox.sh",
        "10-vibebox.network",
        "sshd-vibebox.conf",
        "initramfs-modules",
    ):
        assert (guest / name).is_file(), name
    modules = (guest / "initramfs-modules").read_text().split()
    assert {"virtio_blk", "virtio_net", "virtiofs", "virtio_pci"} <= set(modules)


def test_mounts_below(tmp_path: Path) -> None:
    mountinfo = tmp_path / "mountinfo"
    mountinfo.write_text(
        "22 1 8:1 / / rw - ext4 /dev/vda rw\n"
        f"40 22 0:5 / {tmp_path}/b/rootfs/proc rw - proc proc rw\n"
        f"41 22 0:6 / {tmp_path}/b/rootfs/dev/pts rw - devpts devpts rw\n"
        f"42 22 0:7 / {tmp_path}/bb rw - tmpfs tmpfs rw\n"
    )
    (tmp_path / "b").mkdir()
    found = workspace.mounts_below(tmp_path / "b", mountinfo)
    assert found == [tmp_path / "b/rootfs/dev/pts", tmp_path / "b/rootfs/proc"]


# --------------------------------------------------------------- building (fake bootstrap)


def _fake_bootstrap(rootfs: Path) -> None:
    (rootfs / "boot").mkdir(parents=True)
    (rootfs / "boot" / "vmlinuz-6.1.0-99-cloud-amd64").write_bytes(b"kernel")
    (rootfs / "boot" / "initrd.img-6.1.0-99-cloud-amd64").write_bytes(b"initrd")
    (rootfs / "etc").mkdir()
    (rootfs / "etc" / "hostname").write_text("vibebox\n")


@pytest.fixture
def fake_build(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, ...]]:
    """Replace the bootstrap/configure/initrd commands; mkfs.ext4 and qemu-img stay real."""
    if not (shutil.which("mkfs.ext4") and shutil.which("qemu-img")):
        pytest.skip("needs mkfs.ext4 and qemu-img")
    calls: list[tuple[str, ...]] = []

    def plan(**kw: Any) -> imageplan.BuildPlan:
        rootfs: Path = kw["rootfs"]
        script = f"mkdir -p {rootfs} && cd {rootfs} && python3 -c 'import sys' && echo bootstrapped"
        return imageplan.BuildPlan(
            builder="debootstrap",
            bootstrap=("sh", "-c", script),
            configure=("true", "configure"),
            initramfs=("true", "initramfs"),
        )

    real_runner_call = workspace.Runner.__call__

    def runner(
        self: workspace.Runner, step: str, command: Sequence[str], *, cwd: Path | None = None
    ) -> None:
        calls.append(tuple(command))
        real_runner_call(self, step, command, cwd=cwd)
        if command[0] == "sh":
            _fake_bootstrap(Path(command[2].split()[2]))

    monkeypatch.setattr(imageplan, "plan_build", plan)
    monkeypatch.setattr(workspace.Runner, "__call__", runner)
    monkeypatch.setattr(imageplan, "ROOTFS_HEADROOM_MB", 8)
    return calls


def test_build_produces_a_verified_image_with_progress(fake_build: list[tuple[str, ...]]) -> None:
    events: list[ProgressEvent] = []
    info = imagebuild.build_image(packages=["htop"], progress=events.append)
    assert info.kernel_version == "6.1.0-99-cloud-amd64"
    assert info.guest_digest == imageplan.guest_digest() and not store.outdated(info)
    assert info.extra_packages == ("htop",)
    assert info.kernel.read_bytes() == b"kernel"
    assert store.verify_image().artifacts == info.artifacts
    steps = [e.step for e in events]
    assert steps[0] == "preparing"
    for expected in (
        "bootstrapping Debian bookworm (debootstrap)",
        "configuring the guest",
        "building the initrd",
        "converting to a qcow2 base disk",
        "recording checksums",
    ):
        assert expected in steps
    assert events[-1].step == "done" and events[-1].done
    elapsed = [e.elapsed for e in events]
    assert elapsed == sorted(elapsed)
    qemu = subprocess.run(
        ["qemu-img", "info", "--output=json", str(info.base_disk)], capture_output=True, text=True
    )
    assert json.loads(qemu.stdout)["format"] == "qcow2"
    leftovers = [p.name for p in paths.images_dir().iterdir() if p.name.startswith(".build")]
    assert leftovers == []
    with pytest.raises(ImageError, match="already exists"):
        imagebuild.build_image()


def test_failed_build_leaves_no_half_image(
    fake_build: list[tuple[str, ...]], monkeypatch: pytest.MonkeyPatch
) -> None:
    _make_image()  # an existing image a --force rebuild would replace
    before = store.read_image()

    def broken(**kw: Any) -> imageplan.BuildPlan:
        return imageplan.BuildPlan(
            builder="debootstrap",
            bootstrap=("sh", "-c", f"mkdir -p {kw['rootfs']}; echo 'E: no mirror'; exit 3"),
            configure=("true",),
            initramfs=("true",),
        )

    monkeypatch.setattr(imageplan, "plan_build", broken)
    with pytest.raises(ImageError) as err:
        imagebuild.build_image(force=True)
    assert "exited with status 3" in err.value.message
    assert "E: no mirror" in err.value.message
    kept = paths.images_dir() / ".failed-debian-12.log"
    assert str(kept) in err.value.hint and "E: no mirror" in kept.read_text()
    assert store.read_image() == before  # the old image is untouched
    assert not any(p.name.startswith(".build") for p in paths.images_dir().iterdir())


def test_interrupted_build_cleans_up(
    fake_build: list[tuple[str, ...]], monkeypatch: pytest.MonkeyPatch
) -> None:
    def interrupted(self: workspace.Runner, *a: object, **k: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(workspace.Runner, "__call__", interrupted)
    with pytest.raises(KeyboardInterrupt):
        imagebuild.build_image()
    assert not paths.image_dir().exists()
    assert not any(p.name.startswith(".build") for p in paths.images_dir().iterdir())


def test_stale_build_of_a_dead_process_is_removed(fake_build: list[tuple[str, ...]]) -> None:
    stale = paths.images_dir() / ".build-debian-12-999999"
    (stale / "rootfs").mkdir(parents=True)
    (stale / "pid").write_text("999999999")
    imagebuild.build_image()
    assert not stale.exists()


# --------------------------------------------------------------------------- CLI


def _cli(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="vibebox")
    image_cmd.register(parser.add_subparsers(dest="command"))
    return parser.parse_args(argv)


def test_cli_parses_build_options() -> None:
    args = _cli(
        "image", "build", "--name", "dev", "--package", "htop", "--package", "jq", "--force"
    )
    assert (args.name, args.package, args.force) == ("dev", ["htop", "jq"], True)
    assert args.handler is image_cmd.run_build
    with pytest.raises(SystemExit):
        _cli("image", "build", "--force", "--if-missing")


def test_cli_list_and_rm(capsys: pytest.CaptureFixture[str]) -> None:
    _make_image()
    args = _cli("image", "list", "--json")
    assert args.handler(args) == 0
    listed = json.loads(capsys.readouterr().out)
    assert listed[0]["name"] == "debian-12" and listed[0]["extra_packages"] == ["htop"]
    args = _cli("image", "list")
    args.handler(args)
    out = capsys.readouterr().out
    assert "debian-12" in out and "6.1.0-50-cloud-amd64 (+htop)" in out
    args = _cli("image", "rm", "debian-12")
    assert args.handler(args) == 0
    assert not paths.image_dir().exists()


def test_cli_if_missing_skips_a_verified_image(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _make_image()
    monkeypatch.setattr(imagebuild, "build_image", lambda *a, **k: pytest.fail("rebuilt"))
    args = _cli("image", "build", "--if-missing")
    assert args.handler(args) == 0
    assert "present and verified" in capsys.readouterr().out


def test_cli_if_missing_rebuilds_a_damaged_image(monkeypatch: pytest.MonkeyPatch) -> None:
    directory = _make_image()
    (directory / "vmlinuz").write_bytes(b"tampered!!!!!")
    calls: list[dict[str, object]] = []

    def build(name: str, **k: object) -> record.ImageInfo:
        calls.append(k)
        return store.read_image(name)

    monkeypatch.setattr(imagebuild, "build_image", build)
    args = _cli("image", "build", "--if-missing")
    assert args.handler(args) == 0
    assert calls and calls[0]["force"] is True


def test_cli_if_missing_rebuilds_an_image_built_from_other_guest_files(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _make_image(guest_digest="")  # made before digests were recorded
    calls: list[dict[str, object]] = []

    def build(name: str, **k: object) -> record.ImageInfo:
        calls.append(k)
        return store.read_image(name)

    monkeypatch.setattr(imagebuild, "build_image", build)
    args = _cli("image", "build", "--if-missing")
    assert args.handler(args) == 0
    assert calls and calls[0]["force"] is True
    assert "other guest files; rebuilding it" in capsys.readouterr().err


def test_guest_digest_follows_the_guest_files(tmp_path: Path) -> None:
    guest = tmp_path / "guest"
    shutil.copytree(imageplan.guest_dir(), guest)
    assert imageplan.guest_digest(guest) == imageplan.guest_digest()
    (guest / "shell.bash").write_text((guest / "shell.bash").read_text() + "\n# changed\n")
    assert imageplan.guest_digest(guest) != imageplan.guest_digest()


def test_an_outdated_image_still_starts_but_says_how_to_update_it(
    capsys: pytest.CaptureFixture[str],
) -> None:
    _make_image(guest_digest="0" * 64)
    events: list[ProgressEvent] = []
    info = imagebuild.ensure_image(progress=events.append)
    assert store.outdated(info)
    notes = [e.detail for e in events if e.step == "outdated image"]
    assert notes and "vibebox image build --force" in notes[0] and ":new" in notes[0]
    args = _cli("image", "list")
    assert args.handler(args) == 0
    assert "outdated: vibebox image build --force" in capsys.readouterr().out


def test_sigterm_during_a_build_cleans_up_and_says_so(
    fake_build: list[tuple[str, ...]], monkeypatch: pytest.MonkeyPatch
) -> None:
    import signal

    def terminated(self: workspace.Runner, *a: object, **k: object) -> None:
        os.kill(os.getpid(), signal.SIGTERM)

    monkeypatch.setattr(workspace.Runner, "__call__", terminated)
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(ImageError) as err:
        imagebuild.build_image()
    assert "was terminated; nothing was left behind" in err.value.message
    assert err.value.hint == "vibebox image build"
    assert signal.getsignal(signal.SIGTERM) == before
    assert not any(p.name.startswith(".build") for p in paths.images_dir().iterdir())


def test_ensure_image_reuses_an_image_built_while_waiting_for_the_lock(
    fake_build: list[tuple[str, ...]], monkeypatch: pytest.MonkeyPatch
) -> None:
    real_lock = store.build_lock

    @contextlib.contextmanager
    def lock_then_other_build(name: str, *, wait: bool) -> Iterator[None]:
        with real_lock(name, wait=wait):
            _make_image(name)  # "the other vibebox" finished first
            yield

    monkeypatch.setattr(store, "build_lock", lock_then_other_build)
    info = imagebuild.build_image(reuse_existing=True)
    assert info.extra_packages == ("htop",)  # the other build's image, not a new one
    assert fake_build == []  # nothing was bootstrapped
