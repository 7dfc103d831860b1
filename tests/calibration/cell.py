"""A concentration node fed like the DSP thread feeds it, from a settable amplitude."""

from __future__ import annotations

import math
import threading
import time
from typing import Any

import numpy as np

from firmware.state import ComputingResult, ComputingState
from tests.dsp.nodes.building import build, frame

UPSTREAM = {"upstream": ["input", "pk"], "types": {"input": "input", "pk": "peak_finder"}}


class Cell:
    """Publishes a peak result of ``amplitude`` (NaN: nothing detected) and runs the node,
    every ``period_s``, on a thread of its own."""

    def __init__(self, parameters: dict[str, Any] | None = None, *,
                 period_s: float = 0.01) -> None:
        self.state = ComputingState()
        self.node = build("concentration", {"polynomial_coefficients": [0.0, 50000.0],
                                            **(parameters or {})},
                          node_id="concentration", state=self.state, **UPSTREAM)
        self.amplitude = math.nan
        self.period_s = period_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Cell:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        sequence = 0
        signal = np.zeros((1, 8))
        while not self._stop.is_set():
            sequence += 1
            now = time.monotonic()
            amp = self.amplitude
            detected = not math.isnan(amp)
            self.state.publish(ComputingResult(
                node_id="pk", kind="peak", timestamp=time.time(), monotonic=now,
                sequence=sequence, detected=detected, frequency_hz=2000.0, amplitude=amp,
                amplitude_db=20 * math.log10(amp) if detected and amp > 0 else math.nan))
            f = frame(sequence=sequence, timestamp=now)
            f.temperature_c = 25.0
            self.node.process(signal, f)
            time.sleep(self.period_s)
