"""The whole appliance: analyzer (DSP thread) + HAL + MQTT link + control loop (actions).

Start order puts every output in its safe state first and starts the DSP thread last; stop
order is the reverse, and every exit path (clean stop, fault, signal, exception) ends with
the HAL's safe state and, when connected, an explicit ``offline`` on MQTT.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from functools import partial
from pathlib import Path
from typing import Any

from firmware.actions.base import ActionContext, ActionHandler, ActionNode, ScriptsContext
from firmware.actions.control import ControlLoop
from firmware.actions.event_log import ActionEventLog
from firmware.actions.event_store import EventStore, events_path
from firmware.actions.feed import ResultFeed
from firmware.actions.history import HistoryEntry
from firmware.actions.mqtt.discovery import DiscoveryEntities, cycle_average_topic
from firmware.actions.mqtt.link import MqttLink
from firmware.actions.mqtt.payload import encode_json, stamped
from firmware.actions.nodes.mqtt_action import MqttActionParams, alarm_state_name
from firmware.actions.python.action_node import PythonAction, PythonActionNode
from firmware.actions.python.sandbox import can_switch_user
from firmware.app.analyzer import Analyzer
from firmware.app.calibration import build_calibration
from firmware.app.cycle import CycleRunner
from firmware.app.cycle_average import average_node_id
from firmware.app.file_watch import FileWatcher
from firmware.app.operations import Operations
from firmware.app.release import release_id
from firmware.app.selftest import SelfTest, SelftestReport
from firmware.config.loader import ConfigDocument, load_config
from firmware.dsp.node import DETECTOR_KINDS
from firmware.errors import ActionError, ConfigError, HalError
from firmware.hal.hal import Hal
from firmware.state import ComputingResult

log = logging.getLogger("pafw.appliance")


class Appliance:
    """Everything `pafw run` runs, built from one config."""

    def __init__(self, doc: ConfigDocument, *, realtime: bool = True) -> None:
        self.doc = doc
        cfg = doc.config
        self.started_monotonic = time.monotonic()
        self.analyzer = Analyzer(doc, realtime=realtime)
        self.hal: Hal | None = None
        self.mqtt: MqttLink | None = None
        self.handlers: list[ActionHandler] = []
        #: triggers, outcomes and operator changes of every action (the web stream's source),
        #: kept on disk in the state dir across restarts
        self.action_events = ActionEventLog(
            store=EventStore(events_path(self.analyzer.state_dir)))
        #: set when something a status reader waits for changed (a script reload)
        self.status_dirty = threading.Event()
        #: views of the appliance built above it (the Modbus server) add their status here:
        #: name -> get_status, joined into get_status() under that name
        self.status_parts: dict[str, Callable[[], dict[str, Any]]] = {}
        try:
            if cfg.hal.relays or cfg.hal.leds:
                self.hal = Hal(cfg.hal)
            if cfg.mqtt.enabled:
                self.mqtt = MqttLink(cfg.mqtt, device_id=cfg.device.id,
                                     state_dir=self.analyzer.state_dir,
                                     software_version=release_id(), device_name=cfg.device.name,
                                     gas=cfg.device.gas)
            if any(isinstance(node, PythonActionNode) for node in self.action_nodes):
                from firmware.actions.python.confinement import Confinement

                switching = can_switch_user()
                Confinement.configure(
                    uid_base=cfg.scripts.worker_uid_base,
                    data_root=(cfg.scripts.data_dir.expanduser().absolute() if switching
                               else self.analyzer.state_dir / "python_actions" / "data"))
            ctx = ActionContext(
                state=self.analyzer.state, device_id=cfg.device.id,
                state_dir=self.analyzer.state_dir, hal=self.hal, mqtt=self.mqtt,
                events=self.action_events, health=self.fault,
                node_statistics=self.node_statistics,
                raw_parameters={n.id: dict(n.parameters)
                                for n in cfg.processing.default_graph.nodes},
                status_changed=self.status_dirty.set,
                scripts=ScriptsContext(
                    scripts_dir=cfg.paths.scripts_dir,
                    run_as_user=cfg.scripts.worker_user if can_switch_user() and
                    cfg.scripts.worker_uid_base is None else None))
            for node in self.action_nodes:
                try:
                    self.handlers.append(node.Handler(node, ctx))
                except (ActionError, HalError) as exc:
                    raise ConfigError(f"{doc.node_location(node.node_id)}: {exc}") from None
        except BaseException:
            self._release()
            raise
        self._restore_histories()
        self.watcher: FileWatcher | None = None
        if cfg.scripts.hot_reload and self.python_handlers:
            self.watcher = FileWatcher(cfg.paths.scripts_dir, self._script_changed,
                                         debounce_s=cfg.scripts.debounce_s)
        self.config_watcher: FileWatcher | None = None
        if cfg.scripts.hot_reload and (self.python_handlers or cfg.cycle.enabled) and \
                doc.path is not None:
            config_path = doc.path.resolve()
            self.config_watcher = FileWatcher(
                config_path.parent, self._config_changed, debounce_s=cfg.scripts.debounce_s,
                match=lambda path: path.resolve() == config_path)
        self.config_reload: dict[str, Any] = {"reloads": 0, "last_error": None}
        self._confinement_status: dict[str, Any] | None = None
        # the control loop's drains ask for a flush after the next frame (none without actions)
        self.feed = ResultFeed(self.analyzer.state,
                               schedule=self.analyzer.call_after_next_frame)
        # at most one batch per half frame: at real time every frame is evaluated as it comes;
        # a DSP loop far faster than real time meets a few coalesced batches a second, not a
        # control thread competing with it for the GIL
        frame_s = cfg.acquisition.frame_size / cfg.acquisition.sample_rate
        self.control = ControlLoop(self.handlers, self.feed, frame_s=frame_s,
                                   min_gap_s=min(max(frame_s / 2, 0.005), 0.05))
        #: what an operator may change (web API); restores the actions disabled before
        self.operations = Operations(handlers=self.handlers, hal=self.hal,
                                     events=self.action_events,
                                     state_dir=self.analyzer.state_dir, run=self.control.call)
        self.operations.restore()
        #: the concentration node's calibration (None without a concentration node)
        self.calibration = build_calibration(doc, self.analyzer)
        if self.calibration is not None:
            self.status_parts["calibration"] = self.calibration.get_status
        #: the measurement cycle (None unless ``cycle.enabled``)
        self.cycle: CycleRunner | None = None
        if cfg.cycle.enabled:
            self._build_cycle()
        #: the microphones' self-test: at start (selftest.at_start) and on demand (web API)
        self.selftest = SelfTest(cfg, self.analyzer)
        self.selftest.on_report(self._selftest_done)

    def cycle_nodes(self) -> dict[str, str]:
        """The nodes the cycle averages, with their result kinds: ``cycle.nodes``, else every
        concentration node, else every peak/lockin node."""
        kinds = {n.node_id: n.result_kind for n in self.analyzer.graph.nodes
                 if n.result_kind is not None}
        wanted = self.doc.config.cycle.nodes
        if wanted:
            return {n: kinds[n] for n in wanted if n in kinds}
        concentration = {n: k for n, k in kinds.items() if k == "concentration"}
        return concentration or {n: k for n, k in kinds.items() if k in DETECTOR_KINDS}

    def _build_cycle(self) -> None:
        """The cycle runner, its tap on the DSP thread (before the feed's flush, so the
        averages it publishes reach the actions with that frame) and what actions must know:
        the measure phases, and that each monitored node's averages are monitored too."""
        settings = self.doc.config.cycle
        self.cycle = CycleRunner(settings, hal=self.hal, state=self.analyzer.state,
                                 nodes=self.cycle_nodes(), events=self.action_events,
                                 fault=self.fault, on_average=self._publish_averages,
                                 ready=lambda: self.analyzer.frames > 0)
        self.analyzer.frame_hooks.insert(0, self.cycle.tap)
        inlets = self.cycle.inlet_names()
        for handler in self.handlers:
            handler.engine.set_measure_phases(settings.measure_phases)
            handler.monitored = handler.monitored | {
                average_node_id(node, inlet) for node in self.cycle.tap.node_ids
                if node in handler.monitored for inlet in inlets}

    def _publish_averages(self, averages: list[ComputingResult]) -> None:
        """Cycle thread: one message per measure phase on ``cycle_average[/<inlet>]``."""
        if self.mqtt is None or not averages:
            return
        stats = averages[0].average
        inlet = stats.inlet if stats is not None else None
        payload = {"cycle": stats.cycle if stats is not None else None, "inlet": inlet,
                   "phase": averages[0].phase,
                   "results": {r.source_node_id or r.node_id: r.to_dict() for r in averages}}
        self.mqtt.publish(cycle_average_topic(self.mqtt.root, inlet),
                          encode_json(stamped(payload)))

    def _restore_histories(self) -> None:
        """Put the events of earlier runs back in their actions' history (oldest first,
        before anything new), so an action's history survives a restart too."""
        by_id = {h.node_id: h for h in self.handlers}
        for entry in self.action_events.entries():
            handler = by_id.get(entry.action_id)
            if handler is not None:
                handler.history.append(HistoryEntry(entry.timestamp, entry.kind,
                                                    dict(entry.data)))

    @property
    def action_nodes(self) -> list[ActionNode]:
        """The graph's action nodes, in graph order."""
        return [n for n in self.analyzer.graph.nodes if isinstance(n, ActionNode)]

    @property
    def confinement_status(self) -> dict[str, Any]:
        """What confines the Python actions' workers on this machine (computed once)."""
        if self._confinement_status is None:
            from firmware.actions.python.confinement import Confinement

            self._confinement_status = Confinement.shared().get_status()
        return self._confinement_status

    @property
    def python_handlers(self) -> list[PythonAction]:
        """The python_action handlers."""
        return [h for h in self.handlers if isinstance(h, PythonAction)]

    def _script_changed(self, path: Path) -> None:
        """Watcher thread: reload every action running ``path`` (on the control loop)."""
        changed = path.resolve()
        for handler in self.python_handlers:
            if handler.supervisor.spec.script_path == changed:
                self.control.call(handler.reload())

    def _config_changed(self, path: Path) -> None:
        """Watcher thread: the config file changed. Re-validate it; apply what changed in
        python_action nodes (a bad file or a failing reload keeps everything running)."""
        try:
            doc = load_config(path)
        except ConfigError as exc:
            self.config_reload["last_error"] = str(exc)
            log.error("config change not applied, %s is invalid:\n%s", path, exc)
            self._stop_cycle_on_change(None)
            return
        self._stop_cycle_on_change(doc)
        for handler in self.python_handlers:
            try:
                node = doc.config.node(handler.node_id)
            except KeyError:
                log.warning("python action %s was removed from %s: restart to apply",
                            handler.node_id, path)
                continue
            raw = dict(node.parameters)
            if raw == handler.raw_parameters:
                continue
            future = self.control.call(handler.reconfigure(node.params, raw))
            future.add_done_callback(partial(self._reconfigured, handler))

    def _stop_cycle_on_change(self, doc: ConfigDocument | None) -> None:
        """A running cycle stops safely when the config file changes what drives it (the
        cycle, the hal section) or becomes invalid: restart to run the new one."""
        if self.cycle is None or not self.cycle.running:
            return
        old = self.doc.config
        if doc is not None and doc.config.cycle == old.cycle and doc.config.hal == old.hal:
            return
        reason = ("config file became invalid" if doc is None
                  else "config changed the cycle or hal section: restart to apply it")
        self.cycle.stop(reason)

    def _reconfigured(self, handler: PythonAction, future: Future[list[str]]) -> None:
        error = future.exception()
        if error is not None:
            self.config_reload["last_error"] = f"{handler.node_id}: {error}"
            log.error("python action %s keeps its running version: %s", handler.node_id,
                      error)
            return
        self.config_reload["reloads"] += 1
        log.info("python action %s reconfigured", handler.node_id)
        for message in future.result():
            log.warning("%s", message)

    def node_statistics(self, node_id: str) -> dict[str, Any]:
        """A graph node's type, timing and status (for scripts' get_node_statistics)."""
        nodes = self.analyzer.graph.get_status()["nodes"]
        if node_id not in nodes:
            raise ValueError(f"no node {node_id!r} in the graph (nodes: {', '.join(nodes)})")
        statistics: dict[str, Any] = nodes[node_id]
        return statistics

    def _selftest_done(self, report: SelftestReport) -> None:
        """A self-test finished: publish it (MQTT diagnostic entity) and refresh the status."""
        if self.mqtt is not None:
            self.mqtt.publish_state("selftest", report.to_dict())
        self.status_dirty.set()

    def fault(self) -> str | None:
        """The appliance's fault (the DSP loop stopped on an error), or None."""
        return self.analyzer.fault

    def discovery_entities(self) -> DiscoveryEntities:
        """What Home Assistant is told about: sensors per node, alarms, relays."""
        nodes = self.analyzer.graph.nodes
        alarms: list[str] = []
        for node in self.action_nodes:
            if isinstance(node.params, MqttActionParams):
                handler = next(h for h in self.handlers if h.node_id == node.node_id)
                alarms += [alarm_state_name(node.node_id, name).removeprefix("alarm_")
                           for name in getattr(handler, "alarm_names", [])]
        return DiscoveryEntities(
            concentration_nodes=[n.node_id for n in nodes if n.result_kind == "concentration"],
            peak_nodes=[n.node_id for n in nodes if n.result_kind in DETECTOR_KINDS],
            alarms=alarms,
            relays=sorted(self.doc.config.hal.relays),
            calibration_node=None if self.calibration is None else self.calibration.node.node_id,
            cycle_averages=[(node, kind, inlet) for node, kind in self.cycle_nodes().items()
                            for inlet in self.cycle.inlet_names()]
            if self.cycle is not None else [],
            selftest=True,
        )

    def start(self) -> float:
        """Start MQTT, warm up the kernels, start the actions, then the DSP thread; returns
        the warm-up time in seconds.

        The actions start after the warm-up: a data timeout counts from their start, and a
        first compile of the kernels (seconds on a Pi) is not a sensor that stopped talking.
        """
        if self.mqtt is not None:
            self.mqtt.start()
            if self.doc.config.mqtt.discovery.enabled:
                self.mqtt.set_discovery(self.discovery_entities())
        warm = self.analyzer.warm_up()
        if self.calibration is not None:
            self.calibration.start()
        self.control.start()
        for watcher in (self.watcher, self.config_watcher):
            if watcher is not None:
                watcher.start()
        self.analyzer.start()
        if self.cycle is not None:
            self.cycle.start()
        if self.doc.config.selftest.at_start:
            self.selftest.start_background()
        return warm

    def stop(self) -> None:
        """Stop the cycle and the DSP thread, the actions, put outputs safe, say offline;
        idempotent."""
        if self.cycle is not None:
            self.cycle.stop("appliance stopping")
        for watcher in (self.watcher, self.config_watcher):
            if watcher is not None:
                watcher.stop()
        self.selftest.stop()
        self.analyzer.stop()
        if self.calibration is not None:
            self.calibration.stop()
        self.control.stop()
        if self.mqtt is not None:
            self.mqtt.publish_status(self.get_status(brief=True))
        self._release()

    def _release(self) -> None:
        self.action_events.close()
        if self.hal is not None:
            self.hal.safe_state()
            self.hal.close()
        if self.mqtt is not None:
            self.mqtt.stop()

    def safe_state(self) -> None:
        """Every output off now (signal handlers, fatal paths); never raises. A running
        measurement cycle is told to stop first, so it switches nothing on again."""
        if self.cycle is not None:
            self.cycle.halt("safe state (signal or fatal error)")
        if self.hal is not None:
            self.hal.safe_state()

    def get_status(self, *, brief: bool = False) -> dict[str, Any]:
        """Appliance status: analyzer, actions, HAL, MQTT (``brief``: without results)."""
        status = self.analyzer.get_status()
        if brief:
            status.pop("results", None)
            status.pop("graph", None)
        status["control"] = self.control.get_status()
        status["hal"] = self.hal.get_status() if self.hal is not None else None
        status["mqtt"] = self.mqtt.get_status() if self.mqtt is not None else None
        status["config_reload"] = dict(self.config_reload)
        if self.python_handlers:
            status["script_sandbox"] = self.confinement_status
        status["events"] = self.action_events.get_status()
        status["cycle"] = self.cycle.get_status() if self.cycle is not None else None
        status["selftest"] = self.selftest.get_status()
        for name, part in self.status_parts.items():
            status[name] = part()
        return status
