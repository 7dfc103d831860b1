"""The peak finder's spectrum tap: nothing copied while nobody looks, a faithful copy (the
peak where the peak finder found it) once someone does, and no allocation on the DSP thread
for it."""

from __future__ import annotations

import tracemalloc
from typing import Any

import numpy as np

from firmware.app.analyzer import Analyzer


def peak_node(analyzer: Analyzer) -> Any:
    return next(n for n in analyzer.graph.nodes if n.type_name == "peak_finder")


def test_nothing_is_copied_until_someone_reads(make_doc: Any) -> None:
    analyzer = Analyzer(make_doc(), realtime=False)
    analyzer.warm_up()
    tap = peak_node(analyzer).spectrum_tap
    analyzer.run(max_frames=5)
    assert tap.read() is None  # nobody asked before: no frame copied
    analyzer.run(max_frames=10)
    snap = tap.read()
    analyzer.stop()
    assert snap is not None and snap.sequence == analyzer.frames - 1
    result = analyzer.state.get("peak_finder")
    assert result is not None and result.detected
    loudest = float(snap.frequencies_hz[int(np.argmax(snap.amplitudes))])
    assert abs(loudest - result.frequency_hz) <= snap.bin_hz
    # a tone between bins reads a little low on its nearest bin (window scalloping)
    assert 0.5 * result.amplitude < float(snap.amplitudes.max()) <= 1.01 * result.amplitude
    lo, hi = snap.search_hz
    assert snap.frequencies_hz[0] <= lo and snap.frequencies_hz[-1] >= hi


def test_copying_allocates_nothing_on_the_dsp_thread(make_doc: Any) -> None:
    analyzer = Analyzer(make_doc(), realtime=False)
    analyzer.warm_up()
    tap = peak_node(analyzer).spectrum_tap
    analyzer.run(max_frames=3)
    tap.read()  # someone looks: every frame is copied from now on
    analyzer.run(max_frames=6)
    tracemalloc.start()
    try:
        analyzer.run(max_frames=30)
        snapshot = tracemalloc.take_snapshot()
    finally:
        tracemalloc.stop()
        analyzer.stop()
    in_tap = snapshot.filter_traces([tracemalloc.Filter(True, "*spectrum_tap.py")])
    assert sum(stat.size for stat in in_tap.statistics("filename")) == 0
