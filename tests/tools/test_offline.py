"""The offline commands in-process (firmware/tools/offline.py): ``simulate`` writes audio and
its ground truth frame by frame, ``analyze`` runs the configured graph over a WAV file into CSV
or JSON lines rows and tallies each detector, the strongest tone of a recording, and the warning
``detection_warnings`` gives for a detector that found nothing, naming the likely cause."""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from firmware.config.loader import ConfigDocument
from firmware.dsp.sources.wav import WavWriter, read_wav, read_wav_info
from firmware.tools.offline import (
    ANALYZE_COLUMNS,
    SPECTRUM_FRAMES,
    AnalyzeReport,
    Tally,
    analyze,
    detection_warnings,
    simulate,
    wav_document,
)
from tests.conftest import graph_node

RATE, SIZE = 16000, 1024
FRAME_S = SIZE / RATE


def small(data: dict[str, Any]) -> None:
    """The default config at a lower rate and shorter frames: quick to simulate and analyse."""
    data["acquisition"].update(sample_rate=RATE, frame_size=SIZE)


def lean(data: dict[str, Any]) -> None:
    """``small``, and the differential fed by the input directly: no filter kernels to
    compile (the peak finder and concentration nodes analysed are the default ones)."""
    small(data)
    graph = data["processing"]["default_graph"]
    graph["nodes"] = [n for n in graph["nodes"] if n["id"] not in ("bandpass", "gain")]
    graph["connections"] = [c for c in graph["connections"]
                            if c["to"] not in ("bandpass", "gain", "differential")]
    graph["connections"].append({"from": "input", "to": "differential"})


@pytest.fixture
def doc(make_doc: Callable[..., ConfigDocument]) -> ConfigDocument:
    return make_doc(small)


@pytest.fixture
def lean_doc(make_doc: Callable[..., ConfigDocument]) -> ConfigDocument:
    return make_doc(lean)


def truth_rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as fh:
        return list(csv.DictReader(fh))


def test_simulate_writes_audio_and_its_truth(doc: ConfigDocument, tmp_path: Path) -> None:
    out = tmp_path / "new" / "dir" / "cell.wav"
    truth = simulate(doc, seconds=1.0, out_path=out, concentration="steps:500,1500:0.5",
                     seed=3)  # steps repeat: 500 ppm again from 1 s on
    assert truth == tmp_path / "new" / "dir" / "cell.truth.csv"
    frames = math.ceil(1.0 / FRAME_S)
    info = read_wav_info(out)
    assert (info.sample_rate, info.channels, info.sample_format, info.frames) == (
        RATE, 2, "float32", frames * SIZE)
    rows = truth_rows(truth)
    assert len(rows) == frames and list(rows[0]) == ["time_s", "concentration_ppm"]
    times = [float(r["time_s"]) for r in rows]
    assert times == pytest.approx([(k + 0.5) * FRAME_S for k in range(frames)], abs=1e-6)
    ppm = [float(r["concentration_ppm"]) for r in rows]
    at = {round(t, 3): p for t, p in zip(times, ppm, strict=True)}
    assert at[0.032] == 500.0 and at[0.672] == 1500.0  # the profile given, not the config's
    # the truth is the mean over each frame: a frame holding a step is in between
    assert ppm[-1] == pytest.approx((0.04 * 1500.0 + 0.024 * 500.0) / FRAME_S)


def test_simulate_is_reproducible_by_seed_and_writes_the_format_asked(
        doc: ConfigDocument, tmp_path: Path) -> None:
    a = read_wav(simulate_to(doc, tmp_path / "a.wav", seed=5))[0]
    b = read_wav(simulate_to(doc, tmp_path / "b.wav", seed=5))[0]
    c = read_wav(simulate_to(doc, tmp_path / "c.wav", seed=6))[0]
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    simulate(doc, seconds=0.0, out_path=tmp_path / "q.wav", sample_format="int16")
    info = read_wav_info(tmp_path / "q.wav")
    assert info.sample_format == "int16" and info.frames == SIZE  # at least one frame


def simulate_to(doc: ConfigDocument, path: Path, *, seed: int) -> Path:
    simulate(doc, seconds=0.2, out_path=path, seed=seed)
    return path


def test_simulate_rejects_a_bad_profile(doc: ConfigDocument, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="ramps"):
        simulate(doc, seconds=1.0, out_path=tmp_path / "x.wav", concentration="ramps:1,2")
    assert not (tmp_path / "x.wav").exists()


def test_wav_document_reads_the_file_once_at_its_rate(doc: ConfigDocument,
                                                      tmp_path: Path) -> None:
    path = tmp_path / "rec.wav"
    with WavWriter(path, sample_rate=22050, channels=2) as wav:
        wav.write(np.zeros((2, 100)))
    changed = wav_document(doc, path)
    acquisition = changed.config.acquisition
    assert (acquisition.source, acquisition.sample_rate) == ("wav", 22050)
    assert acquisition.wav is not None
    assert (acquisition.wav.path, acquisition.wav.loop) == (path, False)
    assert acquisition.frame_size == SIZE  # the rest of the config is kept
    assert changed.config.processing == doc.config.processing
    assert changed.where(("processing",)) == doc.where(("processing",))


def test_analyze_writes_a_csv_row_per_frame_and_computing_node(lean_doc: ConfigDocument,
                                                              tmp_path: Path) -> None:
    doc = lean_doc
    wav = tmp_path / "sim.wav"
    truth = truth_rows(simulate(doc, seconds=1.0, out_path=wav, seed=1,
                                concentration="constant:1200"))
    out = io.StringIO()
    report = AnalyzeReport()
    rows = analyze(doc, wav, out, state_dir=tmp_path / "state", report=report)
    parsed = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert rows == report.rows == len(parsed) == 2 * len(truth)
    assert list(parsed[0]) == ANALYZE_COLUMNS
    concentration = [r for r in parsed if r["node_id"] == "concentration"]
    assert [float(r["time_s"]) for r in concentration] == pytest.approx(
        [float(t["time_s"]) for t in truth], abs=1e-6)
    assert [int(r["sequence"]) for r in concentration] == list(range(len(truth)))
    settled = [float(r["concentration_ppm"]) for r in concentration[-5:]]
    assert settled == pytest.approx([1200.0] * 5, rel=0.05)
    # the detectors' tallies, and the recording's strongest tone: the simulated resonance
    assert list(report.tallies) == ["peak_finder"]
    tally = report.tallies["peak_finder"]
    assert tally.frames == len(truth) and 0 < tally.detections <= tally.frames
    assert tally.best_snr_db > 12.0
    assert report.strongest_hz == pytest.approx(2000.0, abs=RATE / SIZE)
    assert report.doc is not None and report.doc.config.acquisition.source == "wav"
    assert detection_warnings(report) == []


def test_analyze_writes_json_lines(lean_doc: ConfigDocument, tmp_path: Path) -> None:
    doc = lean_doc
    wav = tmp_path / "sim.wav"
    simulate(doc, seconds=0.3, out_path=wav)
    out = io.StringIO()
    rows = analyze(doc, wav, out, fmt="jsonl", state_dir=tmp_path / "state")
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert len(lines) == rows > 0
    assert all(list(line) == ANALYZE_COLUMNS for line in lines)
    assert {line["node_id"] for line in lines} == {"peak_finder", "concentration"}
    assert {line["kind"] for line in lines} == {"peak", "concentration"}


def spectrum_of(*frames: np.ndarray) -> AnalyzeReport:
    report = AnalyzeReport()
    for samples in frames:
        report.add_spectrum(samples)
    report.finish(RATE)
    return report


def test_the_strongest_tone_is_that_of_the_differential_signal() -> None:
    t = np.arange(SIZE) / RATE
    tone = np.sin(2 * np.pi * 3000.0 * t)
    common = 5.0 * np.sin(2 * np.pi * 1000.0 * t)  # cancels in A - B
    hum = 10.0 * np.sin(2 * np.pi * 50.0 * t)  # below 100 Hz: not a resonance
    report = spectrum_of(np.vstack([tone + common + hum, -tone + common]))
    assert report.strongest_hz == pytest.approx(3000.0, abs=RATE / SIZE)
    mono = spectrum_of(np.sin(2 * np.pi * 1500.0 * t)[None, :])
    assert mono.strongest_hz == pytest.approx(1500.0, abs=RATE / SIZE)
    assert math.isnan(spectrum_of(np.zeros((2, SIZE))).strongest_hz)
    assert math.isnan(spectrum_of().strongest_hz)


def test_only_the_first_frames_are_averaged() -> None:
    t = np.arange(SIZE) / RATE
    first = np.vstack([np.sin(2 * np.pi * 3000.0 * t), np.zeros(SIZE)])
    later = np.vstack([100.0 * np.sin(2 * np.pi * 5000.0 * t), np.zeros(SIZE)])
    report = spectrum_of(*([first] * SPECTRUM_FRAMES), later)
    assert report.strongest_hz == pytest.approx(3000.0, abs=RATE / SIZE)


def report_for(doc: ConfigDocument, **tallies: Tally) -> AnalyzeReport:
    report = AnalyzeReport(doc=doc, tallies=dict(tallies))
    return report


def test_no_warning_without_a_document_or_for_detectors_that_detected(
        doc: ConfigDocument) -> None:
    assert detection_warnings(AnalyzeReport(tallies={"peak_finder": Tally(frames=5)})) == []
    assert detection_warnings(report_for(doc, peak_finder=Tally(frames=5, detections=1))) == []
    assert detection_warnings(report_for(doc, peak_finder=Tally(frames=0))) == []


def test_a_silent_peak_finder_with_a_tone_outside_its_band(doc: ConfigDocument) -> None:
    report = report_for(doc, peak_finder=Tally(frames=40, best_snr_db=7.25))
    report.strongest_hz = 3100.4
    [warning] = detection_warnings(report)
    assert warning == (
        f"{doc.node_location('peak_finder')}: peak_finder 'peak_finder' detected nothing in 40 "
        f"frames (threshold 12 dB, search band 1700-2300 Hz; its best candidate was 7.2 dB "
        f"over the noise floor); likely cause: the recording's strongest tone is at 3100 Hz, "
        f"outside the search band; if that is the cell's resonance, center the filters and "
        f"frequency_min/frequency_max on it")


def test_a_silent_peak_finder_with_no_better_explanation(doc: ConfigDocument) -> None:
    report = report_for(doc, peak_finder=Tally(frames=3))
    report.strongest_hz = 2000.0  # inside the band: the signal is too weak
    [warning] = detection_warnings(report)
    assert "(threshold 12 dB, search band 1700-2300 Hz)" in warning  # no candidate at all
    assert warning.endswith("; likely cause: the signal is below detection_threshold_db, or the "
                            "resonance is not in the search band")


def test_a_signal_chain_that_cannot_detect_is_named_first(
        make_doc: Callable[..., ConfigDocument]) -> None:
    def off_band(data: dict[str, Any]) -> None:
        small(data)
        peak = graph_node(data, "peak_finder")["parameters"]
        peak.update(center_frequency=2400.0, bandwidth=600.0)

    doc = make_doc(off_band)
    chain = [w for w in doc.warnings if "nodes[peak_finder]" in w]
    assert chain, doc.warnings
    report = report_for(doc, peak_finder=Tally(frames=3))
    report.strongest_hz = 900.0
    [warning] = detection_warnings(report)
    cause = warning.split("; likely cause: ", 1)[1]
    assert cause == "; ".join(w.split(": ", 2)[-1] for w in chain)


def test_a_silent_lockin(make_doc: Callable[..., ConfigDocument]) -> None:
    def with_lockin(data: dict[str, Any]) -> None:
        small(data)
        graph = data["processing"]["default_graph"]
        graph["nodes"].append({"id": "li", "type": "lockin",
                               "parameters": {"reference_frequency": 2000.0}})
        graph["connections"].append({"from": "differential", "to": "li"})

    doc = make_doc(with_lockin)
    [warning] = detection_warnings(report_for(doc, li=Tally(frames=9)))
    assert warning == (f"{doc.node_location('li')}: lockin 'li' detected nothing in 9 frames; "
                       f"likely cause: no signal at reference_frequency")
