"""Concentration profiles: values, exact means and the CLI syntax."""

from __future__ import annotations

import math

import pytest

from firmware.dsp.sources.profiles import ConcentrationProfile, build_profile, parse_profile
from firmware.dsp.sources.settings import ConstantProfile, CsvProfile, RampProfile, StepsProfile
from firmware.errors import ConfigError


def test_constant():
    p = build_profile(ConstantProfile(value_ppm=750))
    assert p.value_at(0) == 750
    assert p.value_at(1e6) == 750
    assert p.mean_over(3.0, 9.0) == pytest.approx(750)


def test_steps_repeat_and_hold():
    settings = StepsProfile(profile="steps", levels_ppm=[0, 1000, 2000], step_s=10)
    p = build_profile(settings)
    assert [p.value_at(t) for t in (0, 5, 10.5, 25, 31, 45)] == [0, 0, 1000, 2000, 0, 1000]
    assert p.mean_over(5, 15) == pytest.approx(500)  # half 0, half 1000
    assert p.mean_over(0, 30) == pytest.approx(1000)
    assert p.mean_over(25, 35) == pytest.approx(1000)  # 2000 then wraps to 0
    held = build_profile(settings.model_copy(update={"repeat": False}))
    assert held.value_at(100) == 2000
    assert held.mean_over(25, 35) == pytest.approx(2000)


def test_ramp_mean_is_exact():
    p = build_profile(RampProfile(profile="ramp", start_ppm=100, end_ppm=1100, duration_s=100))
    assert p.value_at(50) == pytest.approx(600)
    assert p.mean_over(10, 20) == pytest.approx(250)
    assert p.value_at(500) == 1100  # held after the end
    assert p.mean_over(90, 110) == pytest.approx((1050 * 10 + 1100 * 10) / 20)
    saw = build_profile(RampProfile(profile="ramp", end_ppm=100, duration_s=10, repeat=True))
    assert saw.value_at(15) == pytest.approx(50)


def test_csv_schedule(tmp_path):
    path = tmp_path / "sched.csv"
    path.write_text("time_s,concentration_ppm\n# warm-up\n0,0\n10,1000\n20,1000\n30,0\n")
    p = build_profile(CsvProfile(profile="csv", path=path))
    assert p.value_at(5) == pytest.approx(500)
    assert p.value_at(15) == 1000
    assert p.value_at(99) == 0  # held after the last row
    assert p.mean_over(0, 30) == pytest.approx(2000 / 3)


@pytest.mark.parametrize(
    ("content", "match"),
    [
        ("0,1\n5,x\n", r"sched\.csv:2: expected two numbers"),
        ("0,1\n5\n", r"sched\.csv:2: expected 'time_s,concentration_ppm'"),
        ("5,1\n2,1\n", r"sched\.csv:2: time 2.0 s goes backwards"),
        ("0,-3\n", r"sched\.csv:1: concentration must be >= 0"),
        ("time_s,ppm\n", r"no 'time_s,ppm' rows"),
    ],
)
def test_csv_errors(tmp_path, content, match):
    path = tmp_path / "sched.csv"
    path.write_text(content)
    with pytest.raises(ConfigError, match=match):
        build_profile(CsvProfile(profile="csv", path=path))


def test_csv_missing_file(tmp_path):
    with pytest.raises(ConfigError, match=r"nope\.csv: cannot read"):
        build_profile(CsvProfile(profile="csv", path=tmp_path / "nope.csv"))


def test_piecewise_before_zero_and_empty_interval():
    p = ConcentrationProfile([0.0, 10.0], [100.0, 200.0])
    assert p.value_at(-5) == 100
    assert p.mean_over(4, 4) == pytest.approx(140)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1000", ConstantProfile(value_ppm=1000)),
        ("constant:250.5", ConstantProfile(value_ppm=250.5)),
        (
            "ramp:0:5000:60",
            RampProfile(profile="ramp", start_ppm=0, end_ppm=5000, duration_s=60),
        ),
        (
            "steps:0,500,1000:30",
            StepsProfile(profile="steps", levels_ppm=[0, 500, 1000], step_s=30),
        ),
        ("csv:/data/run 1.csv", CsvProfile(profile="csv", path="/data/run 1.csv")),
    ],
)
def test_parse_profile(text, expected):
    assert parse_profile(text) == expected


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("", "expected 'PPM'"),
        ("sine:1:2", "expected 'PPM'"),
        ("ramp:0:100", "expected 'PPM'"),
        ("ramp:a:100:5", "could not convert"),
        ("steps::10", "levels_ppm"),
        ("-5", "value_ppm"),
        ("ramp:0:100:0", "duration_s"),
    ],
)
def test_parse_profile_errors(text, match):
    with pytest.raises(ConfigError, match=match):
        parse_profile(text)


def test_mean_inside_a_step_is_exactly_the_level():
    """Frames wholly inside a step report the level exactly (consumers compare with ==)."""
    p = build_profile(StepsProfile(profile="steps", levels_ppm=[500, 3000, 1000], step_s=3.0))
    dt = 4096 / 48000
    means = [p.mean_over(k * dt, (k + 1) * dt) for k in range(200)]
    for k, mean in enumerate(means):
        t0, t1 = k * dt, (k + 1) * dt
        if math.floor(t0 / 3.0) == math.floor(t1 / 3.0):
            assert mean == [500.0, 3000.0, 1000.0][int(t0 // 3.0) % 3]
    assert p.mean_over(2.9, 3.0) == 500.0  # ends exactly on the step: still the old level
    assert p.mean_over(8.9, 9.0) == 1000.0  # ends exactly on the wrap
    assert p.mean_over(2.5, 3.5) == pytest.approx(1750.0)
