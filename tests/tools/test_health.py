"""`pafw health`: the gate of a fleet update, on a real appliance and on crafted snapshots."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from firmware.app.release import release_id
from firmware.app.status_file import write_snapshot
from firmware.tools.health import HealthGate, UnitState, report
from tests.mqtt_broker import Broker


def pafw(*args: str, env: dict[str, str], timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "firmware.cli", *args], capture_output=True,
                          text=True, timeout=timeout, env={**os.environ, **env})


def test_a_running_appliance_passes_and_a_lost_broker_fails(state_env: dict[str, str],
                                                            tmp_path: Path) -> None:
    with Broker(tmp_path / "broker") as broker:
        env = {**state_env, "PAFW_MQTT_PORT": str(broker.port)}
        config = tmp_path / "pafw.yaml"
        config.write_text(pafw("config", "default", env=env).stdout.replace(
            "status_interval_s: 5.0", "status_interval_s: 0.5"))
        proc = subprocess.Popen([sys.executable, "-m", "firmware.cli", "run", "--config",
                                 str(config)], env={**os.environ, **env},
                                stderr=subprocess.DEVNULL)
        try:
            healthy = pafw("health", "--config", str(config), "--wait", "150", "--release",
                           release_id(), env=env)
            assert healthy.returncode == 0, healthy.stdout + healthy.stderr
            assert healthy.stdout.startswith("healthy after ")
            assert "ok: DSP advancing" in healthy.stdout
            assert f"ok: MQTT online (127.0.0.1:{broker.port})" in healthy.stdout
            assert f"ok: release {release_id()}" in healthy.stdout
            other = pafw("health", "--config", str(config), "--wait", "2", "--release",
                         "9.9.9-feedface00", env=env)
            assert other.returncode == 1
            assert f"FAIL: it runs release {release_id()}, not 9.9.9-feedface00" in other.stdout
            broker.stop()
            deadline = time.monotonic() + 60
            lost = pafw("health", "--config", str(config), "--wait", "2", env=env)
            while lost.returncode == 0 and time.monotonic() < deadline:
                lost = pafw("health", "--config", str(config), "--wait", "2", env=env)
            assert lost.returncode == 1 and lost.stdout.startswith("NOT HEALTHY")
            assert "FAIL: MQTT not connected" in lost.stdout
            ignored = pafw("health", "--config", str(config), "--wait", "30", "--no-mqtt",
                           env=env)
            assert ignored.returncode == 0, ignored.stdout
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(30)
    stopped = pafw("health", "--config", str(config), "--wait", "1", env=env)
    assert stopped.returncode == 1
    assert "the snapshot says 'stopped'" in stopped.stdout


def test_no_snapshot_is_not_healthy(state_env: dict[str, str], tmp_path: Path) -> None:
    config = tmp_path / "pafw.yaml"
    config.write_text(pafw("config", "default", env=state_env).stdout)
    done = pafw("health", "--config", str(config), "--wait", "0", env=state_env)
    assert done.returncode == 1
    assert "FAIL: no status snapshot at " in done.stdout
    negative = pafw("health", "--config", str(config), "--wait", "-1", env=state_env)
    assert negative.returncode == 1 and "--wait must be 0 or more" in negative.stderr


# ------------------------------------------------------------ the gate's rules, one by one
def snapshot(path: Path, **fields: Any) -> None:
    """A snapshot of this (live) process, as `pafw run` writes it."""
    status = {"version": "0.1.0", "release": "0.1.0-abc", "frames": 10, "fault": None,
              "mqtt": {"connected": True, "broker": "127.0.0.1:1883"},
              "control": {"actions": {"mqtt": {"state": "idle"}}}}
    status.update(fields)
    write_snapshot(path, status, state="running")


class FakeSystemd:
    """Stands in for `systemctl show` (the gate's logic is under test, not systemd)."""

    def __init__(self, **state: Any) -> None:
        self.state = {"active_state": "active", "sub_state": "running",
                      "main_pid": os.getpid(), "restarts": 0, "result": "success", **state}

    def __call__(self, _unit: str) -> UnitState:
        return UnitState(**self.state)


def no_sleep(_seconds: float) -> None:
    """The tests advance the snapshot themselves."""


def test_healthy_once_the_dsp_advanced(tmp_path: Path) -> None:
    path = tmp_path / "status.json"
    snapshot(path)
    gate = HealthGate(path, unit="pafw.service", release="0.1.0-abc", unit_reader=FakeSystemd())
    first = gate.look()
    assert not first.healthy
    assert first.problems == ["the DSP has not advanced yet (10 frames)"]
    snapshot(path, frames=25)
    second = gate.look()
    assert second.healthy, second.problems
    text = report(second, waited_s=1.0)
    assert text.splitlines()[0] == "healthy after 1.0 s"
    assert "  ok: DSP advancing (10 -> 25 frames)" in text
    assert "  ok: pafw.service active (READY)" in text


def test_a_failed_or_restarted_unit_fails_at_once(tmp_path: Path) -> None:
    path = tmp_path / "status.json"
    snapshot(path)
    failed = HealthGate(path, unit="pafw.service",
                        unit_reader=FakeSystemd(active_state="failed", result="exit-code"))
    verdict = failed.wait(60, sleep=no_sleep)
    assert verdict.final and verdict.problems == ["pafw.service failed (exit-code)"]
    systemd = FakeSystemd(active_state="activating", sub_state="start")
    crashing = HealthGate(path, unit="pafw.service", unit_reader=systemd)
    assert not crashing.look().final  # starting: worth waiting for
    systemd.state.update(restarts=1, active_state="activating", sub_state="auto-restart")
    verdict = crashing.look()
    assert verdict.final
    assert "pafw.service was restarted by systemd 1 time(s) (it crashed)" in verdict.problems


def test_a_snapshot_of_another_process_or_release_does_not_pass(tmp_path: Path) -> None:
    path = tmp_path / "status.json"
    snapshot(path)
    gate = HealthGate(path, unit="pafw.service", release="0.2.0-def",
                      unit_reader=FakeSystemd(main_pid=os.getpid() + 1))
    gate.look()
    snapshot(path, frames=20)
    problems = gate.look().problems
    assert f"the snapshot is from process {os.getpid()}, not from the unit's main process " \
           f"{os.getpid() + 1} (not written yet)" in problems
    assert "it runs release 0.1.0-abc, not 0.2.0-def" in problems


def test_a_failed_action_a_fault_or_an_offline_broker_fails(tmp_path: Path) -> None:
    path = tmp_path / "status.json"
    snapshot(path, fault="ALSA device gone",
             mqtt={"connected": False, "broker": "10.0.0.1:1883", "last_error": "refused"},
             control={"actions": {"mailer": {"state": "failed"}, "mqtt": {"state": "idle"}}})
    gate = HealthGate(path)
    verdict = gate.wait(0, sleep=no_sleep)
    assert not verdict.healthy and not verdict.final
    assert "fault: ALSA device gone" in verdict.problems
    assert "action(s) in the failed state: mailer" in verdict.problems
    assert ("MQTT not connected to 10.0.0.1:1883: refused (availability not online)"
            in verdict.problems)
    lenient = HealthGate(path, mqtt_required=False).look()
    assert not any("MQTT" in p for p in lenient.problems)


def test_a_dead_process_is_not_healthy(tmp_path: Path) -> None:
    path = tmp_path / "status.json"
    child = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                           capture_output=True, text=True, check=True)
    snapshot(path)
    text = path.read_text().replace(f'"pid":{os.getpid()}', f'"pid":{child.stdout.strip()}')
    path.write_text(text)
    problems = HealthGate(path).look().problems
    assert f"the snapshot says 'running' for process {child.stdout.strip()}, which is not " \
           "running" in problems


@pytest.mark.parametrize("timeout", [0.0, 3.0])
def test_wait_gives_up_at_its_timeout(tmp_path: Path, timeout: float) -> None:
    path = tmp_path / "status.json"
    snapshot(path)
    now = [0.0]
    looks = []

    def clock() -> float:
        return now[0]

    def sleep(seconds: float) -> None:
        looks.append(seconds)
        now[0] += seconds

    verdict = HealthGate(path).wait(timeout, clock=clock, sleep=sleep)
    assert not verdict.healthy
    assert len(looks) == int(timeout / 0.5)


def test_a_unit_still_starting_is_waited_for_up_to_the_start_wait(tmp_path: Path) -> None:
    """A first start compiles every kernel (minutes on a Pi): while systemd says
    'activating', the gate waits past --wait up to --start-wait, and --wait counts again
    from READY; a start longer than --start-wait fails with the service's own STATUS line."""
    path = tmp_path / "status.json"
    now = [0.0]

    def clock() -> float:
        return now[0]

    systemd = FakeSystemd(active_state="activating", sub_state="start",
                          status_text="starting: compiling the DSP kernels (80 s)")

    def sleep(seconds: float) -> None:
        now[0] += seconds
        if now[0] >= 200.0 and systemd.state["active_state"] == "activating":
            systemd.state.update(active_state="active", sub_state="running", status_text="")
            snapshot(path, frames=10)
        elif now[0] >= 205.0:
            snapshot(path, frames=10 + int(now[0]))

    gate = HealthGate(path, unit="pafw.service", release="0.1.0-abc", unit_reader=systemd)
    verdict = gate.wait(30.0, start_timeout_s=600.0, clock=clock, sleep=sleep)
    assert verdict.healthy, verdict.problems
    assert 205.0 <= now[0] < 230.0  # READY at 200 s, then two snapshots of the running DSP

    now[0] = 0.0
    systemd.state.update(active_state="activating", sub_state="start",
                         status_text="starting: compiling the DSP kernels (80 s)")
    stuck = HealthGate(path, unit="pafw.service", unit_reader=systemd)
    verdict = stuck.wait(30.0, start_timeout_s=120.0, clock=clock, sleep=no_sleep_but(now))
    assert not verdict.healthy and not verdict.final
    assert ("pafw.service is activating (start: starting: compiling the DSP kernels (80 s)), "
            "not active (READY=1 not sent yet)") in verdict.problems
    assert "still starting after 120 s (--start-wait 120 s)" in verdict.problems
    quick = HealthGate(path, unit="pafw.service", unit_reader=systemd)
    now[0] = 0.0
    assert not quick.wait(30.0, clock=clock, sleep=no_sleep_but(now)).healthy
    assert now[0] == 30.0  # without --start-wait, --wait bounds the start too


def no_sleep_but(now: list[float]) -> Callable[[float], None]:
    """A sleep that only advances the fake clock."""

    def sleep(seconds: float) -> None:
        now[0] += seconds

    return sleep
