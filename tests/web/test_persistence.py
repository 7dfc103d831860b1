"""What the web API keeps across a restart (the trend, the action events) and the CSV export
of the measurements, over HTTP and with `pafw export`."""

from __future__ import annotations

import csv
import io
import os
import subprocess
import sys
import time

import numpy as np

from firmware.app.export import EXPORT_COLUMNS
from firmware.app.trend import NodeTrend, TrendRecorder
from firmware.app.trend_store import ROW_BYTES, TrendStore, read_trend
from tests.web.conftest import TOKEN


def test_store_appends_only_new_buckets_and_stays_bounded(tmp_path):
    recorder = TrendRecorder(hours=60 / 3600)  # 60 buckets
    store = TrendStore(tmp_path, recorder.capacity)
    trend = recorder.trends["c"] = NodeTrend("c", "concentration_ppm", "ppm", 60)
    for second in range(10):
        trend.add(float(second), float(second))
    store.save(recorder)
    store.save(recorder)  # nothing new: nothing appended
    path = store.path(trend)
    assert read_trend(path)[:, 1].tolist() == list(range(9))  # the open 10th is not closed
    for second in range(10, 400):
        trend.add(float(second), float(second))
        if second % 30 == 0:
            store.save(recorder)
    store.save(recorder)
    assert path.stat().st_size <= 2 * 60 * ROW_BYTES and store.compactions >= 1
    rows = read_trend(path)
    assert rows[-1, 1] == 398.0 and np.all(np.diff(rows[:, 0]) == 1.0)
    with path.open("ab") as out:
        out.write(b"\x00" * 17)  # a row cut short by a power cut
    assert read_trend(path)[-1, 1] == 398.0


def test_trend_and_events_survive_a_restart(make_rig):
    rig = make_rig()
    rig.wait_for(lambda: len(rig.get("/api/v1/trend?seconds=60").body.get("points", [])) >= 3,
                 what="three trend buckets")
    answer = rig.post("/api/v1/relays/alarm/pulse", {"seconds": 0.2}, token=TOKEN)
    assert answer.status == 200, answer.body
    before = rig.get("/api/v1/trend?seconds=60").body["points"]
    events = rig.get("/api/v1/events?kinds=test_pulse").body
    assert [(e["id"], e["kind"]) for e in events["events"]] == [("relay:alarm", "test_pulse")]
    rig.server.stop()  # saves the trend
    rig.appliance.stop()

    again = make_rig()
    points = again.get("/api/v1/trend?seconds=600").body["points"]
    restored = {p[0] for p in points}
    assert {p[0] for p in before[:-1]} <= restored  # every closed bucket came back
    kept = again.get("/api/v1/events?kinds=test_pulse").body
    assert kept["events"] == events["events"]
    newer = again.get(f"/api/v1/events?since={events['last_seq']}&kinds=test_pulse").body
    assert newer["events"] == []


def test_events_query_errors(make_rig):
    rig = make_rig()
    for bad in ("since=-1", "limit=abc", "limit=999999"):
        answer = rig.get(f"/api/v1/events?{bad}")
        assert answer.status == 400 and answer.body["error"]["code"] == "bad_query", bad


def _rows(body: bytes) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(body.decode())))


def test_export_csv_of_the_live_measurements(make_rig):
    rig = make_rig()
    rig.wait_for(lambda: len(_rows(rig.get("/api/v1/export.csv").body)) >= 6,
                 what="three seconds of two nodes")
    answer = rig.get("/api/v1/export.csv")
    assert answer.status == 200
    assert answer.headers["content-type"].startswith("text/csv")
    assert answer.headers["content-disposition"].startswith('attachment; filename="pafw-')
    assert answer.body.decode().splitlines()[0] == ",".join(EXPORT_COLUMNS)
    rows = _rows(answer.body)
    assert {r["node_id"] for r in rows} == {"concentration", "peak_finder"}
    ppm = [r for r in rows if r["node_id"] == "concentration"]
    assert all(r["field"] == "concentration_ppm" and r["unit"] == "ppm" for r in ppm)
    assert all(float(r["min"]) <= float(r["mean"]) <= float(r["max"]) for r in ppm)
    times = [float(r["epoch_s"]) for r in rows]
    assert times == sorted(times)
    cut = times[len(times) // 2]
    iso = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(cut))
    late = _rows(rig.get(f"/api/v1/export.csv?from={iso}&node=concentration").body)
    assert late and all(float(r["epoch_s"]) >= int(cut) for r in late)
    assert {r["node_id"] for r in late} == {"concentration"}
    early = _rows(rig.get(f"/api/v1/export.csv?to={cut}").body)
    assert early and all(float(r["epoch_s"]) <= cut for r in early)
    for bad, status in (("from=yesterday", 400), ("from=20&to=10", 400), ("node=nope", 404),
                        ("node=bandpass", 404)):
        answer = rig.get(f"/api/v1/export.csv?{bad}")
        assert answer.status == status, (bad, answer.body)


def test_pafw_export_reads_the_saved_trend(make_rig, state_env, tmp_path):
    rig = make_rig()
    rig.wait_for(lambda: len(_rows(rig.get("/api/v1/export.csv").body)) >= 6,
                 what="three seconds of two nodes (the newest one still open)")
    rig.server.stop()  # saves the trend
    rig.appliance.stop()
    out = tmp_path / "m.csv"
    done = subprocess.run([sys.executable, "-m", "firmware.cli", "export", "--node",
                           "concentration", "--out", str(out)], capture_output=True,
                          text=True, timeout=120, env={**os.environ, **state_env})
    assert done.returncode == 0, done.stderr
    rows = _rows(out.read_bytes())
    assert len(rows) >= 2 and {r["node_id"] for r in rows} == {"concentration"}
    assert f"wrote {len(rows)} rows" in done.stderr
    done = subprocess.run([sys.executable, "-m", "firmware.cli", "export", "--node", "nope"],
                          capture_output=True, text=True, timeout=120,
                          env={**os.environ, **state_env})
    assert done.returncode == 1 and "no saved trend for node 'nope'" in done.stderr
