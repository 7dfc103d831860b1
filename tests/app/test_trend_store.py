"""The trend on disk (firmware/app/trend_store.py): the file format (four little-endian float64
per row; a row cut short or not finite is skipped), which files exist, incremental saves that
append only the buckets closed since the last one, bounded files (compaction), restoring at
start (only listed nodes, only the recorder's window, no duplicate after the next save), a
node whose kind changed, and a disk that refuses writes (counted, never raised, caught up
later)."""

from __future__ import annotations

import logging
import struct
from pathlib import Path

import numpy as np
import pytest

from firmware.app.trend import TrendRecorder
from firmware.app.trend_store import ROW_BYTES, TrendStore, read_trend, stored_trends, trend_dir
from firmware.state import ComputingResult

T0 = 1_800_000_000.0


class Feeder:
    """Feeds a recorder one result per node and second, as the web server samples them."""

    def __init__(self, recorder: TrendRecorder) -> None:
        self.recorder = recorder
        self.seq = 0

    def second(self, t: float, **ppm_by_node: float) -> None:
        self.seq += 1
        self.recorder.sample({
            node: ComputingResult(node, "concentration", t, t, self.seq, detected=True,
                                  concentration_ppm=ppm)
            for node, ppm in ppm_by_node.items()})

    def run(self, start: int, stop: int, node: str = "conc") -> None:
        """Seconds ``start``..``stop - 1`` with ppm = 400 + second, plus one sample at
        ``stop`` that closes the last of them."""
        for i in range(start, stop + 1):
            self.second(T0 + i, **{node: 400.0 + i})


def conc_file(state_dir: Path, node: str = "conc") -> Path:
    return trend_dir(state_dir) / "concentration_ppm" / f"{node}.f64"


# -- the file format ----------------------------------------------------------------------------


def test_the_format_is_four_little_endian_doubles_per_row(tmp_path: Path) -> None:
    path = tmp_path / "x.f64"
    path.write_bytes(struct.pack("<8d", 10.5, 1.0, 0.5, 1.5, 11.5, 2.0, 1.5, 2.5))
    rows = read_trend(path)
    assert rows.tolist() == [[10.5, 1.0, 0.5, 1.5], [11.5, 2.0, 1.5, 2.5]]
    assert read_trend(path, last=1).tolist() == [[11.5, 2.0, 1.5, 2.5]]
    assert ROW_BYTES == 32


def test_a_missing_file_is_empty_and_damaged_rows_are_skipped(tmp_path: Path) -> None:
    assert read_trend(tmp_path / "none.f64").shape == (0, 4)
    path = tmp_path / "x.f64"
    path.write_bytes(struct.pack("<4d", 10.5, 1.0, 1.0, 1.0)
                     + struct.pack("<4d", 11.5, float("nan"), 1.0, 1.0)
                     + struct.pack("<4d", 12.5, 3.0, 3.0, float("inf"))
                     + struct.pack("<4d", 13.5, 4.0, 4.0, 4.0)
                     + struct.pack("<2d", 14.5, 5.0))  # a power cut in the middle of a row
    assert read_trend(path)[:, 0].tolist() == [10.5, 13.5]


def test_stored_trends_finds_the_files_of_known_fields(tmp_path: Path) -> None:
    base = trend_dir(tmp_path)
    assert base == tmp_path / "trend"
    assert stored_trends(tmp_path) == {}
    for rel in ("concentration_ppm/conc.f64", "amplitude/peak.f64", "amplitude/notes.txt",
                "other_field/x.f64"):
        (base / rel).parent.mkdir(parents=True, exist_ok=True)
        (base / rel).write_bytes(b"")
    assert stored_trends(tmp_path) == {
        "conc": ("concentration_ppm", base / "concentration_ppm" / "conc.f64"),
        "peak": ("amplitude", base / "amplitude" / "peak.f64")}


# -- saving -------------------------------------------------------------------------------------


def test_saves_append_only_what_closed_since_the_last(tmp_path: Path) -> None:
    recorder = TrendRecorder(hours=1)
    feeder, store = Feeder(recorder), TrendStore(tmp_path, recorder.capacity)
    feeder.second(T0 + 0, conc=400.0)
    feeder.second(T0 + 0.5, conc=410.0)  # same second: one bucket
    store.save(recorder)
    assert not conc_file(tmp_path).exists()  # the only bucket is still open
    feeder.run(1, 5)
    store.save(recorder)
    rows = read_trend(conc_file(tmp_path))
    assert rows.tolist()[0] == [T0 + 0.5, 405.0, 400.0, 410.0]
    assert rows[:, 0].tolist() == [T0 + i + 0.5 for i in range(5)]
    size = conc_file(tmp_path).stat().st_size
    store.save(recorder)  # nothing new
    assert conc_file(tmp_path).stat().st_size == size
    feeder.run(6, 8)
    store.save(recorder)
    assert read_trend(conc_file(tmp_path))[:, 0].tolist() == [T0 + i + 0.5 for i in range(8)]
    assert store.get_status() == {"directory": str(tmp_path / "trend"), "saves": 4,
                                  "compactions": 0, "write_errors": 0, "last_error": None}


def test_files_stay_bounded_by_twice_the_capacity(tmp_path: Path) -> None:
    recorder = TrendRecorder(hours=0)  # the smallest trend: 60 buckets
    feeder, store = Feeder(recorder), TrendStore(tmp_path, recorder.capacity)
    assert recorder.capacity == 60
    for start in range(0, 300, 30):
        feeder.run(start, start + 30)
        store.save(recorder)
        assert conc_file(tmp_path).stat().st_size <= 2 * 60 * ROW_BYTES
    assert store.compactions >= 1
    rows = read_trend(conc_file(tmp_path))
    assert rows[-1, 0] == T0 + 299.5  # the newest are kept, in order, none twice
    assert np.all(np.diff(rows[:, 0]) == 1.0)
    assert [p.name for p in conc_file(tmp_path).parent.iterdir()] == ["conc.f64"]


def test_a_disk_that_refuses_writes_is_counted_then_caught_up(tmp_path: Path, caplog) -> None:
    recorder = TrendRecorder(hours=1)
    feeder, store = Feeder(recorder), TrendStore(tmp_path, recorder.capacity)
    trend_dir(tmp_path).write_text("a file where the directory should be")
    feeder.run(0, 3)
    with caplog.at_level(logging.ERROR, logger="pafw.web"):
        store.save(recorder)
        feeder.run(3, 5)
        store.save(recorder)
    assert store.write_errors == 2 and store.last_error is not None
    assert store.last_error.startswith(("FileExistsError", "NotADirectoryError"))
    assert len([r for r in caplog.records if "cannot save the trend" in r.getMessage()]) == 1
    trend_dir(tmp_path).unlink()  # the disk is back
    store.save(recorder)
    assert read_trend(conc_file(tmp_path))[:, 0].tolist() == [T0 + i + 0.5 for i in range(5)]


def test_a_node_whose_kind_changed_starts_a_new_series(tmp_path: Path) -> None:
    recorder = TrendRecorder(hours=1)
    feeder, store = Feeder(recorder), TrendStore(tmp_path, recorder.capacity)
    feeder.run(0, 3, node="n1")
    store.save(recorder)
    for i in range(3, 7):  # the same node id, now a peak finder
        recorder.sample({"n1": ComputingResult("n1", "peak", T0 + i, T0 + i, 100 + i,
                                               detected=True, amplitude=0.5)})
    store.save(recorder)
    assert read_trend(conc_file(tmp_path, "n1"))[:, 0].tolist() == [T0 + 0.5, T0 + 1.5,
                                                                   T0 + 2.5]
    amplitude = read_trend(trend_dir(tmp_path) / "amplitude" / "n1.f64")
    assert amplitude[:, 0].tolist() == [T0 + 3.5, T0 + 4.5, T0 + 5.5]
    assert np.all(amplitude[:, 1] == 0.5)


# -- restoring ----------------------------------------------------------------------------------


def test_a_restart_restores_the_window_and_appends_without_duplicates(tmp_path: Path) -> None:
    first = TrendRecorder(hours=0)  # 60 buckets
    feeder = Feeder(first)
    feeder.run(0, 100)  # seconds 0..99 closed; the ring keeps 40..99
    feeder.second(T0 + 101, other=1.0)  # another node, absent from the new graph
    feeder.second(T0 + 102, other=2.0)
    TrendStore(tmp_path, first.capacity).save(first)
    assert sorted(stored_trends(tmp_path)) == ["conc", "other"]

    again = TrendRecorder(hours=0)
    store = TrendStore(tmp_path, again.capacity)
    restored = store.load(again, ["conc"], now=T0 + 120)
    assert sorted(again.trends) == ["conc"]
    rows = again.trends["conc"].closed_rows()
    assert restored == rows.shape[0] == 40  # only the window: centres >= now - 60 s
    assert rows[0, 0] == T0 + 60.5 and rows[-1, 0] == T0 + 99.5
    Feeder(again).run(120, 123)
    store.save(again)
    on_disk = read_trend(conc_file(tmp_path))[:, 0]
    assert len(set(on_disk.tolist())) == len(on_disk)  # nothing saved twice
    assert on_disk[-4:].tolist() == [T0 + 99.5, T0 + 120.5, T0 + 121.5, T0 + 122.5]


def test_loading_nothing_restores_nothing(tmp_path: Path) -> None:
    recorder = TrendRecorder(hours=1)
    assert TrendStore(tmp_path, recorder.capacity).load(recorder, ["conc"], now=T0) == 0
    assert recorder.trends == {}


@pytest.mark.parametrize("hours", [0.5, 2])
def test_restored_units_follow_the_field(tmp_path: Path, hours: float) -> None:
    recorder = TrendRecorder(hours=hours)
    Feeder(recorder).run(0, 3)
    recorder.sample({"pk": ComputingResult("pk", "peak", T0, T0, 999, amplitude=0.1)})
    recorder.sample({"pk": ComputingResult("pk", "peak", T0 + 1, T0 + 1, 1000, amplitude=0.1)})
    TrendStore(tmp_path, recorder.capacity).save(recorder)
    again = TrendRecorder(hours=hours)
    TrendStore(tmp_path, again.capacity).load(again, ["conc", "pk"], now=T0 + 5)
    assert (again.trends["conc"].unit, again.trends["pk"].unit) == ("ppm", "FS")
    assert again.trends["pk"].field == "amplitude"
