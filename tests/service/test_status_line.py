"""The status line `pafw run` logs and sends to systemd (firmware/service/status_line.py): one
result per part (concentration, frequency, amplitude in FS and dB, SNR), ``--`` for unknown
values, ``no peak`` when nothing was detected; concentrations shown instead of the peaks
behind them; the simulator's truth and the loop's health at the end."""

from __future__ import annotations

import math

from firmware.service.status_line import describe_result, status_line
from firmware.state import ComputingResult


def conc(node_id: str = "conc", ppm: float = 1203.44, detected: bool = True
         ) -> ComputingResult:
    return ComputingResult(node_id, "concentration", 0.0, 0.0, 1, detected=detected,
                           frequency_hz=2000.314, amplitude=0.0240629, amplitude_db=-32.37,
                           snr_db=38.06, concentration_ppm=ppm)


def peak(node_id: str = "peak", detected: bool = True) -> ComputingResult:
    return ComputingResult(node_id, "peak", 0.0, 0.0, 1, detected=detected,
                           frequency_hz=1999.5, amplitude=0.5, amplitude_db=-6.02, snr_db=20.0)


def test_a_concentration_result() -> None:
    assert describe_result(conc()) == (
        "conc 1203.4 ppm | 2000.31 Hz | A 0.02406 (-32.4 dB) | SNR 38.1 dB")


def test_a_peak_result_has_no_concentration() -> None:
    assert describe_result(peak()) == "peak | 1999.50 Hz | A 0.50000 (-6.0 dB) | SNR 20.0 dB"


def test_unknown_values_show_as_dashes_and_no_detection_is_said() -> None:
    empty = ComputingResult("conc", "concentration", 0.0, 0.0, 1)
    assert describe_result(empty) == "conc -- | -- | A -- (--) | SNR -- | no peak"
    odd = ComputingResult("lk", "lockin", 0.0, 0.0, 1, detected=True, frequency_hz=math.inf,
                          amplitude=-math.inf, amplitude_db=math.nan, snr_db=5.0)
    assert describe_result(odd) == "lk | -- | A -- (--) | SNR 5.0 dB"
    assert describe_result(conc(detected=False)).endswith(" | SNR 38.1 dB | no peak")


def test_the_line_shows_concentrations_rather_than_their_peaks() -> None:
    line = status_line([peak(), conc("c1", 400.0), conc("c2", 2500.0)], truth_ppm=math.nan,
                       frames_per_s=11.71875, cpu_percent=4.25, overruns=0)
    assert line == ("c1 400.0 ppm | 2000.31 Hz | A 0.02406 (-32.4 dB) | SNR 38.1 dB || "
                    "c2 2500.0 ppm | 2000.31 Hz | A 0.02406 (-32.4 dB) | SNR 38.1 dB"
                    " | 11.7 fps | cpu 4.2% | overruns 0")
    assert "peak |" not in line


def test_without_concentrations_the_peaks_are_shown() -> None:
    line = status_line([peak("p1"), peak("p2", detected=False)], truth_ppm=math.nan,
                       frames_per_s=0.0, cpu_percent=0.0, overruns=3)
    assert line.startswith("p1 | 1999.50 Hz")
    assert " || p2 | 1999.50 Hz" in line and "| no peak | 0.0 fps" in line
    assert line.endswith("| overruns 3")


def test_no_result_yet_and_the_simulators_truth() -> None:
    assert status_line([], truth_ppm=math.nan, frames_per_s=0.0, cpu_percent=0.0,
                       overruns=0) == "no result yet | 0.0 fps | cpu 0.0% | overruns 0"
    assert status_line([], truth_ppm=1200.04, frames_per_s=12.0, cpu_percent=99.96,
                       overruns=12) == (
        "no result yet | truth 1200.0 ppm | 12.0 fps | cpu 100.0% | overruns 12")
    with_result = status_line([conc()], truth_ppm=1200.0, frames_per_s=1.0, cpu_percent=1.0,
                              overruns=0)
    assert " | SNR 38.1 dB | truth 1200.0 ppm | 1.0 fps" in with_result


def test_the_line_is_one_line() -> None:
    line = status_line([conc(), peak()], truth_ppm=math.inf, frames_per_s=math.nan,
                       cpu_percent=0.0, overruns=0)
    assert "\n" not in line and "truth" not in line
