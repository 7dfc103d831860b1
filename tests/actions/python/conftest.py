"""Helpers of the PythonAction tests: specs for the test scripts, a fake appliance API that
answers the workers' requests, and a ticker proving the event loop stays responsive."""

from __future__ import annotations

import asyncio
import logging
import os
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from firmware.actions.python.spec import WorkerSpec

SCRIPTS = Path(__file__).parent / "scripts"
IS_ROOT = os.geteuid() == 0
LOGGER = logging.getLogger("tests.actions.python")


def make_spec(script: str, class_name: str, **changes: Any) -> WorkerSpec:
    """A spec for one of the scripts in tests/actions/python/scripts."""
    spec = WorkerSpec(node_id=changes.pop("node_id", "py_test"), script_path=SCRIPTS / script,
                      class_name=class_name, scripts_dir=SCRIPTS, timeout_ms=2000,
                      monitored_nodes=["co2_peak_finder", "co2_concentration"])
    return replace(spec, **changes)


class FakeApi:
    """Answers API requests like the appliance would, and records them. Relay "pump" is
    granted, any other relay is refused with PermissionError."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, list[Any], dict[str, Any]]] = []
        self.store: dict[str, Any] = {}

    async def handle(self, method: str, args: list[Any], kwargs: dict[str, Any]) -> Any:
        self.requests.append((method, args, kwargs))
        if method == "get_concentration_data":
            return 1234.5 if args[0] == "co2_concentration" else None
        if method in ("relay_on", "relay_off", "relay_pulse"):
            if args[0] != "pump":
                raise PermissionError(f"relay {args[0]!r} is not in this action's "
                                      f"capabilities (granted: pump)")
            return None
        if method == "store_get":
            return self.store.get(args[0], args[1])
        if method == "store_set":
            self.store[args[0]] = args[1]
            return None
        if method == "store_keys":
            return sorted(self.store)
        if method == "get_history_count":
            return 3
        if method == "get_recent_entries":
            return [{"kind": "update", "n": i} for i in range(args[0])]
        if method == "trigger_notification":
            return True
        if method == "get_node_statistics":
            raise ValueError(f"unknown node {args[0]!r}")
        return None


class Ticker:
    """A task ticking every 10 ms; ``max_gap_s`` is the longest the loop kept it waiting."""

    def __init__(self) -> None:
        self.max_gap_s = 0.0
        self.ticks = 0
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        while True:
            before = time.monotonic()
            await asyncio.sleep(0.01)
            self.max_gap_s = max(self.max_gap_s, time.monotonic() - before - 0.01)
            self.ticks += 1

    async def __aenter__(self) -> Ticker:
        self._task = asyncio.create_task(self._run())
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()


@pytest.fixture
def api() -> FakeApi:
    return FakeApi()


@pytest.fixture
def logger(caplog: pytest.LogCaptureFixture) -> logging.Logger:
    caplog.set_level(logging.DEBUG, logger=LOGGER.name)
    return LOGGER
