"""Run by test_nonroot_appliance.py as an unprivileged uid (setpriv), the way the shipped unit
runs the appliance: start workers for escape.py's attacks and a canary, print what happened
as one JSON line. Argument: the directory of the test scripts."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
from pathlib import Path

from firmware.actions.python.confinement import Confinement
from firmware.actions.python.host import PythonWorker
from firmware.actions.python.spec import WorkerSpec

SCRIPTS = Path(sys.argv[1])


async def no_api(method: str, args: list, kwargs: dict) -> None:
    return None


def spec(node_id: str, cls: str) -> WorkerSpec:
    return WorkerSpec(node_id=node_id, script_path=SCRIPTS / "escape.py", class_name=cls,
                      scripts_dir=SCRIPTS, timeout_ms=10_000, scratch_mb=4)


async def main() -> dict:
    log = logging.getLogger("harness")
    confinement = Confinement.shared()
    victim = PythonWorker(spec("victim", "Canary"), handle_request=no_api, logger=log)
    attacker = PythonWorker(spec("attacker", "CtypesFork"), handle_request=no_api, logger=log)
    disk = PythonWorker(spec("disk", "DiskAndShm"), handle_request=no_api, logger=log)
    for worker in (victim, attacker, disk):
        await worker.start(timeout_s=20)
    await attacker.call("on_trigger", "x", {"victim_pid": victim.pid, "host_pid": os.getpid()})
    await disk.call("on_trigger", "x", {"scratch_fill_mb": 16,
                                        "other_script": str(SCRIPTS / "hostile.py"),
                                        "own_script": str(SCRIPTS / "escape.py")})
    await victim.call("on_trigger", "x", {})
    out = {"host_uid": os.getuid(), "appliance": confinement.get_status(),
           "victim_count": (await victim.call("get_status"))["count"],
           "victim_alive": victim.alive,
           "attack": (await attacker.call("get_status"))["report"],
           "disk": (await disk.call("get_status"))["report"],
           "workers": {w.spec.node_id: w.get_status() for w in (victim, attacker, disk)}}
    for worker in (victim, attacker, disk):
        await worker.stop()
    return out


if __name__ == "__main__":
    print(json.dumps(asyncio.run(main()), default=str))
