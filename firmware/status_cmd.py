"""`pafw status`: the running appliance's state, from the snapshot in its state dir."""

from __future__ import annotations

import time
from typing import Any

from firmware.status_file import process_alive


def summarize(snapshot: dict[str, Any]) -> tuple[bool, str]:
    """(running, a readable summary) of a status snapshot."""
    state = snapshot.get("state", "?")
    pid = snapshot.get("pid")
    age = time.time() - float(snapshot.get("written_at", 0))
    alive = isinstance(pid, int) and process_alive(pid)
    running = state == "running" and alive
    if state == "running" and not alive:
        state = "dead (the process exited without a final snapshot)"
    lines = [f"pafw {snapshot.get('version', '?')}: {state} (pid {pid}, snapshot {age:.0f} s "
             f"old, uptime {snapshot.get('uptime_s', 0):.0f} s)"]
    source = snapshot.get("source") or {}
    lines.append(f"  source {source.get('kind', '?')}: {snapshot.get('frames', 0)} frames, "
                 f"{snapshot.get('overruns', 0)} overruns, {source.get('overruns', 0)} "
                 f"capture overruns")
    if snapshot.get("fault"):
        lines.append(f"  FAULT: {snapshot['fault']}")
    for node_id, result in (snapshot.get("results") or {}).items():
        if result.get("kind") == "concentration":
            ppm = result.get("concentration_ppm")
            value = "no detection" if ppm is None else f"{ppm:.1f} ppm"
            lines.append(f"  {node_id}: {value} at {result.get('time', '?')}")
    mqtt = snapshot.get("mqtt")
    if mqtt:
        outbox = mqtt.get("outbox") or {}
        lines.append(f"  mqtt {mqtt.get('broker')}: "
                     f"{'connected' if mqtt.get('connected') else 'DISCONNECTED'}, "
                     f"{outbox.get('pending', 0)} pending, {outbox.get('dropped', 0)} dropped")
    web = snapshot.get("web")
    if web:
        where = web.get("url") or f"NOT LISTENING ({web.get('bind_error')})"
        lines.append(f"  dashboard {where}: {web.get('streams', 0)} live clients")
    sandbox = snapshot.get("script_sandbox")
    if sandbox:
        uid = "a uid per action" if sandbox.get("per_action_uid") else "the appliance's uid"
        lines.append(f"  script workers: {uid}; cgroups {sandbox.get('cgroups')}; scratch "
                     f"{sandbox.get('scratch')}; egress {sandbox.get('egress')}")
    actions = (snapshot.get("control") or {}).get("actions") or {}
    for action_id, action in actions.items():
        worker = action.get("worker") or {}
        state_text = f" [{worker['state']}]" if worker.get("state") else ""
        if action.get("enabled") is False:
            state_text += " [DISABLED by an operator]"
        lines.append(f"  action {action_id} ({action.get('type')}){state_text}: "
                     f"{action.get('triggers', 0)} triggers, {action.get('successes', 0)} ok, "
                     f"{action.get('failures', 0)} failed")
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
