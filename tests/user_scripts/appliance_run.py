"""Helpers of the example-script tests: a config around example nodes, and the REAL appliance
on the simulator driven frame by frame in lockstep with its control loop (as in
tests/actions/test_builtin_actions.py), mock GPIO pins, script workers as the same user.

Lockstep here also waits for the python actions' ``on_update`` calls, so every frame's
results reach the script (none is coalesced) whatever the speed of this machine. Paced
frames carry epoch timestamps on an even grid, as a paced source's do, whatever the load.
"""

from __future__ import annotations

import ast
import asyncio
import re
import shutil
import time
from pathlib import Path
from typing import Any

import yaml

from firmware.actions.python.action_node import PythonAction
from firmware.app.appliance import Appliance
from firmware.config.loader import ConfigDocument, default_config_text, load_config
from tests.paths import USER_SCRIPTS
from tests.waiting import wait_until

EXAMPLES = USER_SCRIPTS
FRAME_S = 4096 / 48000  # one simulated frame of the default config
CO2_IDS = {"peak_finder": "co2_peak_finder", "concentration": "co2_concentration"}


def docstring_node(script: str) -> dict[str, Any]:
    """The node configuration given in the ```yaml block of an example's docstring."""
    doc = ast.get_docstring(ast.parse((EXAMPLES / script).read_text(encoding="utf-8")))
    assert doc is not None, f"{script} has no docstring"
    match = re.search(r"```yaml\n(.*?)```", doc, re.DOTALL)
    assert match is not None, f"{script}: no ```yaml block in the docstring"
    nodes = yaml.safe_load(match.group(1))
    assert isinstance(nodes, list) and len(nodes) == 1, "expected one node in the block"
    return nodes[0]


def install_scripts(tmp_path: Path, *names: str) -> Path:
    """A scripts directory of this test holding copies of the named examples."""
    scripts = tmp_path / "scripts"
    scripts.mkdir(exist_ok=True)
    for name in names:
        shutil.copy(EXAMPLES / name, scripts / name)
    return scripts


def make_config(tmp_path: Path, *, profile: dict[str, Any], nodes: list[dict[str, Any]],
                co2_ids: bool = False, broker: Any = None,
                relays: dict[str, Any] | None = None,
                data_dir: Path | None = None) -> dict[str, Any]:
    """The shipped default config with a simulator ``profile``, the built-in actions
    replaced by ``nodes`` (each fed by the concentration node), relay limits off, MQTT to
    ``broker`` (or off), paths in tmp, workers not dropping privileges (the test interpreter
    lives under /root, which ``nobody`` cannot read) and no hot reload.

    ``co2_ids`` renames the DSP nodes to the design study's co2_peak_finder and
    co2_concentration; ``data_dir`` is where actions granted data_mb keep it."""
    data = yaml.safe_load(default_config_text())
    data["device"]["id"] = "lab1-cell"
    data["acquisition"]["simulator"]["concentration"] = profile
    graph = data["processing"]["default_graph"]
    graph["nodes"] = [n for n in graph["nodes"] if not n["type"].endswith("_action")]
    kept = {n["id"] for n in graph["nodes"]}
    graph["connections"] = [c for c in graph["connections"] if c["to"] in kept]
    if co2_ids:
        for node in graph["nodes"]:
            node["id"] = CO2_IDS.get(node["id"], node["id"])
            params = node.get("parameters", {})
            if "source_node" in params:
                params["source_node"] = CO2_IDS.get(params["source_node"],
                                                    params["source_node"])
        for conn in graph["connections"]:
            conn["from"] = CO2_IDS.get(conn["from"], conn["from"])
            conn["to"] = CO2_IDS.get(conn["to"], conn["to"])
    source = CO2_IDS["concentration"] if co2_ids else "concentration"
    for node in nodes:
        graph["nodes"].append(node)
        graph["connections"].append({"from": source, "to": node["id"]})
    data["hal"]["relays"]["alarm"].update(min_on_s=0.0, min_off_s=0.0)
    data["hal"]["relays"].update(relays or {})
    if broker is None:
        data["mqtt"]["enabled"] = False
    else:
        data["mqtt"].update(host=broker.host, port=broker.port, reconnect_min_s=0.1,
                            reconnect_max_s=0.5)
        data["mqtt"]["discovery"]["enabled"] = False
    data["paths"] = {"state_dir": str(tmp_path / "state"),
                     "scripts_dir": str(tmp_path / "scripts"),
                     "cache_dir": str(tmp_path.parent / "numba-cache")}
    data["scripts"] = {"worker_user": None, "hot_reload": False, "debounce_s": 0.15}
    if data_dir is not None:
        data["scripts"]["data_dir"] = str(data_dir)
    return data


def load(data: dict[str, Any], env: dict[str, str] | None = None) -> ConfigDocument:
    """Validate the config (``${VAR}`` taken from ``env`` only)."""
    text = yaml.safe_dump(data, sort_keys=False, allow_unicode=True)
    return load_config(text=text, env=env or {})


async def _updates_done(handlers: list[PythonAction]) -> None:
    # Runs on the control loop after the evaluator's step that took the frame's results,
    # so each handler's on_update task for that frame exists already.
    for handler in handlers:
        while (task := handler._update_task) is not None and not task.done():
            await asyncio.wait({task})


def example_run(tmp_path: Path, script: str, *, nodes: list[dict[str, Any]],
                profile: dict[str, Any], env: dict[str, str] | None = None,
                **config: Any) -> Run:
    """The appliance of one example's test: ``script`` copied into this test's scripts
    directory, the default config with ``nodes`` and the simulator ``profile`` (``config``:
    the other keywords of ``make_config``), validated with ``env`` as the environment."""
    install_scripts(tmp_path, script)
    return Run(load(make_config(tmp_path, nodes=nodes, profile=profile, **config), env=env))


class Run:
    """The appliance of one test, driven frame by frame; a context manager that stops it."""

    def __init__(self, doc: ConfigDocument) -> None:
        self.appliance = Appliance(doc, realtime=False)
        self.frames_done = 0
        self._grid: float | None = None  # epoch time of the next paced frame

    def __enter__(self) -> Run:
        a = self.appliance
        try:
            a.analyzer.warm_up()
            if a.mqtt is not None:
                a.mqtt.start()
            a.control.start()  # awaits every handler's start: the workers are up (or failed)
            for h in a.python_handlers:
                assert h.supervisor.state == "running", h.supervisor.get_status()["last_error"]
            a.analyzer.source.open()
        except BaseException:
            a.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.appliance.stop()

    def handler(self, node_id: str) -> Any:
        return next(h for h in self.appliance.handlers if h.node_id == node_id)

    def frames(self, count: int, *, pace_s: float | None = None) -> None:
        """Process ``count`` frames, each fully handled (trigger evaluation, on_update)
        before the next; with ``pace_s``, each is read at least ``pace_s`` after the previous
        one (no catching up) and carries an epoch timestamp ``pace_s`` after the previous
        one's: the results' timestamps (what scripts fit trends to) are evenly spaced like a
        paced source's, even when a loaded machine reads some frames late."""
        analyzer, feed = self.appliance.analyzer, self.appliance.feed
        last_read = -float("inf")
        for _ in range(count):
            if pace_s is not None:
                time.sleep(max(0.0, last_read + pace_s - time.monotonic()))
                last_read = time.monotonic()
            frame = analyzer.source.read()
            if pace_s is not None:
                self._grid = frame.wall_time if self._grid is None else self._grid
                frame.wall_time = self._grid  # never ahead of the real clock
                self._grid += pace_s
            analyzer.process_frame(frame)
            wait_until(lambda: feed.taken == feed.posted, 30, "the frame's results taken")
            self.appliance.control.call(
                _updates_done(self.appliance.python_handlers)).result(timeout=60)
            self.frames_done += 1

    def script_status(self, node_id: str) -> Any:
        """The script's get_status(), asked now."""
        handler = self.handler(node_id)
        return self.appliance.control.call(handler.supervisor.call("get_status")).result(60)

    def status(self, node_id: str) -> dict[str, Any]:
        """The node's status as the appliance reports it."""
        return self.appliance.control.get_status()["actions"][node_id]
