"""The trend's one-second buckets and their merging into fewer points."""

from __future__ import annotations

import math

from firmware.app.trend import NodeTrend, TrendRecorder
from firmware.state import ComputingResult


def test_buckets_hold_mean_min_max_per_second() -> None:
    trend = NodeTrend("c", "concentration_ppm", "ppm", capacity=100)
    for t, v in ((10.1, 1.0), (10.5, 3.0), (10.9, 2.0), (11.2, 7.0), (11.3, math.nan)):
        trend.add(t, v)
    bucket_s, points = trend.points(0.0, 100)
    assert bucket_s == 1.0
    assert points == [[10.5, 2.0, 1.0, 3.0], [11.5, 7.0, 7.0, 7.0]]  # the open one too


def test_merging_keeps_the_extremes_and_the_newest() -> None:
    trend = NodeTrend("c", "concentration_ppm", "ppm", capacity=1000)
    for second in range(100):
        trend.add(float(second), 1000.0 if second == 37 else float(second % 2))
    bucket_s, points = trend.points(0.0, 10)
    assert bucket_s == 10.0 and len(points) == 10
    assert max(p[3] for p in points) == 1000.0  # a one-second spike survives the merge
    assert points[-1][0] == 95.0  # mean time of the newest ten buckets


def test_the_ring_keeps_the_newest_buckets() -> None:
    trend = NodeTrend("c", "concentration_ppm", "ppm", capacity=60)
    for second in range(200):
        trend.add(float(second), float(second))
    _, points = trend.points(0.0, 1000)
    assert len(points) == 61  # 60 closed buckets + the open one
    assert points[0][1] == 139.0 and points[-1][1] == 199.0
    assert trend.points(190.0, 1000)[1][0][1] == 190.0  # ``since`` cuts older ones


def test_each_result_is_counted_once() -> None:
    recorder = TrendRecorder(hours=1.0)
    result = ComputingResult("c", "concentration", 100.2, 5.0, 7, True,
                             concentration_ppm=500.0)
    for _ in range(5):  # the same result seen by five samplings
        recorder.sample({"c": result})
    recorder.sample({"c": result._replace(sequence=8, monotonic=5.1, timestamp=100.4,
                                          concentration_ppm=700.0)})
    _, points = recorder.trends["c"].points(0.0, 10)
    assert points == [[100.5, 600.0, 500.0, 700.0]]
