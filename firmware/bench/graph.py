"""`pafw bench`: our graph against a plain scipy/numpy pipeline doing the same work.

Both run in one process, on the same simulated frames, in alternating rounds (ABAB...) so
machine noise hits both alike; the figures are medians over rounds. Also measured: the
real-time factor of the graph on one core, per-node microseconds, and the wall time from the
start of a fresh `pafw` process to its first concentration result with a warm kernel cache.

The floor, in the same rounds: the configured band-pass's biquad cascade run bare (one numba
call per frame, no node, no Python around it) over the same frames. A plain IIR is bound by
its recurrence (each output waits for the previous one), so that is the limit of any graph
filtering sample after sample; ``graph / floor`` says how much everything else costs on top.
The graph's band-pass goes below that floor by running the frame as four lanes side by side
(firmware/dsp/lane_iir.py); the same lanes run bare are timed too (``lanes``), so the report
shows how far under the serial recurrence's limit the filter itself now is.
The peak finder's spectrum paths (the band's own bins by the 16-fold split, the same bins by
a Goertzel bank over the whole record, the full FFT) are timed side by side on the same
frames as well.

Every variant is timed the way frames reach it live: each recorded frame is first copied,
untimed, into one reused buffer (``SourceBuffer``), as a source writes its buffer just
before the graph runs. The graph and the reference are also timed straight from the
recorded array, where every frame is a fresh 64 KB from main memory (``cold_*``).
"""

from __future__ import annotations

import math
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np
import scipy.signal

from firmware.app.analyzer import Analyzer
from firmware.bench.first_result import first_result_seconds
from firmware.config.loader import ConfigDocument
from firmware.dsp import kernels
from firmware.dsp.filters import design_sos
from firmware.dsp.frame import Frame
from firmware.dsp.lane_iir import SECTIONS, LaneCascade, lanes_apply
from firmware.dsp.peaks import PeakFinder, SpectrumMethod


class ReferencePipeline:
    """The default graph written the obvious way with scipy.signal.sosfilt and numpy.fft."""

    def __init__(self, doc: ConfigDocument) -> None:
        nodes = {n.type: n.params for n in doc.config.processing.default_graph.nodes}
        acq = doc.config.acquisition
        bp, pk, conc = nodes["filter"], nodes["peak_finder"], nodes["concentration"]
        low, high = bp.band_edges()
        self.sos = design_sos(family=bp.family, band=bp.band, order=bp.order,
                              sample_rate=acq.sample_rate, cutoff_hz=bp.cutoff_hz,
                              low_hz=low, high_hz=high, ripple_db=bp.ripple_db,
                              attenuation_db=bp.attenuation_db)
        self.zi = np.zeros((2, self.sos.shape[0], 2))
        self.gain = 10.0 ** (nodes["gain"].gain_db / 20.0) if "gain" in nodes else 1.0
        self.fft_size = pk.fft_size
        self.window = scipy.signal.get_window("hann", pk.fft_size)
        self.coherent_gain = self.window.sum() / 2.0
        freqs = np.fft.rfftfreq(pk.fft_size, 1.0 / acq.sample_rate)
        self.lo = int(np.searchsorted(freqs, pk.frequency_min))
        self.hi = int(np.searchsorted(freqs, pk.frequency_max, side="right"))
        self.bin_hz = acq.sample_rate / pk.fft_size
        self.threshold_db = pk.detection_threshold_db
        self.coefficients = np.asarray(conc.polynomial_coefficients[::-1])

    def process(self, x: np.ndarray) -> tuple[float, float, float]:
        """(frequency Hz, amplitude, ppm) of one stereo frame."""
        a, self.zi[0] = scipy.signal.sosfilt(self.sos, x[0], zi=self.zi[0])
        b, self.zi[1] = scipy.signal.sosfilt(self.sos, x[1], zi=self.zi[1])
        d = a * self.gain - b * self.gain
        spectrum = np.abs(np.fft.rfft(d[-self.fft_size:] * self.window))
        band = spectrum[self.lo:self.hi]
        k = int(np.argmax(band))
        noise = float(np.median(band))
        if band[k] <= noise * 10 ** (self.threshold_db / 20) or k == 0 or k == len(band) - 1:
            return math.nan, math.nan, math.nan
        y0, y1, y2 = np.log(band[k - 1:k + 2])
        delta = 0.5 * (y0 - y2) / (y0 - 2 * y1 + y2)
        amplitude = float(np.exp(y1 - 0.25 * (y0 - y2) * delta)) / self.coherent_gain
        frequency = (self.lo + k + delta) * self.bin_hz
        return frequency, amplitude, float(np.polyval(self.coefficients, amplitude))


def realtime_factors(frames: list[Frame], seconds: dict[str, list[float]]) -> dict[str, float]:
    """Audio seconds per wall second of each variant, from its median time over ``frames``."""
    audio_s = len(frames) * frames[0].frame_size / frames[0].sample_rate
    return {name: audio_s / statistics.median(times) for name, times in seconds.items()}


def simulated_frames(doc: ConfigDocument, count: int) -> list[Frame]:
    """``count`` frames from the configured simulator, copied out of its reused buffer."""
    analyzer = Analyzer(doc, realtime=False)
    source = analyzer.source
    source.open()
    frames: list[Frame] = []
    try:
        for _ in range(count):
            frame = source.read()
            if frame is None:
                break
            frames.append(Frame(samples=frame.samples.copy(), sample_rate=frame.sample_rate,
                                sequence=frame.sequence, timestamp=frame.timestamp,
                                wall_time=frame.wall_time, truth_ppm=frame.truth_ppm,
                                temperature_c=frame.temperature_c))
    finally:
        source.close()
    return frames


class SourceBuffer:
    """One frame buffer, reused for every frame as a source reuses its own.

    A live source writes each frame into its buffer just before the graph runs, so the graph
    starts with the samples in cache. ``load`` does the same with a recorded frame (untimed):
    the timing then measures processing as it happens live, not a trip to main memory for
    64 KB of samples that a 200-frame array (13 MB) forces on every frame. Both pipelines
    get the same treatment; ``run_bench`` also times them straight from the array
    (``*_cold`` figures).
    """

    def __init__(self, frames: list[Frame]) -> None:
        first = frames[0]
        self.frame = Frame(samples=np.empty_like(first.samples), sample_rate=first.sample_rate)

    def load(self, frame: Frame) -> Frame:
        """Copy ``frame`` into the buffer; returns the buffer's frame."""
        live = self.frame
        np.copyto(live.samples, frame.samples)
        live.sequence = frame.sequence
        live.timestamp = frame.timestamp
        live.wall_time = frame.wall_time
        live.truth_ppm = frame.truth_ppm
        live.temperature_c = frame.temperature_c
        return live


def _time_ours(analyzer: Analyzer, frames: list[Frame], per_frame: list[int],
               buffer: SourceBuffer | None = None) -> float:
    """Mean seconds per frame; each frame's nanoseconds are appended to ``per_frame``. With a
    ``buffer``, each frame is loaded into it first, outside the timing."""
    now = time.monotonic()
    clock = time.perf_counter_ns
    total = 0
    for recorded in frames:
        frame = recorded if buffer is None else buffer.load(recorded)
        frame.timestamp = now  # keep results fresh for the concentration node
        t0 = clock()
        analyzer.graph.process(frame)
        elapsed = clock() - t0
        per_frame.append(elapsed)
        total += elapsed
    return total / 1e9 / len(frames)


def _time_reference(reference: ReferencePipeline, frames: list[Frame], per_frame: list[int],
                    buffer: SourceBuffer | None = None) -> float:
    """Mean seconds per frame; each frame's nanoseconds are appended to ``per_frame``. With a
    ``buffer``, each frame is loaded into it first, outside the timing."""
    clock = time.perf_counter_ns
    total = 0
    for recorded in frames:
        frame = recorded if buffer is None else buffer.load(recorded)
        t0 = clock()
        reference.process(frame.samples)
        elapsed = clock() - t0
        per_frame.append(elapsed)
        total += elapsed
    return total / 1e9 / len(frames)


class FloorPipeline:
    """The band-pass's sections run bare over the frames' differential (computed beforehand,
    outside the timing): one plain recurrence call per frame, or with ``lanes`` the lane form
    (two calls per frame). Each input is copied into one reused buffer first, untimed, as
    the graph's band-pass finds its input in the differential's buffer."""

    def __init__(self, sos: np.ndarray, frames: list[Frame], *, lanes: bool = False) -> None:
        self.sos = np.ascontiguousarray(sos, dtype=np.float64)
        self.inputs = [np.ascontiguousarray(f.samples[0:1] - f.samples[1:2]) for f in frames]
        self.out = np.zeros_like(self.inputs[0])
        self.live = np.zeros_like(self.inputs[0])
        self.lanes = (LaneCascade(self.sos, channels=1, frame_size=self.out.shape[1])
                      if lanes else None)
        sections = SECTIONS if lanes else self.sos.shape[0]
        self.zi = np.zeros((1, sections, 2))

    def run(self, per_frame: list[int] | None = None) -> float:
        """Mean seconds per frame over the frames; each frame's nanoseconds are appended to
        ``per_frame`` when given."""
        out, sos, zi, x = self.out, self.sos, self.zi, self.live
        clock = time.perf_counter_ns
        kept = [] if per_frame is None else per_frame
        lanes = self.lanes
        total = 0
        for recorded in self.inputs:
            np.copyto(x, recorded)
            t0 = clock()
            if lanes is None:
                kernels.sos_filter(sos, zi, x, out)
            else:
                lanes.process(zi, x, out)
            elapsed = clock() - t0
            kept.append(elapsed)
            total += elapsed
        return total / 1e9 / len(self.inputs)


def _peak_finders(doc: ConfigDocument) -> dict[str, PeakFinder]:
    nodes = {n.type: n.params for n in doc.config.processing.default_graph.nodes}
    pk = nodes["peak_finder"]
    def finder(spectrum: SpectrumMethod, *, fold: bool = True) -> PeakFinder:
        return PeakFinder(sample_rate=doc.config.acquisition.sample_rate,
                          fft_size=pk.fft_size, frequency_min_hz=pk.frequency_min,
                          frequency_max_hz=pk.frequency_max, window=pk.window,
                          spectrum=spectrum, fold=fold)

    # the band path as configured (the 16-fold split at the defaults), the Goertzel bank over
    # the whole record it replaced, and the full FFT
    return {"band": finder("band"), "bank": finder("band", fold=False), "fft": finder("fft")}


def _time_peak_finder(finder: PeakFinder, frames: list[Frame], buffer: SourceBuffer) -> float:
    """Mean seconds per frame of ``finder`` over channel A, each frame loaded first."""
    clock = time.perf_counter_ns
    total = 0
    for recorded in frames:
        x = buffer.load(recorded).samples[0]
        t0 = clock()
        finder.process(x)
        total += clock() - t0
    return total / 1e9 / len(frames)


def run_bench(doc: ConfigDocument, *, config_path: Path | None, frames: int = 200,
              rounds: int = 7) -> dict[str, Any]:
    """Measure everything; returns a JSON-safe dict of figures."""
    data = simulated_frames(doc, frames)
    analyzer = Analyzer(doc, realtime=False)
    analyzer.warm_up()
    reference = ReferencePipeline(doc)
    floor_pipeline = FloorPipeline(reference.sos, data)
    lane_pipeline = (FloorPipeline(reference.sos, data, lanes=True)
                     if lanes_apply(reference.sos.shape[0], data[0].frame_size) else None)
    finders = _peak_finders(doc)
    buffer = SourceBuffer(data)
    ours_s: list[float] = []
    ref_s: list[float] = []
    cold_ours_s: list[float] = []
    cold_ref_s: list[float] = []
    floor_s: list[float] = []
    lane_s: list[float] = []
    peak_s: dict[str, list[float]] = {name: [] for name in finders}
    # per-frame times: their medians shrug off the preemptions that a shared machine adds
    # to whole rounds
    ours_ns: list[int] = []
    ref_ns: list[int] = []
    floor_ns: list[int] = []
    floor_pipeline.run()  # compiled already by the warm-up; this warms the caches
    if lane_pipeline is not None:
        lane_pipeline.run()
    unused: list[int] = []
    for _ in range(rounds):
        ours_s.append(_time_ours(analyzer, data, ours_ns, buffer))
        ref_s.append(_time_reference(reference, data, ref_ns, buffer))
        cold_ours_s.append(_time_ours(analyzer, data, unused))
        cold_ref_s.append(_time_reference(reference, data, unused))
        floor_s.append(floor_pipeline.run(floor_ns))
        if lane_pipeline is not None:
            lane_s.append(lane_pipeline.run())
        for name, finder in finders.items():
            peak_s[name].append(_time_peak_finder(finder, data, buffer))
    # per-node figures from one more pass as live, alone in the graph's timing rings
    analyzer.graph.reset_timings()
    _time_ours(analyzer, data, unused, buffer)
    frame_s = data[0].frame_size / data[0].sample_rate
    ours, ref = statistics.median(ours_s), statistics.median(ref_s)
    cold_ours, cold_ref = statistics.median(cold_ours_s), statistics.median(cold_ref_s)
    floor = statistics.median(floor_s)
    lanes = statistics.median(lane_s) if lane_s else None
    peak = {name: statistics.median(times) for name, times in peak_s.items()}
    ours_p50, ref_p50 = statistics.median(ours_ns) / 1e3, statistics.median(ref_ns) / 1e3
    floor_p50 = statistics.median(floor_ns) / 1e3
    graph_status = analyzer.graph.get_status()["nodes"]
    analyzer.stop()
    return {
        "frames": len(data),
        "rounds": rounds,
        "frame_size": data[0].frame_size,
        "sample_rate": data[0].sample_rate,
        "ours_us_per_frame": round(ours * 1e6, 2),
        "reference_us_per_frame": round(ref * 1e6, 2),
        "speedup_vs_reference": round(ref / ours, 3),
        "cold_us_per_frame": {"graph": round(cold_ours * 1e6, 2),
                              "reference": round(cold_ref * 1e6, 2)},
        "cold_speedup_vs_reference": round(cold_ref / cold_ours, 3),
        "floor_us_per_frame": round(floor * 1e6, 2),
        "floor_sections": int(reference.sos.shape[0]),
        "graph_over_floor": round(ours / floor, 3),
        "floor_realtime_factor": round(frame_s / floor, 1),
        "lanes_us_per_frame": None if lanes is None else round(lanes * 1e6, 2),
        "floor_over_lanes": None if lanes is None else round(floor / lanes, 3),
        "peak_finder_us": {name: round(t * 1e6, 2) for name, t in peak.items()},
        "peak_finder_fft_over_band": round(peak["fft"] / peak["band"], 3),
        "peak_finder_bank_over_band": round(peak["bank"] / peak["band"], 3),
        "p50_us_per_frame": {"graph": round(ours_p50, 2), "reference": round(ref_p50, 2),
                             "floor": round(floor_p50, 2)},
        "p50_speedup_vs_reference": round(ref_p50 / ours_p50, 3),
        "p50_graph_over_floor": round(ours_p50 / floor_p50, 3),
        "realtime_factor": round(frame_s / ours, 1),
        "reference_realtime_factor": round(frame_s / ref, 1),
        "per_node_us": {k: v["timing"]["p50_us"] for k, v in graph_status.items()
                        if v["timing"] is not None},
        "first_result_s": round(first_result_seconds(config_path), 3),
    }


def format_report(figures: dict[str, Any]) -> str:
    """Human-readable report of run_bench's figures."""
    lines = [
        f"frames: {figures['frames']} x {figures['frame_size']} samples stereo at "
        f"{figures['sample_rate']} Hz, {figures['rounds']} alternating rounds (medians)",
        f"graph (numba kernels):      {figures['ours_us_per_frame']:10.1f} us/frame  "
        f"{figures['realtime_factor']:8.0f}x real time",
        f"reference (scipy + numpy):  {figures['reference_us_per_frame']:10.1f} us/frame  "
        f"{figures['reference_realtime_factor']:8.0f}x real time",
        f"{'floor (' + str(figures['floor_sections']) + '-section biquad):':<28}"
        f"{figures['floor_us_per_frame']:10.1f} us/frame  "
        f"{figures['floor_realtime_factor']:8.0f}x real time",
    ]
    if figures["lanes_us_per_frame"] is not None:
        lines.append(f"band-pass in four lanes:    {figures['lanes_us_per_frame']:10.1f} us/frame"
                     f"  ({figures['floor_over_lanes']:.2f}x under the floor)")
    lines += [
        f"speed-up vs reference:      {figures['speedup_vs_reference']:10.2f}x",
        f"graph / floor:              {figures['graph_over_floor']:10.2f}x",
        f"from a cache-cold array:    graph {figures['cold_us_per_frame']['graph']:.1f}, "
        f"reference {figures['cold_us_per_frame']['reference']:.1f} us/frame: "
        f"{figures['cold_speedup_vs_reference']:.2f}x",
        f"per-frame medians:          graph {figures['p50_us_per_frame']['graph']:.1f}, "
        f"reference {figures['p50_us_per_frame']['reference']:.1f}, "
        f"floor {figures['p50_us_per_frame']['floor']:.1f} us: "
        f"{figures['p50_speedup_vs_reference']:.2f}x the reference, "
        f"{figures['p50_graph_over_floor']:.2f}x the floor",
        f"peak finder, band path:     {figures['peak_finder_us']['band']:10.1f} us/frame "
        f"(Goertzel bank {figures['peak_finder_us']['bank']:.1f}: "
        f"{figures['peak_finder_bank_over_band']:.2f}x; full FFT path "
        f"{figures['peak_finder_us']['fft']:.1f}: {figures['peak_finder_fft_over_band']:.2f}x)",
        f"first result, warm cache:   {figures['first_result_s']:10.2f} s from process start",
        "per node (p50 us):",
    ]
    lines += [f"  {node:<20} {us:8.1f}" for node, us in figures["per_node_us"].items()]
    return "\n".join(lines)
