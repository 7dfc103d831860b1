"""SpectrumTap: a copy of a peak finder's recent magnitude spectrum, for people to look at.

The DSP thread offers the magnitudes it computed anyway; the tap copies them into a
preallocated buffer (no allocation, a few hundred bytes) only while a reader asked for them in
the last ``interest_s`` seconds (the node compares its frame's monotonic capture time with
``wanted_until``), so nobody watching costs one comparison per frame. Readers on
other threads get a consistent copy under a lock the DSP thread holds for that copy only.
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True, slots=True)
class SpectrumSnapshot:
    """Magnitudes of bins ``first_bin``.. as amplitudes in input units, and their frame."""

    first_bin: int
    bin_hz: float
    amplitudes: np.ndarray
    sequence: int
    timestamp: float
    search_hz: tuple[float, float]

    @property
    def frequencies_hz(self) -> np.ndarray:
        """Centre frequency of every bin of ``amplitudes``."""
        return (self.first_bin + np.arange(self.amplitudes.size)) * self.bin_hz


class SpectrumTap:
    """Double-duty buffer between the DSP thread (``offer``) and readers (``read``)."""

    def __init__(self, source: np.ndarray, *, first_bin: int, bin_hz: float, scale: float,
                 search_hz: tuple[float, float], interest_s: float = 5.0) -> None:
        #: a view of the peak finder's persistent magnitude array (copied from, never resized)
        self._source = source
        self._buffer = np.zeros(source.shape, dtype=np.float64)
        self._first_bin = first_bin
        self._bin_hz = bin_hz
        self._scale = scale
        self._search_hz = search_hz
        self._interest_s = interest_s
        self._wanted_until = -math.inf
        self._sequence = -1
        self._timestamp = math.nan
        self._lock = threading.Lock()

    @property
    def wanted_until(self) -> float:
        """Monotonic time until which someone wants copies (-inf: nobody asked yet). The DSP
        thread compares its frame's capture time with it before calling ``offer``."""
        return self._wanted_until

    def offer(self, sequence: int, timestamp: float) -> None:
        """DSP thread, after the magnitudes were computed: copy them."""
        with self._lock:
            np.copyto(self._buffer, self._source)
            self._sequence = sequence
            self._timestamp = timestamp

    def read(self) -> SpectrumSnapshot | None:
        """Any thread: the newest copy (None until a frame arrived after the first request);
        also keeps the copies coming for ``interest_s`` seconds."""
        self._wanted_until = time.monotonic() + self._interest_s
        with self._lock:
            if self._sequence < 0:
                return None
            amplitudes = self._buffer * self._scale
            sequence, timestamp = self._sequence, self._timestamp
        return SpectrumSnapshot(self._first_bin, self._bin_hz, amplitudes, sequence, timestamp,
                                self._search_hz)
