"""What an operator may change on a running appliance: acknowledge an action's alarm, enable
or disable an action, reload a Python action's script, pulse a relay for a test.

Called from other threads (the web server); each change runs on the control loop, where the
actions live, and returns a concurrent Future. Which actions are disabled survives a restart
(``operator.json`` in the state directory): an operator who silenced a faulty action does not
see it come back by itself.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import tempfile
from collections.abc import Callable, Coroutine, Sequence
from concurrent.futures import Future
from pathlib import Path
from typing import Any, TypeVar

from firmware.actions.base import ActionHandler
from firmware.actions.event_log import ActionEventLog
from firmware.actions.nodes.relay_action import RelayAction
from firmware.actions.python.action_node import PythonAction
from firmware.errors import ActionError, HalError
from firmware.hal.hal import Hal

log = logging.getLogger("pafw.operator")

T = TypeVar("T")
#: runs a coroutine on the control loop from any thread (``ControlLoop.call``)
RunOnControlLoop = Callable[[Coroutine[Any, Any, Any]], Future[Any]]

STATE_FILE = "operator.json"


class OperationRefusedError(ActionError):
    """Raised when an operation does not apply (unknown action or relay, nothing to
    acknowledge, not a Python action, relay busy); ``status`` is the HTTP status to answer."""

    def __init__(self, message: str, *, status: int = 409) -> None:
        super().__init__(message)
        self.status = status


class Operations:
    """The appliance's operator façade (thread-safe: everything runs on the control loop)."""

    def __init__(self, *, handlers: Sequence[ActionHandler], hal: Hal | None,
                 events: ActionEventLog, state_dir: Path, run: RunOnControlLoop) -> None:
        self.handlers = handlers
        self.hal = hal
        self.events = events
        self.path = Path(state_dir) / STATE_FILE
        self._run_on_loop = run
        self._save_lock = asyncio.Lock()

    # ------------------------------------------------------------------ persistence
    def restore(self) -> None:
        """Disable the actions an operator disabled before the last stop (before start)."""
        disabled = self._load().get("disabled", [])
        if not isinstance(disabled, list) or not all(isinstance(i, str) for i in disabled):
            log.warning("ignoring %s: 'disabled' is not a list of action ids", self.path)
            disabled = []
        for handler in self.handlers:
            if handler.node_id in disabled:
                handler.enabled = False
                log.warning("action %s stays disabled (by an operator, %s)", handler.node_id,
                            self.path)

    def _load(self) -> dict[str, Any]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            log.warning("ignoring %s: %s", self.path, exc)
            return {}
        return data if isinstance(data, dict) else {}

    def _save(self) -> None:
        """Write the disabled actions atomically (a unique temporary file, fsync, rename,
        fsync of the directory); raises OSError."""
        disabled = sorted(h.node_id for h in self.handlers if not h.enabled)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{STATE_FILE}.", dir=self.path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                out.write(json.dumps({"disabled": disabled}) + "\n")
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        directory = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)

    # ---------------------------------------------------------------------- lookups
    def handler(self, action_id: str) -> ActionHandler:
        """The action ``action_id``; OperationRefusedError (404) when there is none."""
        for handler in self.handlers:
            if handler.node_id == action_id:
                return handler
        known = ", ".join(h.node_id for h in self.handlers) or "none"
        raise OperationRefusedError(f"no action {action_id!r} (actions: {known})", status=404)

    def _run(self, coro: Coroutine[Any, Any, T]) -> Future[T]:
        return self._run_on_loop(coro)

    # ------------------------------------------------------------------- operations
    def acknowledge(self, action_id: str) -> Future[list[str]]:
        """Acknowledge the action's active triggers; OperationRefusedError (409) if none."""
        handler = self.handler(action_id)

        async def run() -> list[str]:
            names = await handler.acknowledge()
            if not names:
                raise OperationRefusedError(f"action {action_id!r} has no active alarm to "
                                       "acknowledge")
            log.info("action %s: %s acknowledged", action_id, ", ".join(names))
            return names

        return self._run(run())

    def acknowledge_all(self) -> Future[dict[str, list[str]]]:
        """Acknowledge the active triggers of every enabled action (the dashboard's one
        button); OperationRefusedError (409) when no action has any."""

        async def run() -> dict[str, list[str]]:
            done: dict[str, list[str]] = {}
            for handler in self.handlers:
                if handler.enabled and handler.unacknowledged_active:
                    done[handler.node_id] = await handler.acknowledge()
            if not done:
                raise OperationRefusedError("no unacknowledged alarm is active")
            log.info("alarms acknowledged: %s", done)
            return done

        return self._run(run())

    def set_enabled(self, action_id: str, enabled: bool) -> Future[None]:
        """Enable or disable an action, and remember it across restarts."""
        handler = self.handler(action_id)

        async def run() -> None:
            async with self._save_lock:  # one change and its save at a time
                await handler.set_enabled(enabled)
                log.warning("action %s %s by an operator", action_id,
                            "enabled" if enabled else "disabled")
                try:
                    await asyncio.to_thread(self._save)
                except OSError as exc:
                    log.error("cannot remember the disabled actions in %s: %s", self.path, exc)
                    raise OperationRefusedError(
                        f"action {action_id!r} is {'enabled' if enabled else 'disabled'} now, "
                        f"but it cannot be remembered across a restart: {exc}",
                        status=500) from None

        return self._run(run())

    def reload(self, action_id: str) -> Future[None]:
        """Reload a Python action's script (the running version stays if the new one fails:
        the error is raised)."""
        handler = self.handler(action_id)
        if not isinstance(handler, PythonAction):
            raise OperationRefusedError(f"action {action_id!r} is a {handler.type_name}; only "
                                   "python_action scripts can be reloaded")

        async def run() -> None:
            try:
                await handler.reload()
            except Exception as exc:
                handler.events.record(action_id, "reload_failed", {"error": str(exc)})
                raise
            handler.events.record(action_id, "reloaded",
                                  {"script": str(handler.supervisor.spec.script_path)})

        return self._run(run())

    def pulse_relay(self, name: str, seconds: float) -> Future[str]:
        """Pulse a relay for a test (only while it is off: a test must not cut an alarm
        short); returns the relay's state after the request ("deferred" while its
        min_off_s protection delays the pulse)."""
        hal = self.hal
        if hal is None or name not in hal.relays:
            known = ", ".join(sorted(hal.relays)) if hal is not None else "none"
            raise OperationRefusedError(f"no relay {name!r} (relays: {known})", status=404)
        relay = hal.relay(name)
        max_pulse = relay.settings.max_pulse_s
        if seconds > max_pulse:
            raise OperationRefusedError(f"relay {name!r} pulses are limited to {max_pulse:g} s "
                                   f"(hal.relays.{name}.max_pulse_s)", status=422)

        async def run() -> str:
            holders = [h.node_id for h in self.handlers
                       if isinstance(h, RelayAction) and h.params.relay == name and h.held]
            if holders:
                raise OperationRefusedError(f"relay {name!r} is held on by {', '.join(holders)}; "
                                            "a test pulse is only possible while it is off")
            try:
                accepted = await asyncio.to_thread(relay.pulse, seconds, only_if_off=True)
            except HalError as exc:
                raise OperationRefusedError(f"relay {name!r}: {exc}") from None
            if not accepted:
                raise OperationRefusedError(f"relay {name!r} is on or about to switch on; a "
                                            "test pulse is only possible while it is off")
            log.warning("relay %s pulsed for %.3g s by an operator", name, seconds)
            status = relay.get_status()
            # a pulse asked too soon after the last switch waits for min_off_s (HAL)
            state = "deferred" if status["pending"] == "on" else str(status["state"])
            self.events.record(f"relay:{name}", "test_pulse",
                                                {"seconds": seconds, "state": state})
            return state

        return self._run(run())
