"""WorkerSpec: everything one Python-action worker needs, from its script to its limits.

The host starts a worker from it, the confinement prepares the worker's uid, directories,
cgroup and egress from it, and the worker receives its ``init_message``. Built from an action
node's parameters by ``action_node.worker_spec`` (the appliance and ``pafw script check``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from firmware.actions.python.protocol import DEFAULT_MAX_FRAME_BYTES


@dataclass(frozen=True)
class WorkerSpec:
    """Everything one worker needs; ``script_path`` is already resolved (resolve_script)."""

    node_id: str
    script_path: Path
    class_name: str
    scripts_dir: Path
    python_config: dict[str, Any] = field(default_factory=dict)
    parameters: dict[str, Any] = field(default_factory=dict)
    monitored_nodes: list[str] = field(default_factory=list)
    allowed_imports: list[str] = field(default_factory=list)
    #: for containment tests and diagnostics only (see imports.py)
    unsafe_allow_refused_imports: list[str] = field(default_factory=list)
    network: bool = False
    #: "host:port" entries the network grant is limited to (empty: any host, when network)
    network_hosts: list[str] = field(default_factory=list)
    timeout_ms: int = 5000
    max_memory_mb: int = 64
    #: threads the script may start (pids.max adds 4 tasks, RLIMIT_NPROC of the uid 8)
    max_threads: int = 16
    #: CPU the worker may use, in percent of one core (the cgroup's cpu.max)
    max_cpu_percent: int = 50
    #: size of the private scratch directory (TMPDIR), emptied at each start
    scratch_mb: int = 16
    #: size of the action's persistent data directory (its working directory; where it
    #: lives is the Confinement's choice), 0 for none
    data_mb: int = 0
    run_as_user: str | None = None
    max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES
    log_lines_per_s: int = 20

    def init_message(self) -> dict[str, Any]:
        """The ``init`` frame."""
        return {"t": "init", "node_id": self.node_id, "script_path": str(self.script_path),
                "scripts_dir": str(self.scripts_dir), "class_name": self.class_name,
                "python_config": self.python_config, "parameters": self.parameters,
                "monitored_nodes": list(self.monitored_nodes),
                "allowed_imports": list(self.allowed_imports),
                "unsafe_allow_refused_imports": list(self.unsafe_allow_refused_imports),
                "network": self.network, "max_memory_mb": self.max_memory_mb,
                "max_threads": self.max_threads, "data_mb": self.data_mb,
                "run_as_user": self.run_as_user,
                "log_lines_per_s": self.log_lines_per_s, "timeout_ms": self.timeout_ms}
