"""A small progress bar for offline commands, drawn on stderr only when it is a terminal."""

from __future__ import annotations

import sys
import time
from typing import TextIO


class ProgressBar:
    """``analyze  42% [########------------]  12.3/29.1 s audio  850x real time``."""

    def __init__(self, total_s: float, *, label: str, stream: TextIO | None = None) -> None:
        self.total_s = max(total_s, 1e-9)
        self.label = label
        self.stream = stream or sys.stderr
        self.enabled = self.stream.isatty()
        self._start = time.perf_counter()
        self._last_draw = 0.0

    def update(self, done_s: float, *, force: bool = False) -> None:
        """Redraw at most 10 times a second."""
        if not self.enabled:
            return
        now = time.perf_counter()
        if not force and now - self._last_draw < 0.1:
            return
        self._last_draw = now
        fraction = min(done_s / self.total_s, 1.0)
        filled = int(fraction * 30)
        speed = done_s / max(now - self._start, 1e-9)
        self.stream.write(
            f"\r{self.label} {fraction:4.0%} [{'#' * filled}{'-' * (30 - filled)}] "
            f"{done_s:7.1f}/{self.total_s:.1f} s audio {speed:7.0f}x real time"
        )
        self.stream.flush()

    def close(self, done_s: float) -> None:
        """Draw the final state and end the line."""
        if self.enabled:
            self.update(done_s, force=True)
            self.stream.write("\n")
            self.stream.flush()
