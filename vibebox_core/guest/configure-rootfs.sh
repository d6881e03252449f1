#!/bin/bash
# Turn a freshly bootstrapped Debian root file system into a vibebox guest.
#
# Run by vibebox_core.images.build (its command line comes from images/plan.py) at build time, on the
# host, as root (debootstrap) or as root of a user namespace (mmdebstrap --mode=unshare
# customize hook):
#     bash configure-rootfs.sh ROOTFS GUEST_DIR MIRROR SUITE
# GUEST_DIR is the directory holding this script and the files it installs. Nothing here runs
# inside the guest; per-boot work (keys, user ids, mounts) is vibebox-setup's job.
set -euo pipefail

ROOT=$1
GUEST=$2
MIRROR=$3
SUITE=$4
USER_NAME=vibecoder

[ -d "$ROOT/etc" ] || { echo "configure-rootfs: $ROOT is not a root file system" >&2; exit 1; }

install_file() {  # install_file MODE SRC DEST (DEST relative to the root)
    install -D -m "$1" "$GUEST/$2" "$ROOT/$3"
}

# vibebox's boot-time setup, shell integration, network and ssh configuration.
install_file 0755 vibebox-setup                 usr/lib/vibebox/vibebox-setup
install_file 0644 shell.bash                    usr/lib/vibebox/shell.bash
install_file 0644 vibebox-setup.service         etc/systemd/system/vibebox-setup.service
install_file 0644 vibebox-growfs.service        etc/systemd/system/vibebox-growfs.service
install_file 0644 ssh-after-setup.conf          etc/systemd/system/ssh.service.d/vibebox.conf
install_file 0644 sshd-vibebox.conf             etc/ssh/sshd_config.d/vibebox.conf
install_file 0644 10-vibebox.network            etc/systemd/network/10-vibebox.network
install_file 0644 journald-vibebox.conf         etc/systemd/journald.conf.d/vibebox.conf
install_file 0644 system-vibebox.conf           etc/systemd/system.conf.d/vibebox.conf
install_file 0644 profile-vibebox.sh            etc/profile.d/vibebox.sh
install_file 0644 initramfs-modules             etc/initramfs-tools/modules
install_file 0644 dpkg-nodoc.cfg                etc/dpkg/dpkg.cfg.d/vibebox-nodoc
install_file 0644 vibebox-release               etc/vibebox-release
install_file 0644 modprobe-vibebox.conf         etc/modprobe.d/vibebox.conf
mkdir -p "$ROOT/etc/ssh/vibebox_authorized_keys"
if ! grep -q vibebox "$ROOT/etc/bash.bashrc"; then
    printf '\n# vibebox shell integration (:new, :exit, :explain, :help)\n' >>"$ROOT/etc/bash.bashrc"
    printf '[ -r /usr/lib/vibebox/shell.bash ] && . /usr/lib/vibebox/shell.bash\n' >>"$ROOT/etc/bash.bashrc"
fi
# A small initrd that holds exactly what a virtio guest needs (the root disk is virtio_blk).
sed -i 's/^MODULES=.*/MODULES=list/' "$ROOT/etc/initramfs-tools/initramfs.conf"

# Identity. The machine id is replaced per VM by `systemd.machine_id=` on the kernel command
# line (the session id); the file keeps a value so systemd never runs its first-boot presets.
echo vibebox >"$ROOT/etc/hostname"
printf '127.0.0.1\tlocalhost\n127.0.1.1\tvibebox\n::1\tlocalhost ip6-localhost ip6-loopback\n' \
    >"$ROOT/etc/hosts"
printf '/dev/vda\t/\text4\trw,noatime,errors=remount-ro\t0\t0\n' >"$ROOT/etc/fstab"
echo 'LANG=C.UTF-8' >"$ROOT/etc/default/locale"
ln -sf /run/systemd/resolve/resolv.conf "$ROOT/etc/resolv.conf"
cat >"$ROOT/etc/apt/sources.list" <<SOURCES
deb $MIRROR $SUITE main
deb $MIRROR $SUITE-updates main
deb ${MIRROR%/debian}/debian-security $SUITE-security main
SOURCES

# The user; its uid/gid are set at boot from guest.json (the host user's).
if ! chroot "$ROOT" getent passwd "$USER_NAME" >/dev/null; then
    chroot "$ROOT" groupadd -g 1000 "$USER_NAME"
    chroot "$ROOT" useradd -m -u 1000 -g 1000 -s /bin/bash -c "vibebox user" "$USER_NAME"
fi
# '*': no password can match, but the account is not "locked", so key logins work.
chroot "$ROOT" usermod -p '*' "$USER_NAME"
printf '%s ALL=(ALL:ALL) NOPASSWD: ALL\n' "$USER_NAME" >"$ROOT/etc/sudoers.d/vibecoder"
printf 'Defaults env_keep += "http_proxy https_proxy no_proxy HTTP_PROXY HTTPS_PROXY NO_PROXY"\n' \
    >"$ROOT/etc/sudoers.d/vibebox-proxy"
chmod 0440 "$ROOT/etc/sudoers.d/vibecoder" "$ROOT/etc/sudoers.d/vibebox-proxy"
chroot "$ROOT" passwd -l root >/dev/null

# sshd uses only the ed25519 host key that the seed share brings at boot.
rm -f "$ROOT"/etc/ssh/ssh_host_*

# systemd-resolved only writes /run/systemd/resolve/resolv.conf (the DHCP-given server, which
# /etc/resolv.conf points at). Stock, it is ordered before sysinit.target and network.target,
# so sshd (after basic.target and network.target) waits for it: several seconds under TCG.
# This copy starts it alongside the rest instead.
systemctl --root="$ROOT" disable systemd-resolved.service >/dev/null 2>&1 || true
sed -e 's/^Before=sysinit.target network.target /Before=/' \
    -e 's/^WantedBy=sysinit.target/WantedBy=multi-user.target/' \
    "$ROOT/lib/systemd/system/systemd-resolved.service" \
    >"$ROOT/etc/systemd/system/systemd-resolved.service"
grep -q '^Before=nss-lookup.target' "$ROOT/etc/systemd/system/systemd-resolved.service" || {
    echo "configure-rootfs: systemd-resolved.service has an unexpected layout" >&2
    exit 1
}

# Units: ours on; what a short-lived development VM does not need off (fast boot under TCG).
systemctl --root="$ROOT" enable vibebox-setup.service vibebox-growfs.service \
    systemd-networkd.service systemd-resolved.service ssh.service >/dev/null 2>&1
systemctl --root="$ROOT" disable getty@tty1.service >/dev/null 2>&1 || true
for unit in apt-daily.timer apt-daily-upgrade.timer dpkg-db-backup.timer e2scrub_all.timer \
    e2scrub_reap.service fstrim.timer systemd-networkd-wait-online.service getty-static.service \
    systemd-timesyncd.service man-db.timer systemd-binfmt.service \
    proc-sys-fs-binfmt_misc.automount sys-kernel-debug.mount sys-kernel-tracing.mount \
    sys-kernel-config.mount sys-fs-fuse-connections.mount dev-hugepages.mount \
    systemd-pstore.service systemd-network-generator.service; do
    systemctl --root="$ROOT" mask "$unit" >/dev/null 2>&1 || true
done
systemctl --root="$ROOT" set-default multi-user.target >/dev/null 2>&1

# Keep the image small: documentation and caches (future installs skip docs via dpkg.cfg.d).
find "$ROOT/usr/share/doc" -mindepth 1 ! -name copyright ! -type d -delete 2>/dev/null || true
find "$ROOT/usr/share/doc" -mindepth 1 -type d -empty -delete 2>/dev/null || true
rm -rf "$ROOT"/usr/share/man/* "$ROOT"/usr/share/info/* "$ROOT"/usr/share/lintian/*
find "$ROOT/usr/share/locale" -mindepth 1 -maxdepth 1 ! -name 'locale.alias' -exec rm -rf {} + \
    2>/dev/null || true
# mmdebstrap still needs its apt state and /tmp after the hooks and cleans them itself.
if [ "${VIBEBOX_KEEP_APT_STATE:-}" != 1 ]; then
    rm -rf "$ROOT"/var/cache/apt/archives/*.deb "$ROOT"/var/cache/apt/*.bin \
        "$ROOT"/var/lib/apt/lists/* "$ROOT"/tmp/* "$ROOT"/var/tmp/*
fi
rm -rf "$ROOT"/var/log/*.log "$ROOT"/var/cache/debconf/*-old
echo "configure-rootfs: done"
