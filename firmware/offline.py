"""Offline commands: `pafw analyze` (graph over a WAV file) and `pafw simulate` (WAV + truth)."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import Any, Literal, TextIO

from firmware.appliance import Analyzer, graph_calibration, graph_specs
from firmware.config import ConfigDocument
from firmware.dsp.profiles import parse_profile
from firmware.dsp.source_factory import make_source
from firmware.dsp.source_settings import WavSettings
from firmware.dsp.wav import WavWriter, read_wav_info
from firmware.progress import ProgressBar
from firmware.state import ComputingResult

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


def analyze(
    doc: ConfigDocument,
    wav_path: Path,
    out: TextIO,
    *,
    fmt: Literal["csv", "jsonl"] = "csv",
    state_dir: Path | None = None,
) -> int:
    """Run the configured graph over ``wav_path`` as fast as possible; one row per frame and
    computing node, written to ``out``. Returns the number of rows."""
    info = read_wav_info(wav_path)
    acquisition = doc.config.acquisition.model_copy(
        update={
            "source": "wav",
            "sample_rate": info.sample_rate,
            "wav": WavSettings(path=wav_path, loop=False),
        }
    )
    doc = doc.with_config(doc.config.model_copy(update={"acquisition": acquisition}))
    analyzer = Analyzer(doc, realtime=False, state_dir=state_dir)
    analyzer.warm_up()
    frame_s = analyzer.frame_size / analyzer.sample_rate
    ids = analyzer.graph.computing_node_ids()
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
            time_s = (frame.sequence + 0.5) * frame_s
            for node_id in ids:
                result = analyzer.state.get(node_id)
                if result is None or result.sequence != frame.sequence:
                    continue
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
