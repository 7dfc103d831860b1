"""Offline commands: `pafw analyze` (graph over a WAV file) and `pafw simulate` (WAV + truth).

``analyze`` also tallies each detector's detections: a run in which a peak finder or lock-in
detected nothing ends with a warning naming the likely cause (a signal chain that cannot
detect, a resonance outside the search band: the recording's strongest tone is named, or a
signal below the detection threshold), instead of a file of empty rows and silence.
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TextIO

import numpy as np

from firmware.app.analyzer import Analyzer, graph_calibration, graph_specs
from firmware.config.loader import ConfigDocument
from firmware.dsp.node import DETECTOR_KINDS
from firmware.dsp.sources.factory import make_source
from firmware.dsp.sources.profiles import parse_profile
from firmware.dsp.sources.settings import WavSettings
from firmware.dsp.sources.wav import WavWriter, read_wav_info
from firmware.state import ComputingResult
from firmware.tools.progress import ProgressBar

ANALYZE_COLUMNS = [
    "time_s", "sequence", "node_id", "kind", "detected", "frequency_hz", "amplitude",
    "amplitude_db", "snr_db", "coherence", "phase_rad", "concentration_ppm",
]


def _row(result: ComputingResult, time_s: float) -> dict[str, Any]:
    values = result.to_dict()
    row: dict[str, Any] = {"time_s": round(time_s, 6)}
    for column in ANALYZE_COLUMNS[1:]:
        row[column] = values[column]
    return row


#: frames whose spectrum is averaged to name the recording's strongest tone
SPECTRUM_FRAMES = 64
#: below this the strongest tone is mains hum or drift, not a resonance
MIN_TONE_HZ = 100.0


@dataclass
class Tally:
    """One detector's frames, detections and best candidate (for the 0 % warning)."""

    frames: int = 0
    detections: int = 0
    best_snr_db: float = -math.inf


@dataclass
class AnalyzeReport:
    """What ``analyze`` wrote and saw: rows, per-detector tallies, the strongest tone."""

    rows: int = 0
    #: the document analyze ran (the config reading the WAV file)
    doc: ConfigDocument | None = None
    tallies: dict[str, Tally] = field(default_factory=dict)
    strongest_hz: float = math.nan
    _spectrum: np.ndarray | None = None
    _spectrum_frames: int = 0

    def add_spectrum(self, samples: np.ndarray) -> None:
        """Average the magnitude spectrum of the differential signal of the first frames."""
        if self._spectrum_frames >= SPECTRUM_FRAMES:
            return
        signal = samples[0] - samples[1] if samples.shape[0] == 2 else samples[0]
        magnitude = np.abs(np.fft.rfft(signal * np.hanning(signal.shape[0])))
        self._spectrum = magnitude if self._spectrum is None else self._spectrum + magnitude
        self._spectrum_frames += 1

    def finish(self, sample_rate: int) -> None:
        if self._spectrum is None:
            return
        freqs = np.fft.rfftfreq(2 * (self._spectrum.shape[0] - 1), 1.0 / sample_rate)
        usable = freqs >= MIN_TONE_HZ
        if usable.any() and np.max(self._spectrum[usable]) > 0:
            self.strongest_hz = float(freqs[usable][np.argmax(self._spectrum[usable])])


def detection_warnings(report: AnalyzeReport) -> list[str]:
    """One warning per detector that detected nothing, naming the likely cause."""
    doc = report.doc
    if doc is None:
        return []
    warnings = []
    for node_id, tally in report.tallies.items():
        if tally.frames == 0 or tally.detections > 0:
            continue
        node = doc.config.node(node_id)
        where = doc.node_location(node_id)
        head = f"{where}: {node.type} {node_id!r} detected nothing in {tally.frames} frames"
        chain = [w for w in doc.warnings if f"nodes[{node_id}]" in w]
        if node.type == "peak_finder":
            low, high = node.params.frequency_min, node.params.frequency_max
            best = ("" if not math.isfinite(tally.best_snr_db) else
                    f"; its best candidate was {tally.best_snr_db:.1f} dB over the noise "
                    f"floor")
            head += (f" (threshold {node.params.detection_threshold_db:g} dB, search band "
                     f"{low:g}-{high:g} Hz{best})")
            tone = report.strongest_hz
            if chain:
                cause = "likely cause: " + "; ".join(w.split(": ", 2)[-1] for w in chain)
            elif math.isfinite(tone) and not low <= tone <= high:
                cause = (f"likely cause: the recording's strongest tone is at {tone:.0f} Hz, "
                         f"outside the search band; if that is the cell's resonance, center "
                         f"the filters and frequency_min/frequency_max on it")
            else:
                cause = ("likely cause: the signal is below detection_threshold_db, or the "
                         "resonance is not in the search band")
        else:
            cause = "likely cause: no signal at reference_frequency"
        warnings.append(f"{head}; {cause}")
    return warnings


def wav_document(doc: ConfigDocument, wav_path: Path) -> ConfigDocument:
    """``doc`` reading ``wav_path`` once, at the file's sample rate (what ``analyze`` runs;
    its ``warnings`` are those of that chain: no simulator)."""
    info = read_wav_info(wav_path)
    acquisition = doc.config.acquisition.model_copy(
        update={
            "source": "wav",
            "sample_rate": info.sample_rate,
            "wav": WavSettings(path=wav_path, loop=False),
        }
    )
    return doc.with_config(doc.config.model_copy(update={"acquisition": acquisition}))


def analyze(
    doc: ConfigDocument,
    wav_path: Path,
    out: TextIO,
    *,
    fmt: Literal["csv", "jsonl"] = "csv",
    state_dir: Path | None = None,
    report: AnalyzeReport | None = None,
) -> int:
    """Run the configured graph over ``wav_path`` as fast as possible; one row per frame and
    computing node, written to ``out``. Returns the number of rows; ``report`` (when given)
    receives the detection tallies (see ``detection_warnings``)."""
    report = report if report is not None else AnalyzeReport()
    info = read_wav_info(wav_path)
    doc = wav_document(doc, wav_path)
    report.doc = doc
    analyzer = Analyzer(doc, realtime=False, state_dir=state_dir)
    analyzer.warm_up()
    frame_s = analyzer.frame_size / analyzer.sample_rate
    ids = analyzer.graph.computing_node_ids()
    detectors = {n.node_id for n in analyzer.graph.nodes if n.result_kind in DETECTOR_KINDS}
    report.tallies = {i: Tally() for i in ids if i in detectors}
    writer = csv.DictWriter(out, fieldnames=ANALYZE_COLUMNS) if fmt == "csv" else None
    if writer is not None:
        writer.writeheader()
    progress = ProgressBar(info.frames / info.sample_rate, label="analyze")
    rows = 0
    source = analyzer.source
    try:
        source.open()
        while (frame := source.read()) is not None:
            analyzer.process_frame(frame)
            report.add_spectrum(frame.samples)
            time_s = (frame.sequence + 0.5) * frame_s
            for node_id in ids:
                result = analyzer.state.get(node_id)
                if result is None or result.sequence != frame.sequence:
                    continue
                tally = report.tallies.get(node_id)
                if tally is not None:
                    tally.frames += 1
                    tally.detections += result.detected
                    if result.snr_db > tally.best_snr_db:  # NaN compares False
                        tally.best_snr_db = result.snr_db
                row = _row(result, time_s)
                if writer is not None:
                    writer.writerow(row)
                else:
                    out.write(json.dumps(row) + "\n")
                rows += 1
            progress.update((frame.sequence + 1) * frame_s)
    finally:
        analyzer.stop()
    progress.close(info.frames / info.sample_rate)
    report.rows = rows
    report.finish(analyzer.sample_rate)
    return rows


def simulate(
    doc: ConfigDocument,
    *,
    seconds: float,
    out_path: Path,
    concentration: str | None = None,
    seed: int | None = None,
    sample_format: Literal["int16", "int24", "int32", "float32"] = "float32",
) -> Path:
    """Write ``seconds`` of simulated cell audio to ``out_path`` and the ground truth next to
    it as ``<name>.truth.csv`` (time_s at each frame's centre, concentration_ppm)."""
    acquisition = doc.config.acquisition
    sim = acquisition.simulator
    update: dict[str, Any] = {}
    if concentration is not None:
        update["concentration"] = parse_profile(concentration)
    if seed is not None:
        update["seed"] = seed
    acquisition = acquisition.model_copy(
        update={"source": "simulator", "simulator": sim.model_copy(update=update)}
    )
    source = make_source(acquisition, realtime=False,
                         graph_calibration=graph_calibration(graph_specs(doc)))
    frame_s = acquisition.frame_size / acquisition.sample_rate
    n_frames = max(1, math.ceil(seconds / frame_s))
    truth_path = out_path.with_name(out_path.stem + ".truth.csv")
    out_path.parent.mkdir(parents=True, exist_ok=True)
    progress = ProgressBar(n_frames * frame_s, label="simulate")
    with WavWriter(out_path, sample_rate=acquisition.sample_rate, channels=2,
                   sample_format=sample_format) as wav, truth_path.open("w", newline="") as fh:
        truth = csv.writer(fh)
        truth.writerow(["time_s", "concentration_ppm"])
        source.open()
        try:
            for _ in range(n_frames):
                frame = source.read()
                if frame is None:
                    break
                wav.write(frame.samples)
                truth.writerow([f"{(frame.sequence + 0.5) * frame_s:.6f}",
                                f"{frame.truth_ppm:.6f}"])
                progress.update((frame.sequence + 1) * frame_s)
        finally:
            source.close()
    progress.close(n_frames * frame_s)
    return truth_path
