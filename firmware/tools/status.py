"""`pafw status`: the running appliance's state, from the snapshot in its state dir.

The summary says plainly whether the appliance runs, stopped (cleanly, or on a fault) or
died without a final snapshot; a figure the snapshot does not hold is left out, never
printed as "None".
"""

from __future__ import annotations

import time
from typing import Any

from firmware.app.status_file import process_alive
from firmware.state import iso_utc


def _count(value: Any) -> int:
    """A counter from the snapshot (0 when absent or null)."""
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _header(snapshot: dict[str, Any], state: str, alive: bool) -> tuple[bool, str]:
    """(running, the first line): running, stopped, failed or dead, with when and why."""
    version = snapshot.get("version", "?")
    release = snapshot.get("release")
    if isinstance(release, str) and release != version:  # the build, when it says more
        version = f"{version} (release {release})"
    pid = snapshot.get("pid") if isinstance(snapshot.get("pid"), int) else None
    pid_text = "" if pid is None else f"pid {pid}, "
    written = snapshot.get("written_at")
    written_at = float(written) if isinstance(written, int | float) else None
    age = "" if written_at is None else f", snapshot {time.time() - written_at:.0f} s old"
    uptime = snapshot.get("uptime_s")
    ran = f"{uptime:.0f} s" if isinstance(uptime, int | float) else "an unknown time"
    when = "" if written_at is None else f" at {iso_utc(written_at)[:19].replace('T', ' ')} UTC"
    frames = _count(snapshot.get("frames"))
    if state == "running" and alive:
        return True, f"pafw {version}: running ({pid_text}uptime {ran}{age})"
    if state == "running":
        process = "its process" if pid is None else f"process {pid}"
        return False, (f"pafw {version}: DEAD: {process} exited without a final snapshot "
                       f"(last seen{when}, after {ran})")
    if state == "failed":
        return False, (f"pafw {version}: STOPPED ON A FAULT{when} after {ran} and "
                       f"{frames} frames")
    if state == "stopped":
        return False, f"pafw {version}: stopped{when} after {ran} and {frames} frames"
    details = f"{pid_text}{age.removeprefix(', ')}".removesuffix(", ")
    return False, f"pafw {version}: {state}" + (f" ({details})" if details else "")


def summarize(snapshot: dict[str, Any]) -> tuple[bool, str]:
    """(running, a readable summary) of a status snapshot."""
    state = str(snapshot.get("state", "?"))
    pid = snapshot.get("pid")
    alive = isinstance(pid, int) and process_alive(pid)
    running, header = _header(snapshot, state, alive)
    lines = [header]
    source = snapshot.get("source") or {}
    lines.append(f"  source {source.get('kind', '?')}: {_count(snapshot.get('frames'))} frames, "
                 f"{_count(snapshot.get('overruns'))} overruns, "
                 f"{_count(source.get('overruns'))} capture overruns")
    if snapshot.get("fault"):
        lines.append(f"  FAULT: {snapshot['fault']}")
    last = "last " if not running else ""
    for node_id, result in (snapshot.get("results") or {}).items():
        if result.get("kind") == "concentration":
            ppm = result.get("concentration_ppm")
            value = "no detection" if ppm is None else f"{ppm:.1f} ppm"
            lines.append(f"  {node_id}: {last}{value} at {result.get('time', '?')}")
    mqtt = snapshot.get("mqtt")
    if mqtt:
        broker = f"mqtt {mqtt['broker']}" if mqtt.get("broker") else "mqtt"
        outbox = mqtt.get("outbox") or {}
        pending = _count(outbox.get("pending"))
        dropped = outbox.get("dropped")
        dropped_text = f", {dropped} dropped" if isinstance(dropped, int) else ""
        if running:
            link = "connected" if mqtt.get("connected") else "DISCONNECTED"
            lines.append(f"  {broker}: {link}, {pending} pending"
                         f"{dropped_text}")
        else:
            waiting = (f"{pending} message{'s' if pending != 1 else ''} kept in the outbox "
                       f"for the next start" if pending else "outbox empty")
            lines.append(f"  {broker}: stopped, {waiting}{dropped_text}")
    web = snapshot.get("web")
    if web and running:
        where = web.get("url") or f"NOT LISTENING ({web.get('bind_error')})"
        lines.append(f"  dashboard {where}: {_count(web.get('streams'))} live clients")
    modbus = snapshot.get("modbus")
    if modbus and running:
        where = (f"{modbus.get('bind')}:{modbus['port']}" if modbus.get("port") is not None
                 else f"NOT LISTENING ({modbus.get('bind_error')})")
        lines.append(f"  modbus {where}: {_count(modbus.get('connections'))} clients, "
                     f"{_count(modbus.get('requests'))} requests, "
                     f"{_count(modbus.get('errors'))} exceptions, "
                     f"{_count(modbus.get('refused_writes'))} refused writes")
    cycle = snapshot.get("cycle")
    if isinstance(cycle, dict):
        lines.append(f"  cycle: {cycle_text(cycle, running)}")
    sandbox = snapshot.get("script_sandbox")
    if sandbox:
        uid = "a uid per action" if sandbox.get("per_action_uid") else "the appliance's uid"
        lines.append(f"  script workers: {uid}; cgroups {sandbox.get('cgroups')}; scratch "
                     f"{sandbox.get('scratch')}; egress {sandbox.get('egress')}")
    actions = (snapshot.get("control") or {}).get("actions") or {}
    for action_id, action in actions.items():
        worker = action.get("worker") or {}
        states = [str(action["state"])] if action.get("state") else []
        if worker.get("state"):
            states.append(f"worker {worker['state']}")
        state_text = f" [{', '.join(states)}]" if states else ""
        if action.get("enabled") is False:
            state_text += " [DISABLED by an operator]"
        lines.append(f"  action {action_id} ({action.get('type')}){state_text}: "
                     f"{_count(action.get('triggers'))} triggers, "
                     f"{_count(action.get('successes'))} ok, "
                     f"{_count(action.get('failures'))} failed"
                     + "".join(f"; {name} {state}"
                               for name, state in (action.get("outputs") or {}).items()))
        process = worker.get("worker") or {}
        if process.get("protections"):
            lines.append(f"    protections: {process['protections']}")
        for warning in [*((process.get("sandbox") or {}).get("warnings") or []),
                        *((process.get("confinement") or {}).get("notes") or [])]:
            lines.append(f"    WARNING: {warning}")
        error = worker.get("last_error") or action.get("last_error")
        if error:
            if isinstance(error, dict):
                where = f" at {error.get('file')}:{error.get('line')}" if error.get("file") \
                    else ""
                error = f"{error.get('type')}: {error.get('message')}{where}"
            lines.append(f"    last error: {error}")
    return running, "\n".join(lines)


def cycle_text(cycle: dict[str, Any], running: bool) -> str:
    """The measurement cycle in one line: where it is (phase, inlet, until when) while it
    runs, else how it ended and why; then its counts."""
    state = str(cycle.get("state") or "?")
    counts = (f"{_count(cycle.get('cycles_completed'))} cycles done, "
              f"{_count(cycle.get('averages_published'))} averages")
    if state == "running" and running:
        where = f"phase {cycle.get('phase') or '?'}"
        if cycle.get("inlet"):
            where += f" (inlet {cycle['inlet']})"
        ends = cycle.get("phase_ends")
        if isinstance(ends, int | float) and not isinstance(ends, bool):
            where += f" until {iso_utc(ends)}"
        return f"{where}, cycle {_count(cycle.get('cycle'))}; {counts}"
    reason = f" ({cycle['reason']})" if cycle.get("reason") else ""
    return f"{state.upper() if state == 'faulted' else state}{reason}; {counts}"
