"""A throwaway Debian 12 root to apply the Ansible role to, for real, through a chroot.

The base system comes from ``debootstrap`` (minbase plus python3 for Ansible and systemd,
which every Raspberry Pi OS has) using the Debian mirror this machine's apt uses. It is
built once and kept as a tarball in the cache directory; each test unpacks a fresh copy.
Inside a copy, ``/proc`` is a fresh procfs and apt's package archive and pip's cache are
bind mounts of cache directories, so reruns download nothing twice. Teardown unmounts
everything and deletes the copy only once ``/proc/self/mountinfo`` shows nothing is still
mounted below it (a recursive delete through a live bind mount would empty the cache).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

SUITE = "bookworm"
BASE_PACKAGES = ("python3", "systemd", "ca-certificates")
FALLBACK_MIRROR = "http://deb.debian.org/debian"
TARBALL_VERSION = 1  # bump when the base recipe changes: older tarballs are rebuilt


def cache_dir() -> Path:
    """Where the base tarball and the download caches live (``PAFW_TEST_CACHE`` overrides)."""
    configured = os.environ.get("PAFW_TEST_CACHE")
    if configured:
        path = Path(configured)
    elif os.geteuid() == 0:
        path = Path("/var/cache/pafw-test")
    else:
        path = Path.home() / ".cache" / "pafw-test"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _sources_entries(apt_dir: Path) -> Iterator[tuple[str, list[str], list[str]]]:
    """(URI, suites, components) of every binary ("deb") source apt is configured with."""
    one_line = re.compile(r"^\s*deb\s+(?:\[[^\]]*\]\s+)?(\S+)\s+(\S+)\s*(.*)$")
    files = [apt_dir / "sources.list", *sorted((apt_dir / "sources.list.d").glob("*.list"))]
    for path in files:
        if path.is_file():
            for line in path.read_text(errors="replace").splitlines():
                match = one_line.match(line)
                if match:
                    yield match.group(1), [match.group(2)], match.group(3).split()
    for path in sorted((apt_dir / "sources.list.d").glob("*.sources")):
        for stanza in re.split(r"\n\s*\n", path.read_text(errors="replace")):
            fields: dict[str, str] = {}
            for line in stanza.splitlines():
                if line.startswith("#") or ":" not in line:
                    continue
                key, _, value = line.partition(":")
                fields[key.strip().lower()] = value.strip()
            if "deb" not in fields.get("types", "").split():
                continue
            if fields.get("enabled", "yes").lower() == "no":
                continue
            for uri in fields.get("uris", "").split():
                yield uri, fields.get("suites", "").split(), fields.get("components", "").split()


def apt_mirror(apt_dir: Path = Path("/etc/apt")) -> str:
    """The Debian mirror apt uses here for ``SUITE`` main (``PAFW_TEST_DEBIAN_MIRROR``
    overrides; Debian's own redirector if apt names none)."""
    configured = os.environ.get("PAFW_TEST_DEBIAN_MIRROR")
    if configured:
        return configured.rstrip("/")
    for uri, suites, components in _sources_entries(apt_dir):
        if SUITE in suites and "main" in components and "security" not in uri:
            return uri.rstrip("/")
    return FALLBACK_MIRROR


def ensure_host_packages(*packages: str) -> None:
    """apt-get install the Debian packages of this machine that are missing."""
    missing = [p for p in packages if subprocess.run(
        ["dpkg-query", "--show", "--showformat=${Status}", p], capture_output=True,
        text=True).stdout != "install ok installed"]
    if not missing:
        return
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *missing]
    if subprocess.run(install, env=env, capture_output=True).returncode != 0:
        subprocess.run(["apt-get", "update", "-qq"], env=env, check=True, capture_output=True)
        subprocess.run(install, env=env, check=True, capture_output=True)


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """An exclusive lock on ``path`` (concurrent test runs build the tarball once)."""
    with open(path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def base_tarball(cache: Path | None = None, mirror: str | None = None) -> Path:
    """The cached tarball of a fresh Debian root; built with debootstrap when missing."""
    cache = cache or cache_dir()
    tarball = cache / f"debian-{SUITE}-{os.uname().machine}-v{TARBALL_VERSION}.tar"
    with _locked(cache / ".base.lock"):
        if tarball.is_file():
            return tarball
        ensure_host_packages("debootstrap")
        work = Path(tempfile.mkdtemp(prefix="debootstrap-", dir=cache))
        root = work / "root"
        try:
            subprocess.run(
                ["debootstrap", "--variant=minbase", f"--include={','.join(BASE_PACKAGES)}",
                 SUITE, str(root), mirror or apt_mirror()],
                check=True, capture_output=True, text=True)
            subprocess.run(["chroot", str(root), "apt-get", "clean"], check=True,
                           capture_output=True)
            # a chroot must not start services from package scripts
            policy = root / "usr/sbin/policy-rc.d"
            policy.write_text("#!/bin/sh\nexit 101\n")
            policy.chmod(0o755)
            partial = tarball.with_suffix(".partial")
            subprocess.run(["tar", "--numeric-owner", "-C", str(root), "-cf", str(partial), "."],
                           check=True, capture_output=True)
            partial.rename(tarball)
        except subprocess.CalledProcessError as exc:
            raise RuntimeError(f"building the Debian root failed: {exc.cmd}: "
                               f"{(exc.stderr or '')[-2000:]}") from None
        finally:
            if not mounts_under(work):
                shutil.rmtree(work, ignore_errors=True)
    return tarball


def _unescape_mount_path(field: str) -> str:
    """mountinfo escapes space, tab, newline and backslash as octal (\\040...)."""
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)


def mounts_under(path: Path) -> list[str]:
    """Mount points at or below ``path``, deepest first."""
    prefix = str(path.resolve())
    found = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            point = _unescape_mount_path(line.split()[4])
            if point == prefix or point.startswith(prefix + "/"):
                found.append(point)
    return sorted(found, key=len, reverse=True)


class DebianRoot:
    """A fresh copy of the base root, with ``/proc`` and the caches mounted; a context
    manager (teardown unmounts and deletes it, see the module docstring)."""

    def __init__(self, cache: Path | None = None, *, mount_proc: bool = True) -> None:
        self.mount_proc = mount_proc  # False for a root that systemd-nspawn boots
        self.cache = cache or cache_dir()
        self.tarball = base_tarball(self.cache)
        self.workdir = Path(tempfile.mkdtemp(prefix="root-", dir=self.cache))
        self.path = self.workdir / "root"
        self.path.mkdir()

    def __enter__(self) -> DebianRoot:
        try:
            subprocess.run(["tar", "--numeric-owner", "-C", str(self.path), "-xf",
                            str(self.tarball)], check=True, capture_output=True)
            shutil.copyfile("/etc/resolv.conf", self.path / "etc/resolv.conf")
            self._trust_local_cas()  # before the mounts: it runs in the root
            if self.mount_proc:
                self._mount(["-t", "proc", "proc"], self.path / "proc")
            for host_dir, inside in ((self.cache / "apt-archives", "var/cache/apt/archives"),
                                     (self.cache / "pip", "root/.cache/pip")):
                host_dir.mkdir(parents=True, exist_ok=True)
                (self.path / inside).mkdir(parents=True, exist_ok=True)
                self._mount(["--bind", str(host_dir)], self.path / inside)
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _trust_local_cas(self) -> None:
        """Trust this machine's locally added CAs inside too (a TLS-intercepting proxy's, for
        instance), as update-ca-certificates would on a Pi that needs them."""
        local = sorted(Path("/usr/local/share/ca-certificates").glob("*.crt"))
        if local:
            inside = self.path / "usr/local/share/ca-certificates"
            inside.mkdir(parents=True, exist_ok=True)
            for cert in local:
                shutil.copyfile(cert, inside / cert.name)
            self.run(["update-ca-certificates"])

    @staticmethod
    def _mount(args: Sequence[str], target: Path) -> None:
        subprocess.run(["mount", *args, str(target)], check=True, capture_output=True)

    def close(self) -> None:
        """Unmount everything below the root (lazily if busy), then delete the copy."""
        for _attempt in range(10):
            points = mounts_under(self.path)
            if not points:
                break
            for point in points:
                if subprocess.run(["umount", point], capture_output=True).returncode != 0:
                    subprocess.run(["umount", "--lazy", point], capture_output=True)
            time.sleep(0.1)
        left = mounts_under(self.path)
        if left:
            raise RuntimeError(f"still mounted, {self.workdir} kept: {left}")
        shutil.rmtree(self.workdir, ignore_errors=True)

    def run(self, argv: Sequence[str], *, user: str | None = None, check: bool = True,
            timeout: float = 600) -> subprocess.CompletedProcess[str]:
        """Run ``argv`` inside the root (as ``user`` through runuser, else as root)."""
        inner = list(argv) if user is None else ["runuser", "-u", user, "--", *argv]
        env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8", "HOME": "/root"}
        return subprocess.run(["chroot", str(self.path), *inner], capture_output=True,
                              text=True, check=check, timeout=timeout, env=env)

    def stat(self, path: str) -> os.stat_result:
        """lstat of ``path`` inside the root."""
        return os.lstat(self.path / path.lstrip("/"))


class BootedRoot:
    """A DebianRoot booted by ``systemd-nspawn --boot`` (systemd as its PID 1), for the role's
    "systemd is running" branch; a context manager. ``chroot_exe`` is a wrapper for
    community.general.chroot's ``chroot_exe`` that runs commands inside the container (with
    nsenter) instead of chrooting into its directory."""

    BOOT_TIMEOUT_S = 90.0

    def __init__(self, root: DebianRoot) -> None:
        self.root = root
        self.chroot_exe = root.workdir / "nsenter-chroot"
        self.pid: int | None = None  # the container's systemd, as seen from here
        self._nspawn: subprocess.Popen[bytes] | None = None
        self.log = root.workdir / "nspawn.log"

    def __enter__(self) -> BootedRoot:
        ensure_host_packages("systemd-container")
        with open(self.log, "wb") as log:
            self._nspawn = subprocess.Popen(
                ["systemd-nspawn", "--quiet", "--directory", str(self.root.path), "--boot",
                 "--register=no", "--keep-unit", "--console=pipe"],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
        try:
            self._wait_for_boot()
        except BaseException:
            self.close()
            raise
        self.chroot_exe.write_text(
            "#!/bin/sh\n# community.general.chroot calls: <exe> <root dir> <command...>\nshift\n"
            f"exec nsenter --target {self.pid} --mount --uts --ipc --net --pid --cgroup "
            "--root --wd -- \"$@\"\n")
        self.chroot_exe.chmod(0o755)
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _descendants(self, pid: int) -> Iterator[int]:
        try:
            children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        except OSError:
            return
        for child in map(int, children):
            yield child
            yield from self._descendants(child)

    def _wait_for_boot(self) -> None:
        assert self._nspawn is not None
        deadline = time.monotonic() + self.BOOT_TIMEOUT_S
        state = "no systemd yet"
        while time.monotonic() < deadline:
            if self._nspawn.poll() is not None:
                raise RuntimeError(f"systemd-nspawn exited ({self._nspawn.returncode}): "
                                   f"{self.log.read_text(errors='replace')[-2000:]}")
            if self.pid is None:
                for pid in self._descendants(self._nspawn.pid):
                    with contextlib.suppress(OSError):
                        if Path(f"/proc/{pid}/comm").read_text().strip() == "systemd":
                            self.pid = pid
                            break
            if self.pid is not None:
                state = self.run(["systemctl", "is-system-running"], check=False).stdout.strip()
                if state in ("running", "degraded"):
                    return
            time.sleep(0.5)
        raise RuntimeError(f"the container did not boot in {self.BOOT_TIMEOUT_S:.0f} s "
                           f"(state: {state})")

    def run(self, argv: Sequence[str], *, check: bool = True,
            timeout: float = 120) -> subprocess.CompletedProcess[str]:
        """Run ``argv`` inside the booted container, as root."""
        assert self.pid is not None
        return subprocess.run(
            ["nsenter", "--target", str(self.pid), "--mount", "--uts", "--ipc", "--net",
             "--pid", "--cgroup", "--root", "--wd", "--", *argv], capture_output=True,
            text=True, check=check, timeout=timeout,
            env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"})

    def close(self) -> None:
        """Halt the container (SIGTERM to systemd-nspawn), kill it if it hangs."""
        if self._nspawn is not None and self._nspawn.poll() is None:
            self._nspawn.terminate()
            try:
                self._nspawn.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self._nspawn.kill()
                self._nspawn.wait(timeout=30)
        self._nspawn = None
