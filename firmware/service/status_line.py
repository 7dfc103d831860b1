"""The compact status line `pafw run` logs every few seconds."""

from __future__ import annotations

import math

from firmware.state import ComputingResult


def _fmt(value: float, spec: str, unit: str = "") -> str:
    return "--" if not math.isfinite(value) else f"{value:{spec}}{unit}"


def describe_result(result: ComputingResult) -> str:
    """One result as ``conc 1203.4 ppm | 2000.31 Hz | A 0.02406 (-32.4 dB) | SNR 38.1 dB``."""
    parts: list[str] = []
    if result.kind == "concentration":
        parts.append(f"{result.node_id} {_fmt(result.concentration_ppm, '.1f', ' ppm')}")
    else:
        parts.append(result.node_id)
    parts.append(_fmt(result.frequency_hz, ".2f", " Hz"))
    parts.append(
        f"A {_fmt(result.amplitude, '.5f')} ({_fmt(result.amplitude_db, '.1f', ' dB')})"
    )
    parts.append(f"SNR {_fmt(result.snr_db, '.1f', ' dB')}")
    if not result.detected:
        parts.append("no peak")
    return " | ".join(parts)


def status_line(
    results: list[ComputingResult],
    *,
    truth_ppm: float,
    frames_per_s: float,
    cpu_percent: float,
    overruns: int,
) -> str:
    """The whole line: the concentration results (or peaks if none), then loop health."""
    shown = [r for r in results if r.kind == "concentration"] or results
    body = " || ".join(describe_result(r) for r in shown) or "no result yet"
    if math.isfinite(truth_ppm):
        body += f" | truth {truth_ppm:.1f} ppm"
    return f"{body} | {frames_per_s:.1f} fps | cpu {cpu_percent:.1f}% | overruns {overruns}"
