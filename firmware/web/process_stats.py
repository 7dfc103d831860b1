"""The appliance process's CPU and memory, read from /proc (Linux) without extra packages."""

from __future__ import annotations

import os
import time
from typing import Any


def rss_bytes() -> int | None:
    """This process's resident set size in bytes (None where /proc cannot tell)."""
    try:
        with open("/proc/self/statm", encoding="ascii") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None


def _threads() -> int:
    try:
        return len(os.listdir("/proc/self/task"))
    except OSError:
        return 0


class ProcessSampler:
    """CPU percent of the whole process between two ``sample`` calls, RSS, threads."""

    def __init__(self) -> None:
        self._last_wall = time.monotonic()
        self._last_cpu = time.process_time()
        self.cpu_percent: float | None = None

    def sample(self) -> None:
        """Update the CPU figure (call it every second or so)."""
        wall, cpu = time.monotonic(), time.process_time()
        elapsed = wall - self._last_wall
        if elapsed > 0.05:
            self.cpu_percent = round(100.0 * (cpu - self._last_cpu) / elapsed, 1)
            self._last_wall, self._last_cpu = wall, cpu

    def get_status(self) -> dict[str, Any]:
        """``ProcessStatus`` of the API."""
        try:
            load = [round(v, 2) for v in os.getloadavg()]
        except OSError:
            load = []
        return {"cpu_percent": self.cpu_percent, "rss_bytes": rss_bytes(),
                "threads": _threads(), "load_average": load}
