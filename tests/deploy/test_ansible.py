"""The Ansible role in deploy/ansible and its systemd unit, checked with the real tools.

Fast checks (seconds): ansible-lint's production profile, the playbook's syntax, the example
inventory, and the rendered unit under ``systemd-analyze verify`` and ``security``.

``deploy``-marked checks apply the role for real, through community.general's chroot
connection, to a Debian 12 root made by debootstrap (cached, see debian_root.py), with a
wheel built from this repository: a check-mode run on the fresh root, the real run, a second
run that must change nothing, then the result (accounts, files and modes, secrets, the unit
verified inside the root, the installed appliance running as its service user), a rebuilt
wheel and the Raspberry Pi boot options, and a bad configuration that must change nothing.
They need root and the Debian mirror and PyPI (once: later runs use the caches).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

from tests.deploy.debian_root import BootedRoot, DebianRoot, ensure_host_packages
from tests.deploy.playbooks import (
    EXAMPLE_INVENTORY,
    PRUNE_PLAYBOOK,
    RENDER_PLAYBOOK,
    REPO,
    PlaybookRun,
    exposure,
    run_playbook,
    run_tool,
    tool,
)
from tests.mqtt_broker import Broker

MAX_EXPOSURE = 4.0
MQTT_PASSWORD = 'p@ss "w$rd` \\ end'  # every character the env file must escape
WEB_TOKEN = "web-t0ken-$ecret-0123456789"
SMTP_PASSWORD = "s3cr3t $HOME"
BOOT_VARS = {"pafw_i2s_overlay": "googlevoicehat-soundcard", "pafw_cgroup_memory": True,
             "pafw_boot_config_lines": ["dtparam=i2s=on"]}
PI_CONFIG_TXT = ("# http://rpf.io/configtxt\ndtparam=audio=on\ncamera_auto_detect=1\n\n"
                 "[cm4]\notg_mode=1\n\n[all]\n")
PI_CMDLINE_TXT = ("console=serial0,115200 console=tty1 root=PARTUUID=4e639091-02 "
                  "rootfstype=ext4 fsck.repair=yes rootwait\n")


def systemd_analyze() -> str:
    """systemd-analyze on this machine (installed when missing and we are root)."""
    found = shutil.which("systemd-analyze")
    if found is None and os.geteuid() == 0:
        ensure_host_packages("systemd")
        found = shutil.which("systemd-analyze")
    if found is None:
        pytest.skip("systemd-analyze is not installed (apt-get install systemd)")
    return found


def render_unit(tmp_path: Path, **variables: object) -> Path:
    """The role's pafw.service rendered by Ansible with the role's defaults (+ variables)."""
    out = tmp_path / "pafw.service"
    done = run_tool([tool("ansible-playbook"), str(RENDER_PLAYBOOK), "-e",
                     json.dumps({"out": str(out), **variables})])
    assert done.returncode == 0, done.stdout + done.stderr
    return out


# --------------------------------------------------------------------------- fast checks
def test_ansible_lint_production_profile() -> None:
    done = run_tool([tool("ansible-lint"), "--profile", "production", "--offline", "--nocolor"],
                    timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Profile 'production' was required, and it passed" in done.stdout + done.stderr


def test_playbook_syntax_check() -> None:
    done = run_tool([tool("ansible-playbook"), "--syntax-check", "-i", str(EXAMPLE_INVENTORY),
                     "site.yml"])
    assert done.returncode == 0, done.stdout + done.stderr


def test_example_inventory_defines_a_fleet() -> None:
    done = run_tool([tool("ansible-inventory"), "-i", str(EXAMPLE_INVENTORY), "--list"])
    assert done.returncode == 0, done.stderr
    inventory = json.loads(done.stdout)
    hosts = inventory["analyzers"]["hosts"]
    assert len(hosts) >= 2
    host_vars = inventory["_meta"]["hostvars"][hosts[0]]
    assert host_vars["pafw_acquisition_source"] == "alsa"
    assert host_vars["pafw_upload_users"]


@pytest.mark.parametrize("capabilities", [True, False], ids=["worker-uid-switch", "no-caps"])
def test_unit_exposure_is_at_most_4(tmp_path: Path, capabilities: bool) -> None:
    systemd_analyze()
    unit = render_unit(tmp_path, pafw_worker_capabilities=capabilities)
    level, report = exposure(unit)
    assert level <= MAX_EXPOSURE, report
    text = unit.read_text()
    if capabilities:
        caps = "CAP_SETUID CAP_SETGID CAP_KILL CAP_NET_ADMIN CAP_CHOWN CAP_DAC_OVERRIDE CAP_FOWNER"
        assert f"AmbientCapabilities={caps}\n" in text
        assert f"CapabilityBoundingSet={caps}\n" in text
    else:
        assert "AmbientCapabilities" not in text
        assert "CapabilityBoundingSet=\n" in text


def test_unit_verifies_with_a_stub_executable(tmp_path: Path) -> None:
    """`systemd-analyze verify` checks that ExecStart= exists: point the venv at a stub (the
    deploy test verifies the real unit inside the deployed root)."""
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    stub = venv / "bin" / "pafw"
    stub.write_text("#!/bin/sh\nexit 0\n")
    stub.chmod(0o755)
    unit = render_unit(tmp_path, pafw_venv=str(venv), pafw_worker_capabilities=True)
    text = unit.read_text()
    for key in ("Type=notify", "NotifyAccess=main", "WatchdogSec=10", "Restart=on-failure",
                "RestartSec=2", "TimeoutStartSec=300", "User=pafw", "Group=pafw",
                "SupplementaryGroups=gpio audio", "EnvironmentFile=/etc/pafw/pafw.env",
                "UMask=0027", "MemoryMax=768M", "MemoryDenyWriteExecute=no",
                "SystemCallFilter=@system-service", "DevicePolicy=closed"):
        assert f"\n{key}\n" in text, key
    done = subprocess.run([systemd_analyze(), "verify", str(unit)], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0 and not done.stderr.strip(), done.stderr


@pytest.mark.parametrize(("switching", "kept"), [
    (False, {"r1", "r3", "r5"}),  # a rerun: current r3, previous r1 (the oldest) are kept
    (True, {"r2", "r3", "r5"}),   # an update from r2 to r3: r2 is the rollback target
], ids=["rerun", "update"])
def test_pruning_keeps_the_newest_and_never_current_or_previous(
        tmp_path: Path, switching: bool, kept: set[str]) -> None:
    releases = tmp_path / "releases"
    for age, name in enumerate(["r1", "r2", "r3", "r4", "r5"]):
        (releases / name / "venv").mkdir(parents=True)
        os.utime(releases / name, (1_700_000_000 + age, 1_700_000_000 + age))
    done = run_tool([tool("ansible-playbook"), str(PRUNE_PLAYBOOK), "-e", json.dumps({
        "pafw_releases_dir": str(releases), "pafw_release_dir": str(releases / "r3"),
        "pafw_switching": switching, "pafw_old_release": "r2" if switching else "r3",
        "pafw_old_previous": "r1", "pafw_releases_keep": 3})])
    assert done.returncode == 0, done.stdout + done.stderr
    assert {p.name for p in releases.iterdir()} == kept


# ------------------------------------------------------------------ the real deployment
@dataclass
class Deployment:
    """A Debian root with the role applied, and the runs that did it."""

    root: DebianRoot
    inventory: Path
    wheel: Path
    runs: dict[str, PlaybookRun] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    #: what the first (check mode) run left behind: paths the role would create
    after_check: dict[str, bool] = field(default_factory=dict)

    def play(self, label: str, **kwargs: object) -> PlaybookRun:
        """Run site.yml against the root; remember the run under ``label``."""
        run = run_playbook(self.inventory, **kwargs)  # type: ignore[arg-type]
        self.runs[label] = run
        self.seconds[label] = run.seconds
        return run


def build_wheel(out_dir: Path) -> Path:
    """`pip wheel --no-deps` of this repository, as the README tells a fleet admin to."""
    out_dir.mkdir(parents=True, exist_ok=True)
    done = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w",
                           str(out_dir), str(REPO)], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    (wheel,) = out_dir.glob("pafw-*.whl")
    return wheel


def write_inventory(path: Path, root: Path, wheel: Path, **host_vars: object) -> None:
    """One analyzer reached through the chroot connection, with secrets and an upload user
    that exists (operator1) and one that does not (ghost)."""
    host = {
        "ansible_connection": "community.general.chroot",
        "ansible_host": str(root),
        "ansible_python_interpreter": "/usr/bin/python3",
        "ansible_become": False,  # we are root already; the root has no sudo
        "pafw_wheel": str(wheel),
        "pafw_upload_users": ["operator1", "ghost"],
        "pafw_mqtt_host": "127.0.0.1",
        "pafw_mqtt_username": "analyzer",
        "pafw_mqtt_password": MQTT_PASSWORD,
        "pafw_web_token": WEB_TOKEN,
        "pafw_env": {"SMTP_PASSWORD": SMTP_PASSWORD},
        **host_vars,
    }
    inventory = {"all": {"children": {"analyzers": {"hosts": {"pafw-test-01": host}}}}}
    path.write_text(yaml.safe_dump(inventory, sort_keys=False))


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    """Fresh root -> check mode -> apply -> apply again -> check mode again."""
    if os.geteuid() != 0:
        pytest.skip("the deploy tests need root (debootstrap, chroot, mounts)")
    tool("ansible-playbook")
    started = time.monotonic()
    work = tmp_path_factory.mktemp("deploy")
    wheel = build_wheel(work / "dist")
    with DebianRoot() as root:
        prepared = time.monotonic()
        root.run(["useradd", "--create-home", "--shell", "/bin/bash", "operator1"])
        inventory = work / "hosts.yml"
        write_inventory(inventory, root.path, wheel)
        deployed = Deployment(root=root, inventory=inventory, wheel=wheel)
        deployed.seconds["wheel+root"] = prepared - started
        deployed.play("fresh-check", check=True, diff=True)
        deployed.after_check = {p: (root.path / p.lstrip("/")).exists() for p in (
            "/etc/pafw", "/opt/pafw", "/var/lib/pafw", "/etc/systemd/system/pafw.service")}
        deployed.play("apply")
        deployed.play("reapply")
        deployed.play("check-after", check=True, diff=True)
        yield deployed
        deployed.seconds["total"] = time.monotonic() - started
        print(f"\ndeploy test timings (s): "
              f"{ {k: round(v, 1) for k, v in deployed.seconds.items()} }")


@pytest.mark.deploy
@pytest.mark.timeout(3600)
class TestDeployment:
    """The role applied for real to a Debian 12 root (see the module docstring)."""

    def test_check_mode_on_a_fresh_host_succeeds(self, deployment: Deployment) -> None:
        run = deployment.runs["fresh-check"]
        assert run.returncode == 0 and run.total("failures") == 0, run.describe()
        assert run.total("changed") > 0
        assert not any(deployment.after_check.values()), deployment.after_check

    def test_apply_then_reapply_changes_nothing(self, deployment: Deployment) -> None:
        first, second = deployment.runs["apply"], deployment.runs["reapply"]
        assert first.returncode == 0 and first.total("failures") == 0, first.describe()
        assert first.total("changed") > 0
        assert second.returncode == 0, second.describe()
        assert second.total("changed") == 0, second.describe()

    def test_check_mode_after_deployment_reports_nothing(self, deployment: Deployment) -> None:
        run = deployment.runs["check-after"]
        assert run.returncode == 0 and run.total("changed") == 0, run.describe()

    def test_accounts(self, deployment: Deployment) -> None:
        root = deployment.root

        def ids(user: str) -> list[str]:
            return root.run(["id", "-nG", user]).stdout.split()

        passwd = {e.split(":")[0]: e.split(":") for e in
                  (root.path / "etc/passwd").read_text().splitlines()}
        assert passwd["pafw"][6] == "/usr/sbin/nologin"
        assert passwd["pafw-worker"][6] == "/usr/sbin/nologin"
        assert int(passwd["pafw"][2]) < 1000 and int(passwd["pafw-worker"][2]) < 1000
        assert sorted(ids("pafw")) == ["audio", "gpio", "pafw"]
        assert ids("pafw-worker") == ["pafw-worker"]
        assert {"pafw-upload", "pafw"} <= set(ids("operator1"))
        assert "ghost" not in passwd  # listed upload users are never created
        reported = [item.get("msg", "") for name, r in deployment.runs["apply"].results
                    if name == "Report upload users that do not exist"
                    for item in r.get("results", [])]
        assert any("no account ghost" in m for m in reported), reported

    def test_files_and_modes(self, deployment: Deployment) -> None:
        root = deployment.root
        uid = {e.split(":")[0]: int(e.split(":")[2])
               for e in (root.path / "etc/passwd").read_text().splitlines()}
        gid = {e.split(":")[0]: int(e.split(":")[2])
               for e in (root.path / "etc/group").read_text().splitlines()}
        expected = {
            "/etc/pafw": ("root", "pafw", 0o750, stat.S_IFDIR),
            "/etc/pafw/config.yaml": ("root", "pafw", 0o640, stat.S_IFREG),
            "/etc/pafw/pafw.env": ("root", "root", 0o600, stat.S_IFREG),
            "/var/lib/pafw": ("pafw", "pafw", 0o750, stat.S_IFDIR),
            "/var/lib/pafw/user_scripts": ("pafw", "pafw-upload", 0o2775, stat.S_IFDIR),
            "/var/cache/pafw": ("pafw", "pafw", 0o750, stat.S_IFDIR),
            "/var/cache/pafw/numba": ("pafw", "pafw", 0o750, stat.S_IFDIR),
            # the root of the actions' data directories: traversable by their uids
            "/var/lib/pafw-worker": ("pafw", "pafw", 0o711, stat.S_IFDIR),
            "/opt/pafw/current/venv/bin/pafw": ("root", "root", 0o755, stat.S_IFREG),
            "/opt/pafw/releases": ("root", "root", 0o755, stat.S_IFDIR),
            "/etc/systemd/system/pafw.service": ("root", "root", 0o644, stat.S_IFREG),
        }
        for path, (owner, group, mode, kind) in expected.items():
            st = root.stat(path)
            found = (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode), stat.S_IFMT(st.st_mode))
            assert found == (uid[owner], gid[group], mode, kind), path

    def test_secrets_stay_in_the_env_file(self, deployment: Deployment) -> None:
        root = deployment.root
        sourced = root.run(["sh", "-c", '. /etc/pafw/pafw.env; printf "%s\\n%s\\n%s" '
                            '"$PAFW_MQTT_PASSWORD" "$SMTP_PASSWORD" "$PAFW_WEB_TOKEN"']).stdout
        assert sourced.split("\n") == [MQTT_PASSWORD, SMTP_PASSWORD, WEB_TOKEN]
        config = yaml.safe_load((root.path / "etc/pafw/config.yaml").read_text())
        assert config["mqtt"]["password"] == "${PAFW_MQTT_PASSWORD:-}"
        assert config["mqtt"]["username"] == "analyzer"
        assert config["web"] == {"enabled": True, "bind": "0.0.0.0", "port": 8080,
                                 "read_access": "lan", "token": "${PAFW_WEB_TOKEN:-}"}
        assert config["paths"] == {"state_dir": "/var/lib/pafw",
                                   "scripts_dir": "/var/lib/pafw/user_scripts",
                                   "cache_dir": "/var/cache/pafw/numba"}
        assert config["scripts"]["worker_user"] == "pafw-worker"
        assert config["scripts"]["data_dir"] == "/var/lib/pafw-worker"
        assert config["device"]["id"] == "pafw-test-01"
        for label, run in deployment.runs.items():  # --diff and results never show them
            assert "w$rd" not in run.output and "s3cr3t" not in run.output, label
            assert WEB_TOKEN not in run.output, label

    def test_unit_enabled_without_a_running_systemd(self, deployment: Deployment) -> None:
        root = deployment.root
        link = root.path / "etc/systemd/system/multi-user.target.wants/pafw.service"
        assert link.is_symlink() and os.readlink(link) == "/etc/systemd/system/pafw.service"
        assert root.run(["systemctl", "is-enabled", "pafw.service"]).stdout.strip() == "enabled"
        apply = deployment.runs["apply"]
        assert not apply.ran("Enable and start the service")
        assert not apply.ran("Restart pafw")

    def test_unit_verifies_inside_the_root(self, deployment: Deployment) -> None:
        systemd_analyze()
        done = deployment.root.run(["systemd-analyze", "verify",
                                    "/etc/systemd/system/pafw.service"], check=False)
        assert done.returncode == 0 and not done.stderr.strip(), done.stderr
        level, report = exposure(Path("/etc/systemd/system/pafw.service"),
                                 root=deployment.root.path)
        assert level <= MAX_EXPOSURE, report

    def test_firmware_installed_from_the_wheel(self, deployment: Deployment) -> None:
        root = deployment.root
        version = deployment.wheel.name.split("-")[1]
        release = f"{version}-{hashlib.sha256(deployment.wheel.read_bytes()).hexdigest()[:10]}"
        current = root.path / "opt/pafw/current"
        assert current.is_symlink() and os.readlink(current) == f"releases/{release}"
        assert not (root.path / "opt/pafw/previous").exists()  # the first release
        assert (current / "RELEASE").read_text() == f"{release}\n"
        assert (current / deployment.wheel.name).read_bytes() == deployment.wheel.read_bytes()
        shown = root.run(["/opt/pafw/current/venv/bin/python", "-m", "pip", "show",
                          "pafw"]).stdout
        assert f"Version: {version}" in shown
        direct = root.run(["/opt/pafw/current/venv/bin/python", "-c",
                           "import importlib.metadata as m;"
                           "print(m.distribution('pafw').read_text('direct_url.json'))"]).stdout
        assert f"/opt/pafw/releases/{release}/{deployment.wheel.name}" in direct
        assert root.run(["/opt/pafw/current/venv/bin/python", "-c",
                         "import alsaaudio"]).returncode == 0
        checked = root.run(["/opt/pafw/current/venv/bin/pafw", "config", "check",
                            "/etc/pafw/config.yaml"], user="pafw", check=False)
        assert checked.returncode == 0, checked.stdout + checked.stderr

    def test_appliance_runs_as_the_service_user(self, deployment: Deployment) -> None:
        """`pafw run` as systemd would start it: user pafw, the env file, UMask=0027."""
        root = deployment.root
        done = root.run(["sh", "-c", "set -a; . /etc/pafw/pafw.env; set +a; cd /var/lib/pafw; "
                         "umask 0027; exec runuser -u pafw -- /opt/pafw/current/venv/bin/pafw run "
                         "--config /etc/pafw/config.yaml --seconds 3"], check=False, timeout=300)
        assert done.returncode == 0, done.stdout + done.stderr
        assert "stopped cleanly" in done.stderr + done.stdout
        snapshot = root.path / "var/lib/pafw/status.json"
        st = snapshot.stat()
        passwd = {e.split(":")[0]: int(e.split(":")[2])
                  for e in (root.path / "etc/passwd").read_text().splitlines()}
        assert st.st_uid == passwd["pafw"] and stat.S_IMODE(st.st_mode) == 0o640
        assert any((root.path / "var/cache/pafw/numba").rglob("*.nbi")), "no kernel cache"
        status = root.run(["/opt/pafw/current/venv/bin/pafw", "status", "--config",
                           "/etc/pafw/config.yaml"], user="operator1", check=False)
        release = os.readlink(root.path / "opt/pafw/current").removeprefix("releases/")
        assert status.stdout.startswith(f"pafw 0.1.0 (release {release}): stopped"), (
            status.stdout + status.stderr)

    def test_rebuilt_wheel_and_boot_options(self, deployment: Deployment,
                                            tmp_path: Path) -> None:
        """A wheel rebuilt at the same version is reinstalled; the Pi boot options are
        applied once (reboot only reported: no systemd here); then nothing changes."""
        root = deployment.root
        boot = root.path / "boot/firmware"
        boot.mkdir(parents=True, exist_ok=True)
        (boot / "config.txt").write_text(PI_CONFIG_TXT)
        (boot / "cmdline.txt").write_text(PI_CMDLINE_TXT)
        rebuilt = build_wheel(tmp_path / "dist")
        assert rebuilt.read_bytes() != deployment.wheel.read_bytes()
        first = os.readlink(root.path / "opt/pafw/current")
        shutil.copyfile(rebuilt, deployment.wheel)
        run = deployment.play("boot+rebuilt", extra_vars=BOOT_VARS)
        assert run.returncode == 0, run.describe()
        changed = set(run.changed_tasks())
        # a rebuilt wheel is another release, beside the first, which becomes the previous
        assert {"Copy the firmware wheel into the release",
                "Install the firmware and its dependencies into the release's venv",
                "Write the release id", "Record the release the host ran as the previous one",
                "Switch the current link to the new release",
                "Add the I2S microphone overlay to config.txt",
                "Enable the memory cgroup controller on the kernel command line"} <= changed
        assert run.ran("Report the pending reboot") and not run.ran(
            "Reboot for the boot configuration")
        assert os.readlink(root.path / "opt/pafw/previous") == first
        assert os.readlink(root.path / "opt/pafw/current") != first
        again = deployment.play("boot-reapply", extra_vars=BOOT_VARS)
        assert again.total("changed") == 0, again.describe()
        config_txt = (boot / "config.txt").read_text()
        assert config_txt.startswith(PI_CONFIG_TXT)
        assert config_txt.endswith("# BEGIN pafw (managed by Ansible)\n[all]\n"
                                   "dtoverlay=googlevoicehat-soundcard\ndtparam=i2s=on\n"
                                   "# END pafw (managed by Ansible)\n")
        assert (boot / "cmdline.txt").read_text() == (
            PI_CMDLINE_TXT.rstrip("\n") + " cgroup_enable=memory cgroup_memory=1\n")

    def test_invalid_configuration_changes_nothing(self, deployment: Deployment) -> None:
        config = deployment.root.path / "etc/pafw/config.yaml"
        before = hashlib.sha256(config.read_bytes()).hexdigest()
        run = deployment.play("bad-config", extra_vars={
            "pafw_hal": {"relays": {"alarm": {"pin": 17, "pulse": 1}}}})
        assert run.returncode != 0
        failed = run.failed_tasks()
        assert any(f.startswith("Write the configuration") and "hal.relays.alarm.pulse" in f
                   for f in failed), failed
        assert hashlib.sha256(config.read_bytes()).hexdigest() == before


# ------------------------------------------------------------ with systemd as PID 1
@dataclass
class Service:
    """The role applied to a booted container: the unit really runs under systemd."""

    booted: BootedRoot
    broker: Broker
    runs: dict[str, PlaybookRun] = field(default_factory=dict)
    main_pids: dict[str, int] = field(default_factory=dict)
    #: /proc/<MainPID>/status and the options of its "/" mount, after each run
    statuses: dict[str, dict[str, str]] = field(default_factory=dict)
    root_mount_options: dict[str, str] = field(default_factory=dict)

    def record(self, label: str, run: PlaybookRun) -> None:
        """Keep a run with the service's main process as it was right after it."""
        self.runs[label] = run
        pid = self.main_pids[label] = self.main_pid()
        if pid:
            self.statuses[label] = self.proc_status(pid)
            mounts = self.booted.run(["cat", f"/proc/{pid}/mountinfo"]).stdout.splitlines()
            self.root_mount_options[label] = next(
                line.split()[5] for line in mounts if line.split()[4] == "/")

    def main_pid(self) -> int:
        """pafw.service's MainPID (0 when it is not running)."""
        return int(self.booted.run(["systemctl", "show", "--property=MainPID", "--value",
                                    "pafw.service"]).stdout)

    def proc_status(self, pid: int) -> dict[str, str]:
        """/proc/<pid>/status inside the container, as a dict."""
        text = self.booted.run(["cat", f"/proc/{pid}/status"]).stdout
        return {k: v.strip() for k, _, v in (line.partition(":") for line in text.splitlines())}


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    """Boot a fresh root, apply the role (systemd found running) without the worker user
    switch, apply it again, then turn the switch on (a unit change). The container shares
    the host's network: its appliance reaches a private broker on the host's loopback, which
    the health gate after each restart requires."""
    if os.geteuid() != 0:
        pytest.skip("the deploy tests need root (debootstrap, systemd-nspawn)")
    tool("ansible-playbook")
    work = tmp_path_factory.mktemp("deploy-systemd")
    wheel = build_wheel(work / "dist")
    with Broker(work / "broker") as broker, DebianRoot(mount_proc=False) as root, \
            BootedRoot(root) as booted:
        inventory = work / "hosts.yml"
        write_inventory(inventory, root.path, wheel, ansible_chroot_exe=str(booted.chroot_exe),
                        pafw_mqtt_port=broker.port, pafw_timeout_start_sec=240)
        deployed = Service(booted=booted, broker=broker)
        confined = {"pafw_worker_user_switch": False}
        deployed.record("apply", run_playbook(inventory, extra_vars=confined))
        deployed.record("reapply", run_playbook(inventory, extra_vars=confined))
        deployed.record("unit-change", run_playbook(
            inventory, extra_vars={"pafw_worker_user_switch": True}))
        yield deployed


@pytest.mark.deploy
@pytest.mark.timeout(3600)
class TestUnderSystemd:
    """The systemd branch of the role, and the hardened unit running for real."""

    def test_service_enabled_and_started(self, service: Service) -> None:
        apply = service.runs["apply"]
        assert apply.returncode == 0 and apply.total("failures") == 0, apply.describe()
        assert apply.ran("Enable and start the service")
        assert apply.ran("Reload systemd") and apply.ran("Restart pafw")
        (gate,) = [r for n, r in apply.results if n == "Wait for the health gate"]
        assert gate["rc"] == 0 and "ok: MQTT online" in gate["stdout"], gate
        assert not apply.ran("Enable the service without a running systemd")
        show = service.booted.run(["systemctl", "show", "pafw.service", "--property=ActiveState",
                                   "--property=UnitFileState", "--property=StatusText"]).stdout
        assert "ActiveState=active" in show and "UnitFileState=enabled" in show, show
        # READY=1 came with its status; later STATUS= lines replace it with the status line
        assert "StatusText=running: simulator" in show or " ppm | " in show, show

    def test_runs_confined(self, service: Service) -> None:
        """With pafw_worker_user_switch: false the unit grants no capability at all."""
        status = service.statuses["reapply"]
        passwd = service.booted.run(["getent", "passwd", "pafw"]).stdout.split(":")
        assert status["Uid"].split() == [passwd[2]] * 4
        assert status["NoNewPrivs"] == "1" and status["Seccomp"] == "2"
        assert int(status["CapEff"], 16) == 0 and int(status["CapBnd"], 16) == 0
        options = service.root_mount_options["reapply"]
        assert options.split(",")[0] == "ro", options  # ProtectSystem=strict

    def test_rerun_does_not_restart(self, service: Service) -> None:
        rerun = service.runs["reapply"]
        assert rerun.total("changed") == 0, rerun.describe()
        assert service.main_pids["reapply"] == service.main_pids["apply"] != 0

    def test_unit_change_restarts_once_with_worker_capabilities(self, service: Service) -> None:
        run = service.runs["unit-change"]
        assert run.returncode == 0, run.describe()
        assert set(run.changed_tasks()) == {"Install the systemd unit", "Restart pafw"}
        pid = service.main_pids["unit-change"]
        assert pid not in (0, service.main_pids["reapply"])
        status = service.statuses["unit-change"]
        # CAP_CHOWN 0, DAC_OVERRIDE 1, FOWNER 3, KILL 5, SETGID 6, SETUID 7, NET_ADMIN 12
        worker_caps = sum(1 << bit for bit in (0, 1, 3, 5, 6, 7, 12))
        # systemd-nspawn keeps CAP_NET_ADMIN out of a container without a private network:
        # there the service holds the rest (and its workers get no egress table)
        for key in ("CapEff", "CapPrm", "CapAmb", "CapBnd"):
            assert int(status[key], 16) in (worker_caps, worker_caps & ~(1 << 12)), (
                key, status[key])
        assert status["NoNewPrivs"] == "1"

    def test_numba_needs_writable_executable_memory(self, service: Service) -> None:
        """Why the unit says MemoryDenyWriteExecute=no: with yes, pafw cannot start."""
        booted = service.booted
        dropin = "/run/systemd/system/pafw.service.d"
        booted.run(["sh", "-c", f"mkdir -p {dropin} && printf '[Service]\\n"
                    f"MemoryDenyWriteExecute=yes\\nRestart=no\\n' > {dropin}/mdwe.conf && "
                    "systemctl daemon-reload"])
        try:
            started = booted.run(["systemctl", "restart", "pafw.service"], check=False)
            journal = booted.run(["journalctl", "--unit=pafw.service", "--no-pager",
                                  "--lines=30"]).stdout
            assert started.returncode != 0
            assert "cannot allocate executable memory" in journal, journal[-2000:]
        finally:
            booted.run(["sh", "-c", f"rm -rf {dropin} && systemctl daemon-reload && "
                        "systemctl reset-failed pafw.service; systemctl restart pafw.service"],
                       check=False)
        assert booted.run(["systemctl", "is-active", "pafw.service"],
                          check=False).stdout.strip() == "active"
