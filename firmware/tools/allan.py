"""`pafw allan`: the detection limit of the configured graph, from a recording or the simulator.

The graph runs offline (as ``pafw analyze`` does) over a WAV file or over N seconds of the
simulator; the concentration of one node, one value per frame, gives the Allan-Werle
deviation from one frame to a third of the record (``firmware.dsp.allan``), the optimum
averaging time, the LOD (3 sigma) at 1 s and at the optimum, and the T90 of a step when the
record has one (``firmware.dsp.step_response``). Printed as a table or JSON; ``--plot``
draws it (``firmware.tools.allan_plot``, matplotlib, an optional extra).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from firmware.app.analyzer import Analyzer
from firmware.config.loader import ConfigDocument
from firmware.dsp.allan import LOD_SIGMAS, AllanDeviation, allan_deviation
from firmware.dsp.sources.profiles import parse_profile
from firmware.dsp.step_response import Step, find_step
from firmware.errors import PafwError
from firmware.state import json_safe
from firmware.tools.offline import wav_document
from firmware.tools.progress import ProgressBar

#: fewer frames than this give no Allan deviation worth printing
MIN_FRAMES = 9


@dataclass(frozen=True)
class ConcentrationSeries:
    """One node's concentration, one value per frame (NaN where it had none)."""

    node_id: str
    dt_s: float
    values: np.ndarray
    source: str


@dataclass(frozen=True)
class AllanReport:
    """What `pafw allan` prints: the curve and the figures taken from it."""

    series: ConcentrationSeries
    adev: AllanDeviation
    step: Step | None

    @property
    def sigma_1s(self) -> float:
        """The deviation at 1 s (NaN when 1 s is outside the computed averaging times)."""
        return self.adev.sigma_at(1.0)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe: the figures, the curve and the step (null when none was found)."""
        tau_opt, sigma_opt = self.adev.optimum()
        step = self.step
        out: dict[str, Any] = json_safe({
            "source": self.series.source,
            "node": self.series.node_id,
            "unit": "ppm",
            "frames": int(self.series.values.shape[0]),
            "frame_s": self.series.dt_s,
            "duration_s": self.series.values.shape[0] * self.series.dt_s,
            "mean": float(np.nanmean(self.series.values)) if self.valid else math.nan,
            "sigma_1s": self.sigma_1s,
            "lod_1s": LOD_SIGMAS * self.sigma_1s,
            "optimum_tau_s": tau_opt,
            "sigma_optimum": sigma_opt,
            "lod_optimum": LOD_SIGMAS * sigma_opt,
            "white_slope": self.adev.slope(self.adev.dt_s, 10 * self.adev.dt_s),
            "curve": [{"tau_s": float(t), "sigma": float(s), "pairs": int(p)}
                      for t, s, p in zip(self.adev.tau_s, self.adev.sigma, self.adev.pairs,
                                         strict=True)],
            "step": None if step is None else {
                "pre": step.pre, "post": step.post, "t10_s": step.t10_at_s,
                "t90_at_s": step.t90_at_s, "t90_s": step.t90_s, "noise": step.noise},
        })
        return out

    @property
    def valid(self) -> bool:
        """True when the series holds any value."""
        return bool(np.isfinite(self.series.values).any())

    def format_text(self) -> str:
        """The table `pafw allan` prints."""
        d = self.to_dict()
        lines = [f"Allan-Werle deviation of {d['node']} ({d['source']}): {d['frames']} frames "
                 f"of {d['frame_s'] * 1000:.1f} ms, {d['duration_s']:.1f} s, mean "
                 f"{_num(d['mean'])} ppm", "",
                 f"{'tau (s)':>10}  {'sigma (ppm)':>12}  {'pairs':>7}"]
        for point in d["curve"]:
            lines.append(f"{point['tau_s']:>10.3f}  {_num(point['sigma']):>12}  "
                         f"{point['pairs']:>7}")
        lines += ["",
                  f"LOD (3 sigma) at 1 s:      {_num(d['lod_1s'])} ppm",
                  f"optimum averaging time:    {_num(d['optimum_tau_s'], 3)} s",
                  f"LOD (3 sigma) at optimum:  {_num(d['lod_optimum'])} ppm",
                  f"white-noise slope (first decade): {_num(d['white_slope'], 2)} "
                  f"(-0.5 for white noise)"]
        step = d["step"]
        if step is None:
            lines.append("T90: no step in the record")
        else:
            lines.append(f"T90 (10 % -> 90 %): {step['t90_s']:.2f} s, step "
                         f"{_num(step['pre'])} -> {_num(step['post'])} ppm at "
                         f"{step['t10_s']:.2f} s")
            lines.append("note: the deviation above includes the step; measure the detection "
                         "limit on a record at a steady concentration")
        return "\n".join(lines)


def _num(value: float | None, digits: int = 4) -> str:
    """``value`` with ``digits`` significant digits, ``n/a`` when unknown."""
    if value is None or not math.isfinite(value):
        return "n/a"
    return f"{value:.{digits}g}"


def concentration_node(doc: ConfigDocument, node: str | None) -> str:
    """``node``, checked to be a concentration node, or the graph's first one."""
    nodes = doc.config.processing.default_graph.nodes
    ids = [n.id for n in nodes if n.type == "concentration"]
    if node is None:
        if not ids:
            raise PafwError("the graph has no concentration node: `pafw allan` needs one")
        return ids[0]
    if node not in ids:
        raise PafwError(f"--node {node}: not a concentration node of the graph (concentration "
                        f"nodes: {', '.join(ids) or 'none'})")
    return node


def simulator_document(doc: ConfigDocument, *, concentration: str | None = None,
                       seed: int | None = None) -> ConfigDocument:
    """``doc`` reading its simulator (optionally with another profile or seed)."""
    acquisition = doc.config.acquisition
    update: dict[str, Any] = {}
    if concentration is not None:
        update["concentration"] = parse_profile(concentration)
    if seed is not None:
        update["seed"] = seed
    acquisition = acquisition.model_copy(update={
        "source": "simulator", "simulator": acquisition.simulator.model_copy(update=update)})
    return doc.with_config(doc.config.model_copy(update={"acquisition": acquisition}))


def record_series(doc: ConfigDocument, *, node: str | None = None, wav_path: Path | None = None,
                  seconds: float | None = None, state_dir: Path | None = None
                  ) -> ConcentrationSeries:
    """Run the graph over ``wav_path``, or over ``seconds`` of ``doc``'s simulator, as fast as
    possible; the concentration of ``node`` (default: the first) at each frame."""
    if (wav_path is None) == (seconds is None):
        raise ValueError("record_series needs a WAV file or a number of seconds, not both")
    node_id = concentration_node(doc, node)
    if wav_path is not None:
        if not wav_path.is_file():
            raise PafwError(f"{wav_path}: no such file")
        doc, source = wav_document(doc, wav_path), str(wav_path)
    else:
        assert seconds is not None
        if not seconds > 0:
            raise PafwError(f"--simulate {seconds}: expected a positive number of seconds")
        source = f"simulator, {seconds:g} s"
    analyzer = Analyzer(doc, realtime=False, state_dir=state_dir)
    analyzer.warm_up()
    frame_s = analyzer.frame_size / analyzer.sample_rate
    limit = None if seconds is None else max(1, math.ceil(seconds / frame_s))
    values: list[float] = []
    progress = ProgressBar(seconds or 0.0, label="allan") if seconds else None
    try:
        analyzer.source.open()
        while limit is None or len(values) < limit:
            frame = analyzer.source.read()
            if frame is None:
                break
            analyzer.process_frame(frame)
            result = analyzer.state.get(node_id)
            fresh = result is not None and result.sequence == frame.sequence
            values.append(result.concentration_ppm if fresh and result is not None
                          else math.nan)
            if progress is not None:
                progress.update(len(values) * frame_s)
    finally:
        analyzer.stop()
    if progress is not None:
        progress.close(len(values) * frame_s)
    return ConcentrationSeries(node_id=node_id, dt_s=frame_s,
                               values=np.asarray(values, dtype=float), source=source)


def allan_report(series: ConcentrationSeries) -> AllanReport:
    """The Allan deviation, optimum, LODs and step of a concentration series."""
    finite = int(np.isfinite(series.values).sum())
    if finite < MIN_FRAMES:
        raise PafwError(f"{series.source}: only {finite} frames with a concentration from "
                        f"{series.node_id!r}; the Allan deviation needs at least {MIN_FRAMES} "
                        f"(a longer record, or a signal the graph detects)")
    adev = allan_deviation(series.values, series.dt_s)
    return AllanReport(series=series, adev=adev, step=find_step(series.values, series.dt_s))
