"""PythonAction: customer Python scripts run in isolated worker processes.

Modules (one concept each):

* ``protocol``   length-prefixed msgpack frames, message schema, size caps, error types
* ``worker``     the worker process: sandbox, script loading, call loop
* ``sandbox``    rlimits, no_new_privs, network namespace, uid drop, audit hook, script paths
* ``imports``    import allow-list, refused modules, static check, runtime import guard
* ``sdk``        CustomPythonAction and PhotoacousticAPI as script authors see them
* ``host``       PythonWorker: one worker process driven from the control loop
* ``supervisor`` WorkerSupervisor: restarts with backoff, failed state, memory watchdog,
  hot reload, statistics

The public names below are loaded lazily: the worker process imports this package too, and
must not pay for asyncio and the host side.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_EXPORTS = {
    "PythonWorker": "host", "WorkerSpec": "spec",
    "WorkerSupervisor": "supervisor", "ActionFailedError": "supervisor",
    "ReloadError": "protocol",
    "WorkerError": "protocol", "ScriptLoadError": "protocol", "ScriptCallError": "protocol",
    "WorkerTimeout": "protocol", "WorkerCrashed": "protocol", "ProtocolError": "protocol",
    "FrameTooLargeError": "protocol",
    "ScriptPathError": "sandbox", "resolve_script": "sandbox",
    "check_script": "imports", "Problem": "imports", "ImportPolicy": "imports",
    "CustomPythonAction": "sdk", "PhotoacousticAPI": "sdk", "RustPhotoacousticAPI": "sdk",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(f"{__name__}.{module}"), name)
