"""A bootable 64-bit Debian 12 (arm64) disk image, built from Debian's own packages only.

``mmdebstrap --arch=arm64`` lays out the root from the Debian mirror this machine's apt uses
(package scripts run through qemu-user-static's binfmt handler), with Debian's
``linux-image-arm64`` kernel and the initrd its package generates. The root gets what a
freshly imaged Raspberry Pi OS host has: systemd as PID 1, OpenSSH, sudo, python3, a
hostname, DHCP on its NIC through systemd-networkd, and an admin account whose SSH key the
build generates. ``mke2fs -d`` turns the directory into an ext4 image (no loop mount).

The image, kernel, initrd and key live in ``<cache>/arm64/<hash>/``, the hash covering every
build input (suite, package list, this recipe), so later runs only boot it; each boot writes
into a qcow2 overlay of its own (see tests/arm64/vm.py) and leaves the cached image as built.

``python -m tests.arm64.image`` builds it (or prints where the cached one is).
"""

from __future__ import annotations

import hashlib
import inspect
import json
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from tests.deploy.debian_root import SUITE, _locked, apt_mirror, cache_dir, ensure_host_packages

ARCH = "arm64"
HOSTNAME = "pafw-arm64"
ADMIN_USER = "admin"
IMAGE_SIZE = "8G"
PACKAGES = ("systemd-sysv", "udev", "dbus", "kmod", "iproute2", "openssh-server", "sudo",
            "python3", "ca-certificates", "linux-image-arm64", "initramfs-tools")
#: what the build runs on this machine
HOST_PACKAGES = ("mmdebstrap", "arch-test", "qemu-user-static", "binfmt-support", "e2fsprogs",
                 "openssh-client")
RECIPE_VERSION = 1  # bump with a change to the recipe that the hash cannot see


@dataclass(frozen=True)
class Image:
    """The files of one built image."""

    directory: Path

    @property
    def disk(self) -> Path:
        return self.directory / "rootfs.ext4"

    @property
    def kernel(self) -> Path:
        return self.directory / "vmlinuz"

    @property
    def initrd(self) -> Path:
        return self.directory / "initrd.img"

    @property
    def key(self) -> Path:
        """The admin's private SSH key (its public half is in the image)."""
        return self.directory / "id_ed25519"

    @property
    def build_seconds(self) -> float:
        """How long the build took (recorded in ``build.json``)."""
        return float(json.loads((self.directory / "build.json").read_text())["seconds"])

    def ready(self) -> bool:
        return all(p.is_file() for p in (self.disk, self.kernel, self.initrd, self.key,
                                         self.directory / "build.json"))


def _customize(root: Path, public_key: str) -> None:
    """Turn the bootstrapped directory into a host that boots under QEMU's ``virt`` machine
    and takes SSH logins with the generated key."""
    (root / "etc/hostname").write_text(f"{HOSTNAME}\n")
    (root / "etc/hosts").write_text(f"127.0.0.1\tlocalhost\n127.0.1.1\t{HOSTNAME}\n"
                                    "::1\tlocalhost ip6-localhost ip6-loopback\n")
    (root / "etc/fstab").write_text("/dev/vda\t/\text4\tdefaults,noatime\t0\t1\n")
    network = root / "etc/systemd/network/10-wired.network"
    network.parent.mkdir(parents=True, exist_ok=True)
    network.write_text("[Match]\nName=eth* en*\n\n[Network]\nDHCP=ipv4\n")
    wants = root / "etc/systemd/system/multi-user.target.wants"
    wants.mkdir(parents=True, exist_ok=True)
    link = wants / "systemd-networkd.service"
    if not link.is_symlink():
        link.symlink_to("/lib/systemd/system/systemd-networkd.service")
    # systemd-resolved is not installed: slirp's DNS server, as its DHCP lease also says
    (root / "etc/resolv.conf").unlink(missing_ok=True)
    (root / "etc/resolv.conf").write_text("nameserver 10.0.2.3\n")
    # the serial console logs in nobody: SSH only
    subprocess.run(["chroot", str(root), "useradd", "--create-home", "--shell", "/bin/bash",
                    "--groups", "sudo", ADMIN_USER], check=True, capture_output=True)
    sudoers = root / "etc/sudoers.d/90-admin"
    sudoers.write_text(f"{ADMIN_USER} ALL=(ALL) NOPASSWD:ALL\n")
    sudoers.chmod(0o440)
    ssh_dir = root / "home" / ADMIN_USER / ".ssh"
    ssh_dir.mkdir(mode=0o700)
    (ssh_dir / "authorized_keys").write_text(public_key)
    (ssh_dir / "authorized_keys").chmod(0o600)
    subprocess.run(["chroot", str(root), "chown", "-R", f"{ADMIN_USER}:{ADMIN_USER}",
                    f"/home/{ADMIN_USER}/.ssh"], check=True, capture_output=True)
    sshd = root / "etc/ssh/sshd_config.d/pafw-test.conf"
    sshd.write_text("PasswordAuthentication no\nUseDNS no\n")
    (root / "usr/sbin/policy-rc.d").unlink(missing_ok=True)
    subprocess.run(["chroot", str(root), "apt-get", "clean"], check=True, capture_output=True)


def recipe_hash(mirror: str) -> str:
    """Hash of every build input: a change to any of them builds a new image."""
    recipe = {"suite": SUITE, "arch": ARCH, "mirror": mirror, "packages": PACKAGES,
              "size": IMAGE_SIZE, "hostname": HOSTNAME, "user": ADMIN_USER,
              "customize": inspect.getsource(_customize), "version": RECIPE_VERSION}
    return hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:16]


def enable_binfmt() -> None:
    """Register qemu-user-static's aarch64 handler (a container may start with binfmt_misc
    unmounted); package scripts of the arm64 root run through it."""
    binfmt = Path("/proc/sys/fs/binfmt_misc")
    if not (binfmt / "register").exists():
        subprocess.run(["mount", "-t", "binfmt_misc", "binfmt_misc", str(binfmt)], check=True,
                       capture_output=True)
    if not (binfmt / "qemu-aarch64").exists():
        subprocess.run(["update-binfmts", "--enable", "qemu-aarch64"], check=True,
                       capture_output=True)


def _run(argv: list[str], log: Path) -> None:
    """Run a build step, its output appended to ``log``; a failure names the step and ends
    with the log's tail."""
    with open(log, "a") as out:
        out.write(f"$ {' '.join(argv)}\n")
        out.flush()
        result = subprocess.run(argv, stdout=out, stderr=subprocess.STDOUT)
    if result.returncode != 0:
        tail = log.read_text(errors="replace")[-3000:]
        raise RuntimeError(f"building the arm64 image failed at {argv[0]} "
                           f"(exit {result.returncode}); log {log}:\n{tail}")


def build_image(cache: Path | None = None, mirror: str | None = None) -> Image:
    """The cached image for the current recipe; built first when missing (10 to 30 minutes:
    every package script runs under emulation)."""
    mirror = mirror or apt_mirror()
    base = (cache or cache_dir()) / "arm64"
    base.mkdir(parents=True, exist_ok=True)
    image = Image(base / recipe_hash(mirror))
    with _locked(base / ".build.lock"):
        if image.ready():
            return image
        ensure_host_packages(*HOST_PACKAGES)
        enable_binfmt()
        started = time.monotonic()
        work = Path(tempfile.mkdtemp(prefix="build-", dir=base))
        log = work / "build.log"
        root = work / "root"
        try:
            _run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"pafw-test@{HOSTNAME}",
                  "-f", str(work / "id_ed25519")], log)
            _run(["mmdebstrap", f"--arch={ARCH}", "--variant=minbase",
                  f"--include={','.join(PACKAGES)}",
                  SUITE, str(root), mirror], log)
            _customize(root, (work / "id_ed25519.pub").read_text())
            kernels = sorted((root / "boot").glob("vmlinuz-*"))
            initrds = sorted((root / "boot").glob("initrd.img-*"))
            if len(kernels) != 1 or len(initrds) != 1:
                raise RuntimeError(f"expected one kernel and one initrd in {root}/boot, found "
                                   f"{[p.name for p in kernels + initrds]}")
            shutil.copyfile(kernels[0], work / "vmlinuz")
            shutil.copyfile(initrds[0], work / "initrd.img")
            _run(["mke2fs", "-q", "-t", "ext4", "-L", "pafw-root", "-d", str(root),
                  str(work / "rootfs.ext4"), IMAGE_SIZE], log)
            shutil.rmtree(root)
            (work / "build.json").write_text(json.dumps(
                {"seconds": round(time.monotonic() - started, 1), "mirror": mirror,
                 "kernel": kernels[0].name, "suite": SUITE, "packages": PACKAGES}))
            if image.directory.exists():
                shutil.rmtree(image.directory)
            work.rename(image.directory)
        finally:
            if work.exists():
                shutil.rmtree(work / "root", ignore_errors=True)
    return image


def main() -> int:
    """Build the image (or find it in the cache) and print its directory."""
    image = build_image()
    print(f"{image.directory} (built in {image.build_seconds:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
