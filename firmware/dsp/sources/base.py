"""The audio-source contract shared by the simulator, WAV files and ALSA capture.

A source owns one :class:`~firmware.dsp.frame.Frame`, allocated at ``open()``, and refills its
buffer on every ``read()``: the DSP thread allocates nothing per frame. The base class keeps the
bookkeeping every source needs (sequence numbers, timestamps, counters, status) so each concrete
source only implements ``_open``, ``_fill`` and ``_close``.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from types import TracebackType
from typing import Any

import numpy as np
from numba import njit

from firmware.dsp.frame import Frame
from firmware.errors import SourceError


class RealtimePacer:
    """Sleeps until each frame's due time so a synthetic source runs at the real sample rate.

    Due times sit on a fixed grid ``t0 + k * period_s`` of the monotonic clock, so sleeping
    jitter never accumulates into drift. When the consumer falls more than ``max_lag_s``
    behind, the grid is moved to "now" (counted in ``resyncs``) instead of bursting frames out
    to catch up.

    >>> pacer = RealtimePacer(0.01, enabled=False)
    >>> pacer.wait()
    0.0
    """

    def __init__(
        self,
        period_s: float,
        *,
        enabled: bool = True,
        max_lag_s: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if period_s <= 0:
            raise ValueError(f"RealtimePacer period_s must be > 0, got {period_s!r}")
        self.period_s = float(period_s)
        self.enabled = enabled
        self.max_lag_s = float(max_lag_s)
        self._clock = clock
        self._sleep = sleep
        self._t0: float | None = None
        self._k = 0
        self.resyncs = 0
        self.late_frames = 0

    def reset(self) -> None:
        """Start a new grid at the next ``wait()``."""
        self._t0 = None
        self._k = 0

    def wait(self) -> float:
        """Block until the next frame is due; returns how late (s) the call already was."""
        if not self.enabled:
            return 0.0
        now = self._clock()
        if self._t0 is None:
            self._t0 = now
        self._k += 1
        due = self._t0 + self._k * self.period_s
        lag = now - due
        if lag > self.max_lag_s:
            self.resyncs += 1
            self._t0, self._k = now, 0
            return lag
        if lag > 0:
            self.late_frames += 1
            return lag
        while True:  # sleep() may wake early; loop on the deadline, never on a duration
            remaining = due - self._clock()
            if remaining <= 0:
                return 0.0
            self._sleep(remaining)


class AudioSource(ABC):
    """Base of every audio source: open, read frames until ``None``, close.

    Subclasses implement ``_open`` (acquire the resource), ``_fill(frame) -> bool`` (refill
    ``frame.samples`` in place; False means end of stream) and ``_close`` (release). The base
    sets sequence, timestamps, counts frames, paces when ``realtime`` and offers ``get_status``.
    """

    #: short name used in status and messages ("simulator", "wav", "alsa")
    kind: str = "source"

    def __init__(self, *, sample_rate: int, frame_size: int, realtime: bool = False) -> None:
        if sample_rate <= 0:
            raise SourceError(f"{self.kind}: sample_rate must be > 0, got {sample_rate!r}")
        if frame_size <= 0:
            raise SourceError(f"{self.kind}: frame_size must be > 0, got {frame_size!r}")
        self._sample_rate = int(sample_rate)
        self._frame_size = int(frame_size)
        self.realtime = bool(realtime)
        self._pacer = RealtimePacer(frame_size / sample_rate, enabled=self.realtime)
        self._frame: Frame | None = None
        self._sequence = 0
        self._ended = False
        self.frames_read = 0
        self.overruns = 0
        self.reopens = 0
        self.last_error: str | None = None

    @property
    def sample_rate(self) -> int:
        """Samples per second per channel."""
        return self._sample_rate

    @property
    def frame_size(self) -> int:
        """Samples per channel in each frame."""
        return self._frame_size

    @property
    def is_open(self) -> bool:
        """True between ``open()`` and ``close()``."""
        return self._frame is not None

    def open(self) -> None:
        """Acquire the resource and allocate the frame; opening twice is a no-op."""
        if self._frame is not None:
            return
        frame = Frame.empty(self._frame_size, self._sample_rate)
        self._open(frame)
        self._frame = frame
        self._sequence = 0
        self._ended = False
        self._pacer.reset()

    def read(self) -> Frame | None:
        """Return the next frame (the same object every time, refilled) or None at the end."""
        frame = self._frame
        if frame is None:
            raise SourceError(f"{self.kind}: read() on a source that is not open; call open()")
        if self._ended:
            return None
        if self.realtime:
            # as a capture device does, hand out a period once it has elapsed, and make its
            # samples then: filling first and sleeping after kept the loop busy (the
            # simulator's synthesis, ~0.7 ms) right when the control loop had just been woken
            # for the previous frame's results, which delayed every action by that much
            self._pacer.wait()
        if not self._fill(frame):
            self._ended = True
            return None
        frame.sequence = self._sequence
        frame.timestamp = time.monotonic()
        frame.wall_time = time.time()
        self._sequence += 1
        self.frames_read += 1
        return frame

    def close(self) -> None:
        """Release the resource; safe to call any number of times."""
        if self._frame is None:
            return
        self._frame = None
        self._close()

    def __enter__(self) -> AudioSource:
        self.open()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def get_status(self) -> dict[str, Any]:
        """A fresh JSON-safe dict describing the source (see docs/status.md)."""
        return {
            "kind": self.kind,
            "open": self.is_open,
            "ended": self._ended,
            "sample_rate": self._sample_rate,
            "frame_size": self._frame_size,
            "realtime": self.realtime,
            "frames_read": self.frames_read,
            "overruns": self.overruns,
            "reopens": self.reopens,
            "pacer_resyncs": self._pacer.resyncs,
            "pacer_late_frames": self._pacer.late_frames,
            "last_error": self.last_error,
            **self._extra_status(),
        }

    def _extra_status(self) -> dict[str, Any]:
        """Source-specific status keys (override)."""
        return {}

    @abstractmethod
    def warm_up(self) -> None:
        """Compile (or load from numba's cache) the kernels ``read()`` runs, on scratch
        buffers of the types ``read()`` passes them, touching neither the device, the file
        position nor the stream's state.

        The analyzer calls it before the DSP thread starts, so the first frame compiles
        nothing: on a slow aarch64 host a lazy compile there took longer than the service's
        watchdog.
        """

    @abstractmethod
    def _open(self, frame: Frame) -> None:
        """Acquire the underlying resource; raise SourceError naming it on failure."""

    @abstractmethod
    def _fill(self, frame: Frame) -> bool:
        """Refill ``frame.samples`` in place; return False at the end of the stream."""

    @abstractmethod
    def _close(self) -> None:
        """Release the underlying resource (only called once per open)."""


@njit(cache=True, nogil=True)
def deinterleave_scaled(
    src: np.ndarray,
    nframes: int,
    channels: int,
    scale: float,
    out: np.ndarray,
    col0: int,
    duplicate_mono: bool,
) -> None:
    """Write ``nframes`` interleaved samples of ``src`` (any numeric dtype) times ``scale``
    into ``out[:, col0:col0 + nframes]``.

    Stereo fills rows A and B; mono fills row A and either copies it into B or zeroes B.
    Used by the WAV and ALSA sources for the int -> float conversion.
    """
    if channels == 1:
        for i in range(nframes):
            v = src[i] * scale
            out[0, col0 + i] = v
            out[1, col0 + i] = v if duplicate_mono else 0.0
    else:
        for i in range(nframes):
            base = i * channels
            out[0, col0 + i] = src[base] * scale
            out[1, col0 + i] = src[base + 1] * scale
