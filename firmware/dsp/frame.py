"""The unit of audio that flows from a source into the processing graph."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np


@dataclass(slots=True)
class Frame:
    """One block of stereo audio.

    ``samples`` has shape ``(2, frame_size)``, dtype float64, C-contiguous; row 0 is microphone A,
    row 1 microphone B, in the source's native full scale (integer formats map to [-1, 1)).
    A source owns and reuses its Frame object and its buffer: the content is valid until the
    next ``read()``, which is what lets the hot path allocate nothing per frame. Consumers that
    keep data (a recorder) copy it.

    ``timestamp`` is ``time.monotonic()`` at the end of the block, ``wall_time`` the matching
    ``time.time()``. ``truth_ppm`` and ``temperature_c`` are NaN unless the source knows them
    (the simulator reports its ground truth there).
    """

    samples: np.ndarray
    sample_rate: int
    sequence: int = 0
    timestamp: float = 0.0
    wall_time: float = 0.0
    truth_ppm: float = math.nan
    temperature_c: float = math.nan
    extra: dict[str, float] = field(default_factory=dict)

    @classmethod
    def empty(cls, frame_size: int, sample_rate: int) -> Frame:
        """A zeroed frame with a freshly allocated buffer (sources call this once, at open)."""
        return cls(samples=np.zeros((2, frame_size), dtype=np.float64), sample_rate=sample_rate)

    @property
    def frame_size(self) -> int:
        """Number of samples per channel."""
        return int(self.samples.shape[1])

    @property
    def duration_s(self) -> float:
        """Duration of the block in seconds."""
        return self.frame_size / self.sample_rate
