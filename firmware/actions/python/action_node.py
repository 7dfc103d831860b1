"""python_action: a customer's Python class, run in its own worker process.

The node's parameters follow the design study (python_script_path, python_class_name,
python_config, python_timeout_ms, max_memory_mb, allowed_imports, the shared action
parameters) plus ``capabilities``, the side effects the script is granted. The handler feeds
the worker: trigger/clear/repeat events become ``on_trigger``/``on_clear`` calls, the latest
results ``on_update`` calls (at most one in flight: a slow script sees fewer, newer updates
and never delays the events), and answers the script's API requests (api_host.py).
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import Field, model_validator

from firmware.actions.base import (
    ActionContext,
    ActionHandler,
    ActionNode,
    ActionParams,
)
from firmware.actions.python.grants import Capabilities, Grants
from firmware.actions.python.imports import ImportPolicy
from firmware.actions.python.spec import WorkerSpec
from firmware.actions.triggers import TriggerEvent
from firmware.dsp.registry import register
from firmware.errors import ActionError, ScriptError
from firmware.state import ComputingResult
from firmware.stats import latency_summary

if TYPE_CHECKING:
    from firmware.actions.config_view import ConfigView
    from firmware.actions.python.supervisor import WorkerSupervisor

#: the design study writes script paths as /user_scripts/<file>: that prefix means the
#: configured scripts directory
STUDY_PREFIX = "/user_scripts/"
STATUS_REFRESH_S = 5.0
#: parameters the running action cannot change without rebuilding its graph node
RESTART_KEYS = ("monitored_nodes", "triggers", "concentration_threshold",
                "amplitude_threshold", "buffer_size", "store_max_kb")


class PythonActionParams(ActionParams):
    """The design study's PythonAction parameters, plus ``capabilities``."""

    python_script_path: str = Field(min_length=1, description="file in paths.scripts_dir")
    python_class_name: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    python_config: dict[str, Any] = Field(default_factory=dict)
    python_timeout_ms: int = Field(5000, ge=1, le=30000)
    max_memory_mb: int = Field(64, ge=16, le=512)
    max_threads: int = Field(16, ge=1, le=256, description="threads the script may start")
    max_cpu_percent: int = Field(50, ge=5, le=400,
                                 description="CPU of the worker, in percent of one core")
    scratch_mb: int = Field(16, ge=1, le=1024,
                            description="private scratch directory (TMPDIR), the only "
                                        "place the script may write")
    allowed_imports: list[str] = Field(default_factory=list)
    capabilities: Capabilities = Field(default_factory=Capabilities)
    store_max_kb: int = Field(64, ge=1, le=10_240, description="api.store size cap")
    unsafe_allow_refused_imports: list[str] = Field(
        default_factory=list,
        description="diagnostics only: lets a script import refused modules (os, ctypes...)",
    )

    @model_validator(mode="after")
    def _import_lists(self) -> PythonActionParams:
        """Module names only, and nothing the import policy refuses (os, ctypes, ...):
        the worker would refuse it at load, so say so at config time."""
        problems = ImportPolicy(self.allowed_imports,
                                self.unsafe_allow_refused_imports).config_problems()
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def cross_check(self, config: ConfigView) -> list[tuple[str, str]]:
        """Granted relays/LEDs must exist; an MQTT grant needs MQTT; the script must be in
        the scripts directory."""
        problems: list[tuple[str, str]] = []
        caps = self.capabilities
        for name in caps.relays:
            if name not in config.hal.relays:
                problems.append(("capabilities", f"granted relay {name!r} is not in hal.relays "
                                 f"({', '.join(sorted(config.hal.relays)) or 'none'})"))
        for name in caps.leds:
            if name not in config.hal.leds:
                problems.append(("capabilities", f"granted LED {name!r} is not in hal.leds "
                                 f"({', '.join(sorted(config.hal.leds)) or 'none'})"))
        if caps.mqtt_publish and not config.mqtt.enabled:
            problems.append(("capabilities", "mqtt_publish is granted but mqtt.enabled is "
                                             "false"))
        try:
            script_location(config.paths.scripts_dir, self.python_script_path)
        except ScriptError as exc:
            problems.append(("python_script_path", str(exc)))
        return problems


def script_location(scripts_dir: Path, configured: str) -> Path:
    """Where a configured script path points, inside ``scripts_dir`` (ScriptError if not).

    ``/user_scripts/x.py`` (the study's spelling) and ``x.py`` both mean
    ``<scripts_dir>/x.py``; an absolute path must lie in ``scripts_dir``. Symlinks are
    resolved, so a link pointing outside is refused too (checked again when loading).
    """
    base = scripts_dir.resolve()
    if configured.startswith(STUDY_PREFIX):
        candidate = base / configured[len(STUDY_PREFIX):]
    else:
        candidate = Path(configured)
        if not candidate.is_absolute():
            candidate = base / candidate
    resolved = candidate.resolve()
    if resolved.suffix != ".py":
        raise ScriptError(f"{configured}: a script must be a .py file")
    if not resolved.is_relative_to(base):
        raise ScriptError(f"{configured} resolves to {resolved}, outside the scripts "
                          f"directory {base}")
    return resolved


def worker_spec(node_id: str, params: PythonActionParams, *, scripts_dir: Path,
                raw_parameters: dict[str, Any], monitored_nodes: list[str],
                run_as_user: str | None, script_path: Path | None = None) -> WorkerSpec:
    """The one place a node's parameters become a worker spec: ``pafw run`` and
    ``pafw script check`` start identical workers from it."""
    return WorkerSpec(
        node_id=node_id,
        script_path=script_path or script_location(scripts_dir, params.python_script_path),
        class_name=params.python_class_name,
        scripts_dir=scripts_dir,
        python_config=dict(params.python_config),
        parameters=dict(raw_parameters),
        monitored_nodes=list(monitored_nodes),
        allowed_imports=list(params.allowed_imports),
        unsafe_allow_refused_imports=list(params.unsafe_allow_refused_imports),
        network=bool(params.capabilities.network),
        network_hosts=params.capabilities.network_hosts,
        timeout_ms=params.python_timeout_ms,
        max_memory_mb=params.max_memory_mb,
        max_threads=params.max_threads,
        max_cpu_percent=params.max_cpu_percent,
        scratch_mb=params.scratch_mb,
        data_mb=params.capabilities.data_mb,
        run_as_user=run_as_user,
    )


class PythonAction(ActionHandler):
    """Runs the script through a WorkerSupervisor (restarts, limits, hot reload)."""

    def __init__(self, node: ActionNode, ctx: ActionContext) -> None:
        # the worker machinery (supervision, sandbox, cgroups) loads with the first python
        # action: an appliance without one never imports it
        from firmware.actions.python.api_host import ScriptApiHost
        from firmware.actions.python.store import ScriptStore
        from firmware.actions.python.supervisor import WorkerSupervisor

        super().__init__(node, ctx)
        params: PythonActionParams = self.params
        if ctx.scripts is None:
            raise ActionError(f"python action {self.node_id}: no scripts directory is "
                              "configured here")
        state_dir = ctx.state_dir
        self.state_dir = state_dir
        self.scripts_dir: Path = ctx.scripts.scripts_dir
        self.run_as_user = ctx.scripts.run_as_user
        self.raw_parameters: dict[str, Any] = dict(ctx.raw_parameters.get(self.node_id, {}))
        self.grants = Grants(self.node_id, params.capabilities)
        self.store = ScriptStore(state_dir / "python_actions" / self.node_id / "store.json",
                                 max_bytes=params.store_max_kb * 1024)
        self.api = ScriptApiHost(self.node_id, ctx, grants=self.grants, history=self.history,
                                 store=self.store)
        self.supervisor: WorkerSupervisor = WorkerSupervisor(
            self.spec(), handle_request=self.api.handle, logger=self.api.script_log)
        self._update_task: asyncio.Task[None] | None = None
        self._status_task: asyncio.Task[None] | None = None
        self._pending_update: dict[str, Any] | None = None
        self.updates_sent = self.updates_skipped = 0
        self.script_status: dict[str, Any] | None = None
        self._status_due = 0.0
        #: wall-clock seconds from a trigger's data (its frame) to on_trigger's return
        self.trigger_latency_s: deque[float] = deque(maxlen=256)

    def spec(self, params: PythonActionParams | None = None,
             raw_parameters: dict[str, Any] | None = None) -> WorkerSpec:
        """The worker spec of this action (of ``params`` for a reload)."""
        return worker_spec(self.node_id, params or self.params, scripts_dir=self.scripts_dir,
                           raw_parameters=(raw_parameters if raw_parameters is not None
                                           else self.raw_parameters),
                           monitored_nodes=list(self.monitored_nodes),
                           run_as_user=self.run_as_user)

    async def start(self) -> None:
        await self.supervisor.start()

    async def stop(self) -> None:
        for task in (self._update_task, self._status_task):
            if task is not None:
                task.cancel()
        await self.supervisor.stop()

    async def reload(self) -> None:
        """Re-read the script (same parameters): new worker, smoke test, swap; the running
        version stays if anything fails."""
        try:
            await self.supervisor.replace(self.spec())
        finally:
            self._status_changed()

    def _status_changed(self) -> None:
        """Tell the service its status snapshot is out of date (reloads are awaited by
        `pafw script push`)."""
        self.ctx.status_changed()

    async def reconfigure(self, params: PythonActionParams, raw: dict[str, Any]) -> list[str]:
        """Apply a changed node config: keys of the worker (script, class, python_config,
        limits, imports, capabilities) take effect through a new worker, swapped in only if it
        starts and answers; changes to triggers or monitored nodes need a restart (returned
        as messages). Raises the reload error and keeps the running version on failure."""
        old = self.params.model_dump(include=set(RESTART_KEYS))
        new = params.model_dump(include=set(RESTART_KEYS))
        needs_restart = [f"{self.node_id}.{key} changed: restart the appliance to apply it"
                         for key in RESTART_KEYS if old.get(key) != new.get(key)]
        try:
            await self.supervisor.replace(self.spec(params, raw))
        finally:
            self._status_changed()
        self.params = params
        self.raw_parameters = raw
        self.grants.capabilities = params.capabilities
        return needs_restart

    async def on_event(self, event: TriggerEvent) -> bool:
        data = event.to_dict()
        if event.kind == "clear":
            result = await self.supervisor.call("on_clear", event.trigger_type, data)
            return result is None or bool(result)
        if event.kind == "repeat":
            data["repeat"] = True
        result = await self.supervisor.call("on_trigger", event.trigger_type, data)
        self.trigger_latency_s.append(time.time() - event.timestamp)
        return bool(result)

    async def on_update(self, latest: dict[str, ComputingResult]) -> None:
        payload = {k: r.to_dict() for k, r in latest.items()}
        if self._update_task is not None and not self._update_task.done():
            if self._pending_update is not None:
                self.updates_skipped += 1
            self._pending_update = payload
            return
        self._update_task = asyncio.create_task(self._send_updates(payload))

    async def _send_updates(self, payload: dict[str, Any]) -> None:
        next_payload: dict[str, Any] | None = payload
        while next_payload is not None:
            self._pending_update = None
            try:
                await self.supervisor.call("on_update", next_payload)
                self.updates_sent += 1
            except Exception as exc:  # recorded by the supervisor; updates keep flowing
                self.last_error = f"{type(exc).__name__}: {exc}"
            next_payload = self._pending_update

    def needs_fast_ticks(self) -> bool:
        """Only for the trigger engine's data timeouts and repeats: the status refresh
        (every STATUS_REFRESH_S) is content with the loop's slow ticks."""
        return self.engine.time_driven

    async def on_tick(self, now: float) -> None:
        """Refresh the script's status in the background: the tick (data timeouts, every
        action's status) never waits behind a long call of this worker; readers get the
        last status the script reported."""
        if now < self._status_due or self.supervisor.state != "running":
            return
        if self._status_task is not None and not self._status_task.done():
            return
        self._status_due = now + STATUS_REFRESH_S
        self._status_task = asyncio.create_task(self._refresh_status())

    async def _refresh_status(self) -> None:
        try:
            self.script_status = await self.supervisor.call("get_status")
        except Exception as exc:
            self.last_error = f"{type(exc).__name__}: {exc}"

    def error_info(self) -> dict[str, Any] | None:
        """The worker's last error (with the script's file and line) when it has one, else
        the handler's."""
        error = self.supervisor.last_error
        if error is None:
            return super().error_info()
        return {"type": error.get("type"), "message": str(error.get("message") or ""),
                "file": error.get("file"), "line": error.get("line"),
                "time": self.supervisor.last_error_at}

    @property
    def failed(self) -> bool:
        return self.supervisor.state == "failed"

    def get_status(self) -> dict[str, Any]:
        return {
            **super().get_status(),
            "script": str(self.supervisor.spec.script_path),
            "class": self.params.python_class_name,
            "worker": self.supervisor.get_status(),
            "denied_calls": self.grants.denied,
            "last_denied": self.grants.last_denied,
            "api_requests": self.api.requests,
            "updates_sent": self.updates_sent,
            "updates_skipped": self.updates_skipped,
            "script_status": self.script_status,
            "store": self.store.get_status(),
            "trigger_latency_ms": latency_summary(self.trigger_latency_s),
            "checked_at": round(time.time(), 3),
        }


@register
class PythonActionNode(ActionNode):
    """Graph node of a python_action."""

    type_name = "python_action"
    Params = PythonActionParams
    Handler = PythonAction
