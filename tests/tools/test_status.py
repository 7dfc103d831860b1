"""`pafw status`'s summary of a snapshot (firmware/tools/status.py): the first line for a running,
dead, failed, stopped or other appliance, and the lines for the source, results, MQTT outbox,
dashboard, script sandbox and actions; figures a snapshot lacks are left out, never "None"."""

from __future__ import annotations

import os
import re
import time
from typing import Any

import pytest

from firmware.tools.status import summarize

#: above PID_MAX_LIMIT (2**22 on 64-bit Linux): no process can have it
DEAD_PID = 2**22 + 1
WRITTEN = 1_700_000_000.0  # 2023-11-14 22:13:20 UTC


def snapshot(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"version": "1.2", "state": "stopped", "pid": DEAD_PID,
                            "written_at": WRITTEN, "uptime_s": 100.4, "frames": 5,
                            "overruns": 1, "source": {"kind": "alsa", "overruns": 2}}
    base.update(changes)
    return base


def lines(**changes: Any) -> list[str]:
    running, text = summarize(snapshot(**changes))
    assert "None" not in text
    assert running is (changes.get("state") == "running" and changes.get("pid") == os.getpid())
    return text.splitlines()


def test_running_names_pid_uptime_and_the_snapshots_age() -> None:
    running, text = summarize(snapshot(state="running", pid=os.getpid(),
                                       written_at=time.time() - 30))
    assert running
    head = text.splitlines()[0]
    match = re.fullmatch(rf"pafw 1\.2: running \(pid {os.getpid()}, uptime 100 s, snapshot "
                         r"(\d+) s old\)", head)
    assert match is not None, head
    assert int(match[1]) >= 30


def test_a_running_snapshot_of_a_dead_process() -> None:
    assert lines(state="running")[0] == (
        f"pafw 1.2: DEAD: process {DEAD_PID} exited without a final snapshot (last seen at "
        f"2023-11-14 22:13:20 UTC, after 100 s)")


def test_stopped_on_a_fault_and_stopped_cleanly() -> None:
    failed = lines(state="failed", fault="ALSA device gone")
    assert failed[0] == ("pafw 1.2: STOPPED ON A FAULT at 2023-11-14 22:13:20 UTC after 100 s "
                         "and 5 frames")
    assert "  FAULT: ALSA device gone" in failed
    assert lines()[0] == "pafw 1.2: stopped at 2023-11-14 22:13:20 UTC after 100 s and 5 frames"


def test_another_state_is_named_as_it_is() -> None:
    assert lines(state="starting", written_at=time.time())[0].startswith(
        f"pafw 1.2: starting (pid {DEAD_PID}, snapshot ")


def test_missing_figures_are_left_out() -> None:
    running, text = summarize({"state": "stopped"})
    assert not running
    assert text.splitlines() == ["pafw ?: stopped after an unknown time and 0 frames",
                                 "  source ?: 0 frames, 0 overruns, 0 capture overruns"]


@pytest.mark.parametrize("partial", [{}, {"state": "running"}, {"state": "starting"},
                                     {"state": "stopped", "mqtt": {"outbox": {"pending": 1}}}],
                         ids=["empty", "running", "starting", "mqtt"])
def test_a_partial_snapshot_never_prints_none(partial: dict[str, Any]) -> None:
    assert "None" not in summarize(partial)[1]


def test_counters_that_are_not_counts_read_as_zero() -> None:
    source_line = lines(frames=True, overruns="3", source={"kind": "wav", "overruns": None})[1]
    assert source_line == "  source wav: 0 frames, 0 overruns, 0 capture overruns"
    assert lines()[1] == "  source alsa: 5 frames, 1 overruns, 2 capture overruns"


RESULTS = {
    "concentration": {"kind": "concentration", "concentration_ppm": 812.345,
                      "time": "2023-11-14T22:13:19.500+00:00"},
    "lost": {"kind": "concentration", "concentration_ppm": None, "time": "t"},
    "peak_finder": {"kind": "peak", "frequency_hz": 2000.0},
}


def test_concentrations_and_no_detection() -> None:
    stopped = lines(results=RESULTS)
    assert stopped[2:] == [
        "  concentration: last 812.3 ppm at 2023-11-14T22:13:19.500+00:00",
        "  lost: last no detection at t"]
    running = summarize(snapshot(state="running", pid=os.getpid(), results=RESULTS))[1]
    assert "  concentration: 812.3 ppm at 2023-11-14T22:13:19.500+00:00" in running
    assert "peak_finder" not in running


@pytest.mark.parametrize(("outbox", "line"), [
    ({"pending": 2, "dropped": 0}, "  mqtt b:1883: stopped, 2 messages kept in the outbox for "
                                   "the next start, 0 dropped"),
    ({"pending": 1}, "  mqtt b:1883: stopped, 1 message kept in the outbox for the next start"),
    ({"pending": 0, "dropped": None}, "  mqtt b:1883: stopped, outbox empty"),
    (None, "  mqtt b:1883: stopped, outbox empty"),
])
def test_mqtt_of_a_stopped_appliance(outbox: dict[str, Any] | None, line: str) -> None:
    assert lines(mqtt={"broker": "b:1883", "outbox": outbox})[-1] == line


def test_mqtt_dashboard_and_sandbox_of_a_running_appliance() -> None:
    running, text = summarize(snapshot(
        state="running", pid=os.getpid(),
        mqtt={"broker": "b:1883", "connected": False, "outbox": {"pending": 7, "dropped": 3}},
        web={"url": "http://127.0.0.1:8080", "streams": 2},
        script_sandbox={"per_action_uid": True, "cgroups": "v2", "scratch": "tmpfs",
                        "egress": "none"}))
    assert running
    assert text.splitlines()[2:] == [
        "  mqtt b:1883: DISCONNECTED, 7 pending, 3 dropped",
        "  dashboard http://127.0.0.1:8080: 2 live clients",
        "  script workers: a uid per action; cgroups v2; scratch tmpfs; egress none"]
    connected = summarize(snapshot(state="running", pid=os.getpid(),
                                   mqtt={"broker": "b", "connected": True}))[1]
    assert "  mqtt b: connected, 0 pending" in connected.splitlines()


def test_the_dashboard_line_only_while_running() -> None:
    web = {"url": None, "bind_error": "address in use", "streams": 0}
    running = summarize(snapshot(state="running", pid=os.getpid(), web=web))[1]
    assert "  dashboard NOT LISTENING (address in use): 0 live clients" in running.splitlines()
    assert not any("dashboard" in line for line in lines(web=web))
    sandbox = lines(script_sandbox={"per_action_uid": False, "cgroups": "off",
                                    "scratch": "dir", "egress": "granted"})
    assert sandbox[-1] == ("  script workers: the appliance's uid; cgroups off; scratch dir; "
                           "egress granted")


def test_actions_with_their_worker_protections_warnings_and_last_error() -> None:
    actions = {
        "alarm_relay": {"type": "relay_action", "triggers": 3, "successes": 2, "failures": 1,
                        "enabled": False, "last_error": "relay stuck"},
        "notify": {"type": "python_action", "triggers": 1, "successes": 0, "failures": 1,
                   "worker": {"state": "backoff",
                              "last_error": {"type": "KeyError", "message": "'x'",
                                             "file": "notify.py", "line": 12},
                              "worker": {"protections": "seccomp, landlock",
                                         "sandbox": {"warnings": ["no cgroup"]},
                                         "confinement": {"notes": ["no user namespace"]}}}},
        "hook": {"type": "http_action", "last_error": {"type": "Timeout", "message": "5 s"}},
    }
    assert lines(control={"actions": actions})[2:] == [
        "  action alarm_relay (relay_action) [DISABLED by an operator]: 3 triggers, 2 ok, "
        "1 failed",
        "    last error: relay stuck",
        "  action notify (python_action) [worker backoff]: 1 triggers, 0 ok, 1 failed",
        "    protections: seccomp, landlock",
        "    WARNING: no cgroup",
        "    WARNING: no user namespace",
        "    last error: KeyError: 'x' at notify.py:12",
        "  action hook (http_action): 0 triggers, 0 ok, 0 failed",
        "    last error: Timeout: 5 s",
    ]


def test_the_measurement_cycle_where_it_is_or_why_it_stopped() -> None:
    cycle = {"state": "running", "phase": "measure", "inlet": "room", "cycle": 3,
             "phase_ends": 1_796_281_200.5, "cycles_completed": 2, "averages_published": 4,
             "reason": None}
    running = summarize(snapshot(state="running", pid=os.getpid(), cycle=cycle))[1]
    assert ("  cycle: phase measure (inlet room) until 2026-12-03T07:00:00.500+00:00, "
            "cycle 3; 2 cycles done, 4 averages") in running.splitlines()
    faulted = {**cycle, "state": "faulted", "reason": "relay 'pump' is closed"}
    stopped = summarize(snapshot(state="stopped", cycle=faulted))[1]
    assert ("  cycle: FAULTED (relay 'pump' is closed); 2 cycles done, 4 averages"
            in stopped.splitlines())
    assert "cycle" not in summarize(snapshot(state="stopped", cycle=None))[1]
    assert "None" not in summarize(snapshot(state="running", cycle={"state": "waiting"}))[1]
