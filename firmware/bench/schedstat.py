"""CPU time of threads and processes from the kernel's schedstat files (nanosecond run time,
not the 10 ms ticks of /proc/*/stat), for benches that attribute CPU to a thread or worker."""

from __future__ import annotations

import os
import threading


def schedstat(path: str | None) -> tuple[float, float] | None:
    """Seconds a thread has run on a CPU and has waited, runnable, for one (None: no such
    thread any more, or no path)."""
    if path is None:
        return None
    try:
        with open(path, encoding="ascii") as stats:
            run_ns, wait_ns = stats.read().split()[:2]
        return int(run_ns) / 1e9, int(wait_ns) / 1e9
    except (OSError, ValueError):
        return None


def thread_schedstat_path(name: str) -> str | None:
    """The kernel's schedstat file of this process's thread called ``name`` (None: no such
    thread)."""
    for thread in threading.enumerate():
        if thread.name == name and thread.native_id is not None:
            return f"/proc/self/task/{thread.native_id}/schedstat"
    return None


def process_cpu_s(pid: int) -> float:
    """Seconds every thread of process ``pid`` has run so far (0.0 once it is gone)."""
    total = 0.0
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return 0.0
    for task in tasks:
        times = schedstat(f"/proc/{pid}/task/{task}/schedstat")
        if times is not None:
            total += times[0]
    return total
