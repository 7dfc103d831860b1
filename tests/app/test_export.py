"""CSV export of the trend (firmware/app/export.py): ``from``/``to`` parsing (epoch seconds or
ISO 8601, bad input named in the error), the CSV document (columns, one row per node and
second sorted by time then node, empty cells for unknown values), and ``stored_series``
reading the trend files a TrendStore saved (node filter, time bounds, units, an unknown node).
"""

from __future__ import annotations

import csv
import io
import math
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from firmware.app.export import (
    EXPORT_COLUMNS,
    Series,
    TimeRangeError,
    csv_text,
    parse_time,
    stored_series,
    write_csv,
)
from firmware.app.trend import TrendRecorder
from firmware.app.trend_store import TrendStore
from firmware.errors import PafwError
from firmware.state import ComputingResult

T0 = datetime(2026, 12, 3, 7, 0, tzinfo=UTC).timestamp()


# -- parse_time -------------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "expected"), [
    ("1733212800", 1733212800.0),
    (" 1.5 ", 1.5),
    ("-10", -10.0),
    ("1e3", 1000.0),
    ("2026-12-03T07:00:00Z", T0),
    ("2026-12-03T07:00:00z", T0),
    ("2026-12-03T07:00:00", T0),  # no zone: UTC
    ("2026-12-03T09:00:00+02:00", T0),
    ("2026-12-03 07:00:00.250Z", T0 + 0.25),
    ("2026-12-03", T0 - 7 * 3600),
])
def test_times_as_epoch_seconds_or_iso_8601(text: str, expected: float) -> None:
    assert parse_time(text, "from") == pytest.approx(expected, abs=1e-6)


@pytest.mark.parametrize("text", ["yesterday", "", "   ", "2026-13-01", "07:00", "1,5",
                                  "2026-12-03T07:00:00+25:00"])
def test_other_text_is_refused_naming_the_bound(text: str) -> None:
    with pytest.raises(TimeRangeError, match=r"^to must be epoch seconds or an ISO 8601 time "
                                             r"such as 2026-12-03T07:00:00Z, got "):
        parse_time(text, "to")


@pytest.mark.parametrize("text", ["nan", "inf", "-Infinity", "1e999"])
def test_non_finite_numbers_are_refused(text: str) -> None:
    with pytest.raises(TimeRangeError, match=f"^from must be a finite time, got '{text}'$"):
        parse_time(text, "from")


def test_the_error_quotes_at_most_40_characters_and_is_a_value_error() -> None:
    with pytest.raises(ValueError, match=r"got 'x{40}'$") as refused:
        parse_time("x" * 5000, "from")
    assert isinstance(refused.value, PafwError)


# -- the CSV ------------------------------------------------------------------------------------


def read(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def test_rows_are_sorted_by_time_then_node() -> None:
    conc = Series("conc", "concentration_ppm", "ppm",
                  np.array([[T0 + 1.5, 410.0, 400.0, 420.0], [T0 + 0.5, 405.0, 401.0, 409.0]]))
    peak = Series("a_peak", "amplitude", "FS", np.array([[T0 + 0.5, 0.02, 0.01, 0.03]]))
    text, rows = csv_text([conc, peak])
    assert rows == 3
    assert text.splitlines()[0] == ",".join(EXPORT_COLUMNS)
    table = read(text)
    assert [(r["epoch_s"], r["node_id"]) for r in table] == [
        (f"{T0 + 0.5:.1f}", "a_peak"), (f"{T0 + 0.5:.1f}", "conc"), (f"{T0 + 1.5:.1f}", "conc")]
    assert table[1] == {"time": "2026-12-03T07:00:00.500+00:00", "epoch_s": f"{T0 + 0.5:.1f}",
                        "node_id": "conc", "field": "concentration_ppm", "unit": "ppm",
                        "mean": "405", "min": "401", "max": "409"}
    assert table[0]["unit"] == "FS" and table[0]["mean"] == "0.02"


def test_values_use_six_significant_digits_and_unknown_ones_are_empty() -> None:
    series = Series("conc", "concentration_ppm", "ppm",
                    np.array([[T0 + 0.5, 1234.56789, math.nan, math.inf]]))
    table = read(csv_text([series])[0])
    assert (table[0]["mean"], table[0]["min"], table[0]["max"]) == ("1234.57", "", "")


def test_no_series_or_no_rows_give_the_header_only() -> None:
    assert csv_text([]) == (",".join(EXPORT_COLUMNS) + "\n", 0)
    empty = Series("conc", "concentration_ppm", "ppm", np.empty((0, 4)))
    assert csv_text([empty])[1] == 0


def test_write_csv_writes_to_any_text_stream() -> None:
    out = io.StringIO()
    series = Series("n", "amplitude", "FS", np.array([[T0 + 0.5, 1.0, 1.0, 1.0]]))
    assert write_csv(iter([series]), out) == 1
    assert out.getvalue().count("\n") == 2 and "\r" not in out.getvalue()


# -- stored_series ------------------------------------------------------------------------------


def save_trends(state_dir: Path, seconds: int) -> None:
    """Run a recorder over ``seconds`` of results of two nodes and save it like the
    appliance does."""
    recorder = TrendRecorder(hours=1)
    for i in range(seconds + 1):  # the sample of the last second closes the one before
        t = T0 + i
        recorder.sample({
            "conc": ComputingResult("conc", "concentration", t, float(i), i,
                                    concentration_ppm=400.0 + i),
            "peak": ComputingResult("peak", "peak", t, float(i), i, amplitude=0.01 * i),
        })
    TrendStore(state_dir, recorder.capacity).save(recorder)


def test_stored_series_reads_the_saved_trends_within_the_bounds(tmp_path: Path) -> None:
    save_trends(tmp_path, 10)
    everything = {s.node_id: s for s in stored_series(tmp_path, since=-math.inf,
                                                      until=math.inf)}
    assert sorted(everything) == ["conc", "peak"]
    conc, peak = everything["conc"], everything["peak"]
    assert (conc.field, conc.unit, peak.field, peak.unit) == (
        "concentration_ppm", "ppm", "amplitude", "FS")
    assert conc.rows.shape == (10, 4) and conc.rows[0].tolist() == [T0 + 0.5, 400.0, 400.0,
                                                                     400.0]
    bounded = stored_series(tmp_path, since=T0 + 2.5, until=T0 + 4.5, node="conc")
    assert [s.node_id for s in bounded] == ["conc"]
    assert bounded[0].rows[:, 0].tolist() == [T0 + 2.5, T0 + 3.5, T0 + 4.5]  # both inclusive
    assert stored_series(tmp_path, since=T0 + 100, until=T0 + 200, node="peak")[0].rows.size == 0
    text, rows = csv_text(stored_series(tmp_path, since=T0, until=T0 + 1))
    assert rows == 2 and [r["node_id"] for r in read(text)] == ["conc", "peak"]


def test_an_unknown_node_is_an_error_listing_the_known_ones(tmp_path: Path) -> None:
    with pytest.raises(PafwError, match=f"no saved trend for node 'conc' in {tmp_path} "
                                        r"\(nodes: none\)"):
        stored_series(tmp_path, since=0, until=1, node="conc")
    save_trends(tmp_path, 3)
    with pytest.raises(PafwError, match=r"no saved trend for node 'co2' .*\(nodes: conc, peak\)"):
        stored_series(tmp_path, since=0, until=1, node="co2")
    assert stored_series(tmp_path / "nothing", since=0, until=1) == []
