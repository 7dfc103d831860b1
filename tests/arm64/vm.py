"""Boot the cached arm64 image (tests/arm64/image.py) under qemu-system-aarch64 and reach it
over SSH, as a Raspberry Pi on the LAN is reached.

QEMU emulates the ``virt`` machine with a Cortex-A72 (a Raspberry Pi 4's core) in software
(TCG: an arm64 guest on this machine has no KVM), two CPUs and 2 GiB, under ``nice`` because
it shares the machine. The disk is a qcow2 overlay of the cached image in the run's own
directory: every boot starts from the image as built. Networking is QEMU's user mode (slirp):
the guest reaches the Internet's package registries through it, the host's loopback as
10.0.2.2, and the host forwards two loopback ports to the guest's SSH and web ports. The
guest's SSH host key is read from the image (debugfs, read-only) for a strict known_hosts.
"""

from __future__ import annotations

import contextlib
import shlex
import shutil
import socket
import subprocess
import time
from pathlib import Path
from types import TracebackType

from tests.arm64.image import ADMIN_USER, Image

QEMU = "qemu-system-aarch64"
HOST_PACKAGES = ("qemu-system-arm", "qemu-utils", "e2fsprogs", "openssh-client")
#: the host's loopback as the guest sees it through slirp
HOST_FROM_GUEST = "10.0.2.2"
GUEST_WEB_PORT = 8080


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ArmVM:
    """One boot of the image; a context manager (exit powers the guest off, or kills QEMU)."""

    def __init__(self, image: Image, workdir: Path, *, cpus: int = 2, memory_mb: int = 2048,
                 guest_web_port: int = GUEST_WEB_PORT) -> None:
        self.image = image
        self.workdir = workdir
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.cpus = cpus
        self.memory_mb = memory_mb
        self.guest_web_port = guest_web_port
        self.ssh_port = free_port()
        self.web_port = free_port()
        self.overlay = workdir / "overlay.qcow2"
        self.console = workdir / "console.log"
        self.known_hosts = workdir / "known_hosts"
        self.proc: subprocess.Popen[bytes] | None = None
        self.boot_seconds = 0.0

    # --- SSH ------------------------------------------------------------------------------
    @property
    def ssh_options(self) -> list[str]:
        """ssh/scp -o options: the generated key only, the image's host key only."""
        return ["-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes",
                "-o", f"UserKnownHostsFile={self.known_hosts}",
                "-o", "StrictHostKeyChecking=yes", "-o", "ConnectTimeout=20",
                "-o", "ServerAliveInterval=15", "-o", "ServerAliveCountMax=8"]

    @property
    def login(self) -> str:
        return f"{ADMIN_USER}@127.0.0.1"

    def ssh(self, command: str | list[str], *, timeout: float = 300, check: bool = False,
            stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        """Run a shell command (a string) or an argv (quoted for the guest's shell) as the
        admin on the guest."""
        remote = command if isinstance(command, str) else shlex.join(command)
        done = subprocess.run(
            ["ssh", *self.ssh_options, "-i", str(self.image.key), "-p", str(self.ssh_port),
             self.login, "--", remote], capture_output=True, text=True, timeout=timeout,
            input=stdin, stdin=None if stdin is not None else subprocess.DEVNULL)
        if check and done.returncode != 0:
            raise AssertionError(f"on the guest: {remote!r} exited {done.returncode}:\n"
                                 f"{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
        return done

    def trust_local_cas(self) -> None:
        """Trust this machine's locally added CAs on the guest too (a TLS-intercepting
        proxy's, which the guest's traffic to PyPI also meets through slirp), as
        update-ca-certificates would on a Pi behind such a proxy."""
        local = sorted(Path("/usr/local/share/ca-certificates").glob("*.crt"))
        for cert in local:
            self.ssh(["sudo", "tee", f"/usr/local/share/ca-certificates/{cert.name}"],
                     stdin=cert.read_text(), check=True)
        if local:
            self.ssh(["sudo", "update-ca-certificates"], check=True, timeout=600)

    def _write_known_hosts(self) -> None:
        """known_hosts for the forward from the host key baked into the image."""
        done = subprocess.run(["debugfs", "-R", "cat /etc/ssh/ssh_host_ed25519_key.pub",
                               str(self.image.disk)], capture_output=True, text=True, check=True)
        key = " ".join(done.stdout.split()[:2])
        if not key.startswith("ssh-ed25519 "):
            raise RuntimeError(f"no SSH host key in {self.image.disk}: {done.stderr[-500:]}")
        self.known_hosts.write_text(f"[127.0.0.1]:{self.ssh_port} {key}\n")

    # --- lifecycle ------------------------------------------------------------------------
    def command(self) -> list[str]:
        """The QEMU command line of this boot."""
        forwards = (f"hostfwd=tcp:127.0.0.1:{self.ssh_port}-:22,"
                    f"hostfwd=tcp:127.0.0.1:{self.web_port}-:{self.guest_web_port}")
        return ["nice", "-n", "10", QEMU, "-M", "virt", "-cpu", "cortex-a72",
                "-smp", str(self.cpus), "-m", str(self.memory_mb),
                "-display", "none", "-monitor", "none", "-serial", f"file:{self.console}",
                "-kernel", str(self.image.kernel), "-initrd", str(self.image.initrd),
                "-append", "root=/dev/vda rw console=ttyAMA0 net.ifnames=0 quiet",
                "-drive", f"file={self.overlay},if=none,id=disk0,format=qcow2,discard=unmap",
                "-device", "virtio-blk-pci,drive=disk0",
                # no option ROM: the kernel is loaded directly, nothing boots from the network
                "-netdev", f"user,id=net0,{forwards}",
                "-device", "virtio-net-pci,netdev=net0,romfile=",
                "-device", "virtio-rng-pci"]

    def start(self, timeout: float = 900) -> float:
        """Boot and wait until SSH answers; returns (and keeps) the boot time in seconds."""
        missing = [t for t in (QEMU, "qemu-img", "debugfs", "ssh") if shutil.which(t) is None]
        if missing:
            raise RuntimeError(f"missing {', '.join(missing)}: apt-get install "
                               f"{' '.join(HOST_PACKAGES)}")
        self.overlay.unlink(missing_ok=True)
        subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-b", str(self.image.disk),
                        "-F", "raw", str(self.overlay)], check=True, capture_output=True)
        self._write_known_hosts()
        started = time.monotonic()
        with open(self.workdir / "qemu.err", "wb") as err:
            self.proc = subprocess.Popen(self.command(), stdin=subprocess.DEVNULL,
                                         stdout=subprocess.DEVNULL, stderr=err)
        deadline = started + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"QEMU exited ({self.proc.returncode}) while booting: "
                                   f"{(self.workdir / 'qemu.err').read_text()[-1000:]}\n"
                                   f"console:\n{self.console_tail()}")
            try:
                if self.ssh("true", timeout=60).returncode == 0:
                    break
            except subprocess.TimeoutExpired:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"no SSH on the guest after {timeout:.0f} s; console:\n"
                                   f"{self.console_tail()}")
            time.sleep(2)
        self.boot_seconds = time.monotonic() - started
        return self.boot_seconds

    def console_tail(self, chars: int = 3000) -> str:
        return self.console.read_text(errors="replace")[-chars:] if self.console.exists() else ""

    def stop(self, timeout: float = 180) -> None:
        """Power the guest off cleanly; kill QEMU if it does not stop in time."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.ssh("sudo systemctl poweroff", timeout=30)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(30)
        self.proc = None

    def __enter__(self) -> ArmVM:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
